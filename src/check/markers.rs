//! PS3.15 markers a de-identified file must carry, and burned-in annotation risk.

use super::finding::{Finding, Kind};
use super::uids::{SOP_CLASS_UID, first_string};
use dicom_core::Tag;
use dicom_object::InMemDicomObject;

const PATIENT_IDENTITY_REMOVED: Tag = Tag(0x0012, 0x0062);
const DEID_METHOD: Tag = Tag(0x0012, 0x0063);
const DEID_METHOD_CODES: Tag = Tag(0x0012, 0x0064);
const LONGITUDINAL_MODIFIED: Tag = Tag(0x0028, 0x0303);
const BURNED_IN_ANNOTATION: Tag = Tag(0x0028, 0x0301);

/// Enumerated values of Longitudinal Temporal Information Modified.
const LONGITUDINAL_VALUES: [&str; 3] = ["UNMODIFIED", "MODIFIED", "REMOVED"];

fn present(obj: &InMemDicomObject, tag: Tag) -> bool {
    obj.get(tag)
        .is_some_and(|e| super::dataset::has_content(e, e.header().vr))
}

pub fn check_markers(obj: &InMemDicomObject, findings: &mut Vec<Finding>) {
    match first_string(obj, PATIENT_IDENTITY_REMOVED) {
        None => findings.push(Finding::at(
            Kind::MissingMarker,
            "(0012,0062)",
            "Patient Identity Removed is absent or empty",
        )),
        Some(v) if !v.eq_ignore_ascii_case("YES") => findings.push(Finding::at(
            Kind::WrongMarker,
            "(0012,0062)",
            "Patient Identity Removed is not YES",
        )),
        Some(_) => {}
    }
    if !present(obj, DEID_METHOD) && !present(obj, DEID_METHOD_CODES) {
        findings.push(Finding::at(
            Kind::MissingMarker,
            "(0012,0063)",
            "neither De-identification Method (0012,0063) nor its Code Sequence (0012,0064) is present",
        ));
    }
    match first_string(obj, LONGITUDINAL_MODIFIED) {
        None => findings.push(Finding::at(
            Kind::MissingMarker,
            "(0028,0303)",
            "Longitudinal Temporal Information Modified is absent or empty",
        )),
        Some(v) if !LONGITUDINAL_VALUES.contains(&v.to_ascii_uppercase().as_str()) => findings
            .push(Finding::at(
                Kind::WrongMarker,
                "(0028,0303)",
                "Longitudinal Temporal Information Modified is not UNMODIFIED, MODIFIED or REMOVED",
            )),
        Some(_) => {}
    }
}

/// SOP classes whose pixels often carry text: secondary capture, ultrasound,
/// VL photographic.
pub fn risky_sop_class(uid: &str) -> bool {
    const SECONDARY_CAPTURE: &str = "1.2.840.10008.5.1.4.1.1.7";
    const ULTRASOUND: &str = "1.2.840.10008.5.1.4.1.1.6.";
    const EXACT: [&str; 2] = [
        "1.2.840.10008.5.1.4.1.1.3.1",
        "1.2.840.10008.5.1.4.1.1.77.1.4",
    ];
    uid == SECONDARY_CAPTURE
        || uid.starts_with(&format!("{SECONDARY_CAPTURE}."))
        || uid.starts_with(ULTRASOUND)
        || EXACT.contains(&uid)
}

pub fn check_burned_in(
    obj: &InMemDicomObject,
    meta_class: Option<&str>,
    findings: &mut Vec<Finding>,
) {
    let class = first_string(obj, SOP_CLASS_UID).or_else(|| meta_class.map(str::to_string));
    let detail = match first_string(obj, BURNED_IN_ANNOTATION) {
        Some(v) if v.eq_ignore_ascii_case("YES") => "Burned In Annotation is YES",
        None if class.as_deref().is_some_and(risky_sop_class) => {
            "Burned In Annotation is absent and the SOP class often carries text in its pixels"
        }
        _ => return,
    };
    findings.push(Finding::at(Kind::BurnedInAnnotation, "(0028,0301)", detail));
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn risky_classes() {
        assert!(risky_sop_class("1.2.840.10008.5.1.4.1.1.7"));
        assert!(risky_sop_class("1.2.840.10008.5.1.4.1.1.7.4"));
        assert!(risky_sop_class("1.2.840.10008.5.1.4.1.1.6.1"));
        assert!(risky_sop_class("1.2.840.10008.5.1.4.1.1.3.1"));
        assert!(risky_sop_class("1.2.840.10008.5.1.4.1.1.77.1.4"));
        assert!(!risky_sop_class("1.2.840.10008.5.1.4.1.1.77.1.1"));
        assert!(!risky_sop_class("1.2.840.10008.5.1.4.1.1.2"));
    }
}
