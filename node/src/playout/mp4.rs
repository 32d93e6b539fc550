//! MP4 files played out (sans-IO): the `moov` of a progressive MP4 (as `ffmpeg -c copy` or an
//! editor writes it) read into the order its samples go out in, and each sample as the FLV tag
//! body a publisher would send. The first H.264 or H.265 video track and the first AAC track
//! are played; others are left out. Box decoding is `mp4-atom`'s.
//!
//! Sample tables come from the file, which the operator put there but which is still checked:
//! counts are bounded ([`MAX_SAMPLES`]), offsets and sizes are taken as they are and the reader
//! checks each sample against [`super::runner`]'s tag bound when it reads it.

use bytes::{BufMut, Bytes, BytesMut};
use mp4_atom::{Atom, Codec, Decode, Moov, StszSamples, Trak};
use sluice_media::frame::MediaKind;

/// Most samples indexed (a 3 h film at 60 fps with 48 kHz AAC has about 1.3 million).
pub const MAX_SAMPLES: usize = 4_000_000;
/// Largest `moov` read.
pub const MAX_MOOV: u64 = 64 << 20;

/// Why an MP4 file cannot be played out.
#[derive(Debug, thiserror::Error)]
pub enum Mp4InputError {
    #[error("the moov box does not parse: {0}")]
    Moov(#[from] mp4_atom::Error),
    #[error("no H.264, H.265 or AAC track")]
    NoTracks,
    #[error("more than {MAX_SAMPLES} samples")]
    TooManySamples,
    #[error("inconsistent sample tables ({0})")]
    Tables(&'static str),
    #[error("no samples in the moov (a fragmented MP4? those are not played out)")]
    NoSamples,
}

/// One sample to read: where it is and how it goes out.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct SampleRef {
    /// Index into [`Mp4Index::tracks`].
    pub track: u8,
    pub offset: u64,
    pub size: u32,
    /// Decode time, ms from the file's start.
    pub dts_ms: u64,
    /// Composition less decode time, ms.
    pub cts_ms: i32,
    pub sync: bool,
    /// Its sample description (index into [`Track::descs`]).
    pub desc: u8,
}

/// How a track's samples become FLV tag bodies.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum TrackCodec {
    H264,
    H265,
    Aac,
}

/// One sample description of a track: its codec and sequence header.
#[derive(Debug, Clone)]
pub struct Desc {
    pub codec: TrackCodec,
    /// The sequence header's tag body (decoder configuration record, AudioSpecificConfig).
    pub header: Bytes,
}

/// A played track: its sample descriptions (a recording has one more per codec change;
/// `None` for one that is not played).
#[derive(Debug, Clone)]
pub struct Track {
    pub kind: MediaKind,
    pub descs: Vec<Option<Desc>>,
}

impl Track {
    /// The sequence header of description `desc`.
    pub fn header(&self, desc: u8) -> Option<&Bytes> {
        Some(&self.descs.get(usize::from(desc))?.as_ref()?.header)
    }

    /// The tag body of one sample's bytes.
    pub fn tag(&self, sample: &SampleRef, data: &[u8]) -> Bytes {
        let codec =
            self.descs.get(usize::from(sample.desc)).and_then(Option::as_ref).map(|d| &d.codec);
        let mut out = BytesMut::with_capacity(data.len() + 8);
        match codec {
            Some(TrackCodec::H264) => {
                out.put_u8(if sample.sync { 0x17 } else { 0x27 });
                out.put_u8(1);
                put_i24(&mut out, sample.cts_ms);
            }
            Some(TrackCodec::H265) => {
                // Enhanced RTMP: IsExHeader, frame type, PacketTypeCodedFrames, `hvc1`.
                out.put_u8(0x80 | if sample.sync { 0x10 } else { 0x20 } | 1);
                out.put_slice(b"hvc1");
                put_i24(&mut out, sample.cts_ms);
            }
            Some(TrackCodec::Aac) | None => out.put_slice(&[0xAF, 1]),
        }
        out.put_slice(data);
        out.freeze()
    }
}

fn put_i24(out: &mut BytesMut, v: i32) {
    let v = v.clamp(-(1 << 23), (1 << 23) - 1) as u32;
    out.put_slice(&v.to_be_bytes()[1..]);
}

/// The playable tracks of a file and every sample of them in decode-time order.
#[derive(Debug)]
pub struct Mp4Index {
    pub tracks: Vec<Track>,
    pub samples: Vec<SampleRef>,
}

