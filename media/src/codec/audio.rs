//! FLV audio tag headers, legacy and Enhanced RTMP (FourCC) audio.
//!
//! Legacy: `SoundFormat UB[4] | SoundRate UB[2] | SoundSize UB[1] | SoundType UB[1]`, then for
//! AAC (10) an `AACPacketType` byte. Enhanced RTMP: SoundFormat 9 (`ExHeader`) with the
//! `AudioPacketType` in the low nibble, any ModEx entries (skipped), then the FourCC (for
//! multitrack: the multitrack type and inner packet type first, the FourCC unless each track
//! has its own).

use bytes::Bytes;

use super::video::TagCursor;
use super::CodecError;

/// Legacy SoundFormat of AAC.
pub const SOUND_FORMAT_AAC: u8 = 10;
/// SoundFormat announcing an Enhanced RTMP audio header.
pub const SOUND_FORMAT_EX_HEADER: u8 = 9;
const SOUND_FORMAT_MP3: u8 = 2;
const SOUND_FORMAT_MP3_8K: u8 = 14;

const PACKET_SEQUENCE_START: u8 = 0;
const PACKET_CODED_FRAMES: u8 = 1;
const PACKET_SEQUENCE_END: u8 = 2;
const PACKET_MULTITRACK: u8 = 5;
const MANY_TRACKS_MANY_CODECS: u8 = 2;

#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub enum AudioCodec {
    Aac,
    Mp3,
    Opus,
    Flac,
    Ac3,
    Eac3,
    /// Another legacy sound format id or FourCC.
    Other(u32),
}

impl AudioCodec {
    /// Lower-case name as reported by the API (`aac`, `mp3`, `opus`, ...).
    pub fn name(&self) -> &'static str {
        match self {
            AudioCodec::Aac => "aac",
            AudioCodec::Mp3 => "mp3",
            AudioCodec::Opus => "opus",
            AudioCodec::Flac => "flac",
            AudioCodec::Ac3 => "ac3",
            AudioCodec::Eac3 => "eac3",
            AudioCodec::Other(_) => "unknown",
        }
    }

    /// The codec of an Enhanced RTMP audio FourCC.
    pub fn from_fourcc(fourcc: [u8; 4]) -> AudioCodec {
        match &fourcc {
            b"mp4a" => AudioCodec::Aac,
            b".mp3" => AudioCodec::Mp3,
            b"Opus" => AudioCodec::Opus,
            b"fLaC" => AudioCodec::Flac,
            b"ac-3" => AudioCodec::Ac3,
            b"ec-3" => AudioCodec::Eac3,
            _ => AudioCodec::Other(u32::from_be_bytes(fourcc)),
        }
    }
}

#[derive(Debug, Clone, PartialEq, Eq)]
pub enum AudioPacket {
    /// AAC AudioSpecificConfig / E-RTMP audio sequence start, in `body`.
    SequenceStart,
    Frame,
    SequenceEnd,
    Multitrack,
    Other(u8),
}

#[derive(Debug, Clone, PartialEq, Eq)]
pub struct AudioTag {
    pub codec: AudioCodec,
    pub packet: AudioPacket,
    /// Legacy header fields when present (sample rate index, 16-bit, stereo).
    pub legacy_rate: Option<u8>,
    pub body: Bytes,
}

impl AudioTag {
    pub fn is_sequence_header(&self) -> bool {
        self.packet == AudioPacket::SequenceStart
    }
}

