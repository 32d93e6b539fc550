//! The content catalog on an origin (#15): a standalone origin that records keeps its catalog
//! in SQLite beside the recordings; the live stream and its recording are items with their
//! codecs, size, duration and a thumbnail decoded from a keyframe; a title and tags given to the
//! live stream carry to its recording; search finds them by word, tag and time range; the
//! catalog outlives a restart, and a deleted recording leaves it.

use serde_json::Value;
use sluice_tests::http::curl;
use sluice_tests::origin::TestDir;
use sluice_tests::process::wait_for;
use sluice_tests::{h264_aac, secs, Origin, Publisher};

/// The items a search finds (one page).
fn search(origin: &Origin, token: &str, query: &str) -> Vec<Value> {
    let (status, body) =
        curl("GET", &format!("http://{}/api/catalog?{query}", origin.http), Some(token), None);
    if status == 503 {
        return Vec::new(); // The database is not open yet.
    }
    assert_eq!(status, 200, "{query}: {body}");
    let page: Value = serde_json::from_str(&body).unwrap();
    page["items"].as_array().unwrap().clone()
}

/// The ids of `items`, sorted.
fn ids(items: &[Value]) -> Vec<&str> {
    let mut ids: Vec<&str> = items.iter().map(|i| i["id"].as_str().unwrap()).collect();
    ids.sort();
    ids
}

