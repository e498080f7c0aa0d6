//! `kontakt audit [--key FIELD[,FIELD]] [--type T] [--out DIR]
//! [--survivor first|last|most-complete] [--since-last]` (SPEC, Audit).

use std::path::{Path, PathBuf};

use clap::Args;

use crate::audit::{self, AuditOptions, Survivor};
use crate::config::Config;
use crate::error::Result;
use crate::fields::KEY_FIELDS;
use crate::map::ContactType;
use crate::store::Store;

#[derive(Debug, Args)]
pub struct AuditArgs {
    /// Keys whose shared values connect contacts, in order of preference
    /// for the `key` column: email, phone, mobile, external_id [default:
    /// the store's `config primary-key` and `secondary-key`, else
    /// email,phone].
    #[arg(long, value_name = "FIELD[,FIELD]")]
    pub key: Option<String>,
    /// Audit only contacts of this type (default: each type on its own;
    /// a cluster never spans types).
    #[arg(long = "type", value_enum)]
    pub contact_type: Option<ContactType>,
    /// Output directory for clusters.csv and summary.json (default:
    /// kontakt-out/audit-<id>).
    #[arg(long, value_name = "DIR")]
    pub out: Option<PathBuf>,
    /// Which member of each cluster is suggested to survive a merge
    /// (`survivor_id`).
    #[arg(long, value_enum, default_value_t = Survivor::First)]
    pub survivor: Survivor,
    /// Report only the clusters that are new or changed since the last
    /// audit of the same keys and type (the first audit reports all).
    #[arg(long)]
    pub since_last: bool,
    /// Print the summary as JSON.
    #[arg(long)]
    pub json: bool,
}

pub fn run(args: &AuditArgs, db: &Path) -> Result<()> {
    // A flag's keys are checked before the store is opened.
    let flag_keys = args.key.as_deref().map(audit::parse_keys).transpose()?;
    let store = Store::open(db)?;
    let keys = match flag_keys {
        Some(keys) => keys,
        None => {
            let config = Config::of(&store)?;
            // The store's matching keys that are audit keys (not id, none).
            let stored: Vec<&str> = [config.primary_key.as_deref(), config.secondary_key.as_deref()]
                .into_iter()
                .flatten()
                .filter(|k| KEY_FIELDS.contains(k))
                .collect();
            let keys = if stored.is_empty() {
                "email,phone".to_string()
            } else {
                stored.join(",")
            };
            audit::parse_keys(&keys)?
        }
    };
    let options = AuditOptions {
        keys,
        contact_type: args.contact_type,
        out: args.out.clone(),
        survivor: args.survivor,
        since_last: args.since_last,
    };
    let summary = audit::run(&store, &options)?;
    if args.json {
        println!(
            "{}",
            serde_json::to_string_pretty(&summary).expect("a summary serializes")
        );
        return Ok(());
    }
    let out = options
        .out
        .unwrap_or_else(|| Path::new("kontakt-out").join(format!("audit-{}", summary.audit_id)));
    println!(
        "audit {}: {} contacts, {} clusters holding {} contacts; {} reported in {} ({} ms)",
        summary.audit_id,
        summary.contacts,
        summary.clusters,
        summary.contacts_in_clusters,
        summary.reported_clusters,
        out.join("clusters.csv").display(),
        summary.elapsed_ms
    );
    if let Some(since) = &summary.since_last {
        println!(
            "since audit {}: {} contacts changed, {} deleted; {} new, {} changed, {} removed clusters",
            since.since_audit.map_or_else(|| "-".to_string(), |a| a.to_string()),
            since.contacts_changed,
            since.contacts_deleted,
            since.new_clusters,
            since.changed_clusters,
            since.removed_clusters
        );
    }
    Ok(())
}
