//! Residual PHI: the identifying values of an original, searched in every decoded
//! string of its de-identified file (any depth, private and UN included) and in
//! the file's raw bytes. Findings name where and what kind of value matched,
//! never the value.

use super::dataset::{Visit, tag_u32, trim_value};
use super::expect::Expected;
use super::finding::{Finding, Kind, ValueKind};
use crate::profile::Action;
use aho_corasick::AhoCorasick;
use dicom_core::Tag;
use std::collections::{BTreeMap, BTreeSet, HashMap, HashSet};
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
    /// keeps, and the Basic Profile keeps too, are left out (shared on purpose).
    pub fn collect(visits: &[Visit<'_>], expected: &Expected) -> Needles {
        let mut needles = Needles::default();
        for v in visits {
            let tag = tag_u32(v.tag);
            let Some((_, kind, form)) = IDENTIFYING.iter().find(|(t, _, _)| *t == tag) else {
                continue;
            };
            if matches!(*expected.action(tag, None, v.vr), Action::Keep) {
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
                // UIDs are judged by the UID checks, not searched as text; the key
                // fingerprint row says which key made the file, it is no original.
                "study-instance-uid" | "key-fingerprint" => continue,
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

    /// The needles with their matchers, built once per set of originals (and once
    /// for a crosswalk) and then run over any number of files.
    pub fn compile(&self) -> Compiled {
        let needles: Vec<Needle> = self
            .by_text
            .iter()
            .map(|(text, kind)| Needle {
                kind: *kind,
                bytes: encodings(text),
                lower: text.clone(),
            })
            .collect();
        let text = AhoCorasick::new(needles.iter().map(|n| n.lower.as_bytes())).ok();
        let raw_patterns: Vec<(usize, &[u8])> = needles
            .iter()
            .enumerate()
            .flat_map(|(i, n)| n.bytes.iter().map(move |b| (i, b.as_slice())))
            .filter(|(_, b)| !b.is_empty())
            .collect();
        let raw = AhoCorasick::new(raw_patterns.iter().map(|(_, b)| *b)).ok();
        let raw_needle = raw_patterns.iter().map(|(i, _)| *i).collect();
        let longest = raw_patterns.iter().map(|(_, b)| b.len()).max().unwrap_or(0);
        let by_text = needles
            .iter()
            .enumerate()
            .map(|(i, n)| (n.lower.clone(), i))
            .collect();
        Compiled {
            by_text,
            needles,
            text,
            raw,
            raw_needle,
            longest,
        }
    }
}

/// Needles ready to search: one automaton over the lower-cased texts (decoded
/// strings) and one over their byte forms (raw bytes), so the cost of a search
/// does not grow with the number of needles.
#[derive(Debug)]
pub struct Compiled {
    needles: Vec<Needle>,
    /// Needle of each lower-cased text.
    by_text: HashMap<String, usize>,
    text: Option<AhoCorasick>,
    raw: Option<AhoCorasick>,
    /// Needle of each raw pattern.
    raw_needle: Vec<usize>,
    longest: usize,
}

impl Compiled {
    pub fn is_empty(&self) -> bool {
        self.needles.is_empty()
    }

    /// The needles a file's kept attributes hold too (see [`kept_texts`]): a word
    /// that stands in an attribute the profile and the Basic Profile keep (Image
    /// Type `ORIGINAL`, a Manufacturer equal to the institution) is shared in the
    /// file anyway, so finding it elsewhere reveals nothing.
    pub fn exempt(&self, kept: &HashSet<String>) -> HashSet<usize> {
        kept.iter()
            .filter_map(|t| self.by_text.get(t).copied())
            .collect()
    }

    /// Kinds of the needles found in `text` (any case), whole-word rule applied:
    /// for text that is not an attribute value (OCR output).
    pub fn kinds_in(&self, text: &str) -> Vec<ValueKind> {
        let lower = text.to_lowercase();
        let mut kinds: Vec<ValueKind> = self
            .found_in(&lower)
            .map(|i| self.needles[i].kind)
            .collect();
        kinds.sort();
        kinds.dedup();
        kinds
    }

    /// Needles found in `lower_text` (already lower-cased), whole-word rule applied.
    fn found_in<'a>(&'a self, lower_text: &'a str) -> impl Iterator<Item = usize> + 'a {
        self.text
            .iter()
            .flat_map(move |ac| ac.find_overlapping_iter(lower_text))
            .filter(move |m| {
                let n = &self.needles[m.pattern().as_usize()];
                !n.whole_word() || word_bounds(lower_text, m.start(), m.end())
            })
            .map(|m| m.pattern().as_usize())
    }
}

fn word_bounds(text: &str, start: usize, end: usize) -> bool {
    let before = text.get(..start).and_then(|t| t.chars().next_back());
    let after = text.get(end..).and_then(|t| t.chars().next());
    !before.is_some_and(char::is_alphanumeric) && !after.is_some_and(char::is_alphanumeric)
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
}

/// Searches every decoded string with each set of needles; returns, per set, the
/// needles found, so the raw search reports only what the decoded search could
/// not explain.
pub fn search_strings(
    visits: &[Visit<'_>],
    sets: &[(&Compiled, &HashSet<usize>)],
    findings: &mut Vec<Finding>,
) -> Vec<HashSet<usize>> {
    let mut found = vec![HashSet::new(); sets.len()];
    for v in visits {
        if v.tag == Tag(0x7FE0, 0x0010) {
            continue;
        }
        let mut kinds = BTreeSet::new();
        for value in v.strings() {
            let value = value.to_lowercase();
            for ((set, exempt), hits) in sets.iter().zip(found.iter_mut()) {
                for i in set.found_in(&value).filter(|i| !exempt.contains(i)) {
                    kinds.insert(set.needles[i].kind);
                    hits.insert(i);
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

/// Every value, and every word of 3 characters or more, of the elements the
/// judge expects kept unchanged (the profile and the Basic Profile both keep them),
/// lower-cased.
pub fn kept_texts(visits: &[Visit<'_>], expected: &Expected) -> HashSet<String> {
    let mut out = HashSet::new();
    for v in visits {
        if v.is_sequence() || v.is_private_creator() || v.tag == Tag(0x7FE0, 0x0010) {
            continue;
        }
        if !matches!(
            *expected.action(tag_u32(v.tag), v.creator.as_deref(), v.vr),
            Action::Keep
        ) {
            continue;
        }
        for value in v.strings() {
            let value = trim_value(&value).to_lowercase();
            for word in value.split(|c: char| !c.is_alphanumeric()) {
                if word.chars().count() >= MIN_CHARS {
                    out.insert(word.to_string());
                }
            }
            out.insert(value);
        }
    }
    out
}

/// Searches the raw bytes of a file (ASCII case-insensitive), streaming, with each
/// set of needles, for the needles of that set not found in any decoded string
/// (`skip`). `pixel` is the byte range of Pixel Data, where only long needles are
/// searched.
pub fn search_raw(
    path: &Path,
    sets: &[(&Compiled, &HashSet<usize>)],
    pixel: Option<Range<u64>>,
) -> std::io::Result<Vec<Finding>> {
    let longest = sets.iter().map(|(c, _)| c.longest).max().unwrap_or(0);
    if longest == 0 {
        return Ok(Vec::new());
    }
    // (set, needle) -> offsets
    let mut hits: BTreeMap<(usize, usize), Vec<u64>> = BTreeMap::new();
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
        for (s, (set, skip)) in sets.iter().enumerate() {
            let Some(ac) = &set.raw else { continue };
            for m in ac.find_overlapping_iter(&buf[..]) {
                let i = set.raw_needle[m.pattern().as_usize()];
                if !(own..end).contains(&m.start()) || skip.contains(&i) {
                    continue;
                }
                let needle = &set.needles[i];
                if needle.whole_word() && !at_word_bounds(&buf, m.start(), m.len()) {
                    continue;
                }
                let offset = base + m.start() as u64;
                let in_pixels = pixel.as_ref().is_some_and(|r| r.contains(&offset));
                let list = hits.entry((s, i)).or_default();
                if !(in_pixels && m.len() < MIN_PIXEL_NEEDLE) && list.len() < MAX_RAW_HITS {
                    list.push(offset);
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
    for ((s, i), offsets) in hits {
        for offset in offsets {
            let mut f = Finding::new(
                Kind::ResidualPhi,
                "an identifying value of the original is in the file's bytes, outside every decoded text value",
            );
            f.offset = Some(offset);
            f.matched = Some(sets[s].0.needles[i].kind);
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
        let hit = |text: &str| needles.found_in(&text.to_lowercase()).next().is_some();
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
        let compiled = n.compile();
        let none = HashSet::new();
        let found = search_raw(&path, &[(&compiled, &none)], None).expect("search");
        assert_eq!(found.len(), 1);
        assert_eq!(found[0].offset, Some((CHUNK - 2) as u64));
        let in_pixels = search_raw(&path, &[(&compiled, &none)], Some(0..bytes.len() as u64));
        assert_eq!(
            in_pixels.expect("search").len(),
            1,
            "long needles are searched in pixels"
        );
    }
}
