//! `kontakt contacts list|show|add|delete|export` (SPEC, Export).

use std::path::{Path, PathBuf};

use clap::{Args, Subcommand};

use super::imports::print_fields;
use super::print_table;
use crate::config::Config;
use crate::contacts::{self, Added, ExportFormat, Filter};
use crate::error::Result;
use crate::map::ContactType;
use crate::normalize::NormalizeSettings;
use crate::normalize::phone::PhoneSettings;
use crate::store::Store;

#[derive(Debug, Args)]
pub struct ContactsArgs {
    #[command(subcommand)]
    pub command: ContactsCommand,
}

/// Which contacts: every filter given must hold.
#[derive(Debug, Args)]
pub struct FilterArgs {
    /// Only contacts created by this import (id or name).
    #[arg(long, value_name = "ID|NAME")]
    pub import: Option<String>,
    /// Only contacts with this tag (repeatable: all of them).
    #[arg(long = "tag", value_name = "TAG")]
    pub tags: Vec<String>,
    /// Only contacts of this type.
    #[arg(long = "type", value_enum)]
    pub contact_type: Option<ContactType>,
    /// Only contacts with this email (compared normalized, as on import).
    #[arg(long, value_name = "EMAIL")]
    pub email: Option<String>,
    /// Only contacts with this phone or mobile number (compared normalized,
    /// as on import: give the country code, or --default-country).
    #[arg(long, value_name = "PHONE")]
    pub phone: Option<String>,
    /// Country of a --phone number without a country code (ISO code;
    /// default: the store's `config default-country`).
    #[arg(long, value_name = "CC")]
    pub default_country: Option<String>,
    /// Only the members of this contact list (`kontakt lists`).
    #[arg(long, value_name = "NAME")]
    pub list: Option<String>,
}

impl FilterArgs {
    /// The filter, its values normalized as an import of this store would
    /// (`--default-country`, else the store's `default-country`).
    fn filter(&self, store: &Store) -> Result<Filter> {
        let config = Config::of(store)?;
        let settings = settings(self.default_country.as_deref().or(config.default_country.as_deref()))?;
        let value = |field: &str, value: &Option<String>| -> Result<Option<String>> {
            match value {
                // An empty filter value matches nothing, not everything.
                Some(v) => Ok(Some(contacts::normalized(field, v, &settings)?.unwrap_or_default())),
                None => Ok(None),
            }
        };
        Ok(Filter {
            import: self.import.clone(),
            tags: self.tags.clone(),
            contact_type: self.contact_type,
            email: value("email", &self.email)?,
            phone: value("phone", &self.phone)?,
            list: self.list.clone(),
            membership: false,
        })
    }
}

/// Normalization settings of the `contacts` commands: the import's
/// defaults, with `--default-country`.
fn settings(default_country: Option<&str>) -> Result<NormalizeSettings> {
    Ok(NormalizeSettings {
        phone: PhoneSettings {
            default_region: super::import::default_region(default_country)?,
            ..PhoneSettings::default()
        },
        ..NormalizeSettings::default()
    })
}

