//! `kontakt lists`: contact lists and call or mail campaigns (SPEC,
//! Contact lists and campaigns). A list is a named group of contacts; a
//! contact can be on many, and each membership carries a status (free
//! text, default `new`), an agent and a callback time.
//!
//! The commands on one list (`create`, `list`, `show`, `rename`,
//! `delete`) are thin over the store ([`crate::store::lists`]); filling
//! and emptying a list from a file is [`members`]: the file streamed,
//! each row's key looked up in memory ([`lookup`]), new memberships
//! appended and changed ones staged, all in one transaction.

pub mod callback;
pub mod lookup;
pub mod members;

use serde::Serialize;

use crate::error::{Error, Result};
use crate::store::Store;
use crate::store::lists::ListInfo;

pub use members::{Key, MembersOptions, MembersSummary, Mode};

/// A list with its members counted by status (`lists show`).
#[derive(Debug, Clone, Serialize)]
pub struct ListDetail {
    #[serde(flatten)]
    pub list: ListInfo,
    /// Members per status, statuses in order.
    pub statuses: std::collections::BTreeMap<String, i64>,
}

/// The list named `name`; none is a usage error.
pub fn find(store: &Store, name: &str) -> Result<ListInfo> {
    store.list_named(name)?.ok_or_else(|| unknown(name))
}

/// The usage error of a list that does not exist.
pub fn unknown(name: &str) -> Error {
    Error::usage(format!(
        "no list named {name:?} (`kontakt lists list` shows them; `kontakt lists create {name}` makes it)"
    ))
}

/// A list's name as given, checked: not empty, no control characters
/// (it names output directories and is printed in tables).
pub fn checked_name(name: &str) -> Result<&str> {
    let trimmed = name.trim();
    if trimmed.is_empty() {
        return Err(Error::usage("a list's name cannot be empty"));
    }
    if trimmed.chars().any(char::is_control) {
        return Err(Error::usage(format!(
            "list name {name:?}: control characters are not allowed"
        )));
    }
    Ok(trimmed)
}

/// Creates a list; a name already taken is a usage error.
pub fn create(store: &Store, name: &str, description: Option<&str>) -> Result<ListInfo> {
    let name = checked_name(name)?;
    if store.list_named(name)?.is_some() {
        return Err(Error::usage(format!("a list named {name:?} exists already")));
    }
    store.create_list(name, description)?;
    find(store, name)
}

/// Every list, by name.
pub fn list(store: &Store) -> Result<Vec<ListInfo>> {
    store.lists()
}

/// One list and its members counted by status.
pub fn show(store: &Store, name: &str) -> Result<ListDetail> {
    let list = find(store, name)?;
    let statuses = store.list_statuses(list.id)?.into_iter().collect();
    Ok(ListDetail { list, statuses })
}

/// Renames a list; the new name must be free.
pub fn rename(store: &Store, name: &str, new_name: &str) -> Result<ListInfo> {
    let list = find(store, name)?;
    let new_name = checked_name(new_name)?;
    if new_name != list.name && store.list_named(new_name)?.is_some() {
        return Err(Error::usage(format!("a list named {new_name:?} exists already")));
    }
    store.rename_list(list.id, new_name)?;
    find(store, new_name)
}

/// Deletes a list and its memberships (never a contact); the list as it
/// was and the memberships removed.
pub fn delete(store: &Store, name: &str) -> Result<(ListInfo, u64)> {
    let list = find(store, name)?;
    let removed = store.delete_list(list.id)?;
    Ok((list, removed))
}
