//! Incremental chunk stream decoder.
//!
//! Memory is bounded by the limits, never by what a peer claims: a chunk's payload is copied
//! into the message being reassembled as its bytes arrive (the decoder never waits for a whole
//! chunk), reassembly buffers grow with the bytes received rather than being sized by the
//! announced message length, and the announced lengths of all partially received messages
//! together may not exceed [`ChunkLimits::max_reassembly_bytes`]. A message that fits in one
//! chunk whose bytes are already buffered is handed out without a copy.
//!
//! Timestamps follow RTMP 1.0 section 5.3.1.2 as librtmp and FFmpeg read them: types 1 and 2
//! carry a delta added (wrapping) to the previous message's timestamp; a type-3 header that
//! starts a new message reuses the previous delta (after a type-0 header, that is the type-0
//! timestamp). When a chunk stream's last timestamp field was 0xFFFFFF, its type-3 headers
//! carry the 4-byte extended timestamp too; a type-3 header starting a new message takes its
//! delta from those bytes. On continuation chunks some old encoders omit the 4 bytes, so they
//! are consumed only when they equal the message's extended timestamp.
//!
//! A chunk stream's first header must be type 0, except that type 1 is accepted (librtmp
//! starts its ping chunk stream that way; the stream id is then 0). A header other than type 3
//! while a message is partially received is an error.
//!
//! Any error is fatal for the connection: the decoder's state is undefined afterwards.

use bytes::{Bytes, BytesMut};

use super::header::{parse_basic_header, u24, EXTENDED_TIMESTAMP, MESSAGE_HEADER_LEN};
use super::{ChunkError, ChunkLimits, RawMessage, DEFAULT_CHUNK_SIZE, MAX_CHUNK_SIZE};

/// Initial capacity of a reassembly buffer; it grows (at most to the message length) as
/// bytes arrive.
const INITIAL_REASSEMBLY_CAPACITY: usize = 64 * 1024;

/// The fields of the header that started a message.
#[derive(Debug, Clone, Copy, Default)]
struct MessageHeader {
    timestamp: u32,
    length: u32,
    type_id: u8,
    stream_id: u32,
}

/// A message whose chunks are still arriving.
#[derive(Debug)]
struct Partial {
    header: MessageHeader,
    data: Vec<u8>,
}

/// Per chunk stream state: the last header (for compressed headers) and the partial message.
#[derive(Debug, Default)]
struct StreamState {
    last: MessageHeader,
    /// Delta a type-3 header starting a new message adds.
    delta: u32,
    /// The last type 0/1/2 timestamp field was 0xFFFFFF: type-3 headers carry 4 more bytes.
    extended: bool,
    /// The extended timestamp value of the current message's first header.
    extended_value: u32,
    partial: Option<Partial>,
}

/// The state of each chunk stream in use, in a small vector: peers use a handful of chunk
/// streams (at most [`ChunkLimits::max_chunk_streams`]), so a scan is as fast as hashing and
/// an idle player keeps a few dozen bytes instead of a hash table.
#[derive(Debug, Default)]
struct ChunkStreams(Vec<(u32, StreamState)>);

impl ChunkStreams {
    fn get(&self, csid: &u32) -> Option<&StreamState> {
        self.0.iter().find(|(id, _)| id == csid).map(|(_, s)| s)
    }

    fn get_mut(&mut self, csid: &u32) -> Option<&mut StreamState> {
        self.0.iter_mut().find(|(id, _)| id == csid).map(|(_, s)| s)
    }

    fn len(&self) -> usize {
        self.0.len()
    }

    fn values(&self) -> impl Iterator<Item = &StreamState> {
        self.0.iter().map(|(_, s)| s)
    }

    fn entry_or_default(&mut self, csid: u32) -> &mut StreamState {
        let at = match self.0.iter().position(|(id, _)| *id == csid) {
            Some(at) => at,
            None => {
                // Exactly one more: a player uses two or three chunk streams for the whole
                // connection, and amortized growth would keep room for four.
                self.0.reserve_exact(1);
                self.0.push((csid, StreamState::default()));
                self.0.len() - 1
            }
        };
        &mut self.0[at].1
    }
}

/// The chunk whose payload is being consumed.
#[derive(Debug, Clone, Copy)]
struct CurrentChunk {
    csid: u32,
    remaining: usize,
}

/// What reading one chunk header produced.
enum Step {
    NeedMore,
    Message(RawMessage),
    ChunkStarted,
}

/// Reassembles RTMP messages from a byte stream.
///
/// Feed bytes with [`ChunkDecoder::push`], then call [`ChunkDecoder::next_message`] until it
/// returns `Ok(None)` ("need more bytes"). The caller must apply a Set Chunk Size message (via
/// [`ChunkDecoder::set_chunk_size`]) before asking for the next message, since it changes how
/// the following bytes are read.
#[derive(Debug)]
pub struct ChunkDecoder {
    limits: ChunkLimits,
    chunk_size: u32,
    buf: BytesMut,
    streams: ChunkStreams,
    current: Option<CurrentChunk>,
    /// Sum of the announced lengths of all partial messages.
    reserved: usize,
    bytes_received: u64,
    /// Size of the allocation behind `buf` when it was last (re)allocated: a zero-copy
    /// payload keeps that whole allocation alive, so only large payloads are handed out
    /// without copying (see [`ChunkDecoder::share_or_copy`]).
    buf_allocation: usize,
}

