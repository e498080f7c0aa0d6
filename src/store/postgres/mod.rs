//! The PostgreSQL backend of the contact store: the CRM's own database,
//! `--db postgresql://USER@HOST/DB` (SPEC, Store). kontakt's tables live in
//! a schema of their own (`kontakt`, or `?schema=NAME`), created and
//! migrated on first use like the DuckDB store's file.
//!
//! Several processes use one store at once. Readers never wait (each
//! statement reads a snapshot). Writers take the store's writer lock (a
//! session advisory lock, [`Postgres::open`]) for as long as they run, so
//! two imports never both create a contact for the same key: the second
//! says which import it waits for, and waits. Because a writer holds that
//! lock, a group still `running` when a writer gets it belongs to a process
//! that ended, as with DuckDB's file lock.
//!
//! The driver is `postgres` (rust-postgres, synchronous over
//! tokio-postgres): kontakt's stages are threads, not tasks, and its COPY
//! streams are plain `Read`/`Write`. See docs/DESIGN.md, "The PostgreSQL
//! store".

mod audit;
pub(crate) mod commit;
mod config;
mod contacts;
mod copy;
mod groups;
mod keys;
pub(crate) mod lists;
mod merge;
mod schema;
mod transaction;
mod transfer;
mod undo;

use std::cell::{RefCell, RefMut};
use std::path::{Path, PathBuf};

use postgres::{Client, NoTls};

use crate::error::{Error, Result};
use crate::store::duckdb::INTERRUPTED;

pub use schema::SCHEMA_VERSION;

/// The schema kontakt's tables live in when the URL names none.
const DEFAULT_SCHEMA: &str = "kontakt";

/// The first key of kontakt's advisory locks (the second is the store's:
/// `hashtext` of its schema's name): the store's writer lock.
const WRITER_LOCK: i32 = 0x6b6f_6e74; // "kont"

/// How often a writer waiting for the store's writer lock tries again.
const LOCK_POLL: std::time::Duration = std::time::Duration::from_millis(100);

/// How long a waiting writer looks for the running import's name before it
/// says it waits without one.
const WAIT_NAMELESS: std::time::Duration = std::time::Duration::from_secs(1);

/// The memory each sort or hash of a kontakt session may use before it
/// spills to disk, where the server's or role's `work_mem` is lower. An
/// import's update and undo record, an audit's fetch of the clusters'
/// values and a merge join a few hundred thousand rows or more by hash:
/// with PostgreSQL's default 4 MB the hash is split into batches on disk
/// (the 1M x 1M upsert's update of 267,854 contacts took 6.7 s instead of
/// 4.2 s).
const WORK_MEM: &str = "256MB";

/// An open PostgreSQL store: one connection.
pub struct Postgres {
    client: RefCell<Client>,
    config: postgres::Config,
    /// The URL as given, with its password masked (for messages).
    shown: PathBuf,
    schema: String,
    read_only: bool,
}

impl std::fmt::Debug for Postgres {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Postgres")
            .field("url", &self.shown)
            .field("schema", &self.schema)
            .finish_non_exhaustive()
    }
}

/// Whether `--db` names a PostgreSQL database rather than a DuckDB file.
pub fn is_url(db: &Path) -> bool {
    let db = db.to_string_lossy().to_ascii_lowercase();
    db.starts_with("postgresql://") || db.starts_with("postgres://")
}

/// The connection settings of a `postgresql://` URL and the schema it names
/// (`?schema=NAME`, kontakt's own parameter; libpq's others are the
/// driver's).
fn parse_url(url: &str) -> std::result::Result<(postgres::Config, String), String> {
    let (base, query) = url.split_once('?').unwrap_or((url, ""));
    let mut schema = DEFAULT_SCHEMA.to_string();
    let mut rest = Vec::new();
    for pair in query.split('&').filter(|p| !p.is_empty()) {
        match pair.split_once('=') {
            Some(("schema", name)) => schema = name.to_string(),
            _ => rest.push(pair),
        }
    }
    if schema.is_empty()
        || schema.len() > 63
        || !schema
            .bytes()
            .all(|b| b.is_ascii_lowercase() || b.is_ascii_digit() || b == b'_')
        || schema.as_bytes()[0].is_ascii_digit()
    {
        return Err(format!(
            "schema={schema:?}: a schema name is 1 to 63 of a-z, 0-9 and _, not starting with a digit"
        ));
    }
    let url = if rest.is_empty() {
        base.to_string()
    } else {
        format!("{base}?{}", rest.join("&"))
    };
    let mut config: postgres::Config = url.parse().map_err(|e| format!("not a PostgreSQL URL: {e}"))?;
    config.application_name("kontakt");
    Ok((config, schema))
}

