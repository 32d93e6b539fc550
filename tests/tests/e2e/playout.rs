//! Scheduled playout (#15): an FLV file in `--playout-dir` goes live at its scheduled time
//! (within a second), paced by the origin, and plays to ffmpeg like a live encoder's stream;
//! a live encoder of the name takes it over and hands it back; a restarted origin goes on
//! with its schedule; removing the entry ends it. Bad entries are refused with the reason;
//! changes need the admin token.

use std::time::{SystemTime, UNIX_EPOCH};

use serde_json::Value;
use sluice_tests::deps::Dep;
use sluice_tests::ffmpeg::Player;
use sluice_tests::http::curl;
use sluice_tests::origin::TestDir;
use sluice_tests::process::wait_for;
use sluice_tests::{h264_aac, h264_small, hevc_aac, secs, Origin, Publisher};

fn now_ms() -> i64 {
    SystemTime::now().duration_since(UNIX_EPOCH).unwrap().as_millis() as i64
}

/// `live/tv` as `/api/streams` lists it (with the token).
fn tv(origin: &Origin, token: &str) -> Option<Value> {
    let url = format!("http://{}/api/streams", origin.http);
    let list: Value = serde_json::from_str(&curl("GET", &url, Some(token), None).1).ok()?;
    list["streams"].as_array()?.iter().find(|s| s["app"] == "live" && s["name"] == "tv").cloned()
}

fn state(origin: &Origin, token: Option<&str>, id: &str) -> String {
    let url = format!("http://{}/api/schedule", origin.http);
    let list: Value = serde_json::from_str(&curl("GET", &url, token, None).1).unwrap();
    let entries = list["entries"].as_array().unwrap().clone();
    let entry = entries.iter().find(|e| e["id"] == id);
    entry.map_or("gone".into(), |e| e["state"].as_str().unwrap().to_string())
}

#[test]
fn a_scheduled_file_goes_live_on_time_gives_way_to_an_encoder_and_comes_back() {
    let dir = TestDir::new("playout");
    let files = dir.path().join("playout");
    std::fs::create_dir_all(files.join("shows")).unwrap();
    std::fs::copy(&h264_small().path, files.join("shows/loop.flv")).unwrap();
    let token = "an-admin-token-for-the-schedule";
    let token_file = dir.path().join("token");
    std::fs::write(&token_file, token).unwrap();
    let args = [
        "--playout-dir",
        files.to_str().unwrap(),
        "--token-file",
        token_file.to_str().unwrap(),
        "--ended-stream-linger",
        "1s",
    ];
    let mut origin = Origin::start(&args);
    let api = format!("http://{}/api/schedule", origin.http);

    // Refused: without the token, outside the directory, missing, not FLV, bad names.
    let start = now_ms() + 3_000;
    let entry = |file: &str, stream: &str| {
        format!(
            r#"{{"app": "live", "stream": "{stream}", "file": "{file}", "start_ms": {start}, "loop": true}}"#
        )
    };
    assert_eq!(curl("POST", &api, None, Some(&entry("shows/loop.flv", "tv"))).0, 401);
    for (file, stream, reason) in [
        ("../token.flv", "tv", "inside the playout directory"),
        ("shows/none.flv", "tv", "not in the playout directory"),
        ("shows/loop.mkv", "tv", "only FLV (.flv) and MP4"),
        ("shows/loop.flv", "a b", "invalid stream name"),
    ] {
        let (status, body) = curl("POST", &api, Some(token), Some(&entry(file, stream)));
        assert_eq!(status, 400, "{file} {stream}: {body}");
        assert!(body.contains(reason), "{file} {stream}: {body}");
    }
    let (status, body) = curl("POST", &api, Some(token), Some(&entry("shows/loop.flv", "tv")));
    assert_eq!(status, 201, "{body}");
    let id = serde_json::from_str::<Value>(&body).unwrap()["id"].as_str().unwrap().to_string();
    let id = id.as_str();
    assert_eq!(state(&origin, Some(token), id), "waiting");
    assert!(tv(&origin, token).is_none(), "not before its time");

    // Live at its time, within a second.
    let live = wait_for(secs(10), || tv(&origin, token))
        .unwrap_or_else(|| panic!("never went live: {}", origin.log()));
    let went_live = (live["started_at"].as_f64().unwrap() * 1000.0) as i64;
    assert!((went_live - start).abs() <= 1_000, "live at {went_live}, scheduled at {start}");
    assert_eq!(state(&origin, Some(token), id), "playing");
    // It plays to ffmpeg like an encoder's stream, in real time, past the file's end (loop).
    let mut player = Player::start(&origin.rtmp_url("live", "tv"));
    assert!(player.wait_frames(60, secs(20)) >= 60, "{:?}", player.errors());
    drop(player);
    assert_eq!(live["video"]["height"], 180, "{live}");

    // A live encoder takes the name over; when it leaves, the playout comes back.
    let encoder = Publisher::start_looped(&origin.rtmp_url("live", "tv"), &h264_aac().path);
    wait_for(secs(20), || tv(&origin, token).filter(|s| s["video"]["height"] == 720))
        .unwrap_or_else(|| panic!("the encoder never took over: {}", origin.log()));
    assert_eq!(state(&origin, Some(token), id), "displaced");
    drop(encoder);
    wait_for(secs(20), || tv(&origin, token).filter(|s| s["video"]["height"] == 180))
        .unwrap_or_else(|| panic!("the playout never came back: {}", origin.log()));
    assert_eq!(state(&origin, Some(token), id), "playing");
    let mut player = Player::start(&origin.rtmp_url("live", "tv"));
    assert!(player.wait_frames(30, secs(20)) >= 30, "{:?}", player.errors());
    drop(player);

    // A restart keeps the schedule (in the playout directory) and goes on with the entry.
    origin.terminate();
    let origin = Origin::start(&args);
    wait_for(secs(10), || tv(&origin, token))
        .unwrap_or_else(|| panic!("not live again after a restart: {}", origin.log()));
    assert_eq!(state(&origin, Some(token), id), "playing");
    let api = format!("http://{}/api/schedule", origin.http);

    // Removed: it stops, and the stream ends.
    assert_eq!(curl("DELETE", &format!("{api}/{id}"), None, None).0, 401);
    assert_eq!(curl("DELETE", &format!("{api}/{id}"), Some(token), None).0, 204);
    assert_eq!(curl("DELETE", &format!("{api}/{id}"), Some(token), None).0, 404);
    wait_for(secs(10), || tv(&origin, token).is_none().then_some(()))
        .unwrap_or_else(|| panic!("the stream outlived its entry: {}", origin.log()));
    assert_eq!(state(&origin, Some(token), id), "gone");
}