impl ChunkDecoder {
    pub fn new(limits: ChunkLimits) -> Self {
        ChunkDecoder {
            limits,
            chunk_size: DEFAULT_CHUNK_SIZE,
            buf: BytesMut::new(),
            streams: ChunkStreams::default(),
            current: None,
            reserved: 0,
            bytes_received: 0,
            buf_allocation: 0,
        }
    }

    /// Apply the peer's Set Chunk Size. 0 or a value with the top bit set is an error.
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

    /// Discard the partial message on `csid` (the Abort message). The rest of a chunk of that
    /// message already being read is skipped.
    pub fn abort(&mut self, csid: u32) {
        if let Some(partial) = self.streams.get_mut(&csid).and_then(|s| s.partial.take()) {
            self.reserved = self.reserved.saturating_sub(partial.header.length as usize);
        }
    }

    /// Append received bytes. The decoder consumes them incrementally; it never needs more
    /// than one chunk header plus the configured limits in memory.
    pub fn push(&mut self, data: &[u8]) {
        let grows = self.buf.capacity() - self.buf.len() < data.len();
        self.buf.extend_from_slice(data);
        if grows {
            self.buf_allocation = self.buf.capacity();
        }
    }

    /// The next complete message, `Ok(None)` if more bytes are needed.
    pub fn next_message(&mut self) -> Result<Option<RawMessage>, ChunkError> {
        loop {
            if self.current.is_some() {
                if let Some(message) = self.consume_payload() {
                    return Ok(Some(message));
                }
                if self.current.is_some() {
                    return Ok(None);
                }
                continue;
            }
            match self.read_header()? {
                Step::NeedMore => {
                    if self.buf.is_empty() && self.buf.capacity() > 0 {
                        // Nothing buffered: give the allocation back (an idle player would
                        // otherwise keep its largest read's worth for the connection's life).
                        self.buf = BytesMut::new();
                        self.buf_allocation = 0;
                    }
                    return Ok(None);
                }
                Step::Message(message) => return Ok(Some(message)),
                Step::ChunkStarted => {}
            }
        }
    }

    /// Bytes received and consumed so far (for Acknowledgement).
    pub fn bytes_received(&self) -> u64 {
        self.bytes_received
    }

    /// Bytes pushed but not yet consumed.
    pub fn buffered(&self) -> usize {
        self.buf.len()
    }

    /// Bytes currently held in reassembly buffers of partial messages.
    pub fn reassembly_bytes(&self) -> usize {
        self.streams.values().filter_map(|s| s.partial.as_ref()).map(|p| p.data.len()).sum()
    }

    fn consume(&mut self, n: usize) -> BytesMut {
        self.bytes_received = self.bytes_received.wrapping_add(n as u64);
        self.buf.split_to(n)
    }

    /// Move buffered bytes of the current chunk into its message; the message if it completed.
    fn consume_payload(&mut self) -> Option<RawMessage> {
        let mut current = self.current?;
        let take = current.remaining.min(self.buf.len());
        if take == 0 {
            return None;
        }
        let bytes = self.consume(take);
        current.remaining -= take;
        self.current = (current.remaining > 0).then_some(current);
        // An aborted message has no partial any more: its bytes are dropped.
        let stream = self.streams.get_mut(&current.csid)?;
        let partial = stream.partial.as_mut()?;
        let total = partial.header.length as usize;
        append_bounded(&mut partial.data, &bytes, total);
        if partial.data.len() < total {
            return None;
        }
        let Partial { header, data } = stream.partial.take()?;
        self.reserved = self.reserved.saturating_sub(total);
        Some(message(current.csid, header, Bytes::from(data)))
    }

