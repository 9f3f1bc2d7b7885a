//! Issue 11, items A.1, A.3, A.4, E.21 and E.22: a file is marked de-identified only
//! when it is, and the judge (`check`) neither lets a weak profile pass nor fails a
//! real export for what is not identifying. Every test drives the real binary.

use crate::common::*;

use dicom_core::{DataElement, PrimitiveValue, Tag, VR};
use dicom_object::InMemDicomObject;
use serde_json::Value as Json;
use std::path::{Path, PathBuf};
use std::process::Output;

fn stdio(o: &Output) -> String {
    format!(
        "exit {:?}\nstdout:\n{}\nstderr:\n{}",
        o.status.code(),
        String::from_utf8_lossy(&o.stdout),
        String::from_utf8_lossy(&o.stderr)
    )
}

fn write(env: &Env, name: &str, text: &str) -> PathBuf {
    let p = env.path(name);
    std::fs::write(&p, text).unwrap();
    p
}

/// The first value of a top-level element, trimmed; `None` when absent.
fn value_of(path: &Path, tag: Tag) -> Option<String> {
    let obj = open(path);
    obj.element(tag).ok().map(text)
}

/// `check TREE --report R ARGS...`: (output, per-file lines, summary).
fn check(
    env: &Env,
    tree: &Path,
    args: &[&dyn AsRef<std::ffi::OsStr>],
) -> (Output, Vec<Json>, Json) {
    let rep = env.path("check.jsonl");
    let _ = std::fs::remove_file(&rep);
    let mut all: Vec<&dyn AsRef<std::ffi::OsStr>> = vec![&"check", &tree, &"--report", &rep];
    all.extend_from_slice(args);
    let o = run(&all);
    let (lines, summary) = if rep.exists() {
        report(&rep)
    } else {
        (Vec::new(), Json::Null)
    };
    (o, lines, summary)
}

/// (kind, path) of every finding in a check report.
fn findings(lines: &[Json]) -> Vec<(String, String)> {
    lines
        .iter()
        .flat_map(|l| l["findings"].as_array().cloned().unwrap_or_default())
        .map(|f| {
            (
                f["kind"].as_str().unwrap_or("").to_string(),
                f["path"].as_str().unwrap_or("").to_string(),
            )
        })
        .collect()
}

/// Runs `run` on one edited copy of a sample (mirror layout) and returns the output.
fn deidentify_one(
    env: &Env,
    sample: &str,
    edit: impl FnOnce(&mut InMemDicomObject),
    extra: &[&dyn AsRef<std::ffi::OsStr>],
) -> PathBuf {
    let input = env.inputs(&[sample]);
    let file = input.join(sample);
    let mut obj = open(&file);
    edit(&mut obj);
    obj.write_to_file(&file).unwrap();
    let out = env.path("out");
    let (lines, _) = run_mirror_ok(
        &input,
        &out,
        &env.key("k", 1),
        &env.path("run.jsonl"),
        extra,
    );
    PathBuf::from(lines[0]["output"].as_str().expect("an output"))
}

// ---------------------------------------------------------------- A.1

#[test]
fn a_profile_without_extends_or_defaults_is_an_error_that_says_why() {
    let env = Env::new();
    for (name, text) in [
        ("empty.yaml", ""),
        ("named.yaml", "name: nothing\n"),
        (
            "rules.yaml",
            "name: few\nrules:\n  - {tag: PatientName, action: X}\n",
        ),
        ("hollow.yaml", "name: hollow\ndefaults: {}\n"),
    ] {
        let p = write(&env, name, text);
        let o = run(&[&"profile", &"check", &p]);
        assert_eq!(o.status.code(), Some(2), "{name}: {}", stdio(&o));
        let all = stdio(&o);
        assert!(
            all.contains("neither `extends` nor `defaults`") && !all.contains(": valid"),
            "{name}: {all}"
        );
        let input = env.inputs(&["dicom/ct_explicit_le.dcm"]);
        let out = env.path(&format!("out-{name}"));
        let o = run(&[&"run", &input, &"--out", &out, &"--profile", &p]);
        assert_eq!(o.status.code(), Some(2), "{name}: {}", stdio(&o));
        assert!(!out.join("dicom").exists(), "{name}: nothing written");
    }
    // Stating the defaults is a deliberate choice, and valid.
    let p = write(
        &env,
        "keep.yaml",
        "name: keepall\ndefaults: {public: keep}\n",
    );
    let o = run(&[&"profile", &"check", &p]);
    assert_eq!(o.status.code(), Some(0), "{}", stdio(&o));
    // ...and `profile check` says which markers it earns.
    assert!(
        stdio(&o).contains("markers: (0012,0062) NO; (0012,0064) []"),
        "{}",
        stdio(&o)
    );
}

