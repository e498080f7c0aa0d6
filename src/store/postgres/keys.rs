//! The PostgreSQL side of the import's build: the file's keys in temporary
//! tables, and the key columns of the stored contacts streamed out by a
//! binary `COPY` (see [`crate::store::keys`]).

use std::io::Write;
use std::sync::Arc;

use arrow::array::{Array, ArrayRef, UInt64Array};
use arrow::record_batch::RecordBatch;

use super::Postgres;
use super::copy::{self, Out};
use crate::error::Result;
use crate::store::keys::{FileKeys, HashBits, KeyScan};
use crate::store::sql::literal;

/// The contacts a semi-join with the file selected, with their keys.
const PICKED: &str = "kontakt_build";

impl Postgres {
    /// About how many: the table's live rows by the server's statistics
    /// (the larger of the cumulative count, which every commit updates,
    /// and the planner's, which survives a crash), times the type's share
    /// among the most common values `ANALYZE` saw. Counting them exactly
    /// scanned the table: 1.2-1.7 s of each import into a 10M store.
    pub(crate) fn count_contacts_of_type(&self, contact_type: &str) -> Result<i64> {
        let row = self.query_opt(
            "SELECT greatest(t.n_live_tup, c.reltuples::bigint), s.most_common_vals::text::text[], \
                    s.most_common_freqs \
             FROM pg_class c JOIN pg_stat_user_tables t ON t.relid = c.oid \
             LEFT JOIN pg_stats s ON s.schemaname = t.schemaname AND s.tablename = t.relname AND s.attname = 'type' \
                       AND NOT s.inherited \
             WHERE c.oid = 'contacts'::regclass",
            &[],
        )?;
        let rows: i64 = row.as_ref().map_or(0, |row| row.get(0));
        let Some(row) = row.filter(|_| rows > 0) else {
            // No statistics yet (never analyzed, counts not yet flushed):
            // counted, which is cheap where the table is empty.
            return self.query_one_i64("SELECT count(*) FROM contacts WHERE type = $1", &[&contact_type]);
        };
        let values: Option<Vec<String>> = row.get(1);
        let shares: Option<Vec<f32>> = row.get(2);
        let share = match (values, shares) {
            (Some(values), Some(shares)) => match values.iter().position(|v| v == contact_type) {
                Some(i) => shares.get(i).copied().unwrap_or(1.0),
                None => 1.0 - shares.iter().sum::<f32>(),
            },
            _ => 1.0,
        };
        Ok((rows as f64 * f64::from(share.clamp(0.0, 1.0))).round() as i64)
    }

    /// Writes a batch into a table by binary `COPY`, encoded and sent a
    /// few thousand rows at a time, so that the server stores each part
    /// while the next is encoded (a batch encoded whole before it was
    /// sent left the two waiting on each other: the 1M x 1M skip's
    /// write took 1.57x a bare `COPY` of the same rows).
    pub(super) fn copy_in(&self, table: &str, columns: &str, batch: &RecordBatch) -> Result<()> {
        const ROWS: usize = 2048;
        let typed = copy::columns(batch).map_err(|m| self.error_message(m))?;
        let mut client = self.client();
        let mut writer = client
            .copy_in(&format!("COPY {table} ({columns}) FROM STDIN (FORMAT binary)"))
            .map_err(|e| self.error(&e))?;
        let failed =
            |e: std::io::Error| self.error_message(format!("writing rows to the store: {}", super::describe_io(&e)));
        let mut buffer = copy::HEADER.to_vec();
        for start in (0..batch.num_rows()).step_by(ROWS) {
            copy::encode_range(&typed, start..(start + ROWS).min(batch.num_rows()), &mut buffer);
            writer.write_all(&buffer).map_err(failed)?;
            buffer.clear();
        }
        buffer.extend_from_slice(copy::TRAILER);
        writer.write_all(&buffer).map_err(failed)?;
        writer.finish().map_err(|e| self.error(&e))?;
        Ok(())
    }

