//! `kontakt imports undo` (SPEC, Undo) through the binary: every contact an
//! import or a merge touched comes back as it was, the refusal when one
//! changed since, and what an undo leaves for audits and merges.

use std::path::Path;

use serde_json::Value;

use crate::common::{fails, succeeds, write};
use crate::import::{SECOND_ARGS, base_store, execute, import, query};

/// The store's contacts as `contacts export` writes them.
fn export(dir: &Path) -> String {
    succeeds(dir, &["contacts", "export", "-o", "export.csv"]);
    std::fs::read_to_string(dir.join("export.csv")).expect("export")
}

fn undo(dir: &Path, args: &[&str]) -> Value {
    serde_json::from_slice(&succeeds(dir, &[&["imports", "undo", "--json"], args].concat())).expect("JSON")
}

fn group(dir: &Path, name: &str) -> Value {
    serde_json::from_slice(&succeeds(dir, &["imports", "show", name, "--json"])).expect("JSON")
}

/// The groups the store keeps undo records of.
fn records(dir: &Path) -> Vec<String> {
    query(
        &dir.join("kontakt.duckdb"),
        "SELECT DISTINCT group_id FROM undo_records ORDER BY 1",
    )
    .into_iter()
    .map(|r| r[0].clone())
    .collect()
}

/// A file that changes Anna's and Bob's fields, tags, consents and a
/// custom field, and adds Cecil.
const CHANGES: &str = "\
E-mail,Jméno,Město,Email opt-in,SMS opt-in,Štítky,Shoe
anna@x.cz,Anička,Brno,yes,no,spring;vip,41
bob@x.cz,Bobby,,no,,,44
cecil@x.cz,Cecil,Praha,yes,,,
";

#[test]
fn an_undone_upsert_leaves_every_contact_as_it_was_before() {
    let dir = tempfile::tempdir().expect("tempdir");
    let dir = dir.path();
    base_store(dir);
    let before = export(dir);
    write(dir, "changes.csv", CHANGES);
    let summary = import(dir, &["changes.csv", "--unmapped", "custom", "--name", "changes"]);
    assert_eq!(
        (summary["imported"].as_u64(), summary["updated"].as_u64()),
        (Some(1), Some(2))
    );
    assert_ne!(export(dir), before);
    assert_eq!(records(dir), ["2"]);

    let dry = undo(dir, &["changes", "--dry-run"]);
    assert_eq!(
        (dry["created"].as_u64(), dry["restored"].as_u64()),
        (Some(1), Some(2)),
        "{dry}"
    );
    assert_eq!(dry["custom_fields"], serde_json::json!(["shoe"]), "{dry}");
    assert_eq!(
        group(dir, "changes")["status"],
        "completed",
        "a dry run changes nothing"
    );

    let done = undo(dir, &["changes"]);
    assert_eq!(done["dry_run"], false);
    assert_eq!(
        (done["created"].as_u64(), done["restored"].as_u64()),
        (Some(1), Some(2)),
        "{done}"
    );
    // Every contact, field, tag, consent and time as before, and the
    // custom field the import created is gone with it.
    assert_eq!(done["custom_fields"], serde_json::json!(["shoe"]), "{done}");
    assert_eq!(export(dir), before);
    let g = group(dir, "changes");
    assert_eq!(g["status"], "undone");
    assert!(g["undone_at"].as_str().is_some_and(|t| t.ends_with('Z')), "{g}");
    assert!(records(dir).is_empty(), "the record goes with the undo");

    // Undoing twice is a usage error; so is undoing what never completed.
    let err = fails(dir, &["imports", "undo", "changes"], 2);
    assert!(err.contains("undone already"), "{err}");
    let err = fails(dir, &["imports", "undo", "nothing-such"], 2);
    assert!(err.contains("no import"), "{err}");
}

