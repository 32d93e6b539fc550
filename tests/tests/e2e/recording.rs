//! Recording (#15, first step): an origin records the streams of `--record-apps` as the HLS
//! segmenter's CMAF segments with an index, and a finished recording plays back as HLS VOD from
//! `/vod/...`. A publisher that comes back while the stream lingers continues the same
//! recording as a second period, and the whole plays through.

use std::path::{Path, PathBuf};
use std::process::Command;

use sluice_cluster::signed_token::{sign, Purpose};
use sluice_media::stream_name::StreamKey;
use sluice_tests::ffmpeg::run_with_timeout;
use sluice_tests::origin::TestDir;
use sluice_tests::process::wait_for;
use sluice_tests::{h264_aac, play_count_frames, secs, Origin, Publisher};

/// The recordings (their directories) of `app/name` under `root`.
pub(crate) fn recordings(root: &Path, app: &str, name: &str) -> Vec<PathBuf> {
    let Ok(dirs) = std::fs::read_dir(root.join(app).join(name)) else { return Vec::new() };
    let mut dirs: Vec<PathBuf> = dirs.flatten().map(|d| d.path()).collect();
    dirs.sort();
    dirs
}

/// No file a write left aside (`*.part`) in the recording `rec`.
pub(crate) fn assert_nothing_half_written(rec: &Path) {
    let stray: Vec<_> = std::fs::read_dir(rec)
        .unwrap()
        .flatten()
        .filter(|e| e.path().extension().is_some_and(|x| x == "part"))
        .collect();
    assert!(stray.is_empty(), "{stray:?}");
}

pub(crate) fn ffprobe_duration(url: &str) -> f64 {
    let (_, out, err) = run_with_timeout(
        Command::new("ffprobe").args([
            "-v",
            "error",
            "-show_entries",
            "format=duration",
            "-of",
            "csv=p=0",
            url,
        ]),
        secs(30),
    )
    .expect("run ffprobe");
    out.trim().parse().unwrap_or_else(|_| panic!("ffprobe duration of {url}: {out:?} {err}"))
}

/// Each period's files in order: its init segment, then its segments.
fn periods(index: &str) -> Vec<Vec<String>> {
    let mut periods: Vec<Vec<String>> = Vec::new();
    for line in index.lines() {
        if line == "#EXT-X-DISCONTINUITY" || periods.is_empty() && line.starts_with("#EXT-X-MAP") {
            periods.push(Vec::new());
        }
        if let Some(uri) = line.strip_prefix("#EXT-X-MAP:URI=\"") {
            periods.last_mut().unwrap().push(uri.trim_end_matches('"').to_string());
        } else if line.starts_with("seg-") {
            periods.last_mut().unwrap().push(line.to_string());
        }
    }
    periods
}

fn count_video_frames(file: &Path) -> u64 {
    let (_, out, err) = run_with_timeout(
        Command::new("ffprobe")
            .args([
                "-v",
                "error",
                "-count_frames",
                "-select_streams",
                "v",
                "-show_entries",
                "stream=nb_read_frames",
                "-of",
                "csv=p=0",
            ])
            .arg(file),
        secs(30),
    )
    .expect("run ffprobe");
    assert!(err.trim().is_empty(), "{}: {err}", file.display());
    out.trim().parse().unwrap_or_else(|_| panic!("{}: {out:?}", file.display()))
}

