//! `dicom-deid serve` against real peers: dcmtk's storescu and echoscu send into
//! it, dcmtk's storescp receives what it forwards. Every process a test starts is
//! killed when the test ends (see [`Proc`]); every port is a free one.

use crate::common::{BIN, Env, lenient_profile, testdata};
use dicom_deid::gateway::dimse;
use dicom_object::open_file;
use std::collections::BTreeSet;
use std::net::TcpStream;
use std::path::{Path, PathBuf};
use std::process::{Child, Command, Stdio};
use std::time::{Duration, Instant};

/// A started process, killed and reaped on drop.
pub(crate) struct Proc {
    child: Option<Child>,
    log: PathBuf,
}

impl Proc {
    pub(crate) fn kill9(&mut self) {
        if let Some(mut c) = self.child.take() {
            let _ = c.kill();
            let _ = c.wait();
        }
    }

    /// SIGTERM, then wait for the exit (at most `within`).
    pub(crate) fn term(&mut self, within: Duration) -> Option<std::process::ExitStatus> {
        let mut c = self.child.take()?;
        // SAFETY: kill(2) on the pid of a child we have not reaped yet.
        unsafe { libc::kill(c.id() as i32, libc::SIGTERM) };
        let end = Instant::now() + within;
        while Instant::now() < end {
            if let Ok(Some(s)) = c.try_wait() {
                return Some(s);
            }
            std::thread::sleep(Duration::from_millis(50));
        }
        let _ = c.kill();
        let _ = c.wait();
        None
    }

    pub(crate) fn log(&self) -> String {
        std::fs::read_to_string(&self.log).unwrap_or_default()
    }
}

impl Drop for Proc {
    fn drop(&mut self) {
        self.kill9();
    }
}

pub(crate) fn spawn(cmd: &mut Command, log: PathBuf) -> Proc {
    let out = std::fs::File::create(&log).unwrap();
    let err = out.try_clone().unwrap();
    let child = cmd
        .stdin(Stdio::null())
        .stdout(out)
        .stderr(err)
        .spawn()
        .expect("process starts");
    Proc {
        child: Some(child),
        log,
    }
}

pub(crate) fn free_port() -> u16 {
    std::net::TcpListener::bind("127.0.0.1:0")
        .unwrap()
        .local_addr()
        .unwrap()
        .port()
}

pub(crate) fn wait_listening(port: u16) {
    let end = Instant::now() + Duration::from_secs(20);
    while Instant::now() < end {
        if TcpStream::connect(("127.0.0.1", port)).is_ok() {
            return;
        }
        std::thread::sleep(Duration::from_millis(50));
    }
    panic!("nothing listens on port {port}");
}

pub(crate) fn wait_for(what: &str, mut cond: impl FnMut() -> bool) {
    let end = Instant::now() + Duration::from_secs(60);
    while Instant::now() < end {
        if cond() {
            return;
        }
        std::thread::sleep(Duration::from_millis(100));
    }
    panic!("timed out waiting for {what}");
}

/// Whether dcmtk's network tools are here. Required (a failure, not a skip) under
/// CI=true or DICOM_DEID_EXTERNAL_CHECKS=1.
pub(crate) fn dcmtk() -> bool {
    let have = ["storescu", "storescp", "echoscu", "dcmodify"]
        .iter()
        .all(|t| {
            Command::new(t)
                .arg("--version")
                .output()
                .is_ok_and(|o| o.status.success())
        });
    if !have {
        let required = std::env::var("CI").ok().as_deref() == Some("true")
            || std::env::var("DICOM_DEID_EXTERNAL_CHECKS").ok().as_deref() == Some("1");
        assert!(
            !required,
            "dcmtk (storescu, storescp, echoscu) is required here"
        );
        eprintln!("SKIPPED: gateway test: dcmtk is not installed");
    }
    have
}

pub(crate) fn storescp(env: &Env, name: &str, port: u16, extra: &[&str]) -> (Proc, PathBuf) {
    let dir = env.path(name);
    std::fs::create_dir_all(&dir).unwrap();
    let mut cmd = Command::new("storescp");
    cmd.args(["-aet", "DEST", "--fork", "-od"])
        .arg(&dir)
        .args(extra)
        .arg(port.to_string());
    let p = spawn(&mut cmd, env.path(&format!("{name}.log")));
    wait_listening(port);
    (p, dir)
}

pub(crate) struct Gateway {
    pub(crate) proc: Proc,
    pub(crate) port: u16,
    pub(crate) spool: PathBuf,
}

pub(crate) fn serve(env: &Env, port: u16, forward: &[String], extra: &[&str]) -> Gateway {
    let spool = env.path("spool");
    let key = env.path("gw.key");
    if !key.exists() {
        env.key("gw.key", 7);
    }
    let mut cmd = Command::new(BIN);
    cmd.env_remove("DICOM_DEID_KEY_FILE")
        .args([
            "serve",
            "--listen",
            &format!("127.0.0.1:{port}"),
            "--ae-title",
            "GW",
        ])
        .arg("--spool")
        .arg(&spool)
        .arg("--key-file")
        .arg(&key)
        .args(["--retry-base-ms", "200", "--retry-max-ms", "1000"]);
    if !extra.contains(&"--profile") {
        cmd.arg("--profile").arg(lenient_profile(env));
    }
    for f in forward {
        cmd.arg("--forward").arg(f);
    }
    cmd.args(extra);
    let n = std::fs::read_dir(env.dir.path())
        .map(|d| d.count())
        .unwrap_or(0);
    let proc = spawn(&mut cmd, env.path(&format!("serve-{n}.log")));
    wait_listening(port);
    Gateway { proc, port, spool }
}

pub(crate) fn dimse_dest(port: u16) -> String {
    format!("dimse://DEST@127.0.0.1:{port}")
}

/// storescu's log and its count of success responses (with `-nh` it exits 0 even
/// when a store failed, so the responses are what counts).
pub(crate) fn storescu(
    port: u16,
    calling: &str,
    files: &[PathBuf],
    extra: &[&str],
) -> (String, usize) {
    let o = Command::new("storescu")
        .args(["-v", "-nh", "-aet", calling, "-aec", "GW"])
        .args(extra)
        .arg("127.0.0.1")
        .arg(port.to_string())
        .args(files)
        .output()
        .unwrap();
    let log = format!(
        "{}{}",
        String::from_utf8_lossy(&o.stdout),
        String::from_utf8_lossy(&o.stderr)
    );
    let ok = log.matches("Received Store Response (Success)").count();
    (log, ok)
}

