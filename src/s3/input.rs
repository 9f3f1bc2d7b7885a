//! An object read as an [`Input`]: ranged GETs into a bounded window, each
//! conditional on the ETag the listing saw. The header takes one small request;
//! Pixel Data then streams through the window on its way to the sink, so memory
//! stays flat whatever the object's size. An object rewritten during the read
//! answers 412 to the next request, and the input reports a changed stamp: the
//! pipeline then fails it as `changed`, never mixes two versions.

use super::{Bucket, S3Error, block_on};
use crate::io::source::{Input, Stamp};
use bytes::Bytes;
use object_store::{GetOptions, GetRange, ObjectStore};
use std::io::{Read, Seek, SeekFrom};
use std::sync::Arc;

/// What the listing said about an object.
#[derive(Debug, Clone)]
pub struct Listed {
    pub key: String,
    pub size: u64,
    pub e_tag: Option<String>,
    /// Last-modified time, ns since the epoch: the ledger's "mtime" for objects.
    pub mtime_ns: i128,
}

impl Listed {
    pub fn stamp(&self) -> Stamp {
        Stamp {
            size: self.size,
            mtime_ns: self.mtime_ns,
        }
    }
}

/// First request: enough for the header of almost every object.
const FIRST_WINDOW: u64 = 256 * 1024;
/// Sequential reads double the window up to this (Pixel Data of large objects).
const MAX_WINDOW: u64 = 8 * 1024 * 1024;

pub struct S3Input {
    store: Arc<dyn ObjectStore>,
    bucket: String,
    path: object_store::path::Path,
    listed: Listed,
    pos: u64,
    window_start: u64,
    window: Bytes,
    next_len: u64,
    /// Set when the store said the object is no longer the version listed.
    changed: bool,
}

impl S3Input {
    pub fn open(bucket: &Bucket, listed: Listed) -> (Box<dyn Input>, Stamp) {
        let stamp = listed.stamp();
        let input = S3Input {
            store: bucket.store.clone(),
            bucket: bucket.url.bucket.clone(),
            path: object_store::path::Path::from(listed.key.as_str()),
            listed,
            pos: 0,
            window_start: 0,
            window: Bytes::new(),
            next_len: FIRST_WINDOW,
            changed: false,
        };
        (Box::new(input), stamp)
    }

    fn fill(&mut self) -> std::io::Result<()> {
        let start = self.pos;
        let end = (start + self.next_len).min(self.listed.size);
        let opts = GetOptions {
            if_match: self.listed.e_tag.clone(),
            range: Some(GetRange::Bounded(start..end)),
            ..GetOptions::default()
        };
        let store = self.store.clone();
        let path = self.path.clone();
        let got = block_on(async move {
            let r = store.get_opts(&path, opts).await?;
            r.bytes().await
        });
        match got {
            Ok(b) => {
                self.window_start = start;
                self.window = b;
                self.next_len = (self.next_len * 2).min(MAX_WINDOW);
                Ok(())
            }
            Err(e) => {
                let e = S3Error::from_store(e, &self.bucket);
                if matches!(e, S3Error::Changed | S3Error::NotFound) {
                    self.changed = true;
                }
                Err(std::io::Error::other(e.to_string()))
            }
        }
    }
}

impl Read for S3Input {
    fn read(&mut self, buf: &mut [u8]) -> std::io::Result<usize> {
        if buf.is_empty() || self.pos >= self.listed.size {
            return Ok(0);
        }
        let in_window = self.pos >= self.window_start
            && self.pos < self.window_start + self.window.len() as u64;
        if !in_window {
            self.fill()?;
            if self.window.is_empty() {
                // The store returned less than it listed: the object shrank.
                self.changed = true;
                return Ok(0);
            }
        }
        let off = (self.pos - self.window_start) as usize;
        let n = buf.len().min(self.window.len() - off);
        buf[..n].copy_from_slice(&self.window[off..off + n]);
        self.pos += n as u64;
        Ok(n)
    }
}

impl Seek for S3Input {
    fn seek(&mut self, pos: SeekFrom) -> std::io::Result<u64> {
        let new = match pos {
            SeekFrom::Start(n) => Some(n),
            SeekFrom::End(d) => self.listed.size.checked_add_signed(d),
            SeekFrom::Current(d) => self.pos.checked_add_signed(d),
        }
        .ok_or_else(|| std::io::Error::new(std::io::ErrorKind::InvalidInput, "seek before 0"))?;
        if new != self.pos
            && !(new >= self.window_start && new < self.window_start + self.window.len() as u64)
        {
            // A jump (to Pixel Data's end, say) starts a new, small window.
            self.next_len = FIRST_WINDOW;
        }
        self.pos = new;
        Ok(new)
    }
}

impl Input for S3Input {
    fn stamp(&self) -> std::io::Result<Stamp> {
        let mut s = self.listed.stamp();
        if self.changed {
            s.mtime_ns = i128::MIN;
        }
        Ok(s)
    }
}
