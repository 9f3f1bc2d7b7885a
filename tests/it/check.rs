//! `dicom-deid check` driven through the real binary: outputs of `run` pass, the
//! originals and deliberately broken outputs fail with the right tag path and
//! kind, and no report ever holds a value.

use dicom_core::value::{DataSetSequence, Value};
use dicom_core::{DataElement, PrimitiveValue, Tag, VR};
use dicom_object::{InMemDicomObject, open_file};
use serde_json::Value as Json;
use std::collections::HashMap;
use std::ffi::OsStr;
use std::path::{Path, PathBuf};
use std::process::Command;

const BIN: &str = env!("CARGO_BIN_EXE_dicom-deid");

/// Samples whose outputs are clean: no reference leaves the set, no SOP class is
/// at risk of burned-in text, no two share a fingerprint or SOP Instance UID.
const CLEAN_SET: &[&str] = &[
    "derived/phi_nested.dcm",
    "derived/phi_nested_ref.dcm",
    "dicom/mr_fake_phi_dicognito.dcm",
    "derived/phi_big_endian.dcm",
];

/// The fake PHI of testdata/derived (testdata/README.md): never in a report.
const PHI: &[&str] = &[
    "DOE^JOHN",
    "PID-SECRET-4711",
    "19610704",
    "1961-07-04",
    "ACC-99887766",
    "HOUSE^GREGORY",
    "Example Hospital",
];

const PATIENT_NAME: Tag = Tag(0x0010, 0x0010);
const REFERENCED_IMAGE_SEQUENCE: Tag = Tag(0x0008, 0x1140);
const REFERENCED_SOP_INSTANCE_UID: Tag = Tag(0x0008, 0x1155);
const CONTENT_SEQUENCE: Tag = Tag(0x0040, 0xA730);
/// Not in Table E.1-1: kept by the basic profile.
const RELATED_SERIES_SEQUENCE: Tag = Tag(0x0008, 0x1250);
const TEXT_VALUE: Tag = Tag(0x0040, 0xA160);

fn testdata(p: &str) -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR"))
        .join("testdata")
        .join(p)
}

fn file_name(p: &str) -> String {
    Path::new(p)
        .file_name()
        .and_then(OsStr::to_str)
        .unwrap_or(p)
        .to_string()
}

struct Env {
    dir: tempfile::TempDir,
}

/// A de-identified tree: where its inputs and outputs are.
struct Deidentified {
    input: PathBuf,
    out: PathBuf,
    /// Input file name -> output path.
    outputs: HashMap<String, PathBuf>,
}

impl Deidentified {
    fn output(&self, input: &str) -> &Path {
        &self.outputs[&file_name(input)]
    }
}

impl Env {
    fn new() -> Env {
        Env {
            dir: tempfile::tempdir().expect("tempdir"),
        }
    }

    fn path(&self, p: &str) -> PathBuf {
        self.dir.path().join(p)
    }

    /// Copies testdata files, flat, into `input/`.
    fn inputs(&self, files: &[&str]) -> PathBuf {
        let root = self.path("input");
        std::fs::create_dir_all(&root).expect("mkdir");
        for f in files {
            std::fs::copy(testdata(f), root.join(file_name(f))).expect("copy");
        }
        root
    }

    fn key(&self) -> PathBuf {
        let p = self.path("project.key");
        std::fs::write(&p, "K".repeat(40)).expect("key");
        #[cfg(unix)]
        {
            use std::os::unix::fs::PermissionsExt;
            std::fs::set_permissions(&p, std::fs::Permissions::from_mode(0o600)).expect("chmod");
        }
        p
    }

    /// `dicom-deid run` over `input/` into `out/`.
    fn deidentify(&self, input: PathBuf) -> Deidentified {
        let out = self.path("out");
        let report = self.path("run.jsonl");
        let status = Command::new(BIN)
            .env_remove("DICOM_DEID_KEY_FILE")
            .arg("run")
            .arg(&input)
            .arg("--out")
            .arg(&out)
            .arg("--key-file")
            .arg(self.key())
            .arg("--report")
            .arg(&report)
            .output()
            .expect("run starts");
        assert_eq!(status.status.code(), Some(0), "run failed: {status:?}");
        let text = std::fs::read_to_string(&report).expect("run report");
        let outputs = text
            .lines()
            .map(|l| serde_json::from_str::<Json>(l).expect("json"))
            .filter(|l| l["status"] == "ok")
            .map(|l| {
                let input = file_name(l["input"].as_str().expect("input"));
                (input, PathBuf::from(l["output"].as_str().expect("output")))
            })
            .collect();
        Deidentified {
            input,
            out,
            outputs,
        }
    }

