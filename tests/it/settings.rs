//! Store settings (`kontakt config`), the compliance acknowledgement,
//! `--set-on`, `--description` and the settings `imports show` lists,
//! through the binary (SPEC: Store settings, Mapping flags, Undo's
//! `imports show`).

use std::path::Path;

use serde_json::Value;

use crate::common::{fails, kontakt, succeeds, write};
use crate::import::query;

fn json(dir: &Path, args: &[&str]) -> Value {
    serde_json::from_slice(&succeeds(dir, args)).expect("JSON on stdout")
}

fn text(dir: &Path, args: &[&str]) -> String {
    String::from_utf8(succeeds(dir, args)).expect("utf-8")
}

/// `kontakt import … --json`, which must succeed; the summary.
fn import(dir: &Path, args: &[&str]) -> Value {
    json(dir, &[&["import", "--progress", "never", "--json"], args].concat())
}

fn contacts(dir: &Path, columns: &str) -> Vec<Vec<String>> {
    query(
        &dir.join("kontakt.duckdb"),
        &format!("SELECT {columns} FROM contacts ORDER BY id"),
    )
}

const PEOPLE: &str = "Email,Phone,First Name\nann@x.cz,777 111 222,Ann\nbob@x.cz,777 111 333,Bob\n";

#[test]
fn contacts_find_a_phone_by_the_store_default_country() {
    let dir = tempfile::tempdir().expect("tempdir");
    let dir = dir.path();
    succeeds(dir, &["config", "set", "default-country", "CZ"]);
    write(dir, "p.csv", PEOPLE);
    import(dir, &["p.csv", "--name", "p"]);
    let listed = String::from_utf8(succeeds(dir, &["contacts", "list", "--phone", "777 111 222"])).expect("utf-8");
    assert!(listed.contains("ann@x.cz") && !listed.contains("bob@x.cz"), "{listed}");
    let shown = String::from_utf8(succeeds(dir, &["contacts", "show", "777 111 333"])).expect("utf-8");
    assert!(shown.contains("bob@x.cz"), "{shown}");
    // A flag still wins: as a Slovak number it is another contact.
    let err = fails(dir, &["contacts", "show", "777 111 333", "--default-country", "SK"], 2);
    assert!(err.contains("777"), "{err}");
}

#[test]
fn a_stored_secondary_key_a_file_lacks_matches_by_the_primary_alone() {
    let dir = tempfile::tempdir().expect("tempdir");
    let dir = dir.path();
    succeeds(dir, &["config", "set", "secondary-key", "phone"]);
    write(dir, "p.csv", PEOPLE);
    import(dir, &["p.csv", "--name", "p"]);
    write(dir, "emails.csv", "Email,City\nann@x.cz,Brno\nnew@x.cz,Praha\n");
    let output = kontakt(dir)
        .args([
            "import",
            "emails.csv",
            "--name",
            "emails",
            "--progress",
            "never",
            "--json",
        ])
        .output()
        .expect("run");
    let stderr = String::from_utf8_lossy(&output.stderr);
    assert!(output.status.success(), "{stderr}");
    assert!(
        stderr.contains("secondary-key phone is not a column of this file"),
        "{stderr}"
    );
    let summary: Value = serde_json::from_slice(&output.stdout).expect("json");
    assert_eq!(
        (summary["updated"].as_u64(), summary["imported"].as_u64()),
        (Some(1), Some(1)),
        "{summary}"
    );
    // Asked for by a flag, the key must be there.
    let err = fails(
        dir,
        &["import", "emails.csv", "--name", "again", "--secondary-key", "phone"],
        2,
    );
    assert!(err.contains("--secondary-key phone"), "{err}");
}

