//! The server side of one RTMP connection as a sans-IO state machine.
//!
//! Contract (in the manner of quinn-proto's `Connection`): the driver passes every received
//! byte to [`ServerSession::receive`], then drains [`ServerSession::poll_event`] and
//! [`ServerSession::poll_transmit`], acting on events by calling the `accept_*`/`reject_*`
//! methods (which queue more output). The session never does I/O and never panics on input;
//! an `Err` from `receive` (a [`SessionError`]) means the connection must be closed (the error
//! says why).
//!
//! Media sent *to* a player is not written through the session: the hub serialises each message
//! once with [`crate::rtmp::chunk::encode_type0`] using [`MEDIA_CHUNK_SIZE`] on the csids in
//! [`crate::rtmp::csid`] and message stream id [`MEDIA_STREAM_ID`], and the driver writes those
//! shared bytes between the session's own outputs. This works because the session announces
//! [`MEDIA_CHUNK_SIZE`] right after `connect` and never uses the media csids itself: its own
//! messages go on [`csid::CONTROL`] and [`csid::COMMAND`] only.
//!
//! Behaviour worth knowing when driving it:
//! - Only `connect` is accepted before `connect`; a second `connect`, or any command after
//!   `reject_connect`, is a protocol error. Commands arriving after `connect` but before
//!   `accept_connect` are processed normally.
//! - `createStream`, `releaseStream`, `FCPublish` (plus `onFCPublish`) and `getStreamLength`
//!   are answered automatically; `createStream` hands out the smallest free id from
//!   [`MEDIA_STREAM_ID`] up, at most `max_streams_per_connection` at once (else `_error`).
//! - `publish`/`play` on a message stream that was never created is a protocol error;
//!   `publish` on a stream already publishing or playing gets an error `onStatus`
//!   (NetStream.Publish.BadConnection) and no event; `play` on a playing stream emits
//!   `StopPlay` then the new `Play`.
//! - Media (audio, video, AMF0/AMF3 data, aggregates split into their parts) is emitted from
//!   the moment `publish` is received, so a publisher that does not wait for
//!   NetStream.Publish.Start loses nothing; media on any other stream is dropped and counted
//!   ([`ServerSession::ignored_media`]).
//! - Acknowledgements use the peer's Window Acknowledgement Size, or
//!   [`ServerConfig::window_ack_size`] until the peer announces one.

use std::collections::VecDeque;
use std::sync::Arc;

use bytes::{Bytes, BytesMut};

use crate::amf0::{Amf0Limits, Amf0Value};
use crate::frame::{MediaKind, MediaMessage};
use crate::rtmp::chunk::{encode_type0, ChunkDecoder, ChunkLimits};
use crate::rtmp::command;
use crate::rtmp::control::{ControlMessage, UserControlEvent};
use crate::rtmp::csid;
use crate::rtmp::handshake::ServerHandshake;
use crate::rtmp::SessionError;

pub(crate) mod aggregate;
mod inbound;
pub(crate) mod output;

pub(crate) use inbound::strip_amf3_prefix;
use output::{AckState, Output};

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
    /// Most bytes of output (replies, control messages) the session may hold between two
    /// [`ServerSession::poll_transmit`] calls while processing received bytes; beyond it
    /// `receive` fails with [`SessionError::OutputFull`]. Bounds what one `receive` can make
    /// the session allocate, e.g. a burst of `play` commands with huge names completed at once.
    pub max_output_bytes: usize,
}

