//! Prometheus metrics of a node. Labels take values from small fixed sets only (protocol, error
//! kind): nothing is labelled by stream or client, so the series count never grows with load.

use std::sync::atomic::AtomicU64;

use std::fmt::Write as _;

use prometheus_client::encoding::{EncodeLabelSet, EncodeLabelValue, LabelValueEncoder};
use prometheus_client::metrics::counter::Counter;
use prometheus_client::metrics::family::Family;
use prometheus_client::metrics::gauge::Gauge;
use prometheus_client::registry::Registry;
use sluice_media::rtmp::SessionErrorKind;

/// Delivery protocol of a viewer.
#[derive(Debug, Clone, Copy, Hash, PartialEq, Eq)]
pub enum Protocol {
    Rtmp,
    Flv,
    Hls,
    /// Another node (an edge) pulling the stream over the QUIC relay.
    Relay,
}

impl Protocol {
    pub fn as_str(self) -> &'static str {
        match self {
            Protocol::Rtmp => "rtmp",
            Protocol::Flv => "flv",
            Protocol::Hls => "hls",
            Protocol::Relay => "relay",
        }
    }
}

impl EncodeLabelValue for Protocol {
    fn encode(&self, encoder: &mut LabelValueEncoder<'_>) -> std::fmt::Result {
        encoder.write_str(self.as_str())
    }
}

#[derive(Debug, Clone, Hash, PartialEq, Eq, EncodeLabelSet)]
pub struct ProtocolLabel {
    pub protocol: Protocol,
}

/// Why a connection was closed with an error.
#[derive(Debug, Clone, Copy, Hash, PartialEq, Eq)]
pub enum ErrorKind {
    Handshake,
    Chunk,
    Amf,
    Protocol,
    Timeout,
    Limit,
    Io,
    Media,
    /// A peer's output queue reached its byte cap (it does not read what it provokes).
    OutputFull,
}

impl ErrorKind {
    pub const ALL: [ErrorKind; 9] = [
        ErrorKind::Handshake,
        ErrorKind::Chunk,
        ErrorKind::Amf,
        ErrorKind::Protocol,
        ErrorKind::Timeout,
        ErrorKind::Limit,
        ErrorKind::Io,
        ErrorKind::Media,
        ErrorKind::OutputFull,
    ];

    pub fn as_str(self) -> &'static str {
        match self {
            ErrorKind::Handshake => "handshake",
            ErrorKind::Chunk => "chunk",
            ErrorKind::Amf => "amf",
            ErrorKind::Protocol => "protocol",
            ErrorKind::Timeout => "timeout",
            ErrorKind::Limit => "limit",
            ErrorKind::Io => "io",
            ErrorKind::Media => "media",
            ErrorKind::OutputFull => "output_full",
        }
    }
}

/// An RTMP session's failure counts under the label of its kind.
impl From<SessionErrorKind> for ErrorKind {
    fn from(kind: SessionErrorKind) -> ErrorKind {
        match kind {
            SessionErrorKind::Handshake => ErrorKind::Handshake,
            SessionErrorKind::Chunk => ErrorKind::Chunk,
            SessionErrorKind::Amf => ErrorKind::Amf,
            SessionErrorKind::Protocol => ErrorKind::Protocol,
            SessionErrorKind::OutputFull => ErrorKind::OutputFull,
        }
    }
}

impl EncodeLabelValue for ErrorKind {
    fn encode(&self, encoder: &mut LabelValueEncoder<'_>) -> std::fmt::Result {
        encoder.write_str(self.as_str())
    }
}

#[derive(Debug, Clone, Hash, PartialEq, Eq, EncodeLabelSet)]
pub struct ErrorLabel {
    pub kind: ErrorKind,
}

/// Where a client was refused admission: an accept loop, or HLS session creation.
#[derive(Debug, Clone, Copy, Hash, PartialEq, Eq)]
pub enum Door {
    Rtmp,
    Http,
    HlsSession,
}

