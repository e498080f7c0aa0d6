//! The PostgreSQL side of the import's build: the file's keys in temporary
//! tables, and the key columns of the stored contacts streamed out by a
//! binary `COPY` (see [`crate::store::keys`]).

use std::io::Write;
use std::sync::Arc;

use arrow::array::ArrayRef;
use arrow::record_batch::RecordBatch;

use super::Postgres;
use super::copy::{Out, encode};
use crate::error::Result;
use crate::store::keys::{FileKeys, KeyScan};
use crate::store::sql::literal;

/// The contacts a semi-join with the file selected, with their keys.
const PICKED: &str = "kontakt_build";

impl Postgres {
    pub(crate) fn count_contacts_of_type(&self, contact_type: &str) -> Result<i64> {
        self.query_one_i64("SELECT count(*) FROM contacts WHERE type = $1", &[&contact_type])
    }

    /// Writes a batch into a table by binary `COPY`.
    pub(super) fn copy_in(&self, table: &str, columns: &str, batch: &RecordBatch) -> Result<()> {
        let bytes = encode(batch).map_err(|m| self.error_message(m))?;
        let mut client = self.client();
        let mut writer = client
            .copy_in(&format!("COPY {table} ({columns}) FROM STDIN (FORMAT binary)"))
            .map_err(|e| self.error(&e))?;
        writer
            .write_all(&bytes)
            .map_err(|e| self.error_message(format!("writing rows to the store: {}", super::describe_io(&e))))?;
        writer.finish().map_err(|e| self.error(&e))?;
        Ok(())
    }

    pub(crate) fn load_file_keys(
        &self,
        hashed: &[bool],
        feed: impl FnOnce(&mut dyn FnMut(&[ArrayRef]) -> Result<()>) -> Result<()>,
    ) -> Result<FileKeys> {
        let tables = FileKeys::tables_for(hashed);
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
        for keys in keys.tables {
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
                // One scan of the contacts, each key's distinct values
                // joined by hash: `key IN (SELECT …) OR …` is planned as a
                // subquery per key, looked up by hash only while its
                // values fit in `work_mem` and else scanned for every
                // contact (1M file keys against 10M contacts: minutes).
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
                self.batch(&format!(
                    "DROP TABLE IF EXISTS {PICKED}; CREATE TEMP TABLE {PICKED} AS SELECT {list} FROM contacts {} \
                     WHERE {of_type} AND ({})",
                    joins.join(" "),
                    matched.join(" OR ")
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
