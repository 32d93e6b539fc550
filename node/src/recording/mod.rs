//! Recording: an origin keeps the streams of `--record-apps` in `--record-dir`, as the CMAF
//! segments its HLS segmenter already makes (no second encode or remux), with an HLS index per
//! recording (`APP/NAME/ID/index.m3u8`, `ID` = the start in Unix milliseconds). A publisher
//! that comes back while the stream lingers continues the same recording as a new period. A
//! finished recording plays as HLS VOD from `/vod/APP/NAME/ID/index.m3u8` ([`crate::http`]).
//!
//! [`index`] is the sans-IO playlist, [`store`] the storage trait and its local directory,
//! `recorder` the task per recorded stream.

pub mod index;
mod recorder;
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
use store::LocalDir;

/// What an origin is told to record (`--record-dir`, `--record-apps`).
#[derive(Debug, Clone)]
pub struct RecordSettings {
    pub dir: std::path::PathBuf,
    pub apps: Vec<String>,
}

impl RecordSettings {
    /// From the origin's settings: `None` when recording is off; an error when half of it is
    /// given.
    pub fn from_parts(dir: Option<&Path>, apps: &[String]) -> Result<Option<Self>, String> {
        match (dir, apps.is_empty()) {
            (None, true) => Ok(None),
            (Some(dir), false) => {
                Ok(Some(RecordSettings { dir: dir.to_path_buf(), apps: apps.to_vec() }))
            }
            (None, false) => Err("--record-apps needs --record-dir".into()),
            (Some(_), true) => Err("--record-dir needs --record-apps (`*` for every app)".into()),
        }
    }
}

/// A stream's HLS snapshots, as a recorder follows them.
pub(crate) type Source = watch::Receiver<Option<HlsSnapshot>>;

/// The recordings in progress: where a stream's next source goes.
#[derive(Default)]
pub(crate) struct Active {
    streams: Mutex<HashMap<StreamKey, mpsc::Sender<Source>>>,
}

impl Active {
    /// Hand `source` to the recording of `key` in progress; gives it back when there is none.
    fn join(&self, key: &StreamKey, source: Source) -> Result<(), Source> {
        let streams = lock(&self.streams);
        match streams.get(key) {
            Some(tx) => tx.try_send(source).map_err(mpsc::error::TrySendError::into_inner),
            None => Err(source),
        }
    }

    /// A recorder of `key` that waited long enough leaves; a source that arrived meanwhile
    /// is returned and the recorder carries on. Under the lock `join` takes: no source is lost
    /// between the two.
    fn leave(&self, key: &StreamKey, more: &mut mpsc::Receiver<Source>) -> Option<Source> {
        let mut streams = lock(&self.streams);
        if let Ok(next) = more.try_recv() {
            return Some(next);
        }
        streams.remove(key);
        None
    }
}

/// What a node records, and where.
pub struct Recordings {
    store: Arc<LocalDir>,
    /// Apps recorded (`*`: every app).
    apps: Vec<String>,
    /// How long a recording waits for its publisher to come back.
    reconnect_wait: Duration,
    active: Arc<Active>,
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
        Ok(Recordings { store, apps: settings.apps.clone(), reconnect_wait, active, metrics })
    }

    /// Finish the recordings a crash left open (their index not ended) and drop half-written
    /// files: run at start, before any recorder. Returns how many were finished.
    pub fn recover(&self) -> std::io::Result<usize> {
        let mut finished = 0;
        for rec in recording_dirs(self.store.root())? {
            for entry in std::fs::read_dir(&rec)?.flatten() {
                if entry.path().extension().is_some_and(|x| x == "part") {
                    std::fs::remove_file(entry.path())?;
                }
            }
            let index = rec.join("index.m3u8");
            let Ok(text) = std::fs::read_to_string(&index) else { continue };
            let Some(done) = index::finish_text(&text) else { continue };
            let tmp = index.with_extension("part");
            std::fs::write(&tmp, done)?;
            std::fs::File::open(&tmp)?.sync_all()?;
            std::fs::rename(&tmp, &index)?;
            tracing::info!(recording = %rec.display(), "recording finished after a restart");
            finished += 1;
        }
        Ok(finished)
    }

    pub fn records(&self, key: &StreamKey) -> bool {
        self.apps.iter().any(|a| a == "*" || a == key.app())
    }

    pub fn store(&self) -> &LocalDir {
        &self.store
    }

    /// Record `key` from its HLS snapshots (`source`), if its app is recorded: the recording
    /// of `key` in progress takes it as its next period, else a new recording starts.
    pub fn start(&self, key: &StreamKey, source: Source) {
        if !self.records(key) {
            return;
        }
        let Err(source) = self.active.join(key, source) else { return };
        let id = SystemTime::now().duration_since(UNIX_EPOCH).map_or(0, |d| d.as_millis());
        let (tx, more) = mpsc::channel(4);
        // Registered before the task runs, under the same lock `join` takes.
        {
            let mut streams = lock(&self.active.streams);
            streams.insert(key.clone(), tx);
        }
        tokio::spawn(recorder::run(recorder::Job {
            store: self.store.clone(),
            prefix: format!("{}/{}/{id}", key.app(), key.name()),
            key: key.clone(),
            source,
            more,
            reconnect_wait: self.reconnect_wait,
            active: self.active.clone(),
            metrics: self.metrics.clone(),
        }));
    }
}

/// Every `APP/NAME/ID` directory under `root`.
fn recording_dirs(root: &Path) -> std::io::Result<Vec<std::path::PathBuf>> {
    let mut level = vec![root.to_path_buf()];
    for _ in 0..3 {
        let mut next = Vec::new();
        for dir in &level {
            for entry in std::fs::read_dir(dir)?.flatten() {
                if entry.file_type()?.is_dir() {
                    next.push(entry.path());
                }
            }
        }
        level = next;
    }
    Ok(level)
}

/// Whether `id` and `file` name something a recording holds (anything else is 404 at once).
pub fn is_recording_file(id: &str, file: &str) -> bool {
    let digits = |s: &str| !s.is_empty() && s.len() <= 20 && s.bytes().all(|b| b.is_ascii_digit());
    digits(id)
        && (file == "index.m3u8"
            || file.strip_prefix("init-").and_then(|f| f.strip_suffix(".mp4")).is_some_and(digits)
            || file.strip_prefix("seg-").and_then(|f| f.strip_suffix(".m4s")).is_some_and(digits))
}

#[cfg(test)]
mod tests {
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
