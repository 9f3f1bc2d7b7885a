//! Nightly-job reliability through the real binary: a killed run resumed, shards,
//! quarantine, hostile lengths and nesting, unwritable outputs.

use std::collections::BTreeMap;
use std::path::{Path, PathBuf};
use std::process::{Command, Stdio};
use std::time::{Duration, Instant};

use crate::common::*;

/// Samples without quarantine findings (no secondary captures, no burned-in text).
const PLAIN: &[&str] = &[
    "dicom/ct_explicit_le.dcm",
    "dicom/mr_implicit_le.dcm",
    "dicom/rtplan_implicit_le.dcm",
    "dicom/mr_explicit_be.dcm",
    "dicom/sr_comprehensive_nested.dcm",
    "dicom/mr_fake_phi_dicognito.dcm",
    "dicom/rtdose_multiframe.dcm",
    "dicom/mr_overlay.dcm",
    "derived/phi_nested.dcm",
    "derived/phi_implicit_private.dcm",
];

/// `copies` copies of each plain sample under `root/dNNN/`.
fn make_tree(root: &Path, copies: usize) -> usize {
    let mut n = 0;
    for c in 0..copies {
        let dir = root.join(format!("d{c:03}"));
        std::fs::create_dir_all(&dir).unwrap();
        for (i, f) in PLAIN.iter().enumerate() {
            std::fs::copy(testdata(f), dir.join(format!("f{i}.dcm"))).unwrap();
            n += 1;
        }
    }
    n
}

/// Every file under `dir` (relative path -> bytes), ledgers aside.
fn tree(dir: &Path) -> BTreeMap<PathBuf, Vec<u8>> {
    walkdir::WalkDir::new(dir)
        .into_iter()
        .filter_map(Result::ok)
        .filter(|e| e.file_type().is_file())
        .filter(|e| {
            !e.file_name()
                .to_string_lossy()
                .starts_with(".dicom-deid-ledger")
        })
        .map(|e| {
            (
                e.path().strip_prefix(dir).unwrap().to_path_buf(),
                std::fs::read(e.path()).unwrap(),
            )
        })
        .collect()
}

fn count_dcm(dir: &Path) -> usize {
    walkdir::WalkDir::new(dir)
        .into_iter()
        .filter_map(Result::ok)
        .filter(|e| e.file_name().to_string_lossy().ends_with(".dcm"))
        .count()
}

#[test]
fn a_run_killed_mid_way_resumes_to_the_same_tree() {
    let env = Env::new();
    let key = env.key("key", 20);
    let input = env.path("in");
    let total = make_tree(&input, 300);
    let args = |out: &Path, rep: &Path| -> Vec<std::ffi::OsString> {
        vec![
            "run".into(),
            input.clone().into(),
            "--out".into(),
            out.into(),
            "--key-file".into(),
            key.clone().into(),
            "--report".into(),
            rep.into(),
            "--jobs".into(),
            "1".into(),
            // Copies share SOP Instance UIDs: keep them apart by path.
            "--layout".into(),
            "mirror".into(),
        ]
    };
    // Reference: one clean run.
    let clean = env.path("clean");
    let o = Command::new(BIN)
        .args(args(&clean, &env.path("clean.jsonl")))
        .output()
        .unwrap();
    assert_eq!(
        o.status.code(),
        Some(0),
        "{}",
        String::from_utf8_lossy(&o.stderr)
    );

    // The same run, killed with SIGKILL once some outputs exist.
    let out = env.path("out");
    let mut child = Command::new(BIN)
        .args(args(&out, &env.path("killed.jsonl")))
        .stdout(Stdio::null())
        .stderr(Stdio::null())
        .spawn()
        .unwrap();
    let started = Instant::now();
    while count_dcm(&out) < 40 && started.elapsed() < Duration::from_secs(60) {
        std::thread::sleep(Duration::from_millis(2));
    }
    let _ = child.kill();
    let _ = child.wait();
    let before = count_dcm(&out);
    assert!(
        before < total,
        "the run was killed before it finished ({before} of {total})"
    );

    // Re-run: resumes from the ledger, removes what the kill left, ends equal.
    let rep = env.path("resumed.jsonl");
    let o = Command::new(BIN).args(args(&out, &rep)).output().unwrap();
    assert_eq!(
        o.status.code(),
        Some(0),
        "{}",
        String::from_utf8_lossy(&o.stderr)
    );
    let (_, summary) = report(&rep);
    let unchanged = summary["skipped_unchanged"].as_u64().unwrap();
    assert!(unchanged > 0, "the resumed run skipped finished inputs");
    assert_eq!(summary["files_seen"].as_u64().unwrap() as usize, total);
    assert_eq!(
        summary["written"].as_u64().unwrap() + unchanged,
        total as u64,
        "every input is either written now or finished before"
    );
    let (a, b) = (tree(&clean), tree(&out));
    assert!(
        b.keys()
            .all(|p| !p.to_string_lossy().contains(".dicom-deid-tmp-")),
        "no temporary file remains"
    );
    assert_eq!(a.len(), b.len());
    assert!(a == b, "resumed tree equals a clean run byte for byte");

    // A third run with the same profile and key has nothing to do; another key redoes all.
    let rep = env.path("third.jsonl");
    Command::new(BIN).args(args(&out, &rep)).output().unwrap();
    assert_eq!(report(&rep).1["written"], 0);
    let other = env.key("other", 21);
    let rep = env.path("other.jsonl");
    let mut a2 = args(&out, &rep);
    a2[5] = other.into();
    Command::new(BIN).args(a2).output().unwrap();
    assert_eq!(report(&rep).1["written"].as_u64().unwrap() as usize, total);
}

