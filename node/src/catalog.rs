//! The node's side of the content catalog (#15, [`sluice_catalog`]): an origin keeps an item
//! for each stream published here (in a cluster, each stream it is the home of) and for each
//! recording it writes; `/api/catalog` (`http::catalog`) searches and edits them.
//!
//! Nothing that moves media waits on the database. The recorder marks a recording changed
//! (a bounded set, coalesced); one task, every second, writes the recordings marked since
//! (read back from their index: the files are the truth) and the streams that started,
//! changed or ended since its last look at the hub. A failed write is logged (rate-limited),
//! counted and tried again. At start it writes every recording on disk, removes the items of
//! recordings this node wrote that are gone, and ends the live items a crash left open.
//! A recording gets a thumbnail (its first keyframe, decoded by ffmpeg) once it has a segment.

use std::collections::{BTreeSet, HashMap, HashSet};
use std::path::PathBuf;
use std::sync::{Arc, Mutex};
use std::time::{Duration, SystemTime, UNIX_EPOCH};

use sluice_catalog::{Catalog, CatalogError, Facts, Kind};
use sluice_media::stream_name::StreamKey;
use tracing::{info, warn};

use crate::hub::{Hub, StreamSnapshot};
use crate::lock::lock;
use crate::log_limit::RateLimitedLog;
use crate::metrics::Metrics;
use crate::recording::listing::{self, RecordingInfo};
use crate::recording::Recordings;

/// Recordings marked changed and not yet written; past it, the next pass writes them all.
const MAX_DIRTY: usize = 4096;
/// How often the task looks at the hub and the changed recordings.
const PERIOD: Duration = Duration::from_secs(1);
/// Recordings whose thumbnail was tried, remembered (then forgotten all at once).
const MAX_TRIED: usize = 10_000;

/// Whether this node is the home of a stream (in a cluster, only the home writes its items).
pub type HomeCheck = Box<dyn Fn(&StreamKey) -> bool + Send + Sync>;

#[derive(Default)]
struct Dirty {
    recordings: BTreeSet<String>,
    /// More were marked than the set holds: write every recording.
    overflow: bool,
}

/// Keeps this node's items in the catalog.
pub struct CatalogSync {
    /// Set once the database has been opened (a PostgreSQL out of reach at start is tried
    /// again every few seconds).
    catalog: tokio::sync::OnceCell<Catalog>,
    url: String,
    node: String,
    dirty: Mutex<Dirty>,
    metrics: Metrics,
    log: RateLimitedLog,
    /// The ffmpeg program thumbnails are decoded with.
    ffmpeg: PathBuf,
    /// One thumbnail is decoded at a time.
    thumbnails: Arc<tokio::sync::Semaphore>,
}

impl std::fmt::Debug for CatalogSync {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("CatalogSync").field("node", &self.node).finish()
    }
}

fn now_ms() -> i64 {
    SystemTime::now().duration_since(UNIX_EPOCH).map_or(0, |d| d.as_millis() as i64)
}

/// A live stream's facts, from the hub.
fn live_facts(s: &StreamSnapshot, node: &str) -> Facts {
    let mut f = Facts::live(&s.app, &s.name, (s.started_at * 1000.0) as i64, node);
    if let Some(v) = &s.video {
        f.video_codec = Some(v.codec.clone());
        f.width = v.width.map(i64::from);
        f.height = v.height.map(i64::from);
    }
    f.audio_codec = s.audio.as_ref().map(|a| a.codec.clone());
    f
}

/// A recording's facts, from its files; codecs and picture size from its stream when live.
fn recording_facts(info: &RecordingInfo, live: Option<&Facts>, node: &str) -> Facts {
    let started = info.started_at_ms as i64;
    let mut f = Facts::recording(&info.app, &info.stream, &info.id, started, node);
    f.duration_ms = (info.duration_s * 1000.0).round() as i64;
    f.ended_ms = info.finished.then_some(started + f.duration_ms);
    f.size_bytes = info.bytes as i64;
    f.location = info.hls.clone();
    if let Some(live) = live {
        (f.video_codec, f.audio_codec) = (live.video_codec.clone(), live.audio_codec.clone());
        (f.width, f.height) = (live.width, live.height);
    }
    f.thumbnail = info.thumbnail.clone();
    f
}

