//! [`Builder`]: init segments and parsed segments in, a [`Layout`] out.

use std::collections::BTreeMap;

use bytes::Bytes;

use super::layout::{Layout, Piece};
use super::moov::{write_head, TrackPlan, MOVIE_TIMESCALE};
use super::parse::{InitInfo, TrackInfo};
use super::{Mp4Error, Run, SampleInfo};

/// Largest `mdat` payload (far beyond any recording; keeps every sum below 2^64).
const MAX_MEDIA_BYTES: u64 = 1 << 60;

/// Collects a recording's init segments and runs, then writes the progressive MP4's head and
/// the list of source ranges (see [the module docs](super)).
#[derive(Debug, Default)]
pub struct Builder {
    inits: BTreeMap<u32, InitInfo>,
    /// Output tracks, in id order.
    tracks: Vec<OutTrack>,
    pieces: Vec<Piece>,
    /// Length of the output `mdat` payload: the sum of the pieces.
    mdat_len: u64,
}

/// One track of the output and its samples so far.
#[derive(Debug)]
pub(super) struct OutTrack {
    /// Headers and timescale: from the first init that brought the track.
    pub info: TrackInfo,
    /// `stsd` entries, in order.
    pub entries: Vec<Bytes>,
    /// (init id, 1-based `stsd` index) of each init seen for this track.
    entry_of: Vec<(u32, u32)>,
    pub samples: Vec<SampleInfo>,
    pub chunks: Vec<Chunk>,
    /// Decode time of the first sample, in `info.timescale`.
    pub first_dts: u64,
    /// End of the last sample (its decode time plus duration).
    pub end_dts: u64,
}

/// One chunk of the output: the samples of one run.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(super) struct Chunk {
    pub samples: u32,
    /// Position of its data in the `mdat` payload.
    pub offset: u64,
    /// 1-based `stsd` entry.
    pub entry: u32,
}

impl Builder {
    pub fn new() -> Self {
        Builder::default()
    }

    /// Register an init segment under the id segments refer to it by (`init-{id}.mp4`).
    pub fn push_init(&mut self, init_id: u32, init: &InitInfo) -> Result<(), Mp4Error> {
        if self.inits.contains_key(&init_id) {
            return Err(Mp4Error::DuplicateInit(init_id));
        }
        self.inits.insert(init_id, init.clone());
        Ok(())
    }

    /// Append a segment's runs (from [`parse_segment`](super::parse_segment) of that file),
    /// in playback order. `source` is the caller's index of the segment file; the output's
    /// pieces name it. An error leaves the builder unchanged.
    pub fn push_segment(
        &mut self,
        source: usize,
        init_id: u32,
        runs: Vec<Run>,
    ) -> Result<(), Mp4Error> {
        let init = self.inits.get(&init_id).ok_or(Mp4Error::UnknownInit(init_id))?;
        for run in &runs {
            let t = init.track(run.track_id).ok_or(Mp4Error::UnknownTrack(run.track_id))?;
            if self
                .tracks
                .iter()
                .any(|o| o.info.track_id == t.track_id && o.info.handler != t.handler)
            {
                return Err(Mp4Error::Unsupported("a track changes its handler between inits"));
            }
            if run.data_offset.checked_add(run.data_len()).is_none() {
                return Err(Mp4Error::Malformed("run data past 2^64"));
            }
            if u32::try_from(run.samples.len()).is_err() {
                return Err(Mp4Error::TooLarge("more than 2^32 samples in a run"));
            }
        }
        let runs: Vec<Run> = runs.into_iter().filter(|r| !r.samples.is_empty()).collect();
        let data = runs.iter().fold(0u64, |a, r| a.saturating_add(r.data_len()));
        if self.mdat_len.checked_add(data).is_none_or(|n| n > MAX_MEDIA_BYTES) {
            return Err(Mp4Error::TooLarge("media data"));
        }
        let positions = self.place(source, &runs);
        let Some(init) = self.inits.get(&init_id) else {
            return Err(Mp4Error::UnknownInit(init_id)); // checked above
        };
        for (run, pos) in runs.into_iter().zip(positions) {
            let Some(t) = init.track(run.track_id) else {
                continue; // checked above
            };
            let idx = match self.tracks.binary_search_by_key(&t.track_id, |o| o.info.track_id) {
                Ok(i) => i,
                Err(i) => {
                    self.tracks.insert(i, OutTrack::new(t.clone()));
                    i
                }
            };
            self.tracks[idx].append(init_id, t, run, pos);
        }
        Ok(())
    }

