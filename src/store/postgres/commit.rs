//! An import's transaction in PostgreSQL: new contacts go straight into
//! `contacts` by binary `COPY` as they come; updates are staged by binary
//! `COPY` into a table of their own and applied at the end by one
//! set-based `UPDATE … FROM`, in the same transaction.
//!
//! An import that keeps an undo record builds it on a second connection
//! (the [`Recorder`]) while its own connection runs the update: each is
//! one single-threaded server process, and the two together take 6.2 to
//! 7.5 s where one after the other took 9.7 s (the 267,854 contacts of the
//! 1M x 1M upsert, by hand). The recorder reads the contacts as they are
//! committed, which are the contacts as they were before the import (the
//! import has not committed, and holds the store's writer lock); so it
//! sees the staged rows, they are written on its connection, into an
//! unlogged table of the store's schema, committed as they come. The
//! record is committed there too, before the import's transaction: the
//! group's records are deleted when the group ends any other way than
//! `completed`, and by the next writer after a killed process, with the
//! staged rows' table ([`Postgres::remove_stray_staging`]).

use std::cell::{Cell, RefCell};

use arrow::datatypes::{DataType, SchemaRef};
use arrow::error::ArrowError;

use super::Postgres;
use super::groups::timestamp;
use super::quote_ident;
use crate::error::Result;
use crate::store::commit::{ImportSpec, RowSource, StagedRows, UpdateValues};
use crate::store::groups::now_micros;

/// The staged updates of an import that keeps no undo record (a
/// temporary table, dropped at the end of the transaction).
const UPDATES: &str = "kontakt_updates";

/// The start of the name of an import's table of staged updates when it
/// keeps an undo record (its group's id follows).
pub(super) const STAGED: &str = "kontakt_staged_";

/// The update joins the staged rows to the contacts through the primary
/// key's index when the contacts number more than this many times the
/// staged rows (else by a hash join of one scan).
const INDEX_JOIN_SHARE: i64 = 10;

/// The longest identifier PostgreSQL keeps whole (`NAMEDATALEN` - 1).
const MAX_IDENTIFIER: usize = 63;

/// PostgreSQL cuts identifiers at 63 bytes: a longer `custom.NAME` column
/// would be cut silently and clash with its neighbours, so it is refused.
pub(crate) fn check_custom_field(field: &str) -> Result<()> {
    match field.strip_prefix("custom.") {
        Some(name) if field.len() > MAX_IDENTIFIER => Err(crate::error::Error::usage(format!(
            "custom field {name:?}: a PostgreSQL store holds custom field names of at most {} bytes \
             (its column names are cut at {MAX_IDENTIFIER}); map it to a shorter name with --map",
            MAX_IDENTIFIER - "custom.".len()
        ))),
        _ => Ok(()),
    }
}

