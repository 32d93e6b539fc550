//! A follower segmenter started from the ingest's segment stamp produces the ingest's HLS:
//! same segments, parts (byte for byte), numbers, init segment and program date-times, even
//! when the follower's input timeline is shifted (a relay hop rebased the timestamps).

mod hls_support;

use hls_support::*;
use sluice_media::frame::MediaMessage;
use sluice_media::hls::{HlsConfig, PlaylistOptions, ResumePoint, SegmentStamp, Segmenter};

fn config(epoch: Option<u64>) -> HlsConfig {
    HlsConfig { window_segments: 100, stream_epoch_ms: epoch, ..HlsConfig::default() }
}

fn shifted(m: &MediaMessage, by: u32) -> MediaMessage {
    MediaMessage { kind: m.kind, timestamp: m.timestamp - by, payload: m.payload.clone() }
}

/// Feeds `msgs`, returning the stamps the segmenter reported, with the index of the message
/// that opened each segment.
fn feed_stamped(seg: &mut Segmenter, msgs: &[MediaMessage]) -> Vec<(usize, SegmentStamp)> {
    let mut stamps = Vec::new();
    for (i, m) in msgs.iter().enumerate() {
        seg.push(m).unwrap();
        if let Some(s) = seg.take_opened() {
            stamps.push((i, s));
        }
    }
    stamps
}

#[test]
fn a_follower_reproduces_the_ingests_segments_from_a_stamp() {
    let stream = Stream { start_ms: 7000, frames: 600, gop: 60, ..Stream::default() };
    let msgs = stream.messages();
    let mut ingest_cfg = config(Some(1_790_000_000_000));
    ingest_cfg.resume =
        Some(ResumePoint { next_msn: 5000, next_init_id: 77, ..ResumePoint::default() });
    let mut ingest = Segmenter::new(ingest_cfg);
    let stamps = feed_stamped(&mut ingest, &msgs);
    // 600 frames at 30 fps with a keyframe every 60: ten segments, each opened with a stamp.
    assert_eq!(stamps.len(), 10, "one stamp per segment");
    assert_eq!(stamps[0].1.msn, 5000, "numbered from the resume point");
    assert!(
        stamps.windows(2).all(|w| w[1].1.msn == w[0].1.msn + 1),
        "stamps number segments in order"
    );
    assert_eq!(take_none(&mut ingest), None, "a stamp is reported once");

    // The follower joins at the third segment, on a timeline shifted by 5 s.
    let (at, stamp) = stamps[2];
    let shift = 5000;
    let headers: Vec<MediaMessage> = msgs.iter().take(2).map(|m| shifted(m, shift)).collect();
    let mut follower = Segmenter::follow(config(None), &stamp, msgs[at].timestamp - shift);
    feed(&mut follower, &headers);
    let mut own = Vec::new();
    for m in &msgs[at..] {
        follower.push(&shifted(m, shift)).unwrap();
        own.extend(follower.take_opened());
    }
    let theirs: Vec<SegmentStamp> = stamps[2..].iter().map(|(_, s)| *s).collect();
    assert_eq!(own, theirs, "the follower opens the same segments at the same times");

    let (a, b) = (ingest.snapshot(), follower.snapshot());
    assert_eq!(a.current_init().unwrap().bytes, b.current_init().unwrap().bytes, "init segment");
    assert_eq!(a.current_init().unwrap().id, b.current_init().unwrap().id, "init id");
    // The follower joined at the third of ten segments; the tenth is still open.
    let msns: Vec<u64> = b.segments().iter().map(|s| s.msn).collect();
    assert_eq!(msns, (5002..5009).collect::<Vec<u64>>(), "the follower's complete segments");
    for seg in b.segments() {
        let same =
            a.segments().iter().find(|s| s.msn == seg.msn).expect("segment in the ingest's window");
        let head = |s: &sluice_media::hls::Segment| {
            (
                s.msn,
                s.start,
                s.duration,
                s.discontinuity,
                s.discontinuity_sequence,
                s.init_id,
                s.program_date_time_ms,
                s.parts.len(),
            )
        };
        assert_eq!(head(seg), head(same), "segment {} numbering, times and date", seg.msn);
        for (p, q) in seg.parts.iter().zip(&same.parts) {
            assert_eq!(
                (p.start, p.duration, p.independent, p.bytes.len()),
                (q.start, q.duration, q.independent, q.bytes.len()),
                "part {}.{}",
                p.msn,
                p.index
            );
            assert!(p.bytes == q.bytes, "part {}.{} bytes differ", p.msn, p.index);
        }
    }
    assert_eq!(a.open_segment().map(|s| s.msn), b.open_segment().map(|s| s.msn));
    assert!(
        b.segments()[0].program_date_time_ms.is_some(),
        "the follower dates segments with the stamp's epoch"
    );
}

fn take_none(seg: &mut Segmenter) -> Option<SegmentStamp> {
    seg.take_opened()
}

/// A stamp from a peer at the edge of what counts as plausible still segments without
/// overflowing anything (the numbers only grow by one per segment).
#[test]
fn a_follower_at_the_plausible_limits_does_not_overflow() {
    let stream = Stream { frames: 200, ..Stream::default() };
    let msgs = stream.messages();
    let limit = (1u64 << 53) - 1;
    let stamp = SegmentStamp {
        msn: limit,
        discontinuity_sequence: limit,
        discontinuity: true,
        init_id: u32::MAX,
        fragment_sequence: u32::MAX,
        start_ticks: limit,
        epoch_ms: Some(253_402_300_799_999),
        target_duration_s: 3600,
        max_part_ticks: limit,
        audio_next_dts: Some(limit),
    };
    assert!(stamp.is_plausible());
    let key_at = msgs
        .iter()
        .position(|m| m.kind == sluice_media::frame::MediaKind::Video && m.payload.len() > 5)
        .unwrap();
    let mut follower = Segmenter::follow(config(None), &stamp, msgs[key_at].timestamp);
    feed(&mut follower, &msgs[..2]);
    for (i, m) in msgs[key_at..].iter().enumerate() {
        follower.push(m).unwrap_or_else(|e| panic!("message {i} after the keyframe: {e}"));
    }
    follower.end_of_stream();
    let snap = follower.snapshot();
    // 200 frames at 30 fps with a keyframe every 60: four segments (the last one cut at the
    // end of the stream), numbered on from the stamp's.
    let msns: Vec<u64> = snap.segments().iter().map(|s| s.msn).collect();
    assert_eq!(msns, vec![limit, limit + 1, limit + 2, limit + 3], "segment numbers");
    let text = snap.media_playlist(&PlaylistOptions::default());
    assert!(text.contains(&format!("#EXT-X-MEDIA-SEQUENCE:{limit}")), "{text}");
    let _ = snap.reload_status(u64::MAX, Some(u32::MAX));
    let _ = snap.bandwidth();
}