/// A storescu config with one context per (SOP class, transfer syntax) of the
/// compressed samples: storescu proposes only uncompressed syntaxes by default.
fn compressed_config(env: &Env) -> PathBuf {
    let p = env.path("storescu.cfg");
    std::fs::write(
        &p,
        "[[TransferSyntaxes]]\n[JPEGBaseline]\nTransferSyntax1 = JPEGBaseline\n\
         [RLE]\nTransferSyntax1 = RLELossless\n\
         [Deflated]\nTransferSyntax1 = DeflatedLittleEndianExplicit\n\
         [[PresentationContexts]]\n[Compressed]\n\
         PresentationContext1 = SecondaryCaptureImageStorage\\JPEGBaseline\n\
         PresentationContext2 = SecondaryCaptureImageStorage\\RLE\n\
         PresentationContext3 = SecondaryCaptureImageStorage\\Deflated\n\
         [[Profiles]]\n[Compressed]\nPresentationContexts = Compressed\n",
    )
    .unwrap();
    p
}

/// An ultrasound object (not among the samples): the CT sample made Ultrasound
/// Image Storage with BurnedInAnnotation NO, by dcmtk's dcmodify.
fn ultrasound(env: &Env) -> PathBuf {
    let p = env.path("us.dcm");
    std::fs::copy(testdata("dicom/ct_explicit_le.dcm"), &p).unwrap();
    let o = Command::new("dcmodify")
        .args([
            "-nb",
            "-m",
            "(0008,0016)=1.2.840.10008.5.1.4.1.1.6.1",
            "-i",
            "(0028,0301)=NO",
            "-gin",
            "-m",
            "(0008,0060)=US",
        ])
        .arg(&p)
        .output()
        .unwrap();
    assert!(o.status.success(), "{}", String::from_utf8_lossy(&o.stderr));
    p
}

pub(crate) fn sample(p: &str) -> PathBuf {
    testdata(p)
}

pub(crate) fn text(obj: &dicom_object::DefaultDicomObject, tag: dicom_core::Tag) -> Option<String> {
    obj.element(tag)
        .ok()
        .and_then(|e| e.to_str().ok())
        .map(|s| s.trim_end_matches(['\0', ' ']).to_string())
}

pub(crate) const PATIENT_NAME: dicom_core::Tag = dicom_core::Tag(0x0010, 0x0010);
pub(crate) const PATIENT_ID: dicom_core::Tag = dicom_core::Tag(0x0010, 0x0020);
pub(crate) const IDENTITY_REMOVED: dicom_core::Tag = dicom_core::Tag(0x0012, 0x0062);
pub(crate) const SOP_INSTANCE: dicom_core::Tag = dicom_core::Tag(0x0008, 0x0018);
pub(crate) const STUDY: dicom_core::Tag = dicom_core::Tag(0x0020, 0x000D);

pub(crate) fn files_in(dir: &Path) -> Vec<PathBuf> {
    walkdir::WalkDir::new(dir)
        .into_iter()
        .filter_map(Result::ok)
        .filter(|e| e.file_type().is_file())
        .map(|e| e.into_path())
        .collect()
}

pub(crate) fn queued(spool: &Path) -> usize {
    files_in(&spool.join("queue"))
        .iter()
        .filter(|p| p.extension().is_some_and(|x| x == "dcm"))
        .count()
}

#[test]
fn echo_and_a_mixed_folder_arrive_de_identified_at_storescp() {
    if !dcmtk() {
        return;
    }
    let env = Env::new();
    let dest_port = free_port();
    let (_dest, received) = storescp(&env, "received", dest_port, &["-pm", "+xa"]);
    let gw = serve(&env, free_port(), &[dimse_dest(dest_port)], &[]);

    let echo = Command::new("echoscu")
        .args(["-aet", "MOD", "-aec", "GW", "127.0.0.1"])
        .arg(gw.port.to_string())
        .output()
        .unwrap();
    assert!(
        echo.status.success(),
        "{}",
        String::from_utf8_lossy(&echo.stderr)
    );

    let plain: Vec<PathBuf> = [
        "dicom/ct_explicit_le.dcm",
        "dicom/mr_implicit_le.dcm",
        "dicom/mr_explicit_be.dcm",
        "dicom/rtplan_implicit_le.dcm",
        "dicom/rtdose_multiframe.dcm",
        "dicom/sr_comprehensive_nested.dcm",
        "dicom/mr_fake_phi_dicognito.dcm",
    ]
    .iter()
    .map(|s| sample(s))
    .chain([ultrasound(&env)])
    .collect();
    let (log, ok) = storescu(gw.port, "MOD", &plain, &[]);
    assert_eq!(ok, plain.len(), "{log}");
    let compressed = vec![
        sample("dicom/sc_jpeg_baseline.dcm"),
        sample("dicom/sc_rle_multiframe.dcm"),
    ];
    let cfg = compressed_config(&env);
    let (log, ok) = storescu(
        gw.port,
        "MOD",
        &compressed,
        &["-xf", cfg.to_str().unwrap(), "Compressed"],
    );
    assert_eq!(ok, compressed.len(), "{log}");

    // Originals' identities, to look for in what arrived.
    let all: Vec<PathBuf> = plain.iter().chain(&compressed).cloned().collect();
    let mut names = BTreeSet::new();
    let mut ids = BTreeSet::new();
    let mut uids = BTreeSet::new();
    for f in &all {
        let o = open_file(f).unwrap();
        names.extend(text(&o, PATIENT_NAME).filter(|s| !s.is_empty()));
        ids.extend(text(&o, PATIENT_ID).filter(|s| !s.is_empty()));
        uids.extend(text(&o, SOP_INSTANCE));
        uids.extend(text(&o, STUDY));
    }
    // Both MR samples are one instance in two syntaxes: one object at the end.
    let expected = uids_of(&all, SOP_INSTANCE).len();
    wait_for("every object at storescp", || {
        files_in(&received).len() >= expected
    });
    wait_for("the queue to drain", || queued(&gw.spool) == 0);
    let got = files_in(&received);
    assert_eq!(got.len(), expected, "{got:?}");
    let mut studies = BTreeSet::new();
    for f in &got {
        let o = open_file(f).unwrap();
        let name = text(&o, PATIENT_NAME).unwrap_or_default();
        let id = text(&o, PATIENT_ID).unwrap_or_default();
        assert!(!names.contains(&name) || name.is_empty(), "{}", f.display());
        assert!(!ids.contains(&id), "{}", f.display());
        assert_eq!(
            text(&o, IDENTITY_REMOVED).as_deref(),
            Some("YES"),
            "{}",
            f.display()
        );
        let sop = text(&o, SOP_INSTANCE).unwrap();
        assert!(
            !uids.contains(&sop),
            "SOP Instance UID not remapped in {}",
            f.display()
        );
        assert_eq!(
            o.meta()
                .media_storage_sop_instance_uid()
                .trim_end_matches('\0'),
            sop
        );
        studies.extend(text(&o, STUDY));
    }
    // UIDs are remapped consistently: one original study is one new study.
    assert_eq!(studies.len(), uids_of(&all, STUDY).len());
    let log = gw.proc.log();
    assert!(log.contains("association from `MOD`"), "{log}");
    for n in &names {
        assert!(!log.contains(n.as_str()), "the log shows a patient name");
    }
}

