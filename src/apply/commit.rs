//! Commit: one store transaction per import.
//!
//! The import group is recorded as `running` first, on its own (so it
//! survives a rollback), then one transaction holds everything else: the
//! new contacts stream into the store as the commit thread receives them,
//! updates are staged and applied at the end, then the id counter and the
//! group's final counts are written, then the commit. A failure or a
//! cancel rolls all of it back and records the group as `failed` or
//! `cancelled` with the reason.

use std::sync::mpsc::Receiver;
use std::sync::{Arc, Mutex, MutexGuard, PoisonError};
use std::time::{Duration, Instant};

use arrow::error::ArrowError;
use arrow::record_batch::RecordBatch;

use super::actions::Master;
use super::rows::{Rows, StoreField};
use crate::cancel::{Armed, Cancel};
use crate::error::{Error, Result};
use crate::lists::lookup::IdSet;
use crate::store::Store;
use crate::store::commit::{RowSource, StagedImport, StagedRows};
use crate::store::groups::now_micros;
pub use crate::store::groups::{Ending, GroupCounts};

/// How the jobs sent to the commit thread ended.
#[derive(Debug)]
pub(crate) enum End {
    Finish {
        counts: GroupCounts,
        summary: String,
    },
    Abort {
        ending: Ending,
        reason: String,
    },
    /// The sender went away without either.
    Closed,
}

/// The rows being built, shared by the commit thread and the store's scan
/// (which pulls them from the import's channel).
struct Building {
    rows: Rows,
    /// How the channel ended, once it did.
    end: Option<End>,
    /// Time spent waiting for the import's next job.
    waited: Duration,
    /// With `import --list`: the contacts the import updates.
    list_updates: Option<IdSet>,
}

impl Building {
    /// Notes the contacts a batch updates, for `import --list`.
    fn note_updated(&mut self, contact_ids: &[i64]) {
        if let Some(updated) = self.list_updates.as_mut() {
            for &id in contact_ids {
                updated.insert(id);
            }
        }
    }
}

type Shared = Arc<Mutex<Building>>;

fn lock(building: &Shared) -> MutexGuard<'_, Building> {
    building.lock().unwrap_or_else(PoisonError::into_inner)
}

/// The import's channel as the store pulls it: each `Rows` job becomes the
/// store's rows; `Finish`, `Abort` or the sender going away end it.
struct Jobs {
    jobs: Receiver<CommitJob>,
    building: Shared,
}

impl RowSource for Jobs {
    fn next_rows(&mut self) -> Option<std::result::Result<StagedRows, ArrowError>> {
        let started = Instant::now();
        let job = self.jobs.recv();
        let mut building = lock(&self.building);
        building.waited += started.elapsed();
        let end = match job {
            Ok(CommitJob::Rows {
                batch,
                inserts,
                update_rows,
                update_ids,
            }) => {
                building.note_updated(&update_ids);
                return Some(building.rows.staged(&batch, &inserts, &update_rows, &update_ids));
            }
            Ok(CommitJob::Finish { counts, summary }) => End::Finish { counts, summary },
            Ok(CommitJob::Abort { ending, reason }) => End::Abort { ending, reason },
            Err(_) => End::Closed,
        };
        building.end = Some(end);
        None
    }
}

/// An import's open transaction (or, without an import group, the
/// transaction of `contacts add`).
pub struct Commit<'s> {
    store: &'s Store,
    import_id: Option<i64>,
    /// The cancel this commit answers to, and its connection armed for it
    /// (see [`Commit::watch`]).
    cancel: Option<&'s Cancel>,
    armed: Option<Armed<'s>>,
    /// The import's other connections, armed alike (the undo record's on
    /// PostgreSQL), disarmed with it. Declared before `staged`: when the
    /// commit is dropped on an error, these guards go first, so the
    /// record's clean-up in the staged import's drop is not interrupted.
    others_armed: Vec<Armed<'s>>,
    building: Shared,
    staged: StagedImport<'s>,
    /// `import --list`: the list the created and updated contacts go on.
    list: Option<String>,
}

