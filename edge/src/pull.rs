//! One stream pulled from an origin into the edge's hub.
//!
//! The task looks the stream up in the registry cache (no etcd request per viewer): its
//! *home* is its owner on the consistent-hash ring of ready origins, where the ingest origin
//! forwards it; the origin holding the claim (the *ingest*) is the fallback while a forward
//! is being set up. It subscribes over the relay with the claim's revision (a stale origin
//! answers STALE) and pushes the frames into a local hub publisher that every viewer protocol
//! reads. It runs while the stream has viewers, and `linger` after the last one leaves.
//!
//! - Ring change (an origin joined or left): the edge subscribes at the new home first and
//!   drops the old subscription only once the new one is live (make-before-break).
//! - Upstream loss (origin crash, network) or an `ENDED` while the same claim still stands
//!   (the stream moved between origins): the local publisher is kept for up to `grace` while
//!   the task resubscribes, so viewers stay connected and continue at the next keyframe with
//!   timestamps continuing.
//! - The claim is gone (the publisher left): the local publish ends at once; viewers get the
//!   unpublish notice and wait for a republish, as on an origin.

use std::net::SocketAddr;
use std::sync::Arc;
use std::time::{Duration, Instant};

use sluice_cluster::types::{NodeId, Snapshot};
use sluice_media::stream_name::StreamKey;
use sluice_node::hub::Hub;
use sluice_node::peers::Peers;
use sluice_node::placement::{relay_addr, Placement};
use sluice_node::relayed_publish::RelayedPublish;
use sluice_relay::{RelayError, RelaySubscription};
use tokio::sync::watch;
use tracing::{debug, info, warn, Instrument};

use crate::args::PullSettings;
use crate::upstream::{lock, PullTable};

/// Pause before the first retry after a failed subscribe; doubles up to [`MAX_BACKOFF`].
const MIN_BACKOFF: Duration = Duration::from_millis(200);
const MAX_BACKOFF: Duration = Duration::from_secs(2);
/// A subscription that ends sooner than this counts as a failure for the backoff.
const QUICK_FAILURE: Duration = Duration::from_secs(1);
/// How often a running pull checks whether it still has viewers.
const IDLE_CHECK: Duration = Duration::from_secs(1);

/// Everything one pull task needs.
pub(crate) struct PullTask {
    pub(crate) key: StreamKey,
    pub(crate) hub: Hub,
    pub(crate) placement: Placement,
    pub(crate) peers: Arc<Peers>,
    pub(crate) settings: PullSettings,
    pub(crate) pulls: PullTable,
}

/// An origin that should have the stream.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Source {
    pub origin: NodeId,
    pub addr: SocketAddr,
}

/// Where to subscribe, in order of preference, and the claim to follow.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Sources {
    pub revision: i64,
    pub candidates: Vec<Source>,
}

/// Why a stream has no usable source right now.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum Unresolved {
    #[error("no claim in the registry")]
    NotPublished,
    #[error("no origin with a usable relay address has the stream")]
    NoRelay,
}

/// The stream's home (by `home`, the ring owner) then its ingest origin (the claim holder),
/// with their relay addresses. Values from the registry are untrusted: a missing or
/// malformed address drops that candidate, never panics.
pub fn resolve(
    snapshot: &Snapshot,
    home: Option<&NodeId>,
    key: &StreamKey,
) -> Result<Sources, Unresolved> {
    let stream = snapshot.stream(key).ok_or(Unresolved::NotPublished)?;
    let ingest = &stream.info.origin;
    let mut candidates = Vec::with_capacity(2);
    for origin in home.into_iter().chain(std::iter::once(ingest)) {
        if candidates.iter().any(|c: &Source| &c.origin == origin) {
            continue;
        }
        if let Some(addr) = relay_addr(snapshot, origin) {
            candidates.push(Source { origin: origin.clone(), addr });
        }
    }
    if candidates.is_empty() {
        return Err(Unresolved::NoRelay);
    }
    Ok(Sources { revision: stream.revision(), candidates })
}

/// How a live subscription stopped.
enum End {
    /// The origin says the publisher left.
    Ended,
    /// The connection or stream broke.
    Broken(RelayError),
    /// The stream was claimed anew (the publisher reconnected, maybe on another origin).
    Reclaimed,
    /// No viewers for the linger time: the pull is over.
    Idle,
}

