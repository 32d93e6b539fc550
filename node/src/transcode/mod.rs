//! Transcoding: each stream of an app with a ladder (`--ladder-file`) gets renditions, each
//! a stream of its own (`live/cam_720p`) that plays over every protocol like any other.
//!
//! When a stream starts publishing on this node ([`crate::hub::PublishHook`]), a transcoder
//! task ([`runner`]) reads it from the hub like a viewer, feeds it as FLV to one ffmpeg per
//! stream ([`command`]: decode once, scale and encode each rung, keyframes where the source
//! has them, the source's timestamps) and publishes what ffmpeg writes on one pipe per
//! rendition back into the hub. An ffmpeg that exits while the source is live is restarted
//! after a backoff ([`supervisor`]); the renditions' publishers stay, so their viewers stay
//! and their timelines continue. When the source ends, ffmpeg's input is closed and the
//! renditions end with it. At most `--max-transcodes` streams are transcoded at once; the
//! others are delivered at source only (logged, and counted in
//! `sluice_transcodes_refused_total`).

pub mod command;
mod feed;
pub mod ladder;
mod runner;
pub mod supervisor;

use std::collections::HashMap;
use std::path::PathBuf;
use std::sync::{Arc, Mutex};

use sluice_media::stream_name::StreamKey;
use tracing::{info, warn};

use crate::hub::Hub;
use crate::lock::lock;
use crate::log_limit::RateLimitedLog;
use crate::metrics::Metrics;
use crate::settings::{OriginSettings, VideoEncoder};
use ladder::{Ladder, Ladders};
use supervisor::Backoff;

/// Whether this node is a stream's home (in a cluster only the home transcodes).
pub type HomeCheck = Box<dyn Fn(&StreamKey) -> bool + Send + Sync>;

/// The ladder the control plane set for an app, if any (in a cluster: from the registry).
pub type LadderSource = Box<dyn Fn(&str) -> Option<Ladder> + Send + Sync>;

/// Makes a rendition known to the cluster, as a publish is (claimed in the registry, sent to
/// its ring home), with the source it renders; dropping what it returns withdraws it.
pub trait Announce: Send + Sync {
    fn announce(&self, rendition: &StreamKey, source: &StreamKey) -> Box<dyn Send>;
}

static REFUSED: std::sync::LazyLock<RateLimitedLog> =
    std::sync::LazyLock::new(|| RateLimitedLog::new(2));

/// How this node transcodes.
#[derive(Debug, Clone)]
pub struct TranscodeSettings {
    pub ladders: Ladders,
    pub max_transcodes: usize,
    pub encoder: VideoEncoder,
    /// ffmpeg threads per stage (`--transcode-threads`).
    pub threads: usize,
    /// Largest source picture transcoded (`--transcode-max-source-pixels`).
    pub max_source_pixels: u64,
    pub ffmpeg: PathBuf,
    pub backoff: Backoff,
    /// An ffmpeg that writes nothing this long while its source is live is restarted.
    pub stall_timeout: std::time::Duration,
    /// How long a source that ended may take to come back and keep its renditions (the
    /// node's `--ended-stream-linger`).
    pub republish_wait: std::time::Duration,
    /// Marked as a transcoder (`--transcoder`): advertised in the registry.
    pub transcoder: bool,
}

impl TranscodeSettings {
    /// From an origin's settings: `None` without a ladder file, unless `clustered` (ladders
    /// may then come from the control plane).
    pub fn from_origin(s: &OriginSettings, clustered: bool) -> Result<Option<Self>, String> {
        let ladders = match &s.ladder_file {
            Some(path) => Ladders::load(path).map_err(|e| e.to_string())?,
            None if clustered => Ladders::default(),
            None => return Ok(None),
        };
        Ok(Some(TranscodeSettings {
            ladders,
            max_transcodes: s.max_transcodes,
            encoder: s.video_encoder,
            threads: s.transcode_threads,
            max_source_pixels: s.transcode_max_source_pixels,
            ffmpeg: s.ffmpeg.clone(),
            backoff: Backoff::default(),
            stall_timeout: s.transcode_stall_timeout,
            republish_wait: std::time::Duration::from_secs(10),
            transcoder: s.transcoder,
        }))
    }
}

