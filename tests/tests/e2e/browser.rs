//! The web page in a real browser: headless Chromium (`chromium` in PATH, or `SLUICE_CHROMIUM`;
//! driven by playwright-core from `tests/browser/play.mjs`) opens `/?stream=live/NAME&mode=...` on a
//! real origin fed by ffmpeg, and plays the stream over LL-HLS (hls.js) and HTTP-FLV
//! (mpegts.js): `video.currentTime` must advance and the decoder must report frames.
//! Screenshots are kept in the test's directory under `target/sluice-tests/`.
//!
//! A missing Chromium, node or npm package (`npm ci --prefix web`) fails the tests; developers
//! may skip them with `SLUICE_TEST_ALLOW_MISSING=chromium,node` (see `sluice_tests::deps`).

use std::path::{Path, PathBuf};
use std::process::Command;
use std::time::Duration;

use sluice_tests::deps::Dep;
use sluice_tests::ffmpeg::run_with_timeout;
use sluice_tests::origin::TestDir;
use sluice_tests::paths::workspace_root;
use sluice_tests::process::wait_for;
use sluice_tests::{h264_aac, secs, Origin, Publisher};

/// The Chromium and node binaries; `None` (after a loud notice) when one is missing and the
/// developer allowed that; panics when one is missing otherwise.
fn browser(test: &str) -> Option<(PathBuf, PathBuf)> {
    let chromium = Dep::Chromium.require(test)?;
    let node = Dep::Node.require(test)?;
    Some((chromium, node))
}

#[test]
fn page_plays_ll_hls_and_http_flv_in_chromium() {
    let Some((chromium, node)) = browser("page_plays_ll_hls_and_http_flv_in_chromium") else {
        return;
    };
    let web_dir = workspace_root().join("web");
    assert!(
        web_dir.join("node_modules/playwright-core/package.json").is_file()
            && web_dir.join("node_modules/hls.js/dist/hls.min.js").is_file()
            && web_dir.join("node_modules/mpegts.js/dist/mpegts.js").is_file(),
        "npm packages missing in {}: run `npm ci --prefix web` (scripts/test.sh does)",
        web_dir.display()
    );

    let web_arg = web_dir.to_str().expect("utf-8 path");
    let origin = Origin::start(&["--web-dir", web_arg]);
    let page = origin.get("/");
    assert_eq!(page.status, 200);
    assert!(page.text().contains("/assets/hls.min.js"), "{}", page.text());

    let _publisher = Publisher::start_looped(&origin.rtmp_url("live", "web"), &h264_aac().path);
    wait_for(secs(15), || origin.stream_info("live", "web").filter(|s| !s["video"].is_null()))
        .unwrap_or_else(|| panic!("live/web never listed: {}", origin.streams()));

    let out = origin.dir().path();
    let script = workspace_root().join("tests/browser/play.mjs");
    let base = format!("http://{}", origin.http);
    let mut cmd = Command::new(&node);
    cmd.arg(&script)
        .args(["--web-dir", web_arg, "--base", &base, "--stream", "live/web"])
        .args(["--modes", "hls,flv", "--chromium"])
        .arg(&chromium)
        .args(["--sample-ms", "3000", "--start-timeout-ms", "20000"])
        .arg("--out")
        .arg(out);
    let (status, stdout, stderr) =
        run_with_timeout(&mut cmd, Duration::from_secs(90)).expect("run node");
    assert!(
        status.is_some_and(|s| s.success()),
        "play.mjs failed ({status:?}):\nstdout:\n{stdout}\nstderr:\n{stderr}\norigin log:\n{}",
        origin.log()
    );

    let results: Vec<serde_json::Value> =
        stdout.lines().filter_map(|l| serde_json::from_str(l).ok()).collect();
    for mode in ["hls", "flv"] {
        let r = results
            .iter()
            .find(|r| r["mode"] == mode)
            .unwrap_or_else(|| panic!("no result for {mode}: {stdout}\n{stderr}"));
        eprintln!("browser {mode}: {r}");
        if let Some(shot) = r["screenshot"].as_str() {
            println!("screenshot ({mode}): {shot}");
        }
        assert_eq!(r["ok"], true, "{mode}: page not driven: {r}");
        assert_eq!(r["librariesMissing"], false, "{mode}: page says libraries are missing: {r}");
        let t0 = r["t0"].as_f64().unwrap_or(0.0);
        let t1 = r["t1"].as_f64().unwrap_or(0.0);
        let frames = r["frames1"].as_u64().unwrap_or(0);
        let frames0 = r["frames0"].as_u64().unwrap_or(0);
        // 3 s sampled: at least 1.5 s of media must have played, and frames decoded meanwhile.
        assert!(
            t1 - t0 >= 1.5,
            "{mode}: currentTime did not advance ({t0} -> {t1}): {r}\norigin log:\n{}",
            origin.log()
        );
        assert!(
            frames > 0 && frames > frames0,
            "{mode}: no decoded frames ({frames0} -> {frames}): {r}"
        );
        assert_eq!(
            (r["width"].as_u64(), r["height"].as_u64()),
            (Some(1280), Some(720)),
            "{mode}: {r}"
        );
        assert!(
            r["pageErrors"].as_array().is_some_and(Vec::is_empty),
            "{mode}: the page reported errors: {r}"
        );
        assert!(
            Path::new(r["screenshot"].as_str().unwrap_or("")).is_file(),
            "{mode}: no screenshot: {r}"
        );
    }
}

