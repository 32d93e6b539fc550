//! The GOP-cutting and priority rules of the sending side, as a sans-IO state machine: frames
//! in, [`Decision`]s out (open a GOP stream at a priority, queue a frame on it, finish it,
//! reset it, let go of it). No quinn and no tasks here; the driver in `publish/mod.rs` carries
//! the decisions out on QUIC streams and reports back the two things only it can see: a GOP
//! stream's queue that was full ([`GopCutter::queue_full`]) and a GOP stream that was fully
//! delivered ([`GopCutter::delivered`]). No rule depends on time.
//!
//! The rules:
//! - A GOP starts at each video keyframe, at the first frame, and, after the subscriber
//!   lagged, at the next keyframe (or the next audio frame of a stream without video).
//! - Each GOP gets a new stream (its sequence is the GOP header's) with a priority above every
//!   earlier GOP stream of the node on the connection ([`Priorities`]), and starts with the
//!   latest metadata, video and audio sequence headers, in that order.
//! - A header (metadata or sequence header) replaces the previous one of its kind and is also
//!   queued on the current GOP at once.
//! - When GOP n+1 starts and GOP n-1 is not fully delivered, the subscriber is a whole GOP
//!   behind: GOP n-1 is reset ([`ResetReason::WholeGopBehind`]).
//! - When a frame does not fit its GOP's queue the subscriber lags inside the GOP: frames
//!   are skipped until the next GOP starts, and the GOP is reset ([`ResetReason::Lagging`])
//!   at once for a media frame, at the next media frame for a header (a GOP that starts
//!   first finishes it normally).
//! - Frames above the relay's max frame size are dropped: the receiver (same configuration)
//!   would take them for a protocol violation and close the whole connection.
//! - When the source ends the current GOP is finished (the driver waits for the GOPs still
//!   tracked); when the publication is cancelled every tracked GOP is reset
//!   ([`ResetReason::Unsubscribed`]).

use std::sync::atomic::{AtomicI32, Ordering};
use std::sync::Arc;

use crate::codec::{Frame, FrameKind};
use crate::codes;

/// The GOP priorities of one node on one connection: every stream the node opens on it (the
/// subscriptions it serves and its forwards) gets a priority above every earlier one.
#[derive(Debug, Default)]
pub(crate) struct Priorities(AtomicI32);

impl Priorities {
    /// The next priority (never negative: past `i32::MAX` it stays at 0).
    pub(crate) fn next(&self) -> i32 {
        self.0.fetch_add(1, Ordering::Relaxed).max(0)
    }
}

/// Why a GOP stream is reset.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) enum ResetReason {
    /// The subscriber is a whole GOP behind: the older GOP is given up.
    WholeGopBehind,
    /// The GOP's queue was full: the subscriber lags inside the GOP.
    Lagging,
    /// The publication was cancelled (unsubscribed, forward dropped, connection gone).
    Unsubscribed,
}

impl ResetReason {
    /// The stream reset code the receiver sees.
    pub(crate) fn code(self) -> u32 {
        match self {
            Self::WholeGopBehind | Self::Lagging => codes::GOP_CANCELLED,
            Self::Unsubscribed => codes::UNSUBSCRIBED,
        }
    }
}

/// What the driver is to do. GOP streams are named by their sequence (`gop`).
#[derive(Debug, Clone, PartialEq, Eq)]
pub(crate) enum Decision {
    /// Open the stream of GOP `gop` at `priority`. The frames to queue on it follow.
    Open { gop: u64, priority: i32 },
    /// Queue `frame` on GOP `gop`. When its queue is full (or its writer gone), call
    /// [`GopCutter::queue_full`] before carrying out the next decision.
    Write { gop: u64, frame: Frame },
    /// No more frames for `gop`: finish its stream once its queue is written.
    Finish { gop: u64 },
    /// Reset the stream of `gop` unless it is already fully delivered.
    Reset { gop: u64, reason: ResetReason },
    /// The cutter no longer tracks `gop`: the driver lets go of it (a finished stream still
    /// completes; the driver does not wait for it at the end).
    Release { gop: u64 },
    /// A frame of `len` bytes was dropped: above the max frame size.
    DropOversized { len: usize },
}

/// A GOP stream the cutter tracks.
#[derive(Debug, Clone, Copy)]
struct Gop {
    sequence: u64,
    /// Reported fully delivered by the driver.
    delivered: bool,
}