#[test]
fn shards_together_equal_one_run() {
    let env = Env::new();
    let key = env.key("key", 22);
    let input = env.path("in");
    make_tree(&input, 30);
    let base = |out: &Path| -> Vec<std::ffi::OsString> {
        vec![
            "run".into(),
            input.clone().into(),
            "--out".into(),
            out.into(),
            "--key-file".into(),
            key.clone().into(),
            "--layout".into(),
            "mirror".into(),
        ]
    };
    let single = env.path("single");
    assert_eq!(
        Command::new(BIN)
            .args(base(&single))
            .output()
            .unwrap()
            .status
            .code(),
        Some(0)
    );
    let want = tree(&single);

    // --shard I/N, each shard with its own report, merged afterwards.
    let sharded = env.path("sharded");
    let mut per_shard = Vec::new();
    let mut reports = Vec::new();
    for i in 0..3 {
        let mut a = base(&sharded);
        let rep = env.path(&format!("shard-{i}.jsonl"));
        a.extend([
            "--shard".into(),
            format!("{i}/3").into(),
            "--report".into(),
            rep.clone().into(),
        ]);
        reports.push(rep);
        let o = Command::new(BIN).args(a).output().unwrap();
        assert_eq!(o.status.code(), Some(0));
        per_shard.push(count_dcm(&sharded));
        assert!(
            sharded
                .join(format!(".dicom-deid-ledger-{i}-of-3.jsonl"))
                .is_file()
        );
    }
    assert!(per_shard[0] > 0 && per_shard[0] < per_shard[1] && per_shard[1] < per_shard[2]);
    assert!(tree(&sharded) == want, "union of 3 shards equals one run");
    let merged = Command::new(BIN)
        .arg("report")
        .arg("merge")
        .args(&reports)
        .output()
        .unwrap();
    assert_eq!(merged.status.code(), Some(0));
    let text = String::from_utf8_lossy(&merged.stdout);
    let last: serde_json::Value = serde_json::from_str(text.lines().last().unwrap()).unwrap();
    assert_eq!(
        last["summary"]["written"].as_u64().unwrap() as usize,
        want.len()
    );
    assert_eq!(last["summary"]["reports_merged"], 3);
    assert_eq!(
        text.lines().count(),
        want.len() + 1,
        "one line per file, one summary"
    );

    // Slurm array (task ids 1..=3) and Kubernetes Indexed Job (indexes 0..=2).
    let slurm = env.path("slurm");
    for id in 1..=3 {
        let mut a = base(&slurm);
        a.extend(["--shard".into(), "auto".into()]);
        let o = Command::new(BIN)
            .args(a)
            .env("SLURM_ARRAY_TASK_ID", id.to_string())
            .env("SLURM_ARRAY_TASK_MIN", "1")
            .env("SLURM_ARRAY_TASK_COUNT", "3")
            .output()
            .unwrap();
        assert_eq!(
            o.status.code(),
            Some(0),
            "{}",
            String::from_utf8_lossy(&o.stderr)
        );
    }
    assert!(tree(&slurm) == want);
    let k8s = env.path("k8s");
    for idx in 0..3 {
        let mut a = base(&k8s);
        a.extend([
            "--shard".into(),
            "auto".into(),
            "--shard-count".into(),
            "3".into(),
        ]);
        let o = Command::new(BIN)
            .args(a)
            .env("JOB_COMPLETION_INDEX", idx.to_string())
            .output()
            .unwrap();
        assert_eq!(o.status.code(), Some(0));
    }
    assert!(tree(&k8s) == want);
    // Without the variables `auto` is a usage error.
    let mut a = base(&env.path("none"));
    a.extend(["--shard".into(), "auto".into()]);
    assert_eq!(
        Command::new(BIN).args(a).output().unwrap().status.code(),
        Some(2)
    );
}

#[test]
fn unsafe_files_are_quarantined_by_default_and_listed() {
    let env = Env::new();
    let key = env.key("key", 23);
    let input = env.inputs(&[
        "dicom/nm_j2k_burned_in_private.dcm",
        "dicom/sc_jpeg_baseline.dcm",
        "dicom/ct_explicit_le.dcm",
        "bad/mr_truncated.dcm",
    ]);
    let q = env.path("quarantine");
    let out = env.path("out");
    let o = run(&[
        &"run",
        &input,
        &"--out",
        &out,
        &"--key-file",
        &key,
        &"--quarantine",
        &q,
        &"--quarantine-copy",
    ]);
    assert_eq!(o.status.code(), Some(1));
    let manifest = std::fs::read_to_string(q.join("manifest.jsonl")).unwrap();
    let lines: Vec<serde_json::Value> = manifest
        .lines()
        .map(|l| serde_json::from_str(l).unwrap())
        .collect();
    assert_eq!(lines.len(), 3, "{manifest}");
    let kind_of = |name: &str| {
        lines
            .iter()
            .find(|l| l["input"].as_str().unwrap().ends_with(name))
            .map(|l| l["kind"].as_str().unwrap().to_string())
            .unwrap()
    };
    assert_eq!(kind_of("nm_j2k_burned_in_private.dcm"), "quarantined");
    assert_eq!(kind_of("sc_jpeg_baseline.dcm"), "quarantined");
    assert_eq!(kind_of("mr_truncated.dcm"), "malformed");
    assert!(manifest.contains("Burned In Annotation"));
    // Copies are opt-in and byte-identical.
    assert_eq!(
        std::fs::read(q.join("files/dicom/sc_jpeg_baseline.dcm")).unwrap(),
        std::fs::read(testdata("dicom/sc_jpeg_baseline.dcm")).unwrap()
    );
    assert_eq!(count_dcm(&out), 1, "only the CT was written");
    // A profile can switch a rule to a warning.
    let prof = env.path("warn.yaml");
    std::fs::write(
        &prof,
        "extends: basic\nquarantine: {burned-in-unknown: warn}\n",
    )
    .unwrap();
    let rep = env.path("r.jsonl");
    let o = run(&[
        &"run",
        &input,
        &"--out",
        &env.path("out2"),
        &"--key-file",
        &key,
        &"--profile",
        &prof,
        &"--report",
        &rep,
    ]);
    assert_eq!(
        o.status.code(),
        Some(1),
        "burned-in YES and the truncated file still fail"
    );
    let text = std::fs::read_to_string(&rep).unwrap();
    assert!(text.contains("warning: SOP class 1.2.840.10008.5.1.4.1.1.7"));
}

/// Preamble, DICM and an explicit VR little endian meta group for a CT instance.
fn part10_header() -> Vec<u8> {
    let meta = dicom_object::FileMetaTableBuilder::new()
        .media_storage_sop_class_uid("1.2.840.10008.5.1.4.1.1.2")
        .media_storage_sop_instance_uid("1.2.3.4.5")
        .transfer_syntax("1.2.840.10008.1.2.1")
        .build()
        .unwrap();
    let mut out = vec![0u8; 128];
    out.extend_from_slice(b"DICM");
    meta.write(&mut out).unwrap();
    out
}

fn explicit(tag: (u16, u16), vr: &[u8; 2], value: &[u8]) -> Vec<u8> {
    let mut v = Vec::new();
    v.extend_from_slice(&tag.0.to_le_bytes());
    v.extend_from_slice(&tag.1.to_le_bytes());
    v.extend_from_slice(vr);
    v.extend_from_slice(&(value.len() as u16).to_le_bytes());
    v.extend_from_slice(value);
    v
}

