//! `kontakt import`: the whole pipeline for one file, as a driver of named
//! stages.
//!
//! ```text
//! open     the table, its mapping, the normalize plan, the store, the group
//! build    store ──(semi-join with the file's keys when the store is large)──▶ key index
//!          (the file's first batches are normalized meanwhile)
//! in-file  `last`/`fail` only: a first run over the file for its key groups
//! stream   reader thread ──RawBatch──▶ rayon: normalize + probe the store index ──▶
//!            resolving thread, in file order: the plan (apply::resolve_batch)
//!              ──WriteJob──▶ writer thread: outputs (CSV or Parquet)
//!              ──CommitJob─▶ commit thread: insert stream, staged updates, one transaction
//! summary  counts, timings, summary.json
//! ```
//! Batches are taken a few at a time (two per worker thread), prepared in
//! parallel, then resolved in file order; the queues to the writer and the
//! commit thread are bounded, so memory stays bounded by those batches plus
//! the key index of the store and of the file. Progress goes to the
//! caller's [`Progress`]; nothing here draws on a terminal or reads
//! standard input (the CLI spools it to a file first).

mod build;
mod stream;

use std::path::PathBuf;
use std::time::{Duration, Instant};

use crate::apply::{self, Actions, Counts, Ending, Master};
use crate::cancel::Cancel;
use crate::error::{Error, Result};
use crate::map::{self, Mapping, MappingOptions};
use crate::matching::{Category, Duplicates, InFile, StoreIndex};
use crate::normalize::{NormalizeSettings, Plan, phone};
use crate::read::{self, Input, ReadOptions};
use crate::store::Store;
use crate::store::groups::GroupInfo;
use crate::write::{self, OutputFormat, Outputs, Summary};

/// Everything `kontakt import` was asked to do, resolved from flags.
#[derive(Debug, Clone)]
pub struct ImportOptions {
    /// The input as the user named it (the group's source, the default
    /// name, errors); what is read is [`Run::input`].
    pub input: Input,
    pub read: ReadOptions,
    pub mapping: MappingOptions,
    pub normalize: NormalizeSettings,
    pub actions: Actions,
    pub master: Master,
    pub duplicates: Duplicates,
    pub name: Option<String>,
    pub out: Option<PathBuf>,
    pub output_format: OutputFormat,
    pub excel_safe: bool,
    /// CSV row files start with a UTF-8 BOM (`--bom`).
    pub bom: bool,
    pub dry_run: bool,
    /// `--description`.
    pub description: Option<String>,
    /// `--list`: the contact list the created and updated contacts go on.
    pub list: Option<String>,
    /// The compliance items `--acknowledge` names (checked names).
    pub acknowledged: Vec<String>,
    /// The items the store asks an import of consents to acknowledge
    /// (`config compliance`).
    pub compliance: Vec<String>,
    /// The field no two contacts may share a value of (`config unique`).
    pub unique: Option<String>,
    /// The secondary key is the store's `config secondary-key`, not a
    /// flag: a file without that field is matched by the primary key
    /// alone (said on stderr), not refused.
    pub secondary_from_config: bool,
    pub db: PathBuf,
}

impl ImportOptions {
    /// The settings the import runs with, as its group records them
    /// (`imports show`).
    fn settings(&self, mapping: &Mapping, out_dir: &std::path::Path) -> serde_json::Value {
        use clap::ValueEnum;
        let name = |v: &dyn Fn() -> Option<clap::builder::PossibleValue>| v().map(|v| v.get_name().to_string());
        let action = |c| self.actions.action(c).as_str();
        let (consent_yes, consent_no) = self.normalize.consent.words();
        let set_on: Vec<String> = mapping
            .set_on
            .iter()
            .map(|(c, t, v)| format!("{}:{}={v}", c.as_str(), t.name()))
            .collect();
        let sets: Vec<String> = mapping
            .constants
            .iter()
            .map(|(t, v)| format!("{}={v}", t.name()))
            .collect();
        serde_json::json!({
            "source": self.input.to_string(),
            "primary_key": self.normalize.primary_key.unwrap_or("none"),
            "secondary_key": self.normalize.secondary_key,
            "on_no_match": action(Category::NoMatch),
            "on_one_match": action(Category::OneMatch),
            "on_multiple_match": action(Category::MultipleMatch),
            "master": name(&|| self.master.to_possible_value()),
            "in_file_duplicates": name(&|| self.duplicates.to_possible_value()),
            "type": mapping.contact_type.name(),
            "tags": mapping.tags,
            "set": sets,
            "set_on": set_on,
            "default_country": self.normalize.phone.default_region,
            "consent_yes": consent_yes,
            "consent_no": consent_no,
            "description": self.description,
            "list": self.list,
            "acknowledged": self.acknowledged,
            "out": out_dir.display().to_string(),
        })
    }
}

