//! Applies a compiled profile to a dataset, at every depth, and writes the PS3.15
//! markers. Knows nothing of files or YAML.

use super::pseudonym::{Pseudonymizer, normalize_person_name, trim_padding};
use super::values;
use crate::profile::{Action, CompiledProfile, Decision};
use dicom_core::dictionary::{DataDictionary, DataDictionaryEntry, VirtualVr};
use dicom_core::value::{DataSetSequence, Value};
use dicom_core::{DataElement, Length, PrimitiveValue, Tag, VR};
use dicom_dictionary_std::StandardDataDictionary;
use dicom_object::InMemDicomObject;
use serde::Serialize;

/// Sequences nest deeper than this only in crafted files; real data stays under 10.
pub const MAX_DEPTH: usize = 64;

#[cfg(test)]
const SPECIFIC_CHARACTER_SET: Tag = Tag(0x0008, 0x0005);
const PATIENT_IDENTITY_REMOVED: Tag = Tag(0x0012, 0x0062);
const DEID_METHOD: Tag = Tag(0x0012, 0x0063);
const DEID_METHOD_CODES: Tag = Tag(0x0012, 0x0064);
const LONGITUDINAL_MODIFIED: Tag = Tag(0x0028, 0x0303);

/// How many elements each kind of action touched in one file.
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

#[derive(Debug, thiserror::Error, PartialEq, Eq)]
pub enum DeidError {
    #[error("sequences nest deeper than {MAX_DEPTH} levels")]
    TooDeep,
    #[error("element {tag}: {reason}")]
    Value { tag: String, reason: String },
}

/// The markers every output carries, computed once per run from the profile.
struct Markers {
    method: String,
    codes: Vec<(&'static str, &'static str)>,
    longitudinal: &'static str,
}

pub struct Engine<'a> {
    profile: &'a CompiledProfile,
    pseudo: Pseudonymizer<'a>,
    markers: Markers,
}

/// Mutable state of one file's walk.
#[derive(Default)]
struct Walk {
    counts: Counts,
    /// A replacement needs a character set beyond ASCII: the file becomes UTF-8.
    needs_utf8: bool,
}

fn tag_text(tag: Tag) -> String {
    format!("({:04X},{:04X})", tag.0, tag.1)
}

fn tag_u32(tag: Tag) -> u32 {
    u32::from(tag.0) << 16 | u32::from(tag.1)
}

/// The VR to write a replacement with: a standard attribute stored as UN gets its
/// dictionary VR back, because rules match by tag, never by VR.
fn effective_vr(tag: Tag, vr: VR) -> VR {
    if vr != VR::UN || tag.0 % 2 == 1 {
        return vr;
    }
    match StandardDataDictionary.by_tag(tag).map(|e| e.vr()) {
        Some(VirtualVr::Exact(v)) => v,
        Some(VirtualVr::Xs) => VR::US,
        Some(VirtualVr::Ox) => VR::OW,
        Some(VirtualVr::Px) => VR::OB,
        Some(VirtualVr::Lt) => VR::LT,
        _ => VR::UN,
    }
}

/// The element's values as text: decoded strings, or the raw bytes of a UN element
/// read as ASCII (a standard text attribute stored as UN).
fn text_values(e: &DataElement<InMemDicomObject>) -> Vec<String> {
    match e.value() {
        Value::Primitive(PrimitiveValue::U8(bytes)) if e.vr() == VR::UN => {
            String::from_utf8_lossy(bytes)
                .split('\\')
                .map(|s| trim_padding(s).to_string())
                .collect()
        }
        Value::Primitive(p) => p.to_multi_str().iter().map(|s| s.to_string()).collect(),
        _ => Vec::new(),
    }
}

fn multi(values: Vec<String>) -> PrimitiveValue {
    if values.len() == 1 {
        PrimitiveValue::from(values.into_iter().next().unwrap_or_default())
    } else {
        PrimitiveValue::Strs(values.into_iter().collect())
    }
}

impl<'a> Engine<'a> {
    pub fn new(profile: &'a CompiledProfile, pseudo: Pseudonymizer<'a>) -> Self {
        let mut method = format!(
            "dicom-deid {} profile {}",
            env!("CARGO_PKG_VERSION"),
            profile.name
        );
        method.truncate(64);
        let markers = Markers {
            method,
            codes: profile.method_codes(),
            longitudinal: profile.longitudinal_marker(),
        };
        Engine {
            profile,
            pseudo,
            markers,
        }
    }

