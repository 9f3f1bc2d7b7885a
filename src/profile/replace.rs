//! `replace:` values checked against a VR (PS3.5 6.2). The compiler runs the check
//! once for rules whose tag has one dictionary VR, so a value the VR cannot hold is a
//! profile error and not a failure of every file; the engine runs it per element only
//! where the VR is known no earlier (patterns, private rules).

use dicom_core::dictionary::{DataDictionary, DataDictionaryEntry, VirtualVr};
use dicom_core::value::C;
use dicom_core::{PrimitiveValue, Tag, VR};
use dicom_dictionary_std::StandardDataDictionary;
use std::str::FromStr;

/// The VR of a standard attribute, when the dictionary gives exactly one.
pub fn dictionary_vr(tag: u32) -> Option<VR> {
    let tag = Tag((tag >> 16) as u16, tag as u16);
    match StandardDataDictionary.by_tag(tag)?.vr() {
        VirtualVr::Exact(vr) => Some(vr),
        _ => None,
    }
}

/// The value `text` stands for in an element of `vr`, or why it cannot be one.
/// Text is written as given (its padding included); numbers are parsed, several
/// separated by `\`.
pub fn parse(vr: VR, text: &str) -> Result<PrimitiveValue, String> {
    let vr_name = vr.to_string();
    let bad = |why: &str| format!("replacement `{text}` is not a valid {vr_name} value: {why}");
    let finite_f32 = |v: &C<f32>| v.iter().all(|f| f.is_finite());
    let finite_f64 = |v: &C<f64>| v.iter().all(|f| f.is_finite());
    let parsed = match vr {
        VR::US => binary(text).map(PrimitiveValue::U16),
        VR::SS => binary(text).map(PrimitiveValue::I16),
        VR::UL => binary(text).map(PrimitiveValue::U32),
        VR::SL => binary(text).map(PrimitiveValue::I32),
        VR::UV => binary(text).map(PrimitiveValue::U64),
        VR::SV => binary(text).map(PrimitiveValue::I64),
        VR::FL => binary(text).filter(finite_f32).map(PrimitiveValue::F32),
        VR::FD => binary(text).filter(finite_f64).map(PrimitiveValue::F64),
        VR::SQ => {
            return Err("`replace:` cannot write a sequence (SQ); use action Z or X".into());
        }
        VR::OB | VR::OW | VR::OF | VR::OD | VR::OL | VR::OV | VR::UN | VR::AT => {
            return Err(format!("`replace:` cannot write VR {vr_name}"));
        }
        _ => {
            return check_text(vr, text)
                .map(|()| PrimitiveValue::from(text))
                .map_err(|why| bad(&why));
        }
    };
    parsed.ok_or_else(|| {
        bad(match vr {
            VR::US | VR::UL | VR::UV => {
                "expected unsigned integers in range, several separated by \\"
            }
            VR::FL | VR::FD => "expected finite numbers, several separated by \\",
            _ => "expected integers in range, several separated by \\",
        })
    })
}

/// Binary numbers, several separated by `\`; `None` if any does not parse.
fn binary<T: FromStr>(text: &str) -> Option<C<T>> {
    text.split('\\')
        .map(|v| v.trim().parse::<T>().ok())
        .collect()
}

/// Maximum length in characters of one value (PS3.5 Table 6.2-1); for PN, of one
/// component group.
fn max_chars(vr: VR) -> Option<usize> {
    match vr {
        VR::AE | VR::CS | VR::SH => Some(16),
        VR::LO | VR::PN | VR::UI => Some(64),
        VR::ST => Some(1024),
        VR::LT => Some(10240),
        VR::DA => Some(8),
        VR::TM => Some(14),
        VR::DT => Some(26),
        VR::AS => Some(4),
        VR::IS => Some(12),
        VR::DS => Some(16),
        _ => None,
    }
}

fn check_text(vr: VR, text: &str) -> Result<(), String> {
    // ST, LT, UT and UR hold one value, backslash included; the rest are multi-valued.
    let single = matches!(vr, VR::ST | VR::LT | VR::UT | VR::UR);
    let values: Vec<&str> = if single {
        vec![text]
    } else {
        text.split('\\').collect()
    };
    for v in values {
        check_one(vr, v)?;
    }
    Ok(())
}

