//! `kontakt store copy FROM TO` through the binary: a store moved from a
//! DuckDB file to PostgreSQL and back keeps its contacts with their ids,
//! import groups, lists, settings and audit state.

use std::path::Path;

use serde_json::Value;

use crate::common::{fails, kontakt, pg_store, succeeds, write};
use crate::import::{SECOND_ARGS, base_store, import};

/// Runs kontakt on the store at `db`.
fn on(dir: &Path, db: &str, args: &[&str]) -> Vec<u8> {
    succeeds(dir, &[&["--db", db], args].concat())
}

/// What a store shows of itself: its export, groups, lists, a list's
/// members, settings and the next audit's clusters against the last one.
fn shown(dir: &Path, db: &str) -> Vec<String> {
    let text = |bytes: Vec<u8>| String::from_utf8(bytes).expect("UTF-8");
    on(dir, db, &["contacts", "export", "-o", "shown.csv"]);
    let export = std::fs::read_to_string(dir.join("shown.csv")).expect("export");
    vec![
        export,
        text(on(dir, db, &["imports", "list", "--json"])),
        text(on(dir, db, &["lists", "list", "--json"])),
        text(on(dir, db, &["lists", "export", "spring", "-o", "-"])),
        text(on(dir, db, &["config", "list", "--json"])),
    ]
}

#[test]
fn a_store_copied_to_postgresql_and_back_keeps_everything() {
    let dir = tempfile::tempdir().expect("tempdir");
    let dir = dir.path();
    // A store with every kind of state: two imports (tags, a custom
    // field), a list, settings, an audit and a merge of it.
    base_store(dir);
    import(dir, SECOND_ARGS);
    write(dir, "shoe.csv", "E-mail,Shoe\nanna@x.cz,41\n");
    import(dir, &["shoe.csv", "--unmapped", "custom", "--name", "shoe"]);
    succeeds(dir, &["lists", "create", "spring"]);
    write(dir, "ids.csv", "id,status\n1,called\n2,\n");
    succeeds(dir, &["lists", "add", "spring", "ids.csv", "--by", "id"]);
    succeeds(dir, &["config", "set", "default-country", "CZ"]);
    succeeds(dir, &["audit", "--key", "email,phone", "--out", "a1"]);
    let merged: Value = serde_json::from_slice(&succeeds(dir, &["merge", "--audit", "a1", "--json"])).expect("JSON");
    assert!(merged["contacts_merged"].as_u64() > Some(0), "{merged}");
    succeeds(dir, &["audit", "--key", "email,phone", "--out", "a2"]);
    let original = shown(dir, "kontakt.duckdb");

    let pg = pg_store();
    let copied: Value =
        serde_json::from_slice(&succeeds(dir, &["store", "copy", "kontakt.duckdb", &pg, "--json"])).expect("JSON");
    assert_eq!(copied["import_groups"], 4, "{copied}");
    assert_eq!(copied["lists"], 1, "{copied}");
    assert_eq!(shown(dir, &pg), original, "on PostgreSQL");
    let text = String::from_utf8(succeeds(dir, &["store", "copy", &pg, "back.duckdb"])).expect("UTF-8");
    assert!(text.starts_with("copied "), "{text}");
    assert_eq!(shown(dir, "back.duckdb"), original, "back in a DuckDB file");

    // Each copy goes on where the original would: the next contact, group
    // and list get the next ids, and an audit since the last one finds
    // nothing new.
    // Anna is matched by her key hash in each store.
    write(dir, "new.csv", "E-mail,Město\nnew@x.cz,\nanna@x.cz,Tábor\n");
    let mut next = Vec::new();
    for db in ["kontakt.duckdb", pg.as_str(), "back.duckdb"] {
        let summary: Value =
            serde_json::from_slice(&on(dir, db, &["import", "new.csv", "--name", "new", "--json"])).expect("JSON");
        succeeds(dir, &["--db", db, "lists", "create", "autumn"]);
        let since = dir.join(format!("since-{}", next.len()));
        on(
            dir,
            db,
            &[
                "audit",
                "--key",
                "email,phone",
                "--since-last",
                "--out",
                since.to_str().expect("path"),
            ],
        );
        let clusters = std::fs::read_to_string(since.join("clusters.csv")).expect("clusters");
        assert_eq!(
            (summary["imported"].as_u64(), summary["updated"].as_u64()),
            (Some(1), Some(1)),
            "{db}: {summary}"
        );
        next.push((
            summary["import_id"].clone(),
            String::from_utf8(on(dir, db, &["contacts", "list", "--email", "new@x.cz"])).expect("UTF-8"),
            serde_json::from_slice::<Value>(&on(dir, db, &["lists", "list", "--json"]))
                .expect("JSON")
                .as_array()
                .expect("lists")
                .iter()
                .map(|l| (l["id"].clone(), l["name"].clone(), l["members"].clone()))
                .collect::<Vec<_>>(),
            clusters.lines().count(),
        ));
    }
    assert_eq!(next[1], next[0], "PostgreSQL goes on as the original");
    assert_eq!(next[2], next[0], "the DuckDB copy goes on as the original");
}

