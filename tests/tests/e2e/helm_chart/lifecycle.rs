//! The lifecycle harness: rendered pods run the way Kubernetes runs them. A pod starts from
//! its rendered spec (see [`super::pods`]: init container, command, args); it counts as ready
//! when its rendered readiness probe answers 200; it terminates the Kubernetes way: out of the
//! Service's endpoints, the rendered preStop hook run to its end, SIGTERM, then SIGKILL once
//! `terminationGracePeriodSeconds` (from the start of the termination) has passed.
//!
//! With it, a rolling restart of the edges (new pod ready before an old one terminates, as
//! the Deployment's `maxUnavailable: 0` says) under 200 viewers that follow the control
//! plane's assignments (`/play/APP/STREAM.json`, then RTMP to the edge it names, and again
//! whenever the edge closes them) loses no viewer; and evicting the origin a stream is
//! forwarded to moves it to the next ring owner with no encoder reconnect and no gap for the
//! edge's viewers.

use std::process::Command;
use std::thread::JoinHandle;
use std::time::{Duration, Instant};

use k8s_openapi::api::core::v1::Container;
use sluice_tests::cluster::{self, find_name, TestCluster};
use sluice_tests::follower::{Follower, FollowerStats};
use sluice_tests::helm::{rendered_sets, RenderedSet};
use sluice_tests::origin::TestDir;
use sluice_tests::process::wait_for;
use sluice_tests::viewer::Watcher;
use sluice_tests::{control_plane, h264_small, http, secs, Origin, Publisher};

use super::pods::start_node;

/// A running pod of the rendering.
struct Pod {
    name: String,
    node: Origin,
    _root: TestDir,
    container: Container,
    grace: Duration,
}

impl Pod {
    fn start(set: &RenderedSet, binary: &str, name: &str, cluster: &TestCluster) -> Pod {
        let (node, root) = start_node(set, binary, name, cluster);
        let w = set.workload_running(binary);
        let container = w.container_running(binary).expect("container").clone();
        let spec = w.template.spec.as_ref().expect("pod spec");
        let grace = spec.termination_grace_period_seconds.expect("terminationGracePeriodSeconds");
        let grace = Duration::from_secs(u64::try_from(grace).expect("a positive grace"));
        Pod { name: name.to_string(), node, _root: root, container, grace }
    }

    /// Whether the rendered readiness probe answers 200 now.
    fn ready(&self) -> bool {
        let probe = self.container.readiness_probe.as_ref().expect("a readiness probe");
        let path = probe.http_get.as_ref().and_then(|g| g.path.clone()).expect("probe path");
        http::get(self.node.http, &path, secs(2)).is_ok_and(|r| r.status == 200)
    }

    /// Terminate the Kubernetes way (the caller has taken it out of the endpoints): preStop,
    /// SIGTERM, SIGKILL at the grace period. Returns how long it took and whether the process
    /// exited by itself within the grace period.
    fn terminate(mut self) -> (Duration, bool) {
        let start = Instant::now();
        let hook = self.container.lifecycle.as_ref().and_then(|l| l.pre_stop.as_ref());
        if let Some(command) = hook.and_then(|h| h.exec.as_ref()).and_then(|e| e.command.clone()) {
            let status = Command::new(&command[0]).args(&command[1..]).status();
            assert!(status.is_ok_and(|s| s.success()), "{}: preStop {command:?}", self.name);
        }
        self.node.signal_term();
        let exited = loop {
            if !self.node.is_running() {
                break true;
            }
            if start.elapsed() >= self.grace {
                break false; // Dropping the node kills it.
            }
            std::thread::sleep(Duration::from_millis(50));
        };
        (start.elapsed(), exited)
    }
}

const VIEWERS: usize = 200;

