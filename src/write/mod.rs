//! The import's output files (SPEC, Output flags): `no_match`, `one_match`,
//! `multiple_match`, `failed`, streamed batch by batch, and `summary.json`.
//! CSV, or Parquet with `--output-format parquet`: the same columns and
//! values (`row` as UInt64, the rest as text, empty cells as nulls), written
//! in row groups of 64k rows so memory stays bounded.
//!
//! Values are written as data, exactly as normalized or read: a cell that
//! starts with `=`, `+`, `-` or `@` is a formula to a spreadsheet, so
//! `--excel-safe` prefixes such cells with `'` (never the normalized phone
//! columns, whose `+` is the E.164 form scripts expect).

mod direct;
mod summary;

use std::borrow::Cow;
use std::fs::File;
use std::path::{Path, PathBuf};

use std::sync::Arc;

use arrow::array::{Array, ArrayBuilder, ArrayRef, AsArray, StringArray, StringBuilder, UInt64Builder};
use arrow::datatypes::{DataType, Field as ArrowField, Schema, SchemaRef, UInt64Type};
use arrow::record_batch::RecordBatch;
use parquet::arrow::ArrowWriter;
use parquet::basic::Compression;
use parquet::file::properties::WriterProperties;

use direct::DirectFile;
pub use summary::{Summary, peak_memory_mib};

use crate::apply::Action;
use crate::error::{Error, Result};
use crate::matching::{Category, MatchedBy};
use crate::normalize::{FailedRow, NormalizedBatch};

/// One row of a category file: its index in the normalized batch and what
/// matching and the plan made of it.
#[derive(Debug, Clone, Copy)]
pub struct RowOut {
    pub index: u32,
    pub action: Action,
    /// The matching stored contacts (created order): ordinals of the store
    /// index, `matched[start..start + len]` of the batch's [`WriteJob`].
    pub start: u32,
    pub len: u32,
    pub matched_by: Option<MatchedBy>,
}

impl RowOut {
    /// The row's part of a batch's matches: of [`WriteJob::matched`], or
    /// of the contact ids gathered from it.
    fn matched<T>(self, all: &[T]) -> &[T] {
        &all[self.start as usize..(self.start + self.len) as usize]
    }
}

/// One resolved batch for the output files.
#[derive(Debug)]
pub struct WriteJob {
    pub norm: NormalizedBatch,
    /// Store-index ordinals of the batch's matches (see [`RowOut`]).
    pub matched: Vec<u32>,
    pub categories: [Vec<RowOut>; 3],
    /// Rows failed after normalization (in-file duplicates).
    pub duplicates: Vec<FailedRow>,
}

/// The format of the row files (`--output-format`).
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default, clap::ValueEnum)]
pub enum OutputFormat {
    #[default]
    Csv,
    Parquet,
}

impl OutputFormat {
    fn extension(self) -> &'static str {
        match self {
            OutputFormat::Csv => "csv",
            OutputFormat::Parquet => "parquet",
        }
    }
}

/// One row file, written record by record. A cell is `None` when empty.
enum RowFile {
    Csv {
        path: PathBuf,
        file: DirectFile,
        /// Formatted records not yet written (flushed at ~1 MiB).
        buf: Vec<u8>,
    },
    Parquet(Box<ParquetFile>),
}

impl RowFile {
    /// `bom`: the CSV text starts with a UTF-8 byte order mark.
    fn create(path: PathBuf, header: &[&str], format: OutputFormat, bom: bool) -> Result<RowFile> {
        match format {
            OutputFormat::Csv => {
                let mut buf = Vec::with_capacity(CSV_BUFFER + (64 << 10));
                if bom {
                    buf.extend_from_slice(crate::contacts::BOM);
                }
                let mut out = RowFile::Csv {
                    file: DirectFile::create(&path).map_err(|e| Error::io(&path, e))?,
                    buf,
                    path,
                };
                out.record(header.iter().map(|h| Some(Cow::Borrowed(*h))), &[])?;
                Ok(out)
            }
            OutputFormat::Parquet => {
                let file = File::create(&path).map_err(|e| Error::io(&path, e))?;
                Ok(RowFile::Parquet(Box::new(ParquetFile::create(path, file, header)?)))
            }
        }
    }

