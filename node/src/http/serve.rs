//! The HTTP accept loop and connection driver (in place of `axum::serve`, which has no
//! deadlines and no caps): every connection is admitted against the node's HTTP cap
//! (`--max-http-connections`) and its address's fair share ([`crate::admission`]), then served
//! by hyper with a timer, so the request-header deadline (`--http-header-timeout`) fires; an
//! idle watchdog closes connections that move no byte for `--http-idle-timeout` (HTTP/2
//! included), and HTTP/2 connections have at most `--http2-max-streams` streams.
//!
//! The HTTPS listener (`--https-listen`) runs the same loop under the same caps, with the TLS
//! handshake bounded by the header deadline too.
//!
//! Hyper's header deadline starts once it knows the protocol; a client that connects and sends
//! nothing (or a bare prefix of the HTTP/2 preface) never gets that far, so the first bytes are
//! awaited here under the same deadline.

use std::io;
use std::net::{IpAddr, SocketAddr};
use std::pin::Pin;
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::Arc;
use std::task::{Context, Poll};
use std::time::Duration;

use axum::Router;
use hyper_util::rt::{TokioExecutor, TokioIo, TokioTimer};
use hyper_util::server::conn::auto::Builder;
use tokio::io::{AsyncRead, AsyncWrite, ReadBuf};
use tokio::net::{TcpListener, TcpStream};
use tokio::sync::{watch, Semaphore};
use tokio::time::Instant;
use tokio_rustls::TlsAcceptor;
use tower_service::Service;
use tracing::{debug, warn};

use crate::admission::{Gate, PerIpLimits};
use crate::log_limit::RateLimitedLog;
use crate::metrics::{Door, Metrics, RefusalReason};
use crate::settings::AdmissionSettings;

/// The client's address, put into every request's extensions (HLS session creation is
/// rate-limited per address).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct ClientIp(pub IpAddr);

/// The HTTP/2 connection preface; a connection starting with a prefix of it may be HTTP/2.
const H2_PREFACE: &[u8] = b"PRI * HTTP/2.0\r\n\r\nSM\r\n\r\n";

/// What the HTTP accept loop enforces.
pub struct HttpAdmission {
    settings: AdmissionSettings,
    slots: Arc<Semaphore>,
    per_ip: Gate,
    metrics: Metrics,
    log: RateLimitedLog,
}

impl HttpAdmission {
    pub fn new(settings: &AdmissionSettings, metrics: Metrics) -> Self {
        let per_ip = Gate::new(
            Door::Http,
            PerIpLimits {
                max_concurrent: settings.max_connections_per_ip,
                per_second: settings.new_connections_per_ip,
            },
            metrics.clone(),
        );
        HttpAdmission {
            settings: settings.clone(),
            slots: Arc::new(Semaphore::new(settings.max_http_connections)),
            per_ip,
            metrics,
            log: RateLimitedLog::new(5),
        }
    }

    fn builder(&self) -> Builder<TokioExecutor> {
        let mut builder = Builder::new(TokioExecutor::new());
        builder
            .http1()
            .timer(TokioTimer::new())
            .header_read_timeout(self.settings.http_header_timeout);
        builder
            .http2()
            .timer(TokioTimer::new())
            .enable_connect_protocol()
            .max_concurrent_streams(self.settings.http2_max_streams);
        builder
    }
}

