//! [`TsWriter`]: the frames of one segment in, the segment's transport packets out.

use bytes::{Bytes, BytesMut};

use super::adts::AdtsConfig;
use super::annexb::AnnexBConfig;
use super::crc::crc32_mpeg2;
use super::packet::{max_packets, min_packets, write_pes, write_section, FirstPacket};
use super::{
    TsError, AUDIO_PID, PAT_PID, PMT_PID, PROGRAM_NUMBER, PTS_OFFSET, STREAM_TYPE_AAC_ADTS,
    STREAM_TYPE_H264, STREAM_TYPE_H265, TIMESTAMP_MASK, VIDEO_PID,
};

const STREAM_ID_VIDEO: u8 = 0xE0;
const STREAM_ID_AUDIO: u8 = 0xC0;
/// AAC frames grouped in one PES packet at most (4 frames of 1024 samples: < 100 ms at
/// 44.1 kHz and up, so the PCR of an audio-only stream repeats often enough).
const AUDIO_FRAMES_PER_PES: usize = 4;
/// Largest audio PES packet (its length field is 16 bits).
const MAX_AUDIO_PES: usize = 0xFFFF;

/// The video elementary stream of a TS segment.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct TsVideo {
    pub config: AnnexBConfig,
}

impl TsVideo {
    /// H.264 from its `avcC` record.
    pub fn h264(avcc: &[u8]) -> Result<Self, TsError> {
        Ok(TsVideo { config: AnnexBConfig::from_avcc(avcc)? })
    }

    /// H.265 from its `hvcC` record.
    pub fn h265(hvcc: &[u8]) -> Result<Self, TsError> {
        Ok(TsVideo { config: AnnexBConfig::from_hvcc(hvcc)? })
    }

    fn stream_type(&self) -> u8 {
        if self.config.hevc {
            STREAM_TYPE_H265
        } else {
            STREAM_TYPE_H264
        }
    }
}

/// The audio elementary stream of a TS segment (AAC, carried as ADTS).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct TsAudio {
    pub adts: AdtsConfig,
}

impl TsAudio {
    /// AAC from its AudioSpecificConfig.
    pub fn aac(asc: &[u8]) -> Result<Self, TsError> {
        Ok(TsAudio { adts: AdtsConfig::from_asc(asc)? })
    }
}

/// One PES packet waiting to be split into transport packets.
#[derive(Debug)]
struct Unit {
    pid: u16,
    data: Vec<u8>,
    first: FirstPacket,
    /// Packets to spread it over (0 until `finish` decides).
    packets: usize,
    frames: usize,
}

/// One TS segment: tables first, then the PES packets of the frames in the order given.
/// Frames must be given in decoding order, video and audio interleaved by time.
#[derive(Debug)]
pub struct TsWriter {
    video: Option<TsVideo>,
    audio: Option<TsAudio>,
    table_cc: u8,
    pmt_version: u8,
    discontinuity: bool,
    units: Vec<Unit>,
    /// Index of the audio PES packet still taking frames.
    open_audio: Option<usize>,
    dropped: u64,
}

/// A 33-bit timestamp: `t + PTS_OFFSET + delta`, wrapped.
fn ts_time(t: u64, delta: i64) -> u64 {
    let v = i128::from(t) + i128::from(PTS_OFFSET) + i128::from(delta);
    (v.rem_euclid(1i128 << 33)) as u64 & TIMESTAMP_MASK
}

fn put_timestamp(out: &mut Vec<u8>, prefix: u8, t: u64) {
    let t = t & TIMESTAMP_MASK;
    out.push((prefix << 4) | (((t >> 30) as u8 & 0x07) << 1) | 1);
    out.push((t >> 22) as u8);
    out.push((((t >> 15) as u8) << 1) | 1);
    out.push((t >> 7) as u8);
    out.push(((t as u8) << 1) | 1);
}

