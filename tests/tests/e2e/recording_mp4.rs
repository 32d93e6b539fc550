//! A finished recording as one MP4 (#15): `GET /vod/APP/NAME/ID.mp4` is a faststart file
//! (`moov` before `mdat`) that ffprobe reads at the recording's length with every frame of
//! every period decoding, that answers Range requests byte-exactly (curl) and that ffmpeg seeks
//! in; a recording still being written is refused with 409, and the layout is built once.

use std::process::Command;

use sluice_tests::ffmpeg::run_with_timeout;
use sluice_tests::http::curl_download;
use sluice_tests::origin::TestDir;
use sluice_tests::process::wait_for;
use sluice_tests::{h264_aac, secs, Origin, Publisher};

use crate::recording::{ffprobe_duration, recordings};

/// The top-level boxes of an MP4, in order.
fn top_level_boxes(bytes: &[u8]) -> Vec<String> {
    let mut out = Vec::new();
    let mut at = 0usize;
    while at + 8 <= bytes.len() {
        let size = u32::from_be_bytes(bytes[at..at + 4].try_into().unwrap()) as u64;
        out.push(String::from_utf8_lossy(&bytes[at + 4..at + 8]).into_owned());
        let size = if size == 1 {
            u64::from_be_bytes(bytes[at + 8..at + 16].try_into().unwrap())
        } else {
            size
        };
        if size < 8 {
            break;
        }
        at += size as usize;
    }
    out
}

/// (video frames, audio frames) ffmpeg decodes from `input`, failing on any decoding error.
fn decode_all(input: &str) -> (u64, u64) {
    let count = |stream: &str| {
        let (_, out, err) = run_with_timeout(
            Command::new("ffprobe").args([
                "-v",
                "error",
                "-count_frames",
                "-select_streams",
                stream,
                "-show_entries",
                "stream=nb_read_frames",
                "-of",
                "csv=p=0",
                input,
            ]),
            secs(60),
        )
        .expect("run ffprobe");
        assert!(err.trim().is_empty(), "{input} ({stream}): {err}");
        out.trim().parse::<u64>().unwrap_or_else(|_| panic!("{input} ({stream}): {out:?}"))
    };
    (count("v"), count("a"))
}

#[test]
fn a_recording_downloads_as_one_faststart_mp4_that_plays_whole_and_answers_ranges() {
    let fixture = h264_aac(); // 10 s, 300 video frames
    let dir = TestDir::new("recording-mp4");
    let root = dir.path().join("recordings");
    let origin = Origin::start(&[
        "--record-dir",
        root.to_str().unwrap(),
        "--record-apps",
        "live",
        "--ended-stream-linger",
        "3s",
    ]);
    let url = origin.rtmp_url("live", "show");
    // Three publishes, each while the stream lingers: one recording of three periods, 30 s.
    for round in 1..=3 {
        let mut publisher = Publisher::start(&url, &fixture.path);
        if round == 2 {
            // Being written: no MP4 yet, and the answer says what to play instead.
            let rec = wait_for(secs(10), || recordings(&root, "live", "show").into_iter().next())
                .expect("a recording");
            let id = rec.file_name().unwrap().to_str().unwrap().to_string();
            let (status, _, body) = curl_download(
                &format!("http://{}/vod/live/show/{id}.mp4", origin.http),
                &[],
                dir.path(),
            );
            assert_eq!(status, 409, "{}", String::from_utf8_lossy(&body));
            assert!(String::from_utf8_lossy(&body).contains("index.m3u8"));
        }
        let status = publisher.wait(secs(40)).expect("the publisher ran past 40 s");
        assert!(status.success(), "publish {round}: {:?}", publisher.stderr());
    }
    let rec = wait_for(secs(30), || {
        let rec = recordings(&root, "live", "show").into_iter().next()?;
        let text = std::fs::read_to_string(rec.join("index.m3u8")).ok()?;
        text.contains("#EXT-X-ENDLIST").then_some(rec)
    })
    .unwrap_or_else(|| panic!("no finished recording: {}", origin.log()));
    let id = rec.file_name().unwrap().to_str().unwrap().to_string();
    let mp4_url = format!("http://{}/vod/live/show/{id}.mp4", origin.http);

    // The whole file: faststart, the right length, every frame of every period decoding.
    let (status, headers, whole) = curl_download(&mp4_url, &[], dir.path());
    assert_eq!(status, 200, "{headers}");
    assert!(headers.contains("content-type: video/mp4"), "{headers}");
    assert!(headers.contains("accept-ranges: bytes"), "{headers}");
    assert!(headers.contains(&format!("content-length: {}", whole.len())), "{headers}");
    assert_eq!(top_level_boxes(&whole), ["ftyp", "moov", "mdat"], "faststart");
    let file = dir.path().join("show.mp4");
    std::fs::write(&file, &whole).unwrap();
    let duration = ffprobe_duration(file.to_str().unwrap());
    assert!((duration - 30.0).abs() <= 1.0, "ffprobe says {duration} s");
    let (video, audio) = decode_all(file.to_str().unwrap());
    assert_eq!(video, 900, "three periods of 300 frames");
    // 30 s of 44.1 or 48 kHz AAC (1024 samples a frame): at least 1290 frames.
    assert!(audio >= 1290, "{audio} audio frames");
    // Played over HTTP, seeking with Range requests: 20 s in, a frame decodes.
    let (status, _, err) = run_with_timeout(
        Command::new("ffmpeg").args([
            "-v",
            "error",
            "-ss",
            "20",
            "-i",
            &mp4_url,
            "-frames:v",
            "5",
            "-f",
            "null",
            "-",
        ]),
        secs(60),
    )
    .expect("run ffmpeg");
    let ok = status.is_some_and(|s| s.success());
    assert!(ok && err.trim().is_empty(), "seeking over HTTP: {status:?} {err}");

    // Ranges, byte-exact: a middle one, a suffix, an open-ended one, and one past the end.
    let len = whole.len();
    for (range, from, to) in [
        ("1000-1999", 1000, 2000),
        ("-100", len - 100, len),
        (&*format!("{}-", len - 7), len - 7, len),
    ] {
        let (status, headers, body) = curl_download(&mp4_url, &["-r", range], dir.path());
        assert_eq!(status, 206, "{range}: {headers}");
        let expected = format!("content-range: bytes {from}-{}/{len}", to - 1);
        assert!(headers.contains(&expected), "{range}: {headers}");
        assert!(body == whole[from..to], "{range}: the bytes differ");
    }
    let (status, headers, _) = curl_download(&mp4_url, &["-r", &format!("{len}-")], dir.path());
    assert_eq!(status, 416, "{headers}");
    assert!(headers.contains(&format!("content-range: bytes */{len}")), "{headers}");

    // Built once, kept beside the recording; other names are 404.
    assert!(rec.join("mp4.layout").is_file());
    assert_eq!(origin.log().matches("MP4 layout built").count(), 1, "{}", origin.log());
    for path in ["/vod/live/show/x.mp4", "/vod/live/show/1.mp4", "/vod/live/nope/1.mp4"] {
        assert_eq!(origin.get(path).status, 404, "{path}");
    }
}
