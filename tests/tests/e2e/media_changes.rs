//! Media a publisher changes or sends that the server must handle on the fly: an Enhanced RTMP
//! multitrack packet (refused: only that publisher is disconnected) and a mid-stream change of
//! sequence header (new resolution) on one connection.

use std::path::{Path, PathBuf};
use std::process::Command;
use std::sync::atomic::{AtomicU8, Ordering};
use std::sync::Arc;
use std::thread;
use std::time::{Duration, Instant};

use bytes::Bytes;
use sluice_media::frame::{MediaKind, MediaMessage};
use sluice_media::rtmp::client::ClientMode;
use sluice_tests::ffmpeg::probe_streams;
use sluice_tests::process::wait_for;
use sluice_tests::rtmp::{read_flv_file, video_header, RtmpClient};
use sluice_tests::wait::{wait_players_subscribed, LOG_PLAYS};
use sluice_tests::{ffprobe_streams, h264_aac, secs, Origin, Player, Publisher};

const MEDIA_ERRORS: &str = "sluice_connection_errors_total";

/// An Enhanced RTMP video tag: IsExHeader | keyframe | PacketType Multitrack (6), then
/// AvMultitrackType OneTrack (0) with PacketType CodedFrames (1), FourCC `avc1`, track id 0,
/// SI24 composition time 0, and a few NAL bytes.
fn multitrack_video_payload() -> Bytes {
    const ONE_TRACK: u8 = 0;
    const CODED_FRAMES: u8 = 1;
    let mut p = vec![0x80 | (1 << 4) | 6, (ONE_TRACK << 4) | CODED_FRAMES];
    p.extend_from_slice(b"avc1");
    p.push(0); // track id
    p.extend_from_slice(&[0, 0, 0]); // composition time
    p.extend_from_slice(&[0, 0, 0, 5, 0x65, 0x88, 0x84, 0x00, 0x10]);
    Bytes::from(p)
}

/// A publisher that sends an Enhanced RTMP multitrack video packet is disconnected and counted
/// as a media error; the stream of another publisher on the same server keeps playing.
#[test]
fn multitrack_publisher_is_refused_without_disturbing_other_streams() {
    let fixture = h264_aac();
    let tags = read_flv_file(&fixture.path).unwrap();
    let origin = Origin::start(&[]);

    // Another stream, played throughout.
    let other_url = origin.rtmp_url("live", "other");
    let _other = Publisher::start_looped(&other_url, &fixture.path);
    wait_for(secs(10), || origin.stream_info("live", "other")).expect("live/other is live");
    let mut player = Player::start(&other_url);
    assert!(player.wait_frames(30, secs(15)) >= 30, "player of live/other is decoding");

    // A raw publisher: headers and the first keyframe, then the multitrack packet.
    let mut publisher =
        RtmpClient::connect(origin.rtmp, "live", "mt", ClientMode::Publish).unwrap();
    publisher.expect_status("NetStream.Publish.Start", secs(10)).expect("publish accepted");
    let first_key = tags
        .iter()
        .position(|t| {
            t.kind == MediaKind::Video
                && video_header(&t.payload).is_some_and(|h| h.keyframe && !h.sequence_header)
        })
        .expect("fixture has a keyframe");
    for tag in &tags[..=first_key] {
        publisher.send_media(tag).unwrap();
    }
    let info =
        wait_for(secs(10), || origin.stream_info("live", "mt").filter(|s| !s["video"].is_null()))
            .unwrap_or_else(|| panic!("live/mt never listed with video: {}", origin.streams()));
    assert_eq!(info["video"]["codec"], "h264", "{info}");
    publisher.pump_for(Duration::from_millis(300)).unwrap();
    assert!(!publisher.is_eof(), "valid media closed the publisher");

    let errors_before = origin.metrics().value(MEDIA_ERRORS, &[("kind", "media")]);
    let frames_before = player.frames();
    let last_ts = tags[first_key].timestamp;
    publisher
        .send_media(&MediaMessage {
            kind: MediaKind::Video,
            timestamp: last_ts + 33,
            payload: multitrack_video_payload(),
        })
        .unwrap();
    let sent = Instant::now();
    while !publisher.is_eof() && sent.elapsed() < secs(5) {
        let _ = publisher.pump(Duration::from_millis(100));
    }
    assert!(publisher.is_eof(), "the server did not close the multitrack publisher within 5 s");
    eprintln!("publisher closed {:?} after the multitrack packet", sent.elapsed());

    let errors_after = wait_for(secs(5), || {
        let v = origin.metrics().value(MEDIA_ERRORS, &[("kind", "media")]);
        (v > errors_before).then_some(v)
    })
    .unwrap_or_else(|| {
        panic!(
            "{MEDIA_ERRORS}{{kind=\"media\"}} stayed at {errors_before}: {:?}",
            origin.metrics().samples.iter().filter(|s| s.name == MEDIA_ERRORS).collect::<Vec<_>>()
        )
    });
    assert_eq!(errors_after, errors_before + 1.0, "one media error counted");
    wait_for(secs(5), || origin.stream_info("live", "mt").is_none().then_some(()))
        .unwrap_or_else(|| panic!("live/mt still listed: {}", origin.streams()));

    // The other stream kept decoding while this happened and keeps going afterwards.
    let target = player.frames() + 60;
    let reached = player.wait_frames(target, secs(10));
    assert!(
        reached >= target,
        "player of live/other stalled: {frames_before} frames before the multitrack packet, {reached} after (wanted {target})"
    );
    assert!(player.is_running(), "player of live/other exited");
    let result = player.stop();
    assert!(result.errors.is_empty(), "player of live/other reported errors: {:#?}", result.errors);
}

