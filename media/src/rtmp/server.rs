//! The server side of one RTMP connection as a sans-IO state machine.
//!
//! Contract (in the manner of quinn-proto's `Connection`): the driver passes every received
//! byte to [`ServerSession::receive`], then drains [`ServerSession::poll_event`] and
//! [`ServerSession::poll_transmit`], acting on events by calling the `accept_*`/`reject_*`
//! methods (which queue more output). The session never does I/O and never panics on input;
//! an `Err` from `receive` means the connection must be closed (the error says why).
//!
//! Media sent *to* a player is not written through the session: the hub serialises each message
//! once with [`crate::rtmp::chunk::encode_type0`] using [`MEDIA_CHUNK_SIZE`] on the csids in
//! [`crate::rtmp::csid`] and message stream id [`MEDIA_STREAM_ID`], and the driver writes those
//! shared bytes between the session's own outputs. This works because the session announces
//! [`MEDIA_CHUNK_SIZE`] right after `connect` and never uses the media csids itself.

use bytes::Bytes;

use crate::amf0::Amf0Limits;
use crate::frame::MediaMessage;
use crate::rtmp::chunk::{ChunkError, ChunkLimits};
use crate::rtmp::command::CommandError;
use crate::rtmp::handshake::HandshakeError;

/// The outgoing chunk size every Sluice server connection uses (announced after `connect`).
pub const MEDIA_CHUNK_SIZE: u32 = 4096;
/// The message stream id `createStream` returns first; shared media bytes use it.
pub const MEDIA_STREAM_ID: u32 = 1;

#[derive(Debug, Clone)]
pub struct ServerConfig {
    pub chunk_limits: ChunkLimits,
    pub amf0_limits: Amf0Limits,
    /// Window Acknowledgement Size announced to the peer and used for our acknowledgements.
    pub window_ack_size: u32,
    /// Most message streams (createStream) one connection may create.
    pub max_streams_per_connection: u32,
}

impl Default for ServerConfig {
    fn default() -> Self {
        ServerConfig {
            chunk_limits: ChunkLimits::default(),
            amf0_limits: Amf0Limits::default(),
            window_ack_size: 2_500_000,
            max_streams_per_connection: 8,
        }
    }
}

#[derive(Debug, Clone, PartialEq)]
pub enum ServerEvent {
    /// Handshake complete (plain or digest).
    HandshakeDone { digest: bool },
    /// `connect`: answer with [`ServerSession::accept_connect`] or [`ServerSession::reject_connect`].
    Connect { app: String, tc_url: Option<String> },
    /// `publish`: answer with `accept_publish` or `reject_publish`. `name` is raw (may hold `?query`).
    Publish { stream_id: u32, name: String, publish_type: String },
    /// `play`: answer with `accept_play`, `play_not_found` or later `accept_play` after waiting.
    Play { stream_id: u32, name: String, start: f64, duration: f64, reset: bool },
    /// Audio, video or data from a publishing stream.
    Media { stream_id: u32, message: MediaMessage },
    /// The publisher stopped (`FCUnpublish`, `closeStream` or `deleteStream` of a publishing stream).
    Unpublish { stream_id: u32 },
    /// A player stopped (`closeStream`/`deleteStream` of a playing stream).
    StopPlay { stream_id: u32 },
    /// Peer's SetBufferLength (players announce their buffer).
    BufferLength { stream_id: u32, buffer_ms: u32 },
}

#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum ServerError {
    #[error("handshake: {0}")]
    Handshake(#[from] HandshakeError),
    #[error("chunk stream: {0}")]
    Chunk(#[from] ChunkError),
    #[error("command: {0}")]
    Command(#[from] CommandError),
    #[error("protocol: {0}")]
    Protocol(String),
}

impl ServerError {
    /// A short, fixed label for metrics (`handshake`, `chunk`, `amf`, `protocol`).
    pub fn kind(&self) -> &'static str {
        match self {
            ServerError::Handshake(_) => "handshake",
            ServerError::Chunk(_) => "chunk",
            ServerError::Command(_) => "amf",
            ServerError::Protocol(_) => "protocol",
        }
    }
}

/// One RTMP server connection.
#[derive(Debug)]
pub struct ServerSession {}

impl ServerSession {
    /// `seed` supplies handshake randomness, `epoch` the handshake time field.
    pub fn new(config: ServerConfig, seed: [u8; 32], epoch: u32) -> Self {
        todo!()
    }

    /// Process received bytes: handshake, chunks, control messages (answered internally:
    /// acknowledgements, ping responses, chunk size), commands (turned into events).
    pub fn receive(&mut self, data: &[u8]) -> Result<(), ServerError> {
        todo!()
    }

    pub fn poll_event(&mut self) -> Option<ServerEvent> {
        todo!()
    }

    /// Bytes to send, in order. Returns everything queued so far as one buffer.
    pub fn poll_transmit(&mut self) -> Option<Bytes> {
        todo!()
    }

    /// Whether the handshake is complete.
    pub fn is_established(&self) -> bool {
        todo!()
    }

    /// Answer `connect` with Window Ack Size, Set Peer Bandwidth, Set Chunk Size
    /// ([`MEDIA_CHUNK_SIZE`]) and `_result` NetConnection.Connect.Success.
    pub fn accept_connect(&mut self) {
        todo!()
    }

    /// Answer `connect` with `_error` NetConnection.Connect.Rejected and `description`.
    pub fn reject_connect(&mut self, description: &str) {
        todo!()
    }

    /// StreamBegin + onStatus NetStream.Publish.Start.
    pub fn accept_publish(&mut self, stream_id: u32, name: &str) {
        todo!()
    }

    /// onStatus error with `code` (e.g. `NetStream.Publish.BadName`) and `description`.
    pub fn reject_publish(&mut self, stream_id: u32, code: &str, description: &str) {
        todo!()
    }

    /// StreamBegin, NetStream.Play.Reset (if `reset`), NetStream.Play.Start,
    /// `|RtmpSampleAccess`, NetStream.Data.Start. After this the driver may write shared media
    /// bytes for `stream_id`.
    pub fn accept_play(&mut self, stream_id: u32, name: &str, reset: bool) {
        todo!()
    }

    /// onStatus error NetStream.Play.StreamNotFound.
    pub fn play_not_found(&mut self, stream_id: u32, name: &str) {
        todo!()
    }

    /// onStatus NetStream.Play.UnpublishNotify + StreamEOF: the publisher left.
    pub fn unpublish_notify(&mut self, stream_id: u32, name: &str) {
        todo!()
    }

    /// StreamBegin + onStatus NetStream.Play.PublishNotify: the publisher is back.
    pub fn publish_notify(&mut self, stream_id: u32, name: &str) {
        todo!()
    }

    /// Queue a media message for a player through the session's own encoder (slow path, for a
    /// player whose stream id is not [`MEDIA_STREAM_ID`]).
    pub fn send_media(&mut self, stream_id: u32, message: &MediaMessage) {
        todo!()
    }

    /// Total bytes received (handshake included).
    pub fn bytes_received(&self) -> u64 {
        todo!()
    }
}
