//! Requests in both directions over ONE connection, with real QUIC and real mutual TLS on
//! 127.0.0.1: the dialler (origin-b, `connect_serving`) and the acceptor (origin-a,
//! `serve_with_peers`) each subscribe to a stream the other serves and forward a stream to
//! the other, at the same time; malformed requests from either side close only their
//! connection; closing the connection ends everything on both sides.
#![allow(clippy::disallowed_methods)] // test fixtures lock std mutexes directly: a poisoned lock means the test already failed

mod common;

use std::net::SocketAddr;
use std::path::Path;
use std::sync::{Arc, Mutex};
use std::time::Duration;

use bytes::BytesMut;
use common::*;
use sluice_proto::v1::{control_message::Msg, Hello, Subscribe};
use sluice_relay::tls::RelayTls;
use sluice_relay::{
    certs, codes, ForwardEnd, ForwardRefusal, ForwardRequest, ForwardSink, Frame, MediaSource,
    RelayConfig, RelayConnection, RelayEndpoint, RelayError, SubscribeRefusal, SubscribeRequest,
};
use tokio::sync::mpsc;

const ACCEPTOR_BIT: u64 = 1 << 63;

/// Sends `frames`, a GOP every `interval`, until done or the receiver is gone (then records
/// `name` in `released`).
fn produce(
    name: &str,
    gops: u32,
    interval: Duration,
    released: Arc<Mutex<Vec<String>>>,
) -> mpsc::Receiver<Frame> {
    let (tx, rx) = mpsc::channel(16);
    let (frames, name) = (source_frames(name, gops), name.to_string());
    tokio::spawn(async move {
        for f in frames {
            if f.starts_gop() && f.timestamp > 0 {
                tokio::time::sleep(interval).await;
            }
            if tx.send(f).await.is_err() {
                released.lock().unwrap().push(name);
                return;
            }
        }
    });
    rx
}

/// One node's serving side: streams "{node}-cam" (3 GOPs) and "{node}-long" (100 GOPs),
/// and every forward taken, with how it ended.
struct Node {
    name: String,
    subscribed: Mutex<Vec<SubscribeRequest>>,
    released: Arc<Mutex<Vec<String>>>,
    accepted: mpsc::UnboundedSender<(ForwardRequest, mpsc::Receiver<Frame>)>,
    ended: Mutex<Vec<(String, ForwardEnd)>>,
}

impl MediaSource for Node {
    fn subscribe(&self, req: &SubscribeRequest) -> Result<mpsc::Receiver<Frame>, SubscribeRefusal> {
        self.subscribed.lock().unwrap().push(req.clone());
        let gops = match req.name.strip_prefix(&self.name) {
            Some("-cam") => 3,
            Some("-long") => 100,
            _ => return Err(SubscribeRefusal::NotFound),
        };
        Ok(produce(&req.name, gops, GOP_INTERVAL, self.released.clone()))
    }
}

impl ForwardSink for Node {
    fn accept(&self, req: &ForwardRequest) -> Result<mpsc::Sender<Frame>, ForwardRefusal> {
        let (tx, rx) = mpsc::channel(64);
        let _ = self.accepted.send((req.clone(), rx));
        Ok(tx)
    }

    fn ended(&self, req: &ForwardRequest, end: ForwardEnd) {
        self.ended.lock().unwrap().push((req.name.clone(), end));
    }
}

type Forwards = mpsc::UnboundedReceiver<(ForwardRequest, mpsc::Receiver<Frame>)>;

fn node(name: &str) -> (Arc<Node>, Forwards) {
    let (accepted, rx) = mpsc::unbounded_channel();
    let node = Node {
        name: name.into(),
        subscribed: Mutex::default(),
        released: Arc::default(),
        accepted,
        ended: Mutex::default(),
    };
    (Arc::new(node), rx)
}

async fn next_forward(forwards: &mut Forwards) -> (ForwardRequest, mpsc::Receiver<Frame>) {
    tokio::time::timeout(TIMEOUT, forwards.recv())
        .await
        .expect("a forward in time")
        .expect("sink alive")
}

async fn drain(rx: &mut mpsc::Receiver<Frame>) -> Vec<Frame> {
    let mut got = Vec::new();
    while let Some(f) =
        tokio::time::timeout(TIMEOUT, rx.recv()).await.expect("frame or end in time")
    {
        got.push(f);
    }
    got
}

