//! Development certificates for the cluster's mutual TLS: one CA and one certificate per
//! node, written as PEM files. Used by the `gen-certs` subcommand; production clusters bring
//! their own CA and write the same file layout.
//!
//! Layout of a TLS directory:
//! - `ca.pem`: the cluster CA certificate (every node trusts it, as server and as client);
//! - `ca.key`: the CA private key (only needed to issue more node certificates);
//! - `{node}.pem`, `{node}.key`: a node's certificate (subject alt names: the node id and
//!   `localhost`; usable as TLS server and client) and its private key.

use std::path::{Path, PathBuf};

use rcgen::{
    BasicConstraints, CertificateParams, CertifiedIssuer, DistinguishedName, DnType,
    ExtendedKeyUsagePurpose, IsCa, KeyPair, KeyUsagePurpose,
};

/// File name of the CA certificate inside a TLS directory.
pub const CA_CERT: &str = "ca.pem";
/// File name of the CA key inside a TLS directory.
pub const CA_KEY: &str = "ca.key";

/// Failures while generating or writing certificates.
#[derive(Debug, thiserror::Error)]
pub enum CertError {
    /// A node id that cannot be a file name / DNS name.
    #[error("invalid node id {0:?}: use letters, digits, '-', '_' and '.' (not first)")]
    BadNodeId(String),
    #[error("certificate generation failed: {0}")]
    Rcgen(#[from] rcgen::Error),
    #[error("writing {path}: {source}")]
    Io { path: PathBuf, source: std::io::Error },
}

/// Path of a node's certificate in `dir`.
pub fn node_cert_path(dir: &Path, node: &str) -> PathBuf {
    dir.join(format!("{node}.pem"))
}

/// Path of a node's private key in `dir`.
pub fn node_key_path(dir: &Path, node: &str) -> PathBuf {
    dir.join(format!("{node}.key"))
}

/// Whether `node` is usable as a node id in certificate file names and names.
pub fn valid_node_id(node: &str) -> bool {
    !node.is_empty()
        && node.len() <= 63
        && !node.starts_with('.')
        && node.bytes().all(|b| b.is_ascii_alphanumeric() || matches!(b, b'-' | b'_' | b'.'))
}

/// Generates a new CA and one certificate per node into `out_dir` (created if missing).
/// Existing files are overwritten. Keys are written with mode 0600 on Unix.
pub fn generate(out_dir: &Path, nodes: &[&str]) -> Result<(), CertError> {
    if let Some(bad) = nodes.iter().find(|n| !valid_node_id(n)) {
        return Err(CertError::BadNodeId((*bad).to_string()));
    }
    std::fs::create_dir_all(out_dir)
        .map_err(|source| CertError::Io { path: out_dir.to_path_buf(), source })?;

    let mut ca_params = CertificateParams::new(Vec::<String>::new())?;
    let mut dn = DistinguishedName::new();
    dn.push(DnType::CommonName, "Sluice cluster CA");
    ca_params.distinguished_name = dn;
    ca_params.is_ca = IsCa::Ca(BasicConstraints::Unconstrained);
    ca_params.key_usages = vec![
        KeyUsagePurpose::KeyCertSign,
        KeyUsagePurpose::CrlSign,
        KeyUsagePurpose::DigitalSignature,
    ];
    let ca_key = KeyPair::generate()?;
    let ca_key_pem = ca_key.serialize_pem();
    let ca = CertifiedIssuer::self_signed(ca_params, ca_key)?;
    write(&out_dir.join(CA_CERT), ca.pem().as_bytes(), false)?;
    write(&out_dir.join(CA_KEY), ca_key_pem.as_bytes(), true)?;

    for node in nodes {
        let mut params = CertificateParams::new(vec![node.to_string(), "localhost".to_string()])?;
        let mut dn = DistinguishedName::new();
        dn.push(DnType::CommonName, *node);
        params.distinguished_name = dn;
        params.key_usages = vec![KeyUsagePurpose::DigitalSignature];
        params.extended_key_usages =
            vec![ExtendedKeyUsagePurpose::ServerAuth, ExtendedKeyUsagePurpose::ClientAuth];
        let key = KeyPair::generate()?;
        let cert = params.signed_by(&key, &ca)?;
        write(&node_cert_path(out_dir, node), cert.pem().as_bytes(), false)?;
        write(&node_key_path(out_dir, node), key.serialize_pem().as_bytes(), true)?;
    }
    Ok(())
}

fn write(path: &Path, data: &[u8], secret: bool) -> Result<(), CertError> {
    let io = |source| CertError::Io { path: path.to_path_buf(), source };
    let mut opts = std::fs::OpenOptions::new();
    opts.write(true).create(true).truncate(true);
    #[cfg(unix)]
    if secret {
        use std::os::unix::fs::OpenOptionsExt;
        opts.mode(0o600);
    }
    #[cfg(not(unix))]
    let _ = secret;
    let mut f = opts.open(path).map_err(io)?;
    std::io::Write::write_all(&mut f, data).map_err(io)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn writes_the_documented_layout() {
        let dir = tempfile::tempdir().unwrap();
        generate(dir.path(), &["a", "b-2"]).unwrap();
        for f in ["ca.pem", "ca.key", "a.pem", "a.key", "b-2.pem", "b-2.key"] {
            let text = std::fs::read_to_string(dir.path().join(f)).unwrap();
            assert!(text.starts_with("-----BEGIN"), "{f}");
        }
        #[cfg(unix)]
        {
            use std::os::unix::fs::PermissionsExt;
            let mode = std::fs::metadata(dir.path().join("a.key")).unwrap().permissions().mode();
            assert_eq!(mode & 0o077, 0);
        }
    }

    #[test]
    fn refuses_bad_node_ids() {
        let dir = tempfile::tempdir().unwrap();
        for bad in ["", "../x", ".hidden", "a/b", "a b"] {
            assert!(matches!(generate(dir.path(), &[bad]), Err(CertError::BadNodeId(_))), "{bad}");
        }
    }
}
