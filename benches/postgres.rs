//! End to end on a PostgreSQL store: `kontakt import` of a generated file
//! into a generated store held by a PostgreSQL server this bench starts
//! (`scripts/pg-test-server`: a throwaway cluster on a Unix socket, fsync
//! off), against the same job written as plain PostgreSQL SQL through
//! `psql` (the peer), alternately, each run a process of its own (wall
//! time and peak memory of the client process by `/usr/bin/time`; the
//! server's own memory is not in either figure).
//!
//! The peer (issue 25): `\copy` the file into a table, normalize with SQL
//! (lower/trim email, digits-only phone), join on email, then on phone for
//! rows without an email match, `\copy` each category out, INSERT the
//! no-match rows and (upsert) UPDATE the one-match contacts, in one
//! transaction. kontakt does more (validation, E.164, in-file duplicates,
//! failed rows, key hashes, the undo record); it is compared like with
//! like: `--on-one-match skip` against the insert-only peer, the default
//! upsert against the upsert peer.
//!
//! Each run starts from a fresh database made from a template database
//! (`CREATE DATABASE … TEMPLATE`), which holds the store, built once by
//! `kontakt store copy` from the DuckDB bench's store file.
//!
//!     cargo bench --bench postgres
//!     KONTAKT_BENCH_SCENARIOS=1m:1m KONTAKT_BENCH_RUNS=1 cargo bench --bench postgres
//!     KONTAKT_BENCH_SCENARIOS= KONTAKT_BENCH_AUDIT=10m cargo bench --bench postgres
//!
//! Each import scenario also holds kontakt's write (the commit stage of
//! the skip runs) against a bare binary `COPY` of the same new contacts
//! into a fresh copy of the store. `KONTAKT_BENCH_AUDIT=N` adds the audit
//! of the audit bench's store of N contacts (`benches/audit.rs`) against
//! a `GROUP BY` peer through psql.
//!
//! Results are printed and written to `bench-data/pg/results.md`.

use std::fmt::Write as _;
use std::path::{Path, PathBuf};
use std::process::Command;

mod support;

use support::{build_template, count, kontakt_bin, run, timed, write_results};

type Result = support::Runs;

fn data() -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR")).join("bench-data")
}

/// The bench's PostgreSQL server: its socket directory's URL base.
struct Server {
    url: String,
}

impl Server {
    fn start() -> Server {
        let dir = data().join(format!("pg-{}", std::process::id()));
        let _ = std::fs::remove_dir_all(&dir);
        let url = run(
            Command::new(concat!(env!("CARGO_MANIFEST_DIR"), "/scripts/pg-test-server"))
                .arg(&dir)
                .arg(std::process::id().to_string()),
        )
        .trim()
        .to_string();
        Server { url }
    }

    /// The URL of database `db` (the server's URL names `postgres`).
    fn db(&self, db: &str) -> String {
        self.url.replacen("/postgres?", &format!("/{db}?"), 1)
    }

    /// A fresh database `run` made from database `template`; its URL.
    fn fresh(&self, template: &str) -> String {
        self.psql("postgres", "DROP DATABASE IF EXISTS run");
        self.psql("postgres", &format!("CREATE DATABASE run TEMPLATE {template}"));
        self.db("run")
    }

    /// Makes database `name` a copy of the DuckDB store `duckdb`.
    fn copy_store(&self, kontakt: &Path, duckdb: &Path, name: &str) {
        eprintln!("copying {} into database {name} ...", duckdb.display());
        self.psql("postgres", &format!("DROP DATABASE IF EXISTS {name}"));
        self.psql("postgres", &format!("CREATE DATABASE {name}"));
        run(Command::new(kontakt)
            .args(["store", "copy"])
            .arg(duckdb)
            .arg(self.db(name)));
        self.psql(name, "VACUUM ANALYZE");
    }

    fn psql(&self, db: &str, sql: &str) {
        run(Command::new("psql")
            .arg(self.db(db))
            .args(["-v", "ON_ERROR_STOP=1", "-q", "-c", sql]));
    }
}

struct Scenario {
    rows: u64,
    store: u64,
    label: String,
}

impl Scenario {
    fn e2e(name: &str) -> PathBuf {
        data().join("e2e").join(name)
    }
    fn input(&self) -> PathBuf {
        Self::e2e(&format!("in-{}-{}.csv", self.rows, self.store))
    }
    fn template_name(&self) -> String {
        format!("tmpl_{}_{}", self.rows, self.store)
    }

