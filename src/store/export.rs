//! Contacts out of the store (SPEC, Export): a file the store writes
//! itself, streamed from the selection, or the selection row by row as
//! text for a writer of kontakt's own (the workbook).

use crate::error::{Error, Result};

use super::contacts::ContactFilter;
use super::{Backend, Store};

/// The files the store writes itself.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum FileFormat {
    /// With a header row; empty text and no value written apart.
    Csv,
    /// Columns keep their store types (`tags` joined by `;`); zstd.
    Parquet,
}

impl Store {
    /// Writes the contacts a filter selects, ordered by id, to the file
    /// `to`; returns how many. Columns as [`Store::find_contacts`] names
    /// them. A write that fails (the file cannot be created, the disk is
    /// full) is the error `failed` makes of the store's message.
    pub fn export_contacts(
        &self,
        filter: &ContactFilter,
        format: FileFormat,
        to: &str,
        failed: impl FnOnce(&str) -> Error,
    ) -> Result<usize> {
        dispatch!(self, db => db.export_contacts(filter, format, to, failed))
    }

    /// Streams the contacts a filter selects, ordered by id, as text to
    /// `each`: the column names first, then each contact's values (`None`
    /// for no value). Returns how many contacts.
    pub fn for_each_contact(
        &self,
        filter: &ContactFilter,
        each: impl FnMut(&[Option<String>]) -> Result<()>,
    ) -> Result<usize> {
        dispatch!(self, db => db.for_each_contact(filter, each))
    }
}
