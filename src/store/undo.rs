//! What `kontakt imports undo` needs of the store: the scope of an undo
//! (what it would take back, and what changed since) and the undo itself,
//! inside the caller's transaction. Each backend keeps, per import or
//! merge that changed stored contacts, the earlier values of the columns
//! it changed (and a merge's merged-away contacts whole); an import that
//! changed none keeps nothing.

use super::{Backend, Store};
use crate::error::Result;

/// Test and benchmark hook: with `KONTAKT_TEST_NO_UNDO=1` an import or
/// merge keeps no undo record (to measure what keeping one costs).
pub(crate) fn off() -> bool {
    std::env::var("KONTAKT_TEST_NO_UNDO").as_deref() == Ok("1")
}

/// The temporary table of the contacts an undo's group touched that
/// changed (or were deleted) since, which each backend's scope makes.
pub(crate) const CHANGED: &str = "kontakt_undo_changed";

/// How many contacts a scope lists by id in its error.
pub(crate) const FIRST_IDS: usize = 5;

/// The `SET` item that gives column `column` of `contacts AS c` back its
/// `restored` value (SQL). A forced undo never takes back an opt-out given
/// since: messaging a contact who has since opted out is the one change an
/// undo must not make.
pub(crate) fn restore_assignment(column: &str, restored: &str) -> String {
    let q = super::sql::quote_ident(column);
    if crate::fields::standard_field(column).is_some_and(|f| f.kind == crate::fields::FieldKind::Consent) {
        format!(
            "{q} = CASE WHEN c.{q} = 'opt-out' AND c.id IN (SELECT id FROM {CHANGED}) THEN c.{q} ELSE {restored} END"
        )
    } else {
        format!("{q} = {restored}")
    }
}

/// What undoing one group would do.
#[derive(Debug, Clone, Default, serde::Serialize)]
pub struct UndoScope {
    /// The group kept an undo record (an import that changed no stored
    /// contact, or one from before undo existed, has none).
    #[serde(skip)]
    pub recorded: bool,
    /// Contacts it created, to delete.
    pub created: u64,
    /// Contacts it changed, to give their earlier values back.
    pub restored: u64,
    /// Contacts a merge merged away, to bring back.
    pub reinserted: u64,
    /// List memberships it added (or of contacts it created), to remove.
    pub memberships: u64,
    /// Contacts it touched that changed (or were deleted) after it.
    pub changed_later: u64,
    /// The first of those, by id.
    #[serde(skip_serializing_if = "Vec::is_empty")]
    pub first_changed: Vec<i64>,
    /// Custom fields the import created that no other contact holds a
    /// value of: their columns go with it.
    #[serde(skip_serializing_if = "Vec::is_empty")]
    pub custom_fields: Vec<String>,
}

impl Store {
    /// What undoing group `group` would do.
    pub fn undo_scope(&self, group: i64) -> Result<UndoScope> {
        dispatch!(self, db => db.undo_scope(group))
    }

    /// Undoes group `group` at time `now` (microseconds) inside the
    /// caller's transaction, as [`Self::undo_scope`] found it (`scope`),
    /// and marks it `undone`.
    pub fn undo_group(&self, group: i64, now: i64, scope: &UndoScope) -> Result<()> {
        dispatch!(self, db => db.undo_group(group, now, scope))
    }

    /// When the store's last undo ran (microseconds), if one did: an
    /// audit from before it does not describe the contacts it restored.
    pub fn last_undo(&self) -> Result<Option<i64>> {
        dispatch!(self, db => db.last_undo())
    }
}
