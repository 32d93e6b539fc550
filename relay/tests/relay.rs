//! Two relay endpoints on 127.0.0.1 with real QUIC and real mutual TLS (certificates
//! generated into a temp dir).
#![allow(clippy::disallowed_methods)] // test fixtures lock std mutexes directly: a poisoned lock means the test already failed

mod common;

use std::collections::HashMap;
use std::net::SocketAddr;
use std::sync::Arc;
use std::time::Duration;

use bytes::BytesMut;
use common::*;
use sluice_proto::v1::control_message::Msg;
use sluice_relay::codec;
use sluice_relay::tls::RelayTls;
use sluice_relay::{
    certs, codes, Frame, MediaSource, RelayConfig, RelayEndpoint, RelayError, SubscribeRefusal,
    SubscribeRequest,
};
use tokio::sync::mpsc;

/// Serves `live/{name}` for names it knows; "elsewhere" is not home; "old" is stale
/// unless claim_revision is 5; "whoami" answers NotHome naming the subscriber.
struct TestSource {
    streams: HashMap<String, u32>,
    /// Names whose subscriber went away before the source finished.
    abandoned: Arc<std::sync::Mutex<Vec<String>>>,
}

impl MediaSource for TestSource {
    fn subscribe(&self, req: &SubscribeRequest) -> Result<mpsc::Receiver<Frame>, SubscribeRefusal> {
        if req.app != "live" {
            return Err(SubscribeRefusal::NotFound);
        }
        match req.name.as_str() {
            "elsewhere" => return Err(SubscribeRefusal::NotHome { owner: "origin-b".into() }),
            "old" if req.claim_revision != 5 => return Err(SubscribeRefusal::Stale),
            "whoami" => return Err(SubscribeRefusal::NotHome { owner: req.peer_node_id.clone() }),
            _ => {}
        }
        let gops = *self.streams.get(&req.name).ok_or(SubscribeRefusal::NotFound)?;
        let (tx, rx) = mpsc::channel(16);
        let frames = source_frames(&req.name, gops);
        // Paced like a live source (a GOP every GOP_INTERVAL), except "burst" streams,
        // which produce everything at once.
        let paced = !req.name.starts_with("burst");
        let (abandoned, name) = (self.abandoned.clone(), req.name.clone());
        tokio::spawn(async move {
            for f in frames {
                if paced && f.starts_gop() && f.timestamp > 0 {
                    tokio::time::sleep(GOP_INTERVAL).await;
                }
                if tx.send(f).await.is_err() {
                    abandoned.lock().unwrap().push(name);
                    return;
                }
            }
        });
        Ok(rx)
    }
}

struct Cluster {
    _dir: tempfile::TempDir,
    dir: std::path::PathBuf,
    server: RelayEndpoint,
    addr: SocketAddr,
    abandoned: Arc<std::sync::Mutex<Vec<String>>>,
}

/// A server node "origin-a" serving the test source; "edge-1" and "edge-2" certs exist too.
fn cluster() -> Cluster {
    let dir = tempfile::tempdir().unwrap();
    certs::generate(dir.path(), &["origin-a", "edge-1", "edge-2"]).unwrap();
    let tls = RelayTls::from_dir(dir.path(), "origin-a").unwrap();
    let server = RelayEndpoint::bind(localhost(), RelayConfig::new("origin-a", tls)).unwrap();
    let streams = [("cam1", 3), ("cam2", 3), ("cam3", 3), ("long", 12), ("burst", 30)]
        .into_iter()
        .map(|(n, g)| (n.to_string(), g))
        .collect();
    let abandoned: Arc<std::sync::Mutex<Vec<String>>> = Arc::default();
    server.serve(Arc::new(TestSource { streams, abandoned: abandoned.clone() }));
    let addr = server.local_addr().unwrap();
    Cluster { dir: dir.path().to_path_buf(), _dir: dir, server, addr, abandoned }
}

