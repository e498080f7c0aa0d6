//! The pure core of an audit: which contacts share a key value (runs of
//! equal hashes), and the clusters those shared values connect
//! (union-find). No database here: the caller scans the key index and
//! hands over hashes, and fetches the real values of the candidates so
//! that a hash collision never joins two contacts ([`Shared::refine`]).

use rayon::prelude::*;

/// Key `(hash, contact ordinal)` pairs of one key, for the contacts that
/// have a value.
pub type Pairs = Vec<(u64, u32)>;

/// The values of one key that two or more contacts share: each run is a
/// list of contact ordinals holding the same value (by hash until refined).
#[derive(Debug, Default, Clone, PartialEq, Eq)]
pub struct Shared {
    /// Ordinals of all runs, run after run.
    pub members: Vec<u32>,
    /// Run `r` is `members[starts[r]..starts[r + 1]]`.
    pub starts: Vec<usize>,
}

impl Shared {
    /// The runs of equal hashes of length two or more. Sorting is split by
    /// the hash's top byte into 256 buckets (one counting pass), each
    /// bucket sorted on its own, in parallel; the buckets in order are then
    /// one sorted array.
    pub fn of(pairs: Pairs) -> Shared {
        let mut counts = [0usize; 257];
        for &(h, _) in &pairs {
            counts[(h >> 56) as usize + 1] += 1;
        }
        for b in 0..256 {
            counts[b + 1] += counts[b];
        }
        let bounds = counts;
        let mut sorted: Pairs = vec![(0, 0); pairs.len()];
        let mut next = counts;
        for p in pairs {
            let b = (p.0 >> 56) as usize;
            sorted[next[b]] = p;
            next[b] += 1;
        }
        let mut slices: Vec<&mut [(u64, u32)]> = Vec::with_capacity(256);
        let mut rest: &mut [(u64, u32)] = &mut sorted;
        for b in 0..256 {
            let (head, tail) = rest.split_at_mut(bounds[b + 1] - bounds[b]);
            slices.push(head);
            rest = tail;
        }
        let parts: Vec<Shared> = slices
            .into_par_iter()
            .map(|bucket| {
                // The same split by the next byte, then small sorts (a
                // bucket of a 10M store is ~40k pairs, a sub-bucket ~150).
                let mut counts = [0usize; 257];
                for &(h, _) in bucket.iter() {
                    counts[((h >> 48) & 0xFF) as usize + 1] += 1;
                }
                for b in 0..256 {
                    counts[b + 1] += counts[b];
                }
                let mut next = counts;
                let mut scratch = vec![(0u64, 0u32); bucket.len()];
                for &p in bucket.iter() {
                    let b = ((p.0 >> 48) & 0xFF) as usize;
                    scratch[next[b]] = p;
                    next[b] += 1;
                }
                for b in 0..256 {
                    scratch[counts[b]..counts[b + 1]].sort_unstable();
                }
                let bucket = scratch;
                let mut part = Shared::default();
                let mut i = 0;
                while i < bucket.len() {
                    let mut j = i + 1;
                    while j < bucket.len() && bucket[j].0 == bucket[i].0 {
                        j += 1;
                    }
                    if j - i > 1 {
                        part.starts.push(part.members.len());
                        part.members.extend(bucket[i..j].iter().map(|&(_, o)| o));
                    }
                    i = j;
                }
                part
            })
            .collect();
        let mut shared = Shared::default();
        for part in parts {
            let base = shared.members.len();
            shared.starts.extend(part.starts.iter().map(|s| s + base));
            shared.members.extend(part.members);
        }
        shared.starts.push(shared.members.len());
        shared
    }

    /// Number of shared values.
    pub fn len(&self) -> usize {
        self.starts.len().saturating_sub(1)
    }

    /// The ordinals of run `r`.
    pub fn run(&self, r: usize) -> &[u32] {
        &self.members[self.starts[r]..self.starts[r + 1]]
    }

    /// Splits every run whose members do not all hold the same real value
    /// (a hash collision) by value, dropping the parts left with one
    /// member. Returns whether anything was split.
    pub fn refine<V: Ord>(&mut self, value: impl Fn(u32) -> V + Sync) -> bool {
        let collided: Vec<usize> = (0..self.len())
            .into_par_iter()
            .filter(|&r| {
                let run = self.run(r);
                run.iter().any(|&o| value(o) != value(run[0]))
            })
            .collect();
        if collided.is_empty() {
            return false;
        }
        let mut refined = Shared::default();
        let mut c = collided.iter().peekable();
        for r in 0..self.len() {
            let mut run = self.run(r).to_vec();
            if c.peek() == Some(&&r) {
                c.next();
                run.sort_by(|&a, &b| value(a).cmp(&value(b)).then(a.cmp(&b)));
                for group in run.chunk_by(|&a, &b| value(a) == value(b)) {
                    if group.len() > 1 {
                        refined.starts.push(refined.members.len());
                        refined.members.extend_from_slice(group);
                    }
                }
            } else {
                refined.starts.push(refined.members.len());
                refined.members.extend_from_slice(&run);
            }
        }
        refined.starts.push(refined.members.len());
        *self = refined;
        true
    }
}

/// Union-find over contact ordinals (union by size, path halving).
#[derive(Debug, Clone)]
pub struct Clusters {
    parent: Vec<u32>,
    size: Vec<u32>,
}

impl Clusters {
    /// Connects the contacts of every run of every key.
    pub fn of(n: usize, keys: &[Shared]) -> Clusters {
        let mut uf = Clusters {
            parent: (0..n as u32).collect(),
            size: vec![1; n],
        };
        for shared in keys {
            for r in 0..shared.len() {
                let run = shared.run(r);
                for &o in &run[1..] {
                    uf.union(run[0], o);
                }
            }
        }
        uf
    }

