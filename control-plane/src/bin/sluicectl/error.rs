//! Every way a command can fail, as one line for stderr and an exit code per kind, so scripts
//! can tell a typo from an outage from a missing stream.

use std::path::PathBuf;

/// Exit codes (also listed in `--help`).
pub mod exit {
    pub const FAILED: u8 = 1;
    pub const USAGE: u8 = 2;
    pub const UNREACHABLE: u8 = 3;
    pub const NOT_FOUND: u8 = 4;
    pub const UNAUTHORISED: u8 = 5;
    pub const UNSUPPORTED: u8 = 6;
}

#[derive(Debug, thiserror::Error)]
pub enum CtlError {
    #[error("{0}")]
    Usage(String),
    #[error("cannot reach the control plane at {endpoint}: {reason}")]
    Unreachable { endpoint: String, reason: String },
    #[error("the control plane at {endpoint} did not answer within {timeout_ms} ms")]
    TimedOut { endpoint: String, timeout_ms: u128 },
    /// The control plane answered UNAVAILABLE (e.g. no edge or origin can take the request).
    #[error("{0}")]
    Unavailable(String),
    #[error("{0}")]
    NotFound(String),
    /// The control plane refused the request in the current state (FAILED_PRECONDITION, e.g.
    /// a recording still being written).
    #[error("{0}")]
    Refused(String),
    #[error(
        "the control plane refused the call: {0} (give --token, --token-file or SLUICE_TOKEN)"
    )]
    Unauthorised(String),
    #[error("the control plane at {endpoint} does not support {call} yet")]
    Unsupported { endpoint: String, call: &'static str },
    #[error("{call} failed: {message}")]
    Server { call: &'static str, message: String },
    #[error("cannot read {}: {source}", path.display())]
    Read {
        path: PathBuf,
        #[source]
        source: std::io::Error,
    },
    #[error("cannot write {}: {source}", path.display())]
    Write {
        path: PathBuf,
        #[source]
        source: std::io::Error,
    },
    #[error("invalid config file {}: {message}", path.display())]
    Config { path: PathBuf, message: String },
    #[error("cannot encode the output as {format}: {message}")]
    Encode { format: &'static str, message: String },
    /// Some `check` failed; the ✗ lines were printed already.
    #[error("{failed} of {total} checks failed")]
    ChecksFailed { failed: usize, total: usize },
}

impl CtlError {
    pub fn exit_code(&self) -> u8 {
        match self {
            CtlError::Usage(_) | CtlError::Config { .. } => exit::USAGE,
            CtlError::Unreachable { .. } | CtlError::TimedOut { .. } | CtlError::Unavailable(_) => {
                exit::UNREACHABLE
            }
            CtlError::NotFound(_) => exit::NOT_FOUND,
            CtlError::Unauthorised(_) => exit::UNAUTHORISED,
            CtlError::Unsupported { .. } => exit::UNSUPPORTED,
            CtlError::Server { .. }
            | CtlError::Refused(_)
            | CtlError::Read { .. }
            | CtlError::Write { .. }
            | CtlError::Encode { .. }
            | CtlError::ChecksFailed { .. } => exit::FAILED,
        }
    }
}

/// The innermost cause of an error chain, without the `(os error N)` suffix: for a refused
/// connection tonic's "transport error" wraps hyper's, which wraps the `io::Error` that says
/// what happened ("connection refused").
pub fn root_cause(e: &(dyn std::error::Error + 'static)) -> String {
    let mut cause = e;
    while let Some(next) = cause.source() {
        cause = next;
    }
    let text = cause.to_string();
    let text = match text.find(" (os error") {
        Some(i) => &text[..i],
        None => &text,
    };
    let mut chars = text.chars();
    match chars.next() {
        Some(first) => first.to_lowercase().chain(chars).collect(),
        None => "unknown error".to_string(),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[derive(Debug, thiserror::Error)]
    #[error("transport error")]
    struct Outer(#[source] std::io::Error);

    #[test]
    fn root_cause_is_the_innermost_message() {
        let io = std::io::Error::new(std::io::ErrorKind::ConnectionRefused, "Connection refused");
        assert_eq!(root_cause(&Outer(io)), "connection refused");
        let os = std::io::Error::from_raw_os_error(111);
        assert!(!root_cause(&os).contains("os error"), "{}", root_cause(&os));
    }

    #[test]
    fn messages_are_one_line() {
        let e = CtlError::Unreachable {
            endpoint: "http://127.0.0.1:50051".into(),
            reason: "connection refused".into(),
        };
        assert_eq!(
            e.to_string(),
            "cannot reach the control plane at http://127.0.0.1:50051: connection refused"
        );
        assert_eq!(e.exit_code(), exit::UNREACHABLE);
        assert_eq!(CtlError::NotFound("x".into()).exit_code(), exit::NOT_FOUND);
    }
}
