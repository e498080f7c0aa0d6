//! What only a PostgreSQL store does (SPEC, Store): several processes at
//! once (reads never wait; two imports never both create a contact for one
//! key, the second saying which import it waits for), its schema by URL,
//! and the commands not built on it yet saying so. The commands' own rules
//! run on both backends in their modules (`on_postgres::*`).

use std::io::{BufRead, BufReader};
use std::process::{Child, Command, Stdio};
use std::time::{Duration, Instant};

use crate::common::{fails, on_postgres, pg_client, store_url, succeeds, with_store, write};
use crate::import::{import, query};

/// `kontakt import` of `args` in `dir`, started on the test's store; with
/// `hold`, it waits inside its transaction, just before its commit, until
/// its standard input is closed.
fn spawn_import(dir: &std::path::Path, args: &[&str], hold: bool) -> Child {
    let mut cmd = Command::new(assert_cmd::cargo::cargo_bin("kontakt"));
    if hold {
        cmd.env("KONTAKT_TEST_STAGES", "hold:commit");
    }
    let stdin = if hold { Stdio::piped() } else { Stdio::null() };
    with_store(&mut cmd)
        .current_dir(dir)
        .args(["import", "--progress", "never"])
        .args(args)
        .stdin(stdin)
        .stdout(Stdio::null())
        .stderr(Stdio::piped())
        .spawn()
        .expect("spawn kontakt")
}

/// Reads the import's stderr until it holds before its commit.
fn wait_for_hold(child: &mut Child) -> std::io::Lines<BufReader<std::process::ChildStderr>> {
    let mut lines = BufReader::new(child.stderr.take().expect("stderr")).lines();
    let started = Instant::now();
    loop {
        let line = lines.next().expect("the import ended before its commit").expect("line");
        if line == "kontakt: stage commit" {
            return lines;
        }
        assert!(started.elapsed() < Duration::from_secs(60), "no commit stage");
    }
}

/// `n` contacts from number `from` on, with an e-mail and a name.
fn people(from: usize, n: usize) -> String {
    let mut text = String::from("Email,First name\n");
    for i in from..from + n {
        text.push_str(&format!("p{i}@x.cz,Name {i}\n"));
    }
    text
}

fn two_imports_started_together_create_each_contact_once() {
    let dir = tempfile::tempdir().expect("tempdir");
    let dir = dir.path();
    // Overlapping by 20k contacts.
    write(dir, "a.csv", people(0, 40_000));
    write(dir, "b.csv", people(20_000, 40_000));
    let a = spawn_import(dir, &["a.csv", "--name", "a"], false);
    let b = spawn_import(dir, &["b.csv", "--name", "b"], false);
    let (a, b) = (a.wait_with_output().expect("a"), b.wait_with_output().expect("b"));
    let (ea, eb) = (String::from_utf8_lossy(&a.stderr), String::from_utf8_lossy(&b.stderr));
    assert!(a.status.success() && b.status.success(), "{ea}\n{eb}");
    // Each of the 60k people once.
    let counts = query(
        &dir.join("kontakt.duckdb"),
        "SELECT count(*), count(DISTINCT email) FROM contacts",
    );
    assert_eq!(counts, [["60000", "60000"]]);
    let groups: serde_json::Value =
        serde_json::from_slice(&succeeds(dir, &["imports", "list", "--json"])).expect("json");
    let imported: u64 = groups
        .as_array()
        .expect("groups")
        .iter()
        .map(|g| g["imported"].as_u64().expect("imported"))
        .sum();
    assert_eq!(imported, 60_000, "{groups}");
    // The one that waited said for which import.
    let waited = [&ea, &eb].into_iter().find(|e| e.contains("waiting for")).cloned();
    if let Some(waited) = waited {
        assert!(waited.contains("waiting for import"), "{waited}");
    }
}

fn reads_answer_while_an_import_holds_its_transaction() {
    let dir = tempfile::tempdir().expect("tempdir");
    let dir = dir.path();
    write(dir, "base.csv", people(0, 100));
    import(dir, &["base.csv", "--name", "base"]);
    // With a custom field the import adds: its column is committed before
    // the import's transaction, which would otherwise lock readers out.
    let mut more = String::from("Email,Shoe,First name\n");
    for i in 50..20_050 {
        more.push_str(&format!("p{i}@x.cz,41,Name {i}\n"));
    }
    write(dir, "more.csv", more);
    let mut child = spawn_import(dir, &["more.csv", "--name", "more", "--unmapped", "custom"], true);
    let _lines = wait_for_hold(&mut child);
    let stdin = child.stdin.take().expect("stdin");
    // Reads answer at once (a read that waits is killed after 10 s, so
    // the test fails rather than hangs) and see the store as it was.
    let read = |args: &[&str]| -> Vec<u8> {
        let mut cmd = Command::new(assert_cmd::cargo::cargo_bin("kontakt"));
        let mut child = with_store(&mut cmd)
            .current_dir(dir)
            .args(args)
            .stdout(Stdio::piped())
            .stderr(Stdio::null())
            .spawn()
            .expect("spawn");
        let started = Instant::now();
        while child.try_wait().expect("wait").is_none() {
            if started.elapsed() > Duration::from_secs(10) {
                let _ = child.kill();
                panic!("{args:?} waited for the import");
            }
            std::thread::sleep(Duration::from_millis(20));
        }
        let output = child.wait_with_output().expect("output");
        assert!(output.status.success(), "{args:?}");
        output.stdout
    };
    let shown: serde_json::Value = serde_json::from_slice(&read(&["imports", "show", "more", "--json"])).expect("json");
    assert_eq!(shown["status"], "running", "{shown}");
    let listed = read(&["contacts", "list", "--limit", "0"]);
    let exported = read(&["contacts", "export", "-o", "during.csv"]);
    assert_eq!(
        String::from_utf8_lossy(&listed).lines().count(),
        101,
        "header and the 100"
    );
    drop(exported);
    assert_eq!(child.try_wait().expect("wait"), None, "the import still runs");
    drop(stdin);
    let output = child.wait_with_output().expect("wait");
    assert!(output.status.success(), "{}", String::from_utf8_lossy(&output.stderr));
    assert_eq!(
        query(&dir.join("kontakt.duckdb"), "SELECT count(*) FROM contacts"),
        [["20050"]]
    );
}

