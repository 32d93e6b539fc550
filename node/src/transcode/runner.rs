//! The driver of one stream's transcoder: the hub's frames into ffmpeg, ffmpeg's renditions
//! into the hub, and restarts (the decisions are [`super::supervisor`]'s).

use std::os::fd::OwnedFd;
use std::path::PathBuf;
use std::process::Stdio;
use std::time::Duration;

use bytes::Bytes;
use command_fds::{CommandFdExt, FdMapping};
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::Arc;

use sluice_media::codec::{parse_video_tag, FrameType, VideoPacket};
use sluice_media::flv::FlvReader;
use sluice_media::frame::{MediaKind, MediaMessage};
use sluice_media::stream_name::StreamKey;
use tokio::io::AsyncReadExt;
use tokio::net::unix::pipe;
use tokio::process::{Child, ChildStdin};
use tokio::task::JoinHandle;
use tokio::time::Instant;
use tracing::{debug, error, info, info_span, warn, Instrument};

use super::command::{arguments, Encoding, FIRST_OUTPUT_FD};
use super::feed::{Fed, Feed, Stamps};
use super::ladder::{Ladder, Output};
use super::supervisor::{Backoff, Supervisor};
use super::Slot;
use crate::hub::{Hub, Publisher, Subscription};
use crate::metrics::{Metrics, Protocol};

/// How long ffmpeg has to finish once its input ended, before it is killed.
const FINISH_WAIT: Duration = Duration::from_secs(5);
/// Largest tag taken from ffmpeg (a rendition's frame; the source's limit is the hub's).
const MAX_TAG: usize = 16 << 20;
/// Most bytes of one line of ffmpeg's standard error kept for the log.
const MAX_STDERR_LINE: usize = 1024;
/// A source may change its picture size this often without waiting (each change is a new
/// ffmpeg).
const MIN_REPLAN_INTERVAL: Duration = Duration::from_secs(5);
/// Crashes in a row after which a stream's transcoding gives up (about 90 s of backoff).
const MAX_CRASHES: u32 = 8;

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
    /// Turns true when another origin is to transcode the stream.
    pub stop: tokio::sync::watch::Receiver<bool>,
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
            mut stop,
        } = job;
        let mut sub = match hub.subscribe(&key, Protocol::Relay) {
            Ok(sub) => sub,
            Err(e) => return warn!(error = %e, "not transcoded: cannot read the stream"),
        };
        let mut feed = Feed::default();
        let Some((width, height, fps)) = feed.picture(&mut sub).await else {
            slot.decline();
            return info!("not transcoded: no video (or it ended first)");
        };
        if u64::from(width) * u64::from(height) > max_source_pixels {
            slot.decline();
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
            slot.decline();
            return info!(width, height, "not transcoded: no rung of the ladder is smaller");
        }
        let mut renditions = publish(&hub, &key, outputs, Vec::new());
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
        let mut last_plan = Instant::now();
        loop {
            let outputs: Vec<Output> = renditions.iter().map(|(o, _)| o.clone()).collect();
            supervisor.started(Instant::now());
            let fed = match spawn(&ffmpeg, &outputs, encoding) {
                Ok((child, stdin, pipes)) => {
                    let publishers = renditions.drain(..).map(|(_, p)| p);
                    let readers: Vec<_> = pipes
                        .into_iter()
                        .zip(publishers)
                        .map(|(rx, publisher)| {
                            read_output(rx, publisher, stamps.clone(), progress.clone())
                        })
                        .collect();
                    let watch = (&*progress, stall_timeout, &mut stop);
                    let fed = drive(&mut sub, &mut feed, child, stdin, watch).await;
                    for (output, reader) in outputs.into_iter().zip(readers) {
                        match reader.await {
                            Ok(publisher) => renditions.push((output, publisher)),
                            Err(e) => warn!(error = %e, "rendition reader failed"),
                        }
                    }
                    fed
                }
                Err(e) if e.kind() == std::io::ErrorKind::NotFound => {
                    error!(ffmpeg = %ffmpeg.display(), "not transcoded: no such program (--ffmpeg)");
                    slot.decline();
                    break;
                }
                Err(e) => {
                    warn!(error = %e, ffmpeg = %ffmpeg.display(), "cannot start ffmpeg");
                    Fed::Stopped
                }
            };
            if renditions.is_empty() || fed == Fed::Moved {
                break;
            }
            let mut ended = fed == Fed::Ended;
            if let Fed::Resized(width, height, fps) = fed {
                feed.resized = Some((width, height, fps));
            } else if !ended {
                if supervisor.crashes() >= MAX_CRASHES {
                    error!(crashes = supervisor.crashes(), "ffmpeg keeps failing: transcoding given up");
                    slot.decline();
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
            if feed.resized.is_none() {
                continue;
            }
            // A source that keeps changing its picture size waits like a crashing ffmpeg.
            if last_plan.elapsed() < MIN_REPLAN_INTERVAL {
                let delay = supervisor.crashed(Instant::now());
                warn!(delay_ms = delay.as_millis() as u64, "the source changes size too often: waiting");
                if feed.skip(&mut sub, delay).await
                    && !feed.wait_republish(&mut sub, republish_wait).await
                {
                    break;
                }
            }
            let Some((width, height, fps)) = feed.resized.take() else { continue };
            last_plan = Instant::now();
            // A new plan for the new picture: renditions it keeps keep their publishers (and
            // viewers), the others end, new ones start.
            let outputs = ladder.plan(width, height, fps);
            let too_large = u64::from(width) * u64::from(height) > max_source_pixels;
            if outputs.is_empty() || too_large {
                info!(width, height, too_large, "the source changed size: no rendition now");
                slot.decline();
                break;
            }
            renditions = publish(&hub, &key, outputs, renditions);
            if renditions.is_empty() {
                break;
            }
            slot.set_renditions(renditions.iter().map(|(_, p)| p.key().clone()).collect());
            let names: Vec<&str> = renditions.iter().map(|(o, _)| o.name.as_str()).collect();
            info!(width, height, renditions = ?names, "the source changed size: a new plan");
        }
        info!("transcoding ended");
    }
    .instrument(span)
    .await;
}

