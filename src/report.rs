//! Outcomes of a run: one JSON line per input, a summary, progress and per-file
//! error lines on stderr. Holds paths and counts, never an attribute value or a key.

use crate::outcome::{Counts, Kind};
use crate::progress::Progress;
use serde::Serialize;
use std::collections::BTreeMap;
use std::io::Write;
use std::path::PathBuf;
use std::time::Instant;

#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize)]
#[serde(rename_all = "lowercase")]
pub enum Status {
    Ok,
    Skipped,
    Failed,
}

#[derive(Debug, Serialize)]
pub struct FileOutcome {
    #[serde(serialize_with = "lossy_path")]
    pub input: PathBuf,
    /// The input path's bytes in hex, when they are not UTF-8 (`input` then shows
    /// them with U+FFFD): a report line is never lost or ambiguous for such a path.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub input_hex: Option<String>,
    #[serde(serialize_with = "lossy_opt_path")]
    pub output: Option<PathBuf>,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub output_hex: Option<String>,
    pub status: Status,
    /// Machine-readable reason for a skip or failure (`not-dicom`, `dicomdir`,
    /// `malformed`, ...).
    #[serde(skip_serializing_if = "Option::is_none")]
    pub kind: Option<Kind>,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub reason: Option<String>,
    /// The profile's `quarantine:` rule that refused the file (kind `quarantined`).
    #[serde(skip_serializing_if = "Option::is_none")]
    pub quarantine_rule: Option<&'static str>,
    /// Modality (0008,0060) and SOP Class UID of a written file: what kind of image
    /// it is, never whose. For the per-modality counts of `report html`.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub modality: Option<String>,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub sop_class: Option<String>,
    pub counts: Counts,
    pub bytes_in: u64,
    pub bytes_out: u64,
    #[serde(skip_serializing_if = "Vec::is_empty")]
    pub notes: Vec<String>,
    /// Private creators whose blocks were removed (vendor names, not patient data).
    #[serde(skip_serializing_if = "Vec::is_empty")]
    pub private_creators_dropped: Vec<String>,
    /// Where the worker copied a failed input for review (`--quarantine-copy`).
    #[serde(skip)]
    pub quarantine_copy: Option<PathBuf>,
    /// Ledger line to append once the outcome is recorded.
    #[serde(skip)]
    pub ledger: Option<crate::ledger::Record>,
    /// Path relative to its input root (for quarantine copies).
    #[serde(skip)]
    pub rel: PathBuf,
}

impl FileOutcome {
    pub fn new(input: PathBuf, status: Status) -> Self {
        FileOutcome {
            input,
            input_hex: None,
            output: None,
            output_hex: None,
            status,
            kind: None,
            reason: None,
            quarantine_rule: None,
            modality: None,
            sop_class: None,
            counts: Counts::default(),
            bytes_in: 0,
            bytes_out: 0,
            notes: Vec::new(),
            private_creators_dropped: Vec::new(),
            quarantine_copy: None,
            ledger: None,
            rel: PathBuf::new(),
        }
    }

    /// Turns an outcome whose output was dropped or could not be committed into a
    /// skip or failure: no output, no ledger line, no bytes written.
    pub fn not_written(&mut self, status: Status, kind: Kind, reason: String) {
        self.status = status;
        self.kind = Some(kind);
        self.reason = Some(reason);
        self.output = None;
        self.output_hex = None;
        self.ledger = None;
        self.bytes_out = 0;
    }

    /// Skips of non-DICOM files are expected in a mixed tree and do not affect the
    /// exit code; every other skip does.
    pub fn is_benign_skip(&self) -> bool {
        self.status == Status::Skipped && self.kind.is_some_and(Kind::is_benign_skip)
    }
}

/// A path as JSON: itself when it is UTF-8, else with U+FFFD for the bytes that are
/// not (serde refuses such paths, which left an empty report line).
fn lossy_path<S: serde::Serializer>(p: &std::path::Path, s: S) -> Result<S::Ok, S::Error> {
    s.serialize_str(&p.to_string_lossy())
}

fn lossy_opt_path<S: serde::Serializer>(p: &Option<PathBuf>, s: S) -> Result<S::Ok, S::Error> {
    match p {
        Some(p) => lossy_path(p, s),
        None => s.serialize_none(),
    }
}

/// The bytes of a path that is not UTF-8, in hex; None for a UTF-8 path.
pub fn hex_if_not_utf8(p: &std::path::Path) -> Option<String> {
    if p.to_str().is_some() {
        return None;
    }
    Some(
        p.as_os_str()
            .as_encoded_bytes()
            .iter()
            .map(|b| format!("{b:02x}"))
            .collect(),
    )
}

