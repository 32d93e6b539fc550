//! Recordings played from an edge (#15): an edge keeps no recordings, so it passes `/vod/...`
//! to the origins (the stream's home first) and keeps what never changes once written. A
//! finished recording plays whole as HLS VOD from the edge, its MP4 answers Range requests
//! byte for byte as the origin's does, viewers asking at once for a file not kept yet share one
//! fetch, and once the origin is gone the edge still serves the files it has kept (a Range of
//! one too).

use sluice_launch::Signal;
use sluice_tests::cluster::TestCluster;
use sluice_tests::ffmpeg::play_count_frames;
use sluice_tests::http::{curl_download, finished_recording};
use sluice_tests::origin::TestDir;
use sluice_tests::process::wait_for;
use sluice_tests::{h264_small, secs, Publisher};

#[test]
fn an_edge_serves_the_origins_recordings_and_keeps_what_never_changes() {
    let fixture = h264_small(); // 10 s
    let c = TestCluster::new("ve", &["ve-o", "ve-e"]);
    let dir = TestDir::new("vod-edge");
    let root = dir.path().join("recordings");
    let origin = c.origin(
        "ve-o",
        &[
            "--record-dir",
            root.to_str().unwrap(),
            "--record-apps",
            "live",
            "--admin-allow",
            "127.0.0.0/8",
            "--ended-stream-linger",
            "1s",
        ],
    );
    let edge = c.edge("ve-e", &[]);
    let mut publisher = Publisher::start(&origin.rtmp_url("live", "talk"), &fixture.path);
    assert!(publisher.wait(secs(40)).is_some_and(|s| s.success()), "{:?}", publisher.stderr());
    let id = wait_for(secs(30), || finished_recording(origin.http))
        .unwrap_or_else(|| panic!("never finished: {}", origin.log()));

    // Eight viewers asking at once for a segment the edge has not kept: one fetch serves all.
    let text = origin.get(&format!("/vod/live/talk/{id}/index.m3u8")).text();
    let first = text.lines().find(|l| l.starts_with("seg-")).expect("a segment").to_string();
    let segment = format!("http://{}/vod/live/talk/{id}/{first}", edge.http);
    let fetches = || edge.metrics().get("sluice_vod_fetches_total", &[]).unwrap_or(0.0);
    let before = fetches();
    // The origin is held still until every asker is waiting, so they all overlap.
    sluice_launch::kill(origin.pid(), Signal::STOP);
    let bodies: Vec<Vec<u8>> = std::thread::scope(|s| {
        let askers: Vec<_> = (0..8)
            .map(|i| {
                let (segment, dir) = (&segment, dir.path().join(format!("asker-{i}")));
                s.spawn(move || {
                    std::fs::create_dir_all(&dir).unwrap();
                    let (status, _, body) = curl_download(segment, &[], &dir);
                    assert_eq!(status, 200);
                    body
                })
            })
            .collect();
        std::thread::sleep(std::time::Duration::from_millis(1500));
        sluice_launch::kill(origin.pid(), Signal::CONT);
        askers.into_iter().map(|a| a.join().unwrap()).collect()
    });
    assert!(bodies[0].len() > 1000 && bodies.iter().all(|b| *b == bodies[0]));
    assert_eq!(fetches() - before, 1.0, "one fetch for the eight");

    // HLS VOD from the edge: every frame decodes.
    let index = format!("http://{}/vod/live/talk/{id}/index.m3u8", edge.http);
    let played = play_count_frames(&index, secs(60));
    assert!(played.errors.is_empty(), "{:?}\n{}", played.errors, edge.log());
    assert!(
        played.frames + 2 >= fixture.video_frames,
        "{} of {} frames from the edge",
        played.frames,
        fixture.video_frames
    );

    // The MP4 answers a Range request from the edge exactly as from the origin.
    let mp4 = |node: &sluice_tests::Origin| format!("http://{}/vod/live/talk/{id}.mp4", node.http);
    let (status, headers, from_edge) = curl_download(&mp4(&edge), &["-r", "1000-1999"], dir.path());
    assert_eq!(status, 206, "{headers}");
    assert!(headers.contains("content-range: bytes 1000-1999/"), "{headers}");
    let (_, _, from_origin) = curl_download(&mp4(&origin), &["-r", "1000-1999"], dir.path());
    assert_eq!(from_edge.len(), 1000);
    assert_eq!(from_edge, from_origin, "the same bytes");

    // A name no origin has: 404 from the edge.
    let missing = format!("http://{}/vod/live/talk/1/index.m3u8", edge.http);
    assert_eq!(curl_download(&missing, &[], dir.path()).0, 404);

    // The origin dies: what the edge kept (the finished playlist, its segments) still plays.
    let segments_before = edge.metrics().get("sluice_vod_fetches_total", &[]).unwrap_or(0.0);
    sluice_launch::kill(origin.pid(), Signal::KILL);
    let again = play_count_frames(&index, secs(60));
    assert!(again.errors.is_empty(), "{:?}\n{}", again.errors, edge.log());
    assert!(again.frames + 2 >= fixture.video_frames, "{} frames from the cache", again.frames);
    let hits = edge.metrics().get("sluice_vod_cache_hits_total", &[]).unwrap_or(0.0);
    assert!(hits > 0.0, "served from the cache");
    let fetches = edge.metrics().get("sluice_vod_fetches_total", &[]).unwrap_or(0.0);
    assert_eq!(fetches, segments_before, "nothing asked of the dead origin");
    // A Range of a kept file is answered from memory too.
    let (status, headers, part) = curl_download(&segment, &["-r", "10-109"], dir.path());
    assert_eq!(status, 206, "{headers}");
    assert_eq!(part, bodies[0][10..110], "the range's bytes, from memory");
    drop(c);
}