#[test]
fn config_keeps_checked_values_and_reads_without_creating_a_store() {
    let dir = tempfile::tempdir().expect("tempdir");
    let dir = dir.path();
    // Reading a store that does not exist fails and creates nothing.
    let err = fails(dir, &["config", "list"], 1);
    assert!(err.contains("no store"), "{err}");
    fails(dir, &["config", "get", "primary-key"], 1);
    assert!(!dir.join("kontakt.duckdb").exists());

    // Usage errors name the key or value, before the store is touched.
    let err = fails(dir, &["config", "set", "primary", "email"], 2);
    assert!(
        err.contains("unknown key \"primary\"") && err.contains("primary-key"),
        "{err}"
    );
    let err = fails(dir, &["config", "set", "default-country", "XX"], 2);
    assert!(err.contains("\"XX\""), "{err}");
    fails(dir, &["config", "set", "compliance", "hipaa"], 2);
    fails(dir, &["config", "set", "secondary-key", "name"], 2);
    assert!(!dir.join("kontakt.duckdb").exists());

    assert_eq!(
        text(dir, &["config", "set", "default-country", "cz"]),
        "default-country = CZ\n"
    );
    succeeds(dir, &["config", "set", "consent-yes", "si, oui"]);
    assert_eq!(text(dir, &["config", "get", "default-country"]), "CZ\n");
    let err = fails(dir, &["config", "get", "compliance"], 1);
    assert!(err.contains("compliance is not set"), "{err}");
    let list = json(dir, &["config", "list", "--json"]);
    assert_eq!(list["default-country"], "CZ");
    assert_eq!(list["consent-yes"], "si,oui");
    assert_eq!(list["primary-key"], Value::Null);
    let shown = text(dir, &["config", "list"]);
    assert!(
        shown
            .lines()
            .any(|l| l.starts_with("consent-yes") && l.contains("si,oui")),
        "{shown}"
    );

    assert_eq!(text(dir, &["config", "unset", "consent-yes"]), "consent-yes unset\n");
    assert_eq!(
        text(dir, &["config", "unset", "consent-yes"]),
        "consent-yes was not set\n"
    );
    assert_eq!(json(dir, &["config", "list", "--json"])["consent-yes"], Value::Null);
}

#[test]
fn every_import_uses_the_store_settings_unless_a_flag_says_otherwise() {
    let dir = tempfile::tempdir().expect("tempdir");
    let dir = dir.path();
    write(dir, "people.csv", PEOPLE);
    // The default country makes local numbers E.164.
    succeeds(dir, &["config", "set", "default-country", "CZ"]);
    import(dir, &["people.csv"]);
    assert_eq!(
        contacts(dir, "phone"),
        [["+420777111222"], ["+420777111333"]],
        "the store's default country"
    );

    // Keyed by phone: a new email with a stored phone updates.
    succeeds(dir, &["config", "set", "primary-key", "phone"]);
    write(
        dir,
        "renamed.csv",
        "Email,Phone,First Name\nann@new.cz,777 111 222,Anna\n",
    );
    let summary = import(dir, &["renamed.csv"]);
    assert_eq!(
        (summary["one_match"].as_u64(), summary["imported"].as_u64()),
        (Some(1), Some(0))
    );
    assert_eq!(contacts(dir, "email, first_name")[0], ["ann@new.cz", "Anna"]);
    let group = json(dir, &["imports", "show", "renamed", "--json"]);
    assert_eq!(group["settings"]["primary_key"], "phone");
    assert_eq!(group["settings"]["default_country"], "CZ");

    // A flag says otherwise: keyed by email, the same row is new.
    write(
        dir,
        "again.csv",
        "Email,Phone,First Name\nann@other.cz,777 111 222,Ann\n",
    );
    let summary = import(dir, &["again.csv", "--primary-key", "email"]);
    assert_eq!(summary["imported"], 1);

    // The store's consent words add to the defaults; the flags add more.
    succeeds(dir, &["config", "set", "consent-yes", "si"]);
    write(dir, "consent.csv", "Email,Newsletter\ncyd@x.cz,si\ndan@x.cz,da\n");
    let summary = import(
        dir,
        &[
            "consent.csv",
            "--primary-key",
            "email",
            "--map",
            "Newsletter=email_opt_in",
        ],
    );
    assert_eq!(summary["rows_failed"], 1, "`da` is no consent word yet");
    write(dir, "consent2.csv", "Email,Newsletter\ndan@x.cz,da\n");
    let summary = import(
        dir,
        &[
            "consent2.csv",
            "--primary-key",
            "email",
            "--map",
            "Newsletter=email_opt_in",
            "--consent-yes",
            "da",
        ],
    );
    assert_eq!(summary["imported"], 1);
    let consents = query(
        &dir.join("kontakt.duckdb"),
        "SELECT email, CAST(email_opt_in AS VARCHAR) FROM contacts WHERE email IN ('cyd@x.cz', 'dan@x.cz') ORDER BY email",
    );
    assert_eq!(consents, [["cyd@x.cz", "opt-in"], ["dan@x.cz", "opt-in"]]);

    // A secondary key that is the store's primary key is refused.
    let err = fails(dir, &["config", "set", "secondary-key", "phone"], 2);
    assert!(err.contains("primary-key is phone too"), "{err}");
}

