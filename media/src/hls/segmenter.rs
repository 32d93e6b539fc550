//! The segmenter: FLV messages in, init segments, parts and segments out (see the module
//! docs of [`crate::hls`] for the rules).

use std::collections::VecDeque;
use std::sync::Arc;

use bytes::Bytes;

use super::init::write_init;
use super::snapshot::{HlsSnapshot, InitSegment, Segment, SnapshotInner, TrackInit};
use super::track::{
    AudioConfig, AudioFormat, Sample, VideoConfig, VideoFormat, TICKS_PER_MS, TICKS_PER_SECOND,
};
use super::{HlsConfig, HlsError, ResumePoint, Update};
use crate::codec::{
    parse_audio_tag, parse_video_tag, AudioCodec, AudioPacket, VideoCodec, VideoPacket,
};
use crate::frame::{MediaKind, MediaMessage};

#[path = "segmenter_close.rs"]
mod close;
#[path = "segmenter_follow.rs"]
mod follow;

/// Slack when predicting whether one more frame fits in a part: FLV timestamps are whole
/// milliseconds, so frame intervals jitter by 1 ms (e.g. 33/34 ms at 30 fps). A frame that
/// then really overshoots is moved to the next part by `add_video`.
const TIMESTAMP_JITTER: u64 = TICKS_PER_MS;
/// Assumed frame duration when a stream ends after a single frame (1/30 s).
const DEFAULT_VIDEO_DELTA: u64 = 3000;

/// Frames in, CMAF parts and segments out. One per stream; see [`crate::hls`].
#[derive(Debug)]
pub struct Segmenter {
    cfg: HlsConfig,
    part_target: u64,
    target: u64,
    /// A keyframe at or after this much segment time starts a new segment.
    cut_threshold: u64,
    // Timestamps: last input (u32) and its 64-bit extension; offset added after rebasing.
    last_ts: Option<(u32, i64)>,
    time_offset_ms: i64,
    rebase: bool,
    min_time_ms: i64,
    // Sequence headers received, and those the current init was built from.
    video_cfg: Option<VideoConfig>,
    audio_cfg: Option<AudioConfig>,
    config_dirty: bool,
    init: Option<Arc<InitSegment>>,
    init_tracks: (Option<VideoConfig>, Option<AudioConfig>),
    init_used: bool,
    next_init_id: u32,
    inits: Vec<Arc<InitSegment>>,
    // Queued samples.
    pending_video: Option<Sample>,
    last_video_delta: u64,
    need_keyframe: bool,
    audio_queue: VecDeque<Sample>,
    audio_queue_bytes: usize,
    audio_next_dts: Option<u64>,
    // The open part.
    part_video: Vec<Sample>,
    part_audio: Vec<Sample>,
    part_start: u64,
    part_bytes: usize,
    // The open segment and the window.
    open: Option<Segment>,
    open_bytes: usize,
    segments: VecDeque<Arc<Segment>>,
    next_msn: u64,
    next_fragment: u32,
    discontinuity_sequence: u64,
    next_discontinuity: bool,
    target_duration_s: u64,
    /// Longest part so far (90 kHz): a single frame longer than the part target (sparse
    /// video) makes a longer part, and `PART-TARGET` then says so truthfully.
    max_part: u64,
    /// End of everything output so far, 90 kHz.
    end_ticks: u64,
    dropped: u64,
    /// The segment the last push opened (see [`Segmenter::take_opened`]).
    opened: Option<super::stamp::SegmentStamp>,
    /// A follower's audio continuity, applied when its first segment opens (a new init
    /// resets audio timing before that).
    follow_audio: Option<u64>,
}

