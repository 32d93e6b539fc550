//! FLV audio tag headers, legacy and Enhanced RTMP (FourCC) audio.

use bytes::Bytes;

use super::CodecError;

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
        todo!()
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
pub fn parse_audio_tag(payload: &Bytes) -> Result<AudioTag, CodecError> {
    todo!()
}
