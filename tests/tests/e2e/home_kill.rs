//! The home of a stream (not its ingest) dies: SIGKILL, or frozen by SIGSTOP for 20 s. The
//! ingest also forwards the stream to its hot standby (the next origin on the ring), so when
//! the home goes silent the edge switches to the standby after `--upstream-stall` (500 ms),
//! make-before-break, without waiting for the home's lease to end; the ring then makes the
//! standby the home and nothing moves again. Edge viewers (RTMP, HTTP-FLV, LL-HLS) stay
//! connected and play on; HLS media sequence and part numbers never go back; the encoder never
//! notices; a frozen home that comes back makes no second home. The gap viewers see is
//! measured and must stay under a second. When the home is also the ingest, the encoder loses
//! its connection too, publishes again on any origin once the claim lapses, and the viewers
//! stay connected through it.

use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::{Arc, Mutex};
use std::thread::JoinHandle;
use std::time::Duration;

use sluice_launch::Signal;
use sluice_tests::cluster::{find_name, owners, TestCluster};
use sluice_tests::ffmpeg::Player;
use sluice_tests::process::wait_for;
use sluice_tests::replay::Replay;
use sluice_tests::viewer::Watcher;
use sluice_tests::{h264_aac, http, secs, Origin};

struct Setup {
    c: TestCluster,
    ingest: Origin,
    home: Origin,
    standby_id: String,
    _standby: Origin,
    edge: Origin,
    name: String,
    publisher: Replay,
}

fn setup(tag: &str) -> Setup {
    let (i, h, s, e) =
        (format!("{tag}-i"), format!("{tag}-h"), format!("{tag}-s"), format!("{tag}-e"));
    let c = TestCluster::new(tag, &[&i, &h, &s, &e]);
    let ingest = c.origin(&i, &[]);
    let home_node = c.origin(&h, &[]);
    let standby = c.origin(&s, &[]);
    let edge = c.edge(&e, &[]);
    let origins = [i.as_str(), h.as_str(), s.as_str()];
    let name = find_name("cam", |n| owners(&origins, n, 2) == [h.clone(), s.clone()]);
    let publisher = Replay::start(ingest.rtmp, "live", &name, &h264_aac().path);
    wait_for(secs(20), || home_node.stream_info("live", &name)).expect("forwarded to its home");
    // The hot standby holds the live stream too.
    wait_for(secs(20), || standby.stream_info("live", &name)).expect("forwarded to its standby");
    wait_for(secs(20), || edge.stream_info("live", &name)).expect("the edge lists it");
    Setup { c, ingest, home: home_node, standby_id: s, _standby: standby, edge, name, publisher }
}

/// The viewer's longest gap from `mark` on, once it has played `more` frames after the fault.
fn gap_after(viewer: &Watcher, mark: usize, more: usize) -> Duration {
    let now = viewer.video_frames();
    assert!(viewer.wait_video(now + more, secs(30)) >= now + more, "the viewer plays on");
    let broken = viewer.snapshot().interruptions(mark, secs(1), 400);
    assert!(broken.is_empty(), "the viewer was interrupted: {broken:?}");
    viewer.snapshot().report_from(mark).max_wall_gap
}

/// What one reload of a media playlist said: its media sequence, and its newest segment and
/// part numbers.
#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord)]
struct Reload {
    sequence: u64,
    newest: (u64, u64),
}

/// Reloads an edge's LL-HLS media playlist every 100 ms, as a player does, until dropped.
struct PlaylistWatch {
    stop: Arc<AtomicBool>,
    seen: Arc<Mutex<Vec<Reload>>>,
    thread: Option<JoinHandle<()>>,
}

impl PlaylistWatch {
    fn start(node: &Origin, name: &str) -> PlaylistWatch {
        let addr = node.http;
        let multivariant =
            http::get(addr, &format!("/live/{name}.m3u8"), secs(10)).expect("multivariant");
        assert_eq!(multivariant.status, 200, "{}", multivariant.text());
        let uri = multivariant
            .text()
            .lines()
            .find(|l| !l.starts_with('#') && !l.is_empty())
            .expect("variant")
            .to_string();
        let path = format!("/live/{uri}");
        let (stop, seen) = (Arc::new(AtomicBool::new(false)), Arc::new(Mutex::new(Vec::new())));
        let (stop2, seen2) = (stop.clone(), seen.clone());
        let thread = std::thread::spawn(move || {
            while !stop2.load(Ordering::Relaxed) {
                if let Ok(resp) = http::get(addr, &path, secs(5)) {
                    if let Some(r) = parse_reload(&resp.text()) {
                        sluice_tests::lock(&seen2).push(r);
                    }
                }
                std::thread::sleep(Duration::from_millis(100));
            }
        });
        PlaylistWatch { stop, seen, thread: Some(thread) }
    }

