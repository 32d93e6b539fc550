//! The web page's recordings (#15) in headless Chromium: a node that records lists its
//! recordings on the page, and a finished one plays from it as HLS VOD (hls.js) and as the MP4
//! download (the browser's own player): `currentTime` advances and frames decode.

use std::process::Command;
use std::time::Duration;

use sluice_tests::ffmpeg::run_with_timeout;
use sluice_tests::http::curl;
use sluice_tests::origin::TestDir;
use sluice_tests::paths::workspace_root;
use sluice_tests::process::wait_for;
use sluice_tests::{h264_aac, secs, Origin, Publisher};

use crate::browser::browser;
use crate::recording::recordings;

#[test]
fn page_lists_recordings_and_plays_one_as_hls_and_as_mp4() {
    let test = "page_lists_recordings_and_plays_one_as_hls_and_as_mp4";
    let Some((chromium, node)) = browser(test) else { return };
    let dir = TestDir::new("browser-recordings");
    let root = dir.path().join("recordings");
    let web_dir = workspace_root().join("web");
    let origin = Origin::start(&[
        "--web-dir",
        web_dir.to_str().expect("utf-8 path"),
        "--record-dir",
        root.to_str().unwrap(),
        "--record-apps",
        "live",
        "--ended-stream-linger",
        "1s",
    ]);
    let mut publisher = Publisher::start(&origin.rtmp_url("live", "kept"), &h264_aac().path);
    assert!(publisher.wait(secs(40)).is_some_and(|s| s.success()), "{:?}", publisher.stderr());
    let rec = wait_for(secs(20), || {
        let rec = recordings(&root, "live", "kept").into_iter().next()?;
        let text = std::fs::read_to_string(rec.join("index.m3u8")).ok()?;
        text.contains("#EXT-X-ENDLIST").then_some(rec)
    })
    .unwrap_or_else(|| panic!("no finished recording: {}", origin.log()));
    let id = rec.file_name().unwrap().to_str().unwrap();

    let script = workspace_root().join("tests/browser/play.mjs");
    let mut cmd = Command::new(&node);
    cmd.arg(&script)
        .args([
            "--web-dir",
            web_dir.to_str().unwrap(),
            "--base",
            &format!("http://{}", origin.http),
        ])
        .args(["--recording", &format!("live/kept/{id}"), "--modes", "vod,mp4", "--chromium"])
        .arg(&chromium)
        .args(crate::browser::PLAYBACK_SAMPLE)
        .args(["--start-timeout-ms", "20000", "--out"])
        .arg(dir.path());
    let (status, stdout, stderr) =
        run_with_timeout(&mut cmd, Duration::from_secs(90)).expect("run node");
    assert!(status.is_some_and(|s| s.success()), "play.mjs: {stdout}\n{stderr}");
    let results: Vec<serde_json::Value> =
        stdout.lines().filter_map(|l| serde_json::from_str(l).ok()).collect();
    for mode in ["vod", "mp4"] {
        let r = results
            .iter()
            .find(|r| r["mode"] == mode)
            .unwrap_or_else(|| panic!("no result for {mode}: {results:?}"));
        assert_eq!(r["ok"], true, "{mode}: page not driven: {r}");
        let listed = r["recordings"].as_str().unwrap_or("");
        assert!(listed.contains("live/kept") && listed.contains("finished"), "{mode}: {r}");
        let (t0, t1) = (r["t0"].as_f64().unwrap_or(0.0), r["t1"].as_f64().unwrap_or(0.0));
        assert!(t1 - t0 >= 1.5, "{mode}: currentTime did not advance ({t0} -> {t1}): {r}");
        let (f0, f1) = (r["frames0"].as_u64().unwrap_or(0), r["frames1"].as_u64().unwrap_or(0));
        assert!(f1 > f0, "{mode}: no frames decoded ({f0} -> {f1}): {r}");
        assert_eq!((r["width"].as_u64(), r["height"].as_u64()), (Some(1280), Some(720)), "{r}");
        assert!(r["pageErrors"].as_array().is_some_and(Vec::is_empty), "{mode}: {r}");
    }
}

