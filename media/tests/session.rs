//! In-memory tests of the RTMP server and client sessions: a [`Pair`] wires a `ClientSession`
//! to a `ServerSession` and shuttles bytes between them (in the spirit of quinn-proto's test
//! `Pair`); a [`RawClient`] speaks raw chunks to a server to test what a real client could send.

use bytes::{Bytes, BytesMut};
use sluice_media::amf0::{self, Amf0Limits, Amf0Value};
use sluice_media::frame::{MediaKind, MediaMessage};
use sluice_media::rtmp::chunk::{
    encode_type0, ChunkDecoder, ChunkEncoder, ChunkLimits, RawMessage,
};
use sluice_media::rtmp::client::{ClientConfig, ClientEvent, ClientMode, ClientSession};
use sluice_media::rtmp::command::Command;
use sluice_media::rtmp::control::{ControlMessage, UserControlEvent};
use sluice_media::rtmp::handshake::{ClientHandshake, HANDSHAKE_SIZE};
use sluice_media::rtmp::server::{
    ServerConfig, ServerError, ServerEvent, ServerSession, MEDIA_CHUNK_SIZE, MEDIA_STREAM_ID,
};
use sluice_media::rtmp::{csid, msg_type};

/// Bytes of handshake each side sends before chunks start (C0/S0 + C1/S1 + C2/S2).
const HANDSHAKE_BYTES: usize = 1 + 2 * HANDSHAKE_SIZE;

/// Decodes one direction of a connection from its first byte, to observe what was sent.
struct Monitor {
    skip: usize,
    decoder: ChunkDecoder,
    messages: Vec<RawMessage>,
}

impl Monitor {
    fn new() -> Self {
        Monitor {
            skip: HANDSHAKE_BYTES,
            decoder: ChunkDecoder::new(ChunkLimits::default()),
            messages: Vec::new(),
        }
    }

    fn feed(&mut self, mut data: &[u8]) {
        let skip = self.skip.min(data.len());
        self.skip -= skip;
        data = &data[skip..];
        self.decoder.push(data);
        while let Some(m) = self.decoder.next_message().expect("monitor decode") {
            if m.type_id == msg_type::SET_CHUNK_SIZE {
                if let Ok(ControlMessage::SetChunkSize(n)) =
                    ControlMessage::decode(m.type_id, &m.payload)
                {
                    self.decoder.set_chunk_size(n).unwrap();
                }
            }
            self.messages.push(m);
        }
    }

    fn controls(&self) -> Vec<ControlMessage> {
        self.messages
            .iter()
            .filter(|m| (1..=6).contains(&m.type_id))
            .map(|m| ControlMessage::decode(m.type_id, &m.payload).unwrap())
            .collect()
    }
}

/// A client and a server session connected in memory.
struct Pair {
    server: ServerSession,
    client: ClientSession,
    server_events: Vec<ServerEvent>,
    client_events: Vec<ClientEvent>,
    /// Deliver bytes one at a time.
    byte_by_byte: bool,
    /// What the client sent / the server side sent (session output and injected bytes).
    c2s: Monitor,
    s2c: Monitor,
}

fn client_config(mode: ClientMode) -> ClientConfig {
    ClientConfig {
        app: "live".into(),
        tc_url: "rtmp://127.0.0.1/live".into(),
        stream: "cam?key=1".into(),
        mode,
        digest_handshake: false,
        chunk_size: None,
    }
}

impl Pair {
    fn new(client: ClientConfig, server: ServerConfig) -> Self {
        Pair {
            server: ServerSession::new(server, [7; 32], 1234),
            client: ClientSession::new(client, [9; 32]),
            server_events: Vec::new(),
            client_events: Vec::new(),
            byte_by_byte: false,
            c2s: Monitor::new(),
            s2c: Monitor::new(),
        }
    }

    fn deliver_to_server(&mut self, data: &[u8]) {
        self.c2s.feed(data);
        if self.byte_by_byte {
            for b in data {
                self.server
                    .receive(std::slice::from_ref(b))
                    .expect("server receive");
            }
        } else {
            self.server.receive(data).expect("server receive");
        }
    }

    fn deliver_to_client(&mut self, data: &[u8]) {
        self.s2c.feed(data);
        if self.byte_by_byte {
            for b in data {
                self.client
                    .receive(std::slice::from_ref(b))
                    .expect("client receive");
            }
        } else {
            self.client.receive(data).expect("client receive");
        }
    }

    /// Shuttle bytes both ways until neither side has anything to send; collect events.
    fn drive(&mut self) {
        loop {
            let mut moved = false;
            while let Some(bytes) = self.client.poll_transmit() {
                self.deliver_to_server(&bytes);
                moved = true;
            }
            while let Some(bytes) = self.server.poll_transmit() {
                self.deliver_to_client(&bytes);
                moved = true;
            }
            while let Some(e) = self.server.poll_event() {
                self.server_events.push(e);
            }
            while let Some(e) = self.client.poll_event() {
                self.client_events.push(e);
            }
            if !moved {
                break;
            }
        }
    }

