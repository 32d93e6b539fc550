//! The control plane's guarded and operator-facing side on a real cluster: the bearer token
//! (management and listing calls and `/api/` need it, players' calls, health and reflection do
//! not), the `Watch` event stream following ffmpeg's stream from start to end (and its task
//! ending when the client goes away), KEDA's external scaler reporting the viewers playing,
//! and TLS on both ports.

use std::path::Path;
use std::time::Duration;

use sluice_launch::process::Signal;
use sluice_proto::control::v1 as pb;
use sluice_proto::control::v1::control_plane_client::ControlPlaneClient;
use sluice_proto::control::v1::watch_event::Kind;
use sluice_proto::externalscaler as keda;
use sluice_proto::externalscaler::external_scaler_client::ExternalScalerClient;
use sluice_tests::cluster::TestCluster;
use sluice_tests::control_plane::{self, ControlPlaneProcess};
use sluice_tests::process::wait_for;
use sluice_tests::viewer::Watcher;
use sluice_tests::{h264_aac, http, secs, Publisher};
use tonic::metadata::MetadataValue;
use tonic::transport::{Certificate, Channel, ClientTlsConfig, Endpoint};
use tonic_health::pb::health_check_response::ServingStatus;
use tonic_health::pb::health_client::HealthClient;
use tonic_health::pb::HealthCheckRequest;
use tonic_reflection::pb::v1::server_reflection_client::ServerReflectionClient;
use tonic_reflection::pb::v1::server_reflection_request::MessageRequest;
use tonic_reflection::pb::v1::server_reflection_response::MessageResponse;
use tonic_reflection::pb::v1::ServerReflectionRequest;

const TOKEN: &str = "e2e-admin-token";

fn runtime() -> tokio::runtime::Runtime {
    tokio::runtime::Builder::new_current_thread().enable_all().build().expect("runtime")
}

/// A token file for the replica, in the test's temp dir.
fn token_file(tag: &str) -> std::path::PathBuf {
    let path = std::env::temp_dir().join(format!("sluice-cp-token-{tag}-{}", std::process::id()));
    std::fs::write(&path, format!("{TOKEN}\n")).expect("write the token file");
    path
}

/// `request` with `authorization: Bearer token`.
fn with_token<T>(mut request: tonic::Request<T>, token: &str) -> tonic::Request<T> {
    let value: MetadataValue<_> = format!("Bearer {token}").parse().expect("metadata value");
    request.metadata_mut().insert("authorization", value);
    request
}

async fn channel(cp: &ControlPlaneProcess) -> Channel {
    Endpoint::from_shared(cp.grpc_url()).expect("endpoint").connect().await.expect("connect")
}

/// The services server reflection lists.
async fn reflected_services(channel: Channel) -> Vec<String> {
    let mut reflection = ServerReflectionClient::new(channel);
    let request = ServerReflectionRequest {
        host: String::new(),
        message_request: Some(MessageRequest::ListServices(String::new())),
    };
    let mut answers = reflection
        .server_reflection_info(futures_util::stream::iter([request]))
        .await
        .expect("reflection call (open without a token)")
        .into_inner();
    let answer = answers.message().await.unwrap().expect("one answer");
    let Some(MessageResponse::ListServicesResponse(list)) = answer.message_response else {
        panic!("unexpected reflection answer {answer:?}");
    };
    list.service.into_iter().map(|s| s.name).collect()
}

/// The next Watch event within `timeout`.
async fn next_event(
    events: &mut tonic::Streaming<pb::WatchEvent>,
    timeout: Duration,
) -> pb::WatchEvent {
    tokio::time::timeout(timeout, events.message())
        .await
        .expect("a Watch event in time")
        .expect("the Watch stream is healthy")
        .expect("the Watch stream is open")
}

