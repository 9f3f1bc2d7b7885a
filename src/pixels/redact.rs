//! Blanking native pixel data: the image's layout read from the header, the rows
//! and columns to blank worked out once per file, then applied to each frame as the
//! encoder streams it (see [`crate::io::encode::FrameEdit`]). "Blank" is the value
//! that renders black: the lowest value of the range for MONOCHROME2, the highest
//! for MONOCHROME1, zero for RGB, Y=0 with neutral chroma for YBR, and the palette
//! entry closest to black for PALETTE COLOR.

use crate::io::encode::FrameEdit;
use crate::profile::pixels::{Rect, Regions};
use dicom_core::Tag;
use dicom_object::InMemDicomObject;

/// Why pixel data cannot be redacted; each reason names no value of the file.
#[derive(Debug, thiserror::Error)]
pub enum PixelError {
    #[error("pixel data cannot be redacted: {0}")]
    Unsupported(String),
    #[error("pixel rule `{0}` blanks nothing in this {1}x{2} image: its regions lie outside it")]
    NoEffect(String, u32, u32),
}

fn unsupported(s: impl Into<String>) -> PixelError {
    PixelError::Unsupported(s.into())
}

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Layout {
    /// Samples of a pixel side by side (PlanarConfiguration 0, or one sample).
    Interleaved,
    /// One plane per sample (PlanarConfiguration 1).
    Planar,
    /// YBR_FULL_422: Y1 Y2 Cb Cr for each pair of pixels.
    Ybr422,
    /// One bit per pixel, frames packed back to back across byte boundaries.
    Bits,
}

/// One file's redaction: where to blank and with what, ready to edit each frame.
pub struct Redaction {
    rows: u32,
    cols: u32,
    frames: u32,
    layout: Layout,
    /// Bytes of one sample.
    sample_bytes: usize,
    /// The blank value of each sample, in the file's byte order.
    blank: Vec<Vec<u8>>,
    /// Per row, the sorted, disjoint column ranges to blank.
    spans: Vec<Vec<(u32, u32)>>,
    /// Frames to blank; None: all.
    only_frames: Option<Vec<u32>>,
    /// Blank bit value (1-bit data).
    blank_bit: bool,
    /// Pixels blanked per frame it applies to.
    pub pixels_per_frame: u64,
    /// Bits of every 16-bit sample that hold an overlay plane (old files embed
    /// overlays in the unused high bits): cleared in every frame.
    overlay_mask: u16,
    big_endian: bool,
}

pub(super) fn uint(obj: &InMemDicomObject, tag: Tag) -> Option<u32> {
    obj.get(tag)?.to_int::<u32>().ok()
}

pub(super) fn text(obj: &InMemDicomObject, tag: Tag) -> Option<String> {
    obj.get(tag)?
        .to_str()
        .ok()
        .map(|s| s.trim_matches(['\0', ' ']).to_ascii_uppercase())
}

const ROWS: Tag = Tag(0x0028, 0x0010);
const COLUMNS: Tag = Tag(0x0028, 0x0011);
const SAMPLES: Tag = Tag(0x0028, 0x0002);
const PHOTOMETRIC: Tag = Tag(0x0028, 0x0004);
const PLANAR: Tag = Tag(0x0028, 0x0006);
const FRAMES: Tag = Tag(0x0028, 0x0008);
const BITS_ALLOCATED: Tag = Tag(0x0028, 0x0100);
const BITS_STORED: Tag = Tag(0x0028, 0x0101);
const PIXEL_REPRESENTATION: Tag = Tag(0x0028, 0x0103);
const US_REGIONS: Tag = Tag(0x0018, 0x6011);
const MAX_US_REGIONS: usize = 64;

