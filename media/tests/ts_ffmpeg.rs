//! Real media through the TS path: an FLV made by ffmpeg (H.264 with B-frames + AAC, and
//! H.265 + AAC) is segmented to CMAF, each segment remultiplexed to MPEG-TS, and the TS
//! segments and a TS playlist are checked by our reader and decoded by ffmpeg/ffprobe.
//! Without ffmpeg (or, for H.265, the imageio-ffmpeg binary) the tests fail; see `deps` for
//! the developers' opt-out.

mod deps;

use std::path::{Path, PathBuf};
use std::process::Command;

use sluice_media::flv::FlvReader;
use sluice_media::frame::MediaMessage;
use sluice_media::hls::{HlsConfig, HlsSnapshot, Segmenter};
use sluice_media::ts::reader::read_ts;
use sluice_media::ts::{remux_segment, render_ts_playlist, ts_segment_name, AUDIO_PID, VIDEO_PID};

use deps::Dep;

fn temp_dir(name: &str) -> PathBuf {
    let dir = std::env::temp_dir().join(format!("sluice-ts-{name}-{}", std::process::id()));
    let _ = std::fs::remove_dir_all(&dir);
    std::fs::create_dir_all(&dir).unwrap();
    dir
}

fn make_flv(ffmpeg: &Path, dir: &Path, video: &[&str]) -> Vec<u8> {
    let out = dir.join("in.flv");
    let st = Command::new(ffmpeg)
        .args(["-hide_banner", "-loglevel", "error", "-y"])
        .args(["-f", "lavfi", "-i", "testsrc2=size=640x360:rate=30"])
        .args(["-f", "lavfi", "-i", "sine=frequency=440:sample_rate=48000"])
        .args(["-t", "6"])
        .args(video)
        .args(["-c:a", "aac", "-b:a", "96k", "-f", "flv"])
        .arg(&out)
        .status()
        .unwrap();
    assert!(st.success(), "ffmpeg failed to make the FLV");
    std::fs::read(out).unwrap()
}

fn segment_flv(flv: &[u8]) -> HlsSnapshot {
    let mut reader = FlvReader::new(16 << 20);
    reader.push(flv);
    let mut seg = Segmenter::new(HlsConfig {
        stream_epoch_ms: Some(1_700_000_000_000),
        ..HlsConfig::default()
    });
    while let Some(tag) = reader.next_tag().unwrap() {
        let msg = MediaMessage { kind: tag.kind, timestamp: tag.timestamp, payload: tag.payload };
        seg.push(&msg).unwrap();
    }
    seg.end_of_stream();
    seg.snapshot()
}

/// Remux every segment, check its structure, write it and a VOD-style TS playlist.
fn write_ts(dir: &Path, snap: &HlsSnapshot, video_type: u8) -> PathBuf {
    let mut last_cc: Option<Vec<(u16, u8)>> = None;
    for s in snap.segments() {
        let init = snap.init(s.init_id).unwrap();
        let ts = remux_segment(init, s).unwrap();
        assert_eq!(ts.dropped_frames, 0);
        let c = read_ts(&ts.bytes).unwrap();
        assert_eq!(c.cc_errors, 0);
        assert_eq!(c.streams, vec![(video_type, VIDEO_PID), (0x0F, AUDIO_PID)]);
        // Continuity runs on from the previous segment for every PID.
        if let Some(prev) = &last_cc {
            for (pid, first, _) in &c.counters {
                let (_, before) = prev.iter().find(|(p, _)| p == pid).unwrap();
                assert_eq!(*first, (before + 1) & 15, "pid {pid:#x} of segment {}", s.msn);
            }
        }
        last_cc = Some(c.counters.iter().map(|(p, _, l)| (*p, *l)).collect());
        let video: Vec<_> = c.pes.iter().filter(|p| p.pid == VIDEO_PID).collect();
        assert!(video[0].random_access, "segment {} starts with a keyframe", s.msn);
        assert_eq!(video.len() as u32, s.video_frames);
        std::fs::write(dir.join(ts_segment_name(s.msn)), &ts.bytes).unwrap();
    }
    let mut text = render_ts_playlist(snap, "").unwrap();
    text.push_str("#EXT-X-ENDLIST\n");
    let path = dir.join("ts.m3u8");
    std::fs::write(&path, text).unwrap();
    path
}

