//! Adaptive bitrate on the web page (#16), in headless Chromium: hls.js plays a transcoded
//! stream's multivariant playlist, and dash.js its MPD; the page shows the rendition it plays,
//! and when the test throttles the page's download rate (Chromium's network emulation, through
//! the devtools protocol) the page goes down to the lowest rendition, then back up once the
//! throttle is lifted.

use std::process::Command;
use std::time::Duration;

use sluice_tests::ffmpeg::run_with_timeout;
use sluice_tests::origin::TestDir;
use sluice_tests::paths::workspace_root;
use sluice_tests::process::wait_for;
use sluice_tests::{h264_aac, secs, Origin, Publisher};

use crate::browser::browser;

#[test]
fn the_page_switches_down_when_throttled_and_back_up_after() {
    let test = "the_page_switches_down_when_throttled_and_back_up_after";
    let Some((chromium, node)) = browser(test) else { return };
    let dir = TestDir::new("browser-abr");
    let ladder = dir.path().join("ladder.toml");
    std::fs::write(
        &ladder,
        "[live]\nrenditions = [\n  { name = \"480p\", height = 480, video-kbps = 1000 },\n  \
         { name = \"240p\", height = 240, video-kbps = 250, audio-kbps = 48 },\n]\n",
    )
    .unwrap();
    let web_dir = workspace_root().join("web");
    let origin = Origin::start(&[
        "--web-dir",
        web_dir.to_str().unwrap(),
        "--ladder-file",
        ladder.to_str().unwrap(),
    ]);
    let _publisher = Publisher::start_looped(&origin.rtmp_url("live", "cam"), &h264_aac().path);
    // hls.js reads the multivariant playlist once: start once every rendition is listed.
    wait_for(secs(40), || {
        let master = origin.get("/live/cam.m3u8").text();
        (master.matches("#EXT-X-STREAM-INF").count() == 3).then_some(())
    })
    .unwrap_or_else(|| panic!("the renditions never appeared: {}", origin.log()));

    for mode in ["hls", "dash"] {
        switches_down_and_up(&node, &chromium, &origin, mode);
    }
}

/// Play `live/cam` on the page in `mode`, throttle, unthrottle: the renditions it showed.
fn switches_down_and_up(
    node: &std::path::Path,
    chromium: &std::path::Path,
    origin: &Origin,
    mode: &str,
) {
    let web_dir = workspace_root().join("web");
    let script = workspace_root().join("tests/browser/abr.mjs");
    let mut cmd = Command::new(node);
    cmd.arg(&script)
        .args(["--web-dir", web_dir.to_str().unwrap(), "--base"])
        .arg(format!("http://{}", origin.http))
        .args(["--stream", "live/cam", "--low-height", "240", "--throttle-kbps", "600"])
        .args(["--mode", mode, "--phase-timeout-ms", "45000", "--min-frames", "90", "--chromium"])
        .arg(chromium);
    let (status, stdout, stderr) =
        run_with_timeout(&mut cmd, Duration::from_secs(180)).expect("run node");
    assert!(status.is_some_and(|s| s.success()), "abr.mjs {mode}: {stdout}\n{stderr}");
    let out: serde_json::Value = serde_json::from_str(stdout.trim())
        .unwrap_or_else(|e| panic!("abr.mjs printed no JSON ({e}): {stdout}\n{stderr}"));
    assert!(out["error"].is_null(), "{out}");
    assert_eq!(out["playing"], true, "{mode}: the page never showed a rendition: {out}");
    assert_eq!(out["down"], true, "{mode}: throttled to 600 kbit/s, it never went to 240p: {out}");
    assert_eq!(out["up"], true, "{mode}: unthrottled, it never went back up: {out}");
    let seen: Vec<u64> =
        out["seen"].as_array().unwrap().iter().filter_map(serde_json::Value::as_u64).collect();
    let low = seen.iter().position(|h| *h == 240).expect("240p shown");
    assert!(seen[low + 1..].iter().any(|h| *h > 240), "{mode}: back up after 240p: {seen:?}");
    // It played: at least 3 s of video decoded over the run (a player stalls a while when the
    // throttle starts, before it switches down); the page plays on after the switches until it
    // has, or until the phase timeout if it has stopped playing.
    assert!(out["frames"].as_u64().unwrap_or(0) >= 90, "{mode}: {out}");
    assert!(out["pageErrors"].as_array().is_some_and(Vec::is_empty), "{mode}: {out}");
    eprintln!("{mode}: renditions the page showed: {seen:?}; switches: {}", out["switches"]);
}
