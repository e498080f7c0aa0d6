//! The field catalog of SPEC: the standard contact fields every stage agrees on.
//! Shared by mapping (auto-map targets), the store schema (one column each) and
//! later by normalization (each field's kind decides its normalizer).

/// How a field's values are normalized and validated (SPEC, "Normalized forms").
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum FieldKind {
    Text,
    Name,
    Email,
    Phone,
    Gender,
    Date,
    Consent,
    Tags,
    /// The stored contact's id (only as a matching key: `--primary-key id`).
    Id,
}

/// One standard field: its name as SPEC spells it and its kind.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Field {
    pub name: &'static str,
    pub kind: FieldKind,
}

const fn field(name: &'static str, kind: FieldKind) -> Field {
    Field { name, kind }
}

/// The standard fields, in SPEC order (which is also export column order).
pub const STANDARD_FIELDS: &[Field] = &[
    field("external_id", FieldKind::Text),
    field("first_name", FieldKind::Name),
    field("last_name", FieldKind::Name),
    field("full_name", FieldKind::Name),
    field("company", FieldKind::Name),
    field("email", FieldKind::Email),
    field("phone", FieldKind::Phone),
    field("mobile", FieldKind::Phone),
    field("website", FieldKind::Text),
    field("street", FieldKind::Text),
    field("city", FieldKind::Text),
    field("postal_code", FieldKind::Text),
    field("country", FieldKind::Text),
    field("gender", FieldKind::Gender),
    field("birth_date", FieldKind::Date),
    field("email_opt_in", FieldKind::Consent),
    field("sms_opt_in", FieldKind::Consent),
    field("tags", FieldKind::Tags),
    field("note", FieldKind::Text),
];

/// The stored contact id as a field of an input file: it matches a row to
/// the contact with that id (`--primary-key id`) and is never stored.
pub const ID_FIELD: Field = field("id", FieldKind::Id);

/// The fields an audit can group by, each with a persistent hash column in
/// the store (the key index): the matching keys except `id`.
pub const KEY_FIELDS: &[&str] = &["email", "phone", "mobile", "external_id"];

/// The store column holding the hash of a key field's values.
pub fn hash_column(field: &str) -> String {
    format!("{field}_hash")
}

/// The hash of a normalized key value, as the key index stores it (the
/// xxh3 the matching stage hashes keys with).
pub fn key_hash(value: &str) -> u64 {
    xxhash_rust::xxh3::xxh3_64(value.as_bytes())
}

/// Looks a standard field up by its SPEC name.
pub fn standard_field(name: &str) -> Option<&'static Field> {
    STANDARD_FIELDS.iter().find(|f| f.name == name)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn catalog_has_every_spec_field_once() {
        let mut names: Vec<_> = STANDARD_FIELDS.iter().map(|f| f.name).collect();
        assert_eq!(names.len(), 19);
        names.sort_unstable();
        names.dedup();
        assert_eq!(names.len(), 19);
        assert_eq!(standard_field("email").map(|f| f.kind), Some(FieldKind::Email));
        assert!(standard_field("e-mail").is_none());
    }
}
