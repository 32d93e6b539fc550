//! What a published message is to its stream: a sequence header, a keyframe, metadata or a
//! plain frame, and what it tells about the codecs.
//!
//! The hub's publisher feeds every message from a publisher (or relayed from another node)
//! through one [`Classifier`] per publish session and acts on the [`Classified`] answer: it
//! stores sequence headers and metadata for late joiners, starts viewers at sync points,
//! resets the GOP when the video configuration changes, and reports the codec facts. The rules
//! live here, without the hub, so each one is tested on its own:
//!
//! - A video tag is a sequence header (its decoder configuration record is parsed for the
//!   codec facts), a keyframe (a sync point), or another frame. A sequence header that differs
//!   from the previous one resets the GOP: frames before it cannot be decoded with it.
//! - An audio tag is a sequence header (AAC's AudioSpecificConfig is parsed) or a frame. In a
//!   stream without video every audio frame is a sync point. A codec that never sends a
//!   sequence header (MP3, legacy formats) is still reported, from its frames.
//! - A data message that is `onMetaData` (possibly wrapped in `@setDataFrame`, which is
//!   removed) is the metadata header; metadata naming a video codec or a width marks the stream
//!   as having video before its first video tag arrives. Other data passes through unchanged.
//! - A tag whose header does not parse is [`ClassifyError::Malformed`] (the caller drops and
//!   counts it); Enhanced RTMP multitrack is [`ClassifyError::Multitrack`] (not supported).
//!   Neither changes the classifier's state.

use bytes::Bytes;

use crate::amf0::Amf0Limits;
use crate::codec::{
    parse_audio_tag, parse_video_tag, video_info, AudioCodec, AudioPacket, AudioSpecificConfig,
    CodecError, VideoInfo, VideoPacket,
};
use crate::flv::{normalize_data_message, Metadata};
use crate::frame::MediaKind;

/// Which header a message is: the message late joiners must receive before any frame.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Header {
    Metadata,
    Video,
    Audio,
}

/// What a new audio configuration says.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum AudioFacts {
    /// A sequence header different from the previous one; `config` is AAC's
    /// AudioSpecificConfig when it parses (`None` for other codecs).
    SequenceHeader { codec: AudioCodec, config: Option<AudioSpecificConfig> },
    /// A frame while no sequence header was seen (codecs without one, e.g. MP3): the stream's
    /// audio codec, for the caller to record if it knows none yet.
    Headerless { codec: AudioCodec },
}

/// The classification of one message.
#[derive(Debug, Clone, PartialEq)]
pub struct Classified {
    /// The payload viewers receive: the message's own, except metadata with its
    /// `@setDataFrame` wrapper removed.
    pub payload: Bytes,
    /// `Some` for sequence headers and `onMetaData`.
    pub header: Option<Header>,
    /// A point a viewer can start from: a video keyframe, or an audio frame in a stream that
    /// has no video (as far as known).
    pub sync: bool,
    /// A video sequence header replaced a different earlier one: the GOP collected so far
    /// cannot be decoded with it.
    pub reset_gop: bool,
    /// A new video sequence header's facts. When its configuration record does not parse,
    /// only `codec` is known (the other fields are `None`).
    pub video: Option<VideoInfo>,
    /// A new audio configuration (see [`AudioFacts`]).
    pub audio: Option<AudioFacts>,
    /// The fields of an `onMetaData` message.
    pub metadata: Option<Metadata>,
}

impl Classified {
    fn plain(payload: Bytes) -> Classified {
        Classified {
            payload,
            header: None,
            sync: false,
            reset_gop: false,
            video: None,
            audio: None,
            metadata: None,
        }
    }
}

/// A message the classifier refuses.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum ClassifyError {
    /// The audio/video tag header does not parse: drop the message (not fatal).
    #[error("malformed media tag: {0}")]
    Malformed(#[from] CodecError),
    #[error("Enhanced RTMP multitrack video/audio is not supported")]
    Multitrack,
}

/// Classifies the messages of one publisher, remembering what it saw: whether the stream has
/// video, and the last video and audio sequence headers (to tell a changed one from a repeat).
#[derive(Debug, Clone, Default)]
pub struct Classifier {
    limits: Amf0Limits,
    has_video: bool,
    video_header: Option<Bytes>,
    audio_header: Option<Bytes>,
}

impl Classifier {
    /// A classifier that decodes metadata within `limits`.
    pub fn new(limits: Amf0Limits) -> Classifier {
        Classifier { limits, ..Classifier::default() }
    }

    /// Whether a video tag, or metadata announcing video, was seen.
    pub fn has_video(&self) -> bool {
        self.has_video
    }

    /// Classify one message of `kind` carrying `payload`.
    pub fn classify(
        &mut self,
        kind: MediaKind,
        payload: Bytes,
    ) -> Result<Classified, ClassifyError> {
        match kind {
            MediaKind::Video => self.video(payload),
            MediaKind::Audio => self.audio(payload),
            MediaKind::Data => Ok(self.data(payload)),
        }
    }

    fn video(&mut self, payload: Bytes) -> Result<Classified, ClassifyError> {
        let tag = parse_video_tag(&payload)?;
        if tag.packet == VideoPacket::Multitrack {
            return Err(ClassifyError::Multitrack);
        }
        self.has_video = true;
        let mut out = Classified::plain(payload);
        if tag.is_sequence_header() {
            out.header = Some(Header::Video);
            if self.video_header.as_ref() != Some(&out.payload) {
                out.reset_gop = self.video_header.is_some();
                self.video_header = Some(out.payload.clone());
                out.video = Some(video_info(tag.codec, &tag.body).unwrap_or(VideoInfo {
                    codec: tag.codec,
                    width: None,
                    height: None,
                    profile: None,
                    level: None,
                    fps: None,
                }));
            }
        }
        out.sync = tag.is_keyframe();
        Ok(out)
    }

    fn audio(&mut self, payload: Bytes) -> Result<Classified, ClassifyError> {
        let tag = parse_audio_tag(&payload)?;
        if tag.packet == AudioPacket::Multitrack {
            return Err(ClassifyError::Multitrack);
        }
        let mut out = Classified::plain(payload);
        if tag.is_sequence_header() {
            out.header = Some(Header::Audio);
            if self.audio_header.as_ref() != Some(&out.payload) {
                self.audio_header = Some(out.payload.clone());
                let config = match tag.codec {
                    AudioCodec::Aac => AudioSpecificConfig::parse(&tag.body).ok(),
                    _ => None,
                };
                out.audio = Some(AudioFacts::SequenceHeader { codec: tag.codec, config });
            }
        } else {
            if self.audio_header.is_none() {
                out.audio = Some(AudioFacts::Headerless { codec: tag.codec });
            }
            out.sync = !self.has_video;
        }
        Ok(out)
    }

    fn data(&mut self, payload: Bytes) -> Classified {
        let Some((normalized, meta)) = normalize_data_message(&payload, &self.limits) else {
            return Classified::plain(payload);
        };
        if meta.video_codec_id.is_some() || meta.width.is_some() {
            self.has_video = true;
        }
        let mut out = Classified::plain(normalized);
        out.header = Some(Header::Metadata);
        out.metadata = Some(meta);
        out
    }
}

#[cfg(test)]
#[path = "classify_tests.rs"]
mod tests;
