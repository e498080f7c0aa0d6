//! The merge's statements on PostgreSQL (see [`crate::store::merge`]), as
//! the DuckDB backend's: the clusters staged in a temporary table, the
//! survivors updated by one set-based statement, the dropped values
//! collected in another, the undo record kept (`undo.rs`).

use std::sync::Arc;

use arrow::array::{ArrayRef, Int64Array};
use arrow::record_batch::RecordBatch;

use super::Postgres;
use super::groups::timestamp;
use crate::apply::Master;
use crate::error::Result;
use crate::store::merge::{
    ClusterMember, DroppedValue, MergeDialect, StaleMember, dropped_sql, keep_sql, survivor_update,
};

const PAIRS: &str = "kontakt_merge_pairs";
const BEFORE: &str = "kontakt_merge_before";
const DROPPED: &str = "kontakt_merge_dropped";

impl Postgres {
    pub(crate) fn audit_started(&self, audit_id: i64) -> Result<Option<i64>> {
        Ok(self
            .query_opt(
                "SELECT (extract(epoch FROM started_at) * 1000000)::bigint FROM audits WHERE id = $1",
                &[&audit_id],
            )?
            .map(|r| r.get(0)))
    }

    pub(crate) fn merge_of_audit(&self, audit_id: i64) -> Result<Option<(i64, String)>> {
        Ok(self
            .query_opt(
                "SELECT id, name FROM import_groups WHERE kind = 'merge' AND status = 'completed' \
                 AND (summary::jsonb ->> 'audit_id') = $1::bigint::text ORDER BY id LIMIT 1",
                &[&audit_id],
            )?
            .map(|r| (r.get(0), r.get(1))))
    }

    pub(crate) fn stage_merge(&self, members: &[ClusterMember]) -> Result<()> {
        self.batch(&format!(
            "DROP TABLE IF EXISTS {PAIRS}; CREATE TEMP TABLE {PAIRS} (contact_id bigint, survivor_id bigint, cluster bigint)"
        ))?;
        for chunk in members.chunks(1 << 16) {
            let column =
                |f: fn(&ClusterMember) -> i64| Arc::new(chunk.iter().map(f).collect::<Int64Array>()) as ArrayRef;
            let batch = RecordBatch::try_from_iter([
                ("contact_id", column(|m| m.contact)),
                ("survivor_id", column(|m| m.survivor)),
                ("cluster", column(|m| m.cluster)),
            ])
            .map_err(|e| self.error_message(e.to_string()))?;
            self.copy_in(PAIRS, "contact_id, survivor_id, cluster", &batch)?;
        }
        self.batch(&format!("ANALYZE {PAIRS}"))
    }

    pub(crate) fn first_stale_member(&self, audit_start: i64) -> Result<Option<StaleMember>> {
        Ok(self
            .query_opt(
                &format!(
                    "SELECT p.contact_id, c.id IS NULL FROM {PAIRS} AS p LEFT JOIN contacts AS c ON c.id = p.contact_id \
                     WHERE c.id IS NULL OR c.updated_at >= {} ORDER BY p.contact_id LIMIT 1",
                    timestamp(1)
                ),
                &[&audit_start],
            )?
            .map(|r| StaleMember {
                contact: r.get(0),
                deleted: r.get(1),
            }))
    }

    pub(crate) fn merge_counts(&self) -> Result<(u64, u64)> {
        let row = self
            .query_opt(
                &format!(
                    "SELECT count(DISTINCT cluster), count(*) FILTER (WHERE contact_id <> survivor_id) FROM {PAIRS}"
                ),
                &[],
            )?
            .ok_or_else(|| self.error_message("no merge counts"))?;
        Ok((row.get::<_, i64>(0) as u64, row.get::<_, i64>(1) as u64))
    }

    pub(crate) fn merge_survivors(&self, master: Master, now: i64) -> Result<u64> {
        let columns = self.columns("contacts")?;
        self.batch(&format!(
            "DROP TABLE IF EXISTS {BEFORE}; CREATE TEMP TABLE {BEFORE} AS SELECT * FROM contacts \
             WHERE id IN (SELECT survivor_id FROM {PAIRS})"
        ))?;
        let survivors = self.execute(&update_sql(master, &columns), &[&now])?;
        self.batch(&dropped_sql(&columns, PAIRS, BEFORE, DROPPED))?;
        Ok(survivors)
    }

