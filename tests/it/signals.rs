//! Signals (SPEC, Exit codes and errors): Ctrl-C or SIGTERM at any moment
//! before the store's commit leaves the store as it was, exits 130 or 143
//! and records the group `cancelled`; a killed import's group is reported
//! `failed` ("interrupted") and its name is free again.
//!
//! The moments come from the import itself: with `KONTAKT_TEST_STAGES` it
//! says on stderr when each stage begins (`pause` then waits half a
//! second there, so the signal surely lands in that stage).

use std::io::{BufRead, BufReader};
use std::path::Path;
use std::process::{Child, Command, Stdio};
use std::time::{Duration, Instant};

use serde_json::Value;

use crate::common::{kontakt, succeeds};
use crate::import::import;

/// A store of 60k contacts and a 60k-row file that updates about half of
/// them and adds the rest (the import's every stage has work).
fn store_and_file(dir: &Path) {
    kontakt(dir)
        .args([
            "gen",
            "--rows",
            "60000",
            "--seed",
            "11",
            "--store-rows",
            "60000",
            "-o",
            "big.csv",
        ])
        .assert()
        .success();
    import(dir, &["big-store.csv", "--name", "base"]);
}

/// Everything a user can see of the store: every contact and group.
fn snapshot(dir: &Path) -> (Vec<u8>, Value) {
    succeeds(dir, &["contacts", "export", "-o", "snapshot.csv"]);
    let contacts = std::fs::read(dir.join("snapshot.csv")).expect("export");
    let groups: Value = serde_json::from_slice(&succeeds(dir, &["imports", "list", "--json"])).expect("json");
    (contacts, groups)
}

fn group(dir: &Path, name: &str) -> Value {
    serde_json::from_slice(&succeeds(dir, &["imports", "show", name, "--json"])).expect("json")
}

/// Starts kontakt with `args` in `dir` (stderr piped, stdout discarded),
/// the stage hook set to `hook`, and standard input piped.
fn spawn(dir: &Path, args: &[&str], hook: &str) -> Child {
    spawn_with(dir, args, hook, &[])
}

/// As [`spawn`], with `env` set too.
pub fn spawn_with(dir: &Path, args: &[&str], hook: &str, env: &[(&str, &str)]) -> Child {
    let mut cmd = Command::new(assert_cmd::cargo::cargo_bin("kontakt"));
    crate::common::with_store(&mut cmd)
        .current_dir(dir)
        .envs(env.iter().copied())
        .env("KONTAKT_TEST_STAGES", hook)
        .args(args)
        .stdin(Stdio::piped())
        .stdout(Stdio::null())
        .stderr(Stdio::piped())
        .spawn()
        .expect("spawn kontakt")
}

/// Starts the import of big.csv (an upsert matched by email, then phone)
/// as group `name`, with the stage hook set to `hook`.
fn start(dir: &Path, name: &str, hook: &str) -> Child {
    start_with(dir, name, hook, &[])
}

/// As [`start`], with `env` set too.
fn start_with(dir: &Path, name: &str, hook: &str, env: &[(&str, &str)]) -> Child {
    let args = [
        "import",
        "big.csv",
        "--progress",
        "never",
        "--secondary-key",
        "phone",
        "--name",
        name,
    ];
    spawn_with(dir, &args, hook, env)
}

/// Waits for the import to announce `stage`, then sends it `signal`;
/// returns the exit code and everything it wrote to stderr.
pub fn signal_at(child: Child, stage: &str, signal: i32) -> (Option<i32>, String) {
    signal_at_nth(child, stage, 1, signal)
}

/// As [`signal_at`], at the `nth` time the import announces `stage`.
pub fn signal_at_nth(mut child: Child, stage: &str, nth: usize, signal: i32) -> (Option<i32>, String) {
    let mut lines = BufReader::new(child.stderr.take().expect("stderr")).lines();
    let mut seen = String::new();
    until_stage(&mut lines, stage, nth, &mut seen);
    // SAFETY: kill(2) with the pid of our own child.
    assert_eq!(unsafe { libc::kill(child.id() as i32, signal) }, 0);
    for line in lines {
        seen.push_str(&line.expect("stderr line"));
        seen.push('\n');
    }
    let status = child.wait().expect("wait");
    (status.code(), seen)
}

