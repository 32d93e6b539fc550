//! The node's side of the QUIC relay: the TLS settings every node shares, and the
//! [`MediaSource`] an origin serves to edges from its hub.
//!
//! An edge's subscription is one more viewer of the stream's log (protocol `relay`): it reads
//! the same serialised messages as every other viewer and is skipped to the next keyframe the
//! same way when it falls behind, so a slow edge costs the origin no memory.

use std::path::PathBuf;
use std::sync::Arc;

use clap::Args;
use sluice_cluster::Registry;
use sluice_media::frame::MediaKind;
use sluice_media::stream_name::StreamKey;
use sluice_relay::codec::{FLAG_HEADER, FLAG_HLS_STAMP, FLAG_KEYFRAME};
use sluice_relay::tls::RelayTls;
use sluice_relay::{Frame, FrameKind, MediaSource, SubscribeRefusal, SubscribeRequest};
use tokio::sync::mpsc;
use tracing::{debug, info, Instrument};

use crate::hub::Publisher;

use crate::hub::log::Delivery;
use crate::hub::prepared::Prepared;
use crate::hub::{Hub, Subscription};
use crate::metrics::Protocol;

/// Relay settings shared by origins and edges: security, transport and limits.
#[derive(Debug, Clone, Args)]
pub struct RelayArgs {
    /// QUIC keep-alive interval on relay connections.
    #[arg(long, env = "SLUICE_RELAY_KEEPALIVE", default_value = "2s", value_parser = crate::config::parse_duration)]
    pub relay_keepalive: std::time::Duration,

    /// A relay connection silent this long is closed (its streams resubscribe elsewhere).
    #[arg(long, env = "SLUICE_RELAY_IDLE_TIMEOUT", default_value = "10s", value_parser = crate::config::parse_duration)]
    pub relay_idle_timeout: std::time::Duration,

    /// Largest media frame accepted from a relay peer (bytes; KiB/MiB suffixes allowed).
    #[arg(long, env = "SLUICE_RELAY_MAX_FRAME_SIZE", default_value = "8MiB", value_parser = crate::config::parse_size)]
    pub relay_max_frame_size: usize,

    /// Most subscriptions (and forwards) one relay connection may hold.
    #[arg(long, env = "SLUICE_RELAY_MAX_SUBSCRIPTIONS", default_value_t = 4096)]
    pub relay_max_subscriptions: usize,

    /// Directory with the cluster CA (`ca.pem`) and this node's certificate and key
    /// (`NODE_ID.pem`, `NODE_ID.key`), as written by `sluice-origin gen-certs`.
    #[arg(long, env = "SLUICE_TLS_DIR")]
    pub tls_dir: Option<PathBuf>,

    /// Skip all TLS verification on the relay. Development only: anyone who can reach the
    /// relay port can read and inject streams.
    #[arg(long, env = "SLUICE_INSECURE_DEV", default_value_t = false)]
    pub insecure_dev: bool,
}

impl RelayArgs {
    /// The relay endpoint configuration for `node_id`.
    pub fn relay_config(&self, node_id: &str) -> anyhow::Result<sluice_relay::RelayConfig> {
        let mut cfg = sluice_relay::RelayConfig::new(node_id.to_string(), self.relay_tls(node_id)?);
        cfg.keep_alive_interval = self.relay_keepalive;
        cfg.max_idle_timeout = self.relay_idle_timeout.max(self.relay_keepalive * 2);
        cfg.max_frame_size = self.relay_max_frame_size.max(1024);
        cfg.max_subscriptions = self.relay_max_subscriptions.max(1);
        cfg.max_forwards = self.relay_max_subscriptions.max(1);
        Ok(cfg)
    }

    /// The relay TLS for `node_id`: mutual TLS from `--tls-dir`, or no verification with
    /// `--insecure-dev`; neither is an error.
    pub fn relay_tls(&self, node_id: &str) -> anyhow::Result<RelayTls> {
        sluice_relay::tls::install_crypto_provider();
        match (&self.tls_dir, self.insecure_dev) {
            (Some(dir), _) => RelayTls::from_dir(dir, node_id)
                .map_err(|e| anyhow::anyhow!("loading relay certificates for node '{node_id}' from {}: {e}", dir.display())),
            (None, true) => {
                tracing::warn!("--insecure-dev: relay TLS verification is OFF");
                Ok(RelayTls::insecure_dev())
            }
            (None, false) => Err(anyhow::anyhow!(
                "the relay needs --tls-dir DIR (write a development set with `sluice-origin gen-certs --out DIR --nodes ...`) or --insecure-dev"
            )),
        }
    }
}

/// Frames queued from the hub to the relay per subscription.
const SOURCE_QUEUE: usize = 256;
/// Bytes collected from the log per batch.
const COLLECT_BATCH: usize = 128 * 1024;

/// Serves this node's live streams to subscribing nodes: streams published here and streams
/// forwarded here by their ingest origin.
pub struct HubSource {
    hub: Hub,
    registry: Arc<dyn Registry>,
    forwarding: Option<Arc<crate::forward::Forwarding>>,
}

