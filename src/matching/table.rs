//! The hash table behind the store index and the in-file duplicate groups:
//! distinct key values (kept in an arena of the caller's) -> a `u32`.
//!
//! Probing tables of millions of values is bound by cache misses, one or
//! two per probe, so the table is laid out for prefetching: open
//! addressing with linear probing in one flat array of 8-byte slots, the
//! home slot of a hash known without touching the table. Callers that
//! probe a run of rows prefetch the home slots of rows a few ahead
//! ([`SpanTable::prefetch`]) and the misses overlap (hashbrown, used
//! before, gives no way to prefetch). A slot holds 12 bits of the value's
//! hash, so a probe reads the arena only for a value that is likely the
//! one sought; equality of the bytes decides, never the hash. A value's
//! item is in the arena just before it, on the line the comparison reads
//! anyway, so the table holds only where values are.

use xxhash_rust::xxh3::xxh3_64;

/// Values this long or longer are stored after their length (8 bytes), so
/// a span's length field stays small and a slot fits in 8 bytes.
const LONG: usize = (1 << 12) - 1;

/// Below 1 TB: where a value may start.
const START_LIMIT: usize = 1 << 40;

/// Where a value is in an [`Arena`], in 52 bits: where its entry starts
/// (below 1 TB) in bits 12..52 and its length in the low 12 bits
/// ([`LONG`]: the length is in the arena, before the value).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(super) struct Span(u64);

impl Span {
    fn new(start: usize, len: usize) -> Option<Span> {
        (start < START_LIMIT).then(|| Span((start as u64) << 12 | len.min(LONG) as u64))
    }

    fn start(self) -> usize {
        (self.0 >> 12) as usize
    }

    fn short_len(self) -> usize {
        (self.0 & LONG as u64) as usize
    }
}

/// Key values, one after another, each after its item (4 bytes) and, when
/// [`LONG`], its length.
#[derive(Debug, Default)]
pub(super) struct Arena {
    bytes: Vec<u8>,
}

impl Arena {
    pub(super) fn with_capacity(bytes: usize) -> Arena {
        let mut arena = Arena::default();
        arena.reserve(bytes);
        arena
    }

    pub(super) fn reserve(&mut self, bytes: usize) {
        reserve_on_huge_pages(&mut self.bytes, bytes);
    }

    /// Stores a value with its item; `None` once the arena holds 1 TB.
    pub(super) fn push(&mut self, item: u32, value: &[u8]) -> Option<Span> {
        let span = Span::new(self.bytes.len(), value.len())?;
        self.bytes.extend_from_slice(&item.to_le_bytes());
        if value.len() >= LONG {
            self.bytes.extend_from_slice(&(value.len() as u64).to_le_bytes());
        }
        self.bytes.extend_from_slice(value);
        Some(span)
    }

    pub(super) fn get(&self, span: Span) -> &[u8] {
        let (mut start, mut len) = (span.start() + ITEM, span.short_len());
        if len == LONG {
            let prefix = self.bytes[start..start + 8].try_into().expect("8 bytes");
            len = u64::from_le_bytes(prefix) as usize;
            start += 8;
        }
        &self.bytes[start..start + len]
    }

    /// The item stored with the value at `span`.
    pub(super) fn item(&self, span: Span) -> u32 {
        let start = span.start();
        u32::from_le_bytes(self.bytes[start..start + ITEM].try_into().expect("4 bytes"))
    }

    /// Replaces the item stored with the value at `span`.
    pub(super) fn set_item(&mut self, span: Span, item: u32) {
        let start = span.start();
        self.bytes[start..start + ITEM].copy_from_slice(&item.to_le_bytes());
    }
}

/// Bytes of an item in the arena.
const ITEM: usize = 4;

/// A slot: the span in the low 52 bits, the tag (12 bits of the hash,
/// never 0) above, so an empty slot is 0.
type Slot = u64;

/// Distinct values (spans of an arena) -> an item each.
#[derive(Debug)]
pub(super) struct SpanTable {
    slots: Vec<Slot>,
    mask: usize,
    len: usize,
}

/// The table is regrown past 4/5 full, which keeps linear probing short.
fn buckets_for(entries: usize) -> usize {
    (entries.saturating_mul(5) / 4 + 1).next_power_of_two().max(16)
}

/// The top 12 bits of a hash (the low bits choose the home slot), never 0,
/// in place in a slot.
fn tag(hash: u64) -> u64 {
    (hash >> 52 | 1) << 52
}

const TAG_MASK: u64 = !0 << 52;

impl SpanTable {
    /// A table for `entries` values, in one allocation.
    pub(super) fn with_capacity(entries: usize) -> SpanTable {
        let buckets = buckets_for(entries);
        // Zeroed by writing, not by the system (`vec![..]` would get zeroed
        // pages): a probe reading an untouched system-zeroed page maps the
        // shared zero page, and the first insert into that page then faults
        // again and flushes every core's TLB (measured at 10M x 10M: 2% of
        // the import's CPU).
        let mut slots = Vec::new();
        reserve_on_huge_pages(&mut slots, buckets);
        slots.resize(buckets, 0);
        SpanTable {
            slots,
            mask: buckets - 1,
            len: 0,
        }
    }