    /// When every key is hashed, the file's keys are kept as bitmaps only
    /// ([`HashBits`]): the pick is then one scan that tests two bits a
    /// contact, in parallel. Else they go to temporary tables, joined by
    /// hash in [`Postgres::scan_keys`].
    pub(crate) fn load_file_keys(
        &self,
        hashed: &[bool],
        feed: impl FnOnce(&mut dyn FnMut(&[ArrayRef]) -> Result<()>) -> Result<()>,
    ) -> Result<FileKeys> {
        let mut tables = FileKeys::tables_for(hashed);
        if hashed.iter().all(|&h| h) {
            let mut bits: Vec<HashBits> = hashed.iter().map(|_| HashBits::new()).collect();
            feed(&mut |columns| {
                for (column, bits) in columns.iter().zip(&mut bits) {
                    let hashes = column
                        .as_any()
                        .downcast_ref::<UInt64Array>()
                        .ok_or_else(|| self.error_message("a hashed key's values are not hashes"))?;
                    hashes.iter().flatten().for_each(|h| bits.insert(h));
                }
                Ok(())
            })?;
            for (keys, bits) in tables.iter_mut().zip(bits) {
                keys.bits = Some(bits.fold());
            }
            return Ok(FileKeys { tables });
        }
        for keys in &tables {
            let column = if keys.hashed { "h bigint" } else { "v text" };
            self.batch(&format!(
                "DROP TABLE IF EXISTS {0}; CREATE TEMP TABLE {0} ({column})",
                keys.table
            ))?;
        }
        feed(&mut |columns| {
            for (keys, column) in tables.iter().zip(columns) {
                let name = if keys.hashed { "h" } else { "v" };
                let batch = RecordBatch::try_from_iter([(name, Arc::clone(column))])
                    .map_err(|e| self.error_message(e.to_string()))?;
                self.copy_in(&keys.table, name, &batch)?;
            }
            Ok(())
        })?;
        for keys in &tables {
            self.batch(&format!("ANALYZE {}", keys.table))?;
        }
        Ok(FileKeys { tables })
    }

    pub(crate) fn drop_file_keys(&self, keys: FileKeys) {
        // A key kept as a bitmap never had a table.
        for keys in keys.tables.into_iter().filter(|k| k.bits.is_none()) {
            let _ = self.batch(&format!("DROP TABLE IF EXISTS {}", keys.table));
        }
    }

