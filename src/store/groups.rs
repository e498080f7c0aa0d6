//! Import groups in the store: the lifecycle of one import's group
//! (`running`, then `completed`, `failed` or `cancelled`, SPEC, Import
//! groups) and the groups' queries (`kontakt imports`).

use std::time::{SystemTime, UNIX_EPOCH};

use serde::Serialize;

use super::{Backend, Store};
use crate::error::{Error, Result};

/// One import group as recorded in the store.
#[derive(Debug, Clone, Serialize)]
pub struct Group {
    pub id: i64,
    pub name: String,
    /// `import`, or `merge` for a `kontakt merge`.
    pub kind: String,
    pub source: Option<String>,
    pub status: String,
    pub reason: Option<String>,
    pub started_at: String,
    pub finished_at: Option<String>,
    pub rows_read: i64,
    pub rows_failed: i64,
    pub imported: i64,
    pub updated: i64,
    pub skipped: i64,
    pub contacts_updated: i64,
    /// Contacts in the store that this import created (now).
    pub contacts: i64,
    /// `--description`, if given.
    pub description: Option<String>,
    /// The compliance items the import acknowledged (`--acknowledge`).
    pub acknowledged: Vec<String>,
    /// The settings the import ran with (source, keys, actions, master,
    /// tags, description, output directory, …), as recorded.
    pub settings: Option<serde_json::Value>,
    /// When `kontakt imports undo` took it back (status `undone`).
    pub undone_at: Option<String>,
}

/// What a new group records beside its name and source.
#[derive(Debug, Clone, Default)]
pub struct GroupInfo {
    pub description: Option<String>,
    pub acknowledged: Vec<String>,
    /// A JSON object.
    pub settings: Option<serde_json::Value>,
}

/// How an import group ended, when it did not complete.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Ending {
    Failed,
    Cancelled,
}

impl Ending {
    /// A cancel (Ctrl-C) or any other error.
    pub fn of(error: &Error) -> Ending {
        if matches!(error, Error::Cancelled(_)) {
            Ending::Cancelled
        } else {
            Ending::Failed
        }
    }

    /// The group's status it records.
    pub(crate) fn status(self) -> &'static str {
        match self {
            Ending::Failed => "failed",
            Ending::Cancelled => "cancelled",
        }
    }
}

/// The counts recorded on the import group.
#[derive(Debug, Clone, Default)]
pub struct GroupCounts {
    pub rows_read: u64,
    pub rows_failed: u64,
    pub imported: u64,
    pub updated: u64,
    pub skipped: u64,
    pub contacts_updated: u64,
}

/// A group as it is recorded when it starts.
pub(crate) struct RunningGroup<'a> {
    pub name: &'a str,
    pub source: &'a str,
    /// Microseconds since the epoch.
    pub started_at: i64,
    pub pid: u32,
    pub host: &'a str,
    pub info: &'a GroupInfo,
}

/// Now, in microseconds since the epoch (UTC), as timestamps are stored.
pub fn now_micros() -> i64 {
    SystemTime::now()
        .duration_since(UNIX_EPOCH)
        .map_or(0, |d| i64::try_from(d.as_micros()).unwrap_or(i64::MAX))
}

/// This machine's host name, recorded with a running group beside the pid
/// (empty when the system will not say).
fn host_name() -> String {
    let mut buf = [0u8; 256];
    // SAFETY: gethostname writes at most `len` bytes into the buffer.
    let ok = unsafe { libc::gethostname(buf.as_mut_ptr().cast(), buf.len()) } == 0;
    let len = buf.iter().position(|&b| b == 0).unwrap_or(buf.len());
    if ok {
        String::from_utf8_lossy(&buf[..len]).into_owned()
    } else {
        String::new()
    }
}

impl Store {
    /// Records a new import group as `running` (at once, outside any
    /// transaction, so it survives a rollback) after checking its name: a
    /// running, completed or undone group of that name is a usage error
    /// (an undone group is the record of what was taken back); a failed or
    /// cancelled one is replaced. Returns the group's id.
    pub fn start_group(&self, name: &str, source: &str, info: &GroupInfo) -> Result<i64> {
        if let Some((id, status)) = dispatch!(self, db => db.group_status(name))? {
            if matches!(status.as_str(), "running" | "completed" | "undone") {
                return Err(Error::usage(format!(
                    "an import named {name:?} already exists (id {id}, {status}); choose another --name"
                )));
            }
            dispatch!(self, db => db.forget_group(id))?;
        }
        let running = RunningGroup {
            name,
            source,
            started_at: now_micros(),
            pid: std::process::id(),
            host: &host_name(),
            info,
        };
        dispatch!(self, db => db.insert_running_group(&running))
    }

    /// Records a new `kontakt merge` as a group of kind `merge`, as
    /// [`Store::start_group`] records an import (its name checked the same
    /// way).
    pub fn start_merge_group(&self, name: &str, source: &str) -> Result<i64> {
        let id = self.start_group(name, source, &GroupInfo::default())?;
        dispatch!(self, db => db.mark_merge_group(id))?;
        Ok(id)
    }

    /// Records a group as `completed` with its counts and summary (inside
    /// the transaction of the work it records, so both commit together).
    pub fn complete_group(&self, id: i64, counts: &GroupCounts, summary: &str) -> Result<()> {
        dispatch!(self, db => db.complete_group(id, counts, summary, now_micros()))
    }

    /// Records a group as failed or cancelled, with the reason (outside any
    /// transaction). Tried twice: a cancel's interrupt that reached the
    /// connection just before it was disarmed fails the next statement once.
    pub fn end_group(&self, id: i64, ending: Ending, reason: &str) -> Result<()> {
        let record = || dispatch!(self, db => db.end_group(id, ending.status(), reason, now_micros()));
        record().or_else(|_| record())
    }

    /// Every group, oldest first. A store opened read-only shows a group
    /// still `running` as the next write will record it: failed,
    /// interrupted (no process can be writing it meanwhile).
    pub fn groups(&self) -> Result<Vec<Group>> {
        dispatch!(self, db => db.groups())
    }

    /// The group of id `id`, if there is one (shown as [`Store::groups`]).
    pub fn group(&self, id: i64) -> Result<Option<Group>> {
        dispatch!(self, db => db.group(id))
    }

    /// The group named `name`, if there is one (shown as [`Store::groups`]).
    pub fn group_named(&self, name: &str) -> Result<Option<Group>> {
        dispatch!(self, db => db.group_named(name))
    }

    /// The id of a group other than `except` that is named `name`.
    pub fn group_name_taken(&self, name: &str, except: i64) -> Result<Option<i64>> {
        dispatch!(self, db => db.group_name_taken(name, except))
    }

    /// Gives group `id` the name `name`.
    pub fn rename_group(&self, id: i64, name: &str) -> Result<()> {
        dispatch!(self, db => db.rename_group(id, name))
    }

    /// Deletes group `id` and every contact it created (not those it only
    /// updated), in one transaction. Returns the number of contacts removed.
    pub fn delete_group(&self, id: i64) -> Result<usize> {
        dispatch!(self, db => db.delete_group(id))
    }
}
