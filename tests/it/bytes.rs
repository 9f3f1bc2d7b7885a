//! The bytes we write: every output reads back in our own reader (and in pydicom
//! and dcmtk where the test says so), whatever odd encoding the input had.
//! Issue 11 items D.16, E.18 and E.20.

use crate::common::*;

use dicom_core::{DataElement, PrimitiveValue, Tag, VR};
use dicom_deid::deid::{Engine, Key, Pseudonymizer};
use dicom_deid::io::read::{Classified, read, read_input};
use dicom_deid::io::source::MemoryInput;
use dicom_deid::pipeline::{Plan, Processed, process};
use dicom_deid::profile::compile::{CompiledProfile, compile_str};
use dicom_encoding::TransferSyntax;
use dicom_object::{FileMetaTableBuilder, InMemDicomObject};
use dicom_transfer_syntax_registry::entries::{
    EXPLICIT_VR_LITTLE_ENDIAN, IMPLICIT_VR_LITTLE_ENDIAN,
};
use std::path::{Path, PathBuf};
use std::process::Command;

fn repo(p: &str) -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR")).join(p)
}

/// Every file under `dir`, sorted.
fn files_under(dir: &Path) -> Vec<PathBuf> {
    let mut files: Vec<PathBuf> = walkdir::WalkDir::new(dir)
        .into_iter()
        .filter_map(Result::ok)
        .filter(|e| e.file_type().is_file())
        .map(|e| e.into_path())
        .collect();
    files.sort();
    files
}

/// Runs the real binary on `input` (a folder) with a mirror layout; returns the
/// report lines and the process output.
fn run_on(
    env: &Env,
    input: &Path,
    out: &str,
    key: &Path,
    extra: &[&dyn AsRef<std::ffi::OsStr>],
) -> (std::process::Output, Vec<serde_json::Value>) {
    let out = env.path(out);
    let rep = env.path(&format!(
        "{}.jsonl",
        out.file_name().unwrap().to_string_lossy()
    ));
    let mut args: Vec<&dyn AsRef<std::ffi::OsStr>> = vec![
        &"run",
        &input,
        &"--out",
        &out,
        &"--key-file",
        &key,
        &"--report",
        &rep,
        &"--layout",
        &"mirror",
    ];
    args.extend_from_slice(extra);
    let o = run(&args);
    let (lines, _) = report(&rep);
    (o, lines)
}

// ---------------------------------------------------------------------------
// D.16: Pixel Data with a VR whose length field is 2 bytes
// ---------------------------------------------------------------------------

/// `fuzz/regressions/pixel-data-short-vr.bin`: a dataset whose only element is
/// Pixel Data tagged `US` (8-byte explicit VR header). The reader assumed a 12-byte
/// header, so the copied range began 4 bytes early, inside the file meta group; the
/// run said `ok` and wrote a file that nothing, dicom-deid included, could read.
/// The same file with Pixel Data tagged `SS` and `FL` goes the same way.
#[test]
fn pixel_data_with_a_short_vr_is_copied_with_its_own_header_and_reads_back() {
    let env = Env::new();
    let key = env.key("key", 3);
    let input = env.path("input");
    std::fs::create_dir_all(&input).unwrap();
    let original = std::fs::read(repo("fuzz/regressions/pixel-data-short-vr.bin")).unwrap();
    // The element is the file's last 12 bytes: tag, VR, 2-byte length, 4-byte value.
    let element_at = original.len() - 12;
    assert_eq!(&original[element_at + 4..element_at + 6], b"US");
    for vr in ["US", "SS", "FL"] {
        let mut bytes = original.clone();
        bytes[element_at + 4..element_at + 6].copy_from_slice(vr.as_bytes());
        std::fs::write(input.join(format!("{vr}.dcm")), &bytes).unwrap();
    }
    let (o, lines) = run_on(&env, &input, "out", &key, &[]);
    assert_eq!(
        o.status.code(),
        Some(0),
        "{}",
        String::from_utf8_lossy(&o.stderr)
    );
    assert_eq!(lines.len(), 3);
    for line in &lines {
        assert_eq!(line["status"], "ok", "{line}");
        let input = std::fs::read(line["input"].as_str().unwrap()).unwrap();
        let element = &input[element_at..];
        let output = PathBuf::from(line["output"].as_str().unwrap());
        // Pixel Data went through byte for byte with its own 8-byte header.
        let written = std::fs::read(&output).unwrap();
        assert!(
            written.ends_with(element),
            "{line}: Pixel Data not copied with its own header"
        );
        match read(&output) {
            Ok(Classified::Dicom(src)) => {
                assert_eq!(src.dropped_trailing_bytes, 0);
                let p = src.pixel.expect("Pixel Data found on re-read");
                assert_eq!(&written[p.start as usize..p.end as usize], element);
            }
            Ok(_) => panic!("{line}: output does not read back as DICOM"),
            Err(e) => panic!("{line}: output does not read back: {e}"),
        }
    }
    // And the binary takes its own outputs as inputs.
    let (o, lines) = run_on(&env, &env.path("out"), "out2", &key, &[]);
    assert_eq!(
        o.status.code(),
        Some(0),
        "{}",
        String::from_utf8_lossy(&o.stderr)
    );
    let ok = lines.iter().filter(|l| l["status"] == "ok").count();
    assert_eq!(ok, 3, "{lines:?}");
}

