//! Sinks: where encoded objects go. The pipeline produces a [`Part10`]; a sink
//! makes it durable under a name, whole or not at all. A new destination (an object
//! store, a DICOM peer) is a new file here, not a change to the pipeline.

pub mod fs;

use crate::io::encode::Part10;
use crate::io::error::EncodeError;
use std::path::{Path, PathBuf};

/// Why a sink could not take an object.
#[derive(Debug, thiserror::Error)]
pub enum StoreError {
    #[error(transparent)]
    Encode(#[from] EncodeError),
    #[error("cannot write output: {0}")]
    Write(String),
    /// The destination is full: later objects cannot succeed either.
    #[error("cannot write output: {0}")]
    Full(String),
}

impl StoreError {
    pub fn is_full(&self) -> bool {
        matches!(
            self,
            StoreError::Full(_) | StoreError::Encode(EncodeError::OutputFull(_))
        )
    }

    /// The input changed under the pipeline: nothing was kept.
    pub fn is_changed(&self) -> bool {
        matches!(self, StoreError::Encode(EncodeError::Changed))
    }
}

/// A destination for de-identified objects, shared by all workers.
pub trait Sink: Send + Sync {
    /// Stores `object` under `name` (a relative path: `a/b/c.dcm`); returns the
    /// bytes written. The object is visible under its name only once complete: on
    /// any error nothing is left behind.
    fn put(&self, name: &Path, object: Part10) -> Result<u64, StoreError>;

    /// How `name` is shown in reports (a path, a URL).
    fn locate(&self, name: &Path) -> PathBuf;
}
