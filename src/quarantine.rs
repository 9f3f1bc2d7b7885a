//! Files de-identification cannot make safe: text burned into pixels, documents
//! carried whole, SOP classes a profile does not allow. Judged on the original
//! header, before anything changes; each rule fails the file (default) or warns.

use crate::profile::compile::{QuarantinePolicy, Severity};
use dicom_core::Tag;
use dicom_dictionary_std::uids;
use dicom_object::InMemDicomObject;

const SOP_CLASS_UID: Tag = Tag(0x0008, 0x0016);
const BURNED_IN_ANNOTATION: Tag = Tag(0x0028, 0x0301);

/// SOP classes whose pixels often carry burned-in text (screen captures,
/// ultrasound, photographs, video): unsafe unless the file says BurnedInAnnotation NO.
/// An explicit list, not prefixes: the retired ultrasound classes (`...1.6`,
/// `...1.3`) are prefixes of nothing a prefix list would name, and a prefix also
/// catches non-image classes (Stereometric Relationship, OCT B-scan Volume
/// Analysis) that carry no pixels. Classes from PS3.4 Annex B (2026b).
// Retired classes are the point: archives still hold them.
#[allow(deprecated)]
pub const BURNED_IN_RISK_CLASSES: &[&str] = &[
    // Secondary Capture, single and multi-frame.
    uids::SECONDARY_CAPTURE_IMAGE_STORAGE,
    uids::MULTI_FRAME_SINGLE_BIT_SECONDARY_CAPTURE_IMAGE_STORAGE,
    uids::MULTI_FRAME_GRAYSCALE_BYTE_SECONDARY_CAPTURE_IMAGE_STORAGE,
    uids::MULTI_FRAME_GRAYSCALE_WORD_SECONDARY_CAPTURE_IMAGE_STORAGE,
    uids::MULTI_FRAME_TRUE_COLOR_SECONDARY_CAPTURE_IMAGE_STORAGE,
    // Ultrasound, current and retired, single and multi-frame, and the other
    // ultrasound-acquired images.
    uids::ULTRASOUND_IMAGE_STORAGE_RETIRED,
    uids::ULTRASOUND_IMAGE_STORAGE,
    uids::ULTRASOUND_MULTI_FRAME_IMAGE_STORAGE_RETIRED,
    uids::ULTRASOUND_MULTI_FRAME_IMAGE_STORAGE,
    uids::ENHANCED_US_VOLUME_STORAGE,
    uids::PHOTOACOUSTIC_IMAGE_STORAGE,
    // Visible light: endoscopic, microscopic, slide, photographic, video.
    uids::VL_IMAGE_STORAGE_TRIAL,
    uids::VL_MULTI_FRAME_IMAGE_STORAGE_TRIAL,
    uids::VL_ENDOSCOPIC_IMAGE_STORAGE,
    uids::VIDEO_ENDOSCOPIC_IMAGE_STORAGE,
    uids::VL_MICROSCOPIC_IMAGE_STORAGE,
    uids::VIDEO_MICROSCOPIC_IMAGE_STORAGE,
    uids::VL_SLIDE_COORDINATES_MICROSCOPIC_IMAGE_STORAGE,
    uids::VL_PHOTOGRAPHIC_IMAGE_STORAGE,
    uids::VIDEO_PHOTOGRAPHIC_IMAGE_STORAGE,
    uids::VL_WHOLE_SLIDE_MICROSCOPY_IMAGE_STORAGE,
    uids::DERMOSCOPIC_PHOTOGRAPHY_IMAGE_STORAGE,
    uids::CONFOCAL_MICROSCOPY_IMAGE_STORAGE,
    uids::CONFOCAL_MICROSCOPY_TILED_PYRAMIDAL_IMAGE_STORAGE,
    // Ophthalmic photography and the ophthalmic images devices annotate in place.
    uids::OPHTHALMIC_PHOTOGRAPHY8_BIT_IMAGE_STORAGE,
    uids::OPHTHALMIC_PHOTOGRAPHY16_BIT_IMAGE_STORAGE,
    uids::OPHTHALMIC_TOMOGRAPHY_IMAGE_STORAGE,
    uids::WIDE_FIELD_OPHTHALMIC_PHOTOGRAPHY_STEREOGRAPHIC_PROJECTION_IMAGE_STORAGE,
    uids::WIDE_FIELD_OPHTHALMIC_PHOTOGRAPHY3_D_COORDINATES_IMAGE_STORAGE,
    uids::OPHTHALMIC_OPTICAL_COHERENCE_TOMOGRAPHY_EN_FACE_IMAGE_STORAGE,
];

