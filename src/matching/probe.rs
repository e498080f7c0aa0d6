//! The probe side: each row of a normalized batch against a key table (the
//! store's [`StoreIndex`], or the file's own keys in [`InFile`]), in file
//! order, one loop for all of them ([`walk`]): it prefetches the slots of
//! the row [`AHEAD`] of the one it hands on, so the cache misses of several
//! rows overlap.

use super::{AHEAD, InFile, MatchedBy, StoreIndex};
use crate::normalize::NormalizedBatch;

/// A row's key values with their hashes: primary, secondary (`None` when
/// empty or not a key).
pub type RowKeys<'a> = (Option<(u64, &'a str)>, Option<(u64, &'a str)>);

/// A table probed by key hashes, which can be asked to load a row's slots
/// ahead of its lookup.
pub trait Prefetch {
    fn prefetch(&self, primary: Option<u64>, secondary: Option<u64>);
}

impl Prefetch for &StoreIndex {
    fn prefetch(&self, primary: Option<u64>, secondary: Option<u64>) {
        StoreIndex::prefetch(self, primary, secondary);
    }
}

impl Prefetch for &mut InFile {
    fn prefetch(&self, primary: Option<u64>, secondary: Option<u64>) {
        InFile::prefetch(self, primary, secondary);
    }
}

/// Hands each row of `norm` to `each` in order, with `table` and the row's
/// keys (`None` for a failed row, which matches nothing), after asking
/// `table` to prefetch the slots of the row [`AHEAD`].
#[inline]
pub fn walk<'a, T: Prefetch>(
    norm: &'a NormalizedBatch,
    mut table: T,
    mut each: impl FnMut(&mut T, usize, Option<RowKeys<'a>>),
) {
    let [primary, secondary] = norm.keys();
    for i in 0..norm.batch.num_rows() {
        let ahead = i + AHEAD;
        table.prefetch(primary.hash_at(ahead), secondary.hash_at(ahead));
        let keys = norm.is_kept(i).then(|| (primary.at(i), secondary.at(i)));
        each(&mut table, i, keys);
    }
}

/// One batch after the parallel step: normalized, and each row's store
/// matches (contact ordinals in `matched[start..start + len]`).
#[derive(Debug)]
pub struct Prepared {
    pub norm: NormalizedBatch,
    pub probes: Vec<Probe>,
    pub matched: Vec<u32>,
}

/// One row's store matches: by which key, and where in
/// [`Prepared::matched`].
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub struct Probe {
    pub by: Option<MatchedBy>,
    pub start: u32,
    pub len: u32,
}

impl Probe {
    /// The row's matches (contact ordinals, oldest first) among a batch's.
    pub fn matched(self, all: &[u32]) -> &[u32] {
        &all[self.start as usize..(self.start + self.len) as usize]
    }
}

impl StoreIndex {
    /// Each row's store matches, for a normalized batch.
    pub fn probe_batch(&self, norm: NormalizedBatch) -> Prepared {
        let mut probes = Vec::with_capacity(norm.batch.num_rows());
        let mut matched = Vec::new();
        let mut found = Vec::new();
        walk(&norm, self, |index, _, keys| {
            found.clear();
            let by = keys.and_then(|(primary, secondary)| index.probe(primary, secondary, &mut found));
            probes.push(Probe {
                by,
                start: matched.len() as u32,
                len: found.len() as u32,
            });
            matched.extend_from_slice(&found);
        });
        Prepared { norm, probes, matched }
    }
}
