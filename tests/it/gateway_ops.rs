//! `serve` run as a site runs it: from a YAML config, across restarts, with
//! series held until stable, with client certificates. Real peers as in
//! `gateway.rs` (dcmtk's storescu and storescp), whose helpers these tests share.

use crate::common::{BIN, Env, lenient_profile};
use crate::gateway::{
    IDENTITY_REMOVED, dcmtk, files_in, free_port, queued, sample, spawn, storescp, storescu, text,
    wait_for, wait_listening,
};
use dicom_object::open_file;
use std::process::Command;
use std::time::{Duration, Instant};

/// `serve --config serve.yaml` with every setting in the file, started from another
/// folder (relative paths are the file's): `--check` passes without listening or
/// making the spool, then the gateway takes what storescu sends from an allowed AE,
/// refuses an AE the file does not allow, and forwards to storescp. A typo in a key
/// is refused with the nearest key named.
#[test]
fn serve_from_a_yaml_config_receives_and_forwards() {
    if !dcmtk() {
        return;
    }
    let env = Env::new();
    let dest_port = free_port();
    let (_dest, received) = storescp(&env, "received", dest_port, &["-pm", "+xa"]);
    let port = free_port();
    env.key("gw.key", 7);
    lenient_profile(&env);
    let cfg = env.path("serve.yaml");
    std::fs::write(
        &cfg,
        format!(
            "# the gateway\nlisten: 127.0.0.1:{port}\nae-title: GW\nallow: [MOD@127.0.0.1]\n\
             spool: spool\nkey-file: gw.key\nprofile: lenient.yaml\n\
             forward:\n  - dimse://DEST@127.0.0.1:{dest_port}\n\
             max-per-ae: 2\nidle-timeout: 20\nmax-attempts: 50\nretry-base-ms: 200\n\
             retry-max-ms: 1000\n"
        ),
    )
    .unwrap();
    let gw = |extra: &[&str]| {
        let mut c = Command::new(BIN);
        c.env_remove("DICOM_DEID_KEY_FILE")
            .current_dir("/")
            .arg("serve")
            .arg("--config")
            .arg(&cfg)
            .args(extra);
        c
    };

    let o = gw(&["--check"]).output().unwrap();
    let err = String::from_utf8_lossy(&o.stderr);
    assert!(o.status.success(), "{err}");
    assert!(err.contains("configuration OK"), "{err}");
    assert!(err.contains(&format!("127.0.0.1:{port}")), "{err}");
    assert!(!env.path("spool").exists(), "--check made the spool");
    assert!(
        std::net::TcpStream::connect(("127.0.0.1", port)).is_err(),
        "--check listens"
    );

    let _serve = spawn(&mut gw(&[]), env.path("serve.log"));
    wait_listening(port);
    let files = vec![
        sample("dicom/ct_explicit_le.dcm"),
        sample("dicom/mr_implicit_le.dcm"),
    ];
    let (log, ok) = storescu(port, "MOD", &files, &[]);
    assert_eq!(ok, 2, "{log}");
    let (log, ok) = storescu(port, "OTHER", &files[..1], &[]);
    assert_eq!(ok, 0, "an AE the config does not allow got in: {log}");
    let spool = env.path("spool");
    wait_for("both objects at storescp", || {
        files_in(&received).len() == 2 && queued(&spool) == 0
    });
    for f in files_in(&received) {
        let obj = open_file(&f).unwrap();
        assert_eq!(text(&obj, IDENTITY_REMOVED).as_deref(), Some("YES"));
    }
    let log = std::fs::read_to_string(env.path("serve.log")).unwrap();
    assert!(log.contains("as `GW`"), "{log}");
    // The key's fingerprint may be logged, never the key.
    assert!(!log.contains(&"H".repeat(32)), "{log}");

    // A flag wins over the file: another AE title, checked.
    let o = gw(&["--check", "--ae-title", "OTHERGW"]).output().unwrap();
    let err = String::from_utf8_lossy(&o.stderr);
    assert!(o.status.success() && err.contains("as `OTHERGW`"), "{err}");

    // A typo: exit 2, the file, line and key named, and the key meant.
    let bad = env.path("bad.yaml");
    std::fs::write(
        &bad,
        format!("listen: 127.0.0.1:{port}\nspool: s\nforward: [out]\nmax-atempts: 3\n"),
    )
    .unwrap();
    let o = Command::new(BIN)
        .args(["serve", "--check", "--config"])
        .arg(&bad)
        .output()
        .unwrap();
    let err = String::from_utf8_lossy(&o.stderr);
    assert_eq!(o.status.code(), Some(2), "{err}");
    assert!(err.contains("bad.yaml:4:"), "{err}");
    assert!(err.contains("`max-atempts`"), "{err}");
    assert!(err.contains("did you mean `max-attempts`?"), "{err}");
}

