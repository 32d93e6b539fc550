//! Starting a node that serves publishers and viewers: listeners, tasks, drain on SIGTERM.

use std::net::SocketAddr;
use std::sync::atomic::Ordering;
use std::sync::Arc;
use std::time::Duration;

use anyhow::Context;
use tokio::net::TcpListener;
use tokio::sync::{watch, Semaphore};
use tracing::{info, warn};

use sluice_cluster::types::{Capacity, Role};
use sluice_cluster::Registry;

use crate::cluster::{self, Advertised};
use crate::config::NodeArgs;
use crate::http::{self, HttpContext};
use crate::hub::{Hub, HubConfig};
use crate::metrics::Metrics;
use crate::rtmp::{self, RtmpContext};
use crate::runtime;

/// A node that is listening. Dropping it does not stop it; call [`Node::shutdown`].
pub struct Node {
    pub rtmp_addr: SocketAddr,
    pub http_addr: SocketAddr,
    pub hub: Hub,
    shutdown: watch::Sender<bool>,
    http_ctx: Arc<HttpContext>,
    rtmp_ctx: Arc<RtmpContext>,
    registry: Arc<dyn Registry>,
    tasks: Vec<tokio::task::JoinHandle<()>>,
}

impl Node {
    /// Bind the listeners and start serving.
    pub async fn start(args: &NodeArgs) -> anyhow::Result<Node> {
        let fd_limit = runtime::raise_fd_limit();
        let limits = args.limits.clone();
        let max_connections = runtime::cap_connections(limits.max_connections, fd_limit);
        if max_connections < limits.max_connections {
            info!(requested = limits.max_connections, max_connections, fd_limit, "--max-connections capped below the file-descriptor limit");
        }
        let metrics = Metrics::new();
        let hub = Hub::new(
            HubConfig {
                max_streams: limits.max_streams,
                max_viewers_per_stream: limits.max_viewers_per_stream,
                stream_buffer: limits.stream_buffer,
                viewer_max_lag: limits.viewer_max_lag,
                publish_takeover: limits.publish_takeover,
                hls: crate::hls::HlsSettings::new(&limits.hls, max_connections),
            },
            metrics.clone(),
        );
        let slots = Arc::new(Semaphore::new(max_connections));
        let rtmp_listener = TcpListener::bind(args.rtmp_listen)
            .await
            .with_context(|| format!("binding RTMP listener on {}", args.rtmp_listen))?;
        let http_listener = TcpListener::bind(args.http_listen)
            .await
            .with_context(|| format!("binding HTTP listener on {}", args.http_listen))?;
        let rtmp_addr = rtmp_listener.local_addr()?;
        let http_addr = http_listener.local_addr()?;

        let node_id = args.node_id();
        let host = args.cluster.advertise_host.clone().unwrap_or_else(|| rtmp_addr.ip().to_string());
        let advertised = Advertised {
            addresses: [
                ("rtmp".to_string(), format!("{host}:{}", rtmp_addr.port())),
                ("http".to_string(), format!("{host}:{}", http_addr.port())),
            ]
            .into(),
            capacity: Capacity { max_streams: limits.max_streams as u64, max_connections: max_connections as u64 },
        };
        let registry = cluster::start_registry(&args.cluster, &node_id, Role::Origin, advertised).await?;
        let mut tasks = vec![cluster::spawn_event_task(registry.clone(), hub.clone())];

        let (shutdown, shutdown_rx) = watch::channel(false);
        let rtmp_ctx =
            Arc::new(RtmpContext::new(hub.clone(), metrics.clone(), limits.clone(), slots.clone(), registry.clone()));
        let http_ctx = Arc::new(HttpContext {
            hub: hub.clone(),
            metrics: metrics.clone(),
            registry: metrics.registry(),
            limits,
            connection_slots: slots,
            ready: true.into(),
            web_dir: args.web_dir.clone(),
        });
        tasks.push(tokio::spawn(rtmp::serve(rtmp_listener, rtmp_ctx.clone(), shutdown_rx.clone())));
        let app = http::router(http_ctx.clone());
        let mut http_shutdown = shutdown_rx;
        tasks.push(tokio::spawn(async move {
            let served = axum::serve(http_listener, app)
                .with_graceful_shutdown(async move {
                    let _ = http_shutdown.wait_for(|s| *s).await;
                })
                .await;
            if let Err(e) = served {
                warn!(error = %e, "HTTP server failed");
            }
        }));
        info!(rtmp = %rtmp_addr, http = %http_addr, max_connections, "listening");
        Ok(Node { rtmp_addr, http_addr, hub, shutdown, http_ctx, rtmp_ctx, registry, tasks })
    }

    /// Stop accepting, report not-ready, and wait up to `drain` for connections to finish.
    pub async fn shutdown(self, drain: Duration) {
        self.http_ctx.ready.store(false, Ordering::Relaxed);
        let _ = self.shutdown.send(true);
        let metrics = &self.rtmp_ctx.metrics;
        let deadline = tokio::time::Instant::now() + drain;
        while metrics.connections.get() > 0 && tokio::time::Instant::now() < deadline {
            tokio::time::sleep(Duration::from_millis(100)).await;
        }
        let left = metrics.connections.get();
        if left > 0 {
            info!(connections = left, "drain timeout: closing remaining connections");
        }
        for t in self.tasks {
            t.abort();
        }
        // Revoke the lease: this node's key and claims disappear at once.
        self.registry.shutdown().await;
    }
}

/// Run a standalone node until SIGTERM/SIGINT, then drain.
pub async fn run_standalone(args: NodeArgs) -> anyhow::Result<()> {
    let node = Node::start(&args).await?;
    // Machine-readable line for scripts and tests (logs go to stderr).
    println!("listening rtmp={} http={}", node.rtmp_addr, node.http_addr);
    runtime::shutdown_signal().await;
    info!(drain_timeout = ?args.limits.drain_timeout, "shutting down: draining connections");
    node.shutdown(args.limits.drain_timeout).await;
    Ok(())
}
