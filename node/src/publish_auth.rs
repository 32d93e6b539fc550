//! Publish authorisation: who may publish which stream, checked on the ingest origin before
//! any media is accepted (and before the name is claimed in the registry). Sans-IO: the keys
//! file's text and the time come in as arguments.
//!
//! Either of two credentials lets a publisher in:
//! - a **stream key**, the form OBS users know. The keys file lists `app/name KEY-HASH` lines
//!   (`KEY-HASH`: `sha256:` and the hex SHA-256 of the key, so the file holds no secret). The
//!   encoder publishes to `rtmp://host/app/KEY` (the key is the stream name; the stream goes
//!   live as `app/name`, so the key never appears in a player's URL), or to
//!   `rtmp://host/app/name?key=KEY`;
//! - a **signed token** with an expiry: `rtmp://host/app/name?token=EXPIRY.SIGNATURE`, where
//!   `EXPIRY` is a Unix time in seconds and `SIGNATURE` the hex HMAC-SHA256, under the token
//!   secret, of `publish:app/name:EXPIRY` ([`sluice_cluster::signed_token`],
//!   [`PublishAuth::token`], `sluice-origin publish-token`).
//!
//! Apps listed as open (`--publish-open-apps`) take any publisher.

use std::collections::HashMap;

use sha2::{Digest, Sha256};
use sluice_cluster::signed_token::{self, Purpose, TokenError};
use sluice_media::stream_name::StreamKey;

/// Longest key or token accepted (anything longer is refused unread).
pub const MAX_CREDENTIAL_LEN: usize = 512;

/// Why a publish was refused (by app: never the name, which may be a mistyped key); the text
/// is what the encoder is told.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum AuthError {
    #[error("publishing in app '{0}' needs a stream key or a publish token")]
    Missing(String),
    #[error("wrong stream key (app '{0}')")]
    WrongKey(String),
    #[error("invalid publish token (app '{0}')")]
    BadToken(String),
    #[error("the publish token has expired (app '{0}')")]
    Expired(String),
}

impl AuthError {
    /// A short label for the refusal metric.
    #[must_use]
    pub fn label(&self) -> &'static str {
        match self {
            AuthError::Missing(_) => "missing",
            AuthError::WrongKey(_) => "wrong_key",
            AuthError::BadToken(_) => "bad_token",
            AuthError::Expired(_) => "expired",
        }
    }
}

/// A line of the keys file that does not parse.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[error("keys file line {line}: {why}")]
pub struct KeysFileError {
    pub line: usize,
    pub why: String,
}

/// The publish policy of a node.
#[derive(Debug, Clone, Default)]
pub struct PublishAuth {
    /// Key hash -> the stream it publishes.
    keys: HashMap<[u8; 32], StreamKey>,
    secret: Option<Vec<u8>>,
    open_apps: Vec<String>,
}

/// The SHA-256 of a stream key, as the keys file stores it.
#[must_use]
pub fn key_hash(key: &str) -> [u8; 32] {
    Sha256::digest(key.as_bytes()).into()
}

/// The keys file line for `stream` published with `key`.
#[must_use]
pub fn key_line(stream: &StreamKey, key: &str) -> String {
    format!("{stream} sha256:{}", hex::encode(key_hash(key)))
}

impl PublishAuth {
    /// A policy from the keys file's text (if any), the token secret (if any) and the open
    /// apps.
    pub fn new(
        keys_file: Option<&str>,
        secret: Option<Vec<u8>>,
        open_apps: Vec<String>,
    ) -> Result<PublishAuth, KeysFileError> {
        let keys = keys_file.map(parse_keys).transpose()?.unwrap_or_default();
        Ok(PublishAuth { keys, secret, open_apps })
    }

    /// Streams with a key in the keys file.
    #[must_use]
    pub fn key_count(&self) -> usize {
        self.keys.len()
    }

    /// Whether `name` (the stream name the encoder sent, with its query) may be published
    /// in `app` at `now_unix`; the stream it goes live as (the one a key stands for). Errors
    /// name the app only: what the encoder sent may be a mistyped key.
    pub fn check(&self, app: &str, name: &str, now_unix: u64) -> Result<StreamKey, AuthError> {
        let bare_app = app.split('?').next().unwrap_or(app).to_string();
        let bare_name = name.split('?').next().unwrap_or(name);
        let parsed = StreamKey::parse(app, name).ok();
        if self.open_apps.contains(&bare_app) {
            return parsed.map(|(stream, _)| stream).ok_or(AuthError::Missing(bare_app));
        }
        // The key as the stream name.
        if bare_name.len() <= MAX_CREDENTIAL_LEN {
            if let Some(stream) = self.keys.get(&key_hash(bare_name)) {
                if stream.app() == bare_app {
                    return Ok(stream.clone());
                }
            }
        }
        let Some((stream, query)) = parsed else { return Err(AuthError::Missing(bare_app)) };
        let (mut key, mut token) = (None, None);
        let query = query.unwrap_or_default();
        for (k, v) in form_urlencoded::parse(query.as_bytes()) {
            match &*k {
                "key" => key = Some(v),
                "token" => token = Some(v),
                _ => {}
            }
        }
        if let Some(key) = key {
            let ok = key.len() <= MAX_CREDENTIAL_LEN
                && self.keys.get(&key_hash(&key)).is_some_and(|s| *s == stream);
            return if ok { Ok(stream) } else { Err(AuthError::WrongKey(bare_app)) };
        }
        if let Some(token) = token {
            return self.check_token(&stream, &token, now_unix).map(|()| stream);
        }
        Err(AuthError::Missing(bare_app))
    }

