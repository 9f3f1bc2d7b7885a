//! A dataset flattened into its elements at every depth, each with its tag path,
//! the VR it is judged by and its private creator, plus value helpers. Written for
//! the check alone: it shares nothing with the de-identification engine.

use dicom_core::dictionary::{DataDictionary, DataDictionaryEntry, VirtualVr};
use dicom_core::value::Value;
use dicom_core::{PrimitiveValue, Tag, VR};
use dicom_dictionary_std::StandardDataDictionary;
use dicom_object::InMemDicomObject;
use dicom_object::mem::InMemElement;

/// Deeper nesting is refused by the reader already; this only bounds recursion.
const MAX_DEPTH: usize = 128;

/// One element of a dataset, at any depth.
pub struct Visit<'a> {
    /// `(gggg,eeee)`, or `(gggg,eeee)[i]/(gggg,eeee)` inside sequence items.
    pub path: String,
    pub tag: Tag,
    /// The dictionary VR for a standard attribute stored as UN, else the VR read.
    pub vr: VR,
    pub element: &'a InMemElement,
    /// Private creator of the block a private element sits in.
    pub creator: Option<String>,
}

impl Visit<'_> {
    pub fn is_private(&self) -> bool {
        self.tag.0 % 2 == 1
    }

    /// (gggg,0010)-(gggg,00FF) in an odd group.
    pub fn is_private_creator(&self) -> bool {
        self.is_private() && (0x0010..=0x00FF).contains(&self.tag.1)
    }

    pub fn items(&self) -> &[InMemDicomObject] {
        self.element.value().items().unwrap_or(&[])
    }

    pub fn is_sequence(&self) -> bool {
        matches!(self.element.value(), Value::Sequence(_))
    }

    pub fn strings(&self) -> Vec<String> {
        strings(self.element, self.vr)
    }
}

pub fn tag_u32(tag: Tag) -> u32 {
    (u32::from(tag.0) << 16) | u32::from(tag.1)
}

pub fn tag_path(prefix: &str, tag: Tag) -> String {
    format!("{prefix}({:04X},{:04X})", tag.0, tag.1)
}

/// Every element of `obj` in document order, sequences before their items.
pub fn flatten<'a>(obj: &'a InMemDicomObject, out: &mut Vec<Visit<'a>>) {
    flatten_item(obj, "", 0, out);
}

fn flatten_item<'a>(
    obj: &'a InMemDicomObject,
    prefix: &str,
    depth: usize,
    out: &mut Vec<Visit<'a>>,
) {
    if depth > MAX_DEPTH {
        return;
    }
    let creators = private_creators(obj);
    for element in obj.iter() {
        let tag = element.header().tag;
        let path = tag_path(prefix, tag);
        let creator = creator_of(&creators, tag);
        let items = element.value().items().unwrap_or(&[]);
        out.push(Visit {
            path: path.clone(),
            tag,
            vr: effective_vr(tag, element.header().vr),
            element,
            creator,
        });
        for (i, item) in items.iter().enumerate() {
            flatten_item(item, &format!("{path}[{i}]/"), depth + 1, out);
        }
    }
}

/// (group, block, creator) for every private creator element of one item.
fn private_creators(obj: &InMemDicomObject) -> Vec<(u16, u16, String)> {
    obj.iter()
        .map(|e| (e.header().tag, e))
        .filter(|(t, _)| t.0 % 2 == 1 && (0x0010..=0x00FF).contains(&t.1))
        .map(|(t, e)| {
            let name = strings(e, VR::LO).into_iter().next().unwrap_or_default();
            (t.0, t.1, name)
        })
        .collect()
}

fn creator_of(creators: &[(u16, u16, String)], tag: Tag) -> Option<String> {
    if tag.0.is_multiple_of(2) || tag.1 < 0x1000 {
        return None;
    }
    let block = tag.1 >> 8;
    creators
        .iter()
        .find(|(g, b, _)| *g == tag.0 && *b == block)
        .map(|(_, _, c)| c.clone())
}

/// Rules apply by tag, never by VR: a standard attribute stored as UN is judged by
/// its dictionary VR.
pub fn effective_vr(tag: Tag, vr: VR) -> VR {
    if vr != VR::UN || tag.0 % 2 == 1 {
        return vr;
    }
    match StandardDataDictionary.by_tag(tag).map(|e| e.vr()) {
        Some(VirtualVr::Exact(v)) => v,
        _ => VR::UN,
    }
}

/// VRs whose value is text.
pub fn is_string_vr(vr: VR) -> bool {
    matches!(
        vr,
        VR::AE
            | VR::AS
            | VR::CS
            | VR::DA
            | VR::DS
            | VR::DT
            | VR::IS
            | VR::LO
            | VR::LT
            | VR::PN
            | VR::SH
            | VR::ST
            | VR::TM
            | VR::UC
            | VR::UI
            | VR::UR
            | VR::UT
    )
}

