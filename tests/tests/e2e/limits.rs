//! Every limit flag crossed for real: what the client sees (RTMP status, closed connection,
//! HTTP status) and what /metrics counts. `--max-connections` is in flood.rs.

use std::io::Write;
use std::net::TcpStream;
use std::time::{Duration, Instant};

use bytes::{Bytes, BytesMut};
use sluice_media::frame::{MediaKind, MediaMessage};
use sluice_media::rtmp::chunk::encode_type0;
use sluice_media::rtmp::client::ClientMode;
use sluice_media::rtmp::msg_type;
use sluice_tests::process::wait_for;
use sluice_tests::replay::Replay;
use sluice_tests::rtmp::{raw_handshaken, RtmpClient};
use sluice_tests::viewer::Watcher;
use sluice_tests::{h264_aac, secs, Origin};

fn publish(origin: &Origin, name: &str) -> RtmpClient {
    RtmpClient::connect(origin.rtmp, "live", name, ClientMode::Publish).expect("connect")
}

/// Wait until the server closes `client`'s connection; returns how long that took.
fn closed_within(client: &mut RtmpClient, timeout: Duration) -> Option<Duration> {
    let start = Instant::now();
    while start.elapsed() < timeout {
        let _ = client.drain_for(Duration::from_millis(50));
        if client.is_eof() {
            return Some(start.elapsed());
        }
    }
    None
}

fn errors(origin: &Origin, kind: &str) -> f64 {
    origin.metrics().value("sluice_connection_errors_total", &[("kind", kind)])
}

#[test]
fn max_streams_refuses_one_more_publisher() {
    let origin = Origin::start(&["--max-streams", "2"]);
    let mut a = publish(&origin, "a");
    a.expect_status("NetStream.Publish.Start", secs(10)).expect("first stream");
    let mut b = publish(&origin, "b");
    b.expect_status("NetStream.Publish.Start", secs(10)).expect("second stream");
    let mut c = publish(&origin, "c");
    let (level, desc) =
        c.expect_status("NetStream.Publish.Rejected", secs(10)).expect("a third stream is refused");
    assert_eq!(level, "error");
    assert!(desc.contains("maximum of 2 live streams"), "description: {desc}");
    let m = origin.metrics();
    assert_eq!(m.value("sluice_publishes_rejected_total", &[]), 1.0);
    assert_eq!(m.value("sluice_streams", &[]), 2.0);
    // A freed slot is usable again.
    a.close();
    wait_for(secs(10), || (origin.metrics().value("sluice_streams", &[]) == 1.0).then_some(()))
        .expect("the first stream ended");
    let mut d = publish(&origin, "d");
    d.expect_status("NetStream.Publish.Start", secs(10)).expect("a freed slot is reused");
}

#[test]
fn max_viewers_per_stream_refuses_rtmp_and_http_flv_viewers() {
    let origin = Origin::start(&["--max-viewers-per-stream", "2"]);
    let _publisher = Replay::start(origin.rtmp, "live", "cap", &h264_aac().path);
    let first = Watcher::start(origin.rtmp, "live", "cap");
    let second = Watcher::start(origin.rtmp, "live", "cap");
    for w in [&first, &second] {
        assert!(w.wait_video(30, secs(20)) >= 30, "admitted viewers play");
    }
    let mut third = RtmpClient::connect(origin.rtmp, "live", "cap", ClientMode::Play).unwrap();
    let (level, desc) = third
        .expect_status("NetStream.Play.Failed", secs(10))
        .expect("a third RTMP viewer is refused");
    assert_eq!(level, "error");
    assert!(desc.contains("maximum of 2 viewers"), "description: {desc}");
    let resp = origin.get("/live/cap.flv");
    assert_eq!(resp.status, 503, "HTTP-FLV past the viewer cap: {}", resp.text());
    assert!(resp.text().contains("maximum of 2 viewers"), "body: {}", resp.text());
    let m = origin.metrics();
    assert_eq!(m.value("sluice_viewers_rejected_total", &[]), 2.0);
    assert_eq!(m.value("sluice_viewers", &[("protocol", "rtmp")]), 2.0);
    // The admitted viewers were not disturbed; another stream has its own allowance.
    let mark = first.mark();
    assert!(first.wait_video(first.video_frames() + 30, secs(10)) > 0);
    let record = first.stop();
    assert!(record.interruptions(mark, secs(1), 0).is_empty(), "{:?}", record.report_from(mark));
    let _other = Replay::start(origin.rtmp, "live", "other", &h264_aac().path);
    let other = Watcher::start(origin.rtmp, "live", "other");
    assert!(other.wait_video(10, secs(20)) >= 10, "another stream admits viewers");
    // A place freed by a viewer leaving is taken again.
    drop(second);
    wait_for(secs(10), || {
        let mut c = RtmpClient::connect(origin.rtmp, "live", "cap", ClientMode::Play).ok()?;
        c.expect_status("NetStream.Play.Start", secs(5)).ok()
    })
    .expect("a freed viewer place is reused");
}

