//! Commit: one DuckDB transaction per import.
//!
//! The import group is recorded as `running` first, on its own (so it
//! survives a rollback), then one transaction holds everything else: new
//! contacts go in through the Arrow appender batch by batch; updates are
//! appended to a staging table and applied at the end by one set-based
//! `UPDATE … FROM`; the id counter and the group's final counts are written
//! last, then `COMMIT`. A failure or a cancel rolls all of it back and
//! records the group as `failed` or `cancelled` with the reason.

use std::sync::Arc;
use std::time::{SystemTime, UNIX_EPOCH};

use duckdb::Appender;
use duckdb::arrow::array::{
    Array, ArrayRef, AsArray, Int64Array, ListBuilder, StringArray, StringBuilder, TimestampMicrosecondArray,
    UInt32Array, UInt64Array,
};
use duckdb::arrow::compute::{cast, take};
use duckdb::arrow::datatypes::{DataType, Field as ArrowField, Schema};
use duckdb::arrow::record_batch::RecordBatch;

use super::actions::Master;
use crate::error::{Error, Result};
use crate::fields::{FieldKind, KEY_FIELDS, hash_column, key_hash, standard_field};
use crate::store::{Store, quote_ident};

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
        if matches!(error, Error::Cancelled) {
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
            "INSERT INTO import_groups (name, source, status, started_at) \
             VALUES (?, ?, 'running', make_timestamp(?)) RETURNING id",
            duckdb::params![name, source, now_micros()],
            |r| r.get(0),
        )
        .map_err(|e| store.error(&e))
}

