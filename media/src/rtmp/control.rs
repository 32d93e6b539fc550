//! Protocol control messages (types 1, 2, 3, 5, 6) and User Control events (type 4).

use bytes::Bytes;

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum ControlMessage {
    SetChunkSize(u32),
    Abort { csid: u32 },
    Acknowledgement { sequence_number: u32 },
    WindowAckSize(u32),
    /// limit_type: 0 hard, 1 soft, 2 dynamic.
    SetPeerBandwidth { size: u32, limit_type: u8 },
    UserControl(UserControlEvent),
}

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum UserControlEvent {
    StreamBegin(u32),
    StreamEof(u32),
    StreamDry(u32),
    SetBufferLength { stream_id: u32, buffer_ms: u32 },
    StreamIsRecorded(u32),
    PingRequest(u32),
    PingResponse(u32),
    /// An event type Sluice does not act on (e.g. SWF verification); ignored, not an error.
    Other { event_type: u16 },
}

#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum ControlError {
    #[error("control message type {type_id} has {len} bytes, needs {need}")]
    Short { type_id: u8, len: usize, need: usize },
    #[error("message type {0} is not a protocol control message")]
    NotControl(u8),
}

impl ControlMessage {
    /// Parse a control message from its RTMP message type id and payload. For Set Chunk Size the
    /// value is returned as sent (top bit included); validating it is the chunk decoder's job.
    pub fn decode(type_id: u8, payload: &[u8]) -> Result<Self, ControlError> {
        todo!()
    }

    /// The RTMP message type id and payload for this message. Control messages travel on chunk
    /// stream 2, message stream 0.
    pub fn encode(&self) -> (u8, Bytes) {
        todo!()
    }
}
