//! The crate's one error type, and its mapping to exit codes (sysexits).

use std::path::PathBuf;

/// Everything that can go wrong in `chroot-builder`. Every message names the problem and the fix.
#[derive(Debug, thiserror::Error)]
pub enum Error {
    /// A file operation failed.
    #[error("{path}: {source}")]
    Io {
        /// The file or folder.
        path: PathBuf,
        /// The OS error.
        source: std::io::Error,
    },
    /// The manifest is not valid.
    #[error("{path}:{line}: {message}; fix: {fix}")]
    Manifest {
        /// The manifest file.
        path: PathBuf,
        /// 1-based line of the offending key or value (0 when unknown).
        line: usize,
        /// What is wrong.
        message: String,
        /// How to fix it.
        fix: String,
    },
    /// A path is unsafe to work in (world-writable parent, `/`, overlapping trees).
    #[error("{message}; fix: {fix}")]
    UnsafePath {
        /// What is wrong.
        message: String,
        /// How to fix it.
        fix: String,
    },
    /// Something the manifest asks for is missing on the host and `--strict` was given.
    #[error("missing on this host: {names}; fix: install them or remove them from the manifest (or drop --strict)")]
    Missing {
        /// The missing binaries or paths, comma separated.
        names: String,
    },
    /// Mounting or unmounting failed.
    #[error("{what}: {source}; fix: {fix}")]
    Mount {
        /// What was being done.
        what: String,
        /// The OS error.
        source: std::io::Error,
        /// How to fix it.
        fix: String,
    },
    /// The trees are not in the state the command needs (not built, not loaded...).
    #[error("{message}; fix: {fix}")]
    State {
        /// What is wrong.
        message: String,
        /// How to fix it.
        fix: String,
    },
    /// `check` found problems (they were printed).
    #[error("check found {0} problem(s)")]
    CheckFailed(usize),
    /// Bad command-line usage.
    #[error("{0}")]
    Usage(String),
}

impl Error {
    /// The process exit code for this error (sysexits.h).
    pub fn exit_code(&self) -> i32 {
        match self {
            Error::CheckFailed(_) => 1,
            Error::Usage(_) => 64,
            Error::Missing { .. } => 69,
            Error::State { .. } => 69,
            Error::Mount { .. } => 71,
            Error::Io { .. } => 74,
            Error::UnsafePath { .. } => 77,
            Error::Manifest { .. } => 78,
        }
    }

    /// Wraps an OS error with the path it concerns.
    pub fn io(path: impl Into<PathBuf>, source: impl Into<std::io::Error>) -> Self {
        Error::Io {
            path: path.into(),
            source: source.into(),
        }
    }
}

/// Shorthand for results in this crate.
pub type Result<T, E = Error> = std::result::Result<T, E>;
