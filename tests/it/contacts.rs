//! `kontakt contacts list|show|add|delete|export` through the binary.

use serde_json::Value;

use crate::common::{fails, succeeds};
use crate::import::{SECOND_ARGS, base_store, csv_rows, import, query};

fn stdout(dir: &std::path::Path, args: &[&str]) -> String {
    String::from_utf8(succeeds(dir, args)).expect("utf-8")
}

#[test]
fn add_normalizes_and_show_prints_every_column() {
    let dir = tempfile::tempdir().expect("tempdir");
    let dir = dir.path();
    let id = stdout(
        dir,
        &[
            "contacts",
            "add",
            "email= Jan@Example.CZ",
            "phone=777 123 456",
            "birth_date=1.2.1990",
            "email_opt_in=ano",
            "custom.shoe_size=44",
            "--default-country",
            "CZ",
            "--tag",
            "manual",
        ],
    );
    assert_eq!(id.trim(), "1 created");
    let shown: Value = serde_json::from_str(&stdout(dir, &["contacts", "show", "1", "--json"])).expect("JSON");
    assert_eq!(shown["id"], 1);
    assert_eq!(shown["import_id"], Value::Null);
    assert_eq!(shown["email"], "jan@example.cz");
    assert_eq!(shown["phone"], "+420777123456");
    assert_eq!(shown["birth_date"], "1990-02-01");
    assert_eq!(shown["email_opt_in"], "opt-in");
    assert_eq!(shown["sms_opt_in"], "unknown");
    assert_eq!(shown["tags"], "manual");
    assert_eq!(shown["custom.shoe_size"], "44");
    let text = stdout(dir, &["contacts", "show", "1"]);
    assert!(
        text.lines()
            .any(|l| l.starts_with("email ") && l.ends_with("jan@example.cz")),
        "{text}"
    );

    // Invalid values and unknown fields are usage errors; nothing is added.
    let err = fails(dir, &["contacts", "add", "email=not-an-email"], 2);
    assert!(err.contains("not-an-email"), "{err}");
    let err = fails(dir, &["contacts", "add", "shoe=44"], 2);
    assert!(err.contains("unknown field"), "{err}");
    let err = fails(dir, &["contacts", "show", "2"], 2);
    assert!(err.contains("no contact with id 2"), "{err}");
    assert_eq!(
        query(&dir.join("kontakt.duckdb"), "SELECT count(*) FROM contacts"),
        [["1"]]
    );
}

#[test]
fn list_filters_and_delete_is_all_or_nothing() {
    let dir = tempfile::tempdir().expect("tempdir");
    let dir = dir.path();
    base_store(dir);
    import(dir, SECOND_ARGS);
    let ids = |args: &[&str]| -> Vec<i64> {
        let text = stdout(dir, &[&["contacts", "list", "--json", "--limit", "0"], args].concat());
        let list: Value = serde_json::from_str(&text).expect("JSON");
        list.as_array()
            .expect("array")
            .iter()
            .map(|c| c["id"].as_i64().expect("id"))
            .collect()
    };
    assert_eq!(ids(&[]), [1, 2, 3, 4, 5, 6, 7]);
    assert_eq!(ids(&["--import", "second"]), [7]);
    assert_eq!(ids(&["--tag", "spring"]), [1, 2, 7]);
    assert_eq!(ids(&["--tag", "spring", "--tag", "vip"]), [1]);
    assert_eq!(ids(&["--type", "company"]), Vec::<i64>::new());
    let text = stdout(dir, &["contacts", "list", "--limit", "2"]);
    assert_eq!(text.lines().count(), 3, "{text}");
    let err = fails(dir, &["contacts", "list", "--import", "nope"], 2);
    assert!(err.contains("nope"), "{err}");

    let err = fails(dir, &["contacts", "delete", "1", "99"], 2);
    assert!(err.contains("99"), "{err}");
    assert_eq!(ids(&[]).len(), 7);
    stdout(dir, &["contacts", "delete", "1", "7"]);
    assert_eq!(ids(&[]), [2, 3, 4, 5, 6]);
}

