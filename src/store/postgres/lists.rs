//! Lists and memberships in PostgreSQL (`lists`, `list_members`, keyed
//! `(contact_id, list_id)`). New memberships stream in by one binary
//! `COPY`; changes of existing ones by one `UPDATE … FROM` a staged
//! table; removals by one `DELETE … = ANY`.

use std::io::Write;
use std::sync::mpsc::Receiver;
use std::sync::{Mutex, PoisonError};

use arrow::record_batch::RecordBatch;

use super::Postgres;
use super::copy::{HEADER, Out, TRAILER, encode_rows};
use super::groups::{iso, timestamp};
use crate::error::Result;
use crate::store::groups::now_micros;
use crate::store::lists::{ListInfo, member_schema, member_update_schema};

/// The staged changes of memberships (a temporary table of the session).
const UPDATES: &str = "kontakt_member_updates";

/// Bytes of encoded memberships written to the `COPY` at a time.
const COPY_CHUNK: usize = 1 << 20;

impl Postgres {
    fn select_lists() -> String {
        format!(
            "SELECT l.id, l.name, l.description, {}, \
             (SELECT count(*) FROM list_members m WHERE m.list_id = l.id \
              AND EXISTS (SELECT 1 FROM contacts c WHERE c.id = m.contact_id)) FROM lists l",
            iso("l.created_at")
        )
    }

    pub(crate) fn lists(&self) -> Result<Vec<ListInfo>> {
        Ok(self
            .query(&format!("{} ORDER BY l.name", Self::select_lists()), &[])?
            .iter()
            .map(list_of)
            .collect())
    }

    pub(crate) fn list_named(&self, name: &str) -> Result<Option<ListInfo>> {
        Ok(self
            .query_opt(&format!("{} WHERE l.name = $1", Self::select_lists()), &[&name])?
            .as_ref()
            .map(list_of))
    }

    pub(crate) fn list_statuses(&self, list_id: i64) -> Result<Vec<(String, i64)>> {
        Ok(self
            .query(
                "SELECT m.status, count(*) FROM list_members m \
                 WHERE m.list_id = $1 AND EXISTS (SELECT 1 FROM contacts c WHERE c.id = m.contact_id) \
                 GROUP BY m.status ORDER BY m.status",
                &[&list_id],
            )?
            .iter()
            .map(|r| (r.get(0), r.get(1)))
            .collect())
    }

    pub(crate) fn create_list(&self, name: &str, description: Option<&str>) -> Result<i64> {
        Ok(self
            .query_opt(
                &format!(
                    "INSERT INTO lists (name, description, created_at) VALUES ($1, $2, {}) RETURNING id",
                    timestamp(3)
                ),
                &[&name, &description, &now_micros()],
            )?
            .map(|r| r.get(0))
            .unwrap_or_default())
    }

    pub(crate) fn rename_list(&self, list_id: i64, new_name: &str) -> Result<()> {
        self.execute("UPDATE lists SET name = $1 WHERE id = $2", &[&new_name, &list_id])
            .map(|_| ())
    }

    pub(crate) fn delete_list(&self, list_id: i64) -> Result<u64> {
        self.begin()?;
        let deleted = (|| {
            let n = self.execute("DELETE FROM list_members WHERE list_id = $1", &[&list_id])?;
            self.execute("DELETE FROM lists WHERE id = $1", &[&list_id])?;
            self.commit()?;
            Ok(n)
        })();
        if deleted.is_err() {
            let _ = self.rollback();
        }
        deleted
    }

    pub(crate) fn scan_contact_ids(&self, each: impl FnMut(&[i64]) -> Result<()>) -> Result<()> {
        self.scan_ids("SELECT id FROM contacts", each)
    }

    pub(crate) fn scan_list_members(&self, list_id: i64, each: impl FnMut(&[i64]) -> Result<()>) -> Result<()> {
        self.scan_ids(
            &format!("SELECT contact_id FROM list_members WHERE list_id = {list_id}"),
            each,
        )
    }

    /// Streams a query of one `bigint` column by binary `COPY`, in batches.
    fn scan_ids(&self, sql: &str, mut each: impl FnMut(&[i64]) -> Result<()>) -> Result<()> {
        use arrow::array::AsArray;
        use arrow::datatypes::Int64Type;

        self.copy_out(
            sql,
            vec!["id".to_string()],
            vec![Out::Int64],
            "contact ids",
            |batches| {
                for batch in batches {
                    each(batch?.column(0).as_primitive::<Int64Type>().values())?;
                }
                Ok(())
            },
        )
    }