impl Redaction {
    /// Plans the redaction of a native Pixel Data value of `value_len` bytes.
    /// `rule` names the rule in messages.
    pub fn plan(
        header: &InMemDicomObject,
        big_endian: bool,
        value_len: u64,
        rule: &str,
        regions: &Regions,
        frames: Option<&[u32]>,
    ) -> Result<Redaction, PixelError> {
        let rows = uint(header, ROWS).filter(|r| *r > 0);
        let cols = uint(header, COLUMNS).filter(|c| *c > 0);
        let (Some(rows), Some(cols)) = (rows, cols) else {
            return Err(unsupported("Rows or Columns missing or zero"));
        };
        // Both are US: a larger number comes from a malformed file, and the plan
        // holds a list per row.
        if rows > 0xFFFF || cols > 0xFFFF {
            return Err(unsupported("Rows or Columns larger than 65535"));
        }
        let samples = uint(header, SAMPLES).unwrap_or(1);
        let bits =
            uint(header, BITS_ALLOCATED).ok_or_else(|| unsupported("Bits Allocated missing"))?;
        let stored = uint(header, BITS_STORED)
            .unwrap_or(bits)
            .clamp(1, bits.max(1));
        let signed = uint(header, PIXEL_REPRESENTATION) == Some(1);
        let planar = uint(header, PLANAR) == Some(1);
        let frame_count = uint(header, FRAMES).unwrap_or(1).max(1);
        let photometric = text(header, PHOTOMETRIC)
            .ok_or_else(|| unsupported("Photometric Interpretation missing"))?;
        if !matches!(bits, 1 | 8 | 16 | 32) {
            return Err(unsupported(format!("Bits Allocated {bits}")));
        }
        if big_endian && bits == 8 {
            // Big endian OW stores 8-bit samples swapped in pairs; rare enough to
            // refuse rather than blank the neighbouring column.
            return Err(unsupported("8-bit samples in a big endian transfer syntax"));
        }
        let sample_bytes = (bits / 8) as usize;
        let max_unsigned = if stored >= 32 {
            u32::MAX as u64
        } else {
            (1u64 << stored) - 1
        };
        let encode = |v: u64| -> Vec<u8> {
            let b = v.to_le_bytes();
            let mut out = b[..sample_bytes.max(1)].to_vec();
            if big_endian {
                out.reverse();
            }
            out
        };
        // The lowest and highest values of the stored range, as bit patterns of
        // Bits Allocated width (two's complement when signed).
        let width_mask = if bits >= 32 {
            u32::MAX as u64
        } else {
            (1u64 << bits) - 1
        };
        let (low, high) = if signed {
            let half = 1u64 << (stored - 1);
            ((half.wrapping_neg()) & width_mask, half - 1)
        } else {
            (0, max_unsigned)
        };
        let mid = 1u64 << (stored - 1);
        let (layout, blank, blank_bit) = match (photometric.as_str(), samples) {
            ("MONOCHROME2", 1) => (
                if bits == 1 {
                    Layout::Bits
                } else {
                    Layout::Interleaved
                },
                vec![encode(low)],
                false,
            ),
            ("MONOCHROME1", 1) => (
                if bits == 1 {
                    Layout::Bits
                } else {
                    Layout::Interleaved
                },
                vec![encode(high)],
                true,
            ),
            ("PALETTE COLOR", 1) if bits == 8 || bits == 16 => (
                Layout::Interleaved,
                vec![encode(palette_black(header)?)],
                false,
            ),
            ("RGB", 3) if bits >= 8 => (
                if planar {
                    Layout::Planar
                } else {
                    Layout::Interleaved
                },
                vec![encode(0); 3],
                false,
            ),
            ("YBR_FULL", 3) if bits >= 8 => (
                if planar {
                    Layout::Planar
                } else {
                    Layout::Interleaved
                },
                vec![encode(0), encode(mid), encode(mid)],
                false,
            ),
            ("YBR_FULL_422", 3) if bits == 8 => (
                Layout::Ybr422,
                vec![encode(0), encode(mid), encode(mid)],
                false,
            ),
            (p, s) => {
                return Err(unsupported(format!(
                    "photometric interpretation {} with {s} sample(s) of {bits} bits",
                    shown(p)
                )));
            }
        };
        if layout == Layout::Bits && photometric.starts_with("MONOCHROME") && bits != 1 {
            return Err(unsupported("bit layout"));
        }
        let mut spans = spans_for(header, regions, rows, cols)?;
        if layout == Layout::Ybr422 {
            // Chroma is shared by a pair of columns: blank whole pairs.
            for row in &mut spans {
                for s in row.iter_mut() {
                    s.0 &= !1;
                    s.1 = (s.1 + (s.1 & 1)).min(cols);
                }
                merge(row);
            }
        }
        let pixels_per_frame: u64 = spans.iter().flatten().map(|(a, b)| u64::from(b - a)).sum();
        let only_frames = frames.map(|f| {
            f.iter()
                .copied()
                .filter(|i| *i < frame_count)
                .collect::<Vec<_>>()
        });
        if pixels_per_frame == 0 || only_frames.as_ref().is_some_and(Vec::is_empty) {
            return Err(PixelError::NoEffect(rule.to_string(), cols, rows));
        }
        let r = Redaction {
            rows,
            cols,
            frames: frame_count,
            layout,
            sample_bytes,
            blank,
            spans,
            only_frames,
            blank_bit,
            pixels_per_frame,
            overlay_mask: 0,
            big_endian,
        };
        let need = r.unit_len() as u64 * r.units();
        if value_len < need {
            return Err(unsupported(format!(
                "Pixel Data holds {value_len} bytes, fewer than the {need} its {frame_count} frame(s) need"
            )));
        }
        Ok(r)
    }