#[test]
fn export_writes_spec_columns_as_csv_and_parquet() {
    let dir = tempfile::tempdir().expect("tempdir");
    let dir = dir.path();
    base_store(dir);
    import(dir, &[SECOND_ARGS, &["--unmapped", "custom"]].concat());
    stdout(dir, &["contacts", "export", "-o", "all.csv"]);
    let mut reader = csv::Reader::from_path(dir.join("all.csv")).expect("csv");
    let header: Vec<String> = reader.headers().expect("header").iter().map(str::to_string).collect();
    let mut expected: Vec<&str> = vec!["id", "type", "created_at", "updated_at", "import_id"];
    expected.extend(kontakt::fields::STANDARD_FIELDS.iter().map(|f| f.name));
    assert_eq!(&header[..expected.len()], expected.as_slice());
    assert!(
        header[expected.len()..].iter().all(|c| c.starts_with("custom.")),
        "{header:?}"
    );
    let rows = csv_rows(&dir.join("all.csv"));
    assert_eq!(rows.len(), 7);
    assert_eq!(rows[0]["tags"], "vip;b2b;spring");
    assert_eq!(rows[0]["email"], "anna@x.cz");

    stdout(
        dir,
        &["contacts", "export", "--import", "second", "-o", "second.parquet"],
    );
    let parquet = dir.join("second.parquet");
    let rows = crate::import::query_files(&format!(
        "SELECT id, email, tags FROM read_parquet('{}')",
        parquet.display()
    ));
    assert_eq!(rows, [["7", "gina@x.cz", "spring"]]);
    // A directory that does not exist is a one-line runtime error.
    let err = fails(dir, &["contacts", "export", "-o", "no/such/dir/x.csv"], 1);
    assert!(err.contains("no/such/dir/x.csv"), "{err}");
}

// ---- issue 21 (engineer B): export round trip, contacts add/show/list, Excel ----

/// A store with every kind of field: names, consents, a birth date, a
/// gender, tags, a custom field, phones with a country, external ids.
fn rich_store(dir: &std::path::Path) {
    crate::common::write(
        dir,
        "rich.csv",
        "External ID,First name,Last name,Email,Phone,Country,Gender,Birth date,Email opt in,SMS opt in,Tags,Shoe size,City\n\
         crm-17,Anna,Nováková,anna@x.cz,777 123 456,CZ,žena,1.2.1990,ano,ne,vip;b2b,38,Brno\n\
         crm-18,Piotr,Kowalski,piotr@x.pl,601 234 567,Polska,M,1985-07-30,false,true,,44,\"Kraków, Stare Miasto\"\n\
         crm-19,Ola,Nordmann,ola@x.no,,NO,,,unknown,,lead,,\"=1+1\"\n",
    );
    let summary = import(dir, &["rich.csv", "--map", "Shoe size=custom.shoe_size"]);
    assert_eq!(summary["imported"], 3, "{summary}");
}

/// An export's rows without `updated_at` (which an update may move).
fn without_updated_at(path: &std::path::Path) -> Vec<Vec<(String, String)>> {
    let mut rows: Vec<Vec<(String, String)>> = csv_rows(path)
        .into_iter()
        .map(|r| {
            let mut r: Vec<(String, String)> = r.into_iter().filter(|(k, _)| k != "updated_at").collect();
            r.sort();
            r
        })
        .collect();
    rows.sort();
    rows
}

