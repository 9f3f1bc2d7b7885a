//! C-STORE SCU: sends queued Part 10 files to a DICOM node over one association per
//! batch. Presentation contexts come from what is queued (SOP class, transfer
//! syntax), with an Explicit/Implicit VR Little Endian context per class as a
//! fallback, used only when changing the syntax needs no pixel decoding.

use super::dimse::{self, Command, status};
use dicom_object::FileMetaTable;
use dicom_ul::ClientAssociationOptions;
use dicom_ul::pdu::{PDataValue, PDataValueType, Pdu, PresentationContextResultReason};
use std::collections::BTreeMap;
use std::fs::File;
use std::io::{BufReader, Read, Seek, SeekFrom};
use std::path::{Path, PathBuf};
use std::time::Duration;

const EXPLICIT_LE: &str = "1.2.840.10008.1.2.1";
const IMPLICIT_LE: &str = "1.2.840.10008.1.2";
const EXPLICIT_BE: &str = "1.2.840.10008.1.2.2";
const DEFLATED_LE: &str = "1.2.840.10008.1.2.1.99";

/// Syntaxes whose data set can be rewritten in another uncompressed syntax without
/// decoding pixels (native pixel data; a deflated data set is only inflated).
fn native(ts: &str) -> bool {
    matches!(ts, EXPLICIT_LE | IMPLICIT_LE | EXPLICIT_BE | DEFLATED_LE)
}

/// The stream under a client association, plain or TLS.
pub trait Stream: Read + std::io::Write + dicom_ul::association::CloseSocket {}
impl<S: Read + std::io::Write + dicom_ul::association::CloseSocket> Stream for S {}

type Client<S> = dicom_ul::ClientAssociation<S>;

/// A DICOM node to send to.
#[derive(Debug, Clone)]
pub struct Peer {
    pub calling_ae: String,
    pub called_ae: String,
    pub host: String,
    pub port: u16,
    pub timeout: Duration,
    /// DICOM TLS towards the peer, trusting these roots.
    pub tls: Option<std::sync::Arc<rustls::ClientConfig>>,
}

/// What became of one object.
#[derive(Debug)]
pub enum Sent {
    /// The peer stored it (or already had it).
    Stored,
    /// It will not be stored however often it is sent: the reason says why.
    Refused(String),
    /// Try again later.
    Transient(String),
}

/// What the sender needs of a queued file, from its meta group.
struct Queued {
    path: PathBuf,
    class: String,
    instance: String,
    ts: String,
    /// Where the data set starts.
    offset: u64,
}

fn trim(s: &str) -> String {
    s.trim_end_matches(['\0', ' ']).to_string()
}

fn read_meta(path: &Path) -> Result<Queued, String> {
    let mut f = BufReader::new(File::open(path).map_err(|e| format!("cannot open: {e}"))?);
    f.seek(SeekFrom::Start(128))
        .map_err(|e| format!("cannot read: {e}"))?;
    let meta = FileMetaTable::from_reader(&mut f)
        .map_err(|e| format!("queued file has no readable meta group: {e}"))?;
    let offset = f
        .stream_position()
        .map_err(|e| format!("cannot read: {e}"))?;
    Ok(Queued {
        path: path.to_path_buf(),
        class: trim(meta.media_storage_sop_class_uid()),
        instance: trim(meta.media_storage_sop_instance_uid()),
        ts: trim(meta.transfer_syntax()),
        offset,
    })
}

/// At most this many presentation contexts are proposed per association (the
/// protocol allows 128: odd ids 1 to 255).
const MAX_CONTEXTS: usize = 120;

