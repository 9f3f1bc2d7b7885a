//! Burned-in text: pixel rules redact what they name and the gate stays shut for
//! the rest. Files are made here with a bright "text" banner where devices burn
//! their patient line, written through the real binary, and read back.

use crate::common::*;
use dicom_core::value::DataSetSequence;
use dicom_core::{DataElement, Length, PrimitiveValue, Tag, VR};
use dicom_dictionary_std::tags;
use dicom_object::{FileMetaTableBuilder, InMemDicomObject};
use std::path::Path;
use std::process::Command;

pub(crate) const US_MULTI_FRAME: &str = "1.2.840.10008.5.1.4.1.1.3.1";
pub(crate) const SECONDARY_CAPTURE: &str = "1.2.840.10008.5.1.4.1.1.7";

/// An image: header elements, geometry and pixel bytes, written in explicit VR LE.
pub(crate) struct Image {
    pub(crate) class: &'static str,
    pub(crate) rows: u16,
    pub(crate) cols: u16,
    pub(crate) samples: u16,
    pub(crate) bits: u16,
    pub(crate) photometric: &'static str,
    pub(crate) frames: u32,
    pub(crate) extra: Vec<DataElement<InMemDicomObject>>,
    /// Text drawn bright into every frame: (text, x, y, scale).
    pub(crate) text: Vec<(&'static str, usize, usize, usize)>,
}

impl Image {
    pub(crate) fn frame_len(&self) -> usize {
        self.rows as usize * self.cols as usize * self.samples as usize * (self.bits as usize / 8)
    }

    /// A dark, low-contrast pattern of non-zero values, different in each frame,
    /// with the image's text drawn bright on top, as devices burn it in.
    pub(crate) fn pixels(&self) -> Vec<u8> {
        let mut out = Vec::with_capacity(self.frame_len() * self.frames as usize);
        let row_bytes = self.frame_len() / self.rows as usize;
        let spp = row_bytes / self.cols as usize;
        for f in 0..self.frames as usize {
            let start = out.len();
            for y in 0..self.rows as usize {
                for i in 0..row_bytes {
                    out.push(((y * 3 + i * 5 + f * 13) % 40 + 10) as u8);
                }
            }
            let frame = &mut out[start..];
            for (t, x, y, scale) in &self.text {
                font::draw(t, *x, *y, *scale, |px, py| {
                    if px < self.cols as usize && py < self.rows as usize {
                        let at = py * row_bytes + px * spp;
                        frame[at..at + spp].fill(0xF0);
                    }
                });
            }
        }
        out
    }

