//! `kontakt import` through the binary: categories by primary and secondary
//! key, actions, in-file duplicates, tags, --master, --dry-run, outputs, and
//! the store checked afterwards with DuckDB itself.

use std::collections::BTreeSet;
use std::path::Path;

use serde_json::Value;

use crate::common::{fails, kontakt, succeeds, write};

const BASE: &str = "\
E-mail,Telefon,Jméno,Příjmení,Štítky
anna@x.cz,777 000 001,Anna,Nová,vip
bob@x.cz,777 000 002,Bob,,
carl@x.cz,777 000 003,Carl,C,
dana@x.cz,777 000 009,Dana,,
dana.b@x.cz,777 000 009,Dana B,,
eve@x.cz,777 000 010,Eve,,
bad-email,777 000 011,Fred,,
";

/// Built to hit every category: row 1 by primary (email in another case),
/// row 2 by secondary (phone), row 3 two stored contacts by phone, row 4
/// nobody; then an in-file duplicate, a row without keys, a bad phone, and
/// a formula-like bad email that must come back as data.
const SECOND: &str = "\
E-mail,Telefon,Jméno,Příjmení,Štítky,Poznámka
 ANNA@x.cz ,,Anna,Novotná,b2b,
robert@x.cz,+420 777 000 002,Robert,,,=1+2
frank@x.cz,777000009,Frank,,,
gina@x.cz,777 000 099,Gina,,,
gina@x.cz,777 000 098,Gina 2,,,
,,Hana,,,
hana@x.cz,12,Hana,,,
\"=HYPERLINK(\"\"http://x\"\")\",777 000 097,Ivan,,,
";

pub fn import(dir: &Path, args: &[&str]) -> Value {
    let output = kontakt(dir)
        .args(["import", "--progress", "never", "--default-country", "CZ"])
        .args(args)
        .output()
        .expect("run kontakt");
    let stderr = String::from_utf8_lossy(&output.stderr);
    assert!(output.status.success(), "import {args:?} failed: {stderr}");
    let name = args
        .windows(2)
        .find(|w| w[0] == "--name")
        .map(|w| w[1].to_string())
        .unwrap_or_else(|| {
            Path::new(args[0])
                .file_stem()
                .map(|s| s.to_string_lossy().into_owned())
                .expect("stem")
        });
    let out = args
        .windows(2)
        .find(|w| w[0] == "--out")
        .map(|w| dir.join(w[1]))
        .unwrap_or_else(|| {
            // A dry run's outputs never go where a real import's are.
            let dry_run = args.contains(&"--dry-run");
            dir.join("kontakt-out")
                .join(if dry_run { format!("{name}.dry-run") } else { name })
        });
    let text = std::fs::read_to_string(out.join("summary.json")).expect("summary.json");
    serde_json::from_str(&text).expect("summary is JSON")
}

/// Rows of a CSV output as header-keyed maps (a `bad_row` in failed.csv
/// has its fields as read, which may be more than the header's).
pub fn csv_rows(path: &Path) -> Vec<std::collections::HashMap<String, String>> {
    let mut reader = csv::ReaderBuilder::new()
        .flexible(true)
        .from_path(path)
        .expect("open output");
    let header: Vec<String> = reader.headers().expect("header").iter().map(str::to_string).collect();
    reader
        .records()
        .map(|r| {
            let r = r.expect("record");
            header.iter().cloned().zip(r.iter().map(str::to_string)).collect()
        })
        .collect()
}

/// Every value of a query as text ("" for NULL).
/// Inside [`crate::common::on_postgres`], the query runs on the test's
/// PostgreSQL store instead of `db`.
pub fn query(db: &Path, sql: &str) -> Vec<Vec<String>> {
    if let Some(url) = crate::common::store_url() {
        let mut client = crate::common::pg_client(&url);
        return client
            .simple_query(&format!("SELECT * FROM ({sql}) AS q"))
            .expect("query")
            .into_iter()
            .filter_map(|m| match m {
                postgres::SimpleQueryMessage::Row(row) => Some(
                    (0..row.len())
                        .map(|i| row.get(i).unwrap_or_default().to_string())
                        .collect(),
                ),
                _ => None,
            })
            .collect();
    }
    duckdb_rows(&duckdb::Connection::open(db).expect("open store"), sql)
}

/// Every value of a query of files (`read_parquet(…)`) as text, by an
/// in-memory DuckDB, whatever the test's store.
pub fn query_files(sql: &str) -> Vec<Vec<String>> {
    duckdb_rows(&duckdb::Connection::open_in_memory().expect("DuckDB"), sql)
}

fn duckdb_rows(conn: &duckdb::Connection, sql: &str) -> Vec<Vec<String>> {
    let sql = format!("SELECT CAST(COLUMNS(*) AS VARCHAR) FROM ({sql})");
    let mut stmt = conn.prepare(&sql).expect("prepare");
    let mut rows = stmt.query([]).expect("query");
    let mut out = Vec::new();
    while let Some(row) = rows.next().expect("row") {
        let n = row.as_ref().column_count();
        out.push(
            (0..n)
                .map(|i| row.get::<_, Option<String>>(i).expect("text").unwrap_or_default())
                .collect(),
        );
    }
    out
}

/// Runs `sql` (DuckDB's dialect, or `postgres_sql` inside
/// [`crate::common::on_postgres`]) on the test's store.
pub fn execute(db: &Path, sql: &str, postgres_sql: &str) {
    match crate::common::store_url() {
        Some(url) => crate::common::pg_client(&url)
            .batch_execute(postgres_sql)
            .expect("execute"),
        None => duckdb::Connection::open(db)
            .expect("open store")
            .execute_batch(sql)
            .expect("execute"),
    }
}

/// A base store (6 contacts) and the second file, imported into `dir`.
pub fn base_store(dir: &Path) {
    write(dir, "base.csv", BASE);
    write(dir, "second.csv", SECOND);
    let summary = import(dir, &["base.csv"]);
    assert_eq!(summary["imported"], 6);
    assert_eq!(summary["rows_failed"], 1);
}

pub const SECOND_ARGS: &[&str] = &[
    "second.csv",
    "--secondary-key",
    "phone",
    "--tag",
    "spring",
    "--map",
    "Poznámka=note",
];

/// `--out` naming a file is a usage error before anything starts: no
/// group is recorded, the file is left alone.
#[test]
fn an_out_that_is_a_file_is_refused_before_the_import_starts() {
    let dir = tempfile::tempdir().expect("tempdir");
    let dir = dir.path();
    base_store(dir);
    write(dir, "taken.txt", "keep me");
    let err = fails(dir, &["import", "second.csv", "--out", "taken.txt", "--name", "zz"], 2);
    assert!(err.contains("--out taken.txt") && err.contains("directory"), "{err}");
    // Nor under a file.
    let err = fails(
        dir,
        &["import", "second.csv", "--out", "taken.txt/sub", "--name", "zz"],
        2,
    );
    assert!(err.contains("taken.txt is a file"), "{err}");
    assert_eq!(std::fs::read_to_string(dir.join("taken.txt")).expect("file"), "keep me");
    let groups: Value = serde_json::from_slice(&succeeds(dir, &["imports", "list", "--json"])).expect("json");
    assert_eq!(groups.as_array().map(Vec::len), Some(1), "{groups}");
}

