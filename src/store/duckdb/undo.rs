//! What `kontakt imports undo` needs on DuckDB (see [`crate::store::undo`]).
//!
//! An import or merge that changes stored contacts keeps, in its own
//! transaction, rows of `undo_records(group_id, kind, seq, rows, data)`:
//! each `data` an Arrow IPC stream (LZ4) of
//! - `restore`: contacts as they were before it, with only the columns it
//!   changed (an import) or whole (a merge's survivors);
//! - `reinsert`: the contacts a merge merged away, whole;
//! - `members`: the list memberships a merge moved (`added` false: as they
//!   were; true: those it added).
//!
//! The earlier values pass through kontakt as Arrow and are written as
//! one value per part: a table of the same rows cost DuckDB as much again
//! as the update itself (its per-column compression of every row), a blob
//! costs about a memory copy (docs/DESIGN.md, "Undo").

use arrow::ipc::CompressionType;
use arrow::ipc::reader::StreamReader;
use arrow::ipc::writer::{IpcWriteOptions, StreamWriter};
use arrow::record_batch::RecordBatch;

use super::{DuckDb, quote_ident};
use crate::error::Result;
use crate::store::undo::{CHANGED, FIRST_IDS, UndoScope};

/// Writes one group's undo records on a connection of its own, each
/// committed as it is written, not in the group's transaction: DuckDB
/// holds a transaction's new values in memory until it commits, and the
/// record of a 10M x 10M upsert (about 400 MB) did not fit its memory cap
/// beside the import ("failed to pin block"). Records of a group that did
/// not complete are never read, and are removed when the import rolls
/// back or the store is next opened for writing.
pub(super) struct Recorder {
    conn: DuckDb,
    group: i64,
}

impl Recorder {
    pub(super) fn new(db: &DuckDb, group: i64) -> Result<Recorder> {
        Ok(Recorder {
            conn: db.try_clone()?,
            group,
        })
    }

    /// Keeps `batches` as a record of `kind`.
    pub(super) fn keep(&self, kind: &str, batches: &[RecordBatch]) -> Result<()> {
        self.conn.keep_undo(self.group, kind, batches)
    }

    /// Runs `work`, keeping as records of `kind` the batches it passes to
    /// its argument on a thread of its own (with a connection of its own),
    /// so that writing one part's record overlaps what `work` does next;
    /// returns once they are all kept. A hand-over waits until the thread
    /// has taken the batches, so at most two parts' records are held (the
    /// one being written, the one handed over). At 1M x 1M the record's
    /// value took 0.18-0.43 s to commit, most of it waiting on the disk.
    pub(super) fn in_background<T>(
        &self,
        kind: &str,
        work: impl FnOnce(&mut dyn FnMut(Vec<RecordBatch>) -> Result<()>) -> Result<T>,
    ) -> Result<T> {
        let writer = Recorder {
            conn: self.conn.try_clone()?,
            group: self.group,
        };
        std::thread::scope(|scope| {
            let (send, receive) = std::sync::mpsc::sync_channel::<Vec<RecordBatch>>(0);
            let thread = std::thread::Builder::new()
                .name("kontakt-undo-record".into())
                .spawn_scoped(scope, move || -> Result<()> {
                    for batches in receive {
                        writer.keep(kind, &batches)?;
                    }
                    Ok(())
                })
                .map_err(|e| {
                    self.conn
                        .error_message(format!("starting the undo record's writer: {e}"))
                })?;
            let mut stopped = false;
            let result = work(&mut |batches| {
                send.send(batches).map_err(|_| {
                    stopped = true;
                    self.conn.error_message("the undo record's writer stopped")
                })
            });
            drop(send);
            let kept = thread
                .join()
                .unwrap_or_else(|_| Err(self.conn.error_message("the undo record's writer panicked")));
            match result {
                // The work's own failure (a cancel, a failed update) is
                // the error; a failed hand-over is the writer's.
                Err(e) if !stopped => Err(e),
                result => kept.and(result),
            }
        })
    }

    /// Removes the records kept so far (the group did not complete).
    pub(super) fn discard(&self) -> Result<()> {
        self.conn.drop_undo_record(self.group)
    }
}

