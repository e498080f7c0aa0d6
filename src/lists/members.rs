//! `lists add` and `lists remove`: a file of contact keys onto a list or
//! off it, in one transaction.
//!
//! ```text
//! open     the list (unknown: usage error unless --create), the table, its
//!          key/status/agent/callback columns, the output files
//! build    the stored contacts by key (ids: a bitset; email/phone/external_id:
//!          sorted key hashes) and the list's members (a bitset), one scan each
//! stream   per batch: rayon judges each row (its key normalized and looked
//!          up, its callback parsed) ─> in file order: added / updated /
//!          removed / not_found / failed, each row in exactly one file;
//!          new memberships appended (Arrow), changes staged
//! finish   the staged changes applied by one UPDATE … FROM (or the removals
//!          by one DELETE), the files closed, COMMIT; summary.json
//! ```
//! A row's verdicts come in the import's order: `bad_row`, `wrong_format`
//! (the key or the callback), `missing_key`, then the lookup
//! (`multiple_match` when a value belongs to several contacts). A contact
//! named twice is `updated` (or, when removing, `not_found`) the second
//! time. Ctrl-C or SIGTERM before the commit rolls everything back.

use std::borrow::Cow;
use std::collections::BTreeMap;
use std::path::{Path, PathBuf};
use std::sync::{Arc, mpsc};
use std::time::Instant;

use arrow::array::{
    ArrayBuilder, ArrayRef, Int64Array, Int64Builder, StringBuilder, TimestampMicrosecondArray,
    TimestampMicrosecondBuilder, UInt64Builder, new_null_array,
};
use arrow::datatypes::DataType;
use arrow::record_batch::RecordBatch;
use rayon::prelude::*;
use serde::Serialize;

use super::callback;
use super::lookup::{IdSet, KeyHashes};
use crate::cancel::{Cancel, test_stage};
use crate::error::{Error, Result};
use crate::fields::{key_hash, standard_field};
use crate::map::{self, Target};
use crate::normalize::NormalizeSettings;
use crate::normalize::stage::normalize_one;
use crate::read::{self, Input, RawBatch, ReadOptions};
use crate::store::Store;
use crate::store::groups::now_micros;
use crate::store::lists::{MemberStream, member_schema, member_update_schema};
use crate::write::{RowWriter, peak_memory_mib, safe_component};

/// Onto the list, or off it.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Mode {
    Add,
    Remove,
}

impl Mode {
    fn verb(self) -> &'static str {
        match self {
            Mode::Add => "add",
            Mode::Remove => "remove",
        }
    }
}

/// What a row's key column holds (`--by`).
#[derive(Debug, Clone, Copy, PartialEq, Eq, clap::ValueEnum)]
pub enum Key {
    /// The store's contact id.
    Id,
    /// A contact's external_id (another system's record id).
    #[value(name = "external_id", alias = "external-id")]
    ExternalId,
    /// A contact's email.
    Email,
    /// A phone number, found as a contact's phone or mobile.
    Phone,
}

impl Key {
    pub fn field(self) -> &'static str {
        match self {
            Key::Id => "id",
            Key::ExternalId => "external_id",
            Key::Email => "email",
            Key::Phone => "phone",
        }
    }

    /// How a key cell is normalized (as an import normalizes the field).
    fn target(self) -> Target {
        match self {
            Key::Id => Target::Id,
            other => Target::Standard(standard_field(other.field()).expect("a standard field")),
        }
    }
}

/// Everything `lists add` or `lists remove` was asked to do.
#[derive(Debug, Clone)]
pub struct MembersOptions {
    pub mode: Mode,
    pub list: String,
    /// The input as the user named it (the summary's source, errors).
    pub input: Input,
    pub read: ReadOptions,
    pub by: Key,
    /// `--map COLUMN=FIELD`: the key field, `status`, `agent`,
    /// `callback_at`, or `-` (not that column).
    pub maps: Vec<String>,
    /// A new member's status when the row gives none (default `new`).
    pub status: Option<String>,
    pub status_column: Option<String>,
    pub agent_column: Option<String>,
    pub callback_column: Option<String>,
    /// Create the list when there is none of that name.
    pub create: bool,
    pub out: Option<PathBuf>,
    pub dry_run: bool,
    pub bom: bool,
    /// Phone numbers without a country code are of this region.
    pub settings: NormalizeSettings,
    pub db: PathBuf,
}

