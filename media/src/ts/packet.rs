//! Transport packets: the 4-byte header, adaptation fields (PCR, flags, stuffing) and the
//! splitting of one PES packet or PSI section into 188-byte packets.

use bytes::{BufMut, BytesMut};

use super::{PACKET_SIZE, SYNC_BYTE, TIMESTAMP_MASK};

/// Payload bytes of a packet without an adaptation field.
const PAYLOAD_MAX: usize = PACKET_SIZE - 4;
const AF_DISCONTINUITY: u8 = 0x80;
const AF_RANDOM_ACCESS: u8 = 0x40;
const AF_PCR: u8 = 0x10;

/// Adaptation-field content of the first packet of a PES packet.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub(crate) struct FirstPacket {
    /// PCR base (90 kHz), when this PID carries the PCR.
    pub pcr: Option<u64>,
    pub random_access: bool,
    pub discontinuity: bool,
}

impl FirstPacket {
    /// Bytes the adaptation field needs before any stuffing (0: none needed).
    fn af_len(&self) -> usize {
        if self.pcr.is_some() {
            8
        } else if self.random_access || self.discontinuity {
            2
        } else {
            0
        }
    }

    fn flags(&self) -> u8 {
        let mut f = 0;
        if self.discontinuity {
            f |= AF_DISCONTINUITY;
        }
        if self.random_access {
            f |= AF_RANDOM_ACCESS;
        }
        if self.pcr.is_some() {
            f |= AF_PCR;
        }
        f
    }
}

/// Packets a PES packet of `len` bytes takes at the least.
pub(crate) fn min_packets(len: usize, first: &FirstPacket) -> usize {
    let first_cap = PAYLOAD_MAX - first.af_len();
    if len <= first_cap {
        1
    } else {
        1 + (len - first_cap).div_ceil(PAYLOAD_MAX)
    }
}

/// Packets a PES packet of `len` bytes can be spread over (each carries at least one byte).
pub(crate) fn max_packets(len: usize) -> usize {
    len.max(1)
}

fn header(out: &mut BytesMut, pid: u16, start: bool, adaptation: bool, cc: u8) {
    out.put_u8(SYNC_BYTE);
    out.put_u8((u8::from(start) << 6) | ((pid >> 8) as u8 & 0x1F));
    out.put_u8(pid as u8);
    let afc = if adaptation { 0x30 } else { 0x10 };
    out.put_u8(afc | (cc & 0x0F));
}

fn put_pcr(out: &mut BytesMut, pcr: u64) {
    let base = pcr & TIMESTAMP_MASK;
    out.put_u8((base >> 25) as u8);
    out.put_u8((base >> 17) as u8);
    out.put_u8((base >> 9) as u8);
    out.put_u8((base >> 1) as u8);
    // Last base bit, 6 reserved bits, extension (0).
    out.put_u8((((base & 1) as u8) << 7) | 0x7E);
    out.put_u8(0);
}

/// Write `data` (one whole PES packet) as `packets` packets of `pid` (clamped to what the
/// data allows), counting on from `*cc`. Packets not filled are stuffed in their adaptation
/// field.
pub(crate) fn write_pes(
    out: &mut BytesMut,
    pid: u16,
    cc: &mut u8,
    data: &[u8],
    first: FirstPacket,
    packets: usize,
) {
    let k = packets.clamp(min_packets(data.len(), &first), max_packets(data.len()));
    let mut rest = data;
    for i in 0..k {
        let base = if i == 0 { first.af_len() } else { 0 };
        let cap = PAYLOAD_MAX - base;
        let after = k - 1 - i;
        let take = cap.min(rest.len().saturating_sub(after)).max(1).min(rest.len());
        let stuffing = cap - take;
        let af_total = base + stuffing;
        header(out, pid, i == 0, af_total > 0, *cc);
        *cc = (*cc + 1) & 0x0F;
        if af_total > 0 {
            out.put_u8((af_total - 1) as u8);
            if af_total > 1 {
                out.put_u8(if i == 0 { first.flags() } else { 0 });
                if i == 0 {
                    if let Some(pcr) = first.pcr {
                        put_pcr(out, pcr);
                    }
                }
                let fixed = if base > 0 { base } else { 2 };
                out.put_bytes(0xFF, af_total - fixed);
            }
        }
        let (now, later) = rest.split_at(take);
        out.put_slice(now);
        rest = later;
    }
}

