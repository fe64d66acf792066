//! chroot-builder integration tests: one binary (see style.md §1.5). Tests that mount run the
//! builder inside a private mount namespace (common::Ns), so a crash leaves no mounts behind.
#![allow(clippy::unwrap_used)]

mod bad_input;
mod caps;
mod common;
mod real;
mod unit;