    fn take_server_events(&mut self) -> Vec<ServerEvent> {
        std::mem::take(&mut self.server_events)
    }

    fn take_client_events(&mut self) -> Vec<ClientEvent> {
        std::mem::take(&mut self.client_events)
    }

    /// Handshake + connect, accepted. Returns the server events seen.
    fn connect(&mut self) -> Vec<ServerEvent> {
        self.drive();
        let mut events = self.take_server_events();
        assert!(
            events
                .iter()
                .any(|e| matches!(e, ServerEvent::Connect { .. })),
            "{events:?}"
        );
        self.server.accept_connect();
        self.drive();
        assert!(
            self.client_events.contains(&ClientEvent::Connected),
            "{:?}",
            self.client_events
        );
        events.extend(self.take_server_events());
        self.client_events.retain(|e| *e != ClientEvent::Connected);
        events
    }

    /// A publisher up to PublishStarted.
    fn publishing(client: ClientConfig, server: ServerConfig) -> Self {
        let mut pair = Pair::new(client, server);
        pair.connect();
        pair.server.accept_publish(MEDIA_STREAM_ID, "cam");
        pair.drive();
        assert!(pair
            .take_client_events()
            .contains(&ClientEvent::PublishStarted));
        pair
    }

    /// A player up to PlayStarted.
    fn playing(server: ServerConfig) -> Self {
        let mut pair = Pair::new(client_config(ClientMode::Play), server);
        pair.connect();
        pair.server.accept_play(MEDIA_STREAM_ID, "cam", true);
        pair.drive();
        assert!(pair
            .take_client_events()
            .contains(&ClientEvent::PlayStarted));
        pair
    }
}

fn status<'a>(level: &'a str, code: &'a str) -> impl Fn(&ClientEvent) -> bool + 'a {
    move |e| matches!(e, ClientEvent::Status { level: l, code: c, .. } if l == level && c == code)
}

fn media(kind: MediaKind, timestamp: u32, len: usize, seed: u8) -> MediaMessage {
    let payload: Vec<u8> = (0..len)
        .map(|i| (i as u8).wrapping_mul(31).wrapping_add(seed))
        .collect();
    MediaMessage {
        kind,
        timestamp,
        payload: Bytes::from(payload),
    }
}

fn publish_flow(client: ClientConfig) {
    let mut pair = Pair::new(client, ServerConfig::default());
    let events = pair.connect();
    assert_eq!(events[0], ServerEvent::HandshakeDone { digest: false });
    assert_eq!(
        events[1],
        ServerEvent::Connect {
            app: "live".into(),
            tc_url: Some("rtmp://127.0.0.1/live".into())
        }
    );
    assert_eq!(
        events[2..],
        [ServerEvent::Publish {
            stream_id: MEDIA_STREAM_ID,
            name: "cam?key=1".into(),
            publish_type: "live".into()
        }]
    );
    pair.server.accept_publish(MEDIA_STREAM_ID, "cam");
    pair.drive();
    let events = pair.take_client_events();
    assert!(
        events
            .iter()
            .any(status("status", "NetStream.Publish.Start")),
        "{events:?}"
    );
    assert_eq!(events.last(), Some(&ClientEvent::PublishStarted));

    let sent = vec![
        media(MediaKind::Data, 0, 300, 1),
        media(MediaKind::Video, 0, 9000, 2),
        media(MediaKind::Audio, 0, 20, 3),
        media(MediaKind::Video, 40, 5000, 4),
        media(MediaKind::Audio, 23, 200, 5),
        media(MediaKind::Video, 0x00FF_FFFF, 700, 6),
        media(MediaKind::Video, 0x0100_0000, 4096, 7),
        media(MediaKind::Audio, 0x0123_4567, 129, 8),
        media(MediaKind::Video, 0xFFFF_FFF0, 1, 9),
    ];
    for m in &sent {
        pair.client.send_media(m);
    }
    pair.drive();
    let got: Vec<MediaMessage> = pair
        .take_server_events()
        .into_iter()
        .map(|e| match e {
            ServerEvent::Media {
                stream_id: MEDIA_STREAM_ID,
                message,
            } => message,
            other => panic!("unexpected {other:?}"),
        })
        .collect();
    assert_eq!(got, sent);
}

#[test]
fn publish_flow_and_media_roundtrip() {
    publish_flow(client_config(ClientMode::Publish));
}

#[test]
fn publish_flow_with_large_client_chunk_size() {
    publish_flow(ClientConfig {
        chunk_size: Some(60_000),
        ..client_config(ClientMode::Publish)
    });
}

#[test]
fn publish_flow_digest_handshake() {
    let mut pair = Pair::new(
        ClientConfig {
            digest_handshake: true,
            ..client_config(ClientMode::Publish)
        },
        ServerConfig::default(),
    );
    let events = pair.connect();
    assert_eq!(events[0], ServerEvent::HandshakeDone { digest: true });
    pair.server.accept_publish(MEDIA_STREAM_ID, "cam");
    pair.drive();
    assert!(pair
        .take_client_events()
        .contains(&ClientEvent::PublishStarted));
}