impl EncodeLabelValue for Door {
    fn encode(&self, encoder: &mut LabelValueEncoder<'_>) -> std::fmt::Result {
        encoder.write_str(match self {
            Door::Rtmp => "rtmp",
            Door::Http => "http",
            Door::HlsSession => "hls_session",
        })
    }
}

/// Why a client was refused admission.
#[derive(Debug, Clone, Copy, Hash, PartialEq, Eq)]
pub enum RefusalReason {
    /// The address already holds its share of concurrent connections (or sessions).
    Concurrent,
    /// The address opens connections (or sessions) faster than its token bucket allows.
    Rate,
    /// Too many distinct addresses are tracked (a flood from very many addresses).
    Table,
    /// The node-wide cap of that door is reached.
    Total,
}

impl RefusalReason {
    pub const ALL: [RefusalReason; 4] = [
        RefusalReason::Concurrent,
        RefusalReason::Rate,
        RefusalReason::Table,
        RefusalReason::Total,
    ];
}

impl EncodeLabelValue for RefusalReason {
    fn encode(&self, encoder: &mut LabelValueEncoder<'_>) -> std::fmt::Result {
        encoder.write_str(match self {
            RefusalReason::Concurrent => "concurrent",
            RefusalReason::Rate => "rate",
            RefusalReason::Table => "table",
            RefusalReason::Total => "total",
        })
    }
}

#[derive(Debug, Clone, Hash, PartialEq, Eq, EncodeLabelSet)]
pub struct RefusalLabel {
    pub door: Door,
    pub reason: RefusalReason,
}

/// A quota breach: which limit (`crate::quota::Limit`), and what was done (`warned`, `cut`,
/// `refused`).
#[derive(Debug, Clone, Hash, PartialEq, Eq, EncodeLabelSet)]
pub struct QuotaLabel {
    pub limit: &'static str,
    pub action: &'static str,
}

/// All metrics of one node, cheap to clone (shared atomics).
#[derive(Clone, Default)]
pub struct Metrics {
    pub connections: Gauge,
    pub connections_total: Counter,
    pub streams: Gauge,
    pub viewers: Family<ProtocolLabel, Gauge>,
    pub bytes_in: Counter,
    pub bytes_out: Family<ProtocolLabel, Counter>,
    pub skipped_frames: Counter,
    /// Bytes of recordings written (segments, init segments, indexes).
    pub recording_bytes: Counter,
    /// Recording writes that failed, and segments a recorder missed.
    pub recording_errors: Counter,
    /// Recordings deleted by retention.
    pub recordings_deleted: Counter,
    /// Catalog items written (recordings and live streams).
    pub catalog_writes: Counter,
    /// Catalog writes that failed (each tried again on the item's next change).
    pub catalog_errors: Counter,
    /// Edges: recording files served from the VOD cache, fetched from an origin, and fetches
    /// that failed (no origin answered).
    pub vod_cache_hits: Counter,
    pub vod_fetches: Counter,
    pub vod_fetch_errors: Counter,
    /// Streams whose ladder is being transcoded now.
    pub transcodes: Gauge,
    /// Transcoder exits while their source was live (each restarted after a backoff).
    pub transcode_restarts: Counter,
    /// Streams with a ladder delivered at source only: the node had its --max-transcodes.
    pub transcodes_refused: Counter,
    pub connection_errors: Family<ErrorLabel, Counter>,
    pub publishes_rejected: Counter,
    /// Publishes refused by publish authorisation (no, a wrong or an expired credential).
    pub publishes_unauthorized: Counter,
    /// Viewers of private streams refused by play authorisation, by protocol.
    pub plays_unauthorized: Family<ProtocolLabel, Counter>,
    /// Play requests refused because the stream has its maximum of viewers.
    pub viewers_rejected: Counter,
    /// Quota breaches (`--quota-file`), by limit and action.
    pub quota_breaches: Family<QuotaLabel, Counter>,
    pub media_messages_in: Counter<u64, AtomicU64>,
    /// Streams this node pulls from an origin over the relay (edges), one per stream.
    pub relay_upstreams: Gauge,
    /// Upstream subscriptions opened (first pulls and resubscriptions after a loss).
    pub relay_subscribes: Counter,
    /// Upstream subscriptions refused or failed (origin unreachable, not found, stale).
    pub relay_subscribe_failures: Counter,
    /// Frames received from upstream origins.
    pub relay_frames_in: Counter,
    /// Subscriptions this node serves to other nodes (origins).
    pub relay_serving: Gauge,
    /// Open relay connections to other nodes (dialled or accepted and adopted).
    pub relay_peer_connections: Gauge,
    /// Open HTTP connections (all of HTTP, not only media).
    pub http_connections: Gauge,
    /// Clients refused admission, by door and reason.
    pub admission_refused: Family<RefusalLabel, Counter>,
    /// Live HLS sessions.
    pub hls_sessions: Gauge,
    /// Streams holding media memory: live, or ended and not yet released.
    pub streams_held: Gauge,
    /// Publishers closed by a management order (`KickPublisher`).
    pub publishers_kicked: Counter,
    /// HTTPS connections whose TLS handshake failed or did not finish in time.
    pub tls_handshake_failures: Counter,
    /// HTTPS certificate reloads (SIGHUP) that took, and that failed (old one kept).
    pub tls_reloads: Counter,
    pub tls_reload_failures: Counter,
    /// Forwards refused or dropped: their sender does not hold the stream's claim.
    pub relay_forwards_refused: Counter,
    /// 1 while the registry has answered no keep-alive for most of a lease (fenced).
    pub registry_fenced: Gauge,
}

