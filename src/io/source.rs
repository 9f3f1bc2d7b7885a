//! Where an input's bytes come from. The pipeline reads an input through one open
//! handle, from the first byte of its header to the last byte of Pixel Data: no
//! path is ever re-opened, so a file replaced during a run cannot give an output
//! with one version's header and another's pixels, and inputs that have no path
//! (an object in a bucket, a C-STORE stream spooled to memory) plug in the same way.

use std::fs::File;
use std::io::{Cursor, Read, Seek};
use std::sync::Arc;

/// Size and modification time (ns since the epoch) of an input, as seen through
/// its open handle. Two stamps differ when the input was rewritten in place.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Stamp {
    pub size: u64,
    pub mtime_ns: i128,
}

impl Stamp {
    pub fn of(meta: &std::fs::Metadata) -> Stamp {
        let mtime_ns = meta
            .modified()
            .ok()
            .and_then(|t| t.duration_since(std::time::UNIX_EPOCH).ok())
            .map_or(0, |d| d.as_nanos() as i128);
        Stamp {
            size: meta.len(),
            mtime_ns,
        }
    }
}

/// An opened input: read and seek, plus what change detection and zero-copy need.
pub trait Input: Read + Seek + Send {
    /// The input's stamp now. Compared with the stamp at open when the output is
    /// finished.
    fn stamp(&self) -> std::io::Result<Stamp>;

    /// The local file behind the handle, when there is one: lets a file sink move
    /// Pixel Data with `copy_file_range(2)` instead of through user space.
    fn as_file(&self) -> Option<&File> {
        None
    }
}

impl Input for File {
    fn stamp(&self) -> std::io::Result<Stamp> {
        self.metadata().map(|m| Stamp::of(&m))
    }

    fn as_file(&self) -> Option<&File> {
        Some(self)
    }
}

/// An input held in memory (a received object, a test, the fuzzer): it cannot
/// change, so its stamp is its size.
pub struct MemoryInput(Cursor<Arc<[u8]>>);

impl MemoryInput {
    pub fn new(bytes: impl Into<Arc<[u8]>>) -> Self {
        MemoryInput(Cursor::new(bytes.into()))
    }

    /// The input as the pipeline takes it: a handle and its stamp.
    pub fn open(bytes: impl Into<Arc<[u8]>>) -> (Box<dyn Input>, Stamp) {
        let input = MemoryInput::new(bytes);
        let stamp = Stamp {
            size: input.0.get_ref().len() as u64,
            mtime_ns: 0,
        };
        (Box::new(input), stamp)
    }
}

impl Read for MemoryInput {
    fn read(&mut self, buf: &mut [u8]) -> std::io::Result<usize> {
        self.0.read(buf)
    }
}

impl Seek for MemoryInput {
    fn seek(&mut self, pos: std::io::SeekFrom) -> std::io::Result<u64> {
        self.0.seek(pos)
    }
}

impl Input for MemoryInput {
    fn stamp(&self) -> std::io::Result<Stamp> {
        Ok(Stamp {
            size: self.0.get_ref().len() as u64,
            mtime_ns: 0,
        })
    }
}

/// Opens a local file read-only: the one open of that input for the whole run.
pub fn open_file(path: &std::path::Path) -> std::io::Result<(Box<dyn Input>, Stamp)> {
    let file = File::open(path)?;
    let stamp = file.stamp()?;
    Ok((Box::new(file), stamp))
}