/// For a connection refused because a Unix socket is missing, which
/// socket that was: libpq's parameters say a directory (`host=/run/postgresql`)
/// and the error only "No such file or directory".
fn missing_socket(config: &postgres::Config, error: &postgres::Error) -> String {
    let not_found = std::error::Error::source(error)
        .and_then(|e| e.downcast_ref::<std::io::Error>())
        .is_some_and(|e| e.kind() == std::io::ErrorKind::NotFound);
    let sockets: Vec<String> = config
        .get_hosts()
        .iter()
        .filter_map(|h| match h {
            postgres::config::Host::Unix(dir) => {
                let port = config.get_ports().first().copied().unwrap_or(5432);
                Some(dir.join(format!(".s.PGSQL.{port}")).display().to_string())
            }
            _ => None,
        })
        .collect();
    if !not_found || sockets.is_empty() {
        return String::new();
    }
    format!(
        " (no server socket {}: is the server running, and is host= the directory of its socket?)",
        sockets.join(", ")
    )
}

impl Postgres {
    /// Opens the store for writing: connects, creates or migrates the
    /// schema, takes the store's writer lock (waiting, with a message
    /// naming the running import, while another process holds it), and
    /// records the groups left `running` by processes that ended as
    /// `failed` ("interrupted").
    pub fn open(url: &Path) -> Result<Postgres> {
        let store = Postgres::connect(url, false)?;
        store.migrate()?;
        store.take_writer_lock()?;
        let stale: Vec<i64> = store
            .query(
                &format!(
                    "UPDATE import_groups SET status = 'failed', reason = {INTERRUPTED} WHERE status = 'running' \
                     RETURNING id"
                ),
                &[],
            )?
            .iter()
            .map(|r| r.get(0))
            .collect();
        store.remove_stray_staging(&stale)?;
        if !stale.is_empty() {
            store.drop_empty_fields_of(&stale)?;
        }
        Ok(store)
    }

    /// Opens an existing store for reading: nothing is created, and nothing
    /// waits for a writer.
    pub fn open_read_only(url: &Path) -> Result<Postgres> {
        let store = Postgres::connect(url, true)?;
        let version = store.stored_version()?;
        match version {
            None => Err(store.error_message(format!(
                "no store here (no kontakt tables in schema {:?}); a command that only reads never creates one (check --db or \
                 KONTAKT_DB)",
                store.schema
            ))),
            Some(v) if v > SCHEMA_VERSION => Err(store.error_message(format!(
                "has schema version {v}, newer than this kontakt ({SCHEMA_VERSION}); upgrade kontakt"
            ))),
            Some(_) => Ok(store),
        }
    }

    /// Whether the URL's schema holds a store (an unreachable server is an
    /// error).
    pub fn exists(url: &Path) -> Result<bool> {
        Ok(Postgres::connect(url, true)?.stored_version()?.is_some())
    }

    fn connect(url: &Path, read_only: bool) -> Result<Postgres> {
        let text = url.to_string_lossy();
        let shown = PathBuf::from(super::duckdb::mask_password(&text));
        // The scheme in any case (`POSTGRESQL://`); a URL kontakt cannot
        // use is the user's to fix: a usage error.
        let text = match text.find("://") {
            Some(i) => format!("{}{}", text[..i].to_ascii_lowercase(), &text[i..]),
            None => text.to_string(),
        };
        let (config, schema) = parse_url(&text).map_err(|m| Error::usage(format!("--db {}: {m}", shown.display())))?;
        Postgres::session(config, shown, schema, read_only)
    }

