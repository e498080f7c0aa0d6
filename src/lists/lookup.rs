//! The build side of `lists add` and `lists remove`: which stored contact
//! a row's key names, and which contacts are members already. Both are
//! built by one column scan of the store and probed per row in memory:
//!
//! - `--by id`: an [`IdSet`] of the stored ids, a bit per id up to the
//!   largest (ids are assigned from 1 and never reused, so 10M contacts
//!   take ~1.2 MB);
//! - `--by email|phone|external_id`: the store's key hashes, `(hash,
//!   contact id)` sorted, 16 bytes a value, with a directory by the top
//!   bits of the hash (4 to 8 bytes a value); a hash shared by several
//!   contacts is a `multiple_match`. Hashes are the xxh3 the key index and
//!   the `unique` setting use: two values with one hash are taken as one,
//!   a chance of about n·m/2⁶⁴ for m rows against n values (10M x 10M:
//!   5·10⁻⁶).
//! - the list's members: another [`IdSet`], updated as rows add or remove.

use crate::error::Result;
use crate::store::Store;

/// A set of contact ids, a bit per id from 0 to the largest held.
#[derive(Debug, Clone, Default)]
pub struct IdSet {
    words: Vec<u64>,
    len: usize,
}

impl IdSet {
    /// Whether `id` is in the set (never a negative id).
    pub fn contains(&self, id: i64) -> bool {
        let Ok(id) = usize::try_from(id) else {
            return false;
        };
        self.words.get(id / 64).is_some_and(|w| w & (1 << (id % 64)) != 0)
    }

    /// Adds `id` (not negative); whether it was new.
    pub fn insert(&mut self, id: i64) -> bool {
        let id = usize::try_from(id).expect("contact ids are not negative");
        let word = id / 64;
        if word >= self.words.len() {
            // Doubling: a scan in id order grows it a few dozen times.
            self.words.resize((word + 1).max(self.words.len() * 2), 0);
        }
        let bit = 1 << (id % 64);
        let new = self.words[word] & bit == 0;
        self.words[word] |= bit;
        self.len += usize::from(new);
        new
    }

    /// Removes `id`; whether it was there.
    pub fn remove(&mut self, id: i64) -> bool {
        if !self.contains(id) {
            return false;
        }
        let id = id as usize;
        self.words[id / 64] &= !(1 << (id % 64));
        self.len -= 1;
        true
    }

    pub fn len(&self) -> usize {
        self.len
    }

    pub fn is_empty(&self) -> bool {
        self.len == 0
    }

    /// The ids, ascending.
    pub fn ids(&self) -> impl Iterator<Item = i64> + '_ {
        self.words.iter().enumerate().flat_map(|(w, &word)| {
            let mut bits = word;
            std::iter::from_fn(move || {
                if bits == 0 {
                    return None;
                }
                let bit = bits.trailing_zeros() as usize;
                bits &= bits - 1;
                Some((w * 64 + bit) as i64)
            })
        })
    }

    /// Every stored contact's id.
    pub fn of_contacts(store: &Store) -> Result<IdSet> {
        let mut set = IdSet::default();
        store.scan_contact_ids(|ids| {
            ids.iter().for_each(|&id| {
                set.insert(id);
            });
            Ok(())
        })?;
        Ok(set)
    }

    /// The contact ids of a list's members.
    pub fn of_list(store: &Store, list_id: i64) -> Result<IdSet> {
        let mut set = IdSet::default();
        store.scan_list_members(list_id, |ids| {
            ids.iter().for_each(|&id| {
                set.insert(id);
            });
            Ok(())
        })?;
        Ok(set)
    }
}

/// The stored contacts by the hash of a key value: `(hash, id)` pairs,
/// sorted, each pair once, and a directory of where each run of hashes
/// with the same top `bits` starts. A binary search of 10M pairs (160 MB)
/// is ~24 cache misses a row: 1M emails against a 10M store took 9.2 s,
/// 6.7 µs a row. xxh3 spreads the hashes evenly, so the directory (about
/// one or two slots a pair) leaves one or two pairs to look at: two misses.
#[derive(Debug, Clone, Default)]
pub struct KeyHashes {
    pairs: Vec<(u64, i64)>,
    /// `starts[b]`: the first pair whose hash's top `bits` are `b` or more.
    starts: Vec<u32>,
    bits: u32,
}

