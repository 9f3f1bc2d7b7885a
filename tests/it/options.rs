//! PS3.15 options, keyed pseudonyms, date shifting, value-aware cleaning, safe
//! private attributes, lookups and the crosswalk, through the real binary.

use dicom_core::header::Header;
use dicom_core::value::{DataSetSequence, Value};
use dicom_core::{DataElement, Length, PrimitiveValue, Tag, VR};
use dicom_deid::profile::table::{RowTarget, rows};
use dicom_deid::profile::{Code, tagspec::Target};
use dicom_object::InMemDicomObject;
use std::collections::HashMap;
use std::path::{Path, PathBuf};

use crate::common::*;

const STUDY_DATE: Tag = Tag(0x0008, 0x0020);
const PATIENT_ID: Tag = Tag(0x0010, 0x0020);
const BIRTH_DATE: Tag = Tag(0x0010, 0x0030);

fn run_with(
    env: &Env,
    input: &Path,
    out: &str,
    key: &Path,
    extra: &[&str],
) -> (std::process::Output, HashMap<PathBuf, PathBuf>) {
    let out = env.path(out);
    let rep = env.path(&format!(
        "{}.jsonl",
        out.file_name().unwrap().to_string_lossy()
    ));
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
    for e in extra {
        args.push(e);
    }
    let prof = lenient_profile(env);
    if !extra.contains(&"--profile") {
        args.push(&"--profile");
        args.push(&prof);
    }
    let o = run(&args);
    let map = if rep.exists() {
        outputs(&report(&rep).0)
    } else {
        HashMap::new()
    };
    (o, map)
}

fn get_text(o: &InMemDicomObject, tag: Tag) -> Option<String> {
    o.get(tag).map(text)
}

fn days_between(a: &str, b: &str) -> i64 {
    fn days(s: &str) -> i64 {
        let (y, m, d): (i64, i64, i64) = (
            s[..4].parse().unwrap(),
            s[4..6].parse().unwrap(),
            s[6..8].parse().unwrap(),
        );
        // Days from civil, good enough for the test (same algorithm family as PS3.5 dates).
        let y = if m <= 2 { y - 1 } else { y };
        let era = y.div_euclid(400);
        let yoe = y - era * 400;
        let doy = (153 * (if m > 2 { m - 3 } else { m + 9 }) + 2) / 5 + d - 1;
        era * 146_097 + yoe * 365 + yoe / 4 - yoe / 100 + doy
    }
    days(a) - days(b)
}

fn option_cell(tag: Tag, option: &str) -> Option<Code> {
    let t = u32::from(tag.0) << 16 | u32::from(tag.1);
    let cell = |r: &dicom_deid::profile::table::Row| {
        r.options
            .iter()
            .find(|(o, _)| *o == option)
            .map(|(_, c)| *c)
    };
    rows().iter().find_map(|r| match &r.target {
        RowTarget::Target(Target::Tag(x)) if *x == t => cell(r),
        RowTarget::Target(Target::Pattern { mask, value })
            if t & mask == *value && tag.0.is_multiple_of(2) =>
        {
            cell(r)
        }
        _ => None,
    })
}

/// Checks, at every depth, the elements whose row has a cell for `option`.
fn check_option(
    orig: &InMemDicomObject,
    out: &InMemDicomObject,
    option: &str,
    path: &str,
    bad: &mut Vec<String>,
    seen: &mut usize,
) {
    for e in orig.iter() {
        let tag = e.tag();
        let here = format!("{path}/({:04X},{:04X})", tag.0, tag.1);
        let got = out.get(tag);
        let cell = option_cell(tag, option);
        if let Some(cell) = cell {
            *seen += 1;
            let ok = match (cell, e.vr()) {
                (Code::K, VR::SQ) => got.is_some(),
                (Code::K, _) => got.is_some_and(|g| text(g) == text(e)),
                (Code::C, VR::SQ) => got.is_some(),
                // Clean Graphics keeps overlays and drops the text that labels them.
                (Code::C, _)
                    if option == "clean-graphics"
                        && tag.0 & 0xFF00 == 0x6000
                        && tag.1 == 0x4000 =>
                {
                    got.is_none()
                }
                (Code::C, VR::DA | VR::DT) => got.is_some_and(|g| {
                    text(e).is_empty() || (text(g) != text(e) && text(g).len() >= 4)
                }),
                (Code::C, _) => got.is_some(),
                _ => true,
            };
            if !ok {
                bad.push(format!("{here}: {option} {cell:?} not applied"));
            }
        }
        if let (Value::Sequence(os), Some(g)) = (e.value(), got)
            && let Value::Sequence(gs) = g.value()
            && gs.items().len() == os.items().len()
        {
            for (i, (oi, gi)) in os.items().iter().zip(gs.items()).enumerate() {
                check_option(oi, gi, option, &format!("{here}[{i}]"), bad, seen);
            }
        }
    }
}

