//! An import's transaction in DuckDB.
//!
//! New contacts go in by one `INSERT … SELECT` whose source is an Arrow
//! stream DuckDB scans in parallel (a [`Feed`] registered as a view, see
//! [`ArrowViews`]): the stream pulls the import's rows from its
//! [`RowSource`] as DuckDB asks for them. Updates are staged the same way
//! into a temporary table (the insert scan pauses every [`STAGED_ROWS`] for
//! it) and applied at the end by one set-based `UPDATE … FROM`.

use std::collections::VecDeque;
use std::sync::{Arc, Mutex, MutexGuard, PoisonError};

use arrow::datatypes::SchemaRef;
use arrow::error::ArrowError;
use arrow::record_batch::{RecordBatch, RecordBatchReader};

use super::{ArrowViews, DuckDb, quote_ident};
use crate::apply::{Master, StoreField};
use crate::error::Result;
use crate::fields::{FieldKind, hash_column};
use crate::store::commit::{ImportSpec, RowSource, StagedRows};
use crate::store::groups::now_micros;

/// The staging table of updates (dropped before commit).
const UPDATES: &str = "kontakt_pending_updates";

/// Update rows held in memory before they are moved to the staging table
/// (which pauses the insert scan for a moment).
const STAGED_ROWS: usize = 256 * 1024;

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
    fn set_next_contact_id(&self, next: i64) -> Result<()> {
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
        let mut staged: Vec<String> = fields.iter().map(|f| quote_ident(&f.name)).collect();
        staged.extend(spec.hashed.iter().map(|&i| hash_column(&fields[i].name)));
        let feed = Arc::new(Mutex::new(Feed {
            source: None,
            inserts: VecDeque::new(),
            updates: VecDeque::new(),
            staged: 0,
            staged_limit: STAGED_ROWS,
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
        self.execute_batch(&format!(
            "CREATE TEMP TABLE {UPDATES} AS SELECT id AS contact_id, CAST(0 AS UBIGINT) AS \"row\"{}{} FROM contacts LIMIT 0",
            if staged.is_empty() { "" } else { ", " },
            staged.join(", ")
        ))?;
        Ok(DuckDbImport {
            db: self,
            first_id,
            feed,
            _views: views,
            insert_sql: format!(
                "INSERT INTO contacts ({}) SELECT * FROM {inserts_view}",
                insert_columns.join(", ")
            ),
            stage_sql: format!("INSERT INTO {UPDATES} SELECT * FROM {updates_view}"),
            update_sql: update_sql(fields, spec.hashed, spec.master),
        })
    }
}

/// What DuckDB's Arrow scans of one import read: new contacts to insert and
/// updates to stage, either queued here or pulled from the import's source
/// as DuckDB asks for them (on one of its threads, one at a time).
struct Feed {
    source: Option<Box<dyn RowSource>>,
    inserts: VecDeque<RecordBatch>,
    updates: VecDeque<RecordBatch>,
    /// Rows in `updates`; at `staged_limit` ([`STAGED_ROWS`]) the insert
    /// scan pauses so they can be moved to the staging table.
    staged: usize,
    staged_limit: usize,
    /// The source has no more rows.
    ended: bool,
    /// Rows that could not be built; the scan ends and the flush fails
    /// with it.
    error: Option<ArrowError>,
}

impl Feed {
    fn push(&mut self, rows: StagedRows) {
        if let Some(inserts) = rows.inserts {
            self.inserts.push_back(inserts);
        }
        if let Some(updates) = rows.updates {
            self.staged += updates.num_rows();
            self.updates.push_back(updates);
        }
    }

    /// The next batch of new contacts; `None` ends the scan (nothing
    /// queued and no source, the source ended, or updates to move).
    fn next_insert(&mut self) -> Option<RecordBatch> {
        loop {
            if let Some(rows) = self.inserts.pop_front() {
                return Some(rows);
            }
            if self.staged >= self.staged_limit || self.ended || self.error.is_some() {
                return None;
            }
            match self.source.as_mut()?.next_rows() {
                Some(Ok(rows)) => self.push(rows),
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
            feed.updates.pop_front().map(Ok)
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
    /// `INSERT INTO` the staging table `SELECT * FROM` the updates' view.
    stage_sql: String,
    /// The set-based update of the staged rows.
    update_sql: String,
}

impl DuckDbImport<'_> {
    fn feed(&self) -> MutexGuard<'_, Feed> {
        lock(&self.feed)
    }

    pub(crate) fn first_id(&self) -> i64 {
        self.first_id
    }

    pub(crate) fn push(&self, rows: std::result::Result<StagedRows, ArrowError>) -> Result<()> {
        let rows = rows.map_err(|e| self.db.arrow_error(&e))?;
        self.feed().push(rows);
        Ok(())
    }

    /// Moves what the feed holds into the store: the new contacts (with a
    /// source, everything it gives until it ends or the staged updates
    /// fill up), then the staged updates.
    pub(crate) fn flush(&mut self) -> Result<()> {
        self.db.execute_batch(&self.insert_sql)?;
        if let Some(e) = self.feed().error.take() {
            return Err(self.db.arrow_error(&e));
        }
        if !self.feed().updates.is_empty() {
            self.db.execute_batch(&self.stage_sql)?;
            self.feed().staged = 0;
        }
        Ok(())
    }

    pub(crate) fn stream(&mut self, source: Box<dyn RowSource>) -> Result<()> {
        self.feed().source = Some(source);
        loop {
            self.flush()?;
            let mut feed = self.feed();
            if feed.ended {
                feed.ended = false;
                feed.source = None;
                return Ok(());
            }
        }
    }

    pub(crate) fn staged_updates(&self) -> Result<i64> {
        self.db.query_i64(&format!("SELECT count(*) FROM {UPDATES}"), [])
    }

    pub(crate) fn apply_updates(&self, now: i64) -> Result<u64> {
        Ok(self.db.execute(&self.update_sql, [now])? as u64)
    }

    pub(crate) fn end_staging(&self, next_id: i64) -> Result<()> {
        self.db.execute_batch(&format!("DROP TABLE {UPDATES}"))?;
        self.db.set_next_contact_id(next_id)
    }

    pub(crate) fn commit(self) -> Result<()> {
        self.db.execute_batch("COMMIT")
    }

    /// Drops the streams' views, then rolls back.
    pub(crate) fn roll_back(self) -> Result<()> {
        let db = self.db;
        drop(self);
        db.rollback_after_failure()
    }

    #[cfg(test)]
    pub(crate) fn pause_every(&self, rows: usize) {
        self.feed().staged_limit = rows;
    }
}

/// The set-based update: the last staged row per contact wins; `--master`
/// decides between file and stored values; tags are only added.
///
/// `tags` is always set, to itself when the file gives none: DuckDB
/// updates a row in place unless the update sets a list column, when it
/// deletes the row and inserts it anew, and in place is the slower way for
/// the many contacts an import updates (1M x 1M upsert of 268k contacts,
/// from a file without tags: commit stage 4.1-4.2 s in place, 2.8 s
/// rewritten; at 10M x 10M, 2.75M contacts updated in place had spilled
/// 12 GB to disk under the 512 MB cap after 4 minutes, where rewritten
/// the whole upsert takes 84 s).
fn update_sql(fields: &[StoreField], hashed: &[usize], master: Master) -> String {
    let value = |f: &StoreField| {
        let q = quote_ident(&f.name);
        match (f.kind, master) {
            (FieldKind::Tags, _) => {
                format!("list_concat(c.{q}, list_filter(coalesce(u.{q}, []), x -> NOT list_contains(c.{q}, x)))")
            }
            (FieldKind::Consent, Master::File) => {
                format!("CASE WHEN u.{q} IS NULL OR u.{q} = 'unknown' THEN c.{q} ELSE u.{q} END")
            }
            (FieldKind::Consent, Master::Existing) => {
                format!("CASE WHEN c.{q} = 'unknown' AND u.{q} IS NOT NULL THEN u.{q} ELSE c.{q} END")
            }
            (_, Master::File) => format!("coalesce(u.{q}, c.{q})"),
            (_, Master::Existing) => format!("coalesce(c.{q}, u.{q})"),
        }
    };
    // A key's hash column follows its value column (both null together),
    // so only the fields tell whether a contact changes.
    let hashes = hashed.iter().map(|&i| StoreField {
        name: hash_column(&fields[i].name),
        kind: FieldKind::Text,
        column: None,
    });
    let set: Vec<String> = fields
        .iter()
        .cloned()
        .chain(hashes)
        .map(|f| format!("{} = {}", quote_ident(&f.name), value(&f)))
        .chain((!fields.iter().any(|f| f.kind == FieldKind::Tags)).then(|| "tags = c.tags".to_string()))
        .collect();
    let changes: Vec<String> = fields
        .iter()
        .map(|f| format!("c.{} IS DISTINCT FROM {}", quote_ident(&f.name), value(f)))
        .collect();
    format!(
        "UPDATE contacts AS c SET {}updated_at = make_timestamp(?) \
         FROM (SELECT * FROM {UPDATES} QUALIFY row_number() OVER (PARTITION BY contact_id ORDER BY \"row\" DESC) = 1) AS u \
         WHERE c.id = u.contact_id AND ({})",
        set.iter().map(|s| format!("{s}, ")).collect::<String>(),
        if changes.is_empty() {
            "false".to_string()
        } else {
            changes.join(" OR ")
        }
    )
}

#[cfg(test)]
mod tests {
    use std::sync::mpsc;

    use arrow::array::{ArrayRef, StringArray, UInt64Array};

    use super::*;
    use crate::apply::commit::{Commit, CommitJob, End, Ending, GroupCounts};
    use crate::apply::store_fields;
    use crate::fields::key_hash;
    use crate::store::{Backend, Store};

    /// The DuckDB backend of a store opened here.
    fn db(store: &Store) -> &DuckDb {
        match &store.backend {
            Backend::DuckDb(db) => db,
        }
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
    fn streamed_rows_land_in_the_store_across_pauses_for_staged_updates() {
        let dir = tempfile::tempdir().expect("tempdir");
        let store = Store::open(&dir.path().join("k.duckdb")).expect("store");
        store_ann_and_bob(&store);

        let mut commit = begin(&store);
        // Every staged update pauses the insert scan.
        commit.pause_every(1);
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
