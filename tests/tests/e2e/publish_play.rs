//! Publish with ffmpeg, play with ffmpeg over RTMP and HTTP-FLV: every frame arrives and
//! decodes, probes report the right codecs, the API and metrics reflect the session.

use std::time::Duration;

use sluice_tests::ffmpeg::probe_streams;
use sluice_tests::process::wait_for;
use sluice_tests::wait::{wait_players_subscribed, LOG_PLAYS};
use sluice_tests::{ffprobe_streams, h264_aac, secs, Origin, Player, Publisher};

/// Players that join before the publisher decode every published video frame, without errors.
#[test]
fn players_started_before_publisher_decode_every_frame() {
    let fixture = h264_aac();
    // The wait also bounds how long an HTTP-FLV response stays open after the publisher
    // leaves; the body then ends and ffmpeg flushes its decoder (B-frames are held in it).
    let origin = Origin::start(&[&["--play-wait-timeout", "6s"][..], &LOG_PLAYS].concat());
    let rtmp_url = origin.rtmp_url("live", "every");
    let flv_url = origin.flv_url("live", "every");

    let rtmp_player = Player::start(&rtmp_url);
    let flv_player = Player::start(&flv_url);
    // Both players must be subscribed and waiting before the publisher starts.
    wait_players_subscribed(&origin, "live/every", 1, 1, secs(20));
    let before = origin.metrics();

    let mut publisher = Publisher::start(&rtmp_url, &fixture.path);

    // While playing: the API describes the stream and counts both viewers.
    let info = wait_for(secs(10), || {
        origin
            .stream_info("live", "every")
            .filter(|s| s["viewers"] == 2 && !s["video"].is_null() && !s["audio"].is_null())
    })
    .unwrap_or_else(|| {
        panic!("/api/streams never showed live/every with 2 viewers: {}", origin.streams())
    });
    assert_eq!(info["video"]["codec"], "h264", "{info}");
    assert_eq!(info["video"]["width"], 1280, "{info}");
    assert_eq!(info["video"]["height"], 720, "{info}");
    let fps = info["video"]["fps"].as_f64().unwrap_or_else(|| panic!("video.fps missing: {info}"));
    assert!((fps - 30.0).abs() < 0.5, "fps {fps}: {info}");
    assert_eq!(info["audio"]["codec"], "aac", "{info}");
    assert_eq!(info["audio"]["sample_rate"], 44100, "{info}");
    assert_eq!(info["audio"]["channels"], 2, "{info}");

    let during = origin.metrics();
    assert_eq!(during.value("sluice_streams", &[]), 1.0, "sluice_streams while publishing");
    assert_eq!(during.value("sluice_viewers", &[("protocol", "rtmp")]), 1.0, "rtmp viewers");
    assert_eq!(during.value("sluice_viewers", &[("protocol", "flv")]), 1.0, "flv viewers");
    // The publisher, the RTMP player and the HTTP-FLV player.
    assert_eq!(during.value("sluice_connections", &[]), 3.0, "connections gauge");

    let status = publisher.wait(secs(40)).expect("publisher finished within 40 s");
    assert!(status.success(), "publisher failed: {status:?} {:?}", publisher.stderr());

    for (name, player) in [("rtmp", rtmp_player), ("http-flv", flv_player)] {
        // RTMP: ffmpeg ends on NetStream.Play.UnpublishNotify; HTTP-FLV: the body ends after
        // the 6 s republish wait. Either way ffmpeg exits by itself and flushes its decoder.
        let result = player.finish(secs(12), secs(30));
        assert!(
            result.status.is_some_and(|s| s.success()),
            "{name} player did not end cleanly: {:?}",
            result.status
        );
        assert!(result.errors.is_empty(), "{name} player reported errors: {:#?}", result.errors);
        assert_eq!(
            result.frames, fixture.video_frames,
            "{name} player decoded {} of {} published video frames",
            result.frames, fixture.video_frames
        );
    }

    let after = origin.metrics();
    let file_len = std::fs::metadata(&fixture.path).unwrap().len() as f64;
    let bytes_in =
        after.value("sluice_bytes_in_total", &[]) - before.value("sluice_bytes_in_total", &[]);
    assert!(bytes_in >= file_len * 0.9, "bytes_in grew by {bytes_in}, file is {file_len} bytes");
    for proto in ["rtmp", "flv"] {
        let out = after.value("sluice_bytes_out_total", &[("protocol", proto)])
            - before.value("sluice_bytes_out_total", &[("protocol", proto)]);
        assert!(
            out >= file_len * 0.9,
            "bytes_out{{protocol={proto}}} grew by {out}, file is {file_len} bytes"
        );
    }
}

/// ffprobe on the RTMP and HTTP-FLV URLs of a live stream reports H.264 1280x720 and AAC.
#[test]
fn ffprobe_reports_codecs_over_rtmp_and_http_flv() {
    let fixture = h264_aac();
    let origin = Origin::start(&[]);
    let rtmp_url = origin.rtmp_url("live", "probe");
    let _publisher = Publisher::start_looped(&rtmp_url, &fixture.path);
    wait_for(secs(10), || origin.stream_info("live", "probe"))
        .expect("stream appears in /api/streams");

    for url in [rtmp_url.clone(), origin.flv_url("live", "probe")] {
        let probe =
            ffprobe_streams(&url, Duration::from_secs(30)).unwrap_or_else(|e| panic!("{e}"));
        let video = probe_streams(&probe, "video");
        let audio = probe_streams(&probe, "audio");
        assert_eq!(video.len(), 1, "{url}: {probe}");
        assert_eq!(audio.len(), 1, "{url}: {probe}");
        // Nothing else: no empty data stream from a data message ffmpeg does not know.
        assert_eq!(probe["streams"].as_array().map(Vec::len), Some(2), "{url}: {probe}");
        assert_eq!(video[0]["codec_name"], "h264", "{url}");
        assert_eq!(video[0]["width"], 1280, "{url}");
        assert_eq!(video[0]["height"], 720, "{url}");
        assert_eq!(audio[0]["codec_name"], "aac", "{url}");
        assert_eq!(audio[0]["sample_rate"], "44100", "{url}");
        assert_eq!(audio[0]["channels"], 2, "{url}");
    }
}
