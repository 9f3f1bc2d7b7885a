//! Burned-in text in compressed pixel data. Images with text drawn into them are
//! compressed by real tools (dcmtk's dcmcrle and dcmcjpeg), redacted through the
//! binary, and the outputs decoded by other real decoders (dcmtk, pydicom) to
//! compare with the input decoded by the same tools.

use crate::common::*;
use crate::pixels::{
    Image, SECONDARY_CAPTURE, US_MULTI_FRAME, have_tesseract, line_for, method_codes, ocr_findings,
    pixel_bytes, run_over, text_el, us_region,
};
use dicom_core::value::{PixelFragmentSequence, Value};
use dicom_core::{DataElement, VR};
use dicom_dictionary_std::tags;
use std::path::{Path, PathBuf};
use std::process::Command;

const RLE: &str = "1.2.840.10008.1.2.5";
const JPEG_BASELINE: &str = "1.2.840.10008.1.2.4.50";
const JPEG_LOSSLESS_SV1: &str = "1.2.840.10008.1.2.4.70";
const EXPLICIT_LE: &str = "1.2.840.10008.1.2.1";

/// dcmtk's codecs are here, or (CI) their absence fails the test.
fn dcmtk() -> bool {
    let have = ["dcmcrle", "dcmcjpeg", "dcmdrle", "dcmdjpeg", "dcmdump"]
        .iter()
        .all(|t| {
            Command::new(t)
                .arg("--version")
                .output()
                .is_ok_and(|o| o.status.success())
        });
    tool_available(
        "dcmtk (dcmcrle, dcmcjpeg, dcmdrle, dcmdjpeg, dcmdump; apt-get install dcmtk)",
        have,
    )
}

fn dcmtk_run(tool: &str, args: &[&str], input: &Path, output: &Path) {
    std::fs::create_dir_all(output.parent().unwrap()).unwrap();
    let o = Command::new(tool)
        .args(args)
        .arg(input)
        .arg(output)
        .output()
        .unwrap();
    assert!(
        o.status.success(),
        "{tool} {}: {}",
        input.display(),
        String::from_utf8_lossy(&o.stderr)
    );
}

fn ts_of(p: &Path) -> String {
    open(p)
        .meta()
        .transfer_syntax()
        .trim_end_matches(['\0', ' '])
        .to_string()
}

/// The native pixels of `p` as dcmtk decodes them (dcmdrle or dcmdjpeg; a native
/// file as it is), with the decoded file's Photometric Interpretation.
fn dcmtk_decoded(env: &Env, p: &Path, name: &str) -> (Vec<u8>, String) {
    let ts = ts_of(p);
    let decoded = if ts == RLE {
        let d = env.path(&format!("dcmtk/{name}"));
        dcmtk_run("dcmdrle", &[], p, &d);
        d
    } else if ts.starts_with("1.2.840.10008.1.2.4.") {
        let d = env.path(&format!("dcmtk/{name}"));
        dcmtk_run("dcmdjpeg", &[], p, &d);
        d
    } else {
        p.to_path_buf()
    };
    let photometric = text(
        open(&decoded)
            .element(tags::PHOTOMETRIC_INTERPRETATION)
            .unwrap(),
    );
    (pixel_bytes(&decoded), photometric)
}

/// pydicom decodes every file's pixel array; returns its shapes.
fn pydicom_shapes(files: &[PathBuf]) -> Vec<String> {
    let script = r#"
import sys, pydicom
for p in sys.argv[1:]:
    d = pydicom.dcmread(p)
    print(tuple(d.pixel_array.shape))
"#;
    let o = Command::new("python3")
        .arg("-c")
        .arg(script)
        .args(files)
        .output()
        .unwrap();
    assert!(o.status.success(), "{}", String::from_utf8_lossy(&o.stderr));
    String::from_utf8_lossy(&o.stdout)
        .lines()
        .map(str::to_string)
        .collect()
}

/// dcmdump reads the file without an error.
fn dcmdump_reads(p: &Path) {
    let o = Command::new("dcmdump").arg(p).output().unwrap();
    let err = String::from_utf8_lossy(&o.stderr);
    assert!(
        o.status.success() && !err.contains("E:"),
        "{}: {err}",
        p.display()
    );
}

