//! Fuzz the RTMP server handshake: arbitrary client bytes, split at an arbitrary point.
#![no_main]

use bytes::BytesMut;
use libfuzzer_sys::fuzz_target;
use sluice_media::rtmp::handshake::{ServerHandshake, HANDSHAKE_SIZE};

fuzz_target!(|data: &[u8]| {
    let split = data.first().map_or(0, |&b| b as usize * 16).min(data.len());
    let mut hs = ServerHandshake::new([1; 32], 0);
    let mut out = BytesMut::new();
    let mut input = BytesMut::new();
    let mut consumed_all = false;
    for part in [&data[..split], &data[split..]] {
        input.extend_from_slice(part);
        match hs.receive(&mut input, &mut out) {
            Ok(true) => {
                consumed_all = true;
                break;
            }
            Ok(false) => assert!(input.is_empty(), "unfinished handshake left bytes unconsumed"),
            Err(_) => return,
        }
    }
    assert!(out.is_empty() || out.len() == 1 + 2 * HANDSHAKE_SIZE);
    if consumed_all {
        // Everything after C0+C1+C2 stays for the chunk decoder.
        assert_eq!(input.len(), data.len() - (1 + 2 * HANDSHAKE_SIZE));
    }
});
