//! Segmenter behaviour on synthetic streams: cut points, part limits, sample timing, B-frame
//! composition offsets, discontinuities, numbering across restarts, determinism, bounds.

mod hls_support;

use hls_support::*;
use sluice_media::frame::MediaKind;
use sluice_media::hls::{HlsConfig, HlsError, HlsSnapshot, ResumePoint, Segmenter, Track};

const T: u64 = 90_000;

fn all_parts(snap: &HlsSnapshot) -> Vec<std::sync::Arc<sluice_media::hls::Part>> {
    snap.segments()
        .iter()
        .chain(snap.open_segment())
        .flat_map(|s| s.parts.iter().cloned())
        .collect()
}

/// Parts and segments tile the timeline: each starts where the previous ended, durations add
/// up, indices are contiguous, msns increase by one.
fn assert_tiling(snap: &HlsSnapshot) {
    let mut prev_seg: Option<(u64, u64)> = None;
    for s in snap.segments() {
        if let Some((msn, end)) = prev_seg {
            assert_eq!(s.msn, msn + 1);
            if !s.discontinuity {
                assert_eq!(s.start, end, "segment {} starts where {} ended", s.msn, msn);
            }
        }
        let mut t = s.start;
        for (i, p) in s.parts.iter().enumerate() {
            assert_eq!((p.msn, p.index as usize), (s.msn, i));
            assert_eq!(p.start, t);
            t += p.duration;
        }
        assert_eq!(t, s.start + s.duration);
        prev_seg = Some((s.msn, t));
    }
}

#[test]
fn two_second_gop_gives_two_second_segments_of_half_second_parts() {
    let (_, snap) = segmented(&Stream::default(), HlsConfig::default());
    // 300 frames = 10 s: four complete segments, the fifth open (its last frame is pending).
    let segs = snap.segments();
    assert_eq!(segs.len(), 4);
    assert_tiling(&snap);
    for s in segs {
        assert_eq!(s.duration, 2 * T, "segment {}", s.msn);
        assert_eq!(s.parts.len(), 4);
        assert!(s.parts.iter().all(|p| p.duration == T / 2));
        assert!(s.parts[0].independent);
        assert!(s.parts[1..].iter().all(|p| !p.independent));
        assert_eq!(s.video_frames, 60);
    }
    assert_eq!(snap.target_duration(), 2);
    assert_eq!(segs.iter().map(|s| s.msn).collect::<Vec<_>>(), vec![0, 1, 2, 3]);
    assert_eq!(snap.open_segment().unwrap().msn, 4);
    let init = snap.current_init().unwrap();
    assert_eq!(init.codecs, "avc1.64001f,mp4a.40.2");
    assert_eq!(init.resolution, Some((1280, 720)));
    assert_eq!(&init.bytes[4..8], b"ftyp");
}

#[test]
fn long_gop_segments_follow_keyframes_and_target_duration_says_so() {
    let stream = Stream {
        gop: 150, // 5 s
        frames: 600,
        ..Stream::default()
    };
    let (_, snap) = segmented(&stream, HlsConfig::default());
    assert_tiling(&snap);
    let durations: Vec<u64> = snap.segments().iter().map(|s| s.duration).collect();
    assert_eq!(durations, vec![5 * T, 5 * T, 5 * T]);
    assert_eq!(snap.target_duration(), 5);
    for s in snap.segments() {
        assert!(s.parts.iter().all(|p| p.duration <= T / 2));
        assert_eq!(s.parts.len(), 10);
    }
}

#[test]
fn short_gop_segments_wait_for_the_target() {
    let stream = Stream {
        gop: 27, // 0.9 s
        frames: 600,
        ..Stream::default()
    };
    let (_, snap) = segmented(&stream, HlsConfig::default());
    assert_tiling(&snap);
    for s in snap.segments() {
        // First keyframe at or after 1.8 s: 2 GOPs = 1.8 s.
        assert_eq!(s.duration, 162_000, "segment {}", s.msn);
        // Parts restart at keyframes only by chance; each starts independent segments.
        assert!(s.parts[0].independent);
        assert!(s.parts.iter().all(|p| p.duration <= T / 2));
    }
}

