//! Access to a cluster without registering a node: the watch cache, and the order writer. What
//! the control plane (any number of stateless replicas) uses to learn nodes, streams and loads
//! and to issue management orders: it holds no lease of its own, writes only orders, and sees
//! exactly what the nodes' own caches see.

use crate::backend::Backend;
use crate::etcd::{connect_client, EtcdBackend};
use crate::keys::Keyspace;
use crate::memory::MemoryStore;
use crate::orders::{OrderWriter, Store};
use crate::registry::{EtcdAuth, EtcdTls, RegistryError};
use crate::types::Snapshot;
use std::sync::Arc;
use std::time::Duration;
use tokio::sync::watch;
use tokio::task::JoinHandle;

/// A running watch cache of one cluster (one prefix). Dropping it stops the cache task.
pub struct Observer {
    snapshot: watch::Receiver<Snapshot>,
    orders: OrderWriter,
    task: JoinHandle<()>,
}

impl Drop for Observer {
    fn drop(&mut self) {
        self.task.abort();
    }
}

impl Observer {
    /// Follow the cluster under `prefix` in the etcd at `endpoints`. Returns once connected
    /// (within `op_timeout`); the first listing arrives in the background (see
    /// [`Observer::is_loaded`]), and a lost connection is retried forever, like a node's cache.
    pub async fn etcd(
        endpoints: &[String],
        prefix: &str,
        op_timeout: Duration,
        tls: &EtcdTls,
        auth: Option<&EtcdAuth>,
    ) -> Result<Observer, RegistryError> {
        let client = connect_client(endpoints, op_timeout, tls, auth).await?;
        let backend = Arc::new(EtcdBackend::new(client));
        let orders = OrderWriter::new(Store::Etcd(backend.clone()), prefix, op_timeout);
        Ok(Observer::start(backend, prefix, orders))
    }

    /// Follow the cluster under `prefix` in an in-process store (tests, standalone tools).
    pub fn memory(store: &MemoryStore, prefix: &str) -> Observer {
        let orders = OrderWriter::new(Store::Memory(store.clone()), prefix, Duration::from_secs(3));
        Observer::start(Arc::new(store.clone()), prefix, orders)
    }

    fn start<B: Backend>(backend: Arc<B>, prefix: &str, orders: OrderWriter) -> Observer {
        let (tx, snapshot) = watch::channel(Snapshot::default());
        let task = tokio::spawn(backend.run_cache(Keyspace::new(prefix), tx));
        Observer { snapshot, orders, task }
    }

    /// Writes management orders into the same cluster (clone it freely).
    pub fn orders(&self) -> OrderWriter {
        self.orders.clone()
    }

    /// The cache, updated from the watch.
    pub fn snapshot(&self) -> watch::Receiver<Snapshot> {
        self.snapshot.clone()
    }

    /// Whether the first listing has arrived (before it, the cache is empty, not "no nodes").
    pub fn is_loaded(&self) -> bool {
        self.snapshot.borrow().revision > 0
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::registry::{Registry, RegistryConfig};
    use crate::types::{LoadReport, NodeId, NodeInfo, Role};
    use crate::MemoryRegistry;

    #[tokio::test]
    async fn an_observer_sees_nodes_and_loads_without_registering() {
        let store = MemoryStore::new();
        let observer = Observer::memory(&store, "/o");
        let cfg = RegistryConfig::new(NodeId::new("e1").unwrap(), Role::Edge).with_prefix("/o");
        let node = MemoryRegistry::start(store.clone(), cfg, NodeInfo::default()).await.unwrap();
        node.report_load(LoadReport { streams: 3, ..LoadReport::default() }).await.unwrap();
        let mut snap = observer.snapshot();
        let id = NodeId::new("e1").unwrap();
        let seen = snap
            .wait_for(|s| s.load(Role::Edge, &id).is_some_and(|l| l.report.streams == 3))
            .await
            .unwrap()
            .clone();
        assert!(observer.is_loaded());
        // Only the node registered: the observer wrote nothing.
        assert_eq!(seen.nodes.len(), 1);
    }

    #[tokio::test(start_paused = true)]
    async fn orders_written_by_an_observer_reach_the_caches() {
        use crate::types::{DrainOrder, KickOrder};
        let store = MemoryStore::new();
        let observer = Observer::memory(&store, "/o");
        let orders = observer.orders();
        let id = NodeId::new("e1").unwrap();
        let stream = sluice_media::stream_name::StreamKey::parse("live", "x").unwrap().0;
        let order = DrainOrder { deadline_seconds: 5, issued_at_ms: 1 };
        orders.drain(Role::Edge, &id, order).await.unwrap();
        orders.kick(&stream, KickOrder { issued_at_ms: 2 }).await.unwrap();
        let mut snap = observer.snapshot();
        let seen = snap
            .wait_for(|s| s.drain_order(Role::Edge, &id).is_some() && !s.kicks.is_empty())
            .await
            .unwrap()
            .clone();
        assert_eq!(seen.drain_order(Role::Edge, &id).unwrap().order, order);
        assert!(orders.undrain(Role::Edge, &id).await.unwrap());
        assert!(!orders.undrain(Role::Edge, &id).await.unwrap(), "nothing left to cancel");
        snap.wait_for(|s| s.drains.is_empty()).await.unwrap();
        // The kick goes with its lease (the store's reaper needs a registry to have started).
        let cfg = RegistryConfig::new(NodeId::new("o1").unwrap(), Role::Origin).with_prefix("/o");
        let _node = MemoryRegistry::start(store.clone(), cfg, NodeInfo::default()).await.unwrap();
        tokio::time::sleep(Duration::from_secs(crate::orders::KICK_TTL_SECS as u64 + 1)).await;
        snap.wait_for(|s| s.kicks.is_empty()).await.unwrap();
    }
}
