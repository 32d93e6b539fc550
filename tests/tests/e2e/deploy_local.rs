//! `deploy/local/cluster.sh`: one command starts a real local cluster (etcd + 2 origins +
//! 3 edges + the control plane) on loopback and prints its URLs; ffmpeg publishes to the printed
//! ingest URL, players on two edges decode the printed RTMP and HTTP-FLV URLs, the three edges
//! serve byte-identical HLS (init and segment) at their printed HLS URLs, edge 1 answers its web
//! URL, etcd holds the five node keys; the control plane answers at its printed URLs (`/readyz`,
//! the cluster page, gRPC `ListNodes`, and a `/play` redirect to an edge); `down` stops all seven
//! processes without SIGKILL and frees every port, and is idempotent.
//!
//! Ports: the script uses fixed offsets from BASE_PORT (etcd BASE, BASE+1; node k at BASE+10k..
//! BASE+10k+2; the control plane's gRPC and HTTP at BASE+60, BASE+61). The test picks a free range in 24000..32000, below Linux's ephemeral range
//! (32768..) that the other tests' port-0 listeners draw from, so it cannot clash with them.

use std::net::{SocketAddr, TcpListener, UdpSocket};
use std::path::{Path, PathBuf};
use std::process::{Command, ExitStatus};
use std::time::{Duration, Instant};

use sluice_proto::control::v1 as pb;
use sluice_proto::control::v1::control_plane_client::ControlPlaneClient;
use sluice_tests::ffmpeg::run_with_timeout;
use sluice_tests::process::wait_for;
use sluice_tests::{h264_aac, http, paths, secs, Player, Publisher};

const STREAM: &str = "live/deploytest";
const NODES: [&str; 7] =
    ["etcd", "origin-1", "origin-2", "edge-1", "edge-2", "edge-3", "control-plane"];

/// Every port the script binds for `base`: (port, is_udp).
fn layout(base: u16) -> Vec<(u16, bool)> {
    let mut ports = vec![(base, false), (base + 1, false)];
    for k in 1..=5u16 {
        ports.push((base + 10 * k, false));
        ports.push((base + 10 * k + 1, false));
        if k <= 2 {
            ports.push((base + 10 * k + 2, true));
        }
    }
    ports.push((base + 60, false));
    ports.push((base + 61, false));
    ports
}

fn port_free(port: u16, udp: bool) -> bool {
    if udp {
        UdpSocket::bind(("127.0.0.1", port)).is_ok()
    } else {
        TcpListener::bind(("127.0.0.1", port)).is_ok()
    }
}

/// A base port whose whole layout is free, starting at a pid-dependent place in 24000..32000.
fn free_base() -> u16 {
    let start = std::process::id() as u16 % 80;
    (0..80u16)
        .map(|i| 24000 + ((start + i) % 80) * 100)
        .find(|&base| layout(base).iter().all(|&(p, udp)| port_free(p, udp)))
        .expect("no free port range in 24000..32000")
}

/// A cluster started by the script; `down` on drop (a failed test leaves nothing running).
struct LocalCluster {
    base: u16,
    state: PathBuf,
}

struct Run {
    status: Option<ExitStatus>,
    stdout: String,
    stderr: String,
}

impl Run {
    fn ok(&self) -> bool {
        self.status.is_some_and(|s| s.success())
    }
}

impl LocalCluster {
    fn new() -> LocalCluster {
        let shm = if Path::new("/dev/shm").is_dir() { "/dev/shm" } else { "/tmp" };
        let state = PathBuf::from(format!("{shm}/sluice-deploy-test-{}", std::process::id()));
        let _ = std::fs::remove_dir_all(&state);
        LocalCluster { base: free_base(), state }
    }

