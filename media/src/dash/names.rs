//! File names of a stream's MPEG-DASH objects, next to its HLS ones in the stream's directory:
//! `dash-v-init-{id}.mp4`, `dash-a-init-{id}.mp4`, `dash-v-{base}-{number}.m4s`,
//! `dash-a-{base}-{number}.m4s`.
//!
//! A segment's HLS media sequence number is `base + number`. DASH numbers are 32-bit
//! (`startNumber` is an `xs:unsignedInt`, and players keep them so) while HLS numbers start
//! from the wall clock (so that a name published again never reuses a cached object name);
//! the base, fixed for a stream's lifetime, carries the difference and keeps names unique.

use std::fmt;

use crate::hls::Track;

/// A DASH object of a stream: one track's init segment or media segment.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub enum DashResource {
    Init { track: Track, id: u32 },
    Segment { track: Track, base: u64, number: u32 },
}

impl DashResource {
    /// Parse a file name (no directory, no query). Numbers are plain decimal with no leading
    /// zeros (one name per object), at most 20 digits.
    pub fn parse(name: &str) -> Option<DashResource> {
        let rest = name.strip_prefix("dash-")?;
        let (track, rest) = match rest.split_at_checked(2)? {
            ("v-", r) => (Track::Video, r),
            ("a-", r) => (Track::Audio, r),
            _ => return None,
        };
        if let Some(id) = rest.strip_prefix("init-").and_then(|s| s.strip_suffix(".mp4")) {
            return Some(DashResource::Init { track, id: number(id)? });
        }
        let (base, n) = rest.strip_suffix(".m4s")?.split_once('-')?;
        Some(DashResource::Segment { track, base: number(base)?, number: number(n)? })
    }

    pub fn content_type(&self) -> &'static str {
        match self {
            DashResource::Init { track: Track::Video, .. }
            | DashResource::Segment { track: Track::Video, .. } => "video/mp4",
            _ => "audio/mp4",
        }
    }
}

fn letter(track: Track) -> char {
    match track {
        Track::Video => 'v',
        Track::Audio => 'a',
    }
}

/// The `SegmentTemplate@media` of a track: `dash-v-{base}-$Number$.m4s`.
pub(crate) fn media_template(track: Track, base: u64) -> String {
    format!("dash-{}-{base}-$Number$.m4s", letter(track))
}

fn number<T: std::str::FromStr>(s: &str) -> Option<T> {
    let ok = !s.is_empty()
        && s.len() <= 20
        && s.bytes().all(|b| b.is_ascii_digit())
        && (s == "0" || !s.starts_with('0'));
    ok.then(|| s.parse().ok()).flatten()
}

impl fmt::Display for DashResource {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            DashResource::Init { track, id } => write!(f, "dash-{}-init-{id}.mp4", letter(*track)),
            DashResource::Segment { track, base, number } => {
                write!(f, "dash-{}-{base}-{number}.m4s", letter(*track))
            }
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn round_trip_and_rejects() {
        for r in [
            DashResource::Init { track: Track::Video, id: 0 },
            DashResource::Init { track: Track::Audio, id: 12 },
            DashResource::Segment { track: Track::Video, base: 17_000_000_000, number: 7 },
            DashResource::Segment { track: Track::Audio, base: 0, number: u32::MAX },
        ] {
            assert_eq!(DashResource::parse(&r.to_string()), Some(r));
        }
        for bad in [
            "dash-x-1-1.m4s",
            "dash-v-1-01.m4s",
            "dash-v-1.m4s",
            "dash-v-1-4294967296.m4s",
            "dash-v-init-1.m4s",
            "dash-v-1.mp4",
            "dash-v-.m4s",
            "dash-v--1.m4s",
            "dash-a-init-.mp4",
            "dash-",
            "dash-v",
            "seg-1.m4s",
            "dash-v-99999999999999999999.m4s",
        ] {
            assert_eq!(DashResource::parse(bad), None, "{bad}");
        }
        assert_eq!(media_template(Track::Audio, 5), "dash-a-5-$Number$.m4s");
    }
}
