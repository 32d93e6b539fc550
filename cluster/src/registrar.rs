//! The registry logic shared by both backends: the node's lease (keep-alive, fencing while it
//! may have ended, and recovery once the store says it is gone: a new lease, the node key and
//! every claim written again; decisions in [`crate::lease`]), claims with hold-and-retry, claim
//! updates and releases that follow a claim through its renewals, releases retried until they
//! reach the store, and the events callers act on. A [`Backend`] supplies the primitive
//! operations and the cache loop.

use crate::backend::{with_timeout, Backend, Create};
use crate::backoff::Backoff;
use crate::keys::Keyspace;
use crate::lease::{KeepAlive, LeaseAction, LeaseKeeper};
use crate::registry::{ClaimError, RegistryConfig, RegistryError};
use crate::types::{
    Claim, LoadReport, NodeId, NodeInfo, RawKv, RegistryEvent, Snapshot, StreamInfo,
};
use sluice_media::stream_name::StreamKey;
use std::collections::BTreeMap;
use std::sync::atomic::{AtomicI64, Ordering};
use std::sync::Arc;
use std::time::Duration;
use tokio::sync::{broadcast, watch, Mutex};
use tokio::task::JoinHandle;
use tokio::time::{sleep, timeout, Instant};

struct State {
    lease: i64,
    node: NodeInfo,
    claims: BTreeMap<StreamKey, Claim>,
    /// A held claim's earlier create revisions → the one that replaced it at a lease recovery,
    /// so a caller holding an older [`Claim`] still updates and releases the current one.
    renewed: BTreeMap<i64, i64>,
    /// Releases whose delete did not reach the store: stream key → create revision. Retried
    /// after every keep-alive until they do, or until the lease (and the keys) are gone.
    unreleased: BTreeMap<String, i64>,
}

impl State {
    /// The create revision of the claim `claim` has become, if this node still holds it.
    fn current(&self, claim: &Claim) -> Option<i64> {
        let held = self.claims.get(&claim.stream)?.create_revision;
        let mut rev = claim.create_revision;
        // Each renewal adds one link; a chain longer than the map is impossible.
        for _ in 0..=self.renewed.len() {
            if rev == held {
                return Some(rev);
            }
            rev = *self.renewed.get(&rev)?;
        }
        None
    }

    /// Forget the renewal links of claims no longer held.
    fn prune_renewed(&mut self) {
        let held: std::collections::BTreeSet<i64> =
            self.claims.values().map(|c| c.create_revision).collect();
        let renewed = std::mem::take(&mut self.renewed);
        self.renewed = renewed
            .iter()
            .filter(|&(&old, _)| {
                let mut rev = old;
                for _ in 0..=renewed.len() {
                    match renewed.get(&rev) {
                        Some(&next) => rev = next,
                        None => break,
                    }
                }
                held.contains(&rev)
            })
            .map(|(&k, &v)| (k, v))
            .collect();
    }
}

struct Shared<B> {
    backend: Arc<B>,
    cfg: RegistryConfig,
    keys: Keyspace,
    node_key: String,
    load_key: String,
    state: Mutex<State>,
    /// Mirror of `state.lease` readable without the lock.
    lease: AtomicI64,
    /// Whether the keep-alive task has fenced the node.
    fenced: std::sync::atomic::AtomicBool,
    /// Mirror of `state.claims` readable without the lock.
    claims: std::sync::Mutex<Vec<Claim>>,
    events: broadcast::Sender<RegistryEvent>,
}

/// A running registry over backend `B`.
pub(crate) struct Registrar<B: Backend> {
    shared: Arc<Shared<B>>,
    snapshot: watch::Receiver<Snapshot>,
    tasks: Vec<JoinHandle<()>>,
}

impl<B: Backend> Drop for Registrar<B> {
    fn drop(&mut self) {
        for t in &self.tasks {
            t.abort();
        }
    }
}

