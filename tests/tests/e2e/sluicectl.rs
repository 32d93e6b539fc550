//! `sluicectl`, the real binary, against a real cluster (etcd, an origin, an edge, a control
//! plane replica, ffmpeg publishing): `nodes ls`, `streams ls|show`, `assign`, `ingest`,
//! `capacity -o yaml`, `check` on a healthy cluster and after the edge is gone; and without a
//! cluster: an unreachable endpoint is one error line and exit 3, `check` reports it as a ✗,
//! contexts from the config file, completions, usage errors.

use std::path::{Path, PathBuf};
use std::process::Command;

use sluice_tests::cluster::TestCluster;
use sluice_tests::control_plane::{self, free_port};
use sluice_tests::origin::TestDir;
use sluice_tests::process::wait_for;
use sluice_tests::{h264_aac, paths, secs, Publisher};

/// What a run of `sluicectl` gave.
#[derive(Debug)]
struct Run {
    code: i32,
    stdout: String,
    stderr: String,
}

impl Run {
    fn json(&self) -> serde_json::Value {
        assert_eq!(self.code, 0, "{self:?}");
        serde_json::from_str(&self.stdout).unwrap_or_else(|e| panic!("not JSON ({e}): {self:?}"))
    }
}

/// Run `sluicectl ARGS` with `env` and a config file path of its own (so the machine's
/// config and `SLUICE_*` variables cannot interfere).
fn ctl_env(config: &Path, env: &[(&str, &str)], args: &[&str]) -> Run {
    let mut cmd = Command::new(paths::binary("sluicectl"));
    for var in ["SLUICE_ENDPOINT", "SLUICE_TOKEN", "SLUICE_TOKEN_FILE", "SLUICE_TIMEOUT"] {
        cmd.env_remove(var);
    }
    cmd.env_remove("SLUICE_CA").env_remove("SLUICE_CONTEXT").env("SLUICE_CONFIG", config);
    let out = cmd.envs(env.iter().copied()).args(args).output().expect("run sluicectl");
    Run {
        code: out.status.code().unwrap_or(-1),
        stdout: String::from_utf8_lossy(&out.stdout).into_owned(),
        stderr: String::from_utf8_lossy(&out.stderr).into_owned(),
    }
}

fn config_in(dir: &TestDir) -> PathBuf {
    dir.path().join("sluicectl.toml")
}

#[test]
fn sluicectl_reports_and_checks_a_live_cluster() {
    let c = TestCluster::new("ctl", &["origin-k", "edge-k"]);
    let origin = c.origin("origin-k", &[]);
    let edge = c.edge("edge-k", &[]);
    let cp = control_plane::start(&c, "ctl", &[]);
    let dir = TestDir::new("sluicectl");
    let config = config_in(&dir);
    let endpoint = cp.grpc_url();
    let ctl = |args: &[&str]| ctl_env(&config, &[("SLUICE_ENDPOINT", &endpoint)], args);

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

    let mut publisher = Publisher::start_looped(&origin.rtmp_url("live", "x"), &h264_aac().path);
    let stream = wait_for(secs(20), || {
        let v = ctl(&["streams", "ls", "-o", "json"]).json();
        let s = v["streams"].as_array()?.first()?.clone();
        (!s["codecs"].as_array()?.is_empty()).then_some(s)
    })
    .unwrap_or_else(|| panic!("stream listed: {:?}", ctl(&["streams", "ls"])));
    assert_eq!((stream["app"].as_str(), stream["name"].as_str()), (Some("live"), Some("x")));
    assert_eq!(stream["origin"], "origin-k");
    let show = ctl(&["streams", "show", "live/x", "-o", "json"]).json();
    let codecs = show["codecs"].as_array().expect("codecs");
    assert_eq!(codecs, &[serde_json::json!("h264"), serde_json::json!("aac")], "{show}");
    let table = ctl(&["streams", "show", "live/x"]);
    eprintln!("sluicectl streams show live/x:\n{}", table.stdout);
    assert!(table.stdout.starts_with("stream:") && table.stdout.contains("live/x"), "{table:?}");

    // assign: an absolute URL on the edge; ingest: the origin's RTMP URL.
    let assigned = ctl(&["assign", "live/x", "-o", "json"]).json();
    assert_eq!(assigned["url"], format!("http://{}/live/x.flv", edge.http), "{assigned}");
    assert_eq!(assigned["edge_id"], "edge-k");
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

    // Kick: the publisher's origin closes it (UNIMPLEMENTED until the management RPCs land;
    // either way, one line and a clear code).
    let kick = ctl(&["streams", "kick", "live/x"]);
    match kick.code {
        0 => assert_eq!(kick.stdout, "publisher of live/x closed on origin-k\n", "{kick:?}"),
        6 => assert_eq!(kick.stderr.lines().count(), 1, "{kick:?}"),
        _ => panic!("kick: {kick:?}"),
    }
    publisher.stop();

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