#[test]
fn markers_follow_what_the_profile_does_and_check_judges_against_basic() {
    let env = Env::new();
    let keep_all = write(
        &env,
        "keep.yaml",
        "name: keepall\ndefaults: {public: keep}\n",
    );
    let out = deidentify_one(
        &env,
        "dicom/ct_explicit_le.dcm",
        |o| {
            o.put(DataElement::new(
                Tag(0x0010, 0x0010),
                VR::PN,
                PrimitiveValue::from("DOE^JOHN"),
            ));
        },
        &[&"--profile", &keep_all],
    );
    assert_eq!(
        value_of(&out, Tag(0x0010, 0x0010)).as_deref(),
        Some("DOE^JOHN")
    );
    assert_eq!(
        value_of(&out, Tag(0x0012, 0x0062)).as_deref(),
        Some("NO"),
        "a profile that keeps identifying rows does not say YES"
    );
    assert!(
        open(&out).element(Tag(0x0012, 0x0064)).is_err(),
        "no 113100 either"
    );

    // `--profile` names what to expect; the Basic Profile still says what identifies.
    let (o, lines, _) = check(&env, &env.path("out"), &[&"--profile", &keep_all]);
    assert_eq!(o.status.code(), Some(1), "{}", stdio(&o));
    let f = findings(&lines);
    assert!(
        f.contains(&("not-emptied".into(), "(0010,0010)".into())),
        "{f:?}"
    );
    assert!(
        f.contains(&("wrong-marker".into(), "(0012,0062)".into())),
        "{f:?}"
    );

    // The basic profile, on the same input, still says YES and claims 113100.
    let env2 = Env::new();
    let out = deidentify_one(&env2, "dicom/ct_explicit_le.dcm", |_| {}, &[]);
    assert_eq!(value_of(&out, Tag(0x0012, 0x0062)).as_deref(), Some("YES"));
    let codes = open(&out);
    let seq = codes.element(Tag(0x0012, 0x0064)).expect("(0012,0064)");
    let first = &seq.items().expect("items")[0];
    assert_eq!(text(first.element(Tag(0x0008, 0x0100)).unwrap()), "113100");
}

// ---------------------------------------------------------------- A.3

fn put_text(o: &mut InMemDicomObject, tag: Tag, vr: VR, value: &str) {
    o.put(DataElement::new(tag, vr, PrimitiveValue::from(value)));
}

#[test]
fn public_attributes_no_dictionary_knows_are_removed_unless_the_profile_keeps_them() {
    let unknown = Tag(0x0010, 0x9999);
    let plant = |o: &mut InMemDicomObject| put_text(o, unknown, VR::LO, "DOE^JOHN");

    let env = Env::new();
    let out = deidentify_one(&env, "dicom/ct_explicit_le.dcm", plant, &[]);
    assert_eq!(value_of(&out, unknown), None, "basic removes (0010,9999)");

    let env = Env::new();
    let keep = write(
        &env,
        "keep-unknown.yaml",
        "extends: basic\nname: keep-unknown\ndefaults: {unknown-public: keep}\n",
    );
    let o = run(&[&"profile", &"check", &keep]);
    assert_eq!(o.status.code(), Some(0), "{}", stdio(&o));
    let out = deidentify_one(
        &env,
        "dicom/ct_explicit_le.dcm",
        plant,
        &[&"--profile", &keep],
    );
    assert_eq!(value_of(&out, unknown).as_deref(), Some("DOE^JOHN"));
    // The judge, by the Basic Profile, calls the kept element what it is.
    let (o, lines, _) = check(&env, &env.path("out"), &[]);
    assert_eq!(o.status.code(), Some(1), "{}", stdio(&o));
    assert!(
        findings(&lines).contains(&("not-removed".into(), "(0010,9999)".into())),
        "{:?}",
        findings(&lines)
    );

    let bad = write(
        &env,
        "bad.yaml",
        "extends: basic\ndefaults: {unknown-public: maybe}\n",
    );
    let o = run(&[&"profile", &"check", &bad]);
    assert_eq!(o.status.code(), Some(2), "{}", stdio(&o));
    assert!(stdio(&o).contains("unknown-public"), "{}", stdio(&o));
}

