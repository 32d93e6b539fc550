//! The forwarding side of a forward (either node of a connection):
//! [`RelayConnection::forward`] sends `Forward`, waits for the answer, then publishes the
//! caller's frames as GOP streams with the same machinery as a subscription
//! ([`crate::publish`]); [`ForwardHandle`] keeps it going and ends it.

use std::sync::Arc;

use sluice_proto::v1::{
    control_message::Msg, ControlMessage, Forward, ForwardError, ForwardErrorCode, Unforward,
    UnforwardReason,
};
use tokio::sync::{mpsc, oneshot};

use super::shared::{ForwardState, PendingForward, RelayConnection, Shared};
use crate::codec::Frame;
use crate::error::{Awaited, ForwardRefusal, ProtocolViolation, RelayError, Result};
use crate::publish::{self, Publication};

/// `ForwardOk` arrived: the forward becomes live. `Err` names a protocol violation.
pub(crate) fn on_ok(
    shared: &Shared,
    request_id: u64,
) -> std::result::Result<(), ProtocolViolation> {
    let mut routes = shared.routes();
    match routes.pending_forwards.remove(&request_id) {
        Some(pending) => {
            // Live before the caller hears of it, so a `ForwardError` right behind the
            // `ForwardOk` finds it.
            routes.forwards.insert(request_id, pending.state);
            let _ = pending.answer.send(Ok(()));
            Ok(())
        }
        None if routes.forwards.contains_key(&request_id) => Err(ProtocolViolation::ForwardOkTwice),
        None => Ok(()), // the caller gave up meanwhile (and sent Unforward)
    }
}

/// `ForwardError` arrived: a refusal, or the end of a live forward. `Err` names a protocol
/// violation.
pub(crate) fn on_error(
    shared: &Shared,
    e: ForwardError,
) -> std::result::Result<(), ProtocolViolation> {
    let refusal = match ForwardErrorCode::try_from(e.code) {
        Ok(ForwardErrorCode::ForwardNotHome) => ForwardRefusal::NotHome { owner: e.owner },
        Ok(ForwardErrorCode::ForwardRefused) => ForwardRefusal::Refused,
        Ok(ForwardErrorCode::ForwardLoop) => ForwardRefusal::Loop,
        Ok(ForwardErrorCode::ForwardClosed) => ForwardRefusal::Closed,
        _ => return Err(ProtocolViolation::UnknownForwardErrorCode(e.code)),
    };
    let mut routes = shared.routes();
    if let Some(pending) = routes.pending_forwards.remove(&e.request_id) {
        let _ = pending.answer.send(Err(refusal));
    } else if let Some(live) = routes.forwards.remove(&e.request_id) {
        *crate::lock::lock(&live.refusal) = Some(refusal);
        live.cancel();
    }
    Ok(())
}

/// The `Unforward` for a forward this side stops.
fn unforward(request_id: u64, gop_count: u64, reason: UnforwardReason) -> ControlMessage {
    ControlMessage {
        msg: Some(Msg::Unforward(Unforward { request_id, gop_count, reason: reason as i32 })),
    }
}

/// Undoes a `Forward` whose caller gave up before the answer (timeout, dropped future).
struct Abandon<'a> {
    shared: &'a Arc<Shared>,
    request_id: u64,
    armed: bool,
}

impl Drop for Abandon<'_> {
    fn drop(&mut self) {
        if !self.armed {
            return;
        }
        let mut routes = self.shared.routes();
        routes.pending_forwards.remove(&self.request_id);
        if let Some(live) = routes.forwards.remove(&self.request_id) {
            live.cancel();
        }
        drop(routes);
        let msg = unforward(self.request_id, 0, UnforwardReason::Cancelled);
        let _ = self.shared.control.try_send(msg);
    }
}

impl RelayConnection {
    /// Forwards the stream `app/name` (claimed at registry revision `claim_revision`) to
    /// the peer, its home: sends `Forward` with `hops` (forwards the stream already went
    /// through, 0 from the ingest origin) and, once accepted, publishes `frames` (headers
    /// first, then from a keyframe, as [`crate::MediaSource::subscribe`] returns them) as
    /// GOP streams. Refusals are [`RelayError::ForwardRefused`]. The forward runs until
    /// `frames` closes (the receiver is told `SOURCE_ENDED` after the last GOP is
    /// delivered), the [`ForwardHandle`] is dropped (`CANCELLED`, GOP streams reset), the
    /// receiver closes it, or the connection fails. Several forwards of one stream, to this
    /// peer or others, may run at once.
    pub async fn forward(
        &self,
        app: &str,
        name: &str,
        claim_revision: i64,
        hops: u32,
        frames: mpsc::Receiver<Frame>,
    ) -> Result<ForwardHandle> {
        self.forward_traced(app, name, claim_revision, hops, "", frames).await
    }

