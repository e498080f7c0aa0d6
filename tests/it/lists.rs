//! Contact lists and campaigns (SPEC): `lists create|list|show|rename|
//! delete|add|remove|export`, `contacts list|export --list`, `import
//! --list`, and the memberships `imports delete` and `contacts delete`
//! take back.

use std::collections::HashMap;
use std::path::Path;

use serde_json::Value;

use crate::common::{fails, kontakt, succeeds, write};
use crate::import::{csv_rows, import, query};
use crate::signals::{signal_at, spawn_with};

/// Five contacts, ids 1 to 5 in this order: 3 and 4 share an email, 2
/// has its number as mobile only.
const CONTACTS: &str = "\
ID,First name,Email,Phone,Mobile
E1,Anna,anna@example.cz,+420601000001,
E2,Bob,bob@example.cz,,+420601000002
E3,Cyril,shared@example.cz,+420601000003,
E4,Dana,shared@example.cz,,
E5,Eva,eva@example.cz,+420601000005,
";

/// A store of [`CONTACTS`] (every row a contact of its own) and the list
/// `calls`.
fn store(dir: &Path) {
    write(dir, "contacts.csv", CONTACTS);
    let summary = import(dir, &["contacts.csv", "--primary-key", "none", "--name", "base"]);
    assert_eq!(summary["imported"], 5);
    succeeds(dir, &["lists", "create", "calls", "--description", "December calls"]);
}

/// A temporary directory holding [`store`].
fn stored() -> tempfile::TempDir {
    let tmp = tempfile::tempdir().expect("tempdir");
    store(tmp.path());
    tmp
}

/// The rows of a table of the store.
fn count(dir: &Path, table: &str) -> String {
    query(&dir.join("kontakt.duckdb"), &format!("SELECT count(*) FROM {table}"))[0][0].clone()
}

fn json(dir: &Path, args: &[&str]) -> Value {
    serde_json::from_slice(&succeeds(dir, args)).expect("JSON")
}

/// `lists add|remove … --out out --json`: the summary, which must match
/// summary.json.
fn members(dir: &Path, args: &[&str]) -> Value {
    let summary = json(dir, &[args, &["--out", "out", "--json"]].concat());
    let written: Value =
        serde_json::from_str(&std::fs::read_to_string(dir.join("out/summary.json")).expect("summary.json"))
            .expect("JSON");
    assert_eq!(summary, written);
    summary
}

/// A row file of `out/`, as header-keyed maps.
fn rows(dir: &Path, file: &str) -> Vec<HashMap<String, String>> {
    csv_rows(&dir.join("out").join(file))
}

/// A column of a row file.
fn column(dir: &Path, file: &str, name: &str) -> Vec<String> {
    rows(dir, file).iter().map(|r| r[name].clone()).collect()
}

/// The list's memberships: (contact_id, status, agent, callback_at,
/// import_id), by contact.
fn memberships(dir: &Path, list: &str) -> Vec<Vec<String>> {
    let callback = if crate::common::store_url().is_some() {
        "to_char(m.callback_at, 'YYYY-MM-DD\"T\"HH24:MI')"
    } else {
        "strftime(m.callback_at, '%Y-%m-%dT%H:%M')"
    };
    query(
        &dir.join("kontakt.duckdb"),
        &format!(
            "SELECT m.contact_id, m.status, m.agent, {callback}, m.import_id \
             FROM list_members m JOIN lists l ON l.id = m.list_id WHERE l.name = '{list}' ORDER BY m.contact_id"
        ),
    )
}

/// What a dry run must leave as it was: the DuckDB store's bytes, or a
/// PostgreSQL store's memberships and lists.
fn store_state(dir: &Path) -> Vec<u8> {
    match crate::common::store_url() {
        None => std::fs::read(dir.join("kontakt.duckdb")).expect("store"),
        Some(_) => format!(
            "{:?}{:?}",
            query(
                &dir.join("kontakt.duckdb"),
                "SELECT list_id, contact_id, status, agent, callback_at::text, added_at::text FROM list_members \
                 ORDER BY 1, 2"
            ),
            query(&dir.join("kontakt.duckdb"), "SELECT id, name FROM lists ORDER BY id")
        )
        .into_bytes(),
    }
}

fn strings(values: &[&str]) -> Vec<String> {
    values.iter().map(|s| s.to_string()).collect()
}