    pub(crate) fn keep_dropped_in(&self, field: &str, now: i64) -> Result<()> {
        let (update, mark) = keep_sql(field, DROPPED, &timestamp(1));
        self.execute(&update, &[&now])?;
        self.batch(&mark)
    }

    pub(crate) fn dropped_values(&self) -> Result<Vec<DroppedValue>> {
        Ok(self
            .query(
                &format!(
                    "SELECT survivor_id, merged_id, field, value, coalesce(kept_in, '') FROM {DROPPED} \
                     ORDER BY survivor_id, merged_id <> survivor_id, merged_id, ord"
                ),
                &[],
            )?
            .iter()
            .map(|r| DroppedValue {
                survivor_id: r.get(0),
                merged_id: r.get(1),
                field: r.get(2),
                value: r.get(3),
                kept_in: r.get(4),
            })
            .collect())
    }

    pub(crate) fn delete_merged(&self, merge_id: i64) -> Result<()> {
        self.record_merge(merge_id, BEFORE, PAIRS)?;
        self.move_memberships(merge_id)?;
        self.execute(
            &format!(
                "INSERT INTO merged_contacts SELECT $1, c.id, p.survivor_id, to_json(c)::text FROM contacts AS c \
                 JOIN {PAIRS} AS p ON p.contact_id = c.id WHERE p.contact_id <> p.survivor_id"
            ),
            &[&merge_id],
        )?;
        self.batch(&format!(
            "DELETE FROM contacts WHERE id IN (SELECT contact_id FROM {PAIRS} WHERE contact_id <> survivor_id); \
             DROP TABLE {PAIRS}; DROP TABLE {BEFORE}; DROP TABLE {DROPPED};"
        ))
    }

    /// The merged contacts' list memberships go to their survivors (the
    /// earliest added one per list, where the survivor is not a member).
    /// What was moved and what was added is kept for the undo.
    fn move_memberships(&self, merge_id: i64) -> Result<()> {
        // DuckDB's `arg_min(x, added_at)`: the earliest non-null value.
        let first = |column: &str| {
            format!("(array_agg(m.{column} ORDER BY m.added_at) FILTER (WHERE m.{column} IS NOT NULL))[1] AS {column}")
        };
        self.batch(&format!(
            "DROP TABLE IF EXISTS kontakt_merge_moved; \
             CREATE TEMP TABLE kontakt_merge_moved AS \
             SELECT m.list_id, p.survivor_id AS contact_id, {}, {}, {}, min(m.added_at) AS added_at, {} \
             FROM list_members AS m JOIN {PAIRS} AS p ON p.contact_id = m.contact_id \
             WHERE p.contact_id <> p.survivor_id AND NOT EXISTS \
               (SELECT 1 FROM list_members AS s WHERE s.list_id = m.list_id AND s.contact_id = p.survivor_id) \
             GROUP BY m.list_id, p.survivor_id;",
            first("status"),
            first("agent"),
            first("callback_at"),
            first("import_id")
        ))?;
        self.record_memberships(merge_id, PAIRS, "kontakt_merge_moved")?;
        self.batch(&format!(
            "DELETE FROM list_members WHERE contact_id IN \
               (SELECT contact_id FROM {PAIRS} WHERE contact_id <> survivor_id); \
             INSERT INTO list_members (list_id, contact_id, status, agent, callback_at, added_at, import_id) \
               SELECT list_id, contact_id, status, agent, callback_at, added_at, import_id FROM kontakt_merge_moved; \
             DROP TABLE kontakt_merge_moved;"
        ))
    }
}

/// The survivors' update in PostgreSQL's words: the merged contacts' tags
/// each once, sorted by bytes as DuckDB sorts them.
fn update_sql(master: Master, columns: &[String]) -> String {
    survivor_update(
        master,
        columns,
        PAIRS,
        &MergeDialect {
            first: |q, order, filter| format!("(array_agg(c.{q} ORDER BY {order}) FILTER (WHERE {filter}))[1]"),
            tags: "coalesce(array_agg(DISTINCT t.tag COLLATE \"C\" ORDER BY t.tag COLLATE \"C\") \
                   FILTER (WHERE t.tag IS NOT NULL), '{}') AS tags",
            add_tags: "s.tags || ARRAY(SELECT x FROM unnest(d.tags) WITH ORDINALITY AS u(x, n) \
                       WHERE x <> ALL(s.tags) ORDER BY n)",
            join: " LEFT JOIN LATERAL unnest(c.tags) AS t(tag) ON true",
            now: timestamp(1),
        },
    )
}
