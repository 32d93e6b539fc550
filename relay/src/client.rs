//! The requesting side of a relay connection, for whichever node dialled it:
//! [`RelayConnection`] (this node's requests and the routing of their answers and GOP
//! streams) and [`Subscription`] (frames in order across GOP streams). Forwards are in
//! [`crate::forward_out`]; the connection's tasks in [`crate::session`].

use std::collections::HashMap;
use std::sync::atomic::{AtomicI32, AtomicU64, Ordering};
use std::sync::{Arc, Mutex};

use sluice_proto::v1::{
    control_message::Msg, ControlMessage, Subscribe, SubscribeErrorCode, Unsubscribe,
};
use tokio::sync::{mpsc, oneshot};

use crate::codec::Frame;
use crate::config::RelayConfig;
use crate::forward_out::{self, ForwardState, PendingForward};
use crate::receive::{self, Inlet, Reassembly};
use crate::session::Role;
use crate::wire::GopReader;
use crate::{codes, RelayError, Result, SubscribeRefusal};

#[derive(Default)]
pub(crate) struct Routes {
    /// Subscribes waiting for their answer.
    pending: HashMap<u64, oneshot::Sender<std::result::Result<(), SubscribeRefusal>>>,
    /// Live subscriptions.
    subs: HashMap<u64, Inlet>,
    /// Forwards waiting for their answer.
    pub(crate) pending_forwards: HashMap<u64, PendingForward>,
    /// Live forwards.
    pub(crate) forwards: HashMap<u64, Arc<ForwardState>>,
}

pub(crate) struct Shared {
    pub(crate) conn: quinn::Connection,
    pub(crate) control: mpsc::Sender<ControlMessage>,
    routes: Mutex<Routes>,
    next_request_id: AtomicU64,
    peer_node_id: String,
    pub(crate) config: Arc<RelayConfig>,
    /// GOP priority counter of every stream this node opens on the connection (its forwards
    /// and the subscriptions it serves).
    pub(crate) priority: Arc<AtomicI32>,
    /// This node's side, whose half of the request id space it uses.
    role: Role,
}

