//! HEVCDecoderConfigurationRecord (ISO 14496-15) and the H.265 SPS fields Sluice reports.

use bytes::Bytes;

use super::CodecError;

#[derive(Debug, Clone, PartialEq, Eq)]
pub struct HevcDecoderConfig {
    pub general_profile_idc: u8,
    pub general_level_idc: u8,
    pub nal_length_size: u8,
    /// NAL unit arrays: (nal type, units).
    pub arrays: Vec<(u8, Vec<Bytes>)>,
}

impl HevcDecoderConfig {
    pub fn parse(data: &[u8]) -> Result<Self, CodecError> {
        todo!()
    }

    /// Width and height from the first SPS (conformance window applied), when parseable.
    pub fn dimensions(&self) -> Option<(u32, u32)> {
        todo!()
    }
}
