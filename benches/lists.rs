//! End to end: `kontakt lists add … --by id` of a file of contact ids onto
//! a fresh list of a generated store, against the same job written as
//! plain DuckDB SQL through the linked library (the peer), alternately in
//! the same run, each run a process of its own on a fresh copy of the
//! store (wall time and peak memory by `/usr/bin/time`).
//!
//! The peer: `read_csv` the id file, semi-join `contacts`, `INSERT INTO
//! list_members` in one transaction. kontakt does more: every row is
//! checked (a whole positive number), written to added.csv or
//! not_found.csv with the row as read, and the list's existing members
//! are looked up (none here: a fresh list).
//!
//! Scenarios: ids in the file (a seeded sample of 1..1.05 x the store's
//! contacts, so ~5% are not found, in random order) onto a store of
//! `KONTAKT_BENCH_LISTS_STORE` contacts (default 10m). The store is the
//! import bench's of that size when it is there (`bench-data/e2e/`),
//! else made by `kontakt gen --seed 42` and an import; data in
//! `bench-data/lists/` (ignored by git).
//!
//!     cargo bench --bench lists
//!     KONTAKT_BENCH_SCENARIOS=1m KONTAKT_BENCH_RUNS=3 cargo bench --bench lists
//!
//! Results are printed and written to `bench-data/lists/results.md`.

use std::fmt::Write as _;
use std::path::{Path, PathBuf};
use std::process::Command;

use rand::SeedableRng;
use rand::seq::SliceRandom;

mod support;

use support::{build_template, count, kontakt_bin, peer_args, run, timed, timed_peer, write_results};

fn root() -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR")).join("bench-data")
}

fn dir() -> PathBuf {
    root().join("lists")
}

/// The store template of `contacts` contacts (ids 1 to `contacts`),
/// brought to the current schema once.
fn template(kontakt: &Path, contacts: u64) -> PathBuf {
    std::fs::create_dir_all(dir()).expect("bench-data/lists");
    let template = dir().join(format!("store-{contacts}.duckdb"));
    if !template.exists() {
        let e2e = root().join(format!("e2e/store-10000000-{contacts}.duckdb"));
        if e2e.exists() {
            std::fs::copy(&e2e, &template).expect("copy the import bench's store");
        } else {
            let file = dir().join("contacts.csv");
            eprintln!("generating {contacts} contacts ...");
            run(Command::new(kontakt)
                .args([
                    "gen",
                    "--seed",
                    "42",
                    "--rows",
                    "1000",
                    "--store-rows",
                    &contacts.to_string(),
                    "-o",
                ])
                .arg(&file));
            build_template(
                kontakt,
                &dir().join("contacts-store.csv"),
                &template,
                &dir().join("out-store"),
            );
        }
    }
    // A write brings an older store to the current schema (lists), once
    // here and not in every timed run.
    for args in [
        ["lists", "create", "bench-migrate"],
        ["lists", "delete", "bench-migrate"],
    ] {
        run(Command::new(kontakt).arg("--db").arg(&template).args(args));
    }
    template
}

/// A file of `rows` contact ids (header `id`), drawn without repeats from
/// 1..=1.05 x `contacts` in a seeded random order.
fn id_file(rows: u64, contacts: u64) -> PathBuf {
    let path = dir().join(format!("ids-{rows}-{contacts}.csv"));
    if path.exists() {
        return path;
    }
    let mut ids: Vec<u64> = (1..=contacts + contacts / 20).collect();
    ids.shuffle(&mut rand_chacha::ChaCha8Rng::seed_from_u64(42));
    ids.truncate(rows as usize);
    let mut text = String::with_capacity(ids.len() * 9 + 3);
    text.push_str("id\n");
    for id in ids {
        let _ = writeln!(text, "{id}");
    }
    std::fs::write(&path, text).expect("write the id file");
    path
}

/// A fresh copy of the store for one run.
fn fresh_store(template: &Path) -> PathBuf {
    let db = dir().join("run.duckdb");
    let _ = std::fs::remove_file(dir().join("run.duckdb.wal"));
    std::fs::copy(template, &db).expect("copy store");
    let _ = Command::new("sync").status();
    db
}

/// A job's runs, and the members its last run added.
#[derive(Default, Clone)]
struct Result {
    runs: support::Runs,
    added: u64,
}

