//! Reads a DICOM file as three parts: the dataset up to Pixel Data (into memory), the
//! byte range of Pixel Data (never loaded), and the few elements after it. Memory
//! therefore stays flat in file size. Knows nothing of profiles.

use super::error::{ReadError, error_chain};
use super::source::{Input, Stamp, Window};
use dicom_core::Tag;
use dicom_encoding::TransferSyntax;
use dicom_encoding::transfer_syntax::{Codec, TransferSyntaxIndex};
use dicom_object::{FileMetaTable, FileMetaTableBuilder, InMemDicomObject};
use dicom_parser::dataset::LazyDataToken;
use dicom_parser::dataset::lazy_read::LazyDataSetReader;
use dicom_parser::stateful::decode::StatefulDecode;
use dicom_transfer_syntax_registry::TransferSyntaxRegistry;
use std::io::{Cursor, Read, Seek, SeekFrom};
use std::ops::Range;
use std::path::Path;
use std::sync::Arc;

pub const DICOMDIR_SOP_CLASS: &str = "1.2.840.10008.1.3.10";
const EXPLICIT_VR_LE: &str = "1.2.840.10008.1.2.1";
const IMPLICIT_VR_LE: &str = "1.2.840.10008.1.2";
const EXPLICIT_VR_BE: &str = "1.2.840.10008.1.2.2";

/// Elements after Pixel Data are rare and small (padding, signatures); a larger
/// tail is junk that is dropped rather than loaded.
const MAX_TRAILING_BYTES: u64 = 64 << 20;
/// A deflated dataset is held in memory once inflated, so it inflates against a
/// budget: [`INFLATE_RATIO`] times the file's size, at least [`MIN_INFLATE_BUDGET`],
/// at most [`MAX_INFLATED_BYTES`]. A fixed 2 GiB ceiling let a 3 MB file of empty
/// sequence items take over 5 GB. Real datasets deflate a few times; blank pixel
/// data far more (pydicom's image_dfl.dcm: 56 times), which the floor keeps
/// readable for small images at no real cost in memory.
const INFLATE_RATIO: u64 = 64;
const MIN_INFLATE_BUDGET: u64 = 16 << 20;
const MAX_INFLATED_BYTES: u64 = 1 << 30;

/// How many bytes a deflated dataset of a `size`-byte file may inflate to.
fn inflate_budget(size: u64) -> u64 {
    size.saturating_mul(INFLATE_RATIO)
        .clamp(MIN_INFLATE_BUDGET, MAX_INFLATED_BYTES)
}

pub use super::error::MAX_DEPTH;

/// A DICOM object ready to be de-identified, with the open input it was read from:
/// Pixel Data is a range of that same handle (or of the bytes read from it), never
/// a path.
pub struct Source {
    /// File meta group as read (absent for a dataset stored without one).
    pub meta: Option<FileMetaTable>,
    pub ts: &'static TransferSyntax,
    /// Everything before top-level Pixel Data (everything, when the file has none or
    /// when the dataset is deflated).
    pub header: InMemDicomObject,
    /// Byte range of the Pixel Data element, header included, copied as is.
    pub pixel: Option<Range<u64>>,
    /// Elements after Pixel Data.
    pub trailing: Option<InMemDicomObject>,
    /// Bytes after Pixel Data that do not parse as DICOM and were dropped.
    pub dropped_trailing_bytes: u64,
    pub size: u64,
    /// The whole input, when it was small enough to be read in one go and has Pixel
    /// Data: `pixel` is copied from here.
    pub contents: Option<Arc<Vec<u8>>>,
    /// The open input, for `pixel` when `contents` is None, and for the stamp
    /// compared when the output is finished.
    pub input: Box<dyn Input>,
    /// The input's stamp when it was opened.
    pub stamp: Stamp,
    /// Set when the transfer syntax declares explicit VR but the dataset is encoded
    /// in implicit VR (some old writers do this): it was read as implicit VR and is
    /// written in the declared syntax, so the output is repaired. The Pixel Data
    /// element then gets this explicit VR header in place of its 8-byte implicit one.
    pub implicit_vr_repaired: Option<PixelHeader>,
    /// Sequences stored as UN with undefined length (CP-246) that were read as the
    /// implicit VR sequences they are, and are written as SQ.
    pub un_sequences_repaired: usize,
    /// Standard attributes stored as UN that were given their dictionary VR.
    pub un_retyped: usize,
    /// The file meta group lacked its group length or transfer syntax and was read
    /// element by element (see [`lenient_meta`]).
    pub meta_read_leniently: bool,
}

/// The explicit VR header written for Pixel Data read from an implicit VR dataset;
/// None when the dataset has no Pixel Data.
pub type PixelHeader = Option<[u8; 12]>;

pub enum Classified {
    Dicom(Box<Source>),
    /// A DICOMDIR holds patient names and file offsets: never copied or rewritten.
    Dicomdir,
    NotDicom,
}

fn malformed(what: &str, e: impl std::error::Error) -> ReadError {
    ReadError::Malformed(format!("{what}: {}", error_chain(&e)))
}

/// Opens `path` read-only and classifies it, reading what a de-identification needs.
pub fn read(path: &Path) -> Result<Classified, ReadError> {
    let (input, stamp) = super::source::open_file(path).map_err(ReadError::Io)?;
    read_input(input, stamp)
}

/// Classifies an opened input whose stamp at open is `stamp`, reading what a
/// de-identification needs. The handle moves into the [`Source`].
pub fn read_input(mut input: Box<dyn Input>, stamp: Stamp) -> Result<Classified, ReadError> {
    match read_parts(&mut input, stamp) {
        Ok((parts, size, bytes)) => Ok(parts.into_classified(input, stamp, size, bytes)),
        // An input rewritten in place while it was read fails to parse in odd ways
        // (it may be empty for a moment): say what really happened.
        Err(e) if input.stamp().is_ok_and(|now| now != stamp) => {
            let _ = e;
            Err(ReadError::Changed)
        }
        Err(e) => Err(e),
    }
}

/// The parts of an input and the bytes read (the whole input, when it was small).
type PartsRead = (Parts, u64, Option<Arc<Vec<u8>>>);

fn read_parts(input: &mut Box<dyn Input>, stamp: Stamp) -> Result<PartsRead, ReadError> {
    let size = stamp.size;
    if size <= WHOLE_FILE_BYTES {
        // One read of the whole file; the scan, the parse and the Pixel Data copy
        // then all work from memory.
        // As many bytes as the handle reported, in one read where the kernel allows
        // (`read_to_end` spent three reads and an end probe on a 40 KiB file); a
        // file that grows or shrinks meanwhile is caught by the stamp check.
        let mut bytes = vec![0u8; size as usize];
        let filled = read_up_to(&mut **input, &mut bytes).map_err(ReadError::Io)?;
        bytes.truncate(filled);
        let size = bytes.len() as u64;
        let bytes = Arc::new(bytes);
        let mut reader = Cursor::new(&bytes[..]);
        let parts = read_from(&mut reader, size, Reading::whole(&bytes))?;
        return Ok((parts, size, Some(bytes)));
    }
    // The header is read through a window that survives the seeks of reading it;
    // Pixel Data is never read here (a sink copies it from the handle). The
    // window's buffer goes from one input to the next on this thread.
    thread_local! {
        static WINDOW: std::cell::Cell<Vec<u8>> = const { std::cell::Cell::new(Vec::new()) };
    }
    let mut window = Window::with_buffer(&mut **input, 32 * 1024, WINDOW.take());
    let parts = read_from(&mut window, size, Reading::prefix());
    WINDOW.set(window.into_buffer());
    Ok((parts?, size, None))
}

