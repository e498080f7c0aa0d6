//! What a merge needs from the store (see [`crate::audit::merge`]): the
//! audit it merges, the clusters staged, the survivors updated from their
//! clusters, the values that did not survive, the other members kept and
//! deleted, all in the merge's one transaction.

use serde::Serialize;

use super::{Backend, Store};
use crate::apply::Master;
use crate::error::Result;
use crate::fields::{FieldKind, STANDARD_FIELDS};

/// One member of a cluster, as an audit's clusters.csv lists it.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct ClusterMember {
    pub cluster: i64,
    pub contact: i64,
    pub survivor: i64,
}

/// A staged member that no longer matches its audit.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct StaleMember {
    pub contact: i64,
    /// Deleted (else changed) since the audit began.
    pub deleted: bool,
}

/// One value that did not survive a merge in its own field: a row of
/// `merged.csv`.
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
pub struct DroppedValue {
    pub survivor_id: i64,
    /// The survivor itself for its own earlier value (`--master file`).
    pub merged_id: i64,
    pub field: String,
    pub value: String,
    /// The field the value was appended to; empty when only in the file.
    pub kept_in: String,
}

/// The fields whose values can be dropped by a merge, in SPEC order then
/// the custom fields among `columns`: every field but tags (unioned).
pub(crate) fn mergeable_fields(columns: &[String]) -> Vec<String> {
    STANDARD_FIELDS
        .iter()
        .filter(|f| !matches!(f.kind, FieldKind::Tags))
        .map(|f| f.name.to_string())
        .chain(columns.iter().filter(|c| c.starts_with("custom.")).cloned())
        .collect()
}

/// How a backend writes the parts of the survivors' update that differ
/// by dialect ([`survivor_update`]).
pub(crate) struct MergeDialect {
    /// The first value of `c.{q}` (the quoted column) in the order
    /// `{order}` among the rows where `{filter}` holds, from the three;
    /// e.g. DuckDB's `first(c.{q} ORDER BY {order}) FILTER (WHERE {filter})`.
    pub(crate) first: fn(&str, &str, &str) -> String,
    /// The aggregate of the members' tags, each once, sorted, `AS tags`.
    pub(crate) tags: &'static str,
    /// The survivor's tags with the members' added.
    pub(crate) add_tags: &'static str,
    /// Joined after the members' contacts `c` (PostgreSQL's tags unnested).
    pub(crate) join: &'static str,
    /// The time of the update, from the statement's one parameter.
    pub(crate) now: String,
}

/// The set-based update of the survivors from their clusters' other
/// members (`d`, aggregated per survivor): per field the first value in
/// `--master`'s order, key hashes with their values, tags unioned,
/// consents never upgraded (an opt-out wins). `pairs` is the staged
/// table of (contact, survivor, cluster).
pub(crate) fn survivor_update(master: Master, columns: &[String], pairs: &str, dialect: &MergeDialect) -> String {
    use crate::fields::{KEY_FIELDS, hash_column};
    use crate::store::sql::quote_ident;

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
        let filter = format!("c.{q} IS NOT NULL");
        aggregates.push(format!("{} AS {q}", (dialect.first)(&q, order, &filter)));
        let (value, from_d) = match master {
            Master::Existing => (format!("coalesce(s.{q}, d.{q})"), format!("s.{q} IS NULL")),
            Master::File => (format!("coalesce(d.{q}, s.{q})"), format!("d.{q} IS NOT NULL")),
        };
        set.push(format!("{q} = {value}"));
        if KEY_FIELDS.contains(&name.as_str()) {
            let h = quote_ident(&hash_column(&name));
            aggregates.push(format!("{} AS {h}", (dialect.first)(&h, order, &filter)));
            set.push(format!("{h} = CASE WHEN {from_d} THEN d.{h} ELSE s.{h} END"));
        }
    }
    aggregates.push(dialect.tags.to_string());
    set.push(format!("tags = {}", dialect.add_tags));
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
        "UPDATE contacts AS s SET {}, updated_at = {} \
         FROM (SELECT p.survivor_id, {} FROM {pairs} AS p JOIN contacts AS c ON c.id = p.contact_id{} \
               WHERE p.contact_id <> p.survivor_id GROUP BY p.survivor_id) AS d \
         WHERE s.id = d.survivor_id",
        set.join(", "),
        dialect.now,
        aggregates.join(", "),
        dialect.join
    )
}

