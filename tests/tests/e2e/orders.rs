//! Management orders on a real cluster (etcd, origins, edges, `sluice-control-plane`, ffmpeg):
//! a drained edge gets no assignment, sends new HTTP viewers to the other edge, reports itself
//! not ready and draining, and its RTMP and HTTP-FLV viewers are gone by the deadline while a
//! viewer on the other edge keeps decoding; undrained, it gets viewers again. A kicked ffmpeg
//! publisher is disconnected by its origin and the stream leaves `ListStreams`, while the
//! encoder reconnecting is not kicked again. A drained origin leaves the ring, refuses new
//! publishers and closes its own at the deadline. Unknown nodes and streams are NOT_FOUND.

use std::time::Duration;

use sluice_proto::control::v1 as pb;
use sluice_proto::control::v1::control_plane_client::ControlPlaneClient;
use sluice_tests::cluster::TestCluster;
use sluice_tests::control_plane;
use sluice_tests::process::wait_for;
use sluice_tests::viewer::Watcher;
use sluice_tests::{h264_aac, http, secs, Origin, Player, Publisher};
use tonic::transport::Channel;

fn runtime() -> tokio::runtime::Runtime {
    tokio::runtime::Builder::new_current_thread().enable_all().build().expect("runtime")
}

async fn client(endpoint: &str) -> ControlPlaneClient<Channel> {
    ControlPlaneClient::connect(endpoint.to_string()).await.expect("connect to the control plane")
}

async fn node(client: &mut ControlPlaneClient<Channel>, id: &str) -> pb::Node {
    let req = pb::GetNodeRequest { id: id.into(), role: String::new() };
    client.get_node(req).await.expect("GetNode").into_inner()
}

/// Wait (up to `timeout`) until GetNode of `id` satisfies `ok`.
async fn wait_node(
    client: &mut ControlPlaneClient<Channel>,
    id: &str,
    timeout: Duration,
    ok: impl Fn(&pb::Node) -> bool,
) -> pb::Node {
    let deadline = tokio::time::Instant::now() + timeout;
    loop {
        let n = node(client, id).await;
        if ok(&n) || tokio::time::Instant::now() >= deadline {
            return n;
        }
        tokio::time::sleep(Duration::from_millis(200)).await;
    }
}

/// The edges chosen for `n` viewers of live/`stream` in a row.
async fn assign_many(
    client: &mut ControlPlaneClient<Channel>,
    stream: &str,
    n: usize,
) -> Vec<String> {
    let mut chosen = Vec::new();
    for _ in 0..n {
        let req = pb::AssignViewerRequest {
            app: "live".into(),
            stream: stream.into(),
            protocol: pb::Protocol::HttpFlv.into(),
            ..Default::default()
        };
        chosen.push(client.assign_viewer(req).await.expect("AssignViewer").into_inner().edge_id);
    }
    chosen
}

fn publish_and_wait_listed(c: &TestCluster, origin: &Origin, edges: &[&Origin]) -> Publisher {
    let publisher = Publisher::start_looped(&origin.rtmp_url("live", "x"), &h264_aac().path);
    let claim = format!("{}/streams/live/x", c.prefix);
    wait_for(secs(15), || c.etcd.keys(&claim).contains(&claim).then_some(()))
        .expect("stream claimed in etcd");
    for e in edges {
        wait_for(secs(10), || e.stream_info("live", "x")).expect("the edge lists the stream");
    }
    publisher
}