    /// Writes one record. `plain[i]` says that cell `i` is known to hold
    /// nothing that needs quoting (cells past its end are checked).
    fn record<'a>(&mut self, cells: impl IntoIterator<Item = Option<Cow<'a, str>>>, plain: &[bool]) -> Result<()> {
        match self {
            RowFile::Csv { path, file, buf } => {
                for (i, cell) in cells.into_iter().enumerate() {
                    if i > 0 {
                        buf.push(b',');
                    }
                    match cell {
                        Some(cell) if plain.get(i) == Some(&true) => buf.extend_from_slice(cell.as_bytes()),
                        Some(cell) => push_csv_field(buf, cell.as_bytes()),
                        None => {}
                    }
                }
                buf.push(b'\n');
                flush_full(path, file, buf)
            }
            RowFile::Parquet(file) => file.record(cells),
        }
    }

    fn finish(self) -> Result<()> {
        match self {
            RowFile::Csv { path, file, mut buf } => file.finish(&mut buf).map_err(|e| Error::io(&path, e)),
            RowFile::Parquet(file) => file.finish(),
        }
    }
}

/// Bytes of formatted CSV collected before a write.
const CSV_BUFFER: usize = 1 << 20;

/// Writes the formatted records once there are [`CSV_BUFFER`] bytes of them.
fn flush_full(path: &Path, file: &mut DirectFile, buf: &mut Vec<u8>) -> Result<()> {
    if buf.len() >= CSV_BUFFER {
        file.write_blocks(buf).map_err(|e| Error::io(path, e))?;
    }
    Ok(())
}

/// Appends one CSV field (RFC 4180, as the `csv` crate writes it): quoted,
/// with `"` doubled, only when it holds a delimiter, a quote or a line end.
/// (Formatting here instead of through `csv::Writer`, whose per-byte state
/// machine was the writer thread's main cost.)
pub(crate) fn push_csv_field(buf: &mut Vec<u8>, field: &[u8]) {
    if !needs_quoting(field) {
        buf.extend_from_slice(field);
        return;
    }
    buf.push(b'"');
    for part in field.split_inclusive(|&b| b == b'"') {
        buf.extend_from_slice(part);
        if part.last() == Some(&b'"') {
            buf.push(b'"');
        }
    }
    buf.push(b'"');
}

/// Whether bytes hold a delimiter, a quote or a line end (a field that does
/// is quoted).
fn needs_quoting(bytes: &[u8]) -> bool {
    memchr::memchr3(b',', b'"', b'\n', bytes).is_some() || memchr::memchr(b'\r', bytes).is_some()
}

/// Rows buffered per Parquet record batch (and row group: memory stays
/// bounded whatever the import's size).
const PARQUET_BATCH: usize = 64 * 1024;

/// A Parquet row file: `row` is UInt64, every other column text, exactly
/// the cells of the CSV form (empty cells are nulls).
struct ParquetFile {
    path: PathBuf,
    schema: SchemaRef,
    writer: ArrowWriter<File>,
    row: UInt64Builder,
    columns: Vec<StringBuilder>,
}