/// Reads the import's stderr `lines` into `seen` until it announces
/// `stage` the `nth` time.
fn until_stage(lines: &mut std::io::Lines<impl BufRead>, stage: &str, nth: usize, seen: &mut String) {
    let marker = format!("kontakt: stage {stage}");
    let started = Instant::now();
    let mut seen_stage = 0;
    while seen_stage < nth {
        let line = lines
            .next()
            .unwrap_or_else(|| panic!("the import ended before stage {stage}: {seen}"))
            .expect("stderr line");
        seen.push_str(&line);
        seen.push('\n');
        seen_stage += usize::from(line == marker);
        assert!(started.elapsed() < Duration::from_secs(120), "no stage {stage}: {seen}");
    }
}

/// The import stopped by `signal` left the store as it was and its group
/// `cancelled`, with exit code `code`.
fn assert_cancelled(
    dir: &Path,
    name: &str,
    (code, stderr): (Option<i32>, String),
    expected: i32,
    before: &(Vec<u8>, Value),
) {
    assert_eq!(code, Some(expected), "{name}: {stderr}");
    assert!(!stderr.contains("panicked"), "{stderr}");
    let last = stderr.trim_end().lines().last().unwrap_or_default();
    assert!(
        last.contains("cancelled") && last.contains("rolled back"),
        "{name}: {stderr}"
    );
    assert_eq!(scratch(dir), 0, "{name}: staged updates left behind");
    let (contacts, groups) = snapshot(dir);
    assert!(contacts == before.0, "{name}: the contacts changed");
    let group = group(dir, name);
    assert_eq!(group["status"], "cancelled", "{name}: {group}");
    // The undo records it wrote as it went are gone.
    let records = crate::import::query(
        &dir.join("kontakt.duckdb"),
        &format!("SELECT count(*) FROM undo_records WHERE group_id = {}", group["id"]),
    );
    assert_eq!(records, [["0"]], "{name}: undo records left");
    // The groups from before are as they were; every later one (this
    // test's earlier runs) was cancelled.
    let before = before.1.as_array().expect("groups");
    let groups = groups.as_array().expect("groups");
    assert_eq!(&groups[..before.len()], &before[..]);
    for g in &groups[before.len()..] {
        assert_eq!(g["status"], "cancelled", "{g}");
    }
}

#[test]
fn ctrl_c_at_every_stage_of_an_upsert_leaves_the_store_as_it_was() {
    let dir = tempfile::tempdir().expect("tempdir");
    let dir = dir.path();
    store_and_file(dir);
    let before = snapshot(dir);
    // Each stage, with the signal sure to land in it; the staged update and
    // the key scan also without the pause, so that the signal interrupts
    // their statement while it runs.
    let runs = [
        ("build_index", "pause"),
        ("build_index", "1"),
        ("stream", "pause"),
        ("commit_flush", "pause"),
        ("commit_update", "pause"),
        ("commit_update", "1"),
        ("commit_record", "pause"),
        ("commit_record", "1"),
        ("commit", "pause"),
    ];
    for (i, (stage, hook)) in runs.into_iter().enumerate() {
        let name = format!("int-{i}-{stage}");
        let outcome = signal_at(start(dir, &name, hook), stage, libc::SIGINT);
        assert_cancelled(dir, &name, outcome, 130, &before);
    }
    // After all that, the same import runs to its end.
    let summary = import(dir, &["big.csv", "--secondary-key", "phone", "--name", "after"]);
    assert!(summary["updated"].as_u64().expect("updated") > 10_000, "{summary}");
    assert_eq!(group(dir, "after")["status"], "completed");
}

#[test]
fn ctrl_c_between_and_during_the_parts_of_a_large_update_leaves_the_store_as_it_was() {
    let dir = tempfile::tempdir().expect("tempdir");
    let dir = dir.path();
    store_and_file(dir);
    let before = snapshot(dir);
    // 2000 staged rows per part: the update of about 16k contacts is
    // applied in several parts; the signal comes after some of them were
    // applied, between two (pause) or while one runs.
    let parts = [("KONTAKT_TEST_UPDATE_PART_ROWS", "2000")];
    for (i, (nth, hook)) in [(3, "pause"), (2, "1"), (4, "1")].into_iter().enumerate() {
        let name = format!("part-{i}");
        let child = start_with(dir, &name, hook, &parts);
        let outcome = signal_at_nth(child, "commit_update_part", nth, libc::SIGINT);
        assert_cancelled(dir, &name, outcome, 130, &before);
    }
}

