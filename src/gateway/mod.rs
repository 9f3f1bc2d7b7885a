//! `dicom-deid serve`: a DICOM node that receives objects by C-STORE, de-identifies
//! them with the same pipeline as `run`, and forwards them to one or more
//! destinations through persistent per-destination queues.
//!
//! Spool layout (`--spool DIR`):
//! - `incoming/`: objects being received (removed when incomplete);
//! - `staging/`: de-identified objects being written, before they are queued;
//! - `queue/<dest-id>/`: what each destination has still to receive;
//! - `dead/<dest-id>/`: what it will not receive, each with `<name>.reason.txt`;
//! - `quarantine/manifest.jsonl`: objects not forwarded, as `run` lists them.

pub mod config;
pub mod dest;
pub mod dimse;
pub mod intake;
pub mod queue;
pub mod scp;
pub mod scu;
pub mod sink;
pub mod stow;

use crate::deid::{Engine, Key, Pseudonymizer};
use crate::error::{Error, ExitStatus};
use crate::pipeline::Plan;
use crate::store::fs::FsSink;
use dest::Destination;
use dicom_ul::ServerAssociationOptions;
use dicom_ul::association::server::AccessControl;
use dicom_ul::pdu::{
    AssociationRJ, AssociationRJResult, AssociationRJServiceProviderPresentationReason,
    AssociationRJServiceUserReason, AssociationRJSource, UserIdentity,
};
use std::collections::HashMap;
use std::net::{IpAddr, TcpListener, TcpStream};
use std::path::{Path, PathBuf};
use std::sync::Mutex;
use std::sync::atomic::{AtomicBool, AtomicU64, AtomicUsize, Ordering};
use std::time::Duration;

pub use queue::Retry;

pub struct ServeOptions {
    pub listen: String,
    pub ae_title: String,
    /// `AE` or `AE@IP`; empty lets any calling AE in.
    pub allow: Vec<String>,
    pub spool: PathBuf,
    pub forward: Vec<Forward>,
    pub profile: String,
    pub key_file: Option<PathBuf>,
    pub options: Vec<String>,
    pub quarantine: Option<PathBuf>,
    pub quarantine_copy: bool,
    pub refuse_quarantined: bool,
    pub max_associations: usize,
    pub max_per_ae: usize,
    /// ARTIM: how long a new connection may take to request an association.
    pub artim: Duration,
    /// How long an association may stay silent (mid-object or between objects).
    pub idle: Duration,
    pub retry: Retry,
    /// DICOM TLS on the listener: (certificate chain PEM, private key PEM).
    pub tls: Option<(PathBuf, PathBuf)>,
    /// Certificates (PEM) trusted for `dimse+tls://` destinations.
    pub tls_ca: Option<PathBuf>,
    /// Require a client certificate chaining to these (PEM) on the listener.
    pub tls_client_ca: Option<PathBuf>,
    /// (certificate chain PEM, private key PEM) presented to `dimse+tls://`
    /// destinations that ask for a client certificate.
    pub tls_client: Option<(PathBuf, PathBuf)>,
}

/// One `--forward` destination and the settings that apply to it alone.
#[derive(Debug, Clone)]
pub struct Forward {
    pub dest: String,
    /// Series held until stable this long (zero: off).
    pub stable_age: Duration,
}

/// An `--allow` rule.
#[derive(Debug, Clone, PartialEq, Eq)]
struct Allow {
    ae: String,
    ip: Option<IpAddr>,
}

fn parse_allow(s: &str) -> Result<Allow, Error> {
    let (ae, ip) =
        match s.split_once('@') {
            Some((ae, ip)) => (
                ae,
                Some(ip.parse::<IpAddr>().map_err(|_| {
                    Error::Usage(format!("--allow {s}: `{ip}` is not an IP address"))
                })?),
            ),
            None => (s, None),
        };
    if ae.is_empty() || ae.len() > 16 {
        return Err(Error::Usage(format!(
            "--allow {s}: the AE title must be 1 to 16 characters"
        )));
    }
    Ok(Allow {
        ae: ae.to_string(),
        ip,
    })
}

