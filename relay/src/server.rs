//! The serving side of a relay connection, for whichever node dialled it: the peer's
//! `Subscribe`s become publishing tasks ([`crate::publish`]) fed by the node's
//! [`MediaSource`], its `Forward`s receiving tasks ([`crate::forward_in`]) feeding the
//! node's [`crate::ForwardSink`].

use std::collections::HashMap;
use std::sync::atomic::AtomicI32;
use std::sync::{Arc, Mutex};

use sluice_proto::v1::{
    control_message::Msg, ControlMessage, Subscribe, SubscribeError, SubscribeErrorCode,
    SubscribeOk,
};
use tokio::sync::{mpsc, watch};

use crate::codec::Frame;
use crate::config::RelayConfig;
use crate::forward_in::{self, ForwardSink, Forwards};
use crate::publish::{self, Publication};
use crate::session::{Role, Serving};
use crate::{RelayError, SubscribeRefusal};

/// A subscription request, as the node's [`MediaSource`] sees it.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct SubscribeRequest {
    pub app: String,
    pub name: String,
    /// Registry revision of the claim the subscriber follows (0: any).
    pub claim_revision: i64,
    /// The subscriber's node id (from its `Hello`).
    pub peer_node_id: String,
    /// W3C trace context of the subscribing span (empty: none).
    pub traceparent: String,
}

/// What a node serves over the relay. Implemented by the node around its stream hub.
pub trait MediaSource: Send + Sync + 'static {
    /// Starts a subscription: a receiver of the stream's frames in order (headers first,
    /// then from a keyframe), or why not. Dropping the sender ends the subscription; the
    /// relay drops the receiver when the subscriber unsubscribes or disconnects.
    fn subscribe(
        &self,
        request: &SubscribeRequest,
    ) -> Result<mpsc::Receiver<Frame>, SubscribeRefusal>;
}

/// Live subscriptions of one connection: request_id -> cancel signal.
type Live = Arc<Mutex<HashMap<u64, watch::Sender<bool>>>>;

/// What a connection's control loop needs to serve the peer's requests.
pub(crate) struct Ctx {
    pub(crate) conn: quinn::Connection,
    source: Arc<dyn MediaSource>,
    pub(crate) sink: Option<Arc<dyn ForwardSink>>,
    pub(crate) config: Arc<RelayConfig>,
    live: Live,
    pub(crate) forwards: Forwards,
    /// Connection-wide GOP priority counter.
    priority: Arc<AtomicI32>,
    pub(crate) control: mpsc::Sender<ControlMessage>,
    pub(crate) peer_node_id: String,
    /// The peer's side, whose half of the request id space its requests must use.
    peer_role: Role,
}

impl Ctx {
    pub(crate) fn new(
        conn: quinn::Connection,
        serving: Serving,
        config: Arc<RelayConfig>,
        priority: Arc<AtomicI32>,
        control: mpsc::Sender<ControlMessage>,
        peer_node_id: String,
        peer_role: Role,
    ) -> Self {
        Self {
            conn,
            source: serving.source,
            sink: serving.sink,
            config,
            live: Arc::default(),
            forwards: Arc::default(),
            priority,
            control,
            peer_node_id,
            peer_role,
        }
    }

    /// Handles one of the peer's request messages (`Subscribe`, `Unsubscribe`, `Forward`,
    /// `Unforward`): `Ok(Some(answer))` to send back; `Err` is a protocol violation.
    pub(crate) fn on_request(&self, request: Msg) -> crate::Result<Option<Msg>> {
        match request {
            Msg::Subscribe(s) => self.start(s).map(Some),
            Msg::Forward(f) => forward_in::start(self, f).map(Some),
            Msg::Unforward(u) => {
                forward_in::unforward(&self.forwards, u);
                Ok(None)
            }
            Msg::Unsubscribe(u) => {
                // Unknown ids are fine: the subscription may have ended meanwhile.
                let cancel =
                    self.live.lock().unwrap_or_else(|p| p.into_inner()).remove(&u.request_id);
                if let Some(cancel) = cancel {
                    let _ = cancel.send(true);
                }
                Ok(None)
            }
            _ => Err(RelayError::Protocol("unexpected control message".into())),
        }
    }

