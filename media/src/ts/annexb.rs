//! H.264/H.265 access units from length-prefixed NAL units (the AVCC/HVCC form of FLV and
//! MP4) to the Annex B byte stream MPEG-TS carries: start codes, an access unit delimiter
//! first in every access unit, and the parameter sets of the decoder configuration record
//! before every keyframe that does not carry its own.

use bytes::Bytes;

use super::TsError;
use crate::codec::{AvcDecoderConfig, HevcDecoderConfig};

const START_CODE: [u8; 4] = [0, 0, 0, 1];
/// H.264 access unit delimiter, primary_pic_type 7 (any slice type).
const H264_AUD: [u8; 2] = [0x09, 0xF0];
/// H.265 access unit delimiter (type 35, layer 0, tid 1), pic_type 2 (any).
const H265_AUD: [u8; 3] = [0x46, 0x01, 0x50];
const H264_NAL_SPS: u8 = 7;
const H264_NAL_AUD: u8 = 9;
const H265_NAL_VPS: u8 = 32;
const H265_NAL_SPS: u8 = 33;
const H265_NAL_PPS: u8 = 34;
const H265_NAL_AUD: u8 = 35;

/// Which codec, and what the conversion needs from its decoder configuration record.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct AnnexBConfig {
    pub hevc: bool,
    /// Bytes of each NAL length prefix (1, 2 or 4).
    pub nal_length_size: u8,
    /// Parameter sets in decoding order (VPS, SPS, PPS), without start codes.
    pub parameter_sets: Vec<Bytes>,
}

impl AnnexBConfig {
    /// From an `AVCDecoderConfigurationRecord` (`avcC`).
    pub fn from_avcc(record: &[u8]) -> Result<Self, TsError> {
        let cfg = AvcDecoderConfig::parse(record)?;
        check_length_size(cfg.nal_length_size)?;
        Ok(AnnexBConfig {
            hevc: false,
            nal_length_size: cfg.nal_length_size,
            parameter_sets: cfg.sps.into_iter().chain(cfg.pps).collect(),
        })
    }

    /// From an `HEVCDecoderConfigurationRecord` (`hvcC`).
    pub fn from_hvcc(record: &[u8]) -> Result<Self, TsError> {
        let cfg = HevcDecoderConfig::parse(record)?;
        check_length_size(cfg.nal_length_size)?;
        let mut parameter_sets = Vec::new();
        for kind in [H265_NAL_VPS, H265_NAL_SPS, H265_NAL_PPS] {
            for (t, units) in &cfg.arrays {
                if *t == kind {
                    parameter_sets.extend(units.iter().cloned());
                }
            }
        }
        Ok(AnnexBConfig { hevc: true, nal_length_size: cfg.nal_length_size, parameter_sets })
    }

    fn nal_type(&self, nal: &[u8]) -> u8 {
        let b = nal.first().copied().unwrap_or(0);
        if self.hevc {
            (b >> 1) & 0x3F
        } else {
            b & 0x1F
        }
    }

    /// Convert one access unit, appending to `out`. On error `out` is left as it was.
    pub fn convert(&self, sample: &[u8], keyframe: bool, out: &mut Vec<u8>) -> Result<(), TsError> {
        let nals = split_nals(sample, usize::from(self.nal_length_size))?;
        let (aud_type, sps_type) =
            if self.hevc { (H265_NAL_AUD, H265_NAL_SPS) } else { (H264_NAL_AUD, H264_NAL_SPS) };
        let has_aud = nals.first().is_some_and(|n| self.nal_type(n) == aud_type);
        let has_sps = nals.iter().any(|n| self.nal_type(n) == sps_type);
        let extra: usize = self.parameter_sets.iter().map(|p| p.len() + 4).sum();
        out.reserve(sample.len() + extra + 8 + nals.len() * 4);
        out.extend_from_slice(&START_CODE);
        match nals.first() {
            Some(first) if has_aud => out.extend_from_slice(first),
            _ if self.hevc => out.extend_from_slice(&H265_AUD),
            _ => out.extend_from_slice(&H264_AUD),
        }
        if keyframe && !has_sps {
            for ps in &self.parameter_sets {
                out.extend_from_slice(&START_CODE);
                out.extend_from_slice(ps);
            }
        }
        for nal in nals.iter().skip(usize::from(has_aud)) {
            out.extend_from_slice(&START_CODE);
            out.extend_from_slice(nal);
        }
        Ok(())
    }
}

fn check_length_size(n: u8) -> Result<(), TsError> {
    match n {
        1 | 2 | 4 => Ok(()),
        _ => Err(TsError::Unsupported("NAL length size other than 1, 2 or 4")),
    }
}

