//! Play authorisation: the streams of private apps play only from a signed URL. Sans-IO: the
//! query and the time come in as arguments.
//!
//! `--play-private-apps` lists the apps whose streams are private (`*`: every app). A viewer of
//! a private stream must bring `?token=EXPIRY.SIGNATURE` ([`sluice_cluster::signed_token`],
//! purpose `play`, signed with `--play-token-secret-file`): in the RTMP play name
//! (`rtmp://host/app/name?token=…`), the HTTP-FLV URL, or the HLS playlist URL. The control
//! plane hands out such URLs from `AssignViewer` when it has the same secret, and
//! `sluice-origin play-token` makes one by hand. HLS checks the token where a session starts;
//! the session id then carried in every URI the playlists hand out is bound to the stream
//! (see [`crate::hls`]), so segments need no token of their own. A node with private apps
//! and no secret refuses their viewers (it cannot check a token); the configuration check at
//! start refuses that combination.
//!
//! `--play-webhook-apps` lists the apps whose viewers the webhook admits (`on_play`, see
//! [`crate::webhook`]); this module only says which those are ([`PlayAuth::asks_webhook`]).
//! A stream may be both: the token is checked first, then the webhook asked.

use std::net::IpAddr;
use std::sync::{Arc, RwLock};

use sluice_cluster::signed_token::{self, Purpose, TokenError};
use sluice_media::stream_name::StreamKey;

/// Why a viewer was refused; the text is what the viewer is told (it names the app only).
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum PlayAuthError {
    #[error("stream in app '{0}' is private: play it from a signed URL (?token=)")]
    Missing(String),
    #[error("invalid play token (app '{0}')")]
    Invalid(String),
    #[error("the play token has expired (app '{0}')")]
    Expired(String),
}

impl PlayAuthError {
    /// A short label for the refusal metric.
    #[must_use]
    pub fn label(&self) -> &'static str {
        match self {
            PlayAuthError::Missing(_) => "missing",
            PlayAuthError::Invalid(_) => "bad_token",
            PlayAuthError::Expired(_) => "expired",
        }
    }
}

/// A node's play policy; the default lets everyone play everything. The secret can be
/// replaced while serving (SIGHUP rereads `--play-token-secret-file`): tokens signed with the
/// new one are taken from then on.
#[derive(Debug, Default)]
pub struct PlayAuth {
    secret: RwLock<Option<Arc<[u8]>>>,
    private_apps: Vec<String>,
    webhook_apps: Vec<String>,
}

impl PlayAuth {
    pub fn new(secret: Option<Vec<u8>>, private_apps: Vec<String>) -> PlayAuth {
        PlayAuth {
            secret: RwLock::new(secret.map(Into::into)),
            private_apps,
            webhook_apps: Vec::new(),
        }
    }

    /// The apps whose viewers the webhook admits (`*`: every app).
    #[must_use]
    pub fn with_webhook_apps(mut self, apps: Vec<String>) -> PlayAuth {
        self.webhook_apps = apps;
        self
    }

    /// Check tokens with `secret` from now on.
    pub fn replace_secret(&self, secret: Vec<u8>) {
        *self.secret.write().unwrap_or_else(std::sync::PoisonError::into_inner) =
            Some(secret.into());
    }

    fn secret(&self) -> Option<Arc<[u8]>> {
        self.secret.read().unwrap_or_else(std::sync::PoisonError::into_inner).clone()
    }

    /// Whether the webhook admits viewers of `stream`.
    #[must_use]
    pub fn asks_webhook(&self, stream: &StreamKey) -> bool {
        self.webhook_apps.iter().any(|a| a == "*" || a == stream.app())
    }

    /// Whether any stream needs a token or the webhook's consent.
    #[must_use]
    pub fn is_on(&self) -> bool {
        !self.private_apps.is_empty() || !self.webhook_apps.is_empty()
    }

    /// Whether viewers of `stream` need a token.
    #[must_use]
    pub fn is_private(&self, stream: &StreamKey) -> bool {
        self.private_apps.iter().any(|a| a == "*" || a == stream.app())
    }