#[test]
fn a_recorded_stream_with_a_reconnect_plays_back_as_hls_vod_in_two_periods() {
    let fixture = h264_aac(); // 10 s, 300 video frames
    let dir = TestDir::new("recording");
    let root = dir.path().join("recordings");
    let root_arg = root.to_str().unwrap();
    let origin = Origin::start(&[
        "--record-dir",
        root_arg,
        "--record-apps",
        "live",
        "--ended-stream-linger",
        "3s",
    ]);
    let url = origin.rtmp_url("live", "rec");

    // Two publishes of the fixture, the second while the stream lingers: one recording.
    for round in 1..=2 {
        let mut publisher = Publisher::start(&url, &fixture.path);
        let status = publisher.wait(secs(40)).expect("the publisher ran past 40 s");
        assert!(status.success(), "publish {round}: {:?}", publisher.stderr());
    }
    let index = wait_for(secs(30), || {
        let rec = recordings(&root, "live", "rec");
        let text = std::fs::read_to_string(rec.first()?.join("index.m3u8")).ok()?;
        text.contains("#EXT-X-ENDLIST").then_some(text)
    })
    .unwrap_or_else(|| panic!("no finished recording under {root_arg}: {}", origin.log()));
    let recs = recordings(&root, "live", "rec");
    assert_eq!(recs.len(), 1, "one recording for the reconnect: {recs:?}");
    assert!(index.contains("#EXT-X-PLAYLIST-TYPE:VOD"), "{index}");
    assert_eq!(index.matches("#EXT-X-DISCONTINUITY").count(), 1, "two periods: {index}");
    let listed: f64 = index
        .lines()
        .filter_map(|l| l.strip_prefix("#EXTINF:"))
        .map(|l| l.trim_end_matches(',').parse::<f64>().unwrap())
        .sum();
    assert!((listed - 20.0).abs() <= 1.0, "the index lists {listed} s: {index}");
    // Every file the index names is there, and nothing half-written is left.
    let rec = &recs[0];
    for name in index.lines().filter(|l| l.starts_with("seg-")) {
        assert!(rec.join(name).is_file(), "{name} missing");
    }
    assert_nothing_half_written(rec);

    // Played back over HTTP as VOD: the full length, every frame decoding.
    let id = rec.file_name().unwrap().to_str().unwrap();
    let vod = format!("http://{}/vod/live/rec/{id}/index.m3u8", origin.http);
    let duration = ffprobe_duration(&vod);
    assert!((duration - 20.0).abs() <= 1.0, "ffprobe says {duration} s");
    let played = play_count_frames(&vod, secs(60));
    assert!(played.errors.is_empty(), "{:?}", played.errors);
    // ffmpeg's HLS demuxer drops ~0.5 s where the second period's timeline starts again
    // from zero; each period on its own holds every frame (below).
    assert!((570..=600).contains(&played.frames), "{} of 600 frames decoded", played.frames);
    for (period, files) in periods(&index).iter().enumerate() {
        let mut mp4 = Vec::new();
        for f in files {
            mp4.extend(std::fs::read(rec.join(f)).unwrap());
        }
        let path = dir.path().join(format!("period-{period}.mp4"));
        std::fs::write(&path, mp4).unwrap();
        let frames = count_video_frames(&path);
        assert_eq!(frames, 300, "period {period}: {files:?}");
    }

    let metrics = origin.metrics();
    assert!(metrics.value("sluice_recording_bytes_total", &[]) > 1_000_000.0);
    assert_eq!(metrics.value("sluice_recording_errors_total", &[]), 0.0);
    // Names a recording does not hold are 404 (and never reach the disk).
    for path in [
        format!("/vod/live/rec/{id}/index.m3u8.part"),
        format!("/vod/live/rec/{id}/..%2Findex.m3u8"),
        "/vod/live/rec/1/index.m3u8".to_string(),
    ] {
        assert_eq!(origin.get(&path).status, 404, "{path}");
    }
}

#[test]
fn recording_settings_are_both_or_neither() {
    for (args, why) in [
        (&["--record-apps", "live"][..], "--record-apps needs --record-dir or --record-store"),
        (&["--record-dir", "/tmp/x"][..], "--record-dir needs --record-apps"),
        (&["--record-store", "s3://b/p"][..], "--record-store needs --record-apps"),
        (&["--record-store", "/tmp/x", "--record-apps", "live"][..], "s3://BUCKET[/PREFIX]"),
        (&["--record-store", "s3://b", "--record-dir", "/tmp/x"][..], "cannot be used with"),
        (
            &["--record-dir", "/tmp/x", "--record-apps", "live", "--hls", "false"][..],
            "--record-apps needs HLS on",
        ),
    ] {
        let out = Command::new(sluice_tests::paths::binary("sluice-origin"))
            .args(args)
            .output()
            .expect("run sluice-origin");
        assert_eq!(out.status.code(), Some(2), "{args:?}");
        let err = String::from_utf8_lossy(&out.stderr);
        assert!(err.contains(why), "{args:?}: {err}");
    }
}

