//! Where each output goes. Input paths often carry patient names, so the default
//! layout is built only from the de-identified UIDs.

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

/// The output name of one object, relative to the sink's root. `rel` is the
/// input's path relative to its root (root name included when several roots were
/// given); `unsorted` names an object that lacks one of the UIDs the `uid` layout
/// needs (the caller derives it from the key, so it reveals nothing of the path).
pub fn output_name(
    layout: Layout,
    rel: &Path,
    dataset: &InMemDicomObject,
    unsorted: impl FnOnce() -> String,
) -> PathBuf {
    match layout {
        Layout::Mirror => rel.to_path_buf(),
        Layout::Uid => match (
            uid_component(dataset, STUDY),
            uid_component(dataset, SERIES),
            uid_component(dataset, INSTANCE),
        ) {
            (Some(st), Some(se), Some(sop)) => {
                PathBuf::from(st).join(se).join(format!("{sop}.dcm"))
            }
            _ => PathBuf::from("unsorted").join(format!("{}.dcm", unsorted())),
        },
    }
}
