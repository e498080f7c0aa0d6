//! `kontakt audit` (SPEC, Audit): clusters of stored contacts that share a
//! normalized key value, connected across keys.
//!
//! ```text
//!  contacts (id, created_at, type, KEY_hash…)   the store's key index
//!     │ one scan, ordinals 0..n
//!     ▼
//!  per key: (hash, ordinal) ──radix + parallel sort──▶ runs of equal hashes
//!     │ union-find over the runs of every key
//!     ▼
//!  candidates ──fetch real values (id bitmap + join)──▶ split any run
//!     │         whose values differ (a hash never joins two contacts alone)
//!     ▼
//!  clusters (ordered by smallest contact id), survivors ──▶ clusters.csv,
//!  summary.json; the clusters become the scope's state (audit_members,
//!  audit_clusters), all in one transaction
//! ```
//!
//! `--since-last` starts from the state of the previous audit of the same
//! scope (keys and type): the contacts changed since it began (by
//! `updated_at`) or gone from the scope, plus the rest of their old
//! clusters, are "affected"; the universe is them, every contact sharing a
//! key value with a changed one (found by the key index in one query), and
//! the whole old clusters of those. Clusters of the universe are then exact
//! (any other contact kept its old cluster, and no value connects it to the
//! universe), so only the universe is clustered, and only the clusters whose
//! members changed are reported.

mod cluster;
mod clusters_csv;
pub mod merge;
mod scan;

use std::collections::{BTreeMap, HashMap};
use std::path::{Path, PathBuf};
use std::time::Instant;

use arrow::array::{Int64Builder, ListBuilder};
use arrow::record_batch::RecordBatch;
use rayon::prelude::*;
use serde::Serialize;

use crate::error::{Error, Result};
use crate::fields::KEY_FIELDS;
use crate::map::ContactType;
use crate::store::Store;
use crate::store::audit::{AffectedUniverse, AuditRecord, AuditScope, ClusterChunk};
use crate::store::groups::now_micros;
use cluster::{Clusters, Pairs, Shared};
use scan::{Fetched, Universe};

/// Which member of a cluster is suggested to survive a merge.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default, clap::ValueEnum)]
pub enum Survivor {
    /// The first created (the smaller id on a tie).
    #[default]
    First,
    /// The last created (the larger id on a tie).
    Last,
    /// The one with the most filled fields (the first created on a tie).
    MostComplete,
}

impl Survivor {
    fn name(self) -> &'static str {
        match self {
            Survivor::First => "first",
            Survivor::Last => "last",
            Survivor::MostComplete => "most-complete",
        }
    }
}

#[derive(Debug, Clone)]
pub struct AuditOptions {
    pub keys: Vec<&'static str>,
    pub contact_type: Option<ContactType>,
    /// Default: `kontakt-out/audit-<id>`.
    pub out: Option<PathBuf>,
    pub survivor: Survivor,
    pub since_last: bool,
}

/// `summary.json` of an audit.
#[derive(Debug, Clone, Serialize, Default)]
pub struct AuditSummary {
    pub audit_id: i64,
    pub keys: Vec<&'static str>,
    /// Null when every type was audited (clusters never span types).
    #[serde(rename = "type")]
    pub contact_type: Option<&'static str>,
    pub survivor: &'static str,
    /// Contacts of the audited type(s) in the store.
    pub contacts: u64,
    /// Clusters in the store (all of them, also with `--since-last`).
    pub clusters: u64,
    pub contacts_in_clusters: u64,
    /// Per key: the distinct values that two or more contacts share.
    pub by_key: BTreeMap<&'static str, u64>,
    /// Clusters written to clusters.csv (all, or the new and changed ones).
    pub reported_clusters: u64,
    /// With `--since-last`: the audit compared against (null for a first
    /// audit of this scope, which reports every cluster as new).
    #[serde(skip_serializing_if = "Option::is_none")]
    pub since_last: Option<SinceLast>,
    pub elapsed_ms: u64,
    pub stages_ms: BTreeMap<&'static str, u64>,
    pub peak_memory_mib: Option<u64>,
}

