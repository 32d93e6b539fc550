//! The Hello identity check: with the cluster's mutual TLS, the node id a peer sends in its
//! `Hello` must be one of the DNS names (subject alternative names) of the certificate it
//! presented, compared exactly. `localhost`, which every development certificate carries,
//! names no node. Without certificates ([`RelayTls::InsecureDev`]) nothing is checked.
//!
//! The names are read with a small DER walker (only the path to the SAN extension) from a
//! certificate rustls already verified against the cluster CA; any structure it does not
//! expect yields no names, so the check fails closed.

use rustls::pki_types::CertificateDer;

use crate::tls::RelayTls;

/// The name every development certificate carries; never a node's identity.
const NOT_AN_IDENTITY: &str = "localhost";

/// Checks `claimed` (a peer's Hello node id) against the certificate the peer presented on
/// `conn`. `Err` carries the certificate's DNS names for the error message.
pub(crate) fn check_peer(
    conn: &quinn::Connection,
    tls: &RelayTls,
    claimed: &str,
) -> Result<(), Vec<String>> {
    if matches!(tls, RelayTls::InsecureDev) {
        return Ok(());
    }
    let names = conn
        .peer_identity()
        .and_then(|any| any.downcast::<Vec<CertificateDer<'static>>>().ok())
        .and_then(|chain| chain.first().map(|leaf| dns_names(leaf)))
        .unwrap_or_default();
    if is_identity(&names, claimed) {
        Ok(())
    } else {
        Err(names)
    }
}

/// The DNS names of this node's own certificate (empty without certificates).
pub(crate) fn own_names(tls: &RelayTls) -> Vec<String> {
    match tls {
        RelayTls::Cluster { chain, .. } => chain.first().map(|c| dns_names(c)).unwrap_or_default(),
        RelayTls::InsecureDev => Vec::new(),
    }
}

/// Whether `claimed` is one of `names` and may name a node.
fn is_identity(names: &[String], claimed: &str) -> bool {
    !claimed.eq_ignore_ascii_case(NOT_AN_IDENTITY) && names.iter().any(|n| n == claimed)
}

/// The `dNSName` entries of a DER certificate's subject alternative names (empty when the
/// certificate has none or is not structured as expected).
pub(crate) fn dns_names(cert: &[u8]) -> Vec<String> {
    san_dns_names(cert).unwrap_or_default()
}

/// DER tags on the path to the names.
const SEQUENCE: u8 = 0x30;
const OID: u8 = 0x06;
const OCTET_STRING: u8 = 0x04;
/// `[3] EXPLICIT Extensions` in `TBSCertificate`.
const EXTENSIONS: u8 = 0xa3;
/// `dNSName [2] IMPLICIT IA5String` in `GeneralName`.
const DNS_NAME: u8 = 0x82;
/// The content of OID 2.5.29.17 (subjectAltName).
const SAN_OID: &[u8] = &[0x55, 0x1d, 0x11];

fn san_dns_names(cert: &[u8]) -> Option<Vec<String>> {
    // Certificate ::= SEQUENCE { tbsCertificate SEQUENCE, ... }
    let certificate = Der(cert).expect(SEQUENCE)?;
    let tbs = Der(certificate).expect(SEQUENCE)?;
    let mut fields = Der(tbs);
    let extensions = loop {
        let (tag, content) = fields.next()?;
        if tag == EXTENSIONS {
            break Der(content).expect(SEQUENCE)?;
        }
    };
    let mut extensions = Der(extensions);
    while let Some((tag, extension)) = extensions.next() {
        if tag != SEQUENCE {
            return None;
        }
        // Extension ::= SEQUENCE { extnID OID, critical BOOLEAN DEFAULT FALSE, extnValue }
        let mut parts = Der(extension);
        let (OID, oid) = parts.next()? else {
            return None;
        };
        if oid != SAN_OID {
            continue;
        }
        let value = loop {
            match parts.next()? {
                (OCTET_STRING, value) => break value,
                _ => continue, // the critical flag
            }
        };
        let mut general_names = Der(Der(value).expect(SEQUENCE)?);
        let mut names = Vec::new();
        while let Some((tag, name)) = general_names.next() {
            if tag == DNS_NAME {
                if let Ok(name) = std::str::from_utf8(name) {
                    names.push(name.to_string());
                }
            }
        }
        return Some(names);
    }
    Some(Vec::new())
}

/// A cursor over consecutive DER elements (single-byte tags, definite lengths).
struct Der<'a>(&'a [u8]);

