//! The DuckDB backend of the contact store: a database file, created on
//! first use, with a schema version and forward-only migrations.
//!
//! A file that is not a DuckDB database, or a DuckDB database that is not a
//! kontakt store (has tables but no `kontakt_meta`), is refused without being
//! changed.

mod audit;
pub(crate) mod commit;
mod config;
mod contacts;
mod export;
mod groups;
mod id_bitmap;
mod keys;
pub(crate) mod lists;
mod merge;
pub(crate) mod schema;
mod transaction;
mod transfer;
mod undo;
mod updates;
mod views;

use std::path::{Path, PathBuf};
use std::sync::Arc;

use arrow::record_batch::RecordBatch;
use duckdb::Connection;

use crate::error::{Error, Result};

pub use id_bitmap::IdBitmap;
use schema::SCHEMA_VERSION;
pub use views::ArrowViews;
use views::Database;

/// DuckDB's memory limit for a store connection (`KONTAKT_DUCKDB_MEMORY`
/// overrides it, e.g. `4GB`). 512 MB keeps a 10M-row upsert into a
/// 10M-contact store under 4 GB in all (3.5 GiB; at 1 GB it peaked at
/// 4.0 GiB, uncapped at 6.2 GB), at the price of spilling (106 s vs 91 s).
const DUCKDB_MEMORY: &str = "512MB";

/// The reason of a group whose process ended while it was `running`, as SQL
/// over the group's row (its `pid` and `host`).
pub const INTERRUPTED: &str = "'interrupted: its process (pid ' || coalesce(CAST(pid AS VARCHAR), '?') || ' on ' || \
     coalesce(host, '?') || ') ended before it finished'";

/// An open DuckDB store.
pub struct DuckDb {
    conn: Connection,
    /// The database, opened through DuckDB's C API so that [`ArrowViews`]
    /// can connect to it too (dropped after `conn`).
    db: Arc<Database>,
    path: PathBuf,
    read_only: bool,
}

/// Interrupts the statement running on one store connection (see
/// [`crate::cancel`]); a no-op once that connection is closed.
pub struct Interrupt(Arc<duckdb::InterruptHandle>);

impl Interrupt {
    pub fn interrupt(&self) {
        self.0.interrupt();
    }
}

impl std::fmt::Debug for Interrupt {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str("Interrupt")
    }
}

impl std::fmt::Debug for DuckDb {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("DuckDb")
            .field("path", &self.path)
            .finish_non_exhaustive()
    }
}

impl DuckDb {
    /// Opens the store at `path`, creating it (and its schema) when missing,
    /// and bringing an older schema up to date.
    ///
    /// Only one process opens a store this way at a time (DuckDB locks the
    /// file), so an import group still `running` belongs to a process that
    /// ended without finishing (killed, power loss): it is recorded as
    /// `failed` ("interrupted") here, and its name is free again; the
    /// updates it staged beside the store and the undo records it wrote
    /// are removed.
    pub fn open(path: &Path) -> Result<DuckDb> {
        let store = DuckDb::open_as(path, false)?;
        store.fail_interrupted_groups()?;
        store.remove_stray_undo_records()?;
        updates::remove_stale_scratch(path);
        Ok(store)
    }

    /// Opens an existing store for reading only: it works on a file that
    /// cannot be written, beside other readers, and a path where no store
    /// exists is an error (nothing is created).
    pub fn open_read_only(path: &Path) -> Result<DuckDb> {
        if !path.exists() {
            return Err(store_error(
                path,
                "no store here; a command that only reads never creates one (check --db or KONTAKT_DB)",
            ));
        }
        DuckDb::open_as(path, true)
    }

    fn open_as(path: &Path, read_only: bool) -> Result<DuckDb> {
        let existed = path.exists();
        if existed && !looks_like_duckdb(path)? {
            return Err(store_error(path, "is not a DuckDB database; refusing to touch it"));
        }
        let db = Database::open(path, read_only).map_err(|e| store_error(path, describe_open_error(&e)))?;
        let store = DuckDb {
            conn: db.connect().map_err(|e| store_error(path, e.to_string()))?,
            db,
            path: path.to_path_buf(),
            read_only,
        };
        // DuckDB's own memory (transaction-local data, the update join) is
        // capped; beyond it DuckDB spills to a temporary directory beside
        // the store instead of growing the process (default: 80% of RAM).
        let limit = std::env::var("KONTAKT_DUCKDB_MEMORY").unwrap_or_else(|_| DUCKDB_MEMORY.to_string());
        if !limit
            .bytes()
            .all(|b| b.is_ascii_alphanumeric() || b == b'.' || b == b' ')
        {
            return Err(Error::usage(format!(
                "KONTAKT_DUCKDB_MEMORY={limit:?}: expected a size such as 2GB"
            )));
        }
        store
            .conn
            .execute_batch(&format!("SET memory_limit = '{limit}'"))
            .map_err(|e| Error::usage(format!("KONTAKT_DUCKDB_MEMORY={limit:?}: {e}")))?;
        store.migrate(existed)?;
        Ok(store)
    }

