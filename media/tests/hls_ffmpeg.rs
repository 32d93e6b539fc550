//! Real media: an FLV made by ffmpeg (H.264 with B-frames + AAC) is segmented, written out
//! as init + segments + a VOD-style playlist, and decoded back by ffmpeg/ffprobe.
//! Without ffmpeg (or, for H.265 and Opus, the imageio-ffmpeg binary) the tests fail; see
//! `deps` for the developers' opt-out.

mod deps;

use std::path::{Path, PathBuf};
use std::process::Command;

use sluice_media::flv::FlvReader;
use sluice_media::frame::MediaMessage;
use sluice_media::hls::{HlsConfig, HlsSnapshot, PlaylistOptions, Resource, Segmenter};

use deps::Dep;

fn temp_dir(name: &str) -> PathBuf {
    let dir = std::env::temp_dir().join(format!("sluice-hls-{name}-{}", std::process::id()));
    let _ = std::fs::remove_dir_all(&dir);
    std::fs::create_dir_all(&dir).unwrap();
    dir
}

fn make_flv(dir: &Path, video: &[&str], audio: &[&str]) -> Vec<u8> {
    make_flv_with(Path::new("ffmpeg"), dir, video, audio)
}

fn make_flv_with(ffmpeg: &Path, dir: &Path, video: &[&str], audio: &[&str]) -> Vec<u8> {
    let out = dir.join("in.flv");
    let mut cmd = Command::new(ffmpeg);
    cmd.args(["-hide_banner", "-loglevel", "error", "-y"]);
    cmd.args(["-f", "lavfi", "-i", "testsrc2=size=1280x720:rate=30"]);
    cmd.args(["-f", "lavfi", "-i", "sine=frequency=440:sample_rate=48000"]);
    cmd.args(["-t", "6"]);
    cmd.args(video).args(audio).args(["-f", "flv"]).arg(&out);
    let st = cmd.status().unwrap();
    assert!(st.success(), "ffmpeg failed to make the FLV");
    std::fs::read(out).unwrap()
}

fn segment_flv(flv: &[u8], config: HlsConfig) -> (Segmenter, HlsSnapshot) {
    let mut reader = FlvReader::new(16 << 20);
    reader.push(flv);
    let mut seg = Segmenter::new(config);
    while let Some(tag) = reader.next_tag().unwrap() {
        let msg = MediaMessage { kind: tag.kind, timestamp: tag.timestamp, payload: tag.payload };
        seg.push(&msg).unwrap();
    }
    seg.end_of_stream();
    let snap = seg.snapshot();
    (seg, snap)
}

/// Write every init/segment and the playlist; return the playlist path.
fn write_out(dir: &Path, snap: &HlsSnapshot) -> PathBuf {
    for init in snap.inits() {
        std::fs::write(dir.join(Resource::Init(init.id).to_string()), &init.bytes).unwrap();
    }
    for s in snap.segments() {
        std::fs::write(dir.join(Resource::Segment(s.msn).to_string()), s.to_bytes()).unwrap();
        for p in &s.parts {
            let name = Resource::Part { msn: p.msn, index: p.index }.to_string();
            std::fs::write(dir.join(name), &p.bytes).unwrap();
        }
    }
    let playlist =
        snap.media_playlist(&PlaylistOptions { end_list: true, ..PlaylistOptions::default() });
    let path = dir.join("index.m3u8");
    std::fs::write(&path, playlist).unwrap();
    path
}

fn ffprobe(args: &[&str], input: &Path) -> String {
    let out = Command::new("ffprobe").args(["-v", "error"]).args(args).arg(input).output().unwrap();
    assert!(
        out.status.success() && out.stderr.is_empty(),
        "ffprobe {input:?}: {}",
        String::from_utf8_lossy(&out.stderr)
    );
    String::from_utf8(out.stdout).unwrap()
}

/// Decode `input` fully; return (video frames, audio frames) and assert no error output.
fn decode(input: &Path) -> (u64, u64) {
    let out = Command::new("ffmpeg")
        .args(["-hide_banner", "-nostats", "-v", "error", "-allowed_extensions", "ALL"])
        .args(["-i"])
        .arg(input)
        .args(["-f", "null", "-"])
        .output()
        .unwrap();
    let err = String::from_utf8_lossy(&out.stderr);
    assert!(out.status.success() && err.trim().is_empty(), "ffmpeg decode errors: {err}");
    let count = |stream: &str| {
        let o = Command::new("ffprobe")
            .args(["-v", "error", "-count_frames", "-select_streams", stream])
            .args(["-show_entries", "stream=nb_read_frames", "-of", "csv=p=0"])
            .arg(input)
            .output()
            .unwrap();
        // HLS input lists each stream twice (program and stream sections): take the first.
        String::from_utf8_lossy(&o.stdout)
            .split_whitespace()
            .next()
            .and_then(|n| n.parse::<u64>().ok())
            .unwrap_or(0)
    };
    (count("v:0"), count("a:0"))
}

