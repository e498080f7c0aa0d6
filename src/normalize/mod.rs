//! Normalization and validation: every mapped value to its normal form
//! (SPEC, "Normalized forms"), or to a reason it cannot be its field.

pub mod consent;
pub mod country;
pub mod date;
pub mod email;
pub mod gender;
pub mod phone;
pub mod stage;
pub mod text;

pub use stage::{FailedRow, InvalidValues, NormalizeSettings, NormalizedBatch, Original, Plan, Reason};
