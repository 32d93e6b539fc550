//! Segment stamps: where the ingest origin's segmenter opened a segment.
//!
//! Every node that serves a stream runs its own segmenter, but only the ingest origin decides
//! the cut points and numbers. Its segmenter reports each segment it opens
//! ([`crate::hls::Segmenter::take_opened`]); the stamp travels with the keyframe that opened it
//! (over the relay, through home origins to edges), and a follower positions its segmenter
//! from it ([`crate::hls::Segmenter::follow`]). From that keyframe on, the follower's parts,
//! segments, numbers and program date-times are the ingest's, byte for byte, so a player or a
//! CDN can switch nodes mid-stream. A follower whose own cut disagrees with a stamp starts over
//! from the stamp.

use bytes::{Buf, BufMut, Bytes, BytesMut};

/// Wire format version of an encoded stamp.
const VERSION: u8 = 1;

/// Where a segment was opened, in the ingest's numbering and media time.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct SegmentStamp {
    /// Media sequence number of the segment.
    pub msn: u64,
    /// The segment's discontinuity sequence (`EXT-X-DISCONTINUITY-SEQUENCE` counting it).
    pub discontinuity_sequence: u64,
    /// Whether the segment starts with `EXT-X-DISCONTINUITY`.
    pub discontinuity: bool,
    /// Id of the init segment the segment uses.
    pub init_id: u32,
    /// `mfhd` sequence number of the segment's first part.
    pub fragment_sequence: u32,
    /// Segment start, media time in 90 kHz ticks.
    pub start_ticks: u64,
    /// Program date-time epoch (ms since the Unix epoch at media time 0), if any.
    pub epoch_ms: Option<u64>,
    /// `EXT-X-TARGETDURATION` so far (seconds).
    pub target_duration_s: u64,
    /// Longest part so far (90 kHz ticks), for `PART-TARGET`.
    pub max_part_ticks: u64,
    /// Decode time the next audio sample continues from (audio sample-rate units): audio
    /// timestamps are sample-accurate, not rounded milliseconds.
    pub audio_next_dts: Option<u64>,
}

impl SegmentStamp {
    /// Encoded size in bytes.
    pub const LEN: usize = 1 + 8 + 8 + 1 + 4 + 4 + 8 + 1 + 8 + 8 + 8 + 1 + 8;

    pub fn encode(&self) -> Bytes {
        let mut b = BytesMut::with_capacity(Self::LEN);
        b.put_u8(VERSION);
        b.put_u64(self.msn);
        b.put_u64(self.discontinuity_sequence);
        b.put_u8(u8::from(self.discontinuity));
        b.put_u32(self.init_id);
        b.put_u32(self.fragment_sequence);
        b.put_u64(self.start_ticks);
        b.put_u8(u8::from(self.epoch_ms.is_some()));
        b.put_u64(self.epoch_ms.unwrap_or(0));
        b.put_u64(self.target_duration_s);
        b.put_u64(self.max_part_ticks);
        b.put_u8(u8::from(self.audio_next_dts.is_some()));
        b.put_u64(self.audio_next_dts.unwrap_or(0));
        b.freeze()
    }

    /// Whether every number is in a range a real stream reaches (numbers and media times far
    /// below where arithmetic on them could overflow). A follower ignores any other stamp: it
    /// comes from a peer.
    pub fn is_plausible(&self) -> bool {
        /// 2^53: beyond any sequence number or 90 kHz time a stream reaches (~3 000 years).
        const MAX_COUNT: u64 = 1 << 53;
        /// Year 9999 in ms since the Unix epoch.
        const MAX_EPOCH_MS: u64 = 253_402_300_799_999;
        self.msn < MAX_COUNT
            && self.discontinuity_sequence < MAX_COUNT
            && self.start_ticks < MAX_COUNT
            && self.epoch_ms.is_none_or(|e| e <= MAX_EPOCH_MS)
            && self.target_duration_s <= 3600
            && self.max_part_ticks < MAX_COUNT
            && self.audio_next_dts.is_none_or(|d| d < MAX_COUNT)
    }

    /// Decodes a stamp from a peer; `None` for anything that is not exactly a version-1 stamp.
    pub fn decode(mut b: &[u8]) -> Option<SegmentStamp> {
        if b.len() != Self::LEN || b.get_u8() != VERSION {
            return None;
        }
        let msn = b.get_u64();
        let discontinuity_sequence = b.get_u64();
        let discontinuity = match b.get_u8() {
            0 => false,
            1 => true,
            _ => return None,
        };
        let init_id = b.get_u32();
        let fragment_sequence = b.get_u32();
        let start_ticks = b.get_u64();
        let has_epoch = b.get_u8();
        let epoch = b.get_u64();
        let epoch_ms = match has_epoch {
            0 => None,
            1 => Some(epoch),
            _ => return None,
        };
        let target_duration_s = b.get_u64();
        let max_part_ticks = b.get_u64();
        let has_audio = b.get_u8();
        let audio = b.get_u64();
        let audio_next_dts = match has_audio {
            0 => None,
            1 => Some(audio),
            _ => return None,
        };
        Some(SegmentStamp {
            msn,
            discontinuity_sequence,
            discontinuity,
            init_id,
            fragment_sequence,
            start_ticks,
            epoch_ms,
            target_duration_s,
            max_part_ticks,
            audio_next_dts,
        })
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn round_trip_and_rejects() {
        let s = SegmentStamp {
            msn: 17_000_000_000,
            discontinuity_sequence: 3,
            discontinuity: true,
            init_id: 1_700_000_000,
            fragment_sequence: 99,
            start_ticks: 90_000 * 3600,
            epoch_ms: Some(1_790_000_000_000),
            target_duration_s: 4,
            max_part_ticks: 45_000,
            audio_next_dts: Some(48_000 * 3600),
        };
        let e = s.encode();
        assert_eq!(e.len(), SegmentStamp::LEN);
        assert_eq!(SegmentStamp::decode(&e), Some(s));
        let none = SegmentStamp { epoch_ms: None, discontinuity: false, audio_next_dts: None, ..s };
        assert_eq!(SegmentStamp::decode(&none.encode()), Some(none));
        assert_eq!(SegmentStamp::decode(&e[..e.len() - 1]), None, "short");
        let mut bad = e.to_vec();
        bad[0] = 2;
        assert_eq!(SegmentStamp::decode(&bad), None, "version");
        let mut bad = e.to_vec();
        bad[17] = 7;
        assert_eq!(SegmentStamp::decode(&bad), None, "flag byte");
        assert!(s.is_plausible());
        for wild in [
            SegmentStamp { msn: u64::MAX, ..s },
            SegmentStamp { start_ticks: u64::MAX - 5, ..s },
            SegmentStamp { epoch_ms: Some(u64::MAX), ..s },
            SegmentStamp { target_duration_s: 1 << 40, ..s },
            SegmentStamp { audio_next_dts: Some(u64::MAX), ..s },
        ] {
            assert!(!wild.is_plausible(), "{wild:?}");
        }
    }
}
