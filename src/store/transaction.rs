//! The store's transactions: an import's, an audit's or a merge's statements are one
//! unit, seen by others (and kept) all together or not at all.

use super::{Backend, Store};
use crate::error::Result;

impl Store {
    /// Starts a transaction on this connection.
    pub fn begin(&self) -> Result<()> {
        dispatch!(self, db => db.begin())
    }

    /// Starts a transaction whose every read sees the store as it was when
    /// it began (an audit's: on PostgreSQL `REPEATABLE READ`, which also
    /// lets a second connection read the same snapshot; DuckDB's
    /// transactions always do).
    pub fn begin_snapshot(&self) -> Result<()> {
        dispatch!(self, db => db.begin_snapshot())
    }

    /// Makes the transaction's changes durable and visible.
    pub fn commit(&self) -> Result<()> {
        dispatch!(self, db => db.commit())
    }

    /// Undoes the transaction's changes.
    pub fn rollback(&self) -> Result<()> {
        dispatch!(self, db => db.rollback())
    }

    /// Rolls back after a failure or a cancel: tried twice, as
    /// [`Store::end_group`] (a cancel's interrupt that reached the
    /// connection just before it was disarmed fails the next statement
    /// once); an error when no transaction was open.
    pub fn rollback_after_failure(&self) -> Result<()> {
        dispatch!(self, db => db.rollback_after_failure())
    }
}
