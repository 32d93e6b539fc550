//! Starting a node that serves publishers and viewers: listeners, tasks, drain on SIGTERM (and
//! on an operator's order: `crate::orders`).

use std::net::SocketAddr;
use std::sync::atomic::Ordering;
use std::sync::Arc;
use std::time::Duration;

use anyhow::Context;
use tokio::net::{TcpListener, TcpSocket};
use tokio::sync::{watch, Semaphore};
use tracing::info;

use sluice_cluster::types::{Capacity, Role};
use sluice_cluster::Registry;
use sluice_relay::RelayEndpoint;

use crate::hls::{HlsServing, HlsStreams};
use crate::http::{self, HttpContext, VodUpstream};
use crate::hub::{Hub, HubConfig};
use crate::metrics::Metrics;
use crate::registry::{self, advertise_state, Advertised};
use crate::rtmp::{self, RtmpContext};
use crate::runtime;
use crate::settings::NodeSettings;

/// On SIGTERM, how long a node with a relay keeps serving it after leaving the ring.
const RELAY_MOVE_GRACE: Duration = Duration::from_secs(1);

/// What differs between the binaries that run a [`Node`].
pub struct NodeOptions {
    /// Origin or edge: how the node registers, and whether it accepts publishers.
    pub role: Role,
    /// Origins: the UDP address the QUIC relay listens on for edges (`--relay-listen`).
    pub relay_listen: Option<SocketAddr>,
    /// Edges: builds the upstream that pulls streams over the relay (set on the hub before
    /// any listener accepts).
    pub upstream: Option<MakeUpstream>,
    /// Origins: who may publish; `None`: anyone.
    pub publish_auth: Option<Arc<crate::publish_auth::PublishAuthStore>>,
    /// Origins: what to record, and where; `None`: nothing.
    pub record: Option<crate::recording::RecordSettings>,
    /// Origins: how streams with a ladder are transcoded; `None`: none is.
    pub transcode: Option<crate::transcode::TranscodeSettings>,
    /// Origins: the content catalog they keep; `None`: none.
    pub catalog: Option<crate::catalog::CatalogOptions>,
    /// Origins: where scheduled playout reads its files; `None`: no playout.
    pub playout_dir: Option<std::path::PathBuf>,
    /// Edges: the VOD cache's bytes (recordings are passed to the origins).
    pub vod_cache_size: Option<usize>,
}

/// Builds a node's upstream once its hub, registry and relay exist.
pub type MakeUpstream =
    Box<dyn FnOnce(UpstreamContext) -> Arc<dyn crate::upstream::Upstream> + Send>;

impl NodeOptions {
    /// A standalone or clustered origin without a relay listener.
    pub fn origin() -> Self {
        NodeOptions {
            role: Role::Origin,
            relay_listen: None,
            upstream: None,
            publish_auth: None,
            record: None,
            transcode: None,
            catalog: None,
            playout_dir: None,
            vod_cache_size: None,
        }
    }
}

/// What an upstream is built from.
pub struct UpstreamContext {
    pub hub: Hub,
    pub registry: Arc<dyn Registry>,
    pub placement: crate::placement::Placement,
    pub peers: Arc<crate::peers::Peers>,
}

/// A node that is listening. Dropping it does not stop it; call [`Node::shutdown`].
pub struct Node {
    pub rtmp_addr: SocketAddr,
    pub http_addr: SocketAddr,
    /// The HTTPS listener's address, with `--https-listen`.
    pub https_addr: Option<SocketAddr>,
    /// The RTMPS listener's address, with `--rtmps-listen`.
    pub rtmps_addr: Option<SocketAddr>,
    /// The relay's UDP address when this node listens for relay peers.
    pub relay_addr: Option<SocketAddr>,
    pub hub: Hub,
    relay: Option<RelayEndpoint>,
    shutdown: watch::Sender<bool>,
    http_ctx: Arc<HttpContext>,
    rtmp_ctx: Arc<RtmpContext>,
    registry: Arc<dyn Registry>,
    advertised: Advertised,
    /// Carries out drain and kick orders; stopped first on SIGTERM (an undrain must not mark a
    /// node that is shutting down ready again).
    orders: tokio::task::JoinHandle<()>,
    tasks: Vec<tokio::task::JoinHandle<()>>,
}

