//! What `kontakt imports undo` needs on PostgreSQL (see
//! [`crate::store::undo`]).
//!
//! An import or merge that changes stored contacts writes, in its own
//! transaction, rows of `undo_records(group_id, kind, contact_id, data)`,
//! `data` a `jsonb` object:
//! - `restore`: a contact as it was before the group, with only the
//!   columns the group changed (a key present with `null` was null), its
//!   `updated_at`, and under [`TAGS_ADDED`] the tags the group added;
//! - `reinsert`: a contact a merge merged away, whole;
//! - `members`: a list membership a merge moved, whole, with `added`
//!   (false: as it was; true: one the merge added).
//!
//! The rows are built and read back by the server (`jsonb_build_object`,
//! `jsonb_populate_record`), so the earlier values never pass through
//! kontakt. The rules are the DuckDB store's (`store/duckdb/undo.rs`): a
//! forced undo takes away only the tags the group added and never takes
//! back an opt-out given since.

use super::Postgres;
use super::groups::timestamp;
use crate::error::Result;
use crate::store::sql::{literal, quote_ident};
use crate::store::undo::{CHANGED, FIRST_IDS, UndoScope};

/// The key of a `restore` record's tags the group added.
const TAGS_ADDED: &str = "kontakt_tags_added";

/// Key and value pairs per `jsonb_build_object` (PostgreSQL takes at most
/// 100 arguments).
const PAIRS_PER_OBJECT: usize = 40;

/// The `jsonb` a `restore` record keeps of a contact a group changes
/// (`before`: the contact as it was; `values`: each column the group sets,
/// with its new value as SQL): `updated_at`, and each column whose value
/// changes, with its earlier value; for `tags`, the tags added.
pub(super) fn changed_object(before: &str, values: &[(String, String)]) -> String {
    let mut pairs = vec![format!("'updated_at', {before}.updated_at")];
    let mut unchanged = Vec::new();
    for (name, value) in values {
        let q = quote_ident(name);
        let same = format!("{before}.{q} IS NOT DISTINCT FROM ({value})");
        if name == "tags" {
            pairs.push(format!(
                "'{TAGS_ADDED}', ARRAY(SELECT x FROM unnest({value}) AS x WHERE x <> ALL({before}.tags))"
            ));
            unchanged.push(format!("CASE WHEN {same} THEN '{TAGS_ADDED}' END"));
        } else {
            pairs.push(format!("{}, {before}.{q}", literal(name)));
            unchanged.push(format!("CASE WHEN {same} THEN {} END", literal(name)));
        }
    }
    let objects: Vec<String> = pairs
        .chunks(PAIRS_PER_OBJECT)
        .map(|chunk| format!("jsonb_build_object({})", chunk.join(", ")))
        .collect();
    format!("(({}) - ARRAY[{}]::text[])", objects.join(" || "), unchanged.join(", "))
}

impl Postgres {
    /// Keeps, for the undo of group `group`, the earlier values of the
    /// contacts `rows` selects (a `FROM … WHERE` over `before`, the
    /// contacts as they are before the change) of the columns `values`
    /// change.
    pub(super) fn record_restore(
        &self,
        group: i64,
        before: &str,
        rows: &str,
        values: &[(String, String)],
    ) -> Result<()> {
        if crate::store::undo::off() {
            return Ok(());
        }
        self.execute(
            &format!(
                "INSERT INTO undo_records (group_id, kind, contact_id, data) \
                 SELECT $1::bigint, 'restore', {before}.id, {} {rows}",
                changed_object(before, values)
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
        self.record_restore(
            merge,
            "b",
            &format!("FROM {before} AS b JOIN contacts AS c ON c.id = b.id"),
            &values,
        )?;
        self.execute(
            &format!(
                "INSERT INTO undo_records (group_id, kind, contact_id, data) \
                 SELECT $1::bigint, 'reinsert', c.id, to_jsonb(c) FROM contacts AS c \
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
                        return format!(
                            "tags = CASE WHEN u.data ? '{TAGS_ADDED}' THEN ARRAY(SELECT x FROM unnest(c.tags) \
                             WITH ORDINALITY AS t(x, n) WHERE x <> ALL(ARRAY(SELECT jsonb_array_elements_text(\
                             u.data -> '{TAGS_ADDED}'))) ORDER BY n) ELSE c.tags END"
                        );
                    }
                    let restored = format!("CASE WHEN u.data ? {} THEN (u.r).{q} ELSE c.{q} END", literal(c));
                    crate::store::undo::restore_assignment(c, &restored)
                })
                .collect();
            self.execute(
                &format!(
                    "UPDATE contacts AS c SET {}, updated_at = (u.r).updated_at \
                     FROM (SELECT contact_id, data, jsonb_populate_record(NULL::contacts, data) AS r \
                           FROM undo_records WHERE group_id = $1 AND kind = 'restore') AS u \
                     WHERE c.id = u.contact_id",
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
                "INSERT INTO contacts SELECT (jsonb_populate_record(NULL::contacts, data)).* \
                 FROM undo_records WHERE group_id = $1 AND kind = 'reinsert'",
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