#[tokio::test]
async fn hello_exchanges_node_ids() {
    let c = cluster();
    let edge = client(&c.dir, "edge-1");
    let conn = edge.connect(c.addr, "origin-a").await.unwrap();
    assert_eq!(conn.peer_node_id(), "origin-a");
}

#[tokio::test]
async fn subscriber_receives_identical_frames_in_order_then_end() {
    let c = cluster();
    let edge = client(&c.dir, "edge-1");
    let conn = edge.connect(c.addr, "origin-a").await.unwrap();
    let mut sub = conn.subscribe("live", "cam1", 7).await.unwrap();
    let got = read_all(&mut sub).await;
    let want = expected_frames("cam1", 3);
    assert_frames(&got, &want);
}

#[tokio::test]
async fn refusals_carry_their_code() {
    let c = cluster();
    let edge = client(&c.dir, "edge-1");
    let conn = edge.connect(c.addr, "origin-a").await.unwrap();
    let err = conn.subscribe("live", "nope", 0).await.unwrap_err();
    assert!(matches!(err, RelayError::Refused(SubscribeRefusal::NotFound)), "{err}");
    let err = conn.subscribe("other-app", "cam1", 0).await.unwrap_err();
    assert!(matches!(err, RelayError::Refused(SubscribeRefusal::NotFound)), "{err}");
    let err = conn.subscribe("live", "elsewhere", 0).await.unwrap_err();
    match err {
        RelayError::Refused(SubscribeRefusal::NotHome { owner }) => assert_eq!(owner, "origin-b"),
        other => panic!("{other}"),
    }
    let err = conn.subscribe("live", "old", 3).await.unwrap_err();
    assert!(matches!(err, RelayError::Refused(SubscribeRefusal::Stale)), "{err}");
    // The claim revision and the subscriber's node id reach the source.
    let err = conn.subscribe("live", "old", 5).await.unwrap_err();
    assert!(matches!(err, RelayError::Refused(SubscribeRefusal::NotFound)), "{err}");
    match conn.subscribe("live", "whoami", 0).await.unwrap_err() {
        RelayError::Refused(SubscribeRefusal::NotHome { owner }) => assert_eq!(owner, "edge-1"),
        other => panic!("{other}"),
    }
    // The connection is still usable after refusals.
    let mut sub = conn.subscribe("live", "cam2", 0).await.unwrap();
    assert_frames(&read_all(&mut sub).await, &expected_frames("cam2", 3));
}

#[tokio::test]
async fn one_connection_carries_several_subscriptions_at_once() {
    let c = cluster();
    let edge = client(&c.dir, "edge-1");
    let conn = edge.connect(c.addr, "origin-a").await.unwrap();
    let (a, b, l) = tokio::join!(
        conn.subscribe("live", "cam1", 0),
        conn.subscribe("live", "cam3", 0),
        conn.subscribe("live", "long", 0)
    );
    let (mut a, mut b, mut l) = (a.unwrap(), b.unwrap(), l.unwrap());
    assert_ne!(a.request_id(), b.request_id());
    let (ga, gb, gl) = tokio::join!(read_all(&mut a), read_all(&mut b), read_all(&mut l));
    assert_frames(&ga, &expected_frames("cam1", 3));
    assert_frames(&gb, &expected_frames("cam3", 3));
    assert_frames(&gl, &expected_frames("long", 12));
}

#[tokio::test]
async fn a_client_certificate_from_another_ca_is_refused() {
    let c = cluster();
    let other = tempfile::tempdir().unwrap();
    certs::generate(other.path(), &["edge-1"]).unwrap();
    // Its own CA does not know the server either, so give it the cluster CA as trust root
    // but keep its foreign client certificate: only the server's check can refuse it.
    std::fs::copy(c.dir.join("ca.pem"), other.path().join("ca.pem")).unwrap();
    let rogue = client(other.path(), "edge-1");
    let res = tokio::time::timeout(TIMEOUT, rogue.connect(c.addr, "origin-a")).await.unwrap();
    assert!(res.is_err(), "a foreign client certificate must be refused");
    // A legitimate client still works.
    let edge = client(&c.dir, "edge-2");
    let conn = edge.connect(c.addr, "origin-a").await.unwrap();
    let mut sub = conn.subscribe("live", "cam1", 0).await.unwrap();
    assert_frames(&read_all(&mut sub).await, &expected_frames("cam1", 3));
}

