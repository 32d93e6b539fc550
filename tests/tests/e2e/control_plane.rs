//! The control plane on a real cluster: etcd, one origin, two edges and `sluice-control-plane`.
//! ffmpeg publishes; gRPC `AssignViewer` answers an absolute URL on an edge; ffmpeg follows
//! `/play/live/x.flv` (302) and decodes frames from the chosen edge; an unpublished stream is
//! NOT_FOUND; `grpc.health.v1` says SERVING; server reflection lists the services; every node's
//! load report is in etcd and updated.

use std::time::Duration;

use sluice_proto::control::v1 as pb;
use sluice_proto::control::v1::control_plane_client::ControlPlaneClient;
use sluice_tests::cluster::TestCluster;
use sluice_tests::control_plane;
use sluice_tests::metrics::Metrics;
use sluice_tests::process::wait_for;
use sluice_tests::replay::Replay;
use sluice_tests::{h264_aac, http, secs, Player, Publisher};
use tonic_health::pb::health_check_response::ServingStatus;
use tonic_health::pb::health_client::HealthClient;
use tonic_health::pb::HealthCheckRequest;
use tonic_reflection::pb::v1::server_reflection_client::ServerReflectionClient;
use tonic_reflection::pb::v1::server_reflection_request::MessageRequest;
use tonic_reflection::pb::v1::server_reflection_response::MessageResponse;
use tonic_reflection::pb::v1::ServerReflectionRequest;

/// The value of `key` in etcd, if set.
fn etcd_value(c: &TestCluster, key: &str) -> Option<String> {
    let out = c.etcd.ctl(&["get", key, "--print-value-only"]).ok()?;
    let value = out.trim();
    (!value.is_empty()).then(|| value.to_string())
}

fn runtime() -> tokio::runtime::Runtime {
    tokio::runtime::Builder::new_current_thread().enable_all().build().expect("runtime")
}

