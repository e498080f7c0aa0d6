//! What `kontakt imports undo` needs on PostgreSQL (see
//! [`crate::store::undo`]).
//!
//! An import or merge that changes stored contacts writes, in its own
//! transaction, rows of `undo_records(group_id, kind, contact_id, …)`:
//! - `restore`: a contact as it was before the group, whole, in `old` (of
//!   the contacts table's own row type), with the names of the columns the
//!   group changed in `changed` and the tags it added in `tags_added`;
//! - `reinsert`: a contact a merge merged away, whole, in `old`;
//! - `members`: a list membership a merge moved, whole, as `jsonb` in
//!   `data`, with `added` (false: as it was; true: one the merge added).
//!
//! A row value of `contacts` follows the table: a custom column added
//! later reads as null, one dropped is gone. Building it costs a copy of
//! the row: for the 267,854 contacts of the 1M x 1M upsert, 2.4 s, 3.1 to
//! 4.6 s with the changed columns' names, against 6.4 s for a `jsonb` of
//! the changed columns (by hand, the same staged rows).
//!
//! The rows are built and read back by the server, so the earlier values
//! never pass through kontakt. The rules are the DuckDB store's
//! (`store/duckdb/undo.rs`): a forced undo takes away only the tags the
//! group added and never takes back an opt-out given since.

use super::Postgres;
use super::groups::timestamp;
use crate::error::Result;
use crate::store::sql::{literal, quote_ident};
use crate::store::undo::{CHANGED, FIRST_IDS, UndoScope};

/// What a `restore` record keeps of a contact a group changes (`before`:
/// the contact as it was; `values`: each column the group sets, with its
/// new value as SQL): the names of the columns whose value changes, and
/// the tags the group adds (null when it sets no tags).
fn changed_columns(before: &str, values: &[(String, String)]) -> (String, String) {
    let mut changed = Vec::new();
    let mut tags_added = "NULL::text[]".to_string();
    for (name, value) in values {
        let same = format!("{before}.{} IS NOT DISTINCT FROM ({value})", quote_ident(name));
        changed.push(format!("CASE WHEN {same} THEN NULL ELSE {} END", literal(name)));
        if name == "tags" {
            tags_added = format!(
                "CASE WHEN {same} THEN NULL ELSE ARRAY(SELECT x FROM unnest({value}) AS x WHERE x <> ALL({before}.tags)) END"
            );
        }
    }
    (
        format!("array_remove(ARRAY[{}]::text[], NULL)", changed.join(", ")),
        tags_added,
    )
}

impl Postgres {
    /// Keeps, for the undo of group `group`, the contacts `rows` selects
    /// as they are before the change (a `FROM … WHERE` over `before`, of
    /// which `row` is the whole row as a `contacts` value) and which of
    /// their columns `values` change.
    pub(super) fn record_restore(
        &self,
        group: i64,
        (before, row): (&str, &str),
        rows: &str,
        values: &[(String, String)],
    ) -> Result<()> {
        if crate::store::undo::off() {
            return Ok(());
        }
        let (changed, tags_added) = changed_columns(before, values);
        self.execute(
            &format!(
                "INSERT INTO undo_records (group_id, kind, contact_id, old, changed, tags_added) \
                 SELECT $1::bigint, 'restore', {before}.id, {row}, {changed}, {tags_added} {rows}"
            ),
            &[&group],
        )
        .map(|_| ())
    }

    /// Keeps, for the undo of merge `merge`, its survivors' earlier values
    /// (`before`: the survivors as they were) and the contacts it merges
    /// away (`pairs`: contact_id, survivor_id), whole; called once the
    /// survivors are merged and before the others are deleted.
    pub(super) fn record_merge(&self, merge: i64, before: &str, pairs: &str) -> Result<()> {
        if merge == 0 || crate::store::undo::off() {
            // A dry run keeps nothing.
            return Ok(());
        }
        let values: Vec<(String, String)> = self
            .columns("contacts")?
            .into_iter()
            .filter(|c| !["id", "updated_at"].contains(&c.as_str()))
            .map(|c| {
                let value = format!("c.{}", quote_ident(&c));
                (c, value)
            })
            .collect();
        // `before` was made from the contacts with the same columns.
        self.record_restore(
            merge,
            ("b", "ROW(b.*)::contacts"),
            &format!("FROM {before} AS b JOIN contacts AS c ON c.id = b.id"),
            &values,
        )?;
        self.execute(
            &format!(
                "INSERT INTO undo_records (group_id, kind, contact_id, old) \
                 SELECT $1::bigint, 'reinsert', c.id, c FROM contacts AS c \
                 JOIN {pairs} AS p ON p.contact_id = c.id WHERE p.contact_id <> p.survivor_id"
            ),
            &[&merge],
        )
        .map(|_| ())
    }

