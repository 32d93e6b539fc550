//! FLV video tag headers, legacy and Enhanced RTMP.
//!
//! Legacy: `FrameType UB[4] | CodecID UB[4]`, then for AVC (7) and the common non-standard HEVC
//! id (12) `AVCPacketType UI8 | CompositionTime SI24`.
//!
//! Enhanced RTMP (v1/v2): `IsExHeader UB[1] = 1 | FrameType UB[3] | PacketType UB[4]`, any
//! number of ModEx entries (skipped), then `FOURCC`, then for `avc1`/`hvc1` coded frames an
//! SI24 composition time. Command frames (frame type 5, packet type not Metadata) carry a
//! command byte instead of a FourCC; multitrack packets carry the multitrack type and the
//! inner packet type before the (optional) FourCC.

use bytes::Bytes;

use super::avc::{self, AvcDecoderConfig, SpsInfo};
use super::hevc::{self, HevcDecoderConfig};
use super::{av1, CodecError};

/// Legacy FLV codec id of AVC.
pub const LEGACY_AVC: u8 = 7;
/// Legacy FLV codec id commonly used for HEVC (not in the Adobe spec).
pub const LEGACY_HEVC: u8 = 12;

const PACKET_SEQUENCE_START: u8 = 0;
const PACKET_CODED_FRAMES: u8 = 1;
const PACKET_SEQUENCE_END: u8 = 2;
const PACKET_CODED_FRAMES_X: u8 = 3;
const PACKET_METADATA: u8 = 4;
const PACKET_MULTITRACK: u8 = 6;
const PACKET_MOD_EX: u8 = 7;
/// `AvMultitrackType` whose tracks each carry their own FourCC.
const MANY_TRACKS_MANY_CODECS: u8 = 2;

#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub enum VideoCodec {
    /// Legacy codec id 7 or FourCC `avc1`.
    Avc,
    /// Legacy id 12 (a common non-standard extension) or FourCC `hvc1`.
    Hevc,
    /// FourCC `av01`.
    Av1,
    /// FourCC `vp09`.
    Vp9,
    /// Any other legacy codec id (e.g. 2 Sorenson H.263) or FourCC.
    Other(u32),
}

impl VideoCodec {
    /// Lower-case name as reported by the API (`h264`, `h265`, `av1`, `vp9`, ...).
    pub fn name(&self) -> &'static str {
        match self {
            VideoCodec::Avc => "h264",
            VideoCodec::Hevc => "h265",
            VideoCodec::Av1 => "av1",
            VideoCodec::Vp9 => "vp9",
            VideoCodec::Other(_) => "unknown",
        }
    }

    /// The codec of an Enhanced RTMP video FourCC.
    pub fn from_fourcc(fourcc: [u8; 4]) -> VideoCodec {
        match &fourcc {
            b"avc1" => VideoCodec::Avc,
            b"hvc1" => VideoCodec::Hevc,
            b"av01" => VideoCodec::Av1,
            b"vp09" => VideoCodec::Vp9,
            _ => VideoCodec::Other(u32::from_be_bytes(fourcc)),
        }
    }

    /// The Enhanced RTMP FourCC of a known codec.
    pub fn fourcc(&self) -> Option<[u8; 4]> {
        match self {
            VideoCodec::Avc => Some(*b"avc1"),
            VideoCodec::Hevc => Some(*b"hvc1"),
            VideoCodec::Av1 => Some(*b"av01"),
            VideoCodec::Vp9 => Some(*b"vp09"),
            VideoCodec::Other(_) => None,
        }
    }
}

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum FrameType {
    Key,
    Inter,
    DisposableInter,
    GeneratedKey,
    /// Video info/command frame: carries no picture.
    Command,
}

#[derive(Debug, Clone, PartialEq, Eq)]
pub enum VideoPacket {
    /// Decoder configuration record (AVC/HEVC/AV1/VP9 config) in `body`.
    SequenceStart,
    /// Coded frame(s); `composition_time` in ms (0 for `CodedFramesX`).
    CodedFrames {
        composition_time: i32,
    },
    SequenceEnd,
    /// Enhanced RTMP metadata packet (e.g. HDR colour info) in `body`.
    Metadata,
    /// Enhanced RTMP multitrack packets are refused by Sluice (not handled in this release).
    Multitrack,
    /// MPEG-2 TS sequence start and other packet types: forwarded, not inspected.
    Other(u8),
}

#[derive(Debug, Clone, PartialEq, Eq)]
pub struct VideoTag {
    pub codec: VideoCodec,
    pub frame_type: FrameType,
    pub packet: VideoPacket,
    /// Payload after all FLV/E-RTMP headers (e.g. length-prefixed NAL units for AVC frames).
    pub body: Bytes,
}