fn key() -> &'static Key {
    static KEY: std::sync::OnceLock<Key> = std::sync::OnceLock::new();
    KEY.get_or_init(|| Key::random().expect("random key"))
}

/// The basic profile, and the basic profile with quarantine rules as warnings (so
/// secondary captures, burned-in and encapsulated documents are written too).
fn profiles() -> &'static [CompiledProfile] {
    static P: std::sync::OnceLock<Vec<CompiledProfile>> = std::sync::OnceLock::new();
    P.get_or_init(|| {
        let lenient = "extends: basic\nname: lenient\nquarantine: {burned-in-annotation: warn, burned-in-unknown: warn, encapsulated-documents: warn}\n";
        vec![
            dicom_deid::profile::load("basic").expect("basic compiles"),
            compile_str("lenient.yaml", lenient).expect("lenient profile compiles"),
        ]
    })
}

/// Every output reads back: for each input of the fuzz corpus and of testdata/ that
/// the pipeline de-identifies, the encoded object is read again by our reader as a
/// DICOM file, with nothing after Pixel Data left unparsed.
#[test]
fn every_output_reads_back_in_our_reader() {
    let mut inputs: Vec<PathBuf> = files_under(&repo("fuzz/regressions"))
        .into_iter()
        .filter(|p| p.extension().is_some_and(|x| x == "bin"))
        .collect();
    inputs.extend(files_under(&repo("testdata")));
    assert!(
        inputs.len() > 40,
        "corpus not found: {} files",
        inputs.len()
    );
    let mut written = 0;
    let mut failures = Vec::new();
    for path in &inputs {
        let bytes = std::fs::read(path).unwrap();
        for profile in profiles() {
            let plan = Plan::new(profile, Engine::new(profile, Pseudonymizer::new(key())));
            let (input, stamp) = MemoryInput::open(bytes.clone());
            let d = match process(input, stamp, &plan) {
                Ok(Processed::Deidentified(d)) => d,
                _ => continue,
            };
            let mut out = Vec::new();
            if d.object.encode(&mut out).is_err() {
                // Refusing to write is a failure of that file, reported as such.
                continue;
            }
            written += 1;
            let (again, stamp) = MemoryInput::open(out);
            match read_input(again, stamp) {
                Ok(Classified::Dicom(src)) if src.dropped_trailing_bytes == 0 => {}
                Ok(Classified::Dicom(src)) => failures.push(format!(
                    "{} ({}): {} bytes after Pixel Data do not parse",
                    path.display(),
                    profile.name,
                    src.dropped_trailing_bytes
                )),
                Ok(_) => failures.push(format!(
                    "{} ({}): output is not DICOM to our reader",
                    path.display(),
                    profile.name
                )),
                Err(e) => failures.push(format!(
                    "{} ({}): output does not read back: {e}",
                    path.display(),
                    profile.name
                )),
            }
        }
    }
    assert!(written > 40, "only {written} outputs written");
    assert!(failures.is_empty(), "{}", failures.join("\n"));
}

// ---------------------------------------------------------------------------
// E.18: a value longer than a 2-byte length field allows
// ---------------------------------------------------------------------------

const CONTOUR_DATA: Tag = Tag(0x3006, 0x0050);

