//! Commit: one DuckDB transaction per import.
//!
//! The import group is recorded as `running` first, on its own (so it
//! survives a rollback), then one transaction holds everything else. New
//! contacts go in by one `INSERT … SELECT` whose source is an Arrow stream
//! DuckDB scans in parallel (a [`Feed`] registered as a view, see
//! [`crate::store::ArrowViews`]): the stream pulls the import's batches from
//! the commit thread's channel as DuckDB asks for them. Updates are staged
//! the same way into a temporary table (the insert scan pauses every
//! [`STAGED_ROWS`] for it) and applied at the end by one set-based
//! `UPDATE … FROM`; the id counter and the group's final counts are written
//! last, then `COMMIT`. A failure or a cancel rolls all of it back and
//! records the group as `failed` or `cancelled` with the reason.

use std::collections::VecDeque;
use std::sync::mpsc::Receiver;
use std::sync::{Arc, Mutex, MutexGuard, PoisonError};
use std::time::{Duration, Instant, SystemTime, UNIX_EPOCH};

use arrow::array::{
    Array, ArrayRef, AsArray, Int64Array, ListBuilder, StringArray, StringBuilder, TimestampMicrosecondArray,
    UInt32Array, UInt64Array,
};
use arrow::compute::{cast, take};
use arrow::datatypes::{DataType, Field as ArrowField, Schema, SchemaRef, TimeUnit};
use arrow::error::ArrowError;
use arrow::record_batch::{RecordBatch, RecordBatchReader};

use super::actions::Master;
use crate::cancel::{Armed, Cancel};
use crate::error::{Error, Result};
use crate::fields::{FieldKind, KEY_FIELDS, hash_column, key_hash, standard_field};
use crate::store::{ArrowViews, Store, quote_ident};

/// The staging table of updates (dropped before commit).
const UPDATES: &str = "kontakt_pending_updates";

/// A stored field the import writes: its name and kind.
#[derive(Debug, Clone)]
pub struct StoreField {
    pub name: String,
    pub kind: FieldKind,
    /// Column of the field in the normalized batch; `None` for `tags`
    /// added only to carry `--tag`.
    pub column: Option<usize>,
}

/// How an import group ended.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Ending {
    Failed,
    Cancelled,
}

impl Ending {
    /// A cancel (Ctrl-C) or any other error.
    pub fn of(error: &Error) -> Ending {
        if matches!(error, Error::Cancelled(_)) {
            Ending::Cancelled
        } else {
            Ending::Failed
        }
    }
}

/// The counts recorded on the import group.
#[derive(Debug, Clone, Default)]
pub struct GroupCounts {
    pub rows_read: u64,
    pub rows_failed: u64,
    pub imported: u64,
    pub updated: u64,
    pub skipped: u64,
    pub contacts_updated: u64,
}

/// Now, in microseconds since the epoch (UTC), as timestamps are stored.
pub(crate) fn now_micros() -> i64 {
    SystemTime::now()
        .duration_since(UNIX_EPOCH)
        .map_or(0, |d| i64::try_from(d.as_micros()).unwrap_or(i64::MAX))
}

/// Creates the `custom.NAME` columns among `names` that the contacts table
/// lacks (inside the caller's transaction).
fn ensure_custom_columns<'a>(store: &Store, names: impl IntoIterator<Item = &'a str>) -> Result<()> {
    let existing = store.columns("contacts")?;
    for field in names {
        if let Some(name) = field.strip_prefix("custom.")
            && !existing.iter().any(|c| c == field)
        {
            store.execute_batch(&format!(
                "ALTER TABLE contacts ADD COLUMN {} VARCHAR",
                quote_ident(field)
            ))?;
            store.execute(
                "INSERT INTO custom_fields VALUES (?, make_timestamp(?)) ON CONFLICT DO NOTHING",
                duckdb::params![name, now_micros()],
            )?;
        }
    }
    Ok(())
}

/// The id the next new contact gets (ids are never reused).
pub(crate) fn next_contact_id(store: &Store) -> Result<i64> {
    store.query_i64(
        "SELECT CAST(value AS BIGINT) FROM kontakt_meta WHERE key = 'next_contact_id'",
        [],
    )
}

