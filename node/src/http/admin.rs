//! Who may read `/api/*` and `/metrics`: with `--token-file`, a request presenting
//! `Authorization: Bearer TOKEN`; with `--admin-allow`, a request from one of those address
//! ranges; either suffices. With neither, both are open (the default a newcomer meets).
//!
//! The token is kept as its SHA-256 digest; a presented token is hashed and compared in
//! constant time, so neither its content nor its length leaks through timing.

use std::net::IpAddr;
use std::sync::Arc;

use axum::extract::{Request, State};
use axum::http::{header, StatusCode};
use axum::middleware::Next;
use axum::response::{IntoResponse, Response};
use ipnet::IpNet;
use sha2::{Digest, Sha256};
use subtle::ConstantTimeEq;

use super::serve::ClientIp;

/// The admin endpoints' guard.
#[derive(Debug, Clone, Default)]
pub struct AdminGuard {
    token: Option<[u8; 32]>,
    allow: Vec<IpNet>,
}

impl AdminGuard {
    /// A guard for `token` (if any) and the `allow` ranges.
    #[must_use]
    pub fn new(token: Option<&str>, allow: Vec<IpNet>) -> AdminGuard {
        AdminGuard { token: token.map(|t| Sha256::digest(t.trim().as_bytes()).into()), allow }
    }

    /// Whether the guard lets every request through (nothing configured).
    #[must_use]
    pub fn is_open(&self) -> bool {
        self.token.is_none() && self.allow.is_empty()
    }

    /// Whether a request from `ip` with this `authorization` header value may pass.
    #[must_use]
    pub fn allows(&self, ip: Option<IpAddr>, authorization: Option<&[u8]>) -> bool {
        if self.is_open() {
            return true;
        }
        if ip.is_some_and(|ip| self.allow.iter().any(|net| net.contains(&ip))) {
            return true;
        }
        let (Some(want), Some(value)) = (&self.token, authorization) else { return false };
        let Some(presented) = bearer(value) else { return false };
        let digest: [u8; 32] = Sha256::digest(presented).into();
        bool::from(digest.ct_eq(want))
    }
}

/// The token out of an `Authorization` value: `Bearer TOKEN` (the scheme in any case).
fn bearer(value: &[u8]) -> Option<&[u8]> {
    let scheme = value.get(..7)?;
    scheme.eq_ignore_ascii_case(b"bearer ").then(|| value[7..].trim_ascii())
}

/// The middleware in front of the admin routes.
pub async fn guard(State(guard): State<Arc<AdminGuard>>, req: Request, next: Next) -> Response {
    let ip = req.extensions().get::<ClientIp>().map(|c| c.0);
    let authorization =
        req.headers().get(header::AUTHORIZATION).map(axum::http::HeaderValue::as_bytes);
    if guard.allows(ip, authorization) {
        return next.run(req).await;
    }
    (
        StatusCode::UNAUTHORIZED,
        [(header::WWW_AUTHENTICATE, "Bearer")],
        "this endpoint needs the admin token (Authorization: Bearer ...) or an allowed address\n",
    )
        .into_response()
}

#[cfg(test)]
mod tests {
    use super::*;

    fn ip(s: &str) -> Option<IpAddr> {
        Some(s.parse().unwrap())
    }

    #[test]
    fn open_without_settings_then_token_or_range() {
        assert!(AdminGuard::default().allows(ip("192.0.2.1"), None));
        let g = AdminGuard::new(Some("s3cret\n"), vec!["10.0.0.0/8".parse().unwrap()]);
        assert!(g.allows(ip("10.1.2.3"), None), "in range");
        assert!(!g.allows(ip("192.0.2.1"), None), "neither");
        assert!(g.allows(ip("192.0.2.1"), Some(b"Bearer s3cret")));
        assert!(g.allows(ip("192.0.2.1"), Some(b"bearer  s3cret ")));
        assert!(!g.allows(ip("192.0.2.1"), Some(b"Bearer s3cre")));
        assert!(!g.allows(ip("192.0.2.1"), Some(b"Basic s3cret")));
        assert!(!g.allows(None, Some(b"Bearer")));
        let ranges_only = AdminGuard::new(None, vec!["::1/128".parse().unwrap()]);
        assert!(ranges_only.allows(ip("::1"), None));
        assert!(!ranges_only.allows(ip("127.0.0.1"), Some(b"Bearer anything")));
    }
}
