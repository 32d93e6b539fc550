//! The parts of HLS playlists (RFC 8216bis with the Low-Latency extension) an LL-HLS client
//! needs: the first variant of a multivariant playlist, and from a media playlist the init
//! segment (`EXT-X-MAP`), the parts (`EXT-X-PART`) with their position (media sequence number,
//! index in the segment), the preload hint (`EXT-X-PRELOAD-HINT`) and the part target.
//!
//! Positions are derived from the playlist's structure, as a player does, never from URI
//! names: a part belongs to the segment whose `EXTINF` follows it; the first segment has the
//! number in `EXT-X-MEDIA-SEQUENCE` (plus `EXT-X-SKIP`'s skipped segments).

use thiserror::Error;

/// Largest playlist the client accepts (bytes).
pub const MAX_PLAYLIST: usize = 256 * 1024;

#[derive(Debug, Clone, PartialEq, Eq, Error)]
pub enum PlaylistError {
    #[error("playlist does not start with #EXTM3U")]
    NotM3u,
    #[error("multivariant playlist lists no variant")]
    NoVariant,
    #[error("malformed {0}")]
    BadTag(&'static str),
    #[error("playlist is not UTF-8")]
    NotUtf8,
}

/// Where a part sits in the stream: (media sequence number, index within its segment).
pub type PartKey = (u64, u32);

/// One `EXT-X-PART` (or the preload hint).
#[derive(Debug, Clone, PartialEq)]
pub struct PartRef {
    pub key: PartKey,
    pub uri: String,
    /// Seconds (0 for the preload hint).
    pub duration: f64,
    pub independent: bool,
}

/// What the client uses from one media playlist.
#[derive(Debug, Clone, Default, PartialEq)]
pub struct MediaPlaylist {
    pub media_sequence: u64,
    /// `EXT-X-PART-INF:PART-TARGET`, seconds.
    pub part_target: Option<f64>,
    pub can_block_reload: bool,
    /// URI of the last `EXT-X-MAP` (the init segment of the newest media).
    pub map_uri: Option<String>,
    /// Every listed part, oldest first.
    pub parts: Vec<PartRef>,
    /// The next part (`TYPE=PART` preload hint), positioned after the last listed part.
    pub preload_hint: Option<PartRef>,
    /// Number of complete segments (`EXTINF`) listed, skipped ones included.
    pub segments: u64,
    pub end_list: bool,
}

impl MediaPlaylist {
    /// The newest part a player can start decoding at: the last `INDEPENDENT=YES` part, or the
    /// first listed part when no part says so.
    pub fn start_part(&self) -> Option<&PartRef> {
        self.parts.iter().rev().find(|p| p.independent).or(self.parts.first())
    }
}

fn text(body: &[u8]) -> Result<&str, PlaylistError> {
    let text = std::str::from_utf8(body).map_err(|_| PlaylistError::NotUtf8)?;
    let text = text.trim_start_matches('\u{feff}');
    if !text.starts_with("#EXTM3U") {
        return Err(PlaylistError::NotM3u);
    }
    Ok(text)
}

/// The URI of the first `EXT-X-STREAM-INF` variant of a multivariant playlist.
pub fn first_variant(body: &[u8]) -> Result<String, PlaylistError> {
    let mut after_stream_inf = false;
    for line in text(body)?.lines().map(str::trim) {
        if line.starts_with("#EXT-X-STREAM-INF:") {
            after_stream_inf = true;
        } else if after_stream_inf && !line.is_empty() && !line.starts_with('#') {
            return Ok(line.to_string());
        }
    }
    Err(PlaylistError::NoVariant)
}

/// Split an attribute list (`A=1,B="x,y",C=YES`) into (name, value) pairs, quotes removed.
pub fn attributes(list: &str) -> Vec<(&str, &str)> {
    let mut out = Vec::new();
    let mut rest = list;
    while !rest.is_empty() {
        let Some((name, after)) = rest.split_once('=') else {
            break;
        };
        let (value, tail) = if let Some(quoted) = after.strip_prefix('"') {
            match quoted.split_once('"') {
                Some((value, tail)) => (value, tail),
                None => (quoted, ""),
            }
        } else {
            after.split_once(',').map_or((after, ""), |(v, t)| (v, t))
        };
        out.push((name.trim(), value));
        // After a quoted value `tail` starts at its comma (or is empty).
        rest = tail.trim_start_matches(',').trim_start();
    }
    out
}

fn attr<'a>(list: &[(&str, &'a str)], name: &str) -> Option<&'a str> {
    list.iter().find(|(n, _)| *n == name).map(|(_, v)| *v)
}

