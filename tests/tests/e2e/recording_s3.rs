//! Recordings in an S3 bucket (#15): `--record-store s3://BUCKET/PREFIX` against a real
//! S3-compatible server (moto_server, from PyPI, on loopback). The objects land in the bucket
//! under the prefix; a recording plays as HLS VOD and as a seekable MP4 from there; the time-
//! shift playlist of a live stream is served from it; a thumbnail is decoded for the catalog
//! and stored beside it; an origin SIGKILLed while recording finishes the recording at its
//! next start; retention deletes the oldest recording from the bucket; the API deletes one.

use std::process::Command;

use sluice_launch::S3Server;
use sluice_tests::http::{curl, curl_download};
use sluice_tests::origin::TestDir;
use sluice_tests::process::wait_for;
use sluice_tests::{h264_aac, play_count_frames, secs, Origin, Publisher};

use crate::recording::ffprobe_duration;

pub(crate) const BUCKET: &str = "sluice-recordings";
const TOKEN: &str = "an-admin-token-for-recordings-in-s3";

/// A signed GET of `path` from the S3 server (curl signs it): (status, body).
pub(crate) fn s3_get(s3: &S3Server, path: &str) -> (u16, String) {
    let out = Command::new("curl")
        .args(["-s", "--max-time", "20", "-w", "\n%{http_code}"])
        .args(["--aws-sigv4", "aws:amz:us-east-1:s3", "--user", "sluice-test:sluice-test"])
        .arg(format!("{}/{path}", s3.endpoint()))
        .output()
        .expect("run curl");
    let text = String::from_utf8_lossy(&out.stdout).into_owned();
    let (body, status) = text.rsplit_once('\n').unwrap_or(("", &text));
    (status.trim().parse().unwrap_or(0), body.to_string())
}

/// The keys in the bucket under `prefix` (one page of a ListObjectsV2 is enough here).
pub(crate) fn bucket_keys(s3: &S3Server, prefix: &str) -> Vec<String> {
    let (status, xml) = s3_get(s3, &format!("{BUCKET}?list-type=2&prefix={prefix}"));
    assert_eq!(status, 200, "{xml}");
    xml.split("<Key>").skip(1).filter_map(|k| k.split("</Key>").next()).map(String::from).collect()
}

/// What an origin needs to reach the bucket (its `AWS_*` variables).
pub(crate) fn s3_env(s3: &S3Server) -> [(&'static str, String); 5] {
    [
        ("AWS_ENDPOINT", s3.endpoint()),
        ("AWS_ALLOW_HTTP", "true".to_string()),
        ("AWS_REGION", "us-east-1".to_string()),
        ("AWS_ACCESS_KEY_ID", "sluice-test".to_string()),
        ("AWS_SECRET_ACCESS_KEY", "sluice-test".to_string()),
    ]
}

/// The object `key` of the bucket, as text.
fn bucket_text(s3: &S3Server, key: &str) -> String {
    let (status, text) = s3_get(s3, &format!("{BUCKET}/{key}"));
    assert_eq!(status, 200, "{key}: {text}");
    text
}

/// The recordings the API lists.
fn listed(origin: &Origin) -> Vec<serde_json::Value> {
    let url = format!("http://{}/api/recordings", origin.http);
    let (_, body) = curl("GET", &url, Some(TOKEN), None);
    let v: serde_json::Value = serde_json::from_str(&body).unwrap_or_default();
    v["recordings"].as_array().cloned().unwrap_or_default()
}

fn find<'a>(list: &'a [serde_json::Value], stream: &str) -> Option<&'a serde_json::Value> {
    list.iter().find(|r| r["stream"] == stream)
}

