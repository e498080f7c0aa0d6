//! The normalize stage: a [`RawBatch`] in, a [`NormalizedBatch`] and its
//! failed rows out. Pure (no I/O, no store), so it is tested and benchmarked
//! on its own; callers run it over batches in parallel with rayon.
//!
//! Per batch, column by column (one builder and one scratch buffer per
//! column, nothing allocated per value unless it fails): each mapped value
//! to its normal form, or an error. Then per row, in this order:
//! `bad_row` (from the reader), `wrong_format` (with `--invalid-values fail`;
//! with `drop` the value is cleared and named in `warnings`), `no_fields`
//! (every mapped field empty), `missing_key` (every matching key empty).
//! Failed rows keep their original values for `failed.csv`, and stay in
//! the normalized batch marked [`NormalizedBatch::dropped`] (filtering
//! them out copied every column: 2% of a 10M-row import's CPU); every
//! row has the xxh3 hash of each key.

use std::collections::HashMap;
use std::fmt::Write;
use std::sync::Arc;

use arrow::array::{Array, ArrayRef, StringArray, StringBuilder, UInt64Array};
use arrow::datatypes::{DataType, Field as ArrowField, Schema, SchemaRef};
use arrow::record_batch::RecordBatch;
use xxhash_rust::xxh3::xxh3_64;

use super::consent::{self, ConsentWords};
use super::phone::{self, PhoneSettings};
use super::{country, date, email, gender, text};
use crate::error::{Error, Result};
use crate::fields::{Field, FieldKind, standard_field};
use crate::map::{Mapping, Target};
use crate::matching::Category;
use crate::read::{ROW_COLUMN, RawBatch};

mod batch;

pub use batch::{FailedRow, KeyColumn, NormalizedBatch, Original, Reason};

/// Name of the `warnings` column (values dropped under `--invalid-values drop`).
pub const WARNINGS_COLUMN: &str = "warnings";
/// Names of the key hash columns (UInt64, null when the key is empty).
pub const PRIMARY_HASH: &str = "__primary_hash";
pub const SECONDARY_HASH: &str = "__secondary_hash";

#[derive(Debug, Clone, Copy, PartialEq, Eq, Default, clap::ValueEnum)]
pub enum InvalidValues {
    #[default]
    Fail,
    Drop,
}

/// Settings of the normalize stage, resolved from flags.
#[derive(Debug, Clone, Default)]
pub struct NormalizeSettings {
    pub phone: PhoneSettings,
    pub consent: ConsentWords,
    pub invalid_values: InvalidValues,
    /// Matching keys (SPEC `--primary-key`, `--secondary-key`); `None` for
    /// `none` or not given.
    pub primary_key: Option<&'static str>,
    pub secondary_key: Option<&'static str>,
}

/// One output field: where its values come from and how they normalize.
#[derive(Debug, Clone)]
struct OutputField {
    /// The stored field.
    name: String,
    /// The field as the user named it (`email_opt_out`), for errors.
    label: String,
    kind: FieldKind,
    /// An opt-out column: yes stores opt-out, no stores unknown.
    inverted: bool,
    source: Source,
}

#[derive(Debug, Clone)]
enum Source {
    /// Input column index.
    Column(usize),
    /// A `--set` value, already normalized (None: empty).
    Constant(Option<String>),
}

/// A `--set-on` value: the rows of `category` get `value` (normalized;
/// None: empty) in the batch's column `column`.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct SetOn {
    pub category: Category,
    /// The column in a [`NormalizedBatch`]'s batch.
    pub column: usize,
    pub value: Option<String>,
}

/// Per row of a batch: the errors its values gave (field index, value, why).
type RowErrors<'a> = Vec<Vec<(usize, &'a str, &'static str)>>;

/// The stage for one import: the mapping and settings, checked, with the
/// output schema. Build it once; `normalize` each batch.
#[derive(Debug)]
pub struct Plan {
    fields: Vec<OutputField>,
    settings: NormalizeSettings,
    /// Input column of the `country` field, for phone numbers.
    country_column: Option<usize>,
    /// The region of a `--set country=...` constant, for every row.
    constant_region: Option<&'static str>,
    primary: Option<usize>,
    secondary: Option<usize>,
    set_on: Vec<SetOn>,
    schema: SchemaRef,
}

