//! Turns the command line's inputs into a stream of files. Streams, so memory does
//! not grow with the number of files; every walk error becomes an entry.

use std::path::{Path, PathBuf};
use walkdir::WalkDir;

#[derive(Debug)]
pub struct Entry {
    pub path: PathBuf,
    /// Path relative to its input root, prefixed by the root's name when several
    /// roots were given (so mirror outputs cannot collide).
    pub rel: PathBuf,
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
    inputs.iter().enumerate().flat_map(move |(i, root)| {
        let prefix: PathBuf = if several {
            let name = root
                .file_name()
                .map(|n| n.to_os_string())
                .unwrap_or_else(|| format!("input-{i}").into());
            PathBuf::from(name)
        } else {
            PathBuf::new()
        };
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
                        .unwrap_or_else(|| root.clone()),
                }),
                Err(err) => Some(Walked::Error {
                    path: err
                        .path()
                        .map(Path::to_path_buf)
                        .unwrap_or_else(|| root.clone()),
                    message: err
                        .io_error()
                        .map(|e| e.to_string())
                        .unwrap_or_else(|| err.to_string()),
                }),
            })
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
