//! A recording's index: the HLS media playlist of its segments, sans-IO (entries in, text out).
//! While the stream is live it is an `EVENT` playlist that only grows; once the recording ends,
//! `VOD` with `EXT-X-ENDLIST`. A publisher that came back (or a codec change) starts a new
//! period: `EXT-X-DISCONTINUITY`, and a new `EXT-X-MAP` when the init segment changed.

use std::fmt::Write;

/// 90 kHz media clock ticks per second (the segmenter's unit).
/// 90 kHz ticks per second, for durations in seconds.
const TICKS_PER_SECOND: f64 = sluice_media::hls::TICKS_PER_SECOND as f64;

/// One recorded segment.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Entry {
    pub msn: u64,
    /// 90 kHz ticks.
    pub duration: u64,
    pub init_id: u32,
    /// Starts a new period (the publisher came back, the codecs changed, or segments were lost).
    pub discontinuity: bool,
    pub bytes: u64,
}

/// The segments recorded so far, in order.
#[derive(Debug, Default, Clone)]
pub struct Index {
    entries: Vec<Entry>,
}

impl Index {
    pub fn push(&mut self, entry: Entry) {
        self.entries.push(entry);
    }

    pub fn is_empty(&self) -> bool {
        self.entries.is_empty()
    }

    pub fn entries(&self) -> &[Entry] {
        &self.entries
    }

    /// Total duration in seconds.
    pub fn duration_s(&self) -> f64 {
        self.entries.iter().map(|e| e.duration as f64 / TICKS_PER_SECOND).sum()
    }

    /// Periods: 1 plus the discontinuities after the first segment.
    pub fn periods(&self) -> usize {
        usize::from(!self.entries.is_empty())
            + self.entries.iter().skip(1).filter(|e| e.discontinuity).count()
    }

    /// The playlist (`ended`: VOD with `EXT-X-ENDLIST`; else an `EVENT` playlist).
    pub fn render(&self, ended: bool) -> String {
        let target = self
            .entries
            .iter()
            .map(|e| (e.duration as f64 / TICKS_PER_SECOND).round() as u64)
            .max()
            .unwrap_or(1)
            .max(1);
        let mut out = String::with_capacity(128 + self.entries.len() * 40);
        out.push_str("#EXTM3U\n#EXT-X-VERSION:7\n");
        let _ = writeln!(out, "#EXT-X-TARGETDURATION:{target}");
        let kind = if ended { "VOD" } else { "EVENT" };
        let _ = writeln!(out, "#EXT-X-PLAYLIST-TYPE:{kind}");
        let first = self.entries.first().map_or(0, |e| e.msn);
        let _ = writeln!(out, "#EXT-X-MEDIA-SEQUENCE:{first}");
        out.push_str("#EXT-X-INDEPENDENT-SEGMENTS\n");
        let mut init = None;
        for (i, e) in self.entries.iter().enumerate() {
            if i > 0 && e.discontinuity {
                out.push_str("#EXT-X-DISCONTINUITY\n");
            }
            if init != Some(e.init_id) {
                let _ = writeln!(out, "#EXT-X-MAP:URI=\"init-{}.mp4\"", e.init_id);
                init = Some(e.init_id);
            }
            let _ = writeln!(out, "#EXTINF:{:.3},", e.duration as f64 / TICKS_PER_SECOND);
            let _ = writeln!(out, "seg-{}.m4s", e.msn);
        }
        if ended {
            out.push_str("#EXT-X-ENDLIST\n");
        }
        out
    }
}

/// Whether an index's text says the recording is finished (`EXT-X-ENDLIST`).
pub fn is_finished(text: &str) -> bool {
    text.contains("#EXT-X-ENDLIST")
}

/// An index a crash left unfinished (an `EVENT` playlist without `EXT-X-ENDLIST`), finished:
/// the segments it lists were each stored whole before it named them. `None`: already
/// finished, or not an index of ours.
pub fn finish_text(text: &str) -> Option<String> {
    if !text.starts_with("#EXTM3U") || is_finished(text) {
        return None;
    }
    let mut out = text.replace("#EXT-X-PLAYLIST-TYPE:EVENT", "#EXT-X-PLAYLIST-TYPE:VOD");
    if !out.ends_with('\n') {
        out.push('\n');
    }
    out.push_str("#EXT-X-ENDLIST\n");
    Some(out)
}

