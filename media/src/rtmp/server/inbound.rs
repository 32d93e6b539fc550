//! Handling of messages received from the peer: control messages, media and commands.

use bytes::Bytes;

use super::{aggregate, ConnectState, ServerEvent, ServerSession, StreamState};
use crate::frame::{MediaKind, MediaMessage};
use crate::rtmp::chunk::RawMessage;
use crate::rtmp::command::{self, Command};
use crate::rtmp::control::{ControlMessage, UserControlEvent};
use crate::rtmp::{msg_type, ProtocolError, SessionError};

/// Strip the one-byte prefix of an AMF3 command/data message (type 17/15) when it is the usual
/// 0, leaving the AMF0 body.
pub(crate) fn strip_amf3_prefix(payload: &Bytes) -> Bytes {
    match payload.first() {
        Some(0) => payload.slice(1..),
        _ => payload.clone(),
    }
}

/// Whether an `FCUnpublish` name refers to a stream published as `published` (which may
/// carry a `?query` the FCUnpublish lacks).
fn same_stream_name(published: &str, name: &str) -> bool {
    let base = |s: &str| s.split('?').next().unwrap_or_default().to_owned();
    published == name || base(published) == base(name)
}

impl ServerSession {
    pub(super) fn handle_message(&mut self, message: RawMessage) -> Result<(), SessionError> {
        let RawMessage { timestamp, type_id, stream_id, payload, .. } = message;
        match type_id {
            msg_type::SET_CHUNK_SIZE..=msg_type::SET_PEER_BANDWIDTH => {
                self.handle_control(type_id, &payload)
            }
            msg_type::AUDIO => self.handle_media(stream_id, MediaKind::Audio, timestamp, payload),
            msg_type::VIDEO => self.handle_media(stream_id, MediaKind::Video, timestamp, payload),
            msg_type::DATA_AMF0 => {
                self.handle_media(stream_id, MediaKind::Data, timestamp, payload)
            }
            msg_type::DATA_AMF3 => self.handle_media(
                stream_id,
                MediaKind::Data,
                timestamp,
                strip_amf3_prefix(&payload),
            ),
            msg_type::COMMAND_AMF0 => self.handle_command(stream_id, &payload),
            msg_type::COMMAND_AMF3 => self.handle_command(stream_id, &strip_amf3_prefix(&payload)),
            msg_type::AGGREGATE => self.handle_aggregate(stream_id, timestamp, &payload),
            // Shared objects and unknown types: not supported, ignored.
            _ => Ok(()),
        }
    }

    fn handle_control(&mut self, type_id: u8, payload: &[u8]) -> Result<(), SessionError> {
        let message = ControlMessage::decode(type_id, payload).map_err(ProtocolError::Control)?;
        match message {
            ControlMessage::SetChunkSize(size) => self.decoder.set_chunk_size(size)?,
            ControlMessage::Abort { csid } => self.decoder.abort(csid),
            ControlMessage::WindowAckSize(size) => self.ack.set_window(size),
            ControlMessage::Acknowledgement { .. } | ControlMessage::SetPeerBandwidth { .. } => {}
            ControlMessage::UserControl(UserControlEvent::PingRequest(t)) => {
                self.out.user_control(UserControlEvent::PingResponse(t));
            }
            ControlMessage::UserControl(UserControlEvent::SetBufferLength {
                stream_id,
                buffer_ms,
            }) => {
                self.events.push_back(ServerEvent::BufferLength { stream_id, buffer_ms });
            }
            ControlMessage::UserControl(_) => {}
        }
        Ok(())
    }

    fn handle_media(
        &mut self,
        stream_id: u32,
        kind: MediaKind,
        timestamp: u32,
        payload: Bytes,
    ) -> Result<(), SessionError> {
        if matches!(self.streams.get(&stream_id), Some(StreamState::Publishing { .. })) {
            let message = MediaMessage { kind, timestamp, payload };
            self.events.push_back(ServerEvent::Media { stream_id, message });
        } else {
            self.ignored_media = self.ignored_media.saturating_add(1);
        }
        Ok(())
    }