#[test]
fn second_import_hits_every_category_with_exact_counts() {
    let dir = tempfile::tempdir().expect("tempdir");
    let dir = dir.path();
    base_store(dir);
    let s = import(dir, SECOND_ARGS);
    for (key, expected) in [
        ("rows_read", 8),
        ("rows_failed", 4),
        ("no_match", 1),
        ("one_match", 2),
        ("multiple_match", 1),
        ("imported", 1),
        ("updated", 2),
        ("skipped", 1),
        ("contacts_updated", 2),
    ] {
        assert_eq!(s[key], expected, "{key} in {s}");
    }
    assert_eq!(s["failed_by_reason"]["not_unique"], 1);
    assert_eq!(s["failed_by_reason"]["missing_key"], 1);
    assert_eq!(s["failed_by_reason"]["wrong_format"], 2);
    assert_eq!(s["phone_metadata"], kontakt::normalize::phone::METADATA_VERSION);
    assert!(s["import_id"].is_i64());

    let out = dir.join("kontakt-out/second");
    let one = csv_rows(&out.join("one_match.csv"));
    assert_eq!(one.len(), 2);
    assert_eq!(one[0]["row"], "1");
    assert_eq!(one[0]["matched_ids"], "1");
    assert_eq!(one[0]["matched_by"], "primary");
    assert_eq!(one[0]["action"], "update");
    assert_eq!(one[0]["email"], "anna@x.cz");
    assert_eq!(one[1]["matched_ids"], "2");
    assert_eq!(one[1]["matched_by"], "secondary");
    // A formula-like value is written as data, exactly as read.
    assert_eq!(one[1]["note"], "=1+2");
    let multiple = csv_rows(&out.join("multiple_match.csv"));
    assert_eq!(multiple.len(), 1);
    assert_eq!(multiple[0]["matched_ids"], "4;5");
    assert_eq!(multiple[0]["action"], "skip");
    let no = csv_rows(&out.join("no_match.csv"));
    assert_eq!(no.len(), 1);
    assert_eq!(no[0]["phone"], "+420777000099");
    assert!(!no[0].contains_key("matched_ids"));
    let failed = csv_rows(&out.join("failed.csv"));
    let reasons: Vec<(&str, &str)> = failed
        .iter()
        .map(|f| (f["row"].as_str(), f["reason"].as_str()))
        .collect();
    assert_eq!(
        reasons,
        [
            ("5", "not_unique"),
            ("6", "missing_key"),
            ("7", "wrong_format"),
            ("8", "wrong_format")
        ]
    );
    assert!(failed[0]["detail"].contains("row 4"), "{}", failed[0]["detail"]);
    assert_eq!(failed[3]["E-mail"], "=HYPERLINK(\"http://x\")");
    assert_eq!(failed[2]["Telefon"], "12");

    // Every input row is in exactly one of the four files.
    let mut seen = BTreeSet::new();
    for file in ["no_match.csv", "one_match.csv", "multiple_match.csv", "failed.csv"] {
        for row in csv_rows(&out.join(file)) {
            assert!(seen.insert(row["row"].parse::<u64>().expect("row")), "row twice");
        }
    }
    assert_eq!(seen, (1..=8).collect());

    // The store: updated by master=file, tags only added, one new contact.
    let db = dir.join("kontakt.duckdb");
    let rows = query(
        &db,
        "SELECT id, email, first_name, last_name, phone, array_to_string(tags, '|') FROM contacts ORDER BY id",
    );
    assert_eq!(rows.len(), 7);
    assert_eq!(
        rows[0],
        ["1", "anna@x.cz", "Anna", "Novotná", "+420777000001", "vip|b2b|spring"]
    );
    assert_eq!(rows[1], ["2", "robert@x.cz", "Robert", "", "+420777000002", "spring"]);
    // Skipped multiple match: untouched.
    assert_eq!(rows[3][5], "");
    assert_eq!(rows[6], ["7", "gina@x.cz", "Gina", "", "+420777000099", "spring"]);
    let groups = query(
        &db,
        "SELECT name, status, imported, updated, skipped FROM import_groups ORDER BY id",
    );
    assert_eq!(
        groups,
        [
            ["base", "completed", "6", "0", "0"],
            ["second", "completed", "1", "2", "1"]
        ]
    );
    let created = query(&db, "SELECT import_id FROM contacts WHERE id = 7");
    assert_eq!(created, [["2"]]);
}

#[test]
fn master_existing_only_fills_empty_fields() {
    let dir = tempfile::tempdir().expect("tempdir");
    let dir = dir.path();
    base_store(dir);
    let mut args = SECOND_ARGS.to_vec();
    args.extend(["--master", "existing"]);
    import(dir, &args);
    let rows = query(
        &dir.join("kontakt.duckdb"),
        "SELECT email, first_name, last_name, note FROM contacts WHERE id IN (1, 2) ORDER BY id",
    );
    assert_eq!(rows[0], ["anna@x.cz", "Anna", "Nová", ""]);
    // Bob keeps his email and name; his empty note is filled.
    assert_eq!(rows[1], ["bob@x.cz", "Bob", "", "=1+2"]);
}

#[test]
fn modes_and_category_choices() {
    let dir = tempfile::tempdir().expect("tempdir");
    let dir = dir.path();
    base_store(dir);
    let args = |extra: &[&'static str]| {
        let mut a = vec!["second.csv", "--secondary-key", "phone", "--dry-run"];
        a.extend_from_slice(extra);
        a
    };
    let s = import(dir, &args(&["--mode", "add"]));
    assert_eq!(
        (s["imported"].as_u64(), s["updated"].as_u64(), s["skipped"].as_u64()),
        (Some(1), Some(0), Some(3))
    );
    let s = import(dir, &args(&["--mode", "update"]));
    assert_eq!(
        (s["imported"].as_u64(), s["updated"].as_u64(), s["skipped"].as_u64()),
        (Some(0), Some(2), Some(2))
    );
    let s = import(
        dir,
        &args(&["--on-multiple-match", "update-all", "--on-one-match", "import"]),
    );
    assert_eq!(
        (s["imported"].as_u64(), s["updated"].as_u64(), s["skipped"].as_u64()),
        (Some(3), Some(1), Some(0))
    );
    assert_eq!(s["contacts_updated"], 0, "a dry run updates nothing");
    let multiple = csv_rows(&dir.join("kontakt-out/second.dry-run/multiple_match.csv"));
    assert_eq!(multiple[0]["action"], "update-all");
    let s = import(
        dir,
        &args(&["--on-multiple-match", "update-last", "--on-no-match", "skip"]),
    );
    assert_eq!(
        (s["imported"].as_u64(), s["updated"].as_u64(), s["skipped"].as_u64()),
        (Some(0), Some(3), Some(1))
    );
}

#[test]
fn update_first_and_last_pick_by_creation() {
    let dir = tempfile::tempdir().expect("tempdir");
    let dir = dir.path();
    base_store(dir);
    let mut args = SECOND_ARGS.to_vec();
    args.extend(["--on-multiple-match", "update-last", "--name", "last"]);
    import(dir, &args);
    let db = dir.join("kontakt.duckdb");
    let rows = query(
        &db,
        "SELECT id, first_name FROM contacts WHERE id IN (4, 5) ORDER BY id",
    );
    assert_eq!(rows, [["4", "Dana"], ["5", "Frank"]]);
}

