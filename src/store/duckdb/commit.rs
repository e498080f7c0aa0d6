//! An import's transaction in DuckDB.
//!
//! New contacts go in by one `INSERT … SELECT` whose source is an Arrow
//! stream DuckDB scans in parallel (a [`Feed`] registered as a view, see
//! [`ArrowViews`]): the stream pulls the import's rows from its
//! [`RowSource`] as DuckDB asks for them. Updates are written to files by
//! range of contact ids as they come, and applied at the end by set-based
//! `UPDATE … FROM`s, one range at a time, each reading its files through
//! a second view ([`super::updates`]).

use std::collections::VecDeque;
use std::path::PathBuf;
use std::sync::{Arc, Mutex, MutexGuard, PoisonError};

use arrow::array::AsArray;
use arrow::datatypes::{Int64Type, SchemaRef};
use arrow::error::ArrowError;
use arrow::record_batch::{RecordBatch, RecordBatchReader};

use super::updates::{Buckets, UpdateSql};

/// The staged rows of the part being applied (dropped before commit).
const PART_TABLE: &str = "kontakt_update_part";
use super::{ArrowViews, DuckDb, quote_ident};
use crate::error::Result;
use crate::store::commit::{ImportSpec, RowSource, StagedRows};
use crate::store::groups::now_micros;

impl DuckDb {
    /// Creates the `custom.NAME` columns among `names` that the contacts table
    /// lacks (inside the caller's transaction).
    pub(crate) fn add_custom_columns<'a>(&self, names: impl IntoIterator<Item = &'a str>) -> Result<()> {
        let existing = self.columns("contacts")?;
        for field in names {
            if let Some(name) = field.strip_prefix("custom.")
                && !existing.iter().any(|c| c == field)
            {
                self.execute_batch(&format!(
                    "ALTER TABLE contacts ADD COLUMN {} VARCHAR",
                    quote_ident(field)
                ))?;
                self.execute(
                    "INSERT INTO custom_fields VALUES (?, make_timestamp(?)) ON CONFLICT DO NOTHING",
                    duckdb::params![name, now_micros()],
                )?;
            }
        }
        Ok(())
    }

    /// The id the next new contact gets (ids are never reused).
    pub(crate) fn next_contact_id(&self) -> Result<i64> {
        self.query_i64(
            "SELECT CAST(value AS BIGINT) FROM kontakt_meta WHERE key = 'next_contact_id'",
            [],
        )
    }

    /// Records the id the next new contact gets.
    pub(crate) fn set_next_contact_id(&self, next: i64) -> Result<()> {
        self.execute(
            "UPDATE kontakt_meta SET value = ? WHERE key = 'next_contact_id'",
            [next.to_string()],
        )
        .map(|_| ())
    }

    /// Begins an import's transaction: custom fields are created on demand,
    /// the id counter read, the staging table made.
    pub(crate) fn begin_import(&self, spec: ImportSpec<'_>) -> Result<DuckDbImport<'_>> {
        // New contacts are scanned by several threads at once; their ids
        // are explicit, so the order they land in does not matter (and
        // keeping it would cost a thread busy-waiting for the others).
        // Each thread leaves one part-filled row group; the checkpoint at
        // close would rewrite them with their neighbours (a vacuum costing
        // a third of the insert), so this process's checkpoint does not
        // vacuum (docs/DESIGN.md, Import, `max_vacuum_tasks`).
        self.execute_batch("SET preserve_insertion_order = false; SET max_vacuum_tasks = 0")?;
        let fields = spec.fields;
        let insert_columns: Vec<String> = spec
            .insert_schema
            .fields()
            .iter()
            .map(|f| quote_ident(f.name()))
            .collect();
        let feed = Arc::new(Mutex::new(Feed {
            source: None,
            inserts: VecDeque::new(),
            updates: Buckets::new(1, spec.update_schema.clone()),
            store: self.path.clone(),
            ended: false,
            error: None,
        }));
        // The views are made before the transaction begins, or it would
        // not see them.
        let mut views = self.arrow_views()?;
        let mut scan = |schema: &SchemaRef, updates: bool| {
            let reader = Scan {
                feed: feed.clone(),
                schema: schema.clone(),
                updates,
            };
            views
                .register("kontakt_rows", Box::new(reader))
                .map_err(|e| self.error_message(e))
        };
        let inserts_view = scan(spec.insert_schema, false)?;
        let updates_view = scan(spec.update_schema, true)?;

        self.execute_batch("BEGIN TRANSACTION")?;
        self.add_custom_columns(fields.iter().map(|f| f.name.as_str()))?;
        let first_id = self.next_contact_id()?;
        lock(&feed).updates = Buckets::new(first_id, spec.update_schema.clone());
        Ok(DuckDbImport {
            db: self,
            first_id,
            feed,
            _views: views,
            insert_sql: format!(
                "INSERT INTO contacts ({}) SELECT * FROM {inserts_view}",
                insert_columns.join(", ")
            ),
            updates_view,
            update_sql: UpdateSql::new(fields, spec.hashed, spec.master),
            recorder: spec
                .undo_of
                .filter(|_| !crate::store::undo::off())
                .map(|group| super::undo::Recorder::new(self, group))
                .transpose()?,
        })
    }
}

