//! What a registry backend provides: the few primitive operations the registrar builds leases
//! and claims from (lease grant/keep-alive/revoke, put, create-if-absent, guarded put and
//! delete) and the loop that keeps the watch cache current. Implemented by etcd (`etcd.rs`)
//! and the in-process store (`memory.rs`), which sit above this module.

use crate::keys::Keyspace;
use crate::registry::RegistryError;
use crate::types::{RawKv, Snapshot};
use std::future::Future;
use std::sync::Arc;
use std::time::Duration;
use tokio::sync::watch;
use tokio::time::timeout;

/// Result of a create-if-absent.
pub(crate) enum Create {
    /// Created at this revision.
    Created { revision: i64 },
    /// The key exists (created by someone, possibly us).
    Exists(RawKv),
}

/// The primitive operations a registry backend provides.
pub(crate) trait Backend: Send + Sync + 'static {
    fn grant(&self, ttl_secs: i64) -> impl Future<Output = Result<i64, RegistryError>> + Send;
    /// `Ok(false)`: the lease no longer exists.
    fn keep_alive(&self, lease: i64) -> impl Future<Output = Result<bool, RegistryError>> + Send;
    fn revoke(&self, lease: i64) -> impl Future<Output = Result<(), RegistryError>> + Send;
    /// Unconditional put under `lease` (0: no lease, the key stays until deleted); returns the
    /// new revision.
    fn put(
        &self,
        key: &str,
        value: Vec<u8>,
        lease: i64,
    ) -> impl Future<Output = Result<i64, RegistryError>> + Send;
    /// Put under `lease` only if the key does not exist (`create_revision == 0`).
    fn create(
        &self,
        key: &str,
        value: Vec<u8>,
        lease: i64,
    ) -> impl Future<Output = Result<Create, RegistryError>> + Send;
    /// Put under `lease` only if the key's `create_revision` is `create_revision` (the same
    /// claim); `true` if written.
    fn put_if_created_at(
        &self,
        key: &str,
        value: Vec<u8>,
        lease: i64,
        create_revision: i64,
    ) -> impl Future<Output = Result<bool, RegistryError>> + Send;
    /// Delete only if the key's `create_revision` is `create_revision`; `true` if deleted.
    fn delete_if_created_at(
        &self,
        key: &str,
        create_revision: i64,
    ) -> impl Future<Output = Result<bool, RegistryError>> + Send;
    /// Unconditional delete; `true` if the key existed.
    fn delete(&self, key: &str) -> impl Future<Output = Result<bool, RegistryError>> + Send;
    /// Keep `tx` equal to the keyspace's contents, forever (list, watch, re-list on trouble).
    fn run_cache(
        self: Arc<Self>,
        keys: Keyspace,
        tx: watch::Sender<Snapshot>,
    ) -> impl Future<Output = ()> + Send;
}

/// Run one backend call, failing with [`RegistryError::Timeout`] naming `what` past `limit`.
pub(crate) async fn with_timeout<T>(
    limit: Duration,
    what: &'static str,
    fut: impl Future<Output = Result<T, RegistryError>>,
) -> Result<T, RegistryError> {
    timeout(limit, fut).await.unwrap_or(Err(RegistryError::Timeout(what)))
}
