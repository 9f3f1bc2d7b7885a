//! Residual PHI: the identifying values of an original, searched in every decoded
//! string of its de-identified file (any depth, private and UN included) and in
//! the file's raw bytes. Findings name where and what kind of value matched,
//! never the value.

use super::dataset::{Visit, tag_u32, trim_value};
use super::finding::{Finding, Kind, ValueKind};
use crate::profile::{Action, CompiledProfile};
use dicom_core::Tag;
use std::collections::{BTreeMap, BTreeSet, HashSet};
use std::fs::File;
use std::io::Read;
use std::ops::Range;
use std::path::Path;

/// How an identifying attribute turns into search strings.
#[derive(Clone, Copy)]
enum Form {
    /// A person name: the whole name, and each component of 3 characters or more.
    Name(ValueKind),
    /// A date: YYYYMMDD, YYYY-MM-DD and DD.MM.YYYY.
    Date,
    Plain,
}

/// The identifying attributes of an original, at any depth.
const IDENTIFYING: [(u32, ValueKind, Form); 20] = {
    use Form::{Date, Name, Plain};
    use ValueKind::*;
    let patient = Name(PatientNameComponent);
    let physician = Name(PhysicianNameComponent);
    [
        (0x0010_0010, PatientName, patient),
        (0x0010_1001, PatientName, patient), // Other Patient Names
        (0x0010_1005, PatientName, patient), // Patient's Birth Name
        (0x0010_1060, PatientName, patient), // Patient's Mother's Birth Name
        (0x0010_0020, PatientId, Plain),
        (0x0010_1000, OtherPatientId, Plain),
        (0x0010_0030, BirthDate, Date),
        (0x0008_0050, AccessionNumber, Plain),
        (0x0010_1040, PatientAddress, Plain),
        (0x0008_0081, InstitutionAddress, Plain),
        (0x0010_2154, TelephoneNumber, Plain), // Patient's Telephone Numbers
        (0x0008_0094, TelephoneNumber, Plain), // Referring Physician's
        (0x0040_1103, TelephoneNumber, Plain), // Person's Telephone Numbers
        (0x0008_0080, InstitutionName, Plain),
        (0x0008_0090, PhysicianName, physician), // Referring
        (0x0008_1050, PhysicianName, physician), // Performing
        (0x0008_1060, PhysicianName, physician), // Reading
        (0x0008_1048, PhysicianName, physician), // Physician(s) of Record
        (0x0032_1032, PhysicianName, physician), // Requesting
        (0x0008_1070, OperatorName, Name(OperatorNameComponent)),
    ]
};

/// Shorter values match by chance; all-digit values shorter than this match
/// inside UIDs and numbers.
const MIN_CHARS: usize = 3;
const MIN_DIGITS: usize = 6;
/// Longer values are not identifiers; the raw search keeps this many bytes
/// between chunks.
const MAX_CHARS: usize = 1024;
/// Pixel bytes match short strings by chance: only longer needles are searched
/// there.
const MIN_PIXEL_NEEDLE: usize = 8;
const MAX_RAW_HITS: usize = 3;
const CHUNK: usize = 1 << 20;

/// Identifying values of one or more originals, lower-cased, each with its kind.
#[derive(Debug, Default, Clone)]
pub struct Needles {
    by_text: BTreeMap<String, ValueKind>,
}

