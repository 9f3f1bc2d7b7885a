//! Issue 11, "every promise holds", through the real binary: quarantine judges the
//! class that is written, no message carries a value read from a file, a deflate
//! bomb fails cleanly, retired JPEG syntaxes pass with their pixels untouched.

use dicom_core::{DataElement, PrimitiveValue, Tag, VR};
use std::path::Path;

use crate::common::*;

const SOP_CLASS_UID: Tag = Tag(0x0008, 0x0016);

/// `run INPUT --out OUT --key-file KEY --report REPORT --quarantine Q --layout mirror`
/// with the default profile. Returns the process output, the report lines and the
/// manifest's text.
fn run_default(
    env: &Env,
    input: &Path,
    name: &str,
) -> (std::process::Output, Vec<serde_json::Value>, String) {
    run_with(env, input, name, &[])
}

/// [`run_default`] plus `extra` arguments.
fn run_with(
    env: &Env,
    input: &Path,
    name: &str,
    extra: &[&dyn AsRef<std::ffi::OsStr>],
) -> (std::process::Output, Vec<serde_json::Value>, String) {
    let key = env.key("key", 7);
    let out = env.path(&format!("{name}-out"));
    let rep = env.path(&format!("{name}.jsonl"));
    let q = env.path(&format!("{name}-quarantine"));
    let mut args: Vec<&dyn AsRef<std::ffi::OsStr>> = vec![
        &"run",
        &input,
        &"--out",
        &out,
        &"--key-file",
        &key,
        &"--report",
        &rep,
        &"--quarantine",
        &q,
        &"--layout",
        &"mirror",
    ];
    args.extend_from_slice(extra);
    let o = run(&args);
    let (lines, _) = report(&rep);
    let manifest = std::fs::read_to_string(q.join("manifest.jsonl")).unwrap_or_default();
    (o, lines, manifest)
}

/// The report line of the input whose path ends with `name`.
fn line_of<'a>(lines: &'a [serde_json::Value], name: &str) -> &'a serde_json::Value {
    lines
        .iter()
        .find(|l| l["input"].as_str().unwrap().ends_with(name))
        .unwrap_or_else(|| panic!("no report line for {name}: {lines:?}"))
}

/// Rewrites a testdata sample through dicom-object into `dest`.
fn rewrite(sample: &str, dest: &Path, edit: impl FnOnce(&mut dicom_object::DefaultDicomObject)) {
    let mut obj = open(&testdata(sample));
    edit(&mut obj);
    std::fs::create_dir_all(dest.parent().unwrap()).unwrap();
    obj.write_to_file(dest).unwrap();
}

// ---- 1. Quarantine judges the class the output carries --------------------------

#[test]
fn a_secondary_capture_whose_class_is_only_in_the_meta_is_quarantined() {
    let env = Env::new();
    let input = env.path("input");
    // Native SC samples: no class in the dataset, the meta still says SC.
    rewrite(
        "dicom/charset_latin1.dcm",
        &input.join("sc_meta_only.dcm"),
        |o| {
            o.remove_element(SOP_CLASS_UID);
        },
    );
    // And one whose dataset holds an empty class.
    rewrite("dicom/charset_utf8.dcm", &input.join("sc_empty.dcm"), |o| {
        o.put(DataElement::new(
            SOP_CLASS_UID,
            VR::UI,
            PrimitiveValue::from(""),
        ));
    });
    // Encapsulated PDF, class in the meta only (a CT dataset otherwise).
    rewrite(
        "dicom/ct_explicit_le.dcm",
        &input.join("pdf_meta_only.dcm"),
        |o| {
            o.remove_element(SOP_CLASS_UID);
            o.update_meta(|m| {
                m.media_storage_sop_class_uid = "1.2.840.10008.5.1.4.1.1.104.1".into();
            });
        },
    );
    std::fs::copy(testdata("dicom/ct_explicit_le.dcm"), input.join("ct.dcm")).unwrap();
    let (o, lines, manifest) = run_default(&env, &input, "meta");
    assert_eq!(
        o.status.code(),
        Some(1),
        "{}",
        String::from_utf8_lossy(&o.stderr)
    );
    for name in ["sc_meta_only.dcm", "sc_empty.dcm"] {
        let l = line_of(&lines, name);
        assert_eq!(l["kind"], "quarantined", "{name}: {l}");
        assert!(
            l["reason"]
                .as_str()
                .unwrap()
                .contains("1.2.840.10008.5.1.4.1.1.7 "),
            "{l}"
        );
    }
    let pdf = line_of(&lines, "pdf_meta_only.dcm");
    assert_eq!(pdf["kind"], "quarantined", "{pdf}");
    assert!(
        pdf["reason"]
            .as_str()
            .unwrap()
            .contains("encapsulated document")
    );
    assert_eq!(line_of(&lines, "ct.dcm")["status"], "ok");
    assert_eq!(manifest.lines().count(), 3, "{manifest}");
}

