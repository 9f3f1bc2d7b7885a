//! The originals a de-identified tree was made from, indexed so each output finds
//! its original. Outputs are renamed by their new UIDs, so the match is by a
//! fingerprint the de-identification keeps (SHA-256 of the Pixel Data value,
//! Instance Number, SOP Class UID), falling back to the same relative path.

use super::dataset::Visit;
use super::expect::Expected;
use super::phi::{Compiled, Needles};
use super::rules::{ValueMap, value_map};
use super::uids::{SOP_CLASS_UID, first_string};
use crate::io::read::{Classified, Source, read};
use crate::io::walk::{Walked, walk_links};
use dicom_core::Tag;
use dicom_core::value::Value;
use rayon::prelude::*;
use sha2::{Digest, Sha256};
use std::collections::HashMap;
use std::fs::File;
use std::io::{Read, Seek, SeekFrom};
use std::path::{Path, PathBuf};
use std::sync::OnceLock;

const PIXEL_DATA: Tag = Tag(0x7FE0, 0x0010);
const INSTANCE_NUMBER: Tag = Tag(0x0020, 0x0013);
const IMPLICIT_VR_LE: &str = "1.2.840.10008.1.2";

/// What identifies an image across de-identification.
#[derive(Debug, Clone, PartialEq, Eq, Hash)]
pub struct Fingerprint {
    pixels: Option<[u8; 32]>,
    instance_number: Option<String>,
    sop_class: Option<String>,
}

impl Fingerprint {
    pub fn has_pixels(&self) -> bool {
        self.pixels.is_some()
    }
}

/// The fingerprint of a file read by `io::read`.
pub fn fingerprint(path: &Path, src: &Source) -> std::io::Result<Fingerprint> {
    let meta_class = src
        .meta
        .as_ref()
        .map(|m| m.media_storage_sop_class_uid().to_string());
    Ok(Fingerprint {
        pixels: pixel_digest(path, src)?,
        instance_number: first_string(&src.header, INSTANCE_NUMBER),
        sop_class: first_string(&src.header, SOP_CLASS_UID).or(meta_class),
    })
}

/// SHA-256 of the Pixel Data value: read from the file when the reader left it
/// there, else from the dataset (a deflated file is read whole).
fn pixel_digest(path: &Path, src: &Source) -> std::io::Result<Option<[u8; 32]>> {
    if let Some(range) = &src.pixel {
        let header = if src.ts.uid() == IMPLICIT_VR_LE {
            8
        } else {
            12
        };
        let start = (range.start + header).min(range.end);
        let mut file = File::open(path)?;
        file.seek(SeekFrom::Start(start))?;
        let mut hasher = Sha256::new();
        std::io::copy(&mut file.take(range.end - start), &mut hasher)?;
        return Ok(Some(hasher.finalize().into()));
    }
    let Some(e) = src.header.get(PIXEL_DATA) else {
        return Ok(None);
    };
    let mut hasher = Sha256::new();
    match e.value() {
        Value::Primitive(p) => hasher.update(p.to_bytes()),
        Value::PixelSequence(seq) => seq.fragments().iter().for_each(|f| hasher.update(f)),
        Value::Sequence(_) => {}
    }
    Ok(Some(hasher.finalize().into()))
}

/// What the check needs of one original.
pub struct Original {
    pub needles: Needles,
    pub values: ValueMap,
}

/// The originals that share one fingerprint. Several (identical images, or objects
/// without pixels and the same Instance Number, such as many SRs) are searched
/// together; their values and needles are merged once, on first use, so that
/// checking a tree stays linear however large such a group grows.
struct Group {
    members: Vec<usize>,
    merged: OnceLock<Merged>,
}

/// The union of a group's values and needles.
pub struct Merged {
    pub values: ValueMap,
    pub needles: Compiled,
}

