//! The normalize stage through the library (read -> map -> normalize), until
//! `kontakt import --dry-run` exists to show it through the binary.

use arrow::array::{Array, StringArray, UInt64Array};
use kontakt::map::{self, MappingOptions};
use kontakt::normalize::{InvalidValues, NormalizeSettings, Plan, Reason};
use kontakt::read::{self, Input, ReadOptions};

const FILE: &str = "\
ID;E-mail;Telefon;Země;Pohlaví;Datum narození;Souhlas e-mail;Jméno;Štítky;Oblíbená barva
1; Jan.Novak@Seznam.CZ ;777 123 456;CZ;muž;14.03.1985;ano;  Jan   Novák ;\"vip; b2b,vip\";modrá
2;eva@@x.cz;501 234 567;Polska;K;;;Eva;;
3;;;;;;;Petr;;
;;;;;;;;;zelená
5;ragged
6;ola@nordmann.no;412 34 567;Norge;x;;nei;Ola;;
7;bad@;;;;;;Karel;;
";

struct Outcome {
    kept: Vec<(u64, Vec<Option<String>>)>,
    names: Vec<String>,
    failed: Vec<(u64, Reason, String)>,
    /// Failed rows' values as read, joined with `|`.
    originals: Vec<String>,
    warnings: Vec<Option<String>>,
    primary_hashes: Vec<Option<u64>>,
}

fn run(invalid_values: InvalidValues) -> Outcome {
    run_file(FILE, invalid_values)
}

fn run_file(file: &str, invalid_values: InvalidValues) -> Outcome {
    let dir = tempfile::tempdir().expect("tempdir");
    let path = dir.path().join("kontakty.csv");
    std::fs::write(&path, file).expect("write");
    let table = read::open(&Input::Path(path), &ReadOptions::default()).expect("open");
    let options = MappingOptions {
        auto: true,
        maps: vec!["Štítky=tags".into()],
        ..MappingOptions::default()
    };
    let mapping = map::resolve(&table.columns, &options).expect("mapping");
    let settings = NormalizeSettings {
        invalid_values,
        primary_key: Some("email"),
        secondary_key: Some("phone"),
        ..NormalizeSettings::default()
    };
    let plan = Plan::new(&mapping, settings).expect("plan");
    let names: Vec<String> = plan.field_names().map(str::to_string).collect();
    let mut outcome = Outcome {
        kept: vec![],
        names: names.clone(),
        failed: vec![],
        originals: vec![],
        warnings: vec![],
        primary_hashes: vec![],
    };
    for raw in table {
        let normalized = plan.normalize(&raw.expect("batch"));
        let b = &normalized.batch;
        let rows = b.column(0).as_any().downcast_ref::<UInt64Array>().expect("rows");
        for i in (0..b.num_rows()).filter(|&i| normalized.is_kept(i)) {
            let values = (1..=names.len())
                .map(|c| {
                    let column = b.column(c).as_any().downcast_ref::<StringArray>().expect("utf8");
                    (!column.is_null(i)).then(|| column.value(i).to_string())
                })
                .collect();
            outcome.kept.push((rows.value(i), values));
            let warnings = b.column_by_name("warnings").expect("warnings");
            let warnings = warnings.as_any().downcast_ref::<StringArray>().expect("utf8");
            outcome
                .warnings
                .push((!warnings.is_null(i)).then(|| warnings.value(i).to_string()));
            let hashes = b.column_by_name("__primary_hash").expect("hash");
            let hashes = hashes.as_any().downcast_ref::<UInt64Array>().expect("u64");
            outcome
                .primary_hashes
                .push((!hashes.is_null(i)).then(|| hashes.value(i)));
        }
        for f in &normalized.failed {
            outcome.originals.push(normalized.original(f).join("|"));
        }
        outcome
            .failed
            .extend(normalized.failed.into_iter().map(|f| (f.row, f.reason, f.detail)));
    }
    outcome
}

fn field<'a>(o: &'a Outcome, row: u64, name: &str) -> Option<&'a str> {
    let column = o.names.iter().position(|n| n == name).expect("field");
    o.kept
        .iter()
        .find(|(r, _)| *r == row)
        .and_then(|(_, v)| v[column].as_deref())
}

#[test]
fn normalizes_values_and_fails_rows_with_reasons() {
    let o = run(InvalidValues::Fail);
    assert_eq!(
        o.names,
        [
            "external_id",
            "email",
            "phone",
            "country",
            "gender",
            "birth_date",
            "email_opt_in",
            "first_name",
            "tags"
        ]
    );
    assert_eq!(field(&o, 1, "email"), Some("jan.novak@seznam.cz"));
    assert_eq!(field(&o, 1, "phone"), Some("+420777123456"));
    assert_eq!(field(&o, 1, "gender"), Some("M"));
    assert_eq!(field(&o, 1, "birth_date"), Some("1985-03-14"));
    assert_eq!(field(&o, 1, "email_opt_in"), Some("opt-in"));
    assert_eq!(field(&o, 1, "first_name"), Some("Jan Novák"));
    assert_eq!(field(&o, 1, "tags"), Some("vip;b2b"));
    assert_eq!(
        o.primary_hashes[0],
        Some(xxhash_rust::xxh3::xxh3_64(b"jan.novak@seznam.cz"))
    );

    let failed: Vec<(u64, Reason)> = o.failed.iter().map(|(r, reason, _)| (*r, *reason)).collect();
    assert_eq!(
        failed,
        vec![
            (2, Reason::WrongFormat),
            (3, Reason::MissingKey),
            (4, Reason::NoFields),
            (5, Reason::BadRow),
            (6, Reason::WrongFormat),
            (7, Reason::WrongFormat),
        ]
    );
    let detail = |row: u64| &o.failed.iter().find(|f| f.0 == row).expect("failed row").2;
    assert_eq!(detail(2), "email: \"eva@@x.cz\" (more than one @)");
    assert_eq!(detail(3), "email and phone are empty");
    assert_eq!(detail(6), "gender: \"x\" (not a gender)");
    assert!(detail(5).contains("expected 10 fields, found 2"), "{}", detail(5));
    // Failed rows keep their values exactly as read, untrimmed.
    assert_eq!(o.originals[0], "2|eva@@x.cz|501 234 567|Polska|K|||Eva||");
    assert_eq!(o.originals[3], "5|ragged");
    assert_eq!(o.originals[5], "7|bad@||||||Karel||");
    // Every row read is either kept or failed, once.
    assert_eq!(o.kept.len() + o.failed.len(), 7);
}

