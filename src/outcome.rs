//! What can become of one input, as one typed kind. Serialised to the strings the
//! JSON report has always used.

use serde::Serialize;

#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, Serialize)]
#[serde(rename_all = "kebab-case")]
pub enum Kind {
    /// Skipped: not a DICOM file (expected in a mixed tree).
    NotDicom,
    /// Skipped: a DICOMDIR (holds patient names; never copied).
    Dicomdir,
    /// Skipped: finished by an earlier run with this profile and key.
    Unchanged,
    /// Cannot be opened or read.
    Unreadable,
    Malformed,
    /// A transfer syntax whose dataset encoding we cannot read.
    Unsupported,
    /// The engine refused a value.
    Deid,
    Write,
    OutputFull,
    Quarantined,
    /// Not attempted: the output device filled up earlier in the run.
    Aborted,
    /// A bug (a caught panic).
    Internal,
    /// Another input maps to the same output.
    Duplicate,
    /// The input's size or modification time changed while it was processed.
    Changed,
    /// A symbolic link not followed (skipped), or a link loop (failed).
    Symlink,
}

impl Kind {
    pub fn as_str(self) -> &'static str {
        match self {
            Kind::NotDicom => "not-dicom",
            Kind::Dicomdir => "dicomdir",
            Kind::Unchanged => "unchanged",
            Kind::Unreadable => "unreadable",
            Kind::Malformed => "malformed",
            Kind::Unsupported => "unsupported",
            Kind::Deid => "deid",
            Kind::Write => "write",
            Kind::OutputFull => "output-full",
            Kind::Quarantined => "quarantined",
            Kind::Aborted => "aborted",
            Kind::Internal => "internal",
            Kind::Duplicate => "duplicate",
            Kind::Changed => "changed",
            Kind::Symlink => "symlink",
        }
    }

    /// Skips that are expected and do not affect the exit code (a `duplicate` is
    /// skipped only when its output is byte-identical to the one kept).
    pub fn is_benign_skip(self) -> bool {
        matches!(self, Kind::NotDicom | Kind::Unchanged | Kind::Duplicate)
    }
}

impl std::fmt::Display for Kind {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str(self.as_str())
    }
}

/// How many elements each kind of action touched in one file (or a run).
#[derive(Debug, Default, Clone, Copy, PartialEq, Eq, Serialize)]
pub struct Counts {
    pub removed: u64,
    pub emptied: u64,
    pub replaced: u64,
    pub uid_remapped: u64,
    pub kept: u64,
}

impl Counts {
    pub fn add(&mut self, o: &Counts) {
        self.removed += o.removed;
        self.emptied += o.emptied;
        self.replaced += o.replaced;
        self.uid_remapped += o.uid_remapped;
        self.kept += o.kept;
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn serialises_to_the_report_strings() {
        for k in [
            Kind::NotDicom,
            Kind::Dicomdir,
            Kind::Unchanged,
            Kind::Unreadable,
            Kind::Malformed,
            Kind::Unsupported,
            Kind::Deid,
            Kind::Write,
            Kind::OutputFull,
            Kind::Quarantined,
            Kind::Aborted,
            Kind::Internal,
            Kind::Duplicate,
            Kind::Changed,
            Kind::Symlink,
        ] {
            assert_eq!(
                serde_json::to_string(&k).unwrap(),
                format!("\"{}\"", k.as_str())
            );
        }
    }
}
