//! FLV video tag headers, legacy and Enhanced RTMP.

use bytes::Bytes;

use super::CodecError;

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
        todo!()
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
    CodedFrames { composition_time: i32 },
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

/// Parse the headers of an FLV video tag body (RTMP video message payload).
pub fn parse_video_tag(payload: &Bytes) -> Result<VideoTag, CodecError> {
    todo!()
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
pub fn video_info(codec: VideoCodec, config_record: &[u8]) -> Result<VideoInfo, CodecError> {
    todo!()
}