#[test]
fn bytes_fed_one_at_a_time() {
    let mut pair = Pair::new(client_config(ClientMode::Publish), ServerConfig::default());
    pair.byte_by_byte = true;
    pair.connect();
    pair.server.accept_publish(MEDIA_STREAM_ID, "cam");
    pair.drive();
    assert!(pair
        .take_client_events()
        .contains(&ClientEvent::PublishStarted));
    let m = media(MediaKind::Video, 0x0200_0000, 10_000, 3);
    pair.client.send_media(&m);
    pair.drive();
    assert_eq!(
        pair.take_server_events(),
        vec![ServerEvent::Media {
            stream_id: 1,
            message: m
        }]
    );
}

#[test]
fn publisher_sequence_and_connect_reply_order() {
    let pair = Pair::publishing(client_config(ClientMode::Publish), ServerConfig::default());
    let limits = Amf0Limits::default();
    // Client: connect, releaseStream, FCPublish, createStream, publish.
    let names: Vec<(String, u32)> = pair
        .c2s
        .messages
        .iter()
        .filter(|m| m.type_id == msg_type::COMMAND_AMF0)
        .map(|m| {
            let values = amf0::decode_all(&m.payload, &limits).unwrap();
            (values[0].as_str().unwrap().to_owned(), m.stream_id)
        })
        .collect();
    let expect = [
        ("connect", 0),
        ("releaseStream", 0),
        ("FCPublish", 0),
        ("createStream", 0),
        ("publish", 1),
    ];
    assert_eq!(names, expect.map(|(n, s)| (n.to_owned(), s)));

    // Server: WindowAckSize, SetPeerBandwidth, SetChunkSize(4096) before the connect _result,
    // and never on a media csid.
    let first = &pair.s2c.messages[..4];
    assert_eq!(
        first.iter().map(|m| m.type_id).collect::<Vec<_>>(),
        [
            msg_type::WINDOW_ACK_SIZE,
            msg_type::SET_PEER_BANDWIDTH,
            msg_type::SET_CHUNK_SIZE,
            msg_type::COMMAND_AMF0
        ]
    );
    assert_eq!(
        ControlMessage::decode(1, &first[2].payload).unwrap(),
        ControlMessage::SetChunkSize(MEDIA_CHUNK_SIZE)
    );
    assert_eq!(
        ControlMessage::decode(6, &first[1].payload).unwrap(),
        ControlMessage::SetPeerBandwidth {
            size: 2_500_000,
            limit_type: 2
        }
    );
    match Command::parse(&first[3].payload, &limits).unwrap() {
        Command::Result {
            transaction_id,
            values,
        } => {
            assert_eq!(transaction_id, 1.0);
            assert_eq!(
                values[1].get("code").and_then(Amf0Value::as_str),
                Some("NetConnection.Connect.Success")
            );
        }
        other => panic!("{other:?}"),
    }
    assert!(pair
        .s2c
        .messages
        .iter()
        .all(|m| m.csid == csid::CONTROL || m.csid == csid::COMMAND));
    // onFCPublish was sent for FCPublish.
    assert!(pair.s2c.messages.iter().any(|m| {
        m.type_id == msg_type::COMMAND_AMF0
            && amf0::decode_all(&m.payload, &limits).unwrap()[0].as_str() == Some("onFCPublish")
    }));
}

#[test]
fn reject_publish_gives_bad_name() {
    let mut pair = Pair::new(client_config(ClientMode::Publish), ServerConfig::default());
    pair.connect();
    pair.server.reject_publish(
        MEDIA_STREAM_ID,
        "NetStream.Publish.BadName",
        "cam is already published",
    );
    pair.drive();
    let events = pair.take_client_events();
    assert_eq!(
        events,
        vec![ClientEvent::Status {
            level: "error".into(),
            code: "NetStream.Publish.BadName".into(),
            description: "cam is already published".into()
        }]
    );
    // Not publishing: send_media is dropped by the client.
    pair.client.send_media(&media(MediaKind::Video, 0, 10, 0));
    assert!(pair.client.poll_transmit().is_none());
}

#[test]
fn reject_connect_gives_command_error() {
    let mut pair = Pair::new(client_config(ClientMode::Play), ServerConfig::default());
    pair.drive();
    pair.server.reject_connect("no such app");
    pair.drive();
    assert_eq!(
        pair.take_client_events(),
        vec![ClientEvent::CommandError {
            description: "no such app".into()
        }]
    );
}