impl Default for ServerConfig {
    fn default() -> Self {
        ServerConfig {
            chunk_limits: ChunkLimits::default(),
            amf0_limits: Amf0Limits::default(),
            window_ack_size: 2_500_000,
            max_streams_per_connection: 8,
            max_output_bytes: 8 << 20,
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

/// Where the connection is in its `connect` exchange.
#[derive(Debug, Clone, Copy, PartialEq)]
enum ConnectState {
    /// No `connect` yet: only `connect` is allowed.
    Awaiting,
    /// `connect` received, waiting for `accept_connect`/`reject_connect`.
    Pending {
        transaction_id: f64,
        object_encoding: f64,
    },
    Accepted,
    Rejected,
}

/// What a message stream created by `createStream` is doing.
#[derive(Debug, Clone, PartialEq)]
enum StreamState {
    Idle,
    /// `publish` received (pending or accepted): media on this stream is forwarded.
    Publishing {
        name: String,
    },
    /// `play` received (pending or accepted).
    Playing,
}

/// The handshake in progress, and the bytes received for it not yet consumed.
#[derive(Debug)]
struct Handshaking {
    handshake: ServerHandshake,
    input: BytesMut,
}

/// One RTMP server connection.
#[derive(Debug)]
pub struct ServerSession {
    /// Shared by every session of a server (it is the same for all).
    config: Arc<ServerConfig>,
    /// Until the handshake is done; then `None` (boxed: a long-lived connection does not keep
    /// room for it).
    handshake: Option<Box<Handshaking>>,
    decoder: ChunkDecoder,
    out: Output,
    events: VecDeque<ServerEvent>,
    connect: ConnectState,
    /// A few entries at most (`max_streams_per_connection`): a sorted vector, not a tree
    /// (a B-tree's first node alone is ~300 bytes in every connection).
    streams: litemap::LiteMap<u32, StreamState>,
    ack: AckState,
    bytes_received: u64,
    /// Set once `receive` failed: the connection is dead and stays so.
    failed: Option<SessionError>,
    /// Audio/video/data messages dropped because their stream was not publishing.
    ignored_media: u64,
}

impl ServerSession {
    /// `seed` supplies handshake randomness, `epoch` the handshake time field.
    pub fn new(config: impl Into<Arc<ServerConfig>>, seed: [u8; 32], epoch: u32) -> Self {
        let config = config.into();
        let decoder = ChunkDecoder::new(config.chunk_limits);
        let ack = AckState::new(Some(config.window_ack_size).filter(|&w| w > 0));
        ServerSession {
            config,
            handshake: Some(Box::new(Handshaking {
                handshake: ServerHandshake::new(seed, epoch),
                input: BytesMut::new(),
            })),
            decoder,
            out: Output::default(),
            events: VecDeque::new(),
            connect: ConnectState::Awaiting,
            streams: litemap::LiteMap::new(),
            ack,
            bytes_received: 0,
            failed: None,
            ignored_media: 0,
        }
    }

    /// Process received bytes: handshake, chunks, control messages (answered internally:
    /// acknowledgements, ping responses, chunk size), commands (turned into events).
    ///
    /// After an `Err` the session is dead: every later call returns the same error.
    pub fn receive(&mut self, data: &[u8]) -> Result<(), SessionError> {
        if let Some(err) = &self.failed {
            return Err(err.clone());
        }
        let result = self.receive_inner(data);
        if let Err(err) = &result {
            self.failed = Some(err.clone());
        }
        result
    }

    fn receive_inner(&mut self, data: &[u8]) -> Result<(), SessionError> {
        self.bytes_received = self.bytes_received.saturating_add(data.len() as u64);
        match &mut self.handshake {
            None => self.decoder.push(data),
            Some(h) => {
                h.input.extend_from_slice(data);
                if !h.handshake.receive(&mut h.input, &mut self.out.buf)? {
                    return Ok(());
                }
                let digest = h.handshake.used_digest();
                let rest = h.input.split();
                self.handshake = None;
                self.events.push_back(ServerEvent::HandshakeDone { digest });
                self.decoder.push(&rest);
            }
        }
        while let Some(message) = self.decoder.next_message()? {
            self.handle_message(message)?;
            let queued = self.out.buf.len();
            if queued > self.config.max_output_bytes {
                // Drop what was queued: the connection is closing, and the memory should go now.
                self.out.buf = BytesMut::new();
                return Err(SessionError::OutputFull {
                    queued,
                    limit: self.config.max_output_bytes,
                });
            }
        }
        if let Some(sequence_number) = self.ack.due(self.bytes_received) {
            self.out.control(ControlMessage::Acknowledgement { sequence_number });
        }
        Ok(())
    }

    pub fn poll_event(&mut self) -> Option<ServerEvent> {
        let event = self.events.pop_front();
        if event.is_none() && self.events.capacity() > 0 && !self.is_publishing() {
            // A player's events (handshake, connect, play) come at the start: their queue's
            // room is not kept for the rest of the connection. A publisher's media passes
            // through it message by message, so its queue stays.
            self.events = VecDeque::new();
        }
        event
    }

    fn is_publishing(&self) -> bool {
        self.streams.values().any(|s| matches!(s, StreamState::Publishing { .. }))
    }

    /// Bytes to send, in order. Returns everything queued so far as one buffer.
    pub fn poll_transmit(&mut self) -> Option<Bytes> {
        self.out.take()
    }

    /// Whether the handshake is complete.
    pub fn is_established(&self) -> bool {
        self.handshake.is_none()
    }

    /// Answer `connect` with Window Ack Size, Set Peer Bandwidth, Set Chunk Size
    /// ([`MEDIA_CHUNK_SIZE`]) and `_result` NetConnection.Connect.Success.
    ///
    /// Does nothing unless a `connect` is waiting for an answer.
    pub fn accept_connect(&mut self) {
        let ConnectState::Pending { transaction_id, object_encoding } = self.connect else {
            return;
        };
        self.connect = ConnectState::Accepted;
        let window = self.config.window_ack_size;
        self.out.control(ControlMessage::WindowAckSize(window));
        self.out.control(ControlMessage::SetPeerBandwidth { size: window, limit_type: 2 });
        self.out.control(ControlMessage::SetChunkSize(MEDIA_CHUNK_SIZE));
        // MEDIA_CHUNK_SIZE is a valid chunk size; the error arm cannot happen.
        let _ = self.out.encoder.set_chunk_size(MEDIA_CHUNK_SIZE);
        self.out.command(0, &command::connect_result(transaction_id, object_encoding));
    }

    /// Answer `connect` with `_error` NetConnection.Connect.Rejected and `description`.
    ///
    /// Does nothing unless a `connect` is waiting for an answer. Any later command from the
    /// peer is a protocol error.
    pub fn reject_connect(&mut self, description: &str) {
        let ConnectState::Pending { transaction_id, .. } = self.connect else {
            return;
        };
        self.connect = ConnectState::Rejected;
        self.out.command(0, &command::connect_error(transaction_id, description));
    }

    /// StreamBegin + onStatus NetStream.Publish.Start.
    pub fn accept_publish(&mut self, stream_id: u32, name: &str) {
        self.out.user_control(UserControlEvent::StreamBegin(stream_id));
        let description = format!("{name} is now published.");
        self.status(stream_id, "status", "NetStream.Publish.Start", &description, name);
    }

    /// onStatus error with `code` (e.g. `NetStream.Publish.BadName`) and `description`.
    ///
    /// The stream goes back to idle: media on it is ignored and it may `publish` again.
    pub fn reject_publish(&mut self, stream_id: u32, code: &str, description: &str) {
        if let Some(state @ StreamState::Publishing { .. }) = self.streams.get_mut(&stream_id) {
            *state = StreamState::Idle;
        }
        self.status(stream_id, "error", code, description, "");
    }

    /// StreamBegin, NetStream.Play.Reset (if `reset`), NetStream.Play.Start,
    /// `|RtmpSampleAccess`, as nginx-rtmp sends them. No `onStatus` data message
    /// (NetStream.Data.Start, which SRS sends): ffmpeg's FLV demuxer turns any data message it
    /// does not know into an extra, undecodable data stream. After this the driver may write
    /// shared media bytes for `stream_id`.
    pub fn accept_play(&mut self, stream_id: u32, name: &str, reset: bool) {
        self.out.user_control(UserControlEvent::StreamBegin(stream_id));
        if reset {
            let description = format!("Playing and resetting {name}.");
            self.status(stream_id, "status", "NetStream.Play.Reset", &description, name);
        }
        let description = format!("Started playing {name}.");
        self.status(stream_id, "status", "NetStream.Play.Start", &description, name);
        self.out.data(stream_id, &command::sample_access(true, true));
    }

    /// onStatus error NetStream.Play.StreamNotFound.
    ///
    /// The stream goes back to idle (the player may `play` again).
    pub fn play_not_found(&mut self, stream_id: u32, name: &str) {
        if let Some(state @ StreamState::Playing) = self.streams.get_mut(&stream_id) {
            *state = StreamState::Idle;
        }
        let description = format!("Failed to play {name}; stream not found.");
        self.status(stream_id, "error", "NetStream.Play.StreamNotFound", &description, name);
    }

    /// Refuse a play request for another reason than a missing stream (a limit): onStatus
    /// with `code` (e.g. `NetStream.Play.Failed`) and `description`.
    pub fn reject_play(&mut self, stream_id: u32, code: &str, description: &str, name: &str) {
        if let Some(state @ StreamState::Playing) = self.streams.get_mut(&stream_id) {
            *state = StreamState::Idle;
        }
        self.status(stream_id, "error", code, description, name);
    }

    /// onStatus NetStream.Play.UnpublishNotify + StreamEOF: the publisher left.
    pub fn unpublish_notify(&mut self, stream_id: u32, name: &str) {
        let description = format!("{name} is now unpublished.");
        self.status(stream_id, "status", "NetStream.Play.UnpublishNotify", &description, name);
        self.out.user_control(UserControlEvent::StreamEof(stream_id));
    }

    /// StreamBegin + onStatus NetStream.Play.PublishNotify: the publisher is back.
    pub fn publish_notify(&mut self, stream_id: u32, name: &str) {
        self.out.user_control(UserControlEvent::StreamBegin(stream_id));
        let description = format!("{name} is now published.");
        self.status(stream_id, "status", "NetStream.Play.PublishNotify", &description, name);
    }

    /// Queue a media message for a player through the session's own encoder (slow path, for a
    /// player whose stream id is not [`MEDIA_STREAM_ID`]).
    ///
    /// Written on the media csids ([`csid::AUDIO`], [`csid::VIDEO`], [`csid::DATA`]) always with
    /// a type-0 header (as [`encode_type0`] does) at the session's current outgoing chunk size:
    /// the driver may also write shared type-0 bytes on those csids, which the session's encoder
    /// never sees, so a compressed header could refer to the wrong previous message.
    pub fn send_media(&mut self, stream_id: u32, message: &MediaMessage) {
        let media_csid = match message.kind {
            MediaKind::Audio => csid::AUDIO,
            MediaKind::Video => csid::VIDEO,
            MediaKind::Data => csid::DATA,
        };
        encode_type0(
            media_csid,
            message.timestamp,
            message.kind.type_id(),
            stream_id,
            &message.payload,
            self.out.encoder.chunk_size(),
            &mut self.out.buf,
        );
    }

    /// Total bytes received (handshake included).
    pub fn bytes_received(&self) -> u64 {
        self.bytes_received
    }

    /// Audio/video/data messages ignored because their message stream was not publishing.
    pub fn ignored_media(&self) -> u64 {
        self.ignored_media
    }

    /// onStatus on `stream_id`, with `details` when `details` is not empty.
    fn status(
        &mut self,
        stream_id: u32,
        level: &str,
        code: &str,
        description: &str,
        details: &str,
    ) {
        let extra = [("details", Amf0Value::String(details.to_owned()))];
        let extra: &[(&str, Amf0Value)] = if details.is_empty() { &[] } else { &extra };
        self.out.command(stream_id, &command::on_status(level, code, description, extra));
    }
}