impl<B: Backend> Registrar<B> {
    /// Grant a lease, write the node key, start keep-alive and cache, and wait for the cache to
    /// show the node key.
    pub(crate) async fn start(
        backend: Arc<B>,
        cfg: RegistryConfig,
        node: NodeInfo,
    ) -> Result<Registrar<B>, RegistryError> {
        let keys = cfg.keyspace();
        let node_key = keys.node(cfg.role, &cfg.node_id);
        let load_key = keys.load(cfg.role, &cfg.node_id);
        let op = cfg.op_timeout;
        let granted_at = Instant::now();
        let lease = with_timeout(op, "lease grant", backend.grant(cfg.ttl_secs())).await?;
        let value = serde_json::to_vec(&node)?;
        let rev = with_timeout(op, "node put", backend.put(&node_key, value, lease)).await?;
        let (tx, mut rx) = watch::channel(Snapshot::default());
        let (events, _) = broadcast::channel(256);
        let shared = Arc::new(Shared {
            backend: backend.clone(),
            keys: keys.clone(),
            node_key,
            load_key,
            state: Mutex::new(State {
                lease,
                node,
                claims: BTreeMap::new(),
                renewed: BTreeMap::new(),
                unreleased: BTreeMap::new(),
            }),
            lease: AtomicI64::new(lease),
            fenced: false.into(),
            claims: std::sync::Mutex::new(Vec::new()),
            events,
            cfg,
        });
        let cache = tokio::spawn(backend.run_cache(keys, tx));
        let keeper = LeaseKeeper::new(granted_at, shared.cfg.ttl);
        let keeper = tokio::spawn(keep_alive_loop(shared.clone(), keeper));
        let registrar = Registrar { shared, snapshot: rx.clone(), tasks: vec![cache, keeper] };
        let ready = timeout(op.saturating_mul(2), rx.wait_for(|s| s.revision >= rev))
            .await
            .is_ok_and(|r| r.is_ok());
        if ready {
            Ok(registrar)
        } else {
            Err(RegistryError::NotReady)
        }
    }

    pub(crate) fn cfg(&self) -> &RegistryConfig {
        &self.shared.cfg
    }

    pub(crate) fn lease(&self) -> i64 {
        self.shared.lease.load(Ordering::Acquire)
    }

    pub(crate) fn is_fenced(&self) -> bool {
        self.shared.fenced.load(Ordering::Acquire)
    }

    pub(crate) fn claims(&self) -> Vec<Claim> {
        crate::lock::lock(&self.shared.claims).clone()
    }

    pub(crate) fn snapshot(&self) -> watch::Receiver<Snapshot> {
        self.snapshot.clone()
    }

    pub(crate) fn events(&self) -> broadcast::Receiver<RegistryEvent> {
        self.shared.events.subscribe()
    }

    pub(crate) async fn update_node(&self, info: NodeInfo) -> Result<(), RegistryError> {
        let s = &self.shared;
        let mut st = s.state.lock().await;
        let value = serde_json::to_vec(&info)?;
        st.node = info;
        let put = s.backend.put(&s.node_key, value, st.lease);
        with_timeout(s.cfg.op_timeout, "node put", put).await?;
        Ok(())
    }

    /// Put the load key under the current lease. No state lock: a report racing a lease
    /// recovery fails (old lease gone) or lands under the new lease; the next one fixes either.
    pub(crate) async fn report_load(&self, report: LoadReport) -> Result<(), RegistryError> {
        let s = &self.shared;
        let value = serde_json::to_vec(&report)?;
        let put = s.backend.put(&s.load_key, value, self.lease());
        with_timeout(s.cfg.op_timeout, "load put", put).await?;
        Ok(())
    }

    pub(crate) async fn claim(
        &self,
        stream: StreamKey,
        info: StreamInfo,
    ) -> Result<Claim, ClaimError> {
        let s = &self.shared;
        let key = s.keys.stream(&stream);
        let value = serde_json::to_vec(&info).map_err(RegistryError::from)?;
        let deadline = Instant::now() + s.cfg.claim_hold();
        loop {
            let holder = {
                let mut st = s.state.lock().await;
                if let Some(held) = st.claims.get(&stream) {
                    return Ok(held.clone());
                }
                if s.fenced.load(Ordering::Acquire) {
                    return Err(RegistryError::Fenced.into());
                }
                let create = s.backend.create(&key, value.clone(), st.lease);
                match with_timeout(s.cfg.op_timeout, "claim", create).await? {
                    Create::Created { revision } => {
                        let claim = Claim {
                            stream: stream.clone(),
                            info,
                            create_revision: revision,
                            mod_revision: revision,
                            lease: st.lease,
                        };
                        st.claims.insert(stream, claim.clone());
                        s.mirror_claims(&st);
                        return Ok(claim);
                    }
                    Create::Exists(kv) => holder_of(&kv),
                }
            };
            let now = Instant::now();
            if now >= deadline {
                return Err(ClaimError::Taken { holder });
            }
            tracing::debug!(%stream, ?holder, "stream held elsewhere; retrying claim");
            sleep(s.cfg.claim_retry.min(deadline - now)).await;
        }
    }

