//! TLS for both ports when `--tls-cert` and `--tls-key` are given: on the gRPC port an accept
//! loop that hands tonic finished handshakes ([`grpc_incoming`]), on the HTTP port one that
//! serves the axum router (tokio-rustls, hyper-util).
//!
//! Both use one [`CertStore`], reread on SIGHUP: new connections get the new certificate, open
//! ones keep theirs. Both ports offer HTTP/2 and HTTP/1.1 through ALPN. Plain-text connections
//! to a TLS port fail their handshake and are closed.

use axum::Router;
use hyper_util::rt::{TokioExecutor, TokioIo};
use hyper_util::server::conn::auto;
use hyper_util::service::TowerToHyperService;
use std::future::Future;
use std::sync::Arc;
use std::time::Duration;
use tokio::net::{TcpListener, TcpStream};
use tokio_rustls::server::TlsStream;
use tokio_rustls::TlsAcceptor;

/// How long a client may take over its TLS handshake on the HTTP port.
pub const HANDSHAKE_TIMEOUT: Duration = Duration::from_secs(10);

/// How long open HTTPS connections get to finish at shutdown.
pub const DRAIN_TIMEOUT: Duration = Duration::from_secs(10);

pub use sluice_cluster::cert_store::{CertStore, TlsError, TlsFiles};

/// The acceptor of either port: HTTP/2 and HTTP/1.1 by ALPN, the store's current certificate.
pub fn acceptor(store: &Arc<CertStore>) -> Result<TlsAcceptor, TlsError> {
    Ok(TlsAcceptor::from(store.server_config(&[b"h2", b"http/1.1"])?))
}

/// Accept TLS connections on `listener` for tonic (which serves what it is handed): each
/// handshake runs in its own task, bounded by [`HANDSHAKE_TIMEOUT`], so a slow client holds up
/// nobody; at most 64 finished handshakes wait for tonic to take them.
pub fn grpc_incoming(
    listener: TcpListener,
    acceptor: TlsAcceptor,
) -> tokio_stream::wrappers::ReceiverStream<std::io::Result<TlsStream<TcpStream>>> {
    let (tx, rx) = tokio::sync::mpsc::channel(64);
    tokio::spawn(async move {
        loop {
            let (tcp, peer) = tokio::select! {
                accepted = listener.accept() => match accepted {
                    Ok(pair) => pair,
                    Err(e) => {
                        tracing::warn!(error = %e, "gRPC accept failed");
                        tokio::time::sleep(Duration::from_millis(100)).await;
                        continue;
                    }
                },
                () = tx.closed() => return,
            };
            let (acceptor, tx) = (acceptor.clone(), tx.clone());
            tokio::spawn(async move {
                match tokio::time::timeout(HANDSHAKE_TIMEOUT, acceptor.accept(tcp)).await {
                    Ok(Ok(tls)) => {
                        let _ = tx.send(Ok(tls)).await;
                    }
                    Ok(Err(e)) => tracing::debug!(%peer, error = %e, "gRPC TLS handshake failed"),
                    Err(_) => tracing::debug!(%peer, "gRPC TLS handshake timed out"),
                }
            });
        }
    });
    tokio_stream::wrappers::ReceiverStream::new(rx)
}

/// Reload `store` on every SIGHUP: both ports serve the new certificate to new connections.
pub fn spawn_reload_on_sighup(
    store: Arc<CertStore>,
) -> std::io::Result<tokio::task::JoinHandle<()>> {
    use tokio::signal::unix::{signal, SignalKind};
    let mut hangup = signal(SignalKind::hangup())?;
    Ok(tokio::spawn(async move {
        while hangup.recv().await.is_some() {
            match store.reload() {
                Ok(()) => {
                    tracing::info!(cert = %store.files().cert.display(), "SIGHUP: TLS certificate reloaded");
                }
                Err(e) => {
                    tracing::warn!(error = %e, "SIGHUP: TLS certificate NOT reloaded; the current one stays");
                }
            }
        }
    }))
}

/// Serve `router` over TLS on `listener` until `shutdown` completes; connections in progress
/// then get up to [`DRAIN_TIMEOUT`] to finish, as with axum's own graceful shutdown.
pub async fn serve_https(
    listener: TcpListener,
    acceptor: TlsAcceptor,
    router: Router,
    shutdown: impl Future<Output = ()>,
) -> std::io::Result<()> {
    let graceful = hyper_util::server::graceful::GracefulShutdown::new();
    let mut shutdown = std::pin::pin!(shutdown);
    loop {
        let (tcp, peer) = tokio::select! {
            accepted = listener.accept() => match accepted {
                Ok(pair) => pair,
                Err(e) => {
                    // Out of file descriptors and the like: wait a little rather than spin.
                    tracing::warn!(error = %e, "HTTPS accept failed");
                    tokio::time::sleep(Duration::from_millis(100)).await;
                    continue;
                }
            },
            () = &mut shutdown => break,
        };
        let acceptor = acceptor.clone();
        // Handlers see the peer as with axum's own `into_make_service_with_connect_info`.
        let connect_info = axum::extract::ConnectInfo(peer);
        let service = TowerToHyperService::new(router.clone().layer(axum::Extension(connect_info)));
        let watcher = graceful.watcher();
        tokio::spawn(async move {
            let tls = match tokio::time::timeout(HANDSHAKE_TIMEOUT, acceptor.accept(tcp)).await {
                Ok(Ok(tls)) => tls,
                Ok(Err(e)) => {
                    tracing::debug!(%peer, error = %e, "TLS handshake failed");
                    return;
                }
                Err(_) => {
                    tracing::debug!(%peer, "TLS handshake timed out");
                    return;
                }
            };
            let builder = auto::Builder::new(TokioExecutor::new());
            let conn = builder.serve_connection_with_upgrades(TokioIo::new(tls), service);
            if let Err(e) = watcher.watch(conn.into_owned()).await {
                tracing::debug!(%peer, error = %e, "HTTPS connection ended with an error");
            }
        });
    }
    drop(listener);
    // Bounded, like a process manager's stop timeout: a client holding a connection open
    // does not keep the process alive.
    if tokio::time::timeout(DRAIN_TIMEOUT, graceful.shutdown()).await.is_err() {
        tracing::info!("HTTPS connections still open at shutdown were closed");
    }
    Ok(())
}
