//! Store settings (`kontakt config`, SPEC "Store settings"): defaults kept
//! in the store, so that every import and `contacts add` of that store
//! uses them unless a flag says otherwise. This module knows the keys and
//! checks their values; the store keeps them as text
//! ([`Store::config`]).

use std::collections::BTreeMap;
use std::path::Path;

use crate::error::{Error, Result};
use crate::normalize::consent::{self, ConsentWords};
use crate::normalize::phone;
use crate::normalize::stage::key_field;
use crate::store::Store;

/// The keys, with what each sets (for `config list` and errors).
pub const KEYS: &[(&str, &str)] = &[
    ("primary-key", "--primary-key of imports (default email)"),
    ("secondary-key", "--secondary-key of imports (default none)"),
    (
        "default-country",
        "--default-country of imports and `contacts add` (ISO code)",
    ),
    ("consent-yes", "words meaning consent given, separated by `,`"),
    ("consent-no", "words meaning consent refused, separated by `,`"),
    (
        "unique",
        "email, phone, mobile or external_id: no two contacts share a value of it",
    ),
    (
        "compliance",
        "gdpr and/or tcpa: an import that maps or sets a consent must --acknowledge them",
    ),
];

/// The compliance items a store may ask an import to acknowledge.
pub const COMPLIANCE_ITEMS: &[(&str, &str)] = &[
    ("gdpr", "the EU's GDPR rules for e-mail and SMS consent"),
    ("tcpa", "the US TCPA rules for calls and SMS"),
];

/// A store's settings, checked.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct Config {
    pub primary_key: Option<String>,
    pub secondary_key: Option<String>,
    pub default_country: Option<String>,
    pub consent_yes: Vec<String>,
    pub consent_no: Vec<String>,
    pub compliance: Vec<String>,
    pub unique: Option<String>,
}

/// The checked form of `value` for `key` (what the store keeps), or a
/// usage error naming both.
pub fn check(key: &str, value: &str) -> Result<String> {
    let value = value.trim();
    let flag = format!("config {key}");
    match key {
        "primary-key" | "secondary-key" => {
            key_field(value, &flag)?;
            if key == "secondary-key" && value == "id" {
                return Err(Error::usage(format!("{flag} id: the store's id is a primary key only")));
            }
            Ok(value.to_string())
        }
        "default-country" => phone::known_region(&value.to_ascii_uppercase())
            .map(str::to_string)
            .ok_or_else(|| Error::usage(format!("{flag} {value:?}: not a known ISO country code"))),
        "consent-yes" | "consent-no" => {
            let words = list(value);
            if words.is_empty() {
                return Err(Error::usage(format!("{flag}: give one or more words separated by `,`")));
            }
            Ok(words.join(","))
        }
        "unique" => {
            if crate::fields::KEY_FIELDS.contains(&value) {
                Ok(value.to_string())
            } else {
                Err(Error::usage(format!(
                    "{flag} {value:?}: expected email, phone, mobile or external_id"
                )))
            }
        }
        "compliance" => {
            let items = list(&value.to_ascii_lowercase());
            if items.is_empty() {
                return Err(Error::usage(format!("{flag}: give gdpr, tcpa or gdpr,tcpa")));
            }
            for item in &items {
                if !COMPLIANCE_ITEMS.iter().any(|(name, _)| name == item) {
                    return Err(Error::usage(format!("{flag} {item:?}: expected gdpr or tcpa")));
                }
            }
            Ok(items.join(","))
        }
        other => Err(unknown_key(other)),
    }
}

