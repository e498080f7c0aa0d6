//! What `kontakt imports undo` needs on DuckDB (see [`crate::store::undo`]):
//! per import or merge that changed stored contacts, a table
//! `kontakt_undo_<group>` with each changed contact's earlier values of
//! the columns it changed (`reinsert` false), and, for a merge, the
//! contacts it merged away, whole (`reinsert` true).

use super::DuckDb;
use crate::error::Result;
use crate::store::undo::UndoScope;

/// The undo record's table of group `group`.
pub(super) fn record_table(group: i64) -> String {
    format!("kontakt_undo_{group}")
}

/// Test and benchmark hook: with `KONTAKT_TEST_NO_UNDO=1` an import or
/// merge keeps no undo record (to measure what keeping one costs).
pub(super) fn off() -> bool {
    std::env::var("KONTAKT_TEST_NO_UNDO").as_deref() == Ok("1")
}

/// How many contacts a scope lists by id in its error.
const FIRST_IDS: usize = 5;

impl DuckDb {
    fn has_record(&self, group: i64) -> Result<bool> {
        self.has_table(&record_table(group))
    }

    fn has_table(&self, table: &str) -> Result<bool> {
        Ok(self.query_i64(
            "SELECT count(*) FROM duckdb_tables() WHERE NOT temporary AND table_name = ?",
            [table],
        )? > 0)
    }

    /// Keeps what the undo of merge `merge` needs, before its members are
    /// deleted: the survivors as they were (`before`), and the members
    /// merged away (`pairs`: contact_id, survivor_id).
    pub(super) fn record_merge(&self, merge: i64, before: &str, pairs: &str) -> Result<()> {
        if off() {
            return Ok(());
        }
        let table = record_table(merge);
        self.execute_batch(&format!(
            "CREATE TABLE {table} AS SELECT *, false AS reinsert FROM {before}; \
             INSERT INTO {table} BY NAME SELECT c.*, true AS reinsert FROM contacts AS c \
             JOIN {pairs} AS p ON p.contact_id = c.id WHERE p.contact_id <> p.survivor_id"
        ))
    }

