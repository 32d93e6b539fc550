//! Closing parts and segments, flushing and discontinuities: the second half of
//! [`Segmenter`](super::Segmenter)'s implementation.

use std::sync::Arc;

use super::super::fragment::{write_fragments, TrackRun};
use super::super::snapshot::{Part, Segment};
use super::super::track::{AUDIO_TRACK_ID, TICKS_PER_MS, TICKS_PER_SECOND, VIDEO_TRACK_ID};
use super::super::Update;
use super::{Segmenter, DEFAULT_VIDEO_DELTA};

impl Segmenter {
    pub(super) fn open_segment(&mut self, start: u64) {
        let discontinuity = self.next_discontinuity;
        self.open = Some(Segment {
            msn: self.next_msn,
            start,
            duration: 0,
            parts: Vec::new(),
            discontinuity,
            discontinuity_sequence: self
                .discontinuity_sequence
                .saturating_add(u64::from(discontinuity)),
            init_id: self.init.as_ref().map_or(0, |i| i.id),
            program_date_time_ms: self
                .cfg
                .stream_epoch_ms
                .map(|e| e.saturating_add(start / TICKS_PER_MS)),
            video_frames: 0,
            first_cts: 0,
            complete: false,
        });
        self.open_bytes = 0;
        self.part_start = start;
        self.stamp_opened();
    }

    /// Close the open part at `end` (90 kHz). Queued audio starting before `end` (all of it
    /// when `all_audio`) joins the part first.
    pub(super) fn close_part(&mut self, end: u64, all_audio: bool) -> Update {
        if self.open.is_none() {
            return Update::default();
        }
        if self.has_video() {
            let rate = self.init_tracks.1.as_ref().map_or(1, |a| u64::from(a.sample_rate));
            while let Some(a) = self.audio_queue.front() {
                let start = (u128::from(a.dts) * u128::from(TICKS_PER_SECOND)
                    / u128::from(rate.max(1))) as u64;
                if !all_audio && start >= end {
                    break;
                }
                let a_end = (u128::from(a.dts.saturating_add(u64::from(a.duration)))
                    * u128::from(TICKS_PER_SECOND)
                    / u128::from(rate.max(1))) as u64;
                self.end_ticks = self.end_ticks.max(a_end);
                let Some(a) = self.audio_queue.pop_front() else {
                    break;
                };
                self.audio_queue_bytes -= a.data.len();
                self.part_bytes += a.data.len();
                self.part_audio.push(a);
            }
        }
        if self.part_video.is_empty() && self.part_audio.is_empty() {
            self.part_start = end;
            return Update::default();
        }
        let independent =
            if self.has_video() { self.part_video.first().is_some_and(|s| s.key) } else { true };
        let frags = write_fragments(
            self.next_fragment,
            &[
                TrackRun {
                    track_id: VIDEO_TRACK_ID,
                    samples: &self.part_video,
                    composition_offsets: true,
                },
                TrackRun {
                    track_id: AUDIO_TRACK_ID,
                    samples: &self.part_audio,
                    composition_offsets: false,
                },
            ],
        );
        self.next_fragment = self.next_fragment.wrapping_add(frags.count);
        let duration = end.saturating_sub(self.part_start);
        self.max_part = self.max_part.max(duration);
        let Some(open) = self.open.as_mut() else {
            return Update::default();
        };
        open.parts.push(Arc::new(Part {
            msn: open.msn,
            index: open.parts.len() as u32,
            start: self.part_start,
            duration,
            independent,
            video_len: frags.lens.first().copied().unwrap_or(0),
            bytes: frags.bytes,
        }));
        open.duration += duration;
        if open.video_frames == 0 {
            open.first_cts = self.part_video.first().map_or(0, |s| s.cts);
        }
        open.video_frames = open.video_frames.saturating_add(self.part_video.len() as u32);
        self.open_bytes += self.part_bytes;
        self.part_video.clear();
        self.part_audio.clear();
        self.part_bytes = 0;
        self.part_start = end;
        self.init_used = true;
        Update { parts: 1, ..Update::default() }
    }

    pub(super) fn close_segment(&mut self, end: u64) -> Update {
        let mut up = self.close_part(end, false);
        let Some(mut seg) = self.open.take() else {
            return up;
        };
        if seg.parts.is_empty() {
            return up;
        }
        seg.complete = true;
        self.next_msn = self.next_msn.saturating_add(1);
        self.discontinuity_sequence = seg.discontinuity_sequence;
        self.next_discontinuity = false;
        let rounded = (seg.duration + TICKS_PER_SECOND / 2) / TICKS_PER_SECOND;
        self.target_duration_s = self.target_duration_s.max(rounded);
        self.segments.push_back(Arc::new(seg));
        while self.segments.len() > self.cfg.window_segments {
            self.segments.pop_front();
        }
        let current = self.init.as_ref().map(|i| i.id);
        let used: Vec<u32> = self.segments.iter().map(|s| s.init_id).collect();
        self.inits.retain(|i| Some(i.id) == current || used.contains(&i.id));
        up.segments += 1;
        up
    }

    /// Output everything queued: the pending video frame (with the previous frame's
    /// duration), all queued audio; close the part and the segment.
    pub(super) fn flush_media(&mut self) -> Update {
        let mut up = Update::default();
        if let Some(mut prev) = self.pending_video.take() {
            let d =
                if self.last_video_delta > 0 { self.last_video_delta } else { DEFAULT_VIDEO_DELTA };
            prev.duration = u32::try_from(d).unwrap_or(u32::MAX);
            up.merge(self.add_video(prev));
        }
        up.merge(self.close_part(self.end_ticks.max(self.part_start), true));
        up.merge(self.close_segment(self.end_ticks.max(self.part_start)));
        self.open = None;
        self.audio_queue.clear();
        self.audio_queue_bytes = 0;
        self.audio_next_dts = None;
        self.part_video.clear();
        self.part_audio.clear();
        self.part_bytes = 0;
        self.last_video_delta = 0;
        self.need_keyframe = false;
        up
    }

    pub(super) fn mark_discontinuity(&mut self) {
        self.next_discontinuity = true;
        self.rebase = true;
        self.last_ts = None;
        self.min_time_ms =
            i64::try_from(self.end_ticks.div_ceil(TICKS_PER_MS)).unwrap_or(i64::MAX / 2);
    }
}