#[test]
fn a_drained_edge_gets_no_viewers_and_closes_its_own_by_the_deadline() {
    let c = TestCluster::new("ord", &["origin-d", "edge-d1", "edge-d2"]);
    let origin = c.origin("origin-d", &[]);
    let e1 = c.edge("edge-d1", &[]);
    let e2 = c.edge("edge-d2", &[]);
    let cp = control_plane::start(&c, "cp", &[]);
    let endpoint = cp.grpc_url();
    let rt = runtime();
    let mut publisher = publish_and_wait_listed(&c, &origin, &[&e1, &e2]);

    // Viewers on edge 1 (HTTP-FLV and RTMP) and on edge 2 (HTTP-FLV), all decoding.
    let mut flv1 = Player::start(&e1.flv_url("live", "x"));
    let rtmp1 = Watcher::start(e1.rtmp, "live", "x");
    let mut flv2 = Player::start(&e2.flv_url("live", "x"));
    assert!(flv1.wait_frames(30, secs(30)) >= 30, "edge 1 FLV: {:?}", flv1.errors());
    assert!(rtmp1.wait_video(30, secs(30)) >= 30, "edge 1 RTMP viewer plays");
    assert!(flv2.wait_frames(30, secs(30)) >= 30, "edge 2 FLV: {:?}", flv2.errors());

    let deadline = 4;
    let deadline_ms = rt.block_on(async {
        let mut cp = client(&endpoint).await;
        let req = pb::DrainNodeRequest {
            id: "edge-d1".into(),
            role: "edge".into(),
            deadline_seconds: deadline,
        };
        let resp = cp.drain_node(req).await.expect("DrainNode").into_inner();
        assert!(resp.node.expect("node").drain_ordered);
        assert!(resp.deadline_ms > 0);
        // Every replica's cache sees the order; from then on no assignment picks the edge.
        let n = wait_node(&mut cp, "edge-d1", secs(10), |n| n.drain_ordered).await;
        assert!(n.drain_ordered, "{n:?}");
        let chosen = assign_many(&mut cp, "x", 40).await;
        assert!(chosen.iter().all(|e| e == "edge-d2"), "assigned to a drained edge: {chosen:?}");
        // The edge marks itself draining in the registry and in its load report.
        let n = wait_node(&mut cp, "edge-d1", secs(10), |n| {
            n.state == "draining" && n.load.as_ref().is_some_and(|l| l.draining)
        })
        .await;
        assert_eq!(n.state, "draining", "{n:?}");
        assert!(n.load.is_some_and(|l| l.draining));
        resp.deadline_ms
    });

    // Not ready for a load balancer; new HTTP viewers are sent to the other edge.
    let ready = wait_for(secs(5), || {
        (http::get(e1.http, "/readyz", secs(2)).ok()?.status == 503).then_some(())
    });
    assert!(ready.is_some(), "a drained edge answers /readyz with 503");
    let redirect = http::get(e1.http, "/live/x.flv", secs(5)).expect("GET on the drained edge");
    assert_eq!(redirect.status, 302);
    assert_eq!(
        redirect.header("location"),
        Some(format!("http://{}/live/x.flv", e2.http).as_str())
    );
    let hls = http::get(e1.http, "/live/x/index.m3u8?sid=0123", secs(5)).expect("GET playlist");
    assert_eq!(hls.status, 302, "HLS playlists move too");
    assert_eq!(
        hls.header("location"),
        Some(format!("http://{}/live/x/index.m3u8", e2.http).as_str()),
        "without the session id"
    );

    // At the deadline (DrainNode's `deadline_ms`, counted by the edge from when its cache saw
    // the order, so a little later), edge 1's viewers are closed, not before; edge 2's viewer
    // keeps decoding.
    let now_ms = || {
        let since = std::time::SystemTime::now().duration_since(std::time::UNIX_EPOCH);
        u64::try_from(since.expect("clock").as_millis()).expect("ms")
    };
    let (mut flv_gone, mut rtmp_gone) = (None, None);
    while flv_gone.is_none() || rtmp_gone.is_none() {
        let t = now_ms();
        assert!(t < deadline_ms + 10_000, "edge 1 viewers still connected 10 s past the deadline");
        if flv_gone.is_none() && !flv1.is_running() {
            flv_gone = Some(t);
        }
        if rtmp_gone.is_none() && !rtmp1.is_playing() {
            rtmp_gone = Some(t);
        }
        std::thread::sleep(Duration::from_millis(50));
    }
    for (who, at) in [("HTTP-FLV", flv_gone), ("RTMP", rtmp_gone)] {
        let at = at.expect("gone");
        eprintln!("{who} viewer closed {:+} ms from the deadline", at as i64 - deadline_ms as i64);
        assert!(at + 300 >= deadline_ms, "{who} viewer closed {} ms early", deadline_ms - at);
        // The cache's delay in seeing the order, and the player noticing the close.
        assert!(at <= deadline_ms + 3_000, "{who} viewer closed {} ms late", at - deadline_ms);
    }
    let before = flv2.frames();
    assert!(
        flv2.wait_frames(before + 30, secs(20)) >= before + 30,
        "edge 2 stalled: {:?}",
        flv2.errors()
    );
    assert!(e1.log().contains("drain deadline"), "the edge logs the deadline");

    // Undrained: ready again, assigned again, and a new viewer plays from it.
    rt.block_on(async {
        let mut cp = client(&endpoint).await;
        let req = pb::UndrainNodeRequest { id: "edge-d1".into(), role: String::new() };
        let resp = cp.undrain_node(req).await.expect("UndrainNode").into_inner();
        assert!(!resp.node.expect("node").drain_ordered);
        let n = wait_node(&mut cp, "edge-d1", secs(10), |n| {
            n.state == "ready" && !n.drain_ordered && n.load.as_ref().is_some_and(|l| !l.draining)
        })
        .await;
        assert_eq!(n.state, "ready", "{n:?}");
        // Enough viewers in a row that the bound spills some onto edge 1 whichever edge is
        // the stream's first choice.
        let chosen = assign_many(&mut cp, "x", 40).await;
        assert!(chosen.iter().any(|e| e == "edge-d1"), "never assigned after undrain: {chosen:?}");
    });
    assert_eq!(http::get(e1.http, "/readyz", secs(2)).expect("readyz").status, 200);
    let mut again = Player::start(&e1.flv_url("live", "x"));
    assert!(again.wait_frames(30, secs(30)) >= 30, "new viewer on edge 1: {:?}", again.errors());
    again.stop();
    flv2.stop();
    publisher.stop();
    let _ = std::fs::remove_file(&cp.log);
}