    /// Also clears the overlay planes embedded in the high bits of 16-bit pixel
    /// data (60xx,0102 Overlay Bit Position, without 60xx,3000 Overlay Data) in
    /// every frame; returns how many planes. Bits inside Bits Stored are pixel
    /// data, never touched.
    pub fn zero_embedded_overlays(&mut self, header: &InMemDicomObject) -> u32 {
        if self.sample_bytes != 2 || self.layout == Layout::Bits {
            return 0;
        }
        let stored = uint(header, BITS_STORED).unwrap_or(16);
        let mut planes = 0;
        for group in (0x6000u16..=0x601E).step_by(2) {
            let position = uint(header, Tag(group, 0x0102));
            let separate = header.get(Tag(group, 0x3000)).is_some();
            if let Some(bit) = position
                && !separate
                && (stored..16).contains(&bit)
            {
                self.overlay_mask |= 1 << bit;
                planes += 1;
            }
        }
        planes
    }

    fn clear_overlays(&self, buf: &mut [u8]) {
        let keep = !self.overlay_mask;
        for w in buf.chunks_exact_mut(2) {
            let v = if self.big_endian {
                u16::from_be_bytes([w[0], w[1]]) & keep
            } else {
                u16::from_le_bytes([w[0], w[1]]) & keep
            };
            w.copy_from_slice(&if self.big_endian {
                v.to_be_bytes()
            } else {
                v.to_le_bytes()
            });
        }
    }

    /// Frames the redaction applies to.
    pub fn frames_blanked(&self) -> u64 {
        match &self.only_frames {
            Some(f) => f.len() as u64,
            None => u64::from(self.frames),
        }
    }

    fn frame_bytes(&self) -> usize {
        let px = self.rows as usize * self.cols as usize;
        match self.layout {
            Layout::Interleaved | Layout::Planar => px * self.blank.len() * self.sample_bytes,
            Layout::Ybr422 => px * 2,
            Layout::Bits => px.div_ceil(8),
        }
    }

    fn selected(&self, frame: u64) -> bool {
        match &self.only_frames {
            Some(f) => f.iter().any(|i| u64::from(*i) == frame),
            None => true,
        }
    }

