//! The bearer token: which calls need it, how it is compared, and the two thin layers that
//! enforce it (a tower layer in front of every gRPC service, an axum middleware in front of the
//! HTTP port).
//!
//! One rule, keyed on the request path ([`is_protected`]): every method of
//! `sluice.control.v1.ControlPlane` needs `authorization: Bearer TOKEN` except `AssignViewer`
//! and `ResolveIngest`, which players and encoders call; health, reflection and KEDA's external
//! scaler stay open (KEDA cannot send a token, and the scaler only tells viewer counts). On the
//! HTTP port, `/api/...` (and `/metrics` with `--metrics-private`) needs the same token as an
//! `Authorization: Bearer` header, or a client address in `--admin-allow`; `/play/...`,
//! `/healthz`, `/readyz` and the page stay open. A method added to the service later is
//! protected unless it is listed open here.
//!
//! The token is kept as its SHA-256 digest and a presented token is hashed and compared in
//! constant time (`subtle`), so neither its content nor its length leaks through timing. Its
//! text is also kept, in memory only, as the `Authorization` value the control plane sends to
//! the origins' recordings API (they share the token); it is never printed.

use crate::counters::Counters;
use crate::lock::lock;
use axum::extract::{ConnectInfo, Request, State};
use axum::http::{self, header, HeaderValue, StatusCode};
use axum::middleware::Next;
use axum::response::{IntoResponse, Response};
use sha2::{Digest, Sha256};
use std::net::SocketAddr;
use std::path::{Path, PathBuf};
use std::sync::{Arc, Mutex};
use std::task::{Context, Poll};
use std::time::Duration;
use subtle::ConstantTimeEq;
use tokio::time::Instant;

/// The gRPC service whose methods need the token.
pub const PROTECTED_SERVICE: &str = "sluice.control.v1.ControlPlane";

/// Methods of [`PROTECTED_SERVICE`] anyone may call.
pub const OPEN_METHODS: &[&str] = &["AssignViewer", "ResolveIngest"];

/// Whether the gRPC call at `path` (`/package.Service/Method`) needs the token.
pub fn is_protected(path: &str) -> bool {
    let Some((service, method)) = path.strip_prefix('/').and_then(|p| p.split_once('/')) else {
        return false;
    };
    service == PROTECTED_SERVICE && !OPEN_METHODS.contains(&method)
}

/// Whether the HTTP request at `path` needs the token: the page's data under `/api/`, and
/// `/metrics` when it is private.
pub fn is_protected_http(path: &str, private_metrics: bool) -> bool {
    path == "/api" || path.starts_with("/api/") || (private_metrics && path == "/metrics")
}

/// The token out of an `authorization` value: `Bearer TOKEN` (the scheme in any case).
pub fn bearer(value: &[u8]) -> Option<&[u8]> {
    let scheme = value.get(..7)?;
    scheme.eq_ignore_ascii_case(b"bearer ").then(|| value[7..].trim_ascii())
}

/// Why the token could not be loaded.
#[derive(Debug, thiserror::Error)]
pub enum TokenError {
    #[error("reading the token file {}: {source}", path.display())]
    Read { path: PathBuf, source: std::io::Error },
    #[error("the token file {} is empty", path.display())]
    EmptyFile { path: PathBuf },
    #[error("SLUICE_TOKEN is set but empty")]
    EmptyEnv,
}

/// The configured token: its digest, for checking, and the `Bearer` value of its text, for
/// the control plane's own calls to the origins.
#[derive(Clone)]
pub struct Token {
    digest: [u8; 32],
    /// `Bearer TOKEN`, marked sensitive; `None` when the text cannot be a header value.
    authorization: Option<HeaderValue>,
}

impl std::fmt::Debug for Token {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str("Token(..)")
    }
}

impl Token {
    /// A token from its text; surrounding whitespace (a file's final newline) is not part of it.
    pub fn new(text: &str) -> Option<Token> {
        let text = text.trim();
        (!text.is_empty()).then(|| {
            let authorization =
                HeaderValue::from_str(&format!("Bearer {text}")).ok().map(|mut v| {
                    v.set_sensitive(true);
                    v
                });
            Token { digest: Sha256::digest(text.as_bytes()).into(), authorization }
        })
    }