pub(crate) fn uids_of(files: &[PathBuf], tag: dicom_core::Tag) -> BTreeSet<String> {
    files
        .iter()
        .filter_map(|f| text(&open_file(f).unwrap(), tag))
        .collect()
}

#[test]
fn a_destination_down_at_first_gets_everything_once_it_starts() {
    if !dcmtk() {
        return;
    }
    let env = Env::new();
    let dest_port = free_port();
    let gw = serve(
        &env,
        free_port(),
        &[dimse_dest(dest_port)],
        &["--max-attempts", "1000"],
    );
    let files = vec![
        sample("dicom/ct_explicit_le.dcm"),
        sample("dicom/rtplan_implicit_le.dcm"),
    ];
    let (log, ok) = storescu(gw.port, "MOD", &files, &[]);
    assert_eq!(ok, 2, "{log}");
    // Acknowledged, so durably queued, while the destination is down.
    assert_eq!(queued(&gw.spool), 2);
    std::thread::sleep(Duration::from_millis(700));
    assert_eq!(queued(&gw.spool), 2);
    let (_dest, received) = storescp(&env, "received", dest_port, &["-pm", "+xa"]);
    wait_for("delivery after the destination started", || {
        files_in(&received).len() == 2 && queued(&gw.spool) == 0
    });
    assert!(gw.proc.log().contains("retrying in"), "{}", gw.proc.log());
}

#[test]
fn a_refused_sop_class_and_an_unconvertible_syntax_go_to_the_dead_letters() {
    if !dcmtk() {
        return;
    }
    let env = Env::new();
    // A destination that takes CT only, uncompressed only.
    let cfg = env.path("storescp.cfg");
    std::fs::write(
        &cfg,
        "[[TransferSyntaxes]]\n[Uncompressed]\nTransferSyntax1 = LittleEndianExplicit\n\
         TransferSyntax2 = LittleEndianImplicit\n\
         [[PresentationContexts]]\n[OnlyCT]\n\
         PresentationContext1 = CTImageStorage\\Uncompressed\n\
         PresentationContext2 = SecondaryCaptureImageStorage\\Uncompressed\n\
         [[Profiles]]\n[OnlyCT]\nPresentationContexts = OnlyCT\n",
    )
    .unwrap();
    let dest_port = free_port();
    let (_dest, received) = storescp(
        &env,
        "received",
        dest_port,
        &["-xf", cfg.to_str().unwrap(), "OnlyCT"],
    );
    let gw = serve(&env, free_port(), &[dimse_dest(dest_port)], &[]);
    let (log, ok) = storescu(
        gw.port,
        "MOD",
        &[
            sample("dicom/ct_explicit_le.dcm"),
            sample("dicom/rtplan_implicit_le.dcm"),
        ],
        &[],
    );
    assert_eq!(ok, 2, "{log}");
    let xf = compressed_config(&env);
    let (log, ok) = storescu(
        gw.port,
        "MOD",
        &[sample("dicom/sc_jpeg_baseline.dcm")],
        &["-xf", xf.to_str().unwrap(), "Compressed"],
    );
    assert_eq!(ok, 1, "{log}");
    let dead = gw
        .spool
        .join("dead")
        .join(format!("dimse-DEST-127.0.0.1-{dest_port}"));
    wait_for("two dead letters", || {
        files_in(&dead)
            .iter()
            .filter(|p| p.extension().is_some_and(|x| x == "dcm"))
            .count()
            == 2
    });
    wait_for("the CT at the destination", || {
        files_in(&received).len() == 1
    });
    let reasons: String = files_in(&dead)
        .iter()
        .filter(|p| p.to_string_lossy().ends_with(".reason.txt"))
        .map(|p| std::fs::read_to_string(p).unwrap())
        .collect();
    assert!(
        reasons.contains("refused SOP class 1.2.840.10008.5.1.4.1.1.481.5"),
        "{reasons}"
    );
    assert!(reasons.contains("would need pixel decoding"), "{reasons}");
    assert_eq!(queued(&gw.spool), 0);
}

/// Distinct copies of the CT sample (new SOP Instance UIDs), made by dcmodify.
pub(crate) fn copies(env: &Env, n: usize) -> Vec<PathBuf> {
    let dir = env.path("copies");
    std::fs::create_dir_all(&dir).unwrap();
    let files: Vec<PathBuf> = (0..n)
        .map(|i| {
            let p = dir.join(format!("ct{i:03}.dcm"));
            std::fs::copy(testdata("dicom/ct_explicit_le.dcm"), &p).unwrap();
            p
        })
        .collect();
    let o = Command::new("dcmodify")
        .args(["-nb", "-gin"])
        .args(&files)
        .output()
        .unwrap();
    assert!(o.status.success(), "{}", String::from_utf8_lossy(&o.stderr));
    files
}