fn kind_of(target: &Target) -> FieldKind {
    match target {
        Target::Standard(f) => f.kind,
        Target::Id => FieldKind::Id,
        Target::OptOut(f) => f.kind,
        Target::Custom(_) => FieldKind::Text,
    }
}

impl Plan {
    /// Checks the settings against the mapping: keys must be mapped (or
    /// set), and `--set` values must be valid for their field. Usage errors.
    pub fn new(mapping: &Mapping, settings: NormalizeSettings) -> Result<Plan> {
        let mut fields: Vec<OutputField> = mapping
            .columns
            .iter()
            .map(|c| OutputField {
                name: c.target.field_name(),
                label: c.target.name(),
                kind: kind_of(&c.target),
                inverted: matches!(c.target, Target::OptOut(_)),
                source: Source::Column(c.index),
            })
            .collect();
        let mut scratch = String::new();
        let constant_region = mapping
            .constants
            .iter()
            .find(|(t, _)| t.name() == "country")
            .and_then(|(_, v)| country::region_of(v));
        for (target, value) in &mapping.constants {
            let kind = kind_of(target);
            let normalized = normalize_one(target, value, constant_region, &settings, &mut scratch)
                .map_err(|why| Error::usage(format!("--set {}={value}: {why}", target.name())))?
                .map(str::to_string);
            fields.push(OutputField {
                name: target.field_name(),
                label: target.name(),
                kind,
                inverted: matches!(target, Target::OptOut(_)),
                source: Source::Constant(normalized),
            });
        }
        // A field given only per category is empty in the other rows (as
        // a `--set` constant is, it does not make a row non-empty).
        let mut set_on = Vec::new();
        for (category, target, value) in &mapping.set_on {
            let name = target.field_name();
            let rule = format!("--set-on {}:{}={value}", category.as_str(), target.name());
            if settings.primary_key == Some(name.as_str()) || settings.secondary_key == Some(name.as_str()) {
                return Err(Error::usage(format!("{rule}: {name} is a matching key")));
            }
            let normalized = normalize_one(target, value, constant_region, &settings, &mut scratch)
                .map_err(|why| Error::usage(format!("{rule}: {why}")))?
                .map(str::to_string);
            let index = match fields.iter().position(|f| f.name == name) {
                Some(index) => index,
                None => {
                    fields.push(OutputField {
                        name,
                        label: target.name(),
                        kind: kind_of(target),
                        inverted: matches!(target, Target::OptOut(_)),
                        source: Source::Constant(None),
                    });
                    fields.len() - 1
                }
            };
            // After the row number.
            set_on.push(SetOn {
                category: *category,
                column: index + 1,
                value: normalized,
            });
        }
        let position = |key: Option<&'static str>, flag: &str| -> Result<Option<usize>> {
            let Some(key) = key else { return Ok(None) };
            if key != "id" && standard_field(key).is_none() {
                return Err(Error::usage(format!("{flag} {key}: not a field that can be a key")));
            }
            fields
                .iter()
                .position(|f| f.name == key)
                .map(Some)
                .ok_or_else(|| Error::usage(format!("{flag} {key}: no column is mapped to {key}")))
        };
        let primary = position(settings.primary_key, "--primary-key")?;
        let secondary = position(settings.secondary_key, "--secondary-key")?;
        let country_column = mapping.column_of("country").map(|c| c.index);

