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
use super::postgres::commit::PostgresImport;
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
    /// Boxed: its feed and views are large beside PostgreSQL's.
    DuckDb(Box<DuckDbImport<'s>>),
    Postgres(PostgresImport<'s>),
}

/// Calls the backend's own method of the same meaning.
macro_rules! staging {
    ($backend:expr, $s:ident => $body:expr) => {
        match $backend {
            Staging::DuckDb($s) => $body,
            Staging::Postgres($s) => $body,
        }
    };
}

impl Store {
    /// Begins an import's transaction: the custom fields among `spec`'s
    /// are created, the id counter is read (see [`StagedImport::first_id`])
    /// and updates can be staged.
    pub fn begin_import(&self, spec: ImportSpec<'_>) -> Result<StagedImport<'_>> {
        let backend = match &self.backend {
            Backend::DuckDb(db) => Staging::DuckDb(Box::new(db.begin_import(spec)?)),
            Backend::Postgres(db) => Staging::Postgres(db.begin_import(spec)?),
        };
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

    /// The interrupts of the connections besides the store's own that the
    /// import runs long statements on until it commits, for a cancel to
    /// interrupt too.
    pub fn interrupts(&self) -> Vec<super::Interrupt> {
        staging!(&self.backend, s => s.interrupts())
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

/// What an import's update sets, as SQL over the stored contact `c` and
/// its staged row `u` (the last one per contact): the same on every
/// backend but for how tags are added.
#[derive(Debug)]
pub(crate) struct UpdateValues {
    /// Each column the update sets, with its new value: the fields, their
    /// key hashes, and `tags` (set to itself when the file gives none: see
    /// the DuckDB backend's `UpdateSql`).
    pub(crate) values: Vec<(String, String)>,
    /// The condition under which a contact changes (`false` without
    /// fields).
    pub(crate) changes: String,
}

impl UpdateValues {
    /// `--master` decides between file and stored values; a consent is
    /// never set to `unknown` over a stored one; tags are only added, by
    /// `tags_added` (given the quoted column).
    pub(crate) fn new(
        fields: &[StoreField],
        hashed: &[usize],
        master: Master,
        tags_added: impl Fn(&str) -> String,
    ) -> UpdateValues {
        use crate::fields::{FieldKind, hash_column};
        let quote = crate::store::sql::quote_ident;
        let value = |f: &StoreField| {
            let q = quote(&f.name);
            match (f.kind, master) {
                (FieldKind::Tags, _) => tags_added(&q),
                (FieldKind::Consent, Master::File) => {
                    format!("CASE WHEN u.{q} IS NULL OR u.{q} = 'unknown' THEN c.{q} ELSE u.{q} END")
                }
                (FieldKind::Consent, Master::Existing) => {
                    format!("CASE WHEN c.{q} = 'unknown' AND u.{q} IS NOT NULL THEN u.{q} ELSE c.{q} END")
                }
                (_, Master::File) => format!("coalesce(u.{q}, c.{q})"),
                (_, Master::Existing) => format!("coalesce(c.{q}, u.{q})"),
            }
        };
        // A key's hash column follows its value column (both null
        // together), so only the fields tell whether a contact changes.
        let hashes = hashed.iter().map(|&i| StoreField {
            name: hash_column(&fields[i].name),
            kind: FieldKind::Text,
            column: None,
        });
        let values: Vec<(String, String)> = fields
            .iter()
            .cloned()
            .chain(hashes)
            .map(|f| (f.name.clone(), value(&f)))
            .chain(
                (!fields.iter().any(|f| f.kind == FieldKind::Tags)).then(|| ("tags".to_string(), "c.tags".to_string())),
            )
            .collect();
        let changes: Vec<String> = fields
            .iter()
            .map(|f| format!("c.{} IS DISTINCT FROM {}", quote(&f.name), value(f)))
            .collect();
        UpdateValues {
            values,
            changes: if changes.is_empty() {
                "false".to_string()
            } else {
                changes.join(" OR ")
            },
        }
    }
}
