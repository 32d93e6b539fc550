//! Transcoding ladders (#16), with real ffmpeg on both sides: a 1280x720 source gets the
//! ladder's smaller renditions, each a stream of its own at its size and bit rate; their HLS
//! segments start at the source's instants with the source's numbers; the transcoder's ffmpeg
//! dying is survived by the renditions' players; the source ending ends them; past
//! `--max-transcodes` a stream is delivered at source only.

use std::path::Path;

use sluice_tests::origin::TestDir;
use sluice_tests::process::wait_for;
use sluice_tests::{h264_aac, secs, Origin, Player, Publisher};

const LADDER: &str = r#"
[live]
renditions = [
  { name = "480p", height = 480, video-kbps = 1000 },
  { name = "240p", height = 240, video-kbps = 400, audio-kbps = 64, fps = 15 },
  { name = "1080p", height = 1080, video-kbps = 6000 },
]
"#;

fn origin_with_ladder(dir: &TestDir, extra: &[&str]) -> Origin {
    let ladder = dir.path().join("ladder.toml");
    std::fs::write(&ladder, LADDER).unwrap();
    // Every multivariant playlist this test reads starts a session per variant.
    let mut args = vec!["--ladder-file", ladder.to_str().unwrap()];
    args.extend_from_slice(&["--hls-sessions-per-ip", "1000"]);
    if !extra.contains(&"--ended-stream-linger") {
        args.extend_from_slice(&["--ended-stream-linger", "2s"]);
    }
    args.extend_from_slice(extra);
    Origin::start(&args)
}

/// Waits until `live/name` is live with a picture `height` tall.
fn wait_rendition(origin: &Origin, name: &str, height: u64) {
    wait_for(secs(40), || {
        origin.stream_info("live", name).filter(|s| s["video"]["height"] == height)
    })
    .unwrap_or_else(|| panic!("live/{name} never went live at {height}p:\n{}", origin.log()));
}

/// `[kind, pts_time, size]` of every packet of `file`.
fn packets(file: &Path) -> Vec<(String, f64, u64)> {
    let out = std::process::Command::new("ffprobe")
        .args(["-v", "error", "-show_entries", "packet=codec_type,pts_time,size", "-of", "csv=p=0"])
        .arg(file)
        .output()
        .unwrap();
    String::from_utf8_lossy(&out.stdout)
        .lines()
        .filter_map(|l| {
            let mut f = l.split(',');
            let kind = f.next()?.to_string();
            let pts = f.next()?.parse().ok()?;
            let size = f.next()?.parse().ok()?;
            Some((kind, pts, size))
        })
        .collect()
}

/// Kilobits per second of `kind` in `file`.
fn kbps(file: &Path, kind: &str) -> f64 {
    let p: Vec<_> = packets(file).into_iter().filter(|(k, _, _)| k == kind).collect();
    assert!(p.len() > 10, "{} has {} {kind} packets", file.display(), p.len());
    let first = p.iter().map(|x| x.1).fold(f64::MAX, f64::min);
    let last = p.iter().map(|x| x.1).fold(f64::MIN, f64::max);
    let bits: u64 = p.iter().map(|x| x.2 * 8).sum();
    bits as f64 / (last - first) / 1000.0
}

/// Records `seconds` of `url` (stream copy) into `file`.
fn record(url: &str, file: &Path, seconds: u32) {
    let status = std::process::Command::new("ffmpeg")
        .args(["-hide_banner", "-v", "error", "-y", "-i", url, "-c", "copy", "-t"])
        .arg(seconds.to_string())
        .arg(file)
        .status()
        .unwrap();
    assert!(status.success(), "recording {url}");
}

/// The TS media playlist of `live/name` (through its session redirect).
fn ts_playlist(origin: &Origin, name: &str) -> (String, String) {
    media_playlist(origin, name, "ts.m3u8")
}