/// The `moov` box (header included) among the top-level boxes at the start of `bytes` (a
/// recording's MP4 head: `ftyp`, `moov`, the `mdat` header).
pub fn moov_in(bytes: &[u8]) -> Option<&[u8]> {
    let mut at = 0usize;
    while at.checked_add(8)? <= bytes.len() {
        let size = u32::from_be_bytes(bytes[at..at + 4].try_into().ok()?) as usize;
        let kind = &bytes[at + 4..at + 8];
        if size < 8 {
            return None;
        }
        let end = at.checked_add(size)?;
        if kind == b"moov" {
            return bytes.get(at..end);
        }
        at = end;
    }
    None
}

/// Index a `moov` box (header included).
pub fn index(moov: &[u8]) -> Result<Mp4Index, Mp4InputError> {
    let moov = Moov::decode(&mut &moov[..])?;
    let mut tracks = Vec::new();
    let mut samples = Vec::new();
    let (mut video, mut audio) = (false, false);
    let mut shifts: Vec<i64> = Vec::new();
    for trak in &moov.trak {
        let Some(track) = playable(trak) else { continue };
        let is_video = track.kind == MediaKind::Video;
        if (is_video && video) || (!is_video && audio) {
            continue;
        }
        (video, audio) = (video || is_video, audio || !is_video);
        let n = u8::try_from(tracks.len()).unwrap_or(u8::MAX);
        samples_of(trak, &track, n, &mut samples)?;
        shifts.push(edit_shift_ms(trak, moov.mvhd.timescale));
        tracks.push(track);
    }
    if tracks.is_empty() {
        return Err(Mp4InputError::NoTracks);
    }
    if samples.is_empty() {
        return Err(Mp4InputError::NoSamples);
    }
    // Each track's edit list moves it on the timeline; the track that starts latest into its
    // media stays put and the others are delayed to match (times never go below zero).
    let latest = shifts.iter().copied().max().unwrap_or(0);
    for sample in &mut samples {
        let delay = latest - shifts.get(usize::from(sample.track)).copied().unwrap_or(0);
        sample.dts_ms = sample.dts_ms.saturating_add(delay.unsigned_abs());
    }
    samples.sort_by_key(|s| (s.dts_ms, s.track));
    Ok(Mp4Index { tracks, samples })
}

/// Longest edit-list shift taken from a file (a larger one is clamped).
const MAX_EDIT_SHIFT_MS: i64 = 60_000;

/// How far `trak`'s edit list moves its media earlier, ms: the media time its first edit plays
/// from, less the empty edits before it (an encoder's B-frame or AAC priming delay). Only the
/// first media edit counts; none: 0.
fn edit_shift_ms(trak: &Trak, movie_timescale: u32) -> i64 {
    let Some(elst) = trak.edts.as_ref().and_then(|e| e.elst.as_ref()) else { return 0 };
    let track_timescale = i128::from(trak.mdia.mdhd.timescale.max(1));
    let movie_timescale = i128::from(movie_timescale.max(1));
    let mut empty_ms: i128 = 0;
    for entry in &elst.entries {
        match entry.media_time {
            None => empty_ms += i128::from(entry.segment_duration) * 1000 / movie_timescale,
            Some(t) => {
                let shift = i128::from(t) * 1000 / track_timescale - empty_ms;
                let max = i128::from(MAX_EDIT_SHIFT_MS);
                return i64::try_from(shift.clamp(-max, max)).unwrap_or(0);
            }
        }
    }
    0
}

/// The track's played sample descriptions, if it has one (the first played one sets the
/// track's kind; others of another kind are left out).
fn playable(trak: &Trak) -> Option<Track> {
    let descs: Vec<Option<Desc>> = trak.mdia.minf.stbl.stsd.codecs.iter().map(desc).collect();
    let kind = descs.iter().flatten().next().map(|d| match d.codec {
        TrackCodec::Aac => MediaKind::Audio,
        _ => MediaKind::Video,
    })?;
    let same =
        |d: Option<Desc>| d.filter(|d| (d.codec == TrackCodec::Aac) == (kind == MediaKind::Audio));
    Some(Track { kind, descs: descs.into_iter().map(same).collect() })
}

