//! The dialling side of a relay connection: [`RelayConnection`] (Hello, the control
//! stream, routing of incoming GOP streams) and [`Subscription`] (frames in order across
//! GOP streams). Forwards, also started by the dialler, are in [`crate::forward_out`].

use std::collections::HashMap;
use std::sync::atomic::{AtomicI32, AtomicU64, Ordering};
use std::sync::{Arc, Mutex};

use sluice_proto::v1::{
    control_message::Msg, ControlMessage, Hello, Subscribe, SubscribeErrorCode, Unsubscribe,
};
use tokio::sync::{mpsc, oneshot};

use crate::codec::Frame;
use crate::config::RelayConfig;
use crate::forward_out::{self, ForwardState, PendingForward};
use crate::receive::{self, Inlet, Reassembly};
use crate::wire::{self, ControlReader};
use crate::{codes, RelayError, Result, SubscribeRefusal, VERSION};

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
    /// GOP priority counter of the streams this side opens (forwards).
    pub(crate) priority: Arc<AtomicI32>,
}

impl Shared {
    pub(crate) fn routes(&self) -> std::sync::MutexGuard<'_, Routes> {
        self.routes.lock().unwrap_or_else(|p| p.into_inner())
    }

    /// A fresh request id (below 2^63: the upper half is reserved for the acceptor).
    pub(crate) fn next_request_id(&self) -> u64 {
        self.next_request_id.fetch_add(1, Ordering::Relaxed) & (u64::MAX >> 1)
    }

    /// The error a request sees once the connection is gone.
    pub(crate) fn closed_error(&self) -> RelayError {
        match self.conn.close_reason() {
            Some(e) => e.into(),
            None => RelayError::Closed,
        }
    }

    pub(crate) fn violation(&self, what: &str) {
        tracing::info!(peer = %self.peer_node_id, what, "relay protocol violation");
        self.conn
            .close(codes::PROTOCOL_VIOLATION.into(), b"protocol violation");
    }
}

/// A connection to another node, used to subscribe to its streams. Cheap to clone; every
/// clone shares the one QUIC connection.
#[derive(Clone)]
pub struct RelayConnection {
    shared: Arc<Shared>,
}

impl std::fmt::Debug for RelayConnection {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("RelayConnection")
            .field("peer", &self.shared.peer_node_id)
            .finish()
    }
}

impl RelayConnection {
    /// Opens the control stream, exchanges Hellos and starts the connection's tasks.
    pub(crate) async fn handshake(
        conn: quinn::Connection,
        config: Arc<RelayConfig>,
    ) -> Result<Self> {
        let hello = async {
            let (mut send, recv) = conn.open_bi().await?;
            let hello = Hello {
                version: VERSION,
                node_id: config.node_id.clone(),
            };
            wire::write_control(
                &mut send,
                &ControlMessage {
                    msg: Some(Msg::Hello(hello)),
                },
            )
            .await?;
            let mut reader = ControlReader::new(recv);
            let reply = reader.next().await?;
            Ok::<_, RelayError>((send, reader, reply))
        };
        let (mut send, reader, reply) = tokio::time::timeout(config.request_timeout, hello)
            .await
            .map_err(|_| RelayError::Timeout("hello"))??;
        let peer_node_id = match reply {
            Some(ControlMessage {
                msg: Some(Msg::Hello(h)),
            }) if h.version == VERSION => h.node_id,
            Some(ControlMessage {
                msg: Some(Msg::Hello(h)),
            }) => {
                conn.close(codes::UNSUPPORTED_VERSION.into(), b"unsupported version");
                return Err(RelayError::UnsupportedVersion(h.version));
            }
            _ => {
                conn.close(codes::PROTOCOL_VIOLATION.into(), b"expected Hello");
                return Err(RelayError::Protocol("reply is not Hello".into()));
            }
        };
        let (control, mut control_rx) = mpsc::channel::<ControlMessage>(256);
        let shared = Arc::new(Shared {
            conn: conn.clone(),
            control,
            routes: Mutex::default(),
            next_request_id: AtomicU64::new(1),
            peer_node_id,
            config,
            priority: Arc::default(),
        });
        tokio::spawn(async move {
            while let Some(msg) = control_rx.recv().await {
                if wire::write_control(&mut send, &msg).await.is_err() {
                    break;
                }
            }
            let _ = send.finish();
        });
        tokio::spawn(read_control(shared.clone(), reader));
        let (routing, violations) = (shared.clone(), shared.clone());
        tokio::spawn(receive::accept_gops(
            conn,
            shared.config.clone(),
            move |request_id, reader| match routing.routes().subs.get(&request_id) {
                Some(inlet) => {
                    inlet.deliver(reader);
                    None
                }
                None => Some(reader), // unsubscribed meanwhile
            },
            move |what| violations.violation(what),
        ));
        Ok(Self { shared })
    }

