//! Real ffmpeg/ffprobe processes as publishers, players and probes.

use std::io::{BufRead, BufReader, Read};
use std::path::{Path, PathBuf};
use std::process::{Command, ExitStatus, Stdio};
use std::sync::{Arc, Mutex};
use std::thread;
use std::time::{Duration, Instant};

use crate::deps::Dep;
use crate::process::{ChildGuard, LineLog};

/// The system ffmpeg (panics naming it when it is missing).
pub fn system_ffmpeg() -> PathBuf {
    Dep::Ffmpeg.path()
}

/// An ffmpeg process publishing a file in real time (`-re -c copy -f flv URL`).
#[derive(Debug)]
pub struct Publisher {
    guard: ChildGuard,
    stderr: LineLog,
    pub url: String,
}

impl Publisher {
    /// Publish `file` once with the system ffmpeg.
    pub fn start(url: &str, file: &Path) -> Publisher {
        Self::start_with(&system_ffmpeg(), url, file, false)
    }

    /// Publish `file` in a loop (for long-running tests) with the system ffmpeg.
    pub fn start_looped(url: &str, file: &Path) -> Publisher {
        Self::start_with(&system_ffmpeg(), url, file, true)
    }

    pub fn start_with(ffmpeg: &Path, url: &str, file: &Path, looped: bool) -> Publisher {
        Self::start_with_output_options(ffmpeg, url, file, looped, &[])
    }

    /// Publish `file` in a loop over TLS (`rtmps://`), verifying the server's certificate
    /// against `ca_file`.
    pub fn start_verified_tls(url: &str, file: &Path, ca_file: &Path) -> Publisher {
        let ca = ca_file.to_str().expect("a UTF-8 path");
        let options = ["-tls_verify", "1", "-ca_file", ca];
        Self::start_with_output_options(&system_ffmpeg(), url, file, true, &options)
    }

    /// Publish `file` with `options` given before the URL (protocol and muxer options).
    pub fn start_with_output_options(
        ffmpeg: &Path,
        url: &str,
        file: &Path,
        looped: bool,
        options: &[&str],
    ) -> Publisher {
        let mut cmd = Command::new(ffmpeg);
        cmd.args(["-hide_banner", "-nostdin", "-loglevel", "error", "-re"]);
        if looped {
            cmd.args(["-stream_loop", "-1"]);
        }
        cmd.arg("-i").arg(file).args(["-c", "copy", "-f", "flv"]).args(options).arg(url);
        cmd.stdin(Stdio::null()).stdout(Stdio::null()).stderr(Stdio::piped());
        let mut child = cmd.spawn().unwrap_or_else(|e| panic!("spawn {}: {e}", ffmpeg.display()));
        let stderr = LineLog::collect(child.stderr.take().expect("piped stderr"));
        Publisher {
            guard: ChildGuard::new(format!("ffmpeg publisher {url}"), child),
            stderr,
            url: url.to_string(),
        }
    }

    /// Wait for ffmpeg to finish publishing.
    pub fn wait(&mut self, timeout: Duration) -> Option<ExitStatus> {
        self.guard.wait_timeout(timeout)
    }

    pub fn is_running(&mut self) -> bool {
        self.guard.try_wait().is_none()
    }

    /// Stop publishing (SIGTERM: ffmpeg closes the stream cleanly).
    pub fn stop(&mut self) -> Option<ExitStatus> {
        self.guard.stop()
    }

    /// ffmpeg's error output so far.
    pub fn stderr(&self) -> Vec<String> {
        self.stderr.lines()
    }
}

/// Publish `file` to `url` expecting a refusal: ffmpeg must end by itself, unsuccessfully,
/// with `why` in its error output.
pub fn expect_refused(url: &str, file: &Path, why: &str) {
    let mut publisher = Publisher::start(url, file);
    let status = publisher.wait(Duration::from_secs(20)).expect("a refused encoder ends");
    assert!(!status.success(), "{url}: ffmpeg exited successfully");
    let stderr = publisher.stderr().join("\n");
    assert!(stderr.contains(why), "{url}: ffmpeg did not say '{why}':\n{stderr}");
}

#[derive(Debug, Default)]
struct Progress {
    frames: u64,
    ended: bool,
}

