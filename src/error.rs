//! Errors sorted by who is at fault, so the binary maps each to an exit code
//! (SPEC: 1 runtime failure, 2 usage error) and prints it once, on one line.
//! Every variant names its place: file, row, column, value where they apply.

use std::path::PathBuf;

/// Result with the crate's error type.
pub type Result<T, E = Error> = std::result::Result<T, E>;

#[derive(Debug, thiserror::Error)]
pub enum Error {
    /// The user asked for something that cannot be done (bad flag value,
    /// mapping, rule, unknown field). Exit code 2.
    #[error("{0}")]
    Usage(String),

    /// The input file cannot be read as a table at all (empty, unsupported
    /// encoding, broken XLSX). Bad *rows* are not errors: they become data.
    #[error("{path}: {message}")]
    Input { path: String, message: String },

    /// Reading or writing a file failed.
    #[error("{path}: {source}")]
    Io {
        path: PathBuf,
        #[source]
        source: std::io::Error,
    },

    /// The contact store failed or refused.
    #[error("store {path}: {message}")]
    Store { path: String, message: String },

    /// A pipeline thread stopped taking work; its own error is reported in
    /// place of this one (never shown when the pipeline works as designed).
    #[error("an import stage stopped unexpectedly")]
    Stopped,

    /// Ctrl-C (SIGINT) or SIGTERM before the store's commit. Exit code 130
    /// or 143.
    #[error("cancelled ({}): rolled back, the store is as it was", .0.name())]
    Cancelled(crate::cancel::Signal),
}

impl Error {
    pub fn usage(message: impl Into<String>) -> Self {
        Error::Usage(message.into())
    }

    pub fn input(path: impl std::fmt::Display, message: impl Into<String>) -> Self {
        Error::Input {
            path: path.to_string(),
            message: message.into(),
        }
    }

    pub fn io(path: impl Into<PathBuf>, source: std::io::Error) -> Self {
        Error::Io {
            path: path.into(),
            source,
        }
    }

    /// The process exit code SPEC assigns to this error.
    pub fn exit_code(&self) -> i32 {
        match self {
            Error::Usage(_) => 2,
            Error::Cancelled(signal) => signal.exit_code(),
            Error::Input { .. } | Error::Io { .. } | Error::Store { .. } | Error::Stopped => 1,
        }
    }
}
