//! Drives the real binary over the real samples in testdata/ and checks the outputs
//! against PS3.15 Table E.1-1 element by element, at every depth.

use dicom_core::header::Header;
use dicom_core::value::Value;
use dicom_core::{DicomValue, Tag, VR};
use dicom_deid::profile::table::{RowTarget, rows};
use dicom_deid::profile::{Code, tagspec::Target};
use dicom_object::{DefaultDicomObject, InMemDicomObject};
use std::path::{Path, PathBuf};
use std::process::Command;

use crate::common::*;

/// Inputs that are valid DICOM with distinct SOP Instance UIDs (several samples
/// share one source and hence one UID, which would collide in the uid layout).
const GOOD: &[&str] = &[
    "dicom/ct_explicit_le.dcm",
    "dicom/mr_implicit_le.dcm",
    "dicom/rtplan_implicit_le.dcm",
    "dicom/mr_explicit_be.dcm",
    "dicom/sc_deflated.dcm",
    "dicom/sc_jpeg_baseline.dcm",
    "dicom/nm_j2k_burned_in_private.dcm",
    "dicom/sr_comprehensive_nested.dcm",
    "dicom/priv_sq_implicit.dcm",
    "dicom/mr_fake_phi_dicognito.dcm",
    "dicom/rtdose_multiframe.dcm",
    "dicom/sc_rle_multiframe.dcm",
    "dicom/charset_latin1.dcm",
    "dicom/charset_iso2022_jp.dcm",
    "dicom/charset_utf8.dcm",
    "dicom/charset_sq_item_override.dcm",
    "dicom/mr_overlay.dcm",
    "derived/phi_nested.dcm",
    "derived/phi_nested_ref.dcm",
    "derived/phi_implicit_private.dcm",
    "derived/phi_un_vr.dcm",
    "derived/phi_big_endian.dcm",
    "derived/phi_latin1.dcm",
];
fn is_empty_value(e: &dicom_core::DataElement<InMemDicomObject>) -> bool {
    match e.value() {
        Value::Sequence(s) => s.items().is_empty(),
        Value::Primitive(p) => p.to_str().trim_end_matches(['\0', ' ']).is_empty(),
        Value::PixelSequence(_) => false,
    }
}

fn basic_code(tag: Tag) -> Option<Code> {
    let t = u32::from(tag.0) << 16 | u32::from(tag.1);
    // The basic profile's one documented rule beyond the table: SR Text Value is D.
    if t == 0x0040_A160 {
        return Some(Code::D);
    }
    for r in rows() {
        match &r.target {
            RowTarget::Target(Target::Tag(x)) if *x == t => return Some(r.basic),
            RowTarget::Target(Target::Pattern { mask, value }) if t & mask == *value => {
                return Some(r.basic);
            }
            _ => {}
        }
    }
    None
}

/// Walks `orig` and checks what `out` did to each element, at every depth.
/// Returns the violations as `path: problem`.
fn check_item(orig: &InMemDicomObject, out: &InMemDicomObject, path: &str, bad: &mut Vec<String>) {
    for e in orig.iter() {
        let tag = e.tag();
        let here = format!("{path}/({:04X},{:04X})", tag.0, tag.1);
        let got = out.get(tag);
        if tag.0 % 2 == 1 {
            if got.is_some() {
                bad.push(format!("{here}: private element kept"));
            }
            continue;
        }
        if tag.1 == 0 || tag == Tag(0x7FE0, 0x0010) {
            continue;
        }
        let orig_text = text(e);
        let code = basic_code(tag);
        let need = |ok: bool, what: &str, bad: &mut Vec<String>| {
            if !ok {
                bad.push(format!("{here}: expected {what} ({code:?})"));
            }
        };
        match code {
            Some(Code::X) => need(got.is_none(), "removed", bad),
            Some(Code::ZD) if tag == Tag(0x0010, 0x0020) => need(
                got.is_some_and(|g| {
                    if orig_text.is_empty() {
                        text(g).is_empty()
                    } else {
                        text(g).len() == 16 && text(g) != orig_text
                    }
                }),
                "keyed pseudonym",
                bad,
            ),
            Some(Code::Z) => need(got.is_some_and(is_empty_value), "present and empty", bad),
            // Compound codes: any of their choices is right (the IOD picks one).
            Some(code @ (Code::XZ | Code::XZD | Code::ZD | Code::XD | Code::XZU)) => {
                let removed = got.is_none();
                let emptied = got.is_some_and(is_empty_value);
                let dummied = got.is_some_and(|g| {
                    !is_empty_value(g)
                        && (matches!(g.value(), Value::Sequence(_))
                            || orig_text.is_empty()
                            || text(g) != orig_text)
                });
                let ok = match code {
                    Code::XZ => removed || emptied,
                    Code::XD => removed || dummied,
                    Code::XZD => removed || emptied || dummied,
                    Code::ZD => emptied || dummied,
                    _ => {
                        removed
                            || emptied
                            || got.is_some_and(|g| matches!(g.value(), Value::Sequence(_)))
                    }
                };
                need(ok, "one of the compound code's choices", bad)
            }
            Some(Code::D) if matches!(e.value(), Value::Sequence(_)) => {
                need(got.is_some(), "sequence kept for its items", bad)
            }
            Some(Code::D) => need(
                got.is_some_and(|g| {
                    !is_empty_value(g) && (orig_text.is_empty() || text(g) != orig_text)
                }),
                "dummy",
                bad,
            ),
            Some(Code::U) => need(
                got.is_some_and(|g| {
                    orig_text.is_empty()
                        || orig_text.starts_with("1.2.840.10008.")
                        || (text(g) != orig_text && text(g).starts_with("2.25."))
                }),
                "remapped UID",
                bad,
            ),
            Some(Code::K | Code::C) | None => {
                let keeps_text = got.is_some_and(|g| {
                    matches!(g.value(), Value::Sequence(_))
                        || text(g) == orig_text
                        || g.vr() != e.vr()
                });
                // An overlay plane whose data (60xx,3000) the table removes goes whole:
                // its other elements would leave an invalid Overlay Plane module.
                let overlay_gone = (0x6000..=0x601E).contains(&tag.0)
                    && tag.0 % 2 == 0
                    && out.get(Tag(tag.0, 0x3000)).is_none();
                // Kept public elements are unchanged (markers we write are exempt).
                if overlay_gone {
                    need(got.is_none(), "removed with its overlay plane", bad);
                } else if tag.0 != 0x0012
                    && tag != Tag(0x0028, 0x0303)
                    && tag != Tag(0x0008, 0x0016)
                    && tag != Tag(0x0008, 0x0018)
                {
                    need(keeps_text, "kept unchanged", bad);
                }
            }
        }
        if let (Value::Sequence(os), Some(g)) = (e.value(), got)
            && let Value::Sequence(gs) = g.value()
        {
            if gs.items().len() == os.items().len() {
                for (i, (oi, gi)) in os.items().iter().zip(gs.items()).enumerate() {
                    check_item(oi, gi, &format!("{here}[{i}]"), bad);
                }
            } else if !gs.items().is_empty() {
                bad.push(format!("{here}: item count changed"));
            }
        }
    }
}

