//! The audit's statements on PostgreSQL (see [`crate::store::audit`]): one
//! scan of the key hash columns by binary `COPY`, the candidates' values
//! through a staged table of ids, and the `--since-last` universe built
//! in temporary tables, as on DuckDB.

use std::sync::Arc;

use arrow::array::{Array, ArrayRef, AsArray, Int64Array, UInt32Array, UInt64Array};
use arrow::buffer::ScalarBuffer;
use arrow::compute::cast;
use arrow::datatypes::{DataType, Int64Type};
use arrow::record_batch::RecordBatch;

use super::copy::Out;
use super::groups::timestamp;
use super::{Postgres, quote_ident};
use crate::error::Result;
use crate::fields::hash_column;
use crate::map::ContactType;
use crate::store::audit::{AffectedUniverse, AuditRecord, AuditScope, ClusterChunk, PreviousAudit, UntouchedClusters};
use crate::store::sql::literal;

/// The audit scans a table of at least this many pages (about 1.3M
/// contacts of the generated files) in two halves at once: the 10M store's
/// scan took 10.9 s by one `COPY` (a single server process, its rows
/// decoded by one client thread).
const SPLIT_PAGES: i64 = 65_536;

/// Temporary tables of one audit.
const FETCH: &str = "kontakt_audit_fetch";
const UNIVERSE: &str = "kontakt_audit_universe";
const CHANGED: &str = "kontakt_audit_changed";
const GONE: &str = "kontakt_audit_gone";
const TOUCHED: &str = "kontakt_audit_touched";

/// The type filter of an audit, as SQL on `contacts`.
fn type_filter(contact_type: Option<ContactType>) -> String {
    contact_type.map_or_else(|| "true".to_string(), |t| format!("type = '{}'", t.name()))
}

/// Microseconds since the epoch of a `timestamp` column.
fn micros(column: &str) -> String {
    format!("(extract(epoch FROM {column}) * 1000000)::bigint")
}

/// `DROP` then `CREATE TEMP TABLE … AS` (PostgreSQL has no `CREATE OR
/// REPLACE TABLE`).
fn temp_table(name: &str, select: &str) -> String {
    format!("DROP TABLE IF EXISTS {name}; CREATE TEMP TABLE {name} AS {select};")
}

impl Postgres {
    pub(crate) fn next_audit_id(&self) -> Result<i64> {
        self.query_one_i64("SELECT nextval('audit_id_seq')", &[])
    }

    pub(crate) fn latest_audit(&self, scope: &str) -> Result<Option<PreviousAudit>> {
        Ok(self
            .query_opt(
                &format!(
                    "SELECT id, {}, next_contact_id, all_contacts FROM audits WHERE scope = $1 ORDER BY id DESC LIMIT 1",
                    micros("started_at")
                ),
                &[&scope],
            )?
            .map(|r| PreviousAudit {
                id: r.get(0),
                started: r.get(1),
                next_contact_id: r.get(2),
                all_contacts: r.get(3),
            }))
    }