    fn blank_frame(&self, buf: &mut [u8]) {
        let cols = self.cols as usize;
        match self.layout {
            Layout::Interleaved => {
                let pixel: Vec<u8> = self.blank.concat();
                let pb = pixel.len();
                for (y, row) in self.spans.iter().enumerate() {
                    for (a, b) in row {
                        let start = (y * cols + *a as usize) * pb;
                        let end = (y * cols + *b as usize) * pb;
                        fill(&mut buf[start..end], &pixel);
                    }
                }
            }
            Layout::Planar => {
                let plane = self.rows as usize * cols * self.sample_bytes;
                for (s, value) in self.blank.iter().enumerate() {
                    let base = s * plane;
                    for (y, row) in self.spans.iter().enumerate() {
                        for (a, b) in row {
                            let start = base + (y * cols + *a as usize) * self.sample_bytes;
                            let end = base + (y * cols + *b as usize) * self.sample_bytes;
                            fill(&mut buf[start..end], value);
                        }
                    }
                }
            }
            Layout::Ybr422 => {
                let pair = [
                    self.blank[0][0],
                    self.blank[0][0],
                    self.blank[1][0],
                    self.blank[2][0],
                ];
                for (y, row) in self.spans.iter().enumerate() {
                    for (a, b) in row {
                        let start = (y * cols + *a as usize) * 2;
                        let end = (y * cols + *b as usize) * 2;
                        fill(&mut buf[start..end], &pair);
                    }
                }
            }
            Layout::Bits => unreachable!("1-bit data is edited whole"),
        }
    }

    fn blank_bits(&self, buf: &mut [u8]) {
        let px = u64::from(self.rows) * u64::from(self.cols);
        for f in 0..u64::from(self.frames) {
            if !self.selected(f) {
                continue;
            }
            for (y, row) in self.spans.iter().enumerate() {
                for (a, b) in row {
                    for x in *a..*b {
                        let bit = f * px + y as u64 * u64::from(self.cols) + u64::from(x);
                        let (byte, shift) = ((bit / 8) as usize, bit % 8);
                        if let Some(v) = buf.get_mut(byte) {
                            if self.blank_bit {
                                *v |= 1 << shift;
                            } else {
                                *v &= !(1 << shift);
                            }
                        }
                    }
                }
            }
        }
    }
}

impl FrameEdit for Redaction {
    fn unit_len(&self) -> usize {
        match self.layout {
            // Frames of 1-bit data need not start on a byte: the value is one unit.
            Layout::Bits => (u64::from(self.rows) * u64::from(self.cols) * u64::from(self.frames))
                .div_ceil(8) as usize,
            _ => self.frame_bytes(),
        }
    }

    fn units(&self) -> u64 {
        match self.layout {
            Layout::Bits => 1,
            _ => u64::from(self.frames),
        }
    }

    fn edit(&self, index: u64, unit: &mut [u8]) {
        if self.overlay_mask != 0 {
            self.clear_overlays(unit);
        }
        match self.layout {
            Layout::Bits => self.blank_bits(unit),
            _ if self.selected(index) => self.blank_frame(unit),
            _ => {}
        }
    }
}

/// Fills `buf` with repetitions of `pattern` (its length divides `buf`'s).
fn fill(buf: &mut [u8], pattern: &[u8]) {
    if pattern.iter().all(|b| *b == pattern[0]) {
        buf.fill(pattern[0]);
        return;
    }
    for chunk in buf.chunks_exact_mut(pattern.len()) {
        chunk.copy_from_slice(pattern);
    }
}

/// A photometric value as a message may show it: only the defined terms' alphabet.
fn shown(p: &str) -> String {
    if p.len() <= 16
        && p.chars()
            .all(|c| c.is_ascii_uppercase() || c.is_ascii_digit() || c == '_' || c == ' ')
    {
        p.to_string()
    } else {
        "(unrecognised)".into()
    }
}

