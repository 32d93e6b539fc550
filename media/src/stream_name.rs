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
pub const RESERVED_APPS: &[&str] =
    &["api", "metrics", "healthz", "readyz", "static", "play", "assets", "hls"];

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
    ///
    /// A `?query` on the app name (clients that derive the app from a tcUrl with a query, e.g.
    /// `live?token=x`) is stripped too; the stream's query is returned when it has one, else the
    /// app's. An empty query (`name?`) is returned as `None`.
    pub fn parse(app: &str, stream: &str) -> Result<(StreamKey, Option<String>), NameError> {
        let (app, app_query) = split_query(app);
        let (name, stream_query) = split_query(stream);
        validate("app", app)?;
        if RESERVED_APPS.iter().any(|r| r.eq_ignore_ascii_case(app)) {
            return Err(NameError::ReservedApp(app.to_string()));
        }
        validate("stream", name)?;
        let query = stream_query.or(app_query).map(str::to_string);
        Ok((StreamKey { app: app.to_string(), name: name.to_string() }, query))
    }

    pub fn app(&self) -> &str {
        &self.app
    }

    pub fn name(&self) -> &str {
        &self.name
    }
}

/// Split `s` at its first `?`: (name, non-empty query).
fn split_query(s: &str) -> (&str, Option<&str>) {
    match s.split_once('?') {
        Some((name, query)) => (name, Some(query).filter(|q| !q.is_empty())),
        None => (s, None),
    }
}

/// Check one app or stream name against the naming rule.
fn validate(what: &'static str, name: &str) -> Result<(), NameError> {
    if name.is_empty() {
        return Err(NameError::Empty { what });
    }
    if name.len() > MAX_NAME_LEN {
        return Err(NameError::TooLong { what });
    }
    let allowed = |b: u8| b.is_ascii_alphanumeric() || matches!(b, b'_' | b'-' | b'.');
    if name.starts_with('.') || !name.bytes().all(allowed) {
        return Err(NameError::BadCharacter { what });
    }
    Ok(())
}

impl fmt::Display for StreamKey {
    /// `app/name`
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "{}/{}", self.app, self.name)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn key(app: &str, stream: &str) -> Result<(String, Option<String>), NameError> {
        StreamKey::parse(app, stream).map(|(k, q)| (k.to_string(), q))
    }

    #[test]
    fn allowed_names() {
        assert_eq!(key("live", "cam1"), Ok(("live/cam1".into(), None)));
        assert_eq!(key("Live_2", "a.b-C_9"), Ok(("Live_2/a.b-C_9".into(), None)));
        assert_eq!(key("l", "x..y"), Ok(("l/x..y".into(), None)));
        let (k, _) = StreamKey::parse("live", "s").unwrap();
        assert_eq!((k.app(), k.name()), ("live", "s"));
    }

    #[test]
    fn query_is_stripped_and_returned() {
        assert_eq!(
            key("live", "cam?token=abc&x=1"),
            Ok(("live/cam".into(), Some("token=abc&x=1".into())))
        );
        assert_eq!(key("live", "cam?"), Ok(("live/cam".into(), None)));
        // Query on the app (tcUrl-derived) is stripped as well.
        assert_eq!(key("live?token=x", "cam"), Ok(("live/cam".into(), Some("token=x".into()))));
        // The stream's query wins over the app's.
        assert_eq!(key("live?a=1", "cam?b=2"), Ok(("live/cam".into(), Some("b=2".into()))));
        // Only the first '?' splits; the query itself is not validated.
        assert_eq!(key("live", "cam?a=?/%"), Ok(("live/cam".into(), Some("a=?/%".into()))));
        assert_eq!(key("live", "?token"), Err(NameError::Empty { what: "stream" }));
    }

    #[test]
    fn reserved_apps_refused() {
        for app in RESERVED_APPS {
            assert_eq!(key(app, "s"), Err(NameError::ReservedApp(app.to_string())));
        }
        assert_eq!(key("API", "s"), Err(NameError::ReservedApp("API".into())));
        assert_eq!(key("metrics?x=1", "s"), Err(NameError::ReservedApp("metrics".into())));
        assert!(key("apis", "s").is_ok());
    }

    #[test]
    fn length_limits() {
        let n128 = "a".repeat(128);
        let n129 = "a".repeat(129);
        assert!(key("live", &n128).is_ok());
        assert!(key(&n128, "s").is_ok());
        assert_eq!(key("live", &n129), Err(NameError::TooLong { what: "stream" }));
        assert_eq!(key(&n129, "s"), Err(NameError::TooLong { what: "app" }));
        assert_eq!(key("", "s"), Err(NameError::Empty { what: "app" }));
        assert_eq!(key("live", ""), Err(NameError::Empty { what: "stream" }));
    }

    #[test]
    fn forbidden_characters() {
        let bad_stream = NameError::BadCharacter { what: "stream" };
        for s in [
            "..",
            ".",
            ".hidden",
            "a/b",
            "/",
            "a%2F",
            "a b",
            " ",
            "caf\u{e9}",
            "\u{1F600}",
            "a\\b",
            "a\0",
            "a\n",
            "a:b",
            "a#b",
        ] {
            assert_eq!(key("live", s), Err(bad_stream.clone()), "{s:?}");
        }
        assert_eq!(key("li/ve", "s"), Err(NameError::BadCharacter { what: "app" }));
        assert_eq!(key("..", "s"), Err(NameError::BadCharacter { what: "app" }));
    }
}