/// One run: the file read (the input, or where standard input was
/// spooled) and the cancel it answers to.
#[derive(Debug)]
pub struct Run<'a> {
    pub input: &'a Input,
    pub cancel: &'a Cancel,
    pub started: Instant,
}

/// `summary.json` of `lists add` or `lists remove`. `rows_read = added +
/// updated + not_found + failed` (or `removed + not_found + failed`).
#[derive(Debug, Clone, Serialize)]
pub struct MembersSummary {
    pub list: String,
    /// Null with `--dry-run` for a list it would create.
    pub list_id: Option<i64>,
    pub source: String,
    pub by: &'static str,
    pub dry_run: bool,
    pub rows_read: u64,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub added: Option<u64>,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub updated: Option<u64>,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub removed: Option<u64>,
    pub not_found: u64,
    pub failed: u64,
    pub failed_by_reason: BTreeMap<&'static str, u64>,
    /// The list's members afterwards.
    pub members: u64,
    pub out: String,
    pub elapsed_ms: u64,
    pub rows_per_sec: u64,
    pub peak_memory_mib: Option<u64>,
}

/// The columns of the file that the run reads.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
struct Columns {
    key: usize,
    status: Option<usize>,
    agent: Option<usize>,
    callback: Option<usize>,
}

/// Finds the key column (`--map`, else by its name or a synonym, else the
/// file's only column) and, when adding, the status, agent and callback
/// columns (`--map`, the flags, else by name).
fn find_columns(names: &[String], options: &MembersOptions) -> Result<Columns> {
    let field = options.by.field();
    let verb = options.mode.verb();
    let mut key = None;
    let mut extra: [Option<usize>; 3] = [None; 3];
    const EXTRA: [&str; 3] = ["status", "agent", "callback_at"];
    let adding = options.mode == Mode::Add;
    let mut skipped = vec![false; names.len()];
    let column = |flag: &str, name: &str| {
        map::find_column(names, name).ok_or_else(|| {
            Error::usage(format!(
                "{flag} {name}: no column {name:?}; the columns are {}",
                quoted(names)
            ))
        })
    };
    for pair in &options.maps {
        let (name, target) = pair
            .split_once('=')
            .ok_or_else(|| Error::usage(format!("--map {pair:?}: expected COLUMN=FIELD")))?;
        let index = column("--map", name)?;
        match target.trim() {
            t if t == field => key = Some(index),
            "-" => skipped[index] = true,
            t if adding && EXTRA.contains(&t) => {
                extra[EXTRA.iter().position(|e| *e == t).unwrap_or(0)] = Some(index);
            }
            other => {
                let takes = if adding {
                    format!("{field} (the --by key), status, agent, callback_at or -")
                } else {
                    format!("{field} (the --by key) or -")
                };
                return Err(Error::usage(format!(
                    "--map {pair}: `lists {verb}` maps a column to {takes}, not {other:?}"
                )));
            }
        }
    }
    if adding {
        for (slot, (flag, name)) in [
            ("--status-column", &options.status_column),
            ("--agent-column", &options.agent_column),
            ("--callback-column", &options.callback_column),
        ]
        .into_iter()
        .enumerate()
        {
            if let Some(name) = name {
                extra[slot] = Some(column(flag, name)?);
            }
        }
    }
    let taken = |i: usize, key: Option<usize>, extra: &[Option<usize>; 3]| {
        skipped[i] || key == Some(i) || extra.contains(&Some(i))
    };
    // By name: the key as an import finds its field, the rest by the
    // lists' own synonyms; the first column of each wins.
    for (i, name) in names.iter().enumerate() {
        if taken(i, key, &extra) {
            continue;
        }
        let list_column = map::suggest_list_column(name);
        let holds_key = match options.by {
            Key::Id => list_column == Some("id"),
            _ => map::suggest(name).is_some_and(|t| t.name() == field),
        };
        if holds_key && key.is_none() {
            key = Some(i);
        } else if let Some(slot) = list_column.and_then(|c| EXTRA.iter().position(|e| *e == c))
            && adding
            && extra[slot].is_none()
        {
            extra[slot] = Some(i);
        }
    }
    // A number is found as a phone or a mobile: a `mobile` column will do.
    if key.is_none() && options.by == Key::Phone {
        key = (0..names.len())
            .find(|&i| !taken(i, key, &extra) && map::suggest(&names[i]).is_some_and(|t| t.name() == "mobile"));
    }
    // A file of one column is a file of keys.
    if key.is_none() && names.len() == 1 && !taken(0, key, &extra) {
        key = Some(0);
    }
    let key = key.ok_or_else(|| {
        Error::usage(format!(
            "no column holds the {field} to look contacts up by (the columns are {}); name it with --map COLUMN={field}",
            quoted(names)
        ))
    })?;
    Ok(Columns {
        key,
        status: extra[0],
        agent: extra[1],
        callback: extra[2],
    })
}

