//! Two control-plane replicas on one real cluster (etcd, one origin, two edges, ffmpeg
//! publishing): they answer `ListNodes`, `ListStreams`, `GetCapacity` and `/api/cluster`
//! identically, and `AssignViewer` picks the same edge on both for the same loads; an HLS
//! player (ffmpeg) that follows `/play/live/x.m3u8` (302 to the edge's absolute URL) decodes
//! frames from the chosen edge; killing one replica changes no answer of the other, and the
//! player on the edge does not notice.
//!
//! ffmpeg's HLS demuxer follows the redirect and resolves the playlist's relative URIs
//! (`x/index.m3u8?sid=…`, `seg-N.m4s?sid=…`) against the URL it was redirected to: the test
//! would fail otherwise, as those paths do not exist on the control plane's port.

use std::net::SocketAddr;
use std::time::Duration;

use serde_json::Value;
use sluice_proto::control::v1 as pb;
use sluice_proto::control::v1::control_plane_client::ControlPlaneClient;
use sluice_tests::cluster::TestCluster;
use sluice_tests::control_plane::{self, ControlPlaneProcess};
use sluice_tests::process::wait_for;
use sluice_tests::{h264_aac, http, secs, Player, Publisher};
use tonic::transport::Channel;

fn runtime() -> tokio::runtime::Runtime {
    tokio::runtime::Builder::new_current_thread().enable_all().build().expect("runtime")
}

async fn client(cp: &ControlPlaneProcess) -> ControlPlaneClient<Channel> {
    ControlPlaneClient::connect(cp.grpc_url()).await.expect("connect")
}

/// Everything a replica answers about the cluster, for comparing two replicas.
#[derive(Debug, Clone, PartialEq)]
struct Answers {
    nodes: pb::ListNodesResponse,
    streams: pb::ListStreamsResponse,
    capacity: pb::GetCapacityResponse,
}

async fn answers(c: &mut ControlPlaneClient<Channel>) -> Answers {
    Answers {
        nodes: c.list_nodes(pb::ListNodesRequest {}).await.expect("ListNodes").into_inner(),
        streams: c.list_streams(pb::ListStreamsRequest {}).await.expect("ListStreams").into_inner(),
        capacity: c
            .get_capacity(pb::GetCapacityRequest {})
            .await
            .expect("GetCapacity")
            .into_inner(),
    }
}

/// Both replicas' answers, once they are equal (each replica follows etcd on its own, so a load
/// report written between the two calls can make them differ for a moment). Panics with both
/// if they never agree.
async fn agreed(
    a: &mut ControlPlaneClient<Channel>,
    b: &mut ControlPlaneClient<Channel>,
) -> Answers {
    let mut last = None;
    for _ in 0..100 {
        let (x, y) = (answers(a).await, answers(b).await);
        if x == y {
            return x;
        }
        last = Some((x, y));
        tokio::time::sleep(Duration::from_millis(100)).await;
    }
    panic!("the replicas never answered alike: {last:#?}");
}

async fn assign(
    c: &mut ControlPlaneClient<Channel>,
    protocol: pb::Protocol,
) -> pb::AssignViewerResponse {
    let request = pb::AssignViewerRequest {
        app: "live".into(),
        stream: "x".into(),
        protocol: protocol.into(),
        ..Default::default()
    };
    c.assign_viewer(request).await.expect("AssignViewer").into_inner()
}

/// `/api/cluster` of a replica.
fn api(addr: SocketAddr) -> Option<Value> {
    let r = http::get(addr, "/api/cluster", secs(5)).ok().filter(|r| r.status == 200)?;
    serde_json::from_slice(&r.body).ok()
}

/// The latest report time of every node, as a replica sees it.
fn report_times(v: &Value) -> Vec<(String, u64)> {
    v["nodes"]
        .as_array()
        .into_iter()
        .flatten()
        .map(|n| {
            (
                n["id"].as_str().unwrap_or("").to_string(),
                n["load"]["reported_at_ms"].as_u64().unwrap_or(0),
            )
        })
        .collect()
}