    /// `authorization: Bearer TOKEN` for the control plane's calls to the origins' APIs
    /// (marked sensitive); `None` when the token holds characters a header cannot carry.
    pub fn authorization(&self) -> Option<HeaderValue> {
        self.authorization.clone()
    }

    /// The token in `path` (its whole content, trimmed).
    pub fn from_file(path: &Path) -> Result<Token, TokenError> {
        let text = std::fs::read_to_string(path)
            .map_err(|source| TokenError::Read { path: path.to_path_buf(), source })?;
        Token::new(&text).ok_or_else(|| TokenError::EmptyFile { path: path.to_path_buf() })
    }

    /// The token from `file` if given, else from the `SLUICE_TOKEN` value `env` if set; `None`
    /// when neither is (the control plane then runs open).
    pub fn load(file: Option<&Path>, env: Option<&str>) -> Result<Option<Token>, TokenError> {
        match (file, env) {
            (Some(path), _) => Token::from_file(path).map(Some),
            (None, Some(text)) => Token::new(text).map(Some).ok_or(TokenError::EmptyEnv),
            (None, None) => Ok(None),
        }
    }

    /// Whether `presented` is the token, in time independent of both.
    pub fn matches(&self, presented: &[u8]) -> bool {
        let digest: [u8; 32] = Sha256::digest(presented).into();
        digest.ct_eq(&self.digest).into()
    }
}

/// Why a call was refused; the message is what the client reads.
#[derive(Debug, Clone, Copy, PartialEq, Eq, thiserror::Error)]
pub enum Refusal {
    #[error("this call needs a bearer token: send `authorization: Bearer TOKEN`")]
    Missing,
    #[error("the bearer token is wrong")]
    Wrong,
}

/// The decision for one protected request, from its `authorization` value (sans-IO).
pub fn check(token: Option<&Token>, authorization: Option<&[u8]>) -> Result<(), Refusal> {
    let Some(token) = token else { return Ok(()) };
    let presented = authorization.and_then(bearer).ok_or(Refusal::Missing)?;
    if token.matches(presented) {
        Ok(())
    } else {
        Err(Refusal::Wrong)
    }
}

/// Lets one warning through per `interval` and counts the ones it held back (sans-IO: the
/// time is an argument).
#[derive(Debug)]
pub struct WarnLimiter {
    interval: Duration,
    last: Option<Instant>,
    held: u64,
}

impl WarnLimiter {
    pub fn new(interval: Duration) -> WarnLimiter {
        WarnLimiter { interval, last: None, held: 0 }
    }

    /// `Some(held back since the last one)` when a warning may be logged at `now`.
    pub fn allow(&mut self, now: Instant) -> Option<u64> {
        if self.last.is_some_and(|t| now.saturating_duration_since(t) < self.interval) {
            self.held += 1;
            return None;
        }
        self.last = Some(now);
        Some(std::mem::take(&mut self.held))
    }
}

/// What both layers share: the token, the counter of refusals and the warning limiter.
pub struct Auth {
    token: Option<Token>,
    counters: Arc<Counters>,
    warnings: Mutex<WarnLimiter>,
    http: HttpPolicy,
}

/// Who gets the HTTP port's protected paths without the token.
#[derive(Debug, Clone, Default)]
pub struct HttpPolicy {
    /// Client address ranges let in without the token (`--admin-allow`).
    pub allow: Vec<ipnet::IpNet>,
    /// `/metrics` needs the token (or an allowed address) too (`--metrics-private`).
    pub private_metrics: bool,
}

/// At most one warning about refused calls per this interval.
pub const WARN_INTERVAL: Duration = Duration::from_secs(10);

impl Auth {
    pub fn new(token: Option<Token>, counters: Arc<Counters>) -> Arc<Auth> {
        Auth::with_http(token, counters, HttpPolicy::default())
    }

    /// [`Auth::new`] with who gets the HTTP port's protected paths without the token.
    pub fn with_http(token: Option<Token>, counters: Arc<Counters>, http: HttpPolicy) -> Arc<Auth> {
        let warnings = Mutex::new(WarnLimiter::new(WARN_INTERVAL));
        Arc::new(Auth { token, counters, warnings, http })
    }