#[test]
fn an_import_that_changes_no_contact_keeps_nothing_for_undo() {
    let dir = tempfile::tempdir().expect("tempdir");
    let dir = dir.path();
    base_store(dir);
    // An export imported back changes nothing.
    export(dir);
    let summary = import(dir, &["export.csv", "--name", "again"]);
    assert_eq!(summary["contacts_updated"], 0, "{summary}");
    assert!(records(dir).is_empty());
    let done = undo(dir, &["again"]);
    assert_eq!(
        (done["created"].as_u64(), done["restored"].as_u64()),
        (Some(0), Some(0))
    );
    // A second import's undo takes back only its own contacts.
    let second = import(dir, SECOND_ARGS);
    let before_undo = export(dir);
    assert!(second["imported"].as_u64().expect("imported") > 0);
    let done = undo(dir, &["second"]);
    assert_eq!(done["created"], second["imported"], "{done}");
    assert_ne!(export(dir), before_undo);
    assert_eq!(group(dir, "base")["contacts"], 6);
}

#[test]
fn a_later_change_refuses_the_undo_unless_forced_and_undos_in_reverse_order_chain() {
    let dir = tempfile::tempdir().expect("tempdir");
    let dir = dir.path();
    base_store(dir);
    let original = export(dir);
    write(
        dir,
        "first.csv",
        "E-mail,Jméno,Město\nanna@x.cz,Anička,Brno\nbob@x.cz,Bobby,\n",
    );
    write(dir, "later.csv", "E-mail,Město\nanna@x.cz,Ostrava\n");
    import(dir, &["first.csv", "--name", "first"]);
    let after_first = export(dir);
    import(dir, &["later.csv", "--name", "later"]);

    // Anna (contact 1) changed after `first`: refused, nothing changes.
    let before = export(dir);
    let err = fails(dir, &["imports", "undo", "first"], 2);
    assert!(
        err.contains("1 of the contacts") && err.contains("ids 1)") && err.contains("--force"),
        "{err}"
    );
    assert_eq!(export(dir), before);
    assert_eq!(group(dir, "first")["status"], "completed");
    // A later `contacts add` that changes one counts as well.
    succeeds(dir, &["contacts", "add", "email=bob@x.cz", "city=Plzeň"]);
    let err = fails(dir, &["imports", "undo", "first"], 2);
    assert!(err.contains("2 of the contacts") && err.contains("ids 1, 2)"), "{err}");
    // Undone in reverse order, each undo finds its contacts as it left
    // them (an undo gives back the times too).
    undo(dir, &["later"]);
    let err = fails(dir, &["imports", "undo", "first"], 2);
    assert!(
        err.contains("1 of the contacts") && err.contains("ids 2)"),
        "Bob's city came from contacts add: {err}"
    );
    let forced = undo(dir, &["first", "--force"]);
    assert_eq!(forced["changed_later"], 1, "{forced}");
    // Forced: Anna and Bob get back their values from before `first` in
    // every field `first` changed; what it did not change stays as it is
    // now (Bob keeps the city `contacts add` gave him later: `first` left
    // his city empty).
    let rows = query(
        &dir.join("kontakt.duckdb"),
        "SELECT id, first_name, coalesce(city, ''), phone FROM contacts WHERE id <= 2 ORDER BY id",
    );
    assert_eq!(
        rows,
        [
            ["1", "Anna", "", "+420777000001"],
            ["2", "Bob", "Plzeň", "+420777000002"]
        ]
    );
    assert_ne!(after_first, original);
    assert_eq!(group(dir, "first")["status"], "undone");
}

