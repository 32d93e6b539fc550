//! HLS and Low-Latency HLS delivery: per-stream segmenter state fed by the publisher, and the
//! HTTP side ([`http`]) that answers playlists, init segments, segments and parts from
//! [`HlsSnapshot`]s.
//!
//! Data path: [`crate::hub::Publisher::push`] hands every (rebased) message to
//! [`StreamHls::push`], which runs the sans-IO [`Segmenter`] in the publisher's task and, when
//! something was completed, publishes a new snapshot on a `watch` channel. HTTP requests read
//! the latest snapshot; blocking reloads and requests for the next part wait on that channel,
//! so they are woken by the segmenter's progress, never by polling.
//!
//! The segmenter lives in the stream entry, not in the publisher: a returning publisher keeps
//! feeding the same segmenter, so media sequence and part numbers keep counting up (with
//! `EXT-X-DISCONTINUITY`) and the window stays available while the stream has viewers.

pub mod http;
mod session;
pub mod ts;

use std::sync::Mutex;
use std::time::{Duration, SystemTime, UNIX_EPOCH};

use sluice_media::frame::MediaMessage;
use sluice_media::hls::{HlsConfig, HlsSnapshot, ResumePoint, SegmentStamp, Segmenter};
use tokio::sync::watch;
use tracing::{info, warn};

use crate::config::HlsArgs;
use crate::log_limit::RateLimitedLog;
pub use session::{SessionError, SessionTable};

/// HLS settings a node applies to every stream.
#[derive(Debug, Clone)]
pub struct HlsSettings {
    pub enabled: bool,
    pub segment_target_ms: u32,
    pub part_target_ms: u32,
    pub window_segments: usize,
    /// Most concurrent HLS sessions on this node.
    pub max_sessions: usize,
    /// Also serve the segments as MPEG-TS (`ts.m3u8`, `ts-N.ts`).
    pub ts: bool,
}

impl HlsSettings {
    pub fn new(args: &HlsArgs, max_sessions: usize) -> Self {
        let ms = |d: Duration| u32::try_from(d.as_millis()).unwrap_or(u32::MAX);
        let segment_target_ms = ms(args.hls_segment_target).clamp(500, 60_000);
        HlsSettings {
            enabled: args.hls,
            segment_target_ms,
            part_target_ms: ms(args.hls_part_target).clamp(100, segment_target_ms),
            window_segments: args.hls_window.clamp(3, 1000),
            max_sessions,
            ts: args.hls_ts,
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

impl Default for HlsSettings {
    fn default() -> Self {
        HlsSettings::new(&HlsArgs::default(), 20_000)
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

impl Default for StreamHls {
    fn default() -> Self {
        StreamHls {
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
    pub fn push(
        &self,
        settings: &HlsSettings,
        stream: &dyn std::fmt::Display,
        msg: &MediaMessage,
    ) -> Option<SegmentStamp> {
        if !settings.enabled {
            return None;
        }
        let mut guard = self.segmenter.lock().unwrap_or_else(|p| p.into_inner());
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
        settings: &HlsSettings,
        stream: &dyn std::fmt::Display,
        msg: &MediaMessage,
        header: bool,
        stamp: Option<&SegmentStamp>,
    ) {
        if !settings.enabled {
            return;
        }
        if header && msg.kind != sluice_media::frame::MediaKind::Data {
            let slot = usize::from(msg.kind == sluice_media::frame::MediaKind::Audio);
            self.headers.lock().unwrap_or_else(|p| p.into_inner())[slot] = Some(msg.clone());
        }
        let mut guard = self.segmenter.lock().unwrap_or_else(|p| p.into_inner());
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
        let headers = self.headers.lock().unwrap_or_else(|p| p.into_inner()).clone();
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
        let mut guard = self.segmenter.lock().unwrap_or_else(|p| p.into_inner());
        if let Some(seg) = guard.as_mut() {
            if !seg.end_of_stream().is_empty() {
                self.snapshot.send_replace(Some(seg.snapshot()));
            }
        }
    }

    /// A receiver of the latest snapshot (`None` until the first init segment or part).
    pub fn subscribe(&self) -> watch::Receiver<Option<HlsSnapshot>> {
        self.snapshot.subscribe()
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use bytes::Bytes;
    use sluice_media::frame::MediaKind;

    #[test]
    fn settings_are_clamped() {
        let args = HlsArgs {
            hls: true,
            hls_part_target: Duration::from_millis(10),
            hls_segment_target: Duration::from_secs(2),
            hls_window: 1,
            hls_ts: false,
        };
        let s = HlsSettings::new(&args, 10);
        assert_eq!((s.part_target_ms, s.segment_target_ms, s.window_segments), (100, 2000, 3));
        assert_eq!(s.wait_timeout(), Duration::from_secs(6));
    }

    #[test]
    fn flags_parse_and_disable() {
        #[derive(clap::Parser)]
        struct Cli {
            #[command(flatten)]
            node: crate::config::NodeArgs,
        }
        let cli: Cli = crate::config::parse_with_file_from([
            "x",
            "--hls-part-target",
            "200ms",
            "--hls-segment-target",
            "4s",
            "--hls-window",
            "5",
        ])
        .unwrap();
        let s = HlsSettings::new(&cli.node.limits.hls, 7);
        assert!(s.enabled);
        assert_eq!(
            (s.part_target_ms, s.segment_target_ms, s.window_segments, s.max_sessions),
            (200, 4000, 5, 7)
        );
        let cli: Cli = crate::config::parse_with_file_from(["x", "--hls", "false"]).unwrap();
        assert!(!cli.node.limits.hls.hls);
        let cli: Cli = crate::config::parse_with_file_from(["x", "--hls-ts", "false"]).unwrap();
        assert!(!HlsSettings::new(&cli.node.limits.hls, 1).ts);
        assert!(HlsSettings::default().ts, "TS segments are on by default");
        let d = HlsSettings::default();
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
        let hls = StreamHls::default();
        let rx = hls.subscribe();
        let msg = MediaMessage {
            kind: MediaKind::Video,
            timestamp: 0,
            payload: Bytes::from_static(&[0x17, 0, 0]),
        };
        hls.push(&HlsSettings::default(), &"live/x", &msg);
        hls.end_of_stream();
        assert!(rx.borrow().is_none());
    }
}
