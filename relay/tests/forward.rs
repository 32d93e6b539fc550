//! Forwards (an origin pushing a stream to its home) and trace context, between relay
//! endpoints on 127.0.0.1 with real QUIC and real mutual TLS.
#![allow(clippy::disallowed_methods)] // test fixtures lock std mutexes directly: a poisoned lock means the test already failed

mod common;

use std::net::SocketAddr;
use std::path::{Path, PathBuf};
use std::sync::{Arc, Mutex};
use std::time::Duration;

use bytes::BytesMut;
use common::*;
use sluice_proto::v1::{control_message::Msg, Forward, ForwardErrorCode};
use sluice_relay::codec::{self, GopHeader};
use sluice_relay::tls::RelayTls;
use sluice_relay::{
    certs, codes, ForwardEnd, ForwardRefusal, ForwardRequest, ForwardSink, Frame, MediaSource,
    RelayConfig, RelayEndpoint, RelayError, SubscribeRefusal, SubscribeRequest,
};
use tokio::sync::mpsc;

const TRACEPARENT: &str = "00-0af7651916cd43dd8448eb211c80319c-b7ad6b7169203331-01";

type Accepted = (ForwardRequest, mpsc::Receiver<Frame>);

/// Takes every forward except "elsewhere" (not home, owner origin-c) and "refuse"; hands
/// the receiving ends to the test.
struct TestSink {
    capacity: usize,
    accepted: mpsc::UnboundedSender<Accepted>,
    /// Every request that reached the sink.
    seen: Mutex<Vec<ForwardRequest>>,
    /// (name, end) of every ended forward.
    ended: Mutex<Vec<(String, ForwardEnd)>>,
}

impl ForwardSink for TestSink {
    fn accept(&self, req: &ForwardRequest) -> Result<mpsc::Sender<Frame>, ForwardRefusal> {
        self.seen.lock().unwrap().push(req.clone());
        match req.name.as_str() {
            "elsewhere" => return Err(ForwardRefusal::NotHome { owner: "origin-c".into() }),
            "refuse" => return Err(ForwardRefusal::Refused),
            _ => {}
        }
        let (tx, rx) = mpsc::channel(self.capacity);
        let _ = self.accepted.send((req.clone(), rx));
        Ok(tx)
    }

    fn ended(&self, req: &ForwardRequest, end: ForwardEnd) {
        self.ended.lock().unwrap().push((req.name.clone(), end));
    }
}

/// Serves `live/cam1` (3 paced GOPs) and records the requests.
struct RecordingSource {
    seen: Mutex<Vec<SubscribeRequest>>,
}

impl MediaSource for RecordingSource {
    fn subscribe(&self, req: &SubscribeRequest) -> Result<mpsc::Receiver<Frame>, SubscribeRefusal> {
        self.seen.lock().unwrap().push(req.clone());
        if req.name != "cam1" {
            return Err(SubscribeRefusal::NotFound);
        }
        Ok(produce("cam1", 3, GOP_INTERVAL))
    }
}

/// A live source: headers, then `gops` GOPs, one every `interval`.
fn produce(name: &str, gops: u32, interval: Duration) -> mpsc::Receiver<Frame> {
    let (tx, rx) = mpsc::channel(16);
    tokio::spawn(feed(vec![tx], source_frames(name, gops), interval));
    rx
}

/// Sends `frames` to every sender (paced by GOP) until all are gone.
async fn feed(mut txs: Vec<mpsc::Sender<Frame>>, frames: Vec<Frame>, interval: Duration) {
    for f in frames {
        if f.starts_gop() && f.timestamp > 0 {
            tokio::time::sleep(interval).await;
        }
        let mut live = Vec::new();
        for tx in txs {
            if tx.send(f.clone()).await.is_ok() {
                live.push(tx);
            }
        }
        txs = live;
        if txs.is_empty() {
            return;
        }
    }
}

/// A home node: serves [`RecordingSource`] and takes forwards into a [`TestSink`].
struct Home {
    _endpoint: RelayEndpoint,
    addr: SocketAddr,
    sink: Arc<TestSink>,
    source: Arc<RecordingSource>,
    accepted: mpsc::UnboundedReceiver<Accepted>,
}

