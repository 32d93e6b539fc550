//! 10,000 connections from a separate process, with --max-connections above and below that:
//! an existing viewer keeps playing throughout, and the excess is refused cleanly.

use std::time::Duration;

use sluice_tests::flood::Flood;
use sluice_tests::process::wait_for;
use sluice_tests::replay::Replay;
use sluice_tests::viewer::Watcher;
use sluice_tests::{h264_aac, secs, Origin};

const CONNECTIONS: usize = 10_000;

/// An origin with a publisher of known frames and a measuring viewer that has started;
/// returns the viewer's mark after its start.
fn live_origin(max_connections: &str) -> (Origin, Replay, Watcher, usize) {
    let origin = Origin::start(&[
        "--max-connections",
        max_connections,
        "--handshake-timeout",
        "60s",
        // One address opens all 10 000: this test is about the node-wide limit.
        "--max-connections-per-ip",
        "0",
        "--new-connections-per-ip",
        "0",
    ]);
    let publisher = Replay::start(origin.rtmp, "live", "flood", &h264_aac().path);
    wait_for(secs(10), || origin.stream_info("live", "flood")).expect("stream is live");
    let player = Watcher::start(origin.rtmp, "live", "flood");
    assert!(player.wait_video(30, secs(20)) >= 30, "player started");
    let mark = player.mark();
    (origin, publisher, player, mark)
}

fn assert_keeps_playing(player: &Watcher, what: &str) -> usize {
    let before = player.video_frames();
    let now = player.wait_video(before + 30, secs(5));
    assert!(now >= before + 30, "player stalled {what}: {before} -> {now} frames in 5 s");
    now
}

/// The legitimate viewer's whole time under the flood: no wall-clock gap of 1 s or more, no
/// frame lost, the publisher's exact frames, all decodable.
fn assert_viewer_undisturbed(origin: &Origin, player: Watcher, mark: usize, publisher: Replay) {
    let record = player.stop();
    let report = record.report_from(mark);
    println!("legitimate viewer during the flood: {report:?}");
    let problems = record.interruptions(mark, secs(1), 0);
    assert!(problems.is_empty(), "legitimate viewer: {problems:?} ({report:?})");
    let (differ, missing) = record.differences(&publisher.sent());
    assert!(
        differ.is_empty() && missing.is_empty(),
        "frames differ {differ:?}, missing {missing:?}"
    );
    let errors = record.decode_errors(origin.dir().path(), "viewer");
    assert!(errors.is_empty(), "the viewer's stream does not decode: {errors:#?}");
}

#[test]
fn flood_below_the_connection_limit_is_served() {
    let (origin, publisher, player, mark) = live_origin("20000");
    // The RTMP listener asked for --listen-backlog (4096), as far as the kernel allows.
    let somaxconn: u32 = std::fs::read_to_string("/proc/sys/net/core/somaxconn")
        .ok()
        .and_then(|s| s.trim().parse().ok())
        .unwrap_or(4096);
    assert_eq!(listen_backlog(origin.rtmp.port()), Some(somaxconn.min(4096)));
    // Held long enough for a node on a busy machine to accept them all (other tests run
    // alongside on two cores): the kernel completes handshakes before the server accepts.
    let started = std::time::Instant::now();
    let flood = Flood::start(origin.rtmp, CONNECTIONS, secs(12));
    // While the flood is held open: the server holds them all and the viewer still plays.
    let peak = wait_for(secs(30), || {
        let c = origin.metrics().value("sluice_connections", &[]);
        (c >= CONNECTIONS as f64).then_some(c)
    });
    println!("sluice_connections reached {CONNECTIONS} after {:?}", started.elapsed());
    assert_keeps_playing(&player, "during the flood");
    let report = flood.report(secs(90));
    println!("flood report: {report:?}");
    assert!(peak.is_some(), "sluice_connections never reached {CONNECTIONS}: {report:?}");
    assert_eq!(report.connected, CONNECTIONS as u64, "{report:?}");
    assert_eq!(
        report.closed_by_server, 0,
        "server closed flood connections under its limit: {report:?}"
    );
    // Afterwards the connections are released and the viewer still plays.
    let released = wait_for(secs(15), || {
        let c = origin.metrics().value("sluice_connections", &[]);
        (c <= 10.0).then_some(c)
    });
    assert!(
        released.is_some(),
        "flood connections not released: {}",
        origin.metrics().value("sluice_connections", &[])
    );
    assert_keeps_playing(&player, "after the flood");
    let rss = origin.rss_kib().unwrap();
    assert!(rss < 500 * 1024, "origin RSS {rss} KiB after 10k connections");
    assert_viewer_undisturbed(&origin, player, mark, publisher);
}