/// Parse a media playlist.
pub fn parse_media(body: &[u8]) -> Result<MediaPlaylist, PlaylistError> {
    let mut pl = MediaPlaylist::default();
    // Position of the segment being listed, and parts seen in it so far.
    let mut msn: Option<u64> = None;
    let mut skipped = 0u64;
    let mut index = 0u32;
    let mut expect_uri = false;
    let mut hint_uri = None;
    for line in text(body)?.lines().map(str::trim) {
        if line.is_empty() {
            continue;
        }
        let current = |msn: Option<u64>, seq: u64, skipped: u64| {
            msn.unwrap_or_else(|| seq.saturating_add(skipped))
        };
        if let Some(v) = line.strip_prefix("#EXT-X-MEDIA-SEQUENCE:") {
            pl.media_sequence =
                v.trim().parse().map_err(|_| PlaylistError::BadTag("EXT-X-MEDIA-SEQUENCE"))?;
        } else if let Some(v) = line.strip_prefix("#EXT-X-PART-INF:") {
            pl.part_target = attr(&attributes(v), "PART-TARGET").and_then(|t| t.parse().ok());
        } else if let Some(v) = line.strip_prefix("#EXT-X-SERVER-CONTROL:") {
            pl.can_block_reload = attr(&attributes(v), "CAN-BLOCK-RELOAD") == Some("YES");
        } else if let Some(v) = line.strip_prefix("#EXT-X-SKIP:") {
            skipped = attr(&attributes(v), "SKIPPED-SEGMENTS")
                .and_then(|n| n.parse().ok())
                .ok_or(PlaylistError::BadTag("EXT-X-SKIP"))?;
            pl.segments = pl.segments.saturating_add(skipped);
        } else if let Some(v) = line.strip_prefix("#EXT-X-MAP:") {
            let uri = attr(&attributes(v), "URI").ok_or(PlaylistError::BadTag("EXT-X-MAP"))?;
            pl.map_uri = Some(uri.to_string());
        } else if let Some(v) = line.strip_prefix("#EXT-X-PART:") {
            let attrs = attributes(v);
            let uri = attr(&attrs, "URI").ok_or(PlaylistError::BadTag("EXT-X-PART"))?;
            let seg = current(msn, pl.media_sequence, skipped);
            msn = Some(seg);
            pl.parts.push(PartRef {
                key: (seg, index),
                uri: uri.to_string(),
                duration: attr(&attrs, "DURATION").and_then(|d| d.parse().ok()).unwrap_or(0.0),
                independent: attr(&attrs, "INDEPENDENT") == Some("YES"),
            });
            index = index.saturating_add(1);
        } else if line.starts_with("#EXTINF:") {
            expect_uri = true;
        } else if let Some(v) = line.strip_prefix("#EXT-X-PRELOAD-HINT:") {
            let attrs = attributes(v);
            if attr(&attrs, "TYPE") == Some("PART") {
                hint_uri = attr(&attrs, "URI").map(str::to_string);
            }
        } else if line.starts_with("#EXT-X-ENDLIST") {
            pl.end_list = true;
        } else if !line.starts_with('#') && expect_uri {
            // The URI of a complete segment: the next parts belong to the next segment.
            expect_uri = false;
            let seg = current(msn, pl.media_sequence, skipped);
            msn = Some(seg.saturating_add(1));
            index = 0;
            pl.segments = pl.segments.saturating_add(1);
        }
    }
    if let Some(uri) = hint_uri {
        let seg = msn.unwrap_or_else(|| pl.media_sequence.saturating_add(skipped));
        pl.preload_hint =
            Some(PartRef { key: (seg, index), uri, duration: 0.0, independent: false });
    }
    Ok(pl)
}

/// Resolve `uri` (as written in a playlist) against the path of the playlist that listed it.
/// Absolute `http://host/path` URIs keep only their path (the client talks to one server);
/// `../` is not interpreted (Sluice never writes it).
pub fn resolve(base_path: &str, uri: &str) -> String {
    if let Some(rest) = uri.strip_prefix("http://").or_else(|| uri.strip_prefix("https://")) {
        return rest.find('/').map_or_else(|| "/".to_string(), |at| rest[at..].to_string());
    }
    if uri.starts_with('/') {
        return uri.to_string();
    }
    let base = base_path.split('?').next().unwrap_or(base_path);
    let dir = base.rfind('/').map_or("/", |at| &base[..=at]);
    format!("{dir}{uri}")
}

