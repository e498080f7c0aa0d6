//! Integration tests: the `kontakt` binary end to end (assert_cmd), one
//! module per command, plus library-level properties of the readers.

#[macro_use]
mod common;
mod audit;
mod contacts;
mod import;
mod imports;
mod lists;
mod normalize;
mod postgres;
mod preview;
mod read;
mod settings;
mod signals;
mod store;
mod synth;
mod transfer;
mod undo;
mod upsert;