#[derive(Debug, Clone, Serialize, Default)]
pub struct SinceLast {
    pub since_audit: Option<i64>,
    /// Contacts changed (created or updated) or deleted since that audit.
    pub contacts_changed: u64,
    pub contacts_deleted: u64,
    /// Clusters none of whose members was in a cluster before.
    pub new_clusters: u64,
    /// Clusters whose members differ from their old cluster's.
    pub changed_clusters: u64,
    /// Old clusters none of whose members is in a cluster now.
    pub removed_clusters: u64,
}

/// The scope of an audit's state: its type and keys.
fn scope(options: &AuditOptions) -> String {
    format!(
        "{}:{}",
        options.contact_type.map_or("all", ContactType::name),
        options.keys.join(",")
    )
}

/// Checks `--key` values: key fields, each once, at least one.
pub fn parse_keys(list: &str) -> Result<Vec<&'static str>> {
    let mut keys: Vec<&'static str> = Vec::new();
    for key in list.split(',').map(str::trim) {
        let Some(&field) = KEY_FIELDS.iter().find(|&&f| f == key) else {
            return Err(Error::usage(format!(
                "--key {key:?}: expected {} (comma-separated)",
                KEY_FIELDS.join(", ")
            )));
        };
        if keys.contains(&field) {
            return Err(Error::usage(format!("--key {list}: {field} is given twice")));
        }
        keys.push(field);
    }
    Ok(keys)
}

/// One cluster found: members sorted by contact id.
pub(super) struct Found {
    pub(super) members: Vec<u32>,
    pub(super) survivor: u32,
    /// Per key, the values its members share.
    pub(super) shared: Vec<i64>,
}

/// The clusters of a universe, with the candidates' values and, per key,
/// which ordinals share a value.
struct Clustered {
    found: Vec<Found>,
    fetched: Fetched,
    in_run: Vec<Vec<bool>>,
}

/// Clusters the universe: runs per key, union-find, then the real values of
/// the candidates checked and the clusters made exact.
fn cluster(
    store: &Store,
    scope: &AuditScope,
    rule: Survivor,
    universe: &Universe,
    pairs: Vec<Pairs>,
    scanned: Option<Vec<RecordBatch>>,
    stages: &mut Stages,
) -> Result<Clustered> {
    let n = universe.ids.len();
    let mut shared: Vec<Shared> = pairs.into_par_iter().map(Shared::of).collect();
    let mut uf = Clusters::of(n, &shared);
    // The clustered contacts: those in a run of some key.
    let mut candidates: Vec<u32> = shared.iter().flat_map(|s| s.members.iter().copied()).collect();
    candidates.par_sort_unstable();
    candidates.dedup();
    stages.lap("cluster");
    let fetched = match scanned {
        Some(batches) => Fetched::of_scan(&batches, scope.keys.len()),
        None => scan::fetch(store, universe, scope, &candidates)?,
    };
    stages.lap("fetch");
    let split = shared
        .par_iter_mut()
        .enumerate()
        .map(|(k, shared)| shared.refine(|o| (universe.types[o as usize], fetched.value(o, k))))
        .reduce(|| false, |a, b| a | b);
    if split {
        uf = Clusters::of(n, &shared);
    }
    let (groups, cluster_of) = uf.groups(&universe.ids);
    let mut found: Vec<Found> = (0..groups.len())
        .into_par_iter()
        .map(|c| {
            let members = groups.run(c).to_vec();
            let survivor = survivor(rule, &members, universe, &fetched);
            Found {
                members,
                survivor,
                shared: vec![0; shared.len()],
            }
        })
        .collect();
    let mut in_run: Vec<Vec<bool>> = Vec::with_capacity(shared.len());
    for (k, s) in shared.iter().enumerate() {
        let mut marks = vec![false; n];
        for &o in &s.members {
            marks[o as usize] = true;
        }
        in_run.push(marks);
        for r in 0..s.len() {
            found[cluster_of[s.run(r)[0] as usize] as usize].shared[k] += 1;
        }
    }
    stages.lap("verify");
    Ok(Clustered { found, fetched, in_run })
}

