//! What the import's build side needs from the store: the key columns of
//! the contacts of a type, all of them or only those sharing a key value
//! with the file (the semi-join, for a small file against a large store).

use arrow::array::ArrayRef;
use arrow::record_batch::RecordBatch;

use super::{Backend, Store};
use crate::error::Result;

/// The file's values of the keys in use, held by the store for
/// [`Store::scan_keys`] until [`Store::drop_file_keys`].
#[derive(Debug)]
pub struct FileKeys {
    pub(crate) tables: Vec<FileKey>,
}

impl FileKeys {
    /// The temporary tables of the file's keys, one per key (`hashed`:
    /// whether its values are hashes, else text).
    pub(crate) fn tables_for(hashed: &[bool]) -> Vec<FileKey> {
        hashed
            .iter()
            .enumerate()
            .map(|(i, &hashed)| FileKey {
                table: format!("kontakt_file_keys_{i}"),
                hashed,
            })
            .collect()
    }
}

/// One key's values of the file (in a temporary table of the backend's
/// connection), as hashes or as text.
#[derive(Debug, Clone)]
pub(crate) struct FileKey {
    pub(crate) table: String,
    pub(crate) hashed: bool,
}

/// The key columns of the contacts of a type, as [`Store::scan_keys`]
/// hands them to its reader.
pub struct KeyScan<'a> {
    /// How many contacts the scan returns at most.
    pub rows: usize,
    /// Per key, how many of them hold a value at most.
    pub sizes: Vec<usize>,
    /// The contacts: `id` (Int64), `created` (`created_at` in microseconds
    /// since the epoch, Int64), then each key's value as text (Utf8, `k0`,
    /// `k1`, null when empty).
    pub batches: &'a mut dyn Iterator<Item = Result<RecordBatch>>,
}

impl Store {
    /// How many contacts of `contact_type` the store holds.
    pub fn count_contacts_of_type(&self, contact_type: &str) -> Result<i64> {
        dispatch!(self, db => db.count_contacts_of_type(contact_type))
    }

    /// Hands the file's values of each key in use to the store, for a
    /// semi-join ([`Store::scan_keys`]). `hashed[k]`: key `k` has a hash
    /// column in the store (`email_hash`, …) and is sent as its xxh3
    /// hashes (UInt64), so the semi-join compares integers and never reads
    /// the stored strings; else (the contact `id`) as text (Utf8). `feed`
    /// calls its argument with one array per key, a null where a row has
    /// no value, as often as it has batches.
    pub fn load_file_keys(
        &self,
        hashed: &[bool],
        feed: impl FnOnce(&mut dyn FnMut(&[ArrayRef]) -> Result<()>) -> Result<()>,
    ) -> Result<FileKeys> {
        dispatch!(self, db => db.load_file_keys(hashed, feed))
    }

    /// Lets go of the file's keys (errors are of no consequence: they
    /// belong to this connection and end with it).
    pub fn drop_file_keys(&self, keys: FileKeys) {
        match &self.backend {
            Backend::DuckDb(db) => db.drop_file_keys(keys),
            Backend::Postgres(db) => db.drop_file_keys(keys),
        }
    }

    /// Scans the key columns `keys` (field names checked by the normalize
    /// plan) of the contacts of `contact_type` holding a value of one of
    /// them, or with `file_keys` only of those sharing one with the file
    /// (by hash: a superset, which the index then checks value by value),
    /// and hands them to `read` ([`KeyScan`]).
    pub fn scan_keys<T>(
        &self,
        contact_type: &str,
        keys: &[&str],
        file_keys: Option<&FileKeys>,
        read: impl FnOnce(KeyScan<'_>) -> Result<T>,
    ) -> Result<T> {
        dispatch!(self, db => db.scan_keys(contact_type, keys, file_keys, read))
    }
}
