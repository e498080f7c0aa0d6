//! Header synonyms per standard field, as folded keys (see `header_key`):
//! lower-case ASCII, no diacritics, no separators. English, Czech, Slovak,
//! Polish, Norwegian and German, as CRM exports and hand-made sheets spell them.
//! A word appears under one field only (a unit test checks it).

#[rustfmt::skip]
pub(super) const SYNONYMS: &[(&str, &[&str])] = &[
    ("external_id", &[
        "externalid", "extid", "id", "customerid", "contactid", "recordid", "clientid",
        "idzakaznika", "cislozakaznika", "idklienta", "identyfikator", "kundenummer",
        "kundenr", "kundennummer", "kundenid",
    ]),
    ("first_name", &[
        "firstname", "first", "givenname", "forename", "jmeno", "krestnijmeno", "meno",
        "krstnemeno", "imie", "fornavn", "vorname",
    ]),
    ("last_name", &[
        "lastname", "last", "surname", "familyname", "prijmeni", "priezvisko", "nazwisko",
        "etternavn", "nachname", "familienname",
    ]),
    ("full_name", &[
        "fullname", "name", "contactname", "displayname", "celejmeno", "jmenoaprijmeni",
        "menoapriezvisko", "imieinazwisko", "navn", "fulltnavn", "vollername",
        "vollstandigername",
    ]),
    ("company", &[
        "company", "companyname", "organization", "organisation", "org", "account",
        "accountname", "employer", "firma", "spolecnost", "nazevfirmy", "organizace",
        "spolocnost", "organizacja", "nazwafirmy", "selskap", "firmanavn", "unternehmen",
    ]),
    ("email", &[
        "email", "emailaddress", "mail", "emailadresa", "adresaemail", "emailovaadresa",
        "adresemail", "epost", "epostadresse", "emailadresse",
    ]),
    ("phone", &[
        "phone", "phonenumber", "telephone", "tel", "workphone", "landline", "telefon",
        "telefonnicislo", "telefonnecislo", "numertelefonu", "nrtelefonu", "telefonnummer",
        "tlf", "telefonnr",
    ]),
    ("mobile", &[
        "mobile", "mobilephone", "mobilephonenumber", "mobilenumber", "cell", "cellphone", "mobil",
        "mobilnitelefon", "mobilnytelefon", "telefonkomorkowy", "komorka", "mobiltelefon",
        "mobilnummer", "handy", "handynummer",
    ]),
    ("website", &[
        "website", "web", "url", "homepage", "www", "webovastranka", "webovestranky",
        "stronawww", "stronainternetowa", "nettside", "hjemmeside", "webseite",
    ]),
    ("street", &[
        "street", "mailingstreet", "address", "streetaddress", "address1", "ulice", "adresa", "ulica",
        "adres", "gate", "gateadresse", "adresse", "strasse",
    ]),
    ("city", &[
        "city", "mailingcity", "town", "mesto", "obec", "miasto", "miejscowosc", "by", "poststed", "sted",
        "stadt", "ort",
    ]),
    ("postal_code", &[
        "postalcode", "mailingpostalcode", "zip", "zipcode", "postcode", "psc", "kodpocztowy", "postnummer",
        "postnr", "plz", "postleitzahl",
    ]),
    ("country", &["country", "countryregion", "mailingcountry", "stat", "zeme", "panstwo", "land", "staat"]),
    ("gender", &["gender", "sex", "pohlavi", "pohlavie", "plec", "kjonn", "geschlecht"]),
    ("birth_date", &[
        "birthdate", "dateofbirth", "dob", "birthday", "datumnarozeni", "narozeni",
        "datumnarodenia", "datanarodzin", "dataurodzenia", "fodselsdato", "geburtsdatum",
    ]),
    ("email_opt_in", &[
        "emailoptin", "emailconsent", "newsletter", "souhlasemail", "souhlassemailem",
        "zgodaemail", "epostsamtykke", "emaileinwilligung", "marketingconsent", "marketingoptin",
        "souhlassmarketingem", "marketingovysouhlas", "zgodamarketingowa", "samtykke",
        "markedsforingssamtykke", "einwilligung", "werbeeinwilligung",
    ]),
    ("sms_opt_in", &["smsoptin", "smsconsent", "souhlassms", "zgodasms", "smssamtykke", "smseinwilligung"]),
    ("tags", &["tags", "tag", "labels", "stitky", "stitek", "tagi", "etykiety", "merker", "etiketten"]),
    ("note", &[
        "note", "notes", "comment", "comments", "poznamka", "poznamky", "uwagi", "notatka",
        "merknad", "notat", "notiz", "bemerkung", "kommentar",
    ]),
];

/// Headers of a consent stated the other way round (Salesforce's
/// `HasOptedOutOfEmail`): true means opt-out, false only that the contact
/// did not opt out (stored `unknown`). Each maps to the consent it
/// inverts (the field names `email_opt_out`, `sms_opt_out`).
#[rustfmt::skip]
pub(super) const OPT_OUT_SYNONYMS: &[(&str, &[&str])] = &[
    ("email_opt_in", &[
        "emailoptout", "hasoptedoutofemail", "optedoutofemail", "emailoptedout", "unsubscribed",
    ]),
    ("sms_opt_in", &["smsoptout", "hasoptedoutofsms", "optedoutofsms", "smsoptedout"]),
];

/// The columns `contacts export` writes besides the fields: the store's
/// own bookkeeping. An export imports back without them becoming fields
/// (`id` is the contact id only as a matching key; `type` comes from
/// `--type`), so they are never auto-mapped, nor made custom fields.
/// Matched exactly as kontakt spells them: another system's `ID` or `Id`
/// column (Salesforce, HubSpot, the CRM a file comes from) is its record
/// id, which is what `external_id` keeps.
pub(super) const NOT_FIELDS: &[&str] = &["id", "type", "created_at", "updated_at", "import_id"];

/// The columns of a `lists add` or `lists remove` file that are no
/// contact field: the store's own contact id as a CRM's export names it
/// (`id`, `crm_id`, `Identyfikator CRM`), and a membership's status, agent
/// and callback time as call-center sheets name them.
#[rustfmt::skip]
pub(super) const LIST_SYNONYMS: &[(&str, &[&str])] = &[
    ("id", &["id", "crmid", "idcrm", "identyfikatorcrm", "kontaktid", "contactcrmid"]),
    ("status", &["status", "stav", "stan", "callstatus", "statusvolani", "statusrozmowy"]),
    ("agent", &["agent", "operator", "operatorka", "konsultant", "assignedto", "owner", "caller"]),
    ("callback_at", &[
        "callback", "callbackat", "callbackdate", "callbacktime", "zpetnevolani", "zavolatzpet",
        "oddzwonienie", "oddzwonic", "ringtilbake", "ruckruf",
    ]),
];

#[cfg(test)]
mod tests {
    use super::{OPT_OUT_SYNONYMS, SYNONYMS};
    use crate::fields::standard_field;

    #[test]
    fn synonyms_are_folded_unique_and_name_real_fields() {
        let mut seen = std::collections::HashSet::new();
        for (field, words) in SYNONYMS.iter().chain(OPT_OUT_SYNONYMS) {
            assert!(standard_field(field).is_some(), "{field}");
            for word in *words {
                assert_eq!(super::super::header_key(word), *word, "not folded: {word}");
                assert!(seen.insert(*word), "{word} listed twice");
            }
        }
    }
}