#[test]
fn small_part_target_is_respected() {
    let config = HlsConfig { part_target_ms: 200, ..HlsConfig::default() };
    let (_, snap) = segmented(&Stream::default(), config);
    assert_tiling(&snap);
    let parts = all_parts(&snap);
    // 10 s of 30 fps video: 6 frames of 1/30 s fit a 0.2 s part exactly, so every part is
    // full; the last frame waits for its successor (its duration is not known yet), which
    // leaves 49 complete parts.
    assert_eq!(parts.len(), 49, "parts of 10 s at 0.2 s");
    assert!(parts.iter().all(|p| p.duration == 18_000), "every part is 0.2 s");
}

#[test]
fn fragments_carry_exact_timing_and_b_frame_offsets() {
    let (_, snap) = segmented(&Stream::default(), HlsConfig::default());
    let mut video_next = None;
    let mut audio_next = None;
    let mut seq = None;
    let mut video_samples = 0;
    for part in all_parts(&snap) {
        let (s, trafs, mdat) = parse_fragment(&part.bytes);
        if let Some(prev) = seq {
            assert_eq!(s, prev, "mfhd sequence numbers increase by one per fragment");
        }
        seq = Some(s + trafs.len() as u32);
        // Each track's fragment alone (what DASH serves) is that track's traf.
        let video = parse_fragment(&part.track(Track::Video)).1;
        let audio = parse_fragment(&part.track(Track::Audio)).1;
        assert!(video.iter().all(|t| t.track_id == 1) && audio.iter().all(|t| t.track_id == 2));
        assert_eq!(video.len() + audio.len(), trafs.len());
        let mut data = 0;
        for t in &trafs {
            let sizes: u32 = t.samples.iter().map(|x| x.1).sum();
            data += sizes as usize;
            let total: u64 = t.samples.iter().map(|x| u64::from(x.0)).sum();
            match t.track_id {
                1 => {
                    assert_eq!(t.trun_version, 1);
                    if let Some(n) = video_next {
                        assert_eq!(t.tfdt, n, "video tfdt continues");
                    }
                    video_next = Some(t.tfdt + total);
                    assert_eq!(t.tfdt, part.start);
                    assert_eq!(total, part.duration);
                    video_samples += t.samples.len();
                    // Sync flag exactly on the first sample of an independent part.
                    assert_eq!(t.samples[0].2 == 0x0200_0000, part.independent);
                    for (i, x) in t.samples.iter().enumerate() {
                        assert!(x.0 == 2970 || x.0 == 3060, "30 fps in ms: {}", x.0);
                        assert!([0, 2970, 2970 * 3].contains(&x.3) || x.3 % 90 == 0);
                        let _ = i;
                    }
                }
                2 => {
                    if let Some(n) = audio_next {
                        assert_eq!(t.tfdt, n, "audio tfdt continues");
                    }
                    assert!(t.samples.iter().all(|x| x.0 == 1024 && x.1 == 300));
                    audio_next = Some(t.tfdt + total);
                }
                other => panic!("track {other}"),
            }
        }
        assert_eq!(data, mdat);
    }
    // 300 frames: all but the open part (9.5 s on, 14 frames) and the pending last frame.
    assert_eq!(video_samples, 285);
    // Composition offsets: the pattern (33, 99, 0) ms -> 2970, 8910, 0 ticks.
    let first = parse_fragment(&all_parts(&snap)[0].bytes).1;
    let cts: Vec<i32> = first[0].samples.iter().take(3).map(|x| x.3).collect();
    assert_eq!(cts, vec![33 * 90, 99 * 90, 0]);
}

#[test]
fn determinism_same_input_same_bytes() {
    let stream = Stream { frames: 500, gop: 45, ..Stream::default() };
    let config = HlsConfig { stream_epoch_ms: Some(1_700_000_000_000), ..HlsConfig::default() };
    let (_, a) = segmented(&stream, config.clone());
    let (_, b) = segmented(&stream, config);
    assert_eq!(a.segments(), b.segments());
    assert_eq!(a.open_segment(), b.open_segment());
    assert_eq!(a.inits(), b.inits());
    let opts = sluice_media::hls::PlaylistOptions::default();
    assert_eq!(a.media_playlist(&opts), b.media_playlist(&opts));
    assert!(a
        .segments()
        .iter()
        .all(|s| s.program_date_time_ms == Some(1_700_000_000_000 + s.start / 90)));
}

