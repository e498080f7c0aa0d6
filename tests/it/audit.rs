//! `kontakt audit` and `kontakt merge` through the binary, on stores built by
//! imports with known clusters.

use std::path::Path;

use serde_json::Value;

use crate::common::{fails, kontakt, succeeds, write};
use crate::import::{import, query};

/// Persons 1-7 and a company (8). Clusters by email and phone:
/// {1, 2, 3}: 1-2 share an email, 2-3 a phone (a chain across keys);
/// {4, 5}: a phone; 6 and 7 share nothing; the company shares 1's email
/// but a cluster never spans types.
const PEOPLE: &str = "\
First name,E-mail,Phone,City,Tags,Email opt-in
Anna,anna@example.cz,+420 601 000 001,,a,yes
Anna B,ANNA@example.cz,+420 601 000 002,Brno,b,no
Anička,anicka@example.cz,601000002,,,
Dan,dan@example.cz,+420 601 000 009,,,
Daniel,daniel@example.cz,+420601000009,Praha,,yes
Eva,eva@example.cz,,,,
Filip,,+420 601 000 077,,,
";

const COMPANY: &str = "Company,E-mail\nAnna s.r.o.,anna@example.cz\n";

/// A store with the contacts above, imported without matching (so the
/// duplicates are kept), in one import: ids 1-7, then the company 8.
pub fn store(dir: &Path) {
    write(dir, "people.csv", PEOPLE);
    write(dir, "company.csv", COMPANY);
    import(dir, &["people.csv", "--primary-key", "none"]);
    import(dir, &["company.csv", "--primary-key", "none", "--type", "company"]);
}

fn audit(dir: &Path, out: &str, args: &[&str]) -> (Vec<Vec<String>>, Value) {
    succeeds(dir, &[&["audit", "--out", out], args].concat());
    let text = std::fs::read_to_string(dir.join(out).join("clusters.csv")).expect("clusters.csv");
    let rows = text
        .lines()
        .map(|l| l.split(',').map(str::to_string).collect())
        .collect();
    let summary = std::fs::read_to_string(dir.join(out).join("summary.json")).expect("summary.json");
    (rows, serde_json::from_str(&summary).expect("summary JSON"))
}

/// The columns of clusters.csv that do not depend on the time: cluster_id,
/// contact_id, key, value, survivor_id.
fn stable(rows: &[Vec<String>]) -> Vec<String> {
    rows.iter()
        .map(|r| [&r[0], &r[1], &r[2], &r[3], &r[5]].map(String::as_str).join(","))
        .collect()
}

#[test]
fn audit_finds_connected_clusters_deterministically() {
    let dir = tempfile::tempdir().expect("tempdir");
    let dir = dir.path();
    store(dir);
    let (rows, summary) = audit(dir, "a1", &["--key", "email,phone"]);
    assert_eq!(
        stable(&rows),
        [
            "cluster_id,contact_id,key,value,survivor_id",
            // 3 shares no email: its first shared key is phone.
            "1,1,email,anna@example.cz,1",
            "1,2,email,anna@example.cz,1",
            "1,3,phone,+420601000002,1",
            "2,4,phone,+420601000009,4",
            "2,5,phone,+420601000009,4",
        ]
    );
    assert_eq!(rows[0][4], "created_at");
    let created = &query(
        &dir.join("kontakt.duckdb"),
        "SELECT created_at FROM contacts WHERE id = 1",
    )[0][0];
    assert_eq!(&rows[1][4], created, "created_at as the store has it");
    assert_eq!(summary["contacts"], 8);
    assert_eq!(summary["clusters"], 2);
    assert_eq!(summary["contacts_in_clusters"], 5);
    assert_eq!(summary["by_key"], serde_json::json!({"email": 1, "phone": 2}));
    assert_eq!(summary["reported_clusters"], 2);

    // The same store audited again gives the same file.
    let (again, _) = audit(dir, "a2", &[]);
    assert_eq!(rows, again);

    // One key only: the chain is cut.
    let (rows, summary) = audit(dir, "a3", &["--key", "email"]);
    assert_eq!(
        stable(&rows)[1..],
        ["1,1,email,anna@example.cz,1", "1,2,email,anna@example.cz,1"]
    );
    assert_eq!(summary["by_key"], serde_json::json!({"email": 1}));

    // Companies alone: the company's email is shared with a person only.
    let (rows, summary) = audit(dir, "a4", &["--type", "company"]);
    assert_eq!(rows.len(), 1);
    assert_eq!(summary["contacts"], 1);
    assert_eq!(summary["clusters"], 0);
}