#[test]
fn in_file_duplicates_last_and_fail() {
    let dir = tempfile::tempdir().expect("tempdir");
    let dir = dir.path();
    write(
        dir,
        "dups.csv",
        "E-mail,Jméno\na@x.cz,First\nb@x.cz,Other\nA@X.CZ,Second\na@x.cz,Third\n",
    );
    let s = import(dir, &["dups.csv", "--in-file-duplicates", "last", "--dry-run"]);
    assert_eq!(s["imported"], 2);
    assert_eq!(s["failed_by_reason"]["not_unique"], 2);
    let no = csv_rows(&dir.join("kontakt-out/dups.dry-run/no_match.csv"));
    let names: Vec<&str> = no.iter().map(|r| r["first_name"].as_str()).collect();
    assert_eq!(names, ["Other", "Third"]);
    let s = import(dir, &["dups.csv", "--in-file-duplicates", "fail", "--dry-run"]);
    assert_eq!(s["imported"], 1);
    assert_eq!(s["failed_by_reason"]["not_unique"], 3);
    // A pasted table on standard input is read twice the same way.
    let output = kontakt(dir)
        .args([
            "import",
            "-",
            "--in-file-duplicates",
            "last",
            "--dry-run",
            "--progress",
            "never",
        ])
        .write_stdin("E-mail\tJméno\na@x.cz\tFirst\na@x.cz\tSecond\n")
        .output()
        .expect("run");
    assert!(output.status.success(), "{}", String::from_utf8_lossy(&output.stderr));
    let no = csv_rows(&dir.join("kontakt-out/stdin.dry-run/no_match.csv"));
    assert_eq!(no.len(), 1);
    assert_eq!(no[0]["first_name"], "Second");
}

#[test]
fn dry_run_changes_nothing_in_the_store() {
    let dir = tempfile::tempdir().expect("tempdir");
    let dir = dir.path();
    base_store(dir);
    let db = dir.join("kontakt.duckdb");
    let dump = || {
        (
            query(
                &db,
                "SELECT id, type, import_id, external_id, first_name, last_name, full_name, company, email, phone, \
                 mobile, website, street, city, postal_code, country, gender, CAST(birth_date AS VARCHAR), \
                 email_opt_in, sms_opt_in, array_to_string(tags, ';'), note, CAST(updated_at AS VARCHAR) \
                 FROM contacts ORDER BY id",
            ),
            query(&db, "SELECT id, name, status FROM import_groups ORDER BY id"),
        )
    };
    let export = |name: &str| {
        let out = kontakt(dir)
            .args(["contacts", "export", "-o", name])
            .output()
            .expect("export");
        assert!(out.status.success(), "{}", String::from_utf8_lossy(&out.stderr));
        std::fs::read(dir.join(name)).expect("exported file")
    };
    let before = dump();
    let exported = export("before.csv");
    let s = import(dir, &[SECOND_ARGS, &["--dry-run"]].concat());
    assert_eq!(s["import_id"], Value::Null);
    assert_eq!(s["imported"], 1);
    assert_eq!(dump(), before);
    assert_eq!(export("after.csv"), exported, "the export must be byte-identical");
    // A dry run against a store that does not exist does not create it.
    let s = import(dir, &["base.csv", "--dry-run", "--db", "none.duckdb"]);
    assert_eq!(s["imported"], 6);
    assert!(!dir.join("none.duckdb").exists());
}

#[test]
fn names_are_unique_and_never_leave_the_output_directory() {
    let dir = tempfile::tempdir().expect("tempdir");
    let work = dir.path().join("work");
    std::fs::create_dir(&work).expect("mkdir");
    write(&work, "base.csv", BASE);
    let output = kontakt(&work)
        .args(["import", "base.csv", "--name", "../../x", "--progress", "never"])
        .output()
        .expect("run");
    assert!(output.status.success(), "{}", String::from_utf8_lossy(&output.stderr));
    let outputs: Vec<_> = std::fs::read_dir(work.join("kontakt-out"))
        .expect("kontakt-out")
        .map(|e| e.expect("entry").file_name())
        .collect();
    assert_eq!(outputs.len(), 1);
    assert!(work.join("kontakt-out").join(&outputs[0]).join("summary.json").exists());
    assert!(!dir.path().join("x").exists() && !work.join("x").exists());
    for name in ["a\\..\\..\\y", ".."] {
        let output = kontakt(&work)
            .args(["import", "base.csv", "--name", name, "--progress", "never", "--dry-run"])
            .output()
            .expect("run");
        assert!(output.status.success(), "{}", String::from_utf8_lossy(&output.stderr));
    }
    assert_eq!(std::fs::read_dir(work.join("kontakt-out")).expect("dir").count(), 3);
    // The same name again is a usage error; the store is not touched.
    let err = fails(&work, &["import", "base.csv", "--name", "../../x"], 2);
    assert!(err.contains("already exists"), "{err}");
    // ... and leaves the first import's outputs as they were.
    let first = work.join("kontakt-out").join(&outputs[0]);
    assert!(first.join("summary.json").exists());
    assert_eq!(csv_rows(&first.join("no_match.csv")).len(), 6);
}

#[test]
fn parquet_outputs_hold_the_same_rows_as_csv() {
    let dir = tempfile::tempdir().expect("tempdir");
    let dir = dir.path();
    base_store(dir);
    let args = [SECOND_ARGS, &["--dry-run"]].concat();
    import(dir, &[args.as_slice(), &["--out", "csv"]].concat());
    import(
        dir,
        &[args.as_slice(), &["--out", "pq", "--output-format", "parquet"]].concat(),
    );
    for file in ["no_match", "one_match", "multiple_match", "failed"] {
        let csv = csv_rows(&dir.join("csv").join(format!("{file}.csv")));
        let parquet = dir.join("pq").join(format!("{file}.parquet"));
        let sql = format!("SELECT * FROM read_parquet('{}')", parquet.display());
        let rows = query_files(&sql);
        assert_eq!(rows.len(), csv.len(), "{file}");
        let conn = duckdb::Connection::open_in_memory().expect("DuckDB");
        let mut stmt = conn.prepare(&format!("DESCRIBE {sql}")).expect("describe");
        let columns: Vec<(String, String)> = stmt
            .query_map([], |r| Ok((r.get(0)?, r.get(1)?)))
            .expect("columns")
            .collect::<Result<_, _>>()
            .expect("columns");
        assert_eq!(columns[0], ("row".to_string(), "UBIGINT".to_string()), "{file}");
        for (row, expected) in rows.iter().zip(&csv) {
            for ((name, _), value) in columns.iter().zip(row) {
                assert_eq!(value, &expected[name], "{file} column {name}");
            }
        }
    }
    assert!(!dir.join("pq/no_match.csv").exists());
}

#[test]
fn excel_safe_prefixes_formulas_but_not_phones() {
    let dir = tempfile::tempdir().expect("tempdir");
    let dir = dir.path();
    write(
        dir,
        "f.csv",
        "E-mail,Telefon,Poznámka\na@x.cz,+420 777 000 001,=1+2\n=cmd,777000002,x\n",
    );
    import(dir, &["f.csv", "--map", "Poznámka=note", "--excel-safe", "--dry-run"]);
    let no = csv_rows(&dir.join("kontakt-out/f.dry-run/no_match.csv"));
    assert_eq!(no[0]["note"], "'=1+2");
    assert_eq!(no[0]["phone"], "+420777000001");
    let failed = csv_rows(&dir.join("kontakt-out/f.dry-run/failed.csv"));
    assert_eq!(failed[0]["E-mail"], "'=cmd");
}

