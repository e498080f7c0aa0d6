//! Consents to `opt-in` / `opt-out` / `unknown`. The words that mean yes and
//! no are configurable: `--consent-yes` / `--consent-no` add to the defaults.

use crate::map::slug;

const YES: &[&str] = &["true", "yes", "y", "ano", "tak", "ja", "1", "optin"];
const NO: &[&str] = &["false", "no", "n", "ne", "nie", "nei", "nein", "0", "optout"];
const UNKNOWN: &[&str] = &["unknown"];

/// The yes/no vocabulary, folded (`OptIn`, `opt-in` and `opt_in` agree).
#[derive(Debug, Clone)]
pub struct ConsentWords {
    yes: Vec<String>,
    no: Vec<String>,
}

impl Default for ConsentWords {
    fn default() -> Self {
        ConsentWords::new(&[], &[]).unwrap_or_else(|_| ConsentWords {
            yes: vec![],
            no: vec![],
        })
    }
}

fn key(word: &str) -> String {
    let mut key = slug(word);
    key.retain(|c| c != '_');
    key
}

/// The usage error of a word given as both yes and no.
pub fn both_error(word: &str) -> crate::error::Error {
    crate::error::Error::usage(format!(
        "consent word {word:?} is given as both yes and no (--consent-yes/--consent-no, or the store's \
         `config consent-yes`/`consent-no`)"
    ))
}

impl ConsentWords {
    /// Defaults plus the given words; a word that would mean both is a usage
    /// error (returned as the offending word).
    pub fn new(extra_yes: &[String], extra_no: &[String]) -> Result<Self, String> {
        let extra_yes: Vec<String> = extra_yes.iter().map(|w| key(w)).collect();
        let extra_no: Vec<String> = extra_no.iter().map(|w| key(w)).collect();
        if let Some(both) = extra_yes.iter().find(|w| extra_no.contains(w)) {
            return Err(both.clone());
        }
        // A word given for one side is taken off the other's defaults.
        let yes = YES
            .iter()
            .map(|s| s.to_string())
            .filter(|w| !extra_no.contains(w))
            .chain(extra_yes.iter().cloned())
            .collect();
        let no = NO
            .iter()
            .map(|s| s.to_string())
            .filter(|w| !extra_yes.contains(w))
            .chain(extra_no.iter().cloned())
            .collect();
        Ok(ConsentWords { yes, no })
    }

    /// The words that mean yes and no (folded), defaults included.
    pub fn words(&self) -> (&[String], &[String]) {
        (&self.yes, &self.no)
    }

    /// `Some("opt-in" | "opt-out" | "unknown")`, or `None` for a word that
    /// means neither.
    pub fn normalize(&self, value: &str) -> Option<&'static str> {
        let key = key(value);
        if self.yes.contains(&key) {
            Some("opt-in")
        } else if self.no.contains(&key) {
            Some("opt-out")
        } else if UNKNOWN.contains(&key.as_str()) {
            Some("unknown")
        } else {
            None
        }
    }
}

/// A consent read from an opt-out column (`HasOptedOutOfEmail`): yes is
/// an opt-out; no is `unknown`, not an opt-in, because `false` is what
/// such a column holds for everyone who never opted out (Salesforce's
/// default), and `unknown` never overwrites a stored consent.
pub fn inverted(consent: &str) -> &'static str {
    match consent {
        "opt-in" => "opt-out",
        _ => "unknown",
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn defaults_in_five_languages() {
        let words = ConsentWords::default();
        for yes in ["true", "Yes", "ano", "TAK", "ja", "1", "OptIn", "opt-in", "áno"] {
            assert_eq!(words.normalize(yes), Some("opt-in"), "{yes}");
        }
        for no in ["false", "No", "ne", "nie", "nei", "Nein", "0", "OptOut", "opt-out"] {
            assert_eq!(words.normalize(no), Some("opt-out"), "{no}");
        }
        assert_eq!(words.normalize("unknown"), Some("unknown"));
        assert_eq!(words.normalize("maybe"), None);
    }

    #[test]
    fn opt_out_columns_read_yes_as_opt_out_and_no_as_unknown() {
        let words = ConsentWords::default();
        let read = |v: &str| words.normalize(v).map(inverted);
        assert_eq!(read("true"), Some("opt-out"));
        assert_eq!(read("false"), Some("unknown"));
        assert_eq!(read("0"), Some("unknown"));
        assert_eq!(read("unknown"), Some("unknown"));
    }

    #[test]
    fn flags_add_words_and_may_move_one() {
        let words = ConsentWords::new(&["souhlasí".into()], &["x".into()]).expect("valid");
        assert_eq!(words.normalize("Souhlasí"), Some("opt-in"));
        assert_eq!(words.normalize("x"), Some("opt-out"));
        assert_eq!(
            ConsentWords::new(&["ok".into()], &["OK".into()]).err(),
            Some("ok".into())
        );
    }
}