#[test]
fn survivor_rules() {
    let dir = tempfile::tempdir().expect("tempdir");
    let dir = dir.path();
    store(dir);
    let survivors = |args: &[&str], out: &str| -> Vec<String> {
        let (rows, _) = audit(dir, out, args);
        rows[1..].iter().map(|r| format!("{}:{}", r[1], r[5])).collect()
    };
    // Same created_at (one import): first = smaller id, last = larger id.
    assert_eq!(survivors(&[], "s1"), ["1:1", "2:1", "3:1", "4:4", "5:4"]);
    assert_eq!(
        survivors(&["--survivor", "last"], "s2"),
        ["1:3", "2:3", "3:3", "4:5", "5:5"]
    );
    // 2 and 5 have a city (and 5 a consent): the most filled fields.
    assert_eq!(
        survivors(&["--survivor", "most-complete"], "s3"),
        ["1:2", "2:2", "3:2", "4:5", "5:5"]
    );
}

#[test]
fn since_last_reports_only_new_and_changed_clusters() {
    let dir = tempfile::tempdir().expect("tempdir");
    let dir = dir.path();
    store(dir);
    // The first --since-last audit of a scope reports every cluster.
    let (first, summary) = audit(dir, "b1", &["--since-last"]);
    assert_eq!(first.len(), 6);
    assert_eq!(summary["since_last"]["since_audit"], Value::Null);
    assert_eq!(summary["since_last"]["new_clusters"], 2);

    // Nothing changed: nothing reported, the totals stand.
    let (rows, summary) = audit(dir, "b2", &["--since-last"]);
    assert_eq!(rows.len(), 1);
    assert_eq!(summary["clusters"], 2);
    assert_eq!(summary["since_last"]["since_audit"], 1);

    // 9 joins {4, 5} by email; 10 and 11 share a new phone; 3 is deleted,
    // so {1, 2, 3} becomes {1, 2}; 6 and 7 are untouched.
    write(
        dir,
        "more.csv",
        "First name,E-mail,Phone\nDana,dan@example.cz,\nGita,,+420 601 000 055\nGita B,,+420601000055\n",
    );
    import(dir, &["more.csv", "--primary-key", "none"]);
    succeeds(dir, &["contacts", "delete", "3"]);
    let (rows, summary) = audit(dir, "b3", &["--since-last"]);
    let since = &summary["since_last"];
    assert_eq!(since["since_audit"], 2);
    assert_eq!(since["contacts_changed"], 3);
    assert_eq!(since["contacts_deleted"], 1);
    assert_eq!(since["new_clusters"], 1);
    assert_eq!(since["changed_clusters"], 2);
    assert_eq!(since["removed_clusters"], 0);
    assert_eq!(summary["reported_clusters"], 3);
    assert_eq!(summary["clusters"], 3);
    assert_eq!(summary["contacts_in_clusters"], 7);

    // Exactly those clusters, with the ids and rows a full audit gives now.
    let (full, full_summary) = audit(dir, "b4", &[]);
    assert_eq!(rows, full);
    assert_eq!(
        stable(&full)[1..],
        [
            "1,1,email,anna@example.cz,1",
            "1,2,email,anna@example.cz,1",
            "2,4,email,dan@example.cz,4",
            "2,5,phone,+420601000009,4",
            "2,9,email,dan@example.cz,4",
            "3,10,phone,+420601000055,10",
            "3,11,phone,+420601000055,10",
        ]
    );
    for key in ["contacts", "clusters", "contacts_in_clusters", "by_key"] {
        assert_eq!(summary[key], full_summary[key], "{key}");
    }
    // The audits are recorded in the store.
    let audits = query(
        &dir.join("kontakt.duckdb"),
        "SELECT id, scope, coalesce(since_audit, 0), reported_clusters FROM audits ORDER BY id",
    );
    assert_eq!(audits.len(), 4);
    assert_eq!(audits[2], ["3", "all:email,phone", "2", "3"]);
}

