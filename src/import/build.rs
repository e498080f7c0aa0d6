//! The build stage: the store's key index (of the contacts sharing a key
//! with the file, when the store is large: the semi-join), while the file's
//! first batches are normalized.

use std::sync::atomic::{AtomicBool, Ordering};
use std::time::{Duration, Instant};

use rayon::prelude::*;

use super::stream::{Ahead, for_each_prepared, group_size, read_group};
use super::{ImportOptions, Run, Timings};
use crate::cancel::{self, Cancel};
use crate::error::{Error, Result};
use crate::map::Mapping;
use crate::matching::{self, FileKeys, StoreIndex};
use crate::normalize::Plan;
use crate::read::{self, Input};
use crate::store::Store;

/// Input held by [`normalize_ahead`] at most (~1M rows of contacts; their
/// normalized batches take as much again).
const AHEAD_BYTES: usize = 128 << 20;

/// A file this size or smaller, imported into a store large enough for the
/// semi-join, is normalized whole before the index is built (~2M rows of
/// contacts; held with their normalized batches, ~0.5 GB).
const WHOLE_BYTES: u64 = 256 << 20;

/// Builds the store's key index (an empty one without a store) and returns
/// it with the file's batches normalized meanwhile. Times the build, and
/// counts the normalizing with the stage it belongs to (it overlaps the
/// build).
pub(super) fn build(
    table: &mut read::Table,
    plan: &Plan,
    mapping: &Mapping,
    store: Option<&Store>,
    options: &ImportOptions,
    run: &Run,
    timings: &mut Timings,
) -> Result<(StoreIndex, Ahead)> {
    let started = Instant::now();
    let cancel = run.cancel;
    let (primary, secondary) = (options.normalize.primary_key, options.normalize.secondary_key);
    let contact_type = mapping.contact_type.name();
    let semi_join = match store {
        Some(store) => semi_join_pays(store, table, contact_type)?,
        None => false,
    };
    // A small file against a large store is read and normalized whole
    // first: its keys select the contacts to index, and its batches are
    // then only probed (no second pass over the file for its keys).
    let held = (semi_join && normalized_whole(table)).then(|| {
        let started = Instant::now();
        let held = normalize_ahead(table, plan, &AtomicBool::new(false), usize::MAX, cancel);
        (held, started.elapsed())
    });
    // Else the file's first batches are read and normalized while the
    // index is built (probing them waits for it).
    let built = AtomicBool::new(false);
    let (index, ahead) = std::thread::scope(|scope| {
        let ahead = held.is_none().then(|| {
            scope.spawn(|| {
                let started = Instant::now();
                let ahead = normalize_ahead(table, plan, &built, AHEAD_BYTES, cancel);
                (ahead, started.elapsed())
            })
        });
        let index = match store {
            Some(store) => (|| {
                // The build's scans run long on a large store: a cancel
                // interrupts them.
                let _armed = cancel.arm(store.interrupt())?;
                cancel::test_stage("build_index");
                let file_keys = match (&held, semi_join) {
                    (Some((held, _)), _) => Some(matching::load_file_keys(store, [primary, secondary], |add| {
                        held.batches.iter().try_for_each(add)
                    })?),
                    (None, true) => Some(read_file_keys(store, run.input, options, mapping, cancel)?),
                    (None, false) => None,
                };
                StoreIndex::build(store, contact_type, primary, secondary, file_keys)
            })(),
            None => Ok(StoreIndex::empty(primary, secondary)),
        };
        built.store(true, Ordering::Relaxed);
        let ahead = ahead.map(|ahead| {
            ahead.join().unwrap_or_else(|_| {
                let stopped = Ahead {
                    batches: Vec::new(),
                    error: Some(Error::Stopped),
                };
                (stopped, Duration::ZERO)
            })
        });
        (index, ahead)
    });
    let (ahead, normalized_ahead) = held.or(ahead).unwrap_or_default();
    timings.normalize_match += normalized_ahead;
    let index = index?;
    timings.build = started.elapsed();
    Ok((index, ahead))
}

