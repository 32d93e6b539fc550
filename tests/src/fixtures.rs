//! Test media generated once with ffmpeg and cached in `tests/fixtures/` (git-ignored).
//!
//! Generation is atomic (written under a temporary name, then renamed) and serialised across
//! the parallel test processes with an exclusive `flock` on `tests/fixtures/.lock`.

use std::fs::{self, File, OpenOptions};
use std::path::{Path, PathBuf};
use std::process::Command;
use std::sync::OnceLock;

use crate::deps::Dep;
use crate::paths;

/// A generated media file.
#[derive(Debug, Clone)]
pub struct Fixture {
    pub path: PathBuf,
    /// Number of video frames in the file (counted by decoding it with ffprobe).
    pub video_frames: u64,
    /// Duration in seconds.
    pub duration_s: f64,
}

/// `h264_aac.flv`: 1280x720 30 fps H.264 (x264 veryfast, 2 s GOP, B-frames), AAC 44.1 kHz
/// stereo, 10 s.
pub fn h264_aac() -> &'static Fixture {
    static F: OnceLock<Fixture> = OnceLock::new();
    F.get_or_init(|| {
        let args = [
            "-f",
            "lavfi",
            "-i",
            "testsrc2=size=1280x720:rate=30",
            "-f",
            "lavfi",
            "-i",
            "sine=frequency=440:sample_rate=44100",
            "-t",
            "10",
            "-c:v",
            "libx264",
            "-preset",
            "veryfast",
            "-pix_fmt",
            "yuv420p",
            "-g",
            "60",
            "-keyint_min",
            "60",
            "-sc_threshold",
            "0",
            "-bf",
            "2",
            "-c:a",
            "aac",
            "-ac",
            "2",
            "-ar",
            "44100",
            "-b:a",
            "128k",
            "-f",
            "flv",
        ];
        generate("h264_aac.flv", &Dep::Ffmpeg.path(), &args, 10.0, true)
    })
}

/// `h264_small.flv`: 320x180 30 fps H.264 at ~200 kbit/s (x264 veryfast, 1 s GOP, no
/// B-frames), AAC mono 64 kbit/s, 10 s: for hundreds of viewers on one machine.
pub fn h264_small() -> &'static Fixture {
    static F: OnceLock<Fixture> = OnceLock::new();
    F.get_or_init(|| {
        let args = [
            "-f",
            "lavfi",
            "-i",
            "testsrc2=size=320x180:rate=30",
            "-f",
            "lavfi",
            "-i",
            "sine=frequency=440:sample_rate=44100",
            "-t",
            "10",
            "-c:v",
            "libx264",
            "-preset",
            "veryfast",
            "-b:v",
            "200k",
            "-pix_fmt",
            "yuv420p",
            "-g",
            "30",
            "-keyint_min",
            "30",
            "-sc_threshold",
            "0",
            "-bf",
            "0",
            "-c:a",
            "aac",
            "-ac",
            "1",
            "-ar",
            "44100",
            "-b:a",
            "64k",
            "-f",
            "flv",
        ];
        generate("h264_small.flv", &Dep::Ffmpeg.path(), &args, 10.0, true)
    })
}

/// `hevc_aac.flv`: 1280x720 30 fps H.265 (x265 ultrafast, 2 s GOP) in Enhanced FLV (`hvc1`),
/// AAC, 6 s; made with the newer ffmpeg of the imageio-ffmpeg package ([`Dep::HevcFfmpeg`];
/// panics naming it when it is missing).
pub fn hevc_aac() -> &'static Fixture {
    static F: OnceLock<Fixture> = OnceLock::new();
    F.get_or_init(|| {
        let ffmpeg = Dep::HevcFfmpeg.path();
        let args = [
            "-f",
            "lavfi",
            "-i",
            "testsrc2=size=1280x720:rate=30",
            "-f",
            "lavfi",
            "-i",
            "sine=frequency=440:sample_rate=44100",
            "-t",
            "6",
            "-c:v",
            "libx265",
            "-preset",
            "ultrafast",
            "-pix_fmt",
            "yuv420p",
            "-x265-params",
            "keyint=60:min-keyint=60:scenecut=0:log-level=error",
            "-c:a",
            "aac",
            "-ac",
            "2",
            "-ar",
            "44100",
            "-b:a",
            "128k",
            "-f",
            "flv",
        ];
        generate("hevc_aac.flv", &ffmpeg, &args, 6.0, false)
    })
}