/// The sending side's decisions for one subscription or forward.
#[derive(Debug)]
pub(crate) struct GopCutter {
    max_frame_size: usize,
    priorities: Arc<Priorities>,
    /// Latest header per kind: audio, video sequence header, metadata.
    headers: [Option<Frame>; 3],
    /// The GOP being written.
    current: Option<Gop>,
    /// The GOP before it, finished, maybe still being delivered.
    previous: Option<Gop>,
    next_sequence: u64,
    /// The subscriber lagged: frames are skipped until the next GOP starts.
    skipping: bool,
    seen_video: bool,
    /// The last decision was a media frame queued on the current GOP (not a header, not the
    /// start of a GOP): if it did not fit, the GOP is reset at once.
    continuing: bool,
}

impl GopCutter {
    pub(crate) fn new(max_frame_size: usize, priorities: Arc<Priorities>) -> Self {
        Self {
            max_frame_size,
            priorities,
            headers: [None, None, None],
            current: None,
            previous: None,
            next_sequence: 0,
            skipping: false,
            seen_video: false,
            continuing: false,
        }
    }

    /// GOP streams decided so far (sequences `0..gop_count`).
    pub(crate) fn gop_count(&self) -> u64 {
        self.next_sequence
    }

    /// The next frame of the source.
    pub(crate) fn on_frame(&mut self, frame: Frame) -> Vec<Decision> {
        self.continuing = false;
        if frame.payload.len() > self.max_frame_size {
            return vec![Decision::DropOversized { len: frame.payload.len() }];
        }
        if frame.kind == FrameKind::Video {
            self.seen_video = true;
        }
        if frame.is_header() {
            if let Some(slot) = self.headers.get_mut(frame.kind as usize - 1) {
                *slot = Some(frame.clone());
            }
            return match self.current {
                Some(gop) if !self.skipping => vec![Decision::Write { gop: gop.sequence, frame }],
                _ => Vec::new(),
            };
        }
        let audio_only_cut = self.skipping && !self.seen_video && frame.kind == FrameKind::Audio;
        let starts =
            frame.starts_gop() || audio_only_cut || (self.current.is_none() && !self.skipping);
        if starts {
            return self.start_gop(frame);
        }
        match self.current {
            Some(gop) if !self.skipping => {
                self.continuing = true;
                vec![Decision::Write { gop: gop.sequence, frame }]
            }
            _ if self.skipping => self.drop_current(),
            _ => Vec::new(),
        }
    }

    /// The driver could not queue a frame on `gop`: the subscriber lags inside the GOP.
    pub(crate) fn queue_full(&mut self, gop: u64) -> Vec<Decision> {
        if self.current.is_none_or(|c| c.sequence != gop) {
            return Vec::new();
        }
        self.skipping = true;
        if std::mem::take(&mut self.continuing) {
            self.drop_current()
        } else {
            Vec::new()
        }
    }

    /// The stream of `gop` is fully delivered (acknowledged, or stopped by the receiver).
    pub(crate) fn delivered(&mut self, gop: u64) {
        for g in [&mut self.previous, &mut self.current].into_iter().flatten() {
            if g.sequence == gop {
                g.delivered = true;
            }
        }
    }

    /// The source ended: the current GOP is finished. The driver then waits for the GOP
    /// streams it still holds.
    pub(crate) fn on_end(&mut self) -> Vec<Decision> {
        self.continuing = false;
        match self.current {
            Some(gop) => vec![Decision::Finish { gop: gop.sequence }],
            None => Vec::new(),
        }
    }

    /// The publication is cancelled: every GOP still tracked is reset.
    pub(crate) fn on_cancel(&mut self) -> Vec<Decision> {
        self.continuing = false;
        [self.previous.take(), self.current.take()]
            .into_iter()
            .flatten()
            .map(|g| Decision::Reset { gop: g.sequence, reason: ResetReason::Unsubscribed })
            .collect()
    }

