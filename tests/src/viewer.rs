//! What a viewer sees, measured: a raw RTMP player on a thread records every message it gets
//! (media timestamp, wall-clock arrival, payload hash), and a [`ViewerRecord`] reports the
//! largest gaps, frames lost, timestamps going backwards and whether ffmpeg decodes it all.
//!
//! "Keeps playing" then means figures with bounds (no wall-clock gap over 1 s, nothing lost),
//! not "some more frames eventually".

use std::collections::HashMap;
use std::net::SocketAddr;
use std::path::Path;
use std::process::Command;
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::{Arc, Mutex};
use std::thread::{self, JoinHandle};
use std::time::{Duration, Instant};

use bytes::Bytes;
use sluice_media::frame::{MediaKind, MediaMessage};
use sluice_media::rtmp::client::{ClientEvent, ClientMode};

use crate::replay::{payload_hash, Sent};
use crate::rtmp::{video_header, RtmpClient};

/// Frame interval of the fixtures (30 fps), in ms.
pub const FRAME_MS: f64 = 1000.0 / 30.0;

/// One message a viewer received.
#[derive(Debug, Clone)]
pub struct Received {
    pub kind: MediaKind,
    pub timestamp: u32,
    /// Time since the watcher started.
    pub arrival: Duration,
    pub hash: u64,
    /// A sequence header or metadata.
    pub header: bool,
    pub keyframe: bool,
    pub payload: Bytes,
}

impl Received {
    fn new(m: MediaMessage, arrival: Duration) -> Self {
        let v = (m.kind == MediaKind::Video).then(|| video_header(&m.payload)).flatten();
        let audio_header = m.kind == MediaKind::Audio
            && m.payload.first().map(|b| b >> 4) == Some(10)
            && m.payload.get(1) == Some(&0);
        Received {
            kind: m.kind,
            timestamp: m.timestamp,
            arrival,
            hash: payload_hash(&m.payload),
            header: m.kind == MediaKind::Data
                || audio_header
                || v.is_some_and(|h| h.sequence_header),
            keyframe: v.is_some_and(|h| h.keyframe && !h.sequence_header),
            payload: m.payload,
        }
    }

    /// A video frame (not a sequence header).
    pub fn is_frame(&self) -> bool {
        self.kind == MediaKind::Video && !self.header
    }
}

/// Everything one viewer received.
#[derive(Debug, Clone, Default)]
pub struct ViewerRecord {
    pub messages: Vec<Received>,
    /// onStatus codes, with their arrival.
    pub statuses: Vec<(Duration, String)>,
    /// The server closed the connection.
    pub eof: bool,
    /// A protocol or I/O error that ended the watcher.
    pub error: Option<String>,
    /// When the record was taken (time since the watcher started).
    pub until: Duration,
    /// When the watcher started (arrivals count from here).
    pub started: Option<Instant>,
}

/// Figures over a stretch of a viewer's video frames.
#[derive(Debug, Clone, Copy, PartialEq, Default)]
pub struct Report {
    pub video_frames: usize,
    /// Largest step between consecutive video timestamps (ms).
    pub max_media_gap_ms: i64,
    /// Largest time between consecutive video frame arrivals (and from the last one to the
    /// end of the record).
    pub max_wall_gap: Duration,
    /// When the largest wall-clock gap ended (arrival time of the frame after it).
    pub max_wall_gap_end: Duration,
    /// Video frames missing at the 30 fps cadence (from timestamp steps).
    pub lost_frames: u64,
    /// Video timestamps lower than the one before.
    pub backwards: u64,
    /// 99th percentile of how late frames arrived against the media clock, relative to the
    /// most punctual frame of the stretch: with a publisher that sends in real time (the
    /// replay), the delivery delay the node added (0 for a perfectly steady delivery).
    pub lag_p99: Duration,
}

/// The `q` quantile of the frames' lateness: each frame's arrival minus its timestamp's offset
/// from the first frame, less the smallest such value.
fn lag_percentile(frames: &[&Received], q: f64) -> Duration {
    let Some(first) = frames.first() else {
        return Duration::ZERO;
    };
    let mut lags: Vec<i64> = frames
        .iter()
        .map(|f| {
            let media = i64::from(f.timestamp.wrapping_sub(first.timestamp) as i32);
            f.arrival.as_millis() as i64 - media
        })
        .collect();
    lags.sort_unstable();
    let least = lags[0];
    let at = ((lags.len() - 1) as f64 * q).round() as usize;
    Duration::from_millis((lags[at] - least).max(0) as u64)
}

