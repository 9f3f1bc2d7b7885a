//! The RLE Lossless codec of DICOM (PS3.5 Annex G): a frame is a 64-byte header
//! (the number of segments, then up to 15 segment offsets) followed by segments,
//! each one byte plane of one sample (most significant byte first) compressed with
//! PackBits. Decoding reads whatever a fragment holds without panicking; every
//! error names the frame's fault, never a pixel value.

/// A frame's geometry, in the terms RLE splits it by.
#[derive(Debug, Clone, Copy)]
pub struct Geometry {
    pub rows: usize,
    pub cols: usize,
    pub samples: usize,
    /// Bytes per sample (1, 2 or 4).
    pub sample_bytes: usize,
    /// Native layout: one plane per sample (Planar Configuration 1).
    pub planar: bool,
}

impl Geometry {
    fn segments(&self) -> usize {
        self.samples * self.sample_bytes
    }

    fn plane_len(&self) -> usize {
        self.rows * self.cols
    }

    /// Bytes of the native frame (little endian).
    pub fn frame_len(&self) -> usize {
        self.plane_len() * self.segments()
    }

    /// Where byte `b` (0: most significant) of sample `s` of pixel `p` lives in
    /// the native little endian frame.
    fn native_index(&self, s: usize, b: usize, p: usize) -> usize {
        let byte_in_sample = self.sample_bytes - 1 - b;
        if self.planar {
            (s * self.plane_len() + p) * self.sample_bytes + byte_in_sample
        } else {
            (p * self.samples + s) * self.sample_bytes + byte_in_sample
        }
    }
}

/// Why an RLE frame cannot be decoded.
#[derive(Debug, thiserror::Error, PartialEq, Eq)]
pub enum RleError {
    #[error("RLE frame of {0} bytes is shorter than its 64-byte header")]
    ShortHeader(usize),
    #[error("RLE header declares {found} segment(s); this image needs {need}")]
    SegmentCount { found: u32, need: usize },
    #[error(
        "RLE segment {0} has offset {1}, outside the frame's {2} bytes or before the previous one"
    )]
    BadOffset(usize, u32, usize),
    #[error(
        "RLE segment {0} decodes to at most {1} of the {2} bytes it needs (truncated or garbled)"
    )]
    ShortSegment(usize, usize, usize),
    #[error("the image's {0} segments exceed the 15 an RLE frame can hold")]
    TooManySegments(usize),
}

/// Decodes one RLE frame to native little endian pixels in `out` (resized to the
/// frame's length).
pub fn decode(frame: &[u8], g: &Geometry, out: &mut Vec<u8>) -> Result<(), RleError> {
    let need = g.segments();
    if need > 15 {
        return Err(RleError::TooManySegments(need));
    }
    if frame.len() < 64 {
        return Err(RleError::ShortHeader(frame.len()));
    }
    let word = |i: usize| {
        u32::from_le_bytes([
            frame[i * 4],
            frame[i * 4 + 1],
            frame[i * 4 + 2],
            frame[i * 4 + 3],
        ])
    };
    let found = word(0);
    if found as usize != need {
        return Err(RleError::SegmentCount { found, need });
    }
    let mut offsets = Vec::with_capacity(need + 1);
    for i in 0..need {
        let off = word(1 + i);
        let prev = offsets.last().copied().unwrap_or(64);
        if (off as usize) < prev || off as usize > frame.len() {
            return Err(RleError::BadOffset(i, off, frame.len()));
        }
        offsets.push(off as usize);
    }
    offsets.push(frame.len());
    // Two bytes of PackBits make at most 128: a frame too small for its image is
    // refused before the image's buffer is allocated (Rows and Columns come from
    // the file).
    let plane = g.plane_len();
    for seg in 0..need {
        let avail = offsets[seg + 1] - offsets[seg];
        if avail.saturating_mul(64) < plane {
            return Err(RleError::ShortSegment(seg, avail.saturating_mul(64), plane));
        }
    }
    out.clear();
    out.resize(g.frame_len(), 0);
    let mut buf = Vec::with_capacity(plane);
    for seg in 0..need {
        buf.clear();
        unpack(&frame[offsets[seg]..offsets[seg + 1]], plane, &mut buf);
        if buf.len() < plane {
            return Err(RleError::ShortSegment(seg, buf.len(), plane));
        }
        let (s, b) = (seg / g.sample_bytes, seg % g.sample_bytes);
        if g.sample_bytes == 1 && g.planar {
            let start = g.native_index(s, b, 0);
            out[start..start + plane].copy_from_slice(&buf[..plane]);
        } else {
            for (p, v) in buf[..plane].iter().enumerate() {
                out[g.native_index(s, b, p)] = *v;
            }
        }
    }
    Ok(())
}

