//! Encodes a dataset held in memory in the little-endian syntaxes, straight into a
//! byte buffer. dicom-rs's writer turns every element into tokens first (moving
//! each value through a queue) and `perf` put that, with its text conversion, at
//! about a tenth of a run over small files. This encoder writes the same bytes as
//! `DataSetWriter` with its default options (sequences and items of undefined
//! length, values padded to even length, the text codec switched by Specific
//! Character Set as it is met) for everything a de-identified dataset holds, and
//! declines ([`Unsupported`]) the rest, which the caller then hands to dicom-rs.
//! Tests compare the two on every test file.

use super::retype::has_short_length;
use dicom_core::header::Header;
use dicom_core::value::{PrimitiveValue, Value};
use dicom_core::{DataElement, Tag, VR};
use dicom_encoding::text::{DefaultCharacterSetCodec, SpecificCharacterSet, TextCodec};
use dicom_object::InMemDicomObject;

/// Something this encoder leaves to dicom-rs's writer (a value kind it does not
/// write, text a codec refuses, a length its VR cannot hold).
#[derive(Debug)]
pub struct Unsupported;

/// Appends `dataset` to `out` in explicit (or, with `explicit` false, implicit) VR
/// little endian. On `Err`, `out` holds a partial encoding: the caller discards it.
pub fn dataset(
    dataset: &InMemDicomObject,
    explicit: bool,
    out: &mut Vec<u8>,
) -> Result<(), Unsupported> {
    let mut e = Emitter {
        explicit,
        big: false,
        text: Text::new(SpecificCharacterSet::default()),
        out,
    };
    e.object(dataset)
}

/// Appends `dataset` to `out` in explicit VR big endian (retired, but archives
/// hold it, and an output keeps its input's syntax). On `Err`, as [`dataset`].
pub fn dataset_big_endian(
    dataset: &InMemDicomObject,
    out: &mut Vec<u8>,
) -> Result<(), Unsupported> {
    let mut e = Emitter {
        explicit: true,
        big: true,
        text: Text::new(SpecificCharacterSet::default()),
        out,
    };
    e.object(dataset)
}

/// Appends elements of a file meta group (explicit VR little endian, default
/// character repertoire) to `out`.
pub fn elements<'a, I, P>(
    elements: impl IntoIterator<Item = &'a DataElement<I, P>>,
    out: &mut Vec<u8>,
) -> Result<(), Unsupported>
where
    I: 'a,
    P: 'a,
{
    let mut e = Emitter {
        explicit: true,
        big: false,
        text: Text::new(SpecificCharacterSet::default()),
        out,
    };
    for elem in elements {
        match elem.value() {
            Value::Primitive(v) if elem.vr() != VR::SQ => e.primitive(elem.tag(), elem.vr(), v)?,
            _ => return Err(Unsupported),
        }
    }
    Ok(())
}

/// The text codec in force and whether it writes ASCII as it is.
struct Text {
    codec: SpecificCharacterSet,
    /// Every ASCII character encodes as itself (true of every DICOM repertoire
    /// except those where 0x5C or 0x7E mean something else, such as ISO-IR 13):
    /// ASCII text then skips the codec.
    ascii_identity: bool,
}

impl Text {
    fn new(codec: SpecificCharacterSet) -> Text {
        let ascii_identity = super::charset::ascii_identity(&codec).encode;
        Text {
            codec,
            ascii_identity,
        }
    }
}

struct Emitter<'o> {
    explicit: bool,
    /// Numbers (in headers and values) are written big endian.
    big: bool,
    text: Text,
    out: &'o mut Vec<u8>,
}

const ITEM: Tag = Tag(0xFFFE, 0xE000);
const ITEM_END: Tag = Tag(0xFFFE, 0xE00D);
const SEQUENCE_END: Tag = Tag(0xFFFE, 0xE0DD);
const UNDEFINED: u32 = 0xFFFF_FFFF;
const SPECIFIC_CHARACTER_SET: Tag = Tag(0x0008, 0x0005);
const PIXEL_DATA: Tag = Tag(0x7FE0, 0x0010);