#[test]
fn play_flow_with_shared_media_bytes() {
    let mut pair = Pair::new(client_config(ClientMode::Play), ServerConfig::default());
    let events = pair.connect();
    assert_eq!(
        events[2..],
        [
            ServerEvent::Play {
                stream_id: MEDIA_STREAM_ID,
                name: "cam?key=1".into(),
                start: -2.0,
                duration: -1.0,
                reset: true
            },
            ServerEvent::BufferLength {
                stream_id: MEDIA_STREAM_ID,
                buffer_ms: 1000
            },
        ]
    );
    pair.server.accept_play(MEDIA_STREAM_ID, "cam", true);
    pair.drive();
    let events = pair.take_client_events();
    let codes: Vec<&str> = events
        .iter()
        .filter_map(|e| match e {
            ClientEvent::Status { code, .. } => Some(code.as_str()),
            _ => None,
        })
        .collect();
    assert_eq!(
        codes,
        [
            "NetStream.Play.Reset",
            "NetStream.Play.Start",
            "NetStream.Data.Start"
        ]
    );
    assert!(events.contains(&ClientEvent::PlayStarted));
    assert!(
        !events.iter().any(|e| matches!(e, ClientEvent::Media(_))),
        "|RtmpSampleAccess is not media"
    );

    // Shared bytes written between the session's own outputs.
    let sent = [
        media(MediaKind::Data, 0, 100, 1),
        media(MediaKind::Video, 0, 10_000, 2),
        media(MediaKind::Audio, 10, 300, 3),
        media(MediaKind::Video, 0x0100_0005, 4096, 4),
        media(MediaKind::Audio, 0x0100_0007, 4097, 5),
    ];
    for (i, m) in sent.iter().enumerate() {
        let csid = match m.kind {
            MediaKind::Audio => csid::AUDIO,
            MediaKind::Video => csid::VIDEO,
            MediaKind::Data => csid::DATA,
        };
        let mut shared = BytesMut::new();
        encode_type0(
            csid,
            m.timestamp,
            m.kind.type_id(),
            MEDIA_STREAM_ID,
            &m.payload,
            MEDIA_CHUNK_SIZE,
            &mut shared,
        );
        pair.deliver_to_client(&shared);
        if i == 2 {
            pair.server.unpublish_notify(MEDIA_STREAM_ID, "cam");
            pair.server.publish_notify(MEDIA_STREAM_ID, "cam");
            pair.drive();
        }
    }
    pair.drive();
    let events = pair.take_client_events();
    let got: Vec<&MediaMessage> = events
        .iter()
        .filter_map(|e| match e {
            ClientEvent::Media(m) => Some(m),
            _ => None,
        })
        .collect();
    assert_eq!(got, sent.iter().collect::<Vec<_>>());
    assert!(events
        .iter()
        .any(status("status", "NetStream.Play.UnpublishNotify")));
    assert!(events
        .iter()
        .any(status("status", "NetStream.Play.PublishNotify")));
    let user_events: Vec<UserControlEvent> = pair
        .s2c
        .controls()
        .into_iter()
        .filter_map(|c| match c {
            ControlMessage::UserControl(u) => Some(u),
            _ => None,
        })
        .collect();
    assert_eq!(
        user_events,
        [
            UserControlEvent::StreamBegin(1),
            UserControlEvent::StreamEof(1),
            UserControlEvent::StreamBegin(1)
        ]
    );
}

#[test]
fn send_media_slow_path_reaches_player() {
    let mut pair = Pair::playing(ServerConfig::default());
    let sent = [
        media(MediaKind::Video, 5, 9000, 1),
        media(MediaKind::Video, 45, 9000, 2),
    ];
    for m in &sent {
        pair.server.send_media(MEDIA_STREAM_ID, m);
    }
    pair.drive();
    let got: Vec<ClientEvent> = pair.take_client_events();
    assert_eq!(
        got,
        sent.iter()
            .cloned()
            .map(ClientEvent::Media)
            .collect::<Vec<_>>()
    );
    // Always type-0 headers on the media csid (two messages, both starting with a fmt-0 chunk).
    assert!(
        pair.s2c
            .messages
            .iter()
            .filter(|m| m.csid == csid::VIDEO)
            .count()
            == 2
    );
}

#[test]
fn play_not_found_status() {
    let mut pair = Pair::new(client_config(ClientMode::Play), ServerConfig::default());
    pair.connect();
    pair.server.play_not_found(MEDIA_STREAM_ID, "cam");
    pair.drive();
    let events = pair.take_client_events();
    assert!(
        events
            .iter()
            .any(status("error", "NetStream.Play.StreamNotFound")),
        "{events:?}"
    );
    assert!(!events.contains(&ClientEvent::PlayStarted));
}

#[test]
fn close_publisher_unpublishes_once_and_player_stops() {
    let mut pair = Pair::publishing(client_config(ClientMode::Publish), ServerConfig::default());
    pair.client.close();
    pair.drive();
    assert_eq!(
        pair.take_server_events(),
        vec![ServerEvent::Unpublish { stream_id: 1 }]
    );

    let mut pair = Pair::playing(ServerConfig::default());
    pair.client.close();
    pair.drive();
    assert_eq!(
        pair.take_server_events(),
        vec![ServerEvent::StopPlay { stream_id: 1 }]
    );
}

