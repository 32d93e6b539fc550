//! The in-process stream hub: which streams exist, who publishes each, who watches.
//!
//! Data path: a publisher's connection calls [`Publisher::push`]; the message is classified,
//! serialised once into a [`prepared::Prepared`] and appended to the stream's [`log::MediaLog`];
//! every viewer's task wakes, collects what it has not sent and writes it (see
//! [`Subscription`]). Architecture invariant: media bytes are shared (`Bytes`/`Arc`), never
//! copied per viewer, and nothing is buffered per viewer beyond one write batch.

pub mod hls_hook;
pub mod kick;
pub mod log;
mod meter;
pub mod prepared;
mod publisher;
pub mod stream;
mod subscription;
#[cfg(test)]
mod tests;

use std::collections::HashMap;
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::{Arc, Mutex, OnceLock};
use std::time::SystemTime;

use tokio::time::Instant;

use serde::Serialize;
use sluice_media::stream_name::StreamKey;

use crate::lock::lock;
use crate::metrics::{Metrics, Protocol};
use hls_hook::HlsHook;
pub use kick::KickReason;
pub use publisher::{Publisher, PushError};
use stream::{AudioSummary, StreamEntry, VideoSummary};
pub use subscription::Subscription;

/// Told when a stream starts publishing on this hub (a layer above the hub, which the hub
/// does not know: transcoding). Called from the publishing task, after the publisher is made;
/// it must not block.
pub trait PublishHook: Send + Sync + 'static {
    fn published(&self, hub: &Hub, key: &StreamKey);
}

/// Limits the hub enforces.
#[derive(Debug, Clone)]
pub struct HubConfig {
    pub max_streams: usize,
    pub max_viewers_per_stream: usize,
    pub stream_buffer: usize,
    pub viewer_max_lag: usize,
    pub publish_takeover: bool,
    /// Per-app quotas: `max-viewers-per-stream` lowers `max_viewers_per_stream` for an app.
    pub quotas: Arc<crate::quota::Quotas>,
}

#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum PublishError {
    #[error("stream {0} is already being published")]
    AlreadyPublishing(String),
    #[error("the server already has its maximum of {0} live streams")]
    TooManyStreams(usize),
}

#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum SubscribeError {
    #[error("stream {0} already has its maximum of {1} viewers")]
    TooManyViewers(String, usize),
    /// Only on a node with an upstream (an edge): the cluster has no such stream.
    #[error("stream {0} is not published in the cluster")]
    NotFound(String),
}

/// What `/api/streams` reports for one stream.
#[derive(Debug, Clone, Serialize)]
pub struct StreamSnapshot {
    pub app: String,
    pub name: String,
    pub video: Option<VideoSummary>,
    pub audio: Option<AudioSummary>,
    pub bitrate_kbps: f64,
    pub viewers: usize,
    pub uptime_s: f64,
    /// Unix time (seconds) the current publish session started.
    pub started_at: f64,
}

/// One stream's figures for the load report ([`Hub::figures`]).
#[derive(Debug, Clone, PartialEq)]
pub struct StreamFigures {
    pub key: StreamKey,
    /// Viewers of every protocol but relay feeds, waiting or playing.
    pub viewers: usize,
    /// Picture size from the video codec configuration (0 when unknown).
    pub width: u32,
    pub height: u32,
    /// Video frames and media bits received per second over the last few seconds (0 without
    /// a publisher).
    pub fps: f64,
    pub bitrate_bps: f64,
}

pub(crate) struct HubInner {
    streams: Mutex<HashMap<StreamKey, Arc<StreamEntry>>>,
    config: HubConfig,
    pub(crate) metrics: Metrics,
    next_id: AtomicU64,
    /// Set on edges: pulls streams that are not live here (see [`crate::upstream`]).
    upstream: OnceLock<Arc<dyn crate::upstream::Upstream>>,
    /// Per-stream HLS state, when a layer above set it (see [`hls_hook`]).
    hls: OnceLock<Arc<dyn HlsHook>>,
    /// Told of every publish (a layer above: transcoding).
    publish_hook: OnceLock<Arc<dyn PublishHook>>,
    /// Bumped by [`Hub::close_viewers`]: every viewer subscribed before it ends.
    pub(crate) evict: tokio::sync::watch::Sender<u64>,
}

/// Cheap to clone; all clones share one hub.
#[derive(Clone)]
pub struct Hub {
    inner: Arc<HubInner>,
}