/// Drops the padding DICOM allows around a value.
pub fn trim_value(s: &str) -> &str {
    s.trim_matches(|c: char| c == ' ' || c == '\0')
}

/// The element's values as text: decoded strings for text VRs, and bytes read as
/// text for UN and OB (a text attribute stored as UN, a private text blob). Other
/// binary values yield nothing.
pub fn strings(element: &InMemElement, vr: VR) -> Vec<String> {
    let Value::Primitive(p) = element.value() else {
        return Vec::new();
    };
    match p {
        PrimitiveValue::Empty => Vec::new(),
        PrimitiveValue::U8(bytes) => bytes_as_text(bytes),
        _ if is_string_vr(vr) || is_string_vr(element.header().vr) => p
            .to_multi_str()
            .iter()
            .map(|s| trim_value(s).to_string())
            .collect(),
        _ => Vec::new(),
    }
}

/// Bytes as text, split on the value delimiter; non-UTF-8 bytes are read as
/// Latin-1 so no byte is lost to the search.
pub fn bytes_as_text(bytes: &[u8]) -> Vec<String> {
    let text = match std::str::from_utf8(bytes) {
        Ok(s) => s.to_string(),
        Err(_) => bytes.iter().map(|&b| char::from(b)).collect(),
    };
    text.split('\\')
        .map(|s| trim_value(s).to_string())
        .collect()
}

/// True when the element carries anything: items, fragments, non-blank text or
/// binary data.
pub fn has_content(element: &InMemElement, vr: VR) -> bool {
    match element.value() {
        Value::Sequence(s) => !s.items().is_empty(),
        Value::PixelSequence(_) => true,
        Value::Primitive(PrimitiveValue::Empty) => false,
        Value::Primitive(PrimitiveValue::U8(bytes)) if is_string_vr(vr) || vr == VR::UN => {
            bytes_as_text(bytes).iter().any(|s| !s.is_empty())
        }
        Value::Primitive(p) if is_string_vr(vr) => {
            p.to_multi_str().iter().any(|s| !trim_value(s).is_empty())
        }
        Value::Primitive(p) => p.multiplicity() > 0,
    }
}

/// True when every number in a binary numeric value is zero (or there is none).
pub fn is_zero_number(p: &PrimitiveValue) -> bool {
    match p {
        PrimitiveValue::Empty => true,
        PrimitiveValue::U8(v) => v.iter().all(|x| *x == 0),
        PrimitiveValue::U16(v) => v.iter().all(|x| *x == 0),
        PrimitiveValue::I16(v) => v.iter().all(|x| *x == 0),
        PrimitiveValue::U32(v) => v.iter().all(|x| *x == 0),
        PrimitiveValue::I32(v) => v.iter().all(|x| *x == 0),
        PrimitiveValue::U64(v) => v.iter().all(|x| *x == 0),
        PrimitiveValue::I64(v) => v.iter().all(|x| *x == 0),
        PrimitiveValue::F32(v) => v.iter().all(|x| *x == 0.0),
        PrimitiveValue::F64(v) => v.iter().all(|x| *x == 0.0),
        PrimitiveValue::Tags(v) => v.is_empty(),
        other => other
            .to_multi_str()
            .iter()
            .all(|s| trim_value(s).is_empty()),
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use dicom_core::DataElement;
    use dicom_core::value::DataSetSequence;

    fn seq(tag: Tag, items: Vec<InMemDicomObject>) -> InMemElement {
        DataElement::new(tag, VR::SQ, Value::from(DataSetSequence::from(items)))
    }

    #[test]
    fn paths_name_every_depth_and_private_creators() {
        let inner = InMemDicomObject::from_element_iter([
            DataElement::new(Tag(0x0009, 0x0010), VR::LO, PrimitiveValue::from("ACME ")),
            DataElement::new(Tag(0x0009, 0x1001), VR::PN, PrimitiveValue::from("X")),
        ]);
        let obj = InMemDicomObject::from_element_iter([seq(Tag(0x0040, 0xA730), vec![inner])]);
        let mut v = Vec::new();
        flatten(&obj, &mut v);
        let paths: Vec<&str> = v.iter().map(|e| e.path.as_str()).collect();
        assert_eq!(
            paths,
            [
                "(0040,A730)",
                "(0040,A730)[0]/(0009,0010)",
                "(0040,A730)[0]/(0009,1001)"
            ]
        );
        assert_eq!(v[2].creator.as_deref(), Some("ACME"));
        assert!(v[1].is_private_creator());
    }

    #[test]
    fn un_standard_attributes_take_their_dictionary_vr() {
        assert_eq!(effective_vr(Tag(0x0010, 0x0010), VR::UN), VR::PN);
        assert_eq!(effective_vr(Tag(0x0011, 0x1010), VR::UN), VR::UN);
        assert_eq!(bytes_as_text(b"DOE^JOHN \\B\0"), ["DOE^JOHN", "B"]);
    }
}