#[test]
fn hostile_lengths_and_nesting_fail_cleanly() {
    let env = Env::new();
    let key = env.key("key", 24);
    let input = env.path("in");
    std::fs::create_dir_all(&input).unwrap();
    // An element claiming 4 GiB - 16 bytes in a file of a few hundred.
    let mut huge = part10_header();
    huge.extend(explicit(
        (0x0008, 0x0016),
        b"UI",
        b"1.2.840.10008.5.1.4.1.1.2\0",
    ));
    huge.extend_from_slice(&[0x20, 0x00, 0x00, 0x40, b'U', b'T', 0, 0]);
    huge.extend_from_slice(&0xFFFF_FFF0u32.to_le_bytes());
    huge.extend_from_slice(b"short");
    std::fs::write(input.join("huge.dcm"), &huge).unwrap();
    // 20,000 nested sequences of undefined length (enough to overflow any stack).
    let mut deep = part10_header();
    deep.extend(explicit(
        (0x0008, 0x0016),
        b"UI",
        b"1.2.840.10008.5.1.4.1.1.2\0",
    ));
    for _ in 0..20_000 {
        deep.extend_from_slice(&[
            0x40, 0x00, 0x30, 0xA7, b'S', b'Q', 0, 0, 0xFF, 0xFF, 0xFF, 0xFF,
        ]);
        deep.extend_from_slice(&[0xFE, 0xFF, 0x00, 0xE0, 0xFF, 0xFF, 0xFF, 0xFF]);
    }
    std::fs::write(input.join("deep.dcm"), &deep).unwrap();
    let rep = env.path("r.jsonl");
    let o = run(&[
        &"run",
        &input,
        &"--out",
        &env.path("out"),
        &"--key-file",
        &key,
        &"--report",
        &rep,
    ]);
    assert_eq!(
        o.status.code(),
        Some(1),
        "a clean failure, not a crash: {:?}",
        o.status
    );
    let (lines, summary) = report(&rep);
    assert_eq!(summary["failed"], 2);
    let reason = |name: &str| {
        lines
            .iter()
            .find(|l| l["input"].as_str().unwrap().ends_with(name))
            .map(|l| l["reason"].as_str().unwrap().to_string())
            .unwrap()
    };
    assert!(
        reason("huge.dcm").contains("declares 4294967280 bytes"),
        "{}",
        reason("huge.dcm")
    );
    assert!(
        reason("deep.dcm").contains("nest deeper"),
        "{}",
        reason("deep.dcm")
    );
}

#[test]
fn an_unwritable_output_fails_the_file_without_partial_output() {
    let env = Env::new();
    let key = env.key("key", 25);
    let input = env.inputs(&["dicom/mr_implicit_le.dcm", "dicom/ct_explicit_le.dcm"]);
    let out = env.path("out");
    std::fs::create_dir_all(&out).unwrap();
    // A file where the mirror layout needs a directory.
    std::fs::write(out.join("dicom"), b"in the way").unwrap();
    let rep = env.path("r.jsonl");
    let o = run(&[
        &"run",
        &input,
        &"--out",
        &out,
        &"--key-file",
        &key,
        &"--layout",
        &"mirror",
        &"--report",
        &rep,
    ]);
    assert_eq!(o.status.code(), Some(1));
    let (lines, _) = report(&rep);
    assert!(
        lines
            .iter()
            .all(|l| l["status"] == "failed" && l["kind"] == "write"),
        "{lines:?}"
    );
    assert!(String::from_utf8_lossy(&o.stderr).contains("cannot write output"));
    let leftovers: Vec<_> = walkdir::WalkDir::new(&out)
        .into_iter()
        .filter_map(Result::ok)
        .filter(|e| e.file_name().to_string_lossy().contains(".dicom-deid-tmp-"))
        .collect();
    assert!(leftovers.is_empty());
}

/// Mounts a tmpfs of `kib` KiB at `dir`; false where mounting is not permitted
/// (not root, or a container without the capability).
fn mount_small_tmpfs(dir: &Path, kib: u32) -> bool {
    std::fs::create_dir_all(dir).unwrap();
    Command::new("mount")
        .args(["-t", "tmpfs", "-o", &format!("size={kib}k"), "tmpfs"])
        .arg(dir)
        .stdout(Stdio::null())
        .stderr(Stdio::null())
        .status()
        .is_ok_and(|s| s.success())
}

struct Unmount(PathBuf);

impl Drop for Unmount {
    fn drop(&mut self) {
        let _ = Command::new("umount").arg(&self.0).status();
    }
}

#[test]
fn a_full_device_stops_the_batch_without_partial_output() {
    let env = Env::new();
    let key = env.key("key", 26);
    let input = env.path("in");
    let n = make_tree(&input, 20);
    let out = env.path("small-device");
    if !mount_small_tmpfs(&out, 256) {
        eprintln!("SKIPPED: cannot mount a tmpfs here (needs root); ENOSPC not exercised");
        return;
    }
    let _unmount = Unmount(out.clone());
    let rep = env.path("r.jsonl");
    let o = run(&[
        &"run",
        &input,
        &"--out",
        &out,
        &"--key-file",
        &key,
        &"--layout",
        &"mirror",
        &"--jobs",
        &"2",
        &"--report",
        &rep,
    ]);
    let stderr = String::from_utf8_lossy(&o.stderr);
    assert_eq!(o.status.code(), Some(1), "{stderr}");
    let (lines, summary) = report(&rep);
    assert_eq!(lines.len(), n);
    let kinds = |k: &str| lines.iter().filter(|l| l["kind"] == k).count();
    let written = lines.iter().filter(|l| l["status"] == "ok").count();
    assert!(kinds("output-full") >= 1, "{lines:?}");
    assert!(
        written < n && written + kinds("output-full") + kinds("aborted") == n,
        "{lines:?}"
    );
    assert_eq!(summary["not_attempted"], kinds("aborted"));
    // The cause is said once, not once per file that was not attempted.
    assert!(stderr.contains("No space left on device"), "{stderr}");
    assert!(stderr.matches("not processed").count() == 0, "{stderr}");
    if kinds("aborted") > 0 {
        assert!(stderr.contains("files not attempted: the output device is full"));
    }
    // No temporary, no partial file: every output present reads back whole.
    let mut outputs = 0;
    for e in walkdir::WalkDir::new(&out)
        .into_iter()
        .filter_map(Result::ok)
    {
        let name = e.file_name().to_string_lossy().into_owned();
        assert!(!name.contains(".dicom-deid-tmp-"), "temporary left: {name}");
        if name.ends_with(".dcm") {
            outputs += 1;
            dicom_object::open_file(e.path()).expect("a complete output");
        }
    }
    assert_eq!(outputs, written);
}

#[test]
fn an_output_emptied_by_a_crash_is_redone_not_skipped() {
    // Outputs are not fsynced: after a power loss a file can be empty while its
    // ledger line survived. The next run must redo it.
    let env = Env::new();
    let key = env.key("key", 31);
    let input = env.path("in");
    let n = make_tree(&input, 1);
    let out = env.path("out");
    let args = |rep: &PathBuf| -> Vec<std::ffi::OsString> {
        vec![
            "run".into(),
            input.clone().into(),
            "--out".into(),
            out.clone().into(),
            "--key-file".into(),
            key.clone().into(),
            "--layout".into(),
            "mirror".into(),
            "--report".into(),
            rep.clone().into(),
        ]
    };
    let run_with = |rep: &PathBuf| {
        let a = args(rep);
        let refs: Vec<&dyn AsRef<std::ffi::OsStr>> =
            a.iter().map(|s| s as &dyn AsRef<std::ffi::OsStr>).collect();
        run(&refs)
    };
    let first = env.path("first.jsonl");
    assert_eq!(run_with(&first).status.code(), Some(0));
    let before = tree(&out);
    let victim = out.join("d000").join("f0.dcm");
    std::fs::write(&victim, b"").unwrap();
    let second = env.path("second.jsonl");
    assert_eq!(run_with(&second).status.code(), Some(0));
    let (_, summary) = report(&second);
    assert_eq!(summary["written"], 1, "{summary}");
    assert_eq!(summary["skipped_unchanged"], n - 1);
    assert_eq!(tree(&out), before, "the emptied output is whole again");
}