impl ParquetFile {
    fn create(path: PathBuf, file: File, header: &[&str]) -> Result<ParquetFile> {
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

    fn record<'a>(&mut self, cells: impl IntoIterator<Item = Option<Cow<'a, str>>>) -> Result<()> {
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

    fn finish(mut self) -> Result<()> {
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

/// The four row files of one import.
pub struct Outputs {
    dir: PathBuf,
    categories: [RowFile; 3],
    failed: RowFile,
    /// Normalized field columns (after `__row`), with whether each is a phone.
    fields: Vec<(String, bool)>,
    excel_safe: bool,
}

/// The normalized columns a category file shows (after `row`, `action`,
/// and the match columns): the stage's fields and `warnings`.
fn category_header(category: Category, fields: &[(String, bool)]) -> Vec<&str> {
    let mut header = vec!["row", "action"];
    if category != Category::NoMatch {
        header.extend(["matched_ids", "matched_by"]);
    }
    header.extend(fields.iter().map(|(f, _)| f.as_str()));
    header
}

impl Outputs {
    /// Creates `dir` and the four files with their headers. `fields` are the
    /// normalized batch's columns between `__row` and the hash columns
    /// (including `warnings`); `input_columns` the file's own header.
    pub fn create(
        dir: &Path,
        fields: &[String],
        input_columns: &[String],
        format: OutputFormat,
        excel_safe: bool,
        bom: bool,
    ) -> Result<Outputs> {
        let bom = bom && format == OutputFormat::Csv;
        std::fs::create_dir_all(dir).map_err(|e| Error::io(dir, e))?;
        let fields: Vec<(String, bool)> = fields
            .iter()
            .map(|f| (f.clone(), f == "phone" || f == "mobile"))
            .collect();
        let file = |category: Category| {
            RowFile::create(
                dir.join(format!("{}.{}", category.as_str(), format.extension())),
                &category_header(category, &fields),
                format,
                bom,
            )
        };
        let categories = [
            file(Category::NoMatch)?,
            file(Category::OneMatch)?,
            file(Category::MultipleMatch)?,
        ];
        let mut failed_header = vec!["row", "reason", "detail"];
        failed_header.extend(input_columns.iter().map(String::as_str));
        let failed = RowFile::create(
            dir.join(format!("failed.{}", format.extension())),
            &failed_header,
            format,
            bom,
        )?;
        Ok(Outputs {
            dir: dir.to_path_buf(),
            categories,
            failed,
            fields,
            // Spreadsheets open CSV; a Parquet file is read as typed data.
            excel_safe: excel_safe && format == OutputFormat::Csv,
        })
    }

    pub fn dir(&self) -> &Path {
        &self.dir
    }

    /// Writes a resolved batch: its category rows, then its failed rows in
    /// row order. `ids` maps store-index ordinals to contact ids.
    pub fn write_job(&mut self, job: &WriteJob, ids: &[i64]) -> Result<()> {
        // One check per column of the batch instead of one per cell: a
        // column whose bytes hold nothing to quote is copied as it is.
        // (Parquet has no quoting: nothing to check.)
        let batch = &job.norm.batch;
        let csv = matches!(self.failed, RowFile::Csv { .. });
        let plain: Vec<bool> = (1..=self.fields.len())
            .map(|c| csv && !needs_quoting(batch.column(c).as_string::<i32>().value_data()))
            .collect();
        // The matches' contact ids, gathered in one loop: `ids` is indexed
        // at random (a cache miss each), and loads of a loop that does
        // nothing else overlap, where each row's would wait in turn.
        // (Measured: the writer's wait on those loads was ~2% of a 10M-row
        // import's CPU.)
        let matched_ids: Vec<i64> = job.matched.iter().map(|&o| ids[o as usize]).collect();
        for category in Category::ALL {
            self.write_category(category, job, &matched_ids, &plain)?;
        }
        let norm = &job.norm;
        let mut failed: Vec<&FailedRow> = norm.failed.iter().chain(&job.duplicates).collect();
        failed.sort_by_key(|f| f.row);
        for f in failed {
            self.write_failed(f, &norm.original(f))?;
        }
        Ok(())
    }

    /// Writes the rows of a normalized batch (`__row`, fields..., warnings,
    /// hashes) that fell in `category` into its file. `matched_ids`: the
    /// contact ids of [`WriteJob::matched`]; `plain[c]`: field column `c`
    /// needs no quoting in this batch.
    fn write_category(
        &mut self,
        category: Category,
        job: &WriteJob,
        matched_ids: &[i64],
        plain: &[bool],
    ) -> Result<()> {
        let batch = &job.norm.batch;
        let rows = &job.categories[category as usize];
        let row_numbers = batch.column(0).as_primitive::<UInt64Type>();
        let columns: Vec<&StringArray> = (1..=self.fields.len())
            .map(|c| batch.column(c).as_string::<i32>())
            .collect();
        let matches = category != Category::NoMatch;
        match &mut self.categories[category as usize] {
            RowFile::Csv { path, file, buf } => {
                let cells = Cells {
                    job,
                    matched_ids,
                    columns: &columns,
                    fields: &self.fields,
                    plain,
                    excel_safe: self.excel_safe,
                    matches,
                };
                csv_rows(buf, |buf| flush_full(path, file, buf), rows, &cells)
            }
            RowFile::Parquet(file) => {
                // The same cells as the CSV form (no `--excel-safe`: a
                // Parquet file is read as typed data).
                let mut number = itoa::Buffer::new();
                let mut cell = Vec::new();
                for out in rows {
                    let i = out.index as usize;
                    let head = [
                        Some(number.format(row_numbers.value(i)).into()),
                        Some(out.action.as_str().into()),
                    ];
                    let matched = matches.then(|| {
                        cell.clear();
                        write_matched_ids(&mut cell, out.matched(matched_ids));
                        [
                            Some(String::from_utf8_lossy(&cell)),
                            out.matched_by.map(|by| by.as_str().into()),
                        ]
                    });
                    let values = columns.iter().map(|c| c.is_valid(i).then(|| c.value(i).into()));
                    file.record(head.into_iter().chain(matched.into_iter().flatten()).chain(values))?;
                }
                Ok(())
            }
        }
    }

    /// Writes one failed row: `row`, `reason`, `detail`, then the values as read.
    fn write_failed(&mut self, failed: &FailedRow, original: &[&str]) -> Result<()> {
        let excel_safe = self.excel_safe;
        let cell = |value| safe_cell(excel_safe, value);
        let mut record: Vec<Cow<str>> = Vec::with_capacity(original.len() + 3);
        record.push(Cow::Owned(failed.row.to_string()));
        record.push(Cow::Borrowed(failed.reason.as_str()));
        record.push(cell(&failed.detail));
        record.extend(original.iter().map(|v| cell(v)));
        self.failed.record(record.into_iter().map(Some), &[])
    }

    /// Flushes every file.
    pub fn finish(self) -> Result<()> {
        for file in self.categories {
            file.finish()?;
        }
        self.failed.finish()
    }
}

/// What the cells of a batch's category rows are made of.
struct Cells<'a> {
    job: &'a WriteJob,
    /// The contact ids of [`WriteJob::matched`].
    matched_ids: &'a [i64],
    /// The normalized field columns.
    columns: &'a [&'a StringArray],
    /// Each field's name and whether it is a phone.
    fields: &'a [(String, bool)],
    /// Per field column: nothing in it needs quoting.
    plain: &'a [bool],
    excel_safe: bool,
    /// The file has the `matched_ids` and `matched_by` columns.
    matches: bool,
}

/// Formats the rows of one category file as CSV: the cells of
/// [`Outputs::write_category`], in a loop of its own (the category files
/// are most of what an import writes, and a generic record of optional
/// cells cost a fifth of the writer's time). `flush` is called after each
/// row.
fn csv_rows(
    buf: &mut Vec<u8>,
    mut flush: impl FnMut(&mut Vec<u8>) -> Result<()>,
    rows: &[RowOut],
    cells: &Cells,
) -> Result<()> {
    let Cells {
        job,
        matched_ids,
        columns,
        fields,
        plain,
        excel_safe,
        matches,
    } = *cells;
    let row_numbers = job.norm.batch.column(0).as_primitive::<UInt64Type>();
    let mut number = itoa::Buffer::new();
    for (k, out) in rows.iter().enumerate() {
        // The cells of the rows a block ahead: each column is read in a
        // run of its own (offsets and bytes), which the CPU's own
        // prefetcher does not follow for a dozen columns at once.
        if k % PREFETCH_ROWS == 0 {
            let ahead = &rows[(k + PREFETCH_ROWS).min(rows.len())..(k + 2 * PREFETCH_ROWS).min(rows.len())];
            // Rows come in batch order; a block that did not would only
            // go without its prefetch.
            if let (Some(first), Some(last)) = (ahead.first(), ahead.last())
                && first.index <= last.index
            {
                let (first, last) = (first.index as usize, last.index as usize + 1);
                for column in columns {
                    let offsets = column.value_offsets();
                    crate::prefetch::slice(&offsets[first..=last]);
                    let data = column.value_data();
                    crate::prefetch::slice(&data[offsets[first] as usize..offsets[last] as usize]);
                }
            }
        }
        let i = out.index as usize;
        buf.extend_from_slice(number.format(row_numbers.value(i)).as_bytes());
        buf.push(b',');
        buf.extend_from_slice(out.action.as_str().as_bytes());
        if matches {
            buf.push(b',');
            write_matched_ids(buf, out.matched(matched_ids));
            buf.push(b',');
            buf.extend_from_slice(out.matched_by.map_or("", MatchedBy::as_str).as_bytes());
        }
        for ((column, (_, is_phone)), &plain) in columns.iter().zip(fields).zip(plain) {
            buf.push(b',');
            if column.is_valid(i) {
                let (data, offsets) = (column.value_data(), column.value_offsets());
                let (start, end) = (offsets[i] as usize, offsets[i + 1] as usize);
                if plain && !(excel_safe && !is_phone && is_formula_bytes(&data[start..end])) {
                    push_short(buf, data, start, end);
                } else {
                    let cell = safe_cell(excel_safe && !is_phone, column.value(i));
                    push_csv_field(buf, cell.as_bytes());
                }
            }
        }
        buf.push(b'\n');
        flush(buf)?;
    }
    Ok(())
}

/// Rows of a category file whose cells are prefetched together, a block
/// ahead of the row being written (the writer's own samples at 10M x 10M:
/// 4.9% -> 3.9% of the import's; 64 rows: 4.2%).
const PREFETCH_ROWS: usize = 32;

/// Appends `data[start..end]`. Most cells are short, and a copy of a
/// length known only at run time is a call to `memcpy` each; a cell of up
/// to [`SHORT`] bytes with that many bytes after its start is copied as a
/// block of [`SHORT`] bytes (a couple of vector moves) and the excess cut
/// off. (The writer's row loop was a tenth of a 10M-row import's CPU, a
/// third of it in those calls; what this saves alone was inside the
/// machine's noise.)
#[inline]
fn push_short(buf: &mut Vec<u8>, data: &[u8], start: usize, end: usize) {
    match data.get(start..start + SHORT) {
        Some(block) if end - start <= SHORT => {
            let len = buf.len() + (end - start);
            buf.extend_from_slice(block);
            buf.truncate(len);
        }
        _ => buf.extend_from_slice(&data[start..end]),
    }
}

/// The block [`push_short`] copies.
const SHORT: usize = 32;

/// The `matched_ids` cell: the ids of the matched contacts, `;`-separated.
fn write_matched_ids(buf: &mut Vec<u8>, ids: &[i64]) {
    let mut number = itoa::Buffer::new();
    for (k, &id) in ids.iter().enumerate() {
        if k > 0 {
            buf.push(b';');
        }
        buf.extend_from_slice(number.format(id).as_bytes());
    }
}

/// The cell as written: with `--excel-safe`, a formula-like value gets a `'`.
fn safe_cell(excel_safe: bool, value: &str) -> Cow<'_, str> {
    if excel_safe && is_formula(value) {
        Cow::Owned(format!("'{value}"))
    } else {
        Cow::Borrowed(value)
    }
}

