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

/// A buffered reader whose buffer survives seeks. `BufReader` drops its buffer on
/// every seek, and reading a header seeks back and forth (the meta group's lengths
/// are checked, then it is read; the dataset is scanned, then parsed): `strace`
/// showed five 16 KiB reads of the same first bytes per file. Here a read within
/// the bytes last fetched is a copy; anything else fetches `chunk` bytes from there.
pub struct Window<R> {
    inner: R,
    /// `chunk` bytes once the first fetch is made (zeroed once; a buffer handed in
    /// by [`Window::with_buffer`] is reused as it is).
    buf: Vec<u8>,
    /// How many bytes of `buf` the last fetch filled.
    filled: usize,
    /// Offset in the input of `buf[0]`.
    start: u64,
    pos: u64,
    /// Where `inner` stands, when known: saves a seek before a sequential fetch.
    inner_pos: Option<u64>,
    chunk: usize,
}

impl<R: Read + Seek> Window<R> {
    pub fn new(inner: R, chunk: usize) -> Window<R> {
        Window::with_buffer(inner, chunk, Vec::new())
    }

    /// A window fetching into `buf` (its contents are ignored): a caller reading
    /// many inputs hands the buffer of the last one on, instead of zeroing a new
    /// one per input.
    pub fn with_buffer(inner: R, chunk: usize, buf: Vec<u8>) -> Window<R> {
        Window {
            inner,
            buf,
            filled: 0,
            start: 0,
            pos: 0,
            inner_pos: None,
            chunk: chunk.max(1),
        }
    }

    /// The buffer, for the next [`Window::with_buffer`].
    pub fn into_buffer(self) -> Vec<u8> {
        self.buf
    }

    fn seek_inner(&mut self) -> std::io::Result<()> {
        if self.inner_pos != Some(self.pos) {
            self.inner.seek(std::io::SeekFrom::Start(self.pos))?;
            self.inner_pos = Some(self.pos);
        }
        Ok(())
    }

    fn read_inner(&mut self, out: &mut [u8]) -> std::io::Result<usize> {
        self.seek_inner()?;
        let n = match self.inner.read(out) {
            Ok(n) => n,
            Err(e) => {
                self.inner_pos = None;
                return Err(e);
            }
        };
        self.inner_pos = Some(self.pos + n as u64);
        Ok(n)
    }
}

impl<R: Read + Seek> Read for Window<R> {
    fn read(&mut self, out: &mut [u8]) -> std::io::Result<usize> {
        if out.is_empty() {
            return Ok(0);
        }
        let end = self.start + self.filled as u64;
        if !(self.start..end).contains(&self.pos) {
            if out.len() >= self.chunk {
                // Larger than a fetch: straight into the caller's buffer.
                let n = self.read_inner(out)?;
                self.pos += n as u64;
                return Ok(n);
            }
            let mut buf = std::mem::take(&mut self.buf);
            if buf.len() < self.chunk {
                buf.resize(self.chunk, 0);
            }
            let n = self.read_inner(&mut buf[..self.chunk]);
            self.buf = buf;
            self.filled = *n.as_ref().unwrap_or(&0);
            self.start = self.pos;
            if n? == 0 {
                return Ok(0);
            }
        }
        let off = (self.pos - self.start) as usize;
        let n = out.len().min(self.filled - off);
        out[..n].copy_from_slice(&self.buf[off..off + n]);
        self.pos += n as u64;
        Ok(n)
    }
}

impl<R: Read + Seek> Seek for Window<R> {
    fn seek(&mut self, to: std::io::SeekFrom) -> std::io::Result<u64> {
        use std::io::SeekFrom;
        let invalid = || std::io::Error::new(std::io::ErrorKind::InvalidInput, "seek before start");
        self.pos = match to {
            SeekFrom::Start(n) => n,
            SeekFrom::Current(d) => self.pos.checked_add_signed(d).ok_or_else(invalid)?,
            SeekFrom::End(_) => {
                let at = self.inner.seek(to)?;
                self.inner_pos = Some(at);
                at
            }
        };
        Ok(self.pos)
    }

    fn stream_position(&mut self) -> std::io::Result<u64> {
        Ok(self.pos)
    }
}

#[cfg(test)]
mod window_tests {
    use super::Window;
    use std::io::{Cursor, Read, Seek, SeekFrom};

    /// Counts the reads that reach the inner reader.
    struct Counting<R> {
        inner: R,
        reads: usize,
    }

    impl<R: Read> Read for Counting<R> {
        fn read(&mut self, buf: &mut [u8]) -> std::io::Result<usize> {
            self.reads += 1;
            self.inner.read(buf)
        }
    }

    impl<R: Seek> Seek for Counting<R> {
        fn seek(&mut self, to: SeekFrom) -> std::io::Result<u64> {
            self.inner.seek(to)
        }
    }

    #[test]
    fn reads_and_seeks_give_the_inner_bytes_and_reuse_the_fetch() {
        let data: Vec<u8> = (0..10_000u32).map(|i| (i * 7 % 251) as u8).collect();
        let mut w = Window::new(
            Counting {
                inner: Cursor::new(data.clone()),
                reads: 0,
            },
            1024,
        );
        let mut b = [0u8; 132];
        w.read_exact(&mut b).unwrap();
        assert_eq!(&b[..], &data[..132]);
        w.seek(SeekFrom::Start(128)).unwrap();
        w.read_exact(&mut b[..4]).unwrap();
        assert_eq!(&b[..4], &data[128..132]);
        w.seek(SeekFrom::Current(-4)).unwrap();
        let mut rest = vec![0u8; 500];
        w.read_exact(&mut rest).unwrap();
        assert_eq!(rest, &data[128..628]);
        assert_eq!(w.inner.reads, 1, "all within the first fetch");
        // Across the fetch's end, far away, larger than a fetch, and past the end.
        let mut across = vec![0u8; 900];
        w.read_exact(&mut across).unwrap();
        assert_eq!(across, &data[628..1528]);
        w.seek(SeekFrom::Start(9_000)).unwrap();
        let mut big = vec![0u8; 2000];
        let mut got = Vec::new();
        w.read_to_end(&mut got).unwrap();
        assert_eq!(got, &data[9_000..]);
        w.seek(SeekFrom::Start(3_000)).unwrap();
        w.read_exact(&mut big).unwrap();
        assert_eq!(big, &data[3_000..5_000]);
        assert_eq!(w.stream_position().unwrap(), 5_000);
        assert_eq!(w.seek(SeekFrom::End(-10)).unwrap(), 9_990);
        let mut tail = Vec::new();
        w.read_to_end(&mut tail).unwrap();
        assert_eq!(tail, &data[9_990..]);
        w.seek(SeekFrom::Start(20_000)).unwrap();
        assert_eq!(w.read(&mut b).unwrap(), 0);
        assert!(w.seek(SeekFrom::Current(-30_000)).is_err());
    }
}
