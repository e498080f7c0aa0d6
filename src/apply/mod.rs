//! Apply: what to do with each categorized row ([`actions`], pure), the
//! store's rows built from it ([`rows`], pure) and the store writes of one
//! import ([`commit`], one transaction).

pub mod actions;
pub mod commit;
mod plan;
pub mod rows;
mod unique;

pub use actions::{Action, Actions, Master, Mode, OnMultipleMatch, OnNoMatch, OnOneMatch};
pub use commit::{Commit, CommitJob, CommitSetup, Committed, Ending, GroupCounts, run_commit};
pub use plan::{Counts, Resolved, resolve_batch, resolve_in_file};
pub use rows::{StoreField, store_fields};
pub use unique::Unique;