    fn start_gop(&mut self, frame: Frame) -> Vec<Decision> {
        let mut out = Vec::new();
        if let Some(old) = self.previous.take() {
            if !old.delivered {
                out.push(Decision::Reset {
                    gop: old.sequence,
                    reason: ResetReason::WholeGopBehind,
                });
            }
            out.push(Decision::Release { gop: old.sequence });
        }
        if let Some(cur) = self.current.take() {
            out.push(Decision::Finish { gop: cur.sequence });
            self.previous = Some(cur);
        }
        self.skipping = false;
        let gop = self.next_sequence;
        self.next_sequence = self.next_sequence.saturating_add(1);
        out.push(Decision::Open { gop, priority: self.priorities.next() });
        // Metadata first, then the video and audio sequence headers.
        for h in self.headers.iter().rev().flatten() {
            out.push(Decision::Write { gop, frame: h.clone() });
        }
        out.push(Decision::Write { gop, frame });
        self.current = Some(Gop { sequence: gop, delivered: false });
        out
    }

    /// Gives up the current GOP (the subscriber lags inside it).
    fn drop_current(&mut self) -> Vec<Decision> {
        match self.current.take() {
            Some(gop) => vec![
                Decision::Reset { gop: gop.sequence, reason: ResetReason::Lagging },
                Decision::Release { gop: gop.sequence },
            ],
            None => Vec::new(),
        }
    }
}

#[cfg(test)]
mod tests {
    use bytes::Bytes;

    use super::*;
    use crate::codec::{FLAG_HEADER, FLAG_HLS_STAMP, FLAG_KEYFRAME};

    const MAX: usize = 1024;

    fn frame(kind: FrameKind, flags: u8, timestamp: u32) -> Frame {
        Frame { kind, flags, timestamp, payload: Bytes::from_static(b"x") }
    }
    fn key(ts: u32) -> Frame {
        frame(FrameKind::Video, FLAG_KEYFRAME, ts)
    }
    fn inter(ts: u32) -> Frame {
        frame(FrameKind::Video, 0, ts)
    }
    fn audio(ts: u32) -> Frame {
        frame(FrameKind::Audio, 0, ts)
    }
    fn header(kind: FrameKind, ts: u32) -> Frame {
        frame(kind, FLAG_HEADER, ts)
    }
    fn cutter() -> GopCutter {
        GopCutter::new(MAX, Arc::default())
    }
    fn write(gop: u64, frame: Frame) -> Decision {
        Decision::Write { gop, frame }
    }
    /// The GOP and priority of every `Open` among `decisions`.
    fn opens(decisions: &[Decision]) -> Vec<(u64, i32)> {
        decisions
            .iter()
            .filter_map(|d| match d {
                Decision::Open { gop, priority } => Some((*gop, *priority)),
                _ => None,
            })
            .collect()
    }

    #[test]
    fn headers_wait_for_the_first_frame_which_opens_gop_zero_headers_first() {
        let mut c = cutter();
        assert_eq!(c.on_frame(header(FrameKind::Audio, 0)), vec![]);
        assert_eq!(c.on_frame(header(FrameKind::Video, 0)), vec![]);
        assert_eq!(c.on_frame(header(FrameKind::Data, 0)), vec![]);
        assert_eq!(
            c.on_frame(key(0)),
            vec![
                Decision::Open { gop: 0, priority: 0 },
                // Metadata, then the video and audio sequence headers, then the frame.
                write(0, header(FrameKind::Data, 0)),
                write(0, header(FrameKind::Video, 0)),
                write(0, header(FrameKind::Audio, 0)),
                write(0, key(0)),
            ]
        );
        assert_eq!(c.gop_count(), 1);
    }

    #[test]
    fn the_first_frame_opens_a_gop_even_when_it_is_not_a_keyframe() {
        let mut c = cutter();
        assert_eq!(
            c.on_frame(audio(0)),
            vec![Decision::Open { gop: 0, priority: 0 }, write(0, audio(0))]
        );
        assert_eq!(c.on_frame(inter(1)), vec![write(0, inter(1))]);
    }

    #[test]
    fn each_keyframe_finishes_the_gop_and_opens_the_next_at_a_higher_priority() {
        let mut c = cutter();
        c.on_frame(header(FrameKind::Video, 0));
        c.on_frame(key(0));
        assert_eq!(c.on_frame(inter(1)), vec![write(0, inter(1))]);
        assert_eq!(c.on_frame(audio(2)), vec![write(0, audio(2))]);
        assert_eq!(
            c.on_frame(key(3)),
            vec![
                Decision::Finish { gop: 0 },
                Decision::Open { gop: 1, priority: 1 },
                write(1, header(FrameKind::Video, 0)),
                write(1, key(3)),
            ]
        );
        assert_eq!(c.gop_count(), 2);
    }