/// Events until one of `kind` arrives (load reports and node changes may come first).
async fn event_of(
    events: &mut tonic::Streaming<pb::WatchEvent>,
    kind: Kind,
    seen: &mut Vec<pb::WatchEvent>,
) -> pb::WatchEvent {
    for _ in 0..50 {
        let Ok(next) = tokio::time::timeout(secs(20), events.message()).await else {
            panic!("no {kind:?} within 20 s of the last event; seen {seen:?}");
        };
        let event = next.expect("the Watch stream is healthy").expect("the Watch stream is open");
        let found = event.kind() == kind;
        seen.push(event.clone());
        if found {
            return event;
        }
    }
    panic!("no {kind:?} among {seen:?}");
}

/// A gauge or counter of the replica's `/metrics`.
fn metric(cp: &ControlPlaneProcess, name: &str) -> Option<u64> {
    let text = http::get(cp.http, "/metrics", secs(5)).ok()?.text();
    text.lines().find_map(|l| l.strip_prefix(name)?.strip_prefix(' ')?.trim().parse().ok())
}

#[test]
fn the_token_guards_management_and_watch_follows_a_stream_from_start_to_end() {
    let c = TestCluster::new("cpa", &["origin-a", "edge-a1"]);
    let origin = c.origin("origin-a", &[]);
    let _edge = c.edge("edge-a1", &[]);
    let token = token_file("watch");
    let mut cp = control_plane::start(
        &c,
        "cpa",
        &["--token-file", token.to_str().unwrap(), "--drain-timeout", "2s"],
    );
    let rt = runtime();

    let mut events = rt.block_on(async {
        let ch = channel(&cp).await;
        let mut client = ControlPlaneClient::new(ch.clone());
        // Listings and management without the token, or with a wrong one: UNAUTHENTICATED.
        let err = client.list_nodes(pb::ListNodesRequest {}).await.expect_err("no token");
        assert_eq!(err.code(), tonic::Code::Unauthenticated, "{err}");
        assert!(err.message().contains("Bearer"), "a clear message: {err}");
        let wrong = with_token(tonic::Request::new(pb::ListNodesRequest {}), "not-the-token");
        let err = client.list_nodes(wrong).await.expect_err("wrong token");
        assert_eq!(err.code(), tonic::Code::Unauthenticated, "{err}");
        let err = client
            .watch(pb::WatchRequest { initial: true })
            .await
            .expect_err("Watch needs the token");
        assert_eq!(err.code(), tonic::Code::Unauthenticated);
        // With the token: OK.
        let nodes = client
            .list_nodes(with_token(tonic::Request::new(pb::ListNodesRequest {}), TOKEN))
            .await
            .expect("ListNodes with the token")
            .into_inner();
        assert_eq!(nodes.nodes.len(), 2, "{nodes:?}");
        // Players' calls, health and reflection stay open.
        let err = client
            .assign_viewer(pb::AssignViewerRequest {
                app: "live".into(),
                stream: "x".into(),
                ..Default::default()
            })
            .await
            .expect_err("no publisher yet");
        assert_eq!(err.code(), tonic::Code::NotFound, "open, and answered: {err}");
        let health = HealthClient::new(ch.clone())
            .check(HealthCheckRequest { service: String::new() })
            .await
            .expect("health is open")
            .into_inner();
        assert_eq!(health.status(), ServingStatus::Serving);
        let services = reflected_services(ch.clone()).await;
        for name in ["sluice.control.v1.ControlPlane", "externalscaler.ExternalScaler"] {
            assert!(services.iter().any(|n| n == name), "{name} in {services:?}");
        }

        // Watch with the token replays both nodes.
        let request = with_token(tonic::Request::new(pb::WatchRequest { initial: true }), TOKEN);
        let mut events = client.watch(request).await.expect("Watch with the token").into_inner();
        let mut added = Vec::new();
        for _ in 0..2 {
            let event = next_event(&mut events, secs(10)).await;
            assert_eq!(event.kind(), Kind::NodeAdded, "{event:?}");
            added.push(event.node.expect("node").id);
        }
        added.sort();
        assert_eq!(added, ["edge-a1", "origin-a"]);
        events
    });
    assert_eq!(metric(&cp, "sluice_control_plane_watchers"), Some(1));
    assert!(metric(&cp, "sluice_control_plane_unauthenticated_total").unwrap_or(0) >= 3);

    // The HTTP port: /api/ needs the token, the rest stays open.
    let api = format!("http://{}/api/cluster", cp.http);
    assert_eq!(http::curl_status(&api, &[]), "401");
    assert_eq!(http::curl_status(&api, &["-H", "Authorization: Bearer wrong"]), "401");
    let bearer = format!("Authorization: Bearer {TOKEN}");
    assert_ne!(http::curl_status(&api, &["-H", &bearer]), "401", "the token opens /api/");
    for open in ["/healthz", "/readyz", "/metrics"] {
        assert_eq!(http::get(cp.http, open, secs(5)).unwrap().status, 200, "{open}");
    }

    // ffmpeg publishes: STREAM_STARTED, and a player's call needs no token.
    let mut publisher = Publisher::start_looped(&origin.rtmp_url("live", "x"), &h264_aac().path);
    rt.block_on(async {
        let mut seen = Vec::new();
        let started = event_of(&mut events, Kind::StreamStarted, &mut seen).await;
        let stream = started.stream.expect("stream");
        assert_eq!((stream.app.as_str(), stream.name.as_str()), ("live", "x"));
        assert_eq!(stream.origin, "origin-a");
        let mut client = ControlPlaneClient::new(channel(&cp).await);
        let assigned = client
            .assign_viewer(pb::AssignViewerRequest {
                app: "live".into(),
                stream: "x".into(),
                ..Default::default()
            })
            .await
            .expect("AssignViewer without a token")
            .into_inner();
        assert_eq!(assigned.edge_id, "edge-a1");
    });

    // ffmpeg stops: STREAM_ENDED.
    publisher.stop();
    rt.block_on(async {
        let mut seen = Vec::new();
        let ended = event_of(&mut events, Kind::StreamEnded, &mut seen).await;
        assert_eq!(ended.stream.expect("stream").name, "x");
    });

    // The client goes away: its task ends and the gauge is back to zero. (Inside the runtime,
    // which sends the stream's reset.)
    let gone = rt.block_on(async {
        drop(events);
        for _ in 0..50 {
            if metric(&cp, "sluice_control_plane_watchers") == Some(0) {
                return true;
            }
            tokio::time::sleep(Duration::from_millis(200)).await;
        }
        false
    });
    assert!(gone, "the watcher task ended; log:\n{}", cp.log_text());

    // SIGTERM with a watcher connected: the watcher gets UNAVAILABLE (to go to another
    // replica) and the replica exits instead of waiting for it to leave. Once `block_on`
    // returns nobody drives this client's connection, so it never answers the server's GOAWAY:
    // the replica must not wait for it past `--drain-timeout`.
    rt.block_on(async {
        let mut client = ControlPlaneClient::new(channel(&cp).await);
        let request = with_token(tonic::Request::new(pb::WatchRequest { initial: false }), TOKEN);
        let mut events = client.watch(request).await.expect("Watch").into_inner();
        cp.signal(Signal::TERM);
        let end = tokio::time::timeout(secs(5), events.message()).await.expect("ends in time");
        let status = end.expect_err("ends with a status");
        assert_eq!(status.code(), tonic::Code::Unavailable, "{status}");
    });
    let exit = cp.wait_exit(secs(5)).expect("the replica exits on SIGTERM");
    assert!(exit.success(), "{exit:?}; log:\n{}", cp.log_text());
    let _ = std::fs::remove_file(&token);
    let _ = std::fs::remove_file(&cp.log);
}