    pub(crate) async fn update_claim(
        &self,
        claim: &Claim,
        info: StreamInfo,
    ) -> Result<bool, RegistryError> {
        let s = &self.shared;
        let mut st = s.state.lock().await;
        let Some(revision) = st.current(claim) else {
            return Ok(false);
        };
        let key = s.keys.stream(&claim.stream);
        let value = serde_json::to_vec(&info)?;
        let put = s.backend.put_if_created_at(&key, value, st.lease, revision);
        let written = with_timeout(s.cfg.op_timeout, "claim update", put).await?;
        if written {
            if let Some(c) = st.claims.get_mut(&claim.stream) {
                c.info = info;
            }
            s.mirror_claims(&st);
        }
        Ok(written)
    }

    /// Release `claim` (or what it was renewed into). A delete that does not reach the store
    /// is retried in the background until it does or the lease ends; the error says so.
    pub(crate) async fn release(&self, claim: Claim) -> Result<(), RegistryError> {
        let s = &self.shared;
        let mut st = s.state.lock().await;
        let revision = match st.current(&claim) {
            Some(rev) => {
                st.claims.remove(&claim.stream);
                st.prune_renewed();
                s.mirror_claims(&st);
                rev
            }
            None => claim.create_revision,
        };
        let key = s.keys.stream(&claim.stream);
        let del = s.backend.delete_if_created_at(&key, revision);
        if let Err(e) = with_timeout(s.cfg.op_timeout, "release", del).await {
            st.unreleased.insert(key, revision);
            return Err(e);
        }
        Ok(())
    }

    pub(crate) async fn request_takeover(
        &self,
        stream: &StreamKey,
    ) -> Result<Option<i64>, RegistryError> {
        let s = &self.shared;
        let value = serde_json::to_vec(&s.cfg.node_id)?;
        let key = s.keys.takeover(stream);
        let create = s.backend.create(&key, value, self.lease());
        match with_timeout(s.cfg.op_timeout, "takeover request", create).await? {
            Create::Created { revision } => Ok(Some(revision)),
            Create::Exists(_) => Ok(None),
        }
    }

    pub(crate) async fn withdraw_takeover(
        &self,
        stream: &StreamKey,
        revision: i64,
    ) -> Result<(), RegistryError> {
        let s = &self.shared;
        let key = s.keys.takeover(stream);
        let del = s.backend.delete_if_created_at(&key, revision);
        with_timeout(s.cfg.op_timeout, "takeover withdrawal", del).await.map(drop)
    }

    pub(crate) async fn shutdown(&self) {
        for t in &self.tasks {
            t.abort();
        }
        let s = &self.shared;
        let mut st = s.state.lock().await;
        st.claims.clear();
        st.renewed.clear();
        st.unreleased.clear();
        s.mirror_claims(&st);
        let revoke = s.backend.revoke(st.lease);
        if let Err(e) = with_timeout(s.cfg.op_timeout, "lease revoke", revoke).await {
            tracing::warn!(error = %e, "revoking lease at shutdown failed; keys expire with the TTL");
        }
    }
}

impl<B: Backend> Shared<B> {
    fn mirror_claims(&self, st: &State) {
        *crate::lock::lock(&self.claims) = st.claims.values().cloned().collect();
    }

    fn emit(&self, ev: RegistryEvent) {
        // No receiver is fine: nobody listens.
        let _ = self.events.send(ev);
    }

    /// The store no longer has lease `old`: grant a new one, write the node key and every
    /// claim again. Retries with backoff until it succeeds (or finds someone else already
    /// recovered); returns when the new lease was granted.
    async fn recover(&self, old: i64) -> Instant {
        let mut backoff = Backoff::new(Duration::from_millis(200), Duration::from_secs(2));
        loop {
            let granted_at = Instant::now();
            match self.try_recover(old).await {
                Ok(()) => return granted_at,
                Err(e) => {
                    tracing::warn!(error = %e, "re-registering after a lost lease failed");
                    sleep(backoff.next_delay()).await;
                }
            }
        }
    }

    async fn try_recover(&self, old: i64) -> Result<(), RegistryError> {
        let op = self.cfg.op_timeout;
        let mut st = self.state.lock().await;
        if st.lease != old {
            return Ok(());
        }
        let new = with_timeout(op, "lease grant", self.backend.grant(self.cfg.ttl_secs())).await?;
        let claim_events = match self.rewrite(&mut st, new).await {
            Ok(events) => events,
            Err(e) => {
                let _ = with_timeout(op, "lease revoke", self.backend.revoke(new)).await;
                return Err(e);
            }
        };
        tracing::info!(old, new, "lease lost; node re-registered");
        // The old lease's keys went with it, unreleased ones included.
        st.unreleased.clear();
        st.prune_renewed();
        st.lease = new;
        self.lease.store(new, Ordering::Release);
        self.mirror_claims(&st);
        self.emit(RegistryEvent::LeaseRenewed { old, new });
        for ev in claim_events {
            self.emit(ev);
        }
        Ok(())
    }

