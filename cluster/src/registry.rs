//! The [`Registry`] trait: what a node asks of the cluster registry, whichever backend holds it.

use crate::keys::{Keyspace, DEFAULT_PREFIX};
use crate::types::{
    Claim, LoadReport, NodeId, NodeInfo, RegistryEvent, Role, Snapshot, StreamInfo,
};
use futures_util::future::BoxFuture;
use sluice_media::stream_name::StreamKey;
use std::time::Duration;
use tokio::sync::{broadcast, watch};

/// Default lease TTL.
pub const DEFAULT_TTL: Duration = Duration::from_secs(5);
/// Default extra wait, past the TTL, before a contested claim is refused.
pub const DEFAULT_CLAIM_MARGIN: Duration = Duration::from_secs(1);
/// Default pause between attempts while a claim is held.
pub const DEFAULT_CLAIM_RETRY: Duration = Duration::from_millis(250);

/// How a registry identifies this node and times its lease and claims.
#[derive(Debug, Clone)]
pub struct RegistryConfig {
    /// Key prefix; several clusters can share one etcd under different prefixes.
    pub prefix: String,
    pub node_id: NodeId,
    pub role: Role,
    /// Lease TTL (etcd counts whole seconds, minimum 1; rounded up). Keep-alives go every TTL/3.
    pub ttl: Duration,
    /// A claim that finds the name held by another node retries until TTL + this margin has
    /// passed (the holder's lease would have expired by then if the holder were dead).
    pub claim_margin: Duration,
    /// Pause between claim attempts while held.
    pub claim_retry: Duration,
    /// Timeout of one request to the backend.
    pub op_timeout: Duration,
    /// TLS to etcd (`https://` endpoints).
    pub tls: EtcdTls,
    /// etcd user and password, when etcd has authentication on.
    pub auth: Option<EtcdAuth>,
}

/// TLS to etcd: the CA that signed etcd's certificate, and this client's certificate and key
/// when etcd asks for one (`--client-cert-auth`). Files are read when connecting.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct EtcdTls {
    pub ca_file: Option<std::path::PathBuf>,
    pub cert_file: Option<std::path::PathBuf>,
    pub key_file: Option<std::path::PathBuf>,
}

/// An etcd user: its name, and the file holding its password (read when connecting, so the
/// password is on no command line; a trailing newline is not part of it). The client
/// authenticates on connect and again when etcd says the token expired.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct EtcdAuth {
    pub user: String,
    pub password_file: std::path::PathBuf,
}

impl EtcdAuth {
    /// The password from the file.
    pub fn password(&self) -> Result<String, RegistryError> {
        let text = std::fs::read_to_string(&self.password_file).map_err(|e| {
            RegistryError::Auth(format!(
                "reading the etcd password file {}: {e}",
                self.password_file.display()
            ))
        })?;
        let password = text.trim_end_matches(['\r', '\n']);
        if password.is_empty() {
            return Err(RegistryError::Auth(format!(
                "the etcd password file {} is empty",
                self.password_file.display()
            )));
        }
        Ok(password.to_string())
    }
}

impl EtcdTls {
    /// Whether any TLS setting is given.
    pub fn is_set(&self) -> bool {
        self.ca_file.is_some() || self.cert_file.is_some() || self.key_file.is_some()
    }
}

impl RegistryConfig {
    /// Defaults: prefix `/sluice`, TTL 5 s, margin 1 s, retry 250 ms, op timeout 3 s.
    pub fn new(node_id: NodeId, role: Role) -> RegistryConfig {
        RegistryConfig {
            prefix: DEFAULT_PREFIX.to_string(),
            node_id,
            role,
            ttl: DEFAULT_TTL,
            claim_margin: DEFAULT_CLAIM_MARGIN,
            claim_retry: DEFAULT_CLAIM_RETRY,
            op_timeout: Duration::from_secs(3),
            tls: EtcdTls::default(),
            auth: None,
        }
    }

    pub fn with_tls(mut self, tls: EtcdTls) -> Self {
        self.tls = tls;
        self
    }

    pub fn with_auth(mut self, auth: Option<EtcdAuth>) -> Self {
        self.auth = auth;
        self
    }

    pub fn with_prefix(mut self, prefix: &str) -> Self {
        self.prefix = prefix.to_string();
        self
    }

    pub fn with_ttl(mut self, ttl: Duration) -> Self {
        self.ttl = ttl;
        self
    }

    /// Total time a contested claim is held before [`ClaimError::Taken`].
    pub fn claim_hold(&self) -> Duration {
        self.ttl.saturating_add(self.claim_margin)
    }

    /// The TTL in whole seconds as a lease wants it (at least 1).
    pub fn ttl_secs(&self) -> i64 {
        let secs = self.ttl.as_secs() + u64::from(self.ttl.subsec_nanos() > 0);
        i64::try_from(secs.max(1)).unwrap_or(i64::MAX)
    }

    pub fn keyspace(&self) -> Keyspace {
        Keyspace::new(&self.prefix)
    }
}

