//! When an RTMP connection must be closed for lack of progress: times in, decisions out (the
//! connection task only sleeps until [`Deadlines::next`] and acts on [`Deadlines::check`]).
//!
//! Deadlines are about progress of the session, not bytes, so that a peer trickling a byte
//! every few seconds cannot hold a connection: handshake + `connect` within the handshake
//! timeout; then a publish or play within the start timeout (counted from `connect`, or from
//! the last progress when a publish/play ended; refused attempts are no progress); then, while
//! publishing or playing, media in or out within the idle timeout.

use std::time::Duration;

use tokio::time::Instant;

/// What the connection is doing, as far as deadlines go.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(super) enum Phase {
    /// Neither publishing nor playing (before `connect` too).
    Starting,
    /// A player waiting for its stream to be published, until the given instant.
    Waiting(Instant),
    /// Claiming a name, publishing or playing.
    Active,
}

/// Which deadline passed.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(super) enum Expired {
    /// Handshake and `connect` not done in time: close.
    Handshake,
    /// No publish or play started in time: close.
    Start,
    /// No media in or out in time: close.
    Idle,
    /// The waited-for stream was not published: answer StreamNotFound, go on.
    Wait,
}

/// The connection's timeouts (from the node's limits).
#[derive(Debug, Clone, Copy)]
pub(super) struct Timeouts {
    pub handshake: Duration,
    pub start: Duration,
    pub idle: Duration,
}

/// The instants the deadlines count from.
#[derive(Debug, Clone)]
pub(super) struct Deadlines {
    timeouts: Timeouts,
    started: Instant,
    connected: bool,
    last_progress: Instant,
}

impl Deadlines {
    pub fn new(timeouts: Timeouts, now: Instant) -> Self {
        Deadlines { timeouts, started: now, connected: false, last_progress: now }
    }

    /// `connect` was accepted.
    pub fn connected(&mut self, now: Instant) {
        self.connected = true;
        self.last_progress = now;
    }

    /// The session moved on: publish/play started, media received or written.
    pub fn progress(&mut self, now: Instant) {
        self.last_progress = now;
    }

    /// The earliest instant at which [`Deadlines::check`] may report something in `phase`.
    pub fn next(&self, phase: Phase) -> Instant {
        if !self.connected {
            // Before `connect` only the handshake deadline counts (it may be set longer
            // than the start timeout, e.g. for slow links).
            return self.started + self.timeouts.handshake;
        }
        match phase {
            Phase::Starting => self.last_progress + self.timeouts.start,
            Phase::Waiting(until) => until,
            Phase::Active => self.last_progress + self.timeouts.idle,
        }
    }

    /// The deadline that passed at `now` in `phase`, if any.
    pub fn check(&self, phase: Phase, now: Instant) -> Option<Expired> {
        if !self.connected {
            return (now >= self.started + self.timeouts.handshake).then_some(Expired::Handshake);
        }
        match phase {
            Phase::Starting if now >= self.last_progress + self.timeouts.start => {
                Some(Expired::Start)
            }
            Phase::Waiting(until) if now >= until => Some(Expired::Wait),
            Phase::Active if now >= self.last_progress + self.timeouts.idle => Some(Expired::Idle),
            _ => None,
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    const T: Timeouts = Timeouts {
        handshake: Duration::from_secs(5),
        start: Duration::from_secs(10),
        idle: Duration::from_secs(30),
    };

    fn s(n: u64) -> Duration {
        Duration::from_secs(n)
    }

    #[test]
    fn handshake_and_connect_in_time() {
        let t0 = Instant::now();
        let d = Deadlines::new(T, t0);
        assert_eq!(d.next(Phase::Starting), t0 + s(5));
        assert_eq!(d.check(Phase::Starting, t0 + s(4)), None);
        assert_eq!(d.check(Phase::Starting, t0 + s(5)), Some(Expired::Handshake));
    }

    #[test]
    fn bytes_are_not_progress_but_a_publish_is() {
        let t0 = Instant::now();
        let mut d = Deadlines::new(T, t0);
        d.connected(t0 + s(1));
        // Connected, then pings every few seconds: nothing moves the start deadline.
        assert_eq!(d.next(Phase::Starting), t0 + s(11));
        assert_eq!(d.check(Phase::Starting, t0 + s(10)), None);
        assert_eq!(d.check(Phase::Starting, t0 + s(11)), Some(Expired::Start));
        // A publish started at 9 s: from then on the idle timeout counts, reset by media.
        d.progress(t0 + s(9));
        assert_eq!(d.next(Phase::Active), t0 + s(39));
        d.progress(t0 + s(30));
        assert_eq!(d.check(Phase::Active, t0 + s(59)), None);
        assert_eq!(d.check(Phase::Active, t0 + s(60)), Some(Expired::Idle));
        // The publish ended at 40 s: another publish or play must start within 10 s.
        d.progress(t0 + s(40));
        assert_eq!(d.check(Phase::Starting, t0 + s(50)), Some(Expired::Start));
    }

    #[test]
    fn waiting_player_gets_its_own_deadline() {
        let t0 = Instant::now();
        let mut d = Deadlines::new(T, t0);
        d.connected(t0);
        let until = t0 + s(8);
        assert_eq!(d.next(Phase::Waiting(until)), until);
        assert_eq!(d.check(Phase::Waiting(until), t0 + s(7)), None);
        assert_eq!(d.check(Phase::Waiting(until), until), Some(Expired::Wait));
        // A wait that ended without a stream is no progress: the start deadline still counts
        // from connect, so waiting again and again does not keep the connection.
        assert_eq!(d.check(Phase::Starting, t0 + s(10)), Some(Expired::Start));
    }

    #[test]
    fn only_the_handshake_deadline_applies_until_connected() {
        let t0 = Instant::now();
        let d = Deadlines::new(T, t0);
        assert_eq!(d.next(Phase::Waiting(t0 + s(60))), t0 + s(5));
        assert_eq!(d.check(Phase::Active, t0 + s(5)), Some(Expired::Handshake));
        // A handshake timeout longer than the start timeout is honoured.
        let long = Timeouts { handshake: s(60), ..T };
        let d = Deadlines::new(long, t0);
        assert_eq!(d.next(Phase::Starting), t0 + s(60));
        assert_eq!(d.check(Phase::Starting, t0 + s(59)), None);
        assert_eq!(d.check(Phase::Starting, t0 + s(60)), Some(Expired::Handshake));
    }
}
