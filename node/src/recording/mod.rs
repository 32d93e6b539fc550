//! Recording: an origin keeps the streams of `--record-apps` in `--record-dir`, as the CMAF
//! segments its HLS segmenter already makes (no second encode or remux), with an HLS index per
//! recording (`APP/NAME/ID/index.m3u8`, `ID` = the start in Unix milliseconds). A publisher
//! that comes back while the stream lingers continues the same recording as a new period. A
//! finished recording plays as HLS VOD from `/vod/APP/NAME/ID/index.m3u8` ([`crate::http`]).
//!
//! [`index`] is the sans-IO playlist, [`store`] the storage trait and its local directory,
//! `recorder` the task per recorded stream, `start` how a node opens them, [`download`] a finished recording as one MP4,
//! [`dvr`] the time-shift window of a stream being recorded, [`listing`] what the API lists.

pub mod download;
pub mod dvr;
pub mod index;
pub mod listing;
mod recorder;
pub mod retention;
pub mod s3;
mod start;
pub mod store;

use std::collections::HashMap;
use std::path::Path;
use std::sync::{Arc, Mutex};
use std::time::{Duration, SystemTime, UNIX_EPOCH};

use sluice_media::hls::HlsSnapshot;
use sluice_media::stream_name::StreamKey;
use tokio::sync::{mpsc, watch};

use crate::lock::lock;
use crate::metrics::Metrics;
use crate::settings::OriginSettings;
use retention::{Policy, RecInfo};
use store::LocalDir;