impl Segmenter {
    /// A segmenter for a new stream (or continuing `config.resume`).
    pub fn new(config: HlsConfig) -> Self {
        let mut cfg = config;
        cfg.target_duration_ms = cfg.target_duration_ms.clamp(200, 60_000);
        cfg.part_target_ms = cfg.part_target_ms.clamp(100, cfg.target_duration_ms);
        cfg.window_segments = cfg.window_segments.max(3);
        cfg.max_part_bytes = cfg.max_part_bytes.max(1024);
        cfg.max_segment_bytes = cfg.max_segment_bytes.max(cfg.max_part_bytes);
        let target = u64::from(cfg.target_duration_ms) * TICKS_PER_MS;
        let resume = cfg.resume.unwrap_or_default();
        Segmenter {
            part_target: u64::from(cfg.part_target_ms) * TICKS_PER_MS,
            target,
            cut_threshold: target / 10 * 9,
            last_ts: None,
            time_offset_ms: 0,
            rebase: cfg.resume.is_some(),
            min_time_ms: i64::try_from(resume.min_time_ms).unwrap_or(i64::MAX / 2),
            video_cfg: None,
            audio_cfg: None,
            config_dirty: false,
            init: None,
            init_tracks: (None, None),
            init_used: false,
            next_init_id: resume.next_init_id,
            inits: Vec::new(),
            pending_video: None,
            last_video_delta: 0,
            need_keyframe: false,
            audio_queue: VecDeque::new(),
            audio_queue_bytes: 0,
            audio_next_dts: None,
            part_video: Vec::new(),
            part_audio: Vec::new(),
            part_start: 0,
            part_bytes: 0,
            open: None,
            open_bytes: 0,
            segments: VecDeque::new(),
            next_msn: resume.next_msn,
            next_fragment: resume.next_fragment_sequence,
            discontinuity_sequence: resume.discontinuity_sequence,
            next_discontinuity: cfg.resume.is_some(),
            target_duration_s: u64::from(cfg.target_duration_ms.div_ceil(1000)),
            max_part: 0,
            end_ticks: resume.min_time_ms.saturating_mul(TICKS_PER_MS),
            dropped: 0,
            opened: None,
            follow_audio: None,
            cfg,
        }
    }

    /// The effective (clamped) configuration.
    pub fn config(&self) -> &HlsConfig {
        &self.cfg
    }

    /// Samples dropped so far (no init yet, waiting for a keyframe, too large, undecodable).
    pub fn dropped_samples(&self) -> u64 {
        self.dropped
    }

    /// Feed one message of the stream, in order. Script data is ignored. An error leaves the
    /// state as it was (log it, keep pushing).
    pub fn push(&mut self, msg: &MediaMessage) -> Result<Update, HlsError> {
        self.opened = None;
        match msg.kind {
            MediaKind::Data => Ok(Update::default()),
            MediaKind::Video => self.push_video(msg),
            MediaKind::Audio => self.push_audio(msg),
        }
    }

    /// The publisher left (or the media breaks): finish the open segment with what there is;
    /// the next segment is marked as a discontinuity and its media time continues from here.
    pub fn end_of_stream(&mut self) -> Update {
        let up = self.flush_media();
        if self.init_used {
            self.mark_discontinuity();
        }
        self.video_cfg = None;
        self.audio_cfg = None;
        self.config_dirty = false;
        up
    }

    /// Numbers a successor segmenter should continue from (see [`HlsConfig::resume`]).
    pub fn resume_point(&self) -> ResumePoint {
        let open = self.open.as_ref().filter(|s| !s.parts.is_empty());
        ResumePoint {
            next_msn: self.next_msn.saturating_add(u64::from(open.is_some())),
            discontinuity_sequence: open
                .map_or(self.discontinuity_sequence, |s| s.discontinuity_sequence),
            next_init_id: self.next_init_id,
            next_fragment_sequence: self.next_fragment,
            min_time_ms: self.end_ticks.div_ceil(TICKS_PER_MS),
        }
    }

