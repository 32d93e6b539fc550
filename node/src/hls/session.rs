//! HLS viewer sessions. HTTP requests of one HLS player are independent; a session ties them
//! together so an HLS viewer counts like an RTMP or HTTP-FLV one (in the stream's viewer count,
//! `sluice_viewers{protocol="hls"}` and the per-stream viewer limit).
//!
//! A session id (`sid`, 32 hex characters: a random nonce and its HMAC-SHA256 tag under the
//! node's or cluster's key, `--hls-session-key-file`) is created when a client fetches the multivariant
//! playlist without one (or a media playlist without one: it is redirected to the same playlist
//! with a `sid`), and carried in the query of every URI the playlists hand out. Each
//! request naming it refreshes it; a session not seen for the idle timeout ends (a sweeper task
//! checks once a second). The table is bounded (`--hls-max-sessions`, apart from connection
//! and relay budgets), one client address may start only `--hls-sessions-per-ip` sessions
//! a second and hold only `--hls-max-sessions-per-ip` at once. An id this node (or a node with the same key) did not mint is not a session: it
//! is ignored, so random ids cannot fill the table.

use std::collections::HashMap;
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::{Arc, Mutex, Weak};
use std::time::Duration;

use std::net::IpAddr;

use hmac::{Hmac, Mac};
use rand::Rng;
use sha2::Sha256;
use sluice_media::stream_name::StreamKey;
use tokio::time::Instant;

use crate::admission::{Admitted, Gate, PerIpLimits};
use crate::hub::{Hub, Subscription};
use crate::metrics::{Door, Metrics, Protocol, RefusalReason};

/// Length of a session id in hex characters: a 64-bit nonce and a 64-bit tag.
pub const SID_LEN: usize = 32;

/// The key that signs session ids. Its `Debug` does not show it.
#[derive(Clone, PartialEq, Eq)]
pub struct SessionKey(Arc<[u8]>);

impl SessionKey {
    pub fn new(bytes: &[u8]) -> Self {
        SessionKey(bytes.into())
    }

    /// A fresh random key: ids are valid on this node until it restarts.
    pub fn random() -> Self {
        let bytes: [u8; 32] = rand::thread_rng().gen();
        SessionKey::new(&bytes)
    }

    fn tag(&self, nonce: &str, stream: &StreamKey) -> String {
        // HMAC takes keys of any length.
        let mut mac = <Hmac<Sha256> as Mac>::new_from_slice(&self.0)
            .unwrap_or_else(|_| unreachable!("HMAC accepts any key length"));
        mac.update(format!("{nonce}:{stream}").as_bytes());
        let out = mac.finalize().into_bytes();
        out[..8].iter().map(|b| format!("{b:02x}")).collect()
    }

    /// A new signed id for a session of `stream`.
    pub fn mint(&self, stream: &StreamKey) -> String {
        let nonce = format!("{:016x}", rand::thread_rng().gen::<u64>());
        let tag = self.tag(&nonce, stream);
        nonce + &tag
    }

    /// Whether `sid` was minted with this key for a session of `stream` (an id is bound to its
    /// stream, so one opened on a public stream never opens a private one).
    pub fn verify(&self, sid: &str, stream: &StreamKey) -> bool {
        if !valid_sid(sid) {
            return false;
        }
        let (nonce, tag) = sid.split_at(SID_LEN / 2);
        // Not secret-dependent timing in a way that matters: the tag is compared in full.
        let expected = self.tag(nonce, stream);
        expected.bytes().zip(tag.bytes()).fold(0u8, |acc, (a, b)| acc | (a ^ b)) == 0
    }
}

impl std::fmt::Debug for SessionKey {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str("SessionKey(..)")
    }
}

#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum SessionError {
    #[error("the server already has its maximum of {0} HLS sessions")]
    TooManySessions(usize),
    #[error(
        "too many HLS sessions from this address (new ones per second, or at once); retry later"
    )]
    RateLimited,
    #[error("{0}")]
    Subscribe(String),
}