/// A contact the import created and a later command deleted counts as a
/// change since (its id is gone with it).
#[test]
fn a_created_contact_deleted_since_refuses_the_undo_unless_forced() {
    let dir = tempfile::tempdir().expect("tempdir");
    let dir = dir.path();
    base_store(dir);
    write(dir, "new.csv", "E-mail,Jméno\nnew1@x.cz,Nela\nnew2@x.cz,Norbert\n");
    let summary = import(dir, &["new.csv", "--name", "new"]);
    assert_eq!(summary["imported"], 2, "{summary}");
    let ids = query(
        &dir.join("kontakt.duckdb"),
        "SELECT id FROM contacts WHERE email = 'new2@x.cz'",
    );
    succeeds(dir, &["contacts", "delete", &ids[0][0]]);
    let before = export(dir);
    let err = fails(dir, &["imports", "undo", "new"], 2);
    assert!(
        err.contains("1 of the contacts") && err.contains("1 of them created by it and deleted since"),
        "{err}"
    );
    assert_eq!(export(dir), before);
    let forced = undo(dir, &["new", "--force"]);
    assert_eq!(
        (forced["created"].as_u64(), forced["changed_later"].as_u64()),
        (Some(1), Some(1)),
        "{forced}"
    );
    assert!(!export(dir).contains("new1@x.cz"));
}

/// A store from before undo records (schema 7), upgraded by the next
/// command that writes: an import of then that updated contacts cannot be
/// undone (nothing was kept), one that only created contacts can, and an
/// import made since is undone whole.
#[test]
fn imports_from_before_undo_records_and_after_the_upgrade() {
    let dir = tempfile::tempdir().expect("tempdir");
    let dir = dir.path();
    base_store(dir);
    write(dir, "new.csv", "E-mail,Jméno\nnew1@x.cz,Nela\n");
    import(dir, &["new.csv", "--name", "created-only"]);
    write(dir, "changes.csv", CHANGES);
    import(dir, &["changes.csv", "--name", "old-upsert"]);
    let db = dir.join("kontakt.duckdb");
    execute(
        &db,
        "DROP TABLE list_members; DROP TABLE lists; DROP SEQUENCE list_id_seq; DROP TABLE undo_records; \
         UPDATE kontakt_meta SET value = '7' WHERE key = 'schema_version'",
        "",
    );
    let err = fails(dir, &["imports", "undo", "old-upsert"], 2);
    assert!(err.contains("holds no record of their earlier values"), "{err}");
    assert_eq!(
        query(&db, "SELECT value FROM kontakt_meta WHERE key = 'schema_version'"),
        [["8"]]
    );
    let done = undo(dir, &["created-only"]);
    assert_eq!(
        (done["created"].as_u64(), done["restored"].as_u64()),
        (Some(1), Some(0)),
        "{done}"
    );
    let before = export(dir);
    write(dir, "later.csv", "E-mail,Město\nanna@x.cz,Ostrava\nbob@x.cz,Opava\n");
    import(dir, &["later.csv", "--name", "since"]);
    assert_ne!(export(dir), before);
    undo(dir, &["since"]);
    assert_eq!(export(dir), before);
}

#[test]
fn reverse_undos_return_the_store_to_its_first_state() {
    let dir = tempfile::tempdir().expect("tempdir");
    let dir = dir.path();
    base_store(dir);
    let original = export(dir);
    write(
        dir,
        "first.csv",
        "E-mail,Jméno,Město,Štítky\nanna@x.cz,Anička,Brno,a\nnew@x.cz,New,,\n",
    );
    write(
        dir,
        "later.csv",
        "E-mail,Město,Štítky\nanna@x.cz,Ostrava,b\nnew@x.cz,Kolín,\n",
    );
    import(dir, &["first.csv", "--name", "first"]);
    import(dir, &["later.csv", "--name", "later"]);
    // `later` changed a contact `first` created: refused for `first`.
    let err = fails(dir, &["imports", "undo", "first"], 2);
    assert!(err.contains("2 of the contacts"), "{err}");
    undo(dir, &["later"]);
    let done = undo(dir, &["first"]);
    assert_eq!(
        (done["created"].as_u64(), done["restored"].as_u64()),
        (Some(1), Some(1))
    );
    assert_eq!(export(dir), original);
}

