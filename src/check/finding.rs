//! What `check` reports: a finding names a file, a tag path or byte offset and a
//! kind, never an attribute value.

use serde::Serialize;
use std::fmt;

/// The kind of a finding. Every kind counts against the exit code, unless `check
/// --allow` names it, or it is a [`Kind::is_warning`] and `--strict` is not given.
#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord, Hash, Serialize)]
#[serde(rename_all = "kebab-case")]
pub enum Kind {
    /// The profile removes this attribute, but it is present.
    NotRemoved,
    /// A private element the profile removes is present.
    PrivateNotRemoved,
    /// The profile empties this attribute, but it holds a value.
    NotEmptied,
    /// The profile replaces this value (dummy, clean, fixed value, pseudonym), but
    /// it still holds the original or real-looking data.
    NotReplaced,
    /// The profile remaps this UID, but it still holds the original.
    NotRemapped,
    /// A UID value that breaks PS3.5 9.1.
    InvalidUid,
    /// A ReferencedSOPInstanceUID that names no instance (or study) of the tree.
    UnresolvedReference,
    /// File meta Media Storage SOP Instance/Class UID differs from the dataset.
    MetaUidMismatch,
    /// A PS3.15 marker is absent.
    MissingMarker,
    /// A PS3.15 marker holds the wrong value.
    WrongMarker,
    /// An identifying value of the original is still in the file.
    ResidualPhi,
    /// Pixels may show text: BurnedInAnnotation YES, or absent for a risky class.
    BurnedInAnnotation,
    /// `--originals` was given but no original matches this file.
    OriginalNotFound,
    /// The file could not be read as DICOM (truncated, malformed, unsupported).
    Unreadable,
    /// A file in the tree that is not DICOM: nothing in it can be verified.
    NotDicom,
    /// A DICOMDIR: it holds patient names and is never shared.
    Dicomdir,
    /// Bytes after Pixel Data that do not parse as DICOM and were not verified.
    UnparsedBytes,
    /// `check --ocr`: text in the pixels matches an identifying value (or the
    /// pixels could not be OCR-checked).
    PixelText,
}

impl Kind {
    pub fn as_str(self) -> &'static str {
        match self {
            Kind::NotRemoved => "not-removed",
            Kind::PrivateNotRemoved => "private-not-removed",
            Kind::NotEmptied => "not-emptied",
            Kind::NotReplaced => "not-replaced",
            Kind::NotRemapped => "not-remapped",
            Kind::InvalidUid => "invalid-uid",
            Kind::UnresolvedReference => "unresolved-reference",
            Kind::MetaUidMismatch => "meta-uid-mismatch",
            Kind::MissingMarker => "missing-marker",
            Kind::WrongMarker => "wrong-marker",
            Kind::ResidualPhi => "residual-phi",
            Kind::BurnedInAnnotation => "burned-in-annotation",
            Kind::OriginalNotFound => "original-not-found",
            Kind::Unreadable => "unreadable",
            Kind::NotDicom => "not-dicom",
            Kind::Dicomdir => "dicomdir",
            Kind::UnparsedBytes => "unparsed-bytes",
            Kind::PixelText => "pixel-text",
        }
    }

    /// Parses a kebab-case name such as `unresolved-reference`.
    pub fn parse(name: &str) -> Option<Kind> {
        Kind::ALL.into_iter().find(|k| k.as_str() == name)
    }

    pub const ALL: [Kind; 18] = [
        Kind::NotRemoved,
        Kind::PrivateNotRemoved,
        Kind::NotEmptied,
        Kind::NotReplaced,
        Kind::NotRemapped,
        Kind::InvalidUid,
        Kind::UnresolvedReference,
        Kind::MetaUidMismatch,
        Kind::MissingMarker,
        Kind::WrongMarker,
        Kind::ResidualPhi,
        Kind::BurnedInAnnotation,
        Kind::OriginalNotFound,
        Kind::Unreadable,
        Kind::NotDicom,
        Kind::Dicomdir,
        Kind::UnparsedBytes,
        Kind::PixelText,
    ];

    /// Warnings are findings that are normal in a real export (an SR or RT plan
    /// referencing instances that were not shared); they count against the exit
    /// code only with `check --strict`.
    pub fn is_warning(self) -> bool {
        matches!(self, Kind::UnresolvedReference)
    }
}

impl fmt::Display for Kind {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(self.as_str())
    }
}

/// Which identifying value of the original a residual-PHI finding matched.
#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord, Hash, Serialize)]
#[serde(rename_all = "kebab-case")]
pub enum ValueKind {
    PatientName,
    PatientNameComponent,
    PatientId,
    OtherPatientId,
    BirthDate,
    AccessionNumber,
    PatientAddress,
    InstitutionAddress,
    TelephoneNumber,
    InstitutionName,
    PhysicianName,
    PhysicianNameComponent,
    OperatorName,
    OperatorNameComponent,
}

impl ValueKind {
    pub fn as_str(self) -> &'static str {
        match self {
            ValueKind::PatientName => "patient-name",
            ValueKind::PatientNameComponent => "patient-name-component",
            ValueKind::PatientId => "patient-id",
            ValueKind::OtherPatientId => "other-patient-id",
            ValueKind::BirthDate => "birth-date",
            ValueKind::AccessionNumber => "accession-number",
            ValueKind::PatientAddress => "patient-address",
            ValueKind::InstitutionAddress => "institution-address",
            ValueKind::TelephoneNumber => "telephone-number",
            ValueKind::InstitutionName => "institution-name",
            ValueKind::PhysicianName => "physician-name",
            ValueKind::PhysicianNameComponent => "physician-name-component",
            ValueKind::OperatorName => "operator-name",
            ValueKind::OperatorNameComponent => "operator-name-component",
        }
    }

    /// The whole-name kind a component kind belongs to.
    pub fn whole(self) -> ValueKind {
        match self {
            ValueKind::PatientNameComponent => ValueKind::PatientName,
            ValueKind::PhysicianNameComponent => ValueKind::PhysicianName,
            ValueKind::OperatorNameComponent => ValueKind::OperatorName,
            other => other,
        }
    }
}

/// One problem in one file.
#[derive(Debug, Clone, Serialize)]
pub struct Finding {
    pub kind: Kind,
    pub severity: &'static str,
    /// Tag path such as `(0040,A730)[0]/(0040,A123)`; `(0002,xxxx)` for file meta.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub path: Option<String>,
    /// Byte offset in the file, for raw-byte matches.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub offset: Option<u64>,
    /// The kind of identifying value matched (residual-phi only).
    #[serde(rename = "match", skip_serializing_if = "Option::is_none")]
    pub matched: Option<ValueKind>,
    /// Why, in words that never quote a value of the file.
    pub detail: String,
}

impl Finding {
    pub fn new(kind: Kind, detail: impl Into<String>) -> Finding {
        Finding {
            kind,
            severity: if kind.is_warning() {
                "warning"
            } else {
                "error"
            },
            path: None,
            offset: None,
            matched: None,
            detail: detail.into(),
        }
    }

    pub fn at(kind: Kind, path: &str, detail: impl Into<String>) -> Finding {
        Finding {
            path: Some(path.to_string()),
            ..Finding::new(kind, detail)
        }
    }

    /// Where the finding is, for the readable summary.
    pub fn location(&self) -> String {
        match (&self.path, self.offset) {
            (Some(p), _) => p.clone(),
            (None, Some(o)) => format!("byte {o}"),
            (None, None) => "-".into(),
        }
    }
}