/// Records the id the next new contact gets.
fn set_next_contact_id(store: &Store, next: i64) -> Result<()> {
    store
        .execute(
            "UPDATE kontakt_meta SET value = ? WHERE key = 'next_contact_id'",
            [next.to_string()],
        )
        .map(|_| ())
}

/// Records a new import group as `running` (autocommitted) after checking
/// its name: a running or completed group of that name is a usage error; a
/// failed or cancelled one is replaced.
pub fn start_group(store: &Store, name: &str, source: &str) -> Result<i64> {
    let existing = store.query_optional("SELECT id, status FROM import_groups WHERE name = ?", [name], |r| {
        Ok((r.get::<_, i64>(0)?, r.get::<_, String>(1)?))
    })?;
    if let Some((id, status)) = existing {
        if status == "running" || status == "completed" {
            return Err(Error::usage(format!(
                "an import named {name:?} already exists (id {id}, {status}); choose another --name"
            )));
        }
        store.execute("DELETE FROM import_groups WHERE id = ?", [id])?;
    }
    store
        .connection()
        .query_row(
            "INSERT INTO import_groups (name, source, status, started_at, pid, host) \
             VALUES (?, ?, 'running', make_timestamp(?), ?, ?) RETURNING id",
            duckdb::params![name, source, now_micros(), std::process::id(), host_name()],
            |r| r.get(0),
        )
        .map_err(|e| store.error(&e))
}

/// This machine's host name, recorded with a running group beside the pid
/// (empty when the system will not say).
fn host_name() -> String {
    let mut buf = [0u8; 256];
    // SAFETY: gethostname writes at most `len` bytes into the buffer.
    let ok = unsafe { libc::gethostname(buf.as_mut_ptr().cast(), buf.len()) } == 0;
    let len = buf.iter().position(|&b| b == 0).unwrap_or(buf.len());
    if ok {
        String::from_utf8_lossy(&buf[..len]).into_owned()
    } else {
        String::new()
    }
}

/// Update rows held in memory before they are moved to the staging table
/// (which pauses the insert scan for a moment).
const STAGED_ROWS: usize = 256 * 1024;

/// Builds the store's rows from normalized batches: ids, timestamps and
/// import id for new contacts, typed fields (dates, tags with `--tag`,
/// consents), and the hash column of each key field.
struct Rows {
    import_id: Option<i64>,
    now: i64,
    next_id: i64,
    first_id: i64,
    contact_type: &'static str,
    fields: Vec<StoreField>,
    /// Key fields among `fields` (their positions): each also writes its
    /// hash column, the store's key index.
    hashed: Vec<usize>,
    /// `--tag` values, added to every imported or updated contact.
    tags: Vec<String>,
    insert_schema: Arc<Schema>,
    update_schema: Arc<Schema>,
}

impl Rows {
    /// The rows `indices` of a normalized batch as new contacts.
    fn inserts(&mut self, batch: &RecordBatch, indices: &[u32]) -> std::result::Result<RecordBatch, ArrowError> {
        let n = indices.len();
        let indices = UInt32Array::from(indices.to_vec());
        let ids = Int64Array::from_iter_values(self.next_id..self.next_id + n as i64);
        self.next_id += n as i64;
        let mut columns: Vec<ArrayRef> = vec![
            Arc::new(ids),
            Arc::new(StringArray::from(vec![self.contact_type; n])),
            Arc::new(TimestampMicrosecondArray::from(vec![self.now; n])),
            Arc::new(TimestampMicrosecondArray::from(vec![self.now; n])),
            Arc::new(Int64Array::from(vec![self.import_id; n])),
        ];
        for field in &self.fields {
            columns.push(self.field_values(batch, field, &indices, true)?);
        }
        self.push_hashes(&mut columns, 5);
        RecordBatch::try_new(self.insert_schema.clone(), columns)
    }

    /// Updates: row `indices[k]` of a normalized batch updates the stored
    /// contact `contact_ids[k]`.
    fn updates(
        &self,
        batch: &RecordBatch,
        indices: &[u32],
        contact_ids: &[i64],
    ) -> std::result::Result<RecordBatch, ArrowError> {
        let indices = UInt32Array::from(indices.to_vec());
        let rows = take(batch.column(0), &indices, None)?;
        let mut columns: Vec<ArrayRef> = vec![Arc::new(Int64Array::from(contact_ids.to_vec())), rows];
        for field in &self.fields {
            columns.push(self.field_values(batch, field, &indices, false)?);
        }
        self.push_hashes(&mut columns, 2);
        RecordBatch::try_new(self.update_schema.clone(), columns)
    }

