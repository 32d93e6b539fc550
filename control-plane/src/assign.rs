//! Viewer assignment: consistent hashing with bounded loads (Mirrokni, Thorup and
//! Zadimoghaddam, "Consistent Hashing with Bounded Loads", 2016; HAProxy's
//! `hash-balance-factor`), weighted by each edge's reported capacity.
//!
//! Sans-IO: edges and their loads come in, a choice comes out; no clock, no sockets.
//!
//! # The rule
//!
//! Let `M` be the viewers currently on the eligible edges (ready, not draining), `C` the sum of
//! their capacities, `c` the balance factor (> 1, default 1.25). Edge `i` with capacity `cap_i`
//! may take one more viewer when
//!
//! ```text
//! load_i + 1 <= limit_i = min(cap_i, ceil(c * (M + 1) * cap_i / C))
//! ```
//!
//! i.e. when it stays within `c` times its capacity-weighted share of the mean load, and within
//! its own capacity. A viewer of stream `s` walks the ring from the hash of `s` and takes the
//! first edge that may. So a stream's viewers stay on its first edge until that edge is at its
//! limit, then spill to the next edge of the stream's walk, never onto one at its limit: each
//! stream is relayed to as few edges as the load allows, and no edge exceeds `c` times its share.
//!
//! Some edge always has room below its share: if every edge had `load_i >= limit_i >=
//! c (M + 1) cap_i / C`, the loads would sum to at least `c (M + 1) > M`. So the only failure
//! with edges present is that every edge is at its own capacity ([`AssignError::Full`]).

use hashring::DefaultHashBuilder;
use sluice_cluster::NodeId;
use std::hash::{BuildHasher, Hasher};

/// HAProxy's and Vimeo's default: an edge may carry 25 % more than its share.
pub const DEFAULT_BALANCE_FACTOR: f64 = 1.25;

/// Ring points of an edge of average capacity. Points scale with capacity (a larger edge is the
/// first choice of more streams), from 1 to four times this.
pub const VNODES_PER_EDGE: u32 = 64;

/// The balance factor `c`: how far above its capacity-weighted share of the mean load an edge
/// may go. Finite and greater than 1 (at 1 the ring degenerates to least-loaded placement; below
/// 1 no assignment could satisfy every edge).
#[derive(Debug, Clone, Copy, PartialEq)]
pub struct BalanceFactor(f64);

/// A balance factor that is not a finite number above 1.
#[derive(Debug, Clone, Copy, PartialEq, thiserror::Error)]
#[error("invalid balance factor {0}: must be a finite number greater than 1 (e.g. 1.25)")]
pub struct InvalidBalanceFactor(pub f64);

impl BalanceFactor {
    pub fn new(factor: f64) -> Result<BalanceFactor, InvalidBalanceFactor> {
        if factor.is_finite() && factor > 1.0 {
            Ok(BalanceFactor(factor))
        } else {
            Err(InvalidBalanceFactor(factor))
        }
    }

    pub fn get(self) -> f64 {
        self.0
    }
}

impl Default for BalanceFactor {
    fn default() -> BalanceFactor {
        BalanceFactor(DEFAULT_BALANCE_FACTOR)
    }
}

impl std::str::FromStr for BalanceFactor {
    type Err = InvalidBalanceFactor;
    fn from_str(s: &str) -> Result<BalanceFactor, InvalidBalanceFactor> {
        BalanceFactor::new(s.trim().parse::<f64>().unwrap_or(f64::NAN))
    }
}

/// One eligible edge as the caller sees it: ready, not draining, with its reported figures.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct EdgeLoad {
    pub id: NodeId,
    /// Most viewers the edge is configured for. Edges with capacity 0 are left out.
    pub capacity: u64,
    /// Viewers on the edge now (its last report plus what was assigned since).
    pub load: u64,
}

/// Why no edge was chosen.
#[derive(Debug, Clone, Copy, PartialEq, Eq, thiserror::Error)]
pub enum AssignError {
    /// No ready, non-draining edge with a capacity above 0.
    #[error("no edge is available")]
    NoEdges,
    /// Every edge is at its configured capacity.
    #[error("every edge is at its capacity")]
    Full,
}

