//! The etcd registry: [`EtcdRegistry`] over etcd-client.
//!
//! Claims are one transaction: `if create_revision(key) == 0 then put(key, value, lease) else
//! get(key)`. The cache lists the keyspace (learning revision R), then watches from R + 1. A
//! broken watch is re-opened from the cache's revision + 1 (exponential backoff, 100 ms to
//! 5 s); if etcd compacted that history meanwhile (or cancels the watch), the cache lists again
//! and watches from the new revision. Either way it never misses a change.

use crate::backend::{with_timeout, Backend, Create};
use crate::backoff::Backoff;
use crate::cache::{self, Change, Resume, Start, WatchEnd};
use crate::keys::Keyspace;
use crate::registrar::Registrar;
use crate::registry::{EtcdAuth, EtcdTls, RegistryConfig, RegistryError};
use crate::types::{NodeInfo, RawKv, Snapshot};
use etcd_client::{
    Client, Compare, CompareOp, ConnectOptions, GetOptions, KeyValue, LeaseKeepAliveStream,
    LeaseKeeper, PutOptions, Txn, TxnOp, TxnOpResponse, WatchOptions,
};
use std::sync::atomic::Ordering;
use std::sync::Arc;
use std::time::Duration;
use tokio::sync::{watch, Mutex};

/// etcd-client operations for [`Registrar`].
pub(crate) struct EtcdBackend {
    client: Client,
    /// The open keep-alive stream, reused while the lease stays the same.
    keeper: Mutex<Option<(LeaseKeeper, LeaseKeepAliveStream)>>,
    /// A keep-alive was sent and its answer not yet read.
    awaiting: std::sync::atomic::AtomicBool,
}

fn raw(kv: &KeyValue) -> RawKv {
    RawKv {
        key: String::from_utf8_lossy(kv.key()).into_owned(),
        value: kv.value().to_vec(),
        create_revision: kv.create_revision(),
        mod_revision: kv.mod_revision(),
        lease: kv.lease(),
    }
}

/// A watch event as the cache sees it. A delete event's kv carries only key and mod_revision
/// (create_revision 0).
fn change(kv: &KeyValue) -> Change {
    if kv.create_revision() == 0 {
        let key = String::from_utf8_lossy(kv.key()).into_owned();
        Change::Delete { key, mod_revision: kv.mod_revision() }
    } else {
        Change::Put(raw(kv))
    }
}

/// etcd answers an operation on a lease that expired or was revoked with gRPC `NotFound`,
/// "etcdserver: requested lease not found".
fn is_lease_not_found(e: &etcd_client::Error) -> bool {
    match e {
        etcd_client::Error::GRpcStatus(status) => status.message().contains("lease not found"),
        // The keep-alive stream's own report of a lease etcd does not have.
        etcd_client::Error::LeaseKeepAliveError(message) => message.contains("lease not found"),
        _ => false,
    }
}

impl EtcdBackend {
    async fn open_keeper(
        &self,
        lease: i64,
    ) -> Result<(LeaseKeeper, LeaseKeepAliveStream), RegistryError> {
        let mut c = self.client.clone();
        Ok(c.lease_keep_alive(lease).await?)
    }

    /// Bring `tx` up to date and follow the watch until it ends or fails; `start` (from the
    /// cache's [`Resume`] rule) says whether to list first or watch on from the cache.
    async fn list_and_watch(
        &self,
        keys: &Keyspace,
        tx: &watch::Sender<Snapshot>,
        start: Start,
        backoff: &mut Backoff,
    ) -> Result<WatchEnd, RegistryError> {
        let mut c = self.client.clone();
        let root = keys.root();
        let from = match start {
            Start::Watch { from } => from,
            Start::List => {
                let resp = c.get(root.as_str(), Some(GetOptions::new().with_prefix())).await?;
                let revision = resp.header().map_or(0, etcd_client::ResponseHeader::revision);
                tx.send_replace(cache::from_list(keys, revision, resp.kvs().iter().map(raw)));
                revision.saturating_add(1)
            }
        };
        let opts = WatchOptions::new().with_prefix().with_start_revision(from);
        let mut stream = c.watch(root.as_str(), Some(opts)).await?;
        while let Some(resp) = stream.message().await? {
            if resp.compact_revision() > 0 {
                tracing::info!(
                    compacted = resp.compact_revision(),
                    "registry watch compacted; re-listing"
                );
                return Ok(WatchEnd::HistoryLost);
            }
            if resp.canceled() {
                tracing::info!(
                    reason = resp.cancel_reason(),
                    "registry watch cancelled; re-listing"
                );
                return Ok(WatchEnd::HistoryLost);
            }
            if resp.created() {
                backoff.reset();
                tx.send_if_modified(|snap| cache::set_connected(snap, true));
            }
            if resp.events().is_empty() {
                continue;
            }
            let header_revision = resp.header().map_or(0, etcd_client::ResponseHeader::revision);
            let changes = resp.events().iter().filter_map(|ev| ev.kv()).map(change);
            tx.send_modify(|snap| cache::apply_changes(snap, keys, changes, header_revision));
        }
        Ok(WatchEnd::Closed)
    }
}