    /// Appends the hash column of each key field; `first` is the column of
    /// the first field in `columns`.
    fn push_hashes(&self, columns: &mut Vec<ArrayRef>, first: usize) {
        for &i in &self.hashed {
            let values = columns[first + i].as_string::<i32>();
            let hashes: UInt64Array = values.iter().map(|v| v.map(key_hash)).collect();
            columns.push(Arc::new(hashes));
        }
    }

    /// A field's values for the given rows, typed as the store keeps them.
    fn field_values(
        &self,
        batch: &RecordBatch,
        field: &StoreField,
        indices: &UInt32Array,
        insert: bool,
    ) -> std::result::Result<ArrayRef, ArrowError> {
        let n = indices.len();
        let values: Option<ArrayRef> = field.column.map(|c| take(batch.column(c), indices, None)).transpose()?;
        Ok(match field.kind {
            FieldKind::Date => match values {
                Some(v) => cast(&v, &DataType::Date32)?,
                None => arrow::array::new_null_array(&DataType::Date32, n),
            },
            FieldKind::Tags => {
                let strings = values.as_ref().map(|v| v.as_string::<i32>());
                let mut builder = ListBuilder::new(StringBuilder::new());
                let mut seen: Vec<&str> = Vec::new();
                for i in 0..n {
                    seen.clear();
                    if let Some(s) = strings
                        && s.is_valid(i)
                    {
                        seen.extend(s.value(i).split(';').filter(|t| !t.is_empty()));
                    }
                    for tag in &self.tags {
                        if !seen.contains(&tag.as_str()) {
                            seen.push(tag);
                        }
                    }
                    for tag in &seen {
                        builder.values().append_value(tag);
                    }
                    builder.append(true);
                }
                Arc::new(builder.finish())
            }
            FieldKind::Consent if insert => {
                let strings = values.as_ref().map(|v| v.as_string::<i32>());
                let filled: StringArray = (0..n)
                    .map(|i| Some(strings.filter(|s| s.is_valid(i)).map_or("unknown", |s| s.value(i))))
                    .collect();
                Arc::new(filled)
            }
            _ => values.unwrap_or_else(|| arrow::array::new_null_array(&DataType::Utf8, n)),
        })
    }
}

/// How the jobs sent to the commit thread ended.
#[derive(Debug)]
enum End {
    Finish {
        counts: GroupCounts,
        summary: String,
    },
    Abort {
        ending: Ending,
        reason: String,
    },
    /// The sender went away without either.
    Closed,
}

/// What DuckDB's Arrow scans of one import read: new contacts to insert and
/// updates to stage, either queued here or pulled from the import's
/// channel as DuckDB asks for them (on one of its threads, one at a time).
struct Feed {
    rows: Rows,
    jobs: Option<Receiver<CommitJob>>,
    inserts: VecDeque<RecordBatch>,
    updates: VecDeque<RecordBatch>,
    /// Rows in `updates`; at `staged_limit` ([`STAGED_ROWS`]) the insert
    /// scan pauses so they can be moved to the staging table.
    staged: usize,
    staged_limit: usize,
    end: Option<End>,
    /// A batch that could not be built; the scan ends and the commit
    /// thread fails with it.
    error: Option<ArrowError>,
    /// Time spent waiting for the import's next job.
    waited: Duration,
}

impl Feed {
    fn push(
        &mut self,
        batch: &RecordBatch,
        inserts: &[u32],
        update_rows: &[u32],
        update_ids: &[i64],
    ) -> std::result::Result<(), ArrowError> {
        if !inserts.is_empty() {
            let rows = self.rows.inserts(batch, inserts)?;
            self.inserts.push_back(rows);
        }
        if !update_rows.is_empty() {
            let rows = self.rows.updates(batch, update_rows, update_ids)?;
            self.staged += rows.num_rows();
            self.updates.push_back(rows);
        }
        Ok(())
    }