    /// Another connection to the same store (for a thread of its own: a
    /// connection is used by one thread at a time).
    pub fn try_clone(&self) -> Result<DuckDb> {
        Ok(DuckDb {
            conn: self.conn.try_clone().map_err(|e| self.error(&e))?,
            db: Arc::clone(&self.db),
            path: self.path.clone(),
            read_only: self.read_only,
        })
    }

    /// Whether the store was opened with [`DuckDb::open_read_only`]: no
    /// other process writes it meanwhile (DuckDB's lock), so a group it
    /// shows `running` was interrupted.
    pub fn is_read_only(&self) -> bool {
        self.read_only
    }

    /// The interrupt of this connection's running statement.
    pub fn interrupt(&self) -> Interrupt {
        Interrupt(self.conn.interrupt_handle())
    }

    /// Records every `running` group as `failed` ("interrupted"): called
    /// where no other process can hold the store open (see [`DuckDb::open`]).
    fn fail_interrupted_groups(&self) -> Result<()> {
        self.execute_batch(&format!(
            "UPDATE import_groups SET status = 'failed', reason = {INTERRUPTED} WHERE status = 'running'"
        ))
    }

    pub fn path(&self) -> &Path {
        &self.path
    }

    pub fn connection(&self) -> &Connection {
        &self.conn
    }

    /// A connection for registering Arrow streams as views that this
    /// store's connections can read (see [`ArrowViews`]).
    pub fn arrow_views(&self) -> Result<ArrowViews> {
        ArrowViews::new(&self.db).map_err(|e| store_error(&self.path, e))
    }

    /// The schema version recorded in the store.
    pub fn schema_version(&self) -> Result<i64> {
        self.conn
            .query_row("SELECT value FROM kontakt_meta WHERE key = 'schema_version'", [], |r| {
                r.get::<_, String>(0)
            })
            .map_err(|e| self.error(&e))?
            .parse()
            .map_err(|_| store_error(&self.path, "schema_version in kontakt_meta is not a number"))
    }

    fn migrate(&self, existed: bool) -> Result<()> {
        let has_meta: bool = self
            .conn
            .query_row(
                "SELECT count(*) > 0 FROM information_schema.tables WHERE table_name = 'kontakt_meta'",
                [],
                |r| r.get(0),
            )
            .map_err(|e| self.error(&e))?;
        if !has_meta {
            let tables: i64 = self
                .conn
                .query_row("SELECT count(*) FROM information_schema.tables", [], |r| r.get(0))
                .map_err(|e| self.error(&e))?;
            if existed && tables > 0 {
                // A command that writes, given someone else's database, is
                // the user's mistake (exit 2); one that reads finds no
                // store there (SPEC: exit 1), as on PostgreSQL.
                let message = "is a DuckDB database but not a kontakt store (no kontakt_meta table); refusing to \
                               change it";
                if self.read_only {
                    return Err(store_error(&self.path, message));
                }
                return Err(Error::Usage(format!("store {}: {message}", self.path.display())));
            }
        }
        let current = if has_meta { self.schema_version()? } else { 0 };
        if current > SCHEMA_VERSION {
            return Err(store_error(
                &self.path,
                format!("has schema version {current}, newer than this kontakt ({SCHEMA_VERSION}); upgrade kontakt"),
            ));
        }
        if current == SCHEMA_VERSION {
            return Ok(());
        }
        // Schemas 6 to 8 only added columns of the groups, the store's
        // settings and the lists, which a read does without (see `groups`,
        // `config` and `lists`): a read-only open reads a store of 5 to 7 as
        // it is, and the next command that writes upgrades it.
        if self.read_only && current >= 5 {
            return Ok(());
        }
        if self.read_only {
            return Err(store_error(
                &self.path,
                format!(
                    "has schema version {current}, older than this kontakt's ({SCHEMA_VERSION}), and a command that \
                     only reads does not upgrade it; any command that writes (an import, `contacts add`) does, once"
                ),
            ));
        }
        if (1..schema::CONTACTS_REBUILT).contains(&current) {
            // Migrations 4 and 5 copy every contact: say why this open waits.
            eprintln!(
                "kontakt: {}: upgrading the store from schema {current} to {SCHEMA_VERSION}, once; \
                 its contacts are copied into a new table (about 30 s for 10M contacts)",
                self.path.display()
            );
        }
        let tx = self.conn.unchecked_transaction().map_err(|e| self.error(&e))?;
        for (version, sql) in schema::MIGRATIONS.iter().enumerate() {
            let version = version as i64 + 1;
            if version > current {
                tx.execute_batch(sql).map_err(|e| self.error(&e))?;
            }
        }
        if current == 1 {
            self.fill_key_hashes()?;
        }
        if current < schema::CONTACTS_REBUILT {
            self.rebuild_contacts()?;
        }
        tx.execute(
            "INSERT OR REPLACE INTO kontakt_meta (key, value) VALUES ('schema_version', ?)",
            [SCHEMA_VERSION.to_string()],
        )
        .map_err(|e| self.error(&e))?;
        tx.commit().map_err(|e| self.error(&e))
    }

