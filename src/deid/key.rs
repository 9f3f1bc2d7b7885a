//! The project secret. It never reaches a `Display`, a log or a report: only its
//! fingerprint does.

use hmac::{Hmac, Mac};
use sha2::{Digest, Sha256};
use std::fmt;
use std::path::{Path, PathBuf};

pub const MIN_KEY_BYTES: usize = 32;

#[derive(Debug, thiserror::Error)]
pub enum KeyError {
    #[error("cannot read key file {path}: {source}")]
    Read {
        path: PathBuf,
        source: std::io::Error,
    },
    #[error(
        "key file {path} is readable by group or others (mode {mode:o}); run `chmod 600 {path}`"
    )]
    Permissions { path: PathBuf, mode: u32 },
    #[error(
        "key file {path} holds {len} bytes (trailing whitespace of a text key not counted); a key needs at least {MIN_KEY_BYTES}"
    )]
    TooShort { path: PathBuf, len: usize },
    #[error("cannot draw a random key: {0}")]
    Random(String),
    #[error("the key cannot be used as an HMAC-SHA256 key")]
    Unusable,
}

pub struct Key {
    /// HMAC state with the key already absorbed: each MAC clones it instead of
    /// re-keying (two SHA-256 blocks saved per call, several calls per file).
    keyed: HmacSha256,
    /// True when the key was drawn for this run only.
    pub ephemeral: bool,
}

impl fmt::Debug for Key {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str("Key(<redacted>)")
    }
}

type HmacSha256 = Hmac<Sha256>;

impl Key {
    /// Reads a key file. Text keys (say, from `openssl rand -hex 32`) lose their
    /// trailing newline so that editing the file does not change every pseudonym.
    pub fn from_file(path: &Path) -> Result<Key, KeyError> {
        let meta = std::fs::metadata(path).map_err(|source| KeyError::Read {
            path: path.into(),
            source,
        })?;
        #[cfg(unix)]
        {
            use std::os::unix::fs::PermissionsExt;
            let mode = meta.permissions().mode() & 0o777;
            if mode & 0o077 != 0 {
                return Err(KeyError::Permissions {
                    path: path.into(),
                    mode,
                });
            }
        }
        #[cfg(not(unix))]
        let _ = meta;
        let mut bytes = std::fs::read(path).map_err(|source| KeyError::Read {
            path: path.into(),
            source,
        })?;
        // Only a text key is trimmed: a binary key may end in a whitespace byte.
        let is_text = bytes
            .iter()
            .all(|b| b.is_ascii_graphic() || b.is_ascii_whitespace());
        if is_text {
            while bytes.last().is_some_and(|b| b.is_ascii_whitespace()) {
                bytes.pop();
            }
        }
        if bytes.len() < MIN_KEY_BYTES {
            return Err(KeyError::TooShort {
                path: path.into(),
                len: bytes.len(),
            });
        }
        Key::new(&bytes, false)
    }

    fn new(bytes: &[u8], ephemeral: bool) -> Result<Key, KeyError> {
        // HMAC takes a key of any length, so this error cannot happen; it is still
        // reported rather than unwrapped.
        let keyed = HmacSha256::new_from_slice(bytes).map_err(|_| KeyError::Unusable)?;
        Ok(Key { keyed, ephemeral })
    }

    /// A fresh random key: outputs are then linkable to nothing else.
    pub fn random() -> Result<Key, KeyError> {
        let mut bytes = vec![0u8; MIN_KEY_BYTES];
        getrandom::fill(&mut bytes).map_err(|e| KeyError::Random(e.to_string()))?;
        Key::new(&bytes, true)
    }

    #[cfg(test)]
    pub fn from_bytes(bytes: &[u8]) -> Key {
        match Key::new(bytes, false) {
            Ok(k) => k,
            Err(e) => panic!("{e}"),
        }
    }

    /// HMAC-SHA256 of the concatenated parts.
    pub fn mac(&self, parts: &[&[u8]]) -> [u8; 32] {
        let mut mac = self.keyed.clone();
        for p in parts {
            mac.update(p);
        }
        mac.finalize().into_bytes().into()
    }

    /// First 8 hex digits of SHA-256(HMAC(key, "fingerprint")): tells two runs used
    /// the same key without revealing it.
    pub fn fingerprint(&self) -> String {
        let digest = Sha256::digest(self.mac(&[b"fingerprint"]));
        digest[..4].iter().map(|b| format!("{b:02x}")).collect()
    }
}

/// Lower-case hexadecimal of `bytes` (ledger ids and output names, per file: one
/// `format!` per byte showed in `perf`).
pub fn hex(bytes: &[u8]) -> String {
    const DIGITS: &[u8; 16] = b"0123456789abcdef";
    let mut s = String::with_capacity(bytes.len() * 2);
    for b in bytes {
        s.push(char::from(DIGITS[usize::from(b >> 4)]));
        s.push(char::from(DIGITS[usize::from(b & 0x0F)]));
    }
    s
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn hex_spells_bytes_as_format_does() {
        let bytes: Vec<u8> = (0..=255).collect();
        let want: String = bytes.iter().map(|b| format!("{b:02x}")).collect();
        assert_eq!(hex(&bytes), want);
    }

    #[test]
    fn debug_never_shows_the_key() {
        let k = Key::from_bytes(b"0123456789abcdef0123456789abcdef");
        assert_eq!(format!("{k:?}"), "Key(<redacted>)");
        assert_eq!(k.fingerprint().len(), 8);
    }

    #[cfg(unix)]
    #[test]
    fn refuses_weak_key_files() {
        use std::os::unix::fs::PermissionsExt;
        let dir = tempfile::tempdir().unwrap();
        let p = dir.path().join("key");
        std::fs::write(&p, "short\n").unwrap();
        std::fs::set_permissions(&p, std::fs::Permissions::from_mode(0o600)).unwrap();
        assert!(matches!(Key::from_file(&p), Err(KeyError::TooShort { .. })));
        std::fs::write(&p, "x".repeat(40)).unwrap();
        std::fs::set_permissions(&p, std::fs::Permissions::from_mode(0o644)).unwrap();
        assert!(matches!(
            Key::from_file(&p),
            Err(KeyError::Permissions { .. })
        ));
        std::fs::set_permissions(&p, std::fs::Permissions::from_mode(0o600)).unwrap();
        let a = Key::from_file(&p).unwrap();
        std::fs::write(&p, format!("{}\n", "x".repeat(40))).unwrap();
        let b = Key::from_file(&p).unwrap();
        assert_eq!(a.fingerprint(), b.fingerprint());
        // A binary key ending in a whitespace byte keeps all 32 bytes.
        let mut binary = vec![0xA5u8; 31];
        binary.push(b'\n');
        std::fs::write(&p, &binary).unwrap();
        assert!(Key::from_file(&p).is_ok());
    }
}