/// The NAL units of a length-prefixed sample (empty units skipped). Every length is checked
/// against what remains.
pub fn split_nals(sample: &[u8], length_size: usize) -> Result<Vec<&[u8]>, TsError> {
    if !matches!(length_size, 1 | 2 | 4) {
        return Err(TsError::Unsupported("NAL length size other than 1, 2 or 4"));
    }
    let mut nals = Vec::new();
    let mut rest = sample;
    while !rest.is_empty() {
        let (prefix, after) = rest
            .split_at_checked(length_size)
            .ok_or(TsError::Malformed("truncated NAL length prefix"))?;
        let len = prefix.iter().fold(0usize, |acc, &b| (acc << 8) | usize::from(b));
        let (nal, after) = after
            .split_at_checked(len)
            .ok_or(TsError::Malformed("NAL length beyond the sample"))?;
        if !nal.is_empty() {
            nals.push(nal);
        }
        rest = after;
    }
    if nals.is_empty() {
        return Err(TsError::Malformed("sample without NAL units"));
    }
    Ok(nals)
}

#[cfg(test)]
mod tests {
    use super::*;

    fn avc(sps: &[u8], pps: &[u8]) -> AnnexBConfig {
        AnnexBConfig {
            hevc: false,
            nal_length_size: 4,
            parameter_sets: vec![Bytes::copy_from_slice(sps), Bytes::copy_from_slice(pps)],
        }
    }

    fn prefixed(nals: &[&[u8]]) -> Vec<u8> {
        let mut v = Vec::new();
        for n in nals {
            v.extend_from_slice(&(n.len() as u32).to_be_bytes());
            v.extend_from_slice(n);
        }
        v
    }

    #[test]
    fn keyframe_gets_aud_and_parameter_sets() {
        let c = avc(&[0x67, 1, 2], &[0x68, 3]);
        let mut out = Vec::new();
        c.convert(&prefixed(&[&[0x06, 9], &[0x65, 0xAA, 0xBB]]), true, &mut out).unwrap();
        assert_eq!(
            out,
            [
                &[0, 0, 0, 1, 0x09, 0xF0][..],
                &[0, 0, 0, 1, 0x67, 1, 2],
                &[0, 0, 0, 1, 0x68, 3],
                &[0, 0, 0, 1, 0x06, 9],
                &[0, 0, 0, 1, 0x65, 0xAA, 0xBB],
            ]
            .concat()
        );
        // A non-key frame: AUD only.
        out.clear();
        c.convert(&prefixed(&[&[0x41, 7]]), false, &mut out).unwrap();
        assert_eq!(out, [0, 0, 0, 1, 0x09, 0xF0, 0, 0, 0, 1, 0x41, 7]);
    }

    #[test]
    fn existing_aud_and_in_band_sps_are_kept_not_doubled() {
        let c = avc(&[0x67, 1], &[0x68, 2]);
        let mut out = Vec::new();
        let au = prefixed(&[&[0x09, 0x10], &[0x67, 5], &[0x68, 6], &[0x65, 1]]);
        c.convert(&au, true, &mut out).unwrap();
        assert_eq!(
            out,
            [0, 0, 0, 1, 0x09, 0x10, 0, 0, 0, 1, 0x67, 5, 0, 0, 0, 1, 0x68, 6, 0, 0, 0, 1, 0x65, 1]
        );
    }

    #[test]
    fn hevc_aud_and_two_byte_prefixes() {
        let c = AnnexBConfig {
            hevc: true,
            nal_length_size: 2,
            parameter_sets: vec![Bytes::from_static(&[0x40, 1]), Bytes::from_static(&[0x42, 1])],
        };
        let mut out = Vec::new();
        c.convert(&[0, 3, 0x26, 1, 0xAF], true, &mut out).unwrap();
        assert_eq!(
            out,
            [
                0, 0, 0, 1, 0x46, 0x01, 0x50, 0, 0, 0, 1, 0x40, 1, 0, 0, 0, 1, 0x42, 1, 0, 0, 0, 1,
                0x26, 1, 0xAF
            ]
        );
    }

    #[test]
    fn malformed_lengths_are_errors() {
        let c = avc(&[0x67], &[0x68]);
        let mut out = vec![1, 2];
        assert!(c.convert(&[0, 0, 0, 9, 0x65], true, &mut out).is_err());
        assert!(c.convert(&[0, 0], true, &mut out).is_err());
        assert!(c.convert(&[], true, &mut out).is_err());
        assert!(c.convert(&[0, 0, 0, 0], true, &mut out).is_err());
        assert_eq!(out, vec![1, 2], "output untouched on error");
        assert!(split_nals(&[1, 0x65], 3).is_err());
        assert_eq!(
            split_nals(&[1, 0x65, 0, 2, 0x41], 1),
            Err(TsError::Malformed("NAL length beyond the sample"))
        );
    }
}