#[derive(Debug, Default, Serialize)]
pub struct Summary {
    pub files_seen: u64,
    pub written: u64,
    pub skipped: u64,
    pub skipped_not_dicom: u64,
    /// Finished by an earlier run (ledger) and not redone.
    pub skipped_unchanged: u64,
    /// Byte-identical to the output another input with the same name got.
    pub skipped_duplicate: u64,
    pub failed: u64,
    /// Failed without being attempted because the output device filled up (part
    /// of `failed`); a later run with space left does them.
    pub not_attempted: u64,
    pub bytes_in: u64,
    pub bytes_out: u64,
    pub seconds: f64,
    pub files_per_second: f64,
    pub counts: Counts,
    pub profile: String,
    pub options: Vec<String>,
    pub profile_digest: String,
    pub key_fingerprint: String,
    pub key_ephemeral: bool,
    pub dry_run: bool,
    pub private_creators_dropped: std::collections::BTreeSet<String>,
    pub crosswalk_entries: u64,
    /// Buckets (output or input prefixes) that answered an anonymous request: anyone
    /// could read them.
    pub public_readable: Vec<String>,
    /// Failed and (not benign) skipped inputs by kind: `quarantined`, `malformed`...
    pub failed_by_kind: BTreeMap<String, u64>,
    pub skipped_by_kind: BTreeMap<String, u64>,
    /// Quarantined inputs by the profile's `quarantine:` rule that refused them.
    pub quarantined_by_rule: BTreeMap<String, u64>,
    /// Written inputs by Modality and by SOP Class UID.
    pub written_by_modality: BTreeMap<String, u64>,
    pub written_by_sop_class: BTreeMap<String, u64>,
    /// Stopped by SIGINT/SIGTERM before every input was taken.
    pub interrupted: bool,
    /// The dicom-deid version that wrote the report.
    pub tool_version: String,
}

/// How much the run says on stderr while it works.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default)]
pub enum Verbosity {
    /// The final summary line and fatal errors only.
    Quiet,
    /// Progress (on a terminal), a line per failed or skipped input, the summary.
    #[default]
    Normal,
    /// Also a line per written input.
    Verbose,
}

/// Consumes outcomes on one thread: the only writer of the report file and of
/// stderr during the run.
pub struct Reporter {
    out: Option<Box<dyn Write + Send>>,
    summary: Summary,
    started: Instant,
    progress: Progress,
    verbosity: Verbosity,
    ledger: Option<crate::ledger::LedgerWriter>,
    out_dir: PathBuf,
    quarantine: Option<std::fs::File>,
    /// The first error writing the report file, and the manifest.
    report_error: Option<std::io::Error>,
    manifest_error: Option<std::io::Error>,
}

/// Bookkeeping files that could not be written in full during a run. Outputs are
/// unaffected; the run says so and exits 1.
#[derive(Debug, Default)]
pub struct WriteFailures {
    pub report: Option<std::io::Error>,
    pub manifest: Option<std::io::Error>,
}

impl Reporter {
    pub fn new(out: Option<Box<dyn Write + Send>>, summary: Summary) -> Self {
        Reporter {
            out,
            summary,
            started: Instant::now(),
            progress: Progress::hidden(),
            verbosity: Verbosity::Normal,
            ledger: None,
            out_dir: PathBuf::new(),
            quarantine: None,
            report_error: None,
            manifest_error: None,
        }
    }

    pub fn with_ledger(mut self, w: Option<crate::ledger::LedgerWriter>, out_dir: PathBuf) -> Self {
        self.ledger = w;
        self.out_dir = out_dir;
        self
    }

    /// What goes to stderr while the run works: a progress bar (or none), and lines
    /// per input as `verbosity` says.
    pub fn with_display(mut self, progress: Progress, verbosity: Verbosity) -> Self {
        self.progress = progress;
        self.verbosity = verbosity;
        self
    }

    /// The quarantine manifest: one JSON line per failed input.
    pub fn with_quarantine(mut self, manifest: Option<std::fs::File>) -> Self {
        self.quarantine = manifest;
        self
    }

    /// Counts the pairs the crosswalk writer added (the summary says how many).
    pub fn crosswalk_entries(&mut self, n: u64) {
        self.summary.crosswalk_entries = n;
    }

