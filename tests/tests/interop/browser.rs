//! Headless Chromium as a player: tests/browser/play.mjs (playwright-core, installed by
//! `npm ci --prefix web`) opens the serving node's own web page in a mode (`hls`: hls.js over
//! LL-HLS, `flv`: mpegts.js over HTTP-FLV, `native`: Chromium's own HLS player), or a bare
//! `<video>` whose source is a playlist (`video:PATH`), and samples the video element: its
//! time must advance at least 5 s and its decoder must count [`VIDEO_FRAMES`] frames meanwhile,
//! with no player or media error.

use std::path::Path;
use std::process::Command;
use std::time::Duration;

use sluice_tests::deps::Dep;
use sluice_tests::ffmpeg::run_with_timeout;
use sluice_tests::paths::workspace_root;

use crate::clients::{Checked, VIDEO_FRAMES};

/// How long the page is watched once playing.
const SAMPLE_MS: u32 = 8_000;
/// Media time that must pass meanwhile.
const PLAYED_SECS: f64 = 5.0;

/// Chromium plays `stream` (`APP/NAME`) from `base` (`http://HOST:PORT`) in `mode`; the
/// screenshot goes to `out`.
pub fn chromium(base: &str, stream: &str, mode: &str, out: &Path) -> Checked {
    let web = workspace_root().join("web");
    if !web.join("node_modules/playwright-core/package.json").is_file() {
        return Err(format!(
            "npm packages missing in {}: run `npm ci --prefix web`",
            web.display()
        ));
    }
    let (chromium, node) = (Dep::Chromium.path(), Dep::Node.path());
    let mut cmd = Command::new(node);
    cmd.arg(workspace_root().join("tests/browser/play.mjs"))
        .arg("--web-dir")
        .arg(&web)
        .args(["--base", base, "--stream", stream, "--modes", mode, "--chromium"])
        .arg(chromium)
        .args(["--sample-ms", &SAMPLE_MS.to_string(), "--start-timeout-ms", "30000"])
        .arg("--out")
        .arg(out);
    let (status, stdout, stderr) = run_with_timeout(&mut cmd, Duration::from_secs(90))?;
    let result: serde_json::Value = stdout
        .lines()
        .find_map(|l| serde_json::from_str(l).ok())
        .ok_or_else(|| format!("play.mjs said nothing ({status:?}): {stdout}\n{stderr}"))?;
    if result["ok"] != true {
        return Err(format!("Chromium was not driven: {result}\n{stderr}"));
    }
    let number = |k: &str| result[k].as_f64().unwrap_or(0.0);
    let played = number("t1") - number("t0");
    let frames = number("frames1") - number("frames0");
    let errors = result["pageErrors"].as_array().map_or(0, Vec::len);
    if result.get("startError").is_some() || errors > 0 || result["librariesMissing"] == true {
        return Err(format!("Chromium ({mode}) did not play cleanly: {result}"));
    }
    if played < PLAYED_SECS || frames < VIDEO_FRAMES as f64 {
        return Err(format!(
            "Chromium ({mode}) played {played:.1} s and decoded {frames} frames in {SAMPLE_MS} ms: \
             {result}"
        ));
    }
    if (result["width"].as_u64(), result["height"].as_u64()) != (Some(1280), Some(720)) {
        return Err(format!("Chromium ({mode}) shows the wrong picture size: {result}"));
    }
    Ok(format!("{played:.1} s played, {frames} frames decoded at 1280x720"))
}
