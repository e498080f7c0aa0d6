//! Import groups (SPEC, Deleting an import): list, show, rename, delete.
//!
//! A group is named on the command line by its id or its name: a number is
//! tried as an id first, then as a name (so a group named `2024` is still
//! reachable when no group has id 2024).

use serde::Serialize;

use crate::error::{Error, Result};
use crate::store::Store;

/// One import group as recorded in the store.
#[derive(Debug, Clone, Serialize)]
pub struct Group {
    pub id: i64,
    pub name: String,
    /// `import`, or `merge` for a `kontakt merge`.
    pub kind: String,
    pub source: Option<String>,
    pub status: String,
    pub reason: Option<String>,
    pub started_at: String,
    pub finished_at: Option<String>,
    pub rows_read: i64,
    pub rows_failed: i64,
    pub imported: i64,
    pub updated: i64,
    pub skipped: i64,
    pub contacts_updated: i64,
    /// Contacts in the store that this import created (now).
    pub contacts: i64,
}

/// The groups' query. Timestamps are stored in UTC; shown as ISO 8601 with
/// `Z`. A store opened read-only has no writer (DuckDB's lock), so a group
/// it shows `running` was interrupted: it is shown as the next write will
/// record it (`Store::open`).
fn select(store: &Store) -> String {
    let (status, reason) = if store.is_read_only() {
        // A store of schema 5, read as it is, has no pid and host.
        let has_pid = store
            .columns("import_groups")
            .is_ok_and(|c| c.iter().any(|c| c == "pid"));
        let interrupted = if has_pid {
            crate::store::INTERRUPTED
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
         (SELECT count(*) FROM contacts c WHERE c.import_id = g.id), coalesce(g.kind, 'import') \
         FROM import_groups g"
    )
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
    })
}

/// All groups, oldest first.
pub fn list(store: &Store) -> Result<Vec<Group>> {
    let conn = store.connection();
    let mut stmt = conn
        .prepare(&format!("{} ORDER BY g.id", select(store)))
        .map_err(|e| store.error(&e))?;
    let groups = stmt
        .query_map([], group_of)
        .map_err(|e| store.error(&e))?
        .collect::<std::result::Result<Vec<_>, _>>()
        .map_err(|e| store.error(&e))?;
    Ok(groups)
}

/// The group named by `id_or_name`; a usage error (exit 2) when none is.
pub fn find(store: &Store, id_or_name: &str) -> Result<Group> {
    let select = select(store);
    let query = |sql: &str, param: &dyn duckdb::ToSql| store.query_optional(sql, [param], group_of);
    if let Ok(id) = id_or_name.parse::<i64>()
        && let Some(group) = query(&format!("{select} WHERE g.id = ?"), &id)?
    {
        return Ok(group);
    }
    query(&format!("{select} WHERE g.name = ?"), &id_or_name)?.ok_or_else(|| {
        Error::usage(format!(
            "no import with id or name {id_or_name:?} (see `kontakt imports list`)"
        ))
    })
}

/// Renames a group; the new name must not be taken by another group.
pub fn rename(store: &Store, id_or_name: &str, new_name: &str) -> Result<Group> {
    if new_name.trim().is_empty() {
        return Err(Error::usage("an import name cannot be empty"));
    }
    let group = find(store, id_or_name)?;
    let taken: Option<i64> = store.query_optional(
        "SELECT id FROM import_groups WHERE name = ? AND id <> ?",
        duckdb::params![new_name, group.id],
        |r| r.get(0),
    )?;
    if let Some(id) = taken {
        return Err(Error::usage(format!(
            "an import named {new_name:?} already exists (id {id}); choose another name"
        )));
    }
    store.execute(
        "UPDATE import_groups SET name = ? WHERE id = ?",
        duckdb::params![new_name, group.id],
    )?;
    find(store, &group.id.to_string())
}

/// Deletes a group and every contact it created (not those it only
/// updated), in one transaction. Returns the group as it was and the number
/// of contacts removed.
pub fn delete(store: &Store, id_or_name: &str) -> Result<(Group, usize)> {
    let group = find(store, id_or_name)?;
    if group.kind == "merge" {
        return Err(Error::usage(format!(
            "{:?} is a merge: the contacts it merged are kept in merged_contacts, and it cannot be deleted",
            group.name
        )));
    }
    store.execute_batch("BEGIN TRANSACTION")?;
    let deleted = store
        .execute("DELETE FROM contacts WHERE import_id = ?", [group.id])
        .and_then(|n| {
            store.execute("DELETE FROM import_groups WHERE id = ?", [group.id])?;
            store.execute_batch("COMMIT")?;
            Ok(n)
        });
    match deleted {
        Ok(n) => Ok((group, n)),
        Err(e) => {
            let _ = store.execute_batch("ROLLBACK");
            Err(e)
        }
    }
}