/// Encode `name` with `ffmpeg` (once), counting its video frames with ffprobe if `ffprobe`
/// (the system ffmpeg's), else by decoding with `ffmpeg` itself.
fn generate(
    name: &str,
    ffmpeg: &Path,
    encode_args: &[&str],
    duration_s: f64,
    ffprobe: bool,
) -> Fixture {
    let dir = paths::fixtures_dir();
    fs::create_dir_all(&dir).expect("create tests/fixtures");
    let path = dir.join(name);
    let count_path = dir.join(format!("{name}.frames"));
    let _lock = FileLock::acquire(&dir.join(".lock"));
    let cached = || -> Option<u64> {
        if !path.is_file() {
            return None;
        }
        fs::read_to_string(&count_path).ok()?.trim().parse().ok()
    };
    if let Some(video_frames) = cached() {
        return Fixture { path, video_frames, duration_s };
    }
    let tmp = dir.join(format!(".{name}.{}.tmp", std::process::id()));
    eprintln!("generating fixture {} with {}", path.display(), ffmpeg.display());
    let status = Command::new(ffmpeg)
        .args(["-hide_banner", "-nostdin", "-loglevel", "error", "-y"])
        .args(encode_args)
        .arg(&tmp)
        .status()
        .unwrap_or_else(|e| panic!("running {}: {e}", ffmpeg.display()));
    assert!(status.success(), "ffmpeg failed to generate {name}: {status}");
    let video_frames = count_video_frames(ffmpeg, ffprobe, &tmp);
    assert!(video_frames > 0, "{name} has no video frames");
    fs::rename(&tmp, &path).expect("rename fixture into place");
    let count_tmp = dir.join(format!(".{name}.frames.{}.tmp", std::process::id()));
    fs::write(&count_tmp, format!("{video_frames}\n")).expect("write frame count");
    fs::rename(&count_tmp, &count_path).expect("rename frame count into place");
    Fixture { path, video_frames, duration_s }
}

/// Count the video frames of a file by decoding it: `ffprobe -count_frames` (the system
/// ffprobe) if `ffprobe`, else with `ffmpeg` itself (the imageio binary ships no ffprobe).
fn count_video_frames(ffmpeg: &Path, ffprobe: bool, file: &Path) -> u64 {
    if ffprobe {
        let out = Command::new("ffprobe")
            .args(["-v", "error", "-count_frames", "-select_streams", "v:0"])
            .args(["-show_entries", "stream=nb_read_frames", "-of", "csv=p=0"])
            .arg(file)
            .output()
            .expect("run ffprobe");
        let text = String::from_utf8_lossy(&out.stdout);
        return text
            .trim()
            .trim_end_matches(',')
            .parse()
            .unwrap_or_else(|_| panic!("ffprobe frame count {text:?}"));
    }
    let out = Command::new(ffmpeg)
        .args(["-hide_banner", "-nostdin", "-v", "error", "-progress", "pipe:1", "-i"])
        .arg(file)
        .args(["-map", "0:v", "-fps_mode", "passthrough", "-f", "null", "-"])
        .output()
        .expect("run ffmpeg to count frames");
    let text = String::from_utf8_lossy(&out.stdout);
    text.lines()
        .rev()
        .find_map(|l| l.strip_prefix("frame="))
        .and_then(|v| v.trim().parse().ok())
        .unwrap_or_else(|| panic!("no frame count from ffmpeg: {text}"))
}

/// An exclusive advisory lock on a file, released on drop.
pub struct FileLock {
    file: File,
}

impl FileLock {
    pub fn acquire(path: &Path) -> FileLock {
        if let Some(dir) = path.parent() {
            let _ = fs::create_dir_all(dir);
        }
        let file = OpenOptions::new()
            .create(true)
            .truncate(false)
            .write(true)
            .open(path)
            .unwrap_or_else(|e| panic!("open lock file {}: {e}", path.display()));
        rustix::fs::flock(&file, rustix::fs::FlockOperation::LockExclusive)
            .unwrap_or_else(|e| panic!("flock {}: {e}", path.display()));
        FileLock { file }
    }
}

impl Drop for FileLock {
    fn drop(&mut self) {
        // Closing the file would release it too.
        let _ = rustix::fs::flock(&self.file, rustix::fs::FlockOperation::Unlock);
    }
}
