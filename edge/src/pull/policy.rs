//! The decisions of one pulled stream, without I/O.
//!
//! [`PullPolicy`] is told what happened ([`Event`], with the time passed in) and answers what
//! to do ([`Action`]); the task in `pull.rs` subscribes, feeds the local publish and sleeps
//! until [`PullPolicy::next_deadline`]. The rules:
//!
//! - Subscribe at once. A subscribe that fails everywhere is retried after a backoff that
//!   doubles up to [`MAX_BACKOFF`], or sooner when the registry changes.
//! - A subscription that ends sooner than [`QUICK_FAILURE`] counts as a failure: the next
//!   subscribe waits the backoff (a peer that keeps breaking or ending must not make the task
//!   spin). One that lived longer resets the backoff and is replaced at once.
//! - Upstream loss (broken, stale claim, or `ENDED` while the same claim stands, i.e. the
//!   stream moved between origins): the local publish is kept for `grace` while the task
//!   resubscribes. Back within `grace` under the same claim: the publish goes on
//!   ([`Action::SwitchUpstream`]); under a new claim: a new session
//!   ([`Action::NewSession`]). Still gone at `grace`: the local publish ends.
//! - The claim is gone (the publisher left): the local publish ends at once.
//! - Ring change while live: the new home is subscribed while the old subscription keeps
//!   feeding viewers, and the old one is dropped only once the new one is live
//!   (make-before-break). A new home that is not ready is retried every [`IDLE_CHECK`].
//! - The pull stops when it has had no viewers for `linger` and nobody asked for the stream
//!   within `linger`.

use std::time::{Duration, Instant};

use sluice_cluster::types::NodeId;
use sluice_cluster::Backoff;
use tracing::info;

/// Pause before the first retry after a failed subscribe; doubles up to [`MAX_BACKOFF`].
pub const MIN_BACKOFF: Duration = Duration::from_millis(200);
pub const MAX_BACKOFF: Duration = Duration::from_secs(2);
/// A subscription that ends sooner than this counts as a failure for the backoff.
pub const QUICK_FAILURE: Duration = Duration::from_secs(1);
/// How often the stream's demand is checked, and a stream with no usable source looked up
/// again; also the retry pace of a home switch.
pub const IDLE_CHECK: Duration = Duration::from_secs(1);

/// What happened.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Event {
    /// The demand for the stream: its local viewers now, and when a viewer last asked for it
    /// (`None`: the pull's table entry is gone).
    Demand { viewers: usize, wanted: Option<Instant> },
    /// The registry cache changed; the stream's claim revision now (`None`: unclaimed).
    Claim(Option<i64>),
    /// The registry cache changed: the claim `from` was re-taken as `to` by the same origin
    /// for the same publish (its lease was renewed after an etcd outage). Not a new publish.
    ClaimRenewed { from: i64, to: i64 },
    /// The ring changed; the stream's home now.
    Home(Option<NodeId>),
    /// Answer to [`Action::Subscribe`]: the stream has no claim.
    NotPublished,
    /// Answer to [`Action::Subscribe`]: claimed, but no origin with a usable relay address.
    NoRelay,
    /// Answer to [`Action::Subscribe`]: subscribed at `origin` under the claim `revision`.
    Subscribed { origin: NodeId, revision: i64 },
    /// Answer to [`Action::Subscribe`]: every candidate failed.
    SubscribeFailed,
    /// The hub refused the local publish asked for by [`Action::Publish`]; the driver dropped
    /// the subscription.
    PublishRefused,
    /// The origin ended the live subscription; `claim` is the stream's claim revision now
    /// (`None`: unclaimed or unreachable).
    Ended { claim: Option<i64> },
    /// The live subscription broke (connection, stream, protocol).
    Broken,
    /// Answer to [`Action::SubscribeNext`]: the new home's subscription is live.
    NextReady { origin: NodeId },
    /// Answer to [`Action::SubscribeNext`]: the new home did not accept (yet).
    NextFailed { origin: NodeId },
    /// The live upstream sent nothing for `--upstream-stall`. `fallbacks`: where else the
    /// stream is, best first: its standbys by the ring, then its ingest (the origin with the
    /// publisher, as the registry cache shows it).
    Stalled { fallbacks: Vec<NodeId> },
}

/// After switching away from a silent upstream: how long before moving back to the home (which
/// may be dead but not yet out of the ring), and before another silence moves the pull again
/// (a silent encoder silences every source alike: no hopping between them).
pub const STALL_HOLD: Duration = Duration::from_secs(10);

/// Why the local publish ends.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum EndReason {
    ClaimGone,
    PublisherLeft,
    GraceExpired,
}