impl Postgres {
    /// Creates the `custom.NAME` columns among `names` that the contacts
    /// table lacks (inside the caller's transaction).
    pub(crate) fn add_custom_columns<'a>(&self, names: impl IntoIterator<Item = &'a str>) -> Result<()> {
        let existing = self.columns("contacts")?;
        for field in names {
            if let Some(name) = field.strip_prefix("custom.")
                && !existing.iter().any(|c| c == field)
            {
                check_custom_field(field)?;
                self.batch(&format!("ALTER TABLE contacts ADD COLUMN {} text", quote_ident(field)))?;
                self.execute(
                    &format!(
                        "INSERT INTO custom_fields VALUES ($1, {}) ON CONFLICT DO NOTHING",
                        timestamp(2)
                    ),
                    &[&name, &now_micros()],
                )?;
            }
        }
        Ok(())
    }

    /// Removes what the imports of processes that ended left behind
    /// (called by a writer, holding the writer lock, so no import runs):
    /// their tables of staged updates, and the undo records of `stale`,
    /// their groups.
    pub(super) fn remove_stray_staging(&self, stale: &[i64]) -> Result<()> {
        let tables: Vec<String> = self
            .query(
                "SELECT tablename::text FROM pg_tables WHERE schemaname = $1 AND starts_with(tablename, $2)",
                &[&self.schema, &STAGED],
            )?
            .iter()
            .map(|r| r.get(0))
            .collect();
        if !stale.is_empty() {
            self.execute("DELETE FROM undo_records WHERE group_id = ANY($1)", &[&stale])?;
        }
        for table in tables {
            // Only its owner may drop it (an import run as another role):
            // then it stays, and this writer goes on.
            if self
                .batch(&format!("DROP TABLE IF EXISTS {}", quote_ident(&table)))
                .is_err()
            {
                let _ = self.rollback_after_failure();
            }
        }
        Ok(())
    }

    /// The id the next new contact gets (ids are never reused).
    pub(crate) fn next_contact_id(&self) -> Result<i64> {
        self.query_one_i64(
            "SELECT value::bigint FROM kontakt_meta WHERE key = 'next_contact_id'",
            &[],
        )
    }

    /// Records the id the next new contact gets.
    pub(crate) fn set_next_contact_id(&self, next: i64) -> Result<()> {
        self.execute(
            "UPDATE kontakt_meta SET value = $1 WHERE key = 'next_contact_id'",
            &[&next.to_string()],
        )
        .map(|_| ())
    }

    pub(crate) fn begin_import(&self, spec: ImportSpec<'_>) -> Result<PostgresImport<'_>> {
        let insert_columns: Vec<String> = spec
            .insert_schema
            .fields()
            .iter()
            .map(|f| quote_ident(f.name()))
            .collect();
        // New custom fields' columns are added and committed first, each
        // on its own: `ALTER TABLE` locks `contacts` against readers until
        // its transaction ends, and readers never wait for an import. A
        // column left by an import that then rolls back is empty.
        self.add_custom_columns(spec.fields.iter().map(|f| f.name.as_str()))?;
        self.begin()?;
        let first_id = self.next_contact_id()?;
        let staging: Vec<String> = spec
            .update_schema
            .fields()
            .iter()
            .map(|f| format!("{} {}", quote_ident(f.name()), sql_type(f.data_type())))
            .collect();
        let recorder = match spec.undo_of {
            Some(group) if !crate::store::undo::off() => Some(Box::new(Recorder::new(self, group, &staging)?)),
            _ => {
                self.batch(&format!(
                    "CREATE TEMP TABLE {UPDATES} ({}) ON COMMIT DROP",
                    staging.join(", ")
                ))?;
                None
            }
        };
        let updates = recorder.as_ref().map_or(UPDATES, |r| r.table.as_str()).to_string();
        let UpdateValues { values, changes } = UpdateValues::new(spec.fields, spec.hashed, spec.master, |q| {
            // Most rows add no tags: the subquery is run only for those
            // that do.
            format!(
                "CASE WHEN cardinality(u.{q}) > 0 THEN c.{q} || ARRAY(SELECT x FROM unnest(u.{q}) \
                 WITH ORDINALITY AS t(x, n) WHERE x <> ALL(c.{q}) ORDER BY n) ELSE c.{q} END"
            )
        });
        let set: Vec<String> = values
            .iter()
            .map(|(name, value)| format!("{} = {value}, ", quote_ident(name)))
            .collect();
        // The last staged row of each contact, joined to it where it
        // changes the contact.
        let rows = format!(
            "FROM contacts AS c, (SELECT DISTINCT ON (contact_id) * FROM {updates} \
             ORDER BY contact_id, \"row\" DESC) AS u WHERE c.id = u.contact_id AND ({changes})"
        );
        let update_sql = format!(
            "UPDATE contacts AS c SET {}updated_at = {} {}",
            set.concat(),
            timestamp(1),
            rows.replacen("FROM contacts AS c, ", "FROM ", 1)
        );
        // The earlier values, for the undo record, of exactly the contacts
        // the update changes (the same join and condition).
        let recorder = recorder.map(|r| Box::new(Recorder { rows, values, ..*r }));
        Ok(PostgresImport {
            db: self,
            first_id,
            insert_columns: insert_columns.join(", "),
            update_columns: spec
                .update_schema
                .fields()
                .iter()
                .map(|f| quote_ident(f.name()))
                .collect::<Vec<_>>()
                .join(", "),
            staged: Cell::new(0),
            update_sql,
            recorder: RefCell::new(recorder),
            _schema: spec.update_schema.clone(),
        })
    }
}

/// An import given up without [`PostgresImport::roll_back`] (its commit
/// thread failed or was cancelled before it could run the import's
/// steps) is rolled back here, so that its recorder can remove the staged
/// rows' table (the import's transaction may hold a lock on it) and any
/// records.
impl Drop for PostgresImport<'_> {
    fn drop(&mut self) {
        if let Some(recorder) = self.recorder.take() {
            let _ = self.db.rollback_after_failure();
            let _ = recorder.end(false);
        }
    }
}