impl Home {
    fn start(dir: &Path, node: &str, capacity: usize) -> Self {
        let tls = RelayTls::from_dir(dir, node).unwrap();
        let endpoint = RelayEndpoint::bind(localhost(), RelayConfig::new(node, tls)).unwrap();
        let (tx, accepted) = mpsc::unbounded_channel();
        let sink = Arc::new(TestSink {
            capacity,
            accepted: tx,
            seen: Mutex::default(),
            ended: Mutex::default(),
        });
        let source = Arc::new(RecordingSource { seen: Mutex::default() });
        endpoint.serve_with(source.clone(), Some(sink.clone()));
        let addr = endpoint.local_addr().unwrap();
        Self { _endpoint: endpoint, addr, sink, source, accepted }
    }

    /// The next forward the sink accepted.
    async fn next_forward(&mut self) -> Accepted {
        tokio::time::timeout(TIMEOUT, self.accepted.recv())
            .await
            .expect("a forward in time")
            .expect("sink alive")
    }

    /// Waits until the sink was told that the forward of `name` ended; returns how.
    async fn ended(&self, name: &str) -> ForwardEnd {
        let deadline = tokio::time::Instant::now() + TIMEOUT;
        loop {
            let found =
                self.sink.ended.lock().unwrap().iter().find(|(n, _)| n == name).map(|(_, e)| *e);
            if let Some(end) = found {
                return end;
            }
            assert!(tokio::time::Instant::now() < deadline, "{name} never ended");
            tokio::time::sleep(Duration::from_millis(20)).await;
        }
    }
}

/// Certificates for origin-a, origin-b (the forwarding node) and origin-c.
fn cert_dir() -> (tempfile::TempDir, PathBuf) {
    let dir = tempfile::tempdir().unwrap();
    certs::generate(dir.path(), &["origin-a", "origin-b", "origin-c"]).unwrap();
    let path = dir.path().to_path_buf();
    (dir, path)
}

/// Everything a receiver gets until the channel closes.
async fn drain(rx: &mut mpsc::Receiver<Frame>) -> Vec<Frame> {
    let mut got = Vec::new();
    while let Some(f) =
        tokio::time::timeout(TIMEOUT, rx.recv()).await.expect("frame or end in time")
    {
        got.push(f);
    }
    got
}

#[tokio::test]
async fn forwarded_frames_arrive_identical_and_in_order_then_end() {
    let (_d, dir) = cert_dir();
    let mut home = Home::start(&dir, "origin-a", 64);
    let conn = client(&dir, "origin-b").connect(home.addr, "origin-a").await.unwrap();
    let frames = produce("fwd", 3, GOP_INTERVAL);
    let mut handle = conn.forward("live", "fwd", 42, 1, frames).await.unwrap();
    let (req, mut rx) = home.next_forward().await;
    assert_eq!(
        req,
        ForwardRequest {
            app: "live".into(),
            name: "fwd".into(),
            claim_revision: 42,
            hops: 1,
            peer_node_id: "origin-b".into(),
            traceparent: String::new(),
        }
    );
    assert_frames(&drain(&mut rx).await, &expected_frames("fwd", 3));
    let gops = tokio::time::timeout(TIMEOUT, handle.finished()).await.unwrap();
    assert_eq!(gops.unwrap(), 3);
    assert_eq!(home.ended("fwd").await, ForwardEnd::SourceEnded);
}

