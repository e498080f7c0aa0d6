//! Matching: which stored contacts a normalized row matches, by its keys.
//!
//! Build side: the key columns of every stored contact of the import's type
//! (`id`, `created_at`, and the stored, already normalized key values), read
//! once through `query_arrow` into one [`KeyIndex`] per key. Probe side: the
//! normalized batches, in parallel (the index is read-only).
//!
//! An index is a [`SpanTable`] of distinct key values, hashed with the same
//! xxh3 the normalize stage writes into `__primary_hash` /
//! `__secondary_hash`, so probing never hashes again; a hit is confirmed by
//! comparing the real values (a hash alone is never trusted). Contacts that
//! share a value are chained behind the first (`next`). Loops over rows
//! prefetch the slots of the row [`AHEAD`] of the one they probe.

mod infile;
mod probe;
mod table;

use arrow::array::{Array, AsArray, StringArray};
use arrow::datatypes::Int64Type;
use arrow::record_batch::RecordBatch;
use xxhash_rust::xxh3::xxh3_64;

pub use infile::{Duplicates, InFile, InFileVerdict};
pub use probe::{Prefetch, Prepared, Probe, RowKeys, walk};
use table::{Arena, SpanTable, reserve_on_huge_pages};

use crate::error::Result;
use crate::store::{IdBitmap, Store};

const END: u32 = u32::MAX;

/// Temporary table of the ids of the contacts a semi-join with the file
/// selected.
const PICKED: &str = "kontakt_build_ids";

/// Selected contacts up to this many are read into memory whole rather
/// than streamed (~120 MB of ids, timestamps and key values at most).
const WHOLE_ROWS: usize = 2_000_000;

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