    pub(crate) fn write(&self, path: &Path) -> Vec<u8> {
        let pixels = self.pixels();
        let us = |tag, v: u16| DataElement::new(tag, VR::US, PrimitiveValue::from(v));
        let mut obj = InMemDicomObject::from_element_iter([
            DataElement::new(
                tags::SOP_CLASS_UID,
                VR::UI,
                PrimitiveValue::from(self.class),
            ),
            DataElement::new(
                tags::SOP_INSTANCE_UID,
                VR::UI,
                PrimitiveValue::from("2.25.4242"),
            ),
            DataElement::new(
                tags::STUDY_INSTANCE_UID,
                VR::UI,
                PrimitiveValue::from("2.25.4243"),
            ),
            DataElement::new(
                tags::SERIES_INSTANCE_UID,
                VR::UI,
                PrimitiveValue::from("2.25.4244"),
            ),
            DataElement::new(
                tags::PATIENT_NAME,
                VR::PN,
                PrimitiveValue::from("PLANTED^NAME"),
            ),
            DataElement::new(tags::PATIENT_ID, VR::LO, PrimitiveValue::from("ID12345")),
            us(tags::ROWS, self.rows),
            us(tags::COLUMNS, self.cols),
            us(tags::SAMPLES_PER_PIXEL, self.samples),
            us(tags::BITS_ALLOCATED, self.bits),
            us(tags::BITS_STORED, self.bits),
            us(tags::HIGH_BIT, self.bits - 1),
            us(tags::PIXEL_REPRESENTATION, 0),
            DataElement::new(
                tags::PHOTOMETRIC_INTERPRETATION,
                VR::CS,
                PrimitiveValue::from(self.photometric),
            ),
            DataElement::new(
                tags::PIXEL_DATA,
                VR::OB,
                PrimitiveValue::from(pixels.clone()),
            ),
        ]);
        if self.samples == 3 {
            obj.put(us(tags::PLANAR_CONFIGURATION, 0));
        }
        if self.frames > 1 {
            obj.put(DataElement::new(
                tags::NUMBER_OF_FRAMES,
                VR::IS,
                PrimitiveValue::from(self.frames.to_string()),
            ));
        }
        for e in &self.extra {
            obj.put(e.clone());
        }
        let file = obj
            .with_meta(
                FileMetaTableBuilder::new()
                    .media_storage_sop_class_uid(self.class)
                    .media_storage_sop_instance_uid("2.25.4242")
                    .transfer_syntax("1.2.840.10008.1.2.1"),
            )
            .unwrap();
        std::fs::create_dir_all(path.parent().unwrap()).unwrap();
        file.write_to_file(path).unwrap();
        pixels
    }
}

pub(crate) fn text_el(tag: Tag, vr: VR, v: &str) -> DataElement<InMemDicomObject> {
    DataElement::new(tag, vr, PrimitiveValue::from(v))
}

/// One ultrasound region, corners inclusive.
pub(crate) fn us_region(x0: u32, y0: u32, x1: u32, y1: u32) -> DataElement<InMemDicomObject> {
    let ul = |e, v: u32| DataElement::new(Tag(0x0018, e), VR::UL, PrimitiveValue::from(v));
    let item = InMemDicomObject::from_element_iter([
        ul(0x6018, x0),
        ul(0x601A, y0),
        ul(0x601C, x1),
        ul(0x601E, y1),
    ]);
    DataElement::new(
        Tag(0x0018, 0x6011),
        VR::SQ,
        DataSetSequence::new(vec![item], Length::UNDEFINED),
    )
}

fn icon() -> DataElement<InMemDicomObject> {
    let item = InMemDicomObject::from_element_iter([DataElement::new(
        tags::ROWS,
        VR::US,
        PrimitiveValue::from(8u16),
    )]);
    DataElement::new(
        Tag(0x0088, 0x0200),
        VR::SQ,
        DataSetSequence::new(vec![item], Length::UNDEFINED),
    )
}

pub(crate) fn pixel_bytes(p: &Path) -> Vec<u8> {
    open(p)
        .element(tags::PIXEL_DATA)
        .unwrap()
        .to_bytes()
        .unwrap()
        .to_vec()
}

/// Runs the default profile (or `profile`) over `input`; returns the report lines.
pub(crate) fn run_over(env: &Env, input: &Path, profile: Option<&Path>) -> Vec<serde_json::Value> {
    let key = env.key("key", 3);
    let out = env.path("out");
    let rep = env.path("report.jsonl");
    let mut args: Vec<&dyn AsRef<std::ffi::OsStr>> = vec![
        &"run",
        &input,
        &"--out",
        &out,
        &"--key-file",
        &key,
        &"--report",
        &rep,
        &"--layout",
        &"mirror",
    ];
    if let Some(p) = &profile {
        args.push(&"--profile");
        args.push(p);
    }
    let o = run(&args);
    assert!(
        matches!(o.status.code(), Some(0) | Some(2) | Some(1)),
        "{}",
        String::from_utf8_lossy(&o.stderr)
    );
    report(&rep).0
}

pub(crate) fn line_for<'a>(lines: &'a [serde_json::Value], name: &str) -> &'a serde_json::Value {
    lines
        .iter()
        .find(|l| l["input"].as_str().is_some_and(|i| i.ends_with(name)))
        .unwrap_or_else(|| panic!("no report line for {name}: {lines:?}"))
}