impl<'s> Commit<'s> {
    /// Begins the transaction: custom fields are created on demand, the id
    /// counter read, updates can be staged.
    pub fn begin(
        store: &'s Store,
        import_id: Option<i64>,
        contact_type: &'static str,
        master: Master,
        fields: Vec<StoreField>,
        tags: Vec<String>,
    ) -> Result<Commit<'s>> {
        let mut rows = Rows::new(import_id, now_micros(), contact_type, fields, tags);
        let staged = store.begin_import(rows.spec(master))?;
        rows.start_at(staged.first_id());
        Ok(Commit {
            store,
            import_id,
            cancel: None,
            armed: None,
            others_armed: Vec::new(),
            building: Arc::new(Mutex::new(Building {
                rows,
                end: None,
                waited: Duration::ZERO,
                list_updates: None,
            })),
            staged,
            list: None,
        })
    }

    fn building(&self) -> MutexGuard<'_, Building> {
        lock(&self.building)
    }

    /// Answers to `cancel` from now on: its statements are interrupted by
    /// a request, it checks for one between them, and it commits only if
    /// none came before the connection was disarmed for the commit.
    pub fn watch(&mut self, cancel: &'s Cancel) -> Result<()> {
        self.armed = Some(cancel.arm(self.store.interrupt())?);
        for interrupt in self.staged.interrupts() {
            self.others_armed.push(cancel.arm(interrupt)?);
        }
        self.cancel = Some(cancel);
        Ok(())
    }

    /// Puts the contacts this import creates and updates on the list
    /// `name` when it finishes (`import --list`; see [`Commit::fill_list`]).
    pub fn put_on_list(&mut self, name: String) {
        self.building().list_updates = Some(IdSet::default());
        self.list = Some(name);
    }

    /// `import --list`, inside the import's transaction once its updates
    /// are applied: the contacts it created (the ids from the first one
    /// on) and those it staged updates for go on the list, with the
    /// import's id; existing memberships stay as they are.
    fn fill_list(&self) -> Result<()> {
        let (Some(list), Some(import_id)) = (&self.list, self.import_id) else {
            return Ok(());
        };
        let (created, updated) = {
            let building = self.building();
            let updated: Vec<i64> = building.list_updates.iter().flat_map(IdSet::ids).collect();
            ((building.rows.first_id, building.rows.next_id), updated)
        };
        crate::cancel::test_stage("commit_list");
        self.store.add_import_to_list(list, import_id, created, &updated)?;
        Ok(())
    }

    /// `Err(Cancelled)` once a cancel came.
    fn check(&self) -> Result<()> {
        self.cancel.map_or(Ok(()), Cancel::check)
    }

    /// The id of the first contact this transaction inserts.
    pub fn first_id(&self) -> i64 {
        self.building().rows.first_id
    }

    /// Contacts inserted so far.
    pub fn inserted(&self) -> i64 {
        let building = self.building();
        building.rows.next_id - building.rows.first_id
    }

    /// Inserts the rows `indices` of a normalized batch as new contacts.
    pub fn insert(&mut self, batch: &RecordBatch, indices: &[u32]) -> Result<()> {
        let rows = self.building().rows.staged(batch, indices, &[], &[]);
        self.staged.push(rows)
    }

    /// Stages updates: row `indices[k]` of a normalized batch updates the
    /// stored contact `contact_ids[k]`.
    pub fn update(&mut self, batch: &RecordBatch, indices: &[u32], contact_ids: &[i64]) -> Result<()> {
        let rows = {
            let mut building = self.building();
            building.note_updated(contact_ids);
            building.rows.staged(batch, &[], indices, contact_ids)
        };
        self.staged.push(rows)
    }

    /// Inserts and stages everything `jobs` sends, until it sends `Finish`
    /// or `Abort` or goes away. Returns how it ended and the time spent
    /// waiting for jobs.
    pub(crate) fn stream(&mut self, jobs: Receiver<CommitJob>) -> Result<(End, Duration)> {
        self.staged.stream(Box::new(Jobs {
            jobs,
            building: self.building.clone(),
        }))?;
        let mut building = self.building();
        Ok((building.end.take().unwrap_or(End::Closed), building.waited))
    }

    /// Applies the staged updates, records the counts and commits.
    /// Sets `counts.contacts_updated` to the stored contacts updated.
    pub fn finish(mut self, counts: &mut GroupCounts, summary: &str) -> Result<()> {
        crate::cancel::test_stage("commit_flush");
        self.staged.flush()?;
        self.check()?;
        let staged = self.staged.staged_updates()?;
        let (now, next_id) = {
            let building = self.building();
            (building.rows.now, building.rows.next_id)
        };
        // Only the contacts whose values the update changes are written
        // and counted (SPEC: `contacts_updated` counts the stored contacts
        // changed), so re-importing an unchanged export changes nothing,
        // not even `updated_at`.
        counts.contacts_updated = 0;
        if staged > 0 {
            self.check()?;
            crate::cancel::test_stage("commit_update");
            counts.contacts_updated = self.staged.apply_updates(now)?;
        }
        self.check()?;
        self.fill_list()?;
        self.check()?;
        self.staged.end_staging(next_id)?;
        if let Some(import_id) = self.import_id {
            self.store.complete_group(import_id, counts, summary)?;
            crate::cancel::test_stage("commit");
        }
        self.disarm_to_commit()?;
        self.staged.commit()
    }

    /// The last moment a cancel rolls the import back: after this, the
    /// commit runs uninterrupted.
    fn disarm_to_commit(&mut self) -> Result<()> {
        self.others_armed.clear();
        self.armed.take().map_or(Ok(()), Armed::disarm_to_commit)
    }

    /// Rolls everything back and records how the group ended.
    pub fn abort(mut self, ending: Ending, reason: &str) -> Result<()> {
        let store = self.store;
        // Disarms the connections (their guards go with them), so that
        // the rollback and the record's clean-up are not interrupted.
        self.others_armed.clear();
        drop(self.armed.take());
        let rollback = self.staged.roll_back();
        if let Some(import_id) = self.import_id {
            store.end_group(import_id, ending, reason)?;
        }
        rollback
    }
}

