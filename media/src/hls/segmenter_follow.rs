//! Following another node's cut points: the ingest reports the segments it opens
//! ([`Segmenter::take_opened`]); a follower starts from such a stamp ([`Segmenter::follow`]).
//! See [`crate::hls::SegmentStamp`].

use super::super::stamp::SegmentStamp;
use super::super::track::TICKS_PER_MS;
use super::super::HlsConfig;
use super::Segmenter;

impl Segmenter {
    /// The segment opened by the last [`Segmenter::push`], if it opened one.
    pub fn take_opened(&mut self) -> Option<SegmentStamp> {
        self.opened.take()
    }

    /// A segmenter that continues another node's segmenting at the keyframe that opened
    /// `stamp`'s segment, whose input timestamp is `keyframe_ts`: feed it the stream's current
    /// sequence headers, then that keyframe and everything after it. Its numbering, media time
    /// (so program date-times) and cut points are then the stamping node's. `config`'s epoch
    /// and resume point are replaced by the stamp's.
    pub fn follow(config: HlsConfig, stamp: &SegmentStamp, keyframe_ts: u32) -> Segmenter {
        let mut cfg = config;
        cfg.resume = None;
        cfg.stream_epoch_ms = stamp.epoch_ms;
        let mut s = Segmenter::new(cfg);
        let start_ms = i64::try_from(stamp.start_ticks / TICKS_PER_MS).unwrap_or(i64::MAX / 2);
        s.time_offset_ms = start_ms.saturating_sub(i64::from(keyframe_ts));
        s.next_msn = stamp.msn;
        s.next_fragment = stamp.fragment_sequence;
        s.discontinuity_sequence =
            stamp.discontinuity_sequence.saturating_sub(u64::from(stamp.discontinuity));
        s.next_discontinuity = stamp.discontinuity;
        s.next_init_id = stamp.init_id;
        s.target_duration_s = s.target_duration_s.max(stamp.target_duration_s);
        s.max_part = stamp.max_part_ticks;
        s.end_ticks = stamp.start_ticks;
        s.follow_audio = stamp.audio_next_dts;
        s
    }

    /// The stamp of the segment being opened now (called by `open_segment`).
    pub(super) fn stamp_opened(&mut self) {
        if let Some(dts) = self.follow_audio.take() {
            self.audio_next_dts = Some(dts);
        }
        let Some(seg) = self.open.as_ref() else {
            return;
        };
        self.opened = Some(SegmentStamp {
            msn: seg.msn,
            discontinuity_sequence: seg.discontinuity_sequence,
            discontinuity: seg.discontinuity,
            init_id: seg.init_id,
            fragment_sequence: self.next_fragment,
            start_ticks: seg.start,
            epoch_ms: self.cfg.stream_epoch_ms,
            target_duration_s: self.target_duration_s,
            max_part_ticks: self.max_part,
            audio_next_dts: self.audio_next_dts,
        });
    }
}