impl std::fmt::Debug for Recorder {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        write!(f, "Recorder({})", self.group)
    }
}

/// The kinds of record, and the temporary table each is loaded into for
/// an undo.
const KINDS: [(&str, &str); 3] = [
    ("restore", "kontakt_undo_restore"),
    ("reinsert", "kontakt_undo_reinsert"),
    ("members", "kontakt_undo_members"),
];

/// The columns of `contacts` that are ENUMs: kept as text (DuckDB gives
/// them to Arrow as dictionaries, which its appender does not take back).
const ENUMS: [&str; 4] = ["type", "gender", "email_opt_in", "sms_opt_in"];

/// The start of the names of a `restore` record's masks: bit `j % 64` of
/// mask `j / 64` is set where the `j`-th column's earlier value was null
/// and the update changed it.
const NULLED: &str = "kontakt_nulled_";

/// A `restore` record's column of the tags an update added, in place of
/// the tags before it: an update only adds tags, so the undo takes those
/// away and leaves any a later group added (a forced undo keeps them).
const TAGS_ADDED: &str = "kontakt_tags_added";

/// The select list of what a `restore` record keeps of a contact an update
/// changes (`alias`: the contact as it was; `values`: each column the
/// update sets, with its new value): the id, each column's earlier value
/// where the update changes it (else null), `updated_at`, and the masks
/// ([`NULLED`]) that tell a changed null from an unchanged column. Most of
/// an upsert's columns keep their value (at 1M x 1M: names, company and
/// website in every contact), so this holds under half the bytes of whole
/// columns.
pub(super) fn changed_columns(alias: &str, values: &[(String, String)]) -> String {
    let mut list = vec![format!("{alias}.id")];
    for (name, value) in values {
        let q = quote_ident(name);
        list.push(if name == "tags" {
            format!(
                "CASE WHEN {alias}.tags IS DISTINCT FROM {value} \
                 THEN list_filter({value}, x -> NOT list_contains({alias}.tags, x)) END AS {TAGS_ADDED}"
            )
        } else {
            format!(
                "CASE WHEN {alias}.{q} IS DISTINCT FROM {value} THEN {} END AS {q}",
                record_column(alias, name)
            )
        });
    }
    list.push(format!("{alias}.updated_at"));
    for (k, chunk) in values.chunks(64).enumerate() {
        let bits: Vec<String> = chunk
            .iter()
            .enumerate()
            .map(|(j, (name, value))| {
                format!(
                    "CASE WHEN {alias}.{q} IS NULL AND ({value}) IS NOT NULL THEN {} ELSE 0 END",
                    1u64 << j,
                    q = quote_ident(name)
                )
            })
            .collect();
        list.push(format!("CAST({} AS UBIGINT) AS {NULLED}{k}", bits.join(" | ")));
    }
    list.join(", ")
}

/// The select list of `columns` of `contacts` (as `alias.column`) the
/// way a record keeps them.
pub(super) fn record_columns(alias: &str, columns: &[String]) -> String {
    columns
        .iter()
        .map(|c| format!("{} AS {}", record_column(alias, c), quote_ident(c)))
        .collect::<Vec<_>>()
        .join(", ")
}

/// Column `column` of `contacts` (as `alias.column`) the way a record
/// keeps it.
pub(super) fn record_column(alias: &str, column: &str) -> String {
    let q = quote_ident(column);
    if ENUMS.contains(&column) {
        format!("CAST({alias}.{q} AS VARCHAR)")
    } else {
        format!("{alias}.{q}")
    }
}

