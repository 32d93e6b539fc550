//! A CMAF segment of the HLS segmenter, remultiplexed into one MPEG-TS segment.

use bytes::Bytes;

use super::cmaf::{parse_fragment, parse_init, FragmentSample, InitTrack};
use super::writer::{TsAudio, TsVideo, TsWriter};
use super::TsError;
use crate::hls::{InitSegment, Segment, TICKS_PER_SECOND};

/// One TS segment.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct TsSegment {
    pub bytes: Bytes,
    /// Frames left out: malformed, or of a codec MPEG-TS output does not carry (Opus).
    pub dropped_frames: u64,
}

fn video_stream(t: &InitTrack) -> Result<TsVideo, TsError> {
    match &t.sample_entry {
        b"avc1" | b"avc3" => TsVideo::h264(&t.config),
        b"hvc1" | b"hev1" => TsVideo::h265(&t.config),
        _ => Err(TsError::Unsupported("video codec other than H.264/H.265")),
    }
}

/// `t` in `timescale` units on the 90 kHz clock.
fn to_90k(t: i128, timescale: u32) -> i128 {
    t * i128::from(TICKS_PER_SECOND) / i128::from(timescale.max(1))
}

/// Convert `segment` (whose fragments need `init`) to MPEG-TS: the same samples in decoding
/// order, video and audio interleaved by time, on the same 90 kHz media clock. Audio other
/// than AAC is left out (and counted in `dropped_frames`).
pub fn remux_segment(init: &InitSegment, segment: &Segment) -> Result<TsSegment, TsError> {
    let tracks = parse_init(&init.bytes)?;
    let video = tracks.video.as_ref().map(video_stream).transpose()?;
    let audio = match &tracks.audio {
        Some(t) if &t.sample_entry == b"mp4a" => Some(TsAudio::aac(&t.config)?),
        _ => None,
    };
    if video.is_none() && audio.is_none() {
        return Err(TsError::Unsupported("no track MPEG-TS output carries"));
    }
    let video_track = tracks.video.as_ref().filter(|_| video.is_some());
    let audio_track = tracks.audio.as_ref().filter(|_| audio.is_some());
    let mut samples: Vec<(i128, bool, FragmentSample)> = Vec::new();
    let mut dropped = 0u64;
    for part in &segment.parts {
        for s in parse_fragment(&part.bytes)? {
            if let Some(t) = video_track.filter(|t| t.track_id == s.track_id) {
                samples.push((to_90k(s.dts.into(), t.timescale), true, s));
            } else if let Some(t) = audio_track.filter(|t| t.track_id == s.track_id) {
                samples.push((to_90k(s.dts.into(), t.timescale), false, s));
            } else {
                dropped += 1;
            }
        }
    }
    // Stable: each track stays in decoding order; video first at equal times.
    samples.sort_by_key(|(t, is_video, _)| (*t, !*is_video));
    let mut w =
        TsWriter::new(video, audio, segment.msn, (init.id % 32) as u8, segment.discontinuity);
    let vscale = video_track.map_or(1, |t| t.timescale);
    for (t, is_video, s) in samples {
        let t = u64::try_from(t).unwrap_or(0);
        // Errors are counted by the writer; the rest of the segment goes on.
        let _ = if is_video {
            let cts = to_90k(s.cts.into(), vscale).clamp(i32::MIN.into(), i32::MAX.into()) as i32;
            w.video(t, cts, s.key, &s.data)
        } else {
            w.audio(t, &s.data)
        };
    }
    dropped += w.dropped_frames();
    Ok(TsSegment { bytes: w.finish(), dropped_frames: dropped })
}