/// The failed attempts of a queued object, from its sidecar (None before the first).
fn failed_attempts(queue: &std::path::Path) -> Option<u32> {
    files_in(queue)
        .iter()
        .find(|p| p.to_string_lossy().ends_with(".dcm.retry"))
        .and_then(|p| std::fs::read_to_string(p).ok())
        .and_then(|t| {
            t.lines()
                .find_map(|l| l.strip_prefix("failed-attempts "))
                .and_then(|n| n.trim().parse().ok())
        })
}

/// A destination that never answers, `--max-attempts 3`: two attempts fail, the
/// gateway is killed (-9) and started again, and the object is dead-lettered after
/// one more attempt, not three, and not before the next-attempt time the first
/// process recorded.
#[test]
fn retry_counts_survive_kill_9_and_a_failing_destination_still_dead_letters() {
    if !dcmtk() {
        return;
    }
    let env = Env::new();
    let dest_port = free_port(); // nothing listens there
    let dest = format!("dimse://DEST@127.0.0.1:{dest_port}");
    let key = env.key("gw.key", 7);
    let spool = env.path("spool");
    let start = |n: u32, port: u16| {
        let mut c = Command::new(BIN);
        c.env_remove("DICOM_DEID_KEY_FILE")
            .args(["serve", "--listen", &format!("127.0.0.1:{port}")])
            .args(["--ae-title", "GW", "--forward", &dest])
            .arg("--spool")
            .arg(&spool)
            .arg("--key-file")
            .arg(&key)
            .arg("--profile")
            .arg(lenient_profile(&env))
            // Attempt 2 comes 1.5 s after the first, attempt 3 3 s after the second:
            // time enough to kill between them.
            .args(["--max-attempts", "3", "--retry-base-ms", "1500"])
            .args(["--retry-max-ms", "60000"]);
        let p = spawn(&mut c, env.path(&format!("serve-{n}.log")));
        wait_listening(port);
        p
    };
    let port = free_port();
    let mut first = start(1, port);
    let (log, ok) = storescu(port, "MOD", &[sample("dicom/ct_explicit_le.dcm")], &[]);
    assert_eq!(ok, 1, "{log}");
    let queue = spool
        .join("queue")
        .join(format!("dimse-DEST-127.0.0.1-{dest_port}"));
    wait_for("two failed attempts recorded", || {
        failed_attempts(&queue) == Some(2)
    });
    let second_failed = Instant::now();
    first.kill9();
    assert_eq!(queued(&spool), 1);

    let port = free_port();
    let second = start(2, port);
    let dead = spool
        .join("dead")
        .join(format!("dimse-DEST-127.0.0.1-{dest_port}"));
    let is_dead = || {
        files_in(&dead)
            .iter()
            .any(|p| p.extension().is_some_and(|x| x == "dcm"))
    };
    wait_for("the dead letter after the restart", is_dead);
    // Not before the next attempt's time (3 s after the second failure).
    assert!(
        second_failed.elapsed() >= Duration::from_millis(2800),
        "sent {:?} after the second failure",
        second_failed.elapsed()
    );
    let reason: String = files_in(&dead)
        .iter()
        .filter(|p| p.to_string_lossy().ends_with(".reason.txt"))
        .map(|p| std::fs::read_to_string(p).unwrap())
        .collect();
    assert!(reason.contains("gave up after 3 attempts"), "{reason}");
    let log = second.log();
    assert!(
        log.contains("had failed attempts before this start"),
        "{log}"
    );
    assert_eq!(
        log.matches("retrying in").count(),
        1,
        "the restarted gateway tried more than once: {log}"
    );
    assert_eq!(queued(&spool), 0);
    assert!(
        !files_in(&queue)
            .iter()
            .any(|p| p.to_string_lossy().ends_with(".retry")),
        "a sidecar outlived its object"
    );
}