/// The node's transcoders: which streams have one, and the capacity left.
pub struct Transcoders {
    settings: TranscodeSettings,
    active: Active,
    metrics: Metrics,
    home: std::sync::OnceLock<HomeCheck>,
    announce: std::sync::OnceLock<Arc<dyn Announce>>,
    set_ladders: std::sync::OnceLock<LadderSource>,
    /// Tells a stream's transcoder to end (its stream moved to another origin).
    stops: Stops,
    /// Streams whose transcoder declined them or gave up (no video, too large, nothing
    /// smaller, ffmpeg failing): not started again until they are published again.
    declined: Declined,
}

type Declined = Arc<Mutex<std::collections::HashSet<StreamKey>>>;

type Stops = Arc<Mutex<HashMap<StreamKey, tokio::sync::watch::Sender<bool>>>>;

/// The streams being transcoded, with the renditions each publishes (tallest first).
type Active = Arc<Mutex<HashMap<StreamKey, Vec<StreamKey>>>>;

impl Transcoders {
    pub fn new(settings: TranscodeSettings, metrics: Metrics) -> Arc<Self> {
        Arc::new(Transcoders {
            settings,
            active: Arc::default(),
            metrics,
            home: std::sync::OnceLock::new(),
            announce: std::sync::OnceLock::new(),
            set_ladders: std::sync::OnceLock::new(),
            stops: Stops::default(),
            declined: Declined::default(),
        })
    }

    /// In a cluster: transcode only the streams this node is home of.
    pub fn follow_home(&self, home: HomeCheck) {
        let _ = self.home.set(home);
    }

    /// In a cluster: the ladders the control plane sets, which take precedence over the
    /// file's for their apps (an empty one: that app is not transcoded).
    pub fn ladders_from(&self, source: LadderSource) {
        let _ = self.set_ladders.set(source);
    }

    /// The ladder of `app`: the control plane's, else the file's.
    fn ladder(&self, app: &str) -> Option<Ladder> {
        if let Some(set) = self.set_ladders.get().and_then(|source| source(app)) {
            return (!set.renditions.is_empty()).then_some(set);
        }
        self.settings.ladders.for_app(app).cloned()
    }

    /// In a cluster: announce each rendition (see [`Announce`]) while it is published.
    pub fn announce_with(&self, announce: Arc<dyn Announce>) {
        let _ = self.announce.set(announce);
    }

    /// Streams being transcoded now, and the most at once.
    pub fn load(&self) -> (usize, usize) {
        (lock(&self.active).len(), self.settings.max_transcodes)
    }

    /// The renditions `key` is published as now (tallest first).
    pub fn renditions(&self, key: &StreamKey) -> Vec<StreamKey> {
        lock(&self.active).get(key).cloned().unwrap_or_default()
    }

    /// The streams one ladder makes, when `key` is one of them: the source, then its
    /// renditions (tallest first); empty for a stream without renditions.
    pub fn family(&self, key: &StreamKey) -> Vec<StreamKey> {
        let active = lock(&self.active);
        let found = active
            .get_key_value(key)
            .filter(|(_, r)| !r.is_empty())
            .or_else(|| active.iter().find(|(_, renditions)| renditions.contains(key)));
        match found {
            Some((source, renditions)) => {
                std::iter::once(source.clone()).chain(renditions.iter().cloned()).collect()
            }
            None => Vec::new(),
        }
    }

    /// In a cluster, called every second: transcode the streams this node holds and has
    /// become the home (or transcoder) of since they were published (a failover moved them
    /// here), and stop transcoding those it no longer is (their former home came back).
    pub fn adopt(&self, hub: &Hub) {
        if let Some(home) = self.home.get() {
            for (key, stop) in lock(&self.stops).iter() {
                if !home(key) && !*stop.borrow() {
                    info!(stream = %key, "another origin transcodes this stream now: stopping");
                    let _ = stop.send(true);
                }
            }
        }
        for key in hub.published_keys() {
            if lock(&self.declined).contains(&key) {
                continue;
            }
            let at_capacity = lock(&self.active).len() >= self.settings.max_transcodes;
            if at_capacity {
                return;
            }
            self.start(hub, &key);
        }
    }