#[tokio::test]
async fn a_server_with_a_certificate_from_another_ca_is_refused() {
    let c = cluster();
    let other = tempfile::tempdir().unwrap();
    certs::generate(other.path(), &["origin-a"]).unwrap();
    let tls = RelayTls::from_dir(other.path(), "origin-a").unwrap();
    let impostor = RelayEndpoint::bind(localhost(), RelayConfig::new("origin-a", tls)).unwrap();
    impostor.serve(Arc::new(TestSource { streams: HashMap::new(), abandoned: Arc::default() }));
    let edge = client(&c.dir, "edge-1");
    let res = edge.connect(impostor.local_addr().unwrap(), "origin-a").await;
    assert!(res.is_err());
    // And the wrong name for the right server is refused too.
    assert!(edge.connect(c.addr, "origin-z").await.is_err());
}

#[tokio::test]
async fn insecure_dev_connects_without_certificates() {
    let server =
        RelayEndpoint::bind(localhost(), RelayConfig::new("dev-a", RelayTls::insecure_dev()))
            .unwrap();
    let streams = [("cam1".to_string(), 3)].into_iter().collect();
    server.serve(Arc::new(TestSource { streams, abandoned: Arc::default() }));
    let edge =
        RelayEndpoint::bind(localhost(), RelayConfig::new("dev-b", RelayTls::insecure_dev()))
            .unwrap();
    let conn = edge.connect(server.local_addr().unwrap(), "anything").await.unwrap();
    let mut sub = conn.subscribe("live", "cam1", 0).await.unwrap();
    assert_frames(&read_all(&mut sub).await, &expected_frames("cam1", 3));
}

#[tokio::test]
async fn an_unsupported_version_closes_with_its_code() {
    let c = cluster();
    let edge = client(&c.dir, "edge-1");
    let (conn, _send, _recv) = raw_hello(&edge, c.addr, 99).await;
    let err = tokio::time::timeout(TIMEOUT, conn.closed()).await.unwrap();
    assert_eq!(close_code(err), u64::from(codes::UNSUPPORTED_VERSION));
}

#[tokio::test]
async fn a_malformed_control_message_closes_only_that_connection() {
    let c = cluster();
    let edge = client(&c.dir, "edge-1");
    let good = edge.connect(c.addr, "origin-a").await.unwrap();
    let mut sub = good.subscribe("live", "long", 0).await.unwrap();

    let (conn, mut send, recv) = raw_hello(&edge, c.addr, sluice_relay::VERSION).await;
    // Read the server's Hello back.
    let mut recv = recv;
    let mut buf = BytesMut::new();
    let reply = loop {
        match codec::decode_control(&mut buf) {
            Ok(m) => break m,
            Err(codec::CodecError::Short) => {}
            Err(e) => panic!("{e}"),
        }
        let chunk = recv.read_chunk(1024, true).await.unwrap().unwrap();
        buf.extend_from_slice(&chunk.bytes);
    };
    assert!(matches!(reply.msg, Some(Msg::Hello(h)) if h.node_id == "origin-a"));
    // A length-prefixed message that is not protobuf.
    send.write_all(&[0, 0, 0, 3, 0xff, 0xff, 0xff]).await.unwrap();
    let err = tokio::time::timeout(TIMEOUT, conn.closed()).await.unwrap();
    assert_eq!(close_code(err), u64::from(codes::PROTOCOL_VIOLATION));

    // An oversized length prefix is refused the same way, without waiting for the body.
    let (conn, mut send, _recv) = raw_hello(&edge, c.addr, sluice_relay::VERSION).await;
    send.write_all(&[0x7f, 0xff, 0xff, 0xff]).await.unwrap();
    let err = tokio::time::timeout(TIMEOUT, conn.closed()).await.unwrap();
    assert_eq!(close_code(err), u64::from(codes::PROTOCOL_VIOLATION));

    // The other connection on the same endpoints is unaffected.
    assert_frames(&read_all(&mut sub).await, &expected_frames("long", 12));
    let mut again = good.subscribe("live", "cam1", 0).await.unwrap();
    assert_frames(&read_all(&mut again).await, &expected_frames("cam1", 3));
    drop(c.server);
}

