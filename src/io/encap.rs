//! Encapsulated Pixel Data (PS3.5 A.4) as frames: the items of the pixel sequence
//! read from the input (headers only: values stay in the input) and grouped into
//! frames by the Basic or Extended Offset Table, and the writing of frames that an
//! editor decoded, changed and encoded again. io knows nothing of why or how a
//! frame changes: the pipeline hands it a [`FrameTranscode`].

use super::encode::{ObjectWriter, read_at};
use super::error::{EncodeError, ReadError};
use super::source::Input;
use std::ops::Range;

const ITEM: (u16, u16) = (0xFFFE, 0xE000);
const SEQUENCE_DELIMITER: (u16, u16) = (0xFFFE, 0xE0DD);

/// The value ranges (in the input) of each frame's fragments.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct FrameTable {
    pub frames: Vec<Vec<Range<u64>>>,
}

impl FrameTable {
    /// Bytes of every fragment's value: the compressed size.
    pub fn compressed_bytes(&self) -> u64 {
        self.frames.iter().flatten().map(|r| r.end - r.start).sum()
    }
}

fn malformed(s: impl Into<String>) -> ReadError {
    ReadError::Malformed(format!("encapsulated Pixel Data: {}", s.into()))
}

/// Reads the item headers of the encapsulated Pixel Data element at `element`
/// (whose own header is `header_len` bytes) and groups its fragments into
/// `frames` frames: by the Basic Offset Table when it has entries, else by the
/// Extended Offset Table (`extended`, from (7FE0,0001)), else one fragment per
/// frame, or every fragment for a single frame.
pub fn frame_table(
    input: &mut dyn Input,
    contents: Option<&Vec<u8>>,
    element: &Range<u64>,
    header_len: u64,
    frames: u32,
    extended: Option<&[u64]>,
) -> Result<FrameTable, ReadError> {
    let mut at = element.start + header_len;
    let mut item = |at: u64| -> Result<((u16, u16), u32), ReadError> {
        let mut h = [0u8; 8];
        let n = read_at(input, contents, at, &mut h).map_err(|e| match e {
            EncodeError::Read(io) => ReadError::Io(io),
            other => malformed(other.to_string()),
        })?;
        if n != 8 || at + 8 > element.end {
            return Err(malformed("an item header runs past the end of the element"));
        }
        let tag = (
            u16::from_le_bytes([h[0], h[1]]),
            u16::from_le_bytes([h[2], h[3]]),
        );
        Ok((tag, u32::from_le_bytes([h[4], h[5], h[6], h[7]])))
    };
    // The Basic Offset Table is the first item, possibly empty.
    let (tag, bot_len) = item(at)?;
    if tag != ITEM {
        return Err(malformed("the first item (Basic Offset Table) is missing"));
    }
    let bot_start = at + 8;
    if bot_len == u32::MAX || bot_start + u64::from(bot_len) > element.end {
        return Err(malformed(
            "the Basic Offset Table runs past the end of the element",
        ));
    }
    if bot_len % 4 != 0 {
        return Err(malformed(format!(
            "the Basic Offset Table has {bot_len} bytes, not a multiple of 4"
        )));
    }
    at = bot_start + u64::from(bot_len);
    let first_fragment = at;
    // Item starts (relative to the first fragment's) and value ranges.
    let mut fragments: Vec<(u64, Range<u64>)> = Vec::new();
    loop {
        let (tag, len) = item(at)?;
        if tag == SEQUENCE_DELIMITER {
            break;
        }
        if tag != ITEM || len == u32::MAX {
            return Err(malformed(format!(
                "item {} is not a fragment of defined length",
                fragments.len() + 1
            )));
        }
        let value = at + 8..at + 8 + u64::from(len);
        if value.end > element.end {
            return Err(malformed(format!(
                "fragment {} runs past the end of the element (truncated)",
                fragments.len() + 1
            )));
        }
        fragments.push((at - first_fragment, value.clone()));
        at = value.end;
    }
    if fragments.is_empty() {
        return Err(malformed("no fragments"));
    }
    let frames = frames.max(1) as usize;
    let offsets: Option<Vec<u64>> = if bot_len > 0 {
        let mut raw = vec![0u8; bot_len as usize];
        let n =
            read_at(input, contents, bot_start, &mut raw).map_err(|e| malformed(e.to_string()))?;
        if n != raw.len() {
            return Err(malformed("the Basic Offset Table is truncated"));
        }
        Some(
            raw.chunks_exact(4)
                .map(|c| u64::from(u32::from_le_bytes([c[0], c[1], c[2], c[3]])))
                .collect(),
        )
    } else {
        extended.filter(|e| !e.is_empty()).map(<[u64]>::to_vec)
    };
    let grouped = match offsets {
        Some(offsets) => {
            if offsets.len() != frames {
                return Err(malformed(format!(
                    "the offset table lists {} frame(s); Number of Frames says {frames}",
                    offsets.len()
                )));
            }
            if offsets[0] != 0 {
                return Err(malformed(
                    "the first frame does not start at the first fragment",
                ));
            }
            // One walk over both, in order: offsets and fragment starts increase.
            let mut out: Vec<Vec<Range<u64>>> = Vec::with_capacity(frames);
            let mut next_fragment = fragments.iter().peekable();
            for (i, off) in offsets.iter().enumerate() {
                let end = offsets.get(i + 1).copied().unwrap_or(u64::MAX);
                if end <= *off {
                    return Err(malformed(format!(
                        "offset table entry {} does not increase",
                        i + 2
                    )));
                }
                if next_fragment.peek().map(|(s, _)| s) != Some(off) {
                    return Err(malformed(format!(
                        "offset table entry {} points at no fragment",
                        i + 1
                    )));
                }
                let mut frame = Vec::new();
                while let Some((_, r)) = next_fragment.next_if(|(s, _)| *s < end) {
                    frame.push(r.clone());
                }
                out.push(frame);
            }
            out
        }
        None if fragments.len() == frames => fragments.into_iter().map(|(_, r)| vec![r]).collect(),
        None if frames == 1 => vec![fragments.into_iter().map(|(_, r)| r).collect()],
        None => {
            return Err(malformed(format!(
                "{} fragments for {frames} frames and no offset table: which fragments make which frame is unknown",
                fragments.len()
            )));
        }
    };
    Ok(FrameTable { frames: grouped })
}

