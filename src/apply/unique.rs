//! The store's `unique` setting (SPEC, Store settings: Oki-Toki's
//! continuous duplicate check): no two contacts share a non-empty value
//! of the field. Checked per row in file order, after the row's action is
//! known: a row that would create a contact with a value a stored contact
//! (or an earlier row's new contact) has, or give a contact a value
//! another one has, fails as `not_unique`, naming that contact.

use std::collections::{HashMap, HashSet};

use super::Action;
use crate::error::Result;
use crate::fields::key_hash;
use crate::store::Store;

type Map<V> = HashMap<u64, V, foldhash::fast::FixedState>;

/// Who holds a value.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Holder {
    /// A stored contact (or one this import updates to the value).
    Contact(i64),
    /// The contact the file's row of this number creates.
    Row(u64),
}

/// The values of the unique field held, by key hash (the key index's
/// xxh3: two values with one hash are taken as one, a chance of about
/// n²/2⁶⁵).
#[derive(Debug)]
pub struct Unique {
    field: String,
    held: Map<Holder>,
    /// With `--master existing`: the stored contacts that hold a value
    /// (an update keeps it, so it gives them none).
    keep: Option<HashSet<i64, foldhash::fast::FixedState>>,
}

impl Unique {
    /// The stored contacts' values of `field` (one of the key fields);
    /// `keep`: stored values are kept on update (`--master existing`).
    pub fn load(store: &Store, field: &str, keep: bool) -> Result<Unique> {
        let pairs = store.key_hashes(field)?;
        let mut held = Map::with_capacity_and_hasher(pairs.len(), Default::default());
        for &(hash, id) in &pairs {
            held.insert(hash, Holder::Contact(id));
        }
        let keep = keep.then(|| pairs.iter().map(|&(_, id)| id).collect());
        Ok(Unique {
            field: field.to_string(),
            held,
            keep,
        })
    }

    /// Whether the row `row` may do `action` giving `value` to the stored
    /// contacts `targets` (an update) or to a new contact (an import);
    /// if not, the `detail` of its `not_unique`. What it may do, it takes.
    pub fn check(&mut self, row: u64, value: Option<&str>, action: Action, targets: &[i64]) -> Option<String> {
        let value = value?;
        let hash = key_hash(value);
        let field = &self.field;
        let taken = |holder: Holder| match holder {
            Holder::Contact(id) => {
                format!("{field} {value:?} belongs to contact {id} (the store's setting `unique {field}`)")
            }
            Holder::Row(other) => {
                format!("{field} {value:?} is given to the contact row {other} creates (`unique {field}`)")
            }
        };
        match action {
            Action::Skip => None,
            Action::Import => match self.held.get(&hash) {
                Some(holder) => Some(taken(*holder)),
                None => {
                    self.held.insert(hash, Holder::Row(row));
                    None
                }
            },
            _ => {
                if targets.len() > 1 {
                    return Some(format!(
                        "{field} {value:?} would be given to {} contacts (`unique {field}`)",
                        targets.len()
                    ));
                }
                let target = *targets.first()?;
                if self.keep.as_ref().is_some_and(|keep| keep.contains(&target)) {
                    return None;
                }
                match self.held.get(&hash) {
                    Some(Holder::Contact(id)) if *id == target => None,
                    Some(holder) => Some(taken(*holder)),
                    None => {
                        self.held.insert(hash, Holder::Contact(target));
                        None
                    }
                }
            }
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn unique(stored: &[(&str, i64)]) -> Unique {
        Unique {
            field: "phone".into(),
            held: stored
                .iter()
                .map(|(v, id)| (key_hash(v), Holder::Contact(*id)))
                .collect(),
            keep: None,
        }
    }

    #[test]
    fn a_value_another_contact_holds_is_refused_naming_it() {
        let mut u = unique(&[("+1", 7), ("+2", 8)]);
        // A new contact with a stored value; a stored contact given another's.
        let detail = u.check(1, Some("+1"), Action::Import, &[]).expect("taken");
        assert!(detail.contains("contact 7"), "{detail}");
        assert!(
            u.check(2, Some("+1"), Action::Update, &[8])
                .expect("taken")
                .contains("contact 7")
        );
        // Its own value, no value, a skip: allowed.
        assert_eq!(u.check(3, Some("+1"), Action::Update, &[7]), None);
        assert_eq!(u.check(4, None, Action::Import, &[]), None);
        assert_eq!(u.check(5, Some("+2"), Action::Skip, &[]), None);
        // A new value is taken by the first row that gives it.
        assert_eq!(u.check(6, Some("+3"), Action::Import, &[]), None);
        assert!(
            u.check(7, Some("+3"), Action::Update, &[8])
                .expect("taken")
                .contains("row 6")
        );
        assert_eq!(u.check(8, Some("+4"), Action::Update, &[8]), None);
        assert!(
            u.check(9, Some("+4"), Action::Import, &[])
                .expect("taken")
                .contains("contact 8")
        );
        assert!(u.check(10, Some("+5"), Action::UpdateAll, &[7, 8]).is_some());
    }

    #[test]
    fn with_stored_values_kept_a_contact_that_has_one_is_given_none() {
        let mut u = unique(&[("+1", 7), ("+2", 8)]);
        u.keep = Some([7, 8].into_iter().collect());
        assert_eq!(u.check(1, Some("+1"), Action::Update, &[8]), None);
        // A contact without a value would take it: still refused.
        assert!(u.check(2, Some("+1"), Action::Update, &[9]).is_some());
    }
}