/// 4,500 contour points (13,500 DS values, about 100 KB), on a circle.
fn long_contour() -> Vec<String> {
    let n = 4500;
    (0..n)
        .flat_map(|i| {
            let a = i as f64 * std::f64::consts::TAU / n as f64;
            [
                format!("{:.3}", 150.0 * a.cos()),
                format!("{:.3}", 150.0 * a.sin()),
                "-200.0".to_string(),
            ]
        })
        .collect()
}

/// Applies `f` to the first Contour Sequence item of the first ROI Contour item.
fn with_first_contour(obj: &mut InMemDicomObject, f: impl FnOnce(&mut InMemDicomObject)) {
    let mut f = Some(f);
    let found = obj.update_value(Tag(0x3006, 0x0039), |roi| {
        let roi = &mut roi.items_mut().expect("ROI Contour Sequence")[0];
        roi.update_value(Tag(0x3006, 0x0040), |contours| {
            let contour = &mut contours.items_mut().expect("Contour Sequence")[0];
            (f.take().unwrap())(contour);
        });
    });
    assert!(found && f.is_none(), "no contour in the sample");
}

fn first_contour_data(obj: &InMemDicomObject) -> (VR, Vec<String>) {
    let roi = &obj.get(Tag(0x3006, 0x0039)).unwrap().items().unwrap()[0];
    let contour = &roi.get(Tag(0x3006, 0x0040)).unwrap().items().unwrap()[0];
    let e = contour.get(CONTOUR_DATA).expect("Contour Data kept");
    let values = e
        .to_multi_str()
        .unwrap()
        .iter()
        .map(|s| s.trim().to_string())
        .collect();
    (e.vr(), values)
}

/// A Part 10 file: `dataset` encoded in `dataset_ts` behind a meta group that
/// declares `declared_ts`.
fn part10(dataset: &InMemDicomObject, declared_ts: &str, dataset_ts: &TransferSyntax) -> Vec<u8> {
    let class = dataset.get(Tag(0x0008, 0x0016)).unwrap().to_str().unwrap();
    let instance = dataset.get(Tag(0x0008, 0x0018)).unwrap().to_str().unwrap();
    let meta = FileMetaTableBuilder::new()
        .media_storage_sop_class_uid(class.trim_end_matches('\0'))
        .media_storage_sop_instance_uid(instance.trim_end_matches('\0'))
        .transfer_syntax(declared_ts)
        .build()
        .unwrap();
    let mut bytes = vec![0u8; 128];
    bytes.extend_from_slice(b"DICM");
    meta.write(&mut bytes).unwrap();
    dataset
        .write_dataset_with_ts(&mut bytes, dataset_ts)
        .unwrap();
    bytes
}