    /// Generates the files, builds the DuckDB store once and copies it
    /// into a template database of the server.
    fn prepare(&self, kontakt: &Path, server: &Server) {
        std::fs::create_dir_all(data().join("e2e")).expect("bench-data/e2e");
        let store_file = Self::e2e(&format!("in-{}-{}-store.csv", self.rows, self.store));
        if !self.input().exists() || !store_file.exists() {
            eprintln!("generating {} ...", self.input().display());
            run(Command::new(kontakt)
                .args(["gen", "--seed", "42", "--rows", &self.rows.to_string()])
                .args(["--store-rows", &self.store.to_string(), "-o"])
                .arg(self.input()));
        }
        let duckdb = Self::e2e(&format!("store-{}-{}.duckdb", self.rows, self.store));
        build_template(kontakt, &store_file, &duckdb, &Self::e2e("out-store"));
        server.copy_store(kontakt, &duckdb, &self.template_name());
    }

    /// A fresh database from the template for one run; its URL.
    fn fresh(&self, server: &Server) -> String {
        server.fresh(&self.template_name())
    }
}

fn kontakt_run(kontakt: &Path, server: &Server, scenario: &Scenario, extra: &[&str], result: &mut Result) {
    let db = scenario.fresh(server);
    let out = data().join("pg/out-kontakt");
    let _ = std::fs::remove_dir_all(&out);
    let (seconds, peak, _) = timed(
        Command::new(kontakt)
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

/// A bare binary `COPY` of the contacts the last kontakt run created (its
/// group's rows, taken from database `run`) into the contacts table of a
/// fresh database, in one transaction: what kontakt's write is held
/// against.
fn bare_copy_run(server: &Server, scenario: &Scenario, result: &mut Result) {
    let file = data().join("pg/new-contacts.bin");
    server.psql(
        "run",
        &format!(
            "\\copy (SELECT * FROM kontakt.contacts WHERE import_id = \
             (SELECT max(id) FROM kontakt.import_groups)) TO '{}' (FORMAT binary)",
            file.display()
        ),
    );
    let db = scenario.fresh(server);
    let (seconds, peak, _) = timed(
        Command::new("psql")
            .arg(&db)
            .args(["-v", "ON_ERROR_STOP=1", "-q", "-c"])
            .arg(format!(
                "\\copy kontakt.contacts FROM '{}' (FORMAT binary)",
                file.display()
            )),
    );
    result.seconds.push(seconds);
    result.peak_mib = result.peak_mib.max(peak);
    result.detail = format!(
        "{} bytes of binary COPY",
        std::fs::metadata(&file).map_or(0, |m| m.len())
    );
}

fn peer_run(server: &Server, scenario: &Scenario, upsert: bool, result: &mut Result) {
    let db = scenario.fresh(server);
    let out = data().join("pg/out-peer");
    let _ = std::fs::remove_dir_all(&out);
    std::fs::create_dir_all(&out).expect("peer output");
    let script = data().join("pg/peer.sql");
    std::fs::write(&script, peer_sql(&scenario.input(), &out, upsert)).expect("peer script");
    let (seconds, peak, stdout) = timed(
        Command::new("psql")
            .arg(&db)
            .args(["-v", "ON_ERROR_STOP=1", "-q", "-t", "-A", "-f"])
            .arg(&script),
    );
    result.seconds.push(seconds);
    result.peak_mib = result.peak_mib.max(peak);
    result.detail = format!("no/one/multiple {}", stdout.trim().replace('|', "/"));
}

/// The peer's script: the generated file's columns, all text.
fn peer_sql(input: &Path, out: &Path, upsert: bool) -> String {
    let header = std::fs::read_to_string(input)
        .ok()
        .and_then(|t| t.lines().next().map(str::to_string))
        .unwrap_or_default();
    let columns: Vec<String> = header.split(',').map(|c| format!("\"{c}\" text")).collect();
    let o = |name: &str| out.join(name).display().to_string();
    let update = if upsert {
        "UPDATE kontakt.contacts AS c SET \
           external_id = coalesce(f.\"ID\", c.external_id), first_name = coalesce(f.\"First name\", c.first_name), \
           last_name = coalesce(f.\"Last name\", c.last_name), email = coalesce(nullif(f.k_email, ''), c.email), \
           phone = coalesce(nullif(f.k_phone, ''), c.phone), \
           mobile = coalesce(nullif(regexp_replace(f.\"Mobile\", '[^0-9]', '', 'g'), ''), c.mobile), \
           company = coalesce(f.\"Company\", c.company), street = coalesce(f.\"Street\", c.street), \
           city = coalesce(f.\"City\", c.city), postal_code = coalesce(f.\"Postal code\", c.postal_code), \
           country = coalesce(f.\"Country\", c.country), note = coalesce(f.\"Note\", c.note), \
           tags = ARRAY(SELECT DISTINCT t FROM unnest(c.tags || coalesce(string_to_array(f.\"Tags\", ';'), '{}')) AS t), \
           updated_at = now()::timestamp \
         FROM f JOIN m USING (\"row\") WHERE m.n = 1 AND c.id = m.matched_ids::bigint;"
    } else {
        ""
    };
    format!(
        "CREATE TEMP TABLE raw ({columns});
\\copy raw FROM '{input}' (FORMAT csv, HEADER true)
CREATE TEMP TABLE f AS SELECT row_number() OVER () AS \"row\", raw.*,
  lower(trim(\"E-mail\")) AS k_email, regexp_replace(\"Phone\", '[^0-9]', '', 'g') AS k_phone FROM raw;
ANALYZE f;
CREATE TEMP TABLE em AS SELECT f.\"row\", c.id FROM f JOIN kontakt.contacts c ON c.email = f.k_email
  WHERE c.type = 'person';
CREATE TEMP TABLE pm AS SELECT f.\"row\", c.id FROM f
  JOIN (SELECT id, regexp_replace(phone, '[^0-9]', '', 'g') AS p FROM kontakt.contacts
        WHERE phone IS NOT NULL AND type = 'person') c ON c.p = f.k_phone
  WHERE f.k_phone <> '' AND NOT EXISTS (SELECT 1 FROM em WHERE em.\"row\" = f.\"row\");
CREATE TEMP TABLE m AS SELECT \"row\", count(*) AS n, string_agg(id::text, ';') AS matched_ids
  FROM (SELECT * FROM em UNION ALL SELECT * FROM pm) AS a GROUP BY \"row\";
ANALYZE m;
\\copy (SELECT f.* FROM f WHERE NOT EXISTS (SELECT 1 FROM m WHERE m.\"row\" = f.\"row\")) TO '{no}' (FORMAT csv, HEADER true)
\\copy (SELECT f.*, m.matched_ids FROM f JOIN m USING (\"row\") WHERE m.n = 1) TO '{one}' (FORMAT csv, HEADER true)
\\copy (SELECT f.*, m.matched_ids FROM f JOIN m USING (\"row\") WHERE m.n > 1) TO '{multiple}' (FORMAT csv, HEADER true)
BEGIN;
INSERT INTO kontakt.contacts (id, type, created_at, updated_at, external_id, first_name, last_name, email, phone,
                              mobile, company, street, city, postal_code, country, note)
  SELECT (SELECT value::bigint FROM kontakt.kontakt_meta WHERE key = 'next_contact_id') + row_number() OVER () - 1,
         'person', now()::timestamp, now()::timestamp, \"ID\", \"First name\", \"Last name\", k_email, k_phone,
         regexp_replace(\"Mobile\", '[^0-9]', '', 'g'), \"Company\", \"Street\", \"City\", \"Postal code\",
         \"Country\", \"Note\"
  FROM f WHERE NOT EXISTS (SELECT 1 FROM m WHERE m.\"row\" = f.\"row\");
{update}
COMMIT;
SELECT (SELECT count(*) FROM f WHERE NOT EXISTS (SELECT 1 FROM m WHERE m.\"row\" = f.\"row\")),
       (SELECT count(*) FROM m WHERE n = 1), (SELECT count(*) FROM m WHERE n > 1);
",
        columns = columns.join(", "),
        input = input.display(),
        no = o("no_match.csv"),
        one = o("one_match.csv"),
        multiple = o("multiple_match.csv"),
    )
}

fn main() {
    let kontakt = kontakt_bin();
    std::fs::create_dir_all(data().join("pg")).expect("bench-data/pg");
    let server = Server::start();
    let scenarios: Vec<Scenario> = std::env::var("KONTAKT_BENCH_SCENARIOS")
        .unwrap_or_else(|_| "1m:1m,1m:10m".into())
        .split(',')
        .filter(|s| !s.is_empty())
        .map(|s| {
            let (rows, store) = s.split_once(':').expect("ROWS:STORE");
            Scenario {
                rows: count(rows),
                store: count(store),
                label: format!("{rows} x {store}"),
            }
        })
        .collect();
    let runs: usize = std::env::var("KONTAKT_BENCH_RUNS")
        .ok()
        .and_then(|r| r.parse().ok())
        .unwrap_or(3)
        .max(1);
    let mut report = String::new();
    let _ = writeln!(
        report,
        "| import x store | job | runs | wall s (median) | rows/s | peak MiB (client) | vs peer |\n|---|---|---:|---:|---:|---:|---:|"
    );
    let mut details = String::new();
    for scenario in &scenarios {
        scenario.prepare(&kontakt, &server);
        let mut results: [Result; 4] = Default::default();
        // kontakt's write (the skip runs' commit stage) and a bare COPY of
        // the same new rows.
        let (mut write, mut bare) = (Result::default(), Result::default());
        let mut created = 0;
        for _ in 0..runs {
            peer_run(&server, scenario, false, &mut results[0]);
            kontakt_run(
                &kontakt,
                &server,
                scenario,
                &["--on-one-match", "skip"],
                &mut results[1],
            );
            // The skip run's store write: its commit thread's busy time.
            let summary = support::summary(&data().join("pg/out-kontakt"));
            write
                .seconds
                .push(summary["stages_ms"]["commit"].as_f64().expect("stages_ms.commit") / 1000.0);
            created = summary["imported"].as_u64().expect("imported");
            bare_copy_run(&server, scenario, &mut bare);
            peer_run(&server, scenario, true, &mut results[2]);
            kontakt_run(&kontakt, &server, scenario, &[], &mut results[3]);
        }
        let peers = [results[0].median(), results[2].median()];
        for (k, (job, result)) in [
            "psql SQL peer (insert only)",
            "kontakt --on-one-match skip",
            "psql SQL peer (upsert)",
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
        // Here "vs peer" is against the bare COPY, and rows are the new
        // contacts.
        write.detail = "kontakt's commit stage (stages_ms.commit) of the skip runs".into();
        bare.report(
            &scenario.label,
            "bare COPY of the new contacts",
            created,
            bare.median(),
            &mut report,
            &mut details,
        );
        write.report(
            &scenario.label,
            "kontakt write (skip)",
            created,
            bare.median(),
            &mut report,
            &mut details,
        );
    }
    if let Ok(label) = std::env::var("KONTAKT_BENCH_AUDIT") {
        audit(&kontakt, &server, &label, runs, &mut report, &mut details);
    }
    write_results(
        &data().join("pg/results.md"),
        &report,
        &details,
        "PostgreSQL from scripts/pg-test-server (fsync off); each run a fresh database from the template; \
         vs peer = wall time / peer's (lower is better).",
    );
}

/// The audit of a generated store of `label` contacts with duplicates
/// (the audit bench's, copied into the server), `kontakt audit --key
/// email,phone` against the peer: GROUP BY each key, HAVING count(*) > 1,
/// joined back to the contacts and `\copy`'d to one CSV per key, through
/// psql.
fn audit(kontakt: &Path, server: &Server, label: &str, runs: usize, report: &mut String, details: &mut String) {
    let (duckdb, _) = support::audit_data(kontakt, label, count(label));
    let template = format!("tmpl_audit_{label}");
    server.copy_store(kontakt, &duckdb, &template);
    let out = data().join("pg/out-audit-peer");
    let script = data().join("pg/audit-peer.sql");
    let copies: Vec<String> = ["email", "phone"]
        .iter()
        .map(|key| {
            format!(
                "\\copy (SELECT c.id AS contact_id, '{key}' AS key, c.{key} AS value, c.created_at \
                 FROM kontakt.contacts AS c JOIN (SELECT {key} FROM kontakt.contacts WHERE {key} IS NOT NULL \
                 GROUP BY {key} HAVING count(*) > 1) AS g USING ({key})) TO '{}' (FORMAT csv, HEADER true)\n",
                out.join(format!("{key}.csv")).display()
            )
        })
        .collect();
    std::fs::write(&script, copies.concat()).expect("audit peer script");
    let (mut peer, mut full) = (Result::default(), Result::default());
    let mut contacts = 0;
    for _ in 0..runs {
        let db = server.fresh(&template);
        let _ = std::fs::remove_dir_all(&out);
        std::fs::create_dir_all(&out).expect("peer output");
        let (seconds, peak, _) = timed(
            Command::new("psql")
                .arg(&db)
                .args(["-v", "ON_ERROR_STOP=1", "-q", "-f"])
                .arg(&script),
        );
        peer.seconds.push(seconds);
        peer.peak_mib = peer.peak_mib.max(peak);
        let db = server.fresh(&template);
        let (seconds, peak, stdout) = timed(
            Command::new(kontakt)
                .arg("--db")
                .arg(&db)
                .args(["audit", "--key", "email,phone", "--json", "--out"])
                .arg(data().join("pg/out-audit")),
        );
        full.seconds.push(seconds);
        full.peak_mib = full.peak_mib.max(peak);
        let summary: serde_json::Value = serde_json::from_str(&stdout).expect("audit --json");
        contacts = summary["contacts"].as_u64().unwrap_or(0);
        full.detail = format!(
            "{} clusters holding {} contacts; stages ms {}",
            summary["clusters"], summary["contacts_in_clusters"], summary["stages_ms"]
        );
    }
    peer.detail = "GROUP BY each key, joined back, \\copy to CSV".into();
    let label = format!("audit of {label}");
    peer.report(
        &label,
        "psql SQL peer (GROUP BY each key)",
        contacts,
        peer.median(),
        report,
        details,
    );
    full.report(
        &label,
        "kontakt audit --key email,phone",
        contacts,
        peer.median(),
        report,
        details,
    );
}
