//! The per-row plan of an import, pure (no store, no files): for each row
//! of a probed batch, in file order, its in-file verdict (a duplicate fails
//! as `not_unique`, with the text `failed.csv` shows), its category, its
//! action, the stored contacts an update targets, and the run's counts.
//! The work it returns goes to the writer ([`WriteJob`]) and the commit
//! thread ([`CommitJob`]).

use std::collections::BTreeMap;
use std::sync::Arc;

use arrow::array::{Array, AsArray, StringArray};
use arrow::record_batch::RecordBatch;

use super::{Action, Actions, CommitJob, GroupCounts, Unique};
use crate::matching::{Category, InFile, InFileVerdict, MatchedBy, Prepared, RowKeys, walk};
use crate::normalize::stage::{KeyColumn, SetOn};
use crate::normalize::{FailedRow, Original, Reason};
use crate::write::{RowOut, Summary, WriteJob};

/// Counts of one import run.
#[derive(Debug, Default, Clone)]
pub struct Counts {
    pub group: GroupCounts,
    pub categories: [u64; 3],
    pub failed_by_reason: BTreeMap<&'static str, u64>,
}

impl Counts {
    /// The counts' part of the summary.
    pub fn fill(&self, summary: &mut Summary) {
        summary.rows_read = self.group.rows_read;
        summary.rows_failed = self.group.rows_failed;
        summary.failed_by_reason = self.failed_by_reason.clone();
        summary.no_match = self.categories[Category::NoMatch as usize];
        summary.one_match = self.categories[Category::OneMatch as usize];
        summary.multiple_match = self.categories[Category::MultipleMatch as usize];
        summary.imported = self.group.imported;
        summary.updated = self.group.updated;
        summary.skipped = self.group.skipped;
    }
}

/// A batch resolved: the work for the writer and for the store, and the
/// batch's rows (good and failed).
#[derive(Debug)]
pub struct Resolved {
    pub write: WriteJob,
    pub commit: CommitJob,
    pub rows: u64,
}

/// In-file resolution only: the first run of `last`/`fail`, which collects
/// each key group's size.
pub fn resolve_in_file(p: &Prepared, infile: &mut InFile) {
    let rows = p.norm.row_numbers();
    walk(&p.norm, infile, |infile, i, keys| {
        if let Some((primary, secondary)) = keys {
            infile.resolve(
                rows.value(i),
                primary,
                secondary,
                p.probes[i].by == Some(MatchedBy::Primary),
            );
        }
    });
}