/// How long one catalog call may take.
pub const TIMEOUT: Duration = Duration::from_secs(5);
/// How often a database out of reach at start is tried again.
const RETRY: Duration = Duration::from_secs(5);

/// What an origin's catalog is opened with.
#[derive(Clone)]
pub struct CatalogOptions {
    pub url: String,
    /// The ffmpeg program thumbnails are decoded with (`--ffmpeg`).
    pub ffmpeg: PathBuf,
}

impl std::fmt::Debug for CatalogOptions {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        // The URL may carry a password: only its scheme.
        let scheme = self.url.split(':').next().unwrap_or_default();
        f.debug_struct("CatalogOptions").field("url", &format!("{scheme}:…")).finish()
    }
}

impl CatalogOptions {
    /// From the origin's settings: `None` when it keeps no catalog.
    pub fn from_origin(
        s: &crate::settings::OriginSettings,
        clustered: bool,
    ) -> Result<Option<CatalogOptions>, String> {
        Ok(catalog_url(s, clustered)?.map(|url| CatalogOptions { url, ffmpeg: s.ffmpeg.clone() }))
    }
}

/// The catalog an origin keeps: `--catalog` (`off`: none), by default SQLite in
/// `--record-dir` when standalone and recording (in a cluster, origins would each keep their
/// own: a shared PostgreSQL is named instead).
fn catalog_url(
    s: &crate::settings::OriginSettings,
    clustered: bool,
) -> Result<Option<String>, String> {
    match (&s.catalog, &s.record_dir) {
        (Some(url), _) if url == "off" => Ok(None),
        (Some(url), _) if url.starts_with("sqlite:") || url.starts_with("postgres") => {
            Ok(Some(url.clone()))
        }
        (Some(url), _) => Err(format!(
            "--catalog {:?}: sqlite://PATH, postgres://USER@HOST/DB or off",
            url.split(':').next().unwrap_or_default()
        )),
        (None, Some(dir)) if !clustered && !s.record_apps.is_empty() => {
            Ok(Some(format!("sqlite://{}", dir.join("catalog.db").display())))
        }
        (None, _) => Ok(None),
    }
}

impl CatalogSync {
    /// Open (and migrate) the catalog `options` name. A SQLite file that cannot be opened is an
    /// error; a PostgreSQL out of reach is tried again in the background (the catalog answers
    /// 503 meanwhile) so that streaming never waits on it.
    pub async fn open(
        options: &CatalogOptions,
        node: &str,
        metrics: Metrics,
    ) -> Result<Arc<Self>, CatalogError> {
        let this = Self::new(None, &options.url, node, options.ffmpeg.clone(), metrics);
        match Catalog::open(&options.url, TIMEOUT).await {
            Ok(catalog) => {
                info!(backend = ?catalog.backend(), "catalog open");
                let _ = this.catalog.set(catalog);
            }
            Err(e) if options.url.starts_with("postgres") => {
                warn!(error = %e, "catalog: the database is out of reach; trying again every 5 s");
            }
            Err(e) => return Err(e),
        }
        Ok(this)
    }

    fn new(
        catalog: Option<Catalog>,
        url: &str,
        node: &str,
        ffmpeg: PathBuf,
        metrics: Metrics,
    ) -> Arc<Self> {
        Arc::new(CatalogSync {
            catalog: tokio::sync::OnceCell::new_with(catalog),
            url: url.to_string(),
            node: node.to_string(),
            dirty: Mutex::default(),
            metrics,
            log: RateLimitedLog::new(1),
            ffmpeg,
            thumbnails: Arc::new(tokio::sync::Semaphore::new(1)),
        })
    }

    /// The catalog, once its database is open.
    pub fn catalog(&self) -> Option<&Catalog> {
        self.catalog.get()
    }

    /// The catalog, opened now if it was not yet (every `RETRY` until it is).
    async fn opened(&self) -> &Catalog {
        loop {
            if let Some(c) = self.catalog.get() {
                return c;
            }
            match Catalog::open(&self.url, TIMEOUT).await {
                Ok(catalog) => {
                    info!(backend = ?catalog.backend(), "catalog open");
                    let _ = self.catalog.set(catalog);
                }
                Err(e) => {
                    self.failed("opening the database", &e);
                    tokio::time::sleep(RETRY).await;
                }
            }
        }
    }

