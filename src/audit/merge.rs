//! `kontakt merge --audit DIR [--dry-run]`: merges each cluster of an
//! audit's clusters.csv into its `survivor_id`, in one transaction recorded
//! as an import group of kind `merge`.
//!
//! Per cluster, the survivor's empty fields are filled from the other
//! members (`--master existing`, the default: the oldest member's value
//! first) or the other members' values overwrite it (`--master file`: the
//! newest member's value wins), as the import's `--master` does; a key's
//! hash column moves with its value. Tags are unioned. A consent is never
//! upgraded: opt-out on any member makes the survivor opt-out; otherwise
//! opt-in on any member makes it opt-in. The other members are deleted, each
//! kept as JSON in `merged_contacts` beside its survivor and the merge.
//!
//! The audit must still describe the store: every member must exist and be
//! unchanged since the audit began (else the merge is refused: run the
//! audit again). An audit already merged is refused by name (exit 2).
//!
//! Nothing is lost without a trace: every value that does not survive in its
//! own field (a merged contact's other email, or with `--master file` the
//! survivor's own earlier value) is a row of `merged.csv` in the audit
//! directory, and with `--keep-dropped note|custom.NAME` it is also appended
//! to the survivor's note or that custom field (consents only in the file:
//! a consent written into a note is not a consent, and could be misread as
//! one).

use std::path::{Path, PathBuf};
use std::time::Instant;

use serde::Serialize;

use crate::apply::Master;
use crate::cancel::Cancel;
use crate::error::{Error, Result};
use crate::store::Store;
use crate::store::groups::{Ending, GroupCounts, now_micros};
use crate::store::merge::{ClusterMember as Member, DroppedValue, StaleMember};

/// The log of dropped values, written to the audit directory.
pub const MERGED_CSV: &str = "merged.csv";

/// Where a value that does not survive in its own field is kept in the
/// store, besides its row in `merged.csv`.
#[derive(Debug, Clone, PartialEq, Eq, Default)]
pub enum KeepDropped {
    /// Only in `merged.csv`.
    #[default]
    None,
    /// Appended to the survivor's `note`.
    Note,
    /// Appended to the survivor's `custom.NAME` (the full field name).
    Custom(String),
}

impl KeepDropped {
    /// `none`, `note` or `custom.NAME` (NAME a custom field slug).
    pub fn parse(text: &str) -> std::result::Result<KeepDropped, String> {
        match text {
            "none" => Ok(KeepDropped::None),
            "note" => Ok(KeepDropped::Note),
            _ if text.starts_with("custom.") => {
                crate::map::Target::parse(text)?;
                Ok(KeepDropped::Custom(text.to_string()))
            }
            _ => Err(format!("{text:?}: expected note, custom.NAME or none")),
        }
    }

    /// The field the values are appended to.
    fn field(&self) -> Option<&str> {
        match self {
            KeepDropped::None => None,
            KeepDropped::Note => Some("note"),
            KeepDropped::Custom(field) => Some(field),
        }
    }
}

#[derive(Debug, Clone)]
pub struct MergeOptions {
    pub audit_dir: PathBuf,
    pub master: Master,
    pub dry_run: bool,
    /// Default: `merge-audit-<audit id>`.
    pub name: Option<String>,
    pub keep_dropped: KeepDropped,
}

/// What a merge did (or, with `--dry-run`, would do).
#[derive(Debug, Clone, Serialize)]
pub struct MergeSummary {
    /// Null with `--dry-run`.
    pub merge_id: Option<i64>,
    pub name: String,
    pub audit_id: i64,
    pub dry_run: bool,
    pub clusters: u64,
    /// Survivors updated (one per cluster).
    pub survivors: u64,
    /// Contacts merged into a survivor and deleted.
    pub contacts_merged: u64,
    /// Values that did not survive in their own field: the rows of
    /// `merged.csv`.
    pub values_dropped: u64,
    /// The field those values were appended to (`--keep-dropped`), if any.
    pub dropped_kept_in: Option<String>,
    /// The log of those values.
    pub merged_csv: String,
    pub elapsed_ms: u64,
}

