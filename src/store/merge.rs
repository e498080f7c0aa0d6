//! What a merge needs from the store (see [`crate::audit::merge`]): the
//! audit it merges, the clusters staged, the survivors updated from their
//! clusters, the values that did not survive, the other members kept and
//! deleted, all in the merge's one transaction.

use serde::Serialize;

use super::{Backend, Store};
use crate::apply::Master;
use crate::error::Result;
use crate::fields::{FieldKind, STANDARD_FIELDS};

/// One member of a cluster, as an audit's clusters.csv lists it.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct ClusterMember {
    pub cluster: i64,
    pub contact: i64,
    pub survivor: i64,
}

/// A staged member that no longer matches its audit.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct StaleMember {
    pub contact: i64,
    /// Deleted (else changed) since the audit began.
    pub deleted: bool,
}

/// One value that did not survive a merge in its own field: a row of
/// `merged.csv`.
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
pub struct DroppedValue {
    pub survivor_id: i64,
    /// The survivor itself for its own earlier value (`--master file`).
    pub merged_id: i64,
    pub field: String,
    pub value: String,
    /// The field the value was appended to; empty when only in the file.
    pub kept_in: String,
}

/// The fields whose values can be dropped by a merge, in SPEC order then
/// the custom fields among `columns`: every field but tags (unioned).
pub(crate) fn mergeable_fields(columns: &[String]) -> Vec<String> {
    STANDARD_FIELDS
        .iter()
        .filter(|f| !matches!(f.kind, FieldKind::Tags))
        .map(|f| f.name.to_string())
        .chain(columns.iter().filter(|c| c.starts_with("custom.")).cloned())
        .collect()
}

impl Store {
    /// When audit `audit_id` began (microseconds); `None` when the store
    /// has no such audit.
    pub fn audit_started(&self, audit_id: i64) -> Result<Option<i64>> {
        dispatch!(self, db => db.audit_started(audit_id))
    }

    /// The completed merge group (id, name) that merged audit `audit_id`,
    /// if any (the first).
    pub fn merge_of_audit(&self, audit_id: i64) -> Result<Option<(i64, String)>> {
        dispatch!(self, db => db.merge_of_audit(audit_id))
    }

    /// Stages the clusters' members for the statements that follow.
    pub fn stage_merge(&self, members: &[ClusterMember]) -> Result<()> {
        dispatch!(self, db => db.stage_merge(members))
    }

    /// The first staged member (by contact id) deleted or changed since
    /// `audit_start` (microseconds), if any.
    pub fn first_stale_member(&self, audit_start: i64) -> Result<Option<StaleMember>> {
        dispatch!(self, db => db.first_stale_member(audit_start))
    }

    /// The staged clusters, and the members to merge (not survivors).
    pub fn merge_counts(&self) -> Result<(u64, u64)> {
        dispatch!(self, db => db.merge_counts())
    }

    /// Updates each survivor from its cluster's other members as `master`
    /// says (tags unioned, a consent never upgraded), `updated_at` = `now`,
    /// and notes every value that does not survive in its own field.
    /// Returns the survivors updated.
    pub fn merge_survivors(&self, master: Master, now: i64) -> Result<u64> {
        dispatch!(self, db => db.merge_survivors(master, now))
    }

    /// Appends the dropped values (consents aside) to each survivor's
    /// `field`, one line per contact they came from (`merged from 2:
    /// email=x@y.cz; city=Brno`, `before merge: ...` for the survivor's
    /// own), and marks them kept there.
    pub fn keep_dropped_in(&self, field: &str, now: i64) -> Result<()> {
        dispatch!(self, db => db.keep_dropped_in(field, now))
    }

    /// The values that did not survive, by survivor, then the survivor's
    /// own earlier values, then each merged contact, fields in SPEC order.
    pub fn dropped_values(&self) -> Result<Vec<DroppedValue>> {
        dispatch!(self, db => db.dropped_values())
    }

    /// Keeps each merged member as JSON beside its survivor and merge
    /// `merge_id`, then deletes it; the staging is dropped.
    pub fn delete_merged(&self, merge_id: i64) -> Result<()> {
        dispatch!(self, db => db.delete_merged(merge_id))
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn every_field_but_tags_can_be_dropped_custom_fields_last() {
        let columns = ["id", "email", "custom.shoe_size", "email_hash"].map(String::from);
        let fields = mergeable_fields(&columns);
        assert_eq!(fields.first().map(String::as_str), Some("external_id"));
        assert_eq!(fields.last().map(String::as_str), Some("custom.shoe_size"));
        assert!(!fields.iter().any(|f| f == "tags" || f == "id" || f.ends_with("_hash")));
        assert!(fields.iter().any(|f| f == "email_opt_in"));
    }
}
