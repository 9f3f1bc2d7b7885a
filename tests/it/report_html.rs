//! `report html`: the page is parsed (Python's html.parser, a real HTML parser)
//! and every number on it is compared with the run's and the check's reports; it
//! holds no original path, no attribute value, and loads nothing from outside.

use crate::common::*;
use serde_json::Value as Json;
use std::collections::BTreeMap;
use std::process::Command;

/// Element id -> its text (or its `data-count`), as a browser's parser reads them.
fn parse_ids(html: &str, env: &Env) -> Option<BTreeMap<String, String>> {
    const PARSER: &str = r#"
import html.parser, json, sys
class P(html.parser.HTMLParser):
    def __init__(self):
        super().__init__(convert_charrefs=True)
        self.ids, self.cur = {}, None
    def handle_starttag(self, tag, attrs):
        a = dict(attrs)
        if 'id' in a:
            if a['id'] in self.ids:
                sys.exit('duplicate id ' + a['id'])
            self.cur = a['id']
            self.ids[self.cur] = a.get('data-count', '')
    def handle_data(self, data):
        if self.cur is not None and self.ids[self.cur] == '':
            self.ids[self.cur] = data
    def handle_endtag(self, tag):
        self.cur = None
p = P()
p.feed(open(sys.argv[1], encoding='utf-8').read())
p.close()
print(json.dumps(p.ids))
"#;
    let have = Command::new("python3")
        .arg("--version")
        .output()
        .is_ok_and(|o| o.status.success());
    if !tool_available("python3", have) {
        return None;
    }
    let page = env.path("page.html");
    std::fs::write(&page, html).unwrap();
    let o = Command::new("python3")
        .args(["-c", PARSER])
        .arg(&page)
        .output()
        .unwrap();
    assert!(o.status.success(), "{}", String::from_utf8_lossy(&o.stderr));
    Some(serde_json::from_slice(&o.stdout).unwrap())
}

fn n(v: &Json) -> String {
    v.as_u64().unwrap_or(0).to_string()
}

#[test]
fn the_html_report_shows_the_reports_numbers_and_nothing_identifying() {
    let env = Env::new();
    let key = env.key("key", 50);
    let files = [
        "dicom/ct_explicit_le.dcm",
        "dicom/rtplan_implicit_le.dcm",
        "dicom/mr_fake_phi_dicognito.dcm",
        "dicom/nm_j2k_burned_in_private.dcm",
        "dicom/sc_deflated.dcm",
        "dicom/priv_sq_nested.dcm",
        "derived/phi_nested.dcm",
    ];
    let input = env.inputs(&files);
    std::fs::write(input.join("readme.txt"), "not DICOM").unwrap();
    let out = env.path("out");
    let rep = env.path("run.jsonl");
    let o = run(&[
        &"run",
        &input,
        &"-o",
        &out,
        &"--key-file",
        &key,
        &"--report",
        &rep,
        &"-q",
    ]);
    assert_eq!(
        o.status.code(),
        Some(1),
        "{}",
        String::from_utf8_lossy(&o.stderr)
    );
    let chk = env.path("check.jsonl");
    let c = run(&[&"check", &out, &"--report", &chk]);
    assert!(c.status.code().is_some());
    let o = run(&[&"report", &"html", &rep, &"--check", &chk]);
    assert_eq!(
        o.status.code(),
        Some(0),
        "{}",
        String::from_utf8_lossy(&o.stderr)
    );
    let html = String::from_utf8(o.stdout).unwrap();

    // Self-contained: nothing fetched, nothing run.
    for bad in [
        "<script", "src=", "href=", "url(", "@import", "<link", "<iframe",
    ] {
        assert!(!html.contains(bad), "{bad} in the page");
    }
    // No original path, not even a file name.
    assert!(!html.contains(&input.display().to_string()));
    for f in files {
        let name = std::path::Path::new(f)
            .file_name()
            .unwrap()
            .to_string_lossy();
        assert!(!html.contains(&*name), "{name} in the page");
    }
    // No attribute value of any input.
    for f in files {
        let Ok(obj) = dicom_object::open_file(testdata(f)) else {
            continue;
        };
        for tag in [
            dicom_dictionary_std::tags::PATIENT_NAME,
            dicom_dictionary_std::tags::PATIENT_ID,
            dicom_dictionary_std::tags::ACCESSION_NUMBER,
            dicom_dictionary_std::tags::INSTITUTION_NAME,
            dicom_dictionary_std::tags::STUDY_INSTANCE_UID,
        ] {
            if let Some(e) = obj.element_opt(tag).ok().flatten() {
                let v = text(e);
                if v.len() >= 4 {
                    assert!(!html.contains(&v), "a value of {f} in the page");
                }
            }
        }
    }

    let Some(ids) = parse_ids(&html, &env) else {
        return;
    };
    let (lines, s) = report(&rep);
    let id = |k: &str| ids.get(k).cloned().unwrap_or_else(|| panic!("no #{k}"));
    assert_eq!(id("profile"), s["profile"].as_str().unwrap());
    assert_eq!(id("profile-digest"), s["profile_digest"].as_str().unwrap());
    assert!(id("key-fingerprint").starts_with(s["key_fingerprint"].as_str().unwrap()));
    assert_eq!(id("tool-version"), env!("CARGO_PKG_VERSION"));
    for k in [
        "files_seen",
        "written",
        "skipped",
        "skipped_not_dicom",
        "failed",
    ] {
        assert_eq!(id(k), n(&s[k]), "{k}");
    }
    let by_kind = s["failed_by_kind"].as_object().unwrap();
    assert!(by_kind.len() >= 2, "{by_kind:?}");
    for (kind, count) in by_kind {
        assert_eq!(id(&format!("failed-kind-{kind}")), n(count), "{kind}");
    }
    assert_eq!(id("quarantined"), n(&s["failed_by_kind"]["quarantined"]));
    for (m, count) in s["written_by_modality"].as_object().unwrap() {
        assert_eq!(id(&format!("modality-{m}")), n(count), "{m}");
    }
    for (c, count) in s["written_by_sop_class"].as_object().unwrap() {
        assert_eq!(id(&format!("sop-class-{c}")), n(count), "{c}");
    }
    for k in ["removed", "emptied", "replaced", "uid_remapped", "kept"] {
        assert_eq!(id(&format!("bar-{k}")), n(&s["counts"][k]), "{k}");
    }
    // The quarantine list: the hash of each quarantined input path.
    for l in lines.iter().filter(|l| l["kind"] == "quarantined") {
        let h = dicom_deid::report_html::hashed_path(l["input"].as_str().unwrap());
        assert!(html.contains(&format!("<code class=\"qhash\">{h}</code>")));
    }
    let (_, cs) = report(&chk);
    for k in ["files", "findings", "warnings", "failing"] {
        assert_eq!(id(&format!("check-{k}")), n(&cs[k]), "check {k}");
    }
}

#[test]
fn a_report_without_its_summary_is_refused() {
    let env = Env::new();
    let rep = env.path("cut.jsonl");
    std::fs::write(&rep, "{\"input\":\"a\",\"status\":\"ok\"}\n").unwrap();
    let o = run(&[&"report", &"html", &rep]);
    assert_eq!(o.status.code(), Some(2));
    assert!(String::from_utf8_lossy(&o.stderr).contains("no summary line"));
}