    /// `dicom-deid check <tree> [args]` with a report.
    fn check(&self, tree: &Path, args: &[&dyn AsRef<OsStr>]) -> Checked {
        let report = self.path("check.jsonl");
        let _ = std::fs::remove_file(&report);
        let mut cmd = Command::new(BIN);
        cmd.arg("check").arg(tree).arg("--report").arg(&report);
        for a in args {
            cmd.arg(a);
        }
        let out = cmd.output().expect("check starts");
        let report_text = std::fs::read_to_string(&report).unwrap_or_default();
        let mut lines: Vec<Json> = report_text
            .lines()
            .map(|l| serde_json::from_str(l).expect("report line is JSON"))
            .collect();
        let summary = lines
            .pop()
            .map(|s| s["summary"].clone())
            .unwrap_or_default();
        Checked {
            code: out.status.code(),
            stdout: String::from_utf8_lossy(&out.stdout).into_owned(),
            stderr: String::from_utf8_lossy(&out.stderr).into_owned(),
            report_text,
            files: lines,
            summary,
        }
    }
}

struct Checked {
    code: Option<i32>,
    stdout: String,
    stderr: String,
    report_text: String,
    files: Vec<Json>,
    summary: Json,
}

impl Checked {
    /// (file, finding) for every finding of the report.
    fn findings(&self) -> Vec<(String, &Json)> {
        self.files
            .iter()
            .flat_map(|f| {
                let file = f["file"].as_str().unwrap_or_default().to_string();
                f["findings"]
                    .as_array()
                    .into_iter()
                    .flatten()
                    .map(move |x| (file.clone(), x))
            })
            .collect()
    }

    /// The findings of `kind` in `file`.
    fn of_kind(&self, file: &Path, kind: &str) -> Vec<Json> {
        let file = file.display().to_string();
        self.findings()
            .into_iter()
            .filter(|(f, x)| *f == file && x["kind"] == kind)
            .map(|(_, x)| x.clone())
            .collect()
    }

    fn has(&self, file: &Path, kind: &str, path: &str, matched: Option<&str>) -> bool {
        self.of_kind(file, kind)
            .iter()
            .any(|x| x["path"] == path && matched.is_none_or(|m| x["match"] == m))
    }

    fn count(&self, kind: &str) -> u64 {
        self.summary["counts"][kind].as_u64().unwrap_or(0)
    }

    /// Neither the report nor stdout quotes a value.
    fn assert_no_values(&self, extra: &[&str]) {
        for v in PHI.iter().chain(extra) {
            assert!(!self.report_text.contains(v), "report holds {v:?}");
            assert!(!self.stdout.contains(v), "stdout holds {v:?}");
        }
    }

    fn explain(&self) -> String {
        format!(
            "exit {:?}\nstdout:\n{}\nstderr:\n{}",
            self.code, self.stdout, self.stderr
        )
    }
}

/// Opens a de-identified output, changes it and writes it back.
fn edit(path: &Path, change: impl FnOnce(&mut InMemDicomObject)) {
    let mut obj = open_file(path).expect("output opens");
    change(&mut obj);
    obj.write_to_file(path).expect("output written");
}

/// Puts `element` into item `index` of the top-level sequence `seq`.
fn put_in_item(
    obj: &mut InMemDicomObject,
    seq: Tag,
    index: usize,
    element: DataElement<InMemDicomObject>,
) {
    let mut element = Some(element);
    let found = obj.update_value(seq, |v| {
        if let (Some(item), Some(e)) = (
            v.items_mut().and_then(|items| items.get_mut(index)),
            element.take(),
        ) {
            item.put(e);
        }
    });
    assert!(found, "{seq} exists");
    assert!(element.is_none(), "item {index} of {seq} exists");
}

fn text(tag: Tag, vr: VR, value: &str) -> DataElement<InMemDicomObject> {
    DataElement::new(tag, vr, PrimitiveValue::from(value))
}

/// A sequence of one item holding `elements`.
fn sequence(
    tag: Tag,
    elements: Vec<DataElement<InMemDicomObject>>,
) -> DataElement<InMemDicomObject> {
    let item = InMemDicomObject::from_element_iter(elements);
    DataElement::new(tag, VR::SQ, Value::from(DataSetSequence::from(vec![item])))
}