/// A CT-like Part 10 file of about 2.3 MiB (so it is read through the open handle,
/// not in one go) whose kept Manufacturer names its version and whose Pixel Data is
/// one byte repeated: `b'A'` for version A, `b'B'` for version B.
fn versioned_file(version: u8, sop: &str) -> Vec<u8> {
    use dicom_core::{DataElement, PrimitiveValue, Tag, VR};
    use dicom_object::{FileMetaTableBuilder, InMemDicomObject};
    let (rows, cols) = (1024u16, 1152u16);
    let mut obj = InMemDicomObject::new_empty();
    let put = |o: &mut InMemDicomObject, tag: (u16, u16), vr: VR, v: PrimitiveValue| {
        o.put(DataElement::new(Tag(tag.0, tag.1), vr, v));
    };
    put(
        &mut obj,
        (0x0008, 0x0016),
        VR::UI,
        "1.2.840.10008.5.1.4.1.1.2".into(),
    );
    put(&mut obj, (0x0008, 0x0018), VR::UI, sop.into());
    put(&mut obj, (0x0008, 0x0060), VR::CS, "CT".into());
    let maker = format!("VERSION-{}", version as char);
    put(&mut obj, (0x0008, 0x0070), VR::LO, maker.as_str().into());
    put(&mut obj, (0x0010, 0x0010), VR::PN, "DOE^JANE".into());
    put(&mut obj, (0x0010, 0x0020), VR::LO, "PID-1".into());
    put(&mut obj, (0x0020, 0x000D), VR::UI, "1.2.3.4".into());
    put(&mut obj, (0x0020, 0x000E), VR::UI, "1.2.3.4.5".into());
    put(
        &mut obj,
        (0x0028, 0x0002),
        VR::US,
        PrimitiveValue::from(1u16),
    );
    put(&mut obj, (0x0028, 0x0004), VR::CS, "MONOCHROME2".into());
    put(
        &mut obj,
        (0x0028, 0x0010),
        VR::US,
        PrimitiveValue::from(rows),
    );
    put(
        &mut obj,
        (0x0028, 0x0011),
        VR::US,
        PrimitiveValue::from(cols),
    );
    put(
        &mut obj,
        (0x0028, 0x0100),
        VR::US,
        PrimitiveValue::from(16u16),
    );
    put(
        &mut obj,
        (0x0028, 0x0101),
        VR::US,
        PrimitiveValue::from(16u16),
    );
    put(
        &mut obj,
        (0x0028, 0x0102),
        VR::US,
        PrimitiveValue::from(15u16),
    );
    put(
        &mut obj,
        (0x0028, 0x0103),
        VR::US,
        PrimitiveValue::from(0u16),
    );
    let pixels = vec![version; usize::from(rows) * usize::from(cols) * 2];
    put(
        &mut obj,
        (0x7FE0, 0x0010),
        VR::OW,
        PrimitiveValue::from(pixels),
    );
    let file = obj
        .with_meta(
            FileMetaTableBuilder::new()
                .media_storage_sop_class_uid("1.2.840.10008.5.1.4.1.1.2")
                .media_storage_sop_instance_uid(sop)
                .transfer_syntax("1.2.840.10008.1.2.1"),
        )
        .unwrap();
    let mut out = Vec::new();
    file.write_all(&mut out).unwrap();
    out
}

/// Inputs rewritten in place and replaced by rename while a run reads them: every
/// output is a faithful de-identification of one version (its kept Manufacturer and
/// its pixels agree), or the input is reported `changed` and nothing is written.
/// Before the pipeline opened each input once, Pixel Data of large files came from
/// a second open by path, and outputs mixed versions.
#[test]
fn inputs_replaced_during_a_run_are_never_written_mixed() {
    use dicom_core::Tag;
    let env = Env::new();
    let input = env.path("input");
    std::fs::create_dir_all(&input).unwrap();
    const N: usize = 60;
    let versions: Vec<[Vec<u8>; 2]> = (0..N)
        .map(|i| {
            let sop = format!("1.2.826.0.1.3680043.2.1125.{}", i + 1);
            [versioned_file(b'A', &sop), versioned_file(b'B', &sop)]
        })
        .collect();
    let path = |i: usize| input.join(format!("f{i:03}.dcm"));
    for (i, v) in versions.iter().enumerate() {
        std::fs::write(path(i), &v[0]).unwrap();
    }
    let key = env.key("k", 1);
    let out = env.path("out");
    let rep = env.path("report.jsonl");
    let stop = std::sync::Arc::new(std::sync::atomic::AtomicBool::new(false));
    // Both versions of every file, outside the input tree, to link from.
    let store = env.path("versions");
    std::fs::create_dir_all(&store).unwrap();
    for (i, v) in versions.iter().enumerate() {
        std::fs::write(store.join(format!("a{i}")), &v[0]).unwrap();
        std::fs::write(store.join(format!("b{i}")), &v[1]).unwrap();
    }
    // Rewrites inputs while the runs go on: every third file in place (same inode,
    // so an open handle sees the new bytes), the others replaced by rename (a new
    // inode; cheap, so they flip many times during a run).
    let rewriter = {
        let stop = stop.clone();
        let input = input.clone();
        let versions = versions.clone();
        std::thread::spawn(move || {
            let mut round = 0usize;
            while !stop.load(std::sync::atomic::Ordering::Relaxed) && round < 100_000 {
                for (i, v) in versions.iter().enumerate() {
                    let p = input.join(format!("f{i:03}.dcm"));
                    let which = (round + i) % 2;
                    if i.is_multiple_of(3) {
                        if round.is_multiple_of(16) {
                            let _ = std::fs::write(&p, &v[which]);
                        }
                    } else {
                        let from = store.join(format!("{}{i}", if which == 0 { 'a' } else { 'b' }));
                        let tmp = store.join(format!("tmp{i}"));
                        let _ = std::fs::remove_file(&tmp);
                        std::fs::hard_link(&from, &tmp).unwrap();
                        std::fs::rename(&tmp, &p).unwrap();
                    }
                }
                round += 1;
            }
            round
        })
    };
    let (mut ok, mut changed, mut torn) = (0, 0, 0);
    let in_place = |l: &serde_json::Value| {
        let name = l["input"].as_str().unwrap();
        let i: usize = name[name.len() - 7..name.len() - 4].parse().unwrap();
        i.is_multiple_of(3)
    };
    // Several runs while the rewriter goes on, so that reads and rewrites overlap.
    for attempt in 0..4 {
        let out = out.join(format!("run{attempt}"));
        let o = run(&[
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
            &"--jobs",
            &"2",
            &"--no-resume",
        ]);
        let stderr = String::from_utf8_lossy(&o.stderr);
        let (lines, _) = report(&rep);
        for l in &lines {
            match l["status"].as_str().unwrap() {
                "ok" => {
                    ok += 1;
                    let output = PathBuf::from(l["output"].as_str().unwrap());
                    let obj = open(&output);
                    let maker = text(obj.element(Tag(0x0008, 0x0070)).unwrap());
                    let pixels = obj
                        .element(Tag(0x7FE0, 0x0010))
                        .unwrap()
                        .to_bytes()
                        .unwrap();
                    let version = maker.strip_prefix("VERSION-").unwrap().as_bytes()[0];
                    assert!(
                        pixels.iter().all(|&b| b == version),
                        "{} mixes versions: header {maker}, pixels not all {}",
                        output.display(),
                        version as char
                    );
                    assert_ne!(
                        obj.element(Tag(0x0010, 0x0010))
                            .map(text)
                            .unwrap_or_default(),
                        "DOE^JANE"
                    );
                }
                "failed" if l["kind"] == "changed" => changed += 1,
                // An in-place rewrite truncates the file, then writes it: opened and
                // read in between, it is an empty or a cut file, which is faithfully
                // not DICOM or malformed. Never for a file replaced by rename.
                "failed" | "skipped" if in_place(l) => {
                    assert!(
                        l["kind"] == "malformed" || l["kind"] == "not-dicom",
                        "unexpected failure: {l}\n{stderr}"
                    );
                    torn += 1;
                }
                other => panic!("unexpected status {other}: {l}"),
            }
        }
        assert_eq!(lines.len(), N, "{stderr}");
        // No temporary or partial file is left behind.
        let leftovers = walkdir::WalkDir::new(&out)
            .into_iter()
            .filter_map(Result::ok)
            .filter(|e| {
                e.file_name()
                    .to_string_lossy()
                    .starts_with(".dicom-deid-tmp")
            })
            .count();
        assert_eq!(leftovers, 0);
    }
    stop.store(true, std::sync::atomic::Ordering::Relaxed);
    let rounds = rewriter.join().unwrap();
    eprintln!(
        "{ok} written consistent, {changed} reported changed, {torn} read torn, \
         {rounds} rewrite rounds"
    );
}

