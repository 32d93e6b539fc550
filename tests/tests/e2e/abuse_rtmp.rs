//! Abuse over RTMP: clients that try to make the node hold memory or connections. Each case is
//! bounded in time, reads the node's RSS from /proc against a bound written in the test, and
//! ends with a legitimate ffmpeg publisher and an RTMP viewer that still work.

use std::io::{ErrorKind, Read, Write};
use std::net::{SocketAddr, TcpStream};
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::Arc;
use std::thread;
use std::time::{Duration, Instant};

use bytes::BytesMut;
use sluice_media::amf0::{marker, Amf0Value};
use sluice_media::rtmp::chunk::encode_type0;
use sluice_media::rtmp::command::{connect_request, request};
use sluice_media::rtmp::control::ControlMessage;
use sluice_media::rtmp::{csid, msg_type};
use sluice_tests::process::wait_for;
use sluice_tests::rtmp::{raw_connect, raw_handshaken};
use sluice_tests::{h264_aac, secs, Origin, Player, Publisher};

/// Opens a connection that stalls in some phase of the session.
type Case = fn(SocketAddr) -> TcpStream;

/// Chunk size the attackers announce (large messages in few chunks).
const CHUNK: u32 = 64 * 1024;

/// Several connections that never read their socket while repeating reply-provoking commands
/// (`play`, `FCPublish`, `releaseStream`, `getStreamLength`) with a 60 000-character name.
/// Before the fix four of them grew a release origin by 1.8 GB in 15 s.
#[test]
fn non_reading_clients_provoking_replies_stay_bounded_and_are_closed() {
    /// Peak RSS growth allowed while the attack runs.
    const RSS_BOUND_KIB: u64 = 64 * 1024;
    const ATTACKERS: usize = 8;
    const START_TIMEOUT: Duration = Duration::from_secs(10);
    let origin = Origin::start(&["--start-timeout", "10s"]);
    let errors_before = closing_errors(&origin);
    let baseline = origin.rss_kib().expect("origin RSS");

    let stop = Arc::new(AtomicBool::new(false));
    let name = "n".repeat(60_000);
    let started = Instant::now();
    let attackers: Vec<_> = (0..ATTACKERS)
        .map(|_| {
            let (addr, stop, name) = (origin.rtmp, stop.clone(), name.clone());
            thread::spawn(move || reply_provoker(addr, &name, &stop))
        })
        .collect();
    let peak = peak_rss_while(&origin, Duration::from_secs(8));
    stop.store(true, Ordering::Relaxed);
    let growth = peak.saturating_sub(baseline);
    eprintln!(
        "non-reading repliers: {ATTACKERS} connections, baseline {baseline} KiB, peak {peak} KiB, growth {growth} KiB"
    );
    assert!(growth < RSS_BOUND_KIB, "RSS grew by {growth} KiB (bound {RSS_BOUND_KIB} KiB)");

    // The server closes every attacker (no publish or play started within --start-timeout).
    let sent: Vec<u64> = attackers.into_iter().map(|t| t.join().unwrap()).collect();
    eprintln!("bytes sent per attacker before the attack ended: {sent:?}");
    let deadline = START_TIMEOUT + secs(6);
    let counted = wait_for(deadline.saturating_sub(started.elapsed()), || {
        let n = closing_errors(&origin) - errors_before;
        (n >= ATTACKERS as f64).then_some(n)
    });
    assert!(
        counted.is_some(),
        "attackers not all closed and counted within {deadline:?}: {} counted",
        closing_errors(&origin) - errors_before
    );
    legit_publisher_and_viewer(&origin, "after-repliers");
}