fn probe(args: &[&str], input: &Path) -> String {
    let out = Command::new("ffprobe").args(["-v", "error"]).args(args).arg(input).output().unwrap();
    assert!(
        out.status.success() && out.stderr.is_empty(),
        "ffprobe {input:?}: {}",
        String::from_utf8_lossy(&out.stderr)
    );
    String::from_utf8(out.stdout).unwrap()
}

/// Decode fully with error-level logging; assert nothing is logged; return the video
/// frame count.
fn decode(input: &Path) -> u64 {
    let out = Command::new("ffmpeg")
        .args(["-hide_banner", "-nostats", "-v", "error", "-i"])
        .arg(input)
        .args(["-f", "null", "-"])
        .output()
        .unwrap();
    let err = String::from_utf8_lossy(&out.stderr);
    assert!(out.status.success() && err.trim().is_empty(), "ffmpeg decode errors: {err}");
    let frames = probe(
        &[
            "-count_frames",
            "-select_streams",
            "v:0",
            "-show_entries",
            "stream=nb_read_frames",
            "-of",
            "csv=p=0",
        ],
        input,
    );
    frames.split_whitespace().next().unwrap().parse().unwrap()
}

fn run(name: &str, ffmpeg: &Path, video: &[&str], video_type: u8, codec: &str) {
    let dir = temp_dir(name);
    let snap = segment_flv(&make_flv(ffmpeg, &dir, video));
    assert_eq!(snap.segments().len(), 3);
    let playlist = write_ts(&dir, &snap, video_type);
    let first = dir.join(ts_segment_name(snap.segments()[0].msn));
    let streams =
        probe(&["-show_entries", "stream=codec_name,width,height", "-of", "csv=p=0"], &first);
    assert!(streams.contains(&format!("{codec},640,360")), "{streams}");
    assert!(streams.contains("aac"), "{streams}");
    // Open GOPs (x265) put the keyframe's leading pictures in the next segment: count what
    // the segmenter put in the first one.
    let frames = u64::from(snap.segments()[0].video_frames);
    assert!((55..=60).contains(&frames), "{frames}");
    assert_eq!(decode(&first), frames, "frames of the first segment alone");
    assert_eq!(decode(&playlist), 180, "frames of the whole playlist");
    let _ = std::fs::remove_dir_all(&dir);
}

#[test]
fn h264_with_b_frames_decodes() {
    let Some(ffmpeg) = Dep::Ffmpeg.require("h264_with_b_frames_decodes") else { return };
    run(
        "avc",
        &ffmpeg,
        &["-c:v", "libx264", "-preset", "veryfast", "-g", "60", "-bf", "2", "-pix_fmt", "yuv420p"],
        0x1B,
        "h264",
    );
}

#[test]
fn h265_decodes() {
    // ffprobe (with the system ffmpeg) checks what the newer ffmpeg (the imageio-ffmpeg PyPI
    // package, used by the e2e tests too) made: Debian 12's ffmpeg 5.1 cannot write H.265 in
    // FLV.
    let Some(_) = Dep::Ffmpeg.require("h265_decodes") else { return };
    let Some(newer) = Dep::HevcFfmpeg.require("h265_decodes") else { return };
    run(
        "hevc",
        &newer,
        &[
            "-c:v",
            "libx265",
            "-preset",
            "ultrafast",
            "-x265-params",
            "keyint=60:min-keyint=60:bframes=2:log-level=error",
            "-pix_fmt",
            "yuv420p",
        ],
        0x24,
        "hevc",
    );
}