/// The renditions of `outputs`: a rendition already published (in `had`) keeps its
/// publisher, others are published anew (never over another publisher of the name, nor taken
/// over by one); those of `had` not in `outputs` end here.
fn publish(
    hub: &Hub,
    key: &StreamKey,
    outputs: Vec<Output>,
    mut had: Vec<(Output, Publisher)>,
) -> Vec<(Output, Publisher)> {
    let mut out = Vec::new();
    for output in outputs {
        if let Some(i) = had.iter().position(|(o, _)| o.name == output.name) {
            out.push((output, had.swap_remove(i).1));
            continue;
        }
        let Some(rkey) = output.key(key) else { continue };
        match hub.publish_exclusive(&rkey) {
            Ok(mut publisher) => {
                // The source's timeline: ffmpeg keeps its timestamps (-copyts).
                publisher.set_passthrough();
                out.push((output, publisher));
            }
            Err(e) => warn!(rendition = %rkey, error = %e, "rendition not published"),
        }
    }
    out
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

/// Feeds ffmpeg until the source ends or changes its picture size (ffmpeg was told and
/// finished), or ffmpeg exits or stalls.
async fn drive(
    sub: &mut Subscription,
    feed: &mut Feed,
    mut child: Child,
    stdin: ChildStdin,
    (progress, stall_timeout, stop): (
        &AtomicU64,
        Duration,
        &mut tokio::sync::watch::Receiver<bool>,
    ),
) -> Fed {
    let (written, writing) = (feed.written.clone(), feed.writing.clone());
    let fed = tokio::select! {
        fed = feed.write(sub, stdin) => fed,
        status = child.wait() => {
            debug!(?status, "ffmpeg exited");
            Fed::Stopped
        }
        () = stalled(progress, (&written, &writing), stall_timeout) => {
            warn!(stall_s = stall_timeout.as_secs_f64(), "ffmpeg wrote nothing: killed");
            Fed::Stopped
        }
        _ = stop.wait_for(|stop| *stop) => Fed::Moved,
    };
    if !matches!(fed, Fed::Stopped | Fed::Moved) {
        // Its input closed: ffmpeg flushes its outputs and exits.
        if tokio::time::timeout(FINISH_WAIT, child.wait()).await.is_err() {
            warn!("ffmpeg did not finish after its input ended: killed");
        }
    }
    let _ = child.kill().await;
    fed
}

/// Resolves once ffmpeg has written nothing for `limit` while it was given input, or while
/// input waits for it to read (a hung encoder; a quiet source is no reason to restart it).
async fn stalled(
    progress: &AtomicU64,
    (written, writing): (&AtomicU64, &std::sync::atomic::AtomicBool),
    limit: Duration,
) {
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
        } else if since.elapsed() >= limit
            && (written.load(Ordering::Relaxed) > input_then || writing.load(Ordering::Relaxed))
        {
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

/// Whether an FLV video tag body is a keyframe's coded frames.
fn is_keyframe(kind: MediaKind, payload: &Bytes) -> bool {
    kind == MediaKind::Video
        && parse_video_tag(payload).is_ok_and(|t| {
            t.frame_type == FrameType::Key && matches!(t.packet, VideoPacket::CodedFrames { .. })
        })
}
