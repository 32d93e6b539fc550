//! When a stream's transcoder is restarted after it exits: sans-IO (times in, a delay out).
//!
//! An exit while the source is live is a crash: the next start waits a backoff that doubles
//! from [`Backoff::first`] up to [`Backoff::max`] with each crash in a row; a run that lasted
//! [`Backoff::healthy`] counts as healthy and starts the doubling afresh.

use std::time::Duration;

use tokio::time::Instant;

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Backoff {
    pub first: Duration,
    pub max: Duration,
    pub healthy: Duration,
}

impl Default for Backoff {
    fn default() -> Self {
        Backoff {
            first: Duration::from_millis(500),
            max: Duration::from_secs(30),
            healthy: Duration::from_secs(60),
        }
    }
}

#[derive(Debug)]
pub struct Supervisor {
    backoff: Backoff,
    started: Option<Instant>,
    /// Crashes in a row (runs shorter than `healthy`).
    crashes: u32,
}

impl Supervisor {
    pub fn new(backoff: Backoff) -> Self {
        Supervisor { backoff, started: None, crashes: 0 }
    }

    /// The transcoder started at `now`.
    pub fn started(&mut self, now: Instant) {
        self.started = Some(now);
    }

    /// The transcoder exited at `now` while its source was live: how long to wait before the
    /// next start.
    pub fn crashed(&mut self, now: Instant) -> Duration {
        let ran = self.started.take().map_or(Duration::ZERO, |s| now.saturating_duration_since(s));
        if ran >= self.backoff.healthy {
            self.crashes = 0;
        }
        let delay =
            self.backoff.first.saturating_mul(1 << self.crashes.min(16)).min(self.backoff.max);
        self.crashes = self.crashes.saturating_add(1);
        delay
    }

    /// Crashes in a row so far.
    pub fn crashes(&self) -> u32 {
        self.crashes
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn crashes_in_a_row_back_off_and_a_healthy_run_starts_afresh() {
        let mut s = Supervisor::new(Backoff::default());
        let secs = Duration::from_secs;
        // A virtual clock: the supervisor reads no time of its own.
        let mut now = Instant::now();
        let mut delays = Vec::new();
        for _ in 0..9 {
            s.started(now);
            now += secs(1);
            let d = s.crashed(now);
            now += d;
            delays.push(d.as_millis());
        }
        assert_eq!(delays, [500, 1000, 2000, 4000, 8000, 16000, 30000, 30000, 30000]);
        assert_eq!(s.crashes(), 9);
        // A run of a minute is healthy: the next crash waits the first backoff again.
        s.started(now);
        now += secs(60);
        assert_eq!(s.crashed(now), Duration::from_millis(500));
        assert_eq!(s.crashes(), 1);
    }
}