fn pes_header(out: &mut Vec<u8>, stream_id: u8, pts: u64, dts: Option<u64>) {
    out.extend_from_slice(&[0, 0, 1, stream_id, 0, 0, 0x84]);
    match dts {
        Some(dts) => {
            out.extend_from_slice(&[0xC0, 10]);
            put_timestamp(out, 0x3, pts);
            put_timestamp(out, 0x1, dts);
        }
        None => {
            out.extend_from_slice(&[0x80, 5]);
            put_timestamp(out, 0x2, pts);
        }
    }
}

/// Set the PES_packet_length field (0, "unbounded", when it does not fit: video only).
fn set_pes_length(data: &mut [u8]) {
    let len = data.len().saturating_sub(6);
    let field = u16::try_from(len).unwrap_or(0).to_be_bytes();
    if let Some(dst) = data.get_mut(4..6) {
        dst.copy_from_slice(&field);
    }
}

fn section(table_id: u8, id: u16, version: u8, body: &[u8]) -> Vec<u8> {
    let len = 5 + body.len() + 4;
    let mut s = Vec::with_capacity(3 + len);
    s.push(table_id);
    s.push(0xB0 | ((len >> 8) as u8 & 0x0F));
    s.push(len as u8);
    s.extend_from_slice(&id.to_be_bytes());
    s.push(0xC1 | ((version & 0x1F) << 1));
    s.extend_from_slice(&[0, 0]);
    s.extend_from_slice(body);
    let crc = crc32_mpeg2(&s);
    s.extend_from_slice(&crc.to_be_bytes());
    s
}

impl TsWriter {
    /// A segment with these streams. `sequence` (the media sequence number) sets the
    /// continuity counter of the PAT and PMT (`sequence mod 16`), `pmt_version` the tables'
    /// version; `discontinuity` flags the first packet of each elementary stream.
    pub fn new(
        video: Option<TsVideo>,
        audio: Option<TsAudio>,
        sequence: u64,
        pmt_version: u8,
        discontinuity: bool,
    ) -> Self {
        TsWriter {
            video,
            audio,
            table_cc: (sequence % 16) as u8,
            pmt_version: pmt_version & 0x1F,
            discontinuity,
            units: Vec::new(),
            open_audio: None,
            dropped: 0,
        }
    }

    /// Frames dropped (malformed, or of a stream the segment does not have).
    pub fn dropped_frames(&self) -> u64 {
        self.dropped
    }

    fn pcr_pid(&self) -> u16 {
        if self.video.is_some() || self.audio.is_none() {
            VIDEO_PID
        } else {
            AUDIO_PID
        }
    }

    /// Add one access unit (length-prefixed NAL units) decoded at `dts` (90 kHz media clock)
    /// and presented `cts` ticks later. A malformed one is dropped, counted and returned as
    /// an error; the segment stays valid.
    pub fn video(&mut self, dts: u64, cts: i32, key: bool, sample: &[u8]) -> Result<(), TsError> {
        let Some(video) = &self.video else {
            self.dropped += 1;
            return Err(TsError::Unsupported("segment without a video stream"));
        };
        let mut data = Vec::with_capacity(sample.len() + 64);
        let dts_field = (cts != 0).then(|| ts_time(dts, 0));
        pes_header(&mut data, STREAM_ID_VIDEO, ts_time(dts, cts.into()), dts_field);
        if let Err(e) = video.config.convert(sample, key, &mut data) {
            self.dropped += 1;
            return Err(e);
        }
        set_pes_length(&mut data);
        self.open_audio = None;
        self.units.push(Unit {
            pid: VIDEO_PID,
            data,
            first: FirstPacket { pcr: Some(dts), random_access: key, discontinuity: false },
            packets: 0,
            frames: 1,
        });
        Ok(())
    }