#[test]
fn kill_9_during_a_transfer_loses_nothing_acknowledged() {
    if !dcmtk() {
        return;
    }
    let env = Env::new();
    let files = copies(&env, 60);
    let dest_port = free_port();
    let (_dest, received) = storescp(&env, "received", dest_port, &["-pm", "+xa"]);
    let port = free_port();
    let mut gw = serve(&env, port, &[dimse_dest(dest_port)], &[]);
    let log = env.path("storescu.log");
    let mut sender = spawn(
        Command::new("storescu")
            .args(["-v", "-nh", "-aet", "MOD", "-aec", "GW", "127.0.0.1"])
            .arg(port.to_string())
            .args(&files),
        log.clone(),
    );
    wait_for("some acknowledged objects", || {
        std::fs::read_to_string(&log)
            .unwrap_or_default()
            .matches("Received Store Response (Success)")
            .count()
            >= 10
    });
    gw.proc.kill9();
    let _ = sender.term(Duration::from_secs(10));
    let acked = sender
        .log()
        .matches("Received Store Response (Success)")
        .count();
    assert!(acked >= 10 && acked < files.len(), "{acked}");
    // Restart on the same spool: what was queued is delivered.
    let gw = serve(&env, free_port(), &[dimse_dest(dest_port)], &[]);
    wait_for("the queue to drain after the restart", || {
        queued(&gw.spool) == 0
    });
    let got = files_in(&received);
    // Every acknowledged object arrived; at most the one in flight beyond them.
    assert!(
        got.len() >= acked,
        "{} received, {acked} acknowledged",
        got.len()
    );
    assert!(
        got.len() <= acked + 1,
        "{} received, {acked} acknowledged",
        got.len()
    );
    assert!(files_in(&gw.spool.join("incoming")).is_empty());
}

/// A raw association from the test itself, for what storescu will not do: stop
/// mid-object, or send a data set that does not parse.
fn raw_store(port: u16, data: &[u8], last: bool) -> Option<u16> {
    use dicom_ul::association::client::ClientAssociationOptions;
    use dicom_ul::pdu::{PDataValue, PDataValueType, Pdu};
    let mut a = ClientAssociationOptions::new()
        .calling_ae_title("RAW")
        .called_ae_title("GW")
        .with_presentation_context("1.2.840.10008.5.1.4.1.1.2", vec!["1.2.840.10008.1.2.1"])
        .establish_with(&format!("GW@127.0.0.1:{port}"))
        .expect("association");
    let ctx = a.presentation_contexts()[0].id;
    let send = |a: &mut dicom_ul::ClientAssociation<TcpStream>, t, is_last, d: Vec<u8>| {
        a.send(&Pdu::PData {
            data: vec![PDataValue {
                presentation_context_id: ctx,
                value_type: t,
                is_last,
                data: d,
            }],
        })
        .unwrap()
    };
    send(
        &mut a,
        PDataValueType::Command,
        true,
        dimse::store_rq(1, "1.2.840.10008.5.1.4.1.1.2", "2.25.1234"),
    );
    send(&mut a, PDataValueType::Data, last, data.to_vec());
    if !last {
        drop(a); // the connection closes mid-object
        return None;
    }
    let status = match a.receive().unwrap() {
        Pdu::PData { data } => dimse::Command::parse(&data[0].data).unwrap().status(),
        other => panic!("unexpected {other:?}"),
    };
    let _ = a.release();
    status
}

#[test]
fn a_sender_gone_mid_object_leaves_no_partial_spool_and_a_malformed_object_gets_c000() {
    if !dcmtk() {
        return;
    }
    let env = Env::new();
    let out = env.path("out");
    let gw = serve(&env, free_port(), &[out.display().to_string()], &[]);
    // The first 4 KiB of the CT's data set, then the connection closes.
    let ct = std::fs::read(testdata("dicom/ct_explicit_le.dcm")).unwrap();
    assert_eq!(
        raw_store(gw.port, &ct[ct.len() / 2..ct.len() / 2 + 4096], false),
        None
    );
    wait_for("the association to end", || gw.proc.log().contains("ended"));
    assert!(
        gw.proc.log().contains("stopped mid-object"),
        "{}",
        gw.proc.log()
    );
    assert!(files_in(&gw.spool.join("incoming")).is_empty());
    assert!(files_in(&out).is_empty());
    // A data set that does not parse: C000, in the manifest, never forwarded.
    let garbage: Vec<u8> = [0x08u8, 0x00, 0x05, 0x00, b'C', b'S', 0xFF, 0xFF]
        .into_iter()
        .chain(std::iter::repeat_n(0x41, 64))
        .collect();
    assert_eq!(
        raw_store(gw.port, &garbage, true),
        Some(dimse::status::CANNOT_UNDERSTAND)
    );
    let manifest = std::fs::read_to_string(gw.spool.join("quarantine/manifest.jsonl")).unwrap();
    assert!(manifest.contains("\"kind\":\"malformed\""), "{manifest}");
    assert!(manifest.contains("dimse://RAW/"), "{manifest}");
    std::thread::sleep(Duration::from_millis(300));
    assert!(files_in(&out).is_empty());
    assert_eq!(queued(&gw.spool), 0);
}

#[test]
fn a_calling_ae_not_allowed_is_rejected() {
    if !dcmtk() {
        return;
    }
    let env = Env::new();
    let gw = serve(
        &env,
        free_port(),
        &[env.path("out").display().to_string()],
        &["--allow", "MOD@127.0.0.1"],
    );
    let echo = |aet: &str| {
        Command::new("echoscu")
            .args(["-aet", aet, "-aec", "GW", "127.0.0.1"])
            .arg(gw.port.to_string())
            .output()
            .unwrap()
    };
    assert!(echo("MOD").status.success());
    let bad = echo("INTRUDER");
    assert!(!bad.status.success());
    let err = String::from_utf8_lossy(&bad.stderr);
    assert!(
        err.contains("Rejected") || err.contains("rejected"),
        "{err}"
    );
    let (_, ok) = storescu(
        gw.port,
        "INTRUDER",
        &[sample("dicom/ct_explicit_le.dcm")],
        &[],
    );
    assert_eq!(ok, 0);
    assert!(gw.proc.log().contains("refused"), "{}", gw.proc.log());
}

