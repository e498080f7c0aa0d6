//! An import's transaction in PostgreSQL: new contacts go straight into
//! `contacts` by binary `COPY` as they come; updates are staged by binary
//! `COPY` into a temporary table and applied at the end by one set-based
//! `UPDATE … FROM`, in the same transaction.

use std::cell::Cell;

use arrow::datatypes::{DataType, SchemaRef};
use arrow::error::ArrowError;

use super::Postgres;
use super::groups::timestamp;
use super::quote_ident;
use crate::error::Result;
use crate::store::commit::{ImportSpec, RowSource, StagedRows, UpdateValues};
use crate::store::groups::now_micros;

/// The staged updates (dropped at the end of the transaction).
const UPDATES: &str = "kontakt_updates";

/// The update joins the staged rows to the contacts through the primary
/// key's index when the contacts number more than this many times the
/// staged rows (else by a hash join of one scan).
const INDEX_JOIN_SHARE: i64 = 10;

/// The longest identifier PostgreSQL keeps whole (`NAMEDATALEN` - 1).
const MAX_IDENTIFIER: usize = 63;

/// PostgreSQL cuts identifiers at 63 bytes: a longer `custom.NAME` column
/// would be cut silently and clash with its neighbours, so it is refused.
pub(crate) fn check_custom_field(field: &str) -> Result<()> {
    match field.strip_prefix("custom.") {
        Some(name) if field.len() > MAX_IDENTIFIER => Err(crate::error::Error::usage(format!(
            "custom field {name:?}: a PostgreSQL store holds custom field names of at most {} bytes \
             (its column names are cut at {MAX_IDENTIFIER}); map it to a shorter name with --map",
            MAX_IDENTIFIER - "custom.".len()
        ))),
        _ => Ok(()),
    }
}

impl Postgres {
    /// Creates the `custom.NAME` columns among `names` that the contacts
    /// table lacks (inside the caller's transaction).
    pub(crate) fn add_custom_columns<'a>(&self, names: impl IntoIterator<Item = &'a str>) -> Result<()> {
        let existing = self.columns("contacts")?;
        for field in names {
            if let Some(name) = field.strip_prefix("custom.")
                && !existing.iter().any(|c| c == field)
            {
                check_custom_field(field)?;
                self.batch(&format!("ALTER TABLE contacts ADD COLUMN {} text", quote_ident(field)))?;
                self.execute(
                    &format!(
                        "INSERT INTO custom_fields VALUES ($1, {}) ON CONFLICT DO NOTHING",
                        timestamp(2)
                    ),
                    &[&name, &now_micros()],
                )?;
            }
        }
        Ok(())
    }

    /// The id the next new contact gets (ids are never reused).
    pub(crate) fn next_contact_id(&self) -> Result<i64> {
        self.query_one_i64(
            "SELECT value::bigint FROM kontakt_meta WHERE key = 'next_contact_id'",
            &[],
        )
    }

    /// Records the id the next new contact gets.
    pub(crate) fn set_next_contact_id(&self, next: i64) -> Result<()> {
        self.execute(
            "UPDATE kontakt_meta SET value = $1 WHERE key = 'next_contact_id'",
            &[&next.to_string()],
        )
        .map(|_| ())
    }

    pub(crate) fn begin_import(&self, spec: ImportSpec<'_>) -> Result<PostgresImport<'_>> {
        let insert_columns: Vec<String> = spec
            .insert_schema
            .fields()
            .iter()
            .map(|f| quote_ident(f.name()))
            .collect();
        // New custom fields' columns are added and committed first, each
        // on its own: `ALTER TABLE` locks `contacts` against readers until
        // its transaction ends, and readers never wait for an import. A
        // column left by an import that then rolls back is empty.
        self.add_custom_columns(spec.fields.iter().map(|f| f.name.as_str()))?;
        self.begin()?;
        let first_id = self.next_contact_id()?;
        let staging: Vec<String> = spec
            .update_schema
            .fields()
            .iter()
            .map(|f| format!("{} {}", quote_ident(f.name()), sql_type(f.data_type())))
            .collect();
        self.batch(&format!(
            "CREATE TEMP TABLE {UPDATES} ({}) ON COMMIT DROP",
            staging.join(", ")
        ))?;
        let UpdateValues { values, changes } = UpdateValues::new(spec.fields, spec.hashed, spec.master, |q| {
            // Most rows add no tags: the subquery is run only for those
            // that do.
            format!(
                "CASE WHEN cardinality(u.{q}) > 0 THEN c.{q} || ARRAY(SELECT x FROM unnest(u.{q}) \
                 WITH ORDINALITY AS t(x, n) WHERE x <> ALL(c.{q}) ORDER BY n) ELSE c.{q} END"
            )
        });
        let set: Vec<String> = values
            .iter()
            .map(|(name, value)| format!("{} = {value}, ", quote_ident(name)))
            .collect();
        let update_sql = format!(
            "UPDATE contacts AS c SET {}updated_at = {} \
             FROM (SELECT DISTINCT ON (contact_id) * FROM {UPDATES} ORDER BY contact_id, \"row\" DESC) AS u \
             WHERE c.id = u.contact_id AND ({changes})",
            set.concat(),
            timestamp(1)
        );
        // The earlier values, for the undo record, of exactly the contacts
        // the update changes (the same join and condition), written just
        // before it.
        let record = spec.undo_of.map(|group| UndoRecord {
            group,
            rows: format!(
                "FROM contacts AS c, (SELECT DISTINCT ON (contact_id) * FROM {UPDATES} \
                 ORDER BY contact_id, \"row\" DESC) AS u WHERE c.id = u.contact_id AND ({changes})"
            ),
            values,
        });
        Ok(PostgresImport {
            db: self,
            first_id,
            insert_columns: insert_columns.join(", "),
            update_columns: spec
                .update_schema
                .fields()
                .iter()
                .map(|f| quote_ident(f.name()))
                .collect::<Vec<_>>()
                .join(", "),
            staged: Cell::new(0),
            update_sql,
            record,
            _schema: spec.update_schema.clone(),
        })
    }
}