#[test]
fn a_rolling_restart_of_the_edges_loses_no_viewer_that_follows_the_control_plane() {
    let test = "a_rolling_restart_of_the_edges_loses_no_viewer";
    let Some(sets) = rendered_sets(test) else { return };
    let set = sets.iter().find(|s| s.name == "lifecycle-values-1.35").expect("the lifecycle set");
    let cluster = TestCluster::new("life", &["cp"]);
    let origin = Pod::start(set, "sluice-origin", "sluice-origin-0", &cluster);
    let mut edges: Vec<Pod> = ["sluice-edge-old-a", "sluice-edge-old-b"]
        .iter()
        .map(|name| Pod::start(set, "sluice-edge", name, &cluster))
        .collect();
    let cp = control_plane::start(&cluster, "life", &[]);
    let mut publisher =
        Publisher::start_looped(&origin.node.rtmp_url("live", "life"), &h264_small().path);
    for e in &edges {
        wait_for(secs(20), || e.node.stream_info("live", "life"))
            .unwrap_or_else(|| panic!("{} lists the stream", e.name));
    }

    let followers: Vec<Follower> = (0..VIEWERS).map(|_| Follower::start(cp.http, "life")).collect();
    let all_playing = |fs: &[Follower]| fs.iter().filter(|f| f.stats().playing).count();
    wait_for(secs(60), || (all_playing(&followers) == VIEWERS).then_some(())).unwrap_or_else(
        || {
            let playing = all_playing(&followers);
            panic!("{playing} of {VIEWERS} viewers playing; one: {:?}", followers[0].stats())
        },
    );

    // One edge at a time: a new pod, ready by its probe, then an old one terminated.
    let started = Instant::now();
    for i in 0..2 {
        let new = Pod::start(set, "sluice-edge", &format!("sluice-edge-new-{i}"), &cluster);
        wait_for(secs(30), || new.ready().then_some(())).expect("the new edge becomes ready");
        let old = edges.remove(0);
        let name = old.name.clone();
        let (took, exited) = old.terminate();
        println!("{name} terminated in {took:?} (exited by itself: {exited})");
        assert!(exited, "{name} exited within its grace period");
        edges.push(new);
    }
    println!("rolling restart took {:?}", started.elapsed());

    // Every viewer plays again, from the new edges, after a short interruption.
    wait_for(secs(30), || (all_playing(&followers) == VIEWERS).then_some(()))
        .unwrap_or_else(|| panic!("{} of {VIEWERS} viewers playing", all_playing(&followers)));
    let stats: Vec<FollowerStats> = followers.into_iter().map(Follower::finish).collect();
    let longest = stats.iter().map(|s| s.longest_outage).max().unwrap_or_default();
    let failures: u32 = stats.iter().map(|s| s.failures).sum();
    let moved = stats.iter().filter(|s| s.edges.len() > 1).count();
    println!(
        "{VIEWERS} viewers: {moved} moved edges, longest outage {longest:?}, {failures} retries"
    );
    for s in &stats {
        let last = s.edges.last().expect("played");
        assert!(last.starts_with("sluice-edge-new-"), "a viewer left on an old edge: {s:?}");
    }
    assert!(longest < secs(5), "a viewer was without the stream for {longest:?}");
    publisher.stop();
    drop(edges);
    drop(origin);
}