/// Waits until `check` holds (polling), or fails with `what`.
async fn eventually(what: &str, check: impl Fn() -> bool) {
    let deadline = tokio::time::Instant::now() + TIMEOUT;
    while !check() {
        assert!(tokio::time::Instant::now() < deadline, "{what}");
        tokio::time::sleep(Duration::from_millis(20)).await;
    }
}

/// The acceptor origin-a serving with peers, the dialler origin-b connected with
/// `connect_serving`: both nodes' handles of the one connection.
struct Pair {
    dir: tempfile::TempDir,
    acceptor: RelayEndpoint,
    a: Arc<Node>,
    a_forwards: Forwards,
    a_conn: RelayConnection,
    dialler: RelayEndpoint,
    b: Arc<Node>,
    b_forwards: Forwards,
    b_conn: RelayConnection,
    peers: mpsc::Receiver<RelayConnection>,
}

fn endpoint(dir: &Path, name: &str) -> RelayEndpoint {
    let tls = RelayTls::from_dir(dir, name).unwrap();
    RelayEndpoint::bind(localhost(), RelayConfig::new(name, tls)).unwrap()
}

async fn pair() -> Pair {
    let dir = tempfile::tempdir().unwrap();
    certs::generate(dir.path(), &["origin-a", "origin-b", "origin-c"]).unwrap();
    let acceptor = endpoint(dir.path(), "origin-a");
    let (a, a_forwards) = node("origin-a");
    let (tx, mut peers) = mpsc::channel(4);
    acceptor.serve_with_peers(a.clone(), Some(a.clone()), tx);
    // The dialler runs no accept loop: whatever origin-a asks of it can only come over
    // the connection origin-b dialled.
    let dialler = endpoint(dir.path(), "origin-b");
    let (b, b_forwards) = node("origin-b");
    let b_conn = dialler
        .connect_serving(acceptor.local_addr().unwrap(), "origin-a", b.clone(), Some(b.clone()))
        .await
        .unwrap();
    let a_conn = tokio::time::timeout(TIMEOUT, peers.recv())
        .await
        .expect("the acceptor's handle in time")
        .expect("a handle");
    Pair { dir, acceptor, a, a_forwards, a_conn, dialler, b, b_forwards, b_conn, peers }
}

#[tokio::test]
async fn both_nodes_subscribe_and_forward_over_one_connection() {
    let mut p = pair().await;
    assert_eq!(p.a_conn.peer_node_id(), "origin-b");
    assert_eq!(p.b_conn.peer_node_id(), "origin-a");
    // One connection: each handle's remote address is the other endpoint's socket.
    assert_eq!(p.a_conn.quic().remote_address(), p.dialler.local_addr().unwrap());
    assert_eq!(p.b_conn.quic().remote_address(), p.acceptor.local_addr().unwrap());

    let released = Arc::new(Mutex::new(Vec::new()));
    let (a_sub, b_sub, a_fwd, b_fwd) = tokio::join!(
        p.a_conn.subscribe_traced("live", "origin-b-cam", 7, "00-a"),
        p.b_conn.subscribe("live", "origin-a-cam", 0),
        p.a_conn.forward_traced(
            "live",
            "a-fwd",
            11,
            1,
            "00-fa",
            produce("a-fwd", 4, GOP_INTERVAL, released.clone())
        ),
        p.b_conn.forward(
            "live",
            "b-fwd",
            12,
            0,
            produce("b-fwd", 3, GOP_INTERVAL, released.clone())
        ),
    );
    let (mut a_sub, mut b_sub) = (a_sub.unwrap(), b_sub.unwrap());
    let (mut a_fwd, mut b_fwd) = (a_fwd.unwrap(), b_fwd.unwrap());
    // Each node numbers its requests in its own half of the id space.
    assert!(a_sub.request_id() >= ACCEPTOR_BIT && a_fwd.request_id() >= ACCEPTOR_BIT);
    assert!(b_sub.request_id() < ACCEPTOR_BIT && b_fwd.request_id() < ACCEPTOR_BIT);

    let (a_req, mut at_b) = next_forward(&mut p.b_forwards).await;
    let (b_req, mut at_a) = next_forward(&mut p.a_forwards).await;
    assert_eq!(
        a_req,
        ForwardRequest {
            app: "live".into(),
            name: "a-fwd".into(),
            claim_revision: 11,
            hops: 1,
            peer_node_id: "origin-a".into(),
            traceparent: "00-fa".into(),
        }
    );
    assert_eq!((b_req.name.as_str(), b_req.peer_node_id.as_str()), ("b-fwd", "origin-b"));

    let (got_a_sub, got_b_sub, got_at_b, got_at_a) = tokio::join!(
        read_all(&mut a_sub),
        read_all(&mut b_sub),
        drain(&mut at_b),
        drain(&mut at_a)
    );
    assert_frames(&got_a_sub, &expected_frames("origin-b-cam", 3));
    assert_frames(&got_b_sub, &expected_frames("origin-a-cam", 3));
    assert_frames(&got_at_b, &expected_frames("a-fwd", 4));
    assert_frames(&got_at_a, &expected_frames("b-fwd", 3));
    assert_eq!(a_fwd.finished().await.unwrap(), 4);
    assert_eq!(b_fwd.finished().await.unwrap(), 3);

    // Each source saw who subscribed, over which claim, with which trace context.
    let seen = p.b.subscribed.lock().unwrap().clone();
    assert_eq!(seen.len(), 1);
    assert_eq!(
        (seen[0].peer_node_id.as_str(), seen[0].claim_revision, seen[0].traceparent.as_str()),
        ("origin-a", 7, "00-a")
    );
    assert_eq!(p.a.subscribed.lock().unwrap()[0].peer_node_id, "origin-b");
    eventually("both forwards ended SOURCE_ENDED", || {
        let (a, b) = (p.a.ended.lock().unwrap(), p.b.ended.lock().unwrap());
        a.as_slice() == [("b-fwd".to_string(), ForwardEnd::SourceEnded)]
            && b.as_slice() == [("a-fwd".to_string(), ForwardEnd::SourceEnded)]
    })
    .await;
    // Refusals travel the acceptor's way too, and the connection goes on.
    let refused = p.a_conn.subscribe("live", "nothing", 0).await;
    assert!(matches!(refused, Err(RelayError::Refused(SubscribeRefusal::NotFound))), "{refused:?}");
    // No second connection was made or handed out.
    assert!(p.peers.try_recv().is_err());
}

