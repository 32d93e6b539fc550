//! A minimal OTLP/gRPC trace collector for tests: a tonic server implementing
//! `TraceService/Export` that records every export request, and a flat view of the spans.

use std::net::SocketAddr;
use std::sync::{Arc, Mutex};

use opentelemetry_proto::tonic::collector::trace::v1::trace_service_server::{
    TraceService, TraceServiceServer,
};
use opentelemetry_proto::tonic::collector::trace::v1::{
    ExportTraceServiceRequest, ExportTraceServiceResponse,
};
use opentelemetry_proto::tonic::common::v1::{any_value, KeyValue};

/// Records every export request.
#[derive(Clone, Default)]
pub struct Collector {
    pub requests: Arc<Mutex<Vec<ExportTraceServiceRequest>>>,
}

#[tonic::async_trait]
impl TraceService for Collector {
    async fn export(
        &self,
        request: tonic::Request<ExportTraceServiceRequest>,
    ) -> Result<tonic::Response<ExportTraceServiceResponse>, tonic::Status> {
        crate::lock(&self.requests).push(request.into_inner());
        Ok(tonic::Response::new(ExportTraceServiceResponse { partial_success: None }))
    }
}

impl Collector {
    /// Serve a collector on 127.0.0.1 (port 0) on `rt`; returns it and its address.
    pub fn start(rt: &tokio::runtime::Runtime) -> (Collector, SocketAddr) {
        let collector = Collector::default();
        let listener =
            rt.block_on(tokio::net::TcpListener::bind("127.0.0.1:0")).expect("bind collector");
        let addr = listener.local_addr().expect("collector address");
        let service = TraceServiceServer::new(collector.clone());
        rt.spawn(async move {
            let incoming = tonic::transport::server::TcpIncoming::from(listener);
            if let Err(e) = tonic::transport::Server::builder()
                .add_service(service)
                .serve_with_incoming(incoming)
                .await
            {
                eprintln!("collector stopped: {e}");
            }
        });
        (collector, addr)
    }

    /// Every span received so far.
    pub fn spans(&self) -> Vec<SeenSpan> {
        seen_spans(&crate::lock(&self.requests))
    }
}

/// The string value of attribute `key`, if present and a string.
pub fn string_attr<'a>(attrs: &'a [KeyValue], key: &str) -> Option<&'a str> {
    attrs.iter().find(|kv| kv.key == key).and_then(string_value)
}

/// The value of `kv`, if a string.
fn string_value(kv: &KeyValue) -> Option<&str> {
    match kv.value.as_ref()?.value.as_ref()? {
        any_value::Value::StringValue(s) => Some(s.as_str()),
        _ => None,
    }
}

/// One exported span, flattened with its resource's service name.
#[derive(Debug, Clone)]
pub struct SeenSpan {
    pub service: Option<String>,
    pub name: String,
    pub stream: Option<String>,
    pub role: Option<String>,
    pub trace_id: Vec<u8>,
    pub span_id: Vec<u8>,
    pub parent_span_id: Vec<u8>,
    /// Every string attribute, e.g. a gRPC call's `method` and `peer`.
    pub attributes: Vec<(String, String)>,
}

impl SeenSpan {
    /// The string attribute `key`, if the span has one.
    pub fn attr(&self, key: &str) -> Option<&str> {
        self.attributes.iter().find(|(k, _)| k == key).map(|(_, v)| v.as_str())
    }
}

pub fn seen_spans(requests: &[ExportTraceServiceRequest]) -> Vec<SeenSpan> {
    let mut out = Vec::new();
    for req in requests {
        for rs in &req.resource_spans {
            let service = rs
                .resource
                .as_ref()
                .and_then(|r| string_attr(&r.attributes, "service.name"))
                .map(str::to_string);
            for ss in &rs.scope_spans {
                for span in &ss.spans {
                    out.push(SeenSpan {
                        service: service.clone(),
                        name: span.name.clone(),
                        stream: string_attr(&span.attributes, "stream").map(str::to_string),
                        role: string_attr(&span.attributes, "role").map(str::to_string),
                        trace_id: span.trace_id.clone(),
                        span_id: span.span_id.clone(),
                        parent_span_id: span.parent_span_id.clone(),
                        attributes: span
                            .attributes
                            .iter()
                            .filter_map(|kv| Some((kv.key.clone(), string_value(kv)?.to_string())))
                            .collect(),
                    });
                }
            }
        }
    }
    out
}