impl ViewerRecord {
    /// Video frames received.
    pub fn video_frames(&self) -> usize {
        self.messages.iter().filter(|m| m.is_frame()).count()
    }

    /// Figures over every video frame received from message index `from` on (the step into
    /// `from` counts too, so a stall right at the mark is seen).
    pub fn report_from(&self, from: usize) -> Report {
        // From the last video frame before `from`, so the step across the mark counts.
        let first = self.messages[..from.min(self.messages.len())]
            .iter()
            .rposition(Received::is_frame)
            .unwrap_or(0);
        let frames: Vec<&Received> =
            self.messages[first..].iter().filter(|m| m.is_frame()).collect();
        let mut r = Report { video_frames: frames.len(), ..Report::default() };
        for pair in frames.windows(2) {
            let (a, b) = (pair[0], pair[1]);
            let step = i64::from(b.timestamp.wrapping_sub(a.timestamp) as i32);
            if step < 0 {
                r.backwards += 1;
            }
            r.max_media_gap_ms = r.max_media_gap_ms.max(step);
            let missing = (step as f64 / FRAME_MS).round() as i64 - 1;
            r.lost_frames += missing.max(0) as u64;
            let gap = b.arrival.saturating_sub(a.arrival);
            if gap > r.max_wall_gap {
                r.max_wall_gap = gap;
                r.max_wall_gap_end = b.arrival;
            }
        }
        r.lag_p99 = lag_percentile(&frames, 0.99);
        if let Some(last) = frames.last() {
            let gap = self.until.saturating_sub(last.arrival);
            if gap > r.max_wall_gap {
                r.max_wall_gap = gap;
                r.max_wall_gap_end = self.until;
            }
        }
        r
    }

    /// Figures over the whole record.
    pub fn report(&self) -> Report {
        self.report_from(0)
    }

    /// What breaks "kept playing without a visible interruption" from message `from` on: a
    /// wall-clock gap over `max_wall_gap`, more than `max_lost` frames lost, a timestamp
    /// going backwards, the connection closed or failed. Empty when it kept playing.
    pub fn interruptions(&self, from: usize, max_wall_gap: Duration, max_lost: u64) -> Vec<String> {
        let r = self.report_from(from);
        let mut out = Vec::new();
        if r.video_frames < 2 {
            out.push(format!("only {} video frames", r.video_frames));
        }
        if r.max_wall_gap > max_wall_gap {
            out.push(format!("wall-clock gap {:?} > {max_wall_gap:?}", r.max_wall_gap));
        }
        if r.lost_frames > max_lost {
            out.push(format!("{} frames lost (> {max_lost})", r.lost_frames));
        }
        if r.backwards > 0 {
            out.push(format!("{} timestamps went backwards", r.backwards));
        }
        if self.eof {
            out.push("the server closed the connection".into());
        }
        if let Some(e) = &self.error {
            out.push(format!("viewer error: {e}"));
        }
        out
    }

    /// The first video frame that arrived at or after `at` (a wall-clock instant), as the
    /// time it arrived.
    pub fn first_frame_after(&self, at: Instant) -> Option<Instant> {
        let started = self.started?;
        let since = at.saturating_duration_since(started);
        self.messages
            .iter()
            .find(|m| m.is_frame() && m.arrival >= since)
            .map(|m| started + m.arrival)
    }

    /// The record cut where messages start arriving at `at`: what came before, and what came
    /// after with the latest sequence headers and metadata before the cut put first (as a
    /// player joining there would get them).
    pub fn split_at(&self, at: Duration) -> (ViewerRecord, ViewerRecord) {
        let cut = self.messages.iter().position(|m| m.arrival >= at).unwrap_or(self.messages.len());
        let mut before = self.clone();
        before.messages.truncate(cut);
        let mut after = self.clone();
        let mut headers: Vec<Received> = Vec::new();
        for m in self.messages[..cut].iter().filter(|m| m.header) {
            headers.retain(|h| h.kind != m.kind);
            headers.push(m.clone());
        }
        headers.extend(self.messages[cut..].iter().cloned());
        after.messages = headers;
        (before, after)
    }

    /// Status codes received.
    pub fn status_codes(&self) -> Vec<&str> {
        self.statuses.iter().map(|(_, c)| c.as_str()).collect()
    }

