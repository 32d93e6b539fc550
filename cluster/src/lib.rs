//! `sluice-cluster`: the foundation of a Sluice cluster — who is alive, who publishes which
//! stream, and where each stream lives.
//!
//! # Key layout
//!
//! One configurable prefix (default `/sluice`; several clusters can share one etcd):
//!
//! ```text
//! {prefix}/nodes/{origin|edge}/{node-id}  → NodeInfo JSON   {"addresses":{..},"capacity":{..},"state":"ready","version":"0.1.0","started_at_ms":..}
//! {prefix}/streams/{app}/{name}           → StreamInfo JSON {"origin":"o1","codecs":["h264"],"started_at_ms":..}
//! {prefix}/load/{origin|edge}/{node-id}   → LoadReport JSON {"viewers":{"flv":3},"egress_bps":..,"capacity":{..},..,
//!                                             "by_stream":{"live/x":{"viewers":3,"width":1280,"height":720,"fps_milli":30000,"ingress_bps":..}},
//!                                             "playouts":{"3f9a0c1d2e4b":"playing"}}
//! {prefix}/orders/drain/{role}/{node-id}  → DrainOrder JSON {"deadline_seconds":30,"issued_at_ms":..} (no lease)
//! {prefix}/orders/kick/{app}/{name}       → KickOrder JSON  {"issued_at_ms":..} (own 60 s lease)
//! {prefix}/ladders/{app}                  → LadderValue JSON {"renditions":[..]} (no lease)
//! {prefix}/schedule/{id}                  → schedule EntryValue JSON {"app":"live","stream":"tv","file":"a.flv",
//!                                             "start_ms":..,"loop":true} (no lease)
//! ```
//!
//! Orders are written by the control plane ([`OrderWriter`], from [`Observer::orders`]) and
//! carried out by the nodes they name, from their caches.
//!
//! # Leases and claims
//!
//! Each node holds one lease (TTL default 5 s, kept alive every TTL/3). Its node key and every
//! stream it claims are attached to that lease, so a crashed node's keys vanish one TTL after
//! its last keep-alive, all at once.
//!
//! A **claim** is the exclusive right to publish a name cluster-wide: a transaction
//! `if create_revision(key) == 0 then put(key, info, lease) else get(key)`. If the name is held
//! by another node, the claim is *held*: retried every 250 ms until TTL + margin (default
//! 1 s) has passed — long enough for a dead holder's lease to expire — so an encoder that
//! reconnects to another origin after its origin crashed gets its name back. Past that the
//! claim fails with [`ClaimError::Taken`] naming the holder. Each [`Claim`] records the key's
//! `create_revision`: the fencing token that tells the current publisher from a stale one
//! (a re-claim always has a larger revision). Release deletes the key only if its
//! `create_revision` is still the claim's, or what the claim was renewed into (a [`Claim`]
//! from before a lease recovery still updates and releases the current one); a release that
//! fails to reach the store is retried after each keep-alive until it does or the lease ends.
//!
//! While no keep-alive is answered the node is *fenced* ([`RegistryEvent::Fenced`],
//! [`Registry::is_fenced`]: new claims fail at once with [`RegistryError::Fenced`]) a margin
//! before its lease can end, and unfenced ([`RegistryEvent::Unfenced`]) when the store answers
//! again; a slow or unreachable store never makes the node revoke a lease that may be alive.
//! Only when the store says the lease is gone does the registry grant a new lease, write the
//! node key again and re-claim every stream it held; it broadcasts
//! [`RegistryEvent::LeaseRenewed`], then per stream [`RegistryEvent::ClaimRenewed`] (new
//! revision) or [`RegistryEvent::ClaimLost`] (another node took it meanwhile: stop that
//! publisher). The decisions are [`lease::LeaseKeeper`]'s, tested on a virtual clock.
//!
//! The local cache ([`Snapshot`], via [`Registry::snapshot`], a `tokio::sync::watch`) lists
//! the keyspace, then watches from the listed revision + 1. A broken watch is re-opened from
//! the cache's revision + 1 (exponential backoff 100 ms – 5 s); if that history was compacted
//! meanwhile, or etcd cancels the watch, the cache lists again. It converges after any trouble.
//! Keys or values it does not understand are ignored, never trusted.
//!
//! The in-memory registry ([`MemoryRegistry`] over a [`MemoryStore`]) implements the same
//! rules in-process — leases that expire, claims, re-registration, the cache — and is what a
//! standalone node uses; several registries on one store behave like nodes on one etcd.
//!
//! # Integration API (for `node/` and `origin/`)
//!
//! - Start: [`EtcdRegistry::connect`]`(&endpoints, `[`RegistryConfig`]`, `[`NodeInfo`]`)` with
//!   `--etcd`, else [`MemoryRegistry::standalone`]; keep it as `Arc<dyn Registry>`. Both return
//!   once the node key is written and the cache shows it.
//! - Publish: [`Registry::claim`] before accepting the publisher (it may wait up to TTL +
//!   margin; map [`ClaimError::Taken`] to `NetStream.Publish.BadName`); [`Registry::release`]
//!   on unpublish. Subscribe to [`Registry::events`] once: `ClaimLost` → stop that publisher;
//!   `ClaimRenewed` → re-announce the new [`Claim::revision`].
//! - Play/forward: [`placement::spawn_ring`] on [`Registry::snapshot`] gives a
//!   `watch::Receiver<Arc<Ring>>`; `ring.borrow().owner(&stream)` is the home;
//!   [`Snapshot::stream`] says whether a stream is live, on which origin, at which revision.
//! - Relay: [`rules::should_dial`] for the shared connection; [`rules::should_accept_forward`]
//!   for forwards.
//! - Drain: [`Registry::update_node`] with [`NodeState::Draining`] (leaves the ring), then
//!   [`Registry::shutdown`] (revokes the lease).
//!
//! # Placement
//!
//! [`Ring`] is a consistent-hash ring (the `hashring` crate, 64 virtual nodes per origin by
//! default) over the ready origins; [`Ring::owner`] is a stream's home. Adding or removing an
//! origin moves only the streams whose owner changed. [`Damper`] keeps flapping nodes out of
//! the ring until stable; [`placement::spawn_ring`] drives both from the cache.
//! [`rules::dialer`] says which node of a pair dials the shared relay connection (the lower
//! id); [`rules::should_accept_forward`] is the hop rule for forwards.
//!
//! # How a node uses it
//!
//! ```no_run
//! # async fn demo() -> Result<(), Box<dyn std::error::Error>> {
//! use sluice_cluster::*;
//! use std::sync::Arc;
//! let cfg = RegistryConfig::new(NodeId::new("origin-1")?, Role::Origin).with_prefix("/sluice");
//! let info = NodeInfo::default(); // addresses, capacity, state
//! // Clustered (--etcd) or standalone (no --etcd): same trait.
//! let registry: Arc<dyn Registry> = match Some(vec!["http://127.0.0.1:2379".to_string()]) {
//!     Some(endpoints) => Arc::new(EtcdRegistry::connect(&endpoints, cfg, info).await?),
//!     None => Arc::new(MemoryRegistry::standalone(cfg, info).await?),
//! };
//! // On publish: claim (may wait up to TTL + margin), then publish; on unpublish: release.
//! let (stream, _) = sluice_media::stream_name::StreamKey::parse("live", "cam")?;
//! let claim = match registry.claim(stream, StreamInfo {
//!     origin: registry.node().0.clone(), codecs: vec![], started_at_ms: 0, rendition_of: None,
//!     playout: false,
//! }).await {
//!     Ok(claim) => claim,                          // announce claim.revision() on the relay
//!     Err(ClaimError::Taken { holder }) => return Ok(()), // refuse the publish
//!     Err(e) => return Err(e.into()),
//! };
//! // Watch events: on ClaimLost stop that publisher; on ClaimRenewed re-announce.
//! let mut events = registry.events();
//! // Placement: an owner lookup is a local read.
//! let (ring, _task) = placement::spawn_ring(registry.snapshot(), PlacementConfig::default());
//! let home = ring.borrow().owner(&claim.stream).cloned();
//! registry.release(claim).await?;
//! registry.shutdown().await; // at exit: revoke the lease
//! # let _ = (events.try_recv(), home); Ok(()) }
//! ```
//!
//! # Modules (each imports only from those listed after it)
//!
//! ```text
//! observer         the watch cache and the order writer, no node registered (the control plane)
//! orders           writing drain and kick orders
//! etcd, memory     backends: the store's operations and its cache loop
//!   registrar      lease keep-alive and recovery, claims, events (shared by both backends)
//!   backend        the Backend trait the registrar drives; bounded calls
//!   cache          the watch cache: listings and watch events → Snapshot; the resume rule
//!   values         registry values parsed within their bounds, or refused
//!   backoff        retry pauses (the one `Backoff`, also used by node forwards and edge pulls)
//!   lock           the one poison-tolerant mutex lock
//! placement        ring + damping driven from the cache
//!   ring, damping
//! registry         the Registry trait, its config and errors
//! keys             key layout
//! rules            pure pair/forward rules
//! types            vocabulary: ids, values, records, Snapshot, events (imports nothing here)
//! signed_token     HMAC-signed publish and play tokens, secret files (imports `types`)
//! cert_store       a TLS certificate reloaded while serving (imports nothing here)
//! telemetry        every binary's tracing set-up: text/JSON logs, OTLP export (imports nothing here)
//! ```

