//! End to end: `kontakt import` of a generated file into a generated store,
//! against the same job written as plain DuckDB SQL through the linked
//! library (the peer), in the same run, each run a process of its own
//! (wall time and peak memory by `/usr/bin/time`).
//!
//! The peer: read_csv, lower/trim email, digits-only phone, join on email,
//! then on phone for rows without an email match, count matches per row,
//! COPY each category to CSV, INSERT the no-match rows. kontakt does more
//! (validation, phone normalization to E.164, in-file duplicates, failed
//! rows), and is compared like with like: `--on-one-match skip` (inserts
//! only) against that peer, and kontakt's default upsert against the upsert
//! peer: the same SQL plus one `UPDATE contacts … FROM` of the one-match
//! rows in the same transaction (file values overwrite, tags appended).
//!
//! Scenarios (import rows x store contacts): 1M x 1M, 10M x 10M, 1M x 10M.
//! Data from `kontakt gen --seed 42` into `bench-data/e2e/` (ignored by
//! git); each store is built once by kontakt and copied before every run.
//!
//!     cargo bench --bench import
//!     KONTAKT_BENCH_SCENARIOS=1m:1m KONTAKT_BENCH_RUNS=3 cargo bench --bench import
//!
//! With `KONTAKT_BENCH_UNDO=1` it measures undo instead: the default
//! upsert against the same upsert keeping no undo record
//! (`KONTAKT_TEST_NO_UNDO=1`), alternately, and `imports undo` of each
//! recorded upsert (vs peer: against the upsert without a record).
//!
//! Results are printed and written to `bench-data/e2e/results.md`.

use std::fmt::Write as _;
use std::path::{Path, PathBuf};
use std::process::Command;
use std::time::Instant;

mod support;

use support::{build_template, count, kontakt_bin, peer_args, run, timed, timed_peer, write_results};

struct Scenario {
    rows: u64,
    store: u64,
    label: String,
}

impl Scenario {
    fn dir() -> PathBuf {
        Path::new(env!("CARGO_MANIFEST_DIR")).join("bench-data/e2e")
    }
    fn input(&self) -> PathBuf {
        Self::dir().join(format!("in-{}-{}.csv", self.rows, self.store))
    }
    fn store_file(&self) -> PathBuf {
        Self::dir().join(format!("in-{}-{}-store.csv", self.rows, self.store))
    }
    fn template(&self) -> PathBuf {
        Self::dir().join(format!("store-{}-{}.duckdb", self.rows, self.store))
    }

    /// Generates the files and builds the store once.
    fn prepare(&self, kontakt: &Path) {
        std::fs::create_dir_all(Self::dir()).expect("bench-data/e2e");
        if !self.input().exists() || !self.store_file().exists() {
            eprintln!("generating {} ...", self.input().display());
            run(Command::new(kontakt)
                .args(["gen", "--seed", "42", "--rows", &self.rows.to_string()])
                .args(["--store-rows", &self.store.to_string(), "-o"])
                .arg(self.input()));
        }
        build_template(
            kontakt,
            &self.store_file(),
            &self.template(),
            &Self::dir().join("out-store"),
        );
    }

    /// A fresh copy of the store for one run.
    fn fresh_store(&self) -> PathBuf {
        let db = Self::dir().join("run.duckdb");
        let _ = std::fs::remove_file(Self::dir().join("run.duckdb.wal"));
        std::fs::copy(self.template(), &db).expect("copy store");
        // Let the copy reach the disk before the clock starts.
        let _ = Command::new("sync").status();
        db
    }
}

type Result = support::Runs;

fn kontakt_run(kontakt: &Path, scenario: &Scenario, extra: &[&str], result: &mut Result) {
    kontakt_run_env(kontakt, scenario, extra, &[], result);
}

/// As [`kontakt_run`], with `env` set for kontakt; the store it leaves is
/// `run.duckdb` until the next run.
fn kontakt_run_env(kontakt: &Path, scenario: &Scenario, extra: &[&str], env: &[(&str, &str)], result: &mut Result) {
    let db = scenario.fresh_store();
    let out = Scenario::dir().join("out-kontakt");
    let _ = std::fs::remove_dir_all(&out);
    let (seconds, peak, _) = timed(
        Command::new(kontakt)
            .envs(env.iter().copied())
            .arg("--db")
            .arg(&db)
            .args([
                "import",
                "--secondary-key",
                "phone",
                "--progress",
                "never",
                "--name",
                "bench",
                "--out",
            ])
            .arg(&out)
            .arg(scenario.input())
            .args(extra),
    );
    result.seconds.push(seconds);
    result.peak_mib = result.peak_mib.max(peak);
    result.detail = support::import_detail(&out);
}

/// `kontakt imports undo bench` of the store the last run left.
fn undo_run(kontakt: &Path, result: &mut Result) {
    let db = Scenario::dir().join("run.duckdb");
    let (seconds, peak, stdout) = timed(
        Command::new(kontakt)
            .arg("--db")
            .arg(&db)
            .args(["imports", "undo", "bench", "--json"]),
    );
    result.seconds.push(seconds);
    result.peak_mib = result.peak_mib.max(peak);
    let undone: serde_json::Value = serde_json::from_str(&stdout).expect("undo --json");
    result.detail = format!(
        "created contacts deleted {}, changed contacts restored {}",
        undone["created"], undone["restored"]
    );
}