/// The stages a user can tell apart while an import runs.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Phase {
    /// The file is read (and normalized) while the store's keys are indexed.
    Reading,
    /// Rows are matched against the store and resolved.
    Matching,
    /// The stream is done; the output files are finished.
    WritingOutputs,
    /// The stream is done; the store's transaction is finished.
    WritingStore,
}

/// Where an import reports its progress (a terminal's bar, a web front
/// end's channel). Called from the import's threads, hence `Sync`.
pub trait Progress: Sync {
    /// Reading begins, in [`Phase::Reading`]. `read`: how far the reading
    /// is, when bytes measure it (a file's; not XLSX).
    fn start(&self, read: Option<read::ReadPosition>);
    /// The import entered `phase`.
    fn phase(&self, phase: Phase);
    /// `n` more rows handed on (read, matched and resolved).
    fn rows(&self, n: u64);
}

/// No progress reported.
impl Progress for () {
    fn start(&self, _: Option<read::ReadPosition>) {}
    fn phase(&self, _: Phase) {}
    fn rows(&self, _: u64) {}
}

/// One run of an import: what it reads and what it answers to.
pub struct Run<'a> {
    /// The file read: [`ImportOptions::input`], or the file standard input
    /// was copied to.
    pub input: &'a Input,
    pub cancel: &'a Cancel,
    pub progress: &'a dyn Progress,
    /// When the run began (for the summary's elapsed time and rate).
    pub started: Instant,
}

/// Time spent per stage (summed over batches).
#[derive(Debug, Default)]
struct Timings {
    build: Duration,
    read: Duration,
    normalize_match: Duration,
    resolve: Duration,
    write: Duration,
    commit: Duration,
}

/// Runs an import. Usage errors come before anything is read or written.
pub fn run(options: &ImportOptions, run: &Run) -> Result<Summary> {
    run_stages(options, run).map_err(|e| run.cancel.or_cancelled(e))
}

fn run_stages(options: &ImportOptions, run: &Run) -> Result<Summary> {
    let mut opened = Opened::open(options, run.input)?;
    let end_group = |e| opened.group.end(run.cancel, e);
    run.progress.start(opened.table.read_position());
    let mut timings = Timings::default();
    let (index, ahead) = build::build(
        &mut opened.table,
        &opened.plan,
        &opened.mapping,
        opened.group.store.as_ref(),
        options,
        run,
        &mut timings,
    )
    .map_err(end_group)?;
    let mut memory = vec![("build_index", write::peak_memory_mib())];
    let infile = in_file(&opened, options, run, &index).map_err(end_group)?;
    let normalized_fields: Vec<String> = opened.plan.output_names().map(str::to_string).collect();
    let outputs = Outputs::create(
        &opened.out_dir,
        &normalized_fields,
        &opened.table.columns,
        options.output_format,
        options.excel_safe,
        options.bom,
    )
    .map_err(end_group)?;
    let commit_setup = opened.commit_setup(options).map_err(end_group)?;
    run.progress.phase(Phase::Matching);
    let mut summary = Summary {
        import_id: opened.group.id,
        name: opened.name.clone(),
        source: options.input.to_string(),
        dry_run: options.dry_run,
        description: options.description.clone(),
        acknowledged: options.acknowledged.clone(),
        phone_metadata: phone::METADATA_VERSION,
        ..Summary::default()
    };
    let unique = unique(&opened, options).map_err(|e| opened.group.end(run.cancel, e))?;
    let stage = stream::Stream {
        table: &mut opened.table,
        plan: &opened.plan,
        index: &index,
        actions: &options.actions,
        unique,
        run,
    };
    let mut counts = Counts::default();
    let committed = stage.run(
        ahead,
        infile,
        outputs,
        commit_setup,
        &mut counts,
        &mut summary,
        &mut memory,
        &mut timings,
    )?;
    if let Some(committed) = committed {
        summary.contacts_updated = committed.contacts_updated;
        timings.commit = committed.busy;
    }
    finish_summary(&mut summary, &timings, run.started, memory);
    summary.write(&opened.out_dir)?;
    Ok(summary)
}