#[tokio::test]
async fn a_dialler_that_does_not_serve_is_not_handed_out() {
    let mut p = pair().await;
    let plain = p.dialler.connect(p.acceptor.local_addr().unwrap(), "origin-a").await.unwrap();
    let mut sub = plain.subscribe("live", "origin-a-cam", 0).await.unwrap();
    assert_frames(&read_all(&mut sub).await, &expected_frames("origin-a-cam", 3));
    assert!(p.peers.try_recv().is_err(), "a plain dialler's connection was handed out");
}

/// A raw acceptor on origin-c: accepts one connection, answers the Hello, returns the
/// control stream.
async fn raw_acceptor(
    endpoint: &RelayEndpoint,
) -> (quinn::Connection, quinn::SendStream, quinn::RecvStream, BytesMut) {
    let conn = tokio::time::timeout(TIMEOUT, endpoint.accept_quic()).await.unwrap().unwrap();
    let (mut send, mut recv) = conn.accept_bi().await.unwrap();
    let mut buf = BytesMut::new();
    let hello = read_control(&mut recv, &mut buf).await;
    assert!(matches!(hello.msg, Some(Msg::Hello(_))), "{hello:?}");
    let reply = Hello {
        version: sluice_relay::VERSION,
        node_id: "origin-c".into(),
        serves_requests: false,
    };
    write_control(&mut send, Msg::Hello(reply)).await;
    (conn, send, recv, buf)
}

fn subscribe(request_id: u64, name: &str) -> Msg {
    Msg::Subscribe(Subscribe {
        request_id,
        app: "live".into(),
        name: name.into(),
        claim_revision: 0,
        traceparent: String::new(),
    })
}

