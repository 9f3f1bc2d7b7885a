//! Sequences stored as `UN` with an undefined length (CP-246, PS3.5 6.2.2): a
//! toolkit that converted implicit VR to explicit VR without knowing a (usually
//! private) sequence wrote it as UN, and its items stayed in implicit VR little
//! endian. dicom-rs 0.10.1 reads those items as explicit VR and fails, so such a
//! file could not be de-identified at all.
//!
//! [`repair`] rewrites the bytes of an explicit VR little endian dataset (up to its
//! top-level Pixel Data) so that the ordinary parser reads it: each such element
//! becomes an SQ of undefined length whose items are re-encoded in explicit VR, with
//! the dictionary VR of standard attributes (UN for private ones and for values
//! that do not fit a short-length VR). Every other byte is copied unchanged, except
//! that sequences and items on the way get undefined lengths (so that no length has
//! to be recomputed). Bounded: nesting depth, and every length against the input.

use dicom_core::dictionary::{DataDictionary, DataDictionaryEntry, VirtualVr};
use dicom_core::{Tag, VR};
use dicom_dictionary_std::StandardDataDictionary;

const UNDEFINED: u32 = 0xFFFF_FFFF;
const ITEM: (u16, u16) = (0xFFFE, 0xE000);
const ITEM_END: (u16, u16) = (0xFFFE, 0xE00D);
const SEQ_END: (u16, u16) = (0xFFFE, 0xE0DD);

/// The repaired dataset.
pub struct Repaired {
    /// The dataset up to (not including) top-level Pixel Data, or all of it.
    pub bytes: Vec<u8>,
    /// Offset in the input of the top-level Pixel Data element, when there is one.
    pub pixel_at: Option<usize>,
    /// How many UN sequences of undefined length were rewritten.
    pub sequences: usize,
}

/// Why the bytes could not be repaired; the caller reports its own, original error.
#[derive(Debug)]
pub struct NotRepairable;

type Result<T> = std::result::Result<T, NotRepairable>;

/// Rewrites `data`, an explicit VR little endian dataset; None when it holds no
/// UN sequence of undefined length (nothing to repair).
pub fn repair(data: &[u8], max_depth: usize) -> Result<Option<Repaired>> {
    let mut r = Rewriter {
        input: data,
        pos: 0,
        out: Vec::with_capacity(data.len() + 256),
        sequences: 0,
        max_depth,
    };
    let pixel_at = r.explicit_dataset(None, 0, true)?;
    if r.sequences == 0 {
        return Ok(None);
    }
    Ok(Some(Repaired {
        bytes: r.out,
        pixel_at,
        sequences: r.sequences,
    }))
}

struct Rewriter<'a> {
    input: &'a [u8],
    pos: usize,
    out: Vec<u8>,
    sequences: usize,
    max_depth: usize,
}

/// VRs whose explicit VR header has a 4-byte length (PS3.5 Table 7.1-1).
pub(crate) fn is_long_form(vr: &[u8; 2]) -> bool {
    matches!(
        vr,
        b"OB"
            | b"OD"
            | b"OF"
            | b"OL"
            | b"OV"
            | b"OW"
            | b"SQ"
            | b"UC"
            | b"UN"
            | b"UR"
            | b"UT"
            | b"SV"
            | b"UV"
    )
}

