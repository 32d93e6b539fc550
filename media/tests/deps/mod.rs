//! The external programs the media crate's ffmpeg tests need, found in one place (each test
//! file that uses them has `mod deps;`).
//!
//! A missing program fails the test, with a message naming it and how to install it
//! (`scripts/test.sh` installs them all): a test that returned early would count as passed.
//! Developers may opt out per program with `SLUICE_TEST_ALLOW_MISSING=ffmpeg,hevc-ffmpeg` (or
//! `all`): the test then prints a loud `SKIPPED` notice and returns. Never set in CI.
//!
//! The end-to-end tests have the same rules in `sluice_tests::deps` (another crate, which this
//! one cannot use).
#![allow(dead_code)]

use std::io::Write;
use std::path::{Path, PathBuf};
use std::process::{Command, Stdio};

/// The opt-out variable: a comma-separated list of [`Dep::name`]s, or `all`.
pub const ALLOW_MISSING_VAR: &str = "SLUICE_TEST_ALLOW_MISSING";

/// An external program some tests need.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Dep {
    /// The system ffmpeg and ffprobe (Debian's `ffmpeg` package).
    Ffmpeg,
    /// A recent ffmpeg that writes H.265 and Opus in Enhanced FLV: the binary of the
    /// `imageio-ffmpeg` PyPI package (Debian 12's ffmpeg 5.1 cannot). Hidden by
    /// `IMAGEIO_FFMPEG_EXE=/nonexistent` (the package's own override).
    HevcFfmpeg,
}

impl Dep {
    pub fn name(self) -> &'static str {
        match self {
            Dep::Ffmpeg => "ffmpeg",
            Dep::HevcFfmpeg => "hevc-ffmpeg",
        }
    }

    fn install_hint(self) -> &'static str {
        match self {
            Dep::Ffmpeg => "apt-get install ffmpeg",
            Dep::HevcFfmpeg => "python3 -m pip install imageio-ffmpeg",
        }
    }

    /// Where it is (the ffmpeg binary), or why it was not found.
    pub fn find(self) -> Result<PathBuf, String> {
        match self {
            Dep::Ffmpeg => on_path("ffmpeg").and_then(|ffmpeg| on_path("ffprobe").map(|_| ffmpeg)),
            Dep::HevcFfmpeg => imageio_ffmpeg(),
        }
    }

    /// The program's path. When it is missing: panics (the test fails) naming it and how to
    /// install it, unless [`ALLOW_MISSING_VAR`] lists it; then prints a loud notice that `what`
    /// is skipped and returns `None`, and the caller skips it.
    pub fn require(self, what: &str) -> Option<PathBuf> {
        let why = match self.find() {
            Ok(path) => return Some(path),
            Err(why) => why,
        };
        let missing = format!(
            "{} is missing ({why}); install it with `{}` (scripts/test.sh installs every test \
             dependency)",
            self.name(),
            self.install_hint()
        );
        let allowed = std::env::var(ALLOW_MISSING_VAR).is_ok_and(|v| {
            v.split(',').map(str::trim).any(|name| name == self.name() || name == "all")
        });
        if !allowed {
            panic!("{what}: {missing}. To skip instead, set {ALLOW_MISSING_VAR}={}", self.name());
        }
        // Test runners capture a passing test's output, so the notice also goes straight to
        // the terminal when there is one.
        let banner = format!("\n!!!!! SKIPPED {what}: {missing}; allowed by {ALLOW_MISSING_VAR}\n");
        eprintln!("{banner}");
        if let Ok(mut tty) = std::fs::OpenOptions::new().write(true).open("/dev/tty") {
            let _ = tty.write_all(banner.as_bytes());
        }
        None
    }
}

/// `name` in a directory of `PATH`.
fn on_path(name: &str) -> Result<PathBuf, String> {
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

/// The ffmpeg binary of the imageio-ffmpeg package.
fn imageio_ffmpeg() -> Result<PathBuf, String> {
    let out = Command::new(on_path("python3")?)
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