#[tokio::test]
async fn malformed_requests_from_the_acceptor_close_only_that_connection() {
    let p = pair().await;
    let raw = endpoint(p.dir.path(), "origin-c");
    let raw_addr: SocketAddr = raw.local_addr().unwrap();
    let b = p.b.clone();
    let released = Arc::new(Mutex::new(Vec::new()));
    // The good connection carries a request each way meanwhile.
    let mut a_sub = p.a_conn.subscribe("live", "origin-b-cam", 0).await.unwrap();
    let mut b_sub = p.b_conn.subscribe("live", "origin-a-cam", 0).await.unwrap();

    // A well-formed request from the acceptor is served: Subscribe with an id in the
    // acceptor's half.
    let dial = {
        let (dialler, b) = (p.dialler.clone(), b.clone());
        tokio::spawn(async move {
            dialler.connect_serving(raw_addr, "origin-c", b.clone(), Some(b)).await
        })
    };
    let (conn, mut send, mut recv, mut buf) = raw_acceptor(&raw).await;
    let _dialled = dial.await.unwrap().unwrap();
    write_control(&mut send, subscribe(ACCEPTOR_BIT | 9, "origin-b-cam")).await;
    let ok = read_control(&mut recv, &mut buf).await;
    assert!(
        matches!(ok.msg, Some(Msg::SubscribeOk(o)) if o.request_id == ACCEPTOR_BIT | 9),
        "{ok:?}"
    );
    // The same id again while live: a protocol violation.
    write_control(&mut send, subscribe(ACCEPTOR_BIT | 9, "origin-b-cam")).await;
    let err = tokio::time::timeout(TIMEOUT, conn.closed()).await.unwrap();
    assert_eq!(close_code(err), u64::from(codes::PROTOCOL_VIOLATION));

    // An id from the dialler's half.
    let dial = {
        let (dialler, b) = (p.dialler.clone(), b.clone());
        tokio::spawn(async move { dialler.connect_serving(raw_addr, "origin-c", b, None).await })
    };
    let (conn, mut send, _recv, _buf) = raw_acceptor(&raw).await;
    let _dialled = dial.await.unwrap().unwrap();
    write_control(&mut send, subscribe(3, "origin-b-cam")).await;
    let err = tokio::time::timeout(TIMEOUT, conn.closed()).await.unwrap();
    assert_eq!(close_code(err), u64::from(codes::PROTOCOL_VIOLATION));

    // Any request to a dialler that did not offer to serve.
    let dial = {
        let dialler = p.dialler.clone();
        tokio::spawn(async move { dialler.connect(raw_addr, "origin-c").await })
    };
    let (conn, mut send, _recv, _buf) = raw_acceptor(&raw).await;
    let _dialled = dial.await.unwrap().unwrap();
    write_control(&mut send, subscribe(ACCEPTOR_BIT | 1, "origin-b-cam")).await;
    let err = tokio::time::timeout(TIMEOUT, conn.closed()).await.unwrap();
    assert_eq!(close_code(err), u64::from(codes::PROTOCOL_VIOLATION));

    // Bytes that are no control message.
    let dial = {
        let (dialler, b) = (p.dialler.clone(), b.clone());
        tokio::spawn(async move { dialler.connect_serving(raw_addr, "origin-c", b, None).await })
    };
    let (conn, mut send, _recv, _buf) = raw_acceptor(&raw).await;
    let _dialled = dial.await.unwrap().unwrap();
    send.write_all(&[0, 0, 0, 3, 0xff, 0xff, 0xff]).await.unwrap();
    let err = tokio::time::timeout(TIMEOUT, conn.closed()).await.unwrap();
    assert_eq!(close_code(err), u64::from(codes::PROTOCOL_VIOLATION));

    // The first raw connection's subscription was released by origin-b when it closed.
    eventually("origin-b released the raw acceptor's subscription", || {
        b.released.lock().unwrap().iter().any(|n| n == "origin-b-cam")
    })
    .await;
    // The good connection is unaffected, both ways.
    let (got_a, got_b) = tokio::join!(read_all(&mut a_sub), read_all(&mut b_sub));
    assert_frames(&got_a, &expected_frames("origin-b-cam", 3));
    assert_frames(&got_b, &expected_frames("origin-a-cam", 3));
    let mut fwd = p
        .a_conn
        .forward("live", "after", 0, 0, produce("after", 2, GOP_INTERVAL, released))
        .await
        .unwrap();
    assert_eq!(fwd.finished().await.unwrap(), 2);
}

#[tokio::test]
async fn malformed_requests_from_the_dialler_close_only_that_connection() {
    let p = pair().await;
    let mut a_sub = p.a_conn.subscribe("live", "origin-b-cam", 0).await.unwrap();
    // A raw dialler sends a Subscribe with an id from the acceptor's half.
    let (conn, mut send, mut recv) =
        raw_hello(&p.dialler, p.acceptor.local_addr().unwrap(), sluice_relay::VERSION).await;
    let mut buf = BytesMut::new();
    assert!(matches!(read_control(&mut recv, &mut buf).await.msg, Some(Msg::Hello(_))));
    write_control(&mut send, subscribe(ACCEPTOR_BIT | 4, "origin-a-cam")).await;
    let err = tokio::time::timeout(TIMEOUT, conn.closed()).await.unwrap();
    assert_eq!(close_code(err), u64::from(codes::PROTOCOL_VIOLATION));
    // A second Hello.
    let (conn, mut send, _recv) =
        raw_hello(&p.dialler, p.acceptor.local_addr().unwrap(), sluice_relay::VERSION).await;
    let hello =
        Hello { version: sluice_relay::VERSION, node_id: "origin-b".into(), serves_requests: true };
    write_control(&mut send, Msg::Hello(hello)).await;
    let err = tokio::time::timeout(TIMEOUT, conn.closed()).await.unwrap();
    assert_eq!(close_code(err), u64::from(codes::PROTOCOL_VIOLATION));
    // The good connection goes on both ways.
    assert_frames(&read_all(&mut a_sub).await, &expected_frames("origin-b-cam", 3));
    let mut b_sub = p.b_conn.subscribe("live", "origin-a-cam", 0).await.unwrap();
    assert_frames(&read_all(&mut b_sub).await, &expected_frames("origin-a-cam", 3));
}

