//! The in-process registry: what a standalone node uses, and a stand-in for etcd in tests.
//!
//! A [`MemoryStore`] is a tiny etcd: keys with create/mod revisions, leases with deadlines
//! (expired by a reaper task every 100 ms and on every operation), a global revision. Several
//! [`MemoryRegistry`]s sharing one store behave like several nodes sharing one etcd: same claim
//! rules, same lease expiry, same cache updates. It has no history, so there is no compaction.

use crate::backend::{Backend, Create};
use crate::cache;
use crate::keys::Keyspace;
use crate::registrar::Registrar;
use crate::registry::{RegistryConfig, RegistryError};
use crate::types::{NodeInfo, RawKv, Snapshot};
use std::collections::{BTreeMap, HashMap};
use std::sync::{Arc, Mutex, MutexGuard, Weak};
use std::time::Duration;
use tokio::sync::watch;
use tokio::time::Instant;

const REAP_EVERY: Duration = Duration::from_millis(100);

#[derive(Default)]
struct Inner {
    revision: i64,
    next_lease: i64,
    /// Lease id → (TTL, deadline).
    leases: HashMap<i64, (Duration, Instant)>,
    kvs: BTreeMap<String, RawKv>,
}

impl Inner {
    /// Drop expired leases and their keys; `true` if anything changed.
    fn expire(&mut self, now: Instant) -> bool {
        let dead: Vec<i64> = self
            .leases
            .iter()
            .filter(|(_, (_, deadline))| *deadline <= now)
            .map(|(id, _)| *id)
            .collect();
        let mut changed = false;
        for id in dead {
            changed |= self.drop_lease(id);
        }
        changed
    }

    /// Remove lease `id` and its keys (one revision for the whole batch, like etcd).
    fn drop_lease(&mut self, id: i64) -> bool {
        if self.leases.remove(&id).is_none() {
            return false;
        }
        let before = self.kvs.len();
        self.kvs.retain(|_, kv| kv.lease != id);
        if self.kvs.len() != before {
            self.revision += 1;
        }
        true
    }
}

struct StoreShared {
    inner: Mutex<Inner>,
    /// The store revision, bumped after every change (wakes the caches).
    changed: watch::Sender<i64>,
    reaper_started: std::sync::atomic::AtomicBool,
}

/// An in-process key-value store with leases; clone it to share it.
#[derive(Clone)]
pub struct MemoryStore {
    shared: Arc<StoreShared>,
}

impl Default for MemoryStore {
    fn default() -> Self {
        MemoryStore::new()
    }
}

impl MemoryStore {
    pub fn new() -> MemoryStore {
        MemoryStore {
            shared: Arc::new(StoreShared {
                inner: Mutex::new(Inner::default()),
                changed: watch::channel(0).0,
                reaper_started: false.into(),
            }),
        }
    }

    /// Revoke a lease now, deleting its keys (what an operator's `etcdctl lease revoke` does).
    pub fn revoke_lease(&self, lease: i64) -> bool {
        self.mutate(|inner| inner.drop_lease(lease))
    }

    /// The value and revisions of `key`, for inspection.
    pub fn get(&self, key: &str) -> Option<(Vec<u8>, i64)> {
        let mut inner = self.lock();
        inner.expire(Instant::now());
        inner.kvs.get(key).map(|kv| (kv.value.clone(), kv.create_revision))
    }

    fn lock(&self) -> MutexGuard<'_, Inner> {
        crate::lock::lock(&self.shared.inner)
    }

    /// Run `f` after expiring leases; notify watchers if the revision moved.
    fn mutate<T>(&self, f: impl FnOnce(&mut Inner) -> T) -> T {
        let (out, rev, changed) = {
            let mut inner = self.lock();
            let before = inner.revision;
            inner.expire(Instant::now());
            let out = f(&mut inner);
            (out, inner.revision, inner.revision != before)
        };
        if changed {
            self.shared.changed.send_replace(rev);
        }
        out
    }

    fn start_reaper(&self) {
        use std::sync::atomic::Ordering;
        if self.shared.reaper_started.swap(true, Ordering::AcqRel) {
            return;
        }
        let weak: Weak<StoreShared> = Arc::downgrade(&self.shared);
        tokio::spawn(async move {
            loop {
                tokio::time::sleep(REAP_EVERY).await;
                let Some(shared) = weak.upgrade() else { return };
                MemoryStore { shared }.mutate(|_| ());
            }
        });
    }
}

impl Backend for MemoryStore {
    async fn grant(&self, ttl_secs: i64) -> Result<i64, RegistryError> {
        let ttl = Duration::from_secs(u64::try_from(ttl_secs.max(1)).unwrap_or(1));
        Ok(self.mutate(|inner| {
            inner.next_lease += 1;
            let id = inner.next_lease;
            inner.leases.insert(id, (ttl, Instant::now() + ttl));
            id
        }))
    }