/// Write one PSI section (at most 183 bytes) as a single packet with `pointer_field` 0.
pub(crate) fn write_section(out: &mut BytesMut, pid: u16, cc: u8, section: &[u8]) {
    let section = section.get(..PAYLOAD_MAX - 1).unwrap_or(section);
    header(out, pid, true, false, cc);
    out.put_u8(0);
    out.put_slice(section);
    out.put_bytes(0xFF, PAYLOAD_MAX - 1 - section.len());
}

#[cfg(test)]
mod tests {
    use super::*;

    fn packets(out: &[u8]) -> Vec<&[u8]> {
        assert_eq!(out.len() % PACKET_SIZE, 0);
        out.chunks(PACKET_SIZE).collect()
    }

    /// Payload of a packet: after the header and any adaptation field.
    fn payload(p: &[u8]) -> &[u8] {
        if p[3] & 0x20 != 0 {
            &p[5 + p[4] as usize..]
        } else {
            &p[4..]
        }
    }

    #[test]
    fn pes_split_and_reassembled() {
        for len in [1usize, 100, 176, 177, 183, 184, 185, 400, 5000] {
            let data: Vec<u8> = (0..len).map(|i| i as u8).collect();
            for first in [
                FirstPacket::default(),
                FirstPacket { pcr: Some(123_456), random_access: true, discontinuity: false },
            ] {
                let mut out = BytesMut::new();
                let mut cc = 14;
                write_pes(&mut out, 0x100, &mut cc, &data, first, 0);
                let ps = packets(&out);
                assert_eq!(ps.len(), min_packets(len, &first), "len {len}");
                let mut joined = Vec::new();
                for (i, p) in ps.iter().enumerate() {
                    assert_eq!(p[0], SYNC_BYTE);
                    assert_eq!(p[1] & 0x40 != 0, i == 0, "PUSI only on the first");
                    assert_eq!(((p[1] as u16 & 0x1F) << 8) | p[2] as u16, 0x100);
                    assert_eq!(p[3] & 0x0F, ((14 + i) % 16) as u8);
                    joined.extend_from_slice(payload(p));
                }
                assert_eq!(joined, data);
                assert_eq!(cc as usize, (14 + ps.len()) % 16);
            }
        }
    }

    #[test]
    fn pcr_field_encodes_the_base() {
        let mut out = BytesMut::new();
        let mut cc = 0;
        let pcr = (1u64 << 32) + 0x1234_5679;
        let first = FirstPacket { pcr: Some(pcr), random_access: true, discontinuity: true };
        write_pes(&mut out, 0x100, &mut cc, &[0u8; 10], first, 0);
        assert_eq!(out[4] as usize, 183 - 10); // adaptation length: all but payload
        assert_eq!(out[5], 0x80 | 0x40 | 0x10);
        let b = &out[6..12];
        let base = (u64::from(b[0]) << 25)
            | (u64::from(b[1]) << 17)
            | (u64::from(b[2]) << 9)
            | (u64::from(b[3]) << 1)
            | (u64::from(b[4]) >> 7);
        assert_eq!(base, pcr);
        assert_eq!(b[4] & 0x7E, 0x7E);
    }

    #[test]
    fn stretched_over_more_packets() {
        let data = vec![7u8; 300];
        let mut out = BytesMut::new();
        let mut cc = 0;
        write_pes(&mut out, 0x101, &mut cc, &data, FirstPacket::default(), 9);
        let ps = packets(&out);
        assert_eq!(ps.len(), 9);
        let joined: Vec<u8> = ps.iter().flat_map(|p| payload(p).to_vec()).collect();
        assert_eq!(joined, data);
        assert!(ps.iter().all(|p| !payload(p).is_empty()));
        // Asking for more packets than bytes gives one byte per packet.
        let mut out = BytesMut::new();
        write_pes(&mut out, 0x101, &mut cc, &[1, 2, 3], FirstPacket::default(), 10);
        assert_eq!(packets(&out).len(), 3);
    }

    #[test]
    fn one_byte_of_stuffing_is_a_bare_length() {
        let mut out = BytesMut::new();
        let mut cc = 0;
        write_pes(&mut out, 0x101, &mut cc, &[9u8; 183], FirstPacket::default(), 0);
        assert_eq!(out.len(), 188);
        assert_eq!(out[3] & 0x30, 0x30);
        assert_eq!(out[4], 0);
        assert_eq!(&out[5..], &[9u8; 183][..]);
    }

    #[test]
    fn section_packet() {
        let mut out = BytesMut::new();
        write_section(&mut out, 0, 5, &[1, 2, 3]);
        assert_eq!(out.len(), 188);
        assert_eq!(&out[..8], &[0x47, 0x40, 0x00, 0x15, 0x00, 1, 2, 3]);
        assert!(out[8..].iter().all(|&b| b == 0xFF));
    }
}
