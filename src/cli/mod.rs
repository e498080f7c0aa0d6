//! Command-line interface: clap arguments (their doc comments are `--help`),
//! resolved into typed settings before any work starts, so every usage error
//! exits 2 before a file or the store is touched. One file per command.

mod audit;
mod config;
mod contacts;
mod import;
mod imports;
mod input;
mod lists;
mod merge;
mod preview;
mod store;
mod synth;

use std::path::PathBuf;

use clap::{CommandFactory, FromArgMatches, Parser, Subcommand};

use crate::error::{Error, Result};

pub use input::InputArgs;

/// Bulk-loads contact files into a contact store, matching and deduplicating
/// as it goes, and audits the store for duplicates.
#[derive(Debug, Parser)]
#[command(name = "kontakt", max_term_width = 100)]
pub struct Cli {
    /// The contact store: a DuckDB file, created on first use, or a
    /// PostgreSQL database, postgresql://USER@HOST/DB[?schema=NAME] (its
    /// schema `kontakt` is created on first use).
    #[arg(
        long,
        global = true,
        env = "KONTAKT_DB",
        default_value = "kontakt.duckdb",
        value_name = "PATH"
    )]
    pub db: PathBuf,

    /// Worker threads (default: one per core).
    #[arg(long, global = true, value_name = "N", value_parser = clap::value_parser!(u16).range(1..))]
    pub threads: Option<u16>,

    #[command(subcommand)]
    pub command: Command,
}

#[derive(Debug, Subcommand)]
pub enum Command {
    /// Show what was detected in a file, its columns, first rows and the
    /// suggested mapping.
    Preview(preview::PreviewArgs),
    /// Import a contact file into the store: normalize, match, apply, and
    /// write categorized outputs and a summary.
    Import(Box<import::ImportArgs>),
    /// Import groups: list, show, rename, delete (with the contacts they
    /// created), undo.
    ///
    /// An import is named by its id or its name; `#ID` is an id only (a
    /// number that is one import's id and another's name is refused as
    /// ambiguous).
    Imports(imports::ImportsArgs),
    /// Stored contacts: list, show, add, delete, export.
    Contacts(contacts::ContactsArgs),
    /// Contact lists and campaigns: create, list, show, rename, delete;
    /// add and remove the contacts a file names; export the members.
    Lists(lists::ListsArgs),
    /// Find clusters of stored contacts that share a key value (connected
    /// across keys), with a suggested survivor each.
    Audit(audit::AuditArgs),
    /// Merge each cluster of an audit into its suggested survivor (one
    /// transaction, recorded as an import group of kind merge).
    Merge(merge::MergeArgs),
    /// Generate synthetic, realistically messy contacts (seeded).
    Gen(synth::GenArgs),
    /// Store settings: the defaults of every import of this store (keys,
    /// default country, consent words, compliance).
    Config(config::ConfigArgs),
    /// The store itself: copy it whole to another backend (a DuckDB file
    /// to PostgreSQL and back).
    Store(store::StoreArgs),
}

/// `kontakt 0.1.0 (DuckDB v1.5.6)`: our version and the linked store
/// libraries'.
fn version() -> String {
    format!("{} ({})", env!("CARGO_PKG_VERSION"), crate::store::backend_versions())
}

/// Parses the command line. Help and version print and exit 0; usage errors
/// print clap's message and exit 2.
pub fn parse() -> Cli {
    let wants_version = std::env::args_os().any(|a| a == "--version" || a == "-V");
    let mut command = Cli::command();
    if wants_version {
        command = command.version(version());
    }
    let matches = command.try_get_matches().unwrap_or_else(|e| usage_exit(&e));
    Cli::from_arg_matches(&matches).unwrap_or_else(|e| usage_exit(&e))
}

