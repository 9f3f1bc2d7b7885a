//! What happens to one received object before the sender hears back: the same
//! pipeline as `run` (read, quarantine judgement, de-identify), then the result made
//! durable in every destination's queue. The C-STORE status tells the truth about
//! that: success only once every queue holds the de-identified object on disk.

use super::dest::{flatten, sync_dir};
use super::dimse::status;
use crate::deid::Key;
use crate::io::error::is_full;
use crate::io::layout::{Layout, output_name};
use crate::io::source::open_file;
use crate::outcome::Kind;
use crate::pipeline::{PipelineError, Plan, Processed, process};
use crate::store::Sink;
use crate::store::fs::FsSink;
use serde::Serialize;
use std::fs::File;
use std::io::Write;
use std::path::{Path, PathBuf};
use std::sync::Mutex;
use std::sync::atomic::{AtomicU64, Ordering};

pub struct Intake<'a> {
    pub plan: &'a Plan<'a>,
    pub key: &'a Key,
    /// De-identified objects are written here first, then linked into each queue.
    pub staging: FsSink,
    pub staging_dir: PathBuf,
    /// One queue folder per destination.
    pub queues: Vec<PathBuf>,
    /// The quarantine manifest (one JSON line per object not forwarded).
    pub manifest: Mutex<File>,
    /// Copy objects that fail into this folder (PHI: opt-in).
    pub quarantine_copy: Option<PathBuf>,
    /// Answer 0122 for objects the profile's quarantine stops, instead of success.
    pub refuse_quarantined: bool,
    pub counter: AtomicU64,
}

/// The answer to one C-STORE, and what happened, for the association's log.
pub struct Verdict {
    pub status: u16,
    /// Error Comment: a reason, never a value.
    pub comment: Option<String>,
    pub outcome: Outcome,
}

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Outcome {
    Queued,
    Quarantined,
    Failed,
}

#[derive(Serialize)]
struct ManifestLine<'a> {
    input: &'a str,
    kind: Kind,
    reason: &'a str,
    #[serde(skip_serializing_if = "Option::is_none")]
    copy: Option<String>,
}

