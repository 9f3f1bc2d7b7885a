//! Housekeeping of staged objects. Large outputs are uploaded in parts to a
//! temporary key of the run (`<prefix>/.dicom-deid-tmp/<run id>/<n>`) and copied to
//! their name only when the run keeps them; a killed run leaves parts or a
//! temporary object there. The next run removes what dead runs left: a run that
//! held the same ledger before (its lock is free, so it is dead) at once, any other
//! after a day (another shard may still be writing).
//!
//! `object_store` has no call to list multipart uploads, so that one request is
//! signed here with its SigV4 signer and sent with its HTTP stack (reqwest).

use super::{Bucket, S3Error, block_on};
use chrono::{DateTime, Utc};
use object_store::multipart::MultipartStore;
use object_store::{ObjectStore, ObjectStoreExt};
use std::time::Duration;

/// Folder, under the output prefix, of the runs' temporary objects.
pub const TEMP_DIR: &str = ".dicom-deid-tmp";

/// What a run left elsewhere is removed once it is this old.
pub const ABANDONED_AFTER: Duration = Duration::from_secs(24 * 3600);

pub fn temp_key(bucket: &Bucket, run_id: &str, n: u64) -> String {
    format!("{}{TEMP_DIR}/{run_id}/{n}", bucket.url.dir_prefix())
}

struct Upload {
    key: String,
    id: String,
    initiated: Option<DateTime<Utc>>,
}

/// The run id in a temporary key, if it is one.
fn run_of<'a>(bucket: &Bucket, key: &'a str) -> Option<&'a str> {
    let rest = key.strip_prefix(&format!("{}{TEMP_DIR}/", bucket.url.dir_prefix()))?;
    rest.split('/').next()
}

fn abandoned(run: &str, when: Option<DateTime<Utc>>, dead: &[String], live: &str) -> bool {
    if run == live {
        return false;
    }
    if dead.iter().any(|d| d == run) {
        return true;
    }
    when.is_some_and(|t| {
        Utc::now()
            .signed_duration_since(t)
            .to_std()
            .is_ok_and(|age| age > ABANDONED_AFTER)
    })
}

/// Aborts the multipart uploads and deletes the temporary objects that dead runs
/// left under the output prefix. Returns how many of each.
pub fn remove_abandoned(
    bucket: &Bucket,
    dead: &[String],
    live: &str,
) -> Result<(usize, usize), S3Error> {
    let mut aborted = 0;
    for u in list_uploads(bucket)? {
        let Some(run) = run_of(bucket, &u.key) else {
            continue;
        };
        if abandoned(run, u.initiated, dead, live) {
            let store = bucket.store.clone();
            let path = object_store::path::Path::from(u.key.as_str());
            let id = u.id.clone();
            block_on(async move { store.abort_multipart(&path, &id).await })
                .map_err(|e| bucket.err(e))?;
            aborted += 1;
        }
    }
    let mut deleted = 0;
    let temp = object_store::path::Path::from(format!("{}{TEMP_DIR}", bucket.url.dir_prefix()));
    let store = bucket.store.clone();
    let metas = block_on(async move {
        use futures::TryStreamExt;
        store.list(Some(&temp)).try_collect::<Vec<_>>().await
    })
    .map_err(|e| bucket.err(e))?;
    for m in metas {
        let key = m.location.to_string();
        let Some(run) = run_of(bucket, &key) else {
            continue;
        };
        if abandoned(run, Some(m.last_modified), dead, live) {
            let store = bucket.store.clone();
            block_on(async move { store.delete(&m.location).await }).map_err(|e| bucket.err(e))?;
            deleted += 1;
        }
    }
    Ok((aborted, deleted))
}