/// Associations per calling AE title, for the per-AE limit.
struct PerAe {
    max: usize,
    counts: Mutex<HashMap<String, usize>>,
}

impl PerAe {
    fn try_take(&self, ae: &str) -> bool {
        let mut c = self.counts.lock().unwrap_or_else(|p| p.into_inner());
        let n = c.entry(ae.to_string()).or_insert(0);
        if *n >= self.max {
            return false;
        }
        *n += 1;
        true
    }

    fn give_back(&self, ae: &str) {
        let mut c = self.counts.lock().unwrap_or_else(|p| p.into_inner());
        if let Some(n) = c.get_mut(ae) {
            *n = n.saturating_sub(1);
        }
    }
}

/// The access decision for one connection: our AE title, the allow list with the
/// peer's address, and a slot under the per-AE limit (given back on drop).
struct Gate<'a> {
    rules: &'a [Allow],
    peer_ip: IpAddr,
    per_ae: &'a PerAe,
    taken: Mutex<Option<String>>,
}

impl AccessControl for Gate<'_> {
    fn check_access(
        &self,
        this_ae_title: &str,
        calling_ae_title: &str,
        called_ae_title: &str,
        _user_identity: Option<&UserIdentity>,
    ) -> Result<(), AssociationRJServiceUserReason> {
        let calling = calling_ae_title.trim();
        if called_ae_title.trim() != this_ae_title.trim() {
            return Err(AssociationRJServiceUserReason::CalledAETitleNotRecognized);
        }
        let allowed = self.rules.is_empty()
            || self
                .rules
                .iter()
                .any(|r| r.ae == calling && r.ip.is_none_or(|ip| ip == self.peer_ip));
        if !allowed {
            return Err(AssociationRJServiceUserReason::CallingAETitleNotRecognized);
        }
        if !self.per_ae.try_take(calling) {
            return Err(AssociationRJServiceUserReason::NoReasonGiven);
        }
        *self.taken.lock().unwrap_or_else(|p| p.into_inner()) = Some(calling.to_string());
        Ok(())
    }
}

impl Drop for Gate<'_> {
    fn drop(&mut self) {
        if let Some(ae) = self.taken.get_mut().ok().and_then(|t| t.take()) {
            self.per_ae.give_back(&ae);
        }
    }
}

static STOP: AtomicBool = AtomicBool::new(false);

extern "C" fn on_signal(_: libc::c_int) {
    STOP.store(true, Ordering::SeqCst);
}

fn install_signals() {
    // SAFETY: the handler only stores to an atomic, which is async-signal-safe.
    unsafe {
        libc::signal(libc::SIGTERM, on_signal as *const () as libc::sighandler_t);
        libc::signal(libc::SIGINT, on_signal as *const () as libc::sighandler_t);
    }
}

fn io_err(context: String) -> impl FnOnce(std::io::Error) -> Error {
    move |source| Error::Io { context, source }
}

/// Holds the spool for this process: a second `serve` on the same spool would send
/// every queued object twice.
fn lock_spool(spool: &Path) -> Result<std::fs::File, Error> {
    use std::os::fd::AsRawFd;
    let path = spool.join(".lock");
    let f = crate::side_files::open(&path, crate::side_files::Mode::Lock, true)
        .map_err(io_err(format!("cannot open {}", path.display())))?;
    // SAFETY: a valid descriptor, owned by `f` for the call.
    if unsafe { libc::flock(f.as_raw_fd(), libc::LOCK_EX | libc::LOCK_NB) } != 0 {
        return Err(Error::Usage(format!(
            "another `dicom-deid serve` uses the spool {}",
            spool.display()
        )));
    }
    Ok(f)
}