#[test]
fn sigterm_cancels_like_ctrl_c_with_exit_143() {
    let dir = tempfile::tempdir().expect("tempdir");
    let dir = dir.path();
    store_and_file(dir);
    let before = snapshot(dir);
    for stage in ["stream", "commit_update"] {
        let name = format!("term-{stage}");
        let outcome = signal_at(start(dir, &name, "pause"), stage, libc::SIGTERM);
        assert!(outcome.1.contains("SIGTERM"), "{}", outcome.1);
        assert_cancelled(dir, &name, outcome, 143, &before);
    }
    // A cancelled name is free again.
    import(dir, &["big.csv", "--name", "term-stream", "--mode", "add"]);
    assert_eq!(group(dir, "term-stream")["status"], "completed");
}

#[test]
fn a_killed_import_is_reported_interrupted_and_its_name_is_free() {
    let dir = tempfile::tempdir().expect("tempdir");
    let dir = dir.path();
    store_and_file(dir);
    let before = snapshot(dir);
    let (code, _) = signal_at(start(dir, "killed", "pause"), "commit_update", libc::SIGKILL);
    assert_eq!(code, None, "killed by a signal");
    // Its staged updates are left beside the store (on PostgreSQL, in a
    // table of the store's schema) until the store is next opened to be
    // written.
    assert_eq!(scratch(dir), 1, "the killed import's staged updates");

    // A command that only reads shows it as failed (no process holds the
    // store), and changes nothing.
    let shown = group(dir, "killed");
    assert_eq!(shown["status"], "failed", "{shown}");
    let reason = shown["reason"].as_str().expect("reason");
    assert!(reason.starts_with("interrupted"), "{reason}");
    assert!(reason.contains("pid "), "{reason}");
    assert_eq!(snapshot(dir).0, before.0, "the contacts changed");

    // The name is free: the same import runs again and completes.
    let summary = import(dir, &["big.csv", "--secondary-key", "phone", "--name", "killed"]);
    assert!(summary["updated"].as_u64().expect("updated") > 10_000, "{summary}");
    assert_eq!(group(dir, "killed")["status"], "completed");
    assert_eq!(scratch(dir), 0, "the stale staged updates were removed");
}

#[test]
fn a_cancelled_import_leaves_no_summary_of_an_earlier_run_beside_its_files() {
    let dir = tempfile::tempdir().expect("tempdir");
    let dir = dir.path();
    store_and_file(dir);
    // A completed run, taken back: its files stay in kontakt-out/again.
    import(dir, &["big.csv", "--secondary-key", "phone", "--name", "again"]);
    let summary = dir.join("kontakt-out/again/summary.json");
    assert!(summary.exists());
    succeeds(dir, &["imports", "delete", "again"]);
    let before = snapshot(dir);
    let outcome = signal_at(start(dir, "again", "pause"), "stream", libc::SIGINT);
    assert_cancelled(dir, "again", outcome, 130, &before);
    assert!(
        !summary.exists(),
        "the earlier run's summary.json beside the cancelled run's files"
    );
}

/// The scratch directories of staged updates beside the store (on
/// PostgreSQL, the tables of staged updates in the store's schema).
fn scratch(dir: &Path) -> usize {
    if let Some(url) = crate::common::store_url() {
        let (_, schema) = url.rsplit_once("schema=").expect("a test store names its schema");
        let tables = crate::import::query(
            dir,
            &format!(
                "SELECT count(*) FROM pg_tables WHERE schemaname = '{schema}' AND tablename LIKE 'kontakt\\_staged\\_%'"
            ),
        );
        return tables[0][0].parse().expect("count");
    }
    std::fs::read_dir(dir)
        .expect("dir")
        .filter(|e| {
            e.as_ref()
                .is_ok_and(|e| e.file_name().to_string_lossy().starts_with(".kontakt-updates-"))
        })
        .count()
}

