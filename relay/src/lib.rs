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
//!   has. One GOP cutter (`publish/`) and one in-order reader (`receive.rs`) serve both
//!   directions; one control loop per connection (`session.rs`) hands the peer's requests
//!   to the serving side (`server/`, with `server/forward_in.rs`) and the answers to this
//!   node's requests to the requesting side (`client/`, with `client/forward_out.rs`).
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
//! [`RelaySubscription`] whose [`RelaySubscription::next_frame`] yields frames in order
//! across GOP streams (skipping GOPs the sender cancelled) and `Ok(None)` once the publisher
//! ended.
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
//! The codecs ([`codec`]), the certificate-name reader and the GOP cutter (`publish/cutter.rs`:
//! frames in, stream decisions out) are sans-IO and tested without sockets; everything async
//! is thin glue.
//!
//! # Layers
//! Modules import only from below (no circles):
//! - vocabulary: `codes`, `codec`, `side` (which half of the request ids a node uses),
//!   `error` (refusals, protocol violations, [`RelayError`]), `tls`/`certs`, `config`,
//!   `identity`, `serving` (the [`MediaSource`] / [`ForwardSink`] a node implements);
//! - media: `wire` (quinn streams ↔ codecs), `receive` (GOP streams back in order),
//!   `publish` (the sans-IO `cutter` and its quinn driver);
//! - the two sides of a connection, independent of each other: `client` (this node's
//!   requests: `shared` below `subscribe` and `forward_out`) and `server` (the peer's
//!   requests: `forward_in` below `mod.rs`);
//! - `session` (Hellos and a connection's tasks, joining both sides), then `endpoint`.

pub mod certs;
mod client;
pub mod codec;
pub mod codes;
mod config;
mod endpoint;
mod error;
mod identity;
mod lock;
mod publish;
mod receive;
mod server;
mod serving;
mod session;
mod side;
pub mod tls;
mod wire;

pub use client::{ForwardHandle, RelayConnection, RelaySubscription};
pub use codec::{Frame, FrameKind};
pub use config::RelayConfig;
pub use endpoint::RelayEndpoint;
pub use error::{
    Awaited, ForwardRefusal, IdentityOf, ProtocolViolation, RelayError, Result, SubscribeRefusal,
};
pub use serving::{ForwardEnd, ForwardRequest, ForwardSink, MediaSource, SubscribeRequest};
pub use sluice_proto::{ALPN, VERSION};