#[derive(Debug, Subcommand)]
pub enum ContactsCommand {
    /// Contacts, ordered by id.
    List {
        #[command(flatten)]
        filter: FilterArgs,
        /// At most N contacts (0: all).
        #[arg(long, default_value_t = 50, value_name = "N")]
        limit: usize,
        /// Print JSON (an array of contacts, every column).
        #[arg(long)]
        json: bool,
    },
    /// Contacts by id, email or phone, every column. An email or phone
    /// is compared normalized, as on import; several matches print all
    /// (JSON: an array instead of one object).
    Show {
        #[arg(value_name = "ID|EMAIL|PHONE")]
        query: String,
        /// Print JSON.
        #[arg(long)]
        json: bool,
        /// Country of a phone number without a country code (ISO code;
        /// default: the store's `config default-country`).
        #[arg(long, value_name = "CC")]
        default_country: Option<String>,
    },
    /// Add one contact, or update the one with that email (or the store's
    /// `config primary-key`, then `secondary-key`): a one-row import with
    /// the store's keys and the default actions. Values are normalized and
    /// checked as on import. Prints the id and `created` or `updated`
    /// (several contacts with that email: their ids, `;`-separated, and
    /// `skipped`; nothing changes).
    Add {
        /// Field values, e.g. email=jan@example.cz first_name=Jan custom.shoe_size=44.
        #[arg(value_name = "FIELD=VALUE", required = true)]
        values: Vec<String>,
        /// Tag the contact (repeatable; a tag cannot contain `;`, which
        /// joins tags in exports).
        #[arg(long = "tag", value_name = "TAG")]
        tags: Vec<String>,
        /// Contact type; only a contact of this type with the email is
        /// updated, as on import.
        #[arg(long = "type", value_enum, default_value = "person")]
        contact_type: ContactType,
        /// Country of a phone number without a country code (ISO code)
        /// [default: the store's `config default-country`].
        #[arg(long, value_name = "CC")]
        default_country: Option<String>,
        /// The compliance items (gdpr, tcpa) whose rules you have read, when
        /// the store asks it of a contact given a consent (`config set
        /// compliance`).
        #[arg(long, value_name = "ITEM[,ITEM]")]
        acknowledge: Vec<String>,
    },
    /// Delete contacts by id, in one transaction (all or none).
    Delete {
        #[arg(required = true)]
        ids: Vec<i64>,
    },
    /// Write contacts to a CSV, Parquet or Excel file, or CSV to standard
    /// output. The file imports back unchanged (`kontakt import FILE`).
    Export {
        #[command(flatten)]
        filter: FilterArgs,
        #[command(flatten)]
        to: ExportTo,
    },
}

/// Where an export goes (`contacts export`, `lists export`).
#[derive(Debug, Args)]
pub struct ExportTo {
    /// The file to write (`.parquet`: Parquet, `.xlsx`: an Excel
    /// workbook of text cells, else CSV; `-`: CSV on standard output;
    /// `.json`, `.xls`, `.gz` and other formats' names are refused
    /// unless --format says what to write).
    #[arg(short = 'o', long = "output", value_name = "FILE|-")]
    pub output: PathBuf,
    /// File format [default: from the extension of FILE].
    #[arg(long, value_enum)]
    pub format: Option<ExportFormat>,
    /// Start CSV with a UTF-8 byte order mark (for spreadsheet programs).
    #[arg(long)]
    pub bom: bool,
}

impl ExportTo {
    /// Writes the contacts `filter` selects; says on standard error how
    /// many (`what`: "contacts", "members of list x") went where.
    pub fn export(&self, store: &Store, filter: &Filter, what: &str) -> Result<()> {
        let format = match self.format {
            Some(format) => format,
            None => ExportFormat::of_path(&self.output)?,
        };
        let n = contacts::export(store, filter, &self.output, format, self.bom)?;
        if self.output == Path::new("-") {
            eprintln!("exported {n} {what} to standard output");
        } else {
            eprintln!("exported {n} {what} to {}", self.output.display());
        }
        Ok(())
    }
}

