//! Publishing and playing rules, checked with the exact onStatus codes a raw RTMP client sees.

use std::time::{Duration, Instant};

use sluice_media::frame::MediaKind;
use sluice_media::rtmp::client::{ClientEvent, ClientMode};
use sluice_tests::process::wait_for;
use sluice_tests::rtmp::{video_header, RtmpClient};
use sluice_tests::{h264_aac, secs, Origin, Player, Publisher};

/// A second publisher of a live name gets NetStream.Publish.BadName; the first keeps going.
#[test]
fn second_publisher_of_live_name_gets_bad_name() {
    let origin = Origin::start(&[]);
    let url = origin.rtmp_url("live", "taken");
    let mut first = Publisher::start_looped(&url, &h264_aac().path);
    wait_for(secs(10), || origin.stream_info("live", "taken")).expect("first publisher is live");

    let mut second =
        RtmpClient::connect(origin.rtmp, "live", "taken", ClientMode::Publish).unwrap();
    let (level, code, description) =
        second.next_status(secs(10)).expect("second publisher gets an onStatus");
    assert_eq!(code, "NetStream.Publish.BadName", "level {level}, description {description:?}");
    assert_eq!(level, "error");
    second.close();

    std::thread::sleep(Duration::from_millis(500));
    assert!(first.is_running(), "first publisher was disconnected: {:?}", first.stderr());
    let player = Player::start(&url);
    let mut player = player;
    assert!(player.wait_frames(30, secs(15)) >= 30, "the first publisher's stream still plays");
}

/// Invalid app/stream names are refused with an error status (or a rejected connect for
/// reserved apps), never accepted.
#[test]
fn invalid_names_are_rejected() {
    let origin = Origin::start(&[]);
    let long = "x".repeat(200);
    let cases: [(&str, &str, ClientMode); 6] = [
        ("live", "bad name", ClientMode::Publish),
        ("live", ".hidden", ClientMode::Publish),
        ("live", "a/b", ClientMode::Publish),
        ("live", long.as_str(), ClientMode::Publish),
        ("live", "", ClientMode::Publish),
        ("live", "bad*name", ClientMode::Play),
    ];
    for (app, stream, mode) in cases {
        let mut c = RtmpClient::connect(origin.rtmp, app, stream, mode).unwrap();
        let outcome = first_outcome(&mut c);
        match &outcome {
            Outcome::Status { level, code, description } => {
                assert_eq!(level, "error", "{app}/{stream:?} ({mode:?}): {code} {description}");
                assert!(
                    !description.is_empty(),
                    "{app}/{stream:?}: status {code} has no description"
                );
                let prefix = if mode == ClientMode::Publish {
                    "NetStream.Publish."
                } else {
                    "NetStream.Play."
                };
                assert!(code.starts_with(prefix), "{app}/{stream:?} ({mode:?}): code {code}");
            }
            other => panic!("{app}/{stream:?} ({mode:?}): expected an error status, got {other:?}"),
        }
        c.close();
    }
    // A reserved app name (it collides with an HTTP route) is refused at connect or publish.
    let mut c = RtmpClient::connect(origin.rtmp, "api", "s", ClientMode::Publish).unwrap();
    match first_outcome(&mut c) {
        Outcome::CommandError(description) => eprintln!("reserved app refused: {description}"),
        Outcome::Closed => eprintln!("reserved app refused by closing the connection"),
        Outcome::Status { level, code, .. } => assert_eq!(level, "error", "reserved app: {code}"),
        Outcome::Started => panic!("publishing to the reserved app 'api' was accepted"),
    }
    assert!(origin.streams()["streams"].as_array().unwrap().is_empty(), "no stream was created");
}

#[derive(Debug)]
enum Outcome {
    Started,
    Status { level: String, code: String, description: String },
    CommandError(String),
    Closed,
}

