//! W3C trace context across nodes: the relay carries a `traceparent` string with each
//! subscription and forward, so a stream's spans on the ingest origin, its home and the edges
//! join one trace when spans are exported (`--otlp-endpoint`). Without an exporter the
//! context is empty and nothing is carried.

use std::collections::HashMap;

use opentelemetry::propagation::TextMapPropagator;
use opentelemetry_sdk::propagation::TraceContextPropagator;
use tracing_opentelemetry::OpenTelemetrySpanExt;

/// The `traceparent` of the current span, or an empty string when it has no exported trace.
pub fn current_traceparent() -> String {
    let cx = tracing::Span::current().context();
    let mut carrier: HashMap<String, String> = HashMap::new();
    TraceContextPropagator::new().inject_context(&cx, &mut carrier);
    carrier.remove("traceparent").unwrap_or_default()
}

/// Make `span` a child of the remote span named by `traceparent` (ignored when empty or
/// malformed: it is a peer's value).
pub fn adopt_traceparent(span: &tracing::Span, traceparent: &str) {
    if traceparent.is_empty() || traceparent.len() > 128 {
        return;
    }
    let carrier: HashMap<String, String> =
        [("traceparent".to_string(), traceparent.to_string())].into();
    let cx = TraceContextPropagator::new().extract(&carrier);
    let _ = span.set_parent(cx);
}
