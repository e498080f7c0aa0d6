//! `kontakt import`: the whole pipeline for one file.
//!
//! ```text
//! store ──(semi-join with the file's keys when the store is large)──▶ key index
//! reader thread ──RawBatch──▶ rayon: normalize + probe the store index ──▶
//!   main thread, in file order: in-file duplicates, category, action
//!     ──WriteJob──▶ writer thread: outputs (CSV or Parquet)
//!     ──CommitJob─▶ commit thread: appender, staged updates, one transaction
//! ```
//! Batches are taken a few at a time (two per worker thread), prepared in
//! parallel, then resolved in file order; the queues to the writer and the
//! commit thread are bounded, so memory stays bounded by those batches plus
//! the key index of the store and of the file.

use std::path::PathBuf;
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::mpsc;
use std::time::{Duration, Instant};

use rayon::prelude::*;

use crate::apply::{self, Actions, CommitJob, CommitSetup, Committed, Counts, Ending, Master};
use crate::cancel::{self, Cancel};
use crate::error::{Error, Result};
use crate::map::{self, MappingOptions};
use crate::matching::{self, Duplicates, FileKeys, InFile, Prepared, StoreIndex};
use crate::normalize::{NormalizeSettings, NormalizedBatch, Plan, phone};
use crate::progress::{ImportProgress, Phase};
use crate::read::{self, Input, RawBatch, ReadOptions};
use crate::store::Store;
use crate::write::{self, OutputFormat, Outputs, Summary, WriteJob};

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
    /// CSV row files start with a UTF-8 BOM (`--bom`).
    pub bom: bool,
    pub dry_run: bool,
    pub db: PathBuf,
    /// Show a progress bar on standard error.
    pub progress: bool,
}

/// Raw batches read and prepared together: two per rayon worker.
fn group_size() -> usize {
    (rayon::current_num_threads() * 2).max(2)
}

/// Reads and normalizes the file's first batches while the store's index
/// is built, which normalizing does not need (the build leaves part of
/// the cores idle: at 10M x 10M they were ~75% busy): group after group
/// until `built` is set, or the input held reaches `limit` bytes. A read
/// error ends them and comes last.
fn normalize_ahead(
    table: &mut read::Table,
    plan: &Plan,
    built: &AtomicBool,
    limit: usize,
    cancel: &Cancel,
) -> (Vec<NormalizedBatch>, Option<Error>) {
    let mut normalized = Vec::new();
    let mut bytes = 0;
    while !built.load(Ordering::Relaxed) && bytes < limit {
        if let Err(e) = cancel.check() {
            return (normalized, Some(e));
        }
        let (raws, error) = read_group(table, group_size());
        let last = raws.is_empty() || error.is_some();
        bytes += raws.iter().map(|raw| raw.batch.get_array_memory_size()).sum::<usize>();
        normalized.par_extend(raws.par_iter().map(|raw| plan.normalize(raw)));
        if last {
            return (normalized, error);
        }
    }
    (normalized, None)
}

/// Up to `n` batches of the table; a read error ends them and comes back
/// beside the batches read before it.
fn read_group(table: &mut read::Table, n: usize) -> (Vec<RawBatch>, Option<Error>) {
    let mut raws = Vec::with_capacity(n);
    for batch in table.by_ref().take(n) {
        match batch {
            Ok(batch) => raws.push(batch),
            Err(e) => return (raws, Some(e)),
        }
    }
    (raws, None)
}

/// Input held by [`normalize_ahead`] at most (~1M rows of contacts; their
/// normalized batches take as much again).
const AHEAD_BYTES: usize = 128 << 20;