/// Handshake + connect, stalled after connect, kept "alive" by a byte every second, and a
/// publisher that stops sending media: each is closed near its deadline and counted.
#[test]
fn stalled_sessions_are_closed_at_their_deadlines() {
    let origin = Origin::start(&[
        "--handshake-timeout",
        "2s",
        "--start-timeout",
        "3s",
        "--idle-timeout",
        "3s",
    ]);
    let timeouts_before = timeouts(&origin);
    let addr = origin.rtmp;
    let cases: Vec<(&str, Duration, Case)> = vec![
        ("TCP connect, nothing sent", secs(2), |a| raw_connect(a)),
        ("handshake, no connect", secs(2), raw_handshaken),
        ("connect, then a control message every 700 ms", secs(3), connected_then_trickle),
        ("publishing, then no media", secs(3), publishing_then_trickle),
    ];
    let mut failures = Vec::new();
    for (name, deadline, case) in &cases {
        let start = Instant::now();
        let stream = case(addr);
        match closed_within(stream, *deadline + secs(3)) {
            Ok(()) => {
                let took = start.elapsed();
                eprintln!("{name}: closed after {took:?} (deadline {deadline:?})");
                if took + Duration::from_millis(300) < *deadline {
                    failures.push(format!("{name}: closed early, after {took:?}"));
                }
            }
            Err(e) => failures.push(format!("{name}: {e}")),
        }
    }
    assert!(failures.is_empty(), "failures:\n{}", failures.join("\n"));
    let counted = wait_for(secs(3), || {
        let n = timeouts(&origin) - timeouts_before;
        (n >= cases.len() as f64).then_some(n)
    });
    assert!(counted.is_some(), "timeouts counted: {}", timeouts(&origin) - timeouts_before);
    legit_publisher_and_viewer(&origin, "after-deadlines");
}

/// 20 connections at once, each sending AMF0 bombs in a 4 MiB command message (within
/// --max-message-size): 4 million 1-byte nulls in strict arrays, each within the per-container
/// limits. Without a bound on the whole message each decode built ~230 MB of values, and the
/// node did not close the bombs within 10 s.
#[test]
fn concurrent_amf0_bombs_stay_bounded() {
    /// 20 x 4 MiB messages may legitimately be in reassembly at once (80 MiB); decoding them
    /// must add little on top.
    const RSS_BOUND_KIB: u64 = 128 * 1024;
    const BOMBERS: usize = 20;
    const ROUNDS: usize = 3;
    let origin = Origin::start(&["--max-message-size", "4MiB", "--max-reassembly", "8MiB"]);
    let amf_before = origin.metrics().value("sluice_connection_errors_total", &[("kind", "amf")]);
    let baseline = origin.rss_kib().expect("origin RSS");
    let bomb = Arc::new(amf0_bomb(4 * 1024 * 1024 - 64));
    let done = Arc::new(AtomicBool::new(false));
    let sampler = {
        let (pid, done) = (origin.pid(), done.clone());
        thread::spawn(move || {
            let mut peak = 0;
            while !done.load(Ordering::Relaxed) {
                peak = peak.max(sluice_tests::process::rss_kib(pid).unwrap_or(0));
                thread::sleep(Duration::from_millis(20));
            }
            peak
        })
    };
    let started = Instant::now();
    for _ in 0..ROUNDS {
        let bombers: Vec<_> = (0..BOMBERS)
            .map(|_| {
                let (addr, bomb) = (origin.rtmp, bomb.clone());
                thread::spawn(move || {
                    let mut s = raw_handshaken(addr);
                    let mut out = set_chunk_size_bytes(CHUNK);
                    encode_type0(
                        csid::COMMAND,
                        0,
                        msg_type::COMMAND_AMF0,
                        0,
                        &bomb,
                        CHUNK,
                        &mut out,
                    );
                    let _ = s.write_all(&out);
                    closed_within(s, secs(10))
                })
            })
            .collect();
        for b in bombers {
            b.join().unwrap().expect("bomb connection closed by the server");
        }
    }
    done.store(true, Ordering::Relaxed);
    let peak = sampler.join().unwrap();
    let growth = peak.saturating_sub(baseline);
    eprintln!(
        "AMF0 bombs: {ROUNDS} rounds of {BOMBERS} x 4 MiB in {:?}, baseline {baseline} KiB, peak {peak} KiB, growth {growth} KiB",
        started.elapsed()
    );
    assert!(growth < RSS_BOUND_KIB, "RSS grew by {growth} KiB (bound {RSS_BOUND_KIB} KiB)");
    let amf = origin.metrics().value("sluice_connection_errors_total", &[("kind", "amf")]);
    assert!(
        amf - amf_before >= (BOMBERS * ROUNDS) as f64,
        "amf errors counted: {}",
        amf - amf_before
    );
    legit_publisher_and_viewer(&origin, "after-bombs");
}