/// The PostgreSQL type of an Arrow column of the import's batches.
fn sql_type(data_type: &DataType) -> &'static str {
    match data_type {
        DataType::Int64 | DataType::UInt64 => "bigint",
        DataType::Date32 => "date",
        DataType::Timestamp(..) => "timestamp",
        DataType::List(_) => "text[]",
        _ => "text",
    }
}

/// The second connection of an import that keeps an undo record: it
/// holds the staged updates (table `table`) and builds the record of
/// group `group` beside the update (see the module's comment).
struct Recorder {
    conn: Postgres,
    group: i64,
    table: String,
    /// The contacts the update changes (`FROM … WHERE`, `c` the contact
    /// as it was, `u` its staged row).
    rows: String,
    /// The columns the update sets, with their new values.
    values: Vec<(String, String)>,
}

impl Recorder {
    /// Connects and creates the table of the staged updates (`columns`:
    /// their definitions), committed.
    fn new(db: &Postgres, group: i64, columns: &[String]) -> Result<Recorder> {
        let conn = db.try_clone()?;
        let table = format!("{STAGED}{group}");
        conn.batch(&format!(
            "DROP TABLE IF EXISTS {table}; CREATE UNLOGGED TABLE {table} ({})",
            columns.join(", ")
        ))?;
        Ok(Recorder {
            conn,
            group,
            table,
            rows: String::new(),
            values: Vec::new(),
        })
    }

    /// Removes the staged rows' table and, unless the import committed,
    /// the group's records.
    /// Tried three times: a cancel request sent to the record's statement
    /// as it ended may land on this one instead.
    /// The `DROP` waits at most 5 s for a lock (a connection to the
    /// import's session cut off by the network keeps its lock until the
    /// server notices): a table left is removed by the next writer.
    fn end(&self, committed: bool) -> Result<()> {
        let mut sql = format!("DROP TABLE IF EXISTS {}", self.table);
        if !committed {
            sql = format!("DELETE FROM undo_records WHERE group_id = {}; {sql}", self.group);
        }
        let sql = format!("BEGIN; SET LOCAL lock_timeout = '5s'; {sql}; COMMIT");
        let mut tries = 0;
        loop {
            match self.conn.batch(&sql) {
                Err(_) if tries < 2 => {
                    tries += 1;
                    let _ = self.conn.rollback();
                    std::thread::sleep(std::time::Duration::from_millis(100));
                }
                Err(e) => {
                    let _ = self.conn.rollback();
                    return Err(e);
                }
                ended => return ended,
            }
        }
    }
}

/// An import's open transaction in PostgreSQL.
pub(crate) struct PostgresImport<'s> {
    db: &'s Postgres,
    first_id: i64,
    insert_columns: String,
    update_columns: String,
    /// Update rows staged so far.
    staged: Cell<usize>,
    /// The set-based update of the staged rows.
    update_sql: String,
    /// Boxed: a connection's settings are large.
    recorder: RefCell<Option<Box<Recorder>>>,
    _schema: SchemaRef,
}

