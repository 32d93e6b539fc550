//! Process-level set-up shared by every binary: logging, the file-descriptor limit, signals.

/// The tracing set-up every binary shares (the control plane's too): text or JSON logs to
/// stderr, spans over OTLP/gRPC with `--otlp-endpoint`.
pub use sluice_cluster::telemetry::{init_tracing, TelemetryError, TracingGuard};

/// Raise RLIMIT_NOFILE's soft limit to the hard limit; returns the resulting soft limit.
pub fn raise_fd_limit() -> u64 {
    use rustix::process::{getrlimit, setrlimit, Resource, Rlimit};
    let lim = getrlimit(Resource::Nofile);
    // `None` is RLIM_INFINITY.
    let current = lim.current.unwrap_or(u64::MAX);
    if lim.current < lim.maximum || (lim.maximum.is_none() && lim.current.is_some()) {
        let raised = Rlimit { current: lim.maximum, maximum: lim.maximum };
        if setrlimit(Resource::Nofile, raised).is_ok() {
            return lim.maximum.unwrap_or(u64::MAX);
        }
    }
    current
}

/// File descriptors kept free for listeners, logs, outgoing connections.
pub const FD_RESERVE: u64 = 256;

/// `wanted` capped below the process's file-descriptor limit.
pub fn cap_connections(wanted: usize, fd_limit: u64) -> usize {
    let cap = fd_limit.saturating_sub(FD_RESERVE).max(16);
    (wanted as u64).min(cap) as usize
}

/// Resolves on SIGTERM or SIGINT.
pub async fn shutdown_signal() {
    use tokio::signal::unix::{signal, SignalKind};
    let mut term = signal(SignalKind::terminate()).expect("installing a SIGTERM handler");
    let mut int = signal(SignalKind::interrupt()).expect("installing a SIGINT handler");
    tokio::select! {
        _ = term.recv() => {}
        _ = int.recv() => {}
    }
}

/// Runs a node binary's `main` future on a multi-threaded runtime sized by `--worker-threads`,
/// with tracing installed for `service` (spans flushed when the future returns).
pub fn run_main<F>(
    node: &crate::settings::NodeSettings,
    service: &str,
    main: F,
) -> anyhow::Result<()>
where
    F: std::future::Future<Output = anyhow::Result<()>>,
{
    let mut builder = tokio::runtime::Builder::new_multi_thread();
    if node.worker_threads > 0 {
        builder.worker_threads(node.worker_threads);
    }
    let runtime = builder.enable_all().build()?;
    // One TLS provider for every client the node makes (webhooks, an S3 store, OTLP): ring,
    // as the listeners use.
    let _ = rustls::crypto::ring::default_provider().install_default();
    runtime.block_on(async {
        let _tracing =
            init_tracing(&node.log, node.log_format, node.otlp_endpoint.as_deref(), service)?;
        main.await
    })
}
