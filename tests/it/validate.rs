//! Outputs validate as well as their inputs: dciodvfy (Debian dicom3tools, David
//! Clunie's IOD validator) reports no error on an output that it did not report on
//! the input. De-identification may fix errors (a bad value replaced), never add
//! one: an emptied Type 1 attribute, a module left half-removed.

use crate::common::{BIN, Env, testdata, tool_available};
use std::collections::BTreeSet;
use std::path::Path;
use std::process::Command;

pub(crate) fn errors(file: &Path) -> BTreeSet<String> {
    let o = Command::new("dciodvfy").arg(file).output().unwrap();
    String::from_utf8_lossy(&o.stdout)
        .lines()
        .chain(String::from_utf8_lossy(&o.stderr).lines())
        .filter(|l| l.starts_with("Error"))
        .map(without_uids)
        .collect()
}

/// A message names UIDs, which de-identification remaps: compare without them.
fn without_uids(line: &str) -> String {
    line.split(' ')
        .map(|w| {
            if w.contains('.') && w.bytes().all(|b| b.is_ascii_digit() || b == b'.') {
                "<uid>"
            } else {
                w
            }
        })
        .collect::<Vec<_>>()
        .join(" ")
}

#[test]
fn dciodvfy_finds_no_new_error_in_any_output() {
    let have = Command::new("dciodvfy").arg("/dev/null").output().is_ok();
    if !tool_available("dciodvfy (Debian dicom3tools)", have) {
        return;
    }
    let env = Env::new();
    let key = env.key("k", 9);
    let mut checked = 0;
    let mut bad = Vec::new();
    for dir in ["dicom", "pixels"] {
        let input = testdata(dir);
        let out = env.path(dir);
        let o = Command::new(BIN)
            .env_remove("DICOM_DEID_KEY_FILE")
            .arg("run")
            .arg(&input)
            .arg("--out")
            .arg(&out)
            .arg("--key-file")
            .arg(&key)
            .args(["--layout", "mirror", "-q"])
            .output()
            .unwrap();
        assert!(o.status.code().is_some_and(|c| c <= 1), "{o:?}");
        for e in walkdir::WalkDir::new(&out)
            .into_iter()
            .filter_map(Result::ok)
            .filter(|e| e.file_type().is_file())
            .filter(|e| !e.file_name().to_string_lossy().starts_with(".dicom-deid"))
        {
            let rel = e.path().strip_prefix(&out).unwrap();
            let before = errors(&input.join(rel));
            // An input whose SOP class dciodvfy cannot find is not validated at all;
            // its output (class taken from the meta) is, so every gap shows then.
            if before
                .iter()
                .any(|l| l.contains("Information Object Not found"))
            {
                continue;
            }
            checked += 1;
            let after = errors(e.path());
            for new in after.difference(&before) {
                bad.push(format!("{dir}/{}: {new}", rel.display()));
            }
        }
    }
    assert!(checked >= 8, "only {checked} outputs validated");
    assert!(bad.is_empty(), "new dciodvfy errors:\n{}", bad.join("\n"));
}
