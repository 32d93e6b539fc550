//! The figures `sluicectl nodes|streams ls|show` display, on a real cluster: etcd, one origin,
//! two edges and `sluice-control-plane`. ffmpeg publishes 1280x720 at 30 fps; two HTTP-FLV
//! viewers watch on one edge and one on the other; gRPC `GetStream` answers the codecs, the
//! picture size, a frame rate near 30, a bit rate and the viewers per edge (from the nodes' load
//! reports), and `GetNode` the node's version and start time.

use std::io::{ErrorKind, Read};
use std::net::SocketAddr;
use std::sync::atomic::{AtomicBool, AtomicU64, Ordering};
use std::sync::Arc;
use std::thread::JoinHandle;
use std::time::{Duration, SystemTime, UNIX_EPOCH};

use sluice_proto::control::v1 as pb;
use sluice_proto::control::v1::control_plane_client::ControlPlaneClient;
use sluice_tests::cluster::TestCluster;
use sluice_tests::control_plane;
use sluice_tests::process::wait_for;
use sluice_tests::{h264_aac, http, secs, Publisher};

/// An HTTP-FLV viewer that reads and discards the stream on a thread until dropped (cheaper on
/// two cores than an ffmpeg decoding 720p).
struct FlvViewer {
    stop: Arc<AtomicBool>,
    bytes: Arc<AtomicU64>,
    thread: Option<JoinHandle<()>>,
}

impl FlvViewer {
    fn start(addr: SocketAddr, path: &str) -> FlvViewer {
        let mut body = http::open(addr, "GET", path, secs(10))
            .unwrap_or_else(|e| panic!("GET {path} on {addr}: {e}"));
        assert_eq!(body.status, 200, "GET {path} on {addr}");
        // Short reads, so a stopped viewer's thread notices within a second.
        body.set_read_timeout(Some(Duration::from_secs(1))).expect("read timeout");
        let stop = Arc::new(AtomicBool::new(false));
        let bytes = Arc::new(AtomicU64::new(0));
        let (s, b) = (stop.clone(), bytes.clone());
        let thread = std::thread::spawn(move || {
            let mut buf = vec![0u8; 64 * 1024];
            while !s.load(Ordering::Relaxed) {
                match body.read(&mut buf) {
                    Ok(0) => break,
                    Ok(n) => {
                        b.fetch_add(n as u64, Ordering::Relaxed);
                    }
                    Err(e) if matches!(e.kind(), ErrorKind::WouldBlock | ErrorKind::TimedOut) => {}
                    Err(_) => break,
                }
            }
        });
        FlvViewer { stop, bytes, thread: Some(thread) }
    }

    fn bytes(&self) -> u64 {
        self.bytes.load(Ordering::Relaxed)
    }
}

impl Drop for FlvViewer {
    fn drop(&mut self) {
        self.stop.store(true, Ordering::Relaxed);
        if let Some(t) = self.thread.take() {
            let _ = t.join();
        }
    }
}

fn now_ms() -> u64 {
    SystemTime::now().duration_since(UNIX_EPOCH).expect("clock after 1970").as_millis() as u64
}

/// Whether `s` shows what the test publishes and watches.
fn complete(s: &pb::Stream) -> bool {
    let viewers = [("edge-a".to_string(), 2), ("edge-b".to_string(), 1)].into();
    s.codecs == ["h264", "aac"]
        && (s.width, s.height) == (1280, 720)
        && (27_000..=33_000).contains(&s.fps_milli)
        && s.ingress_bps > 0
        && s.viewers == viewers
}

#[test]
fn streams_and_nodes_show_their_live_figures() {
    let started = now_ms();
    let c = TestCluster::new("fig", &["origin-f", "edge-a", "edge-b"]);
    let origin = c.origin("origin-f", &[]);
    let edge_a = c.edge("edge-a", &[]);
    let edge_b = c.edge("edge-b", &[]);
    let cp = control_plane::start(&c, "fig", &[]);
    let rt = tokio::runtime::Builder::new_current_thread().enable_all().build().expect("runtime");

    let mut publisher = Publisher::start_looped(&origin.rtmp_url("live", "fig"), &h264_aac().path);
    // Edges answer an unknown stream at once from their caches: wait until both know it.
    for e in [&edge_a, &edge_b] {
        wait_for(secs(20), || e.stream_info("live", "fig")).expect("the edge lists the stream");
    }
    let viewers = [
        FlvViewer::start(edge_a.http, "/live/fig.flv"),
        FlvViewer::start(edge_a.http, "/live/fig.flv"),
        FlvViewer::start(edge_b.http, "/live/fig.flv"),
    ];

    let (stream, nodes) = rt.block_on(async {
        let mut client = ControlPlaneClient::connect(cp.grpc_url()).await.expect("connect");
        // Reports come every 2 s and rates are measured over 2 s windows: poll until the
        // figures settle (or the deadline, and then show the last answer).
        let deadline = tokio::time::Instant::now() + secs(40);
        let request = || pb::GetStreamRequest { app: "live".into(), stream: "fig".into() };
        let mut last = None;
        while tokio::time::Instant::now() < deadline {
            match client.get_stream(request()).await {
                Ok(r) => {
                    let s = r.into_inner();
                    let done = complete(&s);
                    last = Some(s);
                    if done {
                        break;
                    }
                }
                Err(s) if s.code() == tonic::Code::NotFound => {}
                Err(s) => panic!("GetStream: {s}"),
            }
            tokio::time::sleep(Duration::from_millis(500)).await;
        }
        let mut nodes = Vec::new();
        for (id, role) in [("origin-f", "origin"), ("edge-a", ""), ("edge-b", "edge")] {
            let request = pb::GetNodeRequest { id: id.into(), role: role.into() };
            nodes.push(client.get_node(request).await.expect("GetNode").into_inner());
        }
        (last, nodes)
    });

    let stream = stream.expect("GetStream answered");
    assert!(complete(&stream), "figures of live/fig: {stream:?}");
    assert_eq!((stream.origin.as_str(), stream.home.as_str()), ("origin-f", "origin-f"));
    assert!(stream.started_at_ms >= started && stream.started_at_ms <= now_ms(), "{stream:?}");
    // The fixture is a few Mbit/s of 720p; anything from 100 kbit/s to 50 Mbit/s is the right
    // order of magnitude for "bits received", not a count of something else.
    assert!((100_000..50_000_000).contains(&stream.ingress_bps), "{stream:?}");
    for v in &viewers {
        assert!(v.bytes() > 0, "every viewer received the stream");
    }

    for n in &nodes {
        assert_eq!(n.version, env!("CARGO_PKG_VERSION"), "{n:?}");
        assert!(n.started_at_ms >= started && n.started_at_ms <= now_ms(), "{n:?}");
        assert!(n.load.is_some(), "{n:?}");
    }
    assert_eq!(
        nodes.iter().map(|n| n.role.as_str()).collect::<Vec<_>>(),
        ["origin", "edge", "edge"]
    );

    drop(viewers);
    publisher.stop();
    let _ = std::fs::remove_file(&cp.log);
}
