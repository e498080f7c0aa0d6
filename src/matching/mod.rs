//! Matching: which stored contacts a normalized row matches, by its keys.
//!
//! Build side: the key columns of every stored contact of the import's type
//! (`id`, `created_at`, and the stored, already normalized key values), read
//! once through `query_arrow` into one [`KeyIndex`] per key. Probe side: the
//! normalized batches, in parallel (the index is read-only).
//!
//! An index is a `hashbrown::HashTable` of distinct key values, hashed with
//! the same xxh3 the normalize stage writes into `__primary_hash` /
//! `__secondary_hash`, so probing never hashes again; a hit is confirmed by
//! comparing the real values (a hash alone is never trusted). Contacts that
//! share a value are chained behind the first (`next`).

mod infile;

use duckdb::arrow::array::{Array, AsArray, StringArray, UInt64Array};
use duckdb::arrow::datatypes::Int64Type;
use hashbrown::HashTable;
use xxhash_rust::xxh3::xxh3_64;

pub use infile::{Duplicates, InFile, InFileVerdict};

use crate::error::Result;
use crate::store::Store;

const END: u32 = u32::MAX;

/// The stored contacts the build side read, by ordinal (`u32`).
#[derive(Debug, Default)]
pub struct Contacts {
    pub ids: Vec<i64>,
    /// `created_at` in microseconds since the epoch (for first/last).
    pub created: Vec<i64>,
}

/// Distinct values of one key, each with the chain of contacts holding it.
#[derive(Debug, Default)]
pub struct KeyIndex {
    table: HashTable<u32>,
    /// Entry -> the value (entries are the contacts with a non-empty value).
    values: Vec<Box<str>>,
    /// Entry -> contact ordinal.
    contact: Vec<u32>,
    /// Entry -> next entry with the same value, or `END`.
    next: Vec<u32>,
}

impl KeyIndex {
    fn insert(&mut self, value: &str, contact: u32) {
        let hash = xxh3_64(value.as_bytes());
        let entry = u32::try_from(self.values.len()).expect("fewer than 4G stored contacts");
        let values = &self.values;
        match self.table.find_mut(hash, |&e| &*values[e as usize] == value) {
            Some(head) => {
                // Keep the head (so its value stays), put the new entry second.
                let head = *head as usize;
                self.next.push(self.next[head]);
                self.next[head] = entry;
            }
            None => {
                self.next.push(END);
                let values = &self.values;
                self.table
                    .insert_unique(hash, entry, |&e| xxh3_64(values[e as usize].as_bytes()));
            }
        }
        self.values.push(value.into());
        self.contact.push(contact);
    }

    /// The contacts holding `value` (whose xxh3 hash is `hash`), appended to `out`.
    pub fn lookup(&self, hash: u64, value: &str, out: &mut Vec<u32>) {
        let Some(&head) = self.table.find(hash, |&e| &*self.values[e as usize] == value) else {
            return;
        };
        let mut entry = head;
        while entry != END {
            out.push(self.contact[entry as usize]);
            entry = self.next[entry as usize];
        }
    }

    /// Distinct values in the index.
    pub fn len(&self) -> usize {
        self.table.len()
    }

    pub fn is_empty(&self) -> bool {
        self.table.is_empty()
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
    /// Reads the key columns of every contact of `contact_type` and indexes
    /// them. Keys are field names checked by the normalize plan (never user
    /// text), so they can name columns.
    pub fn build(store: &Store, contact_type: &str, primary: Option<&str>, secondary: Option<&str>) -> Result<Self> {
        let keys: Vec<&str> = [primary, secondary].into_iter().flatten().collect();
        let mut index = StoreIndex {
            primary: primary.map(|_| KeyIndex::default()),
            secondary: secondary.map(|_| KeyIndex::default()),
            ..StoreIndex::default()
        };
        if keys.is_empty() {
            return Ok(index);
        }
        // Keys compare as text (the contact id too).
        let columns: Vec<String> = keys.iter().map(|k| format!("CAST(\"{k}\" AS VARCHAR)")).collect();
        let filter: Vec<String> = keys.iter().map(|k| format!("\"{k}\" IS NOT NULL")).collect();
        let sql = format!(
            "SELECT id, epoch_us(created_at) AS created, {} FROM contacts WHERE type = ? AND ({})",
            columns.join(", "),
            filter.join(" OR ")
        );
        let batches = store.query_arrow(&sql, &[contact_type])?;
        for batch in &batches {
            let ids = batch.column(0).as_primitive::<Int64Type>();
            let created = batch.column(1).as_primitive::<Int64Type>();
            let first = index.contacts.ids.len();
            index.contacts.ids.extend(ids.values().iter().copied());
            index.contacts.created.extend(created.values().iter().copied());
            for (k, key_index) in [index.primary.as_mut(), index.secondary.as_mut()]
                .into_iter()
                .flatten()
                .enumerate()
            {
                let values: &StringArray = batch.column(2 + k).as_string::<i32>();
                for i in 0..values.len() {
                    if values.is_valid(i) {
                        key_index.insert(values.value(i), (first + i) as u32);
                    }
                }
            }
        }
        Ok(index)
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

    pub fn as_str(self) -> &'static str {
        match self {
            Category::NoMatch => "no_match",
            Category::OneMatch => "one_match",
            Category::MultipleMatch => "multiple_match",
        }
    }
}

/// A key's value in row `i` of a normalized batch: its hash (from the
/// stage's hash column) and its value; `None` when empty.
pub fn key_at<'a>(hashes: &UInt64Array, values: Option<&'a StringArray>, i: usize) -> Option<(u64, &'a str)> {
    let values = values?;
    (values.is_valid(i)).then(|| (hashes.value(i), values.value(i)))
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
