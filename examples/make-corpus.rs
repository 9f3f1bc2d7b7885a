//! Builds synthetic DICOM inputs for the benchmarks in `benches/`.
//!
//! Usage:
//!   cargo run --release --example make-corpus -- bigframe <OUT_FILE> <MiB>
//!   cargo run --release --example make-corpus -- tree <OUT_DIR> <N> [--seed S] [--samples DIR] [--only KIND]
//!
//! `bigframe` writes one native multi-frame RT Dose file (explicit VR little endian,
//! 512x512 frames of 16-bit pixels, 0.5 MiB each) whose Pixel Data is <MiB> MiB.
//! The header comes from testdata/dicom/rtdose_multiframe.dcm; the pixel bytes are a
//! deterministic pattern streamed to disk one frame at a time. On success it prints
//! one line, `pixel_data_offset=<bytes> pixel_data_length=<bytes> file_size=<bytes>`,
//! where the offset is that of the Pixel Data element header (tag, VR, length).
//!
//! `tree` turns the readable samples of testdata/dicom/ (or of `--samples DIR`: those
//! that carry a SOP Instance UID and survive a write/read round trip; the others are
//! named on stderr and skipped) into N files (N <= 99999) that look like an archive
//! export, and prints on stderr how many files and bytes of each kind it wrote. The
//! output depends only on the seed (default 1), N and the samples: the same three give
//! a byte-identical tree. Files are written in parallel with rayon.
//!
//! Layout: OUT_DIR/pNNN/sNNN/iNNNNN.dcm. There are max(10, ceil(N / 100)) patients
//! (pNNN, at most 1000), each with 1 to 3 studies of 2 to 5 series (sNNN numbers the
//! series of a patient across its studies; the counts are drawn from the seed). File
//! i (iNNNNN) belongs to series i mod (number of series), so every series fills
//! evenly, and its InstanceNumber is i div (number of series) + 1. A series mixes
//! kinds of files.
//!
//! `--only small|slice|multiframe` makes every file of that kind (to time, say,
//! typical CT/MR slices alone).
//!
//! Kinds: the kind of file i is read off a golden-ratio (Weyl) sequence started at a
//! seed-dependent point, which spreads each kind evenly over the indices, so that any
//! N, not only a large one, gets close to these shares:
//! - `slice`, 16%: a typical CT/MR slice of 0.5 MiB. The header is a CT or MR sample
//!   with native pixels (from testdata: ct_explicit_le, mr_explicit_be,
//!   mr_fake_phi_dicognito, mr_implicit_le, mr_overlay), taken in turn and keeping its
//!   transfer syntax; Pixel Data becomes a 512x512 16-bit MONOCHROME2 phantom (a disc
//!   with texture, 64 variants of brightness) and the Image Pixel attributes are set to
//!   match (Pixel Representation is kept; Smallest/Largest Image Pixel Value and
//!   Pixel Value in Series, Planar Configuration, Number of Frames and Frame Increment
//!   Pointer are removed).
//! - `multiframe`, 0.1%: the `bigframe` RT Dose (always from testdata/, whatever
//!   `--samples` says) with 16, 24, 32, 40 or 48 MiB of Pixel Data (in turn), streamed
//!   to disk like `bigframe`.
//! - `small`, the rest: every usable sample as it is (SR, RT Plan, RT Dose, secondary
//!   captures in several transfer syntaxes, the small CT and MR), taken in turn.
//!
//! With seed 1 and N = 10000 this gives 8388 small files (257 MB), 1601 slices
//! (854 MB) and 11 multi-frame files (361 MB): 1.47 GB in all, 147 KB a file.
//!
//! PHI: every file gets made-up values, drawn from the seed and the patient, study,
//! series and instance indices, in the attributes below; the sample's other
//! attributes are kept (some samples carry their own fake PHI, the same in every
//! patient). Patient-level values are the same in all files of a patient and
//! study-level values in all files of a study, so a de-identifier's consistency can
//! be checked; patient names and IDs are distinct across patients.
//! - Patient: PatientName (family^given from built-in lists), PatientID
//!   (`MRN<7 digits>`), OtherPatientIDs, PatientBirthDate, PatientSex, PatientAddress;
//!   OtherPatientIDsSequence with one item (PatientID = the other ID,
//!   IssuerOfPatientID, TypeOfPatientID); OriginalAttributesSequence with one item
//!   whose ModifiedAttributesSequence item holds a former PatientName (PN, the family
//!   name with a letter missing) and a former PatientID, plus the modification
//!   date-time, system, source and reason; a private block in group 0019 (creator
//!   `SYNTHETIC PHI 1.0` in the first free slot) with (0019,xx01) LO = the patient
//!   name and (0019,xx02) DA = the birth date.
//! - Study: StudyInstanceUID, StudyDate, StudyTime, AccessionNumber, StudyID,
//!   StudyDescription, InstitutionName, InstitutionAddress, ReferringPhysicianName
//!   (family^given^^Dr), PatientAge (from birth and study dates);
//!   RequestAttributesSequence with one item (RequestedProcedureDescription,
//!   RequestedProcedureID, ScheduledProcedureStepID).
//! - Series: SeriesInstanceUID, SeriesNumber, SeriesDate (the study date), SeriesTime,
//!   SeriesDescription, PerformingPhysicianName, OperatorsName. Staff surnames come
//!   from a list of their own, so no staff name is or contains a patient's name.
//! - Instance: SOPInstanceUID (and MediaStorageSOPInstanceUID), InstanceNumber,
//!   AcquisitionDate/ContentDate (the study date), AcquisitionTime, ContentTime, and
//!   ImageComments, free text with the patient's given and family names, MRN and
//!   birth date.
//!
//! UIDs are `2.25.<decimal>`, distinct per study, series and instance.

use dicom_core::ops::{ApplyOp, AttributeAction, AttributeOp};
use dicom_core::value::DataSetSequence;
use dicom_core::{DataElement, PrimitiveValue, Tag, VR};
use dicom_dictionary_std::tags;
use dicom_object::{DefaultDicomObject, InMemDicomObject, OpenFileOptions, open_file};
use rayon::prelude::*;
use std::fs::File;
use std::io::{BufWriter, Write};
use std::path::{Path, PathBuf};
use std::process::ExitCode;

const USAGE: &str = "usage:
  make-corpus bigframe <OUT_FILE> <MiB>
  make-corpus tree <OUT_DIR> <N> [--seed S] [--samples DIR] [--only KIND]
  make-corpus uscine <OUT_FILE> <ROWS> <COLS> <SAMPLES 1|3> <FRAMES>";

const EXPLICIT_VR_LE: &str = "1.2.840.10008.1.2.1";
const SAMPLES_DIR: &str = concat!(env!("CARGO_MANIFEST_DIR"), "/testdata/dicom");
const BIGFRAME_TEMPLATE: &str = "rtdose_multiframe.dcm";

