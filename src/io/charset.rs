//! Whether a character repertoire maps ASCII to itself: true of every DICOM
//! repertoire except those where 0x5C or 0x7E mean something else (ISO-IR 13).
//! Where it holds, ASCII text is read and written without calling the codec.
//!
//! Asking the codec means encoding and decoding 128 characters, which the parser
//! and the encoder did for every dataset and every item that names a character
//! set (1-2% of a run's instructions); the answer depends on the repertoire only,
//! so each thread remembers it.

use dicom_encoding::text::{SpecificCharacterSet, TextCodec};
use std::cell::RefCell;

/// What ASCII does under a repertoire, both ways.
#[derive(Clone, Copy)]
pub(super) struct AsciiIdentity {
    /// ASCII text encodes to its own bytes.
    pub encode: bool,
    /// ASCII bytes decode to the same text.
    pub decode: bool,
}

thread_local! {
    static KNOWN: RefCell<Vec<(SpecificCharacterSet, AsciiIdentity)>> =
        const { RefCell::new(Vec::new()) };
}

pub(super) fn ascii_identity(codec: &SpecificCharacterSet) -> AsciiIdentity {
    KNOWN.with(|known| {
        if let Ok(list) = known.try_borrow()
            && let Some((_, a)) = list.iter().find(|(c, _)| c == codec)
        {
            return *a;
        }
        let ascii: String = (0u8..0x80).map(char::from).collect();
        let answer = AsciiIdentity {
            encode: codec
                .encode(&ascii)
                .is_ok_and(|bytes| bytes == ascii.as_bytes()),
            decode: codec.decode(ascii.as_bytes()).is_ok_and(|s| s == ascii),
        };
        // A repertoire list is short (the standard names a few dozen).
        if let Ok(mut list) = known.try_borrow_mut()
            && list.len() < 64
        {
            list.push((codec.clone(), answer));
        }
        answer
    })
}