impl Metrics {
    /// All series exist from the start (at 0), so dashboards and alerts see them before the
    /// first event.
    pub fn new() -> Self {
        let m = Self::default();
        for protocol in [Protocol::Rtmp, Protocol::Flv, Protocol::Hls, Protocol::Relay] {
            m.viewers(protocol);
            m.bytes_out(protocol);
        }
        for kind in ErrorKind::ALL {
            let _ = m.connection_errors.get_or_create(&ErrorLabel { kind });
        }
        for door in [Door::Rtmp, Door::Http, Door::HlsSession] {
            for reason in RefusalReason::ALL {
                let _ = m.admission_refused.get_or_create(&RefusalLabel { door, reason });
            }
        }
        m
    }

    /// A registry exposing these metrics under the `sluice_` prefix.
    pub fn registry(&self) -> Registry {
        let mut r = Registry::with_prefix("sluice");
        r.register(
            "connections",
            "Open client connections (RTMP and HTTP media)",
            self.connections.clone(),
        );
        r.register(
            "connections_accepted",
            "Client connections accepted",
            self.connections_total.clone(),
        );
        r.register("streams", "Live (published) streams", self.streams.clone());
        r.register("viewers", "Viewers currently playing, by protocol", self.viewers.clone());
        r.register("bytes_in", "Media and protocol bytes received from publishers (and, for relayed streams, from peer nodes)", self.bytes_in.clone());
        r.register("bytes_out", "Bytes sent to viewers, by protocol", self.bytes_out.clone());
        r.register(
            "skipped_frames",
            "Frames a slow viewer skipped to catch up at the next keyframe",
            self.skipped_frames.clone(),
        );
        r.register(
            "recording_bytes",
            "Bytes of recordings written (segments, init segments, indexes)",
            self.recording_bytes.clone(),
        );
        r.register(
            "recording_errors",
            "Recording writes that failed, and segments a recorder missed",
            self.recording_errors.clone(),
        );
        r.register(
            "recordings_deleted",
            "Recordings deleted by retention (--record-max-age, --record-max-bytes)",
            self.recordings_deleted.clone(),
        );
        r.register(
            "vod_cache_hits",
            "Edges: recording files served from the VOD cache",
            self.vod_cache_hits.clone(),
        );
        r.register(
            "vod_fetches",
            "Edges: recording requests passed to an origin",
            self.vod_fetches.clone(),
        );
        r.register(
            "vod_fetch_errors",
            "Edges: recording requests no origin answered",
            self.vod_fetch_errors.clone(),
        );
        r.register(
            "catalog_writes",
            "Catalog items written (recordings and live streams)",
            self.catalog_writes.clone(),
        );
        r.register(
            "catalog_errors",
            "Catalog writes that failed (tried again on the item's next change)",
            self.catalog_errors.clone(),
        );
        r.register(
            "transcodes",
            "Streams whose ladder is being transcoded",
            self.transcodes.clone(),
        );
        r.register(
            "transcode_restarts",
            "Transcoder exits while their source was live (restarted after a backoff)",
            self.transcode_restarts.clone(),
        );
        r.register(
            "transcodes_refused",
            "Streams with a ladder delivered at source only (the node had --max-transcodes)",
            self.transcodes_refused.clone(),
        );
        r.register(
            "connection_errors",
            "Connections closed because of an error, by kind",
            self.connection_errors.clone(),
        );
        r.register(
            "publishes_rejected",
            "Publish attempts refused (name taken, invalid, limits, unauthorised)",
            self.publishes_rejected.clone(),
        );
        r.register(
            "publishes_unauthorized",
            "Publish attempts refused for a missing, wrong or expired stream key or token",
            self.publishes_unauthorized.clone(),
        );
        r.register(
            "plays_unauthorized",
            "Viewers of private streams refused for a missing, invalid or expired play token",
            self.plays_unauthorized.clone(),
        );
        r.register(
            "quota_breaches",
            "Quota breaches (--quota-file) by limit and what was done: warned, cut, refused",
            self.quota_breaches.clone(),
        );
        r.register(
            "publishers_kicked",
            "Publishers closed by a kick order from the control plane",
            self.publishers_kicked.clone(),
        );
        r.register(
            "viewers_rejected",
            "Play requests refused because the stream had --max-viewers-per-stream viewers",
            self.viewers_rejected.clone(),
        );
        r.register(
            "media_messages_in",
            "Audio/video/data messages received from publishers",
            self.media_messages_in.clone(),
        );
        r.register(
            "relay_upstreams",
            "Streams pulled from an origin over the relay (one per stream per edge)",
            self.relay_upstreams.clone(),
        );
        r.register(
            "relay_subscribes",
            "Upstream relay subscriptions opened (first pulls and resubscriptions)",
            self.relay_subscribes.clone(),
        );
        r.register(
            "relay_subscribe_failures",
            "Upstream relay subscriptions refused or failed",
            self.relay_subscribe_failures.clone(),
        );
        r.register(
            "relay_frames_in",
            "Frames received from upstream origins over the relay",
            self.relay_frames_in.clone(),
        );
        r.register(
            "relay_serving",
            "Relay subscriptions this node serves to other nodes",
            self.relay_serving.clone(),
        );
        r.register(
            "relay_peer_connections",
            "Open relay connections to other nodes (one per node pair)",
            self.relay_peer_connections.clone(),
        );
        r.register(
            "http_connections",
            "Open HTTP connections (playlists, segments, FLV, API)",
            self.http_connections.clone(),
        );
        r.register(
            "admission_refused",
            "Clients refused admission (per-address shares, rates, node caps), by door and reason",
            self.admission_refused.clone(),
        );
        r.register("hls_sessions", "Live HLS sessions", self.hls_sessions.clone());
        r.register(
            "streams_held",
            "Streams holding media memory: live, or ended and not yet released",
            self.streams_held.clone(),
        );
        r.register(
            "relay_forwards_refused",
            "Forwards refused or dropped because the registry shows their sender does not hold the stream's claim",
            self.relay_forwards_refused.clone(),
        );
        r.register(
            "registry_fenced",
            "1 while no registry keep-alive was answered for most of a lease: this node's claims may be taken over",
            self.registry_fenced.clone(),
        );
        r.register(
            "tls_handshake_failures",
            "HTTPS connections whose TLS handshake failed or timed out",
            self.tls_handshake_failures.clone(),
        );
        r.register(
            "tls_reloads",
            "HTTPS certificate reloads on SIGHUP that took effect",
            self.tls_reloads.clone(),
        );
        r.register(
            "tls_reload_failures",
            "HTTPS certificate reloads on SIGHUP that failed (the current certificate stays)",
            self.tls_reload_failures.clone(),
        );
        r
    }

