//! Column -> field mapping. For now the automatic part: suggesting a standard
//! field for a header by its name and common synonyms in Czech, Slovak, Polish,
//! Norwegian, English and German. Headers are folded (diacritics removed,
//! lower-cased, punctuation dropped) so `E-mail`, `e_mail` and `EMAIL` agree.

mod resolve;
mod synonyms;

pub use resolve::{
    ContactType, MappedColumn, Mapping, MappingOptions, Target, Unmapped, checked_tags, find_column, resolve,
};

use std::collections::HashSet;

use unicode_normalization::UnicodeNormalization;

use crate::fields::{Field, standard_field};

/// Folds text to lower-case ASCII words: diacritics removed (`ř` -> `r`,
/// `ł` -> `l`, `ø` -> `o`, `ß` -> `ss`), every run of other characters a
/// single `_`, none at either end. `Datum narození` -> `datum_narozeni`.
/// This is the slug SPEC uses for custom field names made from headers.
pub fn slug(text: &str) -> String {
    let mut out = String::with_capacity(text.len());
    let mut gap = false;
    let mut push = |c: char, out: &mut String| {
        if c.is_ascii_alphanumeric() {
            if gap && !out.is_empty() {
                out.push('_');
            }
            gap = false;
            out.push(c.to_ascii_lowercase());
        } else {
            gap = true;
        }
    };
    // Decomposing ASCII changes nothing: skip it (consents and genders
    // are slugged once per distinct value of each batch, and are nearly
    // always ASCII).
    if text.is_ascii() {
        text.chars().for_each(|c| push(c, &mut out));
        return out;
    }
    for c in text.nfkd() {
        match c {
            'ł' | 'Ł' => push('l', &mut out),
            'ø' | 'Ø' => push('o', &mut out),
            'đ' | 'Đ' => push('d', &mut out),
            'ß' => "ss".chars().for_each(|c| push(c, &mut out)),
            'æ' | 'Æ' => "ae".chars().for_each(|c| push(c, &mut out)),
            c if unicode_normalization::char::is_combining_mark(c) => {}
            c => push(c, &mut out),
        }
    }
    out
}

/// The key synonyms are compared on: the slug without separators.
fn header_key(header: &str) -> String {
    slug(header).replace('_', "")
}

/// Suggests a standard field for a header, if its name or a known synonym
/// says which.
pub fn suggest_field(header: &str) -> Option<&'static Field> {
    by_key(&header_key(header)).or_else(|| by_segments(header))
}

/// The field a folded header key is a synonym of.
fn by_key(key: &str) -> Option<&'static Field> {
    if key.is_empty() {
        return None;
    }
    synonyms::SYNONYMS
        .iter()
        .find(|(_, words)| words.contains(&key))
        .and_then(|(field, _)| standard_field(field))
}

/// A header of a CRM export that holds several entities, `Entity - Field`
/// or `Entity - Field - Kind` (Pipedrive: `Person - Email - Work`,
/// `Person - Phone - Mobile`, `Organization - Name`): the field after the
/// person's entity, tried with its kind first (`Mobile` `Phone` is
/// `mobile`, `Work` `Phone` is `phone`), then alone; the organization's
/// name is the company. Another entity's fields (an organization's
/// address, a deal's value) are not the contact's.
fn by_segments(header: &str) -> Option<&'static Field> {
    let segments: Vec<&str> = header.split(" - ").map(str::trim).collect();
    let [entity, field, kind @ ..] = segments.as_slice() else {
        return None;
    };
    match header_key(entity).as_str() {
        "person" | "contact" | "lead" => {}
        "organization" | "organisation" | "company" | "account" if header_key(field) == "name" && kind.is_empty() => {
            return standard_field("company");
        }
        _ => return None,
    }
    let field = header_key(field);
    match kind {
        [] => by_key(&field),
        [kind] => by_key(&format!("{}{field}", header_key(kind))).or_else(|| by_key(&field)),
        _ => None,
    }
}

