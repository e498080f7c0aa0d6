//! Import groups (SPEC, Deleting an import): list, show, rename, delete.
//!
//! A group is named on the command line by its id or its name: a number is
//! tried as an id first, then as a name (so a group named `2024` is still
//! reachable when no group has id 2024).

use crate::error::{Error, Result};
use crate::store::Store;
pub use crate::store::groups::Group;

/// All groups, oldest first.
pub fn list(store: &Store) -> Result<Vec<Group>> {
    store.groups()
}

/// The group named by `id_or_name`; a usage error (exit 2) when none is.
pub fn find(store: &Store, id_or_name: &str) -> Result<Group> {
    if let Ok(id) = id_or_name.parse::<i64>()
        && let Some(group) = store.group(id)?
    {
        return Ok(group);
    }
    store.group_named(id_or_name)?.ok_or_else(|| {
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
    let deleted = store.delete_group(group.id)?;
    Ok((group, deleted))
}