#[test]
fn a_store_that_asks_for_compliance_refuses_consents_not_acknowledged() {
    let dir = tempfile::tempdir().expect("tempdir");
    let dir = dir.path();
    write(dir, "people.csv", PEOPLE);
    write(dir, "consent.csv", "Email,SMS\nann@x.cz,yes\n");
    import(dir, &["people.csv", "--default-country", "CZ"]);
    succeeds(dir, &["config", "set", "compliance", "gdpr,tcpa"]);
    let before = contacts(dir, "*");
    let groups = json(dir, &["imports", "list", "--json"])
        .as_array()
        .expect("groups")
        .len();

    // A mapped consent, a --set one, a --set-on one: each must name both.
    for args in [
        &["consent.csv", "--map", "SMS=sms_opt_in"][..],
        &["consent.csv", "--map", "SMS=sms_opt_in", "--acknowledge", "gdpr"],
        &["people.csv", "--set", "email_opt_in=yes", "--acknowledge", "tcpa"],
        &["people.csv", "--set-on", "one_match:email_opt_out=yes"],
    ] {
        let err = fails(dir, &[&["import"], args].concat(), 2);
        assert!(err.contains("--acknowledge gdpr,tcpa"), "{args:?}: {err}");
    }
    let err = fails(dir, &["import", "people.csv", "--acknowledge", "gdpr,hipaa"], 2);
    assert!(err.contains("\"hipaa\""), "{err}");
    let err = fails(dir, &["contacts", "add", "email=eve@x.cz", "sms_opt_in=yes"], 2);
    assert!(err.contains("--acknowledge"), "{err}");
    // Refused before any row was read: no group, no contact changed.
    assert_eq!(contacts(dir, "*"), before);
    assert_eq!(
        json(dir, &["imports", "list", "--json"])
            .as_array()
            .expect("groups")
            .len(),
        groups
    );

    // Without consents nothing is asked.
    write(dir, "names.csv", "Email,First Name\nann@x.cz,Annie\n");
    assert!(
        import(dir, &["names.csv"])["acknowledged"]
            .as_array()
            .expect("list")
            .is_empty()
    );

    let summary = import(
        dir,
        &[
            "consent.csv",
            "--map",
            "SMS=sms_opt_in",
            "--acknowledge",
            "tcpa",
            "--acknowledge",
            "GDPR",
        ],
    );
    assert_eq!(summary["updated"], 1);
    assert_eq!(summary["acknowledged"], serde_json::json!(["tcpa", "gdpr"]));
    let group = json(dir, &["imports", "show", "consent", "--json"]);
    assert_eq!(group["acknowledged"], serde_json::json!(["tcpa", "gdpr"]));
    let shown = text(dir, &["imports", "show", "consent"]);
    assert!(
        shown
            .lines()
            .any(|l| l.starts_with("acknowledged") && l.ends_with("tcpa,gdpr")),
        "{shown}"
    );
    succeeds(
        dir,
        &[
            "contacts",
            "add",
            "email=eve@x.cz",
            "sms_opt_in=yes",
            "--acknowledge",
            "gdpr,tcpa",
        ],
    );
}