/// Removes what a killed gateway left half done: partial receptions (never
/// acknowledged) and staged or half-linked objects (re-sent by their sender, who
/// was not told success either).
/// Everything in `scratch` folders goes (incoming and staging hold nothing that was
/// acknowledged); in `queues`, only temporaries.
fn clean_spool(scratch: &[&Path], queues: &[PathBuf]) -> usize {
    let mut removed = 0;
    let dirs = scratch
        .iter()
        .map(|d| (*d, true))
        .chain(queues.iter().map(|q| (q.as_path(), false)));
    for (dir, everything) in dirs {
        let Ok(rd) = std::fs::read_dir(dir) else {
            continue;
        };
        for e in rd.filter_map(Result::ok) {
            let name = e.file_name();
            let name = name.to_string_lossy();
            let partial = everything
                || name.ends_with(".part")
                || name.starts_with(".link-")
                || name.starts_with(crate::store::fs::TEMP_PREFIX);
            if partial
                && e.file_type().is_ok_and(|t| t.is_file())
                && std::fs::remove_file(e.path()).is_ok()
            {
                removed += 1;
            }
        }
    }
    removed
}

/// Rejects a connection over the association limit: reads its request (briefly;
/// a request is a few kilobytes) and answers A-ASSOCIATE-RJ, transient, local limit
/// exceeded.
fn reject_busy(mut stream: TcpStream) {
    use std::io::{Read, Write};
    let _ = stream.set_read_timeout(Some(Duration::from_secs(2)));
    let mut head = [0u8; 6];
    if stream.read_exact(&mut head).is_err() || head[0] != 0x01 {
        return;
    }
    let len = u32::from_be_bytes([head[2], head[3], head[4], head[5]]) as u64;
    let _ = std::io::copy(
        &mut (&mut stream).take(len.min(1 << 20)),
        &mut std::io::sink(),
    );
    let rj = dicom_ul::Pdu::AssociationRJ(AssociationRJ {
        result: AssociationRJResult::Transient,
        source: AssociationRJSource::ServiceProviderPresentation(
            AssociationRJServiceProviderPresentationReason::LocalLimitExceeded,
        ),
    });
    let mut out = Vec::new();
    if dicom_ul::write_pdu(&mut out, &rj).is_ok() {
        let _ = stream.write_all(&out);
    }
}

/// Waits (up to `artim`) until the connection's first message is wholly in the
/// socket's buffer, without consuming it: an A-ASSOCIATE-RQ (type 01, length from
/// its header) or, on a TLS listener, a TLS record (5-byte header, 2-byte length).
/// False on EOF, timeout or anything else, and the connection is simply dropped.
///
/// Why: with dicom-ul's `sync-tls` feature on, a connection that ends before a
/// whole request (a port probe, a client gone during ARTIM) makes `establish` and
/// `establish_tls` spin for ever in their TLS sniffing on an exhausted buffer. So
/// they are only called once the request they will read is there in full.
fn first_message_arrived(stream: &TcpStream, artim: Duration, tls: bool) -> bool {
    let deadline = std::time::Instant::now() + artim;
    let _ = stream.set_read_timeout(Some(Duration::from_millis(200)));
    let mut need = if tls { 5 } else { 6 };
    let mut buf = vec![0u8; need];
    loop {
        if std::time::Instant::now() >= deadline {
            return false;
        }
        match stream.peek(&mut buf) {
            Ok(0) => return false,
            Ok(n) if n >= need => {
                let total = if tls {
                    if buf[0] != 0x16 {
                        return false;
                    }
                    5 + u16::from_be_bytes([buf[3], buf[4]]) as usize
                } else {
                    if buf[0] != 0x01 {
                        return false;
                    }
                    6 + u32::from_be_bytes([buf[2], buf[3], buf[4], buf[5]]) as usize
                };
                if total > 1 << 20 {
                    return false;
                }
                if n >= total {
                    return true;
                }
                need = total;
                buf.resize(need, 0);
            }
            Ok(_) => std::thread::sleep(Duration::from_millis(5)),
            Err(e)
                if matches!(
                    e.kind(),
                    std::io::ErrorKind::WouldBlock | std::io::ErrorKind::TimedOut
                ) => {}
            Err(_) => return false,
        }
    }
}

