//! Sinks: where encoded objects go. The pipeline produces a [`Part10`]; a sink
//! makes it durable under a name, whole or not at all. A new destination (an object
//! store, a DICOM peer) is a new file here, not a change to the pipeline.

pub mod fs;
pub mod s3;

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
    /// Another object is stored under the name and is never overwritten.
    #[error("cannot write output: {0}")]
    Conflict(String),
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

/// An object written in full but not yet visible under its name. Dropped without
/// `commit`, it leaves nothing behind.
pub trait Staged: Send {
    /// Bytes the object takes.
    fn bytes(&self) -> u64;
    /// Makes the object visible under its name, replacing what was there.
    fn commit(self: Box<Self>) -> Result<u64, StoreError>;
    /// Whether the object already stored under the name holds exactly these bytes.
    fn same_as_stored(&self) -> bool;
    /// Makes the object visible under its name only if nothing is stored there yet.
    /// A sink that never overwrites anyway (an object store's create-only PUT) keeps
    /// this default.
    fn commit_new(self: Box<Self>) -> Result<u64, NotNew> {
        self.commit().map_err(NotNew::Failed)
    }
}

/// Why a create-only commit left the object invisible.
pub enum NotNew {
    /// Something is stored under the name already. The staged object comes back:
    /// the run compares it with what is stored, asks who owns the name, and then
    /// commits it over the old one or drops it.
    Exists(Box<dyn Staged>),
    Failed(StoreError),
}

impl From<StoreError> for NotNew {
    fn from(e: StoreError) -> Self {
        NotNew::Failed(e)
    }
}

/// A destination for de-identified objects, shared by all workers.
pub trait Sink: Send + Sync {
    /// Writes `object` for `name` (a relative path: `a/b/c.dcm`) without making it
    /// visible: the run decides, in one place, which of two objects with one name
    /// is kept (see `run::execute`).
    fn stage(&self, name: &Path, object: Part10) -> Result<Box<dyn Staged>, StoreError>;

    /// Stores `object` under `name`; returns the bytes written. The object is
    /// visible under its name only once complete: on any error nothing is left.
    fn put(&self, name: &Path, object: Part10) -> Result<u64, StoreError> {
        self.stage(name, object)?.commit()
    }

    /// How `name` is shown in reports (a path, a URL).
    fn locate(&self, name: &Path) -> PathBuf;

    /// The size of the object stored under `name`, if there is one (resume checks
    /// that a ledger's output is still there, whole).
    fn stored_size(&self, name: &Path) -> Option<u64>;

    /// Threads that commit in parallel: 0 for a sink whose commit is cheap (a
    /// rename), more for one whose commit is a network request.
    fn commit_threads(&self) -> usize {
        0
    }
}
