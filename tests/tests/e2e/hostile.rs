//! Hostile RTMP input against a server with a healthy publisher and player: every bad
//! connection is closed and counted, nothing else is disturbed, memory stays bounded.

use std::io::{ErrorKind, Read, Write};
use std::net::{SocketAddr, TcpStream};
use std::time::{Duration, Instant};

use bytes::BytesMut;
use sluice_media::amf0::{Amf0Limits, Amf0Value};
use sluice_media::rtmp::chunk::{encode_type0, ChunkDecoder, ChunkLimits, MAX_CHUNK_SIZE};
use sluice_media::rtmp::command::{connect_request, Command};
use sluice_media::rtmp::control::ControlMessage;
use sluice_media::rtmp::handshake::HANDSHAKE_SIZE;
use sluice_media::rtmp::{csid, msg_type};
use sluice_tests::process::wait_for;
use sluice_tests::replay::Replay;
use sluice_tests::rtmp::{raw_connect, raw_handshaken};
use sluice_tests::viewer::Watcher;
use sluice_tests::{h264_aac, secs, Origin};

const CLOSE_TIMEOUT: Duration = Duration::from_secs(5);

/// Opens a connection and sends one hostile byte sequence.
type Case = fn(SocketAddr) -> TcpStream;

#[test]
fn hostile_connections_are_closed_without_disturbing_viewers() {
    let origin = Origin::start(&[
        "--max-message-size",
        "1048576",
        "--handshake-timeout",
        "5s",
        "--idle-timeout",
        "30s",
    ]);
    let mut publisher = Replay::start(origin.rtmp, "live", "healthy", &h264_aac().path);
    wait_for(secs(10), || origin.stream_info("live", "healthy")).expect("healthy stream is live");
    let player = Watcher::start(origin.rtmp, "live", "healthy");
    assert!(player.wait_video(30, secs(20)) >= 30, "healthy player started");
    let mark = player.mark();

    let before = origin.metrics();
    let errors_before = before.value("sluice_connection_errors_total", &[]);
    let addr = origin.rtmp;
    let mut failures = Vec::new();
    let mut frames = player.video_frames();
    let mut closing_cases = 0;

    let cases: Vec<(&str, bool, Case)> = vec![
        ("garbage instead of a handshake", true, garbage_handshake),
        ("valid handshake then garbage chunks", true, garbage_chunks),
        ("16 MiB - 1 message header above --max-message-size", true, oversized_message),
        ("Set Chunk Size 0", true, |a| set_chunk_size(a, 0)),
        ("Set Chunk Size with the top bit set", true, |a| set_chunk_size(a, 0x8000_1000)),
        ("chunk stream id flood", true, csid_flood),
    ];
    for (name, must_close, case) in cases {
        let stream = case(addr);
        if must_close {
            closing_cases += 1;
            if let Err(e) = expect_closed(stream, CLOSE_TIMEOUT) {
                failures.push(format!("{name}: {e}"));
            }
        }
        let now = player.wait_video(frames + 10, secs(5));
        if now < frames + 10 {
            failures
                .push(format!("healthy player stalled during '{name}' ({frames} -> {now} frames)"));
        }
        frames = now;
    }

    // Truncated chunks, then the client disconnects: the server must just clean up.
    truncated_then_disconnect(addr);

    // Set Chunk Size 0x7FFFFFFF is legal: a connect sent afterwards in tiny pieces succeeds and
    // the connection stays open.
    if let Err(e) = huge_chunk_size_then_connect_in_pieces(addr) {
        failures.push(format!("Set Chunk Size 0x7FFFFFFF + connect in pieces: {e}"));
    }

    let now = player.wait_video(frames + 30, secs(5));
    assert!(now >= frames + 30, "healthy player stalled at the end ({frames} -> {now})");
    let after = origin.metrics();
    let errors = after.value("sluice_connection_errors_total", &[]) - errors_before;
    assert!(
        errors >= closing_cases as f64,
        "sluice_connection_errors_total grew by {errors}, expected >= {closing_cases}: {:?}",
        after
            .samples
            .iter()
            .filter(|s| s.name == "sluice_connection_errors_total")
            .collect::<Vec<_>>()
    );
    assert!(
        after.value("sluice_connection_errors_total", &[("kind", "handshake")]) >= 1.0,
        "handshake errors counted"
    );
    assert!(
        after.value("sluice_connection_errors_total", &[("kind", "chunk")]) >= 1.0,
        "chunk errors counted"
    );
    let rss = origin.rss_kib().expect("origin RSS");
    assert!(rss < 200 * 1024, "origin RSS is {rss} KiB");
    assert!(failures.is_empty(), "failures:\n{}", failures.join("\n"));
    // What the healthy viewer saw while the hostile connections came and went: no wall-clock
    // gap over 1 s, no frame lost, exactly the publisher's frames, all decodable.
    let record = player.stop();
    publisher.stop().expect("the publisher was never disturbed");
    let report = record.report_from(mark);
    println!("healthy viewer during the hostile cases: {report:?}");
    let problems = record.interruptions(mark, secs(1), 0);
    assert!(problems.is_empty(), "healthy viewer: {problems:?} ({report:?})");
    let (differ, missing) = record.differences(&publisher.sent());
    assert!(
        differ.is_empty() && missing.is_empty(),
        "frames differ {differ:?}, missing {missing:?}"
    );
    let errors = record.decode_errors(origin.dir().path(), "healthy");
    assert!(errors.is_empty(), "the healthy viewer's stream does not decode: {errors:#?}");
}

