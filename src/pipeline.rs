//! The per-file path, written once: an opened input -> read (bounded parse, repair)
//! -> quarantine judgement -> de-identify -> file meta -> an object ready for any
//! sink. `run`, `--explain`, the fuzz target, the benches and the property tests all
//! call [`process`]; none of them strings the steps together itself.
//!
//! The pipeline opens nothing and writes nothing: it reads from the input handle it
//! is given, and Pixel Data stays a range of that same handle until a sink copies it.

use crate::deid::{Counts, CrosswalkEntry, DeidError, Engine, ExplainLine};
use crate::io::encode::{Part10, PixelCopy, build_meta};
use crate::io::error::ReadError;
use crate::io::read::{Classified, Source, read_input};
use crate::io::source::{Input, Stamp};
use crate::profile::compile::Severity;
use crate::profile::{Action, CompiledProfile};
use dicom_core::{DataElement, PrimitiveValue, Tag, VR};
use dicom_object::{FileMetaTable, InMemDicomObject};

const PIXEL_DATA: u32 = 0x7FE0_0010;

/// What the pipeline needs, compiled once before any file: the profile and an
/// engine keyed for this run.
pub struct Plan<'a> {
    pub profile: &'a CompiledProfile,
    pub engine: Engine<'a>,
    /// Collect a line per element for `--explain`.
    pub explain: bool,
}

impl<'a> Plan<'a> {
    pub fn new(profile: &'a CompiledProfile, engine: Engine<'a>) -> Self {
        Plan {
            profile,
            engine,
            explain: false,
        }
    }
}

