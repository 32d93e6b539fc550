//! Sans-IO codecs of the relay: the media stream layout (a GOP header, then frames) and the
//! length-prefixed framing of control messages. Pure functions over `BytesMut`; decoders
//! are incremental: [`CodecError::Short`] means "feed more bytes and call again" and leaves
//! the buffer untouched. Every length from the peer is checked against a bound before any
//! allocation.

use bytes::{Buf, BufMut, Bytes, BytesMut};
use prost::Message;
use sluice_proto::v1::ControlMessage;

/// Size of the header that opens every GOP stream: request_id u64, gop_sequence u64.
pub const GOP_HEADER_LEN: usize = 16;
/// Size of a frame header: kind u8, flags u8, timestamp u32, length u32.
pub const FRAME_HEADER_LEN: usize = 10;
/// Default bound on one frame's payload (a large keyframe fits).
pub const DEFAULT_MAX_FRAME_SIZE: usize = 8 * 1024 * 1024;
/// Bound on one control message (protobuf bytes, without the length prefix).
pub const MAX_CONTROL_MESSAGE: usize = 64 * 1024;

/// Frame flag: a keyframe (a GOP starts at a video keyframe).
pub const FLAG_KEYFRAME: u8 = 0x01;
/// Frame flag: a sequence header or metadata, repeated at the start of every GOP stream.
pub const FLAG_HEADER: u8 = 0x02;
/// Frame flag: not media but the HLS segment stamp of the keyframe just before it (a data
/// frame; see `sluice_media::hls::SegmentStamp`). Receivers that do not segment ignore it.
pub const FLAG_HLS_STAMP: u8 = 0x04;
const KNOWN_FLAGS: u8 = FLAG_KEYFRAME | FLAG_HEADER | FLAG_HLS_STAMP;

/// Decoding failures. Only [`CodecError::Short`] is recoverable (need more bytes).
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum CodecError {
    /// Not enough bytes buffered yet; nothing was consumed.
    #[error("need more bytes")]
    Short,
    /// The frame kind byte is not audio, video or data.
    #[error("unknown frame kind {0}")]
    BadKind(u8),
    /// Flag bits this version does not define.
    #[error("unknown frame flags {0:#04x}")]
    BadFlags(u8),
    /// A frame longer than the receiver's bound.
    #[error("frame of {len} bytes exceeds the limit of {max}")]
    FrameTooLarge { len: u64, max: usize },
    /// A control message longer than [`MAX_CONTROL_MESSAGE`].
    #[error("control message of {0} bytes exceeds the limit of {MAX_CONTROL_MESSAGE}")]
    ControlTooLarge(u64),
    /// A control message that is not valid protobuf.
    #[error("malformed control message: {0}")]
    Protobuf(#[from] prost::DecodeError),
}

/// What a frame carries.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub enum FrameKind {
    Audio = 1,
    Video = 2,
    Data = 3,
}

impl FrameKind {
    /// Parses the wire byte.
    pub fn from_u8(b: u8) -> Result<Self, CodecError> {
        match b {
            1 => Ok(Self::Audio),
            2 => Ok(Self::Video),
            3 => Ok(Self::Data),
            other => Err(CodecError::BadKind(other)),
        }
    }
}

/// One media frame on a GOP stream (an FLV-level audio/video/data message).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Frame {
    pub kind: FrameKind,
    /// [`FLAG_KEYFRAME`] and/or [`FLAG_HEADER`].
    pub flags: u8,
    /// Milliseconds, the stream's (rebased) timestamp.
    pub timestamp: u32,
    pub payload: Bytes,
}

impl Frame {
    /// A video keyframe that is not a header: the frame that starts a new GOP.
    pub fn starts_gop(&self) -> bool {
        self.kind == FrameKind::Video && self.flags & FLAG_KEYFRAME != 0 && !self.is_header()
    }

    /// A sequence header or metadata.
    pub fn is_header(&self) -> bool {
        self.flags & FLAG_HEADER != 0
    }
}

/// The header that opens a GOP stream.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct GopHeader {
    /// The subscription (the `request_id` of its `Subscribe`).
    pub request_id: u64,
    /// Increases by one per GOP of the subscription.
    pub gop_sequence: u64,
}

