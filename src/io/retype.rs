//! Standard attributes stored with VR UN (a toolkit that did not know them, or an
//! explicit VR file written from an implicit one) get their dictionary VR back at
//! read time. Rules already match by tag; this is for what is kept: a SOP Class
//! UID left as UN bytes cannot go into the file meta group, and a kept UN value is
//! opaque to every reader downstream.
//!
//! Each value is re-read through dicom-rs as a one-element implicit VR little
//! endian dataset, which is exactly what a UN value holds (PS3.5 6.2.2), with the
//! dataset's Specific Character Set in front so text decodes as it should.
//!
//! The other way, at write time: a value too long for its VR's 2-byte explicit VR
//! length field is written as UN ([`long_values_to_un`]), its bytes encoded the
//! same way in reverse.

use dicom_core::dictionary::{DataDictionaryEntry, VirtualVr};
use dicom_core::header::Header;
use dicom_core::value::{PrimitiveValue, Value};
use dicom_core::{DataElement, Tag, VR};
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
    // Most files hold no UN at all: one look through them by reference first
    // (the rewrite clones each item's character set and lists its sequences).
    if !any_un(obj, 0, max_depth) {
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

/// Whether an element stored as UN sits anywhere [`retype_in`] looks.
fn any_un(obj: &InMemDicomObject, depth: usize, max_depth: usize) -> bool {
    depth <= max_depth
        && obj.iter().any(|e| {
            e.vr() == VR::UN
                || e.items()
                    .is_some_and(|items| items.iter().any(|i| any_un(i, depth + 1, max_depth)))
        })
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
    match crate::dictionary::by_tag(tag)?.vr() {
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

/// The largest value an explicit VR element with a 2-byte length field can hold.
const MAX_SHORT_VALUE: usize = u16::MAX as usize;
/// A value whose in-memory size is below this cannot encode past
/// [`MAX_SHORT_VALUE`] bytes: a character set at most about triples UTF-8 text
/// (ISO 2022 escapes around every character), and a binary DS/IS number written
/// as text takes at most 4 times its bytes. Only larger values are encoded to be
/// measured.
const SURELY_SHORT: usize = MAX_SHORT_VALUE / 8;

/// Retypes to UN, at every depth up to `max_depth`, the elements whose VR has a
/// 2-byte length field in explicit VR but whose value is longer than 65,535 bytes
/// (an RTSTRUCT's Contour Data read from implicit VR, or read back from UN by
/// [`standard_un`]). PS3.5 6.2.2 says such a value is written with VR UN, whose
/// length field is 4 bytes; the value bytes are what the element's own VR encodes
/// (read back to their VR by pydicom, dcmtk `+uc` and [`standard_un`]). Returns how
/// many. Only for explicit VR little endian: implicit VR has 4-byte lengths
/// throughout, and a UN value has no defined byte order in big endian.
pub fn long_values_to_un(
    obj: &mut InMemDicomObject,
    ts: &TransferSyntax,
    max_depth: usize,
) -> usize {
    if ts.uid() == IMPLICIT_VR_LE || ts.endianness() != dicom_encoding::Endianness::Little {
        return 0;
    }
    // The common case, nothing long, costs one walk and no allocation.
    if !any_long(obj, 0, max_depth) {
        return 0;
    }
    let Some(implicit) = TransferSyntaxRegistry.get(IMPLICIT_VR_LE) else {
        return 0;
    };
    let charset = obj.get(SPECIFIC_CHARACTER_SET).cloned();
    let mut count = 0;
    widen_in(obj, implicit, charset.as_ref(), 0, max_depth, &mut count);
    count
}

/// VRs whose explicit VR header holds a 2-byte length (PS3.5 7.1.2).
pub(super) fn has_short_length(vr: VR) -> bool {
    !super::cp246::is_long_form(&vr.to_bytes())
}

fn maybe_long(e: &DataElement<InMemDicomObject>) -> bool {
    has_short_length(e.vr())
        && matches!(e.value(), Value::Primitive(p) if p.calculate_byte_len() > SURELY_SHORT)
}

fn any_long(obj: &InMemDicomObject, depth: usize, max_depth: usize) -> bool {
    depth <= max_depth
        && obj.iter().any(|e| {
            maybe_long(e)
                || e.items()
                    .is_some_and(|items| items.iter().any(|i| any_long(i, depth + 1, max_depth)))
        })
}

fn widen_in(
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
    let own = obj.get(SPECIFIC_CHARACTER_SET).cloned();
    let charset = own.as_ref().or(charset);
    let long: Vec<Tag> = obj
        .iter()
        .filter(|e| maybe_long(e))
        .map(|e| e.tag())
        .collect();
    for tag in long {
        let Some(e) = obj.get(tag) else { continue };
        if let Some(bytes) = encoded_value(e, implicit, charset)
            && bytes.len() > MAX_SHORT_VALUE
        {
            obj.put(DataElement::new(
                tag,
                VR::UN,
                PrimitiveValue::U8(bytes.into()),
            ));
            *count += 1;
        }
    }
    let sequences: Vec<Tag> = obj
        .iter()
        .filter(|e| {
            e.items()
                .is_some_and(|items| items.iter().any(|i| any_long(i, depth + 1, max_depth)))
        })
        .map(|e| e.tag())
        .collect();
    for tag in sequences {
        obj.update_value(tag, |v| {
            if let Some(items) = v.items_mut() {
                for item in items.iter_mut() {
                    widen_in(item, implicit, charset, depth + 1, max_depth, count);
                }
            }
        });
    }
}

/// The value bytes `e` is written with under its own VR (character set, padding,
/// binary DS/IS as text, little endian numbers): written by dicom-rs as a
/// one-element implicit VR little endian dataset, the mirror of [`reread`], after
/// the Specific Character Set in effect.
fn encoded_value(
    e: &DataElement<InMemDicomObject>,
    implicit: &TransferSyntax,
    charset: Option<&DataElement<InMemDicomObject>>,
) -> Option<Vec<u8>> {
    use dicom_encoding::text::SpecificCharacterSet;
    use dicom_parser::dataset::{DataSetWriter, IntoTokens};
    let mut mini = InMemDicomObject::new_empty();
    if let Some(cs) = charset
        && e.tag() != SPECIFIC_CHARACTER_SET
    {
        mini.put(cs.clone());
    }
    mini.put(e.clone());
    let mut out = Vec::new();
    DataSetWriter::with_ts_cs(&mut out, implicit, SpecificCharacterSet::default())
        .ok()?
        .write_sequence(mini.into_tokens())
        .ok()?;
    // Implicit VR little endian: tag (4 bytes), length (4 bytes), value.
    let mut at = 0usize;
    loop {
        let head = out.get(at..at + 8)?;
        let tag = Tag(
            u16::from_le_bytes([head[0], head[1]]),
            u16::from_le_bytes([head[2], head[3]]),
        );
        let len = u32::from_le_bytes([head[4], head[5], head[6], head[7]]) as usize;
        let value = at + 8..at + 8 + len;
        if tag == e.tag() {
            out.truncate(value.end);
            return Some(out.split_off(value.start));
        }
        at = value.end;
    }
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

    #[test]
    fn long_values_become_un_in_their_character_set_and_come_back() {
        let ts = TransferSyntaxRegistry
            .get("1.2.840.10008.1.2.1")
            .expect("explicit VR LE");
        // 70,000 characters of Latin-1 text (one byte each), nested in an item.
        let long = "M\u{fc}ller ".repeat(10_000);
        let mut item = InMemDicomObject::new_empty();
        item.put(DataElement::new(
            Tag(0x0008, 0x1030),
            VR::LO,
            PrimitiveValue::from(long.clone()),
        ));
        item.put(DataElement::new(
            Tag(0x0008, 0x0070),
            VR::LO,
            dicom_value!(Str, "short"),
        ));
        let mut obj = InMemDicomObject::new_empty();
        obj.put(DataElement::new(
            SPECIFIC_CHARACTER_SET,
            VR::CS,
            dicom_value!(Str, "ISO_IR 100"),
        ));
        obj.put(DataElement::new(
            Tag(0x0008, 0x1140),
            VR::SQ,
            dicom_core::value::DataSetSequence::from(vec![item]),
        ));
        let implicit = TransferSyntaxRegistry.get(IMPLICIT_VR_LE).unwrap();
        assert_eq!(long_values_to_un(&mut obj.clone(), implicit, 8), 0);
        assert_eq!(long_values_to_un(&mut obj, ts, 8), 1);
        let item = &obj.get(Tag(0x0008, 0x1140)).unwrap().items().unwrap()[0];
        let e = item.get(Tag(0x0008, 0x1030)).unwrap();
        assert_eq!(e.vr(), VR::UN);
        // ISO_IR 100 bytes (0xFC for the u umlaut), even length.
        let bytes = e.to_bytes().unwrap();
        assert_eq!(bytes.len(), 70_000);
        assert_eq!(&bytes[..7], b"M\xfcller ");
        assert_eq!(item.get(Tag(0x0008, 0x0070)).unwrap().vr(), VR::LO);
        // The reader's retype gives the value back as it was.
        assert_eq!(standard_un(&mut obj, ts, 8), 1);
        let item = &obj.get(Tag(0x0008, 0x1140)).unwrap().items().unwrap()[0];
        let e = item.get(Tag(0x0008, 0x1030)).unwrap();
        assert_eq!(e.vr(), VR::LO);
        assert_eq!(e.to_str().unwrap().trim_end(), long.trim_end());
    }
}
