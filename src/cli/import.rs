//! `kontakt import FILE|- [input flags] [mapping flags] [matching flags]
//! [output flags]`: flags resolved into [`ImportOptions`] (usage errors exit
//! 2 before the store is touched), then the pipeline of [`crate::import`].

use std::io::IsTerminal;
use std::path::{Path, PathBuf};
use std::sync::Arc;
use std::time::Instant;

use clap::{Args, ValueEnum};

mod progress;

use super::InputArgs;
use crate::apply::{Action, Actions, Master, Mode, OnMultipleMatch, OnNoMatch, OnOneMatch};
use crate::cancel::{Cancel, Signal};
use crate::config::Config;
use crate::error::{Error, Result};
use crate::import::{self, ImportOptions, Run};
use crate::map::{ContactType, MappingOptions, Unmapped};
use crate::matching::Category;
use crate::matching::Duplicates;
use crate::normalize::phone::{self, PhoneSettings, Transform, ValidRule};
use crate::normalize::stage::key_field;
use crate::normalize::{InvalidValues, NormalizeSettings};
use crate::read::Input;
use crate::write::{OutputFormat, Summary};

#[derive(Debug, Clone, Copy, PartialEq, Eq, ValueEnum)]
pub enum Progress {
    Auto,
    Always,
    Never,
}

#[derive(Debug, Args)]
pub struct ImportArgs {
    /// Contact file (CSV/TSV/TXT or XLSX), or `-` for a table pasted on standard input.
    pub file: String,

    #[command(flatten)]
    pub input: InputArgs,

    // Mapping
    /// Map a column (header name or colN) to a field; FIELD `-` skips the column.
    /// `email_opt_out`/`sms_opt_out` read an opt-out column: yes stores opt-out,
    /// no stores unknown.
    #[arg(long = "map", value_name = "COLUMN=FIELD", help_heading = "Mapping")]
    pub maps: Vec<String>,
    /// TOML file with a [map] table of COLUMN = FIELD.
    #[arg(long, value_name = "FILE", help_heading = "Mapping")]
    pub mapping: Option<PathBuf>,
    /// Do not map headers by name and synonyms.
    #[arg(long, help_heading = "Mapping")]
    pub no_auto_map: bool,
    /// What happens to columns no field is mapped to.
    #[arg(long, value_enum, default_value = "ignore", help_heading = "Mapping")]
    pub unmapped: Unmapped,
    /// A constant value for a field, for every row.
    #[arg(long = "set", value_name = "FIELD=VALUE", help_heading = "Mapping")]
    pub sets: Vec<String>,
    /// `--set` for the rows of one category only (no_match, one_match,
    /// multiple_match), e.g. `one_match:email_opt_in=yes`: on one_match and
    /// multiple_match rows that update with `--master file`, it overwrites
    /// what the stored contacts have (with `existing`, it only fills empty
    /// fields); repeatable.
    #[arg(long = "set-on", value_name = "CATEGORY:FIELD=VALUE", help_heading = "Mapping")]
    pub set_on: Vec<String>,
    /// Tag every imported or updated contact (repeatable; a tag cannot
    /// contain `;`, which joins tags in exports).
    #[arg(long = "tag", value_name = "TAG", help_heading = "Mapping")]
    pub tags: Vec<String>,
    /// Put every contact the import creates or updates on the contact list
    /// NAME (created if missing), status `new`, in the import's own
    /// transaction; a contact on it already keeps its membership as it is.
    #[arg(long, value_name = "NAME", help_heading = "Mapping")]
    pub list: Option<String>,
    /// Contact type of the imported contacts (and of those matched).
    #[arg(long = "type", value_enum, default_value = "person", help_heading = "Mapping")]
    pub contact_type: ContactType,
    /// A value that cannot be its field fails the row, or is dropped with a warning.
    #[arg(long, value_enum, default_value = "fail", help_heading = "Mapping")]
    pub invalid_values: InvalidValues,
    /// Phone transform rule, e.g. '[11]/-7+8' or '[10]/+7' (repeatable; first that applies wins).
    #[arg(long = "phone-transform", value_name = "RULE", help_heading = "Mapping")]
    pub phone_transforms: Vec<String>,
    /// Phone digit-count rule, e.g. '[11]' or '[9-12]' (repeatable; any may match).
    #[arg(long = "phone-valid", value_name = "RULE", help_heading = "Mapping")]
    pub phone_valid: Vec<String>,
    /// Country of phone numbers without a country code or a country field
    /// (ISO code) [default: the store's `config default-country`].
    #[arg(long, value_name = "CC", help_heading = "Mapping")]
    pub default_country: Option<String>,
    /// The compliance items (gdpr, tcpa) whose rules you have read, when
    /// the store asks it of an import that maps or sets a consent (`config
    /// set compliance`); recorded with the import.
    #[arg(long, value_name = "ITEM[,ITEM]", help_heading = "Mapping")]
    pub acknowledge: Vec<String>,
    /// Another value meaning consent given (repeatable; added to the
    /// defaults and the store's `config consent-yes`).
    #[arg(long = "consent-yes", value_name = "WORD", help_heading = "Mapping")]
    pub consent_yes: Vec<String>,
    /// Another value meaning consent refused (repeatable; added to the
    /// defaults and the store's `config consent-no`).
    #[arg(long = "consent-no", value_name = "WORD", help_heading = "Mapping")]
    pub consent_no: Vec<String>,

