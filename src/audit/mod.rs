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
pub mod merge;

use std::collections::{BTreeMap, HashMap};
use std::io::Write;
use std::path::{Path, PathBuf};
use std::sync::Arc;
use std::time::Instant;

use arrow::array::{
    Array, ArrayBuilder, ArrayRef, AsArray, Int64Array, Int64Builder, ListBuilder, StringArray, UInt32Array,
    UInt64Array,
};
use arrow::datatypes::{Int64Type, UInt8Type, UInt32Type};
use arrow::record_batch::RecordBatch;
use rayon::prelude::*;
use serde::Serialize;

use crate::error::{Error, Result};
use crate::fields::{KEY_FIELDS, hash_column};
use crate::map::ContactType;
use crate::store::{IdBitmap, Store, literal, quote_ident};
use cluster::{Clusters, Pairs, Shared};

/// Temporary tables of one audit (dropped before commit).
const FETCH: &str = "kontakt_audit_fetch";
const UNIVERSE: &str = "kontakt_audit_universe";
const CHANGED: &str = "kontakt_audit_changed";
const GONE: &str = "kontakt_audit_gone";
const TOUCHED: &str = "kontakt_audit_touched";

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

/// The contacts an audit clusters, by ordinal.
#[derive(Debug, Default)]
struct Universe {
    ids: Vec<i64>,
    created: Vec<i64>,
    /// 0 person, 1 company.
    types: Vec<u8>,
}

/// A salt per type, so equal values of a person and a company never share
/// a hash (and their values are compared with the type too).
const TYPE_SALT: [u64; 2] = [0, 0x9E37_79B9_7F4A_7C15];

/// Reads the key index of the contacts `filter` selects.
/// With `values` (a small universe), the filled-field count and key values
/// are read too, in the columns `fetch` gives them, and kept.
fn scan(
    store: &Store,
    options: &AuditOptions,
    filter: &str,
    values: bool,
) -> Result<(Universe, Vec<Pairs>, Option<Vec<RecordBatch>>)> {
    let keys = &options.keys;
    let hashes: Vec<String> = keys.iter().map(|k| hash_column(k)).collect();
    let extra = if values {
        format!(", {}", value_columns(store, options)?)
    } else {
        String::new()
    };
    let sql = format!(
        "SELECT c.id, epoch_us(c.created_at), CAST(c.type = 'company' AS UTINYINT), {}{extra} FROM contacts AS c WHERE {filter}",
        hashes.join(", ")
    );
    let batches = store.query_arrow(&sql, &[])?;
    let n: usize = batches.iter().map(RecordBatch::num_rows).sum();
    let mut universe = Universe {
        ids: Vec::with_capacity(n),
        created: Vec::with_capacity(n),
        types: Vec::with_capacity(n),
    };
    for batch in &batches {
        universe
            .ids
            .extend_from_slice(batch.column(0).as_primitive::<Int64Type>().values());
        universe
            .created
            .extend_from_slice(batch.column(1).as_primitive::<Int64Type>().values());
        universe
            .types
            .extend_from_slice(batch.column(2).as_primitive::<UInt8Type>().values());
    }
    // Per key, in parallel: (salted hash, ordinal) of every contact with a
    // value, into a vector sized once.
    let pairs: Vec<Pairs> = (0..keys.len())
        .into_par_iter()
        .map(|k| {
            let columns: Vec<&UInt64Array> = batches.iter().map(|b| b.column(3 + k).as_primitive()).collect();
            let filled: usize = columns.iter().map(|c| c.len() - c.null_count()).sum();
            let mut pairs = Vec::with_capacity(filled);
            let mut base = 0u32;
            for column in columns {
                let types = &universe.types[base as usize..base as usize + column.len()];
                let salted = |(i, (&h, &t)): (usize, (&u64, &u8))| (h ^ TYPE_SALT[usize::from(t & 1)], base + i as u32);
                let hashes = column.values().iter().zip(types).enumerate();
                match column.nulls().filter(|_| column.null_count() > 0) {
                    None => pairs.extend(hashes.map(salted)),
                    Some(nulls) => pairs.extend(hashes.filter(|&(i, _)| nulls.is_valid(i)).map(salted)),
                }
                base += column.len() as u32;
            }
            pairs
        })
        .collect();
    let kept = if values {
        let first = 3 + keys.len();
        let kept = batches
            .iter()
            .map(|batch| {
                let columns: Vec<usize> = (first..batch.num_columns()).collect();
                batch.project(&columns).map_err(|e| store.arrow_error(&e))
            })
            .collect::<Result<Vec<_>>>()?;
        Some(kept)
    } else {
        None
    };
    Ok((universe, pairs, kept))
}

