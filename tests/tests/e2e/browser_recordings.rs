//! The web page's recordings (#15) in headless Chromium: a node that records lists its
//! recordings on the page, and a finished one plays from it as HLS VOD (hls.js) and as the MP4
//! download (the browser's own player): `currentTime` advances and frames decode.

use std::process::Command;
use std::time::Duration;

use sluice_tests::ffmpeg::run_with_timeout;
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
        .args(["--sample-ms", "3000", "--start-timeout-ms", "20000", "--out"])
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