impl EndReason {
    #[must_use]
    pub fn as_str(self) -> &'static str {
        match self {
            EndReason::ClaimGone => "the stream's claim is gone",
            EndReason::PublisherLeft => "the origin's publisher left",
            EndReason::GraceExpired => "upstream gone longer than the grace time",
        }
    }
}

/// What the driver must do.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Action {
    /// Look the stream's sources up and subscribe at the first that accepts; answer with
    /// [`Event::Subscribed`], [`Event::SubscribeFailed`], [`Event::NotPublished`] or
    /// [`Event::NoRelay`].
    Subscribe,
    /// Subscribe at `to` (the new home) under `revision` while the live subscription goes on;
    /// answer with [`Event::NextReady`] or [`Event::NextFailed`].
    SubscribeNext { to: NodeId, revision: i64 },
    /// The subscription at `to` is the live one now: drop the old one.
    Promote { to: NodeId },
    /// Drop the live subscription (and a next one in flight): its claim is stale.
    Unsubscribe,
    /// Start the local publish; answer [`Event::PublishRefused`] if the hub refuses.
    Publish,
    /// The local publish goes on from a new upstream under the same claim.
    SwitchUpstream,
    /// The local publish goes on under a new claim: a new source session.
    NewSession,
    /// End the local publish (viewers get the unpublish notice).
    EndLocal(EndReason),
    /// The pull is over.
    Stop,
}

/// The upstream side.
#[derive(Debug)]
enum Upstream {
    /// Subscribe at `at`, or as soon as the registry changes if `early`.
    Waiting {
        at: Instant,
        early: bool,
    },
    /// An [`Action::Subscribe`] in flight; `claim` is the last claim revision seen meanwhile
    /// (`None`: no registry change, or unclaimed).
    Subscribing {
        claim: Option<i64>,
    },
    Live(Live),
}

#[derive(Debug)]
struct Live {
    origin: NodeId,
    revision: i64,
    since: Instant,
    /// The ring changed since this subscription started: is the home elsewhere now?
    moving: bool,
    /// An [`Action::SubscribeNext`] in flight.
    next: Option<NodeId>,
    /// No new switch attempt before this.
    next_retry: Option<Instant>,
    /// `next` was asked for because this upstream went silent.
    stall_switch: bool,
    /// The sources still to try if `next` (a stall switch) fails, the best last.
    fallbacks: Vec<NodeId>,
}

/// The local publish.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Local {
    Off,
    Live {
        revision: i64,
    },
    /// The upstream is gone since `since`; viewers are kept until `since + grace`.
    Lost {
        revision: i64,
        since: Instant,
    },
}

/// One pulled stream, as decisions.
#[derive(Debug)]
pub struct PullPolicy {
    linger: Duration,
    grace: Duration,
    backoff: Backoff,
    upstream: Upstream,
    local: Local,
    home: Option<NodeId>,
    /// Since when the stream has had no viewers.
    idle_since: Option<Instant>,
    wanted: Option<Instant>,
    /// When the last silent upstream was left.
    stall_switched: Option<Instant>,
    stopped: bool,
}

impl PullPolicy {
    /// A pull started at `now`; its first [`PullPolicy::poll`] asks to subscribe.
    #[must_use]
    pub fn new(now: Instant, linger: Duration, grace: Duration) -> Self {
        PullPolicy {
            linger,
            grace,
            backoff: Backoff::new(MIN_BACKOFF, MAX_BACKOFF),
            upstream: Upstream::Waiting { at: now, early: false },
            local: Local::Off,
            home: None,
            idle_since: None,
            wanted: None,
            stall_switched: None,
            stopped: false,
        }
    }

