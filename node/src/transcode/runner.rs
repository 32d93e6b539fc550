//! The driver of one stream's transcoder: the hub's frames into ffmpeg, ffmpeg's renditions
//! into the hub, and restarts (the decisions are [`super::supervisor`]'s).

use std::os::fd::OwnedFd;
use std::path::PathBuf;
use std::process::Stdio;
use std::time::Duration;

use bytes::{Bytes, BytesMut};
use command_fds::{CommandFdExt, FdMapping};
use std::collections::VecDeque;
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::{Arc, Mutex};

use sluice_media::codec::{parse_video_tag, video_info, FrameType, VideoPacket};
use sluice_media::flv::{self, FlvReader};
use sluice_media::frame::{MediaKind, MediaMessage};
use sluice_media::hls::SegmentStamp;
use sluice_media::stream_name::StreamKey;
use tokio::io::{AsyncReadExt, AsyncWriteExt};
use tokio::net::unix::pipe;
use tokio::process::{Child, ChildStdin};
use tokio::task::JoinHandle;
use tokio::time::Instant;
use tracing::{debug, error, info, info_span, warn, Instrument};

use super::command::{arguments, Encoding, FIRST_OUTPUT_FD};
use super::ladder::{Ladder, Output};
use super::supervisor::{Backoff, Supervisor};
use super::Slot;
use crate::hub::log::Delivery;
use crate::hub::prepared::Prepared;
use crate::hub::{Hub, Publisher, Subscription};
use crate::lock::lock;
use crate::metrics::{Metrics, Protocol};

/// How long a new stream has to send its video sequence header.
const FIRST_VIDEO_WAIT: Duration = Duration::from_secs(10);
/// How long ffmpeg has to finish once its input ended, before it is killed.
const FINISH_WAIT: Duration = Duration::from_secs(5);
/// Largest tag taken from ffmpeg (a rendition's frame; the source's limit is the hub's).
const MAX_TAG: usize = 16 << 20;
/// Most bytes of one line of ffmpeg's standard error kept for the log.
const MAX_STDERR_LINE: usize = 1024;
/// Bytes collected from the hub per write to ffmpeg.
const COLLECT_BATCH: usize = 256 * 1024;
/// Segment stamps of the source's latest keyframes kept for the renditions.
const STAMPS_KEPT: usize = 64;
/// How far a rendition's keyframe may be from the source's to take its stamp (ms).
const STAMP_SLACK_MS: u32 = 40;
/// Crashes in a row after which a stream's transcoding gives up (about 90 s of backoff).
const MAX_CRASHES: u32 = 8;
/// 90 kHz ticks per millisecond.
const TICKS_PER_MS: u64 = 90;

/// Where the source's HLS segments start, by the presentation time (ms) of the keyframe that
/// opens each: a rendition's keyframe at the same time opens the same segment (number, start,
/// program date), so the renditions' segments and parts line up with the source's.
#[derive(Default, Clone)]
struct Stamps(Arc<Mutex<VecDeque<(u32, SegmentStamp)>>>);

impl Stamps {
    fn note(&self, p: &Prepared) {
        let Some(stamp) = &p.hls_stamp else { return };
        let cts = match parse_video_tag(&p.payload).map(|t| t.packet) {
            Ok(VideoPacket::CodedFrames { composition_time }) => composition_time.max(0) as u32,
            _ => 0,
        };
        // A rendition has no B-frames: its keyframe is decoded at the source's presentation
        // time, so its segment starts there. Its audio is timed from its own timestamps.
        let mut stamp = *stamp;
        stamp.start_ticks = stamp.start_ticks.saturating_add(u64::from(cts) * TICKS_PER_MS);
        stamp.audio_next_dts = None;
        let mut kept = lock(&self.0);
        if kept.len() == STAMPS_KEPT {
            kept.pop_front();
        }
        kept.push_back((p.timestamp.wrapping_add(cts), stamp));
    }

    /// The stamp of the source keyframe presented at `presented`, or (a rung with its own
    /// frame rate moves frames onto its grid) the nearest one within [`STAMP_SLACK_MS`].
    fn find(&self, presented: u32) -> Option<SegmentStamp> {
        let kept = lock(&self.0);
        kept.iter()
            .map(|(t, s)| (t.abs_diff(presented), s))
            .filter(|(d, _)| *d <= STAMP_SLACK_MS)
            .min_by_key(|(d, _)| *d)
            .map(|(_, s)| *s)
    }
}

