//! The publishing side of a stream: classify each message (keyframe, sequence header,
//! metadata: [`sluice_media::classify`] decides), rebase its timestamp, serialise it once and
//! append it to the stream's log.

use std::sync::Arc;
use std::time::SystemTime;

use tokio::time::Instant;

use sluice_media::classify::{AudioFacts, Classified, Classifier, ClassifyError, Header};
use sluice_media::frame::{MediaKind, MediaMessage};
use sluice_media::hls::SegmentStamp;

use super::log::HeaderKind;
use super::prepared::Prepared;
use super::stream::{AudioSummary, StreamEntry, VideoSummary};
use super::HubInner;

/// Gap left between the last presentation time of one publish session and the first
/// timestamp of the next.
const REPUBLISH_GAP_MS: u32 = 40;

/// Whether `a` is later than `b` on the wrapping 32-bit millisecond timeline.
fn later(a: u32, b: u32) -> bool {
    (a.wrapping_sub(b) as i32) > 0
}

/// The composition offset (presentation minus decode time, ms) of a coded video frame.
fn composition_time(payload: &bytes::Bytes) -> i32 {
    match sluice_media::codec::parse_video_tag(payload).map(|t| t.packet) {
        Ok(sluice_media::codec::VideoPacket::CodedFrames { composition_time }) => composition_time,
        _ => 0,
    }
}

#[derive(Debug, thiserror::Error)]
pub enum PushError {
    #[error("Enhanced RTMP multitrack video/audio is not supported")]
    Multitrack,
}

/// Handle held by the connection that publishes a stream. Dropping it ends the publish session.
pub struct Publisher {
    pub(super) hub: Arc<HubInner>,
    pub(super) entry: Arc<StreamEntry>,
    pub(super) id: u64,
    pub(super) kick: Arc<super::kick::Kick>,
    /// Output timestamp of the session's first message, and the input timestamp it came from.
    base: Option<(u32, u32)>,
    /// What each message is (headers, sync points, codec facts); remembers the headers seen.
    classifier: Classifier,
    /// Malformed media messages dropped (counted, not fatal).
    pub dropped: u64,
    /// Codec names of the stream as known so far (video, audio), for the registry.
    codecs: Vec<String>,
    /// Relayed streams keep the timestamps they arrive with (every node of the cluster then
    /// shows the same timeline) until a new source session starts.
    passthrough: bool,
}

/// Where a message comes from, for HLS: the publisher itself (this node decides the segments)
/// or the relay (segments follow the ingest's stamps).
enum HlsRole {
    Ingest,
    Follow(Option<SegmentStamp>),
}

impl Publisher {
    pub(super) fn new(
        hub: Arc<HubInner>,
        entry: Arc<StreamEntry>,
        id: u64,
        kick: Arc<super::kick::Kick>,
    ) -> Self {
        Publisher {
            hub,
            entry,
            id,
            kick,
            base: None,
            classifier: Classifier::default(),
            dropped: 0,
            codecs: Vec::new(),
            passthrough: false,
        }
    }

    pub fn key(&self) -> &sluice_media::stream_name::StreamKey {
        &self.entry.key
    }

    /// The next message starts a new source session (an edge's upstream moved to another
    /// origin): its timestamps are rebased to continue after the last one sent, and the
    /// sequence headers are compared afresh. Viewers stay connected and continue at the
    /// new session's first keyframe.
    pub fn new_session(&mut self) {
        self.base = None;
        self.passthrough = false;
    }

    /// Whether no earlier publish session of this stream left timestamps viewers followed.
    pub fn is_first_session(&self) -> bool {
        self.entry.state().last_timestamp.is_none()
    }

    /// Keep incoming timestamps as they are (a relayed stream: the ingest origin already
    /// rebased them), until [`Publisher::new_session`].
    pub fn set_passthrough(&mut self) {
        self.passthrough = true;
    }

    /// The stream's codec names as known so far (`["h264", "aac"]`); changes when a sequence
    /// header with another codec arrives.
    pub fn codecs(&self) -> &[String] {
        &self.codecs
    }

    /// Counts `n` bytes received for this stream from a peer node (`sluice_bytes_in_total`;
    /// RTMP publishers' bytes are counted by their connection).
    pub fn count_bytes_in(&self, n: usize) {
        self.hub.metrics.bytes_in.inc_by(n as u64);
    }

    /// Resolves when the publisher is to stop (taken over, claim lost, ordered, drained),
    /// with the reason to tell the encoder: the connection should close.
    pub async fn kicked(&self) -> super::KickReason {
        self.kick.kicked().await
    }

    /// Stop this publisher for `reason` (its connection tells the encoder and closes).
    pub fn kick(&self, reason: super::KickReason) {
        self.kick.kick(reason);
    }

    /// What the stream shows so far, for its quota: codecs and resolution from the sequence
    /// headers, declared rates from `onMetaData`, measured rates over the last window.
    pub fn facts(&self, now: Instant) -> crate::quota::StreamFacts {
        let state = self.entry.state();
        let video = state.video.as_ref();
        let metadata = state.metadata.as_ref();
        crate::quota::StreamFacts {
            video_codec: video.map(|v| v.codec.clone()),
            audio_codec: state.audio.as_ref().map(|a| a.codec.clone()),
            width: video.and_then(|v| v.width),
            height: video.and_then(|v| v.height),
            declared_fps: metadata.and_then(|m| m.framerate).filter(|f| *f > 0.0),
            declared_video_kbps: metadata.and_then(|m| m.video_data_rate).filter(|r| *r > 0.0),
            measured_fps: state.video_frames.rate(now),
            measured_kbps: state.bitrate.rate(now) / 1000.0,
        }
    }