/// Sorts and merges overlapping column ranges.
fn merge(row: &mut Vec<(u32, u32)>) {
    row.retain(|(a, b)| a < b);
    row.sort_unstable();
    let mut out: Vec<(u32, u32)> = Vec::with_capacity(row.len());
    for (a, b) in row.drain(..) {
        match out.last_mut() {
            Some(last) if a <= last.1 => last.1 = last.1.max(b),
            _ => out.push((a, b)),
        }
    }
    *row = out;
}

/// Per row, the column ranges the regions blank, clipped to the image.
fn spans_for(
    header: &InMemDicomObject,
    regions: &Regions,
    rows: u32,
    cols: u32,
) -> Result<Vec<Vec<(u32, u32)>>, PixelError> {
    let mut spans = vec![Vec::new(); rows as usize];
    let add = |r: &Rect, spans: &mut Vec<Vec<(u32, u32)>>| {
        let x1 = r.x.saturating_add(r.w).min(cols);
        let y1 = r.y.saturating_add(r.h).min(rows);
        if r.x >= x1 {
            return;
        }
        for row in spans.iter_mut().take(y1 as usize).skip(r.y as usize) {
            row.push((r.x, x1));
        }
    };
    match regions {
        Regions::All => add(
            &Rect {
                x: 0,
                y: 0,
                w: cols,
                h: rows,
            },
            &mut spans,
        ),
        Regions::Rects(list) => {
            for r in list {
                add(r, &mut spans);
            }
        }
        Regions::KeepUltrasoundRegions => {
            let keep = ultrasound_regions(header)?;
            // The complement of the kept regions, row by row.
            let mut kept = vec![Vec::new(); rows as usize];
            for r in &keep {
                add(r, &mut kept);
            }
            for (row, k) in spans.iter_mut().zip(kept.iter_mut()) {
                merge(k);
                let mut x = 0;
                for (a, b) in k.iter() {
                    if *a > x {
                        row.push((x, *a));
                    }
                    x = x.max(*b);
                }
                if x < cols {
                    row.push((x, cols));
                }
            }
        }
    }
    for row in &mut spans {
        merge(row);
    }
    Ok(spans)
}

/// The rectangles of the Sequence of Ultrasound Regions (0018,6011): Region
/// Location Min X0/Y0 and Max X1/Y1, both corners inclusive (PS3.3 C.8.5.5.1).
fn ultrasound_regions(header: &InMemDicomObject) -> Result<Vec<Rect>, PixelError> {
    let items = header
        .get(US_REGIONS)
        .and_then(|e| e.value().items())
        .ok_or_else(|| unsupported("no Sequence of Ultrasound Regions (0018,6011) to keep"))?;
    // Devices write one to a few regions; a file with thousands is malformed and
    // would cost a list per row for each.
    if items.len() > MAX_US_REGIONS {
        return Err(unsupported(format!(
            "more than {MAX_US_REGIONS} ultrasound regions"
        )));
    }
    let mut out = Vec::new();
    for item in items {
        let corner = |e: u16| uint(item, Tag(0x0018, e));
        let (Some(x0), Some(y0), Some(x1), Some(y1)) = (
            corner(0x6018),
            corner(0x601A),
            corner(0x601C),
            corner(0x601E),
        ) else {
            return Err(unsupported(
                "an ultrasound region lacks its Region Location Min/Max",
            ));
        };
        if x1 < x0 || y1 < y0 {
            return Err(unsupported(
                "an ultrasound region's max corner is before its min",
            ));
        }
        out.push(Rect {
            x: x0,
            y: y0,
            w: x1 - x0 + 1,
            h: y1 - y0 + 1,
        });
    }
    if out.is_empty() {
        return Err(unsupported(
            "the Sequence of Ultrasound Regions (0018,6011) is empty",
        ));
    }
    Ok(out)
}

