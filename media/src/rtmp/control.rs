//! Protocol control messages (types 1, 2, 3, 5, 6) and User Control events (type 4).

use bytes::{BufMut, Bytes, BytesMut};

use super::msg_type;

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum ControlMessage {
    SetChunkSize(u32),
    Abort {
        csid: u32,
    },
    Acknowledgement {
        sequence_number: u32,
    },
    WindowAckSize(u32),
    /// limit_type: 0 hard, 1 soft, 2 dynamic.
    SetPeerBandwidth {
        size: u32,
        limit_type: u8,
    },
    UserControl(UserControlEvent),
}

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum UserControlEvent {
    StreamBegin(u32),
    StreamEof(u32),
    StreamDry(u32),
    SetBufferLength {
        stream_id: u32,
        buffer_ms: u32,
    },
    StreamIsRecorded(u32),
    PingRequest(u32),
    PingResponse(u32),
    /// An event type Sluice does not act on (e.g. SWF verification); ignored, not an error.
    Other {
        event_type: u16,
    },
}

#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum ControlError {
    #[error("control message type {type_id} has {len} bytes, needs {need}")]
    Short { type_id: u8, len: usize, need: usize },
    #[error("message type {0} is not a protocol control message")]
    NotControl(u8),
}

/// User Control event type ids (RTMP 1.0, section 7.1.7).
pub mod event_type {
    pub const STREAM_BEGIN: u16 = 0;
    pub const STREAM_EOF: u16 = 1;
    pub const STREAM_DRY: u16 = 2;
    pub const SET_BUFFER_LENGTH: u16 = 3;
    pub const STREAM_IS_RECORDED: u16 = 4;
    pub const PING_REQUEST: u16 = 6;
    pub const PING_RESPONSE: u16 = 7;
}

/// Big-endian u32 at `at`, or `Short` naming the whole message's requirement.
fn be_u32(type_id: u8, payload: &[u8], at: usize, need: usize) -> Result<u32, ControlError> {
    match payload.get(at..at.saturating_add(4)) {
        Some(b) if payload.len() >= need => Ok(u32::from_be_bytes([b[0], b[1], b[2], b[3]])),
        _ => Err(ControlError::Short { type_id, len: payload.len(), need }),
    }
}

impl ControlMessage {
    /// Parse a control message from its RTMP message type id and payload. For Set Chunk Size the
    /// value is returned as sent (top bit included); validating it is the chunk decoder's job.
    ///
    /// Bytes after the fields a message needs are ignored.
    pub fn decode(type_id: u8, payload: &[u8]) -> Result<Self, ControlError> {
        let word = |need| be_u32(type_id, payload, 0, need);
        Ok(match type_id {
            msg_type::SET_CHUNK_SIZE => ControlMessage::SetChunkSize(word(4)?),
            msg_type::ABORT => ControlMessage::Abort { csid: word(4)? },
            msg_type::ACKNOWLEDGEMENT => {
                ControlMessage::Acknowledgement { sequence_number: word(4)? }
            }
            msg_type::WINDOW_ACK_SIZE => ControlMessage::WindowAckSize(word(4)?),
            msg_type::SET_PEER_BANDWIDTH => {
                let size = word(5)?;
                let limit_type = payload.get(4).copied().unwrap_or_default();
                ControlMessage::SetPeerBandwidth { size, limit_type }
            }
            msg_type::USER_CONTROL => {
                ControlMessage::UserControl(UserControlEvent::decode(payload)?)
            }
            other => return Err(ControlError::NotControl(other)),
        })
    }

    /// The RTMP message type id and payload for this message. Control messages travel on chunk
    /// stream 2, message stream 0.
    pub fn encode(&self) -> (u8, Bytes) {
        let mut out = BytesMut::with_capacity(10);
        let type_id = match *self {
            ControlMessage::SetChunkSize(size) => {
                out.put_u32(size);
                msg_type::SET_CHUNK_SIZE
            }
            ControlMessage::Abort { csid } => {
                out.put_u32(csid);
                msg_type::ABORT
            }
            ControlMessage::Acknowledgement { sequence_number } => {
                out.put_u32(sequence_number);
                msg_type::ACKNOWLEDGEMENT
            }
            ControlMessage::WindowAckSize(size) => {
                out.put_u32(size);
                msg_type::WINDOW_ACK_SIZE
            }
            ControlMessage::SetPeerBandwidth { size, limit_type } => {
                out.put_u32(size);
                out.put_u8(limit_type);
                msg_type::SET_PEER_BANDWIDTH
            }
            ControlMessage::UserControl(event) => {
                event.encode_into(&mut out);
                msg_type::USER_CONTROL
            }
        };
        (type_id, out.freeze())
    }
}

impl UserControlEvent {
    /// Parse a User Control message payload (2-byte event type, then event data).
    pub fn decode(payload: &[u8]) -> Result<Self, ControlError> {
        let t = msg_type::USER_CONTROL;
        let event_type = match payload.get(..2) {
            Some(b) => u16::from_be_bytes([b[0], b[1]]),
            None => return Err(ControlError::Short { type_id: t, len: payload.len(), need: 2 }),
        };
        let arg = |at, need| be_u32(t, payload, at, need);
        Ok(match event_type {
            event_type::STREAM_BEGIN => UserControlEvent::StreamBegin(arg(2, 6)?),
            event_type::STREAM_EOF => UserControlEvent::StreamEof(arg(2, 6)?),
            event_type::STREAM_DRY => UserControlEvent::StreamDry(arg(2, 6)?),
            event_type::SET_BUFFER_LENGTH => {
                UserControlEvent::SetBufferLength { stream_id: arg(2, 10)?, buffer_ms: arg(6, 10)? }
            }
            event_type::STREAM_IS_RECORDED => UserControlEvent::StreamIsRecorded(arg(2, 6)?),
            event_type::PING_REQUEST => UserControlEvent::PingRequest(arg(2, 6)?),
            event_type::PING_RESPONSE => UserControlEvent::PingResponse(arg(2, 6)?),
            other => UserControlEvent::Other { event_type: other },
        })
    }