/// The local publish fed by the upstream.
struct Local {
    publish: Option<RelayedPublish>,
    /// The claim revision the local publish follows.
    revision: i64,
    /// Since when the upstream is gone while viewers are kept waiting.
    lost_at: Option<Instant>,
}

impl Local {
    fn end(&mut self, why: &str) {
        if self.publish.take().is_some() {
            info!(why, "local publish ended");
        }
        self.lost_at = None;
    }

    fn lost(&mut self) {
        if self.publish.is_some() && self.lost_at.is_none() {
            self.lost_at = Some(Instant::now());
        }
    }
}

pub(crate) async fn run(task: PullTask) {
    let span = tracing::info_span!("pull", stream = %task.key);
    async move {
        let gauge = task.hub.metrics().relay_upstreams.clone();
        gauge.inc();
        info!("pull started");
        task.pull().await;
        gauge.dec();
        info!("pull stopped");
    }
    .instrument(span)
    .await
}

impl PullTask {
    fn resolve(&self, snapshot: &mut watch::Receiver<Snapshot>) -> Result<Sources, Unresolved> {
        let home = self.placement.home(&self.key);
        resolve(&snapshot.borrow_and_update(), home.as_ref(), &self.key)
    }

    async fn pull(&self) {
        let mut snapshot = self.placement.snapshot.clone();
        let mut ring = self.placement.ring.clone();
        let mut local = Local { publish: None, revision: 0, lost_at: None };
        let mut idle_since: Option<Instant> = None;
        let mut backoff = MIN_BACKOFF;
        loop {
            if self.should_stop(&mut idle_since) {
                return;
            }
            if local.lost_at.is_some_and(|t| t.elapsed() >= self.settings.grace) {
                local.end("upstream gone longer than the grace time");
            }
            let sources = match self.resolve(&mut snapshot) {
                Ok(s) => s,
                Err(why) => {
                    if why == Unresolved::NotPublished {
                        local.end("the stream's claim is gone");
                    }
                    debug!(%why, "no upstream yet");
                    wait_change(&mut snapshot, IDLE_CHECK).await;
                    continue;
                }
            };
            let Some((source, sub)) = self.subscribe_any(&sources).await else {
                local.lost();
                wait_change(&mut snapshot, backoff).await;
                backoff = (backoff * 2).min(MAX_BACKOFF);
                continue;
            };
            if !self.start_local(&mut local, sources.revision) {
                tokio::time::sleep(MAX_BACKOFF).await;
                continue;
            }
            let started = Instant::now();
            let end = self
                .receive(
                    sub,
                    source,
                    sources.revision,
                    &mut local,
                    (&mut ring, &mut snapshot),
                    &mut idle_since,
                )
                .await;
            match end {
                End::Idle => return,
                End::Reclaimed => {
                    info!("the stream was claimed anew: resubscribing");
                    local.lost();
                }
                End::Broken(e) => {
                    warn!(error = %e, "upstream lost; resubscribing");
                    local.lost();
                }
                End::Ended => {
                    // Still claimed under the same revision: the stream moved between
                    // origins (its home changed); otherwise the publisher left.
                    match self.resolve(&mut snapshot) {
                        Ok(now) if now.revision == sources.revision => {
                            info!("upstream ended while the claim stands: resubscribing");
                            local.lost();
                        }
                        _ => local.end("the origin's publisher left"),
                    }
                }
            }
            // A subscription that fails at once again and again (a peer that breaks the
            // protocol, an origin that keeps ending) must not turn into a busy loop.
            if started.elapsed() < QUICK_FAILURE {
                tokio::time::sleep(backoff).await;
                backoff = (backoff * 2).min(MAX_BACKOFF);
            } else {
                backoff = MIN_BACKOFF;
            }
        }
    }