    #[test]
    fn priorities_increase_over_every_publication_of_the_connection() {
        let priorities = Arc::new(Priorities::default());
        let mut a = GopCutter::new(MAX, priorities.clone());
        let mut b = GopCutter::new(MAX, priorities.clone());
        assert_eq!(opens(&a.on_frame(key(0))), vec![(0, 0)]);
        assert_eq!(opens(&b.on_frame(key(0))), vec![(0, 1)]);
        assert_eq!(opens(&a.on_frame(key(1))), vec![(1, 2)]);
        assert_eq!(opens(&b.on_frame(key(1))), vec![(1, 3)]);
    }

    #[test]
    fn priorities_never_go_negative() {
        let p = Priorities(AtomicI32::new(i32::MAX));
        assert_eq!(p.next(), i32::MAX);
        assert_eq!(p.next(), 0, "wrapped past i32::MAX");
        assert_eq!(p.next(), 0);
    }

    #[test]
    fn a_subscriber_a_whole_gop_behind_loses_the_older_gop() {
        let mut c = cutter();
        c.on_frame(key(0));
        c.on_frame(key(1));
        // GOP 0 is not delivered when GOP 2 starts: reset, and no longer tracked.
        let d = c.on_frame(key(2));
        assert_eq!(
            d[..3],
            [
                Decision::Reset { gop: 0, reason: ResetReason::WholeGopBehind },
                Decision::Release { gop: 0 },
                Decision::Finish { gop: 1 },
            ]
        );
        assert_eq!(opens(&d), vec![(2, 2)]);
        assert_eq!(ResetReason::WholeGopBehind.code(), codes::GOP_CANCELLED);
    }

    #[test]
    fn a_delivered_gop_is_only_let_go() {
        let mut c = cutter();
        c.on_frame(key(0));
        c.on_frame(key(1));
        c.delivered(0);
        let d = c.on_frame(key(2));
        assert_eq!(d[..2], [Decision::Release { gop: 0 }, Decision::Finish { gop: 1 }]);
        // GOP 1 was delivered before it became the previous GOP: also only let go.
        c.delivered(2);
        c.delivered(1);
        assert_eq!(
            c.on_frame(key(3))[..2],
            [Decision::Release { gop: 1 }, Decision::Finish { gop: 2 }]
        );
    }

    #[test]
    fn a_full_queue_resets_the_gop_and_skips_to_the_next_keyframe() {
        let mut c = cutter();
        c.on_frame(header(FrameKind::Video, 0));
        c.on_frame(key(0));
        c.on_frame(key(1)); // GOP 0 is now the previous one
        assert_eq!(c.on_frame(inter(2)), vec![write(1, inter(2))]);
        assert_eq!(
            c.queue_full(1),
            vec![
                Decision::Reset { gop: 1, reason: ResetReason::Lagging },
                Decision::Release { gop: 1 },
            ]
        );
        assert_eq!(ResetReason::Lagging.code(), codes::GOP_CANCELLED);
        // Skipping: media is dropped, audio too (the stream has video), headers are only
        // remembered.
        assert_eq!(c.on_frame(inter(3)), vec![]);
        assert_eq!(c.on_frame(audio(4)), vec![]);
        assert_eq!(c.on_frame(header(FrameKind::Video, 5)), vec![]);
        // The next keyframe opens GOP 2 with the new header; the previous GOP (0) goes.
        let d = c.on_frame(key(6));
        assert_eq!(
            d,
            vec![
                Decision::Reset { gop: 0, reason: ResetReason::WholeGopBehind },
                Decision::Release { gop: 0 },
                Decision::Open { gop: 2, priority: 2 },
                write(2, header(FrameKind::Video, 5)),
                write(2, key(6)),
            ]
        );
        assert_eq!(c.on_frame(inter(7)), vec![write(2, inter(7))]);
    }

    #[test]
    fn a_header_that_does_not_fit_resets_the_gop_at_the_next_media_frame() {
        let mut c = cutter();
        c.on_frame(key(0));
        assert_eq!(
            c.on_frame(header(FrameKind::Audio, 1)),
            vec![write(0, header(FrameKind::Audio, 1))]
        );
        assert_eq!(c.queue_full(0), vec![], "no reset yet");
        assert_eq!(
            c.on_frame(audio(2)),
            vec![
                Decision::Reset { gop: 0, reason: ResetReason::Lagging },
                Decision::Release { gop: 0 },
            ]
        );
    }

