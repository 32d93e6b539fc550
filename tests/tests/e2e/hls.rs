//! HLS / LL-HLS delivery end to end: ffmpeg publishes over RTMP, ffmpeg and a raw HTTP client
//! play `/live/STREAM.m3u8`; playlists are checked against RFC 8216 (and its LL-HLS rules),
//! blocking reloads must block until the part exists, objects must pass ffprobe, HLS sessions
//! count as viewers.

use std::collections::HashSet;
use std::time::{Duration, Instant};

use sluice_tests::ffmpeg::probe_streams;
use sluice_tests::http::{self, HttpResponse};
use sluice_tests::process::wait_for;
use sluice_tests::{ffprobe_streams, h264_aac, secs, Origin, Player, Publisher};

const PLAYLIST_TYPE: &str = "application/vnd.apple.mpegurl";

fn get(origin: &Origin, path: &str) -> HttpResponse {
    let resp = http::get(origin.http, path, secs(15)).unwrap_or_else(|e| panic!("GET {path}: {e}"));
    // A playlist fetched without a session is redirected to the same playlist with one.
    if resp.status == 302 {
        let location = resp.header("location").expect("Location on a 302").to_string();
        assert!(location.contains("sid="), "redirect carries a session id: {location}");
        let dir = path.split('?').next().unwrap().rsplit_once('/').unwrap().0;
        return get(origin, &format!("{dir}/{location}"));
    }
    resp
}

/// Value of `NAME=value` inside a tag's attribute list (unquoted).
fn attr<'a>(line: &'a str, name: &str) -> Option<&'a str> {
    let (_, attrs) = line.split_once(':')?;
    split_attrs(attrs).into_iter().find_map(|kv| {
        let (k, v) = kv.split_once('=')?;
        (k == name).then(|| v.trim_matches('"'))
    })
}

/// Split an attribute list at commas outside quotes.
fn split_attrs(s: &str) -> Vec<&str> {
    let mut out = Vec::new();
    let (mut start, mut quoted) = (0, false);
    for (i, c) in s.char_indices() {
        match c {
            '"' => quoted = !quoted,
            ',' if !quoted => {
                out.push(&s[start..i]);
                start = i + 1;
            }
            _ => {}
        }
    }
    out.push(&s[start..]);
    out
}

/// A media playlist, checked against the RFC rules that hold for every single playlist.
#[derive(Debug)]
struct MediaPlaylist {
    media_sequence: u64,
    /// (msn, index) of every `EXT-X-PART`, in order.
    parts: Vec<(u64, u32)>,
    /// Completed segments listed, (msn, uri).
    segments: Vec<(u64, String)>,
    preload_hint: (u64, u32),
    map_uri: String,
}

/// `part-M.I.m4s?...` -> (M, I).
fn part_name(uri: &str) -> Option<(u64, u32)> {
    let name = uri.split('?').next()?;
    let (m, i) = name.strip_prefix("part-")?.strip_suffix(".m4s")?.split_once('.')?;
    Some((m.parse().ok()?, i.parse().ok()?))
}

/// `2026-11-26T08:30:39.405Z` -> milliseconds since the Unix epoch (UTC, `Z` only).
fn parse_pdt(v: &str) -> Option<i64> {
    let (date, time) = v.strip_suffix('Z')?.split_once('T')?;
    let mut d = date.split('-').map(|x| x.parse::<i64>().ok());
    let (y, m, day) = (d.next()??, d.next()??, d.next()??);
    let mut t = time.split(':');
    let (h, min) = (t.next()?.parse::<i64>().ok()?, t.next()?.parse::<i64>().ok()?);
    let sec: f64 = t.next()?.parse().ok()?;
    // Days from the civil date (proleptic Gregorian).
    let y = if m <= 2 { y - 1 } else { y };
    let era = y.div_euclid(400);
    let yoe = y - era * 400;
    let doy = (153 * (m + if m > 2 { -3 } else { 9 }) + 2) / 5 + day - 1;
    let doe = yoe * 365 + yoe / 4 - yoe / 100 + doy;
    let days = era * 146_097 + doe - 719_468;
    Some(((days * 24 + h) * 60 + min) * 60_000 + (sec * 1000.0).round() as i64)
}