/// Reads an audit's directory: its id (summary.json) and the members of
/// its clusters (clusters.csv), checked: each contact once, each survivor a
/// member of its own cluster.
fn read_audit(dir: &Path) -> Result<(i64, Vec<Member>)> {
    let summary_path = dir.join("summary.json");
    let text = std::fs::read_to_string(&summary_path).map_err(|e| Error::io(&summary_path, e))?;
    let audit_id = serde_json::from_str::<serde_json::Value>(&text)
        .ok()
        .and_then(|v| v.get("audit_id").and_then(serde_json::Value::as_i64))
        .ok_or_else(|| Error::input(summary_path.display(), "not an audit's summary.json (no audit_id)"))?;
    let path = dir.join("clusters.csv");
    let file = std::fs::File::open(&path).map_err(|e| Error::io(&path, e))?;
    let mut reader = csv::Reader::from_reader(std::io::BufReader::new(file));
    let header = reader
        .headers()
        .map_err(|e| Error::input(path.display(), e.to_string()))?
        .clone();
    let column = |name: &str| {
        header.iter().position(|h| h == name).ok_or_else(|| {
            Error::input(
                path.display(),
                format!("no column {name:?} (not an audit's clusters.csv)"),
            )
        })
    };
    let columns = [column("cluster_id")?, column("contact_id")?, column("survivor_id")?];
    let names = ["cluster_id", "contact_id", "survivor_id"];
    let mut members = Vec::new();
    for (i, record) in reader.records().enumerate() {
        let row = i + 1;
        let record = record.map_err(|e| Error::input(path.display(), format!("row {row}: {e}")))?;
        let mut values = [0i64; 3];
        for (k, &c) in columns.iter().enumerate() {
            let cell = record.get(c).unwrap_or("");
            values[k] = cell.parse().map_err(|_| {
                Error::input(
                    path.display(),
                    format!(
                        "row {row}, column {}: {cell:?} is not a contact or cluster id",
                        names[k]
                    ),
                )
            })?;
        }
        members.push(Member {
            cluster: values[0],
            contact: values[1],
            survivor: values[2],
        });
    }
    let mut by_contact: Vec<(i64, usize)> = members.iter().enumerate().map(|(i, m)| (m.contact, i)).collect();
    by_contact.sort_unstable();
    if let Some(w) = by_contact.windows(2).find(|w| w[0].0 == w[1].0) {
        return Err(Error::input(
            path.display(),
            format!(
                "row {}, column contact_id: contact {} is listed twice",
                w[1].1 + 1,
                w[0].0
            ),
        ));
    }
    let mut clusters: Vec<&Member> = members.iter().collect();
    clusters.sort_by_key(|m| (m.cluster, m.contact));
    for cluster in clusters.chunk_by(|a, b| a.cluster == b.cluster) {
        let survivor = cluster[0].survivor;
        let bad = cluster
            .iter()
            .find(|m| m.survivor != survivor)
            .or_else(|| (!cluster.iter().any(|m| m.contact == survivor)).then_some(&cluster[0]));
        if let Some(m) = bad {
            return Err(Error::input(
                path.display(),
                format!(
                    "cluster {}, column survivor_id: {} is not one survivor among the cluster's members",
                    m.cluster, m.survivor
                ),
            ));
        }
    }
    Ok((audit_id, members))
}

/// When audit `audit_id` began, checked: an audit of this store, not
/// merged before.
fn check_audit(store: &Store, dir: &Path, audit_id: i64) -> Result<i64> {
    let audit_start = store.audit_started(audit_id)?.ok_or_else(|| {
        Error::usage(format!(
            "{}: audit {audit_id} is not an audit of this store",
            dir.display()
        ))
    })?;
    // An audit merged once lists contacts that are gone or changed: say
    // so, rather than the first stale contact.
    if let Some((id, group)) = store.merge_of_audit(audit_id)? {
        return Err(Error::usage(format!(
            "{}: audit {audit_id} was already merged by merge group {group:?} (id {id}); run a new audit",
            dir.display()
        )));
    }
    // An undo after the audit began gave contacts back earlier values
    // with their earlier times, which the check of each member by time
    // cannot see.
    if store.last_undo()?.is_some_and(|undo| undo >= audit_start) {
        return Err(Error::usage(format!(
            "{}: an import or merge was undone after audit {audit_id} began, so its clusters may be stale; \
             run a new audit",
            dir.display()
        )));
    }
    Ok(audit_start)
}