/// `n` copies of the CT sample in one new series of its own (new Series and SOP
/// Instance UIDs, by dcmodify).
fn series(env: &Env, name: &str, n: usize) -> Vec<std::path::PathBuf> {
    let dir = env.path(name);
    std::fs::create_dir_all(&dir).unwrap();
    let files: Vec<_> = (0..n)
        .map(|i| {
            let p = dir.join(format!("{i}.dcm"));
            std::fs::copy(sample("dicom/ct_explicit_le.dcm"), &p).unwrap();
            p
        })
        .collect();
    // One new series UID for all, then a new instance UID each.
    let o = Command::new("dcmodify")
        .args(["-nb", "-gse"])
        .arg(&files[0])
        .output()
        .unwrap();
    assert!(o.status.success(), "{}", String::from_utf8_lossy(&o.stderr));
    for f in &files[1..] {
        std::fs::copy(&files[0], f).unwrap();
    }
    let o = Command::new("dcmodify")
        .args(["-nb", "-gin"])
        .args(&files)
        .output()
        .unwrap();
    assert!(o.status.success(), "{}", String::from_utf8_lossy(&o.stderr));
    files
}

/// The Series Instance UIDs of what arrived, with how many objects each.
fn arrived_series(dir: &std::path::Path) -> std::collections::BTreeMap<String, usize> {
    let mut m = std::collections::BTreeMap::new();
    for f in files_in(dir) {
        // storescp writes in place: a file still being written may not parse yet.
        if let Ok(obj) = open_file(&f)
            && let Some(s) = text(&obj, dicom_core::Tag(0x0020, 0x000E))
        {
            *m.entry(s).or_insert(0) += 1;
        }
    }
    m
}

/// Polls (every 20 ms, at most 30 s) until `cond`; returns when it became true.
fn when(what: &str, mut cond: impl FnMut() -> bool) -> Instant {
    let end = Instant::now() + Duration::from_secs(30);
    while Instant::now() < end {
        if cond() {
            return Instant::now();
        }
        std::thread::sleep(Duration::from_millis(20));
    }
    panic!("timed out waiting for {what}");
}

