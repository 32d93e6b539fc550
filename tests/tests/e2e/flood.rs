//! 10,000 connections from a separate process, with --max-connections above and below that:
//! an existing viewer keeps playing throughout, and the excess is refused cleanly.

use std::time::Duration;

use sluice_tests::flood::Flood;
use sluice_tests::process::wait_for;
use sluice_tests::{h264_aac, secs, Origin, Player, Publisher};

const CONNECTIONS: usize = 10_000;

fn live_origin(max_connections: &str) -> (Origin, Publisher, Player) {
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
    let url = origin.rtmp_url("live", "flood");
    let publisher = Publisher::start_looped(&url, &h264_aac().path);
    wait_for(secs(10), || origin.stream_info("live", "flood")).expect("stream is live");
    let mut player = Player::start(&url);
    assert!(player.wait_frames(30, secs(20)) >= 30, "player started");
    (origin, publisher, player)
}

fn assert_keeps_playing(player: &mut Player, what: &str) -> u64 {
    let before = player.frames();
    let now = player.wait_frames(before + 30, secs(5));
    assert!(now >= before + 30, "player stalled {what}: {before} -> {now} frames in 5 s");
    now
}

#[test]
fn flood_below_the_connection_limit_is_served() {
    let (origin, _publisher, mut player) = live_origin("20000");
    let flood = Flood::start(origin.rtmp, CONNECTIONS, secs(8));
    // While the flood is held open: the server holds them all and the viewer still plays.
    let peak = wait_for(secs(30), || {
        let c = origin.metrics().value("sluice_connections", &[]);
        (c >= CONNECTIONS as f64).then_some(c)
    });
    assert_keeps_playing(&mut player, "during the flood");
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
    assert_keeps_playing(&mut player, "after the flood");
    let rss = origin.rss_kib().unwrap();
    assert!(rss < 500 * 1024, "origin RSS {rss} KiB after 10k connections");
}

#[test]
fn flood_above_the_connection_limit_is_refused_cleanly() {
    let (origin, _publisher, mut player) = live_origin("500");
    let limit_before =
        origin.metrics().value("sluice_connection_errors_total", &[("kind", "limit")]);
    let flood = Flood::start(origin.rtmp, CONNECTIONS, secs(5));
    let mut max_seen = 0.0f64;
    for _ in 0..10 {
        max_seen = max_seen.max(origin.metrics().value("sluice_connections", &[]));
        std::thread::sleep(Duration::from_millis(300));
    }
    assert_keeps_playing(&mut player, "during the flood");
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
    assert_keeps_playing(&mut player, "after the flood");
    // The server accepts new viewers again once the flood is gone.
    let mut late = Player::start(&origin.rtmp_url("live", "flood"));
    assert!(late.wait_frames(30, secs(20)) >= 30, "a new viewer could not play after the flood");
}