#[test]
fn evicting_the_home_origin_moves_its_stream_without_a_publisher_reconnect() {
    let test = "evicting_the_home_origin_moves_its_stream";
    let Some(sets) = rendered_sets(test) else { return };
    let set = sets.iter().find(|s| s.name == "lifecycle-values-1.35").expect("the lifecycle set");
    let c = TestCluster::new("evict", &["cp"]);
    let ingest = Pod::start(set, "sluice-origin", "sluice-origin-0", &c);
    let home = Pod::start(set, "sluice-origin", "sluice-origin-1", &c);
    let edge = Pod::start(set, "sluice-edge", "sluice-edge-a", &c);
    let cp = control_plane::start(&c, "evict", &[]);

    // A name whose ring home is sluice-origin-1, published at sluice-origin-0: it is forwarded.
    let origins = ["sluice-origin-0", "sluice-origin-1"];
    let name = find_name("cam", |n| cluster::home(&origins, n) == "sluice-origin-1");
    let mut publisher =
        Publisher::start_looped(&ingest.node.rtmp_url("live", &name), &h264_small().path);
    wait_for(secs(20), || home.node.stream_info("live", &name)).expect("forwarded to its home");
    wait_for(secs(20), || edge.node.stream_info("live", &name)).expect("the edge lists it");
    let viewers: Vec<Follower> = (0..20).map(|_| Follower::start(cp.http, &name)).collect();
    wait_for(secs(30), || viewers.iter().all(|v| v.stats().playing).then_some(()))
        .expect("the viewers play");

    let measured = Watcher::start(edge.node.rtmp, "live", &name);
    assert!(measured.wait_video(30, secs(20)) >= 30, "the measured viewer plays");
    let mark = measured.mark();

    // The home is evicted the Kubernetes way: the stream moves to the next ring owner (here
    // the ingest itself), made before the old forward is broken.
    let (took, exited) = home.terminate();
    println!("sluice-origin-1 evicted in {took:?} (exited by itself: {exited})");
    assert!(exited, "the evicted origin exited within its grace period");
    std::thread::sleep(secs(3));
    assert!(publisher.is_running(), "the encoder was disconnected: {:?}", publisher.stderr());
    let starts = ingest.node.log().matches("publish start").count();
    assert_eq!(starts, 1, "the encoder published once, never again:\n{}", ingest.node.log());
    let log = edge.node.log();
    let resubscribed = log
        .lines()
        .any(|l| l.contains("switched upstream") && l.contains("\"to\":\"sluice-origin-0\""));
    assert!(resubscribed, "the edge now pulls from sluice-origin-0:\n{log}");
    // Frames kept coming on the edge across the move: no gap over a second, none lost.
    let record = measured.stop();
    let gaps = record.interruptions(mark, secs(1), 0);
    assert!(
        gaps.is_empty(),
        "the edge viewer noticed the move: {gaps:?}; {:?}",
        record.report_from(mark)
    );
    let stats: Vec<FollowerStats> = viewers.into_iter().map(Follower::finish).collect();
    let longest = stats.iter().map(|s| s.longest_outage).max().unwrap_or_default();
    let moved = stats.iter().filter(|s| s.edges.len() > 1).count();
    println!("20 edge viewers: {moved} reconnected, longest outage {longest:?}");
    assert!(stats.iter().all(|s| s.playing), "every viewer still plays: {stats:?}");
    assert!(longest < secs(5), "a viewer was without the stream for {longest:?}");
    publisher.stop();
}

/// The external scaler's answers for the rendered ScaledObject: (edge viewers, target).
fn scaler_answers(cp: &control_plane::ControlPlaneProcess, so: &serde_json::Value) -> (f64, f64) {
    use sluice_proto::externalscaler as keda;
    let metadata = so["spec"]["triggers"][0]["metadata"].as_object().expect("metadata");
    let object = keda::ScaledObjectRef {
        name: so["metadata"]["name"].as_str().expect("name").to_string(),
        namespace: "default".into(),
        scaler_metadata: metadata
            .iter()
            .map(|(k, v)| (k.clone(), v.as_str().expect("string").to_string()))
            .collect(),
    };
    let rt = tokio::runtime::Builder::new_current_thread().enable_all().build().unwrap();
    rt.block_on(async {
        let mut scaler = keda::external_scaler_client::ExternalScalerClient::connect(cp.grpc_url())
            .await
            .expect("connect to the scaler");
        let spec = scaler.get_metric_spec(object.clone()).await.expect("GetMetricSpec");
        let spec = spec.into_inner().metric_specs.remove(0);
        let request = keda::GetMetricsRequest {
            scaled_object_ref: Some(object),
            metric_name: spec.metric_name.clone(),
        };
        let metrics = scaler.get_metrics(request).await.expect("GetMetrics").into_inner();
        (metrics.metric_values[0].metric_value_float, spec.target_size_float)
    })
}

