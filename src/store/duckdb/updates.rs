//! An import's staged updates in DuckDB, kept by range of contact ids and
//! applied one range at a time.
//!
//! DuckDB applies an `UPDATE … FROM` by a hash join of the staged rows
//! with the contacts, then deletes and re-inserts each changed row. One
//! join of all the staged rows of a large upsert does not fit DuckDB's
//! memory cap and spills (10M x 10M, 2.75M contacts updated: 45-60 s);
//! the same rows in parts of about [`PART_ROWS`] each take 10 x 1 s.
//! Each part reads only its own rows: the staged rows are written, as they
//! come, to an Arrow IPC file per range of contact ids ([`Buckets`]) in a
//! scratch directory beside the store, and each part's files are read
//! through an Arrow view into a temporary table the part's `UPDATE`
//! reads (all columns at once: DuckDB's scan of such a view expects the
//! stream to apply the columns and filters a query pushes into it, which
//! a plain stream does not). Staging them in DuckDB temporary tables
//! instead cost 3 s at 10M x 10M (an insert into a temporary table per
//! flush; the stream of new contacts paused for each), and scanning one
//! staging table once per part doubled each part's time.
//! See docs/DESIGN.md, "Applying the updates".

use std::fs::File;
use std::io::BufWriter;
use std::path::Path;

use arrow::array::{AsArray, UInt32Array};
use arrow::compute::take_record_batch;
use arrow::datatypes::{Int64Type, SchemaRef};
use arrow::error::ArrowError;
use arrow::ipc::reader::FileReader;
use arrow::ipc::writer::FileWriter;
use arrow::record_batch::RecordBatch;

use super::quote_ident;
use crate::apply::{Master, StoreField};
use crate::store::commit::UpdateValues;

/// Staged update rows per part: each part is one `UPDATE` whose join fits
/// in DuckDB's memory cap (512 MB by default). At 10M x 10M: 4 parts
/// 13.8 s, 8 parts 11.5 s, 16 parts 12.7 s (the update alone).
const PART_ROWS: usize = 384 * 1024;

/// Contact ids per bucket (a file), until [`MAX_BUCKETS`].
const BUCKET_IDS: i64 = 1024 * 1024;

/// Buckets at most (each has a file open while the import streams).
const MAX_BUCKETS: i64 = 16;

/// The sizes the staged updates are split by: [`PART_ROWS`] and
/// [`BUCKET_IDS`], or, for tests, `KONTAKT_TEST_UPDATE_PART_ROWS=N` for
/// both (so a small store is updated in many parts).
fn sizes() -> (usize, i64) {
    match std::env::var("KONTAKT_TEST_UPDATE_PART_ROWS")
        .ok()
        .and_then(|n| n.parse::<usize>().ok())
    {
        Some(n) if n > 0 => (n, n as i64),
        _ => (PART_ROWS, BUCKET_IDS),
    }
}

type Rows = Result<RecordBatch, ArrowError>;

/// Random characters that end a scratch directory's name.
const SCRATCH_RANDOM: usize = 6;

/// Where the scratch directories of the store at `store` are made, and the
/// start of their names: `.kontakt-updates-<store's file name>.`.
fn scratch(store: &Path) -> (&Path, String) {
    let parent = store
        .parent()
        .filter(|p| !p.as_os_str().is_empty())
        .unwrap_or(Path::new("."));
    let name = store.file_name().map(|n| n.to_string_lossy()).unwrap_or_default();
    (parent, format!(".kontakt-updates-{name}."))
}

/// Removes the scratch directories a killed import of the store at `store`
/// left: called where no other process can write the store (DuckDB's
/// lock), so none of them is in use.
pub(super) fn remove_stale_scratch(store: &Path) {
    let (parent, prefix) = scratch(store);
    let Ok(entries) = std::fs::read_dir(parent) else {
        return;
    };
    for entry in entries.flatten() {
        let name = entry.file_name();
        let Some(rest) = name.to_str().and_then(|n| n.strip_prefix(&prefix)) else {
            continue;
        };
        // Only this store's: `<prefix>` and the random part, nothing more.
        if rest.len() == SCRATCH_RANDOM && rest.bytes().all(|b| b.is_ascii_alphanumeric()) {
            let _ = std::fs::remove_dir_all(entry.path());
        }
    }
}

/// The staged update rows by range of contact ids: bucket `k` holds the
/// updates of the ids from `1 + k * width` (the last one up to the first
/// new id; only stored contacts are updated).
pub(super) struct Buckets {
    width: i64,
    first_id: i64,
    part_rows: usize,
    schema: SchemaRef,
    /// The scratch directory, made beside the store on the first update
    /// and removed with the import.
    dir: Option<tempfile::TempDir>,
    /// Each bucket's file, while rows are written to it.
    writers: Vec<Option<FileWriter<BufWriter<File>>>>,
    /// Rows staged into each bucket.
    rows: Vec<usize>,
    /// Whether the bucket has two rows for one contact (then the last one
    /// wins, which costs the update a window over the part's rows).
    repeated: Vec<bool>,
    /// The contacts staged so far, a bit per id.
    seen: Vec<u64>,
    /// The rows the updates' scan reads: one part's, once [`Buckets::read`]
    /// set them.
    reading: Vec<FileReader<File>>,
}

