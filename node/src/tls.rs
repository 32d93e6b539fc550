//! The node's TLS certificate, served by HTTPS (`--https-listen`) and RTMPS (`--rtmps-listen`)
//! alike (`--https-cert`, `--https-key`): a [`CertStore`] read at start and again on SIGHUP. A reload swaps the key
//! new handshakes use ([`CertStore`] is rustls's certificate resolver); connections already
//! open keep theirs, so renewing a certificate drops no viewer. A reload that fails (missing
//! file, bad PEM, a key that does not match) keeps the current certificate and says why.

use std::sync::Arc;

use tokio_rustls::TlsAcceptor;
use tracing::{info, warn};

pub use sluice_cluster::cert_store::{CertStore, TlsError};

use crate::metrics::Metrics;

/// The acceptor of the HTTPS listener: TLS 1.2 and 1.3, HTTP/2 and HTTP/1.1 by ALPN.
pub fn acceptor(store: &Arc<CertStore>) -> Result<TlsAcceptor, TlsError> {
    Ok(TlsAcceptor::from(store.server_config(&[b"h2", b"http/1.1"])?))
}

/// The configuration of the RTMPS listener: no ALPN (encoders send none).
pub fn rtmps_config(store: &Arc<CertStore>) -> Result<Arc<rustls::ServerConfig>, TlsError> {
    store.server_config(&[])
}

/// Reload `store` on every SIGHUP, counting each outcome.
pub fn spawn_reload_on_sighup(
    store: Arc<CertStore>,
    metrics: Metrics,
) -> std::io::Result<tokio::task::JoinHandle<()>> {
    use tokio::signal::unix::{signal, SignalKind};
    let mut hangup = signal(SignalKind::hangup())?;
    Ok(tokio::spawn(async move {
        while hangup.recv().await.is_some() {
            match store.reload() {
                Ok(()) => {
                    metrics.tls_reloads.inc();
                    info!(cert = %store.files().cert.display(), "SIGHUP: TLS certificate (HTTPS, RTMPS) reloaded");
                }
                Err(e) => {
                    metrics.tls_reload_failures.inc();
                    warn!(error = %e, "SIGHUP: TLS certificate (HTTPS, RTMPS) NOT reloaded; the current one stays");
                }
            }
        }
    }))
}
