//! Tests for the classification of published messages, one rule at a time.

use super::*;
use crate::amf0::{self, Amf0Value};
use crate::codec::test_samples::{tag, SVT_640X360, X264_720P30, X265_720P};
use crate::codec::VideoCodec;

fn video(c: &mut Classifier, bytes: &[u8]) -> Result<Classified, ClassifyError> {
    c.classify(MediaKind::Video, Bytes::copy_from_slice(bytes))
}

fn audio(c: &mut Classifier, bytes: &[u8]) -> Result<Classified, ClassifyError> {
    c.classify(MediaKind::Audio, Bytes::copy_from_slice(bytes))
}

fn data(c: &mut Classifier, values: &[Amf0Value]) -> Classified {
    c.classify(MediaKind::Data, amf0::encode_all(values)).unwrap()
}

fn s(v: &str) -> Amf0Value {
    Amf0Value::String(v.into())
}

fn avc_header() -> Bytes {
    tag(&[0x17, 0, 0, 0, 0], &X264_720P30)
}

/// A legacy AAC sequence header: AAC-LC, 44.1 kHz, stereo.
const AAC_HEADER: [u8; 4] = [0xAF, 0x00, 0x12, 0x10];

#[test]
fn avc_sequence_header_then_frames() {
    let mut c = Classifier::default();
    let header = avc_header();
    let got = c.classify(MediaKind::Video, header.clone()).unwrap();
    assert_eq!(got.payload, header);
    assert_eq!(got.header, Some(Header::Video));
    assert!(!got.sync, "a sequence header is not a sync point");
    assert!(!got.reset_gop, "the first header resets nothing");
    let info = got.video.unwrap();
    assert_eq!((info.codec, info.width, info.height), (VideoCodec::Avc, Some(1280), Some(720)));
    assert!(c.has_video());

    let key = video(&mut c, &[0x17, 1, 0, 0, 0, 0, 0, 0, 2, 0x65, 0x88]).unwrap();
    assert_eq!((key.header, key.sync, key.video), (None, true, None));
    let inter = video(&mut c, &[0x27, 1, 0, 0, 0, 0, 0, 0, 2, 0x41, 0x9a]).unwrap();
    assert_eq!((inter.header, inter.sync), (None, false));
}

#[test]
fn repeated_video_header_is_a_header_without_news() {
    let mut c = Classifier::default();
    c.classify(MediaKind::Video, avc_header()).unwrap();
    let again = c.classify(MediaKind::Video, avc_header()).unwrap();
    assert_eq!(again.header, Some(Header::Video));
    assert_eq!((again.video, again.reset_gop), (None, false));
}

#[test]
fn changed_video_header_resets_the_gop() {
    let mut c = Classifier::default();
    c.classify(MediaKind::Video, avc_header()).unwrap();
    // The publisher switches to HEVC (Enhanced RTMP `hvc1`).
    let got = c.classify(MediaKind::Video, tag(b"\x90hvc1", &X265_720P)).unwrap();
    assert_eq!(got.header, Some(Header::Video));
    assert!(got.reset_gop);
    let info = got.video.unwrap();
    assert_eq!(
        (info.codec, info.width, info.profile.as_deref()),
        (VideoCodec::Hevc, Some(1280), Some("Main"))
    );
}

#[test]
fn enhanced_rtmp_hevc_and_av1_keyframes() {
    let mut c = Classifier::default();
    let key = video(&mut c, b"\x91hvc1\x00\x00\x43\x00\x00\x51\xb5").unwrap();
    assert!(key.sync);
    let inter = video(&mut c, b"\xA3hvc1\x00\x00\x00\x05").unwrap();
    assert!(!inter.sync);
    // The colour-info metadata packet is not a frame to start from.
    let meta = video(&mut c, b"\xd4hvc1\x02\x00\x09colorInfo").unwrap();
    assert_eq!((meta.header, meta.sync), (None, false));

    let mut c = Classifier::default();
    let got = c.classify(MediaKind::Video, tag(b"\x90av01", &SVT_640X360)).unwrap();
    assert_eq!(got.header, Some(Header::Video));
    let info = got.video.unwrap();
    assert_eq!((info.codec, info.width, info.height), (VideoCodec::Av1, Some(640), Some(360)));
    assert!(video(&mut c, b"\x91av01\x12\x00\x0a").unwrap().sync);
    assert!(!video(&mut c, b"\xA1av01\x12\x00\x0a").unwrap().sync);
}

#[test]
fn unparsable_configuration_record_still_names_the_codec() {
    let mut c = Classifier::default();
    let got = video(&mut c, &[0x17, 0, 0, 0, 0, 0xFF]).unwrap();
    assert_eq!(got.header, Some(Header::Video));
    assert_eq!(
        got.video,
        Some(VideoInfo {
            codec: VideoCodec::Avc,
            width: None,
            height: None,
            profile: None,
            level: None,
            fps: None
        })
    );
}