#[test]
fn codec_change_makes_new_init_after_discontinuity() {
    let mut seg = Segmenter::new(HlsConfig::default());
    feed(&mut seg, &Stream { frames: 150, ..Stream::default() }.messages());
    // The same sequence header again changes nothing.
    let up = seg.push(&avc_seq(5000, &AVC_RECORD)).unwrap();
    assert!(up.is_empty());
    // Switch to H.265 at 5 s, no audio change.
    seg.push(&hevc_seq(5000)).unwrap();
    let before = seg.snapshot().segments().len();
    let up = seg.push(&hevc_frame(5000, true, 5000)).unwrap();
    assert!(up.init, "new init segment");
    assert_eq!(up.segments, 1, "the open segment was finished");
    for n in 1..90u32 {
        seg.push(&hevc_frame(5000 + n * 100 / 3, n % 60 == 0, 900)).unwrap();
    }
    let snap = seg.snapshot();
    let segs = snap.segments();
    assert_eq!(segs.len(), before + 2);
    // segs[before] is the H.264 segment that was open, finished by the change.
    let changed = &segs[before + 1];
    assert!(changed.discontinuity);
    assert_eq!(changed.discontinuity_sequence, 1);
    assert_eq!(changed.init_id, 1);
    assert_eq!(segs[before].init_id, 0);
    assert!(!segs[before].discontinuity);
    let open = snap.open_segment().unwrap();
    assert!(!open.discontinuity);
    assert_eq!(open.discontinuity_sequence, 1);
    assert_eq!(open.init_id, 1);
    assert_eq!(snap.inits().len(), 2);
    assert!(snap.current_init().unwrap().codecs.starts_with("hvc1.1.6.L93"));
    let text = snap.media_playlist(&Default::default());
    let p = check_playlist(&text);
    let disc: Vec<_> = p.segments.iter().filter(|s| s.3).collect();
    assert_eq!(disc.len(), 1);
    assert_eq!(disc[0].4.as_deref(), Some("init-1.mp4"));
    assert!(text.contains("#EXT-X-DISCONTINUITY\n#EXT-X-MAP:URI=\"init-1.mp4\""));
}

#[test]
fn publisher_restart_continues_numbers_and_time() {
    let mut seg = Segmenter::new(HlsConfig::default());
    feed(&mut seg, &Stream { frames: 200, ..Stream::default() }.messages());
    let up = seg.end_of_stream();
    assert_eq!(up.segments, 1, "the partial last segment is finished");
    let snap = seg.snapshot();
    let last = snap.segments().last().unwrap().clone();
    let end = last.start + last.duration;
    // The new publisher starts again at timestamp 0 (a hub that did not rebase).
    feed(&mut seg, &Stream { frames: 200, ..Stream::default() }.messages());
    let snap = seg.snapshot();
    let next = snap.segment(last.msn + 1).expect("numbering continues");
    assert!(next.discontinuity);
    // Media time continues from the end of the last output (audio may end a little later
    // than video), rounded up to a millisecond.
    assert!(next.start >= end && next.start - end < 3000, "{} vs {end}", next.start);
    assert_eq!(next.start % 90, 0);
    assert_eq!(next.init_id, 0, "same codecs: same init");
    assert_eq!(snap.inits().len(), 1);
    let first_part = parse_fragment(&next.parts[0].bytes).1;
    assert_eq!(first_part[0].tfdt, next.start);
    // Numbering of a fresh segmenter resuming from this one.
    let rp = seg.resume_point();
    let mut seg2 = Segmenter::new(HlsConfig { resume: Some(rp), ..HlsConfig::default() });
    feed(&mut seg2, &Stream::default().messages());
    let s2 = seg2.snapshot();
    let first = &s2.segments()[0];
    assert_eq!(first.msn, rp.next_msn);
    assert!(first.discontinuity);
    assert_eq!(first.discontinuity_sequence, rp.discontinuity_sequence + 1);
    assert_eq!(first.init_id, rp.next_init_id);
    assert!(first.start >= rp.min_time_ms * 90);
    assert_eq!(parse_fragment(&first.parts[0].bytes).0, rp.next_fragment_sequence);
}

