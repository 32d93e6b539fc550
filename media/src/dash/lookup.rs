//! Answering requests for DASH objects from an [`HlsSnapshot`]: one track of the segmenter's
//! own fragments, sliced out of the parts (no copy, no remux).

use bytes::Bytes;

use super::names::DashResource;
use crate::hls::{HlsSnapshot, Track};

/// Segments a request may ask for beyond the one being produced (it waits for them).
const ADVANCE_SEGMENTS: u64 = 1;

/// Answer to a request for a [`DashResource`].
#[derive(Debug, Clone, PartialEq)]
pub enum DashLookup {
    Init(Bytes),
    /// A complete segment: its track's fragments, in order (send with `Content-Length`).
    Segment(Vec<Bytes>),
    /// The segment being produced, or the next one: send its fragments as its parts complete
    /// (chunked; see [`growth`]), the low-latency DASH way.
    Growing,
    NotFound,
}

pub fn lookup(snap: &HlsSnapshot, resource: DashResource) -> DashLookup {
    match resource {
        DashResource::Init { track, id } => snap
            .init(id)
            .and_then(|i| i.track(track))
            .map_or(DashLookup::NotFound, |t| DashLookup::Init(t.bytes.clone())),
        DashResource::Segment { track, base, number } => {
            // The name fixes the media sequence number; HLS never reuses one for a stream
            // name, so a name never means two different segments.
            let msn = base.saturating_add(u64::from(number));
            if let Some(seg) = snap.segment(msn) {
                return DashLookup::Segment(
                    seg.parts.iter().map(|p| p.track(track)).filter(|b| !b.is_empty()).collect(),
                );
            }
            let producing = snap.next_part().0;
            if msn >= producing && msn <= producing.saturating_add(ADVANCE_SEGMENTS) {
                DashLookup::Growing
            } else {
                DashLookup::NotFound
            }
        }
    }
}

/// The stream's DASH number base: its wall-clock epoch in tenths of a second, at or below
/// the HLS numbers (which start from the wall clock when the stream does), fixed for the
/// stream's lifetime and the same on every node. An MPD numbers its renditions from the
/// source's base too (they have the source's sequence numbers), so a number means the same
/// instant in every representation. `None` without an epoch or a segment.
pub fn number_base(snap: &HlsSnapshot) -> Option<u64> {
    let first = snap.segments().first().or(snap.open_segment())?;
    let epoch_ms = first.program_date_time_ms?.checked_sub(first.start / 90)?;
    Some(epoch_ms / 100)
}

/// What a growing segment has beyond the `sent` parts already sent.
#[derive(Debug, Clone, PartialEq)]
pub struct Growth {
    /// The track's fragments of the parts completed since (empty ones left out).
    pub chunks: Vec<Bytes>,
    /// Parts now sent (pass as `sent` next time).
    pub sent: usize,
    /// The segment is complete (or will never be): end the response after `chunks`.
    pub done: bool,
    /// It left the window (or never was): whatever was sent of it is not the whole segment.
    pub gone: bool,
}

/// The parts of segment `msn` completed after the first `sent`, for a chunked response.
/// `done` with no chunks and `sent == 0` means it does not exist (any more).
pub fn growth(snap: &HlsSnapshot, track: Track, msn: u64, sent: usize) -> Growth {
    let (parts, done, gone) = if let Some(seg) = snap.segment(msn) {
        (&seg.parts[..], true, false)
    } else if let Some(open) = snap.open_segment().filter(|s| s.msn == msn) {
        (&open.parts[..], false, false)
    } else if msn >= snap.next_part().0 {
        (&[][..], false, false)
    } else {
        (&[][..], true, true)
    };
    let new = parts.get(sent..).unwrap_or(&[]);
    Growth {
        chunks: new.iter().map(|p| p.track(track)).filter(|b| !b.is_empty()).collect(),
        sent: sent.max(parts.len()),
        done,
        gone,
    }
}