/// Frame geometry of `bigframe`: 512 x 512 pixels of 16 bits = 0.5 MiB per frame.
/// `tree` slices have the same geometry.
const FRAME_ROWS: u16 = 512;
const FRAME_COLS: u16 = 512;
const FRAME_BYTES: u64 = FRAME_ROWS as u64 * FRAME_COLS as u64 * 2;

/// Shares of the `tree` kinds, in files per million; the rest are small files. With
/// the samples of testdata/ the average is about 147 KB a file, close to the
/// reference point of our performance issue (10,000 files in about 1.4 GB): a
/// multi-frame file weighs as much as ~60 slices, so its share is kept small.
const SLICE_PPM: u64 = 160_000;
const MULTIFRAME_PPM: u64 = 1_000;
/// Pixel Data sizes of the multi-frame files, used in turn (32 MiB on average).
const MULTIFRAME_MIB: [u64; 5] = [16, 24, 32, 40, 48];

/// Shape of the `tree` corpus: about this many files per patient, and at least this
/// many patients.
const FILES_PER_PATIENT: u64 = 100;
const MIN_PATIENTS: u64 = 10;

/// SOP classes whose samples can become 0.5 MiB slices.
const CT_IMAGE_STORAGE: &str = "1.2.840.10008.5.1.4.1.1.2";
const MR_IMAGE_STORAGE: &str = "1.2.840.10008.5.1.4.1.1.4";
/// Native (uncompressed, not deflated) transfer syntaxes: implicit VR LE, explicit
/// VR LE, explicit VR BE.
const NATIVE_SYNTAXES: [&str; 3] = [
    "1.2.840.10008.1.2",
    "1.2.840.10008.1.2.1",
    "1.2.840.10008.1.2.2",
];

/// Other Patient IDs (0010,1000): retired, and so deprecated in dicom-rs's
/// dictionary, but still common in real files and still PHI.
const OTHER_PATIENT_IDS: Tag = Tag(0x0010, 0x1000);

/// The private block that carries PHI in every `tree` file.
const PRIVATE_GROUP: u16 = 0x0019;
const PRIVATE_CREATOR: &str = "SYNTHETIC PHI 1.0";

type Result<T> = std::result::Result<T, String>;

fn main() -> ExitCode {
    let args: Vec<String> = std::env::args().skip(1).collect();
    let result = match args.first().map(String::as_str) {
        Some("bigframe") => bigframe_cmd(&args[1..]),
        Some("tree") => tree_cmd(&args[1..]),
        Some("uscine") => uscine_cmd(&args[1..]),
        Some("-h" | "--help") => {
            println!("{USAGE}");
            return ExitCode::SUCCESS;
        }
        _ => Err(format!("expected a KIND\n{USAGE}")),
    };
    match result {
        Ok(()) => ExitCode::SUCCESS,
        Err(e) => {
            eprintln!("make-corpus: error: {e}");
            ExitCode::FAILURE
        }
    }
}

// ---------------------------------------------------------------------------
// uscine: an ultrasound multi-frame with a Sequence of Ultrasound Regions, for the
// pixel redaction benchmark (benches/pixels.sh)

fn uscine_cmd(args: &[String]) -> Result<()> {
    let [out, rows, cols, samples, frames] = args else {
        return Err("uscine takes <OUT_FILE> <ROWS> <COLS> <SAMPLES 1|3> <FRAMES>".into());
    };
    let num = |s: &String| {
        s.parse::<u32>()
            .map_err(|_| format!("expected a whole number, got {s:?}"))
    };
    let (rows, cols, samples, frames) = (num(rows)?, num(cols)?, num(samples)?, num(frames)?);
    if !matches!(samples, 1 | 3) || rows == 0 || cols == 0 || frames == 0 {
        return Err("uscine needs SAMPLES 1 or 3 and non-zero sizes".into());
    }
    let frame_bytes = u64::from(rows) * u64::from(cols) * u64::from(samples);
    let length = frame_bytes * u64::from(frames);
    if length >= u64::from(u32::MAX) {
        return Err("Pixel Data would exceed a 32-bit length".into());
    }
    let uid = uid_2_25(&[
        0x05C1_4E00,
        u64::from(rows),
        u64::from(cols),
        u64::from(frames),
    ]);
    let class = "1.2.840.10008.5.1.4.1.1.3.1";
    let ul = |e, v: u32| DataElement::new(Tag(0x0018, e), VR::UL, PrimitiveValue::from(v));
    // One region: the image area, a 40-pixel margin all round.
    let region = InMemDicomObject::from_element_iter([
        ul(0x6018, 40),
        ul(0x601A, 40),
        ul(0x601C, cols.saturating_sub(41)),
        ul(0x601E, rows.saturating_sub(41)),
    ]);
    let mut obj = InMemDicomObject::new_empty();
    obj.put_str(tags::SOP_CLASS_UID, VR::UI, class);
    obj.put_str(tags::SOP_INSTANCE_UID, VR::UI, uid.as_str());
    obj.put_str(tags::MODALITY, VR::CS, "US");
    obj.put_str(tags::PATIENT_NAME, VR::PN, "BENCH^CINE");
    obj.put(DataElement::new(
        Tag(0x0018, 0x6011),
        VR::SQ,
        DataSetSequence::new(vec![region], dicom_core::Length::UNDEFINED),
    ));
    put_us(&mut obj, tags::SAMPLES_PER_PIXEL, samples as u16);
    obj.put_str(
        tags::PHOTOMETRIC_INTERPRETATION,
        VR::CS,
        if samples == 3 { "RGB" } else { "MONOCHROME2" },
    );
    if samples == 3 {
        put_us(&mut obj, tags::PLANAR_CONFIGURATION, 0);
    }
    obj.put_str(tags::NUMBER_OF_FRAMES, VR::IS, frames.to_string());
    put_us(&mut obj, tags::ROWS, rows as u16);
    put_us(&mut obj, tags::COLUMNS, cols as u16);
    put_us(&mut obj, tags::BITS_ALLOCATED, 8);
    put_us(&mut obj, tags::BITS_STORED, 8);
    put_us(&mut obj, tags::HIGH_BIT, 7);
    put_us(&mut obj, tags::PIXEL_REPRESENTATION, 0);
    let obj = obj
        .with_meta(
            dicom_object::FileMetaTableBuilder::new()
                .media_storage_sop_class_uid(class)
                .media_storage_sop_instance_uid(uid.as_str())
                .transfer_syntax(EXPLICIT_VR_LE),
        )
        .map_err(|e| format!("meta: {e}"))?;
    let mut head = Vec::new();
    obj.write_all(&mut head)
        .map_err(|e| format!("header: {e}"))?;
    let werr = |e: std::io::Error| format!("{out}: {e}");
    let mut w = BufWriter::with_capacity(1 << 20, File::create(out).map_err(werr)?);
    w.write_all(&head).map_err(werr)?;
    w.write_all(&0x7FE0u16.to_le_bytes()).map_err(werr)?;
    w.write_all(&0x0010u16.to_le_bytes()).map_err(werr)?;
    w.write_all(b"OB\0\0").map_err(werr)?;
    w.write_all(&(length as u32).to_le_bytes()).map_err(werr)?;
    let mut frame = vec![0u8; frame_bytes as usize];
    for f in 0..u64::from(frames) {
        for (i, b) in frame.iter_mut().enumerate() {
            *b = (i as u64 * 7 + f * 13) as u8;
        }
        w.write_all(&frame).map_err(werr)?;
    }
    w.flush().map_err(werr)?;
    println!("frames={frames} frame_bytes={frame_bytes} pixel_data_length={length}");
    Ok(())
}