#[test]
fn viewers_never_take_the_slots_kept_for_publishers() {
    // Six slots, two kept for publishers: a publisher and three viewers fit, a fourth viewer
    // would take a publisher's slot and is refused, and a second publisher still gets in.
    let origin = Origin::start(&["--max-connections", "6", "--publisher-reserve", "2"]);
    let url = origin.rtmp_url("live", "full");
    let _publisher = Publisher::start_looped(&url, &h264_aac().path);
    wait_for(secs(15), || origin.stream_info("live", "full")).expect("live");
    let mut viewers: Vec<Player> = (0..3).map(|_| Player::start(&url)).collect();
    for (i, v) in viewers.iter_mut().enumerate() {
        assert!(v.wait_frames(10, secs(20)) >= 10, "viewer {i} plays");
    }
    let mut refused = Player::start(&url);
    assert_eq!(refused.wait_frames(1, secs(5)), 0, "a viewer took a publisher's slot");
    let limit = origin.metrics().value("sluice_connection_errors_total", &[("kind", "limit")]);
    assert!(limit >= 1.0, "the refusal is counted: {limit}");
    drop(refused.stop());
    let second = origin.rtmp_url("live", "second");
    let _second = Publisher::start_looped(&second, &h264_aac().path);
    wait_for(secs(15), || origin.stream_info("live", "second"))
        .expect("a publisher gets a kept slot while viewers fill the rest");
    for (i, v) in viewers.iter_mut().enumerate() {
        let before = v.frames();
        assert!(v.wait_frames(before + 10, secs(10)) > before, "viewer {i} still plays");
    }
}

// ---------------------------------------------------------------------------------------------

/// Errors that close an abusive connection: deadline or full output queue.
fn closing_errors(origin: &Origin) -> f64 {
    let m = origin.metrics();
    m.value("sluice_connection_errors_total", &[("kind", "timeout")])
        + m.value("sluice_connection_errors_total", &[("kind", "output_full")])
}

fn timeouts(origin: &Origin) -> f64 {
    origin.metrics().value("sluice_connection_errors_total", &[("kind", "timeout")])
}

/// Highest RSS (KiB) seen over `duration`, sampled every 50 ms.
fn peak_rss_while(origin: &Origin, duration: Duration) -> u64 {
    let end = Instant::now() + duration;
    let mut peak = 0;
    while Instant::now() < end {
        peak = peak.max(origin.rss_kib().unwrap_or(0));
        thread::sleep(Duration::from_millis(50));
    }
    peak
}

/// A publisher and an RTMP viewer that must still work after an attack.
fn legit_publisher_and_viewer(origin: &Origin, name: &str) {
    let url = origin.rtmp_url("live", name);
    let _publisher = Publisher::start_looped(&url, &h264_aac().path);
    wait_for(secs(15), || origin.stream_info("live", name)).expect("legitimate stream is live");
    let mut player = Player::start(&url);
    let frames = player.wait_frames(30, secs(20));
    assert!(frames >= 30, "legitimate viewer got {frames} frames");
    let result = player.stop();
    assert!(result.errors.is_empty(), "legitimate viewer errors: {:#?}", result.errors);
}

fn set_chunk_size_bytes(size: u32) -> BytesMut {
    let (type_id, payload) = ControlMessage::SetChunkSize(size).encode();
    let mut out = BytesMut::new();
    encode_type0(csid::CONTROL, 0, type_id, 0, &payload, 128, &mut out);
    out
}

fn command(stream_id: u32, payload: &[u8], out: &mut BytesMut) {
    encode_type0(csid::COMMAND, 0, msg_type::COMMAND_AMF0, stream_id, payload, CHUNK, out);
}

/// Handshake, Set Chunk Size, connect and createStream (answers are never read).
fn connected(addr: SocketAddr) -> TcpStream {
    let mut s = raw_handshaken(addr);
    let mut out = set_chunk_size_bytes(CHUNK);
    command(0, &connect_request(1.0, "live", &format!("rtmp://{addr}/live")), &mut out);
    command(0, &request("createStream", 2.0, &[]), &mut out);
    s.write_all(&out).unwrap();
    s
}

