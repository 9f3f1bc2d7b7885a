//! `check --ocr`: reads the text in a file's pixels with Tesseract and reports
//! every line that holds an identifying value, by frame and box, never by its words.
//!
//! Tesseract runs as a subprocess (`tesseract stdin stdout tsv`) rather than through
//! a binding: the Debian package is all CI needs, no C library is linked into the
//! binary, a crash or hang in the OCR engine cannot take the checker down with it,
//! and the check stays buildable where Tesseract is absent (`--ocr` then says so).
//!
//! The check decodes pixels itself, sharing nothing with the engine's redaction: an
//! independent judge. Compressed pixel data is decompressed by dcmtk (`dcmdrle`,
//! `dcmdjpeg`, `dcmdjpls`) into a private temporary file first, again a decoder that
//! is not the engine's; a syntax none of them reads (JPEG 2000, HTJ2K...) is
//! reported as not OCR-checked.

use super::finding::{Finding, Kind, ValueKind};
use super::phi::Compiled;
use crate::io::read::Source;
use dicom_core::Tag;
use dicom_object::InMemDicomObject;
use std::io::{Read, Seek, SeekFrom, Write};
use std::path::Path;
use std::process::{Command, Stdio};

/// Frames OCR'd at most per file: every frame of short files, an even sample of
/// long cines (first and last included).
const MAX_FRAMES: u32 = 8;
/// Images narrower than this are scaled up: Tesseract reads text of 20-40 pixel
/// capitals best.
const UPSCALE_BELOW: u32 = 1000;

/// The dcmtk program that decompresses `ts` to native pixel data, if one does.
fn decompressor(ts: &str) -> Option<&'static str> {
    match ts {
        "1.2.840.10008.1.2.5" => Some("dcmdrle"),
        "1.2.840.10008.1.2.4.50"
        | "1.2.840.10008.1.2.4.51"
        | "1.2.840.10008.1.2.4.57"
        | "1.2.840.10008.1.2.4.70" => Some("dcmdjpeg"),
        "1.2.840.10008.1.2.4.80" | "1.2.840.10008.1.2.4.81" => Some("dcmdjpls"),
        _ => None,
    }
}

/// OCRs a file with compressed pixel data through a native copy made by dcmtk.
fn check_compressed(path: &Path, src: &Source, sets: &[&Compiled], findings: &mut Vec<Finding>) {
    let not_checked = |why: String| Finding::new(Kind::PixelText, why);
    let Some(tool) = decompressor(src.ts.uid()) else {
        findings.push(not_checked(format!(
            "pixel data compressed as {} was not OCR-checked (no decoder for it)",
            src.ts.name()
        )));
        return;
    };
    // The copy holds the file's pixels and header: private to this user, removed
    // whatever happens.
    static COUNTER: std::sync::atomic::AtomicU64 = std::sync::atomic::AtomicU64::new(0);
    let n = COUNTER.fetch_add(1, std::sync::atomic::Ordering::Relaxed);
    let tmp = std::env::temp_dir().join(format!(
        "dicom-deid-check-ocr-{}-{n}.dcm",
        std::process::id()
    ));
    struct Remove<'a>(&'a Path);
    impl Drop for Remove<'_> {
        fn drop(&mut self) {
            let _ = std::fs::remove_file(self.0);
        }
    }
    let created = {
        use std::os::unix::fs::OpenOptionsExt;
        std::fs::OpenOptions::new()
            .write(true)
            .create_new(true)
            .mode(0o600)
            .open(&tmp)
    };
    if let Err(e) = created {
        findings.push(not_checked(format!(
            "compressed pixel data was not OCR-checked: cannot create a temporary file: {e}"
        )));
        return;
    }
    let _remove = Remove(&tmp);
    let ran = Command::new(tool)
        .arg(path)
        .arg(&tmp)
        .stdout(Stdio::null())
        .stderr(Stdio::null())
        .status();
    match ran {
        Ok(s) if s.success() => {}
        Ok(_) => {
            findings.push(not_checked(format!(
                "compressed pixel data was not OCR-checked: `{tool}` could not decompress it"
            )));
            return;
        }
        Err(_) => {
            findings.push(not_checked(format!(
                "compressed pixel data was not OCR-checked: `{tool}` (dcmtk) is not installed"
            )));
            return;
        }
    }
    match crate::io::read::read(&tmp) {
        Ok(crate::io::read::Classified::Dicom(native))
            if !native.ts.is_encapsulated_pixel_data() =>
        {
            check(&tmp, &native, sets, findings)
        }
        _ => findings.push(not_checked(format!(
            "compressed pixel data was not OCR-checked: `{tool}`'s output does not read as native"
        ))),
    }
}