impl Rewriter<'_> {
    fn take(&mut self, n: usize) -> Result<&[u8]> {
        let end = self.pos.checked_add(n).ok_or(NotRepairable)?;
        let s = self.input.get(self.pos..end).ok_or(NotRepairable)?;
        self.pos = end;
        Ok(s)
    }

    fn u16(&mut self) -> Result<u16> {
        let b = self.take(2)?;
        Ok(u16::from_le_bytes([b[0], b[1]]))
    }

    fn u32(&mut self) -> Result<u32> {
        let b = self.take(4)?;
        Ok(u32::from_le_bytes([b[0], b[1], b[2], b[3]]))
    }

    fn tag(&mut self) -> Result<(u16, u16)> {
        Ok((self.u16()?, self.u16()?))
    }

    fn at_end(&self, end: Option<usize>) -> bool {
        match end {
            Some(e) => self.pos >= e,
            None => self.pos >= self.input.len(),
        }
    }

    /// The end offset of a value of `len` bytes starting here, checked against the
    /// input and the enclosing end.
    fn bounded(&self, len: u32, end: Option<usize>) -> Result<usize> {
        let e = self.pos.checked_add(len as usize).ok_or(NotRepairable)?;
        if e > self.input.len() || end.is_some_and(|outer| e > outer) {
            return Err(NotRepairable);
        }
        Ok(e)
    }

    fn put_tag(&mut self, (g, e): (u16, u16)) {
        self.out.extend_from_slice(&g.to_le_bytes());
        self.out.extend_from_slice(&e.to_le_bytes());
    }

    fn put_long_header(&mut self, tag: (u16, u16), vr: &[u8; 2], len: u32) {
        self.put_tag(tag);
        self.out.extend_from_slice(vr);
        self.out.extend_from_slice(&[0, 0]);
        self.out.extend_from_slice(&len.to_le_bytes());
    }

    fn put_delimiter(&mut self, tag: (u16, u16)) {
        self.put_tag(tag);
        self.out.extend_from_slice(&[0; 4]);
    }

    fn copy(&mut self, from: usize) {
        self.out.extend_from_slice(&self.input[from..self.pos]);
    }

    /// An explicit VR dataset until `end`, an item delimiter (consumed, not written),
    /// or, at the top level, Pixel Data (not consumed; its offset is returned).
    fn explicit_dataset(
        &mut self,
        end: Option<usize>,
        depth: usize,
        top: bool,
    ) -> Result<Option<usize>> {
        while !self.at_end(end) {
            let start = self.pos;
            let tag = self.tag()?;
            if tag == ITEM_END && !top {
                self.u32()?;
                return Ok(None);
            }
            if top && tag.0 == 0x7FE0 && matches!(tag.1, 0x0008 | 0x0009 | 0x0010) {
                self.pos = start;
                return Ok(Some(start));
            }
            let vr_bytes = self.take(2)?;
            let vr = [vr_bytes[0], vr_bytes[1]];
            VR::from_binary(vr).ok_or(NotRepairable)?;
            let len = if is_long_form(&vr) {
                self.take(2)?;
                self.u32()?
            } else {
                u32::from(self.u16()?)
            };
            match (&vr, len) {
                (b"UN", UNDEFINED) => {
                    self.sequences += 1;
                    self.put_long_header(tag, b"SQ", UNDEFINED);
                    self.items(None, depth + 1, true)?;
                    self.put_delimiter(SEQ_END);
                }
                (b"SQ", _) => {
                    self.put_long_header(tag, b"SQ", UNDEFINED);
                    let seq_end = if len == UNDEFINED {
                        None
                    } else {
                        Some(self.bounded(len, end)?)
                    };
                    self.items(seq_end, depth + 1, false)?;
                    self.put_delimiter(SEQ_END);
                }
                (_, UNDEFINED) => {
                    // Encapsulated pixel data below the top level (an icon image):
                    // fragments with defined lengths, copied as they are.
                    self.fragments()?;
                    self.copy(start);
                }
                _ => {
                    self.pos = self.bounded(len, end)?;
                    self.copy(start);
                }
            }
        }
        if end.is_none() && !top {
            // An undefined-length item must end with its delimiter.
            return Err(NotRepairable);
        }
        Ok(None)
    }

    fn fragments(&mut self) -> Result<()> {
        loop {
            let tag = self.tag()?;
            let len = self.u32()?;
            match tag {
                SEQ_END => return Ok(()),
                ITEM if len != UNDEFINED => self.pos = self.bounded(len, None)?,
                _ => return Err(NotRepairable),
            }
        }
    }

    /// Items of a sequence, written with undefined lengths; their content is
    /// explicit VR, or implicit VR re-encoded as explicit.
    fn items(&mut self, end: Option<usize>, depth: usize, implicit: bool) -> Result<()> {
        if depth > self.max_depth {
            return Err(NotRepairable);
        }
        loop {
            if end.is_some() && self.at_end(end) {
                return Ok(());
            }
            let tag = self.tag()?;
            let len = self.u32()?;
            match tag {
                SEQ_END if end.is_none() => return Ok(()),
                ITEM => {
                    self.put_tag(ITEM);
                    self.out.extend_from_slice(&UNDEFINED.to_le_bytes());
                    let item_end = if len == UNDEFINED {
                        None
                    } else {
                        Some(self.bounded(len, end)?)
                    };
                    if implicit {
                        self.implicit_dataset(item_end, depth)?;
                    } else {
                        self.explicit_dataset(item_end, depth, false)?;
                    }
                    self.put_delimiter(ITEM_END);
                }
                _ => return Err(NotRepairable),
            }
        }
    }

    /// The elements of one implicit VR item, until `end` or its item delimiter
    /// (consumed, not written).
    fn implicit_dataset(&mut self, end: Option<usize>, depth: usize) -> Result<()> {
        while !self.at_end(end) {
            let tag = self.tag()?;
            let len = self.u32()?;
            if tag == ITEM_END {
                return Ok(());
            }
            let vr = implicit_vr(tag);
            if len == UNDEFINED || vr == Some(VR::SQ) {
                self.put_long_header(tag, b"SQ", UNDEFINED);
                let seq_end = if len == UNDEFINED {
                    None
                } else {
                    Some(self.bounded(len, end)?)
                };
                self.items(seq_end, depth + 1, true)?;
                self.put_delimiter(SEQ_END);
                continue;
            }
            let value_start = self.pos;
            self.pos = self.bounded(len, end)?;
            let vr = vr.map_or(*b"UN", |v| v.to_bytes());
            if is_long_form(&vr) {
                self.put_long_header(tag, &vr, len);
            } else if let Ok(short) = u16::try_from(len) {
                self.put_tag(tag);
                self.out.extend_from_slice(&vr);
                self.out.extend_from_slice(&short.to_le_bytes());
            } else {
                self.put_long_header(tag, b"UN", len);
            }
            self.out
                .extend_from_slice(&self.input[value_start..self.pos]);
        }
        if end.is_none() {
            return Err(NotRepairable);
        }
        Ok(())
    }
}