// ---------------------------------------------------------------------------
// bigframe

fn bigframe_cmd(args: &[String]) -> Result<()> {
    let [out, mib] = args else {
        return Err(format!("bigframe takes <OUT_FILE> <MiB>\n{USAGE}"));
    };
    let mib: u64 = mib
        .parse()
        .map_err(|_| format!("<MiB> must be a whole number, got {mib:?}"))?;
    // A native Pixel Data element has a 32-bit length (0xFFFFFFFF is reserved).
    let frames = mib * (1 << 20) / FRAME_BYTES;
    if frames == 0 || frames * FRAME_BYTES >= u64::from(u32::MAX) {
        return Err(format!("<MiB> must be between 1 and 4095, got {mib}"));
    }
    let (offset, length, size) = write_bigframe(Path::new(out), frames)?;
    println!("pixel_data_offset={offset} pixel_data_length={length} file_size={size}");
    Ok(())
}

/// Writes the file and returns (Pixel Data element offset, value length, file size).
fn write_bigframe(out: &Path, frames: u64) -> Result<(u64, u64, u64)> {
    let template = load_bigframe_template()?;
    let obj = bigframe_header(
        &template,
        frames,
        &uid_2_25(&[0xB16F_0A3E, frames]),
        &uid_2_25(&[0xB16F_0A3E, frames, 1]),
    )?;
    let (offset, length, file) = write_streamed(&obj, out, frames)?;
    let werr = |e: std::io::Error| format!("{}: {e}", out.display());
    file.sync_all().map_err(werr)?;
    let size = file.metadata().map_err(werr)?.len();
    Ok((offset, length, size))
}

fn load_bigframe_template() -> Result<DefaultDicomObject> {
    let path = Path::new(SAMPLES_DIR).join(BIGFRAME_TEMPLATE);
    open_file(&path).map_err(|e| format!("{}: {e}", path.display()))
}

/// The RT Dose header of a file with `frames` 512x512 frames, everything but Pixel
/// Data, with the given SOP Instance UID and RT Plan reference.
fn bigframe_header(
    template: &DefaultDicomObject,
    frames: u64,
    sop_uid: &str,
    plan_uid: &str,
) -> Result<DefaultDicomObject> {
    let mut obj = template.clone();
    // Pixel Data must be the last element: drop it and anything after it.
    let tail: Vec<Tag> = obj
        .tags()
        .filter(|t| *t >= tags::FLOAT_PIXEL_DATA)
        .collect();
    for t in tail {
        obj.remove_element(t);
    }

    let n = frames as usize;
    put_us(&mut obj, tags::ROWS, FRAME_ROWS);
    put_us(&mut obj, tags::COLUMNS, FRAME_COLS);
    put_us(&mut obj, tags::SAMPLES_PER_PIXEL, 1);
    put_us(&mut obj, tags::BITS_ALLOCATED, 16);
    put_us(&mut obj, tags::BITS_STORED, 16);
    put_us(&mut obj, tags::HIGH_BIT, 15);
    put_us(&mut obj, tags::PIXEL_REPRESENTATION, 0);
    obj.put_str(tags::PHOTOMETRIC_INTERPRETATION, VR::CS, "MONOCHROME2");
    obj.put_str(tags::NUMBER_OF_FRAMES, VR::IS, n.to_string());
    // RT Dose frames are indexed by Grid Frame Offset Vector (the Frame Increment
    // Pointer names it): one offset per frame, 1 mm apart.
    let offsets: Vec<String> = (0..n).map(|i| i.to_string()).collect();
    obj.put(DataElement::new(
        tags::GRID_FRAME_OFFSET_VECTOR,
        VR::DS,
        PrimitiveValue::Strs(offsets.into()),
    ));
    // A fresh identity, so the file is not mistaken for the sample it came from.
    obj.put_str(tags::SOP_INSTANCE_UID, VR::UI, sop_uid);
    // The sample refers to its RT Plan with an invalid UID (a component with a
    // leading zero); give the reference a valid one so strict readers stay quiet.
    obj.apply(AttributeOp::new(
        (
            tags::REFERENCED_RT_PLAN_SEQUENCE,
            0,
            tags::REFERENCED_SOP_INSTANCE_UID,
        ),
        AttributeAction::ReplaceStr(plan_uid.to_string().into()),
    ))
    .map_err(|e| format!("cannot replace the RT Plan reference: {e}"))?;
    obj.update_meta(|m| {
        m.transfer_syntax = pad_uid(EXPLICIT_VR_LE);
        m.media_storage_sop_instance_uid = pad_uid(sop_uid);
    });
    Ok(obj)
}

/// Writes `header` (explicit VR LE, without Pixel Data) to `out`, then a native
/// Pixel Data element of `frames` frames, one frame at a time so that a file of any
/// size needs one frame of memory. Returns (Pixel Data element offset, value length,
/// the file, flushed).
fn write_streamed(
    header: &DefaultDicomObject,
    out: &Path,
    frames: u64,
) -> Result<(u64, u64, File)> {
    let mut bytes = Vec::with_capacity(64 * 1024);
    header
        .write_all(&mut bytes)
        .map_err(|e| format!("{}: cannot encode the header: {e}", out.display()))?;

    let file = File::create(out).map_err(|e| format!("{}: {e}", out.display()))?;
    let mut w = BufWriter::with_capacity(1 << 20, file);
    let werr = |e: std::io::Error| format!("{}: {e}", out.display());
    w.write_all(&bytes).map_err(werr)?;
    let length = frames * FRAME_BYTES;
    // Pixel Data (7FE0,0010) OW in explicit VR: tag, VR, 2 reserved bytes, 32-bit length.
    let mut elem = Vec::with_capacity(12);
    elem.extend_from_slice(&0x7FE0u16.to_le_bytes());
    elem.extend_from_slice(&0x0010u16.to_le_bytes());
    elem.extend_from_slice(b"OW\0\0");
    elem.extend_from_slice(&(length as u32).to_le_bytes());
    w.write_all(&elem).map_err(werr)?;

    let mut frame = vec![0u8; FRAME_BYTES as usize];
    for f in 0..frames {
        fill_frame(&mut frame, f);
        w.write_all(&frame).map_err(werr)?;
    }
    let file = w.into_inner().map_err(|e| werr(e.into_error()))?;
    Ok((bytes.len() as u64, length, file))
}