/// A registry operation failed.
#[derive(Debug, thiserror::Error)]
pub enum RegistryError {
    #[error("etcd: {0}")]
    Etcd(#[from] etcd_client::Error),
    #[error("registry request timed out ({0})")]
    Timeout(&'static str),
    #[error("lease {0} not found (expired or revoked)")]
    LeaseNotFound(i64),
    #[error("the registry did not deliver its first snapshot in time")]
    NotReady,
    #[error("encoding a registry value: {0}")]
    Encode(#[from] serde_json::Error),
    #[error("etcd TLS: {0}")]
    Tls(String),
    #[error("etcd authentication: {0}")]
    Auth(String),
    /// No keep-alive was answered for most of the lease: this node takes no new stream until
    /// the registry answers again.
    #[error("this node has not reached the cluster registry for most of its lease (fenced)")]
    Fenced,
}

/// A stream claim failed.
#[derive(Debug, thiserror::Error)]
pub enum ClaimError {
    /// The name is held by another live node (or by an unknown writer: `holder` is `None` when
    /// the value does not parse) and was still held after TTL + margin.
    #[error("stream is already published on {}", holder.as_ref().map_or("an unknown node", |h| h.as_str()))]
    Taken { holder: Option<NodeId> },
    #[error(transparent)]
    Registry(#[from] RegistryError),
}

/// The cluster registry as a node uses it.
///
/// Object-safe (methods return boxed futures), so a node holds an `Arc<dyn Registry>` whether it
/// runs standalone ([`crate::MemoryRegistry`]) or clustered ([`crate::EtcdRegistry`]). Both are
/// created registered (node key written under a fresh lease, keep-alive and cache tasks
/// running); dropping one stops its tasks *without* revoking the lease (like a crash: its keys
/// vanish after the TTL), [`Registry::shutdown`] revokes it (keys vanish at once).
pub trait Registry: Send + Sync {
    /// This node's id and role.
    fn node(&self) -> (&NodeId, Role);

    /// The lease currently holding this node's keys (changes after a lost lease).
    fn lease(&self) -> i64;

    /// Replace this node's advertised value (e.g. state → `Draining`).
    fn update_node(&self, info: NodeInfo) -> BoxFuture<'_, Result<(), RegistryError>>;

    /// Write this node's load report (`{prefix}/load/{role}/{id}`) under its lease. Called every
    /// few seconds; after a lost lease the next call writes it under the new one.
    fn report_load(&self, report: LoadReport) -> BoxFuture<'_, Result<(), RegistryError>>;

    /// Claim `stream` for this node: the only live publisher cluster-wide.
    ///
    /// If another node holds it, retries for [`RegistryConfig::claim_hold`] (an encoder that
    /// reconnects after its origin crashed gets the name once the dead lease expires), then
    /// fails with [`ClaimError::Taken`]. Claiming a name this node already holds returns that
    /// claim unchanged; claiming a new one while fenced fails at once with
    /// [`RegistryError::Fenced`].
    fn claim(
        &self,
        stream: StreamKey,
        info: StreamInfo,
    ) -> BoxFuture<'_, Result<Claim, ClaimError>>;

    /// Replace the value of a claim this node holds (e.g. the codecs once media arrived), only
    /// if the key is still this claim (same `create_revision`, which stays the fencing token).
    /// `Ok(false)`: not held any more.
    fn update_claim<'a>(
        &'a self,
        claim: &'a Claim,
        info: StreamInfo,
    ) -> BoxFuture<'a, Result<bool, RegistryError>>;

    /// Release a claim (only if the key is still this claim: same `create_revision`).
    fn release(&self, claim: Claim) -> BoxFuture<'_, Result<(), RegistryError>>;

    /// Ask the playout holding `stream` (its claim says [`StreamInfo::playout`]) to give the
    /// name way to a live encoder here: a request under this node's lease that the holder
    /// sees in its cache. `Ok(None)`: another node asked first (its request serves). The
    /// caller then claims, and withdraws its request.
    fn request_takeover<'a>(
        &'a self,
        stream: &'a StreamKey,
    ) -> BoxFuture<'a, Result<Option<i64>, RegistryError>>;

    /// Withdraw the request `request_takeover` made (its revision).
    fn withdraw_takeover<'a>(
        &'a self,
        stream: &'a StreamKey,
        revision: i64,
    ) -> BoxFuture<'a, Result<(), RegistryError>>;

    /// The claims this node holds now.
    fn claims(&self) -> Vec<Claim>;

    /// Whether the node is fenced ([`RegistryEvent::Fenced`]): its lease may have ended, it
    /// claims nothing new and should host nothing new until the registry answers again.
    fn is_fenced(&self) -> bool;

    /// The local cache of the whole cluster, updated from the registry's watch.
    fn snapshot(&self) -> watch::Receiver<Snapshot>;

    /// Lease and claim events ([`RegistryEvent`]). After `Lagged`, reconcile with
    /// [`Registry::claims`].
    fn events(&self) -> broadcast::Receiver<RegistryEvent>;

    /// Stop the tasks and revoke the lease: every key of this node disappears now.
    fn shutdown(&self) -> BoxFuture<'_, ()>;
}
