//! STOW-RS sender (PS3.18 10.5): one queued Part 10 file per request, as
//! `multipart/related; type="application/dicom"`, streamed from the file. The
//! answer's Referenced SOP Sequence must name the instance and its Failed SOP
//! Sequence must hold no item (Orthanc always sends the latter, empty on success).
//!
//! ureq is the client: blocking (the forwarder is a plain thread), small, rustls
//! for https, and it streams a request body from a reader.

use super::scu::Sent;
use std::fs::File;
use std::io::{Read, Seek, SeekFrom};
use std::path::Path;
use std::time::Duration;

/// Credentials come from the environment, never from the command line (which
/// `ps` shows) and never into a log line.
pub const BEARER_ENV: &str = "DICOM_DEID_STOW_TOKEN";
pub const USER_ENV: &str = "DICOM_DEID_STOW_USER";
pub const PASSWORD_ENV: &str = "DICOM_DEID_STOW_PASSWORD";

const BOUNDARY: &str = "dicom-deid-5f3c9a1e7b2d4c60";

pub struct Stow {
    /// `<base>/studies`.
    url: String,
    auth: Option<String>,
    agent: ureq::Agent,
}

impl Stow {
    /// `base` is the DICOMweb root, `http(s)://host[:port]/path`.
    pub fn new(base: &str, timeout: Duration) -> Stow {
        let auth = match (
            std::env::var(BEARER_ENV).ok(),
            std::env::var(USER_ENV).ok(),
            std::env::var(PASSWORD_ENV).ok(),
        ) {
            (Some(t), _, _) if !t.is_empty() => Some(format!("Bearer {t}")),
            (_, Some(u), p) if !u.is_empty() => Some(format!(
                "Basic {}",
                base64(format!("{u}:{}", p.unwrap_or_default()).as_bytes())
            )),
            _ => None,
        };
        let config = ureq::Agent::config_builder()
            .timeout_global(Some(timeout))
            // Status codes are answers to read, not transport errors.
            .http_status_as_error(false)
            .build();
        Stow {
            url: format!("{}/studies", base.trim_end_matches('/')),
            auth,
            agent: config.into(),
        }
    }

    /// Sends one queued file; `instance` is its SOP Instance UID.
    pub fn send(&self, path: &Path, instance: &str) -> Sent {
        let file = match File::open(path) {
            Ok(f) => f,
            Err(e) => return Sent::Refused(format!("cannot open the queued object: {e}")),
        };
        let head = format!("--{BOUNDARY}\r\nContent-Type: application/dicom\r\n\r\n");
        let tail = format!("\r\n--{BOUNDARY}--\r\n");
        let mut body = head.as_bytes().chain(file).chain(tail.as_bytes());
        let mut req = self
            .agent
            .post(&self.url)
            .header(
                "Content-Type",
                format!("multipart/related; type=\"application/dicom\"; boundary={BOUNDARY}"),
            )
            .header("Accept", "application/dicom+json");
        if let Some(a) = &self.auth {
            req = req.header("Authorization", a);
        }
        let mut rsp = match req.send(ureq::SendBody::from_reader(&mut body)) {
            Ok(r) => r,
            Err(e) => return Sent::Transient(format!("STOW-RS to {}: {e}", self.url)),
        };
        let code = rsp.status().as_u16();
        let text = rsp
            .body_mut()
            .with_config()
            .limit(16 << 20)
            .read_to_string()
            .unwrap_or_default();
        judge(code, &text, instance)
    }
}