#[test]
fn retired_ultrasound_classes_are_quarantined() {
    let env = Env::new();
    let input = env.path("input");
    for (name, class) in [
        ("us_retired.dcm", "1.2.840.10008.5.1.4.1.1.6"),
        ("us_mf_retired.dcm", "1.2.840.10008.5.1.4.1.1.3"),
    ] {
        rewrite("dicom/ct_explicit_le.dcm", &input.join(name), |o| {
            o.put(DataElement::new(
                SOP_CLASS_UID,
                VR::UI,
                PrimitiveValue::from(class),
            ));
            o.update_meta(|m| m.media_storage_sop_class_uid = class.into());
        });
    }
    let (o, lines, _) = run_default(&env, &input, "us");
    assert_eq!(
        o.status.code(),
        Some(1),
        "{}",
        String::from_utf8_lossy(&o.stderr)
    );
    for (name, class) in [
        ("us_retired.dcm", "1.2.840.10008.5.1.4.1.1.6 "),
        ("us_mf_retired.dcm", "1.2.840.10008.5.1.4.1.1.3 "),
    ] {
        let l = line_of(&lines, name);
        assert_eq!(l["kind"], "quarantined", "{l}");
        assert!(l["reason"].as_str().unwrap().contains(class), "{l}");
    }
}

// ---- 2. No message carries a value read from a file ------------------------------

const MARKER: &[u8] = b"PLANTEDMARKER";

/// One element of an explicit VR little endian stream.
#[derive(Clone, Copy, Debug)]
struct El {
    at: usize,
    tag: (u16, u16),
    header: usize,
    len: usize,
}

fn long_form(vr: &[u8]) -> bool {
    matches!(
        vr,
        b"OB"
            | b"OD"
            | b"OF"
            | b"OL"
            | b"OV"
            | b"OW"
            | b"SQ"
            | b"SV"
            | b"UC"
            | b"UN"
            | b"UR"
            | b"UT"
            | b"UV"
    )
}

/// The top-level elements of an explicit VR little endian file from its meta group
/// on, up to the first undefined length.
fn elements(b: &[u8]) -> Vec<El> {
    let mut out = Vec::new();
    let mut at = 132;
    while at + 8 <= b.len() {
        let tag = (
            u16::from_le_bytes([b[at], b[at + 1]]),
            u16::from_le_bytes([b[at + 2], b[at + 3]]),
        );
        let (header, len) = if long_form(&b[at + 4..at + 6]) {
            let l = u32::from_le_bytes([b[at + 8], b[at + 9], b[at + 10], b[at + 11]]);
            (12, l as usize)
        } else {
            (8, usize::from(u16::from_le_bytes([b[at + 6], b[at + 7]])))
        };
        if len == u32::MAX as usize {
            break;
        }
        out.push(El {
            at,
            tag,
            header,
            len,
        });
        at += header + len;
    }
    out
}

fn find(b: &[u8], tag: (u16, u16)) -> El {
    elements(b)
        .into_iter()
        .find(|e| e.tag == tag)
        .unwrap_or_else(|| panic!("no {tag:04X?}"))
}

