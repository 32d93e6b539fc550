//! The decisions of one outgoing forward (ingest -> the stream's home), without I/O.
//!
//! [`ForwardPolicy`] is told what happened ([`Event`], with the time passed in) and answers
//! what to do ([`Action`]); the async task in `forward.rs` opens and drops the relay forwards
//! it names and sleeps until [`ForwardPolicy::next_deadline`]. The rules:
//!
//! - While this node is not the stream's home, one forward to the home is kept open. When this
//!   node becomes the home, the forward is closed [`HANDOVER`] later: edges pulling from the
//!   old home move to this node make-before-break meanwhile (the old home keeps the stream
//!   only while the forward feeds it).
//! - A failed open, or a forward that ends by itself (the home went away or refused), is
//!   retried after a backoff that doubles up to its maximum and resets once a forward opens.
//!   A ring change does not cut the backoff short.
//! - Ring change: the forward to the new home is opened while the old one keeps carrying the
//!   stream; the old one is dropped only when the new one is open (make-before-break).
//! - The publisher left: no new forward; an open in flight is waited for, then the forward
//!   that carries the stream is left to deliver what is in flight ([`Action::Finish`]).

use std::time::{Duration, Instant};

use sluice_cluster::types::NodeId;

/// How long the forward to the old home outlives this node becoming the home.
pub const HANDOVER: Duration = Duration::from_secs(2);

use sluice_cluster::Backoff;

/// What happened to the forward.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Event {
    /// The ring changed (or this is the start): the stream's home by this node's ring, if any.
    Home(Option<NodeId>),
    /// The forward asked for by [`Action::Open`] is open.
    Opened { to: NodeId },
    /// The forward asked for by [`Action::Open`] could not be opened (no address, no
    /// connection, refused by the home).
    OpenFailed { to: NodeId },
    /// The forward that carried the stream ended by itself.
    Finished,
    /// The stream's publisher left.
    PublisherLeft,
}

/// What the driver must do.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Action {
    /// Open a forward to `to`, keeping the current one; answer [`Event::Opened`] or
    /// [`Event::OpenFailed`].
    Open { to: NodeId },
    /// The forward just opened to `to` carries the stream now: drop the previous one.
    Promote { to: NodeId },
    /// This node is the stream's home: drop the forward.
    Close,
    /// The publisher left: let the current forward (if any) deliver what is in flight, then
    /// end. The policy takes no more events.
    Finish,
}

/// One stream's outgoing forward, as decisions.
#[derive(Debug)]
pub struct ForwardPolicy {
    me: NodeId,
    backoff: Backoff,
    /// Where the stream should go: its home, unless that is this node.
    target: Option<NodeId>,
    /// Where the forward that carries the stream goes.
    current: Option<NodeId>,
    /// An open in flight.
    opening: Option<NodeId>,
    /// No new open before this (after a failure).
    retry_at: Option<Instant>,
    /// This node became the home: close the forward then.
    close_at: Option<Instant>,
    leaving: bool,
    finished: bool,
}

impl ForwardPolicy {
    /// The policy of a forward from `me`; feed it [`Event::Home`] first.
    #[must_use]
    pub fn new(me: NodeId, backoff: Backoff) -> Self {
        ForwardPolicy {
            me,
            backoff,
            target: None,
            current: None,
            opening: None,
            retry_at: None,
            close_at: None,
            leaving: false,
            finished: false,
        }
    }

    pub fn on_event(&mut self, now: Instant, event: Event) -> Vec<Action> {
        if self.finished {
            return Vec::new();
        }
        match event {
            Event::Home(home) => {
                self.target = home.filter(|h| *h != self.me);
                self.poll(now)
            }
            Event::Opened { to } => {
                self.opening = None;
                self.backoff.reset();
                self.retry_at = None;
                self.current = Some(to.clone());
                let mut actions = vec![Action::Promote { to }];
                actions.extend(self.poll(now));
                actions
            }
            Event::OpenFailed { .. } => {
                self.opening = None;
                self.retry_at = Some(now + self.backoff.next_delay());
                self.poll(now)
            }
            Event::Finished => {
                self.current = None;
                self.retry_at = Some(now + self.backoff.next_delay());
                self.poll(now)
            }
            Event::PublisherLeft => {
                self.leaving = true;
                self.poll(now)
            }
        }
    }