    /// Count one refused admission.
    pub fn refused(&self, door: Door, reason: RefusalReason) {
        self.admission_refused.get_or_create(&RefusalLabel { door, reason }).inc();
    }

    pub fn error(&self, kind: ErrorKind) {
        self.connection_errors.get_or_create(&ErrorLabel { kind }).inc();
    }

    pub fn viewers(&self, protocol: Protocol) -> Gauge {
        self.viewers.get_or_create(&ProtocolLabel { protocol }).clone()
    }

    pub fn bytes_out(&self, protocol: Protocol) -> Counter {
        self.bytes_out.get_or_create(&ProtocolLabel { protocol }).clone()
    }

    /// One more quota breach of `limit`, `action` being `warned`, `cut` or `refused`.
    pub fn quota_breach(&self, limit: crate::quota::Limit, action: &'static str) {
        self.quota_breaches.get_or_create(&QuotaLabel { limit: limit.label(), action }).inc();
    }

    /// One more viewer refused by play authorisation.
    pub fn play_unauthorized(&self, protocol: Protocol) {
        self.plays_unauthorized.get_or_create(&ProtocolLabel { protocol }).inc();
    }
}

/// Render `registry` in the Prometheus text exposition format.
pub fn render(registry: &Registry) -> String {
    let mut out = String::new();
    // Writing into a String cannot fail.
    let _ = prometheus_client::encoding::text::encode(&mut out, registry);
    out
}