impl Node {
    /// Bind the listeners and start serving.
    pub async fn start(args: &NodeSettings, options: NodeOptions) -> anyhow::Result<Node> {
        let fd_limit = runtime::raise_fd_limit();
        let limits = args.limits.clone();
        let max_connections = runtime::cap_connections(limits.max_connections, fd_limit);
        if max_connections < limits.max_connections {
            info!(
                requested = limits.max_connections,
                max_connections,
                fd_limit,
                "--max-connections capped below the file-descriptor limit"
            );
        }
        let metrics = Metrics::new();
        let quotas = Arc::new(match &args.quota_file {
            Some(path) => crate::quota::Quotas::load(path)?,
            None => crate::quota::Quotas::default(),
        });
        let hub = Hub::new(
            HubConfig {
                max_streams: limits.max_streams,
                max_viewers_per_stream: limits.max_viewers_per_stream,
                stream_buffer: limits.stream_buffer,
                viewer_max_lag: limits.viewer_max_lag,
                publish_takeover: limits.publish_takeover,
                quotas: quotas.clone(),
            },
            metrics.clone(),
        );
        let session_key =
            match &args.hls.session_key_file {
                Some(path) => Some(std::fs::read(path).with_context(|| {
                    format!("reading --hls-session-key-file {}", path.display())
                })?),
                None => None,
            };
        let hls = HlsServing::new(&args.hls, session_key.as_deref());
        let (recordings, recording_tasks) = match &options.record {
            Some(record) => {
                let (recordings, tasks) = crate::recording::Recordings::open_for_node(
                    record,
                    args.limits.ended_stream_linger,
                    args.cluster.is_clustered(),
                    metrics.clone(),
                )
                .await?;
                (Some(recordings), tasks)
            }
            None => (None, Vec::new()),
        };
        let catalog = match &options.catalog {
            Some(c) => Some(
                crate::catalog::CatalogSync::open(c, &args.node_id(), metrics.clone())
                    .await
                    .context("opening the catalog (--catalog)")?,
            ),
            None => None,
        };
        let mut catalog_home: Option<crate::catalog::HomeCheck> = None;
        // A standalone origin's own schedule; a cluster's is the registry's (below).
        let mut playout = (!args.cluster.is_clustered())
            .then(|| options.playout_dir.clone())
            .flatten()
            .map(|dir| crate::playout::Playout::standalone(dir, hub.clone(), recordings.clone()));
        hub.set_hls_hook(HlsStreams::new(hls.clone(), recordings.clone()));
        let transcoders = options.transcode.clone().map(|mut settings| {
            settings.republish_wait = args.limits.ended_stream_linger;
            crate::transcode::Transcoders::new(settings, metrics.clone())
        });
        if let Some(transcoders) = &transcoders {
            hub.set_publish_hook(transcoders.clone());
        }
        let slots = Arc::new(Semaphore::new(max_connections));
        let rtmp_listener = listen(args.rtmp_listen, args.admission.listen_backlog)
            .with_context(|| format!("binding RTMP listener on {}", args.rtmp_listen))?;
        let http_listener = listen(args.http_listen, args.admission.listen_backlog)
            .with_context(|| format!("binding HTTP listener on {}", args.http_listen))?;
        let rtmp_addr = rtmp_listener.local_addr()?;
        let http_addr = http_listener.local_addr()?;
        let tls = match args.tls_files().map_err(anyhow::Error::msg)? {
            Some(files) => Some(
                crate::tls::CertStore::load(files)
                    .context("loading the TLS certificate (--https-cert, --https-key)")?,
            ),
            None => None,
        };
        let tls_listener = |addr: Option<SocketAddr>, what: &str| -> anyhow::Result<_> {
            match (addr, &tls) {
                (Some(addr), Some(store)) => {
                    let listener = listen(addr, args.admission.listen_backlog)
                        .with_context(|| format!("binding {what} listener on {addr}"))?;
                    Ok(Some((listener, store.clone())))
                }
                _ => Ok(None),
            }
        };
        let https = tls_listener(args.https_listen, "HTTPS")?;
        let rtmps = tls_listener(args.rtmps_listen, "RTMPS")?;
        let https_addr = match &https {
            Some((listener, _)) => Some(listener.local_addr()?),
            None => None,
        };
        let rtmps_addr = match &rtmps {
            Some((listener, _)) => Some(listener.local_addr()?),
            None => None,
        };

        let node_id = args.node_id();
        // The relay: an origin listens for edges; an edge only dials (ephemeral port).
        let relay = if options.relay_listen.is_some() || options.upstream.is_some() {
            let config = crate::relay_tls::relay_config(&args.relay, &node_id)?;
            let bind = options.relay_listen.unwrap_or_else(|| SocketAddr::from(([0, 0, 0, 0], 0)));
            let endpoint = RelayEndpoint::bind(bind, config)
                .with_context(|| format!("binding the QUIC relay on {bind} (UDP)"))?;
            Some(endpoint)
        } else {
            None
        };
        let relay_addr = match (&relay, options.relay_listen) {
            (Some(r), Some(_)) => Some(r.local_addr()?),
            _ => None,
        };
        let addresses = registry::advertised_addresses(
            &args.cluster,
            &registry::Listening {
                rtmp: rtmp_addr,
                http: http_addr,
                https: https_addr,
                rtmps: rtmps_addr,
                relay: relay_addr,
            },
        );
        let advertised = Advertised {
            addresses,
            capacity: Capacity {
                max_streams: limits.max_streams as u64,
                max_connections: max_connections as u64,
            },
            started_at_ms: registry::unix_ms_now(),
            transcoder: options.transcode.as_ref().is_some_and(|t| t.transcoder),
            playout: options.playout_dir.is_some(),
        };
        let options_role = options.role;
        let registry =
            registry::start_registry(&args.cluster, &node_id, options.role, advertised.clone())
                .await?;
        let mut tasks =
            vec![registry::spawn_event_task(registry.clone(), hub.clone(), metrics.clone())];
        tasks.extend(recording_tasks);
        // Placement and the relay's outgoing connections, when the node has a relay.
        let mut forwarding = None;
        if let Some(endpoint) = &relay {
            let (placement, ring_task) =
                crate::placement::Placement::start(&registry, args.cluster.standbys);
            tasks.push(ring_task);
            if let (Some(recordings), true) = (&recordings, args.cluster.is_clustered()) {
                // Only a stream's home records it (an empty ring: record rather than lose it).
                let p = placement.clone();
                recordings.follow_home(Box::new(move |key| {
                    p.home(key).is_none_or(|home| home == p.node_id)
                }));
            }
            if args.cluster.is_clustered() {
                // Likewise only the home writes a stream's catalog item.
                let p = placement.clone();
                catalog_home =
                    Some(Box::new(move |key| p.home(key).is_none_or(|home| home == p.node_id)));
            }
            if let (Some(transcoders), true) = (&transcoders, args.cluster.is_clustered()) {
                // Likewise only the home transcodes.
                // Only the home transcodes, or the stream's transcoder when origins are marked.
                let p = placement.clone();
                transcoders.follow_home(Box::new(move |key| {
                    p.transcoder(key).or_else(|| p.home(key)).is_none_or(|n| n == p.node_id)
                }));
                // Ladders set through the control plane (they win over the file's).
                let snapshot = registry.snapshot();
                transcoders.ladders_from(Box::new(move |app| {
                    let snap = snapshot.borrow();
                    let set = snap.ladders.get(app)?;
                    Some(crate::transcode::ladder::Ladder { renditions: set.renditions.clone() })
                }));
                // A stream whose home this node becomes (a failover) is transcoded here.
                let (t, h) = (transcoders.clone(), hub.clone());
                tasks.push(tokio::spawn(async move {
                    let mut tick = tokio::time::interval(Duration::from_secs(1));
                    loop {
                        tick.tick().await;
                        t.adopt(&h);
                    }
                }));
            }
            let peers = crate::peers::Peers::new(
                endpoint.clone(),
                Duration::from_secs(2),
                metrics.relay_peer_connections.clone(),
            );
            if relay_addr.is_some() {
                let fwd = args.cluster.is_clustered().then(|| {
                    crate::forward::Forwarding::new(
                        hub.clone(),
                        registry.clone(),
                        placement.clone(),
                        peers.clone(),
                    )
                });
                let source =
                    crate::relay_source::HubSource::new(hub.clone(), registry.clone(), fwd.clone());
                let sink = fwd.clone().map(|f| f as Arc<dyn sluice_relay::ForwardSink>);
                tasks.push(peers.serve(source, sink));
                if args.cluster.is_clustered() {
                    tasks.push(crate::peers::spawn_mesh(peers.clone(), placement.clone()));
                }
                if let (Some(transcoders), true) = (&transcoders, args.cluster.is_clustered()) {
                    transcoders.announce_with(Arc::new(crate::rendition_claims::ClusterAnnounce {
                        registry: registry.clone(),
                        forwarding: fwd.clone(),
                    }));
                }
                forwarding = fwd;
            }
            if let (Some(dir), true) = (&options.playout_dir, args.cluster.is_clustered()) {
                let (r, p, f) = (registry.clone(), placement.clone(), forwarding.clone());
                let schedule = crate::playout_cluster::RegistrySchedule::new(r, p, f, hub.clone());
                playout = Some(crate::playout::Playout::clustered(
                    dir.clone(),
                    hub.clone(),
                    recordings.clone(),
                    schedule,
                ));
            }
            if let Some(make) = options.upstream {
                hub.set_upstream(make(UpstreamContext {
                    hub: hub.clone(),
                    registry: registry.clone(),
                    placement,
                    peers,
                }));
            }
        }

        tasks.push(crate::load_report::spawn(
            registry.clone(),
            metrics.clone(),
            hub.clone(),
            &args.cluster,
            transcoders.as_ref().map_or(0, |t| t.load().1),
            playout.clone(),
        ));
        let drain = Arc::new(crate::drain::DrainGate::default());
        let orders = crate::orders::spawn(crate::orders::OrderContext {
            registry: registry.clone(),
            hub: hub.clone(),
            gate: drain.clone(),
            advertised: advertised.clone(),
            metrics: metrics.clone(),
            drain_timeout: args.limits.drain_timeout,
        });
        let (shutdown, shutdown_rx) = watch::channel(false);
        let mut rtmp_ctx = RtmpContext::new(
            hub.clone(),
            metrics.clone(),
            limits.clone(),
            slots.clone(),
            registry.clone(),
        );
        rtmp_ctx.forwarding = forwarding;
        rtmp_ctx.publish_auth = options.publish_auth.clone();
        let webhook = match &args.webhook_url {
            Some(url) => Some(Arc::new(
                crate::webhook::Webhook::new(
                    url,
                    args.webhook_timeout,
                    args.webhook_fail_open,
                    &node_id,
                    args.webhook_ca_file.as_deref(),
                )
                .context("setting up the webhook")?,
            )),
            None => None,
        };
        rtmp_ctx.webhook = webhook.clone();
        if let Some(store) = options.publish_auth.clone() {
            tasks.push(store.spawn_reload().context("installing the SIGHUP handler")?);
        }
        rtmp_ctx.publisher_reserve = args.admission.publisher_reserve;
        rtmp_ctx.quotas = quotas;
        rtmp_ctx.quota_grace = args.quota_grace;
        rtmp_ctx.drain = drain.clone();
        rtmp_ctx.admission = Arc::new(crate::admission::Gate::new(
            crate::metrics::Door::Rtmp,
            crate::admission::PerIpLimits {
                max_concurrent: args.admission.max_connections_per_ip,
                per_second: args.admission.new_connections_per_ip,
            },
            metrics.clone(),
        ));
        let play_auth = Arc::new(crate::config::play_auth(args)?);
        if play_auth.is_on() {
            info!(private_apps = ?args.play_private_apps, webhook_apps = ?args.play_webhook_apps, "play authorisation on: private streams need a signed URL, webhook apps the webhook's consent");
        }
        if let Some(path) = &args.play_token_secret_file {
            tasks.push(
                play_auth
                    .clone()
                    .spawn_secret_reload(path.clone())
                    .context("installing the SIGHUP handler")?,
            );
        }
        rtmp_ctx.play_auth = play_auth.clone();
        let rtmp_ctx = Arc::new(rtmp_ctx);
        let token = match &args.token_file {
            Some(path) => {
                let token = std::fs::read_to_string(path)
                    .with_context(|| format!("reading --token-file {}", path.display()))?;
                anyhow::ensure!(
                    !token.trim().is_empty(),
                    "--token-file {} is empty",
                    path.display()
                );
                Some(token)
            }
            None => None,
        };
        let admin =
            Arc::new(http::admin::AdminGuard::new(token.as_deref(), args.admin_allow.clone()));
        let http_ctx = Arc::new(HttpContext {
            hub: hub.clone(),
            metrics: metrics.clone(),
            registry: metrics.registry(),
            limits,
            hls,
            connection_slots: slots,
            publisher_reserve: args.admission.publisher_reserve,
            ready: true.into(),
            web_dir: args.web_dir.clone(),
            cluster: (options_role == Role::Edge).then(|| registry.snapshot()),
            drain,
            admin,
            play_auth,
            webhook,
            recordings: recordings.clone(),
            catalog: catalog.clone(),
            playout: playout.clone(),
            vod_upstream: options.vod_cache_size.filter(|_| args.cluster.is_clustered()).map(|n| {
                let snapshot = registry.snapshot();
                Arc::new(VodUpstream::new(snapshot, n as u64, metrics.clone()))
            }),
            transcoders: transcoders.clone(),
            renditions: args.cluster.is_clustered().then(|| {
                Arc::new(crate::rendition_claims::RegistryRenditions(registry.snapshot()))
                    as Arc<dyn crate::hls::renditions::ClusterRenditions>
            }),
        });
        if let Some(catalog) = &catalog {
            tasks.push(catalog.spawn(hub.clone(), recordings, catalog_home));
        }
        if let Some(playout) = &playout {
            tasks.push(playout.spawn());
        }
        tasks.push(spawn_release_ended(hub.clone(), args.limits.ended_stream_linger));
        tasks.push(tokio::spawn(rtmp::serve(
            rtmp_listener,
            rtmp_ctx.clone(),
            None,
            shutdown_rx.clone(),
        )));
        if let Some((listener, store)) = rtmps {
            let config = crate::tls::rtmps_config(&store).context("setting up RTMPS")?;
            tasks.push(tokio::spawn(rtmp::serve(
                listener,
                rtmp_ctx.clone(),
                Some(config),
                shutdown_rx.clone(),
            )));
        }
        if let Some(store) = &tls {
            tasks.push(
                crate::tls::spawn_reload_on_sighup(store.clone(), metrics.clone())
                    .context("installing the SIGHUP handler")?,
            );
        }
        let app = http::router(http_ctx.clone());
        let http_admission =
            Arc::new(http::serve::HttpAdmission::new(&args.admission, metrics.clone()));
        if let Some((listener, store)) = https {
            let acceptor = crate::tls::acceptor(&store).context("setting up HTTPS")?;
            tasks.push(tokio::spawn(http::serve::serve(
                listener,
                app.clone(),
                http_admission.clone(),
                Some(acceptor),
                shutdown_rx.clone(),
            )));
        }
        tasks.push(tokio::spawn(http::serve::serve(
            http_listener,
            app,
            http_admission,
            None,
            shutdown_rx,
        )));
        info!(rtmp = %rtmp_addr, http = %http_addr, https = ?https_addr, rtmps = ?rtmps_addr, relay = ?relay_addr, role = options.role.as_str(), max_connections, "listening");
        Ok(Node {
            rtmp_addr,
            http_addr,
            https_addr,
            rtmps_addr,
            relay_addr,
            hub,
            relay,
            shutdown,
            http_ctx,
            rtmp_ctx,
            registry,
            advertised,
            orders,
            tasks,
        })
    }

