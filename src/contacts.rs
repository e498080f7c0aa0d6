//! `kontakt contacts`: list, show, add, delete and export stored contacts
//! (SPEC, Export).
//!
//! Every read goes through one column list ([`columns`]): `id`, `type`,
//! `created_at`, `updated_at`, `import_id`, the standard fields in SPEC order
//! with `tags` joined by `;`, then the `custom.NAME` columns in the order
//! they were created. Filters (`--import`, `--tag`, `--type`) become SQL
//! literals only after they are checked or quoted.

use std::path::Path;

use duckdb::arrow::array::{ArrayRef, UInt64Array};
use duckdb::arrow::record_batch::RecordBatch;

use crate::apply::{Commit, GroupCounts, Master, store_fields};
use crate::error::{Error, Result};
use crate::fields::STANDARD_FIELDS;
use crate::groups;
use crate::map::{self, ContactType, MappingOptions};
use crate::normalize::{NormalizeSettings, Plan};
use crate::read::{RawBatch, raw_schema};
use crate::store::{Store, literal, quote_ident};

/// Which contacts a command works on.
#[derive(Debug, Clone, Default)]
pub struct Filter {
    /// An import id or name: only the contacts it created.
    pub import: Option<String>,
    /// Contacts carrying every one of these tags.
    pub tags: Vec<String>,
    pub contact_type: Option<ContactType>,
}

impl Filter {
    /// The `WHERE` clause (empty when nothing filters). An unknown import
    /// is a usage error.
    fn sql(&self, store: &Store) -> Result<String> {
        let mut conditions = Vec::new();
        if let Some(import) = &self.import {
            let group = groups::find(store, import)?;
            conditions.push(format!("import_id = {}", group.id));
        }
        for tag in &self.tags {
            conditions.push(format!("list_contains(tags, {})", literal(tag)));
        }
        if let Some(t) = self.contact_type {
            conditions.push(format!("type = {}", literal(t.name())));
        }
        Ok(if conditions.is_empty() {
            String::new()
        } else {
            format!(" WHERE {}", conditions.join(" AND "))
        })
    }
}

/// The exported columns as SQL expressions, each named as SPEC names it.
/// `text` casts every value to text (for printing); otherwise columns keep
/// their store types (for Parquet) except `tags`, which is joined.
fn columns(store: &Store, text: bool) -> Result<Vec<String>> {
    let stored = store.columns("contacts")?;
    let mut names: Vec<&str> = vec!["id", "type", "created_at", "updated_at", "import_id"];
    names.extend(STANDARD_FIELDS.iter().map(|f| f.name));
    names.extend(stored.iter().map(String::as_str).filter(|c| c.starts_with("custom.")));
    Ok(names
        .into_iter()
        .map(|name| {
            let q = quote_ident(name);
            if name == "tags" {
                format!("array_to_string({q}, ';') AS {q}")
            } else if text {
                format!("CAST({q} AS VARCHAR) AS {q}")
            } else {
                q
            }
        })
        .collect())
}

/// The contacts a filter selects, as a query ordered by id.
fn select(store: &Store, filter: &Filter, text: bool) -> Result<String> {
    Ok(format!(
        "SELECT {} FROM contacts{} ORDER BY contacts.id",
        columns(store, text)?.join(", "),
        filter.sql(store)?
    ))
}

/// Export file formats.
#[derive(Debug, Clone, Copy, PartialEq, Eq, clap::ValueEnum)]
pub enum ExportFormat {
    Csv,
    Parquet,
    /// An Excel workbook: one sheet, a header row, every value a text cell.
    Xlsx,
}

impl ExportFormat {
    /// Parquet for a `.parquet` file, a workbook for `.xlsx`, else CSV.
    pub fn of_path(path: &Path) -> ExportFormat {
        match path.extension().and_then(|e| e.to_str()) {
            Some(e) if e.eq_ignore_ascii_case("parquet") => ExportFormat::Parquet,
            Some(e) if e.eq_ignore_ascii_case("xlsx") => ExportFormat::Xlsx,
            _ => ExportFormat::Csv,
        }
    }
}