impl VideoTag {
    /// A frame a decoder can start from (key frame that is not a sequence header).
    pub fn is_keyframe(&self) -> bool {
        self.frame_type == FrameType::Key && matches!(self.packet, VideoPacket::CodedFrames { .. })
    }
    pub fn is_sequence_header(&self) -> bool {
        self.packet == VideoPacket::SequenceStart
    }
}

/// Reads the header fields of a tag body.
pub(crate) struct TagCursor<'a> {
    payload: &'a Bytes,
    pub(crate) pos: usize,
    what: &'static str,
}

impl<'a> TagCursor<'a> {
    pub(crate) fn new(payload: &'a Bytes, what: &'static str) -> Self {
        TagCursor { payload, pos: 0, what }
    }

    pub(crate) fn take(&mut self, n: usize) -> Result<&'a [u8], CodecError> {
        let end = self.pos.saturating_add(n);
        let have = self.payload.len();
        let s = self.payload.get(self.pos..end).ok_or(CodecError::Short {
            what: self.what,
            need: end,
            have,
        })?;
        self.pos = end;
        Ok(s)
    }

    pub(crate) fn u8(&mut self) -> Result<u8, CodecError> {
        Ok(self.take(1)?[0])
    }

    pub(crate) fn fourcc(&mut self) -> Result<[u8; 4], CodecError> {
        let b = self.take(4)?;
        Ok([b[0], b[1], b[2], b[3]])
    }

    /// Signed 24-bit big-endian integer.
    pub(crate) fn si24(&mut self) -> Result<i32, CodecError> {
        let b = self.take(3)?;
        Ok(i32::from_be_bytes([b[0], b[1], b[2], 0]) >> 8)
    }

    /// Skip Enhanced RTMP ModEx entries while `packet_type` is ModEx; returns the real
    /// packet type. Each entry consumes at least two bytes, so the loop is bounded.
    pub(crate) fn skip_mod_ex(&mut self, mut packet_type: u8) -> Result<u8, CodecError> {
        while packet_type == PACKET_MOD_EX {
            let mut size = usize::from(self.u8()?) + 1;
            if size == 256 {
                let b = self.take(2)?;
                size = usize::from(u16::from_be_bytes([b[0], b[1]])) + 1;
            }
            self.take(size)?;
            packet_type = self.u8()? & 0x0F;
        }
        Ok(packet_type)
    }

    /// The rest of the payload, zero-copy.
    pub(crate) fn rest(&self) -> Bytes {
        self.payload.slice(self.pos.min(self.payload.len())..)
    }
}

fn frame_type(v: u8) -> Result<FrameType, CodecError> {
    Ok(match v {
        1 => FrameType::Key,
        2 => FrameType::Inter,
        3 => FrameType::DisposableInter,
        4 => FrameType::GeneratedKey,
        5 => FrameType::Command,
        _ => return Err(CodecError::Malformed("video frame type")),
    })
}

/// Parse the headers of an FLV video tag body (RTMP video message payload).
///
/// Command frames (frame type 5) report their command byte as `VideoPacket::Other(command)`
/// (legacy, and Enhanced RTMP with a packet type other than Metadata, where the codec is
/// `Other(0)` since no FourCC is sent).
pub fn parse_video_tag(payload: &Bytes) -> Result<VideoTag, CodecError> {
    let mut c = TagCursor::new(payload, "video tag");
    let b0 = c.u8()?;
    if b0 & 0x80 != 0 {
        return parse_enhanced(c, b0);
    }
    let frame_type = frame_type(b0 >> 4)?;
    let codec_id = b0 & 0x0F;
    let codec = match codec_id {
        LEGACY_AVC => VideoCodec::Avc,
        LEGACY_HEVC => VideoCodec::Hevc,
        id => VideoCodec::Other(u32::from(id)),
    };
    let packet = if frame_type == FrameType::Command {
        VideoPacket::Other(c.u8()?)
    } else if matches!(codec, VideoCodec::Avc | VideoCodec::Hevc) {
        let packet_type = c.u8()?;
        let composition_time = c.si24()?;
        match packet_type {
            PACKET_SEQUENCE_START => VideoPacket::SequenceStart,
            PACKET_CODED_FRAMES => VideoPacket::CodedFrames { composition_time },
            PACKET_SEQUENCE_END => VideoPacket::SequenceEnd,
            other => VideoPacket::Other(other),
        }
    } else {
        VideoPacket::CodedFrames { composition_time: 0 }
    };
    Ok(VideoTag { codec, frame_type, packet, body: c.rest() })
}