/// Resolves one probed batch in file order: in-file duplicates, category,
/// action. `ids`: the stored contact ids, by the store index's ordinals.
pub fn resolve_batch(
    mut p: Prepared,
    ids: &[i64],
    actions: &Actions,
    set_on: &[SetOn],
    mut unique: Option<(&mut Unique, usize)>,
    infile: &mut InFile,
    counts: &mut Counts,
) -> Resolved {
    let norm = &p.norm;
    let key_columns = norm.keys();
    let rows = norm.row_numbers();
    let mut categories: [Vec<RowOut>; 3] = Default::default();
    let mut inserts: Vec<u32> = Vec::new();
    let (mut update_rows, mut update_ids): (Vec<u32>, Vec<i64>) = (Vec::new(), Vec::new());
    let mut duplicates: Vec<FailedRow> = Vec::new();
    // The unique field's values (its column of the batch), when it is set.
    let unique_values = unique
        .as_ref()
        .map(|(_, column)| norm.batch.column(*column).as_string::<i32>().clone());
    let mut targets: Vec<i64> = Vec::new();
    walk(norm, &mut *infile, |infile, i, keys| {
        let Some((primary, secondary)) = keys else { return };
        let probe = p.probes[i];
        let row = rows.value(i);
        match infile.resolve(row, primary, secondary, probe.by == Some(MatchedBy::Primary)) {
            InFileVerdict::Duplicate { first, winner } => {
                let detail = duplicate_detail(infile, &key_columns, (primary, secondary), row, first, winner);
                duplicates.push(FailedRow {
                    row,
                    reason: Reason::NotUnique,
                    detail,
                    original: Original::RawRow(norm.raw_index(row).unwrap_or_default()),
                });
            }
            InFileVerdict::Keep => {
                let category = Category::of(probe.len as usize);
                let action = actions.action(category);
                targets.clear();
                targets.extend(
                    action
                        .targets(probe.matched(&p.matched))
                        .iter()
                        .map(|&o| ids[o as usize]),
                );
                if let (Some((unique, _)), Some(values)) = (unique.as_mut(), &unique_values) {
                    let value = values.is_valid(i).then(|| values.value(i));
                    if let Some(detail) = unique.check(row, value, action, &targets) {
                        duplicates.push(FailedRow {
                            row,
                            reason: Reason::NotUnique,
                            detail,
                            original: Original::RawRow(norm.raw_index(row).unwrap_or_default()),
                        });
                        return;
                    }
                }
                match action {
                    Action::Import => {
                        inserts.push(i as u32);
                        counts.group.imported += 1;
                    }
                    Action::Skip => counts.group.skipped += 1,
                    _ => {
                        for &id in &targets {
                            update_rows.push(i as u32);
                            update_ids.push(id);
                        }
                        counts.group.updated += 1;
                    }
                }
                counts.categories[category as usize] += 1;
                categories[category as usize].push(RowOut {
                    index: i as u32,
                    action,
                    start: probe.start,
                    len: probe.len,
                    matched_by: probe.by,
                });
            }
        }
    });
    for f in norm.failed.iter().chain(&duplicates) {
        *counts.failed_by_reason.entry(f.reason.as_str()).or_default() += 1;
    }
    let n = (norm.kept_rows() + norm.failed.len()) as u64;
    counts.group.rows_read += n;
    counts.group.rows_failed += (norm.failed.len() + duplicates.len()) as u64;
    if !set_on.is_empty() {
        p.norm.batch = with_set_on(&p.norm.batch, set_on, &categories);
    }
    let commit = CommitJob::Rows {
        batch: p.norm.batch.clone(),
        inserts,
        update_rows,
        update_ids,
    };
    let write = WriteJob {
        norm: p.norm,
        matched: p.matched,
        categories,
        duplicates,
    };
    Resolved { write, commit, rows: n }
}

/// The batch with the `--set-on` values in the rows of their category:
/// the row files and the store get the same values.
fn with_set_on(batch: &RecordBatch, set_on: &[SetOn], categories: &[Vec<RowOut>; 3]) -> RecordBatch {
    let mut columns = batch.columns().to_vec();
    for (k, rule) in set_on.iter().enumerate() {
        if set_on[..k].iter().any(|r| r.column == rule.column) {
            continue;
        }
        let old = Arc::clone(&columns[rule.column]);
        let mut values: Vec<Option<&str>> = old.as_string::<i32>().iter().collect();
        for rule in set_on[k..].iter().filter(|r| r.column == rule.column) {
            for row in &categories[rule.category as usize] {
                values[row.index as usize] = rule.value.as_deref();
            }
        }
        columns[rule.column] = Arc::new(StringArray::from(values));
    }
    RecordBatch::try_new(batch.schema(), columns).expect("the batch's own schema")
}

/// What `failed.csv` says of an in-file duplicate: the key it shares (its
/// primary one, unless that is new to the file and the row joined by its
/// secondary key), and the row that wins in its place.
fn duplicate_detail(
    infile: &InFile,
    columns: &[KeyColumn; 2],
    (primary, secondary): RowKeys,
    row: u64,
    first: u64,
    winner: Option<u64>,
) -> String {
    let (key, value) = if infile.has_primary(primary) {
        primary.map(|(_, v)| (columns[0].field, v))
    } else {
        secondary.map(|(_, v)| (columns[1].field, v))
    }
    .map_or((None, ""), |(k, v)| (k, v));
    let key = key.unwrap_or("key");
    match winner {
        Some(w) if w == first => format!("{key} {value:?} already in row {first}"),
        Some(w) => format!("{key} {value:?} also in row {w}, which wins (--in-file-duplicates last)"),
        None if first == row => {
            format!("{key} {value:?} shared with later rows (--in-file-duplicates fail)")
        }
        None => format!("{key} {value:?} shared with row {first} (--in-file-duplicates fail)"),
    }
}

