//! The store's settings (`kontakt config`): keys and values as text; what
//! they mean and which are allowed is [`crate::config`]'s.

use std::collections::BTreeMap;

use super::{Backend, Store};
use crate::error::Result;

impl Store {
    /// Every setting the store holds, by key. A store older than settings,
    /// read as it is, holds none.
    pub fn config(&self) -> Result<BTreeMap<String, String>> {
        dispatch!(self, db => db.config())
    }

    /// Sets `key` to `value`.
    pub fn set_config(&self, key: &str, value: &str) -> Result<()> {
        dispatch!(self, db => db.set_config(key, value))
    }

    /// Removes `key`; whether it was set.
    pub fn unset_config(&self, key: &str) -> Result<bool> {
        dispatch!(self, db => db.unset_config(key))
    }
}