/// Sends `entries` (in order) over one association; `done` is told the result of
/// each as it is known. Entries not reported (the association failed first) are
/// left for the next attempt.
pub fn send_batch(peer: &Peer, entries: &[PathBuf], mut done: impl FnMut(&Path, Sent)) {
    let mut queued = Vec::new();
    // (class, syntax) -> proposed; class -> fallback proposed.
    let mut contexts: BTreeMap<(String, String), ()> = BTreeMap::new();
    for e in entries {
        match read_meta(e) {
            Ok(q) => {
                let new = !contexts.contains_key(&(q.class.clone(), q.ts.clone())) as usize
                    + !contexts.contains_key(&(q.class.clone(), String::new())) as usize;
                if contexts.len() + new > MAX_CONTEXTS {
                    break; // the rest go in the next batch
                }
                contexts.insert((q.class.clone(), q.ts.clone()), ());
                contexts.insert((q.class.clone(), String::new()), ());
                queued.push(q);
            }
            Err(why) => done(e, Sent::Refused(why)),
        }
    }
    if queued.is_empty() {
        return;
    }
    let mut opts = ClientAssociationOptions::new()
        .calling_ae_title(peer.calling_ae.clone())
        .called_ae_title(peer.called_ae.clone())
        .max_pdu_length(64 * 1024)
        .read_timeout(peer.timeout)
        .write_timeout(peer.timeout)
        .connection_timeout(peer.timeout);
    for (class, ts) in contexts.keys() {
        let syntaxes = if ts.is_empty() {
            vec![EXPLICIT_LE.to_string(), IMPLICIT_LE.to_string()]
        } else {
            vec![ts.clone()]
        };
        opts = opts.with_presentation_context(class.clone(), syntaxes);
    }
    let addr = format!("{}:{}", peer.host, peer.port);
    let target = format!("{}@{addr}", peer.called_ae);
    match &peer.tls {
        Some(config) => {
            let opts = opts.tls_config(config.clone()).server_name(&peer.host);
            match opts.establish_with_tls(&target) {
                Ok(a) => run_batch(a, &queued, &mut done),
                Err(e) => not_associated(e, &addr, &queued, &mut done),
            }
        }
        None => match opts.establish_with(&target) {
            Ok(a) => run_batch(a, &queued, &mut done),
            Err(e) => not_associated(e, &addr, &queued, &mut done),
        },
    }
}

/// Every queued object's result when no association could be made.
fn not_associated(
    e: dicom_ul::association::Error,
    addr: &str,
    queued: &[Queued],
    done: &mut impl FnMut(&Path, Sent),
) {
    match e {
        dicom_ul::association::Error::NoAcceptedPresentationContexts { .. } => {
            for q in queued {
                done(
                    &q.path,
                    Sent::Refused(format!(
                        "the destination refused SOP class {} (no presentation context \
                         accepted)",
                        q.class
                    )),
                );
            }
        }
        e => {
            let why = format!("cannot associate with {addr}: {e}");
            for q in queued {
                done(&q.path, Sent::Transient(why.clone()));
            }
        }
    }
}

/// Sends the batch over an established association, then releases it.
fn run_batch<S: Stream>(
    mut assoc: Client<S>,
    queued: &[Queued],
    done: &mut impl FnMut(&Path, Sent),
) {
    // (class, syntax) -> context id, for the accepted contexts.
    let accepted: Vec<(String, String, u8)> = assoc
        .presentation_contexts()
        .iter()
        .filter(|pc| pc.reason == PresentationContextResultReason::Acceptance)
        .map(|pc| (trim(&pc.abstract_syntax), trim(&pc.transfer_syntax), pc.id))
        .collect();
    let mut id: u16 = 1;
    let mut broken: Option<String> = None;
    for q in queued {
        if let Some(why) = &broken {
            done(&q.path, Sent::Transient(why.clone()));
            continue;
        }
        let exact = accepted
            .iter()
            .find(|(c, t, _)| *c == q.class && *t == q.ts)
            .map(|(_, _, id)| *id);
        let fallback = accepted
            .iter()
            .find(|(c, t, _)| *c == q.class && (t == EXPLICIT_LE || t == IMPLICIT_LE));
        let result = match (exact, fallback) {
            (Some(ctx), _) => send_one(&mut assoc, ctx, id, q, None),
            (None, Some((_, t, ctx))) if native(&q.ts) => {
                send_one(&mut assoc, *ctx, id, q, Some(t))
            }
            (None, Some((_, t, _))) => Ok(Sent::Refused(format!(
                "the destination accepts SOP class {} only in transfer syntax {t}; \
                 converting from {} would need pixel decoding",
                q.class, q.ts
            ))),
            (None, None) => Ok(Sent::Refused(format!(
                "the destination refused SOP class {} (no presentation context accepted)",
                q.class
            ))),
        };
        id = id.wrapping_add(1).max(1);
        match result {
            Ok(sent) => done(&q.path, sent),
            Err(why) => {
                done(&q.path, Sent::Transient(why.clone()));
                broken = Some(why);
            }
        }
    }
    if broken.is_some() {
        let _ = assoc.abort();
    } else {
        let _ = assoc.release();
    }
}