#[test]
fn lists_are_created_listed_shown_renamed_and_deleted() {
    let tmp = stored();
    let dir = tmp.path();
    let err = fails(dir, &["lists", "create", "calls"], 2);
    assert!(err.contains("exists already"), "{err}");
    fails(dir, &["lists", "create", " "], 2);
    fails(dir, &["lists", "create", "x", "--description", "two\nlines"], 2);
    succeeds(dir, &["lists", "create", "mail"]);
    let all = json(dir, &["lists", "list", "--json"]);
    let names: Vec<&str> = all
        .as_array()
        .expect("array")
        .iter()
        .map(|l| l["name"].as_str().expect("name"))
        .collect();
    assert_eq!(names, ["calls", "mail"]);
    assert_eq!(all[0]["description"], "December calls");
    assert_eq!(all[0]["members"], 0);
    assert!(all[0]["created_at"].as_str().is_some_and(|t| t.ends_with('Z')), "{all}");
    let table = String::from_utf8(succeeds(dir, &["lists", "list"])).expect("utf-8");
    assert!(
        table.starts_with("id  name") && table.contains("December calls"),
        "{table}"
    );

    write(dir, "ids.csv", "id,status\n1,hot\n2,\n3,hot\n");
    succeeds(dir, &["lists", "add", "calls", "ids.csv", "--by", "id"]);
    let shown = json(dir, &["lists", "show", "calls", "--json"]);
    assert_eq!(shown["members"], 3);
    assert_eq!(shown["statuses"], serde_json::json!({"hot": 2, "new": 1}));
    let text = String::from_utf8(succeeds(dir, &["lists", "show", "calls"])).expect("utf-8");
    assert!(text.contains("status hot   2"), "{text}");

    let err = fails(dir, &["lists", "rename", "calls", "mail"], 2);
    assert!(err.contains("exists already"), "{err}");
    let err = fails(dir, &["lists", "rename", "nope", "x"], 2);
    assert!(err.contains("no list named \"nope\""), "{err}");
    succeeds(dir, &["lists", "rename", "calls", "december"]);
    fails(dir, &["lists", "show", "calls"], 2);
    assert_eq!(json(dir, &["lists", "show", "december", "--json"])["members"], 3);

    let out = String::from_utf8(succeeds(dir, &["lists", "delete", "december"])).expect("utf-8");
    assert!(out.contains("its 3 memberships"), "{out}");
    fails(dir, &["lists", "delete", "december"], 2);
    // Never a contact.
    assert_eq!(count(dir, "contacts"), "5");
    assert_eq!(count(dir, "list_members"), "0");
}