    // Matching
    /// Key a row is matched by: email, phone, mobile, external_id, id (the
    /// stored contact id, e.g. from `contacts export`) or none [default:
    /// the store's `config primary-key`, else email].
    #[arg(long, value_name = "FIELD", help_heading = "Matching")]
    pub primary_key: Option<String>,
    /// Key for rows whose primary key is empty or finds nothing [default:
    /// the store's `config secondary-key`, else none].
    #[arg(long, value_name = "FIELD", help_heading = "Matching")]
    pub secondary_key: Option<String>,
    /// add = import/skip/skip, update = skip/update/skip, upsert = import/update/skip.
    #[arg(long, value_enum, help_heading = "Matching")]
    pub mode: Option<Mode>,
    /// Rows that match no stored contact [default: import].
    #[arg(long, value_enum, help_heading = "Matching")]
    pub on_no_match: Option<OnNoMatch>,
    /// Rows that match one stored contact [default: update].
    #[arg(long, value_enum, help_heading = "Matching")]
    pub on_one_match: Option<OnOneMatch>,
    /// Rows that match several stored contacts (first/last by created_at) [default: skip].
    #[arg(long, value_enum, help_heading = "Matching")]
    pub on_multiple_match: Option<OnMultipleMatch>,
    /// On update: file values overwrite, or only fill empty stored fields.
    #[arg(long, value_enum, default_value = "file", help_heading = "Matching")]
    pub master: Master,
    /// Rows sharing a key inside the file.
    #[arg(long, value_enum, default_value = "first", help_heading = "Matching")]
    pub in_file_duplicates: Duplicates,

    // Output
    /// Output directory [default: kontakt-out/<import name>, or
    /// kontakt-out/<import name>.dry-run with --dry-run].
    #[arg(long, value_name = "DIR", help_heading = "Output")]
    pub out: Option<PathBuf>,
    /// Format of the row files.
    #[arg(long, value_enum, default_value = "csv", help_heading = "Output")]
    pub output_format: OutputFormat,
    /// What this import is, recorded with its group (`imports list|show`,
    /// summary.json).
    #[arg(long, value_name = "TEXT", help_heading = "Output")]
    pub description: Option<String>,
    /// Import group name [default: the file's stem]; unique among running and completed imports.
    #[arg(long, value_name = "NAME", help_heading = "Output")]
    pub name: Option<String>,
    /// Classify and write the outputs; change nothing in the store.
    #[arg(long, help_heading = "Output")]
    pub dry_run: bool,
    /// Progress on standard error (percent of the input read, rows/s, ETA,
    /// phase); `auto`: only when standard error is a terminal (not `TERM=dumb`).
    #[arg(long, value_enum, default_value = "auto", help_heading = "Output")]
    pub progress: Progress,
    /// Print the summary object (the same as summary.json) on standard
    /// output instead of the one-line report.
    #[arg(long, help_heading = "Output")]
    pub json: bool,
    /// Prefix CSV cells that start with = + - @ with ' (spreadsheet formula
    /// injection); normalized phone columns are never changed. Such a file
    /// imports back as it was: on import, a leading ' before = + - @ is
    /// dropped.
    #[arg(long, help_heading = "Output")]
    pub excel_safe: bool,
    /// Start the CSV row files with a UTF-8 byte order mark, so that
    /// spreadsheet programs read them as UTF-8.
    #[arg(long, help_heading = "Output")]
    pub bom: bool,
}

