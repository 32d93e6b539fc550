//! The client side of one RTMP connection (publisher or player) as a sans-IO state machine, used
//! by the load tool and tests. Same contract as [`crate::rtmp::server::ServerSession`]: feed
//! `receive`, drain `poll_event` and `poll_transmit`.
//!
//! The session drives the whole opening on its own: handshake, `connect`, `createStream`, then
//! `publish` or `play` (for publishing also `releaseStream` and `FCPublish`, as OBS does).

use std::collections::VecDeque;

use bytes::{Bytes, BytesMut};

use crate::amf0::{self, Amf0Limits, Amf0Value};
use crate::frame::{MediaKind, MediaMessage};
use crate::rtmp::chunk::{ChunkDecoder, ChunkLimits, RawMessage, MAX_CHUNK_SIZE};
use crate::rtmp::command::{self, Command};
use crate::rtmp::control::{ControlMessage, UserControlEvent};
use crate::rtmp::handshake::ClientHandshake;
use crate::rtmp::server::aggregate;
use crate::rtmp::server::output::{AckState, Output};
use crate::rtmp::{csid, msg_type, ProtocolError, SessionError};

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum ClientMode {
    Publish,
    Play,
}

#[derive(Debug, Clone)]
pub struct ClientConfig {
    pub app: String,
    pub tc_url: String,
    /// Stream name (may carry `?query`).
    pub stream: String,
    pub mode: ClientMode,
    /// Use the digest (complex) handshake.
    pub digest_handshake: bool,
    /// Outgoing chunk size announced after connect (publishers); `None` keeps 128.
    pub chunk_size: Option<u32>,
}

#[derive(Debug, Clone, PartialEq)]
pub enum ClientEvent {
    /// `connect` succeeded.
    Connected,
    /// NetStream.Publish.Start (publisher may now `send_media`).
    PublishStarted,
    /// NetStream.Play.Start.
    PlayStarted,
    /// Any onStatus (including the ones above), in arrival order.
    Status { level: String, code: String, description: String },
    /// `_error` answer to connect/createStream.
    CommandError { description: String },
    /// Media received while playing.
    Media(MediaMessage),
}

/// The buffer length a player announces after `play` (SetBufferLength), in milliseconds.
pub const PLAYER_BUFFER_MS: u32 = 1000;

/// Which request a transaction id belongs to.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Call {
    Connect,
    ReleaseStream,
    FcPublish,
    CreateStream,
}

/// One RTMP client connection (publisher or player).
#[derive(Debug)]
pub struct ClientSession {
    config: ClientConfig,
    amf0_limits: Amf0Limits,
    handshake: ClientHandshake,
    established: bool,
    /// Bytes received during the handshake not yet consumed by it.
    handshake_in: BytesMut,
    decoder: ChunkDecoder,
    out: Output,
    events: VecDeque<ClientEvent>,
    /// Outstanding requests by transaction id.
    calls: Vec<(f64, Call)>,
    last_transaction: f64,
    /// The message stream `createStream` returned.
    stream_id: Option<u32>,
    /// NetStream.Publish.Start seen: `send_media` is allowed.
    publishing: bool,
    closed: bool,
    ack: AckState,
    bytes_received: u64,
    failed: Option<SessionError>,
}

impl ClientSession {
    /// Starts the handshake (C0+C1 queued for `poll_transmit`).
    pub fn new(config: ClientConfig, seed: [u8; 32]) -> Self {
        let mut out = Output::default();
        // Sans-IO: no clock, so C1's time field is 0 (as many clients send).
        let handshake = ClientHandshake::new(seed, 0, config.digest_handshake, &mut out.buf);
        ClientSession {
            config,
            amf0_limits: Amf0Limits::default(),
            handshake,
            established: false,
            handshake_in: BytesMut::new(),
            decoder: ChunkDecoder::new(ChunkLimits::default()),
            out,
            events: VecDeque::new(),
            calls: Vec::new(),
            last_transaction: 0.0,
            stream_id: None,
            publishing: false,
            closed: false,
            ack: AckState::new(None),
            bytes_received: 0,
            failed: None,
        }
    }

