//! The node's reaction to management orders, sans-IO: cache snapshots and the time in,
//! [`Action`]s out. The driver in `crate::orders` only carries them out and sleeps until
//! [`OrderPolicy::next_deadline`].
//!
//! - The node registers as `Starting`; the first full snapshot (its cache's first listing) makes
//!   it `Ready`, unless a drain order names it: a drained node that restarts never shows ready.
//! - A drain order naming this node starts a drain: the deadline is the order's
//!   `deadline_seconds` (or the node's `drain_timeout` for 0) from when the node first sees
//!   it, on the node's own clock. A changed order (another deadline) restarts that count,
//!   unless what was left is already closed.
//! - At the deadline the remaining viewers (and, on an origin, publishers) are closed, once.
//! - The order deleted: the drain ends, the node takes new work again.
//! - A kick order for a stream whose publisher this node holds (the ingest origin: the claim
//!   names it) closes that publisher, if the kick was issued after the claim was made (kick
//!   revision > claim revision): an encoder that reconnects is not kicked again by the same
//!   order. Each claim is kicked at most once.

use std::collections::BTreeMap;
use std::time::{Duration, Instant};

use sluice_cluster::types::{DrainOrder, NodeId, NodeState, Role, Snapshot};
use sluice_media::stream_name::StreamKey;

/// What the driver must do.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Action {
    /// The cache has its first listing and no drain order names this node: advertise `Ready`.
    Ready,
    /// Mark this node draining (registry state, readiness, refuse or redirect new work); what
    /// is left is closed at `deadline`.
    StartDrain { deadline: Instant, order: DrainOrder },
    /// The deadline passed: close the remaining viewers (and publishers, on an origin).
    CloseRemaining,
    /// The order was cancelled: ready again.
    EndDrain,
    /// Close the publisher of `stream` (this node holds its claim).
    Kick { stream: StreamKey, issued_at_ms: u64 },
}

#[derive(Debug, Clone)]
struct Drain {
    order: DrainOrder,
    deadline: Instant,
    closed: bool,
}

/// One node's order state.
#[derive(Debug)]
pub struct OrderPolicy {
    role: Role,
    id: NodeId,
    /// The node's `drain_timeout`, for orders with no deadline of their own.
    default_deadline: Duration,
    drain: Option<Drain>,
    /// Streams kicked, with the claim revision kicked (forgotten when the kick order goes).
    kicked: BTreeMap<StreamKey, i64>,
    /// Whether a loaded snapshot was seen (and the node announced).
    started: bool,
}

impl OrderPolicy {
    pub fn new(role: Role, id: NodeId, default_deadline: Duration) -> OrderPolicy {
        OrderPolicy {
            role,
            id,
            default_deadline,
            drain: None,
            kicked: BTreeMap::new(),
            started: false,
        }
    }

    /// Whether a drain order is in force.
    pub fn is_draining(&self) -> bool {
        self.drain.is_some()
    }

    /// React to a new snapshot of the cluster at `now`.
    pub fn observe(&mut self, snap: &Snapshot, now: Instant) -> Vec<Action> {
        let mut out = Vec::new();
        if snap.revision == 0 {
            return out; // Not loaded yet: an empty cache says nothing about orders.
        }
        let order = snap.drain_order(self.role, &self.id).map(|r| r.order);
        if !self.started {
            self.started = true;
            if order.is_none() {
                out.push(Action::Ready);
            }
        }
        match (order, self.drain.as_mut()) {
            (Some(order), None) => {
                let deadline = now + self.deadline_of(order);
                self.drain = Some(Drain { order, deadline, closed: false });
                out.push(Action::StartDrain { deadline, order });
            }
            (Some(order), Some(d)) if d.order != order => {
                d.order = order;
                if !d.closed {
                    d.deadline = now + deadline_of(order, self.default_deadline);
                    out.push(Action::StartDrain { deadline: d.deadline, order });
                }
            }
            (None, Some(_)) => {
                self.drain = None;
                out.push(Action::EndDrain);
            }
            _ => {}
        }
        out.extend(self.tick(now));
        if self.role == Role::Origin {
            for (stream, kick) in &snap.kicks {
                let Some(claim) = snap.stream(stream) else { continue };
                let ours = claim.info.origin == self.id;
                if !ours || !kick.applies_to(claim.create_revision) {
                    continue;
                }
                if self.kicked.get(stream) == Some(&claim.create_revision) {
                    continue;
                }
                self.kicked.insert(stream.clone(), claim.create_revision);
                out.push(Action::Kick {
                    stream: stream.clone(),
                    issued_at_ms: kick.order.issued_at_ms,
                });
            }
            self.kicked.retain(|stream, _| snap.kicks.contains_key(stream));
        }
        out
    }

    /// React to the time passing: the drain's deadline.
    pub fn tick(&mut self, now: Instant) -> Option<Action> {
        let d = self.drain.as_mut()?;
        if d.closed || now < d.deadline {
            return None;
        }
        d.closed = true;
        Some(Action::CloseRemaining)
    }

