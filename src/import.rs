//! `kontakt import`: the whole pipeline for one file.
//!
//! ```text
//! reader thread ──RawBatch──▶ rayon: normalize + probe the store index ──▶
//!   in file order: in-file duplicates, category, action ──▶ outputs (CSV)
//!                                                       └─▶ commit (appender, staged updates)
//! ```
//! Batches are taken a few at a time (two per worker thread), prepared in
//! parallel, then resolved in file order, so memory stays bounded by those
//! batches plus the key index of the store and of the file.

use std::path::PathBuf;
use std::sync::atomic::{AtomicBool, Ordering};
use std::time::{Duration, Instant};

use duckdb::arrow::array::{AsArray, StringArray, UInt64Array};
use duckdb::arrow::datatypes::UInt64Type;
use rayon::prelude::*;

use crate::apply::{self, Action, Actions, Commit, Ending, GroupCounts, Master};
use crate::error::{Error, Result};
use crate::map::{self, MappingOptions};
use crate::matching::{self, Category, Duplicates, InFile, InFileVerdict, KeyIndex, MatchedBy, StoreIndex};
use crate::normalize::{FailedRow, NormalizeSettings, NormalizedBatch, Original, Plan, Reason, phone};
use crate::read::{self, Input, RawBatch, ReadOptions};
use crate::store::Store;
use crate::write::{self, OutputFormat, Outputs, RowOut, Summary};

/// Everything `kontakt import` was asked to do, resolved from flags.
#[derive(Debug, Clone)]
pub struct ImportOptions {
    pub input: Input,
    pub read: ReadOptions,
    pub mapping: MappingOptions,
    pub normalize: NormalizeSettings,
    pub actions: Actions,
    pub master: Master,
    pub duplicates: Duplicates,
    pub name: Option<String>,
    pub out: Option<PathBuf>,
    pub output_format: OutputFormat,
    pub excel_safe: bool,
    pub dry_run: bool,
    pub db: PathBuf,
    /// Show a progress bar on standard error.
    pub progress: bool,
}

/// One batch after the parallel step: normalized, and each kept row's
/// store matches (contact ordinals in `matched[start..start + len]`).
struct Prepared {
    norm: NormalizedBatch,
    probes: Vec<Probe>,
    matched: Vec<u32>,
}

#[derive(Debug, Clone, Copy)]
struct Probe {
    by: Option<MatchedBy>,
    start: u32,
    len: u32,
}

/// Where a batch's key values and hashes are.
struct KeyColumns {
    primary: Option<usize>,
    secondary: Option<usize>,
    primary_hash: usize,
    secondary_hash: usize,
}

impl KeyColumns {
    fn of(plan: &Plan) -> KeyColumns {
        let width = plan.schema().fields().len();
        let (primary, secondary) = plan.key_columns();
        KeyColumns {
            primary,
            secondary,
            primary_hash: width - 2,
            secondary_hash: width - 1,
        }
    }

    /// (hashes, values) of the primary and secondary key of a batch.
    fn arrays<'a>(&self, norm: &'a NormalizedBatch) -> [(&'a UInt64Array, Option<&'a StringArray>); 2] {
        let b = &norm.batch;
        [
            (
                b.column(self.primary_hash).as_primitive::<UInt64Type>(),
                self.primary.map(|c| b.column(c).as_string::<i32>()),
            ),
            (
                b.column(self.secondary_hash).as_primitive::<UInt64Type>(),
                self.secondary.map(|c| b.column(c).as_string::<i32>()),
            ),
        ]
    }
}

fn prepare(plan: &Plan, keys: &KeyColumns, index: &StoreIndex, raw: &RawBatch) -> Prepared {
    let norm = plan.normalize(raw);
    let [(ph, pv), (sh, sv)] = keys.arrays(&norm);
    let n = norm.batch.num_rows();
    let mut probes = Vec::with_capacity(n);
    let mut matched = Vec::new();
    let mut found = Vec::new();
    for i in 0..n {
        let by = index.probe(matching::key_at(ph, pv, i), matching::key_at(sh, sv, i), &mut found);
        probes.push(Probe {
            by,
            start: matched.len() as u32,
            len: found.len() as u32,
        });
        matched.extend_from_slice(&found);
    }
    Prepared { norm, probes, matched }
}

/// Time spent per stage (summed over batches).
#[derive(Debug, Default)]
struct Timings {
    read: Duration,
    normalize_match: Duration,
    resolve: Duration,
    write: Duration,
    commit: Duration,
}