/// `--stable-age 3` towards storescp: nothing of a series arrives while objects of
/// it keep coming; all of it arrives 3 s after its last object; a second series
/// sent later is held on its own clock. The clock is the queue's arrival times on
/// disk: after `kill -9` and a restart, a held series is released 3 s after it
/// arrived, not 3 s after the restart.
#[test]
fn stable_age_holds_each_series_until_it_is_quiet_even_across_a_restart() {
    if !dcmtk() {
        return;
    }
    let env = Env::new();
    let dest_port = free_port();
    let (_dest, received) = storescp(&env, "received", dest_port, &["-pm", "+xa"]);
    let a = series(&env, "a", 3);
    let b = series(&env, "b", 1);
    let c = series(&env, "c", 2);
    let key = env.key("gw.key", 7);
    let spool = env.path("spool");
    let start = |n: u32, port: u16| {
        let mut cmd = Command::new(BIN);
        cmd.env_remove("DICOM_DEID_KEY_FILE")
            .args(["serve", "--listen", &format!("127.0.0.1:{port}")])
            .args(["--ae-title", "GW", "--stable-age", "3"])
            .arg("--forward")
            .arg(format!("dimse://DEST@127.0.0.1:{dest_port}"))
            .arg("--spool")
            .arg(&spool)
            .arg("--key-file")
            .arg(&key)
            .arg("--profile")
            .arg(lenient_profile(&env));
        let p = spawn(&mut cmd, env.path(&format!("serve-{n}.log")));
        wait_listening(port);
        p
    };
    let port = free_port();
    let mut gw = start(1, port);
    let send = |files: &[std::path::PathBuf]| {
        let (log, ok) = storescu(port, "MOD", files, &[]);
        assert_eq!(ok, files.len(), "{log}");
    };
    send(&a[..2]);
    std::thread::sleep(Duration::from_millis(1500));
    assert!(files_in(&received).is_empty(), "series A left before 3 s");
    // A third object of A 1.5 s later: the clock starts again.
    let a_last = Instant::now();
    send(&a[2..]);
    std::thread::sleep(Duration::from_millis(1500));
    let b_sent = Instant::now();
    send(&b);
    let a_arrived = when("series A at storescp", || {
        arrived_series(&received).values().sum::<usize>() >= 3
    });
    assert!(
        a_arrived - a_last >= Duration::from_secs(3),
        "series A arrived {:?} after its last object",
        a_arrived - a_last
    );
    let got = arrived_series(&received);
    assert_eq!(got.len(), 1, "series B came with A: {got:?}");
    assert_eq!(got.values().copied().collect::<Vec<_>>(), vec![3]);
    let b_arrived = when("series B at storescp", || {
        arrived_series(&received).len() == 2
    });
    assert!(
        b_arrived - b_sent >= Duration::from_secs(3),
        "series B arrived {:?} after it was sent",
        b_arrived - b_sent
    );

    // Series C is queued, the gateway killed at once and restarted 2 s after C
    // arrived: C leaves at 3 s after its arrival, not 3 s after the restart.
    let c_sent = Instant::now();
    send(&c);
    gw.kill9();
    assert_eq!(queued(&spool), 2);
    std::thread::sleep(Duration::from_millis(2000).saturating_sub(c_sent.elapsed()));
    let restarted = Instant::now();
    let _gw = start(2, free_port());
    let c_arrived = when("series C at storescp", || {
        arrived_series(&received).values().sum::<usize>() == 6
    });
    assert!(
        c_arrived - c_sent >= Duration::from_secs(3),
        "series C arrived {:?} after it was sent",
        c_arrived - c_sent
    );
    assert!(
        c_arrived - restarted < Duration::from_secs(3),
        "series C waited {:?} after the restart: the clock was reset",
        c_arrived - restarted
    );
    let got = arrived_series(&received);
    assert_eq!(got.len(), 3, "{got:?}");
    for obj in files_in(&received) {
        assert_eq!(
            text(&open_file(&obj).unwrap(), IDENTITY_REMOVED).as_deref(),
            Some("YES")
        );
    }
}

/// A client certificate (and key) for `cn`, signed by the CA at `ca`/`ca_key`, or
/// self-signed when `ca` is None (a stranger's).
fn client_cert(
    env: &Env,
    cn: &str,
    ca: Option<(&std::path::Path, &std::path::Path)>,
) -> (String, String) {
    let (cert, key, csr, ext) = (
        env.path(&format!("{cn}.pem")),
        env.path(&format!("{cn}.key")),
        env.path(&format!("{cn}.csr")),
        env.path(&format!("{cn}.cnf")),
    );
    std::fs::write(
        &ext,
        "basicConstraints=CA:FALSE\nextendedKeyUsage=clientAuth\nkeyUsage=digitalSignature\n",
    )
    .unwrap();
    let run = |args: &[&std::ffi::OsStr]| {
        let o = Command::new("openssl").args(args).output().unwrap();
        assert!(o.status.success(), "{}", String::from_utf8_lossy(&o.stderr));
    };
    let subj = format!("/CN={cn}");
    run(&[
        "req".as_ref(),
        "-newkey".as_ref(),
        "rsa:2048".as_ref(),
        "-nodes".as_ref(),
        "-subj".as_ref(),
        subj.as_ref(),
        "-keyout".as_ref(),
        key.as_os_str(),
        "-out".as_ref(),
        csr.as_os_str(),
    ]);
    let mut sign: Vec<&std::ffi::OsStr> = vec![
        "x509".as_ref(),
        "-req".as_ref(),
        "-in".as_ref(),
        csr.as_os_str(),
        "-days".as_ref(),
        "2".as_ref(),
        "-extfile".as_ref(),
        ext.as_os_str(),
        "-out".as_ref(),
        cert.as_os_str(),
    ];
    match ca {
        Some((ca, ca_key)) => sign.extend([
            "-CA".as_ref(),
            ca.as_os_str(),
            "-CAkey".as_ref(),
            ca_key.as_os_str(),
            "-CAcreateserial".as_ref(),
        ]),
        None => sign.extend(["-signkey".as_ref(), key.as_os_str()]),
    }
    run(&sign);
    (
        cert.to_str().unwrap().to_string(),
        key.to_str().unwrap().to_string(),
    )
}