impl std::fmt::Debug for Buckets {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Buckets")
            .field("rows", &self.rows)
            .finish_non_exhaustive()
    }
}

impl Buckets {
    pub(super) fn new(first_id: i64, schema: SchemaRef) -> Buckets {
        let (part_rows, bucket_ids) = sizes();
        let stored = (first_id - 1).max(1);
        let count = ((stored + bucket_ids - 1) / bucket_ids).clamp(1, MAX_BUCKETS);
        Buckets::sized(first_id, (stored + count - 1) / count, part_rows, schema)
    }

    fn sized(first_id: i64, width: i64, part_rows: usize, schema: SchemaRef) -> Buckets {
        let count = ((first_id - 1).max(1) + width - 1) as usize / width as usize;
        Buckets {
            width,
            first_id,
            part_rows,
            schema,
            dir: None,
            writers: (0..count).map(|_| None).collect(),
            rows: vec![0; count],
            repeated: vec![false; count],
            seen: vec![0; (first_id.max(1) as usize).div_ceil(64)],
            reading: Vec::new(),
        }
    }

    fn bucket(&self, id: i64) -> usize {
        (((id - 1).max(0) / self.width) as usize).min(self.rows.len() - 1)
    }

    /// The ids of bucket `k`: from (inclusive), to (exclusive).
    fn range(&self, k: usize) -> (i64, i64) {
        let low = if k == 0 { i64::MIN } else { 1 + k as i64 * self.width };
        let high = if k + 1 == self.rows.len() {
            self.first_id
        } else {
            1 + (k as i64 + 1) * self.width
        };
        (low, high)
    }

    fn file(&self, k: usize) -> Option<std::path::PathBuf> {
        self.dir.as_ref().map(|d| d.path().join(format!("bucket-{k}.arrow")))
    }

    /// Writes update rows, each to its contact's bucket (the scratch
    /// directory is made beside `store` on the first rows).
    pub(super) fn push(&mut self, batch: &RecordBatch, store: &Path) -> Result<(), ArrowError> {
        let ids = batch
            .column_by_name("contact_id")
            .ok_or_else(|| ArrowError::SchemaError("updates without contact_id".into()))?
            .as_primitive::<Int64Type>();
        let mut rows: Vec<Vec<u32>> = vec![Vec::new(); self.rows.len()];
        for (i, &id) in ids.values().iter().enumerate() {
            let k = self.bucket(id);
            rows[k].push(i as u32);
            let (word, bit) = ((id.max(0) / 64) as usize, 1u64 << (id.max(0) % 64));
            match self.seen.get_mut(word) {
                Some(w) if *w & bit == 0 => *w |= bit,
                _ => self.repeated[k] = true,
            }
        }
        if self.dir.is_none() {
            let (parent, prefix) = scratch(store);
            let dir = tempfile::Builder::new()
                .prefix(&prefix)
                .rand_bytes(SCRATCH_RANDOM)
                .tempdir_in(parent)
                .map_err(|e| ArrowError::IoError(format!("{}: {e}", parent.display()), e))?;
            self.dir = Some(dir);
        }
        for (k, indices) in rows.into_iter().enumerate() {
            if indices.is_empty() {
                continue;
            }
            self.rows[k] += indices.len();
            let part = if indices.len() == batch.num_rows() {
                batch.clone()
            } else {
                take_record_batch(batch, &UInt32Array::from(indices))?
            };
            if self.writers[k].is_none() {
                let path = self.file(k).expect("made above");
                let file =
                    File::create(&path).map_err(|e| ArrowError::IoError(format!("{}: {e}", path.display()), e))?;
                self.writers[k] = Some(FileWriter::try_new_buffered(file, &self.schema)?);
            }
            self.writers[k].as_mut().expect("made above").write(&part)?;
        }
        Ok(())
    }

    /// Rows staged in all (rows, not contacts).
    pub(super) fn staged(&self) -> usize {
        self.rows.iter().sum()
    }

    /// Ends the writing (each file gets its footer).
    pub(super) fn finish(&mut self) -> Result<(), ArrowError> {
        for writer in self.writers.iter_mut() {
            if let Some(mut w) = writer.take() {
                w.finish()?;
            }
        }
        Ok(())
    }