/// Append `extra` (`k=v&k2=v2`) to the query of `path`.
pub fn with_query(path: &str, extra: &str) -> String {
    let sep = if path.contains('?') { '&' } else { '?' };
    format!("{path}{sep}{extra}")
}

/// The blocking-reload URL of a media playlist for part `key`.
pub fn blocking_reload(path: &str, key: PartKey) -> String {
    with_query(path, &format!("_HLS_msn={}&_HLS_part={}", key.0, key.1))
}

#[cfg(test)]
mod tests {
    use super::*;

    /// A playlist as Sluice's origin renders it (parts listed for the last segments only,
    /// an open segment with two parts, the preload hint naming the third).
    const SLUICE_MEDIA: &str = "#EXTM3U
#EXT-X-VERSION:6
#EXT-X-TARGETDURATION:2
#EXT-X-SERVER-CONTROL:CAN-BLOCK-RELOAD=YES,CAN-SKIP-UNTIL=12.0,PART-HOLD-BACK=1.5,HOLD-BACK=6.0
#EXT-X-PART-INF:PART-TARGET=0.5
#EXT-X-MEDIA-SEQUENCE:41
#EXT-X-DISCONTINUITY-SEQUENCE:0
#EXT-X-MAP:URI=\"init-0.mp4?sid=0123456789abcdef\"
#EXT-X-PROGRAM-DATE-TIME:2026-11-26T10:00:00.000Z
#EXTINF:2.00000,
seg-41.m4s?sid=0123456789abcdef
#EXT-X-PROGRAM-DATE-TIME:2026-11-26T10:00:02.000Z
#EXT-X-PART:DURATION=0.50000,URI=\"part-42.0.m4s?sid=0123456789abcdef\",INDEPENDENT=YES
#EXT-X-PART:DURATION=0.50000,URI=\"part-42.1.m4s?sid=0123456789abcdef\"
#EXT-X-PART:DURATION=0.50000,URI=\"part-42.2.m4s?sid=0123456789abcdef\"
#EXT-X-PART:DURATION=0.50000,URI=\"part-42.3.m4s?sid=0123456789abcdef\"
#EXTINF:2.00000,
seg-42.m4s?sid=0123456789abcdef
#EXT-X-PROGRAM-DATE-TIME:2026-11-26T10:00:04.000Z
#EXT-X-PART:DURATION=0.50000,URI=\"part-43.0.m4s?sid=0123456789abcdef\",INDEPENDENT=YES
#EXT-X-PART:DURATION=0.50000,URI=\"part-43.1.m4s?sid=0123456789abcdef\"
#EXT-X-PRELOAD-HINT:TYPE=PART,URI=\"part-43.2.m4s?sid=0123456789abcdef\"
";

    #[test]
    fn sluice_media_playlist() {
        let pl = parse_media(SLUICE_MEDIA.as_bytes()).unwrap();
        assert_eq!(pl.media_sequence, 41);
        assert_eq!(pl.part_target, Some(0.5));
        assert!(pl.can_block_reload);
        assert_eq!(pl.map_uri.as_deref(), Some("init-0.mp4?sid=0123456789abcdef"));
        assert_eq!(pl.segments, 2);
        let keys: Vec<PartKey> = pl.parts.iter().map(|p| p.key).collect();
        assert_eq!(keys, vec![(42, 0), (42, 1), (42, 2), (42, 3), (43, 0), (43, 1)]);
        // Structural positions agree with Sluice's names.
        for p in &pl.parts {
            assert!(p.uri.starts_with(&format!("part-{}.{}.m4s", p.key.0, p.key.1)));
            assert_eq!(p.duration, 0.5);
        }
        let hint = pl.preload_hint.as_ref().unwrap();
        assert_eq!(hint.key, (43, 2));
        assert_eq!(hint.uri, "part-43.2.m4s?sid=0123456789abcdef");
        assert_eq!(pl.start_part().unwrap().key, (43, 0));
        assert!(!pl.end_list);
    }

    #[test]
    fn hint_after_a_complete_segment_is_next_segment_part_zero() {
        let body = "#EXTM3U\n#EXT-X-MEDIA-SEQUENCE:7\n\
            #EXT-X-PART:DURATION=0.4,URI=\"a.m4s\",INDEPENDENT=YES\n\
            #EXT-X-PART:DURATION=0.3,URI=\"b.m4s\"\n#EXTINF:0.7,\nseg7.m4s\n\
            #EXT-X-PRELOAD-HINT:TYPE=PART,URI=\"c.m4s\"\n";
        let pl = parse_media(body.as_bytes()).unwrap();
        assert_eq!(pl.parts[1].key, (7, 1));
        assert_eq!(pl.preload_hint.unwrap().key, (8, 0));
        // No parts yet: the hint is part 0 of the first segment.
        let pl = parse_media(
            b"#EXTM3U\n#EXT-X-MEDIA-SEQUENCE:3\n#EXT-X-PRELOAD-HINT:TYPE=PART,URI=\"x\"\n",
        )
        .unwrap();
        assert_eq!(pl.preload_hint.as_ref().unwrap().key, (3, 0));
        assert_eq!(pl.start_part(), None);
    }

