//! `sluice-control-plane`: serves the control plane's gRPC API (with `grpc.health.v1` and
//! server reflection v1 and v1alpha) and its HTTP port, learning the cluster from etcd.
//! `sluice-control-plane simulate` prints the assignment simulation table instead.
//!
//! The flags are a small clap struct of their own for now (same names and `SLUICE_*` variables
//! as the nodes' shared flags); the nodes' TOML config loading is not reused yet.

use anyhow::Context as _;
use clap::{Parser, Subcommand};
use sluice_cluster::{NodeId, Observer};
use sluice_control_plane::grpc::Grpc;
use sluice_control_plane::service::ControlPlane;
use sluice_control_plane::simulate::{compare, table, zipf_audience};
use sluice_control_plane::{BalanceFactor, EdgeLoad};
use sluice_proto::control::v1::control_plane_server::ControlPlaneServer;
use std::net::SocketAddr;
use std::sync::Arc;
use std::time::Duration;

#[derive(Debug, Parser)]
#[command(name = "sluice-control-plane", version, about)]
struct Args {
    /// etcd endpoints, comma-separated (e.g. `http://127.0.0.1:2379`).
    #[arg(long, env = "SLUICE_ETCD", value_delimiter = ',')]
    etcd: Vec<String>,
    /// Key prefix in etcd (the nodes' `--etcd-prefix`).
    #[arg(long, env = "SLUICE_ETCD_PREFIX", default_value = "/sluice")]
    etcd_prefix: String,
    /// gRPC listen address.
    #[arg(long, env = "SLUICE_GRPC_LISTEN", default_value = "127.0.0.1:50051")]
    grpc_listen: SocketAddr,
    /// HTTP listen address (`/play/APP/STREAM.flv|.m3u8|.json`, `/healthz`, `/readyz`,
    /// `/metrics`).
    #[arg(long, env = "SLUICE_HTTP_LISTEN", default_value = "127.0.0.1:8090")]
    http_listen: SocketAddr,
    /// How far above its capacity-weighted share of the mean load an edge may go (> 1).
    #[arg(long, env = "SLUICE_BALANCE_FACTOR", default_value = "1.25")]
    balance_factor: BalanceFactor,
    /// Utilisation of edge capacity (viewers and egress) the recommended edge count aims at
    /// (0 < t <= 1), in `GetCapacity` and `/metrics`.
    #[arg(long, env = "SLUICE_TARGET_UTILISATION", default_value_t = sluice_control_plane::view::DEFAULT_TARGET_UTILISATION, value_parser = parse_utilisation)]
    target_utilisation: f64,
    /// Log filter (`RUST_LOG` syntax).
    #[arg(long, env = "SLUICE_LOG", default_value = "info")]
    log: String,
    #[command(subcommand)]
    command: Option<Command>,
}

#[derive(Debug, Subcommand)]
enum Command {
    /// Compare bounded-load hashing, plain consistent hashing and least-loaded assignment on a
    /// Zipf-distributed audience; prints a Markdown table.
    Simulate {
        #[arg(long, default_value_t = 20)]
        edges: u32,
        /// Viewers each edge is configured for.
        #[arg(long, default_value_t = 20_000)]
        edge_capacity: u64,
        #[arg(long, default_value_t = 500)]
        streams: u32,
        #[arg(long, default_value_t = 100_000)]
        viewers: usize,
        /// Zipf exponent of stream popularity.
        #[arg(long, default_value_t = 1.0)]
        zipf: f64,
        #[arg(long, default_value_t = 42)]
        seed: u64,
    },
}

/// A utilisation in (0, 1].
#[derive(Debug, thiserror::Error)]
#[error("the target utilisation is a number in (0, 1], e.g. 0.6")]
struct InvalidUtilisation;

