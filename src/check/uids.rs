//! UID syntax (PS3.5 9.1), references between files of the tree, and the file
//! meta group against the dataset.

use super::dataset::{Visit, tag_path, trim_value};
use super::finding::{Finding, Kind};
use dicom_core::{Tag, VR};
use dicom_object::{FileMetaTable, InMemDicomObject};
use std::collections::HashSet;

pub const SOP_CLASS_UID: Tag = Tag(0x0008, 0x0016);
pub const SOP_INSTANCE_UID: Tag = Tag(0x0008, 0x0018);
pub const STUDY_INSTANCE_UID: Tag = Tag(0x0020, 0x000D);
const REFERENCED_SOP_CLASS_UID: Tag = Tag(0x0008, 0x1150);
const REFERENCED_SOP_INSTANCE_UID: Tag = Tag(0x0008, 0x1155);
/// A reference with this class names a study (Detached Study Management).
const STUDY_REFERENCE_CLASS: &str = "1.2.840.10008.3.1.2.3.1";

/// Why a UID value is invalid, or `None` when it is valid.
pub fn uid_problem(uid: &str) -> Option<&'static str> {
    if uid.len() > 64 {
        return Some("longer than 64 characters");
    }
    if !uid.bytes().all(|b| b.is_ascii_digit() || b == b'.') {
        return Some("a character other than a digit or a dot");
    }
    for component in uid.split('.') {
        if component.is_empty() {
            return Some("an empty component");
        }
        if component.len() > 1 && component.starts_with('0') {
            return Some("a component with a leading zero");
        }
    }
    None
}

/// Invalid UIDs among the element's values (empty values are allowed).
pub fn check_uid_element(visit: &Visit<'_>, findings: &mut Vec<Finding>) {
    if visit.vr != VR::UI {
        return;
    }
    for value in visit.strings() {
        if let Some(problem) = (!value.is_empty()).then(|| uid_problem(&value)).flatten() {
            findings.push(Finding::at(Kind::InvalidUid, &visit.path, problem));
            return;
        }
    }
}

/// What a ReferencedSOPInstanceUID must resolve to.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Target {
    Instance,
    Study,
}

/// One ReferencedSOPInstanceUID found in a file.
#[derive(Debug, Clone)]
pub struct Reference {
    pub path: String,
    pub uid: String,
    pub target: Target,
}

/// Every ReferencedSOPInstanceUID (0008,1155) at any depth of one dataset.
pub fn collect_references(
    obj: &InMemDicomObject,
    prefix: &str,
    depth: usize,
    out: &mut Vec<Reference>,
) {
    if depth > 128 {
        return;
    }
    if let Some(e) = obj.get(REFERENCED_SOP_INSTANCE_UID) {
        let target = if first_string(obj, REFERENCED_SOP_CLASS_UID).as_deref()
            == Some(STUDY_REFERENCE_CLASS)
        {
            Target::Study
        } else {
            Target::Instance
        };
        let path = tag_path(prefix, REFERENCED_SOP_INSTANCE_UID);
        for uid in super::dataset::strings(e, VR::UI) {
            // A well-known instance (1.2.840.10008.1.5.x standard palettes) is
            // defined by the standard, not a file the tree should hold.
            if !uid.is_empty() && !super::rules::is_well_known_uid(&uid) {
                out.push(Reference {
                    path: path.clone(),
                    uid,
                    target,
                });
            }
        }
    }
    for e in obj.iter() {
        let path = tag_path(prefix, e.header().tag);
        for (i, item) in e.value().items().unwrap_or(&[]).iter().enumerate() {
            collect_references(item, &format!("{path}[{i}]/"), depth + 1, out);
        }
    }
}

/// The first value of a top-level text element, trimmed.
pub fn first_string(obj: &InMemDicomObject, tag: Tag) -> Option<String> {
    let e = obj.get(tag)?;
    super::dataset::strings(e, e.header().vr)
        .into_iter()
        .next()
        .filter(|s| !s.is_empty())
}

/// The UIDs references may point to, over the whole tree.
#[derive(Debug, Default)]
pub struct Known {
    pub instances: HashSet<String>,
    pub studies: HashSet<String>,
}

impl Known {
    pub fn resolves(&self, r: &Reference) -> bool {
        match r.target {
            Target::Instance => self.instances.contains(&r.uid),
            Target::Study => self.studies.contains(&r.uid),
        }
    }
}

pub fn unresolved(r: &Reference) -> Finding {
    let detail = match r.target {
        Target::Instance => "names no SOP Instance UID of the checked tree",
        Target::Study => "names no Study Instance UID of the checked tree",
    };
    Finding::at(Kind::UnresolvedReference, &r.path, detail)
}

/// File meta UIDs are valid and name the dataset's SOP instance and class.
pub fn check_meta(meta: &FileMetaTable, obj: &InMemDicomObject, findings: &mut Vec<Finding>) {
    let meta_uids = [
        ("(0002,0002)", meta.media_storage_sop_class_uid()),
        ("(0002,0003)", meta.media_storage_sop_instance_uid()),
        ("(0002,0010)", meta.transfer_syntax()),
        ("(0002,0012)", meta.implementation_class_uid()),
    ];
    for (path, uid) in meta_uids {
        let uid = trim_value(uid);
        if let Some(problem) = (!uid.is_empty()).then(|| uid_problem(uid)).flatten() {
            findings.push(Finding::at(Kind::InvalidUid, path, problem));
        }
    }
    let pairs = [
        (
            "(0002,0003)",
            meta.media_storage_sop_instance_uid(),
            SOP_INSTANCE_UID,
            "SOP Instance UID",
        ),
        (
            "(0002,0002)",
            meta.media_storage_sop_class_uid(),
            SOP_CLASS_UID,
            "SOP Class UID",
        ),
    ];
    for (path, meta_uid, tag, name) in pairs {
        let meta_uid = trim_value(meta_uid);
        let detail = match first_string(obj, tag) {
            Some(uid) if uid == meta_uid => continue,
            Some(_) => format!("differs from the dataset's {name}"),
            None if meta_uid.is_empty() => continue,
            None => format!("the dataset has no {name}"),
        };
        findings.push(Finding::at(Kind::MetaUidMismatch, path, detail));
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn uid_rules_of_ps3_5() {
        assert_eq!(uid_problem("1.2.840.10008.1.2.1"), None);
        assert_eq!(uid_problem("2.25.0"), None);
        assert!(uid_problem("1.2.0123").is_some());
        assert!(uid_problem("1..2").is_some());
        assert!(uid_problem("1.2.").is_some());
        assert!(uid_problem("1.2.a").is_some());
        assert!(uid_problem(&format!("1.{}", "2".repeat(63))).is_some());
    }
}