/// A stored index read back: its entries (sizes unknown: 0) and whether it is finished.
/// `None` when it is not an index of ours.
pub fn parse(text: &str) -> Option<(Index, bool)> {
    if !text.starts_with("#EXTM3U") {
        return None;
    }
    let mut index = Index::default();
    let (mut init, mut duration, mut discontinuity) = (None, None, false);
    for line in text.lines() {
        if let Some(uri) = line.strip_prefix("#EXT-X-MAP:URI=\"") {
            init = Some(uri.strip_prefix("init-")?.strip_suffix(".mp4\"")?.parse().ok()?);
        } else if let Some(extinf) = line.strip_prefix("#EXTINF:") {
            // Read from the store: a segment of 0 to 1 hour, or the index is not ours.
            let seconds: f64 = extinf.trim_end_matches(',').parse().ok()?;
            if !(0.0..=3600.0).contains(&seconds) {
                return None;
            }
            duration = Some((seconds * TICKS_PER_SECOND).round() as u64);
        } else if line == "#EXT-X-DISCONTINUITY" {
            discontinuity = true;
        } else if !line.is_empty() && !line.starts_with('#') {
            let msn = line.strip_prefix("seg-")?.strip_suffix(".m4s")?.parse().ok()?;
            let entry =
                Entry { msn, duration: duration.take()?, init_id: init?, discontinuity, bytes: 0 };
            index.push(entry);
            discontinuity = false;
        }
    }
    Some((index, is_finished(text)))
}

/// A stored index's figures.
#[derive(Debug, Clone, Default, PartialEq)]
pub struct Summary {
    pub segments: usize,
    pub duration_s: f64,
    /// 1 plus the discontinuities (0 when empty).
    pub periods: usize,
    /// `EXT-X-ENDLIST`: the recording is finished.
    pub finished: bool,
}

/// The figures of a stored index (anything unreadable counts as nothing).
pub fn summary(text: &str) -> Summary {
    let mut s = Summary { finished: is_finished(text), ..Summary::default() };
    let mut discontinuities = 0;
    for line in text.lines() {
        if let Some(extinf) = line.strip_prefix("#EXTINF:") {
            s.duration_s += extinf.trim_end_matches(',').parse::<f64>().unwrap_or(0.0);
        } else if line == "#EXT-X-DISCONTINUITY" {
            discontinuities += 1;
        } else if !line.is_empty() && !line.starts_with('#') {
            s.segments += 1;
        }
    }
    s.periods = if s.segments == 0 { 0 } else { 1 + discontinuities };
    s
}