    /// A token of this node's own for `stream`, valid `secs` from `now_unix` and bound to no
    /// address, when the stream is private: what an edge shows an origin for a viewer it has
    /// already admitted (the viewer's own token may be bound to the viewer's address).
    #[must_use]
    pub fn upstream_token(&self, stream: &StreamKey, now_unix: u64, secs: u64) -> Option<String> {
        if !self.is_private(stream) {
            return None;
        }
        let secret = self.secret()?;
        Some(PlayAuth::token(&secret, stream, now_unix.saturating_add(secs)))
    }

    /// Whether a viewer of `stream` at `client` whose request had `query` may play at
    /// `now_unix` (a token bound to an address holds only for that client).
    pub fn check(
        &self,
        stream: &StreamKey,
        query: Option<&str>,
        client: Option<IpAddr>,
        now_unix: u64,
    ) -> Result<(), PlayAuthError> {
        if !self.is_private(stream) {
            return Ok(());
        }
        let app = || stream.app().to_string();
        let token = form_urlencoded::parse(query.unwrap_or_default().as_bytes())
            .find(|(k, _)| k == "token")
            .map(|(_, v)| v)
            .ok_or_else(|| PlayAuthError::Missing(app()))?;
        let secret = self.secret().ok_or_else(|| PlayAuthError::Invalid(app()))?;
        signed_token::verify_from(&secret, Purpose::Play, stream, &token, now_unix, client).map_err(
            |e| match e {
                TokenError::Invalid => PlayAuthError::Invalid(app()),
                TokenError::Expired => PlayAuthError::Expired(app()),
            },
        )
    }

    /// [`check`](PlayAuth::check) for an RTMP play: the token may be in the play name's query
    /// (`rtmp://host/app/name?token=…`) or, for clients that keep the query on the app, in
    /// the `connect` app's.
    pub fn check_rtmp(
        &self,
        stream: &StreamKey,
        app: &str,
        name: &str,
        client: Option<IpAddr>,
        now_unix: u64,
    ) -> Result<(), PlayAuthError> {
        self.check(stream, rtmp_query(app, name), client, now_unix)
    }

    /// A play token for `stream` valid until `expiry_unix`, signed with `secret`.
    #[must_use]
    pub fn token(secret: &[u8], stream: &StreamKey, expiry_unix: u64) -> String {
        signed_token::sign(secret, Purpose::Play, stream, expiry_unix)
    }

    /// [`PlayAuth::token`] that holds only for a viewer at `client`.
    #[must_use]
    pub fn token_for(
        secret: &[u8],
        stream: &StreamKey,
        expiry_unix: u64,
        client: IpAddr,
    ) -> String {
        signed_token::sign_for(secret, Purpose::Play, stream, expiry_unix, Some(client))
    }
}

/// The query of an RTMP play: the play name's (`rtmp://host/app/name?token=…`) when it has a
/// token, else the `connect` app's (some clients keep the query there).
#[must_use]
fn rtmp_query<'a>(app: &'a str, name: &'a str) -> Option<&'a str> {
    fn query_of(s: &str) -> Option<&str> {
        s.split_once('?').map(|(_, q)| q)
    }
    query_of(name).filter(|q| q.contains("token=")).or_else(|| query_of(app))
}

/// Seconds since the Unix epoch, for token expiries.
#[must_use]
pub fn unix_now() -> u64 {
    std::time::SystemTime::now().duration_since(std::time::UNIX_EPOCH).map_or(0, |d| d.as_secs())
}