/// The ring over a set of edges and their loads. Immutable ring, mutable loads: [`assign`]
/// counts each viewer it places, so a burst of calls between two load reports spreads correctly.
///
/// [`assign`]: Assigner::assign
#[derive(Debug, Clone)]
pub struct Assigner {
    factor: BalanceFactor,
    /// Sorted by id, so equal inputs give equal rings whatever their order.
    edges: Vec<EdgeLoad>,
    /// `(hash, index into edges)`, sorted by hash (ties by index: deterministic everywhere).
    points: Vec<(u64, u32)>,
    total_load: u64,
    total_capacity: u64,
}

impl Assigner {
    /// A ring over `edges` (callers pass only ready, non-draining ones). Edges with capacity 0
    /// are dropped; a repeated id keeps its first entry.
    pub fn new(edges: impl IntoIterator<Item = EdgeLoad>, factor: BalanceFactor) -> Assigner {
        let edges = normalise(edges);
        let total_capacity = edges.iter().map(|e| e.capacity).fold(0u64, u64::saturating_add);
        let total_load = edges.iter().map(|e| e.load).fold(0u64, u64::saturating_add);
        let points = ring_points(&edges, total_capacity);
        Assigner { factor, edges, points, total_load, total_capacity }
    }

    /// The same as `Assigner::new(edges, factor)`, reusing the ring when the edges and their
    /// capacities are unchanged (only loads moved, the common case between two calls): the
    /// ring costs a hash per point to build, a load update costs nothing.
    pub fn update(&mut self, edges: impl IntoIterator<Item = EdgeLoad>) {
        let edges = normalise(edges);
        let same_ring = edges.len() == self.edges.len()
            && edges.iter().zip(&self.edges).all(|(a, b)| a.id == b.id && a.capacity == b.capacity);
        if same_ring {
            self.total_load = edges.iter().map(|e| e.load).fold(0u64, u64::saturating_add);
            self.edges = edges;
        } else {
            *self = Assigner::new(edges, self.factor);
        }
    }

    pub fn edges(&self) -> &[EdgeLoad] {
        &self.edges
    }

    pub fn factor(&self) -> BalanceFactor {
        self.factor
    }

    /// Viewers on all eligible edges.
    pub fn total_load(&self) -> u64 {
        self.total_load
    }

    /// How many viewers edge `index` may hold once the next viewer is placed:
    /// `min(capacity, ceil(c * (M + 1) * capacity / C))`.
    pub fn limit(&self, index: usize) -> u64 {
        let edge = &self.edges[index];
        let share =
            self.factor.0 * (self.total_load.saturating_add(1)) as f64 * edge.capacity as f64
                / self.total_capacity as f64;
        // `as` saturates for huge values; the capacity caps it anyway.
        (share.ceil() as u64).min(edge.capacity)
    }

    /// The edge the next viewer of `stream` (its `app/name`) would get, without counting it.
    pub fn choose(&self, stream: &str) -> Result<usize, AssignError> {
        self.choose_among(stream, |_| true)
    }

    /// Like [`choose`](Assigner::choose), passing over the edges in `avoid` (the ones a viewer
    /// just failed on: an edge that died stays in the registry until its lease ends) for the
    /// next ones on the ring, as if they had left it. The load bound is a preference: with
    /// every other edge past it, the first with room under its capacity takes the viewer (the
    /// dead edge's viewers all arrive at once). Only when no other edge has room at all are
    /// the avoided ones tried too: a viewer is better sent back than refused.
    pub fn choose_avoiding(&self, stream: &str, avoid: &[NodeId]) -> Result<usize, AssignError> {
        if avoid.is_empty() {
            return self.choose(stream);
        }
        let allowed = |e: &EdgeLoad| !avoid.contains(&e.id);
        self.choose_among(stream, allowed)
            .or_else(|_| self.first_with_room(stream, allowed))
            .or_else(|_| self.choose(stream))
    }

