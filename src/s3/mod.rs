//! S3-compatible object storage: `s3://bucket/prefix` URLs, one client per bucket,
//! and the blocking bridge the workers use. Reading ([`input`]), listing ([`list`])
//! and the multipart housekeeping ([`uploads`]) live beside it; the sink is
//! `store::s3`. Nothing here knows a profile rule.
//!
//! The client is Apache Arrow's `object_store` (async); rayon workers call it
//! through one small tokio runtime with [`block_on`].

pub mod input;
pub mod list;
pub mod uploads;

use object_store::aws::{AmazonS3, AmazonS3Builder};
use object_store::{ObjectStore, ObjectStoreExt, RetryConfig};
use std::sync::{Arc, OnceLock};
use std::time::Duration;

/// An `s3://bucket/prefix` location. The prefix has no leading or trailing slash.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct S3Url {
    pub bucket: String,
    pub prefix: String,
}

impl S3Url {
    /// Parses `s3://bucket[/prefix]`; `None` when `s` is not an S3 URL at all.
    pub fn parse(s: &str) -> Option<Result<S3Url, S3Error>> {
        let rest = s.strip_prefix("s3://")?;
        let (bucket, prefix) = rest.split_once('/').unwrap_or((rest, ""));
        // Bucket names: 3 to 63 lowercase letters, digits, dots and hyphens.
        let valid = (3..=63).contains(&bucket.len())
            && bucket
                .bytes()
                .all(|b| b.is_ascii_lowercase() || b.is_ascii_digit() || b == b'.' || b == b'-');
        if !valid {
            return Some(Err(S3Error::Url(format!(
                "`{s}`: the bucket name must be 3 to 63 lowercase letters, digits, dots or hyphens"
            ))));
        }
        let prefix = prefix.trim_matches('/');
        if prefix.split('/').any(|p| p == "." || p == "..")
            || (!prefix.is_empty() && prefix.split('/').any(str::is_empty))
        {
            return Some(Err(S3Error::Url(format!(
                "`{s}`: the prefix must not hold empty, `.` or `..` segments"
            ))));
        }
        Some(Ok(S3Url {
            bucket: bucket.to_string(),
            prefix: prefix.to_string(),
        }))
    }

    /// The key of `rel` (a relative path such as `a/b.dcm`) under the prefix.
    pub fn key(&self, rel: &str) -> String {
        if self.prefix.is_empty() {
            rel.to_string()
        } else {
            format!("{}/{rel}", self.prefix)
        }
    }

    /// The URL of a key in this bucket, as reports show it.
    pub fn url_of(&self, key: &str) -> String {
        format!("s3://{}/{key}", self.bucket)
    }

    /// The prefix as listings want it: empty, or ending in `/`.
    pub fn dir_prefix(&self) -> String {
        if self.prefix.is_empty() {
            String::new()
        } else {
            format!("{}/", self.prefix)
        }
    }
}

impl std::fmt::Display for S3Url {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        if self.prefix.is_empty() {
            write!(f, "s3://{}", self.bucket)
        } else {
            write!(f, "s3://{}/{}", self.bucket, self.prefix)
        }
    }
}

/// What went wrong talking to a store. Messages are ours: a store's error body can
/// quote the access key id, so it is never passed on verbatim (see [`redact`]).
#[derive(Debug, thiserror::Error)]
pub enum S3Error {
    #[error("{0}")]
    Url(String),
    #[error("bucket `{0}` does not exist (or the endpoint is not an S3 store)")]
    NoBucket(String),
    #[error(
        "access denied to bucket `{0}`: check AWS_ACCESS_KEY_ID / AWS_SECRET_ACCESS_KEY \
         (or the profile's permissions)"
    )]
    Denied(String),
    #[error("object not found")]
    NotFound,
    #[error("the object changed while it was read (its ETag no longer matches)")]
    Changed,
    #[error("an object already exists under this key")]
    Exists,
    #[error("object store: {0}")]
    Other(String),
}

