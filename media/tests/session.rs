//! In-memory tests of the RTMP server and client sessions, through a [`Pair`]
//! (`session_support/pair.rs`). Raw chunks from a hostile client: `session_raw.rs`; real ffmpeg:
//! `session_ffmpeg.rs`.

use bytes::BytesMut;
use sluice_media::amf0::{self, Amf0Limits, Amf0Value};
use sluice_media::frame::{MediaKind, MediaMessage};
use sluice_media::rtmp::chunk::encode_type0;
use sluice_media::rtmp::client::{ClientConfig, ClientEvent, ClientMode};
use sluice_media::rtmp::command::Command;
use sluice_media::rtmp::control::{ControlMessage, UserControlEvent};
use sluice_media::rtmp::server::{ServerConfig, ServerEvent, MEDIA_CHUNK_SIZE, MEDIA_STREAM_ID};
use sluice_media::rtmp::{csid, msg_type};

#[path = "session_support/pair.rs"]
mod pair;
mod session_support;
use pair::{client_config, media, status, Pair};

fn publish_flow(client: ClientConfig) {
    let mut pair = Pair::new(client, ServerConfig::default());
    let events = pair.connect();
    assert_eq!(events[0], ServerEvent::HandshakeDone { digest: false });
    assert_eq!(
        events[1],
        ServerEvent::Connect { app: "live".into(), tc_url: Some("rtmp://127.0.0.1/live".into()) }
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
    assert!(events.iter().any(status("status", "NetStream.Publish.Start")), "{events:?}");
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
            ServerEvent::Media { stream_id: MEDIA_STREAM_ID, message } => message,
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
    publish_flow(ClientConfig { chunk_size: Some(60_000), ..client_config(ClientMode::Publish) });
}

#[test]
fn publish_flow_digest_handshake() {
    let mut pair = Pair::new(
        ClientConfig { digest_handshake: true, ..client_config(ClientMode::Publish) },
        ServerConfig::default(),
    );
    let events = pair.connect();
    assert_eq!(events[0], ServerEvent::HandshakeDone { digest: true });
    pair.server.accept_publish(MEDIA_STREAM_ID, "cam");
    pair.drive();
    assert!(pair.take_client_events().contains(&ClientEvent::PublishStarted));
}

#[test]
fn bytes_fed_one_at_a_time() {
    let mut pair = Pair::new(client_config(ClientMode::Publish), ServerConfig::default());
    pair.byte_by_byte = true;
    pair.connect();
    pair.server.accept_publish(MEDIA_STREAM_ID, "cam");
    pair.drive();
    assert!(pair.take_client_events().contains(&ClientEvent::PublishStarted));
    let m = media(MediaKind::Video, 0x0200_0000, 10_000, 3);
    pair.client.send_media(&m);
    pair.drive();
    assert_eq!(pair.take_server_events(), vec![ServerEvent::Media { stream_id: 1, message: m }]);
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
        ControlMessage::SetPeerBandwidth { size: 2_500_000, limit_type: 2 }
    );
    match Command::parse(&first[3].payload, &limits).unwrap() {
        Command::Result { transaction_id, values } => {
            assert_eq!(transaction_id, 1.0);
            assert_eq!(
                values[1].get("code").and_then(Amf0Value::as_str),
                Some("NetConnection.Connect.Success")
            );
        }
        other => panic!("{other:?}"),
    }
    assert!(pair.s2c.messages.iter().all(|m| m.csid == csid::CONTROL || m.csid == csid::COMMAND));
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
        vec![ClientEvent::CommandError { description: "no such app".into() }]
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
            ServerEvent::BufferLength { stream_id: MEDIA_STREAM_ID, buffer_ms: 1000 },
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
    // No onStatus data message (NetStream.Data.Start): ffmpeg would make it a data stream.
    assert_eq!(codes, ["NetStream.Play.Reset", "NetStream.Play.Start"]);
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
    assert!(events.iter().any(status("status", "NetStream.Play.UnpublishNotify")));
    assert!(events.iter().any(status("status", "NetStream.Play.PublishNotify")));
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
    let sent = [media(MediaKind::Video, 5, 9000, 1), media(MediaKind::Video, 45, 9000, 2)];
    for m in &sent {
        pair.server.send_media(MEDIA_STREAM_ID, m);
    }
    pair.drive();
    let got: Vec<ClientEvent> = pair.take_client_events();
    assert_eq!(got, sent.iter().cloned().map(ClientEvent::Media).collect::<Vec<_>>());
    // Always type-0 headers on the media csid (two messages, both starting with a fmt-0 chunk).
    assert!(pair.s2c.messages.iter().filter(|m| m.csid == csid::VIDEO).count() == 2);
}