    /// Read one chunk header if it is complete, updating the chunk stream's state.
    fn read_header(&mut self) -> Result<Step, ChunkError> {
        let Some((fmt, csid, basic_len)) = parse_basic_header(&self.buf) else {
            return Ok(Step::NeedMore);
        };
        let header_len = basic_len + MESSAGE_HEADER_LEN[usize::from(fmt)];
        let Some(fields) = self.buf.get(basic_len..header_len) else {
            return Ok(Step::NeedMore);
        };
        let fresh = StreamState::default();
        let stream = match self.streams.get(&csid) {
            Some(stream) => stream,
            None => {
                // A fresh chunk stream must start with type 0; librtmp starts some with
                // type 1 (e.g. its pings), which is complete enough to accept.
                if fmt > 1 {
                    return Err(ChunkError::NoPreviousHeader { csid, fmt });
                }
                if self.streams.len() >= self.limits.max_chunk_streams {
                    return Err(ChunkError::TooManyChunkStreams(self.limits.max_chunk_streams));
                }
                &fresh
            }
        };
        let continuation = stream.partial.is_some();
        if continuation && fmt != 3 {
            return Err(ChunkError::HeaderChangedMidMessage(csid));
        }

        // The timestamp field (absolute for type 0, delta for 1 and 2), if any.
        let field = (fmt <= 2).then(|| u24(fields));
        let has_extended = match field {
            Some(f) => f == EXTENDED_TIMESTAMP,
            None => stream.extended,
        };
        let mut extended = None;
        let mut total_len = header_len;
        if has_extended {
            let Some(b) = self.buf.get(header_len..header_len + 4) else {
                return Ok(Step::NeedMore);
            };
            let value = u32::from_be_bytes([b[0], b[1], b[2], b[3]]);
            if !continuation || value == stream.extended_value {
                extended = Some(value);
                total_len += 4;
            }
        }

        if continuation {
            let partial = stream
                .partial
                .as_ref()
                .map_or(0, |p| (p.header.length as usize).saturating_sub(p.data.len()));
            self.consume(total_len);
            self.current =
                Some(CurrentChunk { csid, remaining: partial.min(self.chunk_size_usize()) });
            return Ok(Step::ChunkStarted);
        }

        // A new message: work out its header from the fields and the previous header.
        let last = stream.last;
        let value = extended.or(field);
        let (timestamp, delta) = match fmt {
            0 => {
                let ts = value.unwrap_or_default();
                (ts, ts)
            }
            _ => {
                let delta = value.unwrap_or(stream.delta);
                (last.timestamp.wrapping_add(delta), delta)
            }
        };
        let header = if fmt <= 1 {
            MessageHeader {
                timestamp,
                length: u24(&fields[3..]),
                type_id: fields[6],
                stream_id: if fmt == 0 {
                    u32::from_le_bytes([fields[7], fields[8], fields[9], fields[10]])
                } else {
                    last.stream_id
                },
            }
        } else {
            MessageHeader { timestamp, ..last }
        };
        let length = header.length as usize;
        if length > self.limits.max_message_size {
            return Err(ChunkError::MessageTooLarge {
                size: length,
                limit: self.limits.max_message_size,
            });
        }
        let held = self.reserved.saturating_add(length);
        if held > self.limits.max_reassembly_bytes {
            return Err(ChunkError::ReassemblyLimit {
                size: held,
                limit: self.limits.max_reassembly_bytes,
            });
        }

        let chunk_size = self.chunk_size_usize();
        self.consume(total_len);
        let stream = self.streams.entry_or_default(csid);
        stream.last = header;
        stream.delta = delta;
        if field.is_some() {
            stream.extended = has_extended;
        }
        if let Some(v) = extended {
            stream.extended_value = v;
        }

        // Whole message in one chunk and already buffered: hand it out without copying.
        if length <= chunk_size && self.buf.len() >= length {
            let payload = self.share_or_copy(length);
            return Ok(Step::Message(message(csid, header, payload)));
        }
        let capacity = length.min(INITIAL_REASSEMBLY_CAPACITY);
        stream.partial = Some(Partial { header, data: Vec::with_capacity(capacity) });
        self.reserved = held;
        self.current = Some(CurrentChunk { csid, remaining: length.min(chunk_size) });
        Ok(Step::ChunkStarted)
    }

    /// The next `length` buffered bytes as a payload: shared with the read buffer when the
    /// payload is at least half of that buffer's allocation, else copied out. A retained small
    /// frame (an audio frame in a stream's buffer) must not pin a read buffer many times its
    /// size: the stream buffer accounts only the frame's own bytes.
    fn share_or_copy(&mut self, length: usize) -> Bytes {
        let shared = self.consume(length);
        if length.saturating_mul(2) >= self.buf_allocation {
            shared.freeze()
        } else {
            Bytes::copy_from_slice(&shared)
        }
    }

    fn chunk_size_usize(&self) -> usize {
        usize::try_from(self.chunk_size).unwrap_or(usize::MAX)
    }
}

fn message(csid: u32, header: MessageHeader, payload: Bytes) -> RawMessage {
    RawMessage {
        csid,
        timestamp: header.timestamp,
        type_id: header.type_id,
        stream_id: header.stream_id,
        payload,
    }
}

/// Append `bytes` to `data`, growing geometrically but never beyond `total` bytes of capacity.
fn append_bounded(data: &mut Vec<u8>, bytes: &[u8], total: usize) {
    let needed = data.len().saturating_add(bytes.len());
    if needed > data.capacity() {
        let target = needed.max(data.capacity().saturating_mul(2)).min(total).max(needed);
        data.reserve_exact(target - data.len());
    }
    data.extend_from_slice(bytes);
}

#[cfg(test)]
impl ChunkDecoder {
    pub(super) fn buf_ptr_for_test(&self) -> *const u8 {
        self.buf.as_ptr()
    }
}
