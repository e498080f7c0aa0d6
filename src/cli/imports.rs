//! `kontakt imports list | show ID|NAME | rename ID|NAME NEW | delete ID|NAME
//! | undo ID|NAME` (SPEC, Deleting an import, Undo); `--json` prints the
//! same as JSON.

use std::path::Path;

use clap::{Args, Subcommand};

use super::print_table;
use crate::error::Result;
use crate::groups::{self, Group};
use crate::store::Store;

#[derive(Debug, Args)]
pub struct ImportsArgs {
    #[command(subcommand)]
    pub command: ImportsCommand,
}

#[derive(Debug, Subcommand)]
pub enum ImportsCommand {
    /// Every import group: id, name, status, times and counts.
    List {
        /// Print JSON (an array of groups).
        #[arg(long)]
        json: bool,
    },
    /// One import group, by id or name.
    Show {
        #[arg(value_name = "ID|NAME")]
        import: String,
        /// Print JSON.
        #[arg(long)]
        json: bool,
    },
    /// Give an import group another (unique) name.
    Rename {
        #[arg(value_name = "ID|NAME")]
        import: String,
        #[arg(value_name = "NEW")]
        new_name: String,
    },
    /// Delete an import group and every contact it created (not those it
    /// only updated), in one transaction.
    Delete {
        #[arg(value_name = "ID|NAME")]
        import: String,
        /// Print JSON (the group as it was, and `contacts_deleted`).
        #[arg(long)]
        json: bool,
    },
    /// Take an import (or a merge) back: delete the contacts it created,
    /// give the contacts it changed their earlier values (every field,
    /// tags, consents), bring back the contacts a merge merged away, and
    /// remove the list memberships it added; in one transaction.
    Undo {
        #[arg(value_name = "ID|NAME")]
        import: String,
        /// Say what the undo would do, and change nothing.
        #[arg(long)]
        dry_run: bool,
        /// Undo even when contacts the import touched were changed since
        /// (later changes to the fields the import changed are lost,
        /// except an opt-out, which is kept; the other fields keep theirs).
        #[arg(long)]
        force: bool,
        /// Print JSON (`import_id`, `name`, `kind`, `dry_run`, `created`,
        /// `restored`, `reinserted`, `memberships`, `changed_later`, and
        /// `custom_fields` when the undo drops some).
        #[arg(long)]
        json: bool,
    },
}

fn json(value: &impl serde::Serialize) -> String {
    serde_json::to_string_pretty(value).unwrap_or_default()
}

pub fn run(args: &ImportsArgs, db: &Path) -> Result<()> {
    // An undo hears signals from the start (see `import::run`).
    let cancel = crate::cancel::Cancel::new();
    if matches!(args.command, ImportsCommand::Undo { .. }) {
        super::import::cancel_on_signals(&cancel)?;
    }
    // Listing and showing only read (SPEC): a read-only store works, and a
    // mistyped --db creates nothing.
    let store = match &args.command {
        ImportsCommand::List { .. } | ImportsCommand::Show { .. } => Store::open_read_only(db)?,
        _ => Store::open(db)?,
    };
    match &args.command {
        ImportsCommand::List { json: as_json } => {
            let list = groups::list(&store)?;
            if *as_json {
                println!("{}", json(&list));
            } else {
                print_groups(&list);
            }
        }
        ImportsCommand::Show { import, json: as_json } => {
            let group = groups::find(&store, import)?;
            if *as_json {
                println!("{}", json(&group));
            } else {
                print_group(&group);
            }
        }
        ImportsCommand::Rename { import, new_name } => {
            let group = groups::rename(&store, import, new_name)?;
            println!("import {} is now named {:?}", group.id, group.name);
        }
        ImportsCommand::Delete { import, json: as_json } => {
            let (group, deleted) = groups::delete(&store, import)?;
            if *as_json {
                let mut value = serde_json::to_value(&group).unwrap_or_default();
                value["contacts_deleted"] = deleted.into();
                println!("{}", json(&value));
            } else {
                println!(
                    "deleted import {} {:?} and the {deleted} contacts it created",
                    group.id, group.name
                );
            }
        }
        ImportsCommand::Undo {
            import,
            dry_run,
            force,
            json: as_json,
        } => {
            let undone = groups::undo(&store, import, *dry_run, *force, &cancel)?;
            if *as_json {
                println!("{}", json(&undone));
            } else {
                let s = &undone.scope;
                let verb = if undone.dry_run { "would undo" } else { "undone" };
                let mut parts = vec![
                    format!("created contacts deleted {}", s.created),
                    format!("changed contacts restored {}", s.restored),
                ];
                if undone.kind == "merge" {
                    parts.push(format!("merged contacts back {}", s.reinserted));
                }
                parts.push(format!("list memberships removed {}", s.memberships));
                if !s.custom_fields.is_empty() {
                    parts.push(format!("custom fields removed {}", s.custom_fields.join(" ")));
                }
                if s.changed_later > 0 {
                    parts.push(format!("of them changed since {} (--force)", s.changed_later));
                }
                println!(
                    "{verb}: {} {} {:?}: {}",
                    undone.kind,
                    undone.import_id,
                    undone.name,
                    parts.join(", ")
                );
            }
        }
    }
    Ok(())
}

