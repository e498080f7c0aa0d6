//! Contact lists and their memberships (SPEC, Contact lists and
//! campaigns), as the `lists` commands, `import --list` and the deletes
//! need them: the lists' rows, the ids a lookup is built from (one column
//! scan each), new memberships appended as Arrow batches, staged changes
//! of existing ones applied in one statement.
//!
//! A membership is `(list, contact)` with a status, an agent, a callback
//! time, when it was added and the import that added it. The store keeps
//! no key on it (bulk appends are the hot path): the callers keep
//! `(list, contact)` unique, as [`Store::member_stream`] says.

use std::sync::Arc;
use std::sync::mpsc::Receiver;

use arrow::datatypes::{DataType, Field, Schema, SchemaRef, TimeUnit};
use arrow::record_batch::RecordBatch;
use serde::Serialize;

use super::duckdb::lists::DuckDbMemberStream;
use super::postgres::lists::PostgresMemberStream;
use super::{Backend, Store};
use crate::error::Result;

/// One list as the store records it.
#[derive(Debug, Clone, Serialize, PartialEq, Eq)]
pub struct ListInfo {
    pub id: i64,
    pub name: String,
    pub description: Option<String>,
    /// `YYYY-MM-DDTHH:MM:SSZ`, as `imports list` shows times.
    pub created_at: String,
    /// Members whose contact is stored.
    pub members: i64,
}

/// The columns of the batches [`Store::member_stream`] takes, in order:
/// `list_id` and `contact_id` (Int64), `status` (Utf8), `agent` (Utf8,
/// nullable), `callback_at` and `added_at` (microseconds since the epoch,
/// `added_at` never null), `import_id` (Int64, nullable).
pub fn member_schema() -> SchemaRef {
    let time = DataType::Timestamp(TimeUnit::Microsecond, None);
    Arc::new(Schema::new(vec![
        Field::new("list_id", DataType::Int64, false),
        Field::new("contact_id", DataType::Int64, false),
        Field::new("status", DataType::Utf8, false),
        Field::new("agent", DataType::Utf8, true),
        Field::new("callback_at", time.clone(), true),
        Field::new("added_at", time, false),
        Field::new("import_id", DataType::Int64, true),
    ]))
}

/// The columns of the batches [`Store::stage_member_updates`] takes:
/// `contact_id` (Int64), `row` (UInt64: the file's row; the last one
/// wins), then `status`, `agent` (Utf8) and `callback_at` (microseconds),
/// each null where the row leaves the stored value as it is.
pub fn member_update_schema() -> SchemaRef {
    Arc::new(Schema::new(vec![
        Field::new("contact_id", DataType::Int64, false),
        Field::new("row", DataType::UInt64, false),
        Field::new("status", DataType::Utf8, true),
        Field::new("agent", DataType::Utf8, true),
        Field::new("callback_at", DataType::Timestamp(TimeUnit::Microsecond, None), true),
    ]))
}

impl Store {
    /// Every list, by name, with its member count. A store that has no
    /// lists yet (one older than lists, opened to read) has none.
    pub fn lists(&self) -> Result<Vec<ListInfo>> {
        dispatch!(self, db => db.lists())
    }

    /// The list named `name`, if there is one.
    pub fn list_named(&self, name: &str) -> Result<Option<ListInfo>> {
        dispatch!(self, db => db.list_named(name))
    }

    /// A list's members counted by status (statuses in order).
    pub fn list_statuses(&self, list_id: i64) -> Result<Vec<(String, i64)>> {
        dispatch!(self, db => db.list_statuses(list_id))
    }

    /// Creates a list (the name is free: the caller checked); its id.
    pub fn create_list(&self, name: &str, description: Option<&str>) -> Result<i64> {
        dispatch!(self, db => db.create_list(name, description))
    }

    /// Gives a list another (free) name.
    pub fn rename_list(&self, list_id: i64, new_name: &str) -> Result<()> {
        dispatch!(self, db => db.rename_list(list_id, new_name))
    }

    /// Deletes a list and its memberships (never a contact), in one
    /// transaction; returns the memberships removed.
    pub fn delete_list(&self, list_id: i64) -> Result<u64> {
        dispatch!(self, db => db.delete_list(list_id))
    }

    /// Streams the ids of every stored contact to `each`, a batch at a
    /// time (one scan of the id column).
    pub fn scan_contact_ids(&self, each: impl FnMut(&[i64]) -> Result<()>) -> Result<()> {
        dispatch!(self, db => db.scan_contact_ids(each))
    }

    /// Streams the contact ids of a list's memberships to `each`.
    pub fn scan_list_members(&self, list_id: i64, each: impl FnMut(&[i64]) -> Result<()>) -> Result<()> {
        dispatch!(self, db => db.scan_list_members(list_id, each))
    }

    /// A stream of new memberships ([`member_schema`] batches) from
    /// `batches`, written by [`MemberStream::insert`] inside the
    /// transaction that begins after this call (none may be a membership
    /// already).
    pub fn member_stream(&self, batches: Receiver<RecordBatch>) -> Result<MemberStream<'_>> {
        let backend = match &self.backend {
            Backend::DuckDb(db) => Streaming::DuckDb(db.member_stream(batches)?),
            Backend::Postgres(db) => Streaming::Postgres(db.member_stream(batches)?),
        };
        Ok(MemberStream { backend })
    }

    /// Stages changes of existing memberships of one list
    /// ([`member_update_schema`]) for [`Store::apply_member_updates`].
    pub fn stage_member_updates(&self, batch: RecordBatch) -> Result<()> {
        dispatch!(self, db => db.stage_member_updates(batch))
    }

    /// Applies the staged changes to the memberships of `list_id`: per
    /// contact and column, the value of the last row that gives one.
    /// Returns the memberships changed.
    pub fn apply_member_updates(&self, list_id: i64) -> Result<u64> {
        dispatch!(self, db => db.apply_member_updates(list_id))
    }

    /// Removes the memberships of `contact_ids` from `list_id`; how many
    /// there were.
    pub fn remove_members(&self, list_id: i64, contact_ids: &[i64]) -> Result<u64> {
        dispatch!(self, db => db.remove_members(list_id, contact_ids))
    }

    /// An import's part of `import --list` (inside its transaction): the
    /// contacts it created (ids `created.0..created.1`) and those it
    /// updated go on the list named `list` (created if missing) with
    /// status `new` and the import's id; a membership that exists is kept
    /// as it is. Returns the memberships added.
    pub fn add_import_to_list(&self, list: &str, import_id: i64, created: (i64, i64), updated: &[i64]) -> Result<u64> {
        dispatch!(self, db => db.add_import_to_list(list, import_id, created, updated))
    }
}

/// New memberships on their way into the store (see
/// [`Store::member_stream`]).
pub struct MemberStream<'s> {
    backend: Streaming<'s>,
}

enum Streaming<'s> {
    DuckDb(DuckDbMemberStream<'s>),
    Postgres(PostgresMemberStream<'s>),
}

impl MemberStream<'_> {
    /// Writes every batch the channel gives until its sender is gone;
    /// then (or on an error) the channel is closed, so a sender still
    /// sending learns that nobody reads.
    pub fn insert(&self) -> Result<()> {
        match &self.backend {
            Streaming::DuckDb(s) => s.insert(),
            Streaming::Postgres(s) => s.insert(),
        }
    }
}

impl std::fmt::Debug for MemberStream<'_> {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str("MemberStream")
    }
}