impl DuckDb {
    /// Keeps `batches` as a record of `kind` of group `group` (nothing when
    /// they have no rows): one IPC stream per thread's share, compressed
    /// in parallel, each committed at once (see [`Recorder`]).
    fn keep_undo(&self, group: i64, kind: &str, batches: &[RecordBatch]) -> Result<()> {
        use rayon::prelude::*;
        if crate::store::undo::off() || batches.iter().all(|b| b.num_rows() == 0) {
            return Ok(());
        }
        let share = batches.len().div_ceil(rayon::current_num_threads()).max(1);
        let streams: Vec<(usize, Vec<u8>)> = batches
            .par_chunks(share)
            .map(|chunk| {
                let options = IpcWriteOptions::default().try_with_compression(Some(CompressionType::LZ4_FRAME))?;
                let mut data = Vec::new();
                let mut writer = StreamWriter::try_new_with_options(&mut data, &chunk[0].schema(), options)?;
                for batch in chunk {
                    writer.write(batch)?;
                }
                writer.finish()?;
                drop(writer);
                Ok((chunk.iter().map(RecordBatch::num_rows).sum(), data))
            })
            .collect::<std::result::Result<_, arrow::error::ArrowError>>()
            .map_err(|e| self.arrow_error(&e))?;
        for (rows, data) in streams {
            self.execute(
                "INSERT INTO undo_records VALUES (?, ?, \
                 (SELECT coalesce(max(seq), 0) + 1 FROM undo_records WHERE group_id = ?), ?, ?)",
                duckdb::params![group, kind, group, rows as i64, data],
            )?;
        }
        Ok(())
    }

    /// Removes the undo records of groups that did not complete (an
    /// import or merge writes them as it goes, outside its transaction:
    /// see [`Recorder`]).
    pub(super) fn remove_stray_undo_records(&self) -> Result<()> {
        self.execute(
            "DELETE FROM undo_records WHERE group_id NOT IN \
             (SELECT id FROM import_groups WHERE status = 'completed')",
            [],
        )
        .map(|_| ())
    }

    /// Keeps what the undo of merge `merge` needs, once its survivors are
    /// merged and before its members are deleted: the survivors' earlier
    /// values (`before`: the survivors as they were) of the columns the
    /// merge changed, as an import's record keeps them, and the members
    /// merged away (`pairs`: contact_id, survivor_id), whole.
    pub(super) fn record_merge(&self, merge: i64, before: &str, pairs: &str) -> Result<()> {
        if merge == 0 {
            // A dry run keeps nothing.
            return Ok(());
        }
        let recorder = Recorder::new(self, merge)?;
        let columns = self.columns("contacts")?;
        let values: Vec<(String, String)> = columns
            .iter()
            .filter(|c| !["id", "updated_at"].contains(&c.as_str()))
            .map(|c| (c.clone(), format!("c.{}", quote_ident(c))))
            .collect();
        let survivors = self.query_arrow(
            &format!(
                "SELECT {} FROM {before} AS b JOIN contacts AS c ON c.id = b.id",
                changed_columns("b", &values)
            ),
            &[],
        )?;
        self.keep_undo(merge, "restore", &survivors)?;
        let merged = self.query_arrow(
            &format!(
                "SELECT {} FROM contacts AS c JOIN {pairs} AS p ON p.contact_id = c.id \
                 WHERE p.contact_id <> p.survivor_id",
                record_columns("c", &columns)
            ),
            &[],
        )?;
        recorder.keep("reinsert", &merged)
    }

    /// Moves the list memberships of the contacts a merge merges away to
    /// their survivors (`pairs`: contact_id, survivor_id): a list the
    /// survivor is not on gets the survivor with the earliest of the merged
    /// memberships (its status, agent, callback and time). What was moved
    /// and what was added is kept for the undo.
    pub(super) fn move_memberships(&self, merge: i64, pairs: &str) -> Result<()> {
        let merged = format!(
            "SELECT m.*, p.survivor_id FROM list_members AS m JOIN {pairs} AS p ON p.contact_id = m.contact_id \
             WHERE p.contact_id <> p.survivor_id"
        );
        if self.query_i64(&format!("SELECT count(*) FROM ({merged})"), [])? == 0 {
            return Ok(());
        }
        let added = format!(
            "SELECT list_id, survivor_id AS contact_id, arg_min(status, added_at) AS status, \
               arg_min(agent, added_at) AS agent, arg_min(callback_at, added_at) AS callback_at, \
               min(added_at) AS added_at, arg_min(import_id, added_at) AS import_id \
             FROM ({merged}) AS m \
             WHERE NOT EXISTS (SELECT 1 FROM list_members AS s WHERE s.list_id = m.list_id AND s.contact_id = m.survivor_id) \
             GROUP BY list_id, survivor_id"
        );
        self.execute_batch(&format!("CREATE OR REPLACE TEMP TABLE kontakt_merge_moved AS {added}"))?;
        let kept = self.query_arrow(
            &format!(
                "SELECT * EXCLUDE (survivor_id), false AS added FROM ({merged}) \
                 UNION ALL SELECT *, true FROM kontakt_merge_moved"
            ),
            &[],
        )?;
        if merge != 0 {
            Recorder::new(self, merge)?.keep("members", &kept)?;
        }
        self.execute_batch(&format!(
            "DELETE FROM list_members WHERE contact_id IN \
               (SELECT contact_id FROM {pairs} WHERE contact_id <> survivor_id); \
             INSERT INTO list_members SELECT * FROM kontakt_merge_moved; \
             DROP TABLE kontakt_merge_moved"
        ))
    }