/// A usage error on one line (SPEC: errors are one line on stderr), exit
/// 2: clap's message, its tip, and where the help is; help and version
/// print as clap prints them.
fn usage_exit(error: &clap::Error) -> ! {
    use clap::error::ErrorKind;
    if matches!(
        error.kind(),
        ErrorKind::DisplayHelp | ErrorKind::DisplayVersion | ErrorKind::DisplayHelpOnMissingArgumentOrSubcommand
    ) {
        error.exit();
    }
    let text = error.render().to_string();
    let mut message = String::new();
    let named = flag_named_like(error);
    for line in text.lines().map(str::trim) {
        if line.is_empty() || line.starts_with("Usage: ") || line.starts_with("For more information") {
            continue;
        }
        if named.is_some() && line.starts_with("tip: a similar argument exists") {
            continue;
        }
        let line = line.strip_prefix("error: ").unwrap_or(line);
        if !message.is_empty() {
            message.push_str(if message.ends_with(':') { " " } else { "; " });
        }
        message.push_str(line);
    }
    if let Some(flag) = named {
        message.push_str(&format!("; tip: a similar argument exists: '{flag}'"));
    }
    let (path, _) = command_path();
    eprintln!("kontakt: {message} (see `{path} --help`)");
    std::process::exit(2);
}

/// For an unknown `--NAME`, the one flag of the command whose name ends
/// or begins with NAME as a word, or with a word one edit from it
/// (`--country` or `--contry`: `--default-country`), which clap's
/// suggestion by the whole name's spelling misses (it offered `--out`
/// and `--consent-yes`). Clap's suggestion stands when it is one edit
/// from NAME or one of them begins the other (`--headers`: `--header`,
/// not `--no-header`; `--output`: `--out`).
fn flag_named_like(error: &clap::Error) -> Option<String> {
    use clap::error::{ContextKind, ContextValue, ErrorKind};
    if error.kind() != ErrorKind::UnknownArgument {
        return None;
    }
    let Some(ContextValue::String(arg)) = error.get(ContextKind::InvalidArg) else {
        return None;
    };
    let name = arg.strip_prefix("--")?.split('=').next()?;
    if name.is_empty() {
        return None;
    }
    if let Some(ContextValue::String(suggested)) = error.get(ContextKind::SuggestedArg)
        && let Some(suggested) = suggested.strip_prefix("--")
        && (strsim::levenshtein(suggested, name) <= 1 || suggested.starts_with(name) || name.starts_with(suggested))
    {
        return None;
    }
    let (_, command) = command_path();
    let like = |word: &str| word == name || (name.len() >= 5 && strsim::levenshtein(word, name) == 1);
    let mut found = command.get_arguments().filter_map(clap::Arg::get_long).filter(|long| {
        long.split_once('-').is_some_and(|(first, _)| like(first))
            || long.rsplit_once('-').is_some_and(|(_, last)| like(last))
    });
    let first = found.next()?;
    found.next().is_none().then(|| format!("--{first}"))
}

/// `kontakt import`, `kontakt imports list`: the (sub)commands named on the
/// command line, for the help to point to, and the last of them.
fn command_path() -> (String, clap::Command) {
    command_path_of(std::env::args_os().skip(1))
}

/// [`command_path`] of `args` (without the program's name). An option's
/// value is no command (`--db lists import x.csv` is `kontakt import`),
/// nor is what follows `--`; an argument that is not UTF-8 (a file name)
/// is none either.
fn command_path_of(args: impl IntoIterator<Item = std::ffi::OsString>) -> (String, clap::Command) {
    let root = Cli::command();
    let mut command = root.clone();
    let mut path = vec!["kontakt".to_string()];
    let mut args = args.into_iter();
    while let Some(arg) = args.next() {
        let Some(arg) = arg.to_str() else {
            continue;
        };
        if arg == "--" {
            break;
        }
        if arg.starts_with('-') {
            // An option whose value is the next argument (`--db PATH`,
            // `-o FILE`; not `--db=PATH`). Global options (`--db`) are
            // declared on the top command.
            let named = |a: &clap::Arg| match arg.strip_prefix("--") {
                Some(long) => a.get_long() == Some(long),
                None => arg.chars().count() == 2 && a.get_short().is_some_and(|short| arg.ends_with(short)),
            };
            if command
                .get_arguments()
                .chain(root.get_arguments())
                .any(|a| named(a) && a.get_action().takes_values())
            {
                args.next();
            }
            continue;
        }
        if let Some(sub) = command.find_subcommand(arg).cloned() {
            path.push(sub.get_name().to_string());
            command = sub;
        }
    }
    (path.join(" "), command)
}

