//! Relay endpoint configuration: identity, TLS, transport settings and limits.

use std::sync::Arc;
use std::time::Duration;

use crate::tls::RelayTls;

/// Everything a [`crate::RelayEndpoint`] needs. Build with [`RelayConfig::new`] and adjust
/// fields; the defaults are what a node uses.
#[derive(Debug, Clone)]
pub struct RelayConfig {
    /// This node's id, sent in `Hello`.
    pub node_id: String,
    /// Certificates and verification.
    pub tls: RelayTls,
    /// QUIC keepalive (PING) interval. Default 2 s.
    pub keep_alive_interval: Duration,
    /// A connection silent this long is closed. Default 10 s.
    pub max_idle_timeout: Duration,
    /// Concurrent unidirectional streams the peer may open (GOP streams in flight over all
    /// subscriptions). Default 1024 (quinn's default of 100 stalls many streams).
    pub max_concurrent_uni_streams: u32,
    /// Receive window per stream (one GOP in flight). Default 4 MiB.
    pub stream_receive_window: u32,
    /// Receive window of the whole connection. Default 64 MiB.
    pub receive_window: u32,
    /// Bound on one received frame's payload.
    pub max_frame_size: usize,
    /// Live subscriptions one connection may hold.
    pub max_subscriptions: usize,
    /// Frames queued for one GOP stream before its subscriber counts as lagging: the GOP is
    /// then cancelled and sending resumes at the next keyframe.
    pub gop_queue_frames: usize,
    /// Bytes of frame payload queued for one GOP stream before its subscriber counts as
    /// lagging (as for `gop_queue_frames`): frames share the hub's buffers, but a queued frame
    /// keeps its buffer alive after the hub dropped it, so the queue is bounded in bytes too.
    /// Default 8 MiB; a single larger frame is still queued when the queue is empty.
    pub gop_queue_bytes: usize,
    /// Time allowed for the Hello exchange and for a `Subscribe` or `Forward` answer.
    pub request_timeout: Duration,
    /// Live forwards one connection may hold; further `Forward`s are answered REFUSED.
    /// Default 4096.
    pub max_forwards: usize,
    /// A `Forward` whose `hops` exceeds this is answered LOOP. Default 3.
    pub max_forward_hops: u32,
}

impl RelayConfig {
    /// The defaults documented on each field.
    pub fn new(node_id: impl Into<String>, tls: RelayTls) -> Self {
        Self {
            node_id: node_id.into(),
            tls,
            keep_alive_interval: Duration::from_secs(2),
            max_idle_timeout: Duration::from_secs(10),
            max_concurrent_uni_streams: 1024,
            stream_receive_window: 4 * 1024 * 1024,
            receive_window: 64 * 1024 * 1024,
            max_frame_size: crate::codec::DEFAULT_MAX_FRAME_SIZE,
            max_subscriptions: 4096,
            gop_queue_frames: 2048,
            gop_queue_bytes: 8 * 1024 * 1024,
            request_timeout: Duration::from_secs(5),
            max_forwards: 4096,
            max_forward_hops: 3,
        }
    }

    /// The quinn transport settings, all set explicitly.
    pub(crate) fn transport(&self) -> Arc<quinn::TransportConfig> {
        let mut t = quinn::TransportConfig::default();
        t.keep_alive_interval(Some(self.keep_alive_interval));
        // Durations beyond QUIC's varint range fall back to "no idle timeout" only if the
        // caller asked for more than ~146 years; clamp instead.
        let idle = quinn::IdleTimeout::try_from(self.max_idle_timeout)
            .unwrap_or_else(|_| quinn::IdleTimeout::from(quinn::VarInt::MAX));
        t.max_idle_timeout(Some(idle));
        t.max_concurrent_uni_streams(self.max_concurrent_uni_streams.into());
        t.max_concurrent_bidi_streams(8u32.into());
        t.stream_receive_window(self.stream_receive_window.into());
        t.receive_window(self.receive_window.into());
        t.send_window(u64::from(self.receive_window));
        Arc::new(t)
    }
}
