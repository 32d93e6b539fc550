//! The RTMP server session against raw chunks a client could send: protocol errors, AMF3
//! commands, pings and windows, stream limits, aggregates and odd commands.

use bytes::{Bytes, BytesMut};
use sluice_media::amf0::{self, Amf0Limits, Amf0Value};
use sluice_media::frame::{MediaKind, MediaMessage};
use sluice_media::rtmp::chunk::ChunkEncoder;
use sluice_media::rtmp::command::Command;
use sluice_media::rtmp::control::{ControlMessage, UserControlEvent};
use sluice_media::rtmp::handshake::ClientHandshake;
use sluice_media::rtmp::msg_type;
use sluice_media::rtmp::server::{ServerConfig, ServerEvent, ServerSession};
use sluice_media::rtmp::{AggregateError, ProtocolError, SessionError, SessionErrorKind};

mod session_support;
use session_support::Monitor;

// ---------------------------------------------------------------------------------------------
// Raw client: arbitrary chunks to a server.
// ---------------------------------------------------------------------------------------------

struct RawClient {
    server: ServerSession,
    encoder: ChunkEncoder,
    replies: Monitor,
}

impl RawClient {
    fn new(config: ServerConfig) -> Self {
        let mut server = ServerSession::new(config, [1; 32], 0);
        let mut out = BytesMut::new();
        let mut handshake = ClientHandshake::new([2; 32], 0, false, &mut out);
        let mut replies = Monitor::new();
        server.receive(&out).unwrap();
        let s = server.poll_transmit().unwrap();
        replies.feed(&s);
        let mut input = BytesMut::from(&s[..]);
        let mut c2 = BytesMut::new();
        assert!(handshake.receive(&mut input, &mut c2).unwrap());
        server.receive(&c2).unwrap();
        assert!(server.is_established());
        assert_eq!(server.poll_event(), Some(ServerEvent::HandshakeDone { digest: false }));
        RawClient { server, encoder: ChunkEncoder::new(), replies }
    }

    fn send(
        &mut self,
        csid: u32,
        type_id: u8,
        stream_id: u32,
        payload: &[u8],
    ) -> Result<(), SessionError> {
        let mut out = BytesMut::new();
        self.encoder.encode(csid, 0, type_id, stream_id, payload, &mut out);
        self.server.receive(&out)
    }

    fn command(&mut self, stream_id: u32, values: &[Amf0Value]) -> Result<(), SessionError> {
        self.send(3, msg_type::COMMAND_AMF0, stream_id, &amf0::encode_all(values))
    }

    fn events(&mut self) -> Vec<ServerEvent> {
        std::iter::from_fn(|| self.server.poll_event()).collect()
    }

    /// Parsed command replies received since the last call.
    fn commands(&mut self) -> Vec<Command> {
        let start = self.replies.messages.len();
        if let Some(bytes) = self.server.poll_transmit() {
            self.replies.feed(&bytes);
        }
        self.replies.messages[start..]
            .iter()
            .filter(|m| m.type_id == msg_type::COMMAND_AMF0)
            .map(|m| Command::parse(&m.payload, &Amf0Limits::default()).unwrap())
            .collect()
    }

    /// connect (accepted) + createStream (+ publish when `publish`).
    fn connected(config: ServerConfig, publish: bool) -> Self {
        let mut raw = RawClient::new(config);
        raw.command(0, &[s("connect"), n(1.0), obj(&[("app", s("live"))])]).unwrap();
        raw.server.accept_connect();
        raw.command(0, &[s("createStream"), n(2.0), Amf0Value::Null]).unwrap();
        if publish {
            raw.command(1, &[s("publish"), n(3.0), Amf0Value::Null, s("cam")]).unwrap();
            raw.server.accept_publish(1, "cam");
        }
        raw.events();
        raw.commands();
        raw
    }
}

fn s(v: &str) -> Amf0Value {
    Amf0Value::String(v.into())
}
fn n(v: f64) -> Amf0Value {
    Amf0Value::Number(v)
}
fn obj(props: &[(&str, Amf0Value)]) -> Amf0Value {
    Amf0Value::Object(props.iter().map(|(k, v)| (k.to_string(), v.clone())).collect())
}

#[test]
fn command_before_connect_is_protocol_error() {
    let mut raw = RawClient::new(ServerConfig::default());
    let err = raw.command(0, &[s("createStream"), n(2.0), Amf0Value::Null]).unwrap_err();
    assert_eq!(err.kind(), SessionErrorKind::Protocol);
    assert_eq!(
        err,
        SessionError::Protocol(ProtocolError::BeforeConnect { command: "createStream".into() })
    );
    // The session stays failed.
    assert_eq!(raw.server.receive(&[0]).unwrap_err(), err);
}