/// The certificates of a PEM file, at least one; `flag` names it in errors.
fn pem_certs(
    flag: &str,
    path: &Path,
) -> Result<Vec<rustls::pki_types::CertificateDer<'static>>, Error> {
    use rustls::pki_types::CertificateDer;
    use rustls::pki_types::pem::PemObject;
    let certs: Vec<CertificateDer<'static>> = CertificateDer::pem_file_iter(path)
        .and_then(|it| it.collect())
        .map_err(|e| Error::Usage(format!("{flag} {}: {e}", path.display())))?;
    if certs.is_empty() {
        return Err(Error::Usage(format!(
            "{flag} {}: no certificate in it",
            path.display()
        )));
    }
    Ok(certs)
}

/// The private key of a PEM file. Its parse error could quote key material: only
/// the file is named.
fn pem_key(flag: &str, path: &Path) -> Result<rustls::pki_types::PrivateKeyDer<'static>, Error> {
    use rustls::pki_types::PrivateKeyDer;
    use rustls::pki_types::pem::PemObject;
    PrivateKeyDer::from_pem_file(path).map_err(|_| {
        Error::Usage(format!(
            "{flag} {}: no readable PEM private key in it",
            path.display()
        ))
    })
}

/// Roots to trust, from a PEM file of certificates.
fn pem_roots(flag: &str, path: &Path) -> Result<rustls::RootCertStore, Error> {
    let mut roots = rustls::RootCertStore::empty();
    let (added, _) = roots.add_parsable_certificates(pem_certs(flag, path)?);
    if added == 0 {
        return Err(Error::Usage(format!(
            "{flag} {}: no usable certificate in it",
            path.display()
        )));
    }
    Ok(roots)
}

fn provider() -> std::sync::Arc<rustls::crypto::CryptoProvider> {
    std::sync::Arc::new(rustls::crypto::ring::default_provider())
}

/// A rustls server configuration from PEM files (TLS 1.2 and 1.3, ring). With
/// `client_ca`, every client must present a certificate that chains to it (mutual
/// TLS); without, none is asked for.
fn tls_config(
    cert: &Path,
    key: &Path,
    client_ca: Option<&Path>,
) -> Result<std::sync::Arc<rustls::ServerConfig>, Error> {
    let certs = pem_certs("--tls-cert", cert)?;
    let key = pem_key("--tls-key", key)?;
    let builder = rustls::ServerConfig::builder_with_provider(provider())
        .with_safe_default_protocol_versions()
        .map_err(|e| Error::Usage(format!("TLS: {e}")))?;
    let builder = match client_ca {
        Some(ca) => {
            let roots = pem_roots("--tls-client-ca", ca)?;
            let verifier = rustls::server::WebPkiClientVerifier::builder_with_provider(
                std::sync::Arc::new(roots),
                provider(),
            )
            .build()
            .map_err(|e| Error::Usage(format!("--tls-client-ca {}: {e}", ca.display())))?;
            builder.with_client_cert_verifier(verifier)
        }
        None => builder.with_no_client_auth(),
    };
    let config = builder
        .with_single_cert(certs, key)
        .map_err(|e| Error::Usage(format!("TLS certificate and key: {e}")))?;
    Ok(std::sync::Arc::new(config))
}

/// A rustls client configuration trusting the certificates of a PEM file, and
/// presenting a client certificate when `identity` (certificate, key) is given.
pub(crate) fn tls_client(
    ca: &Path,
    identity: Option<&(PathBuf, PathBuf)>,
) -> Result<std::sync::Arc<rustls::ClientConfig>, Error> {
    let roots = pem_roots("--tls-ca", ca)?;
    let builder = rustls::ClientConfig::builder_with_provider(provider())
        .with_safe_default_protocol_versions()
        .map_err(|e| Error::Usage(format!("TLS: {e}")))?
        .with_root_certificates(roots);
    let config = match identity {
        Some((cert, key)) => builder
            .with_client_auth_cert(
                pem_certs("--tls-client-cert", cert)?,
                pem_key("--tls-client-key", key)?,
            )
            .map_err(|e| Error::Usage(format!("TLS client certificate and key: {e}")))?,
        None => builder.with_no_client_auth(),
    };
    Ok(std::sync::Arc::new(config))
}

