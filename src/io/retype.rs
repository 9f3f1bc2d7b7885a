//! Standard attributes stored with VR UN (a toolkit that did not know them, or an
//! explicit VR file written from an implicit one) get their dictionary VR back at
//! read time. Rules already match by tag; this is for what is kept: a SOP Class
//! UID left as UN bytes cannot go into the file meta group, and a kept UN value is
//! opaque to every reader downstream.
//!
//! Each value is re-read through dicom-rs as a one-element implicit VR little
//! endian dataset, which is exactly what a UN value holds (PS3.5 6.2.2), with the
//! dataset's Specific Character Set in front so text decodes as it should.

use dicom_core::dictionary::{DataDictionary, DataDictionaryEntry, VirtualVr};
use dicom_core::header::Header;
use dicom_core::value::{PrimitiveValue, Value};
use dicom_core::{DataElement, Tag, VR};
use dicom_dictionary_std::StandardDataDictionary;
use dicom_encoding::TransferSyntax;
use dicom_encoding::transfer_syntax::TransferSyntaxIndex;
use dicom_object::InMemDicomObject;
use dicom_transfer_syntax_registry::TransferSyntaxRegistry;

const SPECIFIC_CHARACTER_SET: Tag = Tag(0x0008, 0x0005);
const IMPLICIT_VR_LE: &str = "1.2.840.10008.1.2";

/// Retypes, at every depth up to `max_depth`, the standard attributes of `obj`
/// stored as UN whose dictionary VR is known; returns how many. Values that do not
/// parse as their dictionary VR stay UN. Big endian datasets are left alone (a UN
/// value there has no defined byte order to re-read it with).
pub fn standard_un(obj: &mut InMemDicomObject, ts: &TransferSyntax, max_depth: usize) -> usize {
    if ts.endianness() != dicom_encoding::Endianness::Little {
        return 0;
    }
    let Some(implicit) = TransferSyntaxRegistry.get(IMPLICIT_VR_LE) else {
        return 0;
    };
    let charset = obj.get(SPECIFIC_CHARACTER_SET).cloned();
    let mut count = 0;
    retype_in(obj, implicit, charset.as_ref(), 0, max_depth, &mut count);
    count
}

fn retype_in(
    obj: &mut InMemDicomObject,
    implicit: &TransferSyntax,
    charset: Option<&DataElement<InMemDicomObject>>,
    depth: usize,
    max_depth: usize,
    count: &mut usize,
) {
    if depth > max_depth {
        return;
    }
    // An item may declare its own character set.
    let own = obj.get(SPECIFIC_CHARACTER_SET).cloned();
    let charset = own.as_ref().or(charset);
    let un: Vec<(Tag, VR)> = obj
        .iter()
        .filter(|e| e.vr() == VR::UN)
        .filter_map(|e| Some((e.tag(), dictionary_vr(e.tag())?)))
        .collect();
    for (tag, vr) in un {
        let retyped = match obj.get(tag).map(|e| e.value()) {
            Some(Value::Primitive(PrimitiveValue::U8(bytes))) => {
                reread(tag, bytes, implicit, charset)
            }
            Some(Value::Primitive(PrimitiveValue::Empty)) if vr != VR::SQ => {
                Some(DataElement::new(tag, vr, PrimitiveValue::Empty))
            }
            _ => None,
        };
        if let Some(e) = retyped {
            obj.put(e);
            *count += 1;
        }
    }
    let sequences: Vec<Tag> = obj
        .iter()
        .filter(|e| e.vr() == VR::SQ)
        .map(|e| e.tag())
        .collect();
    for tag in sequences {
        obj.update_value(tag, |v| {
            if let Some(items) = v.items_mut() {
                for item in items.iter_mut() {
                    retype_in(item, implicit, charset, depth + 1, max_depth, count);
                }
            }
        });
    }
}

/// The dictionary VR of a standard attribute that has exactly one (SQ included: a
/// sequence stored as UN with a defined length); None for private, meta, item and
/// Pixel Data tags and group lengths.
fn dictionary_vr(tag: Tag) -> Option<VR> {
    if tag.0 % 2 == 1 || tag.0 == 0x0002 || tag.0 == 0xFFFE || tag.0 == 0x7FE0 || tag.1 == 0 {
        return None;
    }
    match StandardDataDictionary.by_tag(tag)?.vr() {
        VirtualVr::Exact(vr) if vr != VR::UN => Some(vr),
        _ => None,
    }
}