/// What [`read_from`] found, before the input handle joins it.
enum Parts {
    Dicom(Box<Parsed>),
    Dicomdir,
    NotDicom,
}

/// A [`Source`] without its input.
struct Parsed {
    meta: Option<FileMetaTable>,
    ts: &'static TransferSyntax,
    header: InMemDicomObject,
    pixel: Option<Range<u64>>,
    trailing: Option<InMemDicomObject>,
    dropped_trailing_bytes: u64,
    implicit_vr_repaired: Option<PixelHeader>,
    un_sequences_repaired: usize,
    un_retyped: usize,
    meta_read_leniently: bool,
}

impl Parts {
    fn into_classified(
        self,
        input: Box<dyn Input>,
        stamp: Stamp,
        size: u64,
        bytes: Option<Arc<Vec<u8>>>,
    ) -> Classified {
        match self {
            Parts::Dicomdir => Classified::Dicomdir,
            Parts::NotDicom => Classified::NotDicom,
            Parts::Dicom(p) => {
                let p = *p;
                let contents = if p.pixel.is_some() { bytes } else { None };
                Classified::Dicom(Box::new(Source {
                    meta: p.meta,
                    ts: p.ts,
                    header: p.header,
                    pixel: p.pixel,
                    trailing: p.trailing,
                    dropped_trailing_bytes: p.dropped_trailing_bytes,
                    size,
                    contents,
                    input,
                    stamp,
                    implicit_vr_repaired: p.implicit_vr_repaired,
                    un_sequences_repaired: p.un_sequences_repaired,
                    un_retyped: p.un_retyped,
                    meta_read_leniently: p.meta_read_leniently,
                }))
            }
        }
    }
}

/// Encapsulated transfer syntaxes live under these roots (JPEG processes,
/// JPEG-LS, JPEG 2000, MPEG, HTJ2K... and RLE): their datasets are explicit VR
/// little endian, only Pixel Data differs.
const ENCAPSULATED_ROOTS: [&str; 2] = ["1.2.840.10008.1.2.4.", "1.2.840.10008.1.2.5"];
/// Distinct encapsulated syntaxes unknown to the registry accepted per process;
/// each costs one small allocation for the rest of the run.
const MAX_EXTRA_SYNTAXES: usize = 256;

/// The transfer syntax a file declares, as the reader will read it. The registry
/// knows most; an encapsulated one it does not know (the retired JPEG processes
/// 1.2.840.10008.1.2.4.52..66, later additions) is read as explicit VR little
/// endian and keeps its UID: Pixel Data is copied byte for byte and never decoded,
/// so its codec does not matter.
fn resolve_ts(uid: &str) -> Result<&'static TransferSyntax, ReadError> {
    let uid = uid.trim_end_matches(['\0', ' ']);
    match TransferSyntaxRegistry.get(uid) {
        Some(ts) if !ts.is_unsupported() => Ok(ts),
        _ => encapsulated_syntax(uid).ok_or_else(|| ReadError::unsupported_ts(uid)),
    }
}

fn encapsulated_syntax(uid: &str) -> Option<&'static TransferSyntax> {
    use std::collections::HashMap;
    use std::sync::{Mutex, OnceLock};
    static EXTRA: OnceLock<Mutex<HashMap<String, &'static TransferSyntax>>> = OnceLock::new();
    let under_root = ENCAPSULATED_ROOTS.iter().any(|root| {
        uid.strip_prefix(root)
            .is_some_and(|rest| root.ends_with('.') || rest.is_empty() || rest.starts_with('.'))
    });
    if !super::error::is_uid(uid) || !under_root {
        return None;
    }
    let mut extra = EXTRA
        .get_or_init(Default::default)
        .lock()
        .unwrap_or_else(|e| e.into_inner());
    if let Some(ts) = extra.get(uid) {
        return Some(ts);
    }
    if extra.len() >= MAX_EXTRA_SYNTAXES {
        return None;
    }
    // Leaked once per distinct UID (bounded above): a transfer syntax is 'static.
    let leaked: &'static str = Box::leak(uid.to_string().into_boxed_str());
    let ts: &'static TransferSyntax = Box::leak(Box::new(TransferSyntax::new_ele(
        leaked,
        "encapsulated (unknown to the registry; dataset read as explicit VR little endian)",
        Codec::EncapsulatedPixelData(None, None),
    )));
    extra.insert(uid.to_string(), ts);
    Some(ts)
}

/// Files up to this size are read into memory in one go (per worker, so memory stays
/// flat); larger ones are read through a window up to Pixel Data, which is never
/// loaded: a sink copies it from the handle (the kernel's `copy_file_range` for a
/// folder), which saves reading it into memory and writing it out again. 2 MiB
/// before; on the bench tree the two measured the same, and the lower bound keeps
/// 0.5 MiB slices out of user space.
const WHOLE_FILE_BYTES: u64 = 64 << 10;