#[test]
fn an_undone_merge_brings_back_the_merged_contacts_and_stale_audits_are_refused() {
    let dir = tempfile::tempdir().expect("tempdir");
    let dir = dir.path();
    crate::audit::store(dir);
    // Memberships: Anna (1) and Anna B (2, merged into 1) on list 1;
    // Anička (3, merged into 1) on list 2; Daniel (5, merged into 4) on
    // list 2 where Dan (4) is already.
    let members_before: [(i64, i64, &str); 5] = [
        (1, 1, "called"),
        (1, 2, "new"),
        (2, 3, "new"),
        (2, 4, "done"),
        (2, 5, "new"),
    ];
    let mut sql = "INSERT INTO lists (name, created_at) VALUES ('a', now()), ('b', now());".to_string();
    for (list, contact, status) in members_before {
        sql += &format!(
            "INSERT INTO list_members (list_id, contact_id, status, added_at) VALUES ({list}, {contact}, '{status}', now());"
        );
    }
    execute(&dir.join("kontakt.duckdb"), &sql, &sql);
    let before = export(dir);
    succeeds(dir, &["audit", "--out", "a1", "--key", "email,phone"]);
    let merged: Value = serde_json::from_slice(&succeeds(dir, &["merge", "--audit", "a1", "--json"])).expect("JSON");
    assert_eq!(merged["contacts_merged"], 3, "{merged}");
    assert_ne!(export(dir), before);
    let name = merged["name"].as_str().expect("name").to_string();
    // The merged contacts' list memberships went to their survivors.
    let members = || {
        query(
            &dir.join("kontakt.duckdb"),
            "SELECT list_id, contact_id, status FROM list_members ORDER BY 1, 2, 3",
        )
    };
    let strings = |rows: &[[&str; 3]]| -> Vec<Vec<String>> {
        rows.iter().map(|r| r.iter().map(|c| c.to_string()).collect()).collect()
    };
    assert_eq!(
        members(),
        strings(&[["1", "1", "called"], ["2", "1", "new"], ["2", "4", "done"]])
    );
    let done = undo(dir, &[&name]);
    assert_eq!(
        (done["kind"].as_str(), done["reinserted"].as_u64()),
        (Some("merge"), Some(3)),
        "{done}"
    );
    assert_eq!(done["restored"], 2, "the survivors");
    assert_eq!(export(dir), before, "every contact as before the merge");
    let kept = query(&dir.join("kontakt.duckdb"), "SELECT count(*) FROM merged_contacts");
    assert_eq!(kept, [["0"]]);
    assert_eq!(
        members(),
        strings(&[
            ["1", "1", "called"],
            ["1", "2", "new"],
            ["2", "3", "new"],
            ["2", "4", "done"],
            ["2", "5", "new"]
        ]),
        "every membership as before the merge"
    );
    assert!(records(dir).is_empty());

    // The audit's clusters were taken before the undo: merging them again
    // is refused; a new audit (even --since-last) sees every cluster again.
    let err = fails(dir, &["merge", "--audit", "a1"], 2);
    assert!(err.contains("undone after audit"), "{err}");
    succeeds(dir, &["audit", "--out", "a2", "--key", "email,phone", "--since-last"]);
    let clusters = std::fs::read_to_string(dir.join("a2/clusters.csv")).expect("clusters");
    let ids: std::collections::BTreeSet<&str> = clusters.lines().skip(1).filter_map(|l| l.split(',').nth(1)).collect();
    assert_eq!(
        ids.into_iter().collect::<Vec<_>>(),
        ["1", "2", "3", "4", "5"],
        "{clusters}"
    );
    let again: Value = serde_json::from_slice(&succeeds(dir, &["merge", "--audit", "a2", "--json"])).expect("JSON");
    assert_eq!(again["contacts_merged"], 3);
}

