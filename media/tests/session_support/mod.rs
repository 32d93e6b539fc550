//! Shared by the session tests: a decoder of one direction of a connection.
#![allow(dead_code)]

use sluice_media::rtmp::chunk::{ChunkDecoder, ChunkLimits, RawMessage};
use sluice_media::rtmp::control::ControlMessage;
use sluice_media::rtmp::handshake::HANDSHAKE_SIZE;
use sluice_media::rtmp::msg_type;

/// Bytes of handshake each side sends before chunks start (C0/S0 + C1/S1 + C2/S2).
pub const HANDSHAKE_BYTES: usize = 1 + 2 * HANDSHAKE_SIZE;

/// Decodes one direction of a connection from its first byte, to observe what was sent.
pub struct Monitor {
    skip: usize,
    decoder: ChunkDecoder,
    pub messages: Vec<RawMessage>,
}

impl Monitor {
    pub fn new() -> Self {
        Monitor {
            skip: HANDSHAKE_BYTES,
            decoder: ChunkDecoder::new(ChunkLimits::default()),
            messages: Vec::new(),
        }
    }

    pub fn feed(&mut self, mut data: &[u8]) {
        let skip = self.skip.min(data.len());
        self.skip -= skip;
        data = &data[skip..];
        self.decoder.push(data);
        while let Some(m) = self.decoder.next_message().expect("monitor decode") {
            if m.type_id == msg_type::SET_CHUNK_SIZE {
                if let Ok(ControlMessage::SetChunkSize(n)) =
                    ControlMessage::decode(m.type_id, &m.payload)
                {
                    self.decoder.set_chunk_size(n).unwrap();
                }
            }
            self.messages.push(m);
        }
    }

    pub fn controls(&self) -> Vec<ControlMessage> {
        self.messages
            .iter()
            .filter(|m| (1..=6).contains(&m.type_id))
            .map(|m| ControlMessage::decode(m.type_id, &m.payload).unwrap())
            .collect()
    }
}
