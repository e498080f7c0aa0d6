//! `kontakt contacts`: list, show, add, delete and export stored contacts
//! (SPEC, Export).
//!
//! Every read shows the store's one column list
//! ([`crate::store::contacts::column_names`]): `id`, `type`, `created_at`,
//! `updated_at`, `import_id`, the standard fields in SPEC order with `tags`
//! joined by `;`, then the `custom.NAME` columns in the order they were
//! created. Filters (`--import`, `--tag`, `--type`, `--email`, `--phone`)
//! reach the store as a [`ContactFilter`], the import resolved to its id.

use std::path::Path;

use arrow::array::{ArrayRef, UInt64Array};
use arrow::record_batch::RecordBatch;

use crate::apply::{Commit, GroupCounts, Master, store_fields};
use crate::config::Config;
use crate::error::{Error, Result};
use crate::fields::KEY_FIELDS;
use crate::groups;
use crate::map::{self, ContactType, MappingOptions, Target};
use crate::normalize::stage::{kind_noun, normalize_one};
use crate::normalize::{NormalizeSettings, Plan, country};
use crate::read::{RawBatch, raw_schema};
use crate::store::Store;
use crate::store::contacts::{ContactFilter, ContactKey, ContactRows};
use crate::store::export::FileFormat;

/// Which contacts a command works on.
#[derive(Debug, Clone, Default)]
pub struct Filter {
    /// An import id or name: only the contacts it created.
    pub import: Option<String>,
    /// Contacts carrying every one of these tags.
    pub tags: Vec<String>,
    pub contact_type: Option<ContactType>,
    /// Contacts with this email (normalized, see [`normalized`]).
    pub email: Option<String>,
    /// Contacts with this phone or mobile number (normalized).
    pub phone: Option<String>,
    /// A list's name: only its members.
    pub list: Option<String>,
    /// With `list`: each contact's membership follows its columns (`lists
    /// export`).
    pub membership: bool,
}