/// PackBits decoding of `src` into `out`, stopping once `out` holds `want` bytes
/// (encoders may pad a segment with a byte past the plane) or `src` ends.
fn unpack(src: &[u8], want: usize, out: &mut Vec<u8>) {
    let mut i = 0;
    while i < src.len() && out.len() < want {
        let n = src[i] as i8;
        i += 1;
        if n >= 0 {
            let len = n as usize + 1;
            let end = (i + len).min(src.len());
            let take = (end - i).min(want - out.len());
            out.extend_from_slice(&src[i..i + take]);
            i = end;
        } else if n != -128 {
            let Some(&v) = src.get(i) else { break };
            i += 1;
            let len = (1 - n as isize) as usize;
            let take = len.min(want - out.len());
            out.resize(out.len() + take, v);
        }
    }
}

/// Encodes a native little endian frame as one RLE frame (header and segments).
pub fn encode(native: &[u8], g: &Geometry, out: &mut Vec<u8>) -> Result<(), RleError> {
    let n = g.segments();
    if n > 15 {
        return Err(RleError::TooManySegments(n));
    }
    out.clear();
    out.resize(64, 0);
    out[..4].copy_from_slice(&(n as u32).to_le_bytes());
    let mut row = vec![0u8; g.cols];
    for seg in 0..n {
        let offset = out.len() as u32;
        out[4 + seg * 4..8 + seg * 4].copy_from_slice(&offset.to_le_bytes());
        let (s, b) = (seg / g.sample_bytes, seg % g.sample_bytes);
        // Each row is packed on its own (PS3.5 G.3.1): runs never cross rows.
        for y in 0..g.rows {
            for (x, v) in row.iter_mut().enumerate() {
                *v = native[g.native_index(s, b, y * g.cols + x)];
            }
            pack(&row, out);
        }
        if out.len() % 2 == 1 {
            out.push(0);
        }
    }
    Ok(())
}

/// PackBits: runs of 3 or more equal bytes as a replicate run, the rest as literals,
/// each at most 128 bytes.
fn pack(src: &[u8], out: &mut Vec<u8>) {
    let mut i = 0;
    let mut lit_start = 0;
    let flush_literal = |out: &mut Vec<u8>, from: usize, to: usize| {
        let mut a = from;
        while a < to {
            let len = (to - a).min(128);
            out.push((len - 1) as u8);
            out.extend_from_slice(&src[a..a + len]);
            a += len;
        }
    };
    while i < src.len() {
        let mut run = 1;
        while i + run < src.len() && run < 128 && src[i + run] == src[i] {
            run += 1;
        }
        if run >= 3 {
            flush_literal(out, lit_start, i);
            out.push((257 - run) as u8);
            out.push(src[i]);
            i += run;
            lit_start = i;
        } else {
            i += run;
        }
    }
    flush_literal(out, lit_start, src.len());
}

#[cfg(test)]
mod tests {
    use super::*;

    fn geometry(
        rows: usize,
        cols: usize,
        samples: usize,
        sample_bytes: usize,
        planar: bool,
    ) -> Geometry {
        Geometry {
            rows,
            cols,
            samples,
            sample_bytes,
            planar,
        }
    }

