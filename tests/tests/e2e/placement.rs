//! Placement across real origins: every stream is forwarded by its ingest origin to its home
//! on the consistent-hash ring; adding an origin moves only the streams the ring gives it,
//! without any publisher reconnecting, and an edge viewer of a moving stream keeps playing.

use std::collections::{BTreeMap, BTreeSet};
use std::time::Duration;

use sluice_cluster::types::NodeId;
use sluice_cluster::{Ring, DEFAULT_VNODES};
use sluice_media::rtmp::client::ClientMode;
use sluice_media::stream_name::StreamKey;
use sluice_tests::cluster::TestCluster;
use sluice_tests::process::wait_for;
use sluice_tests::replay::Replay;
use sluice_tests::rtmp::RtmpClient;
use sluice_tests::viewer::{ViewerRecord, Watcher};
use sluice_tests::{h264_aac, secs, Origin};

const STREAMS: usize = 100;

fn ring(members: &[&str]) -> Ring {
    Ring::new(members.iter().map(|m| NodeId::new(m).unwrap()), DEFAULT_VNODES)
}

fn home(ring: &Ring, name: &str) -> String {
    let key = StreamKey::parse("live", name).unwrap().0;
    ring.owner(&key).expect("non-empty ring").to_string()
}

/// Names of the live streams an origin lists in `/api/streams`.
fn listed(origin: &Origin) -> BTreeSet<String> {
    let v = origin.streams();
    v["streams"]
        .as_array()
        .expect("streams array")
        .iter()
        .filter_map(|s| s["name"].as_str().map(String::from))
        .collect()
}

/// Stream -> home as the origins show it: a stream listed by a non-ingest origin is hosted
/// there through a forward; one listed only by the ingest is at home on the ingest.
fn observed_homes(
    ingest: &str,
    others: &[(&str, &Origin)],
    names: &[String],
) -> BTreeMap<String, String> {
    let lists: Vec<(&str, BTreeSet<String>)> =
        others.iter().map(|(id, o)| (*id, listed(o))).collect();
    names
        .iter()
        .map(|n| {
            let hosts: Vec<&str> =
                lists.iter().filter(|(_, l)| l.contains(n)).map(|(id, _)| *id).collect();
            let home = match hosts.as_slice() {
                [] => ingest.to_string(),
                [one] => one.to_string(),
                many => format!("several: {many:?}"),
            };
            (n.clone(), home)
        })
        .collect()
}