/// The VR an implicit VR element is written with: the dictionary's when it has
/// exactly one, LO for a private creator, None (UN) otherwise.
fn implicit_vr((group, element): (u16, u16)) -> Option<VR> {
    if group % 2 == 1 {
        return (0x0010..=0x00FF).contains(&element).then_some(VR::LO);
    }
    match StandardDataDictionary.by_tag(Tag(group, element))?.vr() {
        VirtualVr::Exact(vr) if vr != VR::UN => Some(vr),
        _ => None,
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn implicit(tag: (u16, u16), value: &[u8]) -> Vec<u8> {
        let mut v = Vec::new();
        v.extend_from_slice(&tag.0.to_le_bytes());
        v.extend_from_slice(&tag.1.to_le_bytes());
        v.extend_from_slice(&(value.len() as u32).to_le_bytes());
        v.extend_from_slice(value);
        v
    }

    fn raw(tag: (u16, u16), len: u32) -> Vec<u8> {
        let mut v = Vec::new();
        v.extend_from_slice(&tag.0.to_le_bytes());
        v.extend_from_slice(&tag.1.to_le_bytes());
        v.extend_from_slice(&len.to_le_bytes());
        v
    }

    /// (0009,0010) LO creator, then (0009,1001) UN undefined holding one implicit item
    /// with PatientName and a nested implicit sequence of defined length.
    fn sample() -> Vec<u8> {
        let mut d = Vec::new();
        d.extend_from_slice(&[0x09, 0, 0x10, 0, b'L', b'O', 4, 0]);
        d.extend_from_slice(b"ACME");
        d.extend_from_slice(&[0x09, 0, 0x01, 0x10, b'U', b'N', 0, 0]);
        d.extend_from_slice(&UNDEFINED.to_le_bytes());
        let mut inner_item = implicit((0x0008, 0x1155), b"1.2.3\0");
        inner_item = [raw(ITEM, inner_item.len() as u32), inner_item].concat();
        let mut item = implicit((0x0010, 0x0010), b"DOE^JOHN");
        item.extend(implicit((0x0008, 0x1140), &inner_item));
        d.extend(raw(ITEM, UNDEFINED));
        d.extend(item);
        d.extend(raw(ITEM_END, 0));
        d.extend(raw(SEQ_END, 0));
        d.extend_from_slice(&[0x10, 0, 0x20, 0, b'L', b'O', 2, 0, b'I', b'D']);
        d
    }

    #[test]
    fn un_sequences_become_explicit_sequences_the_parser_reads() {
        let fixed = repair(&sample(), 8).unwrap().unwrap();
        assert_eq!(fixed.sequences, 1);
        assert_eq!(fixed.pixel_at, None);
        let ts = dicom_transfer_syntax_registry::entries::EXPLICIT_VR_LITTLE_ENDIAN.erased();
        let obj = dicom_object::InMemDicomObject::read_dataset_with_ts(&fixed.bytes[..], &ts)
            .expect("the repaired dataset parses");
        let seq = obj.element(Tag(0x0009, 0x1001)).unwrap();
        let items = seq.items().expect("a sequence");
        assert_eq!(items.len(), 1);
        let name = items[0].element(Tag(0x0010, 0x0010)).unwrap();
        assert_eq!(name.vr(), VR::PN);
        assert_eq!(name.to_str().unwrap(), "DOE^JOHN");
        let nested = items[0].element(Tag(0x0008, 0x1140)).unwrap();
        let nested = &nested.items().expect("nested sequence")[0];
        assert_eq!(
            nested
                .element(Tag(0x0008, 0x1155))
                .unwrap()
                .to_str()
                .unwrap()
                .trim_end_matches('\0'),
            "1.2.3"
        );
        assert_eq!(
            obj.element(Tag(0x0010, 0x0020)).unwrap().to_str().unwrap(),
            "ID"
        );
    }

    #[test]
    fn nothing_to_repair_and_damage_are_told_apart() {
        let plain = [0x10, 0, 0x20, 0, b'L', b'O', 2, 0, b'I', b'D'];
        assert!(repair(&plain, 8).unwrap().is_none());
        let s = sample();
        for cut in 1..s.len() {
            // Never a panic; a cut inside the UN sequence is not repairable.
            let _ = repair(&s[..cut], 8);
        }
        assert!(repair(&s[..s.len() - 20], 8).is_err());
        assert!(repair(&sample(), 0).is_err(), "depth is bounded");
    }
}