    pub fn enabled(&self) -> bool {
        self.token.is_some()
    }

    /// Check a request to `path` (already known to be protected), counting and logging a
    /// refusal.
    fn admit(
        &self,
        what: &str,
        path: &str,
        authorization: Option<&HeaderValue>,
    ) -> Result<(), Refusal> {
        let result = check(self.token.as_ref(), authorization.map(HeaderValue::as_bytes));
        if let Err(refusal) = result {
            self.counters.unauthenticated();
            if let Some(held) = lock(&self.warnings).allow(Instant::now()) {
                tracing::warn!(%what, %path, reason = %refusal, similar_held_back = held, "call refused");
            }
        }
        result
    }
}

/// The tower layer in front of the gRPC services.
#[derive(Clone)]
pub struct GrpcAuthLayer(pub Arc<Auth>);

impl<S> tower::Layer<S> for GrpcAuthLayer {
    type Service = GrpcAuth<S>;

    fn layer(&self, inner: S) -> GrpcAuth<S> {
        GrpcAuth { auth: self.0.clone(), inner }
    }
}

/// [`GrpcAuthLayer`]'s service: answers UNAUTHENTICATED itself or passes the call on.
#[derive(Clone)]
pub struct GrpcAuth<S> {
    auth: Arc<Auth>,
    inner: S,
}

impl<S, B, R> tower::Service<http::Request<B>> for GrpcAuth<S>
where
    S: tower::Service<http::Request<B>, Response = http::Response<R>>,
    R: Default,
{
    type Response = http::Response<R>;
    type Error = S::Error;
    type Future = futures_util::future::Either<
        std::future::Ready<Result<http::Response<R>, S::Error>>,
        S::Future,
    >;

    fn poll_ready(&mut self, cx: &mut Context<'_>) -> Poll<Result<(), S::Error>> {
        self.inner.poll_ready(cx)
    }

    fn call(&mut self, req: http::Request<B>) -> Self::Future {
        let path = req.uri().path();
        if is_protected(path) {
            let authorization = req.headers().get(header::AUTHORIZATION);
            if let Err(refusal) = self.auth.admit("gRPC", path, authorization) {
                let status = tonic::Status::unauthenticated(refusal.to_string());
                return futures_util::future::Either::Left(std::future::ready(Ok(
                    status.into_http()
                )));
            }
        }
        futures_util::future::Either::Right(self.inner.call(req))
    }
}

