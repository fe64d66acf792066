//! The crate's one error type, and its mapping to exit codes (sysexits).

use std::path::PathBuf;

/// Everything that can go wrong in `exim-policy`. Messages say what happened and what to do.
#[derive(Debug, thiserror::Error)]
pub enum Error {
    /// Reading or writing a file failed.
    #[error("{path}: {source}")]
    Io {
        /// The file.
        path: PathBuf,
        /// The OS error.
        source: std::io::Error,
    },
    /// The policy file is not valid; the message names the line and the fix.
    #[error("{path}: {message}")]
    Policy {
        /// The policy file.
        path: PathBuf,
        /// What is wrong and how to fix it.
        message: String,
    },
    /// `check` found problems in the rendered configuration.
    #[error("check failed: {0}")]
    CheckFailed(String),
    /// Bad command-line usage.
    #[error("{0}")]
    Usage(String),
}

impl Error {
    /// The process exit code for this error (sysexits.h).
    pub fn exit_code(&self) -> i32 {
        match self {
            Error::Usage(_) => 64,
            Error::Policy { .. } => 78,
            Error::CheckFailed(_) => 1,
            Error::Io { .. } => 74,
        }
    }
}

/// Shorthand for results in this crate.
pub type Result<T, E = Error> = std::result::Result<T, E>;
