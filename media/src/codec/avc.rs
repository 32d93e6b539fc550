//! AVCDecoderConfigurationRecord (ISO 14496-15) and the SPS fields Sluice reports.

use bytes::Bytes;
use h264_reader::nal::sps::SeqParameterSet;
use h264_reader::rbsp::BitReader;

use super::bits::unescape_rbsp;
use super::CodecError;

/// H.264 NAL unit type of a sequence parameter set.
const NAL_SPS: u8 = 7;
/// Largest picture dimension accepted from an SPS, in macroblocks (16 px): 16384 px.
const MAX_MBS: u32 = 1024;

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

/// A cursor over a configuration record that reports short reads as `CodecError::Short`.
pub(crate) struct Cursor<'a> {
    data: &'a [u8],
    pos: usize,
    what: &'static str,
}

impl<'a> Cursor<'a> {
    pub(crate) fn new(data: &'a [u8], what: &'static str) -> Self {
        Cursor { data, pos: 0, what }
    }

    pub(crate) fn bytes(&mut self, n: usize) -> Result<&'a [u8], CodecError> {
        let end = self.pos.saturating_add(n);
        let s = self.data.get(self.pos..end).ok_or(CodecError::Short {
            what: self.what,
            need: end,
            have: self.data.len(),
        })?;
        self.pos = end;
        Ok(s)
    }

    pub(crate) fn u8(&mut self) -> Result<u8, CodecError> {
        Ok(self.bytes(1)?[0])
    }

    pub(crate) fn u16(&mut self) -> Result<u16, CodecError> {
        let b = self.bytes(2)?;
        Ok(u16::from_be_bytes([b[0], b[1]]))
    }

    /// A 16-bit length-prefixed unit.
    pub(crate) fn unit(&mut self) -> Result<Bytes, CodecError> {
        let len = self.u16()? as usize;
        Ok(Bytes::copy_from_slice(self.bytes(len)?))
    }
}

impl AvcDecoderConfig {
    pub fn parse(data: &[u8]) -> Result<Self, CodecError> {
        let mut c = Cursor::new(data, "AVCDecoderConfigurationRecord");
        if c.u8()? != 1 {
            return Err(CodecError::Malformed("AVCDecoderConfigurationRecord version"));
        }
        let profile_indication = c.u8()?;
        let profile_compatibility = c.u8()?;
        let level_indication = c.u8()?;
        let nal_length_size = (c.u8()? & 0x03) + 1;
        if nal_length_size == 3 {
            return Err(CodecError::Malformed("AVCDecoderConfigurationRecord NAL length size"));
        }
        // Counts are bounded by their field widths (31 SPS, 255 PPS); lengths by the data.
        let num_sps = c.u8()? & 0x1F;
        let sps = (0..num_sps).map(|_| c.unit()).collect::<Result<Vec<_>, _>>()?;
        let num_pps = c.u8()?;
        let pps = (0..num_pps).map(|_| c.unit()).collect::<Result<Vec<_>, _>>()?;
        Ok(AvcDecoderConfig {
            profile_indication,
            profile_compatibility,
            level_indication,
            nal_length_size,
            sps,
            pps,
        })
    }
}

impl SpsInfo {
    /// Parse an H.264 SPS NAL unit (with its NAL header byte).
    pub fn parse_h264(nal: &[u8]) -> Result<Self, CodecError> {
        let (&header, body) =
            nal.split_first().ok_or(CodecError::Short { what: "H.264 SPS", need: 4, have: 0 })?;
        if header & 0x1F != NAL_SPS {
            return Err(CodecError::Malformed("H.264 SPS NAL unit type"));
        }
        if body.len() < 3 {
            return Err(CodecError::Short { what: "H.264 SPS", need: 4, have: nal.len() });
        }
        let rbsp = unescape_rbsp(body);
        let sps = SeqParameterSet::from_bits(BitReader::new(&rbsp[..]))
            .map_err(|_| CodecError::Malformed("H.264 SPS"))?;
        if sps.pic_width_in_mbs_minus1 >= MAX_MBS || sps.pic_height_in_map_units_minus1 >= MAX_MBS {
            return Err(CodecError::Malformed("H.264 SPS picture size"));
        }
        let (width, height) =
            sps.pixel_dimensions().map_err(|_| CodecError::Malformed("H.264 SPS cropping"))?;
        let fps = sps
            .vui_parameters
            .as_ref()
            .and_then(|v| v.timing_info.as_ref())
            .filter(|t| t.num_units_in_tick > 0 && t.time_scale > 0)
            .map(|t| f64::from(t.time_scale) / (2.0 * f64::from(t.num_units_in_tick)));
        Ok(SpsInfo { width, height, profile_idc: rbsp[0], level_idc: rbsp[2], fps })
    }
}