    /// The updates' scan reads `part`'s rows from now on, from the start.
    pub(super) fn read(&mut self, part: &Part) -> Result<(), ArrowError> {
        self.reading.clear();
        for &k in part.buckets.iter().rev() {
            let path = self.file(k).expect("a part has rows");
            let file = File::open(&path).map_err(|e| ArrowError::IoError(format!("{}: {e}", path.display()), e))?;
            self.reading.push(FileReader::try_new(file, None)?);
        }
        Ok(())
    }

    /// The next rows of the part being read.
    pub(super) fn next(&mut self) -> Option<Rows> {
        loop {
            let reader = self.reading.last_mut()?;
            match reader.next() {
                Some(rows) => return Some(rows),
                None => {
                    self.reading.pop();
                }
            }
        }
    }

    /// The parts the update is applied in, in id order: neighbouring
    /// buckets whose rows fit in one part together; a bucket with more
    /// rows is one part to be split by the quantiles of its ids.
    pub(super) fn parts(&self) -> Vec<Part> {
        let mut parts: Vec<Part> = Vec::new();
        for k in (0..self.rows.len()).filter(|&k| self.rows[k] > 0) {
            let (low, high) = self.range(k);
            match parts.last_mut() {
                Some(last) if last.split == 1 && last.rows + self.rows[k] <= self.part_rows => {
                    last.buckets.push(k);
                    last.rows += self.rows[k];
                    last.high = high;
                    last.repeated |= self.repeated[k];
                }
                _ => parts.push(Part {
                    buckets: vec![k],
                    rows: self.rows[k],
                    low,
                    high,
                    split: self.rows[k].div_ceil(self.part_rows),
                    repeated: self.repeated[k],
                }),
            }
        }
        parts
    }
}

/// Buckets applied by one `UPDATE` (or, when `split` > 1, by `split` of
/// them over the quantiles of the ids of its one bucket).
#[derive(Debug, PartialEq, Eq)]
pub(super) struct Part {
    pub(super) buckets: Vec<usize>,
    rows: usize,
    pub(super) low: i64,
    pub(super) high: i64,
    pub(super) split: usize,
    /// Some contact has two rows in the part.
    pub(super) repeated: bool,
}

/// The set-based update of one part: the last staged row per contact
/// wins; `--master` decides between file and stored values; tags are only
/// added.
///
/// `tags` is always set, to itself when the file gives none: DuckDB
/// updates a row in place unless the update sets a list column, when it
/// deletes the row and inserts it anew, and in place is the slower way for
/// the many contacts an import updates (10M x 10M in 8 parts: 20 s in
/// place, then 36 s to commit, against 9 s rewritten; unparted, in place
/// had spilled 12 GB to disk after 4 minutes).
#[derive(Debug)]
pub(super) struct UpdateSql {
    set: String,
    changes: String,
    /// The select list of what an undo record keeps of each contact the
    /// update changes.
    record: String,
}

impl UpdateSql {
    pub(super) fn new(fields: &[StoreField], hashed: &[usize], master: Master) -> UpdateSql {
        let UpdateValues { values, changes } = UpdateValues::new(fields, hashed, master, |q| {
            format!("list_concat(c.{q}, list_filter(coalesce(u.{q}, []), x -> NOT list_contains(c.{q}, x)))")
        });
        let set: Vec<String> = values
            .iter()
            .map(|(name, value)| format!("{} = {value}", quote_ident(name)))
            .collect();
        let record = super::undo::changed_columns("c", &values);
        UpdateSql {
            set: set.iter().map(|s| format!("{s}, ")).collect(),
            changes,
            record,
        }
    }

    /// The earlier values, for the undo record, of the contacts
    /// [`Self::part`] with the same arguments changes (run just before it:
    /// the same join and condition, so exactly those contacts), of the
    /// columns it changes in each (see [`super::undo::changed_columns`]:
    /// at 1M x 1M the record took 18 MB instead of 40 MB, and writing it
    /// 0.08 s instead of 0.30 s). A second
    /// join of the same rows: DuckDB's `UPDATE` cannot return the values
    /// it overwrites, and applying the part as our own delete and insert
    /// from one join (which could) was slower (docs/DESIGN.md, "Undo").
    pub(super) fn record_part(&self, part: &Part, source: &str, low: i64, high: i64) -> String {
        format!(
            "SELECT {} FROM contacts AS c, ({}) AS u \
             WHERE c.id = u.contact_id AND c.id >= {low} AND c.id < {high} AND ({})",
            self.record,
            Self::staged(part, source, low, high),
            self.changes
        )
    }

    /// The staged rows of `part` for contacts `low` to `high`, the last
    /// one per contact.
    fn staged(part: &Part, source: &str, low: i64, high: i64) -> String {
        format!(
            "SELECT * FROM {source} WHERE contact_id >= {low} AND contact_id < {high}{}",
            if part.repeated {
                " QUALIFY row_number() OVER (PARTITION BY contact_id ORDER BY \"row\" DESC) = 1"
            } else {
                ""
            }
        )
    }