/// Item D.13: `dicom-deid run ... 2>&1 | head -3` closed stderr under the run; the
/// reporter panicked (exit 101), the report lost its summary and the ledger stopped.
/// A closed stderr ends the printing, never the bookkeeping.
#[test]
fn a_closed_stderr_ends_printing_not_the_bookkeeping() {
    let env = Env::new();
    let input = env.path("input");
    make_tree(&input, 3);
    // Failing inputs, so that the run has lines to print to stderr.
    for i in 0..20 {
        std::fs::write(input.join(format!("bad{i:02}.dcm")), {
            let mut b = vec![0u8; 128];
            b.extend_from_slice(b"DICM\x02\x00\x00\x00UL\x04\x00\xff\xff\xff\x7f");
            b
        })
        .unwrap();
    }
    let out = env.path("out");
    let rep = env.path("report.jsonl");
    let key = env.key("k", 3);
    let mut child = Command::new(BIN)
        .args([
            "run".as_ref(),
            input.as_os_str(),
            "--out".as_ref(),
            out.as_os_str(),
        ])
        .args([
            "--key-file".as_ref(),
            key.as_os_str(),
            "--report".as_ref(),
            rep.as_os_str(),
        ])
        .args(["--layout", "mirror", "--jobs", "2"])
        .stdout(Stdio::null())
        .stderr(Stdio::piped())
        .spawn()
        .unwrap();
    // Close the read end at once: every write to stderr now fails with EPIPE.
    drop(child.stderr.take());
    let status = child.wait().unwrap();
    assert_eq!(
        status.code(),
        Some(1),
        "bad inputs failed, the rest was written"
    );
    let (lines, summary) = report(&rep);
    assert_eq!(summary["failed"], 20);
    assert_eq!(lines.len() as u64, summary["files_seen"].as_u64().unwrap());
    let ledger = std::fs::read_to_string(out.join(".dicom-deid-ledger.jsonl")).unwrap();
    assert_eq!(
        ledger.lines().count() as u64,
        1 + summary["written"].as_u64().unwrap(),
        "a header line and one line per written file"
    );
}

/// Item D.15: a report that cannot be written after every output was written exited
/// 2 ("nothing was written"). It is exit 1 with a message naming the report.
#[test]
fn a_report_write_failure_exits_1_and_names_the_report() {
    if !Path::new("/dev/full").exists() {
        eprintln!("skipping: no /dev/full here");
        return;
    }
    let env = Env::new();
    let input = env.inputs(&["dicom/ct_explicit_le.dcm"]);
    let out = env.path("out");
    let key = env.key("k", 4);
    let o = run(&[
        &"run",
        &input,
        &"--out",
        &out,
        &"--key-file",
        &key,
        &"--report",
        &"/dev/full",
    ]);
    let stderr = String::from_utf8_lossy(&o.stderr);
    assert_eq!(o.status.code(), Some(1), "{stderr}");
    assert!(
        stderr.contains("cannot write the report /dev/full"),
        "{stderr}"
    );
    assert!(stderr.contains("1 written"), "{stderr}");
    assert_eq!(count_dcm(&out), 1);
}

/// Item D.17: a panic caught inside the parser is that file's failure, with one line:
/// no "panicked at" and no backtrace, even with RUST_BACKTRACE=1.
#[test]
fn a_caught_panic_is_one_line_without_a_backtrace() {
    let env = Env::new();
    let input = env.path("input");
    std::fs::create_dir_all(&input).unwrap();
    let regression = Path::new(env!("CARGO_MANIFEST_DIR"))
        .join("fuzz/regressions/lazy-item-outside-sequence.bin");
    std::fs::copy(&regression, input.join("panics.dcm")).unwrap();
    std::fs::copy(testdata("dicom/ct_explicit_le.dcm"), input.join("good.dcm")).unwrap();
    let key = env.key("k", 5);
    let out = env.path("out");
    let o = Command::new(BIN)
        .env("RUST_BACKTRACE", "1")
        .env_remove("DICOM_DEID_KEY_FILE")
        .args([
            "run".as_ref(),
            input.as_os_str(),
            "--out".as_ref(),
            out.as_os_str(),
        ])
        .args(["--key-file".as_ref(), key.as_os_str()])
        .output()
        .unwrap();
    let stderr = String::from_utf8_lossy(&o.stderr);
    assert_eq!(o.status.code(), Some(1), "{stderr}");
    assert!(!stderr.contains("panicked"), "{stderr}");
    assert!(!stderr.contains("stack backtrace"), "{stderr}");
    let about: Vec<&str> = stderr
        .lines()
        .filter(|l| l.contains("panics.dcm"))
        .collect();
    assert_eq!(about.len(), 1, "{stderr}");
}

