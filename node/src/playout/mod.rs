//! Scheduled playout (#15): FLV files in `--playout-dir` published as live streams at their
//! scheduled time, read and paced by the origin itself (no ffmpeg), so viewers see them exactly
//! as a live encoder's. A live encoder that publishes the name takes it over; the playout keeps
//! its place in time and goes on when the encoder leaves.
//!
//! [`schedule`] (the entries, sans-IO) and [`pacer`] (when each tag is due, sans-IO) are
//! driven by [`Playout`]: a task that starts due entries every 100 ms, each played by
//! `runner`. `/api/schedule` (`http::schedule`) adds, lists and removes entries. Standalone
//! origins only for now; the schedule lives in memory (a restart forgets it).

pub mod pacer;
mod runner;
pub mod schedule;

use std::collections::HashMap;
use std::path::PathBuf;
use std::sync::{Arc, Mutex};
use std::time::{Duration, SystemTime, UNIX_EPOCH};

use sluice_media::stream_name::StreamKey;
use tokio::sync::watch;

use crate::hub::Hub;
use crate::lock::lock;
use schedule::{Entry, Schedule, ScheduleError};

/// How often due entries are looked for.
const TICK: Duration = Duration::from_millis(100);

fn now_ms() -> i64 {
    SystemTime::now().duration_since(UNIX_EPOCH).map_or(0, |d| d.as_millis() as i64)
}

/// One node's playouts.
pub struct Playout {
    dir: PathBuf,
    hub: Hub,
    schedule: Mutex<Schedule>,
    /// Each running entry's stop switch.
    running: Mutex<HashMap<u64, watch::Sender<bool>>>,
}

impl std::fmt::Debug for Playout {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Playout").field("dir", &self.dir).finish()
    }
}

impl Playout {
    pub fn new(dir: PathBuf, hub: Hub) -> Arc<Playout> {
        Arc::new(Playout { dir, hub, schedule: Mutex::default(), running: Mutex::default() })
    }

    /// Schedule `file` (inside the playout directory, an FLV file that exists) as
    /// `app/stream` from `start_ms`.
    pub fn add(
        &self,
        app: &str,
        stream: &str,
        file: &str,
        start_ms: i64,
        looped: bool,
    ) -> Result<Entry, ScheduleError> {
        let path = schedule::resolve(&self.dir, file)?;
        if !path.is_file() {
            return Err(ScheduleError::Missing(file.into()));
        }
        let entry = lock(&self.schedule).add(app, stream, file, start_ms, looped)?;
        tracing::info!(id = entry.id, stream = %format!("{app}/{stream}"), file, start_ms, looped, "playout scheduled");
        Ok(entry)
    }

    /// Remove entry `id`, stopping it if it plays.
    pub fn remove(&self, id: u64) -> Result<Entry, ScheduleError> {
        let entry = lock(&self.schedule).remove(id)?;
        if let Some(stop) = lock(&self.running).remove(&id) {
            let _ = stop.send(true);
        }
        Ok(entry)
    }

    pub fn list(&self) -> Vec<Entry> {
        lock(&self.schedule).list()
    }

    /// Start the task that starts due entries.
    pub fn spawn(self: &Arc<Self>) -> tokio::task::JoinHandle<()> {
        let this = self.clone();
        tokio::spawn(async move {
            let mut tick = tokio::time::interval(TICK);
            loop {
                tick.tick().await;
                let due = lock(&this.schedule).start_due(now_ms());
                for entry in due {
                    this.start(entry);
                }
            }
        })
    }

    fn start(self: &Arc<Self>, entry: Entry) {
        let Ok((key, _)) = StreamKey::parse(&entry.app, &entry.stream) else { return };
        let Ok(path) = schedule::resolve(&self.dir, &entry.file) else { return };
        let (stop_tx, stop) = watch::channel(false);
        lock(&self.running).insert(entry.id, stop_tx);
        let weak = Arc::downgrade(self);
        let id = entry.id;
        let report = Box::new(move |state| {
            if let Some(this) = weak.upgrade() {
                lock(&this.schedule).set_state(id, state);
            }
        });
        let job =
            runner::Job { hub: self.hub.clone(), key, path, looped: entry.looped, stop, report };
        let this = self.clone();
        tokio::spawn(async move {
            let end = runner::run(job).await;
            lock(&this.running).remove(&id);
            lock(&this.schedule).set_state(id, end);
        });
    }
}