#[test]
fn the_keda_scaler_reports_the_viewers_playing() {
    let c = TestCluster::new("cpk", &["origin-k", "edge-k1"]);
    let origin = c.origin("origin-k", &[]);
    let edge = c.edge("edge-k1", &["--max-viewers", "100"]);
    let cp = control_plane::start(&c, "cpk", &["--target-utilisation", "0.5"]);
    let rt = runtime();
    let object = |metadata: &[(&str, &str)]| keda::ScaledObjectRef {
        name: "sluice-edge".into(),
        namespace: "sluice".into(),
        scaler_metadata: metadata.iter().map(|(k, v)| (k.to_string(), v.to_string())).collect(),
    };

    rt.block_on(async {
        let mut scaler = ExternalScalerClient::new(channel(&cp).await);
        let active = scaler.is_active(object(&[])).await.expect("IsActive").into_inner();
        assert!(!active.result, "nothing is live");
        // The target: 100 viewers at 50 % once the edge reported, or the trigger's figure.
        let target = wait_for_async(|| {
            let (mut scaler, request) = (scaler.clone(), object(&[]));
            async move {
                let spec = scaler.get_metric_spec(request).await.ok()?.into_inner();
                let spec = spec.metric_specs.into_iter().next()?;
                ((spec.target_size_float - 50.0).abs() < 1e-9).then_some(spec)
            }
        })
        .await
        .expect("GetMetricSpec answers 100 x 0.5");
        assert_eq!((target.metric_name.as_str(), target.target_size), ("sluice-edge-viewers", 50));
        let spec = scaler
            .get_metric_spec(object(&[("targetViewersPerEdge", "20")]))
            .await
            .expect("GetMetricSpec")
            .into_inner();
        assert_eq!(spec.metric_specs[0].target_size, 20);
        let err = scaler
            .get_metric_spec(object(&[("targetViewersPerEdge", "lots")]))
            .await
            .expect_err("a bad target");
        assert_eq!(err.code(), tonic::Code::InvalidArgument);
    });

    let mut publisher = Publisher::start_looped(&origin.rtmp_url("live", "k"), &h264_aac().path);
    let claim = format!("{}/streams/live/k", c.prefix);
    wait_for(secs(15), || c.etcd.keys(&claim).contains(&claim).then_some(()))
        .expect("stream claimed in etcd");
    let viewers: Vec<Watcher> = (0..3).map(|_| Watcher::start(edge.rtmp, "live", "k")).collect();
    for v in &viewers {
        assert!(v.wait_video(5, secs(20)) >= 5, "viewer {} plays", v.url);
    }

    rt.block_on(async {
        let mut scaler = ExternalScalerClient::new(channel(&cp).await);
        let mut pushed =
            scaler.stream_is_active(object(&[])).await.expect("StreamIsActive").into_inner();
        let first = pushed.message().await.expect("stream").expect("one answer");
        // The claim may reach the replica's cache a moment after etcd.
        if !first.result {
            let next = tokio::time::timeout(secs(10), pushed.message()).await;
            assert!(next.expect("in time").expect("stream").expect("answer").result);
        }
        assert!(scaler.is_active(object(&[])).await.unwrap().into_inner().result);
        // The value: the three viewers on the edge, as the edge reports them.
        let value = wait_for_async(|| {
            let mut scaler = scaler.clone();
            let request = keda::GetMetricsRequest {
                scaled_object_ref: Some(object(&[])),
                metric_name: "sluice-edge-viewers".into(),
            };
            async move {
                let values = scaler.get_metrics(request).await.ok()?.into_inner();
                let v = values.metric_values.into_iter().next()?;
                (v.metric_value == 3).then_some(v)
            }
        })
        .await
        .expect("GetMetrics reports 3 viewers");
        assert_eq!(value.metric_name, "sluice-edge-viewers");
        assert!((value.metric_value_float - 3.0).abs() < 1e-9);
        let err = scaler
            .get_metrics(keda::GetMetricsRequest {
                scaled_object_ref: Some(object(&[])),
                metric_name: "cpu".into(),
            })
            .await
            .expect_err("not our metric");
        assert_eq!(err.code(), tonic::Code::NotFound);
    });
    for v in viewers {
        v.stop();
    }
    publisher.stop();
    let _ = std::fs::remove_file(&cp.log);
}

