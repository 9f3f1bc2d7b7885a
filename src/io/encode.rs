//! Encodes a de-identified object as a Part 10 stream: a preamble of zeros, the
//! rebuilt file meta group, the dataset, Pixel Data copied byte for byte from the
//! open input, then the trailing elements. Where the bytes go is the sink's
//! business ([`ObjectWriter`]); this module opens nothing.

use super::error::{EncodeError, ReadError, error_chain, is_uid};
use super::source::{Input, Stamp};
use dicom_core::Tag;
use dicom_encoding::TransferSyntax;
use dicom_encoding::text::SpecificCharacterSet;
use dicom_encoding::transfer_syntax::Codec;
use dicom_object::{FileMetaTable, FileMetaTableBuilder, InMemDicomObject};
use dicom_parser::dataset::{DataSetWriter, IntoTokens};
use std::io::{SeekFrom, Write};
use std::ops::Range;
use std::sync::Arc;

/// Implementation Class UID of dicom-deid: a 2.25 UID derived once from a UUID.
pub const IMPLEMENTATION_CLASS_UID: &str = "2.25.309477246411479929348632399406469746954";
/// At most 16 characters (PS3.7 SH).
pub const IMPLEMENTATION_VERSION_NAME: &str = concat!(
    "DICOM_DEID_",
    env!("CARGO_PKG_VERSION_MAJOR"),
    env!("CARGO_PKG_VERSION_MINOR"),
    env!("CARGO_PKG_VERSION_PATCH")
);

