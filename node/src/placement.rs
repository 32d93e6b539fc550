//! Where a stream lives in the cluster: the damped consistent-hash ring over ready origins
//! (`sluice_cluster::placement`), read locally without asking etcd.
//!
//! A stream's *home* is its ring owner. The origin that has the publisher (the *ingest*)
//! forwards the stream to the home when it is not the home itself ([`crate::forward`]); edges
//! subscribe at the home, falling back to the ingest while a forward is being set up. The
//! ingest also forwards the stream to its *standbys*, the next `--standbys` origins on the
//! ring: an edge whose home goes silent switches to the first of them, which becomes the home
//! when the ring drops the dead one.

use std::net::SocketAddr;
use std::sync::Arc;

use sluice_cluster::placement::{spawn_ring, PlacementConfig};
use sluice_cluster::types::{NodeId, Role, Snapshot};
use sluice_cluster::{Registry, Ring, DEFAULT_VNODES};
use sluice_media::stream_name::StreamKey;
use tokio::sync::watch;

/// This node's view of placement. Cheap to clone.
#[derive(Clone)]
pub struct Placement {
    pub node_id: NodeId,
    /// Hot standbys per stream (`--standbys`).
    pub standbys: usize,
    pub ring: watch::Receiver<Arc<Ring>>,
    pub snapshot: watch::Receiver<Snapshot>,
}

impl Placement {
    /// Follow `registry`'s cache and keep a ring of its ready origins (a task per node).
    pub fn start(
        registry: &Arc<dyn Registry>,
        standbys: usize,
    ) -> (Placement, tokio::task::JoinHandle<()>) {
        let snapshot = registry.snapshot();
        let (ring, task) = spawn_ring(snapshot.clone(), PlacementConfig::default());
        (Placement { node_id: registry.node().0.clone(), standbys, ring, snapshot }, task)
    }

    /// The stream's home by this node's ring.
    pub fn home(&self, key: &StreamKey) -> Option<NodeId> {
        self.ring.borrow().owner(key).cloned()
    }

    /// The stream's home and then its standbys by this node's ring (fewer when the ring has
    /// fewer origins), then its transcoder when origins are marked as such and it is none of
    /// them: every origin the ingest sends the stream to.
    pub fn owners(&self, key: &StreamKey) -> Vec<NodeId> {
        let mut owners = self.ring.borrow().owners(key, 1 + self.standbys);
        if let Some(t) = self.transcoder(key).filter(|t| !owners.contains(t)) {
            owners.push(t);
        }
        owners
    }

    /// Whether `key` is a rendition (its claim names a source): renditions are never sent to
    /// a transcoder.
    fn is_rendition(&self, key: &StreamKey) -> bool {
        self.snapshot.borrow().streams.get(key).is_some_and(|r| r.info.rendition_of.is_some())
    }

    /// The origin that transcodes the stream when some on the ring are marked as transcoders
    /// (`--transcoder`): its owner on a ring of those; `None` when none is.
    pub fn transcoder(&self, key: &StreamKey) -> Option<NodeId> {
        if self.is_rendition(key) {
            return None;
        }
        let snapshot = self.snapshot.borrow();
        let ring = self.ring.borrow();
        let marked: Vec<NodeId> = ring
            .members()
            .iter()
            .filter(|id| snapshot.node(Role::Origin, id).is_some_and(|n| n.info.transcoder))
            .cloned()
            .collect();
        if marked.is_empty() {
            return None;
        }
        Ring::new(marked, DEFAULT_VNODES).owner(key).cloned()
    }
}

impl Placement {
    /// The origin that plays `key`'s scheduled entries: the first in its ring order (its home,
    /// then its standbys, ...) that plays files out (`--playout-dir`); `None` when none does.
    pub fn player(&self, key: &StreamKey) -> Option<NodeId> {
        let snapshot = self.snapshot.borrow();
        let ring = self.ring.borrow();
        let order = ring.owners(key, ring.members().len());
        order.into_iter().find(|id| snapshot.node(Role::Origin, id).is_some_and(|n| n.info.playout))
    }
}

/// The relay address an origin advertises in the registry (an untrusted value: `None` when
/// missing or malformed).
pub fn relay_addr(snapshot: &Snapshot, origin: &NodeId) -> Option<SocketAddr> {
    snapshot.node(Role::Origin, origin)?.info.addresses.get("relay")?.parse().ok()
}
