//! A TLS certificate that can be replaced while serving: the chain and key files are read at
//! start and again on [`CertStore::reload`] (a SIGHUP, say). A reload swaps the key new
//! handshakes get ([`CertStore`] is rustls's certificate resolver); connections already open
//! keep theirs, so renewing a certificate drops nobody. A reload that fails (a missing file,
//! bad PEM, a key that does not match) keeps the current certificate and says why. Shared by
//! the nodes (HTTPS, RTMPS) and the control plane (gRPC, HTTPS).

use std::path::{Path, PathBuf};
use std::sync::{Arc, RwLock};

use rustls::pki_types::pem::PemObject;
use rustls::pki_types::{CertificateDer, PrivateKeyDer};
use rustls::server::{ClientHello, ResolvesServerCert};
use rustls::sign::CertifiedKey;

/// A certificate chain and its private key, both PEM files.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct TlsFiles {
    pub cert: PathBuf,
    pub key: PathBuf,
}

/// Why a certificate could not be loaded.
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
    #[error("{} and {}: {source}", cert.display(), key.display())]
    Mismatch { cert: PathBuf, key: PathBuf, source: rustls::Error },
    #[error("the TLS configuration: {0}")]
    Rustls(#[from] rustls::Error),
}

fn read(path: &Path) -> Result<Vec<u8>, TlsError> {
    std::fs::read(path).map_err(|source| TlsError::Read { path: path.to_path_buf(), source })
}

fn provider() -> Arc<rustls::crypto::CryptoProvider> {
    Arc::new(rustls::crypto::ring::default_provider())
}

/// Read `files` into a key rustls can serve; a key that does not belong to the certificate
/// is an error here, not at the first handshake.
fn certified_key(files: &TlsFiles) -> Result<CertifiedKey, TlsError> {
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
    CertifiedKey::from_der(chain, key, &provider()).map_err(|source| TlsError::Mismatch {
        cert: files.cert.clone(),
        key: files.key.clone(),
        source,
    })
}

/// The certificate new handshakes get, replaceable while serving.
#[derive(Debug)]
pub struct CertStore {
    files: TlsFiles,
    current: RwLock<Arc<CertifiedKey>>,
}

impl CertStore {
    /// Load `files`; errors name the file at fault.
    pub fn load(files: TlsFiles) -> Result<Arc<CertStore>, TlsError> {
        let key = certified_key(&files)?;
        Ok(Arc::new(CertStore { files, current: RwLock::new(Arc::new(key)) }))
    }

    /// Read the files again; on success new handshakes use the new certificate.
    pub fn reload(&self) -> Result<(), TlsError> {
        let key = Arc::new(certified_key(&self.files)?);
        *self.current.write().unwrap_or_else(std::sync::PoisonError::into_inner) = key;
        Ok(())
    }

    /// The files it reads.
    pub fn files(&self) -> &TlsFiles {
        &self.files
    }

    /// A server configuration (TLS 1.2 and 1.3, ring) that serves this certificate, offering
    /// `alpn` (none: no ALPN).
    pub fn server_config(
        self: &Arc<Self>,
        alpn: &[&[u8]],
    ) -> Result<Arc<rustls::ServerConfig>, TlsError> {
        let mut config = rustls::ServerConfig::builder_with_provider(provider())
            .with_safe_default_protocol_versions()?
            .with_no_client_auth()
            .with_cert_resolver(self.clone());
        config.alpn_protocols = alpn.iter().map(|p| p.to_vec()).collect();
        Ok(Arc::new(config))
    }
}

impl ResolvesServerCert for CertStore {
    fn resolve(&self, _hello: ClientHello<'_>) -> Option<Arc<CertifiedKey>> {
        Some(self.current.read().unwrap_or_else(std::sync::PoisonError::into_inner).clone())
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn write_pair(dir: &Path, name: &str) -> TlsFiles {
        let cert = rcgen::generate_simple_self_signed(vec!["localhost".to_string()]).unwrap();
        let files = TlsFiles {
            cert: dir.join(format!("{name}.pem")),
            key: dir.join(format!("{name}.key")),
        };
        std::fs::write(&files.cert, cert.cert.pem()).unwrap();
        std::fs::write(&files.key, cert.signing_key.serialize_pem()).unwrap();
        files
    }

    fn served(store: &CertStore) -> Vec<u8> {
        store.current.read().unwrap().end_entity_cert().unwrap().to_vec()
    }

    #[test]
    fn errors_name_the_file_at_fault_and_a_failed_reload_keeps_the_certificate() {
        let dir = std::env::temp_dir().join(format!("sluice-tls-{}", std::process::id()));
        std::fs::create_dir_all(&dir).unwrap();
        let a = write_pair(&dir, "a");
        let b = write_pair(&dir, "b");

        let missing = TlsFiles { cert: dir.join("none.pem"), key: a.key.clone() };
        let e = CertStore::load(missing).unwrap_err().to_string();
        assert!(e.contains("none.pem"), "{e}");
        let swapped = TlsFiles { cert: a.key.clone(), key: a.cert.clone() };
        assert!(CertStore::load(swapped).is_err());
        let mismatched = TlsFiles { cert: a.cert.clone(), key: b.key.clone() };
        let e = CertStore::load(mismatched).unwrap_err().to_string();
        assert!(e.contains("a.pem") && e.contains("b.key"), "{e}");

        let store = CertStore::load(a.clone()).unwrap();
        let first = served(&store);
        // A half-written renewal (new certificate, old key) is refused; the old pair stays.
        std::fs::copy(&b.cert, &a.cert).unwrap();
        assert!(store.reload().is_err());
        assert_eq!(served(&store), first);
        // The whole new pair is taken.
        std::fs::copy(&b.key, &a.key).unwrap();
        store.reload().unwrap();
        assert_ne!(served(&store), first);
        assert_eq!(
            served(&store),
            CertStore::load(b).unwrap().current.read().unwrap().end_entity_cert().unwrap().to_vec()
        );
        let _ = std::fs::remove_dir_all(&dir);
    }
}