    /// What to do at `now` without a new event (a retry time has come).
    pub fn poll(&mut self, now: Instant) -> Vec<Action> {
        if self.finished || self.opening.is_some() {
            return Vec::new();
        }
        if self.leaving {
            self.finished = true;
            return vec![Action::Finish];
        }
        if self.target.is_some() {
            self.close_at = None;
        }
        match &self.target {
            None if self.current.is_some() => {
                let close_at = *self.close_at.get_or_insert(now + HANDOVER);
                if now < close_at {
                    return Vec::new();
                }
                self.close_at = None;
                self.current = None;
                vec![Action::Close]
            }
            None => Vec::new(),
            Some(to) if self.current.as_ref() == Some(to) => Vec::new(),
            Some(to) => {
                if self.retry_at.is_some_and(|at| now < at) {
                    return Vec::new();
                }
                self.opening = Some(to.clone());
                vec![Action::Open { to: to.clone() }]
            }
        }
    }

    /// When [`ForwardPolicy::poll`] has something to do without a new event: the retry time
    /// of a forward that is wanted and not open. `None`: wait for events only.
    #[must_use]
    pub fn next_deadline(&self) -> Option<Instant> {
        if self.finished || self.leaving || self.opening.is_some() {
            return None;
        }
        if self.close_at.is_some() {
            return self.close_at;
        }
        let wanted = self.target.as_ref().is_some_and(|t| self.current.as_ref() != Some(t));
        self.retry_at.filter(|_| wanted)
    }

    /// Where the forward that carries the stream goes.
    #[must_use]
    pub fn current(&self) -> Option<&NodeId> {
        self.current.as_ref()
    }
}

#[cfg(test)]
#[allow(clippy::disallowed_methods)] // `Instant::now()` is only the virtual clock's origin
mod tests {
    use std::time::Duration;

    use super::*;

    fn id(s: &str) -> NodeId {
        NodeId::new(s).unwrap()
    }

    fn ms(n: u64) -> Duration {
        Duration::from_millis(n)
    }

    fn policy() -> (ForwardPolicy, Instant) {
        (ForwardPolicy::new(id("me"), Backoff::new(ms(200), ms(2000))), Instant::now())
    }

    fn open(to: &str) -> Vec<Action> {
        vec![Action::Open { to: id(to) }]
    }

    #[test]
    fn forwards_to_the_home_and_not_when_this_node_is_home() {
        let (mut p, t0) = policy();
        assert_eq!(p.on_event(t0, Event::Home(Some(id("me")))), []);
        assert_eq!(p.on_event(t0, Event::Home(None)), []);
        assert_eq!(p.on_event(t0, Event::Home(Some(id("a")))), open("a"));
        // An open in flight is not asked for twice.
        assert_eq!(p.on_event(t0, Event::Home(Some(id("a")))), []);
        assert_eq!(
            p.on_event(t0, Event::Opened { to: id("a") }),
            [Action::Promote { to: id("a") }]
        );
        assert_eq!(p.current(), Some(&id("a")));
        assert_eq!(p.next_deadline(), None);
        // This node becomes the home: the forward is closed after the hand-over time.
        assert_eq!(p.on_event(t0, Event::Home(Some(id("me")))), []);
        assert_eq!(p.next_deadline(), Some(t0 + HANDOVER));
        assert_eq!(p.poll(t0 + HANDOVER - ms(1)), []);
        assert_eq!(p.current(), Some(&id("a")), "the old home is fed meanwhile");
        assert_eq!(p.poll(t0 + HANDOVER), [Action::Close]);
        assert_eq!(p.current(), None);
        assert_eq!(p.next_deadline(), None);
    }

    #[test]
    fn a_home_that_comes_back_within_the_handover_keeps_its_forward() {
        let (mut p, t0) = policy();
        p.on_event(t0, Event::Home(Some(id("a"))));
        p.on_event(t0, Event::Opened { to: id("a") });
        assert_eq!(p.on_event(t0, Event::Home(Some(id("me")))), []);
        assert_eq!(p.on_event(t0 + ms(500), Event::Home(Some(id("a")))), []);
        assert_eq!(p.next_deadline(), None);
        assert_eq!(p.poll(t0 + HANDOVER * 2), [], "never closed");
        assert_eq!(p.current(), Some(&id("a")));
    }

