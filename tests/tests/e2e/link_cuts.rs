//! Real link cuts: etcd and every node run in network namespaces of their own, joined by a
//! bridge ([`sluice_tests::netns::Net`]); a cut drops the packets between two namespaces, as a
//! broken cable or a partitioned switch would, while every other path stays up. Nothing is
//! killed: the processes go on running and must notice by themselves.
//!
//! - origin–etcd: the origin fences itself before the cluster drops it from the ring, refuses
//!   new publishers with the reason, and its stream moves to the other origin under the edge
//!   viewer's feet; when the link returns it re-registers and takes publishers again.
//! - origin–edge: the edge's upstream (the home) goes silent; the edge moves to the stream's
//!   hot standby without waiting for anything else, and its viewers play on.
//! - origin–origin: the ingest's forward to the home is cut; the home starves, the edge moves
//!   to the standby, and when the link returns the ingest forwards to the home again.

use std::time::Duration;

use sluice_media::rtmp::client::ClientMode;
use sluice_tests::cluster::{find_name, home, owners, TestCluster};
use sluice_tests::netns::{Host, Net};
use sluice_tests::process::wait_for;
use sluice_tests::replay::Replay;
use sluice_tests::rtmp::RtmpClient;
use sluice_tests::viewer::Watcher;
use sluice_tests::{h264_aac, secs, Origin, Publisher};

/// The timestamp (RFC 3339, UTC: ordered as text) of the last log line containing `what`.
fn logged_at(log: &str, what: &str) -> Option<String> {
    let line = log.lines().rev().find(|l| l.contains(what))?;
    line.split_whitespace().next().map(str::to_string)
}

/// The viewer plays `more` frames after `mark` with no gap over `max_gap`; returns its longest.
fn plays_on(viewer: &Watcher, mark: usize, more: usize, max_gap: Duration) -> Duration {
    let now = viewer.video_frames();
    assert!(viewer.wait_video(now + more, secs(30)) >= now + more, "the viewer plays on");
    let broken = viewer.snapshot().interruptions(mark, max_gap, 400);
    assert!(broken.is_empty(), "the viewer was interrupted: {broken:?}");
    viewer.snapshot().report_from(mark).max_wall_gap
}