    #[test]
    fn delta_update_counts_skipped_segments() {
        let body = "#EXTM3U\n#EXT-X-VERSION:9\n#EXT-X-MEDIA-SEQUENCE:10\n\
            #EXT-X-SKIP:SKIPPED-SEGMENTS=3\n#EXTINF:2,\nseg-13.m4s\n\
            #EXT-X-PART:DURATION=0.5,URI=\"part-14.0.m4s\",INDEPENDENT=YES\n";
        let pl = parse_media(body.as_bytes()).unwrap();
        assert_eq!(pl.segments, 4);
        assert_eq!(pl.parts[0].key, (14, 0));
        assert!(parse_media(b"#EXTM3U\n#EXT-X-SKIP:SKIPPED-SEGMENTS=x\n").is_err());
    }

    #[test]
    fn rejects_and_tolerates() {
        assert_eq!(parse_media(b"HTTP/1.1 200"), Err(PlaylistError::NotM3u));
        assert_eq!(parse_media(&[0xff, 0xfe]), Err(PlaylistError::NotUtf8));
        assert_eq!(
            parse_media(b"#EXTM3U\n#EXT-X-MEDIA-SEQUENCE:-1\n"),
            Err(PlaylistError::BadTag("EXT-X-MEDIA-SEQUENCE"))
        );
        assert_eq!(
            parse_media(b"#EXTM3U\n#EXT-X-PART:DURATION=1\n"),
            Err(PlaylistError::BadTag("EXT-X-PART"))
        );
        // Unknown tags, blank lines and a BYTERANGE preload hint are ignored.
        let pl = parse_media(
            b"#EXTM3U\n\n#EXT-X-FOO:1\n#EXT-X-PRELOAD-HINT:TYPE=MAP,URI=\"i.mp4\"\n#EXT-X-ENDLIST\n",
        )
        .unwrap();
        assert_eq!(pl.preload_hint, None);
        assert!(pl.end_list);
    }

    #[test]
    fn multivariant() {
        let body = "#EXTM3U\n#EXT-X-VERSION:6\n\
            #EXT-X-STREAM-INF:BANDWIDTH=2700000,CODECS=\"avc1.42c01f,mp4a.40.2\",RESOLUTION=1280x720\n\
            bench/index.m3u8?sid=00112233aabbccdd\n";
        assert_eq!(
            first_variant(body.as_bytes()).unwrap(),
            "bench/index.m3u8?sid=00112233aabbccdd"
        );
        assert_eq!(first_variant(b"#EXTM3U\n#EXT-X-VERSION:6\n"), Err(PlaylistError::NoVariant));
    }

    #[test]
    fn attribute_lists() {
        assert_eq!(
            attributes("BANDWIDTH=1,CODECS=\"a,b\",RESOLUTION=1x2,X=\"\""),
            vec![("BANDWIDTH", "1"), ("CODECS", "a,b"), ("RESOLUTION", "1x2"), ("X", "")]
        );
        assert_eq!(attributes("URI=\"unterminated"), vec![("URI", "unterminated")]);
        assert_eq!(attributes("garbage"), Vec::<(&str, &str)>::new());
    }

    #[test]
    fn uri_resolution() {
        assert_eq!(
            resolve("/live/bench.m3u8", "bench/index.m3u8?sid=1"),
            "/live/bench/index.m3u8?sid=1"
        );
        assert_eq!(
            resolve("/live/bench/index.m3u8?sid=1", "part-3.1.m4s?sid=1"),
            "/live/bench/part-3.1.m4s?sid=1"
        );
        assert_eq!(resolve("/a/b.m3u8", "/x/y.m4s"), "/x/y.m4s");
        assert_eq!(resolve("/a/b.m3u8", "http://h:1/x/y.m4s?q"), "/x/y.m4s?q");
        assert_eq!(
            blocking_reload("/live/bench/index.m3u8?sid=1", (5, 2)),
            "/live/bench/index.m3u8?sid=1&_HLS_msn=5&_HLS_part=2"
        );
        assert_eq!(with_query("/p.m3u8", "a=1"), "/p.m3u8?a=1");
    }
}
