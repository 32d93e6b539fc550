//! Async glue between quinn streams and the sans-IO codecs: reading length-prefixed
//! control messages and GOP frames off a `RecvStream`, writing control messages.

use bytes::BytesMut;
use quinn::{ReadError, RecvStream, SendStream};
use sluice_proto::v1::ControlMessage;

use crate::codec::{self, CodecError, Frame, GopHeader};
use crate::codes;
use crate::error::{ProtocolViolation, RelayError};

/// Largest chunk taken from quinn in one read.
const READ_CHUNK: usize = 64 * 1024;

/// Reads control messages from the control stream.
pub(crate) struct ControlReader {
    stream: RecvStream,
    buf: BytesMut,
}

impl ControlReader {
    pub(crate) fn new(stream: RecvStream) -> Self {
        Self { stream, buf: BytesMut::new() }
    }

    /// The next message; `Ok(None)` when the peer finished the stream cleanly between
    /// messages. A truncated or malformed message is an error.
    pub(crate) async fn next(&mut self) -> Result<Option<ControlMessage>, RelayError> {
        loop {
            match codec::decode_control(&mut self.buf) {
                Ok(msg) => return Ok(Some(msg)),
                Err(CodecError::Short) => {}
                Err(e) => return Err(ProtocolViolation::from(e).into()),
            }
            match self.stream.read_chunk(READ_CHUNK, true).await? {
                Some(chunk) => self.buf.extend_from_slice(&chunk.bytes),
                None if self.buf.is_empty() => return Ok(None),
                None => return Err(ProtocolViolation::ControlTruncated.into()),
            }
        }
    }
}

/// Writes one control message.
pub(crate) async fn write_control(
    send: &mut SendStream,
    msg: &ControlMessage,
) -> Result<(), quinn::WriteError> {
    let mut out = BytesMut::new();
    codec::encode_control(msg, &mut out);
    send.write_chunk(out.freeze()).await
}

/// How a GOP stream ended.
#[derive(Debug, PartialEq, Eq)]
pub(crate) enum GopEnd {
    /// The sender finished it: every frame was received.
    Finished,
    /// The sender reset it (GOP cancelled, unsubscribed).
    Reset,
}

/// Reads the frames of one GOP stream.
pub(crate) struct GopReader {
    pub(crate) sequence: u64,
    stream: RecvStream,
    buf: BytesMut,
    max_frame_size: usize,
}

impl GopReader {
    /// Reads the GOP header of a freshly accepted stream.
    pub(crate) async fn open(
        mut stream: RecvStream,
        max_frame_size: usize,
    ) -> Result<(GopHeader, Self), RelayError> {
        let mut buf = BytesMut::new();
        let header = loop {
            match codec::decode_gop_header(&mut buf) {
                Ok(h) => break h,
                Err(CodecError::Short) => {}
                Err(e) => return Err(ProtocolViolation::from(e).into()),
            }
            match stream.read_chunk(codec::GOP_HEADER_LEN, true).await {
                Ok(Some(chunk)) => buf.extend_from_slice(&chunk.bytes),
                Ok(None) => return Err(ProtocolViolation::GopWithoutHeader.into()),
                Err(e) => return Err(e.into()),
            }
        };
        let reader = Self { sequence: header.gop_sequence, stream, buf, max_frame_size };
        Ok((header, reader))
    }

    /// The next frame, or how the stream ended.
    pub(crate) async fn next(&mut self) -> Result<Result<Frame, GopEnd>, RelayError> {
        loop {
            match codec::decode_frame(&mut self.buf, self.max_frame_size) {
                Ok(f) => return Ok(Ok(f)),
                Err(CodecError::Short) => {}
                Err(e) => return Err(ProtocolViolation::from(e).into()),
            }
            match self.stream.read_chunk(READ_CHUNK, true).await {
                Ok(Some(chunk)) => self.buf.extend_from_slice(&chunk.bytes),
                Ok(None) if self.buf.is_empty() => return Ok(Err(GopEnd::Finished)),
                Ok(None) => return Err(ProtocolViolation::GopTruncated.into()),
                Err(ReadError::Reset(_)) => return Ok(Err(GopEnd::Reset)),
                Err(e) => return Err(e.into()),
            }
        }
    }

    /// Tells the sender we no longer want this GOP.
    pub(crate) fn abandon(mut self) {
        let _ = self.stream.stop(codes::STREAM_UNWANTED.into());
    }
}
