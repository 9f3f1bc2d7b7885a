//! Applies a compiled profile to a dataset, at every depth, and writes the PS3.15
//! markers. Knows nothing of files or YAML.

use super::dates;
use super::pseudonym::{Pseudonymizer, normalize_person_name, trim_padding};
use super::scrub::Scrubber;
use super::values;
use crate::profile::action::{Code, HashParams, LookupTable, OnMissing, Replacement};
use crate::profile::compile::lookup_key;
use crate::profile::iod::{self, AttrType, IodTypes};
use crate::profile::tagspec::Target;
use crate::profile::{Action, CompiledProfile, Decision};
use dicom_core::dictionary::{DataDictionary, DataDictionaryEntry, VirtualVr};
use dicom_core::value::{DataSetSequence, Value};
use dicom_core::{DataElement, Length, PrimitiveValue, Tag, VR};
use dicom_dictionary_std::StandardDataDictionary;
use dicom_object::InMemDicomObject;

/// Sequences nest deeper than this only in crafted files; real data stays under 10.
pub const MAX_DEPTH: usize = 64;

#[cfg(test)]
const SPECIFIC_CHARACTER_SET: Tag = Tag(0x0008, 0x0005);
const PATIENT_ID: Tag = Tag(0x0010, 0x0020);
const PATIENT_AGE: Tag = Tag(0x0010, 0x1010);
const STUDY_INSTANCE_UID: Tag = Tag(0x0020, 0x000D);
const PATIENT_IDENTITY_REMOVED: Tag = Tag(0x0012, 0x0062);
const DEID_METHOD: Tag = Tag(0x0012, 0x0063);
const DEID_METHOD_CODES: Tag = Tag(0x0012, 0x0064);
const LONGITUDINAL_MODIFIED: Tag = Tag(0x0028, 0x0303);

pub use crate::outcome::Counts;

/// One original -> replacement pair for the crosswalk file (the only place original
/// values are ever written).
#[derive(Debug, Clone, PartialEq, Eq, Hash)]
pub struct CrosswalkEntry {
    pub kind: String,
    pub original: String,
    pub replacement: String,
}

/// What de-identifying one dataset did.
#[derive(Debug, Default)]
pub struct FileResult {
    pub counts: Counts,
    /// Filled only when the engine collects a crosswalk.
    pub crosswalk: Vec<CrosswalkEntry>,
    /// Private creators whose blocks were removed.
    pub creators_dropped: Vec<String>,
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
    /// Patient Identity Removed (0012,0062): `YES` only for a profile that removes
    /// or replaces every row of Table E.1-1.
    identity_removed: &'static str,
    method: String,
    codes: Vec<(&'static str, &'static str)>,
    longitudinal: &'static str,
}

pub struct Engine<'a> {
    profile: &'a CompiledProfile,
    pseudo: Pseudonymizer<'a>,
    markers: Markers,
    /// Whether some rule cleans text: then the file's identifying values are
    /// collected before anything changes.
    cleans_text: bool,
    /// Whether some rule shifts dates: then the patient's offset is computed.
    shifts_dates: bool,
    collect_crosswalk: bool,
}

/// Mutable state of one file's walk.
#[derive(Default)]
struct Walk {
    result: FileResult,
    /// A replacement needs a character set beyond ASCII: the file becomes UTF-8.
    needs_utf8: bool,
    /// The patient's date shift in days, when the profile shifts dates.
    offset: Option<u32>,
    dates_shifted: bool,
    patient_id: String,
    scrubber: Scrubber,
    /// Attribute Types of the file's IOD, for compound action codes.
    iod: Option<&'static IodTypes>,
    /// Tags of the sequences above the current item, outermost first.
    path: Vec<u32>,
    /// One line per element when explaining a file, else `None`.
    explain: Option<Vec<ExplainLine>>,
    /// Item index per sequence level, for explain paths.
    item_index: Vec<usize>,
}

/// What happened to one element, for `run --explain`: never its value, only its
/// size.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ExplainLine {
    /// `(0040,A730)[0]/(0040,A123)`.
    pub path: String,
    pub keyword: String,
    pub vr: String,
    /// Bytes or items of the original value.
    pub size: String,
    pub action: String,
    /// The profile line, default or IOD Type that chose the action.
    pub why: String,
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

