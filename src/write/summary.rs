//! `summary.json` (SPEC): the counts of one import. `rows_read =
//! rows_failed + imported + updated + skipped`.

use std::collections::BTreeMap;
use std::path::Path;

use serde::Serialize;

use crate::error::{Error, Result};

#[derive(Debug, Clone, Default, Serialize, PartialEq)]
pub struct Summary {
    /// Null with `--dry-run`.
    pub import_id: Option<i64>,
    pub name: String,
    pub source: String,
    /// `--description`, if given.
    pub description: Option<String>,
    /// The compliance items the import acknowledged (`--acknowledge`).
    pub acknowledged: Vec<String>,
    pub dry_run: bool,
    pub rows_read: u64,
    pub rows_failed: u64,
    pub failed_by_reason: BTreeMap<&'static str, u64>,
    pub no_match: u64,
    pub one_match: u64,
    pub multiple_match: u64,
    pub imported: u64,
    pub updated: u64,
    pub skipped: u64,
    /// Stored contacts changed by updates (a row may update several, and
    /// several rows one).
    pub contacts_updated: u64,
    pub elapsed_ms: u64,
    pub rows_per_sec: u64,
    /// libphonenumber metadata version used for phone validation.
    pub phone_metadata: &'static str,
    /// Wall time per stage, in milliseconds (stages overlap on threads, so
    /// these need not add up to `elapsed_ms`).
    pub stages_ms: BTreeMap<&'static str, u64>,
    /// Peak resident memory of the process (MiB) when each stage ended:
    /// `build_index`, `stream` (read, normalize, match, write, append),
    /// `commit`. Empty where the OS does not report it.
    pub peak_memory_mib: BTreeMap<&'static str, u64>,
}

/// Peak resident memory of this process so far (Linux `VmHWM`), in MiB.
pub fn peak_memory_mib() -> Option<u64> {
    let status = std::fs::read_to_string("/proc/self/status").ok()?;
    let kb: u64 = status
        .lines()
        .find(|l| l.starts_with("VmHWM:"))?
        .split_whitespace()
        .nth(1)?
        .parse()
        .ok()?;
    Some(kb / 1024)
}

impl Summary {
    pub fn write(&self, dir: &Path) -> Result<()> {
        let path = dir.join("summary.json");
        let mut text = serde_json::to_string_pretty(self).expect("a summary serializes");
        text.push('\n');
        std::fs::write(&path, text).map_err(|e| Error::io(&path, e))
    }
}
