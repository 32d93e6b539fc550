//! RTMP over TCP, and RTMPS (RTMP over TLS): the accept loop and per-connection tasks.

mod claim_guard;
mod connection;
mod deadlines;
mod error;
mod linger;
mod play_gate;
mod publish_gate;
mod publish_quota;
mod takeover;
mod transport;

use std::sync::Arc;
use std::time::Duration;

use tokio::time::Instant;

use prometheus_client::metrics::counter::Counter;
use sluice_media::rtmp::chunk::ChunkLimits;
use sluice_media::rtmp::server::ServerConfig;
use tokio::net::TcpListener;
use tokio::sync::{watch, Semaphore};
use tracing::{info_span, warn};

use crate::hub::Hub;
use crate::log_limit::RateLimitedLog;
use crate::metrics::{Metrics, Protocol};
use crate::settings::Limits;
pub use error::ConnectionError;

/// What every RTMP connection task shares.
pub struct RtmpContext {
    pub hub: Hub,
    pub metrics: Metrics,
    pub limits: Limits,
    /// Shared by every connection's session.
    pub session_config: Arc<ServerConfig>,
    /// Shared with HTTP media connections: one budget for the node.
    pub connection_slots: Arc<Semaphore>,
    pub epoch: Instant,
    /// Where stream names are claimed (etcd, or in memory standalone).
    pub registry: Arc<dyn sluice_cluster::Registry>,
    /// Clustered origins with a relay: forwards each published stream to its home.
    pub forwarding: Option<Arc<crate::forward::Forwarding>>,
    /// Per-address fair shares at accept (`--max-connections-per-ip`, `--new-connections-per-ip`).
    pub admission: Arc<crate::admission::Gate>,
    /// Slots of `connection_slots` viewers leave free for publishers (`--publisher-reserve`):
    /// a `play` that would take one of them is refused.
    pub publisher_reserve: usize,
    /// Set while a drain order is in force: new players and publishers are refused.
    pub drain: Arc<crate::drain::DrainGate>,
    /// Who may publish (stream keys, signed tokens); `None`: anyone.
    pub publish_auth: Option<Arc<crate::publish_auth::PublishAuthStore>>,
    /// The publish webhook (`on_publish`, `on_unpublish`); `None`: none.
    pub webhook: Option<Arc<crate::webhook::Webhook>>,
    /// Which streams play only from a signed URL.
    pub play_auth: Arc<crate::play_auth::PlayAuth>,
    /// Per-app quotas, and how long a publisher may stay over a measured one.
    pub quotas: Arc<crate::quota::Quotas>,
    pub quota_grace: Duration,
    bytes_out_rtmp: Counter,
    error_log: RateLimitedLog,
    /// Every other line a client can provoke (refusals, publish starts, takeovers).
    pub(crate) client_log: RateLimitedLog,
}

impl RtmpContext {
    pub fn new(
        hub: Hub,
        metrics: Metrics,
        limits: Limits,
        connection_slots: Arc<Semaphore>,
        registry: Arc<dyn sluice_cluster::Registry>,
    ) -> Self {
        let session_config = ServerConfig {
            chunk_limits: ChunkLimits {
                max_message_size: limits.max_message_size,
                max_reassembly_bytes: limits.max_reassembly,
                ..ChunkLimits::default()
            },
            ..ServerConfig::default()
        };
        let bytes_out_rtmp = metrics.bytes_out(Protocol::Rtmp);
        let admission =
            Arc::new(crate::admission::Gate::open(crate::metrics::Door::Rtmp, metrics.clone()));
        RtmpContext {
            hub,
            metrics,
            limits,
            session_config: Arc::new(session_config),
            connection_slots,
            epoch: Instant::now(),
            registry,
            forwarding: None,
            admission,
            publisher_reserve: 0,
            drain: Arc::default(),
            publish_auth: None,
            webhook: None,
            play_auth: Arc::default(),
            quotas: Arc::default(),
            quota_grace: Duration::from_secs(10),
            bytes_out_rtmp,
            error_log: RateLimitedLog::new(20),
            client_log: RateLimitedLog::new(50),
        }
    }
}

/// Accept RTMP connections (RTMPS with `tls`) until `shutdown` turns true.
pub async fn serve(
    listener: TcpListener,
    ctx: Arc<RtmpContext>,
    tls: Option<Arc<rustls::ServerConfig>>,
    mut shutdown: watch::Receiver<bool>,
) {
    loop {
        let accepted = tokio::select! {
            a = listener.accept() => a,
            _ = shutdown.wait_for(|s| *s) => return,
        };
        let (stream, peer) = match accepted {
            Ok(a) => a,
            Err(e) => {
                // EMFILE and friends: back off instead of spinning.
                warn!(error = %e, "accept failed");
                tokio::time::sleep(Duration::from_millis(50)).await;
                continue;
            }
        };
        let Some(share) = ctx.admission.admit(peer.ip()) else {
            continue;
        };
        let Ok(permit) = ctx.connection_slots.clone().try_acquire_owned() else {
            ctx.metrics.error(crate::metrics::ErrorKind::Limit);
            if ctx.error_log.allow() {
                warn!(%peer, "connection refused: --max-connections reached");
            }
            drop(stream);
            continue;
        };
        let _ = stream.set_nodelay(true);
        let transport = match &tls {
            None => transport::Transport::Plain(stream),
            Some(config) => match transport::Transport::tls(stream, config.clone()) {
                Ok(t) => t,
                Err(e) => {
                    warn!(error = %e, "RTMPS: TLS session not created");
                    continue;
                }
            },
        };
        ctx.metrics.connections.inc();
        ctx.metrics.connections_total.inc();
        let span = info_span!("rtmp", %peer, tls = tls.is_some(), stream = tracing::field::Empty, role = tracing::field::Empty);
        // Not `.instrument(span)`: entering a span on every poll costs a player's per-frame
        // wake-up more than its delivery does. The connection enters it wherever it may log,
        // and logs how it ended.
        let mut connection = connection::Connection::new(ctx.clone(), transport, span);
        tokio::spawn(async move {
            connection.run_to_end().await;
            drop((permit, share));
        });
    }
}
