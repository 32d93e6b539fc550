//! AVCDecoderConfigurationRecord (ISO 14496-15) and the SPS fields Sluice reports.

use bytes::Bytes;

use super::CodecError;

#[derive(Debug, Clone, PartialEq, Eq)]
pub struct AvcDecoderConfig {
    pub profile_indication: u8,
    pub profile_compatibility: u8,
    pub level_indication: u8,
    /// 1, 2 or 4.
    pub nal_length_size: u8,
    pub sps: Vec<Bytes>,
    pub pps: Vec<Bytes>,
}

#[derive(Debug, Clone, PartialEq)]
pub struct SpsInfo {
    pub width: u32,
    pub height: u32,
    pub profile_idc: u8,
    pub level_idc: u8,
    pub fps: Option<f64>,
}

impl AvcDecoderConfig {
    pub fn parse(data: &[u8]) -> Result<Self, CodecError> {
        todo!()
    }
}

impl SpsInfo {
    /// Parse an H.264 SPS NAL unit (with its NAL header byte).
    pub fn parse_h264(nal: &[u8]) -> Result<Self, CodecError> {
        todo!()
    }
}