/// Wait until every edge has reported again after now, as both replicas see it: a replica's
/// own count of viewers it sent to an edge since that edge's last report (which is not shared
/// between replicas) is then zero, so equal loads mean equal choices.
fn settle(replicas: &[&ControlPlaneProcess]) {
    let before: Vec<Vec<(String, u64)>> =
        replicas.iter().map(|cp| report_times(&api(cp.http).expect("api"))).collect();
    for (cp, before) in replicas.iter().zip(&before) {
        wait_for(secs(15), || {
            let now = report_times(&api(cp.http)?);
            let newer = now
                .iter()
                .all(|(id, t)| before.iter().find(|(b, _)| b == id).is_none_or(|(_, bt)| t > bt));
            newer.then_some(())
        })
        .expect("every node reported again");
    }
}

#[test]
fn replicas_answer_alike_and_one_dying_changes_nothing() {
    let c = TestCluster::new("cprep", &["origin-r", "edge-r1", "edge-r2"]);
    let origin = c.origin("origin-r", &[]);
    let e1 = c.edge("edge-r1", &["--max-viewers", "300"]);
    let e2 = c.edge("edge-r2", &["--max-viewers", "200"]);
    let cp_a = control_plane::start(&c, "a", &[]);
    let cp_b = control_plane::start(&c, "b", &[]);
    let rt = runtime();

    let mut publisher = Publisher::start_looped(&origin.rtmp_url("live", "x"), &h264_aac().path);
    for cp in [&cp_a, &cp_b] {
        wait_for(secs(20), || {
            api(cp.http)?["streams"].as_array()?.iter().any(|s| s["name"] == "x").then_some(())
        })
        .unwrap_or_else(|| panic!("live/x never listed; {:?}", publisher.stderr()));
    }

    // Same answers, and the same edge for the same loads.
    settle(&[&cp_a, &cp_b]);
    let (first, before_kill) = rt.block_on(async {
        let (mut a, mut b) = (client(&cp_a).await, client(&cp_b).await);
        let same = agreed(&mut a, &mut b).await;
        assert_eq!(same.nodes.nodes.len(), 3, "{same:?}");
        assert_eq!(same.streams.streams.len(), 1, "{same:?}");
        let (x, y) =
            (assign(&mut a, pb::Protocol::Hls).await, assign(&mut b, pb::Protocol::Hls).await);
        assert_eq!(x, y, "the replicas chose differently for the same loads");
        (x, same)
    });
    let edges = [(e1.http, "edge-r1"), (e2.http, "edge-r2")];
    let (edge_http, _) = edges.iter().find(|(_, id)| *id == first.edge_id).expect("a known edge");
    assert_eq!(first.url, format!("http://{edge_http}/live/x.m3u8"));
    // The same answer on both HTTP ports, whose JSON carries the revision it reflects.
    let (ja, jb) = (api(cp_a.http).expect("api a"), api(cp_b.http).expect("api b"));
    if ja["revision"] == jb["revision"] {
        assert_eq!(ja, jb, "same revision, different /api/cluster");
    }

    // An HLS player follows the redirect of replica A and decodes frames from the chosen edge.
    settle(&[&cp_a, &cp_b]);
    let redirect = http::get(cp_a.http, "/play/live/x.m3u8", secs(5)).expect("GET /play");
    assert_eq!(redirect.status, 302);
    assert_eq!(redirect.header("location"), Some(first.url.as_str()));
    settle(&[&cp_a, &cp_b]);
    let mut player = Player::start(&format!("http://{}/play/live/x.m3u8", cp_a.http));
    let frames = player.wait_frames(60, secs(40));
    assert!(
        frames >= 60,
        "HLS via /play decoded only {frames} frames; errors {:?}",
        player.errors()
    );
    let on_edge = wait_for(secs(15), || {
        let v = api(cp_b.http)?;
        let hls = |id: &str| {
            v["nodes"].as_array()?.iter().find(|n| n["id"] == id)?["load"]["viewers"]["hls"]
                .as_u64()
        };
        let (chosen, other) = if first.edge_id == "edge-r1" {
            (hls("edge-r1")?, hls("edge-r2")?)
        } else {
            (hls("edge-r2")?, hls("edge-r1")?)
        };
        (chosen >= 1).then_some((chosen, other))
    });
    let (chosen, other) = on_edge.expect("the chosen edge reports the HLS viewer");
    assert_eq!((chosen, other), (1, 0), "the HLS viewer is on {} only", first.edge_id);

    // With the viewer counted, the replicas still agree, on everything and on the next choice.
    settle(&[&cp_a, &cp_b]);
    let (second, with_viewer) = rt.block_on(async {
        let (mut a, mut b) = (client(&cp_a).await, client(&cp_b).await);
        let same = agreed(&mut a, &mut b).await;
        let (x, y) = (
            assign(&mut a, pb::Protocol::HttpFlv).await,
            assign(&mut b, pb::Protocol::HttpFlv).await,
        );
        assert_eq!(x, y, "the replicas chose differently for the same loads");
        (x, same)
    });
    assert_eq!(with_viewer.capacity.edges.as_ref().map(|e| e.viewers), Some(1));
    assert_eq!(before_kill.capacity.edges.as_ref().map(|e| e.max_viewers), Some(500));

    // Kill replica A: B's answers do not change, and the viewer on the edge plays on.
    let log_a = cp_a.log.clone();
    cp_a.kill();
    let frames_at_kill = player.frames();
    settle(&[&cp_b]);
    rt.block_on(async {
        let mut b = client(&cp_b).await;
        let after = answers(&mut b).await;
        let ids = |a: &Answers| -> Vec<(String, String, String)> {
            a.nodes.nodes.iter().map(|n| (n.id.clone(), n.role.clone(), n.state.clone())).collect()
        };
        assert_eq!(ids(&after), ids(&with_viewer), "nodes changed when replica A died");
        // The stream's identity and placement (its live figures move with every report).
        let streams = |a: &Answers| -> Vec<(String, String, String, String, Vec<String>)> {
            a.streams
                .streams
                .iter()
                .map(|s| {
                    (
                        s.app.clone(),
                        s.name.clone(),
                        s.origin.clone(),
                        s.home.clone(),
                        s.codecs.clone(),
                    )
                })
                .collect()
        };
        assert_eq!(streams(&after), streams(&with_viewer), "streams changed when replica A died");
        let totals = |a: &Answers| {
            let e = a.capacity.edges.unwrap_or_default();
            (e.viewers, e.max_viewers, a.capacity.recommended_edges)
        };
        assert_eq!(totals(&after), totals(&with_viewer), "capacity changed when replica A died");
        let again = assign(&mut b, pb::Protocol::HttpFlv).await;
        assert_eq!(again, second, "B chose differently once A was gone");
    });
    let frames_later = player.wait_frames(frames_at_kill + 60, secs(20));
    assert!(
        frames_later >= frames_at_kill + 60,
        "the HLS viewer stalled when replica A died ({frames_at_kill} -> {frames_later}); errors {:?}",
        player.errors()
    );
    // A new player through the surviving replica.
    let mut late = Player::start(&format!("http://{}/play/live/x.m3u8", cp_b.http));
    let frames = late.wait_frames(30, secs(40));
    assert!(
        frames >= 30,
        "HLS via replica B decoded only {frames} frames; errors {:?}",
        late.errors()
    );
    for p in [player, late] {
        let result = p.stop();
        assert!(result.errors.is_empty(), "decode errors: {:?}", result.errors);
    }
    publisher.stop();
    let _ = std::fs::remove_file(&cp_b.log);
    let _ = std::fs::remove_file(log_a);
}