/// The suggested survivor of a cluster.
fn survivor(rule: Survivor, members: &[u32], universe: &Universe, fetched: &Fetched) -> u32 {
    let first = |&o: &u32| (universe.created[o as usize], universe.ids[o as usize]);
    let pick = match rule {
        Survivor::First => members.iter().min_by_key(|o| first(o)),
        Survivor::Last => members.iter().max_by_key(|o| first(o)),
        Survivor::MostComplete => members
            .iter()
            .max_by_key(|o| (fetched.filled(**o), std::cmp::Reverse(first(o)))),
    };
    *pick.expect("a cluster has members")
}

/// Wall time per stage.
struct Stages {
    last: Instant,
    ms: BTreeMap<&'static str, u64>,
}

impl Stages {
    fn lap(&mut self, stage: &'static str) {
        let now = Instant::now();
        *self.ms.entry(stage).or_default() += (now - self.last).as_millis() as u64;
        self.last = now;
    }
}

/// Runs an audit: one transaction reads a consistent snapshot, writes the
/// files and replaces the scope's state.
pub fn run(store: &Store, options: &AuditOptions) -> Result<AuditSummary> {
    let started = Instant::now();
    let audit_id = store.next_audit_id()?;
    let out = options
        .out
        .clone()
        .unwrap_or_else(|| Path::new("kontakt-out").join(format!("audit-{audit_id}")));
    std::fs::create_dir_all(&out).map_err(|e| Error::io(&out, e))?;
    store.begin_snapshot()?;
    let result = audit(store, options, audit_id, &out, started);
    if result.is_err() {
        let _ = store.rollback();
    }
    result
}

