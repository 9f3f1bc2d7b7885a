//! Micro-benchmarks of the hot paths (criterion):
//!
//! - `profile/load_basic`: compiling the built-in Basic Profile;
//! - `apply/*`: de-identifying one dataset already in memory (a clone of it per
//!   iteration, made outside the timed part; `clone/*` times the clone alone):
//!   a small file, a typical CT slice header, a nested-PHI sample, and a large
//!   enhanced-MR-like dataset built here (a Per-Frame Functional Groups Sequence of
//!   2000 items with nested sequences, about 30,000 elements);
//! - `file/*`: reading one file (`io::read::read`), and the whole per-file path
//!   `dicom-deid run` takes (`pipeline::process` into the folder sink, in /dev/shm
//!   when it exists).
//!
//! Run: `cargo bench --bench engine -- --warm-up-time 1 --measurement-time 3`

use criterion::{BatchSize, Criterion, Throughput, criterion_group, criterion_main};
use dicom_core::value::DataSetSequence;
use dicom_core::{DataElement, Length, PrimitiveValue, Tag, VR};
use dicom_deid::deid::{Engine, Key, Pseudonymizer};
use dicom_deid::io::read::{Classified, Source, read};
use dicom_deid::io::source::open_file;
use dicom_deid::pipeline::{Plan, Processed, process};
use dicom_deid::store::Sink;
use dicom_deid::store::fs::FsSink;
use dicom_object::InMemDicomObject;
use std::hint::black_box;
use std::path::{Path, PathBuf};

const ROOT: &str = env!("CARGO_MANIFEST_DIR");

fn sample(rel: &str) -> PathBuf {
    Path::new(ROOT).join("testdata").join(rel)
}

fn load_source(path: &Path) -> Source {
    match read(path) {
        Ok(Classified::Dicom(src)) => *src,
        _ => panic!("{} is not a readable DICOM file", path.display()),
    }
}

/// A key file of 64 hex digits in a temporary directory (the key type has no public
/// constructor from bytes).
fn bench_key(dir: &Path) -> Key {
    let path = dir.join("key");
    std::fs::write(&path, "0123456789abcdef".repeat(4)).expect("write key");
    #[cfg(unix)]
    {
        use std::os::unix::fs::PermissionsExt;
        std::fs::set_permissions(&path, std::fs::Permissions::from_mode(0o600)).expect("chmod key");
    }
    Key::from_file(&path).expect("key")
}

fn str_el(tag: Tag, vr: VR, v: &str) -> DataElement<InMemDicomObject> {
    DataElement::new(tag, vr, PrimitiveValue::from(v))
}

fn seq_el(tag: Tag, items: Vec<InMemDicomObject>) -> DataElement<InMemDicomObject> {
    DataElement::new(tag, VR::SQ, DataSetSequence::new(items, Length::UNDEFINED))
}

