//! chroot-builder: builds the BaseOS tree from the host per a manifest, loads it into tmpfs with
//! its bind mounts, keeps it in sync while users run, and audits it. See README.md.
#![forbid(unsafe_code)]
#![deny(missing_docs)]

pub mod build;
pub mod check;
pub mod docs;
pub mod elf;
pub mod error;
pub mod glob;
pub mod manifest;
pub mod ops;
pub mod sys;
pub mod tree;

pub use error::{Error, Result};
