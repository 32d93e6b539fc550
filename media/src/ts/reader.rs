//! A strict reader of what [`super::TsWriter`] writes: for tests and diagnostics (checking a
//! segment's structure), not a general demuxer. Never panics on any input.

use super::crc::crc32_mpeg2;
use super::{TsError, PACKET_SIZE, PAT_PID, SYNC_BYTE};

/// One reassembled PES packet.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct PesPacket {
    pub pid: u16,
    pub stream_id: u8,
    pub pts: Option<u64>,
    pub dts: Option<u64>,
    /// PCR base carried by its first packet.
    pub pcr: Option<u64>,
    pub random_access: bool,
    pub discontinuity: bool,
    /// The value of PES_packet_length (0: unbounded).
    pub declared_len: u16,
    /// The elementary stream bytes (after the PES header).
    pub payload: Vec<u8>,
}

/// What a segment contains.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct TsContents {
    pub packets: usize,
    /// PMT PID announced by the PAT.
    pub pmt_pid: Option<u16>,
    pub pcr_pid: Option<u16>,
    pub pmt_version: Option<u8>,
    /// (stream_type, PID) from the PMT.
    pub streams: Vec<(u8, u16)>,
    pub pes: Vec<PesPacket>,
    /// (PID, first continuity counter, last continuity counter) in order of appearance.
    pub counters: Vec<(u16, u8, u8)>,
    /// Continuity counter jumps inside the segment.
    pub cc_errors: usize,
}

/// Adaptation-field facts of a PES packet's first packet: (PCR, random access, discontinuity).
type FirstFields = (Option<u64>, bool, bool);

fn read_timestamp(b: &[u8]) -> Option<u64> {
    let b = b.get(..5)?;
    Some(
        (u64::from(b[0] >> 1 & 0x07) << 30)
            | (u64::from(b[1]) << 22)
            | (u64::from(b[2] >> 1) << 15)
            | (u64::from(b[3]) << 7)
            | u64::from(b[4] >> 1),
    )
}

fn read_section(payload: &[u8]) -> Result<&[u8], TsError> {
    let bad = TsError::Malformed("PSI section");
    let pointer = usize::from(*payload.first().ok_or(bad.clone())?);
    let s = payload.get(1 + pointer..).ok_or(bad.clone())?;
    let len = usize::from(
        u16::from_be_bytes([*s.get(1).ok_or(bad.clone())?, *s.get(2).ok_or(bad.clone())?]) & 0x0FFF,
    );
    let s = s.get(..3 + len).ok_or(bad)?;
    if crc32_mpeg2(s) != 0 {
        return Err(TsError::Malformed("PSI CRC mismatch"));
    }
    Ok(s)
}

fn finish_pes(pid: u16, buf: &[u8], af: FirstFields) -> Result<PesPacket, TsError> {
    let bad = TsError::Malformed("PES header");
    let h = buf.get(..9).ok_or(bad.clone())?;
    if h[..3] != [0, 0, 1] {
        return Err(bad);
    }
    let flags = h[7];
    let hdl = usize::from(h[8]);
    let opt = buf.get(9..9 + hdl).ok_or(bad.clone())?;
    let pts = if flags & 0x80 != 0 { read_timestamp(opt) } else { None };
    let dts = if flags & 0x40 != 0 { read_timestamp(opt.get(5..).unwrap_or(&[])) } else { None };
    let declared_len = u16::from_be_bytes([h[4], h[5]]);
    if declared_len != 0 && usize::from(declared_len) + 6 != buf.len() {
        return Err(TsError::Malformed("PES_packet_length does not match"));
    }
    Ok(PesPacket {
        pid,
        stream_id: h[3],
        pts,
        dts,
        pcr: af.0,
        random_access: af.1,
        discontinuity: af.2,
        declared_len,
        payload: buf.get(9 + hdl..).unwrap_or(&[]).to_vec(),
    })
}

/// Read a whole segment: every packet must be 188 bytes with the sync byte, PSI sections
/// must pass their CRC, PES headers must be well formed.
pub fn read_ts(data: &[u8]) -> Result<TsContents, TsError> {
    if !data.len().is_multiple_of(PACKET_SIZE) {
        return Err(TsError::Malformed("length not a multiple of 188"));
    }
    let mut c = TsContents::default();
    let mut open: Vec<(u16, Vec<u8>, FirstFields)> = Vec::new();
    for p in data.chunks(PACKET_SIZE) {
        c.packets += 1;
        if p[0] != SYNC_BYTE {
            return Err(TsError::Malformed("sync byte"));
        }
        let pusi = p[1] & 0x40 != 0;
        let pid = (u16::from(p[1] & 0x1F) << 8) | u16::from(p[2]);
        let afc = (p[3] >> 4) & 3;
        let cc = p[3] & 0x0F;
        match c.counters.iter_mut().find(|(q, _, _)| *q == pid) {
            Some(entry) => {
                if afc & 1 != 0 && cc != (entry.2 + 1) & 0x0F {
                    c.cc_errors += 1;
                }
                entry.2 = cc;
            }
            None => c.counters.push((pid, cc, cc)),
        }
        let mut at = 4;
        let mut af = (None, false, false);
        if afc & 2 != 0 {
            let len = usize::from(p[4]);
            if len > 183 {
                return Err(TsError::Malformed("adaptation field length"));
            }
            if len > 0 {
                let flags = p[5];
                af.1 = flags & 0x40 != 0;
                af.2 = flags & 0x80 != 0;
                if flags & 0x10 != 0 {
                    let b = p.get(6..12).ok_or(TsError::Malformed("PCR"))?;
                    af.0 = Some(
                        (u64::from(b[0]) << 25)
                            | (u64::from(b[1]) << 17)
                            | (u64::from(b[2]) << 9)
                            | (u64::from(b[3]) << 1)
                            | u64::from(b[4] >> 7),
                    );
                }
            }
            at = 5 + len;
        }
        let payload = if afc & 1 != 0 { p.get(at..).unwrap_or(&[]) } else { &[] };
        if pid == PAT_PID {
            let s = read_section(payload)?;
            c.pmt_pid = s.get(10..12).map(|b| u16::from_be_bytes([b[0], b[1]]) & 0x1FFF);
            continue;
        }
        if Some(pid) == c.pmt_pid {
            let s = read_section(payload)?;
            c.pmt_version = s.get(5).map(|v| (v >> 1) & 0x1F);
            c.pcr_pid = s.get(8..10).map(|b| u16::from_be_bytes([b[0], b[1]]) & 0x1FFF);
            let mut es = s.get(12..s.len().saturating_sub(4)).unwrap_or(&[]);
            while let [t, a, b, _, _, rest @ ..] = es {
                c.streams.push((*t, (u16::from(*a & 0x1F) << 8) | u16::from(*b)));
                es = rest;
            }
            continue;
        }
        if pusi {
            if let Some(i) = open.iter().position(|(q, _, _)| *q == pid) {
                let (q, buf, a) = open.remove(i);
                c.pes.push(finish_pes(q, &buf, a)?);
            }
            open.push((pid, payload.to_vec(), af));
        } else if let Some((_, buf, _)) = open.iter_mut().find(|(q, _, _)| *q == pid) {
            buf.extend_from_slice(payload);
        }
    }
    for (q, buf, a) in open {
        c.pes.push(finish_pes(q, &buf, a)?);
    }
    Ok(c)
}