#[test]
fn overlay_description_and_label_are_cleaned_or_go_with_clean_graphics() {
    let plant = |o: &mut InMemDicomObject| {
        put_text(o, Tag(0x0010, 0x0010), VR::PN, "DOE^JOHN");
        put_text(o, Tag(0x6000, 0x0022), VR::LO, "ROI drawn for DOE");
        put_text(o, Tag(0x6000, 0x1500), VR::LO, "JOHN LESION");
    };
    // The Basic Profile removes Overlay Data (X): the plane is gone, and with it the
    // rest of its group, text included. A module left with rows, columns and origin
    // but no data is an invalid Overlay Plane (dciodvfy: missing Type 1 OverlayData).
    let env = Env::new();
    let out = deidentify_one(&env, "dicom/mr_overlay.dcm", plant, &[]);
    let left: Vec<Tag> = open(&out)
        .tags()
        .filter(|t| (0x6000..=0x601E).contains(&t.0))
        .collect();
    assert!(
        left.is_empty(),
        "overlay group left without its data: {left:?}"
    );
    let bytes = std::fs::read(&out).unwrap();
    for planted in [&b"DOE"[..], b"JOHN LESION"] {
        assert!(!bytes.windows(planted.len()).any(|w| w == planted));
    }

    let env = Env::new();
    let out = deidentify_one(
        &env,
        "dicom/mr_overlay.dcm",
        plant,
        &[&"--option", &"clean-graphics"],
    );
    assert_eq!(value_of(&out, Tag(0x6000, 0x0022)), None);
    assert_eq!(value_of(&out, Tag(0x6000, 0x1500)), None);
    assert!(
        open(&out).element(Tag(0x6000, 0x3000)).is_ok(),
        "overlay kept"
    );
}

// ---------------------------------------------------------------- A.4

fn strs(values: &[&str]) -> PrimitiveValue {
    PrimitiveValue::Strs(values.iter().map(|s| s.to_string()).collect())
}

#[test]
fn safe_private_creators_keep_only_needed_values_and_a_vr_mismatch_goes() {
    let env = Env::new();
    let out = deidentify_one(
        &env,
        "dicom/ct_explicit_le.dcm",
        |o| {
            // Block 10: a two-valued creator whose first value is on the safe list.
            o.put(DataElement::new(
                Tag(0x00E1, 0x0010),
                VR::LO,
                strs(&["ELSCINT1", "DOE^JOHN"]),
            ));
            put_text(o, Tag(0x00E1, 0x1021), VR::DS, "12.5");
            // Block 11: the safe-listed DLP (DS in Table E.3.10-1) stored as LO text.
            put_text(o, Tag(0x00E1, 0x0011), VR::LO, "ELSCINT1");
            put_text(o, Tag(0x00E1, 0x1121), VR::LO, "DOE^JOHN");
        },
        &[&"--option", &"retain-safe-private"],
    );
    let obj = open(&out);
    assert_eq!(
        obj.element(Tag(0x00E1, 0x1021)).map(text).ok().as_deref(),
        Some("12.5"),
        "the safe element stays"
    );
    let creator = obj.element(Tag(0x00E1, 0x0010)).expect("its creator stays");
    assert_eq!(
        creator.to_multi_str().unwrap().to_vec(),
        vec!["ELSCINT1".to_string()],
        "only the creator value a kept element needs"
    );
    assert!(
        obj.element(Tag(0x00E1, 0x1121)).is_err(),
        "a safe-listed tag with another VR is not the listed element"
    );
    assert!(obj.element(Tag(0x00E1, 0x0011)).is_err(), "nor its creator");

    // The judge agrees: the same mismatch planted in an output is a finding.
    let mut obj = open(&out);
    put_text(&mut obj, Tag(0x00E1, 0x0011), VR::LO, "ELSCINT1");
    put_text(&mut obj, Tag(0x00E1, 0x1121), VR::LO, "DOE^JOHN");
    obj.write_to_file(&out).unwrap();
    let (o, lines, _) = check(
        &env,
        &env.path("out"),
        &[&"--option", &"retain-safe-private"],
    );
    assert_eq!(o.status.code(), Some(1), "{}", stdio(&o));
    let f = findings(&lines);
    assert!(
        f.contains(&("private-not-removed".into(), "(00E1,1121)".into())),
        "{f:?}"
    );
    assert!(
        !f.iter().any(|(_, p)| p == "(00E1,1021)"),
        "the listed element passes: {f:?}"
    );
}

