//! Apply: what to do with each categorized row ([`actions`], pure) and the
//! store writes of one import ([`commit`], one transaction).

pub mod actions;
pub mod commit;
mod plan;

pub use actions::{Action, Actions, Master, Mode, OnMultipleMatch, OnNoMatch, OnOneMatch};
pub use commit::{
    Commit, CommitJob, CommitSetup, Committed, Ending, GroupCounts, StoreField, end_group, run_commit, start_group,
    store_fields,
};
pub use plan::{Counts, Resolved, resolve_batch, resolve_in_file};