fn parse_enhanced(mut c: TagCursor, b0: u8) -> Result<VideoTag, CodecError> {
    let frame_type = frame_type((b0 >> 4) & 0x07)?;
    let packet_type = c.skip_mod_ex(b0 & 0x0F)?;
    if frame_type == FrameType::Command && packet_type != PACKET_METADATA {
        let command = c.u8()?;
        let packet = VideoPacket::Other(command);
        return Ok(VideoTag { codec: VideoCodec::Other(0), frame_type, packet, body: c.rest() });
    }
    if packet_type == PACKET_MULTITRACK {
        let b = c.u8()?;
        let codec = if b >> 4 == MANY_TRACKS_MANY_CODECS {
            VideoCodec::Other(0)
        } else {
            VideoCodec::from_fourcc(c.fourcc()?)
        };
        return Ok(VideoTag { codec, frame_type, packet: VideoPacket::Multitrack, body: c.rest() });
    }
    let codec = VideoCodec::from_fourcc(c.fourcc()?);
    let packet = match packet_type {
        PACKET_SEQUENCE_START => VideoPacket::SequenceStart,
        PACKET_CODED_FRAMES => {
            let composition_time = match codec {
                VideoCodec::Avc | VideoCodec::Hevc => c.si24()?,
                _ => 0,
            };
            VideoPacket::CodedFrames { composition_time }
        }
        PACKET_CODED_FRAMES_X => VideoPacket::CodedFrames { composition_time: 0 },
        PACKET_SEQUENCE_END => VideoPacket::SequenceEnd,
        PACKET_METADATA => VideoPacket::Metadata,
        other => VideoPacket::Other(other),
    };
    Ok(VideoTag { codec, frame_type, packet, body: c.rest() })
}

/// What a sequence header tells about the video.
#[derive(Debug, Clone, PartialEq)]
pub struct VideoInfo {
    pub codec: VideoCodec,
    pub width: Option<u32>,
    pub height: Option<u32>,
    /// e.g. "High", "Main".
    pub profile: Option<String>,
    /// e.g. 3.1 for AVC level 31.
    pub level: Option<f64>,
    /// From the SPS VUI timing info when present.
    pub fps: Option<f64>,
}

/// Parse the decoder configuration record of a `SequenceStart` tag body for `codec`.
///
/// A record that parses but whose parameter set does not yields `None` dimensions. VP9's
/// `vpcC` carries no picture size. Other codecs are `Unsupported`.
pub fn video_info(codec: VideoCodec, config_record: &[u8]) -> Result<VideoInfo, CodecError> {
    let mut info =
        VideoInfo { codec, width: None, height: None, profile: None, level: None, fps: None };
    let name = |n: Option<&str>| n.map(str::to_string);
    match codec {
        VideoCodec::Avc => {
            let cfg = AvcDecoderConfig::parse(config_record)?;
            let sps = cfg.sps.first().and_then(|s| SpsInfo::parse_h264(s).ok());
            let (profile, level) = match &sps {
                Some(s) => (s.profile_idc, s.level_idc),
                None => (cfg.profile_indication, cfg.level_indication),
            };
            info.profile = name(avc::profile_name(profile));
            info.level = Some(f64::from(level) / 10.0);
            if let Some(s) = sps {
                (info.width, info.height, info.fps) = (Some(s.width), Some(s.height), s.fps);
            }
        }
        VideoCodec::Hevc => {
            let cfg = HevcDecoderConfig::parse(config_record)?;
            info.profile = name(hevc::profile_name(cfg.general_profile_idc));
            info.level = Some(f64::from(cfg.general_level_idc) / 30.0);
            if let Some((w, h)) = cfg.dimensions() {
                (info.width, info.height) = (Some(w), Some(h));
            }
        }
        VideoCodec::Av1 => {
            let cfg = av1::parse_av1c(config_record)?;
            info.profile = name(av1::profile_name(cfg.seq_profile));
            info.level = av1::level(cfg.seq_level_idx);
            if let Some((w, h)) = cfg.dimensions {
                (info.width, info.height) = (Some(w), Some(h));
            }
        }
        VideoCodec::Vp9 => {
            let (profile, level) = parse_vpcc(config_record)?;
            info.profile = Some(format!("Profile {profile}"));
            info.level = (level > 0).then(|| f64::from(level) / 10.0);
        }
        VideoCodec::Other(_) => {
            return Err(CodecError::Unsupported("video codec without a known configuration record"))
        }
    }
    Ok(info)
}

/// Profile and level of a VPCodecConfigurationRecord, with or without the `vpcC` FullBox
/// version/flags prefix (ffmpeg writes it: version 1, flags 0).
fn parse_vpcc(data: &[u8]) -> Result<(u8, u8), CodecError> {
    let body = match data {
        [1, 0, 0, 0, rest @ ..] if data.len() >= 12 => rest,
        _ => data,
    };
    match body {
        [profile, level, _, ..] if *profile <= 3 => Ok((*profile, *level)),
        [_, _, _, ..] => Err(CodecError::Malformed("VPCodecConfigurationRecord profile")),
        _ => {
            Err(CodecError::Short { what: "VPCodecConfigurationRecord", need: 3, have: body.len() })
        }
    }
}

#[cfg(test)]
#[path = "video_tests.rs"]
mod tests;
