//! Real media: two publishes made by ffmpeg (H.264 with B-frames + AAC; the second at another
//! resolution) are segmented, assembled into one MP4 and decoded by ffprobe, frame by frame.
//!
//! Like the crate's other ffmpeg tests, a missing ffmpeg/ffprobe fails the test unless
//! `SLUICE_TEST_ALLOW_MISSING` lists `ffmpeg` (or says `all`).

use std::path::{Path, PathBuf};
use std::process::Command;

use super::tests::{assemble, read_file, record};
use crate::flv::FlvReader;
use crate::frame::MediaMessage;

fn ffmpeg_available() -> bool {
    let found = |name: &str| {
        std::env::var_os("PATH")
            .is_some_and(|p| std::env::split_paths(&p).any(|d| d.join(name).is_file()))
    };
    if found("ffmpeg") && found("ffprobe") {
        return true;
    }
    let allowed = std::env::var("SLUICE_TEST_ALLOW_MISSING").unwrap_or_default();
    assert!(
        allowed.split(',').any(|a| a == "ffmpeg" || a == "all"),
        "ffmpeg and ffprobe are needed (apt-get install ffmpeg), or set \
         SLUICE_TEST_ALLOW_MISSING=ffmpeg to skip"
    );
    eprintln!(
        "\n!!!!! SKIPPED mp4 ffprobe test: no ffmpeg; allowed by SLUICE_TEST_ALLOW_MISSING\n"
    );
    false
}

fn temp_dir() -> PathBuf {
    let dir = std::env::temp_dir().join(format!("sluice-mp4-{}", std::process::id()));
    let _ = std::fs::remove_dir_all(&dir);
    std::fs::create_dir_all(&dir).unwrap();
    dir
}

/// `seconds` of test pattern and tone at `size`, as FLV messages.
fn publish(dir: &Path, size: &str, seconds: &str) -> Vec<MediaMessage> {
    let out = dir.join(format!("{size}.flv"));
    let st = Command::new("ffmpeg")
        .args(["-hide_banner", "-loglevel", "error", "-y"])
        .args(["-f", "lavfi", "-i", &format!("testsrc2=size={size}:rate=30")])
        .args(["-f", "lavfi", "-i", "sine=frequency=440:sample_rate=48000"])
        .args(["-t", seconds, "-c:v", "libx264", "-preset", "veryfast", "-g", "30", "-bf", "2"])
        .args(["-c:a", "aac", "-f", "flv"])
        .arg(&out)
        .status()
        .unwrap();
    assert!(st.success(), "ffmpeg failed to make the FLV");
    let mut reader = FlvReader::new(16 << 20);
    reader.push(&std::fs::read(out).unwrap());
    let mut msgs = Vec::new();
    while let Some(tag) = reader.next_tag().unwrap() {
        msgs.push(MediaMessage { kind: tag.kind, timestamp: tag.timestamp, payload: tag.payload });
    }
    msgs
}

#[test]
fn ffprobe_decodes_every_frame_of_an_assembled_recording() {
    if !ffmpeg_available() {
        return;
    }
    let dir = temp_dir();
    let rec = record(&[publish(&dir, "320x240", "3"), publish(&dir, "480x270", "2")]);
    assert_eq!(rec.inits.len(), 2);
    let a = assemble(&rec);
    let (_, traks) = read_file(&a.file);
    assert_eq!(traks[0].entries, 2, "the second resolution is a second sample entry");
    assert_eq!(traks[0].samples.len(), rec.video.len());
    assert_eq!(traks[1].samples.len(), rec.audio.len());
    let path = dir.join("out.mp4");
    std::fs::write(&path, &a.file).unwrap();

    let out = Command::new("ffprobe")
        .args(["-v", "error", "-count_frames"])
        .args(["-show_entries", "stream=codec_type,nb_read_frames:format=duration"])
        .args(["-of", "csv=p=0"])
        .arg(&path)
        .output()
        .unwrap();
    let stderr = String::from_utf8_lossy(&out.stderr);
    assert!(out.status.success() && stderr.is_empty(), "ffprobe: {stderr}");
    let text = String::from_utf8(out.stdout).unwrap();
    let lines: Vec<&str> = text.lines().map(str::trim).collect();
    let video = format!("video,{}", rec.video.len());
    let audio = format!("audio,{}", rec.audio.len());
    assert!(lines.contains(&video.as_str()) && lines.contains(&audio.as_str()), "{text}");
    let duration: f64 = lines.iter().find_map(|l| l.parse().ok()).unwrap();
    assert!(
        (duration - a.layout.duration_s()).abs() < 0.05,
        "{duration} vs {}",
        a.layout.duration_s()
    );
    assert!((duration - 5.0).abs() < 0.2, "{duration}");
    let _ = std::fs::remove_dir_all(&dir);
}