pub(super) struct Job {
    pub hub: Hub,
    pub key: StreamKey,
    pub ladder: Ladder,
    pub encoding: Encoding,
    /// Largest source picture (width x height) transcoded.
    pub max_source_pixels: u64,
    pub ffmpeg: PathBuf,
    pub backoff: Backoff,
    pub stall_timeout: Duration,
    pub republish_wait: Duration,
    pub metrics: Metrics,
    pub slot: Slot,
}

pub(super) async fn run(job: Job) {
    let span = info_span!("transcode", stream = %job.key);
    async move {
        let Job {
            hub,
            key,
            ladder,
            encoding,
            max_source_pixels,
            ffmpeg,
            backoff,
            stall_timeout,
            republish_wait,
            metrics,
            mut slot,
        } = job;
        let mut sub = match hub.subscribe(&key, Protocol::Relay) {
            Ok(sub) => sub,
            Err(e) => return warn!(error = %e, "not transcoded: cannot read the stream"),
        };
        let mut feed = Feed::default();
        let Some((width, height, fps)) = feed.picture(&mut sub).await else {
            return info!("not transcoded: no video (or it ended first)");
        };
        if u64::from(width) * u64::from(height) > max_source_pixels {
            metrics.transcodes_refused.inc();
            return warn!(
                width,
                height,
                max_source_pixels,
                "not transcoded: the source is larger than --transcode-max-source-pixels"
            );
        }
        let outputs = ladder.plan(width, height, fps);
        if outputs.is_empty() {
            return info!(width, height, "not transcoded: no rung of the ladder is smaller");
        }
        let mut renditions = Vec::new();
        for output in outputs {
            let Some(rkey) = output.key(&key) else { continue };
            // Never over another publisher of the name (nor taken over by one).
            match hub.publish_exclusive(&rkey) {
                Ok(mut publisher) => {
                    // The source's timeline: ffmpeg keeps its timestamps (-copyts).
                    publisher.set_passthrough();
                    renditions.push((output, publisher));
                }
                Err(e) => warn!(rendition = %rkey, error = %e, "rendition not published"),
            }
        }
        if renditions.is_empty() {
            return;
        }
        slot.set_renditions(renditions.iter().map(|(_, p)| p.key().clone()).collect());
        let names: Vec<&str> = renditions.iter().map(|(o, _)| o.name.as_str()).collect();
        let encoder = encoding.encoder;
        info!(width, height, renditions = ?names, %encoder, "transcoding");
        let mut supervisor = Supervisor::new(backoff);
        let stamps = Stamps::default();
        feed.stamps = stamps.clone();
        // Bytes ffmpeg wrote, for the stall watchdog.
        let progress = Arc::new(AtomicU64::new(0));
        loop {
            let outputs: Vec<Output> = renditions.iter().map(|(o, _)| o.clone()).collect();
            supervisor.started(Instant::now());
            let ended = match spawn(&ffmpeg, &outputs, encoding) {
                Ok((child, stdin, pipes)) => {
                    let publishers = renditions.drain(..).map(|(_, p)| p);
                    let readers: Vec<_> = pipes
                        .into_iter()
                        .zip(publishers)
                        .map(|(rx, publisher)| {
                            read_output(rx, publisher, stamps.clone(), progress.clone())
                        })
                        .collect();
                    let ended =
                        drive(&mut sub, &mut feed, child, stdin, (&progress, stall_timeout)).await;
                    for (output, reader) in outputs.into_iter().zip(readers) {
                        match reader.await {
                            Ok(publisher) => renditions.push((output, publisher)),
                            Err(e) => warn!(error = %e, "rendition reader failed"),
                        }
                    }
                    ended
                }
                Err(e) if e.kind() == std::io::ErrorKind::NotFound => {
                    error!(ffmpeg = %ffmpeg.display(), "not transcoded: no such program (--ffmpeg)");
                    break;
                }
                Err(e) => {
                    warn!(error = %e, ffmpeg = %ffmpeg.display(), "cannot start ffmpeg");
                    false
                }
            };
            if renditions.is_empty() {
                break;
            }
            let mut ended = ended;
            if !ended {
                if supervisor.crashes() >= MAX_CRASHES {
                    error!(crashes = supervisor.crashes(), "ffmpeg keeps failing: transcoding given up");
                    break;
                }
                metrics.transcode_restarts.inc();
                let delay = supervisor.crashed(Instant::now());
                warn!(
                    delay_ms = delay.as_millis() as u64,
                    crashes = supervisor.crashes(),
                    "ffmpeg exited: restarting"
                );
                ended = feed.skip(&mut sub, delay).await;
            }
            // The source ended: its publisher may come back within the linger (a reconnect);
            // the renditions then go on with it.
            if ended && !feed.wait_republish(&mut sub, republish_wait).await {
                break;
            }
        }
        info!("transcoding ended");
    }
    .instrument(span)
    .await;
}

