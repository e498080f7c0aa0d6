//! The stream stage: the file read a few batches at a time, normalized and
//! probed in parallel, resolved in file order ([`apply::resolve_batch`]),
//! and handed to the writer and the commit thread.

use std::sync::mpsc;
use std::time::{Duration, Instant};

use rayon::prelude::*;

use super::{Progress, Run, Timings};
use crate::apply::{self, Actions, CommitJob, CommitSetup, Committed, Counts, Ending, Unique};
use crate::cancel::{self, Cancel};
use crate::error::{Error, Result};
use crate::matching::{InFile, Prepared, StoreIndex};
use crate::normalize::{NormalizedBatch, Plan};
use crate::read::{self, RawBatch};
use crate::write::{self, Outputs, Summary, WriteJob};

/// Batches queued between the resolving thread and the writer or the
/// commit thread.
const QUEUE: usize = 4;

/// Raw batches read and prepared together: two per rayon worker.
pub(super) fn group_size() -> usize {
    (rayon::current_num_threads() * 2).max(2)
}

/// Up to `n` batches of the table; a read error ends them and comes back
/// beside the batches read before it.
pub(super) fn read_group(table: &mut read::Table, n: usize) -> (Vec<RawBatch>, Option<Error>) {
    let mut raws = Vec::with_capacity(n);
    for batch in table.by_ref().take(n) {
        match batch {
            Ok(batch) => raws.push(batch),
            Err(e) => return (raws, Some(e)),
        }
    }
    (raws, None)
}

/// The file's first batches, normalized while the store's index was built,
/// and the read error that ended them, if one did (it comes after them).
#[derive(Default)]
pub(super) struct Ahead {
    pub batches: Vec<NormalizedBatch>,
    pub error: Option<Error>,
}

/// Reads the table a few batches at a time, prepares them in parallel (on
/// `pool`, or rayon's own), and hands them to `each` in file order, after
/// `ahead`. Checks for Ctrl-C between batches.
pub(super) fn for_each_prepared(
    table: &mut read::Table,
    plan: &Plan,
    index: &StoreIndex,
    ahead: Ahead,
    cancel: &Cancel,
    timings: &mut Timings,
    each: impl FnMut(Prepared, &mut Timings) -> Result<()>,
) -> Result<()> {
    prepared_on(None, table, plan, index, ahead, cancel, timings, each)
}