fn check_one(vr: VR, v: &str) -> Result<(), String> {
    let is_pn = vr == VR::PN;
    if let Some(max) = max_chars(vr).filter(|_| !is_pn)
        && v.chars().count() > max
    {
        return Err(format!("longer than {max} characters"));
    }
    // Only the text VRs may leave the default repertoire, and only they may carry
    // ESC (for ISO 2022 escapes); free text may carry line breaks too.
    let extended = matches!(
        vr,
        VR::SH | VR::LO | VR::ST | VR::LT | VR::UT | VR::UC | VR::PN
    );
    let free_text = matches!(vr, VR::ST | VR::LT | VR::UT);
    if !extended && !v.is_ascii() {
        return Err("only ASCII is allowed".into());
    }
    let control_ok = |c: char| {
        (extended && c == '\x1b') || (free_text && matches!(c, '\t' | '\n' | '\r' | '\x0c'))
    };
    if v.chars().any(|c| c.is_control() && !control_ok(c)) {
        return Err("control characters are not allowed".into());
    }
    let padded = v.trim_end_matches(' ');
    let ok = match vr {
        VR::CS => v
            .bytes()
            .all(|b| b.is_ascii_uppercase() || b.is_ascii_digit() || b == b' ' || b == b'_'),
        VR::PN => return check_person_name(v),
        VR::DA => padded.is_empty() || is_date(padded),
        VR::TM => padded.is_empty() || is_time(padded),
        VR::DT => padded.is_empty() || is_date_time(padded),
        VR::AS => {
            v.is_empty()
                || (v.len() == 4
                    && v[..3].bytes().all(|b| b.is_ascii_digit())
                    && matches!(&v[3..], "D" | "W" | "M" | "Y"))
        }
        VR::IS => {
            let t = v.trim_matches(' ');
            t.is_empty()
                || (t
                    .bytes()
                    .all(|b| b.is_ascii_digit() || b == b'+' || b == b'-')
                    && t.parse::<i32>().is_ok())
        }
        VR::DS => {
            let t = v.trim_matches(' ');
            t.is_empty()
                || (t
                    .bytes()
                    .all(|b| b.is_ascii_digit() || matches!(b, b'+' | b'-' | b'.' | b'e' | b'E'))
                    && t.parse::<f64>().is_ok_and(f64::is_finite))
        }
        VR::UI => {
            let t = v.trim_end_matches('\0');
            t.is_empty()
                || t.split('.').all(|c| {
                    !c.is_empty()
                        && c.bytes().all(|b| b.is_ascii_digit())
                        && (c == "0" || !c.starts_with('0'))
                })
        }
        _ => true,
    };
    if ok {
        Ok(())
    } else {
        Err(match vr {
            VR::CS => "expected upper-case letters, digits, space and underscore".into(),
            VR::DA => "expected a date YYYYMMDD".into(),
            VR::TM => "expected a time HH[MM[SS[.FFFFFF]]]".into(),
            VR::DT => "expected a date-time YYYY[MM[DD[HH[MM[SS[.FFFFFF]]]]]][+/-ZZXX]".into(),
            VR::AS => "expected an age nnnD, nnnW, nnnM or nnnY".into(),
            VR::IS => "expected a 32-bit integer".into(),
            VR::DS => "expected a decimal number".into(),
            VR::UI => "expected digits and dots, no empty component, no leading zero".into(),
            _ => "malformed".into(),
        })
    }
}

/// At most three component groups of at most 64 characters, each with at most five
/// components.
fn check_person_name(v: &str) -> Result<(), String> {
    let groups: Vec<&str> = v.split('=').collect();
    if groups.len() > 3 {
        return Err("a person name has at most 3 component groups".into());
    }
    for g in groups {
        if g.chars().count() > 64 {
            return Err("a component group is longer than 64 characters".into());
        }
        if g.split('^').count() > 5 {
            return Err("a component group has at most 5 components".into());
        }
    }
    Ok(())
}

fn digits(s: &str) -> Option<u32> {
    (!s.is_empty() && s.bytes().all(|b| b.is_ascii_digit()))
        .then(|| s.parse().ok())
        .flatten()
}

fn is_date(s: &str) -> bool {
    if s.len() != 8 {
        return false;
    }
    let (Some(y), Some(m), Some(d)) = (digits(&s[..4]), digits(&s[4..6]), digits(&s[6..])) else {
        return false;
    };
    let leap = (y % 4 == 0 && y % 100 != 0) || y % 400 == 0;
    let days = match m {
        1 | 3 | 5 | 7 | 8 | 10 | 12 => 31,
        4 | 6 | 9 | 11 => 30,
        2 if leap => 29,
        2 => 28,
        _ => return false,
    };
    (1..=days).contains(&d)
}

/// `HH[MM[SS[.F{1,6}]]]`; seconds may be 60 (a leap second).
fn is_time(s: &str) -> bool {
    let (hms, frac) = match s.split_once('.') {
        Some((hms, f)) => (hms, Some(f)),
        None => (s, None),
    };
    let limits = [23, 59, 60];
    if hms.is_empty() || hms.len() % 2 == 1 || hms.len() > 6 {
        return false;
    }
    let fields_ok =
        (0..hms.len() / 2).all(|i| digits(&hms[2 * i..2 * i + 2]).is_some_and(|n| n <= limits[i]));
    let frac_ok =
        frac.is_none_or(|f| hms.len() == 6 && (1..=6).contains(&f.len()) && digits(f).is_some());
    fields_ok && frac_ok
}