/// The real RTSTRUCT sample (testdata/nometa/rtstruct.dcm, implicit VR) with its
/// first contour lengthened past 64 KiB, in the two ways such a file arrives in
/// explicit VR: (a) an implicit VR dataset behind a meta group declaring explicit VR
/// (read as implicit, written explicit), (b) explicit VR with Contour Data stored
/// as UN, as pydicom writes it. Both failed: "header too long" for a 16-bit length.
/// The output writes Contour Data as UN (PS3.5 6.2.2), and our reader, pydicom and
/// dcmdump all read the same 13,500 values back.
#[test]
fn a_value_longer_than_a_16_bit_length_is_written_as_un_and_reads_back() {
    let env = Env::new();
    let key = env.key("key", 4);
    let implicit = IMPLICIT_VR_LITTLE_ENDIAN.erased();
    let explicit = EXPLICIT_VR_LITTLE_ENDIAN.erased();
    let sample = std::fs::read(testdata("nometa/rtstruct.dcm")).unwrap();
    let mut obj = InMemDicomObject::read_dataset_with_ts(&sample[..], &implicit).unwrap();
    let values = long_contour();
    let joined = values.join("\\");
    assert!(joined.len() > 0xFFFF);
    with_first_contour(&mut obj, |c| {
        c.put(DataElement::new(
            CONTOUR_DATA,
            VR::DS,
            PrimitiveValue::Strs(values.iter().cloned().collect()),
        ));
        c.put(DataElement::new(
            Tag(0x3006, 0x0046),
            VR::IS,
            PrimitiveValue::from((values.len() / 3).to_string()),
        ));
    });
    let instance = obj.get(Tag(0x0008, 0x0018)).unwrap().to_str().unwrap();
    let instance = instance.trim_end_matches('\0').to_string();
    let input = env.path("input");
    std::fs::create_dir_all(&input).unwrap();
    // (a) implicit VR dataset, meta says explicit VR little endian.
    obj.put(DataElement::new(
        Tag(0x0008, 0x0018),
        VR::UI,
        PrimitiveValue::from(format!("{instance}.1")),
    ));
    std::fs::write(
        input.join("a_implicit.dcm"),
        part10(&obj, "1.2.840.10008.1.2.1", &implicit),
    )
    .unwrap();
    // (b) explicit VR, Contour Data as UN (4-byte length).
    obj.put(DataElement::new(
        Tag(0x0008, 0x0018),
        VR::UI,
        PrimitiveValue::from(format!("{instance}.2")),
    ));
    with_first_contour(&mut obj, |c| {
        let mut bytes = joined.clone().into_bytes();
        if bytes.len() % 2 == 1 {
            bytes.push(b' ');
        }
        c.put(DataElement::new(
            CONTOUR_DATA,
            VR::UN,
            PrimitiveValue::U8(bytes.into()),
        ));
    });
    std::fs::write(
        input.join("b_explicit_un.dcm"),
        part10(&obj, "1.2.840.10008.1.2.1", &explicit),
    )
    .unwrap();

    let (o, lines) = run_on(&env, &input, "out", &key, &[]);
    assert_eq!(
        o.status.code(),
        Some(0),
        "{}",
        String::from_utf8_lossy(&o.stderr)
    );
    let mut outputs = Vec::new();
    for line in &lines {
        assert_eq!(line["status"], "ok", "{line}");
        let output = PathBuf::from(line["output"].as_str().unwrap());
        // Written as UN: tag (3006,0050) little endian, then "UN".
        let written = std::fs::read(&output).unwrap();
        assert!(
            written.windows(6).any(|w| w == b"\x06\x30\x50\x00UN"),
            "{line}: Contour Data not written as UN"
        );
        // Our reader gives it its dictionary VR back, values intact.
        let Ok(Classified::Dicom(src)) = read(&output) else {
            panic!("{line}: output does not read back");
        };
        assert_eq!(first_contour_data(&src.header), (VR::DS, values.clone()));
        outputs.push(output);
    }
    assert_eq!(outputs.len(), 2);

    if !external_tools(true) {
        return;
    }
    for out in &outputs {
        let o = Command::new("dcmdump")
            .args(["-q", "-E", "+uc", "+L"])
            .arg(out)
            .output()
            .unwrap();
        assert!(
            o.status.success() && o.stderr.is_empty(),
            "dcmdump {}: {}",
            out.display(),
            String::from_utf8_lossy(&o.stderr)
        );
        let dump = String::from_utf8_lossy(&o.stdout);
        let line = dump
            .lines()
            .find(|l| l.trim_start().starts_with("(3006,0050)") && l.len() > 0xFFFF)
            .unwrap_or_else(|| panic!("dcmdump shows no long Contour Data for {}", out.display()));
        assert!(
            line.contains(&format!("DS [{joined}]")),
            "dcmdump {}: Contour Data differs",
            out.display()
        );
    }
    let script = r#"
import sys, pydicom, warnings
warnings.simplefilter('error')
for p in sys.argv[1:]:
    ds = pydicom.dcmread(p)
    for e in ds.iterall():
        _ = e.value
    e = ds.ROIContourSequence[0].ContourSequence[0]['ContourData']
    # pydicom keeps a known tag as UN when its value is too long for the
    # dictionary VR (as written); the bytes are the DS text.
    assert e.VR == 'UN', e.VR
    values = e.value.decode('ascii').rstrip(' ').split('\\')
    values = [str(pydicom.valuerep.DS(v)) for v in values]
    print('\\'.join(values))
"#;
    let o = Command::new("python3")
        .arg("-c")
        .arg(script)
        .args(&outputs)
        .output()
        .unwrap();
    assert!(
        o.status.success(),
        "pydicom: {}",
        String::from_utf8_lossy(&o.stderr)
    );
    let printed = String::from_utf8_lossy(&o.stdout);
    let got: Vec<&str> = printed.lines().collect();
    assert_eq!(got.len(), 2);
    for g in got {
        assert!(g == joined, "pydicom reads other Contour Data values");
    }
}