    /// Keeps, for the undo of merge `merge`, the memberships of the
    /// contacts it merges away (`pairs`) and those it adds to survivors
    /// (`moved`), before they are moved.
    pub(super) fn record_memberships(&self, merge: i64, pairs: &str, moved: &str) -> Result<()> {
        if merge == 0 || crate::store::undo::off() {
            return Ok(());
        }
        self.execute(
            &format!(
                "INSERT INTO undo_records (group_id, kind, contact_id, data) \
                 SELECT $1::bigint, 'members', m.contact_id, to_jsonb(m) || jsonb_build_object('added', false) \
                 FROM list_members AS m JOIN {pairs} AS p ON p.contact_id = m.contact_id \
                 WHERE p.contact_id <> p.survivor_id \
                 UNION ALL \
                 SELECT $1::bigint, 'members', m.contact_id, to_jsonb(m) || jsonb_build_object('added', true) FROM {moved} AS m"
            ),
            &[&merge],
        )
        .map(|_| ())
    }

    /// Whether group `group` kept records of `kind`.
    fn recorded(&self, group: i64, kind: &str) -> Result<bool> {
        Ok(self.query_one_i64(
            "SELECT count(*) FROM (SELECT 1 FROM undo_records WHERE group_id = $1 AND kind = $2 LIMIT 1) AS r",
            &[&group, &kind],
        )? > 0)
    }

    /// What undoing group `group` would do (see [`UndoScope`]). A contact
    /// changed later has an `updated_at` after the group finished.
    pub(crate) fn undo_scope(&self, group: i64) -> Result<UndoScope> {
        let finished = format!("(SELECT finished_at FROM import_groups WHERE id = {group})");
        let restore = self.recorded(group, "restore")?;
        let reinsert = self.recorded(group, "reinsert")?;
        let mut scope = UndoScope {
            recorded: restore || reinsert || self.recorded(group, "members")?,
            created: self.query_one_i64("SELECT count(*) FROM contacts WHERE import_id = $1", &[&group])? as u64,
            memberships: self.query_one_i64(
                "SELECT count(*) FROM list_members WHERE import_id = $1 \
                 OR contact_id IN (SELECT id FROM contacts WHERE import_id = $1)",
                &[&group],
            )? as u64,
            ..UndoScope::default()
        };
        scope.custom_fields = self.fields_going_with(group)?;
        let mut changed = format!("SELECT id FROM contacts WHERE import_id = {group} AND updated_at > {finished}");
        if restore {
            scope.restored = self.query_one_i64(
                "SELECT count(*) FROM undo_records AS u JOIN contacts AS c ON c.id = u.contact_id \
                 WHERE u.group_id = $1 AND u.kind = 'restore'",
                &[&group],
            )? as u64;
            changed = format!(
                "{changed} UNION ALL SELECT u.contact_id FROM undo_records AS u \
                 LEFT JOIN contacts AS c ON c.id = u.contact_id \
                 WHERE u.group_id = {group} AND u.kind = 'restore' AND (c.id IS NULL OR c.updated_at > {finished})"
            );
        }
        if reinsert {
            scope.reinserted = self.query_one_i64(
                "SELECT count(*) FROM undo_records WHERE group_id = $1 AND kind = 'reinsert'",
                &[&group],
            )? as u64;
            changed = format!(
                "{changed} UNION ALL SELECT u.contact_id FROM undo_records AS u JOIN contacts AS c ON c.id = u.contact_id \
                 WHERE u.group_id = {group} AND u.kind = 'reinsert'"
            );
        }
        self.batch(&format!(
            "DROP TABLE IF EXISTS {CHANGED}; CREATE TEMP TABLE {CHANGED} AS {changed}"
        ))?;
        scope.changed_later = self.query_one_i64(&format!("SELECT count(*) FROM {CHANGED}"), &[])? as u64;
        scope.first_changed = self
            .query(&format!("SELECT id FROM {CHANGED} ORDER BY id LIMIT {FIRST_IDS}"), &[])?
            .iter()
            .map(|r| r.get(0))
            .collect();
        Ok(scope)
    }

