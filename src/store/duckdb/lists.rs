//! Lists and memberships in DuckDB (schema 8: `lists`, `list_members`).
//! `list_members` has no key: new memberships go in through the Arrow
//! appender (no index to maintain on each append), changes of existing
//! ones through one `UPDATE … FROM` a staged table, removals through one
//! `DELETE` with a staged table of ids.

use std::sync::mpsc::Receiver;
use std::sync::{Arc, Mutex, PoisonError};

use arrow::array::{AsArray, Int64Array};
use arrow::datatypes::{Int64Type, SchemaRef};
use arrow::error::ArrowError;
use arrow::record_batch::{RecordBatch, RecordBatchReader};

use super::{ArrowViews, DuckDb};
use crate::error::Result;
use crate::store::groups::now_micros;
use crate::store::lists::{ListInfo, member_schema};

/// The staged changes of memberships (a temporary table of the connection).
const UPDATES: &str = "kontakt_member_updates";
/// Staged contact ids (removals, an import's updated contacts).
const IDS: &str = "kontakt_member_ids";

/// The lists with their member counts (members whose contact is stored).
const SELECT_LISTS: &str = "SELECT l.id, l.name, l.description, strftime(l.created_at, '%Y-%m-%dT%H:%M:%SZ'), \
     (SELECT count(*) FROM list_members m SEMI JOIN contacts c ON c.id = m.contact_id WHERE m.list_id = l.id) \
     FROM lists l";

impl DuckDb {
    /// Whether the store has the lists' tables (schema 8; a store of 7
    /// opened read-only has not).
    fn has_lists(&self) -> Result<bool> {
        self.query_i64(
            "SELECT count(*) FROM information_schema.tables WHERE table_name = 'list_members'",
            [],
        )
        .map(|n| n > 0)
    }

    pub(crate) fn lists(&self) -> Result<Vec<ListInfo>> {
        if !self.has_lists()? {
            return Ok(Vec::new());
        }
        let mut stmt = self
            .conn
            .prepare(&format!("{SELECT_LISTS} ORDER BY l.name"))
            .map_err(|e| self.error(&e))?;
        stmt.query_map([], list_of)
            .map_err(|e| self.error(&e))?
            .collect::<std::result::Result<_, _>>()
            .map_err(|e| self.error(&e))
    }

    pub(crate) fn list_named(&self, name: &str) -> Result<Option<ListInfo>> {
        if !self.has_lists()? {
            return Ok(None);
        }
        self.query_optional(&format!("{SELECT_LISTS} WHERE l.name = ?"), [name], list_of)
    }

    pub(crate) fn list_statuses(&self, list_id: i64) -> Result<Vec<(String, i64)>> {
        let mut stmt = self
            .conn
            .prepare(
                "SELECT m.status, count(*) FROM list_members m SEMI JOIN contacts c ON c.id = m.contact_id \
                 WHERE m.list_id = ? GROUP BY m.status ORDER BY m.status",
            )
            .map_err(|e| self.error(&e))?;
        stmt.query_map([list_id], |r| Ok((r.get(0)?, r.get(1)?)))
            .map_err(|e| self.error(&e))?
            .collect::<std::result::Result<_, _>>()
            .map_err(|e| self.error(&e))
    }

    pub(crate) fn create_list(&self, name: &str, description: Option<&str>) -> Result<i64> {
        self.conn
            .query_row(
                "INSERT INTO lists (name, description, created_at) VALUES (?, ?, make_timestamp(?)) RETURNING id",
                duckdb::params![name, description, now_micros()],
                |r| r.get(0),
            )
            .map_err(|e| self.error(&e))
    }

    pub(crate) fn rename_list(&self, list_id: i64, new_name: &str) -> Result<()> {
        self.execute(
            "UPDATE lists SET name = ? WHERE id = ?",
            duckdb::params![new_name, list_id],
        )
        .map(|_| ())
    }

    pub(crate) fn delete_list(&self, list_id: i64) -> Result<u64> {
        self.begin()?;
        let deleted = self
            .execute("DELETE FROM list_members WHERE list_id = ?", [list_id])
            .and_then(|n| {
                self.execute("DELETE FROM lists WHERE id = ?", [list_id])?;
                self.commit()?;
                Ok(n as u64)
            });
        if deleted.is_err() {
            let _ = self.rollback();
        }
        deleted
    }

