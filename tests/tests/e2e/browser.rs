//! The web page in a real browser: headless Chromium (`chromium` in PATH, or `SLUICE_CHROMIUM`;
//! driven by playwright-core from `tests/browser/play.mjs`) opens `/?stream=live/NAME&mode=...` on a
//! real origin fed by ffmpeg, and plays the stream over LL-HLS (hls.js), LL-DASH (dash.js) and
//! HTTP-FLV (mpegts.js): `video.currentTime` must advance and the decoder must report frames.
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
/// How `play.mjs` samples playback for the tests that assert `t1 - t0 >= 1.5`: 3 s apart, and
/// a page that stalled a while (a loaded machine) gets up to 6 s more to show 1.5 s played.
pub(crate) const PLAYBACK_SAMPLE: [&str; 6] =
    ["--sample-ms", "3000", "--min-advance", "1.5", "--advance-grace-ms", "6000"];

pub(crate) fn browser(test: &str) -> Option<(PathBuf, PathBuf)> {
    let chromium = Dep::Chromium.require(test)?;
    let node = Dep::Node.require(test)?;
    Some((chromium, node))
}

/// Open the page on `origin` for `stream` (with `?token=`) in each of `modes` (`hls,flv`) in
/// Chromium (tests/browser/play.mjs); each mode's result.
fn play_page(
    node: &Path,
    chromium: &Path,
    origin: &Origin,
    stream: &str,
    token: Option<&str>,
    start_timeout_ms: u32,
    modes: &str,
) -> Vec<serde_json::Value> {
    let web_dir = workspace_root().join("web");
    let web_arg = web_dir.to_str().expect("utf-8 path");
    let script = workspace_root().join("tests/browser/play.mjs");
    let base = format!("http://{}", origin.http);
    let mut cmd = Command::new(node);
    cmd.arg(&script)
        .args(["--web-dir", web_arg, "--base", &base, "--stream", stream])
        .args(["--modes", modes, "--chromium"])
        .arg(chromium)
        .args(PLAYBACK_SAMPLE)
        .args(["--start-timeout-ms", &start_timeout_ms.to_string()])
        .arg("--out")
        .arg(origin.dir().path());
    if let Some(token) = token {
        cmd.args(["--token", token]);
    }
    let (status, stdout, stderr) =
        run_with_timeout(&mut cmd, Duration::from_secs(90)).expect("run node");
    assert!(
        status.is_some_and(|s| s.success()),
        "play.mjs failed ({status:?}):\nstdout:\n{stdout}\nstderr:\n{stderr}\norigin log:\n{}",
        origin.log()
    );
    stdout.lines().filter_map(|l| serde_json::from_str(l).ok()).collect()
}

#[test]
fn page_plays_ll_hls_ll_dash_and_http_flv_in_chromium() {
    let Some((chromium, node)) = browser("page_plays_ll_hls_ll_dash_and_http_flv_in_chromium")
    else {
        return;
    };
    let web_dir = workspace_root().join("web");
    assert!(
        web_dir.join("node_modules/playwright-core/package.json").is_file()
            && web_dir.join("node_modules/hls.js/dist/hls.min.js").is_file()
            && web_dir.join("node_modules/mpegts.js/dist/mpegts.js").is_file()
            && web_dir.join("node_modules/dashjs/dist/modern/umd/dash.all.min.js").is_file(),
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

    let results = play_page(&node, &chromium, &origin, "live/web", None, 20_000, "hls,dash,flv");
    for mode in ["hls", "dash", "flv"] {
        let r = results
            .iter()
            .find(|r| r["mode"] == mode)
            .unwrap_or_else(|| panic!("no result for {mode}: {results:?}"));
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
fn page_plays_a_private_stream_from_a_signed_url_and_not_without() {
    let test = "page_plays_a_private_stream_from_a_signed_url_and_not_without";
    let Some((chromium, node)) = browser(test) else { return };
    let dir = TestDir::new("browser-private");
    let secret = dir.path().join("play-secret");
    std::fs::write(&secret, "a-browser-play-secret-01\n").unwrap();
    let web_dir = workspace_root().join("web");
    let origin = Origin::start(&[
        "--web-dir",
        web_dir.to_str().expect("utf-8 path"),
        "--play-token-secret-file",
        secret.to_str().unwrap(),
        "--play-private-apps",
        "vip",
    ]);
    let _publisher = Publisher::start_looped(&origin.rtmp_url("vip", "web"), &h264_aac().path);
    wait_for(secs(15), || origin.stream_info("vip", "web").filter(|s| !s["video"].is_null()))
        .unwrap_or_else(|| panic!("vip/web never listed: {}", origin.streams()));
    let out = Command::new(sluice_tests::paths::binary("sluice-origin"))
        .args(["play-token", "vip/web", "--secret-file", secret.to_str().unwrap()])
        .output()
        .expect("sluice-origin play-token");
    let text = String::from_utf8(out.stdout).unwrap();
    let token = text
        .split("token=")
        .nth(1)
        .and_then(|t| t.split_whitespace().next())
        .unwrap_or_else(|| panic!("a token in: {text}"));

    for r in play_page(&node, &chromium, &origin, "vip/web", Some(token), 20_000, "hls,dash,flv") {
        let (t0, t1) = (r["t0"].as_f64().unwrap_or(0.0), r["t1"].as_f64().unwrap_or(0.0));
        assert!(t1 - t0 >= 1.5, "{}: the signed page plays: {r}", r["mode"]);
        assert!(r["frames1"].as_u64() > Some(0), "{}: frames decoded: {r}", r["mode"]);
    }
    // The same page without the token: nothing plays, and the origin counted the refusals.
    for r in play_page(&node, &chromium, &origin, "vip/web", None, 4_000, "hls,dash,flv") {
        assert_eq!(r["frames1"].as_u64().unwrap_or(0), 0, "{}: played unsigned: {r}", r["mode"]);
    }
    let refused =
        |p: &str| origin.metrics().value("sluice_plays_unauthorized_total", &[("protocol", p)]);
    assert!(refused("hls") >= 1.0 && refused("flv") >= 1.0, "{}", origin.log());
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
