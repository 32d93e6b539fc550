//! Edges on a real etcd and real QUIC relay: ffmpeg publishes to an origin, viewers on two
//! edges decode it over RTMP and HTTP-FLV, each edge pulls the stream once whatever its
//! viewer count, unknown streams are refused at once, and when the ingest origin is killed and
//! the encoder republishes on another origin, edge viewers resume without reconnecting.

use std::process::Command;
use std::time::{Duration, Instant};

use sluice_media::rtmp::client::ClientMode;
use sluice_tests::cluster::TestCluster;
use sluice_tests::cluster::TEST_LEASE_TTL;
use sluice_tests::paths;
use sluice_tests::process::wait_for;
use sluice_tests::replay::Replay;
use sluice_tests::rtmp::RtmpClient;
use sluice_tests::viewer::Watcher;
use sluice_tests::{ffprobe_streams, h264_aac, secs, Origin, Player, Publisher};

fn cluster(tag: &str, nodes: &[&str]) -> TestCluster {
    TestCluster::new(tag, nodes)
}

/// An edge with a long play wait, so "not found at once" cannot be the wait running out.
fn edge(c: &TestCluster, id: &str) -> Origin {
    c.edge(id, &["--play-wait-timeout", "20s"])
}

fn metric(node: &Origin, name: &str, labels: &[(&str, &str)]) -> f64 {
    node.metrics().value(name, labels)
}

