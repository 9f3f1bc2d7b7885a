//! The layering rules of the architecture, checked on the source: io knows no
//! profile rules and no engine, profile knows no engine, the report never sees an
//! original value, and the judge (`check`) shares no code with the engine.

use std::path::Path;

/// `use` lines and paths of every `.rs` file under `dir`, with the file's name.
fn sources(dir: &str) -> Vec<(String, String)> {
    let root = Path::new(env!("CARGO_MANIFEST_DIR")).join("src");
    let mut out = Vec::new();
    let base = root.join(dir);
    let files: Vec<std::path::PathBuf> = if base.is_dir() {
        walkdir::WalkDir::new(&base)
            .into_iter()
            .filter_map(Result::ok)
            .filter(|e| e.path().extension().is_some_and(|x| x == "rs"))
            .map(|e| e.into_path())
            .collect()
    } else {
        vec![root.join(format!("{dir}.rs"))]
    };
    for f in files {
        let text = std::fs::read_to_string(&f).unwrap_or_default();
        // Code only: comments may name other layers.
        let code: String = text
            .lines()
            .filter(|l| !l.trim_start().starts_with("//"))
            .collect::<Vec<_>>()
            .join("\n");
        out.push((f.display().to_string(), code));
    }
    out
}

fn assert_no_use(layer: &str, forbidden: &[&str]) {
    assert_no_use_except(layer, forbidden, &[]);
}

fn assert_no_use_except(layer: &str, forbidden: &[&str], except: &[&str]) {
    let files = sources(layer);
    assert!(!files.is_empty(), "no sources for {layer}");
    for (name, code) in files {
        if except.iter().any(|e| name.ends_with(e)) {
            continue;
        }
        for f in forbidden {
            assert!(
                !code.contains(f),
                "{name} uses {f}: the {layer} layer must not depend on it"
            );
        }
    }
}

#[test]
fn io_knows_no_profile_and_no_engine() {
    assert_no_use(
        "io",
        &[
            "crate::deid",
            "crate::profile",
            "crate::error",
            "crate::run",
        ],
    );
}

#[test]
fn profile_knows_no_engine() {
    assert_no_use("profile", &["crate::deid", "crate::io", "crate::run"]);
}

#[test]
fn report_sees_no_original_value() {
    assert_no_use(
        "report",
        &["CrosswalkEntry", "crate::deid", "crate::crosswalk"],
    );
}

#[test]
fn the_judge_shares_no_code_with_the_engine() {
    assert_no_use(
        "check",
        &["crate::deid", "crate::pipeline", "crate::pixels"],
    );
    // The OCR judge decodes pixels itself; the redaction never asks the judge.
    assert_no_use("pixels", &["crate::check"]);
}

/// Pixel redaction is engine code: it blanks frames it is handed and touches no
/// file, socket or process (the encoder streams the frames to it).
#[test]
fn pixel_redaction_touches_no_file_system() {
    assert_no_use(
        "pixels",
        &[
            "std::fs",
            "std::net",
            "std::process",
            "crate::store",
            "crate::run",
        ],
    );
}

/// The key file is read once before any input (`deid/key.rs`); the per-file engine
/// itself opens nothing.
#[test]
fn the_engine_touches_no_file_system() {
    assert_no_use_except(
        "deid",
        &[
            "std::fs",
            "crate::io",
            "crate::store",
            "File::open",
            "std::net",
        ],
        &["deid/key.rs"],
    );
}

#[test]
fn sinks_know_no_profile_or_engine() {
    assert_no_use(
        "store",
        &["crate::deid", "crate::profile", "crate::pipeline"],
    );
}

/// Object storage is plumbing: it moves bytes and lists keys, and knows nothing of
/// what they mean.
#[test]
fn object_storage_knows_no_profile_engine_or_run() {
    assert_no_use(
        "s3",
        &[
            "crate::deid",
            "crate::profile",
            "crate::pipeline",
            "crate::run",
            "crate::report",
        ],
    );
}

/// The engine makes no network request.
#[test]
fn the_engine_reaches_no_object_store() {
    assert_no_use("deid", &["crate::s3", "object_store", "reqwest"]);
}

/// The HTML page is built from the report's JSON alone: it cannot reach an original
/// value, a dataset or the key.
#[test]
fn the_html_report_reads_only_the_report() {
    assert_no_use(
        "report_html",
        &[
            "crate::deid",
            "crate::pipeline",
            "crate::crosswalk",
            "crate::io",
            "dicom_object",
        ],
    );
}

/// Progress and the run summary show counts, never a value: they see no dataset.
#[test]
fn progress_and_summary_see_no_dataset() {
    for layer in ["progress", "run/summary"] {
        assert_no_use(
            layer,
            &[
                "crate::deid",
                "crate::pipeline",
                "crate::crosswalk",
                "dicom_object",
            ],
        );
    }
}

/// The gateway is a source and a sink around the pipeline: the pipeline, the engine
/// and the sinks know nothing of associations or sockets.
#[test]
fn the_pipeline_knows_no_network() {
    for layer in ["pipeline", "deid", "store", "io"] {
        assert_no_use(layer, &["crate::gateway", "dicom_ul", "std::net"]);
    }
}
