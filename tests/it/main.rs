//! The integration tests, as one binary (each test binary is a link step of the
//! whole crate, which costs minutes on a 2-core CI). Every module drives the real
//! `dicom-deid` binary over real samples; `tests/proptests.rs` stays apart because
//! it installs its own allocator.

mod common;

mod bytes;
mod check;
mod cli;
mod gateway;
mod judged;
mod options;
mod promises;
mod reliability;