/// A sample description's codec and sequence header, if it is one played.
fn desc(codec: &Codec) -> Option<Desc> {
    let mut header = BytesMut::new();
    let codec = match codec {
        Codec::Avc1(c) => {
            header.put_slice(&[0x17, 0, 0, 0, 0]);
            let mut body = Vec::new();
            c.avcc.encode_body(&mut body).ok()?;
            header.put_slice(&body);
            TrackCodec::H264
        }
        Codec::Hvc1(c) => hevc(&mut header, &c.hvcc)?,
        Codec::Hev1(c) => hevc(&mut header, &c.hvcc)?,
        Codec::Mp4a(c) => {
            let asc = c.esds.es_desc.dec_config.dec_specific.as_ref()?;
            header.put_slice(&[0xAF, 0]);
            if asc.raw.is_empty() {
                let v = (u16::from(asc.profile) << 11)
                    | (u16::from(asc.freq_index) << 7)
                    | (u16::from(asc.chan_conf) << 3);
                header.put_u16(v);
            } else {
                header.put_slice(&asc.raw);
            }
            TrackCodec::Aac
        }
        _ => return None,
    };
    Some(Desc { codec, header: header.freeze() })
}

fn hevc(header: &mut BytesMut, hvcc: &mp4_atom::Hvcc) -> Option<TrackCodec> {
    // Enhanced RTMP: IsExHeader, key frame, PacketTypeSequenceStart, `hvc1`.
    header.put_u8(0x90);
    header.put_slice(b"hvc1");
    let mut body = Vec::new();
    hvcc.encode_body(&mut body).ok()?;
    header.put_slice(&body);
    Some(TrackCodec::H265)
}