#[test]
fn a_full_spool_answers_a700() {
    if !dcmtk() {
        return;
    }
    let env = Env::new();
    let spool = env.path("spool");
    std::fs::create_dir_all(&spool).unwrap();
    let mounted = Command::new("mount")
        .args(["-t", "tmpfs", "-o", "size=2m", "tmpfs"])
        .arg(&spool)
        .output()
        .is_ok_and(|o| o.status.success());
    if !mounted {
        eprintln!("SKIPPED: a_full_spool_answers_a700: cannot mount a tmpfs here (not root?)");
        return;
    }
    struct Unmount(PathBuf);
    impl Drop for Unmount {
        fn drop(&mut self) {
            let _ = Command::new("umount").arg("-l").arg(&self.0).status();
        }
    }
    let _unmount = Unmount(spool.clone());
    let gw = serve(
        &env,
        free_port(),
        &[env.path("out").display().to_string()],
        &[],
    );
    // Fill the spool's file system, leaving too little for the CT.
    let filler = spool.join("filler");
    let _ = std::fs::write(&filler, vec![0u8; 2 * 1024 * 1024]);
    let (log, ok) = storescu(gw.port, "MOD", &[sample("dicom/ct_explicit_le.dcm")], &[]);
    assert_eq!(ok, 0, "{log}");
    assert!(log.contains("OutOfResources"), "{log}\n{}", gw.proc.log());
    assert!(gw.proc.log().contains("A700"), "{}", gw.proc.log());
    // Space again: the same object is taken.
    std::fs::remove_file(&filler).unwrap();
    let (log, ok) = storescu(gw.port, "MOD", &[sample("dicom/ct_explicit_le.dcm")], &[]);
    assert_eq!(ok, 1, "{log}");
}

#[test]
fn sigterm_stops_the_gateway_cleanly_and_the_queue_survives() {
    if !dcmtk() {
        return;
    }
    let env = Env::new();
    // Port 1: refused at once (a free port could meanwhile be taken by another
    // test's server, and a send to it would be in flight for its full timeout).
    let mut gw = serve(&env, free_port(), &[dimse_dest(1)], &[]);
    let (log, ok) = storescu(gw.port, "MOD", &[sample("dicom/ct_explicit_le.dcm")], &[]);
    assert_eq!(ok, 1, "{log}");
    let status = gw
        .proc
        .term(Duration::from_secs(20))
        .unwrap_or_else(|| panic!("no exit on SIGTERM: {}", gw.proc.log()));
    assert!(status.success());
    assert!(
        gw.proc.log().contains("1 objects stay queued"),
        "{}",
        gw.proc.log()
    );
    assert_eq!(queued(&gw.spool), 1);
}

#[test]
fn refuse_quarantined_answers_0122_and_forwards_nothing_of_it() {
    if !dcmtk() {
        return;
    }
    let env = Env::new();
    let out = env.path("out");
    let gw = serve(
        &env,
        free_port(),
        &[out.display().to_string()],
        &["--profile", "basic", "--refuse-quarantined"],
    );
    // A secondary capture without BurnedInAnnotation: the basic profile quarantines it.
    let (log, ok) = storescu(
        gw.port,
        "MOD",
        &[
            sample("dicom/ct_explicit_le.dcm"),
            sample("dicom/charset_latin1.dcm"),
        ],
        &[],
    );
    assert_eq!(ok, 1, "{log}");
    assert!(
        log.contains("SOPClassNotSupported") || log.contains("0x0122"),
        "{log}"
    );
    wait_for("the CT in the folder", || files_in(&out).len() == 1);
    let manifest = std::fs::read_to_string(gw.spool.join("quarantine/manifest.jsonl")).unwrap();
    assert!(manifest.contains("\"kind\":\"quarantined\""), "{manifest}");
    std::thread::sleep(Duration::from_millis(300));
    assert_eq!(files_in(&out).len(), 1);
}

/// Orthanc with its DICOMweb plugin, as a plain process on two free ports, HTTP
/// reachable from this host only. None when it is not installed (a failure under
/// CI=true or DICOM_DEID_EXTERNAL_CHECKS=1).
struct Orthanc {
    _proc: Proc,
    http: u16,
    dicom: u16,
}

const DICOMWEB_PLUGIN: &str = "/usr/share/orthanc/plugins/libOrthancDicomWeb.so";

fn orthanc(env: &Env, name: &str) -> Option<Orthanc> {
    let have = Command::new("Orthanc")
        .arg("--version")
        .output()
        .is_ok_and(|o| o.status.success())
        && Path::new(DICOMWEB_PLUGIN).exists();
    if !have {
        let required = std::env::var("CI").ok().as_deref() == Some("true")
            || std::env::var("DICOM_DEID_EXTERNAL_CHECKS").ok().as_deref() == Some("1");
        assert!(!required, "Orthanc and orthanc-dicomweb are required here");
        eprintln!("SKIPPED: gateway test: Orthanc or orthanc-dicomweb is not installed");
        return None;
    }
    let dir = env.path(name);
    std::fs::create_dir_all(dir.join("db")).unwrap();
    let (http, dicom) = (free_port(), free_port());
    let config = serde_json::json!({
        "Name": name,
        "StorageDirectory": dir.join("db"),
        "IndexDirectory": dir.join("db"),
        "HttpPort": http,
        "DicomPort": dicom,
        "DicomAet": "ORTHANC",
        "RemoteAccessAllowed": false,
        "AuthenticationEnabled": false,
        "DicomCheckCalledAet": false,
        "Plugins": [DICOMWEB_PLUGIN],
        "DicomWeb": { "Enable": true, "Root": "/dicom-web/" },
    });
    std::fs::create_dir_all(dir.join("config")).unwrap();
    std::fs::write(dir.join("config/orthanc.json"), config.to_string()).unwrap();
    let mut cmd = Command::new("Orthanc");
    cmd.arg(format!("{}/", dir.join("config").display()));
    let proc = spawn(&mut cmd, env.path(&format!("{name}.log")));
    wait_listening(http);
    wait_listening(dicom);
    Some(Orthanc {
        _proc: proc,
        http,
        dicom,
    })
}

fn get_json(url: &str) -> serde_json::Value {
    let text = ureq::get(url)
        .call()
        .unwrap_or_else(|e| panic!("GET {url}: {e}"))
        .body_mut()
        .read_to_string()
        .unwrap();
    serde_json::from_str(&text).unwrap()
}

/// Every instance in an Orthanc, as its simplified tags.
fn orthanc_instances(o: &Orthanc) -> Vec<serde_json::Value> {
    let base = format!("http://127.0.0.1:{}", o.http);
    get_json(&format!("{base}/instances"))
        .as_array()
        .unwrap()
        .iter()
        .map(|id| {
            get_json(&format!(
                "{base}/instances/{}/simplified-tags",
                id.as_str().unwrap()
            ))
        })
        .collect()
}