    /// A new session on the store: connected, its schema first on the
    /// search path, times in UTC.
    fn session(config: postgres::Config, shown: PathBuf, schema: String, read_only: bool) -> Result<Postgres> {
        let client = config
            .connect(NoTls)
            .map_err(|e| store_error(&shown, format!("{}{}", describe(&e), missing_socket(&config, &e))))?;
        let store = Postgres {
            client: RefCell::new(client),
            config,
            shown,
            schema,
            read_only,
        };
        // The settings kontakt's SQL and text rely on, whatever the server's
        // or the role's: literals with only `'` escaped, times in UTC as
        // ISO text (`2026-12-03 17:42:04.12`, as DuckDB writes them), and
        // no idle timeout that would end a writer's session (and with it
        // the writer lock) or an import's transaction between its steps;
        // and at least WORK_MEM for each sort and hash.
        store.batch(&format!(
            "SET search_path TO {}; SET TIME ZONE 'UTC'; SET standard_conforming_strings = on; \
             SET DateStyle = 'ISO, YMD'; SET IntervalStyle = 'postgres'; \
             SELECT set_config(name, '0', false) FROM pg_settings \
             WHERE name IN ('idle_in_transaction_session_timeout', 'idle_session_timeout'); \
             SELECT set_config('work_mem', '{WORK_MEM}', false) \
             WHERE pg_size_bytes(current_setting('work_mem')) < pg_size_bytes('{WORK_MEM}')",
            quote_ident(&store.schema)
        ))?;
        Ok(store)
    }

    /// Another connection to the same store, for a thread of its own (it
    /// does not hold the writer lock: the process does, on its first).
    pub fn try_clone(&self) -> Result<Postgres> {
        Postgres::session(
            self.config.clone(),
            self.shown.clone(),
            self.schema.clone(),
            self.read_only,
        )
    }

    /// The schema version recorded in the store, if it has one.
    fn stored_version(&self) -> Result<Option<i64>> {
        let exists = self.query_one_i64(
            "SELECT count(*) FROM information_schema.tables WHERE table_schema = $1 AND table_name = 'kontakt_meta'",
            &[&self.schema],
        )? > 0;
        if !exists {
            return Ok(None);
        }
        self.schema_version().map(Some)
    }

    /// Creates the schema on first use, or brings it up to date, in one
    /// transaction under a lock of its own (two processes may open a new
    /// store at once).
    fn migrate(&self) -> Result<()> {
        self.batch("BEGIN")?;
        let migrated = (|| {
            self.execute(
                "SELECT pg_advisory_xact_lock($1, hashtext($2))",
                &[&(WRITER_LOCK + 1), &self.schema],
            )?;
            let schema_exists = self.query_one_i64(
                "SELECT count(*) FROM information_schema.schemata WHERE schema_name = $1",
                &[&self.schema],
            )? > 0;
            let current = self.stored_version()?;
            if current.is_none() && schema_exists {
                let tables = self.query_one_i64(
                    "SELECT count(*) FROM information_schema.tables WHERE table_schema = $1",
                    &[&self.schema],
                )?;
                if tables > 0 {
                    // Someone else's schema: the user's mistake (exit 2).
                    return Err(Error::Usage(format!(
                        "store {}: schema {:?} holds tables but is not a kontakt store (no kontakt_meta); refusing \
                         to change it (name another with ?schema=NAME)",
                        self.shown.display(),
                        self.schema
                    )));
                }
            }
            let current = current.unwrap_or(0);
            if current > SCHEMA_VERSION {
                return Err(self.error_message(format!(
                    "has schema version {current}, newer than this kontakt ({SCHEMA_VERSION}); upgrade kontakt"
                )));
            }
            if current == SCHEMA_VERSION {
                return Ok(());
            }
            if !schema_exists {
                self.batch(&format!("CREATE SCHEMA {}", quote_ident(&self.schema)))?;
            }
            for (version, sql) in schema::MIGRATIONS.iter().enumerate() {
                if version as i64 + 1 > current {
                    self.batch(sql)?;
                }
            }
            self.execute(
                "INSERT INTO kontakt_meta (key, value) VALUES ('schema_version', $1) \
                 ON CONFLICT (key) DO UPDATE SET value = excluded.value",
                &[&SCHEMA_VERSION.to_string()],
            )?;
            Ok(())
        })();
        match migrated {
            Ok(()) => self.batch("COMMIT"),
            Err(e) => {
                let _ = self.batch("ROLLBACK");
                Err(e)
            }
        }
    }

