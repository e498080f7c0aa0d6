//! Matching: which stored contacts a normalized row matches, by its keys.
//!
//! Build side (`build.rs`): the key columns of every stored contact of the
//! import's type (`id`, `created_at`, and the stored, already normalized
//! key values), scanned once from the store into one [`KeyIndex`] per key.
//! Probe side (`probe.rs`): the normalized batches, in parallel (the index
//! is read-only).
//!
//! An index is a [`SpanTable`] of distinct key values, hashed with the same
//! xxh3 the normalize stage writes into `__primary_hash` /
//! `__secondary_hash`, so probing never hashes again; a hit is confirmed by
//! comparing the real values (a hash alone is never trusted). Contacts that
//! share a value are chained behind the first (`next`). Loops over rows
//! prefetch the slots of the row [`AHEAD`] of the one they probe.

mod build;
mod infile;
mod probe;
mod table;

use arrow::array::{Array, StringArray};
use xxhash_rust::xxh3::xxh3_64;

pub use build::{FileKeys, load_file_keys};
pub use infile::{Duplicates, InFile, InFileVerdict};
pub use probe::{Prefetch, Prepared, Probe, RowKeys, walk};
use table::{Arena, SpanTable, reserve_on_huge_pages};

const END: u32 = u32::MAX;

/// The stored contacts the build side read, by ordinal (`u32`).
#[derive(Debug, Default)]
pub struct Contacts {
    pub ids: Vec<i64>,
    /// `created_at` in microseconds since the epoch (for first/last).
    pub created: Vec<i64>,
}

/// Distinct values of one key, each with the chain of contacts holding it.
///
/// Laid out for probing, which is bound by cache misses: a table slot holds
/// where its value is in the arena and the first contact holding it (the
/// top bit, [`SHARED`], marks a value other contacts hold too), so a probe
/// of a value held by one contact reads the slot and the value, and nothing
/// else. Only contacts sharing a value are chained (`next`).
#[derive(Debug)]
pub struct KeyIndex {
    table: SpanTable,
    /// The distinct values.
    data: Arena,
    /// Contact ordinal -> the next contact with the same value, or `END`;
    /// read only from a slot marked `shared`.
    next: Vec<u32>,
}

const SHARED: u32 = 1 << 31;

/// Arena bytes reserved per stored key value (e-mails run 20-30 bytes,
/// phone numbers 12-13).
const VALUE_BYTES: usize = 48;

/// How many rows ahead a loop probing a table prefetches: enough for the
/// misses of several rows to overlap, few enough that the lines are still
/// in cache when their row comes.
pub const AHEAD: usize = 16;

impl Default for KeyIndex {
    fn default() -> Self {
        KeyIndex::with_capacity(0, 0)
    }
}

impl KeyIndex {
    /// An empty index sized for `entries` values of `bytes` bytes in all.
    fn with_capacity(entries: usize, bytes: usize) -> KeyIndex {
        KeyIndex {
            table: SpanTable::with_capacity(entries),
            data: Arena::with_capacity(bytes),
            next: {
                let mut next = Vec::new();
                reserve_on_huge_pages(&mut next, entries);
                next
            },
        }
    }

    #[cfg(test)]
    fn insert(&mut self, value: &str, contact: u32) {
        self.insert_hashed(xxh3_64(value.as_bytes()), value, contact);
    }

    /// Adds `contact` to the contacts holding `value`, whose xxh3 hash is `hash`.
    fn insert_hashed(&mut self, hash: u64, value: &str, contact: u32) {
        self.table.reserve(1, &self.data);
        // One probe finds the value or the slot for it (no second lookup).
        match self.table.search(hash, &self.data, value.as_bytes()) {
            Ok(slot) => {
                // The first contact stays with the value; the new one is second.
                let span = self.table.span(slot);
                let first = self.data.item(span);
                let head = (first & !SHARED) as usize;
                let shared = first & SHARED != 0;
                self.data.set_item(span, first | SHARED);
                let needed = head.max(contact as usize) + 1;
                if self.next.len() < needed {
                    self.next.resize(needed, END);
                }
                self.next[contact as usize] = if shared { self.next[head] } else { END };
                self.next[head] = contact;
            }
            Err(slot) => {
                if let Some(span) = self.data.push(contact, value.as_bytes()) {
                    self.table.fill(slot, hash, span);
                }
            }
        }
    }

