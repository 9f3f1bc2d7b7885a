//! Errors of the DICOM byte layer: reading (bounded parse, repair) and encoding.
//! Messages name tags, offsets and reasons, never a value read from the file.

/// Sequences nest deeper than this only in crafted files; the bound is checked
/// before any recursive parser sees the data, so a hostile file cannot overflow the
/// stack. The engine walks datasets with the same bound.
pub const MAX_DEPTH: usize = 64;

/// Why an input could not be read as DICOM.
#[derive(Debug, thiserror::Error)]
pub enum ReadError {
    #[error("cannot read: {0}")]
    Io(#[source] std::io::Error),
    #[error("malformed DICOM: {0}")]
    Malformed(String),
    /// Built by [`ReadError::unsupported_ts`], which shows the UID only when it is
    /// one.
    #[error("unsupported transfer syntax {0}")]
    UnsupportedTs(String),
    #[error("sequences nest deeper than {MAX_DEPTH} levels")]
    TooDeep,
    /// The input's size or modification time changed while it was read: what was
    /// read may mix two versions.
    #[error("input changed while it was being read (size or modification time differ)")]
    Changed,
}

impl ReadError {
    /// A transfer syntax this reader cannot read. Its value is read from the file:
    /// shown only when it is syntactically a UID, so a value planted in (0002,0010)
    /// (a patient's name in a lengthened element) never reaches a report.
    pub fn unsupported_ts(uid: &str) -> Self {
        ReadError::UnsupportedTs(if is_uid(uid) {
            uid.to_string()
        } else {
            format!(
                "(0002,0010 is not a valid UID: {} bytes, value withheld)",
                uid.len()
            )
        })
    }
}

/// Why a de-identified object could not be encoded to its sink.
#[derive(Debug, thiserror::Error)]
pub enum EncodeError {
    #[error("cannot write output: {0}")]
    Write(String),
    /// The output device is full: later objects cannot succeed either.
    #[error("cannot write output: {0}")]
    OutputFull(String),
    /// The input's bytes are gone or differ from what was parsed.
    #[error("malformed DICOM: {0}")]
    Malformed(String),
    /// The input's size or modification time changed between open and finish: the
    /// output could mix two versions, so it is not kept.
    #[error(
        "input changed while it was being de-identified (size or modification time differ); nothing written"
    )]
    Changed,
    #[error("cannot read the input: {0}")]
    Read(#[source] std::io::Error),
    /// Encapsulated Pixel Data that cannot be decoded or encoded again while being
    /// redacted: the file is quarantined with this reason, and nothing is written.
    #[error("quarantined: compressed pixel data cannot be redacted: {0}")]
    Pixels(String),
}

impl EncodeError {
    /// Write errors, with a full device told apart: it stops the batch.
    pub fn from_write(e: std::io::Error) -> Self {
        if is_full(&e) {
            EncodeError::OutputFull(e.to_string())
        } else {
            EncodeError::Write(e.to_string())
        }
    }

    /// An error of the dicom-rs writer: a full device can hide anywhere in its chain
    /// of causes (an `io::Error` several levels down), and must still stop the batch.
    pub fn from_dicom(e: &(dyn std::error::Error + 'static)) -> Self {
        let mut cause: Option<&(dyn std::error::Error + 'static)> = Some(e);
        while let Some(c) = cause {
            if let Some(io) = c.downcast_ref::<std::io::Error>()
                && is_full(io)
            {
                return EncodeError::OutputFull(error_chain(e));
            }
            cause = c.source();
        }
        EncodeError::Write(error_chain(e))
    }
}

pub fn is_full(e: &std::io::Error) -> bool {
    matches!(
        e.kind(),
        std::io::ErrorKind::StorageFull | std::io::ErrorKind::QuotaExceeded
    )
}

/// Whether `s` is syntactically a UID (PS3.5 9.1: digit components separated by
/// dots, at most 64 characters): the only kind of value read from a file that a
/// message may show.
pub fn is_uid(s: &str) -> bool {
    !s.is_empty()
        && s.len() <= 64
        && s.split('.')
            .all(|c| !c.is_empty() && c.bytes().all(|b| b.is_ascii_digit()))
}

/// `error: cause: cause` in one line: dicom-rs errors nest several levels deep and
/// their Debug form carries kilobytes of backtrace. Each message goes through
/// [`withhold_values`]: some dicom-rs errors quote the value they choked on.
pub fn error_chain(e: &dyn std::error::Error) -> String {
    let mut out = withhold_values(&e.to_string());
    let mut cur = e.source();
    while let Some(s) = cur {
        let msg = withhold_values(&s.to_string());
        if !out.ends_with(&msg) {
            out.push_str(": ");
            out.push_str(&msg);
        }
        cur = s.source();
    }
    out
}

/// Cuts a library's error message where it starts quoting a value. dicom-rs puts
/// what it read between backticks or quotes (`Unrecognized transfer syntax `..``,
/// `Invalid Date value element `..``) and Debug-prints tokens, whose values are
/// quoted strings or bracketed lists (`Unexpected token PrimitiveValue(Strs(["..."]))`).
/// A value may itself hold the closing delimiter, so nothing after the first
/// opening one is kept: the message loses its tail, never a tag or an offset that
/// comes before it.
pub fn withhold_values(msg: &str) -> String {
    match msg.find(['`', '\'', '"', '[']) {
        Some(at) => format!("{}<value withheld>", &msg[..at]),
        None => msg.to_string(),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn quoted_and_listed_values_are_withheld() {
        for msg in [
            "Unrecognized transfer syntax `1.2.3PLANTED`",
            "Invalid Date value element `PLANTED` at position 12",
            "Unexpected token PrimitiveValue(Strs([\"PLANTED\"]))",
            "Unexpected token PrimitiveValue(U8([80, 76]))",
            "Could not open file 'PLANTED'",
        ] {
            let out = withhold_values(msg);
            assert!(!out.contains("PLANTED") && !out.contains("80"), "{out}");
            assert!(out.ends_with("<value withheld>"), "{out}");
        }
        let plain = "Could not read element header at 132 bytes";
        assert_eq!(withhold_values(plain), plain);
    }

    #[test]
    fn an_unsupported_syntax_shows_only_a_uid() {
        let shown = ReadError::unsupported_ts("1.2.840.10008.1.2.4.999").to_string();
        assert!(shown.ends_with("1.2.840.10008.1.2.4.999"), "{shown}");
        for bad in ["1.2.840.10008.1.2.1PLANTED", "PLANTED", &"1.2".repeat(40)] {
            let shown = ReadError::unsupported_ts(bad).to_string();
            assert!(
                !shown.contains("PLANTED") && !shown.contains(bad),
                "{shown}"
            );
        }
    }
}