/// `file`, a media playlist of `live/name`, through its session redirect; and the session's
/// query.
fn media_playlist(origin: &Origin, name: &str, file: &str) -> (String, String) {
    let path = format!("/live/{name}/{file}");
    let first = origin.get(&path);
    let location = first
        .headers
        .iter()
        .find(|(k, _)| k == "location")
        .map_or_else(|| panic!("{path}: {} without a location", first.status), |(_, v)| v.clone());
    let query = location.split_once('?').map(|(_, q)| q.to_string()).unwrap_or_default();
    let text = origin.get(&format!("{path}?{query}")).text();
    (text, query)
}

/// Media sequence number → (duration, segment URI) of a media playlist.
fn segments(text: &str) -> Vec<(u64, String, String)> {
    let mut msn: u64 = text
        .lines()
        .find_map(|l| l.strip_prefix("#EXT-X-MEDIA-SEQUENCE:"))
        .and_then(|v| v.trim().parse().ok())
        .expect("a media sequence");
    let mut out = Vec::new();
    let mut duration = None;
    for line in text.lines() {
        if let Some(d) = line.strip_prefix("#EXTINF:") {
            duration = Some(d.trim_end_matches(',').to_string());
        } else if !line.starts_with('#') && !line.is_empty() {
            out.push((msn, duration.take().unwrap_or_default(), line.to_string()));
            msn += 1;
        }
    }
    out
}

/// The first video presentation time in a TS segment.
fn first_video_pts(origin: &Origin, name: &str, uri: &str, dir: &TestDir) -> f64 {
    let body = origin.get(&format!("/live/{name}/{uri}"));
    assert_eq!(body.status, 200, "{name}/{uri}");
    let file = dir.path().join(format!("{name}.ts"));
    std::fs::write(&file, &body.body).unwrap();
    packets(&file).iter().find(|p| p.0 == "video").map(|p| p.1).expect("a video packet")
}

/// Frames ffmpeg decodes from the `map` stream of `url` in 60 frames' time (no errors).
fn decoded_frames(url: &str, map: &str) -> u64 {
    let out = std::process::Command::new("timeout")
        .args(["60", "ffmpeg", "-hide_banner", "-v", "error", "-i", url, "-map", map])
        .args(["-frames:v", "60", "-progress", "pipe:1", "-f", "null", "-"])
        .output()
        .unwrap();
    let said = String::from_utf8_lossy(&out.stderr);
    assert!(out.status.success() && said.trim().is_empty(), "{map}: {said}");
    String::from_utf8_lossy(&out.stdout)
        .lines()
        .filter_map(|l| l.strip_prefix("frame="))
        .filter_map(|v| v.trim().parse().ok())
        .max()
        .unwrap_or(0)
}

/// The ffmpeg processes the origin started.
fn transcoders(origin: &Origin) -> Vec<u32> {
    let mut out = Vec::new();
    for entry in std::fs::read_dir("/proc").unwrap().flatten() {
        let Ok(pid) = entry.file_name().to_string_lossy().parse::<u32>() else { continue };
        let Ok(stat) = std::fs::read_to_string(entry.path().join("stat")) else { continue };
        // pid (comm) state ppid ...
        let Some((comm, rest)) = stat.split_once(") ") else { continue };
        let ppid = rest.split(' ').nth(1).and_then(|p| p.parse::<u32>().ok());
        if comm.ends_with("(ffmpeg") && ppid == Some(origin.pid()) {
            out.push(pid);
        }
    }
    out
}