        let mut schema_fields = vec![ArrowField::new(ROW_COLUMN, DataType::UInt64, false)];
        schema_fields.extend(fields.iter().map(|f| ArrowField::new(&f.name, DataType::Utf8, true)));
        schema_fields.push(ArrowField::new(WARNINGS_COLUMN, DataType::Utf8, true));
        schema_fields.push(ArrowField::new(PRIMARY_HASH, DataType::UInt64, true));
        schema_fields.push(ArrowField::new(SECONDARY_HASH, DataType::UInt64, true));
        Ok(Plan {
            fields,
            settings,
            country_column,
            constant_region,
            primary,
            secondary,
            set_on,
            schema: Arc::new(Schema::new(schema_fields)),
        })
    }

    pub fn schema(&self) -> &SchemaRef {
        &self.schema
    }

    /// The `--set-on` values, applied once each row's category is known.
    pub fn set_on(&self) -> &[SetOn] {
        &self.set_on
    }

    /// Output field names, in column order (after `__row`).
    pub fn field_names(&self) -> impl Iterator<Item = &str> {
        self.fields.iter().map(|f| f.name.as_str())
    }

    /// The normalized columns' names in the output files: the fields, then
    /// `warnings`.
    pub fn output_names(&self) -> impl Iterator<Item = &str> {
        self.field_names().chain([WARNINGS_COLUMN])
    }

    /// Each field's normalized values (a constant's repeated), and per
    /// row the errors found (field index, value, why).
    fn normalize_columns<'a>(&self, raw: &'a RawBatch) -> (Vec<StringArray>, RowErrors<'a>) {
        let n = raw.num_rows();
        let regions = self.row_regions(raw);
        let mut errors: RowErrors = vec![Vec::new(); n];
        let mut columns: Vec<StringArray> = Vec::with_capacity(self.fields.len());
        let mut scratch = String::new();
        for (f, field) in self.fields.iter().enumerate() {
            let column = match &field.source {
                Source::Constant(value) => StringArray::from(vec![value.as_deref(); n]),
                Source::Column(index) => {
                    let input = raw.column(*index);
                    let mut builder = StringBuilder::with_capacity(n, input.value_data().len());
                    // Genders and consents are words from a small set,
                    // each folded (allocated) to be looked up: once per
                    // distinct value of the batch.
                    let mut words: Option<HashMap<&str, WordResult, foldhash::fast::FixedState>> =
                        matches!(field.kind, FieldKind::Gender | FieldKind::Consent).then(HashMap::default);
                    for (i, row_errors) in errors.iter_mut().enumerate() {
                        let value = without_excel_quote(input.value(i));
                        if is_blank(value) {
                            builder.append_null();
                            continue;
                        }
                        let normal = match &mut words {
                            Some(words) => *words.entry(value).or_insert_with(|| {
                                let normal = word(field.kind, value, &self.settings);
                                if field.inverted {
                                    normal.map(consent::inverted)
                                } else {
                                    normal
                                }
                            }),
                            None => normalize_value(field.kind, value, regions[i], &self.settings, &mut scratch),
                        };
                        match normal {
                            Ok(normal) => builder.append_value(normal),
                            Err(why) => {
                                builder.append_null();
                                row_errors.push((f, value, why));
                            }
                        }
                    }
                    builder.finish()
                }
            };
            columns.push(column);
        }
        (columns, errors)
    }

    /// Normalizes one batch.
    pub fn normalize(&self, raw: &RawBatch) -> NormalizedBatch {
        let n = raw.num_rows();
        let (columns, errors) = self.normalize_columns(raw);
        let only_constants = self.fields.iter().all(|f| matches!(f.source, Source::Constant(_)));

        let rows = raw.rows();
        let keys: Vec<usize> = [self.primary, self.secondary].into_iter().flatten().collect();
        let mut dropped = vec![false; n];
        let mut warnings = StringBuilder::with_capacity(n, 0);
        let mut failed: Vec<FailedRow> = raw
            .bad_rows
            .iter()
            .map(|b| FailedRow {
                row: b.row,
                reason: Reason::BadRow,
                detail: b.detail.clone(),
                original: Original::Fields(b.fields.clone()),
            })
            .collect();
        for i in 0..n {
            let mut fail = |reason: Reason, detail: String| {
                dropped[i] = true;
                failed.push(FailedRow {
                    row: rows.value(i),
                    reason,
                    detail,
                    original: Original::RawRow(i),
                });
            };
            let row_errors = &errors[i];
            let described = || {
                let mut text = String::new();
                for (k, (f, value, why)) in row_errors.iter().enumerate() {
                    let sep = if k > 0 { "; " } else { "" };
                    let _ = write!(text, "{sep}{}: {value:?} ({why})", self.fields[*f].label);
                }
                text
            };
            if !row_errors.is_empty() && self.settings.invalid_values == InvalidValues::Fail {
                fail(Reason::WrongFormat, described());
                warnings.append_null();
                continue;
            }
            // `--set` constants do not make a row non-empty, unless they
            // are all there is (`contacts add`).
            let mapped_empty = self.fields.iter().zip(&columns).all(|(field, column)| {
                (matches!(field.source, Source::Constant(_)) && !only_constants) || column.is_null(i)
            });
            if mapped_empty {
                let detail = if row_errors.is_empty() {
                    "every mapped field is empty".to_string()
                } else {
                    format!("every mapped field is empty after dropping {}", described())
                };
                fail(Reason::NoFields, detail);
                warnings.append_null();
                continue;
            }
            if !keys.is_empty() && keys.iter().all(|&k| columns[k].is_null(i)) {
                let names: Vec<&str> = keys.iter().map(|&k| self.fields[k].name.as_str()).collect();
                let mut detail = format!(
                    "{} {} empty",
                    names.join(" and "),
                    if names.len() > 1 { "are" } else { "is" }
                );
                if !row_errors.is_empty() {
                    let _ = write!(detail, " after dropping {}", described());
                }
                fail(Reason::MissingKey, detail);
                warnings.append_null();
                continue;
            }
            if row_errors.is_empty() {
                warnings.append_null();
            } else {
                warnings.append_value(format!("dropped {}", described()));
            }
        }

        let hash = |key: Option<usize>| -> ArrayRef {
            let values: UInt64Array = match key {
                Some(k) => {
                    let column = &columns[k];
                    let hashes: Vec<u64> = (0..n)
                        .map(|i| {
                            if column.is_null(i) {
                                0
                            } else {
                                xxh3_64(column.value(i).as_bytes())
                            }
                        })
                        .collect();
                    UInt64Array::new(hashes.into(), column.nulls().cloned())
                }
                None => UInt64Array::new_null(n),
            };
            Arc::new(values)
        };
        let mut arrays: Vec<ArrayRef> = Vec::with_capacity(self.fields.len() + 4);
        arrays.push(raw.batch.column(0).clone());
        let (primary, secondary) = (hash(self.primary), hash(self.secondary));
        arrays.extend(columns.into_iter().map(|c| Arc::new(c) as ArrayRef));
        arrays.push(Arc::new(warnings.finish()));
        arrays.push(primary);
        arrays.push(secondary);
        let batch =
            RecordBatch::try_new(self.schema.clone(), arrays).expect("normalized arrays match the plan's schema");
        if !dropped.contains(&true) {
            dropped = Vec::new();
        }
        failed.sort_by_key(|f| f.row);
        NormalizedBatch {
            batch,
            failed,
            dropped,
            raw: raw.clone(),
            keys: [self.primary, self.secondary],
        }
    }

    /// The phone region of each row: its `country` value when that names a
    /// country (resolved once per distinct value), else none.
    fn row_regions(&self, raw: &RawBatch) -> Vec<Option<&'static str>> {
        let n = raw.num_rows();
        let Some(column) = self.country_column else {
            return vec![self.constant_region; n];
        };
        let input = raw.column(column);
        // Short keys looked up once per row: foldhash, not xxh3's streaming state.
        let mut seen: HashMap<&str, Option<&'static str>, foldhash::fast::FixedState> = HashMap::default();
        (0..n)
            .map(|i| {
                let value = input.value(i);
                *seen.entry(value).or_insert_with(|| country::region_of(value))
            })
            .collect()
    }
}

