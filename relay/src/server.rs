//! The accepting side of a relay connection: the Hello exchange, then the control loop that
//! turns `Subscribe`s into publishing tasks ([`crate::publish`]) and `Forward`s into
//! receiving tasks ([`crate::forward_in`]).

use std::collections::HashMap;
use std::sync::atomic::AtomicI32;
use std::sync::{Arc, Mutex};

use sluice_proto::v1::{
    control_message::Msg, ControlMessage, Hello, Subscribe, SubscribeError, SubscribeErrorCode,
    SubscribeOk,
};
use tokio::sync::{mpsc, watch};

use crate::codec::Frame;
use crate::config::RelayConfig;
use crate::forward_in::{self, ForwardSink, Forwards};
use crate::publish::{self, Publication};
use crate::receive;
use crate::wire::{self, ControlReader};
use crate::{codes, RelayError, SubscribeRefusal, VERSION};

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

/// Serves one accepted connection until it closes.
pub(crate) async fn run(
    conn: quinn::Connection,
    source: Arc<dyn MediaSource>,
    sink: Option<Arc<dyn ForwardSink>>,
    config: Arc<RelayConfig>,
) {
    let peer = conn.remote_address();
    if let Err(e) = serve(&conn, source, sink, config).await {
        let (code, reason) = match &e {
            RelayError::Protocol(_) => (codes::PROTOCOL_VIOLATION, "protocol violation"),
            RelayError::UnsupportedVersion(_) => (
                codes::UNSUPPORTED_VERSION,
                "unsupported version; supported: 1",
            ),
            RelayError::Timeout(_) => (codes::HANDSHAKE_TIMEOUT, "hello timeout"),
            _ => (codes::CLOSE_NORMAL, "closed"),
        };
        tracing::info!(%peer, error = %e, "relay connection closed");
        conn.close(code.into(), reason.as_bytes());
    }
}

async fn serve(
    conn: &quinn::Connection,
    source: Arc<dyn MediaSource>,
    sink: Option<Arc<dyn ForwardSink>>,
    config: Arc<RelayConfig>,
) -> crate::Result<()> {
    let hello = async {
        let (send, recv) = conn.accept_bi().await?;
        let mut reader = ControlReader::new(recv);
        let msg = reader.next().await?;
        Ok::<_, RelayError>((send, reader, msg))
    };
    let (mut send, mut reader, first) = tokio::time::timeout(config.request_timeout, hello)
        .await
        .map_err(|_| RelayError::Timeout("hello"))??;
    let peer_node_id = match first {
        Some(ControlMessage {
            msg: Some(Msg::Hello(h)),
        }) if h.version == VERSION => h.node_id,
        Some(ControlMessage {
            msg: Some(Msg::Hello(h)),
        }) => return Err(RelayError::UnsupportedVersion(h.version)),
        _ => {
            return Err(RelayError::Protocol(
                "first control message is not Hello".into(),
            ))
        }
    };
    let reply = Hello {
        version: VERSION,
        node_id: config.node_id.clone(),
    };
    wire::write_control(
        &mut send,
        &ControlMessage {
            msg: Some(Msg::Hello(reply)),
        },
    )
    .await?;

    // Control messages from publishing tasks (SubscribeError ENDED) and from this loop go
    // through one writer task, bounded.
    let (control_tx, mut control_rx) = mpsc::channel::<ControlMessage>(256);
    tokio::spawn(async move {
        while let Some(msg) = control_rx.recv().await {
            if wire::write_control(&mut send, &msg).await.is_err() {
                break;
            }
        }
    });

    let ctx = Ctx {
        conn: conn.clone(),
        source,
        sink,
        config,
        live: Arc::default(),
        forwards: Arc::default(),
        priority: Arc::default(),
        control: control_tx.clone(),
        peer_node_id,
    };
    let live = ctx.live.clone();
    // GOP streams the dialler opens belong to its forwards.
    let (forwards, violating) = (ctx.forwards.clone(), conn.clone());
    let gops = tokio::spawn(receive::accept_gops(
        conn.clone(),
        ctx.config.clone(),
        move |request_id, reader| forward_in::route(&forwards, request_id, reader),
        move |what| {
            tracing::info!(what, "relay protocol violation");
            violating.close(codes::PROTOCOL_VIOLATION.into(), b"protocol violation");
        },
    ));
    let result = loop {
        let msg = match reader.next().await {
            Ok(Some(m)) => m,
            Ok(None) => break Ok(()),
            Err(e) => break Err(e),
        };
        match msg.msg {
            Some(Msg::Subscribe(s)) => {
                let answer = match ctx.start(s) {
                    Ok(a) => a,
                    Err(e) => break Err(e),
                };
                if control_tx
                    .send(ControlMessage { msg: Some(answer) })
                    .await
                    .is_err()
                {
                    break Ok(());
                }
            }
            Some(Msg::Forward(f)) => {
                let answer = match forward_in::start(&ctx, f) {
                    Ok(a) => a,
                    Err(e) => break Err(e),
                };
                if control_tx
                    .send(ControlMessage { msg: Some(answer) })
                    .await
                    .is_err()
                {
                    break Ok(());
                }
            }
            Some(Msg::Unforward(u)) => forward_in::unforward(&ctx.forwards, u),
            Some(Msg::Unsubscribe(u)) => {
                // Unknown ids are fine: the subscription may have ended meanwhile.
                let cancel = live
                    .lock()
                    .unwrap_or_else(|p| p.into_inner())
                    .remove(&u.request_id);
                if let Some(cancel) = cancel {
                    let _ = cancel.send(true);
                }
            }
            other => {
                break Err(RelayError::Protocol(format!(
                    "unexpected control message {other:?}"
                )))
            }
        }
    };
    for (_, cancel) in live.lock().unwrap_or_else(|p| p.into_inner()).drain() {
        let _ = cancel.send(true);
    }
    // Forward tasks see their GOP channel close and end (ConnectionLost).
    forward_in::lock(&ctx.forwards).clear();
    gops.abort();
    result
}

/// What the control loop needs to start publications and forwards.
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
}

impl Ctx {
    /// Checks the request id of a new `Subscribe` or `Forward`: below 2^63 and not the id of
    /// a live request. Only the control loop adds requests, so the answer stays true until
    /// it inserts.
    pub(crate) fn check_new_request_id(&self, id: u64) -> crate::Result<()> {
        if id > u64::MAX >> 1 {
            return Err(RelayError::Protocol(format!("reserved request_id {id}")));
        }
        let subscribed = self
            .live
            .lock()
            .unwrap_or_else(|p| p.into_inner())
            .contains_key(&id);
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
                if map
                    .get(&id)
                    .is_some_and(|tx| tx.subscribe().same_channel(&mine))
                {
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
                let _ = control
                    .send(ControlMessage {
                        msg: Some(Msg::SubscribeError(ended)),
                    })
                    .await;
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
    SubscribeError {
        request_id,
        code: code as i32,
        owner,
        gop_count: 0,
    }
}