/// A frame-dependent gradient: every frame differs, so a copy that reorders,
/// drops or duplicates frames does not compare equal.
fn fill_frame(buf: &mut [u8], frame: u64) {
    let cols = usize::from(FRAME_COLS);
    for (i, px) in buf.chunks_exact_mut(2).enumerate() {
        let (y, x) = (i / cols, i % cols);
        let v = (x as u64 + 3 * y as u64 + 1021 * frame) as u16;
        px.copy_from_slice(&v.to_le_bytes());
    }
}

fn put_us(obj: &mut InMemDicomObject, tag: Tag, v: u16) {
    obj.put(DataElement::new(tag, VR::US, PrimitiveValue::from(v)));
}

// ---------------------------------------------------------------------------
// tree

fn tree_cmd(args: &[String]) -> Result<()> {
    let mut positional = Vec::new();
    let mut seed: u64 = 1;
    let mut samples_dir = PathBuf::from(SAMPLES_DIR);
    let mut only = None;
    let mut it = args.iter();
    while let Some(a) = it.next() {
        if a == "--samples" {
            samples_dir = it.next().ok_or("--samples needs a directory")?.into();
        } else if a == "--seed" {
            let v = it.next().ok_or("--seed needs a value")?;
            seed = v
                .parse()
                .map_err(|_| format!("--seed must be a whole number, got {v:?}"))?;
        } else if let Some(v) = a.strip_prefix("--seed=") {
            seed = v
                .parse()
                .map_err(|_| format!("--seed must be a whole number, got {v:?}"))?;
        } else if a == "--only" {
            let v = it.next().ok_or("--only needs a kind")?;
            only = Some(match v.as_str() {
                "small" => Only::Small,
                "slice" => Only::Slice,
                "multiframe" => Only::MultiFrame,
                _ => {
                    return Err(format!(
                        "--only takes small, slice or multiframe, got {v:?}"
                    ));
                }
            });
        } else if a.starts_with("--") {
            return Err(format!("unknown option {a}\n{USAGE}"));
        } else {
            positional.push(a);
        }
    }
    let [out, n] = positional[..] else {
        return Err(format!(
            "tree takes <OUT_DIR> <N> [--seed S] [--samples DIR] [--only KIND]\n{USAGE}"
        ));
    };
    let n: u64 = n
        .parse()
        .map_err(|_| format!("<N> must be a whole number, got {n:?}"))?;
    if n > 99_999 {
        return Err("<N> is at most 99999 (file names have five digits)".into());
    }
    let samples = load_samples(&samples_dir)?;
    if samples.is_empty() {
        return Err(format!("no usable sample in {}", samples_dir.display()));
    }
    let slice_templates: Vec<usize> = (0..samples.len())
        .filter(|&s| is_slice_template(&samples[s].1))
        .collect();
    if slice_templates.is_empty() {
        eprintln!(
            "make-corpus: no CT or MR sample with native pixels: no slices, more small files"
        );
    }
    let out = Path::new(out);
    let (patients, studies, series) = build_hierarchy(out, seed, n);
    let corpus = Corpus {
        seed,
        dose: load_bigframe_template()?,
        samples,
        patients,
        studies,
        series,
    };
    if matches!(only, Some(Only::Slice)) && slice_templates.is_empty() {
        return Err("--only slice: no CT/MR sample with native pixels".into());
    }
    let plan = plan_files(
        only,
        seed,
        n,
        corpus.series.len() as u64,
        corpus.samples.len(),
        &slice_templates,
    );

    // Only the series that get files have a directory (with a small N, not all do).
    let mut dirs: Vec<&Path> = plan
        .iter()
        .map(|p| corpus.series[p.series].dir.as_path())
        .collect();
    dirs.sort();
    dirs.dedup();
    for d in dirs {
        std::fs::create_dir_all(d).map_err(|e| format!("{}: {e}", d.display()))?;
    }
    let sizes: Vec<u64> = plan
        .par_iter()
        .map(|p| write_tree_file(&corpus, p))
        .collect::<Result<_>>()?;

    let total: u64 = sizes.iter().sum();
    eprintln!(
        "wrote {n} files ({total} bytes, {} KB a file) from {} samples to {} (seed {seed}): \
         {} patients, {} studies, {} series",
        total / n.max(1) / 1000,
        corpus.samples.len(),
        out.display(),
        corpus.patients.len(),
        corpus.studies.len(),
        corpus.series.len(),
    );
    for kind in ["small", "slice", "multiframe"] {
        let (files, bytes) = plan
            .iter()
            .zip(&sizes)
            .filter(|(p, _)| p.kind.name() == kind)
            .fold((0u64, 0u64), |(f, b), (_, s)| (f + 1, b + s));
        eprintln!("  {kind:<10} {files:>6} files {bytes:>14} bytes");
    }
    Ok(())
}

/// Samples usable as templates, sorted by file name so the corpus does not depend
/// on directory order.
fn load_samples(dir: &Path) -> Result<Vec<(String, DefaultDicomObject)>> {
    let mut paths: Vec<PathBuf> = std::fs::read_dir(dir)
        .map_err(|e| format!("{}: {e}", dir.display()))?
        .filter_map(|e| e.ok().map(|e| e.path()))
        .filter(|p| p.is_file())
        .collect();
    paths.sort();
    let mut samples = Vec::new();
    for p in paths {
        let name = p
            .file_name()
            .unwrap_or_default()
            .to_string_lossy()
            .into_owned();
        match usable_sample(&p) {
            Ok(obj) => samples.push((name, obj)),
            Err(why) => eprintln!("make-corpus: skipping sample {name}: {why}"),
        }
    }
    Ok(samples)
}

fn usable_sample(path: &Path) -> Result<DefaultDicomObject> {
    // Look for the SOP Instance UID before reading the whole file: dicom-object
    // 0.10.1 reserves about 3.5 GiB (and takes seconds) on priv_sq_as_un.dcm, whose
    // odd private sequence comes after (0008,0018) and which has no SOP Instance UID.
    let head = OpenFileOptions::new()
        .read_until(Tag(0x0008, 0x0019))
        .open_file(path)
        .map_err(|e| format!("does not open: {e}"))?;
    if head.get(tags::SOP_INSTANCE_UID).is_none() {
        return Err("has no SOP Instance UID".into());
    }
    drop(head);
    let obj = open_file(path).map_err(|e| format!("does not open: {e}"))?;
    // It has to survive being written and read back with its own transfer syntax.
    let mut bytes = Vec::new();
    obj.write_all(&mut bytes)
        .map_err(|e| format!("cannot be written back: {e}"))?;
    OpenFileOptions::new()
        .from_reader(&bytes[128..])
        .map_err(|e| format!("does not read back after writing: {e}"))?;
    Ok(obj)
}

/// A CT or MR image with native Pixel Data, whose pixels can be replaced in place
/// without re-encoding anything.
fn is_slice_template(obj: &DefaultDicomObject) -> bool {
    let class = obj.meta().media_storage_sop_class_uid();
    (class == CT_IMAGE_STORAGE || class == MR_IMAGE_STORAGE)
        && NATIVE_SYNTAXES.contains(&obj.meta().transfer_syntax())
        && obj.get(tags::PIXEL_DATA).is_some()
}

