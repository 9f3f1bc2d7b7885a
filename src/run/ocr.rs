//! The text finder `pixels: {unmatched: ocr}` uses: Tesseract as a subprocess
//! (`tesseract stdin stdout tsv`), for the same reasons as `check --ocr` (Debian's
//! package is all it needs, nothing is linked in, a crash in the OCR engine stays
//! in its process). Its own code: the judge (`check`) shares none with the engine.

use crate::pixels::{Grey, TextFinder};
use crate::profile::pixels::Rect;
use std::io::Write;
use std::process::{Command, Stdio};

/// Frames narrower than this are doubled: Tesseract reads capitals of 20-40 pixels
/// best, and device text is often 10-15.
const DOUBLE_BELOW: u32 = 1000;
/// Words Tesseract is less sure of than this are still blanked: a missed box
/// leaks, an extra one costs a few pixels.
const MIN_CONFIDENCE: f64 = 0.0;

pub struct Tesseract;

impl Tesseract {
    /// The finder, when the `tesseract` program runs here.
    pub fn new() -> Option<Tesseract> {
        Command::new("tesseract")
            .arg("--version")
            .stdout(Stdio::null())
            .stderr(Stdio::null())
            .status()
            .ok()
            .filter(|s| s.success())
            .map(|_| Tesseract)
    }
}

impl TextFinder for Tesseract {
    fn find(&self, g: &Grey) -> Result<Vec<Rect>, String> {
        let k = if g.width < DOUBLE_BELOW { 2 } else { 1 };
        let (w, h) = (g.width * k, g.height * k);
        let mut image = format!("P5\n{w} {h}\n255\n").into_bytes();
        image.reserve((w * h) as usize);
        for y in 0..h {
            let row = &g.pixels[(y / k * g.width) as usize..][..g.width as usize];
            for x in 0..w {
                image.push(row[(x / k) as usize]);
            }
        }
        let mut child = Command::new("tesseract")
            .args(["stdin", "stdout", "--psm", "11", "-l", "eng", "tsv"])
            .stdin(Stdio::piped())
            .stdout(Stdio::piped())
            .stderr(Stdio::null())
            .spawn()
            .map_err(|e| format!("cannot run tesseract: {e}"))?;
        let mut stdin = child.stdin.take().ok_or("tesseract has no stdin")?;
        // Fed from a thread: Tesseract may fill its output pipe before reading all.
        let feeder = std::thread::spawn(move || stdin.write_all(&image));
        let out = child
            .wait_with_output()
            .map_err(|e| format!("tesseract: {e}"))?;
        let _ = feeder.join();
        if !out.status.success() {
            return Err(format!("tesseract exited with {}", out.status));
        }
        let mut boxes = Vec::new();
        for row in String::from_utf8_lossy(&out.stdout).lines().skip(1) {
            let f: Vec<&str> = row.split('\t').collect();
            // Level 5 rows are words: left, top, width, height, confidence, text.
            // Words without a letter or digit (a lone `/` read in image texture)
            // identify nobody; a date's digits are words of their own.
            if f.len() < 12 || f[0] != "5" || !f[11].chars().any(char::is_alphanumeric) {
                continue;
            }
            let conf: f64 = f[10].parse().unwrap_or(-1.0);
            if conf < MIN_CONFIDENCE {
                continue;
            }
            let n = |i: usize| f[i].parse::<u32>().unwrap_or(0);
            boxes.push(Rect {
                x: n(6) / k,
                y: n(7) / k,
                w: n(8).div_ceil(k).max(1),
                h: n(9).div_ceil(k).max(1),
            });
        }
        Ok(boxes)
    }
}