    /// Add one raw AAC frame presented at `pts` (90 kHz media clock). Consecutive frames
    /// share a PES packet (up to 4).
    pub fn audio(&mut self, pts: u64, frame: &[u8]) -> Result<(), TsError> {
        let Some(audio) = self.audio else {
            self.dropped += 1;
            return Err(TsError::Unsupported("segment without an audio stream"));
        };
        let header = match audio.adts.header(frame.len()) {
            Ok(h) => h,
            Err(e) => {
                self.dropped += 1;
                return Err(e);
            }
        };
        let add = header.len() + frame.len();
        let fits =
            |u: &Unit| u.frames < AUDIO_FRAMES_PER_PES && u.data.len() + add <= MAX_AUDIO_PES;
        let open = self.open_audio.filter(|&i| self.units.get(i).is_some_and(fits));
        let index = match open {
            Some(i) => i,
            None => {
                let mut data = Vec::with_capacity(14 + add * AUDIO_FRAMES_PER_PES);
                pes_header(&mut data, STREAM_ID_AUDIO, ts_time(pts, 0), None);
                let pcr = self.video.is_none();
                self.units.push(Unit {
                    pid: AUDIO_PID,
                    data,
                    first: FirstPacket {
                        pcr: pcr.then_some(pts),
                        random_access: pcr,
                        discontinuity: false,
                    },
                    packets: 0,
                    frames: 0,
                });
                self.units.len() - 1
            }
        };
        self.open_audio = Some(index);
        if let Some(unit) = self.units.get_mut(index) {
            unit.data.extend_from_slice(&header);
            unit.data.extend_from_slice(frame);
            unit.frames += 1;
            set_pes_length(&mut unit.data);
        }
        Ok(())
    }

    fn tables(&self, out: &mut BytesMut) {
        let mut pat = Vec::with_capacity(4);
        pat.extend_from_slice(&PROGRAM_NUMBER.to_be_bytes());
        pat.extend_from_slice(&(0xE000 | PMT_PID).to_be_bytes());
        write_section(out, PAT_PID, self.table_cc, &section(0x00, 1, self.pmt_version, &pat));
        let mut pmt = Vec::with_capacity(16);
        pmt.extend_from_slice(&(0xE000 | self.pcr_pid()).to_be_bytes());
        pmt.extend_from_slice(&[0xF0, 0x00]);
        let streams = [
            self.video.as_ref().map(|v| (v.stream_type(), VIDEO_PID)),
            self.audio.map(|_| (STREAM_TYPE_AAC_ADTS, AUDIO_PID)),
        ];
        for (stream_type, pid) in streams.into_iter().flatten() {
            pmt.push(stream_type);
            pmt.extend_from_slice(&(0xE000 | pid).to_be_bytes());
            pmt.extend_from_slice(&[0xF0, 0x00]);
        }
        let pmt = section(0x02, PROGRAM_NUMBER, self.pmt_version, &pmt);
        write_section(out, PMT_PID, self.table_cc, &pmt);
    }

    /// Decide how many packets each PES packet takes so that every elementary PID ends the
    /// segment with continuity counter 15 (the next segment starts at 0): the PID's last PES
    /// packets are spread over up to 15 more packets.
    fn plan_packets(&mut self) {
        for pid in [VIDEO_PID, AUDIO_PID] {
            let mut total = 0usize;
            let mut first = true;
            for u in self.units.iter_mut().filter(|u| u.pid == pid) {
                if first {
                    u.first.discontinuity = self.discontinuity;
                    first = false;
                }
                u.packets = min_packets(u.data.len(), &u.first);
                total += u.packets;
            }
            let mut extra = (16 - total % 16) % 16;
            for u in self.units.iter_mut().rev().filter(|u| u.pid == pid) {
                if extra == 0 {
                    break;
                }
                let room = max_packets(u.data.len()).saturating_sub(u.packets);
                let add = room.min(extra);
                u.packets += add;
                extra -= add;
            }
        }
    }

    /// The segment's bytes: PAT, PMT, then every PES packet, in 188-byte packets.
    pub fn finish(mut self) -> Bytes {
        self.plan_packets();
        let packets: usize = self.units.iter().map(|u| u.packets).sum();
        let mut out = BytesMut::with_capacity((packets + 2) * super::PACKET_SIZE);
        self.tables(&mut out);
        let (mut video_cc, mut audio_cc) = (0u8, 0u8);
        for u in &self.units {
            let cc = if u.pid == VIDEO_PID { &mut video_cc } else { &mut audio_cc };
            write_pes(&mut out, u.pid, cc, &u.data, u.first, u.packets);
        }
        out.freeze()
    }
}

#[cfg(test)]
#[path = "writer_tests.rs"]
mod tests;
