//! Burned-in text: which pixel rule a file falls under ([`select`]) and the
//! blanking of its native frames as they stream to the output ([`redact`]). Part of
//! the engine: it touches no file and no socket.

pub mod ocr;
pub mod redact;
pub mod select;

pub use ocr::{Grey, TextFinder};
pub use redact::{PixelError, Redaction};
pub use select::{closest, select};
