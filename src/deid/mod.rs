//! The de-identification itself: keyed replacements, VR-valid values, and the engine
//! that walks a dataset. No file system, no YAML.

pub mod dates;
pub mod engine;
pub mod key;
pub mod pseudonym;
pub mod scrub;
pub mod values;

pub use engine::{Counts, CrosswalkEntry, DeidError, Engine, ExplainLine, FileResult, MAX_DEPTH};
pub use key::{Key, KeyError};
pub use pseudonym::Pseudonymizer;