#[test]
fn second_connect_is_protocol_error() {
    let mut raw = RawClient::new(ServerConfig::default());
    raw.command(0, &[s("connect"), n(1.0), obj(&[("app", s("live"))])]).unwrap();
    let err = raw.command(0, &[s("connect"), n(2.0), obj(&[("app", s("live"))])]).unwrap_err();
    assert_eq!(err, SessionError::Protocol(ProtocolError::SecondConnect));
}

#[test]
fn malformed_amf_command_is_amf_error() {
    let mut raw = RawClient::new(ServerConfig::default());
    // String marker claiming 5 bytes, only 1 present.
    let err = raw.send(3, msg_type::COMMAND_AMF0, 0, &[0x02, 0x00, 0x05, b'c']).unwrap_err();
    assert_eq!(err.kind(), SessionErrorKind::Amf);
    assert!(matches!(err, SessionError::Command(_)));
}

#[test]
fn amf3_command_connect_is_accepted() {
    let mut raw = RawClient::new(ServerConfig::default());
    let mut payload = vec![0u8];
    payload.extend_from_slice(&amf0::encode_all(&[
        s("connect"),
        n(1.0),
        obj(&[("app", s("vod"))]),
    ]));
    raw.send(3, msg_type::COMMAND_AMF3, 0, &payload).unwrap();
    assert_eq!(raw.events(), vec![ServerEvent::Connect { app: "vod".into(), tc_url: None }]);
}

#[test]
fn server_answers_ping_and_applies_peer_window_and_chunk_size() {
    let mut raw = RawClient::connected(ServerConfig::default(), true);
    let (t, p) = ControlMessage::UserControl(UserControlEvent::PingRequest(42)).encode();
    raw.send(2, t, 0, &p).unwrap();
    let (t, p) = ControlMessage::WindowAckSize(3000).encode();
    raw.send(2, t, 0, &p).unwrap();
    let (t, p) = ControlMessage::SetChunkSize(1000).encode();
    raw.send(2, t, 0, &p).unwrap();
    raw.encoder.set_chunk_size(1000).unwrap();
    let payload = vec![0xAF; 3500];
    raw.send(6, msg_type::AUDIO, 1, &payload).unwrap();
    raw.commands();
    let controls = raw.replies.controls();
    assert!(controls.contains(&ControlMessage::UserControl(UserControlEvent::PingResponse(42))));
    assert!(
        controls.iter().any(|c| matches!(c, ControlMessage::Acknowledgement { .. })),
        "{controls:?}"
    );
    let events = raw.events();
    assert_eq!(events.len(), 1);
    assert!(
        matches!(&events[0], ServerEvent::Media { message, .. } if message.payload[..] == payload[..])
    );

    // An invalid chunk size kills the connection with a chunk error.
    let err = raw.send(2, 1, 0, &0u32.to_be_bytes()).unwrap_err();
    assert_eq!(err.kind(), SessionErrorKind::Chunk);
}

#[test]
fn stream_limits_and_state_errors() {
    let config = ServerConfig { max_streams_per_connection: 2, ..ServerConfig::default() };
    let mut raw = RawClient::connected(config, false);
    raw.command(0, &[s("createStream"), n(5.0), Amf0Value::Null]).unwrap();
    raw.command(0, &[s("createStream"), n(6.0), Amf0Value::Null]).unwrap();
    let replies = raw.commands();
    assert!(
        matches!(&replies[0], Command::Result { transaction_id, values } if *transaction_id == 5.0 && values[1] == n(2.0))
    );
    assert!(matches!(&replies[1], Command::Error { transaction_id, .. } if *transaction_id == 6.0));

    // Publish on stream 2 then publish again: error status, no second event.
    raw.command(2, &[s("publish"), n(0.0), Amf0Value::Null, s("a")]).unwrap();
    raw.command(2, &[s("publish"), n(0.0), Amf0Value::Null, s("b")]).unwrap();
    assert_eq!(
        raw.events(),
        vec![ServerEvent::Publish { stream_id: 2, name: "a".into(), publish_type: "live".into() }]
    );
    assert!(matches!(&raw.commands()[..], [Command::OnStatus { level, .. }] if level == "error"));

    // deleteStream frees the id; the next createStream reuses it.
    raw.command(0, &[s("deleteStream"), n(0.0), Amf0Value::Null, n(2.0)]).unwrap();
    assert_eq!(raw.events(), vec![ServerEvent::Unpublish { stream_id: 2 }]);
    raw.command(0, &[s("createStream"), n(7.0), Amf0Value::Null]).unwrap();
    assert!(matches!(&raw.commands()[..], [Command::Result { values, .. }] if values[1] == n(2.0)));

    // Publish on a stream that was never created.
    let err = raw.command(9, &[s("publish"), n(0.0), Amf0Value::Null, s("x")]).unwrap_err();
    assert_eq!(
        err,
        SessionError::Protocol(ProtocolError::UnknownStream { command: "publish", stream_id: 9 })
    );
}