fn a_second_writer_waits_and_says_for_which_import() {
    let dir = tempfile::tempdir().expect("tempdir");
    let dir = dir.path();
    write(dir, "base.csv", people(0, 10));
    import(dir, &["base.csv", "--name", "base"]);
    write(dir, "first.csv", people(5, 100));
    let mut first = spawn_import(dir, &["first.csv", "--name", "first"], true);
    let _lines = wait_for_hold(&mut first);
    let stdin = first.stdin.take().expect("stdin");
    write(dir, "second.csv", people(90, 20));
    let mut second = spawn_import(dir, &["second.csv", "--name", "second"], false);
    let mut lines = BufReader::new(second.stderr.take().expect("stderr")).lines();
    let line = lines.next().expect("a line").expect("text");
    assert!(
        line.contains("waiting for import") && line.contains("\"first\""),
        "{line}"
    );
    // The first import then finishes, and the second goes on and matches
    // what the first created.
    drop(stdin);
    assert!(first.wait().expect("first").success());
    assert!(second.wait().expect("second").success());
    let second: serde_json::Value =
        serde_json::from_slice(&succeeds(dir, &["imports", "show", "second", "--json"])).expect("json");
    assert_eq!(
        (second["imported"].as_u64(), second["updated"].as_u64()),
        (Some(5), Some(15)),
        "{second}"
    );
}

fn a_schema_of_other_tables_is_refused_and_each_schema_is_a_store() {
    let dir = tempfile::tempdir().expect("tempdir");
    let dir = dir.path();
    let url = store_url().expect("a PostgreSQL store");
    let schema = url.rsplit("schema=").next().expect("schema").to_string();
    let mut client = pg_client(&url);
    client
        .batch_execute(&format!(
            "CREATE SCHEMA {schema}; CREATE TABLE {schema}.crm_things (x int)"
        ))
        .expect("a foreign schema");
    let err = fails(dir, &["contacts", "add", "email=a@x.cz"], 2);
    assert!(err.contains("not a kontakt store"), "{err}");
    // Nor does a store copy write into it.
    let file = dir.join("a.duckdb");
    let file = file.to_str().expect("utf-8 path");
    succeeds(dir, &["--db", file, "contacts", "add", "email=a@x.cz"]);
    let err = fails(dir, &["store", "copy", file, &url], 2);
    assert!(err.contains("not a kontakt store"), "{err}");
    // Another schema of the same database is a store of its own.
    let other = format!("{url}x");
    succeeds(dir, &["--db", &other, "contacts", "add", "email=a@x.cz"]);
}

fn postgresql_limits_are_one_line_errors_naming_the_cause() {
    let dir = tempfile::tempdir().expect("tempdir");
    let dir = dir.path();
    // A custom field whose column PostgreSQL would cut (63 bytes).
    let long = "x".repeat(60);
    write(dir, "long.csv", format!("email,{long}\na@x.cz,1\n"));
    let err = fails(
        dir,
        &["import", "long.csv", "--unmapped", "custom", "--progress", "never"],
        2,
    );
    assert!(err.contains("at most 56 bytes"), "{err}");
    // 56 bytes are kept whole.
    let fits = "y".repeat(56);
    write(dir, "fits.csv", format!("email,{fits}\na@x.cz,1\n"));
    import(dir, &["fits.csv", "--unmapped", "custom", "--name", "fits"]);
    let export = succeeds(dir, &["contacts", "export", "-o", "-"]);
    assert!(String::from_utf8_lossy(&export).contains(&format!("custom.{fits}")));
    // A statement the server cancels says why, not "db error".
    write(dir, "many.csv", people(0, 30_000));
    import(dir, &["many.csv", "--name", "many"]);
    let url = store_url().expect("a PostgreSQL store");
    let slow = format!("{url}&options=-c%20statement_timeout%3D1");
    let err = fails(dir, &["--db", &slow, "contacts", "export", "-o", "all.csv"], 1);
    assert!(err.contains("statement timeout"), "{err}");
    // A URL kontakt cannot use is a usage error.
    let err = fails(dir, &["--db", &format!("{url}-bad"), "contacts", "list"], 2);
    assert!(err.contains("schema name"), "{err}");
}

#[test]
fn postgresql_limits_are_one_line_errors() {
    on_postgres(postgresql_limits_are_one_line_errors_naming_the_cause);
}

#[test]
fn postgresql_two_imports_started_together_create_each_contact_once() {
    on_postgres(two_imports_started_together_create_each_contact_once);
}

#[test]
fn postgresql_reads_answer_while_an_import_holds_its_transaction() {
    on_postgres(reads_answer_while_an_import_holds_its_transaction);
}

#[test]
fn postgresql_a_second_writer_waits_and_says_for_which_import() {
    on_postgres(a_second_writer_waits_and_says_for_which_import);
}

#[test]
fn postgresql_a_schema_of_other_tables_is_refused_and_each_schema_is_a_store() {
    on_postgres(a_schema_of_other_tables_is_refused_and_each_schema_is_a_store);
}
