//! The DIMSE message layer the gateway needs, over dicom-ul's P-DATA: command sets
//! for C-ECHO and C-STORE requests and responses (PS3.7 9.3.1, 9.3.5), always in
//! Implicit VR Little Endian (PS3.7 6.3.1), and the statuses the gateway answers
//! with. dicom-ul moves PDUs; what the bytes of a command mean is here.

use std::collections::BTreeMap;

/// Command Field values (PS3.7 E.1).
pub const C_STORE_RQ: u16 = 0x0001;
pub const C_STORE_RSP: u16 = 0x8001;
pub const C_ECHO_RQ: u16 = 0x0030;
pub const C_ECHO_RSP: u16 = 0x8030;

/// Command Data Set Type: no data set follows the command.
pub const NO_DATA_SET: u16 = 0x0101;
/// Any other value says a data set follows; this is the one we send.
const DATA_SET_PRESENT: u16 = 0x0000;

/// Statuses (PS3.4 B.2.3, PS3.7 C).
pub mod status {
    pub const SUCCESS: u16 = 0x0000;
    /// Refused: out of resources (the spool's disk is full or over quota).
    pub const OUT_OF_RESOURCES: u16 = 0xA700;
    /// Error: cannot understand (the object does not parse).
    pub const CANNOT_UNDERSTAND: u16 = 0xC000;
    /// Refused: SOP class not supported (the profile's quarantine refuses it).
    pub const REFUSED_SOP_CLASS: u16 = 0x0122;
    /// Failure: processing failure (anything else that went wrong on our side).
    pub const PROCESSING_FAILURE: u16 = 0x0110;
    /// Failure: duplicate SOP instance (some archives say this for a re-send).
    pub const DUPLICATE_SOP_INSTANCE: u16 = 0x0111;

    /// Success or one of the warnings (B000 coercion, B006 elements discarded,
    /// B007 data set does not match SOP class): the object was stored.
    pub fn is_stored(s: u16) -> bool {
        s == SUCCESS || (s & 0xF000) == 0xB000
    }

    /// A failure that a later attempt may not repeat (out of resources, or a
    /// peer-specific transient A7xx).
    pub fn is_transient(s: u16) -> bool {
        (s & 0xFF00) == 0xA700
    }
}

const GROUP_LENGTH: u32 = 0x0000_0000;
const AFFECTED_SOP_CLASS: u32 = 0x0000_0002;
const COMMAND_FIELD: u32 = 0x0000_0100;
const MESSAGE_ID: u32 = 0x0000_0110;
const MESSAGE_ID_RESPONDED: u32 = 0x0000_0120;
const PRIORITY: u32 = 0x0000_0700;
const DATA_SET_TYPE: u32 = 0x0000_0800;
const STATUS: u32 = 0x0000_0900;
const ERROR_COMMENT: u32 = 0x0000_0902;
const AFFECTED_SOP_INSTANCE: u32 = 0x0000_1000;

/// Commands are a few hundred bytes; anything far larger is not a command.
pub const MAX_COMMAND_BYTES: usize = 64 * 1024;

#[derive(Debug, thiserror::Error, PartialEq, Eq)]
pub enum DimseError {
    #[error("command set truncated at byte {0}")]
    Truncated(usize),
    #[error("command set lacks {0}")]
    Missing(&'static str),
    #[error("command set larger than {MAX_COMMAND_BYTES} bytes")]
    TooLarge,
}

/// A decoded command set: the elements by tag, values as sent.
#[derive(Debug, Clone, Default)]
pub struct Command {
    elements: BTreeMap<u32, Vec<u8>>,
}

impl Command {
    /// Parses an Implicit VR Little Endian command set.
    pub fn parse(bytes: &[u8]) -> Result<Command, DimseError> {
        if bytes.len() > MAX_COMMAND_BYTES {
            return Err(DimseError::TooLarge);
        }
        let mut elements = BTreeMap::new();
        let mut at = 0usize;
        while at < bytes.len() {
            let head = bytes.get(at..at + 8).ok_or(DimseError::Truncated(at))?;
            let group = u16::from_le_bytes([head[0], head[1]]) as u32;
            let elem = u16::from_le_bytes([head[2], head[3]]) as u32;
            let len = u32::from_le_bytes([head[4], head[5], head[6], head[7]]) as usize;
            let start = at + 8;
            let value = bytes
                .get(start..start.checked_add(len).ok_or(DimseError::Truncated(at))?)
                .ok_or(DimseError::Truncated(at))?;
            elements.insert((group << 16) | elem, value.to_vec());
            at = start + len;
        }
        Ok(Command { elements })
    }

