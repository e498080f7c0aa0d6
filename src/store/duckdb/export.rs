//! Exports: DuckDB's `COPY` streams the selection straight into the file
//! (no copy through kontakt), and is the one CSV writer, so every CSV
//! export has the same bytes (quoting, empty text against NULL).

use crate::error::{Error, Result};
use crate::store::contacts::ContactFilter;
use crate::store::export::FileFormat;

use super::{DuckDb, literal};

impl DuckDb {
    pub(crate) fn export_contacts(
        &self,
        filter: &ContactFilter,
        format: FileFormat,
        to: &str,
        failed: impl FnOnce(&str) -> Error,
    ) -> Result<usize> {
        let options = match format {
            FileFormat::Parquet => "FORMAT parquet, COMPRESSION zstd",
            FileFormat::Csv => "FORMAT csv, HEADER true",
        };
        let sql = format!(
            "COPY ({}) TO {} ({options})",
            self.select_contacts(filter, false)?,
            literal(to)
        );
        self.connection().execute(&sql, []).map_err(|e| failed(&e.to_string()))
    }

    pub(crate) fn for_each_contact(
        &self,
        filter: &ContactFilter,
        each: impl FnMut(&[Option<String>]) -> Result<()>,
    ) -> Result<usize> {
        self.for_each_text_row(&self.select_contacts(filter, true)?, each)
    }
}