#[test]
fn cells_that_need_quotes_come_back_as_read() {
    // The writer checks each column of a batch once: a column with one
    // cell to quote must still quote exactly that cell, and leave the
    // others (and the columns with none) as they are.
    let dir = tempfile::tempdir().expect("tempdir");
    let dir = dir.path();
    write(
        dir,
        "q.csv",
        "E-mail,Poznámka,Ulice\n\
         a@x.cz,\"one, two\",Dlouhá 1\n\
         b@x.cz,plain,Dlouhá 2\n\
         c@x.cz,\"say \"\"hi\"\"\",Dlouhá 3\n\
         d@x.cz,\"two\nlines\",Dlouhá 4\n\
         bad,\"x, y\",Dlouhá 5\n",
    );
    import(
        dir,
        &["q.csv", "--map", "Poznámka=note", "--map", "Ulice=street", "--dry-run"],
    );
    let no = csv_rows(&dir.join("kontakt-out/q.dry-run/no_match.csv"));
    let notes: Vec<&str> = no.iter().map(|r| r["note"].as_str()).collect();
    assert_eq!(notes, ["one, two", "plain", "say \"hi\"", "two\nlines"]);
    let streets: Vec<&str> = no.iter().map(|r| r["street"].as_str()).collect();
    assert_eq!(streets, ["Dlouhá 1", "Dlouhá 2", "Dlouhá 3", "Dlouhá 4"]);
    let text = std::fs::read_to_string(dir.join("kontakt-out/q.dry-run/no_match.csv")).expect("read");
    assert!(text.contains(",plain,Dlouhá 2,"), "{text}");
    let failed = csv_rows(&dir.join("kontakt-out/q.dry-run/failed.csv"));
    assert_eq!(failed[0]["Poznámka"], "x, y");
}

#[test]
fn store_problems_are_one_line_errors() {
    let dir = tempfile::tempdir().expect("tempdir");
    let dir = dir.path();
    write(dir, "base.csv", BASE);
    let not_duckdb = write(dir, "notes.db", "just some text, not a database\n");
    let err = fails(dir, &["import", "base.csv", "--db", "notes.db"], 1);
    assert!(err.contains("not a DuckDB database"), "{err}");
    assert_eq!(
        std::fs::read_to_string(&not_duckdb).expect("read"),
        "just some text, not a database\n"
    );
    // Usage errors come before the store is opened or created.
    let err = fails(dir, &["import", "base.csv", "--map", "E-mail=nope"], 2);
    assert!(err.contains("nope"), "{err}");
    let err = fails(dir, &["import", "base.csv", "--phone-transform", "[x]/+7"], 2);
    assert!(err.contains("[x]/+7"), "{err}");
    assert!(!dir.join("kontakt.duckdb").exists());
}

#[test]
fn the_committed_sample_fails_only_its_planted_bad_values() {
    // datasets/contacts.csv plants ~2.5% bad emails and ~2.5% bad phones
    // (datasets/README.md); every other generated phone must be valid for
    // its country, or the sample would teach users the wrong rates.
    let dir = tempfile::tempdir().expect("tempdir");
    let sample = Path::new(env!("CARGO_MANIFEST_DIR")).join("datasets/contacts.csv");
    let sample = sample.to_str().expect("utf-8 path");
    let s = import(dir.path(), &[sample, "--secondary-key", "phone", "--dry-run"]);
    assert_eq!(s["rows_read"], 1000);
    let wrong = s["failed_by_reason"]["wrong_format"].as_u64().expect("count");
    assert!(
        (25..=60).contains(&wrong),
        "{wrong} rows of 1000 with a wrong format: {s}"
    );
    let failed = csv_rows(&dir.path().join("kontakt-out/contacts.dry-run/failed.csv"));
    let bad_phones = failed
        .iter()
        .filter(|f| f["detail"].contains("phone: ") || f["detail"].contains("mobile: "))
        .count();
    assert!(bad_phones <= 35, "{bad_phones} rows with a bad phone");
}

#[test]
fn a_locked_or_read_only_store_is_a_one_line_error() {
    let dir = tempfile::tempdir().expect("tempdir");
    let dir = dir.path();
    base_store(dir);
    let db = dir.join("kontakt.duckdb");
    {
        // Another process holding the store: this test's own connection.
        let _holder = duckdb::Connection::open(&db).expect("hold the store");
        let err = fails(dir, &["import", "second.csv", "--progress", "never"], 1);
        assert!(err.contains("in use by another process"), "{err}");
        assert!(err.contains(&format!("pid {}", std::process::id())), "{err}");
        assert!(err.contains("kontakt.duckdb"), "{err}");
    }
    assert_eq!(query(&db, "SELECT count(*) FROM contacts"), [["6"]]);
    // A read-only file. Root writes through permissions, so there the file
    // is made immutable (`chattr +i`) when the file system allows it.
    let read_only_error = || {
        let err = fails(dir, &["import", "second.csv", "--progress", "never"], 1);
        assert!(err.contains("kontakt.duckdb"), "{err}");
    };
    let mut permissions = std::fs::metadata(&db).expect("stat").permissions();
    permissions.set_readonly(true);
    std::fs::set_permissions(&db, permissions.clone()).expect("chmod");
    if std::fs::OpenOptions::new().append(true).open(&db).is_err() {
        read_only_error();
    } else if chattr(&db, "+i") {
        struct Mutable<'a>(&'a Path);
        impl Drop for Mutable<'_> {
            fn drop(&mut self) {
                chattr(self.0, "-i");
            }
        }
        let _undo = Mutable(&db);
        read_only_error();
    }
    #[allow(clippy::permissions_set_readonly_false)]
    permissions.set_readonly(false);
    std::fs::set_permissions(&db, permissions).expect("chmod");
    assert_eq!(query(&db, "SELECT count(*) FROM contacts"), [["6"]]);
}

/// `chattr FLAG path`; whether it worked.
fn chattr(path: &Path, flag: &str) -> bool {
    std::process::Command::new("chattr")
        .arg(flag)
        .arg(path)
        .output()
        .is_ok_and(|o| o.status.success())
}

#[cfg(unix)]
#[test]
fn ctrl_c_rolls_the_import_back_and_records_it_cancelled() {
    use std::time::{Duration, Instant};

    let dir = tempfile::tempdir().expect("tempdir");
    let dir = dir.path();
    kontakt(dir)
        .args([
            "gen",
            "--rows",
            "200000",
            "--seed",
            "7",
            "--store-rows",
            "1000",
            "-o",
            "big.csv",
        ])
        .assert()
        .success();
    import(dir, &["big-store.csv", "--name", "base"]);
    let db = dir.join("kontakt.duckdb");
    let before = query(&db, "SELECT count(*), max(updated_at) FROM contacts");

    let binary = assert_cmd::cargo::cargo_bin("kontakt");
    let mut child = crate::common::with_store(&mut std::process::Command::new(binary))
        .current_dir(dir)
        .args(["import", "big.csv", "--progress", "never", "--secondary-key", "phone"])
        .stderr(std::process::Stdio::piped())
        .spawn()
        .expect("spawn");
    // Wait until rows are being written, then press Ctrl-C.
    let written = dir.join("kontakt-out/big/no_match.csv");
    let started = Instant::now();
    while std::fs::metadata(&written).map_or(0, |m| m.len()) < 100_000 {
        assert!(
            started.elapsed() < Duration::from_secs(120),
            "the import never got going"
        );
        assert!(child.try_wait().expect("wait").is_none(), "finished before the signal");
        std::thread::sleep(Duration::from_millis(10));
    }
    let pid = child.id().to_string();
    let kill = std::process::Command::new("kill")
        .args(["-INT", &pid])
        .status()
        .expect("kill");
    assert!(kill.success());
    let output = child.wait_with_output().expect("wait");
    let stderr = String::from_utf8_lossy(&output.stderr);
    assert_eq!(output.status.code(), Some(130), "{stderr}");
    assert_eq!(stderr.trim_end().lines().count(), 1, "{stderr}");
    assert!(stderr.contains("cancelled"), "{stderr}");

    assert_eq!(query(&db, "SELECT count(*), max(updated_at) FROM contacts"), before);
    assert_eq!(
        query(&db, "SELECT name, status FROM import_groups ORDER BY id"),
        [["base", "completed"], ["big", "cancelled"]]
    );
    // A cancelled name may be used again.
    let summary = import(dir, &["big-store.csv", "--name", "big", "--mode", "add"]);
    assert_eq!(summary["imported"], 0);
}