/// dciodvfy reports no error on `output` that it did not report on `input`.
fn no_new_dciodvfy_errors(input: &Path, output: &Path) {
    let have = Command::new("dciodvfy").arg("/dev/null").output().is_ok();
    if !tool_available("dciodvfy (Debian dicom3tools)", have) {
        return;
    }
    let before = crate::validate::errors(input);
    let after = crate::validate::errors(output);
    let new: Vec<_> = after.difference(&before).collect();
    assert!(new.is_empty(), "{}: {new:?}", output.display());
}

fn output_of(l: &serde_json::Value) -> PathBuf {
    PathBuf::from(
        l["output"]
            .as_str()
            .unwrap_or_else(|| panic!("no output: {l}")),
    )
}

/// An ultrasound cine with regions and the patient's name burned above them.
fn ultrasound(samples: u16, photometric: &'static str, frames: u32) -> Image {
    us_image(samples, photometric, frames, (120, 160), (20, 50, 139, 109))
}

fn us_image(
    samples: u16,
    photometric: &'static str,
    frames: u32,
    (rows, cols): (u16, u16),
    (x0, y0, x1, y1): (u32, u32, u32, u32),
) -> Image {
    Image {
        class: US_MULTI_FRAME,
        rows,
        cols,
        samples,
        bits: 8,
        photometric,
        frames,
        extra: vec![
            text_el(tags::MODALITY, VR::CS, "US"),
            us_region(x0, y0, x1, y1),
        ],
        text: vec![("PLANTED", 4, 8, 2)],
    }
}

fn inside_us_region(x: usize, y: usize) -> bool {
    (20..=139).contains(&x) && (50..=109).contains(&y)
}

/// A GE dose screen (the built-in `ge-ct-dose-report` rule blanks its top 110 rows).
fn dose_screen() -> Image {
    Image {
        class: SECONDARY_CAPTURE,
        rows: 512,
        cols: 512,
        samples: 1,
        bits: 8,
        photometric: "MONOCHROME2",
        frames: 1,
        extra: vec![
            text_el(tags::MODALITY, VR::CS, "CT"),
            text_el(tags::MANUFACTURER, VR::LO, "GE MEDICAL SYSTEMS"),
            text_el(tags::SERIES_DESCRIPTION, VR::LO, "Dose Report"),
        ],
        text: vec![("PLANTED NAME", 10, 20, 4)],
    }
}

/// Writes `img` natively under `native/`, compresses it with `tool args` into
/// `in/name`; returns the native pixels.
fn compressed(env: &Env, img: &Image, name: &str, tool: &str, args: &[&str]) -> Vec<u8> {
    let native = env.path(&format!("native/{name}"));
    let pixels = img.write(&native);
    dcmtk_run(tool, args, &native, &env.path(&format!("in/{name}")));
    pixels
}

/// Every sample of every frame: inside the regions as `original` (within `tol`),
/// outside zero.
fn assert_regions(
    img: &Image,
    got: &[u8],
    original: &[u8],
    tol: u8,
    inside: impl Fn(usize, usize) -> bool,
) -> (usize, usize) {
    assert_eq!(got.len(), original.len());
    let (rows, cols, spp) = (img.rows as usize, img.cols as usize, img.samples as usize);
    let fl = img.frame_len();
    let (mut kept, mut exact) = (0, 0);
    for f in 0..img.frames as usize {
        for y in 0..rows {
            for x in 0..cols {
                let at = f * fl + (y * cols + x) * spp;
                for s in at..at + spp {
                    if inside(x, y) {
                        let d = got[s].abs_diff(original[s]);
                        assert!(
                            d <= tol,
                            "frame {f} pixel {x},{y}: {} vs {}",
                            got[s],
                            original[s]
                        );
                        kept += 1;
                        exact += usize::from(d == 0);
                    } else {
                        assert_eq!(got[s], 0, "frame {f} pixel {x},{y} blanked");
                    }
                }
            }
        }
    }
    (kept, exact)
}

