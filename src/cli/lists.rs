//! `kontakt lists create|list|show|rename|delete|add|remove|export`
//! (SPEC, Contact lists and campaigns).

use std::path::{Path, PathBuf};
use std::sync::Arc;
use std::time::Instant;

use clap::{Args, Subcommand};

use super::contacts::ExportTo;
use super::imports::print_fields;
use super::input::InputArgs;
use super::print_table;
use crate::cancel::Cancel;
use crate::config::Config;
use crate::contacts::Filter;
use crate::error::{Error, Result};
use crate::lists::{self, Key, MembersOptions, MembersSummary, Mode};
use crate::normalize::NormalizeSettings;
use crate::normalize::phone::PhoneSettings;
use crate::read::Input;
use crate::store::Store;
use crate::store::lists::ListInfo;

#[derive(Debug, Args)]
pub struct ListsArgs {
    #[command(subcommand)]
    pub command: ListsCommand,
}

/// The flags `lists add` and `lists remove` share.
#[derive(Debug, Args)]
pub struct FileArgs {
    /// The list.
    #[arg(value_name = "NAME")]
    pub list: String,
    /// A file of contact keys (CSV/TSV/TXT or XLSX), or `-` for a table
    /// pasted on standard input.
    #[arg(value_name = "FILE|-")]
    pub file: String,
    /// What the key column holds: the store's contact id, or a contact's
    /// external_id, email or phone (found as phone or mobile), normalized
    /// as on import. The column is found by its name (`id`, `crm_id`,
    /// `Identyfikator CRM`; `E-mail`, `Telefon`, …), else it is the file's
    /// only column, else name it with --map.
    #[arg(long, value_enum, value_name = "KEY")]
    pub by: Key,
    #[command(flatten)]
    pub input: InputArgs,
    /// Which column holds what: COLUMN=FIELD, FIELD the --by key (`id`,
    /// `email`, …), `status`, `agent`, `callback_at`, or `-` (not that
    /// column). COLUMN is a header name or colN. Repeatable.
    #[arg(long = "map", value_name = "COLUMN=FIELD")]
    pub maps: Vec<String>,
    /// Country of phone numbers without a country code (ISO code)
    /// [default: the store's `config default-country`].
    #[arg(long, value_name = "CC")]
    pub default_country: Option<String>,
    /// Where to write the row files and summary.json [default:
    /// kontakt-out/<list>-add-<n> or -remove-<n>, n the next free number].
    #[arg(long, value_name = "DIR")]
    pub out: Option<PathBuf>,
    /// Look up and write the files, but change nothing in the store.
    #[arg(long)]
    pub dry_run: bool,
    /// Start the CSV files with a UTF-8 byte order mark (for spreadsheet
    /// programs).
    #[arg(long)]
    pub bom: bool,
    /// Print the summary as JSON instead of the one-line report.
    #[arg(long)]
    pub json: bool,
}