impl Intake<'_> {
    /// Processes the spooled object at `spool` (received from `from`) and removes
    /// the spool file, whatever the outcome (a copy is kept when the quarantine
    /// policy asks for one).
    pub fn take(&self, spool: &Path, from: &str) -> Verdict {
        let v = self.take_inner(spool, from);
        let _ = std::fs::remove_file(spool);
        v
    }

    fn take_inner(&self, spool: &Path, from: &str) -> Verdict {
        let (input, stamp) = match open_file(spool) {
            Ok(x) => x,
            Err(e) => return self.failed(spool, from, Kind::Unreadable, &e.to_string()),
        };
        let d = match process(input, stamp, self.plan) {
            Ok(Processed::Deidentified(d)) => *d,
            Ok(Processed::NotDicom) => {
                return self.reject(spool, from, Kind::Malformed, "the data set does not parse");
            }
            Ok(Processed::Dicomdir) => {
                return self.reject(spool, from, Kind::Dicomdir, "a DICOMDIR is not stored");
            }
            Err(PipelineError::Read(e)) => {
                let kind = match e {
                    crate::io::error::ReadError::UnsupportedTs(_) => Kind::Unsupported,
                    _ => Kind::Malformed,
                };
                return self.reject(spool, from, kind, &e.to_string());
            }
            Err(PipelineError::Quarantined { reason: why, .. }) => {
                return self.quarantined(spool, from, &why);
            }
            Err(e @ PipelineError::Deid(_)) => {
                return self.failed(spool, from, Kind::Deid, &e.to_string());
            }
        };
        let n = self.counter.fetch_add(1, Ordering::Relaxed);
        let rel = output_name(Layout::Uid, Path::new(""), &d.object.dataset, || {
            // Stable for the same key and spool number, revealing nothing.
            let mac = self
                .key
                .mac(&[b"gateway-unsorted\0", &n.to_le_bytes(), from.as_bytes()]);
            crate::deid::key::hex(&mac[..16])
        });
        let name = flatten(&rel);
        match self.staging.put(Path::new(&name), d.object) {
            Ok(_) => {}
            Err(e) if e.is_full() => return self.full(&e.to_string()),
            // Compressed frames that do not decode show only as they are written:
            // quarantined like any refusal of the profile, nothing staged.
            Err(e @ crate::store::StoreError::Encode(crate::io::error::EncodeError::Pixels(_))) => {
                return self.quarantined(spool, from, &e.to_string());
            }
            Err(e) => return self.failed(spool, from, Kind::Write, &e.to_string()),
        }
        let staged = self.staging_dir.join(&name);
        let linked = self.link_into_queues(&staged, &name, n);
        let _ = std::fs::remove_file(&staged);
        match linked {
            Ok(()) => Verdict {
                status: status::SUCCESS,
                comment: None,
                outcome: Outcome::Queued,
            },
            Err(e) if is_full(&e) => self.full(&e.to_string()),
            Err(e) => self.failed(spool, from, Kind::Write, &format!("cannot queue: {e}")),
        }
    }

    /// Links the staged object into every queue (a temporary name, then a rename
    /// over any earlier copy of the same object), then syncs each queue folder.
    fn link_into_queues(&self, staged: &Path, name: &str, n: u64) -> std::io::Result<()> {
        for q in &self.queues {
            let tmp = q.join(format!(".link-{}-{n}", std::process::id()));
            let _ = std::fs::remove_file(&tmp);
            let r = std::fs::hard_link(staged, &tmp)
                .or_else(|_| std::fs::copy(staged, &tmp).and_then(|_| File::open(&tmp)?.sync_all()))
                .and_then(|()| std::fs::rename(&tmp, q.join(name)))
                .and_then(|()| sync_dir(q));
            if r.is_err() {
                let _ = std::fs::remove_file(&tmp);
            }
            r?;
        }
        Ok(())
    }

    /// Refused by the profile: recorded, and answered as `refuse_quarantined` says.
    fn quarantined(&self, spool: &Path, from: &str, why: &str) -> Verdict {
        self.record(spool, from, Kind::Quarantined, why);
        Verdict {
            status: if self.refuse_quarantined {
                status::REFUSED_SOP_CLASS
            } else {
                status::SUCCESS
            },
            comment: self
                .refuse_quarantined
                .then(|| "quarantined by the profile".into()),
            outcome: Outcome::Quarantined,
        }
    }

    fn full(&self, why: &str) -> Verdict {
        crate::say!("dicom-deid serve: the spool is full: {why}; answering A700");
        Verdict {
            status: status::OUT_OF_RESOURCES,
            comment: Some("out of resources: the gateway's spool is full".into()),
            outcome: Outcome::Failed,
        }
    }

    /// An object that does not parse: C000, and the quarantine manifest.
    fn reject(&self, spool: &Path, from: &str, kind: Kind, why: &str) -> Verdict {
        self.record(spool, from, kind, why);
        Verdict {
            status: status::CANNOT_UNDERSTAND,
            comment: Some("cannot understand: the object does not parse".into()),
            outcome: Outcome::Failed,
        }
    }

    fn failed(&self, spool: &Path, from: &str, kind: Kind, why: &str) -> Verdict {
        self.record(spool, from, kind, why);
        Verdict {
            status: status::PROCESSING_FAILURE,
            comment: Some(format!("processing failure: {}", kind.as_str())),
            outcome: Outcome::Failed,
        }
    }

    /// One line in the quarantine manifest, with the same fields as `run` writes,
    /// and a copy of the received object when the policy asks for one.
    fn record(&self, spool: &Path, from: &str, kind: Kind, why: &str) {
        let file_name = spool
            .file_name()
            .map(|n| n.to_string_lossy().into_owned())
            .unwrap_or_default();
        // The sender may be told success for a quarantined object: its copy is made
        // durable (temporary, sync, rename, folder sync) before the answer goes out,
        // and a copy cut short leaves nothing.
        let copy = self.quarantine_copy.as_ref().and_then(|dir| {
            std::fs::create_dir_all(dir).ok()?;
            let dest = dir.join(format!("{file_name}.dcm"));
            let tmp = dir.join(format!(".{file_name}.dcm.tmp"));
            let copied = std::fs::copy(spool, &tmp)
                .and_then(|_| File::open(&tmp)?.sync_all())
                .and_then(|()| std::fs::rename(&tmp, &dest))
                .and_then(|()| sync_dir(dir));
            if copied.is_err() {
                let _ = std::fs::remove_file(&tmp);
                return None;
            }
            Some(dest.display().to_string())
        });
        let input = format!("dimse://{from}/{file_name}");
        let line = serde_json::to_string(&ManifestLine {
            input: &input,
            kind,
            reason: why,
            copy,
        })
        .unwrap_or_default();
        if let Ok(mut m) = self.manifest.lock() {
            let _ = writeln!(m, "{line}");
            let _ = m.sync_data();
        }
        crate::say!(
            "dicom-deid serve: object from `{from}` not forwarded ({}): {why}",
            kind.as_str()
        );
    }
}
