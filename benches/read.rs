//! Reading a ~1 GB UTF-8 contact CSV into Arrow batches: kontakt's parallel
//! reader against DuckDB's own `read_csv` through the same linked library,
//! all columns as VARCHAR, two ways: into Arrow batches (`query_arrow`, the
//! same output as ours) and into a temporary table (DuckDB's native path).
//! Reports MB/s, rows/s and peak memory per reader (each measured run in a
//! process of its own), and the ratio against the faster DuckDB variant.
//!
//! Data: `kontakt gen --rows 7000000 --seed 42` (about 990 MB), generated
//! into `bench-data/` on first run. Run with:
//!     cargo bench --bench read
//! Environment: KONTAKT_BENCH_ROWS overrides the row count (smaller = quicker).

use std::path::{Path, PathBuf};
use std::time::{Duration, Instant};

use criterion::{Criterion, Throughput};
use kontakt::read::{self, Input, ReadOptions};

#[global_allocator]
static GLOBAL: mimalloc::MiMalloc = mimalloc::MiMalloc;
use kontakt::synth::{self, GenOptions, HeaderLanguage, OutputFormat};

fn data_file() -> (PathBuf, u64) {
    let rows: u64 = std::env::var("KONTAKT_BENCH_ROWS")
        .ok()
        .and_then(|s| s.parse().ok())
        .unwrap_or(7_000_000);
    let dir = Path::new(env!("CARGO_MANIFEST_DIR")).join("bench-data");
    std::fs::create_dir_all(&dir).expect("create bench-data/");
    let path = dir.join(format!("read-{rows}.csv"));
    if !path.exists() {
        eprintln!("generating {} ({rows} rows, seed 42)...", path.display());
        let options = GenOptions {
            rows,
            seed: 42,
            store_rows: 0,
            format: OutputFormat::Csv,
            delimiter: b',',
            encoding: read::Encoding::Utf8,
            language: HeaderLanguage::En,
            quote_all: false,
        };
        synth::generate(&options, &path, None).expect("generate bench data");
    }
    (path, rows)
}

/// Reads the whole file with kontakt's reader; returns data rows read
/// (good and bad: every data row is accounted for).
fn kontakt_read(path: &Path) -> u64 {
    let table = read::open(&Input::Path(path.to_path_buf()), &ReadOptions::default()).expect("open");
    let mut rows = 0u64;
    for batch in table {
        let batch = batch.expect("batch");
        rows += (batch.num_rows() + batch.bad_rows.len()) as u64;
    }
    rows
}

/// DuckDB's CSV reader into Arrow batches, every column as text.
fn duckdb_read(conn: &duckdb::Connection, path: &Path) -> u64 {
    let sql = format!(
        "SELECT * FROM read_csv('{}', header = true, all_varchar = true)",
        path.display()
    );
    let mut stmt = conn.prepare(&sql).expect("prepare");
    stmt.query_arrow([]).expect("query").map(|b| b.num_rows() as u64).sum()
}

/// DuckDB's CSV reader into its own storage (a temporary table): no Arrow
/// conversion, the engine's native path.
fn duckdb_native(conn: &duckdb::Connection, path: &Path) -> u64 {
    let sql = format!(
        "CREATE OR REPLACE TEMP TABLE t AS SELECT * FROM read_csv('{}', header = true, all_varchar = true)",
        path.display()
    );
    conn.execute_batch(&sql).expect("create table");
    let rows: i64 = conn
        .query_row("SELECT count(*) FROM t", [], |r| r.get(0))
        .expect("count");
    rows as u64
}

/// Peak resident memory (VmHWM) of this process, in MiB.
fn peak_mib() -> f64 {
    let status = std::fs::read_to_string("/proc/self/status").unwrap_or_default();
    status
        .lines()
        .find(|l| l.starts_with("VmHWM:"))
        .and_then(|l| l.split_whitespace().nth(1))
        .and_then(|kb| kb.parse::<f64>().ok())
        .map_or(f64::NAN, |kb| kb / 1024.0)
}