#[test]
fn primary_key_id_updates_the_contacts_an_export_names() {
    let dir = tempfile::tempdir().expect("tempdir");
    let dir = dir.path();
    base_store(dir);
    write(
        dir,
        "ids.csv",
        "ID,first_name,email\n2,Bobby,\n 3 ,,carl.new@x.cz\n999,Nobody,\nx,Bad,\n",
    );
    let s = import(dir, &["ids.csv", "--primary-key", "id", "--mode", "update"]);
    assert_eq!(s["one_match"], 2, "{s}");
    assert_eq!(s["no_match"], 1, "{s}");
    assert_eq!(s["updated"], 2);
    assert_eq!(s["failed_by_reason"]["wrong_format"], 1);
    let db = dir.join("kontakt.duckdb");
    assert_eq!(
        query(
            &db,
            "SELECT id, first_name, email FROM contacts WHERE id IN (2, 3) ORDER BY id"
        ),
        [["2", "Bobby", "bob@x.cz"], ["3", "Carl", "carl.new@x.cz"]]
    );
    assert_eq!(query(&db, "SELECT count(*) FROM contacts"), [["6"]]);
    // Without --primary-key id, a column named ID is an external id.
    import(dir, &["ids.csv", "--name", "again", "--dry-run"]);
    let header = std::fs::read_to_string(dir.join("kontakt-out/again.dry-run/no_match.csv")).expect("output");
    assert!(
        header.starts_with("row,action,external_id,first_name,email,"),
        "{header}"
    );
    let err = fails(dir, &["import", "ids.csv", "--primary-key", "id", "--map", "ID=-"], 2);
    assert!(err.contains("no column is mapped to id"), "{err}");
}

/// Runs one import on a fresh base store with the semi-join forced off,
/// then on (the file normalized whole first, then its keys read in a pass
/// of their own), and checks that `outcome` (read from the directory after
/// each run) is the same every way; returns it.
fn same_with_and_without_semi_join<T: PartialEq + std::fmt::Debug>(
    file: Option<(&str, &str)>,
    args: &[&str],
    outcome: impl Fn(&Path) -> T,
) -> T {
    let mut results = Vec::new();
    for mode in ["never", "always", "reread"] {
        let dir = tempfile::tempdir().expect("tempdir");
        let dir = dir.path();
        crate::common::fresh_store();
        base_store(dir);
        if let Some((name, text)) = file {
            write(dir, name, text);
        }
        let output = kontakt(dir)
            .env("KONTAKT_SEMI_JOIN", mode)
            .args(["import", "--progress", "never"])
            .args(args)
            .output()
            .expect("run");
        assert!(output.status.success(), "{}", String::from_utf8_lossy(&output.stderr));
        results.push(outcome(dir));
    }
    assert_eq!(results[0], results[1]);
    assert_eq!(results[0], results[2]);
    results.remove(0)
}

#[test]
fn indexing_only_contacts_sharing_an_id_gives_the_same_result() {
    // The contact id has no hash column: its semi-join compares text.
    let ids = "ID,first_name,email\n2,Bobby,\n3,,carl.new@x.cz\n999,Nobody,\n";
    let (one_match, _) = same_with_and_without_semi_join(
        Some(("ids.csv", ids)),
        &["ids.csv", "--primary-key", "id", "--mode", "update"],
        |dir| {
            let one_match = std::fs::read_to_string(dir.join("kontakt-out/ids/one_match.csv")).expect("output");
            let store = query(
                &dir.join("kontakt.duckdb"),
                "SELECT id, first_name, email FROM contacts ORDER BY id",
            );
            (one_match, store)
        },
    );
    assert_eq!(one_match.lines().count(), 3, "{one_match}");
}

#[test]
fn indexing_only_contacts_that_share_a_key_gives_the_same_result() {
    // The semi-join (index only the stored contacts sharing a key value with
    // the file) is chosen for large stores; forced both ways here, every
    // output file and the store must come out the same.
    let args = [
        &["--default-country", "CZ"],
        SECOND_ARGS,
        &["--on-multiple-match", "update-all"],
    ]
    .concat();
    let (files, _) = same_with_and_without_semi_join(None, &args, |dir| {
        let out = dir.join("kontakt-out/second");
        let files: Vec<String> = ["no_match.csv", "one_match.csv", "multiple_match.csv", "failed.csv"]
            .iter()
            .map(|f| std::fs::read_to_string(out.join(f)).expect("output"))
            .collect();
        let store = query(
            &dir.join("kontakt.duckdb"),
            "SELECT id, type, import_id, external_id, first_name, last_name, email, phone, mobile, company, \
             street, city, postal_code, country, note, tags, email_opt_in, sms_opt_in, email_hash, phone_hash \
             FROM contacts ORDER BY id",
        );
        (files, store)
    });
    assert!(files[2].contains("update-all"), "{}", files[2]);
}

#[test]
fn indexing_only_contacts_sharing_a_secondary_key_alone_gives_the_same_result() {
    // No primary key: the semi-join is by the secondary key only.
    let args = [&["--default-country", "CZ"], SECOND_ARGS, &["--primary-key", "none"]].concat();
    let counts = same_with_and_without_semi_join(None, &args, |dir| {
        let summary: Value = serde_json::from_str(
            &std::fs::read_to_string(dir.join("kontakt-out/second/summary.json")).expect("summary"),
        )
        .expect("json");
        (
            summary["one_match"].clone(),
            summary["multiple_match"].clone(),
            summary["no_match"].clone(),
        )
    });
    assert_ne!(counts.0, 0, "{counts:?}");
}

/// Many keys, so that a pick of the stored contacts that loses some of
/// them (by the bits of their hashes: PostgreSQL's semi-join tests bitmaps
/// of the file's hashes) cannot pass by luck: 400 of 500 rows match a
/// stored contact, by email or by phone, and every way of building the
/// index finds each of them.
#[test]
fn the_semi_join_finds_every_match_among_many_keys() {
    let stored: String = (0..500).map(|i| format!("p{i}@x.cz,+420 601 {i:06}\n")).collect();
    let file: String = (0..500)
        .map(|i| match i {
            0..250 => format!("P{i}@x.cz,\n"),
            250..400 => format!("n{i}@x.cz,601 {i:06}\n"),
            _ => format!("n{i}@x.cz,602 {i:06}\n"),
        })
        .collect();
    for mode in ["never", "always", "reread"] {
        let dir = tempfile::tempdir().expect("tempdir");
        let dir = dir.path();
        crate::common::fresh_store();
        write(dir, "stored.csv", format!("email,phone\n{stored}"));
        write(dir, "file.csv", format!("email,phone\n{file}"));
        assert_eq!(import(dir, &["stored.csv"])["imported"], 500);
        let output = kontakt(dir)
            .env("KONTAKT_SEMI_JOIN", mode)
            .args(["import", "--progress", "never", "--default-country", "CZ", "--json"])
            .args(["file.csv", "--secondary-key", "phone"])
            .output()
            .expect("run");
        assert!(output.status.success(), "{}", String::from_utf8_lossy(&output.stderr));
        let s: Value = serde_json::from_slice(&output.stdout).expect("summary");
        assert_eq!(
            (
                s["one_match"].as_u64(),
                s["no_match"].as_u64(),
                s["rows_failed"].as_u64()
            ),
            (Some(400), Some(100), Some(0)),
            "{mode}: {s}"
        );
    }
}