fn garbage_handshake(addr: SocketAddr) -> TcpStream {
    let mut s = raw_connect(addr);
    let mut bytes = vec![0xFFu8];
    bytes.extend((0..HANDSHAKE_SIZE).map(|_| rand::random::<u8>()));
    let _ = s.write_all(&bytes);
    s
}

fn garbage_chunks(addr: SocketAddr) -> TcpStream {
    let mut s = raw_handshaken(addr);
    // A type-3 header on a chunk stream never seen, then noise.
    let mut bytes = vec![0xC5u8];
    bytes.extend((0..4096).map(|_| rand::random::<u8>()));
    let _ = s.write_all(&bytes);
    s
}

fn oversized_message(addr: SocketAddr) -> TcpStream {
    let mut s = raw_handshaken(addr);
    // Type-0 header on csid 3 announcing a 0xFFFFFF-byte command message, then its first chunk.
    let mut bytes = vec![0x03, 0, 0, 0, 0xFF, 0xFF, 0xFF, msg_type::COMMAND_AMF0, 0, 0, 0, 0];
    bytes.extend(std::iter::repeat_n(0x05u8, 128));
    let _ = s.write_all(&bytes);
    s
}

fn set_chunk_size_bytes(size: u32) -> BytesMut {
    let (type_id, payload) = ControlMessage::SetChunkSize(size).encode();
    let mut out = BytesMut::new();
    encode_type0(csid::CONTROL, 0, type_id, 0, &payload, 128, &mut out);
    out
}

fn set_chunk_size(addr: SocketAddr, size: u32) -> TcpStream {
    let mut s = raw_handshaken(addr);
    let _ = s.write_all(&set_chunk_size_bytes(size));
    s
}

fn csid_flood(addr: SocketAddr) -> TcpStream {
    let mut s = raw_handshaken(addr);
    let payload = vec![0u8; 1000];
    for id in 64u32..5064 {
        let mut out = BytesMut::new();
        encode_type0(id, 0, msg_type::VIDEO, 1, &payload, 128, &mut out);
        let basic = if id < 320 { 2 } else { 3 };
        // Only the first chunk: every chunk stream holds a partial message.
        if s.write_all(&out[..basic + 11 + 128]).is_err() {
            break;
        }
    }
    s
}