/// Why one input could not be de-identified.
#[derive(Debug, thiserror::Error)]
pub enum PipelineError {
    #[error(transparent)]
    Read(#[from] ReadError),
    #[error("cannot de-identify: {0}")]
    Deid(#[from] DeidError),
    /// `rule` names the profile's `quarantine:` key that refused the file.
    #[error("quarantined: {reason}")]
    Quarantined { rule: &'static str, reason: String },
}

/// What became of one input.
pub enum Processed {
    Deidentified(Box<Deidentified>),
    /// A DICOMDIR holds patient names and file offsets: never copied.
    Dicomdir,
    NotDicom,
}

/// A de-identified object, ready for a sink, with what the report needs to know.
pub struct Deidentified {
    pub object: Part10,
    pub counts: Counts,
    /// Repairs and warnings, one sentence each, never a value.
    pub notes: Vec<String>,
    /// Original -> pseudonym pairs (for the crosswalk writer only).
    pub crosswalk: Vec<CrosswalkEntry>,
    pub creators_dropped: Vec<String>,
    /// One line per element, when the plan explains.
    pub explain: Vec<ExplainLine>,
    /// The input's size in bytes.
    pub bytes_in: u64,
    /// The input had Pixel Data (kept in `object` or removed by the profile).
    pub had_pixel_data: bool,
    /// Why a run would quarantine this input (set only when explaining).
    pub quarantined: Option<String>,
}

/// Reads and de-identifies one opened input whose stamp at open is `stamp`.
pub fn process(
    input: Box<dyn Input>,
    stamp: Stamp,
    plan: &Plan<'_>,
) -> Result<Processed, PipelineError> {
    match read_input(input, stamp)? {
        Classified::Dicom(src) => Ok(Processed::Deidentified(Box::new(deidentify(src, plan)?))),
        Classified::Dicomdir => Ok(Processed::Dicomdir),
        Classified::NotDicom => Ok(Processed::NotDicom),
    }
}

/// De-identifies a source that was read already.
pub fn deidentify(src: Box<Source>, plan: &Plan<'_>) -> Result<Deidentified, PipelineError> {
    let Source {
        meta: input_meta,
        ts,
        mut header,
        pixel,
        trailing,
        dropped_trailing_bytes,
        size,
        contents,
        input,
        stamp,
        implicit_vr_repaired,
        un_sequences_repaired,
        un_retyped,
        meta_read_leniently,
    } = *src;
    let mut notes = Vec::new();
    // Before anything judges or changes the dataset: a SOP identity it lacks or holds
    // empty comes from the file meta group, so the quarantine and the IOD rules see
    // the class the output will carry, and the instance UID meets the profile's rule
    // (remapped like any other file's) instead of being remapped apart in the meta.
    if adopt_sop_identity(&mut header, input_meta.as_ref()) {
        notes.push(
            "SOP Class or Instance UID missing or empty in the dataset: taken from the \
             file meta group"
                .into(),
        );
    }
    let mut quarantined = None;
    // Judged on the class the output will carry: the meta's when the dataset has none.
    let meta_class = input_meta.as_ref().map(|m| m.media_storage_sop_class_uid());
    for finding in crate::quarantine::assess(&header, meta_class, &plan.profile.quarantine) {
        match finding.severity {
            // Explaining goes on, to show what would happen to every element.
            Severity::Fail if plan.explain => quarantined = Some(finding.reason),
            Severity::Fail => {
                return Err(PipelineError::Quarantined {
                    rule: finding.rule,
                    reason: finding.reason,
                });
            }
            _ => notes.push(format!("warning: {}", finding.reason)),
        }
    }
    let (result, explain) = if plan.explain {
        plan.engine.explain(&mut header)?
    } else {
        (plan.engine.apply(&mut header)?, Vec::new())
    };
    let mut counts = result.counts;
    let trailing = match trailing {
        Some(mut t) => {
            counts.add(&plan.engine.apply_trailing(&mut t)?.counts);
            let any = t.tags().next().is_some();
            any.then_some(t)
        }
        None => None,
    };
    notes.extend(repair_notes(
        implicit_vr_repaired.is_some(),
        meta_read_leniently,
        un_retyped,
        un_sequences_repaired,
        dropped_trailing_bytes,
    ));
    let had_pixel_data = pixel.is_some();
    let pixel = match pixel {
        Some(range) if *plan.profile.decide(PIXEL_DATA, None).action() == Action::Keep => {
            counts.kept += 1;
            // A dataset read as implicit VR under an explicit VR syntax is written in
            // the declared syntax: Pixel Data gets an explicit VR header instead of
            // its own 8-byte one.
            Some(match implicit_vr_repaired {
                Some(Some(h)) => PixelCopy {
                    range: range.start + 8..range.end,
                    contents,
                    header: Some(h),
                },
                _ => PixelCopy {
                    range,
                    contents,
                    header: None,
                },
            })
        }
        Some(_) => {
            // Pixel data is never rewritten: any other action drops it.
            counts.removed += 1;
            None
        }
        None => None,
    };
    let pseudo = plan.engine.pseudonymizer();
    let meta = build_meta(&header, input_meta.as_ref(), ts.uid(), |u| pseudo.uid(u))?;
    // A dataset missing its SOP identity (a Type 1 violation) gets the one the meta
    // group carries, so the two always agree.
    fill_sop_identity(&mut header, &meta);
    Ok(Deidentified {
        object: Part10 {
            meta,
            dataset: header,
            ts,
            pixel,
            trailing,
            input,
            stamp,
        },
        counts,
        notes,
        crosswalk: result.crosswalk,
        creators_dropped: result.creators_dropped,
        explain,
        bytes_in: size,
        had_pixel_data,
        quarantined,
    })
}

fn repair_notes(
    implicit_vr_repaired: bool,
    meta_read_leniently: bool,
    un_retyped: usize,
    un_sequences_repaired: usize,
    dropped_trailing_bytes: u64,
) -> Vec<String> {
    let mut notes = Vec::new();
    if implicit_vr_repaired {
        notes.push(
            "dataset declared explicit VR but was encoded in implicit VR: read as implicit, \
             written in the declared transfer syntax"
                .into(),
        );
    }
    if meta_read_leniently {
        notes.push(
            "file meta group without its group length or transfer syntax: read element by \
             element (transfer syntax sniffed from the dataset when missing) and rebuilt"
                .into(),
        );
    }
    if un_retyped > 0 {
        notes.push(format!(
            "{un_retyped} standard attribute(s) stored as UN given their dictionary VR"
        ));
    }
    if un_sequences_repaired > 0 {
        notes.push(format!(
            "{un_sequences_repaired} sequence(s) stored as UN with undefined length (CP-246) \
             read as implicit VR sequences and written as SQ"
        ));
    }
    if dropped_trailing_bytes > 0 {
        notes.push(format!(
            "dropped {dropped_trailing_bytes} unparseable bytes after Pixel Data"
        ));
    }
    notes
}

const SOP_IDENTITY: [Tag; 2] = [Tag(0x0008, 0x0016), Tag(0x0008, 0x0018)];

/// The (0008,0016) and (0008,0018) values of a file meta group, in that order.
fn meta_identity(meta: &FileMetaTable) -> [&str; 2] {
    [
        meta.media_storage_sop_class_uid(),
        meta.media_storage_sop_instance_uid(),
    ]
}

/// Absent, or present with nothing but padding: the same thing to every rule here
/// (a zero-length Type 1 value is as missing as no element).
fn is_blank(dataset: &InMemDicomObject, tag: Tag) -> bool {
    match dataset.get(tag) {
        None => true,
        Some(e) => e
            .to_str()
            .is_ok_and(|v| v.trim_matches(['\0', ' ']).is_empty()),
    }
}

/// Puts the input meta group's SOP Class and Instance UIDs into a dataset that lacks
/// them or holds them empty; true when it did.
fn adopt_sop_identity(dataset: &mut InMemDicomObject, meta: Option<&FileMetaTable>) -> bool {
    let Some(meta) = meta else { return false };
    let mut adopted = false;
    for (tag, value) in SOP_IDENTITY.into_iter().zip(meta_identity(meta)) {
        let value = value.trim_matches(['\0', ' ']);
        if !value.is_empty() && is_blank(dataset, tag) {
            dataset.put(DataElement::new(tag, VR::UI, PrimitiveValue::from(value)));
            adopted = true;
        }
    }
    adopted
}

/// After de-identification: a SOP identity the profile removed or emptied (or one
/// no meta group supplied) is the output meta's, so the two always agree.
fn fill_sop_identity(dataset: &mut InMemDicomObject, meta: &FileMetaTable) {
    for (tag, value) in SOP_IDENTITY.into_iter().zip(meta_identity(meta)) {
        if is_blank(dataset, tag) {
            dataset.put(DataElement::new(tag, VR::UI, PrimitiveValue::from(value)));
        }
    }
}