/// The UTF-8 byte order mark `--bom` puts before CSV text (spreadsheet
/// programs read a file without one in the system's legacy code page).
pub const BOM: &[u8] = b"\xEF\xBB\xBF";

/// Rows a worksheet holds besides its header (Excel's limit).
const XLSX_MAX_ROWS: i64 = 1_048_575;

/// Writes the selected contacts to `path` (`-`: CSV on standard output);
/// returns how many. `bom` starts CSV text with a UTF-8 BOM.
pub fn export(store: &Store, filter: &Filter, path: &Path, format: ExportFormat, bom: bool) -> Result<usize> {
    let stdout = path == Path::new("-");
    match format {
        ExportFormat::Csv if stdout => {
            let out = std::io::stdout().lock();
            write_csv(store, filter, std::io::BufWriter::new(out), bom, path)
        }
        _ if stdout => Err(Error::usage(format!(
            "-o -: standard output takes CSV only, not {}",
            format_name(format)
        ))),
        ExportFormat::Csv if bom => {
            let file = std::fs::File::create(path).map_err(|e| Error::io(path, e))?;
            write_csv(store, filter, std::io::BufWriter::new(file), bom, path)
        }
        ExportFormat::Xlsx => write_xlsx(store, filter, path),
        ExportFormat::Csv | ExportFormat::Parquet => copy(store, filter, path, format),
    }
}

fn format_name(format: ExportFormat) -> &'static str {
    match format {
        ExportFormat::Csv => "CSV",
        ExportFormat::Parquet => "Parquet",
        ExportFormat::Xlsx => "a workbook",
    }
}

/// DuckDB's COPY streams the query straight into the file (no copy
/// through kontakt).
fn copy(store: &Store, filter: &Filter, path: &Path, format: ExportFormat) -> Result<usize> {
    let path_text = path
        .to_str()
        .ok_or_else(|| Error::usage(format!("-o {}: the path is not valid UTF-8", path.display())))?;
    let options = match format {
        ExportFormat::Parquet => "FORMAT parquet, COMPRESSION zstd",
        _ => "FORMAT csv, HEADER true",
    };
    let sql = format!(
        "COPY ({}) TO {} ({options})",
        select(store, filter, false)?,
        literal(path_text)
    );
    store
        .connection()
        .execute(&sql, [])
        .map_err(|e| export_error(store, path, &e.to_string()))
}

fn export_error(store: &Store, path: &Path, text: &str) -> Error {
    let shown = if path == Path::new("-") {
        "standard output".to_string()
    } else {
        path.display().to_string()
    };
    Error::Store {
        path: store.path().display().to_string(),
        message: format!("exporting to {shown}: {}", text.lines().next().unwrap_or(text)),
    }
}

/// Streams the selected contacts as text, row by row, to `each` (the
/// column names first).
fn for_each_row(
    store: &Store,
    filter: &Filter,
    mut each: impl FnMut(&[Option<String>]) -> Result<()>,
) -> Result<usize> {
    let sql = select(store, filter, true)?;
    let conn = store.connection();
    let mut stmt = conn.prepare(&sql).map_err(|e| store.error(&e))?;
    let mut result = stmt.query([]).map_err(|e| store.error(&e))?;
    let names: Vec<Option<String>> = result
        .as_ref()
        .map(|s| s.column_names())
        .unwrap_or_default()
        .into_iter()
        .map(Some)
        .collect();
    each(&names)?;
    let mut n = 0;
    let mut values: Vec<Option<String>> = Vec::with_capacity(names.len());
    while let Some(row) = result.next().map_err(|e| store.error(&e))? {
        values.clear();
        for i in 0..names.len() {
            values.push(row.get::<_, Option<String>>(i).map_err(|e| store.error(&e))?);
        }
        each(&values)?;
        n += 1;
    }
    Ok(n)
}