/// Reads the table a few batches at a time, prepares them in parallel, and
/// hands them to `each` in file order. Checks for Ctrl-C between batches.
fn for_each_prepared(
    table: &mut read::Table,
    plan: &Plan,
    index: &StoreIndex,
    cancel: &AtomicBool,
    timings: &mut Timings,
    mut each: impl FnMut(Prepared, &mut Timings) -> Result<()>,
) -> Result<()> {
    let keys = KeyColumns::of(plan);
    let group = (rayon::current_num_threads() * 2).max(2);
    loop {
        let started = Instant::now();
        let mut raws = Vec::with_capacity(group);
        for batch in table.by_ref().take(group) {
            raws.push(batch?);
        }
        timings.read += started.elapsed();
        if raws.is_empty() {
            return Ok(());
        }
        let started = Instant::now();
        let prepared: Vec<Prepared> = raws.par_iter().map(|raw| prepare(plan, &keys, index, raw)).collect();
        timings.normalize_match += started.elapsed();
        for p in prepared {
            if cancel.load(Ordering::Relaxed) {
                return Err(Error::Cancelled);
            }
            each(p, timings)?;
        }
    }
}

/// Counts of one import run.
#[derive(Debug, Default)]
struct Counts {
    group: GroupCounts,
    categories: [u64; 3],
    failed_by_reason: std::collections::BTreeMap<&'static str, u64>,
}

/// Runs an import. Usage errors come before anything is read or written.
pub fn run(options: &ImportOptions, cancel: &AtomicBool) -> Result<Summary> {
    let started = Instant::now();
    let spooled = spool_stdin_if_needed(options)?;
    let input = spooled
        .as_ref()
        .map_or(options.input.clone(), |p| Input::Path(p.clone()));
    let result = run_input(options, &input, cancel, started);
    if let Some(path) = spooled {
        let _ = std::fs::remove_file(path);
    }
    result
}

