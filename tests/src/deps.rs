//! The external programs the end-to-end tests need, found in one place.
//!
//! A missing program fails the test that needs it, with a message naming it and how to install
//! it (`scripts/test.sh` installs them all). A test that silently returned would count as
//! passed, and the suite would no longer show what a user would notice.
//!
//! Developers without some of them may opt out of the tests that can be skipped one by one
//! (HEVC, browser), per program, with
//! `SLUICE_TEST_ALLOW_MISSING=ffmpeg,hevc-ffmpeg,chromium,node,helm` (or `all`; `helm`: the chart
//! renderings of helm/test.sh, see `crate::helm`): the test then prints
//! a loud `SKIPPED` notice and returns. Never set in CI (`scripts/test.sh` refuses it there).
//!
//! To check the failure by hand, hide a program: `PATH` without ffmpeg/ffprobe, chromium or
//! node, `IMAGEIO_FFMPEG_EXE=/nonexistent` (imageio-ffmpeg's own override) for the HEVC ffmpeg,
//! or `SLUICE_CHROMIUM=/nonexistent`.

use std::io::Write;
use std::path::{Path, PathBuf};
use std::process::{Command, Stdio};
use std::sync::OnceLock;

/// The opt-out variable: a comma-separated list of [`Dep::name`]s, or `all`.
pub const ALLOW_MISSING_VAR: &str = "SLUICE_TEST_ALLOW_MISSING";

/// An external program some tests need.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Dep {
    /// The system ffmpeg and ffprobe (Debian's `ffmpeg` package).
    Ffmpeg,
    /// A recent ffmpeg that speaks Enhanced RTMP and writes H.265 in FLV: the binary of the
    /// `imageio-ffmpeg` PyPI package (Debian 12's ffmpeg 5.1 predates E-RTMP).
    HevcFfmpeg,
    /// Headless Chromium for the browser test.
    Chromium,
    /// Node.js, which runs the browser test's driver (playwright-core).
    Node,
    /// GStreamer's gst-launch-1.0 with the RTMP (rtmp2, librtmp), FLV, HLS, x264 and libav
    /// elements (the interop tests).
    Gstreamer,
    /// The mpv player (the interop tests).
    Mpv,
    /// VLC's command-line player, cvlc (the interop tests).
    Vlc,
    /// rtmpdump (librtmp's own client; the interop tests).
    Rtmpdump,
    /// OBS Studio and Xvfb, where it runs headless (the interop tests).
    Obs,
}

impl Dep {
    /// The name used in [`ALLOW_MISSING_VAR`] and in messages.
    pub fn name(self) -> &'static str {
        match self {
            Dep::Ffmpeg => "ffmpeg",
            Dep::HevcFfmpeg => "hevc-ffmpeg",
            Dep::Chromium => "chromium",
            Dep::Node => "node",
            Dep::Gstreamer => "gstreamer",
            Dep::Mpv => "mpv",
            Dep::Vlc => "vlc",
            Dep::Rtmpdump => "rtmpdump",
            Dep::Obs => "obs",
        }
    }

    /// How to install it.
    pub fn install_hint(self) -> &'static str {
        match self {
            Dep::Ffmpeg => "apt-get install ffmpeg",
            Dep::HevcFfmpeg => "python3 -m pip install imageio-ffmpeg",
            Dep::Chromium => {
                "apt-get install chromium (or set SLUICE_CHROMIUM to a Chromium binary)"
            }
            Dep::Node => "apt-get install nodejs npm",
            Dep::Gstreamer => {
                "apt-get install gstreamer1.0-tools gstreamer1.0-plugins-good \
                 gstreamer1.0-plugins-bad gstreamer1.0-plugins-ugly gstreamer1.0-libav"
            }
            Dep::Mpv => "apt-get install mpv",
            Dep::Vlc => "apt-get install vlc-bin vlc-plugin-base",
            Dep::Rtmpdump => "apt-get install rtmpdump",
            Dep::Obs => "apt-get install obs-studio xvfb",
        }
    }

    /// Where it is, or why it was not found. Looked up once per test process.
    pub fn find(self) -> Result<PathBuf, String> {
        static FOUND: [OnceLock<Result<PathBuf, String>>; 9] = [const { OnceLock::new() }; 9];
        FOUND[self as usize]
            .get_or_init(|| match self {
                Dep::Ffmpeg => {
                    on_path("ffmpeg").and_then(|ffmpeg| on_path("ffprobe").map(|_| ffmpeg))
                }
                Dep::HevcFfmpeg => imageio_ffmpeg(),
                Dep::Chromium => chromium(),
                Dep::Node => on_path("node"),
                Dep::Gstreamer => gstreamer(),
                Dep::Mpv => on_path("mpv"),
                Dep::Vlc => on_path("cvlc"),
                Dep::Rtmpdump => on_path("rtmpdump"),
                Dep::Obs => on_path("obs").and_then(|obs| on_path("Xvfb").map(|_| obs)),
            })
            .clone()
    }

    /// The program's path; panics naming it and how to install it when it is missing, with no
    /// opt-out. For what nearly every test needs (ffmpeg publishes and plays in the
    /// end-to-end tests): skipping those would skip the suite.
    pub fn path(self) -> PathBuf {
        self.find().unwrap_or_else(|why| {
            panic!(
                "{} is missing ({why}); install it with `{}` (scripts/test.sh installs every \
                 test dependency)",
                self.name(),
                self.install_hint()
            )
        })
    }

    /// The program's path. When it is missing: panics (the test fails) naming it and how to
    /// install it, unless [`ALLOW_MISSING_VAR`] lists it; then prints a loud notice that
    /// `test` is skipped and returns `None`, and the caller returns.
    pub fn require(self, test: &str) -> Option<PathBuf> {
        match self.find() {
            Ok(path) => Some(path),
            Err(why) => {
                let what = format!(
                    "{} is missing ({why}); install it with `{}` (scripts/test.sh installs every \
                     test dependency)",
                    self.name(),
                    self.install_hint()
                );
                if !allowed_missing(self) {
                    panic!(
                        "{test}: {what}. To skip instead, set {ALLOW_MISSING_VAR}={}",
                        self.name()
                    );
                }
                skip_notice(&format!("SKIPPED {test}: {what}; allowed by {ALLOW_MISSING_VAR}"));
                None
            }
        }
    }
}