fn empty_sequence() -> Value<InMemDicomObject, dicom_object::mem::InMemFragment> {
    Value::from(DataSetSequence::new(Vec::new(), Length::UNDEFINED))
}

/// Resolves a compound code by the attribute's Type in the file's IOD (PS3.15
/// E.1.1): Type 3 may go, Type 2 must stay but may be empty, Type 1 needs a value.
/// Where the standard's Type falls outside what the code offers (X/D on a Type 2,
/// X/Z on a Type 1), the choice that keeps the file conformant wins. X/Z/U* is
/// always U* (keep the sequence, its UIDs remapped by their own rules): that is
/// valid at every Type, identifies no one, and keeps the references research needs.
fn resolve_compound(code: Code, ty: AttrType) -> Option<Action> {
    use AttrType::*;
    Some(match (code, ty) {
        (Code::XZU, _) => Action::Keep,
        (Code::XZ | Code::XD | Code::XZD, Three) => Action::Remove,
        (Code::ZD, Three | Two | TwoC) => Action::Empty,
        (Code::XZ | Code::XZD, Two | TwoC) => Action::Empty,
        (Code::XD, Two | TwoC) => Action::Dummy,
        (Code::ZD | Code::XD | Code::XZD | Code::XZ, One | OneC) => Action::Dummy,
        _ => return None,
    })
}

fn explain_path(walk: &Walk, tag: Tag) -> String {
    let mut out = String::new();
    for (t, i) in walk.path.iter().zip(&walk.item_index) {
        out.push_str(&format!("({:04X},{:04X})[{i}]/", t >> 16, t & 0xFFFF));
    }
    out.push_str(&tag_text(tag));
    out
}

/// Ages above 89 years, in any unit, are written as `090Y` (HIPAA Safe Harbor).
fn cap_age(age: &str) -> Option<String> {
    let a = age.trim();
    if a.len() != 4 || !a.is_ascii() {
        return None;
    }
    let n: u32 = a[..3].parse().ok()?;
    let years = match &a[3..] {
        "Y" => n,
        "M" => n / 12,
        "W" => n / 52,
        "D" => n / 365,
        _ => return None,
    };
    (years > 89).then(|| "090Y".to_string())
}

/// A private creator element of one item, read before anything changes.
struct Creator {
    group: u16,
    block: u16,
    values: Vec<String>,
    /// Per value: a kept element of the block was chosen by this value's rule.
    needed: Vec<bool>,
}

/// The element an action works on, read before anything in its item changes.
struct Elem<'e> {
    tag: Tag,
    /// The VR to write with (see [`effective_vr`]).
    vr: VR,
    is_seq: bool,
    /// Sequence depth of the item holding the element; 0 is the top level.
    depth: usize,
    element: &'e DataElement<InMemDicomObject>,
}

/// The change an action makes. Computed while the element is still borrowed,
/// applied after.
enum Edit {
    Nothing,
    Remove,
    Put(VR, PrimitiveValue),
    EmptySequence,
    /// Keep the sequence and process every item inside it.
    Recurse,
}

fn remove(walk: &mut Walk) -> Edit {
    walk.result.counts.removed += 1;
    Edit::Remove
}

fn empty(el: &Elem<'_>, walk: &mut Walk) -> Edit {
    walk.result.counts.emptied += 1;
    if el.is_seq {
        Edit::EmptySequence
    } else {
        Edit::Put(el.vr, PrimitiveValue::Empty)
    }
}

/// A dummy valid for the VR; VRs without a meaningful dummy are emptied.
fn dummy(el: &Elem<'_>, walk: &mut Walk) -> Edit {
    match values::dummy(el.vr) {
        Some(v) => {
            walk.result.counts.replaced += 1;
            Edit::Put(el.vr, v)
        }
        None => {
            walk.result.counts.emptied += 1;
            Edit::Put(el.vr, PrimitiveValue::Empty)
        }
    }
}