    fn rebase(&mut self, timestamp: u32) -> u32 {
        if self.passthrough {
            return timestamp;
        }
        let (out_base, in_base) = *self.base.get_or_insert_with(|| {
            let state = self.entry.state();
            let out = state.last_presented.map_or(0, |t| t.wrapping_add(REPUBLISH_GAP_MS));
            (out, timestamp)
        });
        // Tolerate messages slightly older than the first (audio/video interleaving).
        let delta = timestamp.wrapping_sub(in_base) as i32;
        out_base.wrapping_add(delta.max(0) as u32)
    }

    /// Take one message from the publisher and hand it to every viewer.
    pub fn push(&mut self, message: MediaMessage) -> Result<(), PushError> {
        self.push_as(message, HlsRole::Ingest)
    }

    /// Take one message relayed from another node, with the ingest's HLS stamp if it opened
    /// a segment there, and hand it to every viewer.
    pub fn push_relayed(
        &mut self,
        message: MediaMessage,
        stamp: Option<SegmentStamp>,
    ) -> Result<(), PushError> {
        self.push_as(message, HlsRole::Follow(stamp))
    }

    fn push_as(&mut self, message: MediaMessage, role: HlsRole) -> Result<(), PushError> {
        self.hub.metrics.media_messages_in.inc();
        let classified = match self.classifier.classify(message.kind, message.payload) {
            Ok(classified) => classified,
            Err(ClassifyError::Malformed(_)) => {
                self.dropped += 1;
                return Ok(());
            }
            Err(ClassifyError::Multitrack) => return Err(PushError::Multitrack),
        };
        let Classified { payload, header, sync, reset_gop, video, audio, metadata } = classified;
        let header = header.map(header_kind);
        let video_summary = video.map(|info| VideoSummary::from_info(&info));

        let timestamp = self.rebase(message.timestamp);
        let now = Instant::now();
        {
            let mut state = self.entry.state();
            state.last_timestamp = Some(timestamp);
            let mut presented = timestamp;
            if message.kind == MediaKind::Video && header.is_none() {
                let offset = composition_time(&payload).max(0) as u32;
                presented = timestamp.wrapping_add(offset);
            }
            if state.last_presented.is_none_or(|t| later(presented, t)) {
                state.last_presented = Some(presented);
            }
            state.bitrate.add(now, payload.len() as u64 * 8);
            if message.kind == MediaKind::Video && header.is_none() {
                state.video_frames.add(now, 1);
            }
            let audio_summary = match audio {
                Some(AudioFacts::SequenceHeader { codec, config }) => {
                    Some(AudioSummary::from_config(codec.name(), config.as_ref()))
                }
                // Codecs without a sequence header (MP3, legacy formats).
                Some(AudioFacts::Headerless { codec }) if state.audio.is_none() => {
                    Some(AudioSummary::from_config(codec.name(), None))
                }
                _ => None,
            };
            let codecs_changed = video_summary.is_some() || audio_summary.is_some();
            if let Some(v) = video_summary {
                state.video = Some(v);
            }
            if let Some(a) = audio_summary {
                state.audio = Some(a);
            }
            if codecs_changed {
                let video = state.video.as_ref().map(|v| &v.codec);
                self.codecs = [video, state.audio.as_ref().map(|a| &a.codec)]
                    .into_iter()
                    .flatten()
                    .cloned()
                    .collect();
            }
            if let Some(m) = metadata {
                state.metadata = Some(m);
            }
        }
        let msg = MediaMessage { kind: message.kind, timestamp, payload };
        let stamp = match (&self.entry.hls, role) {
            (None, HlsRole::Ingest) => None,
            (Some(hls), HlsRole::Ingest) => hls.push(&self.entry.key, &msg),
            (hls, HlsRole::Follow(stamp)) => {
                if let Some(hls) = hls {
                    hls.follow(&self.entry.key, &msg, header.is_some(), stamp.as_ref());
                }
                stamp
            }
        };
        {
            let mut log = self.entry.log();
            if reset_gop {
                log.reset_gop();
            }
            // Metadata goes out at time 0, wherever it falls in the stream: it reaches a new
            // viewer ahead of the first frames, and ffmpeg's FLV demuxer takes an onMetaData
            // with any other timestamp for a subtitle stream (an extra "text" stream in ffprobe;
            // GStreamer's flvmux sends its metadata again a few seconds in).
            let sent_at = if header == Some(HeaderKind::Metadata) { 0 } else { timestamp };
            log.append(header, |seq, offset| {
                let mut p = Prepared::new(seq, offset, &msg, sent_at, sync, header.is_some());
                p.hls_stamp = stamp;
                p
            });
        }
        self.entry.wake_viewers();
        Ok(())
    }
}

/// Where the media log keeps a header the classifier recognised.
fn header_kind(header: Header) -> HeaderKind {
    match header {
        Header::Metadata => HeaderKind::Metadata,
        Header::Video => HeaderKind::Video,
        Header::Audio => HeaderKind::Audio,
    }
}

impl Drop for Publisher {
    fn drop(&mut self) {
        let mut state = self.entry.state();
        if state.publisher != Some(self.id) {
            return; // taken over: the new publisher owns the stream now
        }
        state.publisher = None;
        state.publisher_kick = None;
        state.started_at = None::<SystemTime>;
        state.started_instant = None;
        state.video = None;
        state.audio = None;
        state.metadata = None;
        state.ended_at = Some(Instant::now());
        drop(state);
        if let Some(hls) = &self.entry.hls {
            hls.end_of_stream();
        }
        self.entry.log().end_publish();
        self.entry.wake_viewers();
        self.hub.metrics.streams.dec();
        self.hub.release(&self.entry);
    }
}