#[test]
fn an_undone_import_takes_back_the_list_memberships_it_added() {
    let dir = tempfile::tempdir().expect("tempdir");
    let dir = dir.path();
    base_store(dir);
    // Anna is on the campaign before; the import puts Anna (kept as she
    // was) and the contacts it creates or updates on it.
    succeeds(dir, &["lists", "create", "spring"]);
    write(dir, "ids.csv", "id,status\n1,called\n");
    succeeds(dir, &["lists", "add", "spring", "ids.csv", "--by", "id"]);
    let before = query(
        &dir.join("kontakt.duckdb"),
        "SELECT contact_id, status FROM list_members ORDER BY 1, 2",
    );
    assert_eq!(before, [["1", "called"]]);
    write(dir, "changes.csv", CHANGES);
    let summary = import(dir, &["changes.csv", "--name", "changes", "--list", "spring"]);
    assert_eq!(summary["imported"], 1);
    let members = query(
        &dir.join("kontakt.duckdb"),
        "SELECT contact_id, status, coalesce(CAST(import_id AS VARCHAR), '') FROM list_members ORDER BY 1, 2, 3",
    );
    assert_eq!(members, [["1", "called", ""], ["2", "new", "2"], ["7", "new", "2"]]);
    // A later `lists add` of the created contact to another list.
    succeeds(dir, &["lists", "create", "other"]);
    write(dir, "cecil.csv", "id\n7\n");
    succeeds(dir, &["lists", "add", "other", "cecil.csv", "--by", "id"]);
    let done = undo(dir, &["changes"]);
    assert_eq!(done["memberships"], 3, "{done}");
    let after = query(
        &dir.join("kontakt.duckdb"),
        "SELECT contact_id, status FROM list_members ORDER BY 1, 2",
    );
    assert_eq!(after, before, "only the membership from before stays");
}

#[test]
fn a_forced_undo_is_a_change_that_a_later_groups_undo_sees_and_an_undone_name_stays_taken() {
    let dir = tempfile::tempdir().expect("tempdir");
    let dir = dir.path();
    for (name, city) in [("a0", "Praha"), ("a1", "Wien"), ("a2", "Berlin")] {
        write(
            dir,
            &format!("{name}.csv"),
            format!("email,city\njan@example.cz,{city}\n"),
        );
        import(dir, &[&format!("{name}.csv"), "--name", name]);
    }
    let city = || query(&dir.join("kontakt.duckdb"), "SELECT city FROM contacts");
    // a2 changed Jan after a1: forced, a1's undo gives him a0's city.
    undo(dir, &["a1", "--force"]);
    assert_eq!(city(), [["Praha"]]);
    // The forced undo changed Jan after a2: a2's undo (which would bring
    // back a1's Wien) is refused.
    let err = fails(dir, &["imports", "undo", "a2"], 2);
    assert!(err.contains("1 of the contacts") && err.contains("ids 1)"), "{err}");
    assert_eq!(city(), [["Praha"]]);
    // An undone import keeps its name: a new import cannot take it.
    let err = fails(dir, &["import", "a1.csv", "--name", "a1"], 2);
    assert!(err.contains("already exists") && err.contains("undone"), "{err}");
    assert_eq!(group(dir, "a1")["status"], "undone");
}