/// Starts ffmpeg with a pipe per output on descriptors 3, 4, ...
fn spawn(
    ffmpeg: &std::path::Path,
    outputs: &[Output],
    encoding: Encoding,
) -> std::io::Result<(Child, ChildStdin, Vec<pipe::Receiver>)> {
    let mut readers = Vec::new();
    let mut mappings = Vec::new();
    for (i, _) in outputs.iter().enumerate() {
        let (reader, writer) = std::io::pipe()?;
        readers.push(pipe::Receiver::from_owned_fd(OwnedFd::from(reader))?);
        mappings.push(FdMapping { parent_fd: writer.into(), child_fd: FIRST_OUTPUT_FD + i as i32 });
    }
    let mut cmd = tokio::process::Command::new(ffmpeg);
    cmd.args(arguments(outputs, encoding))
        .stdin(Stdio::piped())
        .stdout(Stdio::null())
        .stderr(Stdio::piped())
        .kill_on_drop(true);
    cmd.fd_mappings(mappings).map_err(|e| std::io::Error::other(e.to_string()))?;
    let mut child = cmd.spawn()?;
    // The write ends live in `cmd` until it is dropped: drop it so the readers see ffmpeg's
    // end.
    drop(cmd);
    let stdin = child.stdin.take().ok_or_else(|| std::io::Error::other("no stdin"))?;
    if let Some(stderr) = child.stderr.take() {
        tokio::spawn(log_stderr(stderr).in_current_span());
    }
    Ok((child, stdin, readers))
}

/// ffmpeg's complaints, as warnings (a few per second at most). ffmpeg echoes what the
/// publisher sent, so a line is held up to [`MAX_STDERR_LINE`] bytes only (the rest of it is
/// dropped).
async fn log_stderr(mut stderr: tokio::process::ChildStderr) {
    let limit = crate::log_limit::RateLimitedLog::new(5);
    let (mut buf, mut line) = (vec![0; 4096], Vec::with_capacity(MAX_STDERR_LINE));
    while let Ok(n @ 1..) = stderr.read(&mut buf).await {
        for &b in &buf[..n] {
            if b != b'\n' {
                if line.len() < MAX_STDERR_LINE {
                    line.push(b);
                }
                continue;
            }
            if limit.allow() {
                let text = String::from_utf8_lossy(&line);
                warn!(ffmpeg = %crate::log_limit::printable(&text, 300), "transcoder says");
            }
            line.clear();
        }
    }
}

/// Feeds ffmpeg until the source ends (true: ffmpeg was told and finished) or ffmpeg exits
/// (false).
async fn drive(
    sub: &mut Subscription,
    feed: &mut Feed,
    mut child: Child,
    stdin: ChildStdin,
    (progress, stall_timeout): (&AtomicU64, Duration),
) -> bool {
    let written = feed.written.clone();
    let ended = tokio::select! {
        ended = feed.write(sub, stdin) => ended,
        status = child.wait() => {
            debug!(?status, "ffmpeg exited");
            false
        }
        () = stalled(progress, &written, stall_timeout) => {
            warn!(stall_s = stall_timeout.as_secs_f64(), "ffmpeg wrote nothing: killed");
            false
        }
    };
    if ended {
        // Its input closed: ffmpeg flushes its outputs and exits.
        if tokio::time::timeout(FINISH_WAIT, child.wait()).await.is_err() {
            warn!("ffmpeg did not finish after its input ended: killed");
        }
    }
    let _ = child.kill().await;
    ended
}

