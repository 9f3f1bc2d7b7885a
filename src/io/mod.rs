//! DICOM bytes: where inputs come from, bounded parsing and repair, encoding,
//! walking input trees, naming outputs. Knows nothing of profiles or the engine.

pub mod cp246;
pub mod emit;
pub mod encap;
pub mod encode;
pub mod error;
pub mod layout;
pub mod parse;
pub mod read;
pub mod retype;
pub mod source;
pub mod walk;

pub use error::MAX_DEPTH;
