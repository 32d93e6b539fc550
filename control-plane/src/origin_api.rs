//! The client of an origin's recordings API (`/api/recordings` on the node's `api` address,
//! behind the node's admin guard): plain HTTP/1 (hyper-util's pooled client) with the control
//! plane's own bearer token, every call finished by a deadline, answers read up to
//! [`MAX_BODY`] and parsed into typed records.
//!
//! What an origin answers is untrusted: an answer that is not the expected JSON within the cap
//! is an [`OriginApiError`] saying what was wrong, never a panic or an unbounded read; records
//! whose names could not be a recording's are left out. Imports nothing from the crate.

use std::time::Duration;

use axum::body::Bytes;
use axum::http::uri::Authority;
use axum::http::{header, HeaderValue, Method, Request, StatusCode, Uri};
use http_body_util::{BodyExt, Empty, LengthLimitError, Limited};
use hyper_util::client::legacy::connect::HttpConnector;
use hyper_util::client::legacy::Client;
use hyper_util::rt::TokioExecutor;
use serde::Deserialize;
use sluice_media::stream_name::StreamKey;
use tokio::time::Instant;

/// How long the origins get to answer one call of the control plane.
pub const CALL_TIMEOUT: Duration = Duration::from_secs(5);
/// The largest answer read from an origin (a listing of 1000 recordings is about 400 KiB).
pub const MAX_BODY: usize = 4 << 20;
/// The largest error answer read, and the most of it kept for a message.
const MAX_ERROR_BODY: usize = 4096;
const MAX_ERROR_TEXT: usize = 160;
/// Longest `hls`/`mp4` path taken from an origin.
const MAX_PATH_LEN: usize = 1024;

/// One recording as an origin lists it (the node's `recording::listing::RecordingInfo`).
#[derive(Debug, Clone, PartialEq, Deserialize)]
pub struct Recording {
    pub app: String,
    pub stream: String,
    /// Its start in Unix ms, as text (its directory's name).
    pub id: String,
    pub started_at_ms: u64,
    pub duration_s: f64,
    pub segments: u64,
    pub periods: u64,
    pub bytes: u64,
    pub finished: bool,
    /// `/vod/APP/STREAM/ID/index.m3u8`.
    pub hls: String,
    /// `/vod/APP/STREAM/ID.mp4`, once finished.
    pub mp4: Option<String>,
}

/// An origin's answer to a listing.
#[derive(Debug, Clone, PartialEq, Deserialize)]
pub struct Listing {
    pub recordings: Vec<Recording>,
    /// The origin's limit left some out.
    pub truncated: bool,
}

/// A recording's id: its start in Unix ms, 1 to 20 digits (the nodes' rule).
pub fn is_recording_id(id: &str) -> bool {
    !id.is_empty() && id.len() <= 20 && id.bytes().all(|b| b.is_ascii_digit())
}

/// A path the control plane may append to an origin's address: `/vod/...`, visible ASCII.
fn is_vod_path(path: &str) -> bool {
    path.starts_with("/vod/")
        && path.len() <= MAX_PATH_LEN
        && path.bytes().all(|b| b.is_ascii_graphic() && b != b'#')
}

impl Recording {
    /// Whether the record could be a recording: valid app and stream names, an id, a finite
    /// length and paths under `/vod/`.
    pub fn is_plausible(&self) -> bool {
        matches!(StreamKey::parse(&self.app, &self.stream), Ok((_, None)))
            && is_recording_id(&self.id)
            && self.duration_s.is_finite()
            && self.duration_s >= 0.0
            && is_vod_path(&self.hls)
            && self.mp4.as_deref().is_none_or(is_vod_path)
    }
}

/// Why a call to an origin gave no usable answer.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum OriginApiError {
    #[error("it advertises no api address (a version without the recordings API)")]
    NoApiAddress,
    #[error("its api address {0:?} is not HOST:PORT")]
    BadAddress(String),
    #[error("no answer within {}s", .0.as_secs())]
    Timeout(Duration),
    #[error("{0}")]
    Transport(String),
    #[error("it refused the control plane's token (HTTP {0}): give both the same --token-file")]
    Refused(u16),
    #[error("no such recording")]
    NotFound,
    #[error("the recording is still being written")]
    InProgress,
    #[error("it answered HTTP {status}: {text}")]
    Status { status: u16, text: String },
    #[error("its answer is larger than {} MiB", MAX_BODY >> 20)]
    TooLarge,
    #[error("its answer is not the recordings API's: {0}")]
    Malformed(String),
}