#[test]
fn a_ladder_gives_aligned_renditions_at_their_sizes_and_rates_that_outlive_a_transcoder_crash() {
    let dir = TestDir::new("transcode");
    let origin = origin_with_ladder(&dir, &[]);
    let mut publisher = Publisher::start_looped(&origin.rtmp_url("live", "cam"), &h264_aac().path);
    wait_rendition(&origin, "cam_480p", 480);
    wait_rendition(&origin, "cam_240p", 240);
    // Never upscaled: no 1080p rendition of a 720p source.
    assert!(origin.stream_info("live", "cam_1080p").is_none(), "{}", origin.streams());

    // Each rendition, as ffprobe sees it over HTTP-FLV: its size, its frame rate (the
    // source's 30, or the 15 the ladder asks), its bit rate within 15 %; the 240p one with AAC
    // at 64 kbit/s, the 480p one the source's.
    let mut recordings = Vec::new();
    for (name, width, height, video, audio, fps) in
        [("cam_480p", 852, 480, 1000.0, 128.0, 30.0), ("cam_240p", 426, 240, 400.0, 64.0, 15.0)]
    {
        let url = origin.flv_url("live", name);
        let probe = sluice_tests::ffprobe_streams(&url, secs(30)).unwrap();
        let v = &sluice_tests::ffmpeg::probe_streams(&probe, "video")[0];
        assert_eq!((v["width"].as_u64(), v["height"].as_u64()), (Some(width), Some(height)));
        assert_eq!(v["codec_name"], "h264", "{probe}");
        let a = &sluice_tests::ffmpeg::probe_streams(&probe, "audio")[0];
        assert_eq!(a["codec_name"], "aac", "{probe}");
        let file = dir.path().join(format!("{name}.flv"));
        recordings.push((
            name,
            (video, audio, fps),
            file.clone(),
            std::thread::spawn(move || {
                record(&url, &file, 10);
            }),
        ));
    }
    // Both renditions recorded at once, 10 s each.
    for (name, (video, audio, fps), file, recording) in recordings {
        recording.join().expect("recording thread");
        let (v_kbps, a_kbps) = (kbps(&file, "video"), kbps(&file, "audio"));
        assert!((v_kbps / video - 1.0).abs() <= 0.15, "{name}: video at {v_kbps:.0} kbit/s");
        assert!((a_kbps / audio - 1.0).abs() <= 0.15, "{name}: audio at {a_kbps:.0} kbit/s");
        let frames: Vec<f64> =
            packets(&file).into_iter().filter(|p| p.0 == "video").map(|p| p.1).collect();
        let span = frames.iter().copied().fold(f64::MIN, f64::max)
            - frames.iter().copied().fold(f64::MAX, f64::min);
        let rate = (frames.len() - 1) as f64 / span;
        assert!((rate / fps - 1.0).abs() <= 0.1, "{name}: {rate:.1} frames/s, not {fps}");
    }

    // A rendition plays alone over RTMP too.
    let probe = sluice_tests::ffprobe_streams(&origin.rtmp_url("live", "cam_240p"), secs(30))
        .unwrap_or_else(|e| panic!("RTMP live/cam_240p: {e}"));
    let v = &sluice_tests::ffmpeg::probe_streams(&probe, "video")[0];
    assert_eq!(v["height"].as_u64(), Some(240), "{probe}");

    // The multivariant playlist lists the source and every rendition (with BANDWIDTH,
    // RESOLUTION, CODECS, FRAME-RATE), and ffmpeg reading it decodes each of them.
    let master = origin.get("/live/cam.m3u8").text();
    for (size, name, fps) in [
        ("1280x720", "cam/", "30.000"),
        ("852x480", "cam_480p/", "30.000"),
        ("426x240", "cam_240p/", "15.000"),
    ] {
        let inf = master
            .lines()
            .zip(master.lines().skip(1))
            .find(|(_, uri)| uri.starts_with(name))
            .map_or_else(|| panic!("{name} not listed: {master}"), |(inf, _)| inf);
        for attr in ["BANDWIDTH=", "AVERAGE-BANDWIDTH=", "CODECS=\"avc1."] {
            assert!(inf.contains(attr), "{attr} missing: {inf}");
        }
        assert!(inf.contains(&format!("FRAME-RATE={fps}")), "{inf}");
        assert!(inf.contains(&format!("RESOLUTION={size}")), "{inf}");
    }
    // Each LL-HLS media playlist reports where the ladder's other streams are.
    // Listed without a session: a player starts one when it picks the rendition.
    assert!(master.lines().any(|l| l == "cam_480p/index.m3u8"), "{master}");
    let (media, _) = media_playlist(&origin, "cam_480p", "index.m3u8");
    let own: u64 = segments(&media).last().unwrap().0;
    for other in ["../cam/index.m3u8", "../cam_240p/index.m3u8"] {
        let report = media
            .lines()
            .find(|l| l.starts_with(&format!("#EXT-X-RENDITION-REPORT:URI=\"{other}\"")))
            .unwrap_or_else(|| panic!("no report of {other}: {media}"));
        let msn: u64 = report
            .split("LAST-MSN=")
            .nth(1)
            .and_then(|v| v.split(',').next())
            .and_then(|v| v.parse().ok())
            .unwrap_or_else(|| panic!("{report}"));
        assert!(msn.abs_diff(own) <= 1, "{report} beside {own}");
        assert!(report.contains(",LAST-PART="), "{report}");
    }
    let url = format!("http://{}/live/cam.m3u8", origin.http);
    let probe = sluice_tests::ffprobe_streams(&url, secs(30)).unwrap();
    let mut heights: Vec<u64> = sluice_tests::ffmpeg::probe_streams(&probe, "video")
        .iter()
        .filter_map(|v| v["height"].as_u64())
        .collect();
    heights.sort_unstable();
    assert_eq!(heights, [240, 480, 720], "{probe}");
    for variant in 0..3 {
        let frames = decoded_frames(&url, &format!("0:v:{variant}"));
        assert!(frames >= 60, "variant {variant}: {frames} frames");
    }

    // Segment boundaries coincide: a segment number every stream lists starts, in each, with
    // the same video frame, and lasts as long.
    let mut compared = 0;
    for name in ["cam_480p", "cam_240p"] {
        let (text, query) = ts_playlist(&origin, name);
        let rendition = segments(&text);
        // The source's playlist read after the rendition's: the source is never behind it.
        let (source, _) = ts_playlist(&origin, "cam");
        let source = segments(&source);
        assert!(!rendition.is_empty(), "{text}");
        for (msn, duration, uri) in rendition.iter().rev().take(2) {
            let Some((_, src_duration, src_uri)) = source.iter().find(|s| s.0 == *msn) else {
                panic!("segment {msn} of {name} is not the source's: {source:?}");
            };
            assert_eq!(duration, src_duration, "segment {msn} of {name}");
            let src_uri = src_uri.split('?').next().unwrap();
            let (_, src_query) = ts_playlist(&origin, "cam");
            let at = first_video_pts(&origin, "cam", &format!("{src_uri}?{src_query}"), &dir);
            let uri = uri.split('?').next().unwrap();
            let here = first_video_pts(&origin, name, &format!("{uri}?{query}"), &dir);
            assert!((here - at).abs() < 0.002, "segment {msn}: {name} at {here}, source at {at}");
            compared += 1;
        }
    }
    assert_eq!(compared, 4);

    // The transcoder's ffmpeg dies: it is restarted, and a player of a rendition plays on.
    let mut player = Player::start(&origin.flv_url("live", "cam_480p"));
    assert!(player.wait_frames(60, secs(30)) >= 60, "{:?}", player.errors());
    let before = transcoders(&origin);
    assert_eq!(before.len(), 1, "one ffmpeg for the stream's whole ladder: {before:?}");
    let _ = std::process::Command::new("kill").args(["-9", &before[0].to_string()]).status();
    wait_for(secs(20), || {
        let now = transcoders(&origin);
        (now.len() == 1 && now != before).then_some(())
    })
    .unwrap_or_else(|| panic!("no new transcoder:\n{}", origin.log()));
    assert_eq!(origin.metrics().value("sluice_transcode_restarts_total", &[]), 1.0);
    let played = player.frames();
    assert!(
        player.wait_frames(played + 90, secs(30)) >= played + 90,
        "the player stopped after the restart at {played} frames: {:?}\n{}",
        player.errors(),
        origin.log()
    );
    assert!(player.is_running());

    // The source ends: so do its renditions and its transcoder.
    publisher.stop();
    wait_for(secs(30), || {
        let gone = origin.stream_info("live", "cam_480p").is_none()
            && origin.stream_info("live", "cam_240p").is_none();
        (gone && transcoders(&origin).is_empty()).then_some(())
    })
    .unwrap_or_else(|| panic!("renditions or ffmpeg left: {}\n{}", origin.streams(), origin.log()));
    assert_eq!(origin.metrics().value("sluice_transcodes", &[]), 0.0);
}

