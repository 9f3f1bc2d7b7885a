//! Where the gateway forwards: parsed once from `--forward`, each with a queue
//! directory name that stays the same across restarts (so a restart finds its
//! queue) and a folder sender.

use std::fs::File;
use std::io::Write;
use std::path::{Path, PathBuf};

#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Destination {
    /// A local folder: objects land under `<Study>/<Series>/<SOP>.dcm`.
    Folder(PathBuf),
    /// A DICOM node reached by C-STORE, over DICOM TLS when `tls`.
    Dimse {
        ae: String,
        host: String,
        port: u16,
        tls: bool,
    },
    /// A DICOMweb store reached by STOW-RS: `base` is `http(s)://host[:port]/path`.
    Stow { base: String },
    /// An `s3://bucket/prefix`: objects land under `prefix/<Study>/<Series>/<SOP>.dcm`.
    S3(crate::s3::S3Url),
}

#[derive(Debug, thiserror::Error)]
#[error("--forward {dest}: {why}")]
pub struct DestError {
    pub dest: String,
    pub why: String,
}

impl Destination {
    pub fn parse(s: &str) -> Result<Destination, DestError> {
        let err = |why: &str| DestError {
            dest: s.to_string(),
            why: why.to_string(),
        };
        let dimse = s
            .strip_prefix("dimse://")
            .map(|r| (r, false))
            .or_else(|| s.strip_prefix("dimse+tls://").map(|r| (r, true)));
        if let Some((rest, tls)) = dimse {
            let (ae, addr) = rest
                .split_once('@')
                .ok_or_else(|| err("expected dimse://AE@host:port"))?;
            let ae = ae.trim();
            if ae.is_empty() || ae.len() > 16 || ae.contains('\\') {
                return Err(err("the AE title must be 1 to 16 characters"));
            }
            let (host, port) = addr
                .trim_end_matches('/')
                .rsplit_once(':')
                .ok_or_else(|| err("expected dimse://AE@host:port"))?;
            let port: u16 = port
                .parse()
                .map_err(|_| err("the port is not a number from 1 to 65535"))?;
            if host.is_empty() || port == 0 {
                return Err(err("expected dimse://AE@host:port"));
            }
            let host = host.trim_start_matches('[').trim_end_matches(']');
            return Ok(Destination::Dimse {
                ae: ae.to_string(),
                host: host.to_string(),
                port,
                tls,
            });
        }
        if let Some(base) = s.strip_prefix("dicomweb+") {
            let rest = base
                .strip_prefix("http://")
                .or_else(|| base.strip_prefix("https://"))
                .ok_or_else(|| err("expected dicomweb+http://host/path or dicomweb+https://..."))?;
            let authority = rest.split('/').next().unwrap_or("");
            if authority.is_empty() {
                return Err(err("the URL has no host"));
            }
            if authority.contains('@') {
                return Err(err("credentials do not go in the URL (ps shows it): set \
                     DICOM_DEID_STOW_TOKEN, or DICOM_DEID_STOW_USER and DICOM_DEID_STOW_PASSWORD"));
            }
            return Ok(Destination::Stow {
                base: base.trim_end_matches('/').to_string(),
            });
        }
        if let Some(url) = crate::s3::S3Url::parse(s) {
            return url.map(Destination::S3).map_err(|e| err(&e.to_string()));
        }
        if s.contains("://") {
            return Err(err(
                "unsupported scheme: use a folder, s3://bucket/prefix, dimse://AE@host:port, \
                 dimse+tls://... or dicomweb+http(s)://host/path",
            ));
        }
        Ok(Destination::Folder(PathBuf::from(s)))
    }

    /// The queue's directory name: readable, and stable for the same `--forward`.
    pub fn id(&self) -> String {
        let raw = match self {
            Destination::Folder(p) => {
                let c = crate::io::walk::canonical_lenient(p).unwrap_or_else(|_| p.clone());
                format!("folder-{:016x}", fnv(c.as_os_str().as_encoded_bytes()))
            }
            Destination::Dimse {
                ae,
                host,
                port,
                tls,
            } => format!("dimse{}-{ae}-{host}-{port}", if *tls { "-tls" } else { "" }),
            Destination::Stow { base } => {
                let rest = base.split_once("://").map_or(base.as_str(), |(_, r)| r);
                format!("stow-{rest}")
            }
            Destination::S3(url) => format!("s3-{}-{}", url.bucket, url.prefix),
        };
        raw.chars()
            .map(|c| {
                if c.is_ascii_alphanumeric() || c == '-' || c == '.' {
                    c
                } else {
                    '_'
                }
            })
            .collect()
    }
}

impl std::fmt::Display for Destination {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        match self {
            Destination::Folder(p) => write!(f, "{}", p.display()),
            Destination::S3(url) => write!(f, "{url}"),
            Destination::Dimse {
                ae,
                host,
                port,
                tls,
            } => write!(
                f,
                "dimse{}://{ae}@{host}:{port}",
                if *tls { "+tls" } else { "" }
            ),
            Destination::Stow { base } => write!(f, "dicomweb+{base}"),
        }
    }
}