    /// Builds the universe in a temporary table, as the DuckDB backend does
    /// (see its comments); an id may be in it more than once.
    pub(crate) fn find_affected(&self, scope: &AuditScope, previous: &PreviousAudit) -> Result<AffectedUniverse> {
        let types = type_filter(scope.contact_type);
        let keys = scope.keys;
        let scope = literal(scope.name);
        let since = format!(
            "(timestamp '1970-01-01' + {} * interval '1 microsecond')",
            previous.started
        );
        let hashes: Vec<String> = keys.iter().map(|k| hash_column(k)).collect();
        self.batch(&temp_table(
            CHANGED,
            &format!(
                "SELECT id, {} FROM contacts WHERE {types} AND updated_at >= {since}",
                hashes.join(", ")
            ),
        ))?;
        let members = format!("SELECT contact_id FROM audit_members WHERE scope = {scope}");
        let nothing_deleted = match (previous.next_contact_id, previous.all_contacts) {
            (Some(next), Some(all)) => {
                self.query_one_i64("SELECT count(*) FROM contacts WHERE id < $1", &[&next])? == all
            }
            _ => false,
        };
        let gone = if nothing_deleted {
            format!("SELECT id FROM contacts WHERE updated_at >= {since} AND NOT ({types}) AND id IN ({members})")
        } else {
            format!(
                "SELECT m.contact_id AS id FROM ({members}) AS m WHERE NOT EXISTS \
                 (SELECT 1 FROM contacts AS c WHERE c.id = m.contact_id AND {types})"
            )
        };
        let sharing: Vec<String> = hashes
            .iter()
            .map(|h| format!("{h} IN (SELECT {h} FROM {CHANGED})"))
            .collect();
        self.batch(&format!(
            "{} {} {} \
             INSERT INTO {UNIVERSE} \
               SELECT contact_id FROM audit_members WHERE scope = {scope} \
               AND cluster IN (SELECT cluster FROM audit_members WHERE scope = {scope} \
                               AND contact_id IN (SELECT id FROM {UNIVERSE})) \
               AND contact_id NOT IN (SELECT id FROM {UNIVERSE}) \
               AND contact_id NOT IN (SELECT id FROM {GONE}); \
             INSERT INTO {TOUCHED} \
               SELECT DISTINCT cluster FROM audit_members WHERE scope = {scope} \
               AND contact_id IN (SELECT id FROM {UNIVERSE}) \
               AND cluster NOT IN (SELECT cluster FROM {TOUCHED});",
            temp_table(GONE, &gone),
            temp_table(
                TOUCHED,
                &format!(
                    "SELECT DISTINCT cluster FROM audit_members WHERE scope = {scope} \
                     AND contact_id IN (SELECT id FROM {CHANGED} UNION ALL SELECT id FROM {GONE})"
                )
            ),
            temp_table(
                UNIVERSE,
                &format!(
                    "SELECT id FROM {CHANGED} \
                     UNION ALL SELECT contact_id FROM audit_members \
                       WHERE scope = {scope} AND cluster IN (SELECT cluster FROM {TOUCHED}) \
                       AND contact_id NOT IN (SELECT id FROM {GONE}) \
                     UNION ALL SELECT id FROM contacts WHERE {types} AND ({})",
                    sharing.join(" OR ")
                )
            ),
        ))?;
        let changed = self.query_one_i64(&format!("SELECT count(*) FROM {CHANGED}"), &[])?;
        let gone = self.query_one_i64(&format!("SELECT count(*) FROM {GONE}"), &[])?;
        Ok(AffectedUniverse {
            changed: changed as u64,
            deleted: gone as u64,
            bitmap: None,
        })
    }

    /// One scan of the contacts the filter selects (the scope's type, or
    /// the universe's ids), in the DuckDB backend's column types.
    #[allow(clippy::needless_pass_by_value)] // the interface's: DuckDB's universe owns a bitmap it resets
    pub(crate) fn scan_audit_keys(
        &self,
        scope: &AuditScope,
        universe: Option<AffectedUniverse>,
    ) -> Result<Vec<RecordBatch>> {
        let hashes: Vec<String> = scope.keys.iter().map(|k| format!("c.{}", hash_column(k))).collect();
        let (filter, extra, values) = match &universe {
            Some(_) => (
                format!("c.id IN (SELECT id FROM {UNIVERSE})"),
                format!(", {}", self.value_columns(scope)?),
                true,
            ),
            None => (type_filter(scope.contact_type), String::new(), false),
        };
        let sql = format!(
            "SELECT c.id, {}, (c.type = 'company')::int::bigint, {}{extra} FROM contacts AS c WHERE {filter}",
            micros("c.created_at"),
            hashes.join(", ")
        );
        let mut types = vec![Out::Int64; 3 + hashes.len()];
        if values {
            types.push(Out::Int64);
            types.extend(scope.keys.iter().map(|_| Out::Text));
        }
        let shape = |batch: &RecordBatch| {
            let mut columns = batch.columns().to_vec();
            columns[2] = cast(&columns[2], &DataType::UInt8).map_err(|e| e.to_string())?;
            for column in &mut columns[3..3 + hashes.len()] {
                // The hashes' bits, stored signed.
                let signed = column.as_primitive::<Int64Type>();
                let bits = ScalarBuffer::<u64>::new(signed.values().inner().clone(), 0, signed.len());
                *column = Arc::new(UInt64Array::new(bits, signed.nulls().cloned()));
            }
            Ok(columns)
        };
        if universe.is_none()
            && let Some(half) = self.scan_split()?
        {
            return self.scan_in_halves(&sql, half, &types, &shape);
        }
        self.copy_batches(&sql, &types, shape)
    }

    /// Where a whole scan of the contacts is split in two (the first page
    /// of its second half), or `None` when it is not: a small table, a
    /// server before PostgreSQL 14 (no TID range scan: each half would
    /// read the whole table), or a Citus cluster (whose shards have pages
    /// of their own).
    fn scan_split(&self) -> Result<Option<i64>> {
        let pages = self.query_one_i64(
            "SELECT CASE WHEN current_setting('server_version_num')::int < 140000 \
             OR EXISTS (SELECT 1 FROM pg_extension WHERE extname = 'citus') THEN 0 \
             ELSE pg_relation_size('contacts') / current_setting('block_size')::bigint END",
            &[],
        )?;
        Ok((pages >= SPLIT_PAGES).then_some(pages / 2))
    }