#[test]
fn orthanc_receives_de_identified_objects_by_c_store_and_by_stow_rs() {
    if !dcmtk() {
        return;
    }
    let env = Env::new();
    let Some(by_dimse) = orthanc(&env, "orthanc-dimse") else {
        return;
    };
    let Some(by_stow) = orthanc(&env, "orthanc-stow") else {
        return;
    };
    let gw = serve(
        &env,
        free_port(),
        &[
            format!("dimse://ORTHANC@127.0.0.1:{}", by_dimse.dicom),
            format!("dicomweb+http://127.0.0.1:{}/dicom-web", by_stow.http),
        ],
        &[],
    );
    let files = vec![
        sample("dicom/ct_explicit_le.dcm"),
        sample("dicom/mr_fake_phi_dicognito.dcm"),
        sample("dicom/rtplan_implicit_le.dcm"),
        sample("dicom/sr_comprehensive_nested.dcm"),
        sample("dicom/mr_explicit_be.dcm"),
    ];
    let (log, ok) = storescu(gw.port, "MOD", &files, &[]);
    assert_eq!(ok, files.len(), "{log}");
    let expected = uids_of(&files, SOP_INSTANCE).len();
    wait_for("the queues to drain", || queued(&gw.spool) == 0);
    let mut names = BTreeSet::new();
    let mut ids = BTreeSet::new();
    for f in &files {
        let o = open_file(f).unwrap();
        names.extend(text(&o, PATIENT_NAME).filter(|s| !s.is_empty()));
        ids.extend(text(&o, PATIENT_ID).filter(|s| !s.is_empty()));
    }
    let originals = uids_of(&files, SOP_INSTANCE);
    let mut seen = Vec::new();
    for o in [&by_dimse, &by_stow] {
        let got = orthanc_instances(o);
        assert_eq!(got.len(), expected, "{got:?}");
        let mut sops = BTreeSet::new();
        for tags in &got {
            let name = tags["PatientName"].as_str().unwrap_or("");
            assert!(name.is_empty() || !names.contains(name), "{tags}");
            assert!(
                !ids.contains(tags["PatientID"].as_str().unwrap_or("")),
                "{tags}"
            );
            assert_eq!(tags["PatientIdentityRemoved"], "YES", "{tags}");
            let sop = tags["SOPInstanceUID"].as_str().unwrap().to_string();
            assert!(!originals.contains(&sop));
            sops.insert(sop);
        }
        seen.push(sops);
    }
    // The same key gives the same new UIDs whichever way an object travelled.
    assert_eq!(seen[0], seen[1]);
    assert!(files_in(&gw.spool.join("dead")).is_empty());
}

#[test]
fn a_large_multi_frame_object_goes_through_whole_and_byte_identical() {
    if !dcmtk() || !crate::common::external_tools(false) {
        return;
    }
    let env = Env::new();
    // 48 MiB of pixel data: thousands of P-DATA PDUs each way.
    let big = env.path("big.dcm");
    let script = r#"
import sys, pydicom
from pydicom.dataset import FileDataset, FileMetaDataset
from pydicom.uid import ExplicitVRLittleEndian, generate_uid
m = FileMetaDataset()
m.MediaStorageSOPClassUID = "1.2.840.10008.5.1.4.1.1.2.1"
m.MediaStorageSOPInstanceUID = generate_uid()
m.TransferSyntaxUID = ExplicitVRLittleEndian
d = FileDataset(sys.argv[1], {}, file_meta=m, preamble=b"\0" * 128)
d.SOPClassUID = m.MediaStorageSOPClassUID
d.SOPInstanceUID = m.MediaStorageSOPInstanceUID
d.StudyInstanceUID = generate_uid(); d.SeriesInstanceUID = generate_uid()
d.PatientName = "LARGE^OBJECT"; d.PatientID = "L1"; d.Modality = "CT"
d.Rows = 512; d.Columns = 512; d.NumberOfFrames = 96
d.SamplesPerPixel = 1; d.PhotometricInterpretation = "MONOCHROME2"
d.BitsAllocated = 16; d.BitsStored = 16; d.HighBit = 15; d.PixelRepresentation = 0
d.PixelData = bytes(i * 7 % 251 for i in range(512 * 512 * 2 * 96))
d.save_as(sys.argv[1], enforce_file_format=True)
"#;
    let o = Command::new("python3")
        .args(["-c", script])
        .arg(&big)
        .output()
        .unwrap();
    assert!(o.status.success(), "{}", String::from_utf8_lossy(&o.stderr));
    let dest_port = free_port();
    let (_dest, received) = storescp(&env, "received", dest_port, &["-pm", "+xa"]);
    let gw = serve(&env, free_port(), &[dimse_dest(dest_port)], &[]);
    let (log, ok) = storescu(gw.port, "MOD", std::slice::from_ref(&big), &[]);
    assert_eq!(ok, 1, "{log}");
    wait_for("the object at storescp", || {
        files_in(&received).len() == 1 && queued(&gw.spool) == 0
    });
    let pixels = |p: &Path| {
        open_file(p)
            .unwrap()
            .element(dicom_core::Tag(0x7FE0, 0x0010))
            .unwrap()
            .to_bytes()
            .unwrap()
            .to_vec()
    };
    let got = &files_in(&received)[0];
    assert!(pixels(got) == pixels(&big), "pixel data changed on the way");
    assert_ne!(
        text(&open_file(got).unwrap(), PATIENT_NAME).as_deref(),
        Some("LARGE^OBJECT")
    );
}

