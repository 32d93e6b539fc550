//! Tests for video tag header parsing and `video_info`.

use super::*;
use crate::codec::test_samples::*;

fn parse(b: &[u8]) -> Result<VideoTag, CodecError> {
    parse_video_tag(&Bytes::copy_from_slice(b))
}

#[test]
fn legacy_avc_sequence_header_from_ffmpeg() {
    let t = parse_video_tag(&tag(&[0x17, 0, 0, 0, 0], &X264_720P30)).unwrap();
    assert_eq!((t.codec, t.frame_type), (VideoCodec::Avc, FrameType::Key));
    assert!(t.is_sequence_header());
    assert!(!t.is_keyframe());
    assert_eq!(&t.body[..], &X264_720P30[..]);
    let info = video_info(t.codec, &t.body).unwrap();
    assert_eq!(
        info,
        VideoInfo {
            codec: VideoCodec::Avc,
            width: Some(1280),
            height: Some(720),
            profile: Some("High".into()),
            level: Some(3.1),
            fps: Some(30.0),
        }
    );
}

#[test]
fn legacy_avc_frames_and_composition_time() {
    let t = parse(&[0x17, 1, 0, 0, 0x43, 0, 0, 0, 2, 0x65, 0x88]).unwrap();
    assert_eq!(t.packet, VideoPacket::CodedFrames { composition_time: 0x43 });
    assert!(t.is_keyframe());
    assert_eq!(&t.body[..], &[0, 0, 0, 2, 0x65, 0x88]);
    // Negative SI24 composition time.
    let t = parse(&[0x27, 1, 0xFF, 0xFF, 0xFE]).unwrap();
    assert_eq!(
        (t.frame_type, t.packet.clone()),
        (FrameType::Inter, VideoPacket::CodedFrames { composition_time: -2 })
    );
    assert!(!parse(&[0x27, 1, 0, 0, 0]).unwrap().is_keyframe());
    assert_eq!(parse(&[0x17, 2, 0, 0, 0]).unwrap().packet, VideoPacket::SequenceEnd);
    assert_eq!(parse(&[0x17, 9, 0, 0, 0]).unwrap().packet, VideoPacket::Other(9));
    assert_eq!(parse(&[0x3C, 1, 0, 0, 0]).unwrap().codec, VideoCodec::Hevc);
    for n in 0..5 {
        assert!(
            matches!(parse(&[0x17, 1, 0, 0, 0][..n]), Err(CodecError::Short { .. })),
            "cut {n}"
        );
    }
}

#[test]
fn legacy_other_codecs_and_commands() {
    let t = parse(&[0x22, 0xAA, 0xBB]).unwrap(); // Sorenson H.263 inter frame
    assert_eq!(t.codec, VideoCodec::Other(2));
    assert_eq!(t.codec.name(), "unknown");
    assert_eq!(
        (t.packet, &t.body[..]),
        (VideoPacket::CodedFrames { composition_time: 0 }, &[0xAA, 0xBB][..])
    );
    let t = parse(&[0x57, 0x01]).unwrap(); // AVC command frame: end of seek
    assert_eq!((t.frame_type, t.packet.clone()), (FrameType::Command, VideoPacket::Other(1)));
    assert!(!t.is_keyframe());
    assert_eq!(parse(&[0x07, 0, 0, 0, 0]), Err(CodecError::Malformed("video frame type")));
    assert_eq!(parse(&[0x67, 0, 0, 0, 0]), Err(CodecError::Malformed("video frame type")));
}

#[test]
fn enhanced_hevc_from_ffmpeg() {
    // Sequence start: 0x90 = ExHeader | Key | SequenceStart, FourCC hvc1.
    let t = parse_video_tag(&tag(b"\x90hvc1", &X265_720P)).unwrap();
    assert_eq!(
        (t.codec, t.frame_type, t.packet.clone()),
        (VideoCodec::Hevc, FrameType::Key, VideoPacket::SequenceStart)
    );
    let info = video_info(t.codec, &t.body).unwrap();
    assert_eq!((info.width, info.height), (Some(1280), Some(720)));
    assert_eq!(info.profile.as_deref(), Some("Main"));
    assert_eq!(info.level, Some(3.1));
    assert_eq!(t.codec.name(), "h265");
    // Coded frames with SI24 composition time (0x91, ffmpeg's first frame: cts 0x43).
    let t = parse(b"\x91hvc1\x00\x00\x43\x00\x00\x51\xb5").unwrap();
    assert_eq!(t.packet, VideoPacket::CodedFrames { composition_time: 0x43 });
    assert!(t.is_keyframe());
    assert_eq!(&t.body[..], b"\x00\x00\x51\xb5");
    // CodedFramesX: no composition time.
    let t = parse(b"\xA3hvc1\x00\x00\x00\x05").unwrap();
    assert_eq!(
        (t.frame_type, t.packet.clone()),
        (FrameType::Inter, VideoPacket::CodedFrames { composition_time: 0 })
    );
    assert_eq!(&t.body[..], b"\x00\x00\x00\x05");
    // ffmpeg's colorInfo metadata packet: 0xD4 = ExHeader | Command | Metadata, with FourCC.
    let t = parse(b"\xd4hvc1\x02\x00\x09colorInfo").unwrap();
    assert_eq!(
        (t.codec, t.frame_type, t.packet),
        (VideoCodec::Hevc, FrameType::Command, VideoPacket::Metadata)
    );
    assert_eq!(parse(b"\x92hvc1").unwrap().packet, VideoPacket::SequenceEnd);
    assert_eq!(parse(b"\x95av01\x80").unwrap().packet, VideoPacket::Other(5));
}