    /// The update of the contacts with ids from `low` to `high`
    /// (exclusive) by the staged rows of `part` (read from `source`), at
    /// the time of its one
    /// parameter. The bounds are literals: DuckDB prunes the contacts'
    /// row groups by them, which it does not for parameters (10M x 10M:
    /// a part took 2.5 s with parameters, 2.0 s with literals). The last
    /// row per contact is chosen only where a contact has two (a part
    /// took 1.18 s with the window, 0.97 s without).
    pub(super) fn part(&self, part: &Part, source: &str, low: i64, high: i64) -> String {
        format!(
            "UPDATE contacts AS c SET {}updated_at = make_timestamp(?) \
             FROM ({}) AS u \
             WHERE c.id = u.contact_id AND c.id >= {low} AND c.id < {high} AND ({})",
            self.set,
            Self::staged(part, source, low, high),
            self.changes
        )
    }
}

#[cfg(test)]
mod tests {
    use std::sync::Arc;

    use arrow::array::{ArrayRef, Int64Array};

    use super::*;

    fn ids(ids: &[i64]) -> RecordBatch {
        RecordBatch::try_from_iter([("contact_id", Arc::new(Int64Array::from(ids.to_vec())) as ArrayRef)])
            .expect("batch")
    }

    fn buckets(first_id: i64, width: i64, part_rows: usize) -> Buckets {
        Buckets::sized(first_id, width, part_rows, ids(&[]).schema())
    }

    /// Every id the scan reads, as `read` set it for `part`.
    fn read_back(b: &mut Buckets, part: &Part) -> Vec<i64> {
        b.read(part).expect("read");
        std::iter::from_fn(|| b.next())
            .flat_map(|r| r.expect("rows").column(0).as_primitive::<Int64Type>().values().to_vec())
            .collect()
    }

    #[test]
    fn each_row_goes_to_the_bucket_of_its_contact_and_a_part_reads_its_own() {
        let store = tempfile::tempdir().expect("tempdir");
        let at = store.path().join("k.duckdb");
        // Ids 1-10 in buckets of 4 ids: 1-4, 5-8, 9-10; a part per bucket.
        let mut b = buckets(11, 4, 2);
        b.push(&ids(&[9, 1, 5, 4, 10, 8]), &at).expect("push");
        // A batch all in one bucket is written whole.
        b.push(&ids(&[6, 7]), &at).expect("push");
        assert_eq!(b.range(0), (i64::MIN, 5));
        assert_eq!(b.range(1), (5, 9));
        assert_eq!(b.range(2), (9, 11));
        assert_eq!(b.staged(), 8);
        assert_eq!(b.repeated, [false; 3]);
        b.push(&ids(&[8]), &at).expect("push");
        assert_eq!(b.repeated, [false, true, false], "contact 8 twice");
        b.finish().expect("finish");
        let parts = b.parts();
        assert_eq!(parts.len(), 3);
        assert_eq!(read_back(&mut b, &parts[0]), [1, 4]);
        assert_eq!(read_back(&mut b, &parts[1]), [5, 8, 6, 7, 8]);
        assert_eq!(read_back(&mut b, &parts[2]), [9, 10]);
        // The scratch directory is beside the store, and goes with the
        // buckets.
        let scratch: Vec<_> = std::fs::read_dir(store.path()).expect("dir").collect();
        assert_eq!(scratch.len(), 1);
        drop(b);
        assert_eq!(std::fs::read_dir(store.path()).expect("dir").count(), 0);
    }

    #[test]
    fn neighbouring_buckets_share_a_part_and_a_full_one_is_split() {
        let store = tempfile::tempdir().expect("tempdir");
        let mut b = buckets(41, 4, 3);
        // Buckets 0 and 1: 1 row each (one part); bucket 2: none;
        // bucket 3: 2 rows (its own part: 1 + 1 + 2 > 3); bucket 5: 7 rows
        // (split in 3).
        b.push(
            &ids(&[1, 5, 13, 14, 21, 21, 22, 22, 23, 23, 24]),
            &store.path().join("k"),
        )
        .expect("push");
        b.finish().expect("finish");
        let parts = b.parts();
        let shape: Vec<(Vec<usize>, i64, i64, usize, bool)> = parts
            .iter()
            .map(|p| (p.buckets.clone(), p.low, p.high, p.split, p.repeated))
            .collect();
        assert_eq!(
            shape,
            [
                (vec![0, 1], i64::MIN, 9, 1, false),
                (vec![3], 13, 17, 1, false),
                (vec![5], 21, 25, 3, true)
            ]
        );
        assert_eq!(read_back(&mut b, &parts[0]), [1, 5]);
    }
}