/// Whether the `tesseract` program can be run.
pub fn available() -> bool {
    Command::new("tesseract")
        .arg("--version")
        .stdout(Stdio::null())
        .stderr(Stdio::null())
        .status()
        .is_ok_and(|s| s.success())
}

/// One 8-bit grey frame, dark text on a light ground where possible.
struct Grey {
    w: u32,
    h: u32,
    px: Vec<u8>,
}

/// A line of text Tesseract found, in frame pixel coordinates.
struct Line {
    text: String,
    x: u32,
    y: u32,
    w: u32,
    h: u32,
}

fn uint(obj: &InMemDicomObject, g: u16, e: u16) -> Option<u32> {
    obj.get(Tag(g, e))?.to_int::<u32>().ok()
}

/// OCRs the sampled frames of `src` and reports text matching any needle set.
pub fn check(path: &Path, src: &Source, sets: &[&Compiled], findings: &mut Vec<Finding>) {
    let Some(range) = src.pixel.clone() else {
        return;
    };
    if src.ts.is_encapsulated_pixel_data() {
        return check_compressed(path, src, sets, findings);
    }
    let h = &src.header;
    let (Some(rows), Some(cols)) = (uint(h, 0x0028, 0x0010), uint(h, 0x0028, 0x0011)) else {
        return;
    };
    let samples = uint(h, 0x0028, 0x0002).unwrap_or(1);
    let bits = uint(h, 0x0028, 0x0100).unwrap_or(8);
    let planar = uint(h, 0x0028, 0x0006) == Some(1);
    let frames = uint(h, 0x0028, 0x0008).unwrap_or(1).max(1);
    let photometric = h
        .get(Tag(0x0028, 0x0004))
        .and_then(|e| e.to_str().ok())
        .map(|s| s.trim().to_ascii_uppercase())
        .unwrap_or_default();
    let ybr422 = photometric == "YBR_FULL_422";
    if !matches!(bits, 8 | 16) || !matches!(samples, 1 | 3) {
        findings.push(Finding::new(
            Kind::PixelText,
            format!("pixel layout ({samples} sample(s) of {bits} bits) was not OCR-checked"),
        ));
        return;
    }
    let bps = (bits / 8) as usize;
    let px = rows as usize * cols as usize;
    let frame_len = if ybr422 {
        px * 2
    } else {
        px * samples as usize * bps
    };
    let implicit = src.ts.uid() == "1.2.840.10008.1.2";
    let value_start = range.start + if implicit { 8 } else { 12 };
    let big_endian = src.ts.endianness() == dicom_encoding::transfer_syntax::Endianness::Big;
    let mut file = match std::fs::File::open(path) {
        Ok(f) => f,
        Err(e) => {
            findings.push(Finding::new(
                Kind::Unreadable,
                format!("cannot re-open for OCR: {e}"),
            ));
            return;
        }
    };
    // Rows and Columns come from the file: no buffer larger than its Pixel Data.
    if rows > 0xFFFF || cols > 0xFFFF || frame_len as u64 > range.end.saturating_sub(value_start) {
        findings.push(Finding::new(
            Kind::PixelText,
            "Pixel Data is shorter than one frame: not OCR-checked",
        ));
        return;
    }
    let mut buf = vec![0u8; frame_len];
    for f in sample(frames) {
        let at = value_start + u64::from(f) * frame_len as u64;
        if at + frame_len as u64 > range.end
            || file.seek(SeekFrom::Start(at)).is_err()
            || file.read_exact(&mut buf).is_err()
        {
            break;
        }
        let grey = to_grey(
            &buf,
            rows,
            cols,
            samples,
            bps,
            planar,
            ybr422,
            big_endian,
            &photometric,
        );
        let lines = match ocr(&grey) {
            Ok(l) => l,
            Err(e) => {
                findings.push(Finding::new(Kind::PixelText, format!("OCR failed: {e}")));
                return;
            }
        };
        for line in lines {
            let mut kinds: Vec<ValueKind> =
                sets.iter().flat_map(|s| s.kinds_in(&line.text)).collect();
            kinds.sort();
            kinds.dedup();
            for kind in kinds {
                let mut finding = Finding::new(
                    Kind::PixelText,
                    format!(
                        "frame {f}: text in box [{}, {}, {}, {}] matches the {}",
                        line.x,
                        line.y,
                        line.w,
                        line.h,
                        kind.as_str()
                    ),
                );
                finding.matched = Some(kind);
                findings.push(finding);
            }
        }
    }
}

