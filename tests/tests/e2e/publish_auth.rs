//! Publish authorisation on a real origin with real ffmpeg encoders: a stream key as the
//! stream name (the OBS form) publishes the stream it stands for, a key in the query must be
//! the stream's own, a signed token made by `sluice-origin publish-token` publishes until it
//! expires, an open app takes anyone; every other encoder is refused before any media is
//! accepted and is told why (NetStream.Publish.Unauthorized), while the keys stay out of the
//! log and the API.

use std::process::Command;
use std::time::{Duration, SystemTime, UNIX_EPOCH};

use sluice_tests::origin::TestDir;
use sluice_tests::paths::binary;
use sluice_tests::process::wait_for;
use sluice_tests::{h264_small, secs, Origin, Player, Publisher};

const SECRET: &str = "a-token-secret-of-enough-length";

fn run(args: &[&str]) -> String {
    let out = Command::new(binary("sluice-origin")).args(args).output().expect("run sluice-origin");
    assert!(
        out.status.success(),
        "sluice-origin {args:?}: {}",
        String::from_utf8_lossy(&out.stderr)
    );
    String::from_utf8(out.stdout).expect("utf-8")
}

/// The value after `label: ` in the helper's output.
fn field<'a>(out: &'a str, label: &str) -> &'a str {
    out.lines()
        .find_map(|l| l.strip_prefix(label))
        .unwrap_or_else(|| panic!("no {label} in {out}"))
        .trim()
}

fn refused(url: &str, why: &str) {
    sluice_tests::ffmpeg::expect_refused(url, &h264_small().path, why);
}

