//! Time-shift (DVR) on a recorded live stream, sans-IO: the last `--dvr-window` of its
//! recorded segments as a live (sliding) HLS media playlist, `/vod/APP/NAME/dvr.m3u8`, whose
//! URIs point into the recordings (`ID/seg-N.m4s`), so a player rewinds up to the window and
//! media is read from the store, never kept in memory. The window spans recordings (a
//! `--record-max-duration` rotation) and periods (`EXT-X-DISCONTINUITY`, counted off the front
//! by `EXT-X-DISCONTINUITY-SEQUENCE`).

use std::collections::VecDeque;
use std::fmt::Write;
use std::sync::Arc;

use sluice_media::hls::{format_program_date_time, TICKS_PER_SECOND};

use super::index::Entry;

/// One segment in the window.
#[derive(Debug, Clone)]
struct Item {
    /// The recording's id (its directory beside the playlist).
    recording: Arc<str>,
    entry: Entry,
    /// Wall-clock start, Unix ms, when the stream has an epoch.
    program_date_time_ms: Option<u64>,
    /// First segment of its recording (or after a gap): a discontinuity.
    discontinuity: bool,
}

/// The DVR window of one stream.
#[derive(Debug)]
pub struct Window {
    max_ticks: u64,
    items: VecDeque<Item>,
    ticks: u64,
    /// Discontinuities that slid off the front.
    discontinuity_sequence: u64,
    /// The media sequence number of the first item: the playlist's own numbering, one per
    /// segment it ever listed (segment numbers skip where segments were not recorded).
    media_sequence: u64,
}

impl Window {
    /// A window `seconds` long (at least one segment is always kept).
    pub fn new(window: std::time::Duration) -> Self {
        let max_ticks = (window.as_millis() as u64).saturating_mul(TICKS_PER_SECOND / 1000);
        Window {
            max_ticks,
            items: VecDeque::new(),
            ticks: 0,
            discontinuity_sequence: 0,
            media_sequence: 0,
        }
    }

    /// A segment stored in recording `recording`; `first_of_recording`: it opens a recording
    /// (its init segment lives beside it, so the player must reload it).
    pub fn push(
        &mut self,
        recording: &Arc<str>,
        entry: Entry,
        program_date_time_ms: Option<u64>,
        first_of_recording: bool,
    ) {
        // A gap in the segment numbers (not recorded, or a new session's numbering) is a
        // discontinuity too.
        let gap = self.items.back().is_some_and(|last| last.entry.msn + 1 != entry.msn);
        let discontinuity =
            !self.items.is_empty() && (entry.discontinuity || first_of_recording || gap);
        self.ticks += entry.duration;
        self.items.push_back(Item {
            recording: recording.clone(),
            entry,
            program_date_time_ms,
            discontinuity,
        });
        while self.items.len() > 1 && self.ticks - self.items[0].entry.duration >= self.max_ticks {
            let Some(gone) = self.items.pop_front() else { break };
            self.ticks -= gone.entry.duration;
            self.media_sequence += 1;
            if let Some(first) = self.items.front_mut() {
                if first.discontinuity {
                    // The new first segment's discontinuity now opens the playlist.
                    first.discontinuity = false;
                    self.discontinuity_sequence += 1;
                }
            }
        }
    }

    /// Seconds the window holds.
    pub fn duration_s(&self) -> f64 {
        self.ticks as f64 / TICKS_PER_SECOND as f64
    }

    pub fn is_empty(&self) -> bool {
        self.items.is_empty()
    }