#[test]
fn play_not_found_status() {
    let mut pair = Pair::new(client_config(ClientMode::Play), ServerConfig::default());
    pair.connect();
    pair.server.play_not_found(MEDIA_STREAM_ID, "cam");
    pair.drive();
    let events = pair.take_client_events();
    assert!(events.iter().any(status("error", "NetStream.Play.StreamNotFound")), "{events:?}");
    assert!(!events.contains(&ClientEvent::PlayStarted));
}

#[test]
fn close_publisher_unpublishes_once_and_player_stops() {
    let mut pair = Pair::publishing(client_config(ClientMode::Publish), ServerConfig::default());
    pair.client.close();
    pair.drive();
    assert_eq!(pair.take_server_events(), vec![ServerEvent::Unpublish { stream_id: 1 }]);

    let mut pair = Pair::playing(ServerConfig::default());
    pair.client.close();
    pair.drive();
    assert_eq!(pair.take_server_events(), vec![ServerEvent::StopPlay { stream_id: 1 }]);
}

#[test]
fn client_answers_ping_and_acknowledges() {
    let config = ServerConfig { window_ack_size: 10_000, ..ServerConfig::default() };
    let mut pair = Pair::playing(config);
    // A ping on a chunk stream the server session does not use.
    let mut ping = BytesMut::new();
    let (t, p) = ControlMessage::UserControl(UserControlEvent::PingRequest(777)).encode();
    encode_type0(9, 0, t, 0, &p, MEDIA_CHUNK_SIZE, &mut ping);
    pair.deliver_to_client(&ping);
    for i in 0..4 {
        let mut shared = BytesMut::new();
        encode_type0(csid::VIDEO, i * 40, 9, 1, &[0x17; 8000], MEDIA_CHUNK_SIZE, &mut shared);
        pair.deliver_to_client(&shared);
    }
    pair.drive();
    let controls = pair.c2s.controls();
    assert!(controls.contains(&ControlMessage::UserControl(UserControlEvent::PingResponse(777))));
    let acks: Vec<u32> = controls
        .iter()
        .filter_map(|c| match c {
            ControlMessage::Acknowledgement { sequence_number } => Some(*sequence_number),
            _ => None,
        })
        .collect();
    // ~32 KB of media (and the session's own messages) with a 10 KB window: two acks.
    assert_eq!(acks.len(), 2, "{acks:?}");
    assert!(acks.windows(2).all(|w| w[1] - w[0] >= 10_000), "{acks:?}");
    let unacked = pair.client.bytes_received() - u64::from(*acks.last().unwrap());
    assert!(unacked < 10_000, "{unacked}");
}

#[test]
fn server_acknowledges_after_window() {
    let config = ServerConfig { window_ack_size: 10_000, ..ServerConfig::default() };
    let mut pair = Pair::publishing(client_config(ClientMode::Publish), config);
    assert!(!pair
        .s2c
        .controls()
        .iter()
        .any(|c| matches!(c, ControlMessage::Acknowledgement { .. })));
    for i in 0..5 {
        pair.client.send_media(&media(MediaKind::Video, i * 40, 6000, 1));
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
