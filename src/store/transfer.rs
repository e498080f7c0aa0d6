//! `kontakt store copy FROM TO`: a whole store moved between backends
//! (a DuckDB file and a PostgreSQL schema, either way), with its ids,
//! import groups, lists, settings and audit state, so a team that outgrows
//! the file keeps everything. Each table's rows pass through kontakt as
//! Arrow batches (binary `COPY` on PostgreSQL, DuckDB's Arrow scan and
//! appender), into TO in one transaction.
//!
//! Undo records stay behind, between stores of one kind too: each backend
//! keeps them in a form of its own (Arrow IPC blobs, rows of row values), so a
//! group copied can be undone in TO only where it changed no stored
//! contact (its created contacts are found by `import_id`); the copy says
//! how many groups that leaves without a record, and `imports undo` says
//! why for each.

use serde::Serialize;

use super::{Backend, Store};
use crate::cancel::Cancel;
use crate::error::{Error, Result};

/// The tables moved, in order (custom fields before the contacts that
/// hold their columns).
const TABLES: [&str; 10] = [
    "kontakt_config",
    "custom_fields",
    "import_groups",
    "contacts",
    "lists",
    "list_members",
    "audits",
    "audit_members",
    "audit_clusters",
    "merged_contacts",
];

/// The tables whose `id` a sequence gives, and the sequence.
const SEQUENCES: [(&str, &str); 3] = [
    ("import_groups", "import_group_id_seq"),
    ("audits", "audit_id_seq"),
    ("lists", "list_id_seq"),
];

/// What a copy moved: rows per table.
#[derive(Debug, Default, Serialize)]
pub struct Copied {
    pub contacts: u64,
    pub import_groups: u64,
    pub lists: u64,
    pub list_members: u64,
    pub audits: u64,
    pub settings: u64,
    /// Groups whose undo records stayed behind: in TO they cannot be
    /// undone where they changed stored contacts.
    pub undo_left_behind: u64,
}

impl Store {
    /// Rows of `table` (columns `columns`) as batches handed to `read`.
    fn read_table<T>(
        &self,
        table: &str,
        columns: &[String],
        read: impl FnOnce(&mut dyn Iterator<Item = Result<arrow::record_batch::RecordBatch>>) -> Result<T>,
    ) -> Result<T> {
        dispatch!(self, db => db.read_table(table, columns, read))
    }

    fn write_table(
        &self,
        table: &str,
        rows: &mut dyn Iterator<Item = Result<arrow::record_batch::RecordBatch>>,
    ) -> Result<u64> {
        dispatch!(self, db => db.write_table(table, rows))
    }

    fn table_columns(&self, table: &str) -> Result<Vec<String>> {
        dispatch!(self, db => db.columns(table))
    }

    /// Rows of one of the store's tables.
    fn count_rows(&self, table: &str) -> Result<i64> {
        dispatch!(self, db => db.count(table))
    }
}

/// Copies store `from` (opened to write: no import runs in it meanwhile)
/// into `to`, a new or empty store, in one transaction of `to`;
/// `cancel` rolls it back.
pub fn copy(from: &Store, to: &Store, cancel: &Cancel) -> Result<Copied> {
    if from.path() == to.path() {
        return Err(Error::usage("store copy: FROM and TO are the same store"));
    }
    let held: Vec<String> = TABLES
        .iter()
        .map(|t| Ok((t, to.count_rows(t)?)))
        .collect::<Result<Vec<_>>>()?
        .into_iter()
        .filter(|(_, n)| *n > 0)
        .map(|(t, n)| format!("{n} {t}"))
        .collect();
    if !held.is_empty() {
        return Err(Error::usage(format!(
            "store copy: {} already holds data ({}); it copies only into a new or empty store",
            to.path().display(),
            held.join(", ")
        )));
    }
    let _from_armed = cancel.arm(from.interrupt())?;
    let armed = cancel.arm(to.interrupt())?;
    to.begin()?;
    let copied = (|| {
        let mut copied = Copied::default();
        for table in TABLES {
            crate::cancel::test_stage("copy_table");
            cancel.check()?;
            let columns = from.table_columns(table)?;
            if table == "contacts" {
                let custom: Vec<&str> = columns
                    .iter()
                    .map(String::as_str)
                    .filter(|c| c.starts_with("custom."))
                    .collect();
                match &to.backend {
                    Backend::DuckDb(db) => db.add_custom_columns(custom)?,
                    Backend::Postgres(db) => db.add_custom_columns(custom)?,
                }
            }
            let n = from.read_table(table, &columns, |rows| {
                let mut checked = rows.map(|batch| {
                    cancel.check()?;
                    batch
                });
                to.write_table(table, &mut checked)
            })?;
            match table {
                "contacts" => copied.contacts = n,
                "import_groups" => copied.import_groups = n,
                "lists" => copied.lists = n,
                "list_members" => copied.list_members = n,
                "audits" => copied.audits = n,
                "kontakt_config" => copied.settings = n,
                _ => {}
            }
        }
        for (table, sequence) in SEQUENCES {
            dispatch!(to, db => db.advance_sequence(sequence, table))?;
        }
        if let Backend::Postgres(db) = &to.backend {
            // Statistics for the planner now, not when autovacuum comes
            // by: an import's plans into a fresh copy depend on them.
            db.batch("ANALYZE contacts, list_members")?;
        }
        copied.undo_left_behind = dispatch!(from, db => db.undo_groups())?;
        let next = dispatch!(from, db => db.next_contact_id())?;
        dispatch!(to, db => db.set_next_contact_id(next))?;
        crate::cancel::test_stage("copy_commit");
        armed.disarm_to_commit()?;
        to.commit()?;
        Ok(copied)
    })();
    copied.map_err(|e| {
        let e = cancel.or_cancelled(e);
        let _ = to.rollback_after_failure();
        e
    })
}