// ---------------------------------------------------------------- E.21

fn sequence(tag: Tag, items: Vec<InMemDicomObject>) -> DataElement<InMemDicomObject> {
    DataElement::new(
        tag,
        VR::SQ,
        dicom_core::value::Value::from(dicom_core::value::DataSetSequence::from(items)),
    )
}

fn reference(uid: &str) -> InMemDicomObject {
    InMemDicomObject::from_element_iter([
        DataElement::new(
            Tag(0x0008, 0x1150),
            VR::UI,
            PrimitiveValue::from("1.2.840.10008.5.1.4.1.1.4"),
        ),
        DataElement::new(Tag(0x0008, 0x1155), VR::UI, PrimitiveValue::from(uid)),
    ])
}

#[test]
fn x_z_u_reference_sequences_are_kept_and_remapped_at_every_type() {
    const ORIGINAL: &str = "1.3.6.1.4.1.5962.99.1.2.3.4";
    let env = Env::new();
    let out = deidentify_one(
        &env,
        "dicom/mr_implicit_le.dcm",
        |o| {
            // An enhanced MR: Referenced Image Sequence is Type 2 inside the Shared
            // Functional Groups, Type 3 at the top level.
            put_text(
                o,
                Tag(0x0008, 0x0016),
                VR::UI,
                "1.2.840.10008.5.1.4.1.1.4.1",
            );
            let shared = InMemDicomObject::from_element_iter([sequence(
                Tag(0x0008, 0x1140),
                vec![reference(ORIGINAL)],
            )]);
            o.put(sequence(Tag(0x5200, 0x9229), vec![shared]));
            o.put(sequence(Tag(0x0008, 0x1140), vec![reference(ORIGINAL)]));
        },
        &[],
    );
    let obj = open(&out);
    let shared = obj
        .element(Tag(0x5200, 0x9229))
        .expect("shared groups kept");
    let shared_item = &shared.items().expect("items")[0];
    let nested = shared_item
        .element(Tag(0x0008, 0x1140))
        .expect("Referenced Image Sequence stays");
    let top = obj
        .element(Tag(0x0008, 0x1140))
        .expect("top-level Referenced Image Sequence stays");
    let mut remapped = Vec::new();
    for seq in [nested, top] {
        let items = seq.items().expect("a sequence");
        assert_eq!(items.len(), 1, "the reference is kept, not emptied");
        let uid = text(items[0].element(Tag(0x0008, 0x1155)).unwrap());
        assert!(uid.starts_with("2.25.") && uid != ORIGINAL, "{uid}");
        remapped.push(uid);
    }
    assert_eq!(remapped[0], remapped[1], "one original, one remapped UID");
}

// ---------------------------------------------------------------- E.22