impl Hub {
    pub fn new(config: HubConfig, metrics: Metrics) -> Self {
        Hub {
            inner: Arc::new(HubInner {
                streams: Mutex::new(HashMap::new()),
                config,
                metrics,
                next_id: AtomicU64::new(1),
                upstream: OnceLock::new(),
                hls: OnceLock::new(),
                publish_hook: OnceLock::new(),
                evict: tokio::sync::watch::channel(0).0,
            }),
        }
    }

    pub fn config(&self) -> &HubConfig {
        &self.inner.config
    }

    pub fn metrics(&self) -> &Metrics {
        &self.inner.metrics
    }

    /// Claim `key` for a publisher. A live name is refused, or taken over when configured.
    pub fn publish(&self, key: &StreamKey) -> Result<Publisher, PublishError> {
        self.publish_with(key, self.inner.config.publish_takeover)
    }

    /// Claim `key` for a publisher, never taking it over from a live one (whatever
    /// `publish_takeover` says): for a node's own publishers (renditions).
    pub fn publish_exclusive(&self, key: &StreamKey) -> Result<Publisher, PublishError> {
        self.publish_with(key, false)
    }

    /// Claim `key` for a publisher, taking it over from a live one (which is told through
    /// [`Publisher::kicked`]): for a publisher whose registry claim makes the live one stale.
    pub fn publish_over(&self, key: &StreamKey) -> Result<Publisher, PublishError> {
        self.publish_with(key, true)
    }

    /// Claim `key` for a publisher that gives way to any other (which takes it over at once):
    /// a scheduled playout, which a live encoder replaces. Never takes a live name over.
    pub fn publish_yielding(&self, key: &StreamKey) -> Result<Publisher, PublishError> {
        self.publish_as(key, false, true)
    }

    fn publish_with(&self, key: &StreamKey, takeover: bool) -> Result<Publisher, PublishError> {
        self.publish_as(key, takeover, false)
    }

    fn publish_as(
        &self,
        key: &StreamKey,
        takeover: bool,
        yields: bool,
    ) -> Result<Publisher, PublishError> {
        let inner = &self.inner;
        let mut streams = lock(&inner.streams);
        // Streams count while they hold media: live ones, and ended ones until
        // [`Hub::release_ended`] frees what they left (pollers cannot keep them for free).
        let live = streams.values().filter(|e| e.key != *key && e.holds_media()).count();
        let entry =
            streams.entry(key.clone()).or_insert_with(|| Arc::new(inner.new_entry(key))).clone();
        let mut state = entry.state();
        let taking_over = state.publisher.is_some();
        if taking_over && !takeover && !state.publisher_yields {
            inner.metrics.publishes_rejected.inc();
            return Err(PublishError::AlreadyPublishing(key.to_string()));
        }
        if !taking_over && live >= inner.config.max_streams {
            inner.metrics.publishes_rejected.inc();
            drop(state);
            drop(streams);
            self.inner.release(&entry);
            return Err(PublishError::TooManyStreams(inner.config.max_streams));
        }
        if let Some(old) = state.publisher_kick.take() {
            old.kick(KickReason::TakenOver);
        }
        let id = inner.next_id.fetch_add(1, Ordering::Relaxed);
        let kick = Arc::new(kick::Kick::default());
        state.publisher = Some(id);
        state.publisher_kick = Some(kick.clone());
        state.publisher_yields = yields;
        state.ended_at = None;
        state.started_at = Some(SystemTime::now());
        state.started_instant = Some(Instant::now());
        drop(state);
        drop(streams);
        if !taking_over {
            inner.metrics.streams.inc();
        }
        entry.log().start_publish();
        entry.wake_viewers();
        let publisher = Publisher::new(inner.clone(), entry, id, kick);
        if let Some(hook) = inner.publish_hook.get() {
            hook.published(self, key);
        }
        Ok(publisher)
    }

    /// Tell `hook` of every publish from now on (once, before serving).
    pub fn set_publish_hook(&self, hook: Arc<dyn PublishHook>) {
        let _ = self.inner.publish_hook.set(hook);
    }

    /// Give this hub an upstream (once, before serving): viewers of streams that are not
    /// live here make it pull them, and unknown streams are refused at once.
    pub fn set_upstream(&self, upstream: Arc<dyn crate::upstream::Upstream>) {
        let _ = self.inner.upstream.set(upstream);
    }

    /// Give this hub its per-stream HLS state (once, before serving; see [`hls_hook`]).
    pub fn set_hls_hook(&self, hook: Arc<dyn HlsHook>) {
        let _ = self.inner.hls.set(hook);
    }

    /// Whether this hub pulls streams from an upstream (an edge).
    pub fn has_upstream(&self) -> bool {
        self.inner.upstream.get().is_some()
    }