impl Filter {
    /// The filter as the store takes it: the import resolved to its group's
    /// id. An unknown import is a usage error.
    fn resolve(&self, store: &Store) -> Result<ContactFilter> {
        let import_id = match &self.import {
            Some(import) => Some(groups::find(store, import)?.id),
            None => None,
        };
        let list_id = match &self.list {
            Some(list) => Some(crate::lists::find(store, list)?.id),
            None => None,
        };
        Ok(ContactFilter {
            import_id,
            tags: self.tags.clone(),
            contact_type: self.contact_type,
            email: self.email.clone(),
            phone: self.phone.clone(),
            list_id,
            membership: self.membership,
        })
    }
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
    /// Parquet for a `.parquet` file, a workbook for `.xlsx`, else CSV;
    /// a usage error for the extension of a format kontakt does not
    /// write (`.json`, `.xls`, `.gz`, …), where CSV under that name would
    /// mislead whatever reads the file next.
    pub fn of_path(path: &Path) -> Result<ExportFormat> {
        const OTHERS: &[&str] = &[
            "json", "jsonl", "ndjson", "xml", "xls", "xlsm", "xlsb", "ods", "tsv", "tab", "gz", "zip", "bz2", "xz",
            "zst",
        ];
        match path.extension().and_then(|e| e.to_str()) {
            Some(e) if e.eq_ignore_ascii_case("parquet") => Ok(ExportFormat::Parquet),
            Some(e) if e.eq_ignore_ascii_case("xlsx") => Ok(ExportFormat::Xlsx),
            Some(e) if OTHERS.iter().any(|o| e.eq_ignore_ascii_case(o)) => Err(Error::usage(format!(
                "-o {}: an export is CSV, Parquet (.parquet) or a workbook (.xlsx), not .{e}; name the file .csv, or \
                 give --format csv to write CSV under this name",
                path.display()
            ))),
            _ => Ok(ExportFormat::Csv),
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
        _ if stdout && format != ExportFormat::Csv => Err(Error::usage(format!(
            "-o -: standard output takes CSV only, not {}",
            format_name(format)
        ))),
        ExportFormat::Csv if stdout || bom => csv_through_temp(store, filter, path, bom),
        ExportFormat::Xlsx => write_xlsx(store, filter, path),
        ExportFormat::Csv => copy(store, filter, path, path, FileFormat::Csv),
        ExportFormat::Parquet => copy(store, filter, path, path, FileFormat::Parquet),
    }
}

/// A file removed when dropped, whatever happened.
struct TempFile(std::path::PathBuf);

impl Drop for TempFile {
    fn drop(&mut self) {
        let _ = std::fs::remove_file(&self.0);
    }
}

/// CSV on standard output or behind a BOM. The store's export is the one
/// CSV writer (quoting, empty text against NULL), so every CSV export has
/// the same bytes: it writes a temporary file, which is then copied out. The
/// temporary file of a `--bom` export lies beside the target (same file
/// system, and no space needed elsewhere).
fn csv_through_temp(store: &Store, filter: &Filter, path: &Path, bom: bool) -> Result<usize> {
    use std::io::Write;
    let stdout = path == Path::new("-");
    let temp = TempFile(if stdout {
        std::env::temp_dir().join(format!("kontakt-export-{}.csv", std::process::id()))
    } else {
        let name = path.file_name().map(|n| n.to_string_lossy()).unwrap_or_default();
        let dir = path
            .parent()
            .filter(|p| !p.as_os_str().is_empty())
            .unwrap_or(Path::new("."));
        dir.join(format!(".{name}.{}.tmp", std::process::id()))
    });
    let n = copy(store, filter, &temp.0, path, FileFormat::Csv)?;
    let mut text = std::fs::File::open(&temp.0).map_err(|e| Error::io(&temp.0, e))?;
    let mut write = |out: &mut dyn Write| -> std::io::Result<()> {
        if bom {
            out.write_all(BOM)?;
        }
        std::io::copy(&mut text, out)?;
        out.flush()
    };
    if stdout {
        write(&mut std::io::stdout().lock()).map_err(|e| export_error(store, path, &e.to_string()))?;
    } else {
        let file = std::fs::File::create(path).map_err(|e| Error::io(path, e))?;
        write(&mut std::io::BufWriter::new(file)).map_err(|e| Error::io(path, e))?;
    }
    Ok(n)
}

fn format_name(format: ExportFormat) -> &'static str {
    match format {
        ExportFormat::Csv => "CSV",
        ExportFormat::Parquet => "Parquet",
        ExportFormat::Xlsx => "a workbook",
    }
}