    fn reloads(&self) -> Vec<Reload> {
        sluice_tests::lock(&self.seen).clone()
    }
}

impl Drop for PlaylistWatch {
    fn drop(&mut self) {
        self.stop.store(true, Ordering::Relaxed);
        if let Some(t) = self.thread.take() {
            let _ = t.join();
        }
    }
}

fn parse_reload(text: &str) -> Option<Reload> {
    http::hls_position(text).map(|(sequence, newest)| Reload { sequence, newest })
}

#[test]
fn edge_viewers_play_on_from_the_standby_when_the_home_origin_is_killed() {
    let mut s = setup("hk");
    let edge_http = s.edge.http;
    let viewer = Watcher::start(s.edge.rtmp, "live", &s.name);
    let mut flv = Player::start(&format!("http://{edge_http}/live/{}.flv", s.name));
    let mut hls = Player::start(&format!("http://{edge_http}/live/{}.m3u8", s.name));
    let playlist = PlaylistWatch::start(&s.edge, &s.name);
    assert!(viewer.wait_video(30, secs(30)) >= 30);
    assert!(flv.wait_frames(30, secs(30)) >= 30, "HTTP-FLV plays: {:?}", flv.errors());
    assert!(hls.wait_frames(30, secs(30)) >= 30, "LL-HLS plays: {:?}", hls.errors());
    let mark = viewer.mark();
    let (flv_before, hls_before) = (flv.frames(), hls.frames());
    let reloads_before = playlist.reloads().len();
    sluice_launch::kill(s.home.pid(), Signal::KILL);
    let gap = gap_after(&viewer, mark, 150);
    println!("home SIGKILLed: the edge RTMP viewer's longest gap {gap:?}");
    // The edge moved to the standby, not the ingest.
    let edge_log = s.edge.log();
    let switch = edge_log
        .lines()
        .find(|l| l.contains("upstream silent"))
        .expect("the edge noticed the silent home");
    assert!(switch.contains(&format!("to={}", s.standby_id)), "switched to the standby: {switch}");
    assert!(
        flv.wait_frames(flv_before + 150, secs(30)) >= flv_before + 150,
        "HTTP-FLV plays on: {:?}",
        flv.errors()
    );
    assert!(
        hls.wait_frames(hls_before + 150, secs(30)) >= hls_before + 150,
        "LL-HLS plays on: {:?}",
        hls.errors()
    );
    assert!(flv.is_running() && hls.is_running(), "the players stay connected");
    let reloads = playlist.reloads();
    drop(playlist);
    assert!(reloads.len() > reloads_before + 20, "the playlist was reloaded through the failover");
    for pair in reloads.windows(2) {
        assert!(pair[1].sequence >= pair[0].sequence, "media sequence went back: {pair:?}");
        assert!(pair[1].newest >= pair[0].newest, "parts went back: {pair:?}");
    }
    assert!(viewer.is_playing(), "the RTMP viewer stays connected");
    assert!(s.publisher.is_running(), "the encoder never noticed");
    assert_eq!(s.ingest.log().matches("publish start").count(), 1, "published once");
    let (flv, hls) = (flv.stop(), hls.stop());
    for (what, r) in [("HTTP-FLV", &flv), ("LL-HLS", &hls)] {
        assert!(r.errors.is_empty(), "{what} player errors: {:?}", r.errors);
    }
    let _ = s.publisher.stop();
    drop(s.c);
}

#[test]
fn a_home_frozen_for_20_s_is_moved_away_from_and_makes_no_second_home_when_it_returns() {
    let mut s = setup("hs");
    let viewer = Watcher::start(s.edge.rtmp, "live", &s.name);
    assert!(viewer.wait_video(30, secs(30)) >= 30);
    let mark = viewer.mark();
    sluice_launch::kill(s.home.pid(), Signal::STOP);
    let gap = gap_after(&viewer, mark, 90);
    std::thread::sleep(secs(20).saturating_sub(secs(6)));
    sluice_launch::kill(s.home.pid(), Signal::CONT);
    println!("home SIGSTOPped: the edge viewer's longest gap {gap:?}");
    // Back: it re-registers (its lease ended while frozen). It joined, left and rejoined within
    // a minute, so the ring damps it out for a while: the stream stays with the one home it
    // moved to, under its one claim, and the viewer is not moved again.
    let node_key = format!("{}/nodes/origin/hs-h", s.c.prefix);
    wait_for(secs(15), || s.c.etcd.keys(&node_key).contains(&node_key).then_some(()))
        .unwrap_or_else(|| panic!("the returning origin never re-registered:\n{}", s.home.log()));
    let key = format!("{}/streams/live/{}", s.c.prefix, s.name);
    assert_eq!(s.c.etcd.keys(&key), vec![key.clone()], "one claim");
    assert!(s.home.stream_info("live", &s.name).is_none(), "no second home: it hosts nothing");
    let mark = viewer.mark();
    let gap_back = gap_after(&viewer, mark, 60);
    println!("home back: the edge viewer's longest gap {gap_back:?}");
    assert!(viewer.is_playing(), "the viewer stays connected");
    assert!(s.publisher.is_running(), "the encoder never noticed");
    let _ = s.publisher.stop();
}