#[test]
fn every_table_row_is_obeyed_at_every_depth() {
    let env = Env::new();
    let key = env.key("key", 1);
    let (o, map) = run_basic(&env, GOOD, &key, "out");
    assert_eq!(
        o.status.code(),
        Some(0),
        "{}",
        String::from_utf8_lossy(&o.stderr)
    );
    assert_eq!(map.len(), GOOD.len());
    let mut bad = Vec::new();
    for (input, output) in &map {
        let a = open(input);
        let b = open(output);
        let mut v = Vec::new();
        check_item(&a, &b, "", &mut v);
        bad.extend(
            v.into_iter()
                .map(|s| format!("{}{s}", input.file_name().unwrap().to_string_lossy())),
        );
    }
    assert!(
        bad.is_empty(),
        "{} violations:\n{}",
        bad.len(),
        bad.join("\n")
    );
}

#[test]
fn no_injected_phi_survives_in_any_output_byte() {
    let env = Env::new();
    let key = env.key("key", 2);
    let (_, map) = run_basic(&env, GOOD, &key, "out");
    let phi = std::fs::read_to_string(testdata("derived/expected_phi.txt")).unwrap();
    let mut needles: Vec<Vec<u8>> = phi
        .lines()
        .filter(|l| !l.starts_with('#') && !l.trim().is_empty())
        .map(|l| l.as_bytes().to_vec())
        .collect();
    // Latin-1 spellings of the non-ASCII names, as the Latin-1 file stores them.
    for s in ["MÜLLER^JÜRGEN", "Klinikum Müllerstraße"] {
        needles.push(s.chars().map(|c| c as u32 as u8).collect());
    }
    // The dicognito sample's own made-up patient name and ID.
    let dicognito = open(&testdata("dicom/mr_fake_phi_dicognito.dcm"));
    for tag in [Tag(0x0010, 0x0010), Tag(0x0010, 0x0020)] {
        if let Some(e) = dicognito.get(tag) {
            let t = text(e);
            if t.len() >= 4 {
                needles.push(t.into_bytes());
            }
        }
    }
    assert!(needles.len() >= 9);
    for output in map.values() {
        let bytes = std::fs::read(output).unwrap();
        for n in &needles {
            assert!(
                !bytes.windows(n.len()).any(|w| w == n.as_slice()),
                "{} still contains {:?}",
                output.display(),
                String::from_utf8_lossy(n)
            );
        }
    }
}

#[test]
fn uids_stay_consistent_across_files_runs_and_differ_by_key() {
    let env = Env::new();
    let k1 = env.key("k1", 3);
    let k2 = env.key("k2", 4);
    let files = &["derived/phi_nested.dcm", "derived/phi_nested_ref.dcm"];
    // Referenced Image Sequence is X/Z/U*: kept (by the basic profile too, since
    // issue 11 E.21, and here by a site rule) with its UIDs remapped consistently.
    let prof = env.path("keep-refs.yaml");
    std::fs::write(
        &prof,
        "extends: basic\nrules:\n  - {tag: ReferencedImageSequence, action: K}\n",
    )
    .unwrap();
    let run_keep = |key: &Path, out: &str| {
        let input = env.inputs(files);
        let rep = env.path(&format!("{out}.jsonl"));
        let o = run(&[
            &"run",
            &input,
            &"--out",
            &env.path(out),
            &"--key-file",
            &key,
            &"--report",
            &rep,
            &"--layout",
            &"mirror",
            &"--profile",
            &prof,
        ]);
        assert_eq!(
            o.status.code(),
            Some(0),
            "{}",
            String::from_utf8_lossy(&o.stderr)
        );
        outputs(&report(&rep).0)
    };
    let (a, b, c) = (run_keep(&k1, "a"), run_keep(&k1, "b"), run_keep(&k2, "c"));
    let input = env.path("input");
    let nested = input.join("derived/phi_nested.dcm");
    let reference = input.join("derived/phi_nested_ref.dcm");
    let na = open(&a[&nested]);
    let ra = open(&a[&reference]);
    let sop = |o: &DefaultDicomObject| text(o.element(Tag(0x0008, 0x0018)).unwrap());
    let study = |o: &DefaultDicomObject| text(o.element(Tag(0x0020, 0x000D)).unwrap());
    // The reference in phi_nested still points at phi_nested_ref.
    let refs = na
        .element(Tag(0x0008, 0x1140))
        .expect("ReferencedImageSequence kept (X/Z/U*)");
    let item = &refs.items().unwrap()[0];
    assert_eq!(text(item.element(Tag(0x0008, 0x1155)).unwrap()), sop(&ra));
    assert_eq!(study(&na), study(&ra));
    assert_eq!(
        text(na.element(Tag(0x0020, 0x0052)).unwrap()),
        text(ra.element(Tag(0x0020, 0x0052)).unwrap()),
        "FrameOfReferenceUID agrees"
    );
    assert_eq!(na.meta().media_storage_sop_instance_uid(), sop(&na));
    let orig = open(&nested);
    assert_ne!(sop(&na), text(orig.element(Tag(0x0008, 0x0018)).unwrap()));
    // Same key, second run: byte-identical outputs at identical paths.
    for (inp, out_a) in &a {
        let out_b = &b[inp];
        assert_eq!(
            out_a.strip_prefix(env.path("a")).unwrap(),
            out_b.strip_prefix(env.path("b")).unwrap()
        );
        assert_eq!(std::fs::read(out_a).unwrap(), std::fs::read(out_b).unwrap());
    }
    // Another key: other UIDs and another pseudonym.
    let nc = open(&c[&nested]);
    assert_ne!(sop(&na), sop(&nc));
    assert_ne!(
        text(na.element(Tag(0x0010, 0x0020)).unwrap()),
        text(nc.element(Tag(0x0010, 0x0020)).unwrap())
    );
}

