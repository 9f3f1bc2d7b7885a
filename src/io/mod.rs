//! DICOM bytes: where inputs come from, bounded parsing and repair, encoding,
//! walking input trees, naming outputs. Knows nothing of profiles or the engine.

mod charset;
pub mod cp246;
pub mod emit;
pub mod encap;
pub mod encode;
pub mod error;
pub mod layout;
pub mod parse;
pub mod read;
pub mod retype;
pub mod source;
pub mod walk;

pub use error::MAX_DEPTH;

/// Every file under `dir`, at any depth (test inputs).
#[cfg(test)]
pub(crate) fn files_under(dir: &std::path::Path) -> Vec<std::path::PathBuf> {
    let mut out = Vec::new();
    let mut dirs = vec![dir.to_path_buf()];
    while let Some(d) = dirs.pop() {
        for entry in std::fs::read_dir(&d).unwrap().flatten() {
            let p = entry.path();
            if p.is_dir() {
                dirs.push(p);
            } else {
                out.push(p);
            }
        }
    }
    out.sort();
    out
}
