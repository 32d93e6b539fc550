//! MPEG-TS HLS end to end: ffmpeg publishes over RTMP; `/live/STREAM/ts.m3u8` starts a
//! session (redirect with a `sid`), lists the same segments as the fMP4 playlist as plain HLS
//! v3, `ts-N.ts` segments pass ffprobe (H.264 + AAC, 1280x720), and ffmpeg plays the TS
//! playlist with no errors and the expected frame count.

use std::collections::HashMap;
use std::time::{Duration, Instant};

use sluice_tests::ffmpeg::run_with_timeout;
use sluice_tests::http::{self, HttpResponse};
use sluice_tests::process::wait_for;
use sluice_tests::{h264_aac, secs, Origin, Player, Publisher};

const PLAYLIST_TYPE: &str = "application/vnd.apple.mpegurl";

fn get(origin: &Origin, path: &str) -> HttpResponse {
    http::get(origin.http, path, secs(15)).unwrap_or_else(|e| panic!("GET {path}: {e}"))
}

/// A parsed plain (non-LL) media playlist.
#[derive(Debug, Default)]
struct Playlist {
    target: u64,
    media_sequence: u64,
    /// (msn, duration s, program date-time, discontinuity before it, URI)
    segments: Vec<(u64, f64, String, bool, String)>,
}

/// Parse and check a playlist: the tags every segment needs, durations within the target,
/// consecutive numbering; `prefix`/`suffix` are what each URI must look like around its msn.
fn parse_playlist(text: &str, prefix: &str, suffix: &str, ll_tags_allowed: bool) -> Playlist {
    let lines: Vec<&str> = text.lines().collect();
    assert_eq!(lines.first(), Some(&"#EXTM3U"), "{text}");
    let mut pl = Playlist::default();
    let (mut dur, mut pdt, mut disc) = (None, None, false);
    for l in &lines[1..] {
        if let Some(v) = l.strip_prefix("#EXT-X-TARGETDURATION:") {
            pl.target = v.parse().unwrap();
        } else if let Some(v) = l.strip_prefix("#EXT-X-MEDIA-SEQUENCE:") {
            pl.media_sequence = v.parse().unwrap();
        } else if let Some(v) = l.strip_prefix("#EXTINF:") {
            dur = Some(v.trim_end_matches(',').parse::<f64>().unwrap());
        } else if let Some(v) = l.strip_prefix("#EXT-X-PROGRAM-DATE-TIME:") {
            pdt = Some(v.to_string());
        } else if *l == "#EXT-X-DISCONTINUITY" {
            disc = true;
        } else if !l.starts_with('#') && l.starts_with(prefix) {
            let msn: u64 = l
                .strip_prefix(prefix)
                .and_then(|r| r.split_once(suffix).map(|(n, _)| n))
                .and_then(|n| n.parse().ok())
                .unwrap_or_else(|| panic!("URI {l} in {text}"));
            assert!(l.ends_with(suffix) || l.contains(&format!("{suffix}?")), "{l}");
            let d = dur.take().unwrap_or_else(|| panic!("{l} without EXTINF"));
            let p = pdt.take().unwrap_or_else(|| panic!("{l} without PROGRAM-DATE-TIME"));
            pl.segments.push((msn, d, p, std::mem::take(&mut disc), l.to_string()));
        } else if !ll_tags_allowed {
            assert!(
                !l.starts_with("#EXT-X-PART")
                    && !l.starts_with("#EXT-X-PRELOAD-HINT")
                    && !l.starts_with("#EXT-X-MAP")
                    && !l.starts_with("#EXT-X-SERVER-CONTROL"),
                "LL-HLS/fMP4 tag in a TS playlist: {l}"
            );
        }
    }
    assert!(pl.target >= 2, "{text}");
    for (i, s) in pl.segments.iter().enumerate() {
        assert_eq!(s.0, pl.media_sequence + i as u64, "numbering in {text}");
        assert!(s.1.round() as u64 <= pl.target, "EXTINF {} > target {}", s.1, pl.target);
    }
    pl
}