fn check_media_playlist(text: &str, sid: Option<&str>) -> MediaPlaylist {
    let lines: Vec<&str> = text.lines().collect();
    assert_eq!(lines.first(), Some(&"#EXTM3U"), "{text}");
    let tag = |name: &str| lines.iter().find_map(|l| l.strip_prefix(name));
    let target: u64 = tag("#EXT-X-TARGETDURATION:")
        .and_then(|v| v.parse().ok())
        .unwrap_or_else(|| panic!("TARGETDURATION: {text}"));
    let part_inf = lines
        .iter()
        .find(|l| l.starts_with("#EXT-X-PART-INF:"))
        .unwrap_or_else(|| panic!("PART-INF: {text}"));
    let part_target: f64 =
        attr(part_inf, "PART-TARGET").and_then(|v| v.parse().ok()).expect("PART-TARGET");
    let media_sequence: u64 =
        tag("#EXT-X-MEDIA-SEQUENCE:").and_then(|v| v.parse().ok()).expect("MEDIA-SEQUENCE");
    let control =
        lines.iter().find(|l| l.starts_with("#EXT-X-SERVER-CONTROL:")).expect("SERVER-CONTROL");
    assert_eq!(attr(control, "CAN-BLOCK-RELOAD"), Some("YES"), "{control}");
    let part_hold_back: f64 =
        attr(control, "PART-HOLD-BACK").and_then(|v| v.parse().ok()).expect("PART-HOLD-BACK");
    assert!(
        part_hold_back >= 2.0 * part_target,
        "PART-HOLD-BACK {part_hold_back} < 2 x PART-TARGET {part_target}"
    );
    let map = lines.iter().find(|l| l.starts_with("#EXT-X-MAP:")).expect("EXT-X-MAP");
    let map_uri = attr(map, "URI").expect("MAP URI").to_string();

    let mut parts = Vec::new();
    let mut segments = Vec::new();
    let mut msn = media_sequence;
    let mut preload_hint = None;
    let mut uris = vec![map_uri.clone()];
    // (program date-time, duration in ms, discontinuity) of each complete segment.
    let mut timeline: Vec<(Option<i64>, i64, bool)> = Vec::new();
    let mut pdt = None;
    let mut discontinuity = false;
    let mut i = 0;
    while i < lines.len() {
        let line = lines[i];
        if let Some(v) = line.strip_prefix("#EXT-X-PROGRAM-DATE-TIME:") {
            pdt = Some(parse_pdt(v).unwrap_or_else(|| panic!("bad date-time {v}")));
        }
        if line == "#EXT-X-DISCONTINUITY" {
            discontinuity = true;
        }
        if let Some(v) = line.strip_prefix("#EXTINF:") {
            let d: f64 = v
                .trim_end_matches(',')
                .split(',')
                .next()
                .and_then(|d| d.parse().ok())
                .expect("EXTINF");
            assert!(
                d.round() as u64 <= target,
                "EXTINF {d} rounds above TARGETDURATION {target}: {text}"
            );
            let uri = lines.get(i + 1).expect("segment URI").to_string();
            assert!(!uri.starts_with('#'), "EXTINF not followed by a URI: {text}");
            assert_eq!(uri.split('?').next(), Some(format!("seg-{msn}.m4s").as_str()), "{text}");
            timeline.push((
                pdt.take(),
                (d * 1000.0).round() as i64,
                std::mem::take(&mut discontinuity),
            ));
            segments.push((msn, uri.clone()));
            uris.push(uri);
            msn += 1;
            i += 2;
            continue;
        }
        if line.starts_with("#EXT-X-PART:") {
            let d: f64 =
                attr(line, "DURATION").and_then(|v| v.parse().ok()).expect("PART DURATION");
            assert!(d <= part_target, "PART duration {d} > PART-TARGET {part_target}: {line}");
            let uri = attr(line, "URI").expect("PART URI");
            let name = part_name(uri).unwrap_or_else(|| panic!("part URI {uri}"));
            assert_eq!(name.0, msn, "part {uri} listed under segment {msn}: {text}");
            parts.push(name);
            uris.push(uri.to_string());
        }
        if line.starts_with("#EXT-X-PRELOAD-HINT:") {
            assert_eq!(attr(line, "TYPE"), Some("PART"), "{line}");
            let uri = attr(line, "URI").expect("hint URI");
            preload_hint = Some(part_name(uri).unwrap_or_else(|| panic!("hint URI {uri}")));
            uris.push(uri.to_string());
        }
        i += 1;
    }
    // Program date-time is continuous: each segment starts where the previous one ended.
    for w in timeline.windows(2) {
        if let ((Some(a), dur, _), (Some(b), _, false)) = (w[0], w[1]) {
            assert!(
                (b - a - dur).abs() <= 1,
                "PROGRAM-DATE-TIME jumps by {} ms: {text}",
                b - a - dur
            );
        }
    }
    assert!(
        timeline.first().is_none_or(|t| t.0.is_some()),
        "first segment lacks PROGRAM-DATE-TIME: {text}"
    );
    let preload_hint = preload_hint.unwrap_or_else(|| panic!("no EXT-X-PRELOAD-HINT: {text}"));
    if let Some(last) = parts.last() {
        assert!(
            preload_hint > *last,
            "preload hint {preload_hint:?} not after the last part {last:?}"
        );
    }
    for w in parts.windows(2) {
        assert!(w[0] < w[1], "parts out of order: {:?}", parts);
    }
    if let Some(sid) = sid {
        for uri in &uris {
            assert!(uri.ends_with(&format!("?sid={sid}")), "URI {uri} lacks the session id {sid}");
        }
    }
    MediaPlaylist { media_sequence, parts, segments, preload_hint, map_uri }
}