    pub(crate) fn scan_contact_ids(&self, each: impl FnMut(&[i64]) -> Result<()>) -> Result<()> {
        self.scan_ids("SELECT id FROM contacts", each)
    }

    pub(crate) fn scan_list_members(&self, list_id: i64, each: impl FnMut(&[i64]) -> Result<()>) -> Result<()> {
        if !self.has_lists()? {
            return Ok(());
        }
        self.scan_ids(
            &format!("SELECT contact_id FROM list_members WHERE list_id = {list_id}"),
            each,
        )
    }

    /// Streams a query of one BIGINT column, batch by batch.
    fn scan_ids(&self, sql: &str, mut each: impl FnMut(&[i64]) -> Result<()>) -> Result<()> {
        let mut stmt = self.conn.prepare(sql).map_err(|e| self.error(&e))?;
        for batch in self.batches(&mut stmt, [], true)? {
            let batch = batch?;
            let ids = batch.column(0).as_primitive::<Int64Type>();
            each(ids.values())?;
        }
        Ok(())
    }

    pub(crate) fn stage_member_updates(&self, batch: RecordBatch) -> Result<()> {
        self.execute_batch(&format!(
            "CREATE TEMP TABLE IF NOT EXISTS {UPDATES} (contact_id BIGINT, row UBIGINT, status VARCHAR, \
             agent VARCHAR, callback_at TIMESTAMP)"
        ))?;
        self.append_temp(UPDATES, [Ok(batch)])
    }

    pub(crate) fn apply_member_updates(&self, list_id: i64) -> Result<u64> {
        let exists = self.query_i64(
            &format!("SELECT count(*) FROM duckdb_tables() WHERE temporary AND table_name = '{UPDATES}'"),
            [],
        )?;
        if exists == 0 {
            return Ok(0);
        }
        // Per contact and column, the last row that gives a value.
        let changed = self.execute(
            &format!(
                "UPDATE list_members SET \
                   status = coalesce(u.status, list_members.status), \
                   agent = coalesce(u.agent, list_members.agent), \
                   callback_at = coalesce(u.callback_at, list_members.callback_at) \
                 FROM (SELECT contact_id, \
                         arg_max(status, row) FILTER (WHERE status IS NOT NULL) AS status, \
                         arg_max(agent, row) FILTER (WHERE agent IS NOT NULL) AS agent, \
                         arg_max(callback_at, row) FILTER (WHERE callback_at IS NOT NULL) AS callback_at \
                       FROM {UPDATES} GROUP BY contact_id) AS u \
                 WHERE list_members.list_id = {list_id} AND list_members.contact_id = u.contact_id"
            ),
            [],
        )?;
        self.execute_batch(&format!("DROP TABLE {UPDATES}"))?;
        Ok(changed as u64)
    }

    /// Stages `ids` in the temporary table [`IDS`] (made anew).
    fn stage_ids(&self, ids: &[i64]) -> Result<()> {
        self.execute_batch(&format!("CREATE OR REPLACE TEMP TABLE {IDS} (id BIGINT)"))?;
        let batch =
            RecordBatch::try_from_iter([("id", Arc::new(Int64Array::from(ids.to_vec())) as arrow::array::ArrayRef)])
                .map_err(|e| self.arrow_error(&e))?;
        self.append_temp(IDS, [Ok(batch)])
    }

    pub(crate) fn remove_members(&self, list_id: i64, contact_ids: &[i64]) -> Result<u64> {
        if contact_ids.is_empty() {
            return Ok(0);
        }
        self.stage_ids(contact_ids)?;
        let removed = self.execute(
            &format!("DELETE FROM list_members WHERE list_id = {list_id} AND contact_id IN (SELECT id FROM {IDS})"),
            [],
        )?;
        self.execute_batch(&format!("DROP TABLE {IDS}"))?;
        Ok(removed as u64)
    }