    /// Moves the list memberships of the contacts a merge merges away to
    /// their survivors (`pairs`: contact_id, survivor_id): a list the
    /// survivor is not on gets the survivor with the earliest of the merged
    /// memberships (its status, agent, callback and time). What was moved
    /// and what was added is kept for the undo in
    /// `kontakt_undo_<merge>_members` (`added` false: a membership as it
    /// was; true: one the merge added).
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
        let record = format!("{}_members", record_table(merge));
        let keep = !off();
        if keep {
            self.execute_batch(&format!(
                "CREATE TABLE {record} AS SELECT * EXCLUDE (survivor_id), false AS added FROM ({merged}); \
                 INSERT INTO {record} SELECT *, true FROM ({added})"
            ))?;
        }
        self.execute_batch(&format!(
            "CREATE OR REPLACE TEMP TABLE kontakt_merge_moved AS {added}; \
             DELETE FROM list_members WHERE contact_id IN \
               (SELECT contact_id FROM {pairs} WHERE contact_id <> survivor_id); \
             INSERT INTO list_members SELECT * FROM kontakt_merge_moved; \
             DROP TABLE kontakt_merge_moved"
        ))
    }

    /// Gives back the memberships merge `merge` moved (see
    /// [`Self::move_memberships`]).
    fn restore_memberships(&self, merge: i64) -> Result<()> {
        let record = format!("{}_members", record_table(merge));
        if !self.has_table(&record)? {
            return Ok(());
        }
        self.execute_batch(&format!(
            "DELETE FROM list_members AS m USING (SELECT list_id, contact_id FROM {record} WHERE added) AS a \
               WHERE m.list_id = a.list_id AND m.contact_id = a.contact_id; \
             INSERT INTO list_members SELECT * EXCLUDE (added) FROM {record} WHERE NOT added; \
             DROP TABLE {record}"
        ))
    }

    /// What undoing group `group` would do (see [`UndoScope`]). A contact
    /// changed later has an `updated_at` after the group finished (every
    /// write sets it; an undo puts back the one it had).
    pub(crate) fn undo_scope(&self, group: i64) -> Result<UndoScope> {
        let recorded = self.has_record(group)?;
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
        // Created contacts changed since, then restored ones changed or
        // deleted since.
        let mut changed = format!("SELECT id FROM contacts WHERE import_id = {group} AND updated_at > {finished}");
        if recorded {
            let table = record_table(group);
            scope.restored = self.query_i64(&format!("SELECT count(*) FROM {table} WHERE NOT reinsert"), [])? as u64;
            scope.reinserted = self.query_i64(&format!("SELECT count(*) FROM {table} WHERE reinsert"), [])? as u64;
            changed = format!(
                "{changed} UNION ALL SELECT u.id FROM {table} AS u LEFT JOIN contacts AS c ON c.id = u.id \
                 WHERE NOT u.reinsert AND (c.id IS NULL OR c.updated_at > {finished}) \
                 UNION ALL SELECT u.id FROM {table} AS u JOIN contacts AS c ON c.id = u.id WHERE u.reinsert"
            );
        }
        scope.changed_later = self.query_i64(&format!("SELECT count(*) FROM ({changed})"), [])? as u64;
        if scope.changed_later > 0 {
            let conn = self.connection();
            let mut statement = conn
                .prepare(&format!("SELECT id FROM ({changed}) ORDER BY id LIMIT {FIRST_IDS}"))
                .map_err(|e| self.error(&e))?;
            scope.first_changed = statement
                .query_map([], |r| r.get(0))
                .and_then(|rows| rows.collect::<std::result::Result<Vec<i64>, _>>())
                .map_err(|e| self.error(&e))?;
        }
        Ok(scope)
    }

    /// Undoes group `group` at time `now`, inside the caller's
    /// transaction: its list memberships and the contacts it created go,
    /// the contacts it changed get their recorded values back (those
    /// deleted since stay deleted), the contacts a merge merged away come
    /// back, and the group is marked `undone`.
    pub(crate) fn undo_group(&self, group: i64, now: i64) -> Result<()> {
        self.execute(
            "DELETE FROM list_members WHERE import_id = ? \
             OR contact_id IN (SELECT id FROM contacts WHERE import_id = ?)",
            [group, group],
        )?;
        self.execute("DELETE FROM contacts WHERE import_id = ?", [group])?;
        if self.has_record(group)? {
            let table = record_table(group);
            let columns: Vec<String> = self
                .columns(&table)?
                .into_iter()
                .filter(|c| c != "id" && c != "reinsert")
                .map(|c| super::quote_ident(&c))
                .collect();
            let set: Vec<String> = columns.iter().map(|c| format!("{c} = u.{c}")).collect();
            self.execute_batch(&format!(
                "UPDATE contacts AS c SET {} FROM {table} AS u WHERE NOT u.reinsert AND c.id = u.id; \
                 INSERT INTO contacts BY NAME SELECT * EXCLUDE (reinsert) FROM {table} WHERE reinsert; \
                 DELETE FROM merged_contacts WHERE merge_id = {group}; \
                 DROP TABLE {table};",
                set.join(", ")
            ))?;
        }
        self.restore_memberships(group)?;
        self.execute(
            "UPDATE import_groups SET status = 'undone', undone_at = make_timestamp(?) WHERE id = ?",
            [now, group],
        )?;
        Ok(())
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

    /// Drops the undo record of group `group`, if it has one (inside the
    /// caller's transaction).
    pub(crate) fn drop_undo_record(&self, group: i64) -> Result<()> {
        let table = record_table(group);
        self.execute_batch(&format!(
            "DROP TABLE IF EXISTS {table}; DROP TABLE IF EXISTS {table}_members"
        ))
    }
}
