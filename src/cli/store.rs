//! `kontakt store copy FROM TO [--json]`: a whole store moved to another
//! backend (see [`crate::store::transfer`]).

use std::path::{Path, PathBuf};

use clap::{Args, Subcommand};

use crate::error::{Error, Result};
use crate::store::Store;

#[derive(Debug, Args)]
pub struct StoreArgs {
    #[command(subcommand)]
    pub command: StoreCommand,
}

#[derive(Debug, Subcommand)]
pub enum StoreCommand {
    /// Copy the whole store FROM (a DuckDB file or a postgresql:// URL)
    /// into TO, a new or empty store of either kind: contacts with their
    /// ids, import groups, lists and members, settings and audit state, in
    /// one transaction. FROM takes no import meanwhile. Undo records stay
    /// behind: a copied import that changed stored contacts cannot be
    /// undone in TO.
    Copy {
        #[arg(value_name = "FROM")]
        from: PathBuf,
        #[arg(value_name = "TO")]
        to: PathBuf,
        /// Print what was copied as JSON.
        #[arg(long)]
        json: bool,
    },
}

pub fn run(args: &StoreArgs) -> Result<()> {
    let StoreCommand::Copy { from, to, json } = &args.command;
    let cancel = crate::cancel::Cancel::new();
    super::import::cancel_on_signals(&cancel)?;
    if same_file(from, to) {
        return Err(Error::usage(format!(
            "store copy: FROM and TO are the same store ({})",
            from.display()
        )));
    }
    // A FROM that holds no store is an error that creates nothing.
    drop(Store::open_read_only(from)?);
    // FROM is opened to write: its writer lock keeps imports out while it
    // is read, and a store of an older schema is brought up to date.
    let source = Store::open(from)?;
    // A DuckDB file this copy creates is removed again if the copy fails
    // or is cancelled: TO is left as it was, absent.
    let new_file = !crate::store::is_url(to) && !crate::store::exists(to)?;
    let new_wal = new_file && !wal_of(to).exists();
    let done = Store::open(to).and_then(|target| {
        let copied = crate::store::transfer::copy(&source, &target, &cancel)?;
        Ok((target, copied))
    });
    let (target, copied) = match done {
        Ok(done) => done,
        Err(e) => {
            if new_file {
                let _ = std::fs::remove_file(to);
            }
            if new_wal {
                let _ = std::fs::remove_file(wal_of(to));
            }
            return Err(e);
        }
    };
    if *json {
        println!("{}", serde_json::to_string_pretty(&copied).unwrap_or_default());
    } else {
        println!(
            "copied {} contacts, {} import groups, {} lists ({} memberships), {} audits and {} settings \
             from {} to {}",
            copied.contacts,
            copied.import_groups,
            copied.lists,
            copied.list_members,
            copied.audits,
            copied.settings,
            source.path().display(),
            target.path().display()
        );
        if copied.undo_left_behind > 0 {
            println!(
                "the undo records of {} import(s) or merge(s) stayed behind: in {} they cannot be undone \
                 where they changed stored contacts",
                copied.undo_left_behind,
                target.path().display()
            );
        }
    }
    Ok(())
}

/// Whether `a` and `b` name one DuckDB file (a URL is compared as text).
fn same_file(a: &Path, b: &Path) -> bool {
    match (a.canonicalize(), b.canonicalize()) {
        (Ok(a), Ok(b)) => a == b,
        _ => a == b,
    }
}

/// The write-ahead log DuckDB keeps beside a database file (`FILE.wal`).
fn wal_of(db: &Path) -> PathBuf {
    let mut name = db.as_os_str().to_owned();
    name.push(".wal");
    PathBuf::from(name)
}
