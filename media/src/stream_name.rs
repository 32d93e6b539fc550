//! Stream naming: which app and stream names are allowed, and how a key is formed.
//!
//! Rule: an app or stream name is 1 to 128 bytes of ASCII letters, digits, `_`, `-` and `.`,
//! not starting with `.`. Anything after the first `?` of a stream name (tokens, query
//! parameters) is stripped and returned separately. App names reserved for the HTTP API
//! ([`RESERVED_APPS`]) are refused. A valid key is therefore safe as a registry key and as a
//! URL path segment without escaping.

use std::fmt;

pub const MAX_NAME_LEN: usize = 128;
/// App names that collide with HTTP routes.
pub const RESERVED_APPS: &[&str] = &["api", "metrics", "healthz", "readyz", "static", "play", "assets", "hls"];

#[derive(Debug, Clone, PartialEq, Eq, Hash, PartialOrd, Ord)]
pub struct StreamKey {
    app: String,
    name: String,
}

#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum NameError {
    #[error("{what} name is empty")]
    Empty { what: &'static str },
    #[error("{what} name is longer than {MAX_NAME_LEN} bytes")]
    TooLong { what: &'static str },
    #[error("{what} name contains a character outside [A-Za-z0-9_.-] or starts with '.'")]
    BadCharacter { what: &'static str },
    #[error("app name '{0}' is reserved")]
    ReservedApp(String),
}

impl StreamKey {
    /// Validate `app` and `stream` (which may carry a `?query`, stripped and returned).
    pub fn parse(app: &str, stream: &str) -> Result<(StreamKey, Option<String>), NameError> {
        todo!()
    }

    pub fn app(&self) -> &str {
        &self.app
    }

    pub fn name(&self) -> &str {
        &self.name
    }
}

impl fmt::Display for StreamKey {
    /// `app/name`
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "{}/{}", self.app, self.name)
    }
}