/// With `KONTAKT_BENCH_UNDO=1`: the default upsert with its undo record
/// against the same upsert without one (`KONTAKT_TEST_NO_UNDO=1`),
/// alternately, and the undo of each recorded upsert.
fn undo_jobs(kontakt: &Path, scenario: &Scenario, runs: usize) -> Vec<(&'static str, Result)> {
    let mut results: [Result; 3] = Default::default();
    for _ in 0..runs {
        kontakt_run_env(
            kontakt,
            scenario,
            &[],
            &[("KONTAKT_TEST_NO_UNDO", "1")],
            &mut results[0],
        );
        kontakt_run(kontakt, scenario, &[], &mut results[1]);
        undo_run(kontakt, &mut results[2]);
    }
    let [plain, recorded, undo] = results;
    vec![
        ("kontakt upsert, no undo record (peer)", plain),
        ("kontakt upsert", recorded),
        ("kontakt imports undo of that upsert", undo),
    ]
}

fn peer_run(scenario: &Scenario, upsert: bool, result: &mut Result) {
    let db = scenario.fresh_store();
    let mode = Path::new(if upsert { "upsert" } else { "insert" });
    let (seconds, peak, stdout) = timed_peer(
        &[mode, db.as_path(), scenario.input().as_path()],
        &Scenario::dir().join("out-peer"),
    );
    result.seconds.push(seconds);
    result.peak_mib = result.peak_mib.max(peak);
    result.detail = stdout.trim().to_string();
}

/// The peer job, in this process: plain DuckDB SQL (with `upsert`, the
/// one-match rows also update their contacts).
fn peer(upsert: bool, db: &Path, input: &Path, out: &Path) {
    let conn = duckdb::Connection::open(db).expect("open store");
    let mut stages = Vec::new();
    let mut stage = |name: &str, sql: &str| {
        let started = Instant::now();
        conn.execute_batch(sql).unwrap_or_else(|e| panic!("{name}: {e}"));
        stages.push(format!("{name} {:.0}", started.elapsed().as_secs_f64() * 1000.0));
    };
    stage(
        "read+normalize",
        &format!(
            "CREATE TEMP TABLE f AS SELECT row_number() OVER () AS \"row\", *, \
               lower(trim(\"E-mail\")) AS k_email, regexp_replace(\"Phone\", '[^0-9]', '', 'g') AS k_phone \
             FROM read_csv('{}', header = true, all_varchar = true)",
            input.display()
        ),
    );
    stage(
        "match",
        "CREATE TEMP TABLE em AS SELECT f.\"row\", c.id FROM f JOIN contacts c ON c.email = f.k_email \
           WHERE c.type = 'person'; \
         CREATE TEMP TABLE pm AS SELECT f.\"row\", c.id FROM f \
           JOIN (SELECT id, regexp_replace(phone, '[^0-9]', '', 'g') AS p FROM contacts \
                 WHERE phone IS NOT NULL AND type = 'person') c ON c.p = f.k_phone \
           WHERE f.k_phone <> '' AND f.\"row\" NOT IN (SELECT \"row\" FROM em); \
         CREATE TEMP TABLE m AS SELECT \"row\", count(*) AS n, string_agg(CAST(id AS VARCHAR), ';') AS matched_ids \
           FROM (SELECT * FROM em UNION ALL SELECT * FROM pm) GROUP BY \"row\";",
    );
    let o = |name: &str| out.join(name).display().to_string();
    stage(
        "write",
        &format!(
            "COPY (SELECT f.* EXCLUDE (k_email, k_phone) FROM f ANTI JOIN m USING (\"row\")) TO '{}' (HEADER); \
             COPY (SELECT f.* EXCLUDE (k_email, k_phone), m.matched_ids FROM f JOIN m USING (\"row\") WHERE m.n = 1) TO '{}' (HEADER); \
             COPY (SELECT f.* EXCLUDE (k_email, k_phone), m.matched_ids FROM f JOIN m USING (\"row\") WHERE m.n > 1) TO '{}' (HEADER);",
            o("no_match.csv"),
            o("one_match.csv"),
            o("multiple_match.csv")
        ),
    );
    let insert = format!(
        "BEGIN; \
         INSERT INTO contacts (id, type, created_at, updated_at, external_id, first_name, last_name, email, phone, \
                               mobile, company, street, city, postal_code, country, note) \
           SELECT (SELECT CAST(value AS BIGINT) FROM kontakt_meta WHERE key = 'next_contact_id') \
                    + row_number() OVER () - 1, 'person', now()::TIMESTAMP, now()::TIMESTAMP, \"ID\", \
                  \"First name\", \"Last name\", k_email, k_phone, regexp_replace(\"Mobile\", '[^0-9]', '', 'g'), \
                  \"Company\", \"Street\", \"City\", \"Postal code\", \"Country\", \"Note\" \
           FROM f ANTI JOIN m USING (\"row\"); {} \
         COMMIT;",
        if upsert { UPSERT_PEER } else { "" }
    );
    stage("insert", &insert);
    let counts: (i64, i64, i64) = conn
        .query_row(
            "SELECT (SELECT count(*) FROM f ANTI JOIN m USING (\"row\")), \
                    (SELECT count(*) FROM m WHERE n = 1), (SELECT count(*) FROM m WHERE n > 1)",
            [],
            |r| Ok((r.get(0)?, r.get(1)?, r.get(2)?)),
        )
        .expect("counts");
    println!(
        "no/one/multiple {}/{}/{}; stages ms {}",
        counts.0,
        counts.1,
        counts.2,
        stages.join(", ")
    );
}

