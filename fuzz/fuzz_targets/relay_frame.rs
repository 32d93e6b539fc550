//! Fuzz the relay's GOP stream decoder (`sluice_relay::codec`): a GOP header, then frames, fed
//! in pieces of any size. Checks, for any input:
//! - never panics; a payload never exceeds the receiver's `max_frame_size`;
//! - `Short` leaves the buffer untouched (same bytes);
//! - what decodes re-encodes to exactly the bytes it consumed (header and frames);
//! - the result does not depend on how the input was split: pieces give the same header,
//!   frames and final error as the whole input at once.
//!
//! Input: `[max selector][piece size - 1][wire bytes...]`.
#![no_main]

use bytes::BytesMut;
use libfuzzer_sys::fuzz_target;
use sluice_relay::codec::{
    decode_frame, decode_gop_header, encode_frame, encode_gop_header, CodecError, Frame, GopHeader,
    DEFAULT_MAX_FRAME_SIZE, GOP_HEADER_LEN,
};

/// What a receiver gets out of a whole GOP stream.
#[derive(Debug, PartialEq, Eq)]
struct Outcome {
    header: Option<GopHeader>,
    frames: Vec<Frame>,
    /// The error that stopped decoding; `Short` when the input just ran out.
    end: CodecError,
}

/// Decodes as much of `buf` as possible into `out`; returns the error that stopped it.
fn drain(buf: &mut BytesMut, max: usize, out: &mut Outcome) -> CodecError {
    loop {
        let before = buf.clone();
        if out.header.is_none() {
            match decode_gop_header(buf) {
                Ok(h) => {
                    let mut again = BytesMut::new();
                    encode_gop_header(&h, &mut again);
                    assert_eq!(
                        &again[..],
                        &before[..GOP_HEADER_LEN],
                        "GOP header round trip"
                    );
                    assert_eq!(buf.len(), before.len() - GOP_HEADER_LEN);
                    out.header = Some(h);
                    continue;
                }
                Err(CodecError::Short) => {
                    assert_eq!(buf, &before, "Short consumed bytes");
                    return CodecError::Short;
                }
                Err(e) => panic!("decode_gop_header can only be Short, got {e}"),
            }
        }
        match decode_frame(buf, max) {
            Ok(f) => {
                assert!(f.payload.len() <= max, "payload over the limit");
                let consumed = before.len() - buf.len();
                let mut again = BytesMut::new();
                encode_frame(&f, &mut again).expect("a decoded frame re-encodes");
                assert_eq!(&again[..], &before[..consumed], "frame round trip");
                out.frames.push(f);
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
    let [max_sel, piece, wire @ ..] = data else {
        return;
    };
    let max = match *max_sel {
        0 => DEFAULT_MAX_FRAME_SIZE,
        n => usize::from(n - 1) * 16,
    };
    let piece = usize::from(*piece) + 1;

    let mut whole = Outcome {
        header: None,
        frames: Vec::new(),
        end: CodecError::Short,
    };
    let mut buf = BytesMut::from(wire);
    whole.end = drain(&mut buf, max, &mut whole);

    let mut split = Outcome {
        header: None,
        frames: Vec::new(),
        end: CodecError::Short,
    };
    let mut buf = BytesMut::new();
    for chunk in wire.chunks(piece) {
        buf.extend_from_slice(chunk);
        split.end = drain(&mut buf, max, &mut split);
        if split.end != CodecError::Short {
            break;
        }
    }
    assert_eq!(split, whole, "result depends on the split");
});