/// The audit inside its transaction: the universe scanned and clustered,
/// the clusters to report diffed against the old state, clusters.csv
/// written while the new state is saved, then the audit recorded and its
/// summary.json written.
fn audit(store: &Store, options: &AuditOptions, audit_id: i64, out: &Path, started: Instant) -> Result<AuditSummary> {
    let mut stages = Stages {
        last: started,
        ms: BTreeMap::new(),
    };
    let now = now_micros();
    let name = scope(options);
    let scope = AuditScope {
        name: &name,
        keys: &options.keys,
        contact_type: options.contact_type,
        count_filled: options.survivor == Survivor::MostComplete,
    };
    // What this audit sees of the whole store, for the next --since-last.
    let next_contact_id = store.next_contact_id()?;
    let all_contacts = store.count_all_contacts()?;
    let (mut since, affected) = if options.since_last {
        since_last(store, &scope)?
    } else {
        (None, None)
    };
    let incremental = affected.is_some();
    stages.lap("affected");
    // A --since-last universe is small: its values come with the scan.
    let (universe, pairs, scanned) = scan::scan(store, &scope, affected)?;
    stages.lap("scan");
    let Clustered { found, fetched, in_run } =
        cluster(store, &scope, options.survivor, &universe, pairs, scanned, &mut stages)?;

    // The old clusters of the universe's contacts (with --since-last).
    let report = match since.as_mut() {
        Some(since) => {
            let old = if incremental {
                OldClusters::of(store.old_cluster_members(&name)?)
            } else {
                OldClusters::default()
            };
            changed_clusters(&old, &universe, &found, since)
        }
        None => (0..found.len()).collect(),
    };
    stages.lap("diff");

    let totals = Totals::of(store, &scope, incremental, &universe, &found)?;
    let cluster_id = |c: usize| -> i64 {
        if incremental {
            let key = universe.ids[found[c].members[0] as usize];
            totals.keys.partition_point(|&k| k < key) as i64 + 1
        } else {
            c as i64 + 1
        }
    };
    stages.lap("totals");
    // clusters.csv is written on a thread of its own while the new state of
    // the scope is saved: the universe's clusters replace the old clusters
    // it touched (or, for a full audit, all of them).
    std::thread::scope(|s| {
        let writer = s.spawn(|| {
            clusters_csv::write_clusters(out, options, &universe, &found, &report, &fetched, &in_run, cluster_id)
        });
        let saved = store.save_audit_state(&name, incremental, state_chunks(&universe, &found));
        let written = writer.join().expect("the clusters.csv writer does not panic");
        saved.and(written)
    })?;
    stages.lap("state_and_write");

    let mut summary = AuditSummary {
        audit_id,
        keys: options.keys.clone(),
        contact_type: options.contact_type.map(ContactType::name),
        survivor: options.survivor.name(),
        contacts: totals.contacts,
        clusters: totals.clusters,
        contacts_in_clusters: totals.contacts_in_clusters,
        by_key: options.keys.iter().copied().zip(totals.by_key).collect(),
        reported_clusters: report.len() as u64,
        since_last: since,
        elapsed_ms: 0,
        stages_ms: BTreeMap::new(),
        peak_memory_mib: None,
    };
    summary.elapsed_ms = started.elapsed().as_millis() as u64;
    summary.stages_ms = stages.ms.clone();
    summary.peak_memory_mib = crate::write::peak_memory_mib();
    let text = serde_json::to_string_pretty(&summary).expect("a summary serializes") + "\n";
    store.record_audit(&AuditRecord {
        id: audit_id,
        scope: &name,
        since_audit: summary.since_last.as_ref().and_then(|s| s.since_audit),
        started: now,
        finished: now_micros(),
        contacts: summary.contacts,
        clusters: summary.clusters,
        contacts_in_clusters: summary.contacts_in_clusters,
        reported_clusters: summary.reported_clusters,
        out_dir: &out.display().to_string(),
        summary: &text,
        next_contact_id,
        all_contacts,
    })?;
    let path = out.join("summary.json");
    std::fs::write(&path, &text).map_err(|e| Error::io(&path, e))?;
    store.commit()?;
    Ok(summary)
}

/// With `--since-last`: what is compared with (the latest audit of the
/// scope), and the universe of the contacts affected since (`None` for a
/// first audit of the scope, which clusters the whole scope).
fn since_last(store: &Store, scope: &AuditScope) -> Result<(Option<SinceLast>, Option<AffectedUniverse>)> {
    let mut since = SinceLast::default();
    let Some(previous) = store.latest_audit(scope.name)? else {
        return Ok((Some(since), None));
    };
    // An undo since gave contacts back values (and the times of them) from
    // before the previous audit, which a comparison by time cannot see:
    // the scope is clustered whole, as at a first audit.
    if store.last_undo()?.is_some_and(|undo| undo >= previous.started) {
        return Ok((Some(since), None));
    }
    since.since_audit = Some(previous.id);
    let universe = store.find_affected(scope, &previous)?;
    since.contacts_changed = universe.changed;
    since.contacts_deleted = universe.deleted;
    Ok((Some(since), Some(universe)))
}

/// The previous state's clusters that the universe touched: each member's
/// cluster and each cluster's size.
#[derive(Debug, Default)]
struct OldClusters {
    cluster_of: HashMap<i64, i64>,
    size: HashMap<i64, i64>,
}

impl OldClusters {
    /// From (contact id, cluster) pairs.
    fn of(members: Vec<(i64, i64)>) -> OldClusters {
        let mut old = OldClusters::default();
        for (contact, cluster) in members {
            old.cluster_of.insert(contact, cluster);
            *old.size.entry(cluster).or_default() += 1;
        }
        old
    }
}

