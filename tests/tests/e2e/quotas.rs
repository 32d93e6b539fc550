//! Admission quotas (`--quota-file`) with real ffmpeg encoders and players: a publisher within
//! its app's quota streams and plays; one whose resolution or declared bit rate is over it is
//! cut at once, one that sends more than its bit rate is warned in the log and then cut after
//! `--quota-grace`, each told why; an app at its `max-streams` refuses one more, a stream at its
//! `max-viewers-per-stream` refuses one more viewer; every breach is counted.

use sluice_tests::origin::TestDir;
use sluice_tests::process::wait_for;
use sluice_tests::{h264_aac, h264_small, secs, Origin, Player, Publisher};

const QUOTAS: &str = r#"
# h264_small (320x180, ~250 kbit/s, H.264 + AAC) fits; h264_aac (1280x720) does not.
[small]
max-width = 640
max-height = 360
video-codecs = ["h264"]
audio-codecs = ["aac"]
max-streams = 1
max-viewers-per-stream = 1

# h264_small declares 195 kbit/s of video in its metadata and sends ~270 kbit/s in all.
[thin]
max-bitrate-kbps = 200

[tiny]
max-bitrate-kbps = 100
"#;

/// ffmpeg publishing `url` ends with an error that says `why`.
fn cut(publisher: &mut Publisher, why: &str) {
    let status = publisher.wait(secs(30)).expect("the encoder is stopped");
    assert!(!status.success(), "ffmpeg exited successfully");
    let said = publisher.stderr().join("\n");
    assert!(said.contains(why), "ffmpeg did not say '{why}':\n{said}");
}

#[test]
fn publishers_over_their_quota_are_cut_and_apps_and_streams_keep_their_caps() {
    let dir = TestDir::new("quotas");
    let file = dir.path().join("quotas.toml");
    std::fs::write(&file, QUOTAS).unwrap();
    let origin = Origin::start(&["--quota-file", file.to_str().unwrap(), "--quota-grace", "2s"]);
    let breaches = |limit: &str, action: &str| {
        origin
            .metrics()
            .value("sluice_quota_breaches_total", &[("limit", limit), ("action", action)])
    };

    // Within the quota: it streams and plays.
    let mut ok = Publisher::start_looped(&origin.rtmp_url("small", "a"), &h264_small().path);
    wait_for(secs(20), || origin.stream_info("small", "a"))
        .unwrap_or_else(|| panic!("small/a never went live: {:?}", ok.stderr()));
    let mut viewer = Player::start(&origin.rtmp_url("small", "a"));
    assert!(viewer.wait_frames(30, secs(30)) >= 30, "plays: {:?}", viewer.errors());

    // One viewer per stream in this app: the second is refused with the reason.
    let second = Player::start(&origin.rtmp_url("small", "a")).finish(secs(20), secs(20));
    assert_eq!(second.frames, 0, "a second viewer played");
    let said = second.errors.join("\n");
    assert!(said.contains("maximum of 1 viewers"), "{said}");
    assert_eq!(breaches("viewers", "refused"), 1.0);

    // One live stream in this app: another name is refused before any media.
    let refused_url = origin.rtmp_url("small", "b");
    sluice_tests::ffmpeg::expect_refused(&refused_url, &h264_small().path, "maximum of 1 live");
    assert_eq!(breaches("streams", "refused"), 1.0);
    assert!(ok.is_running(), "the stream within its quota is untouched");

    // Over the resolution: cut as soon as its sequence header shows it.
    ok.stop();
    wait_for(secs(15), || origin.stream_info("small", "a").is_none().then_some(()))
        .expect("small/a ends");
    let mut hd = Publisher::start_looped(&origin.rtmp_url("small", "hd"), &h264_aac().path);
    cut(&mut hd, "over its quota: resolution 1280x720 is over 640x360");
    assert_eq!(breaches("resolution", "cut"), 1.0);

    // Over the bit rate it declares: cut at once.
    let mut tiny = Publisher::start_looped(&origin.rtmp_url("tiny", "t"), &h264_small().path);
    cut(&mut tiny, "over its quota: declared bit rate 195 kbit/s is over 100 kbit/s");
    assert_eq!(breaches("bitrate", "cut"), 1.0);

    // Over the bit rate it sends, measured: warned in the log, then cut after the 2 s grace.
    let mut fat = Publisher::start_looped(&origin.rtmp_url("thin", "t"), &h264_small().path);
    cut(&mut fat, "over its quota: bit rate");
    let log = origin.log();
    let thin: Vec<&str> = log.lines().filter(|l| l.contains("stream=thin/t")).collect();
    let warned = thin.iter().position(|l| l.contains("cut if it stays over"));
    let was_cut = thin.iter().position(|l| l.contains("publisher over its quota: cut stream"));
    assert!(warned.is_some() && was_cut.is_some() && warned < was_cut, "warned, then cut:\n{log}");
    assert_eq!(breaches("bitrate", "warned"), 1.0);
    assert_eq!(breaches("bitrate", "cut"), 2.0);
}

#[test]
fn a_bad_quota_file_stops_the_node_with_one_line() {
    let dir = TestDir::new("quotas");
    let file = dir.path().join("quotas.toml");
    std::fs::write(&file, "[live]\nmax-bitrate = 5000\n").unwrap();
    let err = Origin::try_start(&["--quota-file", file.to_str().unwrap()]).unwrap_err();
    let sluice_launch::LaunchError::Exited { log, .. } = err else { panic!("{err}") };
    let text = std::fs::read_to_string(log).unwrap();
    let line = text.lines().find(|l| l.starts_with("Error: ")).unwrap_or_default();
    assert!(line.contains("quotas.toml") && line.contains("max-bitrate"), "{text}");
}