pub(crate) fn method_codes(p: &Path) -> Vec<String> {
    let obj = open(p);
    let Ok(e) = obj.element(Tag(0x0012, 0x0064)) else {
        return Vec::new();
    };
    e.items()
        .unwrap_or(&[])
        .iter()
        .filter_map(|i| i.get(Tag(0x0008, 0x0100)).map(text))
        .collect()
}

#[test]
fn ultrasound_keeps_its_regions_byte_for_byte_and_loses_the_rest() {
    let env = Env::new();
    let img = Image {
        class: US_MULTI_FRAME,
        rows: 120,
        cols: 160,
        samples: 3,
        bits: 8,
        photometric: "RGB",
        frames: 3,
        extra: vec![
            text_el(tags::MODALITY, VR::CS, "US"),
            us_region(20, 50, 139, 109),
            icon(),
        ],
        text: vec![("PLANTED", 4, 8, 2)],
    };
    let input = env.path("in");
    let original = img.write(&input.join("us.dcm"));
    let lines = run_over(&env, &input, None);
    let l = line_for(&lines, "us.dcm");
    assert_eq!(l["status"], "ok", "{l}");
    let notes = l["notes"].to_string();
    assert!(
        notes.contains("pixels: rule `ultrasound-regions`"),
        "{notes}"
    );
    let out = Path::new(l["output"].as_str().unwrap());
    let got = pixel_bytes(out);
    assert_eq!(got.len(), original.len());
    let (rows, cols, fl) = (120usize, 160usize, img.frame_len());
    for f in 0..3 {
        for y in 0..rows {
            for x in 0..cols {
                let at = f * fl + (y * cols + x) * 3;
                let inside = (20..=139).contains(&x) && (50..=109).contains(&y);
                if inside {
                    assert_eq!(
                        got[at..at + 3],
                        original[at..at + 3],
                        "kept pixel {f}/{x},{y}"
                    );
                } else {
                    assert_eq!(got[at..at + 3], [0, 0, 0], "blanked pixel {f}/{x},{y}");
                }
            }
        }
    }
    let obj = open(out);
    assert_eq!(text(obj.element(tags::BURNED_IN_ANNOTATION).unwrap()), "NO");
    assert!(obj.element(Tag(0x0088, 0x0200)).is_err(), "icon removed");
    assert!(method_codes(out).contains(&"113101".to_string()));
}

#[test]
fn a_dose_screen_is_blanked_where_the_builtin_rule_says() {
    let env = Env::new();
    let img = Image {
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
    };
    let input = env.path("in");
    let original = img.write(&input.join("dose.dcm"));
    let lines = run_over(&env, &input, None);
    let l = line_for(&lines, "dose.dcm");
    assert_eq!(l["status"], "ok", "{l}");
    assert!(l["notes"].to_string().contains("ge-ct-dose-report"), "{l}");
    let got = pixel_bytes(Path::new(l["output"].as_str().unwrap()));
    let band = 512 * 110;
    assert!(
        got[..band].iter().all(|b| *b == 0),
        "the dose header band is black"
    );
    assert_eq!(got[band..], original[band..], "below the band: unchanged");
}

#[test]
fn files_no_rule_matches_stay_quarantined_and_the_reason_names_the_closest_rule() {
    let env = Env::new();
    let input = env.inputs(&["pixels/us_rgb_no_regions.dcm"]);
    Image {
        class: SECONDARY_CAPTURE,
        rows: 64,
        cols: 64,
        samples: 1,
        bits: 8,
        photometric: "MONOCHROME2",
        frames: 1,
        extra: vec![text_el(tags::MODALITY, VR::CS, "CT")],
        text: Vec::new(),
    }
    .write(&input.join("sc.dcm"));
    let lines = run_over(&env, &input, None);
    for name in ["us_rgb_no_regions.dcm", "sc.dcm"] {
        let l = line_for(&lines, name);
        assert_eq!(l["status"], "failed", "{l}");
        let reason = l["reason"].as_str().unwrap();
        assert!(
            reason.contains("no pixel rule matches (closest: `"),
            "{reason}"
        );
        assert!(!reason.contains("PLANTED"), "{reason}");
    }
    assert!(!env.path("out").join("sc.dcm").exists());
}

