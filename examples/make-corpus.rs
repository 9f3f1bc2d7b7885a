//! Builds synthetic DICOM inputs for the benchmarks in `benches/`.
//!
//! Usage:
//!   cargo run --release --example make-corpus -- bigframe <OUT_FILE> <MiB>
//!   cargo run --release --example make-corpus -- tree <OUT_DIR> <N> [--seed S] [--samples DIR]
//!
//! `bigframe` writes one native multi-frame RT Dose file (explicit VR little endian,
//! 512x512 frames of 16-bit pixels, 0.5 MiB each) whose Pixel Data is <MiB> MiB.
//! The header comes from testdata/dicom/rtdose_multiframe.dcm; the pixel bytes are a
//! deterministic pattern streamed to disk one frame at a time. On success it prints
//! one line, `pixel_data_offset=<bytes> pixel_data_length=<bytes> file_size=<bytes>`,
//! where the offset is that of the Pixel Data element header (tag, VR, length).
//!
//! `tree` copies the readable samples of testdata/dicom/ (or of `--samples DIR`:
//! those that carry a SOP Instance UID and survive a write/read round trip; the
//! others are named on stderr and skipped) into N files laid out as
//! OUT_DIR/pNNN/sNNN/iNNNNN.dcm: 10 patients (pNNN) x 3 studies x 4 series (sNNN
//! numbers the 12 series of a patient), file i in series i mod 120, samples taken in
//! turn. Each file gets a made-up PatientName, PatientID and Study, Series and SOP
//! Instance UIDs (`2.25.<decimal>`), all derived from the seed (default 1) and the
//! indices; everything else is kept. The output depends only on the seed, N and the
//! samples. Files are written in parallel with rayon.

use dicom_core::ops::{ApplyOp, AttributeAction, AttributeOp};
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
  make-corpus tree <OUT_DIR> <N> [--seed S] [--samples DIR]";

const EXPLICIT_VR_LE: &str = "1.2.840.10008.1.2.1";
const SAMPLES_DIR: &str = concat!(env!("CARGO_MANIFEST_DIR"), "/testdata/dicom");
const BIGFRAME_TEMPLATE: &str = "rtdose_multiframe.dcm";

/// Frame geometry of `bigframe`: 512 x 512 pixels of 16 bits = 0.5 MiB per frame.
const FRAME_ROWS: u16 = 512;
const FRAME_COLS: u16 = 512;
const FRAME_BYTES: u64 = FRAME_ROWS as u64 * FRAME_COLS as u64 * 2;

/// Shape of the `tree` corpus: files are spread over this many patients, each with
/// this many studies of this many series.
const PATIENTS: u64 = 10;
const STUDIES_PER_PATIENT: u64 = 3;
const SERIES_PER_STUDY: u64 = 4;

type Result<T> = std::result::Result<T, String>;