#[test]
fn recordings_and_live_streams_are_catalogued_titled_and_found() {
    let fixture = h264_aac(); // 10 s, 1280x720
    let dir = TestDir::new("catalog");
    let root = dir.path().join("recordings");
    let token = "an-admin-token-for-the-catalog";
    let token_file = dir.path().join("token");
    std::fs::write(&token_file, token).unwrap();
    let args = [
        "--record-dir",
        root.to_str().unwrap(),
        "--record-apps",
        "live",
        "--token-file",
        token_file.to_str().unwrap(),
        "--ended-stream-linger",
        "1s",
    ];
    let origin = Origin::start(&args);
    let api = format!("http://{}/api/catalog", origin.http);
    assert_eq!(curl("GET", &api, None, None).0, 401, "the token is needed");
    assert!(search(&origin, token, "").is_empty());

    let mut publisher = Publisher::start(&origin.rtmp_url("live", "match"), &fixture.path);
    // The live stream is an item, with what the publisher sends.
    let live = wait_for(secs(20), || {
        search(&origin, token, "kind=live").into_iter().find(|i| i["height"] == 720)
    })
    .unwrap_or_else(|| panic!("the live stream never became an item: {}", origin.log()));
    assert_eq!(live["id"], "live/match");
    assert_eq!(
        (live["video_codec"].as_str(), live["audio_codec"].as_str()),
        (Some("h264"), Some("aac"))
    );
    assert!(live["ended_ms"].is_null(), "{live}");
    assert_eq!(live["location"], "/live/match.m3u8");

    // Titled while live: bad input is refused with the reason, the token is needed.
    let item = format!("{api}/items/live/match");
    let change = r#"{"title": "Cup Final", "description": "Round 3", "tags": ["Sport", "cup"]}"#;
    assert_eq!(curl("PATCH", &item, None, Some(change)).0, 401);
    let (status, body) = curl("PATCH", &item, Some(token), Some(r#"{"tags": ["no spaces"]}"#));
    assert_eq!(status, 400, "{body}");
    assert!(body.contains("a-z"), "{body}");
    let (status, body) = curl("PATCH", &item, Some(token), Some(r#"{"colour": "red"}"#));
    assert_eq!(status, 400, "unknown fields are refused: {body}");
    assert_eq!(curl("PATCH", &format!("{api}/items/live/none"), Some(token), Some(change)).0, 404);
    let (status, body) = curl("PATCH", &item, Some(token), Some(change));
    assert_eq!(status, 200, "{body}");
    let titled: Value = serde_json::from_str(&body).unwrap();
    assert_eq!(
        (titled["title"].as_str(), titled["tags"].clone()),
        (Some("Cup Final"), serde_json::json!(["cup", "sport"]))
    );

    // The recording is an item too: once the publisher is gone, finished, with the live
    // stream's title and tags, its figures, and a thumbnail.
    assert!(publisher.wait(secs(40)).is_some_and(|s| s.success()), "{:?}", publisher.stderr());
    let rec = wait_for(secs(30), || {
        search(&origin, token, "kind=recording")
            .into_iter()
            .find(|i| !i["ended_ms"].is_null() && !i["thumbnail"].is_null())
    })
    .unwrap_or_else(|| panic!("the recording never became a finished item: {}", origin.log()));
    assert_eq!(
        (rec["title"].as_str(), rec["description"].as_str()),
        (Some("Cup Final"), Some("Round 3"))
    );
    assert_eq!(rec["tags"], serde_json::json!(["cup", "sport"]));
    let duration = rec["duration_ms"].as_i64().unwrap();
    assert!((duration - 10_000).abs() <= 1_000, "{rec}");
    assert_eq!((rec["width"].as_i64(), rec["video_codec"].as_str()), (Some(1280), Some("h264")));
    let rec_id = rec["id"].as_str().unwrap().to_string();
    let start = rec_id.rsplit('/').next().unwrap();
    let on_disk: i64 = std::fs::read_dir(root.join("live/match").join(start))
        .unwrap()
        .flatten()
        .map(|e| e.metadata().unwrap().len() as i64)
        .sum();
    assert!(rec["size_bytes"].as_i64().unwrap() > 100_000, "{rec}");
    assert!(rec["size_bytes"].as_i64().unwrap() <= on_disk, "{rec}");
    // Its URLs play: the recording as HLS, the thumbnail as a 320-wide JPEG.
    assert_eq!(origin.get(rec["location"].as_str().unwrap()).status, 200);
    let thumb = format!("http://{}{}", origin.http, rec["thumbnail"].as_str().unwrap());
    let probe = std::process::Command::new("ffprobe")
        .args(["-v", "error", "-show_entries", "stream=codec_name,width", "-of", "csv=p=0", &thumb])
        .output()
        .unwrap();
    assert_eq!(String::from_utf8_lossy(&probe.stdout).trim(), "mjpeg,320", "{thumb}");
    // The live item ended when the stream did.
    let live = wait_for(secs(10), || {
        search(&origin, token, "kind=live").into_iter().find(|i| !i["ended_ms"].is_null())
    })
    .expect("the live item ended");
    let ended = live["ended_ms"].as_i64().unwrap();

    // Search: by words (any case), tag, time range, kind.
    assert_eq!(ids(&search(&origin, token, "q=cup%20FINAL")), vec!["live/match", &rec_id[..]]);
    assert_eq!(ids(&search(&origin, token, "q=round&kind=recording")), vec![&rec_id[..]]);
    assert!(search(&origin, token, "q=penalty").is_empty());
    assert_eq!(search(&origin, token, "tags=sport,cup").len(), 2);
    assert!(search(&origin, token, "tags=news").is_empty());
    assert!(search(&origin, token, &format!("from={}", ended + 3_600_000)).is_empty());
    assert_eq!(search(&origin, token, &format!("to={}", ended)).len(), 2);
    let (status, body) = curl("GET", &format!("{api}?kind=vod"), Some(token), None);
    assert_eq!(status, 400, "{body}");
    let (status, body) = curl("GET", &format!("{api}?page=nonsense"), Some(token), None);
    assert_eq!(status, 400, "{body}");
    let page: Value =
        serde_json::from_str(&curl("GET", &format!("{api}?limit=1"), Some(token), None).1).unwrap();
    assert_eq!(page["items"].as_array().unwrap().len(), 1);
    let next = page["next_page"].as_str().expect("a second page");
    let second = format!("{api}?limit=1&page={}", next.replace('/', "%2F").replace(':', "%3A"));
    let page2: Value = serde_json::from_str(&curl("GET", &second, Some(token), None).1).unwrap();
    let both = [page["items"][0]["id"].as_str(), page2["items"][0]["id"].as_str()];
    assert_eq!(ids(&search(&origin, token, "")), {
        let mut b = both.map(Option::unwrap).to_vec();
        b.sort();
        b
    });
    assert!(page2["next_page"].is_null());
    assert!(root.join("catalog.db").exists(), "SQLite beside the recordings by default");

    // The catalog outlives a restart; a recording deleted through the API leaves it.
    drop(origin);
    let origin = Origin::start(&args);
    let one = format!("http://{}/api/catalog/items/{rec_id}", origin.http);
    let (status, body) = curl("GET", &one, Some(token), None);
    assert_eq!(status, 200, "{body}");
    assert!(body.contains("Cup Final"), "{body}");
    let recording = format!("http://{}/api/recordings/{rec_id}", origin.http);
    assert_eq!(curl("DELETE", &recording, Some(token), None).0, 204);
    wait_for(secs(10), || (curl("GET", &one, Some(token), None).0 == 404).then_some(()))
        .unwrap_or_else(|| panic!("the deleted recording stayed in the catalog: {}", origin.log()));
    assert_eq!(ids(&search(&origin, token, "")), vec!["live/match"]);
}

#[test]
fn an_origin_starts_without_its_database_and_catches_up_once_it_answers() {
    let dir = TestDir::new("catalog-late");
    let token = "an-admin-token-for-the-catalog";
    let token_file = dir.path().join("token");
    std::fs::write(&token_file, token).unwrap();
    let port = sluice_launch::process::free_port();
    let url = format!("postgres://postgres@127.0.0.1:{port}/sluice");
    let origin = Origin::start(&["--catalog", &url, "--token-file", token_file.to_str().unwrap()]);
    // Streaming does not wait on the database; the catalog says it is out of reach.
    let _publisher = Publisher::start_looped(&origin.rtmp_url("live", "early"), &h264_aac().path);
    let api = format!("http://{}/api/catalog", origin.http);
    let (status, body) = curl("GET", &api, Some(token), None);
    assert_eq!(status, 503, "{body}");
    assert!(origin.log().contains("out of reach"), "{}", origin.log());
    assert!(!origin.log().contains(&url), "the URL stays out of the log");
    // The database comes: the origin opens it, and the stream live meanwhile is an item.
    let pg = sluice_launch::Postgres::start_on(port).expect("PostgreSQL");
    pg.create_database("sluice").unwrap();
    wait_for(secs(30), || {
        search(&origin, token, "kind=live").into_iter().find(|i| i["id"] == "live/early")
    })
    .unwrap_or_else(|| panic!("never caught up: {}", origin.log()));
}
