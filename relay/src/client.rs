//! The subscribing side of a relay connection: [`RelayConnection`] (Hello, the control
//! stream, routing of incoming GOP streams) and [`Subscription`] (frames in order across
//! GOP streams).

use std::collections::{BTreeMap, HashMap};
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::{Arc, Mutex};
use std::time::Duration;

use sluice_proto::v1::{
    control_message::Msg, ControlMessage, Hello, Subscribe, SubscribeErrorCode, Unsubscribe,
};
use tokio::sync::{mpsc, oneshot};

use crate::codec::Frame;
use crate::config::RelayConfig;
use crate::wire::{self, ControlReader, GopEnd, GopReader};
use crate::{codes, RelayError, Result, SubscribeRefusal, VERSION};

/// GOP streams (and the end notice) waiting for one subscription's reader.
const EVENT_QUEUE: usize = 64;
/// After `ENDED`, how long to wait for GOP streams still in transit.
const END_GRACE: Duration = Duration::from_secs(1);

/// What the connection hands a subscription.
enum Event {
    Gop(GopReader),
    /// The publisher ended after `gop_count` GOPs.
    Ended(u64),
}

#[derive(Default)]
struct Routes {
    /// Subscribes waiting for their answer.
    pending: HashMap<u64, oneshot::Sender<std::result::Result<(), SubscribeRefusal>>>,
    /// Live subscriptions.
    subs: HashMap<u64, mpsc::Sender<Event>>,
}

struct Shared {
    conn: quinn::Connection,
    control: mpsc::Sender<ControlMessage>,
    routes: Mutex<Routes>,
    next_request_id: AtomicU64,
    peer_node_id: String,
    config: Arc<RelayConfig>,
}

impl Shared {
    fn routes(&self) -> std::sync::MutexGuard<'_, Routes> {
        self.routes.lock().unwrap_or_else(|p| p.into_inner())
    }

    fn violation(&self, what: &str) {
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
        tokio::spawn(accept_gops(shared.clone()));
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

    /// Subscribes to `app/name` following the claim at `claim_revision` (0: any).
    pub async fn subscribe(
        &self,
        app: &str,
        name: &str,
        claim_revision: i64,
    ) -> Result<Subscription> {
        let s = &self.shared;
        let request_id = s.next_request_id.fetch_add(1, Ordering::Relaxed);
        let (answer_tx, answer_rx) = oneshot::channel();
        let (events_tx, events) = mpsc::channel(EVENT_QUEUE);
        {
            let mut routes = s.routes();
            routes.pending.insert(request_id, answer_tx);
            routes.subs.insert(request_id, events_tx);
        }
        // From here on, dropping `sub` unsubscribes and removes the routes.
        let sub = Subscription {
            shared: s.clone(),
            request_id,
            events,
            current: None,
            pending: BTreeMap::new(),
            next_sequence: 0,
            ended: None,
            live: true,
        };
        let mut sub = sub;
        let msg = Subscribe {
            request_id,
            app: app.into(),
            name: name.into(),
            claim_revision,
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
                        let tx = shared.routes().subs.get(&id).cloned();
                        if let Some(tx) = tx {
                            let _ = tx.send(Event::Ended(e.gop_count)).await;
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
            _ => {
                shared.violation("unexpected control message");
                break;
            }
        }
    }
    // Wake everyone: their channels close.
    let mut routes = shared.routes();
    routes.pending.clear();
    routes.subs.clear();
}

/// Accepts GOP streams and hands each to its subscription.
async fn accept_gops(shared: Arc<Shared>) {
    while let Ok(stream) = shared.conn.accept_uni().await {
        let shared = shared.clone();
        tokio::spawn(async move {
            let open = GopReader::open(stream, shared.config.max_frame_size);
            let (header, reader) =
                match tokio::time::timeout(shared.config.request_timeout, open).await {
                    Ok(Ok(x)) => x,
                    Ok(Err(RelayError::Protocol(what))) => return shared.violation(&what),
                    _ => return, // reset before its header, or too slow: nothing to deliver
                };
            let tx = shared.routes().subs.get(&header.request_id).cloned();
            match tx {
                Some(tx) => {
                    if let Err(mpsc::error::TrySendError::Full(Event::Gop(r))) =
                        tx.try_send(Event::Gop(reader))
                    {
                        r.abandon(); // the subscriber does not keep up
                    }
                }
                None => reader.abandon(), // unsubscribed meanwhile
            }
        });
    }
}

/// One live subscription. Dropping it unsubscribes.
pub struct Subscription {
    shared: Arc<Shared>,
    request_id: u64,
    events: mpsc::Receiver<Event>,
    current: Option<GopReader>,
    /// GOP streams that arrived ahead of the one being read, by sequence.
    pending: BTreeMap<u64, GopReader>,
    /// Lowest GOP sequence still acceptable.
    next_sequence: u64,
    ended: Option<u64>,
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
        loop {
            if let Some(reader) = self.current.as_mut() {
                match reader.next().await {
                    Ok(Ok(frame)) => return Ok(Some(frame)),
                    Ok(Err(GopEnd::Finished | GopEnd::Reset)) => {
                        self.current = None;
                        continue;
                    }
                    Err(RelayError::Protocol(what)) => {
                        self.shared.violation(&what);
                        return Err(RelayError::Protocol(what));
                    }
                    Err(e) => return Err(e),
                }
            }
            if let Some((_, reader)) = self.pending.pop_first() {
                self.next_sequence = reader.sequence.saturating_add(1);
                self.current = Some(reader);
                continue;
            }
            if let Some(gop_count) = self.ended {
                if self.next_sequence >= gop_count {
                    return Ok(None);
                }
                match tokio::time::timeout(END_GRACE, self.events.recv()).await {
                    Ok(Some(event)) => self.accept(event),
                    _ => return Ok(None),
                }
                continue;
            }
            match self.events.recv().await {
                Some(event) => self.accept(event),
                None => {
                    return Err(match self.shared.conn.close_reason() {
                        Some(e) => e.into(),
                        None => RelayError::Closed,
                    })
                }
            }
        }
    }

    fn accept(&mut self, event: Event) {
        match event {
            Event::Ended(n) => self.ended = Some(n),
            Event::Gop(r) if r.sequence < self.next_sequence => r.abandon(),
            Event::Gop(r) => {
                if let Some(old) = self.pending.insert(r.sequence, r) {
                    old.abandon();
                }
            }
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
        let msg = Unsubscribe {
            request_id: self.request_id,
        };
        let _ = self.shared.control.try_send(ControlMessage {
            msg: Some(Msg::Unsubscribe(msg)),
        });
    }
}