fn quoted(names: &[String]) -> String {
    names.iter().map(|c| format!("{c:?}")).collect::<Vec<_>>().join(", ")
}

/// `kontakt-out/<list>-add-<n>` (or `-remove-`), `n` the first number not
/// used yet: every run keeps its own record of what it changed.
pub fn default_out_dir(list: &str, mode: Mode) -> PathBuf {
    let base = safe_component(list);
    (1..)
        .map(|n| Path::new("kontakt-out").join(format!("{base}-{}-{n}", mode.verb())))
        .find(|dir| !dir.exists())
        .expect("a free number")
}

/// Where the stored contacts are looked up.
enum Lookup {
    Ids(IdSet),
    Hashes(KeyHashes),
}

impl Lookup {
    fn load(store: &Store, by: Key) -> Result<Lookup> {
        Ok(match by {
            Key::Id => Lookup::Ids(IdSet::of_contacts(store)?),
            Key::Phone => Lookup::Hashes(KeyHashes::load(store, &["phone", "mobile"])?),
            other => Lookup::Hashes(KeyHashes::load(store, &[other.field()])?),
        })
    }
}

/// What the parallel part made of a row.
enum Verdict {
    Contact(i64),
    /// No stored contact has the key (its normal form).
    NotFound(String),
    Failed(&'static str, String),
}

/// What judging a row needs, shared by rayon's threads.
struct Judge<'a> {
    by: Key,
    target: Target,
    key_name: &'a str,
    callback_name: Option<&'a str>,
    columns: Columns,
    lookup: &'a Lookup,
    settings: &'a NormalizeSettings,
}

impl Judge<'_> {
    /// A row's verdict and its callback time (microseconds).
    fn judge(&self, raw: &RawBatch, i: usize, scratch: &mut String) -> (Verdict, Option<i64>) {
        let field = self.by.field();
        let cell = raw.column(self.columns.key).value(i);
        let callback = match self.columns.callback.map(|c| raw.column(c).value(i)) {
            None => Ok(None),
            Some(value) => callback::parse(value).map_err(|why| {
                let column = self.callback_name.unwrap_or_default();
                format!("callback_at (column {column:?}): {value:?} ({why})")
            }),
        };
        let normal = match normalize_one(&self.target, cell, None, self.settings, scratch) {
            Ok(normal) => normal,
            Err(why) => {
                let detail = format!("{field} (column {:?}): {cell:?} ({why})", self.key_name);
                return (Verdict::Failed("wrong_format", detail), None);
            }
        };
        let callback = match callback {
            Ok(callback) => callback,
            Err(detail) => return (Verdict::Failed("wrong_format", detail), None),
        };
        let Some(normal) = normal else {
            let detail = format!("{field}: column {:?} is empty", self.key_name);
            return (Verdict::Failed("missing_key", detail), callback);
        };
        let verdict = match self.lookup {
            Lookup::Ids(ids) => {
                let id = normal.parse::<i64>().unwrap_or(-1);
                if ids.contains(id) {
                    Verdict::Contact(id)
                } else {
                    Verdict::NotFound(format!("no contact with id {id}"))
                }
            }
            Lookup::Hashes(hashes) => {
                let mut found = hashes.find(key_hash(normal));
                match found.len() {
                    0 => Verdict::NotFound(format!("no contact with {field} {normal:?}")),
                    1 => Verdict::Contact(found.next().unwrap_or_default()),
                    n => {
                        let ids: Vec<String> = found.map(|id| id.to_string()).collect();
                        Verdict::Failed(
                            "multiple_match",
                            format!("{field} {normal:?} belongs to {n} contacts: {}", ids.join(";")),
                        )
                    }
                }
            }
        };
        (verdict, callback)
    }
}