struct Session {
    key: StreamKey,
    last_seen: Instant,
    /// Counts this session as a viewer of its stream while it lives.
    _viewer: Subscription,
    /// Its place among its client address's sessions (`None`: address unknown).
    _admitted: Option<Admitted>,
    /// Tells the webhook `on_play_done` when the session ends (webhook streams).
    _done: Option<crate::webhook::PlayDone>,
}

/// All HLS sessions of a node.
pub struct SessionTable {
    hub: Hub,
    key: SessionKey,
    /// Session creation per client address (a token bucket) and sessions held per address.
    creation: Gate,
    metrics: Metrics,
    max: usize,
    idle: Duration,
    sessions: Mutex<HashMap<String, Session>>,
    sweeper: AtomicBool,
    /// The webhook told when sessions of its streams end, and which streams those are.
    play_done: std::sync::OnceLock<(Arc<crate::webhook::Webhook>, Arc<crate::play_auth::PlayAuth>)>,
}

/// Whether `sid` has the shape of an id this server hands out.
pub fn valid_sid(sid: &str) -> bool {
    sid.len() == SID_LEN && sid.bytes().all(|b| b.is_ascii_digit() || (b'a'..=b'f').contains(&b))
}

impl SessionTable {
    pub fn new(
        hub: Hub,
        max: usize,
        idle: Duration,
        key: SessionKey,
        per_ip: PerIpLimits,
    ) -> Arc<Self> {
        let metrics = hub.metrics().clone();
        let creation = Gate::new(Door::HlsSession, per_ip, metrics.clone());
        Arc::new(SessionTable {
            hub,
            key,
            creation,
            metrics,
            max,
            idle,
            sessions: Mutex::new(HashMap::new()),
            sweeper: AtomicBool::new(false),
            play_done: std::sync::OnceLock::new(),
        })
    }

    /// Tell `webhook` when sessions of the streams `policy` sends to it end (`on_play_done`).
    pub fn notify_play_done(
        &self,
        webhook: Arc<crate::webhook::Webhook>,
        policy: Arc<crate::play_auth::PlayAuth>,
    ) {
        let _ = self.play_done.set((webhook, policy));
    }

    /// Whether session `sid` is live on this node.
    pub fn is_live(&self, sid: &str) -> bool {
        self.lock().contains_key(sid)
    }