/// Accept HTTP connections (HTTPS with `tls`) until `shutdown` turns true; then each open
/// connection finishes its requests in flight and closes. Listeners that share `admission`
/// share its caps.
pub async fn serve(
    listener: TcpListener,
    router: Router,
    admission: Arc<HttpAdmission>,
    tls: Option<TlsAcceptor>,
    shutdown: watch::Receiver<bool>,
) {
    let builder = Arc::new(admission.builder());
    let mut stop = shutdown.clone();
    loop {
        let accepted = tokio::select! {
            a = listener.accept() => a,
            _ = stop.wait_for(|s| *s) => return,
        };
        let (stream, peer) = match accepted {
            Ok(a) => a,
            Err(e) => {
                warn!(error = %e, "HTTP accept failed");
                tokio::time::sleep(Duration::from_millis(50)).await;
                continue;
            }
        };
        let Ok(slot) = admission.slots.clone().try_acquire_owned() else {
            admission.metrics.refused(Door::Http, RefusalReason::Total);
            if admission.log.allow() {
                warn!(%peer, "HTTP connection refused: --max-http-connections reached");
            }
            continue;
        };
        let Some(share) = admission.per_ip.admit(peer.ip()) else {
            continue;
        };
        let admission = admission.clone();
        let builder = builder.clone();
        let router = router.clone();
        let shutdown = shutdown.clone();
        let tls = tls.clone();
        tokio::spawn(async move {
            admission.metrics.http_connections.inc();
            connection(stream, peer, router, &builder, &admission, tls, shutdown).await;
            admission.metrics.http_connections.dec();
            drop((share, slot));
        });
    }
}

/// Wait (until `deadline`) for the client's first bytes, and for enough of them to tell
/// HTTP/1 from HTTP/2. False: the client was too slow.
async fn first_bytes(stream: &TcpStream, deadline: Instant) -> bool {
    let mut buf = [0u8; H2_PREFACE.len()];
    loop {
        match tokio::time::timeout_at(deadline, stream.peek(&mut buf)).await {
            Ok(Ok(0) | Err(_)) | Err(_) => return false,
            Ok(Ok(n)) => {
                if n == buf.len() || !H2_PREFACE.starts_with(&buf[..n]) {
                    return true;
                }
                // A prefix of the HTTP/2 preface: more is on its way (peek returns at once
                // while data is buffered, so look again a little later).
                if Instant::now() >= deadline {
                    return false;
                }
                tokio::time::sleep(Duration::from_millis(10)).await;
            }
        }
    }
}

async fn connection(
    stream: TcpStream,
    peer: SocketAddr,
    router: Router,
    builder: &Builder<TokioExecutor>,
    admission: &HttpAdmission,
    tls: Option<TlsAcceptor>,
    shutdown: watch::Receiver<bool>,
) {
    let settings = &admission.settings;
    let _ = stream.set_nodelay(true);
    let deadline = Instant::now() + settings.http_header_timeout;
    if !first_bytes(&stream, deadline).await {
        debug!(%peer, "HTTP client sent no request in time");
        return;
    }
    let stream = match tls {
        // HTTP-FLV plays leave through their own writer (see `flv_direct`). Boxed and dropped
        // once the request is answered: a viewer's task then holds only what plays
        // (`flv_direct::Served::Then`), not the request's state.
        None => {
            let first = Box::pin(super::flv_direct::serve(
                stream,
                peer,
                &router,
                settings.http_idle_timeout,
            ));
            // Its own statement, so the box goes before what is left runs.
            let served = first.await;
            match served {
                super::flv_direct::Served::NotFlv(stream) => stream,
                super::flv_direct::Served::Then(rest) => return rest.await,
                super::flv_direct::Served::Done => return,
            }
        }
        Some(_) => stream,
    };
    let activity = Activity::new();
    let tracked = Tracked { inner: stream, activity: activity.clone() };
    let Some(acceptor) = tls else {
        // Boxed: hyper's connection state stays out of the future that HTTP-FLV viewers hold.
        let conn =
            drive(TokioIo::new(tracked), peer, router, builder, settings, activity, shutdown);
        return Box::pin(conn).await;
    };
    match tokio::time::timeout_at(deadline, Box::pin(acceptor.accept(tracked))).await {
        Ok(Ok(tls)) => {
            let conn =
                drive(TokioIo::new(tls), peer, router, builder, settings, activity, shutdown);
            Box::pin(conn).await;
        }
        Ok(Err(e)) => {
            admission.metrics.tls_handshake_failures.inc();
            debug!(%peer, error = %e, "TLS handshake failed");
        }
        Err(_) => {
            admission.metrics.tls_handshake_failures.inc();
            debug!(%peer, "TLS handshake not done within --http-header-timeout");
        }
    }
}

