//! The compiled profile: immutable, `Send + Sync`, and answering one lookup per tag.
//! Built by `compile`; read by the engine, the checker and the reports.

use super::action::{Action, Code};
use super::table::{self, RowTarget};
use super::tagspec::Target;
use std::collections::HashMap;
use std::fmt;

/// One problem in a profile, located where the user can find it.
#[derive(Debug, Clone, PartialEq, Eq, Default)]
pub struct Diagnostic {
    pub source: String,
    pub line: Option<u64>,
    pub message: String,
    /// 1-based column of the word at fault, and how many characters it spans.
    pub column: Option<u64>,
    pub width: usize,
    /// The source line, for the snippet under the location.
    pub snippet: Option<String>,
    /// "did you mean ...", or how to write it.
    pub help: Option<String>,
}

impl fmt::Display for Diagnostic {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(&super::diagnose::render(self))
    }
}

/// Every problem found in a profile (compilation reports all of them, not the first).
#[derive(Debug, thiserror::Error)]
#[error(
    "invalid profile ({} problem{}):\n\n{}",
    .0.len(),
    if .0.len() == 1 { "" } else { "s" },
    .0.iter().map(|d| d.to_string()).collect::<Vec<_>>().join("\n\n")
)]
pub struct ProfileErrors(pub Vec<Diagnostic>);

/// Where a rule came from.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Origin {
    pub source: String,
    pub line: u64,
}

#[derive(Debug, Clone)]
pub struct Rule {
    pub target: Target,
    pub action: Action,
    /// The code the rule was written with, when it was written as a code.
    pub code: Option<Code>,
    pub name: Option<String>,
    pub origin: Origin,
    /// The VRs the element the rule means is stored with (Table E.3.10-1 gives one
    /// per safe private attribute); empty: any. An element stored with another VR
    /// is not that element, whatever its tag and creator say.
    pub vrs: Vec<dicom_core::VR>,
}

impl Rule {
    /// Whether an element stored with `vr` is the element this rule means. UN says
    /// nothing either way (implicit VR files store every private element as UN).
    pub fn admits_vr(&self, vr: dicom_core::VR) -> bool {
        self.vrs.is_empty() || vr == dicom_core::VR::UN || self.vrs.contains(&vr)
    }
}

/// What a quarantine rule does when it matches.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Severity {
    /// The file fails and is listed in the quarantine manifest.
    Fail,
    /// The file is processed; the report notes the finding.
    Warn,
    Off,
}

/// Quarantine rules; fail-closed unless a profile says otherwise.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct QuarantinePolicy {
    pub burned_in_annotation: Severity,
    pub burned_in_unknown: Severity,
    pub encapsulated_documents: Severity,
    pub allowed_sop_classes: Option<Vec<String>>,
}

impl Default for QuarantinePolicy {
    fn default() -> Self {
        QuarantinePolicy {
            burned_in_annotation: Severity::Fail,
            burned_in_unknown: Severity::Fail,
            encapsulated_documents: Severity::Fail,
            allowed_sop_classes: None,
        }
    }
}

/// What applies to elements no rule names.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Fallback {
    Keep,
    Remove,
}

impl Fallback {
    pub fn action(self) -> &'static Action {
        match self {
            Fallback::Keep => &Action::Keep,
            Fallback::Remove => &Action::Remove,
        }
    }
}

