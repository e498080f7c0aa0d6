//! The normalize stage on 10M generated rows held in memory as raw batches:
//! rows/s on 1 and 2 threads, for (a) email + phone normalization and key
//! hashing (with the country column the phones need), and (b) the whole
//! stage with every column of the generated file mapped (names, gender,
//! consents, birth date, mobile, tags, ...). Every iteration checks that each
//! row is either normalized or failed.
//!
//! Data: `kontakt gen --rows 10000000 --seed 42`, generated into
//! `bench-data/` on first run. Run with:
//!     cargo bench --bench normalize
//! KONTAKT_BENCH_ROWS overrides the row count.

use std::path::Path;
use std::time::{Duration, Instant};

use criterion::{Criterion, Throughput};
use kontakt::map::{self, MappingOptions};
use kontakt::normalize::{NormalizeSettings, Plan};
use kontakt::read::{self, Input, RawBatch, ReadOptions};
use kontakt::synth::{self, GenOptions, HeaderLanguage, OutputFormat};
use rayon::prelude::*;

#[global_allocator]
static GLOBAL: mimalloc::MiMalloc = mimalloc::MiMalloc;

fn load(rows: u64) -> (Vec<RawBatch>, Vec<String>) {
    let dir = Path::new(env!("CARGO_MANIFEST_DIR")).join("bench-data");
    std::fs::create_dir_all(&dir).expect("create bench-data/");
    let path = dir.join(format!("normalize-{rows}.csv"));
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
        synth::generate(&options, &path, None).expect("generate");
    }
    let table = read::open(&Input::Path(path), &ReadOptions::default()).expect("open");
    let columns = table.columns.clone();
    let batches: Vec<RawBatch> = table.map(|b| b.expect("batch")).collect();
    (batches, columns)
}

fn plan(columns: &[String], maps: &[&str], auto: bool) -> Plan {
    let options = MappingOptions {
        auto,
        maps: maps.iter().map(|s| s.to_string()).collect(),
        ..MappingOptions::default()
    };
    let mapping = map::resolve(columns, &options).expect("mapping");
    let settings = NormalizeSettings {
        primary_key: Some("email"),
        secondary_key: Some("phone"),
        ..NormalizeSettings::default()
    };
    Plan::new(&mapping, settings).expect("plan")
}

/// Normalizes every batch in parallel; returns rows accounted for.
fn run(plan: &Plan, batches: &[RawBatch]) -> u64 {
    batches
        .par_iter()
        .map(|b| {
            let n = plan.normalize(b);
            (n.kept_rows() + n.failed.len()) as u64
        })
        .sum()
}

fn peak_mib() -> f64 {
    let status = std::fs::read_to_string("/proc/self/status").unwrap_or_default();
    status
        .lines()
        .find(|l| l.starts_with("VmHWM:"))
        .and_then(|l| l.split_whitespace().nth(1))
        .and_then(|kb| kb.parse::<f64>().ok())
        .map_or(f64::NAN, |kb| kb / 1024.0)
}

fn main() {
    let rows: u64 = std::env::var("KONTAKT_BENCH_ROWS")
        .ok()
        .and_then(|s| s.parse().ok())
        .unwrap_or(10_000_000);
    let (batches, columns) = load(rows);
    let total: u64 = batches.iter().map(|b| (b.num_rows() + b.bad_rows.len()) as u64).sum();
    assert_eq!(total, rows);
    let keys_only = plan(&columns, &["E-mail=email", "Phone=phone", "Country=country"], false);
    let whole = plan(&columns, &[], true);
    let configs = [("email+phone+hash", &keys_only), ("whole stage", &whole)];
    let pools: Vec<(usize, rayon::ThreadPool)> = [1, 2]
        .into_iter()
        .map(|n| (n, rayon::ThreadPoolBuilder::new().num_threads(n).build().expect("pool")))
        .collect();

    // Medians of 3 for the summary (after one warm-up run each, which also
    // compiles each thread's phone regexes).
    let mut summary = Vec::new();
    for (name, plan) in configs {
        for (threads, pool) in &pools {
            pool.install(|| assert_eq!(run(plan, &batches), rows));
            let mut times: Vec<f64> = (0..3)
                .map(|_| {
                    let start = Instant::now();
                    pool.install(|| assert_eq!(run(plan, &batches), rows));
                    start.elapsed().as_secs_f64()
                })
                .collect();
            times.sort_by(f64::total_cmp);
            summary.push((name, *threads, times[1]));
        }
    }

    let mut criterion = Criterion::default()
        .configure_from_args()
        .sample_size(10)
        .measurement_time(Duration::from_secs(20))
        .warm_up_time(Duration::from_secs(1));
    {
        let mut group = criterion.benchmark_group("normalize_10m");
        group.throughput(Throughput::Elements(rows));
        for (name, plan) in configs {
            for (threads, pool) in &pools {
                group.bench_function(format!("{name}/{threads}t"), |b| {
                    b.iter(|| pool.install(|| assert_eq!(run(plan, &batches), rows)))
                });
            }
        }
        group.finish();
    }
    criterion.final_summary();

    println!();
    println!(
        "{rows} rows in memory; peak memory of the process {:.0} MiB",
        peak_mib()
    );
    println!(
        "{:<18} {:>8} {:>10} {:>14} {:>9}",
        "stage", "threads", "median s", "rows/s", "speed-up"
    );
    for (name, threads, seconds) in &summary {
        let one = summary
            .iter()
            .find(|(n, t, _)| n == name && *t == 1)
            .map_or(*seconds, |s| s.2);
        println!(
            "{name:<18} {threads:>8} {seconds:>10.3} {:>14.0} {:>8.2}x",
            rows as f64 / seconds,
            one / seconds
        );
    }
}
