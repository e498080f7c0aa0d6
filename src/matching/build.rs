//! The build side: the stored contacts of the import's type and an index
//! per matching key, from the store's key scan; with the file's keys (the
//! semi-join), only the contacts sharing a key value with the file.

use std::sync::Arc;

use arrow::array::{Array, ArrayRef, AsArray, StringArray, UInt64Array};
use arrow::buffer::NullBuffer;
use arrow::datatypes::Int64Type;
use arrow::record_batch::RecordBatch;

use super::table::reserve_on_huge_pages;
use super::{KeyIndex, StoreIndex, VALUE_BYTES};
use crate::error::Result;
use crate::normalize::NormalizedBatch;
use crate::store::Store;
pub use crate::store::keys::FileKeys;

/// Streamed contacts are indexed in groups of about this many rows.
const GROUP_ROWS: usize = 128 * 1024;

/// Hands the file's values of the keys in use (`keys`: primary,
/// secondary), from the normalized batches `batches` hands to its
/// argument, to the store for the semi-join. A key with a hash column in
/// the store (`email_hash`, …) goes as its xxh3 hash, others (the contact
/// `id`) as text; a failed row's keys are not the file's, and the hash of
/// an empty key is not a key.
pub fn load_file_keys(
    store: &Store,
    keys: [Option<&str>; 2],
    batches: impl FnOnce(&mut dyn FnMut(&NormalizedBatch) -> Result<()>) -> Result<()>,
) -> Result<FileKeys> {
    let in_use = keys.map(|k| k.is_some());
    let hashed: Vec<bool> = keys
        .iter()
        .flatten()
        .map(|key| crate::fields::KEY_FIELDS.contains(key))
        .collect();
    store.load_file_keys(&hashed, |add| {
        batches(&mut |norm| {
            let kept =
                (!norm.dropped.is_empty()).then(|| NullBuffer::from_iter(norm.dropped.iter().map(|&dropped| !dropped)));
            let mut columns: Vec<ArrayRef> = Vec::with_capacity(hashed.len());
            // The columns of the keys in use, in the order of `hashed`.
            let used = norm
                .keys()
                .into_iter()
                .zip(in_use)
                .filter_map(|(k, used)| used.then_some(k));
            for (key, &hashed) in used.zip(&hashed) {
                // A key in use is mapped (`Plan::new` refuses one that is not), and
                // the store pairs these columns with the keys by position.
                let values = key.values.expect("a key in use is mapped");
                let nulls = NullBuffer::union(values.nulls(), kept.as_ref());
                columns.push(if hashed {
                    Arc::new(UInt64Array::new(key.hashes.values().clone(), nulls))
                } else {
                    Arc::new(StringArray::new(
                        values.offsets().clone(),
                        values.values().clone(),
                        nulls,
                    ))
                });
            }
            add(&columns)
        })
    })
}

impl StoreIndex {
    /// An index of no contacts, for the keys in use.
    pub fn empty(primary: Option<&str>, secondary: Option<&str>) -> StoreIndex {
        StoreIndex {
            primary: primary.map(|_| KeyIndex::default()),
            secondary: secondary.map(|_| KeyIndex::default()),
            ..StoreIndex::default()
        }
    }

    /// Reads the key columns of every contact of `contact_type` and indexes
    /// them. Keys are field names checked by the normalize plan (never user
    /// text), so they can name columns.
    /// `file_keys`: the keys of the file ([`load_file_keys`]), let go of
    /// here; when given, only the contacts sharing one of them are indexed.
    pub fn build(
        store: &Store,
        contact_type: &str,
        primary: Option<&str>,
        secondary: Option<&str>,
        file_keys: Option<FileKeys>,
    ) -> Result<Self> {
        let built = Self::build_from(store, contact_type, primary, secondary, file_keys.as_ref());
        if let Some(keys) = file_keys {
            store.drop_file_keys(keys);
        }
        built
    }

    fn build_from(
        store: &Store,
        contact_type: &str,
        primary: Option<&str>,
        secondary: Option<&str>,
        file_keys: Option<&FileKeys>,
    ) -> Result<Self> {
        let keys: Vec<&str> = [primary, secondary].into_iter().flatten().collect();
        let mut index = StoreIndex::empty(primary, secondary);
        if keys.is_empty() {
            return Ok(index);
        }
        store.scan_keys(contact_type, &keys, file_keys, |scan| {
            // Sized once, so nothing is regrown (or rehashed), by the
            // scan's counts. An arena is reserved for [`VALUE_BYTES`] a
            // value: pages reserved and never written cost nothing, and
            // longer values grow it.
            let (rows, sizes) = (scan.rows, scan.sizes);
            reserve_on_huge_pages(&mut index.contacts.ids, rows);
            reserve_on_huge_pages(&mut index.contacts.created, rows);
            let sized = |n: usize| KeyIndex::with_capacity(n, n.saturating_mul(VALUE_BYTES));
            let mut primary = index.primary.as_ref().map(|_| sized(sizes[0]));
            let mut secondary = index.secondary.as_ref().map(|_| sized(sizes[sizes.len() - 1]));
            // Streamed chunks are small (2048 rows); they are indexed in groups
            // of about 128k rows, each key's on a thread of its own, while this
            // thread reads the next group from the store.
            let mut stream = scan.batches.peekable();
            let mut next_group = || -> Result<Vec<RecordBatch>> {
                let mut group = Vec::new();
                let mut rows = 0;
                while rows < GROUP_ROWS
                    && let Some(batch) = stream.next()
                {
                    let batch = batch?;
                    rows += batch.num_rows();
                    group.push(batch);
                }
                Ok(group)
            };
            let secondary_column = 2 + usize::from(primary.is_some());
            let mut group = next_group()?;
            while !group.is_empty() {
                let first = index.contacts.ids.len();
                for batch in &group {
                    index
                        .contacts
                        .ids
                        .extend(batch.column(0).as_primitive::<Int64Type>().values().iter().copied());
                    index
                        .contacts
                        .created
                        .extend(batch.column(1).as_primitive::<Int64Type>().values().iter().copied());
                }
                let fill = |key_index: Option<&mut KeyIndex>, column: usize| {
                    let Some(key_index) = key_index else { return };
                    let mut ordinal = first;
                    let mut hashes = Vec::new();
                    for batch in &group {
                        let values: &StringArray = batch.column(column).as_string::<i32>();
                        key_index.insert_column(values, ordinal, &mut hashes);
                        ordinal += values.len();
                    }
                };
                let (primary, secondary) = (primary.as_mut(), secondary.as_mut());
                group = std::thread::scope(|scope| {
                    scope.spawn(|| fill(primary, 2));
                    scope.spawn(|| fill(secondary, secondary_column));
                    next_group()
                })?;
            }
            index.primary = primary;
            index.secondary = secondary;
            Ok(())
        })?;
        Ok(index)
    }
}
