//! Fuzz the relay's control stream decoder (`sluice_relay::codec::decode_control`):
//! length-prefixed protobuf `ControlMessage`s fed in pieces of any size. Checks, for any input:
//! - never panics; nothing over `MAX_CONTROL_MESSAGE` is taken;
//! - `Short` leaves the buffer untouched (same bytes); a decoded message consumed exactly
//!   4 bytes of prefix plus the length the prefix claims;
//! - a decoded message survives `encode_control` -> `decode_control` unchanged (protobuf is
//!   not canonical, so the bytes may differ, the message may not);
//! - the result does not depend on how the input was split.
//!
//! Input: `[piece size - 1][wire bytes...]`.
#![no_main]

use bytes::BytesMut;
use libfuzzer_sys::fuzz_target;
use sluice_proto::v1::ControlMessage;
use sluice_relay::codec::{decode_control, encode_control, CodecError, MAX_CONTROL_MESSAGE};

/// Decodes as much of `buf` as possible into `out`; returns the error that stopped it.
fn drain(buf: &mut BytesMut, out: &mut Vec<ControlMessage>) -> CodecError {
    loop {
        let before = buf.clone();
        match decode_control(buf) {
            Ok(msg) => {
                let claimed =
                    u32::from_be_bytes([before[0], before[1], before[2], before[3]]) as usize;
                assert!(claimed <= MAX_CONTROL_MESSAGE);
                assert_eq!(
                    before.len() - buf.len(),
                    4 + claimed,
                    "consumed != prefix + length"
                );
                let mut again = BytesMut::new();
                encode_control(&msg, &mut again);
                let n = again.len();
                let back = decode_control(&mut again).expect("a decoded message re-encodes");
                assert_eq!(back, msg, "control message round trip");
                assert!(
                    again.is_empty(),
                    "re-encoded message of {n} bytes not fully consumed"
                );
                out.push(msg);
            }
            Err(CodecError::Short) => {
                assert_eq!(buf, &before, "Short consumed bytes");
                return CodecError::Short;
            }
            Err(e) => return e,
        }
    }
}

fuzz_target!(|data: &[u8]| {
    let [piece, wire @ ..] = data else { return };
    let piece = usize::from(*piece) + 1;

    let mut whole = Vec::new();
    let whole_end = drain(&mut BytesMut::from(wire), &mut whole);

    let mut split = Vec::new();
    let mut split_end = CodecError::Short;
    let mut buf = BytesMut::new();
    for chunk in wire.chunks(piece) {
        buf.extend_from_slice(chunk);
        split_end = drain(&mut buf, &mut split);
        if split_end != CodecError::Short {
            break;
        }
    }
    assert_eq!(split, whole, "messages depend on the split");
    assert_eq!(split_end, whole_end, "final error depends on the split");
});
