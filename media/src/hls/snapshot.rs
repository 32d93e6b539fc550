//! The published state of a stream's HLS output: immutable, `Arc`-shared, cheap to clone.

use std::sync::Arc;

use bytes::Bytes;

use super::names::Resource;
use super::track::TICKS_PER_SECOND;

/// Parts a blocking request may ask for beyond the last one (LL-HLS "Advance Part Limit").
const ADVANCE_PART_LIMIT: u64 = 3;
/// Segments a blocking request may ask for beyond the last one.
const ADVANCE_SEGMENT_LIMIT: u64 = 2;

/// An init segment (`ftyp` + `moov`), named `init-{id}.mp4`.
#[derive(Debug, Clone, PartialEq)]
pub struct InitSegment {
    pub id: u32,
    pub bytes: Bytes,
    /// RFC 6381 codecs of the tracks, comma-separated (`avc1.64001f,mp4a.40.2`).
    pub codecs: String,
    /// Picture size of the video track.
    pub resolution: Option<(u32, u32)>,
    /// Frame rate from the video SPS, when it says.
    pub frame_rate: Option<f64>,
    pub has_video: bool,
    pub has_audio: bool,
    /// Each track's init alone (MPEG-DASH), with its codec.
    pub video_track: Option<TrackInit>,
    pub audio_track: Option<TrackInit>,
}

/// One track's init segment, for serving the track alone (MPEG-DASH).
#[derive(Debug, Clone, PartialEq)]
pub struct TrackInit {
    pub bytes: Bytes,
    /// RFC 6381 codec.
    pub codec: String,
    /// Audio: sample rate and channels.
    pub sample_rate: u32,
    pub channels: u8,
}

impl InitSegment {
    pub fn track(&self, track: Track) -> Option<&TrackInit> {
        match track {
            Track::Video => self.video_track.as_ref(),
            Track::Audio => self.audio_track.as_ref(),
        }
    }
}

/// A partial segment, named `part-{msn}.{index}.m4s`: a CMAF fragment per track (video
/// first), back to back.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Part {
    pub msn: u64,
    pub index: u32,
    /// Start on the 90 kHz media clock.
    pub start: u64,
    /// 90 kHz ticks.
    pub duration: u64,
    /// Starts with a keyframe (or the stream is audio-only): `INDEPENDENT=YES`.
    pub independent: bool,
    /// Both tracks' fragments (what HLS serves).
    pub bytes: Bytes,
    /// Length of the video fragment at the start of `bytes` (0 without video samples).
    pub video_len: usize,
}

impl Part {
    /// One track's fragment alone (what MPEG-DASH serves), empty when the part has no
    /// samples of it. A slice of `bytes`: no copy.
    pub fn track(&self, track: Track) -> Bytes {
        let split = self.video_len.min(self.bytes.len());
        match track {
            Track::Video => self.bytes.slice(..split),
            Track::Audio => self.bytes.slice(split..),
        }
    }
}

/// A track of a stream, for serving it alone (MPEG-DASH).
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub enum Track {
    Video,
    Audio,
}

/// A media segment, named `seg-{msn}.m4s`. Its bytes are its parts' bytes in order.
#[derive(Debug, Clone, PartialEq)]
pub struct Segment {
    pub msn: u64,
    /// Start on the 90 kHz media clock.
    pub start: u64,
    /// 90 kHz ticks (the sum of its parts' durations).
    pub duration: u64,
    pub parts: Vec<Arc<Part>>,
    /// Preceded by `EXT-X-DISCONTINUITY`.
    pub discontinuity: bool,
    /// Discontinuity sequence number of this segment.
    pub discontinuity_sequence: u64,
    /// The init segment its fragments need.
    pub init_id: u32,
    /// `stream_epoch_ms` + start, when an epoch is configured.
    pub program_date_time_ms: Option<u64>,
    /// Video frames in the segment (for the frame rate estimate).
    pub video_frames: u32,
    /// Composition offset of its first video frame (90 kHz): its earliest presentation time
    /// is `start + first_cts` (what a DASH timeline lists). 0 without video.
    pub first_cts: i32,
    /// Whether the segment is complete (false for the open one).
    pub complete: bool,
}

impl Segment {
    /// Total size in bytes.
    pub fn len(&self) -> usize {
        self.parts.iter().map(|p| p.bytes.len()).sum()
    }

    pub fn is_empty(&self) -> bool {
        self.parts.is_empty()
    }

