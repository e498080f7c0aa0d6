//! What an audit needs from the store (see [`crate::audit`]): the key
//! hashes of the contacts of its scope (or of the universe of a
//! `--since-last` audit), the real values of the candidates, the state the
//! previous audit of the scope left, and the new state and record of this
//! one, all inside the audit's one transaction.

use arrow::array::{Int64Array, ListArray};
use arrow::error::ArrowError;
use arrow::record_batch::RecordBatch;

use super::duckdb::IdBitmap;
use super::{Backend, Store};
use crate::error::Result;
use crate::map::ContactType;

/// The scope of an audit: what it clusters and how.
#[derive(Debug, Clone, Copy)]
pub struct AuditScope<'a> {
    /// The scope's name in the audits' state (`type:keys`).
    pub name: &'a str,
    /// The key fields whose shared values connect contacts.
    pub keys: &'a [&'static str],
    /// `None`: contacts of every type.
    pub contact_type: Option<ContactType>,
    /// Whether the values read come with each contact's count of filled
    /// fields (for the most-complete survivor; it reads every column).
    pub count_filled: bool,
}

/// The latest audit of a scope, as a `--since-last` audit compares with.
#[derive(Debug, Clone, Copy)]
pub struct PreviousAudit {
    pub id: i64,
    /// When it began (microseconds): contacts updated since are changed.
    pub started: i64,
    /// The next contact id and the number of contacts (all types) it saw;
    /// null for audits recorded before schema version 3.
    pub next_contact_id: Option<i64>,
    pub all_contacts: Option<i64>,
}

/// The universe of a `--since-last` audit, held by the store (with the
/// filter that selects it) until [`Store::scan_audit_keys`] reads it.
pub struct AffectedUniverse {
    /// Contacts changed (created or updated) since the previous audit.
    pub changed: u64,
    /// Members of the previous audit's clusters gone from the scope.
    pub deleted: u64,
    pub(super) bitmap: Option<IdBitmap>,
}

impl std::fmt::Debug for AffectedUniverse {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("AffectedUniverse")
            .field("changed", &self.changed)
            .field("deleted", &self.deleted)
            .finish_non_exhaustive()
    }
}

/// The totals and keys of the scope's old clusters that the universe did
/// not touch (they stay as they are).
#[derive(Debug, Default)]
pub struct UntouchedClusters {
    pub clusters: u64,
    pub contacts_in_clusters: u64,
    /// Per key: the values the clusters' members share.
    pub by_key: Vec<u64>,
    /// The clusters' keys (smallest contact ids), sorted.
    pub keys: Vec<i64>,
}

/// A chunk of an audit's clusters as its state records them.
#[derive(Debug)]
pub struct ClusterChunk {
    /// Each member's contact id and its cluster's key (the cluster's
    /// smallest contact id).
    pub contact_ids: Int64Array,
    pub member_clusters: Int64Array,
    /// Per cluster: its key, its size, and per key the values shared.
    pub clusters: Int64Array,
    pub sizes: Int64Array,
    pub shared: ListArray,
}

/// The record of a finished audit.
impl ClusterChunk {
    /// The rows of `audit_members` and of `audit_clusters` this chunk
    /// holds for `scope`, in the tables' column order.
    pub(crate) fn into_batches(self, scope: &str) -> std::result::Result<(RecordBatch, RecordBatch), ArrowError> {
        use std::sync::Arc;

        use arrow::array::{ArrayRef, StringArray};

        let n = self.contact_ids.len();
        let m = self.clusters.len();
        let members = RecordBatch::try_from_iter([
            ("scope", Arc::new(StringArray::from(vec![scope; n])) as ArrayRef),
            ("contact_id", Arc::new(self.contact_ids) as ArrayRef),
            ("cluster", Arc::new(self.member_clusters) as ArrayRef),
        ])?;
        let clusters = RecordBatch::try_from_iter([
            ("scope", Arc::new(StringArray::from(vec![scope; m])) as ArrayRef),
            ("cluster", Arc::new(self.clusters) as ArrayRef),
            ("size", Arc::new(self.sizes) as ArrayRef),
            ("shared", Arc::new(self.shared) as ArrayRef),
        ])?;
        Ok((members, clusters))
    }
}