    /// Fills the key index of contacts stored before it existed (migration
    /// 2), inside the migration's transaction: the hashes are computed here
    /// (DuckDB has no xxh3), staged through the appender and set by one
    /// `UPDATE … FROM` per key.
    fn fill_key_hashes(&self) -> Result<()> {
        use arrow::array::{AsArray, UInt64Array};

        const STAGE: &str = "kontakt_key_hashes";
        for field in crate::fields::KEY_FIELDS {
            self.execute_batch(&format!("CREATE TEMP TABLE {STAGE} (id BIGINT, h UBIGINT)"))?;
            let mut stmt = self
                .conn
                .prepare(&format!("SELECT id, {field} FROM contacts WHERE {field} IS NOT NULL"))
                .map_err(|e| self.error(&e))?;
            // Read (and hashed) to the end before the appender runs: a
            // statement on the connection closes a result still being read.
            let batches: Vec<Result<RecordBatch>> = self
                .batches(&mut stmt, [], true)?
                .map(|batch| {
                    let batch = batch?;
                    let values = batch.column(1).as_string::<i32>();
                    let hashes: UInt64Array = values.iter().map(|v| v.map(crate::fields::key_hash)).collect();
                    RecordBatch::try_from_iter([
                        ("id", batch.column(0).clone()),
                        ("h", Arc::new(hashes) as arrow::array::ArrayRef),
                    ])
                    .map_err(|e| self.arrow_error(&e))
                })
                .collect();
            self.append_temp(STAGE, batches)?;
            self.execute_batch(&format!(
                "UPDATE contacts SET {field}_hash = s.h FROM {STAGE} AS s WHERE contacts.id = s.id; DROP TABLE {STAGE}"
            ))?;
        }
        Ok(())
    }

    /// Puts [`schema::CONTACTS_NEW`] (made by the latest migration that
    /// rebuilds `contacts`) in place of `contacts`, inside the migration's
    /// transaction: the custom columns are added with their types, in
    /// their order, and every contact is copied by column name (in the
    /// table's order).
    fn rebuild_contacts(&self) -> Result<()> {
        let new = schema::CONTACTS_NEW;
        let standard = self.columns(new)?;
        for (name, data_type) in self
            .typed_columns("contacts")?
            .iter()
            .filter(|(name, _)| !standard.contains(name))
        {
            self.execute_batch(&format!(
                "ALTER TABLE {new} ADD COLUMN {} {data_type}",
                quote_ident(name)
            ))?;
        }
        self.execute_batch(&format!(
            "INSERT INTO {new} BY NAME SELECT * FROM contacts; \
             DROP TABLE contacts; \
             ALTER TABLE {new} RENAME TO contacts"
        ))
    }

    /// Names of the columns of a table, in order.
    pub fn columns(&self, table: &str) -> Result<Vec<String>> {
        Ok(self.typed_columns(table)?.into_iter().map(|(name, _)| name).collect())
    }

    /// Names and SQL types of the columns of a table, in order.
    fn typed_columns(&self, table: &str) -> Result<Vec<(String, String)>> {
        let mut stmt = self
            .conn
            .prepare(
                "SELECT column_name, data_type FROM information_schema.columns \
                 WHERE table_name = ? ORDER BY ordinal_position",
            )
            .map_err(|e| self.error(&e))?;
        let columns = stmt
            .query_map([table], |r| Ok((r.get(0)?, r.get(1)?)))
            .map_err(|e| self.error(&e))?
            .collect::<std::result::Result<Vec<_>, _>>()
            .map_err(|e| self.error(&e))?;
        Ok(columns)
    }