    /// Append the User Control payload. `Other` is written as its bare event type.
    fn encode_into(&self, out: &mut BytesMut) {
        let (event, a, b) = match *self {
            UserControlEvent::StreamBegin(id) => (event_type::STREAM_BEGIN, Some(id), None),
            UserControlEvent::StreamEof(id) => (event_type::STREAM_EOF, Some(id), None),
            UserControlEvent::StreamDry(id) => (event_type::STREAM_DRY, Some(id), None),
            UserControlEvent::SetBufferLength { stream_id, buffer_ms } => {
                (event_type::SET_BUFFER_LENGTH, Some(stream_id), Some(buffer_ms))
            }
            UserControlEvent::StreamIsRecorded(id) => {
                (event_type::STREAM_IS_RECORDED, Some(id), None)
            }
            UserControlEvent::PingRequest(ts) => (event_type::PING_REQUEST, Some(ts), None),
            UserControlEvent::PingResponse(ts) => (event_type::PING_RESPONSE, Some(ts), None),
            UserControlEvent::Other { event_type } => (event_type, None, None),
        };
        out.put_u16(event);
        for v in [a, b].into_iter().flatten() {
            out.put_u32(v);
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn rt(m: ControlMessage, type_id: u8, wire: &[u8]) {
        let (t, bytes) = m.encode();
        assert_eq!(t, type_id);
        assert_eq!(&bytes[..], wire);
        assert_eq!(ControlMessage::decode(t, &bytes), Ok(m));
    }

    #[test]
    fn protocol_control_round_trips() {
        rt(ControlMessage::SetChunkSize(4096), 1, &[0, 0, 0x10, 0]);
        rt(ControlMessage::Abort { csid: 7 }, 2, &[0, 0, 0, 7]);
        rt(ControlMessage::Acknowledgement { sequence_number: 0x0102_0304 }, 3, &[1, 2, 3, 4]);
        rt(ControlMessage::WindowAckSize(2_500_000), 5, &[0x00, 0x26, 0x25, 0xA0]);
        rt(
            ControlMessage::SetPeerBandwidth { size: 2_500_000, limit_type: 2 },
            6,
            &[0x00, 0x26, 0x25, 0xA0, 2],
        );
    }

    #[test]
    fn set_chunk_size_raw_value() {
        assert_eq!(
            ControlMessage::decode(1, &[0x80, 0, 0, 0]),
            Ok(ControlMessage::SetChunkSize(0x8000_0000))
        );
    }

    #[test]
    fn user_control_round_trips() {
        use UserControlEvent::*;
        let uc = |e| ControlMessage::UserControl(e);
        rt(uc(StreamBegin(1)), 4, &[0, 0, 0, 0, 0, 1]);
        rt(uc(StreamEof(1)), 4, &[0, 1, 0, 0, 0, 1]);
        rt(uc(StreamDry(1)), 4, &[0, 2, 0, 0, 0, 1]);
        rt(
            uc(SetBufferLength { stream_id: 1, buffer_ms: 3000 }),
            4,
            &[0, 3, 0, 0, 0, 1, 0, 0, 0x0B, 0xB8],
        );
        rt(uc(StreamIsRecorded(1)), 4, &[0, 4, 0, 0, 0, 1]);
        rt(uc(PingRequest(99)), 4, &[0, 6, 0, 0, 0, 99]);
        rt(uc(PingResponse(99)), 4, &[0, 7, 0, 0, 0, 99]);
        rt(uc(Other { event_type: 26 }), 4, &[0, 26]);
        // SWF verification request carries data we ignore.
        assert_eq!(ControlMessage::decode(4, &[0, 26, 1, 2, 3]), Ok(uc(Other { event_type: 26 })));
    }

    #[test]
    fn short_payloads_are_errors() {
        let short = |type_id, len, need| Err(ControlError::Short { type_id, len, need });
        assert_eq!(ControlMessage::decode(1, &[0, 0, 1]), short(1, 3, 4));
        assert_eq!(ControlMessage::decode(2, &[]), short(2, 0, 4));
        assert_eq!(ControlMessage::decode(3, &[1]), short(3, 1, 4));
        assert_eq!(ControlMessage::decode(5, &[1, 2]), short(5, 2, 4));
        assert_eq!(ControlMessage::decode(6, &[0, 0, 0, 1]), short(6, 4, 5));
        assert_eq!(ControlMessage::decode(4, &[0]), short(4, 1, 2));
        assert_eq!(ControlMessage::decode(4, &[0, 0, 0]), short(4, 3, 6));
        assert_eq!(ControlMessage::decode(4, &[0, 3, 0, 0, 0, 1, 0, 0, 0]), short(4, 9, 10));
        assert_eq!(ControlMessage::decode(4, &[0, 6]), short(4, 2, 6));
        assert_eq!(ControlMessage::decode(8, &[]), Err(ControlError::NotControl(8)));
        for len in 0..12 {
            for t in 0..=22u8 {
                let _ = ControlMessage::decode(t, &vec![0xFF; len]);
            }
        }
    }
}