    pub(super) fn len(&self) -> usize {
        self.len
    }

    /// Asks the CPU to load the home slot of `hash`, for a probe soon.
    #[inline]
    pub(super) fn prefetch(&self, hash: u64) {
        crate::prefetch::line(&self.slots[hash as usize & self.mask]);
    }

    /// The slot holding `value` (`Ok`), or the empty slot where it would go.
    pub(super) fn search(&self, hash: u64, arena: &Arena, value: &[u8]) -> Result<usize, usize> {
        let tag = tag(hash);
        let mut i = hash as usize & self.mask;
        loop {
            let slot = self.slots[i];
            if slot == 0 {
                return Err(i);
            }
            if slot & TAG_MASK == tag && arena.get(span(slot)) == value {
                return Ok(i);
            }
            i = (i + 1) & self.mask;
        }
    }

    /// The item of `value`, if the table holds it.
    pub(super) fn get(&self, hash: u64, arena: &Arena, value: &[u8]) -> Option<u32> {
        self.search(hash, arena, value).ok().map(|i| arena.item(self.span(i)))
    }

    /// Where the value of the slot `search` found is (its item:
    /// [`Arena::item`]).
    pub(super) fn span(&self, slot: usize) -> Span {
        span(self.slots[slot])
    }

    /// Fills the empty slot `search` gave (after [`reserve`](Self::reserve)).
    pub(super) fn fill(&mut self, slot: usize, hash: u64, value: Span) {
        debug_assert_eq!(self.slots[slot], 0, "slot is empty");
        self.slots[slot] = value.0 | tag(hash);
        self.len += 1;
    }

    /// Makes room for `entries` more values; call before the `search`
    /// whose empty slot is filled, since regrowing moves every value. The
    /// values' hashes are recomputed from the arena (xxh3, as every caller
    /// hashes).
    pub(super) fn reserve(&mut self, entries: usize, arena: &Arena) {
        let needed = self.len.saturating_add(entries);
        if needed.saturating_mul(5) <= self.slots.len() * 4 {
            return;
        }
        let mut grown = SpanTable::with_capacity(needed);
        for &slot in self.slots.iter().filter(|&&s| s != 0) {
            let value = span(slot);
            let hash = xxh3_64(arena.get(value));
            let mut i = hash as usize & grown.mask;
            while grown.slots[i] != 0 {
                i = (i + 1) & grown.mask;
            }
            grown.fill(i, hash, value);
        }
        *self = grown;
    }
}

fn span(slot: Slot) -> Span {
    Span(slot & !TAG_MASK)
}

/// Makes room in `v` for `additional` more items, on 2 MiB pages where
/// it can ([`huge_pages`]): for tables and arenas read at random.
pub(crate) fn reserve_on_huge_pages<T>(v: &mut Vec<T>, additional: usize) {
    v.reserve(additional);
    huge_pages(v);
}

/// Asks Linux to back the spare capacity of `v` (the part not yet
/// written) with 2 MiB pages. Tables of millions of keys are read at
/// random: with 4 KiB pages nearly every probe also misses the TLB, and
/// its page walk is a miss of its own (measured at 10M x 10M: the
/// prefetches of the in-file resolver alone stalled for ~2 s of CPU).
/// Only large allocations are worth it; elsewhere this does nothing, as
/// it does where the process has huge pages off (kontakt's default on
/// Linux, `KONTAKT_THP=1` to keep them: see src/main.rs).
fn huge_pages<T>(v: &Vec<T>) {
    #[cfg(target_os = "linux")]
    {
        const HUGE: usize = 2 << 20;
        let base = v.as_ptr() as usize;
        let size = size_of::<T>();
        let start = (base + v.len() * size).next_multiple_of(HUGE);
        let end = base + v.capacity() * size;
        let end = end - end % HUGE;
        if end > start {
            // SAFETY: madvise only changes how the kernel backs pages of
            // this process's own allocation; no memory is read or written.
            unsafe { libc::madvise(start as *mut libc::c_void, end - start, libc::MADV_HUGEPAGE) };
        }
    }
    #[cfg(not(target_os = "linux"))]
    let _ = v;
}

#[cfg(test)]
mod tests {
    use super::*;

    /// The flags Linux shows for the mapping holding `address`.
    #[cfg(target_os = "linux")]
    fn vm_flags(address: usize) -> String {
        let smaps = std::fs::read_to_string("/proc/self/smaps").expect("smaps");
        let mut inside = false;
        for line in smaps.lines() {
            if let Some((range, _)) = line.split_once(' ')
                && let Some((from, to)) = range.split_once('-')
                && let (Ok(from), Ok(to)) = (usize::from_str_radix(from, 16), usize::from_str_radix(to, 16))
            {
                inside = (from..to).contains(&address);
            } else if inside && let Some(flags) = line.strip_prefix("VmFlags:") {
                return flags.trim().to_string();
            }
        }
        panic!("no mapping holds {address:#x}")
    }