#[test]
fn export_imports_back_unchanged() {
    let dir = tempfile::tempdir().expect("tempdir");
    let dir = dir.path();
    rich_store(dir);
    stdout(dir, &["contacts", "export", "-o", "all.csv"]);
    let first = without_updated_at(&dir.join("all.csv"));
    assert_eq!(first.len(), 3);
    let external: Vec<String> = csv_rows(&dir.join("all.csv"))
        .iter()
        .map(|r| r["external_id"].clone())
        .collect();
    assert_eq!(external, ["crm-17", "crm-18", "crm-19"]);

    // Preview suggests the mapping the import uses: every field column
    // back to its field, the store's own columns to nothing.
    let preview = crate::common::preview_json(dir, "all.csv", &[]);
    let mapping = preview["mapping"].as_object().expect("mapping");
    for column in ["id", "type", "created_at", "updated_at", "import_id"] {
        assert!(!mapping.contains_key(column), "{column}: {mapping:?}");
    }
    for field in kontakt::fields::STANDARD_FIELDS {
        assert_eq!(mapping[field.name], field.name, "{mapping:?}");
    }
    assert_eq!(mapping["custom.shoe_size"], "custom.shoe_size");

    // Re-importing the unchanged export changes no contact, not even its
    // `updated_at`: the files are byte for byte the same.
    // (matched by email, by the store's id, and with --unmapped custom,
    // where the bookkeeping columns are still not data).
    let exported = std::fs::read(dir.join("all.csv")).expect("export");
    for (name, flags) in [
        ("back", &[][..]),
        ("by-id", &["--primary-key", "id", "--mode", "update"]),
        ("custom", &["--unmapped", "custom"]),
    ] {
        let summary = import(dir, &[&["all.csv", "--name", name][..], flags].concat());
        assert_eq!(summary["updated"], 3, "{name}: {summary}");
        assert_eq!(summary["imported"], 0, "{name}: {summary}");
        assert_eq!(summary["contacts_updated"], 0, "{name}: {summary}");
        stdout(dir, &["contacts", "export", "-o", "again.csv"]);
        assert!(
            std::fs::read(dir.join("again.csv")).expect("export") == exported,
            "{name}: a contact changed"
        );
    }
}

#[test]
fn export_writes_a_workbook_standard_output_and_a_bom() {
    let dir = tempfile::tempdir().expect("tempdir");
    let dir = dir.path();
    rich_store(dir);
    stdout(dir, &["contacts", "export", "-o", "all.csv"]);
    let first = without_updated_at(&dir.join("all.csv"));

    // A real workbook (a zip of XML parts), read back as the same table.
    stdout(dir, &["contacts", "export", "-o", "all.xlsx"]);
    let bytes = std::fs::read(dir.join("all.xlsx")).expect("xlsx");
    assert!(bytes.starts_with(b"PK\x03\x04"), "not a workbook");
    let preview = crate::common::preview_json(dir, "all.xlsx", &[]);
    assert_eq!(preview["format"], "xlsx");
    let csv_header: Vec<String> = csv::Reader::from_path(dir.join("all.csv"))
        .expect("csv")
        .headers()
        .expect("header")
        .iter()
        .map(str::to_string)
        .collect();
    assert_eq!(preview["columns"], serde_json::json!(csv_header));
    let rows = crate::common::rows(&preview);
    let email = csv_header.iter().position(|c| c == "email").expect("email");
    let city = csv_header.iter().position(|c| c == "city").expect("city");
    assert_eq!(rows[0][email], "anna@x.cz");
    assert_eq!(rows[1][city], "Kraków, Stare Miasto");
    assert_eq!(rows[2][city], "=1+1", "a text cell, not a formula");
    let summary = import(dir, &["all.xlsx", "--name", "from-xlsx"]);
    assert_eq!(summary["updated"], 3, "{summary}");
    stdout(dir, &["contacts", "export", "-o", "again.csv"]);
    assert_eq!(without_updated_at(&dir.join("again.csv")), first);

    // `-o -`: CSV on standard output, the same rows.
    let out = succeeds(dir, &["contacts", "export", "-o", "-"]);
    crate::common::write(dir, "stdout.csv", &out);
    assert_eq!(without_updated_at(&dir.join("stdout.csv")), first);
    let err = fails(dir, &["contacts", "export", "-o", "-", "--format", "parquet"], 2);
    assert!(err.contains("standard output"), "{err}");

    // The name of a format kontakt does not write is refused (CSV in a
    // .json file misleads what reads it next), unless --format says CSV.
    for name in ["all.json", "all.xls", "all.csv.gz"] {
        let err = fails(dir, &["contacts", "export", "-o", name], 2);
        assert!(err.contains("an export is CSV, Parquet"), "{name}: {err}");
        assert!(!dir.join(name).exists(), "{name} written");
    }
    stdout(dir, &["contacts", "export", "-o", "all.json", "--format", "csv"]);
    assert_eq!(without_updated_at(&dir.join("all.json")), first);

    // --bom: the file starts with a UTF-8 BOM and still imports back.
    stdout(dir, &["contacts", "export", "--bom", "-o", "bom.csv"]);
    let bytes = std::fs::read(dir.join("bom.csv")).expect("bom.csv");
    assert!(bytes.starts_with(b"\xEF\xBB\xBFid,type,"), "{:?}", &bytes[..12]);
    let out = succeeds(dir, &["contacts", "export", "--bom", "-o", "-"]);
    assert!(out.starts_with(b"\xEF\xBB\xBFid,"));
    let summary = import(dir, &["bom.csv", "--name", "from-bom"]);
    assert_eq!(summary["updated"], 3, "{summary}");
    let preview = crate::common::preview_json(dir, "bom.csv", &[]);
    assert_eq!(preview["columns"][0], "id");
}