fn main() -> ExitCode {
    let args: Vec<String> = std::env::args().skip(1).collect();
    let result = match args.first().map(String::as_str) {
        Some("bigframe") => bigframe_cmd(&args[1..]),
        Some("tree") => tree_cmd(&args[1..]),
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
    let template = Path::new(SAMPLES_DIR).join(BIGFRAME_TEMPLATE);
    let mut obj = open_file(&template).map_err(|e| format!("{}: {e}", template.display()))?;

    // Pixel Data must be the last element: drop it and anything after it.
    let tail: Vec<Tag> = obj
        .tags()
        .filter(|t| *t >= tags::FLOAT_PIXEL_DATA)
        .collect();
    for t in tail {
        obj.remove_element(t);
    }

    let n = frames as usize;
    let put_us = |obj: &mut InMemDicomObject, tag, v: u16| {
        obj.put(DataElement::new(tag, VR::US, PrimitiveValue::from(v)));
    };
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
    let sop_uid = uid_2_25(&[0xB16F_0A3E, frames]);
    obj.put_str(tags::SOP_INSTANCE_UID, VR::UI, sop_uid.clone());
    // The sample refers to its RT Plan with an invalid UID (a component with a
    // leading zero); give the reference a valid one so strict readers stay quiet.
    obj.apply(AttributeOp::new(
        (
            tags::REFERENCED_RT_PLAN_SEQUENCE,
            0,
            tags::REFERENCED_SOP_INSTANCE_UID,
        ),
        AttributeAction::ReplaceStr(uid_2_25(&[0xB16F_0A3E, frames, 1]).into()),
    ))
    .map_err(|e| format!("cannot replace the RT Plan reference: {e}"))?;
    obj.update_meta(|m| {
        m.transfer_syntax = pad_uid(EXPLICIT_VR_LE);
        m.media_storage_sop_instance_uid = pad_uid(&sop_uid);
    });

    let mut header = Vec::with_capacity(64 * 1024);
    obj.write_all(&mut header)
        .map_err(|e| format!("cannot encode the header: {e}"))?;

    let file = File::create(out).map_err(|e| format!("{}: {e}", out.display()))?;
    let mut w = BufWriter::with_capacity(1 << 20, file);
    let werr = |e: std::io::Error| format!("{}: {e}", out.display());
    w.write_all(&header).map_err(werr)?;
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
    file.sync_all().map_err(werr)?;
    let size = file.metadata().map_err(werr)?.len();
    Ok((header.len() as u64, length, size))
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

// ---------------------------------------------------------------------------
// tree

fn tree_cmd(args: &[String]) -> Result<()> {
    let mut positional = Vec::new();
    let mut seed: u64 = 1;
    let mut samples_dir = PathBuf::from(SAMPLES_DIR);
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
        } else if a.starts_with("--") {
            return Err(format!("unknown option {a}\n{USAGE}"));
        } else {
            positional.push(a);
        }
    }
    let [out, n] = positional[..] else {
        return Err(format!(
            "tree takes <OUT_DIR> <N> [--seed S] [--samples DIR]\n{USAGE}"
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
    let out = Path::new(out);
    let plan: Vec<Planned> = (0..n)
        .map(|i| plan_file(out, seed, i, samples.len()))
        .collect();
    let mut dirs: Vec<&Path> = plan.iter().filter_map(|p| p.path.parent()).collect();
    dirs.sort();
    dirs.dedup();
    for d in dirs {
        std::fs::create_dir_all(d).map_err(|e| format!("{}: {e}", d.display()))?;
    }
    let bytes: u64 = plan
        .par_iter()
        .map(|p| write_tree_file(&samples[p.sample].1, p))
        .collect::<Result<Vec<u64>>>()?
        .iter()
        .sum();
    eprintln!(
        "wrote {n} files ({bytes} bytes) from {} samples to {} (seed {seed})",
        samples.len(),
        out.display()
    );
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

struct Planned {
    path: PathBuf,
    sample: usize,
    patient_name: String,
    patient_id: String,
    study_uid: String,
    series_uid: String,
    sop_uid: String,
}

/// File `i` goes to series `i mod (all series)`, so every series fills evenly, and
/// takes the samples in turn (offset by the seed) so each sample is equally common.
fn plan_file(out: &Path, seed: u64, i: u64, n_samples: usize) -> Planned {
    let series_total = PATIENTS * STUDIES_PER_PATIENT * SERIES_PER_STUDY;
    let s = i % series_total;
    let patient = s / (STUDIES_PER_PATIENT * SERIES_PER_STUDY);
    let study = (s / SERIES_PER_STUDY) % STUDIES_PER_PATIENT;
    let series_in_patient = s % (STUDIES_PER_PATIENT * SERIES_PER_STUDY);
    let sample = ((i + seed) % n_samples as u64) as usize;
    Planned {
        path: out
            .join(format!("p{patient:03}"))
            .join(format!("s{series_in_patient:03}"))
            .join(format!("i{i:05}.dcm")),
        sample,
        patient_name: format!("Synthetic^Patient{patient:03}^Seed{seed}"),
        patient_id: format!("SYN-{seed}-{patient:03}"),
        study_uid: uid_2_25(&[seed, 1, patient, study]),
        series_uid: uid_2_25(&[seed, 2, patient, s]),
        sop_uid: uid_2_25(&[seed, 3, i]),
    }
}

fn write_tree_file(template: &DefaultDicomObject, p: &Planned) -> Result<u64> {
    let mut obj = template.clone();
    obj.put_str(tags::PATIENT_NAME, VR::PN, p.patient_name.as_str());
    obj.put_str(tags::PATIENT_ID, VR::LO, p.patient_id.as_str());
    obj.put_str(tags::STUDY_INSTANCE_UID, VR::UI, p.study_uid.as_str());
    obj.put_str(tags::SERIES_INSTANCE_UID, VR::UI, p.series_uid.as_str());
    obj.put_str(tags::SOP_INSTANCE_UID, VR::UI, p.sop_uid.as_str());
    obj.update_meta(|m| m.media_storage_sop_instance_uid = pad_uid(&p.sop_uid));
    obj.write_to_file(&p.path)
        .map_err(|e| format!("{}: {e}", p.path.display()))?;
    std::fs::metadata(&p.path)
        .map(|m| m.len())
        .map_err(|e| format!("{}: {e}", p.path.display()))
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
