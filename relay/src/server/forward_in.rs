//! The accepting side of a forward: a node that is a stream's home takes the stream from
//! the origin that has its publisher. `Forward` is answered through the node's
//! [`ForwardSink`]; each accepted forward gets a task that reads its GOP streams in order
//! ([`crate::receive::Reassembly`]) into the sink's bounded channel.

use std::collections::HashMap;
use std::sync::{Arc, Mutex};

use sluice_proto::v1::{
    control_message::Msg, ControlMessage, Forward, ForwardError, ForwardErrorCode, ForwardOk,
    Unforward, UnforwardReason,
};
use tokio::sync::mpsc;

use crate::codec::Frame;
use crate::codes;
use crate::config::RelayConfig;
use crate::error::{ForwardRefusal, RelayError};
use crate::lock::lock;
use crate::receive::{self, Arrival, Inlet, Reassembly, END_GRACE};
use crate::serving::{ForwardEnd, ForwardRequest, ForwardSink};
use crate::wire::GopReader;

/// A live forward of one connection.
struct Entry {
    inlet: Inlet,
    /// Set from `Unforward` before its end notice.
    reason: Option<ForwardEnd>,
}

/// Live forwards of one connection, by request id.
type Live = Arc<Mutex<HashMap<u64, Entry>>>;

/// The forwards the peer makes to this node on one connection, and what taking one needs.
pub(crate) struct ForwardsIn {
    conn: quinn::Connection,
    sink: Option<Arc<dyn ForwardSink>>,
    config: Arc<RelayConfig>,
    /// This node's control messages to the peer (a `ForwardError{CLOSED}` after the fact).
    control: mpsc::Sender<ControlMessage>,
    peer_node_id: String,
    live: Live,
}

impl ForwardsIn {
    pub(crate) fn new(
        conn: quinn::Connection,
        sink: Option<Arc<dyn ForwardSink>>,
        config: Arc<RelayConfig>,
        control: mpsc::Sender<ControlMessage>,
        peer_node_id: String,
    ) -> Self {
        Self { conn, sink, config, control, peer_node_id, live: Live::default() }
    }

    /// Whether `request_id` is a live forward.
    pub(crate) fn contains(&self, request_id: u64) -> bool {
        lock(&self.live).contains_key(&request_id)
    }

    /// Answers a `Forward` (whose request id the caller checked), starting its receiving
    /// task when accepted.
    pub(crate) fn start(&self, f: Forward) -> Msg {
        let id = f.request_id;
        let refuse = |refusal| Msg::ForwardError(refusal_message(id, refusal));
        if f.hops > self.config.max_forward_hops {
            return refuse(ForwardRefusal::Loop);
        }
        let Some(sink) = self.sink.clone() else {
            return refuse(ForwardRefusal::Refused);
        };
        if lock(&self.live).len() >= self.config.max_forwards {
            return refuse(ForwardRefusal::Refused);
        }
        let request = ForwardRequest {
            app: f.app,
            name: f.name,
            claim_revision: f.claim_revision,
            hops: f.hops,
            peer_node_id: self.peer_node_id.clone(),
            traceparent: f.traceparent,
        };
        let tx = match sink.accept(&request) {
            Ok(tx) => tx,
            Err(refusal) => return refuse(refusal),
        };
        let (inlet, frames) = receive::channel();
        let generation = inlet.generation();
        lock(&self.live).insert(id, Entry { inlet, reason: None });
        let task = Receiving {
            conn: self.conn.clone(),
            forwards: self.live.clone(),
            control: self.control.clone(),
            request_id: id,
            generation,
        };
        tokio::spawn(task.run(sink, request, frames, tx));
        Msg::ForwardOk(ForwardOk { request_id: id })
    }

    /// Handles `Unforward`: the forward ends once its GOP streams below `gop_count` are
    /// read.
    pub(crate) fn unforward(&self, u: Unforward) {
        // Unknown ids are fine: the forward may have ended meanwhile.
        if let Some(entry) = lock(&self.live).get_mut(&u.request_id) {
            entry.reason = Some(match UnforwardReason::try_from(u.reason) {
                Ok(UnforwardReason::SourceEnded) => ForwardEnd::SourceEnded,
                _ => ForwardEnd::Cancelled,
            });
            entry.inlet.end(u.gop_count);
        }
    }

    /// Hands a GOP stream the forwarding node opened to its forward; gives it back when the
    /// forward is not live (never was, or ended: such streams are stopped and ignored).
    pub(crate) fn route(&self, request_id: u64, reader: GopReader) -> Option<GopReader> {
        match lock(&self.live).get(&request_id) {
            Some(entry) => {
                entry.inlet.deliver(reader);
                None
            }
            None => Some(reader),
        }
    }

    /// The connection is gone: every accepted forward ends (its task sees its GOP channel
    /// close: `ConnectionLost`).
    pub(crate) fn clear(&self) {
        lock(&self.live).clear();
    }
}