#[test]
fn page_says_when_player_libraries_are_missing() {
    let Some((chromium, node)) = browser("page_says_when_player_libraries_are_missing") else {
        return;
    };
    let real_web = workspace_root().join("web");
    assert!(
        real_web.join("node_modules/playwright-core/package.json").is_file(),
        "playwright-core missing: run `npm ci --prefix web` (scripts/test.sh does)"
    );
    // A web directory with the page but no node_modules.
    let dir = TestDir::new("web");
    for file in ["index.html", "app.js", "style.css"] {
        std::fs::copy(real_web.join(file), dir.path().join(file)).expect("copy web file");
    }
    let web_arg = dir.path().to_str().expect("utf-8 path");
    let origin = Origin::start(&["--web-dir", web_arg]);
    assert_eq!(origin.get("/").status, 200);
    let lib = origin.get("/assets/hls.min.js");
    assert_eq!(lib.status, 404);
    assert!(lib.text().contains("npm ci --prefix web"), "{}", lib.text());
    let log = wait_for(secs(5), || {
        let log = origin.log();
        log.contains("player libraries not installed").then_some(log)
    });
    assert!(log.is_some(), "no start-up warning:\n{}", origin.log());

    let mut cmd = Command::new(&node);
    cmd.arg(workspace_root().join("tests/browser/play.mjs"))
        .arg("--web-dir")
        .arg(&real_web)
        .args(["--base", &format!("http://{}", origin.http)])
        .args(["--stream", "live/none", "--modes", "hls", "--chromium"])
        .arg(&chromium)
        .args(["--sample-ms", "0", "--start-timeout-ms", "500"])
        .arg("--out")
        .arg(dir.path());
    let (status, stdout, stderr) =
        run_with_timeout(&mut cmd, Duration::from_secs(60)).expect("run node");
    assert!(
        status.is_some_and(|s| s.success()),
        "play.mjs failed ({status:?}):\n{stdout}\n{stderr}"
    );
    let r: serde_json::Value = stdout
        .lines()
        .find_map(|l| serde_json::from_str(l).ok())
        .unwrap_or_else(|| panic!("no result: {stdout}\n{stderr}"));
    eprintln!("browser, no libraries: {r}");
    assert_eq!(r["ok"], true, "{r}");
    assert_eq!(r["librariesMissing"], true, "{r}");
    let note = r["librariesNote"].as_str().unwrap_or("");
    assert!(
        note.contains("player libraries not installed") && note.contains("npm ci --prefix web"),
        "{r}"
    );
    assert!(r["status"].as_str().unwrap_or("").contains("not installed"), "{r}");
}