/// Items B.6 and C.7: a report, crosswalk or quarantine directory inside the shared
/// output, inside an input, or equal to the key file is refused before anything is
/// written (exit 2). Before, `--report` naming an input overwrote that original.
#[test]
fn side_files_inside_the_output_an_input_or_the_key_are_refused() {
    let env = Env::new();
    let input = env.inputs(&["dicom/ct_explicit_le.dcm"]);
    let original = input.join("dicom/ct_explicit_le.dcm");
    let before = std::fs::read(&original).unwrap();
    let key = env.key("k", 6);
    let out = env.path("out");
    let cases: Vec<(&str, PathBuf)> = vec![
        ("--report", original.clone()),
        ("--report", out.join("report.jsonl")),
        ("--crosswalk", out.join("cw.csv")),
        ("--crosswalk", input.join("cw.csv")),
        ("--quarantine", out.join("q")),
        ("--quarantine", input.join("q")),
        ("--report", key.clone()),
    ];
    for (flag, path) in &cases {
        let o = run(&[
            &"run",
            &input,
            &"--out",
            &out,
            &"--key-file",
            &key,
            flag,
            path,
        ]);
        let stderr = String::from_utf8_lossy(&o.stderr);
        assert_eq!(
            o.status.code(),
            Some(2),
            "{flag} {}: {stderr}",
            path.display()
        );
        assert!(stderr.contains(flag), "{stderr}");
        assert!(
            !out.exists(),
            "nothing may be written: {flag} {}",
            path.display()
        );
    }
    assert_eq!(
        std::fs::read(&original).unwrap(),
        before,
        "the original is untouched"
    );
    assert_eq!(
        std::fs::read(&key).unwrap().len(),
        32,
        "the key is untouched"
    );
}

/// Item C.8: a symlink planted at the ledger's path, or at the crosswalk given with
/// --overwrite-crosswalk, was followed: its target truncated (and chmodded). Side
/// files are opened without following links; the run refuses instead.
#[test]
fn symlinks_planted_at_side_files_are_never_followed() {
    let env = Env::new();
    let input = env.inputs(&["dicom/ct_explicit_le.dcm"]);
    let key = env.key("k", 7);
    let out = env.path("out");
    std::fs::create_dir_all(&out).unwrap();
    let victim = env.path("victim.txt");
    std::fs::write(&victim, "precious").unwrap();
    #[cfg(unix)]
    {
        use std::os::unix::fs::PermissionsExt;
        std::fs::set_permissions(&victim, std::fs::Permissions::from_mode(0o644)).unwrap();
        std::os::unix::fs::symlink(&victim, out.join(".dicom-deid-ledger.jsonl")).unwrap();
        let o = run(&[&"run", &input, &"--out", &out, &"--key-file", &key]);
        assert_eq!(
            o.status.code(),
            Some(2),
            "{}",
            String::from_utf8_lossy(&o.stderr)
        );
        assert!(String::from_utf8_lossy(&o.stderr).contains("symbolic link"));
        assert_eq!(std::fs::read_to_string(&victim).unwrap(), "precious");

        let cw = env.path("cw.csv");
        std::os::unix::fs::symlink(&victim, &cw).unwrap();
        let out2 = env.path("out2");
        let o = run(&[
            &"run",
            &input,
            &"--out",
            &out2,
            &"--key-file",
            &key,
            &"--crosswalk",
            &cw,
            &"--overwrite-crosswalk",
        ]);
        assert_eq!(
            o.status.code(),
            Some(2),
            "{}",
            String::from_utf8_lossy(&o.stderr)
        );
        assert_eq!(std::fs::read_to_string(&victim).unwrap(), "precious");
        let mode = std::fs::metadata(&victim).unwrap().permissions().mode() & 0o777;
        assert_eq!(mode, 0o644, "the link's target keeps its mode");
    }
}

/// Item C.12: changing `--layout` on a resume wrote nothing and exited 0 (the ledger
/// vouched for outputs under the old names). The ledger records the layout; a change
/// redoes the work under the new names.
#[test]
fn a_resume_with_another_layout_redoes_the_work() {
    let env = Env::new();
    let input = env.inputs(&["dicom/ct_explicit_le.dcm", "dicom/mr_implicit_le.dcm"]);
    let key = env.key("k", 8);
    let out = env.path("out");
    let rep = env.path("r.jsonl");
    for layout in ["uid", "mirror"] {
        let o = run(&[
            &"run",
            &input,
            &"--out",
            &out,
            &"--key-file",
            &key,
            &"--layout",
            &layout,
            &"--report",
            &rep,
        ]);
        assert_eq!(
            o.status.code(),
            Some(0),
            "{}",
            String::from_utf8_lossy(&o.stderr)
        );
        let (lines, summary) = report(&rep);
        assert_eq!(summary["written"], 2, "{layout}: {lines:?}");
        for l in &lines {
            assert!(Path::new(l["output"].as_str().unwrap()).is_file());
        }
    }
    assert!(
        out.join("dicom/ct_explicit_le.dcm").is_file(),
        "mirror outputs exist"
    );
}

/// Item C.11: two runs on one output at the same time lost ledger lines, and runs
/// in containers sharing a hostname deleted each other's live temporaries. A run
/// holds an advisory lock on its ledger; a second run on it is refused; temporaries
/// carry the random run id recorded in the lock, and only those of no live run are
/// removed as left by an interrupted run.
#[test]
fn one_run_per_ledger_and_live_temporaries_are_never_removed() {
    use std::io::Write;
    use std::os::fd::AsRawFd;
    let env = Env::new();
    let input = env.inputs(&["dicom/ct_explicit_le.dcm"]);
    let key = env.key("k", 9);
    let out = env.path("out");
    std::fs::create_dir_all(&out).unwrap();
    // Another live run, as the lock shows it: an exclusive flock and its id.
    let hold = |name: &str, id: &str| {
        let mut f = std::fs::OpenOptions::new()
            .create(true)
            .truncate(true)
            .write(true)
            .open(out.join(name))
            .unwrap();
        assert_eq!(
            unsafe { libc::flock(f.as_raw_fd(), libc::LOCK_EX | libc::LOCK_NB) },
            0
        );
        f.write_all(id.as_bytes()).unwrap();
        std::fs::write(out.join(format!(".dicom-deid-tmp-{id}-0")), b"live").unwrap();
        f
    };
    let other = hold(".dicom-deid-ledger.jsonl.lock", "deadbeef");
    let o = run(&[&"run", &input, &"--out", &out, &"--key-file", &key]);
    let stderr = String::from_utf8_lossy(&o.stderr);
    assert_eq!(o.status.code(), Some(2), "{stderr}");
    assert!(
        stderr.contains("another dicom-deid run is writing to this output"),
        "{stderr}"
    );
    assert!(
        out.join(".dicom-deid-tmp-deadbeef-0").exists(),
        "a live run's temporary stays"
    );

    // That run dies (its lock goes); a shard of another run is live meanwhile.
    drop(other);
    let _shard = hold(".dicom-deid-ledger-1-of-2.jsonl.lock", "cafebabe");
    let o = run(&[&"run", &input, &"--out", &out, &"--key-file", &key]);
    let stderr = String::from_utf8_lossy(&o.stderr);
    assert_eq!(o.status.code(), Some(0), "{stderr}");
    assert!(stderr.contains("removed 1 temporary files"), "{stderr}");
    assert!(
        !out.join(".dicom-deid-tmp-deadbeef-0").exists(),
        "the dead run's temporary goes"
    );
    assert!(
        out.join(".dicom-deid-tmp-cafebabe-0").exists(),
        "the live shard's stays"
    );
    assert_eq!(count_dcm(&out), 1);
}

