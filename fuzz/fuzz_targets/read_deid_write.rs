//! Fuzz target: arbitrary bytes as an input file -> read -> de-identify (dataset and
//! the elements after Pixel Data) -> build the file meta group -> write Part 10 ->
//! read the output back.
//!
//! Any panic, hang or runaway allocation in that path is a finding. So is an output
//! we wrote but cannot read back, and a private element that survives the basic
//! profile (whose default removes every private element at every depth).
//!
//! The input goes to one file per process (libFuzzer runs iterations one after the
//! other), under `$FUZZ_SCRATCH` when set (fuzz/run.sh points it at a temporary
//! directory it removes), else /dev/shm, else the system temporary directory.

#![no_main]

use dicom_core::Tag;
use dicom_core::value::Value;
use dicom_deid::deid::{Engine, Key, Pseudonymizer};
use dicom_deid::io::read::{Classified, read};
use dicom_deid::io::write::{build_meta, write_part10};
use dicom_deid::profile::{Action, CompiledProfile};
use dicom_object::InMemDicomObject;
use libfuzzer_sys::fuzz_target;
use std::path::PathBuf;
use std::sync::OnceLock;

const PIXEL_DATA: u32 = 0x7FE0_0010;
const SOP_CLASS_UID: Tag = Tag(0x0008, 0x0016);
const SOP_INSTANCE_UID: Tag = Tag(0x0008, 0x0018);

/// Options that switch on the date-shifting and text-cleaning paths of the engine.
const OPTIONS: [&str; 4] = [
    "retain-long-modified-dates",
    "clean-descriptors",
    "clean-structured-content",
    "clean-graphics",
];

/// Ages over 89 capped, patient characteristics and safe private attributes kept.
const HIPAA: &str = "extends: basic\nname: hipaa\nhipaa-ages: true\n\
    options: [retain-patient-characteristics, retain-safe-private]\n";

struct Setup {
    basic: CompiledProfile,
    /// `basic` with [`OPTIONS`], and [`HIPAA`]: applied to copies of the dataset only.
    extra: Vec<CompiledProfile>,
    key: Key,
    input: PathBuf,
    out_dir: PathBuf,
}

/// Panics that src/ deliberately catches with `catch_unwind`: dicom-parser 0.10.1
/// `expect`s inside its lazy reader on some malformed input, and `io::read::scan`
/// turns that into a clean failure.
fn caught_by_src(info: &std::panic::PanicHookInfo<'_>) -> bool {
    info.location()
        .is_some_and(|l| l.file().contains("dicom-parser") && l.file().ends_with("lazy_read.rs"))
}

/// libfuzzer-sys's panic hook aborts on every panic, even one that is caught. Let
/// the panics src/ catches unwind quietly; every other panic still aborts with its
/// message and stack. A panic that nothing catches reaches libfuzzer-sys's own
/// `catch_unwind` around the target, which aborts too: it is never missed.
fn install_panic_hook() {
    let fuzzer_hook = std::panic::take_hook();
    std::panic::set_hook(Box::new(move |info| {
        if !caught_by_src(info) {
            fuzzer_hook(info);
        }
    }));
}

fn setup() -> &'static Setup {
    static SETUP: OnceLock<Setup> = OnceLock::new();
    SETUP.get_or_init(|| {
        install_panic_hook();
        let basic = dicom_deid::profile::load("basic").expect("built-in profile compiles");
        let options: Vec<String> = OPTIONS.iter().map(|s| s.to_string()).collect();
        let extra = [
            dicom_deid::profile::compile::load_with_options("basic", &options),
            dicom_deid::profile::compile::compile_str("hipaa.yaml", HIPAA),
        ]
        .into_iter()
        .map(|p| p.expect("fuzz profile compiles"))
        .collect();
        let root = std::env::var_os("FUZZ_SCRATCH")
            .map(PathBuf::from)
            .or_else(|| {
                let shm = PathBuf::from("/dev/shm");
                shm.is_dir().then_some(shm)
            })
            .unwrap_or_else(std::env::temp_dir)
            .join(format!("dicom-deid-fuzz-{}", std::process::id()));
        let out_dir = root.join("out");
        std::fs::create_dir_all(&out_dir).expect("scratch directory");
        let key = fixed_key(&root);
        Setup {
            basic,
            extra,
            key,
            input: root.join("input.dcm"),
            out_dir,
        }
    })
}

