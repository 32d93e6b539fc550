//! Transcoding in a cluster (#16): the stream's home transcodes it and announces each
//! rendition like a publish (claimed in etcd, naming its source, sent to its own ring home),
//! so an edge plays a rendition by its name and lists the ladder in the source's
//! multivariant playlist and MPD, pulling each from the origins like any stream. When the home
//! dies, the origin that becomes the home takes the transcoding over, and a player of a
//! rendition on an edge plays on.

use std::process::Command;

use sluice_launch::Signal;
use sluice_tests::cluster::{find_name, home, owners, TestCluster};
use sluice_tests::ffmpeg::Player;
use sluice_tests::http::hls_position;
use sluice_tests::process::wait_for;
use sluice_tests::replay::Replay;
use sluice_tests::{h264_aac, secs, Publisher};

#[test]
fn an_edge_serves_the_renditions_made_on_the_home_origin() {
    let c = TestCluster::new("tc", &["tc-a", "tc-b", "tc-e"]);
    let ladder = c.certs_dir().join("ladder.toml");
    std::fs::write(
        &ladder,
        "[live]\nrenditions = [{ name = \"240p\", height = 240, video-kbps = 300 }]\n",
    )
    .unwrap();
    // A source that ends is over after 2 s (not the default linger).
    let ladder_arg = ["--ladder-file", ladder.to_str().unwrap(), "--ended-stream-linger", "2s"];
    let a = c.origin("tc-a", &ladder_arg);
    let b = c.origin("tc-b", &ladder_arg);
    let edge = c.edge("tc-e", &[]);
    // Homed on tc-a (which transcodes it), its rendition homed on tc-b.
    let origins = ["tc-a", "tc-b"];
    let name = find_name("t", |n| {
        home(&origins, n) == "tc-a" && home(&origins, &format!("{n}_240p")) == "tc-b"
    });
    let rendition = format!("{name}_240p");
    let publisher = Publisher::start_looped(&a.rtmp_url("live", &name), &h264_aac().path);
    // The rendition reaches its home, tc-b, which does not transcode anything itself.
    wait_for(secs(40), || {
        b.stream_info("live", &rendition).filter(|s| s["video"]["height"] == 240)
    })
    .unwrap_or_else(|| panic!("{rendition} never reached tc-b:\n{}\n{}", a.log(), b.log()));
    assert!(b.stream_info("live", &format!("{rendition}_240p")).is_none());

    // The edge lists the ladder in the source's multivariant playlist (it pulls both).
    let master = wait_for(secs(30), || {
        let text = edge.get(&format!("/live/{name}.m3u8")).text();
        (text.matches("#EXT-X-STREAM-INF").count() == 2).then_some(text)
    })
    .unwrap_or_else(|| panic!("the edge never listed the rendition:\n{}", edge.log()));
    assert!(master.contains(&format!("{rendition}/index.m3u8")), "{master}");
    assert!(master.contains("RESOLUTION=426x240"), "{master}");
    // And its MPD, as a second video representation.
    let location = edge.get(&format!("/live/{name}.mpd"));
    let location = location.header("location").expect("a session").to_string();
    let mpd = edge.get(&format!("/live/{location}")).text();
    assert!(mpd.contains(&format!("<Representation id=\"{rendition}\"")), "{mpd}");
    assert!(mpd.contains("height=\"240\""), "{mpd}");
    // The rendition's LL-HLS playlist on the edge reports the source, which the edge carries.
    let redirect = edge.get(&format!("/live/{rendition}/index.m3u8"));
    let playlist = format!("/live/{rendition}/{}", redirect.header("location").expect("a session"));
    let report = format!("#EXT-X-RENDITION-REPORT:URI=\"../{name}/index.m3u8\"");
    wait_for(secs(10), || edge.get(&playlist).text().contains(&report).then_some(()))
        .unwrap_or_else(|| panic!("no report of the source: {}", edge.get(&playlist).text()));

    // A player of the rendition on the edge decodes 240p.
    let url = format!("http://{}/live/{rendition}.m3u8", edge.http);
    let out = Command::new("ffmpeg")
        .args(["-hide_banner", "-v", "error", "-i", &url, "-map", "0:v:0", "-t", "2"])
        .args(["-f", "framemd5", "-"])
        .output()
        .unwrap();
    let frames =
        String::from_utf8_lossy(&out.stdout).lines().filter(|l| !l.starts_with('#')).count();
    assert!(
        frames >= 30,
        "{frames} frames decoded from the edge: {}",
        String::from_utf8_lossy(&out.stderr)
    );
    let probe = Command::new("ffprobe")
        .args(["-v", "error", "-select_streams", "v:0", "-show_entries", "stream=height"])
        .args(["-of", "csv=p=0", &url])
        .output()
        .unwrap();
    assert_eq!(String::from_utf8_lossy(&probe.stdout).lines().next(), Some("240"));

    // The claim names the source; it goes when the source ends.
    drop(publisher);
    wait_for(secs(30), || b.stream_info("live", &rendition).is_none().then_some(()))
        .unwrap_or_else(|| panic!("{rendition} outlived its source:\n{}", b.log()));
}

