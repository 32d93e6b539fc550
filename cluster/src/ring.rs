//! Placement: a consistent-hash ring (the `hashring` crate) over the live origins, with
//! virtual nodes. A stream's home is its ring owner.
//!
//! Every node must compute the same owner from the same member set, on any platform: virtual
//! node `i` of node `id` hashes the bytes of `id` followed by `i` as big-endian `u32`; a stream
//! hashes the bytes of `app/name` (SipHash with fixed keys, the crate's default hasher).

use crate::types::NodeId;
use hashring::HashRing;
use sluice_media::stream_name::StreamKey;
use std::collections::BTreeSet;
use std::hash::{Hash, Hasher};

/// Default virtual nodes per origin.
pub const DEFAULT_VNODES: u32 = 64;

/// One point of a node on the ring.
#[derive(Debug, Clone, PartialEq, Eq)]
struct VNode {
    node: NodeId,
    index: u32,
}

impl Hash for VNode {
    fn hash<H: Hasher>(&self, state: &mut H) {
        // Raw bytes only: endian- and platform-independent.
        state.write(self.node.as_str().as_bytes());
        state.write(&self.index.to_be_bytes());
    }
}

/// The ring over a set of origins. Immutable: membership changes build a new ring.
#[derive(Debug, Clone)]
pub struct Ring {
    vnodes: u32,
    members: BTreeSet<NodeId>,
    ring: HashRing<VNode>,
}

impl Ring {
    /// A ring over `members` with `vnodes` points each (at least 1).
    pub fn new(members: impl IntoIterator<Item = NodeId>, vnodes: u32) -> Ring {
        let vnodes = vnodes.max(1);
        let members: BTreeSet<NodeId> = members.into_iter().collect();
        let mut ring = HashRing::new();
        // Sorted insertion keeps the ring identical everywhere even on (improbable) hash ties.
        ring.batch_add(
            members
                .iter()
                .flat_map(|node| (0..vnodes).map(move |index| VNode { node: node.clone(), index }))
                .collect(),
        );
        Ring { vnodes, members, ring }
    }

    /// The home of `stream`; `None` when the ring is empty.
    pub fn owner(&self, stream: &StreamKey) -> Option<&NodeId> {
        self.owner_of(&stream.to_string())
    }

    /// The home of a stream given as its `app/name` string.
    pub fn owner_of(&self, stream_key: &str) -> Option<&NodeId> {
        self.ring.get(&stream_key).map(|v| &v.node)
    }

    /// The first `n` distinct origins clockwise from `stream`'s point: its home, then its
    /// standbys (the origins that take the stream over if the ones before them leave the
    /// ring). Fewer when the ring has fewer members.
    pub fn owners(&self, stream: &StreamKey, n: usize) -> Vec<NodeId> {
        let n = n.min(self.members.len());
        let mut owners: Vec<NodeId> = Vec::with_capacity(n);
        if n == 0 {
            return owners;
        }
        // Every point of the ring, starting at the stream's (the same start as `owner`).
        let points =
            self.ring.get_with_replicas(&stream.to_string(), self.ring.len()).unwrap_or_default();
        for point in points {
            if !owners.contains(&point.node) {
                owners.push(point.node);
                if owners.len() == n {
                    break;
                }
            }
        }
        owners
    }

    pub fn members(&self) -> &BTreeSet<NodeId> {
        &self.members
    }

    pub fn vnodes(&self) -> u32 {
        self.vnodes
    }

    pub fn is_empty(&self) -> bool {
        self.members.is_empty()
    }
}

impl PartialEq for Ring {
    /// Rings with the same members and virtual node count place every key alike.
    fn eq(&self, other: &Ring) -> bool {
        self.vnodes == other.vnodes && self.members == other.members
    }
}

impl Eq for Ring {}

#[cfg(test)]
mod tests {
    use super::*;

    fn id(s: &str) -> NodeId {
        NodeId::new(s).unwrap()
    }

    fn streams(n: usize) -> Vec<StreamKey> {
        (0..n).map(|i| StreamKey::parse("live", &format!("s{i}")).unwrap().0).collect()
    }

