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
                bits: None,
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
    /// Of a hashed key, where the backend keeps one: which low bits its
    /// hashes have ([`HashBits`]).
    pub(crate) bits: Option<HashBits>,
}

/// A bitmap of the low bits of a key's hashes (bit `h & mask` set for
/// each hash `h` of the file): a stored contact whose hashes' bits are
/// all clear shares no value with the file, so the PostgreSQL pick keeps
/// only the others (a superset, which the index sorts out value by
/// value). Built at [`HashBits::MAX_BITS`] and folded down to about
/// [`HashBits::BITS_PER_KEY`] bits per key, small enough to stay in the
/// processor's cache (1 MB for 1M keys; about 12% of the other hashes
/// find their bit set).
#[derive(Clone)]
pub(crate) struct HashBits {
    pub(crate) bytes: Vec<u8>,
}

impl std::fmt::Debug for HashBits {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        write!(f, "HashBits({} bits)", self.bits())
    }
}

impl HashBits {
    pub(crate) const MAX_BITS: usize = 1 << 26;
    const MIN_BITS: usize = 1 << 16;
    const BITS_PER_KEY: usize = 8;

    pub(crate) fn new() -> HashBits {
        HashBits {
            bytes: vec![0; Self::MAX_BITS / 8],
        }
    }

    pub(crate) fn bits(&self) -> usize {
        self.bytes.len() * 8
    }

    /// The mask of a hash's bit number (the bitmap's size is a power of two).
    pub(crate) fn mask(&self) -> u64 {
        self.bits() as u64 - 1
    }

    pub(crate) fn insert(&mut self, hash: u64) {
        let bit = (hash & self.mask()) as usize;
        self.bytes[bit / 8] |= 1 << (bit % 8);
    }

    #[cfg(test)]
    pub(crate) fn contains(&self, hash: u64) -> bool {
        let bit = (hash & self.mask()) as usize;
        self.bytes[bit / 8] & (1 << (bit % 8)) != 0
    }

    /// Halves the bitmap while it keeps [`Self::BITS_PER_KEY`] bits for
    /// each bit set (a bit of the half is set where either half's was, so
    /// every hash inserted still finds its bit).
    pub(crate) fn fold(mut self) -> HashBits {
        let set: usize = self.bytes.iter().map(|b| b.count_ones() as usize).sum();
        while self.bits() / 2 >= Self::MIN_BITS.max(set.saturating_mul(Self::BITS_PER_KEY)) {
            let half = self.bytes.len() / 2;
            let (low, high) = self.bytes.split_at_mut(half);
            low.iter_mut().zip(high.iter()).for_each(|(l, h)| *l |= h);
            self.bytes.truncate(half);
        }
        self
    }
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
    /// How many contacts of `contact_type` the store holds: exactly on
    /// DuckDB, by the server's statistics on PostgreSQL (for choosing how
    /// to match, never for a count shown).
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

#[cfg(test)]
mod tests {
    use super::HashBits;

    /// Every hash inserted finds its bit after folding, the bitmap keeps
    /// about 8 bits a key, and most other hashes miss.
    #[test]
    fn folded_hash_bits_keep_every_hash() {
        let hashes: Vec<u64> = (0..100_000u64)
            .map(|i| xxhash_rust::xxh3::xxh3_64(&i.to_le_bytes()))
            .collect();
        let mut bits = HashBits::new();
        hashes.iter().for_each(|&h| bits.insert(h));
        let bits = bits.fold();
        assert_eq!(bits.bits(), 1 << 20, "100k keys at 8 bits a key fold to 2^20 bits");
        assert!(hashes.iter().all(|&h| bits.contains(h)));
        let others = (100_000..200_000u64)
            .filter(|i| bits.contains(xxhash_rust::xxh3::xxh3_64(&i.to_le_bytes())))
            .count();
        assert!(others < 15_000, "{others} of 100k other hashes pass");
        let mut few = HashBits::new();
        few.insert(7);
        assert_eq!(few.fold().bits(), 1 << 16, "never below the minimum");
    }
}
