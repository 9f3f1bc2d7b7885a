//! The conventions a user expects of a command-line tool, driven through the real
//! binary: short flags, `-q`/`-v`, `--report -`, `--explain` without `--dry-run`,
//! an empty input, exit codes in `--help`, completions and a man page, the summary
//! table, Ctrl-C, and the progress bar on a terminal only.

use crate::common::*;
use std::io::{BufRead, BufReader};
use std::path::Path;
use std::process::{Command, Stdio};
use std::time::{Duration, Instant};

/// The samples of a mixed tree: two written, one quarantined (burned-in), one
/// malformed, one not DICOM.
fn mixed(env: &Env) -> std::path::PathBuf {
    let input = env.inputs(&[
        "dicom/ct_explicit_le.dcm",
        "dicom/rtplan_implicit_le.dcm",
        "dicom/nm_j2k_burned_in_private.dcm",
        "dicom/priv_sq_nested.dcm",
    ]);
    std::fs::write(input.join("notes.txt"), "not DICOM").unwrap();
    input
}

fn text(b: &[u8]) -> String {
    String::from_utf8_lossy(b).into_owned()
}

#[test]
fn short_flags_quiet_and_the_report_on_stdout() {
    let env = Env::new();
    let key = env.key("key", 40);
    let input = mixed(&env);
    let out = env.path("out");
    let o = run(&[
        &"run",
        &input,
        &"-o",
        &out,
        &"-j",
        &"1",
        &"-q",
        &"--key-file",
        &key,
        &"--report",
        &"-",
    ]);
    let stderr = text(&o.stderr);
    assert_eq!(o.status.code(), Some(1), "{stderr}");
    // -q: the summary line only; no line per failed file.
    assert_eq!(stderr.lines().count(), 1, "{stderr}");
    assert!(stderr.contains("5 files: 2 written"), "{stderr}");
    // --report -: JSON lines on stdout, the summary last.
    let stdout = text(&o.stdout);
    let lines: Vec<serde_json::Value> = stdout
        .lines()
        .map(|l| serde_json::from_str(l).expect("stdout is JSON Lines"))
        .collect();
    assert_eq!(lines.len(), 6, "{stdout}");
    let s = &lines[5]["summary"];
    assert_eq!(s["written"], 2);
    assert_eq!(s["failed_by_kind"]["quarantined"], 1);
    assert_eq!(s["failed_by_kind"]["malformed"], 1);
    assert_eq!(s["quarantined_by_rule"]["burned-in-annotation"], 1);
    assert_eq!(s["written_by_modality"]["CT"], 1);
    assert_eq!(s["written_by_modality"]["RTPLAN"], 1);
    assert!(!Path::new("-").exists(), "no file named `-`");
    let burned = lines
        .iter()
        .find(|l| l["input"].as_str().is_some_and(|p| p.contains("burned_in")))
        .unwrap();
    assert_eq!(burned["quarantine_rule"], "burned-in-annotation");
}

#[test]
fn the_summary_is_a_table_of_failures_by_kind_with_hints() {
    let env = Env::new();
    let key = env.key("key", 41);
    let input = mixed(&env);
    let out = env.path("out");
    let rep = env.path("run.jsonl");
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
    let stderr = text(&o.stderr);
    assert_eq!(o.status.code(), Some(1), "{stderr}");
    // One line per failure as before (not a terminal: no bar), then the table.
    assert!(stderr.contains("nm_j2k_burned_in_private.dcm: failed: quarantined"));
    assert!(
        !stderr.contains('\r') && !stderr.contains('\x1b'),
        "{stderr}"
    );
    let table = &stderr[stderr.find("dicom-deid: 5 files").expect(&stderr)..];
    assert!(table.contains("  written          2"), "{table}");
    assert!(
        table.contains("  skipped          1  1 not DICOM"),
        "{table}"
    );
    assert!(table.contains("  failed           2"), "{table}");
    assert!(
        table.contains(
            "see the `quarantine:` section of your profile; 1 file refused for burned-in risk"
        ),
        "{table}"
    );
    assert!(
        table.contains("    malformed            1  not valid DICOM"),
        "{table}"
    );
    assert!(
        table.contains(&format!("  report      {}", rep.display())),
        "{table}"
    );
    // The report's summary has the same breakdown.
    let (_, s) = report(&rep);
    assert_eq!(s["failed_by_kind"]["quarantined"], 1);
    assert_eq!(s["interrupted"], false);
}