/// What DuckDB's Arrow scans of one import read: new contacts to insert and
/// updates to stage, either queued here or pulled from the import's source
/// as DuckDB asks for them (on one of its threads, one at a time).
struct Feed {
    source: Option<Box<dyn RowSource>>,
    inserts: VecDeque<RecordBatch>,
    updates: Buckets,
    /// The store's file (the updates' scratch directory is made beside it).
    store: PathBuf,
    /// The source has no more rows.
    ended: bool,
    /// Rows that could not be built; the scan ends and the flush fails
    /// with it.
    error: Option<ArrowError>,
}

impl Feed {
    fn push(&mut self, rows: StagedRows) -> std::result::Result<(), ArrowError> {
        if let Some(inserts) = rows.inserts {
            self.inserts.push_back(inserts);
        }
        if let Some(updates) = rows.updates {
            self.updates.push(&updates, &self.store)?;
        }
        Ok(())
    }

    /// The next batch of new contacts; `None` ends the scan (nothing
    /// queued and no source, or the source ended).
    fn next_insert(&mut self) -> Option<RecordBatch> {
        loop {
            if let Some(rows) = self.inserts.pop_front() {
                return Some(rows);
            }
            if self.ended || self.error.is_some() {
                return None;
            }
            match self.source.as_mut()?.next_rows() {
                Some(Ok(rows)) => {
                    if let Err(e) = self.push(rows) {
                        self.error = Some(e);
                    }
                }
                Some(Err(e)) => self.error = Some(e),
                None => self.ended = true,
            }
        }
    }
}

type SharedFeed = Arc<Mutex<Feed>>;

fn lock(feed: &SharedFeed) -> MutexGuard<'_, Feed> {
    feed.lock().unwrap_or_else(PoisonError::into_inner)
}

/// One of the feed's two streams, as DuckDB's Arrow scan reads it.
struct Scan {
    feed: SharedFeed,
    schema: SchemaRef,
    updates: bool,
}

impl Iterator for Scan {
    type Item = std::result::Result<RecordBatch, ArrowError>;

    fn next(&mut self) -> Option<Self::Item> {
        let mut feed = lock(&self.feed);
        if self.updates {
            feed.updates.next()
        } else {
            feed.next_insert().map(Ok)
        }
    }
}

impl RecordBatchReader for Scan {
    fn schema(&self) -> SchemaRef {
        self.schema.clone()
    }
}

/// An import's open transaction in DuckDB.
pub(crate) struct DuckDbImport<'s> {
    db: &'s DuckDb,
    first_id: i64,
    feed: SharedFeed,
    /// The views the two scans are registered as (dropped with the import).
    _views: ArrowViews,
    /// `INSERT INTO contacts … SELECT * FROM` the inserts' view.
    insert_sql: String,
    /// The view the updates' scan is registered as.
    updates_view: String,
    /// The set-based update of the staged rows.
    update_sql: UpdateSql,
    /// Keeps the earlier values of the contacts the updates change, for
    /// the group's undo (none for `contacts add`).
    recorder: Option<super::undo::Recorder>,
}