impl S3Error {
    /// Maps a client error to ours, with secrets taken out of any text kept.
    pub fn from_store(e: object_store::Error, bucket: &str) -> S3Error {
        use object_store::Error as E;
        match e {
            E::NotFound { ref source, .. } if source.to_string().contains("NoSuchBucket") => {
                S3Error::NoBucket(bucket.to_string())
            }
            E::NotFound { .. } => S3Error::NotFound,
            E::PermissionDenied { .. } | E::Unauthenticated { .. } => {
                S3Error::Denied(bucket.to_string())
            }
            E::Precondition { .. } | E::NotModified { .. } => S3Error::Changed,
            E::AlreadyExists { .. } => S3Error::Exists,
            other => {
                let text = redact(&crate::io::error::error_chain(&other));
                // Stores answer a wrong secret with 403 inside a generic error. (Match
                // the status text, not "403" alone: the message also quotes the
                // request's duration, "in 403.2ms".)
                if [
                    "403 Forbidden",
                    "SignatureDoesNotMatch",
                    "InvalidAccessKeyId",
                    "AccessDenied",
                ]
                .iter()
                .any(|m| text.contains(m))
                {
                    return S3Error::Denied(bucket.to_string());
                }
                if text.contains("NoSuchBucket") || text.contains("404 Not Found") {
                    return S3Error::NoBucket(bucket.to_string());
                }
                // A store's XML error body is long and can name the request: keep the
                // first line, shortened.
                let first = text.lines().next().unwrap_or("").to_string();
                let short: String = first.chars().take(240).collect();
                S3Error::Other(short)
            }
        }
    }
}

/// Takes every configured secret (and the access key id) out of `text`.
pub fn redact(text: &str) -> String {
    let mut out = text.to_string();
    for var in [
        "AWS_ACCESS_KEY_ID",
        "AWS_SECRET_ACCESS_KEY",
        "AWS_SESSION_TOKEN",
    ] {
        if let Ok(v) = std::env::var(var)
            && v.len() >= 4
        {
            out = out.replace(&v, "[redacted]");
        }
    }
    out
}

/// The runtime the blocking bridge drives: two threads do the network I/O for all
/// workers (requests are awaited, not computed).
fn runtime() -> &'static tokio::runtime::Runtime {
    static RT: OnceLock<tokio::runtime::Runtime> = OnceLock::new();
    RT.get_or_init(|| {
        tokio::runtime::Builder::new_multi_thread()
            .worker_threads(2)
            .thread_name("dicom-deid-s3")
            .enable_all()
            .build()
            .expect("cannot start the I/O runtime")
    })
}

/// Runs `fut` to completion from a worker thread.
pub fn block_on<F: std::future::Future>(fut: F) -> F::Output {
    runtime().block_on(fut)
}

/// Spawns `fut` on the I/O runtime (for the listing that runs ahead).
pub fn spawn<F>(fut: F)
where
    F: std::future::Future<Output = ()> + Send + 'static,
{
    runtime().spawn(fut);
}

/// Connection settings shared by every bucket of a run.
#[derive(Debug, Clone, Default)]
pub struct Endpoint {
    /// `--s3-endpoint`, else AWS_ENDPOINT_URL / AWS_ENDPOINT from the environment.
    pub url: Option<String>,
    /// Access key id and secret, when not from the environment (library users).
    pub credentials: Option<(String, String)>,
}

/// One bucket, reached with credentials and anonymously (for the public probe).
pub struct Bucket {
    pub url: S3Url,
    pub store: Arc<AmazonS3>,
    anonymous: Arc<AmazonS3>,
    /// The endpoint and region, for the requests `object_store` does not make.
    pub(crate) endpoint: String,
    pub(crate) region: String,
}