fn run_input(options: &ImportOptions, input: &Input, cancel: &AtomicBool, started: Instant) -> Result<Summary> {
    let mut table = read::open(input, &options.read)?;
    let mapping = map::resolve(&table.columns, &options.mapping)?;
    let plan = Plan::new(&mapping, options.normalize.clone())?;
    let name = match &options.name {
        Some(name) if name.trim().is_empty() => return Err(Error::usage("--name: an import name cannot be empty")),
        Some(name) => name.clone(),
        None => default_name(&options.input),
    };
    let out_dir = options.out.clone().unwrap_or_else(|| write::default_out_dir(&name));
    let store = if options.dry_run && !options.db.exists() {
        None
    } else {
        Some(Store::open(&options.db)?)
    };
    // The name is checked and the group recorded before anything is
    // written, so a taken name leaves an earlier import's outputs alone.
    let source = options.input.to_string();
    let import_id = match &store {
        Some(store) if !options.dry_run => Some(apply::start_group(store, &name, &source)?),
        _ => None,
    };
    let end_group = |e: Error| -> Error {
        if let (Some(store), Some(id)) = (&store, import_id) {
            let _ = apply::end_group(store, id, Ending::of(&e), &e.to_string());
        }
        e
    };
    let contact_type = mapping.contact_type.name();
    let (primary, secondary) = (options.normalize.primary_key, options.normalize.secondary_key);
    let mut timings = Timings::default();
    let build_started = Instant::now();
    let index = match &store {
        Some(store) => StoreIndex::build(store, contact_type, primary, secondary).map_err(end_group)?,
        None => StoreIndex {
            primary: primary.map(|_| KeyIndex::default()),
            secondary: secondary.map(|_| KeyIndex::default()),
            ..StoreIndex::default()
        },
    };
    let build_ms = build_started.elapsed().as_millis() as u64;

    // `last`/`fail` decide with each key group's size: a first run over the
    // file collects them (the same rows give the same groups the second time).
    let known = if InFile::needs_stats(options.duplicates) {
        let mut first_run = InFile::new(options.duplicates, None);
        let mut again = read::open(input, &options.read).map_err(end_group)?;
        let keys = KeyColumns::of(&plan);
        for_each_prepared(&mut again, &plan, &index, cancel, &mut Timings::default(), |p, _| {
            resolve_rows(&p, &keys, &mut first_run);
            Ok(())
        })
        .map_err(end_group)?;
        Some(first_run.into_stats())
    } else {
        None
    };
    let mut infile = InFile::new(options.duplicates, known);

    let normalized_fields: Vec<String> = plan
        .schema()
        .fields()
        .iter()
        .skip(1)
        .take(plan.schema().fields().len() - 3)
        .map(|f| f.name().clone())
        .collect();
    let mut outputs = Outputs::create(
        &out_dir,
        &normalized_fields,
        &table.columns,
        options.output_format,
        options.excel_safe,
    )
    .map_err(end_group)?;

    let mut commit = match (&store, import_id) {
        (Some(store), Some(id)) => {
            let fields = apply::store_fields(&normalized_fields[..normalized_fields.len() - 1], &mapping.tags);
            match Commit::begin(store, id, contact_type, options.master, fields, mapping.tags) {
                Ok(commit) => Some(commit),
                Err(e) => {
                    let _ = store.execute_batch("ROLLBACK");
                    return Err(end_group(e));
                }
            }
        }
        _ => None,
    };

    let progress = options.progress.then(progress_bar);
    let mut counts = Counts::default();
    let keys = KeyColumns::of(&plan);
    let streamed = for_each_prepared(&mut table, &plan, &index, cancel, &mut timings, |p, timings| {
        let rows = process(
            &p,
            &keys,
            &index,
            &options.actions,
            &mut infile,
            &mut counts,
            &mut outputs,
            commit.as_mut(),
            timings,
        )?;
        if let Some(bar) = &progress {
            bar.inc(rows);
        }
        Ok(())
    });
    if let Some(bar) = &progress {
        bar.finish_and_clear();
    }
    let finished = streamed.and_then(|()| outputs.finish());

    let elapsed = started.elapsed();
    let mut summary = Summary {
        import_id,
        name,
        source,
        dry_run: options.dry_run,
        rows_read: counts.group.rows_read,
        rows_failed: counts.group.rows_failed,
        failed_by_reason: counts.failed_by_reason.clone(),
        no_match: counts.categories[Category::NoMatch as usize],
        one_match: counts.categories[Category::OneMatch as usize],
        multiple_match: counts.categories[Category::MultipleMatch as usize],
        imported: counts.group.imported,
        updated: counts.group.updated,
        skipped: counts.group.skipped,
        contacts_updated: 0,
        elapsed_ms: 0,
        rows_per_sec: 0,
        phone_metadata: phone::METADATA_VERSION,
        stages_ms: Default::default(),
    };
    match (finished, commit) {
        (Err(e), Some(commit)) => {
            commit.abort(Ending::of(&e), &e.to_string())?;
            return Err(e);
        }
        (Err(e), None) => return Err(e),
        (Ok(()), Some(commit)) => {
            let commit_started = Instant::now();
            let text = serde_json::to_string(&summary).unwrap_or_default();
            if let Err(e) = commit.finish(&mut counts.group, &text) {
                if let Some(store) = &store {
                    let _ = store.execute_batch("ROLLBACK");
                }
                return Err(end_group(e));
            }
            timings.commit += commit_started.elapsed();
        }
        (Ok(()), None) => {}
    }
    let elapsed = elapsed.max(started.elapsed());
    summary.contacts_updated = counts.group.contacts_updated;
    summary.elapsed_ms = elapsed.as_millis() as u64;
    summary.rows_per_sec = (summary.rows_read as f64 / elapsed.as_secs_f64().max(1e-9)) as u64;
    summary.stages_ms = [
        ("build_index", build_ms),
        ("read", timings.read.as_millis() as u64),
        ("normalize_match", timings.normalize_match.as_millis() as u64),
        ("resolve", timings.resolve.as_millis() as u64),
        ("write", timings.write.as_millis() as u64),
        ("commit", timings.commit.as_millis() as u64),
    ]
    .into_iter()
    .collect();
    summary.write(&out_dir)?;
    Ok(summary)
}

/// In-file resolution only (the first run of `last`/`fail`).
fn resolve_rows(p: &Prepared, keys: &KeyColumns, infile: &mut InFile) {
    let [(ph, pv), (sh, sv)] = keys.arrays(&p.norm);
    let rows = p.norm.batch.column(0).as_primitive::<UInt64Type>();
    for (i, probe) in p.probes.iter().enumerate() {
        infile.resolve(
            rows.value(i),
            matching::key_at(ph, pv, i),
            matching::key_at(sh, sv, i),
            probe.by == Some(MatchedBy::Primary),
        );
    }
}