/// What serve checks before it touches the spool or the network: every setting
/// parsed, the profile compiled, the key read, the TLS files loaded.
struct Checked {
    dests: Vec<Destination>,
    rules: Vec<Allow>,
    profile: crate::profile::compiled::CompiledProfile,
    key: Key,
    tls_in: Option<std::sync::Arc<rustls::ServerConfig>>,
    tls_out: Option<std::sync::Arc<rustls::ClientConfig>>,
}

fn check_options(opts: &ServeOptions) -> Result<Checked, Error> {
    let dests: Vec<Destination> = opts
        .forward
        .iter()
        .map(|f| Destination::parse(&f.dest).map_err(|e| Error::Usage(e.to_string())))
        .collect::<Result<_, _>>()?;
    if dests.is_empty() {
        return Err(Error::Usage("serve needs at least one --forward".into()));
    }
    let rules: Vec<Allow> = opts
        .allow
        .iter()
        .map(|a| parse_allow(a))
        .collect::<Result<_, _>>()?;
    if opts.ae_title.is_empty() || opts.ae_title.len() > 16 {
        return Err(Error::Usage("--ae-title must be 1 to 16 characters".into()));
    }
    let profile = crate::profile::compile::load_with_options(&opts.profile, &opts.options)?;
    let key = match &opts.key_file {
        Some(p) => Key::from_file(p)?,
        None => {
            crate::say!(
                "dicom-deid serve: no --key-file: using a random key for this process only; \
                 UIDs and pseudonyms will not match after a restart"
            );
            Key::random()?
        }
    };
    let wants_tls = dests
        .iter()
        .any(|d| matches!(d, Destination::Dimse { tls: true, .. }));
    let tls_out = match (&opts.tls_ca, wants_tls) {
        (Some(ca), _) => Some(tls_client(ca, opts.tls_client.as_ref())?),
        (None, true) => {
            return Err(Error::Usage(
                "a dimse+tls:// destination needs --tls-ca (the certificates to trust)".into(),
            ));
        }
        (None, false) => None,
    };
    if opts.tls_client.is_some() && tls_out.is_none() {
        return Err(Error::Usage(
            "--tls-client-cert is presented to dimse+tls:// destinations, trusted by --tls-ca: \
             give --tls-ca too"
                .into(),
        ));
    }
    let tls_in = match &opts.tls {
        Some((cert, key)) => Some(tls_config(cert, key, opts.tls_client_ca.as_deref())?),
        None if opts.tls_client_ca.is_some() => {
            return Err(Error::Usage(
                "--tls-client-ca asks callers for certificates over DICOM TLS: give --tls-cert \
                 and --tls-key too"
                    .into(),
            ));
        }
        None => None,
    };
    use std::net::ToSocketAddrs;
    if opts.listen.to_socket_addrs().is_err() {
        return Err(Error::Usage(format!(
            "--listen {}: expected HOST:PORT",
            opts.listen
        )));
    }
    Ok(Checked {
        dests,
        rules,
        profile,
        key,
        tls_in,
        tls_out,
    })
}

fn tls_note(tls: bool, client_certs: bool) -> &'static str {
    match (tls, client_certs) {
        (true, true) => " (DICOM TLS, client certificates required)",
        (true, false) => " (DICOM TLS)",
        _ => "",
    }
}

/// `serve --check`: everything serve checks at start, then exit 0 without
/// listening or touching the spool.
pub fn check(opts: ServeOptions) -> Result<ExitStatus, Error> {
    let c = check_options(&opts)?;
    crate::say!(
        "dicom-deid serve: configuration OK: would listen on {} as `{}`{}; profile {}, key {}; \
         spool {}; forwarding to {}",
        opts.listen,
        opts.ae_title,
        tls_note(c.tls_in.is_some(), opts.tls_client_ca.is_some()),
        c.profile.name,
        c.key.fingerprint(),
        opts.spool.display(),
        c.dests
            .iter()
            .map(|d| d.to_string())
            .collect::<Vec<_>>()
            .join(", ")
    );
    Ok(ExitStatus::Success)
}