impl Bucket {
    pub fn open(url: &S3Url, endpoint: &Endpoint) -> Result<Bucket, S3Error> {
        // rustls needs one process-wide crypto provider, before the first client;
        // `ring` is the one built in.
        let _ = rustls::crypto::ring::default_provider().install_default();
        // `--s3-endpoint`, else the environment's: derived once, used for the
        // clients and for the requests object_store does not make.
        let explicit = endpoint
            .url
            .clone()
            .or_else(|| std::env::var("AWS_ENDPOINT_URL").ok())
            .or_else(|| std::env::var("AWS_ENDPOINT").ok());
        let build = |anonymous: bool| {
            let mut b = AmazonS3Builder::from_env()
                .with_bucket_name(&url.bucket)
                .with_retry(RetryConfig {
                    max_retries: 6,
                    retry_timeout: Duration::from_secs(120),
                    ..RetryConfig::default()
                });
            if let Some(e) = &endpoint.url {
                b = b.with_endpoint(e);
            }
            if let Some((id, secret)) = &endpoint.credentials {
                b = b.with_access_key_id(id).with_secret_access_key(secret);
            }
            // An explicit http:// endpoint (a store on the LAN, a test server) works
            // without a further switch.
            if explicit
                .as_deref()
                .is_some_and(|e| e.starts_with("http://"))
            {
                b = b.with_allow_http(true);
            }
            if std::env::var("AWS_REGION").is_err() && std::env::var("AWS_DEFAULT_REGION").is_err()
            {
                b = b.with_region("us-east-1");
            }
            if anonymous {
                b = b.with_skip_signature(true);
            }
            b
        };
        let store = build(false)
            .build()
            .map_err(|e| S3Error::Url(format!("{url}: {}", redact(&e.to_string()))))?;
        let anonymous = build(true)
            .with_retry(RetryConfig {
                max_retries: 0,
                ..RetryConfig::default()
            })
            .build()
            .map_err(|e| S3Error::Url(format!("{url}: {}", redact(&e.to_string()))))?;
        let region = build(false)
            .get_config_value(&object_store::aws::AmazonS3ConfigKey::Region)
            .unwrap_or_else(|| "us-east-1".into());
        let endpoint = explicit.unwrap_or_else(|| format!("https://s3.{region}.amazonaws.com"));
        Ok(Bucket {
            url: url.clone(),
            store: Arc::new(store),
            anonymous: Arc::new(anonymous),
            endpoint: endpoint.trim_end_matches('/').to_string(),
            region,
        })
    }

    pub fn err(&self, e: object_store::Error) -> S3Error {
        S3Error::from_store(e, &self.url.bucket)
    }

    /// Fails fast, before any work, when the bucket is missing or the credentials
    /// are refused: one listing request.
    pub fn preflight(&self) -> Result<(), S3Error> {
        use futures::StreamExt;
        let prefix = object_store::path::Path::from(self.url.prefix.as_str());
        let store = self.store.clone();
        block_on(async move {
            let mut s = store.list(Some(&prefix));
            match s.next().await {
                Some(Err(e)) => Err(e),
                _ => Ok(()),
            }
        })
        .map_err(|e| self.err(e))
    }

    /// Whether what is written under the prefix can be read by anyone: a small
    /// marker object (no patient data) is written, fetched without credentials,
    /// and deleted.
    pub fn output_is_public(&self, run_id: &str) -> Result<bool, S3Error> {
        let key = format!("{}.dicom-deid-probe-{run_id}", self.url.dir_prefix());
        let path = object_store::path::Path::from(key.as_str());
        let store = self.store.clone();
        let p = path.clone();
        block_on(async move {
            store
                .put(
                    &p,
                    bytes::Bytes::from_static(b"dicom-deid access probe\n").into(),
                )
                .await
        })
        .map_err(|e| self.err(e))?;
        let public = self.anonymously_readable(&key);
        let store = self.store.clone();
        let _ = block_on(async move { store.delete(&path).await });
        Ok(public)
    }