/// Runs the parsed command.
pub fn run(cli: Cli) -> Result<()> {
    if let Some(threads) = cli.threads {
        rayon::ThreadPoolBuilder::new()
            .num_threads(threads.into())
            .build_global()
            .map_err(|e| Error::usage(format!("--threads {threads}: {e}")))?;
    }
    match cli.command {
        Command::Preview(args) => preview::run(&args),
        Command::Import(args) => import::run(&args, cli.db),
        Command::Imports(args) => imports::run(&args, &cli.db),
        Command::Contacts(args) => contacts::run(&args, &cli.db),
        Command::Lists(args) => lists::run(&args, &cli.db),
        Command::Audit(args) => audit::run(&args, &cli.db),
        Command::Merge(args) => merge::run(&args, &cli.db),
        Command::Gen(args) => synth::run(&args),
        Command::Config(args) => config::run(&args, &cli.db),
        Command::Store(args) => store::run(&args),
    }
}

/// Prints rows as a table with aligned columns (counts and ids, columns
/// of digits only, right-aligned; a phone number with its `+` is text),
/// by the width each cell takes on a terminal (a wide character takes
/// two columns, a combining accent none).
fn print_table(header: &[&str], rows: &[Vec<String>]) {
    print!("{}", table(header, rows));
}

/// `cell` filled with spaces to `width` columns of a terminal, on its
/// right, or on its left when `right_aligned`.
fn pad(cell: &str, width: usize, right_aligned: bool) -> String {
    use unicode_width::UnicodeWidthStr;
    let fill = " ".repeat(width.saturating_sub(cell.width()));
    if right_aligned {
        format!("{fill}{cell}")
    } else {
        format!("{cell}{fill}")
    }
}

/// The text [`print_table`] prints.
fn table(header: &[&str], rows: &[Vec<String>]) -> String {
    use unicode_width::UnicodeWidthStr;
    let mut widths: Vec<usize> = header.iter().map(|h| h.width()).collect();
    for row in rows {
        for (w, cell) in widths.iter_mut().zip(row) {
            *w = (*w).max(cell.width());
        }
    }
    let numeric: Vec<bool> = (0..header.len())
        .map(|c| !rows.is_empty() && rows.iter().all(|r| r[c].bytes().all(|b| b.is_ascii_digit())))
        .collect();
    let line = |cells: &mut dyn Iterator<Item = &str>| {
        let text: Vec<String> = cells
            .zip(&widths)
            .zip(&numeric)
            .map(|((cell, &w), &num)| pad(cell, w, num))
            .collect();
        format!("{}\n", text.join("  ").trim_end())
    };
    let mut out = line(&mut header.iter().copied());
    for row in rows {
        out += &line(&mut row.iter().map(String::as_str));
    }
    out
}

#[cfg(test)]
mod tests {
    use super::{command_path_of, table};

    #[test]
    fn a_table_lines_up_by_the_width_cells_take_on_a_terminal() {
        let rows = vec![
            vec!["1".to_string(), "Jiří Novák".to_string(), "+420602111222".to_string()],
            // A combining accent (macOS file names and exports) takes no
            // column, a CJK character two.
            vec!["22".to_string(), "Rene\u{301}e".to_string(), "x".to_string()],
            vec!["333".to_string(), "李小龙".to_string(), "x".to_string()],
        ];
        let text = table(&["id", "name", "phone"], &rows);
        assert_eq!(
            text,
            " id  name        phone\n  1  Jiří Novák  +420602111222\n 22  Rene\u{301}e       x\n333  李小龙      x\n"
        );
    }

    #[test]
    fn the_command_path_skips_option_values_that_name_a_command() {
        let path = |args: &[&str]| command_path_of(args.iter().map(std::ffi::OsString::from)).0;
        assert_eq!(path(&["--db", "lists", "import", "x.csv"]), "kontakt import");
        assert_eq!(
            path(&["--db", "import", "lists", "show", "--foo"]),
            "kontakt lists show"
        );
        assert_eq!(path(&["--db=lists", "imports", "list"]), "kontakt imports list");
        assert_eq!(
            path(&["contacts", "export", "-o", "list", "--foo"]),
            "kontakt contacts export"
        );
        assert_eq!(
            path(&["--threads", "2", "lists", "show", "import"]),
            "kontakt lists show"
        );
        assert_eq!(path(&["imports", "--", "list"]), "kontakt imports");
        // A flag without a value does not take the next argument.
        assert_eq!(path(&["imports", "list", "--json"]), "kontakt imports list");
        assert_eq!(path(&["contacts", "--json", "list"]), "kontakt contacts list");
    }
}
