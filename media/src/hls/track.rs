//! Track configurations taken from FLV sequence headers, and the samples the segmenter queues.

use bytes::Bytes;

use super::HlsError;
use crate::codec::{
    AudioCodec, AudioSpecificConfig, AvcDecoderConfig, HevcDecoderConfig, SpsInfo, VideoCodec,
};

/// Track id of the video track in every init segment and fragment.
pub(crate) const VIDEO_TRACK_ID: u32 = 1;
/// Track id of the audio track (also when the stream has no video).
pub(crate) const AUDIO_TRACK_ID: u32 = 2;
/// Video timescale (and the segmenter's common clock): 90 kHz.
pub const TICKS_PER_SECOND: u64 = 90_000;
/// Ticks per millisecond of the 90 kHz clock.
pub(crate) const TICKS_PER_MS: u64 = 90;
/// Largest decoder configuration record accepted (bytes).
const MAX_RECORD_LEN: usize = 64 * 1024;

/// Video codecs the fMP4 writer supports.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum VideoFormat {
    Avc,
    Hevc,
}

/// Audio codecs the fMP4 writer supports.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum AudioFormat {
    Aac,
    Opus,
}

/// A video track as announced by its sequence header.
#[derive(Debug, Clone, PartialEq)]
pub struct VideoConfig {
    pub format: VideoFormat,
    /// The decoder configuration record exactly as received (`avcC` / `hvcC` payload).
    pub record: Bytes,
    pub width: u32,
    pub height: u32,
    /// From the SPS VUI timing info when present.
    pub fps: Option<f64>,
    /// RFC 6381 codec string, e.g. `avc1.64001f`.
    pub codec: String,
}

/// An audio track as announced by its sequence header.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct AudioConfig {
    pub format: AudioFormat,
    /// AudioSpecificConfig (AAC) or the OpusHead packet (Opus), as received.
    pub record: Bytes,
    /// Output sample rate; also the track timescale.
    pub sample_rate: u32,
    pub channels: u8,
    /// AAC samples per frame (1024, or 2048 with SBR); 0 for Opus (read from each packet).
    pub frame_samples: u32,
    /// RFC 6381 codec string: `mp4a.40.2`, `opus`.
    pub codec: String,
}

impl VideoConfig {
    /// Build from a `SequenceStart` tag body of `codec`.
    pub fn parse(codec: VideoCodec, record: Bytes) -> Result<Self, HlsError> {
        if record.len() > MAX_RECORD_LEN {
            return Err(HlsError::Malformed("decoder configuration record too large"));
        }
        match codec {
            VideoCodec::Avc => {
                let cfg = AvcDecoderConfig::parse(&record)?;
                let sps = cfg.sps.first().ok_or(HlsError::Malformed("AVC record without SPS"))?;
                let info = SpsInfo::parse_h264(sps)?;
                let codec = format!(
                    "avc1.{:02x}{:02x}{:02x}",
                    cfg.profile_indication, cfg.profile_compatibility, cfg.level_indication
                );
                Ok(VideoConfig {
                    format: VideoFormat::Avc,
                    record,
                    width: info.width,
                    height: info.height,
                    fps: info.fps,
                    codec,
                })
            }
            VideoCodec::Hevc => {
                let cfg = HevcDecoderConfig::parse(&record)?;
                let (width, height) = cfg
                    .dimensions()
                    .ok_or(HlsError::Malformed("HEVC record without a valid SPS"))?;
                let codec = hevc_codec_string(&record)?;
                Ok(VideoConfig {
                    format: VideoFormat::Hevc,
                    record,
                    width,
                    height,
                    fps: None,
                    codec,
                })
            }
            _ => Err(HlsError::Unsupported("video codec other than H.264/H.265")),
        }
    }
}

/// `hvc1.<space><profile>.<compat, bit-reversed hex>.<tier><level>[.<constraint bytes>]`
/// (ISO/IEC 14496-15 annex E) from the fixed head of an HEVCDecoderConfigurationRecord.
fn hevc_codec_string(record: &[u8]) -> Result<String, HlsError> {
    let head = record.get(..13).ok_or(HlsError::Malformed("HEVC record too short"))?;
    let space = match head[1] >> 6 {
        1 => "A",
        2 => "B",
        3 => "C",
        _ => "",
    };
    let tier = if head[1] & 0x20 != 0 { 'H' } else { 'L' };
    let profile = head[1] & 0x1F;
    let compat = u32::from_be_bytes([head[2], head[3], head[4], head[5]]).reverse_bits();
    let mut s = format!("hvc1.{space}{profile}.{compat:X}.{tier}{}", head[12]);
    let constraints = &head[6..12];
    let used = constraints.iter().rposition(|&b| b != 0).map_or(0, |i| i + 1);
    for b in &constraints[..used] {
        s.push_str(&format!(".{b:X}"));
    }
    Ok(s)
}

impl AudioConfig {
    /// Build from a `SequenceStart` audio tag body of `codec`.
    pub fn parse(codec: AudioCodec, record: Bytes) -> Result<Self, HlsError> {
        if record.len() > MAX_RECORD_LEN {
            return Err(HlsError::Malformed("audio configuration too large"));
        }
        match codec {
            AudioCodec::Aac => {
                let asc = AudioSpecificConfig::parse(&record)?;
                let sbr = matches!(asc.object_type, 5 | 29);
                Ok(AudioConfig {
                    format: AudioFormat::Aac,
                    sample_rate: asc.sample_rate,
                    channels: if asc.channels == 0 { 2 } else { asc.channels },
                    frame_samples: if sbr { 2048 } else { 1024 },
                    codec: format!("mp4a.40.{}", asc.object_type),
                    record,
                })
            }
            AudioCodec::Opus => {
                let head = OpusHead::parse(&record)?;
                Ok(AudioConfig {
                    format: AudioFormat::Opus,
                    sample_rate: 48_000,
                    channels: head.channels,
                    frame_samples: 0,
                    codec: "opus".to_string(),
                    record,
                })
            }
            _ => Err(HlsError::Unsupported("audio codec other than AAC/Opus")),
        }
    }