#[test]
fn viewers_on_two_edges_play_a_stream_pulled_once_per_edge() {
    let c = cluster("edge", &["origin-a", "edge-1", "edge-2"]);
    let origin = c.origin("origin-a", &[]);
    let e1 = edge(&c, "edge-1");
    let e2 = edge(&c, "edge-2");
    let nodes = c.etcd.keys(&format!("{}/nodes/", c.prefix));
    for key in ["nodes/origin/origin-a", "nodes/edge/edge-1", "nodes/edge/edge-2"] {
        assert!(nodes.contains(&format!("{}/{key}", c.prefix)), "{key} in {nodes:?}");
    }

    let mut publisher = Replay::start(origin.rtmp, "live", "show", &h264_aac().path);
    let claim = format!("{}/streams/live/show", c.prefix);
    wait_for(secs(15), || c.etcd.keys(&claim).contains(&claim).then_some(()))
        .expect("stream claimed in etcd");

    // The edge's API (and so its web page) lists the cluster's streams before anyone watches.
    let listed = wait_for(secs(10), || e1.stream_info("live", "show"));
    let info = listed.expect("edge /api/streams lists a stream it does not pull yet");
    assert_eq!(info["viewers"], 0);
    assert_eq!(metric(&e1, "sluice_relay_upstreams", &[]), 0.0, "listing does not pull");
    wait_for(secs(10), || e2.stream_info("live", "show")).expect("edge 2 lists the stream");

    // Measuring RTMP viewers on the origin and on edge 1 (they compare frames), then three
    // ffmpeg viewers on edge 1 (RTMP, RTMP, HTTP-FLV), two on edge 2 (HTTP-FLV, RTMP).
    let at_origin = Watcher::start(origin.rtmp, "live", "show");
    let at_edge = Watcher::start(e1.rtmp, "live", "show");
    let mut players = vec![
        Player::start(&e1.rtmp_url("live", "show")),
        Player::start(&e1.rtmp_url("live", "show")),
        Player::start(&e1.flv_url("live", "show")),
        Player::start(&e2.flv_url("live", "show")),
        Player::start(&e2.rtmp_url("live", "show")),
    ];
    for p in &mut players {
        let frames = p.wait_frames(120, secs(30));
        assert!(frames >= 120, "{} decoded only {frames} frames; errors {:?}", p.url, p.errors());
    }
    assert!(publisher.is_running());

    // One upstream per stream per edge, whatever the number of viewers.
    for (edge, viewers) in [(&e1, 4.0), (&e2, 2.0)] {
        assert_eq!(metric(edge, "sluice_relay_upstreams", &[]), 1.0, "one pull per edge");
        assert_eq!(metric(edge, "sluice_relay_subscribes_total", &[]), 1.0, "subscribed once");
        assert!(metric(edge, "sluice_relay_frames_in_total", &[]) > 100.0);
        let playing: f64 = ["rtmp", "flv"]
            .iter()
            .map(|p| metric(edge, "sluice_viewers", &[("protocol", p)]))
            .sum();
        assert_eq!(playing, viewers, "viewers on the edge");
    }
    assert_eq!(
        metric(&origin, "sluice_viewers", &[("protocol", "relay")]),
        2.0,
        "the origin serves one subscription per edge"
    );
    assert_eq!(metric(&origin, "sluice_relay_serving", &[]), 2.0);
    // Relay traffic is counted on both sides.
    assert!(
        metric(&origin, "sluice_bytes_out_total", &[("protocol", "relay")]) > 100_000.0,
        "origin relay bytes out"
    );
    assert!(metric(&e1, "sluice_bytes_in_total", &[]) > 100_000.0, "edge bytes in from the relay");
    // ffprobe of an RTMP play on the edge lists exactly one video and one audio stream.
    let url = e1.rtmp_url("live", "show");
    let probe = ffprobe_streams(&url, secs(30)).unwrap_or_else(|e| panic!("{e}"));
    let kinds: Vec<_> =
        probe["streams"].as_array().expect("streams").iter().map(|s| &s["codec_type"]).collect();
    assert_eq!(kinds, ["video", "audio"], "{url}: {probe}");

    for p in players {
        let result = p.stop();
        assert!(result.errors.is_empty(), "{} decode errors: {:?}", result.frames, result.errors);
    }

    // Through the edge, every frame is the origin's: the same bytes under the same timestamps,
    // none missing, none out of order, no stall, all decodable.
    let (edge_rec, origin_rec) = (at_edge.stop(), at_origin.stop());
    publisher.stop().expect("the publisher was never disturbed");
    let (report_e, report_o) = (edge_rec.report(), origin_rec.report());
    println!("edge viewer {report_e:?}\norigin viewer {report_o:?}");
    assert!(report_e.video_frames >= 120, "edge viewer: {report_e:?}");
    for (what, rec) in [("edge", &edge_rec), ("origin", &origin_rec)] {
        let problems = rec.interruptions(0, secs(1), 0);
        assert!(problems.is_empty(), "{what} viewer: {problems:?}");
        let (differ, missing) = rec.differences(&publisher.sent());
        assert!(
            differ.is_empty() && missing.is_empty(),
            "{what} viewer vs the publisher: frames differ {differ:?}, missing {missing:?}"
        );
        let errors = rec.decode_errors(e1.dir().path(), what);
        assert!(errors.is_empty(), "{what} viewer's stream does not decode: {errors:#?}");
    }
    let (differ, missing) = edge_rec.differences(&origin_rec.as_sent());
    assert!(
        differ.is_empty() && missing.is_empty(),
        "edge vs origin viewer: frames differ {differ:?}, missing at the edge {missing:?}"
    );
    let (_, missing) = origin_rec.differences(&edge_rec.as_sent());
    assert!(missing.is_empty(), "frames the edge had that the origin viewer missed: {missing:?}");
}

#[test]
fn an_edge_refuses_unknown_streams_at_once_and_never_accepts_publishers() {
    let c = cluster("edgenf", &["origin-n", "edge-n"]);
    let _origin = c.origin("origin-n", &[]);
    let edge = edge(&c, "edge-n");

    let started = Instant::now();
    let mut player = RtmpClient::connect(edge.rtmp, "live", "nosuch", ClientMode::Play).unwrap();
    let (level, description) = player
        .expect_status("NetStream.Play.StreamNotFound", secs(10))
        .expect("StreamNotFound from the edge");
    assert_eq!(level, "error");
    assert!(
        started.elapsed() < secs(3),
        "not found took {:?} (play wait is 20 s)",
        started.elapsed()
    );
    assert!(description.contains("nosuch"), "description names the stream: {description}");

    let started = Instant::now();
    let resp = edge.get("/live/nosuch.flv");
    assert_eq!(resp.status, 404, "HTTP-FLV of an unknown stream");
    assert!(resp.text().contains("not published"), "body: {}", resp.text());
    let resp = edge.get("/live/nosuch.m3u8");
    assert_eq!(resp.status, 404, "HLS of an unknown stream");
    assert!(started.elapsed() < secs(3), "404s took {:?}", started.elapsed());

    let mut publisher =
        RtmpClient::connect(edge.rtmp, "live", "pushed", ClientMode::Publish).unwrap();
    let (_, description) = publisher
        .expect_status("NetStream.Publish.Rejected", secs(10))
        .expect("an edge refuses publishers");
    assert!(description.contains("edge"), "{description}");
}