#[test]
fn add_updates_the_contact_with_that_email_and_show_finds_by_email_or_phone() {
    let dir = tempfile::tempdir().expect("tempdir");
    let dir = dir.path();
    let add = |args: &[&str]| stdout(dir, &[&["contacts", "add"], args].concat());
    assert_eq!(
        add(&["email=Jan.Novak@Example.cz", "first_name=Jan", "--tag", "a"]),
        "1 created\n"
    );
    assert_eq!(
        add(&["email= jan.novak@example.CZ ", "phone=+420 777 123 456", "--tag", "b"]),
        "1 updated\n"
    );
    let db = dir.join("kontakt.duckdb");
    assert_eq!(
        query(
            &db,
            "SELECT id, email, first_name, phone, array_to_string(tags, ';') FROM contacts"
        ),
        [["1", "jan.novak@example.cz", "Jan", "+420777123456", "a;b"]]
    );
    // No email: no key, a new contact.
    assert_eq!(
        add(&["mobile=777123456", "full_name=Eva", "--default-country", "CZ"]),
        "2 created\n"
    );

    // Errors name the field as typed, never --set.
    let err = fails(dir, &["contacts", "add", "email=foo"], 2);
    assert!(err.contains("email: \"foo\" is not a valid email"), "{err}");
    assert!(!err.contains("--set"), "{err}");
    let err = fails(dir, &["contacts", "add", "email=x@y.cz", "birth_date=31.2.1990"], 2);
    assert!(err.contains("birth_date: \"31.2.1990\" is not a valid date"), "{err}");
    let err = fails(dir, &["contacts", "add", "shoe=44"], 2);
    assert!(err.starts_with("kontakt: shoe=44: unknown field"), "{err}");
    assert!(!err.contains("--set"), "{err}");

    // show: by id, by email (normalized), by phone or mobile (normalized).
    let show = |args: &[&str]| -> Value {
        serde_json::from_str(&stdout(dir, &[&["contacts", "show", "--json"], args].concat())).expect("JSON")
    };
    assert_eq!(show(&["1"])["email"], "jan.novak@example.cz");
    assert_eq!(show(&["JAN.NOVAK@example.cz"])["id"], 1);
    // Two contacts with one number (phone of one, mobile of the other): both.
    let both = show(&["777 123 456", "--default-country", "CZ"]);
    assert_eq!(show(&["+420 777 123 456"]), both);
    let ids: Vec<i64> = both
        .as_array()
        .expect("several: an array")
        .iter()
        .map(|c| c["id"].as_i64().expect("id"))
        .collect();
    assert_eq!(ids, [1, 2]);
    let err = fails(dir, &["contacts", "show", "nobody@x.cz"], 2);
    assert!(err.contains("no contact with email nobody@x.cz"), "{err}");

    // list --email / --phone, normalized like import.
    let ids = |args: &[&str]| -> Vec<i64> {
        let text = stdout(dir, &[&["contacts", "list", "--json"], args].concat());
        let list: Value = serde_json::from_str(&text).expect("JSON");
        list.as_array()
            .expect("array")
            .iter()
            .map(|c| c["id"].as_i64().expect("id"))
            .collect()
    };
    assert_eq!(ids(&["--email", " Jan.Novak@EXAMPLE.cz"]), [1]);
    assert_eq!(ids(&["--phone", "00420777123456"]), [1, 2]);
    assert_eq!(ids(&["--email", "other@x.cz"]), Vec::<i64>::new());
    let err = fails(dir, &["contacts", "list", "--email", "foo"], 2);
    assert!(err.contains("email: \"foo\" is not a valid email"), "{err}");
}

