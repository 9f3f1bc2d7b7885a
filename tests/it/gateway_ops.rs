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