/// The file's values of one key, in a temporary table of the store's
/// connection, for the semi-join: their xxh3 hashes (column `h`) when the
/// key has a hash column in the store, else the values as text (`v`).
#[derive(Debug, Clone)]
pub struct FileKeys {
    pub table: String,
    pub hashed: bool,
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
    /// `file_keys`: temporary tables (one per key) of the keys in the
    /// file; when given, only the contacts sharing one of them (by hash, a
    /// superset the index then checks value by value) are indexed.
    pub fn build(
        store: &Store,
        contact_type: &str,
        primary: Option<&str>,
        secondary: Option<&str>,
        file_keys: Option<&[FileKeys]>,
    ) -> Result<Self> {
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
        let columns: Vec<String> = keys
            .iter()
            .enumerate()
            .map(|(i, k)| format!("CAST(\"{k}\" AS VARCHAR) AS k{i}"))
            .collect();
        let conn = store.connection();
        // The rows to index: every contact of the type with a key, or (with
        // the file's keys) only those sharing a key value with the file. The
        // semi-join that selects them, run by DuckDB in parallel, reads the
        // integer columns only (the ids it keeps go to a temporary table);
        // their ids then filter the scan that reads the values
        // ([`IdBitmap`]), so only the selected rows' text is decompressed.
        // `bitmap`: the selected ids' (none without the file's keys, when
        // no contact is selected, or when their ids span too wide).
        let semi_join = file_keys.is_some();
        let (source, params, bitmap) = match file_keys {
            None => {
                let filter: Vec<String> = keys.iter().map(|k| format!("\"{k}\" IS NOT NULL")).collect();
                let source = format!("contacts WHERE type = ? AND ({})", filter.join(" OR "));
                (source, vec![contact_type], None)
            }
            Some(tables) => {
                let filter: Vec<String> = keys
                    .iter()
                    .zip(tables)
                    .map(|(k, t)| {
                        if t.hashed {
                            format!("\"{k}_hash\" IN (SELECT h FROM {})", t.table)
                        } else {
                            format!("CAST(\"{k}\" AS VARCHAR) IN (SELECT v FROM {})", t.table)
                        }
                    })
                    .collect();
                store.execute(
                    &format!(
                        "CREATE OR REPLACE TEMP TABLE {PICKED} AS SELECT id FROM contacts WHERE type = ? AND ({})",
                        filter.join(" OR ")
                    ),
                    [contact_type],
                )?;
                let bitmap = IdBitmap::of(store, PICKED)?;
                let source = format!(
                    "contacts WHERE {}",
                    IdBitmap::filter_or_semi_join(bitmap.as_ref(), "id", PICKED)
                );
                (source, Vec::new(), bitmap)
            }
        };
        let sql = format!(
            "SELECT id, epoch_us(created_at) AS created, {} FROM {source}",
            columns.join(", ")
        );
        // Sized once, so nothing is regrown (or rehashed): the selected
        // contacts by a count of their table (it bounds the values of each
        // key), all of the type's by one aggregate scan, where a key
        // field's values are counted in its hash column, a scan of
        // integers where the text would be decompressed (at 10M contacts
        // the count took 0.3-0.6 s that way). Then the rows are read (all
        // of a type's streamed, not materialized), and each key's index is
        // filled on a thread of its own. An arena is reserved for [`VALUE_BYTES`] a value: pages
        // reserved and never written cost nothing, and longer values grow
        // it.
        let (rows, sizes): (usize, Vec<usize>) = if semi_join {
            let rows = store.query_i64(&format!("SELECT count(*) FROM {PICKED}"), [])? as usize;
            (rows, vec![rows; keys.len()])
        } else {
            let counts: Vec<String> = keys
                .iter()
                .map(|k| {
                    let column = if crate::fields::KEY_FIELDS.contains(k) {
                        crate::fields::hash_column(k)
                    } else {
                        k.to_string()
                    };
                    format!("count(\"{column}\")")
                })
                .collect();
            conn.query_row(
                &format!("SELECT count(*), {} FROM contacts WHERE type = ?", counts.join(", ")),
                [contact_type],
                |r| {
                    let rows: i64 = r.get(0)?;
                    let sizes = (0..keys.len())
                        .map(|k| r.get::<_, i64>(1 + k).map(|n| n as usize))
                        .collect::<duckdb::Result<Vec<usize>>>()?;
                    Ok((rows as usize, sizes))
                },
            )
            .map_err(|e| store.error(&e))?
        };
        reserve_on_huge_pages(&mut index.contacts.ids, rows);
        reserve_on_huge_pages(&mut index.contacts.created, rows);
        let sized = |n: usize| KeyIndex::with_capacity(n, n.saturating_mul(VALUE_BYTES));
        let mut primary = index.primary.as_ref().map(|_| sized(sizes[0]));
        let mut secondary = index.secondary.as_ref().map(|_| sized(sizes[sizes.len() - 1]));
        let mut stmt = conn.prepare(&sql).map_err(|e| store.error(&e))?;
        // A few selected contacts are read whole, which DuckDB does on all
        // its threads (1M x 10M, 4 alternating runs: user CPU 5.3-5.8 s
        // against 5.7-5.9 s streamed); all of a type's, streamed.
        let whole = semi_join && rows <= WHOLE_ROWS;
        let stream = store.batches(&mut stmt, duckdb::params_from_iter(params), !whole)?;
        // Streamed chunks are small (2048 rows); they are indexed in groups
        // of about 128k rows, each key's on a thread of its own, while this
        // thread reads the next group from DuckDB.
        let mut stream = stream.peekable();
        let mut next_group = || -> Result<Vec<RecordBatch>> {
            let mut group = Vec::new();
            let mut rows = 0;
            while rows < 128 * 1024
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
        drop(stmt);
        if semi_join {
            store.execute_batch(&format!("DROP TABLE IF EXISTS {PICKED}"))?;
        }
        if let Some(bitmap) = bitmap {
            bitmap.reset(store)?;
        }
        index.primary = primary;
        index.secondary = secondary;
        Ok(index)
    }

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