#[test]
fn viewers_are_assigned_to_edges_over_grpc_and_http() {
    let c = TestCluster::new("cp", &["origin-c", "edge-c1", "edge-c2"]);
    // The origin transcodes (one small rung): its capacity for it is reported too.
    let ladder = sluice_tests::origin::TestDir::new("cp-ladder");
    let ladder = ladder.path().join("ladder.toml");
    std::fs::write(
        &ladder,
        "[live]\nrenditions = [{ name = \"lo\", height = 180, video-kbps = 200 }]\n",
    )
    .unwrap();
    let origin =
        c.origin("origin-c", &["--ladder-file", ladder.to_str().unwrap(), "--max-transcodes", "3"]);
    let e1 = c.edge("edge-c1", &["--max-viewers", "500"]);
    let e2 = c.edge("edge-c2", &[]);
    let cp = control_plane::start(&c, "cp", &[]);
    let rt = runtime();
    let endpoint = format!("http://{}", cp.grpc);

    // Every node's load report is in etcd under the documented key, and it is rewritten.
    let load_key = format!("{}/load/edge/edge-c1", c.prefix);
    let first = wait_for(secs(10), || etcd_value(&c, &load_key)).expect("edge-c1 reports its load");
    let report: serde_json::Value = serde_json::from_str(&first).expect("load report is JSON");
    assert_eq!(report["capacity"]["max_viewers"], 500);
    assert_eq!(report["draining"], false);
    wait_for(secs(10), || etcd_value(&c, &load_key).filter(|v| *v != first))
        .expect("the load report is updated");
    for key in ["load/origin/origin-c", "load/edge/edge-c2"] {
        let key = format!("{}/{key}", c.prefix);
        assert!(etcd_value(&c, &key).is_some(), "{key} written");
    }

    rt.block_on(async {
        // Health: SERVING once the cache is loaded (overall and for the service).
        let channel = tonic::transport::Endpoint::from_shared(endpoint.clone())
            .expect("endpoint")
            .connect()
            .await
            .expect("connect");
        let mut health = HealthClient::new(channel.clone());
        for service in ["", "sluice.control.v1.ControlPlane"] {
            let status = health
                .check(HealthCheckRequest { service: service.into() })
                .await
                .expect("health check")
                .into_inner()
                .status();
            assert_eq!(status, ServingStatus::Serving, "health of {service:?}");
        }

        // Reflection lists the services (what grpcurl's `list` asks).
        let mut reflection = ServerReflectionClient::new(channel.clone());
        let request = ServerReflectionRequest {
            host: String::new(),
            message_request: Some(MessageRequest::ListServices(String::new())),
        };
        let mut answers = reflection
            .server_reflection_info(futures_util::stream::iter([request]))
            .await
            .expect("reflection call")
            .into_inner();
        let answer = answers.message().await.unwrap().expect("one answer");
        let Some(MessageResponse::ListServicesResponse(list)) = answer.message_response else {
            panic!("unexpected reflection answer {answer:?}");
        };
        let names: Vec<String> = list.service.into_iter().map(|s| s.name).collect();
        for name in ["sluice.control.v1.ControlPlane", "grpc.health.v1.Health"] {
            assert!(names.iter().any(|n| n == name), "{name} in {names:?}");
        }
        // The same through v1alpha, which older grpcurl and grpcui still ask.
        use tonic_reflection::pb::v1alpha as alpha;
        let mut old_reflection =
            alpha::server_reflection_client::ServerReflectionClient::new(channel.clone());
        let request = alpha::ServerReflectionRequest {
            host: String::new(),
            message_request: Some(alpha::server_reflection_request::MessageRequest::ListServices(
                String::new(),
            )),
        };
        let mut answers = old_reflection
            .server_reflection_info(futures_util::stream::iter([request]))
            .await
            .expect("v1alpha reflection call")
            .into_inner();
        let answer = answers.message().await.unwrap().expect("one v1alpha answer");
        let Some(alpha::server_reflection_response::MessageResponse::ListServicesResponse(list)) =
            answer.message_response
        else {
            panic!("unexpected v1alpha reflection answer {answer:?}");
        };
        let old_names: Vec<String> = list.service.into_iter().map(|s| s.name).collect();
        for name in ["sluice.control.v1.ControlPlane", "externalscaler.ExternalScaler"] {
            assert!(old_names.iter().any(|n| n == name), "{name} in v1alpha's {old_names:?}");
        }

        // No publisher: NOT_FOUND.
        let mut client = ControlPlaneClient::connect(endpoint.clone()).await.unwrap();
        let err = client
            .assign_viewer(pb::AssignViewerRequest {
                app: "live".into(),
                stream: "nobody".into(),
                ..Default::default()
            })
            .await
            .expect_err("no publisher");
        assert_eq!(err.code(), tonic::Code::NotFound);
    });

    let mut publisher = Publisher::start_looped(&origin.rtmp_url("live", "x"), &h264_aac().path);
    let claim = format!("{}/streams/live/x", c.prefix);
    wait_for(secs(15), || c.etcd.keys(&claim).contains(&claim).then_some(()))
        .expect("stream claimed in etcd");

    let edges = [(e1.http, "edge-c1"), (e2.http, "edge-c2")];
    let assigned = rt.block_on(async {
        let mut client = ControlPlaneClient::connect(endpoint.clone()).await.unwrap();
        // The control plane's cache may lag the claim by a moment.
        let mut answer = None;
        for _ in 0..50 {
            let request = pb::AssignViewerRequest {
                app: "live".into(),
                stream: "x".into(),
                protocol: pb::Protocol::HttpFlv.into(),
                ..Default::default()
            };
            match client.assign_viewer(request).await {
                Ok(r) => {
                    answer = Some(r.into_inner());
                    break;
                }
                Err(s) if s.code() == tonic::Code::NotFound => {
                    tokio::time::sleep(Duration::from_millis(200)).await;
                }
                Err(s) => panic!("AssignViewer: {s}"),
            }
        }
        let answer = answer.expect("AssignViewer answered");
        let ingest = client
            .resolve_ingest(pb::ResolveIngestRequest { app: "live".into(), stream: "x".into() })
            .await
            .expect("ResolveIngest")
            .into_inner();
        assert_eq!(ingest.origin_id, "origin-c");
        assert_eq!(ingest.url, origin.rtmp_url("live", "x"));
        let nodes = client.list_nodes(pb::ListNodesRequest {}).await.unwrap().into_inner();
        assert_eq!(nodes.nodes.len(), 3, "{nodes:?}");
        let streams = client.list_streams(pb::ListStreamsRequest {}).await.unwrap().into_inner();
        // live/x, and its rendition once the transcoder has claimed it.
        let x = streams.streams.iter().find(|s| s.name == "x").expect("live/x listed");
        assert_eq!(x.home, "origin-c");
        let names: Vec<&str> = streams.streams.iter().map(|s| s.name.as_str()).collect();
        assert!(names.iter().all(|n| ["x", "x_lo"].contains(n)), "{names:?}");
        let capacity = client.get_capacity(pb::GetCapacityRequest {}).await.unwrap().into_inner();
        assert_eq!(capacity.nodes.len(), 3);
        assert!(capacity.nodes.iter().all(|n| n.load.is_some()), "every node reported");
        let edges = capacity.edges.expect("edge totals");
        assert_eq!(edges.max_viewers, 500 + 10_000, "edge-c1 500, edge-c2 the default");
        assert_eq!(capacity.recommended_edges, Some(1));
        assert!((capacity.target_utilisation - 0.6).abs() < 1e-9);
        // The origin transcodes live/x, of at most 3 at once (reported every 2 s).
        let mut origins = capacity.origins.expect("origin totals");
        for _ in 0..50 {
            if origins.transcodes == 1 {
                break;
            }
            tokio::time::sleep(Duration::from_millis(200)).await;
            let capacity = client.get_capacity(pb::GetCapacityRequest {}).await.unwrap();
            origins = capacity.into_inner().origins.expect("origin totals");
        }
        assert_eq!((origins.transcodes, origins.max_transcodes), (1, 3), "{origins:?}");
        answer
    });
    let (edge_http, _) = edges
        .iter()
        .find(|(_, id)| *id == assigned.edge_id)
        .unwrap_or_else(|| panic!("assigned to an unknown edge {assigned:?}"));
    assert_eq!(assigned.url, format!("http://{edge_http}/live/x.flv"));

    // The HTTP port: 302 to an edge's absolute URL, JSON with the choice, 404 without publisher.
    let redirect = http::get(cp.http, "/play/live/x.flv", secs(5)).expect("GET /play");
    assert_eq!(redirect.status, 302);
    let location = redirect.header("location").expect("Location").to_string();
    assert!(
        edges.iter().any(|(addr, _)| location == format!("http://{addr}/live/x.flv")),
        "{location}"
    );
    let json = http::get(cp.http, "/play/live/x.json", secs(5)).expect("GET json");
    assert_eq!(json.status, 200);
    let choice: serde_json::Value = serde_json::from_slice(&json.body).unwrap();
    assert!(choice["url"].as_str().is_some_and(|u| u.ends_with("/live/x.flv")), "{choice}");
    let missing = http::get(cp.http, "/play/live/nobody.flv", secs(5)).unwrap();
    assert_eq!(missing.status, 404);

    // ffmpeg follows the redirect and decodes frames from the edge.
    let mut player = Player::start(&format!("http://{}/play/live/x.flv", cp.http));
    let frames = player.wait_frames(60, secs(30));
    assert!(frames >= 60, "decoded only {frames} frames; errors {:?}", player.errors());

    // /metrics carries GetCapacity's figures, per role and per node, and counts the player
    // (from the edge's next load report).
    let scrape = || {
        let text = http::get(cp.http, "/metrics", secs(5)).expect("GET /metrics").text();
        Metrics::parse(&text).unwrap_or_else(|e| panic!("/metrics: {e}\n{text}"))
    };
    let m = wait_for(secs(15), || {
        let m = scrape();
        (m.get("sluice_cluster_viewers", &[("role", "edge")])? >= 1.0).then_some(m)
    })
    .unwrap_or_else(|| panic!("the player counted on /metrics:\n{:?}", scrape()));
    assert_eq!(m.get("sluice_cluster_recommended_edges", &[]), Some(1.0), "as GetCapacity said");
    assert_eq!(m.get("sluice_cluster_max_viewers", &[("role", "edge")]), Some(10_500.0));
    let edge_viewers = m.value("sluice_cluster_viewers", &[("role", "edge")]);
    let headroom = m.get("sluice_cluster_viewer_headroom", &[("role", "edge")]);
    assert_eq!(headroom, Some(10_500.0 - edge_viewers), "capacity less the viewers");
    assert_eq!(m.get("sluice_cluster_max_viewers", &[("role", "origin")]), Some(10_000.0));
    fn node(id: &str) -> [(&'static str, &str); 1] {
        [("node", id)]
    }
    assert_eq!(m.get("sluice_cluster_node_max_viewers", &node("edge-c1")), Some(500.0));
    for id in ["origin-c", "edge-c1", "edge-c2"] {
        assert_eq!(m.get("sluice_cluster_node_serving", &node(id)), Some(1.0), "{id}");
        assert!(m.get("sluice_cluster_node_memory_bytes", &node(id)) > Some(1e6), "{id}");
    }
    let playing = m.value("sluice_cluster_node_viewers", &node("edge-c1"))
        + m.value("sluice_cluster_node_viewers", &node("edge-c2"));
    assert_eq!(playing, m.value("sluice_cluster_viewers", &[("role", "edge")]));
    // live/x and its rendition live/x_lo.
    assert_eq!(m.get("sluice_cluster_node_streams", &node("origin-c")), Some(2.0));
    assert_eq!(m.get("sluice_cluster_transcodes", &[("role", "origin")]), Some(1.0));
    assert_eq!(m.get("sluice_cluster_max_transcodes", &[("role", "origin")]), Some(3.0));
    // The 302, the JSON answer and the player's request.
    assert!(m.value("sluice_control_plane_http_assignments_total", &[]) >= 3.0);
    let result = player.stop();
    assert!(result.errors.is_empty(), "decode errors: {:?}", result.errors);
    publisher.stop();
    let _ = std::fs::remove_file(&cp.log);
}

/// gRPC health of the whole server, `None` when the call fails.
async fn health(endpoint: &str) -> Option<ServingStatus> {
    let channel = tonic::transport::Endpoint::from_shared(endpoint.to_string())
        .ok()?
        .connect_timeout(secs(2))
        .timeout(secs(2))
        .connect()
        .await
        .ok()?;
    let mut client = HealthClient::new(channel);
    let answer = client.check(HealthCheckRequest { service: String::new() }).await.ok()?;
    Some(answer.into_inner().status())
}

#[test]
fn a_replica_cut_off_from_etcd_is_not_ready_until_it_follows_it_again() {
    let c = TestCluster::new("cpe", &["edge-e"]);
    let _edge = c.edge("edge-e", &[]);
    let cp = control_plane::start(&c, "cpe", &[]);
    let rt = runtime();
    let endpoint = cp.grpc_url();
    let readyz = || http::get(cp.http, "/readyz", secs(5)).expect("GET /readyz");
    assert_eq!(readyz().status, 200);
    assert_eq!(rt.block_on(health(&endpoint)), Some(ServingStatus::Serving));

    // etcd hangs: the replica notices (keep-alive) and says it is not ready, on both ports.
    let paused = c.etcd.pause();
    let refused = wait_for(secs(30), || {
        let r = readyz();
        (r.status == 503).then_some(r)
    })
    .unwrap_or_else(|| panic!("/readyz stayed 200 with etcd frozen; log:\n{}", cp.log_text()));
    assert_eq!(refused.text(), "etcd out of reach: the cluster cache may be stale\n");
    let health_now = rt.block_on(health(&endpoint));
    assert_eq!(health_now, Some(ServingStatus::NotServing), "log:\n{}", cp.log_text());
    let metrics = http::get(cp.http, "/metrics", secs(5)).expect("GET /metrics").text();
    assert!(metrics.contains("sluice_control_plane_ready 0\n"), "{metrics}");

    // etcd is back: ready and serving again, without a restart.
    drop(paused);
    wait_for(secs(30), || (readyz().status == 200).then_some(()))
        .unwrap_or_else(|| panic!("/readyz never 200 again; log:\n{}", cp.log_text()));
    let back = wait_for(secs(10), || {
        let s = rt.block_on(health(&endpoint))?;
        (s == ServingStatus::Serving).then_some(s)
    });
    assert_eq!(back, Some(ServingStatus::Serving), "log:\n{}", cp.log_text());
    let _ = std::fs::remove_file(&cp.log);
}

#[test]
fn resolve_ingest_names_the_home_the_origins_forward_to() {
    let c = TestCluster::new("cpi", &["origin-i1", "origin-i2"]);
    // No hot standby: with two origins it would hold every stream on both.
    let o1 = c.origin("origin-i1", &["--standbys", "0"]);
    let o2 = c.origin("origin-i2", &["--standbys", "0"]);
    let cp = control_plane::start(&c, "cpi", &[]);
    let rt = runtime();
    let endpoint = cp.grpc_url();

    // The control plane's home for each of a few names, once it sees both origins.
    let homes = rt.block_on(async {
        let mut client = ControlPlaneClient::connect(endpoint).await.expect("connect");
        for _ in 0..100 {
            let nodes = client.list_nodes(pb::ListNodesRequest {}).await.unwrap().into_inner();
            if nodes.nodes.iter().filter(|n| n.state == "ready").count() == 2 {
                break;
            }
            tokio::time::sleep(Duration::from_millis(100)).await;
        }
        let mut homes = Vec::new();
        for i in 0..40 {
            let name = format!("cam{i}");
            let request = pb::ResolveIngestRequest { app: "live".into(), stream: name.clone() };
            let answer = client.resolve_ingest(request).await.expect("ResolveIngest").into_inner();
            homes.push((name, answer.origin_id, answer.url));
        }
        homes
    });
    let at = |id: &str| homes.iter().find(|(_, home, _)| home == id).expect("a name homed there");
    let (on_i1, on_i2) = (at("origin-i1").clone(), at("origin-i2").clone());
    assert_eq!(on_i2.2, o2.rtmp_url("live", &on_i2.0), "the home's RTMP URL");

    // Both published at origin-i1: the name homed on origin-i2 is forwarded there, the other
    // stays on origin-i1 only.
    let fixture = &h264_aac().path;
    let _p1 = Replay::start(o1.rtmp, "live", &on_i1.0, fixture);
    let _p2 = Replay::start(o1.rtmp, "live", &on_i2.0, fixture);
    wait_for(secs(20), || o2.stream_info("live", &on_i2.0))
        .unwrap_or_else(|| panic!("{} forwarded to origin-i2, its home", on_i2.0));
    assert!(o1.stream_info("live", &on_i1.0).is_some(), "{} live on origin-i1", on_i1.0);
    assert!(o2.stream_info("live", &on_i1.0).is_none(), "{} not forwarded: at home", on_i1.0);
    let _ = std::fs::remove_file(&cp.log);
}

/// `--log-format json` (here `SLUICE_LOG_FORMAT`, as a container sets it): every line the
/// replica writes to stderr is a JSON object, and one logged during a gRPC call (a call refused
/// for want of the token) carries the call's span: its method and the caller's address.
#[test]
fn the_control_plane_logs_json_lines_with_the_calls_span() {
    let c = TestCluster::new("cpjson", &[]);
    let token = std::env::temp_dir().join(format!("sluice-cp-json-token-{}", std::process::id()));
    std::fs::write(&token, "json-log-token\n").expect("write the token file");
    let extra = ["--token-file", token.to_str().unwrap()];
    let mut cp = control_plane::start_env(&c, "cpjson", &extra, &[("SLUICE_LOG_FORMAT", "json")]);
    let rt = runtime();
    let refused = rt.block_on(async {
        let mut client = ControlPlaneClient::connect(cp.grpc_url()).await.expect("connect");
        client.list_nodes(pb::ListNodesRequest {}).await.expect_err("ListNodes needs the token")
    });
    assert_eq!(refused.code(), tonic::Code::Unauthenticated);
    drop(rt); // closes the connection: the replica need not wait for it to drain
    cp.signal(sluice_launch::process::Signal::TERM);
    let status = cp.wait_exit(secs(15));
    assert!(status.is_some_and(|s| s.success()), "exit on SIGTERM: {status:?}");

    let log = cp.log_text();
    let lines: Vec<serde_json::Value> = log
        .lines()
        .map(|l| serde_json::from_str(l).unwrap_or_else(|e| panic!("not JSON ({e}): {l}")))
        .collect();
    assert!(lines.iter().all(serde_json::Value::is_object), "{log}");
    let message = |v: &serde_json::Value| v["fields"]["message"].as_str().map(str::to_string);
    for wanted in ["listening", "stopping"] {
        assert!(lines.iter().any(|v| message(v).as_deref() == Some(wanted)), "{wanted}: {log}");
    }
    let line = lines
        .iter()
        .find(|v| message(v).as_deref() == Some("call refused"))
        .unwrap_or_else(|| panic!("no `call refused` line: {log}"));
    assert_eq!(line["span"]["name"], "grpc", "{line}");
    assert_eq!(line["span"]["method"], "/sluice.control.v1.ControlPlane/ListNodes", "{line}");
    let peer = line["span"]["peer"].as_str().and_then(|p| p.parse::<std::net::SocketAddr>().ok());
    assert!(peer.is_some_and(|p| p.ip().is_loopback()), "{line}");
    let _ = std::fs::remove_file(&cp.log);
    let _ = std::fs::remove_file(&token);
}