/// A test CA and a certificate it signed for localhost and 127.0.0.1 (rustls takes
/// no self-signed CA certificate as a server's own), with openssl. None (skipped
/// loudly, or a failure under CI) when openssl is missing.
pub(crate) fn tls_files(env: &Env) -> Option<(PathBuf, PathBuf, PathBuf)> {
    let (ca, ca_key) = (env.path("ca.pem"), env.path("ca.key"));
    let (cert, key, csr) = (
        env.path("cert.pem"),
        env.path("key.pem"),
        env.path("cert.csr"),
    );
    let ext = env.path("ext.cnf");
    std::fs::write(
        &ext,
        "subjectAltName=DNS:localhost,IP:127.0.0.1\nbasicConstraints=CA:FALSE\n",
    )
    .unwrap();
    let ok = |args: &[&std::ffi::OsStr]| {
        Command::new("openssl")
            .args(args)
            .output()
            .is_ok_and(|o| o.status.success())
    };
    let s = |p: &PathBuf| p.as_os_str().to_owned();
    let made = ok(&[
        "req".as_ref(),
        "-x509".as_ref(),
        "-newkey".as_ref(),
        "rsa:2048".as_ref(),
        "-nodes".as_ref(),
        "-days".as_ref(),
        "2".as_ref(),
        "-subj".as_ref(),
        "/CN=dicom-deid test CA".as_ref(),
        "-keyout".as_ref(),
        &s(&ca_key),
        "-out".as_ref(),
        &s(&ca),
    ]) && ok(&[
        "req".as_ref(),
        "-newkey".as_ref(),
        "rsa:2048".as_ref(),
        "-nodes".as_ref(),
        "-subj".as_ref(),
        "/CN=localhost".as_ref(),
        "-keyout".as_ref(),
        &s(&key),
        "-out".as_ref(),
        &s(&csr),
    ]) && ok(&[
        "x509".as_ref(),
        "-req".as_ref(),
        "-in".as_ref(),
        &s(&csr),
        "-CA".as_ref(),
        &s(&ca),
        "-CAkey".as_ref(),
        &s(&ca_key),
        "-CAcreateserial".as_ref(),
        "-days".as_ref(),
        "2".as_ref(),
        "-extfile".as_ref(),
        &s(&ext),
        "-out".as_ref(),
        &s(&cert),
    ]);
    if !made {
        let required = std::env::var("CI").ok().as_deref() == Some("true")
            || std::env::var("DICOM_DEID_EXTERNAL_CHECKS").ok().as_deref() == Some("1");
        assert!(!required, "openssl is required here");
        eprintln!("SKIPPED: gateway TLS test: openssl is not installed");
        return None;
    }
    Some((ca, cert, key))
}

#[test]
fn dicom_tls_in_from_storescu_and_out_to_storescp() {
    if !dcmtk() {
        return;
    }
    let env = Env::new();
    let Some((ca, cert, key)) = tls_files(&env) else {
        return;
    };
    let p = |x: &PathBuf| x.to_str().unwrap().to_string();
    // The destination: storescp over TLS (it asks for no client certificate: -ic).
    let dest_port = free_port();
    let (_dest, received) = storescp(
        &env,
        "received",
        dest_port,
        &["+tls", &p(&key), &p(&cert), "-ic", "-pm", "+xa"],
    );
    let gw = serve(
        &env,
        free_port(),
        &[format!("dimse+tls://DEST@127.0.0.1:{dest_port}")],
        &[
            "--tls-cert",
            &p(&cert),
            "--tls-key",
            &p(&key),
            "--tls-ca",
            &p(&ca),
        ],
    );
    // TLS without a client certificate, the server's certificate checked against the CA.
    let (log, ok) = storescu(
        gw.port,
        "MOD",
        &[sample("dicom/ct_explicit_le.dcm")],
        &["+tla", "+cf", &p(&ca)],
    );
    assert_eq!(ok, 1, "{log}");
    wait_for("the object at the TLS storescp", || {
        files_in(&received).len() == 1 && queued(&gw.spool) == 0
    });
    // Plain DICOM on the TLS port is refused.
    let (log, ok) = storescu(
        gw.port,
        "MOD",
        &[sample("dicom/rtplan_implicit_le.dcm")],
        &[],
    );
    assert_eq!(ok, 0, "{log}");
    assert!(gw.proc.log().contains(", TLS) ended"), "{}", gw.proc.log());
    std::thread::sleep(Duration::from_millis(300));
    assert_eq!(files_in(&received).len(), 1);
}

#[test]
fn associations_over_the_limit_are_rejected_until_one_ends() {
    if !dcmtk() {
        return;
    }
    let env = Env::new();
    let gw = serve(
        &env,
        free_port(),
        &[env.path("out").display().to_string()],
        &["--max-associations", "1"],
    );
    use dicom_ul::association::client::ClientAssociationOptions;
    // The start-up probe's connection may still hold the one slot for a moment.
    let mut held = None;
    wait_for("the first association", || {
        held = ClientAssociationOptions::new()
            .calling_ae_title("HOLDER")
            .called_ae_title("GW")
            .with_abstract_syntax(dimse::VERIFICATION)
            .establish_with(&format!("GW@127.0.0.1:{}", gw.port))
            .ok();
        held.is_some()
    });
    let held = held.unwrap();
    let echo = || {
        Command::new("echoscu")
            .args(["-aet", "MOD", "-aec", "GW", "127.0.0.1"])
            .arg(gw.port.to_string())
            .output()
            .unwrap()
    };
    let busy = echo();
    assert!(!busy.status.success());
    let err = String::from_utf8_lossy(&busy.stderr);
    assert!(
        err.contains("Rejected") || err.contains("rejected"),
        "{err}"
    );
    assert!(
        gw.proc.log().contains("associations already open"),
        "{}",
        gw.proc.log()
    );
    let _ = held.release();
    wait_for("the slot to be free again", || echo().status.success());
}