/// Appends a GOP header.
pub fn encode_gop_header(h: &GopHeader, out: &mut BytesMut) {
    out.reserve(GOP_HEADER_LEN);
    out.put_u64(h.request_id);
    out.put_u64(h.gop_sequence);
}

/// Takes a GOP header off the front of `buf`.
pub fn decode_gop_header(buf: &mut BytesMut) -> Result<GopHeader, CodecError> {
    if buf.len() < GOP_HEADER_LEN {
        return Err(CodecError::Short);
    }
    let request_id = buf.get_u64();
    let gop_sequence = buf.get_u64();
    Ok(GopHeader { request_id, gop_sequence })
}

/// Appends only the header of a frame (the payload can then be written without a copy).
/// Fails if the payload is longer than `u32::MAX`.
pub fn encode_frame_header(f: &Frame, out: &mut BytesMut) -> Result<(), CodecError> {
    let len = u32::try_from(f.payload.len()).map_err(|_| CodecError::FrameTooLarge {
        len: f.payload.len() as u64,
        max: u32::MAX as usize,
    })?;
    out.reserve(FRAME_HEADER_LEN);
    out.put_u8(f.kind as u8);
    out.put_u8(f.flags);
    out.put_u32(f.timestamp);
    out.put_u32(len);
    Ok(())
}

/// Appends a whole frame (header and payload).
pub fn encode_frame(f: &Frame, out: &mut BytesMut) -> Result<(), CodecError> {
    encode_frame_header(f, out)?;
    out.extend_from_slice(&f.payload);
    Ok(())
}

/// Takes one frame off the front of `buf`. The payload is split off `buf` without a copy.
/// Header errors are reported as soon as the header is complete.
pub fn decode_frame(buf: &mut BytesMut, max_frame_size: usize) -> Result<Frame, CodecError> {
    let Some(head) = buf.get(..FRAME_HEADER_LEN) else {
        return Err(CodecError::Short);
    };
    let mut head: &[u8] = head;
    let kind = FrameKind::from_u8(head.get_u8())?;
    let flags = head.get_u8();
    if flags & !KNOWN_FLAGS != 0 {
        return Err(CodecError::BadFlags(flags));
    }
    let timestamp = head.get_u32();
    let len = head.get_u32();
    let len_usize = usize::try_from(len).unwrap_or(usize::MAX);
    if len_usize > max_frame_size {
        return Err(CodecError::FrameTooLarge { len: len.into(), max: max_frame_size });
    }
    let total = FRAME_HEADER_LEN.saturating_add(len_usize);
    if buf.len() < total {
        return Err(CodecError::Short);
    }
    buf.advance(FRAME_HEADER_LEN);
    let payload = buf.split_to(len_usize).freeze();
    Ok(Frame { kind, flags, timestamp, payload })
}

/// Appends a control message with its 4-byte big-endian length prefix.
pub fn encode_control(msg: &ControlMessage, out: &mut BytesMut) {
    let len = msg.encoded_len();
    out.reserve(4 + len);
    out.put_u32(u32::try_from(len).unwrap_or(u32::MAX));
    // Encoding into a buffer with reserved capacity cannot fail.
    let _ = msg.encode(out);
}

/// Takes one length-prefixed control message off the front of `buf`.
pub fn decode_control(buf: &mut BytesMut) -> Result<ControlMessage, CodecError> {
    let Some(prefix) = buf.get(..4) else {
        return Err(CodecError::Short);
    };
    let len = u32::from_be_bytes([prefix[0], prefix[1], prefix[2], prefix[3]]);
    let len_usize = usize::try_from(len).unwrap_or(usize::MAX);
    if len_usize > MAX_CONTROL_MESSAGE {
        return Err(CodecError::ControlTooLarge(len.into()));
    }
    if buf.len() < 4 + len_usize {
        return Err(CodecError::Short);
    }
    buf.advance(4);
    let body = buf.split_to(len_usize);
    Ok(ControlMessage::decode(body.freeze())?)
}

#[cfg(test)]
mod tests {
    use super::*;
    use proptest::prelude::*;
    use sluice_proto::v1::{
        control_message::Msg, Forward, ForwardError, ForwardOk, Hello, Subscribe, Unforward,
    };

    fn frame(kind: FrameKind, flags: u8, ts: u32, payload: &[u8]) -> Frame {
        Frame { kind, flags, timestamp: ts, payload: Bytes::copy_from_slice(payload) }
    }

