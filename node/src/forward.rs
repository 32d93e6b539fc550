//! Forwarding: the origin that has a stream's publisher (the *ingest*) pushes the stream over
//! the relay to the stream's *home* (its ring owner), so edges find every stream at
//! `ring(stream)` however the publishers were spread by a plain TCP load balancer, and to its
//! *standbys* (the next `--standbys` origins on the ring), which hold the live GOP so edges
//! switch to one at once when the home dies, and which the ring makes the home after it.
//!
//! - [`Forwarding::start`] runs one task per published stream on the ingest: it keeps one
//!   forward open to each of the stream's owners (home and standbys) other than itself. When
//!   the ring changes, forwards to new owners are opened while those to former owners go on
//!   until the new home has the stream and a hand-over time has passed (make-before-break);
//!   the publisher never notices.
//! - [`Forwarding`] is also the node's [`ForwardSink`]: a forward is accepted only when this
//!   node's own ring says it is the home or a standby (otherwise "not home", with the home it
//!   believes in; the relay refuses forwards past the hop limit), and only from the origin the
//!   registry shows holding the stream's claim; it is published into the local hub, from
//!   where edges subscribe.
//!
//! The decisions of the outgoing forwards (when to open, retry, switch, close) are the sans-IO
//! [`policy::ForwardPolicy`]; the task here only feeds it events and does what it says.
//!
//! Architecture invariant: a forward never travels on from the node that received it, so
//! nodes that briefly disagree about the ring cannot build a loop.

use std::collections::{BTreeMap, HashMap};
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::{Arc, Mutex};
use std::time::Duration;

use sluice_cluster::types::{NodeId, StreamRecord};
use sluice_cluster::{should_accept_forward, ForwardVerdict};
use sluice_media::stream_name::StreamKey;
use sluice_relay::{ForwardEnd, ForwardHandle, ForwardRefusal, ForwardRequest, ForwardSink, Frame};
use tokio::sync::{mpsc, watch};
use tracing::{info, warn, Instrument};

use crate::driver::{now, sleep_until, Pending};
use crate::hub::Hub;
use crate::lock::lock;
use crate::peers::Peers;
use crate::placement::{relay_addr, Placement};
use crate::relay_feed::spawn_feed;
use crate::relayed_publish::RelayedPublish;
use futures_util::future::{join_all, select_all};
use futures_util::stream::{FuturesUnordered, StreamExt};
use sluice_cluster::Backoff;

pub mod policy;

use policy::{Action, Event, ForwardPolicy};