    /// Lists a failed input in the quarantine manifest.
    fn quarantine(&mut self, o: &FileOutcome) {
        let Some(manifest) = self.quarantine.as_mut() else {
            return;
        };
        #[derive(Serialize)]
        struct Line<'a> {
            input: String,
            #[serde(skip_serializing_if = "Option::is_none")]
            input_hex: Option<&'a str>,
            kind: Option<Kind>,
            reason: Option<&'a str>,
            #[serde(serialize_with = "lossy_opt_path")]
            copy: Option<PathBuf>,
        }
        let line = serde_json::to_string(&Line {
            input: o.input.to_string_lossy().into_owned(),
            input_hex: o.input_hex.as_deref(),
            kind: o.kind,
            reason: o.reason.as_deref(),
            copy: o.quarantine_copy.clone(),
        })
        .unwrap_or_default();
        if let Err(e) = writeln!(manifest, "{line}") {
            self.manifest_error.get_or_insert(e);
        }
    }

    pub fn record(&mut self, mut o: FileOutcome) {
        o.input_hex = hex_if_not_utf8(&o.input);
        o.output_hex = o.output.as_deref().and_then(hex_if_not_utf8);
        if let (Status::Ok, Some(record), Some(w)) = (o.status, &o.ledger, self.ledger.as_mut())
            && let Err(e) = w.append(record)
        {
            // The ledger only saves work on the next run: without it, that run redoes
            // these files. Not a reason to fail this one (a full output device is
            // reported through the files that could not be written).
            self.progress.println(&format!(
                "dicom-deid: warning: cannot append to the run ledger ({e}); \
                 files finished from here on will be redone by the next run"
            ));
            self.ledger = None;
        }
        if o.status == Status::Failed {
            self.quarantine(&o);
        }
        let s = &mut self.summary;
        s.private_creators_dropped
            .extend(o.private_creators_dropped.iter().cloned());
        s.files_seen += 1;
        s.bytes_in += o.bytes_in;
        s.bytes_out += o.bytes_out;
        s.counts.add(&o.counts);
        match o.status {
            Status::Ok => {
                s.written += 1;
                if let Some(m) = &o.modality {
                    *s.written_by_modality.entry(m.clone()).or_default() += 1;
                }
                if let Some(c) = &o.sop_class {
                    *s.written_by_sop_class.entry(c.clone()).or_default() += 1;
                }
            }
            Status::Skipped => {
                s.skipped += 1;
                if !o.is_benign_skip() || o.kind == Some(Kind::Duplicate) {
                    let kind = o.kind.map_or("other", Kind::as_str);
                    *s.skipped_by_kind.entry(kind.into()).or_default() += 1;
                }
                match o.kind {
                    Some(Kind::NotDicom) => s.skipped_not_dicom += 1,
                    Some(Kind::Unchanged) => s.skipped_unchanged += 1,
                    Some(Kind::Duplicate) => s.skipped_duplicate += 1,
                    _ => {}
                }
            }
            Status::Failed => {
                s.failed += 1;
                let kind = o.kind.map_or("other", Kind::as_str);
                *s.failed_by_kind.entry(kind.into()).or_default() += 1;
                if let Some(rule) = o.quarantine_rule {
                    *s.quarantined_by_rule.entry(rule.into()).or_default() += 1;
                }
            }
        }
        let not_attempted = o.kind == Some(Kind::Aborted);
        if not_attempted {
            // One line at the end says how many; one per file would bury the cause.
            s.not_attempted += 1;
        }
        let notable =
            o.status == Status::Failed || (o.status == Status::Skipped && !o.is_benign_skip());
        if !not_attempted && notable && self.verbosity != Verbosity::Quiet {
            self.progress.println(&format!(
                "dicom-deid: {}: {}: {}",
                o.input.display(),
                if o.status == Status::Failed {
                    "failed"
                } else {
                    "skipped"
                },
                o.reason.as_deref().unwrap_or("")
            ));
        } else if self.verbosity == Verbosity::Verbose && !notable {
            let line = match (o.status, &o.output) {
                (Status::Ok, Some(out)) => format!(
                    "dicom-deid: {}: {} {}",
                    o.input.display(),
                    if self.summary.dry_run {
                        "would write"
                    } else {
                        "written"
                    },
                    out.display()
                ),
                _ => format!(
                    "dicom-deid: {}: skipped: {}",
                    o.input.display(),
                    o.reason.as_deref().unwrap_or("")
                ),
            };
            self.progress.println(&line);
        }
        if let Some(w) = self.out.as_mut() {
            let line = serde_json::to_string(&o).unwrap_or_default();
            if let Err(e) = writeln!(w, "{line}") {
                self.report_error.get_or_insert(e);
            }
        }
        self.progress.update(&self.summary);
    }

    /// Marks the run as stopped by a signal (the summary line says so).
    pub fn interrupted(&mut self) {
        self.summary.interrupted = true;
    }

    pub fn finish(mut self) -> (Summary, WriteFailures) {
        self.progress.finish();
        let secs = self.started.elapsed().as_secs_f64();
        self.summary.seconds = secs;
        self.summary.files_per_second = if secs > 0.0 {
            self.summary.files_seen as f64 / secs
        } else {
            0.0
        };
        if let Some(w) = self.out.as_mut() {
            #[derive(Serialize)]
            struct Line<'a> {
                summary: &'a Summary,
            }
            let line = serde_json::to_string(&Line {
                summary: &self.summary,
            })
            .unwrap_or_default();
            if let Err(e) = writeln!(w, "{line}").and_then(|()| w.flush()) {
                self.report_error.get_or_insert(e);
            }
        }
        if let Some(m) = self.quarantine.as_mut()
            && let Err(e) = m.flush()
        {
            self.manifest_error.get_or_insert(e);
        }
        (
            self.summary,
            WriteFailures {
                report: self.report_error,
                manifest: self.manifest_error,
            },
        )
    }
}