/// `--since-last` on a typed scope when nothing was deleted (the store
/// still holds every contact the previous audit saw): new rows, then a
/// member that another tool moved to another type (it leaves the scope like
/// a deleted one). Each time the totals and rows are a full audit's.
#[test]
fn since_last_without_deletes_and_with_a_type_change() {
    let dir = tempfile::tempdir().expect("tempdir");
    let dir = dir.path();
    store(dir);
    let person = ["--type", "person"];
    audit(dir, "c1", &[&person[..], &["--since-last"]].concat());

    write(dir, "more.csv", "First name,E-mail\nDana,dan@example.cz\n");
    import(dir, &["more.csv", "--primary-key", "none"]);
    let (rows, summary) = audit(dir, "c2", &[&person[..], &["--since-last"]].concat());
    let since = &summary["since_last"];
    assert_eq!(since["contacts_changed"], 1);
    assert_eq!(since["contacts_deleted"], 0);
    assert_eq!(since["changed_clusters"], 1);
    assert_eq!(summary["reported_clusters"], 1);
    let (full, full_summary) = audit(dir, "c3", &person);
    assert_eq!(
        stable(&rows)[1..],
        stable(&full)[4..],
        "the {{4, 5, 9}} cluster as a full audit has it"
    );
    for key in ["contacts", "clusters", "contacts_in_clusters", "by_key"] {
        assert_eq!(summary[key], full_summary[key], "{key}");
    }

    // 2 bridged 1 (email) and 3 (phone): as a company it leaves the person
    // scope and {1, 2, 3} falls apart.
    crate::import::execute(
        &dir.join("kontakt.duckdb"),
        "UPDATE contacts SET type = 'company', updated_at = now()::TIMESTAMP WHERE id = 2",
        "UPDATE contacts SET type = 'company', updated_at = now() AT TIME ZONE 'UTC' WHERE id = 2",
    );
    let (rows, summary) = audit(dir, "c4", &[&person[..], &["--since-last"]].concat());
    let since = &summary["since_last"];
    assert_eq!(since["contacts_deleted"], 1, "{summary}");
    assert_eq!(since["removed_clusters"], 1);
    assert_eq!(since["new_clusters"], 0);
    assert_eq!(rows.len(), 1, "nothing new to report");
    let (_, full_summary) = audit(dir, "c5", &person);
    for key in ["contacts", "clusters", "contacts_in_clusters", "by_key"] {
        assert_eq!(summary[key], full_summary[key], "{key}");
    }
    assert_eq!(summary["clusters"], 1);
}

/// Every stored key value has the hash of the key index (and only those).
fn index_is_exact(db: &Path) {
    for key in ["email", "phone", "mobile", "external_id"] {
        let rows = query(db, &format!("SELECT {key}, {key}_hash FROM contacts"));
        assert!(!rows.is_empty());
        for row in rows {
            let expected = if row[0].is_empty() {
                String::new()
            } else {
                // PostgreSQL keeps the hash's bits signed.
                let hash = kontakt::fields::key_hash(&row[0]);
                match crate::common::store_url() {
                    Some(_) => (hash as i64).to_string(),
                    None => hash.to_string(),
                }
            };
            assert_eq!(row[1], expected, "{key} {:?}", row[0]);
        }
    }
}