/// A value without the `'` that `--excel-safe` puts before a leading
/// `=`, `+`, `-` or `@` (exactly that one quote): an excel-safe output
/// file imports back as the values it was made from. A quote before
/// anything else is kept; as the first character of contact data it is
/// never meaningful, so nothing real is lost.
#[inline]
pub fn without_excel_quote(value: &str) -> &str {
    match value.as_bytes() {
        [b'\'', b'=' | b'+' | b'-' | b'@', ..] => &value[1..],
        _ => value,
    }
}

/// Empty or white space only. Most values start with a visible ASCII
/// character, which decides without a Unicode trim.
#[inline]
fn is_blank(value: &str) -> bool {
    match value.as_bytes().first() {
        None => true,
        Some(b) if b.is_ascii_graphic() => false,
        Some(_) => value.trim().is_empty(),
    }
}

/// A gender or consent word's normal form, or why it has none.
type WordResult = std::result::Result<&'static str, &'static str>;

/// A gender or consent word to its normal form (as [`normalize_value`]).
fn word(kind: FieldKind, value: &str, settings: &NormalizeSettings) -> WordResult {
    match kind {
        FieldKind::Gender => gender::normalize(value).ok_or("not a gender"),
        _ => settings.consent.normalize(value).ok_or("not a consent value"),
    }
}

