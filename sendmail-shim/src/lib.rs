//! `sendmail-shim`: a static, mini_sendmail-compatible `sendmail` for PHP inside a chroot.
//! It reads a mail, fixes it up, submits it over SMTP to the local Exim and tags it with the
//! caller's uid. See DESIGN.md, contract 1.
#![forbid(unsafe_code)]

pub mod address;
pub mod args;
pub mod config;
pub mod deliver;
pub mod error;
pub mod identity;
pub mod message;
pub mod relay;
pub mod smtp;
pub mod submission;

pub use error::Error;