    pub fn on_event(&mut self, now: Instant, event: Event) -> Vec<Action> {
        if self.stopped {
            return Vec::new();
        }
        let mut actions = Vec::new();
        match event {
            Event::Demand { viewers, wanted } => {
                if self.demand(now, viewers, wanted) {
                    self.stopped = true;
                    return vec![Action::Stop];
                }
            }
            Event::Claim(claim) => match &mut self.upstream {
                Upstream::Waiting { at, early: true } => *at = now,
                Upstream::Waiting { .. } => {}
                Upstream::Subscribing { claim: seen } => *seen = claim,
                Upstream::Live(live) => {
                    // A new claim: the old upstream is stale even if its connection has not
                    // timed out yet (a crashed origin is silent).
                    if claim.is_some_and(|r| r != live.revision) {
                        info!("the stream was claimed anew: resubscribing");
                        actions.push(Action::Unsubscribe);
                        self.upstream_lost(now);
                    }
                }
            },
            Event::ClaimRenewed { from, to } => {
                let Upstream::Live(live) = &mut self.upstream else {
                    return self.on_event(now, Event::Claim(Some(to)));
                };
                if live.revision != from {
                    return self.on_event(now, Event::Claim(Some(to)));
                }
                // The subscription and the local publish carry on under the new revision.
                live.revision = to;
                if let Local::Live { revision } | Local::Lost { revision, .. } = &mut self.local {
                    if *revision == from {
                        *revision = to;
                    }
                }
            }
            Event::Home(home) => {
                self.home = home;
                if let Upstream::Live(live) = &mut self.upstream {
                    live.moving = true;
                }
            }
            Event::NotPublished => {
                self.end_local(EndReason::ClaimGone, &mut actions);
                self.upstream = Upstream::Waiting { at: now + IDLE_CHECK, early: true };
            }
            Event::NoRelay => {
                self.upstream = Upstream::Waiting { at: now + IDLE_CHECK, early: true };
            }
            Event::SubscribeFailed => {
                self.lose_local(now);
                let at = now + self.backoff.next_delay();
                self.upstream = Upstream::Waiting { at, early: true };
            }
            Event::Subscribed { origin, revision } => {
                self.subscribed(now, origin, revision, &mut actions);
            }
            Event::PublishRefused => {
                self.local = Local::Off;
                self.upstream = Upstream::Waiting { at: now + MAX_BACKOFF, early: false };
            }
            Event::Broken => {
                // The driver logs why.
                self.upstream_lost(now);
            }
            Event::Ended { claim } => {
                if let Upstream::Live(live) = &self.upstream {
                    // Still claimed under the same revision: the stream moved between origins
                    // (its home changed); otherwise the publisher left.
                    if claim == Some(live.revision) {
                        info!("upstream ended while the claim stands: resubscribing");
                        self.upstream_lost(now);
                    } else {
                        let since = live.since;
                        self.end_local(EndReason::PublisherLeft, &mut actions);
                        self.after_subscription(now, since);
                    }
                }
            }
            Event::NextReady { origin } => {
                if let Upstream::Live(live) = &mut self.upstream {
                    if live.next.take().is_some() {
                        info!(from = %live.origin, to = %origin, "stream's home moved: switched upstream");
                        live.moving = self.home.as_ref() != Some(&origin);
                        live.origin = origin.clone();
                        // Off a silent home: stay a while before trying the home again.
                        let hold = std::mem::take(&mut live.stall_switch);
                        live.fallbacks.clear();
                        live.next_retry = hold.then(|| now + STALL_HOLD);
                        actions.push(Action::Promote { to: origin });
                        actions.push(Action::SwitchUpstream);
                    }
                }
            }
            Event::NextFailed { .. } => {
                if let Upstream::Live(live) = &mut self.upstream {
                    match live.fallbacks.pop().filter(|_| live.stall_switch) {
                        // Off a silent upstream: the next source at once.
                        Some(to) => {
                            info!(from = %live.origin, to = %to, "upstream silent: trying the next source");
                            live.next = Some(to.clone());
                            actions.push(Action::SubscribeNext { to, revision: live.revision });
                        }
                        None => {
                            live.next = None;
                            live.stall_switch = false;
                            live.fallbacks.clear();
                            live.next_retry = Some(now + IDLE_CHECK);
                        }
                    }
                }
            }
            Event::Stalled { fallbacks } => {
                let held = self.stall_switched.is_some_and(|at| now < at + STALL_HOLD);
                if let Upstream::Live(live) = &mut self.upstream {
                    if live.next.is_none() && !held {
                        live.fallbacks = fallbacks;
                        live.fallbacks.retain(|f| *f != live.origin);
                        live.fallbacks.reverse();
                        if let Some(to) = live.fallbacks.pop() {
                            info!(from = %live.origin, to = %to, "upstream silent: subscribing at a standby or the ingest");
                            live.next = Some(to.clone());
                            live.stall_switch = true;
                            self.stall_switched = Some(now);
                            actions.push(Action::SubscribeNext { to, revision: live.revision });
                        }
                    }
                }
            }
        }
        actions.extend(self.poll(now));
        actions
    }