impl Needles {
    /// Collects the identifying values of an original; attributes the profile
    /// keeps are left out (the profile's owner chose to share them).
    pub fn collect(visits: &[Visit<'_>], profile: &CompiledProfile) -> Needles {
        let mut needles = Needles::default();
        for v in visits {
            let tag = tag_u32(v.tag);
            let Some((_, kind, form)) = IDENTIFYING.iter().find(|(t, _, _)| *t == tag) else {
                continue;
            };
            if matches!(profile.decide(tag, None).action(), Action::Keep) {
                continue;
            }
            for value in v.strings() {
                needles.add_value(*kind, *form, &value);
            }
        }
        needles
    }

    /// The original values of a `run --crosswalk` file (`kind,original,pseudonym`):
    /// every one is searched for in every checked file.
    pub fn from_crosswalk(path: &Path) -> Result<Needles, String> {
        let mut reader = csv::Reader::from_path(path).map_err(|e| e.to_string())?;
        let mut needles = Needles::default();
        for rec in reader.records() {
            let rec = rec.map_err(|e| e.to_string())?;
            let (Some(kind), Some(original)) = (rec.get(0), rec.get(1)) else {
                continue;
            };
            let kind = match kind {
                "patient-id" | "date-offset-days" => ValueKind::PatientId,
                "accession" | "accession-number" => ValueKind::AccessionNumber,
                // UIDs are judged by the UID checks, not searched as text.
                "study-instance-uid" => continue,
                _ => ValueKind::OtherPatientId,
            };
            needles.add_value(kind, Form::Plain, original);
        }
        Ok(needles)
    }

    pub fn merge(&mut self, other: &Needles) {
        for (text, kind) in &other.by_text {
            self.insert(text.clone(), *kind);
        }
    }

    pub fn is_empty(&self) -> bool {
        self.by_text.is_empty()
    }

    fn add_value(&mut self, kind: ValueKind, form: Form, value: &str) {
        match form {
            Form::Plain => self.add(kind, value),
            Form::Date => {
                for text in date_forms(value) {
                    self.add(kind, &text);
                }
            }
            Form::Name(component) => {
                self.add(kind, value.trim_end_matches(['^', '=', ' ']));
                for part in value.split(['^', '=']) {
                    self.add(component, part);
                }
            }
        }
    }

    fn add(&mut self, kind: ValueKind, text: &str) {
        let text = trim_value(text);
        if admissible(text) {
            self.insert(text.to_lowercase(), kind);
        }
    }

    /// One kind per text: a whole value wins over a component.
    fn insert(&mut self, text: String, kind: ValueKind) {
        let slot = self.by_text.entry(text).or_insert(kind);
        if *slot != slot.whole() && kind == kind.whole() {
            *slot = kind;
        }
    }

    pub fn compile(&self) -> Vec<Needle> {
        self.by_text
            .iter()
            .map(|(text, kind)| Needle {
                kind: *kind,
                bytes: encodings(text),
                lower: text.clone(),
            })
            .collect()
    }
}

fn admissible(text: &str) -> bool {
    let chars = text.chars().count();
    let digits_only = text.chars().all(|c| c.is_ascii_digit());
    (MIN_CHARS..=MAX_CHARS).contains(&chars)
        && (!digits_only || chars >= MIN_DIGITS)
        && text.chars().any(char::is_alphanumeric)
        && !super::rules::is_known_dummy(text)
}

fn date_forms(value: &str) -> Vec<String> {
    let v = trim_value(value);
    if v.len() == 8 && v.bytes().all(|b| b.is_ascii_digit()) {
        let (y, m, d) = (&v[..4], &v[4..6], &v[6..]);
        vec![
            v.to_string(),
            format!("{y}-{m}-{d}"),
            format!("{d}.{m}.{y}"),
        ]
    } else {
        vec![v.to_string()]
    }
}

/// The byte forms a value can take in a file, ASCII lower-cased: UTF-8, and
/// Latin-1 when the value is not ASCII but fits it.
fn encodings(text: &str) -> Vec<Vec<u8>> {
    let mut out = vec![text.as_bytes().to_ascii_lowercase()];
    if !text.is_ascii() && text.chars().all(|c| u32::from(c) <= 0xFF) {
        let latin1: Vec<u8> = text.chars().map(|c| u32::from(c) as u8).collect();
        out.push(latin1.to_ascii_lowercase());
    }
    out
}

/// One search string.
#[derive(Debug)]
pub struct Needle {
    pub kind: ValueKind,
    lower: String,
    bytes: Vec<Vec<u8>>,
}

impl Needle {
    /// A name component matches as a whole word only: `ANN` is not in `ANNOTATION`.
    fn whole_word(&self) -> bool {
        self.kind.whole() != self.kind
    }