/// An ffmpeg player decoding a URL to the null muxer, with a live decoded-frame count read
/// from `-progress`.
#[derive(Debug)]
pub struct Player {
    guard: ChildGuard,
    progress: Arc<Mutex<Progress>>,
    stderr: LineLog,
    pub url: String,
}

/// What a finished player saw.
#[derive(Debug, Clone)]
pub struct PlayResult {
    /// Decoded video frames.
    pub frames: u64,
    /// ffmpeg's error-level output (decode errors, I/O errors), benign exit notes removed.
    pub errors: Vec<String>,
    pub status: Option<ExitStatus>,
}

impl Player {
    /// Play `url` with the system ffmpeg, decoding video and audio.
    pub fn start(url: &str) -> Player {
        Self::start_with(&system_ffmpeg(), url)
    }

    pub fn start_with(ffmpeg: &Path, url: &str) -> Player {
        Self::start_with_input_options(ffmpeg, &[], url)
    }

    /// Play `url` over HTTPS, verifying the server's certificate against the CA in `ca_file`.
    pub fn start_verified_tls(url: &str, ca_file: &Path) -> Player {
        let ca = ca_file.to_str().expect("a UTF-8 path");
        Self::start_with_input_options(&system_ffmpeg(), &["-tls_verify", "1", "-ca_file", ca], url)
    }

    /// Play `url` with `options` given before `-i` (protocol and demuxer options).
    pub fn start_with_input_options(ffmpeg: &Path, options: &[&str], url: &str) -> Player {
        let mut cmd = Command::new(ffmpeg);
        cmd.args(["-hide_banner", "-nostdin", "-loglevel", "error", "-progress", "pipe:1"])
            .args(["-stats_period", "0.2"])
            .args(options)
            .args(["-i", url])
            .args(["-map", "0:v", "-map", "0:a?", "-fps_mode", "passthrough"])
            // Frames keep the source's time base (FLV's milliseconds): rounded to 1/fps, two
            // frames of a stream whose timestamps do not sit on that grid would collide and the
            // null muxer would report it as an error of the stream.
            .args(["-enc_time_base", "1:1000", "-f", "null", "-"]);
        cmd.stdin(Stdio::null()).stdout(Stdio::piped()).stderr(Stdio::piped());
        let mut child = cmd.spawn().unwrap_or_else(|e| panic!("spawn {}: {e}", ffmpeg.display()));
        let stdout = child.stdout.take().expect("piped stdout");
        let stderr = LineLog::collect(child.stderr.take().expect("piped stderr"));
        let progress = Arc::new(Mutex::new(Progress::default()));
        let p = progress.clone();
        thread::spawn(move || {
            for line in BufReader::new(stdout).lines() {
                let Ok(line) = line else { break };
                let mut p = crate::lock(&p);
                if let Some(n) = line.strip_prefix("frame=").and_then(|v| v.trim().parse().ok()) {
                    p.frames = n;
                } else if line == "progress=end" {
                    p.ended = true;
                }
            }
        });
        Player {
            guard: ChildGuard::new(format!("ffmpeg player {url}"), child),
            progress,
            stderr,
            url: url.to_string(),
        }
    }

    /// Video frames decoded so far.
    pub fn frames(&self) -> u64 {
        crate::lock(&self.progress).frames
    }

    /// Wait until at least `n` frames were decoded; returns the count reached.
    pub fn wait_frames(&mut self, n: u64, timeout: Duration) -> u64 {
        let deadline = Instant::now() + timeout;
        while self.frames() < n && Instant::now() < deadline && self.guard.try_wait().is_none() {
            thread::sleep(Duration::from_millis(50));
        }
        thread::sleep(Duration::from_millis(50));
        self.frames()
    }

    pub fn is_running(&mut self) -> bool {
        self.guard.try_wait().is_none()
    }

    /// Wait until ffmpeg exits by itself, or its frame count has not moved for `idle`, or
    /// `timeout` passes; then stop it and report.
    pub fn finish(mut self, idle: Duration, timeout: Duration) -> PlayResult {
        let deadline = Instant::now() + timeout;
        let mut last = self.frames();
        let mut last_change = Instant::now();
        let mut status = None;
        while Instant::now() < deadline {
            if let Some(s) = self.guard.try_wait() {
                status = Some(s);
                break;
            }
            let now = self.frames();
            if now != last {
                last = now;
                last_change = Instant::now();
            } else if last_change.elapsed() >= idle {
                break;
            }
            thread::sleep(Duration::from_millis(50));
        }
        if status.is_none() {
            status = self.guard.stop();
        }
        // Let the progress reader see the final block.
        let _ = crate::process::wait_for(Duration::from_secs(2), || {
            crate::lock(&self.progress).ended.then_some(())
        });
        PlayResult { frames: self.frames(), errors: self.errors(), status }
    }

