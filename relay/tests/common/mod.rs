//! Helpers shared by the relay's integration tests: test streams (headers and paced GOPs),
//! endpoints on loopback, frame comparison, raw control-stream access.
#![allow(dead_code)]

use std::net::SocketAddr;
use std::time::Duration;

use bytes::{Bytes, BytesMut};
use sluice_proto::v1::{control_message::Msg, ControlMessage, Hello};
use sluice_relay::codec::{self, FLAG_HEADER, FLAG_KEYFRAME};
use sluice_relay::tls::RelayTls;
use sluice_relay::{Frame, FrameKind, RelayConfig, RelayEndpoint};

pub const TIMEOUT: Duration = Duration::from_secs(10);
/// Time between GOPs of the paced test streams (a live source).
pub const GOP_INTERVAL: Duration = Duration::from_millis(500);

pub fn frame(kind: FrameKind, flags: u8, ts: u32, payload: String) -> Frame {
    Frame { kind, flags, timestamp: ts, payload: Bytes::from(payload) }
}

pub fn headers(stream: &str) -> Vec<Frame> {
    vec![
        frame(FrameKind::Data, FLAG_HEADER, 0, format!("{stream} onMetaData")),
        frame(FrameKind::Video, FLAG_HEADER | FLAG_KEYFRAME, 0, format!("{stream} avcC")),
        frame(FrameKind::Audio, FLAG_HEADER, 0, format!("{stream} asc")),
    ]
}

/// The frames of GOP `g` (without headers): a keyframe, then audio and inter frames.
pub fn gop(stream: &str, g: u32) -> Vec<Frame> {
    let base = g * 1000;
    let mut out = vec![frame(
        FrameKind::Video,
        FLAG_KEYFRAME,
        base,
        format!("{stream} key {g} {}", "k".repeat(5000)),
    )];
    for i in 1..20u32 {
        out.push(frame(FrameKind::Audio, 0, base + i * 40, format!("{stream} audio {g}/{i}")));
        out.push(frame(FrameKind::Video, 0, base + i * 40 + 1, format!("{stream} inter {g}/{i}")));
    }
    out
}

/// What the source sends: headers once, then `gops` GOPs.
pub fn source_frames(stream: &str, gops: u32) -> Vec<Frame> {
    let mut out = headers(stream);
    for g in 0..gops {
        out.extend(gop(stream, g));
    }
    out
}

/// What a subscriber must receive: each GOP stream repeats the headers.
pub fn expected_frames(stream: &str, gops: u32) -> Vec<Frame> {
    let mut out = Vec::new();
    for g in 0..gops {
        out.extend(headers(stream));
        out.extend(gop(stream, g));
    }
    out
}

pub fn localhost() -> SocketAddr {
    "127.0.0.1:0".parse().unwrap()
}

pub fn client(dir: &std::path::Path, node: &str) -> RelayEndpoint {
    let tls = RelayTls::from_dir(dir, node).unwrap();
    RelayEndpoint::bind(localhost(), RelayConfig::new(node, tls)).unwrap()
}

pub async fn read_all(sub: &mut sluice_relay::RelaySubscription) -> Vec<Frame> {
    let mut got = Vec::new();
    loop {
        match tokio::time::timeout(TIMEOUT, sub.next_frame()).await.expect("frame in time") {
            Ok(Some(f)) => got.push(f),
            Ok(None) => return got,
            Err(e) => panic!("subscription failed after {} frames: {e}", got.len()),
        }
    }
}

/// Compares frame lists, reporting the first difference compactly (payloads are large).
#[track_caller]
pub fn assert_frames(got: &[Frame], want: &[Frame]) {
    let brief = |f: &Frame| format!("{:?}/{}/{}", f.kind, f.flags, f.timestamp);
    if let Some(i) = (0..got.len().min(want.len())).find(|&i| got[i] != want[i]) {
        panic!("frame {i} differs: got {} want {}", brief(&got[i]), brief(&want[i]));
    }
    let tail: Vec<String> = got.iter().rev().take(3).map(brief).collect();
    assert_eq!(got.len(), want.len(), "frame count (last received: {tail:?})");
}

pub fn close_code(e: quinn::ConnectionError) -> u64 {
    match e {
        quinn::ConnectionError::ApplicationClosed(c) => c.error_code.into_inner(),
        other => panic!("expected an application close, got {other:?}"),
    }
}

/// Opens a raw QUIC connection and writes a `Hello` with `version` and the endpoint's own
/// node id (which its certificate names) on the control stream.
pub async fn raw_hello(
    edge: &RelayEndpoint,
    addr: SocketAddr,
    version: u32,
) -> (quinn::Connection, quinn::SendStream, quinn::RecvStream) {
    let conn = edge.connect_quic(addr, "origin-a").await.unwrap();
    let (mut send, recv) = conn.open_bi().await.unwrap();
    let mut out = BytesMut::new();
    let hello = Hello { version, node_id: edge.config().node_id.clone(), serves_requests: false };
    codec::encode_control(&ControlMessage { msg: Some(Msg::Hello(hello)) }, &mut out);
    send.write_all(&out).await.unwrap();
    (conn, send, recv)
}

/// Reads one control message from a raw control stream.
pub async fn read_control(recv: &mut quinn::RecvStream, buf: &mut BytesMut) -> ControlMessage {
    loop {
        match codec::decode_control(buf) {
            Ok(m) => return m,
            Err(codec::CodecError::Short) => {}
            Err(e) => panic!("{e}"),
        }
        let chunk = tokio::time::timeout(TIMEOUT, recv.read_chunk(1024, true))
            .await
            .expect("control message in time")
            .unwrap()
            .expect("control stream open");
        buf.extend_from_slice(&chunk.bytes);
    }
}

/// Writes one control message on a raw control stream.
pub async fn write_control(send: &mut quinn::SendStream, msg: Msg) {
    let mut out = BytesMut::new();
    codec::encode_control(&ControlMessage { msg: Some(msg) }, &mut out);
    send.write_all(&out).await.unwrap();
}