    /// The segment's bytes as its parts' buffers (no copy): send them in order, e.g. as a
    /// streamed HTTP body, with `Content-Length` = [`Segment::len`].
    pub fn chunks(&self) -> impl Iterator<Item = Bytes> + '_ {
        self.parts.iter().map(|p| p.bytes.clone())
    }

    /// The segment's bytes in one buffer (copies).
    pub fn to_bytes(&self) -> Bytes {
        let mut v = Vec::with_capacity(self.len());
        for p in &self.parts {
            v.extend_from_slice(&p.bytes);
        }
        Bytes::from(v)
    }
}

/// Answer to a resource request.
#[derive(Debug, Clone, PartialEq)]
pub enum Lookup {
    Init(Arc<InitSegment>),
    Segment(Arc<Segment>),
    Part(Arc<Part>),
    /// Not there yet but expected soon (the next part(s) or the open segment): hold the
    /// request until a later snapshot answers it (bounded by the server's own timeout).
    Wait,
    /// Unknown, dropped out of the window, or too far ahead: 404.
    NotFound,
}

/// Answer to a blocking playlist reload (`_HLS_msn`, `_HLS_part`).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum ReloadStatus {
    /// The playlist already contains what was asked for (or later): answer now.
    Ready,
    /// Hold the request until a snapshot says `Ready`.
    Wait,
    /// Too far ahead of the live edge: answer 400 Bad Request.
    TooFar,
}

#[derive(Debug)]
pub(crate) struct SnapshotInner {
    pub segments: Vec<Arc<Segment>>,
    /// The segment being built, with the parts completed so far (possibly none).
    pub open: Option<Arc<Segment>>,
    pub inits: Vec<Arc<InitSegment>>,
    pub target_duration_s: u64,
    pub part_target_ms: u64,
    /// The next part to be produced (what `EXT-X-PRELOAD-HINT` names).
    pub next_part: (u64, u32),
    pub parts_per_segment: u64,
}

/// Everything a server needs to answer HLS requests for one stream at one moment.
/// Clone is an `Arc` increment.
#[derive(Debug, Clone)]
pub struct HlsSnapshot {
    pub(crate) inner: Arc<SnapshotInner>,
}

impl HlsSnapshot {
    /// Completed segments in the window, oldest first.
    pub fn segments(&self) -> &[Arc<Segment>] {
        &self.inner.segments
    }

    /// The segment in progress and its completed parts.
    pub fn open_segment(&self) -> Option<&Arc<Segment>> {
        self.inner.open.as_ref()
    }

    /// Init segments referenced by the window (and the current one), oldest first.
    pub fn inits(&self) -> &[Arc<InitSegment>] {
        &self.inner.inits
    }

    /// The current init segment.
    pub fn current_init(&self) -> Option<&Arc<InitSegment>> {
        self.inner.inits.last()
    }

    /// `EXT-X-TARGETDURATION` in seconds.
    pub fn target_duration(&self) -> u64 {
        self.inner.target_duration_s
    }

    /// `PART-TARGET` in milliseconds.
    pub fn part_target_ms(&self) -> u64 {
        self.inner.part_target_ms
    }

    /// The (msn, index) of the next part to be produced (the preload hint).
    pub fn next_part(&self) -> (u64, u32) {
        self.inner.next_part
    }

    /// Whether there is anything to play: at least one completed part.
    pub fn is_playable(&self) -> bool {
        self.last_part().is_some()
    }

    /// The last completed part, (msn, index).
    pub fn last_part(&self) -> Option<(u64, u32)> {
        let open = self.inner.open.as_ref().filter(|s| !s.parts.is_empty());
        open.or(self.inner.segments.last()).and_then(|s| s.parts.last()).map(|p| (p.msn, p.index))
    }

    /// Media sequence number of the last segment listed (the open one when it has parts).
    pub fn last_msn(&self) -> Option<u64> {
        self.last_part().map(|(msn, _)| msn)
    }

    /// A completed segment in the window.
    pub fn segment(&self, msn: u64) -> Option<&Arc<Segment>> {
        let first = self.inner.segments.first()?.msn;
        let i = usize::try_from(msn.checked_sub(first)?).ok()?;
        self.inner.segments.get(i).filter(|s| s.msn == msn)
    }

    /// A completed part of a segment in the window or of the open segment.
    pub fn part(&self, msn: u64, index: u32) -> Option<&Arc<Part>> {
        let seg = match &self.inner.open {
            Some(open) if open.msn == msn => open,
            _ => self.segment(msn)?,
        };
        seg.parts.get(usize::try_from(index).ok()?)
    }