/// Viewers filling an origin's per-stream cap never keep an edge out: the edge's relay
/// subscription is not a viewer, and the edge's own viewers count on the edge.
#[test]
fn viewers_filling_the_per_stream_cap_do_not_keep_an_edge_out() {
    let c = sluice_tests::cluster::TestCluster::new("capedge", &["origin-v", "edge-v"]);
    let origin = c.origin("origin-v", &["--max-viewers-per-stream", "2"]);
    let edge = c.edge("edge-v", &[]);
    let _publisher = Replay::start(origin.rtmp, "live", "full", &h264_aac().path);
    let direct: Vec<Watcher> =
        (0..2).map(|_| Watcher::start(origin.rtmp, "live", "full")).collect();
    for w in &direct {
        assert!(w.wait_video(10, secs(20)) >= 10, "the origin's own viewers play");
    }
    let mut third = RtmpClient::connect(origin.rtmp, "live", "full", ClientMode::Play).unwrap();
    third.expect_status("NetStream.Play.Failed", secs(10)).expect("the origin is full");
    // The edge subscribes over the relay anyway, and serves more viewers than the origin's cap.
    wait_for(secs(15), || edge.stream_info("live", "full")).expect("the edge lists the stream");
    let on_edge: Vec<Watcher> = (0..3).map(|_| Watcher::start(edge.rtmp, "live", "full")).collect();
    for w in &on_edge {
        assert!(w.wait_video(10, secs(30)) >= 10, "edge viewers play past the origin's cap");
    }
    let m = origin.metrics();
    assert_eq!(m.value("sluice_viewers", &[("protocol", "rtmp")]), 2.0, "still 2 direct viewers");
    assert_eq!(m.value("sluice_viewers_rejected_total", &[]), 1.0, "only the third was refused");
}

/// A GOP (2 s of 720p) larger than `--stream-buffer` is not cached: a viewer joining
/// mid-GOP gets no backlog and starts at the next keyframe; with the default buffer it starts
/// at once from the cached keyframe.
#[test]
fn stream_buffer_smaller_than_a_gop_disables_the_gop_cache() {
    for (buffer, cached) in [("64KiB", false), ("16MiB", true)] {
        let origin = Origin::start(&["--stream-buffer", buffer]);
        let publisher = Replay::start(origin.rtmp, "live", "buf", &h264_aac().path);
        // Join in the middle of a GOP (keyframes every 2000 ms).
        let joined_at = wait_for(secs(20), || {
            let last =
                publisher.sent().iter().rev().find(|s| s.kind == MediaKind::Video)?.timestamp;
            (last > 2000 && (700..1300).contains(&(last % 2000))).then_some(last)
        })
        .expect("the publisher reaches the middle of a GOP");
        let viewer = Watcher::start(origin.rtmp, "live", "buf");
        assert!(viewer.wait_video(10, secs(20)) >= 10, "{buffer}: the viewer plays");
        let record = viewer.stop();
        let first = record.messages.iter().find(|m| m.is_frame()).unwrap();
        assert!(first.keyframe, "{buffer}: the first frame is a keyframe");
        if cached {
            assert!(
                first.timestamp + 500 < joined_at,
                "{buffer}: started at {} ms, joined at {joined_at} ms: no GOP cache",
                first.timestamp
            );
        } else {
            assert!(
                first.timestamp > joined_at,
                "{buffer}: started at {} ms, joined at {joined_at} ms: frames older than the \
                 buffer were served",
                first.timestamp
            );
        }
        let rss = origin.rss_kib().unwrap();
        println!(
            "--stream-buffer {buffer}: first frame {} ms, joined {joined_at} ms, RSS {rss} KiB",
            first.timestamp
        );
    }
}

/// Connect, finish the handshake, connect as a publisher, then write raw chunks.
fn chunk_message(csid: u32, len: usize) -> BytesMut {
    let mut out = BytesMut::new();
    let payload = vec![0x27u8; len];
    encode_type0(csid, 0, msg_type::VIDEO, 1, &payload, 4096, &mut out);
    out
}