/// The page's catalog (#15): a recording titled and tagged through the catalog API is found by
/// a word of its title in the page's search, listed with its thumbnail, and plays from its
/// Play button.
#[test]
fn page_searches_the_catalog_and_plays_what_it_finds() {
    let test = "page_searches_the_catalog_and_plays_what_it_finds";
    let Some((chromium, node)) = browser(test) else { return };
    let dir = TestDir::new("browser-catalog");
    let root = dir.path().join("recordings");
    let web_dir = workspace_root().join("web");
    let origin = Origin::start(&[
        "--web-dir",
        web_dir.to_str().expect("utf-8 path"),
        "--record-dir",
        root.to_str().unwrap(),
        "--record-apps",
        "live",
        "--admin-allow",
        "127.0.0.0/8",
        "--ended-stream-linger",
        "1s",
    ]);
    let mut publisher = Publisher::start(&origin.rtmp_url("live", "match"), &h264_aac().path);
    assert!(publisher.wait(secs(40)).is_some_and(|s| s.success()), "{:?}", publisher.stderr());
    // The recording's item, finished and with its thumbnail.
    let api = format!("http://{}/api/catalog", origin.http);
    let item = wait_for(secs(30), || {
        let (_, body) = curl("GET", &format!("{api}?kind=recording"), None, None);
        let page: serde_json::Value = serde_json::from_str(&body).ok()?;
        let item = page["items"].as_array()?.first()?.clone();
        (item["ended_ms"].is_number() && item["thumbnail"].is_string()).then_some(item)
    })
    .unwrap_or_else(|| panic!("no finished item with a thumbnail: {}", origin.log()));
    let id = item["id"].as_str().unwrap();
    let change = r#"{"title": "Cup final replay", "tags": ["sport"]}"#;
    let (status, body) = curl("PATCH", &format!("{api}/items/{id}"), None, Some(change));
    assert_eq!(status, 200, "{body}");

    let script = workspace_root().join("tests/browser/play.mjs");
    let mut cmd = Command::new(&node);
    cmd.arg(&script)
        .args([
            "--web-dir",
            web_dir.to_str().unwrap(),
            "--base",
            &format!("http://{}", origin.http),
        ])
        .args(["--stream", "-", "--modes", "catalog:final", "--chromium"])
        .arg(&chromium)
        .args(crate::browser::PLAYBACK_SAMPLE)
        .args(["--start-timeout-ms", "20000", "--out"])
        .arg(dir.path());
    let (status, stdout, stderr) =
        run_with_timeout(&mut cmd, Duration::from_secs(90)).expect("run node");
    assert!(status.is_some_and(|s| s.success()), "play.mjs: {stdout}\n{stderr}");
    let r: serde_json::Value = stdout
        .lines()
        .filter_map(|l| serde_json::from_str(l).ok())
        .next()
        .unwrap_or_else(|| panic!("no result: {stdout}\n{stderr}"));
    assert_eq!(r["ok"], true, "page not driven: {r}");
    let listed = r["catalog"].as_str().unwrap_or("");
    assert!(listed.contains("Cup final replay") && listed.contains("sport"), "{r}");
    assert!(listed.contains("live/match"), "{r}");
    assert_eq!(r["thumbs"], 1, "the thumbnail shows: {r}");
    let (t0, t1) = (r["t0"].as_f64().unwrap_or(0.0), r["t1"].as_f64().unwrap_or(0.0));
    assert!(t1 - t0 >= 1.5, "currentTime did not advance ({t0} -> {t1}): {r}");
    assert_eq!((r["width"].as_u64(), r["height"].as_u64()), (Some(1280), Some(720)), "{r}");
    assert!(r["pageErrors"].as_array().is_some_and(Vec::is_empty), "{r}");
}