/// The store's `unique` setting's values held, and the column of the
/// field in a normalized batch, when the file gives the field a value.
fn unique(opened: &Opened, options: &ImportOptions) -> Result<Option<(apply::Unique, usize)>> {
    let (Some(field), Some(store)) = (&options.unique, &opened.group.store) else {
        return Ok(None);
    };
    let Some(position) = opened.plan.field_names().position(|f| f == field) else {
        return Ok(None);
    };
    // After the row number.
    let keep = options.master == Master::Existing;
    Ok(Some((apply::Unique::load(store, field, keep)?, position + 1)))
}

/// The opening stage's work: the table, its mapping and normalize plan, the
/// import's name and output directory, the store and the import group.
struct Opened {
    table: read::Table,
    mapping: Mapping,
    plan: Plan,
    name: String,
    out_dir: PathBuf,
    group: Group,
}

/// The store of an import (none for a dry run without one) and its group
/// (none for a dry run).
struct Group {
    store: Option<Store>,
    id: Option<i64>,
}

impl Group {
    /// Ends the group with the error that ended the import, and returns it.
    fn end(&self, cancel: &Cancel, e: Error) -> Error {
        let e = cancel.or_cancelled(e);
        if let (Some(store), Some(id)) = (&self.store, self.id) {
            let _ = store.end_group(id, Ending::of(&e), &e.to_string());
        }
        e
    }
}

impl Opened {
    fn open(options: &ImportOptions, input: &Input) -> Result<Opened> {
        let table = read::open(input, &options.read)?;
        let detected_no_header = !table.detected.header && options.read.header.is_none();
        let mapping = map::resolve(&table.columns, &options.mapping).map_err(|e| {
            match (e, table.detected.suggested_skip_rows) {
                // A title above the table was read as the header.
                (Error::Usage(message), Some(n)) => Error::usage(format!(
                    "{message}; the file looks like it has {n} title line(s) above the table: try --skip-rows {n}"
                )),
                // A header row that looks like data was read as data.
                (Error::Usage(message), None) if detected_no_header && message.starts_with("no column is mapped") => {
                    Error::usage(format!(
                        "{message}; the first row was read as data, not as the header (it has an empty or a \
                         repeated cell, or a cell that is an email, a phone number, a date or a number): if it is \
                         the header, pass --header"
                    ))
                }
                (e, _) => e,
            }
        })?;
        let plan = match Plan::new(&mapping, options.normalize.clone()) {
            Err(e) if options.secondary_from_config && options.normalize.secondary_key.is_some() => {
                let alone = NormalizeSettings {
                    secondary_key: None,
                    ..options.normalize.clone()
                };
                match Plan::new(&mapping, alone) {
                    Ok(plan) => {
                        eprintln!(
                            "kontakt: the store's secondary-key {} is not a column of this file: matching by {} alone",
                            options.normalize.secondary_key.unwrap_or_default(),
                            options.normalize.primary_key.unwrap_or("nothing")
                        );
                        plan
                    }
                    Err(_) => return Err(e),
                }
            }
            planned => planned?,
        };
        crate::store::check_field_names(&options.db, plan.field_names())?;
        // A store that asks it: before any row is read (SPEC, Store settings).
        let consents = plan.field_names().any(|f| f == "email_opt_in" || f == "sms_opt_in");
        crate::config::check_acknowledged(&options.compliance, consents, &options.acknowledged)?;
        // `unique` is checked on the values a row brings before `--set-on`
        // gives its category's: a per-category value of that field would
        // pass unchecked.
        if let Some(field) = &options.unique
            && let Some((category, target, _)) = mapping.set_on.iter().find(|(_, t, _)| t.field_name() == *field)
        {
            return Err(Error::usage(format!(
                "--set-on {}:{}: the store's setting `unique {field}` needs one value per contact",
                category.as_str(),
                target.name()
            )));
        }
        let name = match &options.name {
            Some(name) if name.trim().is_empty() => return Err(Error::usage("--name: an import name cannot be empty")),
            Some(name) => name.clone(),
            None => default_name(&options.input),
        };
        let out_dir = options
            .out
            .clone()
            .unwrap_or_else(|| write::default_out_dir(&name, options.dry_run));
        // Before a group is recorded: the outputs need a directory, and
        // one that can be made (no file where it or a parent would be).
        if let Some(file) = out_dir.ancestors().find(|p| p.exists()).filter(|p| !p.is_dir()) {
            let named = match &options.out {
                Some(out) => format!("--out {}", out.display()),
                None => format!(
                    "the output directory {} (give another with --out DIR)",
                    out_dir.display()
                ),
            };
            return Err(Error::usage(format!(
                "{named}: {} is a file; the outputs go to a directory (made if missing)",
                file.display()
            )));
        }
        let store = if options.dry_run && !crate::store::exists(&options.db)? {
            // Nothing is created; a mistyped --db must not pass unnoticed.
            eprintln!(
                "kontakt: no store at {}: the dry run classifies every row against an empty store",
                options.db.display()
            );
            None
        } else {
            Some(if options.dry_run {
                Store::open_read_only(&options.db)?
            } else {
                Store::open(&options.db)?
            })
        };
        // The name is checked and the group recorded before anything is
        // written, so a taken name leaves an earlier import's outputs alone.
        let id = match &store {
            Some(store) if !options.dry_run => {
                let info = GroupInfo {
                    description: options.description.clone(),
                    acknowledged: options.acknowledged.clone(),
                    settings: Some(options.settings(&mapping, &out_dir)),
                };
                Some(store.start_group(&name, &options.input.to_string(), &info)?)
            }
            _ => None,
        };
        Ok(Opened {
            table,
            mapping,
            plan,
            name,
            out_dir,
            group: Group { store, id },
        })
    }