#[test]
fn past_its_max_transcodes_a_node_delivers_streams_at_source_only_and_says_so() {
    let dir = TestDir::new("transcode-cap");
    let origin = origin_with_ladder(&dir, &["--max-transcodes", "1"]);
    let fixture = h264_aac();
    let _a = Publisher::start_looped(&origin.rtmp_url("live", "a"), &fixture.path);
    wait_rendition(&origin, "a_480p", 480);
    let _b = Publisher::start_looped(&origin.rtmp_url("live", "b"), &fixture.path);
    wait_for(secs(20), || origin.stream_info("live", "b").filter(|s| !s["video"].is_null()))
        .expect("live/b is live");
    wait_for(secs(10), || {
        (origin.metrics().value("sluice_transcodes_refused_total", &[]) == 1.0).then_some(())
    })
    .unwrap_or_else(|| panic!("no refusal counted:\n{}", origin.log()));
    std::thread::sleep(secs(3));
    assert!(origin.stream_info("live", "b_480p").is_none(), "{}", origin.streams());
    assert!(origin.log().contains("delivered at source only"), "{}", origin.log());
    assert_eq!(origin.metrics().value("sluice_transcodes", &[]), 1.0);
    // The source itself plays.
    let mut player = Player::start(&origin.flv_url("live", "b"));
    assert!(player.wait_frames(60, secs(30)) >= 60, "{:?}", player.errors());
}