    /// Recording `prefix` (`APP/NAME/ID`) was written or deleted.
    pub fn recording_changed(&self, prefix: &str) {
        let mut dirty = lock(&self.dirty);
        if dirty.recordings.len() < MAX_DIRTY {
            dirty.recordings.insert(prefix.to_string());
        } else {
            dirty.overflow = true;
        }
    }

    fn failed(&self, what: &str, e: &CatalogError) {
        self.metrics.catalog_errors.inc();
        if self.log.allow() {
            warn!(error = %e, what, "catalog: write failed (tried again on the next change)");
        }
    }

    /// Start the task that keeps the catalog up to date.
    pub fn spawn(
        self: &Arc<Self>,
        hub: Hub,
        recordings: Option<Arc<Recordings>>,
        home: Option<HomeCheck>,
    ) -> tokio::task::JoinHandle<()> {
        if let Some(rec) = &recordings {
            let this = Arc::downgrade(self);
            rec.on_change(Box::new(move |prefix| {
                if let Some(this) = this.upgrade() {
                    this.recording_changed(prefix);
                }
            }));
        }
        let this = self.clone();
        tokio::spawn(async move { this.run(hub, recordings, home).await })
    }

    async fn run(
        self: Arc<Self>,
        hub: Hub,
        recordings: Option<Arc<Recordings>>,
        home: Option<HomeCheck>,
    ) {
        // Standalone, every item is this node's whatever its id was at the time; in a
        // cluster, only those it wrote.
        let owner = home.is_some().then(|| self.node.clone());
        let mut ended_leftovers = false;
        let mut listed_all = recordings.is_none();
        let mut live: HashMap<StreamKey, Facts> = HashMap::new();
        let mut tried = HashSet::new();
        let c = self.opened().await;
        let mut tick = tokio::time::interval(PERIOD);
        tick.set_missed_tick_behavior(tokio::time::MissedTickBehavior::Delay);
        loop {
            tick.tick().await;
            if !ended_leftovers {
                match c.end_live_of(owner.as_deref(), now_ms()).await {
                    Ok(n) => {
                        ended_leftovers = true;
                        if n > 0 {
                            info!(items = n, "catalog: live items left open by the last run ended");
                        }
                    }
                    Err(e) => self.failed("ending the last run's live items", &e),
                }
            }
            self.sync_live(c, &hub, home.as_deref(), &mut live).await;
            let Some(rec) = &recordings else { continue };
            let overflow = std::mem::take(&mut lock(&self.dirty).overflow);
            if !listed_all || overflow {
                listed_all =
                    self.sync_all_recordings(c, rec, home.as_deref(), owner.as_deref()).await;
            }
            self.sync_recordings(c, rec, &live, &mut tried).await;
        }
    }

    /// Write the streams published here that started or changed, and end those that stopped.
    async fn sync_live(
        &self,
        c: &Catalog,
        hub: &Hub,
        home: Option<&(dyn Fn(&StreamKey) -> bool + Send + Sync)>,
        live: &mut HashMap<StreamKey, Facts>,
    ) {
        let mut now_live = HashMap::new();
        let mut elsewhere = HashSet::new();
        for s in hub.snapshot() {
            let Ok((key, _)) = StreamKey::parse(&s.app, &s.name) else { continue };
            if home.is_none_or(|home| home(&key)) {
                now_live.insert(key, live_facts(&s, &self.node));
            } else {
                // Live here but homed elsewhere now (a failover): its new home writes it.
                elsewhere.insert(key);
            }
        }
        live.retain(|key, _| !elsewhere.contains(key));
        for (key, facts) in &now_live {
            if live.get(key) == Some(facts) {
                continue;
            }
            match c.record(facts).await {
                Ok(()) => {
                    self.metrics.catalog_writes.inc();
                    live.insert(key.clone(), facts.clone());
                }
                Err(e) => {
                    self.failed("a live stream", &e);
                    return;
                }
            }
        }
        let ended: Vec<StreamKey> =
            live.keys().filter(|k| !now_live.contains_key(*k)).cloned().collect();
        for key in ended {
            let mut facts = live[&key].clone();
            let now = now_ms();
            facts.ended_ms = Some(now);
            facts.duration_ms = (now - facts.started_ms).max(0);
            match c.record(&facts).await {
                Ok(()) => {
                    self.metrics.catalog_writes.inc();
                    live.remove(&key);
                }
                Err(e) => {
                    self.failed("a live stream's end", &e);
                    return;
                }
            }
        }
    }