/// A file this size or smaller, imported into a store large enough for the
/// semi-join, is normalized whole before the index is built (~2M rows of
/// contacts; held with their normalized batches, ~0.5 GB).
const WHOLE_BYTES: u64 = 256 << 20;

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
/// hands them to `each` in file order, after `ahead` (the first batches,
/// already normalized by [`normalize_ahead`]). Checks for Ctrl-C between
/// batches.
fn for_each_prepared(
    table: &mut read::Table,
    plan: &Plan,
    index: &StoreIndex,
    ahead: (Vec<NormalizedBatch>, Option<Error>),
    cancel: &Cancel,
    timings: &mut Timings,
    mut each: impl FnMut(Prepared, &mut Timings) -> Result<()>,
) -> Result<()> {
    let group = group_size();
    // A producer thread reads and prepares the next group while this
    // thread hands the last one on, so the workers do not wait for it.
    std::thread::scope(|scope| {
        let (tx, rx) = mpsc::sync_channel::<Result<Prepared>>(group);
        let producer = scope.spawn(move || {
            let (mut read, mut prepare_time) = (Duration::ZERO, Duration::ZERO);
            let (normalized, error) = ahead;
            let started = Instant::now();
            let prepared: Vec<Prepared> = normalized.into_par_iter().map(|n| index.probe_batch(n)).collect();
            prepare_time += started.elapsed();
            for p in prepared {
                if tx.send(Ok(p)).is_err() {
                    return (read, prepare_time);
                }
            }
            if let Some(e) = error {
                let _ = tx.send(Err(e));
                return (read, prepare_time);
            }
            loop {
                let started = Instant::now();
                let (raws, error) = read_group(table, group);
                if let Some(e) = error {
                    let _ = tx.send(Err(e));
                    return (read, prepare_time);
                }
                read += started.elapsed();
                if raws.is_empty() {
                    return (read, prepare_time);
                }
                let started = Instant::now();
                let prepared: Vec<Prepared> = raws.par_iter().map(|raw| index.probe_batch(plan.normalize(raw))).collect();
                prepare_time += started.elapsed();
                for p in prepared {
                    if tx.send(Ok(p)).is_err() {
                        return (read, prepare_time);
                    }
                }
            }
        });
        let mut handed = || -> Result<()> {
            for p in &rx {
                cancel.check()?;
                each(p?, timings)?;
            }
            Ok(())
        };
        let result = handed();
        // The producer stops at its next send once the receiver is gone.
        drop(rx);
        let (read, prepare_time) = producer.join().unwrap_or_default();
        timings.read += read;
        timings.normalize_match += prepare_time;
        result
    })
}

/// Batches queued between the resolving thread and the writer or the
/// commit thread.
const QUEUE: usize = 4;

/// Runs an import. Usage errors come before anything is read or written.
pub fn run(options: &ImportOptions, cancel: &Cancel) -> Result<Summary> {
    let started = Instant::now();
    let spooled = spool_stdin(options, cancel)?;
    let input = spooled
        .as_ref()
        .map_or(options.input.clone(), |p| Input::Path(p.clone()));
    let result = run_input(options, &input, cancel, started).map_err(|e| cancel.or_cancelled(e));
    if let Some(path) = spooled {
        let _ = std::fs::remove_file(&path);
        // Errors name what the user gave, not the spool file.
        let spool = path.display().to_string();
        return result.map_err(|e| match e {
            Error::Input { path, message } if path == spool => Error::input(&options.input, message),
            e => e,
        });
    }
    result
}

