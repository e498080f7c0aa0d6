//! The mapping flags of SPEC resolved into one typed [`Mapping`] before any
//! row is read: every usage error (unknown field, two columns to one field,
//! a missing column, no field at all) is found here and names the column
//! and the field.

use std::collections::BTreeMap;
use std::path::Path;

use serde::Deserialize;

use super::{is_export_bookkeeping, slug, suggest};
use crate::error::{Error, Result};
use crate::fields::{Field, FieldKind, standard_field};
use crate::matching::Category;

/// Longest custom field name (SPEC).
const CUSTOM_NAME_MAX: usize = 64;

/// Where a column's values go.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Target {
    Standard(&'static Field),
    /// The stored contact id ([`crate::fields::ID_FIELD`]).
    Id,
    /// A consent stated the other way round (`email_opt_out`: true means
    /// opt-out), stored in the consent field it inverts.
    OptOut(&'static Field),
    /// `custom.NAME`; NAME is a checked slug, so it is safe as a quoted
    /// identifier (it still only ever reaches SQL quoted).
    Custom(String),
}

impl Target {
    /// The field name as SPEC spells it: `email`, `custom.shoe_size`.
    pub fn name(&self) -> String {
        match self {
            Target::Standard(f) => f.name.to_string(),
            Target::Id => "id".to_string(),
            Target::OptOut(f) => f.name.replace("_opt_in", "_opt_out"),
            Target::Custom(name) => format!("custom.{name}"),
        }
    }

    /// The field the values are stored in: [`name`](Self::name), except
    /// that an opt-out column fills its consent field.
    pub fn field_name(&self) -> String {
        match self {
            Target::OptOut(f) => f.name.to_string(),
            other => other.name(),
        }
    }

    /// Parses a field name given by the user (`--map`, `--set`, TOML).
    pub fn parse(field: &str) -> Result<Target, String> {
        if let Some(name) = field.strip_prefix("custom.") {
            let ok = !name.is_empty()
                && name.len() <= CUSTOM_NAME_MAX
                && name
                    .bytes()
                    .all(|b| b.is_ascii_lowercase() || b.is_ascii_digit() || b == b'_');
            return if ok {
                Ok(Target::Custom(name.to_string()))
            } else {
                Err(format!(
                    "custom field name {name:?} must be lower-case ASCII letters, digits and _, at most {CUSTOM_NAME_MAX} characters"
                ))
            };
        }
        if field == "id" {
            return Ok(Target::Id);
        }
        if let Some(consent) = field.strip_suffix("_opt_out") {
            let inverted = standard_field(&format!("{consent}_opt_in")).filter(|f| f.kind == FieldKind::Consent);
            if let Some(f) = inverted {
                return Ok(Target::OptOut(f));
            }
        }
        standard_field(field)
            .map(Target::Standard)
            .ok_or_else(|| format!("unknown field {field:?} (standard fields, or custom.NAME)"))
    }
}

#[derive(Debug, Clone, Copy, PartialEq, Eq, Default, clap::ValueEnum)]
pub enum Unmapped {
    #[default]
    Ignore,
    Custom,
}

#[derive(Debug, Clone, Copy, PartialEq, Eq, Default, clap::ValueEnum)]
pub enum ContactType {
    #[default]
    Person,
    Company,
}

impl ContactType {
    pub fn name(self) -> &'static str {
        match self {
            ContactType::Person => "person",
            ContactType::Company => "company",
        }
    }
}

/// The mapping flags as given.
#[derive(Debug, Clone, Default)]
pub struct MappingOptions {
    /// `--map COLUMN=FIELD`, in order.
    pub maps: Vec<String>,
    /// `--mapping FILE` (TOML with a `[map]` table).
    pub file: Option<std::path::PathBuf>,
    pub auto: bool,
    pub unmapped: Unmapped,
    /// `--set FIELD=VALUE`.
    pub sets: Vec<String>,
    /// `--set-on CATEGORY:FIELD=VALUE`.
    pub set_on: Vec<String>,
    pub tags: Vec<String>,
    pub contact_type: ContactType,
    /// Auto-map a column named `id` to the stored contact id (when it is a
    /// matching key: a file exported by `contacts export` imports back).
    pub id_column: bool,
}