#[test]
fn ctrl_c_ends_an_import_waiting_for_standard_input() {
    use std::io::Write;
    let dir = tempfile::tempdir().expect("tempdir");
    let dir = dir.path();
    let mut child = spawn(dir, &["import", "-", "--progress", "never"], "0");
    // A paste that has not ended: the pipe stays open.
    let mut stdin = child.stdin.take().expect("stdin");
    stdin
        .write_all(b"email\tfirst_name\nann@example.cz\tAnn\n")
        .expect("write");
    stdin.flush().expect("flush");
    std::thread::sleep(Duration::from_millis(500));
    // SAFETY: kill(2) with the pid of our own child.
    assert_eq!(unsafe { libc::kill(child.id() as i32, libc::SIGINT) }, 0);
    let started = Instant::now();
    while child.try_wait().expect("wait").is_none() {
        assert!(
            started.elapsed() < Duration::from_secs(10),
            "still waiting for standard input"
        );
        std::thread::sleep(Duration::from_millis(20));
    }
    let output = child.wait_with_output().expect("output");
    let stderr = String::from_utf8_lossy(&output.stderr);
    assert_eq!(output.status.code(), Some(130), "{stderr}");
    assert_eq!(stderr.trim_end().lines().count(), 1, "{stderr}");
    drop(stdin);
    // Nothing was started: no store, no outputs.
    assert!(std::fs::read_dir(dir).expect("dir").next().is_none(), "left files");
}

#[test]
fn a_merge_stopped_by_a_signal_is_rolled_back_and_cancelled() {
    let dir = tempfile::tempdir().expect("tempdir");
    let dir = dir.path();
    // Pairs of contacts sharing a phone: one cluster each.
    let mut csv = String::from("email,first_name,phone\n");
    for i in 0..400 {
        csv.push_str(&format!("p{i}@example.cz,P{i},+420777{:06}\n", i / 2));
    }
    crate::common::write(dir, "pairs.csv", csv);
    import(dir, &["pairs.csv", "--name", "pairs"]);
    succeeds(dir, &["audit", "--key", "phone", "--out", "audit"]);
    let before = snapshot(dir);
    for (i, (stage, signal, code)) in [("merge", libc::SIGTERM, 143), ("merge_commit", libc::SIGINT, 130)]
        .into_iter()
        .enumerate()
    {
        let name = format!("merge-{i}");
        let child = spawn(dir, &["merge", "--audit", "audit", "--name", &name], "pause");
        assert_cancelled(dir, &name, signal_at(child, stage, signal), code, &before);
    }
    // Then the merge runs to its end.
    succeeds(dir, &["merge", "--audit", "audit", "--name", "done"]);
    assert_eq!(group(dir, "done")["status"], "completed");
    assert_ne!(snapshot(dir).0, before.0);
}

#[test]
fn ctrl_c_during_an_undo_leaves_the_store_and_the_import_as_they_were() {
    let dir = tempfile::tempdir().expect("tempdir");
    let dir = dir.path();
    store_and_file(dir);
    import(dir, &["big.csv", "--secondary-key", "phone", "--name", "up"]);
    let before = snapshot(dir);
    // Before the undo's statements, while they run, and just before its
    // commit.
    for (stage, hook, signal, code) in [
        ("undo", "pause", libc::SIGINT, 130),
        ("undo", "1", libc::SIGTERM, 143),
        ("undo_commit", "pause", libc::SIGINT, 130),
    ] {
        let child = spawn(dir, &["imports", "undo", "up"], hook);
        let (status, stderr) = signal_at(child, stage, signal);
        assert_eq!(status, Some(code), "{stage}/{hook}: {stderr}");
        assert!(!stderr.contains("panicked"), "{stderr}");
        assert!(snapshot(dir) == before, "{stage}/{hook}: the store changed");
        assert_eq!(group(dir, "up")["status"], "completed");
    }
    succeeds(dir, &["imports", "undo", "up"]);
    assert_eq!(group(dir, "up")["status"], "undone");
}

/// Ctrl-C as a command that writes the store starts (before it opens the
/// store): exit 130 with the one error line, nothing changed, and any
/// group it began `cancelled`.
#[test]
fn ctrl_c_as_a_writing_command_starts_cancels_it() {
    let dir = tempfile::tempdir().expect("tempdir");
    let dir = dir.path();
    crate::import::base_store(dir);
    crate::common::write(dir, "ids.csv", "id\n1\n2\n");
    succeeds(dir, &["audit", "--key", "email", "--out", "audit"]);
    let before = snapshot(dir);
    let commands: [&[&str]; 4] = [
        &["import", "second.csv", "--name", "early"],
        &["lists", "add", "early", "ids.csv", "--by", "id", "--create"],
        &["imports", "undo", "1"],
        &["merge", "--audit", "audit", "--name", "early-merge"],
    ];
    for args in commands {
        let (code, stderr) = signal_at(spawn(dir, args, "pause"), "start", libc::SIGINT);
        assert_eq!(code, Some(130), "{args:?}: {stderr}");
        let last = stderr.trim_end().lines().last().unwrap_or_default();
        assert!(last.contains("cancelled"), "{args:?}: {stderr}");
        let (contacts, groups) = snapshot(dir);
        assert!(contacts == before.0, "{args:?}: the contacts changed");
        for g in &groups.as_array().expect("groups")[1..] {
            assert_eq!(g["status"], "cancelled", "{args:?}: {g}");
        }
    }
    let lists: Value = serde_json::from_slice(&succeeds(dir, &["lists", "list", "--json"])).expect("json");
    assert_eq!(lists, serde_json::json!([]));
}

