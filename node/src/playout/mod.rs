//! Scheduled playout (#15): FLV and MP4 files (H.264/H.265/AAC) in `--playout-dir` published as live streams at their
//! scheduled time, read and paced by the origin itself (no ffmpeg), so viewers see them exactly
//! as a live encoder's. A live encoder that publishes the name takes it over; the playout keeps
//! its place in time and goes on when the encoder leaves.
//!
//! [`schedule`] (a standalone origin's entries, sans-IO) and [`pacer`] (when each tag is due,
//! sans-IO) are driven by [`Playout`]: a task that starts due entries every 100 ms, each played
//! by `runner`. A standalone origin keeps its schedule in `--playout-dir` (`.sluice-schedule.json`,
//! so a restart goes on where it was); `/api/schedule` (`http::schedule`) adds, lists and
//! removes entries. In a cluster the schedule is the registry's ([`ClusterSchedule`], set
//! through the control plane): each entry is played by its stream's ring home, under the
//! name's claim; a new home (a failover) goes on at the entry's place in time.

pub mod mp4;
pub mod pacer;
mod runner;
pub mod schedule;
pub mod source;

use std::collections::{BTreeMap, HashMap};
use std::path::PathBuf;
use std::sync::atomic::{AtomicBool, AtomicU64, Ordering};
use std::sync::{Arc, Mutex};
use std::time::{Duration, SystemTime, UNIX_EPOCH};

use sluice_media::stream_name::StreamKey;
use tokio::sync::watch;
use tracing::{info, warn};

use crate::hub::Hub;
use crate::lock::lock;
use crate::recording::Recordings;
use schedule::{Entry, EntryValue, Schedule, ScheduleError, State};
use source::Input;

/// How often due entries are looked for.
const TICK: Duration = Duration::from_millis(100);
/// The file a standalone origin keeps its schedule in, inside `--playout-dir`.
pub const SCHEDULE_FILE: &str = ".sluice-schedule.json";

fn now_ms() -> i64 {
    SystemTime::now().duration_since(UNIX_EPOCH).map_or(0, |d| d.as_millis() as i64)
}

/// What a playout asks of the cluster around its publishing (standalone: nothing).
/// Whether a playout may publish its name now.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Ready {
    Yes,
    /// Its claim is being asked for: worth a moment's wait.
    Claiming,
    /// Another node holds or asks for the name: not now.
    No,
}

pub trait Claims: Send + Sync {
    /// Whether `key` may be published now; when this node does not hold the name's claim yet,
    /// it starts claiming it (the runner asks again at its next keyframe).
    fn ready(&self, key: &StreamKey) -> Ready;
    /// A live publisher took `key` over here: the name is its now.
    fn displaced(&self, key: &StreamKey);
    /// The playout of `key` stopped publishing here.
    fn ended(&self, key: &StreamKey);
    /// The playout of `key` publishes these codecs now (the claim tells the cluster).
    fn codecs(&self, _key: &StreamKey, _codecs: &[String]) {}
}

/// A cluster's schedule, from the registry.
pub trait ClusterSchedule: Claims {
    /// Every entry, by id.
    fn entries(&self) -> Vec<(String, EntryValue)>;
    /// Whether this node plays `key`'s entries (its player: the ring home, or the first origin
    /// after it that plays files out).
    fn is_home(&self, key: &StreamKey) -> bool;
}

struct Alone;

impl Claims for Alone {
    fn ready(&self, _: &StreamKey) -> Ready {
        Ready::Yes
    }
    fn displaced(&self, _: &StreamKey) {}
    fn ended(&self, _: &StreamKey) {}
}

enum Book {
    /// A standalone origin's own schedule, kept in a file.
    Local { schedule: Mutex<Schedule>, dirty: AtomicBool },
    /// The registry's; how the entries played here stand, with the value each was played as.
    Cluster {
        cluster: Arc<dyn ClusterSchedule>,
        states: Mutex<HashMap<String, (EntryValue, State)>>,
    },
}

/// A running entry: what it plays and its stop switch.
struct Running {
    value: EntryValue,
    generation: u64,
    stop: watch::Sender<bool>,
}