fn read_from<R: Read + Seek>(reader: &mut R, size: u64, how: Reading) -> Result<Parts, ReadError> {
    let mut head = [0u8; 132];
    let n = read_up_to(reader, &mut head).map_err(ReadError::Io)?;
    let head = &head[..n];

    let meta_offset = if n >= 132 && &head[128..132] == b"DICM" {
        Some(128)
    } else if n >= 4 && &head[..4] == b"DICM" {
        Some(0)
    } else {
        None
    };
    let mut meta_read_leniently = false;
    let (meta, ts, dataset_start) = match meta_offset {
        Some(off) => {
            check_meta_lengths(reader, off, size)?;
            reader.seek(SeekFrom::Start(off)).map_err(ReadError::Io)?;
            let (meta, start) = match FileMetaTable::from_reader(&mut *reader) {
                Ok(meta) => {
                    let start = reader.stream_position().map_err(ReadError::Io)?;
                    (meta, start)
                }
                Err(e) => match lenient_meta(reader, off, size)? {
                    Some((meta, start)) => {
                        meta_read_leniently = true;
                        (meta, start)
                    }
                    None => return Err(malformed("file meta group", e)),
                },
            };
            if meta.media_storage_sop_class_uid() == DICOMDIR_SOP_CLASS {
                return Ok(Parts::Dicomdir);
            }
            let ts = resolve_ts(meta.transfer_syntax())?;
            (Some(meta), ts, start)
        }
        None => match sniff_bare_dataset(head, size) {
            Some(uid) => {
                let ts = TransferSyntaxRegistry
                    .get(uid)
                    .ok_or_else(|| ReadError::unsupported_ts(uid))?;
                (None, ts, 0)
            }
            None => return Ok(Parts::NotDicom),
        },
    };
    if ts.is_unsupported() {
        return Err(ReadError::unsupported_ts(ts.uid()));
    }

    let source = match ts.codec() {
        Codec::Dataset(Some(_)) => {
            // The compressed bytes are bounded by the input's size; they are
            // inflated from memory (in place when the whole input was read).
            let copy;
            let compressed = match how.input {
                Some(all) => all.get(dataset_start as usize..).unwrap_or(&[]),
                None => {
                    copy = read_range(reader, dataset_start..size)?;
                    &copy[..]
                }
            };
            let budget = inflate_budget(size);
            let explicit = TransferSyntaxRegistry
                .get(EXPLICIT_VR_LE)
                .ok_or_else(|| ReadError::unsupported_ts(EXPLICIT_VR_LE))?;
            let parsed = inflate(compressed, budget, |inflated| {
                let len = inflated.len() as u64;
                let fast = match how.fast {
                    true => super::parse::whole(inflated, MAX_DEPTH).ok(),
                    false => None,
                };
                match fast {
                    Some(header) => Ok(header),
                    None => {
                        let layout = scan(Cursor::new(inflated), explicit, len, true)?;
                        if layout.max_depth > MAX_DEPTH {
                            return Err(ReadError::TooDeep);
                        }
                        InMemDicomObject::read_dataset_with_ts(inflated, explicit)
                            .map_err(|e| malformed("dataset", e))
                    }
                }
            })
            .map_err(|e| malformed("deflated dataset", e))?;
            let Some(header) = parsed else {
                return Err(ReadError::Malformed(format!(
                    "deflated dataset inflates beyond its budget of {budget} bytes \
                     ({INFLATE_RATIO} times the file's size, at least {} MiB, at most {} MiB)",
                    MIN_INFLATE_BUDGET >> 20,
                    MAX_INFLATED_BYTES >> 20
                )));
            };
            let header = header?;
            Parsed {
                meta,
                ts,
                header,
                pixel: None,
                trailing: None,
                dropped_trailing_bytes: 0,
                implicit_vr_repaired: None,
                un_sequences_repaired: 0,
                un_retyped: 0,
                meta_read_leniently: false,
            }
        }
        Codec::Dataset(None) => return Err(ReadError::unsupported_ts(ts.uid())),
        _ => read_streamable(reader, meta, ts, dataset_start, size, how)?,
    };
    let mut source = source;
    source.meta_read_leniently = meta_read_leniently;
    source.un_retyped = super::retype::standard_un(&mut source.header, ts, MAX_DEPTH);
    if let Some(trailing) = source.trailing.as_mut() {
        source.un_retyped += super::retype::standard_un(trailing, ts, MAX_DEPTH);
    }
    Ok(Parts::Dicom(Box::new(source)))
}

/// Reads an input held whole in memory with the one-pass header parser (as a
/// whole input, and as a long input whose first 16 KiB are parsed) and with the
/// general reader alone; returns how they differ, or None. For the tests and the
/// fuzz target: the parser must never change what an input reads as.
pub fn parsers_disagree(data: &[u8]) -> Option<String> {
    let size = data.len() as u64;
    let run = |how| read_from(&mut Cursor::new(data), size, how);
    let general = run(Reading {
        fast: false,
        prefix: 0,
        input: None,
    });
    for (what, how) in [
        ("whole", Reading::whole(data)),
        ("prefix", Reading::prefix()),
    ] {
        let why = match (run(how), &general) {
            (Err(a), Err(b)) => {
                (a.to_string() != b.to_string()).then(|| format!("errors differ: {a} / {b}"))
            }
            (Ok(_), Err(b)) => Some(format!("read what the general reader refuses ({b})")),
            (Err(a), Ok(_)) => Some(format!("refused what the general reader reads ({a})")),
            (Ok(Parts::Dicom(a)), Ok(Parts::Dicom(b))) => parsed_differ(&a, b),
            (Ok(Parts::Dicomdir), Ok(Parts::Dicomdir))
            | (Ok(Parts::NotDicom), Ok(Parts::NotDicom)) => None,
            _ => Some("classified differently".into()),
        };
        if let Some(why) = why {
            return Some(format!("{what}: {why}"));
        }
    }
    None
}

fn parsed_differ(a: &Parsed, b: &Parsed) -> Option<String> {
    if let Some(d) = object_difference(&a.header, &b.header) {
        return Some(format!("header differs at {d}"));
    }
    let checks = [
        (a.ts.uid() == b.ts.uid(), "transfer syntax"),
        (a.pixel == b.pixel, "Pixel Data range"),
        (
            match (&a.trailing, &b.trailing) {
                (Some(x), Some(y)) => object_difference(x, y).is_none(),
                (None, None) => true,
                _ => false,
            },
            "trailing elements",
        ),
        (
            a.dropped_trailing_bytes == b.dropped_trailing_bytes,
            "dropped bytes",
        ),
        (
            a.implicit_vr_repaired == b.implicit_vr_repaired,
            "implicit VR repair",
        ),
        (
            a.un_sequences_repaired == b.un_sequences_repaired,
            "CP-246 repairs",
        ),
        (a.un_retyped == b.un_retyped, "UN retyping"),
        (
            a.meta_read_leniently == b.meta_read_leniently,
            "lenient meta",
        ),
    ];
    checks
        .iter()
        .find(|(same, _)| !same)
        .map(|(_, what)| format!("{what} differs"))
}

/// Where two objects differ at any depth (tags, VRs, lengths as read, values;
/// floats by their bits, so a NaN equals itself), or None.
fn object_difference(a: &InMemDicomObject, b: &InMemDicomObject) -> Option<String> {
    use dicom_core::header::{HasLength, Header};
    use dicom_core::value::{PrimitiveValue as P, Value};
    let (mut x, mut y) = (a.iter(), b.iter());
    loop {
        let (e, f) = match (x.next(), y.next()) {
            (None, None) => return None,
            (Some(e), Some(f)) => (e, f),
            (e, f) => {
                return Some(format!(
                    "elements {:?} / {:?}",
                    e.map(|e| e.tag()),
                    f.map(|f| f.tag())
                ));
            }
        };
        let tag = e.tag();
        // Length's `==` holds undefined lengths unequal: compare the raw field.
        if tag != f.tag() || e.vr() != f.vr() || e.length().0 != f.length().0 {
            return Some(format!(
                "{tag} {:?} {:?} / {} {:?} {:?}",
                e.vr(),
                e.length(),
                f.tag(),
                f.vr(),
                f.length()
            ));
        }
        let why = match (e.value(), f.value()) {
            (Value::Primitive(P::F32(v)), Value::Primitive(P::F32(w))) => (v.len() != w.len()
                || v.iter()
                    .zip(w.iter())
                    .any(|(p, q)| p.to_bits() != q.to_bits()))
            .then(|| "F32 values".to_string()),
            (Value::Primitive(P::F64(v)), Value::Primitive(P::F64(w))) => (v.len() != w.len()
                || v.iter()
                    .zip(w.iter())
                    .any(|(p, q)| p.to_bits() != q.to_bits()))
            .then(|| "F64 values".to_string()),
            (Value::Primitive(v), Value::Primitive(w)) => {
                (v != w).then(|| format!("values {v:?} / {w:?}"))
            }
            (Value::Sequence(s), Value::Sequence(t)) => {
                if s.length().0 != t.length().0 || s.items().len() != t.items().len() {
                    Some(format!(
                        "sequence {:?} {} / {:?} {}",
                        s.length(),
                        s.items().len(),
                        t.length(),
                        t.items().len()
                    ))
                } else {
                    s.items()
                        .iter()
                        .zip(t.items())
                        .enumerate()
                        .find_map(|(i, (p, q))| {
                            object_difference(p, q).map(|d| format!("[{i}] {d}"))
                        })
                }
            }
            _ => Some("value kinds".into()),
        };
        if let Some(why) = why {
            return Some(format!("{tag}: {why}"));
        }
    }
}