#[test]
fn imports_and_updates_keep_the_key_index_exact() {
    let dir = tempfile::tempdir().expect("tempdir");
    let dir = dir.path();
    store(dir);
    index_is_exact(&dir.join("kontakt.duckdb"));
    // Matched by email, the file's phone overwrites the stored one.
    write(
        dir,
        "new-phones.csv",
        "E-mail,Phone,Mobile\neva@example.cz,+420 601 000 123,+420 777 000 001\n",
    );
    let summary = import(dir, &["new-phones.csv"]);
    assert_eq!(summary["updated"], 1);
    let db = dir.join("kontakt.duckdb");
    assert_eq!(
        query(&db, "SELECT phone, mobile FROM contacts WHERE id = 6"),
        [["+420601000123", "+420777000001"]]
    );
    index_is_exact(&db);
}

fn export(dir: &Path) -> String {
    succeeds(dir, &["contacts", "export", "-o", "export.csv"]);
    std::fs::read_to_string(dir.join("export.csv")).expect("export")
}

#[test]
fn merge_and_its_dry_run() {
    let dir = tempfile::tempdir().expect("tempdir");
    let dir = dir.path();
    store(dir);
    audit(dir, "m1", &[]);
    let before = export(dir);

    let dry: Value =
        serde_json::from_slice(&succeeds(dir, &["merge", "--audit", "m1", "--dry-run", "--json"])).expect("JSON");
    assert_eq!(dry["dry_run"], true);
    assert_eq!(dry["merge_id"], Value::Null);
    assert_eq!(dry["clusters"], 2);
    assert_eq!(dry["contacts_merged"], 3);
    assert_eq!(dry["survivors"], 2);
    assert_eq!(export(dir), before, "a dry run changes nothing");
    let groups = query(&dir.join("kontakt.duckdb"), "SELECT count(*) FROM import_groups");
    assert_eq!(groups, [["2"]], "and records no group");
    assert_eq!(dry["values_dropped"], 8);
    assert_eq!(
        merged_csv(dir, "m1"),
        MERGED_M1,
        "the dry run says what would be dropped"
    );

    std::fs::remove_file(dir.join("m1/merged.csv")).expect("remove");
    let done: Value = serde_json::from_slice(&succeeds(dir, &["merge", "--audit", "m1", "--json"])).expect("JSON");
    assert_eq!(done["contacts_merged"], 3);
    assert_eq!(done["values_dropped"], 8);
    assert_eq!(merged_csv(dir, "m1"), MERGED_M1);
    let db = dir.join("kontakt.duckdb");
    assert_eq!(
        query(&db, "SELECT id FROM contacts ORDER BY id"),
        [["1"], ["4"], ["6"], ["7"], ["8"]]
    );
    // Survivor 1 keeps its values, gains the empty ones (city from 2),
    // unions tags; 2 said no to email: opt-out wins over 1's yes.
    assert_eq!(
        query(
            &db,
            "SELECT first_name, email, city, array_to_string(tags, ';'), email_opt_in FROM contacts WHERE id = 1"
        ),
        [["Anna", "anna@example.cz", "Brno", "a;b", "opt-out"]]
    );
    index_is_exact(&db);
    // Survivor 4 had no consent; 5 opted in: unknown becomes opt-in.
    assert_eq!(
        query(&db, "SELECT city, email_opt_in FROM contacts WHERE id = 4"),
        [["Praha", "opt-in"]]
    );
    // The merged contacts are kept beside their survivor; the merge is a group.
    assert_eq!(
        query(
            &db,
            if crate::common::store_url().is_some() {
                "SELECT contact_id, survivor_id, contact::jsonb ->> 'first_name' FROM merged_contacts ORDER BY contact_id"
            } else {
                "SELECT contact_id, survivor_id, json_extract_string(contact, '$.first_name') FROM merged_contacts ORDER BY contact_id"
            }
        ),
        [["2", "1", "Anna B"], ["3", "1", "Anička"], ["5", "4", "Daniel"]]
    );
    let group: Value =
        serde_json::from_slice(&succeeds(dir, &["imports", "show", "merge-audit-1", "--json"])).expect("JSON");
    assert_eq!(group["kind"], "merge");
    assert_eq!(group["status"], "completed");
    assert_eq!(group["rows_read"], 5);
    assert_eq!(group["updated"], 3);
    assert_eq!(group["contacts_updated"], 2);
    let err = fails(dir, &["imports", "delete", "merge-audit-1"], 2);
    assert!(err.contains("is a merge"), "{err}");

    // No clusters are left; the same audit cannot be merged again, and
    // the message names the audit and the merge that did it.
    let (rows, _) = audit(dir, "m2", &[]);
    assert_eq!(rows.len(), 1);
    for args in [&["--name", "again"][..], &["--dry-run"]] {
        let err = fails(dir, &[&["merge", "--audit", "m1"], args].concat(), 2);
        assert!(
            err.contains("m1: audit 1 was already merged by merge group \"merge-audit-1\""),
            "{err}"
        );
    }
    assert_eq!(merged_csv(dir, "m1"), MERGED_M1, "the log of the merge is kept");
}