    /// Process bytes from the server. After an `Err` the session is dead and every later call
    /// returns the same error.
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
        if self.established {
            self.decoder.push(data);
        } else {
            self.handshake_in.extend_from_slice(data);
            if !self.handshake.receive(&mut self.handshake_in, &mut self.out.buf)? {
                return Ok(());
            }
            self.established = true;
            let rest = std::mem::take(&mut self.handshake_in);
            self.decoder.push(&rest);
            self.start_connect();
        }
        while let Some(message) = self.decoder.next_message()? {
            self.handle_message(message)?;
        }
        if let Some(sequence_number) = self.ack.due(self.bytes_received) {
            self.out.control(ControlMessage::Acknowledgement { sequence_number });
        }
        Ok(())
    }

    pub fn poll_event(&mut self) -> Option<ClientEvent> {
        self.events.pop_front()
    }

    pub fn poll_transmit(&mut self) -> Option<Bytes> {
        self.out.take()
    }

    /// Queue a media message (publisher, after `PublishStarted`).
    ///
    /// Audio goes on [`csid::AUDIO`], video on [`csid::VIDEO`], data on [`csid::DATA`], with
    /// compressed headers. Ignored before `PublishStarted`, after `close`, and for players.
    pub fn send_media(&mut self, message: &MediaMessage) {
        let Some(stream_id) = self.stream_id else {
            return;
        };
        if !self.publishing || self.closed {
            return;
        }
        let media_csid = match message.kind {
            MediaKind::Audio => csid::AUDIO,
            MediaKind::Video => csid::VIDEO,
            MediaKind::Data => csid::DATA,
        };
        self.out.encoder.encode(
            media_csid,
            message.timestamp,
            message.kind.type_id(),
            stream_id,
            &message.payload,
            &mut self.out.buf,
        );
    }

    /// Queue FCUnpublish + deleteStream (publisher) or deleteStream (player).
    pub fn close(&mut self) {
        if self.closed {
            return;
        }
        self.closed = true;
        self.publishing = false;
        let Some(stream_id) = self.stream_id else {
            return;
        };
        if self.config.mode == ClientMode::Publish {
            let name = Amf0Value::String(self.config.stream.clone());
            let t = self.next_transaction();
            self.out.command(0, &command::request("FCUnpublish", t, &[name]));
        }
        let t = self.next_transaction();
        let id = Amf0Value::Number(f64::from(stream_id));
        self.out.command(0, &command::request("deleteStream", t, &[id]));
    }

    /// The message stream id `createStream` returned, once known.
    pub fn stream_id(&self) -> Option<u32> {
        self.stream_id
    }

    /// Total bytes received (handshake included).
    pub fn bytes_received(&self) -> u64 {
        self.bytes_received
    }

    fn next_transaction(&mut self) -> f64 {
        self.last_transaction += 1.0;
        self.last_transaction
    }

    fn call(&mut self, name: &str, call: Call, args: &[Amf0Value]) {
        let t = self.next_transaction();
        self.calls.push((t, call));
        self.out.command(0, &command::request(name, t, args));
    }

    /// After the handshake: optional Set Chunk Size, then `connect`.
    fn start_connect(&mut self) {
        if let Some(size) = self.config.chunk_size.filter(|s| (1..=MAX_CHUNK_SIZE).contains(s)) {
            // Sent at the old size; everything after it uses the new one.
            self.out.control(ControlMessage::SetChunkSize(size));
            let _ = self.out.encoder.set_chunk_size(size);
        }
        let t = self.next_transaction();
        self.calls.push((t, Call::Connect));
        let payload = command::connect_request(t, &self.config.app, &self.config.tc_url);
        self.out.command(0, &payload);
    }

    fn handle_message(&mut self, message: RawMessage) -> Result<(), SessionError> {
        let RawMessage { timestamp, type_id, stream_id, payload, .. } = message;
        match type_id {
            msg_type::SET_CHUNK_SIZE..=msg_type::SET_PEER_BANDWIDTH => {
                self.handle_control(type_id, &payload)
            }
            msg_type::COMMAND_AMF0 => self.handle_command(&payload),
            msg_type::COMMAND_AMF3 => {
                self.handle_command(&crate::rtmp::server::strip_amf3_prefix(&payload))
            }
            msg_type::AUDIO => self.media(stream_id, MediaKind::Audio, timestamp, payload),
            msg_type::VIDEO => self.media(stream_id, MediaKind::Video, timestamp, payload),
            msg_type::DATA_AMF0 => self.handle_data(stream_id, timestamp, payload),
            msg_type::DATA_AMF3 => self.handle_data(
                stream_id,
                timestamp,
                crate::rtmp::server::strip_amf3_prefix(&payload),
            ),
            msg_type::AGGREGATE => {
                for sub in
                    aggregate::split(timestamp, &payload).map_err(ProtocolError::Aggregate)?
                {
                    if sub.type_id == msg_type::DATA_AMF0 {
                        self.handle_data(stream_id, sub.timestamp, sub.payload)?;
                    } else if let Some(kind) = MediaKind::from_type_id(sub.type_id) {
                        self.media(stream_id, kind, sub.timestamp, sub.payload)?;
                    }
                }
                Ok(())
            }
            _ => Ok(()),
        }
    }

    fn handle_control(&mut self, type_id: u8, payload: &[u8]) -> Result<(), SessionError> {
        let message = ControlMessage::decode(type_id, payload).map_err(ProtocolError::Control)?;
        match message {
            ControlMessage::SetChunkSize(size) => self.decoder.set_chunk_size(size)?,
            ControlMessage::Abort { csid } => self.decoder.abort(csid),
            ControlMessage::WindowAckSize(size) => self.ack.set_window(size),
            ControlMessage::UserControl(UserControlEvent::PingRequest(t)) => {
                self.out.user_control(UserControlEvent::PingResponse(t));
            }
            _ => {}
        }
        Ok(())
    }

    /// Audio/video for a player on its stream: a Media event; anything else is ignored.
    fn media(
        &mut self,
        stream_id: u32,
        kind: MediaKind,
        timestamp: u32,
        payload: Bytes,
    ) -> Result<(), SessionError> {
        if self.config.mode == ClientMode::Play && self.stream_id == Some(stream_id) && !self.closed
        {
            self.events.push_back(ClientEvent::Media(MediaMessage { kind, timestamp, payload }));
        }
        Ok(())
    }

    /// Data messages: `onStatus` becomes a Status event, `|RtmpSampleAccess` is dropped, the
    /// rest (e.g. `onMetaData`) is media for a player.
    fn handle_data(
        &mut self,
        stream_id: u32,
        timestamp: u32,
        payload: Bytes,
    ) -> Result<(), SessionError> {
        let mut cursor: &[u8] = &payload;
        let first =
            amf0::decode(&mut cursor, &self.amf0_limits).map_err(command::CommandError::from)?;
        match first.as_str() {
            Some("onStatus") => self.handle_command(&payload),
            Some("|RtmpSampleAccess") => Ok(()),
            _ => self.media(stream_id, MediaKind::Data, timestamp, payload),
        }
    }

    fn take_call(&mut self, transaction_id: f64) -> Option<Call> {
        let index = self.calls.iter().position(|(t, _)| *t == transaction_id)?;
        Some(self.calls.swap_remove(index).1)
    }

    fn handle_command(&mut self, payload: &[u8]) -> Result<(), SessionError> {
        match Command::parse(payload, &self.amf0_limits)? {
            Command::Result { transaction_id, values } => match self.take_call(transaction_id) {
                Some(Call::Connect) => self.on_connected(),
                Some(Call::CreateStream) => self.on_stream_created(&values)?,
                Some(Call::ReleaseStream | Call::FcPublish) | None => {}
            },
            Command::Error { transaction_id, values } => match self.take_call(transaction_id) {
                // Like ffmpeg: a failed releaseStream/FCPublish is not fatal.
                Some(Call::ReleaseStream | Call::FcPublish) => {}
                _ => {
                    let description = command::error_description(&values);
                    self.events.push_back(ClientEvent::CommandError { description });
                }
            },
            Command::OnStatus { level, code, description } => {
                let started = match code.as_str() {
                    "NetStream.Publish.Start" if self.config.mode == ClientMode::Publish => {
                        self.publishing = !self.closed;
                        Some(ClientEvent::PublishStarted)
                    }
                    "NetStream.Play.Start" if self.config.mode == ClientMode::Play => {
                        Some(ClientEvent::PlayStarted)
                    }
                    _ => None,
                };
                self.events.push_back(ClientEvent::Status { level, code, description });
                self.events.extend(started);
            }
            // onBWDone, onFCPublish, anything else the server says: nothing to do.
            _ => {}
        }
        Ok(())
    }

    fn on_connected(&mut self) {
        self.events.push_back(ClientEvent::Connected);
        if self.config.mode == ClientMode::Publish {
            let name = Amf0Value::String(self.config.stream.clone());
            self.call("releaseStream", Call::ReleaseStream, std::slice::from_ref(&name));
            self.call("FCPublish", Call::FcPublish, &[name]);
        }
        self.call("createStream", Call::CreateStream, &[]);
    }

    fn on_stream_created(&mut self, values: &[Amf0Value]) -> Result<(), SessionError> {
        let id = values
            .iter()
            .find_map(Amf0Value::as_f64)
            .filter(|id| *id >= 0.0 && *id <= f64::from(u32::MAX))
            .ok_or(ProtocolError::NoStreamId)?;
        let stream_id = id as u32;
        self.stream_id = Some(stream_id);
        let name = Amf0Value::String(self.config.stream.clone());
        let t = self.next_transaction();
        match self.config.mode {
            ClientMode::Publish => {
                let args = [name, Amf0Value::String("live".into())];
                self.out.command(stream_id, &command::request("publish", t, &args));
            }
            ClientMode::Play => {
                let args = [
                    name,
                    Amf0Value::Number(-2.0),
                    Amf0Value::Number(-1.0),
                    Amf0Value::Boolean(true),
                ];
                self.out.command(stream_id, &command::request("play", t, &args));
                self.out.user_control(UserControlEvent::SetBufferLength {
                    stream_id,
                    buffer_ms: PLAYER_BUFFER_MS,
                });
            }
        }
        Ok(())
    }
}