    /// The current state, for serving. Cost: one `Arc` per segment in the window.
    pub fn snapshot(&self) -> HlsSnapshot {
        let next_part = match &self.open {
            Some(o) => (o.msn, o.parts.len() as u32),
            None => (self.next_msn, 0),
        };
        HlsSnapshot {
            inner: Arc::new(SnapshotInner {
                segments: self.segments.iter().cloned().collect(),
                open: self.open.clone().map(Arc::new),
                inits: self.inits.clone(),
                target_duration_s: self.target_duration_s,
                part_target_ms: u64::from(self.cfg.part_target_ms)
                    .max(self.max_part.div_ceil(TICKS_PER_MS)),
                next_part,
                parts_per_segment: self.target.div_ceil(self.part_target),
            }),
        }
    }

    fn push_video(&mut self, msg: &MediaMessage) -> Result<Update, HlsError> {
        let tag = parse_video_tag(&msg.payload)?;
        match tag.packet {
            VideoPacket::SequenceStart => {
                let cfg = VideoConfig::parse(tag.codec, tag.body)?;
                if self.video_cfg.as_ref() != Some(&cfg) {
                    self.video_cfg = Some(cfg);
                    self.config_dirty = true;
                }
                Ok(Update::default())
            }
            VideoPacket::CodedFrames { composition_time } => {
                if tag.body.len() > self.cfg.max_part_bytes {
                    self.dropped += 1;
                    self.need_keyframe = true;
                    return Err(HlsError::SampleTooLarge {
                        size: tag.body.len(),
                        limit: self.cfg.max_part_bytes,
                    });
                }
                let mut up = self.apply_config();
                let format = self.init_tracks.0.as_ref().map(|v| v.format);
                let matches = matches!(
                    (format, tag.codec),
                    (Some(VideoFormat::Avc), VideoCodec::Avc)
                        | (Some(VideoFormat::Hevc), VideoCodec::Hevc)
                );
                if !matches || tag.body.is_empty() {
                    self.dropped += 1;
                    return Ok(up);
                }
                let ms = self.media_ms(msg.timestamp);
                up.merge(self.video_frame(ms, composition_time, tag.is_keyframe(), tag.body));
                Ok(up)
            }
            _ => Ok(Update::default()),
        }
    }

    fn push_audio(&mut self, msg: &MediaMessage) -> Result<Update, HlsError> {
        let tag = parse_audio_tag(&msg.payload)?;
        match tag.packet {
            AudioPacket::SequenceStart => {
                let cfg = AudioConfig::parse(tag.codec, tag.body)?;
                if self.audio_cfg.as_ref() != Some(&cfg) {
                    self.audio_cfg = Some(cfg);
                    self.config_dirty = true;
                }
                Ok(Update::default())
            }
            AudioPacket::Frame => {
                if tag.body.len() > self.cfg.max_part_bytes {
                    self.dropped += 1;
                    return Err(HlsError::SampleTooLarge {
                        size: tag.body.len(),
                        limit: self.cfg.max_part_bytes,
                    });
                }
                let mut up = self.apply_config();
                let Some(ac) = self.init_tracks.1.as_ref() else {
                    self.dropped += 1;
                    return Ok(up);
                };
                let matches = matches!(
                    (ac.format, tag.codec),
                    (AudioFormat::Aac, AudioCodec::Aac) | (AudioFormat::Opus, AudioCodec::Opus)
                );
                let duration = ac.frame_duration(&tag.body);
                let rate = u64::from(ac.sample_rate);
                let (true, Some(duration)) = (matches, duration) else {
                    self.dropped += 1;
                    return Ok(up);
                };
                let ms = self.media_ms(msg.timestamp);
                up.merge(self.audio_frame(ms, rate, duration, tag.body));
                Ok(up)
            }
            _ => Ok(Update::default()),
        }
    }

