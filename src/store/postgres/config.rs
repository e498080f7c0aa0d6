//! The store's settings (`kontakt config`) in PostgreSQL.

use std::collections::BTreeMap;

use super::Postgres;
use crate::error::Result;

impl Postgres {
    pub(crate) fn config(&self) -> Result<BTreeMap<String, String>> {
        Ok(self
            .query("SELECT key, value FROM kontakt_config ORDER BY key", &[])?
            .iter()
            .map(|r| (r.get(0), r.get(1)))
            .collect())
    }

    pub(crate) fn set_config(&self, key: &str, value: &str) -> Result<()> {
        self.execute(
            "INSERT INTO kontakt_config (key, value) VALUES ($1, $2) \
             ON CONFLICT (key) DO UPDATE SET value = excluded.value",
            &[&key, &value],
        )
        .map(|_| ())
    }

    pub(crate) fn unset_config(&self, key: &str) -> Result<bool> {
        Ok(self.execute("DELETE FROM kontakt_config WHERE key = $1", &[&key])? > 0)
    }
}