/// The PostgreSQL type of an Arrow column of the import's batches.
fn sql_type(data_type: &DataType) -> &'static str {
    match data_type {
        DataType::Int64 | DataType::UInt64 => "bigint",
        DataType::Date32 => "date",
        DataType::Timestamp(..) => "timestamp",
        DataType::List(_) => "text[]",
        _ => "text",
    }
}

/// What an import's undo record keeps: its group, the rows (`FROM …
/// WHERE`) and the columns the update sets, with their new values.
struct UndoRecord {
    group: i64,
    rows: String,
    values: Vec<(String, String)>,
}

/// An import's open transaction in PostgreSQL.
pub(crate) struct PostgresImport<'s> {
    db: &'s Postgres,
    first_id: i64,
    insert_columns: String,
    update_columns: String,
    /// Update rows staged so far.
    staged: Cell<usize>,
    /// The set-based update of the staged rows.
    update_sql: String,
    record: Option<UndoRecord>,
    _schema: SchemaRef,
}

impl PostgresImport<'_> {
    pub(crate) fn first_id(&self) -> i64 {
        self.first_id
    }

    pub(crate) fn push(&self, rows: std::result::Result<StagedRows, ArrowError>) -> Result<()> {
        let rows = rows.map_err(|e| self.db.error_message(format!("preparing rows for the store: {e}")))?;
        if let Some(inserts) = rows.inserts {
            self.db.copy_in("contacts", &self.insert_columns, &inserts)?;
        }
        if let Some(updates) = rows.updates {
            self.staged.set(self.staged.get() + updates.num_rows());
            self.db.copy_in(UPDATES, &self.update_columns, &updates)?;
        }
        Ok(())
    }

    /// Writes everything the source gives until it ends.
    pub(crate) fn stream(&mut self, mut source: Box<dyn RowSource>) -> Result<()> {
        while let Some(rows) = source.next_rows() {
            self.push(rows)?;
        }
        Ok(())
    }

    /// Every row was written as it came.
    pub(crate) fn flush(&mut self) -> Result<()> {
        Ok(())
    }

    pub(crate) fn staged_updates(&self) -> Result<i64> {
        Ok(self.staged.get() as i64)
    }

    pub(crate) fn apply_updates(&self, now: i64) -> Result<u64> {
        self.db.batch(&format!("ANALYZE {UPDATES}"))?;
        // A few staged rows against many contacts: each is looked up by
        // id (the primary key's index, in id order) rather than by a hash
        // join that scans every contact; PostgreSQL's default costs pick
        // the scan even at 3% (1M x 10M: the update 10.6 s by the scan,
        // 4.8 s by the index, by hand). JIT compiling the record's
        // statement took a second of it and saves none.
        let contacts = self.db.query_one_i64(
            "SELECT reltuples::bigint FROM pg_class WHERE oid = 'contacts'::regclass",
            &[],
        )?;
        let by_index = (self.staged.get() as i64).saturating_mul(INDEX_JOIN_SHARE) < contacts;
        self.db.batch(if by_index {
            "SET LOCAL jit = off; SET LOCAL enable_hashjoin = off; SET LOCAL enable_mergejoin = off"
        } else {
            "SET LOCAL jit = off"
        })?;
        if let Some(UndoRecord { group, rows, values }) = &self.record {
            self.db.record_restore(*group, ("c", "c"), rows, values)?;
        }
        let updated = self.db.execute(&self.update_sql, &[&now])?;
        self.db
            .batch("RESET jit; RESET enable_hashjoin; RESET enable_mergejoin")?;
        Ok(updated)
    }

    pub(crate) fn end_staging(&self, next_id: i64) -> Result<()> {
        self.db.set_next_contact_id(next_id)
    }

    pub(crate) fn commit(self) -> Result<()> {
        self.db.commit()
    }

    pub(crate) fn roll_back(self) -> Result<()> {
        self.db.rollback_after_failure()
    }
}