    /// Add the runs' data to the pieces (contiguous or overlapping ranges of one source
    /// share a piece); returns each run's position in the `mdat` payload.
    fn place(&mut self, source: usize, runs: &[Run]) -> Vec<u64> {
        let mut order: Vec<usize> = (0..runs.len()).collect();
        order.sort_by_key(|&i| runs[i].data_offset);
        let mut positions = vec![0; runs.len()];
        for i in order {
            let (start, len) = (runs[i].data_offset, runs[i].data_len());
            let end = start + len;
            match self.pieces.last_mut() {
                _ if len == 0 => positions[i] = self.mdat_len,
                Some(p) if p.source == source && (p.offset..=p.offset + p.len).contains(&start) => {
                    let piece_pos = self.mdat_len - p.len;
                    positions[i] = piece_pos + (start - p.offset);
                    let grown = end.saturating_sub(p.offset + p.len);
                    p.len += grown;
                    self.mdat_len += grown;
                }
                _ => {
                    positions[i] = self.mdat_len;
                    self.pieces.push(Piece { source, offset: start, len });
                    self.mdat_len += len;
                }
            }
        }
        positions
    }

    /// Write the head and return the layout. Fails when nothing was pushed with samples.
    pub fn finish(self) -> Result<Layout, Mp4Error> {
        if self.tracks.is_empty() {
            return Err(Mp4Error::NoSamples);
        }
        for t in &self.tracks {
            if u32::try_from(t.samples.len()).is_err() || u32::try_from(t.chunks.len()).is_err() {
                return Err(Mp4Error::TooLarge("more than 2^32 samples in a track"));
            }
        }
        let plans = plan(&self.tracks);
        let movie_duration =
            plans.iter().map(|p| p.delay.saturating_add(p.presentation)).max().unwrap_or(0);
        let head = write_head(&self.tracks, &plans, movie_duration, self.mdat_len)?;
        let duration_s = movie_duration as f64 / f64::from(MOVIE_TIMESCALE);
        Ok(Layout::new(head, self.pieces, duration_s))
    }
}

/// `a * num / den` in 128 bits, rounded down, saturating.
pub(super) fn rescale(a: u64, num: u32, den: u32) -> u64 {
    let v = u128::from(a) * u128::from(num) / u128::from(den.max(1));
    u64::try_from(v).unwrap_or(u64::MAX)
}

/// `a * num / den` in 128 bits, rounded to the nearest, saturating.
fn rescale_round(a: u64, num: u32, den: u32) -> u64 {
    let den = u128::from(den.max(1));
    let v = (u128::from(a) * u128::from(num) + den / 2) / den;
    u64::try_from(v).unwrap_or(u64::MAX)
}