    #[cfg(target_os = "linux")]
    #[test]
    fn large_tables_are_advised_onto_huge_pages() {
        const HUGE: usize = 2 << 20;
        let table: Vec<u64> = Vec::with_capacity(8 * HUGE / 8);
        let inside = (table.as_ptr() as usize).next_multiple_of(HUGE);
        assert!(!vm_flags(inside).split(' ').any(|f| f == "hg"), "advised before");
        huge_pages(&table);
        assert!(vm_flags(inside).split(' ').any(|f| f == "hg"));
        // Nothing to do (and nothing done) for small or empty vectors.
        huge_pages(&Vec::<u64>::new());
        huge_pages(&vec![1u8; 100]);
    }

    /// An arena and a table over it, inserting with a chosen hash.
    #[derive(Default)]
    struct Fixture {
        arena: Arena,
        table: Option<SpanTable>,
    }

    impl Fixture {
        fn table(&self) -> &SpanTable {
            self.table.as_ref().expect("a value was inserted")
        }

        fn insert(&mut self, hash: u64, value: &str, item: u32) {
            let table = self.table.get_or_insert_with(|| SpanTable::with_capacity(0));
            table.reserve(1, &self.arena);
            match table.search(hash, &self.arena, value.as_bytes()) {
                Ok(slot) => self.arena.set_item(table.span(slot), item),
                Err(slot) => {
                    let span = self.arena.push(item, value.as_bytes()).expect("fits");
                    table.fill(slot, hash, span);
                }
            }
        }

        fn get(&self, hash: u64, value: &str) -> Option<u32> {
            self.table.as_ref()?.get(hash, &self.arena, value.as_bytes())
        }
    }

    #[test]
    fn values_sharing_a_hash_are_told_apart_by_their_bytes() {
        let mut f = Fixture::default();
        // Every value on one hash: found by equality, along the probe run.
        for (i, v) in ["a", "b", "c", "d"].iter().enumerate() {
            f.insert(42, v, i as u32);
        }
        assert_eq!(f.get(42, "c"), Some(2));
        assert_eq!(f.get(42, "e"), None);
        assert_eq!(f.table().len(), 4);
        // The same value again finds its slot; no second one.
        f.insert(42, "b", 9);
        assert_eq!((f.get(42, "b"), f.table().len()), (Some(9), 4));
    }

    #[test]
    fn a_probe_run_wraps_past_the_last_slot() {
        let mut f = Fixture::default();
        let last = buckets_for(0) as u64 - 1;
        f.insert(last, "x", 1);
        f.insert(last, "y", 2);
        assert_eq!((f.get(last, "x"), f.get(last, "y")), (Some(1), Some(2)));
        assert_eq!(f.table().search(last, &f.arena, b"z"), Err(1));
    }

    #[test]
    fn regrowing_keeps_every_value() {
        let mut f = Fixture::default();
        let values: Vec<String> = (0..10_000).map(|i| format!("{i}@x.cz")).collect();
        for (i, v) in values.iter().enumerate() {
            f.insert(xxh3_64(v.as_bytes()), v, i as u32);
        }
        assert_eq!(f.table().len(), values.len());
        assert!(f.table().slots.len() >= values.len() * 5 / 4);
        for (i, v) in values.iter().enumerate() {
            assert_eq!(f.get(xxh3_64(v.as_bytes()), v), Some(i as u32), "{v}");
        }
        assert_eq!(f.get(xxh3_64(b"none@x.cz"), "none@x.cz"), None);
    }

    #[test]
    fn spans_keep_starts_past_4_gb_and_refuse_1_tb() {
        let first = Span::new((5 << 32) + 7, 300).expect("fits");
        assert_eq!((first.start(), first.short_len()), ((5 << 32) + 7, 300));
        let last = Span::new(START_LIMIT - 1, 1 << 30).expect("fits");
        assert_eq!((last.start(), last.short_len()), (START_LIMIT - 1, LONG));
        assert!(Span::new(START_LIMIT, 1).is_none());
        // A slot keeps a span whole beside any tag.
        let mut table = SpanTable::with_capacity(1);
        table.fill(3, u64::MAX, last);
        assert_eq!((table.span(3), table.slots[3] & TAG_MASK), (last, TAG_MASK));
    }

    #[test]
    fn long_values_are_stored_after_their_length() {
        let mut f = Fixture::default();
        let long = "x".repeat(LONG);
        let longer = "x".repeat(LONG + 1);
        f.insert(1, &long, 1);
        f.insert(1, &longer, 2);
        f.insert(1, "x", 3);
        assert_eq!(
            (f.get(1, &long), f.get(1, &longer), f.get(1, "x")),
            (Some(1), Some(2), Some(3))
        );
        assert_eq!(f.get(1, &"x".repeat(LONG + 2)), None);
    }
}