fn sop_instance_uid(path: &Path) -> String {
    let obj = open_file(path).expect("opens");
    let uid = obj.element(Tag(0x0008, 0x0018)).expect("SOP Instance UID");
    uid.to_str()
        .expect("text")
        .trim_end_matches('\0')
        .to_string()
}

#[test]
fn outputs_of_run_are_clean_with_and_without_originals() {
    let env = Env::new();
    let tree = env.deidentify(env.inputs(CLEAN_SET));

    let alone = env.check(&tree.out, &[]);
    assert_eq!(alone.code, Some(0), "{}", alone.explain());
    assert_eq!(alone.summary["files"], CLEAN_SET.len() as u64);
    assert_eq!(alone.summary["findings"], 0);
    assert!(
        alone.stdout.contains("clean: nothing found"),
        "{}",
        alone.stdout
    );
    assert_eq!(alone.files.len(), CLEAN_SET.len(), "one line per file");

    let with = env.check(&tree.out, &[&"--originals", &tree.input]);
    assert_eq!(with.code, Some(0), "{}", with.explain());
    assert_eq!(with.summary["originals"]["matched"], CLEAN_SET.len() as u64);
    assert!(with.files.iter().all(|f| f["original"] == "fingerprint"));
    with.assert_no_values(&[]);
}

#[test]
fn originals_fail_with_findings_of_every_kind_they_carry() {
    let env = Env::new();
    let mut files = CLEAN_SET.to_vec();
    files.extend([
        "dicom/nm_j2k_burned_in_private.dcm",
        "dicom/rtdose_multiframe.dcm",
    ]);
    let input = env.inputs(&files);
    let c = env.check(&input, &[]);
    assert_eq!(c.code, Some(1), "{}", c.explain());
    let nested = input.join("phi_nested.dcm");
    assert!(c.has(&nested, "not-emptied", "(0010,0010)", None));
    assert!(c.has(&nested, "private-not-removed", "(0009,1101)", None));
    assert!(c.has(&nested, "not-removed", "(0400,0561)", None));
    assert!(c.has(&nested, "missing-marker", "(0012,0062)", None));
    assert!(c.has(&nested, "not-remapped", "(0008,0018)", None));
    // Nothing more is reported inside a sequence that should be gone.
    assert!(!c.findings().iter().any(|(_, f)| {
        f["path"]
            .as_str()
            .is_some_and(|p| p.starts_with("(0400,0561)["))
            && f["kind"] != "invalid-uid"
    }));
    let burned = input.join("nm_j2k_burned_in_private.dcm");
    assert!(c.has(&burned, "burned-in-annotation", "(0028,0301)", None));
    let dose = input.join("rtdose_multiframe.dcm");
    assert!(c.has(&dose, "invalid-uid", "(300C,0002)[0]/(0008,1155)", None));
    assert!(c.has(
        &dose,
        "unresolved-reference",
        "(300C,0002)[0]/(0008,1155)",
        None
    ));
    for kind in [
        "not-emptied",
        "not-removed",
        "private-not-removed",
        "missing-marker",
    ] {
        assert!(c.count(kind) > 0, "{kind}: {}", c.stdout);
        assert!(c.stdout.contains(kind), "{}", c.stdout);
    }
    assert!(c.stdout.contains("NOT CLEAN"));
    c.assert_no_values(&[]);
}

#[test]
fn a_name_left_in_a_nested_sequence_is_found() {
    let env = Env::new();
    let tree = env.deidentify(env.inputs(CLEAN_SET));
    let out = tree.output("phi_nested.dcm");
    // Related Series Sequence is kept and Content Sequence dummied: both keep their
    // items, whose elements meet their own rules.
    edit(out, |obj| {
        let name = text(PATIENT_NAME, VR::PN, "DOE^JOHN^Q");
        let inner = sequence(CONTENT_SEQUENCE, vec![name]);
        obj.put(sequence(RELATED_SERIES_SEQUENCE, vec![inner]));
    });
    let path = "(0008,1250)[0]/(0040,A730)[0]/(0010,0010)";

    let alone = env.check(&tree.out, &[]);
    assert_eq!(alone.code, Some(1), "{}", alone.explain());
    assert!(
        alone.has(out, "not-emptied", path, None),
        "{}",
        alone.report_text
    );
    assert_eq!(alone.summary["findings"], 1, "{}", alone.report_text);
    assert!(alone.stdout.contains(path), "{}", alone.stdout);

    let with = env.check(&tree.out, &[&"--originals", &tree.input]);
    assert_eq!(with.code, Some(1));
    assert!(
        with.has(out, "residual-phi", path, Some("patient-name")),
        "{}",
        with.report_text
    );
    // The whole name matched: its components add no second finding there.
    assert!(!with.has(out, "residual-phi", path, Some("patient-name-component")));
    with.assert_no_values(&["DOE^JOHN^Q"]);
}