/// One node's playouts.
pub struct Playout {
    dir: PathBuf,
    hub: Hub,
    /// Where recordings played out are read (`--record-dir`), if the node records.
    recordings: Option<Arc<Recordings>>,
    book: Book,
    running: Mutex<HashMap<String, Running>>,
    generations: AtomicU64,
    /// Playouts reading on to catch up with their time at once (a late start of a long FLV
    /// file reads through it): the rest wait their turn.
    catch_ups: Arc<tokio::sync::Semaphore>,
}

/// Playouts catching up at once (see [`Playout`]).
const MAX_CATCH_UPS: usize = 2;

impl std::fmt::Debug for Playout {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Playout").field("dir", &self.dir).finish()
    }
}

impl Playout {
    /// A standalone origin's playout: its schedule read back from `dir` (an unreadable one is
    /// set aside as `.sluice-schedule.json.bad` and the schedule starts empty).
    pub fn standalone(dir: PathBuf, hub: Hub, recordings: Option<Arc<Recordings>>) -> Arc<Playout> {
        let path = dir.join(SCHEDULE_FILE);
        let schedule = match std::fs::read(&path) {
            Ok(json) => Schedule::restore(&json).unwrap_or_else(|e| {
                warn!(file = %path.display(), error = %e, "the playout schedule is unreadable: set aside, starting empty");
                let _ = std::fs::rename(&path, path.with_extension("json.bad"));
                Schedule::default()
            }),
            Err(_) => Schedule::default(),
        };
        let entries = schedule.list().len();
        if entries > 0 {
            info!(entries, "playout schedule restored");
        }
        let book = Book::Local { schedule: Mutex::new(schedule), dirty: AtomicBool::new(false) };
        Playout::new(dir, hub, recordings, book)
    }

    /// A cluster origin's playout of the registry's schedule.
    pub fn clustered(
        dir: PathBuf,
        hub: Hub,
        recordings: Option<Arc<Recordings>>,
        cluster: Arc<dyn ClusterSchedule>,
    ) -> Arc<Playout> {
        Playout::new(dir, hub, recordings, Book::Cluster { cluster, states: Mutex::default() })
    }

    fn new(
        dir: PathBuf,
        hub: Hub,
        recordings: Option<Arc<Recordings>>,
        book: Book,
    ) -> Arc<Playout> {
        let running = Mutex::default();
        let generations = AtomicU64::new(1);
        let catch_ups = Arc::new(tokio::sync::Semaphore::new(MAX_CATCH_UPS));
        Arc::new(Playout { dir, hub, recordings, book, running, generations, catch_ups })
    }

    /// Whether the recording `value` plays (if it plays one) is there, finished and playable.
    pub async fn check_recording(&self, value: &EntryValue) -> Result<(), ScheduleError> {
        let Some(prefix) = &value.recording else { return Ok(()) };
        sluice_cluster::schedule::check_recording(prefix)?;
        let recordings = self.recordings.as_ref().ok_or(ScheduleError::NoRecordings)?;
        match recordings.download(prefix).await {
            Ok(_) => Ok(()),
            Err(e) => Err(ScheduleError::Recording(prefix.clone(), e.to_string())),
        }
    }

    /// What `value` plays.
    fn input(&self, value: &EntryValue) -> Option<Input> {
        match &value.recording {
            Some(prefix) => {
                let recordings = self.recordings.clone()?;
                Some(Input::Recording { recordings, prefix: prefix.clone() })
            }
            None => schedule::resolve(&self.dir, &value.file).ok().map(Input::File),
        }
    }

    /// Schedule `value` (its file inside the playout directory, an FLV file that exists).
    pub fn add(&self, value: EntryValue) -> Result<Entry, ScheduleError> {
        let Book::Local { schedule, dirty } = &self.book else {
            return Err(ScheduleError::Clustered);
        };
        sluice_cluster::schedule::validate(&value)?;
        if value.recording.is_none() && !schedule::resolve(&self.dir, &value.file)?.is_file() {
            return Err(ScheduleError::Missing(value.file));
        }
        let entry = lock(schedule).add(value)?;
        dirty.store(true, Ordering::Release);
        let v = &entry.value;
        info!(id = entry.id, stream = %format!("{}/{}", v.app, v.stream), file = v.file, start_ms = v.start_ms, looped = v.looped, "playout scheduled");
        Ok(entry)
    }

