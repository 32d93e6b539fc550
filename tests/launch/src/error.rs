//! Why a process could not be started.

use std::path::PathBuf;
use std::process::ExitStatus;
use std::time::Duration;

#[derive(Debug, thiserror::Error)]
pub enum LaunchError {
    #[error("starting {program}: {source}")]
    Spawn {
        program: String,
        #[source]
        source: std::io::Error,
    },
    #[error("{what}: {source}")]
    Io {
        what: String,
        #[source]
        source: std::io::Error,
    },
    #[error("{name} exited while starting ({status}); log {}:\n{tail}", log.display())]
    Exited { name: String, status: ExitStatus, log: PathBuf, tail: String },
    #[error("{name}: {what} within {timeout:?}; log {}:\n{tail}", log.display())]
    Timeout { name: String, what: String, timeout: Duration, log: PathBuf, tail: String },
    #[error("{name}: unexpected first stdout line {line:?}; log {}:\n{tail}", log.display())]
    Listening { name: String, line: String, log: PathBuf, tail: String },
    #[error("gen-certs failed ({status}): {stderr}")]
    Certs { status: ExitStatus, stderr: String },
    #[error("gen-certs wrote no certificate or key for {node}")]
    CertMissing { node: String },
}

impl LaunchError {
    pub(crate) fn io(what: impl Into<String>, source: std::io::Error) -> LaunchError {
        LaunchError::Io { what: what.into(), source }
    }
}

/// The last `n` lines of a text file (empty when it cannot be read).
pub fn tail(path: &std::path::Path, n: usize) -> String {
    let text = std::fs::read_to_string(path).unwrap_or_default();
    let lines: Vec<&str> = text.lines().collect();
    lines[lines.len().saturating_sub(n)..].join("\n")
}