    /// The received media as an FLV file.
    pub fn to_flv(&self) -> Vec<u8> {
        let mut out = b"FLV\x01\x05\x00\x00\x00\x09\x00\x00\x00\x00".to_vec();
        for m in &self.messages {
            let len = m.payload.len() as u32;
            let ts = m.timestamp;
            out.push(m.kind.type_id());
            out.extend_from_slice(&len.to_be_bytes()[1..]);
            out.extend_from_slice(&ts.to_be_bytes()[1..]);
            out.push((ts >> 24) as u8);
            out.extend_from_slice(&[0, 0, 0]);
            out.extend_from_slice(&m.payload);
            out.extend_from_slice(&(len + 11).to_be_bytes());
        }
        out
    }

    /// Decode everything received with ffmpeg (written to `dir/name.flv`); returns ffmpeg's
    /// error output (empty when every frame decoded cleanly).
    pub fn decode_errors(&self, dir: &Path, name: &str) -> Vec<String> {
        let path = dir.join(format!("{name}.flv"));
        std::fs::write(&path, self.to_flv()).expect("write the received FLV");
        let out = Command::new("ffmpeg")
            .args(["-hide_banner", "-nostdin", "-v", "error", "-i"])
            .arg(&path)
            .args(["-f", "null", "-"])
            .output()
            .expect("run ffmpeg to decode the received stream");
        let mut errors: Vec<String> = String::from_utf8_lossy(&out.stderr)
            .lines()
            .filter(|l| !l.trim().is_empty())
            .map(str::to_string)
            .collect();
        if !out.status.success() {
            errors.push(format!("ffmpeg exited with {}", out.status));
        }
        errors
    }

    /// Video frames this viewer got that `other` has under the same timestamp but with other
    /// bytes, and video frames of `other` inside this record's timestamp range (first to last
    /// frame) that this viewer never got. Both empty: the same frames.
    pub fn differences(&self, other: &[Sent]) -> (Vec<u32>, Vec<u32>) {
        let mine: HashMap<u32, u64> =
            self.messages.iter().filter(|m| m.is_frame()).map(|m| (m.timestamp, m.hash)).collect();
        let theirs: HashMap<u32, u64> = other
            .iter()
            .filter(|s| s.kind == MediaKind::Video)
            .map(|s| (s.timestamp, s.hash))
            .collect();
        let mut differ: Vec<u32> = mine
            .iter()
            .filter(|(ts, h)| theirs.get(ts).is_some_and(|o| o != *h))
            .map(|(t, _)| *t)
            .collect();
        let (Some(lo), Some(hi)) = (mine.keys().min(), mine.keys().max()) else {
            return (differ, Vec::new());
        };
        let mut missing: Vec<u32> = theirs
            .keys()
            .filter(|ts| (*lo..=*hi).contains(*ts) && !mine.contains_key(ts))
            .copied()
            .collect();
        differ.sort_unstable();
        missing.sort_unstable();
        (differ, missing)
    }

    /// This record's video frames as [`Sent`] entries (to compare two viewers).
    pub fn as_sent(&self) -> Vec<Sent> {
        self.messages
            .iter()
            .filter(|m| m.is_frame())
            .map(|m| Sent { kind: m.kind, timestamp: m.timestamp, hash: m.hash })
            .collect()
    }
}

/// A raw RTMP viewer recording on a thread.
pub struct Watcher {
    started: Instant,
    record: Arc<Mutex<ViewerRecord>>,
    stop: Arc<AtomicBool>,
    thread: Option<JoinHandle<()>>,
    pub url: String,
}

impl std::fmt::Debug for Watcher {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Watcher").field("url", &self.url).finish()
    }
}

impl Watcher {
    /// Play `rtmp://addr/app/stream` and record what arrives.
    pub fn start(addr: SocketAddr, app: &str, stream: &str) -> Watcher {
        Watcher::try_start(addr, app, stream)
            .unwrap_or_else(|e| panic!("connect a viewer to {addr}: {e}"))
    }

    /// [`Watcher::start`], or why the connection could not be made.
    pub fn try_start(addr: SocketAddr, app: &str, stream: &str) -> Result<Watcher, String> {
        let client =
            RtmpClient::connect(addr, app, stream, ClientMode::Play).map_err(|e| e.to_string())?;
        let started = Instant::now();
        let record = Arc::new(Mutex::new(ViewerRecord::default()));
        let stop = Arc::new(AtomicBool::new(false));
        let (r, s) = (record.clone(), stop.clone());
        let thread = thread::Builder::new()
            .name(format!("watch-{stream}"))
            .spawn(move || watch(client, started, r, s))
            .expect("spawn the watcher thread");
        Ok(Watcher {
            started,
            record,
            stop,
            thread: Some(thread),
            url: format!("rtmp://{addr}/{app}/{stream}"),
        })
    }

