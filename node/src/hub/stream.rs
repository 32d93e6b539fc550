//! One stream's shared state: its media log, the wake-up channel viewers wait on, and what the
//! API reports about it.

use std::sync::atomic::{AtomicUsize, Ordering};
use std::sync::{Arc, Mutex, MutexGuard};
use std::time::SystemTime;

use tokio::time::Instant;

use serde::Serialize;
use sluice_media::codec::{AudioSpecificConfig, VideoInfo};
use sluice_media::flv::Metadata;
use sluice_media::stream_name::StreamKey;
use tokio::sync::watch;

use super::hls_hook::StreamHlsHook;
use super::log::MediaLog;
pub use super::meter::RateMeter;
use crate::lock::lock;

/// Video facts for the API.
#[derive(Debug, Clone, Default, Serialize)]
pub struct VideoSummary {
    pub codec: String,
    pub width: Option<u32>,
    pub height: Option<u32>,
    pub fps: Option<f64>,
    pub profile: Option<String>,
    pub level: Option<f64>,
}

/// Audio facts for the API.
#[derive(Debug, Clone, Default, Serialize)]
pub struct AudioSummary {
    pub codec: String,
    pub sample_rate: Option<u32>,
    pub channels: Option<u8>,
}

impl VideoSummary {
    pub fn from_info(info: &VideoInfo) -> Self {
        VideoSummary {
            codec: info.codec.name().to_string(),
            width: info.width,
            height: info.height,
            fps: info.fps,
            profile: info.profile.clone(),
            level: info.level,
        }
    }
}

impl AudioSummary {
    pub fn from_config(codec: &str, config: Option<&AudioSpecificConfig>) -> Self {
        AudioSummary {
            codec: codec.to_string(),
            sample_rate: config.map(|c| c.sample_rate),
            channels: config.map(|c| c.channels),
        }
    }
}

/// Mutable facts about the current publish session.
#[derive(Debug)]
pub struct StreamState {
    /// Id of the current publisher, if any.
    pub publisher: Option<u64>,
    /// Woken to disconnect the current publisher (takeover).
    pub publisher_kick: Option<Arc<super::kick::Kick>>,
    /// The current publisher gives way to any other (a scheduled playout).
    pub publisher_yields: bool,
    pub started_at: Option<SystemTime>,
    pub started_instant: Option<Instant>,
    pub video: Option<VideoSummary>,
    pub audio: Option<AudioSummary>,
    pub metadata: Option<Metadata>,
    pub bitrate: RateMeter,
    pub video_frames: RateMeter,
    /// Last output timestamp (decode time).
    pub last_timestamp: Option<u32>,
    /// The latest output time anything was shown at: decode time, or for video frames with a
    /// composition offset (B-frames) their presentation time. The next publish session starts
    /// after it, so neither decode nor presentation time ever steps back across sessions.
    pub last_presented: Option<u32>,
    /// When the last publisher left, until the memory it left (GOP, HLS window) is released.
    pub ended_at: Option<Instant>,
}

/// A stream entry lives while it has a publisher or viewers (waiting or playing).
#[derive(Debug)]
pub struct StreamEntry {
    pub key: StreamKey,
    log: Mutex<MediaLog>,
    state: Mutex<StreamState>,
    /// Bumped after every change of the log; viewers wait on it.
    pub(super) wake: watch::Sender<u64>,
    /// The same for relay subscribers (edges, forwards), bumped first: a relay hop is one
    /// "viewer" that feeds many, so it gets each message before the local fan-out.
    pub(super) wake_relay: watch::Sender<u64>,
    pub(super) viewers: AtomicUsize,
    /// Of `viewers`, the relay feeds (edges, forwards): not counted as the stream's viewers.
    pub(super) relays: AtomicUsize,
    /// HLS segmenter and its latest snapshot, when the hub has an HLS hook.
    pub hls: Option<Box<dyn StreamHlsHook>>,
}

impl StreamEntry {
    pub fn new(key: StreamKey, buffer_bytes: usize, hls: Option<Box<dyn StreamHlsHook>>) -> Self {
        let now = Instant::now();
        StreamEntry {
            key,
            log: Mutex::new(MediaLog::new(buffer_bytes)),
            state: Mutex::new(StreamState {
                publisher: None,
                publisher_kick: None,
                publisher_yields: false,
                started_at: None,
                started_instant: None,
                video: None,
                audio: None,
                metadata: None,
                bitrate: RateMeter::new(now),
                video_frames: RateMeter::new(now),
                last_timestamp: None,
                last_presented: None,
                ended_at: None,
            }),
            wake: watch::channel(0).0,
            wake_relay: watch::channel(0).0,
            viewers: AtomicUsize::new(0),
            relays: AtomicUsize::new(0),
            hls,
        }
    }

    pub fn log(&self) -> MutexGuard<'_, MediaLog> {
        lock(&self.log)
    }

    pub fn state(&self) -> MutexGuard<'_, StreamState> {
        lock(&self.state)
    }

    /// Wake every viewer waiting on this stream, relay subscribers first.
    pub fn wake_viewers(&self) {
        self.wake_relay.send_modify(|v| *v = v.wrapping_add(1));
        self.wake.send_modify(|v| *v = v.wrapping_add(1));
    }

    pub fn viewer_count(&self) -> usize {
        self.viewers.load(Ordering::Relaxed)
    }

    /// Viewers other than relay feeds (what the load report counts per stream).
    pub fn audience(&self) -> usize {
        self.viewer_count().saturating_sub(self.relays.load(Ordering::Relaxed))
    }

    pub fn is_live(&self) -> bool {
        self.log().is_live()
    }

    /// Whether this stream holds media memory: it is published, or ended and not yet released.
    pub fn holds_media(&self) -> bool {
        let state = self.state();
        state.publisher.is_some() || state.ended_at.is_some()
    }
}