#[derive(Debug)]
pub struct AuditRecord<'a> {
    pub id: i64,
    pub scope: &'a str,
    pub since_audit: Option<i64>,
    /// When it began and ended (microseconds since the epoch).
    pub started: i64,
    pub finished: i64,
    pub contacts: u64,
    pub clusters: u64,
    pub contacts_in_clusters: u64,
    pub reported_clusters: u64,
    pub out_dir: &'a str,
    /// Its summary.json.
    pub summary: &'a str,
    /// What it saw of the whole store, for the next `--since-last`.
    pub next_contact_id: i64,
    pub all_contacts: i64,
}

impl Store {
    /// A new audit's id.
    pub fn next_audit_id(&self) -> Result<i64> {
        dispatch!(self, db => db.next_audit_id())
    }

    /// The latest audit of a scope (by its name); `None` before the first.
    pub fn latest_audit(&self, scope: &str) -> Result<Option<PreviousAudit>> {
        dispatch!(self, db => db.latest_audit(scope))
    }

    /// Finds the universe of a `--since-last` audit: the contacts of the
    /// scope changed since `previous`, every contact sharing a key value
    /// with one of them, and the whole old clusters of those; also which old
    /// clusters it touched (read by [`Store::old_cluster_members`],
    /// [`Store::untouched_clusters`], replaced by [`Store::save_audit_state`]).
    pub fn find_affected(&self, scope: &AuditScope, previous: &PreviousAudit) -> Result<AffectedUniverse> {
        dispatch!(self, db => db.find_affected(scope, previous))
    }

    /// The contacts of the scope (or of `universe`), one row each: id,
    /// `created_at` (Int64, microseconds), type (UInt8: 0 person, 1 company),
    /// then the hash (UInt64) of each key. With a universe (small), each row
    /// also holds the contact's values as [`Store::fetch_audit_values`]
    /// gives them after its slot.
    pub fn scan_audit_keys(&self, scope: &AuditScope, universe: Option<AffectedUniverse>) -> Result<Vec<RecordBatch>> {
        dispatch!(self, db => db.scan_audit_keys(scope, universe))
    }

    /// The real values of the contacts `ids`, in no particular order: the
    /// contact's slot (UInt32, its position in `ids`), its count of filled
    /// fields (Int64; 0 unless counted), then the value (Utf8) of each key.
    /// A contact gone from the store has no row.
    pub fn fetch_audit_values(
        &self,
        scope: &AuditScope,
        ids: impl IntoIterator<Item = i64>,
    ) -> Result<Vec<RecordBatch>> {
        dispatch!(self, db => db.fetch_audit_values(scope, ids))
    }

    /// The members of the old clusters the universe touched: (contact id,
    /// cluster key) pairs.
    pub fn old_cluster_members(&self, scope: &str) -> Result<Vec<(i64, i64)>> {
        dispatch!(self, db => db.old_cluster_members(scope))
    }

    /// The scope's old clusters that the universe did not touch.
    pub fn untouched_clusters(&self, scope: &AuditScope) -> Result<UntouchedClusters> {
        dispatch!(self, db => db.untouched_clusters(scope))
    }

    /// How many contacts the scope holds.
    pub fn count_audited_contacts(&self, scope: &AuditScope) -> Result<u64> {
        dispatch!(self, db => db.count_audited_contacts(scope))
    }

    /// Replaces the scope's state with `clusters`: all of it after a full
    /// audit, only the touched old clusters after an incremental one.
    pub fn save_audit_state(
        &self,
        scope: &str,
        incremental: bool,
        clusters: impl IntoIterator<Item = ClusterChunk>,
    ) -> Result<()> {
        dispatch!(self, db => db.save_audit_state(scope, incremental, clusters))
    }

    /// Records a finished audit (before the transaction commits).
    pub fn record_audit(&self, record: &AuditRecord) -> Result<()> {
        dispatch!(self, db => db.record_audit(record))
    }
}
