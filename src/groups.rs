//! Import groups (SPEC, Deleting an import): list, show, rename, delete.
//!
//! A group is named on the command line by its id or its name. A number
//! that is one group's id and another's name (a file `2024.csv` gives its
//! import the name `2024`) is refused as ambiguous: a delete or undo of the
//! wrong import cannot be taken back. `#ID` names a group by its id only,
//! so each of the two stays reachable.

use crate::cancel::Cancel;
use crate::error::{Error, Result};
use crate::store::Store;
pub use crate::store::groups::Group;
use crate::store::undo::UndoScope;

/// All groups, oldest first.
pub fn list(store: &Store) -> Result<Vec<Group>> {
    store.groups()
}

/// The group named by `id_or_name`; a usage error (exit 2) when none is.
pub fn find(store: &Store, id_or_name: &str) -> Result<Group> {
    if let Some(id) = id_or_name.strip_prefix('#').and_then(|n| n.parse::<i64>().ok()) {
        return store
            .group(id)?
            .ok_or_else(|| Error::usage(format!("no import with id {id} (see `kontakt imports list`)")));
    }
    let named = store.group_named(id_or_name)?;
    if let Ok(id) = id_or_name.parse::<i64>()
        && let Some(group) = store.group(id)?
    {
        return match named {
            Some(other) if other.id != group.id => Err(Error::usage(format!(
                "{id_or_name:?} is both the id of import {} {:?} and the name of import {}: name the one you \
                 mean by its id as #{} or #{}",
                group.id, group.name, other.id, group.id, other.id
            ))),
            _ => Ok(group),
        };
    }
    named.ok_or_else(|| {
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
    if let Some(id) = store.group_name_taken(new_name, group.id)? {
        return Err(Error::usage(format!(
            "an import named {new_name:?} already exists (id {id}); choose another name"
        )));
    }
    store.rename_group(group.id, new_name)?;
    find(store, &format!("#{}", group.id))
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
    let deleted = store.delete_group(group.id)?;
    Ok((group, deleted))
}

/// What `kontakt imports undo` did (or, with `--dry-run`, would do).
#[derive(Debug, Clone, serde::Serialize)]
pub struct Undone {
    pub import_id: i64,
    pub name: String,
    pub kind: String,
    pub dry_run: bool,
    #[serde(flatten)]
    pub scope: UndoScope,
}

/// Undoes an import or a merge (SPEC, Undo), in one transaction: the
/// contacts it created are deleted, those it changed get their earlier
/// values back, those a merge merged away come back, its list memberships
/// go, and the group becomes `undone`. Refused (exit 2) when a contact it
/// touched changed since, unless `force`. A cancel before the commit
/// leaves the store as it was.
pub fn undo(store: &Store, id_or_name: &str, dry_run: bool, force: bool, cancel: &Cancel) -> Result<Undone> {
    let group = find(store, id_or_name)?;
    let what = if group.kind == "merge" { "merge" } else { "import" };
    let named = format!("{what} {} {:?}", group.id, group.name);
    match group.status.as_str() {
        "completed" => {}
        "undone" => {
            return Err(Error::usage(format!(
                "{named} was undone already (at {})",
                group.undone_at.as_deref().unwrap_or("?")
            )));
        }
        status => {
            return Err(Error::usage(format!(
                "{named} ended {status}: it changed nothing, so there is nothing to undo"
            )));
        }
    }
    let armed = cancel.arm(store.interrupt())?;
    store.begin()?;
    let result = (|| {
        let mut scope = store.undo_scope(group.id)?;
        // Contacts it created that are gone (`contacts delete`, merged
        // away) were changed since too; their ids are gone with them.
        let deleted_since = (group.imported.max(0) as u64).saturating_sub(scope.created);
        scope.changed_later += deleted_since;
        if !scope.recorded && (group.contacts_updated > 0 || group.kind == "merge") {
            return Err(Error::usage(format!(
                "{named} changed {} stored contacts and the store holds no record of their earlier values \
                 (it ran before kontakt kept undo records, or the store was made by `store copy`, which leaves \
                 them behind), so it cannot be undone; `kontakt imports delete` removes the contacts it created",
                group.contacts_updated
            )));
        }
        if scope.changed_later > 0 && !force {
            let ids: Vec<String> = scope.first_changed.iter().map(i64::to_string).collect();
            let ids = if ids.is_empty() {
                String::new()
            } else {
                format!(
                    " (ids {}{})",
                    ids.join(", "),
                    if (scope.changed_later - deleted_since) as usize > ids.len() {
                        ", …"
                    } else {
                        ""
                    }
                )
            };
            let deleted = if deleted_since > 0 {
                format!(", {deleted_since} of them created by it and deleted since")
            } else {
                String::new()
            };
            return Err(Error::usage(format!(
                "{} of the contacts {named} touched changed or were deleted after it{ids}{deleted}; undo would \
                 overwrite what changed since: add --force to undo anyway",
                scope.changed_later,
            )));
        }
        crate::cancel::test_stage("undo");
        // The store's `unique FIELD` holds after the undo too: a contact
        // made since may hold a value the undo gives back (the store kept
        // the rule before, so any shared value is the undo's). A dry run
        // with that setting undoes too, to check it, and rolls back.
        let unique = store.config()?.get("unique").cloned();
        if dry_run && unique.is_none() {
            return Ok(scope);
        }
        store.undo_group(group.id, crate::store::groups::now_micros(), &scope)?;
        if let Some(field) = unique {
            let shared = store.count_shared_values(&field)?;
            if shared > 0 {
                return Err(Error::usage(format!(
                    "undoing {named} would give {shared} {field} value(s) to two or more contacts, which the \
                     store's `unique {field}` forbids (a contact made since holds a value the undo gives back); \
                     change or delete that contact first (`kontakt contacts list`), or `kontakt config unset unique`"
                )));
            }
        }
        if dry_run {
            return Ok(scope);
        }
        cancel.check()?;
        crate::cancel::test_stage("undo_commit");
        // The last moment a cancel rolls the undo back.
        armed.disarm_to_commit()?;
        store.commit()?;
        Ok(scope)
    })();
    let scope = match result {
        Ok(scope) => {
            if dry_run {
                store.rollback()?;
            }
            scope
        }
        Err(e) => {
            let e = cancel.or_cancelled(e);
            let _ = store.rollback_after_failure();
            return Err(e);
        }
    };
    Ok(Undone {
        import_id: group.id,
        name: group.name,
        kind: group.kind,
        dry_run,
        scope,
    })
}
