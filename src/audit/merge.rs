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
use std::sync::Arc;
use std::time::Instant;

use arrow::array::{ArrayRef, Int64Array};
use arrow::record_batch::RecordBatch;
use serde::Serialize;

use crate::apply::commit::now_micros;
use crate::apply::{Ending, Master, end_group, start_group};
use crate::cancel::Cancel;
use crate::error::{Error, Result};
use crate::fields::{FieldKind, KEY_FIELDS, STANDARD_FIELDS, hash_column};
use crate::store::{Store, quote_ident};

/// The staging table of (member, survivor) pairs.
const PAIRS: &str = "kontakt_merge_pairs";
/// The survivors as they were before the merge.
const BEFORE: &str = "kontakt_merge_before";
/// The values that do not survive in their own field.
const DROPPED: &str = "kontakt_merge_dropped";

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

/// One row of `merged.csv`.
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
struct DroppedValue {
    survivor_id: i64,
    /// The survivor itself for its own earlier value (`--master file`).
    merged_id: i64,
    field: String,
    value: String,
    /// The field the value was appended to; empty when only in this file.
    kept_in: String,
}

/// One member of a cluster, as clusters.csv lists it.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
struct Member {
    cluster: i64,
    contact: i64,
    survivor: i64,
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

/// Runs a merge (or its dry run: the same transaction, rolled back).
pub fn run(store: &Store, options: &MergeOptions, cancel: &Cancel) -> Result<MergeSummary> {
    let started = Instant::now();
    let (audit_id, members) = read_audit(&options.audit_dir)?;
    let audit_start: i64 = store
        .connection()
        .query_row(
            "SELECT epoch_us(started_at) FROM audits WHERE id = ?",
            [audit_id],
            |r| r.get(0),
        )
        .map_err(|e| match e {
            duckdb::Error::QueryReturnedNoRows => Error::usage(format!(
                "{}: audit {audit_id} is not an audit of this store",
                options.audit_dir.display()
            )),
            e => store.error(&e),
        })?;
    // An audit merged once lists contacts that are gone or changed: say
    // so, rather than the first stale contact.
    let merged_before: Option<(i64, String)> = store.query_optional(
        "SELECT id, name FROM import_groups WHERE kind = 'merge' AND status = 'completed' \
         AND try_cast(json_extract_string(summary, '$.audit_id') AS BIGINT) = ? ORDER BY id LIMIT 1",
        [audit_id],
        |r| Ok((r.get(0)?, r.get(1)?)),
    )?;
    if let Some((id, group)) = merged_before {
        return Err(Error::usage(format!(
            "{}: audit {audit_id} was already merged by merge group {group:?} (id {id}); run a new audit",
            options.audit_dir.display()
        )));
    }
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
        let id = start_group(store, &name, &options.audit_dir.display().to_string())?;
        store.execute("UPDATE import_groups SET kind = 'merge' WHERE id = ?", [id])?;
        Some(id)
    };
    summary.merge_id = merge_id;
    store.execute_batch("BEGIN TRANSACTION")?;
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
            store.execute_batch("ROLLBACK")?;
            return std::fs::rename(&log_tmp, &log_path).map_err(|e| Error::io(&log_path, e));
        };
        let text = serde_json::to_string_pretty(&summary).expect("a summary serializes");
        store.execute(
            // As for an import, rows_read = updated + skipped: each listed
            // member was merged into its survivor or is the survivor.
            "UPDATE import_groups SET status = 'completed', finished_at = make_timestamp(?), rows_read = ?, \
             updated = ?, skipped = ?, contacts_updated = ?, summary = ? WHERE id = ?",
            duckdb::params![
                now_micros(),
                members.len() as i64,
                summary.contacts_merged as i64,
                members.len() as i64 - summary.contacts_merged as i64,
                summary.survivors as i64,
                text,
                id
            ],
        )?;
        crate::cancel::test_stage("merge_commit");
        armed.disarm_to_commit()?;
        store.execute_batch("COMMIT")?;
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
        // Tried twice: an interrupt just before the disarm fails one statement.
        let _ = store
            .execute_batch("ROLLBACK")
            .or_else(|_| store.execute_batch("ROLLBACK"));
        if let Some(id) = merge_id {
            let _ = end_group(store, id, Ending::of(&e), &e.to_string());
        }
        return Err(e);
    }
    Ok(summary)
}