    /// `cluster.sh ARGS` with the debug binaries, this test's ports and state directory.
    fn script(&self, args: &[&str], timeout: Duration) -> Run {
        // The binaries must exist (panics with build instructions otherwise); cluster.sh starts
        // the processes with sluice-launch.
        let bin_dir = paths::binary("sluice-origin").parent().expect("target/debug").to_path_buf();
        paths::binary("sluice-edge");
        paths::binary("sluice-control-plane");
        paths::binary("sluice-launch");
        let mut cmd = Command::new("bash");
        cmd.arg(paths::workspace_root().join("deploy/local/cluster.sh"))
            .args(args)
            .env("SKIP_BUILD", "1")
            .env("BIN_DIR", &bin_dir)
            .env("BASE_PORT", self.base.to_string())
            .env("STATE_DIR", &self.state)
            .env("STREAM", STREAM)
            .env_remove("FOREGROUND");
        let (status, stdout, stderr) = run_with_timeout(&mut cmd, timeout).expect("run cluster.sh");
        eprintln!("cluster.sh {args:?}: {status:?}\n{stdout}\n{stderr}");
        Run { status, stdout, stderr }
    }

    fn pid(&self, name: &str) -> Option<u32> {
        std::fs::read_to_string(self.state.join("pids").join(format!("{name}.pid")))
            .ok()?
            .trim()
            .parse()
            .ok()
    }

    fn log_tail(&self, name: &str) -> String {
        sluice_tests::origin::tail(&self.state.join("logs").join(format!("{name}.log")), 30)
    }

    /// Keys under `prefix` in the cluster's etcd.
    fn etcd_keys(&self, prefix: &str) -> Vec<String> {
        let out = Command::new("etcdctl")
            .env("ETCDCTL_API", "3")
            .args([
                "--endpoints",
                &format!("http://127.0.0.1:{}", self.base),
                "--command-timeout=3s",
            ])
            .args(["get", "--prefix", "--keys-only", prefix])
            .output()
            .expect("etcdctl (Debian package etcd-client)");
        let mut keys: Vec<String> = String::from_utf8_lossy(&out.stdout)
            .lines()
            .filter(|l| !l.is_empty())
            .map(str::to_string)
            .collect();
        keys.sort();
        keys
    }
}

impl Drop for LocalCluster {
    fn drop(&mut self) {
        self.script(&["down"], secs(40));
        let _ = std::fs::remove_dir_all(&self.state);
    }
}

/// The URL the `up` output prints for `node` and `kind` (lines `  NODE  KIND  URL`).
fn printed_url(out: &str, node: &str, kind: &str) -> String {
    out.lines()
        .find_map(|line| {
            let words: Vec<&str> = line.split_whitespace().collect();
            (words.len() >= 3 && words[0] == node && words[1] == kind).then(|| words[2].to_string())
        })
        .unwrap_or_else(|| panic!("no {kind} URL of {node} in the output:\n{out}"))
}

/// `http://HOST:PORT/PATH` as (address, "/PATH").
fn split_http(url: &str) -> (SocketAddr, String) {
    let rest = url.strip_prefix("http://").expect("http URL");
    let slash = rest.find('/').unwrap_or(rest.len());
    (rest[..slash].parse().expect("host:port"), rest[slash..].to_string())
}

/// An HLS session on one edge, opened at its printed multivariant playlist URL.
struct HlsSession {
    addr: SocketAddr,
    /// The media playlist's path, with its session id.
    playlist: String,
}

impl HlsSession {
    /// `None` until the multivariant playlist answers 200.
    fn open(url: &str) -> Option<HlsSession> {
        let (addr, path) = split_http(url);
        let resp = http::get(addr, &path, secs(10)).ok().filter(|r| r.status == 200)?;
        let text = resp.text();
        assert!(text.starts_with("#EXTM3U"), "multivariant playlist: {text}");
        let uri = text.lines().find(|l| !l.starts_with('#') && !l.is_empty())?;
        let dir = path.rsplit_once('/').map_or("", |(d, _)| d);
        Some(HlsSession { addr, playlist: format!("{dir}/{uri}") })
    }