/// `src` remuxed (no re-encode) into the MP4 file `dst`, with `extra` options.
fn remux(ffmpeg: &std::path::Path, src: &std::path::Path, dst: &std::path::Path, extra: &[&str]) {
    let status = std::process::Command::new(ffmpeg)
        .args(["-v", "error", "-y", "-i"])
        .arg(src)
        .args(["-c", "copy"])
        .args(extra)
        .arg(dst)
        .status()
        .unwrap();
    assert!(status.success(), "ffmpeg remux to {}", dst.display());
}

#[test]
fn mp4_files_play_out_in_real_time_with_their_codecs() {
    // A recent ffmpeg reads and plays H.265 in FLV and over RTMP (Debian 12's predates it).
    let Some(ffmpeg) = Dep::HevcFfmpeg.require("mp4_files_play_out_in_real_time_with_their_codecs")
    else {
        return;
    };
    let dir = TestDir::new("playout-mp4");
    let files = dir.path().join("playout");
    std::fs::create_dir_all(&files).unwrap();
    // H.264 with B-frames, moov at the end; H.265 (hvc1) with the moov first.
    remux(&ffmpeg, &h264_aac().path, &files.join("avc.mp4"), &[]);
    let hevc = ["-tag:v", "hvc1", "-movflags", "+faststart"];
    remux(&ffmpeg, &hevc_aac().path, &files.join("hevc.mp4"), &hevc);
    let origin =
        Origin::start(&["--playout-dir", files.to_str().unwrap(), "--admin-allow", "127.0.0.0/8"]);
    let api = format!("http://{}/api/schedule", origin.http);
    let add = |file: &str, stream: &str| {
        let body = format!(r#"{{"app": "live", "stream": "{stream}", "file": "{file}"}}"#);
        let (status, body) = curl("POST", &api, None, Some(&body));
        assert_eq!(status, 201, "{body}");
        serde_json::from_str::<Value>(&body).unwrap()["id"].as_str().unwrap().to_string()
    };
    let started = std::time::Instant::now();
    let avc = add("avc.mp4", "avc");
    add("hevc.mp4", "hevc");

    for (stream, codec) in [("avc", "h264"), ("hevc", "h265")] {
        // The origin read the sequence headers the playout sent as an encoder's.
        let info = wait_for(secs(20), || {
            origin.stream_info("live", stream).filter(|s| !s["audio"]["codec"].is_null())
        })
        .unwrap_or_else(|| panic!("{stream} never live with audio: {}", origin.log()));
        assert_eq!(info["video"]["codec"], codec, "{info}");
        assert_eq!(
            (&info["video"]["width"], &info["video"]["height"]),
            (&1280.into(), &720.into())
        );
        assert_eq!(info["audio"]["codec"], "aac", "{info}");
        // ffmpeg decodes it without an error.
        let mut player = Player::start_with(&ffmpeg, &origin.rtmp_url("live", stream));
        assert!(player.wait_frames(60, secs(20)) >= 60, "{stream}: {:?}", player.errors());
        let result = player.stop();
        assert!(result.errors.is_empty(), "{stream}: {:?}", result.errors);
    }
    // Played once, in real time: the 10 s file is done no sooner than about 10 s after it
    // went live.
    wait_for(secs(30), || (state(&origin, None, &avc) == "done").then_some(()))
        .unwrap_or_else(|| panic!("never done: {}", origin.log()));
    let took = started.elapsed();
    assert!(took >= secs(9), "a 10 s file played out in {took:?}");
}

#[test]
fn a_finished_recording_plays_out_as_a_live_stream() {
    let dir = TestDir::new("playout-recording");
    let files = dir.path().join("playout");
    std::fs::create_dir_all(&files).unwrap();
    let root = dir.path().join("recordings");
    let origin = Origin::start(&[
        "--playout-dir",
        files.to_str().unwrap(),
        "--record-dir",
        root.to_str().unwrap(),
        "--record-apps",
        "live",
        "--admin-allow",
        "127.0.0.0/8",
        "--ended-stream-linger",
        "1s",
    ]);
    // 10 s of live/talk recorded.
    let mut publisher = Publisher::start(&origin.rtmp_url("live", "talk"), &h264_small().path);
    assert!(publisher.wait(secs(40)).is_some_and(|s| s.success()), "{:?}", publisher.stderr());
    let id = wait_for(secs(30), || sluice_tests::http::finished_recording(origin.http))
        .unwrap_or_else(|| panic!("never finished: {}", origin.log()));

    let api = format!("http://{}/api/schedule", origin.http);
    let entry = |fields: &str| format!(r#"{{"app": "tv", "stream": "replay", {fields}}}"#);
    for (fields, reason) in [
        (r#""recording": "live/talk/1""#.to_string(), "cannot be played"),
        (format!(r#""recording": "live/talk/{id}", "file": "a.flv""#), "a file or a recording"),
        (r#""recording": "live/talk""#.to_string(), "invalid recording"),
    ] {
        let (status, body) = curl("POST", &api, None, Some(&entry(&fields)));
        assert_eq!(status, 400, "{fields}: {body}");
        assert!(body.contains(reason), "{fields}: {body}");
    }
    let started = std::time::Instant::now();
    let (status, body) =
        curl("POST", &api, None, Some(&entry(&format!(r#""recording": "live/talk/{id}""#))));
    assert_eq!(status, 201, "{body}");
    let entry_id =
        serde_json::from_str::<Value>(&body).unwrap()["id"].as_str().unwrap().to_string();

    // Live like an encoder's stream, with the recording's codecs and size.
    let info = wait_for(secs(20), || {
        origin.stream_info("tv", "replay").filter(|s| !s["audio"]["codec"].is_null())
    })
    .unwrap_or_else(|| panic!("the replay never went live: {}", origin.log()));
    assert_eq!((&info["video"]["codec"], &info["video"]["height"]), (&"h264".into(), &180.into()));
    assert_eq!(info["audio"]["codec"], "aac", "{info}");
    let mut player = Player::start(&origin.rtmp_url("tv", "replay"));
    assert!(player.wait_frames(60, secs(20)) >= 60, "{:?}", player.errors());
    let result = player.stop();
    assert!(result.errors.is_empty(), "{:?}", result.errors);
    // Once, in real time.
    wait_for(secs(30), || (state(&origin, None, &entry_id) == "done").then_some(()))
        .unwrap_or_else(|| panic!("never done: {}", origin.log()));
    let took = started.elapsed();
    assert!(took >= secs(9), "a 10 s recording played out in {took:?}");
}
