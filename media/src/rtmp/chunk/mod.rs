//! The RTMP chunk stream: splitting messages into chunks and reassembling them.
//!
//! Decoding is incremental and bounded: a peer may announce any chunk size from 1 to
//! 0x7FFF_FFFF, but partially received messages never hold more than
//! [`ChunkLimits::max_reassembly_bytes`] in total, and no message may exceed
//! [`ChunkLimits::max_message_size`].

mod decoder;
mod encoder;
mod header;
#[cfg(test)]
mod tests;

pub use decoder::ChunkDecoder;
pub use encoder::{encode_type0, ChunkEncoder};
pub use header::{MAX_CSID, MAX_MESSAGE_LENGTH, MIN_CSID};

use bytes::Bytes;

/// The chunk size every RTMP connection starts with.
pub const DEFAULT_CHUNK_SIZE: u32 = 128;
/// Largest chunk size the protocol allows (31 bits).
pub const MAX_CHUNK_SIZE: u32 = 0x7FFF_FFFF;

/// One reassembled RTMP message.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct RawMessage {
    /// Chunk stream id it arrived on (2..=65599).
    pub csid: u32,
    /// Absolute timestamp in milliseconds (deltas already applied; wraps at 2^32).
    pub timestamp: u32,
    pub type_id: u8,
    pub stream_id: u32,
    pub payload: Bytes,
}

/// Bounds on what a peer can make the decoder hold.
#[derive(Debug, Clone, Copy)]
pub struct ChunkLimits {
    /// Largest message accepted (the length field allows up to 16 MiB - 1).
    pub max_message_size: usize,
    /// Total bytes held across all partially reassembled messages.
    pub max_reassembly_bytes: usize,
    /// Number of distinct chunk stream ids a peer may use at once.
    pub max_chunk_streams: usize,
}

impl Default for ChunkLimits {
    fn default() -> Self {
        ChunkLimits {
            max_message_size: 8 * 1024 * 1024,
            max_reassembly_bytes: 16 * 1024 * 1024,
            max_chunk_streams: 64,
        }
    }
}

#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum ChunkError {
    #[error("chunk size {0} is not allowed (must be 1..=0x7FFFFFFF)")]
    InvalidChunkSize(u32),
    #[error("message of {size} bytes exceeds the limit of {limit}")]
    MessageTooLarge { size: usize, limit: usize },
    #[error("partially received messages would hold {size} bytes, limit is {limit}")]
    ReassemblyLimit { size: usize, limit: usize },
    #[error("more than {0} chunk streams in use")]
    TooManyChunkStreams(usize),
    #[error("chunk of type {fmt} on chunk stream {csid} with no previous header")]
    NoPreviousHeader { csid: u32, fmt: u8 },
    #[error("message header changed in the middle of a message on chunk stream {0}")]
    HeaderChangedMidMessage(u32),
}
