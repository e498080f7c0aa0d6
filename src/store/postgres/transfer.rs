//! `kontakt store copy` on PostgreSQL (see [`crate::store::transfer`]):
//! a table's rows read out by binary `COPY` into Arrow batches, and
//! written in by binary `COPY` from them.

use arrow::record_batch::RecordBatch;

use super::Postgres;
use super::copy::Out;
use super::quote_ident;
use crate::error::Result;

/// Rows per `COPY` of moved rows (DuckDB hands them over 2048 at a time).
const COPY_ROWS: usize = 64 * 1024;

impl Postgres {
    /// Every row of `table` (columns `columns`), as batches handed to
    /// `read`.
    pub(crate) fn read_table<T>(
        &self,
        table: &str,
        columns: &[String],
        read: impl FnOnce(&mut dyn Iterator<Item = Result<RecordBatch>>) -> Result<T>,
    ) -> Result<T> {
        let types: Vec<(String, String, String)> = self
            .query(
                "SELECT column_name::text, data_type::text, udt_name::text FROM information_schema.columns \
                 WHERE table_schema = $1 AND table_name = $2",
                &[&self.schema, &table],
            )?
            .iter()
            .map(|r| (r.get(0), r.get(1), r.get(2)))
            .collect();
        let mut list = Vec::new();
        let mut outs = Vec::new();
        for c in columns {
            let q = quote_ident(c);
            let (out, value) = match types.iter().find(|(name, ..)| name == c) {
                Some((_, t, _)) if t == "bigint" => (Out::Int64, q),
                Some((_, t, _)) if t == "integer" => (Out::Int64, format!("{q}::bigint")),
                Some((_, t, _)) if t == "text" => (Out::Text, q),
                Some((_, t, _)) if t == "timestamp without time zone" => (Out::Timestamp, q),
                Some((_, t, _)) if t == "date" => (Out::Date, q),
                Some((_, _, u)) if u == "_text" => (Out::TextList, q),
                Some((_, _, u)) if u == "_int8" => (Out::Int64List, q),
                other => {
                    return Err(self.error_message(format!(
                        "{table}.{c}: a column of type {} that store copy does not move",
                        other.map(|(_, t, _)| t.as_str()).unwrap_or("(none)")
                    )));
                }
            };
            list.push(value);
            outs.push(out);
        }
        self.copy_out(
            &format!("SELECT {} FROM {table}", list.join(", ")),
            columns.to_vec(),
            outs,
            table,
            read,
        )
    }

    /// Writes `rows` into `table` by binary `COPY` (inside the caller's
    /// transaction), [`COPY_ROWS`] at a time; the number of rows.
    pub(crate) fn write_table(&self, table: &str, rows: &mut dyn Iterator<Item = Result<RecordBatch>>) -> Result<u64> {
        let mut pending: Vec<RecordBatch> = Vec::new();
        let mut written = 0u64;
        let flush = |pending: &mut Vec<RecordBatch>| -> Result<u64> {
            let Some(first) = pending.first() else {
                return Ok(0);
            };
            let schema = first.schema();
            let batch = arrow::compute::concat_batches(&schema, pending.iter())
                .map_err(|e| self.error_message(format!("{table}: {e}")))?;
            pending.clear();
            let columns: Vec<String> = schema.fields().iter().map(|f| quote_ident(f.name())).collect();
            self.copy_in(table, &columns.join(", "), &batch)?;
            Ok(batch.num_rows() as u64)
        };
        for batch in rows {
            pending.push(batch?);
            if pending.iter().map(RecordBatch::num_rows).sum::<usize>() >= COPY_ROWS {
                written += flush(&mut pending)?;
            }
        }
        written += flush(&mut pending)?;
        Ok(written)
    }

    /// How many groups keep undo records (which `store copy` leaves
    /// behind).
    pub(crate) fn undo_groups(&self) -> Result<u64> {
        Ok(self.query_one_i64("SELECT count(DISTINCT group_id) FROM undo_records", &[])? as u64)
    }

    /// Sets the sequence `sequence` so that its next value is above every
    /// `id` of `table`.
    pub(crate) fn advance_sequence(&self, sequence: &str, table: &str) -> Result<()> {
        self.batch(&format!(
            "SELECT setval('{sequence}', max(id)) FROM {table} HAVING max(id) IS NOT NULL"
        ))
    }
}