/// Whether the developer opted out of `dep` with [`ALLOW_MISSING_VAR`].
fn allowed_missing(dep: Dep) -> bool {
    std::env::var(ALLOW_MISSING_VAR)
        .is_ok_and(|v| v.split(',').map(str::trim).any(|name| name == dep.name() || name == "all"))
}

/// Print a skip where the developer sees it: test runners capture a passing test's output
/// (cargo-nextest and `cargo test` both), so it also goes straight to the terminal if there is
/// one.
fn skip_notice(line: &str) {
    let banner = format!("\n!!!!! {line}\n");
    eprintln!("{banner}");
    if let Ok(mut tty) = std::fs::OpenOptions::new().write(true).open("/dev/tty") {
        let _ = tty.write_all(banner.as_bytes());
    }
}

/// gst-launch-1.0, when every element the interop tests use is installed.
fn gstreamer() -> Result<PathBuf, String> {
    let launch = on_path("gst-launch-1.0")?;
    let inspect = on_path("gst-inspect-1.0")?;
    let elements = [
        "rtmp2sink",
        "rtmp2src",
        "rtmpsink",
        "rtmpsrc",
        "flvmux",
        "flvdemux",
        "hlsdemux",
        "x264enc",
        "avdec_h264",
        "avenc_aac",
        "avdec_aac",
        "uridecodebin",
    ];
    for element in elements {
        let found = Command::new(&inspect)
            .arg(element)
            .stdout(Stdio::null())
            .stderr(Stdio::null())
            .status()
            .is_ok_and(|s| s.success());
        if !found {
            return Err(format!("the GStreamer element {element} is not installed"));
        }
    }
    Ok(launch)
}

/// `name` in a directory of `PATH`.
pub fn on_path(name: &str) -> Result<PathBuf, String> {
    let path = std::env::var_os("PATH").unwrap_or_default();
    std::env::split_paths(&path)
        .map(|dir| dir.join(name))
        .find(|p| is_executable(p))
        .ok_or_else(|| format!("`{name}` not found in PATH"))
}

fn is_executable(path: &Path) -> bool {
    use std::os::unix::fs::PermissionsExt;
    std::fs::metadata(path).is_ok_and(|m| m.is_file() && m.permissions().mode() & 0o111 != 0)
}

/// The ffmpeg binary of the imageio-ffmpeg package (which honours `IMAGEIO_FFMPEG_EXE`).
fn imageio_ffmpeg() -> Result<PathBuf, String> {
    let python = on_path("python3")?;
    let out = Command::new(python)
        .args(["-c", "import imageio_ffmpeg; print(imageio_ffmpeg.get_ffmpeg_exe())"])
        .stdin(Stdio::null())
        .output()
        .map_err(|e| format!("running python3: {e}"))?;
    if !out.status.success() {
        return Err(format!(
            "python3 cannot import imageio_ffmpeg: {}",
            String::from_utf8_lossy(&out.stderr).trim()
        ));
    }
    let path = PathBuf::from(String::from_utf8_lossy(&out.stdout).trim());
    if is_executable(&path) {
        Ok(path)
    } else {
        Err(format!("imageio-ffmpeg names {}, which is not an executable file", path.display()))
    }
}

/// `SLUICE_CHROMIUM` if set, else the first of Chromium's usual names in `PATH`.
fn chromium() -> Result<PathBuf, String> {
    if let Some(path) = std::env::var_os("SLUICE_CHROMIUM").filter(|p| !p.is_empty()) {
        let path = PathBuf::from(path);
        return if is_executable(&path) {
            Ok(path)
        } else {
            Err(format!("SLUICE_CHROMIUM={} is not an executable file", path.display()))
        };
    }
    ["chromium", "chromium-browser", "google-chrome-stable", "google-chrome"]
        .iter()
        .find_map(|name| on_path(name).ok())
        .ok_or_else(|| "none of chromium, chromium-browser, google-chrome in PATH".to_string())
}