    fn choose_among(
        &self,
        stream: &str,
        allowed: impl Fn(&EdgeLoad) -> bool,
    ) -> Result<usize, AssignError> {
        let mut unseen = self.edges.iter().filter(|e| allowed(e)).count();
        if unseen == 0 {
            return Err(AssignError::NoEdges);
        }
        let mut seen = vec![false; self.edges.len()];
        for index in self.walk(stream) {
            if seen[index] || !allowed(&self.edges[index]) {
                continue;
            }
            if self.edges[index].load < self.limit(index) {
                return Ok(index);
            }
            seen[index] = true;
            unseen -= 1;
            if unseen == 0 {
                break;
            }
        }
        Err(AssignError::Full)
    }

    /// The first allowed edge on the ring from `stream` with load under its capacity.
    fn first_with_room(
        &self,
        stream: &str,
        allowed: impl Fn(&EdgeLoad) -> bool,
    ) -> Result<usize, AssignError> {
        self.walk(stream)
            .find(|&i| allowed(&self.edges[i]) && self.edges[i].load < self.edges[i].capacity)
            .ok_or(AssignError::Full)
    }

    /// Chooses an edge for one more viewer of `stream` and counts the viewer on it. Returns
    /// its index in [`edges`](Assigner::edges).
    pub fn assign(&mut self, stream: &str) -> Result<usize, AssignError> {
        let index = self.choose(stream)?;
        self.edges[index].load = self.edges[index].load.saturating_add(1);
        self.total_load = self.total_load.saturating_add(1);
        Ok(index)
    }

    /// The edge at `index` (from [`choose`](Assigner::choose) or [`assign`](Assigner::assign)).
    pub fn edge(&self, index: usize) -> &EdgeLoad {
        &self.edges[index]
    }

    /// The first ring point's edge for `stream`, ignoring load: plain consistent hashing.
    pub fn home(&self, stream: &str) -> Option<usize> {
        self.walk(stream).next()
    }

    /// Edge indices in ring order from the hash of `stream`, once around (with repeats: an edge
    /// has several points).
    fn walk(&self, stream: &str) -> impl Iterator<Item = usize> + '_ {
        let hash = hash_stream(stream);
        let start = self.points.partition_point(|&(h, _)| h < hash);
        let (after, before) = self.points.split_at(start);
        before.iter().chain(after).map(|&(_, index)| index as usize)
    }
}

/// Edges with capacity above 0, sorted by id, first entry of a repeated id.
fn normalise(edges: impl IntoIterator<Item = EdgeLoad>) -> Vec<EdgeLoad> {
    let mut edges: Vec<EdgeLoad> = edges.into_iter().filter(|e| e.capacity > 0).collect();
    edges.sort_by(|a, b| a.id.cmp(&b.id));
    edges.dedup_by(|a, b| a.id == b.id);
    edges
}

/// Points of each edge: [`VNODES_PER_EDGE`] scaled by capacity against the mean capacity,
/// between 1 and four times that. Point `k` of edge `id` hashes the bytes of `id` then `k` as
/// big-endian `u32` with `hashring`'s hasher (SipHash, fixed keys), like the origin ring.
fn ring_points(edges: &[EdgeLoad], total_capacity: u64) -> Vec<(u64, u32)> {
    let mean = total_capacity as f64 / edges.len().max(1) as f64;
    let mut points = Vec::new();
    for (index, edge) in (0u32..).zip(edges) {
        let scaled = (f64::from(VNODES_PER_EDGE) * edge.capacity as f64 / mean).round();
        let count = (scaled as u32).clamp(1, 4 * VNODES_PER_EDGE);
        for k in 0..count {
            let mut hasher = DefaultHashBuilder.build_hasher();
            hasher.write(edge.id.as_str().as_bytes());
            hasher.write(&k.to_be_bytes());
            points.push((hasher.finish(), index));
        }
    }
    points.sort_unstable();
    points
}