pub fn run(args: &ContactsArgs, db: &Path) -> Result<()> {
    // Listing, showing and exporting only read (SPEC): a read-only store
    // works, and a mistyped --db creates nothing.
    let store = match &args.command {
        ContactsCommand::List { .. } | ContactsCommand::Show { .. } | ContactsCommand::Export { .. } => {
            Store::open_read_only(db)?
        }
        _ => Store::open(db)?,
    };
    match &args.command {
        ContactsCommand::List { filter, limit, json } => {
            let filter = filter.filter(&store)?;
            let (names, rows) = contacts::list(&store, &filter, *limit)?;
            if *json {
                let objects: Vec<String> = rows.iter().map(|r| json_object(&names, r)).collect();
                println!("[{}]", objects.join(",\n "));
            } else {
                print_contacts(&names, &rows);
                let total = contacts::count(&store, &filter)?;
                if (rows.len() as i64) < total {
                    eprintln!(
                        "{} of {total} contacts shown (--limit 0 shows all; `contacts export` writes them to a file)",
                        rows.len()
                    );
                }
            }
        }
        ContactsCommand::Show {
            query,
            json,
            default_country,
        } => {
            let config = Config::of(&store)?;
            let settings = settings(default_country.as_deref().or(config.default_country.as_deref()))?;
            let (names, found) = contacts::show(&store, query, &settings)?;
            if *json {
                let objects: Vec<String> = found.iter().map(|r| json_object(&names, r)).collect();
                match objects.as_slice() {
                    [one] => println!("{one}"),
                    several => println!("[{}]", several.join(",\n ")),
                }
            } else {
                for (k, values) in found.iter().enumerate() {
                    if k > 0 {
                        println!();
                    }
                    print_fields(
                        names
                            .iter()
                            .zip(values)
                            .map(|(n, v)| (n.as_str(), v.as_deref().unwrap_or(""))),
                    );
                }
            }
        }
        ContactsCommand::Add {
            values,
            tags,
            contact_type,
            default_country,
            acknowledge,
        } => {
            // The store's settings, unless a flag says otherwise.
            let config = Config::of(&store)?;
            let mut settings = settings(default_country.as_deref().or(config.default_country.as_deref()))?;
            settings.consent = config.consent(&[], &[])?;
            let consents = values.iter().any(|pair| {
                pair.split_once('=').is_some_and(|(field, _)| {
                    matches!(
                        field.trim(),
                        "email_opt_in" | "sms_opt_in" | "email_opt_out" | "sms_opt_out"
                    )
                })
            });
            config.check_acknowledged(consents, acknowledge)?;
            match contacts::add(&store, values, tags, *contact_type, settings, &config)? {
                Added::Created(id) => println!("{id} created"),
                Added::Updated(id) => println!("{id} updated"),
                Added::Skipped(key, ids) => {
                    let ids: Vec<String> = ids.iter().map(i64::to_string).collect();
                    println!("{} skipped", ids.join(";"));
                    eprintln!(
                        "{} contacts have this {key} ({}); nothing changed (`kontakt audit --key {key}` finds them)",
                        ids.len(),
                        ids.join(", ")
                    );
                }
            }
        }
        ContactsCommand::Delete { ids } => {
            let deleted = contacts::delete(&store, ids)?;
            println!("deleted {deleted} contacts");
        }
        ContactsCommand::Export { filter, to } => to.export(&store, &filter.filter(&store)?, "contacts")?,
    }
    Ok(())
}

/// A JSON object of one contact, keys in column order; ids as numbers.
fn json_object(names: &[String], values: &[Option<String>]) -> String {
    let members: Vec<String> = names
        .iter()
        .zip(values)
        .map(|(name, value)| {
            let value = match value {
                Some(v) if name == "id" || name == "import_id" => v.clone(),
                Some(v) => serde_json::Value::from(v.as_str()).to_string(),
                None => "null".to_string(),
            };
            format!("{}: {value}", serde_json::Value::from(name.as_str()))
        })
        .collect();
    format!("{{{}}}", members.join(", "))
}

/// The list as a table of the columns people look at first.
fn print_contacts(names: &[String], rows: &[Vec<Option<String>>]) {
    let column = |name: &str| names.iter().position(|n| n == name);
    let shown = ["id", "type", "name", "email", "phone", "mobile", "tags", "import_id"];
    let (first, last, full, company) = (
        column("first_name"),
        column("last_name"),
        column("full_name"),
        column("company"),
    );
    let table: Vec<Vec<String>> = rows
        .iter()
        .map(|row| {
            let get = |c: Option<usize>| c.and_then(|c| row[c].clone()).unwrap_or_default();
            shown
                .iter()
                .map(|&name| match name {
                    "name" => {
                        let given = [get(first), get(last)]
                            .into_iter()
                            .filter(|s| !s.is_empty())
                            .collect::<Vec<_>>()
                            .join(" ");
                        [get(full), given, get(company)]
                            .into_iter()
                            .find(|s| !s.is_empty())
                            .unwrap_or_default()
                    }
                    other => get(column(other)),
                })
                .collect()
        })
        .collect();
    print_table(&shown, &table);
}