/// One attacker: repeat reply-provoking commands with `name` until `stop`, never reading.
/// Returns the bytes it managed to send.
fn reply_provoker(addr: SocketAddr, name: &str, stop: &AtomicBool) -> u64 {
    let mut s = connected(addr);
    s.set_write_timeout(Some(Duration::from_millis(200))).unwrap();
    let arg = Amf0Value::String(name.to_string());
    let mut burst = BytesMut::new();
    command(1, &request("play", 3.0, std::slice::from_ref(&arg)), &mut burst);
    command(0, &request("FCPublish", 4.0, std::slice::from_ref(&arg)), &mut burst);
    command(0, &request("releaseStream", 5.0, std::slice::from_ref(&arg)), &mut burst);
    command(0, &request("getStreamLength", 6.0, &[arg]), &mut burst);
    let mut sent = 0u64;
    'attack: while !stop.load(Ordering::Relaxed) {
        let mut rest = &burst[..];
        while !rest.is_empty() {
            if stop.load(Ordering::Relaxed) {
                break 'attack;
            }
            match s.write(rest) {
                Ok(0) => break 'attack,
                Ok(n) => {
                    sent += n as u64;
                    rest = &rest[n..];
                }
                Err(e) if matches!(e.kind(), ErrorKind::WouldBlock | ErrorKind::TimedOut) => {}
                Err(_) => break 'attack,
            }
        }
    }
    // Keep the socket open (unread) until the server closes it: `closing_errors` counts it.
    thread::spawn(move || {
        let _ = closed_within(s, secs(30));
    });
    sent
}

/// Connected, then a Window Acknowledgement Size every 700 ms: bytes, but no progress.
fn connected_then_trickle(addr: SocketAddr) -> TcpStream {
    let s = connected(addr);
    trickle(s)
}

/// Publishing (publish sent; the server accepts it), then only control messages.
fn publishing_then_trickle(addr: SocketAddr) -> TcpStream {
    let mut s = connected(addr);
    let mut out = BytesMut::new();
    let name = format!("idle-{}", rand::random::<u32>());
    command(
        1,
        &request("publish", 3.0, &[Amf0Value::String(name), Amf0Value::String("live".into())]),
        &mut out,
    );
    s.write_all(&out).unwrap();
    trickle(s)
}

/// A background thread sends a control message every 700 ms until the connection fails; the
/// returned handle reads.
fn trickle(s: TcpStream) -> TcpStream {
    let mut writer = s.try_clone().unwrap();
    thread::spawn(move || {
        let (type_id, payload) = ControlMessage::WindowAckSize(2_500_000).encode();
        let mut msg = BytesMut::new();
        encode_type0(csid::CONTROL, 0, type_id, 0, &payload, CHUNK, &mut msg);
        for _ in 0..30 {
            thread::sleep(Duration::from_millis(700));
            if writer.write_all(&msg).is_err() {
                return;
            }
        }
    });
    s
}

/// Read (and discard) until the server closes the connection.
fn closed_within(mut s: TcpStream, timeout: Duration) -> Result<(), String> {
    let start = Instant::now();
    let mut buf = [0u8; 64 * 1024];
    s.set_read_timeout(Some(Duration::from_millis(100))).unwrap();
    while start.elapsed() < timeout {
        match s.read(&mut buf) {
            Ok(0) => return Ok(()),
            Ok(_) => {}
            Err(e) if matches!(e.kind(), ErrorKind::WouldBlock | ErrorKind::TimedOut) => {}
            Err(_) => return Ok(()),
        }
    }
    Err(format!("connection still open after {timeout:?}"))
}

/// A `connect` command of about `size` bytes whose argument is a strict array of strict
/// arrays of nulls: every null is one byte on the wire and a whole value in memory.
fn amf0_bomb(size: usize) -> Vec<u8> {
    let mut out = connect_request(1.0, "live", "rtmp://bomb/live").to_vec();
    // Every container stays within the per-container limit (4096 items, depth 32): only a
    // bound on the whole message stops it.
    const INNER: usize = 2000;
    let outer = (size - out.len() - 5) / (INNER + 5);
    assert!(outer <= 4096, "{outer} arrays: above the per-container limit");
    out.push(marker::STRICT_ARRAY);
    out.extend_from_slice(&(outer as u32).to_be_bytes());
    for _ in 0..outer {
        out.push(marker::STRICT_ARRAY);
        out.extend_from_slice(&(INNER as u32).to_be_bytes());
        out.extend(std::iter::repeat_n(marker::NULL, INNER));
    }
    out
}