impl KeyHashes {
    /// The hashes of the values of `fields` (one, or `phone` and `mobile`:
    /// a number finds the contact holding it in either).
    pub fn load(store: &Store, fields: &[&str]) -> Result<KeyHashes> {
        let mut pairs = Vec::new();
        for field in fields {
            pairs.extend(store.key_hashes(field)?);
        }
        Ok(KeyHashes::from_pairs(pairs))
    }

    pub fn from_pairs(mut pairs: Vec<(u64, i64)>) -> KeyHashes {
        pairs.sort_unstable();
        // A contact with one number as phone and as mobile is one match.
        pairs.dedup();
        pairs.shrink_to_fit();
        // About one slot a pair, at most 2^26 (256 MB of pairs would be
        // 16M of them).
        let bits = (usize::BITS - pairs.len().leading_zeros()).clamp(1, 26);
        let slots = 1usize << bits;
        let mut starts = Vec::with_capacity(slots + 1);
        let mut at = 0;
        for slot in 0..slots as u64 {
            while at < pairs.len() && pairs[at].0 >> (64 - bits) < slot {
                at += 1;
            }
            starts.push(at as u32);
        }
        starts.push(pairs.len() as u32);
        KeyHashes { pairs, starts, bits }
    }

    /// The ids of the contacts holding a value of this hash, ascending.
    pub fn find(&self, hash: u64) -> impl ExactSizeIterator<Item = i64> + '_ {
        let run = if self.starts.is_empty() {
            &[][..]
        } else {
            let slot = (hash >> (64 - self.bits)) as usize;
            &self.pairs[self.starts[slot] as usize..self.starts[slot + 1] as usize]
        };
        let start = run.partition_point(|&(h, _)| h < hash);
        let len = run[start..].partition_point(|&(h, _)| h == hash);
        run[start..start + len].iter().map(|&(_, id)| id)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn id_sets_hold_each_id_once() {
        let mut set = IdSet::default();
        assert!(!set.contains(5) && !set.contains(-1) && set.is_empty());
        for id in [5, 64, 1, 10_000_000, 5] {
            set.insert(id);
        }
        assert_eq!(set.len(), 4);
        assert!(set.contains(5) && set.contains(64) && set.contains(10_000_000));
        assert!(!set.contains(63) && !set.contains(65) && !set.contains(10_000_001));
        assert_eq!(set.ids().collect::<Vec<_>>(), [1, 5, 64, 10_000_000]);
        assert!(set.remove(64) && !set.remove(64) && !set.remove(99_999_999));
        assert_eq!(set.len(), 3);
        assert!(!set.contains(64));
    }

    #[test]
    fn key_hashes_find_every_holder_once() {
        let hashes = KeyHashes::from_pairs(vec![(7, 3), (2, 9), (7, 1), (7, 3), (u64::MAX, 4)]);
        assert_eq!(hashes.find(7).collect::<Vec<_>>(), [1, 3]);
        assert_eq!(hashes.find(2).collect::<Vec<_>>(), [9]);
        assert_eq!(hashes.find(u64::MAX).collect::<Vec<_>>(), [4]);
        assert_eq!(hashes.find(5).len(), 0);
        assert_eq!(KeyHashes::default().find(0).len(), 0);
        assert_eq!(KeyHashes::from_pairs(Vec::new()).find(7).len(), 0);
        // Many pairs: every hash found through the directory, in any slot.
        let pairs: Vec<(u64, i64)> = (0..5000u64)
            .map(|i| (crate::fields::key_hash(&i.to_string()), i as i64))
            .chain([(0, 1), (0, 2), (u64::MAX, 3)])
            .collect();
        let hashes = KeyHashes::from_pairs(pairs.clone());
        for &(hash, id) in &pairs {
            assert!(hashes.find(hash).any(|found| found == id), "{hash}");
        }
        assert_eq!(hashes.find(0).collect::<Vec<_>>(), [1, 2]);
        assert_eq!(hashes.find(1).len(), 0);
    }
}