impl PostgresImport<'_> {
    pub(crate) fn first_id(&self) -> i64 {
        self.first_id
    }

    /// The undo record's connection: it copies the staged updates in as
    /// they come, then reads the earlier values beside the update (5 s at
    /// 1M x 10M), which a cancel must not wait for.
    pub(crate) fn interrupts(&self) -> Vec<crate::store::Interrupt> {
        self.recorder
            .borrow()
            .iter()
            .map(|r| crate::store::Interrupt::Postgres(r.conn.interrupt()))
            .collect()
    }

    pub(crate) fn push(&self, rows: std::result::Result<StagedRows, ArrowError>) -> Result<()> {
        let rows = rows.map_err(|e| self.db.error_message(format!("preparing rows for the store: {e}")))?;
        if let Some(inserts) = rows.inserts {
            self.db.copy_in("contacts", &self.insert_columns, &inserts)?;
        }
        if let Some(updates) = rows.updates {
            self.staged.set(self.staged.get() + updates.num_rows());
            match &*self.recorder.borrow() {
                Some(r) => r.conn.copy_in(&r.table, &self.update_columns, &updates)?,
                None => self.db.copy_in(UPDATES, &self.update_columns, &updates)?,
            }
        }
        Ok(())
    }

    /// Writes everything the source gives until it ends.
    pub(crate) fn stream(&mut self, mut source: Box<dyn RowSource>) -> Result<()> {
        while let Some(rows) = source.next_rows() {
            self.push(rows)?;
        }
        Ok(())
    }

    /// Every row was written as it came.
    pub(crate) fn flush(&mut self) -> Result<()> {
        Ok(())
    }

    pub(crate) fn staged_updates(&self) -> Result<i64> {
        Ok(self.staged.get() as i64)
    }

    pub(crate) fn apply_updates(&self, now: i64) -> Result<u64> {
        match &*self.recorder.borrow() {
            Some(r) => r.conn.batch(&format!("ANALYZE {}", r.table))?,
            None => self.db.batch(&format!("ANALYZE {UPDATES}"))?,
        }
        // A few staged rows against many contacts: each is looked up by
        // id (the primary key's index, in id order) rather than by a hash
        // join that scans every contact; PostgreSQL's default costs pick
        // the scan even at 3% (1M x 10M: the update 10.6 s by the scan,
        // 4.8 s by the index, by hand). JIT compiling the record's
        // statement took a second of it and saves none.
        let contacts = self.db.query_one_i64(
            "SELECT reltuples::bigint FROM pg_class WHERE oid = 'contacts'::regclass",
            &[],
        )?;
        let by_index = (self.staged.get() as i64).saturating_mul(INDEX_JOIN_SHARE) < contacts;
        let settings = if by_index {
            "jit = off; SET LOCAL enable_hashjoin = off; SET LOCAL enable_mergejoin = off"
        } else {
            "jit = off"
        };
        self.db.batch(&format!("SET LOCAL {settings}"))?;
        // Taken for the record's thread, and put back before any error
        // returns (the recorder ends with the import: `roll_back`, `drop`).
        let recorder = self.recorder.borrow_mut().take();
        let updated = match recorder {
            None => self.db.execute(&self.update_sql, &[&now]),
            Some(recorder) => {
                let cancel = recorder.conn.interrupt();
                let abandoned = std::sync::atomic::AtomicBool::new(false);
                let (updated, recorder, recorded) = std::thread::scope(|s| {
                    let abandoned = &abandoned;
                    let record = s.spawn(move || {
                        let recorded = (|| {
                            recorder.conn.batch(&format!("BEGIN; SET LOCAL {settings}"))?;
                            crate::cancel::test_stage("commit_record");
                            if abandoned.load(std::sync::atomic::Ordering::SeqCst) {
                                // The update's error is the one reported.
                                return Err(recorder.conn.error_message("undo record abandoned".to_string()));
                            }
                            recorder.conn.record_restore(
                                recorder.group,
                                ("c", "c"),
                                &recorder.rows,
                                &recorder.values,
                            )?;
                            recorder.conn.commit()
                        })();
                        if recorded.is_err() {
                            let _ = recorder.conn.rollback_after_failure();
                        }
                        (recorder, recorded)
                    });
                    let updated = self.db.execute(&self.update_sql, &[&now]);
                    if updated.is_err() {
                        // Cancelled or failed: the record is not needed.
                        abandoned.store(true, std::sync::atomic::Ordering::SeqCst);
                        let _ = cancel.cancel_query(postgres::NoTls);
                    }
                    let (recorder, recorded) = record.join().unwrap_or_else(|p| std::panic::resume_unwind(p));
                    (updated, recorder, recorded)
                });
                *self.recorder.borrow_mut() = Some(recorder);
                let updated = updated?;
                recorded?;
                Ok(updated)
            }
        }?;
        self.db
            .batch("RESET jit; RESET enable_hashjoin; RESET enable_mergejoin")?;
        Ok(updated)
    }

    pub(crate) fn end_staging(&self, next_id: i64) -> Result<()> {
        self.db.set_next_contact_id(next_id)
    }

    pub(crate) fn commit(self) -> Result<()> {
        let committed = self.db.commit();
        if let Some(recorder) = self.recorder.take() {
            // The records stay even when the COMMIT failed: a lost
            // connection may have committed, and a group that did not
            // complete has them deleted when it is ended (or by the next
            // writer). A table left here is removed by the next writer.
            let _ = recorder.end(true);
        }
        committed
    }

    pub(crate) fn roll_back(self) -> Result<()> {
        let rolled_back = self.db.rollback_after_failure();
        if let Some(recorder) = self.recorder.take() {
            // Not an error of the import's: the group's records go when it
            // is ended, a table left by the next writer.
            let _ = recorder.end(false);
        }
        rolled_back
    }
}