const SAMPLES: &[&str] = &[
    "dicom/ct_explicit_le.dcm",
    "dicom/mr_implicit_le.dcm",
    "dicom/rtplan_implicit_le.dcm",
    "dicom/sr_comprehensive_nested.dcm",
    "dicom/mr_fake_phi_dicognito.dcm",
    "dicom/rtdose_multiframe.dcm",
    "dicom/mr_overlay.dcm",
    "dicom/nm_j2k_burned_in_private.dcm",
    "derived/phi_nested.dcm",
    "derived/phi_big_endian.dcm",
];

#[test]
fn every_option_changes_exactly_its_rows() {
    let options = [
        ("retain-uids", "113110"),
        ("retain-device-identity", "113109"),
        ("retain-institution-identity", "113112"),
        ("retain-patient-characteristics", "113108"),
        ("retain-long-full-dates", "113106"),
        ("retain-long-modified-dates", "113107"),
        ("clean-descriptors", "113105"),
        ("clean-structured-content", "113104"),
        ("clean-graphics", "113103"),
        ("retain-safe-private", "113111"),
    ];
    let env = Env::new();
    let key = env.key("key", 1);
    let input = env.inputs(SAMPLES);
    for (option, code) in options {
        let (o, map) = run_with(&env, &input, option, &key, &["--option", option]);
        assert_eq!(
            o.status.code(),
            Some(0),
            "{option}: {}",
            String::from_utf8_lossy(&o.stderr)
        );
        let mut bad = Vec::new();
        let mut seen = 0;
        for (i, out) in &map {
            let a = open(i);
            let b = open(out);
            check_option(
                &a,
                &b,
                option,
                &i.file_name().unwrap().to_string_lossy(),
                &mut bad,
                &mut seen,
            );
            let codes: Vec<String> = b
                .element(Tag(0x0012, 0x0064))
                .unwrap()
                .items()
                .unwrap()
                .iter()
                .map(|it| get_text(it, Tag(0x0008, 0x0100)).unwrap())
                .collect();
            assert_eq!(
                codes,
                vec!["113100".to_string(), code.to_string()],
                "{option}"
            );
            let marker = get_text(&b, Tag(0x0028, 0x0303)).unwrap();
            let want = match option {
                "retain-long-full-dates" => "UNMODIFIED",
                "retain-long-modified-dates" => "MODIFIED",
                _ => "REMOVED",
            };
            assert_eq!(marker, want);
        }
        assert!(bad.is_empty(), "{option}:\n{}", bad.join("\n"));
        if option != "retain-safe-private" {
            assert!(
                seen > 0,
                "{option}: no sample has a row this option changes"
            );
        }
    }
}

#[test]
fn full_and_modified_dates_exclude_each_other() {
    let env = Env::new();
    let key = env.key("key", 2);
    let input = env.inputs(&["dicom/mr_implicit_le.dcm"]);
    let (o, _) = run_with(
        &env,
        &input,
        "out",
        &key,
        &[
            "--option",
            "retain-long-full-dates",
            "--option",
            "retain-long-modified-dates",
        ],
    );
    assert_eq!(o.status.code(), Some(2));
    assert!(String::from_utf8_lossy(&o.stderr).contains("exclude each other"));
    let (o, _) = run_with(
        &env,
        &input,
        "out2",
        &key,
        &["--option", "retain-everything"],
    );
    assert_eq!(o.status.code(), Some(2));
    assert!(String::from_utf8_lossy(&o.stderr).contains("unknown option"));
}

