//! The contract between reading a mail (args, message, identity) and sending it (smtp):
//! a fully checked message, ready for the wire.

use std::time::Duration;

/// The SMTP envelope.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Envelope {
    /// `MAIL FROM` address without angle brackets; empty means the null sender `<>`.
    pub sender: String,
    /// `RCPT TO` addresses without angle brackets, deduplicated, at least one.
    pub recipients: Vec<String>,
}

/// A mail read whole and checked, ready to submit.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Message {
    /// Who it goes from and to.
    pub envelope: Envelope,
    /// Header and body; every line ends in CRLF, no NUL, no line over 998 octets.
    /// NOT dot-stuffed: the SMTP layer does that.
    pub data: Vec<u8>,
    /// The data holds octets >= 0x80: ask for `BODY=8BITMIME` when offered.
    pub eight_bit: bool,
    /// An envelope address is not ASCII: ask for `SMTPUTF8` (refuse if not offered).
    pub smtputf8: bool,
}

/// Where and how to submit.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Settings {
    /// Server host (an IP literal or name resolved without NSS; default 127.0.0.1).
    pub server: String,
    /// Server port (default 25).
    pub port: u16,
    /// Per-step timeout: each connect, read and write (default 60 s; `-T`).
    pub timeout: Duration,
    /// Overall deadline for the whole submission, retries included.
    pub deadline: Duration,
    /// How long to keep retrying a refused connection or a 421 (default 15 s).
    pub retry_for: Duration,
    /// Largest mail accepted, in octets.
    pub max_size: u64,
    /// Name given in EHLO.
    pub helo_name: String,
    /// Print the SMTP dialogue on stderr (`-v`).
    pub verbose: bool,
}
