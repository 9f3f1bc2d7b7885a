//! Replacement values valid for their VR. Every dummy is ASCII, so it is valid in
//! every character set a file may declare.

use dicom_core::{PrimitiveValue, VR};

/// The dummy written for action D, or `None` where the VR has no meaningful dummy
/// (binary data, tags): those are emptied instead.
pub fn dummy(vr: VR) -> Option<PrimitiveValue> {
    let s = |v: &str| Some(PrimitiveValue::from(v));
    match vr {
        VR::PN | VR::LO | VR::SH | VR::ST | VR::LT | VR::UT | VR::UC | VR::CS | VR::AE | VR::UR => {
            s("ANONYMIZED")
        }
        VR::DA => s("19000101"),
        VR::TM => s("000000.00"),
        VR::DT => s("19000101000000.000000"),
        VR::AS => s("000Y"),
        VR::IS | VR::DS => s("0"),
        VR::US => Some(PrimitiveValue::from(0u16)),
        VR::SS => Some(PrimitiveValue::from(0i16)),
        VR::UL => Some(PrimitiveValue::from(0u32)),
        VR::SL => Some(PrimitiveValue::from(0i32)),
        VR::UV => Some(PrimitiveValue::from(0u64)),
        VR::SV => Some(PrimitiveValue::from(0i64)),
        VR::FL => Some(PrimitiveValue::from(0f32)),
        VR::FD => Some(PrimitiveValue::from(0f64)),
        _ => None,
    }
}

/// Maximum length in characters of one value of a string VR (PS3.5 Table 6.2-1).
pub fn max_len(vr: VR) -> Option<usize> {
    match vr {
        VR::AE | VR::CS | VR::SH => Some(16),
        VR::LO => Some(64),
        VR::PN => Some(64),
        VR::UI => Some(64),
        VR::ST => Some(1024),
        VR::LT => Some(10240),
        _ => None,
    }
}

/// True for VRs whose value is text that a pseudonym may stand in for.
pub fn is_text(vr: VR) -> bool {
    matches!(
        vr,
        VR::PN | VR::LO | VR::SH | VR::ST | VR::LT | VR::UT | VR::UC | VR::CS | VR::AE | VR::UR
    )
}

/// A fixed replacement value checked against `vr`: numbers parsed for the binary
/// numeric VRs, text taken as written. The same check the profile compiler applies.
pub fn replacement(vr: VR, value: &str) -> Result<PrimitiveValue, String> {
    crate::profile::replace::parse(vr, value)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn dummies_fit_their_vr() {
        for vr in [
            VR::PN,
            VR::LO,
            VR::SH,
            VR::CS,
            VR::AE,
            VR::DA,
            VR::TM,
            VR::DT,
            VR::AS,
        ] {
            let v = dummy(vr).unwrap().to_str().to_string();
            assert!(v.is_ascii());
            if let Some(max) = max_len(vr) {
                assert!(v.len() <= max, "{vr:?}");
            }
        }
        assert_eq!(dummy(VR::DA).unwrap().to_str(), "19000101");
        assert!(dummy(VR::OB).is_none());
    }

    #[test]
    fn replacements_are_checked_against_the_vr() {
        assert!(replacement(VR::US, "12").is_ok());
        assert!(replacement(VR::US, "x").is_err());
        assert!(replacement(VR::SH, "01234567890123456").is_err());
        assert!(replacement(VR::LO, "RESEARCH").is_ok());
    }
}
