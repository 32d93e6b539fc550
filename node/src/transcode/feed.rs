//! The transcoder's input side: the source's frames from the hub as FLV into ffmpeg, with its
//! headers kept for restarts, and the segment stamps of its keyframes for the renditions.

use std::collections::VecDeque;
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::{Arc, Mutex};
use std::time::Duration;

use bytes::{Bytes, BytesMut};
use sluice_media::codec::{parse_video_tag, video_info, VideoPacket};
use sluice_media::flv;
use sluice_media::frame::MediaKind;
use sluice_media::hls::SegmentStamp;
use tokio::io::AsyncWriteExt;
use tokio::process::ChildStdin;
use tokio::time::Instant;

use crate::hub::log::Delivery;
use crate::hub::prepared::Prepared;
use crate::hub::Subscription;
use crate::lock::lock;

/// How long a new stream has to send its video sequence header.
const FIRST_VIDEO_WAIT: Duration = Duration::from_secs(10);
/// Bytes collected from the hub per write to ffmpeg.
const COLLECT_BATCH: usize = 256 * 1024;
/// Segment stamps of the source's latest keyframes kept for the renditions.
const STAMPS_KEPT: usize = 64;
/// How far a rendition's keyframe may be from the source's to take its stamp (ms).
const STAMP_SLACK_MS: u32 = 40;
/// 90 kHz ticks per millisecond.
const TICKS_PER_MS: u64 = 90;

/// Where the source's HLS segments start, by the presentation time (ms) of the keyframe that
/// opens each: a rendition's keyframe at the same time opens the same segment (number, start,
/// program date), so the renditions' segments and parts line up with the source's.
#[derive(Default, Clone)]
pub(super) struct Stamps(Arc<Mutex<VecDeque<(u32, SegmentStamp)>>>);