fn hash_stream(stream: &str) -> u64 {
    let mut hasher = DefaultHashBuilder.build_hasher();
    hasher.write(stream.as_bytes());
    hasher.finish()
}

#[cfg(test)]
mod tests {
    use super::*;

    fn edge(id: &str, capacity: u64, load: u64) -> EdgeLoad {
        EdgeLoad { id: NodeId::new(id).unwrap(), capacity, load }
    }

    #[test]
    fn factor_must_be_above_one() {
        assert!(BalanceFactor::new(1.25).is_ok());
        assert!(BalanceFactor::new(1.0).is_err());
        assert!(BalanceFactor::new(f64::NAN).is_err());
        assert!(BalanceFactor::new(f64::INFINITY).is_err());
        assert_eq!("1.5".parse::<BalanceFactor>().unwrap().get(), 1.5);
        assert!("x".parse::<BalanceFactor>().is_err());
        assert_eq!(BalanceFactor::default().get(), DEFAULT_BALANCE_FACTOR);
    }

    #[test]
    fn no_edges_is_an_error() {
        let mut a = Assigner::new([], BalanceFactor::default());
        assert_eq!(a.assign("live/x").unwrap_err(), AssignError::NoEdges);
        // Capacity 0 counts as absent.
        let mut a = Assigner::new([edge("e1", 0, 0)], BalanceFactor::default());
        assert_eq!(a.assign("live/x").unwrap_err(), AssignError::NoEdges);
    }

    #[test]
    fn full_cluster_is_an_error() {
        let mut a = Assigner::new([edge("e1", 2, 0), edge("e2", 1, 0)], BalanceFactor::default());
        for _ in 0..3 {
            a.assign("live/x").unwrap();
        }
        assert_eq!(a.assign("live/x").unwrap_err(), AssignError::Full);
    }

    #[test]
    fn avoided_edges_are_passed_over_for_the_next_on_the_ring_unless_nothing_else_has_room() {
        let edges = [edge("a", 100, 0), edge("b", 100, 0), edge("c", 100, 0)];
        let ring = Assigner::new(edges.clone(), BalanceFactor::default());
        let id = |x: &Assigner, i: usize| x.edges()[i].id.clone();
        for i in 0..200 {
            let s = format!("live/s{i}");
            let first = id(&ring, ring.choose(&s).unwrap());
            // Avoiding the usual choice gives what a ring without that edge gives.
            let without: Vec<_> = edges.iter().filter(|e| e.id != first).cloned().collect();
            let smaller = Assigner::new(without, BalanceFactor::default());
            let other = ring.choose_avoiding(&s, std::slice::from_ref(&first)).unwrap();
            assert_eq!(id(&ring, other), id(&smaller, smaller.choose(&s).unwrap()));
            // Avoiding an edge the stream would not get changes nothing.
            let unrelated = NodeId::new("gone").unwrap();
            assert_eq!(id(&ring, ring.choose_avoiding(&s, &[unrelated]).unwrap()), first);
        }
        // Every edge avoided: the viewer still gets one.
        let all: Vec<NodeId> = edges.iter().map(|e| e.id.clone()).collect();
        assert!(ring.choose_avoiding("live/x", &all).is_ok());
        // The other edge past its balance bound but under its capacity: it takes the viewer.
        let (a, b) = (NodeId::new("a").unwrap(), NodeId::new("b").unwrap());
        let bound =
            Assigner::new([edge("a", 100, 10), edge("b", 100, 60)], BalanceFactor::default());
        assert!(bound.edges()[1].load >= bound.limit(1), "b is past its bound");
        let got = bound.choose_avoiding("live/x", std::slice::from_ref(&a)).unwrap();
        assert_eq!(id(&bound, got), b);
        // The only other edge full: back to an avoided one rather than a refusal.
        let tight = Assigner::new([edge("a", 100, 0), edge("b", 1, 1)], BalanceFactor::default());
        let got = tight.choose_avoiding("live/x", std::slice::from_ref(&a)).unwrap();
        assert_eq!(id(&tight, got), a);
    }

