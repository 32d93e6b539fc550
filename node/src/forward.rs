//! Forwarding: the origin that has a stream's publisher (the *ingest*) pushes the stream over
//! the relay to the stream's *home* (its ring owner), so edges find every stream at
//! `ring(stream)` however the publishers were spread by a plain TCP load balancer.
//!
//! - [`Forwarding::start`] runs one task per published stream on the ingest: while this node
//!   is not the home, it keeps one forward open to the home. When the ring changes, the
//!   forward to the new home is opened *before* the old one is dropped (make-before-break);
//!   the publisher never notices.
//! - [`Forwarding`] is also the node's [`ForwardSink`]: a forward is accepted only when this
//!   node's own ring says it is the home (otherwise "not home", with the owner it believes
//!   in; the relay refuses forwards past the hop limit), and published into the local hub, from
//!   where edges subscribe. A forward carries the ingest's claim revision, which the home
//!   checks subscriptions against.
//!
//! The decisions of an outgoing forward (when to open, retry, switch, close) are the sans-IO
//! [`policy::ForwardPolicy`]; the task here only feeds it events and does what it says.
//!
//! Architecture invariant: a forward never travels on from the node that received it, so
//! nodes that briefly disagree about the ring cannot build a loop.

use std::collections::HashMap;
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::{Arc, Mutex};
use std::time::Duration;

use sluice_cluster::types::{NodeId, StreamRecord};
use sluice_cluster::{should_accept_forward, ForwardVerdict};
use sluice_media::stream_name::StreamKey;
use sluice_relay::{ForwardEnd, ForwardHandle, ForwardRefusal, ForwardRequest, ForwardSink, Frame};
use tokio::sync::{mpsc, watch};
use tracing::{info, warn, Instrument};

use crate::driver::{now, settle, sleep_until, Pending};
use crate::hub::Hub;
use crate::lock::lock;
use crate::peers::Peers;
use crate::placement::{relay_addr, Placement};
use crate::relay_feed::spawn_feed;
use crate::relayed_publish::RelayedPublish;
use sluice_cluster::Backoff;

pub mod policy;

use policy::{Action, Event, ForwardPolicy};

/// A forward being opened, and where to.
type Opening<'a> = (NodeId, Pending<'a, Result<ForwardHandle, OpenError>>);

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

    /// Forward `key` (published here under the claim at `revision`) to its home for as long
    /// as the returned guard lives.
    pub fn start(self: &Arc<Self>, key: StreamKey, revision: i64) -> ForwardGuard {
        let (ended, ended_rx) = watch::channel(false);
        let span = tracing::info_span!("forward", stream = %key, revision);
        tokio::spawn(self.clone().forward_loop(key, revision, ended_rx).instrument(span));
        ForwardGuard { ended }
    }

    /// The driver of one forward: feeds the [`ForwardPolicy`] the ring, the publisher and
    /// the relay's answers, and does what it says.
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
        // The forward that carries the stream, one being opened, and one opened but not
        // promoted yet.
        let mut current: Option<(NodeId, ForwardHandle)> = None;
        let mut opening: Option<Opening<'_>> = None;
        let mut opened: Option<(NodeId, ForwardHandle)> = None;
        let (mut left, mut ring_closed) = (false, false);
        let mut actions = policy.on_event(now(), Event::Home(self.placement.home(&key)));
        loop {
            for action in actions.drain(..) {
                match action {
                    Action::Open { to } => {
                        let open = self.open(&key, revision, to.clone());
                        opening = Some((to, Box::pin(open)));
                    }
                    Action::Promote { to } => {
                        let Some(next) = opened.take().filter(|(h, _)| *h == to) else {
                            continue;
                        };
                        info!(home = %to, previous = ?current.as_ref().map(|(h, _)| h.to_string()), "forwarding to the stream's home");
                        // Make before break: the old forward (if any) is dropped only now.
                        current = Some(next);
                    }
                    Action::Close => {
                        current = None;
                        info!("this node is the stream's home now: forward stopped");
                    }
                    Action::Finish => {
                        // The publisher left: its feed ends by itself; let the home get the end
                        // of the stream.
                        if let Some((_, mut handle)) = current {
                            let _ = tokio::time::timeout(END_FLUSH, handle.finished()).await;
                        }
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
                        Some(Event::Home(self.placement.home(&key)))
                    }
                }
                (to, result) = settle(&mut opening) => match result {
                    Ok(handle) => {
                        opened = Some((to.clone(), handle));
                        Some(Event::Opened { to })
                    }
                    Err(e) => {
                        warn!(home = %to, error = %e, "forward to the stream's home failed; retrying");
                        Some(Event::OpenFailed { to })
                    }
                },
                result = finished(&mut current) => {
                    let home = current.take().map(|(h, _)| h.to_string()).unwrap_or_default();
                    warn!(%home, result = ?result, "forward ended; reopening");
                    Some(Event::Finished)
                }
                () = sleep_until(deadline) => None,
            };
            actions = match event {
                Some(event) => policy.on_event(now(), event),
                None => policy.poll(now()),
            };
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
        let owner = self.placement.home(&key);
        let hop = u8::try_from(request.hops.saturating_add(1)).unwrap_or(u8::MAX);
        match should_accept_forward(&self.placement.node_id, owner.as_ref(), hop, self.max_hops) {
            ForwardVerdict::Accept => {}
            ForwardVerdict::NotHome { owner } => {
                info!(stream = %key, from = %request.peer_node_id, owner = ?owner, "forward refused: not the home by this node's ring");
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

async fn receive(mut publish: RelayedPublish, mut frames: mpsc::Receiver<Frame>) {
    while let Some(frame) = frames.recv().await {
        publish.push(frame);
    }
}

async fn finished(current: &mut Option<(NodeId, ForwardHandle)>) -> sluice_relay::Result<u64> {
    match current.as_mut() {
        Some((_, handle)) => handle.finished().await,
        None => std::future::pending().await,
    }
}
