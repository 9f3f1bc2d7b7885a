//! The per-file path, written once: an opened input -> read (bounded parse, repair)
//! -> quarantine judgement -> de-identify -> file meta -> an object ready for any
//! sink. `run`, `--explain`, the fuzz target, the benches and the property tests all
//! call [`process`]; none of them strings the steps together itself.
//!
//! The pipeline opens nothing and writes nothing: it reads from the input handle it
//! is given, and Pixel Data stays a range of that same handle until a sink copies it.

use crate::deid::{Counts, CrosswalkEntry, DeidError, Engine, ExplainLine};
use crate::io::encap::{FrameTable, FramesEdit};
use crate::io::encode::{Part10, PixelCopy, PixelEdit, build_meta};
use crate::io::error::ReadError;
use crate::io::read::{Classified, Source, read_input};
use crate::io::source::{Input, Stamp};
use crate::pixels::Redaction;
use crate::pixels::encap::{Codec, Transcoder};
use crate::profile::compile::Severity;
use crate::profile::pixels::{Regions, Unmatched};
use crate::profile::{Action, CompiledProfile};
use dicom_core::value::{DataSetSequence, Value};
use dicom_core::{DataElement, Length, PrimitiveValue, Tag, VR};
use dicom_encoding::TransferSyntaxIndex;
use dicom_object::{FileMetaTable, InMemDicomObject};
use dicom_transfer_syntax_registry::TransferSyntaxRegistry;

const PIXEL_DATA: u32 = 0x7FE0_0010;

/// What the pipeline needs, compiled once before any file: the profile and an
/// engine keyed for this run.
pub struct Plan<'a> {
    pub profile: &'a CompiledProfile,
    pub engine: Engine<'a>,
    /// Collect a line per element for `--explain`.
    pub explain: bool,
    /// Finds text for `pixels: {unmatched: ocr}` (the run layer's Tesseract).
    pub text_finder: Option<&'a dyn crate::pixels::TextFinder>,
}