/// `GET ts.m3u8` without a session: 302 to `ts.m3u8?sid=...`; returns the sid.
fn ts_session(origin: &Origin, stream: &str) -> String {
    let resp = get(origin, &format!("/live/{stream}/ts.m3u8"));
    assert_eq!(resp.status, 302, "{}", resp.text());
    let loc = resp.header("location").expect("Location").to_string();
    let sid =
        loc.strip_prefix("ts.m3u8?sid=").unwrap_or_else(|| panic!("Location {loc}")).to_string();
    assert!(sid.len() == 32 && sid.bytes().all(|b| b.is_ascii_hexdigit()), "{sid}");
    sid
}

#[test]
fn ffmpeg_plays_ts_segments_cut_like_the_fmp4_ones() {
    let origin = Origin::start(&[]);
    let fixture = h264_aac();
    let started = Instant::now();
    let mut publisher = Publisher::start(&origin.rtmp_url("live", "s"), &fixture.path);
    // The stream must exist before a session can start.
    wait_for(secs(15), || origin.stream_info("live", "s").map(|_| ()))
        .expect("live/s never listed");
    let sid = ts_session(&origin, "s");
    let info = origin.stream_info("live", "s").expect("live/s listed");
    assert_eq!(info["viewers"].as_u64(), Some(1), "the TS session is the only viewer: {info}");

    let player_start = started.elapsed();
    let player = Player::start(&format!("http://{}/live/s/ts.m3u8", origin.http));

    let ts_path = format!("/live/s/ts.m3u8?sid={sid}");
    let mut last_seq = 0;
    let mut compared = 0;
    let mut fetched = None;
    while publisher.is_running() && started.elapsed() < secs(30) {
        let cmaf = get(&origin, &format!("/live/s/index.m3u8?sid={sid}"));
        let resp = get(&origin, &ts_path);
        assert_eq!(resp.status, 200, "{}", resp.text());
        assert_eq!(resp.header("content-type"), Some(PLAYLIST_TYPE));
        let text = resp.text();
        assert!(text.contains("#EXT-X-VERSION:3\n"), "{text}");
        let pl = parse_playlist(&text, "ts-", ".ts", false);
        assert!(pl.media_sequence >= last_seq, "MEDIA-SEQUENCE went back");
        last_seq = pl.media_sequence;
        for s in &pl.segments {
            assert!(s.4.ends_with(&format!("?sid={sid}")), "URI {} lacks the sid", s.4);
        }
        // Same numbers, durations and date-times as the fMP4 playlist's segments.
        if cmaf.status == 200 {
            let c = parse_playlist(&cmaf.text(), "seg-", ".m4s", true);
            let by_msn: HashMap<u64, _> = c.segments.iter().map(|s| (s.0, s)).collect();
            for s in &pl.segments {
                if let Some(f) = by_msn.get(&s.0) {
                    assert_eq!((s.1, &s.2, s.3), (f.1, &f.2, f.3), "segment {}", s.0);
                    compared += 1;
                }
            }
        }
        if fetched.is_none() {
            if let Some(s) = pl.segments.last() {
                fetched = Some((s.0, get(&origin, &format!("/live/s/{}", s.4))));
            }
        }
        std::thread::sleep(Duration::from_millis(500));
    }
    assert!(publisher.wait(secs(20)).is_some(), "publisher did not finish");
    assert!(compared >= 3, "only {compared} segments compared with the fMP4 playlist");

    let (msn, seg) = fetched.expect("a TS segment was listed");
    assert_eq!(seg.status, 200, "ts-{msn}.ts: {}", seg.text());
    assert_eq!(seg.header("content-type"), Some("video/mp2t"));
    assert_eq!(seg.header("cache-control"), Some("public, max-age=31536000, immutable"));
    assert!(seg.body.len() > 188 * 100 && seg.body.len() % 188 == 0);
    assert!(seg.body.chunks(188).all(|p| p[0] == 0x47), "sync bytes");
    let file = origin.dir().path().join(format!("ts-{msn}.ts"));
    std::fs::write(&file, &seg.body).unwrap();
    let (status, out, err) = run_with_timeout(
        std::process::Command::new("ffprobe")
            .args(["-v", "error", "-show_entries", "stream=codec_name,width,height"])
            .args(["-of", "csv=p=0"])
            .arg(&file),
        secs(20),
    )
    .unwrap();
    assert!(status.is_some_and(|s| s.success()) && err.trim().is_empty(), "ffprobe: {err}");
    assert!(out.contains("h264,1280,720"), "{out}");
    assert!(out.contains("aac"), "{out}");

    let result = player.finish(secs(4), secs(30));
    assert!(result.errors.is_empty(), "ffmpeg TS HLS errors: {:?}", result.errors);
    // As for the fMP4 playlist (tests/hls.rs): ffmpeg starts up to 3 segments behind the
    // live edge and reads complete segments only; it must decode at least what was
    // published after it started, less one 2 s segment (60 frames), and never more than
    // was published.
    let published = fixture.video_frames;
    eprintln!(
        "TS HLS: {} frames decoded of {published}; player joined after {player_start:?}",
        result.frames
    );
    let after_start = published.saturating_sub((player_start.as_secs_f64() * 30.0).ceil() as u64);
    let min = after_start.saturating_sub(60).max(1);
    assert!(
        result.frames >= min && result.frames <= published,
        "decoded {} frames over TS HLS; expected {min}..={published}",
        result.frames
    );
}

