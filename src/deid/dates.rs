//! Per-patient date shifting (Retain Longitudinal Temporal Information, Modified
//! Dates): every DA and DT of a patient moves back by the same keyed number of days,
//! so intervals survive and the real dates do not.

use super::key::Key;
use super::pseudonym::trim_padding;

/// The patient's shift in whole days into the past: HMAC(key, "date-shift" + ID)
/// mapped onto `min..=max`. Never zero when `min >= 1`.
pub fn offset_days(key: &Key, patient_id: &str, (min, max): (u32, u32)) -> u32 {
    let mac = key.mac(&[
        b"date-shift\0",
        trim_padding(patient_id).trim_start().as_bytes(),
    ]);
    let mut first = [0u8; 8];
    first.copy_from_slice(&mac[..8]);
    let span = u64::from(max.saturating_sub(min)) + 1;
    min + (u64::from_be_bytes(first) % span) as u32
}

/// Days since 1970-01-01 of a proleptic Gregorian date (Howard Hinnant's algorithm).
fn days_from_civil(y: i64, m: u32, d: u32) -> i64 {
    let y = if m <= 2 { y - 1 } else { y };
    let era = y.div_euclid(400);
    let yoe = y - era * 400;
    let m = i64::from(m);
    let doy = (153 * (if m > 2 { m - 3 } else { m + 9 }) + 2) / 5 + i64::from(d) - 1;
    let doe = yoe * 365 + yoe / 4 - yoe / 100 + doy;
    era * 146_097 + doe - 719_468
}

fn civil_from_days(z: i64) -> (i64, u32, u32) {
    let z = z + 719_468;
    let era = z.div_euclid(146_097);
    let doe = z - era * 146_097;
    let yoe = (doe - doe / 1460 + doe / 36_524 - doe / 146_096) / 365;
    let y = yoe + era * 400;
    let doy = doe - (365 * yoe + yoe / 4 - yoe / 100);
    let mp = (5 * doy + 2) / 153;
    let d = (doy - (153 * mp + 2) / 5 + 1) as u32;
    let m = if mp < 10 { mp + 3 } else { mp - 9 } as u32;
    (if m <= 2 { y + 1 } else { y }, m, d)
}

fn days_in_month(y: i64, m: u32) -> u32 {
    match m {
        4 | 6 | 9 | 11 => 30,
        2 if (y % 4 == 0 && y % 100 != 0) || y % 400 == 0 => 29,
        2 => 28,
        _ => 31,
    }
}

fn digits(s: &str) -> Option<i64> {
    (!s.is_empty() && s.bytes().all(|b| b.is_ascii_digit()))
        .then(|| s.parse().ok())
        .flatten()
}

/// Shifts a date of 4, 6 or 8 digits, keeping its precision. A partial date moves by
/// its middle day so the shift cannot reveal its position inside the period.
fn shift_compact(date: &str, days: u32) -> Option<String> {
    let (y, m, d, precision) = match date.len() {
        8 => (
            digits(&date[..4])?,
            digits(&date[4..6])? as u32,
            digits(&date[6..8])? as u32,
            8,
        ),
        6 => (digits(&date[..4])?, digits(&date[4..6])? as u32, 15, 6),
        4 => (digits(date)?, 7, 1, 4),
        _ => return None,
    };
    if !(1..=12).contains(&m) || d == 0 || d > days_in_month(y, m) {
        return None;
    }
    let (ny, nm, nd) = civil_from_days(days_from_civil(y, m, d) - i64::from(days));
    if !(0..=9999).contains(&ny) {
        return None;
    }
    let full = format!("{ny:04}{nm:02}{nd:02}");
    Some(full[..precision].to_string())
}

/// Shifts a DA value (also `YYYY.MM.DD` and ranges `A-B`, `-B`, `A-`). `None` when
/// the value is not a date, so the caller can fall back to a dummy.
pub fn shift_da(value: &str, days: u32) -> Option<String> {
    let v = trim_padding(value).trim();
    if !v.is_ascii() {
        return None; // not a date; byte offsets below assume ASCII
    }
    if v.is_empty() {
        return Some(String::new());
    }
    if let Some((a, b)) = v.split_once('-') {
        let a = if a.is_empty() {
            String::new()
        } else {
            shift_da(a, days)?
        };
        let b = if b.is_empty() {
            String::new()
        } else {
            shift_da(b, days)?
        };
        return Some(format!("{a}-{b}"));
    }
    let compact = if v.len() == 10 && v.as_bytes()[4] == b'.' && v.as_bytes()[7] == b'.' {
        v.replace('.', "")
    } else {
        v.to_string()
    };
    if compact.len() != 8 {
        return None;
    }
    shift_compact(&compact, days)
}