fn parse_utilisation(s: &str) -> Result<f64, InvalidUtilisation> {
    match s.trim().parse::<f64>() {
        Ok(t) if t > 0.0 && t <= 1.0 => Ok(t),
        _ => Err(InvalidUtilisation),
    }
}

fn main() -> anyhow::Result<()> {
    let args = Args::parse();
    if let Some(Command::Simulate { edges, edge_capacity, streams, viewers, zipf, seed }) =
        args.command
    {
        let edges = (0..edges)
            .map(|i| {
                Ok(EdgeLoad {
                    id: NodeId::new(&format!("edge-{i}"))?,
                    capacity: edge_capacity,
                    load: 0,
                })
            })
            .collect::<Result<Vec<_>, sluice_cluster::types::InvalidNodeId>>()?;
        let audience = zipf_audience(streams, viewers, zipf, seed);
        print!("{}", table(&compare(&edges, &audience, args.balance_factor)));
        return Ok(());
    }
    tracing_subscriber::fmt()
        .with_env_filter(tracing_subscriber::EnvFilter::new(&args.log))
        .with_writer(std::io::stderr)
        .init();
    tokio::runtime::Runtime::new()?.block_on(serve(args))
}

async fn serve(args: Args) -> anyhow::Result<()> {
    anyhow::ensure!(!args.etcd.is_empty(), "--etcd is required");
    let observer = Observer::etcd(&args.etcd, &args.etcd_prefix, Duration::from_secs(3))
        .await
        .with_context(|| format!("connecting to etcd at {}", args.etcd.join(",")))?;
    let control = Arc::new(
        ControlPlane::new(observer.snapshot(), args.balance_factor, args.target_utilisation)
            .with_orders(observer.orders()),
    );

    // Health: NOT_SERVING until the cache has its first listing, then SERVING.
    let (health, health_service) = tonic_health::server::health_reporter();
    health.set_not_serving::<ControlPlaneServer<Grpc>>().await;
    health.set_service_status("", tonic_health::ServingStatus::NotServing).await;
    let mut snapshot = observer.snapshot();
    let reporter = health.clone();
    tokio::spawn(async move {
        if snapshot.wait_for(|s| s.revision > 0).await.is_ok() {
            reporter.set_serving::<ControlPlaneServer<Grpc>>().await;
            reporter.set_service_status("", tonic_health::ServingStatus::Serving).await;
            tracing::info!("cluster cache loaded: serving");
        }
    });

    let reflection = || {
        tonic_reflection::server::Builder::configure()
            .register_encoded_file_descriptor_set(sluice_proto::control::FILE_DESCRIPTOR_SET)
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
        etcd = %args.etcd.join(","),
        prefix = %args.etcd_prefix,
        "listening"
    );
    let grpc = tonic::transport::Server::builder()
        .add_service(health_service)
        .add_service(reflection_v1)
        .add_service(reflection_v1alpha)
        .add_service(ControlPlaneServer::new(Grpc(control.clone())))
        .serve_with_incoming_shutdown(tokio_stream_incoming(grpc_listener), shutdown_signal());
    let http = axum::serve(http_listener, sluice_control_plane::http::router(control))
        .with_graceful_shutdown(shutdown_signal());
    let (g, h) = tokio::join!(grpc, http);
    g.context("gRPC server")?;
    h.context("HTTP server")?;
    drop(observer);
    Ok(())
}

/// Accepted TCP connections as the stream tonic serves.
fn tokio_stream_incoming(
    listener: tokio::net::TcpListener,
) -> tonic::transport::server::TcpIncoming {
    tonic::transport::server::TcpIncoming::from(listener)
}

async fn shutdown_signal() {
    let mut term = tokio::signal::unix::signal(tokio::signal::unix::SignalKind::terminate()).ok();
    tokio::select! {
        _ = tokio::signal::ctrl_c() => {}
        () = async { match term.as_mut() { Some(t) => { t.recv().await; } None => std::future::pending().await } } => {}
    }
}