/// What an origin is told to record (`--record-dir`, `--record-apps`).
#[derive(Debug, Clone)]
pub struct RecordSettings {
    pub dir: std::path::PathBuf,
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
        let dir = match (&s.record_dir, s.record_apps.is_empty()) {
            (None, true) => return Ok(None),
            (Some(dir), false) => dir.clone(),
            (None, false) => return Err("--record-apps needs --record-dir".into()),
            (Some(_), true) => {
                return Err("--record-dir needs --record-apps (`*` for every app)".into())
            }
        };
        let retention = Policy {
            max_age: (!s.record_max_age.is_zero()).then_some(s.record_max_age),
            max_bytes: (s.record_max_bytes > 0).then_some(s.record_max_bytes as u64),
        };
        Ok(Some(RecordSettings {
            dir,
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
    store: Arc<LocalDir>,
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
    metrics: Metrics,
}

impl std::fmt::Debug for Recordings {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Recordings")
            .field("dir", &self.store.root())
            .field("apps", &self.apps)
            .finish()
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
        let store = Arc::new(LocalDir::new(&settings.dir)?);
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

    /// Where the recordings are.
    pub fn root(&self) -> &Path {
        self.store.root()
    }

    /// Finish the recordings a crash left open (their index not ended) and drop half-written
    /// files, of those untouched for `min_age`: run at start before any recorder with zero
    /// (standalone: nobody else writes here), and every so often in a cluster, where another
    /// origin may be carrying a recording on in a shared store. Returns how many were
    /// finished.
    pub fn recover(&self, min_age: Duration) -> std::io::Result<usize> {
        let mut finished = 0;
        let old = |path: &Path| {
            min_age.is_zero()
                || std::fs::metadata(path)
                    .and_then(|m| m.modified())
                    .is_ok_and(|t| t.elapsed().is_ok_and(|age| age >= min_age))
        };
        let gone_is_fine = |r: std::io::Result<()>| match r {
            Err(e) if e.kind() == std::io::ErrorKind::NotFound => Ok(()),
            r => r,
        };
        for rec in recording_dirs(self.store.root())? {
            // Another origin sharing the store may delete or finish it meanwhile.
            let Ok(entries) = std::fs::read_dir(&rec) else { continue };
            for entry in entries.flatten() {
                if entry.path().extension().is_some_and(|x| x == "part") && old(&entry.path()) {
                    gone_is_fine(std::fs::remove_file(entry.path()))?;
                }
            }
            let index = rec.join("index.m3u8");
            if !index.exists() {
                // A crash before its first index (or a file written after a delete): nothing
                // plays it and nothing would ever remove it.
                if old(&rec) {
                    gone_is_fine(std::fs::remove_dir_all(&rec))?;
                    tracing::info!(recording = %rec.display(), "recording without an index removed");
                }
                continue;
            }
            if !old(&index) || index::file_is_finished(&index) {
                continue;
            }
            let Ok(text) = std::fs::read_to_string(&index) else { continue };
            let Some(done) = index::finish_text(&text) else { continue };
            let tmp = index.with_extension(format!("{}-recover.part", std::process::id()));
            std::fs::write(&tmp, done)?;
            std::fs::File::open(&tmp)?.sync_all()?;
            std::fs::rename(&tmp, &index)?;
            tracing::info!(recording = %rec.display(), "recording finished after a restart");
            if let Ok(prefix) = rec.strip_prefix(self.store.root()) {
                self.active.changed(&prefix.to_string_lossy());
            }
            finished += 1;
        }
        Ok(finished)
    }

    /// Apply the retention policy now: delete what it says (finished recordings only).
    /// Returns how many recordings were deleted.
    pub async fn sweep(&self) -> std::io::Result<usize> {
        let (root, policy) = (self.store.root().to_path_buf(), self.retention);
        let deleted = tokio::task::spawn_blocking(move || -> std::io::Result<Vec<String>> {
            let now_ms = SystemTime::now().duration_since(UNIX_EPOCH).map_or(0, |d| d.as_millis());
            let recs = scan(&root)?;
            let doomed =
                retention::expired(&recs, u64::try_from(now_ms).unwrap_or(u64::MAX), &policy);
            for prefix in &doomed {
                match std::fs::remove_dir_all(root.join(prefix)) {
                    // Another origin sharing the store deleted it first.
                    Err(e) if e.kind() == std::io::ErrorKind::NotFound => continue,
                    r => r?,
                }
                tracing::info!(recording = %prefix, "recording deleted by retention");
            }
            Ok(doomed)
        })
        .await
        .map_err(std::io::Error::other)??;
        for prefix in &deleted {
            self.layouts.remove(prefix);
            self.active.changed(prefix);
        }
        self.metrics.recordings_deleted.inc_by(deleted.len() as u64);
        Ok(deleted.len())
    }

    /// In a cluster: finish, every `period`, the recordings left open and untouched for
    /// `min_age` (their home died and no origin carried them on).
    pub fn spawn_stale_finisher(
        self: &Arc<Self>,
        period: Duration,
        min_age: Duration,
    ) -> tokio::task::JoinHandle<()> {
        let this = self.clone();
        tokio::spawn(async move {
            loop {
                tokio::time::sleep(period).await;
                let rec = this.clone();
                match tokio::task::spawn_blocking(move || rec.recover(min_age)).await {
                    Ok(Ok(0)) => {}
                    Ok(Ok(_)) => this.active.finished(),
                    Ok(Err(e)) => {
                        this.metrics.recording_errors.inc();
                        tracing::warn!(error = %e, "finishing stale recordings failed");
                    }
                    Err(e) => tracing::warn!(error = %e, "finishing stale recordings failed"),
                }
            }
        })
    }

    /// Apply retention at start, every so often, and whenever a recording finishes (`None`
    /// when no retention is configured).
    pub fn spawn_retention(self: &Arc<Self>) -> Option<tokio::task::JoinHandle<()>> {
        if self.retention.is_off() {
            return None;
        }
        let period = self.retention.max_age.map_or(Duration::from_secs(60), |age| {
            (age / 4).clamp(Duration::from_secs(1), Duration::from_secs(60))
        });
        let this = self.clone();
        Some(tokio::spawn(async move {
            loop {
                if let Err(e) = this.sweep().await {
                    this.metrics.recording_errors.inc();
                    tracing::warn!(error = %e, "recording retention failed");
                }
                tokio::select! {
                    _ = tokio::time::sleep(period) => {}
                    _ = this.active.finished.notified() => {}
                }
            }
        }))
    }

    pub fn records(&self, key: &StreamKey) -> bool {
        self.apps.iter().any(|a| a == "*" || a == key.app())
    }

    pub fn store(&self) -> &Arc<LocalDir> {
        &self.store
    }

    /// The recordings `filter` lets through, newest first, and whether the limit left some out.
    pub async fn list(
        &self,
        filter: listing::Filter,
    ) -> std::io::Result<(Vec<listing::RecordingInfo>, bool)> {
        let root = self.store.root().to_path_buf();
        tokio::task::spawn_blocking(move || listing::list(&root, &filter))
            .await
            .map_err(std::io::Error::other)?
    }

    /// The recording `key`/`id` (`id` checked by the caller), if there is one.
    pub async fn one(
        &self,
        key: &StreamKey,
        id: &str,
    ) -> std::io::Result<Option<listing::RecordingInfo>> {
        let (root, app, name, id) = self.names(key, id);
        tokio::task::spawn_blocking(move || listing::one(&root, &app, &name, &id))
            .await
            .map_err(std::io::Error::other)?
    }

    /// Delete the finished recording `key`/`id` (`id` checked by the caller).
    pub async fn delete(&self, key: &StreamKey, id: &str) -> Result<(), listing::DeleteError> {
        let (root, app, name, id) = self.names(key, id);
        let prefix = format!("{app}/{name}/{id}");
        tokio::task::spawn_blocking(move || listing::delete(&root, &app, &name, &id))
            .await
            .map_err(|e| listing::DeleteError::Io(std::io::Error::other(e)))??;
        self.layouts.remove(&prefix);
        self.active.changed(&prefix);
        tracing::info!(recording = %prefix, "recording deleted through the API");
        Ok(())
    }

    fn names(&self, key: &StreamKey, id: &str) -> (std::path::PathBuf, String, String, String) {
        let root = self.store.root().to_path_buf();
        (root, key.app().to_string(), key.name().to_string(), id.to_string())
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

/// Every recording under `root`, with its size and whether it is finished.
fn scan(root: &Path) -> std::io::Result<Vec<RecInfo>> {
    let mut out = Vec::new();
    for dir in recording_dirs(root)? {
        let Ok(rel) = dir.strip_prefix(root) else { continue };
        let prefix = rel.to_string_lossy().replace('\\', "/");
        let mut parts = prefix.split('/');
        let (Some(app), _, Some(id)) = (parts.next(), parts.next(), parts.next()) else { continue };
        let Ok(started_ms) = id.parse::<u64>() else { continue };
        let mut bytes = 0;
        for entry in std::fs::read_dir(&dir)?.flatten() {
            bytes += entry.metadata().map_or(0, |m| m.len());
        }
        let finished =
            std::fs::read_to_string(dir.join("index.m3u8")).is_ok_and(|t| index::is_finished(&t));
        out.push(RecInfo { app: app.to_string(), prefix, started_ms, bytes, finished });
    }
    Ok(out)
}

/// Every `APP/NAME/ID` directory under `root`.
pub(crate) fn recording_dirs(root: &Path) -> std::io::Result<Vec<std::path::PathBuf>> {
    let mut level = vec![root.to_path_buf()];
    for _ in 0..3 {
        let mut next = Vec::new();
        for dir in &level {
            // Another origin sharing the store may delete a directory meanwhile: gone is fine.
            let entries = match std::fs::read_dir(dir) {
                Ok(entries) => entries,
                Err(e) if e.kind() == std::io::ErrorKind::NotFound => continue,
                Err(e) => return Err(e),
            };
            for entry in entries.flatten() {
                if entry.file_type().is_ok_and(|t| t.is_dir()) {
                    next.push(entry.path());
                }
            }
        }
        level = next;
    }
    Ok(level)
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