    fn check_token(&self, stream: &StreamKey, token: &str, now_unix: u64) -> Result<(), AuthError> {
        let app = || stream.app().to_string();
        let secret = self.secret.as_deref().ok_or_else(|| AuthError::BadToken(app()))?;
        signed_token::verify(secret, Purpose::Publish, stream, token, now_unix).map_err(|e| match e
        {
            TokenError::Invalid => AuthError::BadToken(app()),
            TokenError::Expired => AuthError::Expired(app()),
        })
    }

    /// A publish token for `stream` valid until `expiry_unix`, signed with `secret`.
    #[must_use]
    pub fn token(secret: &[u8], stream: &StreamKey, expiry_unix: u64) -> String {
        signed_token::sign(secret, Purpose::Publish, stream, expiry_unix)
    }
}

/// Loads a node's [`PublishAuth`] from its files (the keys file, the token secret).
pub type Loader = Box<dyn Fn() -> Result<PublishAuth, String> + Send + Sync>;

/// The node's current [`PublishAuth`], replaced on [`PublishAuthStore::reload`] (SIGHUP), so
/// keys can be added or revoked without a restart; a file that does not load leaves the
/// current policy in force.
pub struct PublishAuthStore {
    current: std::sync::Mutex<std::sync::Arc<PublishAuth>>,
    load: Loader,
}

impl PublishAuthStore {
    /// A store with what `load` reads now.
    pub fn new(load: Loader) -> Result<PublishAuthStore, String> {
        let first = load()?;
        Ok(PublishAuthStore { current: std::sync::Mutex::new(std::sync::Arc::new(first)), load })
    }

    #[must_use]
    pub fn current(&self) -> std::sync::Arc<PublishAuth> {
        crate::lock::lock(&self.current).clone()
    }

    /// Read the files again; the stream keys now in force.
    pub fn reload(&self) -> Result<usize, String> {
        let next = (self.load)()?;
        let keys = next.key_count();
        *crate::lock::lock(&self.current) = std::sync::Arc::new(next);
        Ok(keys)
    }
}

impl std::fmt::Debug for PublishAuthStore {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("PublishAuthStore").field("keys", &self.current().key_count()).finish()
    }
}

/// `app/name sha256:HEX` lines; blank lines and `#` comments are skipped.
fn parse_keys(text: &str) -> Result<HashMap<[u8; 32], StreamKey>, KeysFileError> {
    let mut keys = HashMap::new();
    for (i, line) in text.lines().enumerate() {
        let line = line.trim();
        if line.is_empty() || line.starts_with('#') {
            continue;
        }
        let err = |why: &str| KeysFileError { line: i + 1, why: why.to_string() };
        let mut fields = line.split_whitespace();
        let (Some(stream), Some(hash), None) = (fields.next(), fields.next(), fields.next()) else {
            return Err(err("expected 'app/name sha256:HEX'"));
        };
        let (app, name) =
            stream.split_once('/').ok_or_else(|| err("the stream is not app/name"))?;
        let (stream, query) =
            StreamKey::parse(app, name).map_err(|e| err(&format!("bad stream name: {e}")))?;
        if query.is_some() {
            return Err(err("the stream name has a query"));
        }
        let hex_hash =
            hash.strip_prefix("sha256:").ok_or_else(|| err("the hash must start with sha256:"))?;
        let hash: [u8; 32] = hex::decode(hex_hash)
            .ok()
            .and_then(|h| h.try_into().ok())
            .ok_or_else(|| err("the hash is not 64 hex digits"))?;
        if keys.insert(hash, stream).is_some() {
            return Err(err("the same key is listed twice"));
        }
    }
    Ok(keys)
}

impl PublishAuthStore {
    /// Read the publish keys and token secret again on every SIGHUP.
    pub fn spawn_reload(
        self: std::sync::Arc<Self>,
    ) -> std::io::Result<tokio::task::JoinHandle<()>> {
        use tokio::signal::unix::{signal, SignalKind};
        let mut hangup = signal(SignalKind::hangup())?;
        Ok(tokio::spawn(async move {
            while hangup.recv().await.is_some() {
                match self.reload() {
                    Ok(keys) => {
                        tracing::info!(keys, "SIGHUP: publish keys and token secret reloaded");
                    }
                    Err(e) => {
                        tracing::warn!(error = %e, "SIGHUP: publish authorisation NOT reloaded; the current one stays");
                    }
                }
            }
        }))
    }
}

#[cfg(test)]
#[path = "publish_auth/tests.rs"]
mod tests;