/// Encapsulated documents (PDF, CDA, STL, OBJ, MTL): their content is not
/// de-identified. Every class under this root is one, future ones included.
const DOCUMENT_PREFIX: &str = "1.2.840.10008.5.1.4.1.1.104.";

/// One rule that matched.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Finding {
    pub rule: &'static str,
    pub severity: Severity,
    pub reason: String,
}

fn text(obj: &InMemDicomObject, tag: Tag) -> Option<String> {
    obj.get(tag)
        .and_then(|e| e.to_str().ok())
        .map(|s| trim(&s).to_string())
}

fn trim(s: &str) -> &str {
    s.trim_end_matches(['\0', ' ']).trim()
}

/// The SOP class an output of `obj` will carry: the dataset's, or the file meta
/// group's (0002,0002) when the dataset lacks it or holds it empty, as
/// [`crate::io::encode::build_meta`] chooses. Judging the dataset alone let a file
/// whose class is only in its meta pass every class rule.
fn effective_sop_class(obj: &InMemDicomObject, meta_class: Option<&str>) -> String {
    text(obj, SOP_CLASS_UID)
        .filter(|s| !s.is_empty())
        .or_else(|| meta_class.map(|m| trim(m).to_string()))
        .unwrap_or_default()
}

/// The class as a reason may show it: a value read from the file goes into no
/// message unless it is syntactically a UID.
fn shown(sop: &str) -> String {
    if crate::io::error::is_uid(sop) {
        sop.to_string()
    } else if sop.is_empty() {
        "(none)".into()
    } else {
        format!("(not a valid UID, {} bytes)", sop.len())
    }
}

/// Judges one file. `meta_class` is the Media Storage SOP Class UID (0002,0002) of
/// its file meta group, if it has one.
pub fn assess(
    obj: &InMemDicomObject,
    meta_class: Option<&str>,
    policy: &QuarantinePolicy,
) -> Vec<Finding> {
    let mut out = Vec::new();
    let sop = effective_sop_class(obj, meta_class);
    let burned = text(obj, BURNED_IN_ANNOTATION).map(|s| s.to_ascii_uppercase());
    let mut push = |rule: &'static str, severity: Severity, reason: String| {
        if severity != Severity::Off {
            out.push(Finding {
                rule,
                severity,
                reason,
            });
        }
    };
    if burned.as_deref() == Some("YES") {
        push(
            "burned-in-annotation",
            policy.burned_in_annotation,
            "Burned In Annotation (0028,0301) is YES: pixel data carries identifying text".into(),
        );
    } else if burned.as_deref() != Some("NO") && BURNED_IN_RISK_CLASSES.contains(&sop.as_str()) {
        push(
            "burned-in-unknown",
            policy.burned_in_unknown,
            format!(
                "SOP class {} often carries burned-in text and Burned In Annotation (0028,0301) is not NO",
                shown(&sop)
            ),
        );
    }
    if sop.starts_with(DOCUMENT_PREFIX) {
        push(
            "encapsulated-documents",
            policy.encapsulated_documents,
            format!(
                "SOP class {} is an encapsulated document, whose content is not de-identified",
                shown(&sop)
            ),
        );
    }
    if let Some(allow) = &policy.allowed_sop_classes
        && !allow.iter().any(|a| a == &sop)
    {
        push(
            "sop-classes",
            Severity::Fail,
            format!(
                "SOP class {} is not in the profile's allowed SOP classes",
                shown(&sop)
            ),
        );
    }
    out
}

#[cfg(test)]
mod tests {
    use super::*;
    use dicom_core::{DataElement, PrimitiveValue, VR};

    fn obj(sop: &str, burned: Option<&str>) -> InMemDicomObject {
        let mut o = InMemDicomObject::from_element_iter([DataElement::new(
            SOP_CLASS_UID,
            VR::UI,
            PrimitiveValue::from(sop),
        )]);
        if let Some(b) = burned {
            o.put(DataElement::new(
                BURNED_IN_ANNOTATION,
                VR::CS,
                PrimitiveValue::from(b),
            ));
        }
        o
    }

