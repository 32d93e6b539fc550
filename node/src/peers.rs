//! One relay connection per peer node, shared by every stream pulled from or forwarded to it,
//! in both directions.
//!
//! - Edges only dial (they accept nothing): one connection per origin they pull from.
//! - Between two origins the lower node id dials (`sluice_cluster::rules::should_dial`) and
//!   both use that one connection: the dialler connects *serving* (the other origin may
//!   subscribe and forward over it too), and the accepting side adopts the connection it is
//!   handed ([`Peers::adopt`]). Origins keep a connection to every higher-id origin
//!   ([`spawn_mesh`]), so the higher-id side finds one ready when it needs it; if it does not
//!   appear within the connect timeout, the higher-id side dials anyway (two connections are
//!   better than none).
//!
//! Connections are replaced once closed. Each peer has its own slot with an async lock, so
//! dialling a dead peer (bounded by the connect timeout) never delays the others.

use std::collections::HashMap;
use std::net::SocketAddr;
use std::sync::{Arc, Mutex, OnceLock};
use std::time::Duration;

use sluice_cluster::types::NodeId;
use sluice_relay::{ForwardSink, MediaSource, RelayConnection, RelayEndpoint, RelayError};
use tokio::sync::{mpsc, Mutex as AsyncMutex, Notify};
use tracing::{debug, info, Instrument};

use crate::lock::lock;

type Slot = Arc<AsyncMutex<Option<RelayConnection>>>;

/// Why no connection to a peer could be had.
#[derive(Debug, thiserror::Error)]
pub enum PeerError {
    #[error("relay connection to {node} at {addr}: {source}")]
    Relay { node: String, addr: SocketAddr, source: RelayError },
    #[error("relay connection to {node} at {addr}: timed out")]
    Timeout { node: String, addr: SocketAddr },
}

/// What an origin serves over connections it dials.
struct Serving {
    source: Arc<dyn MediaSource>,
    sink: Option<Arc<dyn ForwardSink>>,
}

/// This node's relay connections, by peer node id.
pub struct Peers {
    relay: RelayEndpoint,
    local: String,
    serving: OnceLock<Serving>,
    slots: Mutex<HashMap<String, Slot>>,
    /// Connections peers dialled to us (origins), by peer id.
    inbound: Mutex<HashMap<String, RelayConnection>>,
    adopted: Notify,
    connect_timeout: Duration,
    /// `sluice_relay_peer_connections`.
    gauge: prometheus_client::metrics::gauge::Gauge,
}

fn is_open(c: &RelayConnection) -> bool {
    c.quic().close_reason().is_none()
}

impl Peers {
    pub fn new(
        relay: RelayEndpoint,
        connect_timeout: Duration,
        gauge: prometheus_client::metrics::gauge::Gauge,
    ) -> Arc<Self> {
        let local = relay.config().node_id.clone();
        Arc::new(Peers {
            relay,
            local,
            serving: OnceLock::new(),
            slots: Mutex::new(HashMap::new()),
            inbound: Mutex::new(HashMap::new()),
            adopted: Notify::new(),
            connect_timeout,
            gauge,
        })
    }

    /// Origins: serve the peer's requests on every connection this node dials, and take the
    /// connections peers dial to it (see [`Peers::adopt`]). Call once, before serving.
    pub fn serve(
        self: &Arc<Self>,
        source: Arc<dyn MediaSource>,
        sink: Option<Arc<dyn ForwardSink>>,
    ) -> tokio::task::JoinHandle<()> {
        let _ = self.serving.set(Serving { source: source.clone(), sink: sink.clone() });
        let (tx, mut rx) = mpsc::channel::<RelayConnection>(64);
        let accept = self.relay.serve_with_peers(source, sink, tx);
        let peers = self.clone();
        tokio::spawn(async move {
            let adopt = async {
                while let Some(conn) = rx.recv().await {
                    peers.adopt(conn);
                }
            };
            let _ = tokio::join!(accept, adopt);
        })
    }

    /// Keeps a connection a peer dialled to this node, for this node's own requests to it.
    pub fn adopt(&self, conn: RelayConnection) {
        let peer = conn.peer_node_id().to_string();
        info!(%peer, "relay connection from peer adopted");
        lock(&self.inbound).insert(peer, conn);
        self.adopted.notify_waiters();
        self.update_gauge();
    }

    fn inbound(&self, node: &str) -> Option<RelayConnection> {
        let mut inbound = lock(&self.inbound);
        match inbound.get(node) {
            Some(c) if is_open(c) => Some(c.clone()),
            Some(_) => {
                inbound.remove(node);
                None
            }
            None => None,
        }
    }

