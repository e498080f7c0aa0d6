//! The data that leaves the readers: one [`RawBatch`] per parsed chunk.
//!
//! Values stay exactly as read (no trimming, no normalization): that is the
//! next stage's job, and `failed.csv` must show the original text.

use std::sync::Arc;

use arrow::array::{ArrayRef, StringArray, UInt64Array};
use arrow::buffer::{Buffer, OffsetBuffer, ScalarBuffer};
use arrow::datatypes::{DataType, Field, Schema, SchemaRef};
use arrow::record_batch::{RecordBatch, RecordBatchOptions};

/// Name of the source-row column, the first column of every batch. Input
/// columns keep their own names after it (even one named `row`: Arrow allows
/// duplicate names, and stages address columns by index).
pub const ROW_COLUMN: &str = "__row";

/// A batch of rows read from the input.
#[derive(Debug, Clone)]
pub struct RawBatch {
    /// Column 0 is [`ROW_COLUMN`] (UInt64, the 1-based data row number in the
    /// source: header and skipped blank rows not counted), then one Utf8
    /// column per input column, in input order.
    pub batch: RecordBatch,
    /// Rows that could not be read as a row of the table, in source order.
    pub bad_rows: Vec<BadRow>,
}

impl RawBatch {
    /// The source row numbers of the good rows.
    pub fn rows(&self) -> &UInt64Array {
        self.batch
            .column(0)
            .as_any()
            .downcast_ref::<UInt64Array>()
            .expect("column 0 of a RawBatch is the UInt64 row column")
    }

    /// Input column `index` (0-based, not counting the row column).
    pub fn column(&self, index: usize) -> &StringArray {
        self.batch
            .column(index + 1)
            .as_any()
            .downcast_ref::<StringArray>()
            .expect("input columns of a RawBatch are Utf8")
    }

    pub fn num_rows(&self) -> usize {
        self.batch.num_rows()
    }
}

/// A data row that is not a row of the table: wrong number of fields, or
/// bytes that are not text in the file's encoding. It is data, not an error:
/// the import reports it in `failed.csv` with reason `bad_row`.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct BadRow {
    /// 1-based data row number, counted like good rows.
    pub row: u64,
    /// The fields as read (invalid bytes replaced by U+FFFD).
    pub fields: Vec<String>,
    /// What is wrong, with the byte offset of the row in the source.
    pub detail: String,
}

/// The Arrow schema of raw batches for the given input columns.
pub fn raw_schema(columns: &[String]) -> SchemaRef {
    let mut fields = Vec::with_capacity(columns.len() + 1);
    fields.push(Field::new(ROW_COLUMN, DataType::UInt64, false));
    fields.extend(columns.iter().map(|c| Field::new(c, DataType::Utf8, false)));
    Arc::new(Schema::new(fields))
}

/// Builds a [`RawBatch`] column by column, writing field bytes straight into
/// the Arrow value buffers (one copy from the parser's record).
pub(crate) struct BatchBuilder {
    columns: Vec<ColumnBuilder>,
    rows: Vec<u64>,
    bad_rows: Vec<BadRow>,
    /// A quoted field that is surely a stray quote, at this row (numbered
    /// like the others) and column (0-based): an input error.
    pub(crate) quote_error: Option<(u64, usize, QuoteProblem)>,
    /// The source's byte offset where the rows built here end.
    pub(crate) end_offset: u64,
}

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) enum QuoteProblem {
    /// The input ends inside the quoted field.
    NeverClosed,
    /// The quoted field spans an absurd number of lines or bytes.
    Spans { lines: usize, bytes: usize },
}

struct ColumnBuilder {
    values: Vec<u8>,
    offsets: Vec<i32>,
}

impl BatchBuilder {
    /// `bytes_hint` is the expected total size of the values (the chunk size).
    pub(crate) fn new(num_columns: usize, rows_hint: usize, bytes_hint: usize) -> Self {
        let per_column = bytes_hint / num_columns.max(1) + 16;
        let columns = (0..num_columns)
            .map(|_| {
                let mut offsets = Vec::with_capacity(rows_hint + 1);
                offsets.push(0);
                ColumnBuilder {
                    values: Vec::with_capacity(per_column),
                    offsets,
                }
            })
            .collect();
        BatchBuilder {
            columns,
            rows: Vec::with_capacity(rows_hint),
            bad_rows: Vec::new(),
            quote_error: None,
            end_offset: 0,
        }
    }

    pub(crate) fn num_columns(&self) -> usize {
        self.columns.len()
    }