/// The axum middleware in front of the HTTP port (`axum::middleware::from_fn_with_state`).
pub async fn http_guard(State(auth): State<Arc<Auth>>, req: Request, next: Next) -> Response {
    let path = req.uri().path();
    let peer = req.extensions().get::<ConnectInfo<SocketAddr>>().map(|c| c.0.ip().to_canonical());
    let allowed = peer.is_some_and(|ip| auth.http.allow.iter().any(|net| net.contains(&ip)));
    if is_protected_http(path, auth.http.private_metrics) && !allowed {
        if let Err(refusal) = auth.admit("HTTP", path, req.headers().get(header::AUTHORIZATION)) {
            return (
                StatusCode::UNAUTHORIZED,
                [(header::WWW_AUTHENTICATE, "Bearer")],
                format!("{refusal}\n"),
            )
                .into_response();
        }
    }
    next.run(req).await
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn management_and_listings_are_protected_players_and_standard_services_are_not() {
        for method in [
            "ListNodes",
            "ListStreams",
            "GetNode",
            "GetStream",
            "GetCapacity",
            "DrainNode",
            "UndrainNode",
            "KickPublisher",
            "Watch",
            "ListRecordings",
            "GetRecording",
            "DeleteRecording",
            "SetLadder",
            "DeleteLadder",
            "ListLadders",
            "AddScheduleEntry",
            "RemoveScheduleEntry",
            "ListSchedule",
            "SearchCatalog",
            "GetCatalogItem",
            "UpdateCatalogItem",
            "SomeMethodAddedLater",
        ] {
            assert!(is_protected(&format!("/sluice.control.v1.ControlPlane/{method}")), "{method}");
        }
        for path in [
            "/sluice.control.v1.ControlPlane/AssignViewer",
            "/sluice.control.v1.ControlPlane/ResolveIngest",
            "/grpc.health.v1.Health/Check",
            "/grpc.health.v1.Health/Watch",
            "/grpc.reflection.v1.ServerReflection/ServerReflectionInfo",
            "/grpc.reflection.v1alpha.ServerReflection/ServerReflectionInfo",
            "/externalscaler.ExternalScaler/GetMetrics",
            "/",
            "",
            "/sluice.control.v1.ControlPlane",
        ] {
            assert!(!is_protected(path), "{path}");
        }
        assert!(is_protected_http("/api/cluster", false));
        assert!(is_protected_http("/api", false));
        for open in ["/", "/play/live/x.flv", "/healthz", "/readyz", "/metrics", "/apix", "/app.js"]
        {
            assert!(!is_protected_http(open, false), "{open}");
        }
        assert!(is_protected_http("/metrics", true), "a private /metrics");
        assert!(!is_protected_http("/play/live/x.flv", true));
    }

    #[test]
    fn only_the_right_bearer_token_passes() {
        let token = Token::new("s3cret\n").unwrap();
        assert_eq!(check(Some(&token), Some(b"Bearer s3cret")), Ok(()));
        assert_eq!(check(Some(&token), Some(b"bearer  s3cret ")), Ok(()));
        assert_eq!(check(Some(&token), Some(b"Bearer s3cre")), Err(Refusal::Wrong));
        assert_eq!(check(Some(&token), Some(b"Bearer ")), Err(Refusal::Wrong));
        assert_eq!(check(Some(&token), Some(b"Basic czNjcmV0")), Err(Refusal::Missing));
        assert_eq!(check(Some(&token), Some(b"s3cret")), Err(Refusal::Missing));
        assert_eq!(check(Some(&token), None), Err(Refusal::Missing));
        // Without a token everything passes.
        assert_eq!(check(None, None), Ok(()));
        assert!(Token::new(" \n").is_none());
        assert_eq!(format!("{token:?}"), "Token(..)", "never printed");
        let value = token.authorization().unwrap();
        assert_eq!((value.to_str().unwrap(), value.is_sensitive()), ("Bearer s3cret", true));
        assert!(Token::new("a\u{7}b").unwrap().authorization().is_none());
    }

    #[test]
    fn the_token_comes_from_the_file_first_then_the_environment() {
        let dir = std::env::temp_dir().join(format!("sluice-cp-token-{}", std::process::id()));
        std::fs::create_dir_all(&dir).unwrap();
        let file = dir.join("token");
        std::fs::write(&file, "from-file\n").unwrap();
        let t = Token::load(Some(&file), Some("from-env")).unwrap().unwrap();
        assert!(t.matches(b"from-file"));
        let t = Token::load(None, Some("from-env")).unwrap().unwrap();
        assert!(t.matches(b"from-env"));
        assert!(Token::load(None, None).unwrap().is_none());
        assert!(matches!(Token::load(None, Some("")), Err(TokenError::EmptyEnv)));
        std::fs::write(&file, "\n").unwrap();
        assert!(matches!(Token::load(Some(&file), None), Err(TokenError::EmptyFile { .. })));
        let missing = dir.join("missing");
        assert!(matches!(Token::load(Some(&missing), None), Err(TokenError::Read { .. })));
        let _ = std::fs::remove_dir_all(&dir);
    }

    #[test]
    fn warnings_are_rate_limited_and_count_what_they_held_back() {
        let start = Instant::now();
        let mut w = WarnLimiter::new(Duration::from_secs(10));
        assert_eq!(w.allow(start), Some(0));
        assert_eq!(w.allow(start + Duration::from_secs(1)), None);
        assert_eq!(w.allow(start + Duration::from_secs(9)), None);
        assert_eq!(w.allow(start + Duration::from_secs(10)), Some(2));
        assert_eq!(w.allow(start + Duration::from_secs(11)), None);
    }
}
