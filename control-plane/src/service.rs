//! The control plane's state: the cluster's watch cache, the balance factor, this replica's
//! pending assignments and its order writer. Shared by the gRPC and HTTP front ends, which only translate.

use crate::assign::{Assigner, BalanceFactor};
use crate::counters::Counters;
use crate::lock::lock;
use crate::play_sign::PlaySigner;
use crate::view::{self, Choice, ChoiceError, Pending, PlayProtocol, Totals};
use sluice_cluster::types::{NodeId, Role, Snapshot};
use sluice_cluster::OrderWriter;
use sluice_media::stream_name::StreamKey;
use std::sync::{Arc, Mutex};
use tokio::sync::watch;

/// One replica's view of the cluster.
pub struct ControlPlane {
    snapshot: watch::Receiver<Snapshot>,
    target_utilisation: f64,
    /// This replica's assignments since each edge's last report, and the ring kept between
    /// calls; one lock, as every assignment updates both.
    state: Mutex<(Pending, Assigner)>,
    /// This replica's watchers and refused calls, for `/metrics`.
    counters: Arc<Counters>,
    /// Set when the replica stops: endless streams (`Watch`, KEDA's `StreamIsActive`) end, so
    /// the servers' graceful shutdown is not held up by clients that never leave.
    closing: watch::Sender<bool>,
    /// Writes management orders to etcd (absent: the management RPCs fail).
    orders: Option<OrderWriter>,
    /// Signs the URLs handed out for private streams (absent: none are private).
    signer: Option<PlaySigner>,
}

impl ControlPlane {
    /// `target_utilisation` (0 < t <= 1) sizes the recommended edge count.
    pub fn new(
        snapshot: watch::Receiver<Snapshot>,
        factor: BalanceFactor,
        target_utilisation: f64,
    ) -> ControlPlane {
        let state = Mutex::new((Pending::default(), Assigner::new([], factor)));
        let counters = Arc::default();
        let closing = watch::Sender::new(false);
        ControlPlane {
            snapshot,
            target_utilisation,
            state,
            counters,
            closing,
            orders: None,
            signer: None,
        }
    }

    /// Sign the play URLs of private streams.
    #[must_use]
    pub fn with_play_signer(mut self, signer: Option<PlaySigner>) -> ControlPlane {
        self.signer = signer;
        self
    }

    /// Let this replica write management orders (drain, undrain, kick).
    #[must_use]
    pub fn with_orders(mut self, orders: OrderWriter) -> ControlPlane {
        self.orders = Some(orders);
        self
    }

    /// The order writer, when this replica has one.
    pub fn orders(&self) -> Option<&OrderWriter> {
        self.orders.as_ref()
    }

    /// Tell every endless stream to end: the replica is stopping.
    pub fn close(&self) {
        self.closing.send_replace(true);
    }

    /// A receiver that turns `true` when the replica stops (see [`ControlPlane::close`]).
    pub fn closing(&self) -> watch::Receiver<bool> {
        self.closing.subscribe()
    }

    /// This replica's counters (shared with the layers that refuse calls).
    pub fn counters(&self) -> &Arc<Counters> {
        &self.counters
    }

    /// A receiver of every new snapshot, for a driver that follows the cluster (`Watch`).
    pub fn subscribe(&self) -> watch::Receiver<Snapshot> {
        self.snapshot.clone()
    }

    pub fn target_utilisation(&self) -> f64 {
        self.target_utilisation
    }

    /// Edges needed for the current load at the target utilisation (see
    /// [`view::recommended_edges`]).
    pub fn recommended_edges(&self) -> Option<u64> {
        let snap = self.snapshot.borrow();
        let totals = view::totals(&snap, Role::Edge);
        view::recommended_edges(&totals, view::reporting_edges(&snap), self.target_utilisation)
    }

    /// Whether the cache has its first listing and follows etcd now (see [`cache_is_ready`]).
    pub fn is_ready(&self) -> bool {
        cache_is_ready(&self.snapshot.borrow())
    }

    /// The current snapshot (a clone: callers never hold the watch lock).
    pub fn snapshot(&self) -> Snapshot {
        self.snapshot.borrow().clone()
    }

    /// The edge for one more viewer of `stream` at `client` (when known), not one in `avoid`
    /// while another has room.
    pub fn assign(
        &self,
        stream: &StreamKey,
        protocol: PlayProtocol,
        avoid: &[NodeId],
        client: Option<std::net::IpAddr>,
    ) -> Result<Choice, ChoiceError> {
        if let Some(signer) = &self.signer {
            if signer.binds_client() && signer.is_private(stream) && client.is_none() {
                return Err(ChoiceError::NoClientAddress);
            }
        }
        let snap = self.snapshot.borrow();
        let mut state = lock(&self.state);
        let (pending, assigner) = &mut *state;
        pending.retain_known(&snap);
        let mut choice = view::assign_viewer(&snap, pending, assigner, stream, protocol, avoid)?;
        if let Some(signer) = &self.signer {
            let now = std::time::SystemTime::now()
                .duration_since(std::time::UNIX_EPOCH)
                .map_or(0, |d| d.as_secs());
            choice.url = signer.sign_url(std::mem::take(&mut choice.url), stream, now, client);
        }
        Ok(choice)
    }

    /// The home origin of `stream` and its RTMP ingest URL.
    pub fn ingest(&self, stream: &StreamKey) -> Option<(NodeId, String)> {
        view::ingest_home(&self.snapshot.borrow(), stream)
    }

    /// Totals over ready, non-draining nodes of `role`.
    pub fn totals(&self, role: Role) -> Totals {
        view::totals(&self.snapshot.borrow(), role)
    }
}

/// Whether answers from `snap` can be trusted: it has the first listing (before it, answers
/// would be wrong, not empty) and the cache follows etcd now (after a lost connection its
/// contents are as last seen).
pub fn cache_is_ready(snap: &Snapshot) -> bool {
    snap.revision > 0 && snap.connected
}
