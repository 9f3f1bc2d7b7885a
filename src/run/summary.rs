//! The summary a run prints on stderr when it ends: one line of counts, then a short
//! table of what was not written and why, each kind with one hint, the throughput,
//! where the report is and, after an interruption, the command that resumes.

use crate::progress::{clock, megabytes};
use crate::report::Summary;
use std::fmt::Write as _;
use std::path::Path;
use std::time::Duration;

/// What the summary says besides the counts.
pub struct Context<'a> {
    pub report: Option<&'a Path>,
    /// The command that resumes an interrupted run.
    pub resume: Option<String>,
    /// `-q`: the first line only (and how to resume).
    pub quiet: bool,
}

/// The one line every run prints, `-q` included.
pub fn headline(s: &Summary) -> String {
    format!(
        "dicom-deid: {} files: {} written{}, {} skipped ({} not DICOM), {} failed; {:.1} s, {:.0} files/s; key {}{}",
        s.files_seen,
        s.written,
        if s.dry_run {
            " (dry run: nothing written)"
        } else {
            ""
        },
        s.skipped,
        s.skipped_not_dicom,
        s.failed,
        s.seconds,
        s.files_per_second,
        s.key_fingerprint,
        if s.key_ephemeral {
            " (random, this run only)"
        } else {
            ""
        },
    )
}

/// One hint per kind of failure or skip: what it means and what to do.
fn hint(kind: &str, s: &Summary, n: u64) -> String {
    match kind {
        "quarantined" => {
            let burned: u64 = s
                .quarantined_by_rule
                .iter()
                .filter(|(r, _)| r.starts_with("burned-in"))
                .map(|(_, n)| n)
                .sum();
            let mut h = "see the `quarantine:` section of your profile".to_string();
            if burned > 0 {
                let _ = write!(
                    h,
                    "; {burned} {} refused for burned-in risk",
                    files(burned)
                );
            }
            // A pixel rule matched but could not run (compressed or unsupported
            // pixel data, regions outside the image): see the `pixels:` section.
            let pixels = s.quarantined_by_rule.get("pixels").copied().unwrap_or(0);
            if pixels > 0 {
                let _ = write!(
                    h,
                    "; {pixels} {} matched by a `pixels:` rule that could not redact them \
                     (the report says why)",
                    files(pixels)
                );
            }
            let other = n.saturating_sub(burned + pixels);
            if other > 0 {
                let _ = write!(
                    h,
                    "; {other} {} refused as documents or SOP classes not allowed",
                    files(other)
                );
            }
            h
        }
        "malformed" => "not valid DICOM (truncated or corrupt): the report gives each file's reason".into(),
        "unreadable" => "could not be opened or read: check the permissions and the device".into(),
        "unsupported" => "a transfer syntax whose dataset this tool cannot read: convert them first (e.g. dcmconv)".into(),
        "deid" => "a value could not be de-identified as the profile asks: the report names the element".into(),
        "duplicate" => "another input has the same SOP Instance UID: the first by path keeps the output name (`--layout mirror` keeps both)".into(),
        "changed" => "the file changed while it was read: run again once writing to the inputs has finished".into(),
        "write" | "output-full" => "the output could not be written: check its free space and permissions".into(),
        "aborted" => "not attempted: the output device filled up; free space and run again (finished files are skipped)".into(),
        "internal" => "a bug in dicom-deid: please report it with the file's report line (it holds no values)".into(),
        "symlink" => "symbolic links are not followed (pass --follow); a loop is always refused".into(),
        "dicomdir" => "DICOMDIR files are never copied: rebuild one from the de-identified files".into(),
        _ => "see the report for each file's reason".into(),
    }
}

fn files(n: u64) -> &'static str {
    if n == 1 { "file" } else { "files" }
}