    fn in_text(&self, lower_text: &str) -> bool {
        lower_text.match_indices(self.lower.as_str()).any(|(i, m)| {
            !self.whole_word()
                || (!lower_text[..i]
                    .chars()
                    .next_back()
                    .is_some_and(char::is_alphanumeric)
                    && !lower_text[i + m.len()..]
                        .chars()
                        .next()
                        .is_some_and(char::is_alphanumeric))
        })
    }
}

/// Searches every decoded string; returns the needles found, so the raw search
/// reports only what the decoded search could not explain.
pub fn search_strings(
    visits: &[Visit<'_>],
    needles: &[Needle],
    findings: &mut Vec<Finding>,
) -> HashSet<usize> {
    let mut found = HashSet::new();
    for v in visits {
        if v.tag == Tag(0x7FE0, 0x0010) {
            continue;
        }
        let mut kinds = BTreeSet::new();
        for value in v.strings() {
            let value = value.to_lowercase();
            for (i, n) in needles.iter().enumerate() {
                if n.in_text(&value) {
                    kinds.insert(n.kind);
                    found.insert(i);
                }
            }
        }
        // A component adds nothing where the whole name matched.
        let whole: BTreeSet<ValueKind> =
            kinds.iter().filter(|k| k.whole() == **k).copied().collect();
        for kind in kinds
            .into_iter()
            .filter(|k| k.whole() == *k || !whole.contains(&k.whole()))
        {
            let mut f = Finding::at(
                Kind::ResidualPhi,
                &v.path,
                "an identifying value of the original is in this element",
            );
            f.matched = Some(kind);
            findings.push(f);
        }
    }
    found
}

/// One byte form of a needle, as searched in raw bytes.
struct Pattern<'a> {
    needle: usize,
    bytes: &'a [u8],
    whole_word: bool,
}

/// Searches the raw bytes of a file (ASCII case-insensitive), streaming, for the
/// needles not found in any decoded string. `pixel` is the byte range of Pixel
/// Data, where only long needles are searched.
pub fn search_raw(
    path: &Path,
    needles: &[Needle],
    skip: &HashSet<usize>,
    pixel: Option<Range<u64>>,
) -> std::io::Result<Vec<Finding>> {
    let patterns: Vec<Pattern<'_>> = needles
        .iter()
        .enumerate()
        .filter(|(i, _)| !skip.contains(i))
        .flat_map(|(i, n)| {
            n.bytes.iter().map(move |b| Pattern {
                needle: i,
                bytes: b,
                whole_word: n.whole_word(),
            })
        })
        .filter(|p| !p.bytes.is_empty())
        .collect();
    let Some(longest) = patterns.iter().map(|p| p.bytes.len()).max() else {
        return Ok(Vec::new());
    };
    let mut hits: BTreeMap<usize, Vec<u64>> = BTreeMap::new();
    let mut record = |p: &Pattern<'_>, offset: u64| {
        let in_pixels = pixel.as_ref().is_some_and(|r| r.contains(&offset));
        let list = hits.entry(p.needle).or_default();
        if !(in_pixels && p.bytes.len() < MIN_PIXEL_NEEDLE) && list.len() < MAX_RAW_HITS {
            list.push(offset);
        }
    };
    let mut file = File::open(path)?;
    let mut buf: Vec<u8> = Vec::with_capacity(CHUNK + longest + 1);
    // File offset of buf[0]; matches starting before `own` were decided already.
    let (mut base, mut own) = (0u64, 0usize);
    loop {
        let old = buf.len();
        buf.resize(old + CHUNK, 0);
        let n = read_full(&mut file, &mut buf[old..])?;
        buf.truncate(old + n);
        buf[old..].make_ascii_lowercase();
        let eof = n < CHUNK;
        // A match starting before `end` lies in the buffer with the byte after it.
        let end = if eof {
            buf.len()
        } else {
            buf.len().saturating_sub(longest)
        };
        for p in &patterns {
            for pos in find_all(&buf, p.bytes).filter(|pos| (own..end).contains(pos)) {
                if !p.whole_word || at_word_bounds(&buf, pos, p.bytes.len()) {
                    record(p, base + pos as u64);
                }
            }
        }
        if eof {
            break;
        }
        // Keep one byte before `end` for the word-bound test.
        let keep_from = end.saturating_sub(1);
        buf.drain(..keep_from);
        base += keep_from as u64;
        own = end - keep_from;
    }
    let mut findings = Vec::new();
    for (i, offsets) in hits {
        for offset in offsets {
            let mut f = Finding::new(
                Kind::ResidualPhi,
                "an identifying value of the original is in the file's bytes, outside every decoded text value",
            );
            f.offset = Some(offset);
            f.matched = Some(needles[i].kind);
            findings.push(f);
        }
    }
    Ok(findings)
}

