//! etcd trouble does not reach viewers or leave names behind: with etcd frozen (SIGSTOP) for
//! twice the lease TTL, and then for 10 s, an edge viewer of a stream published on one origin
//! keeps playing, the node reports itself fenced while etcd is silent and not afterwards, and
//! when the publisher leaves after the outage its name is free at once on another origin
//! (before, a claim renewed during the outage was never released: the name stayed taken
//! cluster-wide until the holding node restarted).

use std::time::Duration;

use sluice_media::rtmp::client::ClientMode;
use sluice_tests::cluster::TestCluster;
use sluice_tests::process::wait_for;
use sluice_tests::replay::Replay;
use sluice_tests::rtmp::RtmpClient;
use sluice_tests::viewer::Watcher;
use sluice_tests::{h264_aac, secs, Origin};

fn fenced(node: &Origin) -> f64 {
    node.metrics().value("sluice_registry_fenced", &[])
}

/// Freeze etcd for `pause`; the viewer must play straight through it.
fn outage(c: &TestCluster, origin: &Origin, viewer: &Watcher, pause: Duration) {
    let mark = viewer.mark();
    let frozen = c.etcd.pause();
    let was_fenced = wait_for(pause, || (fenced(origin) == 1.0).then_some(()));
    std::thread::sleep(pause.saturating_sub(Duration::from_millis(100)));
    drop(frozen);
    assert!(was_fenced.is_some(), "the origin reports itself fenced while etcd is frozen");
    wait_for(secs(15), || (fenced(origin) == 0.0).then_some(())).unwrap_or_else(|| {
        panic!("the origin stays fenced after etcd returned:\n{}", origin.log())
    });
    // A little more media after the return, then the record since the outage began.
    let after = viewer.video_frames();
    viewer.wait_video(after + 30, secs(10));
    let broken = viewer.snapshot().interruptions(mark, Duration::from_millis(1000), 0);
    assert!(broken.is_empty(), "etcd frozen {pause:?}: {broken:?}");
}

#[test]
fn streams_play_through_a_frozen_etcd_and_their_names_are_free_once_unpublished() {
    let c = TestCluster::new("etcdout", &["origin-a", "origin-b", "edge-a"]);
    let a = c.origin("origin-a", &[]);
    let b = c.origin("origin-b", &[]);
    let edge = c.edge("edge-a", &[]);
    let mut publisher = Replay::start(a.rtmp, "live", "calm", &h264_aac().path);
    wait_for(secs(20), || edge.stream_info("live", "calm")).expect("the edge learns the stream");
    let viewer = Watcher::start(edge.rtmp, "live", "calm");
    assert!(viewer.wait_video(30, secs(30)) >= 30, "the edge viewer plays");

    // Twice the lease TTL (the leases end: nodes re-register and re-claim), then 10 s.
    outage(&c, &a, &viewer, secs(4));
    outage(&c, &a, &viewer, secs(10));
    assert!(publisher.is_running(), "the publisher was never cut off");

    // The publisher leaves: the name is free on another origin at once, with no claim hold.
    publisher.stop().expect("the replay ends cleanly");
    let key = format!("{}/streams/live/calm", c.prefix);
    wait_for(secs(10), || (!c.etcd.keys(&key).contains(&key)).then_some(()))
        .unwrap_or_else(|| panic!("the claim stays after unpublish; origin log:\n{}", a.log()));
    let mut again = RtmpClient::connect(b.rtmp, "live", "calm", ClientMode::Publish).unwrap();
    again
        .expect_status("NetStream.Publish.Start", secs(5))
        .expect("another origin takes the free name at once");
}
