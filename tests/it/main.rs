//! The integration tests, as one binary (each test binary is a link step of the
//! whole crate, which costs minutes on a 2-core CI). Every module drives the real
//! `dicom-deid` binary over real samples; `tests/proptests.rs` stays apart because
//! it installs its own allocator.

mod common;

mod diagnostics;

mod bytes;
mod check;
mod cli;
mod gateway;
mod gateway_ops;
mod judged;
mod options;
mod pixels;
mod pixels_encap;
mod promises;
mod readme;
mod reliability;
mod report_html;
mod s3;
mod ux;
mod validate;