fn assert_marked_clean(out: &Path) {
    let obj = open(out);
    assert_eq!(text(obj.element(tags::BURNED_IN_ANNOTATION).unwrap()), "NO");
    assert!(method_codes(out).contains(&"113101".to_string()));
}

#[test]
fn rle_ultrasound_keeps_its_regions_byte_for_byte_and_stays_rle() {
    if !dcmtk() {
        return;
    }
    for (samples, photometric) in [(3, "RGB"), (1, "MONOCHROME2")] {
        let env = Env::new();
        let img = ultrasound(samples, photometric, 3);
        let original = compressed(&env, &img, "us.dcm", "dcmcrle", &[]);
        let input = env.path("in/us.dcm");
        assert_eq!(ts_of(&input), RLE);
        let lines = run_over(&env, &env.path("in"), None);
        let l = line_for(&lines, "us.dcm");
        assert_eq!(l["status"], "ok", "{l}");
        let notes = l["notes"].to_string();
        assert!(
            notes.contains("rule `ultrasound-regions`")
                && notes.contains("re-encoded as RLE Lossless")
                && notes.contains("3 frame(s)"),
            "{notes}"
        );
        let out = output_of(l);
        assert_eq!(ts_of(&out), RLE, "RLE stays RLE");
        let (got, p) = dcmtk_decoded(&env, &out, "out.dcm");
        assert_eq!(p, photometric);
        let (kept, exact) = assert_regions(&img, &got, &original, 0, inside_us_region);
        assert_eq!(kept, exact);
        assert_marked_clean(&out);
        dcmdump_reads(&out);
        no_new_dciodvfy_errors(&input, &out);
        if external_tools(false) {
            let shape = if samples == 3 {
                "(3, 120, 160, 3)"
            } else {
                "(3, 120, 160)"
            };
            assert_eq!(pydicom_shapes(&[out]), vec![shape.to_string()]);
        }
    }
}

#[test]
fn an_rle_dose_screen_loses_its_header_band_and_nothing_else() {
    if !dcmtk() {
        return;
    }
    let env = Env::new();
    let img = dose_screen();
    let original = compressed(&env, &img, "dose.dcm", "dcmcrle", &[]);
    let lines = run_over(&env, &env.path("in"), None);
    let l = line_for(&lines, "dose.dcm");
    assert_eq!(l["status"], "ok", "{l}");
    assert!(l["notes"].to_string().contains("ge-ct-dose-report"), "{l}");
    let out = output_of(l);
    assert_eq!(ts_of(&out), RLE);
    let (got, _) = dcmtk_decoded(&env, &out, "out.dcm");
    let band = 512 * 110;
    assert!(got[..band].iter().all(|b| *b == 0), "the band is black");
    assert_eq!(got[band..], original[band..], "below the band: unchanged");
    assert_marked_clean(&out);
    no_new_dciodvfy_errors(&env.path("in/dose.dcm"), &out);
}