#[tokio::test]
async fn a_subscriber_a_whole_gop_behind_skips_to_newer_gops() {
    // "burst" produces 30 GOPs at once: far faster than they can be acknowledged, so older
    // GOP streams are cancelled. What arrives is, per GOP, a prefix of that GOP (headers
    // first), GOPs in increasing order, and the last GOP complete.
    let c = cluster();
    let edge = client(&c.dir, "edge-1");
    let conn = edge.connect(c.addr, "origin-a").await.unwrap();
    let mut sub = conn.subscribe("live", "burst", 0).await.unwrap();
    let got = read_all(&mut sub).await;
    let hs = headers("burst");
    let mut i = 0;
    let mut last_gop: Option<u32> = None;
    let mut gops_seen = 0;
    while i < got.len() {
        // A GOP stream: a prefix of the headers, then (unless cancelled already) a prefix
        // of that GOP's frames; a cancelled GOP is followed by the next GOP's metadata.
        let mut n = 0;
        while n < hs.len() && i < got.len() && got[i] == hs[n] {
            i += 1;
            n += 1;
        }
        assert!(n >= 1, "a GOP stream starts with the metadata (frame {i})");
        if n < hs.len() || i == got.len() || !got[i].starts_gop() {
            assert!(i < got.len(), "the last GOP arrives complete");
            assert_eq!(got[i], hs[0], "a GOP cancelled within its headers (frame {i})");
            continue;
        }
        let g = got[i].timestamp / 1000;
        assert!(last_gop.is_none_or(|l| g > l), "GOPs in increasing order");
        let body = gop("burst", g);
        let mut m = 0;
        while m < body.len() && i < got.len() && got[i] == body[m] {
            i += 1;
            m += 1;
        }
        let complete = m == body.len();
        assert!(complete || (i < got.len() && got[i] == hs[0]), "GOP {g} is a prefix (frame {i})");
        assert!(i < got.len() || complete, "the last GOP arrives complete");
        last_gop = Some(g);
        gops_seen += 1;
    }
    assert_eq!(last_gop, Some(29));
    assert!(gops_seen < 30, "some GOPs were cancelled ({gops_seen} seen)");
}

#[tokio::test]
async fn dropping_a_subscription_unsubscribes_and_releases_the_source() {
    let c = cluster();
    let edge = client(&c.dir, "edge-1");
    let conn = edge.connect(c.addr, "origin-a").await.unwrap();
    let mut sub = conn.subscribe("live", "long", 0).await.unwrap();
    let first = sub.next_frame().await.unwrap().unwrap();
    assert_eq!(first, headers("long")[0]);
    drop(sub);
    let deadline = tokio::time::Instant::now() + TIMEOUT;
    while !c.abandoned.lock().unwrap().contains(&"long".to_string()) {
        assert!(tokio::time::Instant::now() < deadline, "the source was never released");
        tokio::time::sleep(Duration::from_millis(20)).await;
    }
    // The connection goes on serving.
    let mut sub = conn.subscribe("live", "cam1", 0).await.unwrap();
    assert_frames(&read_all(&mut sub).await, &expected_frames("cam1", 3));
}
