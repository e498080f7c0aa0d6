//! `kontakt merge --audit DIR [--master existing|file] [--name NAME]
//! [--keep-dropped note|custom.NAME|none] [--dry-run] [--json]`: merges an
//! audit's clusters into their survivors, and logs what did not survive.

use std::path::{Path, PathBuf};

use clap::Args;

use crate::apply::Master;
use crate::audit::merge::{self, KeepDropped, MergeOptions};
use crate::error::Result;
use crate::store::Store;

#[derive(Debug, Args)]
pub struct MergeArgs {
    /// The output directory of an audit (its clusters.csv and summary.json).
    #[arg(long = "audit", value_name = "DIR")]
    pub audit_dir: PathBuf,
    /// `existing`: the survivor keeps its values, empty fields are filled
    /// from the other members (oldest first); `file`: the other members'
    /// values overwrite the survivor's (newest wins).
    #[arg(long, value_enum, default_value_t = Master::Existing)]
    pub master: Master,
    /// The merge's group name (default: merge-audit-<audit id>).
    #[arg(long)]
    pub name: Option<String>,
    /// Where a value that does not survive in its own field also goes (a
    /// merged contact's other email, say): `note` appends "merged from 123:
    /// email=x@y.cz" to the survivor's note, `custom.NAME` to that custom
    /// field (created if missing), `none` nowhere else. Every such value is
    /// always a row of merged.csv in the audit directory (survivor_id,
    /// merged_id, field, value, kept_in); consents only there.
    #[arg(long, value_name = "note|custom.NAME|none", default_value = "none", value_parser = KeepDropped::parse)]
    pub keep_dropped: KeepDropped,
    /// Check and count everything, and write merged.csv (what would be
    /// dropped); change nothing in the store.
    #[arg(long)]
    pub dry_run: bool,
    /// Print the summary as JSON.
    #[arg(long)]
    pub json: bool,
}

pub fn run(args: &MergeArgs, db: &Path) -> Result<()> {
    let cancel = crate::cancel::Cancel::new();
    super::import::cancel_on_signals(&cancel)?;
    let store = Store::open(db)?;
    let summary = merge::run(
        &store,
        &MergeOptions {
            audit_dir: args.audit_dir.clone(),
            master: args.master,
            dry_run: args.dry_run,
            name: args.name.clone(),
            keep_dropped: args.keep_dropped.clone(),
        },
        &cancel,
    )?;
    if args.json {
        println!(
            "{}",
            serde_json::to_string_pretty(&summary).expect("a summary serializes")
        );
    } else {
        println!(
            "{}{}: {} clusters of audit {}, {} contacts merged into {} survivors, {} values not kept in their field{} -> {} ({} ms)",
            summary.name,
            if summary.dry_run {
                " (dry run, nothing changed)"
            } else {
                ""
            },
            summary.clusters,
            summary.audit_id,
            summary.contacts_merged,
            summary.survivors,
            summary.values_dropped,
            summary
                .dropped_kept_in
                .as_deref()
                .map(|f| format!(" (appended to {f})"))
                .unwrap_or_default(),
            summary.merged_csv,
            summary.elapsed_ms
        );
    }
    Ok(())
}