#[test]
fn a_failover_moves_transcoding_to_the_new_home_and_rendition_players_play_on() {
    let (i, h, s, e) = ("tf-i", "tf-h", "tf-s", "tf-e");
    let c = TestCluster::new("tf", &[i, h, s, e]);
    let ladder = c.certs_dir().join("ladder.toml");
    std::fs::write(
        &ladder,
        "[live]\nrenditions = [{ name = \"240p\", height = 240, video-kbps = 300 }]\n",
    )
    .unwrap();
    let args = ["--ladder-file", ladder.to_str().unwrap()];
    let ingest = c.origin(i, &args);
    let home_node = c.origin(h, &args);
    let standby = c.origin(s, &args);
    let edge = c.edge(e, &[]);
    let name = find_name("f", |n| owners(&[i, h, s], n, 2) == [h, s]);
    let rendition = format!("{name}_240p");
    let publisher = Replay::start(ingest.rtmp, "live", &name, &h264_aac().path);
    // A player finds the rendition in the source's multivariant playlist (before the home has
    // made and claimed it, its name is unknown: a 404).
    wait_for(secs(40), || {
        let master = edge.get(&format!("/live/{name}.m3u8")).text();
        master.contains(&format!("{rendition}/index.m3u8")).then_some(())
    })
    .unwrap_or_else(|| panic!("the edge never listed the rendition:\n{}", edge.log()));
    let mut player = Player::start(&format!("http://{}/live/{rendition}.m3u8", edge.http));
    assert!(player.wait_frames(30, secs(40)) >= 30, "the rendition plays: {:?}", player.errors());
    assert!(home_node.log().contains("transcoding width"), "the home transcodes");
    assert!(!standby.log().contains("transcoding width"), "the standby does not (yet)");
    assert!(!ingest.log().contains("transcoding width"), "the ingest does not");

    // The rendition's LL-HLS position on the edge, through a session of its own.
    let redirect = edge.get(&format!("/live/{rendition}/index.m3u8"));
    let playlist = format!("/live/{rendition}/{}", redirect.header("location").expect("a session"));
    let position = || hls_position(&edge.get(&playlist).text());
    let position_before = position().expect("the rendition's playlist");
    let before = player.frames();
    sluice_launch::kill(home_node.pid(), Signal::KILL);
    // The standby becomes the home and takes the transcoding over.
    wait_for(secs(30), || standby.log().contains("transcoding width").then_some(()))
        .unwrap_or_else(|| panic!("the new home never transcoded:\n{}", standby.log()));
    assert!(
        player.wait_frames(before + 150, secs(40)) >= before + 150,
        "the rendition's player plays on: {:?}\n{}",
        player.errors(),
        edge.log()
    );
    assert!(player.is_running(), "the player stays connected");
    // Its timeline went on: numbers never went back across the failover.
    let position_after = position().expect("the rendition's playlist after the failover");
    assert!(position_after > position_before, "{position_before:?} then {position_after:?}");
    // The edge still lists the ladder.
    let master = edge.get(&format!("/live/{name}.m3u8")).text();
    assert!(master.contains(&format!("{rendition}/index.m3u8")), "{master}");
    let result = player.stop();
    println!(
        "rendition player across the failover: {} frames, errors {:?}",
        result.frames, result.errors
    );

    assert!(publisher.is_running(), "the encoder never noticed");
    drop(c);
}

#[test]
fn origins_marked_as_transcoders_transcode_instead_of_the_home() {
    let c = TestCluster::new("tm", &["tm-a", "tm-t"]);
    let ladder = c.certs_dir().join("ladder.toml");
    std::fs::write(
        &ladder,
        "[live]\nrenditions = [{ name = \"240p\", height = 240, video-kbps = 300 }]\n",
    )
    .unwrap();
    let ladder_arg = ["--ladder-file", ladder.to_str().unwrap()];
    let a = c.origin("tm-a", &ladder_arg);
    // Homed on tm-a once tm-t has joined too.
    let name = find_name("m", |n| home(&["tm-a", "tm-t"], n) == "tm-a");
    let rendition = format!("{name}_240p");
    let _publisher = Publisher::start_looped(&a.rtmp_url("live", &name), &h264_aac().path);
    // Alone, the home transcodes.
    wait_for(secs(40), || {
        a.stream_info("live", &rendition).filter(|s| s["video"]["height"] == 240)
    })
    .unwrap_or_else(|| panic!("{rendition} never appeared:\n{}", a.log()));
    // An origin marked as a transcoder joins: the stream is sent to it and it transcodes; the
    // home stops, within a second or so.
    let t = c.origin("tm-t", &[&ladder_arg[..], &["--transcoder"]].concat());
    wait_for(secs(30), || t.log().contains("transcoding width").then_some(()))
        .unwrap_or_else(|| panic!("the transcoder never transcoded:\n{}\n{}", t.log(), a.log()));
    wait_for(secs(10), || {
        a.log().contains("another origin transcodes this stream now").then_some(())
    })
    .unwrap_or_else(|| panic!("the home kept transcoding:\n{}", a.log()));
    assert!(a.log().contains("forwarding to the stream's transcoder"), "{}", a.log());
    // The rendition is still served, now made by the transcoder.
    wait_for(secs(30), || {
        [&a, &t]
            .iter()
            .find_map(|o| o.stream_info("live", &rendition))
            .filter(|s| s["video"]["height"] == 240)
    })
    .unwrap_or_else(|| panic!("{rendition} gone:\n{}\n{}", a.log(), t.log()));
}