fn put_len(b: &mut [u8], e: El, len: usize) {
    if e.header == 12 {
        b[e.at + 8..e.at + 12].copy_from_slice(&(len as u32).to_le_bytes());
    } else {
        b[e.at + 6..e.at + 8].copy_from_slice(&(len as u16).to_le_bytes());
    }
}

/// Replaces the value of `tag` (padded to even length with NUL), fixing the file
/// meta group length when `fix_group` (a lengthened meta element otherwise makes
/// the group length lie).
fn set_value(b: &[u8], tag: (u16, u16), value: &[u8], fix_group: bool) -> Vec<u8> {
    let e = find(b, tag);
    let mut v = value.to_vec();
    if v.len() % 2 == 1 {
        v.push(0);
    }
    let mut out = b[..e.at + e.header].to_vec();
    put_len(&mut out, e, v.len());
    out.extend_from_slice(&v);
    out.extend_from_slice(&b[e.at + e.header + e.len..]);
    if fix_group && tag.0 == 2 {
        let g = find(&out, (2, 0));
        let old = u32::from_le_bytes(out[g.at + 8..g.at + 12].try_into().unwrap());
        let new = (i64::from(old) + v.len() as i64 - e.len as i64) as u32;
        out[g.at + 8..g.at + 12].copy_from_slice(&new.to_le_bytes());
    }
    out
}

fn set_vr(b: &[u8], tag: (u16, u16), vr: &[u8; 2]) -> Vec<u8> {
    let e = find(b, tag);
    let mut out = b.to_vec();
    out[e.at + 4..e.at + 6].copy_from_slice(vr);
    out
}

fn set_len(b: &[u8], tag: (u16, u16), len: usize) -> Vec<u8> {
    let e = find(b, tag);
    let mut out = b.to_vec();
    put_len(&mut out, e, len);
    out
}

fn without(b: &[u8], tag: (u16, u16)) -> Vec<u8> {
    let e = find(b, tag);
    let mut out = b[..e.at].to_vec();
    out.extend_from_slice(&b[e.at + e.header + e.len..]);
    out
}

fn with_marker(b: &[u8], tag: (u16, u16)) -> Vec<u8> {
    set_value(b, tag, MARKER, true)
}

fn marked_uid(prefix: &str) -> Vec<u8> {
    [prefix.as_bytes(), MARKER].concat()
}

