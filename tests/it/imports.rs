//! `kontakt imports list|show|rename|delete` through the binary.

use serde_json::Value;

use crate::common::{fails, kontakt, succeeds};
use crate::import::{SECOND_ARGS, base_store, import, query};

fn json(dir: &std::path::Path, args: &[&str]) -> Value {
    serde_json::from_slice(&succeeds(dir, args)).expect("JSON on stdout")
}

#[test]
fn list_show_and_rename_report_the_recorded_groups() {
    let dir = tempfile::tempdir().expect("tempdir");
    let dir = dir.path();
    base_store(dir);
    let second = import(dir, SECOND_ARGS);

    let list = json(dir, &["imports", "list", "--json"]);
    let list = list.as_array().expect("array");
    assert_eq!(list.len(), 2);
    assert_eq!(list[0]["name"], "base");
    assert_eq!(list[1]["id"], second["import_id"]);
    assert_eq!(list[1]["status"], "completed");
    for key in [
        "rows_read",
        "rows_failed",
        "imported",
        "updated",
        "skipped",
        "contacts_updated",
    ] {
        assert_eq!(list[1][key], second[key], "{key}");
    }
    assert!(list[1]["started_at"].as_str().expect("time").ends_with('Z'));
    assert_eq!(list[1]["contacts"], 1);

    // By id or by name; the human form names the same values.
    let by_name = json(dir, &["imports", "show", "second", "--json"]);
    let id = second["import_id"].to_string();
    assert_eq!(json(dir, &["imports", "show", &id, "--json"]), by_name);
    let text = kontakt(dir).args(["imports", "list"]).output().expect("list");
    let text = String::from_utf8(text.stdout).expect("utf-8");
    assert!(text.lines().nth(2).expect("second group").contains("second"), "{text}");

    let err = fails(dir, &["imports", "rename", "second", "base"], 2);
    assert!(err.contains("already exists"), "{err}");
    kontakt(dir)
        .args(["imports", "rename", "second", "spring"])
        .assert()
        .success();
    assert_eq!(json(dir, &["imports", "show", &id, "--json"])["name"], "spring");
    let err = fails(dir, &["imports", "show", "second"], 2);
    assert!(err.contains("no import"), "{err}");
}

#[test]
fn delete_removes_only_the_contacts_the_import_created() {
    let dir = tempfile::tempdir().expect("tempdir");
    let dir = dir.path();
    base_store(dir);
    import(dir, SECOND_ARGS);
    let db = dir.join("kontakt.duckdb");
    assert_eq!(query(&db, "SELECT count(*) FROM contacts"), [["7"]]);

    let deleted = json(dir, &["imports", "delete", "second", "--json"]);
    assert_eq!(deleted["contacts_deleted"], 1);
    // The contacts it only updated stay (with the update), the one it
    // created is gone, and so is the group.
    let rows = query(&db, "SELECT id, last_name, import_id FROM contacts ORDER BY id");
    assert_eq!(rows.len(), 6);
    assert_eq!(rows[0], ["1", "Novotná", "1"]);
    assert!(rows.iter().all(|r| r[2] == "1"));
    assert_eq!(query(&db, "SELECT name FROM import_groups"), [["base"]]);
    // Ids are never reused: a new contact gets a fresh one.
    let out = kontakt(dir)
        .args(["contacts", "add", "email=new@x.cz"])
        .output()
        .expect("add");
    assert_eq!(String::from_utf8_lossy(&out.stdout).trim(), "8 created");

    let err = fails(dir, &["imports", "delete", "second"], 2);
    assert!(err.contains("no import"), "{err}");
    kontakt(dir).args(["imports", "delete", "1"]).assert().success();
    assert_eq!(query(&db, "SELECT count(*) FROM contacts"), [["1"]]);
}

#[test]
fn a_number_that_is_one_import_id_and_another_import_name_is_refused() {
    let dir = tempfile::tempdir().expect("tempdir");
    let dir = dir.path();
    base_store(dir);
    let mut args = SECOND_ARGS.to_vec();
    args.extend(["--name", "1"]);
    let second = import(dir, &args);
    let second_id = second["import_id"].to_string();
    for command in ["show", "delete", "undo"] {
        let err = fails(dir, &["imports", command, "1"], 2);
        assert!(
            err.contains(&format!(
                "both the id of import 1 \"base\" and the name of import {second_id}: name the one you mean by its \
                 id as #1 or #{second_id}"
            )),
            "{command}: {err}"
        );
    }
    // `#ID` is an id only: each of the two stays reachable.
    assert_eq!(json(dir, &["imports", "show", "#1", "--json"])["name"], "base");
    assert_eq!(
        json(dir, &["imports", "show", &format!("#{second_id}"), "--json"])["name"],
        "1"
    );
    fails(dir, &["imports", "show", "#77"], 2);
    assert_eq!(
        json(dir, &["imports", "list", "--json"]).as_array().map(Vec::len),
        Some(2),
        "nothing deleted"
    );
    assert_eq!(json(dir, &["imports", "show", &second_id, "--json"])["name"], "1");
    assert_eq!(json(dir, &["imports", "show", "base", "--json"])["id"], 1);
    // A number no import has as its id is a name.
    kontakt(dir)
        .args(["imports", "rename", &second_id, "99"])
        .assert()
        .success();
    assert_eq!(
        json(dir, &["imports", "show", "99", "--json"])["id"],
        second["import_id"]
    );
}

#[test]
fn a_wrong_flag_or_value_is_one_line_with_exit_2_naming_the_help() {
    let dir = tempfile::tempdir().expect("tempdir");
    let dir = dir.path();
    for (args, says, help) in [
        (&["import", "x.csv", "--foo"][..], "'--foo'", "kontakt import --help"),
        (
            &["import", "x.csv", "--mode", "bogus"],
            "add, update, upsert",
            "kontakt import --help",
        ),
        (&["imprt"], "'imports', 'import'", "kontakt --help"),
        (
            &["import", "x.csv", "--country", "CZ"],
            "a similar argument exists: '--default-country'",
            "kontakt import --help",
        ),
        (
            &["import", "x.csv", "--headers"],
            "a similar argument exists: '--header'",
            "kontakt import --help",
        ),
        (
            &["import", "x.csv", "--output", "o"],
            "a similar argument exists: '--out'",
            "kontakt import --help",
        ),
        (
            &["import", "x.csv", "--contry=CZ"],
            "a similar argument exists: '--default-country'",
            "kontakt import --help",
        ),
        (&["imports", "show"], "<ID|NAME>", "kontakt imports show --help"),
        // An option's value that names a command is no command.
        (
            &["--db", "lists", "import", "x.csv", "--foo"],
            "'--foo'",
            "kontakt import --help",
        ),
    ] {
        let stderr = fails(dir, args, 2);
        assert!(stderr.contains(says) && stderr.contains(help), "{args:?}: {stderr}");
    }
    assert!(std::fs::read_dir(dir).expect("dir").next().is_none(), "created files");
}

on_postgres_too!(
    list_show_and_rename_report_the_recorded_groups,
    a_number_that_is_one_import_id_and_another_import_name_is_refused,
    delete_removes_only_the_contacts_the_import_created
);
