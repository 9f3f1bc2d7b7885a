//! Does every element meet its profile rule? Without originals a value is judged
//! on its own: the dummies dicom-deid writes, `2.25.` UIDs and pseudonyms of the
//! rule's shape pass, other values fail when they look like real data of their
//! VR. With a matched original, a replaced value fails only when it equals the
//! original's value at the same tag path. A cleaned value (C) is left to the
//! residual-PHI search.

use super::dataset::{Visit, has_content, is_string_vr, is_zero_number, tag_u32, trim_value};
use super::expect::Expected;
use super::finding::{Finding, Kind};
use crate::profile::{Action, HashParams};
use dicom_core::value::Value;
use dicom_core::{Tag, VR};
use std::collections::HashMap;

/// Values of one original by tag path, for the elements its profile replaces.
pub type ValueMap = HashMap<String, Vec<String>>;

/// The dummies dicom-deid writes (PS3.15 D): text, DA, TM, DT, AS, numbers.
const KNOWN_DUMMIES: [&str; 6] = [
    "ANONYMIZED",
    "19000101",
    "000000.00",
    "19000101000000.000000",
    "000Y",
    "0",
];
/// Remapped UIDs, and UIDs of the DICOM root that are never remapped.
const REMAPPED_UID_ROOTS: [&str; 2] = ["2.25.", "1.2.840.10008."];

const SOP_INSTANCE_UID: u32 = 0x0008_0018;

/// What a replacing rule leaves in the element.
enum Expect<'a> {
    Dummy,
    Fixed(&'a str),
    Pseudonym(&'a HashParams),
    /// Any other replacement: judged only against the original.
    Changed,
}

pub struct Judge<'a> {
    pub expected: &'a Expected,
    /// Values of the matched originals (several when the match is ambiguous);
    /// empty without `--originals` or without a match.
    pub originals: Vec<&'a ValueMap>,
}