/// Item E.24: a path that is not UTF-8 gave an empty report line, and `report merge`
/// then exited 2. Such a path is reported losslessly: `input` shows it with U+FFFD,
/// `input_hex` holds its bytes; merge takes the report.
#[cfg(unix)]
#[test]
fn paths_that_are_not_utf8_are_reported_losslessly_and_merge() {
    use std::os::unix::ffi::{OsStrExt, OsStringExt};
    let env = Env::new();
    let input = env.path("input");
    std::fs::create_dir_all(&input).unwrap();
    let name = std::ffi::OsString::from_vec(b"caf\xe9 M\xfcller.dcm".to_vec());
    let odd = input.join(&name);
    std::fs::copy(testdata("dicom/ct_explicit_le.dcm"), &odd).unwrap();
    std::fs::write(
        input.join(std::ffi::OsString::from_vec(b"n\xf6te.txt".to_vec())),
        "x",
    )
    .unwrap();
    let key = env.key("k", 10);
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
        &"--layout",
        &"mirror",
    ]);
    assert_eq!(
        o.status.code(),
        Some(0),
        "{}",
        String::from_utf8_lossy(&o.stderr)
    );
    let (lines, summary) = report(&rep);
    assert_eq!(lines.len(), 2, "{lines:?}");
    assert_eq!(summary["written"], 1);
    let hex = |b: &[u8]| b.iter().map(|x| format!("{x:02x}")).collect::<String>();
    let ok = lines.iter().find(|l| l["status"] == "ok").unwrap();
    assert_eq!(ok["input_hex"], hex(odd.as_os_str().as_bytes()));
    assert!(ok["input"].as_str().unwrap().contains('\u{FFFD}'));
    assert_eq!(
        ok["output_hex"],
        hex(out.join(&name).as_os_str().as_bytes())
    );
    assert!(out.join(&name).is_file());
    let merged = run(&[&"report", &"merge", &rep]);
    assert_eq!(
        merged.status.code(),
        Some(0),
        "{}",
        String::from_utf8_lossy(&merged.stderr)
    );
    assert_eq!(String::from_utf8_lossy(&merged.stdout).lines().count(), 3);
}

/// Item E.23: symlinks in inputs were skipped without a word (not processed, counted
/// or reported, exit 0). Without --follow each link is reported skipped (kind
/// `symlink`, exit 1); with it, links are followed like `cp -r -L` and loops are
/// reported. A symbolic link inside --out is refused: outputs could land outside it.
#[cfg(unix)]
#[test]
fn symlinks_in_inputs_are_reported_or_followed_never_silent() {
    use std::os::unix::fs::symlink;
    let env = Env::new();
    let input = env.path("input");
    let elsewhere = env.path("elsewhere");
    std::fs::create_dir_all(input.join("real")).unwrap();
    std::fs::create_dir_all(elsewhere.join("study")).unwrap();
    std::fs::copy(
        testdata("dicom/ct_explicit_le.dcm"),
        input.join("real/a.dcm"),
    )
    .unwrap();
    std::fs::copy(
        testdata("dicom/mr_implicit_le.dcm"),
        elsewhere.join("b.dcm"),
    )
    .unwrap();
    std::fs::copy(
        testdata("dicom/rtplan_implicit_le.dcm"),
        elsewhere.join("study/c.dcm"),
    )
    .unwrap();
    symlink(elsewhere.join("b.dcm"), input.join("linked.dcm")).unwrap();
    symlink(elsewhere.join("study"), input.join("linked-study")).unwrap();
    let key = env.key("k", 11);
    let go = |out: &str, extra: &[&dyn AsRef<std::ffi::OsStr>]| {
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
        args.extend_from_slice(extra);
        let o = run(&args);
        let (lines, summary) = report(&rep);
        (o, lines, summary, out)
    };
    let (o, lines, summary, _) = go("out-default", &[]);
    assert_eq!(
        o.status.code(),
        Some(1),
        "{}",
        String::from_utf8_lossy(&o.stderr)
    );
    assert_eq!(summary["written"], 1);
    let links: Vec<_> = lines.iter().filter(|l| l["kind"] == "symlink").collect();
    assert_eq!(links.len(), 2, "{lines:?}");
    assert!(links.iter().all(|l| l["status"] == "skipped"));

    let (o, _, summary, out) = go("out-follow", &[&"--follow"]);
    assert_eq!(
        o.status.code(),
        Some(0),
        "{}",
        String::from_utf8_lossy(&o.stderr)
    );
    assert_eq!(summary["written"], 3);
    assert!(out.join("linked-study/c.dcm").is_file());

    // A loop: a link to a folder above it.
    symlink(&input, input.join("real/loop")).unwrap();
    let (o, lines, _, _) = go("out-loop", &[&"--follow"]);
    assert_eq!(o.status.code(), Some(1));
    assert!(
        lines
            .iter()
            .any(|l| l["kind"] == "symlink" && l["status"] == "failed"),
        "{lines:?}"
    );
    std::fs::remove_file(input.join("real/loop")).unwrap();

    // A linked folder inside the output.
    let out = env.path("out-linked");
    std::fs::create_dir_all(&out).unwrap();
    symlink(&elsewhere, out.join("dicom")).unwrap();
    let o = run(&[
        &"run",
        &input,
        &"--out",
        &out,
        &"--key-file",
        &key,
        &"--layout",
        &"mirror",
    ]);
    assert_eq!(o.status.code(), Some(2));
    assert!(String::from_utf8_lossy(&o.stderr).contains("symbolic link"));
    assert!(
        !elsewhere.join("real").exists(),
        "nothing written through the link"
    );
}