#[test]
fn unmatched_blank_writes_every_frame_black() {
    let env = Env::new();
    let input = env.inputs(&["pixels/us_rgb_no_regions.dcm"]);
    let prof = env.path("p.yaml");
    std::fs::write(&prof, "extends: basic\npixels: {unmatched: blank}\n").unwrap();
    let lines = run_over(&env, &input, Some(&prof));
    let l = line_for(&lines, "us_rgb_no_regions.dcm");
    assert_eq!(l["status"], "ok", "{l}");
    assert!(l["notes"].to_string().contains("unmatched: blank"), "{l}");
    let got = pixel_bytes(Path::new(l["output"].as_str().unwrap()));
    assert_eq!(got.len(), 320 * 240 * 3);
    assert!(got.iter().all(|b| *b == 0));
}

#[test]
fn a_rule_that_blanks_nothing_quarantines_instead_of_marking_clean() {
    let env = Env::new();
    let input = env.inputs(&["pixels/us_rgb_no_regions.dcm"]);
    let prof = env.path("p.yaml");
    std::fs::write(
        &prof,
        "extends: basic\npixels:\n  rules:\n    - name: far-away\n      when: {tag: Modality, equals: US}\n      blank: [[5000, 5000, 10, 10]]\n",
    )
    .unwrap();
    let lines = run_over(&env, &input, Some(&prof));
    let l = line_for(&lines, "us_rgb_no_regions.dcm");
    assert_eq!(l["status"], "failed", "{l}");
    assert!(
        l["reason"]
            .as_str()
            .unwrap()
            .contains("`far-away` blanks nothing"),
        "{l}"
    );
}

#[test]
fn real_samples_are_written_redacted_and_decode_in_pydicom() {
    let env = Env::new();
    let files = [
        "pixels/us_palette_regions.dcm",
        "pixels/us_rgb_no_regions.dcm",
        "pixels/sc_ybr_full_422.dcm",
        "pixels/sc_rgb_odd_3x3.dcm",
        "pixels/sc_rgb_implicit.dcm",
    ];
    let input = env.inputs(&files);
    let prof = env.path("p.yaml");
    std::fs::write(
        &prof,
        "extends: basic\npixels:\n  rules:\n    - name: site-sc-top-band\n      when: {tag: SOPClassUID, equals: 1.2.840.10008.5.1.4.1.1.7}\n      blank: [[0, 0, 4096, 20]]\n    - name: site-us-banner\n      when: {all: [{tag: Modality, equals: US}, {tag: SequenceOfUltrasoundRegions, absent: true}]}\n      blank: [[0, 0, 320, 30]]\n",
    )
    .unwrap();
    let lines = run_over(&env, &input, Some(&prof));
    let mut outs = Vec::new();
    for f in files {
        let l = line_for(&lines, f.trim_start_matches("pixels/"));
        assert_eq!(l["status"], "ok", "{l}");
        assert!(l["notes"].to_string().contains("pixels: rule"), "{l}");
        let out = l["output"].as_str().unwrap().to_string();
        let orig = pixel_bytes(&testdata(f));
        let got = pixel_bytes(Path::new(&out));
        assert_eq!(orig.len(), got.len(), "{f}");
        assert_ne!(orig, got, "{f}: something was blanked");
        outs.push(out);
    }
    // RGB without regions: the 30-row banner black, the rest as it was.
    let got = pixel_bytes(Path::new(&outs[1]));
    let orig = pixel_bytes(&testdata(files[1]));
    assert!(got[..320 * 30 * 3].iter().all(|b| *b == 0));
    assert_eq!(got[320 * 30 * 3..], orig[320 * 30 * 3..]);
    if !external_tools(false) {
        return;
    }
    // pydicom decodes every output, and what the rules blanked renders black.
    let script = r#"
import sys, pydicom
for p in sys.argv[1:]:
    d = pydicom.dcmread(p)
    a = d.pixel_array
    assert a.size > 0, p
    if d.PhotometricInterpretation == "RGB":
        assert (a[:3] == 0).all(), p
    print("ok", d.PhotometricInterpretation, a.shape)
"#;
    let o = Command::new("python3")
        .arg("-c")
        .arg(script)
        .args(&outs)
        .output()
        .unwrap();
    assert!(o.status.success(), "{}", String::from_utf8_lossy(&o.stderr));
    assert_eq!(String::from_utf8_lossy(&o.stdout).matches("ok").count(), 5);
}