#[test]
fn an_edge_without_etcd_refuses_to_start() {
    let out = Command::new(paths::binary("sluice-edge"))
        .args(["--insecure-dev", "--rtmp-listen", "127.0.0.1:0", "--http-listen", "127.0.0.1:0"])
        .env("RUST_BACKTRACE", "0")
        .output()
        .expect("run sluice-edge");
    assert!(!out.status.success(), "an edge without --etcd must not start");
    let stderr = String::from_utf8_lossy(&out.stderr);
    assert!(stderr.contains("sluice-edge needs --etcd"), "stderr: {stderr}");
}

#[test]
fn edge_viewers_resume_when_the_stream_moves_to_another_origin() {
    let c = cluster("edgefo", &["fo-a", "fo-b", "fo-edge"]);
    let a = c.origin("fo-a", &[]);
    let b = c.origin("fo-b", &[]);
    let edge = edge(&c, "fo-edge");

    let mut encoder = Replay::start(a.rtmp, "live", "cam", &h264_aac().path);
    let claim = format!("{}/streams/live/cam", c.prefix);
    wait_for(secs(15), || c.etcd.keys(&claim).contains(&claim).then_some(()))
        .expect("stream claimed in etcd");
    // An edge answers an unknown stream at once from its cache: wait until it knows this one.
    wait_for(secs(15), || edge.stream_info("live", "cam")).expect("the edge lists the stream");
    let mut rtmp = Player::start(&edge.rtmp_url("live", "cam"));
    let mut flv = Player::start(&edge.flv_url("live", "cam"));
    let watcher = Watcher::start(edge.rtmp, "live", "cam");
    for p in [&mut rtmp, &mut flv] {
        let n = p.wait_frames(60, secs(30));
        assert!(n >= 60, "{} decoded {n} frames before the failover; {:?}", p.url, p.errors());
    }
    assert!(watcher.wait_video(60, secs(30)) >= 60, "the measuring viewer started");

    // The ingest origin dies without releasing anything; the encoder reconnects to B.
    let mark = watcher.mark();
    sluice_launch::kill(a.pid(), sluice_launch::Signal::KILL);
    let killed = Instant::now();
    let _ = encoder.stop();
    let before = (rtmp.frames(), flv.frames());
    let mut encoder = Replay::start(b.rtmp, "live", "cam", &h264_aac().path);
    // When B's claim shows in etcd (A's lease expired): from then on, resuming is the
    // edge's own work.
    let claim_key = format!("{}/streams/live/cam", c.prefix);
    let claimed_by_b = wait_for(secs(20), || {
        let v = c.etcd.ctl(&["get", &claim_key, "--print-value-only"]).unwrap_or_default();
        v.contains("fo-b").then(Instant::now)
    })
    .expect("B claims the stream once A's lease expired");

    // Both viewers continue on the same connections: frames keep coming, well past the
    // count they had.
    let resumed = wait_for(secs(30), || {
        (rtmp.frames() > before.0 + 30 && flv.frames() > before.1 + 30).then_some(())
    });
    let took = killed.elapsed();
    eprintln!("edge viewers resumed {took:?} after the origin was killed");
    assert!(
        resumed.is_some(),
        "viewers did not resume: rtmp {} -> {}, flv {} -> {}; edge log:\n{}",
        before.0,
        rtmp.frames(),
        before.1,
        flv.frames(),
        sluice_tests::origin::tail(edge.log_path(), 30)
    );
    // Lease TTL 2 s + 2 s, plus the time to decode 30 frames at 30 fps and generous slack for
    // a loaded machine (encoder start-up, claim retry).
    assert!(took < Duration::from_secs(8), "resumed after {took:?}");
    assert!(rtmp.is_running() && flv.is_running(), "players stayed connected");
    assert!(metric(&edge, "sluice_relay_subscribes_total", &[]) >= 2.0, "resubscribed");
    assert_eq!(metric(&edge, "sluice_relay_upstreams", &[]), 1.0, "still one upstream");
    let value = c
        .etcd
        .ctl(&["get", &format!("{}/streams/live/cam", c.prefix), "--print-value-only"])
        .unwrap();
    assert!(value.contains("fo-b"), "claim moved to fo-b: {value}");

    // What the measuring viewer on the edge saw: one outage, bounded by the lease expiry plus
    // a generous 6 s for resubscribing on a loaded machine (the goal is to catch a broken or
    // stalled failover, not to time the machine), then smooth playback again; timestamps
    // never went backwards and everything decodes.
    assert!(watcher.wait_video(watcher.video_frames() + 90, secs(20)) > 0);
    let record = watcher.stop();
    let report = record.report_from(mark);
    let ttl = secs(TEST_LEASE_TTL.trim_end_matches('s').parse().expect("lease TTL in seconds"));
    let resumed_at = record.first_frame_after(claimed_by_b).expect("frames after B's claim");
    let reaction = resumed_at.saturating_duration_since(claimed_by_b);
    println!(
        "failover seen by an edge viewer: outage {:?} (largest wall-clock gap), of which {:?} \
         after B's claim appeared in etcd ({:?} after the kill); {report:?}",
        report.max_wall_gap,
        reaction,
        claimed_by_b.saturating_duration_since(killed),
    );
    assert!(
        report.max_wall_gap < ttl + secs(6),
        "edge viewer outage {:?} >= lease TTL {ttl:?} + 6 s",
        report.max_wall_gap
    );
    // The edge's own part: from the new claim being visible to frames at its viewer (watch,
    // subscribe, first keyframe; about 0.1 s unloaded).
    assert!(reaction < secs(2), "the edge took {reaction:?} to resume after B's claim");
    assert_eq!(report.backwards, 0, "timestamps went backwards: {report:?}");
    assert!(record.error.is_none() && !record.eof, "viewer disconnected: {:?}", record.error);
    let tail_from = record.messages.len() - record.messages.iter().rev().take(60).count();
    let after = record.report_from(tail_from);
    assert!(
        after.max_wall_gap < secs(1) && after.lost_frames == 0,
        "playback after the failover is not smooth: {after:?}"
    );
    // The whole recording, across the splice, decodes cleanly: the new session continues
    // after the last presentation time (the fixture has B-frames), not only the last decode
    // time, so neither steps back.
    let errors = record.decode_errors(edge.dir().path(), "across-failover");
    assert!(errors.is_empty(), "the edge viewer's stream does not decode: {errors:#?}");

    drop(b);
    let _ = encoder.stop();
    for p in [rtmp, flv] {
        let r = p.stop();
        assert!(r.frames > 0);
        // No errors (ffmpeg's "Last message repeated N times" only counts repeats of a line
        // already judged).
        let errors: Vec<&String> =
            r.errors.iter().filter(|e| !e.contains("Last message repeated")).collect();
        assert!(errors.is_empty(), "ffmpeg errors across the failover: {errors:?}");
    }
}