#[test]
fn a_new_origin_takes_only_its_share_and_publishers_never_reconnect() {
    let c = TestCluster::new("p", &["ring-1", "ring-2", "ring-3", "ring-edge"]);
    // Homes are read off where streams are listed: no hot standby (it lists every stream on
    // a second origin; home_kill.rs covers it).
    let start = |id: &str| c.origin(id, &["--idle-timeout", "300s", "--standbys", "0"]);
    let o1 = start("ring-1");
    let o2 = start("ring-2");
    let edge = c.edge("ring-edge", &["--standbys", "0"]);

    // A real encoder on a stream whose home moves from ring-2 to ring-3, watched on the edge.
    let (before, after) = (ring(&["ring-1", "ring-2"]), ring(&["ring-1", "ring-2", "ring-3"]));
    let mover = (0..1000)
        .map(|i| format!("cam{i}"))
        .find(|n| home(&before, n) == "ring-2" && home(&after, n) == "ring-3")
        .expect("some name moves from ring-2 to ring-3");
    let mut encoder = Replay::start(o1.rtmp, "live", &mover, &h264_aac().path);
    wait_for(secs(20), || listed(&o2).contains(&mover).then_some(()))
        .expect("the encoder's stream forwarded to its home ring-2");
    // An edge answers an unknown stream at once from its cache: wait until it knows this one.
    wait_for(secs(20), || listed(&edge).contains(&mover).then_some(()))
        .expect("the edge lists the stream");
    let viewer = Watcher::start(edge.rtmp, "live", &mover);
    assert!(viewer.wait_video(60, secs(30)) >= 60, "edge viewer plays before the move");
    let mark = viewer.mark();

    // 100 more publishers, all on ring-1 (as a TCP load balancer might do).
    let names: Vec<String> = (0..STREAMS).map(|i| format!("s{i:03}")).collect();
    let mut publishers: Vec<RtmpClient> = names
        .iter()
        .map(|n| {
            let mut c = RtmpClient::connect(o1.rtmp, "live", n, ClientMode::Publish).unwrap();
            c.expect_status("NetStream.Publish.Start", secs(20))
                .unwrap_or_else(|e| panic!("publish {n}: {e}"));
            c
        })
        .collect();
    let expected: BTreeMap<String, String> =
        names.iter().map(|n| (n.clone(), home(&before, n))).collect();
    let settled = wait_for(secs(30), || {
        let seen = observed_homes("ring-1", &[("ring-2", &o2)], &names);
        (seen == expected).then_some(seen)
    });
    assert!(
        settled.is_some(),
        "homes with two origins differ from the ring: {:?}",
        observed_homes("ring-1", &[("ring-2", &o2)], &names)
    );
    let on_two = expected.values().filter(|h| *h == "ring-2").count();
    assert!((20..=80).contains(&on_two), "ring-2 is home to {on_two} of {STREAMS}");

    // A third origin joins: exactly the streams the ring gives it move, nothing else.
    let o3 = start("ring-3");
    let expected_after: BTreeMap<String, String> =
        names.iter().map(|n| (n.clone(), home(&after, n))).collect();
    let others = [("ring-2", &o2), ("ring-3", &o3)];
    let settled = wait_for(secs(30), || {
        let seen = observed_homes("ring-1", &others, &names);
        (seen == expected_after).then_some(seen)
    });
    assert!(
        settled.is_some(),
        "homes with three origins differ from the ring: {:?}",
        observed_homes("ring-1", &others, &names)
    );
    let moved: Vec<&String> = names.iter().filter(|n| expected[*n] != expected_after[*n]).collect();
    assert!(!moved.is_empty(), "some streams move to the new origin");
    for n in &moved {
        assert_eq!(expected_after[*n], "ring-3", "{n} moved between old origins");
    }
    assert!(moved.len() < STREAMS / 2, "{} of {STREAMS} streams moved", moved.len());

    // A stream published on ring-3 whose home is ring-2 travels the other way: ring-3 has the
    // higher id, so it forwards over the connection ring-2 dialled. One connection per pair.
    let back = sluice_tests::cluster::find_name("back", |n| home(&after, n) == "ring-2");
    let mut reverse = RtmpClient::connect(o3.rtmp, "live", &back, ClientMode::Publish).unwrap();
    reverse.expect_status("NetStream.Publish.Start", secs(20)).expect("publish on ring-3");
    wait_for(secs(20), || listed(&o2).contains(&back).then_some(()))
        .expect("ring-3 forwards to ring-2");
    for (id, o) in [("ring-1", &o1), ("ring-2", &o2), ("ring-3", &o3)] {
        let n = wait_for(secs(15), || {
            let n = o.metrics().value("sluice_relay_peer_connections", &[]);
            (n == 2.0).then_some(n)
        });
        assert_eq!(
            n,
            Some(2.0),
            "{id} holds one relay connection to each other origin: {}",
            o.metrics().value("sluice_relay_peer_connections", &[])
        );
    }

    // No publisher was disconnected or asked to reconnect: all still publishing on ring-1.
    for (n, p) in names.iter().zip(publishers.iter_mut()) {
        p.pump_for(Duration::from_millis(1)).unwrap_or_else(|e| panic!("publisher {n}: {e}"));
        assert!(!p.is_eof(), "publisher {n} was disconnected");
    }
    assert_eq!(listed(&o1).len(), STREAMS + 1, "ring-1 still has every publisher");
    assert!(encoder.is_running(), "the encoder kept publishing");

    // The edge viewer of the moved stream kept its connection and keeps decoding from ring-3.
    wait_for(secs(20), || listed(&o3).contains(&mover).then_some(()))
        .expect("the encoder's stream moved to ring-3");
    let before_move = viewer.video_frames();
    let more = viewer.wait_video(before_move + 60, secs(30));
    assert!(
        more >= before_move + 60,
        "edge viewer stalled after the move: {before_move} -> {more}"
    );
    assert!(viewer.is_playing(), "edge viewer stayed connected");
    let log = std::fs::read_to_string(edge.log_path()).unwrap_or_default();
    assert!(
        log.contains("switched upstream") || log.contains("resubscrib"),
        "edge followed the move; log:\n{log}"
    );
    drop(publishers);
    let record = viewer.stop();
    encoder.stop().expect("the encoder was never disturbed");
    assert_seamless(&record, mark, &encoder, &edge, "move");
}