#[test]
fn set_on_gives_each_category_its_own_value_in_the_files_and_the_store() {
    let dir = tempfile::tempdir().expect("tempdir");
    let dir = dir.path();
    write(dir, "people.csv", PEOPLE);
    import(dir, &["people.csv", "--default-country", "CZ"]);
    succeeds(dir, &["contacts", "add", "email=twin@x.cz", "phone=+420777999000"]);
    succeeds(dir, &["contacts", "add", "email=twin2@x.cz", "phone=+420777999000"]);
    // ann: one match; cyd: no match; a shared phone: multiple match.
    write(
        dir,
        "wave.csv",
        "Email,Phone,First Name\nann@x.cz,,Anna\ncyd@x.cz,,Cyd\n,+420777999000,Twin\n",
    );
    let output = kontakt(dir)
        .args(["import", "wave.csv", "--secondary-key", "phone", "--progress", "never"])
        .args([
            "--set-on",
            "no_match:sms_opt_in=ano",
            "--set-on",
            "one_match:sms_opt_in=no",
        ])
        .args(["--set-on", "multiple_match:custom.wave=3", "--unmapped", "custom"])
        .args(["--on-multiple-match", "update-all"])
        .output()
        .expect("run");
    let stderr = String::from_utf8_lossy(&output.stderr);
    assert!(output.status.success(), "{stderr}");
    // Reago's warning: setting a value on matched rows overwrites it.
    assert!(
        stderr.contains("--set-on one_match:sms_opt_in=no overwrote"),
        "{stderr}"
    );

    let file = |name: &str| std::fs::read_to_string(dir.join("kontakt-out/wave").join(name)).expect("file");
    let no_match = file("no_match.csv");
    assert!(
        no_match.starts_with("row,action,email,phone,first_name,sms_opt_in,custom.wave,"),
        "{no_match}"
    );
    assert!(no_match.contains("cyd@x.cz,,Cyd,opt-in,,"), "{no_match}");
    assert!(
        file("one_match.csv").contains("ann@x.cz,,Anna,opt-out,,"),
        "{}",
        file("one_match.csv")
    );
    assert!(
        file("multiple_match.csv").contains(",+420777999000,Twin,,3,"),
        "{}",
        file("multiple_match.csv")
    );

    let stored = query(
        &dir.join("kontakt.duckdb"),
        "SELECT email, CAST(sms_opt_in AS VARCHAR), coalesce(\"custom.wave\", '') FROM contacts ORDER BY id",
    );
    assert_eq!(
        stored,
        [
            ["ann@x.cz", "opt-out", ""],
            ["bob@x.cz", "unknown", ""],
            ["twin@x.cz", "unknown", "3"],
            ["twin2@x.cz", "unknown", "3"],
            ["cyd@x.cz", "opt-in", ""],
        ]
    );
    let group = json(dir, &["imports", "show", "wave", "--json"]);
    assert_eq!(
        group["settings"]["set_on"],
        serde_json::json!([
            "no_match:sms_opt_in=ano",
            "one_match:sms_opt_in=no",
            "multiple_match:custom.wave=3"
        ])
    );

    // Refused as --set is: a mapped field, a key, a bad category or value.
    for (args, why) in [
        (
            &["--set-on", "one_match:first_name=X"][..],
            "already mapped from column \"First Name\"",
        ),
        (
            &["--set-on", "one_match:external_id=X", "--primary-key", "external_id"],
            "matching key",
        ),
        (&["--set-on", "matched:sms_opt_in=yes"], "\"matched\" is not no_match"),
        (
            &["--set-on", "one_match:sms_opt_in=perhaps"],
            "one_match:sms_opt_in=perhaps",
        ),
        (
            &[
                "--set-on",
                "one_match:sms_opt_in=yes",
                "--set-on",
                "one_match:sms_opt_in=no",
            ],
            "given twice",
        ),
        (
            &["--set-on", "one_match:sms_opt_in=yes", "--set", "sms_opt_in=no"],
            "already given by --set",
        ),
    ] {
        let err = fails(dir, &[&["import", "wave.csv", "--name", "refused"], args].concat(), 2);
        assert!(err.contains(why), "{args:?}: {err}");
    }
}

#[test]
fn description_and_settings_are_recorded_with_the_group() {
    let dir = tempfile::tempdir().expect("tempdir");
    let dir = dir.path();
    write(dir, "people.csv", PEOPLE);
    let summary = import(
        dir,
        &[
            "people.csv",
            "--description",
            "spring fair leads",
            "--tag",
            "fair",
            "--master",
            "existing",
            "--on-no-match",
            "skip",
            "--out",
            "out-here",
        ],
    );
    assert_eq!(summary["description"], "spring fair leads");
    let group = json(dir, &["imports", "show", "people", "--json"]);
    assert_eq!(group["description"], "spring fair leads");
    let settings = &group["settings"];
    assert_eq!(settings["source"], "people.csv");
    assert_eq!(settings["primary_key"], "email");
    assert_eq!(settings["on_no_match"], "skip");
    assert_eq!(settings["on_one_match"], "update");
    assert_eq!(settings["master"], "existing");
    assert_eq!(settings["tags"], serde_json::json!(["fair"]));
    assert_eq!(settings["out"], "out-here");
    let list = json(dir, &["imports", "list", "--json"]);
    assert_eq!(list[0]["description"], "spring fair leads");
    let shown = text(dir, &["imports", "show", "people"]);
    for line in [
        "description         spring fair leads",
        "on_no_match         skip",
        "master              existing",
        "output_directory    out-here",
    ] {
        assert!(shown.contains(line), "{line:?} in {shown}");
    }
    assert!(text(dir, &["imports", "list"]).contains("spring fair leads"));
    fails(dir, &["import", "people.csv", "--description", " ", "--name", "x"], 2);
    let err = fails(
        dir,
        &["import", "people.csv", "--description", "one\ntwo", "--name", "x"],
        2,
    );
    assert!(err.contains("one line"), "{err}");
}

