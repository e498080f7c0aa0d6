//! The dedup audit of a generated store: `kontakt audit --key email,phone`
//! (full), then `kontakt audit --since-last` after an import of 100k new
//! rows, against the same grouping as plain DuckDB SQL through the linked
//! library (the peer: GROUP BY each key, HAVING count(*) > 1, joined back to
//! the contacts and COPY'd to one CSV per key; no connected clusters, no
//! survivors, no state), in the same run, each run a process of its own
//! (wall time and peak memory by `/usr/bin/time`).
//!
//! Data: `kontakt gen --seed 42 --rows 100k --store-rows N` into
//! `bench-data/audit/` (ignored by git): the store file is imported once
//! with `--primary-key none` (its duplicates kept) into a template store,
//! copied before every run; the 100k-row file (people of the store among
//! new ones) is the import before `--since-last`.
//!
//!     cargo bench --bench audit
//!     KONTAKT_BENCH_STORE=1m KONTAKT_BENCH_RUNS=1 cargo bench --bench audit
//!
//! Results are printed and written to `bench-data/audit/results.md`.

use std::path::{Path, PathBuf};
use std::process::Command;
use std::time::Instant;

mod support;

use support::{audit_data, count, import_all, kontakt_bin, median, peer_args, timed, timed_peer};

fn dir() -> PathBuf {
    PathBuf::from(env!("CARGO_MANIFEST_DIR")).join("bench-data/audit")
}

/// The peer, in this process.
fn peer(db: &Path, out: &Path) {
    let conn = duckdb::Connection::open(db).expect("open store");
    let mut stages = Vec::new();
    for key in ["email", "phone"] {
        let started = Instant::now();
        conn.execute_batch(&format!(
            "COPY (SELECT c.id AS contact_id, '{key}' AS key, c.{key} AS value, c.created_at \
               FROM contacts AS c JOIN (SELECT {key} FROM contacts WHERE {key} IS NOT NULL \
                                        GROUP BY {key} HAVING count(*) > 1) AS g USING ({key})) \
             TO '{}' (HEADER)",
            out.join(format!("{key}.csv")).display()
        ))
        .unwrap_or_else(|e| panic!("{key}: {e}"));
        stages.push(format!("{key} {:.0} ms", started.elapsed().as_secs_f64() * 1000.0));
    }
    println!("{}", stages.join(", "));
}

fn main() {
    if let Some(args) = peer_args() {
        peer(&args[0], &args[1]);
        return;
    }
    let kontakt = kontakt_bin();
    let label = std::env::var("KONTAKT_BENCH_STORE").unwrap_or_else(|_| "10m".into());
    let store_rows = count(&label);
    let runs: usize = std::env::var("KONTAKT_BENCH_RUNS").map_or(3, |r| r.parse().expect("runs"));
    let dir = dir();
    std::fs::create_dir_all(&dir).expect("bench-data/audit");
    let (template, new_rows) = audit_data(&kontakt, &label, store_rows);
    let db = dir.join("run.duckdb");
    let fresh = || {
        let _ = std::fs::remove_file(dir.join("run.duckdb.wal"));
        std::fs::copy(&template, &db).expect("copy store");
        let _ = Command::new("sync").status();
    };
    let (mut peer_s, mut full_s, mut since_s) = (Vec::new(), Vec::new(), Vec::new());
    let (mut peer_mib, mut full_mib, mut since_mib) = (0f64, 0f64, 0f64);
    let (mut peer_detail, mut full_detail, mut since_detail) = (String::new(), String::new(), String::new());
    for _ in 0..runs {
        fresh();
        let (s, mib, stdout) = timed_peer(&[db.as_path()], &dir.join("out-peer"));
        peer_s.push(s);
        peer_mib = peer_mib.max(mib);
        peer_detail = stdout.trim().to_string();

        fresh();
        let audit = |out: &str, extra: &[&str]| {
            timed(
                Command::new(&kontakt)
                    .arg("--db")
                    .arg(&db)
                    .args(["audit", "--key", "email,phone", "--json", "--out"])
                    .arg(dir.join(out))
                    .args(extra),
            )
        };
        let (s, mib, stdout) = audit("out-full", &[]);
        full_s.push(s);
        full_mib = full_mib.max(mib);
        full_detail = stdout;
        import_all(&kontakt, &db, &new_rows, "new", &dir.join("out-new"));
        let (s, mib, stdout) = audit("out-since", &["--since-last"]);
        since_s.push(s);
        since_mib = since_mib.max(mib);
        since_detail = stdout;
    }
    let summary = |text: &str| -> serde_json::Value { serde_json::from_str(text).expect("audit --json") };
    let full = summary(&full_detail);
    let since = summary(&since_detail);
    let contacts = full["contacts"].as_f64().unwrap_or(0.0);
    let peer = median(&peer_s);
    let row = |job: &str, s: f64, mib: f64| {
        format!(
            "| {label} | {job} | {s:.2} | {:.0} | {mib:.0} | {:.2} |",
            contacts / s,
            s / peer
        )
    };
    let report = format!(
        "| store | job | wall s (median of {runs}) | contacts/s | peak MiB | vs peer |\n|---|---|---:|---:|---:|---:|\n{}\n{}\n{}\n\n\
         peer: {peer_detail}\n\
         full audit: {} contacts, {} clusters holding {} contacts, by_key {}; stages ms {}\n\
         --since-last after 100k new rows: {}; reported {} clusters; stages ms {}\n",
        row("DuckDB SQL peer (GROUP BY each key, COPY)", peer, peer_mib),
        row("kontakt audit (full)", median(&full_s), full_mib),
        row("kontakt audit --since-last (+100k rows)", median(&since_s), since_mib),
        full["contacts"],
        full["clusters"],
        full["contacts_in_clusters"],
        full["by_key"],
        full["stages_ms"],
        since["since_last"],
        since["reported_clusters"],
        since["stages_ms"],
    );
    println!("{report}");
    std::fs::write(dir.join("results.md"), &report).expect("results.md");
}