/// The run's row files.
struct Files {
    /// `added.csv` or `removed.csv`.
    done: RowWriter,
    /// `updated.csv` (adding only).
    updated: Option<RowWriter>,
    not_found: RowWriter,
    failed: RowWriter,
}

impl Files {
    fn create(dir: &Path, mode: Mode, columns: &[String], bom: bool) -> Result<Files> {
        std::fs::create_dir_all(dir).map_err(|e| Error::io(dir, e))?;
        let stale = dir.join("summary.json");
        if stale.exists() {
            std::fs::remove_file(&stale).map_err(|e| Error::io(&stale, e))?;
        }
        let file = |name: &str, head: &[&str]| {
            let header: Vec<&str> = head.iter().copied().chain(columns.iter().map(String::as_str)).collect();
            RowWriter::create(dir.join(name), &header, bom)
        };
        let member = ["row", "contact_id", "status", "agent", "callback_at"];
        Ok(Files {
            done: match mode {
                Mode::Add => file("added.csv", &member)?,
                Mode::Remove => file("removed.csv", &member[..2])?,
            },
            updated: match mode {
                Mode::Add => Some(file("updated.csv", &member)?),
                Mode::Remove => None,
            },
            not_found: file("not_found.csv", &["row", "detail"])?,
            failed: file("failed.csv", &["row", "reason", "detail"])?,
        })
    }

    fn finish(self) -> Result<()> {
        self.done.finish()?;
        if let Some(updated) = self.updated {
            updated.finish()?;
        }
        self.not_found.finish()?;
        self.failed.finish()
    }
}

/// Writes `head`, then row `i` of `raw` as read.
fn write_row<'a>(
    file: &mut RowWriter,
    head: impl IntoIterator<Item = Option<Cow<'a, str>>>,
    raw: &'a RawBatch,
    i: usize,
) -> Result<()> {
    let values = (1..raw.batch.num_columns()).map(|c| Some(Cow::Borrowed(raw.column(c - 1).value(i))));
    file.record(head.into_iter().chain(values))
}

/// A cell's value, trimmed; `None` when empty.
fn cell(raw: &RawBatch, column: Option<usize>, i: usize) -> Option<&str> {
    column.map(|c| raw.column(c).value(i).trim()).filter(|v| !v.is_empty())
}

/// Counts and state of a run as it goes.
struct Tally {
    rows_read: u64,
    done: u64,
    updated: u64,
    not_found: u64,
    failed_by_reason: BTreeMap<&'static str, u64>,
}

impl Tally {
    fn failed(&mut self, reason: &'static str) {
        *self.failed_by_reason.entry(reason).or_default() += 1;
    }
}

/// A batch's new memberships and changes, as the store takes them.
#[derive(Default)]
struct Changes {
    added: Vec<i64>,
    status: StringBuilder,
    agent: StringBuilder,
    callback: TimestampMicrosecondBuilder,
    updated: Int64Builder,
    update_rows: UInt64Builder,
    update_status: StringBuilder,
    update_agent: StringBuilder,
    update_callback: TimestampMicrosecondBuilder,
}