/// One value to its normal form (borrowing the input or the scratch).
fn normalize_value<'a>(
    kind: FieldKind,
    value: &'a str,
    region: Option<&str>,
    settings: &NormalizeSettings,
    scratch: &'a mut String,
) -> std::result::Result<&'a str, &'static str> {
    match kind {
        FieldKind::Text => Ok(text::trim(value)),
        FieldKind::Id => {
            let digits = text::trim(value);
            match digits.parse::<u64>() {
                Ok(id) if id > 0 && id <= i64::MAX as u64 => {
                    scratch.clear();
                    scratch.push_str(&id.to_string());
                    Ok(scratch.as_str())
                }
                _ => Err("not a contact id (a positive whole number)"),
            }
        }
        FieldKind::Name => Ok(text::collapse_whitespace(value, scratch)),
        FieldKind::Email => email::normalize_into(value, scratch),
        FieldKind::Phone => phone::normalize(value, region, &settings.phone, scratch).map(|()| scratch.as_str()),
        FieldKind::Gender | FieldKind::Consent => word(kind, value, settings),
        FieldKind::Date => date::normalize(value, scratch).map(|()| scratch.as_str()),
        FieldKind::Tags => {
            scratch.clear();
            let mut seen: Vec<&str> = Vec::new();
            for tag in value.split([';', ',']).map(str::trim).filter(|t| !t.is_empty()) {
                if !seen.contains(&tag) {
                    seen.push(tag);
                }
            }
            scratch.push_str(&seen.join(";"));
            Ok(scratch.as_str())
        }
    }
}

/// One value of a field to its normal form, as every row's value is
/// normalized (`None`: empty); the error says why it is not valid. For
/// `--set` constants and `contacts` commands that take single values.
pub fn normalize_one<'a>(
    target: &Target,
    value: &'a str,
    region: Option<&str>,
    settings: &NormalizeSettings,
    scratch: &'a mut String,
) -> std::result::Result<Option<&'a str>, &'static str> {
    if is_blank(value) {
        return Ok(None);
    }
    let normal = normalize_value(kind_of(target), value, region, settings, scratch)?;
    Ok(Some(if matches!(target, Target::OptOut(_)) {
        consent::inverted(normal)
    } else {
        normal
    }))
}

/// What a value of this field must be, for errors (`is not a valid ...`).
pub fn kind_noun(target: &Target) -> &'static str {
    match kind_of(target) {
        FieldKind::Email => "email",
        FieldKind::Phone => "phone number",
        FieldKind::Gender => "gender",
        FieldKind::Date => "date",
        FieldKind::Consent => "consent value",
        FieldKind::Id => "contact id",
        FieldKind::Text | FieldKind::Name | FieldKind::Tags => "value",
    }
}

/// Checks that a field name can be a matching key (SPEC: email, phone,
/// mobile, external_id, id; `none` for no key).
pub fn key_field(value: &str, flag: &str) -> Result<Option<&'static str>> {
    match value {
        "none" => Ok(None),
        "email" | "phone" | "mobile" | "external_id" => Ok(standard_field(value).map(|f: &'static Field| f.name)),
        "id" => Ok(Some(crate::fields::ID_FIELD.name)),
        other => Err(Error::usage(format!(
            "{flag} {other:?}: expected email, phone, mobile, external_id, id or none"
        ))),
    }
}

#[cfg(test)]
mod tests {
    use super::without_excel_quote;

    #[test]
    fn excel_quote_is_dropped_only_before_a_formula_character() {
        for (value, read) in [
            ("'=1+2", "=1+2"),
            ("'+420777", "+420777"),
            ("'-5", "-5"),
            ("'@acme", "@acme"),
            ("''=x", "''=x"),
            ("'hello", "'hello"),
            ("'", "'"),
            ("=1+2", "=1+2"),
            ("", ""),
        ] {
            assert_eq!(without_excel_quote(value), read, "{value}");
        }
    }
}