impl Backend for EtcdBackend {
    async fn grant(&self, ttl_secs: i64) -> Result<i64, RegistryError> {
        let mut c = self.client.clone();
        Ok(c.lease_grant(ttl_secs, None).await?.id())
    }

    async fn keep_alive(&self, lease: i64) -> Result<bool, RegistryError> {
        let mut slot = self.keeper.lock().await;
        // A keep-alive whose answer never came (the caller gave up waiting) leaves a stream
        // that may be dead without saying so: open a new one.
        if self.awaiting.swap(true, Ordering::AcqRel) {
            *slot = None;
        }
        if slot.as_ref().is_none_or(|(k, _)| k.id() != lease) {
            *slot = match self.open_keeper(lease).await {
                Ok(k) => Some(k),
                Err(RegistryError::Etcd(e)) if is_lease_not_found(&e) => {
                    self.awaiting.store(false, Ordering::Release);
                    return Ok(false);
                }
                Err(e) => return Err(e),
            };
        }
        let Some((keeper, stream)) = slot.as_mut() else {
            return Ok(false);
        };
        let sent = keeper.keep_alive().await;
        let reply = match sent {
            Ok(()) => stream.message().await,
            Err(e) => Err(e),
        };
        self.awaiting.store(false, Ordering::Release);
        match reply {
            Ok(Some(resp)) => Ok(resp.ttl() > 0),
            Ok(None) => {
                *slot = None;
                Err(RegistryError::Timeout("keep-alive stream ended"))
            }
            Err(e) if is_lease_not_found(&e) => {
                *slot = None;
                Ok(false)
            }
            Err(e) => {
                *slot = None;
                Err(e.into())
            }
        }
    }

    async fn revoke(&self, lease: i64) -> Result<(), RegistryError> {
        let mut c = self.client.clone();
        match c.lease_revoke(lease).await {
            Ok(_) => Ok(()),
            Err(e) if is_lease_not_found(&e) => Ok(()),
            Err(e) => Err(e.into()),
        }
    }

    async fn put(&self, key: &str, value: Vec<u8>, lease: i64) -> Result<i64, RegistryError> {
        let mut c = self.client.clone();
        let opts = PutOptions::new().with_lease(lease);
        match c.put(key, value, Some(opts)).await {
            Ok(resp) => Ok(resp.header().map_or(0, etcd_client::ResponseHeader::revision)),
            Err(e) if is_lease_not_found(&e) => Err(RegistryError::LeaseNotFound(lease)),
            Err(e) => Err(e.into()),
        }
    }

    async fn create(&self, key: &str, value: Vec<u8>, lease: i64) -> Result<Create, RegistryError> {
        let mut c = self.client.clone();
        let txn = Txn::new()
            .when([Compare::create_revision(key, CompareOp::Equal, 0)])
            .and_then([TxnOp::put(key, value, Some(PutOptions::new().with_lease(lease)))])
            .or_else([TxnOp::get(key, None)]);
        let resp = match c.txn(txn).await {
            Ok(resp) => resp,
            Err(e) if is_lease_not_found(&e) => return Err(RegistryError::LeaseNotFound(lease)),
            Err(e) => return Err(e.into()),
        };
        if resp.succeeded() {
            let revision = resp.header().map_or(0, etcd_client::ResponseHeader::revision);
            return Ok(Create::Created { revision });
        }
        for op in resp.op_responses() {
            if let TxnOpResponse::Get(get) = op {
                if let Some(kv) = get.kvs().first() {
                    return Ok(Create::Exists(raw(kv)));
                }
            }
        }
        // Deleted between the compare and the get cannot happen (one transaction); treat an
        // empty answer as "held by an unknown writer" and let the caller retry.
        Ok(Create::Exists(RawKv {
            key: key.to_string(),
            value: Vec::new(),
            create_revision: 0,
            mod_revision: 0,
            lease: 0,
        }))
    }

    async fn put_if_created_at(
        &self,
        key: &str,
        value: Vec<u8>,
        lease: i64,
        create_revision: i64,
    ) -> Result<bool, RegistryError> {
        let mut c = self.client.clone();
        let txn = Txn::new()
            .when([Compare::create_revision(key, CompareOp::Equal, create_revision)])
            .and_then([TxnOp::put(key, value, Some(PutOptions::new().with_lease(lease)))]);
        match c.txn(txn).await {
            Ok(resp) => Ok(resp.succeeded()),
            Err(e) if is_lease_not_found(&e) => Err(RegistryError::LeaseNotFound(lease)),
            Err(e) => Err(e.into()),
        }
    }