/// Make-before-break, measured at the viewer: from `mark` on no wall-clock gap over 1 s, no
/// frame lost, the publisher's exact frames in order, all decodable.
fn assert_seamless(
    record: &ViewerRecord,
    mark: usize,
    encoder: &Replay,
    edge: &Origin,
    what: &str,
) {
    let report = record.report_from(mark);
    println!("edge viewer across the {what}: {report:?}");
    let problems = record.interruptions(mark, secs(1), 0);
    assert!(problems.is_empty(), "edge viewer across the {what}: {problems:?} ({report:?})");
    let (differ, missing) = record.differences(&encoder.sent());
    assert!(
        differ.is_empty() && missing.is_empty(),
        "edge viewer across the {what}: frames differ {differ:?}, missing {missing:?}"
    );
    let errors = record.decode_errors(edge.dir().path(), what);
    assert!(errors.is_empty(), "edge viewer across the {what} does not decode: {errors:#?}");
}

/// SIGTERM of a stream's home origin: it leaves the ring first, the ingest forwards to the new
/// home, the edge follows, and the edge's viewer keeps playing on the same connection.
#[test]
fn a_draining_home_hands_its_streams_over_without_viewers_noticing() {
    let c = TestCluster::new("dr", &["drain-a", "drain-b", "drain-edge"]);
    let a = c.origin("drain-a", &[]);
    let mut b = c.origin("drain-b", &["--drain-timeout", "3s"]);
    let edge = c.edge("drain-edge", &[]);
    let name = sluice_tests::cluster::find_name("d", |n| {
        home(&ring(&["drain-a", "drain-b"]), n) == "drain-b"
    });
    let mut encoder = Replay::start(a.rtmp, "live", &name, &h264_aac().path);
    wait_for(secs(20), || listed(&b).contains(&name).then_some(()))
        .expect("forwarded to its home drain-b");
    // An edge answers an unknown stream at once from its cache: wait until it knows this one.
    wait_for(secs(20), || listed(&edge).contains(&name).then_some(()))
        .expect("the edge lists the stream");
    let viewer = Watcher::start(edge.rtmp, "live", &name);
    assert!(viewer.wait_video(60, secs(30)) >= 60, "edge viewer plays");
    let mark = viewer.mark();

    let status = b.terminate();
    assert!(status.is_some_and(|s| s.success()), "drain-b exits cleanly: {status:?}");
    let before = viewer.video_frames();
    let more = viewer.wait_video(before + 60, secs(20));
    assert!(more >= before + 60, "edge viewer stalled after the home drained: {before} -> {more}");
    assert!(viewer.is_playing(), "the viewer stayed connected");
    assert!(encoder.is_running(), "the encoder never noticed");
    let log = std::fs::read_to_string(edge.log_path()).unwrap_or_default();
    assert!(
        log.contains("switched upstream") || log.contains("resubscrib"),
        "the edge moved to drain-a; log:\n{log}"
    );
    let record = viewer.stop();
    encoder.stop().expect("the encoder was never disturbed");
    assert_seamless(&record, mark, &encoder, &edge, "drain");
}