    /// Starts (or continues) the local publish for a new upstream subscription. The same claim
    /// keeps the ingest's timeline (timestamps pass through); a new claim is a new source
    /// session, rebased to continue for connected viewers.
    fn start_local(&self, local: &mut Local, revision: i64) -> bool {
        local.lost_at = None;
        if let Some(p) = local.publish.as_mut() {
            if local.revision != revision {
                p.new_session();
                local.revision = revision;
            } else {
                p.switch_upstream();
            }
            return true;
        }
        local.revision = revision;
        match self.hub.publish(&self.key) {
            Ok(p) => {
                local.publish = Some(RelayedPublish::new_for_viewers(p));
                true
            }
            Err(e) => {
                warn!(error = %e, "cannot publish the pulled stream locally");
                false
            }
        }
    }

    /// Subscribes at the first candidate that accepts.
    async fn subscribe_any(&self, sources: &Sources) -> Option<(Source, RelaySubscription)> {
        let metrics = self.hub.metrics();
        for source in &sources.candidates {
            match self.subscribe(source, sources.revision).await {
                Ok(sub) => {
                    metrics.relay_subscribes.inc();
                    info!(origin = %source.origin, revision = sources.revision, "subscribed upstream");
                    return Some((source.clone(), sub));
                }
                Err(e) => {
                    metrics.relay_subscribe_failures.inc();
                    info!(origin = %source.origin, addr = %source.addr, error = %e, "upstream subscribe failed");
                }
            }
        }
        None
    }

    async fn subscribe(&self, source: &Source, revision: i64) -> Result<RelaySubscription, String> {
        let conn =
            self.peers.get(source.origin.as_str(), source.addr).await.map_err(|e| e.to_string())?;
        let traceparent = sluice_node::trace_context::current_traceparent();
        let sub = conn.subscribe_traced(self.key.app(), self.key.name(), revision, &traceparent);
        match tokio::time::timeout(self.settings.connect_timeout, sub).await {
            Ok(Ok(sub)) => Ok(sub),
            Ok(Err(e)) => Err(e.to_string()),
            Err(_) => Err("subscribe timed out".to_string()),
        }
    }

    /// Feeds the local publish from `sub`. When the ring names another home, subscribes there
    /// and switches only once that subscription is live (make-before-break).
    async fn receive(
        &self,
        mut sub: RelaySubscription,
        mut source: Source,
        revision: i64,
        local: &mut Local,
        (ring, snapshot): (
            &mut watch::Receiver<Arc<sluice_cluster::Ring>>,
            &mut watch::Receiver<Snapshot>,
        ),
        idle_since: &mut Option<Instant>,
    ) -> End {
        let frames_in = self.hub.metrics().relay_frames_in.clone();
        let mut tick = tokio::time::interval(IDLE_CHECK);
        ring.borrow_and_update();
        let mut moving = false;
        loop {
            tokio::select! {
                frame = sub.next_frame() => match frame {
                    Ok(Some(frame)) => {
                        frames_in.inc();
                        if let Some(p) = local.publish.as_mut() {
                            p.push(frame);
                        }
                    }
                    Ok(None) => return End::Ended,
                    Err(e) => return End::Broken(e),
                },
                changed = snapshot.changed() => {
                    if changed.is_err() {
                        std::future::pending::<()>().await;
                    }
                    // A new claim (another revision): the old upstream is stale even if its
                    // connection has not timed out yet (a crashed origin is silent).
                    let now = snapshot.borrow_and_update().stream(&self.key).map(|s| s.revision());
                    if now.is_some_and(|r| r != revision) {
                        return End::Reclaimed;
                    }
                }
                changed = ring.changed() => {
                    if changed.is_err() {
                        std::future::pending::<()>().await;
                    }
                    ring.borrow_and_update();
                    moving = true;
                }
                _ = tick.tick() => {
                    if self.should_stop(idle_since) {
                        return End::Idle;
                    }
                }
            }
            if moving {
                let home = self.placement.home(&self.key);
                match home {
                    Some(home) if home != source.origin => {
                        let addr = relay_addr(&self.placement.snapshot.borrow(), &home);
                        if let Some(addr) = addr {
                            let next = Source { origin: home, addr };
                            match self.subscribe(&next, revision).await {
                                Ok(new_sub) => {
                                    self.hub.metrics().relay_subscribes.inc();
                                    info!(from = %source.origin, to = %next.origin, "stream's home moved: switched upstream");
                                    // The old subscription ends here; the new home relays
                                    // the same timeline, so viewers just go on.
                                    sub = new_sub;
                                    source = next;
                                    moving = false;
                                    if let Some(p) = local.publish.as_mut() {
                                        p.switch_upstream();
                                    }
                                }
                                // The forward may not have arrived yet: retry on the next tick.
                                Err(e) => {
                                    debug!(to = %next.origin, error = %e, "new home not ready yet")
                                }
                            }
                        }
                    }
                    _ => moving = false,
                }
            }
        }
    }