/// A private app's recording through an edge: refused without the viewer's token; with it the
/// edge shows the origin a token of its own and hands the viewer's on to every file the
/// playlist names, and the recording plays whole.
#[test]
fn an_edge_serves_a_private_recording_under_the_viewers_token() {
    use sluice_cluster::signed_token::{sign, Purpose};
    let fixture = h264_small();
    let c = TestCluster::new("vp", &["vp-o", "vp-e"]);
    let dir = TestDir::new("vod-edge-private");
    let root = dir.path().join("recordings");
    let secret = "a-play-secret-long-enough";
    let secret_file = dir.path().join("play-secret");
    std::fs::write(&secret_file, secret).unwrap();
    let private =
        ["--play-private-apps", "vip", "--play-token-secret-file", secret_file.to_str().unwrap()];
    let mut origin_args = vec!["--record-dir", root.to_str().unwrap(), "--record-apps", "vip"];
    origin_args.extend(["--admin-allow", "127.0.0.0/8", "--ended-stream-linger", "1s"]);
    origin_args.extend(private);
    let origin = c.origin("vp-o", &origin_args);
    let edge = c.edge("vp-e", &private);
    let mut publisher = Publisher::start(&origin.rtmp_url("vip", "talk"), &fixture.path);
    assert!(publisher.wait(secs(40)).is_some_and(|s| s.success()), "{:?}", publisher.stderr());
    let id = wait_for(secs(30), || finished_recording(origin.http))
        .unwrap_or_else(|| panic!("never finished: {}", origin.log()));

    let base = format!("/vod/vip/talk/{id}/index.m3u8");
    assert_eq!(edge.get(&base).status, 403, "no token");
    let key = sluice_media::stream_name::StreamKey::parse("vip", "talk").unwrap().0;
    let now = std::time::SystemTime::now().duration_since(std::time::UNIX_EPOCH).unwrap().as_secs();
    let token = sign(secret.as_bytes(), Purpose::Play, &key, now + 600);
    let index = edge.get(&format!("{base}?token={token}"));
    assert_eq!(index.status, 200, "{}", index.text());
    let text = index.text();
    let uris: Vec<&str> = text
        .lines()
        .filter(|l| {
            !l.is_empty() && !l.starts_with("#EXTINF") && (l.contains(".m4s") || l.contains(".mp4"))
        })
        .collect();
    assert!(!uris.is_empty() && uris.iter().all(|l| l.contains(&format!("?token={token}")) && l.matches("token=").count() == 1), "{text}");
    let url = format!("http://{}{base}?token={token}", edge.http);
    let played = play_count_frames(&url, secs(60));
    assert!(played.errors.is_empty(), "{:?}\n{}", played.errors, edge.log());
    assert!(played.frames + 2 >= fixture.video_frames, "{} frames", played.frames);
}