/// Whether a header is one of the store's own columns that `contacts
/// export` writes and that are not fields (`id`, `created_at`, ...).
pub fn is_export_bookkeeping(header: &str) -> bool {
    synonyms::NOT_FIELDS.contains(&header.trim())
}

/// What a column of a `lists add` file holds by its header, when it is
/// no contact field: `id` (the store's contact id: `id`, `crm_id`,
/// `Identyfikator CRM`), or a membership's `status`, `agent` or
/// `callback_at`.
pub fn suggest_list_column(header: &str) -> Option<&'static str> {
    let key = header_key(header);
    synonyms::LIST_SYNONYMS
        .iter()
        .find(|(_, words)| words.contains(&key.as_str()))
        .map(|(what, _)| *what)
}

/// Suggests where a header's values go: a standard field by name or
/// synonym, a consent stated as an opt-out (`HasOptedOutOfEmail`), or the
/// custom field an export's `custom.NAME` column names. The column `id`
/// as `contacts export` writes it is never a field here (it is the
/// store's own id, see [`MappingOptions::id_column`]), nor are the
/// export's other bookkeeping columns.
pub fn suggest(header: &str) -> Option<Target> {
    let trimmed = header.trim();
    if is_export_bookkeeping(trimmed) {
        return None;
    }
    if trimmed.starts_with("custom.") {
        return Target::parse(trimmed).ok();
    }
    let key = header_key(header);
    if let Some((field, _)) = synonyms::OPT_OUT_SYNONYMS
        .iter()
        .find(|(_, words)| words.contains(&key.as_str()))
    {
        return standard_field(field).map(Target::OptOut);
    }
    suggest_field(header).map(Target::Standard)
}

/// The suggested mapping of a whole header row: (column index, target),
/// each field used at most once (the first column that suggests it wins,
/// as a person mapping columns left to right would choose).
pub fn suggest_mapping(columns: &[String]) -> Vec<(usize, Target)> {
    let mut used = HashSet::new();
    columns
        .iter()
        .enumerate()
        .filter_map(|(i, header)| suggest(header).map(|t| (i, t)))
        .filter(|(_, t)| used.insert(t.field_name()))
        .collect()
}

#[cfg(test)]
mod tests {
    use super::*;