#[test]
fn a_source_larger_than_the_bound_is_not_transcoded() {
    let dir = TestDir::new("transcode-too-large");
    // 1280x720 is 921 600 pixels.
    let origin = origin_with_ladder(&dir, &["--transcode-max-source-pixels", "640000"]);
    let _a = Publisher::start_looped(&origin.rtmp_url("live", "big"), &h264_aac().path);
    wait_for(secs(20), || {
        (origin.metrics().value("sluice_transcodes_refused_total", &[]) == 1.0).then_some(())
    })
    .unwrap_or_else(|| panic!("no refusal counted:\n{}", origin.log()));
    assert!(origin.log().contains("larger than --transcode-max-source-pixels"), "{}", origin.log());
    assert!(origin.stream_info("live", "big_480p").is_none(), "{}", origin.streams());
    assert!(!origin.log().contains("transcoding width"), "{}", origin.log());
}

#[test]
fn a_hung_transcoder_is_killed_and_restarted() {
    let dir = TestDir::new("transcode-stall");
    let origin = origin_with_ladder(&dir, &["--transcode-stall-timeout", "3s"]);
    let _publisher = Publisher::start_looped(&origin.rtmp_url("live", "cam"), &h264_aac().path);
    wait_rendition(&origin, "cam_240p", 240);
    let hung = transcoders(&origin);
    assert_eq!(hung.len(), 1, "{hung:?}");
    // Stopped, it takes no input and writes nothing, as a hung encoder.
    let _ = std::process::Command::new("kill").args(["-STOP", &hung[0].to_string()]).status();
    wait_for(secs(20), || {
        let now = transcoders(&origin);
        (now.len() == 1 && now != hung).then_some(())
    })
    .unwrap_or_else(|| panic!("the hung ffmpeg was not replaced:\n{}", origin.log()));
    assert!(origin.log().contains("ffmpeg wrote nothing: killed"), "{}", origin.log());
    assert_eq!(origin.metrics().value("sluice_transcode_restarts_total", &[]), 1.0);
    // The new one makes the rendition again.
    let mut player = Player::start(&origin.flv_url("live", "cam_240p"));
    assert!(player.wait_frames(60, secs(30)) >= 60, "{:?}", player.errors());
}