/// Item C.10: two inputs with one SOP Instance UID raced for one output path; six
/// runs kept six different sets, and outputs on disk did not come from the input
/// the report named. One thread now decides who owns a name, in walk (path) order:
/// the first input by path keeps it, and the kept file is always the one the report
/// names `ok`; a byte-identical copy is skipped as
/// `duplicate` (benign), a different one fails as `duplicate`; a resume keeps the
/// decision (the ledger names the owner) and rewrites nothing.
#[test]
fn inputs_sharing_a_sop_instance_uid_keep_the_output_the_report_names() {
    use dicom_core::Tag;
    let env = Env::new();
    let input = env.path("input");
    let sop = "1.2.826.0.1.3680043.2.1125.77";
    let a = versioned_file(b'A', sop);
    for (dir, bytes) in [("a", &a), ("b", &a), ("c", &versioned_file(b'B', sop))] {
        std::fs::create_dir_all(input.join(dir)).unwrap();
        std::fs::write(input.join(dir).join("x.dcm"), bytes).unwrap();
    }
    let key = env.key("k", 12);
    for attempt in 0..4 {
        let out = env.path(&format!("out{attempt}"));
        let rep = env.path(&format!("r{attempt}.jsonl"));
        for pass in 0..2 {
            let o = run(&[
                &"run",
                &input,
                &"--out",
                &out,
                &"--key-file",
                &key,
                &"--report",
                &rep,
                &"--jobs",
                &"2",
            ]);
            let stderr = String::from_utf8_lossy(&o.stderr);
            assert_eq!(o.status.code(), Some(1), "one input differs: {stderr}");
            let (lines, _) = report(&rep);
            let kept: Vec<_> = lines
                .iter()
                .filter(|l| l["status"] == "ok" || l["kind"] == "unchanged")
                .collect();
            assert_eq!(kept.len(), 1, "pass {pass}: {lines:?}");
            let owner = kept[0]["input"].as_str().unwrap();
            assert!(
                owner.ends_with("a/x.dcm"),
                "the first by path owns the name: {owner}"
            );
            let output = PathBuf::from(kept[0]["output"].as_str().unwrap());
            let maker = text(open(&output).element(Tag(0x0008, 0x0070)).unwrap());
            let expected = if owner.contains("/c/") {
                "VERSION-B"
            } else {
                "VERSION-A"
            };
            assert_eq!(maker, expected, "the file kept came from {owner}");
            assert_eq!(count_dcm(&out), 1);
            for l in lines.iter().filter(|l| l["kind"] == "duplicate") {
                let same = if owner.contains("/c/") {
                    false
                } else {
                    !l["input"].as_str().unwrap().contains("/c/")
                };
                let want = if same { "skipped" } else { "failed" };
                assert_eq!(l["status"], want, "{l}");
            }
            if pass == 1 {
                assert_eq!(kept[0]["kind"], "unchanged", "a resume keeps the decision");
            }
        }
    }
    // Byte-identical copies alone: written once, the rest skipped, exit 0.
    std::fs::remove_dir_all(input.join("c")).unwrap();
    let out = env.path("out-same");
    let rep = env.path("r-same.jsonl");
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
    assert_eq!(
        o.status.code(),
        Some(0),
        "{}",
        String::from_utf8_lossy(&o.stderr)
    );
    let (_, summary) = report(&rep);
    assert_eq!(summary["written"], 1);
    assert_eq!(summary["skipped_duplicate"], 1);
}

/// Item C.10 across shards: each shard settles its own inputs, but two shards could
/// both rename onto one name, the last rename won, and both reports said `ok`. A
/// shard now commits create-only; when the name is taken it asks the other shards'
/// ledgers who took it: another input's output is never replaced, and this input is
/// reported `duplicate` (skipped when byte-identical, failed otherwise). So the one
/// file on disk is always the one the only `ok` line names, whichever shard ran
/// first, concurrently or not, and a resume of every shard keeps the decision and
/// rewrites nothing.
#[test]
fn shards_never_overwrite_each_others_outputs_for_one_sop_instance_uid() {
    use dicom_core::Tag;
    use dicom_deid::io::walk::in_shard;
    let env = Env::new();
    let key = env.key("k", 12);
    let sop = "1.2.826.0.1.3680043.2.1125.78";
    // Two inputs with one SOP Instance UID and different contents, in different
    // shards of two.
    let shard_of = |rel: &str| u64::from(!in_shard(Path::new(rel), Some((0, 2))));
    let first = "a0/x.dcm";
    let second = (0..64)
        .map(|i| format!("c{i}/x.dcm"))
        .find(|r| shard_of(r) != shard_of(first))
        .expect("a name in the other shard");
    for (case, order) in ["sequential", "reversed", "concurrent"].iter().enumerate() {
        let input = env.path(&format!("in{case}"));
        for (rel, version) in [(first, b'A'), (second.as_str(), b'B')] {
            let p = input.join(rel);
            std::fs::create_dir_all(p.parent().unwrap()).unwrap();
            std::fs::write(&p, versioned_file(version, sop)).unwrap();
        }
        let out = env.path(&format!("out{case}"));
        let shard_run = |i: u64, pass: usize| {
            let rep = env.path(&format!("r{case}-{i}-{pass}.jsonl"));
            let shard = format!("{i}/2");
            let mut c = Command::new(env!("CARGO_BIN_EXE_dicom-deid"));
            c.args(["run", "--shard", &shard, "--report"])
                .arg(&rep)
                .arg(&input)
                .arg("--out")
                .arg(&out)
                .arg("--key-file")
                .arg(&key)
                .stdout(Stdio::null())
                .stderr(Stdio::piped());
            (c, rep)
        };
        let mut codes = Vec::new();
        let mut reps = Vec::new();
        let shards: Vec<u64> = match *order {
            "reversed" => vec![1, 0],
            _ => vec![0, 1],
        };
        if *order == "concurrent" {
            let children: Vec<_> = shards
                .iter()
                .map(|&i| {
                    let (mut c, rep) = shard_run(i, 0);
                    reps.push(rep);
                    c.spawn().unwrap()
                })
                .collect();
            for ch in children {
                codes.push(ch.wait_with_output().unwrap().status.code());
            }
        } else {
            for &i in &shards {
                let (mut c, rep) = shard_run(i, 0);
                reps.push(rep);
                codes.push(c.output().unwrap().status.code());
            }
        }
        let lines: Vec<serde_json::Value> = reps.iter().flat_map(|r| report(r).0).collect();
        let ok: Vec<_> = lines.iter().filter(|l| l["status"] == "ok").collect();
        assert_eq!(
            ok.len(),
            1,
            "{order}: exactly one input owns the name: {lines:?}"
        );
        assert_eq!(count_dcm(&out), 1, "{order}");
        let owner = ok[0]["input"].as_str().unwrap().to_string();
        let output = PathBuf::from(ok[0]["output"].as_str().unwrap());
        let maker = text(open(&output).element(Tag(0x0008, 0x0070)).unwrap());
        let expected = if owner.ends_with(first) {
            "VERSION-A"
        } else {
            "VERSION-B"
        };
        assert_eq!(
            maker, expected,
            "{order}: the file on disk came from {owner}"
        );
        let dup: Vec<_> = lines.iter().filter(|l| l["kind"] == "duplicate").collect();
        assert_eq!(dup.len(), 1, "{order}: {lines:?}");
        assert_eq!(dup[0]["status"], "failed", "different contents fail");
        assert_ne!(dup[0]["input"], ok[0]["input"]);
        codes.sort();
        assert_eq!(
            codes,
            [Some(0), Some(1)],
            "{order}: the losing shard exits 1"
        );
        if *order == "sequential" {
            assert!(
                owner.ends_with(first),
                "the shard that ran first keeps the name"
            );
        }
        // A resume of both shards keeps the decision and rewrites nothing.
        let before = std::fs::read(&output).unwrap();
        let mtime = std::fs::metadata(&output).unwrap().modified().unwrap();
        for i in [1, 0] {
            let (mut c, rep) = shard_run(i, 1);
            c.output().unwrap();
            for l in report(&rep).0 {
                if l["input"].as_str() == Some(owner.as_str()) {
                    assert_eq!(l["kind"], "unchanged", "{order}: {l}");
                } else {
                    assert_eq!(l["kind"], "duplicate", "{order}: {l}");
                }
            }
        }
        assert_eq!(std::fs::read(&output).unwrap(), before, "{order}");
        assert_eq!(
            std::fs::metadata(&output).unwrap().modified().unwrap(),
            mtime
        );
        assert_eq!(count_dcm(&out), 1);
    }
}
