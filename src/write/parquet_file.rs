//! The Parquet form of the row files: the CSV form's cells as typed
//! columns, written in bounded row groups.

use std::borrow::Cow;
use std::fs::File;
use std::path::{Path, PathBuf};
use std::sync::Arc;

use arrow::array::{ArrayBuilder, ArrayRef, StringBuilder, UInt64Builder};
use arrow::datatypes::{DataType, Field as ArrowField, Schema, SchemaRef};
use arrow::record_batch::RecordBatch;
use parquet::arrow::ArrowWriter;
use parquet::basic::Compression;
use parquet::file::properties::WriterProperties;

use crate::error::{Error, Result};

/// Rows buffered per Parquet record batch (and row group: memory stays
/// bounded whatever the import's size).
const PARQUET_BATCH: usize = 64 * 1024;

/// A Parquet row file: `row` is UInt64, every other column text, exactly
/// the cells of the CSV form (empty cells are nulls).
pub(super) struct ParquetFile {
    path: PathBuf,
    schema: SchemaRef,
    writer: ArrowWriter<File>,
    row: UInt64Builder,
    columns: Vec<StringBuilder>,
}

impl ParquetFile {
    pub(super) fn create(path: PathBuf, file: File, header: &[&str]) -> Result<ParquetFile> {
        let fields: Vec<ArrowField> = header
            .iter()
            .enumerate()
            .map(|(i, name)| {
                if i == 0 {
                    ArrowField::new(*name, DataType::UInt64, false)
                } else {
                    ArrowField::new(*name, DataType::Utf8, true)
                }
            })
            .collect();
        let schema: SchemaRef = Arc::new(Schema::new(fields));
        let props = WriterProperties::builder()
            .set_compression(Compression::SNAPPY)
            .set_max_row_group_row_count(Some(PARQUET_BATCH))
            .build();
        let writer = ArrowWriter::try_new(file, schema.clone(), Some(props)).map_err(|e| parquet_error(&path, &e))?;
        Ok(ParquetFile {
            path,
            schema,
            writer,
            row: UInt64Builder::new(),
            columns: (1..header.len()).map(|_| StringBuilder::new()).collect(),
        })
    }

    pub(super) fn record<'a>(&mut self, cells: impl IntoIterator<Item = Option<Cow<'a, str>>>) -> Result<()> {
        let mut cells = cells.into_iter();
        let row = cells.next().flatten().and_then(|r| r.parse().ok()).unwrap_or(0);
        self.row.append_value(row);
        for column in &mut self.columns {
            column.append_option(cells.next().flatten());
        }
        if self.row.len() >= PARQUET_BATCH {
            self.flush()?;
        }
        Ok(())
    }

    fn flush(&mut self) -> Result<()> {
        if self.row.is_empty() {
            return Ok(());
        }
        let mut arrays: Vec<ArrayRef> = vec![Arc::new(self.row.finish())];
        arrays.extend(self.columns.iter_mut().map(|c| Arc::new(c.finish()) as ArrayRef));
        let batch = RecordBatch::try_new(self.schema.clone(), arrays)
            .map_err(|e| Error::io(&self.path, std::io::Error::other(e.to_string())))?;
        self.writer.write(&batch).map_err(|e| parquet_error(&self.path, &e))
    }

    pub(super) fn finish(mut self) -> Result<()> {
        self.flush()?;
        self.writer
            .close()
            .map(|_| ())
            .map_err(|e| parquet_error(&self.path, &e))
    }
}

fn parquet_error(path: &Path, e: &parquet::errors::ParquetError) -> Error {
    Error::io(path, std::io::Error::other(e.to_string()))
}
