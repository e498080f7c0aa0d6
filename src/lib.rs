//! kontakt: bulk-loads contact files into a CRM contact store, matching and
//! deduplicating as it goes, and audits the store for duplicates.
//!
//! The pipeline (SPEC.md is the outer contract, docs/DESIGN.md the inner one):
//!
//! ```text
//! read      file/stdin -> sniff -> RawBatch (Arrow Utf8 columns + source row)
//! map       columns -> fields (auto synonyms, --map, --mapping)
//! normalize values -> normal forms, failures -> failed rows          (issue 3)
//! matching  xxh3 key index of the store, probe per batch              (issue 4)
//! apply     plan actions per row, commit in one store transaction    (issue 4)
//! write     no/one/multiple_match, failed, summary.json               (issue 4)
//! ```
//! Every stage reaches the contact store through one interface
//! ([`store::Store`], in the pipeline's words); the backends and all their
//! SQL live behind it, under `src/store/` (issue 22). This crate holds all
//! of it; `main.rs` only dispatches commands.

pub mod apply;
pub mod audit;
pub mod cancel;
pub mod cli;
pub mod config;
pub mod contacts;
pub mod error;
pub mod fields;
pub mod groups;
pub mod import;
pub mod lists;
pub mod map;
pub mod matching;
pub mod normalize;
pub mod prefetch;
pub mod read;
pub mod store;
pub mod synth;
pub mod write;

pub use arrow;
pub use error::{Error, Result};