    /// Write every recording on disk this node is the home of (all, standalone), and remove
    /// the items of recordings it wrote that are gone; whether it got through.
    async fn sync_all_recordings(
        &self,
        c: &Catalog,
        rec: &Recordings,
        home: Option<&(dyn Fn(&StreamKey) -> bool + Send + Sync)>,
        owner: Option<&str>,
    ) -> bool {
        let filter = listing::Filter { limit: usize::MAX, ..listing::Filter::default() };
        let on_disk = match rec.list(filter).await {
            Ok((list, _)) => list,
            Err(e) => {
                warn!(error = %e, "catalog: listing the recordings failed");
                return false;
            }
        };
        let prefixes: HashSet<String> =
            on_disk.iter().map(|r| format!("{}/{}/{}", r.app, r.stream, r.id)).collect();
        match c.ids(Kind::Recording, owner).await {
            Ok(ids) => {
                for id in ids.into_iter().filter(|id| !prefixes.contains(id)) {
                    if let Err(e) = c.remove(&id).await {
                        self.failed("a deleted recording", &e);
                        return false;
                    }
                }
            }
            Err(e) => {
                self.failed("listing the recordings' items", &e);
                return false;
            }
        }
        for info in &on_disk {
            let Ok((key, _)) = StreamKey::parse(&info.app, &info.stream) else { continue };
            if !home.is_none_or(|home| home(&key)) {
                continue;
            }
            if let Err(e) = c.record(&recording_facts(info, None, &self.node)).await {
                self.failed("a recording", &e);
                return false;
            }
            self.metrics.catalog_writes.inc();
        }
        true
    }

    /// Write the recordings marked changed (or remove their items when they are gone). A
    /// database failure ends the pass: the rest wait for the next.
    async fn sync_recordings(
        self: &Arc<Self>,
        c: &Catalog,
        rec: &Arc<Recordings>,
        live: &HashMap<StreamKey, Facts>,
        tried: &mut HashSet<String>,
    ) {
        let changed = std::mem::take(&mut lock(&self.dirty).recordings);
        let mut changed = changed.into_iter();
        while let Some(prefix) = changed.next() {
            let mut parts = prefix.splitn(3, '/');
            let (Some(app), Some(stream), Some(id)) = (parts.next(), parts.next(), parts.next())
            else {
                continue;
            };
            let Ok((key, _)) = StreamKey::parse(app, stream) else { continue };
            let result = match rec.one(&key, id).await {
                Ok(Some(info)) => {
                    if info.thumbnail.is_none() && info.segments > 0 && !tried.contains(&prefix) {
                        if tried.len() >= MAX_TRIED {
                            tried.clear();
                        }
                        tried.insert(prefix.clone());
                        self.spawn_thumbnail(rec.clone(), prefix.clone());
                    }
                    let facts = recording_facts(&info, live.get(&key), &self.node);
                    c.record(&facts).await
                }
                Ok(None) => c.remove(&prefix).await.map(|_| ()),
                Err(e) => {
                    warn!(recording = %prefix, error = %e, "catalog: reading a recording failed");
                    continue;
                }
            };
            match result {
                Ok(()) => {
                    self.metrics.catalog_writes.inc();
                }
                Err(e) => {
                    self.failed("a recording", &e);
                    self.recording_changed(&prefix);
                    for rest in changed {
                        self.recording_changed(&rest);
                    }
                    return;
                }
            }
        }
    }

    /// Decode the first keyframe of recording `prefix` into its thumbnail (one ffmpeg at a
    /// time per node), then mark the recording changed so its item names it.
    fn spawn_thumbnail(self: &Arc<Self>, rec: Arc<Recordings>, prefix: String) {
        let ffmpeg = self.ffmpeg.clone();
        let this = Arc::downgrade(self);
        let permits = self.thumbnails.clone();
        tokio::spawn(async move {
            let Ok(_permit) = permits.acquire_owned().await else { return };
            match rec.make_thumbnail(&prefix, &ffmpeg).await {
                Ok(()) => {
                    if let Some(this) = this.upgrade() {
                        this.recording_changed(&prefix);
                    }
                }
                Err(e) => warn!(recording = %prefix, error = %e, "catalog: no thumbnail"),
            }
        });
    }
}