fn print_groups(list: &[Group]) {
    let header = [
        "id",
        "name",
        "kind",
        "status",
        "started_at",
        "finished_at",
        "read",
        "failed",
        "imported",
        "updated",
        "skipped",
        "contacts",
        "description",
    ];
    let rows: Vec<Vec<String>> = list
        .iter()
        .map(|g| {
            vec![
                g.id.to_string(),
                g.name.clone(),
                g.kind.clone(),
                g.status.clone(),
                g.started_at.clone(),
                g.finished_at.clone().unwrap_or_default(),
                g.rows_read.to_string(),
                g.rows_failed.to_string(),
                g.imported.to_string(),
                g.updated.to_string(),
                g.skipped.to_string(),
                g.contacts.to_string(),
                g.description.clone().unwrap_or_default(),
            ]
        })
        .collect();
    print_table(&header, &rows);
}

/// The recorded settings `imports show` prints (key, label).
const SETTINGS: &[(&str, &str)] = &[
    ("primary_key", "primary_key"),
    ("secondary_key", "secondary_key"),
    ("on_no_match", "on_no_match"),
    ("on_one_match", "on_one_match"),
    ("on_multiple_match", "on_multiple_match"),
    ("master", "master"),
    ("in_file_duplicates", "in_file_duplicates"),
    ("type", "type"),
    ("tags", "tags"),
    ("list", "list"),
    ("set", "set"),
    ("set_on", "set_on"),
    ("default_country", "default_country"),
    ("consent_yes", "consent_yes"),
    ("consent_no", "consent_no"),
    ("out", "output_directory"),
];

fn print_group(g: &Group) {
    let mut fields: Vec<(&str, String)> = vec![
        ("id", g.id.to_string()),
        ("name", g.name.clone()),
        ("kind", g.kind.clone()),
        ("source", g.source.clone().unwrap_or_default()),
        ("status", g.status.clone()),
        ("reason", g.reason.clone().unwrap_or_default()),
        ("started_at", g.started_at.clone()),
        ("finished_at", g.finished_at.clone().unwrap_or_default()),
        ("rows_read", g.rows_read.to_string()),
        ("rows_failed", g.rows_failed.to_string()),
        ("imported", g.imported.to_string()),
        ("updated", g.updated.to_string()),
        ("skipped", g.skipped.to_string()),
        ("contacts_updated", g.contacts_updated.to_string()),
        ("contacts", g.contacts.to_string()),
        ("description", g.description.clone().unwrap_or_default()),
        ("acknowledged", g.acknowledged.join(",")),
        ("undone_at", g.undone_at.clone().unwrap_or_default()),
    ];
    // The settings it ran with, one line each, in this order.
    if let Some(serde_json::Value::Object(settings)) = &g.settings {
        for (key, label) in SETTINGS {
            let text = match settings.get(*key) {
                None | Some(serde_json::Value::Null) => String::new(),
                Some(serde_json::Value::String(s)) => s.clone(),
                Some(serde_json::Value::Array(items)) => items
                    .iter()
                    .map(|i| i.as_str().map_or_else(|| i.to_string(), str::to_string))
                    .collect::<Vec<_>>()
                    .join(", "),
                Some(other) => other.to_string(),
            };
            fields.push((label, text));
        }
    }
    print_fields(fields.iter().map(|(k, v)| (*k, v.as_str())));
}

/// `key: value` lines, keys aligned.
pub fn print_fields<'a>(fields: impl IntoIterator<Item = (&'a str, &'a str)> + Clone) {
    let width = fields.clone().into_iter().map(|(k, _)| k.len()).max().unwrap_or(0);
    for (key, value) in fields {
        println!("{key:<width$}  {value}");
    }
}