#[test]
fn flood_above_the_connection_limit_is_refused_cleanly() {
    let (origin, publisher, player, mark) = live_origin("500");
    let limit_before =
        origin.metrics().value("sluice_connection_errors_total", &[("kind", "limit")]);
    let flood = Flood::start(origin.rtmp, CONNECTIONS, secs(5));
    let mut max_seen = 0.0f64;
    for _ in 0..10 {
        max_seen = max_seen.max(origin.metrics().value("sluice_connections", &[]));
        std::thread::sleep(Duration::from_millis(300));
    }
    assert_keeps_playing(&player, "during the flood");
    let report = flood.report(secs(90));
    println!("flood report: {report:?}");
    assert!(max_seen <= 500.0, "sluice_connections reached {max_seen} with --max-connections 500");
    assert!(
        report.open_at_end <= 500,
        "{} flood connections stayed open past the limit: {report:?}",
        report.open_at_end
    );
    let refused = report.closed_by_server + report.refused;
    assert!(
        refused >= (CONNECTIONS - 500) as u64,
        "excess connections were not refused: {report:?}"
    );
    let limit_errors =
        origin.metrics().value("sluice_connection_errors_total", &[("kind", "limit")])
            - limit_before;
    assert!(
        limit_errors >= 1000.0,
        "sluice_connection_errors_total{{kind=limit}} grew by {limit_errors}: {report:?}"
    );
    assert_keeps_playing(&player, "after the flood");
    // The server accepts new viewers again once the flood is gone.
    let late = Watcher::start(origin.rtmp, "live", "flood");
    assert!(late.wait_video(30, secs(20)) >= 30, "a new viewer could not play after the flood");
    assert_viewer_undisturbed(&origin, player, mark, publisher);
}

/// The backlog of the listening TCP socket on `port`, as `ss` reports it (its Send-Q).
fn listen_backlog(port: u16) -> Option<u32> {
    let out = std::process::Command::new("ss")
        .args(["-Hltn", &format!("sport = :{port}")])
        .output()
        .expect("run ss (iproute2)");
    let text = String::from_utf8_lossy(&out.stdout);
    text.lines().next()?.split_whitespace().nth(2)?.parse().ok()
}

/// Runs the real `sluice-bench flood` (the load tool BENCHMARKS.md quotes) and returns its
/// JSON report.
fn bench_flood(origin: &Origin, mode: &str, connections: u32, hold: &str) -> serde_json::Value {
    let bin = sluice_tests::paths::binary("sluice-bench");
    let probe = origin.rtmp_url("live", "probe");
    let (status, stdout, stderr) = sluice_tests::ffmpeg::run_with_timeout(
        std::process::Command::new(bin).args([
            "flood",
            "--addr",
            &origin.rtmp.to_string(),
            "--connections",
            &connections.to_string(),
            "--rate",
            "1000",
            "--hold",
            hold,
            "--mode",
            mode,
            "--connect-timeout",
            "5s",
            "--probe-url",
            &probe,
        ]),
        secs(60),
    )
    .expect("run sluice-bench flood");
    assert!(status.is_some_and(|s| s.success()), "sluice-bench flood {mode}: {status:?} {stderr}");
    serde_json::from_str(stdout.trim())
        .unwrap_or_else(|e| panic!("sluice-bench flood printed no JSON report ({e}): {stdout}"))
}

