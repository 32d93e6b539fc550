//! Property tests of the MPEG-TS muxer: arbitrary frames and arbitrary CMAF bytes never
//! panic, and whatever is written reads back as well-formed packets with continuous
//! counters and the frames' exact payloads and timestamps.

use std::sync::Arc;

use bytes::Bytes;
use proptest::prelude::*;
use sluice_media::hls::{InitSegment, Part, Segment};
use sluice_media::ts::annexb::AnnexBConfig;
use sluice_media::ts::reader::read_ts;
use sluice_media::ts::{
    parse_fragment, parse_init, remux_segment, TsAudio, TsVideo, TsWriter, AUDIO_PID, PACKET_SIZE,
    PTS_OFFSET, TIMESTAMP_MASK, VIDEO_PID,
};

fn video() -> TsVideo {
    TsVideo {
        config: AnnexBConfig {
            hevc: false,
            nal_length_size: 4,
            parameter_sets: vec![
                Bytes::from_static(&[0x67, 0x42]),
                Bytes::from_static(&[0x68, 0xCE]),
            ],
        },
    }
}

#[derive(Debug, Clone)]
enum Frame {
    Video { dts: u64, cts: i32, key: bool, data: Vec<u8> },
    Audio { pts: u64, data: Vec<u8> },
}

fn frame() -> impl Strategy<Value = Frame> {
    prop_oneof![
        (
            any::<u64>(),
            -100_000i32..100_000,
            any::<bool>(),
            prop::collection::vec(any::<u8>(), 0..3000)
        )
            .prop_map(|(dts, cts, key, data)| Frame::Video { dts, cts, key, data }),
        (any::<u64>(), prop::collection::vec(any::<u8>(), 0..9000))
            .prop_map(|(pts, data)| Frame::Audio { pts, data }),
    ]
}

/// A well-formed access unit: NAL units with 4-byte length prefixes.
fn access_unit(nals: &[Vec<u8>]) -> Vec<u8> {
    let mut v = Vec::new();
    for n in nals {
        v.extend_from_slice(&(n.len() as u32).to_be_bytes());
        v.extend_from_slice(n);
    }
    v
}

fn segment(parts: Vec<Bytes>) -> Segment {
    Segment {
        msn: 3,
        start: 0,
        duration: 90_000,
        parts: parts
            .into_iter()
            .enumerate()
            .map(|(i, bytes)| {
                Arc::new(Part {
                    msn: 3,
                    index: i as u32,
                    start: 0,
                    duration: 45_000,
                    independent: i == 0,
                    video_len: bytes.len(),
                    bytes,
                })
            })
            .collect(),
        discontinuity: false,
        discontinuity_sequence: 0,
        init_id: 1,
        program_date_time_ms: None,
        video_frames: 0,
        first_cts: 0,
        complete: true,
    }
}

proptest! {
    #![proptest_config(ProptestConfig::with_cases(256))]

    /// Arbitrary bytes as frames: no panic; the output is always well-formed TS.
    #[test]
    fn arbitrary_frames_never_panic(frames in prop::collection::vec(frame(), 0..20), seq in any::<u64>()) {
        let mut w = TsWriter::new(Some(video()), Some(TsAudio::aac(&[0x11, 0x90]).unwrap()), seq, 0, seq % 2 == 0);
        let mut accepted = 0;
        for f in &frames {
            let ok = match f {
                Frame::Video { dts, cts, key, data } => w.video(*dts, *cts, *key, data).is_ok(),
                Frame::Audio { pts, data } => w.audio(*pts, data).is_ok(),
            };
            accepted += usize::from(ok);
        }
        prop_assert_eq!(w.dropped_frames() as usize, frames.len() - accepted);
        let out = w.finish();
        prop_assert_eq!(out.len() % PACKET_SIZE, 0);
        let c = read_ts(&out).unwrap();
        prop_assert_eq!(c.cc_errors, 0);
    }

    /// Well-formed frames read back exactly: payloads (Annex B / ADTS), timestamps, and
    /// every elementary PID ends at continuity counter 15.
    #[test]
    fn frames_round_trip(
        aus in prop::collection::vec((prop::collection::vec(prop::collection::vec(any::<u8>(), 1..700), 1..4), any::<bool>(), 0i32..9000), 1..12),
        audio_sizes in prop::collection::vec(1usize..1500, 0..12),
        start in 0u64..(1 << 34),
    ) {
        let mut w = TsWriter::new(Some(video()), Some(TsAudio::aac(&[0x11, 0x90]).unwrap()), 0, 0, false);
        let mut expect_video = Vec::new();
        for (i, (nals, key, cts)) in aus.iter().enumerate() {
            let dts = start + i as u64 * 3000;
            let au = access_unit(nals);
            w.video(dts, *cts, *key, &au).unwrap();
            let mut annexb = Vec::new();
            video().config.convert(&au, *key, &mut annexb).unwrap();
            expect_video.push((dts, *cts, annexb));
            if let Some(&n) = audio_sizes.get(i) {
                w.audio(dts, &vec![0x5A; n]).unwrap();
            }
        }
        let c = read_ts(&w.finish()).unwrap();
        prop_assert_eq!(c.cc_errors, 0);
        let v: Vec<_> = c.pes.iter().filter(|p| p.pid == VIDEO_PID).collect();
        prop_assert_eq!(v.len(), expect_video.len());
        for (p, (dts, cts, annexb)) in v.iter().zip(&expect_video) {
            prop_assert_eq!(&p.payload, annexb);
            prop_assert_eq!(p.pcr, Some(dts & TIMESTAMP_MASK));
            prop_assert_eq!(p.pts, Some((dts + PTS_OFFSET + *cts as u64) & TIMESTAMP_MASK));
            let want_dts = (*cts != 0).then_some((dts + PTS_OFFSET) & TIMESTAMP_MASK);
            prop_assert_eq!(p.dts, want_dts);
        }
        let audio_bytes: usize = c.pes.iter().filter(|p| p.pid == AUDIO_PID).map(|p| p.payload.len()).sum();
        let n_audio = audio_sizes.len().min(aus.len());
        prop_assert_eq!(audio_bytes, audio_sizes[..n_audio].iter().map(|n| n + 7).sum::<usize>());
        for (pid, first, last) in &c.counters {
            if *pid == VIDEO_PID || *pid == AUDIO_PID {
                prop_assert_eq!((*first, *last), (0, 15));
            }
        }
    }

    /// Arbitrary bytes as CMAF init segments and fragments: errors, never panics.
    #[test]
    fn arbitrary_cmaf_never_panics(init in prop::collection::vec(any::<u8>(), 0..400), frag in prop::collection::vec(any::<u8>(), 0..400)) {
        let _ = parse_init(&init);
        let frag = Bytes::from(frag);
        let _ = parse_fragment(&frag);
        let init = InitSegment {
            id: 1,
            bytes: Bytes::from(init),
            codecs: String::new(),
            resolution: None,
            frame_rate: None,
            has_video: true,
            has_audio: true,
            video_track: None,
            audio_track: None,
        };
        let _ = remux_segment(&init, &segment(vec![frag]));
        let _ = read_ts(&init.bytes);
    }
}