fn pixel_bytes(o: &DefaultDicomObject) -> Option<Vec<u8>> {
    let e = o.get(Tag(0x7FE0, 0x0010))?;
    Some(match e.value() {
        DicomValue::PixelSequence(seq) => {
            let mut v = Vec::new();
            for f in seq.fragments() {
                v.extend_from_slice(f);
            }
            v
        }
        DicomValue::Primitive(p) => p.to_bytes().to_vec(),
        DicomValue::Sequence(_) => return None,
    })
}

#[test]
fn pixel_data_is_byte_identical_and_markers_are_written() {
    let env = Env::new();
    let key = env.key("key", 5);
    let (_, map) = run_basic(&env, GOOD, &key, "out");
    let mut with_pixels = 0;
    for (input, output) in &map {
        let a = open(input);
        let b = open(output);
        assert_eq!(pixel_bytes(&a), pixel_bytes(&b), "{}", input.display());
        with_pixels += usize::from(pixel_bytes(&a).is_some());
        assert_eq!(a.meta().transfer_syntax(), b.meta().transfer_syntax());
        assert_eq!(text(b.element(Tag(0x0012, 0x0062)).unwrap()), "YES");
        assert!(text(b.element(Tag(0x0012, 0x0063)).unwrap()).contains("basic"));
        let codes = b.element(Tag(0x0012, 0x0064)).unwrap();
        let item = &codes.items().unwrap()[0];
        assert_eq!(text(item.element(Tag(0x0008, 0x0100)).unwrap()), "113100");
        assert_eq!(text(item.element(Tag(0x0008, 0x0102)).unwrap()), "DCM");
        assert_eq!(text(b.element(Tag(0x0028, 0x0303)).unwrap()), "REMOVED");
        assert_eq!(
            b.meta().media_storage_sop_instance_uid(),
            text(b.element(Tag(0x0008, 0x0018)).unwrap())
        );
        assert_ne!(
            b.meta().media_storage_sop_instance_uid(),
            a.meta().media_storage_sop_instance_uid()
        );
        assert_eq!(
            b.meta().implementation_class_uid(),
            dicom_deid::io::encode::IMPLEMENTATION_CLASS_UID
        );
        assert!(b.meta().source_application_entity_title().is_none());
    }
    assert!(with_pixels >= 15, "{with_pixels}");
}

#[test]
fn uid_layout_is_built_from_new_uids_only() {
    let env = Env::new();
    let key = env.key("key", 6);
    let input = env.inputs(&[
        "derived/phi_nested.dcm",
        "dicom/sr_comprehensive_nested.dcm",
    ]);
    let mut runs = Vec::new();
    for name in ["out", "again"] {
        let rep = env.path(&format!("{name}.jsonl"));
        let o = run(&[
            &"run",
            &input,
            &"--out",
            &env.path(name),
            &"--key-file",
            &key,
            &"--report",
            &rep,
        ]);
        assert_eq!(o.status.code(), Some(0));
        runs.push(outputs(&report(&rep).0));
    }
    let map = &runs[0];
    for (inp, out) in map {
        let again = &runs[1][inp];
        assert_eq!(
            out.strip_prefix(env.path("out")).unwrap(),
            again.strip_prefix(env.path("again")).unwrap()
        );
        let rel = out.strip_prefix(env.path("out")).unwrap();
        let parts: Vec<_> = rel
            .iter()
            .map(|p| p.to_string_lossy().to_string())
            .collect();
        assert_eq!(parts.len(), 3, "{rel:?}");
        for p in &parts {
            assert!(p.starts_with("2.25."), "{rel:?}");
        }
        let o = open(out);
        assert_eq!(parts[0], text(o.element(Tag(0x0020, 0x000D)).unwrap()));
        assert_eq!(parts[1], text(o.element(Tag(0x0020, 0x000E)).unwrap()));
        assert_eq!(
            parts[2],
            format!("{}.dcm", text(o.element(Tag(0x0008, 0x0018)).unwrap()))
        );
    }
}