/// The real key values (and filled-field counts) of the candidates, copied
/// into one arena per key in ordinal order, so the passes after the fetch
/// read them sequentially.
struct Fetched {
    /// Ordinal -> the candidate's slot (`u32::MAX`: not a candidate).
    slot: Vec<u32>,
    /// Per key: the values of the slots, `data[offsets[s]..offsets[s + 1]]`
    /// (empty for no value).
    values: Vec<(String, Vec<usize>)>,
    filled: Vec<i64>,
}

impl Fetched {
    fn value(&self, o: u32, k: usize) -> &str {
        let s = self.slot[o as usize] as usize;
        let (data, offsets) = &self.values[k];
        &data[offsets[s]..offsets[s + 1]]
    }

    fn filled(&self, o: u32) -> i64 {
        self.filled[self.slot[o as usize] as usize]
    }
}

/// The columns `Fetched` is made of: the filled-field count and the key
/// values of contact `c`.
fn value_columns(store: &Store, options: &AuditOptions) -> Result<String> {
    // Counting filled fields reads every column: only for most-complete.
    let filled = if options.survivor == Survivor::MostComplete {
        filled_sql(store)?
    } else {
        "0::BIGINT".to_string()
    };
    let values: Vec<String> = options.keys.iter().map(|k| format!("c.{}", quote_ident(k))).collect();
    Ok(format!("{filled} AS filled, {}", values.join(", ")))
}

impl Fetched {
    /// Copies slot `s`'s row `at[s]` of the value batches (columns as
    /// `value_columns` gives them) into the arenas, in slot order.
    fn gather(batches: &[RecordBatch], at: &[(u32, u32)], keys: usize, slot: Vec<u32>) -> Fetched {
        let n = at.len();
        let filled = at
            .iter()
            .map(|&(b, r)| {
                batches[b as usize]
                    .column(0)
                    .as_primitive::<Int64Type>()
                    .value(r as usize)
            })
            .collect();
        let values = (0..keys)
            .into_par_iter()
            .map(|k| {
                let columns: Vec<&StringArray> = batches.iter().map(|b| b.column(1 + k).as_string::<i32>()).collect();
                let mut data = String::new();
                let mut offsets = Vec::with_capacity(n + 1);
                offsets.push(0);
                for &(b, r) in at {
                    let column = columns[b as usize];
                    if column.is_valid(r as usize) {
                        data.push_str(column.value(r as usize));
                    }
                    offsets.push(data.len());
                }
                (data, offsets)
            })
            .collect();
        Fetched { slot, values, filled }
    }

    /// From the scan's own value batches: every ordinal, in order.
    fn of_scan(batches: &[RecordBatch], keys: usize) -> Fetched {
        let at: Vec<(u32, u32)> = batches
            .iter()
            .enumerate()
            .flat_map(|(b, batch)| (0..batch.num_rows() as u32).map(move |r| (b as u32, r)))
            .collect();
        let slot = (0..at.len() as u32).collect();
        Fetched::gather(batches, &at, keys, slot)
    }
}