    /// The init segment's URI and the complete segments' numbers the media playlist lists.
    fn listing(&self) -> (String, Vec<u64>) {
        let resp = http::get(self.addr, &self.playlist, secs(15)).expect("media playlist");
        let text = resp.text();
        assert_eq!(resp.status, 200, "{}: {text}", self.playlist);
        let map = text
            .lines()
            .find_map(|l| l.strip_prefix("#EXT-X-MAP:URI=\""))
            .and_then(|v| v.split(['"', '?']).next())
            .unwrap_or_else(|| panic!("no EXT-X-MAP: {text}"))
            .to_string();
        let msns = text
            .lines()
            .filter_map(|l| l.strip_prefix("seg-")?.split('.').next()?.parse().ok())
            .collect();
        (map, msns)
    }

    /// An object next to the media playlist, in this session; panics unless 200.
    fn object(&self, name: &str) -> Vec<u8> {
        let sid = self.playlist.split("sid=").nth(1).unwrap_or("");
        let dir = self.playlist.rsplit_once('/').map_or("", |(d, _)| d);
        let path = format!("{dir}/{name}?sid={sid}");
        let resp = http::get(self.addr, &path, secs(15)).expect("HLS object");
        assert_eq!(resp.status, 200, "{path}: {}", resp.text());
        resp.body
    }
}

/// The ids of the nodes the control plane at `endpoint` lists over gRPC, sorted.
fn grpc_node_ids(endpoint: &str) -> Vec<String> {
    let rt = tokio::runtime::Builder::new_current_thread().enable_all().build().expect("runtime");
    rt.block_on(async {
        let mut client = ControlPlaneClient::connect(endpoint.to_string()).await.expect("connect");
        let nodes = client.list_nodes(pb::ListNodesRequest {}).await.expect("ListNodes");
        let mut ids: Vec<String> = nodes.into_inner().nodes.into_iter().map(|n| n.id).collect();
        ids.sort();
        ids
    })
}

/// A process is gone: no /proc entry, or a zombie waiting for its reaper.
fn exited(pid: u32) -> bool {
    match std::fs::read_to_string(format!("/proc/{pid}/stat")) {
        Err(_) => true,
        Ok(stat) => stat.rsplit_once(") ").is_some_and(|(_, rest)| rest.starts_with('Z')),
    }
}