impl Changes {
    /// The new memberships of `list_id`, added at `now`.
    fn members(&mut self, list_id: i64, now: i64) -> Result<Option<RecordBatch>> {
        let n = self.added.len();
        if n == 0 {
            return Ok(None);
        }
        let columns: Vec<ArrayRef> = vec![
            Arc::new(Int64Array::from_value(list_id, n)),
            Arc::new(Int64Array::from(std::mem::take(&mut self.added))),
            Arc::new(self.status.finish()),
            Arc::new(self.agent.finish()),
            Arc::new(self.callback.finish()),
            Arc::new(TimestampMicrosecondArray::from(vec![now; n])),
            new_null_array(&DataType::Int64, n),
        ];
        batch(member_schema(), columns).map(Some)
    }

    /// The staged changes of existing memberships.
    fn updates(&mut self) -> Result<Option<RecordBatch>> {
        if self.updated.len() == 0 {
            return Ok(None);
        }
        let columns: Vec<ArrayRef> = vec![
            Arc::new(self.updated.finish()),
            Arc::new(self.update_rows.finish()),
            Arc::new(self.update_status.finish()),
            Arc::new(self.update_agent.finish()),
            Arc::new(self.update_callback.finish()),
        ];
        batch(member_update_schema(), columns).map(Some)
    }
}

fn batch(schema: arrow::datatypes::SchemaRef, columns: Vec<ArrayRef>) -> Result<RecordBatch> {
    RecordBatch::try_new(schema, columns).map_err(|e| Error::usage(format!("building the list's rows: {e}")))
}