const SOP_CLASS_UID: Tag = Tag(0x0008, 0x0016);
const IMPLICIT_VR_LE: &str = "1.2.840.10008.1.2";
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
) -> Result<FileMetaTable, ReadError> {
    let class = text_of(dataset, SOP_CLASS_UID)
        .or_else(|| input_meta.map(|m| m.media_storage_sop_class_uid().to_string()))
        .filter(|s| !s.is_empty())
        .ok_or_else(|| ReadError::Malformed("no SOP Class UID in dataset or file meta".into()))?;
    let instance = text_of(dataset, SOP_INSTANCE_UID)
        .or_else(|| input_meta.map(|m| remap_uid(m.media_storage_sop_instance_uid())))
        .filter(|s| !s.is_empty())
        .ok_or_else(|| {
            ReadError::Malformed("no SOP Instance UID in dataset or file meta".into())
        })?;
    // Values kept from the dataset go into the meta group unchecked by the builder,
    // and an invalid one makes the output unreadable: refuse them here.
    for (what, uid) in [("SOP Class UID", &class), ("SOP Instance UID", &instance)] {
        if !is_uid(uid) {
            return Err(ReadError::Malformed(format!(
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
        .map_err(|e| ReadError::Malformed(format!("file meta group: {}", error_chain(&e))))
}

/// Writes `dataset` in `ts`, consuming it. It goes through [`super::emit`]; what
/// that declines, through [`encode_with_dicom_rs`].
pub fn write_dataset<W: Write + ?Sized>(
    out: &mut W,
    mut dataset: InMemDicomObject,
    ts: &TransferSyntax,
) -> Result<(), EncodeError> {
    // A value too long for its VR's 2-byte length field (read from implicit VR, or
    // from UN) is written as UN, as PS3.5 6.2.2 says, instead of failing the file.
    super::retype::long_values_to_un(&mut dataset, ts, super::error::MAX_DEPTH);
    let mut plain = Vec::with_capacity(16 * 1024);
    let emitted = match (ts.endianness(), ts.uid() != IMPLICIT_VR_LE) {
        (dicom_encoding::Endianness::Little, explicit) => {
            super::emit::dataset(&dataset, explicit, &mut plain).is_ok()
        }
        (dicom_encoding::Endianness::Big, true) => {
            super::emit::dataset_big_endian(&dataset, &mut plain).is_ok()
        }
        (dicom_encoding::Endianness::Big, false) => false,
    };
    if !emitted {
        plain = encode_with_dicom_rs(dataset, ts)?;
    }
    if let Codec::Dataset(Some(_)) = ts.codec() {
        // Deflated: the dataset is encoded in memory (it was inflated in memory to
        // be read), then compressed in one call by this thread's compressor. A new
        // zlib stream allocates and zeroes a few hundred KiB of state, which `perf`
        // showed at 5% of a run over small files; `reset` reuses it.
        plain = deflate(&plain).map_err(EncodeError::from_write)?;
    }
    out.write_all(&plain).map_err(EncodeError::from_write)
}

/// `dataset` encoded in `ts` (deflated syntaxes: before compression) by dicom-rs's
/// writer, consuming it (dicom-object's `write_dataset_with_ts` borrows the object
/// and so clones every value on the way to the encoder). The fallback of
/// [`write_dataset`], and what the fuzz target compares [`super::emit`] with.
pub fn encode_with_dicom_rs(
    dataset: InMemDicomObject,
    ts: &TransferSyntax,
) -> Result<Vec<u8>, EncodeError> {
    let mut plain = Vec::new();
    DataSetWriter::with_ts_cs(&mut plain, ts, SpecificCharacterSet::default())
        .map_err(|e| EncodeError::from_dicom(&e))?
        .write_sequence(dataset.into_tokens())
        .map_err(|e| EncodeError::from_dicom(&e))?;
    Ok(plain)
}

/// Raw deflate (RFC 1951, as the Deflated Explicit VR Little Endian syntax wants) of
/// `plain` at the fast level, with a compressor kept per thread.
fn deflate(plain: &[u8]) -> std::io::Result<Vec<u8>> {
    use flate2::{Compress, Compression, FlushCompress, Status};
    thread_local! {
        static COMPRESS: std::cell::RefCell<Option<Compress>> = const { std::cell::RefCell::new(None) };
    }
    COMPRESS.with(|cell| {
        let mut slot = cell.borrow_mut();
        let c = slot.get_or_insert_with(|| Compress::new(Compression::fast(), false));
        c.reset();
        let mut out = Vec::with_capacity(plain.len() / 2 + 1024);
        loop {
            let consumed = usize::try_from(c.total_in()).unwrap_or(usize::MAX);
            let rest = plain.get(consumed..).unwrap_or(&[]);
            if out.len() == out.capacity() {
                out.reserve(out.capacity().max(1024));
            }
            let status = c
                .compress_vec(rest, &mut out, FlushCompress::Finish)
                .map_err(std::io::Error::other)?;
            if status == Status::StreamEnd {
                return Ok(out);
            }
        }
    })
}

/// Where an encoded object goes. A sink hands one to [`Part10::encode`]; the
/// default Pixel Data copy reads the input through a buffer, and a local file sink
/// overrides it to let the kernel move the bytes.
pub trait ObjectWriter: Write {
    /// Copies `range` of `input` to the output; returns the bytes copied (fewer
    /// when the input ends early).
    fn copy_range(&mut self, input: &mut dyn Input, range: Range<u64>) -> Result<u64, EncodeError> {
        buffered_copy(self, input, range)
    }
}

/// Copies `range` of `input` to `out` through a 256 KiB buffer; returns the bytes
/// copied (fewer when the input ends early). The default of
/// [`ObjectWriter::copy_range`], and the fallback of writers that override it.
pub fn buffered_copy(
    out: &mut (impl Write + ?Sized),
    input: &mut dyn Input,
    range: Range<u64>,
) -> Result<u64, EncodeError> {
    input
        .seek(SeekFrom::Start(range.start))
        .map_err(EncodeError::Read)?;
    let mut buf = vec![0u8; 256 * 1024];
    let mut left = range.end - range.start;
    let mut copied = 0;
    while left > 0 {
        let want = buf.len().min(usize::try_from(left).unwrap_or(usize::MAX));
        let n = match input.read(&mut buf[..want]) {
            Ok(0) => break,
            Ok(n) => n,
            Err(e) if e.kind() == std::io::ErrorKind::Interrupted => continue,
            Err(e) => return Err(EncodeError::Read(e)),
        };
        out.write_all(&buf[..n]).map_err(EncodeError::from_write)?;
        left -= n as u64;
        copied += n as u64;
    }
    Ok(copied)
}

/// Any plain writer (a `Vec`, a socket) takes an object with the buffered copy.
impl ObjectWriter for Vec<u8> {}

/// Changes native Pixel Data on its way to the output, one unit (a frame, or the
/// whole value for data not aligned on bytes per frame) at a time: the encoder reads
/// a unit, hands it over, writes it, so a long cine never sits in memory whole.
/// io knows nothing of why or where: the pipeline chooses the editor.
pub trait FrameEdit: Send {
    /// Bytes in one unit (at least 1).
    fn unit_len(&self) -> usize;
    /// Units to edit; bytes of the value after them are copied unchanged.
    fn units(&self) -> u64;
    /// Edits unit `index` (0-based) in place.
    fn edit(&self, index: u64, unit: &mut [u8]);
}

/// An edit of Pixel Data's value, which starts at `value_start` in the input.
pub struct PixelEdit {
    pub value_start: u64,
    pub editor: Box<dyn FrameEdit>,
}

/// Pixel Data as the output gets it: a range of the input, from the bytes read at
/// open (small files) or from the open handle.
pub struct PixelCopy {
    /// Byte range of the whole element (header included) in the input.
    pub range: Range<u64>,
    /// The input's bytes, when it was read whole.
    pub contents: Option<Arc<Vec<u8>>>,
    /// An explicit VR header written in place of the input's implicit one (the
    /// range then starts after the 8-byte implicit header).
    pub header: Option<[u8; 12]>,
    /// Redaction of the value; None: copied byte for byte.
    pub edit: Option<PixelEdit>,
    /// Encapsulated frames decoded, edited and written anew (the element's header
    /// too); `range` and `header` are then unused.
    pub frames: Option<super::encap::FramesEdit>,
}

/// A de-identified object ready to be encoded, holding the input it came from.
pub struct Part10 {
    pub meta: FileMetaTable,
    pub dataset: InMemDicomObject,
    pub ts: &'static TransferSyntax,
    pub pixel: Option<PixelCopy>,
    pub trailing: Option<InMemDicomObject>,
    pub input: Box<dyn Input>,
    /// The input's stamp at open: the object is refused if it differs at the end.
    pub stamp: Stamp,
}

impl Part10 {
    /// Writes the whole object to `out`. The input's stamp is compared last, after
    /// every byte was taken from it: a sink must not commit the object on error.
    pub fn encode(self, out: &mut dyn ObjectWriter) -> Result<(), EncodeError> {
        let Part10 {
            meta,
            dataset,
            ts,
            pixel,
            trailing,
            mut input,
            stamp,
        } = self;
        let werr = EncodeError::from_write;
        write_preamble_and_meta(&mut *out, meta)?;
        write_dataset(&mut *out, dataset, ts)?;
        if let Some(p) = pixel.as_ref().filter(|p| p.frames.is_some()) {
            if let Some(frames) = &p.frames {
                super::encap::write_frames(out, &mut *input, p.contents.as_deref(), frames)?;
            }
        } else if let Some(p) = pixel {
            if let Some(header) = p.header {
                out.write_all(&header).map_err(werr)?;
            }
            let want = p.range.end - p.range.start;
            let copied = match (&p.edit, &p.contents) {
                (Some(edit), contents) => {
                    edited_copy(out, &mut *input, contents.as_deref(), &p.range, edit)?
                }
                (None, contents) => match contents {
                    Some(bytes) => {
                        let slice = usize::try_from(p.range.start)
                            .ok()
                            .zip(usize::try_from(p.range.end).ok())
                            .and_then(|(a, b)| bytes.get(a..b))
                            .ok_or_else(|| {
                                EncodeError::Malformed(
                                    "Pixel Data runs past the end of the file".into(),
                                )
                            })?;
                        out.write_all(slice).map_err(werr)?;
                        want
                    }
                    None => out.copy_range(&mut *input, p.range.clone())?,
                },
            };
            if copied != want {
                return Err(EncodeError::Changed);
            }
        }
        if let Some(trailing) = trailing
            && trailing.tags().next().is_some()
        {
            write_dataset(&mut *out, trailing, ts)?;
        }
        out.flush().map_err(werr)?;
        match input.stamp() {
            Ok(now) if now == stamp => Ok(()),
            Ok(_) => Err(EncodeError::Changed),
            Err(e) => Err(EncodeError::Read(e)),
        }
    }
}

/// The 128-byte preamble, `DICM` and the file meta group.
pub fn write_preamble_and_meta<W: Write + ?Sized>(
    out: &mut W,
    meta: FileMetaTable,
) -> Result<(), EncodeError> {
    let mut head = Vec::with_capacity(512);
    head.extend_from_slice(&[0u8; 128]);
    head.extend_from_slice(b"DICM");
    let elements: Vec<_> = meta.clone().into_element_iter().collect();
    if super::emit::elements(&elements, &mut head).is_err() {
        head.truncate(132);
        meta.write(&mut head)
            .map_err(|e| EncodeError::from_dicom(&e))?;
    }
    out.write_all(&head).map_err(EncodeError::from_write)
}

/// Reads `len` bytes at `at` of the input (or of its bytes read at open) into
/// `buf`; returns how many there were (fewer when the input ends early).
pub(super) fn read_at(
    input: &mut dyn Input,
    contents: Option<&Vec<u8>>,
    at: u64,
    buf: &mut [u8],
) -> Result<usize, EncodeError> {
    if let Some(bytes) = contents {
        let start = usize::try_from(at).unwrap_or(usize::MAX).min(bytes.len());
        let n = buf.len().min(bytes.len() - start);
        buf[..n].copy_from_slice(&bytes[start..start + n]);
        return Ok(n);
    }
    input.seek(SeekFrom::Start(at)).map_err(EncodeError::Read)?;
    let mut filled = 0;
    while filled < buf.len() {
        match input.read(&mut buf[filled..]) {
            Ok(0) => break,
            Ok(n) => filled += n,
            Err(e) if e.kind() == std::io::ErrorKind::Interrupted => continue,
            Err(e) => return Err(EncodeError::Read(e)),
        }
    }
    Ok(filled)
}

/// Copies `range` of the input with its value edited unit by unit; one unit's
/// buffer is all it holds. Returns the bytes copied.
fn edited_copy(
    out: &mut dyn ObjectWriter,
    input: &mut dyn Input,
    contents: Option<&Vec<u8>>,
    range: &Range<u64>,
    edit: &PixelEdit,
) -> Result<u64, EncodeError> {
    let werr = EncodeError::from_write;
    let value_start = edit.value_start.clamp(range.start, range.end);
    let mut copied = 0u64;
    // The element header, as it was.
    let mut head = vec![0u8; usize::try_from(value_start - range.start).unwrap_or(0)];
    let n = read_at(input, contents, range.start, &mut head)?;
    out.write_all(&head[..n]).map_err(werr)?;
    copied += n as u64;
    let unit_len = edit.editor.unit_len().max(1);
    let mut buf = vec![0u8; unit_len];
    let mut at = value_start;
    for index in 0..edit.editor.units() {
        if at + unit_len as u64 > range.end {
            break;
        }
        let n = read_at(input, contents, at, &mut buf)?;
        if n != unit_len {
            return Ok(copied + n as u64);
        }
        edit.editor.edit(index, &mut buf);
        out.write_all(&buf).map_err(werr)?;
        at += unit_len as u64;
        copied += unit_len as u64;
    }
    drop(buf);
    // Padding after the last unit, unchanged.
    match contents {
        Some(_) => {
            let mut rest = vec![0u8; usize::try_from(range.end - at).unwrap_or(0)];
            let n = read_at(input, contents, at, &mut rest)?;
            out.write_all(&rest[..n]).map_err(werr)?;
            copied += n as u64;
        }
        None => copied += out.copy_range(input, at..range.end)?,
    }
    Ok(copied)
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
            matches!(EncodeError::from_dicom(&e), EncodeError::OutputFull(_)),
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
            Err(EncodeError::OutputFull(_))
        ));
    }
}