    /// When [`OrderPolicy::tick`] has something to do next.
    pub fn next_deadline(&self) -> Option<Instant> {
        self.drain.as_ref().filter(|d| !d.closed).map(|d| d.deadline)
    }

    fn deadline_of(&self, order: DrainOrder) -> Duration {
        deadline_of(order, self.default_deadline)
    }
}

fn deadline_of(order: DrainOrder, default: Duration) -> Duration {
    match order.deadline_seconds {
        0 => default,
        s => Duration::from_secs(u64::from(s)),
    }
}

/// Where a draining edge sends new HTTP viewers: the HTTP address (`host:port`) of another
/// ready edge that is not draining and has no drain order, the least loaded by its last
/// report (then by id); `None` when there is none.
pub fn redirect_target(snap: &Snapshot, me: &NodeId) -> Option<String> {
    snap.nodes_of(Role::Edge)
        .filter(|n| n.id != *me && n.info.state == NodeState::Ready)
        .filter(|n| snap.drain_order(Role::Edge, &n.id).is_none())
        .filter_map(|n| {
            let report = snap.load(Role::Edge, &n.id).map(|l| &l.report);
            if report.is_some_and(|r| r.draining) {
                return None;
            }
            let load = report.map_or(0, sluice_cluster::types::LoadReport::total_viewers);
            Some((load, &n.id, n.info.addresses.get("http")?))
        })
        .min_by(|a, b| (a.0, a.1).cmp(&(b.0, b.1)))
        .map(|(_, _, addr)| addr.clone())
}

#[cfg(test)]
#[allow(clippy::disallowed_methods)] // `Instant::now()` is only the virtual clock's origin
mod tests {
    use super::*;
    use sluice_cluster::types::{
        DrainRecord, KickOrder, KickRecord, LoadRecord, LoadReport, NodeInfo, NodeRecord,
        StreamInfo, StreamRecord,
    };

    fn id(s: &str) -> NodeId {
        NodeId::new(s).unwrap()
    }

    fn sk(name: &str) -> StreamKey {
        StreamKey::parse("live", name).unwrap().0
    }

    fn order(snap: &mut Snapshot, role: Role, name: &str, secs: u32, issued: u64) {
        let order = DrainOrder { deadline_seconds: secs, issued_at_ms: issued };
        let rec = DrainRecord { role, id: id(name), order, mod_revision: 1 };
        snap.drains.insert((role, id(name)), rec);
    }

    fn claim(snap: &mut Snapshot, name: &str, origin: &str, rev: i64) {
        let info = StreamInfo {
            origin: id(origin),
            codecs: vec![],
            started_at_ms: 0,
            rendition_of: None,
            playout: false,
        };
        let rec = StreamRecord {
            stream: sk(name),
            info,
            lease: 1,
            create_revision: rev,
            mod_revision: rev,
        };
        snap.streams.insert(sk(name), rec);
    }

    fn kick(snap: &mut Snapshot, name: &str, rev: i64) {
        let rec = KickRecord {
            stream: sk(name),
            order: KickOrder { issued_at_ms: 9 },
            mod_revision: rev,
        };
        snap.kicks.insert(sk(name), rec);
    }

    /// A snapshot after the cache's first listing.
    fn loaded() -> Snapshot {
        Snapshot { revision: 1, connected: true, ..Snapshot::default() }
    }

    fn edge(snap: &mut Snapshot, name: &str, state: NodeState, viewers: Option<(u64, bool)>) {
        let mut info = NodeInfo { state, ..NodeInfo::default() };
        info.addresses.insert("http".into(), format!("{name}:8080"));
        let rec = NodeRecord {
            role: Role::Edge,
            id: id(name),
            info,
            lease: 1,
            create_revision: 1,
            mod_revision: 1,
        };
        snap.nodes.insert((Role::Edge, id(name)), rec);
        if let Some((n, draining)) = viewers {
            let mut report = LoadReport { draining, ..LoadReport::default() };
            report.viewers.insert("flv".into(), n);
            let rec =
                LoadRecord { role: Role::Edge, id: id(name), report, lease: 1, mod_revision: 1 };
            snap.loads.insert((Role::Edge, id(name)), rec);
        }
    }

