//! Pieces shared by the server and client sessions: the outgoing byte queue with its chunk
//! encoder, and acknowledgement bookkeeping.

use bytes::{Bytes, BytesMut};

use crate::rtmp::chunk::ChunkEncoder;
use crate::rtmp::control::{ControlMessage, UserControlEvent};
use crate::rtmp::{csid, msg_type};

/// Everything a session has queued to send, and the encoder that compresses its headers.
///
/// A session only ever writes on [`csid::CONTROL`] and [`csid::COMMAND`] through this encoder,
/// so bytes written on the media csids by someone else never disturb its header compression.
#[derive(Debug, Default)]
pub(crate) struct Output {
    pub encoder: ChunkEncoder,
    pub buf: BytesMut,
}

impl Output {
    /// A protocol control or user control message (chunk stream 2, message stream 0).
    pub fn control(&mut self, message: ControlMessage) {
        let (type_id, payload) = message.encode();
        self.encoder.encode(csid::CONTROL, 0, type_id, 0, &payload, &mut self.buf);
    }

    /// A user control event.
    pub fn user_control(&mut self, event: UserControlEvent) {
        self.control(ControlMessage::UserControl(event));
    }

    /// An AMF0 command message (type 20) on the command chunk stream.
    pub fn command(&mut self, stream_id: u32, payload: &[u8]) {
        self.encoder.encode(
            csid::COMMAND,
            0,
            msg_type::COMMAND_AMF0,
            stream_id,
            payload,
            &mut self.buf,
        );
    }

    /// An AMF0 data message (type 18) of the session's own (not media) on the command chunk
    /// stream.
    pub fn data(&mut self, stream_id: u32, payload: &[u8]) {
        self.encoder.encode(
            csid::COMMAND,
            0,
            msg_type::DATA_AMF0,
            stream_id,
            payload,
            &mut self.buf,
        );
    }

    /// Everything queued so far as one buffer. The allocation goes with it: an idle session
    /// keeps no spare capacity (a handshake's 3 KB would otherwise stay behind every player).
    pub fn take(&mut self) -> Option<Bytes> {
        if self.buf.is_empty() {
            None
        } else {
            Some(std::mem::take(&mut self.buf).freeze())
        }
    }
}

/// When to send Acknowledgement: after `window` bytes received since the last one.
#[derive(Debug)]
pub(crate) struct AckState {
    /// The peer's Window Acknowledgement Size (or our default); `None` sends no acknowledgements.
    pub window: Option<u32>,
    last_ack: u64,
}

impl AckState {
    pub fn new(window: Option<u32>) -> Self {
        AckState { window, last_ack: 0 }
    }

    /// Apply the peer's Window Acknowledgement Size (0 is ignored: it would mean "acknowledge
    /// every byte").
    pub fn set_window(&mut self, size: u32) {
        if size > 0 {
            self.window = Some(size);
        }
    }

    /// If an acknowledgement is due at `total` bytes received, the sequence number to send.
    pub fn due(&mut self, total: u64) -> Option<u32> {
        let window = u64::from(self.window?);
        if total.saturating_sub(self.last_ack) >= window {
            self.last_ack = total;
            // The sequence number is the byte count modulo 2^32.
            Some(total as u32)
        } else {
            None
        }
    }
}