#[derive(Debug, Subcommand)]
pub enum ListsCommand {
    /// Create an empty list.
    Create {
        #[arg(value_name = "NAME")]
        name: String,
        /// What the list is for (shown by `lists list` and `lists show`).
        #[arg(long, value_name = "TEXT")]
        description: Option<String>,
    },
    /// Every list: name, description, members, created_at.
    List {
        /// Print JSON (an array of lists).
        #[arg(long)]
        json: bool,
    },
    /// One list, with its members counted by status.
    Show {
        #[arg(value_name = "NAME")]
        name: String,
        /// Print JSON.
        #[arg(long)]
        json: bool,
    },
    /// Give a list another (free) name.
    Rename {
        #[arg(value_name = "NAME")]
        name: String,
        #[arg(value_name = "NEW")]
        new_name: String,
    },
    /// Delete a list and its memberships (never a contact).
    Delete {
        #[arg(value_name = "NAME")]
        name: String,
    },
    /// Put the contacts a file names on a list, in one transaction. Writes
    /// added.csv, updated.csv (already members: status, agent and callback
    /// replaced by the row's non-empty values), not_found.csv, failed.csv
    /// and summary.json; every row is in exactly one of the four files.
    Add {
        #[command(flatten)]
        file: FileArgs,
        /// Status of new members whose row has none [default: new].
        #[arg(long, value_name = "S")]
        status: Option<String>,
        /// The column of each member's status [default: a column named
        /// status, Stav, Stan, …].
        #[arg(long, value_name = "COL")]
        status_column: Option<String>,
        /// The column of each member's agent [default: a column named
        /// agent, operator, owner, …].
        #[arg(long, value_name = "COL")]
        agent_column: Option<String>,
        /// The column of each member's callback time: a date as for
        /// birth_date (2026-12-01, 01.12.2026, 01/12/2026) with an optional
        /// HH:MM[:SS] [default: a column named callback, callback_at, …].
        #[arg(long, value_name = "COL")]
        callback_column: Option<String>,
        /// Create the list if there is none of that name (otherwise an
        /// unknown list is a usage error).
        #[arg(long)]
        create: bool,
    },
    /// Take the contacts a file names off a list, in one transaction.
    /// Writes removed.csv, not_found.csv (no such contact, or not a
    /// member), failed.csv and summary.json.
    Remove {
        #[command(flatten)]
        file: FileArgs,
    },
    /// Write a list's members: the contact columns as `contacts export`
    /// writes them, then status, agent, callback_at, added_at.
    Export {
        #[arg(value_name = "NAME")]
        name: String,
        #[command(flatten)]
        to: ExportTo,
    },
}

fn json(value: &impl serde::Serialize) -> String {
    serde_json::to_string_pretty(value).unwrap_or_default()
}

pub fn run(args: &ListsArgs, db: &Path) -> Result<()> {
    // Adding and removing hear signals from the start (see `import::run`).
    let cancel = Cancel::new();
    if matches!(args.command, ListsCommand::Add { .. } | ListsCommand::Remove { .. }) {
        super::import::cancel_on_signals(&cancel)?;
    }
    // Listing, showing and exporting only read (SPEC): a read-only store
    // works, and a mistyped --db creates nothing. Adding and removing
    // open the store themselves (a dry run reads only).
    let open = |read_only: bool| {
        if read_only {
            Store::open_read_only(db)
        } else {
            Store::open(db)
        }
    };
    match &args.command {
        ListsCommand::Create { name, description } => {
            super::import::check_description(description.as_deref())?;
            let list = lists::create(&open(false)?, name, description.as_deref())?;
            println!("created list {:?}", list.name);
        }
        ListsCommand::List { json: as_json } => {
            let all = lists::list(&open(true)?)?;
            if *as_json {
                println!("{}", json(&all));
            } else {
                print_lists(&all);
            }
        }
        ListsCommand::Show { name, json: as_json } => {
            let detail = lists::show(&open(true)?, name)?;
            if *as_json {
                println!("{}", json(&detail));
            } else {
                let mut fields = info_fields(&detail.list);
                fields.extend(
                    detail
                        .statuses
                        .iter()
                        .map(|(status, n)| (format!("status {status}"), n.to_string())),
                );
                print_fields(fields.iter().map(|(k, v)| (k.as_str(), v.as_str())));
            }
        }
        ListsCommand::Rename { name, new_name } => {
            let list = lists::rename(&open(false)?, name, new_name)?;
            println!("list {name:?} is now named {:?}", list.name);
        }
        ListsCommand::Delete { name } => {
            let (list, removed) = lists::delete(&open(false)?, name)?;
            println!("deleted list {:?} and its {removed} memberships", list.name);
        }
        ListsCommand::Add {
            file,
            status,
            status_column,
            agent_column,
            callback_column,
            create,
        } => {
            if let Some(s) = status
                && s.trim().is_empty()
            {
                return Err(Error::usage("--status: empty (new members get `new` without it)"));
            }
            let mut options = file.options(Mode::Add, db)?;
            options.status = status.as_ref().map(|s| s.trim().to_string());
            options.status_column = status_column.clone();
            options.agent_column = agent_column.clone();
            options.callback_column = callback_column.clone();
            options.create = *create;
            members(&options, file.json, &cancel)?;
        }
        ListsCommand::Remove { file } => members(&file.options(Mode::Remove, db)?, file.json, &cancel)?,
        ListsCommand::Export { name, to } => {
            let store = open(true)?;
            let list = lists::find(&store, name)?;
            let filter = Filter {
                list: Some(list.name.clone()),
                membership: true,
                ..Filter::default()
            };
            to.export(&store, &filter, &format!("members of list {:?}", list.name))?;
        }
    }
    Ok(())
}