mod backend;
mod backoff;
pub use backoff::Backoff;
mod cache;
pub mod cert_store;
pub mod damping;
pub mod etcd;
pub mod keys;
pub mod ladder;
pub mod lease;
mod lock;
pub mod memory;
pub mod observer;
pub mod orders;
pub mod placement;
mod registrar;
pub mod registry;
pub mod ring;
pub mod rules;
pub mod schedule;
pub mod signed_token;
pub mod telemetry;
pub mod types;
mod values;

pub use damping::{Damper, DampingConfig};
pub use etcd::EtcdRegistry;
pub use keys::{KeyKind, Keyspace, DEFAULT_PREFIX};
pub use memory::{MemoryRegistry, MemoryStore};
pub use observer::Observer;
pub use orders::OrderWriter;
pub use placement::PlacementConfig;
pub use registry::{ClaimError, EtcdAuth, EtcdTls, Registry, RegistryConfig, RegistryError};
pub use ring::{Ring, DEFAULT_VNODES};
pub use rules::{dialer, should_accept_forward, should_dial, ForwardVerdict};
pub use types::{
    Capacity, Claim, DrainOrder, DrainRecord, KickOrder, KickRecord, LoadCapacity, LoadRecord,
    LoadReport, NodeId, NodeInfo, NodeRecord, NodeState, RegistryEvent, Role, Snapshot, StreamInfo,
    StreamLoad, StreamRecord, MAX_REPORT_STREAMS,
};
