//! Recording: an origin keeps the streams of `--record-apps` in `--record-dir`, as the CMAF
//! segments its HLS segmenter already makes (no second encode or remux), with an HLS index per
//! recording (`APP/NAME/ID/index.m3u8`, `ID` = the start in Unix milliseconds). A publisher
//! that comes back while the stream lingers continues the same recording as a new period. A
//! finished recording plays as HLS VOD from `/vod/APP/NAME/ID/index.m3u8` ([`crate::http`]).
//!
//! [`index`] is the sans-IO playlist, [`store`] the storage trait and its local directory,
//! `recorder` the task per recorded stream, `start` how a node opens them, [`download`] a finished recording as one MP4,
//! [`dvr`] the time-shift window of a stream being recorded, [`listing`] what the API lists.

pub mod backend;
pub mod download;
pub mod dvr;
pub mod index;
pub mod inventory;
pub mod listing;
mod recorder;
pub mod retention;
pub mod s3;
mod start;
pub mod store;
mod thumbnail;
mod upkeep;

use std::collections::{HashMap, HashSet};
use std::sync::{Arc, Mutex};
use std::time::Duration;

use sluice_media::hls::HlsSnapshot;
use sluice_media::stream_name::StreamKey;
use tokio::sync::{mpsc, watch};

use crate::lock::lock;
use crate::metrics::Metrics;
use crate::settings::OriginSettings;
use backend::{Backend, Target};
use retention::Policy;

/// What an origin is told to record (`--record-dir` or `--record-store`, `--record-apps`).
#[derive(Debug, Clone)]
pub struct RecordSettings {
    pub target: Target,
    pub apps: Vec<String>,
    pub retention: Policy,
    /// A recording this long is finished and the stream goes on in a new one.
    pub max_duration: Option<Duration>,
    /// No segment is written while the store has less free space (0: no floor).
    pub min_free: u64,
    /// The time-shift window of a stream being recorded (`None`: no DVR playlist).
    pub dvr_window: Option<Duration>,
}

impl RecordSettings {
    /// From the origin's settings: `None` when recording is off; an error when half of it is
    /// given.
    pub fn from_origin(s: &OriginSettings) -> Result<Option<Self>, String> {
        let target = match (&s.record_dir, &s.record_store) {
            (Some(_), Some(_)) => {
                return Err("--record-dir and --record-store: give one of them".into())
            }
            (Some(dir), None) => Some(Target::Dir(dir.clone())),
            (None, Some(url)) if url.starts_with("s3://") => Some(Target::S3(url.clone())),
            (None, Some(_)) => return Err("--record-store: s3://BUCKET[/PREFIX]".into()),
            (None, None) => None,
        };
        let target = match (target, s.record_apps.is_empty()) {
            (None, true) => return Ok(None),
            (Some(target), false) => target,
            (None, false) => {
                return Err("--record-apps needs --record-dir or --record-store".into())
            }
            (Some(target), true) => {
                return Err(format!("{} needs --record-apps (`*` for every app)", target.flag()))
            }
        };
        let retention = Policy {
            max_age: (!s.record_max_age.is_zero()).then_some(s.record_max_age),
            max_bytes: (s.record_max_bytes > 0).then_some(s.record_max_bytes as u64),
        };
        Ok(Some(RecordSettings {
            target,
            apps: s.record_apps.clone(),
            retention,
            max_duration: (!s.record_max_duration.is_zero()).then_some(s.record_max_duration),
            min_free: s.record_min_free as u64,
            dvr_window: (!s.dvr_window.is_zero()).then_some(s.dvr_window),
        }))
    }
}

/// Whether this node is the stream's home now (in a cluster, only the home records).
pub type HomeCheck = Box<dyn Fn(&StreamKey) -> bool + Send + Sync>;

/// Told `APP/NAME/ID` whenever that recording's index was written or the recording deleted
/// (the catalog follows them); must not block.
pub type ChangeHook = Box<dyn Fn(&str) + Send + Sync>;

/// A stream's HLS snapshots, as a recorder follows them.
pub(crate) type Source = watch::Receiver<Option<HlsSnapshot>>;

/// The recordings in progress: where a stream's next source goes.
#[derive(Default)]
pub(crate) struct Active {
    /// Each stream's recorder: its registration number and where its next source goes.
    streams: Mutex<HashMap<StreamKey, (u64, mpsc::Sender<Source>)>>,
    next_id: std::sync::atomic::AtomicU64,
    /// Rung when a recording finishes (retention looks again).
    finished: tokio::sync::Notify,
    /// Each recorded stream's DVR playlist, with the registration of the recorder that wrote it.
    dvr: Mutex<HashMap<StreamKey, (u64, bytes::Bytes)>>,
    /// In a cluster: whether this node is a stream's home (unset: standalone, records all).
    home: std::sync::OnceLock<HomeCheck>,
    /// Told of every recording written or deleted.
    change: std::sync::OnceLock<ChangeHook>,
}