    pub(crate) fn scan_keys<T>(
        &self,
        contact_type: &str,
        keys: &[&str],
        file_keys: Option<&FileKeys>,
        read: impl FnOnce(KeyScan<'_>) -> Result<T>,
    ) -> Result<T> {
        // Keys compare as text (the contact id too).
        let columns: Vec<String> = keys
            .iter()
            .enumerate()
            .map(|(i, k)| format!("\"{k}\"::text AS k{i}"))
            .collect();
        let list = format!(
            "id, (extract(epoch FROM created_at) * 1000000)::bigint AS created, {}",
            columns.join(", ")
        );
        let of_type = format!("type = {}", literal(contact_type));
        let (source, rows, sizes) = match file_keys {
            None => {
                let filter: Vec<String> = keys.iter().map(|k| format!("\"{k}\" IS NOT NULL")).collect();
                let counts: Vec<String> = keys.iter().map(|k| format!("count({})", count_column(k))).collect();
                let row = self
                    .query_opt(
                        &format!("SELECT count(*), {} FROM contacts WHERE type = $1", counts.join(", ")),
                        &[&contact_type],
                    )?
                    .ok_or_else(|| self.error_message("no counts"))?;
                let sizes = (0..keys.len()).map(|k| row.get::<_, i64>(1 + k) as usize).collect();
                (
                    format!(
                        "SELECT {list} FROM contacts WHERE {of_type} AND ({})",
                        filter.join(" OR ")
                    ),
                    row.get::<_, i64>(0) as usize,
                    sizes,
                )
            }
            Some(tables) => {
                let (joins, pick) = match tables
                    .tables
                    .iter()
                    .map(|t| t.bits.as_ref())
                    .collect::<Option<Vec<_>>>()
                {
                    // The contacts with a hash whose bit is set in the
                    // file's bitmap of that key: a superset of those
                    // sharing a value (about one in seven of a 10M store
                    // for 1M file keys at 8 bits a key), which the index
                    // sorts out. 1M file keys against 10M contacts, by
                    // hand: 4.0 s (a parallel scan), against 10-19 s for
                    // the exact semi-join below (docs/DESIGN.md).
                    Some(bits) => (
                        String::new(),
                        keys.iter()
                            .zip(bits)
                            .map(|(k, bits)| {
                                format!(
                                    "get_bit('\\x{}'::bytea, (\"{k}_hash\" & {})::int) = 1",
                                    hex(&bits.bytes),
                                    bits.mask()
                                )
                            })
                            .collect::<Vec<_>>()
                            .join(" OR "),
                    ),
                    // One scan of the contacts, each key's distinct values
                    // joined by hash: `key IN (SELECT …) OR …` is planned
                    // as a subquery per key, looked up by hash only while
                    // its values fit in `work_mem` and else scanned for
                    // every contact (1M file keys against 10M contacts:
                    // minutes).
                    None => {
                        let mut joins = Vec::new();
                        let mut matched = Vec::new();
                        for (i, (k, t)) in keys.iter().zip(&tables.tables).enumerate() {
                            let (value, stored) = if t.hashed {
                                ("h", format!("\"{k}_hash\""))
                            } else {
                                ("v", format!("\"{k}\"::text"))
                            };
                            joins.push(format!(
                                "LEFT JOIN (SELECT DISTINCT {value} FROM {}) AS f{i} ON {stored} = f{i}.{value}",
                                t.table
                            ));
                            matched.push(format!("f{i}.{value} IS NOT NULL"));
                        }
                        (joins.join(" "), matched.join(" OR "))
                    }
                };
                self.batch(&format!(
                    "DROP TABLE IF EXISTS {PICKED}; CREATE TEMP TABLE {PICKED} AS SELECT {list} FROM contacts {joins} \
                     WHERE {of_type} AND ({pick})"
                ))?;
                let rows = self.query_one_i64(&format!("SELECT count(*) FROM {PICKED}"), &[])? as usize;
                (format!("SELECT * FROM {PICKED}"), rows, vec![rows; keys.len()])
            }
        };
        let names: Vec<String> = ["id".to_string(), "created".to_string()]
            .into_iter()
            .chain((0..keys.len()).map(|i| format!("k{i}")))
            .collect();
        let types: Vec<Out> = [Out::Int64, Out::Int64]
            .into_iter()
            .chain(keys.iter().map(|_| Out::Text))
            .collect();
        let result = self.copy_out(&source, names, types, "the store's keys", |batches| {
            read(KeyScan { rows, sizes, batches })
        });
        if file_keys.is_some() {
            self.batch(&format!("DROP TABLE IF EXISTS {PICKED}"))?;
        }
        result
    }
}

/// The column whose values are counted for key `k`: a key field's hash
/// column (an integer), else the key itself.
fn count_column(k: &str) -> String {
    if crate::fields::KEY_FIELDS.contains(&k) {
        format!("\"{}\"", crate::fields::hash_column(k))
    } else {
        format!("\"{k}\"")
    }
}

/// Bytes as hexadecimal digits, for a `bytea` literal.
fn hex(bytes: &[u8]) -> String {
    use std::fmt::Write;
    let mut text = String::with_capacity(bytes.len() * 2);
    for b in bytes {
        let _ = write!(text, "{b:02x}");
    }
    text
}
