//! How each client publishes or plays, and how its frames are counted: every check ends in
//! decoded frames (by the client itself, or by ffmpeg from what the client wrote), never in a
//! connection alone.

use std::path::Path;
use std::process::{Child, Command, Stdio};
use std::time::Duration;

use sluice_launch::ChildGuard;
use sluice_tests::deps::Dep;
use sluice_tests::ffmpeg::run_with_timeout;
use sluice_tests::origin::TestDir;

/// Video frames a player must decode: 5 s of the 30 fps fixture.
pub const VIDEO_FRAMES: u64 = 150;
/// Audio frames likewise (AAC at 44.1 kHz: 1024 samples a frame, 43 a second).
pub const AUDIO_FRAMES: u64 = 200;

/// What a check found, or why it failed (with the client's own words).
pub type Checked = Result<String, String>;

fn output(cmd: &mut Command, timeout: Duration) -> Result<(Option<i32>, String), String> {
    let (status, stdout, stderr) = run_with_timeout(cmd, timeout)?;
    Ok((status.and_then(|s| s.code()), format!("{stdout}\n{stderr}")))
}

/// The latest time stamp in `file`.
fn media_end(file: &Path) -> Result<f64, String> {
    let (_, times) = output(
        Command::new("ffprobe")
            .args(["-v", "error", "-show_entries", "packet=pts_time", "-of", "csv=p=0"])
            .arg(file),
        Duration::from_secs(30),
    )?;
    times
        .split_whitespace()
        .filter_map(|t| t.trim_end_matches(',').parse::<f64>().ok())
        .reduce(f64::max)
        .ok_or_else(|| format!("no packets in {}", file.display()))
}

/// ffmpeg decodes `file` but its last second (a recording cut off mid-stream ends in a torn
/// frame): at least [`VIDEO_FRAMES`] video frames, and no decoder error.
fn decode_file(file: &Path) -> Checked {
    let until = (media_end(file)? - 1.0).to_string();
    let (status, said) = output(
        Command::new("ffmpeg")
            .args(["-hide_banner", "-v", "error", "-copyts", "-i"])
            .arg(file)
            .args(["-to", &until, "-map", "0:v:0", "-map", "0:a?"])
            .args(["-progress", "pipe:1", "-f", "null", "-"]),
        Duration::from_secs(60),
    )?;
    // The null muxer's complaints about the recording's own timestamps (VLC's mkv remux under
    // load stamps a burst of frames alike) are not decoding errors: every other line is.
    let errors: Vec<&str> = said
        .lines()
        .filter(|l| l.starts_with('[') || l.contains("rror"))
        .filter(|l| !(l.starts_with("[null @") && l.contains("non monotonically increasing dts")))
        .collect();
    if status != Some(0) || !errors.is_empty() {
        return Err(format!("ffmpeg decoding {}: status {status:?}: {errors:?}", file.display()));
    }
    let frames = said
        .lines()
        .filter_map(|l| l.strip_prefix("frame=")?.trim().parse::<u64>().ok())
        .max()
        .unwrap_or(0);
    if frames < VIDEO_FRAMES {
        return Err(format!("{frames} video frames decoded from {}", file.display()));
    }
    Ok(format!("{frames} video frames decoded from what it received"))
}

/// mpv plays `url` until it has shown [`VIDEO_FRAMES`] frames (to null outputs).
pub fn mpv(url: &str) -> Checked {
    let mpv = Dep::Mpv.path();
    let (status, said) = output(
        Command::new(mpv)
            .args(["--no-config", "--really-quiet", "--vo=null", "--ao=null"])
            .arg(format!("--frames={VIDEO_FRAMES}"))
            .arg(url),
        Duration::from_secs(45),
    )?;
    match status {
        Some(0) => Ok(format!("{VIDEO_FRAMES} frames played")),
        other => Err(format!("mpv exited {other:?}: {}", said.trim())),
    }
}