/// An enhanced-MR-like dataset: PHI at the top level, a Shared and a Per-Frame
/// Functional Groups Sequence (`frames` items, each with five nested sequences), a
/// Referenced Image Sequence with UIDs, and a private block. No Pixel Data.
fn enhanced_mr(frames: usize) -> InMemDicomObject {
    let mut obj = InMemDicomObject::new_empty();
    for (tag, vr, v) in [
        (Tag(0x0008, 0x0005), VR::CS, "ISO_IR 100"),
        (Tag(0x0008, 0x0016), VR::UI, "1.2.840.10008.5.1.4.1.1.4.1"),
        (
            Tag(0x0008, 0x0018),
            VR::UI,
            "1.2.826.0.1.3680043.2.1125.1.1",
        ),
        (Tag(0x0008, 0x0020), VR::DA, "20240131"),
        (Tag(0x0008, 0x0030), VR::TM, "101500"),
        (Tag(0x0008, 0x0050), VR::SH, "ACC12345"),
        (Tag(0x0008, 0x0060), VR::CS, "MR"),
        (Tag(0x0008, 0x0080), VR::LO, "Saint Example Hospital"),
        (Tag(0x0008, 0x0090), VR::PN, "Referrer^Robert"),
        (Tag(0x0008, 0x1030), VR::LO, "MR BRAIN WITH CONTRAST"),
        (Tag(0x0008, 0x103E), VR::LO, "T1 MPRAGE SAG"),
        (Tag(0x0010, 0x0010), VR::PN, "Doe^Jane^Q"),
        (Tag(0x0010, 0x0020), VR::LO, "PID-0042-XYZ"),
        (Tag(0x0010, 0x0030), VR::DA, "19610704"),
        (Tag(0x0010, 0x0040), VR::CS, "F"),
        (Tag(0x0010, 0x1010), VR::AS, "062Y"),
        (Tag(0x0018, 0x0087), VR::DS, "3"),
        (
            Tag(0x0020, 0x000D),
            VR::UI,
            "1.2.826.0.1.3680043.2.1125.1.2",
        ),
        (
            Tag(0x0020, 0x000E),
            VR::UI,
            "1.2.826.0.1.3680043.2.1125.1.3",
        ),
        (Tag(0x0020, 0x0010), VR::SH, "STUDY7"),
        (
            Tag(0x0020, 0x0052),
            VR::UI,
            "1.2.826.0.1.3680043.2.1125.1.4",
        ),
        (Tag(0x0028, 0x0002), VR::US, "1"),
        (Tag(0x0029, 0x0010), VR::LO, "SIEMENS CSA HEADER"),
    ] {
        obj.put(str_el(tag, vr, v));
    }
    obj.put(DataElement::new(
        Tag(0x0028, 0x0008),
        VR::IS,
        PrimitiveValue::from(frames.to_string()),
    ));
    obj.put(DataElement::new(
        Tag(0x0029, 0x1010),
        VR::OB,
        PrimitiveValue::from(vec![0x5Au8; 512]),
    ));

    let frame_item = |i: usize| {
        let mut item = InMemDicomObject::new_empty();
        let mut content = InMemDicomObject::new_empty();
        content.put(DataElement::new(
            Tag(0x0020, 0x9157),
            VR::UL,
            PrimitiveValue::from([1u32, i as u32 + 1]),
        ));
        content.put(str_el(Tag(0x0018, 0x9151), VR::DT, "20240131101500.123456"));
        content.put(str_el(Tag(0x0018, 0x9074), VR::DT, "20240131101500.123456"));
        item.put(seq_el(Tag(0x0020, 0x9111), vec![content]));

        let mut position = InMemDicomObject::new_empty();
        position.put(DataElement::new(
            Tag(0x0020, 0x0032),
            VR::DS,
            PrimitiveValue::from(format!("-120.5\\-98.25\\{:.2}", i as f64 * 0.8)),
        ));
        item.put(seq_el(Tag(0x0020, 0x9113), vec![position]));

        let mut orientation = InMemDicomObject::new_empty();
        orientation.put(str_el(Tag(0x0020, 0x0037), VR::DS, "1\\0\\0\\0\\1\\0"));
        item.put(seq_el(Tag(0x0020, 0x9116), vec![orientation]));

        let mut voi = InMemDicomObject::new_empty();
        voi.put(str_el(Tag(0x0028, 0x1050), VR::DS, "600"));
        voi.put(str_el(Tag(0x0028, 0x1051), VR::DS, "1200"));
        item.put(seq_el(Tag(0x0028, 0x9132), vec![voi]));

        let mut derivation = InMemDicomObject::new_empty();
        let mut source = InMemDicomObject::new_empty();
        source.put(str_el(
            Tag(0x0008, 0x1150),
            VR::UI,
            "1.2.840.10008.5.1.4.1.1.4",
        ));
        source.put(DataElement::new(
            Tag(0x0008, 0x1155),
            VR::UI,
            PrimitiveValue::from(format!("1.2.826.0.1.3680043.2.1125.2.{i}")),
        ));
        derivation.put(seq_el(Tag(0x0008, 0x2112), vec![source]));
        item.put(seq_el(Tag(0x0008, 0x9215), vec![derivation]));
        item
    };
    obj.put(seq_el(
        Tag(0x5200, 0x9230),
        (0..frames).map(frame_item).collect(),
    ));

    let mut shared = InMemDicomObject::new_empty();
    let mut timing = InMemDicomObject::new_empty();
    timing.put(str_el(Tag(0x0018, 0x0080), VR::DS, "2300"));
    timing.put(str_el(Tag(0x0018, 0x0081), VR::DS, "2.98"));
    shared.put(seq_el(Tag(0x0018, 0x9112), vec![timing]));
    obj.put(seq_el(Tag(0x5200, 0x9229), vec![shared]));

    let refs = (0..frames.min(200))
        .map(|i| {
            let mut r = InMemDicomObject::new_empty();
            r.put(str_el(
                Tag(0x0008, 0x1150),
                VR::UI,
                "1.2.840.10008.5.1.4.1.1.4",
            ));
            r.put(DataElement::new(
                Tag(0x0008, 0x1155),
                VR::UI,
                PrimitiveValue::from(format!("1.2.826.0.1.3680043.2.1125.3.{i}")),
            ));
            r
        })
        .collect();
    obj.put(seq_el(Tag(0x0008, 0x1140), refs));
    obj
}

