//! Value-aware cleaning of free text (Clean Descriptors, Clean Structured Content):
//! the identifying values of the same file are cut out of kept text.

use dicom_core::Tag;
use dicom_object::InMemDicomObject;

/// What every cut-out value becomes.
pub const TOKEN: &str = "XXXX";

/// Values shorter than this are not searched for: "MR" or "DR" would shred text.
const MIN_TERM: usize = 3;

/// Attributes whose values identify the patient, a person or a place, at the top level
/// of the dataset.
const IDENTIFYING: [Tag; 19] = [
    Tag(0x0010, 0x0010), // Patient's Name
    Tag(0x0010, 0x0020), // Patient ID
    Tag(0x0010, 0x1000), // Other Patient IDs
    Tag(0x0010, 0x1001), // Other Patient Names
    Tag(0x0010, 0x1005), // Patient's Birth Name
    Tag(0x0010, 0x1060), // Patient's Mother's Birth Name
    Tag(0x0010, 0x1040), // Patient's Address
    Tag(0x0010, 0x2154), // Patient's Telephone Numbers
    Tag(0x0008, 0x0050), // Accession Number
    Tag(0x0008, 0x0080), // Institution Name
    Tag(0x0008, 0x0081), // Institution Address
    Tag(0x0008, 0x0090), // Referring Physician's Name
    Tag(0x0008, 0x1048), // Physician(s) of Record
    Tag(0x0008, 0x1050), // Performing Physician's Name
    Tag(0x0008, 0x1060), // Name of Physician(s) Reading Study
    Tag(0x0008, 0x1070), // Operators' Name
    Tag(0x0032, 0x1032), // Requesting Physician
    Tag(0x0008, 0x1010), // Station Name
    Tag(0x0040, 0x0006), // Scheduled Performing Physician's Name
];
const BIRTH_DATE: Tag = Tag(0x0010, 0x0030);

#[derive(Debug, Default)]
pub struct Scrubber {
    /// The identifying values as found (person names, IDs, places), then the birth
    /// date when it is a full date.
    values: Vec<String>,
    birth_date: Option<String>,
    /// Lower-cased (ASCII) terms, longest first so a full name goes before its parts.
    /// Spelled out on the first text to clean: most files have none, and spelling
    /// every name and date variant for every file showed at 3% of a run in `perf`.
    terms: std::cell::OnceCell<Vec<String>>,
}

fn push_term(terms: &mut Vec<String>, s: &str) {
    let t = s.trim().to_ascii_lowercase();
    if t.chars().count() >= MIN_TERM && !terms.contains(&t) {
        terms.push(t);
    }
}

impl Scrubber {
    /// Collects the identifying values of `root` (read before anything changes).
    pub fn from_dataset(root: &InMemDicomObject) -> Scrubber {
        let mut values = Vec::new();
        for tag in IDENTIFYING {
            if let Some(found) = root.get(tag).and_then(|e| e.value().to_multi_str().ok()) {
                values.extend(found.iter().cloned());
            }
        }
        let birth_date = root
            .get(BIRTH_DATE)
            .and_then(|e| e.to_str().ok())
            .map(|d| d.trim().to_string())
            .filter(|d| d.len() == 8 && d.bytes().all(|b| b.is_ascii_digit()));
        Scrubber {
            values,
            birth_date,
            terms: std::cell::OnceCell::new(),
        }
    }

    fn terms(&self) -> &[String] {
        self.terms.get_or_init(|| {
            let mut terms = Vec::new();
            for v in &self.values {
                push_term(&mut terms, v);
                // Person names: every component, and the name as written in text.
                for part in v.split(['^', '=', ' ', ',']) {
                    push_term(&mut terms, part);
                }
                let parts: Vec<&str> = v.split('^').filter(|p| !p.trim().is_empty()).collect();
                if parts.len() >= 2 {
                    push_term(&mut terms, &format!("{} {}", parts[1], parts[0]));
                    push_term(&mut terms, &format!("{} {}", parts[0], parts[1]));
                    push_term(&mut terms, &format!("{}, {}", parts[0], parts[1]));
                }
            }
            if let Some(d) = &self.birth_date {
                let (y, m, dd) = (&d[..4], &d[4..6], &d[6..8]);
                for spelled in [
                    d.to_string(),
                    format!("{y}-{m}-{dd}"),
                    format!("{dd}.{m}.{y}"),
                    format!("{m}/{dd}/{y}"),
                    format!("{dd}/{m}/{y}"),
                    format!("{y}/{m}/{dd}"),
                ] {
                    push_term(&mut terms, &spelled);
                }
            }
            terms.sort_by_key(|t| std::cmp::Reverse(t.len()));
            terms
        })
    }

    pub fn is_empty(&self) -> bool {
        self.terms().is_empty()
    }

    /// `text` with every identifying value replaced by [`TOKEN`] (ASCII letters match
    /// regardless of case), or `None` when nothing was found.
    pub fn scrub(&self, text: &str) -> Option<String> {
        let mut out = text.to_string();
        let mut changed = false;
        for term in self.terms() {
            // ASCII lower-casing keeps byte offsets, so positions found in the lowered
            // copy are valid in the original. One pass per term over the text as it
            // was: the token never gets searched again (a name like "XXXX" would
            // otherwise match its own replacement forever).
            let lowered = out.to_ascii_lowercase();
            let mut next = String::with_capacity(out.len());
            let mut last = 0;
            for (pos, _) in lowered.match_indices(term.as_str()) {
                next.push_str(&out[last..pos]);
                next.push_str(TOKEN);
                last = pos + term.len();
                changed = true;
            }
            next.push_str(&out[last..]);
            out = next;
        }
        changed.then_some(out)
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use dicom_core::{DataElement, PrimitiveValue, VR};

    fn root() -> InMemDicomObject {
        InMemDicomObject::from_element_iter([
            DataElement::new(
                Tag(0x0010, 0x0010),
                VR::PN,
                PrimitiveValue::from("DOE^JOHN^Q"),
            ),
            DataElement::new(
                Tag(0x0010, 0x0020),
                VR::LO,
                PrimitiveValue::from("PID-4711"),
            ),
            DataElement::new(BIRTH_DATE, VR::DA, PrimitiveValue::from("19610704")),
            DataElement::new(
                Tag(0x0008, 0x0090),
                VR::PN,
                PrimitiveValue::from("HOUSE^GREGORY"),
            ),
        ])
    }

    #[test]
    fn removes_names_ids_and_birth_dates_in_common_spellings() {
        let s = Scrubber::from_dataset(&root());
        let out = s
            .scrub("Seen by Dr. House for John Doe (pid-4711), born 04.07.1961 / 1961-07-04")
            .unwrap();
        for leaked in [
            "House",
            "John",
            "Doe",
            "pid-4711",
            "04.07.1961",
            "1961-07-04",
        ] {
            assert!(!out.contains(leaked), "{out}");
        }
        assert!(out.contains("Seen by Dr."));
        assert_eq!(s.scrub("CHEST PA AND LATERAL"), None);
    }

    #[test]
    fn a_name_equal_to_the_token_terminates() {
        let root = InMemDicomObject::from_element_iter([DataElement::new(
            Tag(0x0010, 0x0010),
            VR::PN,
            PrimitiveValue::from("XXX"),
        )]);
        let s = Scrubber::from_dataset(&root);
        assert_eq!(s.scrub("xxx and XXXX").as_deref(), Some("XXXX and XXXXX"));
    }

    #[test]
    fn short_components_are_not_searched() {
        let s = Scrubber::from_dataset(&root());
        assert_eq!(s.scrub("Q wave"), None);
    }
}
