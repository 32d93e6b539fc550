//! One stream pulled from its origin into the edge's hub.
//!
//! The task finds the origin that holds the stream's claim in the registry cache, subscribes
//! over the relay with that claim's revision (so a stale origin answers STALE), and pushes
//! the frames into a local hub publisher that every viewer protocol reads. It runs while the
//! stream has viewers, and `linger` after the last one leaves.
//!
//! Upstream loss: when the subscription breaks (origin crash, network), the local publisher
//! is kept for up to `grace` while the task resubscribes (to whichever origin holds the claim
//! by then), so viewers stay connected and continue at the new upstream's first keyframe,
//! with timestamps continuing. When the origin says the publisher ended, the local publish
//! ends too (viewers get the unpublish notice and wait for a republish, as on an origin).

use std::net::SocketAddr;
use std::sync::Arc;
use std::time::{Duration, Instant};

use bytes::Bytes;
use sluice_cluster::types::{Role, Snapshot};
use sluice_cluster::Registry;
use sluice_media::stream_name::StreamKey;
use sluice_node::hub::{Hub, Publisher};
use sluice_node::relay::to_message;
use sluice_relay::{Frame, RelayError, Subscription};
use tokio::sync::watch;
use tracing::{debug, info, warn, Instrument};

use crate::args::PullSettings;
use crate::peers::Peers;
use crate::upstream::{lock, PullTable};

/// Pause before the first retry after a failed subscribe; doubles up to [`MAX_BACKOFF`].
const MIN_BACKOFF: Duration = Duration::from_millis(200);
const MAX_BACKOFF: Duration = Duration::from_secs(2);
/// How often a running pull checks whether it still has viewers.
const IDLE_CHECK: Duration = Duration::from_secs(1);

/// Everything one pull task needs.
pub(crate) struct PullTask {
    pub(crate) key: StreamKey,
    pub(crate) hub: Hub,
    pub(crate) registry: Arc<dyn Registry>,
    pub(crate) peers: Arc<Peers>,
    pub(crate) settings: PullSettings,
    pub(crate) pulls: PullTable,
}

/// Where the stream is published now, according to the registry cache.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Source {
    pub origin: String,
    pub revision: i64,
    pub addr: SocketAddr,
}

/// Why a stream has no usable source right now.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum Unresolved {
    #[error("no claim in the registry")]
    NotPublished,
    #[error("origin {0} is not registered")]
    UnknownOrigin(String),
    #[error("origin {0} advertises no usable relay address")]
    NoRelay(String),
}

/// The origin holding `key`'s claim and its relay address. Values from the registry are
/// untrusted: a missing or malformed address is an [`Unresolved`], not a panic.
pub fn resolve(snapshot: &Snapshot, key: &StreamKey) -> Result<Source, Unresolved> {
    let stream = snapshot.stream(key).ok_or(Unresolved::NotPublished)?;
    let origin = &stream.info.origin;
    let node = snapshot.node(Role::Origin, origin).ok_or_else(|| Unresolved::UnknownOrigin(origin.to_string()))?;
    let addr = node
        .info
        .addresses
        .get("relay")
        .and_then(|a| a.parse::<SocketAddr>().ok())
        .ok_or_else(|| Unresolved::NoRelay(origin.to_string()))?;
    Ok(Source { origin: origin.to_string(), revision: stream.revision(), addr })
}

/// How a live subscription stopped.
enum End {
    /// The origin's publisher left.
    Ended,
    /// The connection or stream broke.
    Broken(RelayError),
    /// The claim moved to another origin or revision.
    Moved,
    /// No viewers for the linger time: the pull is over.
    Idle,
}

/// State of the local publish fed by the upstream.
struct Local {
    publisher: Option<Publisher>,
    /// Last header payload forwarded per kind (audio, video, data): the relay repeats headers
    /// at every GOP, the hub needs them once.
    headers: [Option<Bytes>; 3],
    /// Since when the upstream is gone while viewers are kept waiting.
    lost_at: Option<Instant>,
}

impl Local {
    fn push(&mut self, frame: Frame) {
        let Some(publisher) = self.publisher.as_mut() else { return };
        if frame.is_header() {
            let slot = &mut self.headers[frame.kind as usize - 1];
            if slot.as_ref() == Some(&frame.payload) {
                return;
            }
            *slot = Some(frame.payload.clone());
        }
        if let Err(e) = publisher.push(to_message(frame)) {
            debug!(error = %e, "frame from upstream refused by the hub");
        }
    }

