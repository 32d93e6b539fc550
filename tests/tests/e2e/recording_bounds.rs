//! Recording's bounds (#15): a recording that reaches `--record-max-duration` is finished and
//! the stream goes on in a new one, with nothing lost between them; below `--record-min-free`
//! nothing is written, the misses are counted and said, and the live stream plays on.

use sluice_tests::origin::TestDir;
use sluice_tests::process::wait_for;
use sluice_tests::{h264_aac, play_count_frames, secs, Origin, Publisher};

use crate::recording::{assert_nothing_half_written, ffprobe_duration, recordings};

#[test]
fn a_recording_past_its_max_duration_goes_on_in_the_next_one_and_together_they_hold_every_frame() {
    let fixture = h264_aac(); // 10 s, 300 video frames, a keyframe (and a segment) every 2 s
    let dir = TestDir::new("recording-rotate");
    let root = dir.path().join("recordings");
    let origin = Origin::start(&[
        "--record-dir",
        root.to_str().unwrap(),
        "--record-apps",
        "live",
        "--record-max-duration",
        "4s",
        "--ended-stream-linger",
        "1s",
    ]);
    let mut publisher = Publisher::start(&origin.rtmp_url("live", "long"), &fixture.path);
    assert!(publisher.wait(secs(40)).is_some_and(|s| s.success()), "{:?}", publisher.stderr());
    let finished = |rec: &std::path::PathBuf| {
        std::fs::read_to_string(rec.join("index.m3u8")).is_ok_and(|t| t.contains("ENDLIST"))
    };
    let recs = wait_for(secs(20), || {
        let recs = recordings(&root, "live", "long");
        (recs.len() >= 3 && recs.iter().all(finished)).then_some(recs)
    })
    .unwrap_or_else(|| {
        panic!("no three finished recordings: {:?}\n{}", recordings(&root, "live", "long"), {
            origin.log()
        })
    });
    assert_eq!(recs.len(), 3, "4 s + 4 s + 2 s: {recs:?}");
    let (mut frames, mut seconds) = (0, 0.0);
    let mut ids = Vec::new();
    for (i, rec) in recs.iter().enumerate() {
        assert_nothing_half_written(rec);
        let index = std::fs::read_to_string(rec.join("index.m3u8")).unwrap();
        assert!(index.contains("#EXT-X-PLAYLIST-TYPE:VOD"), "{index}");
        assert!(!index.contains("#EXT-X-DISCONTINUITY"), "one period each: {index}");
        // Each recording stands alone: its own init segment.
        let map = index.lines().find_map(|l| l.strip_prefix("#EXT-X-MAP:URI=\"")).unwrap();
        assert!(rec.join(map.trim_end_matches('"')).is_file(), "{index}");
        let id: u64 = rec.file_name().unwrap().to_str().unwrap().parse().unwrap();
        ids.push(id);
        let vod = format!("http://{}/vod/live/long/{id}/index.m3u8", origin.http);
        let duration = ffprobe_duration(&vod);
        let expected = if i < 2 { 4.0 } else { 2.0 };
        assert!((duration - expected).abs() <= 0.5, "recording {i}: {duration} s");
        seconds += duration;
        let played = play_count_frames(&vod, secs(60));
        assert!(played.errors.is_empty(), "recording {i}: {:?}", played.errors);
        frames += played.frames;
    }
    assert!(ids.windows(2).all(|w| w[0] < w[1]), "ids grow: {ids:?}");
    assert_eq!(frames, 300, "every frame is in exactly one recording ({seconds} s)");
    assert_eq!(origin.metrics().value("sluice_recording_errors_total", &[]), 0.0);
}

#[test]
fn below_the_free_space_floor_nothing_is_recorded_the_misses_are_counted_and_the_stream_plays() {
    let fixture = h264_aac();
    let dir = TestDir::new("recording-floor");
    let root = dir.path().join("recordings");
    // No file system here has a petabyte free.
    let origin = Origin::start(&[
        "--record-dir",
        root.to_str().unwrap(),
        "--record-apps",
        "live",
        "--record-min-free",
        "1048576GiB",
        "--ended-stream-linger",
        "1s",
    ]);
    let mut publisher = Publisher::start(&origin.rtmp_url("live", "full"), &fixture.path);
    std::thread::sleep(std::time::Duration::from_millis(500));
    let played = play_count_frames(&origin.flv_url("live", "full"), secs(40));
    assert!(played.errors.is_empty(), "{:?}", played.errors);
    assert!(played.frames >= 200, "the live stream played {} frames", played.frames);
    assert!(publisher.wait(secs(40)).is_some_and(|s| s.success()), "{:?}", publisher.stderr());
    // Every completed segment was missed and counted (the last one completes at the end).
    let errors = wait_for(secs(10), || {
        let n = origin.metrics().value("sluice_recording_errors_total", &[]);
        (n >= 4.0).then_some(n)
    })
    .unwrap_or_else(|| panic!("misses not counted: {}", origin.log()));
    assert!(errors <= 5.0, "{errors} misses for 5 segments");
    let written: Vec<_> = walk(&root);
    assert!(written.iter().all(|p| !p.ends_with(".m4s") && !p.ends_with(".mp4")), "{written:?}");
    let log = origin.log();
    let said = log.matches("free space below --record-min-free").count();
    // At most a line a second (rate-limited), here one per missed segment.
    assert!(said >= 1 && said as f64 <= errors, "said {said} times for {errors} misses:\n{log}");
}

