//! PostgreSQL's binary `COPY` format, to and from Arrow: new contacts and
//! staged updates go in as `COPY … FROM STDIN (FORMAT binary)` encoded
//! here from the import's batches, and the build side's key scan comes out
//! as `COPY … TO STDOUT (FORMAT binary)` decoded here into batches. The
//! driver's own `BinaryCopyInWriter` goes through its generic `ToSql` per
//! value (about 30k rows/s, rust-postgres issue 1114); the format itself is
//! simple (a header, then per row a field count and each field as its
//! length and its bytes, big-endian), so kontakt writes it column by
//! column from the Arrow arrays.

use std::io::Read;
use std::sync::Arc;

use arrow::array::{
    Array, ArrayRef, AsArray, Date32Builder, Int64Builder, ListBuilder, StringBuilder, TimestampMicrosecondBuilder,
};
use arrow::datatypes::{DataType, Date32Type, Int64Type, TimeUnit, TimestampMicrosecondType, UInt64Type};
use arrow::record_batch::RecordBatch;

/// The binary format's signature, flags and header extension length.
pub(super) const HEADER: &[u8] = b"PGCOPY\n\xff\r\n\0\0\0\0\0\0\0\0\0";

/// Microseconds from the Unix epoch to PostgreSQL's (2000-01-01).
const PG_EPOCH_MICROS: i64 = 946_684_800_000_000;
/// Days from the Unix epoch to PostgreSQL's.
const PG_EPOCH_DAYS: i32 = 10_957;
/// The OID of `text`, the element type of `text[]`.
const TEXT_OID: i32 = 25;
/// The OID of `bigint`, the element type of `bigint[]`.
const INT8_OID: i32 = 20;

/// The bytes of a whole `COPY … FROM STDIN (FORMAT binary)` of `batch`, its
/// columns in order: `Int64`, `UInt64` (as `bigint`: the same bits),
/// `Utf8`, `Timestamp(µs)`, `Date32` and lists of `Utf8` (as `text[]`).
#[cfg(test)]
pub(super) fn encode(batch: &RecordBatch) -> Result<Vec<u8>, String> {
    let mut out = Vec::with_capacity(HEADER.len() + batch.num_rows() * (2 + 24 * batch.num_columns()) + 2);
    out.extend_from_slice(HEADER);
    encode_rows(batch, &mut out)?;
    out.extend_from_slice(TRAILER);
    Ok(out)
}

/// The end of a binary `COPY` stream.
pub(super) const TRAILER: &[u8] = &[0xff, 0xff];

/// Appends the rows of `batch` to a binary `COPY` stream (after its
/// [`HEADER`], before its [`TRAILER`]).
pub(super) fn encode_rows(batch: &RecordBatch, out: &mut Vec<u8>) -> Result<(), String> {
    encode_range(&columns(batch)?, 0..batch.num_rows(), out);
    Ok(())
}

