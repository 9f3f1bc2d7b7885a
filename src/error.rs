//! Error types of the library. Messages state only their own context and never an
//! attribute value or the key; the CLI renders them once.

use crate::deid::{DeidError, KeyError, MAX_DEPTH};
use crate::profile::ProfileErrors;

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
    Read(std::io::Error),
    #[error("malformed DICOM: {0}")]
    Malformed(String),
    #[error("unsupported transfer syntax {0}")]
    UnsupportedTs(String),
    #[error("sequences nest deeper than {MAX_DEPTH} levels")]
    TooDeep,
    #[error("cannot de-identify: {0}")]
    Deid(#[from] DeidError),
    #[error("cannot write output: {0}")]
    Write(String),
    /// The output device is full: later files cannot succeed either.
    #[error("cannot write output: {0}")]
    OutputFull(String),
    #[error("quarantined: {0}")]
    Quarantined(String),
    #[error("not processed: an earlier write found the output device full")]
    Aborted,
    #[error("internal error while processing this file: {0}")]
    Panic(String),
}

impl FileError {
    /// Short machine-readable kind for the report.
    pub fn kind(&self) -> &'static str {
        match self {
            FileError::Read(_) => "unreadable",
            FileError::Malformed(_) => "malformed",
            FileError::UnsupportedTs(_) => "unsupported",
            FileError::TooDeep => "malformed",
            FileError::Deid(_) => "deid",
            FileError::Write(_) => "write",
            FileError::OutputFull(_) => "output-full",
            FileError::Quarantined(_) => "quarantined",
            FileError::Aborted => "aborted",
            FileError::Panic(_) => "internal",
        }
    }
}

/// `error: cause: cause` in one line: dicom-rs errors nest several levels deep and
/// their Debug form carries kilobytes of backtrace.
pub fn error_chain(e: &dyn std::error::Error) -> String {
    let mut out = e.to_string();
    let mut cur = e.source();
    while let Some(s) = cur {
        let msg = s.to_string();
        if !out.ends_with(&msg) {
            out.push_str(": ");
            out.push_str(&msg);
        }
        cur = s.source();
    }
    out
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
}