    fn end(&mut self, why: &str) {
        if self.publisher.take().is_some() {
            info!(why, "local publish ended");
        }
        self.headers = [None, None, None];
        self.lost_at = None;
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
    async fn pull(&self) {
        let mut snapshot = self.registry.snapshot();
        let mut local = Local { publisher: None, headers: [None, None, None], lost_at: None };
        let mut idle_since: Option<Instant> = None;
        let mut backoff = MIN_BACKOFF;
        loop {
            if self.should_stop(&mut idle_since) {
                return;
            }
            if let Some(lost) = local.lost_at {
                if lost.elapsed() >= self.settings.grace {
                    local.end("upstream gone longer than the grace time");
                }
            }
            let resolved = resolve(&snapshot.borrow_and_update(), &self.key);
            let source = match resolved {
                Ok(s) => s,
                Err(why) => {
                    debug!(%why, "no upstream yet");
                    wait_change(&mut snapshot, IDLE_CHECK).await;
                    continue;
                }
            };
            let metrics = self.hub.metrics();
            let sub = match self.subscribe(&source).await {
                Ok(sub) => sub,
                Err(e) => {
                    metrics.relay_subscribe_failures.inc();
                    warn!(origin = %source.origin, addr = %source.addr, error = %e, "upstream subscribe failed");
                    if local.publisher.is_some() && local.lost_at.is_none() {
                        local.lost_at = Some(Instant::now());
                    }
                    wait_change(&mut snapshot, backoff).await;
                    backoff = (backoff * 2).min(MAX_BACKOFF);
                    continue;
                }
            };
            metrics.relay_subscribes.inc();
            backoff = MIN_BACKOFF;
            match local.publisher.as_mut() {
                Some(p) => p.new_session(),
                None => match self.hub.publish(&self.key) {
                    Ok(p) => local.publisher = Some(p),
                    Err(e) => {
                        warn!(error = %e, "cannot publish the pulled stream locally");
                        tokio::time::sleep(MAX_BACKOFF).await;
                        continue;
                    }
                },
            }
            local.lost_at = None;
            info!(origin = %source.origin, revision = source.revision, "subscribed upstream");
            match self.receive(sub, &source, &mut local, &mut snapshot, &mut idle_since).await {
                End::Ended => local.end("the origin's publisher left"),
                End::Broken(e) => {
                    warn!(origin = %source.origin, error = %e, "upstream lost; resubscribing");
                    local.lost_at = Some(Instant::now());
                }
                End::Moved => {
                    info!(origin = %source.origin, "stream claim moved; resubscribing");
                    local.lost_at = Some(Instant::now());
                }
                End::Idle => return,
            }
        }
    }

    async fn subscribe(&self, source: &Source) -> Result<Subscription, String> {
        let conn = self.peers.get(&source.origin, source.addr).await.map_err(|e| e.to_string())?;
        let sub = conn.subscribe(self.key.app(), self.key.name(), source.revision);
        match tokio::time::timeout(self.settings.connect_timeout, sub).await {
            Ok(Ok(sub)) => Ok(sub),
            Ok(Err(e)) => Err(e.to_string()),
            Err(_) => Err("subscribe timed out".to_string()),
        }
    }

    async fn receive(
        &self,
        mut sub: Subscription,
        source: &Source,
        local: &mut Local,
        snapshot: &mut watch::Receiver<Snapshot>,
        idle_since: &mut Option<Instant>,
    ) -> End {
        let frames_in = self.hub.metrics().relay_frames_in.clone();
        let mut tick = tokio::time::interval(IDLE_CHECK);
        loop {
            tokio::select! {
                frame = sub.next_frame() => match frame {
                    Ok(Some(frame)) => {
                        frames_in.inc();
                        local.push(frame);
                    }
                    Ok(None) => return End::Ended,
                    Err(e) => return End::Broken(e),
                },
                changed = snapshot.changed() => {
                    if changed.is_err() {
                        std::future::pending::<()>().await;
                    }
                    let now = resolve(&snapshot.borrow_and_update(), &self.key);
                    if let Ok(s) = now {
                        if s.revision != source.revision || s.origin != source.origin {
                            return End::Moved;
                        }
                    }
                }
                _ = tick.tick() => {
                    if self.should_stop(idle_since) {
                        return End::Idle;
                    }
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

