//! The unit of media the hub moves around: one RTMP/FLV message (audio, video or script data).

use bytes::Bytes;

/// What kind of FLV/RTMP message a [`MediaMessage`] carries.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub enum MediaKind {
    /// RTMP message type 8 / FLV tag type 8.
    Audio,
    /// RTMP message type 9 / FLV tag type 9.
    Video,
    /// RTMP message type 18 (AMF0 data) / FLV tag type 18: `onMetaData` and friends.
    Data,
}

impl MediaKind {
    /// The RTMP message type id and FLV tag type (they are the same numbers).
    pub fn type_id(self) -> u8 {
        match self {
            MediaKind::Audio => 8,
            MediaKind::Video => 9,
            MediaKind::Data => 18,
        }
    }

    /// The kind for an RTMP message type id, if it carries media.
    pub fn from_type_id(type_id: u8) -> Option<Self> {
        match type_id {
            8 => Some(MediaKind::Audio),
            9 => Some(MediaKind::Video),
            18 => Some(MediaKind::Data),
            _ => None,
        }
    }
}

/// One media message, exactly as the publisher sent its payload (an FLV tag body).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct MediaMessage {
    pub kind: MediaKind,
    /// Milliseconds, 32-bit RTMP timestamp (wraps).
    pub timestamp: u32,
    pub payload: Bytes,
}