    /// [`Self::forward`] carrying the W3C `traceparent` of the calling span (empty: none)
    /// to the receiving node ([`crate::ForwardRequest::traceparent`]).
    pub async fn forward_traced(
        &self,
        app: &str,
        name: &str,
        claim_revision: i64,
        hops: u32,
        traceparent: &str,
        frames: mpsc::Receiver<Frame>,
    ) -> Result<ForwardHandle> {
        let s = self.shared();
        let request_id = s.next_request_id();
        let state = Arc::new(ForwardState::new());
        let (answer_tx, answer_rx) = oneshot::channel();
        let pending = PendingForward { answer: answer_tx, state: state.clone() };
        s.routes().pending_forwards.insert(request_id, pending);
        let mut guard = Abandon { shared: s, request_id, armed: true };
        let msg = Forward {
            request_id,
            app: app.into(),
            name: name.into(),
            claim_revision,
            hops,
            traceparent: traceparent.into(),
        };
        let answer = s
            .request(ControlMessage { msg: Some(Msg::Forward(msg)) }, answer_rx, Awaited::Forward)
            .await?;
        match answer {
            Ok(()) => {}
            Err(refusal) => {
                guard.armed = false;
                return Err(RelayError::ForwardRefused(refusal));
            }
        }
        guard.armed = false;
        let publication = Publication {
            conn: s.conn.clone(),
            request_id,
            frames,
            cancel: state.cancel.subscribe(),
            priorities: s.priorities.clone(),
            queue_frames: s.config.gop_queue_frames,
            queue_bytes: s.config.gop_queue_bytes,
            max_frame_size: s.config.max_frame_size,
        };
        let (done_tx, done) = oneshot::channel();
        tokio::spawn(publish_forward(s.clone(), state.clone(), publication, done_tx));
        Ok(ForwardHandle { request_id, state, done: Some(done) })
    }
}

/// Publishes one accepted forward, then tells the receiver how it ended.
async fn publish_forward(
    shared: Arc<Shared>,
    state: Arc<ForwardState>,
    publication: Publication,
    done: oneshot::Sender<Result<u64>>,
) {
    let request_id = publication.request_id;
    let outcome = publish::run(publication).await;
    {
        let mut routes = shared.routes();
        if routes.forwards.get(&request_id).is_some_and(|f| Arc::ptr_eq(f, &state)) {
            routes.forwards.remove(&request_id);
        }
    }
    let refusal = crate::lock::lock(&state.refusal).take();
    let result = match refusal {
        // The receiver ended it: nothing to tell it.
        Some(refusal) => Err(RelayError::ForwardRefused(refusal)),
        None => {
            let reason = match outcome.ended {
                Some(_) => UnforwardReason::SourceEnded,
                None => UnforwardReason::Cancelled,
            };
            let msg = unforward(request_id, outcome.gop_count, reason);
            let sent = shared.control.send(msg).await.is_ok();
            match outcome.ended {
                Some(gop_count) if sent => Ok(gop_count),
                _ => Err(shared.closed_error()),
            }
        }
    };
    let _ = done.send(result);
}

/// A live forward (see [`RelayConnection::forward`]). Dropping it stops the forward: GOP
/// streams in flight are reset and the receiver is told `Unforward{CANCELLED}`.
pub struct ForwardHandle {
    request_id: u64,
    state: Arc<ForwardState>,
    done: Option<oneshot::Receiver<Result<u64>>>,
}

impl std::fmt::Debug for ForwardHandle {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("ForwardHandle").field("request_id", &self.request_id).finish()
    }
}

impl ForwardHandle {
    /// The request id of this forward on its connection.
    pub fn request_id(&self) -> u64 {
        self.request_id
    }

    /// Waits until the forward ends: `Ok(gop_count)` once the frames channel closed, every
    /// GOP was delivered and the receiver was told `SOURCE_ENDED`;
    /// `Err(`[`RelayError::ForwardRefused`]`)` when the receiving node closed it; a
    /// connection error when the connection failed. Cancel-safe; once it has returned,
    /// later calls return [`RelayError::Closed`].
    pub async fn finished(&mut self) -> Result<u64> {
        let Some(done) = self.done.as_mut() else {
            return Err(RelayError::Closed);
        };
        let result = done.await.unwrap_or(Err(RelayError::Closed));
        self.done = None;
        result
    }

    /// Stops the forward now (the same as dropping the handle).
    pub fn cancel(self) {}
}

impl Drop for ForwardHandle {
    fn drop(&mut self) {
        self.state.cancel();
    }
}
