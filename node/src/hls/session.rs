//! HLS viewer sessions. HTTP requests of one HLS player are independent; a session ties them
//! together so an HLS viewer counts like an RTMP or HTTP-FLV one (in the stream's viewer count,
//! `sluice_viewers{protocol="hls"}` and the per-stream viewer limit).
//!
//! A session id (`sid`, 16 hex characters) is created when a client fetches the multivariant
//! playlist without one (or a media playlist without one: it is redirected to the same playlist
//! with a `sid`), and carried in the query of every URI the playlists hand out. Each
//! request naming it refreshes it; a session not seen for the idle timeout ends (a sweeper task
//! checks once a second). The table is bounded (`max_sessions`).

use std::collections::HashMap;
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::{Arc, Mutex, Weak};
use std::time::Duration;

use tokio::time::Instant;

use rand::Rng;
use sluice_media::stream_name::StreamKey;

use crate::hub::{Hub, Subscription};
use crate::metrics::Protocol;

/// Length of a session id in hex characters.
pub const SID_LEN: usize = 16;

#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum SessionError {
    #[error("the server already has its maximum of {0} HLS sessions")]
    TooManySessions(usize),
    #[error("{0}")]
    Subscribe(String),
}

struct Session {
    key: StreamKey,
    last_seen: Instant,
    /// Counts this session as a viewer of its stream while it lives.
    _viewer: Subscription,
}

/// All HLS sessions of a node.
pub struct SessionTable {
    hub: Hub,
    max: usize,
    idle: Duration,
    sessions: Mutex<HashMap<String, Session>>,
    sweeper: AtomicBool,
}

/// Whether `sid` has the shape of an id this server hands out.
pub fn valid_sid(sid: &str) -> bool {
    sid.len() == SID_LEN && sid.bytes().all(|b| b.is_ascii_digit() || (b'a'..=b'f').contains(&b))
}

impl SessionTable {
    pub fn new(hub: Hub, max: usize, idle: Duration) -> Arc<Self> {
        Arc::new(SessionTable {
            hub,
            max,
            idle,
            sessions: Mutex::new(HashMap::new()),
            sweeper: AtomicBool::new(false),
        })
    }

    fn lock(&self) -> std::sync::MutexGuard<'_, HashMap<String, Session>> {
        crate::lock::lock(&self.sessions)
    }

    /// Refresh session `sid` of stream `key`, creating it when it is unknown (a new viewer, or
    /// one that returns after its session expired). `None` creates a fresh id. Returns the id.
    pub fn touch(
        self: &Arc<Self>,
        sid: Option<&str>,
        key: &StreamKey,
    ) -> Result<String, SessionError> {
        let now = Instant::now();
        if let Some(sid) = sid.filter(|s| valid_sid(s)) {
            let mut map = self.lock();
            if let Some(s) = map.get_mut(sid) {
                if s.key == *key {
                    s.last_seen = now;
                    return Ok(sid.to_string());
                }
            }
            drop(map);
            return self.create(sid.to_string(), key, now);
        }
        let sid = format!("{:016x}", rand::thread_rng().gen::<u64>());
        self.create(sid, key, now)
    }

    fn create(
        self: &Arc<Self>,
        sid: String,
        key: &StreamKey,
        now: Instant,
    ) -> Result<String, SessionError> {
        if self.lock().len() >= self.max {
            self.sweep();
            if self.lock().len() >= self.max {
                return Err(SessionError::TooManySessions(self.max));
            }
        }
        let mut viewer = self
            .hub
            .subscribe(key, Protocol::Hls)
            .map_err(|e| SessionError::Subscribe(e.to_string()))?;
        viewer.start_playing();
        let old = self
            .lock()
            .insert(sid.clone(), Session { key: key.clone(), last_seen: now, _viewer: viewer });
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

    /// End sessions idle for longer than the timeout.
    pub fn sweep(&self) {
        let now = Instant::now();
        let expired: Vec<Session> = {
            let mut map = self.lock();
            let ids: Vec<String> = map
                .iter()
                .filter(|(_, s)| now.saturating_duration_since(s.last_seen) >= self.idle)
                .map(|(sid, _)| sid.clone())
                .collect();
            ids.iter().filter_map(|sid| map.remove(sid)).collect()
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
