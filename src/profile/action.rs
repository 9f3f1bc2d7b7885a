//! Action codes of PS3.15 Table E.1-1 and the resolved actions the engine executes.

use super::replace;
use dicom_core::{PrimitiveValue, VR};
use std::fmt;

/// An action code exactly as Table E.1-1 writes it.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub enum Code {
    D,
    Z,
    X,
    K,
    C,
    U,
    ZD,
    XZ,
    XD,
    XZD,
    XZU,
}

impl Code {
    pub const ALL: [Code; 11] = [
        Code::D,
        Code::Z,
        Code::X,
        Code::K,
        Code::C,
        Code::U,
        Code::ZD,
        Code::XZ,
        Code::XD,
        Code::XZD,
        Code::XZU,
    ];

    pub fn parse(s: &str) -> Option<Code> {
        Code::ALL.into_iter().find(|c| c.as_str() == s.trim())
    }

    pub fn as_str(self) -> &'static str {
        match self {
            Code::D => "D",
            Code::Z => "Z",
            Code::X => "X",
            Code::K => "K",
            Code::C => "C",
            Code::U => "U",
            Code::ZD => "Z/D",
            Code::XZ => "X/Z",
            Code::XD => "X/D",
            Code::XZD => "X/Z/D",
            Code::XZU => "X/Z/U*",
        }
    }

    /// The action a compound code resolves to without IOD knowledge. Each choice keeps
    /// the attribute's value out of the output: X/Z and X/Z/D empty rather than delete
    /// (a Type 2 attribute stays present), X/D writes a dummy (a Type 1 attribute keeps
    /// a value), X/Z/U* keeps the sequence and lets the U rules remap the UIDs in it.
    pub fn resolve(self) -> Action {
        match self {
            Code::D | Code::XD => Action::Dummy,
            Code::Z | Code::ZD | Code::XZ | Code::XZD => Action::Empty,
            Code::X => Action::Remove,
            Code::K | Code::XZU => Action::Keep,
            Code::C => Action::Clean,
            Code::U => Action::Uid,
        }
    }
}

impl fmt::Display for Code {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(self.as_str())
    }
}

/// Upper-case letters and digits without I, L, O, U: valid in every string VR and
/// hard to misread.
pub const ALNUM: &str = "0123456789ABCDEFGHJKMNPQRSTVWXYZ";
pub const DIGITS: &str = "0123456789";
pub const HEX: &str = "0123456789ABCDEF";

/// Parameters of a keyed pseudonym.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct HashParams {
    pub domain: String,
    pub length: usize,
    pub prefix: String,
    /// One of [`ALNUM`], [`DIGITS`], [`HEX`].
    pub alphabet: &'static str,
}

impl HashParams {
    /// The alphabet a profile names (`alnum`, `digits`, `hex`).
    pub fn alphabet_named(name: &str) -> Option<&'static str> {
        match name {
            "alnum" => Some(ALNUM),
            "digits" => Some(DIGITS),
            "hex" => Some(HEX),
            _ => None,
        }
    }
}

/// A `replace:` value. For a rule on one standard attribute the compiler has
/// checked it against the dictionary VR and parsed it, so the engine only copies it.
#[derive(Debug, Clone)]
pub struct Replacement {
    text: String,
    /// The value for elements of this VR, parsed when the profile was compiled.
    parsed: Option<(VR, PrimitiveValue)>,
}

impl Replacement {
    /// A value whose VR is known only per element (pattern and private rules).
    pub fn new(text: impl Into<String>) -> Self {
        Replacement {
            text: text.into(),
            parsed: None,
        }
    }

    /// A value checked against, and parsed for, `vr`.
    pub fn for_vr(text: impl Into<String>, vr: VR) -> Result<Self, String> {
        let text = text.into();
        let value = replace::parse(vr, &text)?;
        Ok(Replacement {
            text,
            parsed: Some((vr, value)),
        })
    }

    /// The value as the profile wrote it.
    pub fn text(&self) -> &str {
        &self.text
    }

