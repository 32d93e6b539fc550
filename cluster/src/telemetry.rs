//! The one tracing set-up of every Sluice binary (origin, edge, control plane): logs to stderr
//! as text or JSON (`--log`, `--log-format`) and, with `--otlp-endpoint`, spans exported over
//! OTLP/gRPC. The binaries read the flags; this module only installs what they name.

use tracing_subscriber::EnvFilter;

/// Log line format (`--log-format`).
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default, serde::Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum LogFormat {
    #[default]
    Text,
    Json,
}

/// A log format other than `text` or `json`.
#[derive(Debug, Clone, thiserror::Error)]
#[error("'{0}' is not a log format (text, json)")]
pub struct UnknownLogFormat(String);

impl std::str::FromStr for LogFormat {
    type Err = UnknownLogFormat;
    fn from_str(s: &str) -> Result<Self, Self::Err> {
        match s {
            "text" => Ok(LogFormat::Text),
            "json" => Ok(LogFormat::Json),
            _ => Err(UnknownLogFormat(s.to_string())),
        }
    }
}

impl std::fmt::Display for LogFormat {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str(match self {
            LogFormat::Text => "text",
            LogFormat::Json => "json",
        })
    }
}

/// Why tracing could not be installed.
#[derive(Debug, thiserror::Error)]
pub enum TelemetryError {
    #[error("invalid --log filter '{filter}': {reason}")]
    Filter { filter: String, reason: String },
    #[error("building the OTLP exporter for {endpoint}: {reason}")]
    Exporter { endpoint: String, reason: String },
}

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

/// Install the global tracing subscriber: text or JSON logs to stderr (ANSI colour only when
/// stderr is a terminal), and, when `otlp_endpoint` is set (e.g. `http://127.0.0.1:4317`),
/// spans exported over OTLP/gRPC with `service` as the resource's `service.name`.
/// Must be called inside a tokio runtime when `otlp_endpoint` is set; keep the guard until
/// the process ends.
pub fn init_tracing(
    filter: &str,
    format: LogFormat,
    otlp_endpoint: Option<&str>,
    service: &str,
) -> Result<TracingGuard, TelemetryError> {
    use opentelemetry::trace::TracerProvider as _;
    use opentelemetry_otlp::WithExportConfig as _;
    use tracing_subscriber::layer::SubscriberExt as _;
    use tracing_subscriber::util::SubscriberInitExt as _;
    use tracing_subscriber::Layer as _;

    let filter = EnvFilter::try_new(filter).map_err(|e| TelemetryError::Filter {
        filter: filter.to_string(),
        reason: e.to_string(),
    })?;
    let ansi = std::io::IsTerminal::is_terminal(&std::io::stderr());
    let fmt = tracing_subscriber::fmt::layer().with_writer(std::io::stderr).with_ansi(ansi);
    let fmt = if format == LogFormat::Json { fmt.json().boxed() } else { fmt.boxed() };

    let mut provider = None;
    let otel = match otlp_endpoint {
        Some(endpoint) => {
            let exporter = opentelemetry_otlp::SpanExporter::builder()
                .with_tonic()
                .with_endpoint(endpoint)
                .build()
                .map_err(|e| TelemetryError::Exporter {
                    endpoint: endpoint.to_string(),
                    reason: e.to_string(),
                })?;
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

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn log_formats_round_trip_and_bad_filters_are_errors() {
        for f in [LogFormat::Text, LogFormat::Json] {
            assert_eq!(f.to_string().parse::<LogFormat>().unwrap(), f);
        }
        assert!("yaml".parse::<LogFormat>().is_err());
        assert_eq!(LogFormat::default(), LogFormat::Text);
        let err = init_tracing("info,[", LogFormat::Text, None, "test").err().unwrap();
        assert!(err.to_string().contains("invalid --log filter 'info,['"), "{err}");
    }
}