    pub fn pseudonymizer(&self) -> &Pseudonymizer<'a> {
        &self.pseudo
    }

    /// De-identifies a top-level dataset in place and writes the markers.
    pub fn apply(&self, obj: &mut InMemDicomObject) -> Result<Counts, DeidError> {
        let mut walk = Walk::default();
        self.apply_item(obj, 0, &mut walk)?;
        self.write_markers(obj);
        if walk.needs_utf8 {
            obj.convert_to_utf8();
        }
        Ok(walk.counts)
    }

    /// De-identifies elements found after Pixel Data (no markers: they live in the
    /// main dataset).
    pub fn apply_trailing(&self, obj: &mut InMemDicomObject) -> Result<Counts, DeidError> {
        let mut walk = Walk::default();
        self.apply_item(obj, 0, &mut walk)?;
        Ok(walk.counts)
    }

    fn apply_item(
        &self,
        obj: &mut InMemDicomObject,
        depth: usize,
        walk: &mut Walk,
    ) -> Result<(), DeidError> {
        if depth > MAX_DEPTH {
            return Err(DeidError::TooDeep);
        }
        let tags: Vec<Tag> = obj.tags().collect();
        let has_private = tags.iter().any(|t| t.0 % 2 == 1);
        // Creator values must be read before any element of the item changes.
        let creators: Vec<(u16, u16, String)> = if has_private {
            tags.iter()
                .filter(|t| t.0 % 2 == 1 && (0x10..=0xFF).contains(&t.1))
                .filter_map(|t| {
                    let e = obj.get(*t)?;
                    let v = text_values(e).into_iter().next().unwrap_or_default();
                    Some((
                        t.0,
                        t.1,
                        crate::profile::tagspec::normalize_creator(&v).to_string(),
                    ))
                })
                .collect()
        } else {
            Vec::new()
        };

        for &tag in &tags {
            if tag.1 == 0x0000 || tag.0 == 0x0002 {
                // Group lengths go stale once anything changes; meta elements
                // belong in the rebuilt file meta group, not in the dataset.
                obj.remove_element(tag);
                walk.counts.removed += 1;
                continue;
            }
            if tag.0 % 2 == 1 && (0x10..=0xFF).contains(&tag.1) {
                continue; // private creators: decided once their block is done
            }
            let creator = if tag.0 % 2 == 1 {
                let block = tag.1 >> 8;
                creators
                    .iter()
                    .find(|(g, e, _)| *g == tag.0 && *e == block)
                    .map(|(_, _, c)| c.as_str())
            } else {
                None
            };
            let decision = self.profile.decide(tag_u32(tag), creator);
            self.apply_action(obj, tag, decision, depth, walk)?;
        }

        // A creator stays exactly when an element of its block stayed.
        for (group, block, _) in &creators {
            let lo = Tag(*group, block << 8);
            let hi = Tag(*group, (block << 8) | 0xFF);
            let used = obj.tags().any(|t| t >= lo && t <= hi);
            if used {
                walk.counts.kept += 1;
            } else {
                obj.remove_element(Tag(*group, *block));
                walk.counts.removed += 1;
            }
        }
        Ok(())
    }

    fn apply_action(
        &self,
        obj: &mut InMemDicomObject,
        tag: Tag,
        decision: Decision<'_>,
        depth: usize,
        walk: &mut Walk,
    ) -> Result<(), DeidError> {
        let Some(e) = obj.get(tag) else {
            return Ok(());
        };
        let is_seq = matches!(e.value(), Value::Sequence(_));
        let vr = effective_vr(tag, e.vr());
        match decision.action() {
            Action::Remove => {
                obj.remove_element(tag);
                walk.counts.removed += 1;
            }
            Action::Empty => {
                if is_seq {
                    obj.put(DataElement::new(
                        tag,
                        VR::SQ,
                        Value::from(DataSetSequence::new(Vec::new(), Length::UNDEFINED)),
                    ));
                } else {
                    obj.put(DataElement::new(tag, vr, PrimitiveValue::Empty));
                }
                walk.counts.emptied += 1;
            }
            // A kept, dummied or cleaned sequence keeps its structure; every element
            // inside it then meets its own rule.
            Action::Keep | Action::Dummy | Action::Clean | Action::Uid if is_seq => {
                walk.counts.kept += 1;
                self.recurse(obj, tag, depth, walk)?;
            }
            Action::Keep => walk.counts.kept += 1,
            Action::Uid | Action::Dummy | Action::Clean | Action::Hash(_) if vr == VR::UI => {
                let mapped: Vec<String> =
                    text_values(e).iter().map(|u| self.pseudo.uid(u)).collect();
                obj.put(DataElement::new(tag, VR::UI, multi(mapped)));
                walk.counts.uid_remapped += 1;
            }
            Action::Uid | Action::Dummy | Action::Clean => match values::dummy(vr) {
                Some(v) => {
                    obj.put(DataElement::new(tag, vr, v));
                    walk.counts.replaced += 1;
                }
                None => {
                    obj.put(DataElement::new(tag, vr, PrimitiveValue::Empty));
                    walk.counts.emptied += 1;
                }
            },
            Action::Hash(h) if values::is_text(vr) => {
                let len = values::max_len(vr).map_or(h.length, |m| h.length.min(m));
                let pseudonyms: Vec<String> = text_values(e)
                    .iter()
                    .map(|v| {
                        let norm = if vr == VR::PN {
                            normalize_person_name(v)
                        } else {
                            trim_padding(v).trim_start()
                        };
                        if norm.is_empty() {
                            String::new()
                        } else {
                            self.pseudo.pseudonym(&h.domain, norm, len, &h.prefix)
                        }
                    })
                    .collect();
                obj.put(DataElement::new(tag, vr, multi(pseudonyms)));
                walk.counts.replaced += 1;
            }
            Action::Hash(_) => {
                let v = values::dummy(vr).unwrap_or(PrimitiveValue::Empty);
                obj.put(DataElement::new(tag, vr, v));
                walk.counts.replaced += 1;
            }
            Action::Replace(_) if is_seq => {
                obj.put(DataElement::new(
                    tag,
                    VR::SQ,
                    Value::from(DataSetSequence::new(Vec::new(), Length::UNDEFINED)),
                ));
                walk.counts.emptied += 1;
            }
            Action::Replace(v) => {
                let value = values::replacement(vr, v).map_err(|reason| DeidError::Value {
                    tag: tag_text(tag),
                    reason,
                })?;
                if !v.is_ascii() {
                    walk.needs_utf8 = true;
                }
                obj.put(DataElement::new(tag, vr, value));
                walk.counts.replaced += 1;
            }
        }
        Ok(())
    }

    fn recurse(
        &self,
        obj: &mut InMemDicomObject,
        tag: Tag,
        depth: usize,
        walk: &mut Walk,
    ) -> Result<(), DeidError> {
        let mut result = Ok(());
        obj.update_value(tag, |v| {
            if let Some(items) = v.items_mut() {
                for item in items.iter_mut() {
                    if let Err(e) = self.apply_item(item, depth + 1, walk) {
                        result = Err(e);
                        return;
                    }
                }
            }
        });
        result
    }

    fn write_markers(&self, obj: &mut InMemDicomObject) {
        obj.put(DataElement::new(
            PATIENT_IDENTITY_REMOVED,
            VR::CS,
            PrimitiveValue::from("YES"),
        ));
        obj.put(DataElement::new(
            DEID_METHOD,
            VR::LO,
            PrimitiveValue::from(self.markers.method.as_str()),
        ));
        if self.markers.codes.is_empty() {
            obj.remove_element(DEID_METHOD_CODES);
        } else {
            let items: Vec<InMemDicomObject> = self
                .markers
                .codes
                .iter()
                .map(|(value, meaning)| {
                    InMemDicomObject::from_element_iter([
                        DataElement::new(Tag(0x0008, 0x0100), VR::SH, PrimitiveValue::from(*value)),
                        DataElement::new(Tag(0x0008, 0x0102), VR::SH, PrimitiveValue::from("DCM")),
                        DataElement::new(
                            Tag(0x0008, 0x0104),
                            VR::LO,
                            PrimitiveValue::from(*meaning),
                        ),
                    ])
                })
                .collect();
            obj.put(DataElement::new(
                DEID_METHOD_CODES,
                VR::SQ,
                Value::from(DataSetSequence::new(items, Length::UNDEFINED)),
            ));
        }
        obj.put(DataElement::new(
            LONGITUDINAL_MODIFIED,
            VR::CS,
            PrimitiveValue::from(self.markers.longitudinal),
        ));
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::deid::key::Key;
    use dicom_dictionary_std::tags;

    fn engine_with<'a>(p: &'a CompiledProfile, k: &'a Key) -> Engine<'a> {
        Engine::new(p, Pseudonymizer::new(k))
    }

    fn item(elems: Vec<DataElement<InMemDicomObject>>) -> InMemDicomObject {
        InMemDicomObject::from_element_iter(elems)
    }

    fn str_of(obj: &InMemDicomObject, tag: Tag) -> Option<String> {
        obj.get(tag)
            .map(|e| e.to_str().map(|s| s.to_string()).unwrap_or_default())
    }

    #[test]
    fn basic_profile_applies_at_every_depth() {
        let p = crate::profile::load("basic").unwrap();
        let k = Key::from_bytes(&[9; 32]);
        let e = engine_with(&p, &k);
        let inner = item(vec![
            DataElement::new(tags::PATIENT_NAME, VR::PN, PrimitiveValue::from("DOE^JOHN")),
            DataElement::new(
                tags::REFERENCED_SOP_INSTANCE_UID,
                VR::UI,
                PrimitiveValue::from("1.2.3.4"),
            ),
            DataElement::new(Tag(0x0009, 0x0010), VR::LO, PrimitiveValue::from("ACME")),
            DataElement::new(
                Tag(0x0009, 0x1001),
                VR::PN,
                PrimitiveValue::from("DOE^JOHN"),
            ),
        ]);
        let mid = item(vec![DataElement::new(
            tags::REFERENCED_STUDY_SEQUENCE,
            VR::SQ,
            Value::from(DataSetSequence::new(vec![inner], Length::UNDEFINED)),
        )]);
        let mut root = item(vec![
            DataElement::new(tags::PATIENT_NAME, VR::PN, PrimitiveValue::from("DOE^JOHN")),
            DataElement::new(tags::PATIENT_ID, VR::LO, PrimitiveValue::from("PID-1")),
            DataElement::new(
                tags::PATIENT_BIRTH_DATE,
                VR::DA,
                PrimitiveValue::from("19610704"),
            ),
            DataElement::new(tags::MODALITY, VR::CS, PrimitiveValue::from("CT")),
            DataElement::new(
                tags::SOP_CLASS_UID,
                VR::UI,
                PrimitiveValue::from("1.2.840.10008.5.1.4.1.1.2"),
            ),
            DataElement::new(Tag(0x0008, 0x0000), VR::UL, PrimitiveValue::from(12u32)),
            DataElement::new(
                tags::ORIGINAL_ATTRIBUTES_SEQUENCE,
                VR::SQ,
                Value::from(DataSetSequence::new(vec![mid.clone()], Length::UNDEFINED)),
            ),
            DataElement::new(
                tags::REFERENCED_STUDY_SEQUENCE,
                VR::SQ,
                Value::from(DataSetSequence::new(vec![mid], Length::UNDEFINED)),
            ),
            DataElement::new(
                Tag(0x0010, 0x1000),
                VR::UN,
                PrimitiveValue::U8(b"OTHER^ID".to_vec().into()),
            ),
        ]);
        let counts = e.apply(&mut root).unwrap();
        assert_eq!(str_of(&root, tags::PATIENT_NAME).as_deref(), Some(""));
        let pid = str_of(&root, tags::PATIENT_ID).unwrap();
        assert_eq!(pid.len(), 16);
        assert_ne!(pid, "PID-1");
        assert_eq!(str_of(&root, tags::PATIENT_BIRTH_DATE).as_deref(), Some(""));
        assert_eq!(str_of(&root, tags::MODALITY).as_deref(), Some("CT"));
        assert!(root.get(Tag(0x0008, 0x0000)).is_none());
        assert!(
            root.get(tags::ORIGINAL_ATTRIBUTES_SEQUENCE).is_none(),
            "X removes the sequence"
        );
        assert!(
            root.get(Tag(0x0010, 0x1000)).is_none(),
            "UN-stored OtherPatientIDs removed"
        );
        // Referenced Study Sequence is X/Z: emptied under the fallback.
        let seq = root.get(tags::REFERENCED_STUDY_SEQUENCE).unwrap();
        assert_eq!(seq.items().map(|i| i.len()), Some(0));
        assert_eq!(
            str_of(&root, PATIENT_IDENTITY_REMOVED).as_deref(),
            Some("YES")
        );
        assert_eq!(
            str_of(&root, LONGITUDINAL_MODIFIED).as_deref(),
            Some("REMOVED")
        );
        assert!(counts.removed >= 3 && counts.emptied >= 2);
    }

    #[test]
    fn kept_sequences_are_processed_inside() {
        let p = crate::profile::compile::compile_str(
            "t.yaml",
            "extends: basic\nrules:\n  - {tag: ReferencedStudySequence, action: K}\n",
        )
        .unwrap();
        let k = Key::from_bytes(&[9; 32]);
        let e = engine_with(&p, &k);
        let inner = item(vec![
            DataElement::new(tags::PATIENT_NAME, VR::PN, PrimitiveValue::from("DOE^JOHN")),
            DataElement::new(
                tags::REFERENCED_SOP_INSTANCE_UID,
                VR::UI,
                PrimitiveValue::from("1.2.3.4"),
            ),
            DataElement::new(Tag(0x0009, 0x0010), VR::LO, PrimitiveValue::from("ACME")),
            DataElement::new(
                Tag(0x0009, 0x1001),
                VR::PN,
                PrimitiveValue::from("DOE^JOHN"),
            ),
        ]);
        let mut root = item(vec![DataElement::new(
            tags::REFERENCED_STUDY_SEQUENCE,
            VR::SQ,
            Value::from(DataSetSequence::new(vec![inner], Length::UNDEFINED)),
        )]);
        e.apply(&mut root).unwrap();
        let items = root
            .get(tags::REFERENCED_STUDY_SEQUENCE)
            .unwrap()
            .items()
            .unwrap();
        let it = &items[0];
        assert_eq!(str_of(it, tags::PATIENT_NAME).as_deref(), Some(""));
        assert_eq!(
            str_of(it, tags::REFERENCED_SOP_INSTANCE_UID),
            Some(e.pseudonymizer().uid("1.2.3.4"))
        );
        assert!(it.get(Tag(0x0009, 0x0010)).is_none() && it.get(Tag(0x0009, 0x1001)).is_none());
    }

    #[test]
    fn private_creator_rules_keep_their_block() {
        let p = crate::profile::compile::compile_str(
            "t.yaml",
            "rules:\n  - {tag: \"(0029,xx10)\", creator: SAFE VENDOR, action: K}\n",
        )
        .unwrap();
        let k = Key::from_bytes(&[9; 32]);
        let e = engine_with(&p, &k);
        let mut root = item(vec![
            DataElement::new(
                Tag(0x0029, 0x0011),
                VR::LO,
                PrimitiveValue::from("SAFE VENDOR "),
            ),
            DataElement::new(Tag(0x0029, 0x0012), VR::LO, PrimitiveValue::from("OTHER")),
            DataElement::new(Tag(0x0029, 0x1110), VR::DS, PrimitiveValue::from("1.5")),
            DataElement::new(Tag(0x0029, 0x1111), VR::LO, PrimitiveValue::from("DOE")),
            DataElement::new(Tag(0x0029, 0x1210), VR::LO, PrimitiveValue::from("DOE")),
        ]);
        e.apply(&mut root).unwrap();
        assert!(root.get(Tag(0x0029, 0x0011)).is_some());
        assert!(root.get(Tag(0x0029, 0x1110)).is_some());
        assert!(root.get(Tag(0x0029, 0x1111)).is_none());
        assert!(root.get(Tag(0x0029, 0x0012)).is_none());
        assert!(root.get(Tag(0x0029, 0x1210)).is_none());
    }

    #[test]
    fn non_ascii_replacements_switch_the_file_to_utf8() {
        let p = crate::profile::compile::compile_str(
            "t.yaml",
            "rules:\n  - {tag: PatientName, replace: \"Müller^Anon\"}\n",
        )
        .unwrap();
        let k = Key::from_bytes(&[9; 32]);
        let e = engine_with(&p, &k);
        let mut root = item(vec![
            DataElement::new(
                SPECIFIC_CHARACTER_SET,
                VR::CS,
                PrimitiveValue::from("ISO_IR 100"),
            ),
            DataElement::new(tags::PATIENT_NAME, VR::PN, PrimitiveValue::from("X")),
        ]);
        e.apply(&mut root).unwrap();
        assert_eq!(
            str_of(&root, SPECIFIC_CHARACTER_SET).as_deref(),
            Some("ISO_IR 192")
        );
    }

    #[test]
    fn depth_is_bounded() {
        let p = crate::profile::load("basic").unwrap();
        let k = Key::from_bytes(&[9; 32]);
        let e = engine_with(&p, &k);
        let mut obj = item(vec![]);
        for _ in 0..(MAX_DEPTH + 2) {
            obj = item(vec![DataElement::new(
                tags::CONTENT_SEQUENCE,
                VR::SQ,
                Value::from(DataSetSequence::new(vec![obj], Length::UNDEFINED)),
            )]);
        }
        assert_eq!(e.apply(&mut obj), Err(DeidError::TooDeep));
    }
}