/// How [`read_from`] may read a header.
#[derive(Clone, Copy)]
struct Reading<'a> {
    /// The one-pass parser ([`super::parse`]) is tried first.
    fast: bool,
    /// It parses at most this many bytes of the dataset (the reader holds the
    /// whole input in memory, or the header is expected to be that short).
    prefix: u64,
    /// The whole input, when the reader reads it from memory: the parser works on
    /// it in place instead of on a copy.
    input: Option<&'a [u8]>,
}

/// Headers longer than this are read by the general reader (enhanced multi-frame
/// objects, with their functional groups, can run to megabytes).
const FAST_PREFIX: u64 = 16 * 1024;

impl<'a> Reading<'a> {
    fn whole(input: &'a [u8]) -> Reading<'a> {
        Reading {
            fast: true,
            prefix: u64::MAX,
            input: Some(input),
        }
    }
    fn prefix() -> Reading<'a> {
        Reading {
            fast: true,
            prefix: FAST_PREFIX,
            input: None,
        }
    }
}

/// The header (and Pixel Data's range) by [`super::parse`], when it takes it. A
/// header longer than the prefix is tried again on a prefix four times as long.
fn fast_header<R: Read + Seek>(
    reader: &mut R,
    ts: &TransferSyntax,
    dataset_start: u64,
    size: u64,
    how: Reading<'_>,
) -> Option<(InMemDicomObject, Option<Range<u64>>)> {
    use super::parse::{PixelAt, Stop, Syntax};
    let syntax = match (ts.endianness(), ts.uid() != IMPLICIT_VR_LE) {
        (dicom_encoding::Endianness::Little, false) => Syntax::ImplicitLittle,
        (dicom_encoding::Endianness::Little, true) => Syntax::ExplicitLittle,
        (dicom_encoding::Endianness::Big, true) => Syntax::ExplicitBig,
        (dicom_encoding::Endianness::Big, false) => return None,
    };
    let left = size.checked_sub(dataset_start)?;
    let mut take = left.min(how.prefix);
    let h = loop {
        let end = dataset_start + take;
        let parse =
            |bytes: &[u8]| super::parse::header(bytes, syntax, take == left, left, MAX_DEPTH);
        let parsed = match how.input {
            Some(all) => {
                parse(all.get(usize::try_from(dataset_start).ok()?..usize::try_from(end).ok()?)?)
            }
            None => PREFIX.with(|cell| {
                // The prefix is read into this thread's buffer, kept from file to
                // file: a fresh one was zeroed and then overwritten every time.
                // Any trouble reading is the general reader's to report.
                let mut buf = cell.try_borrow_mut().ok()?;
                read_range_into(reader, dataset_start..end, &mut buf).ok()?;
                Some(parse(&buf))
            })?,
        };
        match parsed {
            Ok(h) => break h,
            Err(Stop::Short) if take < left.min(MAX_FAST_HEADER) => {
                take = left.min(MAX_FAST_HEADER).min(take.saturating_mul(4));
            }
            Err(_) => return None,
        }
    };
    let at = |o: usize| dataset_start + o as u64;
    let pixel = match h.pixel {
        None => None,
        Some(PixelAt::Native(r)) => Some(at(r.start)..at(r.end)),
        Some(PixelAt::Encapsulated { start, items }) => {
            Some(at(start)..fragments_end(reader, at(items), size)?)
        }
    };
    Some((h.dataset, pixel))
}

/// Headers parsed in one pass at most (prefixes grow up to this).
const MAX_FAST_HEADER: u64 = 4 << 20;

thread_local! {
    /// Where [`fast_header`] reads a prefix (at most [`MAX_FAST_HEADER`] bytes).
    static PREFIX: std::cell::RefCell<Vec<u8>> = const { std::cell::RefCell::new(Vec::new()) };
}

/// `range` of `r` into `buf` (resized to it); an error when the input ends first.
fn read_range_into<R: Read + Seek>(
    r: &mut R,
    range: Range<u64>,
    buf: &mut Vec<u8>,
) -> std::io::Result<()> {
    r.seek(SeekFrom::Start(range.start))?;
    let len = usize::try_from(range.end.saturating_sub(range.start))
        .map_err(|_| std::io::Error::other("range too long"))?;
    buf.resize(len, 0);
    r.read_exact(buf)
}

/// Walks the item headers of encapsulated Pixel Data from `at` (its first item)
/// to just past its sequence delimiter, reading 8 bytes per fragment. None for
/// anything the header scan would refuse or see otherwise.
fn fragments_end<R: Read + Seek>(reader: &mut R, mut at: u64, size: u64) -> Option<u64> {
    let mut head = [0u8; 8];
    loop {
        reader.seek(SeekFrom::Start(at)).ok()?;
        reader.read_exact(&mut head).ok()?;
        let group = u16::from_le_bytes([head[0], head[1]]);
        let element = u16::from_le_bytes([head[2], head[3]]);
        let len = u32::from_le_bytes([head[4], head[5], head[6], head[7]]);
        match (group, element) {
            (0xFFFE, 0xE000) if len != u32::MAX => {
                at = at.checked_add(8 + u64::from(len))?;
                if at > size {
                    return None;
                }
            }
            (0xFFFE, 0xE0DD) => return Some(at + 8),
            _ => return None,
        }
    }
}

fn read_streamable<R: Read + Seek>(
    reader: &mut R,
    meta: Option<FileMetaTable>,
    ts: &'static TransferSyntax,
    dataset_start: u64,
    size: u64,
    how: Reading,
) -> Result<Parsed, ReadError> {
    let disguised = encoded_implicit_despite_ts(reader, ts, dataset_start)?;
    // What the bytes are read as; `ts` stays what the output is written in.
    let read_ts = if disguised {
        TransferSyntaxRegistry
            .get(IMPLICIT_VR_LE)
            .ok_or_else(|| ReadError::unsupported_ts(IMPLICIT_VR_LE))?
    } else {
        ts
    };
    let fast = match how.fast {
        true => fast_header(reader, read_ts, dataset_start, size, how),
        false => None,
    };
    if fast.is_none() {
        reader
            .seek(SeekFrom::Start(dataset_start))
            .map_err(ReadError::Io)?;
    }
    #[cfg(test)]
    if fast.is_some() {
        tests::FAST_TAKEN.fetch_add(1, std::sync::atomic::Ordering::Relaxed);
    }
    let (header, pixel, un_sequences_repaired) = match fast {
        Some((header, pixel)) => (header, pixel, 0),
        None => match scan(&mut *reader, read_ts, size, false) {
            Ok(layout) => {
                if layout.max_depth > MAX_DEPTH {
                    return Err(ReadError::TooDeep);
                }
                let header_end = layout.pixel.as_ref().map_or(size, |p| p.start);
                let header_bytes = read_range(reader, dataset_start..header_end)?;
                let header = InMemDicomObject::read_dataset_with_ts(&header_bytes[..], read_ts)
                    .map_err(|e| malformed("dataset", e))?;
                (header, layout.pixel, 0)
            }
            Err(ReadError::Malformed(why)) if !disguised && is_explicit_le(ts) => {
                match read_un_sequences(reader, ts, dataset_start, size)? {
                    Some(repaired) => repaired,
                    None => return Err(ReadError::Malformed(why)),
                }
            }
            Err(e) => return Err(e),
        },
    };
    let implicit_vr_repaired = if disguised {
        Some(match &pixel {
            Some(p) => Some(explicit_pixel_header(reader, p.start, &header)?),
            None => None,
        })
    } else {
        None
    };

    let mut trailing = None;
    let mut dropped = 0;
    if let Some(p) = &pixel {
        let tail_len = size.saturating_sub(p.end);
        if tail_len > MAX_TRAILING_BYTES {
            dropped = tail_len;
        } else if tail_len > 0 {
            let bytes = read_range(reader, p.end..size)?;
            match scan(Cursor::new(&bytes), read_ts, tail_len, false) {
                Ok(l) if l.max_depth <= MAX_DEPTH && l.pixel.is_none() => {
                    match InMemDicomObject::read_dataset_with_ts(&bytes[..], read_ts) {
                        Ok(obj) => trailing = Some(obj),
                        Err(_) => dropped = tail_len,
                    }
                }
                _ => dropped = tail_len,
            }
        }
    }
    Ok(Parsed {
        meta,
        ts,
        header,
        pixel,
        trailing,
        dropped_trailing_bytes: dropped,
        implicit_vr_repaired,
        un_sequences_repaired,
        un_retyped: 0,
        meta_read_leniently: false,
    })
}

