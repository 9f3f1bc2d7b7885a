//! Regenerates the per-IOD attribute Types used to resolve the compound actions of
//! PS3.15 Table E.1-1, from the PS3.3 tables as data (see src/profile/iod.rs).
//! Usage: cargo run --release --example gen-iod-types [-- IOD_DIR TABLE.csv OUT.csv [OUT_SOP.csv]]
//! Defaults: ../shared/standard/iod, profiles/standard/ps3.15-e1-1.csv,
//! profiles/standard/iod-compound-types.csv, and iod-sop-classes.csv next to OUT.csv.

use dicom_deid::profile::iod;
use std::path::{Path, PathBuf};
use std::process::ExitCode;

fn main() -> ExitCode {
    let mut args = std::env::args().skip(1);
    let iod_dir = PathBuf::from(
        args.next()
            .unwrap_or_else(|| "../shared/standard/iod".into()),
    );
    let table = args
        .next()
        .unwrap_or_else(|| "profiles/standard/ps3.15-e1-1.csv".into());
    let out = PathBuf::from(args.next().unwrap_or_else(|| iod::IOD_TYPES_PATH.into()));
    let out_sop = args.next().map(PathBuf::from).unwrap_or_else(|| {
        let name = Path::new(iod::SOP_CLASSES_PATH)
            .file_name()
            .expect("file name");
        out.with_file_name(name)
    });
    let write = |path: &Path, text: &str| {
        std::fs::write(path, text).map_err(|e| format!("{}: {e}", path.display()))?;
        eprintln!(
            "wrote {} ({} rows, {} bytes)",
            path.display(),
            text.lines().count().saturating_sub(1),
            text.len()
        );
        Ok::<(), String>(())
    };
    let result = std::fs::read_to_string(&table)
        .map_err(|e| format!("{table}: {e}"))
        .and_then(|csv| iod::generate(&iod_dir, &csv))
        .and_then(|g| {
            write(&out, &g.iod_types)?;
            write(&out_sop, &g.sop_classes)
        });
    match result {
        Ok(()) => ExitCode::SUCCESS,
        Err(e) => {
            eprintln!("error: {e}");
            ExitCode::FAILURE
        }
    }
}
