//! Writing the output's head: `ftyp`, `moov` with complete sample tables, `mdat` header.

use bytes::Bytes;

use super::build::OutTrack;
use super::Mp4Error;
use crate::hls::boxes::BoxWriter;

/// `mvhd` timescale, and that of `tkhd` durations and edit list segment durations.
pub(super) const MOVIE_TIMESCALE: u32 = 1000;

/// A track's times for `tkhd`, `mdhd` and the edit list.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(super) struct TrackPlan {
    /// Sum of the sample durations (media timescale).
    pub media_duration: u64,
    /// Media time presentation starts at: the first sample's composition time.
    pub media_time: u64,
    /// Empty edit before the track (movie timescale).
    pub delay: u64,
    /// Presented media from `media_time` on (movie timescale).
    pub presentation: u64,
}

/// `ftyp` + `moov` + the `mdat` header for `mdat_len` bytes of payload.
pub(super) fn write_head(
    tracks: &[OutTrack],
    plans: &[TrackPlan],
    movie_duration: u64,
    mdat_len: u64,
) -> Result<Bytes, Mp4Error> {
    let mut w = BoxWriter::with_capacity(1024);
    let ftyp = w.open(b"ftyp");
    w.bytes(b"isom");
    w.u32(0x200);
    for brand in [b"isom", b"iso2", b"avc1", b"mp41"] {
        w.bytes(brand);
    }
    w.close(ftyp);
    let large_mdat = mdat_len > u64::from(u32::MAX) - 8;
    let mdat_header: u64 = if large_mdat { 16 } else { 8 };
    let last_chunk = tracks.iter().filter_map(|t| t.chunks.last()).map(|c| c.offset).max();
    // Chunk offset fields have a fixed width, so the moov's size does not depend on their
    // values: measure it with 32-bit offsets, switch to 64 if the last one does not fit.
    let mut co64 = false;
    let moov = loop {
        let probe = write_moov(tracks, plans, movie_duration, 0, co64);
        let base = (w.position() + probe.len()) as u64 + mdat_header;
        if !co64 && last_chunk.is_some_and(|c| base + c > u64::from(u32::MAX)) {
            co64 = true;
            continue;
        }
        break write_moov(tracks, plans, movie_duration, base, co64);
    };
    if u32::try_from(moov.len()).is_err() {
        return Err(Mp4Error::TooLarge("moov over 4 GiB"));
    }
    w.bytes(&moov);
    if large_mdat {
        w.u32(1);
        w.bytes(b"mdat");
        w.u64(mdat_len + 16);
    } else {
        w.u32((mdat_len + 8) as u32);
        w.bytes(b"mdat");
    }
    Ok(Bytes::from(w.buf))
}

/// Version 1 when a time does not fit 32 bits.
fn version_for(v: u64) -> u8 {
    u8::from(u32::try_from(v).is_err())
}

fn time(w: &mut BoxWriter, version: u8, v: u64) {
    if version == 1 {
        w.u64(v);
    } else {
        w.u32(v as u32);
    }
}

fn write_moov(
    tracks: &[OutTrack],
    plans: &[TrackPlan],
    movie_duration: u64,
    chunk_base: u64,
    co64: bool,
) -> Vec<u8> {
    let samples: usize = tracks.iter().map(|t| t.samples.len()).sum();
    let mut w = BoxWriter::with_capacity(4096 + samples * 12);
    let moov = w.open(b"moov");
    let version = version_for(movie_duration);
    let mvhd = w.open_full(b"mvhd", version, 0);
    time(&mut w, version, 0); // creation_time
    time(&mut w, version, 0); // modification_time
    w.u32(MOVIE_TIMESCALE);
    time(&mut w, version, movie_duration);
    w.u32(0x0001_0000); // rate 1.0
    w.u16(0x0100); // volume 1.0
    w.zeros(10);
    w.matrix();
    w.zeros(24); // pre_defined
    let max_id = tracks.iter().map(|t| t.info.track_id).max().unwrap_or(0);
    w.u32(max_id.saturating_add(1)); // next_track_ID
    w.close(mvhd);
    for (t, plan) in tracks.iter().zip(plans) {
        write_trak(&mut w, t, plan, chunk_base, co64);
    }
    w.close(moov);
    w.buf
}

