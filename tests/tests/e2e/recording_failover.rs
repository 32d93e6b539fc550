//! Recording across an origin failover (#15): in a cluster only a stream's home records it;
//! with the recordings in a store the origins share (one directory here, as NFS would be),
//! an origin that becomes the home when the old home is SIGKILLed carries on the same
//! recording, and the finished recording has every segment but at most the one in flight,
//! playing through with every frame decoding. The same with the recordings in an S3 bucket the
//! origins share (moto_server on loopback).

use sluice_launch::Signal;
use sluice_tests::cluster::{find_name, home, TestCluster};
use sluice_tests::origin::TestDir;
use sluice_tests::process::wait_for;
use sluice_tests::replay::Replay;
use sluice_tests::{h264_aac, play_count_frames, secs};

use crate::recording::{assert_nothing_half_written, recordings};
use crate::recording_s3::{s3_env, s3_get, BUCKET};

/// Where the origins keep their recordings.
enum Shared {
    Dir(std::path::PathBuf),
    Bucket(sluice_launch::S3Server),
}

impl Shared {
    fn arg(&self) -> [String; 2] {
        match self {
            Shared::Dir(root) => ["--record-dir".into(), root.display().to_string()],
            Shared::Bucket(_) => ["--record-store".into(), format!("s3://{BUCKET}/rf")],
        }
    }

    /// The recordings' ids of `live/NAME`, oldest first.
    fn ids(&self, name: &str) -> Vec<String> {
        let mut ids: Vec<String> = match self {
            Shared::Dir(root) => recordings(root, "live", name)
                .iter()
                .map(|r| r.file_name().unwrap().to_string_lossy().into_owned())
                .collect(),
            Shared::Bucket(s3) => crate::recording_s3::bucket_keys(s3, &format!("rf/live/{name}/"))
                .iter()
                .filter_map(|k| k.split('/').nth(3).map(str::to_string))
                .collect(),
        };
        ids.dedup();
        ids
    }

    /// The text of the first recording's index of `live/NAME`.
    fn index(&self, name: &str) -> Option<String> {
        let id = self.ids(name).into_iter().next()?;
        match self {
            Shared::Dir(root) => {
                std::fs::read_to_string(root.join(format!("live/{name}/{id}/index.m3u8"))).ok()
            }
            Shared::Bucket(s3) => {
                let (status, text) =
                    s3_get(s3, &format!("{BUCKET}/rf/live/{name}/{id}/index.m3u8"));
                (status == 200).then_some(text)
            }
        }
    }
}

#[test]
fn the_new_home_carries_on_the_recording_when_the_recording_home_is_killed() {
    let dir = TestDir::new("recording-failover");
    carry_on(Shared::Dir(dir.path().join("recordings")));
}

#[test]
fn the_new_home_carries_on_the_recording_in_a_shared_s3_bucket() {
    let s3 = sluice_launch::S3Server::start().expect("moto_server (pip install 'moto[server]')");
    s3.create_bucket(BUCKET).unwrap();
    // Every origin this test process starts inherits them.
    for (key, value) in s3_env(&s3) {
        std::env::set_var(key, value);
    }
    carry_on(Shared::Bucket(s3));
}

fn carry_on(shared: Shared) {
    let (i, h) = ("rf-i", "rf-h");
    let c = TestCluster::new("rf", &[i, h]);
    let [flag, value] = shared.arg();
    let args = [flag.as_str(), &value, "--record-apps", "live", "--ended-stream-linger", "2s"];
    let ingest = c.origin(i, &args);
    let home_node = c.origin(h, &args);
    // A stream whose home is not the origin its encoder publishes to.
    let name = find_name("rec", |n| home(&[i, h], n) == h);
    let mut publisher = Replay::start(ingest.rtmp, "live", &name, &h264_aac().path);
    wait_for(secs(20), || home_node.stream_info("live", &name)).expect("forwarded to its home");
    let index_of = || shared.index(&name);
    wait_for(secs(30), || index_of().filter(|t| t.matches("seg-").count() >= 3))
        .unwrap_or_else(|| panic!("the home never recorded: {}", home_node.log()));
    assert!(home_node.log().contains("recording started"), "the home records");
    assert!(!ingest.log().contains("recording started"), "the ingest does not: {}", ingest.log());

    std::thread::sleep(std::time::Duration::from_millis(700)); // mid-segment
    sluice_launch::kill(home_node.pid(), Signal::KILL);
    let written = index_of().unwrap();
    let before = written.matches("seg-").count();
    // The ingest becomes the home once the registry forgets the dead one, and carries on.
    wait_for(secs(30), || index_of().filter(|t| t.matches("seg-").count() >= before + 4))
        .unwrap_or_else(|| panic!("the recording stopped at the failover: {}", ingest.log()));
    assert!(ingest.log().contains("recording carried on"), "{}", ingest.log());
    publisher.stop().expect("stop the encoder");
    let index = wait_for(secs(30), || index_of().filter(|t| t.contains("#EXT-X-ENDLIST")))
        .unwrap_or_else(|| panic!("the recording never finished: {}", ingest.log()));

    let ids = shared.ids(&name);
    assert_eq!(ids.len(), 1, "one recording across the failover: {ids:?}");
    if let Shared::Dir(root) = &shared {
        assert_nothing_half_written(&root.join(format!("live/{name}/{}", ids[0])));
    }
    let msns: Vec<u64> = index
        .lines()
        .filter_map(|l| l.strip_prefix("seg-")?.strip_suffix(".m4s")?.parse().ok())
        .collect();
    let span = msns.last().unwrap() - msns.first().unwrap() + 1;
    let lost = span - msns.len() as u64;
    assert!(lost <= 1, "{lost} segments lost at the failover (at most the one in flight): {index}");
    assert!(msns.windows(2).all(|w| w[0] < w[1]), "{index}");
    // What the old home wrote is all still there, in front.
    let segs = |t: &str| {
        t.lines().filter(|l| l.starts_with("seg-")).map(str::to_string).collect::<Vec<_>>()
    };
    let (old, now) = (segs(&written), segs(&index));
    assert_eq!(now[..old.len()], old[..], "the old home's segments come first: {index}");
    // Every segment plays, every frame decodes, served by the origin that finished it.
    let vod = format!("http://{}/vod/live/{name}/{}/index.m3u8", ingest.http, ids[0]);
    let played = play_count_frames(&vod, secs(60));
    assert!(played.errors.is_empty(), "{:?}", played.errors);
    // 30 fps: the listed seconds' worth of frames (the last segment ends with the encoder).
    let listed: f64 = index
        .lines()
        .filter_map(|l| l.strip_prefix("#EXTINF:"))
        .map(|l| l.trim_end_matches(',').parse::<f64>().unwrap())
        .sum();
    let expected = (listed * 30.0).round() as u64;
    assert!(
        played.frames.abs_diff(expected) <= 20,
        "{} frames decoded of the {expected} the index lists ({listed} s): {index}",
        played.frames
    );
    drop(c);
}
