//! `kontakt store copy` on DuckDB (see [`crate::store::transfer`]): a
//! table's rows read out as Arrow batches, and written in through a
//! temporary table of the batches' types.

use arrow::datatypes::{DataType, Schema};
use arrow::record_batch::RecordBatch;

use super::{DuckDb, quote_ident};
use crate::error::Result;

/// The temporary table a copied table's rows are appended to first.
const STAGED: &str = "kontakt_copy_rows";

impl DuckDb {
    /// Every row of `table` (columns `columns`), as batches handed to
    /// `read`: ENUM columns as text.
    pub(crate) fn read_table<T>(
        &self,
        table: &str,
        columns: &[String],
        read: impl FnOnce(&mut dyn Iterator<Item = Result<RecordBatch>>) -> Result<T>,
    ) -> Result<T> {
        let types = self.typed_columns(table)?;
        let list: Vec<String> = columns
            .iter()
            .map(|c| {
                let q = quote_ident(c);
                match types.iter().find(|(name, _)| name == c) {
                    Some((_, t)) if t.starts_with("ENUM") => format!("CAST({q} AS VARCHAR) AS {q}"),
                    _ => q,
                }
            })
            .collect();
        let mut stmt = self
            .conn
            .prepare(&format!("SELECT {} FROM {table}", list.join(", ")))
            .map_err(|e| self.error(&e))?;
        let mut batches = self.batches(&mut stmt, [], true)?;
        read(&mut batches)
    }

    /// Writes `rows` into `table` (inside the caller's transaction); the
    /// number of rows. A key hash that comes as a signed `Int64` (from
    /// PostgreSQL) is taken back to its unsigned bits.
    pub(crate) fn write_table(&self, table: &str, rows: &mut dyn Iterator<Item = Result<RecordBatch>>) -> Result<u64> {
        let mut rows = rows.peekable();
        let schema = match rows.peek() {
            None => return Ok(0),
            Some(Err(_)) => return rows.next().expect("peeked").map(|_| 0),
            Some(Ok(batch)) => batch.schema(),
        };
        let definition: Vec<String> = schema
            .fields()
            .iter()
            .map(|f| match sql_type(f.data_type()) {
                Some(t) => Ok(format!("{} {t}", quote_ident(f.name()))),
                None => Err(self.error_message(format!(
                    "{table}.{}: a column of type {} that store copy does not move",
                    f.name(),
                    f.data_type()
                ))),
            })
            .collect::<Result<_>>()?;
        self.execute_batch(&format!(
            "DROP TABLE IF EXISTS {STAGED}; CREATE TEMP TABLE {STAGED} ({})",
            definition.join(", ")
        ))?;
        self.append_temp(STAGED, rows)?;
        let targets = self.typed_columns(table)?;
        let (names, values) = select_list(&schema, &targets);
        let n = self.execute(
            &format!("INSERT INTO {table} ({names}) SELECT {values} FROM {STAGED}"),
            [],
        )?;
        self.execute_batch(&format!("DROP TABLE {STAGED}"))?;
        Ok(n as u64)
    }

    /// How many groups keep undo records (which `store copy` leaves
    /// behind).
    pub(crate) fn undo_groups(&self) -> Result<u64> {
        Ok(self.query_i64("SELECT count(DISTINCT group_id) FROM undo_records", [])? as u64)
    }

    /// Sets the sequence `sequence` so that its next value is above every
    /// `id` of `table` (DuckDB has no `setval`: the values are drawn).
    pub(crate) fn advance_sequence(&self, sequence: &str, table: &str) -> Result<()> {
        self.execute_batch(&format!(
            "SELECT count(nextval('{sequence}')) FROM range((SELECT coalesce(max(id), 0) FROM {table}))"
        ))
    }
}

/// The column list of an insert of the staged rows, and the values.
fn select_list(schema: &Schema, targets: &[(String, String)]) -> (String, String) {
    let mut names = Vec::new();
    let mut values = Vec::new();
    for field in schema.fields() {
        let q = quote_ident(field.name());
        let unsigned = targets.iter().any(|(name, t)| name == field.name() && t == "UBIGINT");
        values.push(if unsigned && field.data_type() == &DataType::Int64 {
            format!(
                "CAST(CAST({q} AS HUGEINT) + CASE WHEN {q} < 0 THEN CAST(18446744073709551616 AS HUGEINT) ELSE 0 END \
                 AS UBIGINT)"
            )
        } else {
            q.clone()
        });
        names.push(q);
    }
    (names.join(", "), values.join(", "))
}

/// The DuckDB type of a column of moved rows.
fn sql_type(data_type: &DataType) -> Option<&'static str> {
    Some(match data_type {
        DataType::Int64 => "BIGINT",
        DataType::UInt64 => "UBIGINT",
        DataType::Utf8 => "VARCHAR",
        DataType::Timestamp(..) => "TIMESTAMP",
        DataType::Date32 => "DATE",
        DataType::List(item) if item.data_type() == &DataType::Utf8 => "VARCHAR[]",
        DataType::List(item) if item.data_type() == &DataType::Int64 => "BIGINT[]",
        _ => return None,
    })
}