#[cfg(test)]
mod tests {
    use arrow::array::{ArrayRef, UInt64Array};

    use super::*;
    use crate::apply::{OnMultipleMatch, OnNoMatch, OnOneMatch};
    use crate::fields::standard_field;
    use crate::map::{ContactType, MappedColumn, Mapping, Target};
    use crate::matching::{Duplicates, Probe};
    use crate::normalize::{NormalizeSettings, Plan};
    use crate::read::{RawBatch, raw_schema};

    /// Stored contact ids by index ordinal (`ids[o]`).
    const IDS: [i64; 4] = [100, 101, 102, 103];

    /// A row of the file: email, external id; and the ordinals of the
    /// stored contacts it matched (oldest first) and by which key.
    type Row = (&'static str, &'static str, &'static [u32], Option<MatchedBy>);

    /// A probed batch of `rows` (numbered from 1), matched by email, then
    /// external id.
    fn prepared(rows: &[Row]) -> Prepared {
        let column = |name: &str, index: usize| MappedColumn {
            index,
            column: name.to_string(),
            target: Target::Standard(standard_field(name).expect("field")),
        };
        let mapping = Mapping {
            columns: vec![column("email", 0), column("external_id", 1)],
            constants: Vec::new(),
            set_on: Vec::new(),
            tags: Vec::new(),
            contact_type: ContactType::Person,
        };
        let settings = NormalizeSettings {
            primary_key: Some("email"),
            secondary_key: Some("external_id"),
            ..NormalizeSettings::default()
        };
        let plan = Plan::new(&mapping, settings).expect("plan");
        let numbers: ArrayRef = Arc::new(UInt64Array::from_iter_values(1..=rows.len() as u64));
        let emails: ArrayRef = Arc::new(StringArray::from_iter_values(rows.iter().map(|r| r.0)));
        let external: ArrayRef = Arc::new(StringArray::from_iter_values(rows.iter().map(|r| r.1)));
        let schema = raw_schema(&["email".to_string(), "external_id".to_string()]);
        let raw = RawBatch {
            batch: RecordBatch::try_new(schema, vec![numbers, emails, external]).expect("batch"),
            bad_rows: Vec::new(),
        };
        let norm = plan.normalize(&raw);
        let mut probes = Vec::new();
        let mut matched = Vec::new();
        for &(_, _, found, by) in rows {
            probes.push(Probe {
                by,
                start: matched.len() as u32,
                len: found.len() as u32,
            });
            matched.extend_from_slice(found);
        }
        Prepared { norm, probes, matched }
    }

    /// Resolves `rows` in one batch (after a first run for `last`/`fail`).
    fn resolve(rows: &[Row], actions: Actions, duplicates: Duplicates) -> (Resolved, Counts) {
        let known = InFile::needs_stats(duplicates).then(|| {
            let mut first_run = InFile::new(duplicates, None);
            resolve_in_file(&prepared(rows), &mut first_run);
            first_run.into_stats()
        });
        let mut infile = InFile::new(duplicates, known);
        let mut counts = Counts::default();
        let resolved = resolve_batch(prepared(rows), &IDS, &actions, &[], None, &mut infile, &mut counts);
        (resolved, counts)
    }

    fn store_work(resolved: &Resolved) -> (&[u32], &[u32], &[i64]) {
        match &resolved.commit {
            CommitJob::Rows {
                inserts,
                update_rows,
                update_ids,
                ..
            } => (inserts, update_rows, update_ids),
            other => panic!("not rows: {other:?}"),
        }
    }

    /// (row index, action) of each row of a category.
    fn category(resolved: &Resolved, category: Category) -> Vec<(u32, Action)> {
        resolved.write.categories[category as usize]
            .iter()
            .map(|r| (r.index, r.action))
            .collect()
    }

    fn failed(resolved: &Resolved) -> Vec<(u64, &str)> {
        resolved
            .write
            .duplicates
            .iter()
            .map(|f| {
                assert_eq!(f.reason, Reason::NotUnique);
                (f.row, f.detail.as_str())
            })
            .collect()
    }

    const BY_EMAIL: Option<MatchedBy> = Some(MatchedBy::Primary);

    #[test]
    fn one_match_updates_its_contact_under_upsert_and_is_skipped_under_add() {
        let rows: &[Row] = &[("a@x.cz", "", &[2], BY_EMAIL)];
        let (resolved, counts) = resolve(rows, Actions::default(), Duplicates::First);
        assert_eq!(store_work(&resolved), (&[][..], &[0][..], &[102][..]));
        assert_eq!(category(&resolved, Category::OneMatch), vec![(0, Action::Update)]);
        assert_eq!(
            resolved.write.categories[0].len() + resolved.write.categories[2].len(),
            0
        );
        let out = resolved.write.categories[Category::OneMatch as usize][0];
        assert_eq!((out.start, out.len, out.matched_by), (0, 1, BY_EMAIL));
        assert_eq!(
            (counts.group.updated, counts.group.imported, counts.group.skipped),
            (1, 0, 0)
        );
        assert_eq!(counts.categories, [0, 1, 0]);

        let add = Actions::resolve(Some(crate::apply::Mode::Add), None, None, None);
        let (resolved, counts) = resolve(rows, add, Duplicates::First);
        assert_eq!(store_work(&resolved), (&[][..], &[][..], &[][..]));
        assert_eq!(category(&resolved, Category::OneMatch), vec![(0, Action::Skip)]);
        assert_eq!((counts.group.updated, counts.group.skipped), (0, 1));

        let import = Actions::resolve(None, None, Some(OnOneMatch::Import), None);
        let (resolved, counts) = resolve(rows, import, Duplicates::First);
        assert_eq!(store_work(&resolved), (&[0][..], &[][..], &[][..]));
        assert_eq!(counts.group.imported, 1);
    }

    #[test]
    fn multiple_matches_update_the_contacts_each_policy_names() {
        // Matched contacts 3, 1, 0 in created order.
        let rows: &[Row] = &[("b@x.cz", "", &[1, 0], BY_EMAIL), ("a@x.cz", "", &[3, 1, 0], BY_EMAIL)];
        for (policy, action, rows_ids) in [
            (
                OnMultipleMatch::UpdateFirst,
                Action::UpdateFirst,
                vec![(0, 101), (1, 103)],
            ),
            (
                OnMultipleMatch::UpdateLast,
                Action::UpdateLast,
                vec![(0, 100), (1, 100)],
            ),
            (
                OnMultipleMatch::UpdateAll,
                Action::UpdateAll,
                vec![(0, 101), (0, 100), (1, 103), (1, 101), (1, 100)],
            ),
            (OnMultipleMatch::Skip, Action::Skip, vec![]),
        ] {
            let actions = Actions::resolve(None, None, None, Some(policy));
            let (resolved, counts) = resolve(rows, actions, Duplicates::First);
            let (inserts, update_rows, update_ids) = store_work(&resolved);
            assert!(inserts.is_empty());
            let pairs: Vec<(u32, i64)> = update_rows.iter().copied().zip(update_ids.iter().copied()).collect();
            assert_eq!(pairs, rows_ids, "{policy:?}");
            assert_eq!(
                category(&resolved, Category::MultipleMatch),
                vec![(0, action), (1, action)]
            );
            assert_eq!(counts.categories, [0, 0, 2]);
            let updated = if policy == OnMultipleMatch::Skip { 0 } else { 2 };
            assert_eq!(
                (counts.group.updated, counts.group.skipped),
                (updated, 2 - updated),
                "{policy:?}"
            );
        }
    }

    #[test]
    fn no_match_imports_or_skips() {
        let rows: &[Row] = &[("a@x.cz", "", &[], None), ("b@x.cz", "", &[], None)];
        let (resolved, counts) = resolve(rows, Actions::default(), Duplicates::First);
        assert_eq!(store_work(&resolved), (&[0, 1][..], &[][..], &[][..]));
        assert_eq!(
            category(&resolved, Category::NoMatch),
            vec![(0, Action::Import), (1, Action::Import)]
        );
        assert_eq!((counts.group.imported, counts.categories), (2, [2, 0, 0]));

        let skip = Actions::resolve(None, Some(OnNoMatch::Skip), None, None);
        let (resolved, counts) = resolve(rows, skip, Duplicates::First);
        assert_eq!(store_work(&resolved), (&[][..], &[][..], &[][..]));
        assert_eq!((counts.group.imported, counts.group.skipped), (0, 2));
    }

    #[test]
    fn in_file_duplicates_fail_as_not_unique_naming_the_key_and_the_winner() {
        let rows: &[Row] = &[
            ("a@x.cz", "E1", &[], None),
            ("b@x.cz", "E2", &[], None),
            ("a@x.cz", "", &[], None),
            // New email, joins the second row's group by external id.
            ("c@x.cz", "E2", &[], None),
        ];
        let (resolved, counts) = resolve(rows, Actions::default(), Duplicates::First);
        assert_eq!(
            failed(&resolved),
            vec![
                (3, "email \"a@x.cz\" already in row 1"),
                (4, "external_id \"E2\" already in row 2"),
            ]
        );
        assert_eq!(store_work(&resolved).0, &[0, 1]);
        assert_eq!(counts.failed_by_reason.get("not_unique"), Some(&2));
        assert_eq!((counts.group.rows_read, counts.group.rows_failed), (4, 2));

        let (resolved, _) = resolve(rows, Actions::default(), Duplicates::Last);
        assert_eq!(
            failed(&resolved),
            vec![
                (
                    1,
                    "email \"a@x.cz\" also in row 3, which wins (--in-file-duplicates last)"
                ),
                (
                    2,
                    "email \"b@x.cz\" also in row 4, which wins (--in-file-duplicates last)"
                ),
            ]
        );
        assert_eq!(store_work(&resolved).0, &[2, 3]);

        let (resolved, counts) = resolve(rows, Actions::default(), Duplicates::Fail);
        assert_eq!(
            failed(&resolved),
            vec![
                (1, "email \"a@x.cz\" shared with later rows (--in-file-duplicates fail)"),
                (2, "email \"b@x.cz\" shared with later rows (--in-file-duplicates fail)"),
                (3, "email \"a@x.cz\" shared with row 1 (--in-file-duplicates fail)"),
                (4, "external_id \"E2\" shared with row 2 (--in-file-duplicates fail)"),
            ]
        );
        assert!(store_work(&resolved).0.is_empty());
        assert_eq!((counts.group.imported, counts.categories), (0, [0, 0, 0]));
    }

    #[test]
    fn a_row_matched_in_the_store_by_its_primary_key_never_joins_by_its_secondary() {
        let rows: &[Row] = &[("a@x.cz", "E1", &[], None), ("b@x.cz", "E1", &[0], BY_EMAIL)];
        let (resolved, counts) = resolve(rows, Actions::default(), Duplicates::First);
        assert!(failed(&resolved).is_empty());
        assert_eq!(counts.categories, [1, 1, 0]);
    }

    #[test]
    fn failed_rows_count_as_read_and_failed_by_reason_and_match_nothing() {
        let rows: &[Row] = &[
            ("a@x.cz", "", &[], None),
            ("", "", &[], None),
            ("not an email", "", &[], None),
        ];
        let (resolved, counts) = resolve(rows, Actions::default(), Duplicates::First);
        assert_eq!(store_work(&resolved).0, &[0]);
        assert_eq!(resolved.rows, 3);
        assert_eq!((counts.group.rows_read, counts.group.rows_failed), (3, 2));
        assert_eq!(
            counts.failed_by_reason,
            [("no_fields", 1), ("wrong_format", 1)].into_iter().collect()
        );
        let mut summary = Summary::default();
        counts.fill(&mut summary);
        assert_eq!(
            (
                summary.rows_read,
                summary.rows_failed,
                summary.no_match,
                summary.imported
            ),
            (3, 2, 1, 1)
        );
    }
}