// ---- Issue 21, items 3 and 10 (dry-run directory, --json, the report,
// progress): engineer C's block.

#[test]
fn a_dry_run_never_overwrites_a_real_imports_outputs() {
    let dir = tempfile::tempdir().expect("tempdir");
    let dir = dir.path();
    write(dir, "leads.csv", BASE);
    let real = import(dir, &["leads.csv"]);
    assert!(real["import_id"].is_i64(), "{real}");
    let summary = dir.join("kontakt-out/leads/summary.json");
    let before = std::fs::read_to_string(&summary).expect("summary.json");

    let dry = import(dir, &["leads.csv", "--dry-run"]);
    assert_eq!(dry["import_id"], Value::Null);
    assert_eq!(std::fs::read_to_string(&summary).expect("summary.json"), before);
    let written = dir.join("kontakt-out/leads.dry-run");
    let text = std::fs::read_to_string(written.join("summary.json")).expect("the dry run's summary.json");
    assert_eq!(serde_json::from_str::<Value>(&text).expect("JSON")["dry_run"], true);
    assert_eq!(csv_rows(&written.join("one_match.csv")).len(), 6);
    // The report names the directory written.
    let output = kontakt(dir)
        .args(["import", "leads.csv", "--dry-run", "--progress", "never"])
        .output()
        .expect("run");
    let stdout = String::from_utf8_lossy(&output.stdout);
    assert!(stdout.trim_end().ends_with("kontakt-out/leads.dry-run"), "{stdout}");
}

#[test]
fn json_prints_the_summary_and_the_report_names_failed_rows_per_reason() {
    let dir = tempfile::tempdir().expect("tempdir");
    let dir = dir.path();
    base_store(dir);
    let run = |extra: &[&str]| {
        let output = kontakt(dir)
            .args(["import", "--progress", "never", "--default-country", "CZ"])
            .args(SECOND_ARGS)
            .args(extra)
            .output()
            .expect("run kontakt");
        assert!(output.status.success(), "{}", String::from_utf8_lossy(&output.stderr));
        String::from_utf8(output.stdout).expect("utf-8")
    };
    // SECOND fails 2 wrong_format, 1 missing_key, 1 not_unique.
    let report = run(&["--dry-run"]);
    assert_eq!(report.lines().count(), 1, "{report}");
    assert!(
        report.contains(" 4 failed (2 wrong_format, 1 missing_key, 1 not_unique); "),
        "{report}"
    );

    let stdout = run(&["--json"]);
    let printed: Value = serde_json::from_str(&stdout).expect("--json prints one JSON object");
    let written: Value = serde_json::from_str(
        &std::fs::read_to_string(dir.join("kontakt-out/second/summary.json")).expect("summary.json"),
    )
    .expect("JSON");
    assert_eq!(printed, written);
    assert!(printed["import_id"].is_i64());
    assert_eq!(printed["failed_by_reason"]["wrong_format"], 2);
}

#[test]
fn progress_shows_the_percent_read_whole_rows_per_second_and_the_phase() {
    let dir = tempfile::tempdir().expect("tempdir");
    let dir = dir.path();
    kontakt(dir)
        .args(["gen", "--rows", "30000", "--seed", "5", "-o", "many.csv"])
        .assert()
        .success();
    let output = kontakt(dir)
        .args(["import", "many.csv", "--progress", "always"])
        .output()
        .expect("run kontakt");
    let stderr = String::from_utf8_lossy(&output.stderr);
    assert!(output.status.success(), "{stderr}");
    // Each redraw starts at a carriage return.
    let frames: Vec<&str> = stderr.split('\r').filter(|f| f.contains("rows/s")).collect();
    assert!(!frames.is_empty(), "no progress drawn: {stderr:?}");
    let percent = |f: &str| {
        f.split_whitespace()
            .find_map(|w| w.strip_suffix('%').and_then(|p| p.parse::<u32>().ok()))
    };
    assert!(frames.iter().all(|f| percent(f).is_some()), "{frames:?}");
    assert!(frames.iter().any(|f| percent(f) == Some(100)), "{frames:?}");
    for frame in &frames {
        // "115,921 rows  565,636 rows/s": the rate a whole number.
        let words: Vec<&str> = frame.split_whitespace().collect();
        let at = words.iter().position(|w| *w == "rows/s").expect("rows/s");
        let rate = words[at - 1];
        assert!(
            !rate.is_empty() && rate.chars().all(|c| c.is_ascii_digit() || c == ','),
            "{frame:?}"
        );
    }
    assert!(frames.iter().any(|f| f.contains("matching")), "{frames:?}");
    // The bar is cleared before the report, which stays on standard output.
    assert!(String::from_utf8_lossy(&output.stdout).starts_with("30000 rows read"));
}

// ---- issue 21 (engineer B): Salesforce and consent synonyms, --bom, excel-safe round trip ----

#[test]
fn salesforce_headers_and_opt_out_columns_map() {
    let dir = tempfile::tempdir().expect("tempdir");
    let dir = dir.path();
    write(
        dir,
        "sf.csv",
        "Id,FirstName,LastName,Email,MobilePhone,MailingStreet,MailingCity,MailingPostalCode,MailingCountry,Account.Name,HasOptedOutOfEmail,HasOptedOutOfSMS\n\
         0035g00000AbCdE,Jan,Novák,jan@x.cz,777 123 456,Dlouhá 1,Praha,110 00,Czech Republic,Acme s.r.o.,true,false\n\
         0035g00000AbCdF,Eva,Malá,eva@x.cz,,Krátká 2,Brno,602 00,CZ,Beta a.s.,false,\n",
    );
    let preview = crate::common::preview_json(dir, "sf.csv", &[]);
    let expected = serde_json::json!({
        "Id": "external_id", "FirstName": "first_name", "LastName": "last_name", "Email": "email",
        "MobilePhone": "mobile", "MailingStreet": "street", "MailingCity": "city",
        "MailingPostalCode": "postal_code", "MailingCountry": "country",
        "Account.Name": "company", "HasOptedOutOfEmail": "email_opt_out",
        "HasOptedOutOfSMS": "sms_opt_out",
    });
    assert_eq!(preview["mapping"], expected);
    import(dir, &["sf.csv"]);
    let db = dir.join("kontakt.duckdb");
    assert_eq!(
        query(
            &db,
            "SELECT external_id, company, city, mobile, email_opt_in, sms_opt_in FROM contacts ORDER BY id"
        ),
        [
            [
                "0035g00000AbCdE",
                "Acme s.r.o.",
                "Praha",
                "+420777123456",
                "opt-out",
                "unknown"
            ],
            ["0035g00000AbCdF", "Beta a.s.", "Brno", "", "unknown", "unknown"],
        ]
    );

    // Consent headers in the five languages.
    for header in [
        "Souhlas s marketingem",
        "Zgoda marketingowa",
        "Samtykke",
        "Einwilligung",
        "Email Opt In",
    ] {
        write(dir, "c.csv", format!("Email,{header}\nx@x.cz,ano\n"));
        let preview = crate::common::preview_json(dir, "c.csv", &[]);
        assert_eq!(preview["mapping"][header], "email_opt_in", "{header}");
    }

    // An explicit opt-out mapping inverts; both forms of one consent clash.
    write(dir, "o.csv", "Email,Unsub,Consent\njan@x.cz,yes,no\n");
    import(
        dir,
        &[
            "o.csv",
            "--map",
            "Unsub=email_opt_out",
            "--map",
            "Consent=-",
            "--name",
            "o",
        ],
    );
    assert_eq!(
        query(&db, "SELECT email_opt_in FROM contacts WHERE email = 'jan@x.cz'"),
        [["opt-out"]]
    );
    let err = fails(
        dir,
        &[
            "import",
            "o.csv",
            "--map",
            "Unsub=email_opt_out",
            "--map",
            "Consent=email_opt_in",
        ],
        2,
    );
    assert!(
        err.contains("\"Unsub\" and \"Consent\" are both mapped to email_opt_in"),
        "{err}"
    );
    // A value that is no consent names the field as the user mapped it.
    write(dir, "bad.csv", "Email,Unsub\nkarel@x.cz,maybe\n");
    let summary = import(dir, &["bad.csv", "--map", "Unsub=email_opt_out", "--name", "bad"]);
    assert_eq!(summary["rows_failed"], 1, "{summary}");
    let failed = csv_rows(&dir.join("kontakt-out/bad/failed.csv"));
    assert!(failed[0]["detail"].contains("email_opt_out: \"maybe\""), "{failed:?}");
}

