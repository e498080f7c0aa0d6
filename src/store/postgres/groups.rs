//! Import groups in PostgreSQL: the `import_groups` table's rows.

use super::Postgres;
use crate::error::Result;
use crate::store::duckdb::INTERRUPTED;
use crate::store::groups::{Group, GroupCounts, RunningGroup};

/// A timestamp of microseconds since the epoch (UTC), as SQL over the
/// parameter `$n` (a `bigint`).
pub(super) fn timestamp(n: usize) -> String {
    format!("(timestamp '1970-01-01' + ${n}::bigint * interval '1 microsecond')")
}

/// A timestamp column as SPEC shows it: ISO 8601, UTC, `Z`.
pub(super) fn iso(column: &str) -> String {
    format!("to_char({column}, 'YYYY-MM-DD\"T\"HH24:MI:SS\"Z\"')")
}

impl Postgres {
    pub(crate) fn group_status(&self, name: &str) -> Result<Option<(i64, String)>> {
        Ok(self
            .query_opt("SELECT id, status FROM import_groups WHERE name = $1", &[&name])?
            .map(|r| (r.get(0), r.get(1))))
    }

    pub(crate) fn forget_group(&self, id: i64) -> Result<()> {
        self.execute("DELETE FROM import_groups WHERE id = $1", &[&id])
            .map(|_| ())
    }

    pub(crate) fn insert_running_group(&self, g: &RunningGroup<'_>) -> Result<i64> {
        let acknowledged = (!g.info.acknowledged.is_empty()).then(|| g.info.acknowledged.join(","));
        let settings = g.info.settings.as_ref().map(|s| s.to_string());
        let pid = i64::from(g.pid);
        Ok(self
            .query_opt(
                &format!(
                    "INSERT INTO import_groups (name, source, status, started_at, pid, host, description, settings, \
                     acknowledged) VALUES ($1, $2, 'running', {}, $4, $5, $6, $7, $8) RETURNING id",
                    timestamp(3)
                ),
                &[
                    &g.name,
                    &g.source,
                    &g.started_at,
                    &pid,
                    &g.host,
                    &g.info.description,
                    &settings,
                    &acknowledged,
                ],
            )?
            .map(|r| r.get(0))
            .unwrap_or_default())
    }

    pub(crate) fn mark_merge_group(&self, id: i64) -> Result<()> {
        self.execute("UPDATE import_groups SET kind = 'merge' WHERE id = $1", &[&id])
            .map(|_| ())
    }

    pub(crate) fn complete_group(&self, id: i64, counts: &GroupCounts, summary: &str, finished_at: i64) -> Result<()> {
        self.execute(
            &format!(
                "UPDATE import_groups SET status = 'completed', finished_at = {}, rows_read = $2, rows_failed = $3, \
                 imported = $4, updated = $5, skipped = $6, contacts_updated = $7, summary = $8 WHERE id = $9",
                timestamp(1)
            ),
            &[
                &finished_at,
                &(counts.rows_read as i64),
                &(counts.rows_failed as i64),
                &(counts.imported as i64),
                &(counts.updated as i64),
                &(counts.skipped as i64),
                &(counts.contacts_updated as i64),
                &summary,
                &id,
            ],
        )
        .map(|_| ())
    }

    pub(crate) fn end_group(&self, id: i64, status: &str, reason: &str, finished_at: i64) -> Result<()> {
        self.execute(
            &format!(
                "UPDATE import_groups SET status = $1, reason = $2, finished_at = {} WHERE id = $4",
                timestamp(3)
            ),
            &[&status, &reason, &finished_at, &id],
        )?;
        self.execute("DELETE FROM undo_records WHERE group_id = $1", &[&id])?;
        self.drop_empty_fields_of(&[id])
    }

    /// Drops the custom fields groups `ids` (which did not complete)
    /// created that hold no value: an import commits its new fields'
    /// columns before its transaction (readers never wait for it), so a
    /// rollback leaves them, empty. Each drop is committed on its own.
    pub(super) fn drop_empty_fields_of(&self, ids: &[i64]) -> Result<()> {
        let created: Vec<String> = self
            .query(
                "SELECT DISTINCT f.name FROM custom_fields AS f JOIN import_groups AS g \
                 ON f.created_at >= g.started_at WHERE g.id = ANY($1) ORDER BY 1",
                &[&ids],
            )?
            .iter()
            .map(|r| r.get(0))
            .collect();
        let columns = self.columns("contacts")?;
        for name in created {
            let column = super::quote_ident(&format!("custom.{name}"));
            if columns.iter().any(|c| c.strip_prefix("custom.") == Some(name.as_str()))
                && self.query_one_i64(
                    &format!("SELECT count(*) FROM (SELECT 1 FROM contacts WHERE {column} IS NOT NULL LIMIT 1) AS v"),
                    &[],
                )? > 0
            {
                continue;
            }
            self.batch("BEGIN")?;
            let dropped = self
                .batch(&format!("ALTER TABLE contacts DROP COLUMN IF EXISTS {column}"))
                .and_then(|()| self.execute("DELETE FROM custom_fields WHERE name = $1", &[&name]))
                .and_then(|_| self.batch("COMMIT"));
            if dropped.is_err() {
                let _ = self.batch("ROLLBACK");
            }
            dropped?;
        }
        Ok(())
    }