/// What an output was matched to.
pub enum Matched<'a> {
    One(&'a Original),
    Several(&'a Merged),
}

impl Matched<'_> {
    pub fn values(&self) -> &ValueMap {
        match self {
            Matched::One(o) => &o.values,
            Matched::Several(m) => &m.values,
        }
    }
}

#[derive(Default)]
pub struct Index {
    originals: Vec<Original>,
    groups: Vec<Group>,
    by_fingerprint: HashMap<Fingerprint, usize>,
    by_rel: HashMap<PathBuf, usize>,
    /// Files under the originals folder that are not readable DICOM.
    pub skipped: usize,
}

/// How an output was matched to its original.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Match {
    Fingerprint,
    Path,
}

impl Index {
    /// Reads every file under `dir` (read-only), in parallel.
    pub fn build(dir: &Path, expected: &Expected) -> Index {
        let entries: Vec<Walked> = walk_links(&[dir.to_path_buf()], true).collect();
        // Unreadable entries and files that are not DICOM are only counted.
        let loaded: Vec<Option<(PathBuf, Fingerprint, Original)>> = entries
            .par_iter()
            .map(|w| match w {
                Walked::File(e) => load(&e.path, expected).map(|(fp, o)| (e.rel.clone(), fp, o)),
                Walked::Error { .. } | Walked::Symlink(_) | Walked::Loop { .. } => None,
            })
            .collect();
        let mut index = Index::default();
        for item in loaded {
            let Some((rel, fp, original)) = item else {
                index.skipped += 1;
                continue;
            };
            let i = index.originals.len();
            index.originals.push(original);
            let next = index.groups.len();
            let g = *index.by_fingerprint.entry(fp).or_insert(next);
            if g == next {
                index.groups.push(Group {
                    members: Vec::new(),
                    merged: OnceLock::new(),
                });
            }
            index.groups[g].members.push(i);
            index.by_rel.insert(rel, i);
        }
        index
    }

    /// Originals read.
    pub fn count(&self) -> usize {
        self.originals.len()
    }

    /// The originals an output may come from: all those sharing its fingerprint
    /// (ambiguous matches are searched together), else the one at its relative
    /// path. Without pixel data the fingerprint is weak, so the path goes first.
    pub fn lookup(&self, fp: &Fingerprint, rel: &Path) -> Option<(Matched<'_>, Match)> {
        let by_fp = || {
            let group = &self.groups[*self.by_fingerprint.get(fp)?];
            let matched = match group.members[..] {
                [only] => Matched::One(&self.originals[only]),
                _ => Matched::Several(group.merged.get_or_init(|| self.merge(&group.members))),
            };
            Some((matched, Match::Fingerprint))
        };
        let by_path = || {
            self.by_rel
                .get(rel)
                .map(|i| (Matched::One(&self.originals[*i]), Match::Path))
        };
        if fp.has_pixels() {
            by_fp().or_else(by_path)
        } else {
            by_path().or_else(by_fp)
        }
    }

    fn merge(&self, members: &[usize]) -> Merged {
        let mut values = ValueMap::new();
        let mut needles = Needles::default();
        for &i in members {
            let o = &self.originals[i];
            for (path, vals) in &o.values {
                let merged = values.entry(path.clone()).or_default();
                for v in vals {
                    if !merged.contains(v) {
                        merged.push(v.clone());
                    }
                }
            }
            needles.merge(&o.needles);
        }
        Merged {
            values,
            needles: needles.compile(),
        }
    }
}

fn load(path: &Path, expected: &Expected) -> Option<(Fingerprint, Original)> {
    let Ok(Classified::Dicom(src)) = read(path) else {
        return None;
    };
    let visits: Vec<Visit<'_>> = super::visits_of(&src);
    let mut values = value_map(&visits, expected);
    if let Some(meta) = &src.meta {
        values.insert(
            "(0002,0003)".into(),
            vec![meta.media_storage_sop_instance_uid().to_string()],
        );
    }
    let fp = fingerprint(path, &src).ok()?;
    let needles = Needles::collect(&visits, expected);
    Some((fp, Original { needles, values }))
}
