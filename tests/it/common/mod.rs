//! Helpers shared by the integration tests: a temp dir per test, the real binary,
//! the JSON Lines report.
#![allow(dead_code)]

pub mod font;
pub mod s3;

use dicom_core::value::Value;
use dicom_object::{DefaultDicomObject, InMemDicomObject, open_file};
use serde_json::Value as Json;
use std::collections::HashMap;
use std::path::{Path, PathBuf};
use std::process::{Command, Output};

pub const BIN: &str = env!("CARGO_BIN_EXE_dicom-deid");

pub fn testdata(p: &str) -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR"))
        .join("testdata")
        .join(p)
}

pub struct Env {
    pub dir: tempfile::TempDir,
}

impl Env {
    pub fn new() -> Env {
        Env {
            dir: tempfile::tempdir().expect("tempdir"),
        }
    }
    pub fn path(&self, p: &str) -> PathBuf {
        self.dir.path().join(p)
    }
    /// Copies testdata files into `input/`, keeping their relative paths.
    pub fn inputs(&self, files: &[&str]) -> PathBuf {
        let root = self.path("input");
        for f in files {
            let dest = root.join(f);
            std::fs::create_dir_all(dest.parent().unwrap()).unwrap();
            std::fs::copy(testdata(f), &dest).unwrap();
        }
        root
    }
    pub fn key(&self, name: &str, byte: u8) -> PathBuf {
        let p = self.path(name);
        // Printable bytes: a key file loses trailing whitespace.
        std::fs::write(&p, vec![b'A' + byte; 32]).unwrap();
        #[cfg(unix)]
        {
            use std::os::unix::fs::PermissionsExt;
            std::fs::set_permissions(&p, std::fs::Permissions::from_mode(0o600)).unwrap();
        }
        p
    }
}

pub fn run(args: &[&dyn AsRef<std::ffi::OsStr>]) -> Output {
    let mut cmd = Command::new(BIN);
    cmd.env_remove("DICOM_DEID_KEY_FILE");
    for a in args {
        cmd.arg(a);
    }
    cmd.output().expect("binary runs")
}

/// `run INPUT --out OUT --key-file KEY --report REPORT --layout mirror` plus
/// `extra`; panics, with its stderr, unless it exits 0. Returns the report.
pub fn run_mirror_ok(
    input: &Path,
    out: &Path,
    key: &Path,
    report_path: &Path,
    extra: &[&dyn AsRef<std::ffi::OsStr>],
) -> (Vec<Json>, Json) {
    let mut args: Vec<&dyn AsRef<std::ffi::OsStr>> = vec![
        &"run",
        &input,
        &"--out",
        &out,
        &"--key-file",
        &key,
        &"--report",
        &report_path,
        &"--layout",
        &"mirror",
    ];
    args.extend_from_slice(extra);
    let o = run(&args);
    assert_eq!(
        o.status.code(),
        Some(0),
        "{}",
        String::from_utf8_lossy(&o.stderr)
    );
    report(report_path)
}

/// Whether pydicom (and, with `dcmdump`, dcmtk's dcmdump) can be run here. .ci/run
/// installs them; under CI (`CI=true`, or DICOM_DEID_EXTERNAL_CHECKS=1 as .ci/run
/// sets) their absence fails the test, elsewhere it is a loud skip.
pub fn external_tools(dcmdump: bool) -> bool {
    let runs = |cmd: &str, args: &[&str]| {
        Command::new(cmd)
            .args(args)
            .output()
            .is_ok_and(|o| o.status.success())
    };
    let have_pydicom = runs("python3", &["-c", "import pydicom"]);
    let have_dcmdump = !dcmdump || runs("dcmdump", &["--version"]);
    let mut missing = Vec::new();
    if !have_pydicom {
        missing.push("pydicom (pip install 'pydicom>=3,<4')");
    }
    if !have_dcmdump {
        missing.push("dcmtk's dcmdump (apt-get install dcmtk)");
    }
    tool_available(&missing.join(" and "), missing.is_empty())
}

/// One rule for every test that needs a program this machine may lack: under CI
/// (`CI=true` or DICOM_DEID_EXTERNAL_CHECKS=1) a missing one fails the test;
/// elsewhere the test says loudly on stderr what it did not check, and returns false.
pub fn tool_available(what: &str, available: bool) -> bool {
    if available {
        return true;
    }
    let ci = std::env::var("CI").ok().as_deref() == Some("true")
        || std::env::var("DICOM_DEID_EXTERNAL_CHECKS").ok().as_deref() == Some("1");
    let test = std::thread::current()
        .name()
        .unwrap_or("this test")
        .to_string();
    assert!(!ci, "{test}: {what} is required under CI but not installed");
    eprintln!(
        "\n*** SKIPPED: {test}: {what} not installed; its checks did not run \
         (they run, and are required, under CI=true) ***\n"
    );
    false
}

pub fn report(path: &Path) -> (Vec<Json>, Json) {
    let text = std::fs::read_to_string(path).unwrap();
    let mut lines: Vec<Json> = text
        .lines()
        .map(|l| serde_json::from_str(l).unwrap())
        .collect();
    let summary = lines.pop().unwrap();
    (lines, summary["summary"].clone())
}

/// input path -> output path from the report.
pub fn outputs(lines: &[Json]) -> HashMap<PathBuf, PathBuf> {
    lines
        .iter()
        .filter(|l| l["status"] == "ok")
        .map(|l| {
            (
                PathBuf::from(l["input"].as_str().unwrap()),
                PathBuf::from(l["output"].as_str().unwrap()),
            )
        })
        .collect()
}

pub fn run_basic(
    env: &Env,
    files: &[&str],
    key: &Path,
    out: &str,
) -> (Output, HashMap<PathBuf, PathBuf>) {
    let input = env.inputs(files);
    let out = env.path(out);
    let rep = env.path(&format!(
        "{}.jsonl",
        out.file_name().unwrap().to_string_lossy()
    ));
    // Mirror layout: several samples share a source and hence a SOP Instance UID.
    let prof = lenient_profile(env);
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
        &"--profile",
        &prof,
    ]);
    let (lines, _) = report(&rep);
    (o, outputs(&lines))
}

pub fn text(e: &dicom_core::DataElement<InMemDicomObject>) -> String {
    match e.value() {
        Value::Primitive(p) => p.to_str().trim_end_matches(['\0', ' ']).to_string(),
        _ => String::new(),
    }
}

pub fn open(p: &Path) -> DefaultDicomObject {
    open_file(p).unwrap_or_else(|e| panic!("{} does not re-read: {e}", p.display()))
}

/// The basic profile with the quarantine rules switched to warnings: the samples
/// include secondary captures and a burned-in file, which the default quarantines.
pub fn lenient_profile(env: &Env) -> PathBuf {
    let p = env.path("lenient.yaml");
    if !p.exists() {
        std::fs::write(
            &p,
            "extends: basic\nquarantine: {burned-in-annotation: warn, burned-in-unknown: warn, encapsulated-documents: warn}\n",
        )
        .unwrap();
    }
    p
}
