//! Serving one replica: the etcd watch cache, the gRPC port (ControlPlane, KEDA's external
//! scaler, `grpc.health.v1`, server reflection v1 and v1alpha) with a span per call, behind
//! the bearer-token layer, and the HTTP port behind the same token for `/api/...`, each over
//! TLS when configured.

use crate::auth::{http_guard, Auth, GrpcAuthLayer};
use crate::config::Args;
use crate::grpc::Grpc;
use crate::grpc_trace::GrpcTraceLayer;
use crate::keda::Scaler;
use crate::origin_api::OriginApi;
use crate::recordings::Recordings;
use crate::service::ControlPlane;
use crate::tls::{serve_https, CertStore};
use anyhow::Context as _;
use sluice_cluster::Observer;
use sluice_proto::control::v1::control_plane_server::ControlPlaneServer;
use sluice_proto::externalscaler::external_scaler_server::ExternalScalerServer;
use std::sync::Arc;
use std::time::Duration;

/// Run the replica until SIGINT or SIGTERM.
pub async fn serve(args: Args) -> anyhow::Result<()> {
    anyhow::ensure!(!args.etcd.is_empty(), "--etcd is required");
    let token = args.token().context("loading the bearer token")?;
    let play_signer = args.play_signer().map_err(anyhow::Error::msg)?;
    if let (Some(signer), Some(path)) = (&play_signer, &args.play_token_secret_file) {
        spawn_secret_reload(signer.clone(), path.clone())
            .context("installing the SIGHUP handler")?;
    }
    if token.is_none() {
        tracing::warn!(
            "no --token-file or SLUICE_TOKEN: management and listing calls are open to anyone \
             who can reach the gRPC and HTTP ports"
        );
    }
    let tls = match args.tls() {
        Some(files) => {
            // tonic builds its rustls server configuration with the process's default
            // provider: make it ring, whatever else the dependency tree enables.
            let _ = rustls::crypto::ring::default_provider().install_default();
            let store = CertStore::load(files).context("loading the TLS certificate")?;
            crate::tls::spawn_reload_on_sighup(store.clone())
                .context("installing the SIGHUP handler")?;
            Some(store)
        }
        None => None,
    };
    let etcd_tls = sluice_cluster::EtcdTls {
        ca_file: args.etcd_ca_file.clone(),
        cert_file: args.etcd_cert_file.clone(),
        key_file: args.etcd_key_file.clone(),
    };
    let etcd_auth = match (&args.etcd_user, &args.etcd_password_file) {
        (Some(user), Some(file)) => {
            Some(sluice_cluster::EtcdAuth { user: user.clone(), password_file: file.clone() })
        }
        _ => None,
    };
    let observer = Observer::etcd(
        &args.etcd,
        &args.etcd_prefix,
        Duration::from_secs(3),
        &etcd_tls,
        etcd_auth.as_ref(),
    )
    .await
    .with_context(|| format!("connecting to etcd at {}", args.etcd.join(",")))?;
    let control = Arc::new(
        ControlPlane::new(observer.snapshot(), args.balance_factor, args.target_utilisation)
            .with_orders(observer.orders())
            .with_play_signer(play_signer),
    );
    let http_policy = crate::auth::HttpPolicy {
        allow: args.admin_allow.clone(),
        private_metrics: args.metrics_private,
    };
    // The origins' recordings API takes the same shared token (kept in memory only).
    let origin_token = token.as_ref().and_then(crate::auth::Token::authorization);
    if token.is_some() && origin_token.is_none() {
        tracing::warn!(
            "the token holds characters an HTTP header cannot carry: the recordings calls go \
             to the origins without it"
        );
    }
    let recordings =
        Arc::new(Recordings::new(OriginApi::new(origin_token), control.counters().clone()));
    let catalog = match &args.catalog {
        Some(url) => {
            let catalog = sluice_catalog::Catalog::open(url, Duration::from_secs(5))
                .await
                .context("opening the catalog (--catalog)")?;
            tracing::info!(backend = ?catalog.backend(), "catalog open");
            Some(catalog)
        }
        None => None,
    };
    let auth = Auth::with_http(token, control.counters().clone(), http_policy);
    // On a signal, close first: endless streams end, then both servers drain and stop.
    let closer = control.clone();
    tokio::spawn(async move {
        shutdown_signal().await;
        tracing::info!("stopping");
        closer.close();
    });

    // Health: SERVING while the cache is loaded and follows etcd; NOT_SERVING before the first
    // listing and while etcd is out of reach (answers would come from a stale cache: load
    // balancers and players should prefer another replica).
    let (health, health_service) = tonic_health::server::health_reporter();
    health.set_not_serving::<ControlPlaneServer<Grpc>>().await;
    health.set_service_status("", tonic_health::ServingStatus::NotServing).await;
    tokio::spawn(report_health(observer.snapshot(), health.clone()));

    let reflection = || {
        tonic_reflection::server::Builder::configure()
            .register_encoded_file_descriptor_set(sluice_proto::control::FILE_DESCRIPTOR_SET)
            .register_encoded_file_descriptor_set(sluice_proto::externalscaler::FILE_DESCRIPTOR_SET)
            .register_encoded_file_descriptor_set(tonic_health::pb::FILE_DESCRIPTOR_SET)
    };
    let reflection_v1 = reflection().build_v1()?;
    let reflection_v1alpha = reflection().build_v1alpha()?;

    let grpc_listener = tokio::net::TcpListener::bind(args.grpc_listen)
        .await
        .with_context(|| format!("binding gRPC on {}", args.grpc_listen))?;
    let http_listener = tokio::net::TcpListener::bind(args.http_listen)
        .await
        .with_context(|| format!("binding HTTP on {}", args.http_listen))?;
    tracing::info!(
        grpc = %grpc_listener.local_addr()?,
        http = %http_listener.local_addr()?,
        tls = tls.is_some(),
        token = auth.enabled(),
        etcd = %args.etcd.join(","),
        prefix = %args.etcd_prefix,
        "listening"
    );
    let services = tonic::transport::Server::builder()
        .layer(GrpcTraceLayer)
        .layer(GrpcAuthLayer(auth.clone()))
        .add_service(health_service)
        .add_service(reflection_v1)
        .add_service(reflection_v1alpha)
        .add_service(ControlPlaneServer::new(Grpc {
            control: control.clone(),
            recordings,
            catalog,
        }))
        .add_service(ExternalScalerServer::new(Scaler(control.clone())));
    let grpc: std::pin::Pin<Box<dyn std::future::Future<Output = _> + Send>> = match &tls {
        Some(store) => Box::pin(services.serve_with_incoming_shutdown(
            crate::tls::grpc_incoming(grpc_listener, crate::tls::acceptor(store)?),
            closed(control.closing()),
        )),
        None => Box::pin(services.serve_with_incoming_shutdown(
            tonic::transport::server::TcpIncoming::from(grpc_listener),
            closed(control.closing()),
        )),
    };
    let router = crate::http::router(control.clone())
        .layer(axum::middleware::from_fn_with_state(auth, http_guard));
    let http = async {
        match &tls {
            Some(tls) => {
                let acceptor = crate::tls::acceptor(tls)?;
                serve_https(http_listener, acceptor, router, closed(control.closing())).await?;
            }
            None => {
                let service = router.into_make_service_with_connect_info::<std::net::SocketAddr>();
                axum::serve(http_listener, service)
                    .with_graceful_shutdown(closed(control.closing()))
                    .await?;
            }
        }
        anyhow::Ok(())
    };
    let servers = async {
        let (g, h) = tokio::join!(grpc, http);
        g.context("gRPC server")?;
        h.context("HTTP server")
    };
    // A client that never lets its connection go (no GOAWAY answer, a request left open) must
    // not hold the replica up: after the drain timeout it exits anyway.
    let drain_timeout = args.drain_timeout;
    let deadline = async {
        closed(control.closing()).await;
        tokio::time::sleep(drain_timeout.into()).await;
    };
    tokio::select! {
        served = servers => served?,
        () = deadline => {
            tracing::warn!(timeout = %drain_timeout, "connections still open at the drain timeout: exiting");
        }
    }
    drop(observer);
    Ok(())
}

