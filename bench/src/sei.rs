//! The timing stamp the synthetic publisher embeds in every video frame, and the reader players
//! use to find it again.
//!
//! The stamp is an H.264 SEI NAL unit (type 6) carrying one `user_data_unregistered` message
//! (payload type 5): a fixed 16-byte UUID ([`STAMP_UUID`]), then the sender's wall-clock time in
//! microseconds since the UNIX epoch (u64 BE) and the frame sequence number (u64 BE). The NAL
//! body is written with emulation prevention (an `0x03` after any two zero bytes followed by a
//! byte `<= 3`), so it is a well-formed NAL unit whatever the time and sequence values are.

use bytes::{BufMut, BytesMut};

/// Identifies Sluice bench stamps among other `user_data_unregistered` SEI messages.
pub const STAMP_UUID: [u8; 16] = *b"SluiceBenchStamp";

/// SEI payload type `user_data_unregistered`.
const USER_DATA_UNREGISTERED: u8 = 5;
/// UUID + time + sequence.
const STAMP_PAYLOAD_LEN: usize = 16 + 8 + 8;
/// The unescaped SEI body is at most this long (type, size, payload, trailing bits) — and the
/// escaped one at most 1.5x that; readers unescape only this much.
const MAX_SEI_RBSP: usize = 64;

/// One decoded stamp.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Stamp {
    /// Sender wall-clock time, microseconds since the UNIX epoch.
    pub time_us: u64,
    /// Frame sequence number (0 for the first frame the publisher sends).
    pub seq: u64,
}

/// Append `rbsp` to `out` with emulation prevention bytes inserted.
pub fn escape_into(rbsp: &[u8], out: &mut BytesMut) {
    let mut zeros = 0usize;
    for &byte in rbsp {
        if zeros >= 2 && byte <= 3 {
            out.put_u8(0x03);
            zeros = 0;
        }
        out.put_u8(byte);
        zeros = if byte == 0 { zeros + 1 } else { 0 };
    }
}

/// Remove emulation prevention bytes from `nal_body` into `out`, stopping when `out` is full.
/// Returns the number of bytes written.
pub fn unescape_prefix(nal_body: &[u8], out: &mut [u8]) -> usize {
    let mut zeros = 0usize;
    let mut written = 0usize;
    for &byte in nal_body {
        if written >= out.len() {
            break;
        }
        if zeros >= 2 && byte == 0x03 {
            zeros = 0;
            continue;
        }
        if let Some(slot) = out.get_mut(written) {
            *slot = byte;
        }
        written += 1;
        zeros = if byte == 0 { zeros + 1 } else { 0 };
    }
    written
}

/// Append the complete SEI NAL unit (header byte included, no length prefix) for `stamp`.
pub fn write_sei_nal(stamp: Stamp, out: &mut BytesMut) {
    let mut rbsp = [0u8; 2 + STAMP_PAYLOAD_LEN + 1];
    rbsp[0] = USER_DATA_UNREGISTERED;
    rbsp[1] = STAMP_PAYLOAD_LEN as u8;
    rbsp[2..18].copy_from_slice(&STAMP_UUID);
    rbsp[18..26].copy_from_slice(&stamp.time_us.to_be_bytes());
    rbsp[26..34].copy_from_slice(&stamp.seq.to_be_bytes());
    rbsp[34] = 0x80; // rbsp_trailing_bits
    out.put_u8(0x06); // forbidden_zero_bit 0, nal_ref_idc 0, nal_unit_type 6
    escape_into(&rbsp, out);
}