fn merge(
    store: &Store,
    options: &MergeOptions,
    merge_id: i64,
    audit_start: i64,
    members: &[Member],
    summary: &mut MergeSummary,
) -> Result<Vec<DroppedValue>> {
    store.execute_batch(&format!(
        "CREATE OR REPLACE TEMP TABLE {PAIRS} (contact_id BIGINT, survivor_id BIGINT, cluster BIGINT)"
    ))?;
    let batches = members.chunks(1 << 16).map(|chunk| {
        let column = |f: fn(&Member) -> i64| Arc::new(chunk.iter().map(f).collect::<Int64Array>()) as ArrayRef;
        RecordBatch::try_from_iter([
            ("contact_id", column(|m| m.contact)),
            ("survivor_id", column(|m| m.survivor)),
            ("cluster", column(|m| m.cluster)),
        ])
        .map_err(|e| store.arrow_error(&e))
    });
    store.append_temp(PAIRS, batches)?;
    // The audit must still describe the store.
    let stale: Option<(i64, bool)> = store.query_optional(
        &format!(
            "SELECT p.contact_id, c.id IS NULL FROM {PAIRS} AS p LEFT JOIN contacts AS c ON c.id = p.contact_id \
             WHERE c.id IS NULL OR c.updated_at >= make_timestamp(?) ORDER BY p.contact_id LIMIT 1"
        ),
        [audit_start],
        |r| Ok((r.get(0)?, r.get(1)?)),
    )?;
    if let Some((contact, gone)) = stale {
        return Err(Error::Store {
            path: store.path().display().to_string(),
            message: format!(
                "contact {contact} {} since audit {}; run the audit again",
                if gone { "was deleted" } else { "changed" },
                summary.audit_id
            ),
        });
    }
    let counts: (i64, i64) = store
        .connection()
        .query_row(
            &format!("SELECT count(DISTINCT cluster), count(*) FILTER (WHERE contact_id <> survivor_id) FROM {PAIRS}"),
            [],
            |r| Ok((r.get(0)?, r.get(1)?)),
        )
        .map_err(|e| store.error(&e))?;
    summary.clusters = counts.0 as u64;
    summary.contacts_merged = counts.1 as u64;
    if let KeepDropped::Custom(field) = &options.keep_dropped {
        ensure_custom_column(store, field)?;
    }
    let columns = store.columns("contacts")?;
    store.execute_batch(&format!(
        "CREATE OR REPLACE TEMP TABLE {BEFORE} AS SELECT * FROM contacts \
         WHERE id IN (SELECT survivor_id FROM {PAIRS})"
    ))?;
    summary.survivors = store.execute(&update_sql(options.master, &columns), [now_micros()])? as u64;
    store.execute_batch(&dropped_sql(&columns))?;
    if let Some(field) = options.keep_dropped.field() {
        let (update, mark) = keep_sql(field);
        store.execute(&update, [now_micros()])?;
        store.execute_batch(&mark)?;
    }
    let dropped = read_dropped(store)?;
    summary.values_dropped = dropped.len() as u64;
    store.execute(
        &format!(
            "INSERT INTO merged_contacts SELECT ?, c.id, p.survivor_id, to_json(c) FROM contacts AS c \
             JOIN {PAIRS} AS p ON p.contact_id = c.id WHERE p.contact_id <> p.survivor_id"
        ),
        [merge_id],
    )?;
    store.execute_batch(&format!(
        "DELETE FROM contacts WHERE id IN (SELECT contact_id FROM {PAIRS} WHERE contact_id <> survivor_id); \
         DROP TABLE {PAIRS}; DROP TABLE {BEFORE}; DROP TABLE {DROPPED};"
    ))?;
    Ok(dropped)
}

