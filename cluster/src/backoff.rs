//! The one exponential backoff of the project: the registry's loops (lease recovery, the etcd
//! watch cache) here, and through `sluice_cluster::Backoff` the node side (forwards, edge pulls).
//!
//! It only computes delays; callers add them to a time they were given, so the state machines
//! that use it stay sans-IO and testable with a virtual clock.

use std::time::Duration;

/// Exponential backoff between `min` and `max`: each failure doubles the next delay up to
/// `max`; a success resets it to `min`.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Backoff {
    min: Duration,
    max: Duration,
    next: Duration,
}

impl Backoff {
    #[must_use]
    pub fn new(min: Duration, max: Duration) -> Backoff {
        Backoff { min, max: max.max(min), next: min }
    }

    /// The delay to wait now; the one after it is twice as long (at most `max`).
    pub fn next_delay(&mut self) -> Duration {
        let d = self.next;
        self.next = (self.next * 2).min(self.max);
        d
    }

    /// The delay [`Backoff::next_delay`] would return, without advancing.
    #[must_use]
    pub fn peek(&self) -> Duration {
        self.next
    }

    /// After a success: the next failure waits `min` again.
    pub fn reset(&mut self) {
        self.next = self.min;
    }

    /// The longest delay.
    #[must_use]
    pub fn max(&self) -> Duration {
        self.max
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn doubles_is_capped_and_resets() {
        let ms = Duration::from_millis;
        let mut b = Backoff::new(ms(200), ms(2000));
        let got: Vec<_> = (0..6).map(|_| b.next_delay()).collect();
        assert_eq!(got, [ms(200), ms(400), ms(800), ms(1600), ms(2000), ms(2000)]);
        b.reset();
        assert_eq!(b.peek(), ms(200));
        assert_eq!(b.next_delay(), ms(200));
        assert_eq!(b.max(), ms(2000));
    }
}