fn first_outcome(c: &mut RtmpClient) -> Outcome {
    let deadline = Instant::now() + secs(10);
    while Instant::now() < deadline {
        match c.next_event(secs(1)) {
            Ok(Some(ClientEvent::PublishStarted | ClientEvent::PlayStarted)) => {
                return Outcome::Started
            }
            Ok(Some(ClientEvent::Status { level, code, description })) => {
                if code == "NetStream.Publish.Start" || code == "NetStream.Play.Start" {
                    return Outcome::Started;
                }
                return Outcome::Status { level, code, description };
            }
            Ok(Some(ClientEvent::CommandError { description })) => {
                return Outcome::CommandError(description)
            }
            Ok(_) => {}
            Err(_) => return Outcome::Closed,
        }
    }
    panic!("no answer within 10 s")
}

/// A raw RTMP player stays connected across a publisher restart: it sees UnpublishNotify,
/// then PublishNotify and media (starting with a decodable keyframe) again.
#[test]
fn player_survives_publisher_restart() {
    let fixture = h264_aac();
    let origin = Origin::start(&["--play-wait-timeout", "20s"]);
    let url = origin.rtmp_url("live", "restart");
    let mut player = RtmpClient::connect(origin.rtmp, "live", "restart", ClientMode::Play).unwrap();

    let mut publisher = Publisher::start_looped(&url, &fixture.path);
    let mut seen = Vec::new();
    let videos = count_video(&mut player, secs(3), &mut seen);
    assert!(
        videos >= 45,
        "player got {videos} video messages in 3 s of the first publish ({seen:?})"
    );
    publisher.stop();

    // The unpublish is announced and the connection stays open.
    let deadline = Instant::now() + secs(10);
    while !seen.iter().any(|c| c == "NetStream.Play.UnpublishNotify") && Instant::now() < deadline {
        let _ = player
            .next_media(secs(1), &mut seen)
            .expect("player connection stays open after unpublish");
    }
    assert!(seen.iter().any(|c| c == "NetStream.Play.UnpublishNotify"), "statuses seen: {seen:?}");
    player.drain_for(secs(1)).unwrap();
    assert!(!player.is_eof(), "server closed the player after the publisher left");

    // The publisher returns; the player resumes with a sequence header / keyframe.
    let _publisher = Publisher::start_looped(&url, &fixture.path);
    seen.clear();
    let mut first_frame = None;
    let deadline = Instant::now() + secs(15);
    let mut resumed = 0;
    while Instant::now() < deadline && resumed < 60 {
        let Some(m) = player.next_media(secs(1), &mut seen).expect("player connection open") else {
            continue;
        };
        if m.kind != MediaKind::Video {
            continue;
        }
        let h = video_header(&m.payload).expect("video header");
        if !h.sequence_header {
            first_frame.get_or_insert(h);
            resumed += 1;
        }
    }
    assert!(
        resumed >= 60,
        "player got {resumed} video frames after the publisher returned (statuses {seen:?})"
    );
    assert!(first_frame.unwrap().keyframe, "first frame after the restart is not a keyframe");
    assert!(
        seen.iter().any(|c| c == "NetStream.Play.PublishNotify" || c == "NetStream.Play.Start"),
        "no PublishNotify/Play.Start after the restart: {seen:?}"
    );
}

fn count_video(player: &mut RtmpClient, window: Duration, seen: &mut Vec<String>) -> usize {
    let deadline = Instant::now() + window + secs(10);
    let mut started = None;
    let mut n = 0;
    while Instant::now() < deadline {
        if started.is_some_and(|t: Instant| t.elapsed() >= window) {
            break;
        }
        if let Some(m) = player.next_media(secs(1), seen).expect("player connection open") {
            if m.kind == MediaKind::Video {
                started.get_or_insert_with(Instant::now);
                n += 1;
            }
        }
    }
    n
}

