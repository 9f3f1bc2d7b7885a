//! A local folder as a sink: each object is written to a temporary file in its
//! final directory and renamed into place, so no partial output is ever visible.
//! Pixel Data moves from the input's descriptor to the output's with
//! `copy_file_range(2)`, which keeps it out of user space (and lets file systems
//! that can share extents do so).

use super::{NotNew, Sink, Staged, StoreError};
use crate::io::encode::{ObjectWriter, Part10, buffered_copy};
use crate::io::error::{EncodeError, is_full};
use crate::io::source::Input;
use std::fs::{File, OpenOptions};
use std::io::{BufWriter, Write};
use std::ops::Range;
use std::path::{Path, PathBuf};
use std::sync::atomic::{AtomicU64, Ordering};

/// Prefix of temporary files; a crashed run leaves only names with this prefix.
pub const TEMP_PREFIX: &str = ".dicom-deid-tmp-";

pub struct FsSink {
    root: PathBuf,
    /// `<prefix><run id>-`: tells this run's temporaries from other runs'.
    temp_prefix: String,
    counter: AtomicU64,
    /// Sync each file before its rename and its directory after: for a sink whose
    /// writes are acknowledged to someone (the gateway's queues).
    durable: bool,
}

impl FsSink {
    /// A sink into `root` whose temporaries carry `run_id` (unique per run across
    /// machines and containers; see `run::lock`).
    pub fn new(root: PathBuf, run_id: &str) -> Self {
        FsSink {
            root,
            temp_prefix: format!("{TEMP_PREFIX}{run_id}-"),
            counter: AtomicU64::new(0),
            durable: false,
        }
    }

    /// The same sink, with every object synced to disk (file, then directory)
    /// before `commit` returns.
    pub fn durable(mut self) -> Self {
        self.durable = true;
        self
    }

    fn temp_path(&self, dir: &Path) -> PathBuf {
        let n = self.counter.fetch_add(1, Ordering::Relaxed);
        dir.join(format!("{}{n}", self.temp_prefix))
    }
}

impl Sink for FsSink {
    fn stage(&self, name: &Path, object: Part10) -> Result<Box<dyn Staged>, StoreError> {
        let dest = self.root.join(name);
        let dir = dest
            .parent()
            .ok_or_else(|| StoreError::Write("output path has no parent".into()))?;
        let tmp = self.temp_path(dir);
        match write_temp(&tmp, object, self.durable) {
            Ok(bytes) => Ok(Box::new(FsStaged {
                tmp: Some(tmp),
                dest,
                bytes,
                durable: self.durable,
            })),
            Err(e) => {
                let _ = std::fs::remove_file(&tmp);
                Err(e)
            }
        }
    }

    fn locate(&self, name: &Path) -> PathBuf {
        self.root.join(name)
    }

    fn stored_size(&self, name: &Path) -> Option<u64> {
        let m = std::fs::symlink_metadata(self.root.join(name)).ok()?;
        m.is_file().then_some(m.len())
    }
}

/// A complete temporary file in the destination's directory, renamed on commit.
struct FsStaged {
    /// None once renamed.
    tmp: Option<PathBuf>,
    dest: PathBuf,
    bytes: u64,
    durable: bool,
}

impl Staged for FsStaged {
    fn bytes(&self) -> u64 {
        self.bytes
    }

    fn commit(mut self: Box<Self>) -> Result<u64, StoreError> {
        let Some(tmp) = self.tmp.take() else {
            return Ok(self.bytes);
        };
        let renamed = std::fs::rename(&tmp, &self.dest).and_then(|()| match self.dest.parent() {
            Some(dir) if self.durable => File::open(dir)?.sync_all(),
            _ => Ok(()),
        });
        match renamed {
            Ok(()) => Ok(self.bytes),
            Err(e) => {
                let _ = std::fs::remove_file(&tmp);
                Err(store_error(e))
            }
        }
    }

    fn same_as_stored(&self) -> bool {
        let Some(tmp) = &self.tmp else {
            return false;
        };
        same_bytes(tmp, &self.dest).unwrap_or(false)
    }