    #[test]
    fn a_header_that_does_not_fit_before_a_keyframe_ends_the_gop_normally() {
        let mut c = cutter();
        c.on_frame(key(0));
        c.on_frame(header(FrameKind::Audio, 1));
        assert_eq!(c.queue_full(0), vec![]);
        let d = c.on_frame(key(2));
        assert_eq!(d[..2], [Decision::Finish { gop: 0 }, Decision::Open { gop: 1, priority: 1 }]);
    }

    #[test]
    fn a_full_queue_of_another_gop_is_ignored() {
        let mut c = cutter();
        c.on_frame(key(0));
        c.on_frame(key(1));
        c.on_frame(inter(2));
        assert_eq!(c.queue_full(0), vec![]);
        assert_eq!(c.on_frame(inter(3)), vec![write(1, inter(3))]);
    }

    #[test]
    fn an_audio_only_stream_restarts_at_the_next_audio_frame_after_lagging() {
        let mut c = cutter();
        c.on_frame(header(FrameKind::Audio, 0));
        c.on_frame(audio(0));
        assert_eq!(c.on_frame(audio(1)), vec![write(0, audio(1))]);
        assert_eq!(c.queue_full(0).len(), 2, "reset and released");
        // Without video, audio frames are the only place to cut.
        assert_eq!(
            c.on_frame(audio(2)),
            vec![
                Decision::Open { gop: 1, priority: 1 },
                write(1, header(FrameKind::Audio, 0)),
                write(1, audio(2)),
            ]
        );
        // Audio never cuts on its own: only after lagging.
        assert_eq!(c.on_frame(audio(3)), vec![write(1, audio(3))]);
    }

    #[test]
    fn a_header_change_goes_out_at_once_and_heads_every_later_gop() {
        let mut c = cutter();
        c.on_frame(header(FrameKind::Video, 0));
        c.on_frame(header(FrameKind::Data, 0));
        c.on_frame(key(0));
        let new = header(FrameKind::Video, 10);
        assert_eq!(c.on_frame(new.clone()), vec![write(0, new.clone())]);
        assert_eq!(
            c.on_frame(key(11))[1..],
            [
                Decision::Open { gop: 1, priority: 1 },
                write(1, header(FrameKind::Data, 0)),
                write(1, new),
                write(1, key(11)),
            ]
        );
    }

    #[test]
    fn data_frames_continue_the_gop() {
        let mut c = cutter();
        c.on_frame(key(0));
        let stamp = frame(FrameKind::Data, FLAG_HLS_STAMP, 0);
        assert_eq!(c.on_frame(stamp.clone()), vec![write(0, stamp)]);
        // A keyframe flagged as a header is a header, not the start of a GOP.
        let h = frame(FrameKind::Video, FLAG_KEYFRAME | FLAG_HEADER, 1);
        assert_eq!(c.on_frame(h.clone()), vec![write(0, h)]);
        assert_eq!(c.gop_count(), 1);
    }

    #[test]
    fn oversized_frames_are_dropped() {
        let mut c = cutter();
        let big = Frame { payload: Bytes::from(vec![0; MAX + 1]), ..key(0) };
        assert_eq!(c.on_frame(big), vec![Decision::DropOversized { len: MAX + 1 }]);
        assert_eq!(c.gop_count(), 0);
        let fits = Frame { payload: Bytes::from(vec![0; MAX]), ..key(1) };
        assert_eq!(opens(&c.on_frame(fits)), vec![(0, 0)]);
    }

    #[test]
    fn the_end_finishes_the_current_gop() {
        let mut c = cutter();
        assert_eq!(c.on_end(), vec![]);
        c.on_frame(key(0));
        c.on_frame(key(1));
        assert_eq!(c.on_end(), vec![Decision::Finish { gop: 1 }]);
        assert_eq!(c.gop_count(), 2);
    }

    #[test]
    fn cancelling_resets_every_tracked_gop() {
        let mut c = cutter();
        c.on_frame(key(0));
        c.on_frame(key(1));
        let unsubscribed = ResetReason::Unsubscribed;
        assert_eq!(
            c.on_cancel(),
            vec![
                Decision::Reset { gop: 0, reason: unsubscribed },
                Decision::Reset { gop: 1, reason: unsubscribed },
            ]
        );
        assert_eq!(unsubscribed.code(), codes::UNSUBSCRIBED);
        assert_eq!(c.on_cancel(), vec![]);
    }
}