/// The whole summary, as lines without the trailing newline.
pub fn render(s: &Summary, ctx: &Context) -> String {
    let mut out = headline(s);
    if !ctx.quiet {
        let secs = s.seconds.max(1e-9);
        let _ = write!(
            out,
            "\n  time        {}  {} read, {}/s",
            clock(Duration::from_secs_f64(s.seconds)),
            megabytes(s.bytes_in),
            megabytes((s.bytes_in as f64 / secs) as u64)
        );
        let _ = write!(out, "\n  written     {:>6}", s.written);
        if s.written > 0 && !s.dry_run {
            let _ = write!(out, "  {} out", megabytes(s.bytes_out));
        }
        let _ = write!(out, "\n  skipped     {:>6}", s.skipped);
        let mut benign = Vec::new();
        for (n, what) in [
            (s.skipped_not_dicom, "not DICOM"),
            (s.skipped_unchanged, "finished by an earlier run"),
        ] {
            if n > 0 {
                benign.push(format!("{n} {what}"));
            }
        }
        if !benign.is_empty() {
            let _ = write!(out, "  {}", benign.join(", "));
        }
        for (kind, n) in &s.skipped_by_kind {
            let _ = write!(out, "\n    {kind:<16}{n:>6}  {}", hint(kind, s, *n));
        }
        let _ = write!(out, "\n  failed      {:>6}", s.failed);
        for (kind, n) in &s.failed_by_kind {
            let _ = write!(out, "\n    {kind:<16}{n:>6}  ");
            if kind == "quarantined" && !s.quarantined_by_rule.is_empty() {
                let rules: Vec<String> = s
                    .quarantined_by_rule
                    .iter()
                    .map(|(r, n)| format!("{r} {n}"))
                    .collect();
                let _ = write!(out, "{}\n{:28}", rules.join(", "), "");
            }
            out.push_str(&hint(kind, s, *n));
        }
        match ctx.report {
            Some(p) if p == Path::new("-") => out.push_str("\n  report      on stdout"),
            Some(p) => {
                let _ = write!(out, "\n  report      {}", p.display());
            }
            None => out.push_str("\n  report      none (pass --report FILE to keep one)"),
        }
    }
    if s.not_attempted > 0 {
        let _ = write!(
            out,
            "\ndicom-deid: {} files not attempted: the output device is full; \
             free space and run again (finished files are skipped)",
            s.not_attempted
        );
    }
    if let Some(cmd) = &ctx.resume {
        let _ = write!(
            out,
            "\ndicom-deid: interrupted after {} files; finished files are kept. To resume:\n  {cmd}",
            s.files_seen
        );
        if s.dry_run {
            out.push_str("\n  (a dry run keeps no ledger: it starts again from the first file)");
        }
    }
    out
}

#[cfg(test)]
mod tests {
    use super::*;

    fn sample() -> Summary {
        let mut s = Summary {
            files_seen: 303,
            written: 120,
            skipped: 12,
            skipped_not_dicom: 10,
            skipped_unchanged: 2,
            failed: 171,
            bytes_in: 45_300_000,
            bytes_out: 44_100_000,
            seconds: 4.2,
            files_per_second: 72.1,
            key_fingerprint: "ab12cd34".into(),
            ..Summary::default()
        };
        s.failed_by_kind.insert("quarantined".into(), 160);
        s.failed_by_kind.insert("malformed".into(), 11);
        s.quarantined_by_rule
            .insert("burned-in-unknown".into(), 150);
        s.quarantined_by_rule
            .insert("burned-in-annotation".into(), 8);
        s.quarantined_by_rule
            .insert("encapsulated-documents".into(), 2);
        s
    }

    #[test]
    fn the_table_breaks_failures_down_with_one_hint_each() {
        let got = render(
            &sample(),
            &Context {
                report: Some(Path::new("run.jsonl")),
                resume: None,
                quiet: false,
            },
        );
        let want = "\
dicom-deid: 303 files: 120 written, 12 skipped (10 not DICOM), 171 failed; 4.2 s, 72 files/s; key ab12cd34
  time        0:04  45.3 MB read, 10.8 MB/s
  written        120  44.1 MB out
  skipped         12  10 not DICOM, 2 finished by an earlier run
  failed         171
    malformed           11  not valid DICOM (truncated or corrupt): the report gives each file's reason
    quarantined        160  burned-in-annotation 8, burned-in-unknown 150, encapsulated-documents 2
                            see the `quarantine:` section of your profile; 158 files refused for burned-in risk; 2 files refused as documents or SOP classes not allowed
  report      run.jsonl";
        assert_eq!(got, want);
    }

    #[test]
    fn files_a_pixel_rule_could_not_redact_get_their_own_hint() {
        let mut s = sample();
        s.quarantined_by_rule.insert("pixels".into(), 7);
        *s.failed_by_kind.get_mut("quarantined").unwrap() += 7;
        let got = hint("quarantined", &s, 167);
        assert_eq!(
            got,
            "see the `quarantine:` section of your profile; 158 files refused for burned-in \
             risk; 7 files matched by a `pixels:` rule that could not redact them (the report \
             says why); 2 files refused as documents or SOP classes not allowed"
        );
    }

    #[test]
    fn quiet_is_one_line_and_an_interruption_says_how_to_resume() {
        let got = render(
            &sample(),
            &Context {
                report: Some(Path::new("-")),
                resume: Some("dicom-deid run in -o out".into()),
                quiet: true,
            },
        );
        let want = "\
dicom-deid: 303 files: 120 written, 12 skipped (10 not DICOM), 171 failed; 4.2 s, 72 files/s; key ab12cd34
dicom-deid: interrupted after 303 files; finished files are kept. To resume:
  dicom-deid run in -o out";
        assert_eq!(got, want);
    }
}
