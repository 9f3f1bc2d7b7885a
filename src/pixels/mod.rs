//! Burned-in text: which pixel rule a file falls under ([`select`]) and the
//! blanking of its native frames as they stream to the output ([`redact`]), or of
//! compressed frames decoded and encoded again ([`encap`], [`rle`]). Part of
//! the engine: it touches no file and no socket.

pub mod encap;
pub mod ocr;
pub mod redact;
pub mod rle;
pub mod select;

pub use ocr::{Grey, TextFinder};
pub use redact::{PixelError, Redaction};
pub use select::{closest, select};
