//! The relay's error vocabulary: why a request was refused ([`SubscribeRefusal`],
//! [`ForwardRefusal`]), what a peer did wrong ([`ProtocolViolation`]) and the error of the
//! async API ([`RelayError`]). A leaf: every other module may use it.

use sluice_proto::VERSION;

use crate::codec::CodecError;
#[cfg(doc)]
use crate::codes;
use crate::tls;

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
    /// The peer broke the protocol; the connection is (being) closed with
    /// [`codes::PROTOCOL_VIOLATION`].
    #[error("protocol violation: {0}")]
    Protocol(#[from] ProtocolViolation),
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
    Timeout(Awaited),
    #[error("connection closed")]
    Closed,
}

/// What a peer did that breaks the protocol. Each closes that connection (only that one)
/// with [`codes::PROTOCOL_VIOLATION`]; the variants are what logs and tests match on.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum ProtocolViolation {
    /// A control message or GOP stream that does not decode (see [`CodecError`]).
    #[error("{0}")]
    Codec(#[from] CodecError),
    #[error("control stream ends mid-message")]
    ControlTruncated,
    #[error("GOP stream without header")]
    GopWithoutHeader,
    #[error("GOP stream ends mid-frame")]
    GopTruncated,
    /// The acceptor answered the dialler's Hello with something else.
    #[error("reply is not Hello")]
    ReplyNotHello,
    /// The dialler opened the control stream with something else.
    #[error("first control message is not Hello")]
    FirstNotHello,
    #[error("a second Hello")]
    SecondHello,
    #[error("empty control message")]
    EmptyControlMessage,
    /// A request on a connection where this node serves nothing (the dialler's Hello did
    /// not say `serves_requests`).
    #[error("request from a peer this node does not serve")]
    RequestNotServed,
    #[error("unexpected control message")]
    UnexpectedMessage,
    /// A new request whose id is in this node's half of the id space.
    #[error("request_id {0} outside the requester's half of the id space")]
    ForeignRequestId(u64),
    #[error("duplicate request_id {0}")]
    DuplicateRequestId(u64),
    /// More live subscriptions than [`crate::RelayConfig::max_subscriptions`].
    #[error("too many subscriptions")]
    TooManySubscriptions,
    #[error("SubscribeOk twice")]
    SubscribeOkTwice,
    #[error("ForwardOk twice")]
    ForwardOkTwice,
    #[error("unknown SubscribeError code {0}")]
    UnknownSubscribeErrorCode(i32),
    #[error("unknown ForwardError code {0}")]
    UnknownForwardErrorCode(i32),
}

/// What the relay waited for too long ([`RelayError::Timeout`]).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Awaited {
    /// The Hello exchange.
    Hello,
    /// The answer to a `Subscribe`.
    Subscribe,
    /// The answer to a `Forward`.
    Forward,
}

impl std::fmt::Display for Awaited {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str(match self {
            Self::Hello => "hello",
            Self::Subscribe => "subscribe",
            Self::Forward => "forward",
        })
    }
}

impl From<quinn::ClosedStream> for RelayError {
    fn from(_: quinn::ClosedStream) -> Self {
        RelayError::Closed
    }
}

/// Result alias of the relay.
pub type Result<T, E = RelayError> = std::result::Result<T, E>;
