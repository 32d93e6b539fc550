//! CMAF segments of the segmenter remultiplexed to MPEG-TS (synthetic streams): the same
//! frames with the same times, tables per codec, discontinuities flagged, and bit flips in
//! real segments never panic.

mod hls_support;

use bytes::Bytes;
use hls_support::*;
use proptest::prelude::*;
use sluice_media::hls::{HlsConfig, Segment};
use sluice_media::ts::reader::read_ts;
use sluice_media::ts::{
    parse_fragment, remux_segment, AUDIO_PID, PTS_OFFSET, STREAM_TYPE_AAC_ADTS, STREAM_TYPE_H264,
    STREAM_TYPE_H265, VIDEO_PID,
};

fn config() -> HlsConfig {
    HlsConfig { stream_epoch_ms: Some(1_700_000_000_000), ..HlsConfig::default() }
}

#[test]
fn same_frames_and_times_as_the_cmaf_segment() {
    let (_, snap) = segmented(&Stream::default(), config());
    // 10 s with a keyframe every 2 s: four complete segments, the fifth still open.
    assert_eq!(snap.segments().len(), 4, "complete segments");
    for seg in snap.segments() {
        let init = snap.init(seg.init_id).unwrap();
        let ts = remux_segment(init, seg).unwrap();
        assert_eq!(ts.dropped_frames, 0);
        let c = read_ts(&ts.bytes).unwrap();
        assert_eq!(
            c.streams,
            vec![(STREAM_TYPE_H264, VIDEO_PID), (STREAM_TYPE_AAC_ADTS, AUDIO_PID)]
        );
        // Every CMAF sample, by track, in order.
        let samples: Vec<_> =
            seg.parts.iter().flat_map(|p| parse_fragment(&p.bytes).unwrap()).collect();
        let video: Vec<_> = samples.iter().filter(|s| s.track_id == 1).collect();
        let pes: Vec<_> = c.pes.iter().filter(|p| p.pid == VIDEO_PID).collect();
        assert_eq!(pes.len(), video.len());
        assert_eq!(pes.len() as u32, seg.video_frames);
        for (p, s) in pes.iter().zip(&video) {
            let dts = s.dts + PTS_OFFSET;
            assert_eq!(p.dts.unwrap_or(p.pts.unwrap()), dts);
            assert_eq!(p.pts, Some((dts as i64 + i64::from(s.cts)) as u64));
            assert_eq!(p.pcr, Some(s.dts));
            assert_eq!(p.random_access, s.key);
            // AUD, then (keyframes) SPS and PPS, then the frame's NAL unit.
            assert!(p.payload.starts_with(&[0, 0, 0, 1, 0x09, 0xF0]));
            let nal = &s.data[4..];
            assert!(p.payload.ends_with(nal));
            assert_eq!(p.payload.windows(5).any(|w| w == [0, 0, 0, 1, 0x67]), s.key);
        }
        assert_eq!(video.first().map(|s| s.dts), Some(seg.start));
        // Audio: every AAC frame, ADTS-framed, at the CMAF time converted to 90 kHz.
        let audio: Vec<_> = samples.iter().filter(|s| s.track_id == 2).collect();
        let adts: Vec<u8> =
            c.pes.iter().filter(|p| p.pid == AUDIO_PID).flat_map(|p| p.payload.clone()).collect();
        assert_eq!(adts.len(), audio.iter().map(|s| s.data.len() + 7).sum::<usize>());
        let first_audio = c.pes.iter().find(|p| p.pid == AUDIO_PID).unwrap();
        assert_eq!(first_audio.pts, Some(audio[0].dts * 90_000 / 48_000 + PTS_OFFSET));
    }
}

#[test]
fn discontinuity_is_flagged_and_hevc_gets_its_stream_type() {
    let mut seg = sluice_media::hls::Segmenter::new(config());
    feed(&mut seg, &Stream::default().messages());
    seg.end_of_stream();
    let mut msgs = vec![hevc_seq(10_000), aac_seq(10_000)];
    for n in 0..130u32 {
        let ts = 10_000 + n * 1000 / 30;
        msgs.push(hevc_frame(ts, n % 60 == 0, 1500));
        if n % 2 == 0 {
            msgs.push(aac_frame(ts, 200));
        }
    }
    feed(&mut seg, &msgs);
    let snap = seg.snapshot();
    let disc: Vec<&std::sync::Arc<Segment>> =
        snap.segments().iter().filter(|s| s.discontinuity).collect();
    assert_eq!(disc.len(), 1);
    let s = disc[0];
    let init = snap.init(s.init_id).unwrap();
    let c = read_ts(&remux_segment(init, s).unwrap().bytes).unwrap();
    assert_eq!(c.streams[0], (STREAM_TYPE_H265, VIDEO_PID));
    assert_eq!(c.pmt_version, Some((init.id % 32) as u8));
    let first_video = c.pes.iter().find(|p| p.pid == VIDEO_PID).unwrap();
    assert!(first_video.discontinuity && first_video.random_access);
    // H.265 AUD, then VPS (type 32).
    assert!(first_video.payload.starts_with(&[0, 0, 0, 1, 0x46, 0x01, 0x50, 0, 0, 0, 1, 0x40]));
    // Segments before the break are not flagged.
    let before = &snap.segments()[0];
    let c =
        read_ts(&remux_segment(snap.init(before.init_id).unwrap(), before).unwrap().bytes).unwrap();
    assert!(c.pes.iter().all(|p| !p.discontinuity));
}

#[test]
fn audio_only_segments_carry_pcr_on_audio() {
    let stream = Stream { video: false, ..Stream::default() };
    let (_, snap) = segmented(&stream, config());
    let seg = &snap.segments()[0];
    let c = read_ts(&remux_segment(snap.init(seg.init_id).unwrap(), seg).unwrap().bytes).unwrap();
    assert_eq!(c.streams, vec![(STREAM_TYPE_AAC_ADTS, AUDIO_PID)]);
    assert_eq!(c.pcr_pid, Some(AUDIO_PID));
    assert!(c.pes.iter().all(|p| p.pcr.is_some()));
}

proptest! {
    #![proptest_config(ProptestConfig::with_cases(256))]

    /// Bit flips and truncation anywhere in a real init or segment: an error or a segment,
    /// never a panic.
    #[test]
    fn corrupted_cmaf_never_panics(flips in prop::collection::vec((any::<prop::sample::Index>(), any::<u8>()), 1..8), in_init in any::<bool>(), cut in any::<prop::sample::Index>()) {
        let (_, snap) = segmented(&Stream { frames: 70, ..Stream::default() }, config());
        let seg = snap.segments()[0].as_ref().clone();
        let mut init = snap.init(seg.init_id).unwrap().as_ref().clone();
        let mut seg = seg;
        if in_init {
            let mut b = init.bytes.to_vec();
            for (i, x) in &flips {
                let at = i.index(b.len());
                b[at] ^= x | 1;
            }
            init.bytes = Bytes::from(b);
        } else {
            let mut part = seg.parts[0].as_ref().clone();
            let mut b = part.bytes.to_vec();
            for (i, x) in &flips {
                let at = i.index(b.len());
                b[at] ^= x | 1;
            }
            b.truncate(b.len() - cut.index(b.len() / 4 + 1));
            part.bytes = Bytes::from(b);
            seg.parts[0] = std::sync::Arc::new(part);
        }
        if let Ok(ts) = remux_segment(&init, &seg) {
            prop_assert!(read_ts(&ts.bytes).is_ok());
        }
    }
}
