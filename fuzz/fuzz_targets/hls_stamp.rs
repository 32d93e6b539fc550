//! Fuzz `SegmentStamp::decode` (a stamp arrives from a peer over the relay). Checks:
//! - any bytes: never panics; decodes exactly when the input is `LEN` bytes, version 1, and
//!   its three presence/flag bytes are 0 or 1;
//! - a decoded stamp re-encodes to the input bytes, except the value bytes of an absent
//!   optional field (written as zeros), and `decode(encode(s)) == s`;
//! - built stamps (any field values) round-trip.
//!
//! Input: `[mode][bytes...]`; mode bit 0 set builds a stamp from the bytes instead.
#![no_main]

use libfuzzer_sys::arbitrary::{Result, Unstructured};
use libfuzzer_sys::fuzz_target;
use sluice_media::hls::SegmentStamp;

/// Offsets in the version-1 layout.
const DISCONTINUITY: usize = 17;
const HAS_EPOCH: usize = 34;
const EPOCH: std::ops::Range<usize> = 35..43;
const HAS_AUDIO: usize = 59;
const AUDIO: std::ops::Range<usize> = 60..68;

fn build(u: &mut Unstructured<'_>) -> Result<SegmentStamp> {
    Ok(SegmentStamp {
        msn: u.arbitrary()?,
        discontinuity_sequence: u.arbitrary()?,
        discontinuity: u.arbitrary()?,
        init_id: u.arbitrary()?,
        fragment_sequence: u.arbitrary()?,
        start_ticks: u.arbitrary()?,
        epoch_ms: u.arbitrary()?,
        target_duration_s: u.arbitrary()?,
        max_part_ticks: u.arbitrary()?,
        audio_next_dts: u.arbitrary()?,
    })
}

fuzz_target!(|data: &[u8]| {
    let Some((&mode, bytes)) = data.split_first() else {
        return;
    };
    if mode & 1 == 1 {
        let Ok(s) = build(&mut Unstructured::new(bytes)) else {
            return;
        };
        let e = s.encode();
        assert_eq!(e.len(), SegmentStamp::LEN);
        assert_eq!(SegmentStamp::decode(&e), Some(s));
        return;
    }
    let decoded = SegmentStamp::decode(bytes);
    let valid = bytes.len() == SegmentStamp::LEN
        && bytes[0] == 1
        && [DISCONTINUITY, HAS_EPOCH, HAS_AUDIO]
            .iter()
            .all(|&i| bytes[i] <= 1);
    assert_eq!(
        decoded.is_some(),
        valid,
        "decodes iff length, version and flags are valid"
    );
    let Some(s) = decoded else { return };
    let e = s.encode();
    assert_eq!(SegmentStamp::decode(&e), Some(s));
    let mut expected = bytes.to_vec();
    if bytes[HAS_EPOCH] == 0 {
        expected[EPOCH].fill(0);
    }
    if bytes[HAS_AUDIO] == 0 {
        expected[AUDIO].fill(0);
    }
    assert_eq!(&e[..], &expected[..], "re-encoding changed bytes");
});