    #[test]
    fn empty_ring_has_no_owner() {
        let ring = Ring::new([], DEFAULT_VNODES);
        assert!(ring.is_empty());
        assert_eq!(ring.owner(&streams(1)[0]), None);
    }

    #[test]
    fn owner_is_deterministic_and_independent_of_insertion_order() {
        let a = Ring::new([id("a"), id("b"), id("c")], 64);
        let b = Ring::new([id("c"), id("a"), id("b")], 64);
        for s in streams(200) {
            assert_eq!(a.owner(&s), b.owner(&s));
        }
        // Pinned value: a change of hashing would move every stream in a running cluster.
        let s = StreamKey::parse("live", "s0").unwrap().0;
        let pinned = a.owner(&s).cloned();
        assert!(pinned.is_some());
        assert_eq!(Ring::new([id("b"), id("c"), id("a")], 64).owner(&s), pinned.as_ref());
    }

    #[test]
    fn adding_a_third_origin_moves_only_its_share() {
        let two = Ring::new([id("origin-a"), id("origin-b")], DEFAULT_VNODES);
        let three = Ring::new([id("origin-a"), id("origin-b"), id("origin-c")], DEFAULT_VNODES);
        let all = streams(100);
        let mut moved = 0;
        for s in &all {
            let before = two.owner(s).unwrap();
            let after = three.owner(s).unwrap();
            if before != after {
                moved += 1;
                // Nothing moves between the two old origins.
                assert_eq!(after, &id("origin-c"), "{s} moved {before} -> {after}");
            }
        }
        // Roughly a third moves.
        assert!((20..=47).contains(&moved), "moved {moved} of 100");
        // Removing it again moves exactly those streams back.
        for s in &all {
            if three.owner(s) != Some(&id("origin-c")) {
                assert_eq!(two.owner(s), three.owner(s));
            }
        }
    }

    #[test]
    fn owners_start_at_the_home_and_are_the_next_homes_when_origins_leave() {
        let all = [id("a"), id("b"), id("c"), id("d")];
        let ring = Ring::new(all.clone(), DEFAULT_VNODES);
        let mut standby_owners = BTreeSet::new();
        for s in streams(200) {
            let owners = ring.owners(&s, 3);
            assert_eq!(owners.len(), 3);
            assert_eq!(Some(&owners[0]), ring.owner(&s), "{s}: the home first");
            let distinct: BTreeSet<&NodeId> = owners.iter().collect();
            assert_eq!(distinct.len(), 3, "{s}: {owners:?}");
            // Without the home, the first standby is the home; without both, the second.
            let without_home =
                Ring::new(all.iter().filter(|n| **n != owners[0]).cloned(), DEFAULT_VNODES);
            assert_eq!(without_home.owner(&s), Some(&owners[1]), "{s}");
            let without_two =
                Ring::new(all.iter().filter(|n| !owners[..2].contains(n)).cloned(), DEFAULT_VNODES);
            assert_eq!(without_two.owner(&s), Some(&owners[2]), "{s}");
            standby_owners.insert(owners[1].clone());
        }
        assert_eq!(standby_owners.len(), 4, "every origin is somebody's standby");
        // More than the ring has: every member once; none from an empty ring.
        assert_eq!(ring.owners(&streams(1)[0], 9).len(), 4);
        assert!(Ring::new([], DEFAULT_VNODES).owners(&streams(1)[0], 2).is_empty());
        assert!(ring.owners(&streams(1)[0], 0).is_empty());
    }

    #[test]
    fn load_is_spread() {
        let ring = Ring::new([id("a"), id("b"), id("c"), id("d")], DEFAULT_VNODES);
        let mut counts = std::collections::BTreeMap::new();
        for s in streams(4000) {
            *counts.entry(ring.owner(&s).unwrap().clone()).or_insert(0u32) += 1;
        }
        assert_eq!(counts.len(), 4);
        for (node, n) in counts {
            assert!((500..=1500).contains(&n), "{node}: {n} of 4000");
        }
    }
}