    /// The rows of `sql` (a scan of `contacts AS c`) by two `COPY`s at
    /// once, the pages before `half` on this connection and the others on
    /// a second one that reads the same snapshot (the audit's transaction
    /// is `REPEATABLE READ`; [`Postgres::begin_snapshot`]); the batches
    /// in the order of one scan.
    pub(super) fn scan_in_halves(
        &self,
        sql: &str,
        half: i64,
        types: &[Out],
        shape: &(dyn Fn(&RecordBatch) -> std::result::Result<Vec<ArrayRef>, String> + Sync),
    ) -> Result<Vec<RecordBatch>> {
        let snapshot = self
            .query_opt("SELECT pg_export_snapshot()", &[])?
            .ok_or_else(|| self.error_message("no snapshot"))?
            .try_get::<_, String>(0)
            .map_err(|e| self.error(&e))?;
        // Without a second connection (the server's or the role's
        // connection limit), one scan.
        let Ok(other) = self.try_clone() else {
            return self.copy_batches(sql, types, shape);
        };
        other.batch(&format!(
            "BEGIN ISOLATION LEVEL REPEATABLE READ READ ONLY; SET TRANSACTION SNAPSHOT {}",
            literal(&snapshot)
        ))?;
        let cancel = other.interrupt();
        let (first, second) = std::thread::scope(|s| {
            let second = s.spawn(move || {
                let batches = other.copy_batches(&format!("{sql} AND c.ctid >= '({half},0)'::tid"), types, shape);
                let _ = other.rollback();
                batches
            });
            let first = self.copy_batches(&format!("{sql} AND c.ctid < '({half},0)'::tid"), types, shape);
            if first.is_err() {
                let _ = cancel.cancel_query(postgres::NoTls);
            }
            (first, second.join().unwrap_or_else(|p| std::panic::resume_unwind(p)))
        });
        let mut batches = first?;
        batches.extend(second?);
        Ok(batches)
    }

    /// A query's rows by binary `COPY`, as batches of `types`, each batch's
    /// columns then shaped by `shape`.
    pub(super) fn copy_batches(
        &self,
        sql: &str,
        types: &[Out],
        shape: impl Fn(&RecordBatch) -> std::result::Result<Vec<ArrayRef>, String>,
    ) -> Result<Vec<RecordBatch>> {
        let names: Vec<String> = (0..types.len()).map(|i| format!("c{i}")).collect();
        self.copy_out(sql, names.clone(), types.to_vec(), "contacts", |batches| {
            batches
                .map(|batch| {
                    let columns = shape(&batch?).map_err(|m| self.error_message(m))?;
                    RecordBatch::try_from_iter(names.iter().cloned().zip(columns))
                        .map_err(|e| self.error_message(e.to_string()))
                })
                .collect()
        })
    }

    /// The filled-field count and the key values of contact `c`.
    fn value_columns(&self, scope: &AuditScope) -> Result<String> {
        let filled = if scope.count_filled {
            let columns = self.columns("contacts")?;
            let terms: Vec<String> = crate::fields::STANDARD_FIELDS
                .iter()
                .map(|f| f.name.to_string())
                .chain(columns.into_iter().filter(|c| c.starts_with("custom.")))
                .map(|name| {
                    let q = format!("c.{}", quote_ident(&name));
                    match name.as_str() {
                        "tags" => format!("(cardinality({q}) > 0)::int"),
                        "email_opt_in" | "sms_opt_in" => format!("({q} <> 'unknown')::int"),
                        _ => format!("({q} IS NOT NULL)::int"),
                    }
                })
                .collect();
            format!("({})::bigint", terms.join(" + "))
        } else {
            "0::bigint".to_string()
        };
        let values: Vec<String> = scope.keys.iter().map(|k| format!("c.{}", quote_ident(k))).collect();
        Ok(format!("{filled} AS filled, {}", values.join(", ")))
    }