#[tokio::test]
async fn refusals_reach_the_forwarder_as_errors() {
    let (_d, dir) = cert_dir();
    let home = Home::start(&dir, "origin-a", 64);
    let conn = client(&dir, "origin-b").connect(home.addr, "origin-a").await.unwrap();
    let (_tx, frames) = mpsc::channel(1);
    match conn.forward("live", "elsewhere", 0, 0, frames).await {
        Err(RelayError::ForwardRefused(ForwardRefusal::NotHome { owner })) => {
            assert_eq!(owner, "origin-c");
        }
        other => panic!("{other:?}"),
    }
    let (_tx, frames) = mpsc::channel(1);
    let err = conn.forward("live", "refuse", 0, 0, frames).await;
    assert!(matches!(err, Err(RelayError::ForwardRefused(ForwardRefusal::Refused))), "{err:?}");
    // Above the hop limit (default 3): LOOP, without asking the sink. At the limit: fine.
    let (_tx, frames) = mpsc::channel(1);
    let err = conn.forward("live", "looping", 0, 4, frames).await;
    assert!(matches!(err, Err(RelayError::ForwardRefused(ForwardRefusal::Loop))), "{err:?}");
    assert!(home.sink.seen.lock().unwrap().iter().all(|r| r.name != "looping"));
    let (_tx, frames) = mpsc::channel(1);
    let handle = conn.forward("live", "at-limit", 0, 3, frames).await.unwrap();
    drop(handle);

    // A node serving without a sink refuses every forward, and keeps the connection.
    let plain = RelayEndpoint::bind(
        localhost(),
        RelayConfig::new("origin-c", RelayTls::from_dir(&dir, "origin-c").unwrap()),
    )
    .unwrap();
    plain.serve(Arc::new(RecordingSource { seen: Mutex::default() }));
    let conn =
        client(&dir, "origin-b").connect(plain.local_addr().unwrap(), "origin-c").await.unwrap();
    let (_tx, frames) = mpsc::channel(1);
    let err = conn.forward("live", "fwd", 0, 0, frames).await;
    assert!(matches!(err, Err(RelayError::ForwardRefused(ForwardRefusal::Refused))), "{err:?}");
    let mut sub = conn.subscribe("live", "cam1", 0).await.unwrap();
    assert_frames(&read_all(&mut sub).await, &expected_frames("cam1", 3));
}

#[tokio::test]
async fn a_forward_and_a_subscription_share_one_connection() {
    let (_d, dir) = cert_dir();
    let mut home = Home::start(&dir, "origin-a", 64);
    let conn = client(&dir, "origin-b").connect(home.addr, "origin-a").await.unwrap();
    let (sub, handle) = tokio::join!(
        conn.subscribe("live", "cam1", 0),
        conn.forward("live", "fwd", 0, 0, produce("fwd", 4, GOP_INTERVAL))
    );
    let (mut sub, mut handle) = (sub.unwrap(), handle.unwrap());
    assert_ne!(sub.request_id(), handle.request_id());
    let (_, mut rx) = home.next_forward().await;
    let (subscribed, forwarded) = tokio::join!(read_all(&mut sub), drain(&mut rx));
    assert_frames(&subscribed, &expected_frames("cam1", 3));
    assert_frames(&forwarded, &expected_frames("fwd", 4));
    assert_eq!(handle.finished().await.unwrap(), 4);
}

#[tokio::test]
async fn one_stream_forwarded_to_two_homes_at_once() {
    // Make before break: the new home's forward opens while the old one still runs.
    let (_d, dir) = cert_dir();
    let mut old_home = Home::start(&dir, "origin-a", 64);
    let mut new_home = Home::start(&dir, "origin-c", 64);
    let edge = client(&dir, "origin-b");
    let to_old = edge.connect(old_home.addr, "origin-a").await.unwrap();
    let to_new = edge.connect(new_home.addr, "origin-c").await.unwrap();
    let (tx_old, rx_old) = mpsc::channel(16);
    let (tx_new, rx_new) = mpsc::channel(16);
    let old = to_old.forward("live", "moving", 9, 0, rx_old).await.unwrap();
    let new = to_new.forward("live", "moving", 9, 0, rx_new).await.unwrap();
    tokio::spawn(feed(vec![tx_old, tx_new], source_frames("moving", 3), GOP_INTERVAL));
    let (_, mut a) = old_home.next_forward().await;
    let (_, mut c) = new_home.next_forward().await;
    let (got_a, got_c) = tokio::join!(drain(&mut a), drain(&mut c));
    assert_frames(&got_a, &expected_frames("moving", 3));
    assert_frames(&got_c, &expected_frames("moving", 3));
    drop((old, new));
}