/// Retry `probe` every 200 ms for up to 20 s.
async fn wait_for_async<T, F, Fut>(mut probe: F) -> Option<T>
where
    F: FnMut() -> Fut,
    Fut: std::future::Future<Output = Option<T>>,
{
    for _ in 0..100 {
        if let Some(v) = probe().await {
            return Some(v);
        }
        tokio::time::sleep(Duration::from_millis(200)).await;
    }
    None
}

#[test]
fn a_replica_with_a_certificate_serves_tls_refuses_plain_text_and_renews_on_sighup() {
    // "cp" gets a certificate for `cp` and `localhost`, signed by the cluster's test CA; the
    // files it is given are copies, replaced later by a renewal under another CA.
    let c = TestCluster::new("cpt", &["cp"]);
    let dir: &Path = c.certs_dir();
    let live = sluice_tests::origin::TestDir::new("cp-live");
    let (cert, key, ca) =
        (live.path().join("cp.pem"), live.path().join("cp.key"), dir.join("ca.pem"));
    std::fs::copy(dir.join("cp.pem"), &cert).unwrap();
    std::fs::copy(dir.join("cp.key"), &key).unwrap();
    let renewed = sluice_tests::origin::TestDir::new("cp-renewed");
    sluice_tests::cluster::gen_certs(renewed.path(), &["cp"]);
    let ca2 = renewed.path().join("ca.pem");
    let cp = control_plane::spawn(
        &c,
        "cpt",
        &["--tls-cert", cert.to_str().unwrap(), "--tls-key", key.to_str().unwrap()],
    );
    let ca_pem = std::fs::read(&ca).expect("the CA");
    let rt = runtime();
    rt.block_on(async {
        let tls = ClientTlsConfig::new()
            .ca_certificate(Certificate::from_pem(&ca_pem))
            .domain_name("localhost");
        let endpoint = Endpoint::from_shared(format!("https://{}", cp.grpc))
            .expect("endpoint")
            .tls_config(tls)
            .expect("client TLS");
        let serving = wait_for_async(|| async {
            let ch = endpoint.clone().connect().await.ok()?;
            let status = HealthClient::new(ch)
                .check(HealthCheckRequest { service: String::new() })
                .await
                .ok()?
                .into_inner()
                .status();
            (status == ServingStatus::Serving).then_some(())
        })
        .await;
        assert!(serving.is_some(), "health over TLS; log:\n{}", cp.log_text());
        let services = reflected_services(endpoint.connect().await.unwrap()).await;
        assert!(services.iter().any(|n| n == "externalscaler.ExternalScaler"), "{services:?}");

        // Plain text to the TLS port: no answer.
        let plain = Endpoint::from_shared(cp.grpc_url()).expect("endpoint");
        let refused = match plain.connect().await {
            Err(_) => true,
            Ok(ch) => HealthClient::new(ch)
                .check(HealthCheckRequest { service: String::new() })
                .await
                .is_err(),
        };
        assert!(refused, "plain-text gRPC must not be answered");

        // A renewed certificate and SIGHUP: new connections get it on both ports, and a
        // channel opened before keeps working.
        let before = endpoint.connect().await.unwrap();
        std::fs::copy(renewed.path().join("cp.key"), &key).unwrap();
        std::fs::copy(renewed.path().join("cp.pem"), &cert).unwrap();
        cp.signal(Signal::HUP);
        let ca2_pem = std::fs::read(&ca2).expect("the second CA");
        let renewed_endpoint = Endpoint::from_shared(format!("https://{}", cp.grpc))
            .expect("endpoint")
            .tls_config(
                ClientTlsConfig::new()
                    .ca_certificate(Certificate::from_pem(&ca2_pem))
                    .domain_name("localhost"),
            )
            .expect("client TLS");
        let swapped = wait_for_async(|| async {
            let ch = renewed_endpoint.clone().connect().await.ok()?;
            HealthClient::new(ch).check(HealthCheckRequest { service: String::new() }).await.ok()
        })
        .await;
        assert!(swapped.is_some(), "gRPC serves the renewed certificate; log:\n{}", cp.log_text());
        // A fresh client (one that resumes no earlier TLS session) that trusts only the old CA.
        let fresh_old = Endpoint::from_shared(format!("https://{}", cp.grpc))
            .expect("endpoint")
            .tls_config(
                ClientTlsConfig::new()
                    .ca_certificate(Certificate::from_pem(&ca_pem))
                    .domain_name("localhost"),
            )
            .expect("client TLS");
        let old_ca = match fresh_old.connect().await {
            Err(_) => Err(()),
            Ok(ch) => HealthClient::new(ch)
                .check(HealthCheckRequest { service: String::new() })
                .await
                .map_err(|_| ()),
        };
        assert!(old_ca.is_err(), "the old CA no longer verifies new connections");
        let mut old = HealthClient::new(before);
        let answered = old.check(HealthCheckRequest { service: String::new() }).await;
        assert!(answered.is_ok(), "the channel opened before the renewal keeps working");
    });

    // The HTTP port is HTTPS too, with the same (renewed) certificate.
    let https = format!("https://localhost:{}/readyz", cp.http.port());
    let resolve = format!("localhost:{}:127.0.0.1", cp.http.port());
    let (ca_arg, ca2_arg) = (ca.to_str().unwrap(), ca2.to_str().unwrap());
    assert_eq!(http::curl_status(&https, &["--cacert", ca2_arg, "--resolve", &resolve]), "200");
    assert_ne!(http::curl_status(&https, &["--cacert", ca_arg, "--resolve", &resolve]), "200");
    assert_ne!(http::curl_status(&https, &["--resolve", &resolve]), "200", "unknown CA refused");
    let plain = http::get(cp.http, "/readyz", secs(5));
    assert!(
        !matches!(&plain, Ok(r) if r.status == 200),
        "plain HTTP to the HTTPS port gets no page: {:?}",
        plain.map(|r| r.status)
    );
    let _ = std::fs::remove_file(&cp.log);
}

