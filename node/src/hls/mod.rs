//! HLS and Low-Latency HLS delivery: per-stream segmenter state fed by the publisher, and the
//! HTTP side ([`http`]) that answers playlists, init segments, segments and parts from
//! [`HlsSnapshot`]s.
//!
//! Data path: [`crate::hub::Publisher::push`] hands every (rebased) message, through the
//! hub's [`HlsHook`] (implemented here by [`HlsStreams`], so the hub does not depend on this
//! module), to [`StreamHls::push`], which runs the sans-IO [`Segmenter`] in the publisher's task and, when
//! something was completed, publishes a new snapshot on a `watch` channel. HTTP requests read
//! the latest snapshot; blocking reloads and requests for the next part wait on that channel,
//! so they are woken by the segmenter's progress, never by polling.
//!
//! The segmenter lives in the stream entry, not in the publisher: a returning publisher keeps
//! feeding the same segmenter, so media sequence and part numbers keep counting up (with
//! `EXT-X-DISCONTINUITY`) and the window stays available while the stream has viewers.

pub mod dash;
pub mod http;
pub mod renditions;
mod session;
pub mod ts;

use std::sync::{Arc, Mutex};
use std::time::{Duration, SystemTime, UNIX_EPOCH};

use sluice_media::frame::MediaMessage;
use sluice_media::hls::{HlsConfig, HlsSnapshot, ResumePoint, SegmentStamp, Segmenter};
use sluice_media::stream_name::StreamKey;
use tokio::sync::watch;
use tracing::{info, warn};

use crate::hub::hls_hook::{HlsHook, StreamHlsHook};
use crate::lock::lock;
use crate::log_limit::RateLimitedLog;
use crate::recording::Recordings;
use crate::settings::HlsSettings;
pub use session::{SessionError, SessionKey, SessionTable};

/// What a node applies to every stream's HLS: the configured [`HlsSettings`] clamped to
/// workable ranges, in the units the segmenter uses.
#[derive(Debug, Clone)]
pub struct HlsServing {
    pub enabled: bool,
    pub segment_target_ms: u32,
    pub part_target_ms: u32,
    pub window_segments: usize,
    /// Most concurrent HLS sessions on this node.
    pub max_sessions: usize,
    /// New sessions per second one client address may start.
    pub sessions_per_ip: u32,
    /// Sessions one client address may hold at once (0: no cap).
    pub max_sessions_per_ip: usize,
    /// Signs session ids (`--hls-session-key-file`, or random per start).
    pub session_key: SessionKey,
    /// Also serve the segments as MPEG-TS (`ts.m3u8`, `ts-N.ts`).
    pub ts: bool,
}

impl HlsServing {
    /// `session_key`: the contents of `--hls-session-key-file`, read by the caller; `None`: a
    /// random key.
    pub fn new(settings: &HlsSettings, session_key: Option<&[u8]>) -> Self {
        let ms = |d: Duration| u32::try_from(d.as_millis()).unwrap_or(u32::MAX);
        let segment_target_ms = ms(settings.segment_target).clamp(500, 60_000);
        HlsServing {
            enabled: settings.enabled,
            segment_target_ms,
            part_target_ms: ms(settings.part_target).clamp(100, segment_target_ms),
            window_segments: settings.window.clamp(3, 1000),
            max_sessions: settings.max_sessions,
            sessions_per_ip: settings.sessions_per_ip,
            max_sessions_per_ip: settings.max_sessions_per_ip,
            session_key: session_key.map_or_else(SessionKey::random, SessionKey::new),
            ts: settings.ts,
        }
    }

    /// The target duration as a `Duration`.
    pub fn segment_target(&self) -> Duration {
        Duration::from_millis(u64::from(self.segment_target_ms))
    }

    /// How long a request waits for media that does not exist yet (blocking reloads, the
    /// next part, the first segment of a new stream): three target durations.
    pub fn wait_timeout(&self) -> Duration {
        self.segment_target() * 3
    }

    /// An HLS session without a request for this long ends.
    pub fn session_idle(&self) -> Duration {
        self.segment_target() * 3
    }

    fn segmenter_config(&self, stream_epoch_ms: u64) -> HlsConfig {
        HlsConfig {
            target_duration_ms: self.segment_target_ms,
            part_target_ms: self.part_target_ms,
            window_segments: self.window_segments,
            stream_epoch_ms: Some(stream_epoch_ms),
            ..HlsConfig::default()
        }
    }
}

impl Default for HlsServing {
    fn default() -> Self {
        HlsServing::new(&HlsSettings::default(), None)
    }
}

