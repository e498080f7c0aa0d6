//! `kontakt config list [--json] | get KEY | set KEY VALUE | unset KEY`
//! (SPEC, Store settings): the store's defaults for its imports.

use std::path::Path;

use clap::{Args, Subcommand};

use super::imports::print_fields;
use crate::config::{self, KEYS};
use crate::error::{Error, Result};
use crate::store::Store;

#[derive(Debug, Args)]
pub struct ConfigArgs {
    #[command(subcommand)]
    pub command: ConfigCommand,
}

/// Keys: primary-key, secondary-key (email, phone, mobile, external_id, id,
/// none), default-country (ISO code), consent-yes, consent-no (words
/// separated by `,`, added to the defaults), unique (email, phone, mobile
/// or external_id: a row that would give a contact a value another contact
/// has fails as not_unique; refused on a store that already breaks it),
/// compliance (gdpr, tcpa or gdpr,tcpa: an import or `contacts add` that
/// maps or sets a consent must give --acknowledge naming each). A flag of
/// the import says otherwise.
#[derive(Debug, Subcommand)]
pub enum ConfigCommand {
    /// Every key, its value in this store (empty: unset) and what it sets.
    List {
        /// Print JSON (an object of every key; null where unset).
        #[arg(long)]
        json: bool,
    },
    /// Print the value of KEY (exit 1 when it is not set).
    Get { key: String },
    /// Set KEY to VALUE.
    Set { key: String, value: String },
    /// Remove KEY's value (its default applies again).
    Unset { key: String },
}

pub fn run(args: &ConfigArgs, db: &Path) -> Result<()> {
    // A key is checked before the store is opened: a usage error touches
    // nothing.
    let known = |key: &str| -> Result<()> {
        if KEYS.iter().any(|(k, _)| *k == key) {
            Ok(())
        } else {
            Err(config::unknown_key(key))
        }
    };
    match &args.command {
        ConfigCommand::List { json } => {
            let values = Store::open_read_only(db)?.config()?;
            if *json {
                let object: serde_json::Map<String, serde_json::Value> = KEYS
                    .iter()
                    .map(|(k, _)| (k.to_string(), values.get(*k).cloned().into()))
                    .collect();
                println!("{}", serde_json::to_string_pretty(&object).unwrap_or_default());
            } else {
                let lines: Vec<(&str, String)> = KEYS
                    .iter()
                    .map(|(k, what)| {
                        let value = values.get(*k).map_or("-".to_string(), |v| v.clone());
                        (*k, format!("{value:<16}  {what}"))
                    })
                    .collect();
                print_fields(lines.iter().map(|(k, v)| (*k, v.as_str())));
            }
        }
        ConfigCommand::Get { key } => {
            known(key)?;
            match Store::open_read_only(db)?.config()?.get(key) {
                Some(value) => println!("{value}"),
                None => {
                    return Err(Error::Store {
                        path: db.display().to_string(),
                        message: format!("{key} is not set"),
                    });
                }
            }
        }
        ConfigCommand::Set { key, value } => {
            known(key)?;
            let value = config::check(key, value)?;
            let store = Store::open(db)?;
            config::check_store(&store, key, &value)?;
            store.set_config(key, &value)?;
            println!("{key} = {value}");
        }
        ConfigCommand::Unset { key } => {
            known(key)?;
            if Store::open(db)?.unset_config(key)? {
                println!("{key} unset");
            } else {
                println!("{key} was not set");
            }
        }
    }
    Ok(())
}
