//! Playlist rendering (RFC 8216bis with the Low-Latency HLS tags): the media playlist of a
//! stream from an [`HlsSnapshot`], and the multivariant playlist from [`Variant`]s.

use std::fmt::Write;
use std::sync::Arc;

use super::names::Resource;
use super::snapshot::{HlsSnapshot, Segment};
use super::time::{format_program_date_time, seconds, seconds_ms};
use super::track::TICKS_PER_SECOND;

/// How to render a media playlist.
#[derive(Debug, Clone, Copy, Default)]
pub struct PlaylistOptions<'a> {
    /// Appended to every URI, e.g. `?sid=abc` (`""` for none). Characters not allowed in a
    /// URI (quotes, `#`, whitespace, control characters, non-ASCII) are dropped.
    pub query: &'a str,
    /// The request had `_HLS_skip=YES`: replace old segments with `EXT-X-SKIP`.
    pub skip: bool,
    /// `EXT-X-RENDITION-REPORT`s of the other renditions (none while there is one).
    pub rendition_reports: &'a [RenditionReport],
    /// Append `EXT-X-ENDLIST` (the stream is over for good; VOD-style output).
    pub end_list: bool,
}

/// The last segment and part of another rendition, for `EXT-X-RENDITION-REPORT`.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct RenditionReport {
    /// URI of that rendition's media playlist, relative to this one.
    pub uri: String,
    pub last_msn: u64,
    pub last_part: Option<u32>,
}

/// One `EXT-X-STREAM-INF` entry of the multivariant playlist.
#[derive(Debug, Clone, PartialEq)]
pub struct Variant {
    /// URI of the media playlist, relative to the multivariant playlist (query included).
    pub uri: String,
    /// Peak bits per second.
    pub bandwidth: u64,
    pub average_bandwidth: Option<u64>,
    /// RFC 6381 codecs, comma-separated.
    pub codecs: String,
    pub resolution: Option<(u32, u32)>,
    pub frame_rate: Option<f64>,
}

/// Keep only characters that may appear unescaped in a URI (RFC 3986 unreserved, sub-delims,
/// `:@/?%`): no quotes, `#`, whitespace or line breaks can reach the playlist.
fn clean_query(q: &str) -> String {
    q.chars().filter(|c| c.is_ascii_alphanumeric() || "-._~!$&'()*+,;=:@/?%".contains(*c)).collect()
}

/// Render a multivariant playlist listing `variants`.
pub fn render_multivariant(variants: &[Variant]) -> String {
    let mut out = String::from("#EXTM3U\n#EXT-X-VERSION:6\n");
    for v in variants {
        let _ = write!(out, "#EXT-X-STREAM-INF:BANDWIDTH={}", v.bandwidth.max(1));
        if let Some(avg) = v.average_bandwidth {
            let _ = write!(out, ",AVERAGE-BANDWIDTH={}", avg.max(1));
        }
        let codecs = clean_query(&v.codecs);
        if !codecs.is_empty() {
            let _ = write!(out, ",CODECS=\"{codecs}\"");
        }
        if let Some((w, h)) = v.resolution {
            let _ = write!(out, ",RESOLUTION={w}x{h}");
        }
        if let Some(fps) = v.frame_rate.filter(|f| f.is_finite() && *f > 0.0) {
            let _ = write!(out, ",FRAME-RATE={fps:.3}");
        }
        let _ = writeln!(out, "\n{}", clean_query(&v.uri));
    }
    out
}

impl HlsSnapshot {
    /// This stream as a multivariant entry whose media playlist is at `uri`; `None` until
    /// an init segment exists.
    pub fn variant(&self, uri: &str) -> Option<Variant> {
        let init = self.current_init()?;
        let (peak, avg) = self.bandwidth();
        Some(Variant {
            uri: uri.to_string(),
            bandwidth: peak,
            average_bandwidth: Some(avg),
            codecs: init.codecs.clone(),
            resolution: init.resolution,
            frame_rate: self.frame_rate(),
        })
    }

    /// This stream's rendition report, for the playlists of other renditions.
    pub fn rendition_report(&self, uri: &str) -> Option<RenditionReport> {
        let (msn, part) = self.last_part()?;
        Some(RenditionReport { uri: uri.to_string(), last_msn: msn, last_part: Some(part) })
    }

    /// Segments a delta update (`_HLS_skip=YES`) replaces with `EXT-X-SKIP`: the leading
    /// completed segments that end at least `CAN-SKIP-UNTIL` (6 target durations) before
    /// the end of the playlist.
    pub fn skippable_segments(&self) -> usize {
        let end = self.playlist_end();
        let boundary = 6 * self.target_duration() * TICKS_PER_SECOND;
        self.segments().iter().take_while(|s| s.start + s.duration + boundary <= end).count()
    }