    /// Adds each value of `values` (nulls skipped), held by contact `first`
    /// and those after it, hashing them all first so the table slots of
    /// values [`AHEAD`] on are prefetched while one is inserted.
    fn insert_column(&mut self, values: &StringArray, first: usize, hashes: &mut Vec<u64>) {
        hashes.clear();
        hashes.extend((0..values.len()).map(|i| xxh3_64(values.value(i).as_bytes())));
        for (i, &hash) in hashes.iter().enumerate() {
            if let Some(&ahead) = hashes.get(i + AHEAD) {
                self.table.prefetch(ahead);
            }
            if values.is_valid(i) {
                self.insert_hashed(hash, values.value(i), (first + i) as u32);
            }
        }
    }

    /// Asks the CPU to load where `hash` would be, for a lookup soon.
    pub fn prefetch(&self, hash: u64) {
        self.table.prefetch(hash);
    }

    /// The contacts holding `value` (whose xxh3 hash is `hash`), appended to `out`.
    pub fn lookup(&self, hash: u64, value: &str, out: &mut Vec<u32>) {
        let Some(first) = self.table.get(hash, &self.data, value.as_bytes()) else {
            return;
        };
        let head = first & !SHARED;
        out.push(head);
        if first & SHARED != 0 {
            let mut contact = self.next[head as usize];
            while contact != END {
                out.push(contact);
                contact = self.next[contact as usize];
            }
        }
    }

    /// Distinct values in the index.
    pub fn len(&self) -> usize {
        self.table.len()
    }

    pub fn is_empty(&self) -> bool {
        self.table.len() == 0
    }
}

/// The build side: stored contacts and an index per matching key.
#[derive(Debug, Default)]
pub struct StoreIndex {
    pub contacts: Contacts,
    pub primary: Option<KeyIndex>,
    pub secondary: Option<KeyIndex>,
}

impl StoreIndex {
    /// Asks the CPU to load where a row's key hashes would be, for a
    /// [`probe`](Self::probe) soon.
    pub fn prefetch(&self, primary: Option<u64>, secondary: Option<u64>) {
        if let (Some(index), Some(hash)) = (&self.primary, primary) {
            index.prefetch(hash);
        }
        if let (Some(index), Some(hash)) = (&self.secondary, secondary) {
            index.prefetch(hash);
        }
    }

    /// Contact ordinals matching one row: by the primary key if it finds
    /// any, else by the secondary. Sorted by `created_at`, then id.
    pub fn probe(
        &self,
        primary: Option<(u64, &str)>,
        secondary: Option<(u64, &str)>,
        out: &mut Vec<u32>,
    ) -> Option<MatchedBy> {
        out.clear();
        if let (Some(index), Some((hash, value))) = (&self.primary, primary) {
            index.lookup(hash, value, out);
            if !out.is_empty() {
                self.sort(out);
                return Some(MatchedBy::Primary);
            }
        }
        if let (Some(index), Some((hash, value))) = (&self.secondary, secondary) {
            index.lookup(hash, value, out);
            if !out.is_empty() {
                self.sort(out);
                return Some(MatchedBy::Secondary);
            }
        }
        None
    }

    fn sort(&self, out: &mut [u32]) {
        if out.len() > 1 {
            out.sort_by_key(|&c| (self.contacts.created[c as usize], self.contacts.ids[c as usize]));
        }
    }
}

/// Which key found the match (`matched_by` in the outputs).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum MatchedBy {
    Primary,
    Secondary,
}