    /// The value to write into an element of `vr`. A file may store an attribute
    /// with another VR than the dictionary's; then the text is checked again.
    pub fn value_for(&self, vr: VR) -> Result<PrimitiveValue, String> {
        match &self.parsed {
            Some((parsed_vr, value)) if *parsed_vr == vr => Ok(value.clone()),
            _ => replace::parse(vr, &self.text),
        }
    }
}

/// The parsed value follows from the text and the rule's tag, so the text alone
/// decides equality.
impl PartialEq for Replacement {
    fn eq(&self, other: &Self) -> bool {
        self.text == other.text
    }
}

impl Eq for Replacement {}

impl From<&str> for Replacement {
    fn from(text: &str) -> Self {
        Replacement::new(text)
    }
}

impl From<String> for Replacement {
    fn from(text: String) -> Self {
        Replacement::new(text)
    }
}

/// What a lookup does with a value its file does not list.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum OnMissing {
    Fail,
    Keep,
    Remove,
    Hash,
}

/// A value in double quotes, as YAML would read it back (the same text Rust's
/// Debug gave for ordinary values, so profile digests stay as they were).
fn quoted(s: &str) -> String {
    format!("\"{}\"", s.replace('\\', "\\\\").replace('"', "\\\""))
}

impl OnMissing {
    /// The word a profile writes for it.
    pub fn as_str(self) -> &'static str {
        match self {
            OnMissing::Fail => "fail",
            OnMissing::Keep => "keep",
            OnMissing::Remove => "remove",
            OnMissing::Hash => "hash",
        }
    }
}

/// A site-supplied crosswalk, loaded when the profile is compiled.
#[derive(Debug, PartialEq, Eq)]
pub struct LookupTable {
    pub source: String,
    pub map: std::collections::HashMap<String, String>,
    pub on_missing: OnMissing,
}

/// What the engine does to one element.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Action {
    /// Keep the value; a sequence is kept and its items are still processed.
    Keep,
    /// Delete the element (a sequence with everything inside it).
    Remove,
    /// Zero-length value; a sequence keeps no items.
    Empty,
    /// A dummy valid for the VR; a sequence is kept and its items processed.
    Dummy,
    /// Clean: until value-aware cleaning lands, text gets a dummy and a sequence
    /// is kept with its items processed, which never leaves the original text.
    Clean,
    /// Replace every UID value by its keyed remapping.
    Uid,
    /// Write this value.
    Replace(Replacement),
    /// Write a keyed pseudonym of the original value.
    Hash(HashParams),
    /// Shift DA/DT values by the patient's keyed offset (other VRs get a dummy).
    DateShift,
    /// Replace through a site crosswalk.
    Lookup(std::sync::Arc<LookupTable>),
}

impl Action {
    pub fn describe(&self) -> String {
        match self {
            Action::Keep => "keep".into(),
            Action::Remove => "remove".into(),
            Action::Empty => "empty".into(),
            Action::Dummy => "dummy".into(),
            Action::Clean => "clean".into(),
            Action::Uid => "remap-uid".into(),
            Action::Replace(r) => format!("replace {}", quoted(r.text())),
            Action::Hash(h) => format!(
                "hash domain={} length={} prefix={} alphabet={}",
                h.domain,
                h.length,
                quoted(&h.prefix),
                h.alphabet
            ),
            Action::DateShift => "date-shift".into(),
            Action::Lookup(t) => {
                format!("lookup {} on-missing={}", t.source, t.on_missing.as_str())
            }
        }
    }

    /// True when the action lets the original value through unchanged.
    pub fn keeps_value(&self) -> bool {
        matches!(self, Action::Keep)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn every_code_round_trips() {
        for c in Code::ALL {
            assert_eq!(Code::parse(c.as_str()), Some(c));
        }
        assert_eq!(Code::parse("Q"), None);
        assert_eq!(Code::parse("x"), None);
    }

    #[test]
    fn compound_codes_fall_back_as_documented() {
        assert_eq!(Code::XZ.resolve(), Action::Empty);
        assert_eq!(Code::ZD.resolve(), Action::Empty);
        assert_eq!(Code::XD.resolve(), Action::Dummy);
        assert_eq!(Code::XZD.resolve(), Action::Empty);
        assert_eq!(Code::XZU.resolve(), Action::Keep);
    }
}
