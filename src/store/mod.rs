//! The contact store: what the pipeline, the audit and the commands need
//! from the place contacts live, in their words. Every backend lives in a
//! module of its own here (today [`duckdb`]); nothing outside `src/store/`
//! names a backend's types or holds SQL text.
//!
//! [`Store`] is an enum over backends, not a trait object: the import's
//! hot path hands whole Arrow batches across (one call per batch, so the
//! match costs nothing measurable), the stream types each backend returns
//! stay concrete, and a new backend is a new variant the compiler makes
//! every method handle. See docs/DESIGN.md, "The store interface".

mod duckdb;
mod postgres;

use std::path::Path;

use crate::error::Result;

use self::duckdb::DuckDb;
pub use self::duckdb::schema::SCHEMA_VERSION;
use self::postgres::Postgres;
pub use self::postgres::is_url;

/// An open contact store.
#[derive(Debug)]
pub struct Store {
    backend: Backend,
}

#[derive(Debug)]
enum Backend {
    DuckDb(DuckDb),
    /// Boxed: its connection settings are large beside DuckDB's handles.
    Postgres(Box<Postgres>),
}

/// Calls the backend's own method of the same meaning.
macro_rules! dispatch {
    ($self:expr, $db:ident => $body:expr) => {
        match &$self.backend {
            Backend::DuckDb($db) => $body,
            Backend::Postgres($db) => $body,
        }
    };
}

/// Interrupts the statement running on one store connection (see
/// [`crate::cancel`]); a no-op once that connection is closed.
pub enum Interrupt {
    DuckDb(duckdb::Interrupt),
    /// PostgreSQL's cancel request, sent on a connection of its own.
    Postgres(::postgres::CancelToken),
}

impl Interrupt {
    pub fn interrupt(&self) {
        match self {
            Interrupt::DuckDb(i) => i.interrupt(),
            Interrupt::Postgres(token) => {
                let _ = token.cancel_query(::postgres::NoTls);
            }
        }
    }
}

impl std::fmt::Debug for Interrupt {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str("Interrupt")
    }
}

impl Store {
    /// Opens the store at `path`, creating it (and its schema) when missing,
    /// and bringing an older schema up to date; groups left `running` by a
    /// process that ended are recorded as `failed` ("interrupted").
    pub fn open(path: &Path) -> Result<Store> {
        check_scheme(path)?;
        let backend = if is_url(path) {
            Backend::Postgres(Box::new(Postgres::open(path)?))
        } else {
            Backend::DuckDb(DuckDb::open(path)?)
        };
        Ok(Store { backend })
    }

    /// Opens an existing store for reading only; a path where no store
    /// exists is an error (nothing is created).
    pub fn open_read_only(path: &Path) -> Result<Store> {
        check_scheme(path)?;
        let backend = if is_url(path) {
            Backend::Postgres(Box::new(Postgres::open_read_only(path)?))
        } else {
            Backend::DuckDb(DuckDb::open_read_only(path)?)
        };
        Ok(Store { backend })
    }

    /// Another connection to the same store, for a thread of its own.
    pub fn try_clone(&self) -> Result<Store> {
        let backend = match &self.backend {
            Backend::DuckDb(db) => Backend::DuckDb(db.try_clone()?),
            Backend::Postgres(db) => Backend::Postgres(Box::new(db.try_clone()?)),
        };
        Ok(Store { backend })
    }

    /// The interrupt of this connection's running statement.
    pub fn interrupt(&self) -> Interrupt {
        match &self.backend {
            Backend::DuckDb(db) => Interrupt::DuckDb(db.interrupt()),
            Backend::Postgres(db) => Interrupt::Postgres(db.interrupt()),
        }
    }

    /// Where the store is (its file, or its URL with the password masked).
    pub fn path(&self) -> &Path {
        dispatch!(self, db => db.path())
    }

    /// The schema version recorded in the store.
    pub fn schema_version(&self) -> Result<i64> {
        dispatch!(self, db => db.schema_version())
    }

    /// How many contacts the store holds (of every type).
    pub fn count_all_contacts(&self) -> Result<i64> {
        dispatch!(self, db => db.count("contacts"))
    }
}

/// A `--db` of another URL scheme than PostgreSQL's (`mysql://…`) is a
/// usage error, not a DuckDB file of that name.
fn check_scheme(db: &Path) -> Result<()> {
    let text = db.to_string_lossy();
    match text.split_once("://") {
        Some((scheme, _))
            if !is_url(db)
                && !scheme.is_empty()
                && scheme.bytes().all(|b| b.is_ascii_alphanumeric() || b"+-.".contains(&b)) =>
        {
            Err(crate::error::Error::usage(format!(
                "{scheme}:// is not a store kontakt opens: a store is a DuckDB file or postgresql://USER@HOST/DB"
            )))
        }
        _ => Ok(()),
    }
}

/// Whether a store is at `db` (a DuckDB file, or a PostgreSQL schema that
/// holds one); nothing is created.
pub fn exists(db: &Path) -> Result<bool> {
    if is_url(db) {
        Postgres::exists(db)
    } else {
        Ok(db.exists())
    }
}

/// Checks that the store at `db` can hold fields of these names (a
/// PostgreSQL store: custom field names of at most 56 bytes), before an
/// import reads a row.
pub fn check_field_names<'a>(db: &Path, mut names: impl Iterator<Item = &'a str>) -> Result<()> {
    if !is_url(db) {
        return Ok(());
    }
    names.try_for_each(postgres::commit::check_custom_field)
}

/// The linked store libraries and their versions, for `kontakt --version`
/// (e.g. `DuckDB v1.5.6`).
pub fn backend_versions() -> String {
    format!("DuckDB {}, {}", duckdb::duckdb_version(), postgres::driver_version())
}

#[cfg(test)]
impl Store {
    /// The DuckDB backend, for the backend's own tests.
    pub(crate) fn duckdb(&self) -> &DuckDb {
        match &self.backend {
            Backend::DuckDb(db) => db,
            Backend::Postgres(_) => panic!("a DuckDB store"),
        }
    }
}

// The interface, by domain.
pub mod audit;
pub mod commit;
pub mod config;
pub mod contacts;
pub mod export;
pub mod groups;
pub mod keys;
pub mod lists;
pub mod merge;
pub(crate) mod sql;
mod transaction;
pub mod transfer;
pub mod undo;