#[test]
fn settings_and_flags_that_contradict_each_other_are_usage_errors() {
    let dir = tempfile::tempdir().expect("tempdir");
    let dir = dir.path();
    write(dir, "people.csv", PEOPLE);
    let err = fails(dir, &["import", "people.csv", "--set", "note=A", "--set", "note=B"], 2);
    assert!(err.contains("note is already set"), "{err}");
    let err = fails(
        dir,
        &["import", "people.csv", "--consent-yes", "foo", "--consent-no", "foo"],
        2,
    );
    assert!(
        err.contains("consent word \"foo\" is given as both yes and no"),
        "{err}"
    );
    assert!(!dir.join("kontakt.duckdb").exists(), "refused before the store is made");

    succeeds(dir, &["config", "set", "consent-no", "foo"]);
    let err = fails(dir, &["config", "set", "consent-yes", "bar,foo"], 2);
    assert!(err.contains("\"foo\" is in the store's consent-no"), "{err}");
    succeeds(dir, &["config", "set", "primary-key", "phone"]);
    succeeds(dir, &["config", "set", "secondary-key", "email"]);
    let err = fails(dir, &["config", "set", "primary-key", "email"], 2);
    assert!(err.contains("secondary-key is email too"), "{err}");
    // `--primary-key email` says otherwise than the stored secondary email.
    let summary = import(
        dir,
        &["people.csv", "--primary-key", "email", "--default-country", "CZ"],
    );
    assert_eq!(summary["imported"], 2);
    let group = json(dir, &["imports", "show", "people", "--json"]);
    assert_eq!(group["settings"]["secondary_key"], Value::Null);
}

#[test]
fn unique_with_stored_values_kept_lets_a_row_fill_other_fields() {
    let dir = tempfile::tempdir().expect("tempdir");
    let dir = dir.path();
    write(dir, "people.csv", PEOPLE);
    import(dir, &["people.csv", "--default-country", "CZ"]);
    succeeds(dir, &["config", "set", "unique", "phone"]);
    // Ann keeps her phone under `existing`: Bob's number gives her none.
    write(dir, "fill.csv", "Email,Phone,City\nann@x.cz,+420777111333,Brno\n");
    let summary = import(dir, &["fill.csv", "--master", "existing"]);
    assert_eq!(
        (summary["updated"].as_u64(), summary["rows_failed"].as_u64()),
        (Some(1), Some(0))
    );
    assert_eq!(contacts(dir, "phone, city")[0], ["+420777111222", "Brno"]);
    // Overwriting, it would: refused.
    write(dir, "take.csv", "Email,Phone\nann@x.cz,+420777111333\n");
    assert_eq!(import(dir, &["take.csv"])["failed_by_reason"]["not_unique"], 1);
}

#[test]
fn unique_refuses_a_value_another_contact_has_and_a_store_that_breaks_it() {
    let dir = tempfile::tempdir().expect("tempdir");
    let dir = dir.path();
    write(dir, "people.csv", PEOPLE);
    import(dir, &["people.csv", "--default-country", "CZ"]);
    succeeds(dir, &["contacts", "add", "email=twin@x.cz", "phone=+420777999000"]);
    succeeds(dir, &["contacts", "add", "email=twin2@x.cz", "phone=+420777999000"]);
    // Refused while two contacts share a phone; the store keeps no setting.
    let err = fails(dir, &["config", "set", "unique", "phone"], 1);
    assert!(
        err.contains("1 phone value is shared") && err.contains("audit --key phone"),
        "{err}"
    );
    assert_eq!(json(dir, &["config", "list", "--json"])["unique"], Value::Null);
    succeeds(dir, &["contacts", "delete", "4"]);
    succeeds(dir, &["config", "set", "unique", "phone"]);

    write(
        dir,
        "wave.csv",
        "Email,Phone\ndan@x.cz,+420777111222\neve@x.cz,+420777444444\nfay@x.cz,+420777444444\n\
         bob@x.cz,+420777111222\nann@x.cz,+420777111222\n",
    );
    let before = contacts(dir, "id, email, phone");
    let summary = import(dir, &["wave.csv"]);
    assert_eq!(summary["failed_by_reason"]["not_unique"], 3, "{summary}");
    assert_eq!(
        (summary["imported"].as_u64(), summary["updated"].as_u64()),
        (Some(1), Some(1))
    );
    let failed = std::fs::read_to_string(dir.join("kontakt-out/wave/failed.csv")).expect("failed.csv");
    let lines: Vec<&str> = failed.lines().collect();
    assert_eq!(lines.len(), 4, "{failed}");
    assert!(
        lines[1].starts_with("1,not_unique,") && lines[1].contains("belongs to contact 1"),
        "{failed}"
    );
    assert!(
        lines[2].starts_with("3,not_unique,") && lines[2].contains("row 2 creates"),
        "{failed}"
    );
    assert!(
        lines[3].starts_with("4,not_unique,") && lines[3].contains("belongs to contact 1"),
        "{failed}"
    );
    let after = contacts(dir, "id, email, phone");
    assert_eq!(after[..3], before[..], "bob keeps his phone");
    assert_eq!(after[3], ["5", "eve@x.cz", "+420777444444"]);

    write(dir, "emails.csv", "Email\nzed@x.cz\n");
    let err = fails(
        dir,
        &["import", "emails.csv", "--set-on", "no_match:phone=+420777555555"],
        2,
    );
    assert!(err.contains("`unique phone`"), "{err}");

    // `contacts add` checks it too; a contact keeps its own value.
    let err = fails(dir, &["contacts", "add", "email=gus@x.cz", "phone=+420777111222"], 2);
    assert!(err.contains("not_unique") && err.contains("contact 1"), "{err}");
    succeeds(
        dir,
        &[
            "contacts",
            "add",
            "email=ann@x.cz",
            "phone=+420777111222",
            "first_name=Ann",
        ],
    );
}

