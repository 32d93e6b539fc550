//! Mutual TLS for the relay. In cluster mode every node presents a certificate signed by the
//! cluster CA and accepts only peers whose certificate chains to that CA (server side:
//! `WebPkiClientVerifier`, client certificates required; client side: the CA is the only
//! root). [`RelayTls::insecure_dev`] is the only way to skip verification: the node then
//! presents a throw-away self-signed certificate, asks for no client certificate and
//! accepts any server certificate. Development only.
//!
//! The crypto provider is `ring`, installed once as the process default
//! ([`install_crypto_provider`]) and also passed explicitly to every config built here.

use std::path::Path;
use std::sync::{Arc, Once};

use rustls::client::danger::{HandshakeSignatureValid, ServerCertVerified, ServerCertVerifier};
use rustls::crypto::CryptoProvider;
use rustls::pki_types::pem::PemObject;
use rustls::pki_types::{CertificateDer, PrivateKeyDer, ServerName, UnixTime};
use rustls::{DigitallySignedStruct, RootCertStore, SignatureScheme};

use crate::certs;

/// Failures while loading certificates or building TLS configs.
#[derive(Debug, thiserror::Error)]
pub enum TlsError {
    #[error("reading {path}: {source}")]
    Pem { path: String, source: rustls::pki_types::pem::Error },
    #[error("{0} holds no certificate")]
    NoCertificate(String),
    #[error("invalid node id {0:?}")]
    BadNodeId(String),
    #[error("TLS: {0}")]
    Rustls(#[from] rustls::Error),
    #[error("client verifier: {0}")]
    Verifier(#[from] rustls::server::VerifierBuilderError),
    #[error("QUIC TLS config: {0}")]
    Quic(#[from] quinn::crypto::rustls::NoInitialCipherSuite),
    #[error("self-signed certificate: {0}")]
    Rcgen(#[from] rcgen::Error),
    /// A generated private key that rustls does not take (its reason).
    #[error("private key: {0}")]
    Key(&'static str),
}

/// How a relay endpoint authenticates itself and its peers.
#[derive(Debug, Clone)]
pub enum RelayTls {
    /// Mutual TLS with the cluster CA.
    Cluster {
        /// The CA certificates trusted for peers (as servers and as clients).
        ca: Vec<CertificateDer<'static>>,
        /// This node's certificate chain.
        chain: Vec<CertificateDer<'static>>,
        /// This node's private key.
        key: Arc<PrivateKeyDer<'static>>,
    },
    /// No verification at all (`--insecure-dev`).
    InsecureDev,
}

impl RelayTls {
    /// Loads `ca.pem`, `{node_id}.pem` and `{node_id}.key` from a TLS directory (the layout
    /// written by [`certs::generate`]).
    pub fn from_dir(dir: &Path, node_id: &str) -> Result<Self, TlsError> {
        if !certs::valid_node_id(node_id) {
            return Err(TlsError::BadNodeId(node_id.to_string()));
        }
        let ca = load_certs(&dir.join(certs::CA_CERT))?;
        let chain = load_certs(&certs::node_cert_path(dir, node_id))?;
        let key_path = certs::node_key_path(dir, node_id);
        let key = PrivateKeyDer::from_pem_file(&key_path)
            .map_err(|source| TlsError::Pem { path: key_path.display().to_string(), source })?;
        Ok(Self::Cluster { ca, chain, key: Arc::new(key) })
    }

    /// Skips all verification. Development only.
    pub fn insecure_dev() -> Self {
        Self::InsecureDev
    }

    /// The quinn server crypto for this node.
    pub(crate) fn server_crypto(
        &self,
    ) -> Result<quinn::crypto::rustls::QuicServerConfig, TlsError> {
        let provider = provider();
        let builder = rustls::ServerConfig::builder_with_provider(provider.clone())
            .with_protocol_versions(&[&rustls::version::TLS13])?;
        let mut cfg = match self {
            Self::Cluster { ca, chain, key } => {
                let verifier = rustls::server::WebPkiClientVerifier::builder_with_provider(
                    Arc::new(roots(ca)?),
                    provider,
                )
                .build()?;
                builder
                    .with_client_cert_verifier(verifier)
                    .with_single_cert(chain.clone(), key.clone_key())?
            }
            Self::InsecureDev => {
                let key = rcgen::KeyPair::generate()?;
                let cert = rcgen::CertificateParams::new(vec!["localhost".to_string()])?
                    .self_signed(&key)?;
                let key = PrivateKeyDer::try_from(key.serialize_der()).map_err(TlsError::Key)?;
                builder.with_no_client_auth().with_single_cert(vec![cert.der().clone()], key)?
            }
        };
        cfg.alpn_protocols = vec![sluice_proto::ALPN.to_vec()];
        Ok(quinn::crypto::rustls::QuicServerConfig::try_from(cfg)?)
    }

    /// The quinn client crypto for this node.
    pub(crate) fn client_crypto(
        &self,
    ) -> Result<quinn::crypto::rustls::QuicClientConfig, TlsError> {
        let provider = provider();
        let builder = rustls::ClientConfig::builder_with_provider(provider.clone())
            .with_protocol_versions(&[&rustls::version::TLS13])?;
        let mut cfg = match self {
            Self::Cluster { ca, chain, key } => builder
                .with_root_certificates(roots(ca)?)
                .with_client_auth_cert(chain.clone(), key.clone_key())?,
            Self::InsecureDev => builder
                .dangerous()
                .with_custom_certificate_verifier(Arc::new(AcceptAnyServer(provider)))
                .with_no_client_auth(),
        };
        cfg.alpn_protocols = vec![sluice_proto::ALPN.to_vec()];
        Ok(quinn::crypto::rustls::QuicClientConfig::try_from(cfg)?)
    }
}

/// Installs `ring` as the process-wide default rustls crypto provider (once; a provider
/// installed earlier by someone else is left in place).
pub fn install_crypto_provider() {
    static ONCE: Once = Once::new();
    ONCE.call_once(|| {
        let _ = rustls::crypto::ring::default_provider().install_default();
    });
}

fn provider() -> Arc<CryptoProvider> {
    install_crypto_provider();
    Arc::new(rustls::crypto::ring::default_provider())
}

fn load_certs(path: &Path) -> Result<Vec<CertificateDer<'static>>, TlsError> {
    let pem_err = |source| TlsError::Pem { path: path.display().to_string(), source };
    let certs = CertificateDer::pem_file_iter(path)
        .map_err(pem_err)?
        .collect::<Result<Vec<_>, _>>()
        .map_err(pem_err)?;
    if certs.is_empty() {
        return Err(TlsError::NoCertificate(path.display().to_string()));
    }
    Ok(certs)
}

fn roots(ca: &[CertificateDer<'static>]) -> Result<RootCertStore, TlsError> {
    let mut store = RootCertStore::empty();
    for c in ca {
        store.add(c.clone())?;
    }
    Ok(store)
}

/// The `insecure_dev` server verifier: accepts any certificate, still checks that the
/// handshake signatures are valid for the presented key.
#[derive(Debug)]
struct AcceptAnyServer(Arc<CryptoProvider>);

impl ServerCertVerifier for AcceptAnyServer {
    fn verify_server_cert(
        &self,
        _end_entity: &CertificateDer<'_>,
        _intermediates: &[CertificateDer<'_>],
        _server_name: &ServerName<'_>,
        _ocsp: &[u8],
        _now: UnixTime,
    ) -> Result<ServerCertVerified, rustls::Error> {
        Ok(ServerCertVerified::assertion())
    }

    fn verify_tls12_signature(
        &self,
        message: &[u8],
        cert: &CertificateDer<'_>,
        dss: &DigitallySignedStruct,
    ) -> Result<HandshakeSignatureValid, rustls::Error> {
        rustls::crypto::verify_tls12_signature(
            message,
            cert,
            dss,
            &self.0.signature_verification_algorithms,
        )
    }

    fn verify_tls13_signature(
        &self,
        message: &[u8],
        cert: &CertificateDer<'_>,
        dss: &DigitallySignedStruct,
    ) -> Result<HandshakeSignatureValid, rustls::Error> {
        rustls::crypto::verify_tls13_signature(
            message,
            cert,
            dss,
            &self.0.signature_verification_algorithms,
        )
    }

    fn supported_verify_schemes(&self) -> Vec<SignatureScheme> {
        self.0.signature_verification_algorithms.supported_schemes()
    }
}