#[test]
fn client_answers_ping_and_acknowledges() {
    let config = ServerConfig {
        window_ack_size: 10_000,
        ..ServerConfig::default()
    };
    let mut pair = Pair::playing(config);
    // A ping on a chunk stream the server session does not use.
    let mut ping = BytesMut::new();
    let (t, p) = ControlMessage::UserControl(UserControlEvent::PingRequest(777)).encode();
    encode_type0(9, 0, t, 0, &p, MEDIA_CHUNK_SIZE, &mut ping);
    pair.deliver_to_client(&ping);
    for i in 0..4 {
        let mut shared = BytesMut::new();
        encode_type0(
            csid::VIDEO,
            i * 40,
            9,
            1,
            &[0x17; 8000],
            MEDIA_CHUNK_SIZE,
            &mut shared,
        );
        pair.deliver_to_client(&shared);
    }
    pair.drive();
    let controls = pair.c2s.controls();
    assert!(controls.contains(&ControlMessage::UserControl(
        UserControlEvent::PingResponse(777)
    )));
    let acks: Vec<u32> = controls
        .iter()
        .filter_map(|c| match c {
            ControlMessage::Acknowledgement { sequence_number } => Some(*sequence_number),
            _ => None,
        })
        .collect();
    assert!(acks.len() >= 2, "{acks:?}");
    assert!(acks.windows(2).all(|w| w[1] - w[0] >= 10_000), "{acks:?}");
    let unacked = pair.client.bytes_received() - u64::from(*acks.last().unwrap());
    assert!(unacked < 10_000, "{unacked}");
}