    /// Counts rows of a table of the store's own schema.
    pub fn count(&self, table: &str) -> Result<i64> {
        if !schema::TABLES.contains(&table) {
            return Err(store_error(
                &self.path,
                format!("no table {table:?} in the kontakt schema"),
            ));
        }
        self.query_i64(&format!("SELECT count(*) FROM {table}"), [])
    }

    /// Runs a query of kontakt's own SQL that returns one integer (a count,
    /// an id).
    pub fn query_i64(&self, sql: &str, params: impl duckdb::Params) -> Result<i64> {
        self.conn
            .query_row(sql, params, |r| r.get(0))
            .map_err(|e| self.error(&e))
    }

    /// Runs a query of kontakt's own SQL (values only as parameters) and
    /// collects its result as Arrow batches.
    pub fn query_arrow(&self, sql: &str, params: &[&str]) -> Result<Vec<RecordBatch>> {
        let mut stmt = self.conn.prepare(sql).map_err(|e| self.error(&e))?;
        self.batches(&mut stmt, duckdb::params_from_iter(params), false)?
            .collect()
    }

    /// Executes a prepared statement and returns its result batch by batch:
    /// materialized by DuckDB first, or `streaming` (chunks produced as they
    /// are read). A failed fetch is an error here, where the duckdb crate's
    /// own iterator panics. Nothing else may run on the connection until the
    /// batches are read: a statement closes a result still being read.
    pub fn batches<'a, 'stmt>(
        &'a self,
        stmt: &'a mut duckdb::Statement<'stmt>,
        params: impl duckdb::Params,
        streaming: bool,
    ) -> Result<Batches<'a, 'stmt>> {
        if streaming {
            drop(stmt.stream_arrow(params).map_err(|e| self.error(&e))?);
        } else {
            drop(stmt.query_arrow(params).map_err(|e| self.error(&e))?);
        }
        Ok(Batches { store: self, stmt })
    }

    /// Runs a query of one row; `None` when it returns no row.
    pub fn query_optional<T>(
        &self,
        sql: &str,
        params: impl duckdb::Params,
        row: impl FnOnce(&duckdb::Row<'_>) -> duckdb::Result<T>,
    ) -> Result<Option<T>> {
        match self.conn.query_row(sql, params, row) {
            Ok(value) => Ok(Some(value)),
            Err(duckdb::Error::QueryReturnedNoRows) => Ok(None),
            Err(e) => Err(self.error(&e)),
        }
    }

    /// Appends batches to a temporary table (a staging table of this
    /// connection) through the Arrow appender.
    pub fn append_temp(&self, table: &str, batches: impl IntoIterator<Item = Result<RecordBatch>>) -> Result<()> {
        let mut appender = self
            .conn
            .appender_to_catalog_and_db(table, "temp", "main")
            .map_err(|e| self.error(&e))?;
        for batch in batches {
            appender.append_record_batch(batch?).map_err(|e| self.error(&e))?;
        }
        appender.flush().map_err(|e| self.error(&e))
    }

    /// An error building batches for the store.
    pub fn arrow_error(&self, e: &arrow::error::ArrowError) -> Error {
        store_error(&self.path, format!("preparing rows for the store: {e}"))
    }

    /// Runs statements of kontakt's own SQL.
    pub fn execute_batch(&self, sql: &str) -> Result<()> {
        self.conn.execute_batch(sql).map_err(|e| self.error(&e))
    }

    /// Runs one statement with parameters; returns the rows changed.
    pub fn execute(&self, sql: &str, params: impl duckdb::Params) -> Result<usize> {
        self.conn.execute(sql, params).map_err(|e| self.error(&e))
    }

    /// A store error naming this store.
    pub fn error(&self, e: &duckdb::Error) -> Error {
        self.error_message(e.to_string())
    }

    /// A store error naming this store, from a message.
    pub fn error_message(&self, message: impl Into<String>) -> Error {
        store_error(&self.path, message)
    }
}

pub use crate::store::sql::{literal, quote_ident};

/// The result batches of an executed statement ([`DuckDb::batches`]).
pub struct Batches<'a, 'stmt> {
    store: &'a DuckDb,
    stmt: &'a duckdb::Statement<'stmt>,
}

impl Iterator for Batches<'_, '_> {
    type Item = Result<RecordBatch>;