/// Reads and normalizes the file's first batches while the store's index
/// is built, which normalizing does not need (the build leaves part of
/// the cores idle: at 10M x 10M they were ~75% busy): group after group
/// until `built` is set, or the input held reaches `limit` bytes. A read
/// error ends them and comes last.
fn normalize_ahead(table: &mut read::Table, plan: &Plan, built: &AtomicBool, limit: usize, cancel: &Cancel) -> Ahead {
    let mut batches = Vec::new();
    let mut bytes = 0;
    while !built.load(Ordering::Relaxed) && bytes < limit {
        if let Err(e) = cancel.check() {
            return Ahead {
                batches,
                error: Some(e),
            };
        }
        let (raws, error) = read_group(table, group_size());
        let last = raws.is_empty() || error.is_some();
        bytes += raws.iter().map(|raw| raw.batch.get_array_memory_size()).sum::<usize>();
        batches.par_extend(raws.par_iter().map(|raw| plan.normalize(raw)));
        if last {
            return Ahead { batches, error };
        }
    }
    Ahead { batches, error: None }
}

/// Whether to index only the stored contacts that share a key with the file
/// (see [`matching::load_file_keys`]): when the store holds more than twice
/// as many contacts of the type as the file has rows (estimated from its
/// size), a first pass over the file's keys costs less than indexing the
/// whole store.
///
/// `KONTAKT_SEMI_JOIN=always|never` overrides the choice (for measurements
/// and tests, README; the results are the same either way; `reread` is
/// `always` with the keys read in a pass of their own, see
/// [`normalized_whole`]).
fn semi_join_pays(store: &Store, table: &read::Table, contact_type: &str) -> Result<bool> {
    match std::env::var("KONTAKT_SEMI_JOIN").as_deref() {
        Ok("always" | "reread") => return Ok(true),
        Ok("never") => return Ok(false),
        _ => {}
    }
    let (Some(bytes), read::Format::Csv) = (table.size, table.detected.format) else {
        return Ok(false);
    };
    let stored = store.count_contacts_of_type(contact_type)?;
    // Contact rows of generated and real files run 100 to 200 bytes.
    Ok(stored as u64 > 2 * (bytes / 100).max(10_000))
}

/// Whether a file whose keys select the contacts to index is normalized
/// whole first (up to [`WHOLE_BYTES`]), or its keys are read in a pass of
/// their own ([`read_file_keys`]; always with `KONTAKT_SEMI_JOIN=reread`).
fn normalized_whole(table: &read::Table) -> bool {
    std::env::var("KONTAKT_SEMI_JOIN").as_deref() != Ok("reread")
        && table.size.is_some_and(|bytes| bytes <= WHOLE_BYTES)
}

/// A first pass over the file that normalizes only its key fields (and
/// `country`, which phones need) for [`matching::load_file_keys`].
fn read_file_keys(
    store: &Store,
    input: &Input,
    options: &ImportOptions,
    mapping: &Mapping,
    cancel: &Cancel,
) -> Result<FileKeys> {
    let (primary, secondary) = (options.normalize.primary_key, options.normalize.secondary_key);
    let mut key_mapping = mapping.clone();
    key_mapping.columns.retain(|c| {
        let name = c.target.name();
        name == "country" || [primary, secondary].contains(&Some(name.as_str()))
    });
    let plan = Plan::new(&key_mapping, options.normalize.clone())?;
    let empty = StoreIndex::empty(primary, secondary);
    matching::load_file_keys(store, [primary, secondary], |add| {
        let mut table = read::open(input, &options.read)?;
        for_each_prepared(
            &mut table,
            &plan,
            &empty,
            Ahead::default(),
            cancel,
            &mut Timings::default(),
            |p, _| add(&p.norm),
        )
    })
}