/// Fetch the multivariant playlist (waiting for the stream's first part) and check it.
/// Returns (session id, variant URI).
fn multivariant(origin: &Origin, stream: &str) -> (String, String) {
    let resp = wait_for(secs(15), || {
        let r = get(origin, &format!("/live/{stream}.m3u8"));
        (r.status == 200).then_some(r)
    })
    .unwrap_or_else(|| panic!("/live/{stream}.m3u8 never answered 200"));
    assert_eq!(resp.header("content-type"), Some(PLAYLIST_TYPE));
    assert_eq!(resp.header("access-control-allow-origin"), Some("*"));
    let text = resp.text();
    let lines: Vec<&str> = text.lines().collect();
    assert_eq!(lines.first(), Some(&"#EXTM3U"), "{text}");
    let inf = lines
        .iter()
        .position(|l| l.starts_with("#EXT-X-STREAM-INF:"))
        .unwrap_or_else(|| panic!("{text}"));
    let bandwidth: u64 =
        attr(lines[inf], "BANDWIDTH").and_then(|v| v.parse().ok()).expect("BANDWIDTH");
    assert!(bandwidth > 100_000, "BANDWIDTH {bandwidth}");
    let codecs = attr(lines[inf], "CODECS").expect("CODECS");
    assert!(codecs.contains("avc1.") && codecs.contains("mp4a.40.2"), "{codecs}");
    assert_eq!(attr(lines[inf], "RESOLUTION"), Some("1280x720"));
    let uri = lines.get(inf + 1).expect("variant URI").to_string();
    let sid = uri
        .strip_prefix(&format!("{stream}/index.m3u8?sid="))
        .unwrap_or_else(|| panic!("variant URI {uri}"))
        .to_string();
    assert!(sid.len() == 32 && sid.bytes().all(|b| b.is_ascii_hexdigit()), "sid {sid}");
    (sid, uri)
}