/// A player of a stream nobody publishes gets NetStream.Play.StreamNotFound once
/// --play-wait-timeout passes.
#[test]
fn play_of_unpublished_stream_times_out_with_stream_not_found() {
    let origin = Origin::start(&["--play-wait-timeout", "1s"]);
    let start = Instant::now();
    let mut player = RtmpClient::connect(origin.rtmp, "live", "nobody", ClientMode::Play).unwrap();
    let mut codes = Vec::new();
    let found = loop {
        match player.next_status(secs(10)) {
            Ok((level, code, _)) => {
                codes.push(code.clone());
                if code == "NetStream.Play.StreamNotFound" {
                    assert_eq!(level, "error");
                    break true;
                }
            }
            Err(e) => panic!("no StreamNotFound ({e}); statuses: {codes:?}"),
        }
    };
    assert!(found);
    let waited = start.elapsed();
    assert!(
        waited >= Duration::from_millis(800),
        "StreamNotFound after {waited:?}, before the 1 s wait"
    );
    assert!(waited < secs(5), "StreamNotFound only after {waited:?}");
    assert!(!codes.iter().any(|c| c == "NetStream.Play.Start"), "{codes:?}");
}

/// Everything a publisher sent before it unpublished reaches a player that was keeping up:
/// the publisher's last frames are not lost when it leaves.
#[test]
fn player_gets_every_message_sent_before_unpublish() {
    let fixture = h264_aac();
    let tags = sluice_tests::rtmp::read_flv_file(&fixture.path).unwrap();
    // The first 2 s (one GOP) of media, sent as one burst followed at once by the unpublish.
    let burst: Vec<_> = tags.iter().filter(|t| t.timestamp < 2000).cloned().collect();
    let sent_video = burst
        .iter()
        .filter(|t| {
            t.kind == MediaKind::Video && !video_header(&t.payload).unwrap().sequence_header
        })
        .count();
    let origin = Origin::start(&["--play-wait-timeout", "20s"]);
    let mut player = RtmpClient::connect(origin.rtmp, "live", "burst", ClientMode::Play).unwrap();
    // Let the player finish its opening (handshake, connect, play) and wait on the server.
    player.pump_for(Duration::from_millis(1500)).unwrap();

    let mut publisher =
        RtmpClient::connect(origin.rtmp, "live", "burst", ClientMode::Publish).unwrap();
    publisher.expect_status("NetStream.Publish.Start", secs(10)).expect("publish accepted");
    // Headers and the first keyframe first; once the player is playing, the rest in one burst
    // immediately followed by the unpublish.
    let first_frame = burst
        .iter()
        .position(|t| {
            t.kind == MediaKind::Video
                && video_header(&t.payload).unwrap().keyframe
                && !video_header(&t.payload).unwrap().sequence_header
        })
        .expect("a keyframe");
    for tag in &burst[..=first_frame] {
        publisher.send_media(tag).unwrap();
    }
    let mut seen = Vec::new();
    let mut video = 0;
    let deadline = Instant::now() + secs(10);
    while video == 0 && Instant::now() < deadline {
        if let Some(m) = player.next_media(secs(1), &mut seen).expect("player connected") {
            if m.kind == MediaKind::Video && !video_header(&m.payload).unwrap().sequence_header {
                video += 1;
            }
        }
    }
    assert_eq!(video, 1, "player did not get the first keyframe (statuses {seen:?})");
    for tag in &burst[first_frame + 1..] {
        publisher.send_media(tag).unwrap();
    }
    publisher.close();

    // Read until the unpublish notice, then a little longer in case media trails it.
    let mut quiet_after_notice = 0;
    let deadline = Instant::now() + secs(15);
    while Instant::now() < deadline && quiet_after_notice < 2 {
        match player.next_media(secs(1), &mut seen).expect("player stays connected") {
            Some(m)
                if m.kind == MediaKind::Video
                    && !video_header(&m.payload).unwrap().sequence_header =>
            {
                video += 1;
            }
            Some(_) => {}
            None if seen.iter().any(|c| c == "NetStream.Play.UnpublishNotify") => {
                quiet_after_notice += 1;
            }
            None => {}
        }
    }
    assert!(
        seen.iter().any(|c| c == "NetStream.Play.UnpublishNotify"),
        "no UnpublishNotify: {seen:?}"
    );
    assert_eq!(
        video, sent_video,
        "the player received {video} of the {sent_video} video frames published before the unpublish"
    );
}