/// The values each survivor's merged contacts (and its own earlier self,
/// kept in `before`) had that it does not keep, into the temporary table
/// `dropped` (survivor_id, merged_id, ord, field, value, kept_in). SQL
/// that DuckDB and PostgreSQL read alike.
pub(crate) fn dropped_sql(columns: &[String], pairs: &str, before: &str, dropped: &str) -> String {
    use crate::store::sql::{literal, quote_ident};

    let fields = mergeable_fields(columns);
    let quoted: Vec<String> = fields.iter().map(|f| quote_ident(f)).collect();
    let selects: Vec<String> = fields
        .iter()
        .zip(&quoted)
        .enumerate()
        .map(|(position, (name, q))| {
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
    let of = |alias: &str| {
        quoted
            .iter()
            .map(|q| format!("{alias}.{q}"))
            .collect::<Vec<_>>()
            .join(", ")
    };
    format!(
        "DROP TABLE IF EXISTS {dropped}; \
         CREATE TEMP TABLE {dropped} (survivor_id BIGINT, merged_id BIGINT, ord INTEGER, \
         field VARCHAR, value VARCHAR, kept_in VARCHAR); \
         INSERT INTO {dropped} \
         WITH sources AS ( \
           SELECT p.survivor_id, c.id, {} FROM {pairs} AS p JOIN contacts AS c ON c.id = p.contact_id \
           WHERE p.contact_id <> p.survivor_id \
           UNION ALL SELECT b.id AS survivor_id, b.id, {} FROM {before} AS b) \
         SELECT *, NULL FROM ({}) AS d",
        of("c"),
        of("b"),
        selects.join(" UNION ALL ")
    )
}

/// `--keep-dropped FIELD`: the statement that appends each survivor's
/// dropped values (but consents) to `FIELD` (a line per merged contact,
/// `merged from 7: email=…; phone=…`, its own earlier values first as
/// `before merge: …`), at the time `now` (the dialect's expression of the
/// statement's one parameter); then the one that marks them kept there.
pub(crate) fn keep_sql(field: &str, dropped: &str, now: &str) -> (String, String) {
    use crate::store::sql::{literal, quote_ident};

    let q = quote_ident(field);
    let keepable = "field NOT IN ('email_opt_in', 'sms_opt_in')";
    let update = format!(
        "UPDATE contacts AS s SET {q} = concat_ws(chr(10), nullif(s.{q}, ''), d.text), updated_at = {now} \
         FROM (SELECT survivor_id, string_agg(line, chr(10) ORDER BY merged_id = survivor_id DESC, merged_id) AS text \
               FROM (SELECT survivor_id, merged_id, \
                       CASE WHEN merged_id = survivor_id THEN 'before merge' ELSE 'merged from ' || merged_id END \
                       || ': ' || string_agg(field || '=' || value, '; ' ORDER BY ord) AS line \
                     FROM {dropped} WHERE {keepable} GROUP BY survivor_id, merged_id) AS l \
               GROUP BY survivor_id) AS d \
         WHERE s.id = d.survivor_id"
    );
    let mark = format!("UPDATE {dropped} SET kept_in = {} WHERE {keepable}", literal(field));
    (update, mark)
}

impl Store {
    /// When audit `audit_id` began (microseconds); `None` when the store
    /// has no such audit.
    pub fn audit_started(&self, audit_id: i64) -> Result<Option<i64>> {
        dispatch!(self, db => db.audit_started(audit_id))
    }

    /// The completed merge group (id, name) that merged audit `audit_id`,
    /// if any (the first).
    pub fn merge_of_audit(&self, audit_id: i64) -> Result<Option<(i64, String)>> {
        dispatch!(self, db => db.merge_of_audit(audit_id))
    }

    /// Stages the clusters' members for the statements that follow.
    pub fn stage_merge(&self, members: &[ClusterMember]) -> Result<()> {
        dispatch!(self, db => db.stage_merge(members))
    }

    /// The first staged member (by contact id) deleted or changed since
    /// `audit_start` (microseconds), if any.
    pub fn first_stale_member(&self, audit_start: i64) -> Result<Option<StaleMember>> {
        dispatch!(self, db => db.first_stale_member(audit_start))
    }

    /// The staged clusters, and the members to merge (not survivors).
    pub fn merge_counts(&self) -> Result<(u64, u64)> {
        dispatch!(self, db => db.merge_counts())
    }

    /// Updates each survivor from its cluster's other members as `master`
    /// says (tags unioned, a consent never upgraded), `updated_at` = `now`,
    /// and notes every value that does not survive in its own field.
    /// Returns the survivors updated.
    pub fn merge_survivors(&self, master: Master, now: i64) -> Result<u64> {
        dispatch!(self, db => db.merge_survivors(master, now))
    }

    /// Appends the dropped values (consents aside) to each survivor's
    /// `field`, one line per contact they came from (`merged from 2:
    /// email=x@y.cz; city=Brno`, `before merge: ...` for the survivor's
    /// own), and marks them kept there.
    pub fn keep_dropped_in(&self, field: &str, now: i64) -> Result<()> {
        dispatch!(self, db => db.keep_dropped_in(field, now))
    }

    /// The values that did not survive, by survivor, then the survivor's
    /// own earlier values, then each merged contact, fields in SPEC order.
    pub fn dropped_values(&self) -> Result<Vec<DroppedValue>> {
        dispatch!(self, db => db.dropped_values())
    }

    /// Keeps each merged member as JSON beside its survivor and merge
    /// `merge_id`, then deletes it; the staging is dropped.
    pub fn delete_merged(&self, merge_id: i64) -> Result<()> {
        dispatch!(self, db => db.delete_merged(merge_id))
    }
}

#[cfg(test)]
mod tests {
    use super::*;

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