/// Encode `seconds` of H.264 (ultrafast, 2 s GOP) + AAC at `size` into an FLV file.
pub(crate) fn make_clip(dir: &Path, size: &str, seconds: u32) -> PathBuf {
    let path = dir.join(format!("clip-{size}.flv"));
    let status = Command::new("ffmpeg")
        .args(["-hide_banner", "-nostdin", "-loglevel", "error", "-y"])
        .args(["-f", "lavfi", "-i", &format!("testsrc2=size={size}:rate=30")])
        .args(["-f", "lavfi", "-i", "sine=frequency=440:sample_rate=44100"])
        .args(["-t", &seconds.to_string()])
        .args(["-c:v", "libx264", "-preset", "ultrafast", "-pix_fmt", "yuv420p"])
        .args(["-g", "60", "-keyint_min", "60", "-sc_threshold", "0"])
        .args(["-c:a", "aac", "-ac", "2", "-ar", "44100", "-b:a", "128k"])
        .args(["-f", "flv"])
        .arg(&path)
        .status()
        .expect("run ffmpeg");
    assert!(status.success(), "ffmpeg failed making {size} clip: {status}");
    path
}

/// AVC packet type of a legacy H.264 video tag (0 header, 1 NALUs, 2 end of sequence).
fn avc_packet_type(m: &MediaMessage) -> Option<u8> {
    (m.kind == MediaKind::Video && m.payload.first().is_some_and(|b| b & 0x0F == 7))
        .then(|| m.payload.get(1).copied())
        .flatten()
}

/// The tags of an FLV clip as a live encoder would send them: the muxer's trailing AVC
/// end-of-sequence tag is dropped (an encoder switching resolution keeps the stream going).
pub(crate) fn clip_tags(path: &Path) -> Vec<MediaMessage> {
    read_flv_file(path).unwrap().into_iter().filter(|t| avc_packet_type(t) != Some(2)).collect()
}

fn video_frames(tags: &[MediaMessage]) -> u64 {
    tags.iter().filter(|t| avc_packet_type(t) == Some(1)).count() as u64
}

/// Each coded video frame paired with the sequence header in force when it was sent/received
/// (the last one before it).
fn frames_with_headers(videos: &[MediaMessage]) -> Vec<(Bytes, Bytes)> {
    let mut header = Bytes::new();
    let mut out = Vec::new();
    for m in videos {
        match avc_packet_type(m) {
            Some(0) => header = m.payload.clone(),
            Some(1) => out.push((header.clone(), m.payload.clone())),
            _ => {}
        }
    }
    out
}