/// Mutual TLS. In: with `--tls-client-ca`, storescu presenting a certificate the CA
/// signed gets in; storescu with no certificate, or with one the CA did not sign,
/// is rejected. Out: storescp requiring a client certificate (its default) gets the
/// objects of a gateway that presents one (`--tls-client-cert`), and nothing from
/// a gateway that presents none.
#[test]
fn tls_client_certificates_are_required_in_and_presented_out() {
    if !dcmtk() {
        return;
    }
    let env = Env::new();
    let Some((ca, cert, key)) = crate::gateway::tls_files(&env) else {
        return;
    };
    let ca_key = env.path("ca.key");
    let p = |x: &std::path::PathBuf| x.to_str().unwrap().to_string();
    let (mod_cert, mod_key) = client_cert(&env, "modality", Some((&ca, &ca_key)));
    let (gw_cert, gw_key) = client_cert(&env, "gateway", Some((&ca, &ca_key)));
    let (rogue_cert, rogue_key) = client_cert(&env, "rogue", None);

    // storescp over TLS, requiring a client certificate the CA signed (dcmtk's
    // default, -rc).
    let dest_port = free_port();
    let (_dest, received) = storescp(
        &env,
        "received",
        dest_port,
        &["+tls", &p(&key), &p(&cert), "+cf", &p(&ca), "-pm", "+xa"],
    );
    let dest = format!("dimse+tls://DEST@127.0.0.1:{dest_port}");
    let key_file = env.key("gw.key", 7);
    let gateway = |name: &str, port: u16, client: bool| {
        let mut c = Command::new(BIN);
        c.env_remove("DICOM_DEID_KEY_FILE")
            .args(["serve", "--listen", &format!("127.0.0.1:{port}")])
            .args(["--ae-title", "GW", "--forward", &dest])
            .arg("--spool")
            .arg(env.path(&format!("spool-{name}")))
            .arg("--key-file")
            .arg(&key_file)
            .arg("--profile")
            .arg(lenient_profile(&env))
            .args(["--retry-base-ms", "200", "--retry-max-ms", "1000"])
            .args(["--tls-cert", &p(&cert), "--tls-key", &p(&key)])
            .args(["--tls-client-ca", &p(&ca), "--tls-ca", &p(&ca)]);
        if client {
            c.args(["--tls-client-cert", &gw_cert, "--tls-client-key", &gw_key]);
        }
        let proc = spawn(&mut c, env.path(&format!("serve-{name}.log")));
        wait_listening(port);
        proc
    };
    let port = free_port();
    let gw = gateway("mtls", port, true);
    let ct = [sample("dicom/ct_explicit_le.dcm")];
    let (log, ok) = storescu(
        port,
        "MOD",
        &ct,
        &["+tls", &mod_key, &mod_cert, "+cf", &p(&ca)],
    );
    assert_eq!(ok, 1, "a certificate the CA signed was refused: {log}");
    let (log, ok) = storescu(port, "MOD", &ct, &["+tla", "+cf", &p(&ca)]);
    assert_eq!(ok, 0, "no client certificate, yet accepted: {log}");
    let (log, ok) = storescu(
        port,
        "MOD",
        &ct,
        &["+tls", &rogue_key, &rogue_cert, "+cf", &p(&ca)],
    );
    assert_eq!(ok, 0, "a stranger's certificate was accepted: {log}");
    let spool = env.path("spool-mtls");
    wait_for(
        "the object at the storescp that requires a client certificate",
        || files_in(&received).len() == 1 && queued(&spool) == 0,
    );
    let log = gw.log();
    assert!(
        log.contains("(DICOM TLS, client certificates required)"),
        "{log}"
    );
    assert_eq!(log.matches(", TLS) ended").count(), 1, "{log}");
    // The refusals say why, from rustls under dicom-ul's error.
    assert!(log.contains("peer sent no certificates"), "{log}");
    assert!(log.contains("UnknownIssuer"), "{log}");
    assert!(!log.contains("PRIVATE KEY"), "{log}");

    // A gateway presenting no certificate: storescp refuses it, the object waits.
    let port = free_port();
    let bare = gateway("bare", port, false);
    let (log, ok) = storescu(
        port,
        "MOD",
        &[sample("dicom/mr_implicit_le.dcm")],
        &["+tls", &mod_key, &mod_cert, "+cf", &p(&ca)],
    );
    assert_eq!(ok, 1, "{log}");
    wait_for("a failed forward", || bare.log().contains("retrying in"));
    assert_eq!(queued(&env.path("spool-bare")), 1);
    assert_eq!(files_in(&received).len(), 1);
}