    fn commit_new(mut self: Box<Self>) -> Result<u64, NotNew> {
        let Some(tmp) = self.tmp.take() else {
            return Ok(self.bytes);
        };
        let renamed = rename_noreplace(&tmp, &self.dest).and_then(|()| match self.dest.parent() {
            Some(dir) if self.durable => File::open(dir)?.sync_all(),
            _ => Ok(()),
        });
        match renamed {
            Ok(()) => Ok(self.bytes),
            Err(e) if e.kind() == std::io::ErrorKind::AlreadyExists => {
                self.tmp = Some(tmp);
                Err(NotNew::Exists(self))
            }
            Err(e) => {
                let _ = std::fs::remove_file(&tmp);
                Err(NotNew::Failed(store_error(e)))
            }
        }
    }
}

/// Renames `from` to `to` unless `to` exists (then `AlreadyExists`), atomically:
/// two shards writing one name never both succeed. `renameat2(RENAME_NOREPLACE)`
/// where the file system has it (ext4, XFS, Btrfs, tmpfs), else a hard link, which
/// fails the same way on an existing name, and removing the temporary.
fn rename_noreplace(from: &Path, to: &Path) -> std::io::Result<()> {
    #[cfg(target_os = "linux")]
    {
        use std::ffi::CString;
        use std::os::unix::ffi::OsStrExt;
        let c = |p: &Path| {
            CString::new(p.as_os_str().as_bytes())
                .map_err(|_| std::io::Error::from(std::io::ErrorKind::InvalidInput))
        };
        let (f, t) = (c(from)?, c(to)?);
        // SAFETY: both are valid NUL-terminated paths, relative to the working
        // directory only if they are relative; the call reads them and nothing else.
        let rc = unsafe {
            libc::renameat2(
                libc::AT_FDCWD,
                f.as_ptr(),
                libc::AT_FDCWD,
                t.as_ptr(),
                libc::RENAME_NOREPLACE,
            )
        };
        if rc == 0 {
            return Ok(());
        }
        let e = std::io::Error::last_os_error();
        match e.raw_os_error() {
            Some(libc::EINVAL | libc::ENOSYS | libc::EOPNOTSUPP) => {}
            _ => return Err(e),
        }
    }
    std::fs::hard_link(from, to)?;
    std::fs::remove_file(from)
}

impl Drop for FsStaged {
    fn drop(&mut self) {
        if let Some(tmp) = self.tmp.take() {
            let _ = std::fs::remove_file(tmp);
        }
    }
}

/// Whether two files hold the same bytes (sizes first, then 64 KiB at a time).
fn same_bytes(a: &Path, b: &Path) -> std::io::Result<bool> {
    use std::io::Read;
    let (mut fa, mut fb) = (File::open(a)?, File::open(b)?);
    if fa.metadata()?.len() != fb.metadata()?.len() {
        return Ok(false);
    }
    let (mut ba, mut bb) = (vec![0u8; 64 * 1024], vec![0u8; 64 * 1024]);
    loop {
        let n = fa.read(&mut ba)?;
        if n == 0 {
            return Ok(fb.read(&mut bb[..1])? == 0);
        }
        fb.read_exact(&mut bb[..n])?;
        if ba[..n] != bb[..n] {
            return Ok(false);
        }
    }
}

fn store_error(e: std::io::Error) -> StoreError {
    if is_full(&e) {
        StoreError::Full(e.to_string())
    } else {
        StoreError::Write(e.to_string())
    }
}

fn write_temp(tmp: &Path, object: Part10, durable: bool) -> Result<u64, StoreError> {
    let file = create_temp(tmp).map_err(store_error)?;
    let mut w = FileWriter {
        out: BufWriter::with_capacity(256 * 1024, file),
        written: 0,
    };
    object.encode(&mut w)?;
    if durable {
        w.out.get_ref().sync_all().map_err(store_error)?;
    }
    Ok(w.written)
}

/// Creates the temporary file, and its directory when that is missing: most files go
/// into a directory an earlier file created, so the directory is not checked first.
fn create_temp(tmp: &Path) -> std::io::Result<File> {
    let create = || OpenOptions::new().write(true).create_new(true).open(tmp);
    match create() {
        Err(e) if e.kind() == std::io::ErrorKind::NotFound => {
            if let Some(dir) = tmp.parent() {
                std::fs::create_dir_all(dir)?;
            }
            create()
        }
        other => other,
    }
}

