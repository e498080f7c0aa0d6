//! The audit's statements on DuckDB (see [`crate::store::audit`]): one scan
//! of the key hash columns, the candidates' values through an id bitmap,
//! and the `--since-last` universe built in temporary tables.

use std::sync::Arc;

use arrow::array::{ArrayRef, AsArray, Int64Array, UInt32Array};
use arrow::datatypes::Int64Type;
use arrow::record_batch::RecordBatch;

use super::{DuckDb, IdBitmap, literal, quote_ident};
use crate::error::Result;
use crate::fields::hash_column;
use crate::map::ContactType;
use crate::store::audit::{AffectedUniverse, AuditRecord, AuditScope, ClusterChunk, PreviousAudit, UntouchedClusters};

/// Temporary tables of one audit (dropped before commit).
const FETCH: &str = "kontakt_audit_fetch";
const UNIVERSE: &str = "kontakt_audit_universe";
const CHANGED: &str = "kontakt_audit_changed";
const GONE: &str = "kontakt_audit_gone";
const TOUCHED: &str = "kontakt_audit_touched";

/// The type filter of an audit, as SQL on `contacts`.
fn type_filter(contact_type: Option<ContactType>) -> String {
    contact_type.map_or_else(|| "true".to_string(), |t| format!("type = '{}'", t.name()))
}

impl DuckDb {
    pub(crate) fn next_audit_id(&self) -> Result<i64> {
        self.query_i64("SELECT nextval('audit_id_seq')", [])
    }

    pub(crate) fn latest_audit(&self, scope: &str) -> Result<Option<PreviousAudit>> {
        self.query_optional(
            "SELECT id, epoch_us(started_at), next_contact_id, all_contacts FROM audits \
             WHERE scope = ? ORDER BY id DESC LIMIT 1",
            [scope],
            |r| {
                Ok(PreviousAudit {
                    id: r.get(0)?,
                    started: r.get(1)?,
                    next_contact_id: r.get(2)?,
                    all_contacts: r.get(3)?,
                })
            },
        )
    }

    /// Builds the universe in a temporary table (an id may be in it more
    /// than once: every use is a semi-join or a bitmap, and a UNION's
    /// duplicate removal costs more than the scan), and its bitmap.
    pub(crate) fn find_affected(&self, scope: &AuditScope, previous: &PreviousAudit) -> Result<AffectedUniverse> {
        let types = type_filter(scope.contact_type);
        let keys = scope.keys;
        let scope = literal(scope.name);
        let since = format!("make_timestamp({})", previous.started);
        let hashes: Vec<String> = keys.iter().map(|k| hash_column(k)).collect();
        self.execute_batch(&format!(
            "CREATE OR REPLACE TEMP TABLE {CHANGED} AS SELECT id, {} FROM contacts \
             WHERE {types} AND updated_at >= {since}",
            hashes.join(", ")
        ))?;
        // Members of the old clusters that left the scope: deleted, or (only a
        // changed contact can be) now of another type. Ids are never reused, so
        // when the store still holds as many contacts below the previous
        // audit's next id as it had, nothing was deleted and the anti-join of
        // every member with the store is not needed.
        let members = format!("SELECT contact_id FROM audit_members WHERE scope = {scope}");
        let nothing_deleted = match (previous.next_contact_id, previous.all_contacts) {
            (Some(next), Some(all)) => self.query_i64("SELECT count(*) FROM contacts WHERE id < ?", [next])? == all,
            _ => false,
        };
        let gone = if nothing_deleted {
            format!("SELECT id FROM contacts WHERE updated_at >= {since} AND NOT ({types}) AND id IN ({members})")
        } else {
            format!(
                "SELECT m.contact_id AS id FROM ({members}) AS m \
                 ANTI JOIN (SELECT id FROM contacts WHERE {types}) AS c ON c.id = m.contact_id"
            )
        };
        // Contacts sharing a key value (hash) with a changed one, in one scan of
        // the hash columns. (An unchanged contact sharing one with an unchanged
        // member of a touched cluster was in that cluster already.)
        let sharing: Vec<String> = hashes
            .iter()
            .map(|h| format!("{h} IN (SELECT {h} FROM {CHANGED})"))
            .collect();
        self.execute_batch(&format!(
            "CREATE OR REPLACE TEMP TABLE {GONE} AS {gone};
             CREATE OR REPLACE TEMP TABLE {TOUCHED} AS \
               SELECT DISTINCT cluster FROM audit_members WHERE scope = {scope} \
               AND contact_id IN (SELECT id FROM {CHANGED} UNION ALL SELECT id FROM {GONE});
             CREATE OR REPLACE TEMP TABLE {UNIVERSE} AS \
               SELECT id FROM {CHANGED} \
               UNION ALL SELECT contact_id FROM audit_members \
                 WHERE scope = {scope} AND cluster IN (SELECT cluster FROM {TOUCHED}) \
                 AND contact_id NOT IN (SELECT id FROM {GONE}) \
               UNION ALL SELECT id FROM contacts WHERE {types} AND ({});
             INSERT INTO {UNIVERSE} \
               SELECT contact_id FROM audit_members WHERE scope = {scope} \
               AND cluster IN (SELECT cluster FROM audit_members WHERE scope = {scope} \
                               AND contact_id IN (SELECT id FROM {UNIVERSE})) \
               AND contact_id NOT IN (SELECT id FROM {UNIVERSE}) \
               AND contact_id NOT IN (SELECT id FROM {GONE});
             INSERT INTO {TOUCHED} \
               SELECT DISTINCT cluster FROM audit_members WHERE scope = {scope} \
               AND contact_id IN (SELECT id FROM {UNIVERSE}) \
               AND cluster NOT IN (SELECT cluster FROM {TOUCHED});",
            sharing.join(" OR ")
        ))?;
        let changed = self.query_i64(&format!("SELECT count(*) FROM {CHANGED}"), [])?;
        let gone = self.query_i64(&format!("SELECT count(*) FROM {GONE}"), [])?;
        Ok(AffectedUniverse {
            changed: changed as u64,
            deleted: gone as u64,
            bitmap: IdBitmap::of(self, UNIVERSE)?,
        })
    }

