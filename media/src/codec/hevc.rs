//! HEVCDecoderConfigurationRecord (ISO 14496-15) and the H.265 SPS fields Sluice reports.

use bytes::Bytes;

use super::avc::Cursor;
use super::bits::{unescape_rbsp, BitReader};
use super::CodecError;

/// H.265 NAL unit type of a sequence parameter set.
pub const HEVC_NAL_SPS: u8 = 33;
/// Largest picture dimension accepted from an SPS.
const MAX_DIMENSION: u32 = 65535;
/// Length of the fixed part of the record, up to and including `numOfArrays`.
const FIXED_LEN: usize = 23;

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
        let mut c = Cursor::new(data, "HEVCDecoderConfigurationRecord");
        let fixed = c.bytes(FIXED_LEN)?;
        if fixed[0] != 1 {
            return Err(CodecError::Malformed("HEVCDecoderConfigurationRecord version"));
        }
        let general_profile_idc = fixed[1] & 0x1F;
        let general_level_idc = fixed[12];
        let nal_length_size = (fixed[21] & 0x03) + 1;
        if nal_length_size == 3 {
            return Err(CodecError::Malformed("HEVCDecoderConfigurationRecord NAL length size"));
        }
        // Array and unit counts are bounded by the data: each unit takes at least 2 bytes.
        let mut arrays = Vec::new();
        for _ in 0..fixed[22] {
            let nal_type = c.u8()? & 0x3F;
            let count = c.u16()?;
            let units = (0..count).map(|_| c.unit()).collect::<Result<Vec<_>, _>>()?;
            arrays.push((nal_type, units));
        }
        Ok(HevcDecoderConfig { general_profile_idc, general_level_idc, nal_length_size, arrays })
    }

    /// The first SPS NAL unit in the record.
    pub fn first_sps(&self) -> Option<&Bytes> {
        self.arrays
            .iter()
            .filter(|(t, _)| *t == HEVC_NAL_SPS)
            .flat_map(|(_, units)| units.iter())
            .next()
    }

    /// Width and height from the first SPS (conformance window applied), when parseable.
    pub fn dimensions(&self) -> Option<(u32, u32)> {
        sps_dimensions(self.first_sps()?).ok()
    }
}

/// Name of an H.265 `general_profile_idc`.
pub(crate) fn profile_name(profile_idc: u8) -> Option<&'static str> {
    Some(match profile_idc {
        1 => "Main",
        2 => "Main 10",
        3 => "Main Still Picture",
        4 => "Range Extensions",
        5 => "High Throughput",
        9 => "Screen Content Coding",
        _ => return None,
    })
}

/// Skip `profile_tier_level(1, max_sub_layers_minus1)` (H.265 7.3.3).
fn skip_profile_tier_level(
    r: &mut BitReader,
    max_sub_layers_minus1: u32,
) -> Result<(), CodecError> {
    // general_profile_space .. general_level_idc: 2+1+5+32+4+43+1+8 bits.
    r.skip(96)?;
    let mut present = [(false, false); 8];
    for p in present.iter_mut().take(max_sub_layers_minus1 as usize) {
        *p = (r.bit()?, r.bit()?);
    }
    if max_sub_layers_minus1 > 0 {
        r.skip(2 * (8 - max_sub_layers_minus1 as usize))?;
    }
    for &(profile, level) in present.iter().take(max_sub_layers_minus1 as usize) {
        if profile {
            r.skip(88)?;
        }
        if level {
            r.skip(8)?;
        }
    }
    Ok(())
}