/// The home is also the ingest: its death ends the encoder's connection too. The encoder
/// reconnects to an origin that was neither home nor standby (as soon as the dead origin's
/// claim has lapsed with its lease) and the stream carries on under its name: edge viewers
/// (RTMP, HTTP-FLV, LL-HLS) stay connected through it and HLS numbers never go back.
#[test]
fn an_ingest_that_is_also_the_home_dies_and_the_encoder_carries_on_elsewhere() {
    let c = TestCluster::new("ih", &["ih-a", "ih-s", "ih-x", "ih-e"]);
    let home = c.origin("ih-a", &[]);
    let standby = c.origin("ih-s", &[]);
    let other = c.origin("ih-x", &[]);
    let edge = c.edge("ih-e", &[]);
    let origins = ["ih-a", "ih-s", "ih-x"];
    let name = find_name("cam", |n| owners(&origins, n, 2) == ["ih-a", "ih-s"]);
    let mut publisher = Replay::start(home.rtmp, "live", &name, &h264_aac().path);
    wait_for(secs(20), || standby.stream_info("live", &name)).expect("forwarded to its standby");
    wait_for(secs(20), || edge.stream_info("live", &name)).expect("the edge lists it");

    let viewer = Watcher::start(edge.rtmp, "live", &name);
    let mut flv = Player::start(&format!("http://{}/live/{name}.flv", edge.http));
    let mut hls = Player::start(&format!("http://{}/live/{name}.m3u8", edge.http));
    let playlist = PlaylistWatch::start(&edge, &name);
    assert!(viewer.wait_video(30, secs(30)) >= 30);
    assert!(flv.wait_frames(30, secs(30)) >= 30, "HTTP-FLV plays: {:?}", flv.errors());
    assert!(hls.wait_frames(30, secs(30)) >= 30, "LL-HLS plays: {:?}", hls.errors());
    let mark = viewer.mark();
    let (flv_before, hls_before) = (flv.frames(), hls.frames());

    sluice_launch::kill(home.pid(), Signal::KILL);
    let killed_at = std::time::Instant::now();
    wait_for(secs(10), || (!publisher.is_running()).then_some(())).expect("the encoder notices");
    // A real encoder's reconnect loop: try again until the name is free (the dead
    // origin's claim lapses with its lease).
    let replay = wait_for(secs(20), || {
        std::panic::catch_unwind(|| Replay::start(other.rtmp, "live", &name, &h264_aac().path)).ok()
    })
    .expect("the encoder publishes again on another origin");
    let republished_in = killed_at.elapsed();
    drop(std::mem::replace(&mut publisher, replay));

    let now = viewer.video_frames();
    assert!(viewer.wait_video(now + 150, secs(30)) >= now + 150, "the RTMP viewer plays on");
    let gap = viewer.snapshot().report_from(mark).max_wall_gap;
    println!("ingest+home SIGKILLed: republished after {republished_in:?}; RTMP gap {gap:?}");
    assert!(gap < secs(5), "the edge viewer waited {gap:?}");
    assert!(viewer.is_playing(), "the RTMP viewer stays connected");
    for (what, player, before) in
        [("HTTP-FLV", &mut flv, flv_before), ("LL-HLS", &mut hls, hls_before)]
    {
        let got = player.wait_frames(before + 150, secs(30));
        assert!(got >= before + 150, "{what} plays on: {:?}", player.errors());
        assert!(player.is_running(), "{what} stays connected");
    }
    let reloads = playlist.reloads();
    drop(playlist);
    for pair in reloads.windows(2) {
        assert!(pair[1].sequence >= pair[0].sequence, "media sequence went back: {pair:?}");
        assert!(pair[1].newest >= pair[0].newest, "parts went back: {pair:?}");
    }
    let (flv, hls) = (flv.stop(), hls.stop());
    for (what, r) in [("HTTP-FLV", &flv), ("LL-HLS", &hls)] {
        assert!(r.errors.is_empty(), "{what} player errors: {:?}", r.errors);
    }
    let _ = publisher.stop();
}