/// Every file under `root`, as strings.
fn walk(root: &std::path::Path) -> Vec<String> {
    let mut out = Vec::new();
    let mut dirs = vec![root.to_path_buf()];
    while let Some(dir) = dirs.pop() {
        for entry in std::fs::read_dir(&dir).into_iter().flatten().flatten() {
            if entry.path().is_dir() {
                dirs.push(entry.path());
            } else {
                out.push(entry.path().display().to_string());
            }
        }
    }
    out
}

/// The segments (URIs) and their seconds in a playlist, and its `EXT-X-PROGRAM-DATE-TIME`s.
fn listed(playlist: &str) -> (Vec<String>, f64, Vec<String>) {
    let uris = playlist.lines().filter(|l| l.contains("seg-")).map(str::to_string).collect();
    let seconds = playlist
        .lines()
        .filter_map(|l| l.strip_prefix("#EXTINF:"))
        .map(|l| l.trim_end_matches(',').parse::<f64>().unwrap())
        .sum();
    let pdts = playlist
        .lines()
        .filter_map(|l| l.strip_prefix("#EXT-X-PROGRAM-DATE-TIME:"))
        .map(str::to_string)
        .collect();
    (uris, seconds, pdts)
}

#[test]
fn a_viewer_of_a_recorded_live_stream_rewinds_through_its_dvr_window_and_decodes() {
    let fixture = h264_aac();
    let dir = TestDir::new("recording-dvr");
    let root = dir.path().join("recordings");
    let origin = Origin::start(&[
        "--record-dir",
        root.to_str().unwrap(),
        "--record-apps",
        "live",
        "--dvr-window",
        "20s",
        "--ended-stream-linger",
        "1s",
    ]);
    let path = "/vod/live/tv/dvr.m3u8";
    assert_eq!(origin.get(path).status, 404, "nothing recorded yet");
    let mut publisher = Publisher::start_looped(&origin.rtmp_url("live", "tv"), &fixture.path);
    // It starts at media sequence 0 and, once the stream has run past the window, slides: the
    // oldest segments leave (the sequence grows) and 20 s stay.
    let sequence = |text: &str| -> Option<u64> {
        text.lines().find_map(|l| l.strip_prefix("#EXT-X-MEDIA-SEQUENCE:")?.parse().ok())
    };
    let first = wait_for(secs(20), || sequence(&origin.get(path).text()))
        .unwrap_or_else(|| panic!("no DVR playlist: {}", origin.log()));
    assert_eq!(first, 0, "a new window starts at 0");
    let playlist = wait_for(secs(60), || {
        let text = origin.get(path).text();
        (sequence(&text)? >= 2).then_some(text)
    })
    .unwrap_or_else(|| {
        panic!("the window never slid: {}\n{}", origin.get(path).text(), origin.log())
    });
    let (uris, seconds, pdts) = listed(&playlist);
    assert!((18.0..=22.0).contains(&seconds), "a 20 s window holds {seconds} s: {playlist}");
    assert!(!playlist.contains("#EXT-X-ENDLIST"), "live: {playlist}");
    assert!(!pdts.is_empty(), "wall-clock times to seek by: {playlist}");
    // The files it names are the recording's.
    let rec = recordings(&root, "live", "tv").remove(0);
    let id = rec.file_name().unwrap().to_str().unwrap();
    assert!(uris.iter().all(|u| u.starts_with(&format!("{id}/seg-"))), "{playlist}");

    // Rewind to the start of the window (~20 s behind live) and decode from there.
    let url = format!("http://{}{path}", origin.http);
    let (status, _, err) = sluice_tests::ffmpeg::run_with_timeout(
        std::process::Command::new("ffmpeg").args([
            "-v",
            "error",
            "-live_start_index",
            "0",
            "-i",
            &url,
            "-t",
            "6",
            "-map",
            "0:v",
            "-f",
            "framecrc",
            "-",
        ]),
        secs(60),
    )
    .expect("run ffmpeg");
    assert!(status.is_some_and(|s| s.success()) && err.trim().is_empty(), "{status:?} {err}");
    // Its first segment, with its init segment, decodes whole: 60 frames.
    let first = dir.path().join("first.mp4");
    let mut bytes = Vec::new();
    let map = playlist.lines().find_map(|l| l.strip_prefix("#EXT-X-MAP:URI=\"")).unwrap();
    for file in [map.trim_end_matches('"'), uris[0].as_str()] {
        let resp = origin.get(&format!("/vod/live/tv/{file}"));
        assert_eq!(resp.status, 200, "{file}");
        bytes.extend(resp.body);
    }
    std::fs::write(&first, bytes).unwrap();
    let played = play_count_frames(first.to_str().unwrap(), secs(30));
    assert!(played.errors.is_empty(), "{:?}", played.errors);
    assert_eq!(played.frames, 60, "the rewound segment decodes whole");

    // The stream ends: its DVR playlist goes (the recording plays as VOD).
    publisher.stop();
    wait_for(secs(20), || (origin.get(path).status == 404).then_some(()))
        .unwrap_or_else(|| panic!("the DVR playlist outlived the stream: {}", origin.log()));
}
