//! Redaction of encapsulated (compressed) pixel data, one frame at a time: decode,
//! blank with the same [`Redaction`] native data gets, encode. RLE Lossless is
//! encoded again as RLE (lossless, so the file keeps its syntax); JPEG is written
//! as native Explicit VR Little Endian, since encoding it again would lose more
//! (the header says so: Lossy Image Compression stays truthful). Any other syntax
//! is refused by [`Codec::of`] returning None.

use super::redact::{PixelError, Redaction, text, uint};
use super::rle::{self, Geometry};
use crate::io::encap::{FrameTranscode, FramesOut};
use crate::io::encode::FrameEdit;
use crate::profile::pixels::Regions;
use dicom_core::header::Header;
use dicom_core::{DataElement, PrimitiveValue, Tag, VR};
use dicom_object::InMemDicomObject;

/// The syntax native frames are written in when they cannot stay compressed.
pub const EXPLICIT_VR_LE: &str = "1.2.840.10008.1.2.1";

/// A decoded frame larger than this is refused: Rows and Columns come from the
/// file, and one frame is what the redaction holds in memory.
const MAX_FRAME_BYTES: usize = 256 << 20;

const ROWS: Tag = Tag(0x0028, 0x0010);
const COLUMNS: Tag = Tag(0x0028, 0x0011);
const SAMPLES: Tag = Tag(0x0028, 0x0002);
const PHOTOMETRIC: Tag = Tag(0x0028, 0x0004);
const PLANAR: Tag = Tag(0x0028, 0x0006);
const FRAMES: Tag = Tag(0x0028, 0x0008);
const BITS_ALLOCATED: Tag = Tag(0x0028, 0x0100);
const LOSSY: Tag = Tag(0x0028, 0x2110);
const LOSSY_RATIO: Tag = Tag(0x0028, 0x2112);
const LOSSY_METHOD: Tag = Tag(0x0028, 0x2114);
/// Extended Offset Table and its lengths: they index the compressed fragments,
/// which are written anew.
const EXTENDED_OFFSETS: [Tag; 2] = [Tag(0x7FE0, 0x0001), Tag(0x7FE0, 0x0002)];

/// A compressed syntax this module decodes.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Codec {
    Rle,
    /// JPEG Baseline, Extended or Lossless; `lossy` for the DCT processes.
    Jpeg {
        lossy: bool,
    },
}

impl Codec {
    /// The codec of transfer syntax `uid`, or None when it cannot be decoded here.
    pub fn of(uid: &str) -> Option<Codec> {
        match uid.trim_end_matches(['\0', ' ']) {
            "1.2.840.10008.1.2.5" => Some(Codec::Rle),
            "1.2.840.10008.1.2.4.50" | "1.2.840.10008.1.2.4.51" => {
                Some(Codec::Jpeg { lossy: true })
            }
            "1.2.840.10008.1.2.4.57" | "1.2.840.10008.1.2.4.70" => {
                Some(Codec::Jpeg { lossy: false })
            }
            _ => None,
        }
    }
}

fn unsupported(s: impl Into<String>) -> PixelError {
    PixelError::Unsupported(s.into())
}

/// One file's decode, redact and encode of each frame.
pub struct Transcoder {
    codec: Codec,
    redaction: Redaction,
    /// The decoded (native, little endian) frame.
    geometry: Geometry,
    frames: u32,
    /// How the JPEG decoder turns three components into samples.
    color: Option<jpeg_decoder::ColorTransform>,
    /// Photometric Interpretation of what is written, when it differs.
    photometric_out: Option<String>,
}