/// The upsert peer's update: each one-match row's values overwrite its
/// contact's (a value the file leaves empty keeps the stored one), its
/// tags are appended to the stored ones, `updated_at` is the import's.
const UPSERT_PEER: &str = "UPDATE contacts AS c SET \
       external_id = coalesce(f.\"ID\", c.external_id), first_name = coalesce(f.\"First name\", c.first_name), \
       last_name = coalesce(f.\"Last name\", c.last_name), email = coalesce(nullif(f.k_email, ''), c.email), \
       phone = coalesce(nullif(f.k_phone, ''), c.phone), \
       mobile = coalesce(nullif(regexp_replace(f.\"Mobile\", '[^0-9]', '', 'g'), ''), c.mobile), \
       company = coalesce(f.\"Company\", c.company), street = coalesce(f.\"Street\", c.street), \
       city = coalesce(f.\"City\", c.city), postal_code = coalesce(f.\"Postal code\", c.postal_code), \
       country = coalesce(f.\"Country\", c.country), note = coalesce(f.\"Note\", c.note), \
       tags = list_distinct(list_concat(c.tags, coalesce(string_split(f.\"Tags\", ';'), []))), \
       updated_at = now()::TIMESTAMP \
     FROM f JOIN m USING (\"row\") \
     WHERE m.n = 1 AND c.id = CAST(m.matched_ids AS BIGINT);";

fn main() {
    // `cargo bench` passes --bench; a filter argument is not used here.
    if let Some(args) = peer_args() {
        peer(args[0] == Path::new("upsert"), &args[1], &args[2], &args[3]);
        return;
    }
    let kontakt = kontakt_bin();
    let scenarios: Vec<Scenario> = std::env::var("KONTAKT_BENCH_SCENARIOS")
        .unwrap_or_else(|_| "1m:1m,10m:10m,1m:10m".into())
        .split(',')
        .map(|s| {
            let (rows, store) = s.split_once(':').expect("ROWS:STORE");
            Scenario {
                rows: count(rows),
                store: count(store),
                label: format!("{rows} x {store}"),
            }
        })
        .collect();
    // Runs per job: the median is reported (3 at 1M rows, where a run
    // takes seconds and varies by 10-20% on a shared machine; 1 at 10M).
    let runs_env: Option<usize> = std::env::var("KONTAKT_BENCH_RUNS").ok().and_then(|r| r.parse().ok());
    let undo = std::env::var("KONTAKT_BENCH_UNDO").as_deref() == Ok("1");

    let mut report = String::new();
    let _ = writeln!(
        report,
        "| import x store | job | runs | wall s (median) | rows/s | peak MiB | vs peer |\n|---|---|---:|---:|---:|---:|---:|"
    );
    let mut details = String::new();
    for scenario in &scenarios {
        scenario.prepare(&kontakt);
        let runs = runs_env
            .unwrap_or(if scenario.rows <= 1_000_000 { 3 } else { 1 })
            .max(1);
        if undo {
            let jobs = undo_jobs(&kontakt, scenario, runs);
            let peer_seconds = jobs[0].1.median();
            for (job, result) in &jobs {
                result.report(
                    &scenario.label,
                    job,
                    scenario.rows,
                    peer_seconds,
                    &mut report,
                    &mut details,
                );
            }
            continue;
        }
        let mut results: [Result; 4] = Default::default();
        for _ in 0..runs {
            peer_run(scenario, false, &mut results[0]);
            kontakt_run(&kontakt, scenario, &["--on-one-match", "skip"], &mut results[1]);
            peer_run(scenario, true, &mut results[2]);
            kontakt_run(&kontakt, scenario, &[], &mut results[3]);
        }
        let peers = [results[0].median(), results[2].median()];
        for (k, (job, result)) in [
            "DuckDB SQL peer (insert only)",
            "kontakt --on-one-match skip",
            "DuckDB SQL peer (upsert)",
            "kontakt upsert",
        ]
        .iter()
        .zip(&results)
        .enumerate()
        {
            result.report(
                &scenario.label,
                job,
                scenario.rows,
                peers[k / 2],
                &mut report,
                &mut details,
            );
        }
    }
    write_results(
        &Scenario::dir().join("results.md"),
        &report,
        &details,
        "each run a fresh process and a fresh copy of the store; vs peer = wall time / peer's (lower is better).",
    );
}