/// A column of a batch to encode, its type resolved once (not per value).
pub(super) enum Column<'a> {
    Int64(&'a arrow::array::Int64Array),
    UInt64(&'a arrow::array::UInt64Array),
    Timestamp(&'a arrow::array::TimestampMicrosecondArray),
    Date(&'a arrow::array::Date32Array),
    Text(&'a arrow::array::StringArray),
    List(&'a arrow::array::ListArray),
}

/// The columns of `batch` as they are encoded; an error names a column of
/// a type PostgreSQL is not written in.
pub(super) fn columns(batch: &RecordBatch) -> Result<Vec<Column<'_>>, String> {
    batch
        .columns()
        .iter()
        .enumerate()
        .map(|(c, column)| {
            Ok(match column.data_type() {
                DataType::Int64 => Column::Int64(column.as_primitive::<Int64Type>()),
                DataType::UInt64 => Column::UInt64(column.as_primitive::<UInt64Type>()),
                DataType::Timestamp(TimeUnit::Microsecond, _) => {
                    Column::Timestamp(column.as_primitive::<TimestampMicrosecondType>())
                }
                DataType::Date32 => Column::Date(column.as_primitive::<Date32Type>()),
                DataType::Utf8 => Column::Text(column.as_string::<i32>()),
                DataType::List(item) if matches!(item.data_type(), DataType::Utf8 | DataType::Int64) => {
                    Column::List(column.as_list::<i32>())
                }
                other => {
                    return Err(format!(
                        "column {} of type {other} cannot be written to PostgreSQL",
                        batch.schema().field(c).name()
                    ));
                }
            })
        })
        .collect()
}

/// Appends rows `rows` of `columns` to a binary `COPY` stream.
pub(super) fn encode_range(columns: &[Column<'_>], rows: std::ops::Range<usize>, out: &mut Vec<u8>) {
    let count = (columns.len() as i16).to_be_bytes();
    for row in rows {
        out.extend_from_slice(&count);
        for column in columns {
            encode_field(out, column, row);
        }
    }
}

fn eight(out: &mut Vec<u8>, v: i64) {
    out.extend_from_slice(&8i32.to_be_bytes());
    out.extend_from_slice(&v.to_be_bytes());
}

fn null(out: &mut Vec<u8>) {
    out.extend_from_slice(&(-1i32).to_be_bytes());
}

/// One field of a typed column: its length (-1 for null), then its bytes.
fn encode_field(out: &mut Vec<u8>, column: &Column<'_>, row: usize) {
    match column {
        Column::Int64(a) if a.is_valid(row) => eight(out, a.value(row)),
        Column::UInt64(a) if a.is_valid(row) => eight(out, a.value(row) as i64),
        Column::Timestamp(a) if a.is_valid(row) => eight(out, a.value(row) - PG_EPOCH_MICROS),
        Column::Date(a) if a.is_valid(row) => {
            out.extend_from_slice(&4i32.to_be_bytes());
            out.extend_from_slice(&(a.value(row) - PG_EPOCH_DAYS).to_be_bytes());
        }
        Column::Text(a) if a.is_valid(row) => text(out, a.value(row)),
        Column::List(a) if a.is_valid(row) => list(out, a, row),
        _ => null(out),
    }
}

/// One list as a one-dimensional array (none when empty), its items read
/// in place through the offsets (no array made per row).
fn list(out: &mut Vec<u8>, column: &arrow::array::ListArray, row: usize) {
    let offsets = column.value_offsets();
    let (first, end) = (offsets[row] as usize, offsets[row + 1] as usize);
    let items = column.values().as_ref();
    let is_text = items.data_type() == &DataType::Utf8;
    let start = out.len();
    out.extend_from_slice(&0i32.to_be_bytes()); // length, set below
    let dimensions: i32 = if first == end { 0 } else { 1 };
    out.extend_from_slice(&dimensions.to_be_bytes());
    out.extend_from_slice(&i32::from((first..end).any(|i| items.is_null(i))).to_be_bytes());
    out.extend_from_slice(&(if is_text { TEXT_OID } else { INT8_OID }).to_be_bytes());
    if dimensions == 1 {
        out.extend_from_slice(&((end - first) as i32).to_be_bytes());
        out.extend_from_slice(&1i32.to_be_bytes());
        for i in first..end {
            if items.is_null(i) {
                null(out);
            } else if is_text {
                text(out, items.as_string::<i32>().value(i));
            } else {
                eight(out, items.as_primitive::<Int64Type>().value(i));
            }
        }
    }
    let length = (out.len() - start - 4) as i32;
    out[start..start + 4].copy_from_slice(&length.to_be_bytes());
}

fn text(out: &mut Vec<u8>, value: &str) {
    out.extend_from_slice(&(value.len() as i32).to_be_bytes());
    out.extend_from_slice(value.as_bytes());
}

/// A column of a binary `COPY … TO STDOUT` as it is decoded.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(super) enum Out {
    /// `bigint`, as `Int64`.
    Int64,
    /// `text`, as `Utf8`.
    Text,
    /// `timestamp`, as `Timestamp(µs)`.
    Timestamp,
    /// `date`, as `Date32`.
    Date,
    /// `text[]` (one dimension), as a list of `Utf8`.
    TextList,
    /// `bigint[]` (one dimension), as a list of `Int64`.
    Int64List,
}

impl Out {
    /// The Arrow type the column is decoded as.
    pub(super) fn data_type(self) -> DataType {
        match self {
            Out::Int64 => DataType::Int64,
            Out::Text => DataType::Utf8,
            Out::Timestamp => DataType::Timestamp(TimeUnit::Microsecond, None),
            Out::Date => DataType::Date32,
            Out::TextList => DataType::new_list(DataType::Utf8, true),
            Out::Int64List => DataType::new_list(DataType::Int64, true),
        }
    }
}

/// The builder of one decoded column.
enum Builder {
    Int64(Int64Builder),
    Text(StringBuilder),
    Timestamp(TimestampMicrosecondBuilder),
    Date(Date32Builder),
    TextList(ListBuilder<StringBuilder>),
    Int64List(ListBuilder<Int64Builder>),
}

/// Hands each element of a one-dimensional array in the binary format
/// (a dimension count, a null flag, the element type, each dimension's
/// length and lower bound, then each element as its length and bytes; -1:
/// null) to `element`, in order, without collecting them.
fn each_element(value: &[u8], mut element: impl FnMut(Option<&[u8]>) -> std::io::Result<()>) -> std::io::Result<()> {
    let bad = || std::io::Error::other("an array of an unexpected shape");
    let int = |at: usize| -> std::io::Result<i32> {
        Ok(i32::from_be_bytes(
            value.get(at..at + 4).ok_or_else(bad)?.try_into().map_err(|_| bad())?,
        ))
    };
    match int(0)? {
        0 => return Ok(()),
        1 => {}
        _ => return Err(std::io::Error::other("an array of more than one dimension")),
    }
    let length = usize::try_from(int(12)?).map_err(|_| bad())?;
    let mut at = 20;
    for _ in 0..length {
        let size = int(at)?;
        at += 4;
        if size < 0 {
            element(None)?;
        } else {
            let end = at + size as usize;
            element(Some(value.get(at..end).ok_or_else(bad)?))?;
            at = end;
        }
    }
    Ok(())
}

impl Builder {
    fn append_null(&mut self) {
        match self {
            Builder::Int64(b) => b.append_null(),
            Builder::Text(b) => b.append_null(),
            Builder::Timestamp(b) => b.append_null(),
            Builder::Date(b) => b.append_null(),
            Builder::TextList(b) => b.append_null(),
            Builder::Int64List(b) => b.append_null(),
        }
    }

    /// Appends one field's bytes.
    fn append(&mut self, value: &[u8]) -> std::io::Result<()> {
        let fixed = |value: &[u8]| -> std::io::Result<[u8; 8]> {
            value
                .try_into()
                .map_err(|_| std::io::Error::other("an 8-byte value of another length"))
        };
        match self {
            Builder::Int64(b) => b.append_value(i64::from_be_bytes(fixed(value)?)),
            // `infinity` is out of range: an error, not a wrap.
            Builder::Timestamp(b) => b.append_value(
                i64::from_be_bytes(fixed(value)?)
                    .checked_add(PG_EPOCH_MICROS)
                    .ok_or_else(|| std::io::Error::other("a timestamp out of range (infinity?)"))?,
            ),
            Builder::Date(b) => {
                let days: [u8; 4] = value
                    .try_into()
                    .map_err(|_| std::io::Error::other("a date of other than 4 bytes"))?;
                b.append_value(
                    i32::from_be_bytes(days)
                        .checked_add(PG_EPOCH_DAYS)
                        .ok_or_else(|| std::io::Error::other("a date out of range (infinity?)"))?,
                );
            }
            Builder::Text(b) => b.append_value(std::str::from_utf8(value).map_err(std::io::Error::other)?),
            Builder::TextList(b) => {
                each_element(value, |element| {
                    match element {
                        Some(v) => b
                            .values()
                            .append_value(std::str::from_utf8(v).map_err(std::io::Error::other)?),
                        None => b.values().append_null(),
                    }
                    Ok(())
                })?;
                b.append(true);
            }
            Builder::Int64List(b) => {
                each_element(value, |element| {
                    match element {
                        Some(v) => b.values().append_value(i64::from_be_bytes(fixed(v)?)),
                        None => b.values().append_null(),
                    }
                    Ok(())
                })?;
                b.append(true);
            }
        }
        Ok(())
    }

    fn finish(self) -> ArrayRef {
        match self {
            Builder::Int64(mut b) => Arc::new(b.finish()),
            Builder::Text(mut b) => Arc::new(b.finish()),
            Builder::Timestamp(mut b) => Arc::new(b.finish()),
            Builder::Date(mut b) => Arc::new(b.finish()),
            Builder::TextList(mut b) => Arc::new(b.finish()),
            Builder::Int64List(mut b) => Arc::new(b.finish()),
        }
    }
}

/// Rows of a binary `COPY … TO STDOUT` as Arrow batches of `rows` rows at
/// most, with the columns `names` of the types `types`.
pub(super) struct Decoder<R: Read> {
    input: R,
    names: Vec<String>,
    types: Vec<Out>,
    rows: usize,
    started: bool,
    ended: bool,
}

impl<R: Read> Decoder<R> {
    pub(super) fn new(input: R, names: Vec<String>, types: Vec<Out>, rows: usize) -> Decoder<R> {
        Decoder {
            input,
            names,
            types,
            rows,
            started: false,
            ended: false,
        }
    }

    fn read_i32(&mut self) -> std::io::Result<i32> {
        let mut b = [0u8; 4];
        self.input.read_exact(&mut b)?;
        Ok(i32::from_be_bytes(b))
    }

    fn batch(&mut self) -> std::io::Result<Option<RecordBatch>> {
        if !self.started {
            let mut header = [0u8; 19];
            self.input.read_exact(&mut header)?;
            if header[..11] != HEADER[..11] {
                return Err(std::io::Error::other("not a binary COPY stream"));
            }
            let extension = i32::from_be_bytes([header[15], header[16], header[17], header[18]]);
            std::io::copy(
                &mut (&mut self.input).take(extension.max(0) as u64),
                &mut std::io::sink(),
            )?;
            self.started = true;
        }
        if self.ended {
            return Ok(None);
        }
        let mut builders: Vec<Builder> = self
            .types
            .iter()
            .map(|t| match t {
                Out::Int64 => Builder::Int64(Int64Builder::with_capacity(self.rows)),
                Out::Text => Builder::Text(StringBuilder::with_capacity(self.rows, self.rows * 16)),
                Out::Timestamp => Builder::Timestamp(TimestampMicrosecondBuilder::with_capacity(self.rows)),
                Out::Date => Builder::Date(Date32Builder::with_capacity(self.rows)),
                Out::TextList => Builder::TextList(ListBuilder::new(StringBuilder::new())),
                Out::Int64List => Builder::Int64List(ListBuilder::new(Int64Builder::new())),
            })
            .collect();
        let mut n = 0;
        let mut value = Vec::new();
        while n < self.rows {
            let mut count = [0u8; 2];
            self.input.read_exact(&mut count)?;
            let count = i16::from_be_bytes(count);
            if count < 0 {
                self.ended = true;
                break;
            }
            if count as usize != self.types.len() {
                return Err(std::io::Error::other(format!(
                    "a COPY row of {count} fields where {} were asked",
                    self.types.len()
                )));
            }
            for builder in &mut builders {
                let length = self.read_i32()?;
                if length < 0 {
                    builder.append_null();
                    continue;
                }
                value.resize(length as usize, 0);
                self.input.read_exact(&mut value)?;
                builder.append(&value)?;
            }
            n += 1;
        }
        if n == 0 {
            return Ok(None);
        }
        let columns: Vec<(String, ArrayRef)> = self
            .names
            .iter()
            .cloned()
            .zip(builders.into_iter().map(Builder::finish))
            .collect();
        RecordBatch::try_from_iter(columns)
            .map(Some)
            .map_err(std::io::Error::other)
    }
}

impl<R: Read> Iterator for Decoder<R> {
    type Item = std::io::Result<RecordBatch>;

    fn next(&mut self) -> Option<Self::Item> {
        self.batch().transpose()
    }
}

#[cfg(test)]
mod tests {
    use arrow::array::{Date32Array, Int64Array, ListBuilder, StringArray, TimestampMicrosecondArray, UInt64Array};

    use super::*;

    #[test]
    fn a_batch_is_encoded_as_binary_copy_rows() {
        let mut tags = ListBuilder::new(StringBuilder::new());
        tags.values().append_value("a");
        tags.append(true);
        tags.append(true);
        let batch = RecordBatch::try_from_iter([
            ("id", Arc::new(Int64Array::from(vec![Some(7), None])) as ArrayRef),
            ("h", Arc::new(UInt64Array::from(vec![u64::MAX, 1])) as ArrayRef),
            ("t", Arc::new(StringArray::from(vec![Some("é"), None])) as ArrayRef),
            (
                "at",
                Arc::new(TimestampMicrosecondArray::from(vec![PG_EPOCH_MICROS + 1, 0])) as ArrayRef,
            ),
            ("d", Arc::new(Date32Array::from(vec![PG_EPOCH_DAYS, 0])) as ArrayRef),
            ("tags", Arc::new(tags.finish()) as ArrayRef),
        ])
        .expect("batch");
        let bytes = encode(&batch).expect("encode");
        let mut expected = HEADER.to_vec();
        // Row 1.
        expected.extend([0, 6]);
        expected.extend([0, 0, 0, 8, 0, 0, 0, 0, 0, 0, 0, 7]);
        expected.extend([0, 0, 0, 8, 255, 255, 255, 255, 255, 255, 255, 255]);
        expected.extend([0, 0, 0, 2, 0xc3, 0xa9]);
        expected.extend([0, 0, 0, 8, 0, 0, 0, 0, 0, 0, 0, 1]);
        expected.extend([0, 0, 0, 4, 0, 0, 0, 0]);
        expected.extend([
            0, 0, 0, 25, 0, 0, 0, 1, 0, 0, 0, 0, 0, 0, 0, 25, 0, 0, 0, 1, 0, 0, 0, 1, 0, 0, 0, 1, b'a',
        ]);
        // Row 2: nulls, the epoch, an empty list.
        expected.extend([0, 6]);
        expected.extend([255, 255, 255, 255]);
        expected.extend([0, 0, 0, 8, 0, 0, 0, 0, 0, 0, 0, 1]);
        expected.extend([255, 255, 255, 255]);
        expected.extend([0, 0, 0, 8]);
        expected.extend((-PG_EPOCH_MICROS).to_be_bytes());
        expected.extend([0, 0, 0, 4]);
        expected.extend((-PG_EPOCH_DAYS).to_be_bytes());
        expected.extend([0, 0, 0, 12, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 25]);
        expected.extend([255, 255]);
        assert_eq!(bytes, expected);
    }

    #[test]
    fn lists_decode_as_they_were_encoded() {
        let mut tags = ListBuilder::new(StringBuilder::new());
        tags.values().append_value("vip");
        tags.values().append_value("jaro é");
        tags.append(true);
        tags.append(true);
        tags.append(false);
        let mut shared = ListBuilder::new(Int64Builder::new());
        shared.values().append_value(-1);
        shared.append(true);
        shared.append(true);
        shared.values().append_value(i64::MAX);
        shared.values().append_value(0);
        shared.append(true);
        let batch = RecordBatch::try_from_iter([
            ("tags", Arc::new(tags.finish()) as ArrayRef),
            ("shared", Arc::new(shared.finish()) as ArrayRef),
        ])
        .expect("batch");
        let bytes = encode(&batch).expect("encode");
        let decoded: Vec<RecordBatch> = Decoder::new(
            bytes.as_slice(),
            vec!["tags".into(), "shared".into()],
            vec![Out::TextList, Out::Int64List],
            10,
        )
        .collect::<std::io::Result<_>>()
        .expect("decode");
        assert_eq!(decoded.len(), 1);
        assert_eq!(decoded[0].column(0).as_ref(), batch.column(0).as_ref());
        assert_eq!(decoded[0].column(1).as_ref(), batch.column(1).as_ref());
    }

    #[test]
    fn binary_copy_rows_are_decoded_in_batches() {
        let mut input = HEADER.to_vec();
        for (id, text) in [(1i64, Some("x")), (2, None), (3, Some("zz"))] {
            input.extend([0, 2, 0, 0, 0, 8]);
            input.extend(id.to_be_bytes());
            match text {
                Some(t) => text_bytes(&mut input, t),
                None => input.extend([255, 255, 255, 255]),
            }
        }
        input.extend([255, 255]);
        let decoder = Decoder::new(
            input.as_slice(),
            vec!["id".into(), "k0".into()],
            vec![Out::Int64, Out::Text],
            2,
        );
        let batches: Vec<RecordBatch> = decoder.collect::<std::io::Result<_>>().expect("decode");
        assert_eq!(batches.iter().map(RecordBatch::num_rows).collect::<Vec<_>>(), [2, 1]);
        assert_eq!(batches[0].column(0).as_primitive::<Int64Type>().values(), &[1, 2]);
        assert!(batches[0].column(1).is_null(1));
        assert_eq!(batches[1].column(1).as_string::<i32>().value(0), "zz");
    }

    fn text_bytes(out: &mut Vec<u8>, value: &str) {
        text(out, value);
    }
}
