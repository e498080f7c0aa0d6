//! The DuckDB side of the import's build: the file's keys in temporary
//! tables, the semi-join that selects the stored contacts sharing one, and
//! the scan of the key columns (see [`crate::store::keys`]).

use std::sync::Arc;

use arrow::array::{Array, ArrayRef};
use arrow::datatypes::DataType;
use arrow::record_batch::RecordBatch;

use super::{DuckDb, IdBitmap};
use crate::error::Result;
use crate::store::keys::{FileKeys, KeyScan};

/// Temporary table of the ids of the contacts a semi-join with the file
/// selected.
const PICKED: &str = "kontakt_build_ids";

/// Selected contacts up to this many are read into memory whole rather
/// than streamed (~120 MB of ids, timestamps and key values at most).
const WHOLE_ROWS: usize = 2_000_000;

impl DuckDb {
    pub(crate) fn count_contacts_of_type(&self, contact_type: &str) -> Result<i64> {
        self.conn
            .query_row("SELECT count(*) FROM contacts WHERE type = ?", [contact_type], |r| {
                r.get(0)
            })
            .map_err(|e| self.error(&e))
    }

    pub(crate) fn load_file_keys(
        &self,
        hashed: &[bool],
        feed: impl FnOnce(&mut dyn FnMut(&[ArrayRef]) -> Result<()>) -> Result<()>,
    ) -> Result<FileKeys> {
        let tables = FileKeys::tables_for(hashed);
        for keys in &tables {
            let column = if keys.hashed { "h UBIGINT" } else { "v VARCHAR" };
            self.execute_batch(&format!("CREATE OR REPLACE TEMP TABLE {} ({column})", keys.table))?;
        }
        let mut appenders = tables
            .iter()
            .map(|t| self.conn.appender_to_catalog_and_db(&t.table, "temp", "main"))
            .collect::<std::result::Result<Vec<_>, _>>()
            .map_err(|e| self.error(&e))?;
        feed(&mut |columns| {
            for ((appender, keys), column) in appenders.iter_mut().zip(&tables).zip(columns) {
                let name = if keys.hashed { "h" } else { "v" };
                debug_assert_eq!(
                    column.data_type(),
                    if keys.hashed {
                        &DataType::UInt64
                    } else {
                        &DataType::Utf8
                    }
                );
                let batch =
                    RecordBatch::try_from_iter([(name, Arc::clone(column))]).map_err(|e| self.arrow_error(&e))?;
                appender.append_record_batch(batch).map_err(|e| self.error(&e))?;
            }
            Ok(())
        })?;
        for appender in &mut appenders {
            appender.flush().map_err(|e| self.error(&e))?;
        }
        Ok(FileKeys { tables })
    }

    pub(crate) fn drop_file_keys(&self, keys: FileKeys) {
        for keys in keys.tables {
            let _ = self.execute_batch(&format!("DROP TABLE IF EXISTS {}", keys.table));
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
            .map(|(i, k)| format!("CAST(\"{k}\" AS VARCHAR) AS k{i}"))
            .collect();
        // The rows to index: every contact of the type with a key, or (with
        // the file's keys) only those sharing a key value with the file. The
        // semi-join that selects them, run by DuckDB in parallel, reads the
        // integer columns only (the ids it keeps go to a temporary table);
        // their ids then filter the scan that reads the values
        // ([`IdBitmap`]), so only the selected rows' text is decompressed.
        // `bitmap`: the selected ids' (none without the file's keys, when
        // no contact is selected, or when their ids span too wide).
        let semi_join = file_keys.is_some();
        let (source, params, bitmap) = match file_keys {
            None => {
                let filter: Vec<String> = keys.iter().map(|k| format!("\"{k}\" IS NOT NULL")).collect();
                let source = format!("contacts WHERE type = ? AND ({})", filter.join(" OR "));
                (source, vec![contact_type], None)
            }
            Some(tables) => {
                let filter: Vec<String> = keys
                    .iter()
                    .zip(&tables.tables)
                    .map(|(k, t)| {
                        if t.hashed {
                            format!("\"{k}_hash\" IN (SELECT h FROM {})", t.table)
                        } else {
                            format!("CAST(\"{k}\" AS VARCHAR) IN (SELECT v FROM {})", t.table)
                        }
                    })
                    .collect();
                self.execute(
                    &format!(
                        "CREATE OR REPLACE TEMP TABLE {PICKED} AS SELECT id FROM contacts WHERE type = ? AND ({})",
                        filter.join(" OR ")
                    ),
                    [contact_type],
                )?;
                let bitmap = IdBitmap::of(self, PICKED)?;
                let source = format!(
                    "contacts WHERE {}",
                    IdBitmap::filter_or_semi_join(bitmap.as_ref(), "id", PICKED)
                );
                (source, Vec::new(), bitmap)
            }
        };
        let sql = format!(
            "SELECT id, epoch_us(created_at) AS created, {} FROM {source}",
            columns.join(", ")
        );
        let (rows, sizes) = self.key_counts(contact_type, keys, semi_join)?;
        let mut stmt = self.conn.prepare(&sql).map_err(|e| self.error(&e))?;
        // A few selected contacts are read whole, which DuckDB does on all
        // its threads (1M x 10M, 4 alternating runs: user CPU 5.3-5.8 s
        // against 5.7-5.9 s streamed); all of a type's, streamed.
        let whole = semi_join && rows <= WHOLE_ROWS;
        let mut batches = self.batches(&mut stmt, duckdb::params_from_iter(params), !whole)?;
        let read = read(KeyScan {
            rows,
            sizes,
            batches: &mut batches,
        })?;
        drop(stmt);
        if semi_join {
            self.execute_batch(&format!("DROP TABLE IF EXISTS {PICKED}"))?;
        }
        if let Some(bitmap) = bitmap {
            bitmap.reset(self)?;
        }
        Ok(read)
    }

    /// How many contacts the scan returns, and how many hold each key, at
    /// most ([`KeyScan`]): the selected contacts counted in their table (it
    /// bounds the values of each key), all of the type's by one aggregate scan,
    /// where a key field's values are counted in its hash column, a scan
    /// of integers where the text would be decompressed (at 10M contacts
    /// the count took 0.3-0.6 s that way).
    fn key_counts(&self, contact_type: &str, keys: &[&str], semi_join: bool) -> Result<(usize, Vec<usize>)> {
        if semi_join {
            let rows = self.query_i64(&format!("SELECT count(*) FROM {PICKED}"), [])? as usize;
            Ok((rows, vec![rows; keys.len()]))
        } else {
            let counts: Vec<String> = keys
                .iter()
                .map(|k| {
                    let column = if crate::fields::KEY_FIELDS.contains(k) {
                        crate::fields::hash_column(k)
                    } else {
                        k.to_string()
                    };
                    format!("count(\"{column}\")")
                })
                .collect();
            self.conn
                .query_row(
                    &format!("SELECT count(*), {} FROM contacts WHERE type = ?", counts.join(", ")),
                    [contact_type],
                    |r| {
                        let rows: i64 = r.get(0)?;
                        let sizes = (0..keys.len())
                            .map(|k| r.get::<_, i64>(1 + k).map(|n| n as usize))
                            .collect::<duckdb::Result<Vec<usize>>>()?;
                        Ok((rows as usize, sizes))
                    },
                )
                .map_err(|e| self.error(&e))
        }
    }
}