/// PostgreSQL: the undo record's `INSERT … SELECT` runs on a connection of
/// its own beside the update; a Ctrl-C once the update is done stops it
/// too, instead of waiting for it. Here it waits behind a lock the test
/// holds on `undo_records` until the signal has had its chance.
#[test]
fn ctrl_c_stops_the_undo_record_beside_the_update_on_postgres() {
    crate::common::on_postgres(|| {
        let dir = tempfile::tempdir().expect("tempdir");
        let dir = dir.path();
        store_and_file(dir);
        let before = snapshot(dir);
        let mut child = start(dir, "held", "hold:commit_update");
        let mut lines = BufReader::new(child.stderr.take().expect("stderr")).lines();
        let mut seen = String::new();
        until_stage(&mut lines, "commit_update", 1, &mut seen);
        let url = crate::common::store_url().expect("a PostgreSQL store");
        let mut lock = crate::common::pg_client(&url);
        lock.batch_execute("BEGIN; LOCK TABLE undo_records IN SHARE MODE")
            .expect("lock");
        drop(child.stdin.take());
        // The import's own connection is done with its update (idle in its
        // transaction) and the record's statement waits for the lock.
        let mut watch = crate::common::pg_client(&url);
        let waiting = |watch: &mut postgres::Client| -> (i64, i64) {
            let row = watch
                .query_one(
                    "SELECT (SELECT count(*) FROM pg_locks l JOIN pg_stat_activity a USING (pid) \
                             WHERE NOT l.granted AND l.relation = 'undo_records'::regclass \
                             AND a.query LIKE 'INSERT INTO undo_records%'), \
                            (SELECT count(DISTINCT a.pid) FROM pg_locks l JOIN pg_stat_activity a USING (pid) \
                             WHERE l.granted AND l.relation = 'contacts'::regclass \
                             AND a.pid <> pg_backend_pid() AND a.state = 'idle in transaction' \
                             AND a.query LIKE 'UPDATE contacts%')",
                    &[],
                )
                .expect("pg_stat_activity");
            (row.get(0), row.get(1))
        };
        let started = Instant::now();
        while waiting(&mut watch) != (1, 1) {
            assert!(
                started.elapsed() < Duration::from_secs(60),
                "the record never waited: {seen}"
            );
            std::thread::sleep(Duration::from_millis(50));
        }
        // SAFETY: kill(2) with the pid of our own child.
        assert_eq!(unsafe { libc::kill(child.id() as i32, libc::SIGINT) }, 0);
        let signalled = Instant::now();
        while waiting(&mut watch).0 != 0 && signalled.elapsed() < Duration::from_secs(5) {
            std::thread::sleep(Duration::from_millis(50));
        }
        let still_waiting = waiting(&mut watch).0;
        lock.batch_execute("ROLLBACK").expect("unlock");
        for line in lines {
            seen.push_str(&line.expect("line"));
            seen.push('\n');
        }
        let code = child.wait().expect("wait").code();
        assert_eq!(still_waiting, 0, "the record's statement went on after Ctrl-C: {seen}");
        assert_cancelled(dir, "held", (code, seen), 130, &before);
    });
}

on_postgres_too!(
    ctrl_c_at_every_stage_of_an_upsert_leaves_the_store_as_it_was,
    sigterm_cancels_like_ctrl_c_with_exit_143,
    a_killed_import_is_reported_interrupted_and_its_name_is_free,
    a_cancelled_import_leaves_no_summary_of_an_earlier_run_beside_its_files,
    ctrl_c_ends_an_import_waiting_for_standard_input,
    ctrl_c_during_an_undo_leaves_the_store_and_the_import_as_they_were,
    ctrl_c_as_a_writing_command_starts_cancels_it,
);