/// Which rule decided an element, for counts and `--explain`.
#[derive(Debug, Clone, Copy)]
pub enum Decision<'a> {
    Rule(&'a Rule),
    PrivateDefault(&'a Action),
    PublicDefault(&'a Action),
    /// A public element no data dictionary knows: `defaults.unknown-public`.
    UnknownPublic(&'a Action),
}

impl<'a> Decision<'a> {
    pub fn action(&self) -> &'a Action {
        match self {
            Decision::Rule(r) => &r.action,
            Decision::PrivateDefault(a)
            | Decision::PublicDefault(a)
            | Decision::UnknownPublic(a) => a,
        }
    }
}

pub(super) type TagMap<V> = HashMap<u32, V, crate::fast_hash::FastHash>;

#[derive(Debug)]
pub struct CompiledProfile {
    pub name: String,
    pub description: String,
    /// Sources the profile was built from, base first.
    pub sources: Vec<String>,
    pub rules: Vec<Rule>,
    pub(super) exact: TagMap<usize>,
    /// Most specific first.
    pub(super) patterns: Vec<(u32, u32, usize)>,
    /// Private rules by group.
    pub(super) private: TagMap<Vec<(String, u8, usize)>>,
    pub private_default: Fallback,
    pub public_default: Fallback,
    /// Public elements no rule names and no data dictionary knows.
    pub unknown_public: Fallback,
    /// PS3.15 E.3 options in effect, in table column order.
    pub options: Vec<&'static str>,
    /// Per-patient date shift: whole days into the past, inclusive range.
    pub date_shift_days: (u32, u32),
    /// DA/DT elements no rule names are shifted too (modified-dates option).
    pub shift_unlisted_dates: bool,
    /// Ages over 89 years are written as 090Y.
    pub hipaa_ages: bool,
    /// Cleaned times keep only their hour.
    pub coarsen_times: bool,
    pub quarantine: QuarantinePolicy,
    /// Pixel redaction rules (`pixels:`), built-in rules included.
    pub pixels: super::pixels::PixelPolicy,
    /// Hex SHA-256 of the compiled rules: equal digests mean equal behaviour.
    pub digest: String,
}

impl CompiledProfile {
    /// The rule deciding `tag`. `creator` is the private creator of the block a
    /// private element sits in, if the dataset declares one.
    #[inline]
    pub fn decide(&self, tag: u32, creator: Option<&str>) -> Decision<'_> {
        let group = (tag >> 16) as u16;
        if group % 2 == 1 {
            if let (Some(creator), Some(list)) = (creator, self.private.get(&u32::from(group))) {
                let elem = (tag & 0xFF) as u8;
                if let Some((_, _, i)) = list.iter().find(|(c, e, _)| *e == elem && c == creator) {
                    return Decision::Rule(&self.rules[*i]);
                }
            }
            if let Some(i) = self.exact.get(&tag) {
                return Decision::Rule(&self.rules[*i]);
            }
            return Decision::PrivateDefault(self.private_default.action());
        }
        if let Some(i) = self.exact.get(&tag) {
            return Decision::Rule(&self.rules[*i]);
        }
        for (mask, value, i) in &self.patterns {
            if tag & mask == *value {
                return Decision::Rule(&self.rules[*i]);
            }
        }
        // An attribute no dictionary knows is one Table E.1-1 cannot vouch for:
        // it follows `defaults.unknown-public` (remove unless a profile says keep).
        if self.public_default == Fallback::Keep
            && self.unknown_public == Fallback::Remove
            && !known_public(tag)
        {
            return Decision::UnknownPublic(self.unknown_public.action());
        }
        Decision::PublicDefault(self.public_default.action())
    }

    /// How the profile treats each row of Table E.1-1.
    pub fn coverage(&self) -> Coverage {
        let mut cov = Coverage::default();
        for row in table::rows() {
            let (named, action) = match &row.target {
                RowTarget::AllPrivate => (true, self.private_default.action().clone()),
                RowTarget::Target(Target::Tag(t)) => match self.exact.get(t) {
                    Some(i) => (true, self.rules[*i].action.clone()),
                    None => (false, self.decide(*t, None).action().clone()),
                },
                RowTarget::Target(target) => {
                    match self.rules.iter().find(|r| &r.target == target) {
                        Some(r) => (true, r.action.clone()),
                        None => (false, self.public_default.action().clone()),
                    }
                }
            };
            cov.rows += 1;
            if named {
                cov.named += 1;
            }
            // X/Z/U* without IOD knowledge keeps the sequence (its UIDs are remapped by the
            // U rules inside), so keeping it is not a weakening.
            let option_keeps = row
                .options
                .iter()
                .any(|(o, c)| *c == Code::K && self.options.contains(o));
            let weakened =
                action.keeps_value() && !option_keeps && !matches!(row.basic, Code::K | Code::XZU);
            if weakened {
                cov.weakened.push(row.tag_text.clone());
            } else if !named {
                cov.by_default += 1;
            }
        }
        cov
    }

    /// Whether the profile removes or replaces every row of Table E.1-1 (rows an
    /// active option keeps count as handled: the option says so in (0012,0064))
    /// and removes private attributes. Only then may an output say Patient
    /// Identity Removed `YES` and claim 113100: the markers follow what the
    /// compiled rules do, never what the profile is called.
    pub fn removes_identity(&self) -> bool {
        self.coverage().weakened.is_empty() && self.private_default == Fallback::Remove
    }

    /// CID 7050 codes (value, meaning) of what this profile does. The Basic Profile
    /// code is claimed only when [`Self::removes_identity`].
    pub fn method_codes(&self) -> Vec<(&'static str, &'static str)> {
        if !self.removes_identity() {
            return Vec::new();
        }
        let mut codes = vec![("113100", "Basic Application Confidentiality Profile")];
        codes.extend(self.options.iter().filter_map(|o| table::option_code(o)));
        codes
    }

    /// Value of Longitudinal Temporal Information Modified (0028,0303).
    pub fn longitudinal_marker(&self) -> &'static str {
        if self.options.contains(&"retain-long-modified-dates") {
            return "MODIFIED";
        }
        if self.options.contains(&"retain-long-full-dates") {
            return "UNMODIFIED";
        }
        let date_rows: Vec<_> = table::rows()
            .iter()
            .filter(|r| {
                r.options
                    .iter()
                    .any(|(o, _)| *o == "retain-long-full-dates")
            })
            .collect();
        let all_kept = date_rows.iter().all(|r| match &r.target {
            RowTarget::Target(Target::Tag(t)) => self.decide(*t, None).action().keeps_value(),
            _ => false,
        });
        if all_kept { "UNMODIFIED" } else { "REMOVED" }
    }
}

/// Whether the standard data dictionary (repeating groups included) names this
/// public tag.
fn known_public(tag: u32) -> bool {
    let tag = dicom_core::Tag((tag >> 16) as u16, (tag & 0xFFFF) as u16);
    crate::dictionary::by_tag(tag).is_some()
}

#[derive(Debug, Default)]
pub struct Coverage {
    pub rows: usize,
    /// Rows a rule (or, for the private row, `defaults.private`) names.
    pub named: usize,
    /// Rows no rule names but whose tag the defaults still remove.
    pub by_default: usize,
    /// Rows whose original value the profile keeps although the table does not.
    pub weakened: Vec<String>,
}