#[test]
fn add_by_id_puts_every_row_in_exactly_one_file() {
    let tmp = stored();
    let dir = tmp.path();
    write(
        dir,
        "ids.csv",
        "Identyfikator CRM,Stav,Operator,Callback\n\
         1,hot,jan,2026-12-01 14:30\n\
         2,,,\n\
         99,,,\n\
         abc,,,\n\
         ,warm,eva,\n\
         3,,,tomorrow\n\
         1,,eva,\n\
         4,,,01.12.2026\n\
         5,x,y,z,extra\n\
         -7,,,\n",
    );
    let s = members(
        dir,
        &["lists", "add", "calls", "ids.csv", "--by", "id", "--status", "fresh"],
    );
    for (key, expected) in [
        ("rows_read", 10),
        ("added", 3),
        ("updated", 1),
        ("not_found", 1),
        ("failed", 5),
        ("members", 3),
    ] {
        assert_eq!(s[key], expected, "{key}: {s}");
    }
    assert_eq!(
        s["failed_by_reason"],
        serde_json::json!({"bad_row": 1, "missing_key": 1, "wrong_format": 3})
    );
    assert_eq!(
        (s["list"].as_str(), s["by"].as_str(), s["dry_run"].as_bool()),
        (Some("calls"), Some("id"), Some(false))
    );
    // Every data row once, in one of the four files.
    let mut seen: Vec<u64> = ["added.csv", "updated.csv", "not_found.csv", "failed.csv"]
        .iter()
        .flat_map(|f| column(dir, f, "row"))
        .map(|r| r.parse().expect("row number"))
        .collect();
    seen.sort_unstable();
    assert_eq!(seen, (1..=10).collect::<Vec<u64>>());

    let added = rows(dir, "added.csv");
    let first = &added[0];
    assert_eq!(
        [
            &first["row"],
            &first["contact_id"],
            &first["status"],
            &first["agent"],
            &first["callback_at"]
        ],
        ["1", "1", "hot", "jan", "2026-12-01T14:30:00"]
    );
    assert_eq!(first["Identyfikator CRM"], "1", "the row as read follows");
    assert_eq!(column(dir, "added.csv", "status"), ["hot", "fresh", "fresh"]);
    assert_eq!(
        column(dir, "added.csv", "callback_at"),
        ["2026-12-01T14:30:00", "", "2026-12-01T00:00:00"]
    );
    assert_eq!(column(dir, "updated.csv", "contact_id"), ["1"]);
    assert_eq!(column(dir, "not_found.csv", "detail"), ["no contact with id 99"]);
    let failed = rows(dir, "failed.csv");
    let reasons: Vec<(&str, &str)> = failed
        .iter()
        .map(|r| (r["row"].as_str(), r["reason"].as_str()))
        .collect();
    assert_eq!(
        reasons,
        [
            ("4", "wrong_format"),
            ("5", "missing_key"),
            ("6", "wrong_format"),
            ("9", "bad_row"),
            ("10", "wrong_format")
        ]
    );
    assert!(failed[0]["detail"].contains("\"abc\""), "{:?}", failed[0]);
    assert!(
        failed[2]["detail"].starts_with("callback_at (column \"Callback\"): \"tomorrow\""),
        "{:?}",
        failed[2]
    );
    // The second row of contact 1 gave only an agent: the rest stays.
    assert_eq!(
        memberships(dir, "calls"),
        [
            strings(&["1", "hot", "eva", "2026-12-01T14:30", ""]),
            strings(&["2", "fresh", "", "", ""]),
            strings(&["4", "fresh", "", "2026-12-01T00:00", ""]),
        ]
    );
}

#[test]
fn add_by_email_phone_and_external_id_and_multiple_matches() {
    let tmp = stored();
    let dir = tmp.path();
    write(
        dir,
        "emails.csv",
        "Name;E-mail\nAnna;ANNA@example.cz \nC or D;shared@example.cz\nNobody;nobody@example.cz\nBad;not-an-email\nNone;\n",
    );
    let s = members(dir, &["lists", "add", "calls", "emails.csv", "--by", "email"]);
    assert_eq!(
        (s["added"].as_u64(), s["not_found"].as_u64(), s["failed"].as_u64()),
        (Some(1), Some(1), Some(3))
    );
    let failed = rows(dir, "failed.csv");
    assert_eq!(failed[0]["reason"], "multiple_match");
    assert_eq!(
        failed[0]["detail"],
        "email \"shared@example.cz\" belongs to 2 contacts: 3;4"
    );
    assert_eq!(
        (failed[1]["reason"].as_str(), failed[2]["reason"].as_str()),
        ("wrong_format", "missing_key")
    );
    assert_eq!(
        column(dir, "not_found.csv", "detail"),
        ["no contact with email \"nobody@example.cz\""]
    );

    // A number is found as a phone or a mobile; without a country code,
    // by --default-country.
    write(
        dir,
        "phones.tsv",
        "Telefon\tJméno\n601 000 002\tBob\n+420 601 000 005\tEva\n777 000 000\tx\n",
    );
    let s = members(
        dir,
        &[
            "lists",
            "add",
            "calls",
            "phones.tsv",
            "--by",
            "phone",
            "--default-country",
            "CZ",
        ],
    );
    assert_eq!((s["added"].as_u64(), s["not_found"].as_u64()), (Some(2), Some(1)));
    assert_eq!(column(dir, "added.csv", "contact_id"), ["2", "5"]);

    write(dir, "ext.csv", "External ID\nE3\nE1\nE9\n");
    let s = members(dir, &["lists", "add", "calls", "ext.csv", "--by", "external_id"]);
    assert_eq!(
        (s["added"].as_u64(), s["updated"].as_u64(), s["not_found"].as_u64()),
        (Some(1), Some(1), Some(1))
    );
    let ids: Vec<String> = memberships(dir, "calls").into_iter().map(|m| m[0].clone()).collect();
    assert_eq!(ids, ["1", "2", "3", "5"]);

    // --map names the key column; a pasted table on standard input.
    let output = kontakt(dir)
        .args([
            "lists",
            "add",
            "calls",
            "-",
            "--by",
            "id",
            "--map",
            "kontakt=id",
            "--out",
            "pasted",
            "--json",
        ])
        .write_stdin("jméno\tkontakt\nDana\t4\n")
        .output()
        .expect("run");
    assert!(output.status.success(), "{}", String::from_utf8_lossy(&output.stderr));
    let s: Value = serde_json::from_slice(&output.stdout).expect("JSON");
    assert_eq!((s["added"].as_u64(), s["source"].as_str()), (Some(1), Some("<stdin>")));
    let err = fails(dir, &["lists", "add", "calls", "emails.csv", "--by", "id"], 2);
    assert!(err.contains("--map COLUMN=id"), "{err}");
    let err = fails(dir, &["lists", "add", "calls", "ids.csv", "--by", "id"], 1);
    assert!(err.contains("ids.csv"), "{err}");
}