/// After the last viewer leaves, the edge keeps the upstream for `--upstream-linger`, then
/// unsubscribes (the origin stops serving it); a viewer arriving meanwhile reuses it.
#[test]
fn an_edge_lingers_then_releases_the_upstream() {
    let c = cluster("edgelg", &["lg-origin", "lg-edge"]);
    let origin = c.origin("lg-origin", &[]);
    let edge = c.edge("lg-edge", &["--upstream-linger", "3s"]);
    let mut publisher = Publisher::start_looped(&origin.rtmp_url("live", "lg"), &h264_aac().path);
    let claim = format!("{}/streams/live/lg", c.prefix);
    wait_for(secs(15), || c.etcd.keys(&claim).contains(&claim).then_some(())).expect("claimed");

    let mut first = Player::start(&edge.flv_url("live", "lg"));
    assert!(first.wait_frames(30, secs(30)) >= 30, "first viewer: {:?}", first.errors());
    first.stop();
    // Within the linger time a new viewer reuses the same upstream.
    let mut second = Player::start(&edge.rtmp_url("live", "lg"));
    assert!(second.wait_frames(30, secs(30)) >= 30, "second viewer: {:?}", second.errors());
    assert_eq!(metric(&edge, "sluice_relay_subscribes_total", &[]), 1.0, "the upstream was reused");
    second.stop();

    // Then, with nobody watching, the upstream goes away after the linger time.
    let released =
        wait_for(secs(15), || (metric(&edge, "sluice_relay_upstreams", &[]) == 0.0).then_some(()));
    assert!(released.is_some(), "edge still pulls with no viewers");
    let served =
        wait_for(secs(10), || (metric(&origin, "sluice_relay_serving", &[]) == 0.0).then_some(()));
    assert!(served.is_some(), "origin still serves the edge");
    assert!(publisher.is_running());
    publisher.stop();
}