    pub fn root(&mut self, mut x: u32) -> u32 {
        while self.parent[x as usize] != x {
            let grand = self.parent[self.parent[x as usize] as usize];
            self.parent[x as usize] = grand;
            x = grand;
        }
        x
    }

    fn union(&mut self, a: u32, b: u32) {
        let (mut a, mut b) = (self.root(a), self.root(b));
        if a == b {
            return;
        }
        if self.size[a as usize] < self.size[b as usize] {
            std::mem::swap(&mut a, &mut b);
        }
        self.parent[b as usize] = a;
        self.size[a as usize] += self.size[b as usize];
    }

    /// The clusters of two or more, as lists of ordinals (in the CSR form
    /// of [`Shared`]): members sorted by id, clusters by their smallest id.
    /// Also each ordinal's cluster (`u32::MAX`: none).
    pub fn groups(&mut self, ids: &[i64]) -> (Shared, Vec<u32>) {
        let n = ids.len();
        // The clustered ordinals (a tenth of the store, typically) with
        // their roots, in id order (the scan's order, usually already so).
        let mut clustered: Vec<(u32, u32)> = (0..n as u32)
            .filter_map(|x| {
                let r = self.root(x);
                (self.size[r as usize] > 1).then_some((x, r))
            })
            .collect();
        if !ids.is_sorted() {
            clustered.par_sort_unstable_by_key(|&(x, _)| ids[x as usize]);
        }
        // Clusters are numbered as their first member (smallest id) comes.
        let mut slot = vec![u32::MAX; n];
        let mut cluster_of = vec![u32::MAX; n];
        let mut counts: Vec<usize> = Vec::new();
        for &(x, r) in &clustered {
            let r = r as usize;
            if slot[r] == u32::MAX {
                slot[r] = counts.len() as u32;
                counts.push(0);
            }
            counts[slot[r] as usize] += 1;
            cluster_of[x as usize] = slot[r];
        }
        let mut starts = Vec::with_capacity(counts.len() + 1);
        let mut total = 0;
        for &c in &counts {
            starts.push(total);
            total += c;
        }
        starts.push(total);
        let mut next = starts.clone();
        let mut members = vec![0u32; total];
        for &(x, _) in &clustered {
            let c = cluster_of[x as usize] as usize;
            members[next[c]] = x;
            next[c] += 1;
        }
        (Shared { members, starts }, cluster_of)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn runs(shared: &Shared) -> Vec<Vec<u32>> {
        let mut runs: Vec<Vec<u32>> = (0..shared.len())
            .map(|r| {
                let mut run = shared.run(r).to_vec();
                run.sort_unstable();
                run
            })
            .collect();
        runs.sort();
        runs
    }

    #[test]
    fn runs_are_the_hashes_held_twice_or_more() {
        // Hashes spread over several top-byte buckets, unsorted.
        let pairs = vec![
            (7u64 << 56 | 1, 0),
            (1, 1),
            (7 << 56 | 1, 2),
            (3 << 56, 3),
            (1, 4),
            (1, 5),
            (9, 6),
        ];
        let shared = Shared::of(pairs);
        assert_eq!(shared.len(), 2);
        assert_eq!(runs(&shared), vec![vec![0, 2], vec![1, 4, 5]]);
        assert_eq!(Shared::of(Vec::new()).len(), 0);
    }

    #[test]
    fn clusters_connect_across_keys_in_chains() {
        // 0-1 share an email, 1-2 a phone, 2-3 an email: one chain; 4-5
        // share a phone; 6 alone.
        let emails = Shared::of(vec![(10, 0), (10, 1), (20, 2), (20, 3), (30, 6)]);
        let phones = Shared::of(vec![(5, 1), (5, 2), (6, 4), (6, 5), (7, 0)]);
        let mut uf = Clusters::of(7, &[emails, phones]);
        let ids = [50i64, 10, 40, 30, 20, 60, 5];
        let (groups, cluster_of) = uf.groups(&ids);
        assert_eq!(groups.len(), 2);
        assert_eq!(groups.run(0), [1, 3, 2, 0]);
        assert_eq!(groups.run(1), [4, 5]);
        assert_eq!(cluster_of, [0, 0, 0, 0, 1, 1, u32::MAX]);
        // Ids in ordinal order give the same clusters.
        let mut uf = Clusters::of(7, &[Shared::of(vec![(1, 0), (1, 6)]), Shared::default()]);
        let (groups, _) = uf.groups(&[1, 2, 3, 4, 5, 6, 7]);
        assert_eq!(groups.run(0), [0, 6]);
    }

    #[test]
    fn a_hash_collision_never_joins_contacts() {
        // Ordinals 0, 1, 2 share hash 1, but 2's value differs; 3 and 4
        // collide alone.
        let values = ["a@x.cz", "a@x.cz", "b@y.cz", "c@z.cz", "d@w.cz"];
        let mut shared = Shared::of(vec![(1, 0), (1, 1), (1, 2), (2, 3), (2, 4)]);
        assert_eq!(shared.len(), 2);
        assert!(shared.refine(|o| values[o as usize]));
        assert_eq!(runs(&shared), vec![vec![0, 1]]);
        assert!(!shared.refine(|o| values[o as usize]));
        let mut uf = Clusters::of(5, &[shared]);
        let (groups, _) = uf.groups(&[1, 2, 3, 4, 5]);
        assert_eq!((groups.len(), groups.run(0)), (1, &[0u32, 1][..]));
    }
}
