//! CMAF fragments (`moof` + `mdat`, one track each): the bytes of one partial segment.
//!
//! A part is one fragment per track that has samples, video first, written back to back:
//! HLS serves the part (and a segment, the concatenation of its parts) as one muxed object,
//! and MPEG-DASH serves each track's fragments alone (non-multiplexed, as DASH-IF IOP and
//! dash.js require) as slices of the same buffer, with no second copy.

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

/// The fragments of one part, back to back.
pub(crate) struct Fragments {
    pub bytes: Bytes,
    /// Length of each run's fragment, in the order of the runs (0 for a run without samples).
    pub lens: Vec<usize>,
    /// Fragments written (each takes one sequence number).
    pub count: u32,
}

/// Serialise one fragment per run with samples, numbered from `sequence`. Sample data is
/// copied once, into the returned buffer.
pub(crate) fn write_fragments(sequence: u32, runs: &[TrackRun<'_>]) -> Fragments {
    let data_len: usize = runs.iter().flat_map(|r| r.samples.iter()).map(|s| s.data.len()).sum();
    let samples: usize = runs.iter().map(|r| r.samples.len()).sum();
    let mut out = BytesMut::with_capacity(runs.len() * 128 + samples * 16 + data_len);
    let mut lens = Vec::with_capacity(runs.len());
    let mut count = 0u32;
    for run in runs {
        let before = out.len();
        if !run.samples.is_empty() {
            write_one(&mut out, sequence.wrapping_add(count), run);
            count += 1;
        }
        lens.push(out.len() - before);
    }
    Fragments { bytes: out.freeze(), lens, count }
}

fn write_one(out: &mut BytesMut, sequence: u32, run: &TrackRun<'_>) {
    let data_len: usize = run.samples.iter().map(|s| s.data.len()).sum();
    let mut w = BoxWriter::with_capacity(96 + run.samples.len() * 16);
    let moof = w.open(b"moof");
    let mfhd = w.open_full(b"mfhd", 0, 0);
    w.u32(sequence);
    w.close(mfhd);
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
    let offset_field = w.position();
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
    w.close(moof);
    // The data starts after the moof and the mdat header.
    let v = i32::try_from(w.position() + 8).unwrap_or(i32::MAX);
    if let Some(dst) = w.buf.get_mut(offset_field..offset_field + 4) {
        dst.copy_from_slice(&v.to_be_bytes());
    }
    out.put_slice(&w.buf);
    out.put_u32(u32::try_from(8 + data_len).unwrap_or(u32::MAX));
    out.put_slice(b"mdat");
    for s in run.samples {
        out.put_slice(&s.data);
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn sample(dts: u64, key: bool, data: &'static [u8]) -> Sample {
        Sample { dts, duration: 3000, cts: -6000, key, data: Bytes::from_static(data) }
    }

    #[test]
    fn one_fragment_per_track_with_offsets_into_its_mdat() {
        let v = [sample(9000, true, b"abc"), sample(12000, false, b"de")];
        let a = [sample(100, true, b"xyz")];
        let out = write_fragments(
            7,
            &[
                TrackRun { track_id: 1, samples: &v, composition_offsets: true },
                TrackRun { track_id: 3, samples: &[], composition_offsets: false },
                TrackRun { track_id: 2, samples: &a, composition_offsets: false },
            ],
        );
        assert_eq!(out.count, 2);
        assert_eq!(out.lens.len(), 3);
        assert_eq!(out.lens[1], 0);
        assert_eq!(out.lens[0] + out.lens[2], out.bytes.len());
        let frags = [out.bytes.slice(..out.lens[0]), out.bytes.slice(out.lens[0]..)];
        for (i, (frag, data)) in frags.iter().zip([&b"abcde"[..], b"xyz"]).enumerate() {
            let moof_len = u32::from_be_bytes(frag[0..4].try_into().unwrap()) as usize;
            assert_eq!(&frag[4..8], b"moof");
            assert_eq!(&frag[moof_len + 4..moof_len + 8], b"mdat");
            assert_eq!(&frag[moof_len + 8..], data);
            assert_eq!(frag.windows(4).filter(|w| w == b"traf").count(), 1);
            // mfhd sequence: 7 then 8.
            assert_eq!(u32::from_be_bytes(frag[20..24].try_into().unwrap()), 7 + i as u32);
            let t = frag.windows(4).position(|w| w == b"trun").unwrap();
            assert_eq!(frag[t + 4], u8::from(i == 0)); // v1 (signed cts) for video
            let p = t + 4 + 4 + 4;
            let off = i32::from_be_bytes(frag[p..p + 4].try_into().unwrap()) as usize;
            assert_eq!(off, moof_len + 8);
        }
    }
}
