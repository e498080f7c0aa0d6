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

use std::path::Path;

use crate::error::Result;

use self::duckdb::DuckDb;
pub use self::duckdb::Interrupt;
pub use self::duckdb::schema::SCHEMA_VERSION;

/// An open contact store.
#[derive(Debug)]
pub struct Store {
    backend: Backend,
}

#[derive(Debug)]
enum Backend {
    DuckDb(DuckDb),
}

/// Calls the backend's own method of the same meaning.
macro_rules! dispatch {
    ($self:expr, $db:ident => $body:expr) => {
        match &$self.backend {
            Backend::DuckDb($db) => $body,
        }
    };
}

impl Store {
    /// Opens the store at `path`, creating it (and its schema) when missing,
    /// and bringing an older schema up to date; groups left `running` by a
    /// process that ended are recorded as `failed` ("interrupted").
    pub fn open(path: &Path) -> Result<Store> {
        Ok(Store {
            backend: Backend::DuckDb(DuckDb::open(path)?),
        })
    }

    /// Opens an existing store for reading only; a path where no store
    /// exists is an error (nothing is created).
    pub fn open_read_only(path: &Path) -> Result<Store> {
        Ok(Store {
            backend: Backend::DuckDb(DuckDb::open_read_only(path)?),
        })
    }

    /// Another connection to the same store, for a thread of its own.
    pub fn try_clone(&self) -> Result<Store> {
        Ok(Store {
            backend: Backend::DuckDb(dispatch!(self, db => db.try_clone())?),
        })
    }

    /// The interrupt of this connection's running statement.
    pub fn interrupt(&self) -> Interrupt {
        dispatch!(self, db => db.interrupt())
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

/// The linked store libraries and their versions, for `kontakt --version`
/// (e.g. `DuckDB v1.5.6`).
pub fn backend_versions() -> String {
    format!("DuckDB {}", duckdb::duckdb_version())
}

#[cfg(test)]
impl Store {
    /// The DuckDB backend, for the backend's own tests.
    pub(crate) fn duckdb(&self) -> &DuckDb {
        match &self.backend {
            Backend::DuckDb(db) => db,
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
mod transaction;
pub mod undo;