impl OriginApiError {
    /// Whether the origin answered that it does not hold the recording (as opposed to not
    /// answering usefully at all).
    pub fn is_answer(&self) -> bool {
        matches!(self, OriginApiError::NotFound | OriginApiError::InProgress)
    }
}

/// The client; clones share the connection pool.
#[derive(Clone)]
pub struct OriginApi {
    client: Client<HttpConnector, Empty<Bytes>>,
    /// `Bearer TOKEN`, marked sensitive (never printed); `None`: the control plane has no
    /// token and the origins' APIs must be open to it (`--admin-allow`).
    authorization: Option<HeaderValue>,
    timeout: Duration,
}

impl std::fmt::Debug for OriginApi {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("OriginApi")
            .field("token", &self.authorization.is_some())
            .field("timeout", &self.timeout)
            .finish_non_exhaustive()
    }
}

impl OriginApi {
    /// A client sending `authorization` (a `Bearer TOKEN` value) with every call.
    pub fn new(authorization: Option<HeaderValue>) -> OriginApi {
        OriginApi::with_timeout(authorization, CALL_TIMEOUT)
    }

    /// [`OriginApi::new`] with another timeout (tests).
    pub fn with_timeout(authorization: Option<HeaderValue>, timeout: Duration) -> OriginApi {
        let mut connector = HttpConnector::new();
        connector.set_connect_timeout(Some(timeout));
        connector.set_nodelay(true);
        let client = Client::builder(TokioExecutor::new())
            .pool_idle_timeout(Duration::from_secs(30))
            .pool_max_idle_per_host(2)
            .build(connector);
        let authorization = authorization.map(|mut v| {
            v.set_sensitive(true);
            v
        });
        OriginApi { client, authorization, timeout }
    }

    /// The deadline of calls made now.
    pub fn deadline(&self) -> Instant {
        Instant::now() + self.timeout
    }

    /// The recordings of the origin at `api` (`HOST:PORT`), newest first, at most `limit`;
    /// only `app`'s and `stream`'s when given (names checked by the caller). An origin that
    /// does not record (404) has none.
    pub async fn list(
        &self,
        api: &str,
        app: Option<&str>,
        stream: Option<&str>,
        limit: u32,
        deadline: Instant,
    ) -> Result<Listing, OriginApiError> {
        let mut query = format!("limit={limit}");
        for (name, value) in [("app", app), ("stream", stream)] {
            if let Some(value) = value {
                query.push_str(&format!("&{name}={value}"));
            }
        }
        let path = format!("/api/recordings?{query}");
        let body = match self.call(Method::GET, api, &path, deadline).await {
            Ok(body) => body,
            Err(OriginApiError::NotFound) => {
                return Ok(Listing { recordings: Vec::new(), truncated: false })
            }
            Err(e) => return Err(e),
        };
        let mut listing: Listing = parse(&body)?;
        let before = listing.recordings.len();
        listing.recordings.retain(Recording::is_plausible);
        if listing.recordings.len() < before {
            tracing::debug!(
                api,
                left_out = before - listing.recordings.len(),
                "an origin listed records that are no recordings"
            );
        }
        listing.recordings.truncate(usize::try_from(limit).unwrap_or(usize::MAX));
        Ok(listing)
    }

    /// The recording `app/stream/id` on the origin at `api` (names checked by the caller).
    pub async fn get(
        &self,
        api: &str,
        key: &StreamKey,
        id: &str,
        deadline: Instant,
    ) -> Result<Recording, OriginApiError> {
        let path = one_path(key, id);
        let recording: Recording = parse(&self.call(Method::GET, api, &path, deadline).await?)?;
        let same =
            recording.app == key.app() && recording.stream == key.name() && recording.id == id;
        if !same || !recording.is_plausible() {
            return Err(OriginApiError::Malformed(format!(
                "asked for {}/{id}, answered with another or an implausible record",
                key
            )));
        }
        Ok(recording)
    }

    /// Delete the finished recording `app/stream/id` on the origin at `api`.
    pub async fn delete(
        &self,
        api: &str,
        key: &StreamKey,
        id: &str,
        deadline: Instant,
    ) -> Result<(), OriginApiError> {
        self.call(Method::DELETE, api, &one_path(key, id), deadline).await.map(drop)
    }