    /// Undoes group `group` at time `now`, inside the caller's transaction,
    /// as [`Self::undo_scope`] found it (see
    /// `DuckDb::undo_group`, whose steps these are).
    pub(crate) fn undo_group(&self, group: i64, now: i64, scope: &UndoScope) -> Result<()> {
        let dropped = &scope.custom_fields;
        for name in dropped {
            self.batch(&format!(
                "ALTER TABLE contacts DROP COLUMN {}",
                quote_ident(&format!("custom.{name}"))
            ))?;
            self.execute("DELETE FROM custom_fields WHERE name = $1", &[name])?;
        }
        self.execute(
            "DELETE FROM list_members WHERE import_id = $1 \
             OR contact_id IN (SELECT id FROM contacts WHERE import_id = $1)",
            &[&group],
        )?;
        self.execute("DELETE FROM contacts WHERE import_id = $1", &[&group])?;
        if self.recorded(group, "restore")? {
            let set: Vec<String> = self
                .columns("contacts")?
                .iter()
                .filter(|c| !["id", "updated_at"].contains(&c.as_str()))
                .map(|c| {
                    let q = quote_ident(c);
                    if c == "tags" {
                        return "tags = CASE WHEN 'tags' = ANY(u.changed) THEN ARRAY(SELECT x FROM unnest(c.tags) \
                                WITH ORDINALITY AS t(x, n) WHERE x <> ALL(u.tags_added) ORDER BY n) ELSE c.tags END"
                            .to_string();
                    }
                    let restored = format!(
                        "CASE WHEN {} = ANY(u.changed) THEN (u.old).{q} ELSE c.{q} END",
                        literal(c)
                    );
                    crate::store::undo::restore_assignment(c, &restored)
                })
                .collect();
            self.execute(
                &format!(
                    "UPDATE contacts AS c SET {}, updated_at = (u.old).updated_at \
                     FROM undo_records AS u WHERE u.group_id = $1 AND u.kind = 'restore' AND c.id = u.contact_id",
                    set.join(", ")
                ),
                &[&group],
            )?;
            // A contact changed since (a forced undo) now holds values
            // from before the group next to later ones: it is changed now.
            self.execute(
                &format!(
                    "UPDATE contacts SET updated_at = {} WHERE id IN (SELECT id FROM {CHANGED})",
                    timestamp(1)
                ),
                &[&now],
            )?;
        }
        if self.recorded(group, "reinsert")? {
            // The columns of today's contacts: a custom field made since is
            // empty, one the undo dropped is left out.
            self.execute(
                "INSERT INTO contacts SELECT (old).* FROM undo_records WHERE group_id = $1 AND kind = 'reinsert'",
                &[&group],
            )?;
            self.execute("DELETE FROM merged_contacts WHERE merge_id = $1", &[&group])?;
        }
        if self.recorded(group, "members")? {
            self.execute(
                "DELETE FROM list_members AS m USING undo_records AS u \
                 WHERE u.group_id = $1 AND u.kind = 'members' AND (u.data ->> 'added')::boolean \
                   AND m.list_id = (u.data ->> 'list_id')::bigint AND m.contact_id = u.contact_id",
                &[&group],
            )?;
            self.execute(
                "INSERT INTO list_members SELECT (jsonb_populate_record(NULL::list_members, data)).* \
                 FROM undo_records WHERE group_id = $1 AND kind = 'members' AND NOT (data ->> 'added')::boolean",
                &[&group],
            )?;
        }
        self.batch(&format!("DROP TABLE IF EXISTS {CHANGED}"))?;
        self.execute("DELETE FROM undo_records WHERE group_id = $1", &[&group])?;
        self.execute(
            &format!(
                "UPDATE import_groups SET status = 'undone', undone_at = {} WHERE id = $2",
                timestamp(1)
            ),
            &[&now, &group],
        )?;
        Ok(())
    }

    /// The custom fields group `group` created that hold a value only in
    /// contacts it created or changed: their columns go with its undo.
    fn fields_going_with(&self, group: i64) -> Result<Vec<String>> {
        let created: Vec<String> = self
            .query(
                "SELECT f.name FROM custom_fields AS f, import_groups AS g \
                 WHERE g.id = $1 AND f.created_at BETWEEN g.started_at AND g.finished_at ORDER BY f.name",
                &[&group],
            )?
            .iter()
            .map(|r| r.get(0))
            .collect();
        let columns = self.columns("contacts")?;
        let mut going = Vec::new();
        for name in created {
            let column = format!("custom.{name}");
            if !columns.contains(&column) {
                continue;
            }
            let elsewhere = self.query_one_i64(
                &format!(
                    "SELECT count(*) FROM (SELECT 1 FROM contacts AS c WHERE c.{} IS NOT NULL \
                     AND c.import_id IS DISTINCT FROM $1 AND NOT EXISTS (SELECT 1 FROM undo_records AS u \
                     WHERE u.group_id = $1 AND u.kind = 'restore' AND u.contact_id = c.id) LIMIT 1) AS e",
                    quote_ident(&column)
                ),
                &[&group],
            )?;
            if elsewhere == 0 {
                going.push(name);
            }
        }
        Ok(going)
    }
}
