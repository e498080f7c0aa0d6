//! Transactions on the store's connection.

use super::Postgres;
use crate::error::Result;

impl Postgres {
    pub(crate) fn begin(&self) -> Result<()> {
        self.batch("BEGIN")
    }

    pub(crate) fn begin_snapshot(&self) -> Result<()> {
        self.batch("BEGIN ISOLATION LEVEL REPEATABLE READ")
    }

    pub(crate) fn commit(&self) -> Result<()> {
        self.batch("COMMIT")
    }

    pub(crate) fn rollback(&self) -> Result<()> {
        self.batch("ROLLBACK")
    }

    /// PostgreSQL answers a `ROLLBACK` outside a transaction with a
    /// warning, not an error; a statement cancelled just before ends the
    /// transaction's use, never the connection's.
    pub(crate) fn rollback_after_failure(&self) -> Result<()> {
        self.rollback().or_else(|_| self.rollback())
    }
}