/// A record keeps only the values an import changed, and says which of
/// them were empty (64 columns to a mask): an import of 70 custom fields,
/// of which it fills some that were empty, changes some and leaves the
/// rest, is undone exactly.
#[test]
fn an_undone_upsert_of_seventy_fields_gives_back_empty_and_changed_values() {
    let dir = tempfile::tempdir().expect("tempdir");
    let dir = dir.path();
    let header: Vec<String> = (0..70).map(|i| format!("f{i}")).collect();
    let row = |email: &str, value: &dyn Fn(usize) -> String| {
        let cells: Vec<String> = (0..70).map(value).collect();
        format!("{email},{}\n", cells.join(","))
    };
    let mut first = format!("email,{}\n", header.join(","));
    // Anna has every even field; Bob none.
    first += &row("anna@x.cz", &|i| {
        if i % 2 == 0 { format!("a{i}") } else { String::new() }
    });
    first += &row("bob@x.cz", &|_| String::new());
    write(dir, "first.csv", &first);
    import(dir, &["first.csv", "--unmapped", "custom", "--name", "first"]);
    let before = export(dir);
    // The second import fills fields 65-69 (the second mask) and 1,
    // changes 0 and 66, and leaves the rest.
    let mut second = format!("email,{}\n", header.join(","));
    let fill = |i: usize| match i {
        0 | 66 => format!("changed{i}"),
        1 | 65 | 67..=69 => format!("new{i}"),
        _ => String::new(),
    };
    second += &row("anna@x.cz", &fill);
    second += &row("bob@x.cz", &fill);
    write(dir, "second.csv", &second);
    let summary = import(dir, &["second.csv", "--unmapped", "custom", "--name", "second"]);
    assert_eq!(summary["updated"], 2, "{summary}");
    let changed = export(dir);
    assert_ne!(changed, before);
    assert!(changed.contains("new69"), "{changed}");
    undo(dir, &["second"]);
    assert_eq!(export(dir), before);
}

/// A custom field an undone import created stays when a later import put
/// a value of it in a contact the undo does not touch; and a field the
/// undo dropped can be created again by a later import, and goes with
/// that one's undo.
#[test]
fn a_custom_field_goes_with_its_import_unless_another_contact_holds_a_value() {
    let dir = tempfile::tempdir().expect("tempdir");
    let dir = dir.path();
    base_store(dir);
    write(dir, "shoe.csv", "E-mail,Shoe\nanna@x.cz,41\n");
    write(dir, "other.csv", "E-mail,Shoe\nbob@x.cz,44\n");
    let columns = |dir: &Path| -> String { export(dir).lines().next().expect("header").to_string() };
    import(dir, &["shoe.csv", "--unmapped", "custom", "--name", "shoe"]);
    import(dir, &["other.csv", "--unmapped", "custom", "--name", "other"]);
    // Bob's shoe size came from `other`: the column stays.
    let kept = undo(dir, &["shoe"]);
    assert!(kept.get("custom_fields").is_none(), "{kept}");
    assert!(columns(dir).ends_with(",custom.shoe"));
    // Once `other` is undone too, nothing holds a value, but `other` did
    // not create the field, so it stays. A field a new import creates goes
    // with that import's undo, and again when it is created once more.
    undo(dir, &["other"]);
    assert!(columns(dir).ends_with(",custom.shoe"));
    let before = export(dir);
    write(dir, "size.csv", "E-mail,Size\nanna@x.cz,M\n");
    import(dir, &["size.csv", "--unmapped", "custom", "--name", "size"]);
    assert!(columns(dir).ends_with(",custom.size"));
    let done = undo(dir, &["size"]);
    assert_eq!(done["custom_fields"], serde_json::json!(["size"]), "{done}");
    assert_eq!(export(dir), before);
    import(dir, &["size.csv", "--unmapped", "custom", "--name", "size-again"]);
    assert!(columns(dir).ends_with(",custom.size"));
    let again = undo(dir, &["size-again"]);
    assert_eq!(again["custom_fields"], serde_json::json!(["size"]), "{again}");
    assert_eq!(export(dir), before);
}

