//! Process-level set-up shared by every binary: logging, the file-descriptor limit, signals.

use tracing_subscriber::EnvFilter;

/// Keeps the OpenTelemetry exporter alive; dropping it flushes buffered spans.
pub struct TracingGuard {
    provider: Option<opentelemetry_sdk::trace::SdkTracerProvider>,
}

impl Drop for TracingGuard {
    fn drop(&mut self) {
        if let Some(provider) = self.provider.take() {
            let _ = provider.shutdown();
        }
    }
}

/// Install the global tracing subscriber: text or JSON logs to stderr, and, when
/// `otlp_endpoint` is set (e.g. `http://127.0.0.1:4317`), spans exported over OTLP/gRPC.
/// Must be called inside a tokio runtime when `otlp_endpoint` is set.
pub fn init_tracing(
    filter: &str,
    format: crate::settings::LogFormat,
    otlp_endpoint: Option<&str>,
    service: &str,
) -> anyhow::Result<TracingGuard> {
    use opentelemetry::trace::TracerProvider as _;
    use opentelemetry_otlp::WithExportConfig as _;
    use tracing_subscriber::layer::SubscriberExt as _;
    use tracing_subscriber::util::SubscriberInitExt as _;
    use tracing_subscriber::Layer as _;

    let filter = EnvFilter::try_new(filter)
        .map_err(|e| anyhow::anyhow!("invalid --log filter '{filter}': {e}"))?;
    let ansi = std::io::IsTerminal::is_terminal(&std::io::stderr());
    let fmt = tracing_subscriber::fmt::layer().with_writer(std::io::stderr).with_ansi(ansi);
    let fmt =
        if format == crate::settings::LogFormat::Json { fmt.json().boxed() } else { fmt.boxed() };

    let mut provider = None;
    let otel = match otlp_endpoint {
        Some(endpoint) => {
            let exporter = opentelemetry_otlp::SpanExporter::builder()
                .with_tonic()
                .with_endpoint(endpoint)
                .build()
                .map_err(|e| anyhow::anyhow!("building the OTLP exporter for {endpoint}: {e}"))?;
            let resource = opentelemetry_sdk::Resource::builder()
                .with_service_name(service.to_string())
                .build();
            let p = opentelemetry_sdk::trace::SdkTracerProvider::builder()
                .with_batch_exporter(exporter)
                .with_resource(resource)
                .build();
            let tracer = p.tracer("sluice");
            provider = Some(p);
            Some(tracing_opentelemetry::layer().with_tracer(tracer))
        }
        None => None,
    };
    let _ = tracing_subscriber::registry().with(filter).with(fmt).with(otel).try_init();
    Ok(TracingGuard { provider })
}

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
    runtime.block_on(async {
        let _tracing =
            init_tracing(&node.log, node.log_format, node.otlp_endpoint.as_deref(), service)?;
        main.await
    })
}
