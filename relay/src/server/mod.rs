//! The serving side of a relay connection, for whichever node dialled it: the peer's
//! `Subscribe`s become publishing tasks ([`crate::publish`]) fed by the node's
//! [`MediaSource`], its `Forward`s receiving tasks ([`forward_in`]) feeding the node's
//! [`crate::ForwardSink`].

pub(crate) mod forward_in;

use std::collections::HashMap;
use std::sync::{Arc, Mutex};

use sluice_proto::v1::{
    control_message::Msg, ControlMessage, Subscribe, SubscribeError, SubscribeErrorCode,
    SubscribeOk,
};
use tokio::sync::{mpsc, watch};

use crate::config::RelayConfig;
use crate::error::{ProtocolViolation, SubscribeRefusal};
use crate::publish::{self, Priorities, Publication};
use crate::serving::{MediaSource, Serving, SubscribeRequest};
use crate::side::Side;
use crate::wire::GopReader;
use forward_in::ForwardsIn;

/// Live subscriptions of one connection: request_id -> cancel signal.
type Live = Arc<Mutex<HashMap<u64, watch::Sender<bool>>>>;

/// What a connection's control loop needs to serve the peer's requests.
pub(crate) struct Ctx {
    conn: quinn::Connection,
    source: Arc<dyn MediaSource>,
    config: Arc<RelayConfig>,
    live: Live,
    forwards: ForwardsIn,
    /// Connection-wide GOP priorities.
    priorities: Arc<Priorities>,
    control: mpsc::Sender<ControlMessage>,
    peer_node_id: String,
    /// The peer's side, whose half of the request id space its requests must use.
    peer_side: Side,
}

impl Ctx {
    pub(crate) fn new(
        conn: quinn::Connection,
        serving: Serving,
        config: Arc<RelayConfig>,
        priorities: Arc<Priorities>,
        control: mpsc::Sender<ControlMessage>,
        peer_node_id: String,
        peer_side: Side,
    ) -> Self {
        let forwards = ForwardsIn::new(
            conn.clone(),
            serving.sink,
            config.clone(),
            control.clone(),
            peer_node_id.clone(),
        );
        Self {
            conn,
            source: serving.source,
            config,
            live: Arc::default(),
            forwards,
            priorities,
            control,
            peer_node_id,
            peer_side,
        }
    }

    /// Handles one of the peer's request messages (`Subscribe`, `Unsubscribe`, `Forward`,
    /// `Unforward`): `Ok(Some(answer))` to send back; `Err` is a protocol violation.
    pub(crate) fn on_request(&self, request: Msg) -> Result<Option<Msg>, ProtocolViolation> {
        match request {
            Msg::Subscribe(s) => self.start(s).map(Some),
            Msg::Forward(f) => {
                self.check_new_request_id(f.request_id)?;
                Ok(Some(self.forwards.start(f)))
            }
            Msg::Unforward(u) => {
                self.forwards.unforward(u);
                Ok(None)
            }
            Msg::Unsubscribe(u) => {
                // Unknown ids are fine: the subscription may have ended meanwhile.
                let cancel = crate::lock::lock(&self.live).remove(&u.request_id);
                if let Some(cancel) = cancel {
                    let _ = cancel.send(true);
                }
                Ok(None)
            }
            _ => Err(ProtocolViolation::UnexpectedMessage),
        }
    }

    /// Hands a GOP stream the peer opened for one of its forwards to this node to that
    /// forward; gives it back when the forward is not live.
    pub(crate) fn route_gop(&self, request_id: u64, reader: GopReader) -> Option<GopReader> {
        self.forwards.route(request_id, reader)
    }

    /// The connection's control stream ended: every publication stops and every accepted
    /// forward ends (its task sees its GOP channel close: `ConnectionLost`).
    pub(crate) fn teardown(&self) {
        for (_, cancel) in crate::lock::lock(&self.live).drain() {
            let _ = cancel.send(true);
        }
        self.forwards.clear();
    }

    /// Checks the request id of a new `Subscribe` or `Forward`: in the peer's half of the id
    /// space and not the id of a live request. Only the control loop adds requests, so the
    /// answer stays true until it inserts.
    fn check_new_request_id(&self, id: u64) -> Result<(), ProtocolViolation> {
        if !self.peer_side.owns(id) {
            return Err(ProtocolViolation::ForeignRequestId(id));
        }
        let subscribed = crate::lock::lock(&self.live).contains_key(&id);
        if subscribed || self.forwards.contains(id) {
            return Err(ProtocolViolation::DuplicateRequestId(id));
        }
        Ok(())
    }

    /// Answers a `Subscribe`, starting its publication when the source accepts it.
    fn start(&self, s: Subscribe) -> Result<Msg, ProtocolViolation> {
        let id = s.request_id;
        self.check_new_request_id(id)?;
        let mut map = crate::lock::lock(&self.live);
        if map.len() >= self.config.max_subscriptions {
            return Err(ProtocolViolation::TooManySubscriptions);
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
            priorities: self.priorities.clone(),
            queue_frames: self.config.gop_queue_frames,
            queue_bytes: self.config.gop_queue_bytes,
            max_frame_size: self.config.max_frame_size,
        };
        let (live, control) = (self.live.clone(), self.control.clone());
        tokio::spawn(async move {
            let outcome = publish::run(publication).await;
            // Remove our entry only (the id may have been reused after an Unsubscribe).
            {
                let mut map = crate::lock::lock(&live);
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