    /// Watch `key`, published or not yet (the viewer waits for it; see [`Subscription`]).
    /// With an upstream, a stream that is not live here is pulled, or refused when the
    /// cluster does not know it.
    pub fn subscribe(
        &self,
        key: &StreamKey,
        protocol: Protocol,
    ) -> Result<Subscription, SubscribeError> {
        let inner = &self.inner;
        if let Some(upstream) = inner.upstream.get() {
            if !self.is_live(key) && !upstream.pull(key) {
                return Err(SubscribeError::NotFound(key.to_string()));
            }
        }
        let entry = {
            let mut streams = lock(&inner.streams);
            streams.entry(key.clone()).or_insert_with(|| Arc::new(inner.new_entry(key))).clone()
        };
        // Relay feeds (an edge's subscription, a forward) serve many viewers elsewhere: they are
        // never refused because local viewers filled the stream's viewer cap.
        let app_cap = inner.config.quotas.for_app(key.app()).and_then(|q| q.max_viewers_per_stream);
        let max = if protocol == Protocol::Relay {
            usize::MAX
        } else {
            app_cap.map_or(inner.config.max_viewers_per_stream, |cap| {
                cap.min(inner.config.max_viewers_per_stream)
            })
        };
        let admitted = entry
            .viewers
            .fetch_update(Ordering::AcqRel, Ordering::Acquire, |n| (n < max).then_some(n + 1))
            .is_ok();
        if !admitted {
            inner.metrics.viewers_rejected.inc();
            if app_cap.is_some_and(|cap| cap == max) {
                inner.metrics.quota_breach(crate::quota::Limit::Viewers, "refused");
            }
            inner.release(&entry);
            return Err(SubscribeError::TooManyViewers(key.to_string(), max));
        }
        Ok(Subscription::new(inner.clone(), entry, protocol))
    }

    /// Whether `key` has a publisher right now.
    /// Whether `key`'s publisher gives way to any other (a scheduled playout).
    pub fn yields(&self, key: &StreamKey) -> bool {
        lock(&self.inner.streams).get(key).is_some_and(|e| {
            let state = e.state();
            state.publisher.is_some() && state.publisher_yields
        })
    }

    pub fn is_live(&self, key: &StreamKey) -> bool {
        lock(&self.inner.streams).get(key).is_some_and(|e| e.is_live())
    }

    /// Live streams, sorted by key.
    pub fn snapshot(&self) -> Vec<StreamSnapshot> {
        let now = Instant::now();
        let entries: Vec<Arc<StreamEntry>> = lock(&self.inner.streams).values().cloned().collect();
        let mut out: Vec<StreamSnapshot> = entries
            .iter()
            .filter_map(|e| {
                let state = e.state();
                state.publisher?;
                let mut video = state.video.clone();
                if let Some(v) = video.as_mut() {
                    let fps = v.fps.or_else(|| state.metadata.as_ref().and_then(|m| m.framerate));
                    let measured = state.video_frames.rate(now);
                    v.fps = fps.or((measured > 0.0).then_some(measured));
                }
                Some(StreamSnapshot {
                    app: e.key.app().to_string(),
                    name: e.key.name().to_string(),
                    video,
                    audio: state.audio.clone(),
                    bitrate_kbps: state.bitrate.rate(now) / 1000.0,
                    viewers: e.viewer_count(),
                    uptime_s: state.started_instant.map_or(0.0, |t| t.elapsed().as_secs_f64()),
                    started_at: state
                        .started_at
                        .and_then(|t| t.duration_since(SystemTime::UNIX_EPOCH).ok())
                        .map_or(0.0, |d| d.as_secs_f64()),
                })
            })
            .collect();
        out.sort_by(|a, b| (&a.app, &a.name).cmp(&(&b.app, &b.name)));
        out
    }

    /// Figures of every stream that has a publisher or viewers (relay feeds not counted), as
    /// measured at `now`, in no particular order: what the load report lists per stream.
    pub fn figures(&self, now: Instant) -> Vec<StreamFigures> {
        let entries: Vec<Arc<StreamEntry>> = lock(&self.inner.streams).values().cloned().collect();
        entries
            .iter()
            .filter_map(|e| {
                let viewers = e.audience();
                let state = e.state();
                if state.publisher.is_none() && viewers == 0 {
                    return None;
                }
                let video = state.video.as_ref();
                let published = state.publisher.is_some();
                Some(StreamFigures {
                    key: e.key.clone(),
                    viewers,
                    width: video.and_then(|v| v.width).unwrap_or(0),
                    height: video.and_then(|v| v.height).unwrap_or(0),
                    fps: if published { state.video_frames.rate(now) } else { 0.0 },
                    bitrate_bps: if published { state.bitrate.rate(now) } else { 0.0 },
                })
            })
            .collect()
    }

