//! `pixels: {unmatched: ocr}`: find text in the frames of a file no rule matches
//! and blank each box with a margin. The engine renders frames to grey and asks a
//! [`TextFinder`] where text is; the finder (Tesseract, run as a program) belongs to
//! the run layer, since the engine starts no process. `check --ocr` has its own
//! decoder and runner on purpose: the judge shares no code with what it judges.

use crate::profile::pixels::Rect;
use dicom_core::Tag;
use dicom_object::InMemDicomObject;

/// Pixels added round each box found: OCR boxes hug the glyphs, and anti-aliased
/// edges or a descender outside the box can still be read.
pub const MARGIN: u32 = 6;
/// Frames a file may have for OCR redaction: every frame is read, so a long cine
/// would take minutes; such files stay quarantined.
pub const MAX_FRAMES: u32 = 64;

/// One frame as 8-bit grey, dark text on a light ground where possible.
pub struct Grey {
    pub width: u32,
    pub height: u32,
    pub pixels: Vec<u8>,
}

/// Finds text in a grey frame; boxes in frame pixels.
pub trait TextFinder: Send + Sync {
    fn find(&self, frame: &Grey) -> Result<Vec<Rect>, String>;
}

/// How to turn one native frame into grey.
pub struct GreyLayout {
    rows: u32,
    cols: u32,
    samples: u32,
    bytes: usize,
    planar: bool,
    ybr422: bool,
    big_endian: bool,
    invert: bool,
    pub frames: u32,
}

fn uint(obj: &InMemDicomObject, e: u16) -> Option<u32> {
    obj.get(Tag(0x0028, e))?.to_int::<u32>().ok()
}

impl GreyLayout {
    /// The layout of `header`'s native pixel data, or why OCR cannot read it.
    pub fn of(header: &InMemDicomObject, big_endian: bool) -> Result<GreyLayout, String> {
        let rows = uint(header, 0x0010).unwrap_or(0);
        let cols = uint(header, 0x0011).unwrap_or(0);
        let samples = uint(header, 0x0002).unwrap_or(1);
        let bits = uint(header, 0x0100).unwrap_or(0);
        let photometric = header
            .get(Tag(0x0028, 0x0004))
            .and_then(|e| e.to_str().ok())
            .map(|s| s.trim_matches(['\0', ' ']).to_ascii_uppercase())
            .unwrap_or_default();
        if rows == 0
            || cols == 0
            || rows > 0xFFFF
            || cols > 0xFFFF
            || !matches!(bits, 8 | 16)
            || !matches!(samples, 1 | 3)
        {
            return Err(format!(
                "OCR reads 8 or 16-bit pixels of 1 or 3 samples, not {samples} of {bits} bits"
            ));
        }
        Ok(GreyLayout {
            rows,
            cols,
            samples,
            bytes: (bits / 8) as usize,
            planar: uint(header, 0x0006) == Some(1),
            ybr422: photometric == "YBR_FULL_422",
            big_endian,
            invert: photometric == "MONOCHROME1",
            frames: uint(header, 0x0008).unwrap_or(1).max(1),
        })
    }

    pub fn frame_len(&self) -> usize {
        let px = self.rows as usize * self.cols as usize;
        if self.ybr422 {
            px * 2
        } else {
            px * self.samples as usize * self.bytes
        }
    }

    /// Renders one frame: Y or luminance, stretched to the full range.
    pub fn grey(&self, frame: &[u8]) -> Grey {
        let px = self.rows as usize * self.cols as usize;
        let word = |i: usize| -> u32 {
            match (self.bytes, self.big_endian) {
                (1, _) => u32::from(frame[i]),
                (_, true) => u32::from(frame[2 * i]) << 8 | u32::from(frame[2 * i + 1]),
                (_, false) => u32::from(frame[2 * i + 1]) << 8 | u32::from(frame[2 * i]),
            }
        };
        let value = |p: usize| -> u32 {
            if self.ybr422 {
                return u32::from(frame[(p / 2) * 4 + p % 2]);
            }
            if self.samples == 1 {
                return word(p);
            }
            let (r, g, b) = if self.planar {
                (word(p), word(px + p), word(2 * px + p))
            } else {
                (word(3 * p), word(3 * p + 1), word(3 * p + 2))
            };
            (r * 30 + g * 59 + b * 11) / 100
        };
        let raw: Vec<u32> = (0..px).map(value).collect();
        let lo = raw.iter().copied().min().unwrap_or(0);
        let span = raw
            .iter()
            .copied()
            .max()
            .unwrap_or(0)
            .saturating_sub(lo)
            .max(1);
        let mut pixels: Vec<u8> = raw.iter().map(|v| ((v - lo) * 255 / span) as u8).collect();
        let dark_ground = pixels.iter().map(|v| u64::from(*v)).sum::<u64>() < 128 * px as u64;
        if dark_ground != self.invert {
            for v in &mut pixels {
                *v = 255 - *v;
            }
        }
        Grey {
            width: self.cols,
            height: self.rows,
            pixels,
        }
    }

    /// A box grown by [`MARGIN`] and clipped to the frame.
    pub fn with_margin(&self, b: Rect) -> Rect {
        let x = b.x.saturating_sub(MARGIN);
        let y = b.y.saturating_sub(MARGIN);
        let x1 = (b.x + b.w + MARGIN).min(self.cols);
        let y1 = (b.y + b.h + MARGIN).min(self.rows);
        Rect {
            x,
            y,
            w: x1.saturating_sub(x),
            h: y1.saturating_sub(y),
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use dicom_core::{DataElement, PrimitiveValue, VR};

    #[test]
    fn frames_render_dark_text_on_light_and_boxes_grow_by_the_margin() {
        let h = InMemDicomObject::from_element_iter([
            DataElement::new(Tag(0x0028, 0x0010), VR::US, PrimitiveValue::from(1u16)),
            DataElement::new(Tag(0x0028, 0x0011), VR::US, PrimitiveValue::from(4u16)),
            DataElement::new(Tag(0x0028, 0x0100), VR::US, PrimitiveValue::from(8u16)),
            DataElement::new(
                Tag(0x0028, 0x0004),
                VR::CS,
                PrimitiveValue::from("MONOCHROME2"),
            ),
        ]);
        let l = GreyLayout::of(&h, false).unwrap();
        // Bright text on a dark ground comes out dark on light.
        assert_eq!(l.grey(&[10, 10, 250, 10]).pixels, [255, 255, 0, 255]);
        let r = l.with_margin(Rect {
            x: 1,
            y: 0,
            w: 1,
            h: 1,
        });
        assert_eq!((r.x, r.y, r.w, r.h), (0, 0, 4, 1));
    }
}
