//! The decisions of one stream's outgoing forwards (ingest -> its home and standbys), without
//! I/O.
//!
//! [`ForwardPolicy`] is told what happened ([`Event`], with the time passed in) and answers
//! what to do ([`Action`]); the async task in `forward.rs` opens and drops the relay forwards
//! it names and sleeps until [`ForwardPolicy::next_deadline`]. The rules:
//!
//! - The stream is wanted at its *owners* by this node's ring: its home, then its standbys
//!   (`Ring::owners`). One forward is kept open to each owner that is not this node; they are
//!   independent, so a standby that becomes the home (the home died) keeps the forward it has.
//! - A failed open, or a forward that ends by itself (the owner went away or refused), is
//!   retried after that owner's backoff, which doubles up to its maximum and resets once a
//!   forward to it opens.
//! - A forward to a node that is no longer an owner is closed [`HANDOVER`] after the ring
//!   changed, and only once the new home holds the stream (its forward is open, or this node
//!   is the home): edges pulling from it move make-before-break meanwhile. An owner that comes
//!   back before that keeps its forward.
//! - The publisher left: no new forward; opens in flight are waited for, then the open
//!   forwards are left to deliver what is in flight ([`Action::Finish`]).

use std::collections::BTreeMap;
use std::time::{Duration, Instant};

use sluice_cluster::types::NodeId;
use sluice_cluster::Backoff;

/// How long a forward to a node that is no longer an owner outlives the ring change.
pub const HANDOVER: Duration = Duration::from_secs(2);

/// What happened to the forwards.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Event {
    /// The ring changed (or this is the start): the stream's owners by this node's ring, the
    /// home first, then its standbys (empty: no ring).
    Owners(Vec<NodeId>),
    /// The forward asked for by [`Action::Open`] is open.
    Opened { to: NodeId },
    /// The forward asked for by [`Action::Open`] could not be opened (no address, no
    /// connection, refused).
    OpenFailed { to: NodeId },
    /// The open forward to `to` ended by itself.
    Finished { to: NodeId },
    /// The stream's publisher left.
    PublisherLeft,
}

/// What the driver must do.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Action {
    /// Open a forward to `to`; answer [`Event::Opened`] or [`Event::OpenFailed`].
    Open { to: NodeId },
    /// Drop the forward to `to`.
    Close { to: NodeId },
    /// The publisher left: let the open forwards deliver what is in flight, then end. The
    /// policy takes no more events.
    Finish,
}

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum State {
    /// No forward; open one at this time (if still wanted).
    Waiting {
        at: Instant,
    },
    Opening,
    Open,
}

/// The forward to one node.
#[derive(Debug)]
struct Link {
    state: State,
    backoff: Backoff,
    /// The node stopped being an owner at this time.
    unwanted_since: Option<Instant>,
}

/// One stream's outgoing forwards, as decisions.
#[derive(Debug)]
pub struct ForwardPolicy {
    me: NodeId,
    backoff: Backoff,
    /// The stream's home, unless that is this node.
    home: Option<NodeId>,
    links: BTreeMap<NodeId, Link>,
    leaving: bool,
    finished: bool,
}

impl ForwardPolicy {
    /// The policy of the forwards from `me`, each owner's retries paced by a copy of
    /// `backoff`; feed it [`Event::Owners`] first.
    #[must_use]
    pub fn new(me: NodeId, backoff: Backoff) -> Self {
        ForwardPolicy {
            me,
            backoff,
            home: None,
            links: BTreeMap::new(),
            leaving: false,
            finished: false,
        }
    }

    pub fn on_event(&mut self, now: Instant, event: Event) -> Vec<Action> {
        if self.finished {
            return Vec::new();
        }
        let mut actions = Vec::new();
        match event {
            Event::Owners(owners) => self.owners(now, &owners),
            Event::Opened { to } => match self.links.get_mut(&to) {
                Some(link) => {
                    link.state = State::Open;
                    link.backoff.reset();
                }
                // Not asked for (cannot happen): not kept either.
                None => actions.push(Action::Close { to }),
            },
            Event::OpenFailed { to } | Event::Finished { to } => {
                if let Some(link) = self.links.get_mut(&to) {
                    if link.unwanted_since.is_some() {
                        self.links.remove(&to);
                    } else {
                        link.state = State::Waiting { at: now + link.backoff.next_delay() };
                    }
                }
            }
            Event::PublisherLeft => self.leaving = true,
        }
        actions.extend(self.poll(now));
        actions
    }

    fn owners(&mut self, now: Instant, owners: &[NodeId]) {
        self.home = owners.first().filter(|h| **h != self.me).cloned();
        for owner in owners.iter().filter(|o| **o != self.me) {
            let link = self.links.entry(owner.clone()).or_insert_with(|| Link {
                state: State::Waiting { at: now },
                backoff: self.backoff.clone(),
                unwanted_since: None,
            });
            link.unwanted_since = None;
        }
        for (node, link) in &mut self.links {
            if !owners.contains(node) {
                link.unwanted_since.get_or_insert(now);
            }
        }
    }

    /// Whether forwards to former owners may close: the home holds the stream.
    fn home_ready(&self) -> bool {
        self.home.as_ref().is_none_or(|h| self.links.get(h).is_some_and(|l| l.state == State::Open))
    }

    /// What to do at `now` without a new event (a deadline has come).
    pub fn poll(&mut self, now: Instant) -> Vec<Action> {
        if self.finished {
            return Vec::new();
        }
        if self.leaving {
            if self.links.values().any(|l| l.state == State::Opening) {
                return Vec::new();
            }
            self.finished = true;
            return vec![Action::Finish];
        }
        let home_ready = self.home_ready();
        let mut actions = Vec::new();
        self.links.retain(|to, link| match (link.unwanted_since, link.state) {
            (None, State::Waiting { at }) if at <= now => {
                link.state = State::Opening;
                actions.push(Action::Open { to: to.clone() });
                true
            }
            (Some(_), State::Waiting { .. }) => false,
            (Some(since), State::Open) if home_ready && now >= since + HANDOVER => {
                actions.push(Action::Close { to: to.clone() });
                false
            }
            _ => true,
        });
        actions
    }

    /// When [`ForwardPolicy::poll`] has something to do without a new event: the earliest
    /// retry of a wanted forward, or hand-over end of an unwanted one. `None`: wait for events.
    #[must_use]
    pub fn next_deadline(&self) -> Option<Instant> {
        if self.finished || self.leaving {
            return None;
        }
        let home_ready = self.home_ready();
        self.links
            .values()
            .filter_map(|link| match (link.unwanted_since, link.state) {
                (None, State::Waiting { at }) => Some(at),
                (Some(since), State::Open) if home_ready => Some(since + HANDOVER),
                _ => None,
            })
            .min()
    }

    /// The nodes the stream is forwarded to now (open forwards).
    pub fn open(&self) -> impl Iterator<Item = &NodeId> {
        self.links.iter().filter(|(_, l)| l.state == State::Open).map(|(to, _)| to)
    }
}

#[cfg(test)]
#[path = "policy_tests.rs"]
mod tests;