#[test]
fn a_patient_keeps_pseudonym_and_date_offset_across_separate_runs() {
    let env = Env::new();
    let key = env.key("key", 3);
    // The same patient's two files in two folders, de-identified by two runs.
    let a_in = env.path("site-a");
    let b_in = env.path("site-b");
    std::fs::create_dir_all(&a_in).unwrap();
    std::fs::create_dir_all(&b_in).unwrap();
    std::fs::copy(testdata("derived/phi_nested.dcm"), a_in.join("x.dcm")).unwrap();
    std::fs::copy(testdata("derived/phi_nested_ref.dcm"), b_in.join("y.dcm")).unwrap();
    let opts = ["--option", "retain-long-modified-dates"];
    let (oa, ma) = run_with(&env, &a_in, "out-a", &key, &opts);
    let (ob, mb) = run_with(&env, &b_in, "out-b", &key, &opts);
    assert_eq!(oa.status.code(), Some(0));
    assert_eq!(ob.status.code(), Some(0));
    let a = open(ma.values().next().unwrap());
    let b = open(mb.values().next().unwrap());
    let orig = open(&a_in.join("x.dcm"));
    assert_eq!(get_text(&a, PATIENT_ID), get_text(&b, PATIENT_ID));
    assert_ne!(get_text(&a, PATIENT_ID), get_text(&orig, PATIENT_ID));
    let (da, db, d0) = (
        get_text(&a, STUDY_DATE).unwrap(),
        get_text(&b, STUDY_DATE).unwrap(),
        get_text(&orig, STUDY_DATE).unwrap(),
    );
    assert_eq!(da, db, "same patient, same offset");
    assert!(
        !d0.is_empty() && !da.is_empty(),
        "study dates {d0:?} {da:?} {db:?}"
    );
    let shift = days_between(&d0, &da);
    assert!((1..=3650).contains(&shift), "{shift}");
    // The birth date moves by the same offset, so the age at the study is kept.
    let (ba, b0) = (
        get_text(&a, BIRTH_DATE).unwrap(),
        get_text(&orig, BIRTH_DATE).unwrap(),
    );
    assert_eq!(days_between(&b0, &ba), shift);
    // Times are kept.
    assert_eq!(
        get_text(&a, Tag(0x0008, 0x0030)),
        get_text(&orig, Tag(0x0008, 0x0030))
    );
    // Another key: another offset and pseudonym.
    let other = env.key("other", 4);
    let (_, mc) = run_with(&env, &a_in, "out-c", &other, &opts);
    let c = open(mc.values().next().unwrap());
    assert_ne!(get_text(&c, PATIENT_ID), get_text(&a, PATIENT_ID));
}

fn with_sr_text(src: &Path, dest: &Path, text_value: &str) {
    let mut obj = open(src);
    obj.put(DataElement::new(
        Tag(0x0010, 0x0010),
        VR::PN,
        PrimitiveValue::from("DOE^JOHN^Q"),
    ));
    obj.put(DataElement::new(
        BIRTH_DATE,
        VR::DA,
        PrimitiveValue::from("19610704"),
    ));
    let item = InMemDicomObject::from_element_iter([
        DataElement::new(Tag(0x0040, 0xA040), VR::CS, PrimitiveValue::from("TEXT")),
        DataElement::new(
            Tag(0x0040, 0xA010),
            VR::CS,
            PrimitiveValue::from("CONTAINS"),
        ),
        DataElement::new(
            Tag(0x0040, 0xA160),
            VR::UT,
            PrimitiveValue::from(text_value),
        ),
    ]);
    obj.update_value(Tag(0x0040, 0xA730), |v| {
        if let Some(items) = v.items_mut() {
            items.push(item.clone());
        }
    });
    let _ = DataSetSequence::<InMemDicomObject>::new(Vec::new(), Length::UNDEFINED);
    obj.write_to_file(dest).unwrap();
}