#[test]
fn ts_errors_and_the_flag() {
    let origin = Origin::start(&[]);
    // Unknown stream: 404 at once, with or without a session.
    let t = Instant::now();
    assert_eq!(get(&origin, "/live/none/ts.m3u8").status, 404);
    assert_eq!(get(&origin, "/live/none/ts-1.ts").status, 404);
    assert!(t.elapsed() < secs(2));
    let fixture = h264_aac();
    let mut publisher = Publisher::start_looped(&origin.rtmp_url("live", "e"), &fixture.path);
    wait_for(secs(15), || origin.stream_info("live", "e").map(|_| ())).expect("live/e listed");
    let sid = ts_session(&origin, "e");
    let pl = wait_for(secs(15), || {
        let r = get(&origin, &format!("/live/e/ts.m3u8?sid={sid}"));
        (r.status == 200).then_some(r.text())
    })
    .expect("TS playlist");
    let pl = parse_playlist(&pl, "ts-", ".ts", false);
    let last = pl.segments.last().unwrap().0;
    // Far ahead of the live edge, or malformed names: 404.
    assert_eq!(get(&origin, &format!("/live/e/ts-{}.ts", last + 1000)).status, 404);
    assert_eq!(get(&origin, &format!("/live/e/ts-0{last}.ts")).status, 404);
    // The next segment: the request waits for it, then answers.
    let t = Instant::now();
    let next = get(&origin, &format!("/live/e/ts-{}.ts?sid={sid}", last + 1));
    assert_eq!(next.status, 200);
    assert!(t.elapsed() > Duration::from_millis(100), "answered before it existed?");
    // Two fetches of one segment are the same bytes.
    let a = get(&origin, &format!("/live/e/ts-{last}.ts"));
    let b = get(&origin, &format!("/live/e/ts-{last}.ts"));
    assert_eq!(a.status, 200);
    assert_eq!(a.body, b.body);
    publisher.stop();

    // --hls-ts false: TS names are 404, fMP4 HLS still served.
    let origin = Origin::start(&["--hls-ts", "false"]);
    let mut publisher = Publisher::start_looped(&origin.rtmp_url("live", "f"), &fixture.path);
    wait_for(secs(15), || (get(&origin, "/live/f.m3u8").status == 200).then_some(()))
        .expect("fMP4 HLS served");
    let r = get(&origin, "/live/f/ts.m3u8");
    assert_eq!(r.status, 404, "{}", r.text());
    assert!(r.text().contains("disabled"));
    publisher.stop();
}