impl Stamps {
    pub(super) fn note(&self, p: &Prepared) {
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
    pub(super) fn find(&self, presented: u32) -> Option<SegmentStamp> {
        let kept = lock(&self.0);
        kept.iter()
            .map(|(t, s)| (t.abs_diff(presented), s))
            .filter(|(d, _)| *d <= STAMP_SLACK_MS)
            .min_by_key(|(d, _)| *d)
            .map(|(_, s)| *s)
    }
}

/// What ffmpeg's input needs from the source: its latest sequence headers and metadata
/// (sent again after a restart), and whether it must wait for a keyframe.
#[derive(Default)]
pub(super) struct Feed {
    pub(super) headers: Vec<(MediaKind, Bytes)>,
    pub(super) need_keyframe: bool,
    /// Collected from the hub, not yet written.
    pub(super) batch: Vec<Delivery>,
    pub(super) stamps: Stamps,
    /// Bytes written to ffmpeg so far (the stall watchdog tells a hung ffmpeg from a quiet
    /// source).
    pub(super) written: Arc<AtomicU64>,
    /// A write to ffmpeg is waiting for it to read (it has input it does not take).
    pub(super) writing: Arc<std::sync::atomic::AtomicBool>,
    /// The source's picture size as ffmpeg was last told (a change means a new plan).
    pub(super) size: Option<(u32, u32)>,
    /// A size change seen while nothing was written (backoff, a publisher's reconnect): the
    /// next ffmpeg needs a new plan first.
    pub(super) resized: Option<(u32, u32, Option<f64>)>,
}

/// How feeding one ffmpeg ended.
#[derive(Debug, Clone, Copy, PartialEq)]
pub(super) enum Fed {
    /// The source ended; ffmpeg's input was closed.
    Ended,
    /// ffmpeg stopped reading (it exited, or was killed).
    Stopped,
    /// The source changed its picture size (a new video sequence header): ffmpeg's input was
    /// closed before it; the size and frame rate it declares now.
    Resized(u32, u32, Option<f64>),
    /// Another origin transcodes the stream now: this transcoder ends.
    Moved,
}

impl Feed {
    /// Waits for the source's video sequence header: its picture size and frame rate.
    pub(super) async fn picture(
        &mut self,
        sub: &mut Subscription,
    ) -> Option<(u32, u32, Option<f64>)> {
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
            if let Some((w, h, _)) = found {
                // What was collected with the header goes to ffmpeg first.
                self.size = Some((w, h));
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

    /// A video sequence header of another picture size than ffmpeg was told: remembered.
    fn note_resize(&mut self, p: &Prepared) {
        if p.kind != MediaKind::Video {
            return;
        }
        if let Some((w, h, fps)) = video_size(p).filter(|(w, h, _)| self.size != Some((*w, *h))) {
            self.size = Some((w, h));
            self.resized = Some((w, h, fps));
        }
    }

    pub(super) fn note_header(&mut self, p: &Prepared) {
        self.headers.retain(|(kind, _)| *kind != p.kind);
        self.headers.push((p.kind, p.payload.clone()));
    }

    /// Writes the stream to ffmpeg: the FLV header, the headers, then everything from the
    /// next keyframe, until the source ends or changes its picture size (the input is then
    /// closed; what follows is kept for the next ffmpeg) or ffmpeg stops reading.
    pub(super) async fn write(&mut self, sub: &mut Subscription, mut stdin: ChildStdin) -> Fed {
        let mut out = BytesMut::with_capacity(64 * 1024);
        out.extend_from_slice(&flv::file_header(true, true));
        for (kind, payload) in &self.headers {
            tag(&mut out, *kind, 0, payload);
        }
        self.need_keyframe = true;
        loop {
            if !out.is_empty() {
                self.writing.store(true, Ordering::Relaxed);
                let result = stdin.write_all_buf(&mut out).await;
                self.writing.store(false, Ordering::Relaxed);
                if result.is_err() {
                    return Fed::Stopped;
                }
            }
            if self.batch.is_empty() {
                if !sub.has_pending() {
                    sub.changed().await;
                }
                sub.collect(&mut self.batch, COLLECT_BATCH);
            }
            let mut ended = None;
            let mut rest = std::mem::take(&mut self.batch).into_iter();
            while let Some(d) = rest.next() {
                match d {
                    Delivery::Media(p) => {
                        let resized = (p.header && p.kind == MediaKind::Video)
                            .then(|| video_size(&p))
                            .flatten()
                            .filter(|(w, h, _)| self.size.is_some_and(|s| s != (*w, *h)));
                        if let Some((w, h, fps)) = resized {
                            // A new plan: this header and what follows go to the next ffmpeg.
                            self.size = Some((w, h));
                            self.note_header(&p);
                            self.batch.push(Delivery::Media(p));
                            self.batch.extend(rest.by_ref());
                            ended = Some(Fed::Resized(w, h, fps));
                            break;
                        }
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
                        ended = Some(Fed::Ended);
                    }
                    Delivery::Republished => {}
                }
            }
            self.written.fetch_add(out.len() as u64, Ordering::Relaxed);
            if let Some(fed) = ended {
                let _ = stdin.write_all_buf(&mut out).await;
                let _ = stdin.shutdown().await;
                return fed;
            }
        }
    }

    /// After the source ended: waits up to `wait` for its publisher to come back (true; what
    /// it sent is kept for the next run), keeping the headers it sends.
    pub(super) async fn wait_republish(&mut self, sub: &mut Subscription, wait: Duration) -> bool {
        self.read_until(sub, wait, |d| matches!(d, Delivery::Republished)).await
    }

    /// Reads the source without writing it for `wait` (headers are kept). True when the
    /// source ended meanwhile (what follows is kept for the next session).
    pub(super) async fn skip(&mut self, sub: &mut Subscription, wait: Duration) -> bool {
        self.read_until(sub, wait, |d| matches!(d, Delivery::Unpublished)).await
    }

    /// Reads the source for up to `wait`, keeping only its headers, until a delivery `stop`
    /// picks (true; what follows it is kept in the batch).
    pub(super) async fn read_until(
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
                        self.note_resize(&p);
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