    fn suggested(header: &str) -> Option<&'static str> {
        suggest_field(header).map(|f| f.name)
    }

    #[test]
    fn slug_folds_diacritics_and_punctuation() {
        assert_eq!(slug("Datum narození"), "datum_narozeni");
        assert_eq!(slug("  Příjmení / Nazwisko "), "prijmeni_nazwisko");
        assert_eq!(slug("Łódź ØRESUND Straße"), "lodz_oresund_strasse");
        assert_eq!(slug("x\"; DROP TABLE contacts; --"), "x_drop_table_contacts");
        assert_eq!(slug("---"), "");
    }

    #[test]
    fn suggests_fields_in_five_languages() {
        let cases = [
            ("E-mail", "email"),
            ("EMAIL", "email"),
            ("e_mail", "email"),
            ("Telefon", "phone"),
            ("Jméno", "first_name"),
            ("Příjmení", "last_name"),
            ("Imię", "first_name"),
            ("Nazwisko", "last_name"),
            ("Fornavn", "first_name"),
            ("Etternavn", "last_name"),
            ("Navn", "full_name"),
            ("Vorname", "first_name"),
            ("Nachname", "last_name"),
            ("PSČ", "postal_code"),
            ("Kod pocztowy", "postal_code"),
            ("Postnummer", "postal_code"),
            ("Mobil", "mobile"),
            ("Handy", "mobile"),
            ("Mobile Phone Number", "mobile"),
            ("Phone Number", "phone"),
            ("Datum narození", "birth_date"),
            ("Pohlaví", "gender"),
            ("Płeć", "gender"),
            ("Kjønn", "gender"),
            ("Firma", "company"),
            ("Ulice", "street"),
            ("Město", "city"),
            ("Miejscowość", "city"),
            ("Poznámka", "note"),
            ("First Name", "first_name"),
            ("Last name", "last_name"),
        ];
        for (header, field) in cases {
            assert_eq!(suggested(header), Some(field), "{header}");
        }
        assert_eq!(suggested("Oblíbená barva"), None);
        assert_eq!(suggested(""), None);
    }

    #[test]
    fn mapping_uses_each_field_once() {
        let columns: Vec<String> = ["Email", "E-mail", "Jméno", "x"]
            .iter()
            .map(|s| s.to_string())
            .collect();
        let mapping: Vec<_> = suggest_mapping(&columns)
            .into_iter()
            .map(|(i, t)| (i, t.name()))
            .collect();
        assert_eq!(mapping, vec![(0, "email".into()), (2, "first_name".into())]);
    }

    fn suggested_target(header: &str) -> Option<String> {
        suggest(header).map(|t| t.name())
    }

    #[test]
    fn pipedrive_headers_name_the_field_after_the_entity() {
        let cases = [
            ("Person - Name", Some("full_name")),
            ("Person - First name", Some("first_name")),
            ("Person - Email - Work", Some("email")),
            ("Person - Email - Home", Some("email")),
            ("Person - Phone - Mobile", Some("mobile")),
            ("Person - Phone - Work", Some("phone")),
            ("Person - Phone - Other", Some("phone")),
            ("Person - Labels", Some("tags")),
            ("Person - City", Some("city")),
            ("Organization - Name", Some("company")),
            ("Organization - Address", None),
            ("Deal - Title", None),
            ("Person - Owner", None),
            ("Person - Email - Work - Primary", None),
        ];
        for (header, field) in cases {
            assert_eq!(suggested(header), field, "{header}");
        }
        // The whole header still wins where it is a synonym itself.
        assert_eq!(suggested("E-mail"), Some("email"));
    }

    #[test]
    fn salesforce_and_consent_headers() {
        let cases = [
            ("MailingCity", "city"),
            ("MailingCountry", "country"),
            ("Country/Region", "country"),
            ("MailingPostalCode", "postal_code"),
            ("MailingStreet", "street"),
            ("MobilePhone", "mobile"),
            ("Account.Name", "company"),
            ("Souhlas s marketingem", "email_opt_in"),
            ("Zgoda marketingowa", "email_opt_in"),
            ("Samtykke", "email_opt_in"),
            ("Einwilligung", "email_opt_in"),
            ("Email Opt In", "email_opt_in"),
            ("HasOptedOutOfEmail", "email_opt_out"),
            ("HasOptedOutOfSMS", "sms_opt_out"),
        ];
        for (header, field) in cases {
            assert_eq!(suggested_target(header).as_deref(), Some(field), "{header}");
        }
    }

    #[test]
    fn export_columns_map_back() {
        for header in ["id", " id ", "type", "created_at", "updated_at", "import_id"] {
            assert_eq!(suggested_target(header), None, "{header}");
        }
        // Another system's record id (Salesforce `Id`) is an external id.
        for header in ["ID", "Id", "External ID"] {
            assert_eq!(suggested_target(header).as_deref(), Some("external_id"), "{header}");
        }
        assert_eq!(suggested_target("external_id").as_deref(), Some("external_id"));
        assert_eq!(suggested_target("tags").as_deref(), Some("tags"));
        assert_eq!(
            suggested_target("custom.shoe_size").as_deref(),
            Some("custom.shoe_size")
        );
        assert_eq!(suggested_target("custom.Bad Name"), None);
        for field in crate::fields::STANDARD_FIELDS {
            assert_eq!(suggested_target(field.name).as_deref(), Some(field.name));
        }
    }
}
