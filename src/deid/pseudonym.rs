//! Keyed replacements: UIDs and pseudonyms derived from the project key with
//! HMAC-SHA256, so every worker, run and machine agrees without shared state.

use super::key::Key;

/// UIDs under the DICOM root name standard objects (SOP classes, transfer syntaxes,
/// well-known frames of reference...), never instances: they are never remapped.
const DICOM_ROOT: &str = "1.2.840.10008.";

// The profile names the alphabets (it validates `hash: {alphabet: ...}`); they stay
// reachable here for callers of `pseudonym_in`.
pub use crate::profile::action::{ALNUM, DIGITS, HEX};

pub struct Pseudonymizer<'k> {
    key: &'k Key,
}

/// Drops the padding DICOM allows at the end of a value.
pub fn trim_padding(s: &str) -> &str {
    s.trim_end_matches([' ', '\0'])
}

/// Person names compare equal regardless of empty trailing components:
/// `DOE^JOHN` and `DOE^JOHN^^` are one person.
pub fn normalize_person_name(s: &str) -> &str {
    trim_padding(s).trim_end_matches(['^', '=', ' '])
}

impl<'k> Pseudonymizer<'k> {
    pub fn new(key: &'k Key) -> Self {
        Pseudonymizer { key }
    }

    pub fn key(&self) -> &'k Key {
        self.key
    }

    /// `2.25.` + the decimal of the first 128 bits of HMAC-SHA256(key, uid): at most
    /// 44 characters, digits and dots, no leading zeros. The UID is its own domain:
    /// other domains prefix a name and a NUL, which no UID contains.
    pub fn uid(&self, uid: &str) -> String {
        let uid = trim_padding(uid).trim_start();
        // Only a well-formed UID under the DICOM root passes: anything else that merely
        // starts with it could carry text.
        let well_formed = uid.len() <= 64 && uid.bytes().all(|b| b.is_ascii_digit() || b == b'.');
        if uid.is_empty() || (uid.starts_with(DICOM_ROOT) && well_formed) {
            return uid.to_string();
        }
        let mac = self.key.mac(&[uid.as_bytes()]);
        let mut first = [0u8; 16];
        first.copy_from_slice(&mac[..16]);
        format!("2.25.{}", u128::from_be_bytes(first))
    }

    /// A pseudonym of `value` in `domain`: `prefix` followed by characters of an
    /// unambiguous upper-case alphabet, valid in every string VR.
    pub fn pseudonym(&self, domain: &str, value: &str, length: usize, prefix: &str) -> String {
        self.pseudonym_in(domain, value, length, prefix, ALNUM)
    }

    /// A pseudonym drawn from `alphabet` (ASCII, 2 to 256 characters).
    pub fn pseudonym_in(
        &self,
        domain: &str,
        value: &str,
        length: usize,
        prefix: &str,
        alphabet: &str,
    ) -> String {
        let alphabet = alphabet.as_bytes();
        let n = alphabet.len().max(1);
        let mut out = String::with_capacity(length);
        out.push_str(prefix);
        let mut block = 0u32;
        while out.len() < length {
            let mac = self.key.mac(&[
                domain.as_bytes(),
                b"\0",
                value.as_bytes(),
                b"\0",
                &block.to_be_bytes(),
            ]);
            for b in mac {
                if out.len() >= length {
                    break;
                }
                out.push(alphabet[b as usize % n] as char);
            }
            block += 1;
        }
        out
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn key(b: u8) -> Key {
        Key::from_bytes(&[b; 32])
    }

    #[test]
    fn uids_are_valid_stable_and_keyed() {
        let (k1, k2) = (key(1), key(2));
        let p1 = Pseudonymizer::new(&k1);
        let u = p1.uid("1.2.3.4.5\0");
        assert!(u.starts_with("2.25.") && u.len() <= 64);
        assert!(u.bytes().all(|b| b.is_ascii_digit() || b == b'.'));
        assert!(!u[5..].starts_with('0') || u.len() == 6);
        assert_eq!(u, p1.uid("1.2.3.4.5"));
        assert_ne!(u, Pseudonymizer::new(&k2).uid("1.2.3.4.5"));
        assert_eq!(
            p1.uid("1.2.840.10008.5.1.4.1.1.2"),
            "1.2.840.10008.5.1.4.1.1.2"
        );
    }

    #[test]
    fn uid_matches_the_documented_formula() {
        use hmac::{Hmac, Mac};
        let k = key(7);
        let mut mac = Hmac::<sha2::Sha256>::new_from_slice(&[7u8; 32]).unwrap();
        mac.update(b"1.2.3");
        let bytes = mac.finalize().into_bytes();
        let expect = u128::from_be_bytes(bytes[..16].try_into().unwrap());
        assert_eq!(
            Pseudonymizer::new(&k).uid("1.2.3"),
            format!("2.25.{expect}")
        );
    }

    #[test]
    fn pseudonyms_have_the_asked_shape() {
        let k = key(3);
        let p = Pseudonymizer::new(&k);
        let a = p.pseudonym("patient-id", "PID1", 16, "P");
        assert_eq!(a.len(), 16);
        assert!(a.starts_with('P'));
        assert_eq!(a, p.pseudonym("patient-id", "PID1", 16, "P"));
        assert_ne!(a, p.pseudonym("accession", "PID1", 16, "P"));
        assert_eq!(p.pseudonym("x", "v", 64, "").len(), 64);
        let digits = p.pseudonym_in("mrn", "PID1", 10, "", DIGITS);
        assert!(digits.len() == 10 && digits.bytes().all(|b| b.is_ascii_digit()));
    }

    #[test]
    fn person_names_normalise() {
        assert_eq!(normalize_person_name("DOE^JOHN^^ "), "DOE^JOHN");
        assert_eq!(normalize_person_name("DOE^JOHN"), "DOE^JOHN");
    }
}
