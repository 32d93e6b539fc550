//! Flap damping of ring membership: pure logic, time passed in.
//!
//! Rules, per node:
//! - Every change of observed presence (join or leave) is a *transition*. A node with at least
//!   `flap_threshold` transitions within `flap_window` is *flapping*.
//! - A present node is in the ring, unless it is flapping: then it is held out until it has
//!   been present continuously for `stable_for`.
//! - An absent node is out of the ring, except that a node which was in the ring when it left
//!   is kept in for `leave_grace` (absorbs a quick re-registration; default 0).
//!
//! A fresh join therefore counts immediately; a node that joins, leaves and rejoins within the
//! window (the default threshold is 3) waits `stable_for` before it takes streams again, so
//! streams do not bounce with it. Keep `stable_for <= flap_window`.

use crate::types::NodeId;
use std::collections::{BTreeMap, BTreeSet, VecDeque};
use std::time::{Duration, Instant};

/// Damping parameters (see the module docs).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct DampingConfig {
    pub flap_threshold: u32,
    pub flap_window: Duration,
    pub stable_for: Duration,
    pub leave_grace: Duration,
}

impl Default for DampingConfig {
    /// 3 transitions in 60 s is flapping; then 30 s of presence to be placed again; no grace.
    fn default() -> Self {
        DampingConfig {
            flap_threshold: 3,
            flap_window: Duration::from_secs(60),
            stable_for: Duration::from_secs(30),
            leave_grace: Duration::ZERO,
        }
    }
}

#[derive(Debug, Clone)]
struct Track {
    present: bool,
    /// When the observed presence last changed.
    since: Instant,
    /// Recent transitions, oldest first, none older than the window (at most threshold kept).
    transitions: VecDeque<Instant>,
    /// Whether the node was in the ring when it was last seen leaving.
    in_ring_when_left: bool,
    /// `since` before the last leave (restored when the node returns within the grace).
    present_since: Instant,
}

/// Decides ring membership from observed presence over time.
#[derive(Debug, Clone)]
pub struct Damper {
    cfg: DampingConfig,
    nodes: BTreeMap<NodeId, Track>,
}

impl Damper {
    pub fn new(cfg: DampingConfig) -> Damper {
        Damper { cfg, nodes: BTreeMap::new() }
    }

    /// Record that exactly `present` are registered at `now`.
    pub fn observe(&mut self, present: &BTreeSet<NodeId>, now: Instant) {
        for id in present {
            if !self.nodes.contains_key(id) {
                self.nodes.insert(
                    id.clone(),
                    Track {
                        present: false,
                        since: now,
                        transitions: VecDeque::new(),
                        in_ring_when_left: false,
                        present_since: now,
                    },
                );
            }
        }
        let cfg = self.cfg.clone();
        for (id, track) in &mut self.nodes {
            let is_present = present.contains(id);
            if track.present != is_present {
                let in_grace = is_present && decide(&cfg, track, now);
                track.present = is_present;
                if in_grace {
                    // Back within the leave grace: the dip never happened.
                    track.transitions.pop_back();
                    track.in_ring_when_left = false;
                    track.since = track.present_since;
                } else {
                    if !is_present {
                        track.in_ring_when_left = decide_as(&cfg, track, now, true);
                        track.present_since = track.since;
                    }
                    track.transitions.push_back(now);
                    track.since = now;
                }
            }
            prune(&cfg, track, now);
        }
        // Forget nodes that are gone for good: absent, out of the ring, no recent history.
        self.nodes.retain(|_, t| t.present || !t.transitions.is_empty() || decide(&cfg, t, now));
    }

    /// The ring members at `now`.
    pub fn members(&self, now: Instant) -> BTreeSet<NodeId> {
        self.nodes
            .iter()
            .filter(|(_, t)| decide(&self.cfg, t, now))
            .map(|(id, _)| id.clone())
            .collect()
    }

    /// The earliest instant after `now` at which [`Damper::members`] may change without a new
    /// observation (a hold or grace ending, a flap aging out); `None` if nothing is pending.
    pub fn next_change(&self, now: Instant) -> Option<Instant> {
        let mut next: Option<Instant> = None;
        let mut consider = |at: Instant| {
            if at > now {
                next = Some(next.map_or(at, |n| n.min(at)));
            }
        };
        for t in self.nodes.values() {
            if t.present && is_flapping(&self.cfg, t, now) {
                consider(t.since + self.cfg.stable_for);
                if let Some(oldest) = t.transitions.front() {
                    consider(*oldest + self.cfg.flap_window);
                }
            } else if !t.present && t.in_ring_when_left {
                consider(t.since + self.cfg.leave_grace);
            }
        }
        next
    }
}

fn is_flapping(cfg: &DampingConfig, t: &Track, now: Instant) -> bool {
    let recent = t
        .transitions
        .iter()
        .filter(|at| now.saturating_duration_since(**at) < cfg.flap_window)
        .count();
    recent >= cfg.flap_threshold as usize
}

/// Is the node in the ring at `now`?
fn decide(cfg: &DampingConfig, t: &Track, now: Instant) -> bool {
    decide_as(cfg, t, now, t.present)
}

/// [`decide`] as if the node's presence were `present` (its state just before a change).
fn decide_as(cfg: &DampingConfig, t: &Track, now: Instant, present: bool) -> bool {
    let held_for = now.saturating_duration_since(t.since);
    if present {
        !is_flapping(cfg, t, now) || held_for >= cfg.stable_for
    } else {
        t.in_ring_when_left && held_for < cfg.leave_grace
    }
}