impl Transcoder {
    /// Plans the redaction of a file's encapsulated frames under `codec`.
    pub fn plan(
        header: &InMemDicomObject,
        codec: Codec,
        rule: &str,
        regions: &Regions,
        frames: Option<&[u32]>,
    ) -> Result<Transcoder, PixelError> {
        let rows = uint(header, ROWS).unwrap_or(0) as usize;
        let cols = uint(header, COLUMNS).unwrap_or(0) as usize;
        let samples = uint(header, SAMPLES).unwrap_or(1) as usize;
        let bits = uint(header, BITS_ALLOCATED).unwrap_or(0);
        let frame_count = uint(header, FRAMES).unwrap_or(1).max(1);
        let photometric = text(header, PHOTOMETRIC).unwrap_or_default();
        if rows == 0 || cols == 0 || rows > 0xFFFF || cols > 0xFFFF {
            return Err(unsupported(
                "Rows or Columns missing, zero or larger than 65535",
            ));
        }
        if !matches!(samples, 1 | 3) {
            return Err(unsupported(format!("{samples} samples per pixel")));
        }
        let sample_bytes = match (codec, bits) {
            (_, 8) => 1,
            (_, 16) => 2,
            (Codec::Rle, 32) => 4,
            _ => {
                return Err(unsupported(format!(
                    "Bits Allocated {bits} in compressed pixel data"
                )));
            }
        };
        // The decoder reads the 8-bit DCT processes only (12-bit Extended is
        // refused here, before a file not at risk is held up by it).
        if codec == (Codec::Jpeg { lossy: true }) && bits != 8 {
            return Err(unsupported(format!(
                "lossy JPEG with Bits Allocated {bits}: only 8-bit lossy JPEG is decoded"
            )));
        }
        let (planar, photometric_out, color) = match codec {
            // RLE holds every sample of every pixel: no subsampled chroma.
            Codec::Rle if photometric.ends_with("_422") || photometric.ends_with("_420") => {
                return Err(unsupported("RLE with subsampled chroma"));
            }
            Codec::Rle => (uint(header, PLANAR) == Some(1), None, None),
            Codec::Jpeg { lossy } if samples == 3 => {
                let (out, color) = if !lossy {
                    // The lossless process has no colour transform: the samples are
                    // the ones encoded, one pixel's samples side by side.
                    let out = if photometric.starts_with("YBR_FULL") {
                        "YBR_FULL"
                    } else {
                        "RGB"
                    };
                    (out, None)
                } else if photometric.starts_with("YBR") {
                    ("RGB", Some(jpeg_decoder::ColorTransform::YCbCr))
                } else {
                    ("RGB", Some(jpeg_decoder::ColorTransform::RGB))
                };
                (false, Some(out.to_string()), color)
            }
            Codec::Jpeg { .. } => (false, None, None),
        };
        let geometry = Geometry {
            rows,
            cols,
            samples,
            sample_bytes,
            planar,
        };
        if geometry.frame_len() > MAX_FRAME_BYTES {
            return Err(unsupported(format!(
                "a decoded frame of {} bytes is larger than the {} MiB redaction holds",
                geometry.frame_len(),
                MAX_FRAME_BYTES >> 20
            )));
        }
        // The redaction sees the header of what is blanked: the decoded frame.
        let redaction = match &photometric_out {
            Some(p) if *p != photometric || uint(header, PLANAR) == Some(1) => {
                let decoded = decoded_view(header, Some(p));
                plan_native(&decoded, rule, regions, frames, &geometry, frame_count)?
            }
            _ => plan_native(header, rule, regions, frames, &geometry, frame_count)?,
        };
        Ok(Transcoder {
            codec,
            redaction,
            geometry,
            frames: frame_count,
            color,
            photometric_out,
        })
    }

    pub fn redaction(&self) -> &Redaction {
        &self.redaction
    }

    pub fn redaction_mut(&mut self) -> &mut Redaction {
        &mut self.redaction
    }

    pub fn frames(&self) -> u32 {
        self.frames
    }