/// The index whose palette colour is darkest (least R+G+B).
fn palette_black(header: &InMemDicomObject) -> Result<u64, PixelError> {
    let mut luts = Vec::new();
    for (desc, data) in [(0x1101, 0x1201), (0x1102, 0x1202), (0x1103, 0x1203)] {
        let d = header
            .get(Tag(0x0028, desc))
            .and_then(|e| e.to_multi_int::<i64>().ok())
            .filter(|d| d.len() == 3)
            .ok_or_else(|| unsupported("palette LUT descriptor missing"))?;
        let entries = if d[0] <= 0 { 65536 } else { d[0] as usize };
        let first = (d[1] & 0xFFFF) as u64;
        let words = header
            .get(Tag(0x0028, data))
            .and_then(|e| e.to_multi_int::<u16>().ok())
            .ok_or_else(|| {
                unsupported("palette LUT data missing (segmented palettes are not supported)")
            })?;
        // 8-bit entries may come packed two to a word.
        let values: Vec<u32> = if d[2] == 8 && words.len() * 2 == entries {
            words
                .iter()
                .flat_map(|w| [u32::from(w & 0xFF), u32::from(w >> 8)])
                .collect()
        } else {
            words.iter().map(|w| u32::from(*w)).collect()
        };
        if values.len() < entries {
            return Err(unsupported("palette LUT data shorter than its descriptor"));
        }
        luts.push((first, values));
    }
    let first = luts[0].0;
    let n = luts.iter().map(|(_, v)| v.len()).min().unwrap_or(0);
    let darkest = (0..n)
        .min_by_key(|i| luts.iter().map(|(_, v)| v[*i]).sum::<u32>())
        .ok_or_else(|| unsupported("empty palette"))?;
    Ok(first + darkest as u64)
}

#[cfg(test)]
mod tests {
    use super::*;
    use dicom_core::value::DataSetSequence;
    use dicom_core::{DataElement, Length, PrimitiveValue, VR};

    fn header(
        rows: u16,
        cols: u16,
        samples: u16,
        bits: u16,
        photometric: &str,
    ) -> InMemDicomObject {
        InMemDicomObject::from_element_iter([
            DataElement::new(ROWS, VR::US, PrimitiveValue::from(rows)),
            DataElement::new(COLUMNS, VR::US, PrimitiveValue::from(cols)),
            DataElement::new(SAMPLES, VR::US, PrimitiveValue::from(samples)),
            DataElement::new(BITS_ALLOCATED, VR::US, PrimitiveValue::from(bits)),
            DataElement::new(BITS_STORED, VR::US, PrimitiveValue::from(bits)),
            DataElement::new(PHOTOMETRIC, VR::CS, PrimitiveValue::from(photometric)),
        ])
    }

    fn rects(r: &[[u32; 4]]) -> Regions {
        Regions::Rects(
            r.iter()
                .map(|[x, y, w, h]| Rect {
                    x: *x,
                    y: *y,
                    w: *w,
                    h: *h,
                })
                .collect(),
        )
    }

    #[test]
    fn monochrome_rectangles_blank_to_the_lowest_value_and_nothing_else() {
        let h = header(4, 4, 1, 8, "MONOCHROME2");
        let r = Redaction::plan(&h, false, 16, "t", &rects(&[[1, 1, 2, 2]]), None).unwrap();
        let mut buf = vec![200u8; 16];
        r.edit(0, &mut buf);
        let want: Vec<u8> = (0..16)
            .map(|i| {
                if (i / 4 == 1 || i / 4 == 2) && (i % 4 == 1 || i % 4 == 2) {
                    0
                } else {
                    200
                }
            })
            .collect();
        assert_eq!(buf, want);
        assert_eq!(r.pixels_per_frame, 4);
    }