#[test]
fn an_origin_cut_off_from_etcd_fences_itself_before_the_cluster_drops_it() {
    let net = Net::new();
    let hosts: Vec<Host> = ["etcd", "pt-a", "pt-p", "pt-edge"].map(|n| net.host(n)).into();
    let c = TestCluster::with_etcd_on("partition", &["pt-a", "pt-p", "pt-edge"], &hosts[0]);
    let a = c.origin_on(&hosts[1], "pt-a", &[]);
    let p = c.origin_on(&hosts[2], "pt-p", &[]);
    let edge = c.edge_on(&hosts[3], "pt-edge", &[]);

    // A stream published on a whose home is p: a forwards it to p, the edge pulls it from p.
    let name = find_name("part", |n| home(&["pt-a", "pt-p"], n) == "pt-p");
    let _publisher = Replay::start(a.rtmp, "live", &name, &h264_aac().path);
    wait_for(secs(20), || p.stream_info("live", &name)).expect("p hosts the stream");
    wait_for(secs(20), || edge.stream_info("live", &name)).expect("the edge lists it");
    let viewer = Watcher::start(edge.rtmp, "live", &name);
    assert!(viewer.wait_video(30, secs(30)) >= 30, "the edge viewer plays");
    let mark = viewer.mark();
    // An encoder on p, which p will lose to another while it is cut off.
    let mut solo = Publisher::start_looped(&p.rtmp_url("live", "solo"), &h264_aac().path);
    let solo_claim = format!("{}/streams/live/solo", c.prefix);
    wait_for(secs(15), || c.etcd.keys(&solo_claim).contains(&solo_claim).then_some(()))
        .expect("p claims live/solo");

    let cut_at = a.log().lines().count();
    net.cut(&hosts[2], &hosts[0]);
    wait_for(secs(10), || (p.metrics().value("sluice_registry_fenced", &[]) == 1.0).then_some(()))
        .unwrap_or_else(|| panic!("p never fenced itself:\n{}", p.log()));
    // Fenced: a new publisher is refused at once, with the reason.
    let mut fresh = RtmpClient::connect(p.rtmp, "live", "fresh", ClientMode::Publish).unwrap();
    let (_, description) = fresh
        .expect_status("NetStream.Publish.Failed", secs(2))
        .expect("a fenced origin refuses new publishers at once");
    assert!(description.contains("fenced"), "the refusal says why: {description}");

    // The others drop p once its lease ends: after p fenced itself.
    let dropped = wait_for(secs(15), || {
        let since: String = a.log().lines().skip(cut_at).collect::<Vec<_>>().join("\n");
        logged_at(&since, "ring membership changed members={NodeId(\"pt-a\")}")
    })
    .unwrap_or_else(|| panic!("a never dropped p from its ring:\n{}", a.log()));
    let fenced = logged_at(&p.log(), "fenced").expect("p logged its fence");
    println!("p fenced itself at {fenced}; a's ring dropped p at {dropped}");
    assert!(fenced < dropped, "p fenced at {fenced}, the ring dropped it at {dropped}");

    // The stream moved to a (make-before-break from the edge's side): the viewer played on.
    let gap = plays_on(&viewer, mark, 60, secs(4));
    println!("origin cut from etcd: the edge viewer's longest gap {gap:?}");

    // p's lease ended, and its claims with it: another encoder takes live/solo on a. p's own
    // encoder goes on (p cannot know yet) until the link returns.
    wait_for(secs(15), || c.etcd.keys(&solo_claim).is_empty().then_some(()))
        .expect("p's claim on live/solo ends with its lease");
    let _rival = Replay::start(a.rtmp, "live", "solo", &h264_aac().path);
    wait_for(secs(15), || a.stream_info("live", "solo")).expect("a publishes live/solo");
    assert!(solo.is_running(), "p keeps its encoder while it cannot know better");

    // The link returns: p re-registers, unfences and takes publishers again.
    net.restore(&hosts[2], &hosts[0]);
    wait_for(secs(30), || (p.metrics().value("sluice_registry_fenced", &[]) == 0.0).then_some(()))
        .unwrap_or_else(|| panic!("p stays fenced:\n{}", p.log()));
    // p learns that a holds live/solo now: its encoder is stopped and told why.
    assert!(solo.wait(secs(15)).is_some(), "p's encoder of a name a holds is still publishing");
    let told = solo.stderr().join("\n");
    assert!(told.contains("lost its claim on stream live/solo"), "the encoder is told:\n{told}");
    assert!(told.contains("pt-a holds it now"), "and who holds it:\n{told}");
    let mut again = RtmpClient::connect(p.rtmp, "live", "fresh", ClientMode::Publish).unwrap();
    again.expect_status("NetStream.Publish.Start", secs(10)).expect("p takes publishers again");
    assert!(viewer.is_playing(), "the viewer never reconnected");
}

/// etcd, an ingest, a home, a standby and an edge, each in its namespace; one stream published
/// on the ingest whose home and standby are the other two, played by an RTMP viewer on the
/// edge. Fields drop in order: the network goes last.
struct Lab {
    _c: TestCluster,
    ingest: Origin,
    home: Origin,
    standby: Origin,
    edge: Origin,
    name: String,
    publisher: Replay,
    viewer: Watcher,
    hosts: Vec<Host>,
    net: Net,
}