/// Why a forward could not be opened.
#[derive(Debug, thiserror::Error)]
enum OpenError {
    #[error("origin {0} advertises no relay address")]
    NoRelayAddress(NodeId),
    #[error(transparent)]
    Peer(#[from] crate::peers::PeerError),
    #[error("no local feed: {0}")]
    Feed(#[from] crate::hub::SubscribeError),
    #[error(transparent)]
    Relay(#[from] sluice_relay::RelayError),
}

const MIN_BACKOFF: Duration = Duration::from_millis(200);
const MAX_BACKOFF: Duration = Duration::from_secs(2);
/// Frames queued from the relay into the home's hub per forward.
const SINK_QUEUE: usize = 256;
/// After the publisher left, how long the last GOPs may take to reach the home.
const END_FLUSH: Duration = Duration::from_secs(5);

/// How long a forward whose claim this node's cache does not show yet may wait for it.
pub const CLAIM_WAIT: Duration = Duration::from_secs(2);

/// Streams this node is home to through a forward: key -> (the forwarding origin, forward id).
type Forwarded = Arc<Mutex<HashMap<StreamKey, (NodeId, u64)>>>;

/// Forwarding on one origin: outgoing forwards of its publishers, incoming forwards it hosts.
pub struct Forwarding {
    hub: Hub,
    registry: Arc<dyn sluice_cluster::Registry>,
    placement: Placement,
    peers: Arc<Peers>,
    forwarded: Forwarded,
    next_id: AtomicU64,
    max_hops: u8,
    /// Refusals and drops of forwards are logged at this rate at most.
    refusals: Arc<crate::log_limit::RateLimitedLog>,
}

/// Keeps a stream forwarded while it lives; dropping it (the publisher left) lets the forward
/// deliver what is in flight and end.
pub struct ForwardGuard {
    ended: watch::Sender<bool>,
}

impl Drop for ForwardGuard {
    fn drop(&mut self) {
        let _ = self.ended.send(true);
    }
}

impl Forwarding {
    pub fn new(
        hub: Hub,
        registry: Arc<dyn sluice_cluster::Registry>,
        placement: Placement,
        peers: Arc<Peers>,
    ) -> Arc<Self> {
        Arc::new(Forwarding {
            hub,
            registry,
            placement,
            peers,
            forwarded: Arc::default(),
            next_id: AtomicU64::new(1),
            max_hops: sluice_cluster::rules::DEFAULT_MAX_HOPS,
            refusals: Arc::new(crate::log_limit::RateLimitedLog::new(5)),
        })
    }

    /// The claim revision of a stream this node hosts through a forward: the registry's
    /// current claim, if the forwarding origin still holds it.
    pub fn forwarded_revision(&self, key: &StreamKey) -> Option<i64> {
        let from = lock(&self.forwarded).get(key).map(|(from, _)| from.clone())?;
        let snapshot = self.placement.snapshot.borrow();
        snapshot.stream(key).filter(|r| r.info.origin == from).map(StreamRecord::revision)
    }

    /// Whether this node hosts `key` through a forward from another origin.
    pub fn hosts(&self, key: &StreamKey) -> bool {
        lock(&self.forwarded).contains_key(key)
    }

    /// Forward `key` (published here under the claim at `revision`) to its home for as long
    /// as the returned guard lives.
    pub fn start(self: &Arc<Self>, key: StreamKey, revision: i64) -> ForwardGuard {
        let (ended, ended_rx) = watch::channel(false);
        let span = tracing::info_span!("forward", stream = %key, revision);
        tokio::spawn(self.clone().forward_loop(key, revision, ended_rx).instrument(span));
        ForwardGuard { ended }
    }

    /// The driver of one stream's forwards: feeds the [`ForwardPolicy`] the ring, the
    /// publisher and the relay's answers, and does what it says.
    async fn forward_loop(
        self: Arc<Self>,
        key: StreamKey,
        revision: i64,
        mut ended: watch::Receiver<bool>,
    ) {
        let mut ring = self.placement.ring.clone();
        let mut policy = ForwardPolicy::new(
            self.placement.node_id.clone(),
            Backoff::new(MIN_BACKOFF, MAX_BACKOFF),
        );
        // The open forwards, and the opens in flight.
        let mut open: BTreeMap<NodeId, ForwardHandle> = BTreeMap::new();
        let mut opening: FuturesUnordered<Pending<'_, (NodeId, Result<ForwardHandle, OpenError>)>> =
            FuturesUnordered::new();
        let (mut left, mut ring_closed) = (false, false);
        let mut actions = policy.on_event(now(), Event::Owners(self.placement.owners(&key)));
        loop {
            for action in actions.drain(..) {
                match action {
                    Action::Open { to } => {
                        let this = &self;
                        let key = &key;
                        opening.push(Box::pin(async move {
                            let result = this.open(key, revision, to.clone()).await;
                            (to, result)
                        }));
                    }
                    Action::Close { to } => {
                        if open.remove(&to).is_some() {
                            info!(to = %to, "no longer the stream's home or standby: forward stopped");
                        }
                    }
                    Action::Finish => {
                        // The publisher left: the feeds end by themselves; let every receiver
                        // get the end of the stream.
                        let flushes = open.values_mut().map(ForwardHandle::finished);
                        let _ = tokio::time::timeout(END_FLUSH, join_all(flushes)).await;
                        return;
                    }
                }
            }
            let deadline = policy.next_deadline();
            let event = tokio::select! {
                _ = ended.wait_for(|e| *e), if !left => {
                    left = true;
                    Some(Event::PublisherLeft)
                }
                changed = ring.changed(), if !ring_closed => {
                    if changed.is_err() {
                        // The node is shutting down: end as if the publisher left.
                        ring_closed = true;
                        left = true;
                        Some(Event::PublisherLeft)
                    } else {
                        Some(Event::Owners(self.placement.owners(&key)))
                    }
                }
                Some((to, result)) = opening.next(), if !opening.is_empty() => match result {
                    Ok(handle) => {
                        let role = self.role_of(&key, &to);
                        info!(to = %to, role, "forwarding to the stream's {role}");
                        open.insert(to.clone(), handle);
                        Some(Event::Opened { to })
                    }
                    Err(e) => {
                        warn!(to = %to, error = %e, "forward failed; retrying");
                        Some(Event::OpenFailed { to })
                    }
                },
                (to, result) = any_finished(&mut open) => {
                    open.remove(&to);
                    warn!(to = %to, result = ?result, "forward ended; reopening if still wanted");
                    Some(Event::Finished { to })
                }
                () = sleep_until(deadline) => None,
            };
            actions = match event {
                Some(event) => policy.on_event(now(), event),
                None => policy.poll(now()),
            };
        }
    }

    /// What `to` is to the stream by this node's ring now, for the log.
    fn role_of(&self, key: &StreamKey, to: &NodeId) -> &'static str {
        match self.placement.owners(key).iter().position(|o| o == to) {
            Some(0) => "home",
            Some(_) if self.placement.transcoder(key).as_ref() == Some(to) => "transcoder",
            Some(_) => "standby",
            None => "former home",
        }
    }

    async fn open(
        &self,
        key: &StreamKey,
        revision: i64,
        home: NodeId,
    ) -> Result<ForwardHandle, OpenError> {
        let addr = relay_addr(&self.placement.snapshot.borrow(), &home)
            .ok_or(OpenError::NoRelayAddress(home.clone()))?;
        let conn = self.peers.get(home.as_str(), addr).await?;
        let frames = spawn_feed(&self.hub, key)?;
        let traceparent = crate::trace_context::current_traceparent();
        Ok(conn.forward_traced(key.app(), key.name(), revision, 0, &traceparent, frames).await?)
    }
}

impl ForwardSink for Forwarding {
    fn accept(&self, request: &ForwardRequest) -> Result<mpsc::Sender<Frame>, ForwardRefusal> {
        let key =
            StreamKey::parse(&request.app, &request.name).map_err(|_| ForwardRefusal::Refused)?.0;
        let owners = self.placement.owners(&key);
        let hop = u8::try_from(request.hops.saturating_add(1)).unwrap_or(u8::MAX);
        match should_accept_forward(&self.placement.node_id, &owners, hop, self.max_hops) {
            ForwardVerdict::Accept => {}
            ForwardVerdict::NotHome { owner } => {
                info!(stream = %key, from = %request.peer_node_id, owner = ?owner, "forward refused: neither the home nor a standby by this node's ring");
                return Err(ForwardRefusal::NotHome {
                    owner: owner.map(|o| o.to_string()).unwrap_or_default(),
                });
            }
            ForwardVerdict::HopLimit => return Err(ForwardRefusal::Loop),
        }
        let from = NodeId::new(&request.peer_node_id).map_err(|_| ForwardRefusal::Refused)?;
        // A fenced node may have lost its place on the ring without knowing: no new stream.
        if self.registry.is_fenced() {
            if self.refusals.allow() {
                warn!(stream = %key, %from, "forward refused: this node is fenced from the registry");
            }
            return Err(ForwardRefusal::Refused);
        }
        // The registry, not the peer, says who holds the claim.
        let holder = self.placement.snapshot.borrow().stream(&key).map(|r| r.info.origin.clone());
        if holder.as_ref().is_some_and(|h| *h != from) {
            self.hub.metrics().relay_forwards_refused.inc();
            if self.refusals.allow() {
                warn!(stream = %key, %from, holder = ?holder, "forward refused: the stream's claim is another origin's");
            }
            return Err(ForwardRefusal::Refused);
        }
        // Shown as the sender's: publish now, so a duplicate is refused at once. Not shown
        // yet: publish once the cache shows it (nothing is published meanwhile).
        let publisher = match holder {
            Some(_) => Some(self.hub.publish(&key).map_err(|e| {
                warn!(stream = %key, %from, error = %e, "forward refused by the hub");
                ForwardRefusal::Refused
            })?),
            None => None,
        };
        let id = self.next_id.fetch_add(1, Ordering::Relaxed);
        let (tx, rx) = mpsc::channel(SINK_QUEUE);
        let forwarded = self.forwarded.clone();
        let mut snapshot = self.placement.snapshot.clone();
        let hub = self.hub.clone();
        let refusals = self.refusals.clone();
        let span = tracing::info_span!("forward_in", stream = %key, %from, revision = request.claim_revision);
        crate::trace_context::adopt_traceparent(&span, &request.traceparent);
        tokio::spawn(
            async move {
                let publisher = match publisher {
                    Some(p) => Some(p),
                    None => {
                        let claimed = snapshot
                            .wait_for(|s| s.stream(&key).is_some_and(|r| r.info.origin == from));
                        match tokio::time::timeout(CLAIM_WAIT, claimed).await {
                            Ok(Ok(_)) => hub.publish(&key).map_err(|e| warn!(error = %e, "forward refused by the hub")).ok(),
                            _ => {
                                hub.metrics().relay_forwards_refused.inc();
                                if refusals.allow() {
                                    warn!("forward dropped: the registry shows no claim of this stream by its sender");
                                }
                                None
                            }
                        }
                    }
                };
                let Some(publisher) = publisher else { return };
                lock(&forwarded).insert(key.clone(), (from, id));
                info!("hosting a forwarded stream");
                receive(RelayedPublish::new(publisher), rx).await;
                let mut map = lock(&forwarded);
                if map.get(&key).is_some_and(|(_, i)| *i == id) {
                    map.remove(&key);
                }
                info!("forwarded stream ended");
            }
            .instrument(span),
        );
        Ok(tx)
    }

    fn ended(&self, request: &ForwardRequest, end: ForwardEnd) {
        info!(stream = %format!("{}/{}", request.app, request.name), from = %request.peer_node_id, ?end, "forward ended");
    }
}

/// Frames of a hosted forward into the hub, until the forward ends or a local publisher
/// holding the stream's claim takes it over.
async fn receive(mut publish: RelayedPublish, mut frames: mpsc::Receiver<Frame>) {
    loop {
        tokio::select! {
            frame = frames.recv() => match frame {
                Some(frame) => publish.push(frame),
                None => return,
            },
            () = publish.kicked() => {
                info!("a local publisher holding the claim took the stream over");
                return;
            }
        }
    }
}

/// The first of the open forwards to end by itself; never, while none is open.
async fn any_finished(
    open: &mut BTreeMap<NodeId, ForwardHandle>,
) -> (NodeId, sluice_relay::Result<u64>) {
    if open.is_empty() {
        return std::future::pending().await;
    }
    let each = open
        .iter_mut()
        .map(|(to, handle)| Box::pin(async move { (to.clone(), handle.finished().await) }));
    select_all(each).await.0
}