/// A dataset read up to Pixel Data: the header, the Pixel Data range in the input,
/// and how many CP-246 sequences were rewritten to read it.
type HeaderRead = (InMemDicomObject, Option<Range<u64>>, usize);

fn is_explicit_le(ts: &TransferSyntax) -> bool {
    ts.uid() != IMPLICIT_VR_LE && ts.endianness() == dicom_encoding::Endianness::Little
}

/// How much of a dataset the CP-246 repair holds in memory at most: the part before
/// Pixel Data, which is small in any real file.
const MAX_REPAIR_BYTES: u64 = 64 << 20;

/// Second attempt for a dataset the parser refused: if it holds sequences stored
/// as UN with undefined length (CP-246), rewrite them ([`cp246::repair`]) and parse
/// the result. Returns the header, the Pixel Data range in the input, and how many
/// sequences were rewritten; None when that is not what was wrong.
fn read_un_sequences<R: Read + Seek>(
    reader: &mut R,
    ts: &'static TransferSyntax,
    dataset_start: u64,
    size: u64,
) -> Result<Option<HeaderRead>, ReadError> {
    let available = size.saturating_sub(dataset_start);
    let len = available.min(MAX_REPAIR_BYTES);
    let bytes = read_range(reader, dataset_start..dataset_start + len)?;
    let Ok(Some(fixed)) = super::cp246::repair(&bytes, MAX_DEPTH) else {
        return Ok(None);
    };
    drop(bytes);
    if fixed.pixel_at.is_none() && len < available {
        return Ok(None);
    }
    let fixed_len = fixed.bytes.len() as u64;
    match scan(Cursor::new(&fixed.bytes), ts, fixed_len, true) {
        Ok(layout) if layout.max_depth > MAX_DEPTH => return Err(ReadError::TooDeep),
        Ok(_) => {}
        Err(_) => return Ok(None),
    }
    let Ok(header) = InMemDicomObject::read_dataset_with_ts(&fixed.bytes[..], ts) else {
        return Ok(None);
    };
    let pixel = match fixed.pixel_at {
        Some(offset) => {
            reader
                .seek(SeekFrom::Start(dataset_start + offset as u64))
                .map_err(ReadError::Io)?;
            scan(&mut *reader, ts, size, false)?.pixel
        }
        None => None,
    };
    Ok(Some((header, pixel, fixed.sequences)))
}

/// True when `ts` is an explicit VR little endian syntax but the first element of
/// the dataset has no VR where one belongs (pydicom's SC_rgb_jpeg.dcm): the dataset
/// is implicit VR. pydicom and dcmtk read such files the same way.
fn encoded_implicit_despite_ts<R: Read + Seek>(
    reader: &mut R,
    ts: &TransferSyntax,
    dataset_start: u64,
) -> Result<bool, ReadError> {
    if ts.uid() == IMPLICIT_VR_LE || ts.endianness() != dicom_encoding::Endianness::Little {
        return Ok(false);
    }
    reader
        .seek(SeekFrom::Start(dataset_start))
        .map_err(ReadError::Io)?;
    let mut head = [0u8; 8];
    if read_up_to(reader, &mut head).map_err(ReadError::Io)? < 8 {
        return Ok(false);
    }
    Ok(dicom_core::VR::from_binary([head[4], head[5]]).is_none())
}

/// The explicit VR little endian header of the Pixel Data element whose implicit VR
/// header (tag, 4-byte length) starts at `at`.
fn explicit_pixel_header<R: Read + Seek>(
    reader: &mut R,
    at: u64,
    header: &InMemDicomObject,
) -> Result<[u8; 12], ReadError> {
    reader.seek(SeekFrom::Start(at)).map_err(ReadError::Io)?;
    let mut implicit = [0u8; 8];
    if read_up_to(reader, &mut implicit).map_err(ReadError::Io)? < 8 {
        return Err(ReadError::Malformed(
            "file ends in the Pixel Data header".into(),
        ));
    }
    let element = u16::from_le_bytes([implicit[2], implicit[3]]);
    let undefined = implicit[4..8] == [0xFF; 4];
    let bits_allocated = header
        .get(Tag(0x0028, 0x0100))
        .and_then(|e| e.to_int::<u16>().ok())
        .unwrap_or(16);
    let vr: &[u8; 2] = match element {
        0x0008 => b"OF",
        0x0009 => b"OD",
        _ if undefined || bits_allocated <= 8 => b"OB",
        _ => b"OW",
    };
    let mut out = [0u8; 12];
    out[..4].copy_from_slice(&implicit[..4]);
    out[4..6].copy_from_slice(vr);
    out[8..].copy_from_slice(&implicit[4..8]);
    Ok(out)
}