impl DuckDbImport<'_> {
    fn feed(&self) -> MutexGuard<'_, Feed> {
        lock(&self.feed)
    }

    pub(crate) fn first_id(&self) -> i64 {
        self.first_id
    }

    /// None: the undo record's writer only appends one part's value at a
    /// time (0.2-0.4 s), and the import stops at its next hand-over.
    pub(crate) fn interrupts(&self) -> Vec<crate::store::Interrupt> {
        Vec::new()
    }

    pub(crate) fn push(&self, rows: std::result::Result<StagedRows, ArrowError>) -> Result<()> {
        let rows = rows.map_err(|e| self.db.arrow_error(&e))?;
        self.feed().push(rows).map_err(|e| self.db.arrow_error(&e))
    }

    /// Moves the new contacts the feed holds into the store (with a
    /// source, everything it gives until it ends); updates were staged
    /// as they came.
    pub(crate) fn flush(&mut self) -> Result<()> {
        self.db.execute_batch(&self.insert_sql)?;
        match self.feed().error.take() {
            Some(e) => Err(self.db.arrow_error(&e)),
            None => Ok(()),
        }
    }

    pub(crate) fn stream(&mut self, source: Box<dyn RowSource>) -> Result<()> {
        self.feed().source = Some(source);
        self.flush()?;
        let mut feed = self.feed();
        feed.ended = false;
        feed.source = None;
        Ok(())
    }

    pub(crate) fn staged_updates(&self) -> Result<i64> {
        Ok(self.feed().updates.staged() as i64)
    }

    /// Applies the staged updates part by part ([`super::updates`]); a
    /// part of one bucket with more rows than a part holds is applied by
    /// ranges between the quantiles of its ids.
    pub(crate) fn apply_updates(&self, now: i64) -> Result<u64> {
        let arrow = |e: ArrowError| self.db.arrow_error(&e);
        let parts = {
            let mut feed = self.feed();
            feed.updates.finish().map_err(arrow)?;
            feed.updates.parts()
        };
        let changed = match &self.recorder {
            Some(recorder) => recorder.in_background("restore", |keep| self.apply_parts(parts, now, Some(keep)))?,
            None => self.apply_parts(parts, now, None)?,
        };
        self.db.execute_batch(&format!("DROP TABLE IF EXISTS {PART_TABLE}"))?;
        Ok(changed)
    }

    /// Applies `parts`, passing to `keep` (when the import keeps an undo
    /// record) the earlier values of the contacts each range changes,
    /// read just before the range's update.
    fn apply_parts(
        &self,
        parts: Vec<super::updates::Part>,
        now: i64,
        mut keep: Option<&mut dyn FnMut(Vec<RecordBatch>) -> Result<()>>,
    ) -> Result<u64> {
        let arrow = |e: ArrowError| self.db.arrow_error(&e);
        let source = PART_TABLE;
        let mut changed = 0;
        for part in parts {
            self.feed().updates.read(&part).map_err(arrow)?;
            self.db.execute_batch(&format!(
                "CREATE OR REPLACE TEMP TABLE {PART_TABLE} AS SELECT * FROM {}",
                self.updates_view
            ))?;
            let mut bounds = vec![part.low];
            if part.split > 1 {
                let quantiles: Vec<String> = (1..part.split)
                    .map(|k| format!("{}", k as f64 / part.split as f64))
                    .collect();
                for batch in self.db.query_arrow(
                    &format!(
                        "SELECT unnest(quantile_disc(contact_id, [{}])) FROM {source}",
                        quantiles.join(", ")
                    ),
                    &[],
                )? {
                    bounds.extend(batch.column(0).as_primitive::<Int64Type>().iter().flatten());
                }
                bounds.sort_unstable();
            }
            bounds.push(part.high);
            for range in bounds.windows(2) {
                if range[1] > range[0] {
                    crate::cancel::test_stage("commit_update_part");
                    if let Some(keep) = keep.as_mut() {
                        crate::cancel::test_stage("commit_record");
                        let sql = self.update_sql.record_part(&part, source, range[0], range[1]);
                        keep(self.db.query_arrow(&sql, &[])?)?;
                    }
                    let sql = self.update_sql.part(&part, source, range[0], range[1]);
                    changed += self.db.execute(&sql, [now])? as u64;
                }
            }
        }
        Ok(changed)
    }

    pub(crate) fn end_staging(&self, next_id: i64) -> Result<()> {
        self.db.set_next_contact_id(next_id)
    }

    pub(crate) fn commit(self) -> Result<()> {
        self.db.execute_batch("COMMIT")
    }

    /// Drops the streams' views, then rolls back.
    pub(crate) fn roll_back(mut self) -> Result<()> {
        let db = self.db;
        let recorder = self.recorder.take();
        drop(self);
        let rolled_back = db.rollback_after_failure();
        if let Some(recorder) = recorder {
            recorder.discard()?;
        }
        rolled_back
    }
}