#[test]
fn profile_check_reports_bad_pixel_rules_with_their_lines() {
    let env = Env::new();
    let prof = env.path("p.yaml");
    std::fs::write(
        &prof,
        "extends: basic\npixels:\n  rules:\n    - name: empty\n      when: {tag: Modality, equals: US}\n      blank: [[0, 0, 0, 10]]\n    - name: huge\n      when: {tag: Modality, equals: US}\n      blank: [[0, 0, 90000, 10]]\n    - name: typo\n      when: {tag: Modality, equals: US}\n      keep: ultrasound-region\n",
    )
    .unwrap();
    let o = run(&[&"profile", &"check", &prof]);
    assert_ne!(o.status.code(), Some(0));
    let err = String::from_utf8_lossy(&o.stderr);
    assert!(
        err.contains("pixel rule `empty`") && err.contains("p.yaml:4:"),
        "{err}"
    );
    assert!(
        err.contains("pixel rule `huge`") && err.contains("p.yaml:7:") && err.contains("plausible"),
        "{err}"
    );
    assert!(
        err.contains("pixel rule `typo`") && err.contains("p.yaml:12:"),
        "{err}"
    );
    std::fs::write(
        &prof,
        "extends: basic\npixels:\n  rules:\n    - name: a\n      when: {tag: Modality, equal: US}\n      blank: all\n",
    )
    .unwrap();
    let o = run(&[&"profile", &"check", &prof]);
    let err = String::from_utf8_lossy(&o.stderr);
    assert!(err.contains(":5:") && err.contains("equal"), "{err}");
}

#[test]
fn explain_shows_the_matched_rule_and_its_regions() {
    let o = run(&[
        &"run",
        &"--dry-run",
        &"--explain",
        &testdata("pixels/us_palette_regions.dcm"),
    ]);
    let out = String::from_utf8_lossy(&o.stdout);
    assert_eq!(o.status.code(), Some(0), "{out}");
    assert!(
        out.contains("redact")
            && out.contains("rule `ultrasound-regions`")
            && out.contains("keep: ultrasound-regions"),
        "{out}"
    );
    let o = run(&[
        &"run",
        &"--dry-run",
        &"--explain",
        &testdata("pixels/us_rgb_no_regions.dcm"),
    ]);
    let out = String::from_utf8_lossy(&o.stdout);
    assert!(
        out.contains("would be quarantined") && out.contains("no pixel rule matches"),
        "{out}"
    );
}