impl Judge<'_> {
    /// Every element against its rule. Inside a sequence that is itself a finding
    /// (left although removed or emptied) nothing more is reported.
    pub fn check(&self, visits: &[Visit<'_>], findings: &mut Vec<Finding>) {
        let mut flagged: Vec<String> = Vec::new();
        for v in visits {
            if !is_judged(v) || flagged.iter().any(|p| v.path.starts_with(p.as_str())) {
                continue;
            }
            let action = self
                .expected
                .action(tag_u32(v.tag), v.creator.as_deref(), v.vr);
            if let Some(f) = self.judge(v, &action) {
                if v.is_sequence() {
                    flagged.push(format!("{}[", v.path));
                }
                findings.push(f);
            }
        }
    }

    fn judge(&self, v: &Visit<'_>, action: &Action) -> Option<Finding> {
        let at = |kind, detail: &str| Some(Finding::at(kind, &v.path, detail));
        match action {
            Action::Keep => None,
            Action::Remove if v.is_private() => at(
                Kind::PrivateNotRemoved,
                "the profile removes this private element",
            ),
            Action::Remove => at(Kind::NotRemoved, "the profile removes this attribute"),
            Action::Empty if has_content(v.element, v.vr) => {
                at(Kind::NotEmptied, "the profile empties this attribute")
            }
            Action::Empty => None,
            Action::Replace(_) | Action::Hash(_) if v.is_sequence() => (!v.items().is_empty())
                .then(|| {
                    Finding::at(
                        Kind::NotReplaced,
                        &v.path,
                        "the profile replaces this sequence, yet it keeps items",
                    )
                }),
            // The items of a kept, dummied or cleaned sequence meet their own rules.
            _ if v.is_sequence() => None,
            // Cleaning keeps what is not identifying, so a cleaned value may look
            // real: the residual-PHI search judges it, not this rule.
            Action::Clean if v.vr != VR::UI => None,
            Action::Dummy | Action::Clean | Action::Uid => self.judge_value(v, Expect::Dummy),
            Action::Replace(value) => self.judge_value(v, Expect::Fixed(value.text())),
            Action::Hash(h) => self.judge_value(v, Expect::Pseudonym(h)),
            _ => self.judge_value(v, Expect::Changed),
        }
    }

    fn judge_value(&self, v: &Visit<'_>, expect: Expect<'_>) -> Option<Finding> {
        if is_binary(v) {
            return self.judge_binary(v);
        }
        let bad = v.strings().into_iter().filter(|s| !s.is_empty()).any(|s| {
            if accepted(&expect, v.vr, &s) {
                false
            } else if !self.originals.is_empty() {
                self.equals_original(&v.path, v.vr, &s)
            } else {
                !matches!(expect, Expect::Changed) && looks_real(v.vr, &s)
            }
        });
        bad.then(|| self.value_finding(v))
    }

    /// A binary value (OB, OW, numbers) passes when it is zero or empty; it is not
    /// compared with the original (only text values are).
    fn judge_binary(&self, v: &Visit<'_>) -> Option<Finding> {
        let zero = match v.element.value() {
            Value::Primitive(p) => is_zero_number(p),
            _ => false,
        };
        (!zero && self.originals.is_empty()).then(|| self.value_finding(v))
    }

    fn value_finding(&self, v: &Visit<'_>) -> Finding {
        let compared = if self.originals.is_empty() {
            "it looks like real data"
        } else {
            "it equals the original value"
        };
        if v.vr == VR::UI {
            Finding::at(
                Kind::NotRemapped,
                &v.path,
                format!("the profile remaps this UID, but {compared}"),
            )
        } else {
            Finding::at(
                Kind::NotReplaced,
                &v.path,
                format!("the profile replaces this value, but {compared}"),
            )
        }
    }

    fn equals_original(&self, path: &str, vr: VR, value: &str) -> bool {
        let value = normalize(vr, value);
        self.originals
            .iter()
            .filter_map(|m| m.get(path))
            .flatten()
            .any(|o| normalize(vr, o).eq_ignore_ascii_case(value))
    }

    /// The file meta Media Storage SOP Instance UID must be remapped like the
    /// SOP Instance UID it mirrors.
    pub fn check_meta_instance(&self, meta_uid: &str, findings: &mut Vec<Finding>) {
        let meta_uid = trim_value(meta_uid);
        // A well-known instance (a standard color palette) keeps its UID.
        if meta_uid.is_empty() || is_well_known_uid(meta_uid) {
            return;
        }
        let action = self.expected.action(SOP_INSTANCE_UID, None, VR::UI);
        if !matches!(*action, Action::Uid | Action::Dummy | Action::Clean) {
            return;
        }
        let bad = if self.originals.is_empty() {
            !is_remapped_uid(meta_uid)
        } else {
            ["(0002,0003)", "(0008,0018)"]
                .iter()
                .any(|p| self.equals_original(p, VR::UI, meta_uid))
        };
        if bad {
            findings.push(Finding::at(
                Kind::NotRemapped,
                "(0002,0003)",
                "Media Storage SOP Instance UID is not remapped",
            ));
        }
    }
}

/// Group lengths, misplaced meta elements and private creators are not judged:
/// the creators stand or fall with their blocks.
fn is_judged(v: &Visit<'_>) -> bool {
    v.tag.1 != 0x0000
        && v.tag.0 != 0x0002
        && !v.is_private_creator()
        && v.tag != Tag(0x7FE0, 0x0010)
}

fn is_binary(v: &Visit<'_>) -> bool {
    !is_string_vr(v.vr) && v.vr != VR::UN && !matches!(v.element.value(), Value::Sequence(_))
}

fn normalize(vr: VR, s: &str) -> &str {
    let s = trim_value(s);
    if vr == VR::PN {
        s.trim_end_matches(['^', '=', ' '])
    } else {
        s
    }
}

/// A UID under the DICOM root names something the standard defines (a SOP class,
/// a transfer syntax, a standard palette instance): never remapped, never
/// identifying.
pub(super) fn is_well_known_uid(s: &str) -> bool {
    s.starts_with(REMAPPED_UID_ROOTS[1]) && s.bytes().all(|b| b.is_ascii_digit() || b == b'.')
}