    /// An init segment still referenced.
    pub fn init(&self, id: u32) -> Option<&Arc<InitSegment>> {
        self.inner.inits.iter().find(|i| i.id == id)
    }

    /// Answer a request for `resource`.
    pub fn lookup(&self, resource: Resource) -> Lookup {
        match resource {
            Resource::Init(id) => {
                self.init(id).map_or(Lookup::NotFound, |i| Lookup::Init(i.clone()))
            }
            Resource::Segment(msn) => match self.segment(msn) {
                Some(s) => Lookup::Segment(s.clone()),
                None => match self.reload_status(msn, None) {
                    ReloadStatus::Wait if msn >= self.inner.next_part.0 => Lookup::Wait,
                    _ => Lookup::NotFound,
                },
            },
            Resource::Part { msn, index } => match self.part(msn, index) {
                Some(p) => Lookup::Part(p.clone()),
                None if (msn, index) >= self.inner.next_part
                    && self.reload_status(msn, Some(index)) == ReloadStatus::Wait =>
                {
                    Lookup::Wait
                }
                None => Lookup::NotFound,
            },
        }
    }

    /// Whether a playlist request with `_HLS_msn=msn` (and `_HLS_part=part`) can be answered:
    /// per the LL-HLS rules, when the playlist contains segment `msn` (complete) or, with a
    /// part, part `part` of segment `msn`, or anything later. A part index past the end of a
    /// completed segment means the first part of the next segment.
    pub fn reload_status(&self, msn: u64, part: Option<u32>) -> ReloadStatus {
        let (mut msn, part) = (msn, part);
        let Some(last) = self.last_part() else {
            let next = self.inner.next_part.0;
            return if msn > next.saturating_add(ADVANCE_SEGMENT_LIMIT) {
                ReloadStatus::TooFar
            } else {
                ReloadStatus::Wait
            };
        };
        let last_complete = self.inner.segments.last().map(|s| s.msn);
        let Some(part) = part else {
            return if last_complete.is_some_and(|l| msn <= l) {
                ReloadStatus::Ready
            } else if msn > last.0.saturating_add(ADVANCE_SEGMENT_LIMIT) {
                ReloadStatus::TooFar
            } else {
                ReloadStatus::Wait
            };
        };
        let mut part = u64::from(part);
        if let Some(seg) = self.segment(msn) {
            if part >= seg.parts.len() as u64 {
                (msn, part) = (msn.saturating_add(1), 0);
            }
        }
        let (last_msn, last_index) = (last.0, u64::from(last.1));
        if (msn, part) <= (last_msn, last_index) {
            return ReloadStatus::Ready;
        }
        let ahead = if msn == last_msn {
            part - last_index
        } else {
            let whole = (msn - last_msn - 1).saturating_mul(self.inner.parts_per_segment);
            whole.saturating_add(part).saturating_add(1)
        };
        if ahead > ADVANCE_PART_LIMIT || msn > last_msn.saturating_add(ADVANCE_SEGMENT_LIMIT) {
            ReloadStatus::TooFar
        } else {
            ReloadStatus::Wait
        }
    }

    /// Bits per second: (peak, average) over the completed segments in the window, or over
    /// the parts so far when none is complete.
    pub fn bandwidth(&self) -> (u64, u64) {
        let rate = |bytes: usize, ticks: u64| {
            (bytes as u128 * 8 * u128::from(TICKS_PER_SECOND))
                .checked_div(u128::from(ticks))
                .map_or(0, |v| u64::try_from(v).unwrap_or(u64::MAX))
        };
        let mut segs: Vec<&Arc<Segment>> = self.inner.segments.iter().collect();
        if segs.is_empty() {
            segs.extend(self.inner.open.iter());
        }
        let peak = segs.iter().map(|s| rate(s.len(), s.duration)).max().unwrap_or(0);
        let total: usize = segs.iter().map(|s| s.len()).sum();
        let ticks: u64 = segs.iter().map(|s| s.duration).sum();
        (peak, rate(total, ticks))
    }

    /// Frame rate: from the SPS when it says, else measured over the window.
    pub fn frame_rate(&self) -> Option<f64> {
        if let Some(fps) = self.current_init().and_then(|i| i.frame_rate) {
            return Some(fps);
        }
        let frames: u64 = self.inner.segments.iter().map(|s| u64::from(s.video_frames)).sum();
        let ticks: u64 = self.inner.segments.iter().map(|s| s.duration).sum();
        (frames > 0 && ticks > 0).then(|| frames as f64 * TICKS_PER_SECOND as f64 / ticks as f64)
    }
}