/// `check --ocr --report`: the pixel-text findings (their details never quote
/// the words read).
pub(crate) fn ocr_findings(
    env: &Env,
    tree: &Path,
    originals: Option<&Path>,
    name: &str,
) -> Vec<String> {
    let rep = env.path(name);
    let mut args: Vec<&dyn AsRef<std::ffi::OsStr>> =
        vec![&"check", &tree, &"--ocr", &"--report", &rep];
    if let Some(o) = &originals {
        args.push(&"--originals");
        args.push(o);
    }
    let o = run(&args);
    // 0: clean; 1: findings (other kinds too: the inputs are not de-identified).
    assert!(
        matches!(o.status.code(), Some(0) | Some(1)),
        "{}",
        String::from_utf8_lossy(&o.stderr)
    );
    let stdout = String::from_utf8_lossy(&o.stdout).to_string();
    assert!(!stdout.contains("PLANTED"), "{stdout}");
    let text = std::fs::read_to_string(&rep).unwrap();
    assert!(
        !text.contains("PLANTED") && !text.contains("planted"),
        "{text}"
    );
    text.lines()
        .filter_map(|l| serde_json::from_str::<serde_json::Value>(l).ok())
        .flat_map(|l| l["findings"].as_array().cloned().unwrap_or_default())
        .filter(|f| f["kind"] == "pixel-text")
        .map(|f| f["detail"].as_str().unwrap_or_default().to_string())
        .collect()
}

/// Tesseract is there, or (CI) its absence fails the test.
pub(crate) fn have_tesseract() -> bool {
    let have = Command::new("tesseract")
        .arg("--version")
        .output()
        .is_ok_and(|o| o.status.success());
    if !have {
        assert!(
            std::env::var("CI").ok().as_deref() != Some("true"),
            "tesseract is required under CI"
        );
        eprintln!(
            "SKIPPED: tesseract not installed (apt-get install tesseract-ocr tesseract-ocr-eng)"
        );
    }
    have
}

#[test]
fn check_ocr_finds_the_planted_text_before_and_nothing_after_the_default_run() {
    if !have_tesseract() {
        return;
    }
    let env = Env::new();
    let input = env.path("in");
    let us = Image {
        class: US_MULTI_FRAME,
        rows: 480,
        cols: 640,
        samples: 3,
        bits: 8,
        photometric: "RGB",
        frames: 2,
        extra: vec![
            text_el(tags::MODALITY, VR::CS, "US"),
            us_region(40, 120, 599, 459),
        ],
        text: vec![("PLANTED NAME", 20, 20, 5), ("ID12345", 20, 70, 5)],
    };
    let us_pixels = us.write(&input.join("us.dcm"));
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
        text: vec![("PLANTED NAME", 10, 20, 5)],
    }
    .write(&input.join("dose.dcm"));
    let before = ocr_findings(&env, &input, None, "before.jsonl");
    assert!(
        before.iter().filter(|d| d.contains("patient-name")).count() >= 2,
        "OCR must find the planted name in both files: {before:?}"
    );
    assert!(
        before.iter().any(|d| d.contains("frame 1: text in box")),
        "{before:?}"
    );
    let lines = run_over(&env, &input, None);
    for name in ["us.dcm", "dose.dcm"] {
        assert_eq!(line_for(&lines, name)["status"], "ok");
    }
    let after = ocr_findings(&env, &env.path("out"), Some(&input), "after.jsonl");
    assert!(after.is_empty(), "{after:?}");
    // The image area of the ultrasound survives byte for byte.
    let out = Path::new(line_for(&lines, "us.dcm")["output"].as_str().unwrap()).to_path_buf();
    let got = pixel_bytes(&out);
    let fl = us.frame_len();
    for f in 0..2 {
        for y in 120..=459 {
            let a = f * fl + (y * 640 + 40) * 3;
            let b = f * fl + (y * 640 + 600) * 3;
            assert_eq!(got[a..b], us_pixels[a..b], "frame {f} row {y}");
        }
    }
}

