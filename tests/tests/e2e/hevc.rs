//! H.265 over Enhanced RTMP (FourCC `hvc1`), published and played by a recent ffmpeg (the one
//! shipped by the imageio-ffmpeg PyPI package; Debian 12's ffmpeg 5.1 predates E-RTMP).
//! Without that ffmpeg the test fails (opt-out: `SLUICE_TEST_ALLOW_MISSING=hevc-ffmpeg`).

use sluice_media::frame::MediaKind;
use sluice_tests::deps::Dep;
use sluice_tests::ffmpeg::ffmpeg_describe;
use sluice_tests::process::wait_for;
use sluice_tests::rtmp::{read_flv_file, video_header, FOURCC_HVC1};
use sluice_tests::wait::{wait_players_subscribed, LOG_PLAYS};
use sluice_tests::{hevc_aac, secs, Origin, Player, Publisher};

#[test]
fn hevc_over_enhanced_rtmp_is_relayed() {
    let Some(ffmpeg) = Dep::HevcFfmpeg.require("hevc_over_enhanced_rtmp_is_relayed") else {
        return;
    };
    let fixture = hevc_aac();
    // The fixture really is Enhanced FLV with an hvc1 sequence start, so what ffmpeg publishes
    // (the same tag bodies) is E-RTMP.
    let tags = read_flv_file(&fixture.path).unwrap();
    let first_video = tags.iter().find(|t| t.kind == MediaKind::Video).expect("fixture has video");
    let header = video_header(&first_video.payload).unwrap();
    assert!(
        header.sequence_header && header.codec == FOURCC_HVC1,
        "fixture's first video tag: {header:?}"
    );

    let origin = Origin::start(&[&["--play-wait-timeout", "20s"][..], &LOG_PLAYS].concat());
    let url = origin.rtmp_url("live", "hevc");
    let player = Player::start_with(&ffmpeg, &url);
    // The player must be subscribed and waiting before the publisher starts, or it would join
    // at a later keyframe and miss frames.
    wait_players_subscribed(&origin, "live/hevc", 1, 0, secs(20));
    let mut publisher = Publisher::start_with(&ffmpeg, &url, &fixture.path, false);

    let info = wait_for(secs(10), || {
        origin.stream_info("live", "hevc").filter(|s| !s["video"]["codec"].is_null())
    })
    .unwrap_or_else(|| panic!("live/hevc never listed with video info: {}", origin.streams()));
    assert_eq!(info["video"]["codec"], "h265", "{info}");
    assert_eq!(info["video"]["width"], 1280, "{info}");
    assert_eq!(info["video"]["height"], 720, "{info}");

    // Probe with the same newer ffmpeg while the stream is live (system ffprobe cannot read E-RTMP).
    let description = ffmpeg_describe(&ffmpeg, &url, secs(20)).unwrap();
    let video_line = description
        .lines()
        .find(|l| l.contains("Video:"))
        .unwrap_or_else(|| panic!("no video stream in ffmpeg's description:\n{description}"));
    assert!(video_line.contains("hevc") && video_line.contains("1280x720"), "{video_line}");

    let status = publisher.wait(secs(30)).expect("publisher finished");
    assert!(status.success(), "publisher failed: {:?}", publisher.stderr());
    let result = player.finish(secs(4), secs(20));
    assert!(result.errors.is_empty(), "player errors: {:#?}", result.errors);
    assert_eq!(
        result.frames, fixture.video_frames,
        "decoded {} of {} HEVC frames",
        result.frames, fixture.video_frames
    );
}
