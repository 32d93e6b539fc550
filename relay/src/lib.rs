//! The Sluice relay: media between nodes over QUIC (quinn), protocol version 1 as specified
//! in `proto/relay.proto`.
//!
//! # Shape
//! - One QUIC connection per node pair, ALPN `sluice-relay/1`, mutual TLS with the cluster
//!   CA ([`tls::RelayTls`]; [`certs::generate`] writes a development CA and node certs).
//! - The dialling node opens the control stream (the first bidirectional stream) and sends
//!   `Hello{version, node_id}`; the other node answers with its `Hello`, or closes the
//!   connection with [`codes::UNSUPPORTED_VERSION`]. Any malformed or unexpected control
//!   message closes that connection (only that one) with [`codes::PROTOCOL_VIOLATION`].
//! - In this version the dialler subscribes and the acceptor serves media:
//!   `Subscribe{request_id, app, name, claim_revision}` is answered by `SubscribeOk` or
//!   `SubscribeError{NOT_FOUND | NOT_HOME(owner) | STALE}`; `Unsubscribe` ends it; a
//!   publisher that goes away is reported as `SubscribeError{ENDED, gop_count}`.
//! - Media flows on unidirectional streams, one per GOP per subscription (layout in
//!   [`codec`]). Each GOP stream starts with the current metadata and sequence headers.
//!   The newest GOP stream has the highest priority (a counter per connection, so newer
//!   GOPs of any subscription outrank older ones); when a subscriber is a whole GOP
//!   behind (GOP n-1 not yet acknowledged when GOP n+1 starts), GOP n-1 is reset and the
//!   subscriber continues with the next GOP it has.
//! - Transport settings are explicit ([`RelayConfig`]): keepalive, idle timeout, up to 1024
//!   concurrent unidirectional streams, stream and connection receive windows.
//!
//! # API
//! Serving side: implement [`MediaSource`] and call [`RelayEndpoint::serve`]. For each
//! accepted subscription the source returns a bounded `mpsc::Receiver<Frame>` of the
//! stream's frames in order, starting with headers and then a keyframe; the relay cuts GOPs
//! at video keyframes, remembers headers and repeats them on each GOP stream. Closing the
//! sender ends the subscription (`ENDED`).
//!
//! Subscribing side: [`RelayEndpoint::connect`] gives a [`RelayConnection`];
//! [`RelayConnection::subscribe`] gives a [`Subscription`] whose
//! [`Subscription::next_frame`] yields frames in order across GOP streams (skipping GOPs
//! the sender cancelled) and `Ok(None)` once the publisher ended.
//!
//! The codecs ([`codec`]) are sans-IO and property-tested; everything async is thin glue.

pub mod certs;
mod client;
pub mod codec;
mod config;
mod endpoint;
mod forward_in;
mod forward_out;
mod publish;
mod receive;
mod server;
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
