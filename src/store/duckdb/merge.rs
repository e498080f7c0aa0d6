//! The merge's statements on DuckDB (see [`crate::store::merge`]): the
//! clusters staged in a temporary table, the survivors updated by one
//! set-based statement, the dropped values collected in another.

use std::sync::Arc;

use arrow::array::{ArrayRef, Int64Array};
use arrow::record_batch::RecordBatch;

use super::DuckDb;
use crate::apply::Master;
use crate::error::Result;
use crate::store::merge::{
    ClusterMember, DroppedValue, MergeDialect, StaleMember, dropped_sql, keep_sql, survivor_update,
};

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
        self.execute_batch(&dropped_sql(&columns, PAIRS, BEFORE, DROPPED))?;
        Ok(survivors)
    }

    pub(crate) fn keep_dropped_in(&self, field: &str, now: i64) -> Result<()> {
        let (update, mark) = keep_sql(field, DROPPED, "make_timestamp(?)");
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