    /// The live media playlist (no `EXT-X-ENDLIST`: it slides while the stream goes on).
    pub fn render(&self) -> String {
        let target = self
            .items
            .iter()
            .map(|i| i.entry.duration.div_ceil(TICKS_PER_SECOND))
            .max()
            .unwrap_or(1)
            .max(1);
        let mut out = String::with_capacity(256 + self.items.len() * 64);
        out.push_str("#EXTM3U\n#EXT-X-VERSION:7\n");
        let _ = writeln!(out, "#EXT-X-TARGETDURATION:{target}");
        let _ = writeln!(out, "#EXT-X-MEDIA-SEQUENCE:{}", self.media_sequence);
        let _ = writeln!(out, "#EXT-X-DISCONTINUITY-SEQUENCE:{}", self.discontinuity_sequence);
        out.push_str("#EXT-X-INDEPENDENT-SEGMENTS\n");
        let mut map: Option<(&str, u32)> = None;
        for (i, item) in self.items.iter().enumerate() {
            if item.discontinuity {
                out.push_str("#EXT-X-DISCONTINUITY\n");
            }
            if i == 0 || item.discontinuity {
                if let Some(pdt) = item.program_date_time_ms {
                    let _ =
                        writeln!(out, "#EXT-X-PROGRAM-DATE-TIME:{}", format_program_date_time(pdt));
                }
            }
            let this_map = (&*item.recording, item.entry.init_id);
            if map != Some(this_map) {
                let _ = writeln!(
                    out,
                    "#EXT-X-MAP:URI=\"{}/init-{}.mp4\"",
                    item.recording, item.entry.init_id
                );
                map = Some(this_map);
            }
            let seconds = item.entry.duration as f64 / TICKS_PER_SECOND as f64;
            let _ = writeln!(
                out,
                "#EXTINF:{seconds:.3},\n{}/seg-{}.m4s",
                item.recording, item.entry.msn
            );
        }
        out
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn entry(msn: u64, discontinuity: bool) -> Entry {
        Entry { msn, duration: 2 * TICKS_PER_SECOND, init_id: 1, discontinuity, bytes: 1 }
    }

    #[test]
    fn the_window_slides_and_counts_the_discontinuities_it_drops() {
        let mut w = Window::new(std::time::Duration::from_secs(6));
        let (a, b): (Arc<str>, Arc<str>) = (Arc::from("100"), Arc::from("200"));
        w.push(&a, entry(1, false), Some(0), true);
        w.push(&a, entry(2, false), Some(2000), false);
        let text = w.render();
        assert!(text.contains("#EXT-X-MEDIA-SEQUENCE:0\n"), "{text}");
        assert!(text.contains("#EXT-X-PROGRAM-DATE-TIME:1970-01-01T00:00:00.000Z\n"), "{text}");
        assert_eq!(text.matches("#EXT-X-MAP:URI=\"100/init-1.mp4\"").count(), 1, "{text}");
        assert!(!text.contains("ENDLIST") && !text.contains("PLAYLIST-TYPE"), "live: {text}");
        // A rotation: the next recording's segments come after a discontinuity, with its map.
        w.push(&b, entry(3, false), Some(4000), true);
        w.push(&b, entry(4, false), Some(6000), false);
        let text = w.render();
        assert!((w.duration_s() - 6.0).abs() < 1e-9, "6 s kept: {text}");
        assert!(text.contains("#EXT-X-MEDIA-SEQUENCE:1\n"), "{text}");
        assert!(
            text.contains("#EXT-X-DISCONTINUITY\n#EXT-X-PROGRAM-DATE-TIME:1970-01-01T00:00:04.000Z\n#EXT-X-MAP:URI=\"200/init-1.mp4\"\n#EXTINF:2.000,\n200/seg-3.m4s\n"),
            "{text}"
        );
        assert!(text.contains("#EXT-X-DISCONTINUITY-SEQUENCE:0\n"), "{text}");
        // The discontinuity slides to the front: counted, no longer written.
        w.push(&b, entry(5, false), Some(8000), false);
        let text = w.render();
        assert!(
            text.contains("#EXT-X-MEDIA-SEQUENCE:2\n#EXT-X-DISCONTINUITY-SEQUENCE:1\n"),
            "{text}"
        );
        assert!(!text.contains("#EXT-X-DISCONTINUITY\n"), "{text}");
        assert!(text.starts_with("#EXTM3U") && text.ends_with("200/seg-5.m4s\n"), "{text}");
        assert_eq!(text.matches("seg-").count(), 3);
    }

    #[test]
    fn skipped_segment_numbers_are_a_discontinuity_and_the_sequence_counts_listed_segments() {
        let mut w = Window::new(std::time::Duration::from_secs(4));
        let a: Arc<str> = Arc::from("1");
        w.push(&a, entry(10, false), None, true);
        w.push(&a, entry(11, false), None, false);
        // 12 to 99 were not recorded here (disk floor, another home, a new session).
        w.push(&a, entry(100, false), None, false);
        let text = w.render();
        assert!(text.contains("#EXT-X-MEDIA-SEQUENCE:1\n"), "one slid off: {text}");
        assert!(
            text.contains("seg-11.m4s\n#EXT-X-DISCONTINUITY\n#EXTINF:2.000,\n1/seg-100.m4s"),
            "{text}"
        );
        w.push(&a, entry(101, false), None, false);
        let text = w.render();
        assert!(
            text.contains("#EXT-X-MEDIA-SEQUENCE:2\n#EXT-X-DISCONTINUITY-SEQUENCE:1\n"),
            "{text}"
        );
    }

    #[test]
    fn one_segment_longer_than_the_window_is_kept() {
        let mut w = Window::new(std::time::Duration::from_secs(1));
        let a: Arc<str> = Arc::from("1");
        w.push(&a, entry(1, false), None, true);
        w.push(&a, entry(2, true), None, false);
        let text = w.render();
        assert_eq!(text.matches("seg-").count(), 1, "{text}");
        assert!(!text.contains("PROGRAM-DATE-TIME"), "{text}");
    }
}