    #[test]
    fn signed_and_monochrome1_blank_to_what_renders_black() {
        let mut h = header(1, 2, 1, 16, "MONOCHROME2");
        h.put(DataElement::new(
            BITS_STORED,
            VR::US,
            PrimitiveValue::from(12u16),
        ));
        h.put(DataElement::new(
            PIXEL_REPRESENTATION,
            VR::US,
            PrimitiveValue::from(1u16),
        ));
        let r = Redaction::plan(&h, false, 4, "t", &Regions::All, None).unwrap();
        let mut buf = vec![0x11u8; 4];
        r.edit(0, &mut buf);
        assert_eq!(buf, [0x00, 0xF8, 0x00, 0xF8], "-2048 in two's complement");
        let mut h = header(1, 1, 1, 16, "MONOCHROME1");
        h.put(DataElement::new(
            BITS_STORED,
            VR::US,
            PrimitiveValue::from(12u16),
        ));
        let r = Redaction::plan(&h, true, 2, "t", &Regions::All, None).unwrap();
        let mut buf = vec![0u8; 2];
        r.edit(0, &mut buf);
        assert_eq!(buf, [0x0F, 0xFF], "4095, big endian");
    }

    #[test]
    fn colour_layouts() {
        // RGB planar: each plane blanked at the same place.
        let mut h = header(1, 2, 3, 8, "RGB");
        h.put(DataElement::new(PLANAR, VR::US, PrimitiveValue::from(1u16)));
        let r = Redaction::plan(&h, false, 6, "t", &rects(&[[1, 0, 1, 1]]), None).unwrap();
        let mut buf = vec![9u8; 6];
        r.edit(0, &mut buf);
        assert_eq!(buf, [9, 0, 9, 0, 9, 0]);
        // YBR_FULL interleaved: Y 0, chroma neutral.
        let h = header(1, 1, 3, 8, "YBR_FULL");
        let r = Redaction::plan(&h, false, 3, "t", &Regions::All, None).unwrap();
        let mut buf = vec![9u8; 3];
        r.edit(0, &mut buf);
        assert_eq!(buf, [0, 128, 128]);
        // YBR_FULL_422: a blanked column takes its pair with it.
        let h = header(1, 4, 3, 8, "YBR_FULL_422");
        let r = Redaction::plan(&h, false, 8, "t", &rects(&[[3, 0, 1, 1]]), None).unwrap();
        let mut buf = vec![9u8; 8];
        r.edit(0, &mut buf);
        assert_eq!(buf, [9, 9, 9, 9, 0, 0, 128, 128]);
    }

    #[test]
    fn embedded_overlay_bits_are_cleared_everywhere_and_pixel_bits_never() {
        let mut h = header(1, 2, 1, 16, "MONOCHROME2");
        h.put(DataElement::new(
            BITS_STORED,
            VR::US,
            PrimitiveValue::from(12u16),
        ));
        h.put(DataElement::new(
            Tag(0x6000, 0x0102),
            VR::US,
            PrimitiveValue::from(15u16),
        ));
        // An overlay with its own data is not in the pixels; one at bit 3 is pixel data.
        h.put(DataElement::new(
            Tag(0x6002, 0x0102),
            VR::US,
            PrimitiveValue::from(14u16),
        ));
        h.put(DataElement::new(
            Tag(0x6002, 0x3000),
            VR::OW,
            PrimitiveValue::from(vec![0u8; 2]),
        ));
        h.put(DataElement::new(
            Tag(0x6004, 0x0102),
            VR::US,
            PrimitiveValue::from(3u16),
        ));
        let mut r = Redaction::plan(&h, false, 4, "t", &rects(&[[0, 0, 1, 1]]), None).unwrap();
        assert_eq!(r.zero_embedded_overlays(&h), 1);
        let mut buf = 0xCFFFu16.to_le_bytes().repeat(2);
        r.edit(0, &mut buf);
        assert_eq!(buf, [0, 0, 0xFF, 0x4F]);
    }

