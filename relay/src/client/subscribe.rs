//! Subscribing: [`RelayConnection::subscribe`] sends `Subscribe` and waits for the answer;
//! [`RelaySubscription`] reads the frames in order across GOP streams and unsubscribes when
//! dropped. The answers (`SubscribeOk`, `SubscribeError`) arrive through [`on_ok`] and
//! [`on_error`].

use std::sync::Arc;

use sluice_proto::v1::{
    control_message::Msg, ControlMessage, Subscribe, SubscribeError, SubscribeErrorCode,
    Unsubscribe,
};
use tokio::sync::oneshot;

use super::shared::{RelayConnection, Shared};
use crate::codec::Frame;
use crate::error::{Awaited, ProtocolViolation, RelayError, Result, SubscribeRefusal};
use crate::receive::{self, Reassembly};

impl RelayConnection {
    /// Subscribes to `app/name` following the claim at `claim_revision` (0: any).
    pub async fn subscribe(
        &self,
        app: &str,
        name: &str,
        claim_revision: i64,
    ) -> Result<RelaySubscription> {
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
    ) -> Result<RelaySubscription> {
        let s = self.shared();
        let request_id = s.next_request_id();
        let (answer_tx, answer_rx) = oneshot::channel();
        let (inlet, frames) = receive::channel();
        {
            let mut routes = s.routes();
            routes.pending.insert(request_id, answer_tx);
            routes.subs.insert(request_id, inlet);
        }
        // From here on, dropping `sub` unsubscribes and removes the routes.
        let mut sub = RelaySubscription { shared: s.clone(), request_id, frames, live: true };
        let msg = Subscribe {
            request_id,
            app: app.into(),
            name: name.into(),
            claim_revision,
            traceparent: traceparent.into(),
        };
        let answer = s
            .request(
                ControlMessage { msg: Some(Msg::Subscribe(msg)) },
                answer_rx,
                Awaited::Subscribe,
            )
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

/// `SubscribeOk` arrived: the subscriber hears it is live.
pub(crate) fn on_ok(
    shared: &Shared,
    request_id: u64,
) -> std::result::Result<(), ProtocolViolation> {
    let mut routes = shared.routes();
    match routes.pending.remove(&request_id) {
        Some(w) => {
            let _ = w.send(Ok(()));
        }
        None if routes.subs.contains_key(&request_id) => {
            return Err(ProtocolViolation::SubscribeOkTwice)
        }
        None => {} // the subscriber gave up meanwhile
    }
    Ok(())
}

/// `SubscribeError` arrived: a refusal, or the end (`ENDED`) of a live subscription.
pub(crate) fn on_error(
    shared: &Shared,
    e: SubscribeError,
) -> std::result::Result<(), ProtocolViolation> {
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
        _ => return Err(ProtocolViolation::UnknownSubscribeErrorCode(e.code)),
    };
    let mut routes = shared.routes();
    routes.subs.remove(&id);
    if let Some(w) = routes.pending.remove(&id) {
        let _ = w.send(Err(refusal));
    }
    Ok(())
}

/// One live subscription. Dropping it unsubscribes.
pub struct RelaySubscription {
    shared: Arc<Shared>,
    request_id: u64,
    frames: Reassembly,
    /// Whether dropping it must send `Unsubscribe` (not after a refusal).
    live: bool,
}

impl std::fmt::Debug for RelaySubscription {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("RelaySubscription").field("request_id", &self.request_id).finish()
    }
}

impl RelaySubscription {
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

impl Drop for RelaySubscription {
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