    /// Milliseconds of media time: the timestamp unwrapped to 64 bits, plus the offset that
    /// keeps media time from going back after a discontinuity.
    fn media_ms(&mut self, ts: u32) -> u64 {
        let ext = match self.last_ts {
            None => i64::from(ts),
            Some((last, last_ext)) => {
                last_ext.saturating_add(i64::from(ts.wrapping_sub(last) as i32))
            }
        };
        self.last_ts = Some((ts, ext));
        if self.rebase {
            self.rebase = false;
            let t = ext.saturating_add(self.time_offset_ms);
            if t < self.min_time_ms {
                self.time_offset_ms = self.time_offset_ms.saturating_add(self.min_time_ms - t);
            }
        }
        u64::try_from(ext.saturating_add(self.time_offset_ms)).unwrap_or(0)
    }

    /// Build a new init segment if the sequence headers changed since the last one.
    fn apply_config(&mut self) -> Update {
        let mut up = Update::default();
        if !std::mem::take(&mut self.config_dirty) {
            return up;
        }
        let tracks = (self.video_cfg.clone(), self.audio_cfg.clone());
        if (tracks.0.is_none() && tracks.1.is_none()) || tracks == self.init_tracks {
            return up;
        }
        if self.init_used {
            up.merge(self.flush_media());
            self.mark_discontinuity();
        } else {
            // Never referenced: replace it, dropping media queued for a changed track.
            if tracks.0 != self.init_tracks.0 {
                self.pending_video = None;
                self.part_video.clear();
                self.open = None;
            }
            if tracks.1 != self.init_tracks.1 {
                self.audio_queue.clear();
                self.audio_queue_bytes = 0;
                self.part_audio.clear();
                self.audio_next_dts = None;
            }
            self.part_bytes =
                self.part_video.iter().chain(&self.part_audio).map(|s| s.data.len()).sum();
            if let Some(old) = self.init.take() {
                self.inits.retain(|i| i.id != old.id);
                self.next_init_id = old.id;
            }
        }
        let id = self.next_init_id;
        self.next_init_id = id.wrapping_add(1);
        let (v, a) = (tracks.0.as_ref(), tracks.1.as_ref());
        let codecs: Vec<&str> =
            v.map(|v| v.codec.as_str()).into_iter().chain(a.map(|a| a.codec.as_str())).collect();
        let init = Arc::new(InitSegment {
            id,
            bytes: write_init(v, a),
            codecs: codecs.join(","),
            resolution: v.map(|v| (v.width, v.height)),
            frame_rate: v.and_then(|v| v.fps),
            has_video: v.is_some(),
            has_audio: a.is_some(),
            video_track: v.map(|v| TrackInit {
                bytes: write_init(Some(v), None),
                codec: v.codec.clone(),
                sample_rate: 0,
                channels: 0,
            }),
            audio_track: a.map(|a| TrackInit {
                bytes: write_init(None, Some(a)),
                codec: a.codec.clone(),
                sample_rate: a.sample_rate,
                channels: a.channels,
            }),
        });
        if let Some(open) = self.open.as_mut() {
            open.init_id = id;
        }
        self.inits.push(init.clone());
        self.init = Some(init);
        self.init_tracks = tracks;
        self.init_used = false;
        up.init = true;
        up
    }

    fn has_video(&self) -> bool {
        self.init_tracks.0.is_some()
    }

    fn video_frame(&mut self, ms: u64, cts_ms: i32, key: bool, data: Bytes) -> Update {
        let mut up = Update::default();
        if self.need_keyframe && !key {
            self.dropped += 1;
            return up;
        }
        self.need_keyframe = false;
        let mut dts = ms.saturating_mul(TICKS_PER_MS);
        if let Some(p) = &self.pending_video {
            dts = dts.max(p.dts.saturating_add(1));
        }
        let cts = (i64::from(cts_ms) * TICKS_PER_MS as i64).clamp(i32::MIN.into(), i32::MAX.into())
            as i32;
        let sample = Sample { dts, duration: 0, cts, key, data };
        if self.open.is_none() {
            if !key {
                self.dropped += 1;
                return up;
            }
            self.open_segment(dts);
        } else if let Some(mut prev) = self.pending_video.take() {
            let delta = dts.saturating_sub(prev.dts);
            prev.duration = u32::try_from(delta).unwrap_or(u32::MAX);
            self.last_video_delta = delta;
            up.merge(self.add_video(prev));
            let seg_start = self.open.as_ref().map_or(dts, |s| s.start);
            let too_big = self.open_bytes + self.part_bytes >= self.cfg.max_segment_bytes;
            if (key && dts.saturating_sub(seg_start) >= self.cut_threshold) || too_big {
                up.merge(self.close_segment(dts));
                self.open_segment(dts);
            } else if dts.saturating_sub(self.part_start).saturating_add(delta)
                > self.part_target + TIMESTAMP_JITTER
            {
                up.merge(self.close_part(dts, false));
            }
        }
        self.pending_video = Some(sample);
        up
    }