    /// Whether this node dials `node` (edges dial every origin; between origins the lower id).
    fn dials(&self, node: &str) -> bool {
        if self.serving.get().is_none() {
            return true;
        }
        match (NodeId::new(&self.local), NodeId::new(node)) {
            (Ok(me), Ok(peer)) => sluice_cluster::should_dial(&me, &peer),
            _ => true,
        }
    }

    /// The live connection to `node` (at `addr`): one it dialled to us, one we dialled, or a
    /// new one by the dial rule.
    pub async fn get(&self, node: &str, addr: SocketAddr) -> Result<RelayConnection, PeerError> {
        self.update_gauge();
        if let Some(c) = self.inbound(node) {
            return Ok(c);
        }
        let slot = lock(&self.slots).entry(node.to_string()).or_default().clone();
        let mut conn = slot.lock().await;
        if let Some(c) = conn.as_ref() {
            if is_open(c) && c.quic().remote_address() == addr {
                return Ok(c.clone());
            }
        }
        *conn = None;
        if !self.dials(node) {
            // The peer (lower id) dials us: wait a moment for its connection.
            let deadline = tokio::time::Instant::now() + self.connect_timeout;
            loop {
                let notified = self.adopted.notified();
                if let Some(c) = self.inbound(node) {
                    return Ok(c);
                }
                if tokio::time::timeout_at(deadline, notified).await.is_err() {
                    debug!(peer = node, "peer did not dial: dialling it");
                    break;
                }
            }
        }
        // quinn runs the connection's driver in the span current at dial time for as long as
        // the connection lives: give it a root span of its own, or the caller's span (a pull,
        // a forward) would never close while the shared connection stays up.
        let span = tracing::info_span!(parent: None, "relay_connection", peer = node, %addr);
        let dial = async {
            match self.serving.get() {
                Some(s) => {
                    self.relay.connect_serving(addr, node, s.source.clone(), s.sink.clone()).await
                }
                None => self.relay.connect(addr, node).await,
            }
        }
        .instrument(span);
        let c = match tokio::time::timeout(self.connect_timeout, dial).await {
            Ok(Ok(c)) => c,
            Ok(Err(source)) => {
                return Err(PeerError::Relay { node: node.to_string(), addr, source })
            }
            Err(_) => return Err(PeerError::Timeout { node: node.to_string(), addr }),
        };
        info!(peer = node, %addr, "relay connection established");
        *conn = Some(c.clone());
        drop(conn);
        self.update_gauge();
        Ok(c)
    }

    /// Refreshes `sluice_relay_peer_connections`.
    pub fn update_gauge(&self) {
        self.gauge.set(i64::try_from(self.connected()).unwrap_or(i64::MAX));
    }

    /// Open connections: dialled and adopted.
    pub fn connected(&self) -> usize {
        let slots: Vec<Slot> = lock(&self.slots).values().cloned().collect();
        let dialled = slots
            .iter()
            .filter(|s| s.try_lock().map_or(true, |c| c.as_ref().is_some_and(is_open)))
            .count();
        dialled + lock(&self.inbound).values().filter(|c| is_open(c)).count()
    }
}

/// Origins: keep a connection to every ready origin with a higher id (this node dials those),
/// so both directions of forwarding share one connection per pair.
pub fn spawn_mesh(
    peers: Arc<Peers>,
    placement: crate::placement::Placement,
) -> tokio::task::JoinHandle<()> {
    tokio::spawn(async move {
        let mut snapshot = placement.snapshot.clone();
        loop {
            let targets: Vec<(NodeId, SocketAddr)> = {
                let snap = snapshot.borrow_and_update();
                snap.ready_origins()
                    .into_iter()
                    .filter(|id| sluice_cluster::should_dial(&placement.node_id, id))
                    .filter_map(|id| crate::placement::relay_addr(&snap, &id).map(|a| (id, a)))
                    .collect()
            };
            for (id, addr) in targets {
                let peers = peers.clone();
                tokio::spawn(async move {
                    if let Err(e) = peers.get(id.as_str(), addr).await {
                        debug!(peer = %id, error = %e, "mesh: origin not reachable yet");
                    }
                });
            }
            peers.update_gauge();
            // Re-check on membership changes, and now and then to replace lost connections.
            let _ = tokio::time::timeout(Duration::from_secs(5), snapshot.changed()).await;
        }
    })
}