/// Opens a long subscription and a long forward each way, has `closer` close the
/// connection, and checks that everything ended on both nodes.
async fn closing_ends_everything(acceptor_closes: bool) {
    let mut p = pair().await;
    let released = Arc::new(Mutex::new(Vec::new()));
    let mut a_sub = p.a_conn.subscribe("live", "origin-b-long", 0).await.unwrap();
    let mut b_sub = p.b_conn.subscribe("live", "origin-a-long", 0).await.unwrap();
    let mut a_fwd = p
        .a_conn
        .forward("live", "a-long", 0, 0, produce("a-long", 100, GOP_INTERVAL, released.clone()))
        .await
        .unwrap();
    let mut b_fwd = p
        .b_conn
        .forward("live", "b-long", 0, 0, produce("b-long", 100, GOP_INTERVAL, released.clone()))
        .await
        .unwrap();
    let (_, mut at_b) = next_forward(&mut p.b_forwards).await;
    let (_, mut at_a) = next_forward(&mut p.a_forwards).await;
    // Everything flows before the close.
    for sub in [&mut a_sub, &mut b_sub] {
        let first = tokio::time::timeout(TIMEOUT, sub.next_frame()).await.unwrap();
        assert!(matches!(first, Ok(Some(_))), "{first:?}");
    }
    for rx in [&mut at_a, &mut at_b] {
        assert!(tokio::time::timeout(TIMEOUT, rx.recv()).await.unwrap().is_some());
    }

    if acceptor_closes {
        p.a_conn.close();
    } else {
        p.b_conn.close();
    }

    // Subscriptions fail (after at most the frames already received)...
    for sub in [&mut a_sub, &mut b_sub] {
        let end = loop {
            match tokio::time::timeout(TIMEOUT, sub.next_frame()).await.unwrap() {
                Ok(Some(_)) => continue,
                other => break other,
            }
        };
        assert!(end.is_err(), "a subscription must fail, got {end:?}");
    }
    // ...forwards fail at the forwarder, their receivers' channels close...
    for fwd in [&mut a_fwd, &mut b_fwd] {
        let end = tokio::time::timeout(TIMEOUT, fwd.finished()).await.unwrap();
        assert!(end.is_err(), "a forward must fail, got {end:?}");
    }
    drain(&mut at_a).await;
    drain(&mut at_b).await;
    // ...and both nodes let go of every source, and were told how forwards ended.
    eventually("both sources and forward sources released", || {
        let has = |v: &Arc<Mutex<Vec<String>>>, n: &str| v.lock().unwrap().iter().any(|x| x == n);
        has(&p.a.released, "origin-a-long")
            && has(&p.b.released, "origin-b-long")
            && has(&released, "a-long")
            && has(&released, "b-long")
    })
    .await;
    eventually("forwards ended ConnectionLost on both nodes", || {
        p.a.ended.lock().unwrap().as_slice() == [("b-long".to_string(), ForwardEnd::ConnectionLost)]
            && p.b.ended.lock().unwrap().as_slice()
                == [("a-long".to_string(), ForwardEnd::ConnectionLost)]
    })
    .await;
    // Both handles are done with; new requests fail on either side.
    assert!(p.a_conn.subscribe("live", "origin-b-cam", 0).await.is_err());
    assert!(p.b_conn.subscribe("live", "origin-a-cam", 0).await.is_err());
}

#[tokio::test]
async fn the_acceptor_closing_the_connection_ends_everything_on_both_sides() {
    closing_ends_everything(true).await;
}

#[tokio::test]
async fn the_dialler_closing_the_connection_ends_everything_on_both_sides() {
    closing_ends_everything(false).await;
}