fn count_elements(obj: &InMemDicomObject) -> usize {
    obj.iter()
        .map(|e| {
            1 + e
                .items()
                .map_or(0, |items| items.iter().map(count_elements).sum())
        })
        .sum()
}

fn bench_profile(c: &mut Criterion) {
    c.bench_function("profile/load_basic", |b| {
        b.iter(|| dicom_deid::profile::load(black_box("basic")).expect("basic profile"))
    });
}

fn bench_apply(c: &mut Criterion) {
    let dir = tempfile::tempdir().expect("tempdir");
    let key = bench_key(dir.path());
    let profile = dicom_deid::profile::load("basic").expect("basic profile");
    let engine = Engine::new(&profile, Pseudonymizer::new(&key));

    let datasets = [
        (
            "small_sr",
            load_source(&sample("dicom/sr_comprehensive_nested.dcm")).header,
        ),
        (
            "ct",
            load_source(&sample("dicom/ct_explicit_le.dcm")).header,
        ),
        (
            "phi_nested",
            load_source(&sample("derived/phi_nested.dcm")).header,
        ),
        ("enhanced_mr_2000", enhanced_mr(2000)),
    ];
    let mut group = c.benchmark_group("apply");
    for (name, obj) in &datasets {
        eprintln!("apply/{name}: {} elements", count_elements(obj));
        group.throughput(Throughput::Elements(count_elements(obj) as u64));
        group.bench_function(*name, |b| {
            b.iter_batched(
                || obj.clone(),
                |mut o| {
                    engine.apply(&mut o).expect("apply");
                    o
                },
                BatchSize::SmallInput,
            )
        });
    }
    group.finish();

    let mut group = c.benchmark_group("clone");
    for (name, obj) in &datasets {
        group.bench_function(*name, |b| b.iter(|| black_box(obj).clone()));
    }
    group.finish();
}

fn bench_file(c: &mut Criterion) {
    // Outputs go to tmpfs when there is one, so the figures are not the disk's.
    let dir = if Path::new("/dev/shm").is_dir() {
        tempfile::tempdir_in("/dev/shm")
    } else {
        tempfile::tempdir()
    }
    .expect("tempdir");
    let key = bench_key(dir.path());
    let profile = dicom_deid::profile::load("basic").expect("basic profile");
    let plan = Plan::new(&profile, Engine::new(&profile, Pseudonymizer::new(&key)));
    let sink = FsSink::new(dir.path().to_path_buf(), "bench");
    let mut group = c.benchmark_group("file");
    for (name, rel) in [
        ("read/ct", "dicom/ct_explicit_le.dcm"),
        ("read/rtdose_multiframe", "dicom/rtdose_multiframe.dcm"),
    ] {
        let path = sample(rel);
        group.bench_function(name, |b| b.iter(|| read(black_box(&path)).expect("read")));
    }
    for (name, rel) in [
        ("read_deid_write/ct", "dicom/ct_explicit_le.dcm"),
        ("read_deid_write/phi_nested", "derived/phi_nested.dcm"),
        (
            "read_deid_write/rtdose_multiframe",
            "dicom/rtdose_multiframe.dcm",
        ),
    ] {
        let input = sample(rel);
        let dest = Path::new("out.dcm");
        group.bench_function(name, |b| {
            b.iter(|| {
                let (handle, stamp) = open_file(&input).expect("open");
                let Ok(Processed::Deidentified(d)) = process(handle, stamp, &plan) else {
                    panic!("process {}", input.display());
                };
                sink.put(dest, d.object).expect("write")
            })
        });
    }
    group.finish();
}

criterion_group!(benches, bench_profile, bench_apply, bench_file);
criterion_main!(benches);