fn write_csv(store: &Store, filter: &Filter, mut out: impl std::io::Write, bom: bool, path: &Path) -> Result<usize> {
    let io_err = |e: std::io::Error| {
        if path == Path::new("-") {
            export_error(store, path, &e.to_string())
        } else {
            Error::io(path, e)
        }
    };
    if bom {
        out.write_all(BOM).map_err(io_err)?;
    }
    let mut writer = csv::Writer::from_writer(out);
    let n = for_each_row(store, filter, |values| {
        writer
            .write_record(values.iter().map(|v| v.as_deref().unwrap_or("")))
            .map_err(|e| io_err(e.into()))
    })?;
    writer.flush().map_err(io_err)?;
    Ok(n)
}

/// A workbook of text cells, written row by row (constant memory: the
/// sheet goes to a temporary file, not into memory).
fn write_xlsx(store: &Store, filter: &Filter, path: &Path) -> Result<usize> {
    use rust_xlsxwriter::{Format, Workbook};
    let total = count(store, filter)?;
    if total > XLSX_MAX_ROWS {
        return Err(Error::usage(format!(
            "-o {}: {total} contacts do not fit one worksheet (at most {XLSX_MAX_ROWS} rows); export CSV or Parquet, or filter",
            path.display()
        )));
    }
    let xlsx_err = |e: rust_xlsxwriter::XlsxError| Error::io(path, std::io::Error::other(e.to_string()));
    let mut workbook = Workbook::new();
    let sheet = workbook.add_worksheet_with_constant_memory().map_err(xlsx_err)?;
    sheet.set_name("Contacts").map_err(xlsx_err)?;
    let bold = Format::new().set_bold();
    let mut line: u32 = 0;
    let n = for_each_row(store, filter, |values| {
        for (col, value) in values.iter().enumerate() {
            let Some(value) = value.as_deref().filter(|v| !v.is_empty()) else {
                continue;
            };
            let written = if line == 0 {
                sheet.write_string_with_format(line, col as u16, value, &bold)
            } else {
                sheet.write_string(line, col as u16, value)
            };
            written.map_err(xlsx_err)?;
        }
        line += 1;
        Ok(())
    })?;
    workbook.save(path).map_err(xlsx_err)?;
    Ok(n)
}

/// Rows of text: the column names, then each contact's values (`None` for
/// empty), at most `limit` contacts (0: all).
pub type Rows = (Vec<String>, Vec<Vec<Option<String>>>);

/// The selected contacts as text.
pub fn list(store: &Store, filter: &Filter, limit: usize) -> Result<Rows> {
    let mut sql = select(store, filter, true)?;
    if limit > 0 {
        sql.push_str(&format!(" LIMIT {limit}"));
    }
    rows(store, &sql)
}

/// The number of contacts a filter selects.
pub fn count(store: &Store, filter: &Filter) -> Result<i64> {
    store
        .connection()
        .query_row(
            &format!("SELECT count(*) FROM contacts{}", filter.sql(store)?),
            [],
            |r| r.get(0),
        )
        .map_err(|e| store.error(&e))
}

/// One contact as text; a usage error when there is none with that id.
pub fn show(store: &Store, id: i64) -> Result<(Vec<String>, Vec<Option<String>>)> {
    let sql = format!(
        "SELECT {} FROM contacts WHERE id = {id}",
        columns(store, true)?.join(", ")
    );
    let (names, mut found) = rows(store, &sql)?;
    let values = found
        .pop()
        .ok_or_else(|| Error::usage(format!("no contact with id {id}")))?;
    Ok((names, values))
}