fn reread(
    tag: Tag,
    value: &[u8],
    implicit: &TransferSyntax,
    charset: Option<&DataElement<InMemDicomObject>>,
) -> Option<DataElement<InMemDicomObject>> {
    let len = u32::try_from(value.len()).ok()?;
    let mut mini = Vec::with_capacity(value.len() + 32);
    if let Some(cs) = charset
        && tag != SPECIFIC_CHARACTER_SET
    {
        let text = cs.to_str().ok()?;
        let mut bytes = text.as_bytes().to_vec();
        if bytes.len() % 2 == 1 {
            bytes.push(b' ');
        }
        push_implicit(&mut mini, SPECIFIC_CHARACTER_SET, &bytes);
    }
    mini.extend_from_slice(&tag.0.to_le_bytes());
    mini.extend_from_slice(&tag.1.to_le_bytes());
    mini.extend_from_slice(&len.to_le_bytes());
    mini.extend_from_slice(value);
    let parsed = InMemDicomObject::read_dataset_with_ts(&mini[..], implicit).ok()?;
    let e = parsed.get(tag)?;
    (e.vr() != VR::UN).then(|| e.clone())
}

fn push_implicit(out: &mut Vec<u8>, tag: Tag, value: &[u8]) {
    out.extend_from_slice(&tag.0.to_le_bytes());
    out.extend_from_slice(&tag.1.to_le_bytes());
    out.extend_from_slice(&(value.len() as u32).to_le_bytes());
    out.extend_from_slice(value);
}

#[cfg(test)]
mod tests {
    use super::*;
    use dicom_core::dicom_value;

    #[test]
    fn standard_un_values_get_their_dictionary_vr_at_every_depth() {
        let ts = TransferSyntaxRegistry
            .get("1.2.840.10008.1.2.1")
            .expect("explicit VR LE");
        let mut item = InMemDicomObject::new_empty();
        item.put(DataElement::new(
            Tag(0x0010, 0x0010),
            VR::UN,
            PrimitiveValue::U8(b"M\xfcller^Hans ".to_vec().into()),
        ));
        let mut obj = InMemDicomObject::new_empty();
        obj.put(DataElement::new(
            SPECIFIC_CHARACTER_SET,
            VR::CS,
            dicom_value!(Str, "ISO_IR 100"),
        ));
        obj.put(DataElement::new(
            Tag(0x0008, 0x0016),
            VR::UN,
            PrimitiveValue::U8(b"1.2.840.10008.5.1.4.1.1.2\0".to_vec().into()),
        ));
        obj.put(DataElement::new(
            Tag(0x0028, 0x0010),
            VR::UN,
            PrimitiveValue::U8(vec![0x00, 0x02].into()),
        ));
        obj.put(DataElement::new(
            Tag(0x0008, 0x0070),
            VR::UN,
            PrimitiveValue::Empty,
        ));
        obj.put(DataElement::new(
            Tag(0x0009, 0x1001),
            VR::UN,
            PrimitiveValue::U8(b"private".to_vec().into()),
        ));
        obj.put(DataElement::new(
            Tag(0x0008, 0x1140),
            VR::SQ,
            dicom_core::value::DataSetSequence::from(vec![item]),
        ));
        assert_eq!(standard_un(&mut obj, ts, 8), 4);
        assert_eq!(obj.get(Tag(0x0008, 0x0070)).unwrap().vr(), VR::LO);
        let class = obj.get(Tag(0x0008, 0x0016)).unwrap();
        assert_eq!(class.vr(), VR::UI);
        assert_eq!(
            class.to_str().unwrap().trim_end_matches('\0'),
            "1.2.840.10008.5.1.4.1.1.2"
        );
        let rows = obj.get(Tag(0x0028, 0x0010)).unwrap();
        assert_eq!((rows.vr(), rows.to_int::<u16>().unwrap()), (VR::US, 512));
        assert_eq!(obj.get(Tag(0x0009, 0x1001)).unwrap().vr(), VR::UN);
        let seq = obj.get(Tag(0x0008, 0x1140)).unwrap();
        let name = seq.items().unwrap()[0].get(Tag(0x0010, 0x0010)).unwrap();
        assert_eq!(name.vr(), VR::PN);
        assert_eq!(name.to_str().unwrap().trim_end(), "Müller^Hans");
    }
}