#[test]
fn add_skips_when_several_contacts_have_the_email() {
    let dir = tempfile::tempdir().expect("tempdir");
    let dir = dir.path();
    crate::common::write(dir, "a.csv", "Email,Jméno\na@x.cz,Anna\n");
    import(dir, &["a.csv"]);
    import(dir, &["a.csv", "--name", "again", "--on-one-match", "import"]);
    assert_eq!(
        stdout(dir, &["contacts", "add", "email=A@x.cz", "first_name=Zoe"]),
        "1;2 skipped\n"
    );
    assert_eq!(
        query(
            &dir.join("kontakt.duckdb"),
            "SELECT first_name FROM contacts ORDER BY id"
        ),
        [["Anna"], ["Anna"]]
    );
}

// ---- issue 21 (engineer E): one CSV writer, add within the type, tags, SIGPIPE ----

#[test]
fn every_csv_export_writes_the_same_bytes() {
    let dir = tempfile::tempdir().expect("tempdir");
    let dir = dir.path();
    // Empty fields (and a contact without tags), commas, quotes and a
    // line break inside values.
    crate::common::write(
        dir,
        "odd.csv",
        "Email,City,Note,Tags\n\
         a@x.cz,\"Kraków, Stare Miasto\",\"said \"\"hi\"\"\",vip\n\
         b@x.cz,,\"two\nlines\",\n\
         c@x.cz,Brno,,\n",
    );
    import(dir, &["odd.csv"]);
    stdout(dir, &["contacts", "export", "-o", "plain.csv"]);
    let plain = std::fs::read(dir.join("plain.csv")).expect("plain.csv");
    assert!(plain.windows(5).any(|w| w == b"\"two\n"), "the line break kept");
    let piped = succeeds(dir, &["contacts", "export", "-o", "-"]);
    assert!(
        piped == plain,
        "-o - differs:\n{}\n{}",
        String::from_utf8_lossy(&piped),
        String::from_utf8_lossy(&plain)
    );
    stdout(dir, &["contacts", "export", "--bom", "-o", "bom.csv"]);
    let bom = std::fs::read(dir.join("bom.csv")).expect("bom.csv");
    assert_eq!(&bom[..3], b"\xEF\xBB\xBF");
    assert!(
        bom[3..] == plain[..],
        "--bom differs:\n{}",
        String::from_utf8_lossy(&bom)
    );
    let piped_bom = succeeds(dir, &["contacts", "export", "--bom", "-o", "-"]);
    assert!(piped_bom == bom, "--bom -o - differs");
    // The temporary file beside the target is gone.
    let mut names: Vec<String> = std::fs::read_dir(dir)
        .expect("dir")
        .map(|e| e.expect("entry").file_name().to_string_lossy().into_owned())
        .filter(|n| n.ends_with(".csv") || n.contains("bom"))
        .collect();
    names.sort();
    assert_eq!(names, ["bom.csv", "odd.csv", "plain.csv"]);
}

#[test]
fn add_matches_only_contacts_of_its_type() {
    let dir = tempfile::tempdir().expect("tempdir");
    let dir = dir.path();
    let add = |args: &[&str]| stdout(dir, &[&["contacts", "add"], args].concat());
    assert_eq!(add(&["email=x@x.cz", "first_name=Jan"]), "1 created\n");
    assert_eq!(
        add(&["email=x@x.cz", "company=Acme", "--type", "company"]),
        "2 created\n"
    );
    assert_eq!(add(&["email=X@x.cz", "last_name=Novák"]), "1 updated\n");
    assert_eq!(add(&["email=x@x.cz", "city=Brno", "--type", "company"]), "2 updated\n");
    assert_eq!(
        query(
            &dir.join("kontakt.duckdb"),
            "SELECT id, type, first_name, last_name, company, city FROM contacts ORDER BY id"
        ),
        [
            ["1", "person", "Jan", "Novák", "", ""],
            ["2", "company", "", "", "Acme", "Brno"]
        ]
    );
}