/// `run --out dimse+tls://`: the form `serve --forward` takes, checked against
/// `--tls-ca`, with a client certificate for a storescp that requires one; every
/// object arrives de-identified, and a second run skips what storescp confirmed.
/// Without `--tls-ca` the run stops before any file (exit 2).
#[test]
fn run_sends_over_dicom_tls_with_a_client_certificate() {
    if !dcmtk() {
        return;
    }
    let env = Env::new();
    let Some((ca, cert, key)) = crate::gateway::tls_files(&env) else {
        return;
    };
    let p = |x: &std::path::PathBuf| x.to_str().unwrap().to_string();
    let (client, client_key) = client_cert(&env, "runner", Some((&ca, &env.path("ca.key"))));
    let port = free_port();
    let (_dest, received) = storescp(
        &env,
        "received",
        port,
        &["+tls", &p(&key), &p(&cert), "+cf", &p(&ca), "-pm", "+xa"],
    );
    let input = env.inputs(&[
        "dicom/ct_explicit_le.dcm",
        "dicom/mr_implicit_le.dcm",
        "dicom/rtplan_implicit_le.dcm",
    ]);
    let run_key = env.key("k", 3);
    let out = format!("dimse+tls://DEST@127.0.0.1:{port}");
    let run = |report: &std::path::Path, tls: bool| {
        let mut c = Command::new(BIN);
        c.env_remove("DICOM_DEID_KEY_FILE")
            .arg("run")
            .arg(&input)
            .args(["--out", &out])
            .arg("--key-file")
            .arg(&run_key)
            .arg("--state-dir")
            .arg(env.path("state"))
            .arg("--report")
            .arg(report)
            .arg("--profile")
            .arg(lenient_profile(&env));
        if tls {
            c.args(["--tls-ca", &p(&ca)]).args([
                "--tls-client-cert",
                &client,
                "--tls-client-key",
                &client_key,
            ]);
        }
        c.output().unwrap()
    };
    let o = run(&env.path("none.jsonl"), false);
    let err = String::from_utf8_lossy(&o.stderr);
    assert_eq!(o.status.code(), Some(2), "{err}");
    assert!(err.contains("--tls-ca"), "{err}");
    assert!(files_in(&received).is_empty());

    let report = env.path("r.jsonl");
    let o = run(&report, true);
    let err = String::from_utf8_lossy(&o.stderr);
    assert!(o.status.success(), "{err}");
    let (lines, summary) = crate::common::report(&report);
    assert_eq!(summary["written"].as_u64(), Some(3), "{summary}");
    assert!(
        lines
            .iter()
            .filter_map(|l| l["output"].as_str())
            .all(|o| o.starts_with(&format!("{out}/"))),
        "{lines:?}"
    );
    wait_for("3 objects at the TLS storescp", || {
        files_in(&received).len() == 3
    });
    for f in files_in(&received) {
        assert_eq!(
            text(&open_file(&f).unwrap(), IDENTITY_REMOVED).as_deref(),
            Some("YES")
        );
    }
    let again = env.path("r2.jsonl");
    let o = run(&again, true);
    assert!(o.status.success(), "{}", String::from_utf8_lossy(&o.stderr));
    let (_, s2) = crate::common::report(&again);
    assert_eq!(s2["skipped_unchanged"].as_u64(), Some(3), "{s2}");
}
