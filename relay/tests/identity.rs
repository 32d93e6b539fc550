//! The Hello identity check, with real QUIC and real mutual TLS on 127.0.0.1: a node whose
//! certificate names "node-a" but whose Hello says another node id is refused by whichever
//! side it talks to, with IDENTITY_MISMATCH and a clear error.

mod common;

use std::net::SocketAddr;
use std::sync::Arc;

use common::*;
use sluice_relay::tls::RelayTls;
use sluice_relay::{
    certs, codes, Frame, IdentityOf, MediaSource, RelayConfig, RelayConnection, RelayEndpoint,
    RelayError, SubscribeRefusal, SubscribeRequest,
};
use tokio::sync::mpsc;

/// Serves `live/cam` (2 GOPs at once) to anyone.
struct Cam;

impl MediaSource for Cam {
    fn subscribe(&self, req: &SubscribeRequest) -> Result<mpsc::Receiver<Frame>, SubscribeRefusal> {
        if req.name != "cam" {
            return Err(SubscribeRefusal::NotFound);
        }
        let (tx, rx) = mpsc::channel(256);
        for f in source_frames("cam", 2) {
            tx.try_send(f).expect("room for the whole stream");
        }
        Ok(rx)
    }
}

/// An endpoint presenting `cert`'s certificate but saying it is `node_id`.
fn node(dir: &std::path::Path, cert: &str, node_id: &str) -> RelayEndpoint {
    let tls = RelayTls::from_dir(dir, cert).unwrap();
    RelayEndpoint::bind(localhost(), RelayConfig::new(node_id, tls)).unwrap()
}

/// A serving node that hands out the connections of serving diallers.
fn serving(endpoint: &RelayEndpoint) -> (SocketAddr, mpsc::Receiver<RelayConnection>) {
    let (tx, rx) = mpsc::channel(8);
    endpoint.serve_with_peers(Arc::new(Cam), None, tx);
    (endpoint.local_addr().unwrap(), rx)
}

fn certs_for(nodes: &[&str]) -> tempfile::TempDir {
    let dir = tempfile::tempdir().unwrap();
    certs::generate(dir.path(), nodes).unwrap();
    dir
}

#[track_caller]
fn assert_identity(res: Result<RelayConnection, RelayError>, of: IdentityOf, claimed: &str) {
    match res {
        Err(RelayError::Identity { of: got, node_id, certified }) => {
            assert_eq!((got, node_id.as_str()), (of, claimed));
            assert_eq!(certified, ["node-a", "localhost"]);
        }
        other => panic!("expected an identity error, got {other:?}"),
    }
}

#[tokio::test]
async fn an_acceptor_refuses_a_dialler_that_claims_another_node() {
    let dir = certs_for(&["node-a", "node-b", "origin-a"]);
    let acceptor = node(dir.path(), "origin-a", "origin-a");
    let (addr, mut peers) = serving(&acceptor);

    // node-a's certificate, node-b's name.
    let liar = node(dir.path(), "node-a", "node-b");
    let res = tokio::time::timeout(TIMEOUT, liar.connect(addr, "origin-a")).await.unwrap();
    assert_identity(res, IdentityOf::Local, "node-b");
    let source = Arc::new(Cam);
    let res = liar.connect_serving(addr, "origin-a", source, None).await;
    assert_identity(res, IdentityOf::Local, "node-b");
    // On the wire: the acceptor closes with IDENTITY_MISMATCH instead of answering.
    let (conn, _send, mut recv) = raw_hello(&liar, addr, sluice_relay::VERSION).await;
    let err = tokio::time::timeout(TIMEOUT, conn.closed()).await.unwrap();
    assert_eq!(close_code(err), u64::from(codes::IDENTITY_MISMATCH));
    assert!(recv.read_chunk(64, true).await.is_err(), "no Hello came back");

    // "localhost" is on every certificate but names no node.
    let localhost = node(dir.path(), "node-a", "localhost");
    let res = localhost.connect(addr, "origin-a").await;
    assert!(
        matches!(&res, Err(RelayError::Identity { of: IdentityOf::Local, node_id, .. }) if node_id == "localhost"),
        "{res:?}"
    );

    // None of them was handed out; the honest holder of the certificate gets through.
    assert!(peers.try_recv().is_err());
    let honest = node(dir.path(), "node-a", "node-a");
    let conn = honest.connect_serving(addr, "origin-a", Arc::new(Cam), None).await.unwrap();
    assert_eq!(conn.peer_node_id(), "origin-a");
    let handed = tokio::time::timeout(TIMEOUT, peers.recv()).await.unwrap().unwrap();
    assert_eq!(handed.peer_node_id(), "node-a");
    let mut sub = conn.subscribe("live", "cam", 0).await.unwrap();
    assert_frames(&read_all(&mut sub).await, &expected_frames("cam", 2));
}

#[tokio::test]
async fn a_dialler_refuses_an_acceptor_that_claims_another_node() {
    let dir = certs_for(&["node-a", "node-b", "node-c"]);
    // node-a's certificate (so TLS to server name "node-a" succeeds), node-b's name.
    let liar = node(dir.path(), "node-a", "node-b");
    let (addr, mut peers) = serving(&liar);
    let dialler = node(dir.path(), "node-c", "node-c");
    let res =
        tokio::time::timeout(TIMEOUT, dialler.connect_serving(addr, "node-a", Arc::new(Cam), None))
            .await
            .unwrap();
    assert_identity(res, IdentityOf::Peer, "node-b");
    // The lying acceptor had finished its side of the Hellos: the dialler's close reaches
    // the connection it was handed, with IDENTITY_MISMATCH.
    let handed = tokio::time::timeout(TIMEOUT, peers.recv()).await.unwrap().unwrap();
    assert_eq!(handed.peer_node_id(), "node-c");
    let err = tokio::time::timeout(TIMEOUT, handed.quic().closed()).await.unwrap();
    assert_eq!(close_code(err), u64::from(codes::IDENTITY_MISMATCH));
    let refused = handed.subscribe("live", "cam", 0).await;
    assert!(refused.is_err(), "{refused:?}");

    // A plain dialler refuses it the same way.
    let res = dialler.connect(addr, "node-a").await;
    assert_identity(res, IdentityOf::Peer, "node-b");
}

#[tokio::test]
async fn without_certificates_node_ids_are_not_checked() {
    let dev = |id: &str| {
        RelayEndpoint::bind(localhost(), RelayConfig::new(id, RelayTls::insecure_dev())).unwrap()
    };
    let acceptor = dev("localhost");
    let (addr, mut peers) = serving(&acceptor);
    let dialler = dev("anyone");
    let conn = dialler.connect_serving(addr, "whatever", Arc::new(Cam), None).await.unwrap();
    assert_eq!(conn.peer_node_id(), "localhost");
    let handed = tokio::time::timeout(TIMEOUT, peers.recv()).await.unwrap().unwrap();
    let mut sub = handed.subscribe("live", "cam", 0).await.unwrap();
    assert_frames(&read_all(&mut sub).await, &expected_frames("cam", 2));
}