/// Creates the custom column `--keep-dropped custom.NAME` names if the
/// store lacks it (inside the merge's transaction).
fn ensure_custom_column(store: &Store, field: &str) -> Result<()> {
    if store.columns("contacts")?.iter().any(|c| c == field) {
        return Ok(());
    }
    store.execute_batch(&format!(
        "ALTER TABLE contacts ADD COLUMN {} VARCHAR",
        quote_ident(field)
    ))?;
    let name = field.strip_prefix("custom.").unwrap_or(field);
    store.execute(
        "INSERT INTO custom_fields VALUES (?, make_timestamp(?)) ON CONFLICT DO NOTHING",
        duckdb::params![name, now_micros()],
    )?;
    Ok(())
}

/// The fields whose values can be dropped by a merge, in SPEC order then
/// the custom fields: every field but tags (unioned).
fn mergeable_fields(columns: &[String]) -> Vec<String> {
    STANDARD_FIELDS
        .iter()
        .filter(|f| !matches!(f.kind, FieldKind::Tags))
        .map(|f| f.name.to_string())
        .chain(columns.iter().filter(|c| c.starts_with("custom.")).cloned())
        .collect()
}

/// Fills [`DROPPED`] (after the survivors' update, before the other
/// members are deleted): each non-empty value of a merged contact, or of
/// the survivor before the merge, that differs from the survivor's value
/// now. An `unknown` consent is no value.
fn dropped_sql(columns: &[String]) -> String {
    let selects: Vec<String> = mergeable_fields(columns)
        .iter()
        .enumerate()
        .map(|(position, name)| {
            let q = quote_ident(name);
            let empty = if matches!(name.as_str(), "email_opt_in" | "sms_opt_in") {
                "'unknown'"
            } else {
                "''"
            };
            format!(
                "SELECT m.survivor_id, m.id, {position}, {}, CAST(m.{q} AS VARCHAR) \
                 FROM sources AS m JOIN contacts AS s ON s.id = m.survivor_id \
                 WHERE m.{q} IS NOT NULL AND CAST(m.{q} AS VARCHAR) <> {empty} \
                 AND CAST(m.{q} AS VARCHAR) IS DISTINCT FROM CAST(s.{q} AS VARCHAR)",
                crate::store::literal(name)
            )
        })
        .collect();
    format!(
        "CREATE OR REPLACE TEMP TABLE {DROPPED} (survivor_id BIGINT, merged_id BIGINT, ord INTEGER, \
         field VARCHAR, value VARCHAR, kept_in VARCHAR); \
         INSERT INTO {DROPPED} \
         WITH sources AS ( \
           SELECT p.survivor_id, c.* FROM {PAIRS} AS p JOIN contacts AS c ON c.id = p.contact_id \
           WHERE p.contact_id <> p.survivor_id \
           UNION ALL BY NAME SELECT b.id AS survivor_id, b.* FROM {BEFORE} AS b) \
         SELECT *, NULL FROM ({})",
        selects.join(" UNION ALL ")
    )
}

/// Appends the dropped values (consents aside) to each survivor's `field`,
/// one line per contact they came from: `merged from 2: email=x@y.cz;
/// city=Brno`, and `before merge: ...` for the survivor's own; then marks
/// them kept there.
fn keep_sql(field: &str) -> (String, String) {
    let q = quote_ident(field);
    let target = crate::store::literal(field);
    let keepable = "field NOT IN ('email_opt_in', 'sms_opt_in')";
    let update = format!(
        "UPDATE contacts AS s SET {q} = concat_ws(chr(10), nullif(s.{q}, ''), d.text), \
         updated_at = make_timestamp(?) \
         FROM (SELECT survivor_id, string_agg(line, chr(10) ORDER BY merged_id = survivor_id DESC, merged_id) AS text \
               FROM (SELECT survivor_id, merged_id, \
                       CASE WHEN merged_id = survivor_id THEN 'before merge' ELSE 'merged from ' || merged_id END \
                       || ': ' || string_agg(field || '=' || value, '; ' ORDER BY ord) AS line \
                     FROM {DROPPED} WHERE {keepable} GROUP BY survivor_id, merged_id) \
               GROUP BY survivor_id) AS d \
         WHERE s.id = d.survivor_id"
    );
    let mark = format!("UPDATE {DROPPED} SET kept_in = {target} WHERE {keepable}");
    (update, mark)
}

