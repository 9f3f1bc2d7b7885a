//! The gateway's senders as a sink for `run`: `run DIR --out dimse://AE@host:port`
//! or `--out dicomweb+http(s)://host/path` sends each de-identified object instead
//! of writing it, with the same report, ledger and resume. An object is encoded to
//! a file in the run's state directory (never held whole in memory), sent on
//! commit, and counted written only when the destination confirmed it. Resume is
//! keyed by what the destination confirmed: a marker per output name under
//! `STATE/sent/`, written after the success response.

use super::dest::Destination;
use super::scu::{Peer, Sent, send_batch};
use super::stow::{Stow, instance_of};
use crate::io::encode::Part10;
use crate::store::fs::FsSink;
use crate::store::{Sink, Staged, StoreError};
use std::path::{Path, PathBuf};
use std::sync::Arc;
use std::time::Duration;

pub struct NetSink {
    dest: Destination,
    /// Encoded objects wait here for their commit (`STATE/outgoing/`).
    outgoing: FsSink,
    outgoing_dir: PathBuf,
    sent_dir: PathBuf,
    shared: Arc<Shared>,
}

struct Shared {
    peer: Option<Peer>,
    stow: Option<Stow>,
}

impl NetSink {
    /// `state`: the run's state directory; `run_id` marks its temporaries. A
    /// `dimse+tls://` destination is checked against `tls_ca`, and is presented
    /// `tls_client` (certificate, key) when it asks for a client certificate.
    pub fn new(
        dest: Destination,
        state: &Path,
        run_id: &str,
        tls_ca: Option<&Path>,
        tls_client: Option<&(PathBuf, PathBuf)>,
    ) -> Result<NetSink, String> {
        let timeout = Duration::from_secs(60);
        let (peer, stow) = match &dest {
            Destination::Dimse {
                ae,
                host,
                port,
                tls,
            } => {
                let tls = match (tls, tls_ca) {
                    (false, _) => None,
                    (true, Some(ca)) => {
                        Some(super::tls_client(ca, tls_client).map_err(|e| e.to_string())?)
                    }
                    (true, None) => {
                        return Err(
                            "dimse+tls:// needs --tls-ca (the certificates to trust)".into()
                        );
                    }
                };
                let peer = Peer {
                    calling_ae: "DICOM-DEID".into(),
                    called_ae: ae.clone(),
                    host: host.clone(),
                    port: *port,
                    timeout,
                    tls,
                };
                (Some(peer), None)
            }
            Destination::Stow { base } => (None, Some(Stow::new(base, timeout))),
            other => return Err(format!("{other} is not a network destination")),
        };
        let outgoing_dir = state.join("outgoing");
        let sent_dir = state.join("sent");
        for d in [&outgoing_dir, &sent_dir] {
            std::fs::create_dir_all(d).map_err(|e| format!("{}: {e}", d.display()))?;
        }
        Ok(NetSink {
            dest,
            outgoing: FsSink::new(outgoing_dir.clone(), run_id),
            outgoing_dir,
            sent_dir,
            shared: Arc::new(Shared { peer, stow }),
        })
    }

    fn marker(&self, name: &Path) -> PathBuf {
        self.sent_dir.join(name)
    }
}

impl Sink for NetSink {
    fn stage(&self, name: &Path, object: Part10) -> Result<Box<dyn Staged>, StoreError> {
        let inner = self.outgoing.stage(name, object)?;
        Ok(Box::new(NetStaged {
            inner: Some(inner),
            file: self.outgoing_dir.join(name),
            marker: self.marker(name),
            shared: self.shared.clone(),
        }))
    }

    fn locate(&self, name: &Path) -> PathBuf {
        PathBuf::from(format!("{}/{}", self.dest, name.display()))
    }

    fn stored_size(&self, name: &Path) -> Option<u64> {
        std::fs::read_to_string(self.marker(name))
            .ok()?
            .trim()
            .parse()
            .ok()
    }

    fn commit_threads(&self) -> usize {
        4
    }
}

struct NetStaged {
    inner: Option<Box<dyn Staged>>,
    file: PathBuf,
    marker: PathBuf,
    shared: Arc<Shared>,
}

impl Staged for NetStaged {
    fn bytes(&self) -> u64 {
        self.inner.as_ref().map_or(0, |s| s.bytes())
    }

    fn commit(mut self: Box<Self>) -> Result<u64, StoreError> {
        let inner = self.inner.take().expect("committed once");
        let bytes = inner.commit()?;
        let sent = match (&self.shared.peer, &self.shared.stow) {
            (Some(peer), _) => {
                let mut result = Sent::Transient("no response".into());
                send_batch(peer, std::slice::from_ref(&self.file), |_, s| result = s);
                result
            }
            (None, Some(stow)) => match instance_of(&self.file) {
                Ok(instance) => stow.send(&self.file, &instance),
                Err(why) => Sent::Refused(why),
            },
            (None, None) => Sent::Refused("no sender".into()),
        };
        let _ = std::fs::remove_file(&self.file);
        match sent {
            Sent::Stored => {
                if let Some(dir) = self.marker.parent() {
                    let _ = std::fs::create_dir_all(dir);
                }
                let _ = std::fs::write(&self.marker, bytes.to_string());
                Ok(bytes)
            }
            Sent::Refused(why) => Err(StoreError::Write(format!(
                "the destination refused it: {why}"
            ))),
            Sent::Transient(why) => Err(StoreError::Write(format!("not delivered: {why}"))),
        }
    }

    fn same_as_stored(&self) -> bool {
        // A network destination cannot be read back here.
        false
    }
}
