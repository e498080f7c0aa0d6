//! The generator: reproducible bytes, overlap with the store file, encodings and formats.

use super::*;

#[test]
fn rows_are_pure_functions_of_seed_and_index() {
    let countries = countries_for(Encoding::Utf8);
    assert_eq!(import_row(7, 42, &countries), import_row(7, 42, &countries));
    assert_ne!(import_row(7, 42, &countries), import_row(8, 42, &countries));
}

#[test]
fn identities_never_share_email_or_phone_by_accident() {
    let countries = countries_for(Encoding::Utf8);
    let mut emails = std::collections::HashSet::new();
    let mut phones = std::collections::HashSet::new();
    for n in 0..20_000 {
        let p = person(1, n, &countries);
        assert!(emails.insert(p.email.clone()), "{}", p.email);
        assert!(phones.insert((p.country.calling_code, p.phone.clone())), "{}", p.phone);
    }
}

#[test]
fn planted_duplicates_and_overlaps_are_near_their_rates() {
    let n = 20_000u64;
    let dups = (0..n).filter(|&i| import_identity(3, i) != i).count() as f64 / n as f64;
    assert!((0.02..0.04).contains(&dups), "{dups}");
    // Import people in a store of the import's size and of ten times
    // it: about 35% (same email) and 10% (phone only) of the import.
    for store in [n, 10 * n] {
        let (mut same, mut phone) = (0, 0);
        for kind in (0..store).map(|k| store_identity(3, k, n, store)) {
            match kind {
                StoreKind::SameAsImport(_) => same += 1,
                StoreKind::PhoneOnly(_) => phone += 1,
                StoreKind::Fresh(_) => {}
            }
        }
        assert!((0.33..0.40).contains(&(same as f64 / n as f64)), "{store}: {same}");
        assert!((0.09..0.12).contains(&(phone as f64 / n as f64)), "{store}: {phone}");
    }
}

#[test]
fn phones_are_grouped_readably() {
    assert_eq!(group("777123456"), "777 123 456");
    assert_eq!(group("41234567"), "412 345 67");
}
