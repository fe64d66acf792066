//! The shim's one error type, mapped to sysexits codes in one place (`exit_code`).
//! Never 75: PHP 8.5 reads 75 as "queued, success" and the shim has no queue.

/// Everything that ends the shim unsuccessfully. Each message names the problem and the fix.
#[derive(Debug, thiserror::Error)]
pub enum Error {
    /// Bad or refused option, bad `-f`, no recipients (64).
    #[error("{0}")]
    Usage(String),
    /// The mail itself is unacceptable: NUL, long line, too large, malformed address header,
    /// or a 5xx to MAIL or DATA (65).
    #[error("{0}")]
    Data(String),
    /// A recipient was refused with 5xx (67).
    #[error("{0}")]
    RecipientRefused(String),
    /// Server unreachable, timed out, connection lost, or 4xx, after retries (69).
    #[error("{0}")]
    Unavailable(String),
    /// Reading stdin failed (74).
    #[error("{0}")]
    Input(String),
    /// The server's reply could not be understood (76).
    #[error("{0}")]
    Protocol(String),
    /// The config file is bad (78).
    #[error("{0}")]
    Config(String),
}

impl Error {
    /// The process exit code (sysexits.h), per DESIGN.md contract 1.
    pub fn exit_code(&self) -> i32 {
        match self {
            Error::Usage(_) => 64,
            Error::Data(_) => 65,
            Error::RecipientRefused(_) => 67,
            Error::Unavailable(_) => 69,
            Error::Input(_) => 74,
            Error::Protocol(_) => 76,
            Error::Config(_) => 78,
        }
    }
}

/// Shorthand for results in this crate.
pub type Result<T, E = Error> = std::result::Result<T, E>;