    /// The groups' query. A read-only command (which takes no lock) shows
    /// a group still `running` while no process holds the store's writer
    /// lock as the next writer will record it: failed, interrupted.
    fn select_groups(&self) -> Result<String> {
        let stale = self.read_only && self.no_writer()?;
        let (status, reason) = if stale {
            (
                "CASE WHEN g.status = 'running' THEN 'failed' ELSE g.status END".to_string(),
                format!("CASE WHEN g.status = 'running' THEN {INTERRUPTED} ELSE g.reason END"),
            )
        } else {
            ("g.status".to_string(), "g.reason".to_string())
        };
        Ok(format!(
            "SELECT g.id, g.name, g.source, {status}, {reason}, {}, {}, \
             g.rows_read, g.rows_failed, g.imported, g.updated, g.skipped, g.contacts_updated, \
             (SELECT count(*) FROM contacts c WHERE c.import_id = g.id), coalesce(g.kind, 'import'), \
             g.description, g.acknowledged, g.settings, {} FROM import_groups g",
            iso("g.started_at"),
            iso("g.finished_at"),
            iso("g.undone_at")
        ))
    }

    pub(crate) fn groups(&self) -> Result<Vec<Group>> {
        Ok(self
            .query(&format!("{} ORDER BY g.id", self.select_groups()?), &[])?
            .iter()
            .map(group_of)
            .collect())
    }

    pub(crate) fn group(&self, id: i64) -> Result<Option<Group>> {
        Ok(self
            .query_opt(&format!("{} WHERE g.id = $1", self.select_groups()?), &[&id])?
            .as_ref()
            .map(group_of))
    }

    pub(crate) fn group_named(&self, name: &str) -> Result<Option<Group>> {
        Ok(self
            .query_opt(&format!("{} WHERE g.name = $1", self.select_groups()?), &[&name])?
            .as_ref()
            .map(group_of))
    }

    pub(crate) fn group_name_taken(&self, name: &str, except: i64) -> Result<Option<i64>> {
        Ok(self
            .query_opt(
                "SELECT id FROM import_groups WHERE name = $1 AND id <> $2",
                &[&name, &except],
            )?
            .map(|r| r.get(0)))
    }

    pub(crate) fn rename_group(&self, id: i64, name: &str) -> Result<()> {
        self.execute("UPDATE import_groups SET name = $1 WHERE id = $2", &[&name, &id])
            .map(|_| ())
    }

    pub(crate) fn delete_group(&self, id: i64) -> Result<usize> {
        self.begin()?;
        let deleted = (|| {
            self.execute(
                "DELETE FROM list_members WHERE import_id = $1 \
                 OR contact_id IN (SELECT id FROM contacts WHERE import_id = $1)",
                &[&id],
            )?;
            let n = self.execute("DELETE FROM contacts WHERE import_id = $1", &[&id])?;
            self.execute("DELETE FROM undo_records WHERE group_id = $1", &[&id])?;
            self.execute("DELETE FROM import_groups WHERE id = $1", &[&id])?;
            self.commit()?;
            Ok(n as usize)
        })();
        if deleted.is_err() {
            let _ = self.rollback();
        }
        deleted
    }
}

impl Postgres {
    /// When the store's last undo ran (microseconds), if one did.
    pub(crate) fn last_undo(&self) -> Result<Option<i64>> {
        Ok(self
            .query_opt(
                "SELECT (extract(epoch FROM max(undone_at)) * 1000000)::bigint FROM import_groups \
                 HAVING max(undone_at) IS NOT NULL",
                &[],
            )?
            .map(|r| r.get(0)))
    }
}

fn group_of(r: &postgres::Row) -> Group {
    Group {
        id: r.get(0),
        name: r.get(1),
        source: r.get(2),
        status: r.get(3),
        reason: r.get(4),
        started_at: r.get(5),
        finished_at: r.get(6),
        rows_read: r.get(7),
        rows_failed: r.get(8),
        imported: r.get(9),
        updated: r.get(10),
        skipped: r.get(11),
        contacts_updated: r.get(12),
        contacts: r.get(13),
        kind: r.get(14),
        description: r.get(15),
        acknowledged: r
            .get::<_, Option<String>>(16)
            .map(|s| s.split(',').map(str::to_string).collect())
            .unwrap_or_default(),
        settings: r
            .get::<_, Option<String>>(17)
            .and_then(|s| serde_json::from_str(&s).ok()),
        undone_at: r.get(18),
    }
}
