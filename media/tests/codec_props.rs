//! Property tests: the codec and FLV parsers never panic on arbitrary or mutated input, and the
//! FLV reader reads back exactly what the tag framing writes. Plus one end-to-end check on an
//! FLV produced by the system ffmpeg (which fails without ffmpeg; see `deps` for the
//! developers' opt-out).

mod deps;

use bytes::Bytes;
use proptest::prelude::*;
use sluice_media::codec::{
    parse_audio_tag, parse_video_tag, video_info, AudioSpecificConfig, AvcDecoderConfig,
    HevcDecoderConfig, SpsInfo, VideoCodec, VideoPacket,
};
use sluice_media::flv::{file_header, tag_header, FlvReader, FlvTag, TAG_HEADER_LEN};
use sluice_media::frame::MediaKind;

/// AVCDecoderConfigurationRecord of an x264 1280x720 High profile encode.
const X264_720P30: [u8; 47] = [
    0x01, 0x64, 0x00, 0x1f, 0xff, 0xe1, 0x00, 0x1a, 0x67, 0x64, 0x00, 0x1f, 0xac, 0xd9, 0x40, 0x50,
    0x05, 0xbb, 0x01, 0x10, 0x00, 0x00, 0x03, 0x00, 0x10, 0x00, 0x00, 0x03, 0x03, 0xc0, 0xf1, 0x83,
    0x19, 0x60, 0x01, 0x00, 0x06, 0x68, 0xeb, 0xe3, 0xcb, 0x22, 0xc0, 0xfd, 0xf8, 0xf8, 0x00,
];

/// HEVCDecoderConfigurationRecord of an x265 1280x720 Main profile encode.
const X265_720P: [u8; 112] = [
    0x01, 0x01, 0x60, 0x00, 0x00, 0x00, 0x90, 0x00, 0x00, 0x00, 0x00, 0x00, 0x5d, 0xf0, 0x00, 0xfc,
    0xfd, 0xf8, 0xf8, 0x00, 0x00, 0x0f, 0x03, 0x20, 0x00, 0x01, 0x00, 0x18, 0x40, 0x01, 0x0c, 0x01,
    0xff, 0xff, 0x01, 0x60, 0x00, 0x00, 0x03, 0x00, 0x90, 0x00, 0x00, 0x03, 0x00, 0x00, 0x03, 0x00,
    0x5d, 0x95, 0x98, 0x09, 0x21, 0x00, 0x01, 0x00, 0x2b, 0x42, 0x01, 0x01, 0x01, 0x60, 0x00, 0x00,
    0x03, 0x00, 0x90, 0x00, 0x00, 0x03, 0x00, 0x00, 0x03, 0x00, 0x5d, 0xa0, 0x02, 0x80, 0x80, 0x2d,
    0x16, 0x59, 0x59, 0xa4, 0x93, 0x2b, 0xc0, 0x5a, 0x02, 0x00, 0x00, 0x03, 0x00, 0x02, 0x00, 0x00,
    0x03, 0x00, 0x3c, 0x10, 0x22, 0x00, 0x01, 0x00, 0x07, 0x44, 0x01, 0xc1, 0x72, 0xb4, 0x62, 0x40,
];

/// `data` with the bytes at `edits` positions (modulo its length) replaced.
fn mutate(data: &[u8], edits: &[(usize, u8)]) -> Vec<u8> {
    let mut v = data.to_vec();
    for &(i, b) in edits {
        let n = v.len();
        v[i % n] = b;
    }
    v
}

/// Exercise every parser on one video tag body.
fn video_all(payload: &Bytes) {
    if let Ok(t) = parse_video_tag(payload) {
        let _ = video_info(t.codec, &t.body);
    }
    for codec in [VideoCodec::Avc, VideoCodec::Hevc, VideoCodec::Av1, VideoCodec::Vp9] {
        let _ = video_info(codec, payload);
    }
}

/// Video tag prefixes that reach the deeper parsers.
fn video_prefix() -> impl Strategy<Value = Vec<u8>> {
    prop_oneof![
        Just(vec![0x17, 0, 0, 0, 0]),
        Just(b"\x90hvc1".to_vec()),
        Just(b"\x90avc1".to_vec()),
        Just(b"\x90av01".to_vec()),
        Just(b"\x90vp09".to_vec()),
        Just(vec![0x97]),
        Just(vec![0x96]),
        Just(vec![]),
    ]
}