#[test]
fn recordings_kept_in_an_s3_bucket_play_back_survive_a_crash_and_are_deleted_by_retention() {
    let fixture = h264_aac(); // 10 s, 300 video frames
    let s3 = S3Server::start().expect("moto_server (python3 -m pip install 'moto[server]')");
    s3.create_bucket(BUCKET).unwrap();
    let dir = TestDir::new("recording-s3");
    let token_file = dir.path().join("token");
    std::fs::write(&token_file, TOKEN).unwrap();
    let token_file = token_file.to_str().unwrap();
    let catalog = format!("sqlite://{}", dir.path().join("catalog.db").display());
    let store = format!("s3://{BUCKET}/site-a");
    let env = s3_env(&s3);
    let base = [
        ["--record-store", &store, "--record-apps", "live"],
        ["--catalog", &catalog, "--token-file", token_file],
    ]
    .concat();
    let linger = ["--ended-stream-linger", "1s"];
    let origin = Origin::start_with_env(&[&base[..], &linger[..]].concat(), &env);

    // A 10 s stream, recorded into the bucket; while it is live its DVR playlist plays.
    let mut publisher = Publisher::start(&origin.rtmp_url("live", "talk"), &fixture.path);
    let dvr = format!("http://{}/vod/live/talk/dvr.m3u8", origin.http);
    let playlist = wait_for(secs(20), || {
        let (status, text) = curl("GET", &dvr, None, None);
        (status == 200 && text.matches("seg-").count() >= 2).then_some(text)
    })
    .unwrap_or_else(|| panic!("no DVR playlist: {}", origin.log()));
    let first = playlist.lines().find(|l| l.starts_with("seg-") || l.contains("/seg-")).unwrap();
    let seg = format!("http://{}/vod/live/talk/{first}", origin.http);
    let (status, _, bytes) = curl_download(&seg, &[], dir.path());
    assert_eq!((status, bytes.len() > 1000), (200, true), "{seg}: {playlist}");
    assert!(publisher.wait(secs(40)).is_some_and(|s| s.success()), "{:?}", publisher.stderr());

    let rec = wait_for(secs(30), || {
        find(&listed(&origin), "talk").filter(|r| r["finished"] == true).cloned()
    })
    .unwrap_or_else(|| panic!("never finished: {}", origin.log()));
    let id = rec["id"].as_str().unwrap().to_string();
    let keys = bucket_keys(&s3, &format!("site-a/live/talk/{id}/"));
    assert!(keys.iter().any(|k| k.ends_with("/index.m3u8")), "{keys:?}");
    let segments = keys.iter().filter(|k| k.ends_with(".m4s")).count();
    assert!(segments >= 4 && rec["segments"] == segments, "{keys:?} {rec}");

    // HLS VOD from the bucket: the whole duration, every frame decoded.
    let vod = format!("http://{}/vod/live/talk/{id}/index.m3u8", origin.http);
    assert!((ffprobe_duration(&vod) - 10.0).abs() <= 1.0, "{vod}");
    let played = play_count_frames(&vod, secs(60));
    assert!(played.errors.is_empty(), "{:?}", played.errors);
    assert_eq!(played.frames, 300);
    // The MP4: the same duration, and a Range answered with exactly those bytes.
    let mp4 = format!("http://{}/vod/live/talk/{id}.mp4", origin.http);
    assert!((ffprobe_duration(&mp4) - 10.0).abs() <= 1.0, "{mp4}");
    let (status, _, whole) = curl_download(&mp4, &[], dir.path());
    assert_eq!(status, 200);
    // From the middle: past the MP4's head, so read as a range of a segment in the bucket.
    let from = whole.len() / 2;
    let range = format!("Range: bytes={from}-{}", from + 99_999);
    let (status, headers, part) = curl_download(&mp4, &["-H", &range], dir.path());
    assert_eq!(status, 206, "{headers}");
    assert_eq!(part, whole[from..from + 100_000], "the range's bytes");

    // The catalog's thumbnail: decoded from the bucket's segments and stored beside them.
    let thumb = wait_for(secs(30), || {
        find(&listed(&origin), "talk")?["thumbnail"].as_str().map(str::to_string)
    })
    .unwrap_or_else(|| panic!("no thumbnail: {}", origin.log()));
    assert!(bucket_keys(&s3, &format!("site-a/live/talk/{id}/thumb.jpg")).len() == 1);
    let (status, _, jpeg) =
        curl_download(&format!("http://{}{thumb}", origin.http), &[], dir.path());
    assert_eq!((status, &jpeg[..2]), (200, &[0xff, 0xd8][..]), "a JPEG");

    // SIGKILL mid-recording: the next start finishes what the crash left open.
    let _looped = Publisher::start_looped(&origin.rtmp_url("live", "crash"), &fixture.path);
    wait_for(secs(30), || {
        find(&listed(&origin), "crash").filter(|r| r["segments"].as_u64() >= Some(3)).map(|_| ())
    })
    .unwrap_or_else(|| panic!("three segments never recorded: {}", origin.log()));
    let status = Command::new("kill").args(["-9", &origin.pid().to_string()]).status().unwrap();
    assert!(status.success());
    drop(origin);
    let open = bucket_keys(&s3, "site-a/live/crash/");
    let index = open.iter().find(|k| k.ends_with("/index.m3u8")).expect("an index in the bucket");
    assert!(!bucket_text(&s3, index).contains("#EXT-X-ENDLIST"), "the crash left it open");
    let again = Origin::start_with_env(&[&base[..], &linger[..]].concat(), &env);
    let crash = find(&listed(&again), "crash").cloned().expect("listed after the restart");
    assert_eq!(crash["finished"], true, "finished at start: {crash}");
    let crash_id = crash["id"].as_str().unwrap().to_string();
    let vod = format!("http://{}/vod/live/crash/{crash_id}/index.m3u8", again.http);
    let played = play_count_frames(&vod, secs(60));
    assert!(played.errors.is_empty() && played.frames >= 180, "{played:?}");
    let talk = find(&listed(&again), "talk").unwrap()["bytes"].as_u64().unwrap();
    drop(again);

    // Retention: a budget for the newer recording only; the older one leaves the bucket.
    // (Room to spare for a thumbnail the crashed recording may still get.)
    let budget = crash["bytes"].as_u64().unwrap() + talk / 2;
    let budget = budget.to_string();
    let retained = [&base[..], &["--record-max-bytes", &budget][..]].concat();
    let third = Origin::start_with_env(&retained, &env);
    wait_for(secs(20), || {
        bucket_keys(&s3, &format!("site-a/live/talk/{id}/")).is_empty().then_some(())
    })
    .unwrap_or_else(|| panic!("the older recording was kept: {}", third.log()));
    assert!(!bucket_keys(&s3, &format!("site-a/live/crash/{crash_id}/")).is_empty());
    assert!(third.log().contains("recording deleted by retention"));
    // And the API deletes a finished one from the bucket (behind the admin token).
    let url = format!("http://{}/api/recordings/live/crash/{crash_id}", third.http);
    let (status, body) = curl("DELETE", &url, Some(TOKEN), None);
    assert!(status == 200 || status == 204, "{status} {body}");
    assert!(bucket_keys(&s3, "site-a/live/").is_empty(), "nothing left");
    assert_eq!(curl("GET", &url, Some(TOKEN), None).0, 404);
}
