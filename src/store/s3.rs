//! An `s3://bucket/prefix` as a sink.
//!
//! - An object up to one part (8 MiB) is encoded into memory and PUT on commit,
//!   create-only (`If-None-Match: *`): two workers or shards can never both write
//!   one key, and an equal object already there counts as written (re-runs are
//!   idempotent). A different object there is never overwritten: the file fails as
//!   `duplicate`.
//! - A larger object streams, part by part, into a multipart upload at a temporary
//!   key of this run; commit copies it to its name (after the same existence
//!   check) and deletes the temporary. Dropped uncommitted, or failed mid-way, the
//!   upload is aborted; a killed run's leftovers are removed by the next run
//!   (`s3::uploads`). No partial object is ever visible under an output name.

use super::{Sink, Staged, StoreError};
use crate::io::encode::{ObjectWriter, Part10};
use crate::s3::{Bucket, S3Error, block_on, uploads};
use bytes::Bytes;
use object_store::path::Path as Key;
use object_store::{ObjectStore, ObjectStoreExt, PutMode, PutOptions, PutPayload};
use std::io::Write;
use std::path::{Path, PathBuf};
use std::sync::Arc;
use std::sync::atomic::{AtomicU64, Ordering};

/// Part size of multipart uploads (S3's minimum is 5 MiB for all but the last).
const PART: usize = 8 * 1024 * 1024;

/// Staged objects held in memory at most, over all workers. Outputs wait for the
/// run to settle them in walk order, so one slow large input can hold back
/// hundreds of small ones: past this budget they wait in a temporary object
/// instead, and memory stays flat whatever the number of objects.
const MEMORY_BUDGET: u64 = 64 * 1024 * 1024;

pub struct S3Sink {
    bucket: Arc<Bucket>,
    run_id: String,
    counter: AtomicU64,
    held: Arc<AtomicU64>,
}

/// Bytes of one staged object counted against [`MEMORY_BUDGET`] until dropped.
struct Held {
    bytes: u64,
    held: Arc<AtomicU64>,
}

impl Drop for Held {
    fn drop(&mut self) {
        self.held.fetch_sub(self.bytes, Ordering::Relaxed);
    }
}

impl S3Sink {
    pub fn new(bucket: Arc<Bucket>, run_id: &str) -> S3Sink {
        S3Sink {
            bucket,
            run_id: run_id.to_string(),
            counter: AtomicU64::new(0),
            held: Arc::new(AtomicU64::new(0)),
        }
    }

    fn key_of(&self, name: &Path) -> String {
        self.bucket.url.key(&name.to_string_lossy())
    }
}

fn write_err(e: S3Error) -> StoreError {
    match e {
        S3Error::Exists => StoreError::Conflict(
            "the output key already holds a different object; it is never overwritten \
             (remove it, or write to a new prefix)"
                .into(),
        ),
        other => StoreError::Write(other.to_string()),
    }
}

impl Sink for S3Sink {
    fn stage(&self, name: &Path, object: Part10) -> Result<Box<dyn Staged>, StoreError> {
        let key = self.key_of(name);
        let mut w = Uploader {
            bucket: &self.bucket,
            temp: None,
            make_temp: || {
                uploads::temp_key(
                    &self.bucket,
                    &self.run_id,
                    self.counter.fetch_add(1, Ordering::Relaxed),
                )
            },
            buf: Vec::with_capacity(256 * 1024),
            written: 0,
        };
        object.encode(&mut w)?;
        let size = w.written;
        let staged: Box<dyn Staged> = match w.finish().map_err(write_err)? {
            None if self.held.fetch_add(size, Ordering::Relaxed) + size <= MEMORY_BUDGET => {
                Box::new(S3Staged {
                    bucket: self.bucket.clone(),
                    key,
                    body: Body::Memory(
                        // A copy of the exact size: the buffer's spare capacity
                        // would otherwise be held too, uncounted.
                        Bytes::copy_from_slice(&w.buf),
                        Held {
                            bytes: size,
                            held: self.held.clone(),
                        },
                    ),
                    size,
                })
            }
            None => {
                self.held.fetch_sub(size, Ordering::Relaxed);
                let temp = (w.make_temp)();
                let body = PutPayload::from(Bytes::from(std::mem::take(&mut w.buf)));
                let store = self.bucket.store.clone();
                let k = Key::from(temp.as_str());
                block_on(async move { store.put(&k, body).await })
                    .map_err(|e| write_err(self.bucket.err(e)))?;
                Box::new(S3Staged {
                    bucket: self.bucket.clone(),
                    key,
                    body: Body::Temporary(Some(temp)),
                    size,
                })
            }
            Some(temp) => Box::new(S3Staged {
                bucket: self.bucket.clone(),
                key,
                body: Body::Temporary(Some(temp)),
                size,
            }),
        };
        Ok(staged)
    }

    fn locate(&self, name: &Path) -> PathBuf {
        PathBuf::from(self.bucket.url.url_of(&self.key_of(name)))
    }

    fn commit_threads(&self) -> usize {
        16
    }

    fn stored_size(&self, name: &Path) -> Option<u64> {
        let store = self.bucket.store.clone();
        let key = Key::from(self.key_of(name));
        block_on(async move { store.head(&key).await.ok().map(|m| m.size) })
    }
}

/// Encodes into memory, switching to a multipart upload at a temporary key when the
/// object outgrows one part.
struct Uploader<'a, F: Fn() -> String> {
    bucket: &'a Bucket,
    temp: Option<uploads::Multipart<'a>>,
    make_temp: F,
    buf: Vec<u8>,
    written: u64,
}