proptest! {
    #![proptest_config(ProptestConfig { cases: 2000, ..ProptestConfig::default() })]

    #[test]
    fn video_tags_never_panic(prefix in video_prefix(), body in proptest::collection::vec(any::<u8>(), 0..64)) {
        let mut v = prefix;
        v.extend_from_slice(&body);
        video_all(&Bytes::from(v));
    }

    #[test]
    fn audio_tags_never_panic(data in proptest::collection::vec(any::<u8>(), 0..64)) {
        let b = Bytes::from(data);
        if let Ok(t) = parse_audio_tag(&b) {
            let _ = AudioSpecificConfig::parse(&t.body);
        }
        let _ = AudioSpecificConfig::parse(&b);
    }

    #[test]
    fn mutated_avc_records_never_panic(edits in proptest::collection::vec((any::<usize>(), any::<u8>()), 1..6), cut in 0usize..48) {
        let v = mutate(&X264_720P30, &edits);
        let v = &v[..cut.min(v.len())];
        if let Ok(cfg) = AvcDecoderConfig::parse(v) {
            for sps in &cfg.sps {
                let _ = SpsInfo::parse_h264(sps);
            }
        }
        let _ = video_info(VideoCodec::Avc, v);
    }

    #[test]
    fn mutated_hevc_records_never_panic(edits in proptest::collection::vec((any::<usize>(), any::<u8>()), 1..6), cut in 0usize..113) {
        let v = mutate(&X265_720P, &edits);
        let v = &v[..cut.min(v.len())];
        if let Ok(cfg) = HevcDecoderConfig::parse(v) {
            let _ = cfg.dimensions();
        }
        let _ = video_info(VideoCodec::Hevc, v);
    }

    #[test]
    fn flv_reader_never_panics(
        header in any::<bool>(),
        data in proptest::collection::vec(any::<u8>(), 0..512),
        step in 1usize..64,
    ) {
        let mut r = FlvReader::new(256);
        let mut stream = if header { file_header(true, true).to_vec() } else { Vec::new() };
        stream.extend_from_slice(&data);
        for chunk in stream.chunks(step) {
            r.push(chunk);
            while let Ok(Some(tag)) = r.next_tag() {
                prop_assert!(tag.payload.len() <= 256);
                match tag.kind {
                    MediaKind::Video => video_all(&tag.payload),
                    MediaKind::Audio => { let _ = parse_audio_tag(&tag.payload); }
                    MediaKind::Data => {}
                }
            }
        }
    }

    #[test]
    fn flv_framing_round_trips(
        tags in proptest::collection::vec((0u8..3, any::<u32>(), proptest::collection::vec(any::<u8>(), 0..40)), 0..12),
        step in 1usize..50,
    ) {
        let kinds = [MediaKind::Audio, MediaKind::Video, MediaKind::Data];
        let mut stream = file_header(true, true).to_vec();
        let mut expected = Vec::new();
        for (k, ts, payload) in &tags {
            let kind = kinds[*k as usize];
            stream.extend_from_slice(&tag_header(kind, *ts, payload.len()));
            stream.extend_from_slice(payload);
            stream.extend_from_slice(&((TAG_HEADER_LEN + payload.len()) as u32).to_be_bytes());
            expected.push(FlvTag { kind, timestamp: *ts, payload: Bytes::copy_from_slice(payload) });
        }
        let mut r = FlvReader::new(40);
        let mut got = Vec::new();
        for chunk in stream.chunks(step) {
            r.push(chunk);
            while let Some(t) = r.next_tag().unwrap() {
                got.push(t);
            }
        }
        prop_assert_eq!(got, expected);
    }
}

/// Encode one second of 1280x720 H.264 + AAC to FLV with the system ffmpeg and read it back.
#[test]
fn reads_a_real_ffmpeg_flv() {
    let Some(ffmpeg) = deps::Dep::Ffmpeg.require("reads_a_real_ffmpeg_flv") else { return };
    let path = std::env::temp_dir().join(format!("sluice-codec-props-{}.flv", std::process::id()));
    let status = std::process::Command::new(ffmpeg)
        .args([
            "-hide_banner",
            "-loglevel",
            "error",
            "-y",
            "-f",
            "lavfi",
            "-i",
            "testsrc2=size=1280x720:rate=30",
        ])
        .args([
            "-f",
            "lavfi",
            "-i",
            "sine=sample_rate=48000",
            "-t",
            "1",
            "-c:v",
            "libx264",
            "-g",
            "60",
        ])
        .args(["-c:a", "aac", "-ac", "2", "-f", "flv"])
        .arg(&path)
        .status()
        .expect("run ffmpeg");
    assert!(status.success());
    let data = std::fs::read(&path).unwrap();
    let _ = std::fs::remove_file(&path);

    let mut r = FlvReader::new(1 << 20);
    let (mut video, mut audio, mut keyframes, mut ends) = (0, 0, 0, 0);
    let (mut info, mut asc, mut meta) = (None, None, None);
    for chunk in data.chunks(1000) {
        r.push(chunk);
        while let Some(tag) = r.next_tag().unwrap() {
            match tag.kind {
                MediaKind::Video => {
                    video += 1;
                    let t = parse_video_tag(&tag.payload).unwrap();
                    if t.is_sequence_header() {
                        info = Some(video_info(t.codec, &t.body).unwrap());
                    } else if t.is_keyframe() {
                        keyframes += 1;
                    } else if t.packet == VideoPacket::SequenceEnd {
                        ends += 1;
                    }
                    if let VideoPacket::CodedFrames { composition_time } = t.packet {
                        assert!((0..1000).contains(&composition_time));
                    }
                }
                MediaKind::Audio => {
                    audio += 1;
                    let t = parse_audio_tag(&tag.payload).unwrap();
                    if t.is_sequence_header() {
                        asc = Some(AudioSpecificConfig::parse(&t.body).unwrap());
                    }
                }
                MediaKind::Data => {
                    meta = sluice_media::flv::normalize_data_message(
                        &tag.payload,
                        &Default::default(),
                    );
                }
            }
        }
    }
    assert_eq!(video, 32, "sequence header + 30 frames + end of sequence");
    assert_eq!(ends, 1);
    assert_eq!(keyframes, 1);
    // 1 s of 48 kHz AAC: 47 frames of 1024 samples, one priming frame, the sequence header.
    assert_eq!(audio, 49, "AAC sequence header + frames");
    let info = info.expect("AVC sequence header");
    assert_eq!((info.width, info.height, info.fps), (Some(1280), Some(720), Some(30.0)));
    assert_eq!(info.profile.as_deref(), Some("High"));
    let asc = asc.expect("AAC sequence header");
    assert_eq!((asc.object_type, asc.sample_rate, asc.channels), (2, 48000, 2));
    let (_, meta) = meta.expect("onMetaData");
    assert_eq!((meta.width, meta.height), (Some(1280.0), Some(720.0)));
    assert_eq!(meta.video_codec_id.as_deref(), Some("7"));
    assert_eq!(meta.audio_codec_id.as_deref(), Some("10"));
}
