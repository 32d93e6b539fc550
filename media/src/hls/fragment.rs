//! One CMAF fragment (`moof` + `mdat`): the bytes of one partial segment.
//!
//! Each part is a self-contained fragment with a `traf` per track that has samples, so a
//! segment is simply the concatenation of its parts' bytes.

use bytes::{BufMut, Bytes, BytesMut};

use super::boxes::BoxWriter;
use super::track::Sample;

const TFHD_DEFAULT_BASE_IS_MOOF: u32 = 0x02_0000;
const TRUN_DATA_OFFSET: u32 = 0x0001;
const TRUN_DURATION: u32 = 0x0100;
const TRUN_SIZE: u32 = 0x0200;
const TRUN_FLAGS: u32 = 0x0400;
const TRUN_CTS: u32 = 0x0800;
/// sample_depends_on = 2 (independent), is_non_sync = 0.
const FLAGS_SYNC: u32 = 0x0200_0000;
/// sample_depends_on = 1, is_non_sync = 1.
const FLAGS_NON_SYNC: u32 = 0x0101_0000;

/// The samples of one track in a fragment.
pub(crate) struct TrackRun<'a> {
    pub track_id: u32,
    pub samples: &'a [Sample],
    /// Write signed composition offsets (video).
    pub composition_offsets: bool,
}

/// Serialise a fragment with sequence number `sequence`. Runs without samples are skipped.
/// Sample data is copied once, into the returned buffer.
pub(crate) fn write_fragment(sequence: u32, runs: &[TrackRun<'_>]) -> Bytes {
    let runs: Vec<&TrackRun> = runs.iter().filter(|r| !r.samples.is_empty()).collect();
    let data_len: usize = runs.iter().flat_map(|r| r.samples.iter()).map(|s| s.data.len()).sum();
    let samples: usize = runs.iter().map(|r| r.samples.len()).sum();
    let mut w = BoxWriter::with_capacity(64 + runs.len() * 64 + samples * 16);
    let moof = w.open(b"moof");
    let mfhd = w.open_full(b"mfhd", 0, 0);
    w.u32(sequence);
    w.close(mfhd);
    let mut offset_fields = Vec::with_capacity(runs.len());
    for run in &runs {
        let traf = w.open(b"traf");
        let tfhd = w.open_full(b"tfhd", 0, TFHD_DEFAULT_BASE_IS_MOOF);
        w.u32(run.track_id);
        w.close(tfhd);
        let tfdt = w.open_full(b"tfdt", 1, 0);
        w.u64(run.samples.first().map_or(0, |s| s.dts));
        w.close(tfdt);
        let mut flags = TRUN_DATA_OFFSET | TRUN_DURATION | TRUN_SIZE | TRUN_FLAGS;
        if run.composition_offsets {
            flags |= TRUN_CTS;
        }
        let trun = w.open_full(b"trun", u8::from(run.composition_offsets), flags);
        w.u32(run.samples.len() as u32);
        offset_fields.push(w.position());
        w.i32(0); // data_offset, patched below
        for s in run.samples {
            w.u32(s.duration);
            w.u32(s.data.len() as u32);
            w.u32(if s.key { FLAGS_SYNC } else { FLAGS_NON_SYNC });
            if run.composition_offsets {
                w.i32(s.cts);
            }
        }
        w.close(trun);
        w.close(traf);
    }
    w.close(moof);
    // Data of run i starts after the moof, the mdat header and the data of runs before it.
    let mut offset = w.position() + 8;
    for (run, field) in runs.iter().zip(offset_fields) {
        let v = i32::try_from(offset).unwrap_or(i32::MAX);
        if let Some(dst) = w.buf.get_mut(field..field + 4) {
            dst.copy_from_slice(&v.to_be_bytes());
        }
        offset += run.samples.iter().map(|s| s.data.len()).sum::<usize>();
    }
    let mut out = BytesMut::with_capacity(w.buf.len() + 8 + data_len);
    out.put_slice(&w.buf);
    out.put_u32(u32::try_from(8 + data_len).unwrap_or(u32::MAX));
    out.put_slice(b"mdat");
    for s in runs.iter().flat_map(|r| r.samples.iter()) {
        out.put_slice(&s.data);
    }
    out.freeze()
}

#[cfg(test)]
mod tests {
    use super::*;

    fn sample(dts: u64, key: bool, data: &'static [u8]) -> Sample {
        Sample { dts, duration: 3000, cts: -6000, key, data: Bytes::from_static(data) }
    }

    #[test]
    fn offsets_point_into_mdat() {
        let v = [sample(9000, true, b"abc"), sample(12000, false, b"de")];
        let a = [sample(100, true, b"xyz")];
        let out = write_fragment(
            7,
            &[
                TrackRun { track_id: 1, samples: &v, composition_offsets: true },
                TrackRun { track_id: 2, samples: &a, composition_offsets: false },
                TrackRun { track_id: 3, samples: &[], composition_offsets: false },
            ],
        );
        let moof_len = u32::from_be_bytes(out[0..4].try_into().unwrap()) as usize;
        assert_eq!(&out[4..8], b"moof");
        assert_eq!(&out[moof_len + 4..moof_len + 8], b"mdat");
        assert_eq!(&out[moof_len + 8..], b"abcdexyz");
        assert_eq!(out.len(), moof_len + 16);
        // Both data offsets, found after each "trun" header + sample count.
        let mut offsets = Vec::new();
        for i in 0..moof_len - 4 {
            if &out[i..i + 4] == b"trun" {
                let p = i + 4 + 4 + 4;
                offsets.push(i32::from_be_bytes(out[p..p + 4].try_into().unwrap()) as usize);
                assert_eq!(out[i + 4], u8::from(offsets.len() == 1)); // v1 for video
            }
        }
        assert_eq!(offsets, vec![moof_len + 8, moof_len + 8 + 5]);
        assert_eq!(out.windows(4).filter(|w| w == b"traf").count(), 2);
    }
}
