//! MPEG-2 transport stream (ISO/IEC 13818-1) output for HLS players that do not take fMP4,
//! sans-IO.
//!
//! # Pieces
//!
//! * [`TsWriter`]: one TS segment's worth of frames in, 188-byte packets out: PAT and PMT
//!   (with their MPEG-2 CRC32), PES packets with PTS/DTS (90 kHz), PCR on the PCR PID (video
//!   when there is video), continuity counters and adaptation-field stuffing. H.264/H.265
//!   access units are converted from length-prefixed NAL units (AVCC/HVCC) to Annex B with
//!   an access unit delimiter before every access unit and the parameter sets (SPS/PPS, and
//!   VPS for H.265) before every keyframe ([`annexb`]); AAC frames get an ADTS header built
//!   from the AudioSpecificConfig ([`adts`]).
//! * [`remux_segment`]: a CMAF segment of the HLS segmenter ([`crate::hls::Segment`] with its
//!   [`crate::hls::InitSegment`]) converted to one TS segment: same cut points, same samples,
//!   same media clock, so `ts-N.ts` and `seg-N.m4s` hold the same media.
//! * [`render_ts_playlist`]: a plain HLS version 3 media playlist listing the TS segments of
//!   an [`crate::hls::HlsSnapshot`]'s window.
//!
//! # Determinism and continuity
//!
//! A TS segment is a pure function of its CMAF segment and init, so any node (and any number
//! of requests) produces the same bytes. Continuity counters still run on across segments:
//! PAT and PMT (one each, at the start of every segment) use `msn mod 16`, and every
//! elementary PID starts each segment at 0 and is padded to end it at 15 (the last PES of
//! the PID is spread over a few more packets), so consecutive segments are continuous (a PID
//! with fewer than 16 payload bytes in a segment cannot be padded and just runs on).
//!
//! # Timestamps
//!
//! PTS/DTS are the segmenter's 90 kHz media clock plus [`PTS_OFFSET`] (100 ms), modulo 2^33;
//! the PCR is the media clock itself, so every frame arrives 100 ms before it is decoded.
//!
//! Malformed frames (a NAL length beyond the sample, an AAC frame too long for ADTS) never
//! panic: they are dropped and counted ([`TsSegment::dropped_frames`]).

pub mod adts;
pub mod annexb;
mod cmaf;
mod crc;
mod packet;
mod playlist;
pub mod reader;
mod remux;
mod writer;

pub use cmaf::{parse_fragment, parse_init, FragmentSample, InitTrack, InitTracks};
pub use crc::crc32_mpeg2;
pub use playlist::{parse_ts_segment_name, render_ts_playlist, ts_segment_name, TS_PLAYLIST_NAME};
pub use remux::{remux_segment, TsSegment};
pub use writer::{TsAudio, TsVideo, TsWriter};

/// Size of a transport stream packet.
pub const PACKET_SIZE: usize = 188;
/// First byte of every packet.
pub const SYNC_BYTE: u8 = 0x47;
/// PID of the program association table.
pub const PAT_PID: u16 = 0x0000;
/// PID of the program map table.
pub const PMT_PID: u16 = 0x1000;
/// PID of the video elementary stream.
pub const VIDEO_PID: u16 = 0x0100;
/// PID of the audio elementary stream.
pub const AUDIO_PID: u16 = 0x0101;
/// The one program's number.
pub const PROGRAM_NUMBER: u16 = 1;
/// PTS/DTS lead over the PCR (90 kHz ticks).
pub const PTS_OFFSET: u64 = 9000;
/// `stream_type` of H.264 in the PMT.
pub const STREAM_TYPE_H264: u8 = 0x1B;
/// `stream_type` of H.265.
pub const STREAM_TYPE_H265: u8 = 0x24;
/// `stream_type` of AAC in ADTS.
pub const STREAM_TYPE_AAC_ADTS: u8 = 0x0F;
/// The 33-bit PTS/DTS/PCR-base wrap.
pub const TIMESTAMP_MASK: u64 = (1 << 33) - 1;

/// Why a frame or a segment could not be converted.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum TsError {
    #[error("malformed: {0}")]
    Malformed(&'static str),
    #[error("not supported in MPEG-TS: {0}")]
    Unsupported(&'static str),
    #[error("codec: {0}")]
    Codec(#[from] crate::codec::CodecError),
}
