//! The live MPD (ISO/IEC 23009-1, DASH-IF IOP live profile with the low-latency additions)
//! of a stream and its renditions, rendered from their [`HlsSnapshot`]s.
//!
//! * One Period (`p{init id}` of the source), starting at 0: `availabilityStartTime` is the
//!   stream's wall-clock epoch (media time 0), so the presentation time is the media time
//!   and `presentationTimeOffset` is 0. A codec or resolution change gives a new init and
//!   so a new Period id: players re-initialise. Segments of older inits are not listed.
//! * A video AdaptationSet with the source and each rendition as Representations, and an
//!   audio AdaptationSet with the source's audio (non-multiplexed tracks, as DASH-IF IOP
//!   requires and dash.js expects).
//! * `SegmentTemplate` with `$Number$` (the HLS media sequence number) and a
//!   `SegmentTimeline` of the window, in the 90 kHz media clock.
//! * Low latency: the segment being produced is listed with a nominal duration and the
//!   template has `availabilityTimeOffset` (segment target minus part target) and
//!   `availabilityTimeComplete="false"`: a client may ask for it once its first part exists
//!   and the server sends its fragments as they are made (chunked). `ServiceDescription`
//!   gives the latency target and `UTCTiming` the server's clock (`direct`, in the MPD).

use std::fmt::Write;

use super::names::media_template;
use super::{number_base, DashResource};
use crate::hls::{format_program_date_time, HlsSnapshot, Segment, Track, TICKS_PER_SECOND};

/// One stream of the MPD: the source or a rendition.
#[derive(Debug, Clone, Copy)]
pub struct DashStream<'a> {
    /// The stream's directory relative to the MPD (its name: `cam`, `cam_480p`).
    pub base: &'a str,
    pub snapshot: &'a HlsSnapshot,
    /// Appended to each of its object URLs, e.g. `?sid=abc` (`""` for none). Characters
    /// not allowed in a URL are dropped.
    pub query: &'a str,
}

/// How to render the MPD.
#[derive(Debug, Clone, Copy, Default)]
pub struct MpdOptions<'a> {
    /// Wall clock now, ms since the Unix epoch (`publishTime`, `UTCTiming`).
    pub now_ms: u64,
    /// Where to refresh the MPD (`Location`), relative to it: `cam.mpd?sid=abc`.
    pub location: Option<&'a str>,
}