#[test]
fn private_metrics_need_the_token_or_an_allowed_address() {
    let c = TestCluster::new("cpm", &["cp"]);
    let dir = sluice_tests::origin::TestDir::new("cp-metrics");
    let token_file = dir.path().join("token");
    std::fs::write(&token_file, "metrics-admin-token\n").unwrap();
    let token = token_file.to_str().unwrap();
    let curl = |cp: &ControlPlaneProcess, path: &str, bearer: Option<&str>| {
        let url = format!("http://{}{path}", cp.http);
        let header = bearer.map(|t| format!("Authorization: Bearer {t}"));
        let args: Vec<&str> = header.iter().flat_map(|h| ["-H", h.as_str()]).collect();
        http::curl_status(&url, &args)
    };
    let private = control_plane::start(&c, "cpm", &["--token-file", token, "--metrics-private"]);
    assert_eq!(curl(&private, "/metrics", None), "401");
    assert_eq!(curl(&private, "/api/cluster", None), "401");
    assert_eq!(curl(&private, "/metrics", Some("metrics-admin-token")), "200");
    assert_eq!(curl(&private, "/metrics", Some("wrong")), "401");
    assert_eq!(curl(&private, "/healthz", None), "200", "health stays open");
    // From an allowed range (this test's loopback), no token is needed.
    let allowed = control_plane::start(
        &c,
        "cpm",
        &["--token-file", token, "--metrics-private", "--admin-allow", "127.0.0.0/8"],
    );
    assert_eq!(curl(&allowed, "/metrics", None), "200");
    assert_eq!(curl(&allowed, "/api/cluster", None), "200");
    // Only that range: one that does not hold this address still needs the token.
    let elsewhere = control_plane::start(
        &c,
        "cpm",
        &["--token-file", token, "--metrics-private", "--admin-allow", "10.0.0.0/8"],
    );
    assert_eq!(curl(&elsewhere, "/metrics", None), "401");
}