#[test]
fn a_kicked_publisher_is_disconnected_and_unknown_names_are_not_found() {
    let c = TestCluster::new("kick", &["origin-k"]);
    let origin = c.origin("origin-k", &[]);
    let cp = control_plane::start(&c, "cp", &[]);
    let endpoint = cp.grpc_url();
    let rt = runtime();
    let mut publisher = publish_and_wait_listed(&c, &origin, &[]);

    rt.block_on(async {
        let mut cp = client(&endpoint).await;
        // The control plane's cache may lag the claim by a moment.
        let listed = async {
            loop {
                let s = cp.list_streams(pb::ListStreamsRequest {}).await.unwrap().into_inner();
                if !s.streams.is_empty() {
                    return;
                }
                tokio::time::sleep(Duration::from_millis(200)).await;
            }
        };
        tokio::time::timeout(secs(10), listed).await.expect("ListStreams shows the stream");
        let req = pb::KickPublisherRequest { app: "live".into(), stream: "x".into() };
        let resp = cp.kick_publisher(req).await.expect("KickPublisher").into_inner();
        assert_eq!(resp.origin_id, "origin-k");
    });
    // ffmpeg's connection is closed: it exits; the stream leaves the listing.
    assert!(publisher.wait(secs(10)).is_some(), "the kicked ffmpeg is still publishing");
    let told = publisher.stderr().join("\n");
    assert!(told.contains("stopped by an operator"), "the encoder is told why:\n{told}");
    rt.block_on(async {
        let mut cp = client(&endpoint).await;
        let gone = async {
            loop {
                let s = cp.list_streams(pb::ListStreamsRequest {}).await.unwrap().into_inner();
                if s.streams.is_empty() {
                    return;
                }
                tokio::time::sleep(Duration::from_millis(200)).await;
            }
        };
        tokio::time::timeout(secs(10), gone).await.expect("the kicked stream leaves ListStreams");
    });
    assert_eq!(origin.metrics().value("sluice_publishers_kicked_total", &[]), 1.0);
    assert!(origin.log().contains("kick order"), "the origin logs why it closed the publisher");

    // The encoder reconnects: the same order (still in etcd) does not kick it again.
    let mut back = Publisher::start_looped(&origin.rtmp_url("live", "x"), &h264_aac().path);
    let claim = format!("{}/streams/live/x", c.prefix);
    wait_for(secs(15), || c.etcd.keys(&claim).contains(&claim).then_some(()))
        .expect("stream claimed again");
    std::thread::sleep(secs(3));
    assert!(back.is_running(), "a reconnecting encoder was kicked by the old order");
    back.stop();

    rt.block_on(async {
        let mut cp = client(&endpoint).await;
        let kick = pb::KickPublisherRequest { app: "live".into(), stream: "nobody".into() };
        assert_eq!(cp.kick_publisher(kick).await.unwrap_err().code(), tonic::Code::NotFound);
        let drain = pb::DrainNodeRequest { id: "nobody".into(), ..Default::default() };
        assert_eq!(cp.drain_node(drain).await.unwrap_err().code(), tonic::Code::NotFound);
        let undrain = pb::UndrainNodeRequest { id: "nobody".into(), role: String::new() };
        assert_eq!(cp.undrain_node(undrain).await.unwrap_err().code(), tonic::Code::NotFound);
    });
    let _ = std::fs::remove_file(&cp.log);
}

