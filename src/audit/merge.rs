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
//! audit again).

use std::path::{Path, PathBuf};
use std::sync::Arc;
use std::time::Instant;

use duckdb::arrow::array::{ArrayRef, Int64Array};
use duckdb::arrow::record_batch::RecordBatch;
use serde::Serialize;

use crate::apply::commit::now_micros;
use crate::apply::{Ending, Master, end_group, start_group};
use crate::error::{Error, Result};
use crate::fields::{FieldKind, KEY_FIELDS, STANDARD_FIELDS, hash_column};
use crate::store::{Store, quote_ident};

/// The staging table of (member, survivor) pairs.
const PAIRS: &str = "kontakt_merge_pairs";

#[derive(Debug, Clone)]
pub struct MergeOptions {
    pub audit_dir: PathBuf,
    pub master: Master,
    pub dry_run: bool,
    /// Default: `merge-audit-<audit id>`.
    pub name: Option<String>,
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
    pub elapsed_ms: u64,
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
pub fn run(store: &Store, options: &MergeOptions) -> Result<MergeSummary> {
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
    let name = options
        .name
        .clone()
        .unwrap_or_else(|| format!("merge-audit-{audit_id}"));
    let mut summary = MergeSummary {
        merge_id: None,
        name: name.clone(),
        audit_id,
        dry_run: options.dry_run,
        clusters: 0,
        survivors: 0,
        contacts_merged: 0,
        elapsed_ms: 0,
    };
    let merge_id = if options.dry_run {
        None
    } else {
        let id = start_group(store, &name, &options.audit_dir.display().to_string())?;
        store.execute("UPDATE import_groups SET kind = 'merge' WHERE id = ?", [id])?;
        Some(id)
    };
    summary.merge_id = merge_id;
    store.execute_batch("BEGIN TRANSACTION")?;
    let result = merge(
        store,
        options,
        merge_id.unwrap_or(0),
        audit_start,
        &members,
        &mut summary,
    );
    summary.elapsed_ms = started.elapsed().as_millis() as u64;
    let ended = result.and_then(|()| {
        let Some(id) = merge_id else {
            return store.execute_batch("ROLLBACK");
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
        store.execute_batch("COMMIT")
    });
    if let Err(e) = ended {
        let _ = store.execute_batch("ROLLBACK");
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
) -> Result<()> {
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
    let columns = store.columns("contacts")?;
    summary.survivors = store.execute(&update_sql(options.master, &columns), [now_micros()])? as u64;
    store.execute(
        &format!(
            "INSERT INTO merged_contacts SELECT ?, c.id, p.survivor_id, to_json(c) FROM contacts AS c \
             JOIN {PAIRS} AS p ON p.contact_id = c.id WHERE p.contact_id <> p.survivor_id"
        ),
        [merge_id],
    )?;
    store.execute_batch(&format!(
        "DELETE FROM contacts WHERE id IN (SELECT contact_id FROM {PAIRS} WHERE contact_id <> survivor_id); \
         DROP TABLE {PAIRS};"
    ))
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