/// Every played sample of `trak` (track `n`, `track`), from its sample tables.
fn samples_of(
    trak: &Trak,
    track: &Track,
    n: u8,
    out: &mut Vec<SampleRef>,
) -> Result<(), Mp4InputError> {
    let stbl = &trak.mdia.minf.stbl;
    let timescale = u64::from(trak.mdia.mdhd.timescale.max(1));
    let ms = |ticks: u64| ticks.saturating_mul(1000) / timescale;
    let count = match &stbl.stsz.samples {
        StszSamples::Identical { count, .. } => *count as usize,
        StszSamples::Different { sizes } => sizes.len(),
    };
    if out.len() + count > MAX_SAMPLES {
        return Err(Mp4InputError::TooManySamples);
    }
    let size = |i: usize| match &stbl.stsz.samples {
        StszSamples::Identical { size, .. } => *size,
        StszSamples::Different { sizes } => sizes[i],
    };
    let chunks: Vec<u64> = match (&stbl.stco, &stbl.co64) {
        (Some(stco), _) => stco.entries.iter().map(|&o| u64::from(o)).collect(),
        (None, Some(co64)) => co64.entries.clone(),
        (None, None) => return Err(Mp4InputError::Tables("no chunk offsets")),
    };
    // Decode times (stts), composition offsets (ctts), sync samples (stss: none means all).
    let mut deltas = stbl
        .stts
        .entries
        .iter()
        .flat_map(|e| std::iter::repeat_n(u64::from(e.sample_delta), e.sample_count as usize));
    let mut offsets = stbl
        .ctts
        .iter()
        .flat_map(|c| c.entries.iter())
        .flat_map(|e| std::iter::repeat_n(e.sample_offset, e.sample_count as usize));
    let sync = stbl.stss.as_ref().map(|s| {
        let mut v: Vec<u32> = s.entries.clone();
        v.sort_unstable();
        v
    });
    let stsc = &stbl.stsc.entries;
    if stsc.is_empty() && count > 0 {
        return Err(Mp4InputError::Tables("no sample-to-chunk entries"));
    }
    // Chunk runs must go forward (so the chunks are walked once at most).
    if stsc.windows(2).any(|w| w[1].first_chunk <= w[0].first_chunk) {
        return Err(Mp4InputError::Tables("sample-to-chunk entries out of order"));
    }
    let (mut sample, mut dts) = (0usize, 0u64);
    for (e, entry) in stsc.iter().enumerate() {
        let first = entry.first_chunk.max(1) as usize;
        let last = stsc
            .get(e + 1)
            .map_or(chunks.len(), |next| (next.first_chunk as usize).saturating_sub(1));
        for chunk in first..=last.min(chunks.len()) {
            let mut offset = chunks[chunk - 1];
            for _ in 0..entry.samples_per_chunk {
                if sample >= count {
                    return Ok(());
                }
                let sz = size(sample);
                let cts = offsets.next().unwrap_or(0);
                let number = u32::try_from(sample + 1).unwrap_or(u32::MAX);
                let desc = u8::try_from(entry.sample_description_index.saturating_sub(1))
                    .unwrap_or(u8::MAX);
                if track.header(desc).is_some() {
                    // Presentation time rounded once: cts = pts - dts, both in ms.
                    let pts = i128::from(dts) + i128::from(cts);
                    let pts_ms = pts.max(0) * 1000 / i128::from(timescale);
                    let dts_ms = ms(dts);
                    out.push(SampleRef {
                        track: n,
                        offset,
                        size: sz,
                        dts_ms,
                        cts_ms: i32::try_from(pts_ms - i128::from(dts_ms)).unwrap_or(0),
                        sync: sync.as_ref().is_none_or(|s| s.binary_search(&number).is_ok()),
                        desc,
                    });
                }
                offset = offset.saturating_add(u64::from(sz));
                dts = dts.saturating_add(deltas.next().unwrap_or(0));
                sample += 1;
            }
        }
    }
    if sample < count {
        return Err(Mp4InputError::Tables("fewer chunk slots than samples"));
    }
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;
    use mp4_atom::esds::{DecoderConfig, DecoderSpecific, EsDescriptor};
    use mp4_atom::{
        Audio, Co64, Encode, Esds, Hdlr, Mdhd, Mdia, Minf, Mp4a, Stbl, Stco, Stsc, StscEntry, Stsd,
        Stss, Stsz, Stts, SttsEntry,
    };
    use proptest::prelude::*;

    fn aac() -> Codec {
        let dec_specific = DecoderSpecific { profile: 2, freq_index: 4, chan_conf: 2, raw: vec![] };
        let dec_config = DecoderConfig {
            object_type_indication: 0x40,
            stream_type: 5,
            dec_specific: Some(dec_specific),
            ..DecoderConfig::default()
        };
        let esds =
            Esds { es_desc: EsDescriptor { es_id: 1, dec_config, ..EsDescriptor::default() } };
        let audio = Audio {
            data_reference_index: 1,
            channel_count: 2,
            sample_size: 16,
            sample_rate: 44100u16.into(),
        };
        Codec::Mp4a(Mp4a { audio, esds, btrt: None, taic: None })
    }

    /// A `moov` with one AAC track of timescale 1000 and the sample tables of `stbl`.
    fn moov(mut stbl: Stbl) -> Vec<u8> {
        stbl.stsd = Stsd { codecs: vec![aac()] };
        let mdia = Mdia {
            mdhd: Mdhd { timescale: 1000, ..Mdhd::default() },
            hdlr: Hdlr { handler: b"soun".into(), name: String::new() },
            minf: Minf { stbl, ..Minf::default() },
        };
        let moov = Moov { trak: vec![Trak { mdia, ..Trak::default() }], ..Moov::default() };
        let mut out = Vec::new();
        moov.encode(&mut out).unwrap();
        out
    }

    #[test]
    fn an_edit_list_moves_a_track_by_its_first_media_edit_less_its_empty_ones() {
        use mp4_atom::{Edts, Elst, ElstEntry};
        let trak = |timescale: u32, entries: Vec<(u64, Option<u64>)>| {
            let entries = entries
                .into_iter()
                .map(|(segment_duration, media_time)| ElstEntry {
                    segment_duration,
                    media_time,
                    ..ElstEntry::default()
                })
                .collect();
            let mut trak = Trak::default();
            trak.mdia.mdhd.timescale = timescale;
            trak.edts = Some(Edts { elst: Some(Elst { entries }) });
            trak
        };
        assert_eq!(edit_shift_ms(&Trak::default(), 1000), 0, "no edit list");
        // ffmpeg's B-frame delay: the first edit plays from 2 frames (1024 of 15360) in.
        assert_eq!(edit_shift_ms(&trak(15360, vec![(10_000, Some(1024))]), 1000), 66);
        // An empty edit of 0.5 s (movie timescale 600) first: the track starts later.
        assert_eq!(edit_shift_ms(&trak(44100, vec![(300, None), (1, Some(0))]), 600), -500);
        assert_eq!(edit_shift_ms(&trak(1, vec![(1, Some(u64::MAX / 2))]), 1), MAX_EDIT_SHIFT_MS);
        assert_eq!(edit_shift_ms(&trak(1000, vec![(1, None)]), 1000), 0, "no media edit");
    }

    #[test]
    fn samples_come_in_decode_order_with_their_offsets_and_tags() {
        // Five samples of 10 bytes, 20 ms apart, in chunks of 2, 2 and 1.
        let stbl = Stbl {
            stts: Stts { entries: vec![SttsEntry { sample_count: 5, sample_delta: 20 }] },
            stsc: Stsc {
                entries: vec![
                    StscEntry { first_chunk: 1, samples_per_chunk: 2, sample_description_index: 1 },
                    StscEntry { first_chunk: 3, samples_per_chunk: 1, sample_description_index: 1 },
                ],
            },
            stsz: Stsz { samples: StszSamples::Identical { count: 5, size: 10 } },
            stco: Some(Stco { entries: vec![100, 500, 900] }),
            ..Stbl::default()
        };
        let index = index(&moov(stbl)).unwrap();
        assert_eq!(index.tracks.len(), 1);
        assert_eq!(
            &index.tracks[0].header(0).unwrap()[..],
            &[0xAF, 0, 0x12, 0x10],
            "AAC-LC 44.1 kHz stereo"
        );
        let at: Vec<(u64, u64)> = index.samples.iter().map(|s| (s.offset, s.dts_ms)).collect();
        assert_eq!(at, [(100, 0), (110, 20), (500, 40), (510, 60), (900, 80)]);
        let tag = index.tracks[0].tag(&index.samples[0], b"raw");
        assert_eq!(&tag[..], &[0xAF, 1, b'r', b'a', b'w']);
    }

    #[test]
    fn tables_that_disagree_are_refused() {
        let stbl = Stbl {
            stsc: Stsc {
                entries: vec![StscEntry {
                    first_chunk: 1,
                    samples_per_chunk: 1,
                    sample_description_index: 1,
                }],
            },
            stsz: Stsz { samples: StszSamples::Identical { count: 3, size: 10 } },
            co64: Some(Co64 { entries: vec![0] }),
            ..Stbl::default()
        };
        assert!(matches!(index(&moov(stbl)), Err(Mp4InputError::Tables(_))));
        let huge = Stbl {
            stsz: Stsz { samples: StszSamples::Identical { count: u32::MAX, size: 1 } },
            stco: Some(Stco { entries: vec![0] }),
            ..Stbl::default()
        };
        assert!(matches!(index(&moov(huge)), Err(Mp4InputError::TooManySamples)));
        assert!(index(b"not an mp4").is_err());
    }

    #[test]
    fn the_moov_is_found_among_the_head_boxes() {
        let mut head = vec![0, 0, 0, 12, b'f', b't', b'y', b'p', 1, 2, 3, 4];
        head.extend_from_slice(&[0, 0, 0, 9, b'm', b'o', b'o', b'v', 7]);
        head.extend_from_slice(&[0, 0, 0, 8, b'm', b'd', b'a', b't']);
        assert_eq!(moov_in(&head), Some(&head[12..21]));
        assert_eq!(moov_in(&head[..20]), None, "cut short");
        assert_eq!(moov_in(&[0, 0, 0, 0, b'f', b't', b'y', b'p']), None);
    }

    proptest! {
        #[test]
        fn arbitrary_tables_never_panic(
            stts in prop::collection::vec((0u32..50, 0u32..100_000), 0..4),
            stsc in prop::collection::vec((0u32..10, 0u32..100_000), 0..4),
            sizes in prop::collection::vec(any::<u32>(), 0..50),
            chunks in prop::collection::vec(any::<u64>(), 0..10),
            sync in prop::collection::vec(any::<u32>(), 0..10),
        ) {
            let stbl = Stbl {
                stts: Stts { entries: stts.iter().map(|&(sample_count, sample_delta)| SttsEntry { sample_count, sample_delta }).collect() },
                stsc: Stsc { entries: stsc.iter().map(|&(first_chunk, samples_per_chunk)| StscEntry { first_chunk, samples_per_chunk, sample_description_index: 1 }).collect() },
                stsz: Stsz { samples: StszSamples::Different { sizes } },
                co64: Some(Co64 { entries: chunks }),
                stss: Some(Stss { entries: sync }),
                ..Stbl::default()
            };
            if let Ok(index) = index(&moov(stbl)) {
                prop_assert!(index.samples.windows(2).all(|w| w[0].dts_ms <= w[1].dts_ms));
            }
        }

        #[test]
        fn arbitrary_bytes_never_panic(bytes in prop::collection::vec(any::<u8>(), 0..512)) {
            let _ = index(&bytes);
        }
    }
}