/// Resolves once ffmpeg has written nothing for `limit` while it was given input (a hung
/// encoder; a quiet source is no reason to restart it).
async fn stalled(progress: &AtomicU64, written: &AtomicU64, limit: Duration) {
    let mut seen = progress.load(Ordering::Relaxed);
    let mut input_then = written.load(Ordering::Relaxed);
    let mut since = Instant::now();
    let mut tick = tokio::time::interval((limit / 4).max(Duration::from_millis(100)));
    loop {
        tick.tick().await;
        let now = progress.load(Ordering::Relaxed);
        if now != seen {
            (seen, since) = (now, Instant::now());
            input_then = written.load(Ordering::Relaxed);
        } else if since.elapsed() >= limit && written.load(Ordering::Relaxed) > input_then {
            return;
        }
    }
}

/// One rendition: FLV from ffmpeg into its publisher, until ffmpeg closes the pipe. Its
/// first keyframe takes the segment stamp of the source's keyframe at the same time (its HLS
/// starts there, numbered as the source's); its segmenter cuts the next ones itself, at the
/// same keyframes as the source's.
fn read_output(
    mut rx: pipe::Receiver,
    mut publisher: Publisher,
    stamps: Stamps,
    progress: Arc<AtomicU64>,
) -> JoinHandle<Publisher> {
    tokio::spawn(
        async move {
            let mut stamped = false;
            let mut reader = FlvReader::new(MAX_TAG);
            let mut buf = vec![0; 64 * 1024];
            loop {
                let n = match rx.read(&mut buf).await {
                    Ok(0) | Err(_) => break,
                    Ok(n) => n,
                };
                progress.fetch_add(n as u64, Ordering::Relaxed);
                reader.push(&buf[..n]);
                loop {
                    match reader.next_tag() {
                        Ok(Some(tag)) => {
                            let stamp = if !stamped && is_keyframe(tag.kind, &tag.payload) {
                                stamps.find(tag.timestamp)
                            } else {
                                None
                            };
                            stamped |= stamp.is_some();
                            let message = MediaMessage {
                                kind: tag.kind,
                                timestamp: tag.timestamp,
                                payload: tag.payload,
                            };
                            if let Err(e) = publisher.push_relayed(message, stamp) {
                                debug!(error = %e, "rendition frame refused by the hub");
                            }
                        }
                        Ok(None) => break,
                        Err(e) => {
                            warn!(error = %e, "unreadable FLV from ffmpeg");
                            return publisher;
                        }
                    }
                }
            }
            publisher
        }
        .in_current_span(),
    )
}

/// What ffmpeg's input needs from the source: its latest sequence headers and metadata
/// (sent again after a restart), and whether it must wait for a keyframe.
#[derive(Default)]
struct Feed {
    headers: Vec<(MediaKind, Bytes)>,
    need_keyframe: bool,
    /// Collected from the hub, not yet written.
    batch: Vec<Delivery>,
    stamps: Stamps,
    /// Bytes written to ffmpeg so far (the stall watchdog tells a hung ffmpeg from a quiet
    /// source).
    written: Arc<AtomicU64>,
}

impl Feed {
    /// Waits for the source's video sequence header: its picture size and frame rate.
    async fn picture(&mut self, sub: &mut Subscription) -> Option<(u32, u32, Option<f64>)> {
        let deadline = Instant::now() + FIRST_VIDEO_WAIT;
        loop {
            self.batch.clear();
            sub.collect(&mut self.batch, COLLECT_BATCH);
            let mut found = None;
            for d in &self.batch {
                match d {
                    Delivery::Media(p) if p.kind == MediaKind::Video && p.header => {
                        found = found.or_else(|| video_size(p));
                    }
                    Delivery::Media(_) | Delivery::Republished => {}
                    Delivery::Unpublished => return None,
                }
            }
            if found.is_some() {
                // What was collected with the header goes to ffmpeg first.
                return found;
            }
            for d in std::mem::take(&mut self.batch) {
                if let Delivery::Media(p) = d {
                    if p.header {
                        self.note_header(&p);
                    }
                }
            }
            if tokio::time::timeout_at(deadline, sub.changed()).await.is_err() {
                return None;
            }
        }
    }

    fn note_header(&mut self, p: &Prepared) {
        self.headers.retain(|(kind, _)| *kind != p.kind);
        self.headers.push((p.kind, p.payload.clone()));
    }

