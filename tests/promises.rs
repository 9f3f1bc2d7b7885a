//! Issue 11, "every promise holds", through the real binary: quarantine judges the
//! class that is written, no message carries a value read from a file, a deflate
//! bomb fails cleanly, retired JPEG syntaxes pass with their pixels untouched.

use dicom_core::{DataElement, PrimitiveValue, Tag, VR};
use std::path::Path;

mod common;
use common::*;

const SOP_CLASS_UID: Tag = Tag(0x0008, 0x0016);

/// `run INPUT --out OUT --key-file KEY --report REPORT --quarantine Q --layout mirror`
/// with the default profile. Returns the process output, the report lines and the
/// manifest's text.
fn run_default(
    env: &Env,
    input: &Path,
    name: &str,
) -> (std::process::Output, Vec<serde_json::Value>, String) {
    let key = env.key("key", 7);
    let out = env.path(&format!("{name}-out"));
    let rep = env.path(&format!("{name}.jsonl"));
    let q = env.path(&format!("{name}-quarantine"));
    let o = run(&[
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
    ]);
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