#[test]
fn a_word_repeated_in_a_batch_is_judged_in_every_row() {
    // Genders and consents are folded once per distinct value of a batch:
    // each row still gets its own verdict.
    let file = "E-mail;Telefon;Pohlaví;Souhlas e-mail;Štítky\n\
                a@x.cz;;muž;ano;\n\
                b@x.cz;;x;ano;\n\
                c@x.cz;;muž;možná;\n\
                d@x.cz;;x;možná;\n\
                e@x.cz;;Muž;ano;\n";
    let o = run_file(file, InvalidValues::Fail);
    for row in [1, 5] {
        assert_eq!(field(&o, row, "gender"), Some("M"), "row {row}");
        assert_eq!(field(&o, row, "email_opt_in"), Some("opt-in"), "row {row}");
    }
    let failed: Vec<(u64, &str)> = o.failed.iter().map(|(r, _, d)| (*r, d.as_str())).collect();
    assert_eq!(
        failed,
        vec![
            (2, "gender: \"x\" (not a gender)"),
            (3, "email_opt_in: \"možná\" (not a consent value)"),
            (
                4,
                "gender: \"x\" (not a gender); email_opt_in: \"možná\" (not a consent value)"
            ),
        ]
    );
}

#[test]
fn drop_clears_bad_values_and_keeps_the_row_with_a_warning() {
    let o = run(InvalidValues::Drop);
    assert_eq!(field(&o, 2, "email"), None);
    assert_eq!(field(&o, 2, "phone"), Some("+48501234567"));
    assert_eq!(field(&o, 6, "gender"), None);
    assert_eq!(field(&o, 6, "phone"), Some("+4741234567"));
    let kept_rows: Vec<u64> = o.kept.iter().map(|(r, _)| *r).collect();
    assert_eq!(kept_rows, vec![1, 2, 6]);
    assert_eq!(
        o.warnings[1].as_deref(),
        Some("dropped email: \"eva@@x.cz\" (more than one @)")
    );
    assert_eq!(o.warnings[0], None);
    // A row left with no key after dropping still fails.
    let row7 = o.failed.iter().find(|f| f.0 == 7).expect("row 7 failed");
    assert_eq!(row7.1, Reason::MissingKey);
    assert!(row7.2.contains("after dropping email: \"bad@\""), "{}", row7.2);
    assert_eq!(o.kept.len() + o.failed.len(), 7);
}

#[test]
fn plan_usage_errors() {
    let columns: Vec<String> = ["E-mail", "Pohlaví"].iter().map(|s| s.to_string()).collect();
    let options = MappingOptions {
        auto: true,
        sets: vec!["sms_opt_in=maybe".into()],
        ..MappingOptions::default()
    };
    let mapping = map::resolve(&columns, &options).expect("mapping");
    let err = Plan::new(&mapping, NormalizeSettings::default()).expect_err("bad --set");
    assert_eq!(err.exit_code(), 2);
    assert!(err.to_string().contains("--set sms_opt_in=maybe"), "{err}");

    let mapping = map::resolve(
        &columns,
        &MappingOptions {
            auto: true,
            ..MappingOptions::default()
        },
    )
    .expect("map");
    let settings = NormalizeSettings {
        primary_key: Some("phone"),
        ..NormalizeSettings::default()
    };
    let err = Plan::new(&mapping, settings).expect_err("unmapped key");
    assert!(
        err.to_string()
            .contains("--primary-key phone: no column is mapped to phone"),
        "{err}"
    );
}

#[test]
fn a_set_country_gives_phones_their_country() {
    let dir = tempfile::tempdir().expect("tempdir");
    let path = dir.path().join("p.csv");
    std::fs::write(&path, "E-mail,Telefon\na@x.cz,777 123 456\nb@x.cz,41234567\n").expect("write");
    let table = read::open(&Input::Path(path), &ReadOptions::default()).expect("open");
    let options = MappingOptions {
        auto: true,
        sets: vec!["country=Česko".into()],
        ..MappingOptions::default()
    };
    let mapping = map::resolve(&table.columns, &options).expect("mapping");
    let settings = NormalizeSettings {
        primary_key: Some("email"),
        ..NormalizeSettings::default()
    };
    let plan = Plan::new(&mapping, settings).expect("plan");
    let batch = plan.normalize(&table.into_iter().next().expect("one batch").expect("batch"));
    let phones = batch.batch.column_by_name("phone").expect("phone");
    let phones = phones.as_any().downcast_ref::<StringArray>().expect("utf8");
    assert_eq!(phones.value(0), "+420777123456");
    // A Norwegian number is not a valid Czech one.
    assert_eq!(batch.failed.len(), 1);
    assert_eq!(batch.failed[0].reason, Reason::WrongFormat);
    assert!(
        batch.failed[0].detail.starts_with("phone: \"41234567\""),
        "{}",
        batch.failed[0].detail
    );
}