/// ffmpeg plays the stream over HLS while the playlist is reloaded and checked.
#[test]
fn ffmpeg_plays_hls_and_playlists_follow_the_rfc() {
    let origin = Origin::start(&[]);
    let fixture = h264_aac();
    let started = Instant::now();
    let mut publisher = Publisher::start(&origin.rtmp_url("live", "s"), &fixture.path);
    let (sid, uri) = multivariant(&origin, "s");

    // The session is a viewer, in /api/streams and in the metrics: the only one so far.
    let info = origin.stream_info("live", "s").expect("live/s listed");
    assert_eq!(info["viewers"].as_u64(), Some(1), "{info}");
    assert_eq!(origin.metrics().value("sluice_viewers", &[("protocol", "hls")]), 1.0);

    let player_start = started.elapsed();
    let player = Player::start(&format!("http://{}/live/s.m3u8", origin.http));

    // Reload the media playlist (as a LL-HLS client would, with the session id) while the
    // stream plays: each one valid, media sequence and parts never going back.
    let mut last_seq = 0;
    let mut last_part = (0, 0);
    let mut seen_segments = HashSet::new();
    let mut reloads = 0;
    while publisher.is_running() && started.elapsed() < secs(30) {
        let resp = get(&origin, &format!("/live/{uri}"));
        assert_eq!(resp.status, 200, "{}", resp.text());
        assert_eq!(resp.header("content-type"), Some(PLAYLIST_TYPE));
        assert_eq!(resp.header("cache-control"), Some("public, max-age=1"));
        let pl = check_media_playlist(&resp.text(), Some(&sid));
        assert!(
            pl.media_sequence >= last_seq,
            "MEDIA-SEQUENCE went back: {} -> {}",
            last_seq,
            pl.media_sequence
        );
        if let Some(p) = pl.parts.last() {
            assert!(*p >= last_part, "last part went back: {last_part:?} -> {p:?}");
            last_part = *p;
        }
        last_seq = pl.media_sequence;
        seen_segments.extend(pl.segments.iter().map(|(m, _)| *m));
        reloads += 1;
        std::thread::sleep(Duration::from_millis(400));
    }
    assert!(publisher.wait(secs(20)).is_some(), "publisher did not finish");
    assert!(reloads >= 5, "only {reloads} reloads");
    assert!(seen_segments.len() >= 3, "segments seen: {seen_segments:?}");

    let result = player.finish(secs(4), secs(30));
    assert!(result.errors.is_empty(), "ffmpeg HLS decode errors: {:?}", result.errors);
    // ffmpeg's HLS demuxer ignores parts: it starts up to 3 whole segments behind the live
    // edge (so it may get frames from before it started) and reads complete segments only.
    // The last segment is completed when the publisher leaves. So it must at least decode
    // what was published after it started, less one 2 s segment (60 frames) of slack for
    // the segment in progress when it joined; and never more than was published.
    let published = fixture.video_frames;
    eprintln!(
        "HLS: {} frames decoded of {published} published; player joined after {player_start:?}",
        result.frames
    );
    let after_start = published.saturating_sub((player_start.as_secs_f64() * 30.0).ceil() as u64);
    let min = after_start.saturating_sub(60).max(1);
    assert!(
        result.frames >= min && result.frames <= published,
        "decoded {} frames over HLS; expected {min}..={published} (player joined after {player_start:?})",
        result.frames
    );
}