    #[test]
    fn frame_layout_is_exact() {
        let mut out = BytesMut::new();
        encode_frame(&frame(FrameKind::Video, FLAG_KEYFRAME, 0x0102_0304, b"xyz"), &mut out)
            .unwrap();
        assert_eq!(&out[..], &[2, 1, 1, 2, 3, 4, 0, 0, 0, 3, b'x', b'y', b'z']);
        let mut h = BytesMut::new();
        encode_gop_header(&GopHeader { request_id: 1, gop_sequence: 2 }, &mut h);
        assert_eq!(&h[..], &[0, 0, 0, 0, 0, 0, 0, 1, 0, 0, 0, 0, 0, 0, 0, 2]);
    }

    #[test]
    fn short_leaves_buffer_untouched() {
        let mut out = BytesMut::new();
        encode_frame(&frame(FrameKind::Audio, 0, 5, b"hello"), &mut out).unwrap();
        for cut in 0..out.len() {
            let mut part = BytesMut::from(&out[..cut]);
            assert_eq!(decode_frame(&mut part, 100), Err(CodecError::Short));
            assert_eq!(part.len(), cut);
        }
        let mut whole = out.clone();
        assert_eq!(decode_frame(&mut whole, 100).unwrap().payload, Bytes::from_static(b"hello"));
        assert!(whole.is_empty());
    }

    #[test]
    fn oversized_and_bad_headers_are_refused_before_the_payload() {
        let mut b = BytesMut::from(&[2u8, 0, 0, 0, 0, 0, 0, 0, 1, 0][..]);
        assert_eq!(
            decode_frame(&mut b, 255),
            Err(CodecError::FrameTooLarge { len: 256, max: 255 })
        );
        let mut b = BytesMut::from(&[9u8, 0, 0, 0, 0, 0, 0, 0, 0, 0][..]);
        assert_eq!(decode_frame(&mut b, 10), Err(CodecError::BadKind(9)));
        let mut b = BytesMut::from(&[1u8, 0x80, 0, 0, 0, 0, 0, 0, 0, 0][..]);
        assert_eq!(decode_frame(&mut b, 10), Err(CodecError::BadFlags(0x80)));
        let mut b = BytesMut::from(&[0u8, 1, 0, 1][..]);
        assert_eq!(decode_control(&mut b), Err(CodecError::ControlTooLarge(65537)));
    }

    #[test]
    fn control_round_trip_and_garbage() {
        let msg = ControlMessage {
            msg: Some(Msg::Subscribe(Subscribe {
                request_id: 3,
                app: "live".into(),
                name: "a".into(),
                claim_revision: -1,
                traceparent: String::new(),
            })),
        };
        let mut out = BytesMut::new();
        encode_control(&msg, &mut out);
        encode_control(&msg, &mut out);
        assert_eq!(decode_control(&mut out).unwrap(), msg);
        assert_eq!(decode_control(&mut out).unwrap(), msg);
        assert_eq!(decode_control(&mut out), Err(CodecError::Short));
        let mut bad = BytesMut::from(&[0u8, 0, 0, 2, 0xff, 0xff][..]);
        assert!(matches!(decode_control(&mut bad), Err(CodecError::Protobuf(_))));
    }

    fn arb_frame() -> impl Strategy<Value = Frame> {
        (1u8..=3, 0u8..=3, any::<u32>(), proptest::collection::vec(any::<u8>(), 0..300)).prop_map(
            |(k, flags, ts, p)| Frame {
                kind: FrameKind::from_u8(k).unwrap(),
                flags,
                timestamp: ts,
                payload: p.into(),
            },
        )
    }