/// Byte-level edits of a real sample that plant the marker in a header field and
/// break the file in a different way each.
fn planted_cases() -> Vec<(&'static str, Vec<u8>)> {
    let ct = std::fs::read(testdata("dicom/ct_explicit_le.dcm")).unwrap();
    let ts = (2, 0x10);
    let name = (0x10, 0x10);
    let class = (8, 0x16);
    let named = with_marker(&ct, name);
    let mut cases = vec![
        // Transfer syntax: lengthened, replaced, as a UID prefix, with and without a
        // consistent group length, with a broken VR, without a group length.
        (
            "ts_lengthened",
            set_value(&ct, ts, &marked_uid("1.2.840.10008.1.2.1"), true),
        ),
        (
            "ts_lengthened_stale_group",
            set_value(&ct, ts, &marked_uid("1.2.840.10008.1.2.1"), false),
        ),
        ("ts_replaced", with_marker(&ct, ts)),
        (
            "ts_jpeg_prefix",
            set_value(&ct, ts, &marked_uid("1.2.840.10008.1.2.4."), true),
        ),
        ("ts_bad_vr", set_vr(&with_marker(&ct, ts), ts, b"ZZ")),
        ("ts_no_group_length", without(&with_marker(&ct, ts), (2, 0))),
        ("ts_long", set_value(&ct, ts, &MARKER.repeat(8), true)),
        // Other meta elements.
        ("meta_class", with_marker(&ct, (2, 2))),
        ("meta_instance", with_marker(&ct, (2, 3))),
        (
            "meta_class_only",
            with_marker(&set_value(&ct, class, b"", true), (2, 2)),
        ),
        (
            "meta_class_no_group_length",
            without(
                &with_marker(&set_value(&ct, class, b"", true), (2, 2)),
                (2, 0),
            ),
        ),
        (
            "meta_impl_version_len",
            set_len(&with_marker(&ct, (2, 0x13)), (2, 0x13), 0x7FFF),
        ),
        // Dataset: SOP class, character set, a date, the patient's name with its
        // VR or length broken, the file cut in the value.
        ("class_replaced", with_marker(&ct, class)),
        (
            "class_uid_prefix",
            set_value(&ct, class, &marked_uid("1.2.3."), true),
        ),
        (
            "class_as_un",
            set_vr(&with_marker(&ct, class), class, b"UN"),
        ),
        ("charset", with_marker(&ct, (8, 5))),
        ("birth_date", with_marker(&ct, (0x10, 0x30))),
        ("study_date", with_marker(&ct, (8, 0x20))),
        ("name_bad_vr", set_vr(&named, name, b"ZZ")),
        ("name_vr_sq", set_vr(&named, name, b"SQ")),
        ("name_vr_un", set_vr(&named, name, b"UN")),
        ("name_len_huge", set_len(&named, name, 0xFFFF)),
        ("name_len_odd", set_len(&named, name, MARKER.len() + 3)),
        ("name_len_short", set_len(&named, name, 3)),
        ("name_truncated", {
            // The length promises more than the file holds after the value.
            let e = find(&named, name);
            set_len(&named, name, 0x100)[..e.at + e.header + e.len].to_vec()
        }),
        // The dataset declared deflated or big endian while it is neither.
        (
            "deflate_claimed",
            set_value(&named, ts, b"1.2.840.10008.1.2.1.99", true),
        ),
        (
            "big_endian_claimed",
            set_value(&named, ts, b"1.2.840.10008.1.2.2", true),
        ),
        (
            "implicit_claimed",
            set_value(&named, ts, b"1.2.840.10008.1.2", true),
        ),
    ];
    // A dataset stored without preamble and meta, name planted, VR broken.
    let first = elements(&named).into_iter().find(|e| e.tag.0 != 2).unwrap();
    let bare = named[first.at..].to_vec();
    cases.push(("bare_bad_vr", {
        let e = elements(&named)
            .into_iter()
            .find(|e| e.tag == name)
            .unwrap();
        let mut b = bare.clone();
        let at = e.at - first.at;
        b[at + 4..at + 6].copy_from_slice(b"ZZ");
        b
    }));
    cases.push(("bare", bare));
    cases
}

#[test]
fn no_message_carries_a_value_planted_in_a_header() {
    let env = Env::new();
    let input = env.path("input");
    std::fs::create_dir_all(&input).unwrap();
    let cases = planted_cases();
    for (name, bytes) in &cases {
        assert!(
            bytes.windows(MARKER.len()).any(|w| w == MARKER),
            "{name} plants nothing"
        );
        std::fs::write(input.join(format!("{name}.dcm")), bytes).unwrap();
    }
    // The default profile, then one with an allow list: its quarantine reason
    // names the class of every file.
    let allow = env.path("allow.yaml");
    std::fs::write(
        &allow,
        "extends: basic\nquarantine: {allowed-sop-classes: [1.2.840.10008.5.1.4.1.1.4]}\n",
    )
    .unwrap();
    let marker = std::str::from_utf8(MARKER).unwrap();
    let mut all = Vec::new();
    for (run_name, extra) in [
        ("planted", vec![]),
        (
            "allow",
            vec![&"--profile" as &dyn AsRef<std::ffi::OsStr>, &allow],
        ),
    ] {
        let (o, lines, manifest) = run_with(&env, &input, run_name, &extra);
        let report_text = std::fs::read_to_string(env.path(&format!("{run_name}.jsonl"))).unwrap();
        for (what, text) in [
            ("stderr", String::from_utf8_lossy(&o.stderr).into_owned()),
            ("stdout", String::from_utf8_lossy(&o.stdout).into_owned()),
            ("report", report_text),
            ("manifest", manifest),
        ] {
            let leaks: Vec<&str> = text.lines().filter(|l| l.contains(marker)).collect();
            assert!(
                leaks.is_empty(),
                "{run_name}: {what} carries the planted value:\n{}",
                leaks.join("\n")
            );
        }
        all.push(lines);
    }
    let lines = &all[0];
    assert!(
        all[1].iter().any(
            |l| l["input"].as_str().unwrap().ends_with("class_replaced.dcm")
                && l["kind"] == "quarantined"
        ),
        "{:?}",
        all[1]
    );
    // The edits break files in many ways: most fail, for several reasons.
    let failed: Vec<&serde_json::Value> =
        lines.iter().filter(|l| l["status"] == "failed").collect();
    let kinds: std::collections::BTreeSet<&str> =
        failed.iter().map(|l| l["kind"].as_str().unwrap()).collect();
    for l in lines {
        eprintln!("{} {} {}", l["input"], l["status"], l["reason"]);
    }
    assert!(
        failed.len() >= cases.len() / 2,
        "{} of {} failed",
        failed.len(),
        cases.len()
    );
    assert!(kinds.len() >= 2, "{kinds:?}");
}

