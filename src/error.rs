//! Errors of the run layer. Messages state only their own context and never an
//! attribute value or the key; the CLI renders them once.

use crate::deid::{DeidError, KeyError};
use crate::io::error::{EncodeError, ReadError};
use crate::outcome::Kind;
use crate::pipeline::PipelineError;
use crate::profile::ProfileErrors;
use crate::store::StoreError;

pub use crate::io::error::error_chain;

/// Errors that stop a run before any file is processed (exit code 2).
#[derive(Debug, thiserror::Error)]
pub enum Error {
    #[error(transparent)]
    Profile(#[from] ProfileErrors),
    #[error(transparent)]
    Key(#[from] KeyError),
    #[error("{0}")]
    Usage(String),
    #[error("{context}: {source}")]
    Io {
        context: String,
        source: std::io::Error,
    },
}

/// Why one input could not be de-identified. The batch goes on.
#[derive(Debug, thiserror::Error)]
pub enum FileError {
    #[error("cannot read: {0}")]
    Open(#[source] std::io::Error),
    #[error(transparent)]
    Pipeline(#[from] PipelineError),
    #[error(transparent)]
    Store(#[from] StoreError),
    #[error("not processed: an earlier write found the output device full")]
    Aborted,
    #[error("internal error while processing this file: {0}")]
    Panic(String),
}

impl FileError {
    /// The report's kind for this failure.
    pub fn kind(&self) -> Kind {
        match self {
            FileError::Open(_) => Kind::Unreadable,
            FileError::Pipeline(p) => match p {
                PipelineError::Read(r) => read_kind(r),
                PipelineError::Deid(DeidError::TooDeep | DeidError::Value { .. }) => Kind::Deid,
                PipelineError::Quarantined { .. } => Kind::Quarantined,
            },
            FileError::Store(s) => match s {
                StoreError::Encode(e) => match e {
                    EncodeError::Changed => Kind::Changed,
                    EncodeError::OutputFull(_) => Kind::OutputFull,
                    EncodeError::Malformed(_) => Kind::Malformed,
                    EncodeError::Read(_) => Kind::Unreadable,
                    EncodeError::Write(_) => Kind::Write,
                    EncodeError::Pixels(_) => Kind::Quarantined,
                },
                StoreError::Full(_) => Kind::OutputFull,
                StoreError::Write(_) => Kind::Write,
                StoreError::Conflict(_) => Kind::Duplicate,
            },
            FileError::Aborted => Kind::Aborted,
            FileError::Panic(_) => Kind::Internal,
        }
    }

    /// The `quarantine:` rule of the profile that refused the file, if one did.
    pub fn quarantine_rule(&self) -> Option<&'static str> {
        match self {
            FileError::Pipeline(PipelineError::Quarantined { rule, .. }) => Some(rule),
            FileError::Store(StoreError::Encode(EncodeError::Pixels(_))) => Some("pixels"),
            _ => None,
        }
    }

    /// The output device is full: the remaining inputs are not attempted.
    pub fn is_output_full(&self) -> bool {
        self.kind() == Kind::OutputFull
    }
}

fn read_kind(r: &ReadError) -> Kind {
    match r {
        ReadError::Io(_) => Kind::Unreadable,
        ReadError::Malformed(_) | ReadError::TooDeep => Kind::Malformed,
        ReadError::UnsupportedTs(_) => Kind::Unsupported,
        ReadError::Changed => Kind::Changed,
    }
}

/// Exit status of the process, merged over all files: the worst wins.
#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord)]
pub enum ExitStatus {
    /// Every DICOM input was written (non-DICOM inputs may have been skipped).
    Success = 0,
    /// Some inputs failed or were skipped for a reason other than "not DICOM".
    Partial = 1,
    /// Usage, profile or key error: nothing was written.
    Fatal = 2,
    /// Stopped by SIGINT or SIGTERM: finished files are kept; the same command
    /// resumes.
    Interrupted = 130,
}