/// One read in a process of its own, so VmHWM is that reader's peak alone.
/// Returns (seconds, peak MiB).
fn measure_in_child(reader: &str) -> (f64, f64) {
    let output = std::process::Command::new(std::env::current_exe().expect("current exe"))
        .env("KONTAKT_BENCH_CHILD", reader)
        .output()
        .expect("run child");
    assert!(
        output.status.success(),
        "{reader} child failed: {}",
        String::from_utf8_lossy(&output.stderr)
    );
    let text = String::from_utf8_lossy(&output.stdout);
    let mut numbers = text.split_whitespace().map(|n| n.parse::<f64>().expect("child output"));
    (numbers.next().expect("seconds"), numbers.next().expect("peak"))
}

fn main() {
    let (path, rows) = data_file();
    let bytes = std::fs::metadata(&path).expect("stat").len();
    let mb = bytes as f64 / 1e6;

    if let Ok(reader) = std::env::var("KONTAKT_BENCH_CHILD") {
        let start = Instant::now();
        let conn = duckdb::Connection::open_in_memory().expect("duckdb");
        let read = match reader.as_str() {
            "kontakt" => kontakt_read(&path),
            "duckdb-native" => duckdb_native(&conn, &path),
            _ => duckdb_read(&conn, &path),
        };
        let seconds = start.elapsed().as_secs_f64();
        assert_eq!(read, rows, "{reader} row count");
        println!("{seconds} {}", peak_mib());
        return;
    }

    // Warm the page cache; then three runs of each, alternating, each in a
    // fresh process, for peak memory and a median time.
    measure_in_child("kontakt");
    let readers = [
        ("kontakt", "kontakt"),
        ("duckdb -> arrow", "duckdb"),
        ("duckdb -> table", "duckdb-native"),
    ];
    let mut runs: Vec<(&str, Vec<(f64, f64)>)> = readers.iter().map(|(name, _)| (*name, vec![])).collect();
    for _ in 0..3 {
        for (i, (_, child)) in readers.iter().enumerate() {
            runs[i].1.push(measure_in_child(child));
        }
    }

    let conn = duckdb::Connection::open_in_memory().expect("duckdb");
    let mut criterion = Criterion::default()
        .configure_from_args()
        .sample_size(10)
        .measurement_time(Duration::from_secs(20))
        .warm_up_time(Duration::from_secs(2));
    {
        let mut group = criterion.benchmark_group("read_csv_1gb");
        group.throughput(Throughput::Bytes(bytes));
        group.bench_function("kontakt", |b| b.iter(|| assert_eq!(kontakt_read(&path), rows)));
        group.bench_function("duckdb_read_csv_arrow", |b| {
            b.iter(|| assert_eq!(duckdb_read(&conn, &path), rows))
        });
        group.bench_function("duckdb_read_csv_table", |b| {
            b.iter(|| assert_eq!(duckdb_native(&conn, &path), rows))
        });
        group.finish();
    }
    criterion.final_summary();

    let threads = rayon::current_num_threads();
    println!();
    println!(
        "file: {} ({mb:.0} MB, {rows} rows), {threads} threads, one process per run",
        path.display()
    );
    println!(
        "{:<18} {:>9} {:>10} {:>13} {:>12}",
        "reader", "median s", "MB/s", "rows/s", "peak (MiB)"
    );
    let mut medians = Vec::new();
    for (name, results) in &mut runs {
        results.sort_by(|a, b| a.0.total_cmp(&b.0));
        let seconds = results[results.len() / 2].0;
        let peak = results.iter().map(|r| r.1).fold(0.0, f64::max);
        medians.push(seconds);
        println!(
            "{name:<18} {seconds:>9.3} {:>10.0} {:>13.0} {peak:>12.0}",
            mb / seconds,
            rows as f64 / seconds
        );
    }
    let fastest_peer = medians[1].min(medians[2]);
    println!(
        "kontakt is {:.2}x as fast as duckdb read_csv (its faster variant, same run)",
        fastest_peer / medians[0]
    );
}
