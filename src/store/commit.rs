//! An import's writes: one transaction of the store that takes a stream of
//! new contacts, stages updates and applies them at the end, with the id
//! counter and the custom columns the import needs.
//!
//! The pipeline builds the store's rows ([`crate::apply`]); the store pulls
//! them from a [`RowSource`] as it writes (on its own threads), so a whole
//! import streams into the store without being held in memory.

use arrow::datatypes::SchemaRef;
use arrow::error::ArrowError;
use arrow::record_batch::RecordBatch;

use super::duckdb::commit::DuckDbImport;
use super::{Backend, Store};
use crate::apply::{Master, StoreField};
use crate::error::Result;

/// What an import writes: its fields, which of them are keys (each also
/// writes its hash column), whose values win on update, and the columns of
/// the rows it sends (see [`crate::apply`]'s row building).
#[derive(Debug, Clone, Copy)]
pub struct ImportSpec<'a> {
    pub fields: &'a [StoreField],
    /// Positions in `fields` of the key fields.
    pub hashed: &'a [usize],
    pub master: Master,
    /// The import group whose undo record keeps the earlier values of the
    /// contacts this import changes (none for `contacts add`).
    pub undo_of: Option<i64>,
    /// New contacts: id, type, created_at, updated_at, import_id, the
    /// fields, the hash columns.
    pub insert_schema: &'a SchemaRef,
    /// Updates: contact_id, row (the file's, the last one wins), the
    /// fields, the hash columns.
    pub update_schema: &'a SchemaRef,
}

/// Rows of one batch as the store takes them: new contacts, updates to
/// stage (either may be absent).
#[derive(Debug, Default)]
pub struct StagedRows {
    pub inserts: Option<RecordBatch>,
    pub updates: Option<RecordBatch>,
}

/// Where an import's rows come from while the store writes them: called on
/// one of the store's threads, one call at a time.
pub trait RowSource: Send {
    /// The next rows; `None` once there are no more. An error ends the
    /// stream and fails it.
    fn next_rows(&mut self) -> Option<std::result::Result<StagedRows, ArrowError>>;
}

/// An import's open transaction (see [`Store::begin_import`]).
pub struct StagedImport<'s> {
    backend: Staging<'s>,
}

enum Staging<'s> {
    DuckDb(DuckDbImport<'s>),
}

/// Calls the backend's own method of the same meaning.
macro_rules! staging {
    ($backend:expr, $s:ident => $body:expr) => {
        match $backend {
            Staging::DuckDb($s) => $body,
        }
    };
}

impl Store {
    /// Begins an import's transaction: the custom fields among `spec`'s
    /// are created, the id counter is read (see [`StagedImport::first_id`])
    /// and updates can be staged.
    pub fn begin_import(&self, spec: ImportSpec<'_>) -> Result<StagedImport<'_>> {
        let backend = dispatch!(self, db => Staging::DuckDb(db.begin_import(spec)?));
        Ok(StagedImport { backend })
    }

    /// The id the next new contact gets (ids are never reused).
    pub fn next_contact_id(&self) -> Result<i64> {
        dispatch!(self, db => db.next_contact_id())
    }

    /// Creates the `custom.NAME` columns among `names` that the contacts
    /// lack, recording each custom field (inside the caller's transaction).
    pub fn add_custom_columns<'a>(&self, names: impl IntoIterator<Item = &'a str>) -> Result<()> {
        dispatch!(self, db => db.add_custom_columns(names))
    }
}

impl StagedImport<'_> {
    /// The id of the first contact this transaction inserts: new contacts
    /// take the ids from here on, in the order they are sent.
    pub fn first_id(&self) -> i64 {
        staging!(&self.backend, s => s.first_id())
    }

    /// Queues rows to be written by the next flush; an error building them
    /// is the store's error.
    pub fn push(&self, rows: std::result::Result<StagedRows, ArrowError>) -> Result<()> {
        staging!(&self.backend, s => s.push(rows))
    }

    /// Writes everything `source` gives until it has no more (new
    /// contacts to the store, updates staged for the end).
    pub fn stream(&mut self, source: Box<dyn RowSource>) -> Result<()> {
        staging!(&mut self.backend, s => s.stream(source))
    }

    /// Writes the queued rows.
    pub fn flush(&mut self) -> Result<()> {
        staging!(&mut self.backend, s => s.flush())
    }

    /// Updates staged so far (rows, not contacts).
    pub fn staged_updates(&self) -> Result<i64> {
        staging!(&self.backend, s => s.staged_updates())
    }

    /// Applies the staged updates at time `now`: the last staged row per
    /// contact wins, `--master` decides between file and stored values,
    /// tags are only added. Returns the contacts changed (a contact the
    /// update leaves as it was is neither written nor counted).
    pub fn apply_updates(&self, now: i64) -> Result<u64> {
        staging!(&self.backend, s => s.apply_updates(now))
    }

    /// Ends the staging and records `next_id` as the id the next new
    /// contact gets.
    pub fn end_staging(&self, next_id: i64) -> Result<()> {
        staging!(&self.backend, s => s.end_staging(next_id))
    }

    /// Commits the transaction.
    pub fn commit(self) -> Result<()> {
        staging!(self.backend, s => s.commit())
    }

    /// Rolls the transaction back (tried twice, as [`Store::end_group`]).
    pub fn roll_back(self) -> Result<()> {
        staging!(self.backend, s => s.roll_back())
    }
}

impl std::fmt::Debug for StagedImport<'_> {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str("StagedImport")
    }
}
