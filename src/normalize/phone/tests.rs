//! Phone normalization: the rules, E.164 output, and the fast path against the phonenumber crate.

use rand::{Rng, SeedableRng};
use rand_chacha::ChaCha8Rng;
use regex::Regex;

use super::*;

fn norm(value: &str, row: Option<&str>, default: Option<&'static str>) -> Result<String, &'static str> {
    let settings = PhoneSettings {
        default_region: default,
        ..PhoneSettings::default()
    };
    let mut out = String::new();
    normalize(value, row, &settings, &mut out).map(|()| out)
}

#[test]
fn real_world_numbers_to_e164() {
    let cases: &[(&str, Option<&str>, &str)] = &[
        // Czech Republic
        ("+420 777 123 456", None, "+420777123456"),
        ("00420777123456", None, "+420777123456"),
        ("777 123 456", Some("CZ"), "+420777123456"),
        ("777-123-456", Some("CZ"), "+420777123456"),
        ("420777123456", Some("CZ"), "+420777123456"),
        ("(+420) 602 123 456", None, "+420602123456"),
        ("+420 224 812 345", None, "+420224812345"),
        ("224 812 345", Some("CZ"), "+420224812345"),
        // Slovakia
        ("+421 905 123 456", None, "+421905123456"),
        ("0905 123 456", Some("SK"), "+421905123456"),
        ("00421 2 2123 4567", None, "+421221234567"),
        // Poland
        ("+48 501 234 567", None, "+48501234567"),
        ("501-234-567", Some("PL"), "+48501234567"),
        ("(+48) 501234567", None, "+48501234567"),
        ("22 123 45 67", Some("PL"), "+48221234567"),
        ("0048 601 234 567", None, "+48601234567"),
        // Norway
        ("+47 412 34 567", None, "+4741234567"),
        ("41234567", Some("NO"), "+4741234567"),
        ("0047 22 12 34 56", None, "+4722123456"),
        ("22 12 34 56", Some("NO"), "+4722123456"),
        // Germany: trunk prefix 0
        ("0151 23456789", Some("DE"), "+4915123456789"),
        ("+49 (0)151 23456789", None, "+4915123456789"),
        ("030 1234567", Some("DE"), "+49301234567"),
        ("+49 30 1234567", None, "+49301234567"),
        ("0049 171 1234567", None, "+491711234567"),
        // United States
        ("(212) 345-6789", Some("US"), "+12123456789"),
        ("+1 212-345-6789", None, "+12123456789"),
        ("1 415 555 2671", Some("US"), "+14155552671"),
        ("212.345.6789", Some("US"), "+12123456789"),
    ];
    for (value, region, expected) in cases {
        assert_eq!(
            norm(value, *region, None).as_deref(),
            Ok(*expected),
            "{value} in {region:?}"
        );
    }
    // The default country applies when the row names none.
    assert_eq!(norm("777123456", None, Some("CZ")).as_deref(), Ok("+420777123456"));
    // The row's own country beats the default.
    assert_eq!(norm("41234567", Some("NO"), Some("CZ")).as_deref(), Ok("+4741234567"));
}

#[test]
fn invalid_numbers() {
    for (value, region) in [
        ("7771", Some("CZ")),
        ("77712-ABC", Some("CZ")),
        ("+420 123", None),
        ("777123456777123456", Some("CZ")),
        ("n/a", None),
        ("+", None),
        ("12345", None),
    ] {
        assert!(norm(value, region, None).is_err(), "{value} in {region:?}");
    }
}

#[test]
fn every_non_digit_is_removed() {
    // SPEC: the digits are the value with every non-digit removed.
    for (value, region, expected) in [
        ("Tel. 777 123 456", Some("CZ"), "+420777123456"),
        ("777123456 (mobil)", Some("CZ"), "+420777123456"),
        ("tel: +48 501 234 567", None, "+48501234567"),
        ("Handy: 0151 23456789", Some("DE"), "+4915123456789"),
        ("ph 020 7946 0958", Some("GB"), "+442079460958"),
    ] {
        assert_eq!(
            norm(value, region, None).as_deref(),
            Ok(expected),
            "{value} in {region:?}"
        );
    }
    // Letters are not a vanity number's digits; words between digits
    // (an extension, two numbers) make no number.
    assert!(norm("1-800-FLOWERS", Some("US"), None).is_err());
    for value in [
        "777 123 456 ext. 12",
        "030 1234567 Durchwahl 89",
        "602111222 nebo 603111222",
    ] {
        assert_eq!(norm(value, None, None), Err("words between digits"), "{value}");
    }
    assert_eq!(norm("call me", None, None), Err("no digits"));
}

#[test]
fn without_a_country_digits_decide() {
    assert_eq!(norm("777 123 456", None, None).as_deref(), Ok("777123456"));
    assert!(norm("12345", None, None).is_err());
    assert!(norm("1234567890123456", None, None).is_err());
}

#[test]
fn spec_rule_examples() {
    let t = Transform::parse("[11]/-7+8").expect("rule");
    assert_eq!(t.apply("79161234567").as_deref(), Some("89161234567"));
    assert_eq!(t.apply("89161234567"), None);
    assert_eq!(t.apply("7916123456"), None);
    let t = Transform::parse("[10]/+7").expect("rule");
    assert_eq!(t.apply("9161234567").as_deref(), Some("79161234567"));
    for bad in ["[x]/+7", "[11]/7+8", "[11]/-7a", "[11]", "[0]/+1", "[11/+7"] {
        let err = Transform::parse(bad).expect_err(bad);
        assert!(err.contains(bad), "{err}");
    }
    assert_eq!(ValidRule::parse("[11]"), Ok(ValidRule { min: 11, max: 11 }));
    assert!(ValidRule::parse("[11]/+7").is_err());

    let settings = PhoneSettings {
        transforms: vec![Transform::parse("[10]/+7").expect("rule")],
        valid: vec![ValidRule::parse("[11]").expect("rule")],
        default_region: Some("RU"),
    };
    let mut out = String::new();
    normalize("(916) 123-45-67", None, &settings, &mut out).expect("valid");
    assert_eq!(out, "+79161234567");
    assert!(normalize("916 123 45", None, &settings, &mut out).is_err());
}

#[test]
fn dfa_walks_decide_as_the_regex() {
    // Regions' general patterns and mobile numbers, on random digit
    // strings of every length: the walk and the regex agree.
    let mut rng = ChaCha8Rng::seed_from_u64(42);
    let mut matched = 0;
    for id in ["CZ", "SK", "DE", "GB", "US", "NO", "CN", "IN", "AT", "PL"] {
        let meta = DATABASE.by_id(id).expect("region");
        let d = meta.descriptors();
        let patterns =
            [d.general(), d.get(Type::Mobile).expect("mobile")].map(|desc| desc.national_number().as_str().to_string());
        for pattern in patterns {
            let regex = Regex::new(&format!("^(?:{})$", strip_layout(&pattern))).expect("regex");
            let walk = Pattern::new(&pattern).expect("pattern");
            for _ in 0..3000 {
                let len = rng.random_range(1..=14);
                let number: String = (0..len).map(|_| char::from(rng.random_range(b'0'..=b'9'))).collect();
                assert_eq!(walk.is_match(&number), regex.is_match(&number), "{id} {number}");
                matched += usize::from(regex.is_match(&number));
            }
            // Devanagari digits are digits to `\d` too.
            for text in ["", "abc", "\u{967}\u{968}\u{969}\u{96a}\u{96b}\u{96c}\u{96d}"] {
                assert_eq!(walk.is_match(text), regex.is_match(text), "{id} {text:?}");
            }
        }
    }
    assert!(matched > 100, "too few matching numbers drawn ({matched})");
}

/// tests/data/phones.csv: 500 numbers across ten countries in every
/// common writing, with what libphonenumber (Python `phonenumbers`, the
/// oracle; see tests/data/make_phone_fixture.py) makes of each.
#[test]
fn agrees_with_libphonenumber_on_the_fixture() {
    let fixture = include_str!("../../../tests/data/phones.csv");
    let mut reader = csv::Reader::from_reader(fixture.as_bytes());
    let (mut total, mut agree) = (0, 0);
    let mut disagreements = Vec::new();
    for record in reader.records() {
        let record = record.expect("fixture row");
        let (value, region, expected) = (&record[0], &record[1], &record[2]);
        let region = (!region.is_empty()).then_some(region);
        let ours = norm(value, region, None).unwrap_or_default();
        total += 1;
        if ours == expected {
            agree += 1;
        } else {
            disagreements.push(format!(
                "{value:?} in {region:?}: ours {ours:?}, libphonenumber {expected:?}"
            ));
        }
    }
    assert_eq!(total, 500);
    let share = f64::from(agree) / f64::from(total);
    eprintln!(
        "agreement {agree}/{total}; disagreements:\n{}",
        disagreements.join("\n")
    );
    assert!(share >= 0.99, "{agree}/{total} agree:\n{}", disagreements.join("\n"));
}
