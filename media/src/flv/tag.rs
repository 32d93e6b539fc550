//! FLV tag framing.

use crate::frame::MediaKind;

pub const TAG_HEADER_LEN: usize = 11;
pub const PREVIOUS_TAG_SIZE_LEN: usize = 4;

/// The 9-byte FLV header followed by PreviousTagSize0 (4 zero bytes).
pub fn file_header(has_audio: bool, has_video: bool) -> [u8; 13] {
    todo!()
}

/// The 11-byte tag header for a tag of `kind` with `data_len` payload bytes (24-bit) at
/// `timestamp` ms (24 bits plus the extended byte). The tag is followed by the payload and then
/// the 4-byte big-endian PreviousTagSize (`TAG_HEADER_LEN + data_len`).
pub fn tag_header(kind: MediaKind, timestamp: u32, data_len: usize) -> [u8; TAG_HEADER_LEN] {
    todo!()
}