fn is_remapped_uid(s: &str) -> bool {
    REMAPPED_UID_ROOTS.iter().any(|r| s.starts_with(r))
}

pub(super) fn is_known_dummy(s: &str) -> bool {
    KNOWN_DUMMIES.iter().any(|d| d.eq_ignore_ascii_case(s))
}

fn accepted(expect: &Expect<'_>, vr: VR, s: &str) -> bool {
    match expect {
        Expect::Fixed(v) if trim_value(v) == s => true,
        _ if vr == VR::UI => is_remapped_uid(s),
        Expect::Pseudonym(h) => is_known_dummy(s) || pseudonym_shaped(h, vr, s),
        Expect::Dummy | Expect::Fixed(_) => is_known_dummy(s),
        Expect::Changed => false,
    }
}

/// `prefix` + upper-case letters and digits, as long as the rule asks (cut to
/// the VR's maximum length).
fn pseudonym_shaped(h: &HashParams, vr: VR, s: &str) -> bool {
    let max = match vr {
        VR::AE | VR::CS | VR::SH => 16,
        VR::LO | VR::PN => 64,
        _ => h.length,
    };
    let body = s.strip_prefix(h.prefix.as_str()).unwrap_or("");
    s.len() == h.length.min(max)
        && !body.is_empty()
        && body.bytes().all(|b| h.alphabet.as_bytes().contains(&b))
}

/// Whether a value that is not a known dummy looks like real data of its VR.
fn looks_real(vr: VR, s: &str) -> bool {
    let nonzero_digit = s.bytes().any(|b| (b'1'..=b'9').contains(&b));
    match vr {
        VR::DA | VR::TM | VR::DT | VR::AS => nonzero_digit && !is_known_dummy(s),
        VR::IS | VR::DS => !s.parse::<f64>().is_ok_and(|x| x == 0.0),
        VR::UI => !is_remapped_uid(s),
        _ => s.chars().any(char::is_alphanumeric) && !is_known_dummy(s),
    }
}

/// Values of the elements a profile replaces, by tag path: what `--originals`
/// compares the outputs with.
pub fn value_map(visits: &[Visit<'_>], expected: &Expected) -> ValueMap {
    let mut map = ValueMap::new();
    for v in visits {
        if !is_judged(v) || v.is_sequence() || is_binary(v) {
            continue;
        }
        let action = expected.action(tag_u32(v.tag), v.creator.as_deref(), v.vr);
        if matches!(*action, Action::Keep | Action::Remove | Action::Empty) {
            continue;
        }
        let values: Vec<String> = v.strings().into_iter().filter(|s| !s.is_empty()).collect();
        if !values.is_empty() {
            map.insert(v.path.clone(), values);
        }
    }
    map
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn dummies_pass_real_values_fail() {
        assert!(!looks_real(VR::DA, "19000101"));
        assert!(looks_real(VR::DA, "19610704"));
        assert!(!looks_real(VR::TM, "000000.00"));
        assert!(looks_real(VR::TM, "101500"));
        assert!(!looks_real(VR::PN, "ANONYMIZED"));
        assert!(looks_real(VR::PN, "DOE^JOHN"));
        assert!(!looks_real(VR::IS, "0"));
        assert!(!looks_real(VR::UI, "2.25.1234"));
        assert!(looks_real(VR::UI, "1.3.6.1.4.1.5962.1"));
    }

    #[test]
    fn pseudonyms_need_their_shape() {
        let h = HashParams {
            domain: "patient-id".into(),
            length: 16,
            prefix: "P".into(),
            alphabet: "0123456789ABCDEFGHJKMNPQRSTVWXYZ",
        };
        assert!(pseudonym_shaped(&h, VR::LO, "P0123456789ABCDE"));
        assert!(!pseudonym_shaped(&h, VR::LO, "PID-SECRET-4711"));
        assert!(!pseudonym_shaped(&h, VR::LO, "Q0123456789ABCDE"));
    }
}