#[test]
fn verbose_prints_a_line_for_every_written_file() {
    let env = Env::new();
    let key = env.key("key", 42);
    let input = mixed(&env);
    let out = env.path("out");
    let o = run(&[
        &"run",
        &input,
        &"--out",
        &out,
        &"--key-file",
        &key,
        &"-v",
        &"--layout",
        &"mirror",
    ]);
    let stderr = text(&o.stderr);
    let written: Vec<&str> = stderr
        .lines()
        .filter(|l| l.contains(": written "))
        .collect();
    assert_eq!(written.len(), 2, "{stderr}");
    assert!(
        written.iter().any(
            |l| l.contains("ct_explicit_le.dcm: written ") && l.ends_with("ct_explicit_le.dcm")
        )
    );
}

#[test]
fn an_empty_input_is_an_error_not_a_silent_success() {
    let env = Env::new();
    let empty = env.path("empty");
    std::fs::create_dir_all(&empty).unwrap();
    let out = env.path("out");
    let o = run(&[&"run", &empty, &"-o", &out, &"-q"]);
    let stderr = text(&o.stderr);
    assert_eq!(o.status.code(), Some(1), "{stderr}");
    assert!(
        stderr.contains(&format!(
            "error: no input files found in {}",
            empty.display()
        )),
        "{stderr}"
    );
}

#[test]
fn explain_works_without_dry_run_and_names_the_output() {
    let env = Env::new();
    let key = env.key("key", 43);
    let input = env.inputs(&["dicom/ct_explicit_le.dcm"]);
    let file = input.join("dicom/ct_explicit_le.dcm");
    let out = env.path("out");
    let o = run(&[
        &"run",
        &"--explain",
        &file,
        &"-o",
        &out,
        &"--key-file",
        &key,
        &"--layout",
        &"mirror",
    ]);
    let stdout = text(&o.stdout);
    assert_eq!(o.status.code(), Some(0), "{}", text(&o.stderr));
    assert!(
        stdout.contains(&format!(
            "run: writes {} (nothing is written now)",
            out.join("ct_explicit_le.dcm").display()
        )),
        "{stdout}"
    );
    assert!(stdout.contains("(0010,0010)") && stdout.contains("PatientName"));
    assert!(!out.exists(), "explain writes nothing");
    // With --dry-run it says so instead.
    let o = run(&[
        &"run",
        &"--explain",
        &file,
        &"--dry-run",
        &"--key-file",
        &key,
    ]);
    assert!(text(&o.stdout).contains("\nnothing is written\n"));
}

#[test]
fn help_lists_exit_codes_and_completions_and_man_page_are_generated() {
    let o = run(&[&"--help"]);
    let help = text(&o.stdout);
    for code in ["  0 ", "  1 ", "  2 ", "  130 "] {
        assert!(help.contains(code), "{help}");
    }
    assert!(help.contains("Exit codes:"));

    let env = Env::new();
    let o = run(&[&"completions", &"bash"]);
    assert_eq!(o.status.code(), Some(0));
    let script = text(&o.stdout);
    assert!(script.contains("--quiet") && script.contains("--report"));
    // bash itself accepts it.
    let path = env.path("dicom-deid.bash");
    std::fs::write(&path, &script).unwrap();
    let check = Command::new("bash").arg("-n").arg(&path).output().unwrap();
    assert!(check.status.success(), "{}", text(&check.stderr));
    for shell in ["zsh", "fish", "elvish", "powershell"] {
        let o = run(&[&"completions", &shell]);
        assert_eq!(o.status.code(), Some(0), "{shell}");
        assert!(text(&o.stdout).contains("dicom-deid"), "{shell}");
    }

    let o = run(&[&"man"]);
    assert_eq!(o.status.code(), Some(0));
    let man = text(&o.stdout);
    assert!(
        man.starts_with(".ie") || man.contains(".TH dicom-deid"),
        "{man}"
    );
    assert!(man.contains("Exit codes"), "{man}");
    // man(1) renders it, where installed.
    if Command::new("man").arg("--version").output().is_ok() {
        let page = env.path("dicom-deid.1");
        std::fs::write(&page, &man).unwrap();
        let r = Command::new("man")
            .arg("-l")
            .arg(&page)
            .env("MANPAGER", "cat")
            .env("PAGER", "cat")
            .output()
            .unwrap();
        assert!(r.status.success(), "{}", text(&r.stderr));
        assert!(text(&r.stdout).contains("De-identify DICOM"));
    }
}

