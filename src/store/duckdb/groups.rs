//! Import groups in DuckDB: the `import_groups` table's rows, written as a
//! group runs and ends, and read for `kontakt imports`.

use super::{DuckDb, INTERRUPTED};
use crate::error::Result;
use crate::store::groups::{Group, GroupCounts, RunningGroup};

impl DuckDb {
    /// The id and status of the group named `name`.
    pub(crate) fn group_status(&self, name: &str) -> Result<Option<(i64, String)>> {
        self.query_optional("SELECT id, status FROM import_groups WHERE name = ?", [name], |r| {
            Ok((r.get::<_, i64>(0)?, r.get::<_, String>(1)?))
        })
    }

    /// Removes a group's row (a failed or cancelled group, whose contacts
    /// were rolled back, whose name a new import takes).
    pub(crate) fn forget_group(&self, id: i64) -> Result<()> {
        self.execute("DELETE FROM import_groups WHERE id = ?", [id]).map(|_| ())
    }

    /// Inserts a `running` group; returns its id.
    pub(crate) fn insert_running_group(&self, g: &RunningGroup<'_>) -> Result<i64> {
        let acknowledged = (!g.info.acknowledged.is_empty()).then(|| g.info.acknowledged.join(","));
        let settings = g.info.settings.as_ref().map(|s| s.to_string());
        self.conn
            .query_row(
                "INSERT INTO import_groups (name, source, status, started_at, pid, host, description, settings, \
                 acknowledged) VALUES (?, ?, 'running', make_timestamp(?), ?, ?, ?, ?, ?) RETURNING id",
                duckdb::params![
                    g.name,
                    g.source,
                    g.started_at,
                    g.pid,
                    g.host,
                    g.info.description,
                    settings,
                    acknowledged
                ],
                |r| r.get(0),
            )
            .map_err(|e| self.error(&e))
    }

    /// Records a group as a merge's.
    pub(crate) fn mark_merge_group(&self, id: i64) -> Result<()> {
        self.execute("UPDATE import_groups SET kind = 'merge' WHERE id = ?", [id])
            .map(|_| ())
    }

    /// Records a group as `completed`, with its counts and summary.
    pub(crate) fn complete_group(&self, id: i64, counts: &GroupCounts, summary: &str, finished_at: i64) -> Result<()> {
        self.execute(
            "UPDATE import_groups SET status = 'completed', finished_at = make_timestamp(?), rows_read = ?, \
             rows_failed = ?, imported = ?, updated = ?, skipped = ?, contacts_updated = ?, summary = ? WHERE id = ?",
            duckdb::params![
                finished_at,
                counts.rows_read as i64,
                counts.rows_failed as i64,
                counts.imported as i64,
                counts.updated as i64,
                counts.skipped as i64,
                counts.contacts_updated as i64,
                summary,
                id
            ],
        )
        .map(|_| ())
    }

    /// Records a group as ended with `status` (failed or cancelled).
    pub(crate) fn end_group(&self, id: i64, status: &str, reason: &str, finished_at: i64) -> Result<()> {
        self.execute(
            "UPDATE import_groups SET status = ?, reason = ?, finished_at = make_timestamp(?) WHERE id = ?",
            duckdb::params![status, reason, finished_at, id],
        )?;
        // The undo records it wrote as it went (see `undo::Recorder`).
        self.drop_undo_record(id)
    }