    /// One request to `http://API/PATH`, answered with a success status by `deadline`: its body.
    async fn call(
        &self,
        method: Method,
        api: &str,
        path: &str,
        deadline: Instant,
    ) -> Result<Bytes, OriginApiError> {
        let uri = uri(api, path)?;
        let mut request = Request::builder().method(method).uri(uri);
        if let Some(value) = &self.authorization {
            request = request.header(header::AUTHORIZATION, value.clone());
        }
        let request = request
            .body(Empty::new())
            .map_err(|e| OriginApiError::BadAddress(format!("{api}: {e}")))?;
        let exchange = async {
            let response = self
                .client
                .request(request)
                .await
                .map_err(|e| OriginApiError::Transport(root_cause(&e)))?;
            let status = response.status();
            if status.is_success() {
                read(response.into_body(), MAX_BODY).await
            } else {
                let text = read(response.into_body(), MAX_ERROR_BODY).await.unwrap_or_default();
                Err(status_error(status, &text))
            }
        };
        match tokio::time::timeout_at(deadline, exchange).await {
            Ok(answer) => answer,
            Err(_) => Err(OriginApiError::Timeout(self.timeout)),
        }
    }
}

/// `/api/recordings/APP/STREAM/ID` (valid names need no escaping).
fn one_path(key: &StreamKey, id: &str) -> String {
    format!("/api/recordings/{}/{}/{id}", key.app(), key.name())
}

/// `http://API/PATH`, where `api` must be a bare `HOST:PORT` (it comes from the registry).
fn uri(api: &str, path: &str) -> Result<Uri, OriginApiError> {
    let bad = || OriginApiError::BadAddress(api.to_string());
    let authority: Authority = api.parse().map_err(|_| bad())?;
    if api.contains('@') || authority.port_u16().is_none() {
        return Err(bad());
    }
    format!("http://{authority}{path}").parse().map_err(|_| bad())
}

/// The body, up to `max` bytes.
async fn read<B>(body: B, max: usize) -> Result<Bytes, OriginApiError>
where
    B: axum::body::HttpBody,
    B::Error: Into<Box<dyn std::error::Error + Send + Sync>>,
{
    match Limited::new(body, max).collect().await {
        Ok(collected) => Ok(collected.to_bytes()),
        Err(e) if e.downcast_ref::<LengthLimitError>().is_some() => Err(OriginApiError::TooLarge),
        Err(e) => Err(OriginApiError::Transport(root_cause(e.as_ref()))),
    }
}

/// The error an unsuccessful status stands for; `body` is the origin's text (untrusted: its
/// first line, printable, shortened).
fn status_error(status: StatusCode, body: &[u8]) -> OriginApiError {
    match status {
        StatusCode::UNAUTHORIZED | StatusCode::FORBIDDEN => {
            OriginApiError::Refused(status.as_u16())
        }
        StatusCode::NOT_FOUND => OriginApiError::NotFound,
        StatusCode::CONFLICT => OriginApiError::InProgress,
        _ => {
            let text = String::from_utf8_lossy(body);
            let line = text.lines().next().unwrap_or("").trim();
            let mut text: String = line
                .chars()
                .map(|c| if c.is_control() { ' ' } else { c })
                .take(MAX_ERROR_TEXT)
                .collect();
            if text.is_empty() {
                text = status.canonical_reason().unwrap_or("no reason").to_string();
            }
            OriginApiError::Status { status: status.as_u16(), text }
        }
    }
}

fn parse<T: serde::de::DeserializeOwned>(body: &[u8]) -> Result<T, OriginApiError> {
    serde_json::from_slice(body).map_err(|e| OriginApiError::Malformed(e.to_string()))
}