/// Follows the cache into the health service: SERVING exactly while [`ControlPlane::is_ready`]
/// would say so.
async fn report_health(
    mut snapshot: tokio::sync::watch::Receiver<sluice_cluster::types::Snapshot>,
    reporter: tonic_health::server::HealthReporter,
) {
    let mut serving = false;
    loop {
        let now = {
            let s = snapshot.borrow_and_update();
            crate::service::cache_is_ready(&s)
        };
        if now != serving {
            serving = now;
            if serving {
                reporter.set_serving::<ControlPlaneServer<Grpc>>().await;
                reporter.set_service_status("", tonic_health::ServingStatus::Serving).await;
                tracing::info!("cluster cache loaded and following etcd: serving");
            } else {
                reporter.set_not_serving::<ControlPlaneServer<Grpc>>().await;
                reporter.set_service_status("", tonic_health::ServingStatus::NotServing).await;
                tracing::warn!("etcd out of reach: not serving until the cache follows it again");
            }
        }
        if snapshot.changed().await.is_err() {
            return;
        }
    }
}

/// Reread the play token secret on every SIGHUP (a rotation, with the nodes'); a file that does
/// not load keeps the current secret.
fn spawn_secret_reload(
    signer: crate::play_sign::PlaySigner,
    path: std::path::PathBuf,
) -> std::io::Result<tokio::task::JoinHandle<()>> {
    use tokio::signal::unix::{signal, SignalKind};
    let mut hangup = signal(SignalKind::hangup())?;
    Ok(tokio::spawn(async move {
        while hangup.recv().await.is_some() {
            match sluice_cluster::signed_token::read_secret(&path) {
                Ok(secret) => {
                    signer.replace_secret(secret);
                    tracing::info!("SIGHUP: play token secret reloaded");
                }
                Err(e) => {
                    tracing::warn!(error = %e, "SIGHUP: play token secret NOT reloaded; the current one stays");
                }
            }
        }
    }))
}

/// SIGINT or SIGTERM.
async fn shutdown_signal() {
    let mut term = tokio::signal::unix::signal(tokio::signal::unix::SignalKind::terminate()).ok();
    tokio::select! {
        _ = tokio::signal::ctrl_c() => {}
        () = async { match term.as_mut() { Some(t) => { t.recv().await; } None => std::future::pending().await } } => {}
    }
}

/// Resolves once the replica is closing (see [`ControlPlane::close`]).
async fn closed(mut closing: tokio::sync::watch::Receiver<bool>) {
    let _ = closing.wait_for(|c| *c).await;
}
