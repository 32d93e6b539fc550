//! `sluicectl`, the real binary, against a real cluster (etcd, an origin, an edge, a control
//! plane replica with a bearer token from `SLUICE_TOKEN`, ffmpeg publishing, an RTMP viewer): the token from
//! `SLUICE_TOKEN` (none: exit 5), `nodes ls|show|drain|undrain`, `streams ls|show|kick|watch`,
//! `assign`, `ingest`, `capacity -o yaml`, `check` on a healthy cluster and after the edge is
//! gone; and without a cluster: an unreachable endpoint is one error line and exit 3, `check`
//! reports it as a ✗, contexts from the config file, completions, usage errors.

use std::io::{BufRead, BufReader};
use std::path::{Path, PathBuf};
use std::process::{Child, Command, Stdio};
use std::sync::mpsc;
use std::time::Duration;

use sluice_tests::cluster::TestCluster;
use sluice_tests::control_plane::{self, free_port};
use sluice_tests::origin::TestDir;
use sluice_tests::process::wait_for;
use sluice_tests::viewer::Watcher;
use sluice_tests::{h264_aac, paths, secs, Publisher};

/// What a run of `sluicectl` gave.
#[derive(Debug)]
pub(crate) struct Run {
    pub(crate) code: i32,
    pub(crate) stdout: String,
    pub(crate) stderr: String,
}

impl Run {
    pub(crate) fn json(&self) -> serde_json::Value {
        assert_eq!(self.code, 0, "{self:?}");
        serde_json::from_str(&self.stdout).unwrap_or_else(|e| panic!("not JSON ({e}): {self:?}"))
    }
}

/// `sluicectl ARGS` with `env` and a config file path of its own (so the machine's config and
/// `SLUICE_*` variables cannot interfere).
fn ctl_command(config: &Path, env: &[(&str, &str)], args: &[&str]) -> Command {
    let mut cmd = Command::new(paths::binary("sluicectl"));
    for var in ["SLUICE_ENDPOINT", "SLUICE_TOKEN", "SLUICE_TOKEN_FILE", "SLUICE_TIMEOUT"] {
        cmd.env_remove(var);
    }
    cmd.env_remove("SLUICE_CA").env_remove("SLUICE_CONTEXT").env("SLUICE_CONFIG", config);
    cmd.envs(env.iter().copied()).args(args);
    cmd
}

/// Run `sluicectl ARGS` (see [`ctl_command`]) to its end.
pub(crate) fn ctl_env(config: &Path, env: &[(&str, &str)], args: &[&str]) -> Run {
    let out = ctl_command(config, env, args).output().expect("run sluicectl");
    Run {
        code: out.status.code().unwrap_or(-1),
        stdout: String::from_utf8_lossy(&out.stdout).into_owned(),
        stderr: String::from_utf8_lossy(&out.stderr).into_owned(),
    }
}

pub(crate) fn config_in(dir: &TestDir) -> PathBuf {
    dir.path().join("sluicectl.toml")
}

/// `sluicectl streams watch -o json` running, its stdout lines sent by a reader thread.
struct WatchRun {
    child: Child,
    lines: mpsc::Receiver<serde_json::Value>,
}

impl WatchRun {
    fn start(config: &Path, env: &[(&str, &str)]) -> WatchRun {
        let args = ["streams", "watch", "--no-initial", "-o", "json"];
        let mut child = ctl_command(config, env, &args)
            .stdout(Stdio::piped())
            .stderr(Stdio::null())
            .spawn()
            .expect("run sluicectl streams watch");
        let stdout = child.stdout.take().expect("stdout");
        let (tx, lines) = mpsc::channel();
        std::thread::spawn(move || {
            for line in BufReader::new(stdout).lines().map_while(Result::ok) {
                let event = serde_json::from_str(&line).unwrap_or_else(|e| {
                    panic!("watch printed a line that is not JSON ({e}): {line}")
                });
                if tx.send(event).is_err() {
                    return;
                }
            }
        });
        WatchRun { child, lines }
    }

    /// The next event of `kind` about stream `key`, skipping others.
    fn next_stream_event(
        &self,
        kind: &str,
        key: (&str, &str),
        timeout: Duration,
    ) -> serde_json::Value {
        let deadline = std::time::Instant::now() + timeout;
        let mut seen = Vec::new();
        while let Some(left) = deadline.checked_duration_since(std::time::Instant::now()) {
            let Ok(event) = self.lines.recv_timeout(left) else { break };
            let s = &event["stream"];
            if event["kind"] == kind && s["app"] == key.0 && s["name"] == key.1 {
                return event;
            }
            seen.push(event);
        }
        panic!("no {kind} event for {}/{} in {timeout:?}; saw {seen:?}", key.0, key.1)
    }
}