    /// Video frames received so far.
    pub fn video_frames(&self) -> usize {
        crate::lock(&self.record).video_frames()
    }

    /// Messages received so far (a mark for [`ViewerRecord::report_from`]).
    pub fn mark(&self) -> usize {
        crate::lock(&self.record).messages.len()
    }

    /// Wait until `n` video frames arrived; returns the count reached.
    pub fn wait_video(&self, n: usize, timeout: Duration) -> usize {
        crate::process::wait_for(timeout, || {
            let got = self.video_frames();
            (got >= n || self.thread.as_ref().is_some_and(JoinHandle::is_finished)).then_some(got)
        })
        .unwrap_or_else(|| self.video_frames())
    }

    /// A copy of the record so far.
    pub fn snapshot(&self) -> ViewerRecord {
        let mut r = crate::lock(&self.record).clone();
        r.until = self.started.elapsed();
        r.started = Some(self.started);
        r
    }

    /// Whether the connection is still open and error-free.
    pub fn is_playing(&self) -> bool {
        let r = crate::lock(&self.record);
        !r.eof && r.error.is_none()
    }

    /// Stop watching and return the record.
    pub fn stop(mut self) -> ViewerRecord {
        self.stop.store(true, Ordering::Relaxed);
        if let Some(t) = self.thread.take() {
            let _ = t.join();
        }
        self.snapshot()
    }
}

impl Drop for Watcher {
    fn drop(&mut self) {
        self.stop.store(true, Ordering::Relaxed);
        if let Some(t) = self.thread.take() {
            let _ = t.join();
        }
    }
}

fn watch(
    mut client: RtmpClient,
    started: Instant,
    record: Arc<Mutex<ViewerRecord>>,
    stop: Arc<AtomicBool>,
) {
    while !stop.load(Ordering::Relaxed) {
        match client.next_event(Duration::from_millis(50)) {
            Ok(Some(ClientEvent::Media(m))) => {
                let rec = Received::new(m, started.elapsed());
                crate::lock(&record).messages.push(rec);
            }
            Ok(Some(ClientEvent::Status { code, .. })) => {
                crate::lock(&record).statuses.push((started.elapsed(), code));
            }
            Ok(Some(_) | None) => {}
            Err(e) => {
                let mut r = crate::lock(&record);
                if client.is_eof() {
                    r.eof = true;
                } else {
                    r.error = Some(format!("{e:#}"));
                }
                break;
            }
        }
    }
    client.close();
}

/// A legitimate stream and viewer kept running beside an attack: a real-time replay publisher
/// and a raw RTMP viewer, measured from when the attack starts.
pub struct MeasuredViewer {
    _publisher: crate::replay::Replay,
    watcher: Watcher,
    mark: usize,
    since: Instant,
}

impl MeasuredViewer {
    /// Publish the fixture to `live/NAME` on `addr` and watch it; returns once frames flow.
    pub fn start(addr: SocketAddr, name: &str, fixture: &Path) -> MeasuredViewer {
        let publisher = crate::replay::Replay::start(addr, "live", name, fixture);
        let watcher = Watcher::start(addr, "live", name);
        assert!(watcher.wait_video(30, crate::secs(20)) >= 30, "the measured viewer plays");
        let mark = watcher.mark();
        MeasuredViewer { _publisher: publisher, watcher, mark, since: Instant::now() }
    }

    /// Stop and report on the frames since the start: printed with `what` (the attack), and
    /// checked to have kept coming, at least half the fixture's 30 fps (a starved viewer fails;
    /// how late frames were is reported, not judged).
    pub fn finish(self, what: &str) -> Report {
        let (watcher, mark) = (self.watcher, self.mark);
        let expected = (self.since.elapsed().as_secs_f64() * 1000.0 / FRAME_MS) as usize;
        let record = watcher.stop();
        let r = record.report_from(mark);
        println!(
            "legitimate viewer during {what}: {} frames, lag p99 {:?}, largest gap {:?}, {} lost",
            r.video_frames, r.lag_p99, r.max_wall_gap, r.lost_frames
        );
        assert!(
            r.video_frames * 2 >= expected,
            "the legitimate viewer starved during {what}: {r:?} ({expected} frames due)"
        );
        assert!(record.error.is_none() && !record.eof, "viewer cut: {:?}", record.error);
        r
    }
}