/// Shifts the date part of a DT value; time, fraction and UTC offset are kept.
pub fn shift_dt(value: &str, days: u32) -> Option<String> {
    let v = trim_padding(value).trim();
    if !v.is_ascii() {
        return None; // not a date-time; byte offsets below assume ASCII
    }
    if v.is_empty() {
        return Some(String::new());
    }
    // A range: split on the '-' that is not the sign of a UTC offset. Offsets follow
    // at least 4 digits of a date, so a leading '-' or one after a full DT separates.
    if let Some(idx) = range_separator(v) {
        let (a, b) = (&v[..idx], &v[idx + 1..]);
        let a = if a.is_empty() {
            String::new()
        } else {
            shift_dt(a, days)?
        };
        let b = if b.is_empty() {
            String::new()
        } else {
            shift_dt(b, days)?
        };
        return Some(format!("{a}-{b}"));
    }
    let date_len = v.bytes().take_while(|b| b.is_ascii_digit()).count().min(8);
    let date_len = match date_len {
        8 | 6 | 4 => date_len,
        _ => return None,
    };
    let shifted = shift_compact(&v[..date_len], days)?;
    Some(format!("{shifted}{}", &v[date_len..]))
}

/// Position of the '-' separating a DT range, if `v` is one.
fn range_separator(v: &str) -> Option<usize> {
    let bytes = v.as_bytes();
    let dashes: Vec<usize> = bytes
        .iter()
        .enumerate()
        .filter(|(_, b)| **b == b'-')
        .map(|(i, _)| i)
        .collect();
    // A single DT has at most one '-' (its offset, followed by exactly 4 digits at the
    // end); anything else with a '-' is a range.
    match dashes.as_slice() {
        [] => None,
        [i] => {
            let tail = &v[i + 1..];
            let is_offset = *i >= 4
                && tail.len() == 4
                && tail.bytes().all(|b| b.is_ascii_digit())
                && !v[..*i].contains('+');
            if is_offset && *i != 0 { None } else { Some(*i) }
        }
        [first, ..] => {
            // "A-0500-B": the separator is the dash after which a date starts again.
            let mut sep = *first;
            for &d in &dashes {
                let tail = &v[d + 1..];
                let is_offset = tail.len() >= 4
                    && tail[..4].bytes().all(|b| b.is_ascii_digit())
                    && (tail.len() == 4 || tail.as_bytes()[4] == b'-');
                if !is_offset || d == 0 {
                    sep = d;
                    break;
                }
            }
            Some(sep)
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn calendar_round_trips() {
        for (y, m, d) in [
            (1970, 1, 1),
            (2000, 2, 29),
            (1900, 3, 1),
            (2024, 12, 31),
            (1, 1, 1),
        ] {
            assert_eq!(civil_from_days(days_from_civil(y, m, d)), (y, m, d));
        }
        assert_eq!(days_from_civil(1970, 1, 1), 0);
    }

    #[test]
    fn dates_shift_across_months_years_and_leap_days() {
        assert_eq!(shift_da("20200301", 1).as_deref(), Some("20200229"));
        assert_eq!(shift_da("20210101", 1).as_deref(), Some("20201231"));
        assert_eq!(shift_da("19610704", 365).as_deref(), Some("19600704"));
        assert_eq!(shift_da("19610704", 366).as_deref(), Some("19600703"));
        assert_eq!(shift_da("2020.03.01", 1).as_deref(), Some("20200229"));
        assert_eq!(
            shift_da("20200101-20200131", 10).as_deref(),
            Some("20191222-20200121")
        );
        assert_eq!(shift_da("-20200131", 10).as_deref(), Some("-20200121"));
        assert_eq!(shift_da("20201340", 1), None);
        assert_eq!(shift_da("notadate", 1), None);
        assert_eq!(
            shift_da("123\u{e9}567", 1),
            None,
            "fuzz: non-ASCII must not panic"
        );
        assert_eq!(shift_dt("x-123\u{e9}-", 1), None);
        assert_eq!(shift_da("", 5).as_deref(), Some(""));
    }

    #[test]
    fn datetimes_keep_time_fraction_and_offset() {
        assert_eq!(
            shift_dt("20200301120000.5+0100", 1).as_deref(),
            Some("20200229120000.5+0100")
        );
        assert_eq!(
            shift_dt("20200301083000-0500", 1).as_deref(),
            Some("20200229083000-0500")
        );
        assert_eq!(shift_dt("2020", 1).as_deref(), Some("2020"));
        assert_eq!(shift_dt("202003", 20).as_deref(), Some("202002"));
        assert_eq!(
            shift_dt("20200301-20200310", 1).as_deref(),
            Some("20200229-20200309")
        );
        assert_eq!(
            shift_dt("20200301083000-0500-20200302083000-0500", 1).as_deref(),
            Some("20200229083000-0500-20200301083000-0500")
        );
    }

    #[test]
    fn offsets_are_keyed_stable_and_in_range() {
        let k = Key::from_bytes(&[5; 32]);
        let a = offset_days(&k, "PID-1", (1, 3650));
        assert!((1..=3650).contains(&a));
        assert_eq!(a, offset_days(&k, "PID-1 ", (1, 3650)));
        let other = Key::from_bytes(&[6; 32]);
        let differs = (0..20).any(|i| {
            offset_days(&k, &format!("P{i}"), (1, 3650))
                != offset_days(&other, &format!("P{i}"), (1, 3650))
        });
        assert!(differs);
        assert_eq!(offset_days(&k, "x", (7, 7)), 7);
    }
}
