//! `kontakt merge --audit DIR [--master existing|file] [--name NAME]
//! [--dry-run] [--json]`: merges an audit's clusters into their survivors.

use std::path::{Path, PathBuf};

use clap::Args;

use crate::apply::Master;
use crate::audit::merge::{self, MergeOptions};
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
    /// Check and count everything; change nothing in the store.
    #[arg(long)]
    pub dry_run: bool,
    /// Print the summary as JSON.
    #[arg(long)]
    pub json: bool,
}

pub fn run(args: &MergeArgs, db: &Path) -> Result<()> {
    let store = Store::open(db)?;
    let summary = merge::run(
        &store,
        &MergeOptions {
            audit_dir: args.audit_dir.clone(),
            master: args.master,
            dry_run: args.dry_run,
            name: args.name.clone(),
        },
    )?;
    if args.json {
        println!(
            "{}",
            serde_json::to_string_pretty(&summary).expect("a summary serializes")
        );
    } else {
        println!(
            "{}{}: {} clusters of audit {}, {} contacts merged into {} survivors ({} ms)",
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
            summary.elapsed_ms
        );
    }
    Ok(())
}