#[test]
fn only_encoders_with_a_key_or_a_valid_token_publish() {
    let dir = TestDir::new("publish-auth");
    // The operator's side: a key made by the helper, its hash line in the keys file.
    let made = run(&["stream-key", "live/alice"]);
    let alice_key = field(&made, "stream key:").to_string();
    let keys = format!("# who may publish\n{}\n", field(&made, "keys file line:"));
    assert!(!keys.contains(&alice_key), "the keys file holds a hash, not the key");
    let bob = run(&["stream-key", "live/bob", "--key", "bobs-own-key"]);
    let keys = format!("{keys}{}\n", field(&bob, "keys file line:"));
    let keys_file = dir.path().join("keys");
    let secret_file = dir.path().join("secret");
    std::fs::write(&keys_file, keys).unwrap();
    std::fs::write(&secret_file, format!("{SECRET}\n")).unwrap();
    let origin = Origin::start(&[
        "--publish-keys-file",
        keys_file.to_str().unwrap(),
        "--publish-token-secret-file",
        secret_file.to_str().unwrap(),
        "--publish-open-apps",
        "open",
    ]);
    let url = |path: &str| format!("rtmp://{}/{path}", origin.rtmp);

    // The key as the stream name: live/alice goes live, and plays under that name.
    let mut alice = Publisher::start(&url(&format!("live/{alice_key}")), &h264_small().path);
    wait_for(secs(20), || origin.stream_info("live", "alice"))
        .unwrap_or_else(|| panic!("live/alice never went live: {:?}", alice.stderr()));
    let mut player = Player::start(&origin.rtmp_url("live", "alice"));
    assert!(player.wait_frames(10, secs(20)) >= 10, "live/alice plays: {:?}", player.errors());
    drop(player);
    // Bob's key in the query publishes bob, not alice.
    let mut bob = Publisher::start(&url("live/bob?key=bobs-own-key"), &h264_small().path);
    wait_for(secs(20), || origin.stream_info("live", "bob")).expect("live/bob with its key");

    // Refused, each told why, none goes live.
    refused(&url("live/carol"), "needs a stream key or a publish token");
    refused(&url("live/mallory-guessed-key"), "needs a stream key or a publish token");
    refused(&url("live/carol?key=bobs-own-key"), "wrong stream key");
    let expired = {
        let stream = sluice_media::stream_name::StreamKey::parse("live", "carol").unwrap().0;
        let past = SystemTime::now().duration_since(UNIX_EPOCH).unwrap() - Duration::from_secs(60);
        sluice_node::publish_auth::PublishAuth::token(SECRET.as_bytes(), &stream, past.as_secs())
    };
    refused(&url(&format!("live/carol?token={expired}")), "expired");
    refused(&url("live/carol?token=123.abcd"), "invalid publish token");
    assert!(origin.stream_info("live", "carol").is_none());
    assert!(origin.stream_info("live", "mallory-guessed-key").is_none());

    // A token from the helper, with the origin's secret: carol publishes.
    let signed = run(&[
        "publish-token",
        "live/carol",
        "--secret-file",
        secret_file.to_str().unwrap(),
        "--ttl",
        "1h",
    ]);
    let query = signed.trim().split_once('?').expect("a query").1.to_string();
    let mut carol = Publisher::start(&url(&format!("live/carol?{query}")), &h264_small().path);
    wait_for(secs(20), || origin.stream_info("live", "carol")).unwrap_or_else(|| {
        panic!("live/carol never went live with its token: {:?}", carol.stderr())
    });

    // An open app takes anyone.
    let mut open = Publisher::start(&url("open/anyone"), &h264_small().path);
    wait_for(secs(20), || origin.stream_info("open", "anyone")).expect("the open app");

    let metrics = origin.metrics();
    assert_eq!(metrics.value("sluice_publishes_unauthorized_total", &[]), 5.0);

    // The operator revokes bob's key and adds dave's, then sends SIGHUP: no restart.
    let dave = run(&["stream-key", "live/dave", "--key", "daves-new-key"]);
    let alice_line = field(&made, "keys file line:");
    std::fs::write(&keys_file, format!("{alice_line}\n{}\n", field(&dave, "keys file line:")))
        .unwrap();
    sluice_launch::kill(origin.pid(), sluice_launch::Signal::HUP);
    wait_for(secs(10), || {
        origin.log().contains("publish keys and token secret reloaded").then_some(())
    })
    .expect("the origin says it reloaded");
    let mut dave = Publisher::start(&url("live/daves-new-key"), &h264_small().path);
    wait_for(secs(20), || origin.stream_info("live", "dave")).expect("dave's new key works");
    let _ = bob.stop();
    wait_for(secs(10), || origin.stream_info("live", "bob").is_none().then_some(()))
        .expect("bob ended");
    refused(&url("live/bob?key=bobs-own-key"), "wrong stream key");
    // A broken keys file on SIGHUP: the policy in force stays, and the log says why.
    std::fs::write(&keys_file, "not a keys file\n").unwrap();
    sluice_launch::kill(origin.pid(), sluice_launch::Signal::HUP);
    wait_for(secs(10), || origin.log().contains("NOT reloaded").then_some(()))
        .expect("refused reload");
    let _ = dave.stop();
    wait_for(secs(10), || origin.stream_info("live", "dave").is_none().then_some(()))
        .expect("dave ended");
    let mut dave = Publisher::start(&url("live/daves-new-key"), &h264_small().path);
    wait_for(secs(20), || origin.stream_info("live", "dave")).expect("dave's key still works");
    // No key or token in the log, the API or the metrics.
    let (log, api, text) =
        (origin.log(), origin.streams().to_string(), origin.get("/metrics").text());
    for secret in
        [alice_key.as_str(), "bobs-own-key", "daves-new-key", "mallory-guessed-key", &query]
    {
        for (what, body) in [("log", &log), ("/api/streams", &api), ("/metrics", &text)] {
            assert!(!body.contains(secret), "{what} shows a credential ({secret})");
        }
    }
    for p in [&mut alice, &mut dave, &mut carol, &mut open] {
        let _ = p.stop();
    }
}

#[test]
fn an_origin_refuses_to_start_with_a_bad_keys_file() {
    let dir = TestDir::new("bad-keys");
    let keys_file = dir.path().join("keys");
    std::fs::write(&keys_file, "live/alice sha256:nothex\n").unwrap();
    let out = Command::new(binary("sluice-origin"))
        .args(["--publish-keys-file", keys_file.to_str().unwrap()])
        .output()
        .expect("run sluice-origin");
    assert!(!out.status.success());
    let stderr = String::from_utf8_lossy(&out.stderr);
    assert!(stderr.contains("keys file line 1") && stderr.contains("64 hex digits"), "{stderr}");
}