    #[allow(clippy::needless_pass_by_value)] // the interface's: DuckDB's appender takes the batch
    pub(crate) fn stage_member_updates(&self, batch: RecordBatch) -> Result<()> {
        self.batch(&format!(
            "CREATE TEMP TABLE IF NOT EXISTS {UPDATES} (contact_id bigint, row bigint, status text, agent text, \
             callback_at timestamp) ON COMMIT DROP"
        ))?;
        let columns: Vec<String> = member_update_schema()
            .fields()
            .iter()
            .map(|f| super::quote_ident(f.name()))
            .collect();
        self.copy_in(UPDATES, &columns.join(", "), &batch)
    }

    pub(crate) fn apply_member_updates(&self, list_id: i64) -> Result<u64> {
        // This session's own temporary table, if it staged any.
        let staged = self.query_one_i64(
            &format!("SELECT count(*) FROM (SELECT to_regclass('pg_temp.{UPDATES}') AS t) AS r WHERE t IS NOT NULL"),
            &[],
        )?;
        if staged == 0 {
            return Ok(0);
        }
        // Per contact and column, the last row that gives a value.
        let last = |column: &str| {
            format!("(array_agg({column} ORDER BY row DESC) FILTER (WHERE {column} IS NOT NULL))[1] AS {column}")
        };
        let changed = self.execute(
            &format!(
                "UPDATE list_members SET \
                   status = coalesce(u.status, list_members.status), \
                   agent = coalesce(u.agent, list_members.agent), \
                   callback_at = coalesce(u.callback_at, list_members.callback_at) \
                 FROM (SELECT contact_id, {}, {}, {} FROM {UPDATES} GROUP BY contact_id) AS u \
                 WHERE list_members.list_id = $1 AND list_members.contact_id = u.contact_id",
                last("status"),
                last("agent"),
                last("callback_at")
            ),
            &[&list_id],
        )?;
        self.batch(&format!("DROP TABLE {UPDATES}"))?;
        Ok(changed)
    }

    pub(crate) fn remove_members(&self, list_id: i64, contact_ids: &[i64]) -> Result<u64> {
        if contact_ids.is_empty() {
            return Ok(0);
        }
        self.execute(
            "DELETE FROM list_members WHERE list_id = $1 AND contact_id = ANY($2)",
            &[&list_id, &contact_ids],
        )
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
        let (first, end) = created;
        self.execute(
            &format!(
                "INSERT INTO list_members (list_id, contact_id, status, added_at, import_id) \
                 SELECT $1, id, 'new', {}, $3 FROM \
                   (SELECT generate_series($4::bigint, $5::bigint - 1) AS id UNION SELECT unnest($6::bigint[])) AS t \
                 ON CONFLICT (contact_id, list_id) DO NOTHING",
                timestamp(2)
            ),
            &[&list_id, &now_micros(), &import_id, &first, &end, &updated],
        )
    }

    /// New memberships from `batches`, written by [`PostgresMemberStream::insert`].
    pub(crate) fn member_stream(&self, batches: Receiver<RecordBatch>) -> Result<PostgresMemberStream<'_>> {
        Ok(PostgresMemberStream {
            db: self,
            receiver: Mutex::new(Some(batches)),
        })
    }
}

/// New memberships streamed into `list_members` by one binary `COPY`, as
/// the file is read.
pub(crate) struct PostgresMemberStream<'s> {
    db: &'s Postgres,
    receiver: Mutex<Option<Receiver<RecordBatch>>>,
}

impl PostgresMemberStream<'_> {
    pub(crate) fn insert(&self) -> Result<()> {
        let Some(receiver) = self.receiver.lock().unwrap_or_else(PoisonError::into_inner).take() else {
            return Ok(());
        };
        let columns: Vec<String> = member_schema()
            .fields()
            .iter()
            .map(|f| super::quote_ident(f.name()))
            .collect();
        let db = self.db;
        let mut client = db.client();
        let mut writer = client
            .copy_in(&format!(
                "COPY list_members ({}) FROM STDIN (FORMAT binary)",
                columns.join(", ")
            ))
            .map_err(|e| db.error(&e))?;
        let failed = |e: std::io::Error| {
            db.error_message(format!("writing memberships to the store: {}", super::describe_io(&e)))
        };
        let mut buffer = HEADER.to_vec();
        for batch in receiver.iter() {
            encode_rows(&batch, &mut buffer).map_err(|m| db.error_message(m))?;
            if buffer.len() >= COPY_CHUNK {
                writer.write_all(&buffer).map_err(failed)?;
                buffer.clear();
            }
        }
        buffer.extend_from_slice(TRAILER);
        writer.write_all(&buffer).map_err(failed)?;
        writer.finish().map_err(|e| db.error(&e))?;
        Ok(())
    }
}

fn list_of(r: &postgres::Row) -> ListInfo {
    ListInfo {
        id: r.get(0),
        name: r.get(1),
        description: r.get(2),
        created_at: r.get(3),
        members: r.get(4),
    }
}