    fn u16(&self, tag: u32) -> Option<u16> {
        let v = self.elements.get(&tag)?;
        Some(u16::from_le_bytes([*v.first()?, *v.get(1)?]))
    }

    fn text(&self, tag: u32) -> Option<String> {
        let v = self.elements.get(&tag)?;
        let s = String::from_utf8_lossy(v);
        Some(s.trim_end_matches(['\0', ' ']).trim().to_string())
    }

    pub fn field(&self) -> Result<u16, DimseError> {
        self.u16(COMMAND_FIELD)
            .ok_or(DimseError::Missing("Command Field"))
    }

    pub fn message_id(&self) -> u16 {
        self.u16(MESSAGE_ID).unwrap_or(0)
    }

    pub fn responded_id(&self) -> Option<u16> {
        self.u16(MESSAGE_ID_RESPONDED)
    }

    pub fn has_data_set(&self) -> bool {
        self.u16(DATA_SET_TYPE).is_some_and(|t| t != NO_DATA_SET)
    }

    pub fn status(&self) -> Option<u16> {
        self.u16(STATUS)
    }

    pub fn sop_class(&self) -> Option<String> {
        self.text(AFFECTED_SOP_CLASS)
    }

    pub fn sop_instance(&self) -> Option<String> {
        self.text(AFFECTED_SOP_INSTANCE)
    }

    /// The Error Comment of a response, if any.
    pub fn error_comment(&self) -> Option<String> {
        self.text(ERROR_COMMENT)
    }
}

/// Builds a command set, elements in tag order, group length first.
struct Builder {
    elements: BTreeMap<u32, Vec<u8>>,
}

impl Builder {
    fn new() -> Self {
        Builder {
            elements: BTreeMap::new(),
        }
    }

    fn u16(mut self, tag: u32, v: u16) -> Self {
        self.elements.insert(tag, v.to_le_bytes().to_vec());
        self
    }

    /// UI values pad with NUL, other text with a space, to an even length.
    fn text(mut self, tag: u32, v: &str, pad: u8) -> Self {
        let mut b = v.as_bytes().to_vec();
        if b.len() % 2 == 1 {
            b.push(pad);
        }
        self.elements.insert(tag, b);
        self
    }