impl HubSource {
    pub fn new(
        hub: Hub,
        registry: Arc<dyn Registry>,
        forwarding: Option<Arc<crate::forward::Forwarding>>,
    ) -> Arc<Self> {
        Arc::new(HubSource { hub, registry, forwarding })
    }

    /// The claim revision this node serves `key` under: its own claim, or the one a forward
    /// carried.
    fn revision(&self, key: &StreamKey) -> Option<i64> {
        let own =
            self.registry.claims().into_iter().find(|c| &c.stream == key).map(|c| c.revision());
        own.or_else(|| self.forwarding.as_ref().and_then(|f| f.forwarded_revision(key)))
    }
}

impl MediaSource for HubSource {
    fn subscribe(
        &self,
        request: &SubscribeRequest,
    ) -> Result<mpsc::Receiver<Frame>, SubscribeRefusal> {
        let key = StreamKey::parse(&request.app, &request.name)
            .map_err(|_| SubscribeRefusal::NotFound)?
            .0;
        if !self.hub.is_live(&key) {
            debug!(stream = %key, peer = %request.peer_node_id, "relay subscribe: not live here");
            return Err(SubscribeRefusal::NotFound);
        }
        if request.claim_revision != 0 {
            let ours = self.revision(&key);
            if ours != Some(request.claim_revision) {
                info!(stream = %key, peer = %request.peer_node_id, wanted = request.claim_revision, ours = ?ours, "relay subscribe: stale claim revision");
                return Err(SubscribeRefusal::Stale);
            }
        }
        let span = tracing::info_span!("relay_serve", stream = %key, peer = %request.peer_node_id);
        crate::trace_context::adopt_traceparent(&span, &request.traceparent);
        let _entered = span.enter();
        info!("serving stream to peer");
        spawn_feed(&self.hub, &key).map_err(|_| SubscribeRefusal::NotFound)
    }
}

/// A bounded receiver of `key`'s frames from the hub (headers, then from the latest keyframe),
/// fed by a task that counts as one `relay` viewer, for a subscription or a forward. The
/// receiver ends when the publisher leaves; dropping it stops the task.
pub fn spawn_feed(
    hub: &Hub,
    key: &StreamKey,
) -> Result<mpsc::Receiver<Frame>, crate::hub::SubscribeError> {
    let mut sub = hub.subscribe(key, Protocol::Relay)?;
    sub.start_playing();
    let (tx, rx) = mpsc::channel(SOURCE_QUEUE);
    let gauge = hub.metrics().relay_serving.clone();
    let bytes_out = hub.metrics().bytes_out(Protocol::Relay);
    tokio::spawn(
        async move {
            gauge.inc();
            feed(sub, tx, bytes_out).await;
            gauge.dec();
            debug!("relay feed ended");
        }
        .in_current_span(),
    );
    Ok(rx)
}

/// A local publish fed with frames from the relay (an edge's pull, an origin's hosted
/// forward). Timestamps pass through as the ingest origin set them. The relay repeats the
/// sequence headers and metadata at every GOP; the hub gets each only when it changes. A
/// keyframe is held until the next frame, which may be its HLS stamp.
pub struct RelayedPublish {
    publisher: Publisher,
    /// Last header payload pushed per kind (audio, video, data).
    headers: [Option<bytes::Bytes>; 3],
    /// A keyframe waiting for a possible stamp.
    held: Option<Frame>,
    /// Timestamp of the last media frame delivered.
    last_ts: Option<u32>,
    /// After switching to another upstream of the same timeline: drop what was already
    /// delivered, resume at the first keyframe (or, without video, frame) after this.
    resume_after: Option<u32>,
    /// Since the switch, the new upstream sent frames we already had.
    overlapped: bool,
    has_video: bool,
}

impl RelayedPublish {
    /// A relay hop that others read from (a home origin): timestamps pass through, so every
    /// node downstream sees the ingest's timeline.
    pub fn new(mut publisher: Publisher) -> Self {
        publisher.set_passthrough();
        Self::with(publisher)
    }

    /// The last hop (an edge): timestamps pass through when the stream is new here; when
    /// viewers are still connected from an earlier session of the name, they continue from
    /// where that session stopped instead of jumping back.
    pub fn new_for_viewers(mut publisher: Publisher) -> Self {
        if publisher.is_first_session() {
            publisher.set_passthrough();
        }
        Self::with(publisher)
    }

    fn with(publisher: Publisher) -> Self {
        RelayedPublish {
            publisher,
            headers: [None, None, None],
            held: None,
            last_ts: None,
            resume_after: None,
            overlapped: false,
            has_video: false,
        }
    }

    /// The next message starts a new source session (another claim of the stream): rebase
    /// timestamps to continue (see [`Publisher::new_session`]).
    pub fn new_session(&mut self) {
        self.flush();
        self.resume_after = None;
        self.publisher.new_session();
    }