    /// Loads group `group`'s records into temporary tables (see [`KINDS`]);
    /// whether it has any.
    fn load_undo(&self, group: i64) -> Result<bool> {
        let mut any = false;
        for (kind, table) in KINDS {
            self.execute_batch(&format!("DROP TABLE IF EXISTS {table}"))?;
            let mut any_of_kind = false;
            // One stream at a time: each is up to tens of MB, and DuckDB
            // would hold a whole result of them under its memory cap.
            let seqs: Vec<i32> = {
                let conn = self.connection();
                let mut statement = conn
                    .prepare("SELECT seq FROM undo_records WHERE group_id = ? AND kind = ? ORDER BY seq")
                    .map_err(|e| self.error(&e))?;
                statement
                    .query_map(duckdb::params![group, kind], |r| r.get(0))
                    .and_then(|rows| rows.collect::<std::result::Result<_, _>>())
                    .map_err(|e| self.error(&e))?
            };
            for seq in seqs {
                let blob: Vec<u8> = self
                    .connection()
                    .query_row(
                        "SELECT data FROM undo_records WHERE group_id = ? AND kind = ? AND seq = ?",
                        duckdb::params![group, kind, seq],
                        |r| r.get(0),
                    )
                    .map_err(|e| self.error(&e))?;
                let reader =
                    StreamReader::try_new(std::io::Cursor::new(blob), None).map_err(|e| self.arrow_error(&e))?;
                if !any_of_kind {
                    let like = if kind == "members" {
                        "SELECT *, false AS added FROM list_members".to_string()
                    } else {
                        let columns: Vec<String> = reader.schema().fields().iter().map(|f| f.name().clone()).collect();
                        let list: Vec<String> = columns
                            .iter()
                            .map(|c| match c.strip_prefix(NULLED) {
                                Some(_) => format!("0::UBIGINT AS {}", quote_ident(c)),
                                None if c == TAGS_ADDED => format!("c.tags AS {TAGS_ADDED}"),
                                None => format!("{} AS {}", record_column("c", c), quote_ident(c)),
                            })
                            .collect();
                        format!("SELECT {} FROM contacts AS c", list.join(", "))
                    };
                    self.execute_batch(&format!("CREATE TEMP TABLE {table} AS {like} LIMIT 0"))?;
                    any_of_kind = true;
                }
                self.append_temp(table, reader.map(|batch| batch.map_err(|e| self.arrow_error(&e))))?;
            }
            any |= any_of_kind;
        }
        Ok(any)
    }

    fn loaded(&self, kind: &str) -> Result<bool> {
        let table = KINDS
            .iter()
            .find(|(k, _)| *k == kind)
            .map(|(_, t)| *t)
            .unwrap_or_default();
        Ok(self.query_i64(
            "SELECT count(*) FROM duckdb_tables() WHERE temporary AND table_name = ?",
            [table],
        )? > 0)
    }