#[cfg(test)]
mod tests {
    use std::sync::mpsc;

    use arrow::array::{ArrayRef, StringArray, UInt64Array};

    use super::*;
    use crate::apply::Master;
    use crate::apply::commit::{Commit, CommitJob, End, Ending, GroupCounts};
    use crate::apply::store_fields;
    use crate::fields::key_hash;
    use crate::store::Store;

    /// The DuckDB backend of a store opened here.
    fn db(store: &Store) -> &DuckDb {
        store.duckdb()
    }

    fn batch(emails: &[&str], names: &[&str]) -> RecordBatch {
        let rows: Vec<u64> = (1..=emails.len() as u64).collect();
        RecordBatch::try_from_iter([
            ("__row", Arc::new(UInt64Array::from(rows)) as ArrayRef),
            ("email", Arc::new(StringArray::from(emails.to_vec())) as ArrayRef),
            ("first_name", Arc::new(StringArray::from(names.to_vec())) as ArrayRef),
        ])
        .expect("batch")
    }

    fn begin(store: &Store) -> Commit<'_> {
        let fields = store_fields(&["email".to_string(), "first_name".to_string()], &[]);
        Commit::begin(store, None, "person", Master::File, fields, Vec::new()).expect("begin")
    }

    /// Rows of four columns of a query.
    fn rows4<A, B, C, D>(store: &Store, sql: &str) -> Vec<(A, B, C, D)>
    where
        A: duckdb::types::FromSql,
        B: duckdb::types::FromSql,
        C: duckdb::types::FromSql,
        D: duckdb::types::FromSql,
    {
        let conn = &db(store).conn;
        let mut stmt = conn.prepare(sql).expect("prepare");
        stmt.query_map([], |r| Ok((r.get(0)?, r.get(1)?, r.get(2)?, r.get(3)?)))
            .expect("query")
            .collect::<std::result::Result<_, _>>()
            .expect("rows")
    }

    fn contacts(store: &Store) -> Vec<(i64, String, String, u64)> {
        rows4(
            store,
            "SELECT id, email, first_name, email_hash FROM contacts ORDER BY id",
        )
    }

    /// Stores Ann (a@x.cz) and Bob (b@x.cz), contacts 1 and 2.
    fn store_ann_and_bob(store: &Store) {
        let mut first = begin(store);
        first
            .insert(&batch(&["a@x.cz", "b@x.cz"], &["Ann", "Bob"]), &[0, 1])
            .expect("insert");
        first.finish(&mut GroupCounts::default(), "").expect("finish");
    }

    #[test]
    fn updated_contacts_are_rewritten_whole_and_keep_their_tags() {
        // An update that sets a list column makes DuckDB delete each row it
        // touches and insert it anew (a new rowid), which is the faster
        // way for many rows; `tags` is set even when the file has none.
        let dir = tempfile::tempdir().expect("tempdir");
        let store = Store::open(&dir.path().join("k.duckdb")).expect("store");
        store_ann_and_bob(&store);
        db(&store)
            .execute_batch("UPDATE contacts SET tags = ['vip', 'b2b'] WHERE id = 1")
            .expect("tags");
        let rows = || -> Vec<(i64, String, String, i64)> {
            rows4(
                &store,
                "SELECT id, first_name, array_to_string(tags, ';'), rowid FROM contacts ORDER BY id",
            )
        };
        let before = rows();

        let mut second = begin(&store);
        second
            .update(&batch(&["a@x.cz"], &["Anna"]), &[0], &[1])
            .expect("update");
        second.finish(&mut GroupCounts::default(), "").expect("finish");
        let after = rows();
        let values: Vec<(i64, &str, &str)> = after.iter().map(|(i, n, t, _)| (*i, n.as_str(), t.as_str())).collect();
        assert_eq!(values, [(1, "Anna", "vip;b2b"), (2, "Bob", "")]);
        assert_ne!(after[0].3, before[0].3, "contact 1 rewritten");
        assert_eq!(after[1].3, before[1].3, "contact 2 untouched");
    }

    #[test]
    fn streamed_rows_land_in_the_store_with_their_updates() {
        let dir = tempfile::tempdir().expect("tempdir");
        let store = Store::open(&dir.path().join("k.duckdb")).expect("store");
        store_ann_and_bob(&store);

        let mut commit = begin(&store);
        let (tx, rx) = mpsc::channel();
        for (emails, names, update_id) in [
            (["c@x.cz", "a@x.cz"], ["Cid", "Anna"], 1),
            (["d@x.cz", "b@x.cz"], ["Dan", "Bobby"], 2),
        ] {
            tx.send(CommitJob::Rows {
                batch: batch(&emails, &names),
                inserts: vec![0],
                update_rows: vec![1],
                update_ids: vec![update_id],
            })
            .expect("send");
        }
        tx.send(CommitJob::Finish {
            counts: GroupCounts::default(),
            summary: String::new(),
        })
        .expect("send");
        let (end, _) = commit.stream(rx).expect("stream");
        assert!(matches!(end, End::Finish { .. }));
        let mut counts = GroupCounts::default();
        commit.finish(&mut counts, "").expect("finish");

        assert_eq!(counts.contacts_updated, 2);
        let hash = |email: &str| key_hash(email);
        assert_eq!(
            contacts(&store),
            vec![
                (1, "a@x.cz".into(), "Anna".into(), hash("a@x.cz")),
                (2, "b@x.cz".into(), "Bobby".into(), hash("b@x.cz")),
                (3, "c@x.cz".into(), "Cid".into(), hash("c@x.cz")),
                (4, "d@x.cz".into(), "Dan".into(), hash("d@x.cz")),
            ]
        );
    }

    #[test]
    fn an_abort_sent_mid_stream_leaves_the_store_as_it_was() {
        let dir = tempfile::tempdir().expect("tempdir");
        let store = Store::open(&dir.path().join("k.duckdb")).expect("store");
        let commit = begin(&store);
        let (tx, rx) = mpsc::channel();
        tx.send(CommitJob::Rows {
            batch: batch(&["a@x.cz"], &["Ann"]),
            inserts: vec![0],
            update_rows: Vec::new(),
            update_ids: Vec::new(),
        })
        .expect("send");
        tx.send(CommitJob::Abort {
            ending: Ending::Cancelled,
            reason: "cancelled".into(),
        })
        .expect("send");
        let mut commit = commit;
        let (end, _) = commit.stream(rx).expect("stream");
        assert!(matches!(end, End::Abort { .. }));
        commit.abort(Ending::Cancelled, "cancelled").expect("abort");
        assert!(contacts(&store).is_empty());
        assert_eq!(
            db(&store)
                .query_i64("SELECT count(*) FROM duckdb_views() WHERE NOT internal", [])
                .expect("views"),
            0
        );
    }
}