/// HPA time per real second: each one-second sync stands for the controller's 15 s period,
/// so the chart's minute-long policies and five-minute window play out in seconds.
const HPA_SYNC: Duration = Duration::from_secs(15);

#[test]
fn edges_scale_up_under_a_viewer_ramp_and_back_down_after_it() {
    let test = "edges_scale_up_under_a_viewer_ramp";
    let Some(sets) = rendered_sets(test) else { return };
    let set = sets.iter().find(|s| s.name == "lifecycle-values-1.35").expect("the lifecycle set");
    let so = set.raw_of_kind("ScaledObject").next().expect("a ScaledObject").clone();
    let mut hpa = sluice_tests::hpa::Hpa::from_scaled_object(&so);
    let c = TestCluster::new("scale", &["cp"]);
    let origin = Pod::start(set, "sluice-origin", "sluice-origin-0", &c);
    let cp = control_plane::start(&c, "scale", &[]);
    let mut publisher =
        Publisher::start_looped(&origin.node.rtmp_url("live", "life"), &h264_small().path);
    wait_for(secs(20), || origin.node.stream_info("live", "life")).expect("published");

    let mut edges: Vec<Pod> = Vec::new();
    let mut leaving: Vec<JoinHandle<(Duration, bool)>> = Vec::new();
    let mut followers: Vec<Follower> = Vec::new();
    let mut made = 0;
    let (mut clock, mut history) = (Instant::now(), Vec::new());
    let mut step = |edges: &mut Vec<Pod>, leaving: &mut Vec<_>, viewers: usize| {
        let (value, target) = scaler_answers(&cp, &so);
        let current = i32::try_from(edges.len()).expect("count").max(hpa.min);
        clock += HPA_SYNC;
        let desired = hpa.sync(clock, current, value, target);
        history.push((viewers, value, desired));
        while edges.len() < usize::try_from(desired).expect("count") {
            made += 1;
            edges.push(Pod::start(set, "sluice-edge", &format!("sluice-edge-{made}"), &c));
        }
        while edges.len() > usize::try_from(desired).expect("count") {
            let pod = edges.pop().expect("an edge");
            leaving.push(std::thread::spawn(move || pod.terminate()));
        }
        std::thread::sleep(Duration::from_secs(1));
    };

    // The minimum first, then 10 viewers more every two syncs up to 35: 4 edges at 10 each.
    step(&mut edges, &mut leaving, 0);
    assert_eq!(edges.len(), 1, "min replicas");
    while followers.len() < 35 {
        for _ in 0..10.min(35 - followers.len()) {
            followers.push(Follower::start(cp.http, "life"));
        }
        step(&mut edges, &mut leaving, followers.len());
        step(&mut edges, &mut leaving, followers.len());
    }
    for _ in 0..10 {
        if edges.len() == 4 {
            break;
        }
        step(&mut edges, &mut leaving, followers.len());
    }
    assert_eq!(edges.len(), 4, "scaled up to ceil(35 / 10) edges: {history:?}");
    let playing = followers.iter().filter(|f| f.stats().playing).count();
    assert_eq!(playing, 35, "every viewer plays while the edges scale up");

    // The audience leaves: after the stabilisation window, one edge a minute, down to 1.
    for f in followers.drain(..) {
        f.finish();
    }
    let mut syncs = 0;
    while edges.len() > 1 {
        syncs += 1;
        assert!(syncs < 60, "never scaled back down: {history:?}");
        step(&mut edges, &mut leaving, 0);
    }
    println!("edges: {history:?}");
    // 300 s of window, then three steps a minute apart: about 32 syncs of 15 s.
    assert!(syncs >= 20, "scaled down before the window ({syncs} syncs): {history:?}");
    for handle in leaving {
        let (took, exited) = handle.join().expect("termination");
        assert!(exited, "an edge scaled down exited within its grace period ({took:?})");
    }
    publisher.stop();
}