impl Active {
    /// Hand `source` to the recording of `key` in progress; gives it back when there is none.
    fn join(&self, key: &StreamKey, source: Source) -> Result<(), Source> {
        let streams = lock(&self.streams);
        match streams.get(key) {
            Some((_, tx)) => tx.try_send(source).map_err(mpsc::error::TrySendError::into_inner),
            None => Err(source),
        }
    }

    /// Register a new recorder of `key` (replacing one whose queue was full); returns its
    /// registration number and where its later sources arrive.
    fn register(&self, key: &StreamKey) -> (u64, mpsc::Receiver<Source>) {
        let id = self.next_id.fetch_add(1, std::sync::atomic::Ordering::Relaxed);
        let (tx, rx) = mpsc::channel(4);
        lock(&self.streams).insert(key.clone(), (id, tx));
        (id, rx)
    }

    /// Recorder `id` of `key`, which waited long enough, leaves; a source that arrived
    /// meanwhile is returned and the recorder carries on. Under the lock `join` takes: no
    /// source is lost between the two. A recorder that was replaced leaves its successor be.
    fn leave(&self, key: &StreamKey, id: u64, more: &mut mpsc::Receiver<Source>) -> Option<Source> {
        let mut streams = lock(&self.streams);
        if let Ok(next) = more.try_recv() {
            return Some(next);
        }
        if streams.get(key).is_some_and(|(own, _)| *own == id) {
            streams.remove(key);
        }
        None
    }

    pub(crate) fn finished(&self) {
        self.finished.notify_one();
    }

    /// Recording `prefix` (`APP/NAME/ID`) was written or deleted.
    pub(crate) fn changed(&self, prefix: &str) {
        if let Some(hook) = self.change.get() {
            hook(prefix);
        }
    }

    /// In a cluster: recorders share the store with other origins' and carry on what they
    /// recorded.
    fn clustered(&self) -> bool {
        self.home.get().is_some()
    }

    /// Whether this node records `key` now: standalone always, in a cluster when it is home.
    fn is_home(&self, key: &StreamKey) -> bool {
        self.home.get().is_none_or(|home| home(key))
    }

    /// Recorder `id` of `key` rendered its DVR playlist anew.
    fn set_dvr(&self, key: &StreamKey, id: u64, playlist: bytes::Bytes) {
        lock(&self.dvr).insert(key.clone(), (id, playlist));
    }

    /// Recorder `id` of `key` stopped: its DVR playlist goes (not a successor's).
    fn clear_dvr(&self, key: &StreamKey, id: u64) {
        let mut dvr = lock(&self.dvr);
        if dvr.get(key).is_some_and(|(own, _)| *own == id) {
            dvr.remove(key);
        }
    }

    fn dvr(&self, key: &StreamKey) -> Option<bytes::Bytes> {
        lock(&self.dvr).get(key).map(|(_, playlist)| playlist.clone())
    }
}

/// What a node records, and where.
pub struct Recordings {
    store: Arc<Backend>,
    /// What the settings named (for messages).
    target: Target,
    /// Apps recorded (`*`: every app).
    apps: Vec<String>,
    /// How long a recording waits for its publisher to come back.
    reconnect_wait: Duration,
    retention: Policy,
    limits: recorder::Limits,
    active: Arc<Active>,
    /// MP4 layouts are built one at a time.
    builds: tokio::sync::Mutex<()>,
    /// Recently served MP4 layouts (dropped when retention deletes their recording).
    layouts: download::Cache,
    /// Recordings known to be finished (`APP/NAME/ID`), so retention reads each index once.
    known_finished: Mutex<HashSet<String>>,
    metrics: Metrics,
}

impl std::fmt::Debug for Recordings {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Recordings").field("store", &self.target).field("apps", &self.apps).finish()
    }
}

impl Recordings {
    /// `reconnect_wait`: a publisher that comes back within it continues the recording (as a
    /// new period); the node's `--ended-stream-linger`.
    pub fn new(
        settings: &RecordSettings,
        reconnect_wait: Duration,
        metrics: Metrics,
    ) -> std::io::Result<Self> {
        let store = Arc::new(Backend::open(&settings.target)?);
        let active = Arc::default();
        let (apps, retention) = (settings.apps.clone(), settings.retention);
        let limits = recorder::Limits {
            max_duration: settings.max_duration,
            min_free: settings.min_free,
            dvr_window: settings.dvr_window,
        };
        let (builds, layouts) = (tokio::sync::Mutex::new(()), download::cache());
        Ok(Recordings {
            store,
            apps,
            reconnect_wait,
            retention,
            limits,
            active,
            builds,
            layouts,
            known_finished: Mutex::default(),
            target: settings.target.clone(),
            metrics,
        })
    }

    /// In a cluster: record only the streams `home` says this node is the home of, carrying
    /// on a recording another origin left open in a shared store. Set once, before streams.
    pub fn follow_home(&self, home: HomeCheck) {
        let _ = self.active.home.set(home);
    }

    /// Tell `hook` of every recording written (each index write) or deleted. Set once.
    pub fn on_change(&self, hook: ChangeHook) {
        let _ = self.active.change.set(hook);
    }