/// Everything the writers read: the templates and the made-up hierarchy.
struct Corpus {
    seed: u64,
    samples: Vec<(String, DefaultDicomObject)>,
    /// The `bigframe` RT Dose sample, for the multi-frame files.
    dose: DefaultDicomObject,
    patients: Vec<Patient>,
    studies: Vec<Study>,
    series: Vec<Series>,
}

struct Patient {
    family: &'static str,
    given: &'static str,
    /// `family^given`.
    name: String,
    id: String,
    other_id: String,
    other_issuer: &'static str,
    birth: Date,
    sex: &'static str,
    address: String,
    /// PatientName and PatientID before a (made-up) registration correction.
    /// The name was registered with a typo (a letter missing), since corrected.
    former_name: String,
    former_id: String,
    /// When the correction happened (DT) and in which system.
    modified_at: String,
    modifying_system: &'static str,
}

struct Study {
    patient: usize,
    uid: String,
    date: Date,
    /// Seconds since midnight.
    time: u32,
    accession: String,
    id: String,
    description: &'static str,
    institution: (&'static str, &'static str),
    referring: String,
    requested_procedure_id: String,
    scheduled_step_id: String,
}

struct Series {
    study: usize,
    /// OUT_DIR/pNNN/sNNN.
    dir: PathBuf,
    uid: String,
    number: u64,
    time: u32,
    description: &'static str,
    performing: String,
    operator: String,
}

#[derive(Clone, Copy)]
struct Date {
    y: u64,
    m: u64,
    d: u64,
}

impl Date {
    /// A day in `years` years from `first_year` (days 1 to 28, so always valid).
    fn draw(h: u64, first_year: u64, years: u64) -> Date {
        Date {
            y: first_year + h % years,
            m: 1 + (h >> 20) % 12,
            d: 1 + (h >> 40) % 28,
        }
    }

    /// DA: YYYYMMDD.
    fn da(self) -> String {
        format!("{:04}{:02}{:02}", self.y, self.m, self.d)
    }

    /// Whole years from `self` to `later`, as an AS value (`045Y`).
    fn age_at(self, later: Date) -> String {
        let birthday_to_come = (later.m, later.d) < (self.m, self.d);
        let years = later.y - self.y - u64::from(birthday_to_come);
        format!("{years:03}Y")
    }
}

/// TM (HHMMSS) of `secs` seconds since midnight, held within the day.
fn tm(secs: u32) -> String {
    let s = secs.min(86_399);
    format!("{:02}{:02}{:02}", s / 3600, s / 60 % 60, s % 60)
}

// Made-up values. Surnames, of patients and (apart) of staff, are invented; given names
// are common first names, female in the first half of the list and male in the second
// (PatientSex follows).
#[rustfmt::skip]
const FAMILY: [&str; 32] = [
    "Ashcombe", "Brandvold", "Castellane", "Dunmorrow", "Eskerby", "Fairweld", "Grantholm",
    "Hollowmere", "Ivesdale", "Jarrowick", "Kettleby", "Lindqvarn", "Marrowby", "Northcote",
    "Okafen", "Pemberthy", "Quillane", "Rosswick", "Strathdene", "Tessaro", "Umberfield",
    "Vostrikan", "Wendlebury", "Yarrowdale", "Zelinova", "Ardmoray", "Belcastro",
    "Corvallen", "Delahunte", "Everholt", "Fenwright", "Gesslerby",
];
#[rustfmt::skip]
const STAFF_FAMILY: [&str; 16] = [
    "Aldergrove", "Birchenough", "Cawthorne", "Drummelow", "Elsworthy", "Fothergale",
    "Gravenor", "Hartshorne", "Inchbald", "Kilbracken", "Lowestoft", "Mortlake",
    "Nettlefold", "Ormsworth", "Penhallow", "Ravenscar",
];
const GIVEN: [&str; 32] = [
    "Amelia", "Beatrix", "Clara", "Dagny", "Elena", "Freya", "Greta", "Hana", "Ingrid", "Johanna",
    "Katya", "Lucia", "Marit", "Noor", "Orla", "Priya", "Anders", "Bastian", "Cyrus", "Dmitri",
    "Emil", "Florian", "Gideon", "Hamish", "Ivo", "Jonas", "Kenji", "Lorenz", "Matteo", "Niall",
    "Oskar", "Rafael",
];
#[rustfmt::skip]
const STREETS: [&str; 8] = [
    "Larchmont Avenue", "Foundry Lane", "Willowmere Road", "Quarry Hill Street",
    "Beacon Row", "Old Mill Road", "Harbor View Drive", "Chestnut Court",
];
#[rustfmt::skip]
const CITIES: [&str; 8] = [
    "Eastbrook, NY", "Millhaven, PA", "Harrowgate, OH", "Pinecrest, OR",
    "Corrigan Falls, MN", "Port Alder, ME", "Wyndham Cross, VT", "North Tessel, WI",
];
#[rustfmt::skip]
const INSTITUTIONS: [(&str, &str); 6] = [
    ("Eastbrook General Hospital", "1200 Foundry Lane, Eastbrook, NY 10234"),
    ("St. Aldric Medical Center", "45 Cathedral Square, Millhaven, PA 19077"),
    ("Harrowgate University Hospital", "3 College Road, Harrowgate, OH 44120"),
    ("Pinecrest Regional Clinic", "880 Timberline Drive, Pinecrest, OR 97031"),
    ("Corrigan Falls Imaging Institute", "17 Riverside Parkway, Corrigan Falls, MN 55412"),
    ("Port Alder Community Hospital", "2 Harbor View Drive, Port Alder, ME 04101"),
];
const MODIFYING_SYSTEMS: [&str; 3] = ["ADT BRIDGE 2.3", "HIS MERGE TOOL", "PACS QC WORKSTATION"];
const STUDY_DESCRIPTIONS: [&str; 10] = [
    "CT CHEST W CONTRAST",
    "CT HEAD W/O CONTRAST",
    "CT ABDOMEN PELVIS W CONTRAST",
    "MRI BRAIN W/WO CONTRAST",
    "MRI LUMBAR SPINE W/O CONTRAST",
    "MRI KNEE LEFT",
    "CT ANGIO CHEST PE PROTOCOL",
    "MRI PROSTATE MULTIPARAMETRIC",
    "RT PLANNING CT PELVIS",
    "CT CHEST LOW DOSE SCREENING",
];
const SERIES_DESCRIPTIONS: [&str; 12] = [
    "SCOUT",
    "AX 5.0 SOFT TISSUE",
    "AX 1.25 LUNG",
    "COR REFORMAT",
    "SAG T1",
    "AX T2 FLAIR",
    "AX DWI B1000",
    "COR T2 FS",
    "POST CONTRAST AX T1",
    "DOSE REPORT",
    "KEY IMAGES",
    "RT DOSE PLAN 1",
];

