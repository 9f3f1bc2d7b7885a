//! Writes a de-identified Part 10 file: a new preamble and file meta group, the
//! de-identified dataset, Pixel Data copied byte for byte from the input, then the
//! trailing elements. Always through a temporary file renamed into place, so no
//! partial output is ever visible. Never opens an input for writing.

use super::read::Source;
use crate::error::{FileError, error_chain};
use dicom_core::Tag;
use dicom_encoding::TransferSyntax;
use dicom_encoding::text::SpecificCharacterSet;
use dicom_encoding::transfer_syntax::Codec;
use dicom_object::{FileMetaTable, FileMetaTableBuilder, InMemDicomObject};
use dicom_parser::dataset::{DataSetWriter, IntoTokens};
use std::fs::{File, OpenOptions};
use std::io::{BufWriter, Read, Seek, SeekFrom, Write};
use std::path::{Path, PathBuf};
use std::sync::atomic::{AtomicU64, Ordering};

/// Implementation Class UID of dicom-deid: a 2.25 UID derived once from a UUID.
pub const IMPLEMENTATION_CLASS_UID: &str = "2.25.309477246411479929348632399406469746954";
/// At most 16 characters (PS3.7 SH).
pub const IMPLEMENTATION_VERSION_NAME: &str = concat!(
    "DICOM_DEID_",
    env!("CARGO_PKG_VERSION_MAJOR"),
    env!("CARGO_PKG_VERSION_MINOR"),
    env!("CARGO_PKG_VERSION_PATCH")
);

/// Prefix of temporary files; a crashed run leaves only names with this prefix.
pub const TEMP_PREFIX: &str = ".dicom-deid-tmp-";

static TEMP_COUNTER: AtomicU64 = AtomicU64::new(0);

const SOP_CLASS_UID: Tag = Tag(0x0008, 0x0016);
const SOP_INSTANCE_UID: Tag = Tag(0x0008, 0x0018);

fn text_of(obj: &InMemDicomObject, tag: Tag) -> Option<String> {
    let v = obj.get(tag)?.to_str().ok()?;
    let v = v.trim_end_matches(['\0', ' ']).trim_start();
    (!v.is_empty()).then(|| v.to_string())
}

/// The file meta group of the output: SOP Class and Instance from the
/// de-identified dataset (so the old SOP Instance UID cannot survive in the meta),
/// the input's transfer syntax, our implementation identity, and no AE titles or
/// private information (they can name the site).
pub fn build_meta(
    dataset: &InMemDicomObject,
    input_meta: Option<&FileMetaTable>,
    ts_uid: &str,
    remap_uid: impl Fn(&str) -> String,
) -> Result<FileMetaTable, FileError> {
    let class = text_of(dataset, SOP_CLASS_UID)
        .or_else(|| input_meta.map(|m| m.media_storage_sop_class_uid().to_string()))
        .filter(|s| !s.is_empty())
        .ok_or_else(|| FileError::Malformed("no SOP Class UID in dataset or file meta".into()))?;
    let instance = text_of(dataset, SOP_INSTANCE_UID)
        .or_else(|| input_meta.map(|m| remap_uid(m.media_storage_sop_instance_uid())))
        .filter(|s| !s.is_empty())
        .ok_or_else(|| {
            FileError::Malformed("no SOP Instance UID in dataset or file meta".into())
        })?;
    // Values kept from the dataset go into the meta group unchecked by the builder,
    // and an invalid one makes the output unreadable: refuse them here.
    for (what, uid) in [("SOP Class UID", &class), ("SOP Instance UID", &instance)] {
        if !is_valid_uid(uid) {
            return Err(FileError::Malformed(format!(
                "{what} is not a valid UID (digits and dots, at most 64 characters)"
            )));
        }
    }
    FileMetaTableBuilder::new()
        .media_storage_sop_class_uid(class)
        .media_storage_sop_instance_uid(instance)
        .transfer_syntax(ts_uid)
        .implementation_class_uid(IMPLEMENTATION_CLASS_UID)
        .implementation_version_name(IMPLEMENTATION_VERSION_NAME)
        .build()
        .map_err(|e| FileError::Malformed(format!("file meta group: {}", error_chain(&e))))
}

fn is_valid_uid(uid: &str) -> bool {
    !uid.is_empty()
        && uid.len() <= 64
        && uid
            .split('.')
            .all(|c| !c.is_empty() && c.bytes().all(|b| b.is_ascii_digit()))
}