/// Runs the gateway until SIGTERM or SIGINT.
pub fn serve(opts: ServeOptions) -> Result<ExitStatus, Error> {
    let Checked {
        dests,
        rules,
        profile,
        key,
        tls_in: tls,
        tls_out,
    } = check_options(&opts)?;
    crate::profile::iod::preload();

    let spool = &opts.spool;
    let incoming = spool.join("incoming");
    let staging = spool.join("staging");
    let quarantine = opts
        .quarantine
        .clone()
        .unwrap_or_else(|| spool.join("quarantine"));
    for d in [spool, &incoming, &staging, &quarantine] {
        std::fs::create_dir_all(d).map_err(io_err(format!("cannot create {}", d.display())))?;
    }
    let _lock = lock_spool(spool)?;
    let mut queues = Vec::new();
    for d in &dests {
        let q = spool.join("queue").join(d.id());
        std::fs::create_dir_all(&q).map_err(io_err(format!("cannot create {}", q.display())))?;
        queues.push(q);
    }
    let removed = clean_spool(&[&incoming, &staging], &queues);
    if removed > 0 {
        crate::say!(
            "dicom-deid serve: removed {removed} partial files left by an interrupted gateway \
             (none was acknowledged)"
        );
    }
    for (d, q) in dests.iter().zip(&queues) {
        let n = queue::entries(q).len();
        if n > 0 {
            crate::say!("dicom-deid serve: {} objects queued for {d} from before", n);
        }
    }
    let manifest_path = quarantine.join("manifest.jsonl");
    let manifest = crate::side_files::open(&manifest_path, crate::side_files::Mode::Lock, false)
        .and_then(|mut f| {
            use std::io::Seek;
            f.seek(std::io::SeekFrom::End(0))?;
            Ok(f)
        })
        .map_err(io_err(format!(
            "cannot open the quarantine manifest {}",
            manifest_path.display()
        )))?;

    let engine = Engine::new(&profile, Pseudonymizer::new(&key));
    let plan = Plan::new(&profile, engine);
    let intake = intake::Intake {
        plan: &plan,
        key: &key,
        staging: FsSink::new(staging.clone(), "gateway").durable(),
        staging_dir: staging.clone(),
        queues: queues.clone(),
        manifest: Mutex::new(manifest),
        quarantine_copy: opts.quarantine_copy.then(|| quarantine.join("files")),
        refuse_quarantined: opts.refuse_quarantined,
        counter: AtomicU64::new(0),
    };
    let listener = TcpListener::bind(&opts.listen)
        .map_err(io_err(format!("cannot listen on {}", opts.listen)))?;
    listener
        .set_nonblocking(true)
        .map_err(io_err("cannot set up the listener".into()))?;
    install_signals();
    crate::say!(
        "dicom-deid serve: listening on {}{} as `{}`; profile {}, key {}; forwarding to {}",
        listener
            .local_addr()
            .map(|a| a.to_string())
            .unwrap_or_default(),
        tls_note(tls.is_some(), opts.tls_client_ca.is_some()),
        opts.ae_title,
        profile.name,
        key.fingerprint(),
        dests
            .iter()
            .zip(&opts.forward)
            .map(|(d, f)| if f.stable_age.is_zero() {
                d.to_string()
            } else {
                format!(
                    "{d} (each series once stable for {} s)",
                    f.stable_age.as_secs()
                )
            })
            .collect::<Vec<_>>()
            .join(", ")
    );

    let per_ae = PerAe {
        max: opts.max_per_ae.max(1),
        counts: Mutex::new(HashMap::new()),
    };
    let active = AtomicUsize::new(0);
    let serial = AtomicU64::new(0);
    let forwarders_stop = AtomicBool::new(false);
    let sessions_stop = &STOP;
    std::thread::scope(|scope| {
        let mut forwarders = Vec::new();
        for ((d, q), stable_age) in dests
            .iter()
            .zip(&queues)
            .zip(opts.forward.iter().map(|f| &f.stable_age))
        {
            let fwd = queue::Forwarder {
                dest: d.clone(),
                queue: q.clone(),
                dead: spool.join("dead").join(d.id()),
                retry: opts.retry,
                calling_ae: opts.ae_title.clone(),
                timeout: Duration::from_secs(30),
                tls: tls_out.clone(),
                stop: &forwarders_stop,
                stable_age: *stable_age,
            };
            forwarders.push(scope.spawn(move || fwd.run()));
        }
        let mut sessions = Vec::new();
        while !STOP.load(Ordering::Relaxed) {
            let (stream, addr) = match listener.accept() {
                Ok(x) => x,
                Err(e) if e.kind() == std::io::ErrorKind::WouldBlock => {
                    std::thread::sleep(Duration::from_millis(20));
                    sessions.retain(|h: &std::thread::ScopedJoinHandle<'_, ()>| !h.is_finished());
                    continue;
                }
                Err(e) => {
                    crate::say!("dicom-deid serve: accept failed: {e}");
                    std::thread::sleep(Duration::from_millis(100));
                    continue;
                }
            };
            let _ = stream.set_nonblocking(false);
            let _ = stream.set_nodelay(true);
            if active.load(Ordering::SeqCst) >= opts.max_associations.max(1) {
                crate::say!(
                    "dicom-deid serve: {addr}: rejected, {} associations already open",
                    opts.max_associations
                );
                reject_busy(stream);
                continue;
            }
            active.fetch_add(1, Ordering::SeqCst);
            let (rules, per_ae, active, intake, serial, incoming) =
                (&rules, &per_ae, &active, &intake, &serial, &incoming);
            let (ae_title, artim, idle, tls) = (&opts.ae_title, opts.artim, opts.idle, &tls);
            let handle = std::thread::Builder::new()
                .stack_size(16 << 20)
                .spawn_scoped(scope, move || {
                    let gate = Gate {
                        rules,
                        peer_ip: addr.ip(),
                        per_ae,
                        taken: Mutex::new(None),
                    };
                    let mut options = ServerAssociationOptions::new()
                        .ae_access_control(gate)
                        .ae_title(ae_title.as_str())
                        .promiscuous(true)
                        .strict(false)
                        .max_pdu_length(256 * 1024)
                        .read_timeout(artim)
                        .write_timeout(Duration::from_secs(60));
                    let session = scp::Session {
                        intake,
                        incoming,
                        serial,
                        idle,
                        stop: sessions_stop,
                    };
                    let ip = addr.ip();
                    let ended = |from: &str, t: scp::Tally| {
                        crate::say!(
                            "dicom-deid serve: association from `{from}` ({ip}{}) ended: {} \
                             objects queued, {} quarantined, {} failed, {} echoes",
                            if tls.is_some() { ", TLS" } else { "" },
                            t.queued,
                            t.quarantined,
                            t.failed,
                            t.echoes
                        )
                    };
                    use dicom_ul::association::Association;
                    if !first_message_arrived(&stream, artim, tls.is_some()) {
                        active.fetch_sub(1, Ordering::SeqCst);
                        return;
                    }
                    let result = match tls {
                        Some(config) => {
                            options = options.tls_config(config.clone());
                            options.establish_tls(stream).map(|assoc| {
                                let from = assoc.peer_ae_title().trim().to_string();
                                ended(&from, session.serve(assoc, &from));
                            })
                        }
                        None => options.establish(stream).map(|assoc| {
                            let from = assoc.peer_ae_title().trim().to_string();
                            ended(&from, session.serve(assoc, &from));
                        }),
                    };
                    match result {
                        Ok(()) => {}
                        // A connection closed before any request is a port probe
                        // (a load balancer's health check): nothing to say.
                        Err(dicom_ul::association::Error::ConnectionClosed { .. }) => {}
                        Err(e) => {
                            // The cause (a TLS handshake refused for want of a client
                            // certificate, say) is deeper in the chain than dicom-ul's
                            // "failed to receive pdu".
                            let mut why = e.to_string();
                            let mut cur = std::error::Error::source(&e);
                            while let Some(inner) = cur {
                                why.push_str(&format!(": {inner}"));
                                cur = inner.source();
                            }
                            crate::say!("dicom-deid serve: association from {ip} refused: {why}")
                        }
                    }
                    active.fetch_sub(1, Ordering::SeqCst);
                });
            match handle {
                Ok(h) => sessions.push(h),
                Err(e) => {
                    active.fetch_sub(1, Ordering::SeqCst);
                    crate::say!("dicom-deid serve: cannot start a thread: {e}");
                }
            }
        }
        crate::say!(
            "dicom-deid serve: stopping: no new associations; finishing {} open ones",
            sessions.iter().filter(|h| !h.is_finished()).count()
        );
        for h in sessions {
            let _ = h.join();
        }
        forwarders_stop.store(true, Ordering::SeqCst);
        for h in forwarders {
            let _ = h.join();
        }
    });
    let left: usize = queues.iter().map(|q| queue::entries(q).len()).sum();
    crate::say!("dicom-deid serve: stopped; {left} objects stay queued for the next start");
    Ok(ExitStatus::Success)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_restart_clears_scratch_folders_and_queue_temporaries_only() {
        let dir = tempfile::tempdir().unwrap();
        let (incoming, staging, queue) = (
            dir.path().join("incoming"),
            dir.path().join("staging"),
            dir.path().join("queue"),
        );
        for d in [&incoming, &staging, &queue] {
            std::fs::create_dir_all(d).unwrap();
        }
        std::fs::write(incoming.join("1-0.part"), b"x").unwrap();
        // A staged object whose sender was never told success.
        std::fs::write(staging.join("1.2_1.3_1.4.dcm"), b"x").unwrap();
        std::fs::write(queue.join(".link-1-0"), b"x").unwrap();
        std::fs::write(queue.join("1.2_1.3_1.5.dcm"), b"acknowledged").unwrap();
        assert_eq!(
            clean_spool(&[&incoming, &staging], std::slice::from_ref(&queue)),
            3
        );
        assert!(queue.join("1.2_1.3_1.5.dcm").exists());
        assert_eq!(std::fs::read_dir(&staging).unwrap().count(), 0);
    }

    #[test]
    fn allow_rules_parse_with_and_without_an_address() {
        assert_eq!(
            parse_allow("MODALITY").unwrap(),
            Allow {
                ae: "MODALITY".into(),
                ip: None
            }
        );
        let a = parse_allow("PACS@127.0.0.1").unwrap();
        assert_eq!(a.ip, Some("127.0.0.1".parse().unwrap()));
        assert!(parse_allow("PACS@nowhere").is_err());
        assert!(parse_allow("").is_err());
    }

    #[test]
    fn the_gate_checks_called_ae_allow_list_and_per_ae_limit() {
        let rules = vec![parse_allow("GOOD@127.0.0.1").unwrap()];
        let per_ae = PerAe {
            max: 1,
            counts: Mutex::new(HashMap::new()),
        };
        let gate = |ip: &str| Gate {
            rules: &rules,
            peer_ip: ip.parse().unwrap(),
            per_ae: &per_ae,
            taken: Mutex::new(None),
        };
        let g1 = gate("127.0.0.1");
        assert!(g1.check_access("GW", "GOOD", "GW", None).is_ok());
        // The second association of the same AE is over the limit of one.
        assert!(
            gate("127.0.0.1")
                .check_access("GW", "GOOD", "GW", None)
                .is_err()
        );
        drop(g1);
        assert!(
            gate("127.0.0.1")
                .check_access("GW", "GOOD", "GW", None)
                .is_ok()
        );
        assert_eq!(
            gate("127.0.0.2").check_access("GW", "GOOD", "GW", None),
            Err(AssociationRJServiceUserReason::CallingAETitleNotRecognized)
        );
        assert_eq!(
            gate("127.0.0.1").check_access("GW", "GOOD", "OTHER", None),
            Err(AssociationRJServiceUserReason::CalledAETitleNotRecognized)
        );
    }
}