    /// The connection's control stream ended: every publication stops and every accepted
    /// forward ends (its task sees its GOP channel close: `ConnectionLost`).
    pub(crate) fn teardown(&self) {
        for (_, cancel) in self.live.lock().unwrap_or_else(|p| p.into_inner()).drain() {
            let _ = cancel.send(true);
        }
        forward_in::lock(&self.forwards).clear();
    }

    /// Checks the request id of a new `Subscribe` or `Forward`: in the peer's half of the id
    /// space and not the id of a live request. Only the control loop adds requests, so the
    /// answer stays true until it inserts.
    pub(crate) fn check_new_request_id(&self, id: u64) -> crate::Result<()> {
        if !self.peer_role.owns(id) {
            return Err(RelayError::Protocol(format!(
                "request_id {id} outside the requester's half of the id space"
            )));
        }
        let subscribed = self.live.lock().unwrap_or_else(|p| p.into_inner()).contains_key(&id);
        if subscribed || forward_in::lock(&self.forwards).contains_key(&id) {
            return Err(RelayError::Protocol(format!("duplicate request_id {id}")));
        }
        Ok(())
    }

    /// Answers a `Subscribe`, starting its publication when the source accepts it.
    fn start(&self, s: Subscribe) -> crate::Result<Msg> {
        let id = s.request_id;
        self.check_new_request_id(id)?;
        let mut map = self.live.lock().unwrap_or_else(|p| p.into_inner());
        if map.len() >= self.config.max_subscriptions {
            return Err(RelayError::Protocol("too many subscriptions".into()));
        }
        let request = SubscribeRequest {
            app: s.app,
            name: s.name,
            claim_revision: s.claim_revision,
            peer_node_id: self.peer_node_id.clone(),
            traceparent: s.traceparent,
        };
        let frames = match self.source.subscribe(&request) {
            Ok(frames) => frames,
            Err(refusal) => return Ok(Msg::SubscribeError(refusal_message(id, refusal))),
        };
        let (cancel_tx, cancel_rx) = watch::channel(false);
        let mine = cancel_rx.clone();
        map.insert(id, cancel_tx);
        let publication = Publication {
            conn: self.conn.clone(),
            request_id: id,
            frames,
            cancel: cancel_rx,
            priority: self.priority.clone(),
            queue_frames: self.config.gop_queue_frames,
            max_frame_size: self.config.max_frame_size,
        };
        let (live, control) = (self.live.clone(), self.control.clone());
        tokio::spawn(async move {
            let outcome = publish::run(publication).await;
            // Remove our entry only (the id may have been reused after an Unsubscribe).
            {
                let mut map = live.lock().unwrap_or_else(|p| p.into_inner());
                if map.get(&id).is_some_and(|tx| tx.subscribe().same_channel(&mine)) {
                    map.remove(&id);
                }
            }
            if let Some(gop_count) = outcome.ended {
                let ended = SubscribeError {
                    request_id: id,
                    code: SubscribeErrorCode::Ended as i32,
                    owner: String::new(),
                    gop_count,
                };
                let _ =
                    control.send(ControlMessage { msg: Some(Msg::SubscribeError(ended)) }).await;
            }
        });
        Ok(Msg::SubscribeOk(SubscribeOk { request_id: id }))
    }
}

fn refusal_message(request_id: u64, refusal: SubscribeRefusal) -> SubscribeError {
    let (code, owner) = match refusal {
        SubscribeRefusal::NotFound => (SubscribeErrorCode::NotFound, String::new()),
        SubscribeRefusal::NotHome { owner } => (SubscribeErrorCode::NotHome, owner),
        SubscribeRefusal::Stale => (SubscribeErrorCode::Stale, String::new()),
    };
    SubscribeError { request_id, code: code as i32, owner, gop_count: 0 }
}