    fn pattern(len: usize, seed: u32) -> Vec<u8> {
        let mut x = seed.wrapping_mul(2_654_435_761).max(1);
        (0..len)
            .map(|i| {
                x ^= x << 13;
                x ^= x >> 17;
                x ^= x << 5;
                // Runs and noise, as images have both.
                if (i / 37) % 3 == 0 { 7 } else { x as u8 }
            })
            .collect()
    }

    #[test]
    fn round_trips_every_layout() {
        for (samples, bytes, planar) in [
            (1, 1, false),
            (1, 2, false),
            (3, 1, false),
            (3, 1, true),
            (3, 2, true),
            (1, 4, false),
        ] {
            let g = geometry(17, 23, samples, bytes, planar);
            let native = pattern(g.frame_len(), (samples * 10 + bytes) as u32);
            let mut enc = Vec::new();
            encode(&native, &g, &mut enc).unwrap();
            assert_eq!(enc.len() % 2, 0);
            let mut dec = Vec::new();
            decode(&enc, &g, &mut dec).unwrap();
            assert_eq!(dec, native, "{samples} {bytes} {planar}");
        }
    }

    #[test]
    fn segments_hold_byte_planes_most_significant_first() {
        let g = geometry(1, 2, 1, 2, false);
        // Two 16-bit pixels 0x0102 and 0x0304, little endian.
        let mut enc = Vec::new();
        encode(&[0x02, 0x01, 0x04, 0x03], &g, &mut enc).unwrap();
        let off1 = u32::from_le_bytes(enc[4..8].try_into().unwrap()) as usize;
        let off2 = u32::from_le_bytes(enc[8..12].try_into().unwrap()) as usize;
        assert_eq!(&enc[off1..off1 + 3], &[1, 0x01, 0x03]);
        assert_eq!(&enc[off2..off2 + 3], &[1, 0x02, 0x04]);
    }

    #[test]
    fn long_runs_and_literals_split_at_128() {
        let mut row = vec![5u8; 300];
        row.extend((0..300).map(|i| i as u8));
        let mut packed = Vec::new();
        pack(&row, &mut packed);
        let mut back = Vec::new();
        unpack(&packed, row.len(), &mut back);
        assert_eq!(back, row);
    }

    #[test]
    fn malformed_frames_give_errors_never_panics() {
        let g = geometry(8, 9, 3, 1, false);
        let native = pattern(g.frame_len(), 3);
        let mut enc = Vec::new();
        encode(&native, &g, &mut enc).unwrap();
        let mut out = Vec::new();
        // Every truncation, and garbled bytes at every position.
        for cut in 0..enc.len() {
            let _ = decode(&enc[..cut], &g, &mut out);
        }
        assert!(decode(&enc[..10], &g, &mut out).is_err());
        assert!(matches!(
            decode(&enc[..enc.len() - 20], &g, &mut out),
            Err(RleError::ShortSegment(2, _, 72))
        ));
        // A tiny frame claiming a huge image is refused before allocating it.
        let huge = geometry(30_000, 30_000, 1, 1, false);
        let mut tiny = vec![0u8; 64];
        tiny[0] = 1;
        tiny[4] = 64;
        tiny.extend([0x81, 0]);
        let mut fresh = Vec::new();
        assert!(matches!(
            decode(&tiny, &huge, &mut fresh),
            Err(RleError::ShortSegment(0, 128, _))
        ));
        assert_eq!(fresh.capacity(), 0);
        for at in 0..enc.len() {
            for v in [0u8, 0x80, 0xFF, 0x7F] {
                let mut bad = enc.clone();
                bad[at] = v;
                let _ = decode(&bad, &g, &mut out);
            }
        }
        let mut bad = enc.clone();
        bad[0] = 2;
        assert_eq!(
            decode(&bad, &g, &mut out),
            Err(RleError::SegmentCount { found: 2, need: 3 })
        );
        let mut bad = enc.clone();
        bad[8..12].copy_from_slice(&10_000u32.to_le_bytes());
        assert!(matches!(
            decode(&bad, &g, &mut out),
            Err(RleError::BadOffset(1, 10_000, _))
        ));
    }
}
