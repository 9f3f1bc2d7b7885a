//! One association, on its own thread: C-ECHO, and C-STORE streamed from P-DATA to
//! a spool file (never the whole object in memory), synced, handed to the intake,
//! and answered with the intake's status. A peer that goes quiet past the idle
//! timeout, aborts or disconnects mid-object loses that object: its partial spool
//! file is removed and nothing was acknowledged.

use super::dimse::{self, Command, status};
use super::intake::{Intake, Outcome};
use crate::io::error::is_full;
use dicom_object::meta::FileMetaTableBuilder;
use dicom_ul::ServerAssociation;
use dicom_ul::pdu::{PDataValue, PDataValueType, Pdu, PresentationContextResultReason};
use std::fs::{File, OpenOptions};
use std::io::{BufWriter, Write};
use std::net::TcpStream;
use std::path::{Path, PathBuf};
use std::sync::atomic::{AtomicBool, AtomicU64, Ordering};
use std::time::{Duration, Instant};

/// Counts for the association's log line (no attribute values).
#[derive(Default)]
pub struct Tally {
    pub echoes: u64,
    pub queued: u64,
    pub quarantined: u64,
    pub failed: u64,
}

/// An object being received.
struct Receiving {
    rq: Command,
    ctx: u8,
    path: PathBuf,
    out: BufWriter<File>,
    /// The first write error (the rest of the object is read and dropped, then
    /// answered with the error's status).
    error: Option<std::io::Error>,
}

/// Removes the partial spool file of an object that never completed.
impl Drop for Receiving {
    fn drop(&mut self) {
        let _ = std::fs::remove_file(&self.path);
    }
}

/// The TCP socket under an association's stream, plain or TLS: the idle poll sets
/// its read timeout.
pub trait Socket: std::io::Read + std::io::Write + dicom_ul::association::CloseSocket {
    fn tcp(&self) -> &TcpStream;
}

impl Socket for TcpStream {
    fn tcp(&self) -> &TcpStream {
        self
    }
}

impl Socket for dicom_ul::association::server::TlsStream {
    fn tcp(&self) -> &TcpStream {
        &self.sock
    }
}

pub struct Session<'a> {
    pub intake: &'a Intake<'a>,
    pub incoming: &'a Path,
    pub serial: &'a AtomicU64,
    pub idle: Duration,
    /// Set at shutdown: an idle association is closed, one mid-object finishes it.
    pub stop: &'a AtomicBool,
}

/// How often a blocked read wakes to look at the idle time and the stop flag.
const POLL: Duration = Duration::from_millis(500);