impl PlayAuth {
    /// Read the play token secret again on every SIGHUP (a rotation: tokens signed with the
    /// new secret play from then on); a file that does not load keeps the current one.
    pub fn spawn_secret_reload(
        self: Arc<Self>,
        path: std::path::PathBuf,
    ) -> std::io::Result<tokio::task::JoinHandle<()>> {
        use tokio::signal::unix::{signal, SignalKind};
        let mut hangup = signal(SignalKind::hangup())?;
        Ok(tokio::spawn(async move {
            while hangup.recv().await.is_some() {
                match signed_token::read_secret(&path) {
                    Ok(secret) => {
                        self.replace_secret(secret);
                        tracing::info!("SIGHUP: play token secret reloaded");
                    }
                    Err(e) => {
                        tracing::warn!(error = %e, "SIGHUP: play token secret NOT reloaded; the current one stays");
                    }
                }
            }
        }))
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    const SECRET: &[u8] = b"a-play-secret-of-16+";

    fn key(app: &str, name: &str) -> StreamKey {
        StreamKey::parse(app, name).unwrap().0
    }

    #[test]
    fn only_private_apps_need_a_token_and_only_a_valid_one_lets_in() {
        let auth = PlayAuth::new(Some(SECRET.to_vec()), vec!["vip".into()]);
        let (public, private) = (key("live", "x"), key("vip", "x"));
        assert_eq!(auth.check(&public, None, None, 0), Ok(()));
        assert_eq!(auth.check(&private, None, None, 0), Err(PlayAuthError::Missing("vip".into())));
        let token = PlayAuth::token(SECRET, &private, 100);
        let query = format!("a=1&token={token}");
        assert_eq!(auth.check(&private, Some(&query), None, 50), Ok(()));
        assert_eq!(
            auth.check(&private, Some(&query), None, 101),
            Err(PlayAuthError::Expired("vip".into()))
        );
        // Another stream's token, a publish token, a forged one.
        let other = format!("token={}", PlayAuth::token(SECRET, &key("vip", "y"), 100));
        assert_eq!(
            auth.check(&private, Some(&other), None, 0),
            Err(PlayAuthError::Invalid("vip".into()))
        );
        let publish = signed_token::sign(SECRET, Purpose::Publish, &private, 100);
        let publish = format!("token={publish}");
        assert_eq!(
            auth.check(&private, Some(&publish), None, 0),
            Err(PlayAuthError::Invalid("vip".into()))
        );
        assert_eq!(
            auth.check(&private, Some("token=100.00ff"), None, 0),
            Err(PlayAuthError::Invalid("vip".into()))
        );
        // `*` makes every app private; no secret refuses every token.
        let all = PlayAuth::new(None, vec!["*".into()]);
        assert!(all.is_private(&public));
        assert_eq!(
            all.check(&public, Some(&query), None, 0),
            Err(PlayAuthError::Invalid("live".into()))
        );
        assert!(!PlayAuth::default().is_on());
        // RTMP: the token in the play name, or on the app.
        let token = PlayAuth::token(SECRET, &private, 100);
        let name = format!("x?token={token}");
        assert_eq!(auth.check_rtmp(&private, "vip", &name, None, 0), Ok(()));
        assert_eq!(auth.check_rtmp(&private, &format!("vip?token={token}"), "x", None, 0), Ok(()));
        assert!(auth.check_rtmp(&private, "vip", "x", None, 0).is_err());
        // A new secret: its tokens are taken, the old one's no longer.
        let new_secret = b"another-secret-of-16+".to_vec();
        auth.replace_secret(new_secret.clone());
        assert!(auth.check(&private, Some(&query), None, 50).is_err(), "the old secret's token");
        let fresh = format!("token={}", PlayAuth::token(&new_secret, &private, 100));
        assert_eq!(auth.check(&private, Some(&fresh), None, 50), Ok(()));
        // A token bound to a viewer's address: that viewer only.
        let ip: IpAddr = "198.51.100.4".parse().unwrap();
        let bound = format!("token={}", PlayAuth::token_for(&new_secret, &private, 100, ip));
        assert_eq!(auth.check(&private, Some(&bound), Some(ip), 50), Ok(()));
        let other_ip = Some("198.51.100.5".parse().unwrap());
        assert!(auth.check(&private, Some(&bound), other_ip, 50).is_err());
    }
}