#[test]
fn updates_take_the_rows_non_empty_values_and_the_last_row_wins() {
    let tmp = stored();
    let dir = tmp.path();
    write(
        dir,
        "first.csv",
        "id,status,agent,callback_at\n1,new,jan,2026-12-01 10:00\n2,,,\n",
    );
    succeeds(dir, &["lists", "add", "calls", "first.csv", "--by", "id"]);
    write(
        dir,
        "second.csv",
        "id,status,agent,callback_at\n1,called,,\n2,,petr,\n1,,,02/12/2026 09:15:30\n1,no answer,,\n3,,,\n",
    );
    let s = members(
        dir,
        &[
            "lists",
            "add",
            "calls",
            "second.csv",
            "--by",
            "id",
            "--status",
            "ignored-for-members",
        ],
    );
    assert_eq!((s["added"].as_u64(), s["updated"].as_u64()), (Some(1), Some(4)));
    assert_eq!(
        memberships(dir, "calls"),
        [
            strings(&["1", "no answer", "jan", "2026-12-02T09:15", ""]),
            strings(&["2", "new", "petr", "", ""]),
            strings(&["3", "ignored-for-members", "", "", ""]),
        ]
    );
    // The default output directories count up.
    succeeds(dir, &["lists", "add", "calls", "first.csv", "--by", "id"]);
    succeeds(dir, &["lists", "add", "calls", "first.csv", "--by", "id"]);
    assert!(dir.join("kontakt-out/calls-add-2/updated.csv").exists());
}

#[test]
fn an_unknown_list_is_a_usage_error_unless_create() {
    let tmp = stored();
    let dir = tmp.path();
    write(dir, "ids.csv", "id\n1\n2\n");
    let err = fails(dir, &["lists", "add", "nope", "ids.csv", "--by", "id"], 2);
    assert!(err.contains("no list named \"nope\""), "{err}");
    // Before reading anything: no output directory either.
    assert!(!dir.join("kontakt-out/nope-add-1").exists());
    fails(dir, &["lists", "add", "nope", "missing.csv", "--by", "id"], 2);
    fails(dir, &["lists", "remove", "nope", "ids.csv", "--by", "id"], 2);
    let s = members(dir, &["lists", "add", "nope", "ids.csv", "--by", "id", "--create"]);
    assert_eq!(s["added"], 2);
    assert_eq!(json(dir, &["lists", "show", "nope", "--json"])["members"], 2);
}

#[test]
fn a_dry_run_writes_the_files_and_changes_nothing() {
    let tmp = stored();
    let dir = tmp.path();
    write(dir, "ids.csv", "id,status\n1,hot\n2,\n9,\n");
    succeeds(dir, &["lists", "add", "calls", "ids.csv", "--by", "id"]);
    let before = store_state(dir);
    write(dir, "more.csv", "id,status\n1,cold\n3,\n");
    let s = members(dir, &["lists", "add", "calls", "more.csv", "--by", "id", "--dry-run"]);
    assert_eq!(
        (s["added"].as_u64(), s["updated"].as_u64(), s["dry_run"].as_bool()),
        (Some(1), Some(1), Some(true))
    );
    let s = members(
        dir,
        &[
            "lists",
            "add",
            "new-list",
            "more.csv",
            "--by",
            "id",
            "--dry-run",
            "--create",
        ],
    );
    assert_eq!((s["added"].as_u64(), s["list_id"].is_null()), (Some(2), true));
    let s = members(
        dir,
        &["lists", "remove", "calls", "more.csv", "--by", "id", "--dry-run"],
    );
    assert_eq!(s["removed"], 1);
    assert!(store_state(dir) == before, "the store changed");
    assert_eq!(memberships(dir, "calls").len(), 2);
    fails(dir, &["lists", "show", "new-list"], 2);
}

