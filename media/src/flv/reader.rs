//! Incremental FLV stream reader (for HTTP-FLV players: the load tool and tests).

use bytes::Bytes;

use crate::frame::MediaKind;

#[derive(Debug, Clone, PartialEq, Eq)]
pub struct FlvTag {
    pub kind: MediaKind,
    pub timestamp: u32,
    pub payload: Bytes,
}

#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum FlvError {
    #[error("not an FLV stream (bad signature)")]
    BadSignature,
    #[error("FLV tag type {0} is not audio, video or script data")]
    UnknownTagType(u8),
    #[error("FLV tag of {size} bytes exceeds the limit of {limit}")]
    TagTooLarge { size: usize, limit: usize },
    #[error("FLV tag is encrypted/filtered, which is not supported")]
    Filtered,
}

/// Feed bytes with [`FlvReader::push`], take tags with [`FlvReader::next_tag`] until `Ok(None)`.
#[derive(Debug)]
pub struct FlvReader {}

impl FlvReader {
    pub fn new(max_tag_size: usize) -> Self {
        todo!()
    }

    pub fn push(&mut self, data: &[u8]) {
        todo!()
    }

    pub fn next_tag(&mut self) -> Result<Option<FlvTag>, FlvError> {
        todo!()
    }
}