    #[test]
    fn a_drain_closes_what_is_left_at_its_deadline_once_and_ends_on_cancel() {
        let t0 = Instant::now();
        let mut p = OrderPolicy::new(Role::Edge, id("e1"), Duration::from_secs(10));
        let mut snap = Snapshot::default();
        assert!(p.observe(&snap, t0).is_empty(), "nothing before the first listing");
        snap.revision = 1;
        assert_eq!(p.observe(&snap, t0), [Action::Ready], "loaded, no order: ready");
        assert!(p.observe(&snap, t0).is_empty(), "announced once");
        // Another node's order is not ours.
        order(&mut snap, Role::Edge, "e2", 5, 1);
        order(&mut snap, Role::Origin, "e1", 5, 1);
        assert!(p.observe(&snap, t0).is_empty());
        order(&mut snap, Role::Edge, "e1", 5, 1);
        let t1 = t0 + Duration::from_secs(1);
        let order1 = DrainOrder { deadline_seconds: 5, issued_at_ms: 1 };
        let deadline = t1 + Duration::from_secs(5);
        assert_eq!(p.observe(&snap, t1), [Action::StartDrain { deadline, order: order1 }]);
        assert!(p.is_draining());
        // The same order seen again changes nothing; the deadline is pending.
        assert!(p.observe(&snap, t1 + Duration::from_secs(2)).is_empty());
        assert_eq!(p.next_deadline(), Some(deadline));
        assert_eq!(p.tick(deadline - Duration::from_millis(1)), None);
        assert_eq!(p.tick(deadline), Some(Action::CloseRemaining));
        assert_eq!(p.tick(deadline + Duration::from_secs(1)), None, "closed once");
        assert_eq!(p.next_deadline(), None);
        // A changed order after the close does not reopen anything.
        order(&mut snap, Role::Edge, "e1", 60, 2);
        assert!(p.observe(&snap, deadline + Duration::from_secs(2)).is_empty());
        // Cancelled: ready again.
        snap.drains.clear();
        assert_eq!(p.observe(&snap, deadline + Duration::from_secs(3)), [Action::EndDrain]);
        assert!(!p.is_draining());
        assert!(p.observe(&snap, deadline + Duration::from_secs(4)).is_empty());
    }

    #[test]
    fn no_deadline_in_the_order_means_the_nodes_own_and_a_new_one_restarts_the_count() {
        let t0 = Instant::now();
        let mut p = OrderPolicy::new(Role::Origin, id("o1"), Duration::from_secs(10));
        let mut snap = loaded();
        order(&mut snap, Role::Origin, "o1", 0, 1);
        // Drained before it starts: it never announces itself ready.
        let acts = p.observe(&snap, t0);
        assert!(
            matches!(acts[..], [Action::StartDrain { deadline, .. }] if deadline == t0 + Duration::from_secs(10))
        );
        order(&mut snap, Role::Origin, "o1", 2, 2);
        let t1 = t0 + Duration::from_secs(3);
        let acts = p.observe(&snap, t1);
        assert!(
            matches!(acts[..], [Action::StartDrain { deadline, .. }] if deadline == t1 + Duration::from_secs(2))
        );
        // An order seen late with its deadline already due closes at once.
        let mut late = OrderPolicy::new(Role::Edge, id("e1"), Duration::ZERO);
        let mut snap = loaded();
        order(&mut snap, Role::Edge, "e1", 0, 1);
        let acts = late.observe(&snap, t0);
        assert_eq!(acts.len(), 2);
        assert_eq!(acts[1], Action::CloseRemaining);
    }

    #[test]
    fn kicks_hit_only_our_older_claims_and_only_once() {
        let t0 = Instant::now();
        let mut p = OrderPolicy::new(Role::Origin, id("o1"), Duration::from_secs(10));
        let mut snap = loaded();
        assert_eq!(p.observe(&snap, t0), [Action::Ready]);
        claim(&mut snap, "a", "o1", 5);
        claim(&mut snap, "b", "o2", 5);
        kick(&mut snap, "a", 7);
        kick(&mut snap, "b", 7);
        kick(&mut snap, "gone", 7);
        let acts = p.observe(&snap, t0);
        assert_eq!(acts, [Action::Kick { stream: sk("a"), issued_at_ms: 9 }]);
        assert!(p.observe(&snap, t0).is_empty(), "kicked once");
        // The encoder reconnects: a new claim, younger than the kick, is left alone.
        claim(&mut snap, "a", "o1", 8);
        assert!(p.observe(&snap, t0).is_empty());
        // A new kick (issued after the new claim) counts.
        kick(&mut snap, "a", 10);
        assert_eq!(p.observe(&snap, t0).len(), 1);
        // Edges never kick.
        let mut e = OrderPolicy::new(Role::Edge, id("o1"), Duration::from_secs(10));
        assert_eq!(e.observe(&snap, t0), [Action::Ready], "edges never kick");
    }

    #[test]
    fn redirects_go_to_the_least_loaded_ready_edge_not_draining() {
        let mut snap = Snapshot::default();
        edge(&mut snap, "e1", NodeState::Draining, Some((0, true)));
        assert_eq!(redirect_target(&snap, &id("e1")), None);
        edge(&mut snap, "e2", NodeState::Ready, Some((5, false)));
        edge(&mut snap, "e3", NodeState::Ready, Some((2, false)));
        edge(&mut snap, "e4", NodeState::Ready, Some((0, true)));
        edge(&mut snap, "e5", NodeState::Starting, None);
        edge(&mut snap, "e6", NodeState::Ready, Some((1, false)));
        order(&mut snap, Role::Edge, "e6", 0, 1);
        assert_eq!(redirect_target(&snap, &id("e1")).as_deref(), Some("e3:8080"));
        // An edge that has not reported yet counts as empty.
        edge(&mut snap, "e7", NodeState::Ready, None);
        assert_eq!(redirect_target(&snap, &id("e1")).as_deref(), Some("e7:8080"));
    }
}