/// Edit list timing of each track: the first presentation time of every track is compared
/// on the movie clock; the earliest starts the movie, the others get that much delay.
fn plan(tracks: &[OutTrack]) -> Vec<TrackPlan> {
    let starts: Vec<(u64, u64, u64)> = tracks
        .iter()
        .map(|t| {
            let end = t.composition_end();
            let first_cts = t.samples.first().map_or(0, |s| s.cts_offset);
            let media_time = u64::try_from(first_cts).unwrap_or(0).min(end);
            let start = t.first_dts.saturating_add(media_time);
            let start = rescale(start, MOVIE_TIMESCALE, t.info.timescale);
            (media_time, end, start)
        })
        .collect();
    let t0 = starts.iter().map(|s| s.2).min().unwrap_or(0);
    tracks
        .iter()
        .zip(starts)
        .map(|(t, (media_time, end, start))| TrackPlan {
            media_duration: t.end_dts - t.first_dts,
            media_time,
            delay: start - t0,
            presentation: rescale_round(end - media_time, MOVIE_TIMESCALE, t.info.timescale),
        })
        .collect()
}

impl OutTrack {
    fn new(info: TrackInfo) -> Self {
        OutTrack {
            info,
            entries: Vec::new(),
            entry_of: Vec::new(),
            samples: Vec::new(),
            chunks: Vec::new(),
            first_dts: 0,
            end_dts: 0,
        }
    }

    /// The latest composition time plus duration of any sample, on the track's media
    /// timeline (which starts at 0 with the first sample): with composition offsets, the
    /// last frames in decode order are shown after the decode timeline ends.
    fn composition_end(&self) -> u64 {
        let (mut dts, mut end) = (0i128, 0i128);
        for s in &self.samples {
            dts += i128::from(s.duration);
            end = end.max(dts + i128::from(s.cts_offset));
        }
        u64::try_from(end).unwrap_or(if end < 0 { 0 } else { u64::MAX })
    }

    /// The 1-based `stsd` index of the sample entry `init_id` has for this track.
    fn entry(&mut self, init_id: u32, t: &TrackInfo) -> u32 {
        if let Some(&(_, e)) = self.entry_of.iter().find(|(id, _)| *id == init_id) {
            return e;
        }
        let e = match self.entries.iter().position(|e| *e == t.sample_entry) {
            Some(i) => i + 1,
            None => {
                self.entries.push(t.sample_entry.clone());
                self.entries.len()
            }
        };
        let e = u32::try_from(e).unwrap_or(u32::MAX);
        self.entry_of.push((init_id, e));
        e
    }

    /// Append a run (of track `t` of init `init_id`) whose data is at `pos` in the `mdat`.
    fn append(&mut self, init_id: u32, t: &TrackInfo, run: Run, pos: u64) {
        let entry = self.entry(init_id, t);
        let (src, dst) = (t.timescale, self.info.timescale);
        let start = rescale(run.base_dts, dst, src);
        match self.samples.last_mut() {
            None => {
                self.first_dts = start;
                self.end_dts = start;
            }
            Some(last) if start != self.end_dts => {
                // A gap or a step back: the previous sample lasts until this run starts (at
                // least a tick), and the run continues from its end.
                let last_start = self.end_dts.saturating_sub(u64::from(last.duration));
                let d = start.saturating_sub(last_start).clamp(1, u64::from(u32::MAX));
                last.duration = d as u32;
                self.end_dts = last_start.saturating_add(d);
            }
            Some(_) => {}
        }
        self.chunks.push(Chunk {
            samples: run.samples.len() as u32, // checked by push_segment
            offset: pos,
            entry,
        });
        self.samples.reserve(run.samples.len());
        let mut t_src = run.base_dts;
        for mut s in run.samples {
            if src != dst {
                let next = t_src.saturating_add(u64::from(s.duration));
                let d = rescale(next, dst, src).saturating_sub(rescale(t_src, dst, src));
                s.duration = u32::try_from(d).unwrap_or(u32::MAX);
                let cts = i128::from(s.cts_offset) * i128::from(dst) / i128::from(src.max(1));
                s.cts_offset =
                    i32::try_from(cts).unwrap_or(if cts < 0 { i32::MIN } else { i32::MAX });
                t_src = next;
            }
            self.end_dts = self.end_dts.saturating_add(u64::from(s.duration));
            self.samples.push(s);
        }
    }
}