// ---- 3. A deflate bomb fails against its budget ---------------------------------

/// An explicit VR little endian element with a 2-byte length.
fn short_el(tag: (u16, u16), vr: &[u8; 2], value: &[u8]) -> Vec<u8> {
    let mut v = Vec::new();
    v.extend_from_slice(&tag.0.to_le_bytes());
    v.extend_from_slice(&tag.1.to_le_bytes());
    v.extend_from_slice(vr);
    v.extend_from_slice(&(value.len() as u16).to_le_bytes());
    v.extend_from_slice(value);
    v
}

/// A Deflated Explicit VR Little Endian CT whose dataset holds `zeros` bytes of
/// Pixel Data: a few kilobytes on disk.
fn deflated_ct(zeros: usize) -> Vec<u8> {
    use std::io::Write;
    let meta = dicom_object::FileMetaTableBuilder::new()
        .media_storage_sop_class_uid("1.2.840.10008.5.1.4.1.1.2")
        .media_storage_sop_instance_uid("2.25.1234")
        .transfer_syntax("1.2.840.10008.1.2.1.99")
        .build()
        .unwrap();
    let mut out = vec![0u8; 128];
    out.extend_from_slice(b"DICM");
    meta.write(&mut out).unwrap();
    let mut enc = flate2::write::DeflateEncoder::new(Vec::new(), flate2::Compression::best());
    enc.write_all(&short_el((8, 0x16), b"UI", b"1.2.840.10008.5.1.4.1.1.2\0"))
        .unwrap();
    enc.write_all(&short_el((8, 0x18), b"UI", b"2.25.1234\0"))
        .unwrap();
    enc.write_all(&short_el((0x10, 0x10), b"PN", b"BOMB^DEFLATE"))
        .unwrap();
    // Pixel Data, OB, 4-byte length, written in blocks (never held whole).
    enc.write_all(&[0xE0, 0x7F, 0x10, 0x00, b'O', b'B', 0, 0])
        .unwrap();
    enc.write_all(&(zeros as u32).to_le_bytes()).unwrap();
    let block = vec![0u8; 1 << 20];
    let mut left = zeros;
    while left > 0 {
        let n = left.min(block.len());
        enc.write_all(&block[..n]).unwrap();
        left -= n;
    }
    out.extend_from_slice(&enc.finish().unwrap());
    out
}

