//! The home of a stream (not its ingest) dies: SIGKILL, or frozen by SIGSTOP for 20 s. Edge
//! viewers stay connected and play on once the stream has moved to the ring's next owner (the
//! ingest here); the encoder never notices; a frozen home that comes back makes no second home.
//! An edge notices a silent home after `--upstream-stall` (1 s) and subscribes at the ingest
//! meanwhile, make-before-break.
//! The gap the viewers see is measured: about the stall time (there is no hot standby holding
//! the live GOP yet).

use std::time::Duration;

use sluice_launch::Signal;
use sluice_tests::cluster::{find_name, home, TestCluster};
use sluice_tests::process::wait_for;
use sluice_tests::replay::Replay;
use sluice_tests::viewer::Watcher;
use sluice_tests::{h264_aac, secs, Origin};

struct Setup {
    c: TestCluster,
    ingest: Origin,
    home: Origin,
    edge: Origin,
    name: String,
    publisher: Replay,
}

fn setup(tag: &str) -> Setup {
    let (i, h, e) = (format!("{tag}-i"), format!("{tag}-h"), format!("{tag}-e"));
    let c = TestCluster::new(tag, &[&i, &h, &e]);
    let ingest = c.origin(&i, &[]);
    let home_node = c.origin(&h, &[]);
    let edge = c.edge(&e, &[]);
    let origins = [i.as_str(), h.as_str()];
    let name = find_name("cam", |n| home(&origins, n) == h);
    let publisher = Replay::start(ingest.rtmp, "live", &name, &h264_aac().path);
    wait_for(secs(20), || home_node.stream_info("live", &name)).expect("forwarded to its home");
    wait_for(secs(20), || edge.stream_info("live", &name)).expect("the edge lists it");
    Setup { c, ingest, home: home_node, edge, name, publisher }
}

/// The viewer's longest gap from `mark` on, once it has played `more` frames after the fault.
fn gap_after(viewer: &Watcher, mark: usize, more: usize) -> Duration {
    let now = viewer.video_frames();
    assert!(viewer.wait_video(now + more, secs(30)) >= now + more, "the viewer plays on");
    let broken = viewer.snapshot().interruptions(mark, secs(3), 400);
    assert!(broken.is_empty(), "the viewer was interrupted: {broken:?}");
    viewer.snapshot().report_from(mark).max_wall_gap
}

#[test]
fn edge_viewers_play_on_when_the_home_origin_is_killed() {
    let mut s = setup("hk");
    let viewer = Watcher::start(s.edge.rtmp, "live", &s.name);
    assert!(viewer.wait_video(30, secs(30)) >= 30);
    let mark = viewer.mark();
    sluice_launch::kill(s.home.pid(), Signal::KILL);
    let gap = gap_after(&viewer, mark, 90);
    println!("home SIGKILLed: the edge viewer's longest gap {gap:?}");
    assert!(viewer.is_playing(), "the viewer stays connected");
    assert!(s.publisher.is_running(), "the encoder never noticed");
    assert_eq!(s.ingest.log().matches("publish start").count(), 1, "published once");
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