impl Drop for WatchRun {
    fn drop(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}

#[test]
fn sluicectl_reports_and_checks_a_live_cluster() {
    let c = TestCluster::new("ctl", &["origin-k", "edge-k"]);
    let origin = c.origin("origin-k", &[]);
    let edge = c.edge("edge-k", &[]);
    let dir = TestDir::new("sluicectl");
    // The token in the environment, on both sides (the admin tests use --token-file).
    let cp = control_plane::start_env(&c, "ctl", &[], &[("SLUICE_TOKEN", "sluicectl-e2e-token")]);
    let config = config_in(&dir);
    let endpoint = cp.grpc_url();
    let env = [("SLUICE_ENDPOINT", endpoint.as_str()), ("SLUICE_TOKEN", "sluicectl-e2e-token")];
    let ctl = |args: &[&str]| ctl_env(&config, &env, args);

    // Without the token: one line and exit 5.
    let refused = ctl_env(&config, &[("SLUICE_ENDPOINT", &endpoint)], &["nodes", "ls"]);
    assert_eq!(refused.code, 5, "{refused:?}");
    assert_eq!(refused.stderr.lines().count(), 1, "{refused:?}");
    assert!(refused.stderr.starts_with("error: "), "{refused:?}");

    // nodes ls: every node, ready, with a load report.
    let nodes = wait_for(secs(15), || {
        let v = ctl(&["nodes", "ls", "-o", "json"]).json();
        let nodes = v["nodes"].as_array()?.clone();
        let ready = nodes.len() == 2
            && nodes.iter().all(|n| n["state"] == "ready" && n["load"].is_object());
        ready.then_some(nodes)
    })
    .unwrap_or_else(|| panic!("two ready nodes: {:?}", ctl(&["nodes", "ls"])));
    assert_eq!(nodes[0]["id"], "origin-k", "origins first: {nodes:?}");
    assert_eq!(nodes[1]["role"], "edge");
    // Version, uptime and the load report's figures, as the nodes wrote them.
    let now_ms = std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .expect("clock")
        .as_millis() as u64;
    for n in &nodes {
        assert_eq!(n["version"], env!("CARGO_PKG_VERSION"), "{n}");
        let started = n["started_at_ms"].as_u64().expect("started_at_ms");
        assert!(started > now_ms - 120_000 && started <= now_ms + 5_000, "started now: {n}");
        let reported = n["load"]["reported_at_ms"].as_u64().expect("reported_at_ms");
        assert!(reported > now_ms - 10_000, "a fresh load report: {n}");
        assert!(n["load"]["memory_bytes"].as_u64() > Some(1 << 20), "memory in use: {n}");
    }
    assert_eq!(nodes[1]["load"]["max_viewers"], 10_000, "{nodes:?}");
    let table = ctl(&["nodes", "ls"]);
    assert_eq!(table.code, 0, "{table:?}");
    eprintln!("sluicectl nodes ls:\n{}", table.stdout);
    assert!(table.stdout.starts_with("ID "), "{table:?}");
    assert!(table.stdout.contains("edge-k") && table.stdout.contains("ready"), "{table:?}");
    let show = ctl(&["nodes", "show", "edge-k", "-o", "json"]).json();
    assert_eq!(show["id"], "edge-k");
    let missing = ctl(&["nodes", "show", "nobody"]);
    assert_eq!(missing.code, 4, "{missing:?}");

    // No publisher yet: assign is NOT_FOUND, one line, exit 4.
    let none = ctl(&["assign", "live/x"]);
    assert_eq!((none.code, none.stderr.as_str()), (4, "error: stream live/x has no publisher\n"));

    // streams watch, running from before the publisher starts.
    let watch = WatchRun::start(&config, &env);
    let mut publisher = Publisher::start_looped(&origin.rtmp_url("live", "x"), &h264_aac().path);
    let started = watch.next_stream_event("stream_started", ("live", "x"), secs(30));
    assert_eq!(started["stream"]["origin"], "origin-k", "{started}");
    let stream = wait_for(secs(20), || {
        let v = ctl(&["streams", "ls", "-o", "json"]).json();
        let s = v["streams"].as_array()?.first()?.clone();
        (!s["codecs"].as_array()?.is_empty()).then_some(s)
    })
    .unwrap_or_else(|| panic!("stream listed: {:?}", ctl(&["streams", "ls"])));
    assert_eq!((stream["app"].as_str(), stream["name"].as_str()), (Some("live"), Some("x")));
    assert_eq!(stream["origin"], "origin-k");
    // show: the fixture's codecs, 1280x720 at 30 fps, and one viewer on the edge.
    wait_for(secs(15), || edge.stream_info("live", "x")).expect("the edge lists the stream");
    let viewer = Watcher::start(edge.rtmp, "live", "x");
    assert!(viewer.wait_video(10, secs(20)) >= 10, "the viewer plays");
    let show = wait_for(secs(15), || {
        let v = ctl(&["streams", "show", "live/x", "-o", "json"]).json();
        (v["viewers"]["edge-k"] == 1 && v["fps_milli"].as_u64()? > 0).then_some(v)
    })
    .unwrap_or_else(|| panic!("one viewer on edge-k: {:?}", ctl(&["streams", "show", "live/x"])));
    let codecs = show["codecs"].as_array().expect("codecs");
    assert_eq!(codecs, &[serde_json::json!("h264"), serde_json::json!("aac")], "{show}");
    assert_eq!(
        (show["width"].as_u64(), show["height"].as_u64()),
        (Some(1280), Some(720)),
        "{show}"
    );
    let fps = show["fps_milli"].as_u64().expect("fps_milli");
    assert!((29_000..=31_000).contains(&fps), "30 fps: {show}");
    assert_eq!(show["viewers"].as_object().map(serde_json::Map::len), Some(1), "{show}");
    let table = ctl(&["streams", "show", "live/x"]);
    eprintln!("sluicectl streams show live/x:\n{}", table.stdout);
    assert!(table.stdout.starts_with("stream:") && table.stdout.contains("live/x"), "{table:?}");

    // assign: an absolute URL on the edge; ingest: the origin's RTMP URL.
    let assigned = ctl(&["assign", "live/x", "-o", "json"]).json();
    assert_eq!(assigned["url"], format!("http://{}/live/x.flv", edge.http), "{assigned}");
    assert_eq!(assigned["edge_id"], "edge-k");
    // With one edge, avoiding it still gets it (better sent back than refused); a bad id is
    // a usage error the server names.
    let avoided = ctl(&["assign", "live/x", "--avoid", "edge-k", "-o", "json"]).json();
    assert_eq!(avoided["edge_id"], "edge-k", "{avoided}");
    let bad = ctl(&["assign", "live/x", "--avoid", "no/such"]);
    assert!(bad.code != 0 && bad.stderr.contains("invalid node id"), "{bad:?}");
    let hls = ctl(&["assign", "live/x", "--protocol", "hls"]);
    assert_eq!(hls.stdout, format!("http://{}/live/x.m3u8\n", edge.http), "{hls:?}");
    let ingest = ctl(&["ingest", "live/x"]);
    assert_eq!(ingest.stdout, format!("{}\n", origin.rtmp_url("live", "x")), "{ingest:?}");

    // capacity -o yaml parses, with the edge totals.
    let yaml = ctl(&["capacity", "-o", "yaml"]);
    assert_eq!(yaml.code, 0, "{yaml:?}");
    let capacity: serde_json::Value =
        serde_saphyr::from_str(&yaml.stdout).unwrap_or_else(|e| panic!("YAML: {e}: {yaml:?}"));
    assert_eq!(capacity["nodes"].as_array().map(Vec::len), Some(2), "{yaml:?}");
    assert_eq!(capacity["edges"]["max_viewers"], 10_000, "{yaml:?}");
    let table = ctl(&["capacity"]);
    eprintln!("sluicectl capacity:\n{}", table.stdout);
    assert!(table.stdout.contains("recommended edges: 1"), "{table:?}");

    // check: all ✓ on the healthy cluster, with the cluster's CA checked too.
    let ca = c.certs_dir().join("ca.pem");
    let ca = ca.to_str().expect("utf-8");
    let healthy = ctl(&["check", "--cert", ca]);
    eprintln!("sluicectl check:\n{}", healthy.stdout);
    assert_eq!(healthy.code, 0, "{healthy:?}");
    assert!(!healthy.stdout.contains('✗'), "{healthy:?}");
    for line in ["✓ control plane reachable", "✓ at least one ready edge", "✓ certificate "] {
        assert!(healthy.stdout.contains(line), "{line} in {healthy:?}");
    }
    let expiring = ctl(&["check", "--cert", ca, "--cert-days", "10000000"]);
    assert_eq!(expiring.code, 1, "{expiring:?}");
    assert!(expiring.stdout.contains("✗ certificate "), "{expiring:?}");
    let report = ctl(&["check", "-o", "json"]).json();
    assert_eq!(report["ok"], true, "{report}");

    // drain: the edge gets no new viewers; undrain: it does again.
    let drained = ctl(&["nodes", "drain", "edge-k", "--deadline", "5m"]);
    assert_eq!(drained.code, 0, "{drained:?}");
    assert!(drained.stdout.starts_with("node edge-k is draining; what is left closes in "));
    let show = ctl(&["nodes", "show", "edge-k", "-o", "json"]).json();
    assert_eq!(show["drain_ordered"], true, "{show}");
    let refused = ctl(&["assign", "live/x"]);
    assert_ne!(refused.code, 0, "no edge to assign while the only one drains: {refused:?}");
    assert_eq!(refused.stderr.lines().count(), 1, "{refused:?}");
    let undrained = ctl(&["nodes", "undrain", "edge-k"]);
    assert_eq!(undrained.stdout, "node edge-k takes new work again\n", "{undrained:?}");
    let back = wait_for(secs(15), || {
        let r = ctl(&["assign", "live/x", "-o", "json"]);
        (r.code == 0).then(|| r.json())
    })
    .expect("assigned again after undrain");
    assert_eq!(back["edge_id"], "edge-k", "{back}");

    // Kick: the publisher's origin closes it; watch sees the stream end.
    let kick = ctl(&["streams", "kick", "live/x"]);
    assert_eq!(kick.stdout, "publisher of live/x closed on origin-k\n", "{kick:?}");
    let ended = watch.next_stream_event("stream_ended", ("live", "x"), secs(30));
    assert_eq!(ended["stream"]["origin"], "origin-k", "{ended}");
    drop(watch);
    publisher.stop();
    drop(viewer);

    // The only edge goes away: check fails with a ✗ line.
    drop(edge);
    let failed = wait_for(secs(20), || {
        let r = ctl(&["check"]);
        (r.code != 0).then_some(r)
    })
    .expect("check fails without an edge");
    eprintln!("sluicectl check without the edge:\n{}{}", failed.stdout, failed.stderr);
    assert_eq!(failed.code, 1, "{failed:?}");
    assert!(failed.stdout.contains("✗ at least one ready edge"), "{failed:?}");
    assert!(failed.stderr.starts_with("error: ") && failed.stderr.ends_with("checks failed\n"));
    let _ = std::fs::remove_file(&cp.log);
}

#[test]
fn sluicectl_without_a_control_plane() {
    let dir = TestDir::new("sluicectl-offline");
    let config = config_in(&dir);
    let url = format!("http://{}", free_port());
    let ctl = |args: &[&str]| ctl_env(&config, &[], args);

    // Unreachable: one line on stderr, nothing on stdout, exit 3.
    let r = ctl(&["--endpoint", &url, "nodes", "ls", "-o", "json"]);
    assert_eq!(r.code, 3, "{r:?}");
    assert_eq!(
        r.stderr,
        format!("error: cannot reach the control plane at {url}: connection refused\n")
    );
    assert!(r.stdout.is_empty(), "{r:?}");

    // check on a wrong endpoint: a ✗ line and a non-zero exit.
    let r = ctl(&["--endpoint", &url, "check"]);
    assert_eq!(r.code, 1, "{r:?}");
    assert!(r.stdout.starts_with("✗ control plane reachable: cannot reach"), "{r:?}");

    // Contexts: set, use, and the endpoint comes from the current one; a flag beats it.
    let other = format!("http://{}", free_port());
    let set = ctl(&["config", "set-context", "lab", "--endpoint", &url, "--timeout", "2s"]);
    assert_eq!((set.code, set.stdout.as_str()), (0, "context lab created\n"), "{set:?}");
    assert_eq!(ctl(&["config", "use-context", "lab"]).code, 0);
    let listed = ctl(&["config", "get-contexts"]);
    assert!(listed.stdout.contains(&format!("*        lab   {url}")), "{listed:?}");
    let r = ctl(&["streams", "ls"]);
    assert!(r.stderr.contains(&url), "the context's endpoint: {r:?}");
    let r = ctl_env(&config, &[("SLUICE_ENDPOINT", &other)], &["streams", "ls"]);
    assert!(r.stderr.contains(&other), "the variable beats the context: {r:?}");
    let r = ctl_env(&config, &[("SLUICE_ENDPOINT", &other)], &["--endpoint", &url, "capacity"]);
    assert!(r.stderr.contains(&url), "the flag beats the variable: {r:?}");
    assert_eq!(ctl(&["config", "use-context", "nope"]).code, 2);

    // Completions and usage errors.
    let r = ctl(&["completion", "bash"]);
    assert_eq!(r.code, 0, "{r:?}");
    assert!(r.stdout.contains("_sluicectl") && r.stdout.contains("complete "), "{r:?}");
    let r = ctl(&["streams", "show", "not-a-stream"]);
    assert_eq!(r.code, 2, "{r:?}");
    assert_eq!(r.stderr.lines().count(), 1, "{r:?}");
    let r = ctl(&["nodes", "frobnicate"]);
    assert_eq!(r.code, 2, "{r:?}");
    assert_eq!(r.stderr.lines().count(), 1, "{r:?}");
    assert!(r.stderr.starts_with("error: "), "{r:?}");
}
