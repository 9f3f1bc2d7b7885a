//! Where each output goes. Input paths often carry patient names, so the default
//! layout is built only from the de-identified UIDs.

use crate::deid::Key;
use dicom_core::Tag;
use dicom_object::InMemDicomObject;
use std::path::{Path, PathBuf};

#[derive(Debug, Clone, Copy, PartialEq, Eq, clap::ValueEnum)]
pub enum Layout {
    /// `<StudyInstanceUID>/<SeriesInstanceUID>/<SOPInstanceUID>.dcm` (new UIDs).
    Uid,
    /// The relative input path (only for inputs whose paths hold no PHI).
    Mirror,
}

const STUDY: Tag = Tag(0x0020, 0x000D);
const SERIES: Tag = Tag(0x0020, 0x000E);
const INSTANCE: Tag = Tag(0x0008, 0x0018);

/// A UID usable as a path component: digits and dots only.
fn uid_component(obj: &InMemDicomObject, tag: Tag) -> Option<String> {
    let v = obj.get(tag)?.to_str().ok()?;
    let v = v.trim_end_matches(['\0', ' ']).trim();
    let ok = !v.is_empty()
        && v.len() <= 64
        && v.bytes().all(|b| b.is_ascii_digit() || b == b'.')
        && !v.starts_with('.');
    ok.then(|| v.to_string())
}

/// The output path of one input. `rel` is the input's path relative to its root
/// (root name included when several roots were given).
pub fn output_path(
    layout: Layout,
    out_dir: &Path,
    rel: &Path,
    dataset: &InMemDicomObject,
    key: &Key,
) -> PathBuf {
    match layout {
        Layout::Mirror => out_dir.join(rel),
        Layout::Uid => match (
            uid_component(dataset, STUDY),
            uid_component(dataset, SERIES),
            uid_component(dataset, INSTANCE),
        ) {
            (Some(st), Some(se), Some(sop)) => out_dir.join(st).join(se).join(format!("{sop}.dcm")),
            _ => {
                // Stable across runs with the same key, and reveals nothing of the path.
                let mac = key.mac(&[b"output-path\0", rel.as_os_str().as_encoded_bytes()]);
                let name: String = mac[..16].iter().map(|b| format!("{b:02x}")).collect();
                out_dir.join("unsorted").join(format!("{name}.dcm"))
            }
        },
    }
}