impl Shared {
    pub(crate) fn new(
        conn: quinn::Connection,
        control: mpsc::Sender<ControlMessage>,
        peer_node_id: String,
        config: Arc<RelayConfig>,
        role: Role,
    ) -> Self {
        Self {
            conn,
            control,
            routes: Mutex::default(),
            next_request_id: AtomicU64::new(1),
            peer_node_id,
            config,
            priority: Arc::default(),
            role,
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
        self.routes.lock().unwrap_or_else(|p| p.into_inner())
    }

    /// A fresh request id in this node's half of the id space (dialler: below 2^63,
    /// acceptor: 2^63 and above).
    pub(crate) fn next_request_id(&self) -> u64 {
        self.role.request_id(self.next_request_id.fetch_add(1, Ordering::Relaxed))
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
        what: &'static str,
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

    pub(crate) fn violation(&self, what: &str) {
        tracing::info!(peer = %self.peer_node_id, what, "relay protocol violation");
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

    /// Subscribes to `app/name` following the claim at `claim_revision` (0: any).
    pub async fn subscribe(
        &self,
        app: &str,
        name: &str,
        claim_revision: i64,
    ) -> Result<Subscription> {
        self.subscribe_traced(app, name, claim_revision, "").await
    }

    /// [`Self::subscribe`] carrying the W3C `traceparent` of the calling span (empty: none)
    /// to the serving node ([`crate::SubscribeRequest::traceparent`]).
    pub async fn subscribe_traced(
        &self,
        app: &str,
        name: &str,
        claim_revision: i64,
        traceparent: &str,
    ) -> Result<Subscription> {
        let s = &self.shared;
        let request_id = s.next_request_id();
        let (answer_tx, answer_rx) = oneshot::channel();
        let (inlet, frames) = receive::channel();
        {
            let mut routes = s.routes();
            routes.pending.insert(request_id, answer_tx);
            routes.subs.insert(request_id, inlet);
        }
        // From here on, dropping `sub` unsubscribes and removes the routes.
        let mut sub = Subscription { shared: s.clone(), request_id, frames, live: true };
        let msg = Subscribe {
            request_id,
            app: app.into(),
            name: name.into(),
            claim_revision,
            traceparent: traceparent.into(),
        };
        let answer = s
            .request(ControlMessage { msg: Some(Msg::Subscribe(msg)) }, answer_rx, "subscribe")
            .await?;
        match answer {
            Ok(()) => Ok(sub),
            Err(refusal) => {
                sub.live = false;
                Err(RelayError::Refused(refusal))
            }
        }
    }
}

/// Takes an answer to one of this node's requests (`SubscribeOk`, `SubscribeError`,
/// `ForwardOk`, `ForwardError`). `Err` names a protocol violation.
pub(crate) fn on_answer(shared: &Shared, answer: Msg) -> std::result::Result<(), &'static str> {
    match answer {
        Msg::SubscribeOk(ok) => {
            let mut routes = shared.routes();
            match routes.pending.remove(&ok.request_id) {
                Some(w) => {
                    let _ = w.send(Ok(()));
                }
                None if routes.subs.contains_key(&ok.request_id) => {
                    return Err("SubscribeOk twice")
                }
                None => {} // the subscriber gave up meanwhile
            }
        }
        Msg::SubscribeError(e) => {
            let id = e.request_id;
            let refusal = match SubscribeErrorCode::try_from(e.code) {
                Ok(SubscribeErrorCode::NotFound) => SubscribeRefusal::NotFound,
                Ok(SubscribeErrorCode::NotHome) => SubscribeRefusal::NotHome { owner: e.owner },
                Ok(SubscribeErrorCode::Stale) => SubscribeRefusal::Stale,
                Ok(SubscribeErrorCode::Ended) => {
                    if let Some(inlet) = shared.routes().subs.get_mut(&id) {
                        inlet.end(e.gop_count);
                    }
                    return Ok(());
                }
                _ => return Err("unknown SubscribeError code"),
            };
            let mut routes = shared.routes();
            routes.subs.remove(&id);
            if let Some(w) = routes.pending.remove(&id) {
                let _ = w.send(Err(refusal));
            }
        }
        Msg::ForwardOk(ok) => forward_out::on_ok(shared, ok.request_id)?,
        Msg::ForwardError(e) => forward_out::on_error(shared, e)?,
        _ => return Err("unexpected control message"),
    }
    Ok(())
}

/// The connection's control stream ended: every request of this node ends (waiters and
/// subscriptions see their channels close, forwards stop).
pub(crate) fn teardown(shared: &Shared) {
    let mut routes = shared.routes();
    routes.pending.clear();
    routes.subs.clear();
    routes.pending_forwards.clear();
    for (_, forward) in routes.forwards.drain() {
        forward.cancel();
    }
}

/// One live subscription. Dropping it unsubscribes.
pub struct Subscription {
    shared: Arc<Shared>,
    request_id: u64,
    frames: Reassembly,
    /// Whether dropping it must send `Unsubscribe` (not after a refusal).
    live: bool,
}

impl std::fmt::Debug for Subscription {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Subscription").field("request_id", &self.request_id).finish()
    }
}

impl Subscription {
    /// The request id of this subscription on its connection.
    pub fn request_id(&self) -> u64 {
        self.request_id
    }

    /// The next frame in order, `Ok(None)` once the publisher ended. GOPs the sender
    /// cancelled are skipped (the next frame is then the headers of a later GOP).
    pub async fn next_frame(&mut self) -> Result<Option<Frame>> {
        match self.frames.next_frame().await {
            Err(RelayError::Protocol(what)) => {
                self.shared.violation(&what);
                Err(RelayError::Protocol(what))
            }
            Err(RelayError::Closed) => Err(self.shared.closed_error()),
            other => other,
        }
    }
}

impl Drop for Subscription {
    fn drop(&mut self) {
        {
            let mut routes = self.shared.routes();
            routes.subs.remove(&self.request_id);
            routes.pending.remove(&self.request_id);
        }
        if self.live {
            let msg = Unsubscribe { request_id: self.request_id };
            let _ =
                self.shared.control.try_send(ControlMessage { msg: Some(Msg::Unsubscribe(msg)) });
        }
    }
}