#[test]
fn a_deflate_bomb_fails_against_its_budget_and_the_batch_goes_on() {
    let env = Env::new();
    let input = env.path("input");
    std::fs::create_dir_all(&input).unwrap();
    // Inflates to just over the smallest budget (16 MiB, far above 64 times its
    // few kilobytes): before the budget it was read, held and written.
    let bomb = deflated_ct((16 << 20) + 1);
    assert!(bomb.len() < 64 << 10, "{} bytes", bomb.len());
    std::fs::write(input.join("bomb.dcm"), &bomb).unwrap();
    // Under the budget the same construction is a good file.
    std::fs::write(input.join("small_deflated.dcm"), deflated_ct(4096)).unwrap();
    std::fs::copy(testdata("dicom/ct_explicit_le.dcm"), input.join("ct.dcm")).unwrap();
    std::fs::copy(
        testdata("dicom/sc_deflated.dcm"),
        input.join("sc_deflated.dcm"),
    )
    .unwrap();
    let prof = lenient_profile(&env);
    let (o, lines, manifest) = run_with(&env, &input, "bomb", &[&"--profile", &prof]);
    assert_eq!(
        o.status.code(),
        Some(1),
        "{}",
        String::from_utf8_lossy(&o.stderr)
    );
    let bomb = line_of(&lines, "bomb.dcm");
    assert_eq!(bomb["status"], "failed", "{bomb}");
    assert_eq!(bomb["kind"], "malformed", "{bomb}");
    assert!(
        bomb["reason"].as_str().unwrap().contains("budget"),
        "{bomb}"
    );
    assert!(manifest.contains("bomb.dcm"), "{manifest}");
    for name in ["ct.dcm", "small_deflated.dcm", "sc_deflated.dcm"] {
        let l = line_of(&lines, name);
        assert_eq!(l["status"], "ok", "{l}");
        assert!(Path::new(l["output"].as_str().unwrap()).exists(), "{l}");
    }
}

// ---- 4. Retired JPEG syntaxes pass, pixels untouched ------------------------------

/// The encapsulated Pixel Data element of a file, header to sequence delimiter.
fn encapsulated_pixel_data(b: &[u8]) -> &[u8] {
    let header = [
        0xE0, 0x7F, 0x10, 0x00, b'O', b'B', 0, 0, 0xFF, 0xFF, 0xFF, 0xFF,
    ];
    let start = b
        .windows(header.len())
        .position(|w| w == header)
        .expect("encapsulated Pixel Data");
    let delimiter = [0xFE, 0xFF, 0xDD, 0xE0, 0, 0, 0, 0];
    let end = start
        + b[start..]
            .windows(delimiter.len())
            .position(|w| w == delimiter)
            .expect("sequence delimiter")
        + delimiter.len();
    &b[start..end]
}

#[test]
fn retired_jpeg_syntaxes_are_read_and_keep_their_uid_and_pixels() {
    let env = Env::new();
    let input = env.path("input");
    std::fs::create_dir_all(&input).unwrap();
    let jpeg = std::fs::read(testdata("dicom/sc_jpeg_baseline.dcm")).unwrap();
    let retired = [
        "1.2.840.10008.1.2.4.53",
        "1.2.840.10008.1.2.4.55",
        "1.2.840.10008.1.2.4.52",
        "1.2.840.10008.1.2.4.66",
    ];
    for uid in retired {
        let bytes = set_value(&jpeg, (2, 0x10), uid.as_bytes(), true);
        std::fs::write(input.join(format!("{uid}.dcm")), bytes).unwrap();
    }
    let prof = lenient_profile(&env);
    let (o, lines, _) = run_with(&env, &input, "retired", &[&"--profile", &prof]);
    assert_eq!(
        o.status.code(),
        Some(0),
        "{}",
        String::from_utf8_lossy(&o.stderr)
    );
    for uid in retired {
        let l = line_of(&lines, &format!("{uid}.dcm"));
        assert_eq!(l["status"], "ok", "{l}");
        let out = std::fs::read(l["output"].as_str().unwrap()).unwrap();
        let ts = find(&out, (2, 0x10));
        let declared = &out[ts.at + ts.header..ts.at + ts.header + ts.len];
        assert_eq!(
            std::str::from_utf8(declared)
                .unwrap()
                .trim_end_matches('\0'),
            uid
        );
        assert_eq!(
            encapsulated_pixel_data(&out),
            encapsulated_pixel_data(&jpeg),
            "{uid}: Pixel Data is copied byte for byte"
        );
    }
}
