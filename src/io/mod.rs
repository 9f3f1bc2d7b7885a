//! Everything that touches the file system: walking inputs, reading, writing,
//! choosing output paths.

pub mod cp246;
pub mod layout;
pub mod read;
pub mod retype;
pub mod walk;
pub mod write;
