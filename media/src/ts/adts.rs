//! ADTS headers (ISO/IEC 14496-3 1.A.2) for raw AAC frames, from the AudioSpecificConfig.

use super::TsError;

/// Length of an ADTS header without CRC.
pub const ADTS_HEADER_LEN: usize = 7;
/// Largest ADTS frame (13-bit `frame_length`, header included).
pub const MAX_ADTS_FRAME: usize = 0x1FFF;

/// The fixed fields of every ADTS header of a stream.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct AdtsConfig {
    /// ADTS `profile`: audio object type - 1 (1 = AAC-LC).
    pub profile: u8,
    pub sampling_index: u8,
    pub channel_config: u8,
}

impl AdtsConfig {
    /// From an AudioSpecificConfig. HE-AAC (SBR, PS) is signalled implicitly: AAC-LC at the
    /// core sampling rate, as ADTS requires.
    pub fn from_asc(asc: &[u8]) -> Result<Self, TsError> {
        let (a, b) = match asc {
            [a, b, ..] => (*a, *b),
            _ => return Err(TsError::Malformed("AudioSpecificConfig too short")),
        };
        let object_type = a >> 3;
        let sampling_index = ((a & 0x07) << 1) | (b >> 7);
        let channel_config = (b >> 3) & 0x0F;
        let profile = match object_type {
            1..=4 => object_type - 1,
            5 | 29 => 1,
            _ => return Err(TsError::Unsupported("AAC object type not expressible in ADTS")),
        };
        if sampling_index > 12 {
            return Err(TsError::Unsupported("AAC sampling rate not in the ADTS table"));
        }
        if channel_config > 7 {
            return Err(TsError::Malformed("AAC channel configuration"));
        }
        Ok(AdtsConfig { profile, sampling_index, channel_config })
    }

    /// The 7-byte header of a frame with `payload_len` bytes of raw AAC.
    pub fn header(&self, payload_len: usize) -> Result<[u8; ADTS_HEADER_LEN], TsError> {
        let len = payload_len + ADTS_HEADER_LEN;
        if len > MAX_ADTS_FRAME {
            return Err(TsError::Unsupported("AAC frame too long for ADTS"));
        }
        let ch = self.channel_config;
        Ok([
            0xFF,
            0xF1, // sync, MPEG-4, layer 0, no CRC
            (self.profile << 6) | (self.sampling_index << 2) | (ch >> 2),
            ((ch & 3) << 6) | ((len >> 11) as u8 & 0x03),
            (len >> 3) as u8,
            ((len as u8 & 0x07) << 5) | 0x1F, // buffer fullness 0x7FF (VBR)
            0xFC,                             // ... and one raw data block
        ])
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn lc_48k_stereo() {
        // AAC-LC (2), 48 kHz (index 3), stereo: 0x11 0x90.
        let c = AdtsConfig::from_asc(&[0x11, 0x90]).unwrap();
        assert_eq!((c.profile, c.sampling_index, c.channel_config), (1, 3, 2));
        let h = c.header(100).unwrap();
        assert_eq!(h[0], 0xFF);
        assert_eq!(h[1] & 0xF6, 0xF0);
        assert_eq!(h[1] & 1, 1, "protection absent");
        assert_eq!(h[2] >> 6, 1);
        assert_eq!((h[2] >> 2) & 0x0F, 3);
        let ch = ((h[2] & 1) << 2) | (h[3] >> 6);
        assert_eq!(ch, 2);
        let len = (usize::from(h[3] & 3) << 11) | (usize::from(h[4]) << 3) | usize::from(h[5] >> 5);
        assert_eq!(len, 107);
        let fullness = (u16::from(h[5] & 0x1F) << 6) | u16::from(h[6] >> 2);
        assert_eq!(fullness, 0x7FF);
        assert_eq!(h[6] & 3, 0);
    }

    #[test]
    fn he_aac_is_implicit_lc_and_limits_hold() {
        // SBR (5), 22.05 kHz core (index 7), mono.
        let asc = [(5 << 3) | (7 >> 1), ((7 & 1) << 7) | (1 << 3)];
        let c = AdtsConfig::from_asc(&asc).unwrap();
        assert_eq!((c.profile, c.sampling_index, c.channel_config), (1, 7, 1));
        assert!(c.header(MAX_ADTS_FRAME - ADTS_HEADER_LEN).is_ok());
        assert!(c.header(MAX_ADTS_FRAME - ADTS_HEADER_LEN + 1).is_err());
        assert!(AdtsConfig::from_asc(&[0x11]).is_err());
        assert!(AdtsConfig::from_asc(&[0x17, 0x80]).is_err()); // index 15: explicit rate
        assert!(AdtsConfig::from_asc(&[0xF8, 0x00]).is_err()); // escape object type
    }
}