/// JPEG Baseline is decoded and written native: never encoded lossy again. The
/// kept region is compared with dcmtk's decoding of the same JPEG data (IJG
/// libjpeg). Two conforming decoders need not agree bit for bit: ISO 10918-2 lets
/// the inverse DCT differ by one, and chroma upsampling and YCbCr->RGB rounding
/// add to that; so kept samples must be within 3 of dcmtk's, and at least three
/// quarters equal (84% on this busy synthetic pattern when measured).
#[test]
fn jpeg_baseline_is_decompressed_to_native_rgb_with_its_regions_kept() {
    if !dcmtk() {
        return;
    }
    let env = Env::new();
    let img = ultrasound(3, "RGB", 2);
    compressed(&env, &img, "us.dcm", "dcmcjpeg", &["+eb"]);
    let input = env.path("in/us.dcm");
    assert_eq!(ts_of(&input), JPEG_BASELINE);
    let (reference, p) = dcmtk_decoded(&env, &input, "in.dcm");
    assert_eq!(p, "RGB", "dcmdjpeg converts to RGB");
    let lines = run_over(&env, &env.path("in"), None);
    let l = line_for(&lines, "us.dcm");
    assert_eq!(l["status"], "ok", "{l}");
    let notes = l["notes"].to_string();
    assert!(
        notes.contains("decompressed JPEG Baseline (Process 1) -> Explicit VR Little Endian"),
        "{notes}"
    );
    let out = output_of(l);
    assert_eq!(ts_of(&out), EXPLICIT_LE);
    let obj = open(&out);
    let t = |tag| obj.element(tag).map(text).unwrap_or_default();
    assert_eq!(t(tags::PHOTOMETRIC_INTERPRETATION), "RGB");
    assert_eq!(t(tags::PLANAR_CONFIGURATION), "0");
    assert_eq!(t(tags::LOSSY_IMAGE_COMPRESSION), "01");
    assert_eq!(t(tags::LOSSY_IMAGE_COMPRESSION_METHOD), "ISO_10918_1");
    assert!(
        t(tags::LOSSY_IMAGE_COMPRESSION_RATIO)
            .parse::<f64>()
            .unwrap()
            > 1.0,
        "a ratio is recorded"
    );
    let got = pixel_bytes(&out);
    let (kept, exact) = assert_regions(&img, &got, &reference, 3, inside_us_region);
    assert!(
        exact * 4 >= kept * 3,
        "{exact} of {kept} kept samples equal dcmtk's"
    );
    assert_marked_clean(&out);
    dcmdump_reads(&out);
    no_new_dciodvfy_errors(&input, &out);
    if external_tools(false) {
        assert_eq!(pydicom_shapes(&[out]), vec!["(2, 120, 160, 3)".to_string()]);
    }
}

/// Lossless JPEG decodes exactly: the output equals the original pixels outside
/// what the rule blanks, and is not marked lossy.
#[test]
fn jpeg_lossless_is_decompressed_exactly() {
    if !dcmtk() {
        return;
    }
    let env = Env::new();
    let img = dose_screen();
    let original = compressed(&env, &img, "dose.dcm", "dcmcjpeg", &["+e1"]);
    assert_eq!(ts_of(&env.path("in/dose.dcm")), JPEG_LOSSLESS_SV1);
    let lines = run_over(&env, &env.path("in"), None);
    let l = line_for(&lines, "dose.dcm");
    assert_eq!(l["status"], "ok", "{l}");
    let out = output_of(l);
    assert_eq!(ts_of(&out), EXPLICIT_LE);
    let got = pixel_bytes(&out);
    let band = 512 * 110;
    assert!(got[..band].iter().all(|b| *b == 0));
    assert_eq!(got[band..], original[band..]);
    let obj = open(&out);
    assert!(
        obj.element(tags::LOSSY_IMAGE_COMPRESSION)
            .map(text)
            .is_ok_and(|v| v != "01")
            || obj.element(tags::LOSSY_IMAGE_COMPRESSION).is_err()
    );
    no_new_dciodvfy_errors(&env.path("in/dose.dcm"), &out);
}

/// OCR (Tesseract, through `check --ocr`) reads the planted name in the compressed
/// inputs and nothing in the outputs, RLE ones included: `check` has dcmtk
/// decompress them into a private temporary copy (a decoder that is not the
/// engine's), and says so when it cannot.
#[test]
fn check_ocr_finds_the_name_in_compressed_inputs_and_nothing_after_the_run() {
    if !have_tesseract() || !dcmtk() {
        return;
    }
    let env = Env::new();
    let us = Image {
        rows: 480,
        cols: 640,
        extra: vec![
            text_el(tags::MODALITY, VR::CS, "US"),
            us_region(40, 120, 599, 459),
        ],
        text: vec![("PLANTED NAME", 20, 20, 5), ("ID12345", 20, 70, 5)],
        ..ultrasound(3, "RGB", 2)
    };
    let mut dose = dose_screen();
    dose.text = vec![("PLANTED NAME", 10, 20, 5)];
    compressed(&env, &us, "us.dcm", "dcmcrle", &[]);
    compressed(&env, &dose, "dose.dcm", "dcmcjpeg", &["+eb"]);
    let before = ocr_findings(&env, &env.path("in"), None, "before.jsonl");
    assert!(
        before.iter().filter(|d| d.contains("patient-name")).count() >= 2,
        "OCR must find the planted name in both compressed inputs: {before:?}"
    );
    assert!(
        !before.iter().any(|d| d.contains("not OCR-checked")),
        "{before:?}"
    );
    let lines = run_over(&env, &env.path("in"), None);
    let after_dir = env.path("after");
    std::fs::create_dir_all(&after_dir).unwrap();
    let mut syntaxes = Vec::new();
    for name in ["us.dcm", "dose.dcm"] {
        let l = line_for(&lines, name);
        assert_eq!(l["status"], "ok", "{l}");
        let out = output_of(l);
        syntaxes.push(ts_of(&out));
        std::fs::copy(&out, after_dir.join(name)).unwrap();
    }
    assert!(
        syntaxes.iter().any(|t| t == RLE),
        "one output stays RLE: {syntaxes:?}"
    );
    let after = ocr_findings(&env, &after_dir, Some(&env.path("native")), "after.jsonl");
    assert!(after.is_empty(), "{after:?}");
}