    /// What the commit thread needs, when the import writes the store.
    fn commit_setup(&self, options: &ImportOptions) -> Result<Option<apply::CommitSetup>> {
        let (Some(store), Some(id)) = (&self.group.store, self.group.id) else {
            return Ok(None);
        };
        let fields: Vec<String> = self.plan.field_names().map(str::to_string).collect();
        Ok(Some(apply::CommitSetup {
            store: store.try_clone()?,
            import_id: id,
            contact_type: self.mapping.contact_type.name(),
            master: options.master,
            fields: apply::store_fields(&fields, &self.mapping.tags),
            tags: self.mapping.tags.clone(),
            list: options.list.clone(),
        }))
    }
}

/// The in-file duplicates' state for the stream. `last`/`fail` decide
/// with each key group's size: a first run over the file collects them
/// (the same rows give the same groups the second time).
fn in_file(opened: &Opened, options: &ImportOptions, run: &Run, index: &StoreIndex) -> Result<InFile> {
    let known = if InFile::needs_stats(options.duplicates) {
        let mut first_run = InFile::new(options.duplicates, None);
        let mut again = read::open(run.input, &options.read)?;
        stream::for_each_prepared(
            &mut again,
            &opened.plan,
            index,
            stream::Ahead::default(),
            run.cancel,
            &mut Timings::default(),
            |p, _| {
                apply::resolve_in_file(&p, &mut first_run);
                Ok(())
            },
        )?;
        Some(first_run.into_stats())
    } else {
        None
    };
    let mut infile = InFile::new(options.duplicates, known);
    let table = &opened.table;
    if let (Some(bytes), read::Format::Csv) = (table.size, table.detected.format) {
        // Contact rows run 100 to 200 bytes: room for a row per 128 bytes
        // (more would cost memory: the tables are written all over).
        infile.reserve(usize::try_from(bytes / 128).unwrap_or(0).min(1 << 26));
    }
    Ok(infile)
}

/// The summary's times, rate and memory.
fn finish_summary(
    summary: &mut Summary,
    timings: &Timings,
    started: Instant,
    mut memory: Vec<(&'static str, Option<u64>)>,
) {
    let elapsed = started.elapsed();
    summary.elapsed_ms = elapsed.as_millis() as u64;
    summary.rows_per_sec = (summary.rows_read as f64 / elapsed.as_secs_f64().max(1e-9)) as u64;
    summary.stages_ms = [
        ("build_index", timings.build.as_millis() as u64),
        ("read", timings.read.as_millis() as u64),
        ("normalize_match", timings.normalize_match.as_millis() as u64),
        ("resolve", timings.resolve.as_millis() as u64),
        ("write", timings.write.as_millis() as u64),
        ("commit", timings.commit.as_millis() as u64),
    ]
    .into_iter()
    .collect();
    memory.push(("commit", write::peak_memory_mib()));
    summary.peak_memory_mib = memory.into_iter().filter_map(|(k, v)| Some((k, v?))).collect();
}

/// The import name when `--name` is not given: the file's stem.
fn default_name(input: &Input) -> String {
    match input {
        Input::Stdin => "stdin".to_string(),
        Input::Path(path) => path
            .file_stem()
            .map(|s| s.to_string_lossy().into_owned())
            .filter(|s| !s.is_empty())
            .unwrap_or_else(|| "import".to_string()),
    }
}