    /// Hello, Subscribe (with traceparent) and the forward messages, with any field values.
    fn arb_control() -> impl Strategy<Value = ControlMessage> {
        let text = "[ -~]{0,60}";
        let msg = prop_oneof![
            (any::<u64>(), text, text, any::<i64>(), text).prop_map(|(id, app, name, rev, tp)| {
                Msg::Subscribe(Subscribe {
                    request_id: id,
                    app,
                    name,
                    claim_revision: rev,
                    traceparent: tp,
                })
            }),
            (any::<u64>(), text, text, any::<i64>(), any::<u32>(), text).prop_map(
                |(id, app, name, rev, hops, tp)| {
                    Msg::Forward(Forward {
                        request_id: id,
                        app,
                        name,
                        claim_revision: rev,
                        hops,
                        traceparent: tp,
                    })
                }
            ),
            any::<u64>().prop_map(|id| Msg::ForwardOk(ForwardOk { request_id: id })),
            (any::<u32>(), text, any::<bool>()).prop_map(|(version, node_id, serves)| {
                Msg::Hello(Hello { version, node_id, serves_requests: serves })
            }),
            (any::<u64>(), 0i32..=4, text).prop_map(|(id, code, owner)| {
                Msg::ForwardError(ForwardError { request_id: id, code, owner })
            }),
            (any::<u64>(), any::<u64>(), 0i32..=2).prop_map(|(id, gops, reason)| {
                Msg::Unforward(Unforward { request_id: id, gop_count: gops, reason })
            }),
        ];
        msg.prop_map(|m| ControlMessage { msg: Some(m) })
    }

    proptest! {
        #[test]
        fn control_messages_round_trip_in_any_split(
            msgs in proptest::collection::vec(arb_control(), 1..8),
            chunk in 1usize..32,
        ) {
            let mut wire = BytesMut::new();
            for m in &msgs { encode_control(m, &mut wire); }
            let mut buf = BytesMut::new();
            let mut got = Vec::new();
            for piece in wire.chunks(chunk) {
                buf.extend_from_slice(piece);
                loop {
                    let before = buf.len();
                    match decode_control(&mut buf) {
                        Ok(m) => got.push(m),
                        Err(CodecError::Short) => { prop_assert_eq!(buf.len(), before); break }
                        Err(e) => panic!("{e}"),
                    }
                }
            }
            prop_assert_eq!(got, msgs);
            prop_assert!(buf.is_empty());
        }

        #[test]
        fn truncated_control_messages_never_decode_as_something_else(
            msg in arb_control(),
            cut in any::<proptest::sample::Index>(),
        ) {
            // A prefix of the body under a length prefix that claims just that prefix:
            // never panics, consumes exactly what the prefix claims, and a proper prefix
            // never yields the original message.
            let mut whole = BytesMut::new();
            encode_control(&msg, &mut whole);
            let body = &whole[4..];
            let n = cut.index(body.len().max(1)).min(body.len());
            let mut b = BytesMut::new();
            b.put_u32(n as u32);
            b.extend_from_slice(&body[..n]);
            let decoded = decode_control(&mut b);
            prop_assert!(b.is_empty());
            prop_assert!(n == body.len() || decoded != Ok(msg.clone()));
            if n == body.len() {
                prop_assert_eq!(decoded, Ok(msg));
            }
        }

        #[test]
        fn frames_round_trip_in_any_split(
            frames in proptest::collection::vec(arb_frame(), 0..20),
            chunk in 1usize..64,
            req in any::<u64>(), seq in any::<u64>(),
        ) {
            let mut wire = BytesMut::new();
            let header = GopHeader { request_id: req, gop_sequence: seq };
            encode_gop_header(&header, &mut wire);
            for f in &frames { encode_frame(f, &mut wire).unwrap(); }
            let mut buf = BytesMut::new();
            let mut got_header = None;
            let mut got = Vec::new();
            for piece in wire.chunks(chunk) {
                buf.extend_from_slice(piece);
                loop {
                    if got_header.is_none() {
                        match decode_gop_header(&mut buf) {
                            Ok(h) => got_header = Some(h),
                            Err(CodecError::Short) => break,
                            Err(e) => panic!("{e}"),
                        }
                    }
                    match decode_frame(&mut buf, 300) {
                        Ok(f) => got.push(f),
                        Err(CodecError::Short) => break,
                        Err(e) => panic!("{e}"),
                    }
                }
            }
            prop_assert_eq!(got_header, Some(header));
            prop_assert_eq!(got, frames);
            prop_assert!(buf.is_empty());
        }

        #[test]
        fn arbitrary_bytes_never_panic(bytes in proptest::collection::vec(any::<u8>(), 0..200)) {
            let mut b = BytesMut::from(&bytes[..]);
            while decode_frame(&mut b, 64).is_ok() {}
            let mut b = BytesMut::from(&bytes[..]);
            while decode_control(&mut b).is_ok() {}
            let mut b = BytesMut::from(&bytes[..]);
            let _ = decode_gop_header(&mut b);
        }
    }
}