    /// The HLS snapshot channel of `key` and whether it is live now; `None` when the stream
    /// does not exist (no publisher and no viewers) or the hub has no HLS hook.
    pub fn hls(
        &self,
        key: &StreamKey,
    ) -> Option<(tokio::sync::watch::Receiver<Option<sluice_media::hls::HlsSnapshot>>, bool)> {
        let entry = lock(&self.inner.streams).get(key).cloned()?;
        let live = entry.is_live();
        Some((entry.hls.as_ref()?.subscribe(), live))
    }

    /// Disconnect the publisher of `key`, if any (its claim was lost to another node).
    pub fn kick(&self, key: &StreamKey, reason: KickReason) {
        let entry = lock(&self.inner.streams).get(key).cloned();
        if let Some(kick) = entry.and_then(|e| e.state().publisher_kick.clone()) {
            kick.kick(reason);
        }
    }

    /// Disconnect the publisher of `key` only if it yields (a playout): a live encoder is
    /// never hit. Whether one was.
    pub fn kick_yielding(&self, key: &StreamKey, reason: KickReason) -> bool {
        let entry = lock(&self.inner.streams).get(key).cloned();
        let kick = entry.and_then(|e| {
            let state = e.state();
            state.publisher_yields.then(|| state.publisher_kick.clone()).flatten()
        });
        kick.map(|k| k.kick(reason)).is_some()
    }

    /// End every viewer (RTMP, HTTP-FLV, HLS session; not relay feeds) subscribed now: their
    /// drivers see [`Subscription::is_closed`] and close their connections (a drained node's
    /// deadline). Viewers that subscribe later are not affected.
    pub fn close_viewers(&self) {
        self.inner.evict.send_modify(|g| *g = g.wrapping_add(1));
        // Viewers wait on their stream's wake-up only: ring each so they look.
        for entry in lock(&self.inner.streams).values() {
            entry.wake.send_modify(|v| *v = v.wrapping_add(1));
        }
    }

    /// Keys that have a publisher on this node.
    pub fn published_keys(&self) -> Vec<StreamKey> {
        lock(&self.inner.streams)
            .values()
            .filter(|e| e.state().publisher.is_some())
            .map(|e| e.key.clone())
            .collect()
    }

    /// Viewers of `key` on this node (all protocols; 0 when the stream is unknown).
    pub fn viewer_count(&self, key: &StreamKey) -> usize {
        lock(&self.inner.streams).get(key).map_or(0, |e| e.viewer_count())
    }

    /// Free the media of streams that ended at least `linger` before `now` (their GOP log, HLS
    /// window and the TS forms of its segments), even while viewers or HLS pollers remain;
    /// forget the entries nobody watches. Returns how many streams still hold media.
    pub fn release_ended(&self, now: Instant, linger: std::time::Duration) -> usize {
        let entries: Vec<Arc<StreamEntry>> = lock(&self.inner.streams).values().cloned().collect();
        let mut held = 0;
        for entry in entries {
            let due = {
                let mut state = entry.state();
                match state.ended_at {
                    Some(t)
                        if state.publisher.is_none()
                            && now.saturating_duration_since(t) >= linger =>
                    {
                        state.ended_at = None;
                        true
                    }
                    _ => {
                        held += usize::from(state.publisher.is_some() || state.ended_at.is_some());
                        false
                    }
                }
            };
            if due {
                entry.log().release();
                if let Some(hls) = &entry.hls {
                    hls.release();
                }
                entry.wake_viewers();
                self.inner.release(&entry);
            }
        }
        self.inner.metrics.streams_held.set(held as i64);
        held
    }

    pub fn live_stream_count(&self) -> usize {
        lock(&self.inner.streams).values().filter(|e| e.is_live()).count()
    }
}

impl HubInner {
    fn new_entry(&self, key: &StreamKey) -> StreamEntry {
        let hls = self.hls.get().map(|h| h.open(key));
        StreamEntry::new(key.clone(), self.config.stream_buffer, hls)
    }

    /// Forget `entry` if nobody publishes or watches it any more.
    pub(crate) fn release(&self, entry: &Arc<StreamEntry>) {
        let mut streams = lock(&self.streams);
        let idle = entry.state().publisher.is_none() && entry.viewers.load(Ordering::Acquire) == 0;
        if idle {
            if let Some(current) = streams.get(&entry.key) {
                if Arc::ptr_eq(current, entry) {
                    streams.remove(&entry.key);
                }
            }
        }
    }
}

#[cfg(test)]
mod limits_tests;