/// Whether an association error is a read timeout (the poll), found in its chain.
fn is_timeout(e: &(dyn std::error::Error + 'static)) -> bool {
    let mut cur: Option<&(dyn std::error::Error + 'static)> = Some(e);
    while let Some(err) = cur {
        if let Some(io) = err.downcast_ref::<std::io::Error>() {
            return matches!(
                io.kind(),
                std::io::ErrorKind::WouldBlock | std::io::ErrorKind::TimedOut
            );
        }
        cur = err.source();
    }
    false
}

impl Session<'_> {
    /// Serves an established association until release, abort or error.
    pub fn serve<S: Socket>(&self, mut assoc: ServerAssociation<S>, from: &str) -> Tally {
        let mut tally = Tally::default();
        let _ = assoc.inner_stream().tcp().set_read_timeout(Some(POLL));
        let mut last_heard = Instant::now();
        let contexts: Vec<(u8, String, String)> = assoc
            .presentation_contexts()
            .iter()
            .filter(|pc| pc.reason == PresentationContextResultReason::Acceptance)
            .map(|pc| {
                (
                    pc.id,
                    pc.abstract_syntax.trim_end_matches(['\0', ' ']).to_string(),
                    pc.transfer_syntax.trim_end_matches(['\0', ' ']).to_string(),
                )
            })
            .collect();
        let mut command = Vec::new();
        let mut current: Option<Receiving> = None;
        loop {
            let pdu = match assoc.receive() {
                Ok(p) => {
                    last_heard = Instant::now();
                    p
                }
                Err(e) if is_timeout(&e) => {
                    let idle = last_heard.elapsed() >= self.idle;
                    if idle || (current.is_none() && self.stop.load(Ordering::Relaxed)) {
                        if current.is_some() {
                            crate::say!(
                                "dicom-deid serve: `{from}` sent nothing for {} s mid-object; \
                                 aborted, partial object removed, not acknowledged",
                                self.idle.as_secs()
                            );
                        }
                        let _ = assoc.abort();
                        return tally;
                    }
                    continue;
                }
                Err(e) => {
                    if current.is_some() {
                        crate::say!(
                            "dicom-deid serve: `{from}` stopped mid-object ({e}); partial \
                             object removed, not acknowledged"
                        );
                    }
                    let _ = assoc.abort();
                    return tally;
                }
            };
            match pdu {
                Pdu::PData { data } => {
                    for v in data {
                        match v.value_type {
                            PDataValueType::Command => {
                                command.extend_from_slice(&v.data);
                                if command.len() > dimse::MAX_COMMAND_BYTES {
                                    crate::say!(
                                        "dicom-deid serve: `{from}`: oversized command; aborting"
                                    );
                                    let _ = assoc.abort();
                                    return tally;
                                }
                                if !v.is_last {
                                    continue;
                                }
                                let bytes = std::mem::take(&mut command);
                                let rq = match Command::parse(&bytes) {
                                    Ok(c) => c,
                                    Err(e) => {
                                        crate::say!("dicom-deid serve: `{from}`: {e}; aborting");
                                        let _ = assoc.abort();
                                        return tally;
                                    }
                                };
                                match rq.field() {
                                    Ok(dimse::C_ECHO_RQ) => {
                                        tally.echoes += 1;
                                        let rsp = dimse::echo_rsp(
                                            rq.message_id(),
                                            &rq.sop_class()
                                                .unwrap_or_else(|| dimse::VERIFICATION.into()),
                                        );
                                        if send_command(&mut assoc, v.presentation_context_id, rsp)
                                            .is_err()
                                        {
                                            return tally;
                                        }
                                    }
                                    Ok(dimse::C_STORE_RQ) if rq.has_data_set() => {
                                        let ts = contexts
                                            .iter()
                                            .find(|(id, _, _)| *id == v.presentation_context_id)
                                            .map(|(_, _, ts)| ts.clone());
                                        let Some(ts) = ts else {
                                            crate::say!(
                                                "dicom-deid serve: `{from}`: C-STORE on an unaccepted presentation context; aborting"
                                            );
                                            let _ = assoc.abort();
                                            return tally;
                                        };
                                        current = Some(self.open_spool(
                                            rq,
                                            v.presentation_context_id,
                                            &ts,
                                        ));
                                    }
                                    Ok(other) => {
                                        crate::say!(
                                            "dicom-deid serve: `{from}`: unsupported command {other:#06x}; aborting"
                                        );
                                        let _ = assoc.abort();
                                        return tally;
                                    }
                                    Err(e) => {
                                        crate::say!("dicom-deid serve: `{from}`: {e}; aborting");
                                        let _ = assoc.abort();
                                        return tally;
                                    }
                                }
                            }
                            PDataValueType::Data => {
                                let Some(r) = current.as_mut() else {
                                    crate::say!(
                                        "dicom-deid serve: `{from}`: data without a command; aborting"
                                    );
                                    let _ = assoc.abort();
                                    return tally;
                                };
                                if r.error.is_none()
                                    && let Err(e) = r.out.write_all(&v.data)
                                {
                                    r.error = Some(e);
                                }
                                if v.is_last {
                                    let Some(r) = current.take() else { continue };
                                    let (st, comment, ctx, rq) = self.finish(r, from, &mut tally);
                                    let rsp = dimse::store_rsp(&rq, st, comment.as_deref());
                                    if send_command(&mut assoc, ctx, rsp).is_err() {
                                        return tally;
                                    }
                                }
                            }
                        }
                    }
                }
                Pdu::ReleaseRQ => {
                    let _ = assoc.send(&Pdu::ReleaseRP);
                    return tally;
                }
                Pdu::AbortRQ { .. } => {
                    if current.is_some() {
                        crate::say!(
                            "dicom-deid serve: `{from}` aborted mid-object; partial object removed"
                        );
                    }
                    return tally;
                }
                other => {
                    crate::say!(
                        "dicom-deid serve: `{from}`: unexpected {}; aborting",
                        other.short_description()
                    );
                    let _ = assoc.abort();
                    return tally;
                }
            }
        }
    }

    /// A spool file for the object the command announces, starting with a file meta
    /// group built from the command and the context, so the spool file is Part 10.
    fn open_spool(&self, rq: Command, ctx: u8, ts: &str) -> Receiving {
        let n = self.serial.fetch_add(1, Ordering::Relaxed);
        let path = self
            .incoming
            .join(format!("{}-{n}.part", std::process::id()));
        let opened = OpenOptions::new()
            .write(true)
            .create_new(true)
            .open(&path)
            .and_then(|f| {
                let mut out = BufWriter::with_capacity(256 * 1024, f);
                let meta = FileMetaTableBuilder::new()
                    .media_storage_sop_class_uid(rq.sop_class().unwrap_or_default())
                    .media_storage_sop_instance_uid(rq.sop_instance().unwrap_or_default())
                    .transfer_syntax(ts)
                    .implementation_class_uid(dicom_ul::IMPLEMENTATION_CLASS_UID)
                    .build()
                    .map_err(std::io::Error::other)?;
                // Encoded in memory first (a few hundred bytes), so that a full disk
                // reaches us as the io error it is, not inside a dicom-rs error.
                let mut head = vec![0u8; 128];
                head.extend_from_slice(b"DICM");
                meta.write(&mut head).map_err(std::io::Error::other)?;
                out.write_all(&head)?;
                Ok(out)
            });
        match opened {
            Ok(out) => Receiving {
                rq,
                ctx,
                path,
                out,
                error: None,
            },
            Err(e) => {
                // The object is still read off the wire, into nowhere, and answered.
                let sink = OpenOptions::new()
                    .write(true)
                    .open("/dev/null")
                    .expect("/dev/null opens");
                Receiving {
                    rq,
                    ctx,
                    path,
                    out: BufWriter::new(sink),
                    error: Some(e),
                }
            }
        }
    }

    /// Hands the spool file to the intake; returns the answer. The spool file itself
    /// is not synced: what is acknowledged is the de-identified object, which the
    /// intake syncs (file and folder) into every queue before answering.
    fn finish(
        &self,
        mut r: Receiving,
        from: &str,
        tally: &mut Tally,
    ) -> (u16, Option<String>, u8, Command) {
        if r.error.is_none()
            && let Err(e) = r.out.flush()
        {
            r.error = Some(e);
        }
        let rq = std::mem::take(&mut r.rq);
        let ctx = r.ctx;
        if let Some(e) = r.error.take() {
            tally.failed += 1;
            return if is_full(&e) {
                crate::say!("dicom-deid serve: the spool is full ({e}); answering A700");
                (
                    status::OUT_OF_RESOURCES,
                    Some("out of resources: the gateway's spool is full".into()),
                    ctx,
                    rq,
                )
            } else {
                crate::say!("dicom-deid serve: cannot spool an object from `{from}`: {e}");
                (
                    status::PROCESSING_FAILURE,
                    Some("processing failure: cannot spool".into()),
                    ctx,
                    rq,
                )
            };
        }
        let v = self.intake.take(&r.path, from);
        match v.outcome {
            Outcome::Queued => tally.queued += 1,
            Outcome::Quarantined => tally.quarantined += 1,
            Outcome::Failed => tally.failed += 1,
        }
        (v.status, v.comment, ctx, rq)
    }
}

fn send_command<S: Socket>(
    assoc: &mut ServerAssociation<S>,
    ctx: u8,
    data: Vec<u8>,
) -> Result<(), dicom_ul::association::Error> {
    assoc.send(&Pdu::PData {
        data: vec![PDataValue {
            presentation_context_id: ctx,
            value_type: PDataValueType::Command,
            is_last: true,
            data,
        }],
    })
}