impl MatchedBy {
    pub fn as_str(self) -> &'static str {
        match self {
            MatchedBy::Primary => "primary",
            MatchedBy::Secondary => "secondary",
        }
    }
}

/// A row's category (SPEC: `no_match`, `one_match`, `multiple_match`).
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub enum Category {
    NoMatch,
    OneMatch,
    MultipleMatch,
}

impl Category {
    pub const ALL: [Category; 3] = [Category::NoMatch, Category::OneMatch, Category::MultipleMatch];

    pub fn of(matches: usize) -> Category {
        match matches {
            0 => Category::NoMatch,
            1 => Category::OneMatch,
            _ => Category::MultipleMatch,
        }
    }

    /// The category a name (`no_match`, …) stands for.
    pub fn parse(name: &str) -> Option<Category> {
        Category::ALL.into_iter().find(|c| c.as_str() == name)
    }

    pub fn as_str(self) -> &'static str {
        match self {
            Category::NoMatch => "no_match",
            Category::OneMatch => "one_match",
            Category::MultipleMatch => "multiple_match",
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn probe(index: &KeyIndex, value: &str) -> Vec<u32> {
        let mut out = Vec::new();
        index.lookup(xxh3_64(value.as_bytes()), value, &mut out);
        out.sort_unstable();
        out
    }

    #[test]
    fn index_chains_contacts_sharing_a_value() {
        let mut index = KeyIndex::default();
        index.insert("a@x.cz", 0);
        index.insert("b@x.cz", 1);
        index.insert("a@x.cz", 2);
        index.insert("a@x.cz", 3);
        assert_eq!(index.len(), 2);
        assert_eq!(probe(&index, "a@x.cz"), vec![0, 2, 3]);
        assert_eq!(probe(&index, "b@x.cz"), vec![1]);
        assert!(probe(&index, "c@x.cz").is_empty());
    }

    #[test]
    fn a_long_value_is_a_key_like_any_other() {
        let mut index = KeyIndex::default();
        let long = "x".repeat(1 << 24);
        index.insert(&long, 0);
        index.insert("a@x.cz", 1);
        index.insert(&long, 2);
        assert_eq!(index.len(), 2);
        assert_eq!(probe(&index, &long), vec![0, 2]);
        assert!(probe(&index, &long[1..]).is_empty());
        assert_eq!(probe(&index, "a@x.cz"), vec![1]);
    }

    #[test]
    fn a_colliding_hash_is_not_a_match() {
        let mut index = KeyIndex::default();
        index.insert("a@x.cz", 0);
        let mut out = Vec::new();
        // The right hash with another value: equality decides, not the hash.
        index.lookup(xxh3_64(b"a@x.cz"), "z@x.cz", &mut out);
        assert!(out.is_empty());
    }

    #[test]
    fn secondary_only_when_primary_finds_nothing() {
        let mut index = StoreIndex {
            contacts: Contacts {
                ids: vec![10, 11, 12],
                created: vec![3, 1, 2],
            },
            primary: Some(KeyIndex::default()),
            secondary: Some(KeyIndex::default()),
        };
        index.primary.as_mut().expect("primary").insert("a@x.cz", 0);
        let s = index.secondary.as_mut().expect("secondary");
        s.insert("+420777123456", 1);
        s.insert("+420777123456", 2);
        s.insert("+420777123456", 0);
        let key = |v: &'static str| Some((xxh3_64(v.as_bytes()), v));
        let mut out = Vec::new();
        assert_eq!(
            index.probe(key("a@x.cz"), key("+420777123456"), &mut out),
            Some(MatchedBy::Primary)
        );
        assert_eq!(out, vec![0]);
        assert_eq!(
            index.probe(key("b@x.cz"), key("+420777123456"), &mut out),
            Some(MatchedBy::Secondary)
        );
        // Ordered by created_at: contact 1 (1), 2 (2), 0 (3).
        assert_eq!(out, vec![1, 2, 0]);
        assert_eq!(index.probe(None, key("+420000"), &mut out), None);
        assert!(out.is_empty());
    }
}