/// Name of an H.264 `profile_idc`.
pub(crate) fn profile_name(profile_idc: u8) -> Option<&'static str> {
    Some(match profile_idc {
        66 => "Baseline",
        77 => "Main",
        88 => "Extended",
        100 => "High",
        110 => "High 10",
        122 => "High 4:2:2",
        244 => "High 4:4:4 Predictive",
        44 => "CAVLC 4:4:4 Intra",
        83 => "Scalable Baseline",
        86 => "Scalable High",
        118 => "Multiview High",
        128 => "Stereo High",
        _ => return None,
    })
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::codec::test_samples::*;

    #[test]
    fn parses_x264_record_and_sps() {
        let cfg = AvcDecoderConfig::parse(&X264_720P30).unwrap();
        assert_eq!(cfg.profile_indication, 100);
        assert_eq!(cfg.level_indication, 31);
        assert_eq!(cfg.nal_length_size, 4);
        assert_eq!(cfg.sps.len(), 1);
        assert_eq!(cfg.pps.len(), 1);
        assert_eq!(cfg.sps[0].len(), 26);
        assert_eq!(&cfg.pps[0][..], &[0x68, 0xeb, 0xe3, 0xcb, 0x22, 0xc0]);
        let sps = SpsInfo::parse_h264(&cfg.sps[0]).unwrap();
        assert_eq!((sps.width, sps.height), (1280, 720));
        assert_eq!(sps.profile_idc, 100);
        assert_eq!(sps.level_idc, 31);
        assert_eq!(sps.fps, Some(30.0));
        assert_eq!(profile_name(sps.profile_idc), Some("High"));
    }

    #[test]
    fn truncated_records_are_short() {
        for n in 0..X264_720P30.len() - 4 {
            // Every cut before the end of the PPS fails (the trailing High-profile
            // extension bytes are optional).
            if n < 43 {
                assert!(
                    matches!(
                        AvcDecoderConfig::parse(&X264_720P30[..n]),
                        Err(CodecError::Short { .. })
                    ),
                    "cut {n}"
                );
            }
        }
        assert!(AvcDecoderConfig::parse(&X264_720P30[..43]).is_ok());
    }

    #[test]
    fn bad_version_and_length_size() {
        let mut d = X264_720P30;
        d[0] = 0;
        assert!(matches!(AvcDecoderConfig::parse(&d), Err(CodecError::Malformed(_))));
        let mut d = X264_720P30;
        d[4] = 0xFE; // length size 3
        assert!(matches!(AvcDecoderConfig::parse(&d), Err(CodecError::Malformed(_))));
    }

    #[test]
    fn malformed_sps_never_panics() {
        let sps = &X264_720P30[8..34];
        for n in 0..sps.len() {
            assert!(SpsInfo::parse_h264(&sps[..n]).is_err(), "cut {n}");
        }
        // Wrong NAL type.
        assert_eq!(
            SpsInfo::parse_h264(&X264_720P30[37..43]),
            Err(CodecError::Malformed("H.264 SPS NAL unit type"))
        );
        // Huge width: pic_width_in_mbs_minus1 with many leading zeros.
        let mut big = vec![
            0x67, 0x42, 0x00, 0x1f, 0xF8, 0x00, 0x00, 0x00, 0x01, 0xFF, 0xFF, 0xFF, 0xFF, 0xFF,
        ];
        big.extend_from_slice(&[0xFF; 8]);
        assert!(SpsInfo::parse_h264(&big).is_err());
        assert!(SpsInfo::parse_h264(&[0x67, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0]).is_err());
    }
}