    /// The groups' query. Timestamps are stored in UTC; shown as ISO 8601
    /// with `Z`. A store opened read-only has no writer (DuckDB's lock), so
    /// a group it shows `running` was interrupted: it is shown as the next
    /// write will record it (`DuckDb::open`).
    fn select_groups(&self) -> String {
        // A store of schema 5 or 6, read as it is, lacks the newer columns.
        let columns = self.columns("import_groups").unwrap_or_default();
        let has = |name: &str| columns.iter().any(|c| c == name);
        let described = if has("description") {
            "g.description, g.acknowledged, g.settings"
        } else {
            "NULL, NULL, NULL"
        };
        let undone = if has("undone_at") {
            "strftime(g.undone_at, '%Y-%m-%dT%H:%M:%SZ')"
        } else {
            "NULL"
        };
        let (status, reason) = if self.is_read_only() {
            let has_pid = has("pid");
            let interrupted = if has_pid {
                INTERRUPTED
            } else {
                "'interrupted: its process ended before it finished'"
            };
            (
                "CASE WHEN g.status = 'running' THEN 'failed' ELSE g.status END".to_string(),
                format!("CASE WHEN g.status = 'running' THEN {interrupted} ELSE g.reason END"),
            )
        } else {
            ("g.status".to_string(), "g.reason".to_string())
        };
        format!(
            "SELECT g.id, g.name, g.source, {status}, {reason}, \
             strftime(g.started_at, '%Y-%m-%dT%H:%M:%SZ'), strftime(g.finished_at, '%Y-%m-%dT%H:%M:%SZ'), \
             g.rows_read, g.rows_failed, g.imported, g.updated, g.skipped, g.contacts_updated, \
             (SELECT count(*) FROM contacts c WHERE c.import_id = g.id), coalesce(g.kind, 'import'), \
             {described}, {undone} FROM import_groups g"
        )
    }

    /// All groups, oldest first.
    pub(crate) fn groups(&self) -> Result<Vec<Group>> {
        let mut stmt = self
            .conn
            .prepare(&format!("{} ORDER BY g.id", self.select_groups()))
            .map_err(|e| self.error(&e))?;
        let groups = stmt
            .query_map([], group_of)
            .map_err(|e| self.error(&e))?
            .collect::<std::result::Result<Vec<_>, _>>()
            .map_err(|e| self.error(&e))?;
        Ok(groups)
    }

    /// The group of id `id`.
    pub(crate) fn group(&self, id: i64) -> Result<Option<Group>> {
        self.query_optional(&format!("{} WHERE g.id = ?", self.select_groups()), [id], group_of)
    }

    /// The group named `name`.
    pub(crate) fn group_named(&self, name: &str) -> Result<Option<Group>> {
        self.query_optional(&format!("{} WHERE g.name = ?", self.select_groups()), [name], group_of)
    }

    /// The id of a group other than `except` named `name`.
    pub(crate) fn group_name_taken(&self, name: &str, except: i64) -> Result<Option<i64>> {
        self.query_optional(
            "SELECT id FROM import_groups WHERE name = ? AND id <> ?",
            duckdb::params![name, except],
            |r| r.get(0),
        )
    }

    /// Renames group `id`.
    pub(crate) fn rename_group(&self, id: i64, name: &str) -> Result<()> {
        self.execute(
            "UPDATE import_groups SET name = ? WHERE id = ?",
            duckdb::params![name, id],
        )
        .map(|_| ())
    }

    /// Deletes group `id`, the contacts it created and the list
    /// memberships it added or of those contacts, in one transaction;
    /// returns the number of contacts removed.
    pub(crate) fn delete_group(&self, id: i64) -> Result<usize> {
        self.execute_batch("BEGIN TRANSACTION")?;
        let deleted = self
            .delete_import_memberships(id)
            .and_then(|()| self.execute("DELETE FROM contacts WHERE import_id = ?", [id]))
            .and_then(|n| {
                self.drop_undo_record(id)?;
                self.execute("DELETE FROM import_groups WHERE id = ?", [id])?;
                self.execute_batch("COMMIT")?;
                Ok(n)
            });
        if deleted.is_err() {
            let _ = self.execute_batch("ROLLBACK");
        }
        deleted
    }
}

fn group_of(r: &duckdb::Row<'_>) -> duckdb::Result<Group> {
    Ok(Group {
        id: r.get(0)?,
        name: r.get(1)?,
        source: r.get(2)?,
        status: r.get(3)?,
        reason: r.get(4)?,
        started_at: r.get(5)?,
        finished_at: r.get(6)?,
        rows_read: r.get(7)?,
        rows_failed: r.get(8)?,
        imported: r.get(9)?,
        updated: r.get(10)?,
        skipped: r.get(11)?,
        contacts_updated: r.get(12)?,
        contacts: r.get(13)?,
        kind: r.get(14)?,
        description: r.get(15)?,
        acknowledged: r
            .get::<_, Option<String>>(16)?
            .map(|s| s.split(',').map(str::to_string).collect())
            .unwrap_or_default(),
        settings: r
            .get::<_, Option<String>>(17)?
            .and_then(|s| serde_json::from_str(&s).ok()),
        undone_at: r.get(18)?,
    })
}
