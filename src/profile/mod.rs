//! De-identification profiles: the YAML model, the built-in profiles, and the
//! compiler that turns them into a lookup table.

pub mod action;
pub mod builtin;
pub mod compile;
pub mod compiled;
pub mod diagnose;
pub mod generate;
pub mod iod;
pub mod load;
pub mod model;
pub mod pixels;
pub mod replace;
pub mod table;
pub mod tagspec;

pub use action::{Action, Code, HashParams};
pub use compiled::{CompiledProfile, Decision, Diagnostic, Fallback, ProfileErrors};
pub use load::load;