#[test]
fn remove_takes_members_off_and_reports_the_rest() {
    let tmp = stored();
    let dir = tmp.path();
    write(dir, "ids.csv", "id\n1\n2\n3\n");
    succeeds(dir, &["lists", "add", "calls", "ids.csv", "--by", "id"]);
    write(
        dir,
        "off.csv",
        "email\nanna@example.cz\neva@example.cz\nnobody@example.cz\nshared@example.cz\n\nbob@example.cz\nanna@example.cz\n",
    );
    let s = members(dir, &["lists", "remove", "calls", "off.csv", "--by", "email"]);
    for (key, expected) in [
        ("rows_read", 6),
        ("removed", 2),
        ("not_found", 3),
        ("failed", 1),
        ("members", 1),
    ] {
        assert_eq!(s[key], expected, "{key}: {s}");
    }
    assert!(s.get("added").is_none(), "{s}");
    assert_eq!(column(dir, "removed.csv", "contact_id"), ["1", "2"]);
    assert_eq!(
        column(dir, "not_found.csv", "detail"),
        [
            "contact 5 is not on list \"calls\"",
            "no contact with email \"nobody@example.cz\"",
            "contact 1 is not on list \"calls\""
        ]
    );
    assert_eq!(column(dir, "failed.csv", "reason"), ["multiple_match"]);
    assert_eq!(memberships(dir, "calls"), [strings(&["3", "new", "", "", ""])]);
    assert_eq!(count(dir, "contacts"), "5");
}

#[test]
fn export_writes_the_contact_columns_then_the_membership() {
    let tmp = stored();
    let dir = tmp.path();
    write(
        dir,
        "ids.csv",
        "id,status,agent,callback\n4,hot,jan,2026-12-01 14:30\n2,,,\n",
    );
    succeeds(dir, &["lists", "add", "calls", "ids.csv", "--by", "id"]);
    succeeds(dir, &["contacts", "export", "-o", "all.csv"]);
    succeeds(dir, &["lists", "export", "calls", "-o", "calls.csv"]);
    let all = std::fs::read_to_string(dir.join("all.csv")).expect("all");
    let calls = std::fs::read_to_string(dir.join("calls.csv")).expect("calls");
    let header = all.lines().next().expect("header");
    assert_eq!(
        calls.lines().next().expect("header"),
        format!("{header},status,agent,callback_at,added_at")
    );
    // Each member's contact as `contacts export` writes it, then its
    // membership, by contact id.
    let lines: Vec<&str> = calls.lines().skip(1).collect();
    assert_eq!(lines.len(), 2);
    for (line, id, tail) in [
        (lines[0], "2", ",new,,,"),
        (lines[1], "4", ",hot,jan,2026-12-01T14:30:00,"),
    ] {
        let contact = all.lines().find(|l| l.starts_with(&format!("{id},"))).expect("contact");
        assert!(line.starts_with(&format!("{contact}{tail}")), "{line}");
    }
    // Standard output is the same CSV; Parquet and a workbook are written.
    let stdout = succeeds(dir, &["lists", "export", "calls", "-o", "-"]);
    assert_eq!(String::from_utf8(stdout).expect("utf-8"), calls);
    succeeds(dir, &["lists", "export", "calls", "-o", "calls.parquet"]);
    succeeds(dir, &["lists", "export", "calls", "-o", "calls.xlsx"]);
    let parquet = crate::import::query_files(&format!(
        "SELECT id, status, agent, callback_at FROM read_parquet('{}') ORDER BY id",
        dir.join("calls.parquet").display()
    ));
    assert_eq!(
        parquet,
        [
            strings(&["2", "new", "", ""]),
            strings(&["4", "hot", "jan", "2026-12-01T14:30:00"])
        ]
    );
    assert!(std::fs::metadata(dir.join("calls.xlsx")).expect("xlsx").len() > 0);
    fails(dir, &["lists", "export", "nope", "-o", "x.csv"], 2);
    assert!(!dir.join("x.csv").exists());

    // contacts list|export --list filter.
    let listed: Value = json(dir, &["contacts", "list", "--list", "calls", "--json"]);
    let ids: Vec<i64> = listed
        .as_array()
        .expect("array")
        .iter()
        .map(|c| c["id"].as_i64().expect("id"))
        .collect();
    assert_eq!(ids, [2, 4]);
    succeeds(dir, &["contacts", "export", "--list", "calls", "-o", "members.csv"]);
    let members = std::fs::read_to_string(dir.join("members.csv")).expect("members");
    assert_eq!(members.lines().next(), Some(header));
    assert_eq!(members.lines().count(), 3);
    let err = fails(dir, &["contacts", "list", "--list", "nope"], 2);
    assert!(err.contains("no list named"), "{err}");
}

