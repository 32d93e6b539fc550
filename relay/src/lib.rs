//! The Sluice relay: media between nodes over QUIC (quinn), protocol version 1 as specified
//! in `proto/relay.proto`.
//!
//! # Shape
//! - One QUIC connection per node pair, ALPN `sluice-relay/1`, mutual TLS with the cluster
//!   CA ([`tls::RelayTls`]; [`certs::generate`] writes a development CA and node certs).
//!   The connection carries requests in both directions.
//! - The dialling node opens the control stream (the first bidirectional stream) and sends
//!   `Hello{version, node_id, serves_requests}`; the other node answers with its `Hello`,
//!   or closes the connection with [`codes::UNSUPPORTED_VERSION`]. With cluster TLS each
//!   node checks that the peer's Hello `node_id` is one of the DNS names of the certificate
//!   the peer presented (exactly; "localhost" names no node) and otherwise closes the
//!   connection with [`codes::IDENTITY_MISMATCH`] ([`RelayError::Identity`] on the
//!   dialling side, whichever node lied). Any malformed or unexpected control message
//!   closes that connection (only that one) with [`codes::PROTOCOL_VIOLATION`].
//! - Both nodes make requests: the dialler always, the acceptor when the dialler's Hello
//!   said `serves_requests` ([`RelayEndpoint::connect_serving`]). Request ids are unique
//!   among the requester's live requests and come from its half of the id space (the
//!   dialler below 2^63, the acceptor 2^63 and above), so they never collide. For either
//!   requester:
//!   - it subscribes, and the other node serves media:
//!     `Subscribe{request_id, app, name, claim_revision, traceparent}` is answered by
//!     `SubscribeOk` or `SubscribeError{NOT_FOUND | NOT_HOME(owner) | STALE}`;
//!     `Unsubscribe` ends it; a publisher that goes away is reported as
//!     `SubscribeError{ENDED, gop_count}`;
//!   - it forwards, and the other node (the stream's home) takes media:
//!     `Forward{request_id, app, name, claim_revision, hops, traceparent}` is answered by
//!     `ForwardOk` or `ForwardError{NOT_HOME(owner) | REFUSED | LOOP}` (LOOP when `hops`
//!     exceeds [`RelayConfig::max_forward_hops`]); `Unforward{gop_count, SOURCE_ENDED |
//!     CANCELLED}` ends it, and the receiving node ends a live one with
//!     `ForwardError{CLOSED}`.
//!
//!   Any number of subscriptions and forwards share the connection, in both directions,
//!   including several forwards of one stream (to this node or others: make before break
//!   when a home moves). A dialler-only node (plain [`RelayEndpoint::connect`], or one built
//!   before the acceptor could make requests) is the old protocol unchanged: still version
//!   1.
//! - Media flows on unidirectional streams, one per GOP per subscription or forward (layout
//!   in [`codec`]), opened by the node that has the media: the server of a subscription, the
//!   requester of a forward. The header's request_id names the request, and its half of the
//!   id space says whose: the receiver's own half means one of its subscriptions, the
//!   opener's half one of the opener's forwards. A GOP stream for a request that is not
//!   live is stopped and ignored. Each GOP stream starts with the current metadata and
//!   sequence headers. The newest GOP stream has the highest priority (a counter per
//!   connection and node over every stream it opens, so newer GOPs of any request outrank
//!   older ones); when a receiver is a whole GOP behind (GOP n-1 not yet acknowledged when
//!   GOP n+1 starts), GOP n-1 is reset and the receiver continues with the next GOP it
//!   has. One GOP cutter (`publish.rs`) and one in-order reader (`receive.rs`) serve both
//!   directions; one control loop per connection (`session.rs`) hands the peer's requests
//!   to the serving side (`server.rs`, `forward_in.rs`) and the answers to this node's
//!   requests to the requesting side (`client.rs`, `forward_out.rs`).
//! - `Subscribe` and `Forward` carry an optional W3C `traceparent` so spans follow a stream
//!   across nodes; the relay carries it uninterpreted (no OpenTelemetry dependency).
//! - Transport settings are explicit ([`RelayConfig`]): keepalive, idle timeout, up to 1024
//!   concurrent unidirectional streams, stream and connection receive windows.
//!
//! # API
//! Serving side: implement [`MediaSource`] and call [`RelayEndpoint::serve`]. For each
//! accepted subscription the source returns a bounded `mpsc::Receiver<Frame>` of the
//! stream's frames in order, starting with headers and then a keyframe; the relay cuts GOPs
//! at video keyframes, remembers headers and repeats them on each GOP stream. Closing the
//! sender ends the subscription (`ENDED`). An origin that is home to streams also
//! implements [`ForwardSink`] and calls [`RelayEndpoint::serve_with`]: each accepted forward
//! gets a bounded `mpsc::Sender<Frame>` the relay fills in order (each GOP from its
//! headers); a receiver a whole GOP behind loses the GOP it was being given rather than
//! buffering, and [`ForwardSink::ended`] says how a forward ended ([`ForwardEnd`]).
//!
//! Requesting side: [`RelayEndpoint::connect`] gives a [`RelayConnection`];
//! [`RelayConnection::subscribe`] (or [`RelayConnection::subscribe_traced`]) gives a
//! [`Subscription`] whose [`Subscription::next_frame`] yields frames in order across GOP
//! streams (skipping GOPs the sender cancelled) and `Ok(None)` once the publisher ended.
//! [`RelayConnection::forward`] (or [`RelayConnection::forward_traced`]) publishes a
//! `mpsc::Receiver<Frame>` to the peer and gives a [`ForwardHandle`]: dropping it stops the
//! forward, [`ForwardHandle::finished`] waits for its end.
//!
//! One connection per node pair, requests both ways: the dialling node calls
//! [`RelayEndpoint::connect_serving`] (dial, and serve the peer's requests on that
//! connection with its own source and sink); the accepting node serves with
//! [`RelayEndpoint::serve_with_peers`], which hands out a [`RelayConnection`] for each
//! such connection once the Hellos are exchanged. That handle works exactly like a
//! dialler's; [`RelayConnection::close`] on either node ends everything on the connection
//! for both.
//!
//! The codecs ([`codec`]) and the certificate-name reader are sans-IO and property-tested;
//! everything async is thin glue.