    pub(crate) fn fetch_audit_values(
        &self,
        scope: &AuditScope,
        ids: impl IntoIterator<Item = i64>,
    ) -> Result<Vec<RecordBatch>> {
        self.batch(&format!(
            "DROP TABLE IF EXISTS {FETCH}; CREATE TEMP TABLE {FETCH} (id bigint, slot bigint)"
        ))?;
        let mut ids = ids.into_iter().peekable();
        let mut first = 0i64;
        while ids.peek().is_some() {
            let chunk = Int64Array::from_iter_values(ids.by_ref().take(1 << 16));
            let slots = Int64Array::from_iter_values(first..first + chunk.len() as i64);
            first += chunk.len() as i64;
            let batch = RecordBatch::try_from_iter([
                ("id", Arc::new(chunk) as ArrayRef),
                ("slot", Arc::new(slots) as ArrayRef),
            ])
            .map_err(|e| self.error_message(e.to_string()))?;
            self.copy_in(FETCH, "id, slot", &batch)?;
        }
        // Its size, for the join's plan (a temporary table has no
        // statistics until analyzed).
        self.batch(&format!("ANALYZE {FETCH}"))?;
        let mut types = vec![Out::Int64, Out::Int64];
        types.extend(scope.keys.iter().map(|_| Out::Text));
        let batches = self.copy_batches(
            &format!(
                "SELECT f.slot, {} FROM {FETCH} AS f JOIN contacts AS c ON c.id = f.id",
                self.value_columns(scope)?
            ),
            &types,
            |batch| {
                let mut columns = batch.columns().to_vec();
                let slots: UInt32Array = columns[0]
                    .as_primitive::<Int64Type>()
                    .values()
                    .iter()
                    .map(|&s| s as u32)
                    .collect();
                columns[0] = Arc::new(slots);
                Ok(columns)
            },
        )?;
        self.batch(&format!("DROP TABLE {FETCH}"))?;
        Ok(batches)
    }

    pub(crate) fn old_cluster_members(&self, scope: &str) -> Result<Vec<(i64, i64)>> {
        Ok(self
            .query(
                &format!(
                    "SELECT contact_id, cluster FROM audit_members WHERE scope = $1 \
                     AND cluster IN (SELECT cluster FROM {TOUCHED})"
                ),
                &[&scope],
            )?
            .iter()
            .map(|r| (r.get(0), r.get(1)))
            .collect())
    }

    pub(crate) fn untouched_clusters(&self, scope: &AuditScope) -> Result<UntouchedClusters> {
        let sums: Vec<String> = (1..=scope.keys.len())
            .map(|k| format!("coalesce(sum(shared[{k}]), 0)::bigint"))
            .collect();
        let which = format!("scope = $1 AND cluster NOT IN (SELECT cluster FROM {TOUCHED})");
        let row = self
            .query_opt(
                &format!(
                    "SELECT count(*), coalesce(sum(size), 0)::bigint, {} FROM audit_clusters WHERE {which}",
                    sums.join(", ")
                ),
                &[&scope.name],
            )?
            .ok_or_else(|| self.error_message("no cluster counts"))?;
        let counts: Vec<i64> = (0..2 + scope.keys.len()).map(|i| row.get(i)).collect();
        let keys = self
            .query(
                &format!("SELECT cluster FROM audit_clusters WHERE {which} ORDER BY cluster"),
                &[&scope.name],
            )?
            .iter()
            .map(|r| r.get(0))
            .collect();
        Ok(UntouchedClusters {
            clusters: counts[0] as u64,
            contacts_in_clusters: counts[1] as u64,
            by_key: counts[2..].iter().map(|&n| n as u64).collect(),
            keys,
        })
    }

    pub(crate) fn count_audited_contacts(&self, scope: &AuditScope) -> Result<u64> {
        let types = type_filter(scope.contact_type);
        Ok(self.query_one_i64(&format!("SELECT count(*) FROM contacts WHERE {types}"), &[])? as u64)
    }

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
        self.batch(&format!(
            "DELETE FROM audit_members WHERE scope = {quoted}{which}; DELETE FROM audit_clusters WHERE scope = {quoted}{which};"
        ))?;
        for chunk in clusters {
            let (members, clusters) = chunk
                .into_batches(scope)
                .map_err(|e| self.error_message(e.to_string()))?;
            self.copy_in("audit_members", "scope, contact_id, cluster", &members)?;
            self.copy_in("audit_clusters", "scope, cluster, size, shared", &clusters)?;
        }
        Ok(())
    }

    pub(crate) fn record_audit(&self, record: &AuditRecord) -> Result<()> {
        self.execute(
            &format!(
                "INSERT INTO audits (id, scope, since_audit, started_at, finished_at, contacts, clusters, \
                 contacts_in_clusters, reported_clusters, out_dir, summary, next_contact_id, all_contacts) \
                 VALUES ($1, $2, $3, {}, {}, $6, $7, $8, $9, $10, $11, $12, $13)",
                timestamp(4),
                timestamp(5)
            ),
            &[
                &record.id,
                &record.scope,
                &record.since_audit,
                &record.started,
                &record.finished,
                &(record.contacts as i64),
                &(record.clusters as i64),
                &(record.contacts_in_clusters as i64),
                &(record.reported_clusters as i64),
                &record.out_dir,
                &record.summary,
                &record.next_contact_id,
                &record.all_contacts,
            ],
        )?;
        Ok(())
    }
}
