//! SQL text both backends write alike: DuckDB's and PostgreSQL's dialects
//! agree on identifiers, string literals and the contact filters but for
//! how a list holds a value.

use crate::fields::KEY_FIELDS;
use crate::map::ContactType;
use crate::store::contacts::{ContactFilter, ContactKey};

/// A double-quoted SQL identifier (kontakt's own names: checked field names,
/// whose quoting keeps `custom.NAME` one identifier).
pub fn quote_ident(name: &str) -> String {
    format!("\"{}\"", name.replace('"', "\"\""))
}

/// A SQL string literal (only `'` doubles: PostgreSQL's standard-conforming
/// strings, DuckDB's only kind).
pub fn literal(value: &str) -> String {
    format!("'{}'", value.replace('\'', "''"))
}

/// `field` is one of [`KEY_FIELDS`], each with a hash column.
pub fn key_column(field: &str) -> &'static str {
    KEY_FIELDS
        .iter()
        .find(|f| **f == field)
        .copied()
        .expect("a key field, checked by the caller")
}

/// The filter's `WHERE` clause (empty when nothing filters); `has_tag`
/// is the dialect's condition that `tags` holds a literal.
pub fn where_clause(filter: &ContactFilter, has_tag: impl Fn(&str) -> String) -> String {
    let mut conditions = Vec::new();
    if let Some(import_id) = filter.import_id {
        conditions.push(format!("import_id = {import_id}"));
    }
    for tag in &filter.tags {
        conditions.push(has_tag(&literal(tag)));
    }
    if let Some(t) = filter.contact_type {
        conditions.push(format!("type = {}", literal(t.name())));
    }
    if let Some(email) = &filter.email {
        conditions.push(format!("email = {}", literal(email)));
    }
    if let Some(phone) = &filter.phone {
        let phone = literal(phone);
        conditions.push(format!("(phone = {phone} OR mobile = {phone})"));
    }
    if let Some(list_id) = filter.list_id {
        conditions.push(format!(
            "id IN (SELECT contact_id FROM list_members WHERE list_id = {list_id})"
        ));
    }
    if conditions.is_empty() {
        String::new()
    } else {
        format!(" WHERE {}", conditions.join(" AND "))
    }
}

/// The condition that selects the contacts `contacts show` finds by `key`.
pub fn key_condition(key: ContactKey) -> String {
    match key {
        ContactKey::Id(id) => format!("id = {id}"),
        ContactKey::Email(email) => format!("email = {}", literal(email)),
        ContactKey::Phone(phone) => {
            let phone = literal(phone);
            format!("phone = {phone} OR mobile = {phone}")
        }
    }
}

/// The ids of the contacts of a type whose key field `field` is `value`,
/// oldest first.
pub fn ids_with_key(field: &str, value: &str, contact_type: ContactType) -> String {
    format!(
        "SELECT id FROM contacts WHERE {} = {} AND type = {} ORDER BY created_at, id",
        key_column(field),
        literal(value),
        literal(contact_type.name())
    )
}

/// The ids of the contacts whose key field `field` is `value`.
pub fn ids_with_value(field: &str, value: &str) -> String {
    format!(
        "SELECT id FROM contacts WHERE {} = {} ORDER BY id",
        key_column(field),
        literal(value)
    )
}

/// How many values of the key field `field` two or more contacts share.
pub fn count_shared(field: &str) -> String {
    let field = key_column(field);
    format!(
        "SELECT count(*) FROM (SELECT {field} FROM contacts WHERE {field} IS NOT NULL \
         GROUP BY {field} HAVING count(*) > 1) AS shared"
    )
}