#[test]
fn a_drained_origin_refuses_new_publishers_and_closes_its_own_at_the_deadline() {
    let c = TestCluster::new("ordo", &["origin-o"]);
    let origin = c.origin("origin-o", &[]);
    let cp = control_plane::start(&c, "cp", &[]);
    let endpoint = cp.grpc_url();
    let rt = runtime();
    let mut publisher = publish_and_wait_listed(&c, &origin, &[]);

    rt.block_on(async {
        let mut cp = client(&endpoint).await;
        let req = pb::DrainNodeRequest {
            id: "origin-o".into(),
            role: String::new(),
            deadline_seconds: 3,
        };
        cp.drain_node(req).await.expect("DrainNode");
        // It leaves the ring: no origin is left to ingest.
        let n = wait_node(&mut cp, "origin-o", secs(10), |n| n.state == "draining").await;
        assert_eq!(n.state, "draining", "{n:?}");
        let req = pb::ResolveIngestRequest { app: "live".into(), stream: "y".into() };
        assert_eq!(cp.resolve_ingest(req).await.unwrap_err().code(), tonic::Code::Unavailable);
    });
    // A new encoder is refused; the one publishing is closed at the deadline.
    let mut refused = Publisher::start_looped(&origin.rtmp_url("live", "y"), &h264_aac().path);
    assert!(refused.wait(secs(10)).is_some(), "a drained origin took a new publisher");
    assert!(publisher.wait(secs(15)).is_some(), "the publisher outlived the drain deadline");
    assert!(origin.log().contains("publish refused: this node is draining"));

    // Restarted while the order stands: it registers as starting and goes to draining, never
    // through ready (a load balancer or the ring would otherwise take it back for a moment).
    // Every value written to its key, as etcd itself reports them.
    let key = format!("{}/nodes/origin/origin-o", c.prefix);
    let mut watch = std::process::Command::new("etcdctl")
        .env("ETCDCTL_API", "3")
        .args(["--endpoints", &c.etcd.endpoint(), "watch", &key])
        .stdout(std::process::Stdio::piped())
        .spawn()
        .expect("etcdctl watch");
    std::thread::sleep(Duration::from_millis(500)); // the watch is established
    drop(origin);
    let origin = c.origin("origin-o", &[]);
    rt.block_on(async {
        let mut cp = client(&endpoint).await;
        let n = wait_node(&mut cp, "origin-o", secs(20), |n| n.state == "draining").await;
        assert_eq!(n.state, "draining", "back draining after the restart: {n:?}");
    });
    let _ = watch.kill();
    let out = watch.wait_with_output().expect("etcdctl output");
    let written = String::from_utf8_lossy(&out.stdout);
    let states: Vec<&str> = ["\"starting\"", "\"ready\"", "\"draining\""]
        .into_iter()
        .filter(|s| written.contains(&format!("\"state\":{s}")))
        .collect();
    assert!(states.contains(&"\"starting\""), "registered as starting: {written}");
    assert!(!states.contains(&"\"ready\""), "the restarted origin showed ready: {written}");
    assert!(origin.log().contains("drain ordered"), "{}", origin.log());

    // Undrained: publishers are welcome again.
    rt.block_on(async {
        let mut cp = client(&endpoint).await;
        let req = pb::UndrainNodeRequest { id: "origin-o".into(), role: "origin".into() };
        cp.undrain_node(req).await.expect("UndrainNode");
        let n = wait_node(&mut cp, "origin-o", secs(10), |n| n.state == "ready").await;
        assert_eq!(n.state, "ready", "{n:?}");
    });
    let mut back = publish_and_wait_listed(&c, &origin, &[]);
    std::thread::sleep(secs(2));
    assert!(back.is_running(), "publishing after undrain failed: {:?}", back.stderr());
    back.stop();
    let _ = std::fs::remove_file(&cp.log);
}
