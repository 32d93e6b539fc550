//! File names of the HLS resources of one stream, relative to the media playlist.

use std::fmt;

/// Name of the media playlist (the multivariant playlist points at it).
pub const MEDIA_PLAYLIST_NAME: &str = "index.m3u8";

/// A resource of a stream, named `init-{id}.mp4`, `seg-{msn}.m4s` or `part-{msn}.{i}.m4s`.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub enum Resource {
    Init(u32),
    Segment(u64),
    Part { msn: u64, index: u32 },
}

impl Resource {
    /// Parse a file name (no directory, no query). Numbers are plain decimal: no sign, no
    /// leading zeros (so each resource has exactly one name), at most 20 digits.
    pub fn parse(name: &str) -> Option<Resource> {
        if let Some(id) = name.strip_prefix("init-").and_then(|s| s.strip_suffix(".mp4")) {
            return Some(Resource::Init(number(id)?));
        }
        if let Some(msn) = name.strip_prefix("seg-").and_then(|s| s.strip_suffix(".m4s")) {
            return Some(Resource::Segment(number(msn)?));
        }
        let rest = name.strip_prefix("part-")?.strip_suffix(".m4s")?;
        let (msn, index) = rest.split_once('.')?;
        Some(Resource::Part { msn: number(msn)?, index: number(index)? })
    }

    /// The HTTP content type.
    pub fn content_type(&self) -> &'static str {
        "video/mp4"
    }
}

fn number<T: std::str::FromStr>(s: &str) -> Option<T> {
    let ok = !s.is_empty()
        && s.len() <= 20
        && s.bytes().all(|b| b.is_ascii_digit())
        && (s == "0" || !s.starts_with('0'));
    ok.then(|| s.parse().ok()).flatten()
}

impl fmt::Display for Resource {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            Resource::Init(id) => write!(f, "init-{id}.mp4"),
            Resource::Segment(msn) => write!(f, "seg-{msn}.m4s"),
            Resource::Part { msn, index } => write!(f, "part-{msn}.{index}.m4s"),
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn round_trip_and_rejects() {
        for r in [
            Resource::Init(0),
            Resource::Init(7),
            Resource::Segment(123),
            Resource::Part { msn: 5, index: 0 },
            Resource::Part { msn: u64::MAX, index: u32::MAX },
        ] {
            assert_eq!(Resource::parse(&r.to_string()), Some(r));
        }
        for bad in [
            "init-.mp4",
            "init-01.mp4",
            "init-1.m4s",
            "seg--1.m4s",
            "seg-+1.m4s",
            "seg-1.m4s?x",
            "part-1.m4s",
            "part-1.2.3.m4s",
            "part-1.99999999999.m4s",
            "seg-99999999999999999999.m4s",
            "index.m3u8",
            "",
        ] {
            assert_eq!(Resource::parse(bad), None, "{bad}");
        }
    }
}