fn snapshot(dir: &Path) -> Vec<(PathBuf, Vec<u8>, std::time::SystemTime)> {
    let mut v: Vec<_> = walkdir::WalkDir::new(dir)
        .into_iter()
        .filter_map(Result::ok)
        .filter(|e| e.file_type().is_file())
        .map(|e| {
            let m = e.metadata().unwrap();
            (
                e.path().to_path_buf(),
                std::fs::read(e.path()).unwrap(),
                m.modified().unwrap(),
            )
        })
        .collect();
    v.sort_by(|a, b| a.0.cmp(&b.0));
    v
}

#[test]
fn bad_files_fail_cleanly_and_the_batch_goes_on() {
    let env = Env::new();
    let key = env.key("key", 7);
    let files = [
        "bad/mr_truncated.dcm",
        "bad/rtplan_truncated.dcm",
        "bad/not_dicom.txt",
        "bad/garbage.bin",
        "bad/dicomdir/DICOMDIR",
        "dicom/ct_explicit_le.dcm",
    ];
    let input = env.inputs(&files);
    let before = snapshot(&input);
    let out = env.path("out");
    let rep = env.path("r.jsonl");
    let o = run(&[
        &"run",
        &input,
        &"--out",
        &out,
        &"--key-file",
        &key,
        &"--report",
        &rep,
    ]);
    assert_eq!(o.status.code(), Some(1), "failures make exit code 1");
    let stderr = String::from_utf8_lossy(&o.stderr);
    let (lines, summary) = report(&rep);
    let status_of = |name: &str| {
        lines
            .iter()
            .find(|l| l["input"].as_str().unwrap().ends_with(name))
            .map(|l| {
                (
                    l["status"].as_str().unwrap().to_string(),
                    l["kind"].as_str().unwrap_or("").to_string(),
                )
            })
            .unwrap()
    };
    assert_eq!(
        status_of("mr_truncated.dcm"),
        ("failed".into(), "malformed".into())
    );
    assert_eq!(
        status_of("rtplan_truncated.dcm"),
        ("failed".into(), "malformed".into())
    );
    assert_eq!(
        status_of("not_dicom.txt"),
        ("skipped".into(), "not-dicom".into())
    );
    assert_eq!(
        status_of("garbage.bin"),
        ("skipped".into(), "not-dicom".into())
    );
    assert_eq!(status_of("DICOMDIR"), ("skipped".into(), "dicomdir".into()));
    assert_eq!(status_of("ct_explicit_le.dcm").0, "ok");
    assert!(
        stderr.contains("mr_truncated.dcm") && stderr.contains("truncated"),
        "{stderr}"
    );
    assert_eq!(summary["files_seen"], 6);
    assert_eq!(summary["written"], 1);
    assert_eq!(summary["failed"], 2);
    assert_eq!(summary["skipped"], 3);
    // Exactly one output file (besides the run ledger), no temporary left behind,
    // inputs untouched.
    let outs: Vec<_> = snapshot(&out)
        .into_iter()
        .map(|s| s.0)
        .filter(|p| {
            !p.file_name()
                .unwrap()
                .to_string_lossy()
                .starts_with(".dicom-deid-ledger")
        })
        .collect();
    assert_eq!(outs.len(), 1, "{outs:?}");
    assert_eq!(snapshot(&input), before);
}

#[test]
fn only_non_dicom_skips_keep_exit_code_zero() {
    let env = Env::new();
    let key = env.key("key", 8);
    let input = env.inputs(&["bad/not_dicom.txt", "dicom/mr_implicit_le.dcm"]);
    let o = run(&[
        &"run",
        &input,
        &"--out",
        &env.path("out"),
        &"--key-file",
        &key,
    ]);
    assert_eq!(
        o.status.code(),
        Some(0),
        "{}",
        String::from_utf8_lossy(&o.stderr)
    );
}

#[test]
fn output_overlapping_input_is_refused_before_anything_happens() {
    let env = Env::new();
    let input = env.inputs(&["dicom/mr_implicit_le.dcm"]);
    let inside = input.join("deid");
    let o = run(&[&"run", &input, &"--out", &inside]);
    assert_eq!(o.status.code(), Some(2));
    assert!(!inside.exists());
    let o = run(&[&"run", &input, &"--out", &input]);
    assert_eq!(o.status.code(), Some(2));
}

#[test]
fn weak_key_files_are_refused() {
    let env = Env::new();
    let input = env.inputs(&["dicom/mr_implicit_le.dcm"]);
    let key = env.path("key");
    std::fs::write(&key, vec![b'k'; 40]).unwrap();
    #[cfg(unix)]
    {
        use std::os::unix::fs::PermissionsExt;
        std::fs::set_permissions(&key, std::fs::Permissions::from_mode(0o644)).unwrap();
        let o = run(&[
            &"run",
            &input,
            &"--out",
            &env.path("out"),
            &"--key-file",
            &key,
        ]);
        assert_eq!(o.status.code(), Some(2));
        assert!(String::from_utf8_lossy(&o.stderr).contains("chmod 600"));
        assert!(!env.path("out").exists());
    }
}

#[test]
fn without_a_key_the_run_says_so_and_uses_a_random_one() {
    let env = Env::new();
    let input = env.inputs(&["dicom/mr_implicit_le.dcm"]);
    let o1 = run(&[
        &"run",
        &input,
        &"--out",
        &env.path("o1"),
        &"--layout",
        &"mirror",
    ]);
    let o2 = run(&[
        &"run",
        &input,
        &"--out",
        &env.path("o2"),
        &"--layout",
        &"mirror",
    ]);
    assert_eq!(o1.status.code(), Some(0));
    assert!(String::from_utf8_lossy(&o1.stderr).contains("random key"));
    let a = open(&env.path("o1/dicom/mr_implicit_le.dcm"));
    let b = open(&env.path("o2/dicom/mr_implicit_le.dcm"));
    assert_ne!(
        text(a.element(Tag(0x0008, 0x0018)).unwrap()),
        text(b.element(Tag(0x0008, 0x0018)).unwrap())
    );
    let _ = o2;
}