/// FNV-1a: a stable hash (std's hasher may change between releases, and the queue
/// name must not).
fn fnv(bytes: &[u8]) -> u64 {
    let mut h: u64 = 0xcbf2_9ce4_8422_2325;
    for b in bytes {
        h ^= *b as u64;
        h = h.wrapping_mul(0x0100_0000_01b3);
    }
    h
}

/// A queue entry's name is its output path with `/` as `_` (UIDs hold only digits
/// and dots, so the mapping is reversible).
pub fn flatten(rel: &Path) -> String {
    rel.components()
        .map(|c| c.as_os_str().to_string_lossy().into_owned())
        .collect::<Vec<_>>()
        .join("_")
}

pub fn unflatten(name: &str) -> PathBuf {
    name.split('_').collect()
}

/// Syncs a directory, so a rename or link in it survives a crash.
pub fn sync_dir(dir: &Path) -> std::io::Result<()> {
    File::open(dir)?.sync_all()
}

/// Copies a queued object into a destination folder: a temporary file synced and
/// renamed into place, so the folder never shows a partial object and a re-send
/// replaces the same file.
pub fn copy_to_folder(entry: &Path, name: &str, root: &Path) -> std::io::Result<PathBuf> {
    let dest = root.join(unflatten(name));
    let dir = dest.parent().unwrap_or(root);
    std::fs::create_dir_all(dir)?;
    let tmp = dir.join(format!(
        "{}gateway-{}",
        crate::store::fs::TEMP_PREFIX,
        std::process::id()
    ));
    let result = (|| {
        let mut from = File::open(entry)?;
        let mut to = File::create(&tmp)?;
        std::io::copy(&mut from, &mut to)?;
        to.flush()?;
        to.sync_all()?;
        std::fs::rename(&tmp, &dest)?;
        sync_dir(dir)
    })();
    if result.is_err() {
        let _ = std::fs::remove_file(&tmp);
    }
    result.map(|()| dest)
}

/// Uploads a queued object to the bucket under the same names as a folder gets
/// (create-only: an object already there is the same SOP Instance, sent before).
pub fn put_to_bucket(
    entry: &Path,
    name: &str,
    bucket: &crate::s3::Bucket,
) -> Result<String, crate::s3::S3Error> {
    let rel = unflatten(name);
    let key = bucket.url.key(&rel.to_string_lossy());
    match crate::s3::put_file(bucket, &key, entry) {
        Ok(()) | Err(crate::s3::S3Error::Exists) => Ok(key),
        Err(e) => Err(e),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn destinations_parse_and_name_their_queues() {
        let d = Destination::parse("dimse://ARCHIVE@127.0.0.1:11112").unwrap();
        assert_eq!(
            d,
            Destination::Dimse {
                ae: "ARCHIVE".into(),
                host: "127.0.0.1".into(),
                port: 11112,
                tls: false
            }
        );
        let t = Destination::parse("dimse+tls://ARCHIVE@pacs:2762").unwrap();
        assert_eq!(t.id(), "dimse-tls-ARCHIVE-pacs-2762");
        assert_eq!(t.to_string(), "dimse+tls://ARCHIVE@pacs:2762");
        assert_eq!(d.id(), "dimse-ARCHIVE-127.0.0.1-11112");
        assert!(Destination::parse("dimse://127.0.0.1:1").is_err());
        assert!(Destination::parse("dimse://A@h:0").is_err());
        assert!(Destination::parse("dimse://A@h:x").is_err());
        assert!(Destination::parse("ftp://x").is_err());
        let w = Destination::parse("dicomweb+http://127.0.0.1:8042/dicom-web/").unwrap();
        assert_eq!(
            w,
            Destination::Stow {
                base: "http://127.0.0.1:8042/dicom-web".into()
            }
        );
        assert_eq!(w.id(), "stow-127.0.0.1_8042_dicom-web");
        assert_eq!(w.to_string(), "dicomweb+http://127.0.0.1:8042/dicom-web");
        assert!(Destination::parse("dicomweb+https://u:p@h/x").is_err());
        assert!(Destination::parse("dicomweb+ftp://h/x").is_err());
        let f = Destination::parse("/tmp/out").unwrap();
        assert!(f.id().starts_with("folder-"));
        assert_eq!(f.id(), Destination::parse("/tmp/out").unwrap().id());
    }

    #[test]
    fn queue_names_map_back_to_output_paths() {
        let rel = Path::new("1.2.3").join("1.2.4").join("1.2.5.dcm");
        let n = flatten(&rel);
        assert_eq!(n, "1.2.3_1.2.4_1.2.5.dcm");
        assert_eq!(unflatten(&n), rel);
    }
}