fn run_input(options: &ImportOptions, input: &Input, cancel: &Cancel, started: Instant) -> Result<Summary> {
    let mut table = read::open(input, &options.read)?;
    let mapping =
        map::resolve(&table.columns, &options.mapping).map_err(|e| match (e, table.detected.suggested_skip_rows) {
            // A title above the table was read as the header.
            (Error::Usage(message), Some(n)) => Error::usage(format!(
                "{message}; the file looks like it has {n} title line(s) above the table: try --skip-rows {n}"
            )),
            (e, _) => e,
        })?;
    let plan = Plan::new(&mapping, options.normalize.clone())?;
    let name = match &options.name {
        Some(name) if name.trim().is_empty() => return Err(Error::usage("--name: an import name cannot be empty")),
        Some(name) => name.clone(),
        None => default_name(&options.input),
    };
    let out_dir = options
        .out
        .clone()
        .unwrap_or_else(|| write::default_out_dir(&name, options.dry_run));
    let store = if options.dry_run && !options.db.exists() {
        // Nothing is created; a mistyped --db must not pass unnoticed.
        eprintln!(
            "kontakt: no store at {}: the dry run classifies every row against an empty store",
            options.db.display()
        );
        None
    } else {
        Some(if options.dry_run {
            Store::open_read_only(&options.db)?
        } else {
            Store::open(&options.db)?
        })
    };
    // The name is checked and the group recorded before anything is
    // written, so a taken name leaves an earlier import's outputs alone.
    let source = options.input.to_string();
    let import_id = match &store {
        Some(store) if !options.dry_run => Some(apply::start_group(store, &name, &source)?),
        _ => None,
    };
    let end_group = |e: Error| -> Error {
        let e = cancel.or_cancelled(e);
        if let (Some(store), Some(id)) = (&store, import_id) {
            let _ = apply::end_group(store, id, Ending::of(&e), &e.to_string());
        }
        e
    };
    let contact_type = mapping.contact_type.name();
    let (primary, secondary) = (options.normalize.primary_key, options.normalize.secondary_key);
    let mut timings = Timings::default();
    let progress = options.progress.then(|| ImportProgress::start(table.read_position()));
    let build_started = Instant::now();
    let semi_join = match &store {
        Some(store) => semi_join_pays(store, &table, contact_type).map_err(end_group)?,
        None => false,
    };
    // A small file against a large store is read and normalized whole
    // first: its keys select the contacts to index, and its batches are
    // then only probed (no second pass over the file for its keys).
    let held = (semi_join && normalized_whole(&table)).then(|| {
        let started = Instant::now();
        let held = normalize_ahead(&mut table, &plan, &AtomicBool::new(false), usize::MAX, cancel);
        (held, started.elapsed())
    });
    // Else the file's first batches are read and normalized while the
    // index is built (probing them waits for it).
    let built = AtomicBool::new(false);
    let (index, ahead) = std::thread::scope(|scope| {
        let ahead = held.is_none().then(|| {
            scope.spawn(|| {
                let started = Instant::now();
                (
                    normalize_ahead(&mut table, &plan, &built, AHEAD_BYTES, cancel),
                    started.elapsed(),
                )
            })
        });
        let index = match &store {
            Some(store) => (|| {
                // The build's scans run long on a large store: a cancel
                // interrupts them.
                let _armed = cancel.arm(store.interrupt())?;
                cancel::test_stage("build_index");
                let file_keys = match (&held, semi_join) {
                    (Some(((batches, _), _)), _) => Some(matching::load_file_keys(store, [primary, secondary], |add| {
                        batches.iter().try_for_each(add)
                    })?),
                    (None, true) => Some(read_file_keys(store, input, options, &mapping, cancel)?),
                    (None, false) => None,
                };
                StoreIndex::build(store, contact_type, primary, secondary, file_keys)
            })(),
            None => Ok(StoreIndex::empty(primary, secondary)),
        };
        built.store(true, Ordering::Relaxed);
        let ahead = ahead.map(|ahead| {
            ahead
                .join()
                .unwrap_or_else(|_| ((Vec::new(), Some(Error::Stopped)), Duration::ZERO))
        });
        (index, ahead)
    });
    let ahead = held.or(ahead).unwrap_or_default();
    // Counted with the stage it belongs to (it overlaps the build).
    let (ahead, normalized_ahead) = ahead;
    timings.normalize_match += normalized_ahead;
    let index = index.map_err(end_group)?;
    let build_ms = build_started.elapsed().as_millis() as u64;
    let mut memory = vec![("build_index", write::peak_memory_mib())];

    // `last`/`fail` decide with each key group's size: a first run over the
    // file collects them (the same rows give the same groups the second time).
    let known = if InFile::needs_stats(options.duplicates) {
        let mut first_run = InFile::new(options.duplicates, None);
        let mut again = read::open(input, &options.read).map_err(end_group)?;
        let none = (Vec::new(), None);
        for_each_prepared(
            &mut again,
            &plan,
            &index,
            none,
            cancel,
            &mut Timings::default(),
            |p, _| {
                apply::resolve_in_file(&p, &mut first_run);
                Ok(())
            },
        )
        .map_err(end_group)?;
        Some(first_run.into_stats())
    } else {
        None
    };
    let mut infile = InFile::new(options.duplicates, known);
    if let (Some(bytes), read::Format::Csv) = (table.size, table.detected.format) {
        // Contact rows run 100 to 200 bytes: room for a row per 128 bytes
        // (more would cost memory: the tables are written all over).
        infile.reserve(usize::try_from(bytes / 128).unwrap_or(0).min(1 << 26));
    }

    let normalized_fields: Vec<String> = plan.output_names().map(str::to_string).collect();
    let mut outputs = Outputs::create(
        &out_dir,
        &normalized_fields,
        &table.columns,
        options.output_format,
        options.excel_safe,
        options.bom,
    )
    .map_err(end_group)?;

    let commit_setup = match (&store, import_id) {
        (Some(store), Some(id)) => Some(CommitSetup {
            store: store.try_clone().map_err(end_group)?,
            import_id: id,
            contact_type,
            master: options.master,
            fields: apply::store_fields(&plan.field_names().map(str::to_string).collect::<Vec<_>>(), &mapping.tags),
            tags: mapping.tags.clone(),
        }),
        _ => None,
    };

    if let Some(progress) = &progress {
        progress.phase(Phase::Matching);
    }
    let mut counts = Counts::default();
    let mut summary = Summary {
        import_id,
        name,
        source,
        dry_run: options.dry_run,
        phone_metadata: phone::METADATA_VERSION,
        ..Summary::default()
    };
    // Three threads of work: this one reads, normalizes and matches (with
    // rayon) and resolves each batch; one writes the output files; one
    // appends to the store. Bounded queues keep memory to a few batches.
    let committing = commit_setup.is_some();
    let committed = std::thread::scope(|scope| -> Result<Option<Committed>> {
        let (write_tx, write_rx) = mpsc::sync_channel::<WriteJob>(QUEUE);
        let ids = &index.contacts.ids;
        let writer = scope.spawn(move || -> Result<Duration> {
            if committing {
                yield_to_the_store();
            }
            let mut busy = Duration::ZERO;
            for job in write_rx {
                let started = Instant::now();
                outputs.write_job(&job, ids)?;
                busy += started.elapsed();
            }
            let started = Instant::now();
            outputs.finish()?;
            Ok(busy + started.elapsed())
        });
        let committer = commit_setup.map(|setup| {
            let (tx, rx) = mpsc::sync_channel::<CommitJob>(QUEUE);
            (tx, scope.spawn(move || apply::run_commit(setup, rx, cancel)))
        });
        let commit_tx = committer.as_ref().map(|(tx, _)| tx);
        if committing {
            // This thread (and the producer it starts, which inherits it)
            // and the workers yield to the commit thread.
            yield_to_the_store();
            rayon::broadcast(|_| yield_to_the_store());
        }
        cancel::test_stage("stream");
        let streamed = for_each_prepared(&mut table, &plan, &index, ahead, cancel, &mut timings, |p, timings| {
            let started = Instant::now();
            let apply::Resolved { write, commit, rows } =
                apply::resolve_batch(p, ids, &options.actions, &mut infile, &mut counts);
            timings.resolve += started.elapsed();
            write_tx.send(write).map_err(|_| Error::Stopped)?;
            if let Some(tx) = commit_tx {
                tx.send(commit).map_err(|_| Error::Stopped)?;
            }
            if let Some(bar) = &progress {
                bar.rows(rows);
            }
            Ok(())
        });
        drop(write_tx);
        if let Some(bar) = &progress {
            bar.phase(if committing {
                Phase::WritingStore
            } else {
                Phase::WritingOutputs
            });
        }
        let written = writer.join().unwrap_or(Err(Error::Stopped));
        if let Ok(busy) = &written {
            timings.write = *busy;
        }
        // A stage's own error wins over the `Stopped` it caused elsewhere.
        let streamed = match (streamed, written) {
            (Err(Error::Stopped), Err(e)) | (Ok(()), Err(e)) => Err(e),
            (streamed, _) => streamed,
        };
        memory.push(("stream", write::peak_memory_mib()));
        counts.fill(&mut summary);
        let Some((tx, handle)) = committer else {
            return streamed.map(|()| None);
        };
        let job = match &streamed {
            Ok(()) => CommitJob::Finish {
                counts: counts.group.clone(),
                summary: serde_json::to_string(&summary).unwrap_or_default(),
            },
            Err(e) => CommitJob::Abort {
                ending: Ending::of(e),
                reason: e.to_string(),
            },
        };
        let _ = tx.send(job);
        drop(tx);
        let committed = handle.join().unwrap_or(Err(Error::Stopped));
        match (streamed, committed) {
            (Ok(()), committed) | (Err(Error::Stopped), committed @ Err(_)) => committed,
            (Err(e), _) => Err(e),
        }
    })?;
    if let Some(committed) = committed {
        summary.contacts_updated = committed.contacts_updated;
        timings.commit = committed.busy;
    }
    let elapsed = started.elapsed();
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
    memory.push(("commit", write::peak_memory_mib()));
    summary.peak_memory_mib = memory.into_iter().filter_map(|(k, v)| Some((k, v?))).collect();
    summary.write(&out_dir)?;
    Ok(summary)
}