#[test]
fn sr_text_items_come_out_clean() {
    let env = Env::new();
    let key = env.key("key", 5);
    let input = env.path("in");
    std::fs::create_dir_all(&input).unwrap();
    let note = "Patient John Doe (DOE^JOHN^Q), born 04.07.1961, seen for chest pain.";
    with_sr_text(
        &testdata("dicom/sr_comprehensive_nested.dcm"),
        &input.join("sr.dcm"),
        note,
    );
    let find_text = |o: &InMemDicomObject| -> Vec<String> {
        let mut found = Vec::new();
        fn walk(o: &InMemDicomObject, found: &mut Vec<String>) {
            for e in o.iter() {
                if e.tag() == Tag(0x0040, 0xA160) {
                    found.push(text(e));
                }
                if let Value::Sequence(s) = e.value() {
                    for it in s.items() {
                        walk(it, found);
                    }
                }
            }
        }
        walk(o, &mut found);
        found
    };
    // Basic profile: every text value becomes a dummy.
    let (o, map) = run_with(&env, &input, "basic", &key, &[]);
    assert_eq!(o.status.code(), Some(0));
    let texts = find_text(&open(map.values().next().unwrap()));
    assert!(
        !texts.is_empty() && texts.iter().all(|t| t == "ANONYMIZED"),
        "{texts:?}"
    );
    // Clean Structured Content: the tree and the text stay, the identifying values go.
    let (o, map) = run_with(
        &env,
        &input,
        "sc",
        &key,
        &["--option", "clean-structured-content"],
    );
    assert_eq!(o.status.code(), Some(0));
    let out = open(map.values().next().unwrap());
    let texts = find_text(&out);
    let ours = texts
        .iter()
        .find(|t| t.contains("chest pain"))
        .expect("text kept");
    for leaked in ["John", "Doe", "DOE^JOHN", "04.07.1961"] {
        assert!(!ours.contains(leaked), "{ours}");
    }
    let bytes = std::fs::read(map.values().next().unwrap()).unwrap();
    assert!(!bytes.windows(8).any(|w| w == b"DOE^JOHN"));
}

#[test]
fn clean_descriptors_scrubs_descriptions_but_keeps_them() {
    let env = Env::new();
    let key = env.key("key", 6);
    let input = env.path("in");
    std::fs::create_dir_all(&input).unwrap();
    let mut obj = open(&testdata("derived/phi_nested.dcm"));
    obj.put(DataElement::new(
        Tag(0x0008, 0x1030),
        VR::LO,
        PrimitiveValue::from("CT CHEST for DOE JOHN"),
    ));
    obj.write_to_file(input.join("ct.dcm")).unwrap();
    let (o, map) = run_with(
        &env,
        &input,
        "out",
        &key,
        &["--option", "clean-descriptors"],
    );
    assert_eq!(o.status.code(), Some(0));
    let out = open(map.values().next().unwrap());
    let desc = get_text(&out, Tag(0x0008, 0x1030)).unwrap();
    assert!(
        desc.starts_with("CT CHEST for") && !desc.contains("DOE") && !desc.contains("JOHN"),
        "{desc}"
    );
    // Image Comments (free text, C under the option) keeps its words, loses the names.
    let comments = get_text(&out, Tag(0x0020, 0x4000)).unwrap();
    assert!(
        comments.starts_with("Seen by Dr.") && !comments.contains("HOUSE"),
        "{comments}"
    );
}

#[test]
fn safe_private_attributes_are_kept_by_creator_and_the_rest_dropped() {
    let env = Env::new();
    let key = env.key("key", 7);
    let input = env.inputs(&["dicom/ct_explicit_le.dcm"]);
    let (o, map) = run_with(
        &env,
        &input,
        "out",
        &key,
        &["--option", "retain-safe-private", "--report", "ignored"],
    );
    let _ = o;
    let (o, map2) = run_with(
        &env,
        &input,
        "out2",
        &key,
        &["--option", "retain-safe-private"],
    );
    assert_eq!(o.status.code(), Some(0));
    let _ = map;
    let a = open(&input.join("dicom/ct_explicit_le.dcm"));
    let b = open(map2.values().next().unwrap());
    let safe = dicom_deid::profile::table::safe_private();
    let private: Vec<Tag> = b.iter().map(|e| e.tag()).filter(|t| t.0 % 2 == 1).collect();
    assert!(
        !private.is_empty(),
        "some GE attributes are on the safe list"
    );
    for t in &private {
        if (0x10..=0xFF).contains(&t.1) {
            continue;
        }
        let creator = text(b.element(Tag(t.0, t.1 >> 8)).unwrap());
        assert!(
            safe.iter()
                .any(|(g, e, c)| *g == t.0 && *e == (t.1 & 0xFF) as u8 && *c == creator),
            "({:04X},{:04X}) {creator} is not on the safe list",
            t.0,
            t.1
        );
        assert_eq!(text(b.element(*t).unwrap()), text(a.element(*t).unwrap()));
    }
    // The report lists the creators whose blocks were dropped.
    let rep = env.path("out2.jsonl");
    let (_, summary) = report(&rep);
    assert!(
        summary["private_creators_dropped"]
            .as_array()
            .unwrap()
            .iter()
            .any(|c| c == "GEMS_IDEN_01")
    );
}

