//! Read-only access to a cluster: the watch cache without registering a node. What the control
//! plane (any number of stateless replicas) uses to learn nodes, streams and loads: it writes
//! nothing, holds no lease, and sees exactly what the nodes' own caches see.

use crate::backend::Backend;
use crate::etcd::{connect_client, EtcdBackend};
use crate::keys::Keyspace;
use crate::memory::MemoryStore;
use crate::registry::RegistryError;
use crate::types::Snapshot;
use std::sync::Arc;
use std::time::Duration;
use tokio::sync::watch;
use tokio::task::JoinHandle;

/// A running watch cache of one cluster (one prefix). Dropping it stops the cache task.
pub struct Observer {
    snapshot: watch::Receiver<Snapshot>,
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
    ) -> Result<Observer, RegistryError> {
        let client = connect_client(endpoints, op_timeout).await?;
        Ok(Observer::start(Arc::new(EtcdBackend::new(client)), prefix))
    }

    /// Follow the cluster under `prefix` in an in-process store (tests, standalone tools).
    pub fn memory(store: &MemoryStore, prefix: &str) -> Observer {
        Observer::start(Arc::new(store.clone()), prefix)
    }

    fn start<B: Backend>(backend: Arc<B>, prefix: &str) -> Observer {
        let (tx, snapshot) = watch::channel(Snapshot::default());
        let task = tokio::spawn(backend.run_cache(Keyspace::new(prefix), tx));
        Observer { snapshot, task }
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
}
