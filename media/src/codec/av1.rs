//! AV1CodecConfigurationRecord (`av1C`) and the picture size from its sequence header OBU.

use super::bits::BitReader;
use super::CodecError;

/// OBU type of a sequence header.
const OBU_SEQUENCE_HEADER: u8 = 1;

/// What the `av1C` record and its sequence header tell.
#[derive(Debug, Clone, PartialEq, Eq)]
pub(crate) struct Av1Config {
    pub seq_profile: u8,
    pub seq_level_idx: u8,
    /// `max_frame_width_minus_1 + 1` and height, when a sequence header OBU is present.
    pub dimensions: Option<(u32, u32)>,
}

pub(crate) fn parse_av1c(data: &[u8]) -> Result<Av1Config, CodecError> {
    let fixed = data.get(..4).ok_or(CodecError::Short {
        what: "AV1CodecConfigurationRecord",
        need: 4,
        have: data.len(),
    })?;
    if fixed[0] != 0x81 {
        // marker bit 1, version 1
        return Err(CodecError::Malformed("AV1CodecConfigurationRecord marker/version"));
    }
    let seq_profile = fixed[1] >> 5;
    let seq_level_idx = fixed[1] & 0x1F;
    let dimensions =
        find_sequence_header(&data[4..]).and_then(|obu| sequence_header_dimensions(obu).ok());
    Ok(Av1Config { seq_profile, seq_level_idx, dimensions })
}

/// Read an unsigned LEB128 (at most 8 bytes) from the front of `data`: (value, length).
fn leb128(data: &[u8]) -> Option<(u64, usize)> {
    let mut v: u64 = 0;
    for (i, &b) in data.iter().take(8).enumerate() {
        v |= u64::from(b & 0x7F) << (7 * i);
        if b & 0x80 == 0 {
            return Some((v, i + 1));
        }
    }
    None
}

/// The payload of the first sequence header OBU in `obus` (low-overhead OBU format).
fn find_sequence_header(mut obus: &[u8]) -> Option<&[u8]> {
    while let Some(&header) = obus.first() {
        let obu_type = (header >> 3) & 0x0F;
        let has_extension = header & 0x04 != 0;
        let has_size = header & 0x02 != 0;
        let mut pos = 1 + usize::from(has_extension);
        let size = if has_size {
            let (size, n) = leb128(obus.get(pos..)?)?;
            pos += n;
            usize::try_from(size).ok()?
        } else {
            obus.len().checked_sub(pos)?
        };
        let end = pos.checked_add(size)?;
        let payload = obus.get(pos..end)?;
        if obu_type == OBU_SEQUENCE_HEADER {
            return Some(payload);
        }
        obus = &obus[end..];
    }
    None
}

/// `max_frame_width_minus_1 + 1`, `max_frame_height_minus_1 + 1` of a sequence header OBU
/// payload (AV1 spec 5.5.1).
fn sequence_header_dimensions(obu: &[u8]) -> Result<(u32, u32), CodecError> {
    let mut r = BitReader::new(obu, "AV1 sequence header");
    r.skip(3)?; // seq_profile
    r.skip(1)?; // still_picture
    let reduced_still_picture_header = r.bit()?;
    if reduced_still_picture_header {
        r.skip(5)?; // seq_level_idx[0]
    } else {
        let mut decoder_model_info_present = false;
        let mut buffer_delay_length = 0;
        if r.bit()? {
            // timing_info()
            r.skip(64)?; // num_units_in_display_tick, time_scale
            if r.bit()? {
                r.uvlc()?; // num_ticks_per_picture_minus_1
            }
            decoder_model_info_present = r.bit()?;
            if decoder_model_info_present {
                buffer_delay_length = r.bits(5)? as usize + 1;
                r.skip(32 + 5 + 5)?;
            }
        }
        let initial_display_delay_present = r.bit()?;
        let operating_points = r.bits(5)? + 1;
        for _ in 0..operating_points {
            r.skip(12)?; // operating_point_idc
            let seq_level_idx = r.bits(5)?;
            if seq_level_idx > 7 {
                r.skip(1)?; // seq_tier
            }
            if decoder_model_info_present && r.bit()? {
                r.skip(2 * buffer_delay_length + 1)?;
            }
            if initial_display_delay_present && r.bit()? {
                r.skip(4)?;
            }
        }
    }
    let width_bits = r.bits(4)? + 1;
    let height_bits = r.bits(4)? + 1;
    let width = r.bits(width_bits)? + 1;
    let height = r.bits(height_bits)? + 1;
    Ok((width, height))
}

/// The AV1 profile name.
pub(crate) fn profile_name(seq_profile: u8) -> Option<&'static str> {
    Some(match seq_profile {
        0 => "Main",
        1 => "High",
        2 => "Professional",
        _ => return None,
    })
}

/// `seq_level_idx` as the level number (e.g. 8 -> 4.0, 13 -> 5.1); 31 means "no level".
pub(crate) fn level(seq_level_idx: u8) -> Option<f64> {
    (seq_level_idx < 24)
        .then(|| 2.0 + f64::from(seq_level_idx >> 2) + f64::from(seq_level_idx & 3) / 10.0)
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::codec::test_samples::*;

    #[test]
    fn parses_svt_av1_record() {
        let c = parse_av1c(&SVT_640X360).unwrap();
        assert_eq!(c.seq_profile, 0);
        assert_eq!(c.seq_level_idx, 1);
        assert_eq!(c.dimensions, Some((640, 360)));
        assert_eq!(level(8), Some(4.0));
        assert_eq!(level(13), Some(5.1));
        assert_eq!(level(31), None);
    }

    #[test]
    fn truncated_and_garbage() {
        assert!(parse_av1c(&SVT_640X360[..3]).is_err());
        // Without a complete sequence header, no dimensions but the record still parses.
        for n in 4..SVT_640X360.len() - 1 {
            assert_eq!(parse_av1c(&SVT_640X360[..n]).unwrap().dimensions, None, "cut {n}");
        }
        let mut d = SVT_640X360;
        d[0] = 0x01;
        assert!(parse_av1c(&d).is_err());
        assert_eq!(leb128(&[0xFF; 9]), None);
        assert_eq!(leb128(&[0x80, 0x01]), Some((128, 2)));
        assert_eq!(
            find_sequence_header(&[0x12, 0xFF, 0xFF, 0xFF, 0xFF, 0xFF, 0xFF, 0xFF, 0x7F]),
            None
        );
    }
}
