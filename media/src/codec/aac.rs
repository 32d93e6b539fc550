//! AAC AudioSpecificConfig (ISO 14496-3).

use super::bits::BitReader;
use super::CodecError;

/// Sampling frequencies by `samplingFrequencyIndex` (ISO 14496-3, table 1.18).
const SAMPLE_RATES: [u32; 13] =
    [96000, 88200, 64000, 48000, 44100, 32000, 24000, 22050, 16000, 12000, 11025, 8000, 7350];

/// Audio object type of explicitly signalled SBR (HE-AAC).
const AOT_SBR: u8 = 5;
/// Audio object type of explicitly signalled parametric stereo (HE-AAC v2).
const AOT_PS: u8 = 29;

#[derive(Debug, Clone, PartialEq, Eq)]
pub struct AudioSpecificConfig {
    /// Audio object type (2 = AAC-LC, 5 = SBR, 29 = PS, ...), escape 31 resolved (32..=95).
    pub object_type: u8,
    /// Output sample rate in Hz (for explicit SBR/PS: the extension rate).
    pub sample_rate: u32,
    /// `channelConfiguration` (0 = defined in a program config element).
    pub channels: u8,
}

impl AudioSpecificConfig {
    pub fn parse(data: &[u8]) -> Result<Self, CodecError> {
        if data.len() < 2 {
            return Err(CodecError::Short {
                what: "AudioSpecificConfig",
                need: 2,
                have: data.len(),
            });
        }
        let mut r = BitReader::new(data, "AudioSpecificConfig");
        let object_type = object_type(&mut r)?;
        let mut sample_rate = sample_rate(&mut r)?;
        let channels = r.bits(4)? as u8;
        if object_type == AOT_SBR || object_type == AOT_PS {
            // Explicit hierarchical signalling: the extension (output) rate follows.
            sample_rate = self::sample_rate(&mut r)?;
        }
        if object_type == 0 {
            return Err(CodecError::Malformed("AudioSpecificConfig object type"));
        }
        Ok(AudioSpecificConfig { object_type, sample_rate, channels })
    }

    /// Common name of the object type ("AAC-LC", "HE-AAC", ...).
    pub fn profile_name(&self) -> &'static str {
        match self.object_type {
            1 => "AAC Main",
            2 => "AAC-LC",
            3 => "AAC SSR",
            4 => "AAC LTP",
            AOT_SBR => "HE-AAC",
            AOT_PS => "HE-AACv2",
            23 => "AAC-LD",
            39 => "AAC-ELD",
            42 => "xHE-AAC",
            _ => "AAC",
        }
    }
}

fn object_type(r: &mut BitReader) -> Result<u8, CodecError> {
    let t = r.bits(5)? as u8;
    if t == 31 {
        return Ok(32 + r.bits(6)? as u8);
    }
    Ok(t)
}

fn sample_rate(r: &mut BitReader) -> Result<u32, CodecError> {
    let index = r.bits(4)?;
    if index == 0xF {
        let rate = r.bits(24)?;
        return if rate == 0 {
            Err(CodecError::Malformed("AudioSpecificConfig sample rate"))
        } else {
            Ok(rate)
        };
    }
    SAMPLE_RATES
        .get(index as usize)
        .copied()
        .ok_or(CodecError::Malformed("AudioSpecificConfig sample rate index"))
}

#[cfg(test)]
mod tests {
    use super::*;

    fn asc(object_type: u8, sample_rate: u32, channels: u8) -> AudioSpecificConfig {
        AudioSpecificConfig { object_type, sample_rate, channels }
    }

    #[test]
    fn ffmpeg_aac_lc_mono_44100() {
        // `ffmpeg -f lavfi -i sine -c:a aac -f flv`: AAC sequence header body (with the
        // backward-compatible SBR sync extension ffmpeg appends).
        let data = [0x12, 0x08, 0x56, 0xE5, 0x00];
        assert_eq!(AudioSpecificConfig::parse(&data), Ok(asc(2, 44100, 1)));
        assert_eq!(AudioSpecificConfig::parse(&data).unwrap().profile_name(), "AAC-LC");
    }

    #[test]
    fn common_configs() {
        assert_eq!(AudioSpecificConfig::parse(&[0x11, 0x90]), Ok(asc(2, 48000, 2)));
        assert_eq!(AudioSpecificConfig::parse(&[0x12, 0x10]), Ok(asc(2, 44100, 2)));
        // HE-AAC explicit: AOT 5, core 24000 (idx 6), stereo, extension 48000 (idx 3), AOT 2.
        // 00101 0110 0010 0011 00010 ...
        assert_eq!(AudioSpecificConfig::parse(&[0x2B, 0x11, 0x88, 0x00]), Ok(asc(5, 48000, 2)));
    }

    #[test]
    fn escapes() {
        // Explicit sample rate: AOT 2, index 15, rate 0x00BB80 (48000), channels 2.
        // 00010 1111 000000001011101110000000 0010
        let data = [0x17, 0x80, 0x5D, 0xC0, 0x10];
        assert_eq!(AudioSpecificConfig::parse(&data), Ok(asc(2, 48000, 2)));
        // AOT escape: 11111 001010 (32 + 10 = 42, USAC), index 3, channels 2.
        let data = [0xF9, 0x46, 0x40];
        assert_eq!(AudioSpecificConfig::parse(&data), Ok(asc(42, 48000, 2)));
    }

    #[test]
    fn malformed() {
        assert!(matches!(AudioSpecificConfig::parse(&[0x12]), Err(CodecError::Short { .. })));
        // Reserved sample rate index 13.
        assert_eq!(
            AudioSpecificConfig::parse(&[0x16, 0x90]),
            Err(CodecError::Malformed("AudioSpecificConfig sample rate index"))
        );
        // Explicit rate cut short.
        assert!(AudioSpecificConfig::parse(&[0x17, 0x80]).is_err());
        // Object type 0 is invalid.
        assert!(AudioSpecificConfig::parse(&[0x01, 0x10]).is_err());
    }
}