    /// One scan of the contacts the filter selects (the scope's type, or the
    /// universe's ids through its bitmap).
    pub(crate) fn scan_audit_keys(
        &self,
        scope: &AuditScope,
        universe: Option<AffectedUniverse>,
    ) -> Result<Vec<RecordBatch>> {
        let hashes: Vec<String> = scope.keys.iter().map(|k| hash_column(k)).collect();
        let (filter, extra) = match &universe {
            Some(universe) => (
                IdBitmap::filter_or_semi_join(universe.bitmap.as_ref(), "c.id", UNIVERSE),
                format!(", {}", self.value_columns(scope)?),
            ),
            None => (type_filter(scope.contact_type), String::new()),
        };
        let sql = format!(
            "SELECT c.id, epoch_us(c.created_at), CAST(c.type = 'company' AS UTINYINT), {}{extra} FROM contacts AS c WHERE {filter}",
            hashes.join(", ")
        );
        let batches = self.query_arrow(&sql, &[])?;
        if let Some(bitmap) = universe.and_then(|u| u.bitmap) {
            bitmap.reset(self)?;
        }
        Ok(batches)
    }

    /// The columns of the values: the filled-field count and the key
    /// values of contact `c`.
    fn value_columns(&self, scope: &AuditScope) -> Result<String> {
        // Counting filled fields reads every column: only for most-complete.
        let filled = if scope.count_filled {
            self.filled_sql()?
        } else {
            "0::BIGINT".to_string()
        };
        let values: Vec<String> = scope.keys.iter().map(|k| format!("c.{}", quote_ident(k))).collect();
        Ok(format!("{filled} AS filled, {}", values.join(", ")))
    }

    /// SQL counting a contact's filled fields (standard and custom; a consent
    /// counts when known, tags when there are any).
    fn filled_sql(&self) -> Result<String> {
        let columns = self.columns("contacts")?;
        let terms: Vec<String> = crate::fields::STANDARD_FIELDS
            .iter()
            .map(|f| f.name.to_string())
            .chain(columns.into_iter().filter(|c| c.starts_with("custom.")))
            .map(|name| {
                let q = format!("c.{}", quote_ident(&name));
                match name.as_str() {
                    "tags" => format!("CAST(len({q}) > 0 AS BIGINT)"),
                    "email_opt_in" | "sms_opt_in" => format!("CAST({q} <> 'unknown' AS BIGINT)"),
                    _ => format!("CAST({q} IS NOT NULL AS BIGINT)"),
                }
            })
            .collect();
        Ok(format!("({})", terms.join(" + ")))
    }

    /// Through a temporary table of (id, slot) joined with the contacts,
    /// the contacts' scan narrowed by a bitmap of the ids.
    pub(crate) fn fetch_audit_values(
        &self,
        scope: &AuditScope,
        ids: impl IntoIterator<Item = i64>,
    ) -> Result<Vec<RecordBatch>> {
        self.execute_batch(&format!(
            "CREATE OR REPLACE TEMP TABLE {FETCH} (id BIGINT, slot UINTEGER)"
        ))?;
        let mut ids = ids.into_iter().peekable();
        let mut first = 0u32;
        let batches = std::iter::from_fn(|| {
            ids.peek()?;
            let chunk = Int64Array::from_iter_values(ids.by_ref().take(1 << 16));
            let slots = UInt32Array::from_iter_values(first..first + chunk.len() as u32);
            first += chunk.len() as u32;
            Some(
                RecordBatch::try_from_iter([
                    ("id", Arc::new(chunk) as ArrayRef),
                    ("slot", Arc::new(slots) as ArrayRef),
                ])
                .map_err(|e| self.arrow_error(&e)),
            )
        });
        self.append_temp(FETCH, batches)?;
        // The join alone would decompress the key strings of every contact.
        let bitmap = IdBitmap::of(self, FETCH)?;
        let sql = format!(
            "SELECT f.slot, {} FROM {FETCH} AS f JOIN contacts AS c ON c.id = f.id WHERE {}",
            self.value_columns(scope)?,
            bitmap
                .as_ref()
                .map_or_else(|| "true".to_string(), |ids| ids.filter("c.id"))
        );
        let batches = self.query_arrow(&sql, &[])?;
        self.execute_batch(&format!("DROP TABLE {FETCH}"))?;
        if let Some(bitmap) = bitmap {
            bitmap.reset(self)?;
        }
        Ok(batches)
    }