    /// What undoing group `group` would do (see [`UndoScope`]); loads its
    /// records for [`Self::undo_group`]. A contact changed later has an
    /// `updated_at` after the group finished (every write sets it; an undo
    /// puts back the one it had).
    pub(crate) fn undo_scope(&self, group: i64) -> Result<UndoScope> {
        let recorded = self.load_undo(group)?;
        let finished = format!("(SELECT finished_at FROM import_groups WHERE id = {group})");
        let created = self.query_i64("SELECT count(*) FROM contacts WHERE import_id = ?", [group])? as u64;
        let memberships = self.query_i64(
            "SELECT count(*) FROM list_members WHERE import_id = ? \
             OR contact_id IN (SELECT id FROM contacts WHERE import_id = ?)",
            [group, group],
        )? as u64;
        let mut scope = UndoScope {
            recorded,
            created,
            memberships,
            ..UndoScope::default()
        };
        scope.custom_fields = self.fields_going_with(group)?;
        // Created contacts changed since, then restored ones changed or
        // deleted since (and merged ones back since, which ids never are).
        let mut changed = format!("SELECT id FROM contacts WHERE import_id = {group} AND updated_at > {finished}");
        if self.loaded("restore")? {
            // Those deleted since stay deleted: not restored.
            scope.restored = self.query_i64(
                "SELECT count(*) FROM kontakt_undo_restore AS u JOIN contacts AS c ON c.id = u.id",
                [],
            )? as u64;
            changed = format!(
                "{changed} UNION ALL SELECT u.id FROM kontakt_undo_restore AS u LEFT JOIN contacts AS c ON c.id = u.id \
                 WHERE c.id IS NULL OR c.updated_at > {finished}"
            );
        }
        if self.loaded("reinsert")? {
            scope.reinserted = self.query_i64("SELECT count(*) FROM kontakt_undo_reinsert", [])? as u64;
            changed = format!(
                "{changed} UNION ALL SELECT u.id FROM kontakt_undo_reinsert AS u JOIN contacts AS c ON c.id = u.id"
            );
        }
        self.execute_batch(&format!("CREATE OR REPLACE TEMP TABLE {CHANGED} AS {changed}"))?;
        scope.changed_later = self.query_i64(&format!("SELECT count(*) FROM {CHANGED}"), [])? as u64;
        if scope.changed_later > 0 {
            let conn = self.connection();
            let mut statement = conn
                .prepare(&format!("SELECT id FROM {CHANGED} ORDER BY id LIMIT {FIRST_IDS}"))
                .map_err(|e| self.error(&e))?;
            scope.first_changed = statement
                .query_map([], |r| r.get(0))
                .and_then(|rows| rows.collect::<std::result::Result<Vec<i64>, _>>())
                .map_err(|e| self.error(&e))?;
        }
        Ok(scope)
    }

