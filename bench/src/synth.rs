//! The synthetic stream the bench publisher sends: `onMetaData`, an AVC sequence header with a
//! real 1280x720 baseline SPS/PPS, then one video tag per frame (stamp SEI + filler slice sized
//! to hit the bit rate, keyframes 5x larger), and optionally AAC audio.
//!
//! The slice data does not decode to pictures; the stream exists to measure transport.

use std::time::Duration;

use bytes::{BufMut, Bytes, BytesMut};
use sluice_media::frame::{MediaKind, MediaMessage};

use crate::sei::{write_sei_nal, Stamp};

/// SPS of a 1280x720 30 fps H.264 baseline stream (encoded once with ffmpeg/libx264).
pub const SPS: [u8; 25] = [
    0x67, 0x42, 0xc0, 0x1f, 0xd9, 0x00, 0x50, 0x05, 0xbb, 0x01, 0x10, 0x00, 0x00, 0x03, 0x00, 0x10,
    0x00, 0x00, 0x03, 0x03, 0xc0, 0xf1, 0x83, 0x24, 0x80,
];
/// The matching PPS.
pub const PPS: [u8; 5] = [0x68, 0xcb, 0x83, 0xcb, 0x20];
/// AAC-LC, 44.1 kHz, stereo AudioSpecificConfig.
pub const AAC_CONFIG: [u8; 2] = [0x12, 0x10];
/// FLV audio tag flags: AAC, 44 kHz, 16-bit, stereo.
const AAC_FLAGS: u8 = 0xAF;
/// Samples per AAC frame and the sample rate: ~43 frames per second.
pub const AAC_FRAME_SAMPLES: u64 = 1024;
pub const AAC_SAMPLE_RATE: u64 = 44_100;
/// Bytes of (fake) AAC payload per audio frame.
const AAC_FRAME_BYTES: usize = 20;
/// A keyframe is this many times larger than an inter frame.
const KEYFRAME_WEIGHT: u64 = 5;
/// Filler byte for slice data: no run of it can form `00 00 0x`.
const FILLER: u8 = 0x5A;

/// Shape of the synthetic stream.
#[derive(Debug, Clone, Copy)]
pub struct StreamShape {
    pub bitrate_bps: u64,
    pub fps: u32,
    /// Frames per GOP (a keyframe every `gop_frames` frames), at least 1.
    pub gop_frames: u32,
    pub audio: bool,
}

impl StreamShape {
    pub fn new(bitrate_bps: u64, fps: u32, gop: Duration, audio: bool) -> Self {
        let fps = fps.clamp(1, 240);
        let gop_frames = ((gop.as_secs_f64() * f64::from(fps)).round() as u32).max(1);
        StreamShape { bitrate_bps, fps, gop_frames, audio }
    }

    /// Presentation time of frame `index` relative to the first frame.
    pub fn frame_offset(&self, index: u64) -> Duration {
        Duration::from_micros(index.saturating_mul(1_000_000) / u64::from(self.fps))
    }

    /// Presentation time of audio frame `index` relative to the start.
    pub fn audio_offset(&self, index: u64) -> Duration {
        Duration::from_micros(index.saturating_mul(AAC_FRAME_SAMPLES * 1_000_000) / AAC_SAMPLE_RATE)
    }

    /// Whether frame `index` starts a GOP.
    pub fn is_keyframe(&self, index: u64) -> bool {
        index.is_multiple_of(u64::from(self.gop_frames))
    }

    /// Total tag body size of frame `index` so the video hits the bit rate on average.
    fn frame_bytes(&self, keyframe: bool) -> usize {
        let gop_bytes = self.bitrate_bps / 8 * u64::from(self.gop_frames) / u64::from(self.fps);
        let units = u64::from(self.gop_frames) - 1 + KEYFRAME_WEIGHT;
        let unit = gop_bytes / units;
        let size = if keyframe { unit * KEYFRAME_WEIGHT } else { unit };
        usize::try_from(size).unwrap_or(usize::MAX)
    }
}

/// Builds the messages of the synthetic stream. Holds one filler buffer so frames cost one
/// allocation each (the message payload).
#[derive(Debug)]
pub struct Synth {
    shape: StreamShape,
    filler: Bytes,
}

impl Synth {
    pub fn new(shape: StreamShape) -> Self {
        let max = shape.frame_bytes(true).max(64);
        Synth { shape, filler: Bytes::from(vec![FILLER; max]) }
    }

    pub fn shape(&self) -> &StreamShape {
        &self.shape
    }

    /// `@setDataFrame, onMetaData, {width, height, framerate, ...}` as an AMF0 data message.
    pub fn metadata(&self) -> MediaMessage {
        let mut out = BytesMut::with_capacity(256);
        amf_string(&mut out, "@setDataFrame");
        amf_string(&mut out, "onMetaData");
        let mut props: Vec<(&str, f64)> = vec![
            ("width", 1280.0),
            ("height", 720.0),
            ("framerate", f64::from(self.shape.fps)),
            ("videodatarate", self.shape.bitrate_bps as f64 / 1000.0),
            ("videocodecid", 7.0),
        ];
        if self.shape.audio {
            props.extend([
                ("audiodatarate", 7.0),
                ("audiocodecid", 10.0),
                ("audiosamplerate", 44100.0),
            ]);
        }
        out.put_u8(0x08); // ECMA array
        out.put_u32(props.len() as u32 + 1);
        for (key, value) in props {
            amf_key(&mut out, key);
            out.put_u8(0x00);
            out.put_f64(value);
        }
        amf_key(&mut out, "encoder");
        amf_string(&mut out, "sluice-bench");
        out.put_slice(&[0, 0, 9]);
        MediaMessage { kind: MediaKind::Data, timestamp: 0, payload: out.freeze() }
    }