/// `copies` hard links to one sample under `root` (cheap, and each is its own
/// input path).
fn many(root: &Path, copies: usize) {
    std::fs::create_dir_all(root).unwrap();
    let first = root.join("f00000.dcm");
    std::fs::copy(testdata("dicom/rtplan_implicit_le.dcm"), &first).unwrap();
    for i in 1..copies {
        std::fs::hard_link(&first, root.join(format!("f{i:05}.dcm"))).unwrap();
    }
}

fn interrupt_args(input: &Path, out: &Path, key: &Path, rep: &Path) -> Vec<std::ffi::OsString> {
    [
        "run".as_ref(),
        input.as_os_str(),
        "-o".as_ref(),
        out.as_os_str(),
        "--key-file".as_ref(),
        key.as_os_str(),
        "--report".as_ref(),
        rep.as_os_str(),
        "-j".as_ref(),
        "1".as_ref(),
        "-v".as_ref(),
        "--layout".as_ref(),
        "mirror".as_ref(),
    ]
    .iter()
    .map(|s| s.to_os_string())
    .collect()
}

/// Starts a run, waits for `after` written lines on stderr, sends `signals` one
/// right after the other, and returns the exit code and the whole stderr.
fn interrupt_run(
    args: &[std::ffi::OsString],
    after: usize,
    signals: &[libc::c_int],
) -> (Option<i32>, String) {
    let mut child = Command::new(BIN)
        .args(args)
        .stdout(Stdio::null())
        .stderr(Stdio::piped())
        .spawn()
        .unwrap();
    let pid = child.id() as libc::pid_t;
    let stderr = child.stderr.take().unwrap();
    let (tx, rx) = std::sync::mpsc::channel();
    let reader = std::thread::spawn(move || {
        let mut all = String::new();
        let mut seen = 0;
        for line in BufReader::new(stderr).lines() {
            let line = line.unwrap();
            if line.contains(": written ") {
                seen += 1;
                if seen == after {
                    let _ = tx.send(());
                }
            }
            all.push_str(&line);
            all.push('\n');
        }
        all
    });
    rx.recv_timeout(Duration::from_secs(120))
        .expect("the run writes files");
    for sig in signals {
        // SAFETY: kill(2) on our own child's pid.
        unsafe { libc::kill(pid, *sig) };
    }
    let status = child.wait().unwrap();
    (status.code(), reader.join().unwrap())
}

#[test]
fn ctrl_c_finishes_in_flight_files_writes_the_summary_and_says_how_to_resume() {
    let env = Env::new();
    let key = env.key("key", 44);
    let input = env.path("in");
    let total = 6000;
    many(&input, total);
    let out = env.path("out");
    let rep = env.path("run.jsonl");
    let args = interrupt_args(&input, &out, &key, &rep);
    let started = Instant::now();
    let (code, stderr) = interrupt_run(&args, 50, &[libc::SIGINT]);
    assert_eq!(code, Some(130), "{stderr}");
    assert!(
        stderr.contains("interrupted: finishing the files in flight"),
        "{stderr}"
    );
    assert!(stderr.contains("To resume:\n  dicom-deid run "), "{stderr}");
    // The report is whole: every line parses and the summary is there.
    let (lines, s) = report(&rep);
    assert_eq!(s["interrupted"], true);
    let seen = s["files_seen"].as_u64().unwrap() as usize;
    assert!(seen < total, "stopped early ({seen} of {total})");
    assert_eq!(lines.len(), seen);
    assert!(lines.iter().all(|l| l["status"] == "ok"));
    let written = s["written"].as_u64().unwrap();
    eprintln!(
        "interrupted after {written} of {total} files in {:?}",
        started.elapsed()
    );
    // The ledger holds every written file: the resume skips exactly those.
    let mut again = args.clone();
    let rep2 = env.path("resumed.jsonl");
    again[7] = rep2.clone().into();
    let o = Command::new(BIN).args(&again).output().unwrap();
    assert_eq!(o.status.code(), Some(0), "{}", text(&o.stderr));
    let (_, s2) = report(&rep2);
    assert_eq!(s2["skipped_unchanged"].as_u64().unwrap(), written);
    assert_eq!(
        s2["written"].as_u64().unwrap() + written,
        total as u64,
        "every file is done once"
    );
}

