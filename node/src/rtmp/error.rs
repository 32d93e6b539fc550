//! Why an RTMP connection ended, and the metric kind each reason counts as.

use sluice_media::rtmp::SessionError;
use std::io;

use crate::metrics::ErrorKind;

/// Why a connection ended.
#[derive(Debug, thiserror::Error)]
pub enum ConnectionError {
    #[error(transparent)]
    Session(#[from] SessionError),
    #[error("i/o: {0}")]
    Io(#[from] io::Error),
    #[error("{0}")]
    Timeout(&'static str),
    /// The peer's write queue reached `--max-output-queue`.
    #[error("output queue full: {queued} bytes queued, limit {limit}")]
    OutputFull { queued: usize, limit: usize },
    /// The publisher's media was refused by the hub.
    #[error(transparent)]
    Media(#[from] crate::hub::PushError),
}

impl ConnectionError {
    /// A peer that went away (reset, broken pipe): a normal end, not an error to count.
    pub fn is_disconnect(&self) -> bool {
        matches!(self, ConnectionError::Io(e) if matches!(e.kind(), io::ErrorKind::ConnectionReset | io::ErrorKind::BrokenPipe | io::ErrorKind::UnexpectedEof))
    }

    pub fn kind(&self) -> ErrorKind {
        match self {
            ConnectionError::Session(e) => e.kind().into(),
            ConnectionError::Io(_) => ErrorKind::Io,
            ConnectionError::Timeout(_) => ErrorKind::Timeout,
            ConnectionError::OutputFull { .. } => ErrorKind::OutputFull,
            ConnectionError::Media(_) => ErrorKind::Media,
        }
    }
}