#[test]
fn import_list_puts_the_created_and_updated_contacts_on_the_list() {
    let tmp = stored();
    let dir = tmp.path();
    // Contact 1 is a member already, with its own status.
    write(dir, "one.csv", "id,status\n1,called\n");
    succeeds(dir, &["lists", "add", "calls", "one.csv", "--by", "id"]);
    write(
        dir,
        "leads.csv",
        "Email,First name\nanna@example.cz,Anna Marie\nbob@example.cz,Bob\nnew1@example.cz,Nela\nnew2@example.cz,Ota\nbad,x\n",
    );
    let s = import(dir, &["leads.csv", "--name", "fair", "--list", "calls"]);
    assert_eq!((s["imported"].as_u64(), s["updated"].as_u64()), (Some(2), Some(2)));
    let import_id = s["import_id"].to_string();
    assert_eq!(
        memberships(dir, "calls"),
        [
            strings(&["1", "called", "", "", ""]),
            strings(&["2", "new", "", "", &import_id]),
            strings(&["6", "new", "", "", &import_id]),
            strings(&["7", "new", "", "", &import_id]),
        ]
    );
    // A list that does not exist is created; the setting is recorded.
    import(dir, &["leads.csv", "--name", "fair2", "--list", "fresh"]);
    assert_eq!(memberships(dir, "fresh").len(), 4);
    let shown = String::from_utf8(succeeds(dir, &["imports", "show", "fair2"])).expect("utf-8");
    assert!(
        shown.lines().any(|l| l.starts_with("list ") && l.ends_with(" fresh")),
        "{shown}"
    );
    // A dry run adds nothing.
    import(dir, &["leads.csv", "--name", "dry", "--list", "dry", "--dry-run"]);
    fails(dir, &["lists", "show", "dry"], 2);

    // imports delete takes back what the import added, and the
    // memberships of the contacts it created.
    succeeds(dir, &["imports", "delete", "fair"]);
    assert_eq!(memberships(dir, "calls"), [strings(&["1", "called", "", "", ""])]);
    let fresh: Vec<String> = memberships(dir, "fresh").into_iter().map(|m| m[0].clone()).collect();
    assert_eq!(
        fresh,
        ["1", "2"],
        "the contacts fair created are gone, and their memberships"
    );
    // contacts delete takes its contacts' memberships.
    succeeds(dir, &["contacts", "delete", "1"]);
    assert!(memberships(dir, "calls").is_empty());
    assert_eq!(json(dir, &["lists", "show", "fresh", "--json"])["members"], 1);
}

#[test]
fn read_only_commands_need_a_store_and_create_none() {
    let dir = tempfile::tempdir().expect("tempdir");
    let dir = dir.path();
    for args in [
        &["lists", "list"][..],
        &["lists", "show", "x"],
        &["lists", "export", "x", "-o", "x.csv"],
        &["contacts", "list", "--list", "x"],
    ] {
        let err = fails(dir, &[&["--db", "none.duckdb"], args].concat(), 1);
        assert!(err.contains("no store here"), "{err}");
    }
    assert!(!dir.join("none.duckdb").exists() && !dir.join("x.csv").exists());
}