/// Resolves, writes and commits one prepared batch; returns its rows.
#[allow(clippy::too_many_arguments)]
fn process(
    p: &Prepared,
    keys: &KeyColumns,
    index: &StoreIndex,
    actions: &Actions,
    infile: &mut InFile,
    counts: &mut Counts,
    outputs: &mut Outputs,
    commit: Option<&mut Commit<'_>>,
    timings: &mut Timings,
) -> Result<u64> {
    let started = Instant::now();
    let norm = &p.norm;
    let batch = &norm.batch;
    let [(ph, pv), (sh, sv)] = keys.arrays(norm);
    let rows = batch.column(0).as_primitive::<UInt64Type>();
    let mut categories: [Vec<RowOut>; 3] = Default::default();
    let mut inserts: Vec<u32> = Vec::new();
    let (mut update_rows, mut update_ids): (Vec<u32>, Vec<i64>) = (Vec::new(), Vec::new());
    let mut duplicates: Vec<FailedRow> = Vec::new();
    for (i, probe) in p.probes.iter().enumerate() {
        let row = rows.value(i);
        let primary = matching::key_at(ph, pv, i);
        let secondary = matching::key_at(sh, sv, i);
        match infile.resolve(row, primary, secondary, probe.by == Some(MatchedBy::Primary)) {
            InFileVerdict::Duplicate { first, winner } => {
                let (key, value) = primary
                    .map(|(_, v)| (keys.primary, v))
                    .or(secondary.map(|(_, v)| (keys.secondary, v)))
                    .map_or((None, ""), |(k, v)| (k, v));
                let key = key
                    .map_or("key", |c| batch.schema_ref().field(c).name().as_str())
                    .to_string();
                let detail = match winner {
                    Some(w) if w == first => format!("{key} {value:?} already in row {first}"),
                    Some(w) => format!("{key} {value:?} also in row {w}, which wins (--in-file-duplicates last)"),
                    None => format!("{key} {value:?} shared with row {first} (--in-file-duplicates fail)"),
                };
                duplicates.push(FailedRow {
                    row,
                    reason: Reason::NotUnique,
                    detail,
                    original: Original::RawRow(norm.raw_index(row).unwrap_or_default()),
                });
            }
            InFileVerdict::Keep => {
                let ordinals = &p.matched[probe.start as usize..(probe.start + probe.len) as usize];
                let category = Category::of(ordinals.len());
                let action = actions.action(category);
                let ids: Vec<i64> = ordinals.iter().map(|&o| index.contacts.ids[o as usize]).collect();
                match action {
                    Action::Import => {
                        inserts.push(i as u32);
                        counts.group.imported += 1;
                    }
                    Action::Skip => counts.group.skipped += 1,
                    _ => {
                        for &id in action.targets(&ids) {
                            update_rows.push(i as u32);
                            update_ids.push(id);
                        }
                        counts.group.updated += 1;
                    }
                }
                counts.categories[category as usize] += 1;
                categories[category as usize].push(RowOut {
                    index: i,
                    action,
                    matched_ids: ids,
                    matched_by: probe.by,
                });
            }
        }
    }
    timings.resolve += started.elapsed();

    let started = Instant::now();
    for category in Category::ALL {
        outputs.write_category(category, batch, &categories[category as usize])?;
    }
    let mut failed: Vec<&FailedRow> = norm.failed.iter().chain(&duplicates).collect();
    failed.sort_by_key(|f| f.row);
    for f in &failed {
        outputs.write_failed(f, &norm.original(f))?;
        *counts.failed_by_reason.entry(f.reason.as_str()).or_default() += 1;
    }
    timings.write += started.elapsed();
    let n = (batch.num_rows() + norm.failed.len()) as u64;
    counts.group.rows_read += n;
    counts.group.rows_failed += failed.len() as u64;

    if let Some(commit) = commit {
        let started = Instant::now();
        commit.insert(batch, &inserts)?;
        commit.update(batch, &update_rows, &update_ids)?;
        timings.commit += started.elapsed();
    }
    Ok(n)
}

/// The import name when `--name` is not given: the file's stem.
fn default_name(input: &Input) -> String {
    match input {
        Input::Stdin => "stdin".to_string(),
        Input::Path(path) => path
            .file_stem()
            .map(|s| s.to_string_lossy().into_owned())
            .filter(|s| !s.is_empty())
            .unwrap_or_else(|| "import".to_string()),
    }
}

/// `last`/`fail` read the input twice; standard input is saved to a
/// temporary file first.
fn spool_stdin_if_needed(options: &ImportOptions) -> Result<Option<PathBuf>> {
    if !matches!(options.input, Input::Stdin) || !InFile::needs_stats(options.duplicates) {
        return Ok(None);
    }
    let path = std::env::temp_dir().join(format!("kontakt-stdin-{}.tsv", std::process::id()));
    let mut file = std::fs::File::create(&path).map_err(|e| Error::io(&path, e))?;
    std::io::copy(&mut std::io::stdin().lock(), &mut file).map_err(|e| Error::io(&path, e))?;
    Ok(Some(path))
}

fn progress_bar() -> indicatif::ProgressBar {
    let bar = indicatif::ProgressBar::new_spinner();
    bar.set_style(
        indicatif::ProgressStyle::with_template("{spinner} {elapsed} {human_pos} rows ({per_sec})")
            .unwrap_or_else(|_| indicatif::ProgressStyle::default_spinner()),
    );
    bar.enable_steady_tick(Duration::from_millis(200));
    bar
}