/// Real compressed ultrasound from the corpus: written redacted, the regions
/// kept (RLE: exactly, as pydicom decodes input and output; lossless JPEG:
/// exactly, against dcmdjpeg; JPEG Baseline: within 3 of dcmdjpeg), and a JPEG
/// 2000 file a rule matches stays quarantined because it cannot be decoded.
#[test]
fn real_compressed_ultrasound_is_written_redacted() {
    if !dcmtk() || !external_tools(false) {
        return;
    }
    let env = Env::new();
    let files = [
        (
            "pixels/us_rle_palette_regions_2frame.dcm",
            0,
            "re-encoded as RLE Lossless",
        ),
        (
            "pixels/us_jpeg_ybr_regions_30frame.dcm",
            3,
            "decompressed JPEG Baseline (Process 1) -> Explicit VR Little Endian",
        ),
        (
            "pixels/us_jpeg_lossless_regions.dcm",
            0,
            "-> Explicit VR Little Endian",
        ),
        ("pixels/us_j2k.dcm", 0, ""),
    ];
    let input = env.inputs(&files.map(|f| f.0));
    let prof = env.path("p.yaml");
    std::fs::write(
        &prof,
        "extends: basic\npixels:\n  rules:\n    - name: site-us-banner\n      when: {all: [{tag: Modality, equals: US}, {tag: SequenceOfUltrasoundRegions, absent: true}]}\n      blank: [[0, 0, 640, 40]]\n",
    )
    .unwrap();
    let lines = run_over(&env, &input, Some(&prof));
    for (f, tol, note) in &files[..3] {
        let name = f.trim_start_matches("pixels/");
        let l = line_for(&lines, name);
        assert_eq!(l["status"], "ok", "{l}");
        let notes = l["notes"].to_string();
        assert!(
            notes.contains("rule `ultrasound-regions`") && notes.contains(note),
            "{notes}"
        );
        let out = output_of(l);
        let reference = if ts_of(&testdata(f)) == RLE {
            testdata(f)
        } else {
            let d = env.path(&format!("dcmtk/{name}"));
            dcmtk_run("dcmdjpeg", &[], &testdata(f), &d);
            d
        };
        // pydicom decodes both; inside every region the output equals the input.
        let script = r#"
import sys, pydicom, numpy as np
ref, out, tol = pydicom.dcmread(sys.argv[1]), pydicom.dcmread(sys.argv[2]), int(sys.argv[3])
a, b = ref.pixel_array.astype(int), out.pixel_array.astype(int)
assert a.shape == b.shape, (a.shape, b.shape)
if a.ndim == 2 or (a.ndim == 3 and ref.SamplesPerPixel == 3):
    a, b = a[None], b[None]
inside = np.zeros(a.shape[1:3], bool)
for r in ref.SequenceOfUltrasoundRegions:
    inside[r.RegionLocationMinY0:r.RegionLocationMaxY1 + 1, r.RegionLocationMinX0:r.RegionLocationMaxX1 + 1] = True
d = np.abs(a - b)[:, inside]
assert d.max() <= tol, d.max()
assert (a != b).any(), "something was blanked"
print("ok", out.file_meta.TransferSyntaxUID.name, b.shape)
"#;
        let o = Command::new("python3")
            .arg("-c")
            .arg(script)
            .arg(&reference)
            .arg(&out)
            .arg(tol.to_string())
            .output()
            .unwrap();
        assert!(
            o.status.success(),
            "{name}: {}",
            String::from_utf8_lossy(&o.stderr)
        );
        dcmdump_reads(&out);
        no_new_dciodvfy_errors(&testdata(f), &out);
    }
    let l = line_for(&lines, "us_j2k.dcm");
    assert_eq!(l["status"], "failed", "{l}");
    let reason = l["reason"].as_str().unwrap();
    assert!(
        reason.contains("site-us-banner")
            && reason.contains("JPEG 2000")
            && reason.contains("cannot decode"),
        "{reason}"
    );
    assert!(!env.path("out/us_j2k.dcm").exists());
}

