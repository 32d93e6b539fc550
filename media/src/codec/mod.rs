//! Codec-level parsing of FLV audio/video tag bodies: legacy FLV and Enhanced RTMP (FourCC)
//! headers, and the decoder configuration records (AVC, HEVC, AV1, VP9, AAC).

mod aac;
mod audio;
mod av1;
mod avc;
mod bits;
mod hevc;
#[cfg(test)]
pub(crate) mod test_samples;
mod video;

pub use aac::AudioSpecificConfig;
pub use audio::{
    parse_audio_tag, AudioCodec, AudioPacket, AudioTag, SOUND_FORMAT_AAC, SOUND_FORMAT_EX_HEADER,
};
pub use avc::{AvcDecoderConfig, SpsInfo};
pub use hevc::{sps_dimensions as hevc_sps_dimensions, HevcDecoderConfig, HEVC_NAL_SPS};
pub use video::{
    parse_video_tag, video_info, FrameType, VideoCodec, VideoInfo, VideoPacket, VideoTag,
    LEGACY_AVC, LEGACY_HEVC,
};

#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum CodecError {
    #[error("{what}: needs {need} bytes, has {have}")]
    Short { what: &'static str, need: usize, have: usize },
    #[error("{0}: malformed")]
    Malformed(&'static str),
    #[error("unsupported: {0}")]
    Unsupported(&'static str),
}