    /// Whether the pull is over: no viewers for `linger`, and nobody asked for the stream
    /// within `linger`. Decided under the table lock, so a viewer arriving now either sees
    /// this task running (and it keeps running) or sees it gone (and starts a new one).
    fn should_stop(&self, idle_since: &mut Option<Instant>) -> bool {
        if self.hub.viewer_count(&self.key) > 0 {
            *idle_since = None;
            return false;
        }
        let since = *idle_since.get_or_insert_with(Instant::now);
        if since.elapsed() < self.settings.linger {
            return false;
        }
        let mut pulls = lock(&self.pulls);
        let Some(entry) = pulls.get(&self.key) else { return true };
        if entry.wanted.elapsed() < self.settings.linger || self.hub.viewer_count(&self.key) > 0 {
            return false;
        }
        if entry.task.id() == tokio::task::id() {
            pulls.remove(&self.key);
        }
        info!(linger = ?self.settings.linger, "no viewers: stopping the pull");
        true
    }
}

/// Waits for the registry cache to change, at most `timeout`.
async fn wait_change(snapshot: &mut watch::Receiver<Snapshot>, timeout: Duration) {
    let _ = tokio::time::timeout(timeout, snapshot.changed()).await;
}

#[cfg(test)]
mod tests {
    use super::*;
    use sluice_cluster::types::{NodeInfo, NodeRecord, Role, StreamInfo, StreamRecord};

    fn id(s: &str) -> NodeId {
        NodeId::new(s).unwrap()
    }

    fn origin(snap: &mut Snapshot, name: &str, relay: Option<&str>) {
        let mut info = NodeInfo::default();
        if let Some(r) = relay {
            info.addresses.insert("relay".into(), r.into());
        }
        let rec = NodeRecord {
            role: Role::Origin,
            id: id(name),
            info,
            lease: 1,
            create_revision: 1,
            mod_revision: 1,
        };
        snap.nodes.insert((Role::Origin, id(name)), rec);
    }

    fn stream(snap: &mut Snapshot, key: &StreamKey, ingest: &str, revision: i64) {
        let info = StreamInfo { origin: id(ingest), codecs: vec![], started_at_ms: 0 };
        let rec = StreamRecord {
            stream: key.clone(),
            info,
            lease: 1,
            create_revision: revision,
            mod_revision: revision,
        };
        snap.streams.insert(key.clone(), rec);
    }

    #[test]
    fn home_first_then_ingest_and_bad_addresses_are_skipped() {
        let key = StreamKey::parse("live", "s").unwrap().0;
        let mut snap = Snapshot::default();
        assert_eq!(resolve(&snap, None, &key), Err(Unresolved::NotPublished));
        origin(&mut snap, "a", Some("127.0.0.1:7000"));
        origin(&mut snap, "b", Some("not an address"));
        origin(&mut snap, "c", Some("127.0.0.1:7002"));
        stream(&mut snap, &key, "a", 42);
        let got = resolve(&snap, Some(&id("c")), &key).unwrap();
        assert_eq!(got.revision, 42);
        let order: Vec<&str> = got.candidates.iter().map(|c| c.origin.as_str()).collect();
        assert_eq!(order, ["c", "a"]);
        // The home is the ingest: one candidate.
        assert_eq!(resolve(&snap, Some(&id("a")), &key).unwrap().candidates.len(), 1);
        // A home with a malformed address is skipped; the ingest remains.
        let got = resolve(&snap, Some(&id("b")), &key).unwrap();
        assert_eq!(
            got.candidates,
            vec![Source { origin: id("a"), addr: "127.0.0.1:7000".parse().unwrap() }]
        );
        // Nobody reachable.
        stream(&mut snap, &key, "b", 43);
        assert_eq!(resolve(&snap, Some(&id("b")), &key), Err(Unresolved::NoRelay));
    }
}