/// What a STOW-RS answer says about the one instance sent.
fn judge(code: u16, body: &str, instance: &str) -> Sent {
    let json: Option<serde_json::Value> = serde_json::from_str(body).ok();
    let seq = |tag: &str| -> Vec<serde_json::Value> {
        json.as_ref()
            .and_then(|j| j.get(tag))
            .and_then(|e| e.get("Value"))
            .and_then(|v| v.as_array())
            .cloned()
            .unwrap_or_default()
    };
    let failed = seq("00081198");
    let referenced = seq("00081199");
    if let Some(item) = failed.first() {
        let reason = item
            .get("00081197")
            .and_then(|e| e.get("Value"))
            .and_then(|v| v.get(0))
            .and_then(|v| v.as_u64())
            .map(|r| format!("failure reason {r:04X}"))
            .unwrap_or_else(|| "no failure reason".into());
        return Sent::Refused(format!(
            "STOW-RS answered {code}, the instance is in the Failed SOP Sequence ({reason})"
        ));
    }
    let confirmed = referenced.iter().any(|item| {
        item.get("00081155")
            .and_then(|e| e.get("Value"))
            .and_then(|v| v.get(0))
            .and_then(|v| v.as_str())
            .is_some_and(|u| u == instance)
    });
    match code {
        200 | 202 if confirmed => Sent::Stored,
        200 | 202 => Sent::Refused(format!(
            "STOW-RS answered {code} without the instance in its Referenced SOP Sequence"
        )),
        408 | 429 | 500..=599 => Sent::Transient(format!("STOW-RS answered {code}")),
        401 | 403 => Sent::Transient(format!(
            "STOW-RS answered {code}: check {BEARER_ENV} or {USER_ENV}/{PASSWORD_ENV}"
        )),
        _ => Sent::Refused(format!("STOW-RS answered {code}")),
    }
}

/// Standard base64 with padding (for the Basic credentials only).
fn base64(bytes: &[u8]) -> String {
    const T: &[u8; 64] = b"ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz0123456789+/";
    let mut out = String::with_capacity(bytes.len().div_ceil(3) * 4);
    for chunk in bytes.chunks(3) {
        let b = [
            chunk[0],
            *chunk.get(1).unwrap_or(&0),
            *chunk.get(2).unwrap_or(&0),
        ];
        let n = (b[0] as u32) << 16 | (b[1] as u32) << 8 | b[2] as u32;
        for i in 0..4 {
            if i <= chunk.len() {
                out.push(T[(n >> (18 - 6 * i) & 63) as usize] as char);
            } else {
                out.push('=');
            }
        }
    }
    out
}

/// The SOP Instance UID of a queued file, from its meta group.
pub fn instance_of(path: &Path) -> Result<String, String> {
    let mut f = File::open(path).map_err(|e| format!("cannot open: {e}"))?;
    f.seek(SeekFrom::Start(128))
        .map_err(|e| format!("cannot read: {e}"))?;
    let meta = dicom_object::FileMetaTable::from_reader(&mut f)
        .map_err(|e| format!("queued file has no readable meta group: {e}"))?;
    Ok(meta
        .media_storage_sop_instance_uid()
        .trim_end_matches(['\0', ' '])
        .to_string())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn base64_matches_rfc_4648_vectors() {
        for (i, o) in [
            ("", ""),
            ("f", "Zg=="),
            ("fo", "Zm8="),
            ("foo", "Zm9v"),
            ("foob", "Zm9vYg=="),
            ("fooba", "Zm9vYmE="),
            ("foobar", "Zm9vYmFy"),
        ] {
            assert_eq!(base64(i.as_bytes()), o);
        }
    }

    #[test]
    fn answers_are_judged_by_their_sequences_not_their_presence() {
        let ok = r#"{"00081198":{"vr":"SQ"},"00081199":{"vr":"SQ","Value":[{"00081155":{"vr":"UI","Value":["2.25.9"]}}]}}"#;
        assert!(matches!(judge(200, ok, "2.25.9"), Sent::Stored));
        assert!(matches!(judge(200, ok, "2.25.8"), Sent::Refused(_)));
        let failed =
            r#"{"00081198":{"vr":"SQ","Value":[{"00081197":{"vr":"US","Value":[49152]}}]}}"#;
        match judge(200, failed, "2.25.9") {
            Sent::Refused(why) => assert!(why.contains("C000"), "{why}"),
            other => panic!("{other:?}"),
        }
        assert!(matches!(judge(503, "", "x"), Sent::Transient(_)));
        assert!(matches!(judge(415, "", "x"), Sent::Refused(_)));
    }
}