#[test]
fn local_cluster_starts_serves_and_stops_cleanly() {
    let started = Instant::now();
    let cluster = LocalCluster::new();
    let up = cluster.script(&["up"], secs(120));
    assert!(up.ok(), "cluster.sh up failed ({:?}):\n{}\n{}", up.status, up.stdout, up.stderr);
    eprintln!("up took {:?} (base port {})", started.elapsed(), cluster.base);

    // Seven processes with pid files, all running.
    let pids: Vec<(&str, u32)> = NODES
        .iter()
        .map(|n| (*n, cluster.pid(n).unwrap_or_else(|| panic!("no pid file of {n}"))))
        .collect();
    for (name, pid) in &pids {
        assert!(!exited(*pid), "{name} (pid {pid}) is not running:\n{}", cluster.log_tail(name));
    }

    // The printed URLs follow the documented layout.
    let base = cluster.base;
    let ingest = printed_url(&up.stdout, "origin-1", "ingest");
    assert_eq!(ingest, format!("rtmp://127.0.0.1:{}/{STREAM}", base + 10));
    assert_eq!(
        printed_url(&up.stdout, "origin-2", "ingest"),
        format!("rtmp://127.0.0.1:{}/{STREAM}", base + 20)
    );
    assert_eq!(
        printed_url(&up.stdout, "edge-3", "hls"),
        format!("http://127.0.0.1:{}/{STREAM}.m3u8", base + 51)
    );
    assert!(up.stdout.contains("cluster.sh down"), "says how to stop:\n{}", up.stdout);

    // etcd holds exactly the five node keys under the default prefix.
    let expected: Vec<String> =
        ["edge/edge-1", "edge/edge-2", "edge/edge-3", "origin/origin-1", "origin/origin-2"]
            .iter()
            .map(|k| format!("/sluice/nodes/{k}"))
            .collect();
    let nodes = wait_for(secs(15), || {
        let keys = cluster.etcd_keys("/sluice/nodes/");
        (keys == expected).then_some(keys)
    });
    assert!(
        nodes.is_some(),
        "node keys {:?}, expected {expected:?}",
        cluster.etcd_keys("/sluice/")
    );

    // `status`: all seven running and ready.
    let status = cluster.script(&["status"], secs(30));
    assert!(status.ok(), "status failed ({:?}):\n{}", status.status, status.stdout);
    assert_eq!(status.stdout.matches(" running ").count(), 7, "{}", status.stdout);
    assert_eq!(
        status.stdout.matches(" 200 ").count(),
        6,
        "five nodes and the control plane ready:\n{}",
        status.stdout
    );

    // The control plane at its printed URLs: ready, its page, gRPC with the five nodes.
    let cp_http = printed_url(&up.stdout, "control-plane", "http");
    assert_eq!(cp_http, format!("http://127.0.0.1:{}", base + 61));
    let (cp_addr, _) = split_http(&cp_http);
    assert_eq!(http::get(cp_addr, "/readyz", secs(5)).expect("control plane /readyz").status, 200);
    let (page_addr, page_path) = split_http(&printed_url(&up.stdout, "control-plane", "page"));
    let page = http::get(page_addr, &page_path, secs(5)).expect("cluster page");
    assert_eq!(page.status, 200);
    assert!(page.text().contains("Sluice cluster"), "{}", page.text());
    let grpc = printed_url(&up.stdout, "control-plane", "grpc");
    assert_eq!(grpc, format!("http://127.0.0.1:{}", base + 60));
    let listed = grpc_node_ids(&grpc);
    assert_eq!(listed, ["edge-1", "edge-2", "edge-3", "origin-1", "origin-2"], "ListNodes");

    // Publish to the printed ingest URL (origin-1); the stream is claimed in etcd.
    let mut publisher = Publisher::start_looped(&ingest, &h264_aac().path);
    let claim = format!("/sluice/streams/{STREAM}");
    wait_for(secs(20), || cluster.etcd_keys(&claim).contains(&claim).then_some(())).unwrap_or_else(
        || {
            panic!(
                "{claim} not in etcd; publisher {:?}\n{}",
                publisher.stderr(),
                cluster.log_tail("origin-1")
            )
        },
    );

    // Viewers on two edges, over RTMP and HTTP-FLV, at the printed URLs.
    let mut players: Vec<Player> =
        [("edge-1", "rtmp"), ("edge-1", "http-flv"), ("edge-2", "rtmp"), ("edge-2", "http-flv")]
            .iter()
            .map(|(node, kind)| Player::start(&printed_url(&up.stdout, node, kind)))
            .collect();
    for p in &mut players {
        let frames = p.wait_frames(60, secs(40));
        assert!(
            frames >= 60,
            "{} decoded only {frames} frames; errors {:?}\nedge-1 log:\n{}",
            p.url,
            p.errors(),
            cluster.log_tail("edge-1")
        );
    }

    // Every edge serves the printed HLS URL, and the same HLS: the segments all three list,
    // and the init segment, are byte-identical.
    let sessions: Vec<HlsSession> = ["edge-1", "edge-2", "edge-3"]
        .iter()
        .map(|edge| {
            let url = printed_url(&up.stdout, edge, "hls");
            wait_for(secs(20), || HlsSession::open(&url)).unwrap_or_else(|| {
                panic!("{url} on {edge} never answered 200:\n{}", cluster.log_tail(edge))
            })
        })
        .collect();
    let common = wait_for(secs(30), || {
        let lists: Vec<(String, Vec<u64>)> = sessions.iter().map(HlsSession::listing).collect();
        let msn =
            lists[0].1.iter().rev().find(|m| lists.iter().all(|(_, l)| l.contains(m))).copied();
        msn.map(|m| (m, lists))
    });
    let (msn, lists) = common.unwrap_or_else(|| {
        let lists: Vec<_> = sessions.iter().map(HlsSession::listing).collect();
        panic!("the edges list no common complete segment: {lists:?}")
    });
    assert!(lists.iter().all(|(map, _)| *map == lists[0].0), "EXT-X-MAP differs: {lists:?}");
    for name in [lists[0].0.clone(), format!("seg-{msn}.m4s")] {
        let bodies: Vec<Vec<u8>> = sessions.iter().map(|s| s.object(&name)).collect();
        assert!(bodies[0].len() > 500, "{name} on edge-1 is {} bytes", bodies[0].len());
        for (i, body) in bodies.iter().enumerate().skip(1) {
            assert!(
                *body == bodies[0],
                "{name} on edge-{} differs from edge-1's ({} vs {} bytes)",
                i + 1,
                body.len(),
                bodies[0].len()
            );
        }
    }
    // The printed /play URL redirects to the stream on one of the edges.
    let (play_addr, play_path) = split_http(&printed_url(&up.stdout, "control-plane", "play"));
    assert_eq!(play_path, format!("/play/{STREAM}.m3u8"));
    let edge_urls: Vec<String> =
        ["edge-1", "edge-2", "edge-3"].iter().map(|e| printed_url(&up.stdout, e, "hls")).collect();
    let location = wait_for(secs(15), || {
        let r = http::get(play_addr, &play_path, secs(5)).ok()?;
        (r.status == 302).then(|| r.header("location").unwrap_or("").to_string())
    })
    .expect("/play answers 302 once the control plane sees the stream");
    assert!(edge_urls.contains(&location), "{location} is none of {edge_urls:?}");

    let (web_addr, web_path) = split_http(&printed_url(&up.stdout, "edge-1", "web"));
    let page = http::get(web_addr, &web_path, secs(10)).expect("web page");
    assert_eq!(page.status, 200, "web page: {}", page.text());

    for p in players {
        let result = p.stop();
        assert!(
            result.errors.is_empty(),
            "{} frames, decode errors: {:?}",
            result.frames,
            result.errors
        );
    }

    // `down` with the publisher still connected: all seven exit on SIGTERM, ports are free.
    let stopping = Instant::now();
    let down = cluster.script(&["down"], secs(40));
    let took = stopping.elapsed();
    assert!(down.ok(), "down failed ({:?}):\n{}\n{}", down.status, down.stdout, down.stderr);
    assert!(!down.stderr.contains("SIGKILL"), "a process needed SIGKILL:\n{}", down.stderr);
    assert!(took < secs(20), "down took {took:?}");
    for (name, pid) in &pids {
        assert!(exited(*pid), "{name} (pid {pid}) still running after down");
        assert!(cluster.pid(name).is_none(), "pid file of {name} left behind");
    }
    let busy: Vec<u16> =
        layout(base).into_iter().filter(|&(p, udp)| !port_free(p, udp)).map(|(p, _)| p).collect();
    assert!(busy.is_empty(), "ports still bound after down: {busy:?}");
    // The origin went away under the publisher, so ffmpeg ends by itself.
    assert!(publisher.wait(secs(10)).is_some(), "ffmpeg still publishing to a stopped origin");

    // Idempotent: a second `down` is a no-op; `status` reports not running (exit 3).
    let again = cluster.script(&["down"], secs(30));
    assert!(
        again.ok() && again.stdout.contains("Nothing running"),
        "second down: {}",
        again.stdout
    );
    let status = cluster.script(&["status"], secs(30));
    assert_eq!(
        status.status.and_then(|s| s.code()),
        Some(3),
        "status after down:\n{}",
        status.stdout
    );
    eprintln!("whole test took {:?}", started.elapsed());
}