/// Fetches the key values and filled-field count of the given ordinals
/// (sorted), through a temporary table joined with the contacts.
fn fetch(store: &Store, universe: &Universe, options: &AuditOptions, ordinals: &[u32]) -> Result<Fetched> {
    store.execute_batch(&format!(
        "CREATE OR REPLACE TEMP TABLE {FETCH} (id BIGINT, slot UINTEGER)"
    ))?;
    let batches = ordinals.chunks(1 << 16).enumerate().map(|(c, chunk)| {
        let ids: Int64Array = chunk.iter().map(|&o| universe.ids[o as usize]).collect();
        let first = (c << 16) as u32;
        let slots = UInt32Array::from_iter_values(first..first + chunk.len() as u32);
        RecordBatch::try_from_iter([("id", Arc::new(ids) as ArrayRef), ("slot", Arc::new(slots) as ArrayRef)])
            .map_err(|e| store.arrow_error(&e))
    });
    store.append_temp(FETCH, batches)?;
    // The join alone would decompress the key strings of every contact.
    let bitmap = IdBitmap::of(store, FETCH)?;
    let sql = format!(
        "SELECT f.slot, {} FROM {FETCH} AS f JOIN contacts AS c ON c.id = f.id WHERE {}",
        value_columns(store, options)?,
        bitmap
            .as_ref()
            .map_or_else(|| "true".to_string(), |ids| ids.filter("c.id"))
    );
    let conn = store.connection();
    let mut stmt = conn.prepare(&sql).map_err(|e| store.error(&e))?;
    let mut batches: Vec<RecordBatch> = Vec::new();
    let mut at = vec![(u32::MAX, 0u32); ordinals.len()];
    for batch in store.batches(&mut stmt, [], false)? {
        let batch = batch?;
        let b = batches.len() as u32;
        for (r, &s) in batch.column(0).as_primitive::<UInt32Type>().values().iter().enumerate() {
            at[s as usize] = (b, r as u32);
        }
        let columns: Vec<usize> = (1..batch.num_columns()).collect();
        batches.push(batch.project(&columns).map_err(|e| store.arrow_error(&e))?);
    }
    store.execute_batch(&format!("DROP TABLE {FETCH}"))?;
    if let Some(bitmap) = bitmap {
        bitmap.reset(store)?;
    }
    if let Some(s) = at.iter().position(|&(b, _)| b == u32::MAX) {
        return Err(Error::Store {
            path: store.path().display().to_string(),
            message: format!(
                "contact {} vanished during the audit",
                universe.ids[ordinals[s] as usize]
            ),
        });
    }
    let mut slot = vec![u32::MAX; universe.ids.len()];
    for (s, &o) in ordinals.iter().enumerate() {
        slot[o as usize] = s as u32;
    }
    Ok(Fetched::gather(&batches, &at, options.keys.len(), slot))
}

/// A timestamp (microseconds since the epoch, UTC) as DuckDB casts it to
/// text: `YYYY-MM-DD HH:MM:SS[.ffffff]`, trailing zeros of the fraction
/// dropped.
fn push_timestamp(buf: &mut Vec<u8>, micros: i64) {
    let days = micros.div_euclid(86_400_000_000);
    let rest = micros.rem_euclid(86_400_000_000);
    // Civil date from days since 1970-01-01 (H. Hinnant's algorithm).
    let z = days + 719_468;
    let era = z.div_euclid(146_097);
    let doe = z.rem_euclid(146_097);
    let yoe = (doe - doe / 1460 + doe / 36_524 - doe / 146_096) / 365;
    let doy = doe - (365 * yoe + yoe / 4 - yoe / 100);
    let mp = (5 * doy + 2) / 153;
    let day = doy - (153 * mp + 2) / 5 + 1;
    let month = if mp < 10 { mp + 3 } else { mp - 9 };
    let year = yoe + era * 400 + i64::from(month <= 2);
    let (secs, frac) = (rest / 1_000_000, rest % 1_000_000);
    let mut text = *b"0000-00-00 00:00:00.000000";
    let mut put = |at: usize, width: usize, mut v: i64| {
        for i in (at..at + width).rev() {
            text[i] = b'0' + (v % 10) as u8;
            v /= 10;
        }
    };
    put(0, 4, year);
    put(5, 2, month);
    put(8, 2, day);
    put(11, 2, secs / 3600);
    put(14, 2, secs / 60 % 60);
    put(17, 2, secs % 60);
    put(20, 6, frac);
    let mut len = 19;
    if frac > 0 {
        len = 26;
        while text[len - 1] == b'0' {
            len -= 1;
        }
    }
    buf.extend_from_slice(&text[..len]);
}