/// What the commit thread is sent.
#[derive(Debug)]
pub enum CommitJob {
    /// Rows of one normalized batch: `inserts` become new contacts; row
    /// `update_rows[k]` updates the stored contact `update_ids[k]`.
    Rows {
        batch: RecordBatch,
        inserts: Vec<u32>,
        update_rows: Vec<u32>,
        update_ids: Vec<i64>,
    },
    /// Everything was sent: apply the updates, record the counts, commit.
    Finish { counts: GroupCounts, summary: String },
    /// The import failed or was cancelled elsewhere: roll back.
    Abort { ending: Ending, reason: String },
}

/// What the commit thread needs to begin: its own connection to the store
/// (a store transaction belongs to one connection) and the import's fields.
#[derive(Debug)]
pub struct CommitSetup {
    pub store: Store,
    pub import_id: i64,
    pub contact_type: &'static str,
    pub master: Master,
    pub fields: Vec<StoreField>,
    pub tags: Vec<String>,
    /// `import --list NAME`.
    pub list: Option<String>,
}

/// A committed import: contacts updated, and the time the thread worked.
#[derive(Debug, Clone, Copy)]
pub struct Committed {
    pub contacts_updated: u64,
    pub busy: Duration,
}

/// The commit thread: begins the transaction, appends what it is sent, and
/// commits on `Finish`. On `Abort`, on its own error, or when the sender
/// goes away without `Finish`, it rolls back and records the group as
/// failed or cancelled. Returns `None` when it rolled back on request.
pub fn run_commit(setup: CommitSetup, jobs: Receiver<CommitJob>, cancel: &Cancel) -> Result<Option<Committed>> {
    let store = &setup.store;
    let fail = |e: Error| -> Error {
        let e = cancel.or_cancelled(e);
        let _ = store.rollback_after_failure();
        let _ = store.end_group(setup.import_id, Ending::of(&e), &e.to_string());
        e
    };
    let mut commit = Commit::begin(
        store,
        Some(setup.import_id),
        setup.contact_type,
        setup.master,
        setup.fields,
        setup.tags,
    )
    .map_err(fail)?;
    if let Some(list) = setup.list {
        commit.put_on_list(list);
    }
    if let Err(e) = commit.watch(cancel) {
        drop(commit);
        return Err(fail(e));
    }
    let started = Instant::now();
    let (end, waited) = match commit.stream(jobs) {
        Ok(ended) => ended,
        Err(e) => {
            let e = cancel.or_cancelled(e);
            commit.abort(Ending::of(&e), &e.to_string())?;
            return Err(e);
        }
    };
    match end {
        End::Finish { mut counts, summary } => {
            commit.finish(&mut counts, &summary).map_err(fail)?;
            Ok(Some(Committed {
                contacts_updated: counts.contacts_updated,
                busy: started.elapsed().saturating_sub(waited),
            }))
        }
        End::Abort { ending, reason } => {
            commit.abort(ending, &reason)?;
            Ok(None)
        }
        End::Closed => {
            commit.abort(Ending::Failed, "the import stopped before it finished")?;
            Ok(None)
        }
    }
}