/// The files a finished index names, in play order: each segment's number with the id of the
/// init segment it needs. `None` when the index is not finished or names something else.
pub fn files(text: &str) -> Option<Vec<(u32, u64)>> {
    if !text.starts_with("#EXTM3U") || !is_finished(text) {
        return None;
    }
    let mut init = None;
    let mut out = Vec::new();
    for line in text.lines() {
        if let Some(uri) = line.strip_prefix("#EXT-X-MAP:URI=\"") {
            let id = uri.strip_prefix("init-")?.strip_suffix(".mp4\"")?;
            init = Some(id.parse().ok()?);
        } else if !line.is_empty() && !line.starts_with('#') {
            let msn = line.strip_prefix("seg-")?.strip_suffix(".m4s")?.parse().ok()?;
            out.push((init?, msn));
        }
    }
    Some(out)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_stored_index_reads_back_as_it_was_written() {
        let mut index = Index::default();
        index.push(entry(4, 2.0, 1, false));
        index.push(entry(5, 1.5, 1, false));
        index.push(entry(9, 2.0, 2, true));
        let entries = |i: &Index| {
            i.entries().iter().map(|e| Entry { bytes: 0, ..e.clone() }).collect::<Vec<_>>()
        };
        let (back, finished) = parse(&index.render(false)).unwrap();
        assert_eq!((entries(&back), finished), (entries(&index), false));
        assert_eq!(back.render(false), index.render(false));
        assert!(parse(&index.render(true)).unwrap().1);
        assert!(parse("not an index").is_none());
        for bad in ["-2.0", "NaN", "inf", "1e30"] {
            let text =
                format!("#EXTM3U\n#EXT-X-MAP:URI=\"init-1.mp4\"\n#EXTINF:{bad},\nseg-1.m4s\n");
            assert!(parse(&text).is_none(), "{bad}");
        }
        assert!(parse("#EXTM3U\n#EXTINF:2.0,\nseg-1.m4s\n").is_none(), "no init segment");
    }

    #[test]
    fn a_finished_index_lists_its_segments_with_their_init_segments() {
        let mut index = Index::default();
        index.push(entry(4, 2.0, 1, false));
        index.push(entry(5, 2.0, 2, true));
        assert_eq!(files(&index.render(true)), Some(vec![(1, 4), (2, 5)]));
        assert_eq!(files(&index.render(false)), None, "not finished");
        assert_eq!(files("#EXTM3U\n../x\n#EXT-X-ENDLIST\n"), None);
        assert_eq!(files("#EXTM3U\nseg-1.m4s\n#EXT-X-ENDLIST\n"), None, "no init segment");
    }

    #[test]
    fn an_index_left_open_by_a_crash_is_finished_as_the_recorder_would() {
        let mut index = Index::default();
        index.push(entry(1, 2.0, 1, false));
        index.push(entry(2, 2.0, 1, false));
        assert_eq!(finish_text(&index.render(false)).as_deref(), Some(index.render(true).as_str()));
        assert_eq!(finish_text(&index.render(true)), None);
        assert_eq!(finish_text("not a playlist"), None);
    }

    fn entry(msn: u64, secs: f64, init_id: u32, discontinuity: bool) -> Entry {
        Entry { msn, duration: (secs * TICKS_PER_SECOND) as u64, init_id, discontinuity, bytes: 10 }
    }

    #[test]
    fn a_live_recording_is_an_event_playlist_and_an_ended_one_is_vod() {
        let mut index = Index::default();
        assert_eq!(index.periods(), 0);
        index.push(entry(7, 2.0, 1, false));
        index.push(entry(8, 1.5, 1, false));
        let live = index.render(false);
        assert!(live.contains("#EXT-X-PLAYLIST-TYPE:EVENT\n"), "{live}");
        assert!(!live.contains("ENDLIST"), "{live}");
        assert_eq!(live.matches("#EXT-X-MAP").count(), 1, "{live}");
        let vod = index.render(true);
        assert!(vod.ends_with("#EXTINF:1.500,\nseg-8.m4s\n#EXT-X-ENDLIST\n"), "{vod}");
        assert!(vod.contains("#EXT-X-PLAYLIST-TYPE:VOD\n#EXT-X-MEDIA-SEQUENCE:7\n"), "{vod}");
        assert!(vod.contains("#EXT-X-TARGETDURATION:2\n"), "{vod}");
        assert!((index.duration_s() - 3.5).abs() < 1e-6);
        assert_eq!(index.periods(), 1);
    }

    #[test]
    fn a_new_period_is_a_discontinuity_with_its_own_init_segment() {
        let mut index = Index::default();
        // A discontinuity on the very first segment is not written (nothing precedes it).
        index.push(entry(1, 2.0, 1, true));
        index.push(entry(2, 2.0, 1, false));
        index.push(entry(3, 2.0, 2, true));
        index.push(entry(4, 2.0, 2, false));
        let text = index.render(true);
        assert_eq!(index.periods(), 2);
        assert_eq!(text.matches("#EXT-X-DISCONTINUITY").count(), 1, "{text}");
        let cut = text
            .find("#EXT-X-DISCONTINUITY\n#EXT-X-MAP:URI=\"init-2.mp4\"\n#EXTINF:2.000,\nseg-3.m4s");
        assert!(cut.is_some(), "{text}");
    }
}