fn shift_dates(el: &Elem<'_>, walk: &mut Walk) -> Edit {
    let days = walk.offset.unwrap_or(1);
    let shift = if el.vr == VR::DA {
        dates::shift_da
    } else {
        dates::shift_dt
    };
    let shifted: Option<Vec<String>> = text_values(el.element)
        .iter()
        .map(|v| shift(v, days))
        .collect();
    walk.dates_shifted = true;
    walk.result.counts.replaced += 1;
    match shifted {
        Some(v) => Edit::Put(el.vr, multi(v)),
        // Not a date we can shift: never keep it.
        None => Edit::Put(el.vr, values::dummy(el.vr).unwrap_or(PrimitiveValue::Empty)),
    }
}

/// The profile's fixed value, parsed when the profile was compiled unless the
/// element's VR is known only now.
fn replace(r: &Replacement, el: &Elem<'_>, walk: &mut Walk) -> Result<Edit, DeidError> {
    if el.is_seq {
        return Ok(empty(el, walk));
    }
    let value = r.value_for(el.vr).map_err(|reason| DeidError::Value {
        tag: tag_text(el.tag),
        reason,
    })?;
    if !r.text().is_ascii() {
        walk.needs_utf8 = true;
    }
    walk.result.counts.replaced += 1;
    Ok(Edit::Put(el.vr, value))
}

/// Which rule, default or IOD Type chose the action, for `--explain`.
fn explain_why(decision: &Decision<'_>, resolved_by_iod: bool, unlisted_date: bool) -> String {
    match decision {
        Decision::Rule(r) => {
            let mut w = format!("{}:{}", r.origin.source, r.origin.line);
            if let (Some(code), true) = (r.code, resolved_by_iod) {
                w.push_str(&format!(" ({code} resolved by Type in the IOD)"));
            } else if let Some(code) = r.code {
                w.push_str(&format!(" ({code})"));
            }
            w
        }
        Decision::PrivateDefault(_) => "defaults.private".into(),
        Decision::PublicDefault(_) if unlisted_date => {
            "unlisted date (retain-long-modified-dates)".into()
        }
        Decision::PublicDefault(_) => "defaults.public".into(),
        Decision::UnknownPublic(_) => "defaults.unknown-public (no dictionary knows it)".into(),
    }
}