/// An undo takes away the tags the import added, not the whole list: a
/// forced undo keeps the tags a later import added, and a plain one gives
/// back the list as it was, in its order.
#[test]
fn an_undo_takes_away_the_tags_the_import_added_and_keeps_later_ones() {
    let dir = tempfile::tempdir().expect("tempdir");
    let dir = dir.path();
    base_store(dir);
    write(dir, "tagged.csv", "E-mail,Štítky\nanna@x.cz,zeta;alpha\n");
    write(dir, "later.csv", "E-mail\nanna@x.cz\n");
    let tags = |dir: &Path| {
        query(
            &dir.join("kontakt.duckdb"),
            "SELECT array_to_string(tags, ';') FROM contacts WHERE email = 'anna@x.cz'",
        )[0][0]
            .clone()
    };
    let original = tags(dir);
    import(dir, &["tagged.csv", "--tag", "upd", "--name", "tagged"]);
    let tagged = tags(dir);
    assert!(tagged.contains("zeta") && tagged.contains("upd"), "{tagged}");
    let before_later = export(dir);
    import(dir, &["later.csv", "--tag", "later", "--name", "later"]);
    assert_eq!(tags(dir), format!("{tagged};later"));
    // Undo in order: each gives back the list as it was.
    undo(dir, &["later"]);
    assert_eq!(export(dir), before_later);
    import(dir, &["later.csv", "--tag", "later", "--name", "later-again"]);
    let forced = undo(dir, &["tagged", "--force"]);
    assert_eq!(forced["changed_later"], 1, "{forced}");
    let expected = if original.is_empty() {
        "later".to_string()
    } else {
        format!("{original};later")
    };
    assert_eq!(tags(dir), expected);
}

/// Two contacts sharing a phone (`csv`, with a header), imported, audited
/// by phone and merged as group `m` with `merge_args`; the store's export
/// from before the merge.
fn merged_pair(dir: &Path, csv: &str, merge_args: &[&str]) -> String {
    write(dir, "pair.csv", csv);
    import(dir, &["pair.csv", "--primary-key", "email", "--name", "pair"]);
    let before = export(dir);
    succeeds(dir, &["audit", "--key", "phone", "--out", "audit"]);
    succeeds(
        dir,
        &[&["merge", "--audit", "audit", "--name", "m"], merge_args].concat(),
    );
    before
}

/// A forced undo of a merge gives the survivor back what the merge
/// changed and keeps what changed only later.
#[test]
fn a_forced_merge_undo_keeps_later_changes_to_fields_the_merge_left() {
    let dir = tempfile::tempdir().expect("tempdir");
    let dir = dir.path();
    merged_pair(
        dir,
        "email,phone,company,city\na@x.cz,+420777000009,Acme,\nb@x.cz,+420777000009,,Kolín\n",
        &[],
    );
    let row = |dir: &Path| {
        query(
            &dir.join("kontakt.duckdb"),
            "SELECT id, coalesce(company, ''), coalesce(city, '') FROM contacts ORDER BY id",
        )
    };
    assert_eq!(row(dir), [["1", "Acme", "Kolín"]], "the merge filled the city");
    write(dir, "later.csv", "email,company\na@x.cz,Firma X\n");
    import(dir, &["later.csv", "--name", "later"]);
    fails(dir, &["imports", "undo", "m"], 2);
    undo(dir, &["m", "--force"]);
    assert_eq!(row(dir), [["1", "Firma X", ""], ["2", "", "Kolín"]]);
}

/// Jan twice, by two e-mails and one phone.
const PAIR: &str = "email,phone,first_name\njan@x.cz,+420777000009,Jan\njan.work@x.cz,+420777000009,Honza\n";

/// An undo that would give a value of the store's `unique` field to a
/// second contact is refused, and changes nothing.
#[test]
fn an_undo_that_would_break_the_unique_setting_is_refused() {
    let dir = tempfile::tempdir().expect("tempdir");
    let dir = dir.path();
    merged_pair(dir, PAIR, &[]);
    succeeds(dir, &["config", "set", "unique", "email"]);
    // A new contact takes the e-mail the merge dropped.
    write(dir, "new.csv", "email,first_name\njan.work@x.cz,Other\n");
    let summary = import(dir, &["new.csv", "--name", "new"]);
    assert_eq!(summary["imported"], 1, "{summary}");
    let before = export(dir);
    for args in [&["--force"][..], &["--force", "--dry-run"]] {
        let err = fails(dir, &[&["imports", "undo", "m"], args].concat(), 2);
        assert!(
            err.contains("unique email") && err.contains("1 email value"),
            "{args:?}: {err}"
        );
        assert_eq!(export(dir), before);
    }
    // A dry run that passes the check changes nothing either.
    let dry = undo(dir, &["new", "--dry-run"]);
    assert_eq!(dry["created"], 1, "{dry}");
    assert_eq!(export(dir), before);
    assert_eq!(group(dir, "m")["status"], "completed");
    // Once the new contact is gone, the merge can be undone.
    undo(dir, &["new"]);
    undo(dir, &["m"]);
    assert_eq!(group(dir, "m")["status"], "undone");
}