/// VRs always written in the default character repertoire.
fn default_repertoire(vr: VR) -> bool {
    use VR::*;
    matches!(vr, AE | AS | CS | DA | DS | DT | IS | TM | UI)
}

impl Emitter<'_> {
    fn object(&mut self, obj: &InMemDicomObject) -> Result<(), Unsupported> {
        for elem in obj {
            let (tag, vr) = (elem.tag(), elem.vr());
            match elem.value() {
                Value::Sequence(seq) if vr == VR::SQ => {
                    self.header(tag, VR::SQ, UNDEFINED)?;
                    for item in seq.items() {
                        self.delimiter(ITEM, UNDEFINED);
                        self.object(item)?;
                        self.delimiter(ITEM_END, 0);
                    }
                    self.delimiter(SEQUENCE_END, 0);
                }
                Value::Primitive(v)
                    if vr != VR::SQ && !(tag == PIXEL_DATA && elem.header().len.is_undefined()) =>
                {
                    self.primitive(tag, vr, v)?
                }
                // Encapsulated pixel data in an item (an icon), a sequence under
                // another VR, a value under SQ: dicom-rs's writer decides.
                _ => return Err(Unsupported),
            }
        }
        Ok(())
    }

    /// A number's bytes in the syntax's order.
    fn ordered<const N: usize>(&self, le: [u8; N], be: [u8; N]) -> [u8; N] {
        if self.big { be } else { le }
    }

    fn u16(&mut self, v: u16) {
        let b = self.ordered(v.to_le_bytes(), v.to_be_bytes());
        self.out.extend_from_slice(&b);
    }

    fn u32(&mut self, v: u32) {
        let b = self.ordered(v.to_le_bytes(), v.to_be_bytes());
        self.out.extend_from_slice(&b);
    }

    fn delimiter(&mut self, tag: Tag, len: u32) {
        self.u16(tag.0);
        self.u16(tag.1);
        self.u32(len);
    }

    fn header(&mut self, tag: Tag, vr: VR, len: u32) -> Result<(), Unsupported> {
        self.u16(tag.0);
        self.u16(tag.1);
        if !self.explicit {
            self.u32(len);
        } else if has_short_length(vr) {
            let len = u16::try_from(len).map_err(|_| Unsupported)?;
            self.out.extend_from_slice(&vr.to_bytes());
            self.u16(len);
        } else {
            self.out.extend_from_slice(&vr.to_bytes());
            self.out.extend_from_slice(&[0, 0]);
            self.u32(len);
        }
        Ok(())
    }

    /// Writes a header whose length is patched once the value is written.
    fn value_with(
        &mut self,
        tag: Tag,
        vr: VR,
        pad: u8,
        write: impl FnOnce(&mut Self) -> Result<(), Unsupported>,
    ) -> Result<(), Unsupported> {
        let at = self.out.len();
        self.header(tag, vr, 0)?;
        let start = self.out.len();
        write(self)?;
        if (self.out.len() - start) % 2 == 1 {
            self.out.push(pad);
        }
        let len = u32::try_from(self.out.len() - start).map_err(|_| Unsupported)?;
        let len4 = self.ordered(len.to_le_bytes(), len.to_be_bytes());
        if !self.explicit {
            self.out[at + 4..at + 8].copy_from_slice(&len4);
        } else if has_short_length(vr) {
            let len = u16::try_from(len).map_err(|_| Unsupported)?;
            let len2 = self.ordered(len.to_le_bytes(), len.to_be_bytes());
            self.out[at + 6..at + 8].copy_from_slice(&len2);
        } else {
            self.out[at + 8..at + 12].copy_from_slice(&len4);
        }
        Ok(())
    }

    fn text(&mut self, vr: VR, text: &str) -> Result<(), Unsupported> {
        if text.is_ascii() && (default_repertoire(vr) || self.text.ascii_identity) {
            self.out.extend_from_slice(text.as_bytes());
            return Ok(());
        }
        let bytes = if default_repertoire(vr) {
            DefaultCharacterSetCodec.encode(text)
        } else {
            self.text.codec.encode(text)
        }
        .map_err(|_| Unsupported)?;
        self.out.extend_from_slice(&bytes);
        Ok(())
    }

    fn primitive(&mut self, tag: Tag, vr: VR, value: &PrimitiveValue) -> Result<(), Unsupported> {
        use PrimitiveValue as P;
        let text_pad = if vr == VR::UI { 0 } else { b' ' };
        match value {
            P::Str(s) => {
                self.value_with(tag, vr, text_pad, |e| e.text(vr, s))?;
                if tag == SPECIFIC_CHARACTER_SET {
                    self.switch_codec(s);
                }
            }
            P::Strs(texts) => {
                self.value_with(tag, vr, text_pad, |e| {
                    for (i, t) in texts.iter().enumerate() {
                        if i > 0 {
                            e.out.push(b'\\');
                        }
                        e.text(vr, t)?;
                    }
                    Ok(())
                })?;
                if tag == SPECIFIC_CHARACTER_SET
                    && let Some(first) = texts.first()
                {
                    self.switch_codec(first);
                }
            }
            // Numbers under DS or IS are written as text by dicom-rs.
            _ if matches!(vr, VR::DS | VR::IS) && !matches!(value, P::Empty) => {
                return Err(Unsupported);
            }
            P::Empty => self.header(tag, vr, 0)?,
            _ => {
                let pad = if matches!(vr, VR::DA | VR::DT | VR::TM) {
                    b' '
                } else {
                    0
                };
                self.value_with(tag, vr, pad, |e| e.binary(value))?;
            }
        }
        Ok(())
    }

    fn binary(&mut self, value: &PrimitiveValue) -> Result<(), Unsupported> {
        use PrimitiveValue as P;
        macro_rules! le {
            ($values:expr) => {
                for v in $values.iter() {
                    let b = self.ordered(v.to_le_bytes(), v.to_be_bytes());
                    self.out.extend_from_slice(&b);
                }
            };
        }
        match value {
            P::U8(v) => self.out.extend_from_slice(v),
            P::I16(v) => le!(v),
            P::U16(v) => le!(v),
            P::I32(v) => le!(v),
            P::U32(v) => le!(v),
            P::I64(v) => le!(v),
            P::U64(v) => le!(v),
            P::F32(v) => le!(v),
            P::F64(v) => le!(v),
            P::Tags(v) => {
                for t in v.iter() {
                    self.u16(t.0);
                    self.u16(t.1);
                }
            }
            // Dates and times held as values, not text: dicom-rs formats them.
            _ => return Err(Unsupported),
        }
        Ok(())
    }

    /// As dicom-rs does: the codec named by a Specific Character Set value applies
    /// to everything written after it; an unknown name leaves the codec as it was.
    fn switch_codec(&mut self, name: &str) {
        if let Some(codec) = SpecificCharacterSet::from_code(name) {
            self.text = Text::new(codec);
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use dicom_core::value::DataSetSequence;
    use dicom_core::{Length, dicom_value};
    use dicom_encoding::TransferSyntaxIndex;
    use dicom_parser::dataset::{DataSetWriter, IntoTokens};
    use dicom_transfer_syntax_registry::TransferSyntaxRegistry;

    /// dicom-rs's writer: what this encoder must match byte for byte.
    fn reference(obj: &InMemDicomObject, ts_uid: &str) -> Vec<u8> {
        let ts = TransferSyntaxRegistry.get(ts_uid).unwrap();
        let mut out = Vec::new();
        DataSetWriter::with_ts_cs(&mut out, ts, SpecificCharacterSet::default())
            .unwrap()
            .write_sequence(obj.clone().into_tokens())
            .unwrap();
        out
    }

    fn same_bytes(obj: &InMemDicomObject, what: &str) -> usize {
        let mut checked = 0;
        for (uid, explicit) in [("1.2.840.10008.1.2.1", true), ("1.2.840.10008.1.2", false)] {
            let mut ours = Vec::new();
            if dataset(obj, explicit, &mut ours).is_err() {
                continue;
            }
            assert!(ours == reference(obj, uid), "{what} in {uid}: bytes differ");
            checked += 1;
        }
        let mut ours = Vec::new();
        if dataset_big_endian(obj, &mut ours).is_ok() {
            let uid = "1.2.840.10008.1.2.2";
            assert!(ours == reference(obj, uid), "{what} in {uid}: bytes differ");
            checked += 1;
        }
        checked
    }

    #[test]
    fn every_test_file_encodes_as_dicom_rs_encodes_it() {
        let paths = crate::io::files_under(
            &std::path::Path::new(env!("CARGO_MANIFEST_DIR")).join("testdata"),
        );
        let (mut datasets, mut encoded) = (0, 0);
        for p in &paths {
            let Ok(crate::io::read::Classified::Dicom(src)) = crate::io::read::read(p) else {
                continue;
            };
            let src = *src;
            for obj in std::iter::once(&src.header).chain(src.trailing.as_ref()) {
                datasets += 1;
                encoded += same_bytes(obj, &p.display().to_string());
            }
        }
        // The three syntaxes of nearly every dataset go through this encoder, not
        // the fallback (a few hold values only dicom-rs writes).
        assert!(datasets > 40, "{datasets} datasets read");
        assert!(
            encoded * 10 > datasets * 3 * 9,
            "{encoded} of {} encoded",
            datasets * 3
        );
    }

    fn el(tag: (u16, u16), vr: VR, v: PrimitiveValue) -> dicom_core::DataElement<InMemDicomObject> {
        dicom_core::DataElement::new(Tag(tag.0, tag.1), vr, v)
    }

    #[test]
    fn values_of_every_kind_charsets_and_nesting_match_dicom_rs() {
        let item = |cs: Option<&str>| {
            let mut o = InMemDicomObject::new_empty();
            if let Some(cs) = cs {
                o.put(el((0x0008, 0x0005), VR::CS, PrimitiveValue::from(cs)));
            }
            o.put(el(
                (0x0010, 0x0010),
                VR::PN,
                PrimitiveValue::from("Müller^Jörg"),
            ));
            o.put(el((0x0008, 0x0100), VR::SH, PrimitiveValue::from("ABC")));
            o
        };
        let mut obj = InMemDicomObject::new_empty();
        obj.put(el(
            (0x0008, 0x0005),
            VR::CS,
            PrimitiveValue::from("ISO_IR 100"),
        ));
        obj.put(el((0x0008, 0x0018), VR::UI, PrimitiveValue::from("1.2.3")));
        obj.put(el(
            (0x0008, 0x0008),
            VR::CS,
            dicom_value!(Strs, ["ORIGINAL", "PRIMARY", "X"]),
        ));
        obj.put(el(
            (0x0010, 0x0010),
            VR::PN,
            PrimitiveValue::from("Ærø^Åse"),
        ));
        obj.put(el((0x0010, 0x1010), VR::AS, PrimitiveValue::from("045Y")));
        obj.put(el(
            (0x0010, 0x21B0),
            VR::LT,
            PrimitiveValue::from("odd\\text"),
        ));
        obj.put(el((0x0018, 0x0050), VR::DS, PrimitiveValue::Empty));
        obj.put(el((0x0028, 0x0010), VR::US, dicom_value!(U16, [512])));
        obj.put(el((0x0028, 0x0106), VR::SS, dicom_value!(I16, [-3, 7])));
        obj.put(el((0x0018, 0x6020), VR::SL, dicom_value!(I32, [-70000])));
        obj.put(el((0x0018, 0x6024), VR::UL, dicom_value!(U32, [70000, 1])));
        obj.put(el(
            (0x0018, 0x9089),
            VR::FD,
            dicom_value!(F64, [0.5, -1.25]),
        ));
        obj.put(el((0x0018, 0x9087), VR::FL, dicom_value!(F32, [1.5])));
        obj.put(el(
            (0x0020, 0x5000),
            VR::AT,
            dicom_value!(Tags, [Tag(0x0010, 0x0020)]),
        ));
        obj.put(el(
            (0x0029, 0x0010),
            VR::LO,
            PrimitiveValue::from("CREATOR"),
        ));
        obj.put(el((0x0029, 0x1001), VR::OB, dicom_value!(U8, [1, 2, 3])));
        obj.put(el((0x0029, 0x1002), VR::UN, dicom_value!(U8, [9])));
        obj.put(el((0x0029, 0x1003), VR::OW, dicom_value!(U16, [1, 2])));
        obj.put(el((0x0029, 0x1004), VR::OD, dicom_value!(F64, [2.0])));
        obj.put(el((0x0029, 0x1005), VR::SV, dicom_value!(I64, [-5])));
        obj.put(el((0x0029, 0x1006), VR::UV, dicom_value!(U64, [5])));
        obj.put(el((0x0029, 0x1007), VR::UT, PrimitiveValue::from("x")));
        obj.put(el(
            (0x0029, 0x1008),
            VR::UR,
            PrimitiveValue::from("http://a"),
        ));
        obj.put(el((0x0029, 0x1009), VR::UC, PrimitiveValue::from("naïve")));
        obj.put(dicom_core::DataElement::new(
            Tag(0x0040, 0x0275),
            VR::SQ,
            Value::from(DataSetSequence::new(
                vec![
                    item(None),
                    item(Some("ISO_IR 192")),
                    InMemDicomObject::new_empty(),
                ],
                Length(20),
            )),
        ));
        // After the item switched to UTF-8: dicom-rs keeps that codec from here on.
        obj.put(el((0x0040, 0x0280), VR::ST, PrimitiveValue::from("fin é")));
        obj.put(dicom_core::DataElement::new(
            Tag(0x0040, 0x0555),
            VR::SQ,
            Value::from(DataSetSequence::new(
                Vec::<InMemDicomObject>::new(),
                Length::UNDEFINED,
            )),
        ));
        assert_eq!(same_bytes(&obj, "built"), 3);
        // Latin-1 text is not ASCII: it went through the codec, as bytes E6 F8.
        let mut ours = Vec::new();
        dataset(&obj, true, &mut ours).unwrap();
        assert!(
            ours.windows(2).any(|w| w == [0xC6, b'r']),
            "Æ as ISO-8859-1"
        );
    }

    #[test]
    fn what_it_does_not_write_is_declined_not_written_wrongly() {
        let mut obj = InMemDicomObject::new_empty();
        obj.put(el((0x0018, 0x0050), VR::DS, dicom_value!(F64, [1.5])));
        assert!(dataset(&obj, true, &mut Vec::new()).is_err());
        let mut obj = InMemDicomObject::new_empty();
        obj.put(el(
            (0x0010, 0x0020),
            VR::LO,
            PrimitiveValue::from("x".repeat(70_000)),
        ));
        assert!(
            dataset(&obj, true, &mut Vec::new()).is_err(),
            "too long for LO"
        );
        assert!(
            dataset(&obj, false, &mut Vec::new()).is_ok(),
            "implicit VR has 4 bytes"
        );
        // Not ASCII under a default-repertoire VR: through the same codec as dicom-rs.
        let mut obj = InMemDicomObject::new_empty();
        obj.put(el((0x0008, 0x0020), VR::DA, PrimitiveValue::from("2020é")));
        assert_eq!(same_bytes(&obj, "DA"), 3);
    }

    #[test]
    fn a_file_meta_group_encodes_as_dicom_rs_encodes_it() {
        let meta = dicom_object::FileMetaTableBuilder::new()
            .media_storage_sop_class_uid("1.2.840.10008.5.1.4.1.1.2")
            .media_storage_sop_instance_uid("2.25.12345")
            .transfer_syntax("1.2.840.10008.1.2.1")
            .implementation_class_uid("2.25.9")
            .implementation_version_name("DICOM_DEID_010")
            .source_application_entity_title("SRC")
            .build()
            .unwrap();
        let mut reference = Vec::new();
        meta.write(&mut reference).unwrap();
        let elems: Vec<_> = meta.into_element_iter().collect();
        let mut ours = Vec::new();
        elements(&elems, &mut ours).unwrap();
        assert_eq!(ours, reference);
    }
}