/// The hub's [`HlsHook`]: one [`StreamHls`] per stream, all with the node's settings; the
/// streams of recorded apps are followed by a recorder ([`crate::recording`]).
#[derive(Debug, Clone)]
pub struct HlsStreams {
    serving: Arc<HlsServing>,
    recordings: Option<Arc<Recordings>>,
}

impl HlsStreams {
    pub fn new(serving: HlsServing, recordings: Option<Arc<Recordings>>) -> Arc<Self> {
        Arc::new(HlsStreams { serving: Arc::new(serving), recordings })
    }
}

impl HlsHook for HlsStreams {
    fn open(&self, key: &StreamKey) -> Box<dyn StreamHlsHook> {
        let hls = StreamHls::new(self.serving.clone());
        if let Some(recordings) = &self.recordings {
            recordings.start(key, hls.subscribe());
        }
        Box::new(hls)
    }
}

/// Segmenter errors are caused by what a publisher sends: log a few per second at most.
static SEGMENTER_ERRORS: std::sync::LazyLock<RateLimitedLog> =
    std::sync::LazyLock::new(|| RateLimitedLog::new(5));

/// Numbering for a stream's first segmenter. Segment and init names are cached as immutable,
/// so a stream name published again later (after its entry was forgotten) must not reuse
/// them: numbers start from the wall clock (media sequence = tenths of a second since the
/// epoch, init id = seconds), which stays above what an earlier session of the name reached
/// unless it averaged more than ten segments a second.
fn fresh_numbering(now_ms: u64) -> ResumePoint {
    ResumePoint {
        next_msn: now_ms / 100,
        next_init_id: u32::try_from(now_ms / 1000).unwrap_or(u32::MAX),
        ..ResumePoint::default()
    }
}

/// One stream's HLS state: the segmenter (fed by the publisher's task) and the latest snapshot.
pub struct StreamHls {
    settings: Arc<HlsServing>,
    segmenter: Mutex<Option<Segmenter>>,
    /// A follower's latest video and audio sequence headers, replayed into a segmenter it
    /// (re)starts from a stamp.
    headers: Mutex<[Option<MediaMessage>; 2]>,
    snapshot: watch::Sender<Option<HlsSnapshot>>,
}

impl std::fmt::Debug for StreamHls {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("StreamHls").finish_non_exhaustive()
    }
}

impl StreamHls {
    pub fn new(settings: Arc<HlsServing>) -> Self {
        StreamHls {
            settings,
            segmenter: Mutex::new(None),
            headers: Mutex::new([None, None]),
            snapshot: watch::channel(None).0,
        }
    }
}

impl StreamHls {
    /// Feed one message (timestamps already rebased by the hub) on the node that has the
    /// publisher. The segmenter is created at the stream's first message, its program-date-time
    /// epoch stamped once: the wall clock now minus this first timestamp. Returns the stamp of
    /// the segment this message opened, if it opened one, for the relay to carry.
    pub fn push(&self, stream: &dyn std::fmt::Display, msg: &MediaMessage) -> Option<SegmentStamp> {
        let settings = &self.settings;
        if !settings.enabled {
            return None;
        }
        let mut guard = lock(&self.segmenter);
        let seg = guard.get_or_insert_with(|| {
            let now_ms = SystemTime::now()
                .duration_since(UNIX_EPOCH)
                .map_or(0, |d| u64::try_from(d.as_millis()).unwrap_or(u64::MAX));
            let mut config =
                settings.segmenter_config(now_ms.saturating_sub(u64::from(msg.timestamp)));
            config.resume = Some(fresh_numbering(now_ms));
            Segmenter::new(config)
        });
        self.feed(seg, stream, msg);
        seg.take_opened()
    }

    /// Feed one message on a node that relays the stream (an edge, or the home of a forwarded
    /// stream). Segments follow the ingest's stamps: frames before the first stamp are not
    /// segmented; a stamp the local segmenter disagrees with (it joined mid-segment, or its
    /// timeline moved) restarts it from that stamp, so from there on this node's HLS is the
    /// ingest's.
    pub fn follow(
        &self,
        stream: &dyn std::fmt::Display,
        msg: &MediaMessage,
        header: bool,
        stamp: Option<&SegmentStamp>,
    ) {
        let settings = &self.settings;
        if !settings.enabled {
            return;
        }
        if header && msg.kind != sluice_media::frame::MediaKind::Data {
            let slot = usize::from(msg.kind == sluice_media::frame::MediaKind::Audio);
            lock(&self.headers)[slot] = Some(msg.clone());
        }
        let mut guard = lock(&self.segmenter);
        if let Some(seg) = guard.as_mut() {
            self.feed(seg, stream, msg);
            let opened = seg.take_opened();
            match stamp {
                None => return,
                Some(s) if opened.as_ref() == Some(s) => return,
                Some(_) => {}
            }
        }
        let Some(stamp) = stamp else { return };
        info!(stream = %stream, msn = stamp.msn, "hls: following the ingest's segments");
        let mut seg = Segmenter::follow(settings.segmenter_config(0), stamp, msg.timestamp);
        let headers = lock(&self.headers).clone();
        for h in headers.iter().flatten() {
            let _ = seg.push(h);
        }
        self.feed(&mut seg, stream, msg);
        seg.take_opened();
        *guard = Some(seg);
    }