impl<'a> Plan<'a> {
    pub fn new(profile: &'a CompiledProfile, engine: Engine<'a>) -> Self {
        Plan {
            profile,
            engine,
            explain: false,
            text_finder: None,
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
    /// What pixel redaction does to this input (`pixels: ...`), when it runs.
    pub pixels: Option<String>,
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

/// Repeating groups 60xx (even, 6000 to 601E) that hold Overlay Data (60xx,3000).
fn overlay_groups_with_data(header: &InMemDicomObject) -> Vec<u16> {
    (0x6000..=0x601E)
        .step_by(2)
        .filter(|g| header.get(Tag(*g, 0x3000)).is_some())
        .collect()
}

/// An overlay whose bits the profile removed (Overlay Data is `X` in Table E.1-1)
/// leaves its rows, columns and origin behind: an Overlay Plane module without its
/// Type 1 data, which validators (dciodvfy) reject and viewers may trip on. The
/// plane is gone, so its description goes too: every element of that group.
fn remove_overlays_without_data(header: &mut InMemDicomObject, had_data: &[u16]) -> u64 {
    let mut removed = 0;
    for &g in had_data {
        if header.get(Tag(g, 0x3000)).is_some() {
            continue;
        }
        let tags: Vec<Tag> = header.tags().filter(|t| t.group() == g).collect();
        for t in tags {
            if header.remove_element(t) {
                removed += 1;
            }
        }
    }
    removed
}

/// De-identifies a source that was read already.
pub fn deidentify(src: Box<Source>, plan: &Plan<'_>) -> Result<Deidentified, PipelineError> {
    let Source {
        meta: input_meta,
        mut ts,
        mut header,
        pixel,
        trailing,
        dropped_trailing_bytes,
        size,
        contents,
        mut input,
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
    let keeps_pixels = *plan.profile.decide(PIXEL_DATA, None).action() == Action::Keep;
    let findings = crate::quarantine::assess(&header, meta_class, &plan.profile.quarantine);
    let burned_in_risk = findings
        .iter()
        .any(|f| f.rule.starts_with("burned-in") && f.severity == Severity::Fail);
    // Pixel redaction is planned on the original header, before anything changes.
    let mut pixel_job = match &pixel {
        Some(range) if keeps_pixels => plan_pixels(
            &header,
            ts,
            range,
            implicit_vr_repaired.is_some_and(|h| h.is_some()),
            burned_in_risk,
            plan.profile,
        ),
        _ => PixelJob::None,
    };
    if let (PixelJob::Ocr, Some(range)) = (&pixel_job, &pixel) {
        pixel_job = ocr_job(
            &header,
            ts,
            range,
            implicit_vr_repaired.is_some_and(|h| h.is_some()),
            contents.as_deref(),
            &mut *input,
            plan.text_finder,
        );
    }
    if let (PixelJob::Frames(..), Some(range)) = (&pixel_job, &pixel) {
        pixel_job = frames_job(
            pixel_job,
            &header,
            range,
            implicit_vr_repaired.is_some_and(|h| h.is_some()),
            contents.as_deref(),
            &mut *input,
        );
    }
    let mut fail = |rule: &'static str, reason: String| -> Result<(), PipelineError> {
        if plan.explain {
            // Explaining goes on, to show what would happen to every element.
            quarantined.get_or_insert(reason);
            Ok(())
        } else {
            Err(PipelineError::Quarantined { rule, reason })
        }
    };
    let mut pixel_note = None;
    let mut suppress_burned_in = false;
    let redaction = match pixel_job {
        PixelJob::None => None,
        PixelJob::Redact(r, what) => Some((Planned::Native(r), what)),
        PixelJob::Decode(d, what) => Some((Planned::Frames(d), what)),
        PixelJob::Frames(..) => {
            fail("pixels", "compressed frames were not located".into())?;
            None
        }
        PixelJob::Refuse(reason) => {
            fail("pixels", reason)?;
            None
        }
        PixelJob::Skip(note) => {
            notes.push(note);
            None
        }
        PixelJob::Ocr => None,
        PixelJob::NoText(note) => {
            // OCR read the frames and found nothing to blank: written as it is,
            // not marked clean, the report says so for a reviewer to sample.
            notes.push(note.clone());
            pixel_note = Some(note);
            suppress_burned_in = true;
            None
        }
        PixelJob::Unmatched(closest) => {
            for f in findings.iter().filter(|f| f.rule.starts_with("burned-in")) {
                if f.severity == Severity::Fail {
                    fail(f.rule, format!("{}; {closest}", f.reason))?;
                }
            }
            None
        }
    };
    for finding in findings {
        // A file a pixel rule redacts is no longer refused for its burned-in text.
        if (redaction.is_some() || suppress_burned_in) && finding.rule.starts_with("burned-in") {
            continue;
        }
        match finding.severity {
            Severity::Fail => fail(finding.rule, finding.reason)?,
            _ => notes.push(format!("warning: {}", finding.reason)),
        }
    }
    let overlays_with_data = overlay_groups_with_data(&header);
    let (result, explain) = if plan.explain {
        plan.engine.explain(&mut header)?
    } else {
        (plan.engine.apply(&mut header)?, Vec::new())
    };
    let mut counts = result.counts;
    counts.removed += remove_overlays_without_data(&mut header, &overlays_with_data);
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
    let mut edit = None;
    let mut frames_edit = None;
    if let Some((planned, what)) = redaction {
        mark_pixels_clean(&mut header);
        let r = match &planned {
            Planned::Native(r) => r,
            Planned::Frames(d) => d.0.redaction(),
        };
        // Counts and places, never what the pixels showed.
        let note = format!(
            "pixels: {what}; {} pixel(s) blanked in each of {} frame(s)",
            r.pixels_per_frame,
            r.frames_blanked()
        );
        notes.push(note.clone());
        pixel_note = Some(note);
        match planned {
            Planned::Native(r) => edit = Some(r),
            Planned::Frames(d) => {
                let (t, table) = *d;
                t.rewrite_header(&mut header, table.compressed_bytes());
                if let Some(out) = t
                    .output_syntax()
                    .and_then(|u| TransferSyntaxRegistry.get(u))
                {
                    ts = out;
                }
                frames_edit = Some(FramesEdit {
                    table,
                    codec: Box::new(t),
                });
            }
        }
    }
    let pixel = match pixel {
        Some(range) if keeps_pixels && frames_edit.is_some() => {
            counts.kept += 1;
            Some(PixelCopy {
                range,
                contents,
                header: None,
                edit: None,
                frames: frames_edit,
            })
        }
        Some(range) if keeps_pixels => {
            counts.kept += 1;
            // A dataset read as implicit VR under an explicit VR syntax is written in
            // the declared syntax: Pixel Data gets an explicit VR header instead of
            // its own 8-byte one.
            Some(match implicit_vr_repaired {
                Some(Some(h)) => PixelCopy {
                    edit: edit.map(|r| PixelEdit {
                        value_start: range.start + 8,
                        editor: Box::new(r),
                    }),
                    range: range.start + 8..range.end,
                    contents,
                    header: Some(h),
                    frames: None,
                },
                _ => PixelCopy {
                    edit: edit.map(|r| PixelEdit {
                        value_start: range.start + header_len(ts),
                        editor: Box::new(r),
                    }),
                    range,
                    contents,
                    header: None,
                    frames: None,
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
        pixels: pixel_note,
    })
}

/// What pixel redaction will do to one input.
enum PixelJob {
    /// Pixel Data is copied as it is.
    None,
    /// Blanked as planned; the text says by what (for the report).
    Redact(Redaction, String),
    /// Compressed frames to decode, blank and encode, once they are located. The
    /// third field names a built-in rule on a file not at risk: when the frames
    /// cannot be located it is skipped (as [`PixelJob::Skip`]), not refused.
    Frames(Box<Transcoder>, String, Option<String>),
    /// Compressed frames located: decoded, blanked and encoded as they are written.
    Decode(Box<(Transcoder, FrameTable)>, String),
    /// A rule matched but cannot be carried out: quarantined with this reason.
    Refuse(String),
    /// A built-in rule matched a file not at risk but cannot be carried out: copied
    /// as it is, with this note.
    Skip(String),
    /// An unmatched file at risk under `unmatched: ocr`: its frames are read next.
    Ocr,
    /// OCR found no text: written as it is, with this note.
    NoText(String),
    /// A file at risk that no rule matches: the reason's tail names the closest rule.
    Unmatched(String),
}

/// Bytes of a native Pixel Data element's header in `ts`.
fn header_len(ts: &dicom_encoding::TransferSyntax) -> u64 {
    // Implicit VR Little Endian is the one syntax whose elements carry no VR.
    if ts.uid() == "1.2.840.10008.1.2" {
        8
    } else {
        12
    }
}

fn plan_pixels(
    header: &InMemDicomObject,
    ts: &dicom_encoding::TransferSyntax,
    range: &std::ops::Range<u64>,
    repaired_header: bool,
    burned_in_risk: bool,
    profile: &CompiledProfile,
) -> PixelJob {
    let policy = &profile.pixels;
    let mut builtin = false;
    let (name, regions, frames, what) = match crate::pixels::select(policy, header) {
        Some(rule) => (
            {
                builtin = rule.origin.source == "builtin:pixels";
                rule.name.as_str()
            },
            &rule.regions,
            rule.frames.as_deref(),
            format!(
                "rule `{}` ({}:{}), {}",
                rule.name,
                rule.origin.source,
                rule.origin.line,
                rule.regions.describe()
            ),
        ),
        None if !burned_in_risk => return PixelJob::None,
        None => match policy.unmatched {
            Unmatched::Blank => (
                "unmatched: blank",
                &Regions::All,
                None,
                "unmatched: blank, every frame".to_string(),
            ),
            Unmatched::Quarantine | Unmatched::Ocr => {
                let tail = match crate::pixels::closest(policy, header) {
                    Some((r, missing)) => format!(
                        "no pixel rule matches (closest: `{}`, which needs {missing})",
                        r.name
                    ),
                    None => "no pixel rule matches".to_string(),
                };
                if policy.unmatched == Unmatched::Ocr {
                    return PixelJob::Ocr;
                }
                return PixelJob::Unmatched(tail);
            }
        },
    };
    // A built-in rule that cannot run on a file the quarantine does not hold at
    // risk (Burned In Annotation NO, or a class without burned-in risk) leaves the
    // file as it was before pixel rules existed, with a note; a site's own rule, or
    // a file at risk, is refused.
    let refuse = |reason: String| {
        if builtin && !burned_in_risk {
            PixelJob::Skip(format!(
                "pixels: built-in rule `{name}` not applied ({reason}); the file is not held at risk of burned-in text"
            ))
        } else {
            PixelJob::Refuse(reason)
        }
    };
    if ts.is_encapsulated_pixel_data() {
        let Some(codec) = Codec::of(ts.uid()) else {
            return refuse(format!(
                "pixel rule `{name}` matches but the pixel data is compressed in {} ({}), which this build cannot decode for redaction",
                ts.name(),
                ts.uid().trim_end_matches('\0')
            ));
        };
        return match Transcoder::plan(header, codec, name, regions, frames) {
            Ok(mut t) => {
                let how = match t.output_syntax() {
                    Some(_) => format!("decompressed {} -> Explicit VR Little Endian", ts.name()),
                    None => format!("decompressed and re-encoded as {}", ts.name()),
                };
                let what = clear_overlays(t.redaction_mut(), header, profile, what);
                let lenient = (builtin && !burned_in_risk).then(|| name.to_string());
                PixelJob::Frames(Box::new(t), format!("{what}; {how}"), lenient)
            }
            Err(e) => refuse(e.to_string()),
        };
    }
    let value_start = if repaired_header { 8 } else { header_len(ts) };
    let value_len = (range.end - range.start).saturating_sub(value_start);
    let big_endian = ts.endianness() == dicom_encoding::transfer_syntax::Endianness::Big;
    match Redaction::plan(header, big_endian, value_len, name, regions, frames) {
        Ok(mut r) => {
            let what = clear_overlays(&mut r, header, profile, what);
            PixelJob::Redact(r, what)
        }
        Err(e) => refuse(e.to_string()),
    }
}

/// Overlays embedded in the pixels' high bits carry text too (judged on the
/// original header): cleared by the redaction unless the clean-graphics option
/// keeps graphics. Returns `what`, saying so when it happens.
fn clear_overlays(
    r: &mut Redaction,
    header: &InMemDicomObject,
    profile: &CompiledProfile,
    what: String,
) -> String {
    let planes = if profile.options.contains(&"clean-graphics") {
        0
    } else {
        r.zero_embedded_overlays(header)
    };
    if planes > 0 {
        format!("{what}; {planes} overlay plane(s) in the high bits of Pixel Data cleared")
    } else {
        what
    }
}

/// What a redaction works on: native Pixel Data edited in place, or compressed
/// frames decoded and encoded again.
enum Planned {
    Native(Redaction),
    Frames(Box<(Transcoder, FrameTable)>),
}

const EXTENDED_OFFSET_TABLE: Tag = Tag(0x7FE0, 0x0001);

/// Locates the compressed frames of a `PixelJob::Frames` (item headers only: the
/// fragments stay in the input until the encoder decodes them one frame at a time).
fn frames_job(
    job: PixelJob,
    header: &InMemDicomObject,
    range: &std::ops::Range<u64>,
    repaired_header: bool,
    contents: Option<&Vec<u8>>,
    input: &mut dyn crate::io::source::Input,
) -> PixelJob {
    let PixelJob::Frames(t, what, lenient) = job else {
        return job;
    };
    let extended: Option<Vec<u64>> = header
        .get(EXTENDED_OFFSET_TABLE)
        .and_then(|e| e.to_multi_int::<u64>().ok());
    let header_len = if repaired_header { 8 } else { 12 };
    match crate::io::encap::frame_table(
        input,
        contents,
        range,
        header_len,
        t.frames(),
        extended.as_deref(),
    ) {
        Ok(table) => PixelJob::Decode(Box::new((*t, table)), what),
        Err(e) => {
            let reason = format!("compressed pixel data cannot be redacted: {e}");
            match lenient {
                Some(name) => PixelJob::Skip(format!(
                    "pixels: built-in rule `{name}` not applied ({reason}); the file is not held at risk of burned-in text"
                )),
                None => PixelJob::Refuse(reason),
            }
        }
    }
}

/// Reads every frame of an unmatched file at risk, asks the finder where text is,
/// and plans the blanking of each box (grown by a margin) in every frame.
fn ocr_job(
    header: &InMemDicomObject,
    ts: &dicom_encoding::TransferSyntax,
    range: &std::ops::Range<u64>,
    repaired_header: bool,
    contents: Option<&Vec<u8>>,
    input: &mut dyn crate::io::source::Input,
    finder: Option<&dyn crate::pixels::TextFinder>,
) -> PixelJob {
    use crate::pixels::ocr::{GreyLayout, MAX_FRAMES};
    use crate::profile::pixels::Rect;
    use std::io::SeekFrom;
    let Some(finder) = finder else {
        return PixelJob::Refuse("pixels.unmatched is ocr but no OCR engine is available".into());
    };
    if ts.is_encapsulated_pixel_data() {
        return ocr_frames_job(header, ts, range, repaired_header, contents, input, finder);
    }
    let big_endian = ts.endianness() == dicom_encoding::transfer_syntax::Endianness::Big;
    let layout = match GreyLayout::of(header, big_endian) {
        Ok(l) => l,
        Err(e) => return PixelJob::Refuse(format!("unmatched: ocr: {e}")),
    };
    if layout.frames > MAX_FRAMES {
        return PixelJob::Refuse(format!(
            "unmatched: ocr reads at most {MAX_FRAMES} frames; this file has {}",
            layout.frames
        ));
    }
    let start = range.start + if repaired_header { 8 } else { header_len(ts) };
    let len = layout.frame_len();
    // Checked before a frame's buffer is allocated: Rows and Columns come from the file.
    if (len as u64).saturating_mul(u64::from(layout.frames)) > range.end.saturating_sub(start) {
        return PixelJob::Refuse("Pixel Data is shorter than its frames".into());
    }
    let mut buf = vec![0u8; len];
    let mut boxes: Vec<Rect> = Vec::new();
    for f in 0..u64::from(layout.frames) {
        let at = start + f * len as u64;
        if at + len as u64 > range.end {
            return PixelJob::Refuse("Pixel Data is shorter than its frames".into());
        }
        let read = match contents {
            Some(bytes) => usize::try_from(at)
                .ok()
                .and_then(|a| bytes.get(a..a + len))
                .map(|s| buf.copy_from_slice(s))
                .ok_or(()),
            None => input
                .seek(SeekFrom::Start(at))
                .and_then(|_| input.read_exact(&mut buf))
                .map_err(|_| ()),
        };
        if read.is_err() {
            return PixelJob::Refuse("cannot read the frames for OCR".into());
        }
        match finder.find(&layout.grey(&buf)) {
            Ok(found) => boxes.extend(found.into_iter().map(|b| layout.with_margin(b))),
            Err(e) => return PixelJob::Refuse(format!("OCR failed: {e}")),
        }
    }
    if boxes.is_empty() {
        return PixelJob::NoText(format!(
            "pixels: ocr found no text in {} frame(s); written as it is",
            layout.frames
        ));
    }
    let what = ocr_what(&boxes);
    match Redaction::plan(
        header,
        big_endian,
        range.end.saturating_sub(start),
        "unmatched: ocr",
        &Regions::Rects(boxes),
        None,
    ) {
        Ok(r) => PixelJob::Redact(r, what),
        Err(e) => PixelJob::Refuse(e.to_string()),
    }
}

/// `unmatched: ocr` on compressed frames: each frame decoded (by a transcoder
/// planned to blank every frame, used only to decode), rendered grey and read;
/// the boxes found become the regions of the transcoder that writes the file.
fn ocr_frames_job(
    header: &InMemDicomObject,
    ts: &dicom_encoding::TransferSyntax,
    range: &std::ops::Range<u64>,
    repaired_header: bool,
    contents: Option<&Vec<u8>>,
    input: &mut dyn crate::io::source::Input,
    finder: &dyn crate::pixels::TextFinder,
) -> PixelJob {
    use crate::pixels::ocr::{GreyLayout, MAX_FRAMES};
    use crate::profile::pixels::Rect;
    const RULE: &str = "unmatched: ocr";
    let Some(codec) = Codec::of(ts.uid()) else {
        return PixelJob::Refuse(format!(
            "unmatched: ocr: the pixel data is compressed in {} ({}), which this build cannot decode",
            ts.name(),
            ts.uid().trim_end_matches('\0')
        ));
    };
    let probe = match Transcoder::plan(header, codec, RULE, &Regions::All, None) {
        Ok(t) => t,
        Err(e) => return PixelJob::Refuse(format!("unmatched: ocr: {e}")),
    };
    if probe.frames() > MAX_FRAMES {
        return PixelJob::Refuse(format!(
            "unmatched: ocr reads at most {MAX_FRAMES} frames; this file has {}",
            probe.frames()
        ));
    }
    let located = frames_job(
        PixelJob::Frames(Box::new(probe), String::new(), None),
        header,
        range,
        repaired_header,
        contents,
        &mut *input,
    );
    let (probe, table) = match located {
        PixelJob::Decode(d, _) => *d,
        other => return other,
    };
    let layout = match GreyLayout::of(&probe.decoded_view(header), false) {
        Ok(l) => l,
        Err(e) => return PixelJob::Refuse(format!("unmatched: ocr: {e}")),
    };
    let mut compressed = Vec::new();
    let mut boxes: Vec<Rect> = Vec::new();
    for (i, fragments) in table.frames.iter().enumerate() {
        if let Err(e) = crate::io::encap::read_frame(input, contents, fragments, &mut compressed) {
            return PixelJob::Refuse(format!("cannot read the frames for OCR: {e}"));
        }
        let native = match probe.decode(i as u64, &compressed) {
            Ok(n) => n,
            Err(e) => {
                return PixelJob::Refuse(format!("compressed pixel data cannot be redacted: {e}"));
            }
        };
        match finder.find(&layout.grey(&native)) {
            Ok(found) => boxes.extend(found.into_iter().map(|b| layout.with_margin(b))),
            Err(e) => return PixelJob::Refuse(format!("OCR failed: {e}")),
        }
    }
    if boxes.is_empty() {
        return PixelJob::NoText(format!(
            "pixels: ocr found no text in {} frame(s); written as it is",
            table.frames.len()
        ));
    }
    let what = ocr_what(&boxes);
    match Transcoder::plan(header, codec, RULE, &Regions::Rects(boxes), None) {
        Ok(t) => {
            let how = match t.output_syntax() {
                Some(_) => format!("decompressed {} -> Explicit VR Little Endian", ts.name()),
                None => format!("decompressed and re-encoded as {}", ts.name()),
            };
            PixelJob::Decode(Box::new((t, table)), format!("{what}; {how}"))
        }
        Err(e) => PixelJob::Refuse(e.to_string()),
    }
}

/// The report's words for what OCR found: counts and boxes, never the text.
fn ocr_what(boxes: &[crate::profile::pixels::Rect]) -> String {
    let shown: Vec<String> = boxes
        .iter()
        .take(20)
        .map(|b| format!("[{}, {}, {}, {}]", b.x, b.y, b.w, b.h))
        .collect();
    format!(
        "ocr, {} box(es) blanked in every frame: {}{}",
        boxes.len(),
        shown.join(", "),
        if boxes.len() > 20 { ", ..." } else { "" }
    )
}

const BURNED_IN_ANNOTATION: Tag = Tag(0x0028, 0x0301);
const DEID_METHOD_CODES: Tag = Tag(0x0012, 0x0064);
const ICON_IMAGE_SEQUENCE: Tag = Tag(0x0088, 0x0200);
const CLEAN_PIXEL_DATA: &str = "113101";

/// After redaction: Burned In Annotation NO, Clean Pixel Data Option (113101) in
/// the De-identification Method Code Sequence, and no icon (a thumbnail carries the
/// same text, unredacted).
fn mark_pixels_clean(header: &mut InMemDicomObject) {
    header.put(DataElement::new(
        BURNED_IN_ANNOTATION,
        VR::CS,
        PrimitiveValue::from("NO"),
    ));
    header.remove_element(ICON_IMAGE_SEQUENCE);
    let code = InMemDicomObject::from_element_iter([
        DataElement::new(
            Tag(0x0008, 0x0100),
            VR::SH,
            PrimitiveValue::from(CLEAN_PIXEL_DATA),
        ),
        DataElement::new(Tag(0x0008, 0x0102), VR::SH, PrimitiveValue::from("DCM")),
        DataElement::new(
            Tag(0x0008, 0x0104),
            VR::LO,
            PrimitiveValue::from("Clean Pixel Data Option"),
        ),
    ]);
    let mut items: Vec<InMemDicomObject> = header
        .get(DEID_METHOD_CODES)
        .and_then(|e| e.value().items())
        .map(<[InMemDicomObject]>::to_vec)
        .unwrap_or_default();
    let has = items.iter().any(|i| {
        i.get(Tag(0x0008, 0x0100))
            .and_then(|e| e.to_str().ok())
            .is_some_and(|v| v.trim() == CLEAN_PIXEL_DATA)
    });
    if !has {
        items.push(code);
    }
    header.put(DataElement::new(
        DEID_METHOD_CODES,
        VR::SQ,
        Value::from(DataSetSequence::new(items, Length::UNDEFINED)),
    ));
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
