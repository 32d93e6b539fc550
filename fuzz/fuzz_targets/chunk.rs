//! Fuzz the RTMP chunk decoder: input split in two pieces (the first byte picks the split),
//! Set Chunk Size messages applied as a session would, messages drained until more input is
//! needed or an error. Must never panic nor exceed its limits.
#![no_main]

use libfuzzer_sys::fuzz_target;
use sluice_media::rtmp::chunk::{ChunkDecoder, ChunkLimits};
use sluice_media::rtmp::control::ControlMessage;
use sluice_media::rtmp::msg_type;

const LIMITS: ChunkLimits =
    ChunkLimits { max_message_size: 64 * 1024, max_reassembly_bytes: 128 * 1024, max_chunk_streams: 8 };

fuzz_target!(|data: &[u8]| {
    let Some((&split, data)) = data.split_first() else { return };
    let cut = usize::from(split).saturating_mul(data.len()) / 255;
    let mut decoder = ChunkDecoder::new(LIMITS);
    for piece in [&data[..cut], &data[cut..]] {
        decoder.push(piece);
        loop {
            match decoder.next_message() {
                Ok(Some(message)) => {
                    assert!(message.payload.len() <= LIMITS.max_message_size);
                    if message.type_id == msg_type::SET_CHUNK_SIZE {
                        if let Ok(ControlMessage::SetChunkSize(size)) =
                            ControlMessage::decode(message.type_id, &message.payload)
                        {
                            if decoder.set_chunk_size(size).is_err() {
                                return;
                            }
                        }
                    } else if message.type_id == msg_type::ABORT {
                        if let Ok(ControlMessage::Abort { csid }) =
                            ControlMessage::decode(message.type_id, &message.payload)
                        {
                            decoder.abort(csid);
                        }
                    }
                }
                Ok(None) => break,
                Err(_) => return,
            }
            assert!(decoder.reassembly_bytes() <= LIMITS.max_reassembly_bytes);
        }
    }
});