/// A value drawn for attribute `tag` of the entity named by `ids` (patient, study,
/// ... indices): a fixed function of the seed, the tag and the indices, so values are
/// independent across attributes and entities and reproducible.
fn draw(seed: u64, tag: Tag, ids: &[u64]) -> u64 {
    let tag = (u64::from(tag.group()) << 16) | u64::from(tag.element());
    [seed, tag]
        .iter()
        .chain(ids)
        .fold(0x243F_6A88_85A3_08D3 ^ ids.len() as u64, |h, &x| {
            splitmix64(h ^ x)
        })
}

fn pick<T: Copy>(list: &[T], h: u64) -> T {
    list[(h % list.len() as u64) as usize]
}

/// A made-up member of staff (physician, operator) as PN: family^given. Staff
/// surnames have their own list, so no staff name is, or contains, a patient's name
/// and a search for patient names in a de-identified tree finds only patients.
fn person(h: u64) -> String {
    format!("{}^{}", pick(&STAFF_FAMILY, h), pick(&GIVEN, h >> 32))
}

/// `name` without one of its letters (never the first), as typed in a hurry.
fn misspelt(name: &str, h: u64) -> String {
    let at = 1 + (h % (name.len() as u64 - 1)) as usize;
    format!("{}{}", &name[..at], &name[at + 1..])
}

/// Patients, their studies and the studies' series, in that order.
fn build_hierarchy(out: &Path, seed: u64, n: u64) -> (Vec<Patient>, Vec<Study>, Vec<Series>) {
    let n_patients = n.div_ceil(FILES_PER_PATIENT).max(MIN_PATIENTS);
    // Patient p gets name number (p * odd + offset) mod 1024: an odd multiplier makes
    // this a permutation of 0..1024, so the (at most 1000) patients have distinct
    // names. Patient IDs use the same trick mod 9,000,000 (7919 is prime to it).
    let name_mul = draw(seed, tags::PATIENT_NAME, &[]) | 1;
    let name_off = draw(seed, tags::PATIENT_NAME, &[1]);
    let id_off = draw(seed, tags::PATIENT_ID, &[]) % 9_000_000;

    let (mut patients, mut studies, mut series) = (Vec::new(), Vec::new(), Vec::new());
    for p in 0..n_patients {
        let d = |tag: Tag| draw(seed, tag, &[p]);
        let name_no = p.wrapping_mul(name_mul).wrapping_add(name_off) % 1024;
        let (family, given) = (
            FAMILY[(name_no % 32) as usize],
            GIVEN[(name_no / 32) as usize],
        );
        let birth = Date::draw(d(tags::PATIENT_BIRTH_DATE), 1935, 80);
        let addr = d(tags::PATIENT_ADDRESS);
        patients.push(Patient {
            family,
            given,
            name: format!("{family}^{given}"),
            id: format!("MRN{}", 1_000_000 + (p * 7919 + id_off) % 9_000_000),
            other_id: format!("X{:08}", d(OTHER_PATIENT_IDS) % 100_000_000),
            other_issuer: pick(&INSTITUTIONS, d(tags::ISSUER_OF_PATIENT_ID)).0,
            birth,
            sex: if name_no / 32 < 16 { "F" } else { "M" },
            address: format!(
                "{} {}, {} {:05}",
                1 + addr % 9999,
                pick(&STREETS, addr >> 16),
                pick(&CITIES, addr >> 24),
                (addr >> 32) % 100_000
            ),
            former_name: format!(
                "{}^{given}",
                misspelt(family, d(tags::ORIGINAL_ATTRIBUTES_SEQUENCE))
            ),
            former_id: format!(
                "TMP{:06}",
                d(tags::MODIFIED_ATTRIBUTES_SEQUENCE) % 1_000_000
            ),
            modified_at: format!(
                "{}093000",
                Date::draw(d(tags::ATTRIBUTE_MODIFICATION_DATE_TIME), 2010, 5).da()
            ),
            modifying_system: pick(&MODIFYING_SYSTEMS, d(tags::MODIFYING_SYSTEM)),
        });

        let n_studies = 1 + d(tags::STUDY_INSTANCE_UID) % 3;
        let mut series_of_patient = 0u64;
        for _ in 0..n_studies {
            let st = studies.len() as u64;
            let d = |tag: Tag| draw(seed, tag, &[p, st]);
            let steps = d(tags::REQUEST_ATTRIBUTES_SEQUENCE);
            studies.push(Study {
                patient: p as usize,
                uid: uid_2_25(&[seed, 1, st]),
                date: Date::draw(d(tags::STUDY_DATE), 2016, 10),
                time: 7 * 3600 + (d(tags::STUDY_TIME) % (11 * 3600)) as u32,
                accession: format!("A{:08}", d(tags::ACCESSION_NUMBER) % 100_000_000),
                id: format!("{}", 1000 + d(tags::STUDY_ID) % 9000),
                description: pick(&STUDY_DESCRIPTIONS, d(tags::STUDY_DESCRIPTION)),
                institution: pick(&INSTITUTIONS, d(tags::INSTITUTION_NAME)),
                referring: format!("{}^^Dr", person(d(tags::REFERRING_PHYSICIAN_NAME))),
                requested_procedure_id: format!("RP{:07}", steps % 10_000_000),
                scheduled_step_id: format!("SPS{:07}", (steps >> 32) % 10_000_000),
            });
            let n_series = 2 + d(tags::SERIES_INSTANCE_UID) % 4;
            for number in 1..=n_series {
                let se = series.len() as u64;
                let d = |tag: Tag| draw(seed, tag, &[p, st, se]);
                series.push(Series {
                    study: st as usize,
                    dir: out
                        .join(format!("p{p:03}"))
                        .join(format!("s{series_of_patient:03}")),
                    uid: uid_2_25(&[seed, 2, se]),
                    number,
                    // Series follow each other in the study, 7 minutes apart.
                    time: studies[st as usize].time + 420 * number as u32,
                    description: pick(&SERIES_DESCRIPTIONS, d(tags::SERIES_DESCRIPTION)),
                    performing: person(d(tags::PERFORMING_PHYSICIAN_NAME)),
                    operator: person(d(tags::OPERATORS_NAME)),
                });
                series_of_patient += 1;
            }
        }
    }
    (patients, studies, series)
}

/// `--only KIND`: every file of one kind, e.g. to time typical CT/MR slices alone.
#[derive(Clone, Copy)]
enum Only {
    Small,
    Slice,
    MultiFrame,
}

enum Kind {
    /// A sample as it is (index into `Corpus::samples`).
    Small(usize),
    /// A CT/MR sample with 512x512 Pixel Data.
    Slice(usize),
    /// The RT Dose with this many 0.5 MiB frames.
    MultiFrame(u64),
}

impl Kind {
    fn name(&self) -> &'static str {
        match self {
            Kind::Small(_) => "small",
            Kind::Slice(_) => "slice",
            Kind::MultiFrame(_) => "multiframe",
        }
    }
}

struct Planned {
    index: u64,
    kind: Kind,
    series: usize,
    instance: u64,
    sop_uid: String,
}