    /// Stop accepting, report not-ready, and wait up to `drain` for connections to finish.
    pub async fn shutdown(self, drain: Duration) {
        self.orders.abort();
        self.http_ctx.ready.store(false, Ordering::Relaxed);
        // Leave the ring first: other nodes move this node's streams away (make-before-break)
        // while its connections drain.
        let draining = sluice_cluster::types::NodeState::Draining;
        advertise_state(self.registry.as_ref(), &self.advertised, draining).await;
        if self.relay.is_some() {
            // Give relay peers a moment to move their subscriptions and forwards.
            tokio::time::sleep(RELAY_MOVE_GRACE.min(drain)).await;
        }
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
        if let Some(relay) = &self.relay {
            relay.close();
        }
        // Revoke the lease: this node's key and claims disappear at once.
        self.registry.shutdown().await;
    }
}

/// Once a second, free the memory of streams that ended `linger` ago (see
/// [`Hub::release_ended`]).
fn spawn_release_ended(hub: Hub, linger: Duration) -> tokio::task::JoinHandle<()> {
    tokio::spawn(async move {
        let mut tick = tokio::time::interval(Duration::from_secs(1));
        loop {
            tick.tick().await;
            hub.release_ended(tokio::time::Instant::now(), linger);
        }
    })
}