/// `--upstream-grace`: when the upstream is gone but its claim still stands (the ingest died
/// with a long lease), an edge keeps its viewers waiting for the grace time, then ends the
/// stream for them (NetStream.Play.UnpublishNotify); an edge with a long grace keeps them.
#[test]
fn an_edge_ends_the_stream_for_its_viewers_after_the_upstream_grace() {
    let c = cluster("edgegr", &["gr-origin", "gr-short", "gr-long"]);
    // The origin's claim outlives it (60 s lease), so only the grace can end the stream.
    let mut args = c.args("gr-origin");
    let ttl = args.iter().position(|a| a == "--lease-ttl").unwrap() + 1;
    args[ttl] = "60s".into();
    args.extend(["--relay-listen", "127.0.0.1:0"].map(String::from));
    let origin = Origin::start(&args.iter().map(String::as_str).collect::<Vec<_>>());
    let fast_loss = ["--relay-idle-timeout", "2s", "--relay-keepalive", "500ms"];
    let short = c.edge("gr-short", &[&["--upstream-grace", "1s"][..], &fast_loss].concat());
    let long = c.edge("gr-long", &[&["--upstream-grace", "60s"][..], &fast_loss].concat());
    let _publisher = Replay::start(origin.rtmp, "live", "gr", &h264_aac().path);
    let claim = format!("{}/streams/live/gr", c.prefix);
    wait_for(secs(15), || c.etcd.keys(&claim).contains(&claim).then_some(())).expect("claimed");
    // Edges answer an unknown stream at once from their caches: wait until both know it.
    for e in [&short, &long] {
        wait_for(secs(15), || e.stream_info("live", "gr")).expect("the edge lists the stream");
    }
    let (w_short, w_long) =
        (Watcher::start(short.rtmp, "live", "gr"), Watcher::start(long.rtmp, "live", "gr"));
    for w in [&w_short, &w_long] {
        assert!(w.wait_video(30, secs(30)) >= 30, "edge viewers play");
    }

    sluice_launch::kill(origin.pid(), sluice_launch::Signal::KILL);
    let killed = Instant::now();
    let unpublished =
        |w: &Watcher| w.snapshot().status_codes().contains(&"NetStream.Play.UnpublishNotify");
    let ended = wait_for(secs(30), || unpublished(&w_short).then(|| killed.elapsed()));
    let ended = ended.unwrap_or_else(|| {
        panic!(
            "the short-grace edge kept its viewer past the grace; log:\n{}",
            sluice_tests::origin::tail(short.log_path(), 20)
        )
    });
    println!("short grace (1 s): stream ended for the viewer {ended:?} after the kill");
    // Loss detection (2 s relay idle timeout) + failed resubscribes + 1 s grace.
    assert!(ended < secs(12), "ended {ended:?} after the kill");
    assert!(w_short.is_playing(), "the viewer stays connected, told the stream ended");
    assert_eq!(
        metric(&short, "sluice_streams", &[]),
        0.0,
        "the short-grace edge ended its publish"
    );
    // The grace ends on time even while a resubscribe is still in flight (the dead origin's
    // relay times out after 2 s), so that failure may be counted just after.
    sluice_tests::wait::wait_until(secs(10), "the edge counted its failed resubscribe", || {
        metric(&short, "sluice_relay_subscribe_failures_total", &[]) >= 1.0
    });
    let log = std::fs::read_to_string(short.log_path()).unwrap_or_default();
    assert!(log.contains("upstream gone longer than the grace time"), "log:\n{log}");
    // The long-grace edge still holds its viewer, several seconds later.
    std::thread::sleep(secs(3));
    assert!(
        !unpublished(&w_long),
        "the 60 s grace edge ended the stream after {:?}",
        killed.elapsed()
    );
    assert!(w_long.is_playing());
    assert_eq!(metric(&long, "sluice_streams", &[]), 1.0, "the long-grace edge keeps its publish");
}