    #[test]
    fn fail_closed_by_default() {
        let p = QuarantinePolicy::default();
        let ct = "1.2.840.10008.5.1.4.1.1.2";
        let sc = "1.2.840.10008.5.1.4.1.1.7";
        assert!(assess(&obj(ct, None), None, &p).is_empty());
        assert_eq!(
            assess(&obj(ct, Some("YES")), None, &p)[0].rule,
            "burned-in-annotation"
        );
        assert_eq!(
            assess(&obj(sc, None), None, &p)[0].rule,
            "burned-in-unknown"
        );
        assert!(assess(&obj(sc, Some("NO")), None, &p).is_empty());
        assert_eq!(
            assess(&obj("1.2.840.10008.5.1.4.1.1.104.1", Some("NO")), None, &p)[0].rule,
            "encapsulated-documents"
        );
        let warn = QuarantinePolicy {
            burned_in_unknown: Severity::Warn,
            ..QuarantinePolicy::default()
        };
        assert_eq!(
            assess(&obj(sc, None), None, &warn)[0].severity,
            Severity::Warn
        );
        let allow = QuarantinePolicy {
            allowed_sop_classes: Some(vec![ct.into()]),
            ..QuarantinePolicy::default()
        };
        assert!(assess(&obj(ct, None), None, &allow).is_empty());
        assert_eq!(
            assess(&obj("1.2.840.10008.5.1.4.1.1.4", None), None, &allow)[0].rule,
            "sop-classes"
        );
    }

    #[test]
    fn every_risky_class_is_quarantined_unless_burned_in_is_no() {
        let p = QuarantinePolicy::default();
        for class in BURNED_IN_RISK_CLASSES {
            let found = assess(&obj(class, None), None, &p);
            assert_eq!(found.len(), 1, "{class}");
            assert_eq!(found[0].rule, "burned-in-unknown", "{class}");
            assert!(found[0].reason.contains(class), "{class}");
            assert!(
                assess(&obj(class, Some("NO")), None, &p).is_empty(),
                "{class}"
            );
        }
        // The retired ultrasound classes are in the set: a prefix list missed them.
        for retired in ["1.2.840.10008.5.1.4.1.1.6", "1.2.840.10008.5.1.4.1.1.3"] {
            assert!(BURNED_IN_RISK_CLASSES.contains(&retired));
        }
        // Neighbours that are not in the set: CT, and the pixel-free
        // Stereometric Relationship under the VL root.
        for other in [
            "1.2.840.10008.5.1.4.1.1.2",
            "1.2.840.10008.5.1.4.1.1.77.1.5.3",
        ] {
            assert!(assess(&obj(other, None), None, &p).is_empty(), "{other}");
        }
    }

    #[test]
    fn the_class_comes_from_the_meta_when_the_dataset_lacks_it() {
        let p = QuarantinePolicy::default();
        let sc = "1.2.840.10008.5.1.4.1.1.7";
        let pdf = "1.2.840.10008.5.1.4.1.1.104.1";
        let none = InMemDicomObject::new_empty();
        assert_eq!(assess(&none, Some(sc), &p)[0].rule, "burned-in-unknown");
        assert_eq!(
            assess(&none, Some(pdf), &p)[0].rule,
            "encapsulated-documents"
        );
        // An empty dataset value counts as missing.
        assert_eq!(
            assess(&obj("", None), Some(sc), &p)[0].rule,
            "burned-in-unknown"
        );
        // The dataset's class wins when it has one: that is what is written.
        let ct = "1.2.840.10008.5.1.4.1.1.2";
        assert!(assess(&obj(ct, None), Some(sc), &p).is_empty());
    }

    #[test]
    fn a_class_that_is_not_a_uid_is_not_quoted() {
        let allow = QuarantinePolicy {
            allowed_sop_classes: Some(vec!["1.2.840.10008.5.1.4.1.1.2".into()]),
            ..QuarantinePolicy::default()
        };
        let found = assess(&obj("PLANTED^NAME", None), None, &allow);
        assert_eq!(found[0].rule, "sop-classes");
        assert!(!found[0].reason.contains("PLANTED"), "{}", found[0].reason);
    }
}
