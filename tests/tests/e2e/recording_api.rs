//! The recordings API (#15): `/api/recordings` lists a node's recordings with their figures
//! and where they play, `/api/recordings/APP/STREAM/ID` shows one, and DELETE removes a
//! finished one (409 while it is being written), all behind the admin token.

use sluice_tests::origin::TestDir;
use sluice_tests::process::wait_for;
use sluice_tests::{h264_aac, secs, Origin, Publisher};

/// `curl -X METHOD` with the admin token (if any): (status, body).
fn curl(method: &str, url: &str, token: Option<&str>) -> (u16, String) {
    let mut cmd = std::process::Command::new("curl");
    cmd.args(["-s", "--max-time", "20", "-X", method, "-w", "\n%{http_code}"]);
    if let Some(token) = token {
        cmd.args(["-H", &format!("Authorization: Bearer {token}")]);
    }
    let out = cmd.arg(url).output().expect("run curl");
    let text = String::from_utf8_lossy(&out.stdout).into_owned();
    let (body, status) = text.rsplit_once('\n').unwrap_or(("", &text));
    (status.trim().parse().unwrap_or(0), body.to_string())
}

#[test]
fn the_api_lists_shows_and_deletes_recordings_behind_the_admin_token() {
    let fixture = h264_aac(); // 10 s
    let dir = TestDir::new("recording-api");
    let root = dir.path().join("recordings");
    let token = "an-admin-token-for-the-recordings-api";
    let token_file = dir.path().join("token");
    std::fs::write(&token_file, token).unwrap();
    let origin = Origin::start(&[
        "--record-dir",
        root.to_str().unwrap(),
        "--record-apps",
        "live",
        "--token-file",
        token_file.to_str().unwrap(),
        "--ended-stream-linger",
        "1s",
    ]);
    let api = format!("http://{}/api/recordings", origin.http);
    assert_eq!(curl("GET", &api, None).0, 401, "the token is needed");
    // Another site's page may read, never change: a DELETE's preflight names GET and HEAD only.
    let preflight = [
        "-X",
        "OPTIONS",
        "-H",
        "Origin: https://elsewhere.example",
        "-H",
        "Access-Control-Request-Method: DELETE",
    ];
    let one = format!("{api}/live/talk/1");
    let (_, headers, _) = sluice_tests::http::curl_download(&one, &preflight, dir.path());
    let methods = headers.lines().find(|l| l.starts_with("access-control-allow-methods:"));
    assert!(methods.is_some_and(|m| m.contains("get") && !m.contains("delete")), "{headers}");

    let mut publisher = Publisher::start(&origin.rtmp_url("live", "talk"), &fixture.path);
    // While it is written: listed unfinished, and it cannot be deleted.
    let live = wait_for(secs(20), || {
        let (status, body) = curl("GET", &api, Some(token));
        let v: serde_json::Value = serde_json::from_str(&body).ok()?;
        (status == 200 && v["recordings"].as_array()?.len() == 1).then_some(v)
    })
    .unwrap_or_else(|| panic!("never listed: {}", origin.log()));
    let rec = &live["recordings"][0];
    assert_eq!((rec["app"].as_str(), rec["stream"].as_str()), (Some("live"), Some("talk")));
    assert_eq!(rec["finished"], false, "{live}");
    assert!(rec["mp4"].is_null(), "{live}");
    let id = rec["id"].as_str().unwrap().to_string();
    let one = format!("{api}/live/talk/{id}");
    assert_eq!(curl("DELETE", &one, Some(token)).0, 409, "being written");

    assert!(publisher.wait(secs(40)).is_some_and(|s| s.success()), "{:?}", publisher.stderr());
    let done = wait_for(secs(20), || {
        let (_, body) = curl("GET", &one, Some(token));
        let v: serde_json::Value = serde_json::from_str(&body).ok()?;
        (v["finished"] == true).then_some(v)
    })
    .unwrap_or_else(|| panic!("never finished: {}", origin.log()));
    let duration = done["duration_s"].as_f64().unwrap();
    assert!((duration - 10.0).abs() <= 1.0, "{done}");
    assert_eq!(done["periods"], 1, "{done}");
    assert!(done["segments"].as_u64().unwrap() >= 4, "{done}");
    let on_disk: u64 = std::fs::read_dir(root.join("live/talk").join(&id))
        .unwrap()
        .flatten()
        .map(|e| e.metadata().unwrap().len())
        .sum();
    assert_eq!(done["bytes"].as_u64(), Some(on_disk), "{done}");
    // The URLs it gives play.
    for key in ["hls", "mp4"] {
        let path = done[key].as_str().unwrap();
        assert_eq!(origin.get(path).status, 200, "{key}: {path}");
    }
    // Filters, and names that are not recordings.
    let (_, other) = curl("GET", &format!("{api}?app=other"), Some(token));
    assert_eq!(
        serde_json::from_str::<serde_json::Value>(&other).unwrap()["recordings"],
        serde_json::json!([])
    );
    assert_eq!(curl("GET", &format!("{api}/live/talk/1"), Some(token)).0, 404);
    assert_eq!(curl("GET", &format!("{api}/live/talk/x"), Some(token)).0, 404);

    // Deleted: gone from the API, the disk and playback.
    assert_eq!(curl("DELETE", &one, None).0, 401, "the token is needed");
    assert_eq!(curl("DELETE", &one, Some(token)).0, 204);
    assert_eq!(curl("GET", &one, Some(token)).0, 404);
    assert!(!root.join("live/talk").join(&id).exists());
    assert_eq!(origin.get(&format!("/vod/live/talk/{id}/index.m3u8")).status, 404);
    assert_eq!(curl("DELETE", &one, Some(token)).0, 404);
    assert!(origin.log().contains("recording deleted through the API"));
}
