//! A sans-IO rate meter: events (frames, bits) in with the instant they arrived, a rate per
//! second out. What `/api/streams` and the load report show as a stream's frame rate and bit
//! rate, measured from what the publisher actually sent.

use std::time::Duration;
use tokio::time::Instant;

/// Counts events per second over windows of at least [`RateMeter::WINDOW`].
///
/// A window closes at the first event after it is [`RateMeter::WINDOW`] long; its count over
/// its length is the rate until the next one closes. A window that has run past its length
/// with no event closing it (the publisher went quiet) is averaged up to `now` instead, so the
/// rate falls towards zero rather than holding the last figure.
#[derive(Debug)]
pub struct RateMeter {
    window_start: Instant,
    count: u64,
    rate: f64,
}

impl RateMeter {
    /// The shortest window a rate is taken over.
    pub const WINDOW: Duration = Duration::from_secs(2);

    pub fn new(now: Instant) -> Self {
        RateMeter { window_start: now, count: 0, rate: 0.0 }
    }

    /// Count `amount` events at `now`.
    pub fn add(&mut self, now: Instant, amount: u64) {
        let elapsed = now.saturating_duration_since(self.window_start);
        if elapsed >= Self::WINDOW {
            self.rate = self.count as f64 / elapsed.as_secs_f64();
            self.window_start = now;
            self.count = 0;
        }
        self.count = self.count.saturating_add(amount);
    }

    /// Events per second at `now`: over the last closed window, or over the open one when it is
    /// overdue (no event for longer than a window).
    pub fn rate(&self, now: Instant) -> f64 {
        let elapsed = now.saturating_duration_since(self.window_start);
        if elapsed > Self::WINDOW {
            self.count as f64 / elapsed.as_secs_f64()
        } else {
            self.rate
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn ms(n: u64) -> Duration {
        Duration::from_millis(n)
    }

    #[test]
    fn thirty_frames_a_second_measure_thirty() {
        let t0 = Instant::now();
        let mut m = RateMeter::new(t0);
        assert_eq!(m.rate(t0), 0.0, "nothing measured yet");
        // Frames every 1/30 s (in milliseconds, rounded as a real clock would).
        let mut last = t0;
        for i in 0..=150u64 {
            last = t0 + ms(i * 1000 / 30);
            m.add(last, 1);
        }
        let rate = m.rate(last);
        assert!((rate - 30.0).abs() < 0.5, "{rate}");
        // Within a window of the last frame the figure holds.
        assert_eq!(m.rate(last + ms(1_000)), rate);
    }

    #[test]
    fn bits_are_summed_per_second() {
        let t0 = Instant::now();
        let mut m = RateMeter::new(t0);
        for i in 0..=40u64 {
            m.add(t0 + ms(i * 100), 100_000);
        }
        // The first window: 20 packets of 100 kbit over 2 s.
        assert_eq!(m.rate(t0 + ms(4_000)), 1_000_000.0);
    }

    #[test]
    fn a_quiet_publisher_decays_to_zero() {
        let t0 = Instant::now();
        let mut m = RateMeter::new(t0);
        for i in 0..=60u64 {
            m.add(t0 + ms(i * 100), 1);
        }
        let last = t0 + ms(6_000);
        assert_eq!(m.rate(last), 10.0);
        // No more events: the open window (one event at `last`) is averaged up to now.
        let later = m.rate(last + ms(10_000));
        assert!(later < 0.2, "{later}");
        assert!(m.rate(last + ms(100_000)) < later);
        // Time going backwards (not with tokio's clock, but cheap to rule out) changes nothing.
        assert_eq!(m.rate(t0), 10.0);
    }
}