    /// Where the recordings are, as the settings named it.
    pub fn target(&self) -> &Target {
        &self.target
    }

    pub fn records(&self, key: &StreamKey) -> bool {
        self.apps.iter().any(|a| a == "*" || a == key.app())
    }

    pub fn store(&self) -> &Arc<Backend> {
        &self.store
    }

    /// The recordings `filter` lets through, newest first, and whether the limit left some out.
    pub async fn list(
        &self,
        filter: listing::Filter,
    ) -> std::io::Result<(Vec<listing::RecordingInfo>, bool)> {
        listing::list(self.store.as_ref(), &filter).await
    }

    /// The recording `key`/`id` (`id` checked by the caller), if there is one.
    pub async fn one(
        &self,
        key: &StreamKey,
        id: &str,
    ) -> std::io::Result<Option<listing::RecordingInfo>> {
        listing::one(self.store.as_ref(), &format!("{}/{}/{id}", key.app(), key.name())).await
    }

    /// Delete the finished recording `key`/`id` (`id` checked by the caller).
    pub async fn delete(&self, key: &StreamKey, id: &str) -> Result<(), listing::DeleteError> {
        let prefix = format!("{}/{}/{id}", key.app(), key.name());
        listing::delete(self.store.as_ref(), &prefix).await?;
        self.forget(&prefix);
        tracing::info!(recording = %prefix, "recording deleted through the API");
        Ok(())
    }

    /// The DVR playlist of `key`, while it is being recorded (and DVR is on).
    pub fn dvr(&self, key: &StreamKey) -> Option<bytes::Bytes> {
        self.active.dvr(key)
    }

    /// The finished recording `prefix` (`APP/NAME/ID`) as one MP4.
    pub async fn download(
        &self,
        prefix: &str,
    ) -> Result<Arc<download::Download>, download::DownloadError> {
        download::open(self.store.as_ref(), prefix, &self.builds, &self.layouts).await
    }

    /// Record `key` from its HLS snapshots (`source`), if its app is recorded: the recording
    /// of `key` in progress takes it as its next period, else a new recording starts.
    pub fn start(&self, key: &StreamKey, source: Source) {
        if !self.records(key) {
            return;
        }
        let Err(source) = self.active.join(key, source) else { return };
        // Registered before the task runs.
        let (registration, more) = self.active.register(key);
        tokio::spawn(recorder::run(recorder::Job {
            registration,
            store: self.store.clone(),
            key: key.clone(),
            source,
            more,
            reconnect_wait: self.reconnect_wait,
            limits: self.limits,
            active: self.active.clone(),
            metrics: self.metrics.clone(),
        }));
    }
}

/// A recording's thumbnail (a keyframe as JPEG, made for the catalog).
pub const THUMBNAIL: &str = "thumb.jpg";

/// Whether `id` and `file` name something a recording holds (anything else is 404 at once).
pub fn is_recording_file(id: &str, file: &str) -> bool {
    let digits = |s: &str| !s.is_empty() && s.len() <= 20 && s.bytes().all(|b| b.is_ascii_digit());
    digits(id)
        && (file == "index.m3u8"
            || file.strip_prefix("init-").and_then(|f| f.strip_suffix(".mp4")).is_some_and(digits)
            || file.strip_prefix("seg-").and_then(|f| f.strip_suffix(".m4s")).is_some_and(digits)
            || file == THUMBNAIL)
}

#[cfg(test)]
mod tests {
    use super::*;

    fn source() -> Source {
        watch::channel(None).1
    }

    #[test]
    fn a_replaced_recorder_leaving_does_not_unregister_its_successor() {
        let active = Active::default();
        let key = StreamKey::parse("live", "cam").unwrap().0;
        assert!(active.join(&key, source()).is_err(), "nobody records it yet");
        let (first, mut first_rx) = active.register(&key);
        for _ in 0..4 {
            assert!(active.join(&key, source()).is_ok());
        }
        // The first recorder's queue is full: a new recorder takes the name over.
        assert!(active.join(&key, source()).is_err());
        let (second, mut second_rx) = active.register(&key);
        while first_rx.try_recv().is_ok() {}
        assert!(active.leave(&key, first, &mut first_rx).is_none());
        assert!(active.join(&key, source()).is_ok(), "the second still takes sources");
        assert!(active.leave(&key, second, &mut second_rx).is_some(), "and hands them over");
        assert!(active.leave(&key, second, &mut second_rx).is_none());
        assert!(active.join(&key, source()).is_err(), "gone once it left");
    }

    #[test]
    fn only_recording_file_names_are_served() {
        use super::is_recording_file as ok;
        assert!(ok("1765000000000", "index.m3u8"));
        assert!(ok("1", "init-7.mp4") && ok("1", "seg-123.m4s"));
        for (id, file) in [
            ("x", "index.m3u8"),
            ("1", "../index.m3u8"),
            ("1", "seg-.m4s"),
            ("1", "init-1.mp4.part"),
            ("", "index.m3u8"),
            ("1", "seg-1x.m4s"),
        ] {
            assert!(!ok(id, file), "{id} {file}");
        }
    }
}
