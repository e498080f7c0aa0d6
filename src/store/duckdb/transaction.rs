//! Transactions on DuckDB: one per connection, by statement.

use super::DuckDb;
use crate::error::Result;

impl DuckDb {
    pub(crate) fn begin(&self) -> Result<()> {
        self.execute_batch("BEGIN TRANSACTION")
    }

    /// DuckDB's transactions read one snapshot.
    pub(crate) fn begin_snapshot(&self) -> Result<()> {
        self.begin()
    }

    pub(crate) fn commit(&self) -> Result<()> {
        self.execute_batch("COMMIT")
    }

    pub(crate) fn rollback(&self) -> Result<()> {
        self.execute_batch("ROLLBACK")
    }

    pub(crate) fn rollback_after_failure(&self) -> Result<()> {
        self.rollback().or_else(|_| self.rollback())
    }
}