impl ImportArgs {
    fn resolve(&self, db: PathBuf, config: Config) -> Result<ImportOptions> {
        let transforms = self
            .phone_transforms
            .iter()
            .map(|r| Transform::parse(r).map_err(Error::usage))
            .collect::<Result<Vec<_>>>()?;
        let valid = self
            .phone_valid
            .iter()
            .map(|r| ValidRule::parse(r).map_err(Error::usage))
            .collect::<Result<Vec<_>>>()?;
        let default_region = default_region(self.default_country.as_deref().or(config.default_country.as_deref()))?;
        let consent = config.consent(&self.consent_yes, &self.consent_no)?;
        // A flag says otherwise than the store's settings.
        let (primary_flag, primary) = match (&self.primary_key, &config.primary_key) {
            (Some(flag), _) => ("--primary-key", flag.as_str()),
            (None, Some(stored)) => ("config primary-key", stored.as_str()),
            (None, None) => ("--primary-key", "email"),
        };
        let (secondary_flag, secondary) = match (&self.secondary_key, &config.secondary_key) {
            (Some(flag), _) => ("--secondary-key", Some(flag.as_str())),
            // `--primary-key F` says otherwise than a stored secondary F.
            (None, Some(stored)) if self.primary_key.as_deref() == Some(stored.as_str()) => ("", None),
            (None, stored) => ("config secondary-key", stored.as_deref()),
        };
        let secondary_from_config = secondary_flag == "config secondary-key";
        let primary_key = key_field(primary, primary_flag)?;
        let secondary_key = secondary.map(|k| key_field(k, secondary_flag)).transpose()?.flatten();
        if primary_key.is_some() && primary_key == secondary_key {
            return Err(Error::usage(format!(
                "{secondary_flag} {}: the same field as {primary_flag}",
                secondary.unwrap_or_default()
            )));
        }
        check_description(self.description.as_deref())?;
        let acknowledged = config.check_acknowledged(false, &self.acknowledge)?;
        Ok(ImportOptions {
            input: Input::from_arg(&self.file),
            read: self.input.resolve()?,
            mapping: MappingOptions {
                maps: self.maps.clone(),
                file: self.mapping.clone(),
                auto: !self.no_auto_map,
                unmapped: self.unmapped,
                sets: self.sets.clone(),
                set_on: self.set_on.clone(),
                tags: crate::map::checked_tags(&self.tags)?,
                contact_type: self.contact_type,
                id_column: primary_key == Some("id") || secondary_key == Some("id"),
            },
            normalize: NormalizeSettings {
                phone: PhoneSettings {
                    transforms,
                    valid,
                    default_region,
                },
                consent,
                invalid_values: self.invalid_values,
                primary_key,
                secondary_key,
            },
            actions: Actions::resolve(self.mode, self.on_no_match, self.on_one_match, self.on_multiple_match),
            master: self.master,
            duplicates: self.in_file_duplicates,
            name: self.name.clone(),
            out: self.out.clone(),
            output_format: self.output_format,
            excel_safe: self.excel_safe,
            bom: self.bom,
            dry_run: self.dry_run,
            description: self.description.clone(),
            list: self
                .list
                .as_deref()
                .map(|l| crate::lists::checked_name(l).map(str::to_string))
                .transpose()?,
            acknowledged,
            compliance: config.compliance,
            unique: config.unique,
            secondary_from_config,
            db,
        })
    }

    /// Whether to show the progress on standard error.
    fn shows_progress(&self) -> bool {
        match self.progress {
            Progress::Always => true,
            Progress::Never => false,
            // A dumb terminal cannot redraw a line.
            Progress::Auto => std::io::stderr().is_terminal() && !console::is_dumb(),
        }
    }
}

/// `--description` (of an import, of a list): one line of text.
pub(super) fn check_description(description: Option<&str>) -> Result<()> {
    let Some(description) = description else {
        return Ok(());
    };
    if description.trim().is_empty() {
        return Err(Error::usage("--description: empty"));
    }
    if description.chars().any(char::is_control) {
        return Err(Error::usage("--description: one line of text (no line breaks or tabs)"));
    }
    Ok(())
}

/// `--default-country CC`, checked: the phone metadata's region.
pub(super) fn default_region(flag: Option<&str>) -> Result<Option<&'static str>> {
    flag.map(|c| {
        phone::known_region(&c.trim().to_ascii_uppercase())
            .ok_or_else(|| Error::usage(format!("--default-country {c:?}: not a known ISO country code")))
    })
    .transpose()
}

pub fn run(args: &ImportArgs, db: PathBuf) -> Result<()> {
    // Signals are heard from the start: one that comes before the import
    // arms its store is reported when it does.
    let cancel = Cancel::new();
    cancel_on_signals(&cancel)?;
    let config = Config::of_store_at(&db)?;
    let options = args.resolve(db, config)?;
    let bar = progress::Bar::default();
    let shown: &dyn import::Progress = if args.shows_progress() { &bar } else { &() };
    let summary = run_spooled(&options, &cancel, shown);
    // Cleared before anything else is printed (an error line included).
    drop(bar);
    let summary = summary?;
    // Reago's warning: a value set on matched rows overwrites the stored one.
    for rule in &args.set_on {
        let updates = |category| !matches!(options.actions.action(category), Action::Import | Action::Skip);
        let matched = (rule.starts_with("one_match:") && updates(Category::OneMatch))
            || (rule.starts_with("multiple_match:") && updates(Category::MultipleMatch));
        if matched && options.master == Master::File && !summary.dry_run && summary.contacts_updated > 0 {
            eprintln!("kontakt: note: --set-on {rule} overwrote that field of every stored contact such a row updated");
        }
    }
    if cancel.requested().is_some() {
        if summary.dry_run {
            eprintln!("kontakt: the dry run had finished its work when the signal came; its files are complete");
        } else {
            eprintln!("kontakt: the import had reached its commit when the signal came; it is complete");
        }
    }
    let dir = options
        .out
        .unwrap_or_else(|| crate::write::default_out_dir(&summary.name, summary.dry_run));
    if args.json {
        println!(
            "{}",
            serde_json::to_string_pretty(&summary).expect("a summary serializes")
        );
    } else {
        println!("{}", report(&summary, &dir));
    }
    Ok(())
}