fn at_word_bounds(buf: &[u8], pos: usize, len: usize) -> bool {
    let before = pos.checked_sub(1).and_then(|i| buf.get(i));
    let after = buf.get(pos + len);
    !before.is_some_and(u8::is_ascii_alphanumeric) && !after.is_some_and(u8::is_ascii_alphanumeric)
}

fn find_all<'a>(hay: &'a [u8], needle: &'a [u8]) -> impl Iterator<Item = usize> + 'a {
    hay.windows(needle.len())
        .enumerate()
        .filter(move |(_, w)| *w == needle)
        .map(|(i, _)| i)
}

fn read_full(r: &mut impl Read, buf: &mut [u8]) -> std::io::Result<usize> {
    let mut filled = 0;
    while filled < buf.len() {
        match r.read(&mut buf[filled..]) {
            Ok(0) => break,
            Ok(n) => filled += n,
            Err(e) if e.kind() == std::io::ErrorKind::Interrupted => {}
            Err(e) => return Err(e),
        }
    }
    Ok(filled)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn names_dates_and_short_values() {
        let mut n = Needles::default();
        n.add_value(
            ValueKind::PatientName,
            Form::Name(ValueKind::PatientNameComponent),
            "DOE^JOHN^Q",
        );
        n.add_value(ValueKind::BirthDate, Form::Date, "19610704");
        n.add_value(ValueKind::PatientId, Form::Plain, "4711");
        let texts: Vec<(&str, ValueKind)> =
            n.by_text.iter().map(|(t, k)| (t.as_str(), *k)).collect();
        assert_eq!(
            texts,
            [
                ("04.07.1961", ValueKind::BirthDate),
                ("1961-07-04", ValueKind::BirthDate),
                ("19610704", ValueKind::BirthDate),
                ("doe", ValueKind::PatientNameComponent),
                ("doe^john^q", ValueKind::PatientName),
                ("john", ValueKind::PatientNameComponent),
            ]
        );
    }

    #[test]
    fn components_match_whole_words_only() {
        let mut n = Needles::default();
        n.add(ValueKind::PatientNameComponent, "ANN");
        n.add(ValueKind::PatientId, "PID-1234");
        let needles = n.compile();
        let hit = |text: &str| needles.iter().any(|x| x.in_text(&text.to_lowercase()));
        assert!(hit("Seen by ANN today"));
        assert!(hit("SMITH^ANN"));
        assert!(!hit("ANNOTATION"));
        assert!(hit("xPID-1234x"));
    }

    #[test]
    fn raw_search_spans_chunks_and_ignores_case() {
        let dir = tempfile::tempdir().expect("tempdir");
        let path = dir.path().join("f");
        let mut bytes = vec![0u8; CHUNK - 3];
        bytes.extend_from_slice(b"xDoE^JoHn^qx");
        std::fs::write(&path, &bytes).expect("write");
        let mut n = Needles::default();
        n.add(ValueKind::PatientName, "DOE^JOHN^Q");
        let found = search_raw(&path, &n.compile(), &HashSet::new(), None).expect("search");
        assert_eq!(found.len(), 1);
        assert_eq!(found[0].offset, Some((CHUNK - 2) as u64));
        let in_pixels = search_raw(
            &path,
            &n.compile(),
            &HashSet::new(),
            Some(0..bytes.len() as u64),
        );
        assert_eq!(
            in_pixels.expect("search").len(),
            1,
            "long needles are searched in pixels"
        );
    }
}
