//! Which pixel rule a file falls under: the profile's signatures tested against
//! the original header, at any depth. When none matches, the closest rule (the one
//! with most of its conditions met) is named in the quarantine reason, so a site
//! sees which rule to copy and adjust.

use crate::profile::pixels::{Cond, PixelPolicy, PixelRule, Test};
use dicom_core::Tag;
use dicom_object::InMemDicomObject;
use std::cell::OnceCell;

/// How deep conditions look into sequences: far beyond real files, bounded for
/// hostile ones (the reader bounds depth too).
const MAX_DEPTH: usize = 16;

/// The first rule whose signature the header meets. Every file with pixels comes
/// through here, so the header is walked once for the tags the rules name, not once
/// per condition (that was 3% of a run over small files), and a value is spelled
/// for matching only when a condition first compares it.
pub fn select<'p>(policy: &'p PixelPolicy, header: &InMemDicomObject) -> Option<&'p PixelRule> {
    if policy.rules.is_empty() {
        return None;
    }
    let mut found = Found::default();
    found.gather(header, policy.tags(), 0);
    policy.rules.iter().find(|r| found.holds(&r.when))
}

type Element = dicom_core::DataElement<InMemDicomObject>;

/// A value as [`candidates`] spells it, once a condition has compared it (None:
/// not text).
type Spelled = OnceCell<Option<Vec<String>>>;

/// The elements of a header, at any depth, whose tags some rule names.
#[derive(Default)]
struct Found<'h> {
    /// Each element found, with its value spelled for matching.
    found: Vec<(u32, &'h Element, Spelled)>,
}

impl<'h> Found<'h> {
    fn gather(&mut self, obj: &'h InMemDicomObject, tags: &[u32], depth: usize) {
        // Elements come in tag order and `tags` is sorted: one merge of the two
        // instead of a search per element.
        let mut wanted = tags.iter().peekable();
        for e in obj.iter() {
            let t = e.header().tag;
            let tag = (u32::from(t.0) << 16) | u32::from(t.1);
            while wanted.next_if(|w| **w < tag).is_some() {}
            if wanted.peek() == Some(&&tag) {
                self.found.push((tag, e, OnceCell::new()));
            }
            if depth < MAX_DEPTH
                && let Some(items) = e.value().items()
            {
                for i in items {
                    self.gather(i, tags, depth + 1);
                }
            }
        }
    }

    /// [`holds`], answered from what was gathered.
    fn holds(&self, c: &Cond) -> bool {
        match c {
            Cond::All(list) => list.iter().all(|c| self.holds(c)),
            Cond::Any(list) => list.iter().any(|c| self.holds(c)),
            Cond::Test { tag, test } => match test {
                Test::Present => self.found.iter().any(|(t, _, _)| t == tag),
                Test::Absent => !self.found.iter().any(|(t, _, _)| t == tag),
                _ => self.found.iter().any(|(t, e, spelled)| {
                    t == tag
                        && spelled
                            .get_or_init(|| e.to_str().ok().map(|v| candidates(&v)))
                            .as_deref()
                            .is_some_and(|v| candidates_match(v, test))
                }),
            },
        }
    }
}

/// The rule with the largest share of its conditions met (ties: the first), with
/// the first condition it misses; None when no rule meets any condition.
pub fn closest<'p>(
    policy: &'p PixelPolicy,
    header: &InMemDicomObject,
) -> Option<(&'p PixelRule, String)> {
    let mut best: Option<(f64, &PixelRule, String)> = None;
    for r in &policy.rules {
        let mut met = 0usize;
        let mut total = 0usize;
        let mut missing = None;
        tally(&r.when, header, &mut met, &mut total, &mut missing);
        if met == 0 || total == 0 {
            continue;
        }
        let share = met as f64 / total as f64;
        if best.as_ref().is_none_or(|(s, _, _)| share > *s) {
            best = Some((share, r, missing.unwrap_or_default()));
        }
    }
    best.map(|(_, r, m)| (r, m))
}

fn tally(
    c: &Cond,
    obj: &InMemDicomObject,
    met: &mut usize,
    total: &mut usize,
    missing: &mut Option<String>,
) {
    match c {
        Cond::All(list) => {
            for c in list {
                tally(c, obj, met, total, missing);
            }
        }
        Cond::Any(_) | Cond::Test { .. } => {
            *total += 1;
            if holds(c, obj) {
                *met += 1;
            } else if missing.is_none() {
                *missing = Some(c.describe());
            }
        }
    }
}

/// Whether the header meets the condition.
pub fn holds(c: &Cond, obj: &InMemDicomObject) -> bool {
    match c {
        Cond::All(list) => list.iter().all(|c| holds(c, obj)),
        Cond::Any(list) => list.iter().any(|c| holds(c, obj)),
        Cond::Test { tag, test } => {
            let tag = Tag((tag >> 16) as u16, (tag & 0xFFFF) as u16);
            match test {
                Test::Present => present(obj, tag, 0),
                Test::Absent => !present(obj, tag, 0),
                _ => any_value(obj, tag, 0, &|v| value_matches(v, test)),
            }
        }
    }
}

fn value_matches(value: &str, test: &Test) -> bool {
    candidates_match(&candidates(value), test)
}