#[tokio::test]
async fn dropping_the_handle_ends_the_forward_on_the_receiver() {
    let (_d, dir) = cert_dir();
    let mut home = Home::start(&dir, "origin-a", 64);
    let conn = client(&dir, "origin-b").connect(home.addr, "origin-a").await.unwrap();
    let (tx, frames) = mpsc::channel(16);
    let handle = conn.forward("live", "long", 0, 0, frames).await.unwrap();
    tokio::spawn(feed(vec![tx.clone()], source_frames("long", 100), GOP_INTERVAL));
    let (_, mut rx) = home.next_forward().await;
    let first = tokio::time::timeout(TIMEOUT, rx.recv()).await.unwrap();
    assert_eq!(first, Some(headers("long")[0].clone()));
    drop(handle);
    // The receiver's channel closes (after at most the frames already queued).
    drain(&mut rx).await;
    assert_eq!(home.ended("long").await, ForwardEnd::Cancelled);
    // The forwarding side let go of the source.
    tokio::time::timeout(TIMEOUT, tx.closed()).await.unwrap();
    // The connection goes on.
    let mut sub = conn.subscribe("live", "cam1", 0).await.unwrap();
    assert_frames(&read_all(&mut sub).await, &expected_frames("cam1", 3));
}

#[tokio::test]
async fn a_receiver_that_lets_go_ends_the_forward_at_the_forwarder() {
    let (_d, dir) = cert_dir();
    let mut home = Home::start(&dir, "origin-a", 64);
    let conn = client(&dir, "origin-b").connect(home.addr, "origin-a").await.unwrap();
    let (tx, frames) = mpsc::channel(16);
    let mut handle = conn.forward("live", "long", 0, 0, frames).await.unwrap();
    tokio::spawn(feed(vec![tx.clone()], source_frames("long", 100), GOP_INTERVAL));
    let (_, mut rx) = home.next_forward().await;
    assert!(tokio::time::timeout(TIMEOUT, rx.recv()).await.unwrap().is_some());
    drop(rx);
    let result = tokio::time::timeout(TIMEOUT, handle.finished()).await.unwrap();
    assert!(
        matches!(result, Err(RelayError::ForwardRefused(ForwardRefusal::Closed))),
        "{result:?}"
    );
    assert_eq!(home.ended("long").await, ForwardEnd::ReceiverClosed);
    tokio::time::timeout(TIMEOUT, tx.closed()).await.unwrap();
}

#[tokio::test]
async fn traceparent_reaches_the_serving_and_the_receiving_node() {
    let (_d, dir) = cert_dir();
    let mut home = Home::start(&dir, "origin-a", 64);
    let conn = client(&dir, "origin-b").connect(home.addr, "origin-a").await.unwrap();
    let mut sub = conn.subscribe_traced("live", "cam1", 3, TRACEPARENT).await.unwrap();
    assert!(sub.next_frame().await.unwrap().is_some());
    let untraced = conn.subscribe("live", "nope", 0).await.unwrap_err();
    assert!(matches!(untraced, RelayError::Refused(SubscribeRefusal::NotFound)));
    {
        let seen = home.source.seen.lock().unwrap();
        assert_eq!(seen[0].traceparent, TRACEPARENT);
        assert_eq!((seen[0].name.as_str(), seen[0].claim_revision), ("cam1", 3));
        assert_eq!(seen[1].traceparent, "");
    }
    let (_tx, frames) = mpsc::channel(1);
    let _handle = conn.forward_traced("live", "traced", 0, 2, TRACEPARENT, frames).await.unwrap();
    let (req, _rx) = home.next_forward().await;
    assert_eq!((req.traceparent.as_str(), req.hops), (TRACEPARENT, 2));
}

fn forward_msg(request_id: u64, name: &str) -> Msg {
    Msg::Forward(Forward {
        request_id,
        app: "live".into(),
        name: name.into(),
        claim_revision: 0,
        hops: 0,
        traceparent: String::new(),
    })
}

/// A raw connection to origin-a past the Hellos.
async fn raw(
    edge: &RelayEndpoint,
    addr: SocketAddr,
) -> (quinn::Connection, quinn::SendStream, quinn::RecvStream, BytesMut) {
    let (conn, send, mut recv) = raw_hello(edge, addr, sluice_relay::VERSION).await;
    let mut buf = BytesMut::new();
    let hello = read_control(&mut recv, &mut buf).await;
    assert!(matches!(hello.msg, Some(Msg::Hello(_))));
    (conn, send, recv, buf)
}

