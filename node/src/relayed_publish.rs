//! Relay frames into a local publisher: an edge's pull, an origin's hosted forward.

use sluice_media::frame::MediaKind;
use sluice_relay::codec::{FLAG_HLS_STAMP, FLAG_KEYFRAME};
use sluice_relay::{Frame, FrameKind};
use tracing::debug;

use crate::hub::Publisher;

/// A local publish fed with frames from the relay (an edge's pull, an origin's hosted
/// forward). Timestamps pass through as the ingest origin set them. The relay repeats the
/// sequence headers and metadata at every GOP; the hub gets each only when it changes. A
/// keyframe is held until the next frame, which may be its HLS stamp.
pub struct RelayedPublish {
    publisher: Publisher,
    /// Last header payload pushed per kind (audio, video, data).
    headers: [Option<bytes::Bytes>; 3],
    /// A keyframe waiting for a possible stamp.
    held: Option<Frame>,
    /// Timestamp of the last media frame delivered.
    last_ts: Option<u32>,
    /// After switching to another upstream of the same timeline: drop what was already
    /// delivered, resume at the first keyframe (or, without video, frame) after this.
    resume_after: Option<u32>,
    /// Since the switch, the new upstream sent frames we already had.
    overlapped: bool,
    has_video: bool,
}

impl RelayedPublish {
    /// A relay hop that others read from (a home origin): timestamps pass through, so every
    /// node downstream sees the ingest's timeline.
    pub fn new(mut publisher: Publisher) -> Self {
        publisher.set_passthrough();
        Self::with(publisher)
    }

    /// The last hop (an edge): timestamps pass through when the stream is new here; when
    /// viewers are still connected from an earlier session of the name, they continue from
    /// where that session stopped instead of jumping back.
    pub fn new_for_viewers(mut publisher: Publisher) -> Self {
        if publisher.is_first_session() {
            publisher.set_passthrough();
        }
        Self::with(publisher)
    }

    fn with(publisher: Publisher) -> Self {
        RelayedPublish {
            publisher,
            headers: [None, None, None],
            held: None,
            last_ts: None,
            resume_after: None,
            overlapped: false,
            has_video: false,
        }
    }

    /// Resolves when another publisher took the stream over (`Hub::publish_over`).
    pub async fn kicked(&self) {
        self.publisher.kicked().await;
    }

    /// The next message starts a new source session (another claim of the stream): rebase
    /// timestamps to continue (see [`Publisher::new_session`]).
    pub fn new_session(&mut self) {
        self.flush();
        self.resume_after = None;
        self.publisher.new_session();
    }

    /// The frames now come from another upstream of the same timeline (another home, or the
    /// same origin after a broken connection): it restarts at a keyframe viewers may already
    /// have had: skip what was delivered and continue right after it (or, if the new upstream
    /// starts after a gap, at its first keyframe).
    pub fn switch_upstream(&mut self) {
        self.flush();
        self.resume_after = self.last_ts;
        self.overlapped = false;
    }

    pub fn push(&mut self, frame: Frame) {
        self.publisher.count_bytes_in(frame.payload.len() + sluice_relay::codec::FRAME_HEADER_LEN);
        if frame.flags & FLAG_HLS_STAMP != 0 {
            // From a peer: only a well-formed stamp with plausible numbers is followed.
            let stamp = sluice_media::hls::SegmentStamp::decode(&frame.payload)
                .filter(sluice_media::hls::SegmentStamp::is_plausible);
            match self.held.take() {
                Some(key) if key.timestamp == frame.timestamp && stamp.is_some() => {
                    self.deliver(key, stamp);
                }
                Some(key) => self.deliver(key, None),
                None => {}
            }
            return;
        }
        self.flush();
        if frame.is_header() {
            let slot = &mut self.headers[frame.kind as usize - 1];
            if slot.as_ref() == Some(&frame.payload) {
                return;
            }
            *slot = Some(frame.payload.clone());
        } else {
            if let Some(after) = self.resume_after {
                let newer = (frame.timestamp.wrapping_sub(after) as i32) > 0;
                if !newer {
                    // Already delivered; the new upstream overlaps what we had, so what
                    // follows continues it exactly (same timeline).
                    self.overlapped = true;
                    return;
                }
                let start = frame.kind == FrameKind::Video && frame.flags & FLAG_KEYFRAME != 0
                    || (!self.has_video && frame.kind == FrameKind::Audio);
                if !(self.overlapped || start) {
                    return; // a gap: wait for the next start point
                }
                self.resume_after = None;
            }
            if frame.kind == FrameKind::Video {
                self.has_video = true;
                if frame.flags & FLAG_KEYFRAME != 0 {
                    self.held = Some(frame);
                    return;
                }
            }
        }
        self.deliver(frame, None);
    }

    /// Delivers a held keyframe without a stamp.
    fn flush(&mut self) {
        if let Some(key) = self.held.take() {
            self.deliver(key, None);
        }
    }

    fn deliver(&mut self, frame: Frame, stamp: Option<sluice_media::hls::SegmentStamp>) {
        if !frame.is_header() {
            self.last_ts = Some(frame.timestamp);
        }
        if let Err(e) = self.publisher.push_relayed(to_message(frame), stamp) {
            debug!(error = %e, "relayed frame refused by the hub");
        }
    }
}

impl Drop for RelayedPublish {
    fn drop(&mut self) {
        self.flush();
    }
}

/// A relay frame as a message for the hub.
pub fn to_message(frame: Frame) -> sluice_media::frame::MediaMessage {
    let kind = match frame.kind {
        FrameKind::Audio => MediaKind::Audio,
        FrameKind::Video => MediaKind::Video,
        FrameKind::Data => MediaKind::Data,
    };
    sluice_media::frame::MediaMessage { kind, timestamp: frame.timestamp, payload: frame.payload }
}