fn truncated_then_disconnect(addr: SocketAddr) {
    let mut s = raw_handshaken(addr);
    let mut out = BytesMut::new();
    encode_type0(
        csid::COMMAND,
        0,
        msg_type::COMMAND_AMF0,
        0,
        &connect_request(1.0, "live", "rtmp://x/live"),
        128,
        &mut out,
    );
    let _ = s.write_all(&out[..out.len() / 2]);
    std::thread::sleep(Duration::from_millis(200));
    drop(s);
}

fn huge_chunk_size_then_connect_in_pieces(addr: SocketAddr) -> Result<(), String> {
    let mut s = raw_handshaken(addr);
    let mut bytes = set_chunk_size_bytes(MAX_CHUNK_SIZE);
    let tc_url = format!("rtmp://{addr}/live");
    encode_type0(
        csid::COMMAND,
        0,
        msg_type::COMMAND_AMF0,
        0,
        &connect_request(1.0, "live", &tc_url),
        MAX_CHUNK_SIZE,
        &mut bytes,
    );
    for piece in bytes.chunks(3) {
        s.write_all(piece).map_err(|e| format!("write: {e}"))?;
        std::thread::sleep(Duration::from_millis(5));
    }
    // Read the server's answer: control messages, then _result(NetConnection.Connect.Success).
    let mut decoder = ChunkDecoder::new(ChunkLimits::default());
    let mut buf = [0u8; 8192];
    let deadline = Instant::now() + secs(5);
    s.set_read_timeout(Some(Duration::from_millis(200))).unwrap();
    let mut connected = false;
    while !connected && Instant::now() < deadline {
        match s.read(&mut buf) {
            Ok(0) => return Err("server closed the connection".into()),
            Ok(n) => decoder.push(&buf[..n]),
            Err(e) if matches!(e.kind(), ErrorKind::WouldBlock | ErrorKind::TimedOut) => continue,
            Err(e) => return Err(format!("read: {e}")),
        }
        while let Some(msg) =
            decoder.next_message().map_err(|e| format!("server sent bad chunks: {e}"))?
        {
            match msg.type_id {
                msg_type::SET_CHUNK_SIZE => {
                    if let Ok(ControlMessage::SetChunkSize(n)) =
                        ControlMessage::decode(msg.type_id, &msg.payload)
                    {
                        decoder.set_chunk_size(n).map_err(|e| format!("server chunk size: {e}"))?;
                    }
                }
                msg_type::COMMAND_AMF0 => {
                    match Command::parse(&msg.payload, &Amf0Limits::default()) {
                        Ok(Command::Result { values, .. }) => {
                            let code = values.iter().find_map(|v| {
                                v.get("code").and_then(Amf0Value::as_str).map(str::to_string)
                            });
                            if code.as_deref() != Some("NetConnection.Connect.Success") {
                                return Err(format!("connect answered with {values:?}"));
                            }
                            connected = true;
                        }
                        Ok(Command::Error { values, .. }) => {
                            return Err(format!("connect refused: {values:?}"))
                        }
                        _ => {}
                    }
                }
                _ => {}
            }
        }
    }
    if !connected {
        return Err("no connect _result within 5 s".into());
    }
    // The connection stays open.
    s.set_read_timeout(Some(secs(2))).unwrap();
    match s.read(&mut buf) {
        Ok(0) => Err("server closed the connection after connect".into()),
        Err(e) if matches!(e.kind(), ErrorKind::ConnectionReset) => {
            Err("server reset the connection after connect".into())
        }
        _ => Ok(()),
    }
}

/// Read until the server closes the connection (EOF or reset), discarding data.
fn expect_closed(mut s: TcpStream, timeout: Duration) -> Result<Duration, String> {
    let start = Instant::now();
    let mut buf = [0u8; 16 * 1024];
    s.set_read_timeout(Some(Duration::from_millis(200))).unwrap();
    while start.elapsed() < timeout {
        match s.read(&mut buf) {
            Ok(0) => return Ok(start.elapsed()),
            Ok(_) => {}
            Err(e) if matches!(e.kind(), ErrorKind::WouldBlock | ErrorKind::TimedOut) => {}
            Err(_) => return Ok(start.elapsed()),
        }
    }
    Err(format!("connection still open after {timeout:?}"))
}