    async fn keep_alive(&self, lease: i64) -> Result<bool, RegistryError> {
        Ok(self.mutate(|inner| match inner.leases.get_mut(&lease) {
            Some((ttl, deadline)) => {
                *deadline = Instant::now() + *ttl;
                true
            }
            None => false,
        }))
    }

    async fn revoke(&self, lease: i64) -> Result<(), RegistryError> {
        self.revoke_lease(lease);
        Ok(())
    }

    async fn put(&self, key: &str, value: Vec<u8>, lease: i64) -> Result<i64, RegistryError> {
        self.mutate(|inner| {
            // Lease 0 is "no lease", as in etcd: the key stays until deleted.
            if lease != 0 && !inner.leases.contains_key(&lease) {
                return Err(RegistryError::LeaseNotFound(lease));
            }
            inner.revision += 1;
            let rev = inner.revision;
            let create_revision = inner.kvs.get(key).map_or(rev, |kv| kv.create_revision);
            let kv =
                RawKv { key: key.to_string(), value, create_revision, mod_revision: rev, lease };
            inner.kvs.insert(key.to_string(), kv);
            Ok(rev)
        })
    }

    async fn create(&self, key: &str, value: Vec<u8>, lease: i64) -> Result<Create, RegistryError> {
        // Check and put in one critical section, as etcd's transaction does.
        self.mutate(|inner| {
            if let Some(kv) = inner.kvs.get(key) {
                return Ok(Create::Exists(kv.clone()));
            }
            if !inner.leases.contains_key(&lease) {
                return Err(RegistryError::LeaseNotFound(lease));
            }
            inner.revision += 1;
            let revision = inner.revision;
            let kv = RawKv {
                key: key.to_string(),
                value,
                create_revision: revision,
                mod_revision: revision,
                lease,
            };
            inner.kvs.insert(key.to_string(), kv);
            Ok(Create::Created { revision })
        })
    }

    async fn put_if_created_at(
        &self,
        key: &str,
        value: Vec<u8>,
        lease: i64,
        create_revision: i64,
    ) -> Result<bool, RegistryError> {
        self.mutate(|inner| {
            if !inner.leases.contains_key(&lease) {
                return Err(RegistryError::LeaseNotFound(lease));
            }
            let revision = inner.revision + 1;
            match inner.kvs.get_mut(key) {
                Some(kv) if kv.create_revision == create_revision => {
                    kv.value = value;
                    kv.mod_revision = revision;
                    kv.lease = lease;
                    inner.revision = revision;
                    Ok(true)
                }
                _ => Ok(false),
            }
        })
    }

    async fn delete_if_created_at(
        &self,
        key: &str,
        create_revision: i64,
    ) -> Result<bool, RegistryError> {
        Ok(self.mutate(|inner| {
            let ours = inner.kvs.get(key).is_some_and(|kv| kv.create_revision == create_revision);
            if ours {
                inner.kvs.remove(key);
                inner.revision += 1;
            }
            ours
        }))
    }

    async fn delete(&self, key: &str) -> Result<bool, RegistryError> {
        Ok(self.mutate(|inner| {
            let existed = inner.kvs.remove(key).is_some();
            if existed {
                inner.revision += 1;
            }
            existed
        }))
    }

    async fn run_cache(self: Arc<Self>, keys: Keyspace, tx: watch::Sender<Snapshot>) {
        let mut changed = self.shared.changed.subscribe();
        let root = keys.root();
        loop {
            let (revision, kvs) = {
                let inner = self.lock();
                let kvs: Vec<RawKv> = inner
                    .kvs
                    .range(root.clone()..)
                    .take_while(|(k, _)| k.starts_with(&root))
                    .map(|(_, kv)| kv.clone())
                    .collect();
                (inner.revision, kvs)
            };
            let fresh = cache::from_list(&keys, revision, kvs);
            // Only wake readers when this keyspace changed (or on the first list).
            tx.send_if_modified(|cur| cache::replace_if_changed(cur, fresh));
            if changed.changed().await.is_err() {
                return;
            }
        }
    }
}

/// A [`Registry`] over a [`MemoryStore`].
pub struct MemoryRegistry {
    registrar: Registrar<MemoryStore>,
    store: MemoryStore,
}

impl MemoryRegistry {
    /// Register this node in `store` (shared with other registries = other nodes).
    pub async fn start(
        store: MemoryStore,
        cfg: RegistryConfig,
        node: NodeInfo,
    ) -> Result<MemoryRegistry, RegistryError> {
        store.start_reaper();
        let registrar = Registrar::start(Arc::new(store.clone()), cfg, node).await?;
        Ok(MemoryRegistry { registrar, store })
    }

    /// A registry with a store of its own: standalone mode.
    pub async fn standalone(
        cfg: RegistryConfig,
        node: NodeInfo,
    ) -> Result<MemoryRegistry, RegistryError> {
        MemoryRegistry::start(MemoryStore::new(), cfg, node).await
    }

    pub fn store(&self) -> &MemoryStore {
        &self.store
    }
}

crate::registrar::delegate_registry!(MemoryRegistry);
