//! Scheduled playout in a cluster (#15): `sluicectl schedule add` writes an entry into etcd;
//! the stream's player (here not its ring home, which has no `--playout-dir`, but the next
//! origin in ring order) publishes the file from its `--playout-dir` at the entry's time
//! (within a second), an edge plays it to ffmpeg, `schedule ls` tells which origin plays it;
//! a live encoder at another origin takes the name over and hands it back; when the home is
//! killed, the origin that becomes the home carries the entry on; `schedule rm` ends it. A bad entry is refused with one clear line.

use std::time::{SystemTime, UNIX_EPOCH};

use sluice_tests::cluster::{find_name, owners, TestCluster};
use sluice_tests::control_plane;
use sluice_tests::ffmpeg::Player;
use sluice_tests::origin::TestDir;
use sluice_tests::process::wait_for;
use sluice_tests::{h264_aac, h264_small, secs, Publisher};

use crate::sluicectl::{config_in, ctl_env};
use sluice_launch::Signal;

fn now_ms() -> i64 {
    SystemTime::now().duration_since(UNIX_EPOCH).unwrap().as_millis() as i64
}

#[test]
fn a_file_scheduled_with_sluicectl_goes_live_on_its_player_gives_way_to_an_encoder_and_fails_over()
{
    let (a, b, h, e) = ("ps-a", "ps-b", "ps-h", "ps-e");
    let c = TestCluster::new("ps", &[a, b, h, e]);
    let dir = TestDir::new("sluicectl-schedule");
    let files = dir.path().join("playout");
    std::fs::create_dir_all(files.join("shows")).unwrap();
    std::fs::copy(&h264_small().path, files.join("shows/loop.flv")).unwrap();
    let args = ["--playout-dir", files.to_str().unwrap(), "--ended-stream-linger", "1s"];
    let home = c.origin(a, &args);
    let standby = c.origin(b, &args);
    // The ring home of the stream, which plays nothing out.
    let _no_playout = c.origin(h, &["--ended-stream-linger", "1s"]);
    let edge = c.edge(e, &[]);
    let cp = control_plane::start(&c, "ps", &[]);
    let config = config_in(&dir);
    let endpoint = cp.grpc_url();
    let env = [("SLUICE_ENDPOINT", endpoint.as_str())];
    let ctl = |args: &[&str]| ctl_env(&config, &env, args);
    let name = find_name("tv", |n| owners(&[a, b, h], n, 3) == [h, a, b]);
    let stream = format!("live/{name}");

    // Refused, one line naming the fault; nothing written.
    let bad = ctl(&["schedule", "add", &stream, "../loop.flv"]);
    assert_ne!(bad.code, 0, "{bad:?}");
    assert_eq!(bad.stderr.lines().count(), 1, "{bad:?}");
    assert!(bad.stderr.contains("inside the playout directory"), "{bad:?}");
    assert_eq!(ctl(&["schedule", "ls", "-o", "json"]).json()["entries"], serde_json::json!([]));

    let start = now_ms() + 4_000;
    let at = start.to_string();
    let add =
        ctl(&["schedule", "add", &stream, "shows/loop.flv", "--at", &at, "--loop", "-o", "json"]);
    let entry = add.json()["entries"][0].clone();
    let id = entry["id"].as_str().unwrap().to_string();
    assert_eq!(
        (entry["state"].as_str(), entry["start_ms"].as_i64()),
        (Some("waiting"), Some(start))
    );
    assert!(ctl(&["schedule", "ls"]).stdout.contains(&id));
    assert!(home.stream_info("live", &name).is_none(), "not before its time");

    // Live on its player at its time, within a second.
    let live = wait_for(secs(15), || home.stream_info("live", &name))
        .unwrap_or_else(|| panic!("never went live on its home:\n{}", home.log()));
    let went_live = (live["started_at"].as_f64().unwrap() * 1000.0) as i64;
    assert!((went_live - start).abs() <= 1_000, "live at {went_live}, scheduled at {start}");
    // `schedule ls` says who plays it (from the origins' load reports).
    let state = |node: &str| {
        let list = ctl(&["schedule", "ls", "-o", "json"]).json();
        let e = list["entries"][0].clone();
        (e["state"] == "playing" && e["node"] == node).then_some(e)
    };
    wait_for(secs(10), || state(a)).unwrap_or_else(|| panic!("{:?}", ctl(&["schedule", "ls"])));
    // The cluster lists it with its player as origin and the file's codecs.
    let listed = || {
        wait_for(secs(15), || {
            let v = ctl(&["streams", "ls", "-o", "json"]).json();
            let s = v["streams"].as_array()?.iter().find(|s| s["name"] == name.as_str())?.clone();
            (s["origin"] == a && !s["codecs"].as_array()?.is_empty()).then_some(s)
        })
        .unwrap_or_else(|| panic!("{:?}", ctl(&["streams", "ls"])))
    };
    let stream = listed();
    assert_eq!(stream["codecs"], serde_json::json!(["h264", "aac"]), "{stream}");

    // An edge plays it.
    let mut player = Player::start(&edge.rtmp_url("live", &name));
    assert!(player.wait_frames(60, secs(30)) >= 60, "{:?}\n{}", player.errors(), edge.log());
    drop(player);

    // A live encoder at the other origin takes the name over (the playout at the home gives
    // way: 1280x720 instead of the file's 320x180 at the home and through the edge), and
    // hands it back when it stops.
    let width = |o: &sluice_tests::Origin| {
        o.stream_info("live", &name).and_then(|s| s["video"]["width"].as_u64())
    };
    let mut encoder = Publisher::start(&standby.rtmp_url("live", &name), &h264_aac().path);
    wait_for(secs(20), || (width(&home) == Some(1280)).then_some(()))
        .unwrap_or_else(|| panic!("{:?}\n{}\n{}", encoder.stderr(), standby.log(), home.log()));
    assert!(home.log().contains("a live encoder at another origin takes the name over"));
    let mut player = Player::start(&edge.rtmp_url("live", &name));
    assert!(player.wait_frames(30, secs(30)) >= 30, "{:?}\n{}", player.errors(), edge.log());
    drop(player);
    assert!(encoder.wait(secs(40)).is_some_and(|s| s.success()), "{:?}", encoder.stderr());
    wait_for(secs(30), || (width(&home) == Some(320)).then_some(()))
        .unwrap_or_else(|| panic!("the playout did not come back:\n{}", home.log()));
    wait_for(secs(10), || state(a)).unwrap_or_else(|| panic!("{:?}", ctl(&["schedule", "ls"])));
    // Its new claim says its codecs again.
    assert_eq!(listed()["codecs"], serde_json::json!(["h264", "aac"]));

    // The home dies: the origin that becomes the home carries the entry on, and the edge
    // plays it again.
    sluice_launch::kill(home.pid(), Signal::KILL);
    wait_for(secs(40), || state(b))
        .unwrap_or_else(|| panic!("{:?}\n{}", ctl(&["schedule", "ls"]), standby.log()));
    assert!(standby.log().contains("playout live"), "{}", standby.log());
    let mut player = Player::start(&edge.rtmp_url("live", &name));
    assert!(player.wait_frames(30, secs(30)) >= 30, "{:?}\n{}", player.errors(), edge.log());
    drop(player);

    // Removed: the stream ends; removing it again says there is none.
    let rm = ctl(&["schedule", "rm", &id]);
    assert_eq!(rm.code, 0, "{rm:?}");
    wait_for(secs(15), || standby.stream_info("live", &name).is_none().then_some(()))
        .unwrap_or_else(|| panic!("the stream outlived its entry:\n{}", standby.log()));
    let again = ctl(&["schedule", "rm", &id]);
    assert_ne!(again.code, 0, "{again:?}");
    assert!(again.stderr.contains("no schedule entry"), "{again:?}");
    drop(c);
}