    fn encode(self) -> Vec<u8> {
        let body_len: usize = self.elements.values().map(|v| 8 + v.len()).sum();
        let mut out = Vec::with_capacity(12 + body_len);
        let mut put = |tag: u32, v: &[u8]| {
            out.extend_from_slice(&((tag >> 16) as u16).to_le_bytes());
            out.extend_from_slice(&(tag as u16).to_le_bytes());
            out.extend_from_slice(&(v.len() as u32).to_le_bytes());
            out.extend_from_slice(v);
        };
        put(GROUP_LENGTH, &(body_len as u32).to_le_bytes());
        for (tag, v) in &self.elements {
            put(*tag, v);
        }
        out
    }
}

/// C-ECHO-RSP to the request with `id`.
pub fn echo_rsp(id: u16, sop_class: &str) -> Vec<u8> {
    Builder::new()
        .text(AFFECTED_SOP_CLASS, sop_class, 0)
        .u16(COMMAND_FIELD, C_ECHO_RSP)
        .u16(MESSAGE_ID_RESPONDED, id)
        .u16(DATA_SET_TYPE, NO_DATA_SET)
        .u16(STATUS, status::SUCCESS)
        .encode()
}

/// C-STORE-RSP to the request `rq`, with an Error Comment when one is given (it
/// names a reason, never a value: see the callers).
pub fn store_rsp(rq: &Command, status: u16, comment: Option<&str>) -> Vec<u8> {
    let mut b = Builder::new()
        .u16(COMMAND_FIELD, C_STORE_RSP)
        .u16(MESSAGE_ID_RESPONDED, rq.message_id())
        .u16(DATA_SET_TYPE, NO_DATA_SET)
        .u16(STATUS, status);
    if let Some(c) = rq.sop_class() {
        b = b.text(AFFECTED_SOP_CLASS, &c, 0);
    }
    if let Some(i) = rq.sop_instance() {
        b = b.text(AFFECTED_SOP_INSTANCE, &i, 0);
    }
    if let Some(c) = comment {
        // LO: at most 64 characters, no backslash or control characters.
        let c: String = c
            .chars()
            .filter(|ch| !ch.is_control() && *ch != '\\')
            .take(64)
            .collect();
        b = b.text(ERROR_COMMENT, &c, b' ');
    }
    b.encode()
}

/// C-STORE-RQ for one object, medium priority.
pub fn store_rq(id: u16, sop_class: &str, sop_instance: &str) -> Vec<u8> {
    Builder::new()
        .text(AFFECTED_SOP_CLASS, sop_class, 0)
        .u16(COMMAND_FIELD, C_STORE_RQ)
        .u16(MESSAGE_ID, id)
        .u16(PRIORITY, 0)
        .u16(DATA_SET_TYPE, DATA_SET_PRESENT)
        .text(AFFECTED_SOP_INSTANCE, sop_instance, 0)
        .encode()
}

/// C-ECHO-RQ (used by tests and by a destination check).
pub fn echo_rq(id: u16) -> Vec<u8> {
    Builder::new()
        .text(AFFECTED_SOP_CLASS, VERIFICATION, 0)
        .u16(COMMAND_FIELD, C_ECHO_RQ)
        .u16(MESSAGE_ID, id)
        .u16(DATA_SET_TYPE, NO_DATA_SET)
        .encode()
}

pub const VERIFICATION: &str = "1.2.840.10008.1.1";

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_store_request_round_trips_and_its_response_answers_it() {
        let rq = Command::parse(&store_rq(7, "1.2.840.10008.5.1.4.1.1.2", "2.25.123")).unwrap();
        assert_eq!(rq.field().unwrap(), C_STORE_RQ);
        assert_eq!(rq.message_id(), 7);
        assert!(rq.has_data_set());
        assert_eq!(rq.sop_class().unwrap(), "1.2.840.10008.5.1.4.1.1.2");
        assert_eq!(rq.sop_instance().unwrap(), "2.25.123");
        let rsp = Command::parse(&store_rsp(&rq, status::CANNOT_UNDERSTAND, Some("bad"))).unwrap();
        assert_eq!(rsp.field().unwrap(), C_STORE_RSP);
        assert_eq!(rsp.responded_id(), Some(7));
        assert_eq!(rsp.status(), Some(0xC000));
        assert!(!rsp.has_data_set());
        assert_eq!(rsp.error_comment().unwrap(), "bad");
        assert_eq!(rsp.sop_instance().unwrap(), "2.25.123");
    }

    #[test]
    fn the_group_length_counts_every_following_byte_and_values_are_even() {
        let bytes = echo_rsp(3, VERIFICATION);
        assert_eq!(&bytes[..8], &[0, 0, 0, 0, 4, 0, 0, 0]);
        let len = u32::from_le_bytes(bytes[8..12].try_into().unwrap()) as usize;
        assert_eq!(len, bytes.len() - 12);
        let c = Command::parse(&bytes).unwrap();
        assert_eq!(c.elements[&AFFECTED_SOP_CLASS].len() % 2, 0);
        assert_eq!(c.field().unwrap(), C_ECHO_RSP);
    }

    #[test]
    fn truncated_or_oversized_commands_are_errors_not_panics() {
        let bytes = echo_rq(1);
        for cut in 1..bytes.len() {
            let _ = Command::parse(&bytes[..cut]);
        }
        assert!(matches!(
            Command::parse(&bytes[..bytes.len() - 1]),
            Err(DimseError::Truncated(_))
        ));
        assert_eq!(
            Command::parse(&vec![0u8; MAX_COMMAND_BYTES + 1]).unwrap_err(),
            DimseError::TooLarge
        );
        let huge_len = [0, 0, 0, 1, 0xFF, 0xFF, 0xFF, 0xFF];
        assert!(Command::parse(&huge_len).is_err());
    }

    #[test]
    fn warnings_are_stored_and_a7xx_is_transient() {
        assert!(status::is_stored(0));
        assert!(status::is_stored(0xB007));
        assert!(!status::is_stored(0xA900));
        assert!(status::is_transient(0xA702));
        assert!(!status::is_transient(0xC000));
    }
}