    /// The frames now come from another upstream of the same timeline (another home, or the
    /// same origin after a broken connection): it restarts at a keyframe viewers may already
    /// have had: skip what was delivered and continue right after it (or, if the new upstream
    /// starts after a gap, at its first keyframe).
    pub fn switch_upstream(&mut self) {
        self.flush();
        self.resume_after = self.last_ts;
        self.overlapped = false;
    }

    pub fn push(&mut self, frame: Frame) {
        self.publisher.count_bytes_in(frame.payload.len() + sluice_relay::codec::FRAME_HEADER_LEN);
        if frame.flags & FLAG_HLS_STAMP != 0 {
            // From a peer: only a well-formed stamp with plausible numbers is followed.
            let stamp = sluice_media::hls::SegmentStamp::decode(&frame.payload)
                .filter(|s| s.is_plausible());
            match self.held.take() {
                Some(key) if key.timestamp == frame.timestamp && stamp.is_some() => {
                    self.deliver(key, stamp)
                }
                Some(key) => self.deliver(key, None),
                None => {}
            }
            return;
        }
        self.flush();
        if frame.is_header() {
            let slot = &mut self.headers[frame.kind as usize - 1];
            if slot.as_ref() == Some(&frame.payload) {
                return;
            }
            *slot = Some(frame.payload.clone());
        } else {
            if let Some(after) = self.resume_after {
                let newer = (frame.timestamp.wrapping_sub(after) as i32) > 0;
                if !newer {
                    // Already delivered; the new upstream overlaps what we had, so what
                    // follows continues it exactly (same timeline).
                    self.overlapped = true;
                    return;
                }
                let start = frame.kind == FrameKind::Video && frame.flags & FLAG_KEYFRAME != 0
                    || (!self.has_video && frame.kind == FrameKind::Audio);
                if !(self.overlapped || start) {
                    return; // a gap: wait for the next start point
                }
                self.resume_after = None;
            }
            if frame.kind == FrameKind::Video {
                self.has_video = true;
                if frame.flags & FLAG_KEYFRAME != 0 {
                    self.held = Some(frame);
                    return;
                }
            }
        }
        self.deliver(frame, None);
    }

    /// Delivers a held keyframe without a stamp.
    fn flush(&mut self) {
        if let Some(key) = self.held.take() {
            self.deliver(key, None);
        }
    }

    fn deliver(&mut self, frame: Frame, stamp: Option<sluice_media::hls::SegmentStamp>) {
        if !frame.is_header() {
            self.last_ts = Some(frame.timestamp);
        }
        if let Err(e) = self.publisher.push_relayed(to_message(frame), stamp) {
            debug!(error = %e, "relayed frame refused by the hub");
        }
    }
}

impl Drop for RelayedPublish {
    fn drop(&mut self) {
        self.flush();
    }
}

/// Copies the stream's log into the relay's queue until the publisher leaves (the relay then
/// tells the subscriber ENDED) or the subscriber goes away.
async fn feed(
    mut sub: Subscription,
    tx: mpsc::Sender<Frame>,
    bytes_out: prometheus_client::metrics::counter::Counter,
) {
    let mut batch = Vec::new();
    loop {
        tokio::select! {
            _ = sub.changed() => {}
            _ = tx.closed() => return,
        }
        loop {
            batch.clear();
            sub.collect(&mut batch, COLLECT_BATCH);
            if batch.is_empty() {
                break;
            }
            for delivery in batch.drain(..) {
                match delivery {
                    Delivery::Media(p) => {
                        bytes_out.inc_by(
                            p.payload.len() as u64 + sluice_relay::codec::FRAME_HEADER_LEN as u64,
                        );
                        if tx.send(to_frame(&p)).await.is_err() {
                            return;
                        }
                        if let Some(stamp) = p.hls_stamp {
                            let frame = Frame {
                                kind: FrameKind::Data,
                                flags: FLAG_HLS_STAMP,
                                timestamp: p.timestamp,
                                payload: stamp.encode(),
                            };
                            if tx.send(frame).await.is_err() {
                                return;
                            }
                        }
                    }
                    Delivery::Unpublished => return,
                    Delivery::Republished => {}
                }
            }
        }
    }
}

/// A hub message as a relay frame (the payload is shared, not copied).
pub fn to_frame(p: &Prepared) -> Frame {
    let kind = match p.kind {
        MediaKind::Audio => FrameKind::Audio,
        MediaKind::Video => FrameKind::Video,
        MediaKind::Data => FrameKind::Data,
    };
    let mut flags = 0;
    if p.sync {
        flags |= FLAG_KEYFRAME;
    }
    if p.header {
        flags |= FLAG_HEADER;
    }
    Frame { kind, flags, timestamp: p.timestamp, payload: p.payload.clone() }
}

/// A relay frame as a message for the hub.
pub fn to_message(frame: Frame) -> sluice_media::frame::MediaMessage {
    let kind = match frame.kind {
        FrameKind::Audio => MediaKind::Audio,
        FrameKind::Video => MediaKind::Video,
        FrameKind::Data => MediaKind::Data,
    };
    sluice_media::frame::MediaMessage { kind, timestamp: frame.timestamp, payload: frame.payload }
}