#[test]
fn dry_run_writes_no_dicom() {
    let env = Env::new();
    let key = env.key("key", 9);
    let input = env.inputs(&["dicom/mr_implicit_le.dcm"]);
    let rep = env.path("r.jsonl");
    let o = run(&[
        &"run",
        &input,
        &"--out",
        &env.path("out"),
        &"--key-file",
        &key,
        &"--dry-run",
        &"--report",
        &rep,
    ]);
    assert_eq!(o.status.code(), Some(0));
    assert!(!env.path("out").exists());
    let (lines, summary) = report(&rep);
    assert_eq!(lines[0]["status"], "ok");
    assert_eq!(summary["dry_run"], true);
}

#[test]
fn report_holds_counts_and_no_attribute_value_or_key() {
    let env = Env::new();
    let key = env.key("key", 10);
    let rep = env.path("r.jsonl");
    let input = env.inputs(&["derived/phi_nested.dcm", "dicom/mr_fake_phi_dicognito.dcm"]);
    run(&[
        &"run",
        &input,
        &"--out",
        &env.path("out"),
        &"--key-file",
        &key,
        &"--report",
        &rep,
    ]);
    let text_report = std::fs::read_to_string(&rep).unwrap();
    for needle in [
        "DOE^JOHN",
        "PID-SECRET-4711",
        "19610704",
        "ACC-99887766",
        "HOUSE",
    ] {
        assert!(!text_report.contains(needle), "report leaks {needle}");
    }
    let (lines, summary) = report(&rep);
    for l in &lines {
        let c = &l["counts"];
        assert!(c["removed"].as_u64().unwrap() > 0 && c["uid_remapped"].as_u64().unwrap() > 0);
        assert!(l["bytes_out"].as_u64().unwrap() > 0);
    }
    assert_eq!(summary["written"], 2);
    assert_eq!(summary["key_fingerprint"].as_str().unwrap().len(), 8);
    assert!(summary["files_per_second"].as_f64().unwrap() > 0.0);
}

#[test]
fn profile_commands_list_show_and_check() {
    let o = run(&[&"profile", &"list"]);
    assert!(String::from_utf8_lossy(&o.stdout).starts_with("basic"));
    let o = run(&[&"profile", &"show", &"basic"]);
    let out = String::from_utf8_lossy(&o.stdout);
    assert!(out.contains("657 of 657 rows"), "{out}");
    assert!(out.contains("(0010,0010)") && out.contains("Patient's Name"));

    let env = Env::new();
    let good = env.path("site.yaml");
    std::fs::write(
        &good,
        "extends: basic\nname: site\nrules:\n  - {tag: StudyDescription, action: K}\n",
    )
    .unwrap();
    let o = run(&[&"profile", &"check", &good]);
    assert_eq!(o.status.code(), Some(0));
    let out = String::from_utf8_lossy(&o.stdout);
    assert!(
        out.contains("657 of 657") && out.contains("1 kept unchanged"),
        "{out}"
    );

    let bad = env.path("bad.yaml");
    std::fs::write(
        &bad,
        "name: bad\nrules:\n  - {tag: PatientNme, action: X}\n  - {tag: \"(0010,0010)\", action: Y}\n  - {tag: \"(0010,0020)\", action: X}\n  - {tag: PatientID, action: Z}\n  - {tag: \"(0010,00G0)\", action: X}\n",
    )
    .unwrap();
    let o = run(&[&"profile", &"check", &bad]);
    assert_eq!(o.status.code(), Some(2));
    let err = String::from_utf8_lossy(&o.stderr);
    let b = bad.display().to_string();
    // Each problem as cargo shows one: the message, then `file:line:column`.
    assert!(
        err.contains(&format!(
            "error: unknown keyword `PatientNme`\n --> {b}:3:11"
        )),
        "{err}"
    );
    assert!(err.contains("help: did you mean `PatientName`?"), "{err}");
    assert!(err.contains("error: unknown action `Y`"), "{err}");
    assert!(err.contains(&format!(" --> {b}:4:34")), "{err}");
    assert!(
        err.contains(&format!(
            "error: conflicting rules: (0010,0020) is already set at line 5\n --> {b}:6:"
        )),
        "{err}"
    );
    assert!(err.contains(&format!(" --> {b}:7:12")), "{err}");
}

#[test]
fn site_profile_overrides_and_private_creator_rules_apply() {
    let env = Env::new();
    let key = env.key("key", 11);
    let prof = env.path("site.yaml");
    // Keep GE's private block in the CT sample by creator, and study descriptions.
    std::fs::write(
        &prof,
        "extends: basic\nname: site\nrules:\n  - {tag: StudyDescription, action: K}\n  - {tag: \"(0019,xx1E)\", creator: GEMS_ACQU_01, action: K}\n",
    )
    .unwrap();
    let input = env.inputs(&["dicom/ct_explicit_le.dcm"]);
    let out = env.path("out");
    let o = run(&[
        &"run",
        &input,
        &"--out",
        &out,
        &"--key-file",
        &key,
        &"--profile",
        &prof,
        &"--layout",
        &"mirror",
    ]);
    assert_eq!(
        o.status.code(),
        Some(0),
        "{}",
        String::from_utf8_lossy(&o.stderr)
    );
    let a = open(&input.join("dicom/ct_explicit_le.dcm"));
    let b = open(&out.join("dicom/ct_explicit_le.dcm"));
    let privates: Vec<Tag> = b.iter().map(|e| e.tag()).filter(|t| t.0 % 2 == 1).collect();
    // Only the kept element and its creator remain.
    assert_eq!(privates.len(), 2, "{privates:?}");
    assert!(privates.contains(&Tag(0x0019, 0x0010)));
    assert_eq!(
        text(b.element(Tag(0x0019, 0x101E)).unwrap()),
        text(a.element(Tag(0x0019, 0x101E)).unwrap())
    );
    if let Some(d) = a.get(Tag(0x0008, 0x1030)) {
        assert_eq!(text(b.element(Tag(0x0008, 0x1030)).unwrap()), text(d));
    }
    assert!(
        b.get(Tag(0x0012, 0x0064)).is_none(),
        "a weakened profile does not claim 113100"
    );
}

