//! The README cannot rot: every YAML profile in it compiles, every other YAML block
//! parses, and it states the install command and every step `.ci/run` takes.

use std::path::Path;

fn read(name: &str) -> String {
    std::fs::read_to_string(Path::new(env!("CARGO_MANIFEST_DIR")).join(name)).unwrap()
}

/// The fenced blocks of `lang` in a Markdown text, with the line each starts on.
fn fenced(md: &str, lang: &str) -> Vec<(usize, String)> {
    let mut out = Vec::new();
    let mut current: Option<(usize, String)> = None;
    for (i, line) in md.lines().enumerate() {
        let fence = line.trim_start().strip_prefix("```");
        match (&mut current, fence) {
            (None, Some(info)) if info.split_whitespace().next() == Some(lang) => {
                current = Some((i + 2, String::new()));
            }
            (Some(_), Some(_)) => out.push(current.take().unwrap()),
            (Some((_, text)), None) => {
                text.push_str(line);
                text.push('\n');
            }
            _ => {}
        }
    }
    out
}

#[test]
fn every_yaml_example_in_the_readme_loads() {
    let md = read("README.md");
    let blocks = fenced(&md, "yaml");
    assert!(blocks.len() >= 3, "the README's YAML examples are found");
    let mut profiles = 0;
    for (line, text) in blocks {
        if text.contains("apiVersion:") {
            // A Kubernetes manifest: valid YAML is all that can be asked of it here.
            serde_saphyr::from_str::<serde_json::Value>(&text)
                .unwrap_or_else(|e| panic!("README.md:{line}: not YAML: {e}"));
            continue;
        }
        if text.lines().any(|l| l.starts_with("listen:")) {
            // A serve config: checked by the binary itself below.
            continue;
        }
        dicom_deid::profile::load::compile_str(&format!("README.md:{line}"), &text)
            .unwrap_or_else(|e| panic!("README.md:{line}: the example does not compile:\n{e}"));
        profiles += 1;
    }
    assert!(profiles >= 2);
}

/// Every serve config in the README is what `serve --config F --check` accepts: the
/// keys exist, the destinations, allow rules and profile are valid. Only the key
/// file (a path on the admin's machine) is replaced by a test key.
#[test]
fn every_serve_config_in_the_readme_passes_serve_check() {
    let md = read("README.md");
    let env = crate::common::Env::new();
    let key = env.key("k", 1);
    let mut configs = 0;
    for (line, text) in fenced(&md, "yaml") {
        if !text.lines().any(|l| l.starts_with("listen:")) {
            continue;
        }
        let f = env.path(&format!("serve-{line}.yaml"));
        std::fs::write(&f, &text).unwrap();
        let o = std::process::Command::new(crate::common::BIN)
            .env_remove("DICOM_DEID_KEY_FILE")
            .arg("serve")
            .arg("--config")
            .arg(&f)
            .arg("--key-file")
            .arg(&key)
            .arg("--check")
            .output()
            .unwrap();
        let err = String::from_utf8_lossy(&o.stderr);
        assert!(
            o.status.success(),
            "README.md:{line}: serve --check refuses the config:\n{err}"
        );
        assert!(err.contains("configuration OK"), "{err}");
        configs += 1;
    }
    assert!(configs >= 1, "the README shows a serve config");
}

#[test]
fn the_readme_says_how_to_install_and_what_ci_runs() {
    let md = read("README.md");
    assert!(md.contains("cargo install --locked --path ."));
    // The two commands stay at the top.
    let top = &md[..md.find("\n## ").unwrap()];
    assert!(top.contains("cargo run --release -- run"));
    assert!(top.contains("cargo test --release"));
    // Every command .ci/run runs, and every package it installs, is written in the
    // README.
    let ci = read(".ci/run");
    let mut steps = 0;
    for line in ci.lines().map(str::trim) {
        if line.starts_with('#') {
            continue;
        }
        // The command, not the warning printed when it fails.
        let line = line.split("||").next().unwrap().trim();
        if line.starts_with("echo ") {
            continue;
        }
        if let Some(at) = line.find(" install ") {
            // Package names: the words after `install` that are not flags.
            for word in line[at + " install ".len()..].split_whitespace() {
                if word.starts_with('>') || word.starts_with('|') || word.starts_with(')') {
                    break;
                }
                if word.starts_with('-') {
                    continue;
                }
                let name = word
                    .trim_matches('\'')
                    .split(['=', '<', '>'])
                    .next()
                    .unwrap();
                assert!(
                    md.contains(name),
                    "README does not name {name}, which .ci/run installs"
                );
                steps += 1;
            }
            continue;
        }
        for cmd in ["cargo ", "bash ", "FUZZ_SEED=", "export "] {
            if line.starts_with(cmd) {
                let step = line.strip_prefix("export ").unwrap_or(line);
                let step = step.split("=\"").next().unwrap();
                assert!(
                    md.contains(step),
                    "README does not mention `{step}` of .ci/run"
                );
                steps += 1;
            }
        }
    }
    assert!(steps >= 8, "{steps} steps of .ci/run found");
}
