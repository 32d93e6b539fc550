use super::*;
use crate::ts::reader::read_ts;
use crate::ts::{PACKET_SIZE, SYNC_BYTE};

fn video() -> TsVideo {
    TsVideo {
        config: AnnexBConfig {
            hevc: false,
            nal_length_size: 4,
            parameter_sets: vec![
                Bytes::from_static(&[0x67, 0x42, 0x00, 0x1F]),
                Bytes::from_static(&[0x68, 0xCE]),
            ],
        },
    }
}

fn audio() -> TsAudio {
    TsAudio::aac(&[0x11, 0x90]).unwrap()
}

fn au(nal: &[u8]) -> Vec<u8> {
    let mut v = (nal.len() as u32).to_be_bytes().to_vec();
    v.extend_from_slice(nal);
    v
}

#[test]
fn structure_counters_and_tables() {
    let mut w = TsWriter::new(Some(video()), Some(audio()), 21, 3, false);
    let big = vec![0x65u8; 5000];
    w.video(90_000, 6000, true, &au(&big)).unwrap();
    for i in 0..3u64 {
        w.audio(90_000 + i * 1920, &[0x21; 300]).unwrap();
    }
    w.video(93_000, 0, false, &au(&[0x41, 1, 2])).unwrap();
    w.audio(96_000, &[0x21; 300]).unwrap();
    let out = w.finish();
    assert_eq!(out.len() % PACKET_SIZE, 0);
    assert!(out.chunks(PACKET_SIZE).all(|p| p[0] == SYNC_BYTE));
    let c = read_ts(&out).unwrap();
    assert_eq!(c.cc_errors, 0);
    assert_eq!(c.pmt_pid, Some(PMT_PID));
    assert_eq!(c.pcr_pid, Some(VIDEO_PID));
    assert_eq!(c.pmt_version, Some(3));
    assert_eq!(c.streams, vec![(STREAM_TYPE_H264, VIDEO_PID), (STREAM_TYPE_AAC_ADTS, AUDIO_PID)]);
    // Tables carry sequence mod 16; elementary PIDs run 0..=15 (padded).
    for (pid, first, last) in &c.counters {
        match *pid {
            PAT_PID | PMT_PID => assert_eq!((*first, *last), (5, 5)),
            _ => assert_eq!((*first, *last), (0, 15), "pid {pid:#x}"),
        }
    }
    let v: Vec<_> = c.pes.iter().filter(|p| p.pid == VIDEO_PID).collect();
    assert_eq!(v.len(), 2);
    assert_eq!(v[0].pts, Some(90_000 + 6000 + PTS_OFFSET));
    assert_eq!(v[0].dts, Some(90_000 + PTS_OFFSET));
    assert_eq!(v[0].pcr, Some(90_000));
    assert!(v[0].random_access && !v[1].random_access);
    assert_eq!((v[1].pts, v[1].dts), (Some(93_000 + PTS_OFFSET), None));
    // PES header with PTS and DTS (19), AUD (6), SPS (8), PPS (6), the slice (4 + 5000).
    assert_eq!(usize::from(v[0].declared_len) + 6, 19 + 6 + 8 + 6 + 4 + 5000);
    assert!(v[0].payload.starts_with(&[0, 0, 0, 1, 0x09, 0xF0, 0, 0, 0, 1, 0x67]));
    assert!(v[0].payload.ends_with(&big[4900..]));
    let a: Vec<_> = c.pes.iter().filter(|p| p.pid == AUDIO_PID).collect();
    assert_eq!(a.len(), 2, "three frames grouped, then one after the video frame");
    assert_eq!(a[0].pts, Some(90_000 + PTS_OFFSET));
    assert_eq!(a[0].payload.len(), 3 * 307);
    assert_eq!(&a[0].payload[..2], &[0xFF, 0xF1]);
    assert_eq!(a[1].pts, Some(96_000 + PTS_OFFSET));
    assert!(a.iter().all(|p| p.pcr.is_none() && p.declared_len > 0));
}

#[test]
fn audio_only_carries_pcr_and_groups_four() {
    let mut w = TsWriter::new(None, Some(audio()), 0, 0, true);
    for i in 0..9u64 {
        w.audio(i * 1920, &[0x21; 10]).unwrap();
    }
    assert!(w.video(0, 0, true, &au(&[0x65])).is_err());
    assert_eq!(w.dropped_frames(), 1);
    let c = read_ts(&w.finish()).unwrap();
    assert_eq!(c.pcr_pid, Some(AUDIO_PID));
    assert_eq!(c.streams, vec![(STREAM_TYPE_AAC_ADTS, AUDIO_PID)]);
    let pts: Vec<_> = c.pes.iter().map(|p| p.pts.unwrap() - PTS_OFFSET).collect();
    assert_eq!(pts, vec![0, 4 * 1920, 8 * 1920]);
    assert_eq!(c.pes[0].pcr, Some(0));
    assert!(c.pes[0].discontinuity && !c.pes[1].discontinuity);
    assert_eq!(c.cc_errors, 0);
}

#[test]
fn malformed_frames_are_dropped_and_counted() {
    let mut w = TsWriter::new(Some(video()), Some(audio()), 0, 0, false);
    assert!(w.video(0, 0, true, &[0, 0, 1, 0, 0x65]).is_err());
    assert!(w.audio(0, &vec![0; 9000]).is_err());
    w.video(3000, 0, true, &au(&[0x65, 1])).unwrap();
    assert_eq!(w.dropped_frames(), 2);
    let c = read_ts(&w.finish()).unwrap();
    assert_eq!(c.pes.len(), 1);
    assert_eq!(c.pes[0].dts.or(c.pes[0].pts), Some(3000 + PTS_OFFSET));
}

#[test]
fn timestamps_wrap_at_33_bits_and_negative_offsets_stay_valid() {
    let mut w = TsWriter::new(Some(video()), None, 0, 0, false);
    let t = (1u64 << 33) - 100;
    w.video(t, -200, true, &au(&[0x65])).unwrap();
    let c = read_ts(&w.finish()).unwrap();
    let p = &c.pes[0];
    assert_eq!(p.dts, Some((t + PTS_OFFSET) & TIMESTAMP_MASK));
    assert_eq!(p.pts, Some((t + PTS_OFFSET - 200) & TIMESTAMP_MASK));
    assert_eq!(p.pcr, Some(t));
}

#[test]
fn pes_timestamp_bits() {
    let mut v = Vec::new();
    put_timestamp(&mut v, 0x2, 0x1_2345_6789);
    // '0010' + bits 32..30 + marker, then 15 bits + marker, 15 bits + marker.
    assert_eq!(v, vec![0x29, 0x8D, 0x15, 0xCF, 0x13]);
}