/// An import's open transaction (or, without an import group, the
/// transaction of `contacts add`).
pub struct Commit<'s> {
    store: &'s Store,
    import_id: Option<i64>,
    now: i64,
    next_id: i64,
    first_id: i64,
    contact_type: &'static str,
    master: Master,
    fields: Vec<StoreField>,
    /// Key fields among `fields` (their positions): each also writes its
    /// hash column, the store's key index.
    hashed: Vec<usize>,
    /// `--tag` values, added to every imported or updated contact.
    tags: Vec<String>,
    inserts: Appender<'s>,
    updates: Appender<'s>,
    insert_schema: Arc<Schema>,
    update_schema: Arc<Schema>,
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
        store.execute_batch("BEGIN TRANSACTION")?;
        ensure_custom_columns(store, fields.iter().map(|f| f.name.as_str()))?;
        let next_id = next_contact_id(store)?;
        let hashed: Vec<usize> = (0..fields.len())
            .filter(|&i| KEY_FIELDS.contains(&fields[i].name.as_str()))
            .collect();
        let mut columns: Vec<String> = fields.iter().map(|f| quote_ident(&f.name)).collect();
        columns.extend(hashed.iter().map(|&i| hash_column(&fields[i].name)));
        store.execute_batch(&format!(
            "CREATE TEMP TABLE {UPDATES} AS SELECT id AS contact_id, CAST(0 AS UBIGINT) AS \"row\"{}{} FROM contacts LIMIT 0",
            if columns.is_empty() { "" } else { ", " },
            columns.join(", ")
        ))?;

        let mut insert_fields = vec![
            ArrowField::new("id", DataType::Int64, false),
            ArrowField::new("type", DataType::Utf8, false),
            ArrowField::new(
                "created_at",
                DataType::Timestamp(duckdb::arrow::datatypes::TimeUnit::Microsecond, None),
                false,
            ),
            ArrowField::new(
                "updated_at",
                DataType::Timestamp(duckdb::arrow::datatypes::TimeUnit::Microsecond, None),
                false,
            ),
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
        let names: Vec<&str> = insert_fields.iter().map(|f| f.name().as_str()).collect();
        let conn = store.connection();
        let inserts = conn
            .appender_with_columns("contacts", &names)
            .map_err(|e| store.error(&e))?;
        let updates = conn
            .appender_to_catalog_and_db(UPDATES, "temp", "main")
            .map_err(|e| store.error(&e))?;
        Ok(Commit {
            store,
            import_id,
            now: now_micros(),
            next_id,
            first_id: next_id,
            contact_type,
            master,
            fields,
            hashed,
            tags,
            inserts,
            updates,
            insert_schema: Arc::new(Schema::new(insert_fields)),
            update_schema: Arc::new(Schema::new(update_fields)),
        })
    }

    /// The id of the first contact this transaction inserts.
    pub fn first_id(&self) -> i64 {
        self.first_id
    }

    /// Contacts inserted so far.
    pub fn inserted(&self) -> i64 {
        self.next_id - self.first_id
    }

    /// Inserts the rows `indices` of a normalized batch as new contacts.
    pub fn insert(&mut self, batch: &RecordBatch, indices: &[u32]) -> Result<()> {
        if indices.is_empty() {
            return Ok(());
        }
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
        let rows = RecordBatch::try_new(self.insert_schema.clone(), columns).map_err(|e| self.arrow_error(&e))?;
        self.inserts.append_record_batch(rows).map_err(|e| self.store.error(&e))
    }

    /// Stages updates: row `indices[k]` of a normalized batch updates the
    /// stored contact `contact_ids[k]`.
    pub fn update(&mut self, batch: &RecordBatch, indices: &[u32], contact_ids: &[i64]) -> Result<()> {
        if indices.is_empty() {
            return Ok(());
        }
        let indices = UInt32Array::from(indices.to_vec());
        let rows = take(batch.column(0), &indices, None).map_err(|e| self.arrow_error(&e))?;
        let mut columns: Vec<ArrayRef> = vec![Arc::new(Int64Array::from(contact_ids.to_vec())), rows];
        for field in &self.fields {
            columns.push(self.field_values(batch, field, &indices, false)?);
        }
        self.push_hashes(&mut columns, 2);
        let staged = RecordBatch::try_new(self.update_schema.clone(), columns).map_err(|e| self.arrow_error(&e))?;
        self.updates
            .append_record_batch(staged)
            .map_err(|e| self.store.error(&e))
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
    ) -> Result<ArrayRef> {
        let n = indices.len();
        let values: Option<ArrayRef> = field
            .column
            .map(|c| take(batch.column(c), indices, None))
            .transpose()
            .map_err(|e| self.arrow_error(&e))?;
        Ok(match field.kind {
            FieldKind::Date => match values {
                Some(v) => cast(&v, &DataType::Date32).map_err(|e| self.arrow_error(&e))?,
                None => duckdb::arrow::array::new_null_array(&DataType::Date32, n),
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
            _ => values.unwrap_or_else(|| duckdb::arrow::array::new_null_array(&DataType::Utf8, n)),
        })
    }

    fn arrow_error(&self, e: &duckdb::arrow::error::ArrowError) -> Error {
        self.store.arrow_error(e)
    }

    /// Applies the staged updates, records the counts and commits.
    /// Returns the number of stored contacts updated.
    pub fn finish(mut self, counts: &mut GroupCounts, summary: &str) -> Result<()> {
        self.inserts.flush().map_err(|e| self.store.error(&e))?;
        self.updates.flush().map_err(|e| self.store.error(&e))?;
        let store = self.store;
        let contacts_updated: i64 = store
            .connection()
            .query_row(&format!("SELECT count(DISTINCT contact_id) FROM {UPDATES}"), [], |r| {
                r.get(0)
            })
            .map_err(|e| store.error(&e))?;
        counts.contacts_updated = contacts_updated as u64;
        if contacts_updated > 0 {
            store.execute(&self.update_sql(), [self.now])?;
        }
        drop(self.inserts);
        drop(self.updates);
        store.execute_batch(&format!("DROP TABLE {UPDATES}"))?;
        set_next_contact_id(store, self.next_id)?;
        let Some(import_id) = self.import_id else {
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
        store.execute_batch("COMMIT")
    }

    /// The set-based update: the last staged row per contact wins; `--master`
    /// decides between file and stored values; tags are only added.
    fn update_sql(&self) -> String {
        // A key's hash column follows its value column (both null together).
        let hashes = self.hashed.iter().map(|&i| StoreField {
            name: hash_column(&self.fields[i].name),
            kind: FieldKind::Text,
            column: None,
        });
        let set: Vec<String> = self
            .fields
            .iter()
            .cloned()
            .chain(hashes)
            .map(|f| {
                let q = quote_ident(&f.name);
                let expr = match (f.kind, self.master) {
                    (FieldKind::Tags, _) => {
                        format!(
                            "list_concat(c.{q}, list_filter(coalesce(u.{q}, []), x -> NOT list_contains(c.{q}, x)))"
                        )
                    }
                    (FieldKind::Consent, Master::File) => {
                        format!("CASE WHEN u.{q} IS NULL OR u.{q} = 'unknown' THEN c.{q} ELSE u.{q} END")
                    }
                    (FieldKind::Consent, Master::Existing) => {
                        format!("CASE WHEN c.{q} = 'unknown' AND u.{q} IS NOT NULL THEN u.{q} ELSE c.{q} END")
                    }
                    (_, Master::File) => format!("coalesce(u.{q}, c.{q})"),
                    (_, Master::Existing) => format!("coalesce(c.{q}, u.{q})"),
                };
                format!("{q} = {expr}")
            })
            .collect();
        format!(
            "UPDATE contacts AS c SET {}updated_at = make_timestamp(?) \
             FROM (SELECT * FROM {UPDATES} QUALIFY row_number() OVER (PARTITION BY contact_id ORDER BY \"row\" DESC) = 1) AS u \
             WHERE c.id = u.contact_id",
            set.iter().map(|s| format!("{s}, ")).collect::<String>()
        )
    }

    /// Rolls everything back and records how the group ended.
    pub fn abort(self, ending: Ending, reason: &str) -> Result<()> {
        let store = self.store;
        let import_id = self.import_id;
        drop(self);
        let rollback = store.execute_batch("ROLLBACK");
        if let Some(import_id) = import_id {
            end_group(store, import_id, ending, reason)?;
        }
        rollback
    }
}

/// Records a group as failed or cancelled (outside any transaction).
pub fn end_group(store: &Store, import_id: i64, ending: Ending, reason: &str) -> Result<()> {
    let status = match ending {
        Ending::Failed => "failed",
        Ending::Cancelled => "cancelled",
    };
    store
        .execute(
            "UPDATE import_groups SET status = ?, reason = ?, finished_at = make_timestamp(?) WHERE id = ?",
            duckdb::params![status, reason, now_micros(), import_id],
        )
        .map(|_| ())
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
    pub busy: std::time::Duration,
}

/// The commit thread: begins the transaction, appends what it is sent, and
/// commits on `Finish`. On `Abort`, on its own error, or when the sender
/// goes away without `Finish`, it rolls back and records the group as
/// failed or cancelled. Returns `None` when it rolled back on request.
pub fn run_commit(setup: CommitSetup, jobs: std::sync::mpsc::Receiver<CommitJob>) -> Result<Option<Committed>> {
    let store = &setup.store;
    let fail = |e: Error| -> Error {
        let _ = store.execute_batch("ROLLBACK");
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
    let mut busy = std::time::Duration::ZERO;
    for job in jobs {
        let started = std::time::Instant::now();
        match job {
            CommitJob::Rows {
                batch,
                inserts,
                update_rows,
                update_ids,
            } => {
                if let Err(e) = commit
                    .insert(&batch, &inserts)
                    .and_then(|()| commit.update(&batch, &update_rows, &update_ids))
                {
                    commit.abort(Ending::Failed, &e.to_string())?;
                    return Err(e);
                }
            }
            CommitJob::Finish { mut counts, summary } => {
                commit.finish(&mut counts, &summary).map_err(fail)?;
                busy += started.elapsed();
                return Ok(Some(Committed {
                    contacts_updated: counts.contacts_updated,
                    busy,
                }));
            }
            CommitJob::Abort { ending, reason } => {
                commit.abort(ending, &reason)?;
                return Ok(None);
            }
        }
        busy += started.elapsed();
    }
    commit.abort(Ending::Failed, "the import stopped before it finished")?;
    Ok(None)
}