/// `sluice-bench flood --mode garbage` and `--mode mixed` (silent, half a handshake, garbage,
/// an HTTP head), as in BENCHMARKS.md: garbage is closed at once, silent and partial
/// handshakes at --handshake-timeout, each counted by kind; a probe client still connects and
/// the legitimate viewer keeps playing without a 1 s gap or a lost frame.
#[test]
fn bench_garbage_and_mixed_floods_are_shed_at_once_or_at_the_handshake_timeout() {
    // The flood and the probe come from one address: this is about shedding at the handshake,
    // not about the per-address shares (abuse_http tests those).
    let origin = Origin::start(&[
        "--handshake-timeout",
        "2s",
        "--max-connections-per-ip",
        "0",
        "--new-connections-per-ip",
        "0",
    ]);
    let publisher = Replay::start(origin.rtmp, "live", "flood", &h264_aac().path);
    wait_for(secs(10), || origin.stream_info("live", "flood")).expect("stream is live");
    let player = Watcher::start(origin.rtmp, "live", "flood");
    assert!(player.wait_video(30, secs(20)) >= 30, "player started");
    let mark = player.mark();
    let count =
        |kind: &str| origin.metrics().value("sluice_connection_errors_total", &[("kind", kind)]);

    // Garbage: every connection closed by the server, well before the handshake timeout.
    let (hs0, to0) = (count("handshake"), count("timeout"));
    let r = bench_flood(&origin, "garbage", 200, "3s");
    println!("garbage flood: {r}");
    assert_eq!(r["accepted"], 200, "{r}");
    assert_eq!(r["closed_by_server"], 200, "{r}");
    assert_eq!(r["held_to_end"], 0, "{r}");
    let max = r["closed_after_ms"]["max_ms"].as_f64().expect("close times");
    assert!(max < 1000.0, "a garbage handshake stayed open {max} ms: {r}");
    assert_eq!(r["probe"]["ok"], true, "probe during the garbage flood: {r}");
    assert_eq!(count("handshake") - hs0, 200.0, "garbage counted as handshake errors");
    assert_eq!(count("timeout") - to0, 0.0);

    // Mixed: 100 of each mode. Silent and partial ones at the 2 s timeout, the others at once.
    let (hs0, to0) = (count("handshake"), count("timeout"));
    let r = bench_flood(&origin, "mixed", 400, "5s");
    println!("mixed flood: {r}");
    assert_eq!(r["accepted"], 400, "{r}");
    assert_eq!(r["closed_by_server"], 400, "every connection closed by the server: {r}");
    assert_eq!(r["held_to_end"], 0, "{r}");
    let q = &r["closed_after_ms"];
    let (p50, max) = (q["p50_ms"].as_f64().unwrap(), q["max_ms"].as_f64().unwrap());
    assert!(
        (1900.0..4500.0).contains(&max),
        "the last connections closed after {max} ms, timeout 2 s: {r}"
    );
    assert!(p50 < 1000.0, "half the connections (garbage, HTTP) close at once: {r}");
    let p90 = q["p90_ms"].as_f64().unwrap();
    assert!(p90 >= 1900.0, "silent and partial handshakes closed before the 2 s timeout: {r}");
    assert_eq!(r["probe"]["ok"], true, "probe during the mixed flood: {r}");
    let timeouts = wait_for(secs(5), || {
        let n = count("timeout") - to0;
        (n >= 200.0).then_some(n)
    });
    assert_eq!(timeouts, Some(200.0), "silent + partial closed as timeouts");
    assert_eq!(count("handshake") - hs0, 200.0, "garbage + HTTP closed as handshake errors");
    assert_viewer_undisturbed(&origin, player, mark, publisher);
}