/// Frame numbers to read: all when few, else an even spread with both ends.
fn sample(frames: u32) -> Vec<u32> {
    if frames <= MAX_FRAMES {
        return (0..frames).collect();
    }
    let mut out: Vec<u32> = (0..MAX_FRAMES)
        .map(|i| (u64::from(i) * u64::from(frames - 1) / u64::from(MAX_FRAMES - 1)) as u32)
        .collect();
    out.dedup();
    out
}

/// One frame as 8-bit grey: luminance (or Y) stretched to 0..255, inverted when the
/// ground is dark so text comes out dark on light, as Tesseract reads best.
#[allow(clippy::too_many_arguments)]
fn to_grey(
    buf: &[u8],
    rows: u32,
    cols: u32,
    samples: u32,
    bps: usize,
    planar: bool,
    ybr422: bool,
    big_endian: bool,
    photometric: &str,
) -> Grey {
    let px = rows as usize * cols as usize;
    let sample_at = |i: usize| -> u32 {
        if bps == 1 {
            u32::from(buf[i])
        } else if big_endian {
            u32::from(u16::from_be_bytes([buf[2 * i], buf[2 * i + 1]]))
        } else {
            u32::from(u16::from_le_bytes([buf[2 * i], buf[2 * i + 1]]))
        }
    };
    let mut values: Vec<u32> = Vec::with_capacity(px);
    for p in 0..px {
        let v = if ybr422 {
            u32::from(buf[(p / 2) * 4 + (p % 2)])
        } else if samples == 1 {
            sample_at(p)
        } else if photometric.starts_with("YBR") {
            if planar {
                sample_at(p)
            } else {
                sample_at(p * 3)
            }
        } else if planar {
            (sample_at(p) * 299 + sample_at(px + p) * 587 + sample_at(2 * px + p) * 114) / 1000
        } else {
            (sample_at(p * 3) * 299 + sample_at(p * 3 + 1) * 587 + sample_at(p * 3 + 2) * 114)
                / 1000
        };
        values.push(v);
    }
    let lo = values.iter().copied().min().unwrap_or(0);
    let hi = values.iter().copied().max().unwrap_or(0).max(lo + 1);
    let mut px8: Vec<u8> = values
        .iter()
        .map(|v| ((v - lo) * 255 / (hi - lo)) as u8)
        .collect();
    if photometric == "MONOCHROME1" {
        px8.iter_mut().for_each(|v| *v = 255 - *v);
    }
    let mean = px8.iter().map(|v| u64::from(*v)).sum::<u64>() / px8.len().max(1) as u64;
    if mean < 128 {
        px8.iter_mut().for_each(|v| *v = 255 - *v);
    }
    Grey {
        w: cols,
        h: rows,
        px: px8,
    }
}