/// The meta group parser allocates each element's declared length before reading it:
/// check those lengths against the file first (the group is always explicit VR
/// little endian).
/// Second reading of a file meta group that dicom-rs refused: one without its
/// group length (0002,0000), or without a transfer syntax (0002,0010), which pydicom
/// and dcmtk read. Takes explicit VR little endian elements while their group is
/// 0002 (every length bounded by the file), and when the transfer syntax is missing
/// sniffs it from the first dataset element. Returns the meta table and where the
/// dataset starts; None when the group is damaged some other way.
fn lenient_meta<R: Read + Seek>(
    r: &mut R,
    off: u64,
    size: u64,
) -> Result<Option<(FileMetaTable, u64)>, ReadError> {
    const MAX_META: u64 = 64 * 1024;
    let start = off + 4;
    r.seek(SeekFrom::Start(start)).map_err(ReadError::Io)?;
    let mut buf = vec![0u8; size.saturating_sub(start).min(MAX_META + 8) as usize];
    let n = read_up_to(r, &mut buf).map_err(ReadError::Io)?;
    let buf = &buf[..n];
    let text = |v: &[u8]| {
        String::from_utf8_lossy(v)
            .trim_end_matches(['\0', ' '])
            .trim_start()
            .to_string()
    };
    let (mut class, mut instance, mut ts) = (None, None, None);
    let mut pos = 0usize;
    while pos + 8 <= buf.len() && u16::from_le_bytes([buf[pos], buf[pos + 1]]) == 0x0002 {
        let elem = u16::from_le_bytes([buf[pos + 2], buf[pos + 3]]);
        let vr = [buf[pos + 4], buf[pos + 5]];
        if dicom_core::VR::from_binary(vr).is_none() {
            return Ok(None);
        }
        let long = super::cp246::is_long_form(&vr);
        let (header, len) = if long {
            let Some(l) = buf.get(pos + 8..pos + 12) else {
                return Ok(None);
            };
            (12, u32::from_le_bytes([l[0], l[1], l[2], l[3]]) as usize)
        } else {
            (
                8,
                usize::from(u16::from_le_bytes([buf[pos + 6], buf[pos + 7]])),
            )
        };
        let Some(value) = buf.get(pos + header..pos + header + len) else {
            return Ok(None);
        };
        match elem {
            0x0002 => class = Some(text(value)),
            0x0003 => instance = Some(text(value)),
            0x0010 => ts = Some(text(value)),
            _ => {}
        }
        pos += header + len;
        if pos as u64 > MAX_META {
            return Ok(None);
        }
    }
    let dataset_start = start + pos as u64;
    let ts = match ts.filter(|t| !t.is_empty()) {
        Some(t) => t,
        // As pydicom does: a VR where explicit VR has one means explicit VR.
        None => match buf.get(pos + 4..pos + 6) {
            Some(&[a, b]) if dicom_core::VR::from_binary([a, b]).is_some() => EXPLICIT_VR_LE.into(),
            Some(_) => IMPLICIT_VR_LE.into(),
            None => return Ok(None),
        },
    };
    let meta = FileMetaTableBuilder::new()
        .media_storage_sop_class_uid(class.unwrap_or_default())
        .media_storage_sop_instance_uid(instance.unwrap_or_default())
        .transfer_syntax(ts)
        .build();
    Ok(meta.ok().map(|m| (m, dataset_start)))
}

fn check_meta_lengths<R: Read + Seek>(r: &mut R, off: u64, size: u64) -> Result<(), ReadError> {
    const MAX_META: u64 = 64 * 1024;
    let start = off + 4;
    r.seek(SeekFrom::Start(start)).map_err(ReadError::Io)?;
    // Read as far as the elements go, not MAX_META bytes up front: a meta group is
    // a few hundred bytes, and a zeroed 64 KiB buffer per file showed in `perf`.
    let avail = size.saturating_sub(start).min(MAX_META) as usize;
    let mut buf = vec![0u8; avail.min(1024)];
    let mut filled = read_up_to(r, &mut buf).map_err(ReadError::Io)?;
    let mut pos = 0usize;
    // The meta reader trusts the group length: within it, every element is read,
    // whatever its group number says.
    let mut group_end = 0usize;
    loop {
        // An element header that runs past the bytes read: read more, if there is more.
        if pos + 12 > filled && filled == buf.len() && buf.len() < avail {
            let grown = (buf.len() * 4).min(avail);
            buf.resize(grown, 0);
            filled += read_up_to(r, &mut buf[filled..]).map_err(ReadError::Io)?;
            continue;
        }
        let buf = &buf[..filled];
        if pos + 8 > buf.len() {
            break;
        }
        let group = u16::from_le_bytes([buf[pos], buf[pos + 1]]);
        if group != 0x0002 && pos >= group_end {
            break;
        }
        let elem = u16::from_le_bytes([buf[pos + 2], buf[pos + 3]]);
        // Only these VRs have a 2-byte length; the meta reader takes any other code,
        // unknown ones included, as having a 4-byte length.
        let long = !matches!(
            &buf[pos + 4..pos + 6],
            b"AE"
                | b"AS"
                | b"AT"
                | b"CS"
                | b"DA"
                | b"DS"
                | b"DT"
                | b"FL"
                | b"FD"
                | b"IS"
                | b"LO"
                | b"LT"
                | b"PN"
                | b"SH"
                | b"SL"
                | b"SS"
                | b"ST"
                | b"TM"
                | b"UI"
                | b"UL"
                | b"US"
        );
        let (header, len) = if long {
            if pos + 12 > buf.len() {
                break;
            }
            let l = u32::from_le_bytes([buf[pos + 8], buf[pos + 9], buf[pos + 10], buf[pos + 11]]);
            (12u64, u64::from(l))
        } else {
            (
                8u64,
                u64::from(u16::from_le_bytes([buf[pos + 6], buf[pos + 7]])),
            )
        };
        if group == 0x0002 && elem == 0x0000 && len == 4 && pos + 12 <= buf.len() {
            let v = u32::from_le_bytes([buf[pos + 8], buf[pos + 9], buf[pos + 10], buf[pos + 11]]);
            group_end = (pos + 12).saturating_add(v as usize);
        }
        let end = start + pos as u64 + header + len;
        if len == u64::from(u32::MAX) || end > size {
            return Err(ReadError::Malformed(format!(
                "file meta element (0002,{elem:04X}) declares {len} bytes but the file has {size}"
            )));
        }
        pos += (header + len) as usize;
    }
    Ok(())
}

/// Reads into `buf` until it is full or the input ends; returns how many bytes.
fn read_up_to(r: &mut (impl Read + ?Sized), buf: &mut [u8]) -> std::io::Result<usize> {
    let mut filled = 0;
    while filled < buf.len() {
        match r.read(&mut buf[filled..]) {
            Ok(0) => break,
            Ok(n) => filled += n,
            Err(e) if e.kind() == std::io::ErrorKind::Interrupted => {}
            Err(e) => return Err(e),
        }
    }
    Ok(filled)
}

/// Raw deflate (RFC 1951) inflated from memory by libdeflate into a buffer of at
/// most `budget` bytes, then handed to `use_it`; None when the dataset inflates to
/// more than the budget. libdeflate inflates a whole buffer about twice as fast as
/// zlib-rs streams it (168 deflated datasets of the bench tree, 42 MB: 19 ms
/// against 43 ms), but wants the output's room up front: sixteen times the
/// compressed size (headers and images deflate 3 to 10 times), growing fourfold
/// up to the budget, each try starting over. The decompressor and the buffer are
/// kept per thread: a fresh buffer was zeroed for every file (`perf`: 2% of a run),
/// and the inflated bytes are only read while the dataset is parsed. A buffer
/// grown past [`KEPT_INFLATE_BUFFER`] is let go after use.
fn inflate<T>(
    compressed: &[u8],
    budget: u64,
    use_it: impl FnOnce(&[u8]) -> T,
) -> std::io::Result<Option<T>> {
    use libdeflater::{DecompressionError, Decompressor};
    thread_local! {
        static INFLATE: std::cell::RefCell<(Option<Decompressor>, Vec<u8>)> =
            const { std::cell::RefCell::new((None, Vec::new())) };
    }
    let budget = usize::try_from(budget).unwrap_or(usize::MAX);
    INFLATE.with(|cell| {
        let mut own = (None, Vec::new());
        let mut kept = cell.try_borrow_mut();
        let (d, buf) = match kept.as_deref_mut() {
            Ok(k) => k,
            Err(_) => &mut own,
        };
        let d = d.get_or_insert_with(Decompressor::new);
        let mut size = compressed.len().saturating_mul(16).clamp(64 << 10, budget);
        let result = loop {
            if buf.len() < size {
                buf.resize(size, 0);
            }
            match d.deflate_decompress(compressed, &mut buf[..size]) {
                Ok(n) => break Ok(Some(use_it(&buf[..n]))),
                Err(DecompressionError::InsufficientSpace) if size < budget => {
                    size = size.saturating_mul(4).min(budget);
                }
                Err(DecompressionError::InsufficientSpace) => break Ok(None),
                Err(DecompressionError::BadData) => {
                    break Err(std::io::Error::new(
                        std::io::ErrorKind::InvalidData,
                        "corrupt or incomplete deflate stream",
                    ));
                }
            }
        };
        if buf.len() > KEPT_INFLATE_BUFFER {
            *buf = Vec::new();
        }
        result
    })
}

