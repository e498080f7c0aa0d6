//! Duplicates inside the file (`--in-file-duplicates first|last|fail`), by
//! the same key logic as matching against the store: a row belongs to the
//! group of an earlier row with the same primary key value; else, when its
//! primary key is empty or finds nothing (in the store or the file), to the
//! group of an earlier row with the same secondary key value. A group is
//! known by the keys of its first row: those are what a contact created
//! from it would be matched by, so a later row that would match that new
//! contact is in its group and never creates a second one.
//!
//! Rows are resolved one by one in file order. `first` decides at once;
//! `last` and `fail` need each group's size and last row, so the import
//! resolves the file twice (the same rows give the same groups) and decides
//! the second time with the first run's [`GroupStats`].

use super::table::{Arena, SpanTable, reserve_on_huge_pages};

#[derive(Debug, Clone, Copy, PartialEq, Eq, Default, clap::ValueEnum)]
pub enum Duplicates {
    /// The first row of each key wins; later ones fail as `not_unique`.
    #[default]
    First,
    /// The last row of each key wins; earlier ones fail as `not_unique`.
    Last,
    /// Every row sharing a key fails as `not_unique`.
    Fail,
}

/// What happens to one row.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum InFileVerdict {
    /// The row goes on to its category.
    Keep,
    /// The row fails as `not_unique`; `winner` is the row that goes on in its
    /// place (none with `fail`), `first` the group's first row.
    Duplicate { first: u64, winner: Option<u64> },
}

/// One key's distinct values in the file so far: value -> group.
#[derive(Debug)]
struct KeyGroups {
    table: SpanTable,
}

impl Default for KeyGroups {
    fn default() -> Self {
        KeyGroups {
            table: SpanTable::with_capacity(0),
        }
    }
}

impl KeyGroups {
    fn find(&self, arena: &Arena, hash: u64, value: &str) -> Option<u32> {
        self.table.get(hash, arena, value.as_bytes())
    }

    /// Puts `value` in `group`, unless it has a group already.
    fn insert(&mut self, arena: &mut Arena, hash: u64, value: &str, group: u32) {
        self.table.reserve(1, arena);
        let Err(slot) = self.table.search(hash, arena, value.as_bytes()) else {
            return;
        };
        if let Some(span) = arena.push(group, value.as_bytes()) {
            self.table.fill(slot, hash, span);
        }
    }
}

/// Each group's size and last row, from a first run over the file.
#[derive(Debug, Default, Clone)]
pub struct GroupStats {
    sizes: Vec<u32>,
    last: Vec<u64>,
}

/// The in-file duplicate resolver.
#[derive(Debug)]
pub struct InFile {
    mode: Duplicates,
    /// Key values of group first rows.
    arena: Arena,
    primary: KeyGroups,
    secondary: KeyGroups,
    /// Group -> its first row.
    first_row: Vec<u64>,
    /// Group -> rows so far and the last of them.
    stats: GroupStats,
    /// With `last`/`fail`: the first run's stats.
    known: Option<GroupStats>,
}

impl InFile {
    /// A resolver that decides as it goes (`first`), or that collects
    /// stats for a second run (`last`/`fail`, `known` = None), or that
    /// decides with the first run's stats.
    pub fn new(mode: Duplicates, known: Option<GroupStats>) -> InFile {
        InFile {
            mode,
            arena: Arena::default(),
            primary: KeyGroups::default(),
            secondary: KeyGroups::default(),
            first_row: Vec::new(),
            stats: GroupStats::default(),
            known,
        }
    }

    /// Makes room for about `rows` rows, so the tables are not regrown (and
    /// rehashed) as the file goes on.
    pub fn reserve(&mut self, rows: usize) {
        // Both keys: a file may hold a phone on every row (a table grown
        // past its reserve rehashes every value it holds).
        self.primary.table.reserve(rows, &self.arena);
        self.secondary.table.reserve(rows, &self.arena);
        // An email and a phone per row, each with its group, are ~48 bytes
        // (a regrown arena copies all it holds; pages reserved and not used
        // cost nothing).
        self.arena.reserve(rows * 48);
        reserve_on_huge_pages(&mut self.first_row, rows);
        if self.collects_stats() {
            reserve_on_huge_pages(&mut self.stats.sizes, rows);
            reserve_on_huge_pages(&mut self.stats.last, rows);
        }
    }

    /// Whether this mode needs a first run to collect [`GroupStats`].
    pub fn needs_stats(mode: Duplicates) -> bool {
        mode != Duplicates::First
    }

    /// Whether groups' sizes and last rows are counted: only for a first
    /// run (`first` decides without them, and a second run has them).
    fn collects_stats(&self) -> bool {
        Self::needs_stats(self.mode) && self.known.is_none()
    }

    /// The stats collected so far (after a first run).
    pub fn into_stats(self) -> GroupStats {
        self.stats
    }