/// Whether to index only the stored contacts that share a key with the file
/// (see [`file_keys`]): when the store holds more than twice as many
/// contacts of the type as the file has rows (estimated from its size), a
/// first pass over the file's keys costs less than indexing the whole store.
///
/// `KONTAKT_SEMI_JOIN=always|never` overrides the choice (for tests and
/// measurements; the results are the same either way; `reread` is
/// `always` with the keys read in a pass of their own, see
/// [`normalized_whole`]).
fn semi_join_pays(store: &Store, table: &read::Table, contact_type: &str) -> Result<bool> {
    match std::env::var("KONTAKT_SEMI_JOIN").as_deref() {
        Ok("always" | "reread") => return Ok(true),
        Ok("never") => return Ok(false),
        _ => {}
    }
    let (Some(bytes), read::Format::Csv) = (table.size, table.detected.format) else {
        return Ok(false);
    };
    let stored = store.count_contacts_of_type(contact_type)?;
    // Contact rows of generated and real files run 100 to 200 bytes.
    Ok(stored as u64 > 2 * (bytes / 100).max(10_000))
}

/// Whether a file whose keys select the contacts to index is normalized
/// whole first (up to [`WHOLE_BYTES`]), or its keys are read in a pass of
/// their own ([`read_file_keys`]; always with `KONTAKT_SEMI_JOIN=reread`).
fn normalized_whole(table: &read::Table) -> bool {
    std::env::var("KONTAKT_SEMI_JOIN").as_deref() != Ok("reread")
        && table.size.is_some_and(|bytes| bytes <= WHOLE_BYTES)
}

