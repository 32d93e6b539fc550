//! Development certificates for the relay's mutual TLS: a CA and one certificate per node,
//! written by `sluice-origin gen-certs` (the one implementation, in `sluice-relay`; running the
//! binary keeps this crate free of Sluice crates).

use std::path::Path;
use std::process::Command;

use crate::error::LaunchError;

/// Whether `dir` holds the CA and a certificate and key for every node.
pub fn present(dir: &Path, nodes: &[&str]) -> bool {
    dir.join("ca.pem").is_file()
        && nodes.iter().all(|n| {
            dir.join(format!("{n}.pem")).is_file() && dir.join(format!("{n}.key")).is_file()
        })
}

/// Write a CA and certificates for `nodes` into `dir` with `ORIGIN_BIN gen-certs`.
pub fn gen_certs(origin_bin: &Path, dir: &Path, nodes: &[&str]) -> Result<(), LaunchError> {
    let out = Command::new(origin_bin)
        .args(["gen-certs", "--out"])
        .arg(dir)
        .args(["--nodes", &nodes.join(",")])
        .output()
        .map_err(|source| LaunchError::Spawn {
            program: format!("{} gen-certs", origin_bin.display()),
            source,
        })?;
    if !out.status.success() {
        let stderr = String::from_utf8_lossy(&out.stderr).into_owned();
        return Err(LaunchError::Certs { status: out.status, stderr });
    }
    match nodes.iter().find(|n| !present(dir, &[n])) {
        Some(n) => Err(LaunchError::CertMissing { node: n.to_string() }),
        None => Ok(()),
    }
}
