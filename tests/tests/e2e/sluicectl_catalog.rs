//! The catalog of a cluster (#15): two origins and the control plane share one PostgreSQL
//! (Debian's server, started by the test); each origin writes the items of the streams it is
//! the home of and of their recordings, and `sluicectl catalog` finds, shows and titles them
//! through the control plane.

use sluice_tests::cluster::{find_name, home, TestCluster};
use sluice_tests::control_plane;
use sluice_tests::origin::TestDir;
use sluice_tests::process::wait_for;
use sluice_tests::{h264_small, secs, Publisher};

use crate::sluicectl::{config_in, ctl_env};

#[test]
fn origins_share_a_postgresql_catalog_that_sluicectl_searches_and_titles() {
    let pg = sluice_launch::Postgres::start().expect("PostgreSQL (Debian package postgresql)");
    pg.create_database("sluice").unwrap();
    let url = pg.url("sluice");
    let origins = ["cat-a", "cat-b"];
    let c = TestCluster::new("catctl", &origins);
    let dir = TestDir::new("sluicectl-catalog");
    let token_file = dir.path().join("token");
    std::fs::write(&token_file, "a-token-for-origins-and-control-plane\n").unwrap();
    let token = token_file.to_str().unwrap();
    let root = |n: &str| dir.path().join(n).to_str().unwrap().to_string();
    let args = |n: &str| {
        let record = root(n);
        vec![
            "--record-dir".to_string(),
            record,
            "--record-apps".into(),
            "live".into(),
            "--catalog".into(),
            url.clone(),
            "--token-file".into(),
            token.into(),
            "--ended-stream-linger".into(),
            "1s".into(),
        ]
    };
    let a_args = args("a");
    let b_args = args("b");
    let a = c.origin("cat-a", &a_args.iter().map(String::as_str).collect::<Vec<_>>());
    let b = c.origin("cat-b", &b_args.iter().map(String::as_str).collect::<Vec<_>>());
    let cp = control_plane::start(&c, "cat", &["--token-file", token, "--catalog", &url]);
    let config = config_in(&dir);
    let endpoint = cp.grpc_url();
    let env = [("SLUICE_ENDPOINT", endpoint.as_str()), ("SLUICE_TOKEN_FILE", token)];
    let ctl = |args: &[&str]| ctl_env(&config, &env, args);

    // A stream homed on each origin, both published to cat-a.
    let on_a = find_name("ca", |n| home(&origins, n) == "cat-a");
    let on_b = find_name("cb", |n| home(&origins, n) == "cat-b");
    let _pa = Publisher::start_looped(&a.rtmp_url("live", &on_a), &h264_small().path);
    let _pb = Publisher::start_looped(&a.rtmp_url("live", &on_b), &h264_small().path);
    let items = |args: &[&str]| {
        let run = ctl(&[&["catalog", "search", "-o", "json"], args].concat());
        assert_eq!(run.code, 0, "{run:?}");
        run.json()["items"].as_array().cloned().unwrap_or_default()
    };
    // Each is written by its home, recording included.
    let found = wait_for(secs(40), || {
        let all = items(&["--limit", "100"]);
        let written = |id: &str, node: &str| all.iter().any(|i| i["id"] == id && i["node"] == node);
        let recs = all.iter().filter(|i| i["kind"] == "recording").count();
        (written(&format!("live/{on_a}"), "cat-a")
            && written(&format!("live/{on_b}"), "cat-b")
            && recs == 2)
            .then_some(all)
    })
    .unwrap_or_else(|| panic!("{:?}\n{}\n{}", ctl(&["catalog", "search"]), a.log(), b.log()));
    for item in &found {
        assert!(item["video_codec"] == "h264", "{item}");
    }
    let recorded_on_b = found
        .iter()
        .find(|i| i["kind"] == "recording" && i["stream"] == on_b.as_str())
        .expect("the recording of the stream homed on cat-b");
    assert_eq!(recorded_on_b["node"], "cat-b", "its home records it: {recorded_on_b}");

    // Titled through sluicectl: the live stream and its recording being written.
    let live_b = format!("live/{on_b}");
    let set = ctl(&["catalog", "set", &live_b, "--title", "Harbour cam", "--tag", "Webcam"]);
    assert_eq!(set.code, 0, "{set:?}");
    assert!(set.stdout.contains("Harbour cam"), "{set:?}");
    let hits = items(&["harbour"]);
    let mut kinds: Vec<&str> = hits.iter().map(|i| i["kind"].as_str().unwrap()).collect();
    kinds.sort();
    assert_eq!(kinds, ["live", "recording"], "{hits:?}");
    assert_eq!(items(&["--tag", "webcam", "--kind", "live"]).len(), 1);
    assert!(items(&["--tag", "webcam", "--app", "other"]).is_empty());
    let shown = ctl(&["catalog", "show", &live_b]);
    assert!(shown.stdout.contains("Harbour cam") && shown.stdout.contains("webcam"), "{shown:?}");
    // Errors are one line with the reason, and the exit code says which.
    let missing = ctl(&["catalog", "show", "live/none"]);
    assert_eq!(missing.code, 4, "{missing:?}");
    let bad = ctl(&["catalog", "set", &live_b, "--tag", "two words"]);
    assert_ne!(bad.code, 0, "{bad:?}");
    assert!(bad.stderr.contains("a-z"), "{bad:?}");
    // Pages: one item at a time, each once.
    let first = ctl(&["catalog", "search", "--limit", "1", "-o", "json"]).json();
    let next = first["next_page"].as_str().expect("more than one page").to_string();
    let second = ctl(&["catalog", "search", "--limit", "1", "--page", &next, "-o", "json"]).json();
    assert_ne!(first["items"][0]["id"], second["items"][0]["id"]);
}
