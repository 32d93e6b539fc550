//! The node's lease as the registrar's keep-alive task sees it, without I/O: when to send the
//! next keep-alive, when the lease may have ended in the store (the node is then *fenced*: it
//! must not count on its claims), and when to re-register.
//!
//! The store ends a lease `ttl` after the last keep-alive it received; a keep-alive answered
//! "alive" was received no earlier than it was sent, so the lease lasts at least until
//! `sent_at + ttl`. The node fences itself a margin before that, so it stops relying on its
//! claims before another node can take them over. Only the store saying the lease is gone
//! leads to a new lease: keep-alives that fail or time out (etcd unreachable, or slow) fence
//! the node but never make it revoke a lease that may still be alive and rewrite every key.

use std::time::Duration;
use tokio::time::Instant;

/// What a keep-alive came back with.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum KeepAlive {
    /// The store renewed the lease.
    Alive,
    /// The store has no such lease (expired or revoked).
    NotFound,
    /// No answer in time, or an error: the lease may or may not be alive.
    Failed,
}

/// What the keep-alive task must do.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum LeaseAction {
    /// The lease may have ended: stop counting on the claims.
    Fence,
    /// The lease is known alive again (the claims never lapsed).
    Unfence,
    /// The lease is gone: grant a new one and write the node key and claims again.
    Recover,
}

/// The lease's known lifetime and the fencing decision.
#[derive(Debug, Clone)]
pub struct LeaseKeeper {
    ttl: Duration,
    margin: Duration,
    /// The lease lasts at least until then.
    valid_until: Instant,
    fenced: bool,
}

impl LeaseKeeper {
    /// A lease of `ttl` granted by a request sent at `granted_at`.
    pub fn new(granted_at: Instant, ttl: Duration) -> LeaseKeeper {
        let margin = (ttl / 5).clamp(Duration::from_millis(100), Duration::from_secs(1));
        LeaseKeeper { ttl, margin, valid_until: granted_at + ttl, fenced: false }
    }

    /// How often to send a keep-alive (and how long one may take).
    pub fn period(&self) -> Duration {
        (self.ttl / 3).max(Duration::from_millis(100))
    }

    /// When the node fences itself unless a keep-alive succeeds first.
    pub fn fence_at(&self) -> Instant {
        self.valid_until.checked_sub(self.margin).unwrap_or(self.valid_until)
    }

    pub fn is_fenced(&self) -> bool {
        self.fenced
    }

    /// Time has passed: fence once the lease may have ended.
    pub fn on_time(&mut self, now: Instant) -> Option<LeaseAction> {
        if !self.fenced && now >= self.fence_at() {
            self.fenced = true;
            return Some(LeaseAction::Fence);
        }
        None
    }

    /// The answer (at `now`) to a keep-alive sent at `sent_at`.
    pub fn on_keep_alive(
        &mut self,
        sent_at: Instant,
        now: Instant,
        result: KeepAlive,
    ) -> Option<LeaseAction> {
        match result {
            KeepAlive::Alive => {
                self.valid_until = self.valid_until.max(sent_at + self.ttl);
                if self.fenced && now < self.fence_at() {
                    self.fenced = false;
                    return Some(LeaseAction::Unfence);
                }
                self.on_time(now)
            }
            KeepAlive::NotFound => {
                self.fenced = true;
                Some(LeaseAction::Recover)
            }
            KeepAlive::Failed => self.on_time(now),
        }
    }

    /// A new lease was granted by a request sent at `granted_at` and the node's keys written
    /// under it; `true` when that lifts the fence.
    pub fn on_recovered(&mut self, granted_at: Instant) -> bool {
        self.valid_until = granted_at + self.ttl;
        std::mem::replace(&mut self.fenced, false)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    const TTL: Duration = Duration::from_secs(5);

    fn ms(n: u64) -> Duration {
        Duration::from_millis(n)
    }

    #[test]
    fn answered_keep_alives_keep_the_node_unfenced() {
        let t0 = Instant::now();
        let mut k = LeaseKeeper::new(t0, TTL);
        assert_eq!(k.period(), TTL / 3);
        for i in 1..=30 {
            let sent = t0 + k.period() * i;
            assert_eq!(k.on_time(sent), None);
            assert_eq!(k.on_keep_alive(sent, sent + ms(5), KeepAlive::Alive), None);
        }
        assert!(!k.is_fenced());
    }

    #[test]
    fn an_unreachable_store_fences_before_the_lease_can_end_and_never_recovers_by_itself() {
        let t0 = Instant::now();
        let mut k = LeaseKeeper::new(t0, TTL);
        let sent = t0 + ms(1000);
        assert_eq!(k.on_keep_alive(sent, sent + ms(3), KeepAlive::Alive), None);
        // From here on every keep-alive fails: fence a margin before sent + TTL.
        let mut fenced_at = None;
        let mut now = sent;
        while now < sent + TTL * 3 {
            now += ms(100);
            match k.on_keep_alive(now, now, KeepAlive::Failed) {
                Some(LeaseAction::Fence) => fenced_at = fenced_at.or(Some(now)),
                None => {}
                other => panic!("a failed keep-alive must not lead to {other:?}"),
            }
        }
        let fenced_at = fenced_at.expect("fenced");
        assert!(fenced_at < sent + TTL, "fenced before the lease can end");
        assert!(fenced_at >= sent + TTL - ms(1000), "not long before: {:?}", fenced_at - sent);
        assert!(k.is_fenced());
    }

    #[test]
    fn a_slow_store_that_still_renewed_the_lease_lifts_the_fence_without_a_new_lease() {
        let t0 = Instant::now();
        let mut k = LeaseKeeper::new(t0, TTL);
        // A keep-alive sent at 1 s is answered only at 4.5 s (etcd paused), after the fence.
        assert_eq!(k.on_time(t0 + ms(4100)), Some(LeaseAction::Fence));
        let sent = t0 + ms(4000);
        assert_eq!(
            k.on_keep_alive(sent, t0 + ms(4500), KeepAlive::Alive),
            Some(LeaseAction::Unfence)
        );
        assert!(!k.is_fenced());
        assert_eq!(k.fence_at(), sent + TTL - ms(1000));
    }

    #[test]
    fn an_answer_that_comes_too_late_to_trust_keeps_the_fence() {
        let t0 = Instant::now();
        let mut k = LeaseKeeper::new(t0, TTL);
        assert_eq!(k.on_time(t0 + ms(4100)), Some(LeaseAction::Fence));
        // Sent at 0.5 s, answered at 5.2 s: the lease it proves ends at 5.5 s, inside the margin.
        let got = k.on_keep_alive(t0 + ms(500), t0 + ms(5200), KeepAlive::Alive);
        assert_eq!(got, None);
        assert!(k.is_fenced());
    }

    #[test]
    fn only_a_lease_the_store_no_longer_has_is_recovered() {
        let t0 = Instant::now();
        let mut k = LeaseKeeper::new(t0, TTL);
        let at = t0 + ms(1700);
        assert_eq!(k.on_keep_alive(at, at, KeepAlive::NotFound), Some(LeaseAction::Recover));
        assert!(k.is_fenced());
        let granted = t0 + ms(1800);
        assert!(k.on_recovered(granted), "the fence lifts with the new lease");
        assert_eq!(k.fence_at(), granted + TTL - ms(1000));
        assert!(!k.on_recovered(granted), "not fenced any more");
    }
}