/// Decides every file in index order: the kind from the Weyl sequence, then the
/// template of that kind in turn (offset by the seed), so that each template and
/// size is equally common whatever N is.
fn plan_files(
    only: Option<Only>,
    seed: u64,
    n: u64,
    n_series: u64,
    n_samples: usize,
    slice_templates: &[usize],
) -> Vec<Planned> {
    let start = splitmix64(seed ^ 0x4B49_4E44);
    let mut taken = [0u64; 3];
    let mut next = |k: usize, len: usize| {
        let t = taken[k];
        taken[k] += 1;
        ((t + seed % len as u64) % len as u64) as usize
    };
    (0..n)
        .map(|i| {
            // frac(start + i * golden ratio), in parts per million.
            let x = start.wrapping_add(i.wrapping_mul(0x9E37_79B9_7F4A_7C15));
            let ppm = ((u128::from(x) * 1_000_000) >> 64) as u64;
            let ppm = match only {
                None => ppm,
                Some(Only::MultiFrame) => 0,
                Some(Only::Slice) => MULTIFRAME_PPM,
                Some(Only::Small) => 1_000_000,
            };
            let kind = if ppm < MULTIFRAME_PPM {
                let mib = MULTIFRAME_MIB[next(0, MULTIFRAME_MIB.len())];
                Kind::MultiFrame(mib * (1 << 20) / FRAME_BYTES)
            } else if ppm < MULTIFRAME_PPM + SLICE_PPM && !slice_templates.is_empty() {
                Kind::Slice(slice_templates[next(1, slice_templates.len())])
            } else {
                Kind::Small(next(2, n_samples))
            };
            Planned {
                index: i,
                kind,
                series: (i % n_series) as usize,
                instance: i / n_series + 1,
                sop_uid: uid_2_25(&[seed, 3, i]),
            }
        })
        .collect()
}

fn write_tree_file(c: &Corpus, p: &Planned) -> Result<u64> {
    let path = c.series[p.series].dir.join(format!("i{:05}.dcm", p.index));
    let err = |e: &dyn std::fmt::Display| format!("{}: {e}", path.display());
    match p.kind {
        Kind::Small(s) => {
            let mut obj = c.samples[s].1.clone();
            apply_phi(&mut obj, c, p);
            obj.write_to_file(&path).map_err(|e| err(&e))?;
        }
        Kind::Slice(s) => {
            let mut obj = c.samples[s].1.clone();
            make_slice(&mut obj, p.index);
            apply_phi(&mut obj, c, p);
            obj.write_to_file(&path).map_err(|e| err(&e))?;
        }
        Kind::MultiFrame(frames) => {
            let plan_uid = uid_2_25(&[c.seed, 4, p.index]);
            let mut obj = bigframe_header(&c.dose, frames, &p.sop_uid, &plan_uid)?;
            apply_phi(&mut obj, c, p);
            write_streamed(&obj, &path, frames)?;
        }
    }
    std::fs::metadata(&path)
        .map(|m| m.len())
        .map_err(|e| err(&e))
}

/// Turns a CT/MR sample into a 512x512 16-bit slice: 0.5 MiB of Pixel Data, with the
/// Image Pixel attributes that describe it.
fn make_slice(obj: &mut DefaultDicomObject, index: u64) {
    // The sample's Pixel Representation stays, so that VRs that follow it (Pixel
    // Padding Value is US or SS) still agree; any 16-bit word is a valid pixel either
    // way. Attributes that would describe the old pixels are dropped; their VRs too
    // follow Pixel Representation, and their values would be wrong.
    let signed = obj
        .get(tags::PIXEL_REPRESENTATION)
        .and_then(|e| e.to_int::<u16>().ok())
        .unwrap_or(0);
    for t in [
        tags::SMALLEST_IMAGE_PIXEL_VALUE,
        tags::LARGEST_IMAGE_PIXEL_VALUE,
        tags::SMALLEST_PIXEL_VALUE_IN_SERIES,
        tags::LARGEST_PIXEL_VALUE_IN_SERIES,
        tags::PLANAR_CONFIGURATION,
        tags::NUMBER_OF_FRAMES,
        tags::FRAME_INCREMENT_POINTER,
    ] {
        obj.remove_element(t);
    }
    put_us(obj, tags::ROWS, FRAME_ROWS);
    put_us(obj, tags::COLUMNS, FRAME_COLS);
    put_us(obj, tags::SAMPLES_PER_PIXEL, 1);
    put_us(obj, tags::BITS_ALLOCATED, 16);
    put_us(obj, tags::BITS_STORED, 16);
    put_us(obj, tags::HIGH_BIT, 15);
    put_us(obj, tags::PIXEL_REPRESENTATION, signed);
    obj.put_str(tags::PHOTOMETRIC_INTERPRETATION, VR::CS, "MONOCHROME2");

    // A phantom: a textured disc on a zero background, brighter or darker by file
    // index (64 variants), so neighbouring files differ. Values are 16-bit words (U16),
    // so the writer puts them in the sample's byte order (big endian included).
    let (rows, cols) = (i64::from(FRAME_ROWS), i64::from(FRAME_COLS));
    let radius2 = (rows * 15 / 32).pow(2);
    let shift = (index % 64) as i64 * 4;
    let pixels: Vec<u16> = (0..rows * cols)
        .map(|k| {
            let (y, x) = (k / cols, k % cols);
            let (dy, dx) = (y - rows / 2, x - cols / 2);
            if dx * dx + dy * dy > radius2 {
                0
            } else {
                (900 + ((x ^ y) & 0xFF) + shift) as u16
            }
        })
        .collect();
    obj.put(DataElement::new(
        tags::PIXEL_DATA,
        VR::OW,
        PrimitiveValue::U16(pixels.into()),
    ));
}