fn refusal_message(request_id: u64, refusal: ForwardRefusal) -> ForwardError {
    let (code, owner) = match refusal {
        ForwardRefusal::NotHome { owner } => (ForwardErrorCode::ForwardNotHome, owner),
        ForwardRefusal::Refused => (ForwardErrorCode::ForwardRefused, String::new()),
        ForwardRefusal::Loop => (ForwardErrorCode::ForwardLoop, String::new()),
        ForwardRefusal::Closed => (ForwardErrorCode::ForwardClosed, String::new()),
    };
    ForwardError { request_id, code: code as i32, owner }
}

/// What waiting for room in the sink's channel came to.
enum Wait<'a> {
    Room(mpsc::Permit<'a, Frame>),
    /// The receiver dropped its end.
    Closed,
    /// A whole GOP behind: the GOP being delivered was given up.
    Skipped,
    /// The forward ended (or the connection went) while the receiver was not reading.
    GaveUp(ForwardEnd),
}

/// The task that delivers one accepted forward.
struct Receiving {
    conn: quinn::Connection,
    forwards: Live,
    control: mpsc::Sender<ControlMessage>,
    request_id: u64,
    generation: u64,
}

impl Receiving {
    async fn run(
        self,
        sink: Arc<dyn ForwardSink>,
        request: ForwardRequest,
        mut frames: Reassembly,
        tx: mpsc::Sender<Frame>,
    ) {
        let end = loop {
            let next = tokio::select! {
                f = frames.next_frame() => f,
                _ = tx.closed() => break ForwardEnd::ReceiverClosed,
            };
            let frame = match next {
                Ok(Some(frame)) => frame,
                Ok(None) => break self.reason(),
                Err(RelayError::Protocol(what)) => {
                    tracing::info!(peer = %request.peer_node_id, %what, "relay protocol violation");
                    self.conn.close(codes::PROTOCOL_VIOLATION.into(), b"protocol violation");
                    break ForwardEnd::ConnectionLost;
                }
                Err(_) => break ForwardEnd::ConnectionLost,
            };
            match self.wait_for_room(&tx, &mut frames).await {
                Wait::Room(permit) => permit.send(frame),
                Wait::Skipped => {
                    tracing::debug!(
                        request_id = self.request_id,
                        "forward receiver a whole GOP behind: GOP given up"
                    );
                }
                Wait::Closed => break ForwardEnd::ReceiverClosed,
                Wait::GaveUp(end) => break end,
            }
        };
        // Remove our entry only (the id may have been reused after an Unforward).
        {
            let mut map = lock(&self.forwards);
            if map.get(&self.request_id).is_some_and(|e| e.inlet.generation() == self.generation) {
                map.remove(&self.request_id);
            }
        }
        drop(frames); // stops the GOP streams still open
        sink.ended(&request, end);
        drop(tx);
        if end == ForwardEnd::ReceiverClosed {
            let closed = refusal_message(self.request_id, ForwardRefusal::Closed);
            let _ =
                self.control.send(ControlMessage { msg: Some(Msg::ForwardError(closed)) }).await;
        }
    }

    /// Why the forwarding node ended the forward (from its `Unforward`).
    fn reason(&self) -> ForwardEnd {
        lock(&self.forwards)
            .get(&self.request_id)
            .filter(|e| e.inlet.generation() == self.generation)
            .and_then(|e| e.reason)
            .unwrap_or(ForwardEnd::Cancelled)
    }

    /// Waits for room in the sink's channel while taking in newly arriving GOP streams;
    /// gives up the current GOP once a whole GOP behind.
    async fn wait_for_room<'a>(
        &self,
        tx: &'a mpsc::Sender<Frame>,
        frames: &mut Reassembly,
    ) -> Wait<'a> {
        let mut deadline: Option<tokio::time::Instant> = None;
        loop {
            let give_up = async {
                match deadline {
                    Some(d) => tokio::time::sleep_until(d).await,
                    None => std::future::pending().await,
                }
            };
            tokio::select! {
                biased;
                permit = tx.reserve() => {
                    return match permit {
                        Ok(p) => Wait::Room(p),
                        Err(_) => Wait::Closed,
                    }
                }
                arrival = frames.receive() => match arrival {
                    Arrival::Gop if frames.behind() => {
                        frames.skip_current();
                        return Wait::Skipped;
                    }
                    Arrival::Gop => {}
                    // The forwarding node ended it: wait a little longer for the receiver, no more.
                    Arrival::Ended => {
                        deadline = Some(tokio::time::Instant::now() + END_GRACE);
                    }
                    Arrival::Closed => return Wait::GaveUp(ForwardEnd::ConnectionLost),
                },
                _ = give_up => return Wait::GaveUp(self.reason()),
            }
        }
    }
}