/// A raw RTMP player: every video message until the unpublish notice (plus a quiet second).
fn collect_video_until_unpublish(mut player: RtmpClient) -> anyhow::Result<Vec<MediaMessage>> {
    let mut seen = Vec::new();
    let mut videos = Vec::new();
    let deadline = Instant::now() + secs(40);
    let mut quiet = 0;
    while Instant::now() < deadline && quiet < 2 {
        match player.next_media(secs(1), &mut seen)? {
            Some(m) if m.kind == MediaKind::Video => videos.push(m),
            Some(_) => {}
            None if seen.iter().any(|c| c == "NetStream.Play.UnpublishNotify") => quiet += 1,
            None => {}
        }
    }
    anyhow::ensure!(
        seen.iter().any(|c| c == "NetStream.Play.UnpublishNotify"),
        "no UnpublishNotify; statuses {seen:?}"
    );
    Ok(videos)
}

/// One RTMP connection publishes 4 s at 1280x720, then (new sequence headers, timestamps
/// continuing) 4 s at 640x360. A player connected throughout decodes every frame of both
/// parts without errors, the API follows the resolution, and a viewer joining after the
/// change only ever sees 640x360.
#[test]
fn resolution_change_mid_stream_reaches_viewers_and_restarts_gop_cache() {
    let origin = Origin::start(&[&["--play-wait-timeout", "20s"][..], &LOG_PLAYS].concat());
    let big = clip_tags(&make_clip(origin.dir().path(), "1280x720", 4));
    let small = clip_tags(&make_clip(origin.dir().path(), "640x360", 4));
    let expected_frames = video_frames(&big) + video_frames(&small);
    let offset = big.iter().map(|t| t.timestamp).max().unwrap() + 33;
    let mut schedule = big.clone();
    let switch_index = schedule.len();
    schedule.extend(
        small.iter().map(|t| MediaMessage { timestamp: t.timestamp + offset, ..t.clone() }),
    );
    assert!(
        video_header(
            &schedule[switch_index..].iter().find(|t| t.kind == MediaKind::Video).unwrap().payload
        )
        .unwrap()
        .sequence_header,
        "the second part starts with a new sequence header"
    );

    let url = origin.rtmp_url("live", "switch");
    let player = Player::start(&url);
    let raw_player = RtmpClient::connect(origin.rtmp, "live", "switch", ClientMode::Play).unwrap();
    let raw_player = thread::spawn(move || collect_video_until_unpublish(raw_player));
    // Both players wait, subscribed, before the publisher starts.
    wait_players_subscribed(&origin, "live/switch", 2, 0, secs(20));

    // 0: first part, 1: second part sent, 2: done.
    let phase = Arc::new(AtomicU8::new(0));
    let phase2 = phase.clone();
    let addr = origin.rtmp;
    let sender = thread::spawn(move || -> anyhow::Result<()> {
        let mut publisher = RtmpClient::connect(addr, "live", "switch", ClientMode::Publish)?;
        publisher.expect_status("NetStream.Publish.Start", secs(10))?;
        let start = Instant::now();
        for (i, tag) in schedule.iter().enumerate() {
            if i == switch_index {
                phase2.store(1, Ordering::SeqCst);
            }
            // Real time: a tag goes out when its timestamp is due.
            let due = start + Duration::from_millis(tag.timestamp as u64);
            while Instant::now() < due {
                publisher.pump(
                    due.saturating_duration_since(Instant::now()).min(Duration::from_millis(20)),
                )?;
            }
            publisher.send_media(tag)?;
        }
        publisher.pump_for(Duration::from_millis(300))?;
        publisher.close();
        phase2.store(2, Ordering::SeqCst);
        Ok(())
    });

    // First part: the API reports 1280x720.
    let info = wait_for(secs(10), || {
        origin.stream_info("live", "switch").filter(|s| !s["video"].is_null())
    })
    .unwrap_or_else(|| panic!("live/switch never listed with video: {}", origin.streams()));
    assert_eq!(phase.load(Ordering::SeqCst), 0, "first part still running");
    assert_eq!(info["video"]["width"], 1280, "{info}");
    assert_eq!(info["video"]["height"], 720, "{info}");

    // After the change: 640x360.
    wait_for(secs(10), || (phase.load(Ordering::SeqCst) >= 1).then_some(()))
        .expect("second part started");
    let info = wait_for(secs(3), || {
        origin.stream_info("live", "switch").filter(|s| s["video"]["width"] == 640)
    })
    .unwrap_or_else(|| panic!("/api/streams did not switch to width 640: {}", origin.streams()));
    assert_eq!(info["video"]["height"], 360, "{info}");

    // A viewer joining now starts at the new headers and keyframe only: a raw RTMP player's
    // first video messages are the 640x360 sequence header and the 640x360 keyframe, and
    // nothing of the 1280x720 part ever reaches it.
    let mut late = RtmpClient::connect(origin.rtmp, "live", "switch", ClientMode::Play).unwrap();
    let mut late_videos = Vec::new();
    let mut seen = Vec::new();
    let deadline = Instant::now() + Duration::from_millis(1500);
    while Instant::now() < deadline && late_videos.len() < 20 {
        if let Some(m) = late.next_media(Duration::from_millis(200), &mut seen).unwrap() {
            if m.kind == MediaKind::Video {
                late_videos.push(m);
            }
        }
    }
    late.close();
    let small_header =
        small.iter().find(|t| avc_packet_type(t) == Some(0)).unwrap().payload.clone();
    let small_first_key =
        small.iter().find(|t| avc_packet_type(t) == Some(1)).unwrap().payload.clone();
    assert!(
        late_videos.len() >= 2,
        "late joiner got {} video messages ({seen:?})",
        late_videos.len()
    );
    assert_eq!(
        late_videos[0].payload, small_header,
        "late joiner's first video message is the new sequence header"
    );
    assert!(
        late_videos[1..].iter().all(|m| avc_packet_type(m) != Some(0) || m.payload == small_header),
        "late joiner got another sequence header"
    );
    let late_frames: Vec<&Bytes> =
        late_videos.iter().filter(|m| avc_packet_type(m) == Some(1)).map(|m| &m.payload).collect();
    assert_eq!(
        late_frames.first().copied(),
        Some(&small_first_key),
        "late joiner starts at the new keyframe"
    );
    let small_frames: Vec<&Bytes> =
        small.iter().filter(|t| avc_packet_type(t) == Some(1)).map(|t| &t.payload).collect();
    assert_eq!(
        late_frames[..],
        small_frames[..late_frames.len()],
        "late joiner gets the second part's frames, in order, from its first keyframe"
    );

    let probe = ffprobe_streams(&url, secs(10)).expect("ffprobe of the stream after the change");
    assert_eq!(
        phase.load(Ordering::SeqCst),
        1,
        "the probe finished while the second part was still being published"
    );
    let videos = probe_streams(&probe, "video");
    assert_eq!(videos.len(), 1, "late joiner's streams: {probe}");
    assert_eq!(videos[0]["width"], 640, "late joiner: {probe}");
    assert_eq!(videos[0]["height"], 360, "late joiner: {probe}");

    sender.join().expect("sender thread").expect("publishing both parts");

    // The raw player connected throughout got every frame in order, each under the right
    // sequence header, with timestamps that never go back.
    let received = raw_player.join().expect("raw player thread").expect("raw player");
    let sent: Vec<MediaMessage> =
        big.iter().chain(small.iter()).filter(|t| t.kind == MediaKind::Video).cloned().collect();
    let got = frames_with_headers(&received);
    let want = frames_with_headers(&sent);
    assert_eq!(got.len(), want.len(), "raw player got {} of {} frames", got.len(), want.len());
    if let Some(i) = (0..got.len()).find(|&i| got[i] != want[i]) {
        panic!(
            "raw player: frame {i} differs from the one sent (payload or sequence header in force)"
        );
    }
    assert!(
        received.windows(2).all(|w| w[1].timestamp >= w[0].timestamp),
        "video timestamps went backwards at the player"
    );

    // ffmpeg ends on NetStream.Play.UnpublishNotify and flushes its decoder.
    let result = player.finish(secs(8), secs(20));
    eprintln!(
        "player decoded {} frames (expected {expected_frames}), status {:?}",
        result.frames, result.status
    );
    assert!(result.errors.is_empty(), "player reported errors: {:#?}", result.errors);
    assert_eq!(
        result.frames, expected_frames,
        "player decoded {} of the {expected_frames} video frames of both parts",
        result.frames
    );
}