/// What a value is compared as: its whole value, trimmed and in upper case, then
/// each of its values when it has several. A multi-valued element meets a test
/// when its whole value or one of its values does (ImageType
/// `DERIVED\SECONDARY\SCREEN SAVE`).
fn candidates(value: &str) -> Vec<String> {
    let whole = value.trim_matches(['\0', ' ']).to_ascii_uppercase();
    let mut candidates = Vec::with_capacity(1);
    if whole.contains('\\') {
        candidates.extend(whole.split('\\').map(|s| s.trim().to_string()));
    }
    candidates.insert(0, whole);
    candidates
}

fn candidates_match(candidates: &[String], test: &Test) -> bool {
    candidates.iter().any(|v| match test {
        Test::Equals(want) => v == want,
        Test::Contains(want) => v.contains(want.as_str()),
        Test::Prefix(want) => v.starts_with(want.as_str()),
        Test::Present | Test::Absent => false,
    })
}

fn present(obj: &InMemDicomObject, tag: Tag, depth: usize) -> bool {
    if obj.get(tag).is_some() {
        return true;
    }
    depth < MAX_DEPTH
        && obj.iter().any(|e| {
            e.value()
                .items()
                .is_some_and(|items| items.iter().any(|i| present(i, tag, depth + 1)))
        })
}

fn any_value(obj: &InMemDicomObject, tag: Tag, depth: usize, f: &dyn Fn(&str) -> bool) -> bool {
    if let Some(e) = obj.get(tag)
        && let Ok(v) = e.to_str()
        && f(&v)
    {
        return true;
    }
    depth < MAX_DEPTH
        && obj.iter().any(|e| {
            e.value()
                .items()
                .is_some_and(|items| items.iter().any(|i| any_value(i, tag, depth + 1, f)))
        })
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::profile::compiled::Origin;
    use crate::profile::pixels::{Regions, Unmatched};
    use dicom_core::value::DataSetSequence;
    use dicom_core::{DataElement, Length, PrimitiveValue, VR};

    fn rule(name: &str, when: Cond) -> PixelRule {
        PixelRule {
            name: name.into(),
            when,
            regions: Regions::All,
            frames: None,
            origin: Origin {
                source: "t".into(),
                line: 1,
            },
        }
    }

    fn test(tag: u32, test: Test) -> Cond {
        Cond::Test { tag, test }
    }

    #[test]
    fn conditions_look_at_any_depth_and_any_value() {
        let inner = InMemDicomObject::from_element_iter([DataElement::new(
            Tag(0x0008, 0x0070),
            VR::LO,
            PrimitiveValue::from("GE MEDICAL SYSTEMS"),
        )]);
        let obj = InMemDicomObject::from_element_iter([
            DataElement::new(Tag(0x0008, 0x0060), VR::CS, PrimitiveValue::from("CT")),
            DataElement::new(
                Tag(0x0008, 0x0008),
                VR::CS,
                PrimitiveValue::from("DERIVED\\SECONDARY\\SCREEN SAVE"),
            ),
            DataElement::new(Tag(0x0028, 0x0010), VR::US, PrimitiveValue::from(512u16)),
            DataElement::new(
                Tag(0x0040, 0xA730),
                VR::SQ,
                DataSetSequence::new(vec![inner], Length::UNDEFINED),
            ),
        ]);
        assert!(holds(&test(0x0008_0070, Test::Contains("GE".into())), &obj));
        assert!(holds(
            &test(0x0008_0008, Test::Equals("SCREEN SAVE".into())),
            &obj
        ));
        assert!(holds(&test(0x0028_0010, Test::Equals("512".into())), &obj));
        assert!(holds(&test(0x0008_0060, Test::Prefix("C".into())), &obj));
        assert!(holds(&test(0x0018_6011, Test::Absent), &obj));
        assert!(!holds(&test(0x0018_6011, Test::Present), &obj));
        let both = Cond::All(vec![
            test(0x0008_0060, Test::Equals("CT".into())),
            Cond::Any(vec![
                test(0x0008_103E, Test::Contains("DOSE".into())),
                test(0x0008_0008, Test::Contains("SCREEN".into())),
            ]),
        ]);
        assert!(holds(&both, &obj));
        let policy = PixelPolicy::new(
            vec![
                rule(
                    "us",
                    Cond::All(vec![
                        test(0x0008_0060, Test::Equals("US".into())),
                        test(0x0028_0010, Test::Equals("512".into())),
                    ]),
                ),
                rule("dose", both),
            ],
            Unmatched::Quarantine,
        );
        assert_eq!(select(&policy, &obj).unwrap().name, "dose");
        let policy = PixelPolicy::new(vec![policy.rules[0].clone()], policy.unmatched);
        assert!(select(&policy, &obj).is_none());
        let (r, missing) = closest(&policy, &obj).unwrap();
        assert_eq!(r.name, "us");
        assert_eq!(missing, "(0008,0060) equals \"US\"");
        // `select` answers from one walk; it must agree with `holds` on every test.
        let cases = [
            test(0x0008_0070, Test::Contains("GE".into())),
            test(0x0008_0070, Test::Equals("GE".into())),
            test(0x0008_0008, Test::Equals("SCREEN SAVE".into())),
            test(0x0028_0010, Test::Equals("512".into())),
            test(0x0028_0010, Test::Equals("256".into())),
            test(0x0018_6011, Test::Absent),
            test(0x0018_6011, Test::Present),
            test(0x0040_A730, Test::Present),
            test(0x0040_A730, Test::Equals("".into())),
        ];
        for c in cases {
            let one = PixelPolicy::new(vec![rule("c", c.clone())], Unmatched::Quarantine);
            assert_eq!(select(&one, &obj).is_some(), holds(&c, &obj), "{c:?}");
        }
    }
}