    /// Undoes group `group` at time `now`, inside the caller's transaction,
    /// from the records [`Self::undo_scope`] loaded: its list memberships
    /// and the contacts it created go, the contacts it changed get their
    /// recorded values back (those deleted since stay deleted), the
    /// contacts a merge merged away come back with their memberships, and
    /// the group is marked `undone`.
    pub(crate) fn undo_group(&self, group: i64, now: i64, scope: &UndoScope) -> Result<()> {
        // First, while the transaction has changed no row of `contacts`
        // (DuckDB alters no table it changed).
        let dropped = &scope.custom_fields;
        for name in dropped {
            self.execute_batch(&format!(
                "ALTER TABLE contacts DROP COLUMN {}",
                quote_ident(&format!("custom.{name}"))
            ))?;
            self.execute("DELETE FROM custom_fields WHERE name = ?", [name])?;
        }
        self.execute(
            "DELETE FROM list_members WHERE import_id = ? \
             OR contact_id IN (SELECT id FROM contacts WHERE import_id = ?)",
            [group, group],
        )?;
        self.execute("DELETE FROM contacts WHERE import_id = ?", [group])?;
        if self.loaded("restore")? {
            // A record holds a column's earlier value where the group
            // changed it, and says where that value was null (one kept
            // before these masks existed holds whole values).
            let columns = self.columns("kontakt_undo_restore")?;
            let masked = columns.iter().any(|c| c.starts_with(NULLED));
            let set: Vec<String> = columns
                .iter()
                .filter(|c| c.as_str() != "id" && !c.starts_with(NULLED))
                .enumerate()
                .filter(|(_, c)| {
                    !c.strip_prefix("custom.")
                        .is_some_and(|n| dropped.iter().any(|d| d == n))
                })
                .map(|(j, c)| {
                    let q = quote_ident(c);
                    if c == TAGS_ADDED {
                        format!(
                            "tags = CASE WHEN u.{c} IS NULL THEN c.tags \
                             ELSE list_filter(c.tags, x -> NOT list_contains(u.{c}, x)) END"
                        )
                    } else {
                        let restored = if masked && c != "updated_at" {
                            format!(
                                "CASE WHEN u.{q} IS NOT NULL THEN u.{q} \
                                 WHEN u.{NULLED}{} & {} <> 0 THEN NULL ELSE c.{q} END",
                                j / 64,
                                1u64 << (j % 64)
                            )
                        } else {
                            format!("u.{q}")
                        };
                        crate::store::undo::restore_assignment(c, &restored)
                    }
                })
                .collect();
            self.execute_batch(&format!(
                "UPDATE contacts AS c SET {} FROM kontakt_undo_restore AS u WHERE c.id = u.id",
                set.join(", ")
            ))?;
            // A contact changed since (an undo with --force) now holds
            // values from before the group next to later ones: it is
            // changed now, so that the undo of a later group that touched
            // it sees so.
            self.execute(
                &format!("UPDATE contacts SET updated_at = make_timestamp(?) WHERE id IN (SELECT id FROM {CHANGED})"),
                [now],
            )?;
        }
        if self.loaded("reinsert")? {
            // Merged contacts were kept with the columns of their time,
            // a custom field the merge made (`--keep-dropped`) among them.
            let exclude: Vec<String> = dropped
                .iter()
                .map(|name| quote_ident(&format!("custom.{name}")))
                .collect();
            let exclude = if exclude.is_empty() {
                String::new()
            } else {
                format!(" EXCLUDE ({})", exclude.join(", "))
            };
            self.execute_batch(&format!(
                "INSERT INTO contacts BY NAME SELECT *{exclude} FROM kontakt_undo_reinsert; \
                 DELETE FROM merged_contacts WHERE merge_id = {group}"
            ))?;
        }
        if self.loaded("members")? {
            self.execute_batch(
                "DELETE FROM list_members AS m USING (SELECT list_id, contact_id FROM kontakt_undo_members WHERE added) AS a \
                   WHERE m.list_id = a.list_id AND m.contact_id = a.contact_id; \
                 INSERT INTO list_members SELECT * EXCLUDE (added) FROM kontakt_undo_members WHERE NOT added",
            )?;
        }
        for table in KINDS.map(|(_, table)| table).into_iter().chain([CHANGED]) {
            self.execute_batch(&format!("DROP TABLE IF EXISTS {table}"))?;
        }
        self.drop_undo_record(group)?;
        self.execute(
            "UPDATE import_groups SET status = 'undone', undone_at = make_timestamp(?) WHERE id = ?",
            [now, group],
        )?;
        Ok(())
    }

    /// The custom fields group `group` (an import, or a merge's
    /// `--keep-dropped`) created (registered while it ran:
    /// one process writes at a time) that hold a value only in contacts
    /// it created or changed: after its undo they are empty, and their
    /// columns go (an export is then as before the import). Needs the
    /// records [`Self::undo_scope`] loaded.
    fn fields_going_with(&self, group: i64) -> Result<Vec<String>> {
        let created: Vec<String> = {
            let conn = self.connection();
            let mut statement = conn
                .prepare(
                    "SELECT f.name FROM custom_fields AS f, import_groups AS g \
                     WHERE g.id = ? AND f.created_at BETWEEN g.started_at AND g.finished_at \
                     ORDER BY f.name",
                )
                .map_err(|e| self.error(&e))?;
            statement
                .query_map([group], |r| r.get(0))
                .and_then(|rows| rows.collect::<std::result::Result<_, _>>())
                .map_err(|e| self.error(&e))?
        };
        let columns = self.columns("contacts")?;
        let restored = if self.loaded("restore")? {
            " AND id NOT IN (SELECT id FROM kontakt_undo_restore)"
        } else {
            ""
        };
        let mut going = Vec::new();
        for name in created {
            let column = format!("custom.{name}");
            if !columns.contains(&column) {
                continue;
            }
            let elsewhere = self.query_i64(
                &format!(
                    "SELECT count(*) FROM contacts WHERE {} IS NOT NULL AND import_id IS DISTINCT FROM ?{restored}",
                    quote_ident(&column)
                ),
                [group],
            )?;
            if elsewhere == 0 {
                going.push(name);
            }
        }
        Ok(going)
    }