/// Other toolkits must read our outputs. .ci/run installs pydicom and dcmtk and sets
/// DICOM_DEID_EXTERNAL_CHECKS=1; elsewhere the check runs when the tools are there.
#[test]
fn outputs_read_cleanly_in_pydicom_and_dcmdump() {
    let env = Env::new();
    let key = env.key("key", 12);
    let (_, map) = run_basic(&env, GOOD, &key, "out");
    external_readers_accept(map.values());
}

/// dcmdump -E and pydicom (warnings as errors) read every file without complaint.
/// .ci/run installs both and sets DICOM_DEID_EXTERNAL_CHECKS=1; elsewhere the check
/// runs when the tools are there.
fn external_readers_accept<'a>(files: impl IntoIterator<Item = &'a PathBuf> + Clone) {
    if !external_tools(true) {
        return;
    }
    for out in files.clone() {
        let o = Command::new("dcmdump")
            .arg("-q")
            .arg("-E")
            .arg(out)
            .output()
            .unwrap();
        assert!(
            o.status.success() && o.stderr.is_empty(),
            "dcmdump {}: {}",
            out.display(),
            String::from_utf8_lossy(&o.stderr)
        );
    }
    let script = r#"
import sys, pydicom, warnings
warnings.simplefilter('error')
for p in sys.argv[1:]:
    ds = pydicom.dcmread(p)
    for e in ds.iterall():
        _ = e.value
    assert ds.PatientIdentityRemoved == 'YES', p
    assert ds.file_meta.MediaStorageSOPInstanceUID == ds.SOPInstanceUID, p
print('ok', len(sys.argv) - 1)
"#;
    let o = Command::new("python3")
        .arg("-c")
        .arg(script)
        .args(files)
        .output()
        .unwrap();
    assert!(
        o.status.success(),
        "pydicom: {}",
        String::from_utf8_lossy(&o.stderr)
    );
}

#[test]
fn a_dataset_declared_explicit_but_encoded_implicit_is_repaired() {
    let env = Env::new();
    let key = env.key("key", 27);
    let file = "quirks/sc_implicit_in_explicit.dcm";
    let (o, map) = run_basic(&env, &[file], &key, "out");
    let stderr = String::from_utf8_lossy(&o.stderr);
    assert_eq!(o.status.code(), Some(0), "{stderr}");
    let rep = std::fs::read_to_string(env.path("out.jsonl")).unwrap();
    assert!(rep.contains("encoded in implicit VR"), "{rep}");
    let out = open(map.values().next().unwrap());
    assert_eq!(
        out.meta().transfer_syntax().trim_end_matches('\0'),
        "1.2.840.10008.1.2.4.50",
        "written in the declared transfer syntax"
    );
    assert!(text(out.element(Tag(0x0010, 0x0010)).unwrap()).is_empty());
    assert_eq!(
        text(out.element(Tag(0x0012, 0x0062)).unwrap()),
        "YES",
        "de-identified like any file"
    );
    // The JPEG fragment is the input's, byte for byte: find it in both files.
    let fragments = match out.element(Tag(0x7FE0, 0x0010)).unwrap().value() {
        Value::PixelSequence(seq) => seq.fragments().to_vec(),
        other => panic!("encapsulated Pixel Data expected, got {other:?}"),
    };
    assert_eq!(fragments.len(), 1);
    let input = std::fs::read(testdata(file)).unwrap();
    let frag = &fragments[0];
    assert!(frag.len() > 1000);
    assert!(
        input.windows(frag.len()).any(|w| w == &frag[..]),
        "fragment bytes unchanged"
    );
    // pydicom warns about the input; about the output it must not.
    external_readers_accept(map.values());
}

#[test]
fn sequences_stored_as_un_with_undefined_length_are_read_and_de_identified() {
    // pydicom's UN_sequence.dcm: private (4453,100C) stored as UN with undefined
    // length (CP-246), its items in implicit VR. Also as a standard sequence, whose
    // nested UIDs the profile must reach: the same bytes with the tag changed to
    // ReferencedSeriesSequence (0008,1115).
    let env = Env::new();
    let key = env.key("key", 28);
    let original = std::fs::read(testdata("dicom/priv_sq_as_un.dcm")).unwrap();
    let at = original
        .windows(6)
        .position(|w| w == [0x53, 0x44, 0x0C, 0x10, b'U', b'N'])
        .expect("the UN element");
    let mut standard = original.clone();
    standard[at..at + 4].copy_from_slice(&[0x08, 0x00, 0x15, 0x11]);
    let input = env.path("in");
    std::fs::create_dir_all(&input).unwrap();
    std::fs::write(input.join("private.dcm"), &original).unwrap();
    std::fs::write(input.join("standard.dcm"), &standard).unwrap();
    let out = env.path("out");
    let rep = env.path("r.jsonl");
    let prof = lenient_profile(&env);
    let (lines, _) = run_mirror_ok(&input, &out, &key, &rep, &[&"--profile", &prof]);
    assert!(
        lines
            .iter()
            .all(|l| l["notes"].to_string().contains("CP-246")),
        "{lines:?}"
    );
    let private = open(&out.join("private.dcm"));
    assert!(
        private.get(Tag(0x4453, 0x100C)).is_none(),
        "private sequence removed"
    );
    let standard = open(&out.join("standard.dcm"));
    let seq = standard.element(Tag(0x0008, 0x1115)).unwrap();
    assert_eq!(seq.vr(), VR::SQ);
    let item = &seq.items().unwrap()[0];
    let series = item.element(Tag(0x0008, 0x1115)).unwrap().items().unwrap();
    let image = series[0]
        .element(Tag(0x0008, 0x1199))
        .unwrap()
        .items()
        .unwrap();
    let referenced = text(image[0].element(Tag(0x0008, 0x1155)).unwrap());
    assert!(
        referenced.starts_with("2.25."),
        "nested UID remapped: {referenced}"
    );
    let study = text(item.element(Tag(0x0020, 0x000D)).unwrap());
    assert!(study.starts_with("2.25."), "nested UID remapped: {study}");
    assert!(
        !std::fs::read(out.join("standard.dcm"))
            .unwrap()
            .windows(20)
            .any(|w| w == b"1.2.840.113619.2.327"),
        "no original UID left"
    );
    // Only what the profile removes is gone: the kept sequence still has its items.
    assert_eq!(series.len(), 1);
    external_readers_accept([out.join("private.dcm"), out.join("standard.dcm")].iter());
}