/// The rows of `merged.csv`, by survivor, then the survivor's own earlier
/// values, then each merged contact, fields in SPEC order.
fn read_dropped(store: &Store) -> Result<Vec<DroppedValue>> {
    let sql = format!(
        "SELECT survivor_id, merged_id, field, value, coalesce(kept_in, '') FROM {DROPPED} \
         ORDER BY survivor_id, merged_id <> survivor_id, merged_id, ord"
    );
    let conn = store.connection();
    let mut statement = conn.prepare(&sql).map_err(|e| store.error(&e))?;
    statement
        .query_map([], |r| {
            Ok(DroppedValue {
                survivor_id: r.get(0)?,
                merged_id: r.get(1)?,
                field: r.get(2)?,
                value: r.get(3)?,
                kept_in: r.get(4)?,
            })
        })
        .and_then(|rows| rows.collect::<std::result::Result<Vec<_>, _>>())
        .map_err(|e| store.error(&e))
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

/// The set-based update of the survivors from their clusters' other
/// members (`d`, aggregated per survivor).
fn update_sql(master: Master, columns: &[String]) -> String {
    let order = match master {
        Master::Existing => "c.created_at, c.id",
        Master::File => "c.created_at DESC, c.id DESC",
    };
    let mut aggregates: Vec<String> = Vec::new();
    let mut set: Vec<String> = Vec::new();
    let plain = STANDARD_FIELDS
        .iter()
        .filter(|f| !matches!(f.kind, FieldKind::Tags | FieldKind::Consent))
        .map(|f| f.name.to_string())
        .chain(columns.iter().filter(|c| c.starts_with("custom.")).cloned());
    for name in plain {
        let q = quote_ident(&name);
        aggregates.push(format!(
            "first(c.{q} ORDER BY {order}) FILTER (WHERE c.{q} IS NOT NULL) AS {q}"
        ));
        let (value, from_d) = match master {
            Master::Existing => (format!("coalesce(s.{q}, d.{q})"), format!("s.{q} IS NULL")),
            Master::File => (format!("coalesce(d.{q}, s.{q})"), format!("d.{q} IS NOT NULL")),
        };
        set.push(format!("{q} = {value}"));
        if KEY_FIELDS.contains(&name.as_str()) {
            let h = quote_ident(&hash_column(&name));
            aggregates.push(format!(
                "first(c.{h} ORDER BY {order}) FILTER (WHERE c.{q} IS NOT NULL) AS {h}"
            ));
            set.push(format!("{h} = CASE WHEN {from_d} THEN d.{h} ELSE s.{h} END"));
        }
    }
    aggregates.push("list_sort(list_distinct(flatten(list(c.tags)))) AS tags".to_string());
    set.push("tags = list_concat(s.tags, list_filter(d.tags, x -> NOT list_contains(s.tags, x)))".to_string());
    for consent in ["email_opt_in", "sms_opt_in"] {
        aggregates.push(format!(
            "bool_or(c.{consent} = 'opt-out') AS {consent}_out, bool_or(c.{consent} = 'opt-in') AS {consent}_in"
        ));
        set.push(format!(
            "{consent} = CASE WHEN s.{consent} = 'opt-out' OR d.{consent}_out THEN 'opt-out' \
             WHEN s.{consent} = 'opt-in' OR d.{consent}_in THEN 'opt-in' ELSE 'unknown' END"
        ));
    }
    format!(
        "UPDATE contacts AS s SET {}, updated_at = make_timestamp(?) \
         FROM (SELECT p.survivor_id, {} FROM {PAIRS} AS p JOIN contacts AS c ON c.id = p.contact_id \
               WHERE p.contact_id <> p.survivor_id GROUP BY p.survivor_id) AS d \
         WHERE s.id = d.survivor_id",
        set.join(", "),
        aggregates.join(", ")
    )
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

    #[test]
    fn every_field_but_tags_can_be_dropped_custom_fields_last() {
        let columns = ["id", "email", "custom.shoe_size", "email_hash"].map(String::from);
        let fields = mergeable_fields(&columns);
        assert_eq!(fields.first().map(String::as_str), Some("external_id"));
        assert_eq!(fields.last().map(String::as_str), Some("custom.shoe_size"));
        assert!(!fields.iter().any(|f| f == "tags" || f == "id" || f.ends_with("_hash")));
        assert!(fields.iter().any(|f| f == "email_opt_in"));
    }
}