/// One input column that is imported.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct MappedColumn {
    /// 0-based input column index.
    pub index: usize,
    pub column: String,
    pub target: Target,
}

/// The resolved mapping.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Mapping {
    pub columns: Vec<MappedColumn>,
    /// `--set` constants: the field and its raw value.
    pub constants: Vec<(Target, String)>,
    /// `--set-on` values: the category, the field and its raw value.
    pub set_on: Vec<(Category, Target, String)>,
    pub tags: Vec<String>,
    pub contact_type: ContactType,
}

impl Mapping {
    /// The target of a field name, if something maps to it.
    pub fn column_of(&self, field: &str) -> Option<&MappedColumn> {
        self.columns.iter().find(|c| c.target.name() == field)
    }
}

#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
struct MappingFile {
    #[serde(default)]
    map: BTreeMap<String, String>,
}

fn split_pair<'a>(flag: &str, pair: &'a str) -> Result<(&'a str, &'a str)> {
    pair.split_once('=')
        .ok_or_else(|| Error::usage(format!("{flag} {pair:?}: expected COLUMN=FIELD")))
}

/// Finds a column by header name or `colN`.
pub fn find_column(columns: &[String], name: &str) -> Option<usize> {
    columns.iter().position(|c| c == name).or_else(|| {
        name.strip_prefix("col")
            .and_then(|n| n.parse::<usize>().ok())
            .filter(|&n| (1..=columns.len()).contains(&n))
            .map(|n| n - 1)
    })
}

fn load_file(path: &Path) -> Result<Vec<(String, String)>> {
    let text = std::fs::read_to_string(path).map_err(|e| Error::io(path, e))?;
    let file: MappingFile =
        toml::from_str(&text).map_err(|e| Error::usage(format!("--mapping {}: {}", path.display(), e.message())))?;
    Ok(file.map.into_iter().collect())
}