/// Refuses a setting the store already breaks: `unique FIELD` on a store
/// where contacts share a value of FIELD (a runtime failure, exit 1).
/// Settings that contradict the store's others are usage errors: the
/// same field as both keys, a consent word as both yes and no.
pub fn check_store(store: &Store, key: &str, value: &str) -> Result<()> {
    let stored = store.config()?;
    let other = |k: &str| stored.get(k).map(String::as_str);
    match key {
        "primary-key" | "secondary-key" => {
            let other_key = if key == "primary-key" {
                "secondary-key"
            } else {
                "primary-key"
            };
            if value != "none" && other(other_key) == Some(value) {
                return Err(Error::usage(format!(
                    "config {key} {value}: the store's {other_key} is {value} too; set it to another field first"
                )));
            }
        }
        "consent-yes" | "consent-no" => {
            let other_key = if key == "consent-yes" {
                "consent-no"
            } else {
                "consent-yes"
            };
            let others = list(other(other_key).unwrap_or_default());
            if let Some(word) = list(value).iter().find(|w| others.contains(w)) {
                return Err(Error::usage(format!(
                    "config {key}: {word:?} is in the store's {other_key} too; a word means yes or no"
                )));
            }
        }
        "unique" => {
            let shared = store.count_shared_values(value)?;
            if shared > 0 {
                let (values, are) = if shared == 1 {
                    ("value", "is")
                } else {
                    ("values", "are")
                };
                return Err(Error::Store {
                    path: store.path().display().to_string(),
                    message: format!(
                        "{shared} {value} {values} {are} shared by two or more contacts (of any type); \
                         `unique {value}` is refused: find them with `kontakt audit --key {value}` (per \
                         type) or `kontakt contacts list`, and merge or delete them first"
                    ),
                });
            }
        }
        _ => {}
    }
    Ok(())
}

/// The usage error of a key that is not a setting.
pub fn unknown_key(key: &str) -> Error {
    let keys: Vec<&str> = KEYS.iter().map(|(k, _)| *k).collect();
    Error::usage(format!("config: unknown key {key:?}; the keys are {}", keys.join(", ")))
}

/// `a, b,,c` as `[a, b, c]`.
fn list(value: &str) -> Vec<String> {
    let mut items: Vec<String> = Vec::new();
    for item in value.split(',').map(str::trim).filter(|w| !w.is_empty()) {
        if !items.iter().any(|i| i == item) {
            items.push(item.to_string());
        }
    }
    items
}

impl Config {
    /// The settings of the store at `db`, read without changing it; none
    /// where no store exists yet (the command that writes creates it), or
    /// where it cannot be read as it is: a store older than schema 5 (which
    /// has no settings, and the write that follows upgrades), or one the
    /// write that follows reports as it always has (locked, not a store).
    pub fn of_store_at(db: &Path) -> Result<Config> {
        match Store::open_read_only(db) {
            Ok(store) => Config::of(&store),
            Err(_) => Ok(Config::default()),
        }
    }

    /// The settings of `store`. A value the store holds that this kontakt
    /// does not accept (an edited store) is an error naming it.
    pub fn of(store: &Store) -> Result<Config> {
        Config::from_values(&store.config()?)
    }

    fn from_values(values: &BTreeMap<String, String>) -> Result<Config> {
        let mut config = Config::default();
        for (key, value) in values {
            let value = check(key, value).map_err(|e| Error::usage(format!("the store's setting: {e}")))?;
            match key.as_str() {
                "primary-key" => config.primary_key = Some(value),
                "secondary-key" => config.secondary_key = Some(value),
                "default-country" => config.default_country = Some(value),
                "consent-yes" => config.consent_yes = list(&value),
                "consent-no" => config.consent_no = list(&value),
                "compliance" => config.compliance = list(&value),
                "unique" => config.unique = Some(value),
                _ => {}
            }
        }
        Ok(config)
    }

    /// The consent words of an import: the store's, with the flags' added
    /// (a flag's word for one side is taken off the store's other side).
    pub fn consent_words(&self, flag_yes: &[String], flag_no: &[String]) -> (Vec<String>, Vec<String>) {
        let side = |store: &[String], flags: &[String], other_flags: &[String]| -> Vec<String> {
            store
                .iter()
                .filter(|w| !other_flags.contains(w))
                .chain(flags)
                .cloned()
                .collect()
        };
        (
            side(&self.consent_yes, flag_yes, flag_no),
            side(&self.consent_no, flag_no, flag_yes),
        )
    }