#[tokio::test]
async fn a_malformed_forward_closes_only_that_connection() {
    let (_d, dir) = cert_dir();
    let mut home = Home::start(&dir, "origin-a", 64);
    // raw_hello presents itself as origin-b, the node its certificate names.
    let edge = client(&dir, "origin-b");
    let good = edge.connect(home.addr, "origin-a").await.unwrap();
    let mut handle =
        good.forward("live", "fwd", 0, 0, produce("fwd", 4, GOP_INTERVAL)).await.unwrap();
    let (_, mut rx) = home.next_forward().await;

    // A request id used twice while the first forward is live.
    let (conn, mut send, mut recv, mut buf) = raw(&edge, home.addr).await;
    write_control(&mut send, forward_msg(5, "dup")).await;
    let ok = read_control(&mut recv, &mut buf).await;
    assert!(matches!(ok.msg, Some(Msg::ForwardOk(o)) if o.request_id == 5));
    write_control(&mut send, forward_msg(5, "dup")).await;
    let err = tokio::time::timeout(TIMEOUT, conn.closed()).await.unwrap();
    assert_eq!(close_code(err), u64::from(codes::PROTOCOL_VIOLATION));

    // A reserved request id (top bit set).
    let (conn, mut send, _recv, _buf) = raw(&edge, home.addr).await;
    write_control(&mut send, forward_msg(1 << 63, "reserved")).await;
    let err = tokio::time::timeout(TIMEOUT, conn.closed()).await.unwrap();
    assert_eq!(close_code(err), u64::from(codes::PROTOCOL_VIOLATION));

    // A Forward cut short inside its protobuf body.
    let (conn, mut send, _recv, _buf) = raw(&edge, home.addr).await;
    let mut whole = BytesMut::new();
    codec::encode_control(
        &sluice_proto::v1::ControlMessage { msg: Some(forward_msg(6, "truncated")) },
        &mut whole,
    );
    let body_len = whole.len() - 4 - 3;
    let mut cut = (body_len as u32).to_be_bytes().to_vec();
    cut.extend_from_slice(&whole[4..4 + body_len]);
    send.write_all(&cut).await.unwrap();
    let err = tokio::time::timeout(TIMEOUT, conn.closed()).await.unwrap();
    assert_eq!(close_code(err), u64::from(codes::PROTOCOL_VIOLATION));

    // The well-behaved connection's forward is unaffected.
    let dup = home.next_forward().await; // the raw connection's accepted forward
    assert_eq!(dup.0.name, "dup");
    assert_frames(&drain(&mut rx).await, &expected_frames("fwd", 4));
    assert_eq!(handle.finished().await.unwrap(), 4);
    assert_eq!(home.ended("dup").await, ForwardEnd::ConnectionLost);
}

#[tokio::test]
async fn a_gop_stream_for_no_live_forward_is_stopped_and_ignored() {
    let (_d, dir) = cert_dir();
    let mut home = Home::start(&dir, "origin-a", 64);
    let edge = client(&dir, "origin-b");
    let (conn, mut send, mut recv, mut buf) = raw(&edge, home.addr).await;
    let mut stream = conn.open_uni().await.unwrap();
    let mut head = BytesMut::new();
    codec::encode_gop_header(&GopHeader { request_id: 77, gop_sequence: 0 }, &mut head);
    stream.write_all(&head).await.unwrap();
    let stopped = tokio::time::timeout(TIMEOUT, stream.stopped()).await.unwrap();
    assert_eq!(stopped.unwrap(), Some(quinn::VarInt::from(codes::STREAM_UNWANTED)));
    // The connection still works: a refused forward is answered.
    write_control(&mut send, forward_msg(8, "refuse")).await;
    let answer = read_control(&mut recv, &mut buf).await;
    match answer.msg {
        Some(Msg::ForwardError(e)) => {
            assert_eq!(e.request_id, 8);
            assert_eq!(e.code, ForwardErrorCode::ForwardRefused as i32);
        }
        other => panic!("{other:?}"),
    }
    assert!(home.accepted.try_recv().is_err());
}
