//! Countries for phone numbers: a row's `country` value (an ISO 3166 code
//! such as `CZ`, or a common name such as `Czech Republic`, `Česko`,
//! `Polska`, `Norge`) or `--default-country`, resolved to a region code of
//! libphonenumber's metadata.

use crate::map::slug;

/// Common names, folded (see `map::slug`, separators removed), per region.
#[rustfmt::skip]
const NAMES: &[(&str, &[&str])] = &[
    ("CZ", &["czechrepublic", "czechia", "cesko", "ceskarepublika", "cr", "tschechien", "czechy", "tsjekkia", "cesko"]),
    ("SK", &["slovakia", "slovensko", "slovenskarepublika", "slowakei", "slowacja", "slovakia"]),
    ("PL", &["poland", "polska", "polsko", "polen"]),
    ("NO", &["norway", "norge", "noreg", "norsko", "norwegia", "norwegen"]),
    ("DE", &["germany", "deutschland", "nemecko", "niemcy", "tyskland"]),
    ("AT", &["austria", "osterreich", "oesterreich", "rakousko", "rakusko", "osterrike"]),
    ("US", &["usa", "unitedstates", "unitedstatesofamerica", "spojenestaty", "stanyzjednoczone", "usa"]),
    ("GB", &["uk", "unitedkingdom", "greatbritain", "england", "velkabritanie", "wielkabrytania", "storbritannia"]),
    ("SE", &["sweden", "sverige", "svedsko", "szwecja", "schweden"]),
    ("DK", &["denmark", "danmark", "dansko", "dania", "danemark"]),
    ("FI", &["finland", "suomi", "finsko", "finlandia"]),
    ("HU", &["hungary", "magyarorszag", "madarsko", "wegry", "ungarn"]),
    ("UA", &["ukraine", "ukrajina", "ukraina"]),
    ("FR", &["france", "francie", "francja", "frankrike", "frankreich"]),
    ("IT", &["italy", "italia", "italie", "wlochy", "italien"]),
    ("ES", &["spain", "espana", "spanelsko", "hiszpania", "spania", "spanien"]),
    ("NL", &["netherlands", "nederland", "holland", "nizozemsko", "holandia", "nederlandene", "niederlande"]),
    ("CH", &["switzerland", "schweiz", "svycarsko", "szwajcaria", "sveits"]),
    ("RU", &["russia", "rusko", "rosja", "russland"]),
];

/// The region of a country value, if it names one.
pub fn region_of(value: &str) -> Option<&'static str> {
    let trimmed = value.trim();
    if trimmed.len() == 2 && trimmed.bytes().all(|b| b.is_ascii_alphabetic()) {
        let code = trimmed.to_ascii_uppercase();
        return super::phone::known_region(&code);
    }
    let key = slug(trimmed).replace('_', "");
    NAMES
        .iter()
        .find(|(_, names)| names.contains(&key.as_str()))
        .map(|(code, _)| *code)
}

#[cfg(test)]
mod tests {
    use super::region_of;

    #[test]
    fn codes_and_names() {
        for (value, region) in [
            ("CZ", "CZ"),
            ("cz", "CZ"),
            ("Czech Republic", "CZ"),
            ("Česko", "CZ"),
            ("Česká republika", "CZ"),
            ("Polska", "PL"),
            ("Norge", "NO"),
            ("Deutschland", "DE"),
            ("USA", "US"),
            ("SK", "SK"),
            ("Slovensko", "SK"),
            ("GB", "GB"),
        ] {
            assert_eq!(region_of(value), Some(region), "{value}");
        }
        assert_eq!(region_of("Atlantis"), None);
        assert_eq!(region_of("XX"), None);
        assert_eq!(region_of(""), None);
    }
}