/// What a transcoded Pixel Data value is made of.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum FramesOut {
    /// One fragment per frame, after an empty Basic Offset Table.
    Encapsulated,
    /// Native frames of `frame_len` bytes, as OW (`words`) or OB.
    Native { frame_len: usize, words: bool },
}

/// Turns one compressed frame into its output: the pipeline's decode, redact and
/// encode, behind a trait so io knows none of it.
pub trait FrameTranscode: Send {
    fn output(&self) -> FramesOut;
    /// Writes frame `index`'s output for `compressed` into `out` (cleared first).
    /// The error is a sentence naming the frame and the fault, never a value.
    fn transcode(&self, index: u64, compressed: &[u8], out: &mut Vec<u8>) -> Result<(), String>;
}

/// Encapsulated Pixel Data decoded frame by frame on its way to the output.
pub struct FramesEdit {
    pub table: FrameTable,
    pub codec: Box<dyn FrameTranscode>,
}

/// Writes Pixel Data (7FE0,0010), header included, frame by frame: one frame's
/// compressed bytes and its output are all it holds.
pub fn write_frames(
    out: &mut dyn ObjectWriter,
    input: &mut dyn Input,
    contents: Option<&Vec<u8>>,
    edit: &FramesEdit,
) -> Result<(), EncodeError> {
    let werr = EncodeError::from_write;
    let output = edit.codec.output();
    let frames = edit.table.frames.len();
    let mut pad = false;
    match output {
        FramesOut::Encapsulated => {
            out.write_all(&[
                0xE0, 0x7F, 0x10, 0x00, b'O', b'B', 0, 0, 0xFF, 0xFF, 0xFF, 0xFF,
            ])
            .map_err(werr)?;
            out.write_all(&item_header(ITEM, 0)).map_err(werr)?;
        }
        FramesOut::Native { frame_len, words } => {
            let total = (frame_len as u64).saturating_mul(frames as u64);
            pad = total % 2 == 1;
            let len = u32::try_from(total + u64::from(pad))
                .ok()
                .filter(|l| *l != u32::MAX)
                .ok_or_else(|| {
                    EncodeError::Pixels(format!(
                        "the decoded frames ({total} bytes) do not fit a native Pixel Data element"
                    ))
                })?;
            let vr = if words { *b"OW" } else { *b"OB" };
            let mut h = [0xE0, 0x7F, 0x10, 0x00, vr[0], vr[1], 0, 0, 0, 0, 0, 0];
            h[8..].copy_from_slice(&len.to_le_bytes());
            out.write_all(&h).map_err(werr)?;
        }
    }
    let mut compressed = Vec::new();
    let mut result = Vec::new();
    for (index, fragments) in edit.table.frames.iter().enumerate() {
        read_frame(input, contents, fragments, &mut compressed)?;
        edit.codec
            .transcode(index as u64, &compressed, &mut result)
            .map_err(EncodeError::Pixels)?;
        match output {
            FramesOut::Encapsulated => {
                if result.len() % 2 == 1 {
                    result.push(0);
                }
                let len = u32::try_from(result.len()).map_err(|_| {
                    EncodeError::Pixels(format!("frame {} is too large to encapsulate", index + 1))
                })?;
                out.write_all(&item_header(ITEM, len)).map_err(werr)?;
            }
            FramesOut::Native { frame_len, .. } => {
                if result.len() != frame_len {
                    return Err(EncodeError::Pixels(format!(
                        "frame {} decodes to {} bytes; the image needs {frame_len}",
                        index + 1,
                        result.len()
                    )));
                }
            }
        }
        out.write_all(&result).map_err(werr)?;
    }
    match output {
        FramesOut::Encapsulated => out
            .write_all(&item_header(SEQUENCE_DELIMITER, 0))
            .map_err(werr)?,
        FramesOut::Native { .. } if pad => out.write_all(&[0]).map_err(werr)?,
        FramesOut::Native { .. } => {}
    }
    Ok(())
}

