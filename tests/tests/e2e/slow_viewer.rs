//! A viewer that stops reading must not slow anyone else down: the server skips frames for it
//! (counted in sluice_skipped_frames_total) and resumes it at a keyframe.

use std::net::TcpStream;
use std::time::{Duration, Instant};

use sluice_media::frame::MediaKind;
use sluice_media::rtmp::client::ClientMode;
use sluice_tests::process::wait_for;
use sluice_tests::rtmp::{client_config, video_header, RtmpClient};
use sluice_tests::{h264_aac, secs, Origin, Player, Publisher};
use socket2::{Domain, Socket, Type};

const MAX_LAG: usize = 1_000_000;

/// How long the slow viewer stops reading: long enough for the backlog to exceed what the
/// kernel buffers on loopback (the server's socket send buffer autotunes up to the `tcp_wmem`
/// maximum, 4 MiB by default: about 11 s of the 2.8 Mbit/s fixture) plus --viewer-max-lag, plus
/// a margin. Only then does the server's own queue fall behind.
fn stall_duration() -> Duration {
    let wmem_max = std::fs::read_to_string("/proc/sys/net/ipv4/tcp_wmem")
        .ok()
        .and_then(|s| s.split_whitespace().nth(2)?.parse::<f64>().ok())
        .unwrap_or(4_194_304.0);
    let fixture = h264_aac();
    let file_len = std::fs::metadata(&fixture.path).unwrap().len() as f64;
    let bytes_per_s = file_len / fixture.duration_s;
    let secs = (wmem_max + MAX_LAG as f64 + 1_500_000.0) / bytes_per_s;
    Duration::from_secs_f64(secs.clamp(8.0, 45.0))
}

#[test]
fn stalled_viewer_is_skipped_and_resumes_on_a_keyframe() {
    let lag = MAX_LAG.to_string();
    let origin = Origin::start(&["--viewer-max-lag", &lag]);
    let stall = stall_duration();
    let url = origin.rtmp_url("live", "slow");
    let _publisher = Publisher::start_looped(&url, &h264_aac().path);
    wait_for(secs(10), || origin.stream_info("live", "slow")).expect("stream is live");

    let mut fast = Player::start(&url);
    assert!(fast.wait_frames(30, secs(20)) >= 30, "fast player started");

    // The slow player: a tiny receive buffer so the server sees back-pressure quickly.
    let socket = Socket::new(Domain::IPV4, Type::STREAM, None).unwrap();
    socket.set_recv_buffer_size(8 * 1024).unwrap();
    socket.connect_timeout(&origin.rtmp.into(), secs(5)).unwrap();
    let tcp: TcpStream = socket.into();
    let mut slow =
        RtmpClient::with_stream(tcp, client_config(origin.rtmp, "live", "slow", ClientMode::Play))
            .unwrap();
    let mut seen = Vec::new();
    let mut got = 0;
    let deadline = Instant::now() + secs(15);
    while got < 30 && Instant::now() < deadline {
        if let Some(m) = slow.next_media(secs(1), &mut seen).unwrap() {
            got += (m.kind == MediaKind::Video) as usize;
        }
    }
    assert!(got >= 30, "slow player got {got} video messages before stalling ({seen:?})");

    // Stall: read nothing for `stall` while the fast player keeps decoding at the publish rate.
    let skipped_before = origin.metrics().value("sluice_skipped_frames_total", &[]);
    let fast_before = fast.frames();
    std::thread::sleep(stall);
    let fast_delta = fast.frames() - fast_before;
    let expected = stall.as_secs_f64() * 30.0;
    assert!(
        fast_delta as f64 >= expected * 0.85,
        "fast player decoded {fast_delta} frames during the {stall:?} stall, publish rate gives {expected}"
    );
    // Resume: every jump in the video timeline (frames the server skipped) lands on a keyframe.
    let mut last_ts: Option<u32> = None;
    let mut gaps = Vec::new();
    let mut frames = 0;
    let deadline = Instant::now() + secs(6);
    while Instant::now() < deadline {
        let Some(m) = slow.next_media(secs(1), &mut seen).expect("slow player still connected")
        else {
            continue;
        };
        if m.kind != MediaKind::Video {
            continue;
        }
        let h = video_header(&m.payload).expect("video header");
        if h.sequence_header {
            continue;
        }
        frames += 1;
        if let Some(prev) = last_ts {
            if m.timestamp.wrapping_sub(prev) > 200 && m.timestamp > prev {
                gaps.push((prev, m.timestamp, h.keyframe));
            }
        }
        last_ts = Some(m.timestamp);
    }
    assert!(frames > 60, "slow player got only {frames} frames after resuming");
    // The server skips a stalled viewer forward when it can write to it again.
    let skipped = origin.metrics().value("sluice_skipped_frames_total", &[]) - skipped_before;
    assert!(
        skipped > 0.0,
        "sluice_skipped_frames_total did not increase after a viewer stalled for {stall:?} \
         (gaps in its timeline: {gaps:?})"
    );
    assert!(
        !gaps.is_empty(),
        "no skipped span in the slow player's timeline (skipped metric {skipped})"
    );
    for (from, to, keyframe) in &gaps {
        assert!(keyframe, "after skipping {from}..{to} ms the slow player got a non-keyframe");
    }
    assert!(fast.is_running(), "fast player stopped");
}
