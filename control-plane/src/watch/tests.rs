//! The differ on hand-built snapshots, and the driver under paused time.

use super::*;
use sluice_cluster::types::{
    LoadRecord, LoadReport, NodeId, NodeInfo, NodeState, Role, StreamInfo,
};
use sluice_media::stream_name::StreamKey;
use tokio_stream::StreamExt as _;

fn id(s: &str) -> NodeId {
    NodeId::new(s).unwrap()
}

fn sk(name: &str) -> StreamKey {
    StreamKey::parse("live", name).unwrap().0
}

fn add_node(snap: &mut Snapshot, role: Role, name: &str, state: NodeState, created: i64) {
    let mut info = NodeInfo { state, ..NodeInfo::default() };
    info.addresses.insert("http".into(), format!("{name}.example:8080"));
    let rec = NodeRecord {
        role,
        id: id(name),
        info,
        lease: 1,
        create_revision: created,
        mod_revision: created,
    };
    snap.nodes.insert((role, id(name)), rec);
}

fn add_stream(snap: &mut Snapshot, name: &str, origin: &str, codecs: &[&str], created: i64) {
    let info = StreamInfo {
        origin: id(origin),
        codecs: codecs.iter().map(ToString::to_string).collect(),
        started_at_ms: 1,
        rendition_of: None,
        playout: false,
    };
    let rec = StreamRecord {
        stream: sk(name),
        info,
        lease: 1,
        create_revision: created,
        mod_revision: created,
    };
    snap.streams.insert(sk(name), rec);
}

fn add_load(snap: &mut Snapshot, role: Role, name: &str, viewers: u64, rev: i64) {
    let mut report = LoadReport::default();
    report.viewers.insert("flv".into(), viewers);
    let rec = LoadRecord { role, id: id(name), report, lease: 1, mod_revision: rev };
    snap.loads.insert((role, id(name)), rec);
}

fn cluster(revision: i64) -> Snapshot {
    let mut snap = Snapshot { revision, ..Snapshot::default() };
    add_node(&mut snap, Role::Origin, "o1", NodeState::Ready, 2);
    add_node(&mut snap, Role::Edge, "e1", NodeState::Ready, 3);
    add_stream(&mut snap, "x", "o1", &["h264"], 4);
    snap
}

/// (kind, node id or stream name) of each event.
fn kinds(events: &[pb::WatchEvent]) -> Vec<(Kind, String)> {
    events
        .iter()
        .map(|e| {
            let what = match (&e.node, &e.stream) {
                (Some(n), _) => n.id.clone(),
                (None, Some(s)) => s.name.clone(),
                (None, None) => String::new(),
            };
            (e.kind(), what)
        })
        .collect()
}

fn k(kind: Kind, what: &str) -> (Kind, String) {
    (kind, what.to_string())
}

#[test]
fn from_nothing_every_node_then_every_stream_is_added() {
    let events = diff(&Snapshot::default(), &cluster(9), 77);
    assert_eq!(
        kinds(&events),
        [k(Kind::NodeAdded, "o1"), k(Kind::NodeAdded, "e1"), k(Kind::StreamStarted, "x")]
    );
    assert!(events.iter().all(|e| e.revision == 9 && e.at_ms == 77));
    let started = events[2].stream.as_ref().unwrap();
    assert_eq!((started.origin.as_str(), started.home.as_str()), ("o1", "o1"));
    assert_eq!(started.codecs, ["h264"]);
}

#[test]
fn the_same_snapshot_or_new_load_reports_make_no_events() {
    let old = cluster(9);
    assert!(diff(&old, &old, 0).is_empty());
    let mut new = cluster(10);
    add_load(&mut new, Role::Edge, "e1", 5, 10);
    assert!(diff(&old, &new, 0).is_empty());
    let mut newer = new.clone();
    add_load(&mut newer, Role::Edge, "e1", 6, 11);
    assert!(diff(&new, &newer, 0).is_empty());
}

#[test]
fn state_and_address_changes_are_node_changes() {
    let old = cluster(9);
    let mut new = cluster(10);
    add_node(&mut new, Role::Edge, "e1", NodeState::Draining, 3);
    let events = diff(&old, &new, 0);
    assert_eq!(kinds(&events), [k(Kind::NodeChanged, "e1")]);
    assert_eq!(events[0].node.as_ref().unwrap().state, "draining");

    let mut moved = cluster(11);
    moved
        .nodes
        .get_mut(&(Role::Edge, id("e1")))
        .unwrap()
        .info
        .addresses
        .insert("http".into(), "elsewhere:8080".into());
    assert_eq!(kinds(&diff(&old, &moved, 0)), [k(Kind::NodeChanged, "e1")]);
}

#[test]
fn removed_nodes_come_last_as_last_seen() {
    let old = cluster(9);
    let mut new = Snapshot { revision: 12, ..Snapshot::default() };
    add_node(&mut new, Role::Edge, "e1", NodeState::Ready, 3);
    let events = diff(&old, &new, 0);
    assert_eq!(kinds(&events), [k(Kind::StreamEnded, "x"), k(Kind::NodeRemoved, "o1")]);
    // The ended stream is shown as it was, home included.
    assert_eq!(events[0].stream.as_ref().unwrap().home, "o1");
    assert_eq!(events[1].node.as_ref().unwrap().role, "origin");
}