/// Runs a merge (or its dry run: the same transaction, rolled back).
pub fn run(store: &Store, options: &MergeOptions, cancel: &Cancel) -> Result<MergeSummary> {
    let started = Instant::now();
    let (audit_id, members) = read_audit(&options.audit_dir)?;
    let audit_start = check_audit(store, &options.audit_dir, audit_id)?;
    let name = options
        .name
        .clone()
        .unwrap_or_else(|| format!("merge-audit-{audit_id}"));
    let log_path = options.audit_dir.join(MERGED_CSV);
    let mut summary = MergeSummary {
        merge_id: None,
        name: name.clone(),
        audit_id,
        dry_run: options.dry_run,
        clusters: 0,
        survivors: 0,
        contacts_merged: 0,
        values_dropped: 0,
        dropped_kept_in: options.keep_dropped.field().map(str::to_string),
        merged_csv: log_path.display().to_string(),
        elapsed_ms: 0,
    };
    // Ctrl-C or SIGTERM before the commit rolls the merge back, as an
    // import's (`crate::cancel`): its statements are interrupted.
    let armed = cancel.arm(store.interrupt())?;
    let merge_id = if options.dry_run {
        None
    } else {
        Some(store.start_merge_group(&name, &options.audit_dir.display().to_string())?)
    };
    summary.merge_id = merge_id;
    store.begin()?;
    crate::cancel::test_stage("merge");
    let result = merge(
        store,
        options,
        merge_id.unwrap_or(0),
        audit_start,
        &members,
        &mut summary,
    );
    summary.elapsed_ms = started.elapsed().as_millis() as u64;
    // The log is written before the commit (a merge whose log cannot be
    // written is rolled back) and put in place after it.
    let log_tmp = options.audit_dir.join(format!("{MERGED_CSV}.tmp"));
    let ended = result.and_then(|dropped| {
        write_log(&log_tmp, &dropped)?;
        let Some(id) = merge_id else {
            drop(armed);
            store.rollback()?;
            return std::fs::rename(&log_tmp, &log_path).map_err(|e| Error::io(&log_path, e));
        };
        let text = serde_json::to_string_pretty(&summary).expect("a summary serializes");
        // As for an import, rows_read = updated + skipped: each listed
        // member was merged into its survivor or is the survivor.
        store.complete_group(
            id,
            &GroupCounts {
                rows_read: members.len() as u64,
                updated: summary.contacts_merged,
                skipped: members.len() as u64 - summary.contacts_merged,
                contacts_updated: summary.survivors,
                ..GroupCounts::default()
            },
            &text,
        )?;
        crate::cancel::test_stage("merge_commit");
        armed.disarm_to_commit()?;
        store.commit()?;
        // Committed: the merge is complete whatever happens to its log now.
        if let Err(e) = std::fs::rename(&log_tmp, &log_path) {
            eprintln!(
                "kontakt: the merge is complete, but its log could not be put in place: {}: {e} (it is in {})",
                log_path.display(),
                log_tmp.display()
            );
        }
        Ok(())
    });
    if let Err(e) = ended {
        let e = cancel.or_cancelled(e);
        let _ = std::fs::remove_file(&log_tmp);
        let _ = store.rollback_after_failure();
        if let Some(id) = merge_id {
            let _ = store.end_group(id, Ending::of(&e), &e.to_string());
        }
        return Err(e);
    }
    Ok(summary)
}

/// The merge inside its transaction: the members staged and checked, the
/// survivors updated, the dropped values collected (and kept where
/// `--keep-dropped` says), the other members deleted.
fn merge(
    store: &Store,
    options: &MergeOptions,
    merge_id: i64,
    audit_start: i64,
    members: &[Member],
    summary: &mut MergeSummary,
) -> Result<Vec<DroppedValue>> {
    store.stage_merge(members)?;
    // The audit must still describe the store.
    if let Some(StaleMember { contact, deleted }) = store.first_stale_member(audit_start)? {
        return Err(Error::Store {
            path: store.path().display().to_string(),
            message: format!(
                "contact {contact} {} since audit {}; run the audit again",
                if deleted { "was deleted" } else { "changed" },
                summary.audit_id
            ),
        });
    }
    (summary.clusters, summary.contacts_merged) = store.merge_counts()?;
    if let KeepDropped::Custom(field) = &options.keep_dropped {
        store.add_custom_columns([field.as_str()])?;
    }
    summary.survivors = store.merge_survivors(options.master, now_micros())?;
    if let Some(field) = options.keep_dropped.field() {
        store.keep_dropped_in(field, now_micros())?;
    }
    let dropped = store.dropped_values()?;
    summary.values_dropped = dropped.len() as u64;
    store.delete_merged(merge_id)?;
    Ok(dropped)
}

/// Writes `merged.csv` (a header even when nothing was dropped, so that a
/// script can always read it).
fn write_log(path: &Path, dropped: &[DroppedValue]) -> Result<()> {
    let mut writer = csv::WriterBuilder::new()
        .has_headers(false)
        .from_path(path)
        .map_err(|e| Error::io(path, std::io::Error::other(e)))?;
    let io = |e: csv::Error| Error::io(path, std::io::Error::other(e));
    writer
        .write_record(["survivor_id", "merged_id", "field", "value", "kept_in"])
        .map_err(io)?;
    for row in dropped {
        writer.serialize(row).map_err(io)?;
    }
    writer.flush().map_err(|e| Error::io(path, e))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn keep_dropped_names_the_note_a_custom_field_or_nothing() {
        assert_eq!(KeepDropped::parse("none"), Ok(KeepDropped::None));
        assert_eq!(KeepDropped::parse("note"), Ok(KeepDropped::Note));
        assert_eq!(
            KeepDropped::parse("custom.merged_from"),
            Ok(KeepDropped::Custom("custom.merged_from".into()))
        );
        assert_eq!(KeepDropped::Custom("custom.x".into()).field(), Some("custom.x"));
        assert_eq!(KeepDropped::None.field(), None);
        assert!(
            KeepDropped::parse("custom.Bad Name")
                .unwrap_err()
                .contains("lower-case")
        );
        assert!(KeepDropped::parse("custom.").is_err());
        assert!(
            KeepDropped::parse("email")
                .unwrap_err()
                .contains("note, custom.NAME or none")
        );
    }
}
