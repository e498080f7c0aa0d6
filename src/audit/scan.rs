//! The audit's reads: the key hashes of the universe, in one scan, and the
//! real values of the candidates, copied into arenas in ordinal order.

use arrow::array::{Array, AsArray, StringArray, UInt64Array};
use arrow::datatypes::{Int64Type, UInt8Type, UInt32Type};
use arrow::record_batch::RecordBatch;
use rayon::prelude::*;

use super::cluster::Pairs;
use crate::error::{Error, Result};
use crate::store::Store;
use crate::store::audit::{AffectedUniverse, AuditScope};

/// The contacts an audit clusters, by ordinal.
#[derive(Debug, Default)]
pub(super) struct Universe {
    pub(super) ids: Vec<i64>,
    pub(super) created: Vec<i64>,
    /// 0 person, 1 company.
    pub(super) types: Vec<u8>,
}

/// A salt per type, so equal values of a person and a company never share
/// a hash (and their values are compared with the type too).
const TYPE_SALT: [u64; 2] = [0, 0x9E37_79B9_7F4A_7C15];

/// Reads the key index of the contacts of the scope, or of the universe of
/// a `--since-last` audit. A universe is small: the filled-field count and
/// key values come with its scan (after the hashes), and its batches are
/// kept for [`Fetched::of_scan`].
pub(super) fn scan(
    store: &Store,
    scope: &AuditScope,
    affected: Option<AffectedUniverse>,
) -> Result<(Universe, Vec<Pairs>, Option<Vec<RecordBatch>>)> {
    let keys = scope.keys;
    let values = affected.is_some();
    let batches = store.scan_audit_keys(scope, affected)?;
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
    let kept = values.then_some(batches);
    Ok((universe, pairs, kept))
}

/// The real key values (and filled-field counts) of the candidates, copied
/// into one arena per key in ordinal order, so the passes after the fetch
/// read them sequentially.
pub(super) struct Fetched {
    /// Ordinal -> the candidate's slot (`u32::MAX`: not a candidate).
    slot: Vec<u32>,
    /// Per key: the values of the slots, `data[offsets[s]..offsets[s + 1]]`
    /// (empty for no value).
    values: Vec<(String, Vec<usize>)>,
    filled: Vec<i64>,
}

impl Fetched {
    pub(super) fn value(&self, o: u32, k: usize) -> &str {
        let s = self.slot[o as usize] as usize;
        let (data, offsets) = &self.values[k];
        &data[offsets[s]..offsets[s + 1]]
    }

    pub(super) fn filled(&self, o: u32) -> i64 {
        self.filled[self.slot[o as usize] as usize]
    }

    /// Copies slot `s`'s row `at[s]` of the value batches (the filled-field
    /// count in column `first`, then the key values) into the arenas, in
    /// slot order.
    fn gather(batches: &[RecordBatch], first: usize, at: &[(u32, u32)], keys: usize, slot: Vec<u32>) -> Fetched {
        let n = at.len();
        let filled = at
            .iter()
            .map(|&(b, r)| {
                batches[b as usize]
                    .column(first)
                    .as_primitive::<Int64Type>()
                    .value(r as usize)
            })
            .collect();
        let values = (0..keys)
            .into_par_iter()
            .map(|k| {
                let columns: Vec<&StringArray> = batches
                    .iter()
                    .map(|b| b.column(first + 1 + k).as_string::<i32>())
                    .collect();
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

    /// From the scan's own batches (values after the id, creation, type
    /// and each key's hash): every ordinal, in order.
    pub(super) fn of_scan(batches: &[RecordBatch], keys: usize) -> Fetched {
        let first = 3 + keys;
        let at: Vec<(u32, u32)> = batches
            .iter()
            .enumerate()
            .flat_map(|(b, batch)| (0..batch.num_rows() as u32).map(move |r| (b as u32, r)))
            .collect();
        let slot = (0..at.len() as u32).collect();
        Fetched::gather(batches, first, &at, keys, slot)
    }
}

/// Fetches the key values and filled-field count of the given ordinals
/// (sorted).
pub(super) fn fetch(store: &Store, universe: &Universe, scope: &AuditScope, ordinals: &[u32]) -> Result<Fetched> {
    let ids = ordinals.iter().map(|&o| universe.ids[o as usize]);
    let batches = store.fetch_audit_values(scope, ids)?;
    let mut at = vec![(u32::MAX, 0u32); ordinals.len()];
    for (b, batch) in batches.iter().enumerate() {
        for (r, &s) in batch.column(0).as_primitive::<UInt32Type>().values().iter().enumerate() {
            at[s as usize] = (b as u32, r as u32);
        }
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
    Ok(Fetched::gather(&batches, 1, &at, scope.keys.len(), slot))
}