    /// End of the last part listed, 90 kHz.
    fn playlist_end(&self) -> u64 {
        let open = self.open_segment().filter(|s| !s.parts.is_empty());
        open.or(self.segments().last()).map_or(0, |s| s.start + s.duration)
    }

    /// Render the media playlist.
    pub fn media_playlist(&self, opts: &PlaylistOptions<'_>) -> String {
        let q = clean_query(opts.query);
        let t = self.target_duration();
        let end = self.playlist_end();
        let parts_from = end.saturating_sub(3 * t * TICKS_PER_SECOND);
        let skipped = if opts.skip { self.skippable_segments() } else { 0 };
        let first = self.segments().first().or(self.open_segment());
        let mut out = String::with_capacity(2048);
        let _ = writeln!(out, "#EXTM3U");
        let _ = writeln!(out, "#EXT-X-VERSION:{}", if skipped > 0 { 9 } else { 6 });
        let _ = writeln!(out, "#EXT-X-TARGETDURATION:{t}");
        let pt = self.part_target_ms();
        let _ = writeln!(
            out,
            "#EXT-X-SERVER-CONTROL:CAN-BLOCK-RELOAD=YES,CAN-SKIP-UNTIL={}.0,PART-HOLD-BACK={},HOLD-BACK={}.0",
            6 * t,
            seconds_ms(3 * pt),
            3 * t
        );
        let _ = writeln!(out, "#EXT-X-PART-INF:PART-TARGET={}", seconds_ms(pt));
        let _ =
            writeln!(out, "#EXT-X-MEDIA-SEQUENCE:{}", first.map_or(self.next_part().0, |s| s.msn));
        let _ = writeln!(
            out,
            "#EXT-X-DISCONTINUITY-SEQUENCE:{}",
            first.map_or(0, |s| s.discontinuity_sequence)
        );
        if skipped > 0 {
            let _ = writeln!(out, "#EXT-X-SKIP:SKIPPED-SEGMENTS={skipped}");
        }
        let mut prev_init = None;
        let open = self.open_segment().filter(|s| !s.parts.is_empty());
        let listed = self.segments().iter().chain(open).enumerate().skip(skipped);
        for (i, seg) in listed {
            self.write_segment(&mut out, seg, i == 0, &mut prev_init, parts_from, &q);
        }
        let (msn, index) = self.next_part();
        if !opts.end_list {
            let _ = writeln!(
                out,
                "#EXT-X-PRELOAD-HINT:TYPE=PART,URI=\"{}{q}\"",
                Resource::Part { msn, index }
            );
        }
        for r in opts.rendition_reports {
            let _ = write!(
                out,
                "#EXT-X-RENDITION-REPORT:URI=\"{}\",LAST-MSN={}",
                clean_query(&r.uri),
                r.last_msn
            );
            if let Some(p) = r.last_part {
                let _ = write!(out, ",LAST-PART={p}");
            }
            out.push('\n');
        }
        if opts.end_list {
            out.push_str("#EXT-X-ENDLIST\n");
        }
        out
    }

    fn write_segment(
        &self,
        out: &mut String,
        seg: &Arc<Segment>,
        first_in_playlist: bool,
        prev_init: &mut Option<u32>,
        parts_from: u64,
        q: &str,
    ) {
        if seg.discontinuity && !first_in_playlist {
            out.push_str("#EXT-X-DISCONTINUITY\n");
        }
        if *prev_init != Some(seg.init_id) {
            let _ = writeln!(out, "#EXT-X-MAP:URI=\"{}{q}\"", Resource::Init(seg.init_id));
            *prev_init = Some(seg.init_id);
        }
        if let Some(pdt) = seg.program_date_time_ms {
            let _ = writeln!(out, "#EXT-X-PROGRAM-DATE-TIME:{}", format_program_date_time(pdt));
        }
        if !seg.complete || seg.start + seg.duration > parts_from {
            for p in &seg.parts {
                let _ = write!(
                    out,
                    "#EXT-X-PART:DURATION={},URI=\"{}{q}\"",
                    seconds(p.duration),
                    Resource::Part { msn: p.msn, index: p.index }
                );
                if p.independent {
                    out.push_str(",INDEPENDENT=YES");
                }
                out.push('\n');
            }
        }
        if seg.complete {
            let _ = writeln!(
                out,
                "#EXTINF:{},\n{}{q}",
                seconds(seg.duration),
                Resource::Segment(seg.msn)
            );
        }
    }
}