    /// Remove entry `id`, stopping it if it plays.
    pub fn remove(&self, id: &str) -> Result<Entry, ScheduleError> {
        let Book::Local { schedule, dirty } = &self.book else {
            return Err(ScheduleError::Clustered);
        };
        let entry = lock(schedule).remove(id)?;
        dirty.store(true, Ordering::Release);
        if let Some(r) = lock(&self.running).remove(id) {
            let _ = r.stop.send(true);
        }
        Ok(entry)
    }

    /// Every entry, by start, with its state here (in a cluster: `waiting` for an entry this
    /// node does not play).
    pub fn list(&self) -> Vec<Entry> {
        match &self.book {
            Book::Local { schedule, .. } => lock(schedule).list(),
            Book::Cluster { cluster, states } => {
                let states = lock(states);
                let mut all: Vec<Entry> = cluster
                    .entries()
                    .into_iter()
                    .map(|(id, value)| {
                        let state = states
                            .get(&id)
                            .filter(|(v, _)| *v == value)
                            .map_or(State::Waiting, |(_, s)| *s);
                        Entry { id, value, state }
                    })
                    .collect();
                all.sort_by(|a, b| (a.value.start_ms, &a.id).cmp(&(b.value.start_ms, &b.id)));
                all
            }
        }
    }

    /// How the entries this node played (or plays) stand, by id, for its load report; at
    /// most `max`, running ones first.
    pub fn states(&self, max: usize) -> BTreeMap<String, State> {
        let Book::Cluster { states, .. } = &self.book else { return BTreeMap::new() };
        let mut all: Vec<(String, State)> =
            lock(states).iter().map(|(id, (_, s))| (id.clone(), *s)).collect();
        all.sort_by_key(|(id, s)| (matches!(s, State::Done | State::Failed), id.clone()));
        all.into_iter().take(max).collect()
    }

    /// Start the task that starts due entries (and, standalone, keeps the schedule's file).
    pub fn spawn(self: &Arc<Self>) -> tokio::task::JoinHandle<()> {
        let this = self.clone();
        tokio::spawn(async move {
            let mut tick = tokio::time::interval(TICK);
            tick.set_missed_tick_behavior(tokio::time::MissedTickBehavior::Delay);
            let save_failures = crate::log_limit::RateLimitedLog::new(1);
            loop {
                tick.tick().await;
                match &this.book {
                    Book::Local { schedule, dirty } => {
                        let due = lock(schedule).start_due(now_ms());
                        for entry in due {
                            dirty.store(true, Ordering::Release);
                            if !this.start(entry.id.clone(), entry.value) {
                                lock(schedule).set_state(&entry.id, State::Failed);
                            }
                        }
                        if dirty.swap(false, Ordering::AcqRel) {
                            let json = lock(schedule).to_json();
                            if let Err(e) = this.save(json).await {
                                dirty.store(true, Ordering::Release);
                                if save_failures.allow() {
                                    warn!(dir = %this.dir.display(), error = %e, "the playout schedule could not be saved (retried)");
                                }
                            }
                        }
                    }
                    Book::Cluster { cluster, states } => this.reconcile(cluster.as_ref(), states),
                }
            }
        })
    }

    /// Write the schedule's file whole (a temporary file renamed over it).
    async fn save(&self, json: Vec<u8>) -> std::io::Result<()> {
        let path = self.dir.join(SCHEDULE_FILE);
        let tmp = self.dir.join(format!("{SCHEDULE_FILE}.{}.tmp", std::process::id()));
        tokio::task::spawn_blocking(move || {
            use std::io::Write;
            let mut file = std::fs::File::create(&tmp)?;
            file.write_all(&json)?;
            file.sync_data()?;
            std::fs::rename(&tmp, &path)
        })
        .await
        .map_err(std::io::Error::other)?
    }