impl<'a> Der<'a> {
    /// The next element's tag and content.
    fn next(&mut self) -> Option<(u8, &'a [u8])> {
        let (&tag, rest) = self.0.split_first()?;
        if tag & 0x1f == 0x1f {
            return None; // multi-byte tag: not on our path
        }
        let (&first, mut rest) = rest.split_first()?;
        let len = if first < 0x80 {
            usize::from(first)
        } else {
            let n = usize::from(first & 0x7f);
            if n == 0 || n > 4 {
                return None;
            }
            let (bytes, after) = rest.split_at_checked(n)?;
            rest = after;
            bytes.iter().fold(0usize, |acc, &b| (acc << 8) | usize::from(b))
        };
        let (content, after) = rest.split_at_checked(len)?;
        self.0 = after;
        Some((tag, content))
    }

    /// The content of the next element when it has tag `tag`.
    fn expect(mut self, tag: u8) -> Option<&'a [u8]> {
        match self.next()? {
            (t, content) if t == tag => Some(content),
            _ => None,
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use proptest::prelude::*;
    use rcgen::{CertificateParams, KeyPair, SanType};

    fn cert(names: &[&str]) -> Vec<u8> {
        let mut params = CertificateParams::new(
            names.iter().map(std::string::ToString::to_string).collect::<Vec<_>>(),
        )
        .unwrap();
        params.subject_alt_names.push(SanType::IpAddress("10.0.0.7".parse().unwrap()));
        let key = KeyPair::generate().unwrap();
        params.self_signed(&key).unwrap().der().to_vec()
    }

    #[test]
    fn reads_the_dns_names_of_a_certificate() {
        let der = cert(&["node-a", "localhost", "node_a.cluster"]);
        assert_eq!(dns_names(&der), ["node-a", "localhost", "node_a.cluster"]);
        assert_eq!(dns_names(&cert(&[])), Vec::<String>::new());
    }

    #[test]
    fn reads_the_names_of_generated_node_certificates() {
        let dir = tempfile::tempdir().unwrap();
        crate::certs::generate(dir.path(), &["origin-a"]).unwrap();
        let tls = RelayTls::from_dir(dir.path(), "origin-a").unwrap();
        assert_eq!(own_names(&tls), ["origin-a", "localhost"]);
        assert!(own_names(&RelayTls::insecure_dev()).is_empty());
    }

    #[test]
    fn only_an_exact_name_other_than_localhost_is_an_identity() {
        let names: Vec<String> = ["node-a", "localhost"].map(String::from).to_vec();
        assert!(is_identity(&names, "node-a"));
        assert!(!is_identity(&names, "node-b"));
        assert!(!is_identity(&names, "Node-A"));
        assert!(!is_identity(&names, "node-"));
        assert!(!is_identity(&names, "localhost"));
        assert!(!is_identity(&["LocalHost".to_string()], "LocalHost"));
        assert!(!is_identity(&[], ""));
    }

    #[test]
    fn a_truncated_certificate_has_no_names() {
        let der = cert(&["node-a"]);
        for cut in 0..der.len() {
            // Cutting the outer element short always breaks its length.
            assert!(dns_names(&der[..cut]).is_empty(), "cut at {cut}");
        }
    }

    proptest! {
        #[test]
        fn arbitrary_bytes_never_panic(bytes in proptest::collection::vec(any::<u8>(), 0..400)) {
            let _ = dns_names(&bytes);
        }

        #[test]
        fn corrupted_certificates_never_panic(
            flips in proptest::collection::vec((any::<proptest::sample::Index>(), any::<u8>()), 1..8)
        ) {
            let mut der = cert(&["node-a", "localhost"]);
            for (at, byte) in flips {
                let i = at.index(der.len());
                der[i] = byte;
            }
            let _ = dns_names(&der);
        }
    }
}
