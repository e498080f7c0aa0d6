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

mod csv_format;
mod direct;
mod parquet_file;
mod summary;

use std::borrow::Cow;
use std::fs::File;
use std::path::{Path, PathBuf};

use arrow::array::{Array, StringArray};

pub(crate) use csv_format::push_csv_field;
use csv_format::{Cells, csv_rows, needs_quoting};
use direct::DirectFile;
use parquet_file::ParquetFile;
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

/// A CSV file of rows of another command (`lists add`'s `added.csv`, …),
/// written record by record as the import's row files are (quoting,
/// `O_DIRECT` blocks, an optional BOM).
pub struct RowWriter(RowFile);

impl RowWriter {
    /// Creates `path` with its header row.
    pub fn create(path: PathBuf, header: &[&str], bom: bool) -> Result<RowWriter> {
        RowFile::create(path, header, OutputFormat::Csv, bom).map(RowWriter)
    }

    /// Writes one record; a `None` cell is empty.
    pub fn record<'a>(&mut self, cells: impl IntoIterator<Item = Option<Cow<'a, str>>>) -> Result<()> {
        self.0.record(cells, &[])
    }

    /// Flushes the file.
    pub fn finish(self) -> Result<()> {
        self.0.finish()
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
        // A summary.json left by an earlier run would describe these new
        // row files until this run writes its own (a cancelled run never
        // does).
        let stale = dir.join("summary.json");
        if stale.exists() {
            std::fs::remove_file(&stale).map_err(|e| Error::io(&stale, e))?;
        }
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
        let csv = matches!(self.failed, RowFile::Csv { .. });
        let plain: Vec<bool> = job
            .norm
            .output_columns()
            .map(|column| csv && !needs_quoting(column.value_data()))
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
        let rows = &job.categories[category as usize];
        let row_numbers = job.norm.row_numbers();
        let columns: Vec<&StringArray> = job.norm.output_columns().collect();
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
    fn formulas_are_recognized() {
        for v in ["=1+2", "+420", "-5", "@SUM(A1)"] {
            assert!(is_formula(v), "{v}");
        }
        for v in ["", "a=b", "420", " =1"] {
            assert!(!is_formula(v), "{v}");
        }
    }
}
