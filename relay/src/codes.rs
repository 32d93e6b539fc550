//! QUIC application error codes used by the relay.

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