/// The largest inflate buffer a thread keeps between files.
const KEPT_INFLATE_BUFFER: usize = 16 << 20;

fn read_range<R: Read + Seek>(r: &mut R, range: Range<u64>) -> Result<Vec<u8>, ReadError> {
    r.seek(SeekFrom::Start(range.start))
        .map_err(ReadError::Io)?;
    let len = range.end.saturating_sub(range.start);
    let mut buf = Vec::new();
    buf.try_reserve_exact(len as usize)
        .map_err(|_| ReadError::Malformed(format!("cannot allocate {len} bytes")))?;
    r.take(len).read_to_end(&mut buf).map_err(ReadError::Io)?;
    if (buf.len() as u64) < len {
        return Err(ReadError::Malformed("file ends early".into()));
    }
    Ok(buf)
}

/// Where things are in a dataset, found without reading values.
struct Layout {
    pixel: Option<Range<u64>>,
    max_depth: usize,
}

fn is_pixel_tag(tag: Tag) -> bool {
    tag.0 == 0x7FE0 && matches!(tag.1, 0x0008 | 0x0009 | 0x0010)
}

/// Walks the element headers of a dataset (the reader is positioned at its start),
/// skipping values, to find top-level Pixel Data and the deepest sequence nesting.
/// Iterative, so a hostile depth cannot overflow the stack. Offsets are absolute
/// because the decoder counts from the reader's position.
///
/// With `full`, Pixel Data is treated like any other element and the whole dataset
/// is checked (a deflated dataset is parsed whole, elements after Pixel Data too).
fn scan<R: Read + Seek>(
    src: R,
    ts: &TransferSyntax,
    size: u64,
    full: bool,
) -> Result<Layout, ReadError> {
    // dicom-parser 0.10.1 panics (an `expect`) on an item header outside any
    // sequence; that is malformed input, not a bug of ours: report it as such.
    std::panic::catch_unwind(std::panic::AssertUnwindSafe(|| {
        scan_tokens(src, ts, size, full)
    }))
    .unwrap_or_else(|_| {
        Err(ReadError::Malformed(
            "dataset: an item or delimiter outside any sequence".into(),
        ))
    })
}

fn scan_tokens<R: Read + Seek>(
    src: R,
    ts: &TransferSyntax,
    size: u64,
    full: bool,
) -> Result<Layout, ReadError> {
    let bad =
        |e: &dyn std::error::Error| ReadError::Malformed(format!("dataset: {}", error_chain(e)));
    let mut lazy = LazyDataSetReader::new_with_ts(src, ts)
        .map_err(|e| malformed("cannot start parsing the dataset", e))?;
    // Encapsulated Pixel Data has an undefined length, which only a VR with a 4-byte
    // length can declare: a 12-byte element header in explicit VR, 8 in implicit VR.
    // An item header is 8 bytes.
    let implicit = ts.uid() == IMPLICIT_VR_LE;
    let pixel_header_len: u64 = if implicit { 8 } else { 12 };
    let mut depth = 0usize;
    let mut max_depth = 0usize;
    let mut in_pixel_sequence = false;
    let mut pixel_sequence_closed = false;
    // Sum of item headers and values inside encapsulated Pixel Data: with the
    // position after its delimiter it gives where the element started.
    let mut fragment_bytes = 0u64;
    let mut native_pixel_header: Option<dicom_core::header::DataElementHeader> = None;
    while let Some(token) = lazy.advance() {
        let token = token.map_err(|e| bad(&e))?;
        match token {
            LazyDataToken::SequenceStart { .. } => {
                depth += 1;
                max_depth = max_depth.max(depth);
                if max_depth > MAX_DEPTH {
                    return Err(ReadError::TooDeep);
                }
            }
            LazyDataToken::PixelSequenceStart if full => depth += 1,
            LazyDataToken::SequenceEnd if in_pixel_sequence => {
                pixel_sequence_closed = true;
                break;
            }
            LazyDataToken::SequenceEnd => depth = depth.saturating_sub(1),
            LazyDataToken::PixelSequenceStart if depth == 0 => in_pixel_sequence = true,
            LazyDataToken::ElementHeader(h) if depth == 0 && !full && is_pixel_tag(h.tag) => {
                native_pixel_header = Some(h);
            }
            LazyDataToken::LazyValue { header, decoder } if native_pixel_header.is_some() => {
                let value_start = decoder.position();
                let len = header.len.get().ok_or_else(|| {
                    ReadError::Malformed("native Pixel Data with undefined length".into())
                })?;
                // Native Pixel Data should be OB/OW, but its header is as long as the
                // VR it was written with says: a fuzzed `US` (2-byte length) has an
                // 8-byte header, and assuming 12 put the end of the file meta group
                // into the copied range, which no reader could parse back.
                let header_len = match header.vr.to_bytes() {
                    _ if implicit => 8,
                    vr if super::cp246::is_long_form(&vr) => 12,
                    _ => 8,
                };
                let start = value_start.saturating_sub(header_len);
                let end = value_start + u64::from(len);
                if end > size {
                    return Err(ReadError::Malformed(format!(
                        "Pixel Data declares {len} bytes but the file ends {} bytes early (truncated)",
                        end - size
                    )));
                }
                return Ok(Layout {
                    pixel: Some(start..end),
                    max_depth,
                });
            }
            LazyDataToken::ItemStart { len } if in_pixel_sequence => {
                let len = len.get().ok_or_else(|| {
                    ReadError::Malformed("Pixel Data fragment with undefined length".into())
                })?;
                fragment_bytes += 8 + u64::from(len);
            }
            LazyDataToken::LazyItemValue { len, decoder } => {
                if decoder.position() + u64::from(len) > size {
                    return Err(ReadError::Malformed(
                        "an item value (Pixel Data fragment) runs past the end of the file (truncated)"
                            .into(),
                    ));
                }
                LazyDataToken::LazyItemValue { len, decoder }
                    .skip()
                    .map_err(|e| bad(&e))?;
            }
            LazyDataToken::LazyValue { header, decoder } => {
                // Lengths are checked against the file before anything is read, so a
                // bogus length cannot make the parser allocate it.
                let len = u64::from(header.len.get().unwrap_or(0));
                if decoder.position() + len > size {
                    return Err(ReadError::Malformed(format!(
                        "element ({:04X},{:04X}) declares {len} bytes at offset {} but the file has {size}",
                        header.tag.0,
                        header.tag.1,
                        decoder.position()
                    )));
                }
                // dicom-parser reads len / size values of a binary VR but steps over
                // len bytes: a remainder misaligns every later element, and it then
                // trusts lengths read from value bytes (a fuzzer's 2 KB file made it
                // allocate and zero 3.9 GB). This scan reads such a value whole, so
                // the two parsers would disagree: refuse it here.
                let unit = binary_vr_unit(header.vr);
                if unit > 1 && len % unit != 0 {
                    return Err(ReadError::Malformed(format!(
                        "element ({:04X},{:04X}) with VR {} declares {len} bytes at offset {}, \
                         not a multiple of {unit}",
                        header.tag.0,
                        header.tag.1,
                        header.vr.to_string(),
                        decoder.position()
                    )));
                }
                LazyDataToken::LazyValue { header, decoder }
                    .skip()
                    .map_err(|e| bad(&e))?;
            }
            other => other.skip().map_err(|e| bad(&e))?,
        }
    }
    let end_of_tokens = lazy.into_decoder().position();
    if in_pixel_sequence {
        if !pixel_sequence_closed {
            return Err(ReadError::Malformed(
                "encapsulated Pixel Data has no sequence delimiter (truncated)".into(),
            ));
        }
        let start = end_of_tokens
            .checked_sub(8 + fragment_bytes + pixel_header_len)
            .ok_or_else(|| ReadError::Malformed("inconsistent Pixel Data fragments".into()))?;
        return Ok(Layout {
            pixel: Some(start..end_of_tokens),
            max_depth,
        });
    }
    Ok(Layout {
        pixel: None,
        max_depth,
    })
}