impl FileArgs {
    /// The run's options: flags checked, the store's default country
    /// unless --default-country says otherwise.
    fn options(&self, mode: Mode, db: &Path) -> Result<MembersOptions> {
        let config = Config::of_store_at(db)?;
        let region =
            super::import::default_region(self.default_country.as_deref().or(config.default_country.as_deref()))?;
        Ok(MembersOptions {
            mode,
            list: self.list.clone(),
            input: Input::from_arg(&self.file),
            read: self.input.resolve()?,
            by: self.by,
            maps: self.maps.clone(),
            status: None,
            status_column: None,
            agent_column: None,
            callback_column: None,
            create: false,
            out: self.out.clone(),
            dry_run: self.dry_run,
            bom: self.bom,
            settings: NormalizeSettings {
                phone: PhoneSettings {
                    default_region: region,
                    ..PhoneSettings::default()
                },
                ..NormalizeSettings::default()
            },
            db: db.to_path_buf(),
        })
    }
}

/// Runs `lists add` or `lists remove` (Ctrl-C and SIGTERM cancel it) and
/// reports.
fn members(options: &MembersOptions, as_json: bool, cancel: &Arc<Cancel>) -> Result<()> {
    let started = Instant::now();
    let summary = super::input::with_spooled_stdin(&options.input, cancel, |input| {
        lists::members::run(options, &lists::members::Run { input, cancel, started })
    })?;
    if cancel.requested().is_some() && !summary.dry_run {
        eprintln!("kontakt: the list had reached its commit when the signal came; it is complete");
    }
    if as_json {
        println!("{}", json(&summary));
    } else {
        println!("{}", report(&summary));
    }
    Ok(())
}

/// The one-line report of `lists add` or `lists remove`.
fn report(s: &MembersSummary) -> String {
    let mut parts = Vec::new();
    for (n, what) in [(s.added, "added"), (s.updated, "updated"), (s.removed, "removed")] {
        if let Some(n) = n {
            parts.push(format!("{n} {what}"));
        }
    }
    parts.push(format!("{} not found", s.not_found));
    let reasons: Vec<String> = s.failed_by_reason.iter().map(|(r, n)| format!("{n} {r}")).collect();
    if reasons.is_empty() {
        parts.push(format!("{} failed", s.failed));
    } else {
        parts.push(format!("{} failed ({})", s.failed, reasons.join(", ")));
    }
    format!(
        "list {:?}: {} rows read: {}; {} members{} in {:.1} s -> {}",
        s.list,
        s.rows_read,
        parts.join(", "),
        s.members,
        if s.dry_run { " [dry run]" } else { "" },
        s.elapsed_ms as f64 / 1000.0,
        s.out
    )
}

fn info_fields(list: &ListInfo) -> Vec<(String, String)> {
    vec![
        ("id".into(), list.id.to_string()),
        ("name".into(), list.name.clone()),
        ("description".into(), list.description.clone().unwrap_or_default()),
        ("members".into(), list.members.to_string()),
        ("created_at".into(), list.created_at.clone()),
    ]
}

fn print_lists(all: &[ListInfo]) {
    let header = ["id", "name", "members", "created_at", "description"];
    let rows: Vec<Vec<String>> = all
        .iter()
        .map(|l| {
            vec![
                l.id.to_string(),
                l.name.clone(),
                l.members.to_string(),
                l.created_at.clone(),
                l.description.clone().unwrap_or_default(),
            ]
        })
        .collect();
    print_table(&header, &rows);
}
