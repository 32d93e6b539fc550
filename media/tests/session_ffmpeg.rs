//! The RTMP server session against what real ffmpeg sends and plays: a recorded ffmpeg publish
//! replayed whole, in pieces and byte by byte, and a real ffmpeg player fed shared media bytes.
//! Without ffmpeg the player test fails; see `deps` for the developers' opt-out.

mod deps;

use bytes::BytesMut;
use sluice_media::amf0::{self, Amf0Limits};
use sluice_media::frame::{MediaKind, MediaMessage};
use sluice_media::rtmp::chunk::encode_type0;
use sluice_media::rtmp::csid;
use sluice_media::rtmp::server::{
    ServerConfig, ServerEvent, ServerSession, MEDIA_CHUNK_SIZE, MEDIA_STREAM_ID,
};

// ---------------------------------------------------------------------------------------------
// Real ffmpeg: a live run (ignored by default; it needs ffmpeg and records the fixture) and a
// replay of the recorded client bytes.
// ---------------------------------------------------------------------------------------------

/// Client-to-server bytes of `ffmpeg ... -c:v libx264 -c:a aac -f flv rtmp://127.0.0.1/live/cam?key=1`
/// (1 s of 160x120 test video and a sine tone), recorded by `ffmpeg_publish_live`.
const FFMPEG_FIXTURE: &str =
    concat!(env!("CARGO_MANIFEST_DIR"), "/tests/data/ffmpeg_publish_c2s.bin");

/// Audio messages in the recording: the AAC sequence header and its frames.
const RECORDED_AUDIO_MESSAGES: usize = 46;

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

/// Check what the server saw of ffmpeg's publish; `audio_messages` is the exact number of audio
/// messages (AAC sequence header and frames) when known: the recording's is fixed, a live
/// encode's depends on the ffmpeg version.
fn check_ffmpeg_publish(events: &[ServerEvent], audio_messages: Option<usize>) {
    assert_eq!(
        events[0],
        ServerEvent::HandshakeDone { digest: true },
        "ffmpeg uses the digest handshake"
    );
    match &events[1] {
        ServerEvent::Connect { app, tc_url: Some(tc_url) } => {
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
            ServerEvent::Media { stream_id: 1, message } => Some(message),
            _ => None,
        })
        .collect();
    assert_eq!(media[0].kind, MediaKind::Data);
    let first = amf0::decode_all(&media[0].payload, &Amf0Limits::default()).unwrap();
    assert_eq!(first[0].as_str(), Some("@setDataFrame"));
    assert_eq!(first[1].as_str(), Some("onMetaData"));
    // 1 s at 25 fps: the AVC sequence header, then exactly 25 coded frames (AVC packet type 1),
    // then ffmpeg's end of sequence.
    let video: Vec<&&MediaMessage> = media.iter().filter(|m| m.kind == MediaKind::Video).collect();
    assert_eq!(&video[0].payload[..2], &[0x17, 0x00], "AVC sequence header first");
    let coded = video.iter().filter(|m| m.payload[1] == 1).count();
    assert_eq!(coded, 25, "coded video frames of 1 s at 25 fps");
    assert_eq!(video.len(), 27, "sequence header + 25 frames + end of sequence");
    let audios = media.iter().filter(|m| m.kind == MediaKind::Audio).count();
    match audio_messages {
        Some(n) => assert_eq!(audios, n, "audio messages"),
        None => assert!(audios > 0, "no audio"),
    }
    assert_eq!(events.last(), Some(&ServerEvent::Unpublish { stream_id: 1 }));
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
        check_ffmpeg_publish(&events, Some(RECORDED_AUDIO_MESSAGES));
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
        .args(["-f", "lavfi", "-i", "sine=frequency=440:sample_rate=44100", "-t", "1"])
        .args(["-c:v", "libx264", "-preset", "ultrafast", "-g", "25", "-c:a", "aac", "-b:a", "32k"])
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
    check_ffmpeg_publish(&events, None);
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

/// A real ffmpeg player against `accept_play` and shared type-0 media bytes.
#[test]
fn ffmpeg_play_shared_bytes() {
    use std::io::{Read, Write};
    let Some(ffmpeg) = deps::Dep::Ffmpeg.require("ffmpeg_play_shared_bytes") else { return };
    let media = fixture_media();
    let listener = std::net::TcpListener::bind("127.0.0.1:0").unwrap();
    let url = format!("rtmp://{}/live/cam", listener.local_addr().unwrap());
    let child = std::process::Command::new(ffmpeg)
        .args(["-hide_banner", "-loglevel", "error", "-i", &url])
        .args(["-map", "0:v:0", "-map", "0:a:0", "-f", "framecrc", "-"])
        .stdout(std::process::Stdio::piped())
        .stderr(std::process::Stdio::piped())
        .spawn()
        .expect("ffmpeg");
    let (mut socket, _) = listener.accept().unwrap();
    socket.set_read_timeout(Some(std::time::Duration::from_secs(10))).unwrap();
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
                ServerEvent::Play { stream_id, name, reset, .. } => {
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
    // framecrc lines are `stream, dts, pts, duration, size, hash`; the video is output stream 0
    // (mapped first). Every coded video frame sent (AVC packet type 1) decodes to one frame.
    let frames = stdout.lines().filter(|l| l.starts_with("0,")).count();
    let coded =
        media.iter().filter(|m| m.kind == MediaKind::Video && m.payload.get(1) == Some(&1)).count();
    assert_eq!(coded, 25, "coded video frames in the recording");
    assert_eq!(frames, coded, "video frames decoded of {coded} sent; {stderr}\n{stdout}");
}