    /// Takes the store's writer lock for this session, waiting while
    /// another process holds it: the wait says which import it waits for
    /// (once that import has recorded its group, or after a second), and
    /// ends at Ctrl-C or SIGTERM.
    fn take_writer_lock(&self) -> Result<()> {
        let started = std::time::Instant::now();
        let mut announced = false;
        loop {
            if self.try_writer_lock()? {
                return Ok(());
            }
            if let Some(signal) = crate::cancel::signalled() {
                return Err(Error::Cancelled(signal));
            }
            if !announced {
                let running = self.query_opt(
                    "SELECT id, name, coalesce(host, '?'), coalesce(pid, 0), coalesce(kind, 'import') FROM import_groups \
                     WHERE status = 'running' ORDER BY id DESC LIMIT 1",
                    &[],
                )?;
                let what = running.map(|row| {
                    format!(
                        "{} {} {:?} (pid {} on {})",
                        row.get::<_, String>(4),
                        row.get::<_, i64>(0),
                        row.get::<_, String>(1),
                        row.get::<_, i64>(3),
                        row.get::<_, String>(2)
                    )
                });
                if what.is_some() || started.elapsed() > WAIT_NAMELESS {
                    let what = what.unwrap_or_else(|| "another kontakt process that writes it".to_string());
                    eprintln!("kontakt: {}: waiting for {what} to finish", self.shown.display());
                    announced = true;
                }
            }
            std::thread::sleep(LOCK_POLL);
        }
    }

    /// Takes the store's writer lock if it is free; whether it did.
    fn try_writer_lock(&self) -> Result<bool> {
        Ok(self
            .client()
            .query_one(
                "SELECT pg_try_advisory_lock($1, hashtext($2))",
                &[&WRITER_LOCK, &self.schema],
            )
            .map_err(|e| self.error(&e))?
            .get::<_, bool>(0))
    }

    /// Whether no process holds the store's writer lock now (never waits).
    fn no_writer(&self) -> Result<bool> {
        let free = self.try_writer_lock()?;
        if free {
            self.execute(
                "SELECT pg_advisory_unlock($1, hashtext($2))",
                &[&WRITER_LOCK, &self.schema],
            )?;
        }
        Ok(free)
    }

    pub fn path(&self) -> &Path {
        &self.shown
    }

    pub fn interrupt(&self) -> postgres::CancelToken {
        self.client().cancel_token()
    }

    pub fn schema_version(&self) -> Result<i64> {
        self.client()
            .query_one("SELECT value FROM kontakt_meta WHERE key = 'schema_version'", &[])
            .map_err(|e| self.error(&e))?
            .get::<_, String>(0)
            .parse()
            .map_err(|_| self.error_message("schema_version in kontakt_meta is not a number"))
    }

    /// Counts rows of a table of the store's own schema.
    pub fn count(&self, table: &str) -> Result<i64> {
        if !schema::TABLES.contains(&table) {
            return Err(self.error_message(format!("no table {table:?} in the kontakt schema")));
        }
        self.query_one_i64(&format!("SELECT count(*) FROM {table}"), &[])
    }

    /// Names of the columns of a table of the store, in order.
    pub fn columns(&self, table: &str) -> Result<Vec<String>> {
        let rows = self
            .client()
            .query(
                "SELECT column_name::text FROM information_schema.columns \
                 WHERE table_schema = $1 AND table_name = $2 ORDER BY ordinal_position",
                &[&self.schema, &table],
            )
            .map_err(|e| self.error(&e))?;
        Ok(rows.iter().map(|r| r.get(0)).collect())
    }