/// Blocking reloads, blocking part requests, ffprobe of init + segment, error statuses, and an
/// idle session ending.
#[test]
fn blocking_reload_objects_and_sessions() {
    let origin = Origin::start(&["--hls-segment-target", "1s", "--hls-part-target", "500ms"]);
    let _publisher = Publisher::start_looped(&origin.rtmp_url("live", "b"), &h264_aac().path);

    // Unknown streams: 404 at once, without waiting for a publisher.
    for path in [
        "/live/nope.m3u8",
        "/live/nope/index.m3u8",
        "/live/nope/seg-0.m4s",
        "/live/nope/part-0.0.m4s",
    ] {
        let t = Instant::now();
        let r = get(&origin, path);
        assert_eq!(r.status, 404, "{path}");
        assert!(t.elapsed() < secs(2), "{path} took {:?}", t.elapsed());
    }

    let (_sid, _uri) = multivariant(&origin, "b");
    let viewers = |o: &Origin| o.stream_info("live", "b").and_then(|s| s["viewers"].as_u64());
    assert_eq!(viewers(&origin), Some(1));

    // A player that starts at the media playlist gets a session (and counts as a viewer) too:
    // it is redirected to the same playlist with a sid, its other parameters kept.
    let raw = http::get(origin.http, "/live/b/index.m3u8?_HLS_skip=YES", secs(15)).unwrap();
    assert_eq!(raw.status, 302, "{}", raw.text());
    let location = raw.header("location").expect("Location").to_string();
    assert!(
        location.starts_with("index.m3u8?sid=") && location.ends_with("&_HLS_skip=YES"),
        "{location}"
    );
    assert_eq!(viewers(&origin), Some(2));

    // The next part does not exist yet: a blocking reload for the part after it must wait
    // until both exist (at least ~one part duration of real time), then list them.
    let pl = check_media_playlist(&get(&origin, "/live/b/index.m3u8").text(), None);
    let (msn, index) = pl.preload_hint;
    let asked = (msn, index + 1);
    let t = Instant::now();
    let resp =
        get(&origin, &format!("/live/b/index.m3u8?_HLS_msn={}&_HLS_part={}", asked.0, asked.1));
    let waited = t.elapsed();
    eprintln!("blocking reload for {asked:?} answered after {waited:?}");
    assert_eq!(resp.status, 200, "{}", resp.text());
    assert_eq!(resp.header("cache-control"), Some("public, max-age=6"));
    let after = check_media_playlist(&resp.text(), None);
    let last = *after.parts.last().expect("parts");
    assert!(
        last > (msn, index),
        "asked for {asked:?} (hint was {:?}); last part listed {last:?}",
        pl.preload_hint
    );
    assert!(
        after.parts.contains(&(msn, index)),
        "the hinted part {:?} is not listed: {:?}",
        pl.preload_hint,
        after.parts
    );
    // Media is paced in real time (-re): two new parts take well over 200 ms to appear.
    assert!(waited >= Duration::from_millis(200), "blocking reload answered after only {waited:?}");
    assert!(waited < secs(6), "blocking reload took {waited:?}");

    // A request for the hinted (not yet existing) part waits for it and gets it.
    let (hm, hi) = after.preload_hint;
    let t = Instant::now();
    let part = get(&origin, &format!("/live/b/part-{hm}.{hi}.m4s"));
    assert_eq!(part.status, 200, "part-{hm}.{hi}: {}", part.text());
    assert!(t.elapsed() < secs(6));
    assert_eq!(part.header("content-type"), Some("video/mp4"));
    assert_eq!(part.header("cache-control"), Some("public, max-age=31536000, immutable"));
    assert_eq!(part.header("content-length"), Some(part.body.len().to_string().as_str()));
    assert!(part.body.len() > 8 && &part.body[4..8] == b"moof", "part does not start with moof");

    // Too far ahead: 400. A malformed name: 404.
    assert_eq!(get(&origin, &format!("/live/b/index.m3u8?_HLS_msn={}", hm + 100)).status, 400);
    assert_eq!(get(&origin, "/live/b/seg-01.m4s").status, 404);
    assert_eq!(get(&origin, "/live/b/index.m3u8?_HLS_part=1").status, 400);

    // A delta update request is answered with a valid playlist (EXT-X-SKIP appears once old
    // enough segments exist; the media crate's tests check its contents).
    let delta = get(&origin, "/live/b/index.m3u8?_HLS_skip=YES");
    assert_eq!(delta.status, 200);
    check_media_playlist(&delta.text(), None);

    // Init segment + one complete segment pass ffprobe: H.264 1280x720 and AAC.
    let (seg_msn, seg_uri) = after.segments.last().cloned().expect("a complete segment");
    let init = get(&origin, &format!("/live/b/{}", after.map_uri));
    assert_eq!(init.status, 200);
    assert_eq!(init.header("content-type"), Some("video/mp4"));
    let seg = get(&origin, &format!("/live/b/{seg_uri}"));
    assert_eq!(seg.status, 200, "seg-{seg_msn}");
    assert_eq!(seg.header("content-length"), Some(seg.body.len().to_string().as_str()));
    let file = origin.dir().path().join("init_seg.mp4");
    std::fs::write(&file, [init.body.as_slice(), seg.body.as_slice()].concat()).unwrap();
    let probe = ffprobe_streams(file.to_str().unwrap(), secs(20)).expect("ffprobe");
    let video = probe_streams(&probe, "video");
    let audio = probe_streams(&probe, "audio");
    assert_eq!(video.len(), 1, "{probe}");
    assert_eq!(video[0]["codec_name"], "h264", "{probe}");
    assert_eq!(
        (video[0]["width"].as_u64(), video[0]["height"].as_u64()),
        (Some(1280), Some(720)),
        "{probe}"
    );
    assert_eq!(audio.len(), 1, "{probe}");
    assert_eq!(audio[0]["codec_name"], "aac", "{probe}");

    // Nothing carried the session id since the multivariant fetch: the session ends after
    // 3 x target (3 s) and the viewer count drops back to 0.
    let gone = wait_for(secs(10), || (viewers(&origin) == Some(0)).then_some(()));
    assert!(
        gone.is_some(),
        "idle HLS session still counted: {:?}",
        origin.stream_info("live", "b")
    );
    assert_eq!(origin.metrics().value("sluice_viewers", &[("protocol", "hls")]), 0.0);
}

