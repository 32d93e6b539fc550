//! When each tag of a file played out as live is due, and the timestamp it goes out with
//! (sans-IO: instants in, instants out). The first tag of the first pass is due at once; every
//! later one as far after it as its timestamp says. A looped file's next pass continues the
//! timeline one frame after the last tag of the pass before, so viewers see one stream.
//!
//! A playout that starts late (a restart, or a failover to a new home) is anchored at its
//! scheduled time: its tags are due in the past until it has caught up, and whole passes of a
//! looped file that would have ended already are skipped ([`Pacer::skip_passes`]).

use std::time::{Duration, Instant};

/// The gap between one pass's last tag and the next pass's first (about a frame).
pub const LOOP_GAP_MS: u64 = 40;

#[derive(Debug, Clone)]
pub struct Pacer {
    /// When output timestamp 0 is due.
    anchor: Instant,
    /// Output timestamp of this pass's first tag.
    base: u64,
    /// This pass's first input timestamp.
    first: Option<u32>,
    /// The latest output timestamp given.
    last: u64,
    /// The first pass's length (its last output timestamp less its first), once known.
    pass_len: Option<u64>,
}

impl Pacer {
    /// A pacer whose first tag is due at `start`.
    pub fn new(start: Instant) -> Pacer {
        Pacer { anchor: start, base: 0, first: None, last: 0, pass_len: None }
    }

    /// The output timestamp of a tag stamped `ts` in the file, and when it is due. Tags older
    /// than the pass's first (interleaving) go out with the pass's first timestamp.
    pub fn place(&mut self, ts: u32) -> (u32, Instant) {
        let first = *self.first.get_or_insert(ts);
        let out = self.base + u64::from(ts.saturating_sub(first));
        self.last = self.last.max(out);
        // FLV timestamps are 32-bit milliseconds: they wrap after about 49 days.
        ((out & 0xFFFF_FFFF) as u32, self.anchor + Duration::from_millis(out))
    }

    /// This pass's first input timestamp, when the file says it (an indexed file read from a
    /// later place: its tags keep their place in the pass).
    pub fn set_first(&mut self, ts: u32) {
        self.first = Some(ts);
    }

    /// The file starts again: its first tag goes out just after the last one given.
    pub fn next_pass(&mut self) {
        self.pass_len.get_or_insert(self.last - self.base);
        self.base = self.last + LOOP_GAP_MS;
        self.first = None;
    }

    /// Skip the passes that would have ended by `now`: the next pass begins at the last pass
    /// start not after `now` (once a pass's length is known, and when it is not zero).
    pub fn skip_passes(&mut self, now: Instant) {
        let Some(len) = self.pass_len.filter(|l| *l > 0) else { return };
        let step = len + LOOP_GAP_MS;
        let at = u64::try_from(now.saturating_duration_since(self.anchor).as_millis())
            .unwrap_or(u64::MAX);
        if at >= self.base + step {
            self.base += (at - self.base) / step * step;
            self.last = self.last.max(self.base);
        }
    }

    /// How far `now` is past this pass's start (zero when it is not yet), in ms.
    pub fn behind(&self, now: Instant) -> u64 {
        let start = self.anchor + Duration::from_millis(self.base);
        u64::try_from(now.saturating_duration_since(start).as_millis()).unwrap_or(u64::MAX)
    }

    /// Output time played so far.
    pub fn played(&self) -> Duration {
        Duration::from_millis(self.last)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn tags_are_due_as_their_timestamps_say_and_loops_continue_the_timeline() {
        let t0 = tokio::time::Instant::now().into_std();
        let mut p = Pacer::new(t0);
        assert_eq!(p.place(1000), (0, t0), "the first tag is due at once, at 0");
        assert_eq!(p.place(1040), (40, t0 + Duration::from_millis(40)));
        assert_eq!(p.place(1020), (20, t0 + Duration::from_millis(20)), "interleaved audio");
        assert_eq!(p.place(900), (0, t0), "older than the first: at the first");
        assert_eq!(p.place(3000), (2000, t0 + Duration::from_secs(2)));
        p.next_pass();
        assert_eq!(p.place(1000), (2040, t0 + Duration::from_millis(2040)));
        assert_eq!(p.place(1500), (2540, t0 + Duration::from_millis(2540)));
        assert_eq!(p.played(), Duration::from_millis(2540));
    }

    #[test]
    fn a_late_looped_playout_skips_the_passes_already_over() {
        let t0 = tokio::time::Instant::now().into_std();
        let mut p = Pacer::new(t0);
        p.skip_passes(t0 + Duration::from_secs(100));
        assert_eq!(p.place(0), (0, t0), "the first pass's length is not known yet");
        p.place(960);
        p.next_pass(); // passes of 960 ms, 1 s apart
        p.skip_passes(t0 + Duration::from_millis(1500));
        assert_eq!(p.place(0).0, 1000, "within the second pass: nothing skipped");
        p.place(960);
        p.next_pass();
        p.skip_passes(t0 + Duration::from_millis(10_500));
        assert_eq!(p.behind(t0 + Duration::from_millis(10_500)), 500);
        assert_eq!(p.behind(t0), 0);
        let (ts, due) = p.place(0);
        assert_eq!(ts, 10_000, "passes 3 to 10 would have ended: the eleventh starts");
        assert_eq!(due, t0 + Duration::from_secs(10));
        assert_eq!(p.place(500).0, 10_500);
    }
}