    /// Duration of one coded frame in track timescale units, `None` if it cannot be told.
    pub(crate) fn frame_duration(&self, frame: &[u8]) -> Option<u32> {
        match self.format {
            AudioFormat::Aac => Some(self.frame_samples),
            AudioFormat::Opus => opus_packet_samples(frame),
        }
    }
}

/// The fields of an Opus identification header (RFC 7845 section 5.1) the `dOps` box needs.
#[derive(Debug, Clone, PartialEq, Eq)]
pub(crate) struct OpusHead {
    pub channels: u8,
    pub pre_skip: u16,
    pub input_rate: u32,
    pub gain: i16,
    pub mapping_family: u8,
    /// Stream count, coupled count and channel mapping (family != 0 only).
    pub mapping: Vec<u8>,
}

impl OpusHead {
    pub(crate) fn parse(b: &[u8]) -> Result<Self, HlsError> {
        let bad = HlsError::Malformed("OpusHead");
        if b.len() < 19 || &b[..8] != b"OpusHead" || b[9] == 0 {
            return Err(bad);
        }
        let channels = b[9];
        let mapping_family = b[18];
        let mapping = if mapping_family == 0 {
            Vec::new()
        } else {
            b.get(19..21 + usize::from(channels)).ok_or(bad)?.to_vec()
        };
        Ok(OpusHead {
            channels,
            pre_skip: u16::from_le_bytes([b[10], b[11]]),
            input_rate: u32::from_le_bytes([b[12], b[13], b[14], b[15]]),
            gain: i16::from_le_bytes([b[16], b[17]]),
            mapping_family,
            mapping,
        })
    }
}

/// Samples (at 48 kHz) in an Opus packet, from its TOC byte (RFC 6716 section 3.1).
pub(crate) fn opus_packet_samples(packet: &[u8]) -> Option<u32> {
    let toc = *packet.first()?;
    let config = toc >> 3;
    let frame = match config {
        0..=11 => [480, 960, 1920, 2880][usize::from(config % 4)],
        12..=15 => [480, 960][usize::from(config % 2)],
        _ => [120, 240, 480, 960][usize::from(config % 4)],
    };
    let frames = match toc & 3 {
        0 => 1,
        1 | 2 => 2,
        _ => u32::from(*packet.get(1)? & 0x3F),
    };
    let total = frame * frames;
    (total > 0 && total <= 5760).then_some(total)
}

/// One coded frame queued for a fragment. Times in the track's timescale.
#[derive(Debug, Clone)]
pub(crate) struct Sample {
    pub dts: u64,
    pub duration: u32,
    /// Composition offset (PTS - DTS), signed.
    pub cts: i32,
    pub key: bool,
    pub data: Bytes,
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn hevc_codec_strings() {
        // x265 Main, level 3.1 (93): general_profile_space 0, tier 0, profile 1,
        // compatibility 0x60000000 (bits 1 and 2), progressive+frame-only constraint 0x90.
        let mut rec = [0u8; 23];
        rec[0] = 1;
        rec[1] = 0x01;
        rec[2] = 0x60;
        rec[6] = 0x90;
        rec[12] = 93;
        assert_eq!(hevc_codec_string(&rec).unwrap(), "hvc1.1.6.L93.90");
        rec[1] = 0x22; // Main 10, high tier
        rec[2] = 0x20;
        rec[6] = 0xB0;
        rec[12] = 120;
        assert_eq!(hevc_codec_string(&rec).unwrap(), "hvc1.2.4.H120.B0");
        assert!(hevc_codec_string(&rec[..12]).is_err());
    }

    #[test]
    fn opus_toc_durations() {
        assert_eq!(opus_packet_samples(&[0xF8]), Some(960)); // CELT FB 20 ms, 1 frame
        assert_eq!(opus_packet_samples(&[0xF9]), Some(1920)); // 2 frames
        assert_eq!(opus_packet_samples(&[0x08]), Some(960)); // SILK NB 20 ms
        assert_eq!(opus_packet_samples(&[0x1B, 0x03]), None); // 3 x 60 ms > 120 ms
        assert_eq!(opus_packet_samples(&[0xFB, 0x03]), Some(2880));
        assert_eq!(opus_packet_samples(&[0xFB, 0x00]), None);
        assert_eq!(opus_packet_samples(&[0xFB]), None);
        assert_eq!(opus_packet_samples(&[]), None);
    }

    #[test]
    fn opus_head() {
        let b = [
            b'O', b'p', b'u', b's', b'H', b'e', b'a', b'd', 1, 2, 0x38, 1, 0x80, 0xbb, 0, 0, 0, 0,
            0,
        ];
        let h = OpusHead::parse(&b).unwrap();
        assert_eq!((h.channels, h.pre_skip, h.input_rate), (2, 312, 48_000));
        assert!(OpusHead::parse(&b[..18]).is_err());
        let mut m = b.to_vec();
        m[18] = 1;
        assert!(OpusHead::parse(&m).is_err()); // family 1 needs a mapping table
        m.extend_from_slice(&[1, 1, 0, 1]);
        assert_eq!(OpusHead::parse(&m).unwrap().mapping, vec![1, 1, 0, 1]);
    }
}