    #[test]
    fn palette_blanks_to_the_darkest_entry() {
        let mut h = header(1, 2, 1, 8, "PALETTE COLOR");
        for (desc, data, vals) in [
            (0x1101, 0x1201, [200u16, 10, 3]),
            (0x1102, 0x1202, [200, 20, 5]),
            (0x1103, 0x1203, [200, 30, 5]),
        ] {
            h.put(DataElement::new(
                Tag(0x0028, desc),
                VR::US,
                PrimitiveValue::U16([3u16, 0, 16].into_iter().collect()),
            ));
            h.put(DataElement::new(
                Tag(0x0028, data),
                VR::OW,
                PrimitiveValue::U16(vals.into_iter().collect()),
            ));
        }
        let r = Redaction::plan(&h, false, 2, "t", &Regions::All, None).unwrap();
        let mut buf = vec![0u8; 2];
        r.edit(0, &mut buf);
        assert_eq!(buf, [2, 2]);
    }

    #[test]
    fn ultrasound_regions_are_kept_and_the_rest_blanked() {
        let mut h = header(3, 4, 1, 8, "MONOCHROME2");
        let region = InMemDicomObject::from_element_iter([
            DataElement::new(Tag(0x0018, 0x6018), VR::UL, PrimitiveValue::from(1u32)),
            DataElement::new(Tag(0x0018, 0x601A), VR::UL, PrimitiveValue::from(1u32)),
            DataElement::new(Tag(0x0018, 0x601C), VR::UL, PrimitiveValue::from(2u32)),
            DataElement::new(Tag(0x0018, 0x601E), VR::UL, PrimitiveValue::from(1u32)),
        ]);
        h.put(DataElement::new(
            US_REGIONS,
            VR::SQ,
            DataSetSequence::new(vec![region], Length::UNDEFINED),
        ));
        let r = Redaction::plan(&h, false, 12, "t", &Regions::KeepUltrasoundRegions, None).unwrap();
        let mut buf = vec![7u8; 12];
        r.edit(0, &mut buf);
        assert_eq!(buf, [0, 0, 0, 0, 0, 7, 7, 0, 0, 0, 0, 0]);
    }

    #[test]
    fn frames_one_bit_and_no_effect() {
        let mut h = header(2, 4, 1, 8, "MONOCHROME2");
        h.put(DataElement::new(FRAMES, VR::IS, PrimitiveValue::from("3")));
        let r = Redaction::plan(&h, false, 24, "t", &rects(&[[0, 0, 4, 1]]), Some(&[1])).unwrap();
        let mut f0 = vec![5u8; 8];
        let mut f1 = vec![5u8; 8];
        r.edit(0, &mut f0);
        r.edit(1, &mut f1);
        assert_eq!(f0, [5; 8]);
        assert_eq!(f1, [0, 0, 0, 0, 5, 5, 5, 5]);
        assert!(matches!(
            Redaction::plan(&h, false, 24, "t", &rects(&[[10, 10, 4, 1]]), None),
            Err(PixelError::NoEffect(..))
        ));
        assert!(matches!(
            Redaction::plan(&h, false, 24, "t", &Regions::All, Some(&[7])),
            Err(PixelError::NoEffect(..))
        ));
        assert!(matches!(
            Redaction::plan(&h, false, 23, "t", &Regions::All, None),
            Err(PixelError::Unsupported(_))
        ));
        // 1-bit, 3 frames of 2x4 = 24 bits: frame 1's first row cleared.
        let mut h = header(2, 4, 1, 1, "MONOCHROME2");
        h.put(DataElement::new(FRAMES, VR::IS, PrimitiveValue::from("3")));
        let r = Redaction::plan(&h, false, 4, "t", &rects(&[[0, 0, 4, 1]]), Some(&[1])).unwrap();
        assert_eq!(r.unit_len(), 3);
        let mut all = vec![0xFFu8; 3];
        r.edit(0, &mut all);
        assert_eq!(all, [0xFF, 0xF0, 0xFF]);
    }
}