fn kontakt_run(kontakt: &Path, template: &Path, ids: &Path, rows: u64, result: &mut Result) {
    let db = fresh_store(template);
    let out = dir().join("out-kontakt");
    let _ = std::fs::remove_dir_all(&out);
    let (seconds, peak, _) = timed(
        Command::new(kontakt)
            .arg("--db")
            .arg(&db)
            .args(["lists", "add", "bench", "--by", "id", "--create", "--out"])
            .arg(&out)
            .arg(ids),
    );
    let summary = support::summary(&out);
    let added = summary["added"].as_u64().expect("added");
    assert_eq!(
        added + summary["not_found"].as_u64().expect("not_found"),
        rows,
        "{summary}"
    );
    assert_eq!(summary["members"].as_u64(), Some(added));
    result.runs.seconds.push(seconds);
    result.runs.peak_mib = result.runs.peak_mib.max(peak);
    result.added = added;
    result.runs.detail = format!(
        "added {added}, not found {}, peak MiB {}",
        summary["not_found"], summary["peak_memory_mib"]
    );
}

fn peer_run(template: &Path, ids: &Path, result: &mut Result) {
    let db = fresh_store(template);
    let (seconds, peak, stdout) = timed_peer(&[db.as_path(), ids], &dir().join("out-peer"));
    result.runs.seconds.push(seconds);
    result.runs.peak_mib = result.runs.peak_mib.max(peak);
    result.added = stdout.trim().parse().expect("the peer prints its count");
    result.runs.detail = format!("added {}", result.added);
}

/// The peer job, in this process: plain DuckDB SQL.
fn peer(db: &Path, ids: &Path) {
    let conn = duckdb::Connection::open(db).expect("open store");
    conn.execute_batch(&format!(
        "BEGIN; \
         INSERT INTO lists (name, created_at) VALUES ('bench', now()::TIMESTAMP); \
         INSERT INTO list_members (list_id, contact_id, status, added_at) \
           SELECT (SELECT id FROM lists WHERE name = 'bench'), f.id, 'new', now()::TIMESTAMP \
           FROM read_csv('{}', header = true, columns = {{'id': 'BIGINT'}}) AS f \
           SEMI JOIN contacts AS c ON c.id = f.id; \
         COMMIT;",
        ids.display()
    ))
    .expect("peer job");
    let added: i64 = conn
        .query_row("SELECT count(*) FROM list_members", [], |r| r.get(0))
        .expect("count");
    println!("{added}");
}

fn main() {
    if let Some(args) = peer_args() {
        peer(&args[0], &args[1]);
        return;
    }
    let kontakt = kontakt_bin();
    let contacts = count(&std::env::var("KONTAKT_BENCH_LISTS_STORE").unwrap_or_else(|_| "10m".into()));
    let scenarios: Vec<(u64, String)> = std::env::var("KONTAKT_BENCH_SCENARIOS")
        .unwrap_or_else(|_| "1m,10m".into())
        .split(',')
        .map(|s| (count(s), s.to_string()))
        .collect();
    let runs_env: Option<usize> = std::env::var("KONTAKT_BENCH_RUNS").ok().and_then(|r| r.parse().ok());
    let template = template(&kontakt, contacts);
    let store_label = std::env::var("KONTAKT_BENCH_LISTS_STORE").unwrap_or_else(|_| "10m".into());

    let mut report = String::new();
    let _ = writeln!(
        report,
        "| ids x store | job | runs | wall s (median) | rows/s | peak MiB | vs peer |\n|---|---|---:|---:|---:|---:|---:|"
    );
    let mut details = String::new();
    for (rows, label) in &scenarios {
        let ids = id_file(*rows, contacts);
        let runs = runs_env.unwrap_or(3).max(1);
        let mut results: [Result; 2] = Default::default();
        for _ in 0..runs {
            peer_run(&template, &ids, &mut results[0]);
            kontakt_run(&kontakt, &template, &ids, *rows, &mut results[1]);
        }
        assert_eq!(
            results[0].added, results[1].added,
            "kontakt and the peer add the same members"
        );
        let peer_seconds = results[0].runs.median();
        for (job, result) in ["DuckDB SQL peer", "kontakt lists add --by id"].iter().zip(&results) {
            let label = format!("{label} x {store_label}");
            result
                .runs
                .report(&label, job, *rows, peer_seconds, &mut report, &mut details);
        }
    }
    write_results(
        &dir().join("results.md"),
        &report,
        &details,
        "each run a fresh process and a fresh copy of the store, kontakt and the peer alternating; vs peer = wall time / peer's (lower is better).",
    );
}