/// Parse the body (after the NAL header byte) of an SEI NAL unit and return the bench stamp if
/// it carries one. Never allocates.
pub fn parse_sei_body(nal_body: &[u8]) -> Option<Stamp> {
    let mut rbsp = [0u8; MAX_SEI_RBSP];
    let len = unescape_prefix(nal_body, &mut rbsp);
    let mut rest = rbsp.get(..len)?;
    // sei_message()*: payload type and size are ff-extended; stop at the trailing bits.
    while let Some(&first) = rest.first() {
        if first == 0x80 && rest.len() == 1 {
            return None;
        }
        let payload_type = read_ff_value(&mut rest)?;
        let payload_size = read_ff_value(&mut rest)?;
        let payload = rest.get(..payload_size)?;
        if payload_type == usize::from(USER_DATA_UNREGISTERED)
            && payload_size >= STAMP_PAYLOAD_LEN
            && payload.get(..16)? == STAMP_UUID
        {
            let time_us = u64::from_be_bytes(payload.get(16..24)?.try_into().ok()?);
            let seq = u64::from_be_bytes(payload.get(24..32)?.try_into().ok()?);
            return Some(Stamp { time_us, seq });
        }
        rest = rest.get(payload_size..)?;
    }
    None
}

/// An SEI payload type or size: a run of `0xFF` bytes (255 each) plus a final byte.
fn read_ff_value(rest: &mut &[u8]) -> Option<usize> {
    let mut value = 0usize;
    loop {
        let (&byte, tail) = rest.split_first()?;
        *rest = tail;
        value = value.checked_add(usize::from(byte))?;
        if byte != 0xFF {
            return Some(value);
        }
    }
}

/// What a player learns from one FLV/RTMP video message body.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum VideoInfo {
    /// An AVC sequence header (decoder configuration).
    SequenceHeader,
    /// A coded frame carrying a bench stamp.
    Stamped { stamp: Stamp, keyframe: bool },
    /// A coded frame without a stamp, or a codec other than AVC.
    Unstamped,
}

/// Classify an FLV video tag body (`frame type | codec id`, AVC packet type, composition time,
/// then 4-byte length-prefixed NAL units) and find the stamp SEI. Never panics on any input.
pub fn inspect_video(body: &[u8]) -> VideoInfo {
    let (Some(&flags), Some(&packet_type)) = (body.first(), body.get(1)) else {
        return VideoInfo::Unstamped;
    };
    if flags & 0x0F != 7 {
        return VideoInfo::Unstamped;
    }
    match packet_type {
        0 => return VideoInfo::SequenceHeader,
        1 => {}
        _ => return VideoInfo::Unstamped,
    }
    let keyframe = flags >> 4 == 1;
    let mut rest = body.get(5..).unwrap_or(&[]);
    while rest.len() >= 4 {
        let len = u32::from_be_bytes([rest[0], rest[1], rest[2], rest[3]]) as usize;
        let Some(nal) = rest.get(4..4usize.saturating_add(len)) else {
            break;
        };
        if let Some((&header, nal_body)) = nal.split_first() {
            if header & 0x1F == 6 {
                if let Some(stamp) = parse_sei_body(nal_body) {
                    return VideoInfo::Stamped { stamp, keyframe };
                }
            }
        }
        rest = rest.get(4 + len..).unwrap_or(&[]);
    }
    VideoInfo::Unstamped
}

#[cfg(test)]
mod tests {
    use super::*;

    fn round_trip(stamp: Stamp) -> BytesMut {
        let mut nal = BytesMut::new();
        write_sei_nal(stamp, &mut nal);
        assert_eq!(nal[0], 0x06);
        assert_eq!(parse_sei_body(&nal[1..]), Some(stamp));
        nal
    }

    /// No `00 00 00`, `00 00 01`, `00 00 02` may appear inside an escaped NAL body.
    fn assert_no_start_code_emulation(body: &[u8]) {
        for window in body.windows(3) {
            assert!(
                !(window[0] == 0 && window[1] == 0 && window[2] <= 2),
                "emulated start code in {body:02x?}"
            );
        }
    }

    #[test]
    fn round_trip_plain_values() {
        let nal = round_trip(Stamp { time_us: 1_732_600_000_123_456, seq: 42 });
        assert_no_start_code_emulation(&nal[1..]);
    }

