//! MPEG-DASH, sans-IO: a live MPD and the DASH objects of a stream, from the HLS segmenter's
//! output.
//!
//! The segmenter writes each part as one CMAF fragment per track, back to back (see
//! [`crate::hls`]): HLS serves them together, DASH serves each track's fragments alone (the
//! non-multiplexed representations DASH-IF IOP requires), as slices of the same buffers.
//! Segment numbers, times and bytes are the HLS ones, so every node's DASH is identical too.
//!
//! * [`render_mpd`]: the MPD of a stream and its renditions ([`mpd`] says how it is built).
//! * [`DashResource::parse`] names an object; [`lookup`] answers it from a snapshot, and
//!   [`growth`] feeds a chunked response for the segment being produced (low-latency DASH).

mod lookup;
mod mpd;
mod names;

pub use lookup::{growth, lookup, number_base, DashLookup, Growth};
pub use mpd::{render_mpd, DashStream, MpdOptions};
pub use names::DashResource;

/// Content type of an MPD.
pub const MPD_TYPE: &str = "application/dash+xml";
