//! Parsing of the tag notations a profile may use. Runs only while a profile is
//! compiled, never per element.

use dicom_core::dictionary::{DataDictionary, DataDictionaryEntry, TagRange};
use dicom_dictionary_std::StandardDataDictionary;

/// What a rule's `tag:` designates.
#[derive(Debug, Clone, PartialEq, Eq, Hash, PartialOrd, Ord)]
pub enum Target {
    /// One public or private tag, `(gggg,eeee)` or a keyword.
    Tag(u32),
    /// Tags whose bits under `mask` equal `value`; written with `x` nibbles.
    Pattern { mask: u32, value: u32 },
    /// Element `elem` of the block that `creator` reserved in odd group `group`,
    /// whatever block byte the file uses (`(gggg,xxee)`).
    Private {
        group: u16,
        elem: u8,
        creator: String,
    },
}

impl Target {
    /// Canonical text, also used in conflict messages and the profile digest.
    pub fn describe(&self) -> String {
        match self {
            Target::Tag(t) => format!("({:04X},{:04X})", t >> 16, t & 0xFFFF),
            Target::Pattern { mask, value } => {
                let mut s = String::from("(");
                for i in (0..8).rev() {
                    let nib_mask = (mask >> (i * 4)) & 0xF;
                    let nib = (value >> (i * 4)) & 0xF;
                    if nib_mask == 0 {
                        s.push('x');
                    } else {
                        s.push_str(&format!("{nib:X}"));
                    }
                    if i == 4 {
                        s.push(',');
                    }
                }
                s.push(')');
                s
            }
            Target::Private {
                group,
                elem,
                creator,
            } => format!("({group:04X},xx{elem:02X}) creator \"{creator}\""),
        }
    }
}

/// Trims the padding DICOM allows at the end of a private creator value.
pub fn normalize_creator(s: &str) -> &str {
    s.trim_matches(|c: char| c == ' ' || c == '\0')
}

/// Parses `text` (and the optional private `creator`) into a target.
pub fn parse_target(text: &str, creator: Option<&str>) -> Result<Target, String> {
    let t = text.trim();
    if t.starts_with("(gggg") {
        return Err(
            "private attributes as a whole are governed by `defaults.private`, not by a rule"
                .into(),
        );
    }
    let hex = hex_digits(t);
    match (hex, creator) {
        (Some(digits), Some(creator)) => parse_private(&digits, creator, t),
        (Some(digits), None) => parse_numeric(&digits, t),
        (None, Some(_)) => Err(format!(
            "a rule with `creator` needs a tag written (gggg,xxee), got `{t}`"
        )),
        (None, None) => parse_keyword(t),
    }
}

/// Accepts `(gggg,eeee)`, `gggg,eeee` and `ggggeeee`; returns the 8 digit characters.
fn hex_digits(t: &str) -> Option<Vec<u8>> {
    let inner = t
        .strip_prefix('(')
        .and_then(|s| s.strip_suffix(')'))
        .unwrap_or(t);
    let joined: Vec<u8> = match inner.split_once(',') {
        Some((g, e)) if g.trim().len() == 4 && e.trim().len() == 4 => {
            g.trim().bytes().chain(e.trim().bytes()).collect()
        }
        Some(_) => return None,
        None if inner.len() == 8 && inner.bytes().all(|b| b.is_ascii_hexdigit()) => {
            inner.bytes().collect()
        }
        None => return None,
    };
    joined
        .iter()
        .all(|b| b.is_ascii_hexdigit() || *b == b'x' || *b == b'X')
        .then_some(joined)
}

fn nibble(b: u8) -> Option<u32> {
    (b as char).to_digit(16)
}

fn parse_numeric(digits: &[u8], text: &str) -> Result<Target, String> {
    let mut mask = 0u32;
    let mut value = 0u32;
    for &b in digits {
        mask <<= 4;
        value <<= 4;
        if let Some(n) = nibble(b) {
            mask |= 0xF;
            value |= n;
        }
    }
    if mask == u32::MAX {
        Ok(Target::Tag(value))
    } else if (mask >> 16) & 0xFF00 != 0xFF00 {
        Err(format!(
            "pattern `{text}`: the high byte of the group must be written out (as in (50xx,xxxx) or (60xx,3000))"
        ))
    } else {
        Ok(Target::Pattern { mask, value })
    }
}