/// Writes the file's patient, study, series and instance values (see the module
/// documentation) over those of the sample.
fn apply_phi(obj: &mut DefaultDicomObject, c: &Corpus, p: &Planned) {
    let se = &c.series[p.series];
    let st = &c.studies[se.study];
    let pt = &c.patients[st.patient];
    let mut put = |tag: Tag, vr: VR, v: &str| {
        obj.put_str(tag, vr, v);
    };

    // Patient.
    put(tags::PATIENT_NAME, VR::PN, &pt.name);
    put(tags::PATIENT_ID, VR::LO, &pt.id);
    put(OTHER_PATIENT_IDS, VR::LO, &pt.other_id);
    put(tags::PATIENT_BIRTH_DATE, VR::DA, &pt.birth.da());
    put(tags::PATIENT_SEX, VR::CS, pt.sex);
    put(tags::PATIENT_ADDRESS, VR::LO, &pt.address);

    // Study.
    let date = st.date.da();
    put(tags::STUDY_INSTANCE_UID, VR::UI, &st.uid);
    put(tags::STUDY_DATE, VR::DA, &date);
    put(tags::STUDY_TIME, VR::TM, &tm(st.time));
    put(tags::ACCESSION_NUMBER, VR::SH, &st.accession);
    put(tags::STUDY_ID, VR::SH, &st.id);
    put(tags::STUDY_DESCRIPTION, VR::LO, st.description);
    put(tags::INSTITUTION_NAME, VR::LO, st.institution.0);
    put(tags::INSTITUTION_ADDRESS, VR::ST, st.institution.1);
    put(tags::REFERRING_PHYSICIAN_NAME, VR::PN, &st.referring);
    put(tags::PATIENT_AGE, VR::AS, &pt.birth.age_at(st.date));

    // Series.
    put(tags::SERIES_INSTANCE_UID, VR::UI, &se.uid);
    put(tags::SERIES_NUMBER, VR::IS, &se.number.to_string());
    put(tags::SERIES_DATE, VR::DA, &date);
    put(tags::SERIES_TIME, VR::TM, &tm(se.time));
    put(tags::SERIES_DESCRIPTION, VR::LO, se.description);
    put(tags::PERFORMING_PHYSICIAN_NAME, VR::PN, &se.performing);
    put(tags::OPERATORS_NAME, VR::PN, &se.operator);

    // Instance: acquired 3 s apart within the series, content created 2 s later.
    let acquired = se.time + 60 + 3 * p.instance.min(20_000) as u32;
    put(tags::SOP_INSTANCE_UID, VR::UI, &p.sop_uid);
    put(tags::INSTANCE_NUMBER, VR::IS, &p.instance.to_string());
    put(tags::ACQUISITION_DATE, VR::DA, &date);
    put(tags::ACQUISITION_TIME, VR::TM, &tm(acquired));
    put(tags::CONTENT_DATE, VR::DA, &date);
    put(tags::CONTENT_TIME, VR::TM, &tm(acquired + 2));
    let comments = format!(
        "{} {}, {}, born {}: image {} of series {}. {} requested by Dr {}.",
        pt.given,
        pt.family,
        pt.id,
        pt.birth.da(),
        p.instance,
        se.number,
        st.description,
        st.referring.split('^').next().unwrap_or_default(),
    );
    put(tags::IMAGE_COMMENTS, VR::LT, &comments);

    // Nested PHI.
    obj.put(sequence(
        tags::OTHER_PATIENT_I_DS_SEQUENCE,
        item(&[
            (tags::PATIENT_ID, VR::LO, &pt.other_id),
            (tags::ISSUER_OF_PATIENT_ID, VR::LO, pt.other_issuer),
            (tags::TYPE_OF_PATIENT_ID, VR::CS, "TEXT"),
        ]),
    ));
    obj.put(sequence(
        tags::REQUEST_ATTRIBUTES_SEQUENCE,
        item(&[
            (
                tags::REQUESTED_PROCEDURE_DESCRIPTION,
                VR::LO,
                st.description,
            ),
            (
                tags::REQUESTED_PROCEDURE_ID,
                VR::SH,
                &st.requested_procedure_id,
            ),
            (
                tags::SCHEDULED_PROCEDURE_STEP_ID,
                VR::SH,
                &st.scheduled_step_id,
            ),
        ]),
    ));
    // Two levels deep: the values the patient had before a correction.
    let mut original = item(&[
        (
            tags::ATTRIBUTE_MODIFICATION_DATE_TIME,
            VR::DT,
            &pt.modified_at,
        ),
        (tags::MODIFYING_SYSTEM, VR::LO, pt.modifying_system),
        (tags::SOURCE_OF_PREVIOUS_VALUES, VR::LO, pt.other_issuer),
        (
            tags::REASON_FOR_THE_ATTRIBUTE_MODIFICATION,
            VR::CS,
            "CORRECT",
        ),
    ]);
    original.put(sequence(
        tags::MODIFIED_ATTRIBUTES_SEQUENCE,
        item(&[
            (tags::PATIENT_NAME, VR::PN, &pt.former_name),
            (tags::PATIENT_ID, VR::LO, &pt.former_id),
        ]),
    ));
    obj.put(sequence(tags::ORIGINAL_ATTRIBUTES_SEQUENCE, original));

    put_private_block(obj, pt);
    obj.update_meta(|m| m.media_storage_sop_instance_uid = pad_uid(&p.sop_uid));
}

fn item(elements: &[(Tag, VR, &str)]) -> InMemDicomObject {
    InMemDicomObject::from_element_iter(
        elements
            .iter()
            .map(|&(tag, vr, v)| DataElement::new(tag, vr, PrimitiveValue::from(v))),
    )
}

fn sequence(tag: Tag, item: InMemDicomObject) -> DataElement<InMemDicomObject> {
    DataElement::new(tag, VR::SQ, DataSetSequence::from(vec![item]))
}

/// The private block: creator `SYNTHETIC PHI 1.0` in the first free creator slot of
/// group 0019 (some samples already use the group), then xx01 LO = patient name and
/// xx02 DA = birth date. dicom-rs's `put_private_element` is not used because it
/// reserves slot 0x01 in an empty group, and creator slots are 0x10 to 0xFF (PS3.5
/// 7.8.1).
fn put_private_block(obj: &mut InMemDicomObject, pt: &Patient) {
    let used: Vec<u16> = obj
        .tags()
        .filter(|t| t.group() == PRIVATE_GROUP)
        .map(|t| t.element())
        .collect();
    let free = |slot: &u16| !used.iter().any(|&e| e == *slot || e >> 8 == *slot);
    let Some(slot) = (0x10..=0xFF).find(free) else {
        return;
    };
    obj.put_str(Tag(PRIVATE_GROUP, slot), VR::LO, PRIVATE_CREATOR);
    let block = slot << 8;
    obj.put_str(Tag(PRIVATE_GROUP, block | 0x01), VR::LO, pt.name.as_str());
    obj.put_str(Tag(PRIVATE_GROUP, block | 0x02), VR::DA, pt.birth.da());
}

// ---------------------------------------------------------------------------
// helpers

/// A `2.25.<decimal>` UID (PS3.5 B.2) whose 128-bit number is a fixed function of
/// `parts`. The number is never 0, so it never has a leading zero.
fn uid_2_25(parts: &[u64]) -> String {
    let mut h = 0x243F_6A88_85A3_08D3u64 ^ parts.len() as u64;
    let mut mix = |x: u64| {
        h = splitmix64(h ^ x);
        h
    };
    for &p in parts {
        mix(p);
    }
    let hi = mix(0x5EED);
    let lo = mix(0xD1CE);
    let n = ((u128::from(hi) << 64) | u128::from(lo)).max(1);
    format!("2.25.{n}")
}

fn splitmix64(x: u64) -> u64 {
    let mut z = x.wrapping_add(0x9E37_79B9_7F4A_7C15);
    z = (z ^ (z >> 30)).wrapping_mul(0xBF58_476D_1CE4_E5B9);
    z = (z ^ (z >> 27)).wrapping_mul(0x94D0_49BB_1331_11EB);
    z ^ (z >> 31)
}

/// File meta UIDs are written as stored, so they are padded here to even length.
fn pad_uid(uid: &str) -> String {
    let mut s = uid.to_string();
    if s.len() % 2 == 1 {
        s.push('\0');
    }
    s
}