    fn feed(&self, seg: &mut Segmenter, stream: &dyn std::fmt::Display, msg: &MediaMessage) {
        match seg.push(msg) {
            Ok(update) if !update.is_empty() => {
                self.snapshot.send_replace(Some(seg.snapshot()));
            }
            Ok(_) => {}
            Err(e) => {
                if SEGMENTER_ERRORS.allow() {
                    warn!(stream = %stream, error = %e, "hls: message not segmented");
                }
            }
        }
    }

    /// The publisher left: finish the open segment; the next one starts a discontinuity.
    pub fn end_of_stream(&self) {
        let mut guard = lock(&self.segmenter);
        if let Some(seg) = guard.as_mut() {
            if !seg.end_of_stream().is_empty() {
                self.snapshot.send_replace(Some(seg.snapshot()));
            }
        }
    }

    /// Forget the segmenter and the window (the snapshot becomes `None`): the stream ended
    /// long enough ago. Its segments' memory (and their MPEG-TS forms, which die with them)
    /// goes once the requests holding them finish.
    pub fn release(&self) {
        *lock(&self.segmenter) = None;
        *lock(&self.headers) = [None, None];
        self.snapshot.send_replace(None);
    }

    /// A receiver of the latest snapshot (`None` until the first init segment or part).
    pub fn subscribe(&self) -> watch::Receiver<Option<HlsSnapshot>> {
        self.snapshot.subscribe()
    }
}

impl StreamHlsHook for StreamHls {
    fn push(&self, key: &StreamKey, msg: &MediaMessage) -> Option<SegmentStamp> {
        StreamHls::push(self, key, msg)
    }

    fn follow(
        &self,
        key: &StreamKey,
        msg: &MediaMessage,
        header: bool,
        stamp: Option<&SegmentStamp>,
    ) {
        StreamHls::follow(self, key, msg, header, stamp);
    }

    fn end_of_stream(&self) {
        StreamHls::end_of_stream(self);
    }

    fn release(&self) {
        StreamHls::release(self);
    }

    fn subscribe(&self) -> watch::Receiver<Option<HlsSnapshot>> {
        StreamHls::subscribe(self)
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use bytes::Bytes;
    use sluice_media::frame::MediaKind;

    #[test]
    fn settings_are_clamped() {
        let settings = HlsSettings {
            enabled: true,
            part_target: Duration::from_millis(10),
            segment_target: Duration::from_secs(2),
            window: 1,
            ts: false,
            ..HlsSettings::default()
        };
        let s = HlsServing::new(&settings, None);
        assert_eq!((s.part_target_ms, s.segment_target_ms, s.window_segments), (100, 2000, 3));
        assert_eq!(s.wait_timeout(), Duration::from_secs(6));
        assert!(!s.ts);
    }

    #[test]
    fn defaults() {
        let d = HlsServing::default();
        assert!(d.ts, "TS segments are on by default");
        assert_eq!(
            (d.enabled, d.part_target_ms, d.segment_target_ms, d.window_segments),
            (true, 500, 2000, 8)
        );
    }

    #[test]
    fn numbering_of_a_later_session_is_higher() {
        let first = fresh_numbering(1_795_681_839_374);
        let later = fresh_numbering(1_795_681_839_374 + 1000);
        assert!(later.next_msn > first.next_msn && later.next_init_id > first.next_init_id);
    }

    #[test]
    fn garbage_is_logged_not_fatal_and_publishes_nothing() {
        let hls = StreamHls::new(Arc::new(HlsServing::default()));
        let rx = hls.subscribe();
        let msg = MediaMessage {
            kind: MediaKind::Video,
            timestamp: 0,
            payload: Bytes::from_static(&[0x17, 0, 0]),
        };
        hls.push(&"live/x", &msg);
        hls.end_of_stream();
        assert!(rx.borrow().is_none());
    }
}