/// One explain line: the element's path, name, VR and size, never its value.
fn explain_element(walk: &mut Walk, el: &Elem<'_>, action: &Action, why: String) {
    let size = match el.element.value() {
        Value::Sequence(s) => format!("{} items", s.items().len()),
        Value::PixelSequence(_) => "encapsulated".into(),
        Value::Primitive(p) => format!("{} bytes", p.calculate_byte_len()),
    };
    let line = ExplainLine {
        path: explain_path(walk, el.tag),
        keyword: StandardDataDictionary
            .by_tag(el.tag)
            .map(|d| d.alias().to_string())
            .unwrap_or_else(|| {
                if el.tag.0 % 2 == 1 {
                    "(private)".into()
                } else {
                    String::new()
                }
            }),
        vr: el.vr.to_string().to_string(),
        size,
        action: action.describe(),
        why,
    };
    if let Some(lines) = walk.explain.as_mut() {
        lines.push(line);
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
            identity_removed: if profile.removes_identity() {
                "YES"
            } else {
                "NO"
            },
            method,
            codes: profile.method_codes(),
            longitudinal: profile.longitudinal_marker(),
        };
        let uses = |f: fn(&Action) -> bool| profile.rules.iter().any(|r| f(&r.action));
        Engine {
            cleans_text: uses(|a| matches!(a, Action::Clean)),
            shifts_dates: profile.shift_unlisted_dates
                || uses(|a| matches!(a, Action::Clean | Action::DateShift)),
            profile,
            pseudo,
            markers,
            collect_crosswalk: false,
        }
    }

    /// Collect original -> replacement pairs in [`FileResult::crosswalk`].
    pub fn with_crosswalk(mut self, on: bool) -> Self {
        self.collect_crosswalk = on;
        self
    }

    /// De-identifies like [`Engine::apply`] and also says, element by element, what
    /// happened and which rule chose it.
    pub fn explain(
        &self,
        obj: &mut InMemDicomObject,
    ) -> Result<(FileResult, Vec<ExplainLine>), DeidError> {
        let mut walk = self.start(obj);
        walk.explain = Some(Vec::new());
        self.apply_item(obj, 0, &mut walk)?;
        self.write_markers(obj);
        Ok((walk.result, walk.explain.unwrap_or_default()))
    }

    pub fn pseudonymizer(&self) -> &Pseudonymizer<'a> {
        &self.pseudo
    }

    /// De-identifies a top-level dataset in place and writes the markers.
    pub fn apply(&self, obj: &mut InMemDicomObject) -> Result<FileResult, DeidError> {
        let mut walk = self.start(obj);
        self.apply_item(obj, 0, &mut walk)?;
        self.write_markers(obj);
        if walk.needs_utf8 {
            obj.convert_to_utf8();
        }
        if let (true, true, Some(days)) = (self.collect_crosswalk, walk.dates_shifted, walk.offset)
        {
            walk.result.crosswalk.push(CrosswalkEntry {
                kind: "date-offset-days".into(),
                original: walk.patient_id.clone(),
                replacement: format!("-{days}"),
            });
        }
        Ok(walk.result)
    }

    /// De-identifies elements found after Pixel Data (no markers: they live in the
    /// main dataset).
    pub fn apply_trailing(&self, obj: &mut InMemDicomObject) -> Result<FileResult, DeidError> {
        let mut walk = Walk::default();
        self.apply_item(obj, 0, &mut walk)?;
        Ok(walk.result)
    }

    /// Reads what the walk needs from the untouched dataset.
    fn start(&self, root: &InMemDicomObject) -> Walk {
        let mut walk = Walk::default();
        if self.shifts_dates || self.collect_crosswalk {
            walk.patient_id = root
                .get(PATIENT_ID)
                .and_then(|e| e.to_str().ok())
                .map(|s| trim_padding(&s).trim().to_string())
                .unwrap_or_default();
        }
        if self.shifts_dates {
            walk.offset = Some(dates::offset_days(
                self.pseudo.key(),
                &walk.patient_id,
                self.profile.date_shift_days,
            ));
        }
        if self.cleans_text {
            walk.scrubber = Scrubber::from_dataset(root);
        }
        walk.iod = root
            .get(Tag(0x0008, 0x0016))
            .and_then(|e| e.to_str().ok())
            .and_then(|uid| iod::for_sop_class(&uid));
        walk
    }

    fn explain_fixed(&self, walk: &mut Walk, tag: Tag, action: &str, why: &str) {
        if walk.explain.is_none() {
            return;
        }
        let line = ExplainLine {
            path: explain_path(walk, tag),
            keyword: String::new(),
            vr: String::new(),
            size: String::new(),
            action: action.into(),
            why: why.into(),
        };
        if let Some(lines) = walk.explain.as_mut() {
            lines.push(line);
        }
    }

    /// The action for a compound code from the file's IOD, when the IOD lists the
    /// attribute at this path; otherwise the profile's IOD-free resolution stands.
    fn iod_action(&self, decision: &Decision<'_>, tag: Tag, walk: &mut Walk) -> Option<Action> {
        let Decision::Rule(rule) = decision else {
            return None;
        };
        let code = rule.code?;
        // X/Z/U* needs no Type: it keeps and remaps at every Type (resolve_compound).
        if !matches!(code, Code::ZD | Code::XZ | Code::XD | Code::XZD) {
            return None;
        }
        let types = walk.iod?;
        walk.path.push(tag_u32(tag));
        let ty = types.type_at(&walk.path);
        walk.path.pop();
        resolve_compound(code, ty?)
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
        // Every value of a creator counts: a creator with several values (which
        // PS3.5 does not allow, but files have) is matched value by value, and
        // keeps only the values a kept element needed.
        let mut creators: Vec<Creator> = if has_private {
            tags.iter()
                .filter(|t| t.0 % 2 == 1 && (0x10..=0xFF).contains(&t.1))
                .filter_map(|t| {
                    let e = obj.get(*t)?;
                    let values: Vec<String> = text_values(e)
                        .iter()
                        .map(|v| crate::profile::tagspec::normalize_creator(v).to_string())
                        .collect();
                    Some(Creator {
                        group: t.0,
                        block: t.1,
                        needed: vec![false; values.len()],
                        values,
                    })
                })
                .collect()
        } else {
            Vec::new()
        };

        for &tag in &tags {
            if tag.1 == 0x0000 || tag.0 == 0x0002 || tag.0 == 0xFFFE {
                // Group lengths go stale once anything changes; meta elements
                // belong in the rebuilt file meta group, not in the dataset; item and
                // delimiter tags read as elements would make the output unreadable.
                self.explain_fixed(
                    walk,
                    tag,
                    "remove",
                    "group length or meta element in the dataset",
                );
                obj.remove_element(tag);
                walk.result.counts.removed += 1;
                continue;
            }
            if tag.0 % 2 == 1 && (0x10..=0xFF).contains(&tag.1) {
                continue; // private creators: decided once their block is done
            }
            let creator = if tag.0 % 2 == 1 {
                let block = tag.1 >> 8;
                creators
                    .iter_mut()
                    .find(|c| c.group == tag.0 && c.block == block)
            } else {
                None
            };
            let Some(creator) = creator else {
                let decision = self.profile.decide(tag_u32(tag), None);
                self.apply_action(obj, tag, decision, depth, walk)?;
                continue;
            };
            // The first value a creator rule names decides; without one the element
            // is decided as before (exact private rule or defaults).
            let by_value = creator.values.iter().position(|v| {
                matches!(self.profile.decide(tag_u32(tag), Some(v)),
                    Decision::Rule(r) if matches!(&r.target, Target::Private { creator, .. } if creator == v))
            });
            let name = by_value.or((!creator.values.is_empty()).then_some(0));
            let decision = self
                .profile
                .decide(tag_u32(tag), name.map(|i| creator.values[i].as_str()));
            self.apply_action(obj, tag, decision, depth, walk)?;
            if let Some(i) = by_value
                && obj.get(tag).is_some()
            {
                creator.needed[i] = true;
            }
        }

        // A creator stays exactly when an element of its block stayed, with only
        // the values a kept element needed (all of them when no creator rule chose).
        for c in &creators {
            let (group, block) = (&c.group, &c.block);
            let name = c.values.first().cloned().unwrap_or_default();
            let lo = Tag(*group, block << 8);
            let hi = Tag(*group, (block << 8) | 0xFF);
            let used = obj.tags().any(|t| t >= lo && t <= hi);
            let creator_tag = Tag(*group, *block);
            let needed: Vec<String> = c
                .values
                .iter()
                .zip(&c.needed)
                .filter(|(_, n)| **n)
                .map(|(v, _)| v.clone())
                .collect();
            if used && !needed.is_empty() && needed.len() < c.values.len() {
                self.explain_fixed(
                    walk,
                    creator_tag,
                    "replace",
                    "private creator: only the values a kept element needs",
                );
                obj.put(DataElement::new(creator_tag, VR::LO, multi(needed)));
                walk.result.counts.replaced += 1;
            } else if used {
                self.explain_fixed(walk, creator_tag, "keep", "private creator of a kept block");
                walk.result.counts.kept += 1;
            } else {
                self.explain_fixed(
                    walk,
                    creator_tag,
                    "remove",
                    "private creator of a removed block",
                );
                obj.remove_element(Tag(*group, *block));
                walk.result.counts.removed += 1;
                if !walk.result.creators_dropped.contains(&name) {
                    walk.result.creators_dropped.push(name);
                }
            }
        }
        Ok(())
    }

    /// Decides what happens to one element, explains it when asked, and applies it.
    fn apply_action(
        &self,
        obj: &mut InMemDicomObject,
        tag: Tag,
        decision: Decision<'_>,
        depth: usize,
        walk: &mut Walk,
    ) -> Result<(), DeidError> {
        let Some(element) = obj.get(tag) else {
            return Ok(());
        };
        let el = Elem {
            tag,
            vr: effective_vr(tag, element.vr()),
            is_seq: matches!(element.value(), Value::Sequence(_)),
            depth,
            element,
        };
        let resolved = self.iod_action(&decision, tag, walk);
        let mut action = resolved.as_ref().unwrap_or(decision.action());
        // A rule that names the VR of its element (the safe private list) does not
        // mean an element stored with another VR: that one goes.
        let vr_mismatch = matches!(decision, Decision::Rule(r) if !r.admits_vr(element.vr()));
        if vr_mismatch {
            action = &Action::Remove;
        }
        // Dates no rule names follow the date option (the standard recommends
        // handling every DA/DT by VR, since its table cannot list them all).
        let unlisted_date = matches!(
            decision,
            Decision::PublicDefault(Action::Keep) | Decision::UnknownPublic(Action::Keep)
        ) && self.profile.shift_unlisted_dates
            && matches!(el.vr, VR::DA | VR::DT);
        if unlisted_date {
            action = &Action::DateShift;
        }
        if walk.explain.is_some() {
            let mut why = explain_why(&decision, resolved.is_some(), unlisted_date);
            if vr_mismatch {
                why.push_str(" (stored with another VR than the rule's: not that element)");
            }
            explain_element(walk, &el, action, why);
        }
        match self.edit(action, &el, walk)? {
            Edit::Nothing => {}
            Edit::Remove => {
                obj.remove_element(tag);
            }
            Edit::Put(vr, value) => {
                obj.put(DataElement::new(tag, vr, value));
            }
            Edit::EmptySequence => {
                obj.put(DataElement::new(tag, VR::SQ, empty_sequence()));
            }
            Edit::Recurse => self.recurse(obj, tag, depth, walk)?,
        }
        Ok(())
    }

    /// One function per action. The order of the arms matters: sequences, UIDs and
    /// dates are caught before an action's general case.
    fn edit(&self, action: &Action, el: &Elem<'_>, walk: &mut Walk) -> Result<Edit, DeidError> {
        Ok(match action {
            Action::Remove => remove(walk),
            Action::Empty => empty(el, walk),
            // A kept, dummied or cleaned sequence keeps its structure; every element
            // inside it then meets its own rule.
            Action::Keep | Action::Dummy | Action::Clean | Action::Uid | Action::DateShift
                if el.is_seq =>
            {
                walk.result.counts.kept += 1;
                Edit::Recurse
            }
            Action::Keep => self.keep(el, walk),
            Action::Uid | Action::Dummy | Action::Clean | Action::Hash(_) | Action::Lookup(_)
                if el.vr == VR::UI =>
            {
                self.remap_uids(el, walk)
            }
            Action::DateShift | Action::Clean if matches!(el.vr, VR::DA | VR::DT) => {
                shift_dates(el, walk)
            }
            Action::Clean => self.clean(el, walk),
            Action::Uid | Action::Dummy | Action::DateShift => dummy(el, walk),
            Action::Hash(h) => self.hash(h, el, walk),
            Action::Replace(r) => replace(r, el, walk)?,
            Action::Lookup(table) => self.lookup(table, el, walk)?,
        })
    }

    fn keep(&self, el: &Elem<'_>, walk: &mut Walk) -> Edit {
        if el.tag == PATIENT_AGE
            && self.profile.hipaa_ages
            && let Some(capped) = text_values(el.element).first().and_then(|a| cap_age(a))
        {
            walk.result.counts.replaced += 1;
            return Edit::Put(VR::AS, PrimitiveValue::from(capped));
        }
        walk.result.counts.kept += 1;
        Edit::Nothing
    }

    fn remap_uids(&self, el: &Elem<'_>, walk: &mut Walk) -> Edit {
        let originals = text_values(el.element);
        let mapped: Vec<String> = originals.iter().map(|u| self.pseudo.uid(u)).collect();
        if el.depth == 0 && el.tag == STUDY_INSTANCE_UID {
            for (o, m) in originals.iter().zip(&mapped) {
                self.crosswalk(walk, "study-instance-uid", trim_padding(o), m);
            }
        }
        walk.result.counts.uid_remapped += 1;
        Edit::Put(VR::UI, multi(mapped))
    }

    /// Free text loses the identifying values found in the file; times keep their
    /// hour when the profile coarsens them. Ages, numbers and binary data carry no
    /// free text to clean.
    fn clean(&self, el: &Elem<'_>, walk: &mut Walk) -> Edit {
        let vr = el.vr;
        if values::is_text(vr) {
            let texts = text_values(el.element);
            let cleaned: Vec<Option<String>> =
                texts.iter().map(|t| walk.scrubber.scrub(t)).collect();
            if !cleaned.iter().any(Option::is_some) {
                walk.result.counts.kept += 1;
                return Edit::Nothing;
            }
            let max = values::max_len(vr);
            let out: Vec<String> = cleaned
                .into_iter()
                .zip(texts)
                .map(|(c, t)| {
                    let mut v = c.unwrap_or(t);
                    if let Some(max) = max {
                        v = v.chars().take(max).collect();
                    }
                    v
                })
                .collect();
            walk.result.counts.replaced += 1;
            return Edit::Put(vr, multi(out));
        }
        if vr == VR::TM && self.profile.coarsen_times {
            let hours: Vec<String> = text_values(el.element)
                .iter()
                .map(|t| {
                    let t = t.trim();
                    if t.len() >= 2 && t.is_ascii() {
                        format!("{}0000", &t[..2])
                    } else {
                        String::new()
                    }
                })
                .collect();
            walk.result.counts.replaced += 1;
            return Edit::Put(vr, multi(hours));
        }
        walk.result.counts.kept += 1;
        Edit::Nothing
    }

    fn hash(&self, h: &HashParams, el: &Elem<'_>, walk: &mut Walk) -> Edit {
        let vr = el.vr;
        if !values::is_text(vr) {
            walk.result.counts.replaced += 1;
            return Edit::Put(vr, values::dummy(vr).unwrap_or(PrimitiveValue::Empty));
        }
        let len = values::max_len(vr).map_or(h.length, |m| h.length.min(m));
        let pseudonyms: Vec<String> = text_values(el.element)
            .iter()
            .map(|v| {
                let norm = if vr == VR::PN {
                    normalize_person_name(v)
                } else {
                    trim_padding(v).trim_start()
                };
                if norm.is_empty() {
                    return String::new();
                }
                let p = self
                    .pseudo
                    .pseudonym_in(&h.domain, norm, len, &h.prefix, h.alphabet);
                self.crosswalk(walk, &h.domain, norm, &p);
                p
            })
            .collect();
        walk.result.counts.replaced += 1;
        Edit::Put(vr, multi(pseudonyms))
    }

    fn lookup(
        &self,
        table: &LookupTable,
        el: &Elem<'_>,
        walk: &mut Walk,
    ) -> Result<Edit, DeidError> {
        if el.is_seq {
            return Ok(empty(el, walk));
        }
        let vr = el.vr;
        let mut out = Vec::new();
        for v in text_values(el.element) {
            let key = lookup_key(&v);
            let replacement = match table.map.get(key) {
                Some(r) => r.clone(),
                None if key.is_empty() => String::new(),
                None => match table.on_missing {
                    OnMissing::Fail => {
                        return Err(DeidError::Value {
                            tag: tag_text(el.tag),
                            reason: format!("value not found in lookup file {}", table.source),
                        });
                    }
                    OnMissing::Keep => v.clone(),
                    OnMissing::Remove => return Ok(remove(walk)),
                    OnMissing::Hash => self.pseudo.pseudonym(
                        "lookup",
                        key,
                        values::max_len(vr).unwrap_or(16).min(16),
                        "",
                    ),
                },
            };
            if !key.is_empty() {
                self.crosswalk(walk, &format!("lookup:{}", table.source), key, &replacement);
            }
            out.push(replacement);
        }
        if out.iter().any(|v| !v.is_ascii()) {
            walk.needs_utf8 = true;
        }
        walk.result.counts.replaced += 1;
        Ok(Edit::Put(vr, multi(out)))
    }

    /// Records an original -> replacement pair when the run writes a crosswalk.
    fn crosswalk(&self, walk: &mut Walk, kind: &str, original: &str, replacement: &str) {
        if self.collect_crosswalk {
            walk.result.crosswalk.push(CrosswalkEntry {
                kind: kind.to_string(),
                original: original.to_string(),
                replacement: replacement.to_string(),
            });
        }
    }

    fn recurse(
        &self,
        obj: &mut InMemDicomObject,
        tag: Tag,
        depth: usize,
        walk: &mut Walk,
    ) -> Result<(), DeidError> {
        let mut result = Ok(());
        walk.path.push(tag_u32(tag));
        walk.item_index.push(0);
        obj.update_value(tag, |v| {
            if let Some(items) = v.items_mut() {
                for (i, item) in items.iter_mut().enumerate() {
                    if let Some(last) = walk.item_index.last_mut() {
                        *last = i;
                    }
                    if let Err(e) = self.apply_item(item, depth + 1, walk) {
                        result = Err(e);
                        return;
                    }
                }
            }
        });
        walk.path.pop();
        walk.item_index.pop();
        result
    }

    fn write_markers(&self, obj: &mut InMemDicomObject) {
        obj.put(DataElement::new(
            PATIENT_IDENTITY_REMOVED,
            VR::CS,
            PrimitiveValue::from(self.markers.identity_removed),
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
        // Referenced Study Sequence is X/Z and Type 3 in the CT Image IOD: removed.
        assert!(root.get(tags::REFERENCED_STUDY_SEQUENCE).is_none());
        assert_eq!(
            str_of(&root, PATIENT_IDENTITY_REMOVED).as_deref(),
            Some("YES")
        );
        assert_eq!(
            str_of(&root, LONGITUDINAL_MODIFIED).as_deref(),
            Some("REMOVED")
        );
        assert!(counts.counts.removed >= 3 && counts.counts.emptied >= 1);
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
            "defaults: {public: keep}\nrules:\n  - {tag: \"(0029,xx10)\", creator: SAFE VENDOR, action: K}\n",
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
            "defaults: {public: keep}\nrules:\n  - {tag: PatientName, replace: \"Müller^Anon\"}\n",
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
    fn replacements_are_written_for_the_element_vr() {
        let p = crate::profile::compile::compile_str(
            "t.yaml",
            "defaults: {public: keep}\nrules:\n  - {tag: Rows, replace: \"512\"}\n  - {tag: \"(60xx,0010)\", replace: \"abc\"}\n",
        )
        .unwrap();
        let k = Key::from_bytes(&[9; 32]);
        let e = engine_with(&p, &k);
        let mut root = item(vec![DataElement::new(
            tags::ROWS,
            VR::US,
            PrimitiveValue::from(7u16),
        )]);
        let r = e.apply(&mut root).unwrap();
        assert_eq!(r.counts.replaced, 1);
        assert_eq!(
            root.get(tags::ROWS).unwrap().to_int::<u16>().ok(),
            Some(512)
        );
        // A pattern's VR is known only per element: a value it cannot hold fails the
        // file, naming the element.
        let mut root = item(vec![DataElement::new(
            Tag(0x6000, 0x0010),
            VR::US,
            PrimitiveValue::from(7u16),
        )]);
        let err = e.apply(&mut root).unwrap_err();
        assert!(
            matches!(&err, DeidError::Value { tag, .. } if tag == "(6000,0010)"),
            "{err:?}"
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
        assert_eq!(e.apply(&mut obj).err(), Some(DeidError::TooDeep));
    }
}

#[cfg(test)]
mod compound_tests {
    use super::*;

    #[test]
    fn compound_codes_resolve_by_type() {
        assert_eq!(
            resolve_compound(Code::XZ, AttrType::Three),
            Some(Action::Remove)
        );
        assert_eq!(
            resolve_compound(Code::XZ, AttrType::Two),
            Some(Action::Empty)
        );
        assert_eq!(
            resolve_compound(Code::XD, AttrType::One),
            Some(Action::Dummy)
        );
        assert_eq!(
            resolve_compound(Code::XD, AttrType::Two),
            Some(Action::Dummy)
        );
        assert_eq!(
            resolve_compound(Code::XZD, AttrType::TwoC),
            Some(Action::Empty)
        );
        assert_eq!(
            resolve_compound(Code::ZD, AttrType::Three),
            Some(Action::Empty)
        );
        assert_eq!(
            resolve_compound(Code::ZD, AttrType::OneC),
            Some(Action::Dummy)
        );
        for ty in [
            AttrType::One,
            AttrType::Two,
            AttrType::TwoC,
            AttrType::Three,
        ] {
            assert_eq!(resolve_compound(Code::XZU, ty), Some(Action::Keep));
        }
        assert_eq!(resolve_compound(Code::X, AttrType::One), None);
    }
}