/// Reads one frame's fragments, concatenated, into `compressed` (cleared first).
pub fn read_frame(
    input: &mut dyn Input,
    contents: Option<&Vec<u8>>,
    fragments: &[Range<u64>],
    compressed: &mut Vec<u8>,
) -> Result<(), EncodeError> {
    compressed.clear();
    for r in fragments {
        let start = compressed.len();
        let len = usize::try_from(r.end - r.start)
            .map_err(|_| EncodeError::Pixels("a fragment is too large".into()))?;
        compressed.resize(start + len, 0);
        if read_at(input, contents, r.start, &mut compressed[start..])? != len {
            return Err(EncodeError::Changed);
        }
    }
    Ok(())
}

fn item_header(tag: (u16, u16), len: u32) -> [u8; 8] {
    let mut h = [0u8; 8];
    h[..2].copy_from_slice(&tag.0.to_le_bytes());
    h[2..4].copy_from_slice(&tag.1.to_le_bytes());
    h[4..].copy_from_slice(&len.to_le_bytes());
    h
}

#[cfg(test)]
mod tests {
    use super::*;

    /// A Pixel Data element: header, BOT with `bot`, fragments, delimiter.
    fn element(bot: &[u32], fragments: &[&[u8]]) -> Vec<u8> {
        let mut v = vec![
            0xE0, 0x7F, 0x10, 0x00, b'O', b'B', 0, 0, 0xFF, 0xFF, 0xFF, 0xFF,
        ];
        v.extend(item_header(ITEM, bot.len() as u32 * 4));
        for o in bot {
            v.extend(o.to_le_bytes());
        }
        for f in fragments {
            v.extend(item_header(ITEM, f.len() as u32));
            v.extend(*f);
        }
        v.extend(item_header(SEQUENCE_DELIMITER, 0));
        v
    }

    fn table(bytes: Vec<u8>, frames: u32, ext: Option<&[u64]>) -> Result<Vec<Vec<u64>>, ReadError> {
        let len = bytes.len() as u64;
        let contents = bytes.clone();
        let mut input = crate::io::source::MemoryInput::new(bytes);
        let t = frame_table(&mut input, Some(&contents), &(0..len), 12, frames, ext)?;
        Ok(t.frames
            .iter()
            .map(|f| f.iter().map(|r| r.end - r.start).collect())
            .collect())
    }

    #[test]
    fn fragments_group_into_frames_every_way_the_standard_allows() {
        let f: [&[u8]; 4] = [b"aa", b"bbbb", b"cc", b"dddddd"];
        // One fragment per frame, no table.
        assert_eq!(
            table(element(&[], &f), 4, None).unwrap(),
            vec![vec![2], vec![4], vec![2], vec![6]]
        );
        // One frame, many fragments.
        assert_eq!(
            table(element(&[], &f), 1, None).unwrap(),
            vec![vec![2, 4, 2, 6]]
        );
        // Basic Offset Table: frame 2 starts at the third fragment (10 + 12 bytes in).
        assert_eq!(
            table(element(&[0, 22], &f), 2, None).unwrap(),
            vec![vec![2, 4], vec![2, 6]]
        );
        // Extended Offset Table when the basic one is empty.
        assert_eq!(
            table(element(&[], &f), 2, Some(&[0, 10])).unwrap(),
            vec![vec![2], vec![4, 2, 6]]
        );
    }

    #[test]
    fn inconsistent_tables_and_truncation_are_errors() {
        let f: [&[u8]; 3] = [b"aa", b"bb", b"cc"];
        assert!(
            table(element(&[], &f), 2, None)
                .unwrap_err()
                .to_string()
                .contains("which fragments")
        );
        assert!(
            table(element(&[0, 5], &f), 2, None)
                .unwrap_err()
                .to_string()
                .contains("points at no fragment")
        );
        assert!(
            table(element(&[0], &f), 2, None)
                .unwrap_err()
                .to_string()
                .contains("lists 1 frame")
        );
        let whole = element(&[], &f);
        for cut in 0..whole.len() {
            assert!(
                table(whole[..cut].to_vec(), 3, None).is_err(),
                "cut at {cut}"
            );
        }
    }
}
