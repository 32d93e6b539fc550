//! Transcoding ladders set through the control plane (#16): `sluicectl ladders set|ls|rm`
//! writes an app's ladder into etcd, every origin reads it from its registry cache, and a
//! stream published afterwards gets its renditions, though the origin has no --ladder-file.
//! A ladder out of bounds is refused with one clear line; an empty one turns the app's
//! transcoding off; deleting one that is not there says so.

use sluice_tests::cluster::TestCluster;
use sluice_tests::control_plane;
use sluice_tests::origin::TestDir;
use sluice_tests::process::wait_for;
use sluice_tests::{h264_aac, secs, Publisher};

use crate::sluicectl::{config_in, ctl_env};

#[test]
fn a_ladder_set_with_sluicectl_transcodes_streams_published_after_it() {
    let c = TestCluster::new("ladctl", &["origin-l"]);
    let dir = TestDir::new("sluicectl-ladders");
    let origin = c.origin("origin-l", &["--ended-stream-linger", "1s"]);
    let cp = control_plane::start(&c, "lad", &[]);
    let config = config_in(&dir);
    let endpoint = cp.grpc_url();
    let env = [("SLUICE_ENDPOINT", endpoint.as_str())];
    let ctl = |args: &[&str]| ctl_env(&config, &env, args);

    // Out of bounds: refused, one line naming the fault, nothing written.
    let bad = ctl(&["ladders", "set", "live", "--rendition", "240p:241:300"]);
    assert_ne!(bad.code, 0, "{bad:?}");
    assert_eq!(bad.stderr.lines().count(), 1, "{bad:?}");
    assert!(bad.stderr.contains("height must be even"), "{bad:?}");
    assert_eq!(ctl(&["ladders", "ls", "-o", "json"]).json()["ladders"], serde_json::json!([]));

    let set = ctl(&["ladders", "set", "live", "--rendition", "240p:240:300", "-o", "json"]);
    let shown = &set.json()["ladders"][0];
    assert_eq!(shown["app"], "live");
    assert_eq!(shown["renditions"][0]["height"], 240);
    let listed = ctl(&["ladders", "ls"]);
    assert!(listed.stdout.contains("live  240p"), "{listed:?}");

    // A stream published now is transcoded by the origin, which has no ladder file.
    let publisher = Publisher::start_looped(&origin.rtmp_url("live", "cam"), &h264_aac().path);
    wait_for(secs(40), || {
        origin.stream_info("live", "cam_240p").filter(|s| s["video"]["height"] == 240)
    })
    .unwrap_or_else(|| panic!("live/cam_240p never appeared:\n{}", origin.log()));
    drop(publisher);

    // An empty ladder turns the app's transcoding off for streams published after it.
    let off = ctl(&["ladders", "set", "live"]);
    assert_eq!(off.code, 0, "{off:?}");
    assert!(off.stdout.contains("not transcoded"), "{off:?}");
    let _other = Publisher::start_looped(&origin.rtmp_url("live", "other"), &h264_aac().path);
    wait_for(secs(20), || origin.stream_info("live", "other").filter(|s| !s["video"].is_null()))
        .expect("live/other published");
    std::thread::sleep(secs(4)); // renditions appear within about 2 s of a publish
    assert!(origin.stream_info("live", "other_240p").is_none(), "{}", origin.log());

    let rm = ctl(&["ladders", "rm", "live"]);
    assert_eq!(rm.code, 0, "{rm:?}");
    let again = ctl(&["ladders", "rm", "live"]);
    assert_ne!(again.code, 0, "{again:?}");
    assert!(again.stderr.contains("has no ladder"), "{again:?}");
}
