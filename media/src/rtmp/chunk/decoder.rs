//! Incremental chunk stream decoder.

use super::{ChunkError, ChunkLimits, RawMessage};

/// Reassembles RTMP messages from a byte stream.
///
/// Feed bytes with [`ChunkDecoder::push`], then call [`ChunkDecoder::next_message`] until it
/// returns `Ok(None)` ("need more bytes"). The caller must apply a Set Chunk Size message (via
/// [`ChunkDecoder::set_chunk_size`]) before asking for the next message, since it changes how
/// the following bytes are read.
#[derive(Debug)]
pub struct ChunkDecoder {
    limits: ChunkLimits,
}

impl ChunkDecoder {
    pub fn new(limits: ChunkLimits) -> Self {
        todo!()
    }

    /// Apply the peer's Set Chunk Size. 0 or a value with the top bit set is an error.
    pub fn set_chunk_size(&mut self, size: u32) -> Result<(), ChunkError> {
        todo!()
    }

    pub fn chunk_size(&self) -> u32 {
        todo!()
    }

    /// Discard the partial message on `csid` (the Abort message).
    pub fn abort(&mut self, csid: u32) {
        todo!()
    }

    /// Append received bytes. The decoder consumes them incrementally; it never needs more
    /// than one chunk header plus the configured limits in memory.
    pub fn push(&mut self, data: &[u8]) {
        todo!()
    }

    /// The next complete message, `Ok(None)` if more bytes are needed.
    pub fn next_message(&mut self) -> Result<Option<RawMessage>, ChunkError> {
        todo!()
    }

    /// Bytes received and consumed so far (for Acknowledgement).
    pub fn bytes_received(&self) -> u64 {
        todo!()
    }
}