    /// The peer's node id from its Hello.
    pub fn peer_node_id(&self) -> &str {
        &self.shared.peer_node_id
    }

    /// The underlying QUIC connection.
    pub fn quic(&self) -> &quinn::Connection {
        &self.shared.conn
    }

    /// Closes the connection.
    pub fn close(&self) {
        self.shared
            .conn
            .close(codes::CLOSE_NORMAL.into(), b"closed");
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
        let mut sub = Subscription {
            shared: s.clone(),
            request_id,
            frames,
            live: true,
        };
        let msg = Subscribe {
            request_id,
            app: app.into(),
            name: name.into(),
            claim_revision,
            traceparent: traceparent.into(),
        };
        s.control
            .send(ControlMessage {
                msg: Some(Msg::Subscribe(msg)),
            })
            .await
            .map_err(|_| RelayError::Closed)?;
        let answer = tokio::select! {
            a = tokio::time::timeout(s.config.request_timeout, answer_rx) => a,
            e = s.conn.closed() => return Err(e.into()),
        };
        match answer {
            Ok(Ok(Ok(()))) => Ok(sub),
            Ok(Ok(Err(refusal))) => {
                sub.live = false;
                Err(RelayError::Refused(refusal))
            }
            Ok(Err(_)) => Err(RelayError::Closed),
            Err(_) => Err(RelayError::Timeout("subscribe")),
        }
    }
}

/// Dispatches control messages from the serving node.
async fn read_control(shared: Arc<Shared>, mut reader: ControlReader) {
    loop {
        let msg = match reader.next().await {
            Ok(Some(m)) => m,
            Ok(None) => break,
            Err(RelayError::Protocol(what)) => {
                shared.violation(&what);
                break;
            }
            Err(_) => break,
        };
        match msg.msg {
            Some(Msg::SubscribeOk(ok)) => {
                let waiter = shared.routes().pending.remove(&ok.request_id);
                match waiter {
                    Some(w) => {
                        let _ = w.send(Ok(()));
                    }
                    None if shared.routes().subs.contains_key(&ok.request_id) => {
                        shared.violation("SubscribeOk twice");
                        break;
                    }
                    None => {} // the subscriber gave up meanwhile
                }
            }
            Some(Msg::SubscribeError(e)) => {
                let id = e.request_id;
                let refusal = match SubscribeErrorCode::try_from(e.code) {
                    Ok(SubscribeErrorCode::NotFound) => SubscribeRefusal::NotFound,
                    Ok(SubscribeErrorCode::NotHome) => SubscribeRefusal::NotHome { owner: e.owner },
                    Ok(SubscribeErrorCode::Stale) => SubscribeRefusal::Stale,
                    Ok(SubscribeErrorCode::Ended) => {
                        if let Some(inlet) = shared.routes().subs.get_mut(&id) {
                            inlet.end(e.gop_count);
                        }
                        continue;
                    }
                    _ => {
                        shared.violation("unknown SubscribeError code");
                        break;
                    }
                };
                let mut routes = shared.routes();
                routes.subs.remove(&id);
                if let Some(w) = routes.pending.remove(&id) {
                    let _ = w.send(Err(refusal));
                }
            }
            Some(Msg::ForwardOk(ok)) => {
                if let Err(what) = forward_out::on_ok(&shared, ok.request_id) {
                    shared.violation(what);
                    break;
                }
            }
            Some(Msg::ForwardError(e)) => {
                if let Err(what) = forward_out::on_error(&shared, e) {
                    shared.violation(what);
                    break;
                }
            }
            _ => {
                shared.violation("unexpected control message");
                break;
            }
        }
    }
    // Wake everyone: their channels close, their forwards stop.
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
        f.debug_struct("Subscription")
            .field("request_id", &self.request_id)
            .finish()
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
            let msg = Unsubscribe {
                request_id: self.request_id,
            };
            let _ = self.shared.control.try_send(ControlMessage {
                msg: Some(Msg::Unsubscribe(msg)),
            });
        }
    }
}
