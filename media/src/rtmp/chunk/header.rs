//! Wire layout shared by the chunk encoder and decoder (RTMP 1.0, section 5.3.1).
//!
//! A chunk starts with a basic header (format `fmt` in the top two bits and the chunk stream
//! id in one, two or three bytes), then a message header of 11, 7, 3 or 0 bytes depending on
//! `fmt`, then an optional 4-byte extended timestamp.

use bytes::{BufMut, BytesMut};

/// Lowest chunk stream id (0 and 1 select the 2- and 3-byte basic header forms).
pub const MIN_CSID: u32 = 2;
/// Highest chunk stream id the 3-byte basic header can carry.
pub const MAX_CSID: u32 = 65_599;
/// Timestamp field value meaning "the real value is in the extended timestamp".
pub(super) const EXTENDED_TIMESTAMP: u32 = 0xFF_FFFF;
/// Largest message length the 24-bit length field can carry.
pub const MAX_MESSAGE_LENGTH: usize = 0xFF_FFFF;

/// Message header length for each `fmt` (0, 1, 2, 3).
pub(super) const MESSAGE_HEADER_LEN: [usize; 4] = [11, 7, 3, 0];

/// Parse the basic header at the front of `buf`: `(fmt, csid, header length)`, or `None` if
/// `buf` does not hold all of it yet.
pub(super) fn parse_basic_header(buf: &[u8]) -> Option<(u8, u32, usize)> {
    let first = *buf.first()?;
    let fmt = first >> 6;
    match first & 0x3F {
        0 => Some((fmt, 64 + u32::from(*buf.get(1)?), 2)),
        1 => {
            let lo = u32::from(*buf.get(1)?);
            let hi = u32::from(*buf.get(2)?);
            Some((fmt, 64 + lo + hi * 256, 3))
        }
        id => Some((fmt, u32::from(id), 1)),
    }
}

/// Append the shortest basic header for `csid`.
///
/// # Panics
/// If `csid` is outside `MIN_CSID..=MAX_CSID` (a programming error, never peer input).
pub(super) fn put_basic_header(fmt: u8, csid: u32, out: &mut BytesMut) {
    assert!((MIN_CSID..=MAX_CSID).contains(&csid), "chunk stream id {csid} out of range");
    let fmt = fmt << 6;
    match csid {
        2..=63 => out.put_u8(fmt | csid as u8),
        64..=319 => out.put_slice(&[fmt, (csid - 64) as u8]),
        _ => {
            let v = csid - 64;
            out.put_slice(&[fmt | 1, (v & 0xFF) as u8, (v >> 8) as u8]);
        }
    }
}

/// Big-endian 24-bit value from the first three bytes of `b` (caller checked the length).
pub(super) fn u24(b: &[u8]) -> u32 {
    (u32::from(b[0]) << 16) | (u32::from(b[1]) << 8) | u32::from(b[2])
}

/// Append the low 24 bits of `v`, big-endian.
pub(super) fn put_u24(v: u32, out: &mut BytesMut) {
    out.put_slice(&v.to_be_bytes()[1..]);
}
