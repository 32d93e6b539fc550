//! The state every request of this node on one connection shares: the routing tables of
//! its requests ([`Routes`]: answers awaited, live subscriptions and forwards), the
//! connection-wide [`Shared`] state, and [`RelayConnection`], the public handle around it.
//! Subscribing is in `subscribe.rs`, forwarding in `forward_out.rs`.

use std::collections::HashMap;
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::{Arc, Mutex};

use sluice_proto::v1::ControlMessage;
use tokio::sync::{mpsc, oneshot, watch};

use crate::codes;
use crate::config::RelayConfig;
use crate::error::{
    Awaited, ForwardRefusal, ProtocolViolation, RelayError, Result, SubscribeRefusal,
};
use crate::publish::Priorities;
use crate::receive::Inlet;
use crate::side::Side;
use crate::wire::GopReader;

/// The answer a `Subscribe` waits for.
pub(crate) type SubscribeAnswer = oneshot::Sender<std::result::Result<(), SubscribeRefusal>>;

/// This node's requests on one connection, by request id.
#[derive(Default)]
pub(crate) struct Routes {
    /// Subscribes waiting for their answer.
    pub(crate) pending: HashMap<u64, SubscribeAnswer>,
    /// Live subscriptions.
    pub(crate) subs: HashMap<u64, Inlet>,
    /// Forwards waiting for their answer.
    pub(crate) pending_forwards: HashMap<u64, PendingForward>,
    /// Live forwards.
    pub(crate) forwards: HashMap<u64, Arc<ForwardState>>,
}

/// A live forward as the connection sees it.
pub(crate) struct ForwardState {
    /// Set to stop publishing (handle dropped, refusal after `ForwardOk`, connection gone).
    pub(crate) cancel: watch::Sender<bool>,
    /// Why the receiving node ended it (`ForwardError` after `ForwardOk`).
    pub(crate) refusal: Mutex<Option<ForwardRefusal>>,
}

impl ForwardState {
    pub(crate) fn new() -> Self {
        Self { cancel: watch::channel(false).0, refusal: Mutex::new(None) }
    }

    /// Stops the publication (its GOP streams are reset).
    pub(crate) fn cancel(&self) {
        self.cancel.send_replace(true);
    }
}

/// A `Forward` waiting for its answer.
pub(crate) struct PendingForward {
    pub(crate) answer: oneshot::Sender<std::result::Result<(), ForwardRefusal>>,
    pub(crate) state: Arc<ForwardState>,
}

/// What every request of this node on one connection shares.
pub(crate) struct Shared {
    pub(crate) conn: quinn::Connection,
    pub(crate) control: mpsc::Sender<ControlMessage>,
    routes: Mutex<Routes>,
    next_request_id: AtomicU64,
    peer_node_id: String,
    pub(crate) config: Arc<RelayConfig>,
    /// GOP priorities of every stream this node opens on the connection (its forwards and
    /// the subscriptions it serves).
    pub(crate) priorities: Arc<Priorities>,
    /// This node's side, whose half of the request id space it uses.
    side: Side,
}

impl Shared {
    pub(crate) fn new(
        conn: quinn::Connection,
        control: mpsc::Sender<ControlMessage>,
        peer_node_id: String,
        config: Arc<RelayConfig>,
        side: Side,
    ) -> Self {
        Self {
            conn,
            control,
            routes: Mutex::default(),
            next_request_id: AtomicU64::new(1),
            peer_node_id,
            config,
            priorities: Arc::default(),
            side,
        }
    }

    pub(crate) fn peer_node_id(&self) -> &str {
        &self.peer_node_id
    }

    /// Hands a GOP stream of one of this node's subscriptions to it; gives it back when the
    /// subscription is not live (unsubscribed meanwhile, or never was).
    pub(crate) fn route_gop(&self, request_id: u64, reader: GopReader) -> Option<GopReader> {
        match self.routes().subs.get(&request_id) {
            Some(inlet) => {
                inlet.deliver(reader);
                None
            }
            None => Some(reader),
        }
    }

    pub(crate) fn routes(&self) -> std::sync::MutexGuard<'_, Routes> {
        crate::lock::lock(&self.routes)
    }

    /// A fresh request id in this node's half of the id space (dialler: below 2^63,
    /// acceptor: 2^63 and above).
    pub(crate) fn next_request_id(&self) -> u64 {
        self.side.request_id(self.next_request_id.fetch_add(1, Ordering::Relaxed))
    }

    /// The error a request sees once the connection is gone.
    pub(crate) fn closed_error(&self) -> RelayError {
        match self.conn.close_reason() {
            Some(e) => e.into(),
            None => RelayError::Closed,
        }
    }

    /// Sends a request on the control stream and waits (bounded by the request timeout, and
    /// by the connection) for its answer: `Ok(answer)` or why no answer came.
    pub(crate) async fn request<T>(
        &self,
        msg: ControlMessage,
        answer: oneshot::Receiver<T>,
        what: Awaited,
    ) -> Result<T> {
        self.control.send(msg).await.map_err(|_| RelayError::Closed)?;
        tokio::select! {
            a = tokio::time::timeout(self.config.request_timeout, answer) => match a {
                Ok(Ok(answer)) => Ok(answer),
                Ok(Err(_)) => Err(self.closed_error()),
                Err(_) => Err(RelayError::Timeout(what)),
            },
            e = self.conn.closed() => Err(e.into()),
        }
    }

    /// Closes the connection for a protocol violation.
    pub(crate) fn violation(&self, what: &ProtocolViolation) {
        tracing::info!(peer = %self.peer_node_id, %what, "relay protocol violation");
        self.conn.close(codes::PROTOCOL_VIOLATION.into(), b"protocol violation");
    }
}

/// A connection to another node, used to subscribe to its streams and forward streams to
/// it. The dialling node gets one from [`crate::RelayEndpoint::connect`] (or
/// [`crate::RelayEndpoint::connect_serving`]); the accepting node gets one for each
/// connection whose dialler serves requests from [`crate::RelayEndpoint::serve_with_peers`].
/// Both work the same way. Cheap to clone; every clone shares the one QUIC connection.
#[derive(Clone)]
pub struct RelayConnection {
    shared: Arc<Shared>,
}

impl std::fmt::Debug for RelayConnection {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("RelayConnection").field("peer", &self.shared.peer_node_id).finish()
    }
}

impl RelayConnection {
    pub(crate) fn from_shared(shared: Arc<Shared>) -> Self {
        Self { shared }
    }

    /// The peer's node id from its Hello.
    pub fn peer_node_id(&self) -> &str {
        &self.shared.peer_node_id
    }

    /// The underlying QUIC connection.
    pub fn quic(&self) -> &quinn::Connection {
        &self.shared.conn
    }

    /// Closes the connection: every subscription and forward on it ends, in both
    /// directions.
    pub fn close(&self) {
        self.shared.conn.close(codes::CLOSE_NORMAL.into(), b"closed");
    }

    pub(crate) fn shared(&self) -> &Arc<Shared> {
        &self.shared
    }
}
