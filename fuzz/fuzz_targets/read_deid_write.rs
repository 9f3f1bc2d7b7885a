//! Fuzz target: arbitrary bytes as an input file, through the pipeline `dicom-deid
//! run` uses (`dicom_deid::pipeline::process`: one open, read, de-identify, file
//! meta) into the folder sink it uses, then the output read back.
//!
//! Any panic, hang or runaway allocation in that path is a finding. So is an output
//! we wrote but cannot read back, and a private element that survives the basic
//! profile (whose default removes every private element at every depth).
//!
//! The input goes to one file per process (libFuzzer runs iterations one after the
//! other), under `$FUZZ_SCRATCH` when set (fuzz/run.sh points it at a temporary
//! directory it removes), else /dev/shm, else the system temporary directory.

#![no_main]

use dicom_core::value::Value;
use dicom_deid::deid::{Engine, Key, Pseudonymizer};
use dicom_deid::io::emit;
use dicom_deid::io::encode::encode_with_dicom_rs;
use dicom_deid::io::read::{Classified, read, read_input};
use dicom_deid::io::source::{MemoryInput, open_file};
use dicom_deid::pipeline::{Plan, Processed, process};
use dicom_deid::profile::CompiledProfile;
use dicom_deid::store::Sink;
use dicom_deid::store::fs::FsSink;
use dicom_object::InMemDicomObject;
use libfuzzer_sys::fuzz_target;
use std::path::PathBuf;
use std::sync::OnceLock;

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
    /// `basic` with [`OPTIONS`], and [`HIPAA`]: run on the input held in memory.
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

/// The dataset encoder the pipeline uses (`io::emit`) writes what dicom-rs's writer
/// writes, byte for byte, for every dataset it does not decline.
fn assert_emit_matches_dicom_rs(data: &[u8]) {
    let (input, stamp) = MemoryInput::open(data.to_vec());
    let Ok(Classified::Dicom(src)) = read_input(input, stamp) else {
        return;
    };
    let big_endian = src.ts.uid() == "1.2.840.10008.1.2.2";
    for obj in std::iter::once(&src.header).chain(src.trailing.as_ref()) {
        let explicit = src.ts.uid() != "1.2.840.10008.1.2";
        let mut ours = Vec::new();
        let emitted = match big_endian {
            true => emit::dataset_big_endian(obj, &mut ours),
            false => emit::dataset(obj, explicit, &mut ours),
        };
        if emitted.is_err() {
            continue;
        }
        match encode_with_dicom_rs(obj.clone(), src.ts) {
            Ok(reference) => assert!(ours == reference, "io::emit and dicom-rs disagree"),
            Err(e) => panic!("io::emit wrote a dataset dicom-rs refuses: {e}"),
        }
    }
}

fuzz_target!(|data: &[u8]| {
    let s = setup();
    assert_emit_matches_dicom_rs(data);
    // The one-pass header parser (`io::parse`) reads every input as the general
    // reader does, or leaves it to it.
    if let Some(why) = dicom_deid::io::read::parsers_disagree(data) {
        panic!("io::parse and the general reader disagree: {why}");
    }

    for profile in &s.extra {
        let plan = Plan::new(profile, Engine::new(profile, Pseudonymizer::new(&s.key)));
        let (input, stamp) = MemoryInput::open(data.to_vec());
        if let Ok(Processed::Deidentified(d)) = process(input, stamp, &plan) {
            let mut out = Vec::new();
            let _ = d.object.encode(&mut out);
        }
    }

    // The path `dicom-deid run` takes: a file opened once, the pipeline, the sink.
    std::fs::write(&s.input, data).expect("write the fuzz input");
    let plan = Plan::new(&s.basic, Engine::new(&s.basic, Pseudonymizer::new(&s.key)));
    let (input, stamp) = open_file(&s.input).expect("open the fuzz input");
    // Classification and read: any Err is a clean failure, fine.
    let Ok(Processed::Deidentified(d)) = process(input, stamp, &plan) else {
        return;
    };
    let name = std::path::Path::new("output.dcm");
    if FsSink::new(s.out_dir.clone(), "fuzz").put(name, d.object).is_err() {
        return;
    }
    let dest = s.out_dir.join(name);

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