/// Runs the import of `options`, standard input copied to a file first
/// ([`super::input::spool_stdin`], removed after).
fn run_spooled(options: &ImportOptions, cancel: &Cancel, progress: &dyn import::Progress) -> Result<Summary> {
    let started = Instant::now();
    super::input::with_spooled_stdin(&options.input, cancel, |input| {
        let run = Run {
            input,
            cancel,
            progress,
            started,
        };
        import::run(options, &run)
    })
}

/// The one-line report: counts by outcome, failed rows by reason (most
/// first), counts by category.
fn report(summary: &Summary, dir: &Path) -> String {
    let mut reasons: Vec<(&str, u64)> = summary
        .failed_by_reason
        .iter()
        .filter(|(_, n)| **n > 0)
        .map(|(r, n)| (*r, *n))
        .collect();
    reasons.sort_by(|a, b| b.1.cmp(&a.1).then(a.0.cmp(b.0)));
    let reasons = if reasons.is_empty() {
        String::new()
    } else {
        let list: Vec<String> = reasons.iter().map(|(r, n)| format!("{n} {r}")).collect();
        format!(" ({})", list.join(", "))
    };
    format!(
        "{} rows read: {} imported, {} updated, {} skipped, {} failed{reasons}; {} no match, {} one match, {} multiple match{} in {:.1} s -> {}",
        summary.rows_read,
        summary.imported,
        summary.updated,
        summary.skipped,
        summary.rows_failed,
        summary.no_match,
        summary.one_match,
        summary.multiple_match,
        if summary.dry_run { " [dry run]" } else { "" },
        summary.elapsed_ms as f64 / 1000.0,
        dir.display()
    )
}

/// SIGINT (Ctrl-C) and SIGTERM cancel the import (SPEC: at any moment
/// before the store's commit; exit 130 or 143, the store unchanged). The
/// handler only records the signal; a thread of its own asks the import to
/// stop, which interrupts the store's running statement. Further signals
/// while the rollback runs are ignored: the store must be left consistent.
pub(super) fn cancel_on_signals(cancel: &Arc<Cancel>) -> Result<()> {
    use signal_hook::consts::{SIGINT, SIGTERM};
    let mut signals =
        signal_hook::iterator::Signals::new([SIGINT, SIGTERM]).map_err(|e| Error::io("signal handlers", e))?;
    let cancel = Arc::clone(cancel);
    // On a terminal the user sees at once that the key was heard (a
    // rollback can take a moment); a script gets the one error line.
    let say = std::io::stderr().is_terminal();
    std::thread::spawn(move || {
        for signal in signals.forever() {
            let signal = if signal == SIGTERM {
                Signal::Terminate
            } else {
                Signal::Interrupt
            };
            if say && cancel.requested().is_none() {
                eprintln!("kontakt: {}: cancelling; the store is rolled back", signal.name());
            }
            cancel.request(signal);
        }
    });
    crate::cancel::test_stage("start");
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_report_names_failed_rows_per_reason_most_first() {
        let mut summary = Summary {
            rows_read: 40,
            imported: 20,
            updated: 8,
            rows_failed: 12,
            no_match: 20,
            one_match: 8,
            elapsed_ms: 1340,
            ..Summary::default()
        };
        summary.failed_by_reason.insert("not_unique", 5);
        summary.failed_by_reason.insert("wrong_format", 7);
        summary.failed_by_reason.insert("bad_row", 0);
        assert_eq!(
            report(&summary, Path::new("kontakt-out/x")),
            "40 rows read: 20 imported, 8 updated, 0 skipped, 12 failed (7 wrong_format, 5 not_unique); \
             20 no match, 8 one match, 0 multiple match in 1.3 s -> kontakt-out/x"
        );
        summary.failed_by_reason.clear();
        summary.rows_failed = 0;
        summary.dry_run = true;
        assert!(
            report(&summary, Path::new("d"))
                .contains(" 0 failed; 20 no match, 8 one match, 0 multiple match [dry run] in")
        );
    }
}