    /// The value buffer of column `index`: append the field's UTF-8 bytes to
    /// it, then call [`BatchBuilder::end_field`].
    #[inline]
    pub(crate) fn values_mut(&mut self, index: usize) -> &mut Vec<u8> {
        &mut self.columns[index].values
    }

    /// Appends a whole field. `padded` is the same bytes followed by more of
    /// the source buffer (16 bytes in all), when available: a field of up to
    /// 16 bytes is then copied with one fixed-size move instead of a call.
    #[inline]
    pub(crate) fn push_field(&mut self, index: usize, field: &[u8], padded: Option<&[u8; 16]>) {
        let column = &mut self.columns[index];
        match padded {
            Some(padded) if field.len() <= 16 => {
                let len = column.values.len();
                column.values.extend_from_slice(padded);
                column.values.truncate(len + field.len());
            }
            _ => column.values.extend_from_slice(field),
        }
        column.offsets.push(column.values.len() as i32);
    }

    #[inline]
    pub(crate) fn end_field(&mut self, index: usize) {
        let column = &mut self.columns[index];
        // Chunks are a few MiB, far below i32::MAX; a single field over 2 GiB
        // cannot reach here because chunk sizes are bounded.
        column.offsets.push(column.values.len() as i32);
    }

    #[inline]
    pub(crate) fn end_row(&mut self, row: u64) {
        self.rows.push(row);
    }

    pub(crate) fn push_bad_row(&mut self, bad: BadRow) {
        self.bad_rows.push(bad);
    }

    pub(crate) fn is_empty(&self) -> bool {
        self.rows.is_empty() && self.bad_rows.is_empty()
    }

    /// Shifts every row number by `base` (rows are numbered per chunk while
    /// chunks are parsed in parallel, then placed once the rows before are
    /// counted).
    pub(crate) fn offset_rows(&mut self, base: u64) {
        self.rows.iter_mut().for_each(|r| *r += base);
        self.bad_rows.iter_mut().for_each(|b| b.row += base);
        if let Some((row, _, _)) = &mut self.quote_error {
            *row += base;
        }
    }

    /// Number of data rows (good and bad) this builder holds.
    pub(crate) fn rows_counted(&self) -> usize {
        self.rows.len() + self.bad_rows.len()
    }

    /// Finishes the batch. Every value pushed must be valid UTF-8: the parser
    /// checks each chunk (or each field) before pushing.
    pub(crate) fn finish(self, schema: SchemaRef) -> RawBatch {
        let num_rows = self.rows.len();
        let mut arrays: Vec<ArrayRef> = Vec::with_capacity(self.columns.len() + 1);
        arrays.push(Arc::new(UInt64Array::from(self.rows)));
        for column in self.columns {
            debug_assert_eq!(column.offsets.len(), num_rows + 1);
            debug_assert!(std::str::from_utf8(&column.values).is_ok());
            // SAFETY: offsets start at 0, never decrease and end at
            // values.len() (end_field pushes values.len() after each field);
            // and every byte run pushed was validated as UTF-8 (or produced
            // by a decoding table) at a field boundary, which is a character
            // boundary since delimiters and quotes are ASCII.
            let array = unsafe {
                let offsets = OffsetBuffer::new_unchecked(ScalarBuffer::from(column.offsets));
                StringArray::new_unchecked(offsets, Buffer::from_vec(column.values), None)
            };
            arrays.push(Arc::new(array));
        }
        let options = RecordBatchOptions::new().with_row_count(Some(num_rows));
        let batch =
            RecordBatch::try_new_with_options(schema, arrays, &options).expect("raw batch arrays match the raw schema");
        RawBatch {
            batch,
            bad_rows: self.bad_rows,
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn builder_numbers_rows_and_keeps_values() {
        let columns = vec!["a".to_string(), "b".to_string()];
        let mut b = BatchBuilder::new(2, 4, 64);
        for (i, v) in ["x", "y"].iter().enumerate() {
            b.values_mut(i).extend_from_slice(v.as_bytes());
            b.end_field(i);
        }
        b.end_row(1);
        b.push_bad_row(BadRow {
            row: 2,
            fields: vec!["z".into()],
            detail: "ragged".into(),
        });
        assert_eq!(b.rows_counted(), 2);
        b.offset_rows(10);
        let batch = b.finish(raw_schema(&columns));
        assert_eq!(batch.num_rows(), 1);
        assert_eq!(batch.rows().value(0), 11);
        assert_eq!(batch.column(0).value(0), "x");
        assert_eq!(batch.column(1).value(0), "y");
        assert_eq!(batch.bad_rows[0].row, 12);
    }
}