/// A first pass over the file that normalizes only its key fields (and
/// `country`, which phones need) for [`file_keys`].
fn read_file_keys(
    store: &Store,
    input: &Input,
    options: &ImportOptions,
    mapping: &map::Mapping,
    cancel: &Cancel,
) -> Result<FileKeys> {
    let keys = [options.normalize.primary_key, options.normalize.secondary_key];
    let mut key_mapping = mapping.clone();
    key_mapping.columns.retain(|c| {
        let name = c.target.name();
        name == "country" || keys.contains(&Some(name.as_str()))
    });
    let plan = Plan::new(&key_mapping, options.normalize.clone())?;
    let (primary, secondary) = (options.normalize.primary_key, options.normalize.secondary_key);
    let empty = StoreIndex::empty(primary, secondary);
    matching::load_file_keys(store, [primary, secondary], |add| {
        let mut table = read::open(input, &options.read)?;
        let none = (Vec::new(), None);
        for_each_prepared(
            &mut table,
            &plan,
            &empty,
            none,
            cancel,
            &mut Timings::default(),
            |p, _| add(&p.norm),
        )
    })
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

/// Standard input is copied to a temporary file first, by a thread of its
/// own, while this one waits for it or for a cancel: a pipe or a terminal
/// that sends nothing more would otherwise hold a read (and every stage
/// after it) that Ctrl-C cannot end. The import then reads a file, which
/// also gives the progress a size and `last`/`fail` a second pass.
fn spool_stdin(options: &ImportOptions, cancel: &Cancel) -> Result<Option<PathBuf>> {
    if !matches!(options.input, Input::Stdin) {
        return Ok(None);
    }
    let path = std::env::temp_dir().join(format!("kontakt-stdin-{}.tsv", std::process::id()));
    let mut file = std::fs::File::create(&path).map_err(|e| Error::io(&path, e))?;
    let (tx, rx) = mpsc::channel();
    std::thread::spawn(move || {
        let _ = tx.send(std::io::copy(&mut std::io::stdin().lock(), &mut file));
    });
    loop {
        if let Err(e) = cancel.check() {
            let _ = std::fs::remove_file(&path);
            return Err(e);
        }
        match rx.recv_timeout(Duration::from_millis(20)) {
            Ok(copied) => {
                copied.map_err(|e| Error::io(&path, e))?;
                return Ok(Some(path));
            }
            Err(mpsc::RecvTimeoutError::Timeout) => {}
            Err(mpsc::RecvTimeoutError::Disconnected) => return Err(Error::Stopped),
        }
    }
}

/// Lowers this thread's scheduling priority (nice +10) for the rest of the
/// import. The commit thread (DuckDB's appender) is the one serial stage:
/// whenever it can run it should, and the other stages, which have work
/// queued, fill the cores around it instead of leaving it a long tail of
/// appends at the end (1M x 1M skip, alternating runs: 3.78-3.95 s
/// without, 3.66-3.73 s with, one outlier of 4.32 s). Unprivileged: a
/// thread may always lower its own priority; the others keep theirs.
/// Relative to the thread's nice value, so that a run already started with
/// `nice` keeps the gap and never gains priority.
fn yield_to_the_store() {
    #[cfg(target_os = "linux")]
    // SAFETY: getpriority/setpriority on this thread's own id read and
    // change only its nice value.
    unsafe {
        let tid = libc::gettid() as libc::id_t;
        let nice = libc::getpriority(libc::PRIO_PROCESS, tid);
        libc::setpriority(libc::PRIO_PROCESS, tid, (nice + 10).min(19));
    }
}

#[cfg(all(test, target_os = "linux"))]
mod tests {
    use super::*;

    fn nice() -> i32 {
        // SAFETY: reads this thread's own nice value.
        unsafe { libc::getpriority(libc::PRIO_PROCESS, libc::gettid() as libc::id_t) }
    }

    #[test]
    fn yielding_lowers_only_the_calling_thread() {
        let before = nice();
        let after = std::thread::spawn(|| {
            yield_to_the_store();
            nice()
        })
        .join()
        .expect("thread");
        assert_eq!(after, (before + 10).min(19));
        assert_eq!(nice(), before);
    }
}
