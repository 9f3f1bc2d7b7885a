//! Profile errors as cargo shows its own: `file:line:column`, the line, a caret
//! under the word at fault and a help line. Snapshots of the exact output of the
//! real binary, run from the profile's folder so that paths are stable.

use crate::common::*;
use std::process::Command;

/// `dicom-deid profile check NAME` in `dir`: (exit code, stderr).
fn check(dir: &std::path::Path, name: &str) -> (Option<i32>, String) {
    let o = Command::new(BIN)
        .args(["profile", "check", name])
        .current_dir(dir)
        .env("NO_COLOR", "1")
        .output()
        .unwrap();
    (
        o.status.code(),
        String::from_utf8_lossy(&o.stderr).into_owned(),
    )
}

#[test]
fn typos_get_a_caret_and_a_did_you_mean() {
    let env = Env::new();
    std::fs::write(
        env.path("site.yaml"),
        "extends: basic\nrules:\n  - tag: StudyDescripton\n    action: KEEP\n  - tag: PatientID\n    action: keep\noptions: [retain-uid]\nquarantine:\n  burned-in-annotation: warning\n",
    )
    .unwrap();
    let (code, stderr) = check(env.dir.path(), "site.yaml");
    assert_eq!(code, Some(2));
    assert_eq!(
        stderr,
        "\
dicom-deid: error: invalid profile (4 problems):

error: unknown option `retain-uid` (known: retain-safe-private, retain-uids, retain-device-identity, retain-institution-identity, retain-patient-characteristics, retain-long-full-dates, retain-long-modified-dates, clean-descriptors, clean-structured-content, clean-graphics)
 --> site.yaml:7:11
  |
7 | options: [retain-uid]
  |           ^^^^^^^^^^
  = help: did you mean `retain-uids`?

error: quarantine.burned-in-annotation must be fail, warn or off, got `warning`
 --> site.yaml:9:25
  |
9 |   burned-in-annotation: warning
  |                         ^^^^^^^
  = help: did you mean `warn`?

error: unknown keyword `StudyDescripton`
 --> site.yaml:3:10
  |
3 |   - tag: StudyDescripton
  |          ^^^^^^^^^^^^^^^
  = help: did you mean `StudyDescription`?

error: unknown action `KEEP` (expected one of D, Z, X, K, C, U, Z/D, X/Z, X/D, X/Z/D, X/Z/U*, a function keep, remove, empty, dummy, clean, hash-uid, date-shift; or use `replace:` / `hash:` / `lookup:`)
 --> site.yaml:4:13
  |
4 |     action: KEEP
  |             ^^^^
  = help: did you mean `keep`?
"
    );
}

#[test]
fn an_unquoted_tag_in_flow_style_gets_a_hint_to_quote_it() {
    let env = Env::new();
    std::fs::write(
        env.path("flow.yaml"),
        "extends: basic\nrules:\n  - {tag: (0010,0010), action: X}\n",
    )
    .unwrap();
    let (code, stderr) = check(env.dir.path(), "flow.yaml");
    assert_eq!(code, Some(2));
    assert_eq!(
        stderr,
        "\
dicom-deid: error: invalid profile (1 problem):

error: unknown field `0010)`, expected one of tag, creator, name, action, replace, hash, lookup, table, options
 --> flow.yaml:3:17
  |
3 |   - {tag: (0010,0010), action: X}
  |                 ^^^^^
  = help: a tag written (gggg,eeee) inside `{ }` must be quoted, as in `{tag: \"(0010,0010)\", action: X}`: unquoted, its comma ends the value
"
    );
}

#[test]
fn a_misspelt_profile_key_is_named_with_the_right_one() {
    let env = Env::new();
    std::fs::write(
        env.path("keys.yaml"),
        "extends: basic\nrule:\n  - {tag: PatientID, action: X}\n",
    )
    .unwrap();
    let (_, stderr) = check(env.dir.path(), "keys.yaml");
    assert_eq!(
        stderr,
        "\
dicom-deid: error: invalid profile (1 problem):

error: unknown field `rule`, expected one of name, description, extends, options, defaults, rules, date-shift, hipaa-ages, coarsen-times, quarantine, pixels
 --> keys.yaml:2:1
  |
2 | rule:
  | ^^^^
  = help: did you mean `rules`?
"
    );
}

#[test]
fn a_lookup_file_mapping_one_original_twice_is_an_error_naming_both_lines() {
    let env = Env::new();
    std::fs::write(
        env.path("ids.csv"),
        "original,replacement\nPAT-1,TRIAL-1\nPAT-2,TRIAL-2\nPAT-1,TRIAL-3\n",
    )
    .unwrap();
    std::fs::write(
        env.path("lookup.yaml"),
        "extends: basic\nrules:\n  - tag: PatientID\n    lookup: {file: ids.csv, on-missing: hash}\n",
    )
    .unwrap();
    let (code, stderr) = check(env.dir.path(), "lookup.yaml");
    assert_eq!(code, Some(2));
    assert_eq!(
        stderr,
        "\
dicom-deid: error: invalid profile (1 problem):

error: lookup file `ids.csv`: lines 2 and 4 map the same original value; each original must appear once
 --> lookup.yaml:4:20
  |
4 |     lookup: {file: ids.csv, on-missing: hash}
  |                    ^^^^^^^
"
    );
    // The original value itself is never shown.
    assert!(!stderr.contains("PAT-1"));

    // Fixed, `profile show` words the lookup as the profile does: no Rust Debug text.
    std::fs::write(
        env.path("ids.csv"),
        "original,replacement\nPAT-1,TRIAL-1\nPAT-2,TRIAL-2\n",
    )
    .unwrap();
    let o = Command::new(BIN)
        .args(["profile", "show", "lookup.yaml"])
        .current_dir(env.dir.path())
        .output()
        .unwrap();
    let stdout = String::from_utf8_lossy(&o.stdout);
    assert_eq!(o.status.code(), Some(0), "{stdout}");
    assert!(
        stdout.contains("lookup ids.csv on-missing=hash"),
        "{stdout}"
    );
    assert!(
        stdout.contains("defaults: private remove, public keep"),
        "{stdout}"
    );
    assert!(
        !stdout.contains("Hash") && !stdout.contains("Remove"),
        "{stdout}"
    );
}
