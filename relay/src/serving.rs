//! What a node serves over the relay, as the node sees it: the [`MediaSource`] it serves
//! subscriptions from and the [`ForwardSink`] it takes forwards into, with the requests they
//! are handed. A leaf of the relay (only codec and error vocabulary below it): the node
//! implements these traits, the serving side (`server`) calls them.

use std::sync::Arc;

use tokio::sync::mpsc;

use crate::codec::Frame;
use crate::error::{ForwardRefusal, SubscribeRefusal};

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

/// A forward offered to this node, as its [`ForwardSink`] sees it.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ForwardRequest {
    pub app: String,
    pub name: String,
    /// Registry revision of the publisher's claim on the stream.
    pub claim_revision: i64,
    /// Forwards the stream went through before this one (0 from the ingest origin). A node
    /// that forwards the stream on passes `hops + 1`.
    pub hops: u32,
    /// The forwarding node's id (from its `Hello`).
    pub peer_node_id: String,
    /// W3C trace context of the forwarding span (empty: none).
    pub traceparent: String,
}

/// How an accepted forward ended, as told to [`ForwardSink::ended`].
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum ForwardEnd {
    /// The stream's publisher went away (`Unforward{SOURCE_ENDED}`); the GOPs in flight were
    /// delivered first.
    SourceEnded,
    /// The forwarding node stopped forwarding while the stream goes on, e.g. its home moved
    /// (`Unforward{CANCELLED}`).
    Cancelled,
    /// This node dropped the receiver; the forwarding node was told `FORWARD_CLOSED`.
    ReceiverClosed,
    /// The connection closed or failed.
    ConnectionLost,
}

/// What a node does with forwards it receives. Implemented by an origin around its hub.
pub trait ForwardSink: Send + Sync + 'static {
    /// Takes a forward: a sender the relay writes the stream's frames into, in order (each
    /// GOP starts with the metadata and sequence headers, then its keyframe), or why not.
    /// The relay drops the sender when the forward ends. When the channel is full the relay
    /// waits, unless the receiver falls a whole GOP behind: then the GOP being delivered is
    /// given up (its stream stopped) and delivery resumes with the next GOP's headers, so a
    /// receiver that stops reading costs a bounded amount of memory. Dropping the receiver
    /// ends the forward (the forwarding node is told `FORWARD_CLOSED`). Requests whose hop
    /// count exceeds [`crate::RelayConfig::max_forward_hops`] are answered LOOP without
    /// reaching the sink. Called on the connection's control task: must not block.
    fn accept(&self, request: &ForwardRequest) -> Result<mpsc::Sender<Frame>, ForwardRefusal>;

    /// Called once when an accepted forward ends, just before its sender is dropped.
    fn ended(&self, request: &ForwardRequest, end: ForwardEnd) {
        let _ = (request, end);
    }
}

/// What a node serves on a connection: subscriptions from `source`, forwards into `sink`
/// (`None` refuses them).
#[derive(Clone)]
pub(crate) struct Serving {
    pub(crate) source: Arc<dyn MediaSource>,
    pub(crate) sink: Option<Arc<dyn ForwardSink>>,
}