/// What merging the audit of [`store`] drops (`--master existing`): the
/// survivors' other names, emails and phones, and survivor 1's own opt-in
/// (2 opted out: consents are never upgraded). 5's city fills 4's.
const MERGED_M1: &str = "\
survivor_id,merged_id,field,value,kept_in
1,1,email_opt_in,opt-in,
1,2,first_name,Anna B,
1,2,phone,+420601000002,
1,3,first_name,Anička,
1,3,email,anicka@example.cz,
1,3,phone,+420601000002,
4,5,first_name,Daniel,
4,5,email,daniel@example.cz,
";

fn merged_csv(dir: &Path, audit: &str) -> String {
    std::fs::read_to_string(dir.join(audit).join("merged.csv")).expect("merged.csv")
}

#[test]
fn merge_keeps_dropped_values_in_the_note_or_a_custom_field() {
    let dir = tempfile::tempdir().expect("tempdir");
    let dir = dir.path();
    store(dir);
    audit(dir, "k1", &[]);
    let db = dir.join("kontakt.duckdb");
    for (value, says) in [
        ("custom.Bad Name", "custom field name \"Bad Name\""),
        ("city", "note, custom.NAME or none"),
    ] {
        let output = kontakt(dir)
            .args(["merge", "--audit", "k1", "--keep-dropped", value])
            .output()
            .expect("run");
        let err = String::from_utf8_lossy(&output.stderr);
        assert_eq!(output.status.code(), Some(2), "{err}");
        assert!(err.contains("--keep-dropped") && err.contains(says), "{err}");
    }

    // A dry run writes the log with where each value would go, and changes nothing.
    let before = export(dir);
    succeeds(dir, &["merge", "--audit", "k1", "--keep-dropped", "note", "--dry-run"]);
    assert_eq!(export(dir), before);
    let noted = MERGED_M1
        .lines()
        .map(|l| match l {
            "survivor_id,merged_id,field,value,kept_in" => l.to_string(),
            _ if l.contains("email_opt_in") => l.to_string(),
            _ => format!("{l}note"),
        })
        .collect::<Vec<_>>()
        .join("\n");
    assert_eq!(merged_csv(dir, "k1").trim_end(), noted);

    let out = String::from_utf8(succeeds(dir, &["merge", "--audit", "k1", "--keep-dropped", "note"])).expect("utf-8");
    assert!(
        out.contains("8 values not kept in their field (appended to note)"),
        "{out}"
    );
    assert_eq!(merged_csv(dir, "k1").trim_end(), noted);
    assert_eq!(
        query(&db, "SELECT id, note FROM contacts WHERE id IN (1, 4) ORDER BY id"),
        [
            [
                "1",
                "merged from 2: first_name=Anna B; phone=+420601000002\n\
                 merged from 3: first_name=Anička; email=anicka@example.cz; phone=+420601000002"
            ],
            ["4", "merged from 5: first_name=Daniel; email=daniel@example.cz"],
        ]
    );

    // --master file: the survivor's own earlier values are dropped too, and
    // go to a custom field the merge creates.
    let dir = tempfile::tempdir().expect("tempdir");
    let dir = dir.path();
    crate::common::fresh_store();
    store(dir);
    audit(dir, "k2", &[]);
    succeeds(
        dir,
        &[
            "merge",
            "--audit",
            "k2",
            "--master",
            "file",
            "--keep-dropped",
            "custom.merged",
        ],
    );
    let db = dir.join("kontakt.duckdb");
    assert_eq!(
        query(&db, "SELECT email, \"custom.merged\" FROM contacts WHERE id = 1"),
        [[
            "anicka@example.cz",
            "before merge: first_name=Anna; email=anna@example.cz; phone=+420601000001\n\
             merged from 2: first_name=Anna B; email=anna@example.cz"
        ]]
    );
    let log = merged_csv(dir, "k2");
    assert!(log.contains("\n1,1,email,anna@example.cz,custom.merged\n"), "{log}");
    assert!(log.contains("\n1,1,email_opt_in,opt-in,\n"), "{log}");
    assert_eq!(query(&db, "SELECT name FROM custom_fields"), [["merged"]]);
    index_is_exact(&db);
}