    /// Writes the stream to ffmpeg: the FLV header, the headers, then everything from the
    /// next keyframe. True when the source ended (the input is then closed); false when
    /// ffmpeg stopped reading.
    async fn write(&mut self, sub: &mut Subscription, mut stdin: ChildStdin) -> bool {
        let mut out = BytesMut::with_capacity(64 * 1024);
        out.extend_from_slice(&flv::file_header(true, true));
        for (kind, payload) in &self.headers {
            tag(&mut out, *kind, 0, payload);
        }
        self.need_keyframe = true;
        loop {
            if !out.is_empty() && stdin.write_all_buf(&mut out).await.is_err() {
                return false;
            }
            if self.batch.is_empty() {
                if !sub.has_pending() {
                    sub.changed().await;
                }
                sub.collect(&mut self.batch, COLLECT_BATCH);
            }
            let mut ended = false;
            let mut rest = std::mem::take(&mut self.batch).into_iter();
            while let Some(d) = rest.next() {
                match d {
                    Delivery::Media(p) => {
                        if p.header {
                            self.note_header(&p);
                        } else if self.need_keyframe {
                            if !(p.kind == MediaKind::Video && p.sync) {
                                continue;
                            }
                            self.need_keyframe = false;
                        }
                        if p.kind == MediaKind::Video {
                            self.stamps.note(&p);
                        }
                        out.extend_from_slice(&p.flv_head);
                        out.extend_from_slice(&p.payload);
                        out.extend_from_slice(&p.flv_tail);
                    }
                    Delivery::Unpublished => {
                        // What follows belongs to the next session: kept for it.
                        self.batch.extend(rest.by_ref());
                        ended = true;
                    }
                    Delivery::Republished => {}
                }
            }
            self.written.fetch_add(out.len() as u64, Ordering::Relaxed);
            if ended {
                let _ = stdin.write_all_buf(&mut out).await;
                let _ = stdin.shutdown().await;
                return true;
            }
        }
    }

    /// After the source ended: waits up to `wait` for its publisher to come back (true; what
    /// it sent is kept for the next run), keeping the headers it sends.
    async fn wait_republish(&mut self, sub: &mut Subscription, wait: Duration) -> bool {
        self.read_until(sub, wait, |d| matches!(d, Delivery::Republished)).await
    }

    /// Reads the source without writing it for `wait` (headers are kept). True when the
    /// source ended meanwhile (what follows is kept for the next session).
    async fn skip(&mut self, sub: &mut Subscription, wait: Duration) -> bool {
        self.read_until(sub, wait, |d| matches!(d, Delivery::Unpublished)).await
    }

    /// Reads the source for up to `wait`, keeping only its headers, until a delivery `stop`
    /// picks (true; what follows it is kept in the batch).
    async fn read_until(
        &mut self,
        sub: &mut Subscription,
        wait: Duration,
        stop: fn(&Delivery) -> bool,
    ) -> bool {
        let deadline = Instant::now() + wait;
        loop {
            if self.batch.is_empty() {
                sub.collect(&mut self.batch, COLLECT_BATCH);
            }
            let mut rest = std::mem::take(&mut self.batch).into_iter();
            while let Some(d) = rest.next() {
                if stop(&d) {
                    self.batch.extend(rest);
                    return true;
                }
                if let Delivery::Media(p) = d {
                    if p.header {
                        self.note_header(&p);
                    }
                }
            }
            if tokio::time::timeout_at(deadline, sub.changed()).await.is_err() {
                return false;
            }
        }
    }
}

/// An FLV tag of `payload`.
fn tag(out: &mut BytesMut, kind: MediaKind, timestamp: u32, payload: &[u8]) {
    out.extend_from_slice(&flv::tag_header(kind, timestamp, payload.len()));
    out.extend_from_slice(payload);
    out.extend_from_slice(&((flv::TAG_HEADER_LEN + payload.len()) as u32).to_be_bytes());
}

/// Whether an FLV video tag body is a keyframe's coded frames.
fn is_keyframe(kind: MediaKind, payload: &Bytes) -> bool {
    kind == MediaKind::Video
        && parse_video_tag(payload).is_ok_and(|t| {
            t.frame_type == FrameType::Key && matches!(t.packet, VideoPacket::CodedFrames { .. })
        })
}

/// The picture size and frame rate a video sequence header declares.
fn video_size(p: &Prepared) -> Option<(u32, u32, Option<f64>)> {
    if p.kind != MediaKind::Video {
        return None;
    }
    let tag = parse_video_tag(&p.payload).ok()?;
    if tag.packet != VideoPacket::SequenceStart {
        return None;
    }
    let info = video_info(tag.codec, &tag.body).ok()?;
    Some((info.width?, info.height?, info.fps))
}