/// Whether a spreadsheet would read the cell as a formula.
pub fn is_formula(value: &str) -> bool {
    is_formula_bytes(value.as_bytes())
}

fn is_formula_bytes(value: &[u8]) -> bool {
    matches!(value.first(), Some(b'=' | b'+' | b'-' | b'@'))
}

/// The output directory for an import name that came from the user or a
/// file name: `kontakt-out/<name>` with every character that could leave
/// that directory (separators, `..`, control characters) replaced. A dry
/// run's is `kontakt-out/<name>.dry-run`, so that it never writes over the
/// outputs of the real import of that name, their only record of what it
/// changed.
pub fn default_out_dir(name: &str, dry_run: bool) -> PathBuf {
    let mut dir = safe_component(name);
    if dry_run {
        dir.push_str(".dry-run");
    }
    Path::new("kontakt-out").join(dir)
}

/// A single, harmless path component made from any text.
pub fn safe_component(name: &str) -> String {
    let mut safe: String = name
        .chars()
        .map(|c| match c {
            '/' | '\\' | ':' | '*' | '?' | '"' | '<' | '>' | '|' => '_',
            c if c.is_control() => '_',
            c => c,
        })
        .collect();
    // Only dots (".", "..") or empty would name the directory or its parent.
    if safe.trim_matches('.').is_empty() {
        safe = format!("import{}", "_".repeat(safe.len()));
    }
    if safe.starts_with('.') {
        safe.replace_range(0..1, "_");
    }
    safe
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn names_never_leave_the_output_root() {
        let names = ["../../x", "..", ".", "a/b", "a\\b", "..\\..\\x", "", "/etc/passwd"];
        for (name, dry_run) in names.into_iter().flat_map(|n| [(n, false), (n, true)]) {
            let dir = default_out_dir(name, dry_run);
            let component = dir.strip_prefix("kontakt-out").expect("under kontakt-out");
            assert_eq!(component.components().count(), 1, "{name:?} -> {dir:?}");
            let c = component.to_str().expect("utf-8");
            assert!(
                c != "." && c != ".." && !c.contains('/') && !c.contains('\\'),
                "{name:?} -> {c:?}"
            );
        }
        assert_eq!(safe_component("kontakty 2026"), "kontakty 2026");
        assert_eq!(safe_component("../../x"), "_._.._x");
        assert_eq!(default_out_dir("leads", true), Path::new("kontakt-out/leads.dry-run"));
        assert_eq!(default_out_dir("..", true), Path::new("kontakt-out/import__.dry-run"));
    }

    #[test]
    fn short_cells_are_copied_exactly_wherever_they_are_in_the_buffer() {
        // Cells of every length up to past SHORT, starting everywhere, so
        // some end at the buffer's end with fewer than SHORT bytes after
        // their start (the plain copy) and some have more (the block copy).
        let data: Vec<u8> = (0..100u8).map(|b| b'a' + b % 26).collect();
        for start in 0..data.len() {
            for end in start..=data.len().min(start + SHORT + 3) {
                let mut buf = b"x,".to_vec();
                push_short(&mut buf, &data, start, end);
                assert_eq!(&buf[2..], &data[start..end], "{start}..{end}");
                assert_eq!(&buf[..2], b"x,");
            }
        }
    }

    #[test]
    fn csv_fields_are_written_as_the_csv_crate_writes_them() {
        let fields = [
            "plain",
            "",
            "a,b",
            "say \"hi\"",
            "\"",
            "line one\nline two",
            "cr\r",
            "=1+2",
            " spaced ",
            "Ødegård",
        ];
        let mut ours = Vec::new();
        for (i, f) in fields.iter().enumerate() {
            if i > 0 {
                ours.push(b',');
            }
            push_csv_field(&mut ours, f.as_bytes());
        }
        ours.push(b'\n');
        let mut theirs = csv::Writer::from_writer(Vec::new());
        theirs.write_record(fields).expect("write");
        assert_eq!(
            String::from_utf8(ours).expect("utf-8"),
            String::from_utf8(theirs.into_inner().expect("flush")).expect("utf-8")
        );
    }

    #[test]
    fn formulas_are_recognized() {
        for v in ["=1+2", "+420", "-5", "@SUM(A1)"] {
            assert!(is_formula(v), "{v}");
        }
        for v in ["", "a=b", "420", " =1"] {
            assert!(!is_formula(v), "{v}");
        }
    }
}