pub mod certs;
mod client;
pub mod codec;
mod config;
mod endpoint;
mod forward_in;
mod forward_out;
mod identity;
mod publish;
mod receive;
mod server;
mod session;
pub mod tls;
mod wire;

pub use client::{RelayConnection, Subscription};
pub use codec::{Frame, FrameKind};
pub use config::RelayConfig;
pub use endpoint::RelayEndpoint;
pub use forward_in::{ForwardEnd, ForwardRequest, ForwardSink};
pub use forward_out::ForwardHandle;
pub use server::{MediaSource, SubscribeRequest};
pub use sluice_proto::{ALPN, VERSION};

/// QUIC application error codes used by the relay.
pub mod codes {
    /// Connection close: orderly shutdown.
    pub const CLOSE_NORMAL: u32 = 0;
    /// Connection close: malformed or unexpected control message.
    pub const PROTOCOL_VIOLATION: u32 = 1;
    /// Connection close: the peer's `Hello.version` is not supported.
    pub const UNSUPPORTED_VERSION: u32 = 2;
    /// Connection close: the Hello did not arrive in time.
    pub const HANDSHAKE_TIMEOUT: u32 = 3;
    /// Connection close: the node id of the peer's `Hello` is not a name of the certificate
    /// it presented.
    pub const IDENTITY_MISMATCH: u32 = 4;
    /// GOP stream reset by the sender: the subscriber fell a whole GOP behind.
    pub const GOP_CANCELLED: u32 = 1;
    /// GOP stream reset by the sender: the subscription (or forward) ended.
    pub const UNSUBSCRIBED: u32 = 2;
    /// GOP stream stopped by the receiver: it no longer wants it.
    pub const STREAM_UNWANTED: u32 = 3;
}

/// Why a subscription was refused (the `SubscribeError` codes a source can answer).
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum SubscribeRefusal {
    #[error("stream not found")]
    NotFound,
    #[error("not the stream's home (owner: {owner:?})")]
    NotHome { owner: String },
    #[error("stale claim revision")]
    Stale,
}

/// Why a forward was refused, or ended by the receiving node (the `ForwardError` codes).
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum ForwardRefusal {
    /// The receiving node is not the stream's home.
    #[error("not the stream's home (owner: {owner:?})")]
    NotHome { owner: String },
    /// The receiving node does not take this forward (or no forwards at all).
    #[error("forward refused")]
    Refused,
    /// The forward's hop count exceeds the receiving node's limit.
    #[error("forward hop limit exceeded (loop)")]
    Loop,
    /// The receiving node stopped taking the stream after accepting the forward.
    #[error("forward closed by the receiving node")]
    Closed,
}

/// Whose `Hello` failed the identity check (see [`RelayError::Identity`]).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum IdentityOf {
    /// The peer's Hello named a node its certificate does not: this node closed the
    /// connection.
    Peer,
    /// This node's Hello named a node its own certificate does not (its `node_id` and its
    /// certificate disagree): the peer closed the connection.
    Local,
}

impl std::fmt::Display for IdentityOf {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str(match self {
            Self::Peer => "the peer",
            Self::Local => "this node",
        })
    }
}

/// Errors of the relay's async API.
#[derive(Debug, thiserror::Error)]
pub enum RelayError {
    #[error("TLS setup: {0}")]
    Tls(#[from] tls::TlsError),
    #[error("socket: {0}")]
    Io(#[from] std::io::Error),
    #[error("connect: {0}")]
    Connect(#[from] quinn::ConnectError),
    #[error("connection: {0}")]
    Connection(#[from] quinn::ConnectionError),
    #[error("read: {0}")]
    Read(#[from] quinn::ReadError),
    #[error("write: {0}")]
    Write(#[from] quinn::WriteError),
    #[error("protocol violation: {0}")]
    Protocol(String),
    #[error("peer speaks relay version {0}, this node speaks {VERSION}")]
    UnsupportedVersion(u32),
    /// A Hello's node id is not one of the DNS names of its sender's certificate
    /// (connection closed with [`codes::IDENTITY_MISMATCH`]).
    #[error(
        "identity mismatch: {of} said it is node {node_id:?}, its certificate names {certified:?}"
    )]
    Identity {
        of: IdentityOf,
        /// The node id the Hello claimed.
        node_id: String,
        /// The DNS names of that node's certificate ("localhost" names no node).
        certified: Vec<String>,
    },
    #[error("subscription refused: {0}")]
    Refused(#[from] SubscribeRefusal),
    #[error("forward refused: {0}")]
    ForwardRefused(#[from] ForwardRefusal),
    #[error("timed out: {0}")]
    Timeout(&'static str),
    #[error("connection closed")]
    Closed,
}

/// Result alias of the relay.
pub type Result<T, E = RelayError> = std::result::Result<T, E>;