#[test]
fn contacts_add_and_audit_use_the_store_keys() {
    let dir = tempfile::tempdir().expect("tempdir");
    let dir = dir.path();
    write(dir, "people.csv", PEOPLE);
    import(dir, &["people.csv", "--default-country", "CZ"]);
    succeeds(dir, &["config", "set", "primary-key", "phone"]);
    succeeds(dir, &["config", "set", "secondary-key", "external_id"]);
    succeeds(dir, &["config", "set", "default-country", "CZ"]);
    // Keyed by phone (a local number, by the store's country): Ann's.
    assert_eq!(
        text(dir, &["contacts", "add", "phone=777 111 222", "email=ann@work.cz"]),
        "1 updated\n"
    );
    // No phone given: the secondary key, then a new contact.
    assert_eq!(
        text(dir, &["contacts", "add", "external_id=X1", "first_name=Cyd"]),
        "3 created\n"
    );
    assert_eq!(
        text(dir, &["contacts", "add", "external_id=X1", "last_name=Ray"]),
        "3 updated\n"
    );
    assert_eq!(
        contacts(dir, "id, email, coalesce(last_name, '')"),
        [["1", "ann@work.cz", ""], ["2", "bob@x.cz", ""], ["3", "", "Ray"]]
    );

    // Two contacts share an external id: the audit of the store's keys
    // (phone, external_id) finds them; --key says otherwise.
    write(dir, "twins.csv", "Email,Ext\nt1@x.cz,X2\nt2@x.cz,X2\n");
    let summary = import(
        dir,
        &[
            "twins.csv",
            "--primary-key",
            "email",
            "--secondary-key",
            "none",
            "--map",
            "Ext=external_id",
        ],
    );
    assert_eq!(summary["imported"], 2);
    let audit = json(dir, &["audit", "--json", "--out", "a1"]);
    assert_eq!(audit["clusters"], 1, "{audit}");
    assert_eq!(audit["by_key"]["external_id"], 1, "{audit}");
    let audit = json(dir, &["audit", "--json", "--key", "email", "--out", "a2"]);
    assert_eq!(audit["clusters"], 0, "{audit}");
}

on_postgres_too!(
    a_stored_secondary_key_a_file_lacks_matches_by_the_primary_alone,
    contacts_find_a_phone_by_the_store_default_country,
    config_keeps_checked_values_and_reads_without_creating_a_store,
    every_import_uses_the_store_settings_unless_a_flag_says_otherwise,
    a_store_that_asks_for_compliance_refuses_consents_not_acknowledged,
    set_on_gives_each_category_its_own_value_in_the_files_and_the_store,
    description_and_settings_are_recorded_with_the_group,
    settings_and_flags_that_contradict_each_other_are_usage_errors,
    unique_with_stored_values_kept_lets_a_row_fill_other_fields,
    unique_refuses_a_value_another_contact_has_and_a_store_that_breaks_it,
);