    /// Error output so far, without ffmpeg's benign exit notes.
    pub fn errors(&self) -> Vec<String> {
        self.stderr
            .lines()
            .into_iter()
            .filter(|l| !l.trim().is_empty())
            .filter(|l| {
                !l.contains("Exiting normally")
                    && !l.contains("received signal")
                    && !l.starts_with("Exiting with exit code")
            })
            .collect()
    }

    /// Stop the player now and report.
    pub fn stop(self) -> PlayResult {
        self.finish(Duration::ZERO, Duration::ZERO)
    }
}

/// Play `url` until the stream ends (or no frame arrives for 3 s, or `timeout`), returning the
/// decoded frame count and error lines.
pub fn play_count_frames(url: &str, timeout: Duration) -> PlayResult {
    Player::start(url).finish(Duration::from_secs(3), timeout)
}

/// `ffprobe -show_streams -of json URL` (killed after `timeout`).
pub fn ffprobe_streams(url: &str, timeout: Duration) -> Result<serde_json::Value, String> {
    let (status, stdout, stderr) = run_with_timeout(
        Command::new("ffprobe").args(["-v", "error", "-show_streams", "-of", "json", url]),
        timeout,
    )?;
    if !status.is_some_and(|s| s.success()) {
        return Err(format!("ffprobe {url}: status {status:?}, stderr: {stderr}"));
    }
    serde_json::from_str(&stdout).map_err(|e| format!("ffprobe output is not JSON ({e}): {stdout}"))
}

/// The input description `ffmpeg -i URL` prints (stream lines such as
/// `Stream #0:0: Video: hevc (Main), yuv420p(tv), 1280x720, ...`), for ffmpeg builds that ship
/// no ffprobe. Reads one second of media.
pub fn ffmpeg_describe(ffmpeg: &Path, url: &str, timeout: Duration) -> Result<String, String> {
    let (_, _, stderr) = run_with_timeout(
        Command::new(ffmpeg).args([
            "-hide_banner",
            "-nostdin",
            "-i",
            url,
            "-t",
            "1",
            "-f",
            "null",
            "-",
        ]),
        timeout,
    )?;
    Ok(stderr)
}

/// Run a command, killing it after `timeout`; returns (status, stdout, stderr). `status` is
/// `None` if it had to be killed.
pub fn run_with_timeout(
    cmd: &mut Command,
    timeout: Duration,
) -> Result<(Option<ExitStatus>, String, String), String> {
    cmd.stdin(Stdio::null()).stdout(Stdio::piped()).stderr(Stdio::piped());
    let mut child = cmd.spawn().map_err(|e| format!("spawn {cmd:?}: {e}"))?;
    let mut out = child.stdout.take().expect("piped");
    let mut err = child.stderr.take().expect("piped");
    let out_t = thread::spawn(move || {
        let mut s = String::new();
        let _ = out.read_to_string(&mut s);
        s
    });
    let err_t = thread::spawn(move || {
        let mut s = String::new();
        let _ = err.read_to_string(&mut s);
        s
    });
    let mut guard = ChildGuard::new(format!("{cmd:?}"), child);
    let status = guard.wait_timeout(timeout);
    if status.is_none() {
        guard.stop();
    }
    drop(guard);
    let stdout = out_t.join().unwrap_or_default();
    let stderr = err_t.join().unwrap_or_default();
    Ok((status, stdout, stderr))
}

/// The streams of an ffprobe result with `codec_type` `kind` (`video`/`audio`).
pub fn probe_streams<'a>(probe: &'a serde_json::Value, kind: &str) -> Vec<&'a serde_json::Value> {
    probe["streams"]
        .as_array()
        .map(|a| a.iter().filter(|s| s["codec_type"] == kind).collect())
        .unwrap_or_default()
}