#[test]
fn a_store_older_than_lists_shows_none_when_read() {
    let tmp = stored();
    let dir = tmp.path();
    // As a schema-7 store: no lists' tables.
    let db = dir.join("kontakt.duckdb");
    {
        let conn = duckdb::Connection::open(&db).expect("open");
        conn.execute_batch(
            "DROP TABLE list_members; DROP TABLE lists; DROP SEQUENCE list_id_seq; DROP TABLE undo_records; \
             UPDATE kontakt_meta SET value = '7' WHERE key = 'schema_version'",
        )
        .expect("schema 7");
    }
    assert_eq!(json(dir, &["lists", "list", "--json"]), serde_json::json!([]));
    let err = fails(dir, &["lists", "show", "calls"], 2);
    assert!(err.contains("no list named"), "{err}");
    // A command that writes upgrades it.
    succeeds(dir, &["lists", "create", "calls"]);
    assert_eq!(json(dir, &["lists", "list", "--json"])[0]["name"], "calls");
}

#[test]
fn ctrl_c_during_lists_add_or_remove_leaves_the_store_as_it_was() {
    let tmp = stored();
    let dir = tmp.path();
    write(dir, "ids.csv", "id,status\n1,hot\n2,\n");
    succeeds(dir, &["lists", "add", "calls", "ids.csv", "--by", "id"]);
    write(dir, "more.csv", "id,status\n1,cold\n3,\n4,\n");
    let before = memberships(dir, "calls");
    for (stage, signal, code) in [
        ("lists_add", libc::SIGINT, 130),
        ("lists_apply", libc::SIGTERM, 143),
        ("lists_commit", libc::SIGINT, 130),
    ] {
        for verb in ["add", "remove"] {
            let child = spawn_with(dir, &["lists", verb, "calls", "more.csv", "--by", "id"], "pause", &[]);
            let (exit, stderr) = signal_at(child, stage, signal);
            assert_eq!(exit, Some(code), "{verb} at {stage}: {stderr}");
            assert!(
                stderr.trim_end().ends_with("rolled back, the store is as it was"),
                "{stderr}"
            );
            assert_eq!(memberships(dir, "calls"), before, "{verb} at {stage}");
        }
    }
    // A list --create would have made is not there either.
    let child = spawn_with(
        dir,
        &["lists", "add", "other", "more.csv", "--by", "id", "--create"],
        "pause",
        &[],
    );
    assert_eq!(signal_at(child, "lists_commit", libc::SIGINT).0, Some(130));
    fails(dir, &["lists", "show", "other"], 2);
}

#[test]
fn a_cancelled_import_adds_nothing_to_its_list() {
    let tmp = stored();
    let dir = tmp.path();
    write(dir, "leads.csv", "Email\nanna@example.cz\nnew@example.cz\n");
    let child = spawn_with(
        dir,
        &[
            "import",
            "leads.csv",
            "--progress",
            "never",
            "--name",
            "leads",
            "--list",
            "calls",
        ],
        "pause",
        &[],
    );
    let (exit, stderr) = signal_at(child, "commit_list", libc::SIGINT);
    assert_eq!(exit, Some(130), "{stderr}");
    assert!(memberships(dir, "calls").is_empty());
    let child = spawn_with(
        dir,
        &[
            "import",
            "leads.csv",
            "--progress",
            "never",
            "--name",
            "leads",
            "--list",
            "new",
        ],
        "pause",
        &[],
    );
    assert_eq!(signal_at(child, "commit", libc::SIGTERM).0, Some(143));
    fails(dir, &["lists", "show", "new"], 2);
    assert_eq!(count(dir, "contacts"), "5");
}

on_postgres_too!(
    lists_are_created_listed_shown_renamed_and_deleted,
    add_by_id_puts_every_row_in_exactly_one_file,
    add_by_email_phone_and_external_id_and_multiple_matches,
    updates_take_the_rows_non_empty_values_and_the_last_row_wins,
    an_unknown_list_is_a_usage_error_unless_create,
    a_dry_run_writes_the_files_and_changes_nothing,
    remove_takes_members_off_and_reports_the_rest,
    import_list_puts_the_created_and_updated_contacts_on_the_list,
    read_only_commands_need_a_store_and_create_none,
    export_writes_the_contact_columns_then_the_membership,
    ctrl_c_during_lists_add_or_remove_leaves_the_store_as_it_was,
    a_cancelled_import_adds_nothing_to_its_list,
);