    /// In a cluster: stop what this node should no longer play (removed, changed, homed
    /// elsewhere) and start what it should, once due.
    fn reconcile(
        self: &Arc<Self>,
        cluster: &dyn ClusterSchedule,
        states: &Mutex<HashMap<String, (EntryValue, State)>>,
    ) {
        let entries: HashMap<String, EntryValue> = cluster.entries().into_iter().collect();
        let home = |v: &EntryValue| key_of(v).is_some_and(|k| cluster.is_home(&k));
        let mut stopped = Vec::new();
        lock(&self.running).retain(|id, r| {
            let keep = entries.get(id) == Some(&r.value) && home(&r.value);
            if !keep {
                let _ = r.stop.send(true);
                stopped.push(id.clone());
            }
            keep
        });
        let mut states = lock(states);
        // Lock order: states, then running (`record` never holds both).
        for id in stopped {
            info!(id, "playout stopped here: its entry changed, went or is homed elsewhere");
            states.remove(&id);
        }
        states.retain(|id, (v, _)| entries.get(id) == Some(v));
        let now = now_ms();
        for (id, value) in entries {
            let ended =
                states.get(&id).is_some_and(|(_, s)| matches!(s, State::Done | State::Failed));
            if value.start_ms > now
                || ended
                || lock(&self.running).contains_key(&id)
                || !home(&value)
            {
                continue;
            }
            // (`start` takes the running lock only: never the states lock.)
            // Waiting until on air (its first keyframe, under its claim).
            states.insert(id.clone(), (value.clone(), State::Waiting));
            self.start(id, value);
        }
    }

    /// Record `state` for entry `id` run as `generation` (nothing if it was stopped since).
    fn record(&self, id: &str, generation: u64, state: State, finished: bool) {
        let current = |running: &HashMap<String, Running>| {
            running.get(id).is_some_and(|r| r.generation == generation)
        };
        match &self.book {
            Book::Local { schedule, dirty } => {
                {
                    let mut running = lock(&self.running);
                    if !current(&running) {
                        return;
                    }
                    if finished {
                        running.remove(id);
                    }
                }
                if lock(schedule).set_state(id, state) {
                    dirty.store(true, Ordering::Release);
                }
            }
            Book::Cluster { states, .. } => {
                // Under the states lock (then running, as `reconcile` takes them): an entry
                // that finished is never seen as neither running nor ended.
                let mut states = lock(states);
                let mut running = lock(&self.running);
                if !current(&running) {
                    return;
                }
                if finished {
                    running.remove(id);
                }
                if let Some((_, s)) = states.get_mut(id) {
                    *s = state;
                }
            }
        }
    }

    /// Start entry `id`; false when it cannot play here (it has failed). Takes the running
    /// lock only (callers may hold the states lock).
    fn start(self: &Arc<Self>, id: String, value: EntryValue) -> bool {
        let Some(key) = key_of(&value) else { return false };
        let Some(input) = self.input(&value) else {
            warn!(id, recording = ?value.recording, "playout: this origin keeps no recordings (no --record-dir): the entry cannot play here");
            return false;
        };
        let claims: Arc<dyn Claims> = match &self.book {
            Book::Local { .. } => Arc::new(Alone),
            Book::Cluster { cluster, .. } => cluster.clone(),
        };
        let (stop_tx, stop) = watch::channel(false);
        let generation = self.generations.fetch_add(1, Ordering::Relaxed);
        let running = Running { value: value.clone(), generation, stop: stop_tx };
        lock(&self.running).insert(id.clone(), running);
        let weak = Arc::downgrade(self);
        let report_id = id.clone();
        let report = Box::new(move |state| {
            if let Some(this) = weak.upgrade() {
                this.record(&report_id, generation, state, false);
            }
        });
        // Anchored at the scheduled time: a late start catches up.
        let behind = Duration::from_millis(
            u64::try_from(now_ms().saturating_sub(value.start_ms)).unwrap_or(0),
        );
        let now = tokio::time::Instant::now().into_std();
        let start = now.checked_sub(behind).unwrap_or(now);
        let job = runner::Job {
            hub: self.hub.clone(),
            key,
            input,
            looped: value.looped,
            start,
            claims,
            stop,
            report,
            catch_ups: self.catch_ups.clone(),
        };
        let this = self.clone();
        tokio::spawn(async move {
            let end = runner::run(job).await;
            this.record(&id, generation, end, true);
        });
        true
    }
}

fn key_of(v: &EntryValue) -> Option<StreamKey> {
    sluice_cluster::schedule::validate(v).ok()
}
