//! The client side of one RTMP connection (publisher or player) as a sans-IO state machine, used
//! by the load tool and tests. Same contract as [`crate::rtmp::server::ServerSession`]: feed
//! `receive`, drain `poll_event` and `poll_transmit`.
//!
//! The session drives the whole opening on its own: handshake, `connect`, `createStream`, then
//! `publish` or `play` (for publishing also `releaseStream` and `FCPublish`, as OBS does).

use bytes::Bytes;

use crate::frame::MediaMessage;
use crate::rtmp::server::ServerError;

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum ClientMode {
    Publish,
    Play,
}

#[derive(Debug, Clone)]
pub struct ClientConfig {
    pub app: String,
    pub tc_url: String,
    /// Stream name (may carry `?query`).
    pub stream: String,
    pub mode: ClientMode,
    /// Use the digest (complex) handshake.
    pub digest_handshake: bool,
    /// Outgoing chunk size announced after connect (publishers); `None` keeps 128.
    pub chunk_size: Option<u32>,
}

#[derive(Debug, Clone, PartialEq)]
pub enum ClientEvent {
    /// `connect` succeeded.
    Connected,
    /// NetStream.Publish.Start (publisher may now `send_media`).
    PublishStarted,
    /// NetStream.Play.Start.
    PlayStarted,
    /// Any onStatus (including the ones above), in arrival order.
    Status { level: String, code: String, description: String },
    /// `_error` answer to connect/createStream.
    CommandError { description: String },
    /// Media received while playing.
    Media(MediaMessage),
}

#[derive(Debug)]
pub struct ClientSession {}

impl ClientSession {
    /// Starts the handshake (C0+C1 queued for `poll_transmit`).
    pub fn new(config: ClientConfig, seed: [u8; 32]) -> Self {
        todo!()
    }

    pub fn receive(&mut self, data: &[u8]) -> Result<(), ServerError> {
        todo!()
    }

    pub fn poll_event(&mut self) -> Option<ClientEvent> {
        todo!()
    }

    pub fn poll_transmit(&mut self) -> Option<Bytes> {
        todo!()
    }

    /// Queue a media message (publisher, after `PublishStarted`).
    pub fn send_media(&mut self, message: &MediaMessage) {
        todo!()
    }

    /// Queue FCUnpublish + deleteStream (publisher) or deleteStream (player).
    pub fn close(&mut self) {
        todo!()
    }
}
