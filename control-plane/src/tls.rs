//! TLS for both ports when `--tls-cert` and `--tls-key` are given: tonic's own rustls support
//! (feature `tls-ring`) on the gRPC port, and a small accept loop (tokio-rustls, hyper-util)
//! that serves the axum router on the HTTP port.
//!
//! The certificate and key are read once at start; replacing the files takes a restart
//! (no reload). Both ports offer HTTP/2 and HTTP/1.1 through ALPN. Plain-text connections to
//! a TLS port fail their handshake and are closed.

use axum::Router;
use hyper_util::rt::{TokioExecutor, TokioIo};
use hyper_util::server::conn::auto;
use hyper_util::service::TowerToHyperService;
use rustls::pki_types::pem::PemObject;
use rustls::pki_types::{CertificateDer, PrivateKeyDer};
use std::future::Future;
use std::path::{Path, PathBuf};
use std::sync::Arc;
use std::time::Duration;
use tokio::net::TcpListener;
use tokio_rustls::TlsAcceptor;

/// How long a client may take over its TLS handshake on the HTTP port.
pub const HANDSHAKE_TIMEOUT: Duration = Duration::from_secs(10);

/// How long open HTTPS connections get to finish at shutdown.
pub const DRAIN_TIMEOUT: Duration = Duration::from_secs(10);

/// Why TLS could not be set up.
#[derive(Debug, thiserror::Error)]
pub enum TlsError {
    #[error("reading {}: {source}", path.display())]
    Read { path: PathBuf, source: std::io::Error },
    #[error("{}: no PEM certificate in it", path.display())]
    NoCertificate { path: PathBuf },
    #[error("{}: no PEM private key in it ({source})", path.display())]
    NoKey { path: PathBuf, source: rustls::pki_types::pem::Error },
    #[error("{}: {source}", path.display())]
    BadPem { path: PathBuf, source: rustls::pki_types::pem::Error },
    #[error("the certificate and key do not make a TLS configuration: {0}")]
    Rustls(#[from] rustls::Error),
}

/// The certificate chain and key files, both PEM.
#[derive(Debug, Clone)]
pub struct TlsFiles {
    pub cert: PathBuf,
    pub key: PathBuf,
}

/// The certificate chain and key, read and checked.
pub struct TlsMaterial {
    cert_pem: Vec<u8>,
    key_pem: Vec<u8>,
    chain: Vec<CertificateDer<'static>>,
    key: PrivateKeyDer<'static>,
}

fn read(path: &Path) -> Result<Vec<u8>, TlsError> {
    std::fs::read(path).map_err(|source| TlsError::Read { path: path.to_path_buf(), source })
}

impl TlsMaterial {
    /// Read both files; errors name the file at fault.
    pub fn load(files: &TlsFiles) -> Result<TlsMaterial, TlsError> {
        let cert_pem = read(&files.cert)?;
        let key_pem = read(&files.key)?;
        let chain = CertificateDer::pem_slice_iter(&cert_pem)
            .collect::<Result<Vec<_>, _>>()
            .map_err(|source| TlsError::BadPem { path: files.cert.clone(), source })?;
        if chain.is_empty() {
            return Err(TlsError::NoCertificate { path: files.cert.clone() });
        }
        let key = PrivateKeyDer::from_pem_slice(&key_pem)
            .map_err(|source| TlsError::NoKey { path: files.key.clone(), source })?;
        let material = TlsMaterial { cert_pem, key_pem, chain, key };
        // Check that the pair matches now, not at the first connection.
        material.http_acceptor()?;
        Ok(material)
    }

    /// tonic's server TLS configuration.
    pub fn grpc_config(&self) -> tonic::transport::ServerTlsConfig {
        let identity = tonic::transport::Identity::from_pem(&self.cert_pem, &self.key_pem);
        tonic::transport::ServerTlsConfig::new().identity(identity)
    }

    /// The acceptor of the HTTP port.
    pub fn http_acceptor(&self) -> Result<TlsAcceptor, TlsError> {
        let provider = Arc::new(rustls::crypto::ring::default_provider());
        let mut config = rustls::ServerConfig::builder_with_provider(provider)
            .with_safe_default_protocol_versions()?
            .with_no_client_auth()
            .with_single_cert(self.chain.clone(), self.key.clone_key())?;
        config.alpn_protocols = vec![b"h2".to_vec(), b"http/1.1".to_vec()];
        Ok(TlsAcceptor::from(Arc::new(config)))
    }
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
        let service = TowerToHyperService::new(router.clone());
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