/// A constant key, so that a run with a fixed `-seed` takes the same paths every time
/// (UIDs, pseudonyms and date offsets all derive from the key). Loaded the way the CLI
/// loads one: from an owner-only file.
fn fixed_key(dir: &std::path::Path) -> Key {
    let path = dir.join("fuzz.key");
    let mut f = std::fs::OpenOptions::new();
    f.write(true).create(true).truncate(true);
    #[cfg(unix)]
    {
        use std::os::unix::fs::OpenOptionsExt;
        f.mode(0o600);
    }
    let mut file = f.open(&path).expect("key file");
    std::io::Write::write_all(
        &mut file,
        b"dicom-deid fuzzing key, not a secret 0123456789",
    )
    .expect("key file");
    Key::from_file(&path).expect("fuzz key")
}

/// Panics (a finding) when a private element or private creator is left at any depth.
fn assert_no_private(obj: &InMemDicomObject, path: &str) {
    for e in obj.iter() {
        let tag = e.header().tag;
        assert!(
            tag.0 % 2 == 0,
            "private element {tag} left in the output at {path}"
        );
        if let Value::Sequence(seq) = e.value() {
            for (i, item) in seq.items().iter().enumerate() {
                assert_no_private(item, &format!("{path}/{tag}[{i}]"));
            }
        }
    }
}

fn fill_sop_identity(dataset: &mut InMemDicomObject, meta: &dicom_object::FileMetaTable) {
    use dicom_core::{DataElement, PrimitiveValue, VR};
    for (tag, value) in [
        (SOP_CLASS_UID, meta.media_storage_sop_class_uid()),
        (SOP_INSTANCE_UID, meta.media_storage_sop_instance_uid()),
    ] {
        if dataset.get(tag).is_none() {
            dataset.put(DataElement::new(tag, VR::UI, PrimitiveValue::from(value)));
        }
    }
}

fuzz_target!(|data: &[u8]| {
    let s = setup();
    std::fs::write(&s.input, data).expect("write the fuzz input");

    // Classification and read: any Err is a clean failure, fine.
    let Ok(Classified::Dicom(mut src)) = read(&s.input) else {
        return;
    };

    for profile in &s.extra {
        let engine = Engine::new(profile, Pseudonymizer::new(&s.key));
        let mut copy = src.header.clone();
        let _ = engine.apply(&mut copy);
    }

    // The path `dicom-deid run` takes (src/run.rs, process_file).
    let engine = Engine::new(&s.basic, Pseudonymizer::new(&s.key));
    if engine.apply(&mut src.header).is_err() {
        return;
    }
    if let Some(mut trailing) = src.trailing.take() {
        if engine.apply_trailing(&mut trailing).is_err() {
            return;
        }
        if trailing.tags().next().is_some() {
            src.trailing = Some(trailing);
        }
    }
    if src.pixel.is_some() && *s.basic.decide(PIXEL_DATA, None).action() != Action::Keep {
        src.pixel = None;
    }
    let pseudo = engine.pseudonymizer();
    let Ok(meta) = build_meta(&src.header, src.meta.as_ref(), src.ts.uid(), |u| {
        pseudo.uid(u)
    }) else {
        return;
    };
    fill_sop_identity(&mut src.header, &meta);
    let dest = s.out_dir.join("output.dcm");
    if write_part10(&dest, &s.input, &meta, *src).is_err() {
        return;
    }

    // What we wrote must read back, as a DICOM file, without private elements.
    match read(&dest) {
        Ok(Classified::Dicom(back)) => {
            assert_no_private(&back.header, "");
            if let Some(t) = &back.trailing {
                assert_no_private(t, "(trailing)");
            }
        }
        Ok(Classified::Dicomdir) => panic!("our output reads back as a DICOMDIR"),
        Ok(Classified::NotDicom) => panic!("our output reads back as not DICOM"),
        Err(e) => panic!("our output does not read back: {e}"),
    }
});
