//! The TS media playlist: plain HLS (version 3, no LL-HLS tags) over the completed segments
//! of an [`HlsSnapshot`], so old players get the same window, numbering, discontinuities and
//! program date-times as the fMP4 playlist.

use std::fmt::Write;

use crate::hls::{format_program_date_time, HlsSnapshot, TICKS_PER_SECOND};

/// Name of the TS media playlist, beside `index.m3u8`.
pub const TS_PLAYLIST_NAME: &str = "ts.m3u8";

/// File name of the TS segment with media sequence number `msn`: `ts-{msn}.ts`.
pub fn ts_segment_name(msn: u64) -> String {
    format!("ts-{msn}.ts")
}

/// The msn of a TS segment name: plain decimal, no sign, no leading zeros, at most 20 digits.
pub fn parse_ts_segment_name(name: &str) -> Option<u64> {
    let n = name.strip_prefix("ts-")?.strip_suffix(".ts")?;
    let ok = !n.is_empty()
        && n.len() <= 20
        && n.bytes().all(|b| b.is_ascii_digit())
        && (n == "0" || !n.starts_with('0'));
    ok.then(|| n.parse().ok()).flatten()
}

/// Keep only characters that may appear unescaped in a URI.
fn clean_query(q: &str) -> String {
    q.chars().filter(|c| c.is_ascii_alphanumeric() || "-._~!$&'()*+,;=:@/?%".contains(*c)).collect()
}

/// A 90 kHz duration in seconds with 5 decimals.
fn seconds(ticks: u64) -> String {
    let units = (u128::from(ticks) * 100_000 + u128::from(TICKS_PER_SECOND) / 2)
        / u128::from(TICKS_PER_SECOND);
    format!("{}.{:05}", units / 100_000, units % 100_000)
}

/// Render the TS media playlist of `snap`'s completed segments; `query` (e.g. `?sid=...`)
/// is appended to every URI. `None` while no segment is complete.
pub fn render_ts_playlist(snap: &HlsSnapshot, query: &str) -> Option<String> {
    let segments = snap.segments();
    let first = segments.first()?;
    let q = clean_query(query);
    let mut out = String::with_capacity(128 + segments.len() * 96);
    out.push_str("#EXTM3U\n#EXT-X-VERSION:3\n");
    let _ = writeln!(out, "#EXT-X-TARGETDURATION:{}", snap.target_duration());
    let _ = writeln!(out, "#EXT-X-MEDIA-SEQUENCE:{}", first.msn);
    let _ = writeln!(out, "#EXT-X-DISCONTINUITY-SEQUENCE:{}", first.discontinuity_sequence);
    for (i, seg) in segments.iter().enumerate() {
        if seg.discontinuity && i > 0 {
            out.push_str("#EXT-X-DISCONTINUITY\n");
        }
        if let Some(pdt) = seg.program_date_time_ms {
            let _ = writeln!(out, "#EXT-X-PROGRAM-DATE-TIME:{}", format_program_date_time(pdt));
        }
        let _ =
            writeln!(out, "#EXTINF:{},\n{}{q}", seconds(seg.duration), ts_segment_name(seg.msn));
    }
    Some(out)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn names() {
        assert_eq!(ts_segment_name(17), "ts-17.ts");
        assert_eq!(parse_ts_segment_name("ts-17.ts"), Some(17));
        assert_eq!(parse_ts_segment_name("ts-0.ts"), Some(0));
        for bad in [
            "ts-017.ts",
            "ts-.ts",
            "ts--1.ts",
            "ts-1.m4s",
            "seg-1.ts",
            "ts-1a.ts",
            "ts-123456789012345678901.ts",
        ] {
            assert_eq!(parse_ts_segment_name(bad), None, "{bad}");
        }
    }

    #[test]
    fn seconds_format() {
        assert_eq!(seconds(180_000), "2.00000");
        assert_eq!(seconds(3003), "0.03337");
    }
}