/// The clusters to report with `--since-last`: those whose members differ
/// from their old cluster's, counted as new or changed in `since` (and the
/// old clusters that no member continues, as removed).
fn changed_clusters(old: &OldClusters, universe: &Universe, found: &[Found], since: &mut SinceLast) -> Vec<usize> {
    let mut report: Vec<usize> = Vec::new();
    let mut continued: hashbrown::HashSet<i64, foldhash::fast::FixedState> = hashbrown::HashSet::default();
    for (c, f) in found.iter().enumerate() {
        let was: Vec<Option<i64>> = f
            .members
            .iter()
            .map(|&o| old.cluster_of.get(&universe.ids[o as usize]).copied())
            .collect();
        continued.extend(was.iter().flatten());
        let same = was[0].is_some_and(|first| {
            was.iter().all(|w| *w == Some(first)) && old.size.get(&first) == Some(&(f.members.len() as i64))
        });
        if same {
            continue;
        }
        if was.iter().all(Option::is_none) {
            since.new_clusters += 1;
        } else {
            since.changed_clusters += 1;
        }
        report.push(c);
    }
    since.removed_clusters = old.size.keys().filter(|c| !continued.contains(*c)).count() as u64;
    report
}

/// The store's totals after the audit.
#[derive(Debug, Default)]
struct Totals {
    contacts: u64,
    clusters: u64,
    contacts_in_clusters: u64,
    by_key: Vec<u64>,
    /// With `--since-last`: every cluster's key (its smallest contact id,
    /// whose rank is the cluster id), sorted.
    keys: Vec<i64>,
}

impl Totals {
    /// The untouched old clusters of the scope (none for a full audit) and
    /// the universe's.
    fn of(
        store: &Store,
        scope: &AuditScope,
        incremental: bool,
        universe: &Universe,
        found: &[Found],
    ) -> Result<Totals> {
        let mut totals = if incremental {
            let untouched = store.untouched_clusters(scope)?;
            Totals {
                contacts: store.count_audited_contacts(scope)?,
                clusters: untouched.clusters,
                contacts_in_clusters: untouched.contacts_in_clusters,
                by_key: untouched.by_key,
                keys: untouched.keys,
            }
        } else {
            Totals {
                contacts: universe.ids.len() as u64,
                ..Totals::default()
            }
        };
        totals.by_key.resize(scope.keys.len(), 0);
        for f in found {
            totals.clusters += 1;
            totals.contacts_in_clusters += f.members.len() as u64;
            for (sum, &n) in totals.by_key.iter_mut().zip(&f.shared) {
                *sum += n as u64;
            }
        }
        if incremental {
            totals
                .keys
                .extend(found.iter().map(|f| universe.ids[f.members[0] as usize]));
            totals.keys.sort_unstable();
        }
        Ok(totals)
    }
}

/// The universe's clusters as the scope's state records them, a chunk at a
/// time.
fn state_chunks<'a>(universe: &'a Universe, found: &'a [Found]) -> impl Iterator<Item = ClusterChunk> + 'a {
    found.chunks(1 << 14).map(|chunk| {
        let mut contact_ids = Int64Builder::new();
        let mut member_clusters = Int64Builder::new();
        let mut keys = Int64Builder::new();
        let mut sizes = Int64Builder::new();
        let mut shared = ListBuilder::new(Int64Builder::new());
        for f in chunk {
            let key = universe.ids[f.members[0] as usize];
            for &o in &f.members {
                contact_ids.append_value(universe.ids[o as usize]);
                member_clusters.append_value(key);
            }
            keys.append_value(key);
            sizes.append_value(f.members.len() as i64);
            shared.values().append_slice(&f.shared);
            shared.append(true);
        }
        ClusterChunk {
            contact_ids: contact_ids.finish(),
            member_clusters: member_clusters.finish(),
            clusters: keys.finish(),
            sizes: sizes.finish(),
            shared: shared.finish(),
        }
    })
}