    /// Write the node key and re-take every claim under `lease`; returns the claim events.
    async fn rewrite(
        &self,
        st: &mut State,
        lease: i64,
    ) -> Result<Vec<RegistryEvent>, RegistryError> {
        let mut events = Vec::new();
        let op = self.cfg.op_timeout;
        let value = serde_json::to_vec(&st.node)?;
        with_timeout(op, "node put", self.backend.put(&self.node_key, value, lease)).await?;
        let streams: Vec<StreamKey> = st.claims.keys().cloned().collect();
        for stream in streams {
            let Some(claim) = st.claims.get(&stream).cloned() else {
                continue;
            };
            let key = self.keys.stream(&stream);
            let value = serde_json::to_vec(&claim.info)?;
            let create = self.backend.create(&key, value, lease);
            match with_timeout(op, "claim", create).await? {
                Create::Created { revision } => {
                    st.renewed.insert(claim.create_revision, revision);
                    let renewed =
                        Claim { create_revision: revision, mod_revision: revision, lease, ..claim };
                    st.claims.insert(stream, renewed.clone());
                    events.push(RegistryEvent::ClaimRenewed { claim: renewed });
                }
                Create::Exists(kv) => {
                    let holder = holder_of(&kv);
                    tracing::warn!(%stream, ?holder, "claim taken while the lease was lost");
                    st.claims.remove(&stream);
                    events.push(RegistryEvent::ClaimLost { stream, holder });
                }
            }
        }
        Ok(events)
    }

    /// Deletes that failed at release, tried again (the lease is alive: their keys are too).
    async fn retry_releases(&self) {
        let mut st = self.state.lock().await;
        let pending: Vec<(String, i64)> =
            st.unreleased.iter().map(|(k, &v)| (k.clone(), v)).collect();
        for (key, revision) in pending {
            let del = self.backend.delete_if_created_at(&key, revision);
            match with_timeout(self.cfg.op_timeout, "release", del).await {
                Ok(_) => {
                    tracing::info!(%key, "a release that had failed reached the store");
                    st.unreleased.remove(&key);
                }
                Err(e) => tracing::debug!(%key, error = %e, "release retry failed"),
            }
        }
    }
}

/// Keep the lease alive every TTL/3 ([`LeaseKeeper`] decides): fence while it may have ended,
/// re-register only once the store says it is gone, retry failed releases while it lives.
async fn keep_alive_loop<B: Backend>(s: Arc<Shared<B>>, mut keeper: LeaseKeeper) {
    loop {
        let wake = (Instant::now() + keeper.period()).min(keeper.fence_at());
        tokio::time::sleep_until(wake.max(Instant::now() + Duration::from_millis(10))).await;
        let lease = s.lease.load(Ordering::Acquire);
        let sent_at = Instant::now();
        // A keep-alive that hangs (a link that drops packets) must not hold the fence back:
        // the fence time is watched while the answer is awaited.
        let call = timeout(keeper.period(), s.backend.keep_alive(lease));
        tokio::pin!(call);
        let answer = loop {
            tokio::select! {
                answer = &mut call => break answer,
                _ = tokio::time::sleep_until(keeper.fence_at()), if !keeper.is_fenced() => {
                    if keeper.on_time(Instant::now()) == Some(LeaseAction::Fence) {
                        fence(&s, lease);
                    }
                }
            }
        };
        let result = match answer {
            Ok(Ok(true)) => KeepAlive::Alive,
            Ok(Ok(false)) => KeepAlive::NotFound,
            Ok(Err(e)) => {
                tracing::debug!(lease, error = %e, "keep-alive failed");
                KeepAlive::Failed
            }
            Err(_) => {
                tracing::debug!(lease, "keep-alive timed out");
                KeepAlive::Failed
            }
        };
        let was_fenced = keeper.is_fenced();
        match keeper.on_keep_alive(sent_at, Instant::now(), result) {
            Some(LeaseAction::Fence) => fence(&s, lease),
            Some(LeaseAction::Unfence) => {
                s.fenced.store(false, Ordering::Release);
                tracing::info!(lease, "the registry answers again and the lease is alive");
                s.emit(RegistryEvent::Unfenced);
            }
            Some(LeaseAction::Recover) => {
                tracing::warn!(lease, "lease not found");
                s.fenced.store(true, Ordering::Release);
                if !was_fenced {
                    s.emit(RegistryEvent::Fenced);
                }
                let granted_at = s.recover(lease).await;
                s.fenced.store(false, Ordering::Release);
                if keeper.on_recovered(granted_at) {
                    s.emit(RegistryEvent::Unfenced);
                }
            }
            None => {}
        }
        if result == KeepAlive::Alive {
            s.retry_releases().await;
        }
    }
}