    fn next(&mut self) -> Option<Result<RecordBatch>> {
        match self.stmt.step() {
            Ok(Some(array)) => Some(Ok(RecordBatch::from(&array))),
            Ok(None) => None,
            Err(e) => Some(Err(self.store.error(&e))),
        }
    }
}

/// A store error: DuckDB's messages can run to several lines ("Possible
/// solutions: …"); errors are one line (SPEC), so its first is kept, with
/// kontakt's own advice where there is some.
fn store_error(path: &Path, message: impl Into<String>) -> Error {
    let message = message.into();
    let first = message
        .lines()
        .map(str::trim)
        .find(|l| !l.is_empty())
        .unwrap_or("")
        .to_string();
    let message = if first.starts_with("Out of Memory Error") {
        format!("{first} (DuckDB's memory cap; raise it with KONTAKT_DUCKDB_MEMORY, e.g. 4GB)")
    } else {
        first
    };
    Error::Store {
        path: path.display().to_string(),
        message,
    }
}

/// A DuckDB database file has the magic `DUCK` at byte 8. An empty file is
/// accepted (DuckDB initialises it).
fn looks_like_duckdb(path: &Path) -> Result<bool> {
    let mut file = std::fs::File::open(path).map_err(|e| Error::io(path, e))?;
    let mut head = [0u8; 12];
    let n = crate::read::read_up_to(&mut file, &mut head).map_err(|e| Error::io(path, e))?;
    Ok(n == 0 || (n == 12 && &head[8..12] == b"DUCK"))
}

/// DuckDB's lock and permission messages are long; keep the cause. A
/// store held by another process (one writer at a time, or readers while
/// none writes) names that process and, when it runs here, its command
/// line (`kontakt import leads.csv --name leads`): nothing waits, so the
/// user knows what to wait for.
fn describe_open_error(e: &duckdb::Error) -> String {
    let text = e.to_string();
    let first = text.lines().next().unwrap_or(&text).to_string();
    if !(text.contains("Conflicting lock") || text.contains("Could not set lock")) {
        return first;
    }
    let pid = text
        .split("(PID ")
        .nth(1)
        .and_then(|rest| rest.split(')').next())
        .and_then(|pid| pid.trim().parse::<u32>().ok());
    match pid {
        Some(pid) => match command_line(pid) {
            Some(command) => {
                format!("is in use by another process (pid {pid}: {command}); try again when it has finished")
            }
            None => format!("is in use by another process (pid {pid}); try again when it has finished"),
        },
        None => format!("is locked by another process ({first})"),
    }
}

/// The command line of a kontakt process of this machine, its program
/// named by its file name (`kontakt import leads.csv`); `None` for another
/// program (its arguments are none of our business). A password in a
/// connection URL is masked.
fn command_line(pid: u32) -> Option<String> {
    let raw = std::fs::read(format!("/proc/{pid}/cmdline")).ok()?;
    let mut args = raw
        .split(|&b| b == 0)
        .filter(|a| !a.is_empty())
        .map(String::from_utf8_lossy);
    let program = args.next()?;
    let program = program.rsplit('/').next().unwrap_or(&program).to_string();
    if program != "kontakt" {
        return None;
    }
    Some(
        std::iter::once(program)
            .chain(args.map(|a| mask_password(&a)))
            .collect::<Vec<_>>()
            .join(" "),
    )
}

/// `postgresql://user:secret@host/db` → `postgresql://user:***@host/db`.
pub(crate) fn mask_password(arg: &str) -> String {
    let Some(scheme_end) = arg.find("://").map(|i| i + 3) else {
        return arg.to_string();
    };
    let rest = &arg[scheme_end..];
    let masked = match (rest.find('@'), rest.find(':')) {
        (Some(at), Some(colon)) if colon < at => format!("{}{}:***{}", &arg[..scheme_end], &rest[..colon], &rest[at..]),
        _ => arg.to_string(),
    };
    // `?password=…` (libpq's parameter) too.
    match masked.split_once('?') {
        Some((base, query)) => {
            let pairs: Vec<String> = query
                .split('&')
                .map(|pair| match pair.split_once('=') {
                    Some((key, _)) if key.eq_ignore_ascii_case("password") => format!("{key}=***"),
                    _ => pair.to_string(),
                })
                .collect();
            format!("{base}?{}", pairs.join("&"))
        }
        None => masked,
    }
}

/// The DuckDB library version, for `kontakt --version`.
pub fn duckdb_version() -> String {
    Connection::open_in_memory()
        .and_then(|c| {
            c.query_row("SELECT library_version FROM pragma_version()", [], |r| {
                r.get::<_, String>(0)
            })
        })
        .unwrap_or_else(|e| format!("unknown ({e})"))
}

#[cfg(test)]
mod tests;