    async fn delete_if_created_at(
        &self,
        key: &str,
        create_revision: i64,
    ) -> Result<bool, RegistryError> {
        let mut c = self.client.clone();
        let txn = Txn::new()
            .when([Compare::create_revision(key, CompareOp::Equal, create_revision)])
            .and_then([TxnOp::delete(key, None)]);
        Ok(c.txn(txn).await?.succeeded())
    }

    async fn delete(&self, key: &str) -> Result<bool, RegistryError> {
        let mut c = self.client.clone();
        Ok(c.delete(key, None).await?.deleted() > 0)
    }

    async fn run_cache(self: Arc<Self>, keys: Keyspace, tx: watch::Sender<Snapshot>) {
        let mut backoff = Backoff::new(Duration::from_millis(100), Duration::from_secs(5));
        let mut resume = Resume::default();
        loop {
            let start = resume.start(tx.borrow().revision);
            let end = match self.list_and_watch(&keys, &tx, start, &mut backoff).await {
                Ok(end) => {
                    tracing::debug!(?end, "registry watch ended");
                    end
                }
                Err(e) => {
                    tracing::warn!(error = %e, "registry watch failed; retrying");
                    tx.send_if_modified(|snap| cache::set_connected(snap, false));
                    WatchEnd::Failed
                }
            };
            resume.ended(end);
            tokio::time::sleep(backoff.next_delay()).await;
        }
    }
}

/// A client for `endpoints` with the registry's connect and keep-alive timeouts, over TLS when
/// `tls` says so, authenticated as `auth`'s user when given.
pub(crate) async fn connect_client(
    endpoints: &[String],
    op_timeout: Duration,
    tls: &EtcdTls,
    auth: Option<&EtcdAuth>,
) -> Result<Client, RegistryError> {
    let mut opts = ConnectOptions::new()
        .with_connect_timeout(op_timeout)
        .with_keep_alive(Duration::from_secs(2), op_timeout)
        .with_keep_alive_while_idle(true);
    if tls.is_set() {
        opts = opts.with_tls(tls_options(tls)?);
    }
    if let Some(auth) = auth {
        opts = opts.with_user(auth.user.clone(), auth.password()?).with_auto_token_refresh(true);
    }
    let connect = async {
        Client::connect(endpoints, Some(opts)).await.map_err(|e| match (auth, &e) {
            // Connecting answers with a status only from authenticating (a connection that
            // fails is a transport error): say which user, never the password.
            (Some(auth), etcd_client::Error::GRpcStatus(status)) => {
                RegistryError::Auth(format!("user {:?}: {}", auth.user, status.message()))
            }
            _ => e.into(),
        })
    };
    with_timeout(op_timeout, "connect", connect).await
}

/// The client TLS settings from the files `tls` names.
fn tls_options(tls: &EtcdTls) -> Result<etcd_client::TlsOptions, RegistryError> {
    let read = |what: &str, path: &std::path::Path| {
        std::fs::read(path)
            .map_err(|e| RegistryError::Tls(format!("reading the {what} {}: {e}", path.display())))
    };
    let mut options = etcd_client::TlsOptions::new();
    if let Some(ca) = &tls.ca_file {
        options = options.ca_certificate(etcd_client::Certificate::from_pem(read("CA", ca)?));
    }
    match (&tls.cert_file, &tls.key_file) {
        (Some(cert), Some(key)) => {
            let identity =
                etcd_client::Identity::from_pem(read("certificate", cert)?, read("key", key)?);
            options = options.identity(identity);
        }
        (None, None) => {}
        _ => {
            return Err(RegistryError::Tls(
                "a client certificate needs its key, and a key its certificate".into(),
            ))
        }
    }
    Ok(options)
}

impl EtcdBackend {
    pub(crate) fn new(client: Client) -> EtcdBackend {
        EtcdBackend { client, keeper: Mutex::new(None), awaiting: false.into() }
    }
}

/// A [`Registry`](crate::Registry) backed by etcd.
pub struct EtcdRegistry {
    registrar: Registrar<EtcdBackend>,
    client: Client,
}

impl EtcdRegistry {
    /// Connect to `endpoints` (e.g. `["http://127.0.0.1:2379"]`) and register this node.
    pub async fn connect(
        endpoints: &[String],
        cfg: RegistryConfig,
        node: NodeInfo,
    ) -> Result<EtcdRegistry, RegistryError> {
        let client = connect_client(endpoints, cfg.op_timeout, &cfg.tls, cfg.auth.as_ref()).await?;
        EtcdRegistry::with_client(client, cfg, node).await
    }

    /// Register this node using an existing client.
    pub async fn with_client(
        client: Client,
        cfg: RegistryConfig,
        node: NodeInfo,
    ) -> Result<EtcdRegistry, RegistryError> {
        let backend = Arc::new(EtcdBackend::new(client.clone()));
        let registrar = Registrar::start(backend, cfg, node).await?;
        Ok(EtcdRegistry { registrar, client })
    }

    /// The underlying client (e.g. for health checks).
    pub fn client(&self) -> &Client {
        &self.client
    }
}

crate::registrar::delegate_registry!(EtcdRegistry);