/// VLC (as `nobody`: it refuses root) records 8 s of `url` with its own demuxer and
/// packetizers into Matroska; ffmpeg then decodes what it wrote. (Matroska keeps the H.264
/// parameter sets in its header; VLC's MPEG-TS recording sometimes starts with frames before
/// it repeats them in-band, which is VLC's recorder, not the stream.)
pub fn vlc(url: &str, dir: &TestDir) -> Checked {
    let vlc = Dep::Vlc.path();
    // A directory nobody may write to.
    let out_dir = std::env::temp_dir().join(format!("sluice-vlc-{}", std::process::id()));
    std::fs::create_dir_all(&out_dir).map_err(|e| e.to_string())?;
    let _ = Command::new("chmod").arg("1777").arg(&out_dir).status();
    let file = out_dir.join(format!("{}.mkv", dir.path().file_name().unwrap().to_string_lossy()));
    let sout = format!("#std{{access=file,mux=mkv,dst={}}}", file.display());
    let mut cmd = if nix_is_root() {
        let mut c = Command::new("setpriv");
        c.args(["--reuid=nobody", "--regid=nogroup", "--clear-groups", "env", "HOME=/tmp"])
            .arg(vlc);
        c
    } else {
        Command::new(vlc)
    };
    cmd.args(["-q", "--no-video-title-show", "--play-and-exit", "--run-time=8"]).arg(url).args([
        "--sout",
        &sout,
        "vlc://quit",
    ]);
    let (status, said) = output(&mut cmd, Duration::from_secs(45))?;
    if status != Some(0) {
        return Err(format!("cvlc exited {status:?}: {}", said.trim()));
    }
    let checked = decode_file(&file);
    let _ = std::fs::remove_file(&file);
    // Empty once this test's recording is gone (another test of the process may still write).
    let _ = std::fs::remove_dir(&out_dir);
    checked
}

fn nix_is_root() -> bool {
    Command::new("id").arg("-u").output().is_ok_and(|o| o.stdout.trim_ascii() == b"0")
}

/// rtmpdump (librtmp) records 8 s of `url` as FLV; ffmpeg then decodes what it wrote.
pub fn rtmpdump(url: &str, dir: &TestDir) -> Checked {
    let rtmpdump = Dep::Rtmpdump.path();
    let file = dir.path().join("rtmpdump.flv");
    // rtmpdump records until interrupted (its --stop counts stream time, which starts late in
    // a live stream): SIGINT after 8 s makes it close the file.
    let (status, said) = output(
        Command::new("timeout")
            .args(["-s", "INT", "8"])
            .arg(rtmpdump)
            .args(["-q", "--live", "-r", url, "-o"])
            .arg(&file),
        Duration::from_secs(30),
    )?;
    // timeout's 124: interrupted as planned; 0: the stream ended first.
    if !matches!(status, Some(0 | 124 | 130)) {
        return Err(format!("rtmpdump exited {status:?}: {}", said.trim()));
    }
    decode_file(&file)
}

/// GStreamer plays RTMP with `source` (`rtmp2src`, or `rtmpsrc`: librtmp), demuxes with
/// `flvdemux` and decodes H.264 and AAC with libav until it has [`VIDEO_FRAMES`] and
/// [`AUDIO_FRAMES`].
pub fn gst_rtmp(source: &str, url: &str) -> Checked {
    let launch = Dep::Gstreamer.path();
    let pipeline = format!(
        "{source} location={url} ! flvdemux name=d \
         d.video ! queue ! h264parse ! avdec_h264 ! identity eos-after={VIDEO_FRAMES} ! fakesink \
         d.audio ! queue ! aacparse ! avdec_aac ! identity eos-after={AUDIO_FRAMES} ! fakesink"
    );
    let (status, said) = output(
        Command::new(launch).arg("-q").args(pipeline.split_whitespace()),
        Duration::from_secs(45),
    )?;
    match status {
        Some(0) => Ok(format!("{VIDEO_FRAMES} video and {AUDIO_FRAMES} audio frames decoded")),
        other => Err(format!("gst-launch exited {other:?}: {}", said.trim())),
    }
}

