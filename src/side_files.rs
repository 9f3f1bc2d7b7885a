//! Files a run writes beside its outputs: the report, the crosswalk, the quarantine
//! manifest and the ledger. They are opened without following a symlink (a link
//! planted at their path would make the run truncate or chmod its target), and
//! they must not land where they would be shared or destroy an original.

use std::fs::{File, OpenOptions};
use std::path::Path;

/// How a side file is opened.
pub enum Mode {
    /// Created, or truncated when it exists (a report, a manifest).
    Replace,
    /// Created; an existing file is an error.
    New,
    /// Appended to (it must exist).
    Append,
    /// Read, then appended to (it must exist).
    ReadAppend,
    /// Read and written in place, created when missing, never truncated (a lock
    /// file another run may hold).
    Lock,
}

/// Opens `path` for writing, owner-only when created, never through a symlink at its
/// last component (O_NOFOLLOW: the open fails with ELOOP instead).
pub fn open(path: &Path, mode: Mode, owner_only: bool) -> std::io::Result<File> {
    let mut o = OpenOptions::new();
    match mode {
        Mode::Replace => o.write(true).create(true).truncate(true),
        Mode::New => o.write(true).create_new(true),
        Mode::Append => o.append(true),
        Mode::ReadAppend => o.read(true).append(true),
        Mode::Lock => o.read(true).write(true).create(true).truncate(false),
    };
    #[cfg(unix)]
    {
        use std::os::unix::fs::OpenOptionsExt;
        o.custom_flags(libc::O_NOFOLLOW);
        if owner_only {
            o.mode(0o600);
        }
    }
    #[cfg(not(unix))]
    let _ = owner_only;
    let file = o.open(path).map_err(|e| {
        if e.raw_os_error() == Some(libc::ELOOP) {
            std::io::Error::new(
                std::io::ErrorKind::InvalidInput,
                "it is a symbolic link; refusing to write through it",
            )
        } else {
            e
        }
    })?;
    // Only regular files: a FIFO or a device at that path is not a report.
    let meta = file.metadata()?;
    if !meta.is_file() && !is_dev_null_like(path) {
        return Err(std::io::Error::new(
            std::io::ErrorKind::InvalidInput,
            "not a regular file",
        ));
    }
    Ok(file)
}

/// /dev/null and /dev/full are accepted as reports (discarding, and testing a full
/// device); other special files are not.
fn is_dev_null_like(path: &Path) -> bool {
    path == Path::new("/dev/null") || path == Path::new("/dev/full")
}
