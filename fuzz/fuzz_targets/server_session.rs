//! Fuzz the whole RTMP server session after a valid handshake: arbitrary chunk-stream bytes in
//! arbitrary pieces, every event answered the way a driver would (accept or refuse, chosen by
//! the input), output taken after each piece. The session must never panic, and what one
//! `receive` queues must stay within `max_output_bytes` (plus one acknowledgement).
#![no_main]

use bytes::BytesMut;
use libfuzzer_sys::fuzz_target;
use sluice_media::rtmp::handshake::ClientHandshake;
use sluice_media::rtmp::server::{ServerConfig, ServerEvent, ServerSession};

const MAX_OUTPUT: usize = 16 * 1024;

fuzz_target!(|data: &[u8]| {
    let Some((&choices, data)) = data.split_first() else { return };
    let config = ServerConfig { max_output_bytes: MAX_OUTPUT, ..ServerConfig::default() };
    let mut server = ServerSession::new(config, [1; 32], 0);
    let mut c01 = BytesMut::new();
    let mut client = ClientHandshake::new([2; 32], 0, choices & 1 == 1, &mut c01);
    server.receive(&c01).expect("valid C0+C1");
    let mut s012 = BytesMut::from(&server.poll_transmit().expect("S0+S1+S2")[..]);
    let mut c2 = BytesMut::new();
    assert!(client.receive(&mut s012, &mut c2).expect("valid S0+S1+S2"));
    server.receive(&c2).expect("valid C2");
    // Pieces of 1..=64 bytes, sized by the input itself.
    let piece = usize::from(choices >> 2) + 1;
    for part in data.chunks(piece) {
        if server.receive(part).is_err() {
            return;
        }
        if let Some(out) = server.poll_transmit() {
            assert!(out.len() <= MAX_OUTPUT + 64, "{} bytes queued by one receive", out.len());
        }
        while let Some(event) = server.poll_event() {
            match event {
                ServerEvent::Connect { .. } if choices & 2 == 0 => server.accept_connect(),
                ServerEvent::Connect { .. } => server.reject_connect("refused"),
                ServerEvent::Publish { stream_id, name, .. } => {
                    server.accept_publish(stream_id, &name)
                }
                ServerEvent::Play { stream_id, name, reset, .. } if name.len() % 2 == 0 => {
                    server.accept_play(stream_id, &name, reset);
                }
                ServerEvent::Play { stream_id, name, .. } => {
                    server.play_not_found(stream_id, &name)
                }
                _ => {}
            }
        }
        let _ = server.poll_transmit();
    }
});