#[test]
fn server_acknowledges_after_window() {
    let config = ServerConfig {
        window_ack_size: 10_000,
        ..ServerConfig::default()
    };
    let mut pair = Pair::publishing(client_config(ClientMode::Publish), config);
    assert!(!pair
        .s2c
        .controls()
        .iter()
        .any(|c| matches!(c, ControlMessage::Acknowledgement { .. })));
    for i in 0..5 {
        pair.client
            .send_media(&media(MediaKind::Video, i * 40, 6000, 1));
        pair.drive();
    }
    let acks: Vec<u32> = pair
        .s2c
        .controls()
        .iter()
        .filter_map(|c| match c {
            ControlMessage::Acknowledgement { sequence_number } => Some(*sequence_number),
            _ => None,
        })
        .collect();
    // ~34 KB received (handshake included) in ~6 KB steps, window 10 KB: acks at ~15.6 KB and
    // ~27.7 KB.
    assert_eq!(acks.len(), 2, "{acks:?}");
    assert!(acks[0] >= 10_000);
    let unacked = pair.server.bytes_received() - u64::from(*acks.last().unwrap());
    assert!(unacked < 10_000, "{unacked}");
    assert!(acks.windows(2).all(|w| w[1] - w[0] >= 10_000), "{acks:?}");
}

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
        assert_eq!(
            server.poll_event(),
            Some(ServerEvent::HandshakeDone { digest: false })
        );
        RawClient {
            server,
            encoder: ChunkEncoder::new(),
            replies,
        }
    }

    fn send(
        &mut self,
        csid: u32,
        type_id: u8,
        stream_id: u32,
        payload: &[u8],
    ) -> Result<(), ServerError> {
        let mut out = BytesMut::new();
        self.encoder
            .encode(csid, 0, type_id, stream_id, payload, &mut out);
        self.server.receive(&out)
    }

    fn command(&mut self, stream_id: u32, values: &[Amf0Value]) -> Result<(), ServerError> {
        self.send(
            3,
            msg_type::COMMAND_AMF0,
            stream_id,
            &amf0::encode_all(values),
        )
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
        raw.command(0, &[s("connect"), n(1.0), obj(&[("app", s("live"))])])
            .unwrap();
        raw.server.accept_connect();
        raw.command(0, &[s("createStream"), n(2.0), Amf0Value::Null])
            .unwrap();
        if publish {
            raw.command(1, &[s("publish"), n(3.0), Amf0Value::Null, s("cam")])
                .unwrap();
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
    Amf0Value::Object(
        props
            .iter()
            .map(|(k, v)| (k.to_string(), v.clone()))
            .collect(),
    )
}

#[test]
fn command_before_connect_is_protocol_error() {
    let mut raw = RawClient::new(ServerConfig::default());
    let err = raw
        .command(0, &[s("createStream"), n(2.0), Amf0Value::Null])
        .unwrap_err();
    assert_eq!(err.kind(), "protocol");
    // The session stays failed.
    assert_eq!(raw.server.receive(&[0]).unwrap_err(), err);
}

#[test]
fn second_connect_is_protocol_error() {
    let mut raw = RawClient::new(ServerConfig::default());
    raw.command(0, &[s("connect"), n(1.0), obj(&[("app", s("live"))])])
        .unwrap();
    let err = raw
        .command(0, &[s("connect"), n(2.0), obj(&[("app", s("live"))])])
        .unwrap_err();
    assert_eq!(err.kind(), "protocol");
}

#[test]
fn malformed_amf_command_is_amf_error() {
    let mut raw = RawClient::new(ServerConfig::default());
    // String marker claiming 5 bytes, only 1 present.
    let err = raw
        .send(3, msg_type::COMMAND_AMF0, 0, &[0x02, 0x00, 0x05, b'c'])
        .unwrap_err();
    assert_eq!(err.kind(), "amf");
    assert!(matches!(err, ServerError::Command(_)));
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
    assert_eq!(
        raw.events(),
        vec![ServerEvent::Connect {
            app: "vod".into(),
            tc_url: None
        }]
    );
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
    assert!(controls.contains(&ControlMessage::UserControl(
        UserControlEvent::PingResponse(42)
    )));
    assert!(
        controls
            .iter()
            .any(|c| matches!(c, ControlMessage::Acknowledgement { .. })),
        "{controls:?}"
    );
    let events = raw.events();
    assert_eq!(events.len(), 1);
    assert!(
        matches!(&events[0], ServerEvent::Media { message, .. } if message.payload[..] == payload[..])
    );

    // An invalid chunk size kills the connection with a chunk error.
    let err = raw.send(2, 1, 0, &0u32.to_be_bytes()).unwrap_err();
    assert_eq!(err.kind(), "chunk");
}

#[test]
fn stream_limits_and_state_errors() {
    let config = ServerConfig {
        max_streams_per_connection: 2,
        ..ServerConfig::default()
    };
    let mut raw = RawClient::connected(config, false);
    raw.command(0, &[s("createStream"), n(5.0), Amf0Value::Null])
        .unwrap();
    raw.command(0, &[s("createStream"), n(6.0), Amf0Value::Null])
        .unwrap();
    let replies = raw.commands();
    assert!(
        matches!(&replies[0], Command::Result { transaction_id, values } if *transaction_id == 5.0 && values[1] == n(2.0))
    );
    assert!(matches!(&replies[1], Command::Error { transaction_id, .. } if *transaction_id == 6.0));

    // Publish on stream 2 then publish again: error status, no second event.
    raw.command(2, &[s("publish"), n(0.0), Amf0Value::Null, s("a")])
        .unwrap();
    raw.command(2, &[s("publish"), n(0.0), Amf0Value::Null, s("b")])
        .unwrap();
    assert_eq!(
        raw.events(),
        vec![ServerEvent::Publish {
            stream_id: 2,
            name: "a".into(),
            publish_type: "live".into()
        }]
    );
    assert!(matches!(&raw.commands()[..], [Command::OnStatus { level, .. }] if level == "error"));

    // deleteStream frees the id; the next createStream reuses it.
    raw.command(0, &[s("deleteStream"), n(0.0), Amf0Value::Null, n(2.0)])
        .unwrap();
    assert_eq!(raw.events(), vec![ServerEvent::Unpublish { stream_id: 2 }]);
    raw.command(0, &[s("createStream"), n(7.0), Amf0Value::Null])
        .unwrap();
    assert!(matches!(&raw.commands()[..], [Command::Result { values, .. }] if values[1] == n(2.0)));

    // Publish on a stream that was never created.
    let err = raw
        .command(9, &[s("publish"), n(0.0), Amf0Value::Null, s("x")])
        .unwrap_err();
    assert_eq!(err.kind(), "protocol");
}

#[test]
fn media_on_non_publishing_stream_is_ignored() {
    let mut raw = RawClient::connected(ServerConfig::default(), false);
    raw.send(7, msg_type::VIDEO, 1, &[0x17, 0, 0, 0, 0])
        .unwrap();
    raw.send(7, msg_type::VIDEO, 0, &[0x17, 0, 0, 0, 0])
        .unwrap();
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
    raw.encoder
        .encode(6, 5000, msg_type::AGGREGATE, 1, &body, &mut out);
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
    let err = raw
        .send(6, msg_type::AGGREGATE, 1, &body[..body.len() - 10])
        .unwrap_err();
    assert_eq!(err.kind(), "protocol");
}

#[test]
fn replies_to_get_stream_length_release_and_fcunpublish() {
    let mut raw = RawClient::connected(ServerConfig::default(), true);
    raw.command(0, &[s("releaseStream"), n(4.0), Amf0Value::Null, s("cam")])
        .unwrap();
    raw.command(
        1,
        &[s("getStreamLength"), n(5.0), Amf0Value::Null, s("cam")],
    )
    .unwrap();
    let replies = raw.commands();
    assert!(
        matches!(&replies[0], Command::Result { transaction_id, .. } if *transaction_id == 4.0)
    );
    assert!(
        matches!(&replies[1], Command::Result { transaction_id, values } if *transaction_id == 5.0 && values[1] == n(0.0))
    );
    // FCUnpublish on stream 0 names the stream; the following deleteStream emits nothing more.
    raw.command(0, &[s("FCUnpublish"), n(6.0), Amf0Value::Null, s("cam")])
        .unwrap();
    raw.command(0, &[s("deleteStream"), n(7.0), Amf0Value::Null, n(1.0)])
        .unwrap();
    assert_eq!(raw.events(), vec![ServerEvent::Unpublish { stream_id: 1 }]);
}

// ---------------------------------------------------------------------------------------------
// Real ffmpeg: a live run (ignored by default; it needs ffmpeg and records the fixture) and a
// replay of the recorded client bytes.
// ---------------------------------------------------------------------------------------------

/// Client-to-server bytes of `ffmpeg ... -c:v libx264 -c:a aac -f flv rtmp://127.0.0.1/live/cam?key=1`
/// (1 s of 160x120 test video and a sine tone), recorded by `ffmpeg_publish_live`.
const FFMPEG_FIXTURE: &str = concat!(
    env!("CARGO_MANIFEST_DIR"),
    "/tests/data/ffmpeg_publish_c2s.bin"
);

/// What a server saw of one publisher: every event, in order.
fn serve_publisher(server: &mut ServerSession, events: &mut Vec<ServerEvent>) {
    while let Some(e) = server.poll_event() {
        match &e {
            ServerEvent::Connect { .. } => server.accept_connect(),
            ServerEvent::Publish { stream_id, .. } => server.accept_publish(*stream_id, "cam"),
            _ => {}
        }
        events.push(e);
    }
}

fn check_ffmpeg_publish(events: &[ServerEvent]) {
    assert_eq!(
        events[0],
        ServerEvent::HandshakeDone { digest: true },
        "ffmpeg uses the digest handshake"
    );
    match &events[1] {
        ServerEvent::Connect {
            app,
            tc_url: Some(tc_url),
        } => {
            assert_eq!(app, "live");
            assert!(
                tc_url.starts_with("rtmp://127.0.0.1:") && tc_url.ends_with("/live"),
                "{tc_url}"
            );
        }
        other => panic!("{other:?}"),
    }
    assert_eq!(
        events[2],
        ServerEvent::Publish {
            stream_id: 1,
            name: "cam?key=1".into(),
            publish_type: "live".into()
        }
    );
    let media: Vec<&MediaMessage> = events
        .iter()
        .filter_map(|e| match e {
            ServerEvent::Media {
                stream_id: 1,
                message,
            } => Some(message),
            _ => None,
        })
        .collect();
    assert_eq!(media[0].kind, MediaKind::Data);
    let first = amf0::decode_all(&media[0].payload, &Amf0Limits::default()).unwrap();
    assert_eq!(first[0].as_str(), Some("@setDataFrame"));
    assert_eq!(first[1].as_str(), Some("onMetaData"));
    let videos = media.iter().filter(|m| m.kind == MediaKind::Video).count();
    let audios = media.iter().filter(|m| m.kind == MediaKind::Audio).count();
    assert!(
        videos >= 10 && audios >= 10,
        "{videos} video, {audios} audio"
    );
    // AVC sequence header first among video messages.
    let first_video = media.iter().find(|m| m.kind == MediaKind::Video).unwrap();
    assert_eq!(&first_video.payload[..2], &[0x17, 0x00]);
    assert_eq!(
        events.last(),
        Some(&ServerEvent::Unpublish { stream_id: 1 })
    );
}

#[test]
fn ffmpeg_publish_replay() {
    let Ok(bytes) = std::fs::read(FFMPEG_FIXTURE) else {
        panic!("missing {FFMPEG_FIXTURE}: run `cargo test -p sluice-media --test session -- --ignored ffmpeg_publish_live`");
    };
    for step in [bytes.len(), 1000, 1] {
        let mut server = ServerSession::new(ServerConfig::default(), [3; 32], 0);
        let mut events = Vec::new();
        for piece in bytes.chunks(step) {
            server.receive(piece).unwrap();
            serve_publisher(&mut server, &mut events);
        }
        check_ffmpeg_publish(&events);
    }
}

#[test]
#[ignore = "needs ffmpeg; records tests/data/ffmpeg_publish_c2s.bin"]
fn ffmpeg_publish_live() {
    use std::io::{Read, Write};
    let listener = std::net::TcpListener::bind("127.0.0.1:0").unwrap();
    let url = format!("rtmp://{}/live/cam?key=1", listener.local_addr().unwrap());
    let mut child = std::process::Command::new("ffmpeg")
        .args([
            "-hide_banner",
            "-loglevel",
            "error",
            "-f",
            "lavfi",
            "-i",
            "testsrc=size=160x120:rate=25",
        ])
        .args([
            "-f",
            "lavfi",
            "-i",
            "sine=frequency=440:sample_rate=44100",
            "-t",
            "1",
        ])
        .args([
            "-c:v",
            "libx264",
            "-preset",
            "ultrafast",
            "-g",
            "25",
            "-c:a",
            "aac",
            "-b:a",
            "32k",
        ])
        .args(["-f", "flv", &url])
        .spawn()
        .expect("ffmpeg");
    let (mut socket, _) = listener.accept().unwrap();
    let mut server = ServerSession::new(ServerConfig::default(), [3; 32], 0);
    let mut events = Vec::new();
    let mut recorded = Vec::new();
    let mut buf = vec![0u8; 65536];
    loop {
        let n = socket.read(&mut buf).unwrap_or(0);
        if n == 0 {
            break;
        }
        recorded.extend_from_slice(&buf[..n]);
        server.receive(&buf[..n]).unwrap();
        serve_publisher(&mut server, &mut events);
        if let Some(out) = server.poll_transmit() {
            socket.write_all(&out).unwrap();
        }
    }
    assert!(child.wait().unwrap().success());
    check_ffmpeg_publish(&events);
    std::fs::create_dir_all(concat!(env!("CARGO_MANIFEST_DIR"), "/tests/data")).unwrap();
    std::fs::write(FFMPEG_FIXTURE, &recorded).unwrap();
}

/// The media of the recorded ffmpeg publish, as the server decoded it.
fn fixture_media() -> Vec<MediaMessage> {
    let bytes = std::fs::read(FFMPEG_FIXTURE).expect("fixture");
    let mut server = ServerSession::new(ServerConfig::default(), [3; 32], 0);
    let mut events = Vec::new();
    server.receive(&bytes).unwrap();
    serve_publisher(&mut server, &mut events);
    events
        .into_iter()
        .filter_map(|e| match e {
            ServerEvent::Media { message, .. } => Some(message),
            _ => None,
        })
        .collect()
}

/// A real ffmpeg player against `accept_play` and shared type-0 media bytes. Skipped when
/// ffmpeg is not installed.
#[test]
fn ffmpeg_play_shared_bytes() {
    use std::io::{Read, Write};
    if std::process::Command::new("ffmpeg")
        .arg("-version")
        .output()
        .is_err()
    {
        eprintln!("ffmpeg not found: skipped");
        return;
    }
    let media = fixture_media();
    let listener = std::net::TcpListener::bind("127.0.0.1:0").unwrap();
    let url = format!("rtmp://{}/live/cam", listener.local_addr().unwrap());
    let child = std::process::Command::new("ffmpeg")
        .args([
            "-hide_banner",
            "-loglevel",
            "error",
            "-i",
            &url,
            "-f",
            "framecrc",
            "-",
        ])
        .stdout(std::process::Stdio::piped())
        .stderr(std::process::Stdio::piped())
        .spawn()
        .expect("ffmpeg");
    let (mut socket, _) = listener.accept().unwrap();
    socket
        .set_read_timeout(Some(std::time::Duration::from_secs(10)))
        .unwrap();
    let mut server = ServerSession::new(ServerConfig::default(), [4; 32], 0);
    let mut events = Vec::new();
    let mut buf = vec![0u8; 65536];
    let mut played = false;
    while !played {
        let n = socket.read(&mut buf).expect("ffmpeg sent nothing");
        assert!(n > 0, "ffmpeg closed early; events {events:?}");
        server.receive(&buf[..n]).unwrap();
        while let Some(e) = server.poll_event() {
            match &e {
                ServerEvent::Connect { .. } => server.accept_connect(),
                ServerEvent::Play {
                    stream_id,
                    name,
                    reset,
                    ..
                } => {
                    assert_eq!((*stream_id, name.as_str()), (MEDIA_STREAM_ID, "cam"));
                    server.accept_play(*stream_id, name, *reset);
                    played = true;
                }
                _ => {}
            }
            events.push(e);
        }
        if let Some(out) = server.poll_transmit() {
            socket.write_all(&out).unwrap();
        }
    }
    // Shared bytes, as the hub would write them, interleaved with the session's own output.
    let mut shared = BytesMut::new();
    for m in &media {
        let csid = match m.kind {
            MediaKind::Audio => csid::AUDIO,
            MediaKind::Video => csid::VIDEO,
            MediaKind::Data => csid::DATA,
        };
        let ty = m.kind.type_id();
        encode_type0(
            csid,
            m.timestamp,
            ty,
            MEDIA_STREAM_ID,
            &m.payload,
            MEDIA_CHUNK_SIZE,
            &mut shared,
        );
    }
    socket.write_all(&shared).unwrap();
    server.unpublish_notify(MEDIA_STREAM_ID, "cam");
    socket.write_all(&server.poll_transmit().unwrap()).unwrap();
    socket.shutdown(std::net::Shutdown::Write).unwrap();
    let output = child.wait_with_output().unwrap();
    let stderr = String::from_utf8_lossy(&output.stderr);
    assert!(output.status.success(), "ffmpeg failed: {stderr}");
    let stdout = String::from_utf8_lossy(&output.stdout);
    let frames = stdout.lines().filter(|l| !l.starts_with('#')).count();
    let videos = media.iter().filter(|m| m.kind == MediaKind::Video).count();
    // Every video frame decoded (audio frames come on top).
    assert!(
        frames >= videos,
        "{frames} frames decoded, {videos} video messages sent; {stderr}"
    );
}
