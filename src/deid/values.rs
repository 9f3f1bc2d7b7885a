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

/// A fixed replacement value converted for a binary numeric VR; text VRs take it
/// as written.
pub fn replacement(vr: VR, value: &str) -> Result<PrimitiveValue, String> {
    let bad = || {
        format!(
            "replacement `{value}` is not a valid {} value",
            vr.to_string()
        )
    };
    let v = value.trim();
    Ok(match vr {
        VR::US => PrimitiveValue::from(v.parse::<u16>().map_err(|_| bad())?),
        VR::SS => PrimitiveValue::from(v.parse::<i16>().map_err(|_| bad())?),
        VR::UL => PrimitiveValue::from(v.parse::<u32>().map_err(|_| bad())?),
        VR::SL => PrimitiveValue::from(v.parse::<i32>().map_err(|_| bad())?),
        VR::UV => PrimitiveValue::from(v.parse::<u64>().map_err(|_| bad())?),
        VR::SV => PrimitiveValue::from(v.parse::<i64>().map_err(|_| bad())?),
        VR::FL => PrimitiveValue::from(v.parse::<f32>().map_err(|_| bad())?),
        VR::FD => PrimitiveValue::from(v.parse::<f64>().map_err(|_| bad())?),
        VR::OB | VR::OW | VR::OF | VR::OD | VR::OL | VR::OV | VR::UN | VR::AT | VR::SQ => {
            return Err(bad());
        }
        _ => {
            if let Some(max) = max_len(vr)
                && value.chars().count() > max
            {
                return Err(format!(
                    "replacement `{value}` is longer than {max}, the limit of VR {}",
                    vr.to_string()
                ));
            }
            PrimitiveValue::from(value)
        }
    })
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