/// Parse the headers of an FLV audio tag body.
///
/// Legacy non-AAC formats have no packet type: every tag is a `Frame`. Enhanced RTMP packet
/// types without a variant (e.g. 4, MultichannelConfig) are `Other(type)`.
pub fn parse_audio_tag(payload: &Bytes) -> Result<AudioTag, CodecError> {
    let mut c = TagCursor::new(payload, "audio tag");
    let b0 = c.u8()?;
    let format = b0 >> 4;
    if format == SOUND_FORMAT_EX_HEADER {
        return parse_enhanced(c, b0 & 0x0F);
    }
    let legacy_rate = Some(b0 & 0x0F);
    let (codec, packet) = match format {
        SOUND_FORMAT_AAC => {
            let packet = match c.u8()? {
                PACKET_SEQUENCE_START => AudioPacket::SequenceStart,
                PACKET_CODED_FRAMES => AudioPacket::Frame,
                other => AudioPacket::Other(other),
            };
            (AudioCodec::Aac, packet)
        }
        SOUND_FORMAT_MP3 | SOUND_FORMAT_MP3_8K => (AudioCodec::Mp3, AudioPacket::Frame),
        other => (AudioCodec::Other(u32::from(other)), AudioPacket::Frame),
    };
    Ok(AudioTag { codec, packet, legacy_rate, body: c.rest() })
}

fn parse_enhanced(mut c: TagCursor, packet_type: u8) -> Result<AudioTag, CodecError> {
    let packet_type = c.skip_mod_ex(packet_type)?;
    if packet_type == PACKET_MULTITRACK {
        let b = c.u8()?;
        let codec = if b >> 4 == MANY_TRACKS_MANY_CODECS {
            AudioCodec::Other(0)
        } else {
            AudioCodec::from_fourcc(c.fourcc()?)
        };
        return Ok(AudioTag {
            codec,
            packet: AudioPacket::Multitrack,
            legacy_rate: None,
            body: c.rest(),
        });
    }
    let codec = AudioCodec::from_fourcc(c.fourcc()?);
    let packet = match packet_type {
        PACKET_SEQUENCE_START => AudioPacket::SequenceStart,
        PACKET_CODED_FRAMES => AudioPacket::Frame,
        PACKET_SEQUENCE_END => AudioPacket::SequenceEnd,
        other => AudioPacket::Other(other),
    };
    Ok(AudioTag { codec, packet, legacy_rate: None, body: c.rest() })
}

#[cfg(test)]
mod tests {
    use super::*;

    fn parse(b: &[u8]) -> Result<AudioTag, CodecError> {
        parse_audio_tag(&Bytes::copy_from_slice(b))
    }

    #[test]
    fn legacy_aac() {
        // ffmpeg AAC sequence header: AF 00 + AudioSpecificConfig.
        let t = parse(&[0xAF, 0x00, 0x12, 0x08, 0x56, 0xE5, 0x00]).unwrap();
        assert_eq!(t.codec, AudioCodec::Aac);
        assert!(t.is_sequence_header());
        assert_eq!(t.legacy_rate, Some(0x0F));
        assert_eq!(&t.body[..], &[0x12, 0x08, 0x56, 0xE5, 0x00]);
        let t = parse(&[0xAF, 0x01, 0x21, 0x10]).unwrap();
        assert_eq!((t.packet, &t.body[..]), (AudioPacket::Frame, &[0x21, 0x10][..]));
        assert_eq!(parse(&[0xAF, 0x05]).unwrap().packet, AudioPacket::Other(5));
        assert!(matches!(parse(&[0xAF]), Err(CodecError::Short { .. })));
        assert!(matches!(parse(&[]), Err(CodecError::Short { .. })));
    }

    #[test]
    fn legacy_other_formats() {
        let t = parse(&[0x2F, 0xFF, 0xFB]).unwrap();
        assert_eq!(
            (t.codec, t.packet.clone(), &t.body[..]),
            (AudioCodec::Mp3, AudioPacket::Frame, &[0xFF, 0xFB][..])
        );
        assert_eq!(parse(&[0xE2, 1]).unwrap().codec, AudioCodec::Mp3);
        let t = parse(&[0x82, 1, 2]).unwrap(); // G.711 mu-law
        assert_eq!(t.codec, AudioCodec::Other(8));
        assert_eq!(t.codec.name(), "unknown");
        assert_eq!(parse(&[0xB6]).unwrap().codec, AudioCodec::Other(11)); // Speex, empty body
    }