    fn client(&self) -> RefMut<'_, Client> {
        self.client.borrow_mut()
    }

    /// Runs statements of kontakt's own SQL (no parameters).
    pub fn batch(&self, sql: &str) -> Result<()> {
        self.client().batch_execute(sql).map_err(|e| self.error(&e))
    }

    /// Runs one statement; the rows it changed.
    pub fn execute(&self, sql: &str, params: &[&(dyn postgres::types::ToSql + Sync)]) -> Result<u64> {
        self.client().execute(sql, params).map_err(|e| self.error(&e))
    }

    /// Runs a query of kontakt's own SQL.
    pub fn query(&self, sql: &str, params: &[&(dyn postgres::types::ToSql + Sync)]) -> Result<Vec<postgres::Row>> {
        self.client().query(sql, params).map_err(|e| self.error(&e))
    }

    /// Runs a query of one row; `None` when it returns none.
    pub fn query_opt(
        &self,
        sql: &str,
        params: &[&(dyn postgres::types::ToSql + Sync)],
    ) -> Result<Option<postgres::Row>> {
        self.client().query_opt(sql, params).map_err(|e| self.error(&e))
    }

    /// Runs a query that returns one integer (a count, an id).
    pub fn query_one_i64(&self, sql: &str, params: &[&(dyn postgres::types::ToSql + Sync)]) -> Result<i64> {
        self.client()
            .query_one(sql, params)
            .map_err(|e| self.error(&e))?
            .try_get::<_, i64>(0)
            .map_err(|e| self.error(&e))
    }

    /// The rows of `sql` by binary `COPY … TO STDOUT`, decoded into batches
    /// of 64k rows with the columns `names` of `types`, handed to `read`
    /// as they come; `what` says what is read, in errors. Nothing else may
    /// run on the connection meanwhile.
    fn copy_out<T>(
        &self,
        sql: &str,
        names: Vec<String>,
        types: Vec<copy::Out>,
        what: &str,
        read: impl FnOnce(&mut dyn Iterator<Item = Result<arrow::record_batch::RecordBatch>>) -> Result<T>,
    ) -> Result<T> {
        let mut client = self.client();
        let reader = client
            .copy_out(&format!("COPY ({sql}) TO STDOUT (FORMAT binary)"))
            .map_err(|e| self.error(&e))?;
        let decoder = copy::Decoder::new(
            std::io::BufReader::with_capacity(1 << 16, reader),
            names,
            types,
            64 * 1024,
        );
        let mut batches =
            decoder.map(|b| b.map_err(|e| self.error_message(format!("reading {what}: {}", describe_io(&e)))));
        read(&mut batches)
    }

    /// A store error naming this store.
    pub fn error(&self, e: &postgres::Error) -> Error {
        store_error(&self.shown, describe(e))
    }

    /// A store error naming this store, from a message.
    pub fn error_message(&self, message: impl Into<String>) -> Error {
        store_error(&self.shown, message)
    }
}

/// The server's own message where there is one (`duplicate key value …`),
/// else the driver's, with its cause (`error connecting to server: …`).
fn describe(e: &postgres::Error) -> String {
    if let Some(db) = e.as_db_error() {
        return db.message().to_string();
    }
    let mut text = e.to_string();
    let mut source = std::error::Error::source(e);
    while let Some(cause) = source {
        let cause_text = cause.to_string();
        if !text.contains(&cause_text) {
            text = format!("{text}: {cause_text}");
        }
        source = cause.source();
    }
    text
}

/// An error of a `COPY` stream: the server's message where the stream
/// carries one (a cancel, a timeout, a lost connection), else the I/O
/// error's.
pub(super) fn describe_io(e: &std::io::Error) -> String {
    match e.get_ref().and_then(|inner| inner.downcast_ref::<postgres::Error>()) {
        Some(pg) => describe(pg),
        None => e.to_string(),
    }
}

fn store_error(shown: &Path, message: impl Into<String>) -> Error {
    let message: String = message.into();
    Error::Store {
        path: shown.display().to_string(),
        message: message.lines().next().unwrap_or("").trim().to_string(),
    }
}

pub use crate::store::sql::quote_ident;

/// The version of PostgreSQL client library, for `kontakt --version`.
pub fn driver_version() -> &'static str {
    "rust-postgres 0.19"
}

#[cfg(test)]
mod tests;