    /// What to do at `now` without a new event (a deadline has come).
    pub fn poll(&mut self, now: Instant) -> Vec<Action> {
        let mut actions = Vec::new();
        if self.stopped {
            return actions;
        }
        if let Local::Lost { since, .. } = self.local {
            if now >= since + self.grace {
                self.end_local(EndReason::GraceExpired, &mut actions);
            }
        }
        match &mut self.upstream {
            Upstream::Waiting { at, .. } if now >= *at => {
                self.upstream = Upstream::Subscribing { claim: None };
                actions.push(Action::Subscribe);
            }
            Upstream::Live(live) if live.moving && live.next.is_none() => {
                let moved = self.home.as_ref().filter(|h| **h != live.origin);
                if let Some(home) = moved {
                    if live.next_retry.is_none_or(|at| now >= at) {
                        live.next = Some(home.clone());
                        actions.push(Action::SubscribeNext {
                            to: home.clone(),
                            revision: live.revision,
                        });
                    }
                } else {
                    live.moving = false;
                    live.next_retry = None;
                }
            }
            _ => {}
        }
        actions
    }

    /// The next time [`PullPolicy::poll`] or an [`Event::Demand`] may decide something
    /// without another event.
    #[must_use]
    pub fn next_deadline(&self) -> Option<Instant> {
        if self.stopped {
            return None;
        }
        let grace = match self.local {
            Local::Lost { since, .. } => Some(since + self.grace),
            _ => None,
        };
        let upstream = match &self.upstream {
            Upstream::Waiting { at, .. } => Some(*at),
            Upstream::Live(live) if live.moving && live.next.is_none() => live.next_retry,
            _ => None,
        };
        let linger = self.idle_since.map(|since| {
            let since = self.wanted.map_or(since, |w| w.max(since));
            since + self.linger
        });
        [grace, upstream, linger].into_iter().flatten().min()
    }

    /// Whether the local publish is on (live or kept through a loss).
    #[must_use]
    pub fn publishing(&self) -> bool {
        self.local != Local::Off
    }

    /// A subscribe succeeded: the local publish goes on (or starts) from it.
    fn subscribed(
        &mut self,
        now: Instant,
        origin: NodeId,
        revision: i64,
        actions: &mut Vec<Action>,
    ) {
        let claim_meanwhile = match &self.upstream {
            Upstream::Subscribing { claim } => *claim,
            _ => None,
        };
        actions.push(match self.local {
            Local::Off => Action::Publish,
            Local::Live { revision: r } | Local::Lost { revision: r, .. } if r != revision => {
                Action::NewSession
            }
            Local::Live { .. } | Local::Lost { .. } => Action::SwitchUpstream,
        });
        self.local = Local::Live { revision };
        // Ring changes before now were taken into account by the lookup.
        let live = Live {
            origin,
            revision,
            since: now,
            moving: false,
            next: None,
            next_retry: None,
            stall_switch: false,
            fallbacks: Vec::new(),
        };
        self.upstream = Upstream::Live(live);
        if claim_meanwhile.is_some_and(|r| r != revision) {
            info!("the stream was claimed anew while subscribing: resubscribing");
            actions.push(Action::Unsubscribe);
            self.upstream_lost(now);
        }
    }

    /// Whether the pull is over: no viewers for `linger`, and nobody asked for the stream
    /// within `linger` (`wanted`: the table entry's last request; `None`, the entry is gone).
    fn demand(&mut self, now: Instant, viewers: usize, wanted: Option<Instant>) -> bool {
        self.wanted = wanted;
        if viewers > 0 {
            self.idle_since = None;
            return false;
        }
        let since = *self.idle_since.get_or_insert(now);
        if now < since + self.linger {
            return false;
        }
        if wanted.is_some_and(|w| now < w + self.linger) {
            return false;
        }
        info!(linger = ?self.linger, "no viewers: stopping the pull");
        true
    }

    /// The live subscription is gone while the stream is still there: keep the viewers for
    /// the grace time and subscribe again.
    fn upstream_lost(&mut self, now: Instant) {
        let Upstream::Live(live) = &self.upstream else { return };
        let since = live.since;
        self.lose_local(now);
        self.after_subscription(now, since);
    }

    /// A subscription that lived since `since` ended: when to subscribe again.
    fn after_subscription(&mut self, now: Instant, since: Instant) {
        let at = if now.duration_since(since) < QUICK_FAILURE {
            now + self.backoff.next_delay()
        } else {
            self.backoff.reset();
            now
        };
        self.upstream = Upstream::Waiting { at, early: false };
    }

    fn lose_local(&mut self, now: Instant) {
        if let Local::Live { revision } = self.local {
            self.local = Local::Lost { revision, since: now };
        }
    }

    fn end_local(&mut self, why: EndReason, actions: &mut Vec<Action>) {
        if self.local != Local::Off {
            self.local = Local::Off;
            actions.push(Action::EndLocal(why));
        }
    }
}

#[cfg(test)]
mod tests;
