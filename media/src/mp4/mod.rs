//! Progressive ("faststart") MP4 from a CMAF recording, sans-IO and without copying media.
//!
//! A recording is what the HLS segmenter wrote: init segments (`init-N.mp4`: `ftyp` + `moov`
//! with empty sample tables and `mvex`) and media segments (`seg-N.m4s`: one or more
//! `moof` + `mdat` fragments). This module describes one ordinary MP4 made of them: `ftyp`,
//! a `moov` with complete sample tables, then one `mdat` whose payload is byte ranges of the
//! segment files, in order. The caller streams it (and answers Range requests) by sending
//! [`Layout::slices`]: parts of [`Layout::head`] and ranges of its own files.
//!
//! # Use
//!
//! 1. [`parse_init`] each init segment and [`Builder::push_init`] it under its id.
//! 2. For each segment, in playback order: [`parse_segment`] (with the init it needs), then
//!    [`Builder::push_segment`] with the caller's index of that file (`source`).
//! 3. [`Builder::finish`] gives the [`Layout`]; [`Layout::encode`] stores it beside the
//!    recording, [`Layout::decode`] reads it back, so it is built once.
//!
//! # Output
//!
//! * Tracks: every track id that has samples, in id order; each takes its headers (`tkhd`,
//!   `mdhd`, `hdlr`, `minf` boxes other than `stbl`) from the first init segment that brought
//!   it. A later init whose sample entry differs (codec or resolution change) adds a further
//!   `stsd` entry, which its chunks point at, so the file stays one playable track. A later
//!   init with another timescale for the track has its times rescaled.
//! * Timing: each run starts at its `tfdt`. A gap after the previous sample lengthens that
//!   sample; a step back shortens it (to at least one tick) and the run then continues from
//!   its end, so decode times only increase. Each track's timeline starts at its first
//!   sample; an edit list starts presentation at the first sample's composition time, and
//!   a track that starts later than the first one begins with an empty edit, so tracks stay
//!   in sync. `mvex` is dropped.
//! * One chunk per run; `stco`, or `co64` when an offset needs it; a 64-bit `mdat` header
//!   when the payload needs it.
//!
//! # Trust
//!
//! Inputs come from storage and are parsed defensively: every read is bounds-checked, errors
//! are [`Mp4Error`]s, nothing panics, and no allocation is sized by a length field beyond
//! what the bytes present can hold. Forms our writer never produces but are cheap to accept
//! are accepted (64-bit box sizes, `trun` without optional fields falling back to `tfhd` and
//! `trex` defaults, several `trun`s per `traf`); several sample descriptions in one init and
//! encrypted tracks are refused.

mod build;
mod layout;
mod moov;
mod parse;
mod reader;

#[cfg(test)]
mod tests;
#[cfg(test)]
mod tests_ffmpeg;
#[cfg(test)]
mod tests_synthetic;

pub use build::Builder;
pub use layout::{Layout, Piece, Slice};
pub use parse::{parse_init, parse_segment, InitInfo, TrackInfo};

/// One sample of a track run.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct SampleInfo {
    /// In the track's timescale.
    pub duration: u32,
    /// Bytes.
    pub size: u32,
    /// A sync sample (keyframe).
    pub sync: bool,
    /// Composition time minus decode time, in the track's timescale.
    pub cts_offset: i32,
}

/// The samples of one `trun` of a fragment, with where their data is in the segment file.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Run {
    pub track_id: u32,
    /// Decode time of the first sample (`tfdt`, plus earlier runs of the same `traf`), in the
    /// track's timescale.
    pub base_dts: u64,
    pub samples: Vec<SampleInfo>,
    /// Offset of the first sample's data in the segment file; the samples follow each other.
    pub data_offset: u64,
}

impl Run {
    /// Bytes of sample data (saturating; the parser checks it fits the file).
    pub fn data_len(&self) -> u64 {
        self.samples.iter().fold(0u64, |a, s| a.saturating_add(u64::from(s.size)))
    }
}

/// Why an input or a stored layout was refused.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum Mp4Error {
    #[error("truncated: {0}")]
    Truncated(&'static str),
    #[error("malformed: {0}")]
    Malformed(&'static str),
    #[error("not supported: {0}")]
    Unsupported(&'static str),
    #[error("too large: {0}")]
    TooLarge(&'static str),
    #[error("init segment {0} was not pushed")]
    UnknownInit(u32),
    #[error("init segment {0} was already pushed")]
    DuplicateInit(u32),
    #[error("track {0} is not in the init segment")]
    UnknownTrack(u32),
    #[error("no samples")]
    NoSamples,
}
