//! Writing management orders (drain, undrain, kick) into the registry: the one thing the
//! control plane writes. The nodes read the orders from their watch cache ([`Snapshot::drains`],
//! [`Snapshot::kicks`]) and carry them out themselves; see `keys.rs` for the layout.
//!
//! [`Snapshot::drains`]: crate::types::Snapshot::drains
//! [`Snapshot::kicks`]: crate::types::Snapshot::kicks

use crate::backend::{with_timeout, Backend};
use crate::etcd::EtcdBackend;
use crate::keys::Keyspace;
use crate::memory::MemoryStore;
use crate::registry::RegistryError;
use crate::types::{DrainOrder, KickOrder, NodeId, Role};
use sluice_media::stream_name::StreamKey;
use std::sync::Arc;
use std::time::Duration;

/// How long a kick order lives (its own lease): long enough for the ingest origin to see it,
/// short enough that stale kicks do not pile up.
pub const KICK_TTL_SECS: i64 = 60;

/// The store an [`OrderWriter`] writes to.
#[derive(Clone)]
pub(crate) enum Store {
    Etcd(Arc<EtcdBackend>),
    Memory(MemoryStore),
}

/// Writes orders under one cluster's prefix. Cheap to clone.
#[derive(Clone)]
pub struct OrderWriter {
    store: Store,
    keys: Keyspace,
    op_timeout: Duration,
}

impl OrderWriter {
    pub(crate) fn new(store: Store, prefix: &str, op_timeout: Duration) -> OrderWriter {
        OrderWriter { store, keys: Keyspace::new(prefix), op_timeout }
    }

    /// Order node `id` to drain (replacing an earlier order). No lease: it stays in force until
    /// [`OrderWriter::undrain`].
    pub async fn drain(
        &self,
        role: Role,
        id: &NodeId,
        order: DrainOrder,
    ) -> Result<(), RegistryError> {
        let key = self.keys.drain_order(role, id);
        let value = serde_json::to_vec(&order)?;
        self.bounded("put drain order", self.put(&key, value, 0)).await.map(drop)
    }

    /// Cancel the drain order of node `id`; `false` when there was none.
    pub async fn undrain(&self, role: Role, id: &NodeId) -> Result<bool, RegistryError> {
        let key = self.keys.drain_order(role, id);
        self.bounded("delete drain order", self.delete(&key)).await
    }

    /// Order the ingest origin of `stream` to close its publisher. The order lives
    /// [`KICK_TTL_SECS`] under a lease of its own.
    pub async fn kick(&self, stream: &StreamKey, order: KickOrder) -> Result<(), RegistryError> {
        let key = self.keys.kick_order(stream);
        let value = serde_json::to_vec(&order)?;
        let write = async {
            let lease = match &self.store {
                Store::Etcd(b) => b.grant(KICK_TTL_SECS).await?,
                Store::Memory(m) => m.grant(KICK_TTL_SECS).await?,
            };
            self.put(&key, value, lease).await
        };
        self.bounded("put kick order", write).await.map(drop)
    }

    /// Set the transcoding ladder of `app` (replacing an earlier one). No lease.
    pub async fn set_ladder(
        &self,
        app: &str,
        value: &crate::ladder::LadderValue,
    ) -> Result<(), RegistryError> {
        let key = self.keys.ladder(app);
        let value = serde_json::to_vec(value)?;
        self.bounded("put ladder", self.put(&key, value, 0)).await.map(drop)
    }

    /// Delete the ladder of `app`; `false` when there was none.
    pub async fn delete_ladder(&self, app: &str) -> Result<bool, RegistryError> {
        let key = self.keys.ladder(app);
        self.bounded("delete ladder", self.delete(&key)).await
    }

    /// Write schedule entry `id` (replacing an earlier one of that id). No lease.
    pub async fn set_schedule_entry(
        &self,
        id: &str,
        value: &crate::schedule::EntryValue,
    ) -> Result<(), RegistryError> {
        let key = self.keys.schedule_entry(id);
        let value = serde_json::to_vec(value)?;
        self.bounded("put schedule entry", self.put(&key, value, 0)).await.map(drop)
    }

    /// Delete schedule entry `id`; `false` when there was none.
    pub async fn delete_schedule_entry(&self, id: &str) -> Result<bool, RegistryError> {
        let key = self.keys.schedule_entry(id);
        self.bounded("delete schedule entry", self.delete(&key)).await
    }

    async fn put(&self, key: &str, value: Vec<u8>, lease: i64) -> Result<i64, RegistryError> {
        match &self.store {
            Store::Etcd(b) => b.put(key, value, lease).await,
            Store::Memory(m) => m.put(key, value, lease).await,
        }
    }

    async fn delete(&self, key: &str) -> Result<bool, RegistryError> {
        match &self.store {
            Store::Etcd(b) => b.delete(key).await,
            Store::Memory(m) => m.delete(key).await,
        }
    }

    async fn bounded<T>(
        &self,
        what: &'static str,
        fut: impl std::future::Future<Output = Result<T, RegistryError>>,
    ) -> Result<T, RegistryError> {
        with_timeout(self.op_timeout, what, fut).await
    }
}