/// Rewrites `src`'s single fragment with `f` (the Basic Offset Table emptied).
fn with_fragment(src: &Path, dst: &Path, f: Vec<u8>) {
    let mut obj = open(src);
    obj.put(DataElement::new(
        tags::PIXEL_DATA,
        VR::OB,
        Value::PixelSequence(PixelFragmentSequence::new(Vec::<u32>::new(), vec![f])),
    ));
    obj.write_to_file(dst).unwrap();
}

fn fragment(p: &Path) -> Vec<u8> {
    let obj = open(p);
    let frags = obj
        .element(tags::PIXEL_DATA)
        .unwrap()
        .value()
        .fragments()
        .unwrap()
        .to_vec();
    assert_eq!(frags.len(), 1);
    frags.into_iter().next().unwrap()
}

/// Truncated and garbled fragments: each file is written (when the bytes still
/// decode) or quarantined with a reason naming the frame and the fault; never a
/// panic, never a partial output.
#[test]
fn corrupt_fragments_are_quarantined_with_a_reason_never_a_panic() {
    if !dcmtk() {
        return;
    }
    let env = Env::new();
    let img = us_image(3, "RGB", 1, (64, 80), (10, 10, 69, 53));
    compressed(&env, &img, "rle.dcm", "dcmcrle", &[]);
    compressed(&env, &img, "jpeg.dcm", "dcmcjpeg", &["+eb"]);
    let bad = env.path("bad");
    std::fs::create_dir_all(&bad).unwrap();
    let mut must_fail = Vec::new();
    let mut n = 0;
    for (kind, src) in [
        ("rle", env.path("in/rle.dcm")),
        ("jpeg", env.path("in/jpeg.dcm")),
    ] {
        let good = fragment(&src);
        let len = good.len();
        let mut variant = |f: Vec<u8>, fails: bool| {
            n += 1;
            let name = format!("{kind}_{n:03}.dcm");
            with_fragment(&src, &bad.join(&name), f);
            if fails {
                must_fail.push(name);
            }
        };
        for cut in [0, 1, 10, 63, 64, 65, len / 3, len / 2, len - 40] {
            // Any RLE frame cut short lacks bytes of a segment; a JPEG cut before
            // its scan has no image.
            variant(good[..cut].to_vec(), kind == "rle" || cut <= 64);
        }
        let mut seed = 0x9E37_79B9u32;
        for i in 0..40 {
            let mut f = good.clone();
            for _ in 0..=(i % 4) {
                seed ^= seed << 13;
                seed ^= seed >> 17;
                seed ^= seed << 5;
                let at = seed as usize % len;
                f[at] = (seed >> 8) as u8;
            }
            variant(f, false);
        }
        if kind == "rle" {
            let mut f = good.clone();
            f[0] = 9; // 9 segments for a 3-sample 8-bit image
            variant(f, true);
            let mut f = good.clone();
            f[8..12].copy_from_slice(&u32::MAX.to_le_bytes());
            variant(f, true);
        } else {
            // The frame header's size (SOF0 height) made larger than Rows.
            let sof = good.windows(2).position(|w| w == [0xFF, 0xC0]).unwrap();
            let mut f = good.clone();
            f[sof + 5] = 0x7F;
            variant(f, true);
        }
    }
    let key = env.key("key", 3);
    let out = env.path("out");
    let rep = env.path("report.jsonl");
    let o = run(&[
        &"run",
        &bad,
        &"--out",
        &out,
        &"--key-file",
        &key,
        &"--report",
        &rep,
        &"--layout",
        &"mirror",
    ]);
    let stderr = String::from_utf8_lossy(&o.stderr);
    assert!(matches!(o.status.code(), Some(0 | 1)), "{stderr}");
    assert!(!stderr.contains("panic"), "{stderr}");
    let (lines, _) = report(&rep);
    let mut failed = 0;
    for l in &lines {
        let name = l["input"]
            .as_str()
            .unwrap()
            .rsplit('/')
            .next()
            .unwrap()
            .to_string();
        let written = out.join(&name).exists();
        match l["status"].as_str().unwrap() {
            "ok" => {
                assert!(!must_fail.contains(&name), "{name} should fail: {l}");
                assert!(written);
            }
            "failed" => {
                failed += 1;
                let reason = l["reason"].as_str().unwrap();
                assert!(
                    reason.starts_with("quarantined:") && !reason.contains("internal"),
                    "{name}: {reason}"
                );
                assert!(
                    reason.contains("frame 1") || reason.contains("encapsulated Pixel Data"),
                    "{name}: {reason}"
                );
                assert!(!written, "{name}: no partial output");
            }
            s => panic!("{name}: {s}: {l}"),
        }
    }
    assert_eq!(lines.len(), n);
    assert!(failed >= must_fail.len(), "{failed} failed");
}