    pub(crate) fn old_cluster_members(&self, scope: &str) -> Result<Vec<(i64, i64)>> {
        let mut stmt = self
            .connection()
            .prepare(&format!(
                "SELECT contact_id, cluster FROM audit_members WHERE scope = ? AND cluster IN (SELECT cluster FROM {TOUCHED})"
            ))
            .map_err(|e| self.error(&e))?;
        stmt.query_map([scope], |r| Ok((r.get::<_, i64>(0)?, r.get::<_, i64>(1)?)))
            .and_then(|rows| rows.collect::<std::result::Result<Vec<_>, _>>())
            .map_err(|e| self.error(&e))
    }

    pub(crate) fn untouched_clusters(&self, scope: &AuditScope) -> Result<UntouchedClusters> {
        let sums: Vec<String> = (1..=scope.keys.len())
            .map(|k| format!("coalesce(sum(shared[{k}]), 0)::BIGINT"))
            .collect();
        let which = format!("scope = ? AND cluster NOT IN (SELECT cluster FROM {TOUCHED})");
        let row: Vec<i64> = self
            .connection()
            .query_row(
                &format!(
                    "SELECT count(*), coalesce(sum(size), 0)::BIGINT, {} FROM audit_clusters WHERE {which}",
                    sums.join(", ")
                ),
                [scope.name],
                |r| (0..2 + scope.keys.len()).map(|i| r.get::<_, i64>(i)).collect(),
            )
            .map_err(|e| self.error(&e))?;
        let batches = self.query_arrow(
            &format!("SELECT cluster FROM audit_clusters WHERE {which} ORDER BY cluster"),
            &[scope.name],
        )?;
        Ok(UntouchedClusters {
            clusters: row[0] as u64,
            contacts_in_clusters: row[1] as u64,
            by_key: row[2..].iter().map(|&n| n as u64).collect(),
            keys: batches
                .iter()
                .flat_map(|b| b.column(0).as_primitive::<Int64Type>().values().iter().copied())
                .collect(),
        })
    }

    pub(crate) fn count_audited_contacts(&self, scope: &AuditScope) -> Result<u64> {
        let types = type_filter(scope.contact_type);
        Ok(self.query_i64(&format!("SELECT count(*) FROM contacts WHERE {types}"), [])? as u64)
    }

    /// Deletes the replaced state, then appends the clusters' members and
    /// clusters through two appenders.
    pub(crate) fn save_audit_state(
        &self,
        scope: &str,
        incremental: bool,
        clusters: impl IntoIterator<Item = ClusterChunk>,
    ) -> Result<()> {
        let quoted = literal(scope);
        let which = if incremental {
            format!(" AND cluster IN (SELECT cluster FROM {TOUCHED})")
        } else {
            String::new()
        };
        self.execute_batch(&format!(
            "DELETE FROM audit_members WHERE scope = {quoted}{which}; DELETE FROM audit_clusters WHERE scope = {quoted}{which};"
        ))?;
        let conn = self.connection();
        let mut members = conn.appender("audit_members").map_err(|e| self.error(&e))?;
        let mut appender = conn.appender("audit_clusters").map_err(|e| self.error(&e))?;
        for chunk in clusters {
            let (rows, clusters) = chunk.into_batches(scope).map_err(|e| self.arrow_error(&e))?;
            members.append_record_batch(rows).map_err(|e| self.error(&e))?;
            appender.append_record_batch(clusters).map_err(|e| self.error(&e))?;
        }
        members.flush().map_err(|e| self.error(&e))?;
        appender.flush().map_err(|e| self.error(&e))
    }

    pub(crate) fn record_audit(&self, record: &AuditRecord) -> Result<()> {
        self.execute(
            "INSERT INTO audits (id, scope, since_audit, started_at, finished_at, contacts, clusters, \
             contacts_in_clusters, reported_clusters, out_dir, summary, next_contact_id, all_contacts) \
             VALUES (?, ?, ?, make_timestamp(?), make_timestamp(?), ?, ?, ?, ?, ?, ?, ?, ?)",
            duckdb::params![
                record.id,
                record.scope,
                record.since_audit,
                record.started,
                record.finished,
                record.contacts as i64,
                record.clusters as i64,
                record.contacts_in_clusters as i64,
                record.reported_clusters as i64,
                record.out_dir,
                record.summary,
                record.next_contact_id,
                record.all_contacts
            ],
        )?;
        Ok(())
    }
}