/// A custom field a merge made for the values it dropped
/// (`--keep-dropped custom.NAME`) goes with the merge's undo, and the
/// store exports as before the merge.
#[test]
fn an_undone_merge_takes_its_keep_dropped_field_with_it() {
    let dir = tempfile::tempdir().expect("tempdir");
    let dir = dir.path();
    let before = merged_pair(dir, PAIR, &["--keep-dropped", "custom.dropped"]);
    assert!(export(dir).lines().next().expect("header").ends_with(",custom.dropped"));
    let done = undo(dir, &["m"]);
    assert_eq!(done["custom_fields"], serde_json::json!(["dropped"]), "{done}");
    assert_eq!(export(dir), before);
}

#[test]
fn a_forced_undo_keeps_an_opt_out_given_since() {
    let dir = tempfile::tempdir().expect("tempdir");
    let dir = dir.path();
    base_store(dir);
    let consent = |dir: &Path, email: &str| {
        query(
            &dir.join("kontakt.duckdb"),
            &format!("SELECT email_opt_in::VARCHAR FROM contacts WHERE email = '{email}'"),
        )[0][0]
            .clone()
    };
    let bob_before = consent(dir, "bob@x.cz");
    write(dir, "in.csv", "E-mail,Email opt-in\nanna@x.cz,yes\nbob@x.cz,yes\n");
    write(dir, "out.csv", "E-mail,Email opt-in\nanna@x.cz,no\n");
    write(dir, "city.csv", "E-mail,Město\nbob@x.cz,Zlín\n");
    import(dir, &["in.csv", "--name", "in"]);
    import(dir, &["out.csv", "--name", "out"]);
    import(dir, &["city.csv", "--name", "city"]);
    assert_eq!(consent(dir, "anna@x.cz"), "opt-out");
    assert_eq!(consent(dir, "bob@x.cz"), "opt-in");
    let forced = undo(dir, &["in", "--force"]);
    assert_eq!(forced["changed_later"], 2, "{forced}");
    // Anna opted out after the undone import: she stays opted out. Bob's
    // opt-in came from the undone import and goes.
    assert_eq!(consent(dir, "anna@x.cz"), "opt-out");
    assert_eq!(consent(dir, "bob@x.cz"), bob_before);
    assert_ne!(bob_before, "opt-in");
}

on_postgres_too!(
    an_undone_upsert_leaves_every_contact_as_it_was_before,
    an_import_that_changes_no_contact_keeps_nothing_for_undo,
    a_later_change_refuses_the_undo_unless_forced_and_undos_in_reverse_order_chain,
    a_created_contact_deleted_since_refuses_the_undo_unless_forced,
    reverse_undos_return_the_store_to_its_first_state,
    an_undone_merge_brings_back_the_merged_contacts_and_stale_audits_are_refused,
    an_undone_import_takes_back_the_list_memberships_it_added,
    a_forced_undo_is_a_change_that_a_later_groups_undo_sees_and_an_undone_name_stays_taken,
    an_undone_upsert_of_seventy_fields_gives_back_empty_and_changed_values,
    a_custom_field_goes_with_its_import_unless_another_contact_holds_a_value,
    an_undo_takes_away_the_tags_the_import_added_and_keeps_later_ones,
    a_forced_merge_undo_keeps_later_changes_to_fields_the_merge_left,
    an_undo_that_would_break_the_unique_setting_is_refused,
    an_undone_merge_takes_its_keep_dropped_field_with_it,
    a_forced_undo_keeps_an_opt_out_given_since,
);