#[test]
fn an_origin_killed_while_recording_leaves_a_recording_that_plays_up_to_the_segment_in_flight() {
    let fixture = h264_aac();
    let dir = TestDir::new("recording-kill");
    let root = dir.path().join("recordings");
    let root_arg = root.to_str().unwrap();
    let args = ["--record-dir", root_arg, "--record-apps", "*"];
    let origin = Origin::start(&args);
    let started = std::time::Instant::now();
    let _publisher = Publisher::start_looped(&origin.rtmp_url("live", "crash"), &fixture.path);
    let index_of = || {
        let rec = recordings(&root, "live", "crash");
        std::fs::read_to_string(rec.first()?.join("index.m3u8")).ok()
    };
    wait_for(secs(30), || index_of().filter(|t| t.matches("seg-").count() >= 3))
        .unwrap_or_else(|| panic!("three segments never recorded: {}", origin.log()));
    std::thread::sleep(std::time::Duration::from_millis(700)); // mid-segment
    let status = Command::new("kill").args(["-9", &origin.pid().to_string()]).status().unwrap();
    assert!(status.success());
    let elapsed = started.elapsed().as_secs_f64();
    drop(origin);
    let left = index_of().unwrap();
    assert!(!left.contains("#EXT-X-ENDLIST"), "the crash left the index open: {left}");

    // The next start finishes it: VOD, nothing half-written, everything listed plays.
    let again = Origin::start(&args);
    let rec = recordings(&root, "live", "crash").remove(0);
    let index = std::fs::read_to_string(rec.join("index.m3u8")).unwrap();
    assert!(index.contains("#EXT-X-PLAYLIST-TYPE:VOD") && index.ends_with("#EXT-X-ENDLIST\n"));
    let segments = index.matches("seg-").count();
    assert_nothing_half_written(&rec);
    let id = rec.file_name().unwrap().to_str().unwrap();
    let vod = format!("http://{}/vod/live/crash/{id}/index.m3u8", again.http);
    let duration = ffprobe_duration(&vod);
    // Lost: the segment in flight, the one being completed, and the publisher's start-up.
    assert!(duration >= elapsed - 5.0, "{duration} s recorded of {elapsed:.1} s published");
    let played = play_count_frames(&vod, secs(60));
    assert!(played.errors.is_empty(), "{:?}", played.errors);
    assert_eq!(played.frames, 60 * segments as u64, "{segments} segments of 60 frames");
}

#[test]
fn retention_deletes_an_apps_oldest_finished_recordings_once_it_is_over_its_budget() {
    let fixture = sluice_tests::h264_small();
    let size = std::fs::metadata(&fixture.path).unwrap().len();
    // Room for two and a half recordings of the fixture: the third one pushes the first out.
    let budget = (size * 5 / 2).to_string();
    let dir = TestDir::new("recording-retention");
    let root = dir.path().join("recordings");
    let origin = Origin::start(&[
        "--record-dir",
        root.to_str().unwrap(),
        "--record-apps",
        "*",
        "--record-max-bytes",
        &budget,
        "--ended-stream-linger",
        "1s",
    ]);
    let mut publishers = Vec::new();
    for name in ["r1", "r2", "r3"] {
        publishers.push(Publisher::start(&origin.rtmp_url("live", name), &fixture.path));
        std::thread::sleep(std::time::Duration::from_millis(1500));
    }
    // Another app has a budget of its own.
    let mut other = Publisher::start(&origin.rtmp_url("other", "o1"), &fixture.path);
    for p in publishers.iter_mut().chain([&mut other]) {
        assert!(p.wait(secs(40)).is_some_and(|s| s.success()), "{:?}", p.stderr());
    }
    let finished = |name: &str| {
        recordings(&root, if name == "o1" { "other" } else { "live" }, name).first().is_some_and(
            |r| std::fs::read_to_string(r.join("index.m3u8")).is_ok_and(|t| t.contains("ENDLIST")),
        )
    };
    wait_for(secs(20), || (recordings(&root, "live", "r1").is_empty()).then_some(()))
        .unwrap_or_else(|| panic!("the oldest recording was kept: {}", origin.log()));
    wait_for(secs(20), || ["r2", "r3", "o1"].iter().all(|n| finished(n)).then_some(()))
        .unwrap_or_else(|| panic!("recordings did not finish: {}", origin.log()));
    std::thread::sleep(std::time::Duration::from_secs(1)); // a sweep after the last finished
    assert!(recordings(&root, "live", "r1").is_empty());
    for name in ["r2", "r3", "o1"] {
        assert!(finished(name), "{name} was deleted");
    }
    let metrics = origin.metrics();
    assert_eq!(metrics.value("sluice_recordings_deleted_total", &[]), 1.0);
    assert!(origin.log().contains("recording deleted by retention"));
}

