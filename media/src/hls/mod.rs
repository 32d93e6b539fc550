//! HLS and Low-Latency HLS, sans-IO: a CMAF segmenter and playlist renderer.
//!
//! # Data flow
//!
//! The hub feeds every [`MediaMessage`](crate::frame::MediaMessage) of a stream to one
//! [`Segmenter`] ([`Segmenter::push`]). The segmenter parses the FLV tag bodies, builds an
//! init segment from the sequence headers, and cuts the coded frames into partial segments
//! ("parts", one CMAF fragment each: `moof` + `mdat`) and media segments (a segment's bytes
//! are the concatenation of its parts). `push` returns an [`Update`] saying what changed;
//! when it is not empty the server takes a [`Segmenter::snapshot`] (an `Arc`, cheap to clone
//! and share with every viewer task, e.g. in a `tokio::sync::watch`) and wakes blocked
//! requests. Everything a request needs is answered from an [`HlsSnapshot`]:
//!
//! * names: [`Resource::parse`] maps a file name (`init-{id}.mp4`, `seg-{msn}.m4s`,
//!   `part-{msn}.{i}.m4s`) to a resource; [`HlsSnapshot::lookup`] answers it with bytes,
//!   "wait" (it will exist soon: hold the request until the next snapshot) or "not found".
//! * blocking playlist reload: [`HlsSnapshot::reload_status`] for `_HLS_msn`/`_HLS_part`
//!   says `Ready`, `Wait` or `TooFar` (answer 400).
//! * playlists: [`HlsSnapshot::media_playlist`] (with `_HLS_skip=YES` delta updates, a query
//!   suffix such as `?sid=abc` appended to every URI, rendition reports) and
//!   [`render_multivariant`] with [`HlsSnapshot::variant`].
//!
//! # Determinism
//!
//! The output is a pure function of the input messages and the [`HlsConfig`]: cut points,
//! media sequence numbers, part indices, init ids, fragment sequence numbers and every byte.
//! Program date-times are `stream_epoch_ms + media time` (the origin stamps the epoch), never
//! a local clock. Media time is the FLV timestamp (unwrapped to 64 bits, so tfdt = timestamp
//! x 90 for video): the hub rebases timestamps so a returning publisher continues where the
//! last one stopped.
//!
//! # Publisher reconnects and codec changes
//!
//! Call [`Segmenter::end_of_stream`] when the publisher leaves: the open segment is finished,
//! and the next segment carries `EXT-X-DISCONTINUITY`. Numbering simply keeps counting in the
//! same `Segmenter`; media time after the break never goes below the end of what was already
//! output (timestamps that jump back are shifted forward). A sequence header that differs
//! from the current one (new resolution or codec) does the same and produces a new init
//! segment (`init-{id+1}.mp4`, a new `EXT-X-MAP`). A process that must continue another
//! segmenter's numbering passes [`Segmenter::resume_point`] of the old one as
//! [`HlsConfig::resume`].
//!
//! # Limits
//!
//! Memory per stream is bounded by `(window_segments + 1) * max_segment_bytes` plus one part
//! of queued audio. A sample larger than `max_part_bytes` is dropped (and video then waits
//! for the next keyframe); a segment reaching `max_segment_bytes` is cut at the next frame.

pub(crate) mod boxes;
mod fragment;
mod init;
mod names;
mod playlist;
mod segmenter;
mod snapshot;
mod stamp;
mod time;
mod track;

use crate::codec::CodecError;

pub use names::{Resource, MEDIA_PLAYLIST_NAME};
pub use playlist::{render_multivariant, PlaylistOptions, RenditionReport, Variant};
pub use segmenter::Segmenter;
pub use snapshot::{HlsSnapshot, InitSegment, Lookup, Part, ReloadStatus, Segment, Track};
pub use stamp::SegmentStamp;
pub use time::format_program_date_time;
pub use track::{AudioConfig, AudioFormat, VideoConfig, VideoFormat, TICKS_PER_SECOND};

/// Segmenter settings. All durations in milliseconds (integers keep the output exact).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct HlsConfig {
    /// Target media segment duration. Segments are cut at the first keyframe at or after
    /// 90 % of it; a longer keyframe interval gives longer segments (and a larger, truthful
    /// `EXT-X-TARGETDURATION`). Default 2000.
    pub target_duration_ms: u32,
    /// Part target (`PART-TARGET`); parts never exceed it unless one frame alone is longer
    /// (sparse video), in which case the rendered `PART-TARGET` grows to the longest part so
    /// far, as `EXT-X-TARGETDURATION` does. Default 500; clamped to 100..=target_duration_ms.
    pub part_target_ms: u32,
    /// Completed segments kept (and listed) in the window. Default 8; at least 3.
    pub window_segments: usize,
    /// Largest part; a bigger sample is dropped. Default 4 MiB.
    pub max_part_bytes: usize,
    /// A segment reaching this size is cut at the next frame. Default 16 MiB.
    pub max_segment_bytes: usize,
    /// Wall-clock milliseconds since the Unix epoch that correspond to media timestamp 0
    /// (stamped by the origin). `None`: no `EXT-X-PROGRAM-DATE-TIME`.
    pub stream_epoch_ms: Option<u64>,
    /// Continue the numbering of an earlier segmenter (see [`ResumePoint`]).
    pub resume: Option<ResumePoint>,
}

impl Default for HlsConfig {
    fn default() -> Self {
        HlsConfig {
            target_duration_ms: 2000,
            part_target_ms: 500,
            window_segments: 8,
            max_part_bytes: 4 << 20,
            max_segment_bytes: 16 << 20,
            stream_epoch_ms: None,
            resume: None,
        }
    }
}

/// Where a segmenter's numbering stands; a new segmenter configured with it continues with
/// higher numbers, a discontinuity, and media time not below `min_time_ms`.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub struct ResumePoint {
    pub next_msn: u64,
    pub discontinuity_sequence: u64,
    pub next_init_id: u32,
    pub next_fragment_sequence: u32,
    pub min_time_ms: u64,
}

/// What one [`Segmenter::push`] changed. Take a new snapshot when it is not empty.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub struct Update {
    /// A new init segment exists (stream start, codec or resolution change).
    pub init: bool,
    /// Parts completed.
    pub parts: u32,
    /// Media segments completed.
    pub segments: u32,
}

impl Update {
    pub fn is_empty(&self) -> bool {
        !self.init && self.parts == 0 && self.segments == 0
    }

    pub(crate) fn merge(&mut self, other: Update) {
        self.init |= other.init;
        self.parts += other.parts;
        self.segments += other.segments;
    }
}

/// Why a message was refused. The segmenter's state is unchanged; later messages are fine.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum HlsError {
    #[error("codec: {0}")]
    Codec(#[from] CodecError),
    #[error("malformed: {0}")]
    Malformed(&'static str),
    #[error("not supported for HLS: {0}")]
    Unsupported(&'static str),
    #[error("sample of {size} bytes exceeds the part limit of {limit}")]
    SampleTooLarge { size: usize, limit: usize },
}