/// Writes `dest` atomically; returns the number of bytes written.
pub fn write_part10(
    dest: &Path,
    input: &Path,
    meta: &FileMetaTable,
    source: Source,
) -> Result<u64, FileError> {
    let dir = dest
        .parent()
        .ok_or_else(|| FileError::Write("output path has no parent".into()))?;
    let tmp = temp_path(dir);
    let result = write_to(&tmp, input, meta, source)
        .and_then(|n| std::fs::rename(&tmp, dest).map_err(write_error).map(|()| n));
    if result.is_err() {
        let _ = std::fs::remove_file(&tmp);
    }
    result
}

fn temp_path(dir: &Path) -> PathBuf {
    static PREFIX: std::sync::OnceLock<String> = std::sync::OnceLock::new();
    let prefix =
        PREFIX.get_or_init(|| format!("{TEMP_PREFIX}{}-{}-", host_tag(), std::process::id()));
    let n = TEMP_COUNTER.fetch_add(1, Ordering::Relaxed);
    dir.join(format!("{prefix}{n}"))
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

/// Writes `dataset` in `ts`, consuming it: dicom-object's `write_dataset_with_ts`
/// borrows the object and so clones every value (every nested sequence too) on the
/// way to the encoder.
fn write_dataset<W: Write>(
    out: &mut W,
    dataset: InMemDicomObject,
    ts: &TransferSyntax,
) -> Result<(), FileError> {
    if let Codec::Dataset(Some(_)) = ts.codec() {
        // Deflated: the encoder sees a few large writes instead of one per token
        // (each write into flate2's encoder zeroes its 32 KiB output buffer), and
        // its end is written by `finish`, whose errors are reported, not by a drop.
        let encoder = flate2::write::DeflateEncoder::new(out, flate2::Compression::fast());
        let mut buffered = BufWriter::with_capacity(64 * 1024, encoder);
        DataSetWriter::with_ts(&mut buffered, ts)
            .map_err(|e| dicom_write_error(&e))?
            .write_sequence(dataset.into_tokens())
            .map_err(|e| dicom_write_error(&e))?;
        let encoder = buffered
            .into_inner()
            .map_err(|e| write_error(e.into_error()))?;
        encoder.finish().map_err(write_error)?;
    } else {
        DataSetWriter::with_ts_cs(out, ts, SpecificCharacterSet::default())
            .map_err(|e| dicom_write_error(&e))?
            .write_sequence(dataset.into_tokens())
            .map_err(|e| dicom_write_error(&e))?;
    }
    Ok(())
}

/// Counts the bytes that go through, so the output size needs no fstat.
struct Counting<W> {
    inner: W,
    bytes: u64,
}

impl<W: Write> Write for Counting<W> {
    fn write(&mut self, buf: &[u8]) -> std::io::Result<usize> {
        let n = self.inner.write(buf)?;
        self.bytes += n as u64;
        Ok(n)
    }
    fn flush(&mut self) -> std::io::Result<()> {
        self.inner.flush()
    }
}

/// A short name for this machine, so runs on several machines sharing one output
/// tell their temporaries apart.
fn host_tag() -> &'static str {
    static TAG: std::sync::OnceLock<String> = std::sync::OnceLock::new();
    TAG.get_or_init(|| {
        std::fs::read_to_string("/proc/sys/kernel/hostname")
            .map(|h| {
                h.trim()
                    .chars()
                    .filter(|c| c.is_ascii_alphanumeric())
                    .take(32)
                    .collect()
            })
            .unwrap_or_else(|_| "host".into())
    })
}

/// Removes temporaries that a killed run of this machine left under `out`: same
/// host, process no longer running. Returns how many were removed.
pub fn remove_stale_temporaries(out: &Path) -> usize {
    let proc_fs = Path::new("/proc/self").exists();
    if !proc_fs {
        return 0; // cannot tell a dead process from a live one here
    }
    let prefix = format!("{TEMP_PREFIX}{}-", host_tag());
    let mut removed = 0;
    for e in walkdir::WalkDir::new(out)
        .into_iter()
        .filter_map(Result::ok)
    {
        let name = e.file_name().to_string_lossy();
        let Some(rest) = name.strip_prefix(&prefix) else {
            continue;
        };
        let pid = rest.split('-').next().unwrap_or("");
        let alive = !pid.is_empty() && Path::new("/proc").join(pid).exists();
        if !alive && std::fs::remove_file(e.path()).is_ok() {
            removed += 1;
        }
    }
    removed
}