#[test]
fn a_publisher_that_comes_back_within_the_linger_keeps_its_renditions_and_their_viewers() {
    let dir = TestDir::new("transcode-reconnect");
    let origin = origin_with_ladder(&dir, &["--ended-stream-linger", "10s"]);
    let url = origin.rtmp_url("live", "cam");
    let mut first = Publisher::start_looped(&url, &h264_aac().path);
    wait_rendition(&origin, "cam_480p", 480);
    let mut player = Player::start(&origin.flv_url("live", "cam_480p"));
    assert!(player.wait_frames(60, secs(30)) >= 60, "{:?}", player.errors());
    first.stop();
    std::thread::sleep(secs(1));
    let _second = Publisher::start_looped(&url, &h264_aac().path);
    let played = player.frames();
    assert!(
        player.wait_frames(played + 90, secs(30)) >= played + 90,
        "the rendition's player stopped at {played} frames: {:?}\n{}",
        player.errors(),
        origin.log()
    );
    assert_eq!(transcoders(&origin).len(), 1, "one ffmpeg for the stream");
    assert_eq!(origin.metrics().value("sluice_transcodes", &[]), 1.0);
    assert_eq!(origin.metrics().value("sluice_transcode_restarts_total", &[]), 0.0);
}

/// One RTMP connection publishes 1280x720 (16:9), then 640x480 (4:3) with new sequence
/// headers: the transcoder makes a new plan. The 240p rendition goes on under its name at the
/// new aspect ratio (320x240); the 480p one ends, the source being no taller than it.
#[test]
fn a_source_that_changes_size_gets_a_new_plan() {
    use crate::media_changes::{clip_tags, make_clip};
    use sluice_media::frame::MediaMessage;
    use sluice_media::rtmp::client::ClientMode;
    use sluice_tests::rtmp::RtmpClient;
    use std::time::{Duration, Instant};

    let dir = TestDir::new("transcode-resize");
    let origin = origin_with_ladder(&dir, &[]);
    let wide = clip_tags(&make_clip(dir.path(), "1280x720", 6));
    let square = clip_tags(&make_clip(dir.path(), "640x480", 8));
    let offset = wide.iter().map(|t| t.timestamp).max().unwrap() + 33;
    let mut schedule = wide;
    schedule.extend(
        square.iter().map(|t| MediaMessage { timestamp: t.timestamp + offset, ..t.clone() }),
    );
    let addr = origin.rtmp;
    let sender = std::thread::spawn(move || -> anyhow::Result<()> {
        let mut publisher = RtmpClient::connect(addr, "live", "resize", ClientMode::Publish)?;
        publisher.expect_status("NetStream.Publish.Start", secs(10))?;
        let start = Instant::now();
        for tag in &schedule {
            let due = start + Duration::from_millis(u64::from(tag.timestamp));
            while Instant::now() < due {
                publisher.pump(
                    due.saturating_duration_since(Instant::now()).min(Duration::from_millis(20)),
                )?;
            }
            publisher.send_media(tag)?;
        }
        publisher.pump_for(Duration::from_millis(300))?;
        publisher.close();
        Ok(())
    });
    let size = |name: &str| {
        origin
            .stream_info("live", name)
            .map(|s| (s["video"]["width"].clone(), s["video"]["height"].clone()))
    };
    wait_for(secs(20), || (size("resize_240p") == Some((426.into(), 240.into()))).then_some(()))
        .unwrap_or_else(|| panic!("no 426x240 rendition: {}\n{}", origin.streams(), origin.log()));
    assert_eq!(size("resize_480p"), Some((852.into(), 480.into())), "{}", origin.streams());
    // After the change: the same 240p rendition at 4:3, and no 480p one.
    wait_for(secs(20), || (size("resize_240p") == Some((320.into(), 240.into()))).then_some(()))
        .unwrap_or_else(|| {
            panic!("240p never became 320x240: {}\n{}", origin.streams(), origin.log())
        });
    wait_for(secs(10), || {
        origin.stream_info("live", "resize_480p").is_none_or(|s| s["video"].is_null()).then_some(())
    })
    .unwrap_or_else(|| panic!("480p outlived the plan: {}", origin.streams()));
    assert!(origin.log().contains("the source changed size: a new plan"), "{}", origin.log());
    assert_eq!(origin.metrics().value("sluice_transcode_restarts_total", &[]), 0.0, "no crash");
    sender.join().unwrap().unwrap();
}
