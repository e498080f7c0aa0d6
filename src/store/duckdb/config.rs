//! The store's settings in DuckDB: the `kontakt_config` table (schema 7).

use std::collections::BTreeMap;

use super::DuckDb;
use crate::error::Result;

impl DuckDb {
    pub(crate) fn config(&self) -> Result<BTreeMap<String, String>> {
        // A store of schema 5 or 6 opened read-only has no settings table.
        if self.columns("kontakt_config")?.is_empty() {
            return Ok(BTreeMap::new());
        }
        let mut stmt = self
            .conn
            .prepare("SELECT key, value FROM kontakt_config ORDER BY key")
            .map_err(|e| self.error(&e))?;
        let pairs = stmt
            .query_map([], |r| Ok((r.get(0)?, r.get(1)?)))
            .map_err(|e| self.error(&e))?
            .collect::<std::result::Result<BTreeMap<String, String>, _>>()
            .map_err(|e| self.error(&e))?;
        Ok(pairs)
    }

    pub(crate) fn set_config(&self, key: &str, value: &str) -> Result<()> {
        self.execute(
            "INSERT OR REPLACE INTO kontakt_config (key, value) VALUES (?, ?)",
            duckdb::params![key, value],
        )
        .map(|_| ())
    }

    pub(crate) fn unset_config(&self, key: &str) -> Result<bool> {
        Ok(self.execute("DELETE FROM kontakt_config WHERE key = ?", [key])? > 0)
    }
}
