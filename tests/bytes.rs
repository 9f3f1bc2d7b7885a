//! The bytes we write: every output reads back in our own reader (and in pydicom
//! and dcmtk where the test says so), whatever odd encoding the input had.
//! Issue 11 items D.16, E.18 and E.20.

mod common;
use common::*;

use dicom_deid::deid::{Engine, Key, Pseudonymizer};
use dicom_deid::io::read::{Classified, read, read_input};
use dicom_deid::io::source::MemoryInput;
use dicom_deid::pipeline::{Plan, Processed, process};
use dicom_deid::profile::compile::{CompiledProfile, compile_str};
use std::path::{Path, PathBuf};

fn repo(p: &str) -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR")).join(p)
}

/// Every file under `dir`, sorted.
fn files_under(dir: &Path) -> Vec<PathBuf> {
    let mut files: Vec<PathBuf> = walkdir::WalkDir::new(dir)
        .into_iter()
        .filter_map(Result::ok)
        .filter(|e| e.file_type().is_file())
        .map(|e| e.into_path())
        .collect();
    files.sort();
    files
}

/// Runs the real binary on `input` (a folder) with a mirror layout; returns the
/// report lines and the process output.
fn run_on(
    env: &Env,
    input: &Path,
    out: &str,
    key: &Path,
    extra: &[&dyn AsRef<std::ffi::OsStr>],
) -> (std::process::Output, Vec<serde_json::Value>) {
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
    let (lines, _) = report(&rep);
    (o, lines)
}

// ---------------------------------------------------------------------------
// D.16: Pixel Data with a VR whose length field is 2 bytes
// ---------------------------------------------------------------------------

/// `fuzz/regressions/pixel-data-short-vr.bin`: a dataset whose only element is
/// Pixel Data tagged `US` (8-byte explicit VR header). The reader assumed a 12-byte
/// header, so the copied range began 4 bytes early, inside the file meta group; the
/// run said `ok` and wrote a file that nothing, dicom-deid included, could read.
/// The same file with Pixel Data tagged `SS` and `FL` goes the same way.
#[test]
fn pixel_data_with_a_short_vr_is_copied_with_its_own_header_and_reads_back() {
    let env = Env::new();
    let key = env.key("key", 3);
    let input = env.path("input");
    std::fs::create_dir_all(&input).unwrap();
    let original = std::fs::read(repo("fuzz/regressions/pixel-data-short-vr.bin")).unwrap();
    // The element is the file's last 12 bytes: tag, VR, 2-byte length, 4-byte value.
    let element_at = original.len() - 12;
    assert_eq!(&original[element_at + 4..element_at + 6], b"US");
    for vr in ["US", "SS", "FL"] {
        let mut bytes = original.clone();
        bytes[element_at + 4..element_at + 6].copy_from_slice(vr.as_bytes());
        std::fs::write(input.join(format!("{vr}.dcm")), &bytes).unwrap();
    }
    let (o, lines) = run_on(&env, &input, "out", &key, &[]);
    assert_eq!(
        o.status.code(),
        Some(0),
        "{}",
        String::from_utf8_lossy(&o.stderr)
    );
    assert_eq!(lines.len(), 3);
    for line in &lines {
        assert_eq!(line["status"], "ok", "{line}");
        let input = std::fs::read(line["input"].as_str().unwrap()).unwrap();
        let element = &input[element_at..];
        let output = PathBuf::from(line["output"].as_str().unwrap());
        // Pixel Data went through byte for byte with its own 8-byte header.
        let written = std::fs::read(&output).unwrap();
        assert!(
            written.ends_with(element),
            "{line}: Pixel Data not copied with its own header"
        );
        match read(&output) {
            Ok(Classified::Dicom(src)) => {
                assert_eq!(src.dropped_trailing_bytes, 0);
                let p = src.pixel.expect("Pixel Data found on re-read");
                assert_eq!(&written[p.start as usize..p.end as usize], element);
            }
            Ok(_) => panic!("{line}: output does not read back as DICOM"),
            Err(e) => panic!("{line}: output does not read back: {e}"),
        }
    }
    // And the binary takes its own outputs as inputs.
    let (o, lines) = run_on(&env, &env.path("out"), "out2", &key, &[]);
    assert_eq!(
        o.status.code(),
        Some(0),
        "{}",
        String::from_utf8_lossy(&o.stderr)
    );
    let ok = lines.iter().filter(|l| l["status"] == "ok").count();
    assert_eq!(ok, 3, "{lines:?}");
}

fn key() -> &'static Key {
    static KEY: std::sync::OnceLock<Key> = std::sync::OnceLock::new();
    KEY.get_or_init(|| Key::random().expect("random key"))
}

/// The basic profile, and the basic profile with quarantine rules as warnings (so
/// secondary captures, burned-in and encapsulated documents are written too).
fn profiles() -> &'static [CompiledProfile] {
    static P: std::sync::OnceLock<Vec<CompiledProfile>> = std::sync::OnceLock::new();
    P.get_or_init(|| {
        let lenient = "extends: basic\nname: lenient\nquarantine: {burned-in-annotation: warn, burned-in-unknown: warn, encapsulated-documents: warn}\n";
        vec![
            dicom_deid::profile::load("basic").expect("basic compiles"),
            compile_str("lenient.yaml", lenient).expect("lenient profile compiles"),
        ]
    })
}

/// Every output reads back: for each input of the fuzz corpus and of testdata/ that
/// the pipeline de-identifies, the encoded object is read again by our reader as a
/// DICOM file, with nothing after Pixel Data left unparsed.
#[test]
fn every_output_reads_back_in_our_reader() {
    let mut inputs: Vec<PathBuf> = files_under(&repo("fuzz/regressions"))
        .into_iter()
        .filter(|p| p.extension().is_some_and(|x| x == "bin"))
        .collect();
    inputs.extend(files_under(&repo("testdata")));
    assert!(
        inputs.len() > 40,
        "corpus not found: {} files",
        inputs.len()
    );
    let mut written = 0;
    let mut failures = Vec::new();
    for path in &inputs {
        let bytes = std::fs::read(path).unwrap();
        for profile in profiles() {
            let plan = Plan::new(profile, Engine::new(profile, Pseudonymizer::new(key())));
            let (input, stamp) = MemoryInput::open(bytes.clone());
            let d = match process(input, stamp, &plan) {
                Ok(Processed::Deidentified(d)) => d,
                _ => continue,
            };
            let mut out = Vec::new();
            if d.object.encode(&mut out).is_err() {
                // Refusing to write is a failure of that file, reported as such.
                continue;
            }
            written += 1;
            let (again, stamp) = MemoryInput::open(out);
            match read_input(again, stamp) {
                Ok(Classified::Dicom(src)) if src.dropped_trailing_bytes == 0 => {}
                Ok(Classified::Dicom(src)) => failures.push(format!(
                    "{} ({}): {} bytes after Pixel Data do not parse",
                    path.display(),
                    profile.name,
                    src.dropped_trailing_bytes
                )),
                Ok(_) => failures.push(format!(
                    "{} ({}): output is not DICOM to our reader",
                    path.display(),
                    profile.name
                )),
                Err(e) => failures.push(format!(
                    "{} ({}): output does not read back: {e}",
                    path.display(),
                    profile.name
                )),
            }
        }
    }
    assert!(written > 40, "only {written} outputs written");
    assert!(failures.is_empty(), "{}", failures.join("\n"));
}
