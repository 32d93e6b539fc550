//! An audio-only stream (no keyframes to wait for) is relayed whole over RTMP and HTTP-FLV, and
//! a viewer joining mid-stream starts at once.

use std::path::Path;
use std::process::Command;
use std::time::Duration;

use sluice_tests::ffmpeg::run_with_timeout;
use sluice_tests::origin::TestDir;
use sluice_tests::process::wait_for;
use sluice_tests::wait::{wait_players_subscribed, LOG_PLAYS};
use sluice_tests::{h264_aac, secs, Origin, Publisher};

/// Audio packets ffmpeg reads from `input` (copied, not decoded), counted from its framecrc
/// output, plus its error lines.
fn count_audio_packets(input: &str, timeout: Duration) -> (usize, String) {
    let (_, stdout, stderr) = run_with_timeout(
        Command::new("ffmpeg").args([
            "-hide_banner",
            "-nostdin",
            "-loglevel",
            "error",
            "-i",
            input,
            "-map",
            "0:a",
            "-c",
            "copy",
            "-f",
            "framecrc",
            "-",
        ]),
        timeout,
    )
    .expect("run ffmpeg");
    let packets = stdout.lines().filter(|l| l.starts_with("0,")).count();
    (packets, stderr)
}

fn audio_only_fixture(dir: &Path) -> std::path::PathBuf {
    let out = dir.join("audio_only.flv");
    let status = Command::new("ffmpeg")
        .args(["-hide_banner", "-loglevel", "error", "-y", "-i"])
        .arg(&h264_aac().path)
        .args(["-vn", "-c:a", "copy", "-f", "flv"])
        .arg(&out)
        .status()
        .expect("run ffmpeg");
    assert!(status.success(), "making the audio-only fixture failed");
    out
}

#[test]
fn audio_only_stream_reaches_every_player_whole() {
    let dir = TestDir::new("audio");
    let fixture = audio_only_fixture(dir.path());
    let (published, _) = count_audio_packets(fixture.to_str().unwrap(), secs(30));
    // 10 s of 44.1 kHz AAC: 430.7 frames of 1024 samples, the priming frame, rounded up.
    assert_eq!(published, 432, "audio packets of the fixture");

    let origin = Origin::start(&[&["--play-wait-timeout", "4s"][..], &LOG_PLAYS].concat());
    let rtmp_url = origin.rtmp_url("live", "radio");
    let flv_url = origin.flv_url("live", "radio");
    let rtmp_player = {
        let url = rtmp_url.clone();
        std::thread::spawn(move || count_audio_packets(&url, secs(40)))
    };
    let flv_player = {
        let url = flv_url.clone();
        std::thread::spawn(move || count_audio_packets(&url, secs(40)))
    };
    // Both players wait, subscribed, before the publisher starts.
    wait_players_subscribed(&origin, "live/radio", 1, 1, secs(20));
    let mut publisher = Publisher::start(&rtmp_url, &fixture);

    // The API reports audio and no video.
    let info = wait_for(secs(10), || {
        origin.stream_info("live", "radio").filter(|s| !s["audio"].is_null())
    })
    .unwrap_or_else(|| panic!("no audio in /api/streams: {}", origin.streams()));
    assert_eq!(info["audio"]["codec"], "aac", "{info}");
    assert!(info["video"].is_null(), "{info}");

    // A player joining mid-stream gets audio right away: every audio frame is a start point.
    std::thread::sleep(secs(2));
    let (late, late_err) = {
        let (_, stdout, stderr) = run_with_timeout(
            Command::new("ffmpeg").args([
                "-hide_banner",
                "-nostdin",
                "-loglevel",
                "error",
                "-i",
                &rtmp_url,
                "-map",
                "0:a",
                "-t",
                "1",
                "-c",
                "copy",
                "-f",
                "framecrc",
                "-",
            ]),
            secs(10),
        )
        .expect("run ffmpeg");
        (stdout.lines().filter(|l| l.starts_with("0,")).count(), stderr)
    };
    assert!(late >= 30, "late joiner got {late} audio packets in its first second: {late_err}");

    publisher.wait(secs(30));
    let (rtmp_packets, rtmp_err) = rtmp_player.join().unwrap();
    let (flv_packets, flv_err) = flv_player.join().unwrap();
    assert_eq!(rtmp_packets, published, "RTMP player: {rtmp_err}");
    assert_eq!(flv_packets, published, "HTTP-FLV player: {flv_err}");
}
