//! Helpers shared by the end-to-end benches (each includes this file).

use std::path::{Path, PathBuf};
use std::process::Command;

/// The kontakt binary of this profile (cargo bench builds it alongside).
pub fn kontakt_bin() -> PathBuf {
    PathBuf::from(env!("CARGO_BIN_EXE_kontakt"))
}

/// `1m`, `500k` or a plain number.
pub fn count(text: &str) -> u64 {
    let (n, unit) = text.split_at(text.len() - 1);
    match unit {
        "m" | "M" => n.parse::<u64>().expect("a count like 1m or 500k") * 1_000_000,
        "k" | "K" => n.parse::<u64>().expect("a count like 1m or 500k") * 1_000,
        _ => text.parse().expect("a count"),
    }
}

/// One job's runs: wall seconds in run order, the peak memory of all,
/// and a detail of the last. (The audit bench reports in a form of its
/// own.)
#[allow(dead_code)]
#[derive(Debug, Default, Clone)]
pub struct Runs {
    pub seconds: Vec<f64>,
    pub peak_mib: f64,
    pub detail: String,
}

#[allow(dead_code)]
impl Runs {
    pub fn median(&self) -> f64 {
        median(&self.seconds)
    }

    /// Adds (and prints) the job's table line to `report`: `label` (the
    /// scenario), `rows` per run, the time against `peer_seconds`; and
    /// every run's time, in run order, to `details`, so a stall of the
    /// machine shows as one outlier.
    pub fn report(
        &self,
        label: &str,
        job: &str,
        rows: u64,
        peer_seconds: f64,
        report: &mut String,
        details: &mut String,
    ) {
        use std::fmt::Write as _;
        let seconds = self.median();
        let line = format!(
            "| {label} | {job} | {} | {seconds:.2} | {:.0} | {:.0} | {:.2} |",
            self.seconds.len(),
            rows as f64 / seconds,
            self.peak_mib,
            seconds / peer_seconds
        );
        println!("{line}");
        let _ = writeln!(report, "{line}");
        let each: Vec<String> = self.seconds.iter().map(|s| format!("{s:.2}")).collect();
        let _ = writeln!(details, "- {label} {job}: runs s {}; {}", each.join(", "), self.detail);
    }
}

/// The median of some runs' seconds.
pub fn median(seconds: &[f64]) -> f64 {
    let mut s = seconds.to_vec();
    s.sort_by(f64::total_cmp);
    s[s.len() / 2]
}

/// Set in the environment of the bench binary's own child that runs the
/// peer (the same job as plain DuckDB SQL) in a process of its own.
#[allow(dead_code)]
pub const PEER_ENV: &str = "KONTAKT_BENCH_PEER";

/// The peer's arguments when this bench binary runs as the peer's
/// process (see [`timed_peer`]); `None` when it runs the bench.
#[allow(dead_code)]
pub fn peer_args() -> Option<Vec<PathBuf>> {
    std::env::var_os(PEER_ENV)?;
    Some(std::env::args_os().skip(1).map(PathBuf::from).collect())
}

/// Prints every run's details and writes the table, the details and how
/// the runs were made (`how`, after the machine's cores) to `path`.
#[allow(dead_code)]
pub fn write_results(path: &Path, report: &str, details: &str, how: &str) {
    let threads = std::thread::available_parallelism().map_or(1, |n| n.get());
    println!("\n{details}");
    std::fs::write(path, format!("{report}\n{details}\n{threads} cores; {how}\n")).expect("results.md");
}

/// Runs the peer in a child process of this bench binary with `args` and
/// a fresh output directory `out` as its arguments: wall seconds, peak MiB
/// and standard output (see [`timed`]).
#[allow(dead_code)]
pub fn timed_peer(args: &[&Path], out: &Path) -> (f64, f64, String) {
    let _ = std::fs::remove_dir_all(out);
    std::fs::create_dir_all(out).expect("peer output directory");
    timed(
        Command::new(std::env::current_exe().expect("exe"))
            .env(PEER_ENV, "1")
            .args(args)
            .arg(out),
    )
}

/// Runs a command that must succeed; its standard output.
pub fn run(cmd: &mut Command) -> String {
    let output = cmd.output().expect("run");
    assert!(
        output.status.success(),
        "{cmd:?} failed: {}",
        String::from_utf8_lossy(&output.stderr)
    );
    String::from_utf8_lossy(&output.stdout).into_owned()
}