// ---------------------------------------------------------------------------
// E.20: SOP Class and Instance UIDs present but empty
// ---------------------------------------------------------------------------

/// A CT (testdata/derived/phi_nested.dcm) with (0008,0016) and (0008,0018) present
/// but zero length, its meta group intact. Before, the dataset kept them empty while
/// the meta got a remapped UID (meta and dataset disagreed), and the IOD-free rules
/// applied: Institution Name, Type 3 in the CT IOD, was emptied instead of removed.
/// Empty is now absent: the output is the one the intact file gives, byte for byte.
#[test]
fn empty_sop_uids_are_taken_from_the_meta_and_remapped_like_present_ones() {
    let env = Env::new();
    let key = env.key("key", 5);
    let sample = testdata("derived/phi_nested.dcm");
    let original = open(&sample);
    let meta = original.meta().clone();
    let class = meta.media_storage_sop_class_uid().trim_end_matches('\0');
    let instance = meta
        .media_storage_sop_instance_uid()
        .trim_end_matches('\0')
        .to_string();
    assert_eq!(class, "1.2.840.10008.5.1.4.1.1.2");
    assert!(original.get(Tag(0x0008, 0x0080)).is_some());
    let mut dataset: InMemDicomObject = original.into_inner();
    for tag in [Tag(0x0008, 0x0016), Tag(0x0008, 0x0018)] {
        dataset.put(DataElement::new(tag, VR::UI, PrimitiveValue::Empty));
    }
    let mut bytes = vec![0u8; 128];
    bytes.extend_from_slice(b"DICM");
    meta.write(&mut bytes).unwrap();
    dataset
        .write_dataset_with_ts(&mut bytes, &EXPLICIT_VR_LITTLE_ENDIAN.erased())
        .unwrap();
    let emptied_in = env.path("emptied");
    std::fs::create_dir_all(&emptied_in).unwrap();
    std::fs::write(emptied_in.join("ct.dcm"), &bytes).unwrap();
    let intact_in = env.path("intact");
    std::fs::create_dir_all(&intact_in).unwrap();
    std::fs::copy(&sample, intact_in.join("ct.dcm")).unwrap();

    let mut outputs = Vec::new();
    for (input, out) in [(&intact_in, "out_intact"), (&emptied_in, "out_emptied")] {
        let (o, lines) = run_on(&env, input, out, &key, &[]);
        assert_eq!(
            o.status.code(),
            Some(0),
            "{}",
            String::from_utf8_lossy(&o.stderr)
        );
        assert_eq!(lines[0]["status"], "ok", "{}", lines[0]);
        outputs.push((
            PathBuf::from(lines[0]["output"].as_str().unwrap()),
            lines[0].clone(),
        ));
    }
    let (intact, emptied) = (open(&outputs[0].0), open(&outputs[1].0));
    let uid =
        |o: &dicom_object::DefaultDicomObject, t: u16| text(o.element(Tag(0x0008, t)).unwrap());
    // Meta and dataset agree, and carry what the intact file's output carries.
    assert_eq!(uid(&emptied, 0x0016), class);
    assert_eq!(
        emptied
            .meta()
            .media_storage_sop_class_uid()
            .trim_end_matches('\0'),
        class
    );
    let remapped = uid(&intact, 0x0018);
    assert_ne!(remapped, instance);
    assert_eq!(uid(&emptied, 0x0018), remapped);
    assert_eq!(
        emptied
            .meta()
            .media_storage_sop_instance_uid()
            .trim_end_matches('\0'),
        remapped
    );
    // The CT IOD's rules: Institution Name (X/Z/D) is Type 3 there, so it is
    // removed, not emptied; Referenced Image Sequence (X/Z/U*) is kept with its UIDs
    // remapped at every Type (item E.21), as in the intact file.
    assert!(emptied.get(Tag(0x0008, 0x0080)).is_none());
    assert!(intact.get(Tag(0x0008, 0x1140)).is_some());
    assert!(emptied.get(Tag(0x0008, 0x1140)).is_some());
    assert!(
        outputs[1].1["notes"]
            .to_string()
            .contains("taken from the file meta group"),
        "{}",
        outputs[1].1
    );
    // Nothing else differs.
    assert!(
        std::fs::read(&outputs[0].0).unwrap() == std::fs::read(&outputs[1].0).unwrap(),
        "the emptied file's output differs from the intact file's"
    );
}
