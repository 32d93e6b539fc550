//! `sluicectl recordings ls|show|rm` (#15) against a real cluster: an origin in etcd records
//! what is published, and the control plane asks its HTTP API at the `api` address it
//! advertises, with the `--token-file` both share. A finished 10 s recording is listed with
//! its origin and length, shown with URLs that play, refused deletion while another stream is
//! still being recorded, and deleted (gone from the listing and the disk); without the token
//! the calls are refused.

use sluice_tests::cluster::TestCluster;
use sluice_tests::control_plane;
use sluice_tests::origin::TestDir;
use sluice_tests::process::wait_for;
use sluice_tests::{h264_small, secs, Publisher};

use crate::sluicectl::{config_in, ctl_env};

/// The recording of `app/stream` in a `recordings ls -o json` answer.
fn find<'a>(list: &'a serde_json::Value, app: &str, stream: &str) -> Option<&'a serde_json::Value> {
    list["recordings"].as_array()?.iter().find(|r| r["app"] == app && r["stream"] == stream)
}

#[test]
fn sluicectl_lists_shows_and_removes_an_origins_recordings() {
    let c = TestCluster::new("recctl", &["origin-r"]);
    let dir = TestDir::new("sluicectl-recordings");
    let root = dir.path().join("recordings");
    let token_file = dir.path().join("token");
    std::fs::write(&token_file, "a-token-for-origins-and-control-plane\n").unwrap();
    let token_path = token_file.to_str().unwrap();
    let origin = c.origin(
        "origin-r",
        &[
            "--record-dir",
            root.to_str().unwrap(),
            "--record-apps",
            "live",
            "--token-file",
            token_path,
            "--ended-stream-linger",
            "1s",
        ],
    );
    let cp = control_plane::start(&c, "rec", &["--token-file", token_path]);
    let config = config_in(&dir);
    let endpoint = cp.grpc_url();
    let env = [("SLUICE_ENDPOINT", endpoint.as_str()), ("SLUICE_TOKEN_FILE", token_path)];
    let ctl = |args: &[&str]| ctl_env(&config, &env, args);

    // Without the token the control plane refuses the call: one line, exit 5.
    let refused = ctl_env(&config, &[("SLUICE_ENDPOINT", &endpoint)], &["recordings", "ls"]);
    assert_eq!(refused.code, 5, "{refused:?}");
    assert_eq!(refused.stderr.lines().count(), 1, "{refused:?}");

    // The origin advertises its API on its own host and HTTP port.
    let api = wait_for(secs(15), || {
        let node = ctl(&["nodes", "show", "origin-r", "-o", "json"]);
        (node.code == 0).then(|| node.json()["addresses"]["api"].as_str().map(str::to_string))?
    })
    .expect("origin-r registered");
    assert_eq!(api, format!("127.0.0.1:{}", origin.http.port()));

    // One stream recorded for 10 s and ended; another still being recorded.
    let mut long = Publisher::start_looped(&origin.rtmp_url("live", "long"), &h264_small().path);
    let mut talk = Publisher::start(&origin.rtmp_url("live", "talk"), &h264_small().path);
    assert!(talk.wait(secs(40)).is_some_and(|s| s.success()), "{:?}", talk.stderr());
    let listed = wait_for(secs(20), || {
        let list = ctl(&["recordings", "ls", "-o", "json"]).json();
        let talk = find(&list, "live", "talk")?;
        let long = find(&list, "live", "long")?;
        (talk["finished"] == true && long["segments"].as_u64()? > 0).then(|| list.clone())
    })
    .unwrap_or_else(|| {
        panic!("never listed finished: {:?}\n{}", ctl(&["recordings", "ls"]), origin.log())
    });
    assert_eq!(listed["unreachable_origins"], serde_json::json!([]), "{listed}");
    assert_eq!(listed["truncated"], false, "{listed}");
    let rec = find(&listed, "live", "talk").unwrap();
    assert_eq!(rec["origin_id"], "origin-r", "{rec}");
    let length = rec["duration_s"].as_f64().unwrap();
    assert!((length - 10.0).abs() <= 1.0, "a ~10 s recording: {rec}");
    let id = rec["id"].as_str().unwrap().to_string();
    let long_rec = find(&listed, "live", "long").unwrap();
    assert_eq!(long_rec["finished"], false, "{long_rec}");
    let long_id = long_rec["id"].as_str().unwrap().to_string();
    // Newest first.
    let starts: Vec<u64> = listed["recordings"]
        .as_array()
        .unwrap()
        .iter()
        .filter_map(|r| r["started_at_ms"].as_u64())
        .collect();
    assert_eq!(starts.len(), 2, "{listed}");
    assert!(starts[0] >= starts[1], "{listed}");

    let table = ctl(&["recordings", "ls"]);
    eprintln!("sluicectl recordings ls:\n{}", table.stdout);
    assert_eq!(table.code, 0, "{table:?}");
    let row = table.stdout.lines().find(|l| l.contains("live/talk")).expect("a row for live/talk");
    for part in ["origin-r", id.as_str(), "10s", "finished"] {
        assert!(row.contains(part), "{part} in {row}");
    }
    let filtered = ctl(&["recordings", "ls", "--stream", "long", "--limit", "1", "-o", "json"]);
    let filtered = filtered.json();
    assert_eq!(filtered["recordings"].as_array().map(Vec::len), Some(1), "{filtered}");
    assert_eq!(filtered["recordings"][0]["stream"], "long", "{filtered}");

    // show: the URLs, which play from the origin's player address.
    let key = format!("live/talk/{id}");
    let show = ctl(&["recordings", "show", &key]);
    eprintln!("sluicectl recordings show {key}:\n{}", show.stdout);
    assert_eq!(show.code, 0, "{show:?}");
    let base = format!("http://{}", origin.http);
    let mp4 = format!("{base}/vod/live/talk/{id}.mp4");
    let hls = format!("{base}/vod/live/talk/{id}/index.m3u8");
    assert!(show.stdout.contains(&format!("mp4:       {mp4}\n")), "{show:?}");
    assert!(show.stdout.contains(&format!("hls:       {hls}\n")), "{show:?}");
    let one = ctl(&["recordings", "show", &key, "--origin", "origin-r", "-o", "json"]).json();
    assert_eq!(
        (one["mp4_url"].as_str(), one["finished"].as_bool()),
        (Some(mp4.as_str()), Some(true))
    );
    let got = origin.get(mp4.strip_prefix(&base).unwrap());
    assert_eq!(got.status, 200, "the MP4 URL answers");
    assert!(got.body.len() > 10_000, "{} bytes", got.body.len());

    // rm: refused while the other stream is still recorded, done for the finished one.
    let busy = ctl(&["recordings", "rm", &format!("live/long/{long_id}")]);
    assert_eq!(busy.code, 1, "{busy:?}");
    assert_eq!(busy.stderr.lines().count(), 1, "{busy:?}");
    assert!(busy.stderr.starts_with("error: ") && busy.stderr.contains("still being written"));
    assert!(root.join("live/long").join(&long_id).is_dir());
    let rm = ctl(&["recordings", "rm", &key]);
    assert_eq!(rm.code, 0, "{rm:?}");
    assert!(rm.stdout.starts_with(&format!("recording {key} deleted on origin-r (")), "{rm:?}");
    assert!(!root.join("live/talk").join(&id).exists(), "deleted from disk");
    let after = ctl(&["recordings", "ls", "-o", "json"]).json();
    assert!(find(&after, "live", "talk").is_none(), "{after}");
    let gone = ctl(&["recordings", "show", &key]);
    assert_eq!(gone.code, 4, "{gone:?}");
    let again = ctl(&["recordings", "rm", &key]);
    assert_eq!(
        (again.code, again.stderr.as_str()),
        (4, format!("error: no origin holds recording {key}\n").as_str())
    );

    long.stop();
    let _ = std::fs::remove_file(&cp.log);
}