    /// The next batch of new contacts; `None` ends the scan (nothing
    /// queued and no channel, the channel ended, or updates to move).
    fn next_insert(&mut self) -> Option<RecordBatch> {
        loop {
            if let Some(rows) = self.inserts.pop_front() {
                return Some(rows);
            }
            if self.staged >= self.staged_limit || self.end.is_some() || self.error.is_some() {
                return None;
            }
            let jobs = self.jobs.as_ref()?;
            let started = Instant::now();
            let job = jobs.recv();
            self.waited += started.elapsed();
            match job {
                Ok(CommitJob::Rows {
                    batch,
                    inserts,
                    update_rows,
                    update_ids,
                }) => {
                    if let Err(e) = self.push(&batch, &inserts, &update_rows, &update_ids) {
                        self.error = Some(e);
                    }
                }
                Ok(CommitJob::Finish { counts, summary }) => self.end = Some(End::Finish { counts, summary }),
                Ok(CommitJob::Abort { ending, reason }) => self.end = Some(End::Abort { ending, reason }),
                Err(_) => self.end = Some(End::Closed),
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

/// An import's open transaction (or, without an import group, the
/// transaction of `contacts add`).
pub struct Commit<'s> {
    store: &'s Store,
    import_id: Option<i64>,
    /// The cancel this commit answers to, and its connection armed for it
    /// (see [`Commit::watch`]).
    cancel: Option<&'s Cancel>,
    armed: Option<Armed<'s>>,
    feed: SharedFeed,
    /// The views the two scans are registered as (dropped with the commit).
    _views: ArrowViews,
    /// `INSERT INTO contacts … SELECT * FROM` the inserts' view.
    insert_sql: String,
    /// `INSERT INTO` the staging table `SELECT * FROM` the updates' view.
    stage_sql: String,
    /// The set-based update of the staged rows.
    update_sql: String,
}

impl<'s> Commit<'s> {
    /// Begins the transaction: custom fields are created on demand, the id
    /// counter read, the staging table made.
    pub fn begin(
        store: &'s Store,
        import_id: Option<i64>,
        contact_type: &'static str,
        master: Master,
        fields: Vec<StoreField>,
        tags: Vec<String>,
    ) -> Result<Commit<'s>> {
        // New contacts are scanned by several threads at once; their ids
        // are explicit, so the order they land in does not matter (and
        // keeping it would cost a thread busy-waiting for the others).
        // Each thread leaves one part-filled row group; the checkpoint at
        // close would rewrite them with their neighbours (a vacuum costing
        // a third of the insert), so this process's checkpoint does not
        // vacuum (docs/DESIGN.md, Import, `max_vacuum_tasks`).
        store.execute_batch("SET preserve_insertion_order = false; SET max_vacuum_tasks = 0")?;
        let hashed: Vec<usize> = (0..fields.len())
            .filter(|&i| KEY_FIELDS.contains(&fields[i].name.as_str()))
            .collect();
        let mut insert_fields = vec![
            ArrowField::new("id", DataType::Int64, false),
            ArrowField::new("type", DataType::Utf8, false),
            ArrowField::new("created_at", DataType::Timestamp(TimeUnit::Microsecond, None), false),
            ArrowField::new("updated_at", DataType::Timestamp(TimeUnit::Microsecond, None), false),
            ArrowField::new("import_id", DataType::Int64, true),
        ];
        let mut update_fields = vec![
            ArrowField::new("contact_id", DataType::Int64, false),
            ArrowField::new("row", DataType::UInt64, false),
        ];
        for field in &fields {
            let arrow = ArrowField::new(&field.name, store_type(field.kind), true);
            insert_fields.push(arrow.clone());
            update_fields.push(arrow);
        }
        for &i in &hashed {
            let arrow = ArrowField::new(hash_column(&fields[i].name), DataType::UInt64, true);
            insert_fields.push(arrow.clone());
            update_fields.push(arrow);
        }
        let insert_columns: Vec<String> = insert_fields.iter().map(|f| quote_ident(f.name())).collect();
        let insert_schema = Arc::new(Schema::new(insert_fields));
        let update_schema = Arc::new(Schema::new(update_fields));
        let update_sql = update_sql(&fields, &hashed, master);
        let names: Vec<String> = fields.iter().map(|f| f.name.clone()).collect();
        let mut staged: Vec<String> = fields.iter().map(|f| quote_ident(&f.name)).collect();
        staged.extend(hashed.iter().map(|&i| hash_column(&fields[i].name)));
        let feed = Arc::new(Mutex::new(Feed {
            rows: Rows {
                import_id,
                now: now_micros(),
                // Read below, inside the transaction.
                next_id: 0,
                first_id: 0,
                contact_type,
                fields,
                hashed,
                tags,
                insert_schema: insert_schema.clone(),
                update_schema: update_schema.clone(),
            },
            jobs: None,
            inserts: VecDeque::new(),
            updates: VecDeque::new(),
            staged: 0,
            staged_limit: STAGED_ROWS,
            end: None,
            error: None,
            waited: Duration::ZERO,
        }));
        // The views are made before the transaction begins, or it would
        // not see them.
        let mut views = store.arrow_views()?;
        let mut scan = |schema: &Arc<Schema>, updates: bool| {
            let reader = Scan {
                feed: feed.clone(),
                schema: schema.clone(),
                updates,
            };
            views
                .register("kontakt_rows", Box::new(reader))
                .map_err(|e| store.error_message(e))
        };
        let inserts_view = scan(&insert_schema, false)?;
        let updates_view = scan(&update_schema, true)?;

        store.execute_batch("BEGIN TRANSACTION")?;
        ensure_custom_columns(store, names.iter().map(String::as_str))?;
        let next_id = next_contact_id(store)?;
        {
            let mut feed = lock(&feed);
            feed.rows.next_id = next_id;
            feed.rows.first_id = next_id;
        }
        store.execute_batch(&format!(
            "CREATE TEMP TABLE {UPDATES} AS SELECT id AS contact_id, CAST(0 AS UBIGINT) AS \"row\"{}{} FROM contacts LIMIT 0",
            if staged.is_empty() { "" } else { ", " },
            staged.join(", ")
        ))?;
        Ok(Commit {
            store,
            import_id,
            cancel: None,
            armed: None,
            insert_sql: format!(
                "INSERT INTO contacts ({}) SELECT * FROM {inserts_view}",
                insert_columns.join(", ")
            ),
            stage_sql: format!("INSERT INTO {UPDATES} SELECT * FROM {updates_view}"),
            update_sql,
            feed,
            _views: views,
        })
    }

    fn feed(&self) -> MutexGuard<'_, Feed> {
        lock(&self.feed)
    }

    /// Answers to `cancel` from now on: its statements are interrupted by
    /// a request, it checks for one between them, and it commits only if
    /// none came before the connection was disarmed for the `COMMIT`.
    pub fn watch(&mut self, cancel: &'s Cancel) -> Result<()> {
        self.armed = Some(cancel.arm(self.store.interrupt())?);
        self.cancel = Some(cancel);
        Ok(())
    }

    /// `Err(Cancelled)` once a cancel came.
    fn check(&self) -> Result<()> {
        self.cancel.map_or(Ok(()), Cancel::check)
    }

    /// The id of the first contact this transaction inserts.
    pub fn first_id(&self) -> i64 {
        self.feed().rows.first_id
    }

    /// Contacts inserted so far.
    pub fn inserted(&self) -> i64 {
        let feed = self.feed();
        feed.rows.next_id - feed.rows.first_id
    }

    /// Inserts the rows `indices` of a normalized batch as new contacts.
    pub fn insert(&mut self, batch: &RecordBatch, indices: &[u32]) -> Result<()> {
        let pushed = self.feed().push(batch, indices, &[], &[]);
        pushed.map_err(|e| self.store.arrow_error(&e))
    }

    /// Stages updates: row `indices[k]` of a normalized batch updates the
    /// stored contact `contact_ids[k]`.
    pub fn update(&mut self, batch: &RecordBatch, indices: &[u32], contact_ids: &[i64]) -> Result<()> {
        let pushed = self.feed().push(batch, &[], indices, contact_ids);
        pushed.map_err(|e| self.store.arrow_error(&e))
    }

    /// Moves what the feed holds into the store: the new contacts (with a
    /// channel, everything it sends until it ends or the staged updates
    /// fill up), then the staged updates.
    fn flush(&mut self) -> Result<()> {
        self.store.execute_batch(&self.insert_sql)?;
        if let Some(e) = self.feed().error.take() {
            return Err(self.store.arrow_error(&e));
        }
        if !self.feed().updates.is_empty() {
            self.store.execute_batch(&self.stage_sql)?;
            self.feed().staged = 0;
        }
        Ok(())
    }

    /// Inserts and stages everything `jobs` sends, until it sends `Finish`
    /// or `Abort` or goes away. Returns how it ended and the time spent
    /// waiting for jobs.
    fn stream(&mut self, jobs: Receiver<CommitJob>) -> Result<(End, Duration)> {
        self.feed().jobs = Some(jobs);
        loop {
            self.flush()?;
            let mut feed = self.feed();
            if let Some(end) = feed.end.take() {
                feed.jobs = None;
                return Ok((end, feed.waited));
            }
        }
    }

    /// Applies the staged updates, records the counts and commits.
    /// Returns the number of stored contacts updated.
    pub fn finish(mut self, counts: &mut GroupCounts, summary: &str) -> Result<()> {
        crate::cancel::test_stage("commit_flush");
        self.flush()?;
        self.check()?;
        let store = self.store;
        let staged: i64 = store.query_i64(&format!("SELECT count(*) FROM {UPDATES}"), [])?;
        let (now, next_id) = {
            let feed = self.feed();
            (feed.rows.now, feed.rows.next_id)
        };
        // Only the contacts whose values the update changes are written
        // and counted (SPEC: `contacts_updated` counts the stored contacts
        // changed), so re-importing an unchanged export changes nothing,
        // not even `updated_at`.
        counts.contacts_updated = 0;
        if staged > 0 {
            self.check()?;
            crate::cancel::test_stage("commit_update");
            counts.contacts_updated = store.execute(&self.update_sql, [now])? as u64;
        }
        self.check()?;
        store.execute_batch(&format!("DROP TABLE {UPDATES}"))?;
        set_next_contact_id(store, next_id)?;
        let Some(import_id) = self.import_id else {
            self.disarm_to_commit()?;
            return store.execute_batch("COMMIT");
        };
        store.execute(
            "UPDATE import_groups SET status = 'completed', finished_at = make_timestamp(?), rows_read = ?, \
             rows_failed = ?, imported = ?, updated = ?, skipped = ?, contacts_updated = ?, summary = ? WHERE id = ?",
            duckdb::params![
                now_micros(),
                counts.rows_read as i64,
                counts.rows_failed as i64,
                counts.imported as i64,
                counts.updated as i64,
                counts.skipped as i64,
                counts.contacts_updated as i64,
                summary,
                import_id
            ],
        )?;
        crate::cancel::test_stage("commit");
        self.disarm_to_commit()?;
        store.execute_batch("COMMIT")
    }

    /// The last moment a cancel rolls the import back: after this, the
    /// `COMMIT` runs uninterrupted.
    fn disarm_to_commit(&mut self) -> Result<()> {
        self.armed.take().map_or(Ok(()), Armed::disarm_to_commit)
    }

    /// Rolls everything back and records how the group ended.
    pub fn abort(self, ending: Ending, reason: &str) -> Result<()> {
        let store = self.store;
        let import_id = self.import_id;
        // Disarms the connection (its guard goes with it).
        drop(self);
        let rollback = rollback(store);
        if let Some(import_id) = import_id {
            end_group(store, import_id, ending, reason)?;
        }
        rollback
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

/// Records a group as failed or cancelled (outside any transaction).
/// Tried twice: a cancel's interrupt that reached the connection just
/// before it was disarmed fails the next statement once.
pub fn end_group(store: &Store, import_id: i64, ending: Ending, reason: &str) -> Result<()> {
    let status = match ending {
        Ending::Failed => "failed",
        Ending::Cancelled => "cancelled",
    };
    let record = || {
        store.execute(
            "UPDATE import_groups SET status = ?, reason = ?, finished_at = make_timestamp(?) WHERE id = ?",
            duckdb::params![status, reason, now_micros(), import_id],
        )
    };
    record().or_else(|_| record()).map(|_| ())
}

/// Rolls the connection's transaction back, tried twice like [`end_group`].
fn rollback(store: &Store) -> Result<()> {
    store
        .execute_batch("ROLLBACK")
        .or_else(|_| store.execute_batch("ROLLBACK"))
}

/// The Arrow type a field has in the contacts table.
fn store_type(kind: FieldKind) -> DataType {
    match kind {
        FieldKind::Date => DataType::Date32,
        FieldKind::Tags => DataType::List(Arc::new(ArrowField::new("item", DataType::Utf8, true))),
        _ => DataType::Utf8,
    }
}

/// The stored fields of an import: the normalized batch's fields (columns
/// 1..), plus `tags` when only `--tag` gives tags.
pub fn store_fields(names: &[String], tags: &[String]) -> Vec<StoreField> {
    let mut fields: Vec<StoreField> = names
        .iter()
        .enumerate()
        // The contact id only matches; the store assigns ids.
        .filter(|(_, name)| name.as_str() != crate::fields::ID_FIELD.name)
        .map(|(i, name)| StoreField {
            name: name.clone(),
            kind: standard_field(name).map_or(FieldKind::Text, |f| f.kind),
            column: Some(i + 1),
        })
        .collect();
    if !tags.is_empty() && !names.iter().any(|n| n == "tags") {
        fields.push(StoreField {
            name: "tags".into(),
            kind: FieldKind::Tags,
            column: None,
        });
    }
    fields
}

/// What the commit thread is sent.
#[derive(Debug)]
pub enum CommitJob {
    /// Rows of one normalized batch: `inserts` become new contacts; row
    /// `update_rows[k]` updates the stored contact `update_ids[k]`.
    Rows {
        batch: RecordBatch,
        inserts: Vec<u32>,
        update_rows: Vec<u32>,
        update_ids: Vec<i64>,
    },
    /// Everything was sent: apply the updates, record the counts, commit.
    Finish { counts: GroupCounts, summary: String },
    /// The import failed or was cancelled elsewhere: roll back.
    Abort { ending: Ending, reason: String },
}

/// What the commit thread needs to begin: its own connection to the store
/// (a DuckDB transaction belongs to one connection) and the import's fields.
#[derive(Debug)]
pub struct CommitSetup {
    pub store: Store,
    pub import_id: i64,
    pub contact_type: &'static str,
    pub master: Master,
    pub fields: Vec<StoreField>,
    pub tags: Vec<String>,
}

/// A committed import: contacts updated, and the time the thread worked.
#[derive(Debug, Clone, Copy)]
pub struct Committed {
    pub contacts_updated: u64,
    pub busy: Duration,
}

/// The commit thread: begins the transaction, appends what it is sent, and
/// commits on `Finish`. On `Abort`, on its own error, or when the sender
/// goes away without `Finish`, it rolls back and records the group as
/// failed or cancelled. Returns `None` when it rolled back on request.
pub fn run_commit(setup: CommitSetup, jobs: Receiver<CommitJob>, cancel: &Cancel) -> Result<Option<Committed>> {
    let store = &setup.store;
    let fail = |e: Error| -> Error {
        let e = cancel.or_cancelled(e);
        let _ = rollback(store);
        let _ = end_group(store, setup.import_id, Ending::of(&e), &e.to_string());
        e
    };
    let mut commit = Commit::begin(
        store,
        Some(setup.import_id),
        setup.contact_type,
        setup.master,
        setup.fields,
        setup.tags,
    )
    .map_err(fail)?;
    if let Err(e) = commit.watch(cancel) {
        drop(commit);
        return Err(fail(e));
    }
    let started = Instant::now();
    let (end, waited) = match commit.stream(jobs) {
        Ok(ended) => ended,
        Err(e) => {
            let e = cancel.or_cancelled(e);
            commit.abort(Ending::of(&e), &e.to_string())?;
            return Err(e);
        }
    };
    match end {
        End::Finish { mut counts, summary } => {
            commit.finish(&mut counts, &summary).map_err(fail)?;
            Ok(Some(Committed {
                contacts_updated: counts.contacts_updated,
                busy: started.elapsed().saturating_sub(waited),
            }))
        }
        End::Abort { ending, reason } => {
            commit.abort(ending, &reason)?;
            Ok(None)
        }
        End::Closed => {
            commit.abort(Ending::Failed, "the import stopped before it finished")?;
            Ok(None)
        }
    }
}

#[cfg(test)]
mod tests {
    use std::sync::mpsc;

    use arrow::array::UInt64Array;

    use super::*;

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
        let conn = store.connection();
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
        store
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
        lock(&commit.feed).staged_limit = 1;
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
            store
                .query_i64("SELECT count(*) FROM duckdb_views() WHERE NOT internal", [])
                .expect("views"),
            0
        );
    }
}