    #[test]
    fn retry_backoff_grows_is_capped_and_resets_after_success() {
        let (mut p, t0) = policy();
        let mut now = t0;
        assert_eq!(p.on_event(now, Event::Home(Some(id("a")))), open("a"));
        let mut waits = Vec::new();
        for _ in 0..6 {
            assert_eq!(p.on_event(now, Event::OpenFailed { to: id("a") }), []);
            let at = p.next_deadline().unwrap();
            // Nothing before the retry time, the open exactly at it.
            assert_eq!(p.poll(at - ms(1)), []);
            assert_eq!(p.poll(at), open("a"));
            waits.push(at - now);
            now = at;
        }
        assert_eq!(waits, [ms(200), ms(400), ms(800), ms(1600), ms(2000), ms(2000)]);
        assert_eq!(
            p.on_event(now, Event::Opened { to: id("a") }),
            [Action::Promote { to: id("a") }]
        );
        // The forward ends by itself: retried after the first step again.
        assert_eq!(p.on_event(now, Event::Finished), []);
        assert_eq!(p.next_deadline(), Some(now + ms(200)));
        assert_eq!(p.poll(now + ms(200)), open("a"));
    }

    #[test]
    fn a_ring_change_does_not_cut_the_backoff_short() {
        let (mut p, t0) = policy();
        p.on_event(t0, Event::Home(Some(id("a"))));
        p.on_event(t0, Event::OpenFailed { to: id("a") });
        assert_eq!(p.on_event(t0 + ms(10), Event::Home(Some(id("b")))), []);
        assert_eq!(p.poll(t0 + ms(200)), open("b"));
    }

    #[test]
    fn no_deadline_while_nothing_is_wanted() {
        // A failed open, then this node becomes the home: nothing to retry, no wake-ups.
        let (mut p, t0) = policy();
        p.on_event(t0, Event::Home(Some(id("a"))));
        p.on_event(t0, Event::OpenFailed { to: id("a") });
        assert!(p.next_deadline().is_some());
        assert_eq!(p.on_event(t0, Event::Home(None)), []);
        assert_eq!(p.next_deadline(), None);
        assert_eq!(p.poll(t0 + ms(5000)), []);
    }

    #[test]
    fn home_switch_is_make_before_break() {
        let (mut p, t0) = policy();
        p.on_event(t0, Event::Home(Some(id("a"))));
        p.on_event(t0, Event::Opened { to: id("a") });
        // The ring moves the stream: the new forward is opened, the old one stays.
        assert_eq!(p.on_event(t0, Event::Home(Some(id("b")))), open("b"));
        assert_eq!(p.current(), Some(&id("a")));
        // The new home refuses for now: the old forward still carries the stream.
        assert_eq!(p.on_event(t0, Event::OpenFailed { to: id("b") }), []);
        assert_eq!(p.current(), Some(&id("a")));
        assert_eq!(p.poll(t0 + ms(200)), open("b"));
        // Only once the new one is open is the old one dropped.
        assert_eq!(
            p.on_event(t0 + ms(250), Event::Opened { to: id("b") }),
            [Action::Promote { to: id("b") }]
        );
        assert_eq!(p.current(), Some(&id("b")));
    }

    #[test]
    fn an_open_that_lands_after_the_home_moved_again_is_used_then_replaced() {
        let (mut p, t0) = policy();
        p.on_event(t0, Event::Home(Some(id("a"))));
        assert_eq!(p.on_event(t0, Event::Home(Some(id("b")))), []);
        assert_eq!(
            p.on_event(t0, Event::Opened { to: id("a") }),
            [Action::Promote { to: id("a") }, Action::Open { to: id("b") }]
        );
        // No other home any more while an open was in flight: closed a hand-over after it lands.
        assert_eq!(p.on_event(t0, Event::Home(None)), []);
        assert_eq!(
            p.on_event(t0, Event::Opened { to: id("b") }),
            [Action::Promote { to: id("b") }]
        );
        assert_eq!(p.poll(t0 + HANDOVER), [Action::Close]);
    }

    #[test]
    fn publisher_left_finishes_after_an_open_in_flight() {
        let (mut p, t0) = policy();
        p.on_event(t0, Event::Home(Some(id("a"))));
        p.on_event(t0, Event::Opened { to: id("a") });
        assert_eq!(p.on_event(t0, Event::PublisherLeft), [Action::Finish]);
        assert_eq!(p.on_event(t0, Event::Home(Some(id("b")))), []);
        assert_eq!(p.next_deadline(), None);

        let (mut p, t0) = policy();
        p.on_event(t0, Event::Home(Some(id("a"))));
        assert_eq!(p.on_event(t0, Event::PublisherLeft), []);
        assert_eq!(
            p.on_event(t0, Event::Opened { to: id("a") }),
            [Action::Promote { to: id("a") }, Action::Finish]
        );

        let (mut p, t0) = policy();
        p.on_event(t0, Event::Home(Some(id("a"))));
        p.on_event(t0, Event::PublisherLeft);
        assert_eq!(p.on_event(t0, Event::OpenFailed { to: id("a") }), [Action::Finish]);
    }
}