    /// Whether anyone can list the prefix or read its first object.
    pub fn source_is_public(&self) -> bool {
        use futures::StreamExt;
        let anon = self.anonymous.clone();
        let prefix = object_store::path::Path::from(self.url.prefix.as_str());
        let listed = block_on(async move {
            let mut s = anon.list((!prefix.as_ref().is_empty()).then_some(&prefix));
            s.next().await
        });
        if let Some(Ok(_)) = listed {
            return true;
        }
        let store = self.store.clone();
        let prefix = object_store::path::Path::from(self.url.prefix.as_str());
        let first = block_on(async move {
            let mut s = store.list((!prefix.as_ref().is_empty()).then_some(&prefix));
            s.next().await
        });
        match first {
            Some(Ok(meta)) => self.anonymously_readable(meta.location.as_ref()),
            _ => false,
        }
    }

    /// Whether `key` can be read without credentials: the case behind this project
    /// is a bucket left open to anyone.
    pub fn anonymously_readable(&self, key: &str) -> bool {
        let anon = self.anonymous.clone();
        let path = object_store::path::Path::from(key);
        block_on(async move { anon.head(&path).await.is_ok() })
    }
}

/// Uploads a local file to `key`, create-only: `Exists` when the key holds an
/// object already. Files over one part go up in 8 MiB parts, read from disk one at
/// a time; the object appears only when complete, and a failed upload is aborted.
pub fn put_file(bucket: &Bucket, key: &str, file: &std::path::Path) -> Result<(), S3Error> {
    use object_store::{PutMode, PutOptions, PutPayload};
    use std::io::Read;
    const PART: u64 = 8 * 1024 * 1024;
    let io = |e: std::io::Error| S3Error::Other(format!("cannot read the queued object: {e}"));
    let mut f = std::fs::File::open(file).map_err(io)?;
    let size = f.metadata().map_err(io)?.len();
    let path = object_store::path::Path::from(key);
    let store = bucket.store.clone();
    if size <= PART {
        let mut body = Vec::with_capacity(size as usize);
        f.read_to_end(&mut body).map_err(io)?;
        let opts = PutOptions {
            mode: PutMode::Create,
            ..PutOptions::default()
        };
        return block_on(async move { store.put_opts(&path, PutPayload::from(body), opts).await })
            .map(|_| ())
            .map_err(|e| match bucket.err(e) {
                S3Error::Changed => S3Error::Exists,
                other => other,
            });
    }
    // Multipart cannot be create-only everywhere: look first.
    let p = path.clone();
    let s = store.clone();
    if block_on(async move { s.head(&p).await }).is_ok() {
        return Err(S3Error::Exists);
    }
    let mut upload = uploads::Multipart::start(bucket, key)?;
    loop {
        let mut chunk = Vec::with_capacity(PART as usize);
        (&mut f).take(PART).read_to_end(&mut chunk).map_err(io)?;
        if chunk.is_empty() {
            break;
        }
        upload.put(chunk)?;
    }
    upload.complete().map(|_| ())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn urls_parse_with_and_without_prefix() {
        let u = S3Url::parse("s3://my-bucket/a/b/").unwrap().unwrap();
        assert_eq!(u.bucket, "my-bucket");
        assert_eq!(u.prefix, "a/b");
        assert_eq!(u.key("c.dcm"), "a/b/c.dcm");
        assert_eq!(u.to_string(), "s3://my-bucket/a/b");
        let root = S3Url::parse("s3://bkt").unwrap().unwrap();
        assert_eq!(root.key("x"), "x");
        assert_eq!(root.dir_prefix(), "");
        assert!(S3Url::parse("/local/path").is_none());
        assert!(S3Url::parse("s3://UPPER/x").unwrap().is_err());
        assert!(S3Url::parse("s3://bkt/a/../b").unwrap().is_err());
        assert!(S3Url::parse("s3://bkt/a//b").unwrap().is_err());
    }

    #[test]
    fn secrets_are_redacted_from_messages() {
        // SAFETY: this test alone reads and writes this variable.
        unsafe { std::env::set_var("AWS_SECRET_ACCESS_KEY", "s3cr3t-value-xyz") };
        assert_eq!(
            redact("sig s3cr3t-value-xyz mismatch"),
            "sig [redacted] mismatch"
        );
    }
}