/// Bytes per value of a binary VR (1 for the others).
fn binary_vr_unit(vr: dicom_core::VR) -> u64 {
    use dicom_core::VR;
    match vr {
        VR::SS | VR::US | VR::OW => 2,
        VR::AT | VR::FL | VR::OF | VR::OL | VR::SL | VR::UL => 4,
        VR::FD | VR::OD | VR::OV | VR::SV | VR::UV => 8,
        _ => 1,
    }
}

/// Recognises a dataset stored without preamble and file meta group from its first
/// element, which must be in group 0008: explicit VR shows two upper-case VR letters.
fn sniff_bare_dataset(head: &[u8], size: u64) -> Option<&'static str> {
    if head.len() < 8 {
        return None;
    }
    let vr_letters = head[4].is_ascii_uppercase() && head[5].is_ascii_uppercase();
    let known_vr = vr_letters && dicom_core::VR::from_binary([head[4], head[5]]).is_some();
    let group_le = u16::from_le_bytes([head[0], head[1]]);
    let group_be = u16::from_be_bytes([head[0], head[1]]);
    if group_le == 0x0008 && known_vr {
        Some(EXPLICIT_VR_LE)
    } else if group_be == 0x0008 && known_vr {
        Some(EXPLICIT_VR_BE)
    } else if group_le == 0x0008 {
        let len = u32::from_le_bytes([head[4], head[5], head[6], head[7]]);
        (u64::from(len) <= size).then_some(IMPLICIT_VR_LE)
    } else {
        None
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    /// Headers the one-pass parser took, in this test process.
    pub(super) static FAST_TAKEN: std::sync::atomic::AtomicUsize =
        std::sync::atomic::AtomicUsize::new(0);

    /// `DICOM_DEID_PARITY_DIR=... cargo test --release -- --ignored parity_on`:
    /// the same comparison on a folder of real files outside the repository.
    #[test]
    #[ignore]
    fn parity_on_a_folder_named_by_the_environment() {
        let dir = std::env::var("DICOM_DEID_PARITY_DIR").expect("DICOM_DEID_PARITY_DIR");
        let paths = crate::io::files_under(Path::new(&dir));
        let before = FAST_TAKEN.load(std::sync::atomic::Ordering::Relaxed);
        let bad: Vec<String> = paths
            .iter()
            .filter_map(|p| {
                let data = std::fs::read(p).ok()?;
                parsers_disagree(&data).map(|why| format!("{}: {why}", p.display()))
            })
            .collect();
        let taken = FAST_TAKEN.load(std::sync::atomic::Ordering::Relaxed) - before;
        eprintln!(
            "{} files, {taken} headers by the one-pass parser",
            paths.len()
        );
        assert!(bad.is_empty(), "{}", bad.join("\n"));
    }

    #[test]
    fn the_one_pass_parser_reads_every_test_file_as_the_general_reader_does() {
        let paths = crate::io::files_under(&Path::new(env!("CARGO_MANIFEST_DIR")).join("testdata"));
        assert!(paths.len() > 50, "{} test files", paths.len());
        let before = FAST_TAKEN.load(std::sync::atomic::Ordering::Relaxed);
        for p in &paths {
            let data = std::fs::read(p).unwrap();
            if let Some(why) = parsers_disagree(&data) {
                panic!("{}: {why}", p.display());
            }
        }
        // Most test files go through the parser (the rest are what it declines:
        // big endian, compressed Pixel Data, malformed on purpose).
        let taken = FAST_TAKEN.load(std::sync::atomic::Ordering::Relaxed) - before;
        assert!(taken * 2 > paths.len(), "{taken} of {} files", paths.len());
    }

    #[test]
    fn the_inflate_budget_follows_the_file_size_within_bounds() {
        assert_eq!(inflate_budget(0), MIN_INFLATE_BUDGET);
        assert_eq!(inflate_budget(1 << 20), 64 << 20);
        // The 3 MB bomb of issue 11 may inflate to 192 MB, not 2 GiB.
        assert_eq!(inflate_budget(3_000_000), 192_000_000);
        assert_eq!(inflate_budget(100 << 20), MAX_INFLATED_BYTES);
        assert_eq!(inflate_budget(u64::MAX), MAX_INFLATED_BYTES);
    }

    #[test]
    fn unknown_encapsulated_syntaxes_read_as_explicit_vr_le_and_keep_their_uid() {
        for uid in [
            "1.2.840.10008.1.2.4.53",
            "1.2.840.10008.1.2.4.55",
            "1.2.840.10008.1.2.4.66",
            "1.2.840.10008.1.2.5.7",
        ] {
            let ts = resolve_ts(uid).unwrap();
            assert_eq!(ts.uid(), uid);
            assert_eq!(ts.endianness(), dicom_encoding::Endianness::Little);
            assert!(matches!(
                ts.codec(),
                Codec::EncapsulatedPixelData(None, None)
            ));
            // Interned: the same UID is one syntax.
            assert!(std::ptr::eq(ts, resolve_ts(uid).unwrap()));
        }
        // The registry's own entries are untouched.
        assert_eq!(
            resolve_ts("1.2.840.10008.1.2.4.50").unwrap().name(),
            "JPEG Baseline (Process 1)"
        );
        for bad in [
            "1.2.840.10008.1.2.6",
            "1.2.840.10008.1.2.55",
            "1.2.840.10008.1.2.4.53X",
            "1.2.840.10008.1.2.4.",
            "2.25.1",
        ] {
            assert!(resolve_ts(bad).is_err(), "{bad}");
        }
    }
}