#[test]
fn file_meta_groups_without_group_length_or_transfer_syntax_are_read() {
    let env = Env::new();
    let key = env.key("key", 30);
    let input = env.path("in");
    std::fs::create_dir_all(&input).unwrap();
    std::fs::copy(
        testdata("quirks/no_meta_group_length.dcm"),
        input.join("no_group_length.dcm"),
    )
    .unwrap();
    // The same MR as a good file, its (0002,0010) Transfer Syntax UID cut out and the
    // group length made to match: the dataset is explicit VR LE, to be sniffed.
    let mut bytes = std::fs::read(testdata("dicom/mr_fake_phi_dicognito.dcm")).unwrap();
    let at = bytes
        .windows(6)
        .position(|w| w == [0x02, 0x00, 0x10, 0x00, b'U', b'I'])
        .expect("(0002,0010)");
    let len = 8 + usize::from(u16::from_le_bytes([bytes[at + 6], bytes[at + 7]]));
    bytes.drain(at..at + len);
    let group_length = u32::from_le_bytes(bytes[140..144].try_into().unwrap());
    bytes[140..144].copy_from_slice(&(group_length - len as u32).to_le_bytes());
    std::fs::write(input.join("no_transfer_syntax.dcm"), &bytes).unwrap();
    let out = env.path("out");
    let rep = env.path("r.jsonl");
    let (lines, _) = run_mirror_ok(&input, &out, &key, &rep, &[]);
    assert_eq!(lines.len(), 2);
    assert!(
        lines
            .iter()
            .all(|l| l["notes"].to_string().contains("file meta group without")),
        "{lines:?}"
    );
    let mr = open(&out.join("no_transfer_syntax.dcm"));
    assert_eq!(
        mr.meta().transfer_syntax().trim_end_matches('\0'),
        "1.2.840.10008.1.2.1"
    );
    assert!(text(mr.element(Tag(0x0010, 0x0010)).unwrap()).is_empty());
    let rt = open(&out.join("no_group_length.dcm"));
    assert_eq!(
        rt.meta()
            .media_storage_sop_class_uid()
            .trim_end_matches('\0'),
        "1.2.840.10008.5.1.4.1.1.481.1"
    );
    external_readers_accept(
        [
            out.join("no_group_length.dcm"),
            out.join("no_transfer_syntax.dcm"),
        ]
        .iter(),
    );
}

#[test]
fn kept_standard_attributes_stored_as_un_get_their_dictionary_vr() {
    // pydicom-data's explicit_VR-UN.dcm stores every attribute as UN; a SOP Class
    // UID kept as UN bytes used to fail the file (it cannot go into the meta group).
    let env = Env::new();
    let key = env.key("key", 29);
    let mut obj = open(&testdata("dicom/mr_fake_phi_dicognito.dcm"));
    let as_un = |obj: &mut DefaultDicomObject, tag: Tag| {
        let e = obj.element(tag).unwrap();
        let bytes = e.value().to_bytes().unwrap().into_owned();
        obj.put(dicom_core::DataElement::new(
            tag,
            VR::UN,
            dicom_core::PrimitiveValue::U8(bytes.into()),
        ));
    };
    for tag in [
        Tag(0x0008, 0x0016), // SOP Class UID (K)
        Tag(0x0008, 0x0060), // Modality (K)
        Tag(0x0028, 0x0010), // Rows (K, US)
        Tag(0x0020, 0x0013), // Instance Number (K, IS)
    ] {
        as_un(&mut obj, tag);
    }
    let input = env.path("in");
    std::fs::create_dir_all(&input).unwrap();
    obj.write_to_file(input.join("un.dcm")).unwrap();
    let out = env.path("out");
    let rep = env.path("r.jsonl");
    let (lines, _) = run_mirror_ok(&input, &out, &key, &rep, &[]);
    assert!(
        lines[0]["notes"]
            .to_string()
            .contains("4 standard attribute(s) stored as UN"),
        "{lines:?}"
    );
    let out = open(&out.join("un.dcm"));
    let original = open(&testdata("dicom/mr_fake_phi_dicognito.dcm"));
    for (tag, vr) in [
        (Tag(0x0008, 0x0016), VR::UI),
        (Tag(0x0008, 0x0060), VR::CS),
        (Tag(0x0028, 0x0010), VR::US),
        (Tag(0x0020, 0x0013), VR::IS),
    ] {
        let e = out.element(tag).unwrap();
        assert_eq!(e.vr(), vr, "{tag}");
        assert_eq!(
            e.to_str().unwrap(),
            original.element(tag).unwrap().to_str().unwrap(),
            "{tag} kept"
        );
    }
    assert_eq!(
        out.meta()
            .media_storage_sop_class_uid()
            .trim_end_matches('\0'),
        "1.2.840.10008.5.1.4.1.1.4"
    );
}

