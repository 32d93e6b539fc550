//! `--otlp-endpoint`: the origin, the edge and the control plane export their tracing spans
//! over OTLP/gRPC. A minimal trace collector (a tonic server implementing `TraceService/Export`)
//! runs inside the test and records every export request it receives.

use std::time::{Duration, Instant};

use sluice_tests::otlp::{seen_spans, Collector, SeenSpan};
use sluice_tests::process::wait_for;
use sluice_tests::{h264_aac, secs, Origin, Publisher};

/// A publish produces an `rtmp` span with `stream` and `role` attributes, exported to the
/// collector (at the latest when the origin flushes on SIGTERM) with service.name
/// `sluice-origin`.
#[test]
fn origin_exports_rtmp_spans_over_otlp_grpc() {
    let fixture = h264_aac();
    let rt =
        tokio::runtime::Builder::new_multi_thread().worker_threads(1).enable_all().build().unwrap();
    let (collector, addr) = Collector::start(&rt);

    let endpoint = format!("http://{addr}");
    let mut origin = Origin::start(&["--otlp-endpoint", &endpoint]);
    let url = origin.rtmp_url("live", "traced");
    let mut publisher = Publisher::start(&url, &fixture.path);
    wait_for(secs(10), || origin.stream_info("live", "traced")).expect("publisher is live");
    std::thread::sleep(Duration::from_secs(1));
    publisher.stop();
    wait_for(secs(10), || origin.stream_info("live", "traced").is_none().then_some(()))
        .expect("stream gone after the publisher stopped");

    let before_shutdown = seen_spans(&sluice_tests::lock(&collector.requests)).len();
    let status = origin.terminate();
    eprintln!("origin exit status {status:?}; spans exported before SIGTERM: {before_shutdown}");
    assert!(
        status.is_some_and(|s| s.success()),
        "origin did not exit cleanly on SIGTERM: {status:?}"
    );

    let matches = |s: &SeenSpan| {
        s.name == "rtmp"
            && s.stream.as_deref() == Some("live/traced")
            && s.role.as_deref() == Some("publish")
    };
    // The exporter flushes at shutdown; give the collector a moment to finish the last request.
    let deadline = Instant::now() + secs(5);
    while Instant::now() < deadline
        && !seen_spans(&sluice_tests::lock(&collector.requests)).iter().any(matches)
    {
        std::thread::sleep(Duration::from_millis(100));
    }
    let spans = seen_spans(&sluice_tests::lock(&collector.requests));
    let requests = sluice_tests::lock(&collector.requests).len();
    eprintln!("collector received {requests} export requests, {} spans", spans.len());
    let publish = spans.iter().find(|s| matches(s)).unwrap_or_else(|| {
        panic!(
            "no `rtmp` span with stream=live/traced role=publish among {} exported spans: {:?}",
            spans.len(),
            spans.iter().take(20).collect::<Vec<_>>()
        )
    });
    assert_eq!(
        publish.service.as_deref(),
        Some("sluice-origin"),
        "resource service.name of {publish:?}"
    );
    rt.shutdown_timeout(Duration::from_secs(1));
}

/// A stream's spans follow it across nodes: the ingest origin's `forward` span is the parent
/// of the home origin's `forward_in` span, and an edge's `pull` span is the parent of the
/// `relay_serve` span on the origin it subscribes to (W3C traceparent carried by the relay).
#[test]
fn spans_follow_a_stream_across_origins_and_edges() {
    use sluice_tests::cluster::{find_name, home, TestCluster};
    use sluice_tests::wait::wait_until;
    use sluice_tests::Player;

    let rt =
        tokio::runtime::Builder::new_multi_thread().worker_threads(1).enable_all().build().unwrap();
    let (collector, addr) = Collector::start(&rt);
    let otlp = format!("http://{addr}");
    let c = TestCluster::new("tr", &["tr-a", "tr-b", "tr-edge"]);
    let mut a = c.origin("tr-a", &["--otlp-endpoint", &otlp]);
    let mut b = c.origin("tr-b", &["--otlp-endpoint", &otlp]);
    let mut edge = c.edge("tr-edge", &["--otlp-endpoint", &otlp, "--upstream-linger", "1s"]);

    // A stream whose home is tr-b, published on tr-a: tr-a forwards it to tr-b.
    let name = find_name("t", |n| home(&["tr-a", "tr-b"], n) == "tr-b");
    let stream = format!("live/{name}");
    let mut publisher = Publisher::start_looped(&a.rtmp_url("live", &name), &h264_aac().path);
    wait_for(secs(20), || b.stream_info("live", &name)).expect("stream forwarded to tr-b");
    let mut viewer = Player::start(&edge.rtmp_url("live", &name));
    assert!(viewer.wait_frames(30, secs(30)) >= 30, "edge viewer: {:?}", viewer.errors());
    viewer.stop();
    publisher.stop();
    wait_for(secs(10), || b.stream_info("live", &name).is_none().then_some(()))
        .expect("stream ended on tr-b");
    // The edge's pull lingers 1 s without viewers, then stops (and its span ends).
    let stopped = format!("stream={stream}}}: sluice_edge::pull: pull stopped");
    wait_until(secs(20), "the edge's pull stopped", || edge.log().contains(&stopped));
    for node in [&mut edge, &mut a, &mut b] {
        let status = node.terminate();
        assert!(status.is_some_and(|s| s.success()), "clean exit on SIGTERM: {status:?}");
    }

    let find = |name: &str, spans: &[SeenSpan]| -> Option<SeenSpan> {
        spans
            .iter()
            .find(|s| s.name == name && s.stream.as_deref() == Some(stream.as_str()))
            .cloned()
    };
    let spans = wait_for(secs(10), || {
        let spans = collector.spans();
        ["forward", "forward_in", "pull", "relay_serve"]
            .iter()
            .all(|n| find(n, &spans).is_some())
            .then_some(spans)
    })
    .unwrap_or_else(|| {
        let names: Vec<(String, Option<String>, Option<String>)> =
            collector.spans().into_iter().map(|s| (s.name, s.stream, s.service)).collect();
        panic!("missing cluster spans for {stream}; got {names:?}")
    });
    let forward = find("forward", &spans).unwrap();
    let forward_in = find("forward_in", &spans).unwrap();
    assert_eq!(forward.service.as_deref(), Some("sluice-origin"));
    assert_eq!(forward_in.trace_id, forward.trace_id, "forward_in joins the ingest's trace");
    assert_eq!(forward_in.parent_span_id, forward.span_id, "forward_in is a child of forward");
    let pull = find("pull", &spans).unwrap();
    assert_eq!(pull.service.as_deref(), Some("sluice-edge"));
    let serve = spans
        .iter()
        .find(|s| s.name == "relay_serve" && s.trace_id == pull.trace_id)
        .unwrap_or_else(|| panic!("no relay_serve span in the edge's trace; pull {pull:?}"));
    assert_eq!(serve.parent_span_id, pull.span_id, "relay_serve is a child of the edge's pull");
    assert_eq!(serve.service.as_deref(), Some("sluice-origin"));
    rt.shutdown_timeout(Duration::from_secs(1));
}