/// A buffered output file that counts its bytes (so the size needs no fstat).
struct FileWriter {
    out: BufWriter<File>,
    written: u64,
}

impl Write for FileWriter {
    fn write(&mut self, buf: &[u8]) -> std::io::Result<usize> {
        let n = self.out.write(buf)?;
        self.written += n as u64;
        Ok(n)
    }
    fn write_all(&mut self, buf: &[u8]) -> std::io::Result<()> {
        self.out.write_all(buf)?;
        self.written += buf.len() as u64;
        Ok(())
    }
    fn flush(&mut self) -> std::io::Result<()> {
        self.out.flush()
    }
}

impl ObjectWriter for FileWriter {
    fn copy_range(&mut self, input: &mut dyn Input, range: Range<u64>) -> Result<u64, EncodeError> {
        #[cfg(target_os = "linux")]
        if let Some(src) = input.as_file() {
            self.out.flush().map_err(EncodeError::from_write)?;
            match kernel_copy(src, self.out.get_ref(), range.clone())? {
                KernelCopy::Done(n) => {
                    self.written += n;
                    return Ok(n);
                }
                KernelCopy::Unsupported => {}
            }
        }
        // Not a local file, or a file system pair the kernel cannot copy between.
        buffered_copy(self, input, range)
    }
}

#[cfg(target_os = "linux")]
enum KernelCopy {
    Done(u64),
    /// Nothing was copied and the kernel cannot do it for this pair: copy in user space.
    Unsupported,
}

/// `copy_file_range(2)` from `range` of `src` to the current position of `dst`.
/// Returns fewer bytes than asked when the input ends early.
#[cfg(target_os = "linux")]
fn kernel_copy(src: &File, dst: &File, range: Range<u64>) -> Result<KernelCopy, EncodeError> {
    use std::os::fd::AsRawFd;
    let mut off_in = i64::try_from(range.start)
        .map_err(|_| EncodeError::Malformed("Pixel Data offset out of range".into()))?;
    let mut left = range.end - range.start;
    let mut copied = 0u64;
    while left > 0 {
        let chunk = usize::try_from(left.min(1 << 30)).unwrap_or(1 << 30);
        // SAFETY: both descriptors are open for the duration of the call; the input
        // offset is ours, the output offset is the file's own position.
        let n = unsafe {
            libc::copy_file_range(
                src.as_raw_fd(),
                &mut off_in,
                dst.as_raw_fd(),
                std::ptr::null_mut(),
                chunk,
                0,
            )
        };
        if n < 0 {
            let e = std::io::Error::last_os_error();
            match e.raw_os_error() {
                Some(libc::EINTR) => continue,
                Some(
                    libc::EXDEV | libc::ENOSYS | libc::EOPNOTSUPP | libc::EINVAL | libc::EPERM,
                ) if copied == 0 => {
                    return Ok(KernelCopy::Unsupported);
                }
                _ if is_full(&e) => return Err(EncodeError::OutputFull(e.to_string())),
                _ => return Err(EncodeError::Write(e.to_string())),
            }
        }
        if n == 0 {
            break; // the input ends early
        }
        copied += n as u64;
        left -= n as u64;
    }
    Ok(KernelCopy::Done(copied))
}

/// Removes the temporaries under `out` that no live run owns (`live`: the run ids
/// of the runs holding a lock on this output, this one included): they were left by
/// a killed run. Returns how many were removed, and the first symbolic link found
/// in the tree (the same walk; a linked folder could take outputs elsewhere).
pub fn remove_stale_temporaries(
    out: &Path,
    live: &std::collections::HashSet<String>,
) -> (usize, Option<PathBuf>) {
    let mut removed = 0;
    let mut link = None;
    for e in walkdir::WalkDir::new(out)
        .into_iter()
        .filter_map(Result::ok)
    {
        if e.path_is_symlink() && link.is_none() {
            link = Some(e.path().to_path_buf());
        }
        let name = e.file_name().to_string_lossy();
        let Some(rest) = name.strip_prefix(TEMP_PREFIX) else {
            continue;
        };
        let id = rest.split('-').next().unwrap_or("");
        if !live.contains(id) && std::fs::remove_file(e.path()).is_ok() {
            removed += 1;
        }
    }
    (removed, link)
}