    #[test]
    fn enhanced_opus_from_ffmpeg() {
        // ffmpeg 7+ `-c:a libopus -f flv`: sequence start with OpusHead, multichannel config,
        // coded frames.
        let seq = [
            0x90, b'O', b'p', b'u', b's', b'O', b'p', b'u', b's', b'H', b'e', b'a', b'd', 1, 1,
            0x38, 1, 0x80, 0xbb, 0, 0, 0, 0, 0,
        ];
        let t = parse(&seq).unwrap();
        assert_eq!(
            (t.codec, t.packet.clone(), t.legacy_rate),
            (AudioCodec::Opus, AudioPacket::SequenceStart, None)
        );
        assert_eq!(&t.body[..8], b"OpusHead");
        let t = parse(&[0x94, b'O', b'p', b'u', b's', 1, 1, 0, 0, 0, 4]).unwrap();
        assert_eq!(t.packet, AudioPacket::Other(4));
        let t = parse(&[0x91, b'O', b'p', b'u', b's', 0xF8, 0x72]).unwrap();
        assert_eq!((t.packet, &t.body[..]), (AudioPacket::Frame, &[0xF8, 0x72][..]));
        assert_eq!(
            parse(&[0x92, b'O', b'p', b'u', b's']).unwrap().packet,
            AudioPacket::SequenceEnd
        );
    }

    #[test]
    fn enhanced_fourccs_and_names() {
        for (cc, codec, name) in [
            (b"mp4a", AudioCodec::Aac, "aac"),
            (b".mp3", AudioCodec::Mp3, "mp3"),
            (b"Opus", AudioCodec::Opus, "opus"),
            (b"fLaC", AudioCodec::Flac, "flac"),
            (b"ac-3", AudioCodec::Ac3, "ac3"),
            (b"ec-3", AudioCodec::Eac3, "eac3"),
        ] {
            let mut b = vec![0x91];
            b.extend_from_slice(cc);
            assert_eq!(parse(&b).unwrap().codec, codec);
            assert_eq!(codec.name(), name);
        }
        assert_eq!(
            parse(b"\x91abcd").unwrap().codec,
            AudioCodec::Other(u32::from_be_bytes(*b"abcd"))
        );
        assert!(matches!(parse(&[0x90, b'm', b'p']), Err(CodecError::Short { .. })));
    }

    #[test]
    fn enhanced_mod_ex_and_multitrack() {
        // ModEx (7): size-1 = 2 -> 3 bytes of data, then (modExType 0 << 4 | CodedFrames).
        let t = parse(&[0x97, 0x02, 0, 0, 5, 0x01, b'O', b'p', b'u', b's', 9]).unwrap();
        assert_eq!(
            (t.codec, t.packet.clone(), &t.body[..]),
            (AudioCodec::Opus, AudioPacket::Frame, &[9][..])
        );
        // 16-bit ModEx size escape: 0xFF (-> 256) then UI16 size-1 = 0x0100 -> 257 bytes.
        let mut b = vec![0x97, 0xFF, 0x01, 0x00];
        b.extend_from_slice(&[0; 257]);
        b.extend_from_slice(&[0x00, b'm', b'p', b'4', b'a', 0x12, 0x10]);
        let t = parse(&b).unwrap();
        assert_eq!(
            (t.codec, t.packet.clone(), &t.body[..]),
            (AudioCodec::Aac, AudioPacket::SequenceStart, &[0x12, 0x10][..])
        );
        assert!(matches!(parse(&[0x97, 0x05, 0, 0]), Err(CodecError::Short { .. })));
        // Multitrack: one track (type 0), inner packet CodedFrames, FourCC.
        let t = parse(&[0x95, 0x01, b'm', b'p', b'4', b'a', 0, 1, 2]).unwrap();
        assert_eq!((t.codec, t.packet.clone()), (AudioCodec::Aac, AudioPacket::Multitrack));
        // Many tracks, many codecs: no shared FourCC.
        let t = parse(&[0x95, 0x21, 0, b'O', b'p', b'u', b's']).unwrap();
        assert_eq!((t.codec, t.packet.clone()), (AudioCodec::Other(0), AudioPacket::Multitrack));
    }
}