    fn lock(&self) -> std::sync::MutexGuard<'_, HashMap<String, Session>> {
        crate::lock::lock(&self.sessions)
    }

    /// Whether `sid` is an id this node (or one with the same key) minted for `stream`.
    pub fn verify(&self, sid: &str, stream: &StreamKey) -> bool {
        self.key.verify(sid, stream)
    }

    /// Refresh session `sid` of stream `key`, creating it when it is unknown (a new viewer, or
    /// one that returns after its session expired). `None`, or an id this node did not mint,
    /// creates a fresh id. New sessions count against `client`'s rate. Returns the id.
    pub fn touch(
        self: &Arc<Self>,
        sid: Option<&str>,
        key: &StreamKey,
        client: Option<IpAddr>,
    ) -> Result<String, SessionError> {
        let now = Instant::now();
        if let Some(sid) = sid.filter(|s| self.key.verify(s, key)) {
            let mut map = self.lock();
            if let Some(s) = map.get_mut(sid) {
                if s.key == *key {
                    s.last_seen = now;
                    return Ok(sid.to_string());
                }
            }
            drop(map);
            return self.create(sid.to_string(), key, now, client);
        }
        let sid = self.key.mint(key);
        self.create(sid, key, now, client)
    }

    fn create(
        self: &Arc<Self>,
        sid: String,
        key: &StreamKey,
        now: Instant,
        client: Option<IpAddr>,
    ) -> Result<String, SessionError> {
        let admitted = match client {
            Some(ip) => Some(self.creation.admit(ip).ok_or(SessionError::RateLimited)?),
            None => None,
        };
        if self.lock().len() >= self.max {
            self.sweep();
            if self.lock().len() >= self.max {
                self.metrics.refused(Door::HlsSession, RefusalReason::Total);
                return Err(SessionError::TooManySessions(self.max));
            }
        }
        let mut viewer = self
            .hub
            .subscribe(key, Protocol::Hls)
            .map_err(|e| SessionError::Subscribe(e.to_string()))?;
        viewer.start_playing();
        let done = self.play_done.get().filter(|(_, policy)| policy.asks_webhook(key)).map(
            |(webhook, _)| {
                let ip = client.unwrap_or(IpAddr::from([0, 0, 0, 0]));
                webhook.play_done(key.app(), key.name(), ip, "hls")
            },
        );
        let old = {
            let mut map = self.lock();
            let session = Session {
                key: key.clone(),
                last_seen: now,
                _viewer: viewer,
                _admitted: admitted,
                _done: done,
            };
            let old = map.insert(sid.clone(), session);
            self.metrics.hls_sessions.set(map.len() as i64);
            old
        };
        drop(old); // outside the lock: dropping a subscription takes hub locks
        self.start_sweeper();
        Ok(sid)
    }

    /// Live sessions.
    pub fn len(&self) -> usize {
        self.lock().len()
    }

    pub fn is_empty(&self) -> bool {
        self.len() == 0
    }

    /// End sessions idle for longer than the timeout, and those the hub closed (a drain
    /// order's deadline).
    pub fn sweep(&self) {
        let now = Instant::now();
        let expired: Vec<Session> = {
            let mut map = self.lock();
            let ids: Vec<String> = map
                .iter()
                .filter(|(_, s)| {
                    now.saturating_duration_since(s.last_seen) >= self.idle || s._viewer.is_closed()
                })
                .map(|(sid, _)| sid.clone())
                .collect();
            let expired = ids.iter().filter_map(|sid| map.remove(sid)).collect();
            self.metrics.hls_sessions.set(map.len() as i64);
            expired
        };
        if !expired.is_empty() {
            tracing::debug!(count = expired.len(), "hls sessions expired");
        }
        // Dropped here, outside the table lock: leaving a stream takes hub locks.
        drop(expired);
    }

    /// One task per table sweeps once a second while the table exists (needs a runtime; the
    /// first session is created inside a request handler).
    fn start_sweeper(self: &Arc<Self>) {
        if self.sweeper.swap(true, Ordering::AcqRel) {
            return;
        }
        let weak: Weak<Self> = Arc::downgrade(self);
        tokio::spawn(async move {
            let mut tick = tokio::time::interval(Duration::from_secs(1));
            loop {
                tick.tick().await;
                match weak.upgrade() {
                    Some(table) => table.sweep(),
                    None => return,
                }
            }
        });
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn only_ids_minted_with_the_key_for_the_stream_verify() {
        let key = SessionKey::new(b"cluster key");
        let x = StreamKey::parse("live", "x").unwrap().0;
        let sid = key.mint(&x);
        assert!(valid_sid(&sid) && key.verify(&sid, &x));
        // Another node with the same key (a cluster behind one load balancer) accepts it.
        assert!(SessionKey::new(b"cluster key").verify(&sid, &x));
        assert!(!SessionKey::new(b"other key").verify(&sid, &x));
        // Not for another stream.
        assert!(!key.verify(&sid, &StreamKey::parse("vip", "x").unwrap().0));
        assert!(!key.verify("0123456789abcdef0123456789abcdef", &x));
        let mut forged = sid.clone().into_bytes();
        forged[31] = if forged[31] == b'0' { b'1' } else { b'0' };
        assert!(!key.verify(std::str::from_utf8(&forged).unwrap(), &x));
        assert!(!key.verify(&sid[..16], &x));
        assert_eq!(format!("{key:?}"), "SessionKey(..)");
    }
}