#[test]
fn media_on_non_publishing_stream_is_ignored() {
    let mut raw = RawClient::connected(ServerConfig::default(), false);
    raw.send(7, msg_type::VIDEO, 1, &[0x17, 0, 0, 0, 0]).unwrap();
    raw.send(7, msg_type::VIDEO, 0, &[0x17, 0, 0, 0, 0]).unwrap();
    raw.send(6, msg_type::AGGREGATE, 1, &[9, 0, 0]).unwrap();
    assert!(raw.events().is_empty());
    assert_eq!(raw.server.ignored_media(), 3);
}

#[test]
fn aggregate_is_split_with_rebased_timestamps() {
    let mut raw = RawClient::connected(ServerConfig::default(), true);
    let mut body = Vec::new();
    for (type_id, ts, data) in [(9u8, 1000u32, &b"video"[..]), (8, 1020, &b"au"[..])] {
        let len = data.len() as u32;
        body.extend_from_slice(&[type_id, (len >> 16) as u8, (len >> 8) as u8, len as u8]);
        body.extend_from_slice(&[
            (ts >> 16) as u8,
            (ts >> 8) as u8,
            ts as u8,
            (ts >> 24) as u8,
            0,
            0,
            0,
        ]);
        body.extend_from_slice(data);
        body.extend_from_slice(&(len + 11).to_be_bytes());
    }
    let mut out = BytesMut::new();
    raw.encoder.encode(6, 5000, msg_type::AGGREGATE, 1, &body, &mut out);
    raw.server.receive(&out).unwrap();
    assert_eq!(
        raw.events(),
        vec![
            ServerEvent::Media {
                stream_id: 1,
                message: MediaMessage {
                    kind: MediaKind::Video,
                    timestamp: 5000,
                    payload: Bytes::from_static(b"video")
                }
            },
            ServerEvent::Media {
                stream_id: 1,
                message: MediaMessage {
                    kind: MediaKind::Audio,
                    timestamp: 5020,
                    payload: Bytes::from_static(b"au")
                }
            },
        ]
    );
    // A truncated aggregate is a protocol error.
    let err = raw.send(6, msg_type::AGGREGATE, 1, &body[..body.len() - 10]).unwrap_err();
    assert_eq!(err.kind(), SessionErrorKind::Protocol);
    assert_eq!(
        err,
        SessionError::Protocol(ProtocolError::Aggregate(AggregateError::TruncatedHeader {
            offset: 20
        }))
    );
}

#[test]
fn replies_to_get_stream_length_release_and_fcunpublish() {
    let mut raw = RawClient::connected(ServerConfig::default(), true);
    raw.command(0, &[s("releaseStream"), n(4.0), Amf0Value::Null, s("cam")]).unwrap();
    raw.command(1, &[s("getStreamLength"), n(5.0), Amf0Value::Null, s("cam")]).unwrap();
    let replies = raw.commands();
    assert!(
        matches!(&replies[0], Command::Result { transaction_id, .. } if *transaction_id == 4.0)
    );
    assert!(
        matches!(&replies[1], Command::Result { transaction_id, values } if *transaction_id == 5.0 && values[1] == n(0.0))
    );
    // FCUnpublish on stream 0 names the stream; the following deleteStream emits nothing more.
    raw.command(0, &[s("FCUnpublish"), n(6.0), Amf0Value::Null, s("cam")]).unwrap();
    raw.command(0, &[s("deleteStream"), n(7.0), Amf0Value::Null, n(1.0)]).unwrap();
    assert_eq!(raw.events(), vec![ServerEvent::Unpublish { stream_id: 1 }]);
}

#[test]
fn output_beyond_the_limit_fails_the_session() {
    let config = ServerConfig { max_output_bytes: 64 * 1024, ..ServerConfig::default() };
    let mut raw = RawClient::connected(config, false);
    // FCPublish echoes the name in onFCPublish: a 20 000-character name provokes ~20 KB.
    let name = "x".repeat(20_000);
    let mut burst = BytesMut::new();
    for t in 0..10 {
        let payload =
            amf0::encode_all(&[s("FCPublish"), n(10.0 + t as f64), Amf0Value::Null, s(&name)]);
        raw.encoder.encode(3, 0, msg_type::COMMAND_AMF0, 0, &payload, &mut burst);
    }
    // All ten commands arrive in one read: the session must stop before queueing ~200 KB.
    let err = raw.server.receive(&burst).unwrap_err();
    assert_eq!(err.kind(), SessionErrorKind::OutputFull);
    assert!(matches!(err, SessionError::OutputFull { limit: 65536, .. }), "{err}");
    assert!(raw.server.poll_transmit().is_none(), "queued output is released");
    // A peer that takes its output in between stays within the limit.
    let mut raw = RawClient::connected(
        ServerConfig { max_output_bytes: 64 * 1024, ..ServerConfig::default() },
        false,
    );
    for t in 0..10 {
        raw.command(0, &[s("FCPublish"), n(10.0 + t as f64), Amf0Value::Null, s(&name)]).unwrap();
        assert!(!raw.commands().is_empty());
    }
}