/// Runs Tesseract over one frame (as a PGM on its standard input) and returns the
/// lines it read, boxes in frame coordinates.
fn ocr(g: &Grey) -> Result<Vec<Line>, String> {
    let scale = if g.w < UPSCALE_BELOW { 2 } else { 1 };
    let (w, h) = (g.w * scale, g.h * scale);
    let mut pgm = format!("P5\n{w} {h}\n255\n").into_bytes();
    pgm.reserve((w * h) as usize);
    for y in 0..h {
        let row = (y / scale) as usize * g.w as usize;
        for x in 0..w {
            pgm.push(g.px[row + (x / scale) as usize]);
        }
    }
    let mut child = Command::new("tesseract")
        .args(["stdin", "stdout", "--psm", "11", "-l", "eng", "tsv"])
        .stdin(Stdio::piped())
        .stdout(Stdio::piped())
        .stderr(Stdio::null())
        .spawn()
        .map_err(|e| format!("cannot run tesseract: {e}"))?;
    let mut stdin = child.stdin.take().ok_or("no stdin")?;
    // Written from another thread: a large image fills the pipe before Tesseract
    // starts to write, and both would wait.
    let writer = std::thread::spawn(move || stdin.write_all(&pgm));
    let out = child
        .wait_with_output()
        .map_err(|e| format!("tesseract: {e}"))?;
    let _ = writer.join();
    if !out.status.success() {
        return Err(format!("tesseract exited with {}", out.status));
    }
    Ok(lines_of(&String::from_utf8_lossy(&out.stdout), scale))
}

/// Groups Tesseract's TSV words into lines (block, paragraph, line) with the box
/// around them.
fn lines_of(tsv: &str, scale: u32) -> Vec<Line> {
    let mut lines: Vec<((u32, u32, u32), Line)> = Vec::new();
    for row in tsv.lines().skip(1) {
        let c: Vec<&str> = row.split('\t').collect();
        if c.len() < 12 || c[0] != "5" {
            continue;
        }
        let word = c[11].trim();
        if word.is_empty() {
            continue;
        }
        let n = |i: usize| c[i].parse::<u32>().unwrap_or(0);
        let key = (n(2), n(3), n(4));
        let (x, y, w, h) = (
            n(6) / scale,
            n(7) / scale,
            n(8).div_ceil(scale),
            n(9).div_ceil(scale),
        );
        match lines.iter_mut().find(|(k, _)| *k == key) {
            Some((_, l)) => {
                let x1 = (l.x + l.w).max(x + w);
                let y1 = (l.y + l.h).max(y + h);
                l.x = l.x.min(x);
                l.y = l.y.min(y);
                l.w = x1 - l.x;
                l.h = y1 - l.y;
                l.text.push(' ');
                l.text.push_str(word);
            }
            None => lines.push((
                key,
                Line {
                    text: word.to_string(),
                    x,
                    y,
                    w,
                    h,
                },
            )),
        }
    }
    lines.into_iter().map(|(_, l)| l).collect()
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn long_cines_are_sampled_with_both_ends() {
        assert_eq!(sample(3), vec![0, 1, 2]);
        let s = sample(100);
        assert_eq!(s.len(), MAX_FRAMES as usize);
        assert_eq!((s[0], *s.last().unwrap()), (0, 99));
    }

    #[test]
    fn tsv_words_group_into_lines_with_boxes() {
        let tsv = "level\tpage_num\tblock_num\tpar_num\tline_num\tword_num\tleft\ttop\twidth\theight\tconf\ttext\n\
                   5\t1\t1\t1\t1\t1\t20\t10\t40\t20\t90\tPLANTED\n\
                   5\t1\t1\t1\t1\t2\t70\t12\t40\t20\t90\tNAME\n\
                   5\t1\t2\t1\t1\t1\t200\t100\t10\t10\t90\tX\n";
        let l = lines_of(tsv, 2);
        assert_eq!(l.len(), 2);
        assert_eq!(l[0].text, "PLANTED NAME");
        assert_eq!((l[0].x, l[0].y, l[0].w, l[0].h), (10, 5, 45, 11));
    }
}