/// `YYYY[MM[DD[HH[MM[SS[.F{1,6}]]]]]][&ZZXX]`.
fn is_date_time(s: &str) -> bool {
    let (body, zone) = match s.find(['+', '-']) {
        Some(i) => (&s[..i], Some(&s[i + 1..])),
        None => (s, None),
    };
    let zone_ok = zone.is_none_or(|z| {
        z.len() == 4
            && digits(&z[..2]).is_some_and(|h| h <= 14)
            && digits(&z[2..]).is_some_and(|m| m <= 59)
    });
    let date_len = body.find('.').unwrap_or(body.len()).min(8);
    let date = &body[..date_len];
    let date_ok = match date.len() {
        4 => digits(date).is_some(),
        6 => {
            digits(&date[..4]).is_some()
                && digits(&date[4..]).is_some_and(|m| (1..=12).contains(&m))
        }
        8 => is_date(date),
        _ => false,
    };
    let rest = &body[date_len..];
    let time_ok = rest.is_empty() || (date.len() == 8 && is_time(rest));
    zone_ok && date_ok && time_ok
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn numbers_parse_one_or_several() {
        assert_eq!(parse(VR::US, "12").unwrap(), PrimitiveValue::from(12u16));
        assert_eq!(
            parse(VR::US, "1\\2").unwrap(),
            PrimitiveValue::U16([1, 2].into_iter().collect())
        );
        assert!(parse(VR::US, "abc").is_err());
        assert!(parse(VR::US, "70000").is_err());
        assert!(parse(VR::US, "").is_err());
        assert!(parse(VR::SS, "-5").is_ok());
        assert!(parse(VR::UL, "-5").is_err());
        assert!(parse(VR::FD, "1.5\\2e3").is_ok());
        assert!(parse(VR::FL, "NaN").is_err());
        assert!(parse(VR::IS, " -12 ").is_ok());
        assert!(parse(VR::IS, "1.5").is_err());
        assert!(parse(VR::IS, "99999999999").is_err());
        assert!(parse(VR::DS, "1.5e3\\-2").is_ok());
        assert!(parse(VR::DS, "one").is_err());
        assert!(parse(VR::DS, "12345678901234567").is_err());
    }

    #[test]
    fn dates_and_times_follow_their_syntax() {
        assert!(parse(VR::DA, "20240229").is_ok());
        assert!(parse(VR::DA, "").is_ok());
        assert!(parse(VR::DA, "20230229").is_err());
        assert!(parse(VR::DA, "2024-01-01").is_err());
        assert!(parse(VR::TM, "235959.123456").is_ok());
        assert!(parse(VR::TM, "12").is_ok());
        assert!(parse(VR::TM, "2400").is_err());
        assert!(parse(VR::TM, "12:00").is_err());
        assert!(parse(VR::DT, "2024").is_ok());
        assert!(parse(VR::DT, "20240101120000.5+0100").is_ok());
        assert!(parse(VR::DT, "202413").is_err());
        assert!(parse(VR::DT, "20240101+2500").is_err());
        assert!(parse(VR::AS, "045Y").is_ok());
        assert!(parse(VR::AS, "45Y").is_err());
    }

    #[test]
    fn text_follows_length_and_repertoire() {
        assert!(parse(VR::CS, "ORIGINAL\\PRIMARY").is_ok());
        assert!(parse(VR::CS, "ct").is_err());
        assert!(parse(VR::CS, "01234567890123456").is_err());
        assert!(parse(VR::SH, "0123456789012345").is_ok());
        assert!(parse(VR::SH, "01234567890123456").is_err());
        assert!(parse(VR::LO, &"x".repeat(65)).is_err());
        assert!(parse(VR::LO, "Müller").is_ok());
        assert!(parse(VR::AE, "Müller").is_err());
        assert!(parse(VR::LO, "a\nb").is_err());
        assert!(parse(VR::LT, "a\r\nb\\c").is_ok());
        assert!(parse(VR::PN, "DOE^JOHN=^^^^").is_ok());
        assert!(parse(VR::PN, &format!("{}=X", "A".repeat(64))).is_ok());
        assert!(parse(VR::PN, &"A".repeat(65)).is_err());
        assert!(parse(VR::PN, "A^B^C^D^E^F").is_err());
        assert!(parse(VR::UI, "1.2.840.10008.1.2").is_ok());
        assert!(parse(VR::UI, "1.02").is_err());
        assert!(parse(VR::UI, "1..2").is_err());
        assert!(parse(VR::SQ, "x").is_err());
        assert!(parse(VR::OB, "x").is_err());
    }

    #[test]
    fn dictionary_vr_only_when_unique() {
        assert_eq!(dictionary_vr(0x0028_0010), Some(VR::US));
        assert_eq!(dictionary_vr(0x0010_0010), Some(VR::PN));
        // Pixel Data is OB or OW.
        assert_eq!(dictionary_vr(0x7FE0_0010), None);
        assert_eq!(dictionary_vr(0x0029_1010), None);
    }
}