/// Runs `lists add` or `lists remove`.
pub fn run(options: &MembersOptions, run: &Run) -> Result<MembersSummary> {
    let store = if options.dry_run {
        Store::open_read_only(&options.db)?
    } else {
        Store::open(&options.db)?
    };
    let name = super::checked_name(&options.list)?;
    let list = store.list_named(name)?;
    if list.is_none() && !(options.create && options.mode == Mode::Add) {
        return Err(super::unknown(name));
    }
    let mut table = read::open(run.input, &options.read)?;
    let column_names = table.columns.clone();
    let columns = find_columns(&column_names, options)?;
    let out_dir = options
        .out
        .clone()
        .unwrap_or_else(|| default_out_dir(name, options.mode));
    let mut files = Files::create(&out_dir, options.mode, &column_names, options.bom)?;
    let lookup = Lookup::load(&store, options.by)?;
    let mut members = match &list {
        Some(list) => IdSet::of_list(&store, list.id)?,
        None => IdSet::default(),
    };
    let judge = Judge {
        by: options.by,
        target: options.by.target(),
        key_name: &column_names[columns.key],
        callback_name: columns.callback.map(|c| column_names[c].as_str()),
        columns,
        lookup: &lookup,
        settings: &options.settings,
    };
    let mut tally = Tally {
        rows_read: 0,
        done: 0,
        updated: 0,
        not_found: 0,
        failed_by_reason: BTreeMap::new(),
    };
    // Ctrl-C or SIGTERM before the commit rolls it all back: the store's
    // statements are interrupted while it is armed (`crate::cancel`).
    let write = !options.dry_run;
    // New memberships stream into the store as the file is read: a
    // channel to the store's scan, made before the transaction begins.
    let (sender, receiver) = mpsc::sync_channel::<RecordBatch>(4);
    let stream = if write {
        Some(store.member_stream(receiver)?)
    } else {
        None
    };
    let armed = run.cancel.arm(store.interrupt())?;
    if write {
        store.begin()?;
    }
    let result = (|| -> Result<Option<i64>> {
        test_stage("lists_add");
        let list_id = match &list {
            Some(list) => Some(list.id),
            None if write => Some(store.create_list(name, None)?),
            None => None,
        };
        // The file is read, judged and written on a thread of its own
        // while the store's scan takes the new memberships (on DuckDB's
        // threads): the two overlap.
        let producer = Producer {
            step: Step { options, name, columns },
            judge: &judge,
            cancel: run.cancel,
            list_id: list_id.filter(|_| write),
            sender,
        };
        let (produced, inserted) = std::thread::scope(|scope| {
            let files = &mut files;
            let members = &mut members;
            let tally = &mut tally;
            let table = &mut table;
            let handle = scope.spawn(move || producer.run(table, files, members, tally));
            let inserted = stream.as_ref().map_or(Ok(()), MemberStream::insert);
            (handle.join().unwrap_or(Err(Error::Stopped)), inserted)
        });
        // The store's own error stopped the producer, not the other way.
        inserted?;
        let (removed, updates) = produced?;
        if let (true, Some(list_id)) = (write, list_id) {
            test_stage("lists_apply");
            run.cancel.check()?;
            for batch in updates {
                store.stage_member_updates(batch)?;
            }
            store.apply_member_updates(list_id)?;
            store.remove_members(list_id, &removed)?;
        }
        Ok(list_id)
    })();
    let finished = result.and_then(|list_id| {
        files.finish()?;
        if write {
            test_stage("lists_commit");
            armed.disarm_to_commit()?;
            store.commit()?;
        }
        Ok(list_id)
    });
    let list_id = match finished {
        Ok(list_id) => list_id,
        Err(e) => {
            let e = run.cancel.or_cancelled(e);
            if write {
                let _ = store.rollback_after_failure();
            }
            return Err(e);
        }
    };
    let elapsed = run.started.elapsed();
    let failed: u64 = tally.failed_by_reason.values().sum();
    let (added, updated, removed) = match options.mode {
        Mode::Add => (Some(tally.done), Some(tally.updated), None),
        Mode::Remove => (None, None, Some(tally.done)),
    };
    let summary = MembersSummary {
        list: name.to_string(),
        list_id,
        source: options.input.to_string(),
        by: options.by.field(),
        dry_run: options.dry_run,
        rows_read: tally.rows_read,
        added,
        updated,
        removed,
        not_found: tally.not_found,
        failed,
        failed_by_reason: tally.failed_by_reason,
        members: members.len() as u64,
        out: out_dir.display().to_string(),
        elapsed_ms: elapsed.as_millis() as u64,
        rows_per_sec: (tally.rows_read as f64 / elapsed.as_secs_f64().max(1e-6)) as u64,
        peak_memory_mib: peak_memory_mib(),
    };
    let path = out_dir.join("summary.json");
    let mut text = serde_json::to_string_pretty(&summary).expect("a summary serializes");
    text.push('\n');
    std::fs::write(&path, text).map_err(|e| Error::io(&path, e))?;
    Ok(summary)
}

/// The file's side of a run: read, judge (rayon), write the row files,
/// and send the new memberships to the store.
struct Producer<'a> {
    step: Step<'a>,
    judge: &'a Judge<'a>,
    cancel: &'a Cancel,
    /// Where new memberships go; `None`: nothing is sent (a dry run).
    list_id: Option<i64>,
    sender: mpsc::SyncSender<RecordBatch>,
}

impl Producer<'_> {
    /// Every batch of `table`; returns the contacts to take off the list
    /// and the changes of existing members (staged once the new ones are
    /// in: the store's connection is busy with them until then).
    fn run(
        self,
        table: &mut read::Table,
        files: &mut Files,
        members: &mut IdSet,
        tally: &mut Tally,
    ) -> Result<(Vec<i64>, Vec<RecordBatch>)> {
        let now = now_micros();
        let mut removed: Vec<i64> = Vec::new();
        let mut updates: Vec<RecordBatch> = Vec::new();
        let mut changes = Changes::default();
        for raw in table {
            self.cancel.check()?;
            let raw = raw?;
            let verdicts: Vec<(Verdict, Option<i64>)> = (0..raw.num_rows())
                .into_par_iter()
                .with_min_len(4096)
                .map_init(String::new, |scratch, i| self.judge.judge(&raw, i, scratch))
                .collect();
            self.step
                .batch(&raw, verdicts, files, members, tally, &mut changes, &mut removed)?;
            let Some(list_id) = self.list_id else {
                changes = Changes::default();
                continue;
            };
            if let Some(batch) = changes.members(list_id, now)? {
                self.sender.send(batch).map_err(|_| Error::Stopped)?;
            }
            updates.extend(changes.updates()?);
        }
        Ok((removed, updates))
    }
}