#[test]
fn enhanced_av1_and_vp9_from_ffmpeg() {
    let t = parse_video_tag(&tag(b"\x90av01", &SVT_640X360)).unwrap();
    assert_eq!((t.codec, t.packet.clone()), (VideoCodec::Av1, VideoPacket::SequenceStart));
    let info = video_info(t.codec, &t.body).unwrap();
    assert_eq!(
        (info.width, info.height, info.profile.as_deref()),
        (Some(640), Some(360), Some("Main"))
    );
    assert_eq!(info.level, Some(2.1));
    // AV1 coded frames carry no composition time.
    let t = parse(b"\x91av01\x12\x00\x0a").unwrap();
    assert_eq!(
        (t.packet, &t.body[..]),
        (VideoPacket::CodedFrames { composition_time: 0 }, &b"\x12\x00\x0a"[..])
    );

    let t = parse_video_tag(&tag(b"\x90vp09", &VPX_VPCC)).unwrap();
    assert_eq!(t.codec.name(), "vp9");
    let info = video_info(t.codec, &t.body).unwrap();
    assert_eq!(
        (info.width, info.profile.as_deref(), info.level),
        (None, Some("Profile 0"), Some(2.1))
    );
    // Without the FullBox prefix.
    assert_eq!(video_info(VideoCodec::Vp9, &VPX_VPCC[4..]).unwrap().level, Some(2.1));
    assert!(video_info(VideoCodec::Vp9, &[0]).is_err());
    assert_eq!(
        video_info(VideoCodec::Other(2), &[1, 2, 3]),
        Err(CodecError::Unsupported("video codec without a known configuration record"))
    );
}

#[test]
fn enhanced_mod_ex_multitrack_and_commands() {
    // ModEx: 3 bytes of TimestampOffsetNano data, then (type 0 << 4 | CodedFrames).
    let t = parse(b"\x97\x02\x00\x01\x02\x01avc1\x00\x00\x10\xAB").unwrap();
    assert_eq!(
        (t.codec, t.packet),
        (VideoCodec::Avc, VideoPacket::CodedFrames { composition_time: 16 })
    );
    assert_eq!(&t.body[..], b"\xAB");
    // Chained ModEx.
    let t = parse(b"\x97\x00\x00\x07\x00\x00\x00vp09").unwrap();
    assert_eq!((t.codec, t.packet), (VideoCodec::Vp9, VideoPacket::SequenceStart));
    // Multitrack: OneTrack (0) with inner CodedFrames, FourCC, then track data.
    let t = parse(b"\x96\x01hvc1\x00\x11").unwrap();
    assert_eq!(
        (t.codec, t.packet, &t.body[..]),
        (VideoCodec::Hevc, VideoPacket::Multitrack, &b"\x00\x11"[..])
    );
    let t = parse(b"\x96\x21\x00avc1").unwrap();
    assert_eq!((t.codec, t.packet), (VideoCodec::Other(0), VideoPacket::Multitrack));
    // Command frame with packet type other than Metadata: command byte, no FourCC.
    let t = parse(b"\xD1\x00").unwrap();
    assert_eq!(
        (t.codec, t.frame_type, t.packet),
        (VideoCodec::Other(0), FrameType::Command, VideoPacket::Other(0))
    );
    // Unknown FourCC.
    assert_eq!(parse(b"\x91xyz1").unwrap().codec, VideoCodec::Other(u32::from_be_bytes(*b"xyz1")));
    // Truncations.
    for b in [
        &b"\x91hvc"[..],
        b"\x91hvc1\x00",
        b"\x97\x05\x00",
        b"\x97",
        b"\x96",
        b"\x96\x01hv",
        b"\xD1",
        b"\x80avc1",
    ] {
        assert!(parse(b).is_err(), "{b:?}");
    }
}

#[test]
fn names_and_fourccs() {
    for (c, n) in [
        (VideoCodec::Avc, "h264"),
        (VideoCodec::Hevc, "h265"),
        (VideoCodec::Av1, "av1"),
        (VideoCodec::Vp9, "vp9"),
    ] {
        assert_eq!(c.name(), n);
        assert_eq!(VideoCodec::from_fourcc(c.fourcc().unwrap()), c);
    }
    assert_eq!(VideoCodec::Other(5).fourcc(), None);
}

#[test]
fn video_info_with_broken_sps_keeps_record_fields() {
    let mut rec = X264_720P30.to_vec();
    rec[12] = 0xFF; // corrupt the SPS body after profile/level
    rec[13] = 0xFF;
    rec[14] = 0xFF;
    let info = video_info(VideoCodec::Avc, &rec).unwrap();
    assert_eq!((info.width, info.profile.as_deref(), info.level), (None, Some("High"), Some(3.1)));
    assert!(video_info(VideoCodec::Avc, &X264_720P30[..10]).is_err());
    assert!(video_info(VideoCodec::Hevc, &X265_720P[..30]).is_err());
}
