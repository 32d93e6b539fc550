//! A span per gRPC call: the outermost tower layer of the gRPC port, so the token check, the
//! routing and the handler all run in it. Its fields are the method (`method`, the request
//! path `/package.Service/Method`) and the caller's address (`peer`, over TCP or TLS); with
//! `--otlp-endpoint` the span is exported under the method's name (`otel.name`) as a server
//! span. It lasts until the response's headers are ready (the whole call for a unary method;
//! a `Watch` stream's events are sent by a task of their own).

use axum::http;
use std::net::SocketAddr;
use std::task::{Context, Poll};
use tonic::transport::server::{TcpConnectInfo, TlsConnectInfo};
use tracing::Instrument as _;

/// The layer; put it first on the server (the outermost).
#[derive(Debug, Clone, Copy, Default)]
pub struct GrpcTraceLayer;

impl<S> tower::Layer<S> for GrpcTraceLayer {
    type Service = GrpcTrace<S>;

    fn layer(&self, inner: S) -> GrpcTrace<S> {
        GrpcTrace { inner }
    }
}

/// [`GrpcTraceLayer`]'s service: runs the call in its span.
#[derive(Debug, Clone)]
pub struct GrpcTrace<S> {
    inner: S,
}

impl<S, B> tower::Service<http::Request<B>> for GrpcTrace<S>
where
    S: tower::Service<http::Request<B>>,
{
    type Response = S::Response;
    type Error = S::Error;
    type Future = tracing::instrument::Instrumented<S::Future>;

    fn poll_ready(&mut self, cx: &mut Context<'_>) -> Poll<Result<(), S::Error>> {
        self.inner.poll_ready(cx)
    }

    fn call(&mut self, req: http::Request<B>) -> Self::Future {
        let span = span_of(&req);
        // Layers below may answer in `call` itself (the token check): in the span too.
        let future = span.in_scope(|| self.inner.call(req));
        future.instrument(span)
    }
}

/// The services this server has: a call to anything else is named `grpc` (the path is the
/// caller's text, and span names must not be theirs to multiply).
const SERVICES: &[&str] = &[
    "/sluice.control.v1.ControlPlane/",
    "/grpc.health.v1.Health/",
    "/grpc.reflection.v1.ServerReflection/",
    "/grpc.reflection.v1alpha.ServerReflection/",
    "/externalscaler.ExternalScaler/",
];

/// The longest method name a span is named after.
const MAX_METHOD: usize = 64;

/// The span of the call `request`.
pub fn span_of<B>(request: &http::Request<B>) -> tracing::Span {
    let path = request.uri().path();
    let method = if path.len() <= 2 * MAX_METHOD { path } else { "(too long)" };
    tracing::info_span!(
        "grpc",
        method = %method,
        peer = peer(request).map(tracing::field::display),
        otel.name = span_name(path),
        otel.kind = "server",
    )
}

/// `Service/Method` for a method of a service this server has, else `grpc`.
fn span_name(path: &str) -> &str {
    let known = SERVICES.iter().any(|service| {
        path.strip_prefix(service).is_some_and(|m| {
            !m.is_empty() && m.len() <= MAX_METHOD && m.bytes().all(|b| b.is_ascii_alphanumeric())
        })
    });
    if known {
        path.trim_start_matches('/')
    } else {
        "grpc"
    }
}

/// The caller's address, from the connection information tonic puts in every request.
fn peer<B>(request: &http::Request<B>) -> Option<SocketAddr> {
    let extensions = request.extensions();
    if let Some(tcp) = extensions.get::<TcpConnectInfo>() {
        return tcp.remote_addr();
    }
    extensions.get::<TlsConnectInfo<TcpConnectInfo>>()?.get_ref().remote_addr()
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::future::Ready;
    use std::sync::{Arc, Mutex};

    /// A service that logs and answers at once, as the token layer does when it refuses.
    struct Answer;

    impl tower::Service<http::Request<()>> for Answer {
        type Response = ();
        type Error = ();
        type Future = Ready<Result<(), ()>>;

        fn poll_ready(&mut self, _cx: &mut Context<'_>) -> Poll<Result<(), ()>> {
            Poll::Ready(Ok(()))
        }

        fn call(&mut self, _req: http::Request<()>) -> Self::Future {
            tracing::warn!("answered in call");
            std::future::ready(Ok(()))
        }
    }

    #[derive(Clone, Default)]
    struct Buffer(Arc<Mutex<Vec<u8>>>);

    impl std::io::Write for Buffer {
        fn write(&mut self, bytes: &[u8]) -> std::io::Result<usize> {
            crate::lock::lock(&self.0).extend_from_slice(bytes);
            Ok(bytes.len())
        }
        fn flush(&mut self) -> std::io::Result<()> {
            Ok(())
        }
    }

    #[test]
    fn spans_are_named_after_known_methods_only() {
        let name = span_name;
        assert_eq!(
            name("/sluice.control.v1.ControlPlane/ListNodes"),
            "sluice.control.v1.ControlPlane/ListNodes"
        );
        assert_eq!(name("/grpc.health.v1.Health/Check"), "grpc.health.v1.Health/Check");
        for unknown in [
            "/x.Y/Z",
            "/sluice.control.v1.ControlPlane/",
            "/sluice.control.v1.ControlPlane/a/b",
            "/",
        ] {
            assert_eq!(name(unknown), "grpc", "{unknown}");
        }
        assert_eq!(name(&format!("/grpc.health.v1.Health/{}", "A".repeat(65))), "grpc");
    }

    #[test]
    fn a_call_runs_in_a_span_with_its_method_and_peer() {
        use tower::{Layer as _, Service as _};
        let buffer = Buffer::default();
        let writer = buffer.clone();
        let subscriber = tracing_subscriber::fmt()
            .with_writer(move || writer.clone())
            .with_ansi(false)
            .without_time()
            .finish();
        let mut request = http::Request::builder()
            .uri("/sluice.control.v1.ControlPlane/ListNodes")
            .body(())
            .unwrap();
        let tcp = TcpConnectInfo {
            local_addr: Some(([127, 0, 0, 1], 50051).into()),
            remote_addr: Some(([10, 0, 0, 7], 40000).into()),
        };
        request.extensions_mut().insert(tcp);
        tracing::subscriber::with_default(subscriber, || {
            let mut service = GrpcTraceLayer.layer(Answer);
            let answered = futures_util::FutureExt::now_or_never(service.call(request));
            assert_eq!(answered, Some(Ok(())));
        });
        let log = String::from_utf8(crate::lock::lock(&buffer.0).clone()).unwrap();
        assert!(
            log.contains(
                "grpc{method=/sluice.control.v1.ControlPlane/ListNodes peer=10.0.0.7:40000"
            ) && log.contains("answered in call"),
            "{log}"
        );
        let plain = http::Request::builder().uri("/grpc.health.v1.Health/Check").body(()).unwrap();
        assert_eq!(peer(&plain), None, "no connection information, no peer");
    }
}