#[test]
fn max_reassembly_closes_a_connection_holding_too_many_partial_messages() {
    let origin = Origin::start(&["--max-reassembly", "64KiB"]);
    let before = errors(&origin, "chunk");
    // Whole 40 KB messages, one after the other: under the limit, the connection stays.
    let mut fine = publish(&origin, "fine");
    fine.expect_status("NetStream.Publish.Start", secs(10)).unwrap();
    for ts in 0..3 {
        let mut payload = vec![0x27u8, 1, 0, 0, 0];
        payload.resize(40_000, 0x5A);
        fine.send_media(&MediaMessage {
            kind: MediaKind::Video,
            timestamp: ts * 33,
            payload: Bytes::from(payload),
        })
        .unwrap();
    }
    assert_eq!(closed_within(&mut fine, secs(1)), None, "whole 40 KB messages are fine");
    // The first chunks of two 40 KB messages on two chunk streams: 80 KB held > 64 KiB.
    let mut greedy = publish(&origin, "greedy");
    greedy.expect_status("NetStream.Publish.Start", secs(10)).unwrap();
    for csid in [10, 11] {
        let bytes = chunk_message(csid, 40_000);
        let mut socket: &TcpStream = greedy.socket();
        socket.write_all(&bytes[..1 + 11 + 4096]).unwrap();
    }
    let took = closed_within(&mut greedy, secs(5));
    assert!(took.is_some(), "a connection holding 80 KB of partial messages stays open");
    // The node counts the error as the connection task ends, which may be just after the
    // client sees the close.
    wait_for(secs(5), || (errors(&origin, "chunk") > before).then_some(()));
    assert_eq!(errors(&origin, "chunk") - before, 1.0, "counted as a chunk error");
    assert_eq!(closed_within(&mut fine, Duration::from_millis(100)), None);
}

/// Read until EOF; the time it took.
fn raw_closed_within(mut s: TcpStream, timeout: Duration) -> Option<Duration> {
    use std::io::Read;
    let start = Instant::now();
    s.set_read_timeout(Some(Duration::from_millis(100))).unwrap();
    let mut buf = [0u8; 4096];
    while start.elapsed() < timeout {
        match s.read(&mut buf) {
            Ok(0) => return Some(start.elapsed()),
            Ok(_) => {}
            Err(e)
                if matches!(
                    e.kind(),
                    std::io::ErrorKind::WouldBlock | std::io::ErrorKind::TimedOut
                ) => {}
            Err(_) => return Some(start.elapsed()),
        }
    }
    None
}

#[test]
fn handshake_timeout_closes_connections_that_never_connect() {
    let origin = Origin::start(&["--handshake-timeout", "1s", "--idle-timeout", "60s"]);
    let before = errors(&origin, "timeout");
    let silent = TcpStream::connect(origin.rtmp).unwrap();
    let mut half = TcpStream::connect(origin.rtmp).unwrap();
    half.write_all(&[3u8; 1 + 700]).unwrap(); // C0 and part of C1
    let no_connect = raw_handshaken(origin.rtmp);
    let started = Instant::now();
    let handles: Vec<_> = [silent, half, no_connect]
        .into_iter()
        .map(|s| std::thread::spawn(move || raw_closed_within(s, secs(10))))
        .collect();
    for (what, h) in ["silent", "half a handshake", "handshake but no connect"].iter().zip(handles)
    {
        let took = h.join().unwrap();
        let took = took.unwrap_or_else(|| panic!("{what}: still open after 10 s"));
        println!("{what}: closed after {took:?}");
        assert!(
            took >= Duration::from_millis(800),
            "{what}: closed after {took:?}, before the timeout"
        );
    }
    assert!(started.elapsed() < secs(6), "closed after {:?}", started.elapsed());
    let counted = wait_for(secs(5), || {
        let n = errors(&origin, "timeout") - before;
        (n >= 3.0).then_some(n)
    });
    assert_eq!(counted, Some(3.0), "timeouts counted");
    // A client that connects in time is not affected.
    let mut ok = publish(&origin, "ok");
    ok.expect_status("NetStream.Publish.Start", secs(5)).unwrap();
}

#[test]
fn idle_timeout_closes_a_silent_publisher_but_not_active_ones() {
    let origin = Origin::start(&["--idle-timeout", "2s"]);
    let before = errors(&origin, "timeout");
    let mut silent = publish(&origin, "silent");
    silent.expect_status("NetStream.Publish.Start", secs(5)).unwrap();
    let publisher = Replay::start(origin.rtmp, "live", "busy", &h264_aac().path);
    let viewer = Watcher::start(origin.rtmp, "live", "busy");
    let took = closed_within(&mut silent, secs(10)).expect("a silent publisher is closed");
    println!("silent publisher closed after {took:?}");
    assert!(took >= Duration::from_millis(1500), "closed after {took:?}, before the timeout");
    assert!(took < secs(6), "closed after {took:?}");
    // A publisher sending media and a viewer receiving it stay, well past the timeout.
    std::thread::sleep(secs(3));
    assert!(publisher.is_running(), "an active publisher was closed");
    assert!(viewer.is_playing(), "an active viewer was closed");
    assert_eq!(errors(&origin, "timeout") - before, 1.0, "one idle timeout counted");
}