/// Counts one open connection in `sluice_connections` for as long as it lives.
pub struct ConnectionGuard {
    metrics: Metrics,
}

impl ConnectionGuard {
    pub fn new(metrics: &Metrics) -> Self {
        metrics.connections.inc();
        metrics.connections_total.inc();
        ConnectionGuard { metrics: metrics.clone() }
    }
}

impl Drop for ConnectionGuard {
    fn drop(&mut self) {
        self.metrics.connections.dec();
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn every_series_is_exposed_from_the_start() {
        let text = render(&Metrics::new().registry());
        for series in [
            "sluice_viewers{protocol=\"rtmp\"} 0",
            "sluice_viewers{protocol=\"flv\"} 0",
            "sluice_viewers{protocol=\"hls\"} 0",
            "sluice_bytes_out_total{protocol=\"hls\"} 0",
            "sluice_bytes_out_total{protocol=\"flv\"} 0",
            "sluice_connection_errors_total{kind=\"limit\"} 0",
            "sluice_connection_errors_total{kind=\"handshake\"} 0",
        ] {
            assert!(text.contains(series), "missing {series} in\n{text}");
        }
    }

    #[test]
    fn session_error_kinds_keep_their_labels() {
        for (kind, label) in [
            (SessionErrorKind::Handshake, "handshake"),
            (SessionErrorKind::Chunk, "chunk"),
            (SessionErrorKind::Amf, "amf"),
            (SessionErrorKind::Protocol, "protocol"),
            (SessionErrorKind::OutputFull, "output_full"),
        ] {
            assert_eq!(ErrorKind::from(kind).as_str(), label);
            assert_eq!(ErrorKind::from(kind).as_str(), kind.as_str());
        }
    }
}
