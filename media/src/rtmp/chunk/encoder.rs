//! Chunk stream encoder.

use bytes::{BufMut, BytesMut};

use super::header::{put_basic_header, put_u24, EXTENDED_TIMESTAMP, MAX_MESSAGE_LENGTH};
use super::{ChunkError, DEFAULT_CHUNK_SIZE, MAX_CHUNK_SIZE};

/// The header last sent on one chunk stream, which the next header is compressed against.
#[derive(Debug, Clone, Copy)]
struct PrevHeader {
    timestamp: u32,
    /// The timestamp field last sent: the absolute timestamp after a type-0 header, the delta
    /// after types 1 and 2. A type-3 header starting a new message repeats it.
    delta: u32,
    length: u32,
    type_id: u8,
    stream_id: u32,
}

/// Encodes messages for one connection, compressing headers (types 1, 2, 3) against the
/// previous message on the same chunk stream.
///
/// Header choice: type 0 for the first message on a chunk stream, when the message stream id
/// changes or when the timestamp goes backwards; type 1 when the length or type id changes;
/// type 2 when only the timestamp delta changes; type 3 when everything matches.
///
/// # Panics
/// `encode` panics if `csid` is outside 2..=65599 or the payload is longer than 16 MiB - 1:
/// both are programming errors (neither comes from a peer).
#[derive(Debug)]
pub struct ChunkEncoder {
    chunk_size: u32,
    /// Per chunk stream in use: our own few (control, commands, audio, video), so a scan of a
    /// small vector, grown one at a time, instead of a hash table in every connection.
    prev: Vec<(u32, PrevHeader)>,
}

impl ChunkEncoder {
    /// A new encoder with the default chunk size (128).
    pub fn new() -> Self {
        ChunkEncoder { chunk_size: DEFAULT_CHUNK_SIZE, prev: Vec::new() }
    }

    /// Change the outgoing chunk size. The caller is responsible for sending Set Chunk Size to
    /// the peer before the next message.
    pub fn set_chunk_size(&mut self, size: u32) -> Result<(), ChunkError> {
        if size == 0 || size > MAX_CHUNK_SIZE {
            return Err(ChunkError::InvalidChunkSize(size));
        }
        self.chunk_size = size;
        Ok(())
    }

    pub fn chunk_size(&self) -> u32 {
        self.chunk_size
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
        let length = message_length(payload);
        let slot = self.prev.iter().position(|(id, _)| *id == csid);
        let (fmt, field) = match slot.map(|at| &self.prev[at].1) {
            Some(p) if p.stream_id == stream_id && timestamp >= p.timestamp => {
                let delta = timestamp - p.timestamp;
                if p.length != length || p.type_id != type_id {
                    (1, delta)
                } else if p.delta != delta {
                    (2, delta)
                } else {
                    (3, delta)
                }
            }
            _ => (0, timestamp),
        };
        let header = PrevHeader { timestamp, delta: field, length, type_id, stream_id };
        match slot {
            Some(at) => self.prev[at].1 = header,
            None => {
                self.prev.reserve_exact(1);
                self.prev.push((csid, header));
            }
        }
        let header = Header { fmt, csid, field, length, type_id, stream_id };
        write_message(&header, payload, self.chunk_size, out);
    }

    /// Forget the previous header of every chunk stream, so the next message on each starts
    /// with a type-0 header. Call after writing bytes produced by [`encode_type0`] on the
    /// same connection.
    pub fn reset_headers(&mut self) {
        self.prev.clear();
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
///
/// A `chunk_size` of 0 is treated as 1 and values above 0x7FFF_FFFF as 0x7FFF_FFFF. Panics as
/// [`ChunkEncoder::encode`] does.
pub fn encode_type0(
    csid: u32,
    timestamp: u32,
    type_id: u8,
    stream_id: u32,
    payload: &[u8],
    chunk_size: u32,
    out: &mut BytesMut,
) {
    let length = message_length(payload);
    let header = Header { fmt: 0, csid, field: timestamp, length, type_id, stream_id };
    write_message(&header, payload, chunk_size.clamp(1, MAX_CHUNK_SIZE), out);
}

fn message_length(payload: &[u8]) -> u32 {
    assert!(
        payload.len() <= MAX_MESSAGE_LENGTH,
        "RTMP message of {} bytes is too long",
        payload.len()
    );
    payload.len() as u32
}

/// The first chunk header of a message.
struct Header {
    fmt: u8,
    csid: u32,
    /// Timestamp field value: absolute for type 0, delta otherwise.
    field: u32,
    length: u32,
    type_id: u8,
    stream_id: u32,
}

/// Write the first chunk with `header`, then type-3 continuation chunks, each repeating the
/// extended timestamp when the first header used one.
fn write_message(header: &Header, payload: &[u8], chunk_size: u32, out: &mut BytesMut) {
    let chunk_size = usize::try_from(chunk_size).unwrap_or(usize::MAX).max(1);
    let extended = header.field >= EXTENDED_TIMESTAMP;
    let per_chunk_header = 3 + if extended { 4 } else { 0 };
    let chunks = payload.len().div_ceil(chunk_size).max(1);
    out.reserve(payload.len() + 11 + chunks * per_chunk_header);

    put_basic_header(header.fmt, header.csid, out);
    if header.fmt <= 2 {
        put_u24(header.field.min(EXTENDED_TIMESTAMP), out);
    }
    if header.fmt <= 1 {
        put_u24(header.length, out);
        out.put_u8(header.type_id);
    }
    if header.fmt == 0 {
        out.put_u32_le(header.stream_id);
    }
    if extended {
        out.put_u32(header.field);
    }
    let (first, rest) = payload.split_at(payload.len().min(chunk_size));
    out.put_slice(first);
    for chunk in rest.chunks(chunk_size) {
        put_basic_header(3, header.csid, out);
        if extended {
            out.put_u32(header.field);
        }
        out.put_slice(chunk);
    }
}