impl Lab {
    fn start(tag: &str) -> Lab {
        let net = Net::new();
        let ids = ["etcd", "i", "h", "s", "e"].map(|n| format!("{tag}-{n}"));
        let hosts: Vec<Host> = ids.iter().map(|id| net.host(id)).collect();
        let nodes: Vec<&str> = ids[1..].iter().map(String::as_str).collect();
        let c = TestCluster::with_etcd_on(tag, &nodes, &hosts[0]);
        let ingest = c.origin_on(&hosts[1], &ids[1], &[]);
        let home = c.origin_on(&hosts[2], &ids[2], &[]);
        let standby = c.origin_on(&hosts[3], &ids[3], &[]);
        let edge = c.edge_on(&hosts[4], &ids[4], &[]);
        let origins = [ids[1].as_str(), ids[2].as_str(), ids[3].as_str()];
        let name = find_name("cam", |n| owners(&origins, n, 2) == [ids[2].clone(), ids[3].clone()]);
        let publisher = Replay::start(ingest.rtmp, "live", &name, &h264_aac().path);
        wait_for(secs(20), || home.stream_info("live", &name)).expect("forwarded to its home");
        wait_for(secs(20), || standby.stream_info("live", &name)).expect("and to its standby");
        wait_for(secs(20), || edge.stream_info("live", &name)).expect("the edge lists it");
        let viewer = Watcher::start(edge.rtmp, "live", &name);
        assert!(viewer.wait_video(30, secs(30)) >= 30, "the edge viewer plays");
        Lab { _c: c, ingest, home, standby, edge, name, publisher, viewer, hosts, net }
    }

    /// The edge moved from the home to the standby (its log says so).
    fn edge_moved_to_standby(&self) {
        let standby = &self.hosts[3].name;
        let log = self.edge.log();
        let switch = log
            .lines()
            .find(|l| l.contains("upstream silent"))
            .unwrap_or_else(|| panic!("the edge never noticed the silent home:\n{log}"));
        assert!(switch.contains(&format!("to={standby}")), "switched to the standby: {switch}");
    }
}

#[test]
fn an_edge_cut_off_from_the_home_moves_to_the_standby_and_its_viewers_play_on() {
    let mut lab = Lab::start("ce");
    let mark = lab.viewer.mark();
    lab.net.cut(&lab.hosts[2], &lab.hosts[4]);
    let gap = plays_on(&lab.viewer, mark, 150, secs(1));
    println!("home–edge link cut: the edge viewer's longest gap {gap:?}");
    lab.edge_moved_to_standby();

    // The link returns: nothing moves again, the viewer plays on.
    lab.net.restore(&lab.hosts[2], &lab.hosts[4]);
    let mark = lab.viewer.mark();
    plays_on(&lab.viewer, mark, 60, secs(1));
    assert!(lab.viewer.is_playing(), "the viewer never reconnected");
    assert!(lab.publisher.is_running(), "the encoder never noticed");
    assert!(lab.home.stream_info("live", &lab.name).is_some(), "the home still hosts it");
    let _ = lab.publisher.stop();
}

#[test]
fn an_ingest_cut_off_from_the_home_keeps_edges_playing_from_the_standby() {
    let mut lab = Lab::start("co");
    let mark = lab.viewer.mark();
    let home_in = lab.home.metrics().value("sluice_bytes_in_total", &[]);
    lab.net.cut(&lab.hosts[1], &lab.hosts[2]);
    let gap = plays_on(&lab.viewer, mark, 150, secs(1));
    println!("ingest–home link cut: the edge viewer's longest gap {gap:?}");
    lab.edge_moved_to_standby();
    assert!(lab.standby.stream_info("live", &lab.name).is_some(), "the standby still hosts it");

    // The link returns: the ingest forwards to the home again (its bytes in grow again).
    lab.net.restore(&lab.hosts[1], &lab.hosts[2]);
    let starved = lab.home.metrics().value("sluice_bytes_in_total", &[]);
    assert!(starved >= home_in, "bytes in never go back");
    wait_for(secs(30), || {
        let now = lab.home.metrics().value("sluice_bytes_in_total", &[]);
        (now > starved + 100_000.0).then_some(())
    })
    .unwrap_or_else(|| {
        panic!("the ingest never forwarded to the home again:\n{}", lab.ingest.log())
    });
    wait_for(secs(10), || lab.home.stream_info("live", &lab.name)).expect("the home hosts it");
    let mark = lab.viewer.mark();
    plays_on(&lab.viewer, mark, 60, secs(1));
    assert!(lab.viewer.is_playing(), "the viewer never reconnected");
    assert!(lab.publisher.is_running(), "the encoder never noticed");
    let _ = lab.publisher.stop();
}
