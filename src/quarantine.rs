//! Files de-identification cannot make safe: text burned into pixels, documents
//! carried whole, SOP classes a profile does not allow. Judged on the original
//! header, before anything changes; each rule fails the file (default) or warns.

use crate::profile::compile::{QuarantinePolicy, Severity};
use dicom_core::Tag;
use dicom_object::InMemDicomObject;

const SOP_CLASS_UID: Tag = Tag(0x0008, 0x0016);
const BURNED_IN_ANNOTATION: Tag = Tag(0x0028, 0x0301);

/// SOP classes whose pixels often carry burned-in text (screen captures,
/// photographs, ultrasound): unsafe unless the file says BurnedInAnnotation NO.
const RISKY_PREFIXES: [&str; 5] = [
    "1.2.840.10008.5.1.4.1.1.7",      // Secondary Capture (all variants)
    "1.2.840.10008.5.1.4.1.1.6.",     // Ultrasound
    "1.2.840.10008.5.1.4.1.1.3.1",    // Ultrasound Multi-frame
    "1.2.840.10008.5.1.4.1.1.77.1.",  // VL endoscopic, microscopic, photographic...
    "1.2.840.10008.5.1.4.1.1.77.1.5", // Ophthalmic photography
];

/// Encapsulated documents (PDF, CDA, STL, OBJ, MTL): their content is not
/// de-identified.
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
        .map(|s| s.trim_end_matches(['\0', ' ']).trim().to_string())
}

pub fn assess(obj: &InMemDicomObject, policy: &QuarantinePolicy) -> Vec<Finding> {
    let mut out = Vec::new();
    let sop = text(obj, SOP_CLASS_UID).unwrap_or_default();
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
    } else if burned.as_deref() != Some("NO") && RISKY_PREFIXES.iter().any(|p| sop.starts_with(p)) {
        push(
            "burned-in-unknown",
            policy.burned_in_unknown,
            format!(
                "SOP class {sop} often carries burned-in text and Burned In Annotation (0028,0301) is not NO"
            ),
        );
    }
    if sop.starts_with(DOCUMENT_PREFIX) {
        push(
            "encapsulated-documents",
            policy.encapsulated_documents,
            format!(
                "SOP class {sop} is an encapsulated document, whose content is not de-identified"
            ),
        );
    }
    if let Some(allow) = &policy.allowed_sop_classes
        && !allow.iter().any(|a| a == &sop)
    {
        push(
            "sop-classes",
            Severity::Fail,
            format!("SOP class {sop} is not in the profile's allowed SOP classes"),
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
        assert!(assess(&obj(ct, None), &p).is_empty());
        assert_eq!(
            assess(&obj(ct, Some("YES")), &p)[0].rule,
            "burned-in-annotation"
        );
        assert_eq!(assess(&obj(sc, None), &p)[0].rule, "burned-in-unknown");
        assert!(assess(&obj(sc, Some("NO")), &p).is_empty());
        assert_eq!(
            assess(&obj("1.2.840.10008.5.1.4.1.1.104.1", Some("NO")), &p)[0].rule,
            "encapsulated-documents"
        );
        let warn = QuarantinePolicy {
            burned_in_unknown: Severity::Warn,
            ..QuarantinePolicy::default()
        };
        assert_eq!(assess(&obj(sc, None), &warn)[0].severity, Severity::Warn);
        let allow = QuarantinePolicy {
            allowed_sop_classes: Some(vec![ct.into()]),
            ..QuarantinePolicy::default()
        };
        assert!(assess(&obj(ct, None), &allow).is_empty());
        assert_eq!(
            assess(&obj("1.2.840.10008.5.1.4.1.1.4", None), &allow)[0].rule,
            "sop-classes"
        );
    }
}