#[test]
fn crosswalk_holds_the_pairs_owner_only_and_grows_across_runs_with_one_key() {
    let env = Env::new();
    let key = env.key("key", 8);
    let input = env.inputs(&["derived/phi_nested.dcm", "derived/phi_nested_ref.dcm"]);
    let cw = env.path("crosswalk.csv");
    let (o, map) = run_with(
        &env,
        &input,
        "out",
        &key,
        &[
            "--option",
            "retain-long-modified-dates",
            "--crosswalk",
            cw.to_str().unwrap(),
        ],
    );
    assert_eq!(
        o.status.code(),
        Some(0),
        "{}",
        String::from_utf8_lossy(&o.stderr)
    );
    #[cfg(unix)]
    {
        use std::os::unix::fs::PermissionsExt;
        assert_eq!(
            std::fs::metadata(&cw).unwrap().permissions().mode() & 0o777,
            0o600
        );
    }
    let text_cw = std::fs::read_to_string(&cw).unwrap();
    let out = open(map.values().next().unwrap());
    let pid = get_text(&out, PATIENT_ID).unwrap();
    assert!(text_cw.starts_with("kind,original,pseudonym\n"));
    assert!(
        text_cw.contains(&format!("patient-id,PID-SECRET-4711,{pid}")),
        "{text_cw}"
    );
    assert!(text_cw.contains("date-offset-days,PID-SECRET-4711,-"));
    assert!(text_cw.contains("study-instance-uid,"));
    assert_eq!(
        text_cw.matches("patient-id,").count(),
        1,
        "one line per pair"
    );
    // Item C.9: a second night with the same key adds to it (the second run with
    // --overwrite-crosswalk shrank it, and without that flag it exited 2); a run
    // with another key is refused, and nothing is written then.
    let (o, _) = run_with(
        &env,
        &input,
        "out2",
        &key,
        &["--crosswalk", cw.to_str().unwrap()],
    );
    assert_eq!(
        o.status.code(),
        Some(0),
        "{}",
        String::from_utf8_lossy(&o.stderr)
    );
    assert_eq!(
        std::fs::read_to_string(&cw).unwrap(),
        text_cw,
        "nothing new, nothing lost"
    );
    let more = env.inputs(&["dicom/mr_fake_phi_dicognito.dcm"]);
    let (o, _) = run_with(
        &env,
        &more,
        "out2b",
        &key,
        &["--crosswalk", cw.to_str().unwrap()],
    );
    assert_eq!(
        o.status.code(),
        Some(0),
        "{}",
        String::from_utf8_lossy(&o.stderr)
    );
    let grown = std::fs::read_to_string(&cw).unwrap();
    assert!(grown.starts_with(&text_cw), "earlier pairs kept in place");
    assert!(grown.len() > text_cw.len(), "the new patient's pairs added");
    assert_eq!(
        grown.matches("PID-SECRET-4711").count(),
        text_cw.matches("PID-SECRET-4711").count()
    );
    let other = env.key("other", 9);
    let (o, _) = run_with(
        &env,
        &input,
        "out2c",
        &other,
        &["--crosswalk", cw.to_str().unwrap()],
    );
    assert_eq!(o.status.code(), Some(2));
    assert!(String::from_utf8_lossy(&o.stderr).contains("another key"));
    assert!(!env.path("out2c").exists());
    assert_eq!(std::fs::read_to_string(&cw).unwrap(), grown);
    let (o, _) = run_with(
        &env,
        &input,
        "out3",
        &key,
        &["--crosswalk", cw.to_str().unwrap(), "--overwrite-crosswalk"],
    );
    assert_eq!(o.status.code(), Some(0));
    // The report never carries the originals.
    let rep = std::fs::read_to_string(env.path("out.jsonl")).unwrap();
    assert!(!rep.contains("PID-SECRET-4711"));
}