/// A bucket as a destination: objects arrive de-identified under the same names a
/// folder gets; a re-sent object is harmless.
#[test]
fn an_s3_destination_gets_the_de_identified_objects() {
    if !dcmtk() {
        return;
    }
    let Some(weed) = crate::common::s3::server() else {
        return;
    };
    let env = Env::new();
    let port = free_port();
    let key = env.key("gw.key", 7);
    let mut cmd = weed.command(&env.path("state"));
    cmd.args([
        "serve",
        "--listen",
        &format!("127.0.0.1:{port}"),
        "--ae-title",
        "GW",
    ])
    .arg("--spool")
    .arg(env.path("spool"))
    .arg("--key-file")
    .arg(&key)
    .args(["--retry-base-ms", "200", "--retry-max-ms", "1000"])
    .arg("--profile")
    .arg(lenient_profile(&env))
    .args(["--forward", "s3://out/gateway"]);
    let _gw = spawn(&mut cmd, env.path("serve.log"));
    wait_listening(port);
    let files: Vec<PathBuf> = [
        "dicom/ct_explicit_le.dcm",
        "dicom/mr_implicit_le.dcm",
        "dicom/rtdose_multiframe.dcm",
    ]
    .iter()
    .map(|s| sample(s))
    .collect();
    let (log, ok) = storescu(port, "MOD", &files, &[]);
    assert_eq!(ok, files.len(), "{log}");
    wait_for("3 objects in the bucket", || {
        weed.keys("out", "gateway").len() == 3
    });
    // Sent again: the destination already has them, nothing new appears.
    let (log, ok) = storescu(port, "MOD", &files, &[]);
    assert_eq!(ok, files.len(), "{log}");
    wait_for("the queue to drain", || {
        std::fs::read_dir(env.path("spool").join("queue"))
            .map(|d| {
                d.filter_map(Result::ok)
                    .all(|q| std::fs::read_dir(q.path()).map_or(true, |mut e| e.next().is_none()))
            })
            .unwrap_or(false)
    });
    let got = env.path("got");
    let names = weed.download("out", "gateway", &got);
    assert_eq!(names.len(), 3, "{names:?}");
    for n in names {
        assert!(n.to_string_lossy().ends_with(".dcm"), "{}", n.display());
        let obj = open_file(got.join(&n)).unwrap();
        assert_eq!(text(&obj, IDENTITY_REMOVED).as_deref(), Some("YES"));
        let id = text(&obj, PATIENT_ID).unwrap_or_default();
        for f in &files {
            let orig = open_file(f).unwrap();
            let orig_id = text(&orig, PATIENT_ID).unwrap_or_default();
            assert!(orig_id.is_empty() || orig_id != id, "patient ID kept");
            assert_ne!(text(&orig, SOP_INSTANCE), text(&obj, SOP_INSTANCE));
        }
    }
}

/// `run --out dimse://`: the same report and resume as a folder run, objects sent
/// by C-STORE instead of written; a second run skips what the destination
/// confirmed.
#[test]
fn run_sends_to_a_dicom_node_and_resumes_by_what_it_confirmed() {
    if !dcmtk() {
        return;
    }
    let env = Env::new();
    let port = free_port();
    let (_dest, received) = storescp(&env, "received", port, &["-pm", "+xa"]);
    let key = env.key("k", 3);
    let report = env.path("r.jsonl");
    let state = env.path("state");
    let input = testdata("dicom");
    let run = |report: &Path| {
        Command::new(BIN)
            .env_remove("DICOM_DEID_KEY_FILE")
            .arg("run")
            .arg(&input)
            .arg("--out")
            .arg(format!("dimse://DEST@127.0.0.1:{port}"))
            .arg("--key-file")
            .arg(&key)
            .arg("--state-dir")
            .arg(&state)
            .arg("--report")
            .arg(report)
            .output()
            .unwrap()
    };
    let o = run(&report);
    let err = String::from_utf8_lossy(&o.stderr);
    assert_eq!(o.status.code(), Some(1), "only the quarantined fail: {err}");
    let (lines, summary) = crate::common::report(&report);
    let written = summary["written"].as_u64().unwrap();
    assert!(written >= 8, "{summary}");
    assert!(
        lines
            .iter()
            .filter_map(|l| l["output"].as_str())
            .all(|o| o.starts_with(&format!("dimse://DEST@127.0.0.1:{port}/"))),
        "{lines:?}"
    );
    wait_for("every object at storescp", || {
        walkdir::WalkDir::new(&received)
            .into_iter()
            .filter_map(Result::ok)
            .filter(|e| e.file_type().is_file())
            .count() as u64
            == written
    });
    for e in walkdir::WalkDir::new(&received)
        .into_iter()
        .filter_map(Result::ok)
        .filter(|e| e.file_type().is_file())
    {
        let obj = open_file(e.path()).unwrap();
        assert_eq!(text(&obj, IDENTITY_REMOVED).as_deref(), Some("YES"));
    }
    let again = env.path("r2.jsonl");
    run(&again);
    let (_, s2) = crate::common::report(&again);
    assert_eq!(s2["written"].as_u64(), Some(0), "{s2}");
    assert_eq!(s2["skipped_unchanged"].as_u64(), Some(written), "{s2}");
}

/// A compressed object whose frames do not decode while a pixel rule redacts it
/// shows only as it is written: it is quarantined (manifest kind `quarantined`,
/// 0122 with --refuse-quarantined), not a write failure, and nothing of it is
/// forwarded; the intact copy sent with it arrives redacted.
#[test]
fn compressed_frames_that_do_not_decode_are_quarantined() {
    use dicom_core::value::{PixelFragmentSequence, Value};
    use dicom_core::{DataElement, Tag, VR};
    if !dcmtk() {
        return;
    }
    let env = Env::new();
    let good = sample("dicom/sc_rle_multiframe.dcm");
    let bad = env.path("bad_rle.dcm");
    let mut obj = open_file(&good).unwrap();
    let pixel_data = Tag(0x7FE0, 0x0010);
    let mut frags = obj
        .element(pixel_data)
        .unwrap()
        .value()
        .fragments()
        .unwrap()
        .to_vec();
    frags[1].truncate(100);
    obj.put(DataElement::new(
        pixel_data,
        VR::OB,
        Value::PixelSequence(PixelFragmentSequence::new(Vec::<u32>::new(), frags)),
    ));
    obj.write_to_file(&bad).unwrap();
    let prof = env.path("p.yaml");
    std::fs::write(&prof, "extends: basic\npixels: {unmatched: blank}\n").unwrap();
    let out = env.path("out");
    let gw = serve(
        &env,
        free_port(),
        &[out.display().to_string()],
        &["--profile", prof.to_str().unwrap(), "--refuse-quarantined"],
    );
    let cfg = compressed_config(&env);
    let (log, ok) = storescu(
        gw.port,
        "MOD",
        &[bad, good],
        &["-xf", cfg.to_str().unwrap(), "Compressed"],
    );
    assert_eq!(ok, 1, "{log}");
    assert!(
        log.contains("SOPClassNotSupported") || log.contains("0x0122"),
        "{log}"
    );
    wait_for("the intact copy in the folder", || {
        files_in(&out).len() == 1
    });
    let manifest = std::fs::read_to_string(gw.spool.join("quarantine/manifest.jsonl")).unwrap();
    assert!(
        manifest.contains("\"kind\":\"quarantined\"")
            && manifest.contains("compressed pixel data cannot be redacted: frame 2"),
        "{manifest}"
    );
    std::thread::sleep(Duration::from_millis(300));
    assert_eq!(files_in(&out).len(), 1);
}
