//! `--otlp-endpoint`: the origin exports its tracing spans over OTLP/gRPC. A minimal trace
//! collector (a tonic server implementing `TraceService/Export`) runs inside the test and
//! records every export request it receives.

use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use opentelemetry_proto::tonic::collector::trace::v1::trace_service_server::{
    TraceService, TraceServiceServer,
};
use opentelemetry_proto::tonic::collector::trace::v1::{
    ExportTraceServiceRequest, ExportTraceServiceResponse,
};
use opentelemetry_proto::tonic::common::v1::{any_value, KeyValue};
use sluice_tests::process::wait_for;
use sluice_tests::{h264_aac, secs, Origin, Publisher};

/// Records every export request.
#[derive(Clone, Default)]
struct Collector {
    requests: Arc<Mutex<Vec<ExportTraceServiceRequest>>>,
}

#[tonic::async_trait]
impl TraceService for Collector {
    async fn export(
        &self,
        request: tonic::Request<ExportTraceServiceRequest>,
    ) -> Result<tonic::Response<ExportTraceServiceResponse>, tonic::Status> {
        self.requests.lock().unwrap().push(request.into_inner());
        Ok(tonic::Response::new(ExportTraceServiceResponse {
            partial_success: None,
        }))
    }
}

/// The string value of attribute `key`, if present and a string.
fn string_attr<'a>(attrs: &'a [KeyValue], key: &str) -> Option<&'a str> {
    attrs.iter().find(|kv| kv.key == key).and_then(|kv| {
        match kv.value.as_ref()?.value.as_ref()? {
            any_value::Value::StringValue(s) => Some(s.as_str()),
            _ => None,
        }
    })
}

/// One exported span, flattened with its resource's service name.
#[derive(Debug, Clone)]
struct SeenSpan {
    service: Option<String>,
    name: String,
    stream: Option<String>,
    role: Option<String>,
}

fn seen_spans(requests: &[ExportTraceServiceRequest]) -> Vec<SeenSpan> {
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
                    });
                }
            }
        }
    }
    out
}

/// A publish produces an `rtmp` span with `stream` and `role` attributes, exported to the
/// collector (at the latest when the origin flushes on SIGTERM) with service.name
/// `sluice-origin`.
#[test]
fn origin_exports_rtmp_spans_over_otlp_grpc() {
    let fixture = h264_aac();
    let rt = tokio::runtime::Builder::new_multi_thread()
        .worker_threads(1)
        .enable_all()
        .build()
        .unwrap();
    let collector = Collector::default();
    let listener = rt
        .block_on(tokio::net::TcpListener::bind("127.0.0.1:0"))
        .expect("bind collector");
    let addr = listener.local_addr().unwrap();
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

    let endpoint = format!("http://{addr}");
    let mut origin = Origin::start(&["--otlp-endpoint", &endpoint]);
    let url = origin.rtmp_url("live", "traced");
    let mut publisher = Publisher::start(&url, &fixture.path);
    wait_for(secs(10), || origin.stream_info("live", "traced")).expect("publisher is live");
    std::thread::sleep(Duration::from_secs(1));
    publisher.stop();
    wait_for(secs(10), || {
        origin.stream_info("live", "traced").is_none().then_some(())
    })
    .expect("stream gone after the publisher stopped");

    let before_shutdown = seen_spans(&collector.requests.lock().unwrap()).len();
    let status = origin.terminate();
    eprintln!("origin exit status {status:?}; spans exported before SIGTERM: {before_shutdown}");
    assert!(
        status.is_some_and(|s| s.success()),
        "origin did not exit cleanly on SIGTERM: {status:?}"
    );

    let matches = |s: &SeenSpan| {
        s.name == "rtmp"
            && s.stream.as_deref() == Some("live/traced")
            && s.role.as_deref() == Some("publish")
    };
    // The exporter flushes at shutdown; give the collector a moment to finish the last request.
    let deadline = Instant::now() + secs(5);
    while Instant::now() < deadline
        && !seen_spans(&collector.requests.lock().unwrap())
            .iter()
            .any(matches)
    {
        std::thread::sleep(Duration::from_millis(100));
    }
    let spans = seen_spans(&collector.requests.lock().unwrap());
    let requests = collector.requests.lock().unwrap().len();
    eprintln!(
        "collector received {requests} export requests, {} spans",
        spans.len()
    );
    let publish = spans.iter().find(|s| matches(s)).unwrap_or_else(|| {
        panic!(
            "no `rtmp` span with stream=live/traced role=publish among {} exported spans: {:?}",
            spans.len(),
            spans.iter().take(20).collect::<Vec<_>>()
        )
    });
    assert_eq!(
        publish.service.as_deref(),
        Some("sluice-origin"),
        "resource service.name of {publish:?}"
    );
    rt.shutdown_timeout(Duration::from_secs(1));
}