#[test]
fn lookup_crosswalks_assign_trial_ids() {
    let env = Env::new();
    let key = env.key("key", 9);
    let input = env.inputs(&["derived/phi_nested.dcm", "dicom/mr_implicit_le.dcm"]);
    std::fs::write(
        env.path("ids.csv"),
        "original,replacement\nPID-SECRET-4711,TRIAL-001\n",
    )
    .unwrap();
    let prof = env.path("trial.yaml");
    std::fs::write(&prof, "extends: basic\nname: trial\nrules:\n  - {tag: PatientID, lookup: {file: ids.csv, on-missing: fail}}\n").unwrap();
    let (o, map) = run_with(
        &env,
        &input,
        "out",
        &key,
        &["--profile", prof.to_str().unwrap()],
    );
    assert_eq!(o.status.code(), Some(1), "the unlisted patient fails");
    assert_eq!(map.len(), 1);
    let out = open(map.values().next().unwrap());
    assert_eq!(get_text(&out, PATIENT_ID).as_deref(), Some("TRIAL-001"));
    assert!(String::from_utf8_lossy(&o.stderr).contains("not found in lookup file ids.csv"));
    std::fs::write(&prof, "extends: basic\nname: trial\nrules:\n  - {tag: PatientID, lookup: {file: ids.csv, on-missing: hash}}\n").unwrap();
    let (o, map) = run_with(
        &env,
        &input,
        "out2",
        &key,
        &["--profile", prof.to_str().unwrap()],
    );
    assert_eq!(o.status.code(), Some(0));
    assert_eq!(map.len(), 2);
}

#[test]
fn ages_over_89_are_bucketed_when_asked() {
    let env = Env::new();
    let key = env.key("key", 10);
    let input = env.path("in");
    std::fs::create_dir_all(&input).unwrap();
    let mut obj = open(&testdata("dicom/mr_implicit_le.dcm"));
    obj.put(DataElement::new(
        Tag(0x0010, 0x1010),
        VR::AS,
        PrimitiveValue::from("093Y"),
    ));
    obj.write_to_file(input.join("old.dcm")).unwrap();
    let prof = env.path("hipaa.yaml");
    std::fs::write(&prof, "extends: basic\nname: hipaa\nhipaa-ages: true\noptions: [retain-patient-characteristics]\n").unwrap();
    let (o, map) = run_with(
        &env,
        &input,
        "out",
        &key,
        &["--profile", prof.to_str().unwrap()],
    );
    assert_eq!(
        o.status.code(),
        Some(0),
        "{}",
        String::from_utf8_lossy(&o.stderr)
    );
    assert_eq!(
        get_text(&open(map.values().next().unwrap()), Tag(0x0010, 0x1010)).as_deref(),
        Some("090Y")
    );
    let (_, map) = run_with(
        &env,
        &input,
        "out2",
        &key,
        &["--option", "retain-patient-characteristics"],
    );
    assert_eq!(
        get_text(&open(map.values().next().unwrap()), Tag(0x0010, 0x1010)).as_deref(),
        Some("093Y")
    );
}

#[test]
fn profile_show_prints_the_effect_of_options() {
    let o = run(&[&"profile", &"show", &"basic", &"--option", &"retain-uids"]);
    assert_eq!(o.status.code(), Some(0));
    let out = String::from_utf8_lossy(&o.stdout);
    assert!(out.contains("options: retain-uids"));
    let line = out.lines().find(|l| l.starts_with("(0020,000D)")).unwrap();
    assert!(line.contains(" keep "), "{line}");
    assert!(out.contains("(0012,0064) [113100, 113110]"), "{out}");
}

#[test]
fn multibyte_charsets_come_out_valid_and_unchanged_where_kept() {
    let env = Env::new();
    let key = env.key("key", 11);
    let files: Vec<String> = std::fs::read_dir(testdata("charset"))
        .unwrap()
        .map(|e| format!("charset/{}", e.unwrap().file_name().to_string_lossy()))
        .collect();
    let refs: Vec<&str> = files.iter().map(String::as_str).collect();
    let input = env.inputs(&refs);
    let (o, map) = run_with(
        &env,
        &input,
        "out",
        &key,
        &["--option", "clean-descriptors"],
    );
    assert_eq!(
        o.status.code(),
        Some(0),
        "{}",
        String::from_utf8_lossy(&o.stderr)
    );
    assert_eq!(map.len(), files.len());
    for (i, out) in &map {
        let a = open(i);
        let b = open(out);
        assert_eq!(
            get_text(&a, Tag(0x0008, 0x0005)),
            get_text(&b, Tag(0x0008, 0x0005)),
            "charset kept"
        );
        assert_eq!(
            get_text(&b, Tag(0x0010, 0x0010)).as_deref(),
            Some(""),
            "name emptied"
        );
        if let Some(desc) = get_text(&a, Tag(0x0008, 0x1030)) {
            assert_eq!(get_text(&b, Tag(0x0008, 0x1030)), Some(desc));
        }
    }
    pydicom_same_kept_values(&map);
}