/// SQL counting a contact's filled fields (standard and custom; a consent
/// counts when known, tags when there are any).
fn filled_sql(store: &Store) -> Result<String> {
    let columns = store.columns("contacts")?;
    let terms: Vec<String> = crate::fields::STANDARD_FIELDS
        .iter()
        .map(|f| f.name.to_string())
        .chain(columns.into_iter().filter(|c| c.starts_with("custom.")))
        .map(|name| {
            let q = format!("c.{}", quote_ident(&name));
            match name.as_str() {
                "tags" => format!("CAST(len({q}) > 0 AS BIGINT)"),
                "email_opt_in" | "sms_opt_in" => format!("CAST({q} <> 'unknown' AS BIGINT)"),
                _ => format!("CAST({q} IS NOT NULL AS BIGINT)"),
            }
        })
        .collect();
    Ok(format!("({})", terms.join(" + ")))
}

/// One cluster found: members sorted by contact id.
struct Found {
    members: Vec<u32>,
    survivor: u32,
    /// Per key, the values its members share.
    shared: Vec<i64>,
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
    options: &AuditOptions,
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
        Some(batches) => Fetched::of_scan(&batches, options.keys.len()),
        None => fetch(store, universe, options, &candidates)?,
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
            let survivor = survivor(options.survivor, &members, universe, &fetched);
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
    let audit_id: i64 = store
        .connection()
        .query_row("SELECT nextval('audit_id_seq')", [], |r| r.get(0))
        .map_err(|e| store.error(&e))?;
    let out = options
        .out
        .clone()
        .unwrap_or_else(|| Path::new("kontakt-out").join(format!("audit-{audit_id}")));
    std::fs::create_dir_all(&out).map_err(|e| Error::io(&out, e))?;
    store.execute_batch("BEGIN TRANSACTION")?;
    let result = audit(store, options, audit_id, &out, started);
    if result.is_err() {
        let _ = store.execute_batch("ROLLBACK");
    }
    result
}

/// The type filter of an audit, as SQL on `contacts`.
fn type_filter(options: &AuditOptions) -> String {
    options
        .contact_type
        .map_or_else(|| "true".to_string(), |t| format!("type = '{}'", t.name()))
}