#[test]
fn excel_safe_outputs_import_back_as_the_original_values() {
    let dir = tempfile::tempdir().expect("tempdir");
    let dir = dir.path();
    write(
        dir,
        "f.csv",
        "Email,Jméno,Firma,Poznámka,Město\n\
         a@x.cz,-Anna,@acme,=1+2,Brno\n\
         b@x.cz,Bob,+plus,-5,@home\n",
    );
    let summary = import(dir, &["f.csv", "--excel-safe", "--dry-run", "--out", "safe"]);
    assert_eq!(summary["rows_failed"], 0, "{summary}");
    let written = std::fs::read_to_string(dir.join("safe/no_match.csv")).expect("no_match");
    assert!(written.contains("'=1+2") && written.contains("'@acme"), "{written}");

    // The excel-safe file imported: every value as in f.csv.
    import(dir, &["safe/no_match.csv", "--name", "back"]);
    assert_eq!(
        query(
            &dir.join("kontakt.duckdb"),
            "SELECT email, first_name, company, note, city FROM contacts ORDER BY email"
        ),
        [
            ["a@x.cz", "-Anna", "@acme", "=1+2", "Brno"],
            ["b@x.cz", "Bob", "+plus", "-5", "@home"],
        ]
    );
}

#[test]
fn bom_starts_every_csv_output() {
    let dir = tempfile::tempdir().expect("tempdir");
    let dir = dir.path();
    write(dir, "f.csv", "Email,Jméno\na@x.cz,Anna\nbad,Bob\n");
    import(dir, &["f.csv", "--bom"]);
    for file in ["no_match.csv", "one_match.csv", "multiple_match.csv", "failed.csv"] {
        let bytes = std::fs::read(dir.join("kontakt-out/f").join(file)).expect("output");
        assert!(bytes.starts_with(b"\xEF\xBB\xBFrow,"), "{file}: {:?}", &bytes[..8]);
    }
    // The rows are read back as before (the BOM is not part of `row`).
    let rows = csv_rows(&dir.join("kontakt-out/f/failed.csv"));
    assert_eq!(rows.len(), 1);
    import(dir, &["f.csv", "--name", "plain"]);
    let bytes = std::fs::read(dir.join("kontakt-out/plain/no_match.csv")).expect("output");
    assert!(bytes.starts_with(b"row,"));
}

#[test]
fn an_in_file_duplicate_names_the_key_it_shares() {
    let dir = tempfile::tempdir().expect("tempdir");
    let dir = dir.path();
    write(
        dir,
        "idup.csv",
        "Email,Phone\n,+420777333000\nhas.email@example.com,+420777333000\n",
    );
    import(dir, &["idup.csv", "--secondary-key", "phone"]);
    let failed = csv_rows(&dir.join("kontakt-out/idup/failed.csv"));
    assert_eq!(failed.len(), 1);
    assert_eq!(failed[0]["row"], "2");
    assert_eq!(
        failed[0]["detail"], "phone \"+420777333000\" already in row 1",
        "{failed:?}"
    );
    write(dir, "both.csv", "Email\na@x.cz\na@x.cz\n");
    import(dir, &["both.csv", "--in-file-duplicates", "fail"]);
    let failed = csv_rows(&dir.join("kontakt-out/both/failed.csv"));
    assert_eq!(
        failed[0]["detail"],
        "email \"a@x.cz\" shared with later rows (--in-file-duplicates fail)"
    );
    assert_eq!(
        failed[1]["detail"],
        "email \"a@x.cz\" shared with row 1 (--in-file-duplicates fail)"
    );
}

#[test]
fn emails_in_angle_brackets_or_after_mailto_are_the_same_contact() {
    let dir = tempfile::tempdir().expect("tempdir");
    let dir = dir.path();
    write(
        dir,
        "m.csv",
        "Email,First name\n<jan@x.cz>,Jan\nmailto:Jan@X.cz,Jan\njan@x.cz,Jan\n.eva@x.cz,Eva\neva..m@x.cz,Eva\n\
         \"Jan Novák <JAN@x.cz>\",Jan\n\"eva@x.cz <jan@x.cz>\",Eva\n",
    );
    let summary = import(dir, &["m.csv"]);
    assert_eq!(summary["failed_by_reason"]["wrong_format"], 3, "{summary}");
    let db = dir.join("kontakt.duckdb");
    assert_eq!(query(&db, "SELECT email FROM contacts"), [["jan@x.cz"]]);
    let failed = csv_rows(&dir.join("kontakt-out/m/failed.csv"));
    let wrong: Vec<&str> = failed
        .iter()
        .filter(|f| f["reason"] == "wrong_format")
        .map(|f| f["row"].as_str())
        .collect();
    assert_eq!(wrong, ["4", "5", "7"], "{failed:?}");
}

#[test]
fn a_phone_written_with_words_is_its_digits() {
    let dir = tempfile::tempdir().expect("tempdir");
    let dir = dir.path();
    write(
        dir,
        "p.csv",
        "Telefon,Jméno\nTel. 777 123 456,Jan\n777123456 (mobil),Jan\nvolat večer,Eva\n602 111 222 kl. 12,Eva\n",
    );
    let summary = import(dir, &["p.csv", "--primary-key", "phone"]);
    assert_eq!(summary["failed_by_reason"]["wrong_format"], 2, "{summary}");
    let db = dir.join("kontakt.duckdb");
    assert_eq!(query(&db, "SELECT phone FROM contacts"), [["+420777123456"]]);
    // Row 2 is the same number (an in-file duplicate), row 3 has none,
    // row 4 has an extension.
    let failed = csv_rows(&dir.join("kontakt-out/p/failed.csv"));
    let got: Vec<(&str, &str, &str)> = failed
        .iter()
        .map(|f| (f["row"].as_str(), f["reason"].as_str(), f["detail"].as_str()))
        .collect();
    assert_eq!(
        got,
        [
            ("2", "not_unique", "phone \"+420777123456\" already in row 1"),
            ("3", "wrong_format", "phone: \"volat večer\" (no digits)"),
            (
                "4",
                "wrong_format",
                "phone: \"602 111 222 kl. 12\" (words between digits)"
            )
        ]
    );
}