/// A built-in rule that cannot run leaves a file the quarantine does not hold at
/// risk as it was (with a note); a site's own rule that cannot run refuses it.
#[test]
fn a_builtin_rule_that_cannot_run_on_a_file_not_at_risk_leaves_it_as_before() {
    let env = Env::new();
    let input = env.path("in");
    // CT (no burned-in risk) with a malformed ultrasound region (no corners).
    let bad_region = DataElement::new(
        Tag(0x0018, 0x6011),
        VR::SQ,
        DataSetSequence::new(vec![InMemDicomObject::new_empty()], Length::UNDEFINED),
    );
    let original = Image {
        class: "1.2.840.10008.5.1.4.1.1.2",
        rows: 32,
        cols: 32,
        samples: 1,
        bits: 8,
        photometric: "MONOCHROME2",
        frames: 1,
        extra: vec![text_el(tags::MODALITY, VR::CS, "CT"), bad_region],
        text: Vec::new(),
    }
    .write(&input.join("ct.dcm"));
    let lines = run_over(&env, &input, None);
    let l = line_for(&lines, "ct.dcm");
    assert_eq!(l["status"], "ok", "{l}");
    assert!(
        l["notes"]
            .to_string()
            .contains("built-in rule `ultrasound-regions` not applied"),
        "{l}"
    );
    let out = Path::new(l["output"].as_str().unwrap());
    assert_eq!(pixel_bytes(out), original);
    assert!(!method_codes(out).contains(&"113101".to_string()));
    // The same rule written by the site: refused.
    let prof = env.path("p.yaml");
    std::fs::write(
        &prof,
        "extends: basic\npixels:\n  rules:\n    - name: site-us\n      when: {tag: SequenceOfUltrasoundRegions, present: true}\n      keep: ultrasound-regions\n",
    )
    .unwrap();
    std::fs::remove_dir_all(env.path("out")).unwrap();
    let lines = run_over(&env, &input, Some(&prof));
    let l = line_for(&lines, "ct.dcm");
    assert_eq!(l["status"], "failed", "{l}");
    assert!(
        l["reason"].as_str().unwrap().contains("Region Location"),
        "{l}"
    );
}

/// `unmatched: ocr`: text in a file no rule matches is found and blanked (113101,
/// a `pixels: ocr` note with boxes, never words); a file without text is written
/// as it is and not marked clean; OCR on the outputs finds none of the text.
#[test]
fn unmatched_ocr_blanks_the_text_it_finds_and_nothing_else() {
    if !have_tesseract() {
        return;
    }
    let env = Env::new();
    let input = env.path("in");
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
    let with_text = sc(vec![("PLANTED NAME", 16, 30, 4), ("ID12345", 16, 150, 4)]);
    let original = with_text.write(&input.join("text.dcm"));
    let blank = sc(Vec::new()).write(&input.join("plain.dcm"));
    let prof = env.path("p.yaml");
    std::fs::write(&prof, "extends: basic\npixels: {unmatched: ocr}\n").unwrap();
    let lines = run_over(&env, &input, Some(&prof));
    let l = line_for(&lines, "text.dcm");
    assert_eq!(l["status"], "ok", "{l}");
    let notes = l["notes"].to_string();
    assert!(
        notes.contains("pixels: ocr") && notes.contains("box(es) blanked"),
        "{notes}"
    );
    assert!(!notes.contains("PLANTED"), "{notes}");
    let out = Path::new(l["output"].as_str().unwrap()).to_path_buf();
    assert!(method_codes(&out).contains(&"113101".to_string()));
    let got = pixel_bytes(&out);
    assert_ne!(got, original);
    // Rows far from the text are untouched.
    let row = 320;
    assert_eq!(got[100 * row..110 * row], original[100 * row..110 * row]);
    let l = line_for(&lines, "plain.dcm");
    assert_eq!(l["status"], "ok", "{l}");
    assert!(l["notes"].to_string().contains("found no text"), "{l}");
    let out_plain = Path::new(l["output"].as_str().unwrap()).to_path_buf();
    assert_eq!(pixel_bytes(&out_plain), blank);
    assert!(!method_codes(&out_plain).contains(&"113101".to_string()));
    let after = ocr_findings(&env, &env.path("out"), Some(&input), "after.jsonl");
    assert!(after.is_empty(), "{after:?}");
}