    /// The AVC sequence header: an AVCDecoderConfigurationRecord with [`SPS`] and [`PPS`].
    pub fn video_sequence_header(&self) -> MediaMessage {
        let mut out = BytesMut::with_capacity(64);
        out.put_slice(&[0x17, 0x00, 0, 0, 0]);
        out.put_slice(&[1, SPS[1], SPS[2], SPS[3], 0xFF, 0xE1]);
        out.put_u16(SPS.len() as u16);
        out.put_slice(&SPS);
        out.put_u8(1);
        out.put_u16(PPS.len() as u16);
        out.put_slice(&PPS);
        MediaMessage { kind: MediaKind::Video, timestamp: 0, payload: out.freeze() }
    }

    /// The AAC sequence header (AudioSpecificConfig).
    pub fn audio_sequence_header(&self) -> MediaMessage {
        let payload = Bytes::from_static(&[AAC_FLAGS, 0x00, AAC_CONFIG[0], AAC_CONFIG[1]]);
        MediaMessage { kind: MediaKind::Audio, timestamp: 0, payload }
    }

    /// Video frame `seq` stamped with the sender time `time_us`.
    pub fn video_frame(&self, seq: u64, time_us: u64) -> MediaMessage {
        let keyframe = self.shape.is_keyframe(seq);
        let target = self.shape.frame_bytes(keyframe);
        let mut out = BytesMut::with_capacity(target.max(64) + 64);
        out.put_slice(&[if keyframe { 0x17 } else { 0x27 }, 0x01, 0, 0, 0]);
        // SEI, length-prefixed: reserve the prefix, then patch it.
        let sei_at = out.len();
        out.put_u32(0);
        write_sei_nal(Stamp { time_us, seq }, &mut out);
        let sei_len = (out.len() - sei_at - 4) as u32;
        out[sei_at..sei_at + 4].copy_from_slice(&sei_len.to_be_bytes());
        // Filler slice: header byte + filler, at least 16 bytes of slice data.
        let slice_len = target.saturating_sub(out.len() + 4).max(17).min(self.filler.len());
        out.put_u32(slice_len as u32);
        out.put_u8(if keyframe { 0x65 } else { 0x41 });
        out.put_slice(&self.filler[..slice_len - 1]);
        let timestamp = self.shape.frame_offset(seq).as_millis() as u32;
        MediaMessage { kind: MediaKind::Video, timestamp, payload: out.freeze() }
    }

    /// Audio frame `index` (20 bytes of fake AAC).
    pub fn audio_frame(&self, index: u64) -> MediaMessage {
        let mut out = BytesMut::with_capacity(2 + AAC_FRAME_BYTES);
        out.put_slice(&[AAC_FLAGS, 0x01]);
        out.put_bytes(0x21, AAC_FRAME_BYTES);
        let timestamp = self.shape.audio_offset(index).as_millis() as u32;
        MediaMessage { kind: MediaKind::Audio, timestamp, payload: out.freeze() }
    }
}

fn amf_key(out: &mut BytesMut, key: &str) {
    out.put_u16(key.len() as u16);
    out.put_slice(key.as_bytes());
}

fn amf_string(out: &mut BytesMut, value: &str) {
    out.put_u8(0x02);
    amf_key(out, value);
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::sei::{inspect_video, VideoInfo};

    #[test]
    fn frames_hit_the_bitrate_and_carry_stamps() {
        let shape = StreamShape::new(2_500_000, 30, Duration::from_secs(2), false);
        assert_eq!(shape.gop_frames, 60);
        let synth = Synth::new(shape);
        let total: usize = (0..60).map(|i| synth.video_frame(i, 1000 + i).payload.len()).sum();
        let expected = 2_500_000 / 8 * 2;
        assert!(
            total.abs_diff(expected) < expected / 100,
            "GOP is {total} bytes, want ~{expected}"
        );
        let key = synth.video_frame(60, 5);
        let inter = synth.video_frame(61, 6);
        assert!(key.payload.len() > 4 * inter.payload.len());
        assert_eq!(key.timestamp, 2000);
        assert_eq!(
            inspect_video(&key.payload),
            VideoInfo::Stamped { stamp: Stamp { time_us: 5, seq: 60 }, keyframe: true }
        );
        assert_eq!(
            inspect_video(&inter.payload),
            VideoInfo::Stamped { stamp: Stamp { time_us: 6, seq: 61 }, keyframe: false }
        );
    }

    #[test]
    fn headers_are_well_formed() {
        let synth = Synth::new(StreamShape::new(100_000, 25, Duration::from_secs(1), true));
        let seq = synth.video_sequence_header();
        assert_eq!(inspect_video(&seq.payload), VideoInfo::SequenceHeader);
        assert_eq!(&seq.payload[5..9], &[1, 0x42, 0xc0, 0x1f]);
        let meta = synth.metadata();
        assert_eq!(&meta.payload[..3], &[0x02, 0x00, 13]);
        assert!(meta.payload.ends_with(&[0, 0, 9]));
        assert_eq!(synth.audio_frame(43).timestamp, 998);
        // Tiny bit rates still produce a valid (minimum-size) slice.
        let frame = synth.video_frame(1, 0);
        assert!(matches!(inspect_video(&frame.payload), VideoInfo::Stamped { .. }));
    }
}