impl<F: Fn() -> String> Uploader<'_, F> {
    fn put_part(&mut self, data: Vec<u8>) -> Result<(), S3Error> {
        if self.temp.is_none() {
            self.temp = Some(uploads::Multipart::start(self.bucket, &(self.make_temp)())?);
        }
        self.temp.as_mut().expect("started above").put(data)
    }

    /// Ends the object: `None` when it is in memory (`buf`), else its temporary key.
    fn finish(&mut self) -> Result<Option<String>, S3Error> {
        if self.temp.is_none() {
            return Ok(None);
        }
        if !self.buf.is_empty() {
            let last = std::mem::take(&mut self.buf);
            self.put_part(last)?;
        }
        let m = self.temp.take().expect("checked above");
        m.complete().map(Some)
    }
}

impl<F: Fn() -> String> Write for Uploader<'_, F> {
    fn write(&mut self, data: &[u8]) -> std::io::Result<usize> {
        self.buf.extend_from_slice(data);
        self.written += data.len() as u64;
        while self.buf.len() >= PART {
            let rest = self.buf.split_off(PART);
            let part = std::mem::replace(&mut self.buf, rest);
            self.put_part(part)
                .map_err(|e| std::io::Error::other(e.to_string()))?;
        }
        Ok(data.len())
    }

    fn flush(&mut self) -> std::io::Result<()> {
        Ok(())
    }
}

impl<F: Fn() -> String> ObjectWriter for Uploader<'_, F> {}

enum Body {
    Memory(Bytes, #[allow(dead_code)] Held),
    /// None once copied to the name (or deleted).
    Temporary(Option<String>),
}

struct S3Staged {
    bucket: Arc<Bucket>,
    key: String,
    body: Body,
    size: u64,
}

impl S3Staged {
    /// Whether the object stored under the name equals ours (None: nothing stored).
    fn compare_stored(&self) -> Result<Option<bool>, S3Error> {
        let store = self.bucket.store.clone();
        let key = Key::from(self.key.as_str());
        let stored = match block_on(async move { store.head(&key).await }) {
            Ok(m) => m,
            Err(e) => {
                return match self.bucket.err(e) {
                    S3Error::NotFound => Ok(None),
                    other => Err(other),
                };
            }
        };
        if stored.size != self.size {
            return Ok(Some(false));
        }
        match &self.body {
            Body::Memory(b, _) => Ok(Some(get(&self.bucket, &self.key, 0..self.size)? == *b)),
            Body::Temporary(Some(t)) => {
                // Part by part: a 1 GiB object is never held whole.
                let mut at = 0;
                while at < self.size {
                    let r = at..(at + PART as u64).min(self.size);
                    if get(&self.bucket, t, r.clone())? != get(&self.bucket, &self.key, r.clone())?
                    {
                        return Ok(Some(false));
                    }
                    at = r.end;
                }
                Ok(Some(true))
            }
            Body::Temporary(None) => Ok(Some(false)),
        }
    }
}

fn get(bucket: &Bucket, key: &str, range: std::ops::Range<u64>) -> Result<Bytes, S3Error> {
    let store = bucket.store.clone();
    let key = Key::from(key);
    block_on(async move { store.get_range(&key, range).await }).map_err(|e| bucket.err(e))
}

fn delete(bucket: &Bucket, key: &str) {
    let store = bucket.store.clone();
    let key = Key::from(key);
    let _ = block_on(async move { store.delete(&key).await });
}

impl Staged for S3Staged {
    fn bytes(&self) -> u64 {
        self.size
    }

    fn commit(mut self: Box<Self>) -> Result<u64, StoreError> {
        let store = self.bucket.store.clone();
        let key = Key::from(self.key.as_str());
        match &mut self.body {
            Body::Memory(bytes, _) => {
                let payload = PutPayload::from(bytes.clone());
                let opts = PutOptions {
                    mode: PutMode::Create,
                    ..PutOptions::default()
                };
                let r = block_on(async move { store.put_opts(&key, payload, opts).await });
                match r.map_err(|e| self.bucket.err(e)) {
                    Ok(_) => Ok(self.size),
                    Err(S3Error::Exists | S3Error::Changed) => match self.compare_stored() {
                        Ok(Some(true)) => Ok(self.size),
                        Ok(_) => Err(write_err(S3Error::Exists)),
                        Err(e) => Err(write_err(e)),
                    },
                    Err(e) => Err(write_err(e)),
                }
            }
            Body::Temporary(temp) => {
                let Some(t) = temp.clone() else {
                    return Ok(self.size);
                };
                let result = match self.compare_stored() {
                    Ok(Some(true)) => Ok(self.size),
                    Ok(Some(false)) => Err(write_err(S3Error::Exists)),
                    Err(e) => Err(write_err(e)),
                    Ok(None) => {
                        let from = Key::from(t.as_str());
                        block_on(async move { store.copy(&from, &key).await })
                            .map(|_| self.size)
                            .map_err(|e| write_err(self.bucket.err(e)))
                    }
                };
                delete(&self.bucket, &t);
                if let Body::Temporary(temp) = &mut self.body {
                    *temp = None;
                }
                result
            }
        }
    }

    fn same_as_stored(&self) -> bool {
        matches!(self.compare_stored(), Ok(Some(true)))
    }
}

impl Drop for S3Staged {
    fn drop(&mut self) {
        if let Body::Temporary(Some(t)) = &self.body {
            delete(&self.bucket, t);
        }
    }
}