#[allow(clippy::too_many_arguments)]
fn prepared_on(
    pool: Option<&rayon::ThreadPool>,
    table: &mut read::Table,
    plan: &Plan,
    index: &StoreIndex,
    ahead: Ahead,
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
            let mut ahead = Some(ahead);
            loop {
                // The batches normalized ahead first, then group after
                // group of the table's; a read error ends them (the
                // table's batches read before it are not handed on).
                let (prepared, error) = match ahead.take() {
                    Some(Ahead { batches, error }) => {
                        let started = Instant::now();
                        let prepared = on(pool, || batches.into_par_iter().map(|n| index.probe_batch(n)).collect());
                        prepare_time += started.elapsed();
                        (prepared, error)
                    }
                    None => {
                        let started = Instant::now();
                        let (raws, error) = read_group(table, group);
                        if error.is_some() {
                            (Vec::new(), error)
                        } else {
                            read += started.elapsed();
                            if raws.is_empty() {
                                return (read, prepare_time);
                            }
                            let started = Instant::now();
                            let prepared = on(pool, || {
                                raws.par_iter()
                                    .map(|raw| index.probe_batch(plan.normalize(raw)))
                                    .collect()
                            });
                            prepare_time += started.elapsed();
                            (prepared, None)
                        }
                    }
                };
                for p in prepared {
                    if tx.send(Ok(p)).is_err() {
                        return (read, prepare_time);
                    }
                }
                if let Some(e) = error {
                    let _ = tx.send(Err(e));
                    return (read, prepare_time);
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

/// Runs `work` on `pool`, or on rayon's own.
fn on<R: Send>(pool: Option<&rayon::ThreadPool>, work: impl FnOnce() -> R + Send) -> R {
    match pool {
        Some(pool) => pool.install(work),
        None => work(),
    }
}

/// The stream stage of one import.
pub(super) struct Stream<'a> {
    pub table: &'a mut read::Table,
    pub plan: &'a Plan,
    pub index: &'a StoreIndex,
    pub actions: &'a Actions,
    /// The store's `unique` field's values held, and the field's column
    /// in a normalized batch (when it is set and the file gives it).
    pub unique: Option<(Unique, usize)>,
    pub run: &'a Run<'a>,
}

impl Stream<'_> {
    /// Three threads of work: one reads, normalizes and matches (with
    /// rayon) and resolves each batch; one writes the output files; one
    /// appends to the store (with `commit`). Bounded queues keep memory to
    /// a few batches. Fills `summary`'s counts (the commit records them)
    /// and the memory at the stream's end.
    #[allow(clippy::too_many_arguments)]
    pub fn run(
        self,
        ahead: Ahead,
        mut infile: InFile,
        mut outputs: Outputs,
        commit: Option<CommitSetup>,
        counts: &mut Counts,
        summary: &mut Summary,
        memory: &mut Vec<(&'static str, Option<u64>)>,
        timings: &mut Timings,
    ) -> Result<Option<Committed>> {
        let Stream {
            table,
            plan,
            index,
            actions,
            mut unique,
            run,
        } = self;
        let (cancel, progress) = (run.cancel, run.progress);
        let committing = commit.is_some();
        std::thread::scope(|scope| -> Result<Option<Committed>> {
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
            let committer = commit.map(|setup| {
                let (tx, rx) = mpsc::sync_channel::<CommitJob>(QUEUE);
                (tx, scope.spawn(move || apply::run_commit(setup, rx, cancel)))
            });
            let commit_tx = committer.as_ref().map(|(tx, _)| tx.clone());
            // The resolving thread (and the producer it starts, which
            // inherits it) and the workers yield to the commit thread: all
            // of them the import's own, ending with it.
            let pool = committing.then(yielding_pool).flatten();
            cancel::test_stage("stream");
            let resolving = scope.spawn(move || {
                if committing {
                    yield_to_the_store();
                }
                let each = |p, timings: &mut Timings| {
                    let started = Instant::now();
                    let apply::Resolved { write, commit, rows } = apply::resolve_batch(
                        p,
                        ids,
                        actions,
                        plan.set_on(),
                        unique.as_mut().map(|(u, column)| (u, *column)),
                        &mut infile,
                        counts,
                    );
                    timings.resolve += started.elapsed();
                    write_tx.send(write).map_err(|_| Error::Stopped)?;
                    if let Some(tx) = &commit_tx {
                        tx.send(commit).map_err(|_| Error::Stopped)?;
                    }
                    progress.rows(rows);
                    Ok(())
                };
                let streamed = prepared_on(pool.as_ref(), table, plan, index, ahead, cancel, timings, each);
                drop((write_tx, commit_tx));
                (streamed, counts, timings)
            });
            let (streamed, counts, timings) = resolving
                .join()
                .unwrap_or_else(|panic| std::panic::resume_unwind(panic));
            finish(
                progress,
                committing,
                streamed,
                writer.join(),
                committer,
                counts,
                summary,
                memory,
                timings,
            )
        })
    }
}

type Committer<'scope> = (
    mpsc::SyncSender<CommitJob>,
    std::thread::ScopedJoinHandle<'scope, Result<Option<Committed>>>,
);

/// The stream's end: the writer's result, then the commit's (finished
/// with the counts, or aborted with the stream's error).
#[allow(clippy::too_many_arguments)]
fn finish(
    progress: &dyn Progress,
    committing: bool,
    streamed: Result<()>,
    written: std::thread::Result<Result<Duration>>,
    committer: Option<Committer>,
    counts: &Counts,
    summary: &mut Summary,
    memory: &mut Vec<(&'static str, Option<u64>)>,
    timings: &mut Timings,
) -> Result<Option<Committed>> {
    progress.phase(if committing {
        super::Phase::WritingStore
    } else {
        super::Phase::WritingOutputs
    });
    let written = written.unwrap_or(Err(Error::Stopped));
    if let Ok(busy) = &written {
        timings.write = *busy;
    }
    // A stage's own error wins over the `Stopped` it caused elsewhere.
    let streamed = match (streamed, written) {
        (Err(Error::Stopped), Err(e)) | (Ok(()), Err(e)) => Err(e),
        (streamed, _) => streamed,
    };
    memory.push(("stream", write::peak_memory_mib()));
    counts.fill(summary);
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
}

/// Workers of the import's own, as many as rayon's, that yield to the
/// store ([`yield_to_the_store`]) and end with the stream: the process's
/// pool keeps its priority. `None` (rayon's pool, not yielding) if the
/// threads cannot be started.
fn yielding_pool() -> Option<rayon::ThreadPool> {
    rayon::ThreadPoolBuilder::new()
        .num_threads(rayon::current_num_threads())
        .start_handler(|_| yield_to_the_store())
        .build()
        .ok()
}

/// Lowers this thread's scheduling priority (nice +10) for the rest of its
/// life; only threads of the import's own, which end with it, call it. The
/// commit thread (the store's insert) is the one serial stage: whenever it
/// can run it should, and the other stages, which have work queued, fill
/// the cores around it instead of leaving it a long tail of appends at the
/// end (1M x 1M skip, alternating runs: 3.78-3.95 s without, 3.66-3.73 s
/// with, one outlier of 4.32 s). Unprivileged: a thread may always lower
/// its own priority (and never raise it back, hence threads of its own);
/// the others keep theirs. Relative to the thread's nice value, so that a
/// run already started with `nice` keeps the gap and never gains priority.
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

    #[test]
    fn the_yielding_pool_lowers_its_own_workers_and_not_rayons() {
        let before = nice();
        let global: Vec<i32> = rayon::broadcast(|_| nice());
        let pool = yielding_pool().expect("pool");
        let workers: Vec<i32> = pool.broadcast(|_| nice());
        assert!(workers.iter().all(|&n| n == (before + 10).min(19)), "{workers:?}");
        drop(pool);
        assert_eq!(rayon::broadcast(|_| nice()), global);
        assert_eq!(nice(), before);
    }
}