#[test]
fn merge_refuses_a_stale_audit_and_bad_files() {
    let dir = tempfile::tempdir().expect("tempdir");
    let dir = dir.path();
    store(dir);
    audit(dir, "s1", &[]);
    let before = export(dir);
    // A member changed after the audit: nothing is merged.
    import(
        dir,
        &[
            "people.csv",
            "--name",
            "again",
            "--on-one-match",
            "update",
            "--on-multiple-match",
            "update-all",
        ],
    );
    let err = fails(dir, &["merge", "--audit", "s1"], 1);
    assert!(err.contains("changed since audit 1"), "{err}");
    let group = query(
        &dir.join("kontakt.duckdb"),
        "SELECT status FROM import_groups WHERE kind = 'merge'",
    );
    assert_eq!(group, [["failed"]]);
    assert_ne!(export(dir), before);

    // A survivor that is not a member of its cluster.
    std::fs::create_dir_all(dir.join("bad")).expect("dir");
    std::fs::copy(dir.join("s1/summary.json"), dir.join("bad/summary.json")).expect("copy");
    write(
        &dir.join("bad"),
        "clusters.csv",
        "cluster_id,contact_id,key,value,created_at,survivor_id\n1,1,email,x,2026-01-01 00:00:00,7\n1,2,email,x,2026-01-01 00:00:00,7\n",
    );
    let err = fails(dir, &["merge", "--audit", "bad"], 1);
    assert!(err.contains("cluster 1, column survivor_id: 7"), "{err}");
    write(
        &dir.join("bad"),
        "clusters.csv",
        "cluster_id,contact_id,key,value,created_at,survivor_id\n1,x1,email,x,2026-01-01 00:00:00,1\n",
    );
    let err = fails(dir, &["merge", "--audit", "bad"], 1);
    assert!(err.contains("row 1, column contact_id: \"x1\""), "{err}");
}

#[test]
fn audit_usage_errors() {
    let dir = tempfile::tempdir().expect("tempdir");
    let dir = dir.path();
    let err = fails(dir, &["audit", "--key", "email,name"], 2);
    assert!(err.contains("--key \"name\""), "{err}");
    let err = fails(dir, &["audit", "--key", "email,email"], 2);
    assert!(err.contains("given twice"), "{err}");
    let err = fails(dir, &["merge", "--audit", "nowhere"], 1);
    assert!(err.contains("nowhere"), "{err}");
}

on_postgres_too!(
    audit_finds_connected_clusters_deterministically,
    survivor_rules,
    since_last_reports_only_new_and_changed_clusters,
    since_last_without_deletes_and_with_a_type_change,
    imports_and_updates_keep_the_key_index_exact,
    audit_usage_errors,
    merge_and_its_dry_run,
    merge_keeps_dropped_values_in_the_note_or_a_custom_field,
    merge_refuses_a_stale_audit_and_bad_files,
);