/// Run a node until SIGTERM/SIGINT, then drain.
pub async fn run(args: NodeSettings, options: NodeOptions) -> anyhow::Result<()> {
    let node = Node::start(&args, options).await?;
    // Machine-readable line for scripts and tests (logs go to stderr).
    let mut line = format!("listening rtmp={} http={}", node.rtmp_addr, node.http_addr);
    if let Some(relay) = node.relay_addr {
        line.push_str(&format!(" relay={relay}"));
    }
    if let Some(https) = node.https_addr {
        line.push_str(&format!(" https={https}"));
    }
    if let Some(rtmps) = node.rtmps_addr {
        line.push_str(&format!(" rtmps={rtmps}"));
    }
    println!("{line}");
    runtime::shutdown_signal().await;
    info!(drain_timeout = ?args.limits.drain_timeout, "shutting down: draining connections");
    node.shutdown(args.limits.drain_timeout).await;
    Ok(())
}

/// A listener with the configured backlog (tokio's `bind` asks the kernel for only 128: a
/// burst of viewers arriving together would wait on SYN retransmits).
fn listen(addr: SocketAddr, backlog: u32) -> std::io::Result<TcpListener> {
    let socket = if addr.is_ipv4() { TcpSocket::new_v4()? } else { TcpSocket::new_v6()? };
    socket.set_reuseaddr(true)?;
    socket.bind(addr)?;
    socket.listen(backlog)
}