    pub(crate) fn add_import_to_list(
        &self,
        list: &str,
        import_id: i64,
        created: (i64, i64),
        updated: &[i64],
    ) -> Result<u64> {
        let list_id = match self.list_named(list)? {
            Some(info) => info.id,
            None => self.create_list(list, None)?,
        };
        self.stage_ids(updated)?;
        let (first, end) = created;
        let added = self.execute(
            &format!(
                "INSERT INTO list_members (list_id, contact_id, status, added_at, import_id) \
                 SELECT {list_id}, id, 'new', make_timestamp(?), {import_id} FROM \
                   (SELECT range AS id FROM range({first}, {end}) UNION ALL SELECT id FROM {IDS}) AS t \
                 WHERE id NOT IN (SELECT contact_id FROM list_members WHERE list_id = {list_id})"
            ),
            [now_micros()],
        )?;
        self.execute_batch(&format!("DROP TABLE {IDS}"))?;
        Ok(added as u64)
    }
}

impl DuckDb {
    /// The memberships an import added (`import --list`) and those of the
    /// contacts it created, inside the caller's transaction (`imports
    /// delete`).
    pub(crate) fn delete_import_memberships(&self, import_id: i64) -> Result<()> {
        self.execute(
            "DELETE FROM list_members WHERE import_id = ? \
             OR contact_id IN (SELECT id FROM contacts WHERE import_id = ?)",
            [import_id, import_id],
        )
        .map(|_| ())
    }
}

/// New memberships streamed into `list_members`: DuckDB's Arrow scan
/// reads them from a channel (on its threads, in parallel with the
/// conversion and compression of what it read), the way an import's new
/// contacts reach the store.
pub(crate) struct DuckDbMemberStream<'s> {
    db: &'s DuckDb,
    /// Kept until the stream is dropped (after the transaction's end).
    _views: ArrowViews,
    view: String,
    receiver: SharedReceiver,
}

type SharedReceiver = Arc<Mutex<Option<Receiver<RecordBatch>>>>;

/// The channel as DuckDB's scan reads it: a batch at a time until the
/// sender is gone (or the stream is closed).
struct ChannelScan {
    receiver: SharedReceiver,
    schema: SchemaRef,
}

impl Iterator for ChannelScan {
    type Item = std::result::Result<RecordBatch, ArrowError>;

    fn next(&mut self) -> Option<Self::Item> {
        let receiver = self.receiver.lock().unwrap_or_else(PoisonError::into_inner);
        receiver.as_ref()?.recv().ok().map(Ok)
    }
}

impl RecordBatchReader for ChannelScan {
    fn schema(&self) -> SchemaRef {
        self.schema.clone()
    }
}

impl DuckDb {
    /// Registers the view of a stream of new memberships; before the
    /// transaction begins (it would not see a newer view).
    pub(crate) fn member_stream(&self, batches: Receiver<RecordBatch>) -> Result<DuckDbMemberStream<'_>> {
        let receiver = Arc::new(Mutex::new(Some(batches)));
        let mut views = self.arrow_views()?;
        let view = views
            .register(
                "kontakt_members",
                Box::new(ChannelScan {
                    receiver: receiver.clone(),
                    schema: member_schema(),
                }),
            )
            .map_err(|e| self.error_message(e))?;
        Ok(DuckDbMemberStream {
            db: self,
            _views: views,
            view,
            receiver,
        })
    }
}

impl DuckDbMemberStream<'_> {
    pub(crate) fn insert(&self) -> Result<()> {
        // Several threads scan the stream; the order rows land in does
        // not matter (and keeping it would cost a thread waiting).
        let inserted = self.db.execute_batch(&format!(
            "SET preserve_insertion_order = false; INSERT INTO list_members SELECT * FROM {}",
            self.view
        ));
        self.close();
        inserted
    }

    pub(crate) fn close(&self) {
        self.receiver.lock().unwrap_or_else(PoisonError::into_inner).take();
    }
}

fn list_of(r: &duckdb::Row<'_>) -> duckdb::Result<ListInfo> {
    Ok(ListInfo {
        id: r.get(0)?,
        name: r.get(1)?,
        description: r.get(2)?,
        created_at: r.get(3)?,
        members: r.get(4)?,
    })
}