fn audit(store: &Store, options: &AuditOptions, audit_id: i64, out: &Path, started: Instant) -> Result<AuditSummary> {
    let mut stages = Stages {
        last: started,
        ms: BTreeMap::new(),
    };
    let now = crate::apply::commit::now_micros();
    let scope = scope(options);
    let types = type_filter(options);
    // What this audit sees of the whole store, for the next --since-last.
    let next_contact_id = crate::apply::commit::next_contact_id(store)?;
    let all_contacts = store.count("contacts")?;
    let previous: Option<Previous> = if options.since_last {
        store.query_optional(
            "SELECT id, epoch_us(started_at), next_contact_id, all_contacts FROM audits \
             WHERE scope = ? ORDER BY id DESC LIMIT 1",
            [&scope],
            |r| {
                Ok(Previous {
                    id: r.get(0)?,
                    started: r.get(1)?,
                    next_contact_id: r.get(2)?,
                    all_contacts: r.get(3)?,
                })
            },
        )?
    } else {
        None
    };
    let mut since = options.since_last.then(SinceLast::default);
    let mut bitmap = None;
    let filter = match (&previous, since.as_mut()) {
        (Some(previous), Some(since)) => {
            since.since_audit = Some(previous.id);
            let (changed, deleted) = affected(store, &scope, &types, &options.keys, previous)?;
            since.contacts_changed = changed;
            since.contacts_deleted = deleted;
            bitmap = IdBitmap::of(store, UNIVERSE)?;
            IdBitmap::filter_or_semi_join(bitmap.as_ref(), "c.id", UNIVERSE)
        }
        _ => types.clone(),
    };
    stages.lap("affected");
    // A --since-last universe is small: its values come with the scan.
    let (universe, pairs, scanned) = scan(store, options, &filter, previous.is_some())?;
    if let Some(bitmap) = bitmap {
        bitmap.reset(store)?;
    }
    stages.lap("scan");
    let Clustered { found, fetched, in_run } = cluster(store, options, &universe, pairs, scanned, &mut stages)?;

    // The old clusters of the universe's contacts (with --since-last).
    let incremental = previous.is_some();
    let old = if incremental {
        old_clusters(store, &scope)?
    } else {
        OldClusters::default()
    };
    let mut report: Vec<usize> = Vec::new();
    if let Some(since) = since.as_mut() {
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
    } else {
        report = (0..found.len()).collect();
    }
    stages.lap("diff");

    // The store's totals and every cluster's key (its smallest contact id,
    // whose rank is the cluster id): the untouched old clusters of the
    // scope (none for a full audit) and the universe's.
    let mut totals = if incremental {
        untouched(store, &scope, &options.keys)?
    } else {
        Totals::default()
    };
    totals.contacts = if incremental {
        store.query_i64(&format!("SELECT count(*) FROM contacts WHERE {types}"), [])? as u64
    } else {
        universe.ids.len() as u64
    };
    totals.by_key.resize(options.keys.len(), 0);
    for f in &found {
        totals.clusters += 1;
        totals.contacts_in_clusters += f.members.len() as u64;
        for (sum, &n) in totals.by_key.iter_mut().zip(&f.shared) {
            *sum += n as u64;
        }
    }
    let mut ranks = std::mem::take(&mut totals.keys);
    if incremental {
        ranks.extend(found.iter().map(|f| universe.ids[f.members[0] as usize]));
        ranks.sort_unstable();
    }
    let cluster_id = |c: usize| -> i64 {
        if incremental {
            let key = universe.ids[found[c].members[0] as usize];
            ranks.partition_point(|&k| k < key) as i64 + 1
        } else {
            c as i64 + 1
        }
    };
    stages.lap("totals");
    // clusters.csv is written on a thread of its own while the new state of
    // the scope is saved: the universe's clusters replace the old clusters
    // it touched (or, for a full audit, all of them).
    std::thread::scope(|s| {
        let writer =
            s.spawn(|| write_clusters(out, options, &universe, &found, &report, &fetched, &in_run, cluster_id));
        let saved = save_state(store, &scope, incremental, &universe, &found);
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
    store.execute(
        "INSERT INTO audits (id, scope, since_audit, started_at, finished_at, contacts, clusters, \
         contacts_in_clusters, reported_clusters, out_dir, summary, next_contact_id, all_contacts) \
         VALUES (?, ?, ?, make_timestamp(?), make_timestamp(?), ?, ?, ?, ?, ?, ?, ?, ?)",
        duckdb::params![
            audit_id,
            scope,
            summary.since_last.as_ref().and_then(|s| s.since_audit),
            now,
            crate::apply::commit::now_micros(),
            summary.contacts as i64,
            summary.clusters as i64,
            summary.contacts_in_clusters as i64,
            summary.reported_clusters as i64,
            out.display().to_string(),
            text,
            next_contact_id,
            all_contacts
        ],
    )?;
    let path = out.join("summary.json");
    std::fs::write(&path, &text).map_err(|e| Error::io(&path, e))?;
    store.execute_batch("COMMIT")?;
    Ok(summary)
}

/// The latest audit of a scope, as a `--since-last` audit compares with.
struct Previous {
    id: i64,
    /// When it began (microseconds): contacts updated since are changed.
    started: i64,
    /// The next contact id and the number of contacts (all types) it saw;
    /// null for audits recorded before schema version 3.
    next_contact_id: Option<i64>,
    all_contacts: Option<i64>,
}

/// Builds the universe of a `--since-last` audit in a temporary table (an
/// id may be in it more than once: every use is a semi-join or a bitmap,
/// and a UNION's duplicate removal costs more than the scan) and returns
/// how many contacts changed and were deleted since `previous`.
fn affected(store: &Store, scope: &str, types: &str, keys: &[&str], previous: &Previous) -> Result<(u64, u64)> {
    let scope = literal(scope);
    let since = format!("make_timestamp({})", previous.started);
    let hashes: Vec<String> = keys.iter().map(|k| hash_column(k)).collect();
    store.execute_batch(&format!(
        "CREATE OR REPLACE TEMP TABLE {CHANGED} AS SELECT id, {} FROM contacts \
         WHERE {types} AND updated_at >= {since}",
        hashes.join(", ")
    ))?;
    // Members of the old clusters that left the scope: deleted, or (only a
    // changed contact can be) now of another type. Ids are never reused, so
    // when the store still holds as many contacts below the previous
    // audit's next id as it had, nothing was deleted and the anti-join of
    // every member with the store is not needed.
    let members = format!("SELECT contact_id FROM audit_members WHERE scope = {scope}");
    let nothing_deleted = match (previous.next_contact_id, previous.all_contacts) {
        (Some(next), Some(all)) => store.query_i64("SELECT count(*) FROM contacts WHERE id < ?", [next])? == all,
        _ => false,
    };
    let gone = if nothing_deleted {
        format!("SELECT id FROM contacts WHERE updated_at >= {since} AND NOT ({types}) AND id IN ({members})")
    } else {
        format!(
            "SELECT m.contact_id AS id FROM ({members}) AS m \
             ANTI JOIN (SELECT id FROM contacts WHERE {types}) AS c ON c.id = m.contact_id"
        )
    };
    // Contacts sharing a key value (hash) with a changed one, in one scan of
    // the hash columns. (An unchanged contact sharing one with an unchanged
    // member of a touched cluster was in that cluster already.)
    let sharing: Vec<String> = hashes
        .iter()
        .map(|h| format!("{h} IN (SELECT {h} FROM {CHANGED})"))
        .collect();
    store.execute_batch(&format!(
        "CREATE OR REPLACE TEMP TABLE {GONE} AS {gone};
         CREATE OR REPLACE TEMP TABLE {TOUCHED} AS \
           SELECT DISTINCT cluster FROM audit_members WHERE scope = {scope} \
           AND contact_id IN (SELECT id FROM {CHANGED} UNION ALL SELECT id FROM {GONE});
         CREATE OR REPLACE TEMP TABLE {UNIVERSE} AS \
           SELECT id FROM {CHANGED} \
           UNION ALL SELECT contact_id FROM audit_members \
             WHERE scope = {scope} AND cluster IN (SELECT cluster FROM {TOUCHED}) \
             AND contact_id NOT IN (SELECT id FROM {GONE}) \
           UNION ALL SELECT id FROM contacts WHERE {types} AND ({});
         INSERT INTO {UNIVERSE} \
           SELECT contact_id FROM audit_members WHERE scope = {scope} \
           AND cluster IN (SELECT cluster FROM audit_members WHERE scope = {scope} \
                           AND contact_id IN (SELECT id FROM {UNIVERSE})) \
           AND contact_id NOT IN (SELECT id FROM {UNIVERSE}) \
           AND contact_id NOT IN (SELECT id FROM {GONE});
         INSERT INTO {TOUCHED} \
           SELECT DISTINCT cluster FROM audit_members WHERE scope = {scope} \
           AND contact_id IN (SELECT id FROM {UNIVERSE}) \
           AND cluster NOT IN (SELECT cluster FROM {TOUCHED});",
        sharing.join(" OR ")
    ))?;
    let changed = store.query_i64(&format!("SELECT count(*) FROM {CHANGED}"), [])?;
    let gone = store.query_i64(&format!("SELECT count(*) FROM {GONE}"), [])?;
    Ok((changed as u64, gone as u64))
}

/// The previous state's clusters that the universe touched: each member's
/// cluster and each cluster's size.
#[derive(Debug, Default)]
struct OldClusters {
    cluster_of: HashMap<i64, i64>,
    size: HashMap<i64, i64>,
}

fn old_clusters(store: &Store, scope: &str) -> Result<OldClusters> {
    let mut old = OldClusters::default();
    let conn = store.connection();
    let mut stmt = conn
        .prepare(&format!(
            "SELECT contact_id, cluster FROM audit_members WHERE scope = ? AND cluster IN (SELECT cluster FROM {TOUCHED})"
        ))
        .map_err(|e| store.error(&e))?;
    let rows = stmt
        .query_map([scope], |r| Ok((r.get::<_, i64>(0)?, r.get::<_, i64>(1)?)))
        .map_err(|e| store.error(&e))?;
    for row in rows {
        let (contact, cluster) = row.map_err(|e| store.error(&e))?;
        old.cluster_of.insert(contact, cluster);
        *old.size.entry(cluster).or_default() += 1;
    }
    Ok(old)
}

/// Replaces the scope's state: all of it after a full audit, only the
/// touched old clusters after an incremental one.
fn save_state(store: &Store, scope: &str, incremental: bool, universe: &Universe, found: &[Found]) -> Result<()> {
    let quoted = literal(scope);
    let which = if incremental {
        format!(" AND cluster IN (SELECT cluster FROM {TOUCHED})")
    } else {
        String::new()
    };
    store.execute_batch(&format!(
        "DELETE FROM audit_members WHERE scope = {quoted}{which}; DELETE FROM audit_clusters WHERE scope = {quoted}{which};"
    ))?;
    let conn = store.connection();
    let mut members = conn.appender("audit_members").map_err(|e| store.error(&e))?;
    let mut clusters = conn.appender("audit_clusters").map_err(|e| store.error(&e))?;
    for chunk in found.chunks(1 << 14) {
        let mut contact_ids = Int64Builder::new();
        let mut member_cluster = Int64Builder::new();
        let mut keys = Int64Builder::new();
        let mut sizes = Int64Builder::new();
        let mut shared = ListBuilder::new(Int64Builder::new());
        for f in chunk {
            let key = universe.ids[f.members[0] as usize];
            for &o in &f.members {
                contact_ids.append_value(universe.ids[o as usize]);
                member_cluster.append_value(key);
            }
            keys.append_value(key);
            sizes.append_value(f.members.len() as i64);
            shared.values().append_slice(&f.shared);
            shared.append(true);
        }
        let n = contact_ids.len();
        let m = keys.len();
        let batch = RecordBatch::try_from_iter([
            ("scope", Arc::new(StringArray::from(vec![scope; n])) as ArrayRef),
            ("contact_id", Arc::new(contact_ids.finish()) as ArrayRef),
            ("cluster", Arc::new(member_cluster.finish()) as ArrayRef),
        ])
        .map_err(|e| store.arrow_error(&e))?;
        members.append_record_batch(batch).map_err(|e| store.error(&e))?;
        let batch = RecordBatch::try_from_iter([
            ("scope", Arc::new(StringArray::from(vec![scope; m])) as ArrayRef),
            ("cluster", Arc::new(keys.finish()) as ArrayRef),
            ("size", Arc::new(sizes.finish()) as ArrayRef),
            ("shared", Arc::new(shared.finish()) as ArrayRef),
        ])
        .map_err(|e| store.arrow_error(&e))?;
        clusters.append_record_batch(batch).map_err(|e| store.error(&e))?;
    }
    members.flush().map_err(|e| store.error(&e))?;
    clusters.flush().map_err(|e| store.error(&e))
}

#[derive(Debug, Default)]
struct Totals {
    contacts: u64,
    clusters: u64,
    contacts_in_clusters: u64,
    by_key: Vec<u64>,
    /// The clusters' keys (smallest contact ids), sorted.
    keys: Vec<i64>,
}

/// The totals and keys of the scope's old clusters that the universe did
/// not touch (they stay as they are).
fn untouched(store: &Store, scope: &str, keys: &[&str]) -> Result<Totals> {
    let conn = store.connection();
    let sums: Vec<String> = (1..=keys.len())
        .map(|k| format!("coalesce(sum(shared[{k}]), 0)::BIGINT"))
        .collect();
    let which = format!("scope = ? AND cluster NOT IN (SELECT cluster FROM {TOUCHED})");
    let row: Vec<i64> = conn
        .query_row(
            &format!(
                "SELECT count(*), coalesce(sum(size), 0)::BIGINT, {} FROM audit_clusters WHERE {which}",
                sums.join(", ")
            ),
            [scope],
            |r| (0..2 + keys.len()).map(|i| r.get::<_, i64>(i)).collect(),
        )
        .map_err(|e| store.error(&e))?;
    let batches = store.query_arrow(
        &format!("SELECT cluster FROM audit_clusters WHERE {which} ORDER BY cluster"),
        &[scope],
    )?;
    Ok(Totals {
        contacts: 0,
        clusters: row[0] as u64,
        contacts_in_clusters: row[1] as u64,
        by_key: row[2..].iter().map(|&n| n as u64).collect(),
        keys: batches
            .iter()
            .flat_map(|b| b.column(0).as_primitive::<Int64Type>().values().iter().copied())
            .collect(),
    })
}

/// Writes clusters.csv: one row per member of each reported cluster, in
/// cluster order, members by contact id.
#[allow(clippy::too_many_arguments)]
fn write_clusters(
    out: &Path,
    options: &AuditOptions,
    universe: &Universe,
    found: &[Found],
    report: &[usize],
    fetched: &Fetched,
    in_run: &[Vec<bool>],
    cluster_id: impl Fn(usize) -> i64 + Sync,
) -> Result<()> {
    let path = out.join("clusters.csv");
    let file = std::fs::File::create(&path).map_err(|e| Error::io(&path, e))?;
    let mut file = std::io::BufWriter::with_capacity(1 << 20, file);
    file.write_all(b"cluster_id,contact_id,key,value,created_at,survivor_id\n")
        .map_err(|e| Error::io(&path, e))?;
    // Formatted in parallel, a window of clusters at a time (memory stays
    // bounded), written in order.
    let format = |clusters: &[usize]| -> Vec<u8> {
        let mut buf = Vec::with_capacity(clusters.len() * 160);
        let mut id = itoa::Buffer::new();
        for &c in clusters {
            let f = &found[c];
            let cid = cluster_id(c);
            let survivor = universe.ids[f.survivor as usize];
            for &o in &f.members {
                let k = (0..options.keys.len())
                    .find(|&k| in_run[k][o as usize])
                    .expect("a member shares a value");
                buf.extend_from_slice(id.format(cid).as_bytes());
                buf.push(b',');
                buf.extend_from_slice(id.format(universe.ids[o as usize]).as_bytes());
                buf.push(b',');
                buf.extend_from_slice(options.keys[k].as_bytes());
                buf.push(b',');
                crate::write::push_csv_field(&mut buf, fetched.value(o, k).as_bytes());
                buf.push(b',');
                push_timestamp(&mut buf, universe.created[o as usize]);
                buf.push(b',');
                buf.extend_from_slice(id.format(survivor).as_bytes());
                buf.push(b'\n');
            }
        }
        buf
    };
    for window in report.chunks(1 << 16) {
        let parts: Vec<Vec<u8>> = window.par_chunks(1 << 12).map(format).collect();
        for part in parts {
            file.write_all(&part).map_err(|e| Error::io(&path, e))?;
        }
    }
    file.flush().map_err(|e| Error::io(&path, e))
}