/// Resolves the mapping for a table with these columns.
pub fn resolve(columns: &[String], options: &MappingOptions) -> Result<Mapping> {
    // Explicit entries: the file first, then --map (which wins per column).
    let mut explicit: Vec<(String, String, &'static str)> = Vec::new();
    if let Some(path) = &options.file {
        for (column, field) in load_file(path)? {
            explicit.push((column, field, "--mapping"));
        }
    }
    for pair in &options.maps {
        let (column, field) = split_pair("--map", pair)?;
        explicit.retain(|(c, _, _)| c != column);
        explicit.push((column.to_string(), field.to_string(), "--map"));
    }

    // None: not decided yet; Some(None): skipped; Some(Some(target)).
    let mut decided: Vec<Option<Option<Target>>> = vec![None; columns.len()];
    // What each column was mapped to by `--map` (a flag may override the
    // mapping file's entry; two flags for one column contradict).
    let mut by_flag: Vec<Option<&str>> = vec![None; columns.len()];
    for (column, field, flag) in &explicit {
        let index = find_column(columns, column).ok_or_else(|| {
            Error::usage(format!(
                "{flag} {column}={field}: no column {column:?}; the columns are {}",
                columns.iter().map(|c| format!("{c:?}")).collect::<Vec<_>>().join(", ")
            ))
        })?;
        if *flag == "--map" {
            if let Some(earlier) = by_flag[index]
                && earlier != field
            {
                return Err(Error::usage(format!(
                    "--map {column}={field}: column {column:?} is already mapped (--map {column}={earlier})"
                )));
            }
            by_flag[index] = Some(field);
        }
        decided[index] = Some(if field == "-" {
            None
        } else {
            Some(Target::parse(field).map_err(|e| Error::usage(format!("{flag} {column}={field}: {e}")))?)
        });
    }
    // Auto-mapping never clashes: a field taken explicitly or by an earlier
    // column is not suggested again (the later column falls to --unmapped).
    let mut taken: Vec<String> = decided.iter().flatten().flatten().map(Target::field_name).collect();
    for (index, column) in columns.iter().enumerate() {
        if decided[index].is_some() {
            continue;
        }
        let auto = options
            .auto
            .then(|| {
                if options.id_column && column.trim().eq_ignore_ascii_case("id") {
                    Some(Target::Id)
                } else {
                    suggest(column)
                }
            })
            .flatten()
            .filter(|t| !taken.contains(&t.field_name()));
        decided[index] = match (auto, options.unmapped) {
            (Some(target), _) => {
                taken.push(target.field_name());
                Some(Some(target))
            }
            // An export's bookkeeping columns are not data to keep.
            (None, Unmapped::Custom) if options.auto && is_export_bookkeeping(column) => Some(None),
            (None, Unmapped::Custom) => {
                let name = slug(column);
                let name = if name.is_empty() {
                    format!("col{}", index + 1)
                } else {
                    name
                };
                let name: String = name.chars().take(CUSTOM_NAME_MAX).collect();
                Some(Some(Target::Custom(name)))
            }
            (None, Unmapped::Ignore) => Some(None),
        };
    }

    let mut mapped: Vec<MappedColumn> = Vec::new();
    for (index, target) in decided.into_iter().enumerate() {
        let Some(Some(target)) = target else { continue };
        if let Some(other) = mapped.iter().find(|m| m.target.field_name() == target.field_name()) {
            return Err(Error::usage(format!(
                "columns {:?} and {:?} are both mapped to {}; map one of them elsewhere or to - (skip)",
                other.column,
                columns[index],
                target.field_name()
            )));
        }
        mapped.push(MappedColumn {
            index,
            column: columns[index].clone(),
            target,
        });
    }
    // A table without columns (`contacts add`) carries only `--set` values.
    if mapped.is_empty() && !columns.is_empty() {
        return Err(Error::usage(format!(
            "no column is mapped to a field (columns: {}); use --map COLUMN=FIELD",
            columns.iter().map(|c| format!("{c:?}")).collect::<Vec<_>>().join(", ")
        )));
    }

    let mut constants: Vec<(Target, String)> = Vec::new();
    for pair in &options.sets {
        let (field, value) = pair
            .split_once('=')
            .ok_or_else(|| Error::usage(format!("--set {pair:?}: expected FIELD=VALUE")))?;
        let target = Target::parse(field).map_err(|e| Error::usage(format!("--set {pair}: {e}")))?;
        if let Some(m) = mapped.iter().find(|m| m.target.field_name() == target.field_name()) {
            return Err(Error::usage(format!(
                "--set {pair}: {} is already mapped from column {:?}",
                target.name(),
                m.column
            )));
        }
        if let Some((other, v)) = constants.iter().find(|(t, _)| t.field_name() == target.field_name()) {
            return Err(Error::usage(format!(
                "--set {pair}: {} is already set (--set {}={v})",
                target.field_name(),
                other.name()
            )));
        }
        constants.push((target, value.to_string()));
    }
    let set_on = set_on(&options.set_on, &mapped, &constants)?;
    let tags = checked_tags(&options.tags)?;
    Ok(Mapping {
        columns: mapped,
        constants,
        set_on,
        tags,
        contact_type: options.contact_type,
    })
}

/// `--set-on CATEGORY:FIELD=VALUE`, checked: a field given a value per
/// category is neither mapped from a column nor `--set` (as `--set` is not
/// for a mapped field), and gets one value per category.
fn set_on(
    given: &[String],
    mapped: &[MappedColumn],
    constants: &[(Target, String)],
) -> Result<Vec<(Category, Target, String)>> {
    let mut set_on: Vec<(Category, Target, String)> = Vec::new();
    for rule in given {
        let usage = |why: String| Error::usage(format!("--set-on {rule}: {why}"));
        let (category, pair) = rule
            .split_once(':')
            .ok_or_else(|| usage("expected CATEGORY:FIELD=VALUE".into()))?;
        let category = Category::parse(category.trim())
            .ok_or_else(|| usage(format!("{category:?} is not no_match, one_match or multiple_match")))?;
        let (field, value) = pair
            .split_once('=')
            .ok_or_else(|| usage("expected CATEGORY:FIELD=VALUE".into()))?;
        let target = Target::parse(field.trim()).map_err(usage)?;
        if target == Target::Id {
            return Err(usage("the store assigns ids".into()));
        }
        if let Some(m) = mapped.iter().find(|m| m.target.field_name() == target.field_name()) {
            return Err(usage(format!(
                "{} is already mapped from column {:?}",
                target.name(),
                m.column
            )));
        }
        if constants.iter().any(|(t, _)| t.field_name() == target.field_name()) {
            return Err(usage(format!("{} is already given by --set", target.name())));
        }
        if set_on
            .iter()
            .any(|(c, t, _)| *c == category && t.field_name() == target.field_name())
        {
            return Err(usage(format!(
                "{} is given twice for {}",
                target.field_name(),
                category.as_str()
            )));
        }
        set_on.push((category, target, value.to_string()));
    }
    Ok(set_on)
}

/// The `--tag` values, trimmed. An export joins a contact's tags with `;`,
/// so a tag holding `;` would come back from a round trip as several tags:
/// refused, like an empty one (a usage error naming the value).
pub fn checked_tags(tags: &[String]) -> Result<Vec<String>> {
    tags.iter()
        .map(|t| {
            let trimmed = t.trim();
            if trimmed.is_empty() {
                Err(Error::usage(format!("--tag {t:?}: a tag cannot be empty")))
            } else if trimmed.contains(';') {
                Err(Error::usage(format!(
                    "--tag {t:?}: a tag cannot contain ';' (exports join tags with it); give each tag its own --tag"
                )))
            } else {
                Ok(trimmed.to_string())
            }
        })
        .collect()
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn tags_are_trimmed_and_refused_when_empty_or_holding_a_separator() {
        let tags = |t: &[&str]| checked_tags(&t.iter().map(|s| s.to_string()).collect::<Vec<_>>());
        assert_eq!(tags(&[" vip ", "b2b"]).expect("valid"), ["vip", "b2b"]);
        for bad in ["a;b", "", "   ", ";"] {
            let err = tags(&["ok", bad]).expect_err(bad).to_string();
            assert!(err.contains(&format!("{bad:?}")), "{err}");
        }
    }

    fn cols(names: &[&str]) -> Vec<String> {
        names.iter().map(|s| s.to_string()).collect()
    }

    fn auto() -> MappingOptions {
        MappingOptions {
            auto: true,
            ..MappingOptions::default()
        }
    }

    fn names(m: &Mapping) -> Vec<(String, String)> {
        m.columns.iter().map(|c| (c.column.clone(), c.target.name())).collect()
    }

    #[test]
    fn auto_map_explicit_maps_and_skips() {
        let columns = cols(&["E-mail", "Telefon", "Jméno", "Oblíbená barva", "Poznámka"]);
        let m = resolve(&columns, &auto()).expect("mapping");
        assert_eq!(m.columns.len(), 4);
        let options = MappingOptions {
            maps: vec![
                "Telefon=mobile".into(),
                "col5=-".into(),
                "Oblíbená barva=custom.barva".into(),
            ],
            ..auto()
        };
        let m = resolve(&columns, &options).expect("mapping");
        assert_eq!(
            names(&m),
            vec![
                ("E-mail".into(), "email".into()),
                ("Telefon".into(), "mobile".into()),
                ("Jméno".into(), "first_name".into()),
                ("Oblíbená barva".into(), "custom.barva".into()),
            ]
        );
    }

    #[test]
    fn two_maps_of_one_column_contradict() {
        let columns = cols(&["Name", "E-mail"]);
        let options = MappingOptions {
            maps: vec!["Name=first_name".into(), "col1=last_name".into()],
            ..auto()
        };
        let err = resolve(&columns, &options).expect_err("two fields").to_string();
        assert!(
            err.contains("already mapped (--map col1=first_name)")
                || err.contains("already mapped (--map Name=first_name)"),
            "{err}"
        );
        // The same map twice says nothing new.
        let options = MappingOptions {
            maps: vec!["Name=first_name".into(), "Name=first_name".into()],
            ..auto()
        };
        assert!(resolve(&columns, &options).is_ok());
    }

    #[test]
    fn unmapped_custom_makes_slugs_and_no_auto_map_maps_nothing() {
        let columns = cols(&["E-mail", "Datum narození", "x\"; DROP TABLE contacts; --"]);
        let options = MappingOptions {
            unmapped: Unmapped::Custom,
            ..auto()
        };
        let m = resolve(&columns, &options).expect("mapping");
        assert_eq!(m.columns[1].target.name(), "birth_date");
        assert_eq!(m.columns[2].target.name(), "custom.x_drop_table_contacts");
        let options = MappingOptions {
            unmapped: Unmapped::Custom,
            ..MappingOptions::default()
        };
        let m = resolve(&columns, &options).expect("mapping");
        assert_eq!(m.columns[1].target.name(), "custom.datum_narozeni");
        let err = resolve(&columns, &MappingOptions::default()).expect_err("nothing mapped");
        assert!(err.to_string().contains("no column is mapped"), "{err}");
    }

    #[test]
    fn usage_errors_name_column_and_field() {
        let columns = cols(&["E-mail", "Mail", "Phone"]);
        let cases = [
            (
                vec!["Mail=email", "E-mail=email"],
                "\"E-mail\" and \"Mail\" are both mapped to email",
            ),
            (vec!["Phone=fax"], "--map Phone=fax: unknown field \"fax\""),
            (vec!["Fax=phone"], "--map Fax=phone: no column \"Fax\""),
            (vec!["Phone=custom.Bad Name"], "custom field name \"Bad Name\""),
            (vec!["Phone"], "expected COLUMN=FIELD"),
            (
                vec!["Mail=email_opt_in", "Phone=email_opt_out"],
                "\"Mail\" and \"Phone\" are both mapped to email_opt_in",
            ),
        ];
        for (maps, expected) in cases {
            let options = MappingOptions {
                maps: maps.iter().map(|s| s.to_string()).collect(),
                ..auto()
            };
            let err = resolve(&columns, &options).expect_err("usage error");
            assert_eq!(err.exit_code(), 2);
            assert!(err.to_string().contains(expected), "{err} / {expected}");
        }
        let options = MappingOptions {
            sets: vec!["email=x@y.cz".into()],
            ..auto()
        };
        let err = resolve(&columns, &options).expect_err("set clash");
        assert!(
            err.to_string().contains("already mapped from column \"E-mail\""),
            "{err}"
        );
    }

    #[test]
    fn mapping_file_and_map_flag_override() {
        let dir = tempfile::tempdir().expect("tempdir");
        let path = dir.path().join("m.toml");
        std::fs::write(&path, "[map]\n\"E-mail\" = \"email\"\nMail = \"custom.mail2\"\n").expect("write");
        let options = MappingOptions {
            file: Some(path.clone()),
            maps: vec!["Mail=-".into()],
            ..MappingOptions::default()
        };
        let m = resolve(&cols(&["E-mail", "Mail"]), &options).expect("mapping");
        assert_eq!(names(&m), vec![("E-mail".into(), "email".into())]);
        std::fs::write(&path, "[mapp]\n").expect("write");
        let err = resolve(&cols(&["E-mail"]), &options).expect_err("bad toml");
        assert!(err.to_string().contains("--mapping"), "{err}");
    }
}
