//! FLV tag framing.

use crate::frame::MediaKind;

pub const TAG_HEADER_LEN: usize = 11;
pub const PREVIOUS_TAG_SIZE_LEN: usize = 4;
/// Length of the FLV file header proper (without PreviousTagSize0).
pub const FILE_HEADER_LEN: usize = 9;
/// Largest payload a tag header can describe (24-bit DataSize).
pub const MAX_TAG_DATA_LEN: usize = 0xFF_FFFF;

/// The 9-byte FLV header followed by PreviousTagSize0 (4 zero bytes).
pub fn file_header(has_audio: bool, has_video: bool) -> [u8; 13] {
    let flags = if has_audio { 0x04 } else { 0 } | if has_video { 0x01 } else { 0 };
    [b'F', b'L', b'V', 1, flags, 0, 0, 0, FILE_HEADER_LEN as u8, 0, 0, 0, 0]
}

/// The 11-byte tag header for a tag of `kind` with `data_len` payload bytes (24-bit) at
/// `timestamp` ms (24 bits plus the extended byte). The tag is followed by the payload and then
/// the 4-byte big-endian PreviousTagSize (`TAG_HEADER_LEN + data_len`).
///
/// `data_len` above [`MAX_TAG_DATA_LEN`] cannot be framed; callers must not write such tags
/// (the length field would be truncated to 24 bits).
pub fn tag_header(kind: MediaKind, timestamp: u32, data_len: usize) -> [u8; TAG_HEADER_LEN] {
    debug_assert!(data_len <= MAX_TAG_DATA_LEN, "FLV tag payload too large: {data_len}");
    let len = (data_len as u32).to_be_bytes();
    let ts = timestamp.to_be_bytes();
    [kind.type_id(), len[1], len[2], len[3], ts[1], ts[2], ts[3], ts[0], 0, 0, 0]
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn file_header_bytes() {
        assert_eq!(file_header(true, true), *b"FLV\x01\x05\x00\x00\x00\x09\x00\x00\x00\x00");
        assert_eq!(file_header(true, false)[4], 0x04);
        assert_eq!(file_header(false, true)[4], 0x01);
        assert_eq!(file_header(false, false)[4], 0x00);
    }

    #[test]
    fn tag_header_bytes() {
        assert_eq!(
            tag_header(MediaKind::Video, 0x0102_0304, 0x0A0B0C),
            [9, 0x0A, 0x0B, 0x0C, 0x02, 0x03, 0x04, 0x01, 0, 0, 0]
        );
        assert_eq!(tag_header(MediaKind::Audio, 1000, 7), [8, 0, 0, 7, 0, 0x03, 0xE8, 0, 0, 0, 0]);
        assert_eq!(
            tag_header(MediaKind::Data, u32::MAX, 0)[..8],
            [18, 0, 0, 0, 0xFF, 0xFF, 0xFF, 0xFF]
        );
    }
}