#[test]
fn standard_tags_stored_as_un_are_matched_by_tag() {
    let env = Env::new();
    let key = env.key("key", 13);
    let (_, map) = run_basic(&env, &["derived/phi_un_vr.dcm"], &key, "out");
    let out = open(map.values().next().unwrap());
    assert!(
        is_empty_value(out.element(Tag(0x0010, 0x0010)).unwrap()),
        "PatientName (Z) emptied"
    );
    assert!(
        is_empty_value(out.element(Tag(0x0010, 0x0030)).unwrap()),
        "BirthDate (Z) emptied"
    );
    let inst = out.get(Tag(0x0008, 0x0080));
    assert!(
        inst.is_none_or(is_empty_value),
        "InstitutionName (X/Z/D) not kept"
    );
    assert_ne!(
        out.element(Tag(0x0010, 0x0010)).unwrap().vr(),
        VR::UN,
        "written back with its dictionary VR"
    );
}

#[test]
fn datasets_without_meta_become_part10_files() {
    let env = Env::new();
    let key = env.key("key", 14);
    let files = [
        "nometa/ExplVR_LitEndNoMeta.dcm",
        "nometa/ExplVR_BigEndNoMeta.dcm",
        "nometa/rtstruct.dcm",
    ];
    let (o, map) = run_basic(&env, &files, &key, "out");
    assert_eq!(
        o.status.code(),
        Some(0),
        "{}",
        String::from_utf8_lossy(&o.stderr)
    );
    assert_eq!(map.len(), 3);
    let expected_ts = [
        "1.2.840.10008.1.2.1",
        "1.2.840.10008.1.2.2",
        "1.2.840.10008.1.2",
    ];
    for (f, ts) in files.iter().zip(expected_ts) {
        let out = &map[&env.path("input").join(f)];
        let bytes = std::fs::read(out).unwrap();
        assert_eq!(&bytes[128..132], b"DICM");
        let b = open(out);
        assert_eq!(b.meta().transfer_syntax(), ts, "{f}");
        assert_eq!(text(b.element(Tag(0x0012, 0x0062)).unwrap()), "YES");
        assert_eq!(
            b.meta().media_storage_sop_instance_uid(),
            text(b.element(Tag(0x0008, 0x0018)).unwrap())
        );
    }
}

#[test]
fn compound_codes_follow_the_attribute_type_in_the_iod() {
    let env = Env::new();
    let key = env.key("key", 15);
    let (_, map) = run_basic(&env, &["derived/phi_nested.dcm"], &key, "out");
    let out = open(map.values().next().unwrap());
    // CT Image IOD: Institution Name (X/Z/D) is Type 3, so it goes; Content Date
    // (Z/D) is Type 2C, so it is emptied. Referenced Image Sequence (X/Z/U*) is kept
    // with its UIDs remapped at every Type (issue 11, E.21: it used to be removed).
    assert!(out.get(Tag(0x0008, 0x0080)).is_none());
    assert!(
        out.get(Tag(0x0008, 0x1140))
            .and_then(|e| e.items())
            .is_some_and(|items| !items.is_empty())
    );
    assert!(is_empty_value(out.element(Tag(0x0008, 0x0023)).unwrap()));
    // Basic Text SR: Content Date is Type 1 there, so it gets a dummy.
    let env = Env::new();
    let (_, map) = run_basic(&env, &["dicom/sr_comprehensive_nested.dcm"], &key, "sr");
    let sr = open(map.values().next().unwrap());
    if let Some(e) = sr.get(Tag(0x0008, 0x0023)) {
        assert_eq!(text(e), "19000101");
    }
}

#[test]
fn explain_shows_every_element_its_action_and_rule_without_values() {
    let o = run(&[
        &"run",
        &"--dry-run",
        &"--explain",
        &testdata("derived/phi_nested.dcm"),
    ]);
    assert_eq!(
        o.status.code(),
        Some(0),
        "{}",
        String::from_utf8_lossy(&o.stderr)
    );
    let out = String::from_utf8_lossy(&o.stdout);
    let line = |path: &str| {
        out.lines()
            .find(|l| l.starts_with(path))
            .unwrap_or_else(|| panic!("{path} missing:\n{out}"))
            .to_string()
    };
    assert!(
        line("(0010,0010) ").contains("empty") && line("(0010,0010) ").contains("builtin:basic:")
    );
    assert!(line("(0010,0020) ").contains("hash"));
    assert!(line("(0008,0080) ").contains("resolved by Type in the IOD"));
    assert!(line("(0009,1101) ").contains("defaults.private"));
    assert!(
        line("(0008,0060) ").contains("keep") && line("(0008,0060) ").contains("defaults.public")
    );
    assert!(out.contains("IOD: ct-image"));
    for phi in [
        "DOE^JOHN",
        "PID-SECRET-4711",
        "19610704",
        "HOUSE",
        "ACC-99887766",
    ] {
        assert!(!out.contains(phi), "explain shows a value: {phi}");
    }
    // Without --dry-run it explains what a real run does, and still writes nothing
    // (issue 15: it was refused).
    let o = run(&[&"run", &"--explain", &testdata("derived/phi_nested.dcm")]);
    assert_eq!(o.status.code(), Some(0));
    assert!(String::from_utf8_lossy(&o.stdout).contains("IOD: ct-image"));
}