/// Serve one connection's requests over `io` until it ends, idles out, or the node shuts down.
async fn drive<I>(
    io: I,
    peer: SocketAddr,
    router: Router,
    builder: &Builder<TokioExecutor>,
    settings: &AdmissionSettings,
    activity: Activity,
    mut shutdown: watch::Receiver<bool>,
) where
    I: hyper::rt::Read + hyper::rt::Write + Unpin + Send + 'static,
{
    let ip = ClientIp(peer.ip());
    let service = hyper::service::service_fn(move |mut req: hyper::Request<_>| {
        req.extensions_mut().insert(ip);
        let mut router = router.clone();
        router.call(req.map(axum::body::Body::new))
    });
    let conn = builder.serve_connection_with_upgrades(io, service);
    tokio::pin!(conn);
    let idle = settings.http_idle_timeout;
    let mut draining = false;
    loop {
        let idle_at = activity.last() + idle;
        tokio::select! {
            served = conn.as_mut() => {
                if let Err(e) = served {
                    debug!(%peer, error = %e, "HTTP connection ended with an error");
                }
                return;
            }
            _ = shutdown.wait_for(|s| *s), if !draining => {
                draining = true;
                conn.as_mut().graceful_shutdown();
            }
            _ = tokio::time::sleep_until(idle_at) => {
                if activity.last() + idle <= Instant::now() {
                    debug!(%peer, "HTTP connection idle: closed");
                    return;
                }
            }
        }
    }
}

/// When a connection last moved a byte, shared between its socket wrapper and its watchdog.
#[derive(Clone)]
struct Activity {
    base: Instant,
    /// Milliseconds after `base`.
    last_ms: Arc<AtomicU64>,
}

impl Activity {
    fn new() -> Self {
        Activity { base: Instant::now(), last_ms: Arc::new(AtomicU64::new(0)) }
    }

    fn touch(&self) {
        let ms = u64::try_from(self.base.elapsed().as_millis()).unwrap_or(u64::MAX);
        self.last_ms.store(ms, Ordering::Relaxed);
    }

    fn last(&self) -> Instant {
        self.base + Duration::from_millis(self.last_ms.load(Ordering::Relaxed))
    }
}

/// A socket that records when it last read or wrote something.
struct Tracked {
    inner: TcpStream,
    activity: Activity,
}

impl AsyncRead for Tracked {
    fn poll_read(
        mut self: Pin<&mut Self>,
        cx: &mut Context<'_>,
        buf: &mut ReadBuf<'_>,
    ) -> Poll<io::Result<()>> {
        let before = buf.filled().len();
        let r = Pin::new(&mut self.inner).poll_read(cx, buf);
        if buf.filled().len() > before {
            self.activity.touch();
        }
        r
    }
}

impl AsyncWrite for Tracked {
    fn poll_write(
        mut self: Pin<&mut Self>,
        cx: &mut Context<'_>,
        buf: &[u8],
    ) -> Poll<io::Result<usize>> {
        let r = Pin::new(&mut self.inner).poll_write(cx, buf);
        if matches!(r, Poll::Ready(Ok(n)) if n > 0) {
            self.activity.touch();
        }
        r
    }

    fn poll_write_vectored(
        mut self: Pin<&mut Self>,
        cx: &mut Context<'_>,
        bufs: &[io::IoSlice<'_>],
    ) -> Poll<io::Result<usize>> {
        let r = Pin::new(&mut self.inner).poll_write_vectored(cx, bufs);
        if matches!(r, Poll::Ready(Ok(n)) if n > 0) {
            self.activity.touch();
        }
        r
    }

    fn is_write_vectored(&self) -> bool {
        self.inner.is_write_vectored()
    }

    fn poll_flush(mut self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<io::Result<()>> {
        Pin::new(&mut self.inner).poll_flush(cx)
    }

    fn poll_shutdown(mut self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<io::Result<()>> {
        Pin::new(&mut self.inner).poll_shutdown(cx)
    }
}