/// One batch's rows, in file order, into their files and the store's
/// changes.
struct Step<'a> {
    options: &'a MembersOptions,
    name: &'a str,
    columns: Columns,
}

impl Step<'_> {
    #[allow(clippy::too_many_arguments)]
    fn batch(
        &self,
        raw: &RawBatch,
        verdicts: Vec<(Verdict, Option<i64>)>,
        files: &mut Files,
        members: &mut IdSet,
        tally: &mut Tally,
        changes: &mut Changes,
        removed: &mut Vec<i64>,
    ) -> Result<()> {
        let rows = raw.rows();
        let mut bad = raw.bad_rows.iter().peekable();
        let mut number = itoa::Buffer::new();
        let mut id_text = itoa::Buffer::new();
        tally.rows_read += (raw.num_rows() + raw.bad_rows.len()) as u64;
        for (i, (verdict, callback)) in verdicts.into_iter().enumerate() {
            let row = rows.value(i);
            // The rows that are no rows of the table, in their place.
            while let Some(b) = bad.next_if(|b| b.row < row) {
                write_bad(files, b, tally)?;
            }
            let row_text = Some(Cow::Borrowed(number.format(row)));
            match verdict {
                Verdict::Failed(reason, detail) => {
                    tally.failed(reason);
                    let head = [row_text, Some(reason.into()), Some(detail.into())];
                    write_row(&mut files.failed, head, raw, i)?;
                }
                Verdict::NotFound(detail) => {
                    tally.not_found += 1;
                    write_row(&mut files.not_found, [row_text, Some(detail.into())], raw, i)?;
                }
                Verdict::Contact(id) => {
                    let id_cell = Some(Cow::Borrowed(id_text.format(id)));
                    match self.options.mode {
                        Mode::Add => self.add(
                            raw,
                            i,
                            id,
                            callback,
                            [row_text, id_cell],
                            files,
                            members,
                            tally,
                            changes,
                        )?,
                        Mode::Remove if members.remove(id) => {
                            tally.done += 1;
                            removed.push(id);
                            write_row(&mut files.done, [row_text, id_cell], raw, i)?;
                        }
                        Mode::Remove => {
                            tally.not_found += 1;
                            let detail = format!("contact {id} is not on list {:?}", self.name);
                            write_row(&mut files.not_found, [row_text, Some(detail.into())], raw, i)?;
                        }
                    }
                }
            }
        }
        for b in bad {
            write_bad(files, b, tally)?;
        }
        Ok(())
    }

    /// A found contact onto the list: a new member, or an update of the
    /// one it is.
    #[allow(clippy::too_many_arguments)]
    fn add(
        &self,
        raw: &RawBatch,
        i: usize,
        id: i64,
        callback: Option<i64>,
        head: [Option<Cow<'_, str>>; 2],
        files: &mut Files,
        members: &mut IdSet,
        tally: &mut Tally,
        changes: &mut Changes,
    ) -> Result<()> {
        let status = cell(raw, self.columns.status, i);
        let agent = cell(raw, self.columns.agent, i);
        let [row_text, id_cell] = head;
        // A member already (or named by an earlier row): its non-empty
        // cells change the membership; else a new member.
        let member = !members.insert(id);
        let status = if member {
            tally.updated += 1;
            if status.is_some() || agent.is_some() || callback.is_some() {
                changes.updated.append_value(id);
                changes.update_rows.append_value(raw.rows().value(i));
                changes.update_status.append_option(status);
                changes.update_agent.append_option(agent);
                changes.update_callback.append_option(callback);
            }
            status
        } else {
            tally.done += 1;
            let status = status.or(self.options.status.as_deref()).unwrap_or("new");
            changes.added.push(id);
            changes.status.append_value(status);
            changes.agent.append_option(agent);
            changes.callback.append_option(callback);
            Some(status)
        };
        let head = [
            row_text,
            id_cell,
            status.map(Cow::Borrowed),
            agent.map(Cow::Borrowed),
            callback.map(|c| Cow::Owned(callback::format(c))),
        ];
        let file = match &mut files.updated {
            Some(updated) if member => updated,
            _ => &mut files.done,
        };
        write_row(file, head, raw, i)
    }
}

