//! The one error of an RTMP session, server or client side: why the connection must close.
//!
//! Drivers match on [`SessionError::kind`] (a [`SessionErrorKind`], one value per metrics
//! label) and on [`ProtocolError`]'s variants, never on message text.

use std::fmt;

use crate::rtmp::chunk::ChunkError;
use crate::rtmp::command::CommandError;
use crate::rtmp::control::ControlError;
use crate::rtmp::handshake::HandshakeError;
use crate::rtmp::server::aggregate::AggregateError;

/// Why a [`ServerSession`](crate::rtmp::server::ServerSession) or
/// [`ClientSession`](crate::rtmp::client::ClientSession) failed. After it, the session is dead:
/// every later `receive` returns the same error.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum SessionError {
    #[error("handshake: {0}")]
    Handshake(#[from] HandshakeError),
    #[error("chunk stream: {0}")]
    Chunk(#[from] ChunkError),
    /// A command or data message whose AMF0 does not decode, or that is not a command.
    #[error("command: {0}")]
    Command(#[from] CommandError),
    #[error("protocol: {0}")]
    Protocol(#[from] ProtocolError),
    /// The peer made the session queue more output than
    /// [`ServerConfig::max_output_bytes`](crate::rtmp::server::ServerConfig::max_output_bytes)
    /// before the driver took it (e.g. many reply-provoking commands completed by one read).
    #[error("output queue full: {queued} bytes queued, limit {limit}")]
    OutputFull { queued: usize, limit: usize },
}

impl SessionError {
    /// Which part of the protocol failed, e.g. for a metrics label.
    pub fn kind(&self) -> SessionErrorKind {
        match self {
            SessionError::Handshake(_) => SessionErrorKind::Handshake,
            SessionError::Chunk(_) => SessionErrorKind::Chunk,
            SessionError::Command(_) => SessionErrorKind::Amf,
            SessionError::Protocol(_) => SessionErrorKind::Protocol,
            SessionError::OutputFull { .. } => SessionErrorKind::OutputFull,
        }
    }
}

/// The class of a [`SessionError`]: one per variant.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, PartialOrd, Ord)]
pub enum SessionErrorKind {
    Handshake,
    Chunk,
    /// A command that does not decode (AMF0).
    Amf,
    Protocol,
    /// Too much output queued for a peer that does not read it.
    OutputFull,
}

impl SessionErrorKind {
    /// A short, fixed label: `handshake`, `chunk`, `amf`, `protocol`, `output_full`.
    pub fn as_str(self) -> &'static str {
        match self {
            SessionErrorKind::Handshake => "handshake",
            SessionErrorKind::Chunk => "chunk",
            SessionErrorKind::Amf => "amf",
            SessionErrorKind::Protocol => "protocol",
            SessionErrorKind::OutputFull => "output_full",
        }
    }
}

impl fmt::Display for SessionErrorKind {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(self.as_str())
    }
}

/// The peer broke the rules of the RTMP conversation (the bytes decoded, but what they say is
/// not allowed, or a message's body does not fit its type).
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum ProtocolError {
    #[error("control message: {0}")]
    Control(#[from] ControlError),
    #[error("aggregate: {0}")]
    Aggregate(#[from] AggregateError),
    #[error("second connect on one connection")]
    SecondConnect,
    /// A command other than `connect` arrived first.
    #[error("command '{command}' before connect")]
    BeforeConnect { command: String },
    #[error("command '{command}' after connect was rejected")]
    AfterRejectedConnect { command: String },
    /// `publish` or `play` on a message stream `createStream` never returned.
    #[error("{command} on message stream {stream_id}, which was not created")]
    UnknownStream { command: &'static str, stream_id: u32 },
    /// The server's answer to `createStream` carries no usable message stream id.
    #[error("createStream _result without a stream id")]
    NoStreamId,
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn kinds_and_labels() {
        let cases = [
            (SessionError::from(HandshakeError::UnsupportedVersion(6)), "handshake"),
            (SessionError::from(ChunkError::InvalidChunkSize(0)), "chunk"),
            (SessionError::from(CommandError::NoName), "amf"),
            (SessionError::from(ProtocolError::SecondConnect), "protocol"),
            (SessionError::OutputFull { queued: 2, limit: 1 }, "output_full"),
        ];
        for (err, label) in cases {
            assert_eq!(err.kind().as_str(), label);
            assert_eq!(err.kind().to_string(), label);
        }
    }

    #[test]
    fn messages_keep_their_wording() {
        let err =
            SessionError::from(ProtocolError::UnknownStream { command: "play", stream_id: 3 });
        assert_eq!(err.to_string(), "protocol: play on message stream 3, which was not created");
        let err =
            SessionError::from(ProtocolError::from(AggregateError::TruncatedHeader { offset: 4 }));
        assert_eq!(
            err.to_string(),
            "protocol: aggregate: truncated sub-message header at offset 4"
        );
    }
}