#[test]
fn origin_or_codec_changes_are_stream_changes() {
    let old = cluster(9);
    let mut codecs = cluster(10);
    add_stream(&mut codecs, "x", "o1", &["h264", "aac"], 4);
    assert_eq!(kinds(&diff(&old, &codecs, 0)), [k(Kind::StreamChanged, "x")]);
    let mut origin = cluster(10);
    add_node(&mut origin, Role::Origin, "o2", NodeState::Ready, 5);
    add_stream(&mut origin, "x", "o2", &["h264"], 4);
    let events = diff(&old, &origin, 0);
    assert_eq!(kinds(&events), [k(Kind::NodeAdded, "o2"), k(Kind::StreamChanged, "x")]);
    assert_eq!(events[1].stream.as_ref().unwrap().origin, "o2");
}

#[test]
fn a_record_created_again_is_gone_and_back() {
    let old = cluster(9);
    let mut new = cluster(20);
    add_stream(&mut new, "x", "o1", &["h264"], 15);
    add_node(&mut new, Role::Edge, "e1", NodeState::Ready, 16);
    assert_eq!(
        kinds(&diff(&old, &new, 0)),
        [
            k(Kind::NodeRemoved, "e1"),
            k(Kind::NodeAdded, "e1"),
            k(Kind::StreamEnded, "x"),
            k(Kind::StreamStarted, "x"),
        ]
    );
}

/// A `closing` receiver that never turns true (its sender is leaked for the test's life).
fn open() -> watch::Receiver<bool> {
    let (tx, rx) = watch::channel(false);
    std::mem::forget(tx);
    rx
}

fn limits(buffer: usize) -> Limits {
    Limits { buffer, grace: SLOW_CLIENT_GRACE }
}

/// Wait (in paused time) until the watcher gauge reads `n`.
async fn gauge_reaches(counters: &Counters, n: u64) {
    for _ in 0..100 {
        if counters.watchers() == n {
            return;
        }
        tokio::time::sleep(Duration::from_millis(10)).await;
    }
    panic!("watchers stayed at {}, not {n}", counters.watchers());
}

#[tokio::test(start_paused = true)]
async fn initial_replays_then_changes_follow_and_a_gone_client_ends_the_task() {
    let counters = Arc::new(Counters::default());
    let (tx, rx) = watch::channel(cluster(9));
    let mut stream = follow(rx, open(), true, &counters, limits(16));
    let mut got = Vec::new();
    for _ in 0..3 {
        got.push(stream.next().await.unwrap().unwrap());
    }
    assert_eq!(
        kinds(&got),
        [k(Kind::NodeAdded, "o1"), k(Kind::NodeAdded, "e1"), k(Kind::StreamStarted, "x")]
    );
    assert_eq!(counters.watchers(), 1);

    let mut ended = cluster(10);
    ended.streams.clear();
    tx.send(ended).unwrap();
    let event = stream.next().await.unwrap().unwrap();
    assert_eq!(kinds(&[event]), [k(Kind::StreamEnded, "x")]);

    // The client goes away: the task ends and the gauge is back to zero.
    drop(stream);
    gauge_reaches(&counters, 0).await;
    assert_eq!(tx.receiver_count(), 0, "the task dropped its receiver");
}

#[tokio::test(start_paused = true)]
async fn without_initial_only_changes_are_sent_and_a_stopping_server_ends_the_stream() {
    let counters = Arc::new(Counters::default());
    let (tx, rx) = watch::channel(cluster(9));
    let mut stream = follow(rx, open(), false, &counters, limits(16));
    let mut next = cluster(10);
    add_node(&mut next, Role::Edge, "e2", NodeState::Starting, 10);
    tx.send(next).unwrap();
    let event = stream.next().await.unwrap().unwrap();
    assert_eq!(kinds(&[event]), [k(Kind::NodeAdded, "e2")]);
    drop(tx);
    assert!(stream.next().await.is_none(), "the stream ends with the cache");
    gauge_reaches(&counters, 0).await;
}

#[tokio::test(start_paused = true)]
async fn a_client_that_stops_reading_is_cut_off_with_resource_exhausted() {
    let counters = Arc::new(Counters::default());
    let (tx, rx) = watch::channel(Snapshot::default());
    let grace = Duration::from_secs(5);
    let mut stream = follow(rx, open(), true, &counters, Limits { buffer: 2, grace });
    // Five nodes come and nobody reads: two fit, the third waits out the grace period.
    let mut snap = Snapshot { revision: 3, ..Snapshot::default() };
    for i in 0..5 {
        add_node(&mut snap, Role::Edge, &format!("e{i}"), NodeState::Ready, 3);
    }
    tx.send(snap).unwrap();
    tokio::time::sleep(grace + Duration::from_secs(1)).await;
    gauge_reaches(&counters, 0).await;
    assert_eq!(counters.slow_watchers(), 1);
    let mut items = Vec::new();
    while let Some(item) = stream.next().await {
        items.push(item);
    }
    assert_eq!(items.len(), 3, "{items:?}");
    assert!(items[..2].iter().all(Result::is_ok));
    let status = items[2].as_ref().unwrap_err();
    assert_eq!(status.code(), tonic::Code::ResourceExhausted);
    assert!(status.message().contains("too slow"), "{status}");
}

#[tokio::test(start_paused = true)]
async fn a_stopping_replica_ends_its_watchers_with_unavailable() {
    let counters = Arc::new(Counters::default());
    let (_tx, rx) = watch::channel(cluster(9));
    let (closing, closed) = watch::channel(false);
    let mut stream = follow(rx, closed, false, &counters, limits(16));
    assert_eq!(counters.watchers(), 1);
    closing.send_replace(true);
    let status = stream.next().await.unwrap().unwrap_err();
    assert_eq!(status.code(), tonic::Code::Unavailable);
    assert!(stream.next().await.is_none());
    gauge_reaches(&counters, 0).await;
}
