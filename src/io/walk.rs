//! Turns the command line's inputs into a stream of files. Streams, so memory does
//! not grow with the number of files; every walk error becomes an entry.

use crate::s3::Bucket;
use crate::s3::input::Listed;
use crate::s3::list::{Item, objects};
use std::path::{Path, PathBuf};
use std::sync::Arc;
use walkdir::WalkDir;

#[derive(Debug)]
pub struct Entry {
    /// A local path, or the object's `s3://` URL.
    pub path: PathBuf,
    /// Path relative to its input root, prefixed by the root's name when several
    /// roots were given (so mirror outputs cannot collide).
    pub rel: PathBuf,
    /// For an object in a bucket: which source, and what its listing said.
    pub remote: Option<Remote>,
}

#[derive(Debug)]
pub struct Remote {
    /// Index of the source in the list given to [`walk_sources`].
    pub source: usize,
    pub listed: Listed,
}

/// A root to walk: a local file or folder, or a bucket prefix.
pub enum Source {
    Local(PathBuf),
    S3(Arc<Bucket>),
}

#[derive(Debug)]
pub enum Walked {
    File(Entry),
    /// A symbolic link not followed (the walk was asked not to).
    Symlink(Entry),
    /// A symbolic link that leads back to one of its own ancestors.
    Loop {
        path: PathBuf,
    },
    Error {
        path: PathBuf,
        message: String,
    },
}

/// Shard `i` of `n` (0-based) takes the inputs whose relative path hashes to `i`:
/// SHA-256, so every machine splits a tree the same way.
pub fn in_shard(rel: &Path, shard: Option<(u64, u64)>) -> bool {
    use sha2::{Digest, Sha256};
    let Some((i, n)) = shard else {
        return true;
    };
    let d = Sha256::digest(rel.as_os_str().as_encoded_bytes());
    let mut first = [0u8; 8];
    first.copy_from_slice(&d[..8]);
    u64::from_be_bytes(first) % n == i
}

/// Every file under `inputs`, in name order. With `follow`, symbolic links are
/// followed (a link to a directory is walked as one, loops are reported); without,
/// each link is yielded as [`Walked::Symlink`] so that none is skipped silently.
pub fn walk(inputs: &[PathBuf]) -> impl Iterator<Item = Walked> + Send + '_ {
    walk_links(inputs, false)
}

pub fn walk_links(inputs: &[PathBuf], follow: bool) -> impl Iterator<Item = Walked> + Send + '_ {
    let several = inputs.len() > 1;
    inputs
        .iter()
        .enumerate()
        .flat_map(move |(i, root)| walk_root(root, root_prefix(several, root, i), follow))
}

/// Every input of every source, in order: a folder by name, a bucket in its
/// store's listing order (streamed, never held whole).
pub fn walk_sources(sources: &[Source], follow: bool) -> impl Iterator<Item = Walked> + Send + '_ {
    let several = sources.len() > 1;
    sources.iter().enumerate().flat_map(
        move |(i, source)| -> Box<dyn Iterator<Item = Walked> + Send + '_> {
            match source {
                Source::Local(root) => {
                    Box::new(walk_root(root, root_prefix(several, root, i), follow))
                }
                Source::S3(bucket) => {
                    let name = bucket
                        .url
                        .prefix
                        .rsplit('/')
                        .next()
                        .filter(|s| !s.is_empty())
                        .unwrap_or(&bucket.url.bucket)
                        .to_string();
                    let prefix = if several {
                        PathBuf::from(name)
                    } else {
                        PathBuf::new()
                    };
                    let dir = bucket.url.dir_prefix();
                    let url = bucket.url.clone();
                    Box::new(objects(bucket).map(move |item| match item {
                        Item::Object(listed) => {
                            let rel = listed.key.strip_prefix(&dir).unwrap_or(&listed.key);
                            Walked::File(Entry {
                                path: PathBuf::from(url.url_of(&listed.key)),
                                rel: prefix.join(key_path(rel)),
                                remote: Some(Remote { source: i, listed }),
                            })
                        }
                        Item::Error(e) => Walked::Error {
                            path: PathBuf::from(url.to_string()),
                            message: format!("listing stopped: {e}"),
                        },
                    }))
                }
            }
        },
    )
}