    /// The consent vocabulary of an import or `contacts add`: the
    /// defaults, the store's words and the flags' ([`Config::consent_words`]);
    /// a word meaning both is a usage error naming it.
    pub fn consent(&self, flag_yes: &[String], flag_no: &[String]) -> Result<ConsentWords> {
        let (yes, no) = self.consent_words(flag_yes, flag_no);
        ConsentWords::new(&yes, &no).map_err(|w| consent::both_error(&w))
    }

    /// Checks `--acknowledge` against the store's compliance list, when
    /// the import or `contacts add` maps or sets a consent field: every
    /// item must be named (a usage error otherwise). Returns the items
    /// acknowledged, as given and checked.
    pub fn check_acknowledged(&self, consents: bool, acknowledge: &[String]) -> Result<Vec<String>> {
        check_acknowledged(&self.compliance, consents, acknowledge)
    }
}

/// [`Config::check_acknowledged`] against the compliance items `compliance`.
pub fn check_acknowledged(compliance: &[String], consents: bool, acknowledge: &[String]) -> Result<Vec<String>> {
    let given = list(&acknowledge.join(",").to_ascii_lowercase());
    for item in &given {
        if !COMPLIANCE_ITEMS.iter().any(|(name, _)| name == item) {
            return Err(Error::usage(format!("--acknowledge {item:?}: expected gdpr or tcpa")));
        }
    }
    if consents {
        let missing: Vec<&str> = compliance
            .iter()
            .filter(|item| !given.contains(item))
            .map(String::as_str)
            .collect();
        if !missing.is_empty() {
            let rules: Vec<&str> = COMPLIANCE_ITEMS
                .iter()
                .filter(|(name, _)| missing.contains(name))
                .map(|(_, rules)| *rules)
                .collect();
            return Err(Error::usage(format!(
                "this store asks an import of consents to acknowledge {}: having read {}, \
                     give --acknowledge {}",
                missing.join(" and "),
                rules.join(" and "),
                compliance.join(",")
            )));
        }
    }
    Ok(given)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn values_are_checked_and_kept_in_one_form() {
        assert_eq!(check("primary-key", " phone ").expect("key"), "phone");
        assert!(check("primary-key", "name").is_err());
        assert!(check("secondary-key", "id").is_err());
        assert_eq!(check("default-country", "cz").expect("cc"), "CZ");
        assert!(check("default-country", "XX").is_err());
        assert_eq!(check("consent-yes", "si, oui,,si").expect("words"), "si,oui");
        assert!(check("consent-no", " , ").is_err());
        assert_eq!(check("compliance", "TCPA,gdpr").expect("items"), "tcpa,gdpr");
        assert!(check("compliance", "hipaa").is_err());
        assert!(check("unique-ish", "x").is_err());
        assert_eq!(check("unique", "phone").expect("field"), "phone");
        assert!(check("unique", "first_name").is_err());
    }

    #[test]
    fn flags_add_to_the_store_words_and_win_over_them() {
        let config = Config {
            consent_yes: vec!["si".into(), "oui".into()],
            consent_no: vec!["non".into()],
            ..Config::default()
        };
        let (yes, no) = config.consent_words(&["da".into()], &["oui".into()]);
        assert_eq!(yes, ["si", "da"]);
        assert_eq!(no, ["non", "oui"]);
    }

    #[test]
    fn an_import_of_consents_names_every_item_of_the_store() {
        let config = Config {
            compliance: vec!["gdpr".into(), "tcpa".into()],
            ..Config::default()
        };
        assert!(config.check_acknowledged(true, &["gdpr".into()]).is_err());
        assert_eq!(
            config.check_acknowledged(true, &["tcpa,GDPR".into()]).expect("both"),
            ["tcpa", "gdpr"]
        );
        // Without consents nothing is asked; what is given is still checked.
        assert!(config.check_acknowledged(false, &[]).expect("none").is_empty());
        assert!(config.check_acknowledged(false, &["hipaa".into()]).is_err());
        assert!(Config::default().check_acknowledged(true, &[]).is_ok());
    }
}