/// Sends one object; Err when the association is no longer usable.
fn send_one<S: Stream>(
    assoc: &mut Client<S>,
    ctx: u8,
    id: u16,
    q: &Queued,
    convert_to: Option<&str>,
) -> Result<Sent, String> {
    // Converted before anything is sent: a file we cannot convert is refused, and
    // the association stays usable.
    let converted = match convert_to {
        Some(ts) => match convert(&q.path, ts) {
            Ok(bytes) => Some(bytes),
            Err(why) => return Ok(Sent::Refused(why)),
        },
        None => None,
    };
    let cmd = dimse::store_rq(id, &q.class, &q.instance);
    assoc
        .send(&Pdu::PData {
            data: vec![PDataValue {
                presentation_context_id: ctx,
                value_type: PDataValueType::Command,
                is_last: true,
                data: cmd,
            }],
        })
        .map_err(|e| format!("cannot send the command: {e}"))?;
    let sent = match &converted {
        Some(bytes) => send_data(assoc, ctx, &mut std::io::Cursor::new(bytes)),
        None => File::open(&q.path)
            .and_then(|mut f| {
                f.seek(SeekFrom::Start(q.offset))?;
                Ok(f)
            })
            .map_err(|e| e.to_string())
            .and_then(|mut f| send_data(assoc, ctx, &mut f)),
    };
    sent.map_err(|e| format!("cannot send the object: {e}"))?;
    let rsp = receive_command(assoc)?;
    let s = rsp.status().unwrap_or(0xFFFF);
    if status::is_stored(s) || s == status::DUPLICATE_SOP_INSTANCE {
        Ok(Sent::Stored)
    } else {
        let comment = rsp
            .error_comment()
            .filter(|c| !c.is_empty())
            .map(|c| format!(" ({c})"))
            .unwrap_or_default();
        let why = format!("the destination answered status {s:04X}{comment}");
        Ok(if status::is_transient(s) {
            Sent::Transient(why)
        } else {
            Sent::Refused(why)
        })
    }
}

/// Streams a data set as P-DATA PDUs no larger than the peer takes (and 256 KiB at
/// most), the last one flagged, reading one chunk ahead to know which is last.
/// (dicom-ul's PDataWriter fails with WriteZero when a write exactly fills its
/// buffer, which a large object hits sooner or later.)
fn send_data<S: Stream>(assoc: &mut Client<S>, ctx: u8, from: &mut dyn Read) -> Result<(), String> {
    // PDU variable part: 4 (item length) + 2 (context, control) + data.
    let max = assoc.acceptor_max_pdu_length();
    let max = if max == 0 {
        256 * 1024
    } else {
        max.min(256 * 1024)
    };
    let chunk = (max as usize).saturating_sub(6).max(1024);
    let fill = |from: &mut dyn Read| -> Result<Vec<u8>, String> {
        let mut buf = Vec::with_capacity(chunk);
        from.take(chunk as u64)
            .read_to_end(&mut buf)
            .map_err(|e| format!("cannot read the queued object: {e}"))?;
        Ok(buf)
    };
    let mut current = fill(from)?;
    loop {
        let next = fill(from)?;
        let is_last = next.is_empty();
        assoc
            .send(&Pdu::PData {
                data: vec![PDataValue {
                    presentation_context_id: ctx,
                    value_type: PDataValueType::Data,
                    is_last,
                    data: current,
                }],
            })
            .map_err(|e| e.to_string())?;
        if is_last {
            return Ok(());
        }
        current = next;
    }
}

/// Reads PDUs until a whole command set arrived.
fn receive_command<S: Stream>(assoc: &mut Client<S>) -> Result<Command, String> {
    let mut buf = Vec::new();
    loop {
        match assoc.receive() {
            Ok(Pdu::PData { data }) => {
                for v in data {
                    if v.value_type == PDataValueType::Command {
                        buf.extend_from_slice(&v.data);
                        if buf.len() > dimse::MAX_COMMAND_BYTES {
                            return Err("the response command is too large".into());
                        }
                        if v.is_last {
                            return Command::parse(&buf).map_err(|e| e.to_string());
                        }
                    }
                }
            }
            Ok(Pdu::AbortRQ { .. }) => return Err("the destination aborted the association".into()),
            Ok(other) => {
                return Err(format!(
                    "unexpected PDU from the destination: {}",
                    other.short_description()
                ));
            }
            Err(e) => return Err(format!("no response from the destination: {e}")),
        }
    }
}

/// The data set of a queued file re-encoded in `ts` (native pixel data only).
fn convert(path: &Path, ts: &str) -> Result<Vec<u8>, String> {
    use dicom_encoding::TransferSyntaxIndex;
    use dicom_transfer_syntax_registry::TransferSyntaxRegistry;
    let obj = dicom_object::OpenFileOptions::new()
        .open_file(path)
        .map_err(|e| format!("cannot re-read the queued object to convert it: {e}"))?;
    let target = TransferSyntaxRegistry
        .get(ts)
        .ok_or_else(|| format!("unknown transfer syntax {ts}"))?;
    let mut out = Vec::new();
    obj.write_dataset_with_ts(&mut out, target)
        .map_err(|e| format!("cannot convert the object to {ts}: {e}"))?;
    Ok(out)
}