#[test]
fn check_passes_a_real_export_and_strict_makes_warnings_fail() {
    let env = Env::new();
    let input = env.inputs(&["dicom/ct_explicit_le.dcm", "dicom/mr_implicit_le.dcm"]);
    let ct = input.join("dicom/ct_explicit_le.dcm");
    let mut obj = open(&ct);
    let image_type = obj.element(Tag(0x0008, 0x0008)).map(text).unwrap();
    assert!(image_type.contains("ORIGINAL"), "{image_type}");
    let manufacturer = obj.element(Tag(0x0008, 0x0070)).map(text).unwrap();
    assert!(manufacturer.len() >= 3, "{manufacturer}");
    // A patient whose family name is a word of the kept Image Type, treated at an
    // institution named like the scanner's (kept) manufacturer.
    put_text(&mut obj, Tag(0x0010, 0x0010), VR::PN, "ORIGINAL^JOHN");
    put_text(&mut obj, Tag(0x0008, 0x0080), VR::LO, &manufacturer);
    // A reference to an image that is not exported, and one to a standard palette.
    obj.put(sequence(
        Tag(0x0008, 0x1140),
        vec![reference("1.3.6.1.4.1.5962.99.7.7.7")],
    ));
    obj.put(sequence(
        Tag(0x0008, 0x114A),
        vec![reference("1.2.840.10008.1.5.1")],
    ));
    obj.write_to_file(&ct).unwrap();
    // A Color Palette instance keeps its well-known SOP Instance UID.
    let mr = input.join("dicom/mr_implicit_le.dcm");
    let mut obj = open(&mr);
    put_text(&mut obj, Tag(0x0008, 0x0018), VR::UI, "1.2.840.10008.1.5.2");
    obj.update_meta(|m| m.media_storage_sop_instance_uid = "1.2.840.10008.1.5.2".into());
    obj.write_to_file(&mr).unwrap();

    let out = env.path("out");
    let lenient = lenient_profile(&env);
    run_mirror_ok(
        &input,
        &out,
        &env.key("k", 2),
        &env.path("run.jsonl"),
        &[&"--profile", &lenient],
    );
    let profile: &dyn AsRef<std::ffi::OsStr> = &lenient;
    let (o, lines, summary) = check(&env, &out, &[&"--originals", &input, &"--profile", profile]);
    let f = findings(&lines);
    assert_eq!(o.status.code(), Some(0), "{}\n{f:?}", stdio(&o));
    assert!(
        !f.iter()
            .any(|(k, _)| k == "residual-phi" || k == "not-remapped"),
        "{f:?}"
    );
    assert_eq!(
        f,
        vec![(
            "unresolved-reference".to_string(),
            "(0008,1140)[0]/(0008,1155)".to_string()
        )],
        "only the reference outside the export, and only as a warning"
    );
    assert_eq!(summary["warnings"], 1);
    assert_eq!(summary["failing"], 0);

    let (o, _, summary) = check(
        &env,
        &out,
        &[&"--originals", &input, &"--profile", profile, &"--strict"],
    );
    assert_eq!(o.status.code(), Some(1), "{}", stdio(&o));
    assert_eq!(summary["failing"], 1);
    let (o, _, _) = check(
        &env,
        &out,
        &[
            &"--originals",
            &input,
            &"--profile",
            profile,
            &"--strict",
            &"--allow",
            &"unresolved-reference",
        ],
    );
    assert_eq!(o.status.code(), Some(0), "{}", stdio(&o));
}

#[test]
fn every_finding_kind_can_be_allowed() {
    let env = Env::new();
    // The untouched originals carry findings of many kinds.
    let input = env.inputs(&["derived/phi_nested.dcm", "dicom/ct_explicit_le.dcm"]);
    let (o, lines, _) = check(&env, &input, &[]);
    assert_eq!(o.status.code(), Some(1), "{}", stdio(&o));
    let mut kinds: Vec<String> = findings(&lines).into_iter().map(|(k, _)| k).collect();
    kinds.sort();
    kinds.dedup();
    assert!(kinds.len() >= 4, "{kinds:?}");
    let mut args: Vec<&dyn AsRef<std::ffi::OsStr>> = vec![&"--strict"];
    for k in &kinds {
        args.push(&"--allow");
        args.push(k);
    }
    let (o, _, summary) = check(&env, &input, &args);
    assert_eq!(o.status.code(), Some(0), "{}", stdio(&o));
    assert_eq!(summary["failing"], 0);
    assert!(summary["allowed"].as_u64().unwrap() > 0);
    let (o, _, _) = check(&env, &input, &[&"--allow", &"no-such-kind"]);
    assert_eq!(o.status.code(), Some(2), "{}", stdio(&o));
}