#[test]
fn a_second_ctrl_c_exits_at_once_and_the_next_run_completes() {
    let env = Env::new();
    let key = env.key("key", 45);
    let input = env.path("in");
    let total = 6000;
    many(&input, total);
    let out = env.path("out");
    let rep = env.path("run.jsonl");
    let args = interrupt_args(&input, &out, &key, &rep);
    // Two different signals, so that the kernel cannot merge them into one.
    let (code, stderr) = interrupt_run(&args, 50, &[libc::SIGINT, libc::SIGTERM]);
    assert_eq!(code, Some(130), "{stderr}");
    // No summary table: the process ended in the signal handler.
    assert!(!stderr.contains("To resume:"), "{stderr}");
    let mut again = args.clone();
    let rep2 = env.path("resumed.jsonl");
    again[7] = rep2.clone().into();
    let o = Command::new(BIN).args(&again).output().unwrap();
    assert_eq!(o.status.code(), Some(0), "{}", text(&o.stderr));
    let (_, s2) = report(&rep2);
    assert_eq!(
        s2["written"].as_u64().unwrap() + s2["skipped_unchanged"].as_u64().unwrap(),
        total as u64
    );
    // Every output re-reads: none was left half-written.
    let outs = walkdir::WalkDir::new(&out)
        .into_iter()
        .filter_map(Result::ok)
        .filter(|e| e.file_type().is_file() && e.path().extension().is_some_and(|x| x == "dcm"))
        .count();
    assert_eq!(outs, total);
}

/// Whether `s` holds an SGR escape (ESC [ digits/semicolons m): colour or bold.
fn has_sgr(s: &str) -> bool {
    s.split("\x1b[").skip(1).any(|rest| {
        let params: String = rest
            .chars()
            .take_while(|c| c.is_ascii_digit() || *c == ';')
            .collect();
        rest[params.len()..].starts_with('m')
    })
}

/// On a terminal (a pseudo-terminal from script(1)) the bar is drawn on stderr
/// with the walk's total, and failure lines go above it; elsewhere there is no bar.
#[test]
fn the_progress_bar_is_drawn_only_on_a_terminal() {
    let have_script = Command::new("script")
        .arg("--version")
        .output()
        .is_ok_and(|o| o.status.success());
    if !tool_available("script(1) (bsdutils)", have_script) {
        return;
    }
    let env = Env::new();
    let key = env.key("key", 46);
    let input = env.path("in");
    many(&input, 3000);
    std::fs::copy(
        testdata("dicom/nm_j2k_burned_in_private.dcm"),
        input.join("burned.dcm"),
    )
    .unwrap();
    let out = env.path("out");
    let cmd = format!(
        "{BIN} run {} -o {} --key-file {} -j 1 --layout mirror",
        input.display(),
        out.display(),
        key.display()
    );
    let o = Command::new("script")
        .args(["-qfec", &cmd, "/dev/null"])
        .output()
        .unwrap();
    let tty = text(&o.stdout);
    assert_eq!(o.status.code(), Some(1), "{tty}");
    assert!(tty.contains(" files  ") && tty.contains("files/s"), "{tty}");
    assert!(tty.contains("/3001 files") || tty.contains("/≥"), "{tty}");
    assert!(tty.contains("1 failed (1 quarantined)"), "{tty}");
    assert!(tty.contains("burned.dcm: failed: quarantined"), "{tty}");
    assert!(tty.contains("[="), "the bar itself: {tty}");
    // No colour anywhere (so NO_COLOR has nothing to switch off): no SGR sequence.
    assert!(!has_sgr(&tty), "colour escape in: {tty}");

    // -q on the terminal: no bar.
    let o = Command::new("script")
        .args(["-qfec", &format!("{cmd} -q"), "/dev/null"])
        .output()
        .unwrap();
    let tty = text(&o.stdout);
    assert!(!tty.contains("[="), "{tty}");
    assert!(!tty.contains("burned.dcm"), "{tty}");
}