/// The store writes the selected contacts into the file `to` itself (no
/// copy through kontakt); errors name `shown`, the path the user gave.
fn copy(store: &Store, filter: &Filter, to: &Path, shown: &Path, format: FileFormat) -> Result<usize> {
    let path_text = to
        .to_str()
        .ok_or_else(|| Error::usage(format!("-o {}: the path is not valid UTF-8", shown.display())))?;
    store.export_contacts(&filter.resolve(store)?, format, path_text, |message| {
        export_error(store, shown, message)
    })
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

/// A workbook of text cells, written row by row (constant memory: the
/// sheet goes to a temporary file, not into memory).
fn write_xlsx(store: &Store, filter: &Filter, path: &Path) -> Result<usize> {
    use rust_xlsxwriter::{Format, Workbook};
    let filter = filter.resolve(store)?;
    let total = store.count_contacts(&filter)?;
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
    let n = store.for_each_contact(&filter, |values| {
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
/// empty).
pub type Rows = ContactRows;

/// The selected contacts as text, at most `limit` of them (0: all).
pub fn list(store: &Store, filter: &Filter, limit: usize) -> Result<Rows> {
    store.find_contacts(&filter.resolve(store)?, limit)
}

/// The number of contacts a filter selects.
pub fn count(store: &Store, filter: &Filter) -> Result<i64> {
    store.count_contacts(&filter.resolve(store)?)
}

/// The contacts `contacts show` finds: by id (a whole number that is a
/// contact's id), else by normalized email (the text has an `@`), else by
/// normalized phone or mobile; oldest first. None is a usage error.
pub fn show(store: &Store, query: &str, settings: &NormalizeSettings) -> Result<Rows> {
    let query = query.trim();
    let id = query.parse::<i64>().ok();
    if let Some(id) = id {
        let found = store.contacts_by(ContactKey::Id(id))?;
        if !found.1.is_empty() {
            return Ok(found);
        }
    }
    let (field, value) = if query.contains('@') {
        ("email", normalized("email", query, settings)?.unwrap_or_default())
    } else {
        match normalized("phone", query, settings) {
            Ok(phone) => ("phone", phone.unwrap_or_default()),
            Err(_) if id.is_some() => return Err(Error::usage(format!("no contact with id {query}"))),
            Err(e) => return Err(e),
        }
    };
    let key = if field == "email" {
        ContactKey::Email(&value)
    } else {
        ContactKey::Phone(&value)
    };
    let found = store.contacts_by(key)?;
    if found.1.is_empty() {
        let what = if id.is_some() { "id or phone" } else { field };
        return Err(Error::usage(format!("no contact with {what} {query}")));
    }
    Ok(found)
}

/// What `contacts add` did.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Added {
    Created(i64),
    Updated(i64),
    /// Several contacts have the key's value (the key named): the default
    /// `--on-multiple-match skip`, nothing changed.
    Skipped(&'static str, Vec<i64>),
}

/// A usage error for a value the user typed: `email: "foo" is not a valid
/// email (no @)`.
fn invalid(target: &Target, value: &str, why: &str) -> Error {
    Error::usage(format!(
        "{}: {value:?} is not a valid {} ({why})",
        target.name(),
        kind_noun(target)
    ))
}

/// A value typed for `field`, normalized as an import normalizes it
/// (`None`: empty). An invalid value is a usage error naming the field.
pub fn normalized(field: &str, value: &str, settings: &NormalizeSettings) -> Result<Option<String>> {
    let target = Target::parse(field).map_err(|e| Error::usage(format!("{field}={value}: {e}")))?;
    let mut scratch = String::new();
    normalize_one(&target, value, None, settings, &mut scratch)
        .map(|v| v.map(str::to_string))
        .map_err(|why| invalid(&target, value, why))
}

/// Adds one contact from `FIELD=VALUE` pairs: a one-row import with the
/// store's default keys (`config primary-key` and `secondary-key`, else
/// email; `id` and `none` match nothing here) and actions: a contact with
/// that key's value is updated, file values winning and tags added; none:
/// one is created; several: skipped. The secondary key is used when the
/// primary one is not given or finds nothing. Without a key value a
/// contact is created. Values are normalized and checked as on import; an
/// invalid one is a usage error naming the field as typed.
pub fn add(
    store: &Store,
    pairs: &[String],
    tags: &[String],
    contact_type: ContactType,
    settings: NormalizeSettings,
    config: &Config,
) -> Result<Added> {
    let unique = config.unique.as_deref();
    let keys: Vec<&'static str> = [
        Some(config.primary_key.as_deref().unwrap_or("email")),
        config.secondary_key.as_deref(),
    ]
    .into_iter()
    .flatten()
    .filter_map(|k| KEY_FIELDS.iter().copied().find(|f| *f == k))
    .collect();
    if pairs.is_empty() && tags.is_empty() {
        return Err(Error::usage("give at least one FIELD=VALUE"));
    }
    let tags = map::checked_tags(tags)?;
    let mut parsed: Vec<(Target, &str)> = Vec::new();
    for pair in pairs {
        let (field, value) = pair
            .split_once('=')
            .ok_or_else(|| Error::usage(format!("{pair:?}: expected FIELD=VALUE")))?;
        let target = Target::parse(field.trim()).map_err(|e| Error::usage(format!("{pair}: {e}")))?;
        if target == Target::Id {
            return Err(Error::usage(format!("{pair}: the store assigns ids")));
        }
        if let Some((other, _)) = parsed.iter().find(|(t, _)| t.field_name() == target.field_name()) {
            return Err(Error::usage(format!(
                "{pair}: {} is given twice (also as {})",
                target.field_name(),
                other.name()
            )));
        }
        parsed.push((target, value));
    }
    let region = parsed
        .iter()
        .find(|(t, _)| t.name() == "country")
        .and_then(|(_, v)| country::region_of(v));
    let mut key_values: Vec<(&str, String)> = Vec::new();
    let mut unique_value = None;
    for (target, value) in &parsed {
        let mut scratch = String::new();
        let normal =
            normalize_one(target, value, region, &settings, &mut scratch).map_err(|why| invalid(target, value, why))?;
        if let (Some(key), Some(normal)) = (keys.iter().find(|k| **k == target.name()), normal) {
            key_values.push((key, normal.to_string()));
        }
        if Some(target.name().as_str()) == unique {
            unique_value = normal.map(str::to_string);
        }
    }
    let mapping = map::resolve(
        &[],
        &MappingOptions {
            sets: parsed.iter().map(|(t, v)| format!("{}={v}", t.name())).collect(),
            tags,
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
    // An import matches only within its contact type: a person's email
    // never updates a company, nor the other way round.
    let mut matched = Vec::new();
    for key in &keys {
        if let Some((_, value)) = key_values.iter().find(|(k, _)| k == key) {
            matched = store.contact_ids_with_key(key, value, contact_type)?;
            if !matched.is_empty() {
                if matched.len() > 1 {
                    return Ok(Added::Skipped(key, matched));
                }
                break;
            }
        }
    }
    // The store's `unique` setting, as an import checks it.
    if let (Some(field), Some(value)) = (unique, &unique_value)
        && let Some(other) = store
            .contact_ids_with_value(field, value)?
            .into_iter()
            .find(|id| matched.first() != Some(id))
    {
        return Err(Error::usage(format!(
            "not_unique: {field} {value:?} belongs to contact {other} (the store's setting `unique {field}`)"
        )));
    }
    let names: Vec<String> = plan.field_names().map(str::to_string).collect();
    let fields = store_fields(&names, &mapping.tags);
    // The import's own transaction, without an import group: the same
    // typed insert and update (consents, dates, tags) and id counter.
    let added =
        Commit::begin(store, None, contact_type.name(), Master::File, fields, mapping.tags).and_then(|mut commit| {
            let added = match matched.first() {
                Some(&id) => {
                    commit.update(&normalized.batch, &[0], &[id])?;
                    Added::Updated(id)
                }
                None => {
                    commit.insert(&normalized.batch, &[0])?;
                    Added::Created(commit.first_id())
                }
            };
            commit.finish(&mut GroupCounts::default(), "")?;
            Ok(added)
        });
    if added.is_err() {
        let _ = store.rollback();
    }
    added
}

/// Deletes contacts by id, in one transaction; an unknown id is a usage
/// error and nothing is deleted.
pub fn delete(store: &Store, ids: &[i64]) -> Result<usize> {
    if ids.is_empty() {
        return Err(Error::usage("give at least one contact id"));
    }
    let missing = store.missing_contact_ids(ids)?;
    if !missing.is_empty() {
        let missing: Vec<String> = missing.iter().map(i64::to_string).collect();
        return Err(Error::usage(format!(
            "no contact with id {}; nothing deleted",
            missing.join(", ")
        )));
    }
    store.delete_contacts(ids)
}