#[test]
fn a_copy_only_goes_into_a_new_or_empty_store_and_changes_nothing_when_refused() {
    let dir = tempfile::tempdir().expect("tempdir");
    let dir = dir.path();
    base_store(dir);
    write(dir, "other.csv", "E-mail\nother@x.cz\n");
    let pg = pg_store();
    on(dir, &pg, &["import", "other.csv"]);
    let before = shown_contacts(dir, &pg);
    let err = fails(dir, &["store", "copy", "kontakt.duckdb", &pg], 2);
    assert!(
        err.contains("already holds data") && err.contains("1 contacts"),
        "{err}"
    );
    assert_eq!(shown_contacts(dir, &pg), before);
    // FROM must hold a store; nothing is created at either end.
    let err = fails(dir, &["store", "copy", "nothing.duckdb", "to.duckdb"], 1);
    assert!(err.contains("nothing.duckdb") && err.contains("no store"), "{err}");
    assert!(!dir.join("nothing.duckdb").exists() && !dir.join("to.duckdb").exists());
    let err = fails(dir, &["store", "copy", "kontakt.duckdb", "./kontakt.duckdb"], 2);
    assert!(err.contains("same store"), "{err}");
    let err = fails(dir, &["store", "copy", "kontakt.duckdb"], 2);
    assert!(err.contains("TO"), "{err}");
}

fn shown_contacts(dir: &Path, db: &str) -> String {
    String::from_utf8(on(dir, db, &["contacts", "list"])).expect("UTF-8")
}

/// Undo records stay behind: in the copy, an import that changed stored
/// contacts is refused with the reason; one that only created contacts
/// is undone; a group imported after the copy is undone in full.
#[test]
fn undo_records_stay_behind_and_the_copy_says_so() {
    let dir = tempfile::tempdir().expect("tempdir");
    let dir = dir.path();
    base_store(dir);
    let second = import(dir, SECOND_ARGS);
    assert!(second["contacts_updated"].as_u64() > Some(0), "{second}");
    let pg = pg_store();
    succeeds(dir, &["store", "copy", "kontakt.duckdb", &pg]);
    let err = fails(dir, &["--db", &pg, "imports", "undo", "second"], 2);
    assert!(err.contains("store copy") && err.contains("cannot be undone"), "{err}");
    let done: Value =
        serde_json::from_slice(&on(dir, &pg, &["imports", "undo", "base", "--force", "--json"])).expect("JSON");
    assert_eq!(done["created"], 6, "{done}");
    kontakt(dir)
        .args(["--db", &pg, "imports", "show", "base"])
        .assert()
        .success();
}

/// Ctrl-C or SIGTERM while a copy runs, or just before it commits, leaves
/// TO without a row; a copy run again afterwards completes.
#[test]
fn a_cancelled_copy_leaves_the_target_empty() {
    let dir = tempfile::tempdir().expect("tempdir");
    let dir = dir.path();
    base_store(dir);
    let original = shown_contacts(dir, "kontakt.duckdb");
    let pg = pg_store();
    // The fifth table comes after the contacts.
    for (stage, nth, signal, code) in [
        ("copy_table", 5, libc::SIGTERM, 143),
        ("copy_commit", 1, libc::SIGINT, 130),
    ] {
        let child = crate::signals::spawn_with(dir, &["store", "copy", "kontakt.duckdb", &pg], "pause", &[]);
        let (status, stderr) = crate::signals::signal_at_nth(child, stage, nth, signal);
        assert_eq!(status, Some(code), "{stage}: {stderr}");
        assert!(!stderr.contains("panicked"), "{stderr}");
        let rows = crate::common::pg_client(&pg)
            .query_one(
                "SELECT (SELECT count(*) FROM contacts) + (SELECT count(*) FROM import_groups) \
                 + (SELECT count(*) FROM custom_fields)",
                &[],
            )
            .expect("count")
            .get::<_, i64>(0);
        assert_eq!(rows, 0, "{stage}: rows left in TO");
    }
    succeeds(dir, &["store", "copy", "kontakt.duckdb", &pg]);
    assert_eq!(shown_contacts(dir, &pg), original);

    // Back into a DuckDB file the copy creates: cancelled, no file is left
    // (nor its write-ahead log), and the copy runs again.
    let child = crate::signals::spawn_with(dir, &["store", "copy", &pg, "back.duckdb"], "pause", &[]);
    let (status, stderr) = crate::signals::signal_at_nth(child, "copy_table", 5, libc::SIGINT);
    assert_eq!(status, Some(130), "{stderr}");
    assert!(!dir.join("back.duckdb").exists(), "a cancelled copy left its new file");
    assert!(!dir.join("back.duckdb.wal").exists());
    succeeds(dir, &["store", "copy", &pg, "back.duckdb"]);
    assert_eq!(shown_contacts(dir, "back.duckdb"), original);
}
