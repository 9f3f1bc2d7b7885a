//! One run per ledger at a time: an advisory lock (`flock`) on `<ledger>.lock` held
//! for the whole run. Two runs on one output lost ledger lines; now the second is
//! refused with a clear message. The lock file also records this run's random id,
//! which marks its temporaries: a run removes only temporaries whose id belongs to
//! no live run, so two containers that share a hostname (and may share PIDs) never
//! delete each other's live files.

use crate::error::Error;
use std::collections::HashSet;
use std::fs::File;
use std::io::{Read, Write};
use std::path::{Path, PathBuf};

pub struct RunLock {
    /// Held open: closing it releases the lock.
    _file: File,
    pub run_id: String,
    /// The id of the run that held this lock before: it is dead now (the lock was
    /// free), so what it left behind can go at once.
    pub previous_run_id: Option<String>,
}

const LOCK_SUFFIX: &str = ".lock";

fn lock_path(ledger: &Path) -> PathBuf {
    let mut name = ledger.as_os_str().to_os_string();
    name.push(LOCK_SUFFIX);
    PathBuf::from(name)
}

/// Locks the ledger's run; refuses when another live run holds it.
pub fn acquire(ledger: &Path) -> Result<RunLock, Error> {
    use std::os::fd::AsRawFd;
    let path = lock_path(ledger);
    let io = |source| Error::Io {
        context: format!("cannot lock {}", path.display()),
        source,
    };
    let mut file =
        crate::side_files::open(&path, crate::side_files::Mode::Lock, false).map_err(io)?;
    // SAFETY: the descriptor is open for the duration of the call.
    let r = unsafe { libc::flock(file.as_raw_fd(), libc::LOCK_EX | libc::LOCK_NB) };
    if r != 0 {
        let e = std::io::Error::last_os_error();
        if e.raw_os_error() == Some(libc::EWOULDBLOCK) {
            return Err(Error::Usage(format!(
                "another dicom-deid run is writing to this output (it holds {}); \
                 wait for it to finish, or give this run another --out or --shard",
                path.display()
            )));
        }
        return Err(io(e));
    }
    let mut previous = String::new();
    let previous_run_id = (file.read_to_string(&mut previous).is_ok()
        && !previous.is_empty()
        && previous.bytes().all(|b| b.is_ascii_hexdigit()))
    .then_some(previous);
    let run_id = random_id().map_err(io)?;
    file.set_len(0).map_err(io)?;
    {
        use std::io::Seek;
        file.rewind().map_err(io)?;
    }
    file.write_all(run_id.as_bytes()).map_err(io)?;
    file.flush().map_err(io)?;
    Ok(RunLock {
        _file: file,
        run_id,
        previous_run_id,
    })
}

/// Ids of the runs that hold a lock in `out` now (this one included).
pub fn live_run_ids(out: &Path) -> HashSet<String> {
    use std::os::fd::AsRawFd;
    let mut live = HashSet::new();
    let Ok(dir) = std::fs::read_dir(out) else {
        return live;
    };
    for e in dir.filter_map(Result::ok) {
        let name = e.file_name();
        let name = name.to_string_lossy();
        if !(name.starts_with(".dicom-deid-ledger") && name.ends_with(LOCK_SUFFIX)) {
            continue;
        }
        let Ok(mut f) = File::open(e.path()) else {
            continue;
        };
        // A shared lock we can take means no run holds the exclusive one.
        // SAFETY: the descriptor is open for the duration of the call.
        let free = unsafe { libc::flock(f.as_raw_fd(), libc::LOCK_SH | libc::LOCK_NB) } == 0;
        let mut id = String::new();
        if !free && f.read_to_string(&mut id).is_ok() && !id.is_empty() {
            live.insert(id);
        }
    }
    live
}

fn random_id() -> std::io::Result<String> {
    let mut b = [0u8; 8];
    getrandom::fill(&mut b).map_err(|e| std::io::Error::other(e.to_string()))?;
    Ok(b.iter().map(|x| format!("{x:02x}")).collect())
}