/// An error of the dicom-rs writer: a full device can hide anywhere in its chain of
/// causes (an `io::Error` several levels down), and must still stop the batch.
fn dicom_write_error(e: &(dyn std::error::Error + 'static)) -> FileError {
    let mut cause: Option<&(dyn std::error::Error + 'static)> = Some(e);
    while let Some(c) = cause {
        if let Some(io) = c.downcast_ref::<std::io::Error>()
            && matches!(
                io.kind(),
                std::io::ErrorKind::StorageFull | std::io::ErrorKind::QuotaExceeded
            )
        {
            return FileError::OutputFull(error_chain(e));
        }
        cause = c.source();
    }
    FileError::Write(error_chain(e))
}

/// Write errors, with a full device told apart: it stops the batch.
fn write_error(e: std::io::Error) -> FileError {
    if matches!(
        e.kind(),
        std::io::ErrorKind::StorageFull | std::io::ErrorKind::QuotaExceeded
    ) {
        FileError::OutputFull(e.to_string())
    } else {
        FileError::Write(e.to_string())
    }
}

fn write_to(
    tmp: &Path,
    input: &Path,
    meta: &FileMetaTable,
    source: Source,
) -> Result<u64, FileError> {
    let werr = write_error;
    let file = create_temp(tmp).map_err(werr)?;
    let mut out = BufWriter::with_capacity(
        256 * 1024,
        Counting {
            inner: file,
            bytes: 0,
        },
    );
    out.write_all(&[0u8; 128]).map_err(werr)?;
    out.write_all(b"DICM").map_err(werr)?;
    meta.write(&mut out).map_err(|e| dicom_write_error(&e))?;
    write_dataset(&mut out, source.header, source.ts)?;
    // A dataset read as implicit VR under an explicit VR syntax is written in the
    // declared syntax: Pixel Data gets an explicit VR header instead of its own.
    let pixel = match (&source.pixel, source.implicit_vr_repaired) {
        (Some(range), Some(Some(header))) => {
            out.write_all(&header).map_err(werr)?;
            Some(range.start + 8..range.end)
        }
        (range, _) => range.clone(),
    };
    if let (Some(range), Some(bytes)) = (&pixel, &source.contents) {
        let pixel = usize::try_from(range.start)
            .ok()
            .zip(usize::try_from(range.end).ok())
            .and_then(|(a, b)| bytes.get(a..b))
            .ok_or_else(|| {
                FileError::Malformed("Pixel Data runs past the end of the file".into())
            })?;
        out.write_all(pixel).map_err(werr)?;
    } else if let Some(range) = &pixel {
        let mut src = File::open(input).map_err(FileError::Read)?;
        src.seek(SeekFrom::Start(range.start))
            .map_err(FileError::Read)?;
        let want = range.end - range.start;
        let copied = std::io::copy(&mut src.take(want), &mut out).map_err(werr)?;
        if copied != want {
            return Err(FileError::Malformed(
                "input changed or shrank while it was read".into(),
            ));
        }
    }
    if let Some(trailing) = source.trailing
        && trailing.tags().next().is_some()
    {
        write_dataset(&mut out, trailing, source.ts)?;
    }
    let counted = out.into_inner().map_err(|e| write_error(e.into_error()))?;
    Ok(counted.bytes)
}

#[cfg(test)]
mod tests {
    use super::*;

    /// A device that is always full.
    struct Full;

    impl Write for Full {
        fn write(&mut self, _: &[u8]) -> std::io::Result<usize> {
            Err(std::io::ErrorKind::StorageFull.into())
        }
        fn flush(&mut self) -> std::io::Result<()> {
            Ok(())
        }
    }

    #[test]
    fn a_full_device_inside_a_dicom_rs_error_is_still_output_full() {
        let meta = FileMetaTableBuilder::new()
            .media_storage_sop_class_uid("1.2.840.10008.5.1.4.1.1.2")
            .media_storage_sop_instance_uid("2.25.1")
            .transfer_syntax("1.2.840.10008.1.2.1")
            .build()
            .unwrap();
        let e = meta.write(Full).unwrap_err();
        assert!(
            matches!(dicom_write_error(&e), FileError::OutputFull(_)),
            "{e}"
        );
        let mut obj = InMemDicomObject::new_empty();
        obj.put(dicom_core::DataElement::new(
            Tag(0x0010, 0x0010),
            dicom_core::VR::PN,
            dicom_core::PrimitiveValue::from("A^B"),
        ));
        let ts = dicom_transfer_syntax_registry::entries::EXPLICIT_VR_LITTLE_ENDIAN.erased();
        assert!(matches!(
            write_dataset(&mut Full, obj, &ts),
            Err(FileError::OutputFull(_))
        ));
    }
}