#[test]
fn a_private_apps_recording_plays_only_from_its_signed_url_which_the_index_hands_on() {
    let fixture = sluice_tests::h264_small(); // 10 s, 300 video frames
    let dir = TestDir::new("recording-private");
    let root = dir.path().join("recordings");
    let secret = "a-play-secret-long-enough";
    let secret_file = dir.path().join("play-secret");
    std::fs::write(&secret_file, secret).unwrap();
    let origin = Origin::start(&[
        "--record-dir",
        root.to_str().unwrap(),
        "--record-apps",
        "vip",
        "--play-private-apps",
        "vip",
        "--play-token-secret-file",
        secret_file.to_str().unwrap(),
        "--ended-stream-linger",
        "1s",
    ]);
    let mut publisher = Publisher::start(&origin.rtmp_url("vip", "talk"), &fixture.path);
    assert!(publisher.wait(secs(40)).is_some_and(|s| s.success()), "{:?}", publisher.stderr());
    let rec = wait_for(secs(20), || {
        let rec = recordings(&root, "vip", "talk").into_iter().next()?;
        let text = std::fs::read_to_string(rec.join("index.m3u8")).ok()?;
        text.contains("#EXT-X-ENDLIST").then_some(rec)
    })
    .unwrap_or_else(|| panic!("no finished recording: {}", origin.log()));
    let id = rec.file_name().unwrap().to_str().unwrap().to_string();
    let segment = std::fs::read_to_string(rec.join("index.m3u8"))
        .unwrap()
        .lines()
        .find(|l| l.starts_with("seg-"))
        .unwrap()
        .to_string();
    let base = format!("/vod/vip/talk/{id}");
    let key = StreamKey::parse("vip", "talk").unwrap().0;
    let now = std::time::SystemTime::now().duration_since(std::time::UNIX_EPOCH).unwrap().as_secs();
    let token = sign(secret.as_bytes(), Purpose::Play, &key, now + 600);
    let other =
        sign(secret.as_bytes(), Purpose::Play, &StreamKey::parse("vip", "x").unwrap().0, now + 600);

    // Without the stream's signed URL: refused, with the reason, for the index and its files.
    for path in [
        format!("{base}/index.m3u8"),
        format!("{base}/{segment}"),
        format!("{base}/index.m3u8?token={other}"),
        format!("{base}.mp4"),
        format!("{base}.mp4?token={other}"),
        "/vod/vip/talk/dvr.m3u8".to_string(),
    ] {
        let resp = origin.get(&path);
        assert_eq!(resp.status, 403, "{path}");
        assert!(resp.text().contains("vip"), "{path}: {}", resp.text());
    }
    // With it: the index names every file with the token, and the whole recording plays.
    let index = origin.get(&format!("{base}/index.m3u8?token={token}")).text();
    let uris: Vec<&str> =
        index.lines().filter(|l| l.starts_with("seg-") || l.starts_with("#EXT-X-MAP")).collect();
    assert!(
        !uris.is_empty() && uris.iter().all(|l| l.contains(&format!("?token={token}"))),
        "{index}"
    );
    let url = format!("http://{}{base}/index.m3u8?token={token}", origin.http);
    assert!((ffprobe_duration(&url) - 10.0).abs() <= 1.0);
    let played = play_count_frames(&url, secs(60));
    assert!(played.errors.is_empty(), "{:?}", played.errors);
    assert_eq!(played.frames, fixture.video_frames);
    // The MP4 download too: refused above, served with the token.
    let mp4 = origin.get(&format!("{base}.mp4?token={token}"));
    assert_eq!(mp4.status, 200, "{}", mp4.text());
    assert_eq!(&mp4.body[4..8], b"ftyp");
    assert!(
        origin.metrics().value("sluice_plays_unauthorized_total", &[("protocol", "hls")]) >= 6.0
    );
}