/// Frames split over several fragments: grouped by the Basic Offset Table
/// (dcmcjpeg/dcmcrle `+fs 1`: fragments of at most 1 KiB), or all fragments for a
/// single frame when the table is empty. Several frames with an empty table are
/// ambiguous: quarantined with that reason. A rule that blanks nothing in a
/// compressed file quarantines it, as for native data.
#[test]
fn fragmented_frames_are_grouped_by_the_offset_table() {
    if !dcmtk() {
        return;
    }
    let env = Env::new();
    let cine = ultrasound(3, "RGB", 3);
    let single = ultrasound(1, "MONOCHROME2", 1);
    compressed(
        &env,
        &cine,
        "jpeg_bot.dcm",
        "dcmcjpeg",
        &["+eb", "+fs", "1"],
    );
    let rle_single = compressed(
        &env,
        &single,
        "rle_single.dcm",
        "dcmcrle",
        &["+fs", "1", "-ot"],
    );
    compressed(
        &env,
        &cine,
        "rle_no_bot.dcm",
        "dcmcrle",
        &["+fs", "1", "-ot"],
    );
    let fragments = |p: &Path| {
        open(p)
            .element(tags::PIXEL_DATA)
            .unwrap()
            .value()
            .fragments()
            .unwrap()
            .len()
    };
    assert!(fragments(&env.path("in/jpeg_bot.dcm")) > 3);
    assert!(fragments(&env.path("in/rle_single.dcm")) > 1);
    let (reference, _) = dcmtk_decoded(&env, &env.path("in/jpeg_bot.dcm"), "jpeg_bot.dcm");
    let lines = run_over(&env, &env.path("in"), None);
    let l = line_for(&lines, "jpeg_bot.dcm");
    assert_eq!(l["status"], "ok", "{l}");
    let got = pixel_bytes(&output_of(l));
    assert_regions(&cine, &got, &reference, 3, inside_us_region);
    let l = line_for(&lines, "rle_single.dcm");
    assert_eq!(l["status"], "ok", "{l}");
    let (got, _) = dcmtk_decoded(&env, &output_of(l), "rle_single_out.dcm");
    assert_regions(&single, &got, &rle_single, 0, inside_us_region);
    let l = line_for(&lines, "rle_no_bot.dcm");
    assert_eq!(l["status"], "failed", "{l}");
    assert!(
        l["reason"]
            .as_str()
            .unwrap()
            .contains("which fragments make which frame is unknown"),
        "{l}"
    );
    // A rule whose rectangle misses the image.
    let prof = env.path("p.yaml");
    std::fs::write(
        &prof,
        "extends: basic\npixels:\n  rules:\n    - name: far-away\n      when: {tag: Modality, equals: US}\n      blank: [[5000, 5000, 10, 10]]\n",
    )
    .unwrap();
    std::fs::remove_dir_all(env.path("out")).unwrap();
    let lines = run_over(&env, &env.path("in"), Some(&prof));
    let l = line_for(&lines, "rle_single.dcm");
    assert_eq!(l["status"], "failed", "{l}");
    assert!(
        l["reason"]
            .as_str()
            .unwrap()
            .contains("`far-away` blanks nothing"),
        "{l}"
    );
}