/// Wall seconds and peak resident MiB of one command, by GNU time.
pub fn timed(cmd: &mut Command) -> (f64, f64, String) {
    let program = cmd.get_program().to_owned();
    let args: Vec<_> = cmd.get_args().map(|a| a.to_owned()).collect();
    let mut timed = Command::new("/usr/bin/time");
    timed.arg("-f").arg("KONTAKT_TIME %e %M").arg(program).args(args);
    for (k, v) in cmd.get_envs() {
        match v {
            Some(v) => timed.env(k, v),
            None => timed.env_remove(k),
        };
    }
    let output = timed.output().expect("run /usr/bin/time");
    let stderr = String::from_utf8_lossy(&output.stderr);
    assert!(output.status.success(), "{cmd:?} failed: {stderr}");
    let line = stderr
        .lines()
        .rev()
        .find(|l| l.starts_with("KONTAKT_TIME"))
        .expect("time output");
    let mut parts = line.split_whitespace().skip(1);
    let seconds: f64 = parts.next().and_then(|s| s.parse().ok()).expect("seconds");
    let kb: f64 = parts.next().and_then(|s| s.parse().ok()).expect("max rss");
    (
        seconds,
        kb / 1024.0,
        String::from_utf8_lossy(&output.stdout).into_owned(),
    )
}

/// An import's `summary.json` in `out`.
#[allow(dead_code)]
pub fn summary(out: &Path) -> serde_json::Value {
    serde_json::from_str(&std::fs::read_to_string(out.join("summary.json")).expect("summary")).expect("json")
}

/// What an import's `summary.json` in `out` says of its rows and stages,
/// for a run's detail line.
#[allow(dead_code)]
pub fn import_detail(out: &Path) -> String {
    let summary = summary(out);
    format!(
        "no/one/multiple/failed {}/{}/{}/{}, imported {}, updated {}; stages ms {}; peak MiB at stage end {}",
        summary["no_match"],
        summary["one_match"],
        summary["multiple_match"],
        summary["rows_failed"],
        summary["imported"],
        summary["updated"],
        summary["stages_ms"],
        summary["peak_memory_mib"]
    )
}

/// Imports `file` into `db` keeping every row (`--primary-key none`: the
/// generated duplicates stay duplicates), outputs to `out`.
pub fn import_all(kontakt: &Path, db: &Path, file: &Path, name: &str, out: &Path) {
    run(Command::new(kontakt)
        .arg("--db")
        .arg(db)
        .args([
            "import",
            "--primary-key",
            "none",
            "--progress",
            "never",
            "--name",
            name,
            "--out",
        ])
        .arg(out)
        .arg(file));
}

/// Builds the store `template` from `store_file` once (atomically: a
/// half-built store is never taken for a template).
pub fn build_template(kontakt: &Path, store_file: &Path, template: &Path, out: &Path) {
    if template.exists() {
        // A template built by an older kontakt is migrated once here, not
        // in every timed run.
        run(Command::new(kontakt)
            .arg("--db")
            .arg(template)
            .args(["imports", "list"]));
        return;
    }
    eprintln!("building {} ...", template.display());
    let partial = template.with_extension("building");
    let _ = std::fs::remove_file(&partial);
    import_all(kontakt, &partial, store_file, "store", out);
    std::fs::rename(&partial, template).expect("store built");
}

/// The audit benches' data (`bench-data/audit/`): a store of `store_rows`
/// generated contacts with their duplicates kept (built once, `label` in
/// its name) and a file of 100k rows, people of the store among new ones.
/// Returns the store's file and the 100k file.
#[allow(dead_code)]
pub fn audit_data(kontakt: &Path, label: &str, store_rows: u64) -> (PathBuf, PathBuf) {
    let dir = Path::new(env!("CARGO_MANIFEST_DIR")).join("bench-data/audit");
    std::fs::create_dir_all(&dir).expect("bench-data/audit");
    let new_rows = dir.join(format!("new-100k-{label}.csv"));
    let store_file = dir.join(format!("new-100k-{label}-store.csv"));
    if !new_rows.exists() || !store_file.exists() {
        eprintln!("generating {} ...", store_file.display());
        run(Command::new(kontakt)
            .args([
                "gen",
                "--seed",
                "42",
                "--rows",
                "100000",
                "--store-rows",
                &store_rows.to_string(),
                "-o",
            ])
            .arg(&new_rows));
    }
    let template = dir.join(format!("store-{label}.duckdb"));
    build_template(kontakt, &store_file, &template, &dir.join("out-store"));
    (template, new_rows)
}