#[test]
fn an_opt_out_column_saying_no_never_overwrites_a_stored_opt_out() {
    let dir = tempfile::tempdir().expect("tempdir");
    let dir = dir.path();
    write(dir, "a.csv", "Email,Souhlas e-mail\njan@x.cz,ne\neva@x.cz,ano\n");
    import(dir, &["a.csv", "--map", "Souhlas e-mail=email_opt_in"]);
    // Salesforce writes false for everyone who never opted out.
    write(
        dir,
        "sf.csv",
        "Email,HasOptedOutOfEmail\njan@x.cz,false\neva@x.cz,false\nnew@x.cz,false\n",
    );
    import(dir, &["sf.csv"]);
    assert_eq!(
        query(
            &dir.join("kontakt.duckdb"),
            "SELECT email, email_opt_in FROM contacts ORDER BY id"
        ),
        [["jan@x.cz", "opt-out"], ["eva@x.cz", "opt-in"], ["new@x.cz", "unknown"]]
    );
}

#[test]
fn a_quote_that_never_closes_is_an_input_error_and_changes_nothing() {
    let dir = tempfile::tempdir().expect("tempdir");
    let dir = dir.path();
    write(dir, "a.csv", "email,company,city\nold@example.com,Acme,Brno\n");
    import(dir, &["a.csv"]);
    // The stray quote would swallow the three good rows after it.
    write(
        dir,
        "q.csv",
        "email,company,city\nq1@example.com,A,Praha\nq2@example.com,B,Praha\nq3@example.com,\"Unclosed,Co\n\
         q4@example.com,C,Brno\nq5@example.com,D,Brno\nq6@example.com,E,Brno\n",
    );
    let expected = "kontakt: q.csv: row 3, column company: a quote opened here is never closed (a stray \" in the value?); \
                    fix the file or pass --quote with another character";
    for args in [
        vec!["preview", "q.csv"],
        vec!["preview", "--json", "q.csv"],
        vec!["import", "q.csv", "--progress", "never"],
    ] {
        let err = fails(dir, &args, 1);
        assert_eq!(err.trim_end(), expected, "{args:?}");
    }
    let db = dir.join("kontakt.duckdb");
    assert_eq!(query(&db, "SELECT email FROM contacts"), [["old@example.com"]]);
    let groups: Value = serde_json::from_slice(&succeeds(dir, &["imports", "list", "--json"])).expect("JSON");
    assert_eq!(groups[1]["name"], "q", "{groups}");
    assert_eq!(groups[1]["status"], "failed", "{groups}");

    // In a file of several chunks, the row is counted across them.
    let mut big = String::from("email,company,city\n");
    for i in 1..=150_000 {
        let city = if i == 10 { "\"Praha" } else { "Praha" };
        big.push_str(&format!("u{i}@example.com,Firma {i},{city}\n"));
    }
    write(dir, "bigq.csv", big);
    let err = fails(dir, &["preview", "bigq.csv"], 1);
    assert!(
        err.starts_with("kontakt: bigq.csv: row 10, column city: a quote opened here is never closed"),
        "{err}"
    );

    // A header whose quote never closes is named as the header.
    write(dir, "h.csv", "email,\"company\nq@example.com,A\n");
    let err = fails(dir, &["preview", "h.csv", "--header"], 1);
    assert!(
        err.contains("h.csv: header row, column 2: a quote opened here is never closed"),
        "{err}"
    );
}

/// An import that fails after it made the column of a new custom field
/// (PostgreSQL commits new columns before the import's transaction) leaves
/// no column behind: the store exports as before.
#[test]
fn a_failed_import_leaves_no_new_custom_field_behind() {
    let dir = tempfile::tempdir().expect("tempdir");
    let dir = dir.path();
    write(dir, "a.csv", "email,city\nold@example.com,Brno\n");
    import(dir, &["a.csv"]);
    succeeds(dir, &["contacts", "export", "-o", "before.csv"]);
    let mut file = String::from("email,Shoe size,city\n");
    for i in 0..100_000 {
        let city = if i == 90_000 { "\"Praha" } else { "Praha" };
        file.push_str(&format!("u{i}@example.com,{},{city}\n", 40 + i % 5));
    }
    write(dir, "q.csv", file);
    let err = fails(
        dir,
        &["import", "q.csv", "--unmapped", "custom", "--progress", "never"],
        1,
    );
    assert!(err.contains("never closed"), "{err}");
    succeeds(dir, &["contacts", "export", "-o", "after.csv"]);
    let read = |name: &str| std::fs::read_to_string(dir.join(name)).expect("export");
    assert_eq!(read("after.csv"), read("before.csv"));
    assert_eq!(
        query(&dir.join("kontakt.duckdb"), "SELECT count(*) FROM custom_fields"),
        [["0"]]
    );
}

#[test]
fn a_quoted_value_over_a_thousand_lines_is_a_stray_quote() {
    let dir = tempfile::tempdir().expect("tempdir");
    let dir = dir.path();
    // Two stray quotes 1500 rows apart: everything between would be one value.
    let mut file = String::from("email,company,city\n");
    for i in 1..=2000 {
        let city = match i {
            5 => "\"Praha",
            1505 => "Brno\"",
            _ => "Praha",
        };
        file.push_str(&format!("u{i}@example.com,Firma {i},{city}\n"));
    }
    write(dir, "span.csv", file);
    for args in [
        vec!["preview", "span.csv"],
        vec!["import", "span.csv", "--progress", "never"],
    ] {
        let err = fails(dir, &args, 1);
        assert!(
            err.starts_with("kontakt: span.csv: row 5, column city: a quoted value opened here spans 1501 lines"),
            "{args:?}: {err}"
        );
    }
    // A long note of a few lines is a value.
    write(
        dir,
        "note.csv",
        format!("email,note\nn@example.com,\"{}\nend\"\n", "x".repeat(5000)),
    );
    let preview = crate::common::preview_json(dir, "note.csv", &[]);
    assert_eq!(crate::common::rows(&preview).len(), 1, "{preview}");
}

on_postgres_too!(
    parquet_outputs_hold_the_same_rows_as_csv,
    second_import_hits_every_category_with_exact_counts,
    master_existing_only_fills_empty_fields,
    modes_and_category_choices,
    update_first_and_last_pick_by_creation,
    in_file_duplicates_last_and_fail,
    dry_run_changes_nothing_in_the_store,
    names_are_unique_and_never_leave_the_output_directory,
    excel_safe_prefixes_formulas_but_not_phones,
    cells_that_need_quotes_come_back_as_read,
    store_problems_are_one_line_errors,
    the_committed_sample_fails_only_its_planted_bad_values,
    ctrl_c_rolls_the_import_back_and_records_it_cancelled,
    primary_key_id_updates_the_contacts_an_export_names,
    a_dry_run_never_overwrites_a_real_imports_outputs,
    json_prints_the_summary_and_the_report_names_failed_rows_per_reason,
    progress_shows_the_percent_read_whole_rows_per_second_and_the_phase,
    salesforce_headers_and_opt_out_columns_map,
    excel_safe_outputs_import_back_as_the_original_values,
    bom_starts_every_csv_output,
    an_in_file_duplicate_names_the_key_it_shares,
    emails_in_angle_brackets_or_after_mailto_are_the_same_contact,
    an_opt_out_column_saying_no_never_overwrites_a_stored_opt_out,
    a_quote_that_never_closes_is_an_input_error_and_changes_nothing,
    a_quoted_value_over_a_thousand_lines_is_a_stray_quote,
    a_failed_import_leaves_no_new_custom_field_behind,
    indexing_only_contacts_sharing_an_id_gives_the_same_result,
    indexing_only_contacts_that_share_a_key_gives_the_same_result,
    indexing_only_contacts_sharing_a_secondary_key_alone_gives_the_same_result,
    the_semi_join_finds_every_match_among_many_keys,
);