/// The innermost cause of an error chain, without `(os error N)`: "connection refused".
fn root_cause(e: &(dyn std::error::Error + 'static)) -> String {
    let mut cause = e;
    while let Some(next) = cause.source() {
        cause = next;
    }
    let text = cause.to_string();
    let text = text.find(" (os error").map_or(text.as_str(), |i| &text[..i]).to_string();
    if text.is_empty() {
        "the connection failed".to_string()
    } else {
        text.to_lowercase()
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use axum::extract::Request as AxumRequest;
    use axum::response::IntoResponse;
    use axum::routing::any;
    use std::net::SocketAddr;
    use std::sync::{Arc, Mutex};

    fn record(id: &str) -> serde_json::Value {
        serde_json::json!({
            "app": "live", "stream": "x", "id": id, "started_at_ms": id.parse::<u64>().unwrap(),
            "duration_s": 10.0, "segments": 5, "periods": 1, "bytes": 1000, "finished": true,
            "hls": format!("/vod/live/x/{id}/index.m3u8"), "mp4": format!("/vod/live/x/{id}.mp4"),
        })
    }

    /// A server answering every request with `answer`; what it was asked (method, path and
    /// query, authorization) is recorded.
    async fn origin(
        answer: impl Fn() -> axum::response::Response + Clone + Send + Sync + 'static,
    ) -> (String, Arc<Mutex<Vec<(String, String, Option<String>)>>>) {
        let seen = Arc::new(Mutex::new(Vec::new()));
        let log = seen.clone();
        let app = axum::Router::new().fallback(any(move |req: AxumRequest| {
            let answer = answer.clone();
            let log = log.clone();
            async move {
                let auth = req.headers().get("authorization").map(|v| v.to_str().unwrap().into());
                let uri = req.uri().path_and_query().map(ToString::to_string).unwrap_or_default();
                crate::lock::lock(&log).push((req.method().to_string(), uri, auth));
                answer()
            }
        }));
        let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
        let addr: SocketAddr = listener.local_addr().unwrap();
        tokio::spawn(async move { axum::serve(listener, app).await });
        (addr.to_string(), seen)
    }

    fn api() -> OriginApi {
        OriginApi::with_timeout(
            Some(HeaderValue::from_static("Bearer t0k")),
            Duration::from_secs(2),
        )
    }

    fn key() -> StreamKey {
        StreamKey::parse("live", "x").unwrap().0
    }

    #[tokio::test]
    async fn a_listing_is_asked_with_the_token_and_parsed() {
        let body = serde_json::json!({
            "recordings": [record("2000"), record("1000"), {"app": "bad app", "stream": "x"},
                           {"app": "live", "stream": "x", "id": "../1", "started_at_ms": 1,
                            "duration_s": 1.0, "segments": 1, "periods": 1, "bytes": 1,
                            "finished": true, "hls": "/vod/x", "mp4": null}],
            "truncated": true,
        });
        let (addr, seen) = origin(move || axum::Json(body.clone()).into_response()).await;
        let api = api();
        let listing = api.list(&addr, Some("live"), None, 10, api.deadline()).await;
        // An unparseable record fails the whole answer; implausible ones are left out.
        assert!(matches!(listing, Err(OriginApiError::Malformed(_))), "{listing:?}");
        let seen = crate::lock::lock(&seen).clone();
        let (method, uri, auth) = &seen[0];
        assert_eq!((method.as_str(), uri.as_str()), ("GET", "/api/recordings?limit=10&app=live"));
        assert_eq!(auth.as_deref(), Some("Bearer t0k"));

        let body = serde_json::json!({
            "recordings": [record("2000"), record("1000"),
                           {"app": "live", "stream": "x", "id": "../1", "started_at_ms": 1,
                            "duration_s": 1.0, "segments": 1, "periods": 1, "bytes": 1,
                            "finished": true, "hls": "/vod/x", "mp4": null}],
            "truncated": true,
        });
        let (addr, _) = origin(move || axum::Json(body.clone()).into_response()).await;
        let listing = api.list(&addr, None, None, 1, api.deadline()).await.unwrap();
        let ids: Vec<&str> = listing.recordings.iter().map(|r| r.id.as_str()).collect();
        assert_eq!((ids, listing.truncated), (vec!["2000"], true), "at most the limit");
        let listing = api.list(&addr, None, None, 10, api.deadline()).await.unwrap();
        assert_eq!(listing.recordings.len(), 2, "the implausible record is left out");
    }

    #[tokio::test]
    async fn statuses_become_typed_errors() {
        let cases = [
            (StatusCode::UNAUTHORIZED, OriginApiError::Refused(401)),
            (StatusCode::NOT_FOUND, OriginApiError::NotFound),
            (StatusCode::CONFLICT, OriginApiError::InProgress),
            (
                StatusCode::INTERNAL_SERVER_ERROR,
                OriginApiError::Status {
                    status: 500,
                    text: "reading the recordings failed".into(),
                },
            ),
        ];
        let api = api();
        for (status, expected) in cases {
            let (addr, _) = origin(move || {
                (status, "reading the recordings failed\n\u{1b}[31mmore").into_response()
            })
            .await;
            let got = api.get(&addr, &key(), "1000", api.deadline()).await.unwrap_err();
            assert_eq!(got, expected, "{status}");
        }
        // A listing from an origin that does not record: none.
        let (addr, _) = origin(|| StatusCode::NOT_FOUND.into_response()).await;
        let listing = api.list(&addr, None, None, 5, api.deadline()).await.unwrap();
        assert!(listing.recordings.is_empty() && !listing.truncated);
        // Delete: 204 is done.
        let (addr, seen) = origin(|| StatusCode::NO_CONTENT.into_response()).await;
        api.delete(&addr, &key(), "1000", api.deadline()).await.unwrap();
        let seen = crate::lock::lock(&seen).clone();
        assert_eq!(
            (seen[0].0.as_str(), seen[0].1.as_str()),
            ("DELETE", "/api/recordings/live/x/1000")
        );
    }

    #[tokio::test]
    async fn a_recording_must_be_the_one_asked_for() {
        let (addr, _) = origin(|| axum::Json(record("1000")).into_response()).await;
        let api = api();
        assert_eq!(api.get(&addr, &key(), "1000", api.deadline()).await.unwrap().bytes, 1000);
        let other = api.get(&addr, &key(), "2000", api.deadline()).await;
        assert!(matches!(other, Err(OriginApiError::Malformed(_))), "{other:?}");
        let (addr, _) = origin(|| "<html>".into_response()).await;
        let html = api.get(&addr, &key(), "1000", api.deadline()).await;
        assert!(matches!(html, Err(OriginApiError::Malformed(_))), "{html:?}");
    }

    #[tokio::test]
    async fn a_huge_answer_is_cut_off() {
        let (addr, _) = origin(|| vec![b' '; MAX_BODY + 1].into_response()).await;
        let api = api();
        let got = api.list(&addr, None, None, 5, api.deadline()).await;
        assert_eq!(got, Err(OriginApiError::TooLarge));
    }

    #[tokio::test]
    async fn a_silent_or_absent_origin_fails_by_the_deadline() {
        // Accepts, never answers.
        let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
        let addr = listener.local_addr().unwrap().to_string();
        let api = OriginApi::with_timeout(None, Duration::from_millis(300));
        let started = Instant::now();
        let got = api.list(&addr, None, None, 5, api.deadline()).await;
        assert_eq!(got, Err(OriginApiError::Timeout(Duration::from_millis(300))));
        assert!(started.elapsed() < Duration::from_secs(2));
        drop(listener);
        // Nothing listens: refused at once.
        let port = std::net::TcpListener::bind("127.0.0.1:0").unwrap().local_addr().unwrap().port();
        let got = api.list(&format!("127.0.0.1:{port}"), None, None, 5, api.deadline()).await;
        assert!(
            matches!(&got, Err(OriginApiError::Transport(m)) if m.contains("refused")),
            "{got:?}"
        );
    }

    #[test]
    fn addresses_and_paths_from_the_registry_are_checked() {
        assert!(uri("10.0.0.5:8080", "/api/recordings").is_ok());
        assert!(uri("[fd00::7]:8080", "/api/recordings").is_ok());
        for bad in ["10.0.0.5", "user@h:1", "h:1/x", "h:1?x", "", "h :1"] {
            assert_eq!(
                uri(bad, "/api/recordings").unwrap_err(),
                OriginApiError::BadAddress(bad.into()),
                "{bad}"
            );
        }
        assert!(is_vod_path("/vod/live/x/1/index.m3u8"));
        for bad in ["/api/x", "http://evil/vod/x", "/vod/a b", "/vod/x#y", "/vod/\u{e9}"] {
            assert!(!is_vod_path(bad), "{bad}");
        }
        assert!(is_recording_id("1700000000000") && !is_recording_id("") && !is_recording_id("1a"));
        assert!(!is_recording_id(&"1".repeat(21)));
    }

    #[test]
    fn the_token_is_never_printed() {
        let api = api();
        assert!(!format!("{api:?}").contains("t0k"), "{api:?}");
        assert!(api.authorization.as_ref().unwrap().is_sensitive());
    }
}