    #[test]
    fn round_trip_needs_emulation_prevention() {
        // Zero-heavy values force `00 00 0x` sequences in the RBSP.
        for stamp in [
            Stamp { time_us: 0, seq: 0 },
            Stamp { time_us: 1, seq: 3 },
            Stamp { time_us: 0x0000_0001_0000_0002, seq: 0x0300_0000_0000_0001 },
            Stamp { time_us: u64::MAX, seq: 0x0000_0300_0000_0000 },
        ] {
            let nal = round_trip(stamp);
            assert_no_start_code_emulation(&nal[1..]);
        }
        // time 0 and seq 0: 16 zero bytes, so several 0x03 must have been inserted.
        let nal = round_trip(Stamp { time_us: 0, seq: 0 });
        assert!(nal.len() > 1 + 35, "no emulation prevention bytes in {nal:02x?}");
    }

    #[test]
    fn escape_and_unescape_are_inverse() {
        let raw = [0u8, 0, 0, 0, 1, 0, 0, 3, 0, 0, 2, 5, 0, 0];
        let mut escaped = BytesMut::new();
        escape_into(&raw, &mut escaped);
        assert_eq!(&escaped[..], &[0, 0, 3, 0, 0, 3, 1, 0, 0, 3, 3, 0, 0, 3, 2, 5, 0, 0][..]);
        let mut back = [0u8; 32];
        let n = unescape_prefix(&escaped, &mut back);
        assert_eq!(&back[..n], &raw[..]);
    }

    #[test]
    fn foreign_sei_is_ignored() {
        // user_data_unregistered with another UUID, then a recovery point SEI (type 6).
        let body = [5u8, 17, 1, 2, 3, 4, 5, 6, 7, 8, 9, 10, 11, 12, 13, 14, 15, 16, 0xAA, 0x80];
        assert_eq!(parse_sei_body(&body), None);
        assert_eq!(parse_sei_body(&[6, 1, 0x84, 0x80]), None);
        assert_eq!(parse_sei_body(&[]), None);
        assert_eq!(parse_sei_body(&[0xFF, 0xFF]), None);
    }

    #[test]
    fn stamp_after_another_sei_message() {
        let mut rbsp = vec![6u8, 1, 0x84]; // recovery point first
        rbsp.extend_from_slice(&[5, 32]);
        rbsp.extend_from_slice(&STAMP_UUID);
        rbsp.extend_from_slice(&7u64.to_be_bytes());
        rbsp.extend_from_slice(&9u64.to_be_bytes());
        rbsp.push(0x80);
        let mut escaped = BytesMut::new();
        escape_into(&rbsp, &mut escaped);
        assert_eq!(parse_sei_body(&escaped), Some(Stamp { time_us: 7, seq: 9 }));
    }

    #[test]
    fn inspect_video_tags() {
        let stamp = Stamp { time_us: 123, seq: 77 };
        let mut sei = BytesMut::new();
        write_sei_nal(stamp, &mut sei);
        let mut tag = vec![0x17, 1, 0, 0, 0];
        tag.extend_from_slice(&(sei.len() as u32).to_be_bytes());
        tag.extend_from_slice(&sei);
        tag.extend_from_slice(&3u32.to_be_bytes());
        tag.extend_from_slice(&[0x65, 0x88, 0x84]);
        assert_eq!(inspect_video(&tag), VideoInfo::Stamped { stamp, keyframe: true });
        tag[0] = 0x27;
        assert_eq!(inspect_video(&tag), VideoInfo::Stamped { stamp, keyframe: false });
        assert_eq!(inspect_video(&[0x17, 0, 0, 0, 0, 1]), VideoInfo::SequenceHeader);
        assert_eq!(inspect_video(&[0x12, 1]), VideoInfo::Unstamped);
        // Truncated / lying NAL lengths never panic.
        assert_eq!(inspect_video(&tag[..12]), VideoInfo::Unstamped);
        assert_eq!(
            inspect_video(&[0x17, 1, 0, 0, 0, 0xFF, 0xFF, 0xFF, 0xFF, 6]),
            VideoInfo::Unstamped
        );
    }
}