/// GStreamer plays an HLS playlist (`uridecodebin`: souphttpsrc, hlsdemux, the container's
/// demuxer, libav decoders) for 20 s; the decoded video and audio buffers are counted. The
/// sinks play in real time as a player's do: unsynchronised sinks drain the audio at once, and
/// decodebin's buffering then pauses the pipeline (video sink blocked in preroll) every few
/// frames until a young live playlist has 5 s more, which starves the video (5 frames in 20 s).
pub fn gst_hls(url: &str) -> Checked {
    let launch = Dep::Gstreamer.path();
    let pipeline = format!(
        "uridecodebin uri={url} name=d \
         d. ! video/x-raw ! identity name=vid silent=false ! fakesink sync=true \
         d. ! audio/x-raw ! identity name=aud silent=false ! fakesink sync=true"
    );
    // A live playlist never ends: the run is cut after 20 s and its log read.
    let (_, said) = output(
        Command::new("timeout")
            .args(["-s", "INT", "20"])
            .arg(launch)
            .arg("-v")
            .args(pipeline.split_whitespace()),
        Duration::from_secs(40),
    )?;
    let count = |name: &str| {
        let tag = format!("({name}:sink)");
        said.lines().filter(|l| l.contains("chain") && l.contains(&tag)).count() as u64
    };
    let (video, audio) = (count("vid"), count("aud"));
    let errors: Vec<&str> = said.lines().filter(|l| l.starts_with("ERROR")).collect();
    if video < VIDEO_FRAMES || audio < AUDIO_FRAMES || !errors.is_empty() {
        return Err(format!("{video} video and {audio} audio frames; errors: {errors:?}"));
    }
    Ok(format!("{video} video and {audio} audio frames decoded in 20 s"))
}

/// A GStreamer encoder publishing a live test pattern (640x360 H.264 at 30 fps, AAC) to `url`
/// with `sink` (`rtmp2sink`, or `rtmpsink`: librtmp); stopped on drop.
pub fn gst_publisher(sink: &str, url: &str) -> ChildGuard {
    let launch = Dep::Gstreamer.path();
    let pipeline = format!(
        "videotestsrc is-live=true pattern=smpte ! video/x-raw,width=640,height=360,framerate=30/1 \
         ! x264enc tune=zerolatency key-int-max=60 bitrate=800 ! h264parse \
         ! flvmux name=m streamable=true ! {sink} location={url} \
         audiotestsrc is-live=true ! audioconvert ! avenc_aac ! aacparse ! m."
    );
    let child: Child = Command::new(launch)
        .arg("-q")
        .args(pipeline.split_whitespace())
        .stdin(Stdio::null())
        .stdout(Stdio::null())
        .stderr(Stdio::null())
        .spawn()
        .expect("spawn gst-launch-1.0");
    ChildGuard::new(format!("gst-launch {sink} {url}"), child)
}

/// OBS Studio streams a generated 640x360 clip (looped) to `url`: tests/clients/obs-stream.sh
/// runs it headless (Xvfb, software OpenGL) with a custom RTMP service and one Media Source.
/// Its own log ends up in `dir`/obs.log.
pub fn obs_publisher(url: &str, dir: &TestDir) -> Result<ChildGuard, String> {
    Dep::Obs.path();
    let clip = dir.path().join("obs-source.mp4");
    let (status, said) = output(
        Command::new("ffmpeg")
            .args(["-hide_banner", "-v", "error", "-y", "-f", "lavfi"])
            .args([
                "-i",
                "testsrc2=size=640x360:rate=30",
                "-f",
                "lavfi",
                "-i",
                "sine=frequency=440",
            ])
            .args(["-t", "10", "-c:v", "libx264", "-preset", "veryfast", "-g", "60", "-c:a", "aac"])
            .arg(&clip),
        Duration::from_secs(60),
    )?;
    if status != Some(0) {
        return Err(format!("making OBS's source clip: {said}"));
    }
    let script = sluice_tests::paths::workspace_root().join("tests/clients/obs-stream.sh");
    let log = |name: &str| std::fs::File::create(dir.path().join(name)).map_err(|e| e.to_string());
    let child = Command::new("bash")
        .arg(script)
        .arg(url)
        .arg(&clip)
        .env("OBS_TMP", dir.path())
        .env("OBS_LOG", dir.path().join("obs.log"))
        .stdin(Stdio::null())
        .stdout(log("obs-stream.out")?)
        .stderr(log("obs-stream.err")?)
        .spawn()
        .map_err(|e| format!("spawn obs-stream.sh: {e}"))?;
    Ok(ChildGuard::new(format!("OBS to {url}"), child))
}