fn rows(store: &Store, sql: &str) -> Result<Rows> {
    let conn = store.connection();
    let mut stmt = conn.prepare(sql).map_err(|e| store.error(&e))?;
    let mut result = stmt.query([]).map_err(|e| store.error(&e))?;
    let mut values = Vec::new();
    while let Some(row) = result.next().map_err(|e| store.error(&e))? {
        let width = row.as_ref().column_count();
        values.push(
            (0..width)
                .map(|i| row.get::<_, Option<String>>(i))
                .collect::<std::result::Result<Vec<_>, _>>()
                .map_err(|e| store.error(&e))?,
        );
    }
    let names = result.as_ref().map(|s| s.column_names()).unwrap_or_default();
    Ok((names, values))
}

/// Adds one contact from `FIELD=VALUE` pairs, normalized and validated as
/// an import would (`--set` rules: an invalid value is a usage error).
/// Returns the new contact's id. It belongs to no import.
pub fn add(
    store: &Store,
    pairs: &[String],
    tags: &[String],
    contact_type: ContactType,
    settings: NormalizeSettings,
) -> Result<i64> {
    if pairs.is_empty() && tags.is_empty() {
        return Err(Error::usage("give at least one FIELD=VALUE"));
    }
    if let Some(pair) = pairs.iter().find(|p| p.split('=').next().map(str::trim) == Some("id")) {
        return Err(Error::usage(format!("{pair}: the store assigns ids")));
    }
    let mapping = map::resolve(
        &[],
        &MappingOptions {
            sets: pairs.to_vec(),
            tags: tags.to_vec(),
            contact_type,
            ..MappingOptions::default()
        },
    )?;
    let plan = Plan::new(&mapping, settings)?;
    let rows: ArrayRef = std::sync::Arc::new(UInt64Array::from(vec![1u64]));
    let raw = RawBatch {
        batch: RecordBatch::try_new(raw_schema(&[]), vec![rows]).map_err(|e| Error::usage(e.to_string()))?,
        bad_rows: Vec::new(),
    };
    let normalized = plan.normalize(&raw);
    if let Some(failed) = normalized.failed.first() {
        return Err(Error::usage(format!("{}: {}", failed.reason.as_str(), failed.detail)));
    }
    let names: Vec<String> = plan.field_names().map(str::to_string).collect();
    let fields = store_fields(&names, &mapping.tags);
    // The import's own transaction, without an import group: the same
    // typed insert (consents, dates, tags) and the same id counter.
    let added =
        Commit::begin(store, None, contact_type.name(), Master::File, fields, mapping.tags).and_then(|mut commit| {
            commit.insert(&normalized.batch, &[0])?;
            let id = commit.first_id();
            commit.finish(&mut GroupCounts::default(), "")?;
            Ok(id)
        });
    if added.is_err() {
        let _ = store.execute_batch("ROLLBACK");
    }
    added
}

/// Deletes contacts by id, in one transaction; an unknown id is a usage
/// error and nothing is deleted.
pub fn delete(store: &Store, ids: &[i64]) -> Result<usize> {
    if ids.is_empty() {
        return Err(Error::usage("give at least one contact id"));
    }
    let list = ids.iter().map(i64::to_string).collect::<Vec<_>>().join(", ");
    let missing: Vec<i64> = {
        let sql = format!("SELECT x FROM unnest([{list}]) t(x) WHERE x NOT IN (SELECT id FROM contacts) ORDER BY x");
        let conn = store.connection();
        let mut stmt = conn.prepare(&sql).map_err(|e| store.error(&e))?;
        stmt.query_map([], |r| r.get(0))
            .map_err(|e| store.error(&e))?
            .collect::<std::result::Result<_, _>>()
            .map_err(|e| store.error(&e))?
    };
    if !missing.is_empty() {
        let missing: Vec<String> = missing.iter().map(i64::to_string).collect();
        return Err(Error::usage(format!(
            "no contact with id {}; nothing deleted",
            missing.join(", ")
        )));
    }
    store.execute(&format!("DELETE FROM contacts WHERE id IN ({list})"), [])
}