fn write_trak(w: &mut BoxWriter, t: &OutTrack, plan: &TrackPlan, chunk_base: u64, co64: bool) {
    let parts = &t.info.parts;
    let trak = w.open(b"trak");
    let duration = plan.delay.saturating_add(plan.presentation);
    let version = version_for(duration);
    let tkhd = w.open_full(b"tkhd", version, parts.tkhd_flags);
    time(w, version, 0);
    time(w, version, 0);
    w.u32(t.info.track_id);
    w.u32(0);
    time(w, version, duration);
    w.bytes(&parts.tkhd_tail);
    w.close(tkhd);
    if plan.delay > 0 || plan.media_time > 0 {
        write_edts(w, plan);
    }
    for b in &parts.trak_other {
        w.bytes(b);
    }
    let mdia = w.open(b"mdia");
    let version = version_for(plan.media_duration);
    let mdhd = w.open_full(b"mdhd", version, 0);
    time(w, version, 0);
    time(w, version, 0);
    w.u32(t.info.timescale);
    time(w, version, plan.media_duration);
    w.u16(parts.mdhd_language);
    w.u16(0);
    w.close(mdhd);
    w.bytes(&parts.hdlr);
    for b in &parts.mdia_other {
        w.bytes(b);
    }
    let minf = w.open(b"minf");
    for b in &parts.minf_other {
        w.bytes(b);
    }
    write_stbl(w, t, chunk_base, co64);
    w.close(minf);
    w.close(mdia);
    w.close(trak);
}

fn write_edts(w: &mut BoxWriter, plan: &TrackPlan) {
    let mut edits = Vec::with_capacity(2);
    if plan.delay > 0 {
        edits.push((plan.delay, -1i64));
    }
    edits.push((plan.presentation, i64::try_from(plan.media_time).unwrap_or(i64::MAX)));
    let version = u8::from(
        edits.iter().any(|&(d, m)| u32::try_from(d).is_err() || i32::try_from(m).is_err()),
    );
    let edts = w.open(b"edts");
    let elst = w.open_full(b"elst", version, 0);
    w.u32(edits.len() as u32);
    for (duration, media_time) in edits {
        if version == 1 {
            w.u64(duration);
            w.u64(media_time as u64);
        } else {
            w.u32(duration as u32);
            w.i32(media_time as i32);
        }
        w.u32(0x0001_0000); // media_rate 1.0
    }
    w.close(elst);
    w.close(edts);
}

/// `(count, value)` runs of equal consecutive values.
fn run_lengths<T: PartialEq + Copy>(values: impl Iterator<Item = T>) -> Vec<(u32, T)> {
    let mut out: Vec<(u32, T)> = Vec::new();
    for v in values {
        match out.last_mut() {
            Some((n, last)) if *last == v && *n < u32::MAX => *n += 1,
            _ => out.push((1, v)),
        }
    }
    out
}

fn write_stbl(w: &mut BoxWriter, t: &OutTrack, chunk_base: u64, co64: bool) {
    let samples = &t.samples;
    let stbl = w.open(b"stbl");
    let stsd = w.open_full(b"stsd", 0, 0);
    w.u32(t.entries.len() as u32);
    for e in &t.entries {
        w.bytes(e);
    }
    w.close(stsd);

    let stts = run_lengths(samples.iter().map(|s| s.duration));
    let b = w.open_full(b"stts", 0, 0);
    w.u32(stts.len() as u32);
    for (n, d) in stts {
        w.u32(n);
        w.u32(d);
    }
    w.close(b);

    if samples.iter().any(|s| s.cts_offset != 0) {
        let negative = samples.iter().any(|s| s.cts_offset < 0);
        let ctts = run_lengths(samples.iter().map(|s| s.cts_offset));
        let b = w.open_full(b"ctts", u8::from(negative), 0);
        w.u32(ctts.len() as u32);
        for (n, c) in ctts {
            w.u32(n);
            w.i32(c);
        }
        w.close(b);
    }

    if samples.iter().any(|s| !s.sync) {
        let sync = samples.iter().filter(|s| s.sync).count();
        let b = w.open_full(b"stss", 0, 0);
        w.u32(sync as u32);
        for (i, _) in samples.iter().enumerate().filter(|(_, s)| s.sync) {
            w.u32(i as u32 + 1);
        }
        w.close(b);
    }

    let stsc = run_lengths(t.chunks.iter().map(|c| (c.samples, c.entry)));
    let b = w.open_full(b"stsc", 0, 0);
    w.u32(stsc.len() as u32);
    let mut first_chunk = 1u32;
    for (n, (per_chunk, entry)) in stsc {
        w.u32(first_chunk);
        w.u32(per_chunk);
        w.u32(entry);
        first_chunk = first_chunk.saturating_add(n);
    }
    w.close(b);

    let b = w.open_full(b"stsz", 0, 0);
    let first = samples.first().map_or(0, |s| s.size);
    if first != 0 && samples.iter().all(|s| s.size == first) {
        w.u32(first);
        w.u32(samples.len() as u32);
    } else {
        w.u32(0);
        w.u32(samples.len() as u32);
        for s in samples {
            w.u32(s.size);
        }
    }
    w.close(b);

    let b = w.open_full(if co64 { b"co64" } else { b"stco" }, 0, 0);
    w.u32(t.chunks.len() as u32);
    for c in &t.chunks {
        let offset = chunk_base + c.offset;
        if co64 {
            w.u64(offset);
        } else {
            w.u32(offset as u32);
        }
    }
    w.close(b);
    w.close(stbl);
}