/// An object key as a relative path that stays below the folder it is joined to.
/// A key is any string: `a//b`, `/abs`, `../../etc/x` would make `Path::join`
/// climb out of (or replace) the output and quarantine folders under the mirror
/// layout. Empty segments go; `.` and `..` are spelled `%2E` and `%2E%2E`, so
/// nothing is lost and no name leaves its root.
pub fn key_path(key: &str) -> PathBuf {
    key.split('/')
        .filter(|s| !s.is_empty())
        .map(|s| match s {
            "." => "%2E",
            ".." => "%2E%2E",
            s => s,
        })
        .collect()
}

fn root_prefix(several: bool, root: &Path, i: usize) -> PathBuf {
    if several {
        let name = root
            .file_name()
            .map(|n| n.to_os_string())
            .unwrap_or_else(|| format!("input-{i}").into());
        PathBuf::from(name)
    } else {
        PathBuf::new()
    }
}

fn walk_root(
    root: &Path,
    prefix: PathBuf,
    follow: bool,
) -> impl Iterator<Item = Walked> + Send + '_ {
    let root_is_file = root.is_file();
    WalkDir::new(root)
        .sort_by_file_name()
        .follow_links(follow)
        .into_iter()
        .filter_map(move |r| match r {
            Ok(e) if e.file_type().is_file() || e.path_is_symlink() && !follow => {
                let rel = if root_is_file {
                    PathBuf::from(e.file_name())
                } else {
                    e.path()
                        .strip_prefix(root)
                        .unwrap_or(e.path())
                        .to_path_buf()
                };
                let entry = Entry {
                    path: e.path().to_path_buf(),
                    rel: prefix.join(rel),
                    remote: None,
                };
                Some(if e.path_is_symlink() && !follow {
                    Walked::Symlink(entry)
                } else {
                    Walked::File(entry)
                })
            }
            Ok(_) => None,
            Err(err) if err.loop_ancestor().is_some() => Some(Walked::Loop {
                path: err
                    .path()
                    .map(Path::to_path_buf)
                    .unwrap_or_else(|| root.to_path_buf()),
            }),
            Err(err) => Some(Walked::Error {
                path: err
                    .path()
                    .map(Path::to_path_buf)
                    .unwrap_or_else(|| root.to_path_buf()),
                message: err
                    .io_error()
                    .map(|e| e.to_string())
                    .unwrap_or_else(|| err.to_string()),
            }),
        })
}

/// Canonical form of a path that may not exist yet: its deepest existing ancestor
/// canonicalised, the rest appended.
pub fn canonical_lenient(p: &Path) -> std::io::Result<PathBuf> {
    let abs = if p.is_absolute() {
        p.to_path_buf()
    } else {
        std::env::current_dir()?.join(p)
    };
    let mut existing = abs.as_path();
    let mut rest = Vec::new();
    while !existing.exists() {
        match (existing.parent(), existing.file_name()) {
            (Some(parent), Some(name)) => {
                rest.push(name.to_os_string());
                existing = parent;
            }
            _ => break,
        }
    }
    let mut out = existing.canonicalize()?;
    for name in rest.iter().rev() {
        out.push(name);
    }
    Ok(out)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn object_keys_never_climb_out_of_their_root() {
        assert_eq!(key_path("a/b.dcm"), PathBuf::from("a/b.dcm"));
        assert_eq!(key_path("/abs//x.dcm"), PathBuf::from("abs/x.dcm"));
        assert_eq!(
            key_path("../../etc/x"),
            PathBuf::from("%2E%2E/%2E%2E/etc/x")
        );
        assert_eq!(key_path("a/./b"), PathBuf::from("a/%2E/b"));
        for k in ["../x", "/x", "a/../../x", "//", ".."] {
            let p = Path::new("/out").join(key_path(k));
            assert!(p.starts_with("/out"), "{k}");
            assert!(
                p.components()
                    .all(|c| !matches!(c, std::path::Component::ParentDir)),
                "{k}"
            );
        }
    }
}