/// Multipart uploads in progress under the output prefix (ListMultipartUploads,
/// every page).
fn list_uploads(bucket: &Bucket) -> Result<Vec<Upload>, S3Error> {
    let mut out = Vec::new();
    let mut markers: Option<(String, String)> = None;
    loop {
        let mut query = vec![
            ("prefix".to_string(), bucket.url.dir_prefix()),
            ("uploads".to_string(), String::new()),
        ];
        if let Some((k, u)) = &markers {
            query.push(("key-marker".into(), k.clone()));
            query.push(("upload-id-marker".into(), u.clone()));
        }
        let body = signed_get(bucket, &query)?;
        for block in blocks(&body, "Upload") {
            let (Some(key), Some(id)) = (tag(block, "Key"), tag(block, "UploadId")) else {
                continue;
            };
            out.push(Upload {
                key: unescape(key),
                id: unescape(id),
                initiated: tag(block, "Initiated")
                    .and_then(|t| DateTime::parse_from_rfc3339(t).ok())
                    .map(|t| t.with_timezone(&Utc)),
            });
        }
        if tag(&body, "IsTruncated") != Some("true") {
            return Ok(out);
        }
        match (
            tag(&body, "NextKeyMarker"),
            tag(&body, "NextUploadIdMarker"),
        ) {
            (Some(k), Some(u)) => markers = Some((unescape(k), unescape(u))),
            _ => return Ok(out),
        }
    }
}

/// A GET on the bucket with `query`, signed with the run's credentials.
fn signed_get(bucket: &Bucket, query: &[(String, String)]) -> Result<String, S3Error> {
    use object_store::aws::AwsAuthorizer;
    let qs: Vec<String> = query
        .iter()
        .map(|(k, v)| {
            if v.is_empty() && k == "uploads" {
                k.clone()
            } else {
                format!("{}={}", encode(k), encode(v))
            }
        })
        .collect();
    let url = format!("{}/{}?{}", bucket.endpoint, bucket.url.bucket, qs.join("&"));
    let store = bucket.store.clone();
    let region = bucket.region.clone();
    let name = bucket.url.bucket.clone();
    block_on(async move {
        let cred = store
            .credentials()
            .get_credential()
            .await
            .map_err(|e| S3Error::from_store(e, &name))?;
        let mut req: object_store::client::HttpRequest = http::Request::builder()
            .method("GET")
            .uri(&url)
            .body(object_store::client::HttpRequestBody::empty())
            .map_err(|e| S3Error::Other(format!("cannot build a request: {e}")))?;
        AwsAuthorizer::new(&cred, "s3", &region)
            .try_authorize(&mut req, None)
            .map_err(|e| S3Error::from_store(e, &name))?;
        let mut r = reqwest::Client::new().get(&url);
        for (k, v) in req.headers() {
            r = r.header(k, v);
        }
        let resp = r
            .send()
            .await
            .map_err(|e| S3Error::Other(super::redact(&format!("listing uploads: {e}"))))?;
        let status = resp.status();
        let text = resp
            .text()
            .await
            .map_err(|e| S3Error::Other(super::redact(&format!("listing uploads: {e}"))))?;
        match status.as_u16() {
            200 => Ok(text),
            403 => Err(S3Error::Denied(name)),
            404 => Err(S3Error::NoBucket(name)),
            s => Err(S3Error::Other(format!(
                "listing multipart uploads: HTTP {s}"
            ))),
        }
    })
}

/// RFC 3986 unreserved characters stay; everything else is %-encoded (SigV4's rule).
fn encode(s: &str) -> String {
    let mut out = String::with_capacity(s.len());
    for b in s.bytes() {
        if b.is_ascii_alphanumeric() || matches!(b, b'-' | b'_' | b'.' | b'~') {
            out.push(b as char);
        } else {
            out.push_str(&format!("%{b:02X}"));
        }
    }
    out
}

/// The contents of each `<name>…</name>` element in `xml`.
fn blocks<'a>(xml: &'a str, name: &str) -> Vec<&'a str> {
    let (open, close) = (format!("<{name}>"), format!("</{name}>"));
    let mut out = Vec::new();
    let mut rest = xml;
    while let Some(i) = rest.find(&open) {
        let after = &rest[i + open.len()..];
        let Some(j) = after.find(&close) else { break };
        out.push(&after[..j]);
        rest = &after[j + close.len()..];
    }
    out
}