/// `unmatched: ocr` on compressed files: frames are decoded for Tesseract, the
/// boxes it finds are blanked, and the file is written as for a rule (RLE stays
/// RLE, JPEG becomes native); a compressed file without text is copied as it is.
#[test]
fn unmatched_ocr_reads_compressed_frames() {
    if !have_tesseract() || !dcmtk() {
        return;
    }
    let env = Env::new();
    let sc = |text: Vec<(&'static str, usize, usize, usize)>| Image {
        class: SECONDARY_CAPTURE,
        rows: 240,
        cols: 320,
        samples: 1,
        bits: 8,
        photometric: "MONOCHROME2",
        frames: 2,
        extra: vec![text_el(tags::MODALITY, VR::CS, "OT")],
        text,
    };
    let text = || vec![("PLANTED NAME", 16, 30, 4), ("ID12345", 16, 150, 4)];
    let rle_pixels = compressed(&env, &sc(text()), "text_rle.dcm", "dcmcrle", &[]);
    compressed(&env, &sc(text()), "text_jpeg.dcm", "dcmcjpeg", &["+eb"]);
    compressed(&env, &sc(Vec::new()), "plain_rle.dcm", "dcmcrle", &[]);
    let prof = env.path("p.yaml");
    std::fs::write(&prof, "extends: basic\npixels: {unmatched: ocr}\n").unwrap();
    let lines = run_over(&env, &env.path("in"), Some(&prof));
    let after_dir = env.path("after");
    for name in ["text_rle.dcm", "text_jpeg.dcm"] {
        let l = line_for(&lines, name);
        assert_eq!(l["status"], "ok", "{l}");
        let notes = l["notes"].to_string();
        assert!(
            notes.contains("pixels: ocr") && notes.contains("box(es) blanked"),
            "{notes}"
        );
        assert!(!notes.contains("PLANTED"), "{notes}");
        let out = output_of(l);
        assert_marked_clean(&out);
        if name == "text_rle.dcm" {
            assert_eq!(ts_of(&out), RLE);
            dcmtk_run("dcmdrle", &[], &out, &after_dir.join(name));
            let got = pixel_bytes(&after_dir.join(name));
            // Rows far from the text are untouched.
            assert_eq!(got[100 * 320..110 * 320], rle_pixels[100 * 320..110 * 320]);
            assert_ne!(got, rle_pixels);
        } else {
            assert_eq!(ts_of(&out), EXPLICIT_LE);
            std::fs::create_dir_all(&after_dir).unwrap();
            std::fs::copy(&out, after_dir.join(name)).unwrap();
        }
    }
    let l = line_for(&lines, "plain_rle.dcm");
    assert_eq!(l["status"], "ok", "{l}");
    assert!(l["notes"].to_string().contains("found no text"), "{l}");
    let out = output_of(l);
    assert_eq!(ts_of(&out), RLE);
    assert_eq!(
        open(&out)
            .element(tags::PIXEL_DATA)
            .unwrap()
            .value()
            .fragments(),
        open(&env.path("in/plain_rle.dcm"))
            .element(tags::PIXEL_DATA)
            .unwrap()
            .value()
            .fragments(),
        "copied as it is"
    );
    let after = ocr_findings(&env, &after_dir, Some(&env.path("native")), "after.jsonl");
    assert!(after.is_empty(), "{after:?}");
}