fn fence<B: Backend>(s: &Shared<B>, lease: i64) {
    s.fenced.store(true, Ordering::Release);
    tracing::warn!(lease, "no keep-alive answered: the lease may end; fenced");
    s.emit(RegistryEvent::Fenced);
}

/// The origin recorded in a stream value, if it parses.
fn holder_of(kv: &RawKv) -> Option<NodeId> {
    serde_json::from_slice::<StreamInfo>(&kv.value).ok().map(|i| i.origin)
}

/// `impl Registry for $t` by delegating to its `registrar: Registrar<_>` field (both backends share it).
macro_rules! delegate_registry {
    ($t:ty) => {
        impl $crate::registry::Registry for $t {
            fn node(&self) -> (&$crate::types::NodeId, $crate::types::Role) {
                (&self.registrar.cfg().node_id, self.registrar.cfg().role)
            }
            fn lease(&self) -> i64 {
                self.registrar.lease()
            }
            fn update_node(
                &self,
                info: $crate::types::NodeInfo,
            ) -> futures_util::future::BoxFuture<'_, Result<(), $crate::registry::RegistryError>>
            {
                futures_util::FutureExt::boxed(self.registrar.update_node(info))
            }
            fn report_load(
                &self,
                report: $crate::types::LoadReport,
            ) -> futures_util::future::BoxFuture<'_, Result<(), $crate::registry::RegistryError>>
            {
                futures_util::FutureExt::boxed(self.registrar.report_load(report))
            }
            fn claim(
                &self,
                stream: sluice_media::stream_name::StreamKey,
                info: $crate::types::StreamInfo,
            ) -> futures_util::future::BoxFuture<
                '_,
                Result<$crate::types::Claim, $crate::registry::ClaimError>,
            > {
                futures_util::FutureExt::boxed(self.registrar.claim(stream, info))
            }
            fn update_claim<'a>(
                &'a self,
                claim: &'a $crate::types::Claim,
                info: $crate::types::StreamInfo,
            ) -> futures_util::future::BoxFuture<'a, Result<bool, $crate::registry::RegistryError>>
            {
                futures_util::FutureExt::boxed(self.registrar.update_claim(claim, info))
            }
            fn release(
                &self,
                claim: $crate::types::Claim,
            ) -> futures_util::future::BoxFuture<'_, Result<(), $crate::registry::RegistryError>>
            {
                futures_util::FutureExt::boxed(self.registrar.release(claim))
            }
            fn request_takeover<'a>(
                &'a self,
                stream: &'a sluice_media::stream_name::StreamKey,
            ) -> futures_util::future::BoxFuture<
                'a,
                Result<Option<i64>, $crate::registry::RegistryError>,
            > {
                futures_util::FutureExt::boxed(self.registrar.request_takeover(stream))
            }
            fn withdraw_takeover<'a>(
                &'a self,
                stream: &'a sluice_media::stream_name::StreamKey,
                revision: i64,
            ) -> futures_util::future::BoxFuture<'a, Result<(), $crate::registry::RegistryError>>
            {
                futures_util::FutureExt::boxed(self.registrar.withdraw_takeover(stream, revision))
            }
            fn is_fenced(&self) -> bool {
                self.registrar.is_fenced()
            }
            fn claims(&self) -> Vec<$crate::types::Claim> {
                self.registrar.claims()
            }
            fn snapshot(&self) -> tokio::sync::watch::Receiver<$crate::types::Snapshot> {
                self.registrar.snapshot()
            }
            fn events(&self) -> tokio::sync::broadcast::Receiver<$crate::types::RegistryEvent> {
                self.registrar.events()
            }
            fn shutdown(&self) -> futures_util::future::BoxFuture<'_, ()> {
                futures_util::FutureExt::boxed(self.registrar.shutdown())
            }
        }
    };
}
pub(crate) use delegate_registry;