    /// The transfer syntax of the output, when it is no longer the input's.
    pub fn output_syntax(&self) -> Option<&'static str> {
        match self.codec {
            Codec::Rle => None,
            Codec::Jpeg { .. } => Some(EXPLICIT_VR_LE),
        }
    }

    /// Makes the header tell the truth about the frames written: the offsets of
    /// the compressed fragments go; for JPEG, the photometric interpretation and
    /// planar configuration of the decoded samples, and Lossy Image Compression
    /// kept `01` (set, with method and ratio, when the input lacked it) after a
    /// lossy process. `compressed_bytes` is the input's compressed size.
    pub fn rewrite_header(&self, header: &mut InMemDicomObject, compressed_bytes: u64) {
        for t in EXTENDED_OFFSETS {
            header.remove_element(t);
        }
        let Codec::Jpeg { lossy } = self.codec else {
            return;
        };
        if let Some(p) = &self.photometric_out {
            set_image_pixel(header, p);
        }
        if !lossy {
            return;
        }
        if text(header, LOSSY).as_deref() != Some("01") {
            header.put(DataElement::new(LOSSY, VR::CS, PrimitiveValue::from("01")));
        }
        // The pixels written went through this JPEG process, whatever came before.
        if header.get(LOSSY_METHOD).is_none() {
            header.put(DataElement::new(
                LOSSY_METHOD,
                VR::CS,
                PrimitiveValue::from("ISO_10918_1"),
            ));
        }
        if header.get(LOSSY_RATIO).is_none() && compressed_bytes > 0 {
            let native = self.geometry.frame_len() as f64 * f64::from(self.frames);
            let ratio = format!("{:.2}", native / compressed_bytes as f64);
            header.put(DataElement::new(
                LOSSY_RATIO,
                VR::DS,
                PrimitiveValue::from(ratio),
            ));
        }
    }

    /// Frame `index` (0-based) decoded to native little endian samples, laid out
    /// as [`Transcoder::decoded_view`] says.
    pub fn decode(&self, index: u64, compressed: &[u8]) -> Result<Vec<u8>, String> {
        match self.codec {
            Codec::Rle => {
                let mut native = Vec::new();
                rle::decode(compressed, &self.geometry, &mut native)
                    .map_err(|e| format!("frame {}: {e}", index + 1))?;
                Ok(native)
            }
            // The decoder is fuzzed upstream, but a panic on a crafted stream must
            // still end as this file's quarantine, not a worker's death.
            Codec::Jpeg { .. } => std::panic::catch_unwind(std::panic::AssertUnwindSafe(|| {
                self.decode_jpeg(index, compressed)
            }))
            .unwrap_or_else(|_| {
                Err(format!(
                    "frame {}: the JPEG decoder failed on this data",
                    index + 1
                ))
            }),
        }
    }

    /// The image pixel elements (group 0028, and the ultrasound regions) of
    /// `header` as they describe the decoded frames.
    pub fn decoded_view(&self, header: &InMemDicomObject) -> InMemDicomObject {
        decoded_view(header, self.photometric_out.as_deref())
    }

    fn decode_jpeg(&self, index: u64, compressed: &[u8]) -> Result<Vec<u8>, String> {
        let g = &self.geometry;
        let frame = index + 1;
        let mut d = jpeg_decoder::Decoder::new(compressed);
        if let Some(c) = self.color {
            d.set_color_transform(c);
        }
        // The frame header is checked against Rows and Columns before the decoder
        // allocates what it declares.
        d.read_info()
            .map_err(|e| format!("frame {frame}: the JPEG data cannot be decoded ({e})"))?;
        let info = d
            .info()
            .ok_or_else(|| format!("frame {frame}: the JPEG data has no frame header"))?;
        if usize::from(info.width) != g.cols || usize::from(info.height) != g.rows {
            return Err(format!(
                "frame {frame}: the JPEG image is {}x{}; Columns and Rows say {}x{}",
                info.width, info.height, g.cols, g.rows
            ));
        }
        d.set_max_decoding_buffer_size(g.frame_len());
        let mut px = d
            .decode()
            .map_err(|e| format!("frame {frame}: the JPEG data cannot be decoded ({e})"))?;
        use jpeg_decoder::PixelFormat as F;
        match (info.pixel_format, g.samples, g.sample_bytes) {
            (F::L8, 1, 1) | (F::RGB24, 3, 1) => {}
            (F::L16, 1, 2) => {
                // The decoder gives native-endian words; DICOM wants little endian.
                for w in px.chunks_exact_mut(2) {
                    let v = u16::from_ne_bytes([w[0], w[1]]);
                    w.copy_from_slice(&v.to_le_bytes());
                }
            }
            (f, s, b) => {
                return Err(format!(
                    "frame {frame}: the JPEG data decodes to {f:?}; the header says {s} sample(s) of {} bits",
                    b * 8
                ));
            }
        }
        if px.len() != g.frame_len() {
            return Err(format!(
                "frame {frame}: the JPEG data decodes to {} bytes; the image needs {}",
                px.len(),
                g.frame_len()
            ));
        }
        Ok(px)
    }
}

fn plan_native(
    header: &InMemDicomObject,
    rule: &str,
    regions: &Regions,
    frames: Option<&[u32]>,
    g: &Geometry,
    frame_count: u32,
) -> Result<Redaction, PixelError> {
    let value_len = g.frame_len() as u64 * u64::from(frame_count);
    Redaction::plan(header, false, value_len, rule, regions, frames)
}

fn decoded_view(header: &InMemDicomObject, photometric_out: Option<&str>) -> InMemDicomObject {
    let mut view = InMemDicomObject::from_element_iter(
        header
            .iter()
            .filter(|e| e.tag().group() == 0x0028 || e.tag() == Tag(0x0018, 0x6011))
            .cloned(),
    );
    if let Some(p) = photometric_out {
        set_image_pixel(&mut view, p);
    }
    view
}

/// Photometric Interpretation `p`, samples side by side.
fn set_image_pixel(header: &mut InMemDicomObject, p: &str) {
    header.put(DataElement::new(
        PHOTOMETRIC,
        VR::CS,
        PrimitiveValue::from(p),
    ));
    header.put(DataElement::new(PLANAR, VR::US, PrimitiveValue::from(0u16)));
}

impl FrameTranscode for Transcoder {
    fn output(&self) -> FramesOut {
        match self.codec {
            Codec::Rle => FramesOut::Encapsulated,
            Codec::Jpeg { .. } => FramesOut::Native {
                frame_len: self.geometry.frame_len(),
                words: self.geometry.sample_bytes > 1,
            },
        }
    }

    fn transcode(&self, index: u64, compressed: &[u8], out: &mut Vec<u8>) -> Result<(), String> {
        let mut native = self.decode(index, compressed)?;
        self.redaction.edit(index, &mut native);
        match self.codec {
            Codec::Rle => rle::encode(&native, &self.geometry, out)
                .map_err(|e| format!("frame {}: {e}", index + 1)),
            Codec::Jpeg { .. } => {
                *out = native;
                Ok(())
            }
        }
    }
}