    fn handle_aggregate(
        &mut self,
        stream_id: u32,
        timestamp: u32,
        payload: &Bytes,
    ) -> Result<(), SessionError> {
        if !matches!(self.streams.get(&stream_id), Some(StreamState::Publishing { .. })) {
            self.ignored_media = self.ignored_media.saturating_add(1);
            return Ok(());
        }
        for sub in aggregate::split(timestamp, payload).map_err(ProtocolError::Aggregate)? {
            if let Some(kind) = MediaKind::from_type_id(sub.type_id) {
                self.handle_media(stream_id, kind, sub.timestamp, sub.payload)?;
            }
        }
        Ok(())
    }

    fn handle_command(&mut self, stream_id: u32, payload: &[u8]) -> Result<(), SessionError> {
        let command = Command::parse(payload, &self.config.amf0_limits)?;
        match (self.connect, command) {
            (
                ConnectState::Awaiting,
                Command::Connect { transaction_id, app, tc_url, object_encoding },
            ) => {
                self.connect = ConnectState::Pending { transaction_id, object_encoding };
                self.events.push_back(ServerEvent::Connect { app, tc_url });
                Ok(())
            }
            (_, Command::Connect { .. }) => Err(ProtocolError::SecondConnect.into()),
            (ConnectState::Awaiting, other) => {
                Err(ProtocolError::BeforeConnect { command: command_name(&other).to_owned() }
                    .into())
            }
            (ConnectState::Rejected, other) => Err(ProtocolError::AfterRejectedConnect {
                command: command_name(&other).to_owned(),
            }
            .into()),
            (_, command) => self.handle_connected_command(stream_id, command),
        }
    }

    fn handle_connected_command(
        &mut self,
        msg_stream: u32,
        command: Command,
    ) -> Result<(), SessionError> {
        match command {
            Command::CreateStream { transaction_id } => self.create_stream(transaction_id),
            Command::ReleaseStream { transaction_id, .. } => {
                self.out.command(0, &command::empty_result(transaction_id));
            }
            Command::FcPublish { transaction_id, name } => {
                self.out.command(0, &command::on_fc_publish(&name));
                self.out.command(0, &command::empty_result(transaction_id));
            }
            Command::Publish { name, publish_type, .. } => {
                self.publish(msg_stream, name, publish_type)?;
            }
            Command::Play { name, start, duration, reset, .. } => {
                self.play(msg_stream, name, start, duration, reset)?;
            }
            Command::FcUnpublish { name, .. } => {
                let by_name = self.streams.iter().find_map(|(id, state)| match state {
                    StreamState::Publishing { name: published }
                        if same_stream_name(published, &name) =>
                    {
                        Some(*id)
                    }
                    _ => None,
                });
                if let Some(id) = by_name.or(Some(msg_stream)) {
                    if matches!(self.streams.get(&id), Some(StreamState::Publishing { .. })) {
                        self.stop_stream(id);
                    }
                }
            }
            Command::CloseStream { .. } => self.stop_stream(msg_stream),
            Command::DeleteStream { stream_id, .. } => {
                self.stop_stream(stream_id);
                self.streams.remove(&stream_id);
            }
            Command::GetStreamLength { transaction_id, .. } => {
                self.out.command(
                    msg_stream,
                    &command::result(transaction_id, crate::amf0::Amf0Value::Number(0.0)),
                );
            }
            // Answers and statuses from a client, and commands Sluice does not implement
            // (FCSubscribe, receiveAudio, pause, ...): ignored.
            Command::Result { .. }
            | Command::Error { .. }
            | Command::OnStatus { .. }
            | Command::Other { .. } => {}
            Command::Connect { .. } => {}
        }
        Ok(())
    }