#[test]
fn a_tag_with_the_export_separator_or_empty_is_refused() {
    let dir = tempfile::tempdir().expect("tempdir");
    let dir = dir.path();
    crate::common::write(dir, "a.csv", "Email\na@x.cz\n");
    for bad in ["a;b", "", "  "] {
        let err = fails(dir, &["contacts", "add", "email=t@x.cz", "--tag", bad, "--tag", "c"], 2);
        assert!(err.contains("--tag"), "{err}");
        let err = fails(dir, &["import", "a.csv", "--tag", "c", "--tag", bad], 2);
        assert!(err.contains(&format!("{bad:?}")), "{err}");
    }
    assert!(
        !dir.join("kontakt.duckdb").exists()
            || query(&dir.join("kontakt.duckdb"), "SELECT count(*) FROM contacts") == [["0"]]
    );
    // Tags without `;` survive an export and an import back.
    stdout(dir, &["contacts", "add", "email=t@x.cz", "--tag", "a b", "--tag", "c"]);
    stdout(dir, &["contacts", "export", "-o", "all.csv"]);
    import(dir, &["all.csv", "--name", "back"]);
    assert_eq!(
        query(
            &dir.join("kontakt.duckdb"),
            "SELECT array_to_string(tags, '|') FROM contacts"
        ),
        [["a b|c"]]
    );
}

#[test]
fn a_closed_pipe_ends_the_listing_quietly() {
    use std::io::BufRead;
    let dir = tempfile::tempdir().expect("tempdir");
    let dir = dir.path();
    let mut text = String::from("Email,First name\n");
    for i in 0..3000 {
        text.push_str(&format!("p{i}@x.cz,Name {i}\n"));
    }
    crate::common::write(dir, "many.csv", text);
    import(dir, &["many.csv"]);
    let db = dir.join("kontakt.duckdb");
    let before = query(&db, "SELECT count(*), max(updated_at) FROM contacts");
    {
        let args = ["contacts", "list", "--limit", "0"];
        let mut child =
            crate::common::with_store(&mut std::process::Command::new(assert_cmd::cargo::cargo_bin("kontakt")))
                .args(args)
                .current_dir(dir)
                .stdout(std::process::Stdio::piped())
                .stderr(std::process::Stdio::piped())
                .spawn()
                .expect("spawn");
        {
            let mut out = std::io::BufReader::new(child.stdout.take().expect("stdout"));
            let mut line = String::new();
            out.read_line(&mut line).expect("first line");
            assert!(!line.is_empty());
        }
        let output = child.wait_with_output().expect("wait");
        let stderr = String::from_utf8_lossy(&output.stderr);
        assert!(!stderr.contains("panicked"), "{args:?}: {stderr}");
        assert!(stderr.is_empty(), "{args:?}: {stderr}");
        use std::os::unix::process::ExitStatusExt;
        assert!(
            output.status.success() || output.status.signal() == Some(libc::SIGPIPE),
            "{args:?}: {:?}",
            output.status
        );
    }
    assert_eq!(query(&db, "SELECT count(*), max(updated_at) FROM contacts"), before);
}

on_postgres_too!(
    add_normalizes_and_show_prints_every_column,
    list_filters_and_delete_is_all_or_nothing,
    export_writes_spec_columns_as_csv_and_parquet,
    export_imports_back_unchanged,
    export_writes_a_workbook_standard_output_and_a_bom,
    add_updates_the_contact_with_that_email_and_show_finds_by_email_or_phone,
    add_skips_when_several_contacts_have_the_email,
    every_csv_export_writes_the_same_bytes,
    add_matches_only_contacts_of_its_type,
    a_tag_with_the_export_separator_or_empty_is_refused,
    a_closed_pipe_ends_the_listing_quietly,
);
