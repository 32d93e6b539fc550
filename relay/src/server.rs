//! The serving side of a relay connection: the Hello exchange, then the control loop that
//! turns `Subscribe`s into publishing tasks ([`crate::publish`]).

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
use crate::publish::{self, Publication};
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
    config: Arc<RelayConfig>,
) {
    let peer = conn.remote_address();
    if let Err(e) = serve(&conn, source, config).await {
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
        config,
        live: Arc::default(),
        priority: Arc::default(),
        control: control_tx.clone(),
        peer_node_id,
    };
    let live = ctx.live.clone();
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
    result
}

/// What the control loop needs to start publications.
struct Ctx {
    conn: quinn::Connection,
    source: Arc<dyn MediaSource>,
    config: Arc<RelayConfig>,
    live: Live,
    /// Connection-wide GOP priority counter.
    priority: Arc<AtomicI32>,
    control: mpsc::Sender<ControlMessage>,
    peer_node_id: String,
}

impl Ctx {
    /// Answers a `Subscribe`, starting its publication when the source accepts it.
    fn start(&self, s: Subscribe) -> crate::Result<Msg> {
        let id = s.request_id;
        let mut map = self.live.lock().unwrap_or_else(|p| p.into_inner());
        if map.contains_key(&id) {
            return Err(RelayError::Protocol(format!("duplicate request_id {id}")));
        }
        if map.len() >= self.config.max_subscriptions {
            return Err(RelayError::Protocol("too many subscriptions".into()));
        }
        let request = SubscribeRequest {
            app: s.app,
            name: s.name,
            claim_revision: s.claim_revision,
            peer_node_id: self.peer_node_id.clone(),
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