/// The control plane exports a span per gRPC call with the nodes' `--otlp-endpoint`: named
/// after the method, with the method and the caller's address as attributes, under service.name
/// `sluice-control-plane` (flushed at the latest when the replica stops on SIGTERM).
#[test]
fn control_plane_exports_a_span_per_grpc_call() {
    use sluice_proto::control::v1 as pb;
    use sluice_proto::control::v1::control_plane_client::ControlPlaneClient;
    use sluice_tests::cluster::TestCluster;
    use sluice_tests::control_plane;

    let rt =
        tokio::runtime::Builder::new_multi_thread().worker_threads(1).enable_all().build().unwrap();
    let (collector, addr) = Collector::start(&rt);
    let c = TestCluster::new("cpotlp", &[]);
    let mut cp = control_plane::start(&c, "cp", &["--otlp-endpoint", &format!("http://{addr}")]);
    rt.block_on(async {
        let channel = tonic::transport::Endpoint::from_shared(cp.grpc_url())
            .expect("endpoint")
            .connect()
            .await
            .expect("connect");
        ControlPlaneClient::new(channel)
            .list_nodes(pb::ListNodesRequest {})
            .await
            .expect("ListNodes");
    });
    cp.signal(sluice_launch::process::Signal::TERM);
    let status = cp.wait_exit(secs(15));
    assert!(
        status.is_some_and(|s| s.success()),
        "exit on SIGTERM: {status:?}; log:\n{}",
        cp.log_text()
    );

    let method = "/sluice.control.v1.ControlPlane/ListNodes";
    let span = wait_for(secs(10), || {
        collector.spans().into_iter().find(|s| s.attr("method") == Some(method))
    })
    .unwrap_or_else(|| {
        let names: Vec<(String, Option<String>)> =
            collector.spans().into_iter().map(|s| (s.name, s.service)).collect();
        panic!("no span of {method} exported; got {names:?}; log:\n{}", cp.log_text())
    });
    assert_eq!(span.name, "sluice.control.v1.ControlPlane/ListNodes", "{span:?}");
    assert_eq!(span.service.as_deref(), Some("sluice-control-plane"), "{span:?}");
    let peer: std::net::SocketAddr =
        span.attr("peer").and_then(|p| p.parse().ok()).unwrap_or_else(|| panic!("peer: {span:?}"));
    assert!(peer.ip().is_loopback() && peer.port() != cp.grpc.port(), "{span:?}");
    rt.shutdown_timeout(Duration::from_secs(1));
}

/// The control plane's `--log-format` and `--otlp-endpoint` are the nodes' flags: the same
/// names, variables, help and defaults in `--help` of every binary.
#[test]
fn every_binary_has_the_same_tracing_flags() {
    let entry = |binary: &str, flag: &str| -> String {
        let mut command = std::process::Command::new(sluice_tests::paths::binary(binary));
        for (var, _) in std::env::vars_os() {
            if var.to_string_lossy().starts_with("SLUICE_") {
                command.env_remove(var);
            }
        }
        let out = command.arg("--help").output().expect("--help");
        assert!(out.status.success(), "{binary} --help: {out:?}");
        let help = String::from_utf8_lossy(&out.stdout).into_owned();
        // The flag's paragraph: its line and what follows up to the next flag, as words (a
        // binary with a long help somewhere lays every entry out on more lines).
        let mut lines =
            help.lines().skip_while(|l| !l.trim_start().starts_with(&format!("{flag} ")));
        let first =
            lines.next().unwrap_or_else(|| panic!("{binary} --help has no {flag}:\n{help}"));
        let rest = lines.take_while(|l| !l.trim_start().starts_with('-'));
        let words: Vec<&str> =
            std::iter::once(first).chain(rest).flat_map(str::split_whitespace).collect();
        words.join(" ")
    };
    for flag in ["--log-format", "--otlp-endpoint"] {
        let origin = entry("sluice-origin", flag);
        assert!(origin.contains(&format!("SLUICE_{}", flag[2..].replace('-', "_").to_uppercase())));
        for binary in ["sluice-edge", "sluice-control-plane"] {
            assert_eq!(entry(binary, flag), origin, "{binary} {flag} differs from sluice-origin's");
        }
    }
}
