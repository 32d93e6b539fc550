//! Chunk stream encoder.

use bytes::BytesMut;

use super::ChunkError;

/// Encodes messages for one connection, compressing headers (types 1, 2, 3) against the
/// previous message on the same chunk stream.
#[derive(Debug)]
pub struct ChunkEncoder {}

impl ChunkEncoder {
    /// A new encoder with the default chunk size (128).
    pub fn new() -> Self {
        todo!()
    }

    /// Change the outgoing chunk size. The caller is responsible for sending Set Chunk Size to
    /// the peer before the next message.
    pub fn set_chunk_size(&mut self, size: u32) -> Result<(), ChunkError> {
        todo!()
    }

    pub fn chunk_size(&self) -> u32 {
        todo!()
    }

    /// Append one message, chunked, to `out`.
    pub fn encode(
        &mut self,
        csid: u32,
        timestamp: u32,
        type_id: u8,
        stream_id: u32,
        payload: &[u8],
        out: &mut BytesMut,
    ) {
        todo!()
    }

    /// Forget the previous header of every chunk stream, so the next message on each starts
    /// with a type-0 header. Call after writing bytes produced by [`encode_type0`] on the
    /// same connection.
    pub fn reset_headers(&mut self) {
        todo!()
    }
}

impl Default for ChunkEncoder {
    fn default() -> Self {
        Self::new()
    }
}

/// Encode one message statelessly: a type-0 header and type-3 continuation chunks. The result
/// does not depend on any earlier message, so the same bytes can be sent to every viewer that
/// uses `chunk_size`.
pub fn encode_type0(
    csid: u32,
    timestamp: u32,
    type_id: u8,
    stream_id: u32,
    payload: &[u8],
    chunk_size: u32,
    out: &mut BytesMut,
) {
    todo!()
}