/// A row that is no row of the table: `bad_row`, its fields as read.
fn write_bad(files: &mut Files, bad: &read::BadRow, tally: &mut Tally) -> Result<()> {
    tally.failed("bad_row");
    let head = [
        Some(Cow::Owned(bad.row.to_string())),
        Some(Cow::Borrowed("bad_row")),
        Some(Cow::Borrowed(bad.detail.as_str())),
    ];
    let fields = bad.fields.iter().map(|f| Some(Cow::Borrowed(f.as_str())));
    files.failed.record(head.into_iter().chain(fields))
}

#[cfg(test)]
mod tests {
    use super::*;

    fn options(by: Key, mode: Mode, maps: &[&str]) -> MembersOptions {
        MembersOptions {
            mode,
            list: "x".into(),
            input: Input::Stdin,
            read: ReadOptions::default(),
            by,
            maps: maps.iter().map(|m| m.to_string()).collect(),
            status: None,
            status_column: None,
            agent_column: None,
            callback_column: None,
            create: false,
            out: None,
            dry_run: false,
            bom: false,
            settings: NormalizeSettings::default(),
            db: PathBuf::new(),
        }
    }

    fn names(names: &[&str]) -> Vec<String> {
        names.iter().map(|n| n.to_string()).collect()
    }

    #[test]
    fn the_key_column_is_found_as_an_import_finds_its_field() {
        let found = |by, header: &[&str]| find_columns(&names(header), &options(by, Mode::Add, &[])).map(|c| c.key);
        assert_eq!(found(Key::Id, &["Jméno", "Identyfikator CRM"]).expect("id"), 1);
        assert_eq!(found(Key::Id, &["crm_id", "Status"]).expect("id"), 0);
        assert_eq!(found(Key::Email, &["Name", "E-mail"]).expect("email"), 1);
        assert_eq!(found(Key::Phone, &["Name", "Mobil"]).expect("mobile"), 1);
        assert_eq!(found(Key::ExternalId, &["External ID", "email"]).expect("ext"), 0);
        // A file of one column is a file of keys.
        assert_eq!(found(Key::Id, &["col1"]).expect("only column"), 0);
        let err = found(Key::Id, &["a", "b"]).expect_err("no key");
        assert_eq!(err.exit_code(), 2);
        assert!(err.to_string().contains("--map COLUMN=id"), "{err}");
    }

    #[test]
    fn membership_columns_come_by_name_flag_or_map() {
        let header = names(&["id", "Stav", "Operátor", "Zpětné volání", "x"]);
        let c = find_columns(&header, &options(Key::Id, Mode::Add, &[])).expect("columns");
        assert_eq!((c.key, c.status, c.agent, c.callback), (0, Some(1), Some(2), Some(3)));
        let mut o = options(Key::Id, Mode::Add, &["x=id", "id=-"]);
        o.status_column = Some("Operátor".into());
        let c = find_columns(&header, &o).expect("columns");
        assert_eq!((c.key, c.status), (4, Some(2)));
        // Removing reads no membership columns.
        let c = find_columns(&header, &options(Key::Id, Mode::Remove, &[])).expect("columns");
        assert_eq!((c.status, c.agent, c.callback), (None, None, None));
        for bad in [&["x=first_name"][..], &["nope=id"], &["x"]] {
            let err = find_columns(&header, &options(Key::Id, Mode::Add, bad)).expect_err("usage");
            assert_eq!(err.exit_code(), 2, "{bad:?}");
        }
    }
}