/// Drop transitions outside the window; keep at most `flap_threshold` (all that matters).
fn prune(cfg: &DampingConfig, t: &mut Track, now: Instant) {
    while t
        .transitions
        .front()
        .is_some_and(|at| now.saturating_duration_since(*at) >= cfg.flap_window)
    {
        t.transitions.pop_front();
    }
    let keep = cfg.flap_threshold.max(1) as usize;
    while t.transitions.len() > keep {
        t.transitions.pop_front();
    }
}

#[cfg(test)]
#[allow(clippy::disallowed_methods)] // `Instant::now()` is only the virtual clock's origin
mod tests {
    use super::*;

    /// A fake clock: a fixed origin plus seconds.
    struct Clock(Instant);
    impl Clock {
        fn at(&self, secs: u64) -> Instant {
            self.0 + Duration::from_secs(secs)
        }
    }

    fn id(s: &str) -> NodeId {
        NodeId::new(s).unwrap()
    }

    fn set(ids: &[&str]) -> BTreeSet<NodeId> {
        ids.iter().map(|s| id(s)).collect()
    }

    fn cfg() -> DampingConfig {
        DampingConfig {
            flap_threshold: 3,
            flap_window: Duration::from_secs(60),
            stable_for: Duration::from_secs(20),
            leave_grace: Duration::ZERO,
        }
    }

    #[test]
    fn stable_nodes_join_and_leave_at_once() {
        let c = Clock(Instant::now());
        let mut d = Damper::new(cfg());
        d.observe(&set(&["a", "b"]), c.at(0));
        assert_eq!(d.members(c.at(0)), set(&["a", "b"]));
        d.observe(&set(&["a"]), c.at(5));
        assert_eq!(d.members(c.at(5)), set(&["a"]));
        assert_eq!(d.next_change(c.at(5)), None);
    }

    #[test]
    fn flapping_node_is_held_out_until_stable() {
        let c = Clock(Instant::now());
        let mut d = Damper::new(cfg());
        d.observe(&set(&["a", "b"]), c.at(0)); // b joins (1)
        d.observe(&set(&["a"]), c.at(2)); // b leaves (2)
        assert_eq!(d.members(c.at(2)), set(&["a"]));
        d.observe(&set(&["a", "b"]), c.at(4)); // b rejoins (3): flapping
        assert_eq!(d.members(c.at(4)), set(&["a"]));
        assert_eq!(d.next_change(c.at(4)), Some(c.at(24)));
        assert_eq!(d.members(c.at(23)), set(&["a"]));
        assert_eq!(d.members(c.at(24)), set(&["a", "b"]));
        // Another dip restarts the hold.
        d.observe(&set(&["a"]), c.at(30));
        d.observe(&set(&["a", "b"]), c.at(31));
        assert_eq!(d.members(c.at(31)), set(&["a"]));
        assert_eq!(d.members(c.at(50)), set(&["a"]));
        assert_eq!(d.members(c.at(51)), set(&["a", "b"]));
    }

    #[test]
    fn flaps_age_out_of_the_window() {
        let c = Clock(Instant::now());
        let mut d = Damper::new(cfg());
        d.observe(&set(&["b"]), c.at(0));
        d.observe(&set(&[]), c.at(1));
        // Rejoins long after: only 3 transitions in total, but 2 aged out.
        d.observe(&set(&["b"]), c.at(100));
        assert_eq!(d.members(c.at(100)), set(&["b"]));
    }

    #[test]
    fn leave_grace_keeps_a_node_in_briefly() {
        let c = Clock(Instant::now());
        let mut d = Damper::new(DampingConfig { leave_grace: Duration::from_secs(3), ..cfg() });
        d.observe(&set(&["a", "b"]), c.at(0));
        d.observe(&set(&["a"]), c.at(10));
        assert_eq!(d.members(c.at(10)), set(&["a", "b"]));
        assert_eq!(d.next_change(c.at(10)), Some(c.at(13)));
        assert_eq!(d.members(c.at(13)), set(&["a"]));
        // b rejoined at 20 (3rd transition: flapping, held out); dips of less than the grace
        // do not count as flaps and keep it in.
        d.observe(&set(&["a", "b"]), c.at(20));
        assert_eq!(d.members(c.at(20)), set(&["a"]));
        assert_eq!(d.members(c.at(40)), set(&["a", "b"]));
        for t in [41, 43, 45, 47] {
            d.observe(&set(&["a"]), c.at(t));
            assert_eq!(d.members(c.at(t + 1)), set(&["a", "b"]));
            d.observe(&set(&["a", "b"]), c.at(t + 1));
            assert_eq!(d.members(c.at(t + 1)), set(&["a", "b"]));
        }
    }

    #[test]
    fn forgotten_nodes_do_not_accumulate() {
        let c = Clock(Instant::now());
        let mut d = Damper::new(cfg());
        for i in 0..100u64 {
            let name = format!("n{i}");
            d.observe(&set(&[name.as_str()]), c.at(i));
            d.observe(&set(&[]), c.at(i));
        }
        d.observe(&set(&[]), c.at(1000));
        assert!(d.nodes.is_empty());
        assert_eq!(d.next_change(c.at(1000)), None);
    }
}