/// Render the MPD of `streams` (the first is the source, whose audio is listed). `None`
/// until the source has an init segment and a completed part.
pub fn render_mpd(streams: &[DashStream<'_>], opts: &MpdOptions<'_>) -> Option<String> {
    let source = streams.first()?;
    let snap = source.snapshot;
    let init = snap.current_init()?;
    let first = snap.segments().first().or(snap.open_segment())?;
    let epoch_ms = first.program_date_time_ms?.checked_sub(first.start / 90)?;
    let base = number_base(snap)?;
    snap.last_part()?;
    let target_ms = snap.target_duration() * 1000;
    let part_ms = snap.part_target_ms();
    let window: u64 = snap.segments().iter().map(|s| s.duration).sum();
    let max_seg = snap.segments().iter().map(|s| s.duration).max().unwrap_or(0);
    let mut out = String::with_capacity(4096);
    out.push_str("<?xml version=\"1.0\" encoding=\"UTF-8\"?>\n");
    let _ = writeln!(
        out,
        "<MPD xmlns=\"urn:mpeg:dash:schema:mpd:2011\" \
         profiles=\"urn:mpeg:dash:profile:isoff-live:2011,urn:mpeg:dash:profile:cmaf:2019\" \
         type=\"dynamic\" availabilityStartTime=\"{}\" publishTime=\"{}\" \
         minimumUpdatePeriod=\"{}\" timeShiftBufferDepth=\"{}\" maxSegmentDuration=\"{}\" \
         minBufferTime=\"{}\">",
        format_program_date_time(epoch_ms),
        format_program_date_time(opts.now_ms),
        duration_ms(part_ms.max(500)),
        duration(window.max(TICKS_PER_SECOND)),
        duration(max_seg.max(target_ms * 90)),
        duration_ms(part_ms),
    );
    if let Some(location) = opts.location {
        let _ = writeln!(out, "  <Location>{}</Location>", clean(location));
    }
    // Latency: aim a segment behind the live edge, allow half to three of them.
    let _ = writeln!(
        out,
        "  <ServiceDescription id=\"0\">\n    <Latency target=\"{}\" min=\"{}\" max=\"{}\"/>\n    \
         <PlaybackRate min=\"0.96\" max=\"1.04\"/>\n  </ServiceDescription>",
        target_ms,
        target_ms / 2,
        target_ms * 3
    );
    let _ = writeln!(out, "  <Period id=\"p{}\" start=\"PT0S\">", init.id);
    let ato = target_ms.saturating_sub(part_ms);
    if init.video_track.is_some() {
        let _ = writeln!(
            out,
            "    <AdaptationSet id=\"0\" contentType=\"video\" mimeType=\"video/mp4\" \
             segmentAlignment=\"true\" startWithSAP=\"1\">"
        );
        for s in streams {
            representation(&mut out, s, Track::Video, base, ato);
        }
        out.push_str("    </AdaptationSet>\n");
    }
    if let Some(audio) = &init.audio_track {
        let _ = writeln!(
            out,
            "    <AdaptationSet id=\"1\" contentType=\"audio\" mimeType=\"audio/mp4\" lang=\"und\" \
             segmentAlignment=\"true\" startWithSAP=\"1\">\n      <AudioChannelConfiguration \
             schemeIdUri=\"urn:mpeg:dash:23003:3:audio_channel_configuration:2011\" \
             value=\"{}\"/>",
            audio.channels.max(1)
        );
        representation(&mut out, source, Track::Audio, base, ato);
        out.push_str("    </AdaptationSet>\n");
    }
    out.push_str("  </Period>\n");
    let _ = writeln!(
        out,
        "  <UTCTiming schemeIdUri=\"urn:mpeg:dash:utc:direct:2014\" value=\"{}\"/>\n</MPD>",
        format_program_date_time(opts.now_ms)
    );
    Some(out)
}

/// A Representation of `track` of `stream`, with its template and timeline; nothing when
/// the stream has no such track or nothing playable.
fn representation(out: &mut String, stream: &DashStream<'_>, track: Track, base: u64, ato: u64) {
    let snap = stream.snapshot;
    let Some(init) = snap.current_init() else { return };
    let Some(track_init) = init.track(track) else { return };
    let segs = timeline(snap, init.id);
    let Some(first) = segs.first() else { return };
    let Some(start_number) = first.msn.checked_sub(base).and_then(|n| u32::try_from(n).ok()) else {
        return;
    };
    let dir = clean(stream.base);
    let query = clean(stream.query);
    let (id, attrs) = match track {
        Track::Video => {
            let mut a = String::new();
            if let Some((w, h)) = init.resolution {
                let _ = write!(a, " width=\"{w}\" height=\"{h}\"");
            }
            if let Some(fps) = snap.frame_rate() {
                let _ = write!(a, " frameRate=\"{}\"", frame_rate(fps));
            }
            (dir.clone(), a)
        }
        Track::Audio => {
            (format!("{dir}-audio"), format!(" audioSamplingRate=\"{}\"", track_init.sample_rate))
        }
    };
    let _ = writeln!(
        out,
        "      <Representation id=\"{id}\" bandwidth=\"{}\" codecs=\"{}\"{attrs}>",
        bandwidth(&segs, track).max(1),
        clean(&track_init.codec),
    );
    let init_name = DashResource::Init { track, id: init.id };
    let _ = write!(
        out,
        "        <SegmentTemplate timescale=\"{TICKS_PER_SECOND}\" presentationTimeOffset=\"0\" \
         startNumber=\"{}\" initialization=\"{dir}/{init_name}{query}\" \
         media=\"{dir}/{}{query}\" availabilityTimeOffset=\"{}\" \
         availabilityTimeComplete=\"false\">\n          <SegmentTimeline>",
        start_number,
        media_template(track, base),
        seconds_ms(ato),
    );
    // Each segment at its earliest presentation time (its first frame's, B-frames and all,
    // so every representation's boundaries are the same instants), lasting until the next
    // one's. Runs of equal durations share an S element (`r` repeats). The open segment is
    // listed with a nominal duration of at least the target (the real one is known when it
    // ends).
    // Audio has no composition offsets: its earliest presentation time is its start.
    let cts = |s: &Segment| if track == Track::Video { i64::from(s.first_cts) } else { 0 };
    let ept = |s: &Segment| s.start.saturating_add_signed(cts(s));
    let mut listed: Vec<&Segment> = segs.clone();
    if let Some(open) = snap.open_segment().filter(|o| o.init_id == init.id && !o.parts.is_empty())
    {
        if segs.last().is_none_or(|l| l.msn + 1 == open.msn) {
            listed.push(open);
        }
    }
    let nominal = snap.target_duration() * TICKS_PER_SECOND;
    let part = snap.part_target_ms() * 90;
    let mut entries: Vec<(u64, u64)> = Vec::with_capacity(listed.len());
    for (i, s) in listed.iter().enumerate() {
        let d = match listed.get(i + 1) {
            Some(next) => ept(next).saturating_sub(ept(s)),
            None if s.complete => s.duration,
            None => nominal.max(s.duration + part),
        };
        entries.push((ept(s), d));
    }
    let mut i = 0;
    while i < entries.len() {
        let (t, d) = entries[i];
        let mut r = 0;
        while entries
            .get(i + r + 1)
            .is_some_and(|&(t2, d2)| d2 == d && t2 == t + (r as u64 + 1) * d)
        {
            r += 1;
        }
        let _ = write!(out, "\n            <S t=\"{t}\" d=\"{d}\"");
        if r > 0 {
            let _ = write!(out, " r=\"{r}\"");
        }
        out.push_str("/>");
        i += r + 1;
    }
    out.push_str(
        "\n          </SegmentTimeline>\n        </SegmentTemplate>\n      </Representation>\n",
    );
}

/// The completed segments of init `init_id` at the end of the window, with consecutive
/// numbers (`$Number$` addressing cannot skip one).
fn timeline(snap: &HlsSnapshot, init_id: u32) -> Vec<&Segment> {
    let mut out: Vec<&Segment> = Vec::new();
    for s in snap.segments().iter().rev() {
        if s.init_id != init_id || out.last().is_some_and(|l| l.msn != s.msn + 1) {
            break;
        }
        out.push(s);
    }
    out.reverse();
    out
}

/// Peak bits per second of a track over `segs`.
fn bandwidth(segs: &[&Segment], track: Track) -> u64 {
    segs.iter()
        .map(|s| {
            let bytes: usize = s.parts.iter().map(|p| p.track(track).len()).sum();
            (bytes as u128 * 8 * u128::from(TICKS_PER_SECOND))
                .checked_div(u128::from(s.duration))
                .map_or(0, |v| u64::try_from(v).unwrap_or(u64::MAX))
        })
        .max()
        .unwrap_or(0)
}

/// Keep only characters that may appear in a URL (no `"`, `<`, whitespace or non-ASCII),
/// with `&` escaped for XML.
fn clean(s: &str) -> String {
    s.chars()
        .filter(|c| c.is_ascii_alphanumeric() || "-._~!$&'()*+,;=:@/?%".contains(*c))
        .collect::<String>()
        .replace('&', "&amp;")
}

/// `xs:duration` of 90 kHz ticks, millisecond precision.
fn duration(ticks: u64) -> String {
    duration_ms(ticks / 90)
}

fn duration_ms(ms: u64) -> String {
    format!("PT{}S", seconds_ms(ms))
}

fn seconds_ms(ms: u64) -> String {
    format!("{}.{:03}", ms / 1000, ms % 1000)
}

/// A frame rate as DASH writes it: an integer, or `num/den` for NTSC-style rates.
fn frame_rate(fps: f64) -> String {
    let rounded = fps.round();
    if (fps - rounded).abs() < 0.01 {
        format!("{}", rounded as u64)
    } else {
        format!("{}/1001", (fps * 1001.0).round() as u64)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn formats() {
        assert_eq!(duration(90_000 * 2 + 450), "PT2.005S");
        assert_eq!(duration_ms(500), "PT0.500S");
        assert_eq!(frame_rate(30.0), "30");
        assert_eq!(frame_rate(29.97), "30000/1001");
        assert_eq!(clean("?sid=ab\"<c d&e"), "?sid=abcd&amp;e");
    }
}
