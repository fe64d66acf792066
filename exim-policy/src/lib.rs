//! `exim-policy`: the Exim configuration that identifies each local sender by an RFC 1413 ident
//! lookup on loopback and limits it per Unix user (`render`, `check`), and per-user mail counts
//! from Exim's main logs (`report`). See DESIGN.md, contract 3.
#![forbid(unsafe_code)]

pub mod check;
pub mod docs;
pub mod error;
pub mod policy;
pub mod render;
pub mod report;

pub use error::Error;