fn tag<'a>(xml: &'a str, name: &str) -> Option<&'a str> {
    blocks(xml, name).into_iter().next()
}

fn unescape(s: &str) -> String {
    s.replace("&lt;", "<")
        .replace("&gt;", ">")
        .replace("&quot;", "\"")
        .replace("&apos;", "'")
        .replace("&amp;", "&")
}

/// One multipart upload, from `create_multipart` to `complete_multipart`. Dropped
/// before [`Multipart::complete`] (an encode that failed, an input that changed, a
/// read error), it aborts the upload: no part stays billed or visible.
pub struct Multipart<'a> {
    bucket: &'a super::Bucket,
    key: object_store::path::Path,
    id: String,
    parts: Vec<object_store::multipart::PartId>,
    done: bool,
}

impl<'a> Multipart<'a> {
    pub fn start(bucket: &'a super::Bucket, key: &str) -> Result<Self, super::S3Error> {
        use object_store::multipart::MultipartStore;
        let key = object_store::path::Path::from(key);
        let (s, k) = (bucket.store.clone(), key.clone());
        let id = super::block_on(async move { s.create_multipart(&k).await })
            .map_err(|e| bucket.err(e))?;
        Ok(Multipart {
            bucket,
            key,
            id,
            parts: Vec::new(),
            done: false,
        })
    }

    /// Uploads the next part (every part but the last must be at least 5 MiB).
    pub fn put(&mut self, data: Vec<u8>) -> Result<(), super::S3Error> {
        use object_store::multipart::MultipartStore;
        let (s, k, id, n) = (
            self.bucket.store.clone(),
            self.key.clone(),
            self.id.clone(),
            self.parts.len(),
        );
        let part = super::block_on(async move {
            s.put_part(&k, &id, n, object_store::PutPayload::from(data))
                .await
        })
        .map_err(|e| self.bucket.err(e))?;
        self.parts.push(part);
        Ok(())
    }

    /// Makes the object visible under its key; returns the key.
    pub fn complete(mut self) -> Result<String, super::S3Error> {
        use object_store::multipart::MultipartStore;
        let (s, k, id) = (self.bucket.store.clone(), self.key.clone(), self.id.clone());
        let parts = std::mem::take(&mut self.parts);
        super::block_on(async move { s.complete_multipart(&k, &id, parts).await })
            .map_err(|e| self.bucket.err(e))?;
        self.done = true;
        Ok(self.key.to_string())
    }
}

impl Drop for Multipart<'_> {
    fn drop(&mut self) {
        if !self.done {
            use object_store::multipart::MultipartStore;
            let (s, k, id) = (self.bucket.store.clone(), self.key.clone(), self.id.clone());
            let _ = super::block_on(async move { s.abort_multipart(&k, &id).await });
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn upload_listings_parse() {
        let xml = "<ListMultipartUploadsResult><IsTruncated>false</IsTruncated>\
            <Upload><Key>p/.dicom-deid-tmp/r1/0</Key><UploadId>abc</UploadId>\
            <Initiated>2026-01-01T00:00:00.000Z</Initiated></Upload>\
            <Upload><Key>a&amp;b</Key><UploadId>d</UploadId></Upload></ListMultipartUploadsResult>";
        let b = blocks(xml, "Upload");
        assert_eq!(b.len(), 2);
        assert_eq!(tag(b[0], "UploadId"), Some("abc"));
        assert_eq!(unescape(tag(b[1], "Key").unwrap()), "a&b");
        assert_eq!(tag(xml, "IsTruncated"), Some("false"));
        assert_eq!(encode("a/b c"), "a%2Fb%20c");
    }

    #[test]
    fn only_dead_or_old_runs_are_abandoned() {
        let dead = vec!["old".to_string()];
        let now = Some(Utc::now());
        let long_ago = Some(Utc::now() - chrono::Duration::days(2));
        assert!(abandoned("old", now, &dead, "me"));
        assert!(!abandoned("other", now, &dead, "me"));
        assert!(abandoned("other", long_ago, &dead, "me"));
        assert!(!abandoned("me", long_ago, &dead, "me"));
    }
}