/// Picture size of an H.265 SPS NAL unit (2-byte NAL header included), conformance window
/// applied in luma samples.
pub fn sps_dimensions(nal: &[u8]) -> Result<(u32, u32), CodecError> {
    let body =
        nal.get(2..).ok_or(CodecError::Short { what: "H.265 SPS", need: 3, have: nal.len() })?;
    if (nal[0] >> 1) & 0x3F != HEVC_NAL_SPS {
        return Err(CodecError::Malformed("H.265 SPS NAL unit type"));
    }
    let rbsp = unescape_rbsp(body);
    let mut r = BitReader::new(&rbsp, "H.265 SPS");
    r.skip(4)?; // sps_video_parameter_set_id
    let max_sub_layers_minus1 = r.bits(3)?;
    r.skip(1)?; // sps_temporal_id_nesting_flag
    skip_profile_tier_level(&mut r, max_sub_layers_minus1)?;
    r.ue()?; // sps_seq_parameter_set_id
    let chroma_format_idc = r.ue()?;
    if chroma_format_idc > 3 {
        return Err(CodecError::Malformed("H.265 SPS chroma_format_idc"));
    }
    let separate_colour_plane = chroma_format_idc == 3 && r.bit()?;
    let width = r.ue()?;
    let height = r.ue()?;
    if width == 0 || height == 0 || width > MAX_DIMENSION || height > MAX_DIMENSION {
        return Err(CodecError::Malformed("H.265 SPS picture size"));
    }
    if !r.bit()? {
        return Ok((width, height));
    }
    let (left, right, top, bottom) = (r.ue()?, r.ue()?, r.ue()?, r.ue()?);
    // SubWidthC / SubHeightC (H.265 table 6-1); ChromaArrayType 0 when colour planes are separate.
    let (sub_w, sub_h) = match (chroma_format_idc, separate_colour_plane) {
        (1, _) => (2u64, 2u64),
        (2, _) => (2, 1),
        _ => (1, 1),
    };
    let crop = |size: u32, a: u32, b: u32, sub: u64| {
        (u64::from(a) + u64::from(b))
            .checked_mul(sub)
            .and_then(|c| u64::from(size).checked_sub(c))
            .filter(|&v| v > 0)
            .map(|v| v as u32)
            .ok_or(CodecError::Malformed("H.265 SPS conformance window"))
    };
    Ok((crop(width, left, right, sub_w)?, crop(height, top, bottom, sub_h)?))
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::codec::test_samples::*;

    #[test]
    fn parses_x265_record() {
        let cfg = HevcDecoderConfig::parse(&X265_720P).unwrap();
        assert_eq!(cfg.general_profile_idc, 1);
        assert_eq!(cfg.general_level_idc, 93);
        assert_eq!(cfg.nal_length_size, 4);
        let types: Vec<(u8, usize)> = cfg.arrays.iter().map(|(t, u)| (*t, u.len())).collect();
        assert_eq!(types, vec![(32, 1), (33, 1), (34, 1)]);
        assert_eq!(cfg.first_sps().unwrap().len(), 43);
        assert_eq!(cfg.dimensions(), Some((1280, 720)));
        assert_eq!(profile_name(cfg.general_profile_idc), Some("Main"));
    }

    #[test]
    fn conformance_window_applied() {
        assert_eq!(sps_dimensions(&X265_1270X718_SPS), Ok((1270, 718)));
    }

    #[test]
    fn truncation_and_garbage() {
        for n in 0..X265_720P.len() {
            assert!(
                matches!(HevcDecoderConfig::parse(&X265_720P[..n]), Err(CodecError::Short { .. })),
                "cut {n}"
            );
        }
        // A cut SPS either fails or, once the size fields are complete, gives the right size.
        for n in 0..X265_1270X718_SPS.len() {
            match sps_dimensions(&X265_1270X718_SPS[..n]) {
                Ok(d) => assert!(n >= 24 && d == (1270, 718), "cut {n}: {d:?}"),
                Err(_) => assert!(n < 26, "cut {n}"),
            }
        }
        let mut d = X265_720P;
        d[0] = 0;
        assert!(matches!(HevcDecoderConfig::parse(&d), Err(CodecError::Malformed(_))));
        // A PPS where the SPS should be.
        assert_eq!(
            sps_dimensions(&X265_720P[105..]),
            Err(CodecError::Malformed("H.265 SPS NAL unit type"))
        );
        // An SPS with 7 sub-layers and all-ones data never panics.
        let mut junk = vec![0x42, 0x01, 0x0F];
        junk.extend_from_slice(&[0xFF; 64]);
        assert!(sps_dimensions(&junk).is_err());
    }
}