fn parse_private(digits: &[u8], creator: &str, text: &str) -> Result<Target, String> {
    let group_digits = &digits[..4];
    let mut group = 0u16;
    for &b in group_digits {
        let n = nibble(b).ok_or_else(|| format!("private rule `{text}`: the group must be hex"))?;
        group = (group << 4) | n as u16;
    }
    if group.is_multiple_of(2) {
        return Err(format!(
            "private rule `{text}`: group {group:04X} is even, private groups are odd"
        ));
    }
    let block_ok = digits[4..6]
        .iter()
        .all(|b| *b == b'x' || *b == b'X' || b.is_ascii_hexdigit());
    let mut elem = 0u8;
    for &b in &digits[6..8] {
        let n = nibble(b).ok_or_else(|| {
            format!("private rule `{text}`: the element byte must be hex, as in (0029,xx10)")
        })?;
        elem = (elem << 4) | n as u8;
    }
    if !block_ok {
        return Err(format!("private rule `{text}` is malformed"));
    }
    let creator = normalize_creator(creator);
    if creator.is_empty() {
        return Err(format!("private rule `{text}`: the creator is empty"));
    }
    Ok(Target::Private {
        group,
        elem,
        creator: creator.to_string(),
    })
}

fn parse_keyword(t: &str) -> Result<Target, String> {
    if t.is_empty() || !t.bytes().all(|b| b.is_ascii_alphanumeric()) {
        return Err(format!(
            "malformed tag `{t}`: expected (gggg,eeee), a pattern like (60xx,3000) or a keyword"
        ));
    }
    match StandardDataDictionary.by_name(t) {
        Some(entry) => match entry.tag_range() {
            TagRange::Single(tag) => Ok(Target::Tag(u32::from(tag.0) << 16 | u32::from(tag.1))),
            _ => Err(format!(
                "keyword `{t}` names a range of tags; write it as a pattern such as (60xx,3000)"
            )),
        },
        None => Err(format!("unknown keyword `{t}`")),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn parses_every_notation() {
        assert_eq!(
            parse_target("(0010,0010)", None),
            Ok(Target::Tag(0x0010_0010))
        );
        assert_eq!(
            parse_target("0010,0020", None),
            Ok(Target::Tag(0x0010_0020))
        );
        assert_eq!(parse_target("00100030", None), Ok(Target::Tag(0x0010_0030)));
        assert_eq!(
            parse_target("PatientName", None),
            Ok(Target::Tag(0x0010_0010))
        );
        assert_eq!(
            parse_target("(60xx,3000)", None),
            Ok(Target::Pattern {
                mask: 0xFF00_FFFF,
                value: 0x6000_3000
            })
        );
        assert_eq!(
            parse_target("(50xx,xxxx)", None),
            Ok(Target::Pattern {
                mask: 0xFF00_0000,
                value: 0x5000_0000
            })
        );
        assert_eq!(
            parse_target("(0029,xx10)", Some("SIEMENS CSA HEADER ")),
            Ok(Target::Private {
                group: 0x0029,
                elem: 0x10,
                creator: "SIEMENS CSA HEADER".into()
            })
        );
    }

    #[test]
    fn rejects_malformed_tags() {
        assert!(parse_target("(0010,001)", None).is_err());
        assert!(parse_target("(xx10,0010)", None).is_err());
        assert!(parse_target("NoSuchKeyword", None).is_err());
        assert!(parse_target("Patient Name", None).is_err());
        assert!(parse_target("(0028,xx10)", Some("ACME")).is_err());
        assert!(parse_target("PatientName", Some("ACME")).is_err());
        assert!(parse_target("(gggg,eeee) where gggg is odd", None).is_err());
    }

    #[test]
    fn describes_patterns_like_the_standard() {
        let p = parse_target("(60xx,4000)", None).unwrap();
        assert_eq!(p.describe(), "(60xx,4000)");
    }
}
