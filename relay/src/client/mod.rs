//! The requesting side of a relay connection, for either node of it: [`RelayConnection`]
//! (this node's requests and the routing of their answers and GOP streams), subscribing
//! ([`RelaySubscription`]: frames in order across GOP streams) and forwarding
//! ([`ForwardHandle`]). The connection's tasks (`session`) feed it the peer's answers
//! ([`on_answer`]) and GOP streams ([`Shared::route_gop`]).
//!
//! Inside, `shared` is the bottom (routing tables, connection state, the handle), and
//! `subscribe` and `forward_out` each build on it only.

mod forward_out;
mod shared;
mod subscribe;

use sluice_proto::v1::control_message::Msg;

use crate::error::ProtocolViolation;
pub use forward_out::ForwardHandle;
pub use shared::RelayConnection;
pub(crate) use shared::Shared;
pub use subscribe::RelaySubscription;

/// Takes an answer to one of this node's requests (`SubscribeOk`, `SubscribeError`,
/// `ForwardOk`, `ForwardError`). `Err` is a protocol violation.
pub(crate) fn on_answer(shared: &Shared, answer: Msg) -> Result<(), ProtocolViolation> {
    match answer {
        Msg::SubscribeOk(ok) => subscribe::on_ok(shared, ok.request_id),
        Msg::SubscribeError(e) => subscribe::on_error(shared, e),
        Msg::ForwardOk(ok) => forward_out::on_ok(shared, ok.request_id),
        Msg::ForwardError(e) => forward_out::on_error(shared, e),
        _ => Err(ProtocolViolation::UnexpectedMessage),
    }
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