    /// Asks the CPU to load where a row's key hashes would be, for a
    /// [`resolve`](Self::resolve) soon.
    pub fn prefetch(&self, primary: Option<u64>, secondary: Option<u64>) {
        if let Some(hash) = primary {
            self.primary.table.prefetch(hash);
        }
        if let Some(hash) = secondary {
            self.secondary.table.prefetch(hash);
        }
    }

    /// Resolves the next row, in file order. Keys are (xxh3 hash, value);
    /// `primary_found_in_store` says whether its primary key matched a
    /// stored contact (then its secondary key is not used, as in matching).
    /// Whether a row's primary key value is one of the file's groups: after
    /// [`InFile::resolve`] of a duplicate, whether it was the primary key
    /// that it shares (else the secondary).
    pub fn has_primary(&self, primary: Option<(u64, &str)>) -> bool {
        primary.is_some_and(|(h, v)| self.primary.find(&self.arena, h, v).is_some())
    }

    pub fn resolve(
        &mut self,
        row: u64,
        primary: Option<(u64, &str)>,
        secondary: Option<(u64, &str)>,
        primary_found_in_store: bool,
    ) -> InFileVerdict {
        let mut group = primary.and_then(|(h, v)| self.primary.find(&self.arena, h, v));
        if group.is_none() && !primary_found_in_store {
            group = secondary.and_then(|(h, v)| self.secondary.find(&self.arena, h, v));
        }
        let group = match group {
            Some(g) => g,
            None => {
                let g = u32::try_from(self.first_row.len()).expect("fewer than 4G groups");
                self.first_row.push(row);
                if self.collects_stats() {
                    self.stats.sizes.push(0);
                    self.stats.last.push(row);
                }
                if let Some((h, v)) = primary {
                    self.primary.insert(&mut self.arena, h, v, g);
                }
                if let Some((h, v)) = secondary {
                    self.secondary.insert(&mut self.arena, h, v, g);
                }
                g
            }
        };
        let g = group as usize;
        if self.collects_stats() {
            self.stats.sizes[g] += 1;
            self.stats.last[g] = row;
        }
        let first = self.first_row[g];
        // The row that goes on for this group (none: every row fails).
        let winner = match (self.mode, &self.known) {
            (Duplicates::First, _) | (_, None) => Some(first),
            (Duplicates::Last, Some(known)) => Some(known.last[g]),
            (Duplicates::Fail, Some(known)) => (known.sizes[g] == 1).then_some(row),
        };
        if winner == Some(row) {
            InFileVerdict::Keep
        } else {
            InFileVerdict::Duplicate { first, winner }
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use xxhash_rust::xxh3::xxh3_64;

    type Row = (u64, Option<&'static str>, Option<&'static str>, bool);

    fn key(v: Option<&'static str>) -> Option<(u64, &'static str)> {
        v.map(|v| (xxh3_64(v.as_bytes()), v))
    }

    fn run(mode: Duplicates, rows: &[Row]) -> Vec<InFileVerdict> {
        let known = InFile::needs_stats(mode).then(|| {
            let mut first = InFile::new(mode, None);
            for &(row, p, s, found) in rows {
                first.resolve(row, key(p), key(s), found);
            }
            first.into_stats()
        });
        let mut resolver = InFile::new(mode, known);
        rows.iter()
            .map(|&(row, p, s, found)| resolver.resolve(row, key(p), key(s), found))
            .collect()
    }

    const KEEP: InFileVerdict = InFileVerdict::Keep;
    fn dup(first: u64, winner: Option<u64>) -> InFileVerdict {
        InFileVerdict::Duplicate { first, winner }
    }

    const ROWS: &[Row] = &[
        (1, Some("a@x.cz"), Some("+420777000001"), false),
        (2, Some("b@x.cz"), None, false),
        // Same email as row 1.
        (3, Some("a@x.cz"), Some("+420777000009"), false),
        // New email, phone of row 1: would match the contact row 1 creates.
        (4, Some("c@x.cz"), Some("+420777000001"), false),
        // No email, phone of row 1.
        (5, None, Some("+420777000001"), false),
        // Its email matched a stored contact: the phone is not looked at.
        (6, Some("d@x.cz"), Some("+420777000001"), true),
        (7, None, Some("+420777000002"), false),
    ];

    #[test]
    fn first_keeps_the_first_row_of_each_key() {
        assert_eq!(
            run(Duplicates::First, ROWS),
            vec![
                KEEP,
                KEEP,
                dup(1, Some(1)),
                dup(1, Some(1)),
                dup(1, Some(1)),
                KEEP,
                KEEP
            ]
        );
    }

    #[test]
    fn last_keeps_the_last_row_of_each_group() {
        assert_eq!(
            run(Duplicates::Last, ROWS),
            vec![
                dup(1, Some(5)),
                KEEP,
                dup(1, Some(5)),
                dup(1, Some(5)),
                KEEP,
                KEEP,
                KEEP
            ]
        );
    }

    #[test]
    fn fail_fails_every_row_of_a_shared_key() {
        assert_eq!(
            run(Duplicates::Fail, ROWS),
            vec![dup(1, None), KEEP, dup(1, None), dup(1, None), dup(1, None), KEEP, KEEP]
        );
    }
}