/// `--hls false`: a live stream has no HLS.
#[test]
fn hls_can_be_disabled() {
    let origin = Origin::start(&["--hls", "false"]);
    let _publisher = Publisher::start_looped(&origin.rtmp_url("live", "d"), &h264_aac().path);
    wait_for(secs(10), || origin.stream_info("live", "d")).expect("live/d listed");
    std::thread::sleep(Duration::from_millis(500));
    for path in ["/live/d.m3u8", "/live/d/index.m3u8"] {
        let r = get(&origin, path);
        assert_eq!(r.status, 404, "{path}");
        assert!(r.text().contains("disabled"), "{path}: {}", r.text());
    }
}

#[test]
fn program_date_time_parser() {
    assert_eq!(parse_pdt("1970-01-01T00:00:01.500Z"), Some(1500));
    assert_eq!(parse_pdt("2026-11-26T08:30:39.405Z"), Some(1_795_681_839_405));
    assert_eq!(parse_pdt("2026-11-26T08:30:39.405"), None);
}

/// A publisher that leaves and comes back while HLS viewers stay: the same segmenter keeps
/// counting (higher media sequence numbers, `EXT-X-DISCONTINUITY`), nothing is renumbered.
#[test]
fn returning_publisher_continues_numbering() {
    let origin = Origin::start(&["--hls-segment-target", "1s"]);
    let url = origin.rtmp_url("live", "r");
    let mut first = Publisher::start_looped(&url, &h264_aac().path);
    let (sid, uri) = multivariant(&origin, "r");
    let before = check_media_playlist(&get(&origin, &format!("/live/{uri}")).text(), Some(&sid));
    first.stop();
    wait_for(secs(10), || origin.stream_info("live", "r").is_none().then_some(()))
        .expect("live/r still listed after its publisher stopped");
    // The session keeps the stream's state while no one publishes: the playlist stays.
    let during = get(&origin, &format!("/live/{uri}"));
    assert_eq!(during.status, 200, "{}", during.text());
    let during = check_media_playlist(&during.text(), Some(&sid));
    let last_before = during.segments.last().map_or(0, |s| s.0);
    assert!(last_before >= before.segments.last().map_or(0, |s| s.0));

    let _second = Publisher::start_looped(&url, &h264_aac().path);
    let after = wait_for(secs(15), || {
        let r = get(&origin, &format!("/live/{uri}"));
        (r.status == 200 && r.text().lines().any(|l| l == "#EXT-X-DISCONTINUITY")).then(|| r.text())
    })
    .unwrap_or_else(|| panic!("no discontinuity after the publisher returned"));
    let pl = check_media_playlist(&after, Some(&sid));
    assert!(pl.media_sequence >= during.media_sequence, "MEDIA-SEQUENCE went back");
    // Every segment after the discontinuity has a higher number than any from before.
    let lines: Vec<&str> = after.lines().collect();
    let disc = lines.iter().position(|l| *l == "#EXT-X-DISCONTINUITY").unwrap();
    let next_seg = lines[disc..]
        .iter()
        .find_map(|l| l.strip_prefix("seg-").or_else(|| l.split("URI=\"part-").nth(1)))
        .and_then(|rest| rest.split(['.', '?']).next())
        .and_then(|n| n.parse::<u64>().ok())
        .unwrap_or_else(|| panic!("no media after the discontinuity: {after}"));
    assert!(
        next_seg > last_before,
        "segment {next_seg} after the break <= {last_before} before it"
    );
}