    /// When the last undo ran (microseconds since the epoch), if any ran.
    pub(crate) fn last_undo(&self) -> Result<Option<i64>> {
        if !self.columns("import_groups")?.iter().any(|c| c == "undone_at") {
            return Ok(None);
        }
        self.query_optional(
            "SELECT epoch_us(max(undone_at)) FROM import_groups HAVING max(undone_at) IS NOT NULL",
            [],
            |r| r.get(0),
        )
    }

    /// Drops the undo record of group `group` (inside the caller's
    /// transaction).
    pub(crate) fn drop_undo_record(&self, group: i64) -> Result<()> {
        self.execute("DELETE FROM undo_records WHERE group_id = ?", [group])
            .map(|_| ())
    }
}

#[cfg(test)]
mod tests {
    use std::sync::Arc;

    use arrow::array::{ArrayRef, Int64Array};

    use super::*;
    use crate::store::Store;

    fn ids(ids: &[i64]) -> RecordBatch {
        RecordBatch::try_from_iter([("id", Arc::new(Int64Array::from(ids.to_vec())) as ArrayRef)]).expect("batch")
    }

    /// The rows kept for group 7, in the order they were kept.
    fn kept(db: &DuckDb) -> Vec<i64> {
        let mut all = Vec::new();
        for batch in db
            .query_arrow("SELECT data FROM undo_records WHERE group_id = 7 ORDER BY seq", &[])
            .expect("records")
        {
            let data = batch.column(0).as_any().downcast_ref::<arrow::array::BinaryArray>();
            for value in data.expect("blob").iter().flatten() {
                for b in StreamReader::try_new(value, None).expect("stream") {
                    let b = b.expect("batch");
                    let column = b.column(0).as_any().downcast_ref::<Int64Array>().expect("ids");
                    all.extend(column.values().iter().copied());
                }
            }
        }
        all
    }

    #[test]
    fn what_the_work_passes_is_kept_in_order_before_it_returns() {
        let dir = tempfile::tempdir().expect("tempdir");
        let store = Store::open(&dir.path().join("k.duckdb")).expect("store");
        let recorder = Recorder::new(store.duckdb(), 7).expect("recorder");
        let returned = recorder
            .in_background("restore", |keep| {
                for k in 0..5 {
                    keep(vec![ids(&[3 * k, 3 * k + 1]), ids(&[3 * k + 2])])?;
                }
                Ok("done")
            })
            .expect("kept");
        assert_eq!(returned, "done");
        assert_eq!(kept(store.duckdb()), (0..15).collect::<Vec<i64>>());
    }

    #[test]
    fn a_failed_write_is_the_error_and_a_failed_work_is_its_own() {
        let dir = tempfile::tempdir().expect("tempdir");
        let store = Store::open(&dir.path().join("k.duckdb")).expect("store");
        let db = store.duckdb();
        let recorder = Recorder::new(db, 7).expect("recorder");
        // A work that hands over one batch, then fails.
        let failing = |keep: &mut dyn FnMut(Vec<RecordBatch>) -> Result<()>| -> Result<()> {
            keep(vec![ids(&[1])])?;
            Err(db.error_message("the update failed"))
        };
        // The work fails: its error, and what was passed before is kept.
        let e = recorder.in_background("restore", failing).expect_err("work failed");
        assert!(e.to_string().contains("the update failed"), "{e}");
        assert_eq!(kept(db), vec![1]);
        // The writer fails (its table is gone): the writer's error, not
        // the work's failed hand-over.
        db.execute_batch("DROP TABLE undo_records").expect("drop");
        let e = recorder
            .in_background("restore", |keep| -> Result<()> {
                for k in 0..10 {
                    keep(vec![ids(&[k])])?;
                }
                Ok(())
            })
            .expect_err("writer failed");
        assert!(e.to_string().contains("undo_records"), "{e}");
        // Both fail, the work on its own account: the work's error.
        let e = recorder.in_background("restore", failing).expect_err("both failed");
        assert!(e.to_string().contains("the update failed"), "{e}");
    }
}