/// With pydicom available, every element both files have and the profile keeps
/// (study description, charset, codes...) decodes to the same value.
fn pydicom_same_kept_values(map: &HashMap<PathBuf, PathBuf>) {
    if !external_tools(false) {
        return;
    }
    let script = r#"
import sys, pydicom
pairs = sys.argv[1:]
for a, b in zip(pairs[::2], pairs[1::2]):
    x, y = pydicom.dcmread(a), pydicom.dcmread(b)
    for tag in (0x00080005, 0x00081030, 0x00080060, 0x00200013):
        if tag in x:
            assert tag in y and str(x[tag].value) == str(y[tag].value), (a, hex(tag))
print("ok")
"#;
    let mut cmd = std::process::Command::new("python3");
    cmd.arg("-c").arg(script);
    for (i, o) in map {
        cmd.arg(i).arg(o);
    }
    let out = cmd.output().unwrap();
    assert!(
        out.status.success(),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );
}

#[test]
fn pseudonym_alphabets_and_coarse_times() {
    let env = Env::new();
    let key = env.key("key", 12);
    let input = env.inputs(&["derived/phi_nested.dcm"]);
    let prof = env.path("site.yaml");
    std::fs::write(
        &prof,
        "extends: basic\nname: site\ncoarsen-times: true\noptions: [retain-long-modified-dates]\nrules:\n  - {tag: PatientID, hash: {domain: patient-id, length: 10, alphabet: digits}}\n",
    )
    .unwrap();
    let (o, map) = run_with(
        &env,
        &input,
        "out",
        &key,
        &["--profile", prof.to_str().unwrap()],
    );
    assert_eq!(
        o.status.code(),
        Some(0),
        "{}",
        String::from_utf8_lossy(&o.stderr)
    );
    let out = open(map.values().next().unwrap());
    let orig = open(&input.join("derived/phi_nested.dcm"));
    let pid = get_text(&out, PATIENT_ID).unwrap();
    assert!(
        pid.len() == 10 && pid.bytes().all(|b| b.is_ascii_digit()),
        "{pid}"
    );
    let (t0, t1) = (
        get_text(&orig, Tag(0x0008, 0x0030)).unwrap(),
        get_text(&out, Tag(0x0008, 0x0030)).unwrap(),
    );
    assert_eq!(t1, format!("{}0000", &t0[..2]), "study time keeps its hour");
    let bad = env.path("bad.yaml");
    std::fs::write(
        &bad,
        "rules:\n  - {tag: PatientID, hash: {alphabet: emoji}}\n",
    )
    .unwrap();
    let o = run(&[&"profile", &"check", &bad]);
    assert_eq!(o.status.code(), Some(2));
}

/// A `replace:` value the tag's VR cannot hold is a profile error at its line, not a
/// failure of every file the profile later meets.
#[test]
fn replace_values_are_checked_against_the_dictionary_vr() {
    let env = Env::new();
    let bad = env.path("bad.yaml");
    std::fs::write(
        &bad,
        "name: t\nrules:\n  - {tag: PatientName, action: Z}\n  - {tag: Rows, replace: \"abc\"}\n",
    )
    .unwrap();
    let o = run(&[&"profile", &"check", &bad]);
    let stderr = String::from_utf8_lossy(&o.stderr);
    assert_eq!(o.status.code(), Some(2), "{stderr}");
    assert!(
        stderr.contains("bad.yaml:4:") && stderr.contains("abc") && stderr.contains("US"),
        "{stderr}"
    );
    let good = env.path("good.yaml");
    // A profile from nothing states its defaults (issue 11, A.1).
    std::fs::write(
        &good,
        "defaults: {public: keep}\nrules:\n  - {tag: Rows, replace: \"512\"}\n",
    )
    .unwrap();
    let o = run(&[&"profile", &"check", &good]);
    assert_eq!(
        o.status.code(),
        Some(0),
        "{}",
        String::from_utf8_lossy(&o.stderr)
    );
}