    /// Append a video sample whose duration is known, closing the part first if the sample
    /// would take it past the part target or the byte limit.
    fn add_video(&mut self, s: Sample) -> Update {
        let mut up = Update::default();
        let end = s.dts.saturating_add(u64::from(s.duration));
        let over_time = end.saturating_sub(self.part_start) > self.part_target;
        let over_size = self.part_bytes + s.data.len() > self.cfg.max_part_bytes;
        if !self.part_video.is_empty() && (over_time || over_size) {
            up = self.close_part(s.dts, false);
        }
        self.part_bytes += s.data.len();
        self.end_ticks = self.end_ticks.max(end);
        self.part_video.push(s);
        up
    }

    fn audio_frame(&mut self, ms: u64, rate: u64, duration: u32, data: Bytes) -> Update {
        let mut up = Update::default();
        let dur = u64::from(duration);
        let conv = (u128::from(ms) * u128::from(rate) / 1000) as u64;
        let dts = match self.audio_next_dts {
            Some(expected) if conv <= expected.saturating_add(dur / 2) => expected,
            _ => conv,
        };
        self.audio_next_dts = Some(dts.saturating_add(dur));
        let to_ticks = |t: u64| {
            (u128::from(t) * u128::from(TICKS_PER_SECOND) / u128::from(rate.max(1))) as u64
        };
        let len = data.len();
        let sample = Sample { dts, duration, cts: 0, key: true, data };
        if self.has_video() {
            if self.open.is_none() {
                self.dropped += 1;
                self.audio_next_dts = None;
                return up;
            }
            while self.audio_queue_bytes + len > self.cfg.max_part_bytes {
                let Some(old) = self.audio_queue.pop_front() else {
                    break;
                };
                self.audio_queue_bytes -= old.data.len();
                self.dropped += 1;
            }
            self.audio_queue_bytes += len;
            self.audio_queue.push_back(sample);
            return up;
        }
        // Audio-only: audio drives parts and segments.
        let (start, end) = (to_ticks(dts), to_ticks(dts.saturating_add(dur)));
        if self.open.is_none() {
            self.open_segment(start);
        }
        let over_time = end.saturating_sub(self.part_start) > self.part_target;
        if !self.part_audio.is_empty()
            && (over_time || self.part_bytes + len > self.cfg.max_part_bytes)
        {
            up.merge(self.close_part_audio_only(start));
        }
        self.part_bytes += len;
        self.end_ticks = self.end_ticks.max(end);
        self.part_audio.push(sample);
        if end.saturating_sub(self.part_start) + end.saturating_sub(start) > self.part_target {
            up.merge(self.close_part_audio_only(end));
        }
        up
    }

    /// Audio-only: close the part, and the segment with it once the segment is within half
    /// a part of its target.
    fn close_part_audio_only(&mut self, end: u64) -> Update {
        let mut up = self.close_part(end, false);
        let seg_start = self.open.as_ref().map_or(end, |s| s.start);
        if end.saturating_sub(seg_start) + self.part_target / 2 >= self.target {
            up.merge(self.close_segment(end));
            self.open_segment(end);
        }
        up
    }
}