    /// `key` started publishing on `hub`: transcode it if its app has a ladder (and it is not
    /// itself a rendition), it has no transcoder yet, and there is capacity.
    pub fn start(&self, hub: &Hub, key: &StreamKey) {
        let Some(ladder) = self.ladder(key.app()) else { return };
        if ladder.is_rendition_name(key.name()) {
            return;
        }
        if self.home.get().is_some_and(|home| !home(key)) {
            return;
        }
        {
            let mut active = lock(&self.active);
            if active.contains_key(key) {
                return;
            }
            if active.len() >= self.settings.max_transcodes {
                self.metrics.transcodes_refused.inc();
                if REFUSED.allow() {
                    warn!(
                        stream = %key,
                        max_transcodes = self.settings.max_transcodes,
                        "delivered at source only: this node transcodes --max-transcodes streams already"
                    );
                }
                return;
            }
            active.insert(key.clone(), Vec::new());
        }
        let (stop_tx, stop) = tokio::sync::watch::channel(false);
        lock(&self.stops).insert(key.clone(), stop_tx);
        let own_stop = stop.clone();
        let slot = Slot {
            active: self.active.clone(),
            key: key.clone(),
            metrics: self.metrics.clone(),
            announce: self.announce.get().cloned(),
            announced: HashMap::new(),
            stops: self.stops.clone(),
            own_stop,
            declined: self.declined.clone(),
            decline: false,
        };
        self.metrics.transcodes.inc();
        tokio::spawn(runner::run(runner::Job {
            hub: hub.clone(),
            key: key.clone(),
            ladder,
            encoding: command::Encoding {
                encoder: self.settings.encoder,
                threads: self.settings.threads,
            },
            max_source_pixels: self.settings.max_source_pixels,
            ffmpeg: self.settings.ffmpeg.clone(),
            backoff: self.settings.backoff,
            stall_timeout: self.settings.stall_timeout,
            republish_wait: self.settings.republish_wait,
            metrics: self.metrics.clone(),
            slot,
            stop,
        }));
    }
}

/// A stream's place among the active transcoders, given back when its task ends.
struct Slot {
    active: Active,
    key: StreamKey,
    metrics: Metrics,
    announce: Option<Arc<dyn Announce>>,
    /// The renditions' announcements (claims), withdrawn with the slot or the rendition.
    announced: HashMap<StreamKey, Box<dyn Send>>,
    stops: Stops,
    /// This job's stop channel (the map may hold a later job's by the time this one ends).
    own_stop: tokio::sync::watch::Receiver<bool>,
    declined: Declined,
    /// The job declined the stream or gave up: remember it (see [`Transcoders::adopt`]).
    decline: bool,
}

impl Slot {
    /// This stream is not to be transcoded again until it is published again.
    fn decline(&mut self) {
        self.decline = true;
    }

    /// The renditions the stream is published as (and, in a cluster, announced as: a
    /// rendition kept keeps its announcement, one gone withdraws it).
    fn set_renditions(&mut self, renditions: Vec<StreamKey>) {
        if let Some(announce) = &self.announce {
            self.announced.retain(|k, _| renditions.contains(k));
            for r in &renditions {
                if !self.announced.contains_key(r) {
                    self.announced.insert(r.clone(), announce.announce(r, &self.key));
                }
            }
        }
        if let Some(slot) = lock(&self.active).get_mut(&self.key) {
            *slot = renditions;
        }
    }
}

impl Drop for Slot {
    fn drop(&mut self) {
        lock(&self.active).remove(&self.key);
        let mut stops = lock(&self.stops);
        if stops.get(&self.key).is_some_and(|tx| tx.subscribe().same_channel(&self.own_stop)) {
            stops.remove(&self.key);
        }
        drop(stops);
        if self.decline {
            lock(&self.declined).insert(self.key.clone());
        }
        self.metrics.transcodes.dec();
    }
}

impl crate::hub::PublishHook for Transcoders {
    fn published(&self, hub: &Hub, key: &StreamKey) {
        // A new publish gets a new chance.
        lock(&self.declined).remove(key);
        self.start(hub, key);
    }
}