#[test]
fn aac_sequence_header_and_audio_only_sync() {
    let mut c = Classifier::default();
    let got = audio(&mut c, &AAC_HEADER).unwrap();
    assert_eq!((got.header, got.sync), (Some(Header::Audio), false));
    let Some(AudioFacts::SequenceHeader { codec: AudioCodec::Aac, config: Some(config) }) =
        got.audio
    else {
        panic!("{:?}", got.audio)
    };
    assert_eq!((config.sample_rate, config.channels), (44_100, 2));
    // A repeat is still the header, with nothing new to report.
    let again = audio(&mut c, &AAC_HEADER).unwrap();
    assert_eq!((again.header, again.audio), (Some(Header::Audio), None));
    // Without video every audio frame is a sync point, and it reports nothing new.
    let frame = audio(&mut c, &[0xAF, 0x01, 0x21, 0x10]).unwrap();
    assert_eq!((frame.header, frame.sync, frame.audio), (None, true, None));
    // Once video is seen, audio frames are not where viewers start.
    c.classify(MediaKind::Video, avc_header()).unwrap();
    assert!(!audio(&mut c, &[0xAF, 0x01, 0x21, 0x10]).unwrap().sync);
}

#[test]
fn headerless_codec_is_reported_from_its_frames() {
    let mut c = Classifier::default();
    let frame = audio(&mut c, &[0x2F, 0xFF, 0xFB]).unwrap();
    assert_eq!(frame.audio, Some(AudioFacts::Headerless { codec: AudioCodec::Mp3 }));
    assert_eq!((frame.header, frame.sync), (None, true));
    // After a sequence header, frames no longer guess the codec.
    let mut c = Classifier::default();
    audio(&mut c, &AAC_HEADER).unwrap();
    assert_eq!(audio(&mut c, &[0xAF, 0x01, 0x21]).unwrap().audio, None);
}

#[test]
fn set_data_frame_is_unwrapped_into_the_metadata_header() {
    let props = vec![("width".to_string(), Amf0Value::Number(1280.0))];
    let inner = [s("onMetaData"), Amf0Value::EcmaArray(props)];
    let mut wrapped = vec![s("@setDataFrame")];
    wrapped.extend(inner.iter().cloned());
    let mut c = Classifier::default();
    let got = data(&mut c, &wrapped);
    assert_eq!(got.payload, amf0::encode_all(&inner));
    assert_eq!((got.header, got.sync), (Some(Header::Metadata), false));
    assert_eq!(got.metadata.and_then(|m| m.width), Some(1280.0));
    assert!(c.has_video(), "metadata with a width announces video");
    // An audio frame after that is not a sync point: video is coming.
    assert!(!audio(&mut c, &[0xAF, 0x01, 0x21]).unwrap().sync);
}

#[test]
fn audio_only_metadata_and_other_data() {
    let mut c = Classifier::default();
    let props = vec![("audiocodecid".to_string(), s("mp4a"))];
    let got = data(&mut c, &[s("onMetaData"), Amf0Value::Object(props)]);
    assert_eq!(got.header, Some(Header::Metadata));
    assert!(!c.has_video());
    // Other data messages pass through untouched, and are not headers.
    let cue = amf0::encode_all(&[s("onCuePoint"), Amf0Value::Number(1.0)]);
    let got = c.classify(MediaKind::Data, cue.clone()).unwrap();
    assert_eq!(got, Classified::plain(cue));
    // Malformed AMF0 is forwarded as it is too.
    let junk = Bytes::from_static(&[0x02, 0x00, 0x09, b'o']);
    assert_eq!(c.classify(MediaKind::Data, junk.clone()).unwrap(), Classified::plain(junk));
}

#[test]
fn malformed_and_multitrack_tags_change_nothing() {
    let mut c = Classifier::default();
    assert!(matches!(video(&mut c, &[0x17, 1]), Err(ClassifyError::Malformed(_))));
    assert!(matches!(video(&mut c, &[0x07, 0, 0, 0, 0]), Err(ClassifyError::Malformed(_))));
    assert!(matches!(audio(&mut c, &[]), Err(ClassifyError::Malformed(_))));
    assert_eq!(video(&mut c, b"\x96\x01hvc1\x00\x11"), Err(ClassifyError::Multitrack));
    assert_eq!(
        audio(&mut c, &[0x95, 0x01, b'm', b'p', b'4', b'a', 0, 1, 2]),
        Err(ClassifyError::Multitrack)
    );
    assert!(!c.has_video(), "refused video tags do not mark the stream as video");
    // No header was remembered either: the first real one is news and resets nothing.
    let got = c.classify(MediaKind::Video, avc_header()).unwrap();
    assert!(got.video.is_some() && !got.reset_gop);
}
