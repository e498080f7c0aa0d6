//! The stored contacts as the `contacts` commands see them: select by a
//! filter, find by id, email or phone, count, delete (SPEC, Export). Every
//! value comes back as text, in one column order ([`column_names`]).

use crate::error::Result;
use crate::fields::STANDARD_FIELDS;
use crate::map::ContactType;

use super::{Backend, Store};

/// Which stored contacts a command works on: every condition given must
/// hold. Values are compared as given (the caller normalizes them as an
/// import would).
#[derive(Debug, Clone, Default)]
pub struct ContactFilter {
    /// Only the contacts this import group created.
    pub import_id: Option<i64>,
    /// Contacts carrying every one of these tags.
    pub tags: Vec<String>,
    pub contact_type: Option<ContactType>,
    pub email: Option<String>,
    /// Contacts with this number as phone or mobile.
    pub phone: Option<String>,
    /// Only the members of this list.
    pub list_id: Option<i64>,
    /// With `list_id`: each contact's membership of that list follows its
    /// columns (`status`, `agent`, `callback_at`, `added_at`: what `lists
    /// export` writes).
    pub membership: bool,
}

/// The columns of a membership that follow the contact's in `lists
/// export` ([`ContactFilter::membership`]).
pub const MEMBERSHIP_COLUMNS: &[&str] = &["status", "agent", "callback_at", "added_at"];

/// How `contacts show` finds contacts.
#[derive(Debug, Clone, Copy)]
pub enum ContactKey<'a> {
    Id(i64),
    /// A normalized email.
    Email(&'a str),
    /// A normalized number, as phone or mobile.
    Phone(&'a str),
}

/// Contacts as text: the column names, then each contact's values (`None`
/// for empty).
pub type ContactRows = (Vec<String>, Vec<Vec<Option<String>>>);

/// The columns a contact is shown and exported with, as SPEC orders them:
/// `id`, `type`, `created_at`, `updated_at`, `import_id`, the standard
/// fields, then the `custom.NAME` columns of `stored` (the contacts
/// table's columns) in the order they were created.
pub fn column_names(stored: &[String]) -> Vec<&str> {
    let mut names: Vec<&str> = vec!["id", "type", "created_at", "updated_at", "import_id"];
    names.extend(STANDARD_FIELDS.iter().map(|f| f.name));
    names.extend(stored.iter().map(String::as_str).filter(|c| c.starts_with("custom.")));
    names
}

impl Store {
    /// The contacts a filter selects, ordered by id, as text (`tags`
    /// joined by `;`); at most `limit` of them (0: all).
    pub fn find_contacts(&self, filter: &ContactFilter, limit: usize) -> Result<ContactRows> {
        dispatch!(self, db => db.find_contacts(filter, limit))
    }

    /// The number of contacts a filter selects.
    pub fn count_contacts(&self, filter: &ContactFilter) -> Result<i64> {
        dispatch!(self, db => db.count_contacts(filter))
    }

    /// The contacts with this id, email, or phone or mobile number, oldest
    /// first, as text like [`Store::find_contacts`].
    pub fn contacts_by(&self, key: ContactKey) -> Result<ContactRows> {
        dispatch!(self, db => db.contacts_by(key))
    }

    /// The ids of the contacts of a type whose `field` (a key field:
    /// email, phone, mobile, external_id) is `value`, oldest first (the
    /// contacts a one-row import keyed by `field` matches).
    pub fn contact_ids_with_key(&self, field: &str, value: &str, contact_type: ContactType) -> Result<Vec<i64>> {
        dispatch!(self, db => db.contact_ids_with_key(field, value, contact_type))
    }

    /// Which of `ids` no stored contact has, ascending.
    /// Every contact holding a value of `field` (a key field: email,
    /// phone, mobile, external_id): the value's key hash and the contact's
    /// id, for the `unique` setting.
    pub fn key_hashes(&self, field: &str) -> Result<Vec<(u64, i64)>> {
        dispatch!(self, db => db.key_hashes(field))
    }

    /// How many values of `field` two or more contacts share.
    pub fn count_shared_values(&self, field: &str) -> Result<i64> {
        dispatch!(self, db => db.count_shared_values(field))
    }

    /// The ids of the contacts whose `field` (a key field) is `value`.
    pub fn contact_ids_with_value(&self, field: &str, value: &str) -> Result<Vec<i64>> {
        dispatch!(self, db => db.contact_ids_with_value(field, value))
    }

    pub fn missing_contact_ids(&self, ids: &[i64]) -> Result<Vec<i64>> {
        dispatch!(self, db => db.missing_contact_ids(ids))
    }

    /// Deletes the contacts with these ids and their list memberships, in
    /// one transaction; returns how many contacts.
    pub fn delete_contacts(&self, ids: &[i64]) -> Result<usize> {
        dispatch!(self, db => db.delete_contacts(ids))
    }
}
