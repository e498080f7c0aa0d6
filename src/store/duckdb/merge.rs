//! The merge's statements on DuckDB (see [`crate::store::merge`]): the
//! clusters staged in a temporary table, the survivors updated by one
//! set-based statement, the dropped values collected in another.

use std::sync::Arc;

use arrow::array::{ArrayRef, Int64Array};
use arrow::record_batch::RecordBatch;

use super::{DuckDb, literal, quote_ident};
use crate::apply::Master;
use crate::error::Result;
use crate::store::merge::{ClusterMember, DroppedValue, MergeDialect, StaleMember, mergeable_fields, survivor_update};

/// The staging table of (member, survivor) pairs.
const PAIRS: &str = "kontakt_merge_pairs";
/// The survivors as they were before the merge.
const BEFORE: &str = "kontakt_merge_before";
/// The values that do not survive in their own field.
const DROPPED: &str = "kontakt_merge_dropped";

impl DuckDb {
    pub(crate) fn audit_started(&self, audit_id: i64) -> Result<Option<i64>> {
        self.query_optional(
            "SELECT epoch_us(started_at) FROM audits WHERE id = ?",
            [audit_id],
            |r| r.get(0),
        )
    }

    pub(crate) fn merge_of_audit(&self, audit_id: i64) -> Result<Option<(i64, String)>> {
        self.query_optional(
            "SELECT id, name FROM import_groups WHERE kind = 'merge' AND status = 'completed' \
             AND try_cast(json_extract_string(summary, '$.audit_id') AS BIGINT) = ? ORDER BY id LIMIT 1",
            [audit_id],
            |r| Ok((r.get(0)?, r.get(1)?)),
        )
    }

    pub(crate) fn stage_merge(&self, members: &[ClusterMember]) -> Result<()> {
        self.execute_batch(&format!(
            "CREATE OR REPLACE TEMP TABLE {PAIRS} (contact_id BIGINT, survivor_id BIGINT, cluster BIGINT)"
        ))?;
        let batches = members.chunks(1 << 16).map(|chunk| {
            let column =
                |f: fn(&ClusterMember) -> i64| Arc::new(chunk.iter().map(f).collect::<Int64Array>()) as ArrayRef;
            RecordBatch::try_from_iter([
                ("contact_id", column(|m| m.contact)),
                ("survivor_id", column(|m| m.survivor)),
                ("cluster", column(|m| m.cluster)),
            ])
            .map_err(|e| self.arrow_error(&e))
        });
        self.append_temp(PAIRS, batches)
    }

    pub(crate) fn first_stale_member(&self, audit_start: i64) -> Result<Option<StaleMember>> {
        self.query_optional(
            &format!(
                "SELECT p.contact_id, c.id IS NULL FROM {PAIRS} AS p LEFT JOIN contacts AS c ON c.id = p.contact_id \
                 WHERE c.id IS NULL OR c.updated_at >= make_timestamp(?) ORDER BY p.contact_id LIMIT 1"
            ),
            [audit_start],
            |r| {
                Ok(StaleMember {
                    contact: r.get(0)?,
                    deleted: r.get(1)?,
                })
            },
        )
    }

    pub(crate) fn merge_counts(&self) -> Result<(u64, u64)> {
        let counts: (i64, i64) = self
            .connection()
            .query_row(
                &format!(
                    "SELECT count(DISTINCT cluster), count(*) FILTER (WHERE contact_id <> survivor_id) FROM {PAIRS}"
                ),
                [],
                |r| Ok((r.get(0)?, r.get(1)?)),
            )
            .map_err(|e| self.error(&e))?;
        Ok((counts.0 as u64, counts.1 as u64))
    }

    /// Keeps the survivors as they were (in a temporary table), updates
    /// them in one statement, then fills the dropped values' table.
    pub(crate) fn merge_survivors(&self, master: Master, now: i64) -> Result<u64> {
        let columns = self.columns("contacts")?;
        self.execute_batch(&format!(
            "CREATE OR REPLACE TEMP TABLE {BEFORE} AS SELECT * FROM contacts \
             WHERE id IN (SELECT survivor_id FROM {PAIRS})"
        ))?;
        let survivors = self.execute(&update_sql(master, &columns), [now])? as u64;
        self.execute_batch(&dropped_sql(&columns))?;
        Ok(survivors)
    }

    pub(crate) fn keep_dropped_in(&self, field: &str, now: i64) -> Result<()> {
        let (update, mark) = keep_sql(field);
        self.execute(&update, [now])?;
        self.execute_batch(&mark)
    }

    pub(crate) fn dropped_values(&self) -> Result<Vec<DroppedValue>> {
        let sql = format!(
            "SELECT survivor_id, merged_id, field, value, coalesce(kept_in, '') FROM {DROPPED} \
             ORDER BY survivor_id, merged_id <> survivor_id, merged_id, ord"
        );
        let conn = self.connection();
        let mut statement = conn.prepare(&sql).map_err(|e| self.error(&e))?;
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
            .map_err(|e| self.error(&e))
    }

    pub(crate) fn delete_merged(&self, merge_id: i64) -> Result<()> {
        self.record_merge(merge_id, BEFORE, PAIRS)?;
        self.move_memberships(merge_id, PAIRS)?;
        self.execute(
            &format!(
                "INSERT INTO merged_contacts SELECT ?, c.id, p.survivor_id, to_json(c) FROM contacts AS c \
                 JOIN {PAIRS} AS p ON p.contact_id = c.id WHERE p.contact_id <> p.survivor_id"
            ),
            [merge_id],
        )?;
        self.execute_batch(&format!(
            "DELETE FROM contacts WHERE id IN (SELECT contact_id FROM {PAIRS} WHERE contact_id <> survivor_id); \
             DROP TABLE {PAIRS}; DROP TABLE {BEFORE}; DROP TABLE {DROPPED};"
        ))
    }
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
                literal(name)
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
    let target = literal(field);
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

/// The survivors' update in DuckDB's words.
fn update_sql(master: Master, columns: &[String]) -> String {
    survivor_update(
        master,
        columns,
        PAIRS,
        &MergeDialect {
            first: |q, order, filter| format!("first(c.{q} ORDER BY {order}) FILTER (WHERE {filter})"),
            tags: "list_sort(list_distinct(flatten(list(c.tags)))) AS tags",
            add_tags: "list_concat(s.tags, list_filter(d.tags, x -> NOT list_contains(s.tags, x)))",
            join: "",
            now: "make_timestamp(?)".to_string(),
        },
    )
}
