//! Fuzz the CMAF -> MPEG-TS remux (`sluice_media::ts::remux_segment`) with arbitrary init and
//! fragment bytes (normally our segmenter's, but they must be safe against anything). Checks:
//! - never panics, whatever the boxes claim;
//! - on success the output is whole 188-byte packets that the strict reader
//!   (`ts::reader::read_ts`) accepts, with a PAT and a PMT announcing at least one stream;
//! - the remux is a pure function (same input, same bytes).
//!
//! Input: `[flags][init len u16 BE][init][part len u16 BE][part]...` (lengths are clamped to
//! what is left; at most 16 parts). Flags bit 0: discontinuity; the rest: init id and msn.
#![no_main]

use std::sync::Arc;

use bytes::Bytes;
use libfuzzer_sys::fuzz_target;
use sluice_media::hls::{InitSegment, Part, Segment};
use sluice_media::ts::reader::read_ts;
use sluice_media::ts::{remux_segment, PACKET_SIZE};

const MAX_PARTS: usize = 16;

/// Takes a u16-length-prefixed chunk off the front of `data` (clamped to what is left).
fn take<'a>(data: &mut &'a [u8]) -> Option<&'a [u8]> {
    let [a, b, rest @ ..] = *data else {
        return None;
    };
    let n = usize::from(u16::from_be_bytes([*a, *b])).min(rest.len());
    let (chunk, after) = rest.split_at(n);
    *data = after;
    Some(chunk)
}

fuzz_target!(|data: &[u8]| {
    let Some((&flags, mut rest)) = data.split_first() else {
        return;
    };
    let Some(init_bytes) = take(&mut rest) else {
        return;
    };
    let init = InitSegment {
        id: u32::from(flags >> 1),
        bytes: Bytes::copy_from_slice(init_bytes),
        codecs: String::new(),
        resolution: None,
        frame_rate: None,
        has_video: true,
        has_audio: true,
    };
    let msn = u64::from(flags >> 1) * 1_000_003;
    let mut parts = Vec::new();
    while parts.len() < MAX_PARTS {
        let Some(p) = take(&mut rest) else { break };
        parts.push(Arc::new(Part {
            msn,
            index: parts.len() as u32,
            start: 0,
            duration: 0,
            independent: parts.is_empty(),
            bytes: Bytes::copy_from_slice(p),
        }));
    }
    let segment = Segment {
        msn,
        start: 0,
        duration: 0,
        parts,
        discontinuity: flags & 1 != 0,
        discontinuity_sequence: 0,
        init_id: init.id,
        program_date_time_ms: None,
        video_frames: 0,
        complete: true,
    };
    let Ok(ts) = remux_segment(&init, &segment) else {
        return;
    };
    assert_eq!(ts.bytes.len() % PACKET_SIZE, 0, "partial packet");
    let contents = match read_ts(&ts.bytes) {
        Ok(c) => c,
        Err(e) => panic!("the strict reader refuses the remux output: {e}"),
    };
    assert!(contents.pmt_pid.is_some(), "no PAT");
    assert!(!contents.streams.is_empty(), "no stream in the PMT");
    assert_eq!(
        remux_segment(&init, &segment).ok(),
        Some(ts),
        "not deterministic"
    );
});