    fn create_stream(&mut self, transaction_id: f64) {
        let limit = self.config.max_streams_per_connection;
        // Smallest unused id from MEDIA_STREAM_ID up, so the first stream (and a recreated one
        // after deleteStream) gets the id shared media bytes use.
        let free = (super::MEDIA_STREAM_ID..=limit).find(|id| !self.streams.contains_key(id));
        match free {
            Some(id) if self.streams.len() < limit as usize => {
                if self.streams.is_empty() {
                    // Most connections create one stream: room for exactly one, not four.
                    self.streams = litemap::LiteMap::with_capacity(1);
                }
                self.streams.insert(id, StreamState::Idle);
                self.out.command(0, &command::create_stream_result(transaction_id, id));
            }
            _ => {
                let info = command::status_object(
                    "error",
                    "NetConnection.Call.Failed",
                    &format!("createStream: at most {limit} streams per connection"),
                    &[],
                );
                self.out.command(0, &command::error(transaction_id, info));
            }
        }
    }

    fn publish(
        &mut self,
        stream_id: u32,
        name: String,
        publish_type: String,
    ) -> Result<(), SessionError> {
        let state = self
            .streams
            .get_mut(&stream_id)
            .ok_or(ProtocolError::UnknownStream { command: "publish", stream_id })?;
        if *state != StreamState::Idle {
            let description =
                format!("Message stream {stream_id} is already publishing or playing.");
            self.status(stream_id, "error", "NetStream.Publish.BadConnection", &description, &name);
            return Ok(());
        }
        *state = StreamState::Publishing { name: name.clone() };
        self.events.push_back(ServerEvent::Publish { stream_id, name, publish_type });
        Ok(())
    }

    fn play(
        &mut self,
        stream_id: u32,
        name: String,
        start: f64,
        duration: f64,
        reset: bool,
    ) -> Result<(), SessionError> {
        let state = self
            .streams
            .get_mut(&stream_id)
            .ok_or(ProtocolError::UnknownStream { command: "play", stream_id })?;
        match state {
            StreamState::Publishing { .. } => {
                let description = format!("Message stream {stream_id} is publishing.");
                self.status(stream_id, "error", "NetStream.Play.Failed", &description, &name);
                return Ok(());
            }
            // A new play on a playing stream switches streams: stop the old one first.
            StreamState::Playing => self.events.push_back(ServerEvent::StopPlay { stream_id }),
            StreamState::Idle => *state = StreamState::Playing,
        }
        self.events.push_back(ServerEvent::Play { stream_id, name, start, duration, reset });
        Ok(())
    }

    /// End whatever `stream_id` is doing (emitting Unpublish or StopPlay); it stays created.
    fn stop_stream(&mut self, stream_id: u32) {
        let Some(state) = self.streams.get_mut(&stream_id) else {
            return;
        };
        match std::mem::replace(state, StreamState::Idle) {
            StreamState::Publishing { .. } => {
                self.events.push_back(ServerEvent::Unpublish { stream_id });
            }
            StreamState::Playing => self.events.push_back(ServerEvent::StopPlay { stream_id }),
            StreamState::Idle => {}
        }
    }
}

/// The wire name of a parsed command, for error messages.
fn command_name(command: &Command) -> &str {
    match command {
        Command::Connect { .. } => "connect",
        Command::CreateStream { .. } => "createStream",
        Command::ReleaseStream { .. } => "releaseStream",
        Command::FcPublish { .. } => "FCPublish",
        Command::FcUnpublish { .. } => "FCUnpublish",
        Command::Publish { .. } => "publish",
        Command::Play { .. } => "play",
        Command::DeleteStream { .. } => "deleteStream",
        Command::CloseStream { .. } => "closeStream",
        Command::GetStreamLength { .. } => "getStreamLength",
        Command::Result { .. } => "_result",
        Command::Error { .. } => "_error",
        Command::OnStatus { .. } => "onStatus",
        Command::Other { name, .. } => name,
    }
}