#[test]
fn a_private_element_left_with_its_creator_is_found() {
    let env = Env::new();
    let tree = env.deidentify(env.inputs(CLEAN_SET));
    let out = tree.output("phi_big_endian.dcm");
    edit(out, |obj| {
        obj.put(text(Tag(0x0029, 0x0010), VR::LO, "ACME PHI"));
        obj.put(text(Tag(0x0029, 0x1001), VR::LO, "PID-SECRET-4711"));
    });

    let alone = env.check(&tree.out, &[]);
    assert_eq!(alone.code, Some(1), "{}", alone.explain());
    assert!(
        alone.has(out, "private-not-removed", "(0029,1001)", None),
        "{}",
        alone.report_text
    );
    // The creator stands or falls with its block: not a finding of its own.
    assert!(
        !alone
            .findings()
            .iter()
            .any(|(_, f)| f["path"] == "(0029,0010)")
    );

    let with = env.check(&tree.out, &[&"--originals", &tree.input]);
    assert!(
        with.has(out, "residual-phi", "(0029,1001)", Some("patient-id")),
        "{}",
        with.report_text
    );
    with.assert_no_values(&["ACME PHI"]);
}

#[test]
fn broken_references_and_meta_are_found() {
    let env = Env::new();
    let tree = env.deidentify(env.inputs(CLEAN_SET));
    let nested = tree.output("phi_nested.dcm");
    let target = sop_instance_uid(tree.output("phi_nested_ref.dcm"));
    let reference = "(0008,1140)[0]/(0008,1155)";
    let refer_to = |uid: &str| {
        let uid = uid.to_string();
        move |obj: &mut InMemDicomObject| {
            obj.put(sequence(
                REFERENCED_IMAGE_SEQUENCE,
                vec![
                    text(Tag(0x0008, 0x1150), VR::UI, "1.2.840.10008.5.1.4.1.1.2"),
                    text(REFERENCED_SOP_INSTANCE_UID, VR::UI, &uid),
                ],
            ));
        }
    };

    edit(nested, refer_to(&target));
    let c = env.check(&tree.out, &[]);
    assert_eq!(
        c.code,
        Some(0),
        "a reference within the tree resolves: {}",
        c.explain()
    );

    edit(nested, refer_to("2.25.1234567890"));
    // A dangling reference is a warning: it fails the run only with --strict (issue
    // 11, E.22: warnings used to fail every run, so a real export never passed).
    let c = env.check(&tree.out, &[]);
    assert_eq!(c.code, Some(0), "{}", c.explain());
    let c = env.check(&tree.out, &[&"--strict"]);
    assert_eq!(c.code, Some(1), "{}", c.explain());
    assert!(
        c.has(nested, "unresolved-reference", reference, None),
        "{}",
        c.report_text
    );
    assert_eq!(c.count("unresolved-reference"), 1);
    assert_eq!(c.summary["warnings"], 1);

    // An SR that references instances that were not shared is normal: --allow keeps
    // the finding in the report but not in the exit code.
    let c = env.check(
        &tree.out,
        &[&"--strict", &"--allow", &"unresolved-reference"],
    );
    assert_eq!(c.code, Some(0), "{}", c.explain());
    assert_eq!(c.count("unresolved-reference"), 1);
    assert_eq!(c.summary["allowed"], 1);
    assert!(
        c.report_text.contains(r#""severity":"allowed""#),
        "{}",
        c.report_text
    );
    // Every kind can be allowed (issue 11, E.22; residual-phi used to be refused
    // with exit 2); an unknown kind is a usage error.
    let c = env.check(&tree.out, &[&"--allow", &"residual-phi"]);
    assert_eq!(c.code, Some(0), "{}", c.explain());
    let c = env.check(&tree.out, &[&"--allow", &"no-such-kind"]);
    assert_eq!(c.code, Some(2), "{}", c.explain());

    edit(nested, refer_to("1.2.0345.6"));
    let c = env.check(&tree.out, &[]);
    assert!(
        c.has(nested, "invalid-uid", reference, None),
        "{}",
        c.report_text
    );

    let mr = tree.output("mr_fake_phi_dicognito.dcm");
    let mut dicom = open_file(mr).expect("opens");
    dicom.update_meta(|m| m.media_storage_sop_instance_uid = "2.25.42".into());
    dicom.write_to_file(mr).expect("written");
    let c = env.check(&tree.out, &[]);
    assert!(
        c.has(mr, "meta-uid-mismatch", "(0002,0003)", None),
        "{}",
        c.report_text
    );
}

#[test]
fn a_birth_date_in_an_sr_text_item_is_found() {
    let env = Env::new();
    let input = env.inputs(&["dicom/sr_comprehensive_nested.dcm"]);
    // The sample's birth date is empty: give the original one to leak.
    edit(&input.join("sr_comprehensive_nested.dcm"), |obj| {
        obj.put(text(Tag(0x0010, 0x0030), VR::DA, "19610704"));
    });
    let tree = env.deidentify(input);
    let out = tree.output("sr_comprehensive_nested.dcm");
    let path = "(0040,A730)[2]/(0040,A160)";
    let is_birth_date = |c: &Checked| c.has(out, "residual-phi", path, Some("birth-date"));

    let before = env.check(&tree.out, &[&"--originals", &tree.input]);
    assert!(!is_birth_date(&before), "{}", before.report_text);
    assert_eq!(before.summary["matches"]["birth-date"], Json::Null);

    edit(out, |obj| {
        let item_is_text = obj.get(CONTENT_SEQUENCE).and_then(|e| {
            e.value()
                .items()
                .map(|items| items[2].get(TEXT_VALUE).is_some())
        });
        assert_eq!(item_is_text, Some(true), "item 2 is a TEXT item");
        put_in_item(
            obj,
            CONTENT_SEQUENCE,
            2,
            text(TEXT_VALUE, VR::UT, "Patient born 1961-07-04, seen today"),
        );
    });
    let after = env.check(&tree.out, &[&"--originals", &tree.input]);
    assert_eq!(after.code, Some(1), "{}", after.explain());
    assert!(is_birth_date(&after), "{}", after.report_text);
    assert!(after.stdout.contains("birth-date"), "{}", after.stdout);
    after.assert_no_values(&["Patient born"]);
}

#[test]
fn bytes_no_parser_reads_are_searched_too() {
    let env = Env::new();
    let tree = env.deidentify(env.inputs(CLEAN_SET));
    let out = tree.output("phi_nested.dcm");
    let mut bytes = std::fs::read(out).expect("read");
    let offset = bytes.len() as u64 + 4;
    bytes.extend_from_slice(b"\x01\x02\x03\x04pid-secret-4711\x00");
    std::fs::write(out, bytes).expect("write");

    let c = env.check(&tree.out, &[&"--originals", &tree.input]);
    assert_eq!(c.code, Some(1), "{}", c.explain());
    let raw = c.of_kind(out, "residual-phi");
    assert!(
        raw.iter()
            .any(|f| f["offset"] == offset && f["match"] == "patient-id"),
        "{}",
        c.report_text
    );
    assert_eq!(c.of_kind(out, "unparsed-bytes").len(), 1);
    c.assert_no_values(&["pid-secret-4711"]);
}

#[test]
fn files_that_cannot_be_verified_are_findings() {
    let env = Env::new();
    let tree = env.deidentify(env.inputs(CLEAN_SET));
    let bad = [
        "mr_truncated.dcm",
        "rtplan_truncated.dcm",
        "not_dicom.txt",
        "garbage.bin",
    ];
    for f in bad {
        std::fs::copy(testdata(&format!("bad/{f}")), tree.out.join(f)).expect("copy");
    }
    std::fs::copy(testdata("bad/dicomdir/DICOMDIR"), tree.out.join("DICOMDIR")).expect("copy");
    // A run ledger is bookkeeping: counted, not checked.
    std::fs::write(tree.out.join(".dicom-deid-ledger-1-of-2.jsonl"), "{}\n").expect("ledger");
    let c = env.check(&tree.out, &[]);
    assert_eq!(c.code, Some(1), "{}", c.explain());
    assert_eq!(c.summary["files"], (CLEAN_SET.len() + bad.len() + 1) as u64);
    assert_eq!(c.count("not-dicom"), 2);
    assert_eq!(c.count("dicomdir"), 1);
    assert_eq!(c.count("unreadable"), 2);
    assert_eq!(c.summary["files_with_findings"], 5, "outputs stay clean");
    assert!(c.summary["ledgers_not_checked"].as_u64() >= Some(1));
    c.assert_no_values(&["Doe^Archibald", "Doe^Peter"]);
}

#[test]
fn an_output_without_its_original_is_a_finding() {
    let env = Env::new();
    let tree = env.deidentify(env.inputs(CLEAN_SET));
    let others = env.path("others");
    std::fs::create_dir_all(&others).expect("mkdir");
    std::fs::copy(testdata("derived/phi_nested.dcm"), others.join("a.dcm")).expect("copy");
    let c = env.check(&tree.out, &[&"--originals", &others]);
    assert_eq!(c.code, Some(1));
    assert_eq!(c.count("original-not-found"), CLEAN_SET.len() as u64 - 1);
    assert_eq!(c.summary["originals"]["matched"], 1);
}

#[test]
fn usage_and_profile_errors_exit_2() {
    let env = Env::new();
    let missing = env.check(&env.path("nothing-here"), &[]);
    assert_eq!(missing.code, Some(2), "{}", missing.explain());
    let input = env.inputs(&["derived/phi_nested.dcm"]);
    let profile = env.check(&input, &[&"--profile", &"no-such-profile"]);
    assert_eq!(profile.code, Some(2), "{}", profile.explain());
    let originals = env.check(&input, &[&"--originals", &env.path("nowhere")]);
    assert_eq!(originals.code, Some(2), "{}", originals.explain());
}

#[test]
fn values_inside_kept_sequences_meet_their_own_rules() {
    // A kept sequence's items are judged element by element: a dummy passes, real
    // dates do not, and the path names the item.
    let env = Env::new();
    let tree = env.deidentify(env.inputs(CLEAN_SET));
    let out = tree.output("phi_nested.dcm");
    edit(out, |obj| {
        obj.put(sequence(
            RELATED_SERIES_SEQUENCE,
            vec![
                text(Tag(0x0008, 0x0012), VR::DA, "20010911"), // X/D
                text(Tag(0x0008, 0x0021), VR::DA, "19000101"), // X/D, the dummy
                text(Tag(0x0010, 0x0030), VR::DA, "20010911"), // Z
            ],
        ));
    });
    let c = env.check(&tree.out, &[]);
    assert_eq!(c.code, Some(1), "{}", c.explain());
    let at = |tag: &str| format!("(0008,1250)[0]/{tag}");
    assert!(
        c.has(out, "not-emptied", &at("(0010,0030)"), None),
        "{}",
        c.report_text
    );
    assert!(
        c.has(out, "not-replaced", &at("(0008,0012)"), None),
        "{}",
        c.report_text
    );
    assert!(
        !c.findings()
            .iter()
            .any(|(_, f)| f["path"] == at("(0008,0021)"))
    );
}

#[test]
fn a_tree_made_with_options_is_checked_against_those_options() {
    let env = Env::new();
    let input = env.inputs(CLEAN_SET);
    let out = env.path("opt-out");
    let o = Command::new(BIN)
        .env_remove("DICOM_DEID_KEY_FILE")
        .args([
            "run",
            "--option",
            "clean-descriptors",
            "--option",
            "retain-long-modified-dates",
        ])
        .arg(&input)
        .arg("--out")
        .arg(&out)
        .arg("--key-file")
        .arg(env.key())
        .output()
        .expect("run starts");
    assert_eq!(o.status.code(), Some(0), "{o:?}");
    let checked = env.check(
        &out,
        &[
            &"--option",
            &"clean-descriptors",
            &"--option",
            &"retain-long-modified-dates",
            &"--originals",
            &input,
        ],
    );
    assert_eq!(
        checked.code,
        Some(0),
        "{}\n{}",
        checked.stdout,
        checked.report_text
    );
}

#[test]
fn a_crosswalk_stands_in_for_the_originals() {
    let env = Env::new();
    let input = env.inputs(CLEAN_SET);
    let out = env.path("cw-out");
    let cw = env.path("crosswalk.csv");
    let o = Command::new(BIN)
        .env_remove("DICOM_DEID_KEY_FILE")
        .arg("run")
        .arg(&input)
        .arg("--out")
        .arg(&out)
        .arg("--key-file")
        .arg(env.key())
        .arg("--crosswalk")
        .arg(&cw)
        .output()
        .expect("run starts");
    assert_eq!(o.status.code(), Some(0), "{o:?}");
    let clean = env.check(&out, &[&"--crosswalk", &cw]);
    assert_eq!(
        clean.code,
        Some(0),
        "{}\n{}",
        clean.stdout,
        clean.report_text
    );
    // Put an original Patient ID back into free text of one output.
    let victim = walkdir::WalkDir::new(&out)
        .into_iter()
        .filter_map(Result::ok)
        .find(|e| e.file_name().to_string_lossy().ends_with(".dcm"))
        .expect("an output")
        .path()
        .to_path_buf();
    edit(&victim, |obj| {
        obj.put(text(
            Tag(0x0020, 0x4000),
            VR::LT,
            "follow-up of PID-SECRET-4711",
        ));
    });
    let dirty = env.check(&out, &[&"--crosswalk", &cw]);
    assert_eq!(dirty.code, Some(1));
    assert!(
        dirty.report_text.contains("residual-phi") && dirty.report_text.contains("patient-id"),
        "{}",
        dirty.report_text
    );
    assert!(
        !dirty.report_text.contains("PID-SECRET-4711"),
        "the report never shows the value"
    );
}

#[test]
fn originals_sharing_a_fingerprint_are_searched_together() {
    // Three originals with the same pixels and Instance Number (one fingerprint),
    // different patients: each output is checked against all three, merged once.
    let env = Env::new();
    let input = env.path("input");
    std::fs::create_dir_all(&input).expect("mkdir");
    let patients = [
        (
            "a.dcm",
            "ALPHA^ANNA",
            "PID-ALPHA-1",
            "1.2.826.0.1.3680043.99.1",
        ),
        (
            "b.dcm",
            "BRAVO^BERT",
            "PID-BRAVO-2",
            "1.2.826.0.1.3680043.99.2",
        ),
        (
            "c.dcm",
            "CHARLIE^CARL",
            "PID-CHARLIE-3",
            "1.2.826.0.1.3680043.99.3",
        ),
    ];
    for (file, name, id, uid) in patients {
        let p = input.join(file);
        std::fs::copy(testdata("dicom/mr_fake_phi_dicognito.dcm"), &p).expect("copy");
        edit(&p, |obj| {
            obj.put(DataElement::new(
                PATIENT_NAME,
                VR::PN,
                PrimitiveValue::from(name),
            ));
            obj.put(DataElement::new(
                Tag(0x0010, 0x0020),
                VR::LO,
                PrimitiveValue::from(id),
            ));
            obj.put(DataElement::new(
                Tag(0x0008, 0x0018),
                VR::UI,
                PrimitiveValue::from(uid),
            ));
        });
    }
    let tree = env.deidentify(input.clone());
    let c = env.check(&tree.out, &[&"--originals", &input]);
    assert_eq!(c.count("residual-phi"), 0, "{}", c.explain());
    assert!(c.files.iter().all(|f| f["original"] == "fingerprint"));

    // Another member's name in one output, a third member's ID in another.
    edit(tree.output("b.dcm"), |obj| {
        obj.put(DataElement::new(
            Tag(0x0020, 0x4000),
            VR::LT,
            PrimitiveValue::from("seen with ALPHA^ANNA"),
        ));
    });
    edit(tree.output("c.dcm"), |obj| {
        obj.put(DataElement::new(
            Tag(0x0008, 0x1030),
            VR::LO,
            PrimitiveValue::from("pid-charlie-3 follow-up"),
        ));
    });
    let c = env.check(&tree.out, &[&"--originals", &input]);
    assert!(
        c.has(
            tree.output("b.dcm"),
            "residual-phi",
            "(0020,4000)",
            Some("patient-name")
        ),
        "{}",
        c.report_text
    );
    assert!(
        c.has(
            tree.output("c.dcm"),
            "residual-phi",
            "(0008,1030)",
            Some("patient-id")
        ),
        "{}",
        c.report_text
    );
    c.assert_no_values(&["ALPHA^ANNA", "PID-CHARLIE-3", "BRAVO"]);
}