#[test]
fn h264_aac_segments_decode_with_ffmpeg() {
    let Some(_) = Dep::Ffmpeg.require("h264_aac_segments_decode_with_ffmpeg") else { return };
    let dir = temp_dir("avc");
    let flv = make_flv(
        &dir,
        &["-c:v", "libx264", "-preset", "veryfast", "-g", "60", "-bf", "2", "-pix_fmt", "yuv420p"],
        &["-c:a", "aac", "-b:a", "128k"],
    );
    let config = HlsConfig { stream_epoch_ms: Some(1_700_000_000_000), ..HlsConfig::default() };
    let (_, snap) = segment_flv(&flv, config);
    // 6 s with a keyframe every 2 s: three 2 s segments of four 0.5 s parts.
    let durations: Vec<u64> = snap.segments().iter().map(|s| s.duration).collect();
    assert_eq!(durations, vec![180_000, 180_000, 180_000], "segment durations");
    for s in snap.segments() {
        assert_eq!(s.parts.len(), 4, "parts of segment {}", s.msn);
        assert!(s.parts.iter().all(|p| p.duration <= 45_000));
        assert!(s.parts[0].independent);
    }
    let playlist = write_out(&dir, &snap);
    let text = std::fs::read_to_string(&playlist).unwrap();
    assert!(text.contains("#EXT-X-TARGETDURATION:2\n"), "{text}");
    assert!(text.contains("#EXT-X-PROGRAM-DATE-TIME:2023-11-14T22:13:20.000Z\n"), "{text}");

    let (v, a) = decode(&playlist);
    assert_eq!(v, 180, "video frames decoded from the playlist");
    // 6 s of 48 kHz AAC: 281.25 frames of 1024 samples, plus the encoder's priming frame,
    // rounded up: 283, every one decoded back from the segments.
    assert_eq!(a, 283, "audio frames decoded from the playlist");
    let streams =
        ffprobe(&["-show_entries", "stream=codec_name,width,height", "-of", "csv=p=0"], &playlist);
    assert!(streams.contains("h264,1280,720"), "{streams}");
    assert!(streams.contains("aac"), "{streams}");

    // The init segment followed by one media segment is a valid MP4 on its own.
    let mut one = snap.inits()[0].bytes.to_vec();
    one.extend_from_slice(&snap.segments()[1].to_bytes());
    let single = dir.join("single.mp4");
    std::fs::write(&single, one).unwrap();
    let frames = ffprobe(
        &[
            "-count_frames",
            "-select_streams",
            "v:0",
            "-show_entries",
            "stream=nb_read_frames",
            "-of",
            "csv=p=0",
        ],
        &single,
    );
    assert_eq!(frames.trim(), "60");
    // B-frames survive: presentation order differs from decode order somewhere.
    let pts = ffprobe(
        &["-select_streams", "v:0", "-show_entries", "packet=pts,dts", "-of", "csv=p=0"],
        &single,
    );
    assert!(pts.lines().any(|l| {
        let mut it = l.split(',');
        it.next() != it.next()
    }));
    // And one part alone after the init.
    let mut part = snap.inits()[0].bytes.to_vec();
    part.extend_from_slice(&snap.segments()[2].parts[0].bytes);
    let part_path = dir.join("part.mp4");
    std::fs::write(&part_path, part).unwrap();
    ffprobe(&["-show_entries", "stream=codec_name"], &part_path);
    let _ = std::fs::remove_dir_all(&dir);
}

#[test]
fn hevc_and_audio_only_decode_with_ffmpeg() {
    let Some(_) = Dep::Ffmpeg.require("hevc_and_audio_only_decode_with_ffmpeg") else { return };
    // Debian 12's ffmpeg 5.1 cannot write H.265 in FLV; a newer one (the imageio-ffmpeg
    // PyPI package, used by the e2e tests too) writes Enhanced FLV (`hvc1`).
    let Some(newer) = Dep::HevcFfmpeg
        .require("the H.265 and Opus parts of hevc_and_audio_only_decode_with_ffmpeg")
    else {
        return audio_only_decodes();
    };
    let dir = temp_dir("hevc");
    let flv = make_flv_with(
        &newer,
        &dir,
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
        &["-c:a", "aac"],
    );
    let (_, snap) = segment_flv(&flv, HlsConfig::default());
    assert!(
        snap.current_init().unwrap().codecs.starts_with("hvc1.1.6.L"),
        "{}",
        snap.current_init().unwrap().codecs
    );
    let playlist = write_out(&dir, &snap);
    let (v, _) = decode(&playlist);
    assert_eq!(v, 180);
    let _ = std::fs::remove_dir_all(&dir);

    // Opus (Enhanced FLV audio) with H.264.
    let dir = temp_dir("opus");
    let flv = make_flv_with(
        &newer,
        &dir,
        &["-c:v", "libx264", "-preset", "veryfast", "-g", "60"],
        &["-c:a", "libopus", "-b:a", "96k"],
    );
    let (_, snap) = segment_flv(&flv, HlsConfig::default());
    assert_eq!(snap.current_init().unwrap().codecs, "avc1.64001f,opus");
    let playlist = write_out(&dir, &snap);
    let (v, a) = decode(&playlist);
    assert_eq!(v, 180);
    // 6 s of 20 ms packets = 300, plus the one that carries the encoder's pre-skip.
    assert_eq!(a, 301, "opus frames decoded from the playlist");
    let _ = std::fs::remove_dir_all(&dir);
    audio_only_decodes();
}

/// Audio-only: AAC without video, segments cut on duration.
fn audio_only_decodes() {
    let dir2 = temp_dir("aac");
    let flv = make_flv(&dir2, &["-vn"], &["-c:a", "aac"]);
    let (_, snap) = segment_flv(&flv, HlsConfig::default());
    // 6 s cut on duration (no keyframes to cut on): three full 2 s segments and the rest.
    assert_eq!(snap.segments().len(), 4, "audio-only segments");
    for s in snap.segments() {
        assert!(s.parts.iter().all(|p| p.duration <= 45_000 && p.independent));
    }
    let playlist = write_out(&dir2, &snap);
    let (v, a) = decode(&playlist);
    assert_eq!(v, 0);
    assert_eq!(a, 283, "audio frames decoded (as with video: 6 s of AAC and a priming frame)");
    let _ = std::fs::remove_dir_all(&dir2);
}