#[test]
fn timestamps_wrapping_past_u32_keep_increasing() {
    let start = u32::MAX - 3000; // wraps after ~3 s
    let mut seg = Segmenter::new(HlsConfig::default());
    let msgs = Stream { start_ms: 0, ..Stream::default() }.messages();
    for m in &msgs {
        let mut m = m.clone();
        m.timestamp = m.timestamp.wrapping_add(start);
        seg.push(&m).unwrap();
    }
    let snap = seg.snapshot();
    assert_tiling(&snap);
    assert_eq!(snap.segments().len(), 4);
    assert!(snap.segments()[3].start > u64::from(u32::MAX) * 90);
}

#[test]
fn window_is_bounded_and_old_inits_pruned() {
    let config = HlsConfig { window_segments: 4, ..HlsConfig::default() };
    let mut seg = Segmenter::new(config);
    feed(&mut seg, &Stream { frames: 1200, ..Stream::default() }.messages());
    let snap = seg.snapshot();
    assert_eq!(snap.segments().len(), 4);
    assert_eq!(snap.segments()[0].msn, 15);
    assert!(snap.segment(14).is_none());
    assert!(snap.part(14, 0).is_none());
    assert!(snap.part(15, 0).is_some());
}

#[test]
fn audio_only_segments_cut_on_duration() {
    let stream = Stream { video: false, ..Stream::default() };
    let (_, snap) = segmented(&stream, HlsConfig::default());
    assert_tiling(&snap);
    assert_eq!(snap.current_init().unwrap().codecs, "mp4a.40.2");
    for s in snap.segments() {
        // 23 frames of 1024/48000 s per part, 4 parts per segment.
        assert!(s.parts.iter().all(|p| p.independent && p.duration <= T / 2));
        assert_eq!(s.parts.len(), 4);
        let secs = s.duration as f64 / T as f64;
        assert!((1.9..=2.0).contains(&secs), "{secs}");
    }
}

#[test]
fn video_only_and_waiting_for_a_keyframe() {
    let mut seg = Segmenter::new(HlsConfig::default());
    seg.push(&avc_seq(0, &AVC_RECORD)).unwrap();
    // Inter frames before the first keyframe are dropped.
    for n in 0..5 {
        seg.push(&avc_frame(n * 33, false, 0, 100)).unwrap();
    }
    assert_eq!(seg.dropped_samples(), 5);
    for n in 5..100u32 {
        seg.push(&avc_frame(n * 1000 / 30, n % 60 == 5, 0, 100)).unwrap();
    }
    let snap = seg.snapshot();
    assert_eq!(snap.current_init().unwrap().codecs, "avc1.64001f");
    let first = &snap.segments()[0];
    assert_eq!(first.start, 166 * 90);
    assert!(first.parts[0].independent);
}

#[test]
fn oversized_and_garbage_messages_are_refused_without_harm() {
    let config = HlsConfig { max_part_bytes: 10_000, ..HlsConfig::default() };
    let mut seg = Segmenter::new(config);
    feed(&mut seg, &Stream { frames: 10, ..Stream::default() }.messages());
    let err = seg.push(&avc_frame(400, false, 0, 20_000)).unwrap_err();
    assert!(matches!(err, HlsError::SampleTooLarge { .. }));
    assert!(seg.push(&msg(MediaKind::Video, 0, vec![])).is_err());
    assert!(seg.push(&msg(MediaKind::Video, 0, vec![0x17, 0x00, 0, 0, 0, 1])).is_err());
    assert!(seg.push(&msg(MediaKind::Audio, 0, vec![0xAF, 0x00, 0x00])).is_err());
    assert!(seg
        .push(&msg(MediaKind::Data, 0, b"\x02\x00\x0aonMetaData".to_vec()))
        .unwrap()
        .is_empty());
    // After the dropped frame, inter frames wait for the next keyframe.
    let before = seg.dropped_samples();
    seg.push(&avc_frame(433, false, 0, 100)).unwrap();
    assert_eq!(seg.dropped_samples(), before + 1);
}

#[test]
fn resume_point_default_is_a_fresh_stream() {
    let seg = Segmenter::new(HlsConfig::default());
    assert_eq!(seg.resume_point(), ResumePoint::default());
}