    #[test]
    fn same_inputs_in_any_order_give_the_same_choice() {
        let edges = [edge("a", 100, 3), edge("b", 100, 7), edge("c", 300, 1)];
        let mut reversed = edges.clone();
        reversed.reverse();
        let a = Assigner::new(edges, BalanceFactor::default());
        let b = Assigner::new(reversed, BalanceFactor::default());
        for i in 0..200 {
            let s = format!("live/s{i}");
            let pick = |x: &Assigner| x.choose(&s).map(|i| x.edges()[i].id.clone());
            assert_eq!(pick(&a), pick(&b));
        }
    }

    #[test]
    fn update_gives_what_a_fresh_ring_gives() {
        let f = BalanceFactor::default();
        let start = [edge("a", 100, 3), edge("b", 100, 7), edge("c", 300, 1)];
        let mut cached = Assigner::new(start.clone(), f);
        for loads in [[50, 0, 0], [0, 90, 10], [200, 200, 0]] {
            let edges: Vec<_> =
                start.iter().zip(loads).map(|(e, load)| EdgeLoad { load, ..e.clone() }).collect();
            cached.update(edges.clone());
            let fresh = Assigner::new(edges, f);
            assert_eq!(cached.total_load(), fresh.total_load());
            for i in 0..100 {
                let s = format!("live/s{i}");
                assert_eq!(cached.choose(&s), fresh.choose(&s));
            }
        }
        // A capacity change or a new edge rebuilds the ring.
        cached.update([edge("a", 100, 0), edge("b", 100, 0), edge("d", 100, 0)]);
        let fresh = Assigner::new([edge("a", 100, 0), edge("b", 100, 0), edge("d", 100, 0)], f);
        assert_eq!(cached.edges(), fresh.edges());
        assert_eq!(cached.points, fresh.points);
    }

    #[test]
    fn a_streams_viewers_stay_on_one_edge_until_it_is_full() {
        let edges: Vec<_> = (0..4).map(|i| edge(&format!("e{i}"), 1000, 0)).collect();
        let mut a = Assigner::new(edges, BalanceFactor::default());
        let first = a.assign("live/hot").unwrap();
        // Alone on the cluster the stream fills its first edge to the limit
        // ceil(1.25 * (M + 1) / 4), which grows slower than M, so it spills to the next edges.
        let mut on_first = 1;
        for _ in 0..99 {
            if a.assign("live/hot").unwrap() == first {
                on_first += 1;
            }
        }
        // The first edge holds exactly its bound at the end: ceil(1.25 * 100 / 4) = 32.
        assert_eq!(on_first, 32);
        for (i, e) in a.edges().iter().enumerate() {
            assert!(e.load <= 32, "edge {i} has {}", e.load);
        }
    }

    #[test]
    fn spill_skips_edges_at_their_limit() {
        // e-hot starts far over its share: nothing new goes there, whatever the stream.
        let mut a = Assigner::new(
            [edge("e-hot", 1000, 500), edge("e2", 1000, 0), edge("e3", 1000, 0)],
            BalanceFactor::default(),
        );
        for i in 0..300 {
            let chosen = a.assign(&format!("live/s{i}")).unwrap();
            assert_ne!(a.edge(chosen).id.as_str(), "e-hot");
        }
    }

    #[test]
    fn capacity_caps_an_edge_and_weights_its_share() {
        // A small edge (capacity 10) next to a large one: the small one never exceeds 10, and
        // never more than its weighted share either.
        let mut a =
            Assigner::new([edge("small", 10, 0), edge("large", 1000, 0)], BalanceFactor::default());
        for i in 0..500 {
            a.assign(&format!("live/s{}", i % 7)).unwrap();
        }
        let small = a.edges().iter().find(|e| e.id.as_str() == "small").unwrap();
        assert!(small.load <= 10);
        // Its share of 500 viewers is 500 * 10 / 1010 ≈ 4.95, times 1.25 → at most 7.
        assert!(small.load <= 7, "small has {}", small.load);
    }
}
