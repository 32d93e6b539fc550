//! Where a playout's tags come from: an FLV file read a bounded chunk at a time, or an MP4
//! file whose `moov` is indexed ([`super::mp4`]) and whose samples are then read one at a
//! time, each as the tag a publisher would send (sequence headers first). A finished
//! recording plays as its MP4 ([`crate::recording::download`]): the `moov` of its layout's
//! head, each sample read from the segment files the layout maps it to.

use std::path::{Path, PathBuf};
use std::sync::Arc;

use futures_util::TryStreamExt;
use sluice_media::mp4::Slice;

use sluice_media::flv::{FlvReader, FlvTag};
use tokio::fs::File;
use tokio::io::{AsyncReadExt, AsyncSeekExt, SeekFrom};

use super::mp4::{self, Mp4Index, SampleRef};
use crate::recording::download::Download;
use crate::recording::store::Store;
use crate::recording::Recordings;

/// What an entry plays.
#[derive(Clone)]
pub enum Input {
    File(PathBuf),
    Recording { recordings: Arc<Recordings>, prefix: String },
}

impl std::fmt::Display for Input {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        match self {
            Input::File(path) => write!(f, "{}", path.display()),
            Input::Recording { prefix, .. } => write!(f, "recording {prefix}"),
        }
    }
}

/// Largest FLV tag or MP4 sample played out.
pub const MAX_TAG: usize = 16 << 20;
/// Bytes read from an FLV file at once.
const CHUNK: usize = 64 * 1024;
/// Most top-level boxes looked through for an MP4 file's `moov`.
const MAX_BOXES: usize = 4096;

/// Why a file cannot be (further) played out.
#[derive(Debug, thiserror::Error)]
pub enum SourceError {
    #[error("cannot read the file: {0}")]
    Io(#[from] std::io::Error),
    #[error("not a playable FLV file: {0}")]
    Flv(#[from] sluice_media::flv::FlvError),
    #[error("not a playable MP4 file: {0}")]
    Mp4(#[from] mp4::Mp4InputError),
    #[error("not a playable MP4 file: {0}")]
    Layout(&'static str),
    #[error("the recording cannot be played: {0}")]
    Recording(#[from] crate::recording::download::DownloadError),
}

pub enum Source {
    Flv { file: File, reader: FlvReader, buf: Vec<u8> },
    Mp4(Mp4Source),
}

/// An indexed MP4 being read: which sample is next, and which sequence header each track
/// last sent (one is sent again before a sample of another description).
pub struct Mp4Source {
    samples: Samples,
    index: Arc<Mp4Index>,
    next: usize,
    sent: Vec<Option<u8>>,
}

/// Where an MP4's sample bytes are.
pub enum Samples {
    File(File),
    Recording { recordings: Arc<Recordings>, download: Arc<Download> },
}

impl Samples {
    async fn read(&mut self, sample: &SampleRef) -> Result<Vec<u8>, SourceError> {
        let size = sample.size as usize;
        if size > MAX_TAG {
            return Err(SourceError::Layout("a sample larger than the tag bound"));
        }
        let mut data = vec![0; size];
        match self {
            Samples::File(file) => {
                file.seek(SeekFrom::Start(sample.offset)).await?;
                file.read_exact(&mut data).await?;
            }
            Samples::Recording { recordings, download } => {
                data.clear();
                let end = sample.offset.saturating_add(u64::from(sample.size));
                for slice in download.layout.slices(sample.offset, end) {
                    match slice {
                        Slice::Head(range) => {
                            let head = download.layout.head();
                            let part = head.get(range).ok_or(SourceError::Layout("head range"))?;
                            data.extend_from_slice(part);
                        }
                        Slice::Source { source, offset, len } => {
                            let key = download
                                .sources
                                .get(source)
                                .ok_or(SourceError::Layout("a piece of no segment"))?;
                            let store = recordings.store();
                            let object = store.read_range(key, offset, len).await?;
                            let object = object.ok_or(SourceError::Layout("a segment is gone"))?;
                            let mut body = object.body;
                            while let Some(chunk) = body.try_next().await? {
                                if data.len() + chunk.len() > size {
                                    return Err(SourceError::Layout("a segment grew"));
                                }
                                data.extend_from_slice(&chunk);
                            }
                        }
                    }
                }
                if data.len() != size {
                    return Err(SourceError::Layout("a sample cut short"));
                }
            }
        }
        Ok(data)
    }
}

/// Whether `path` names an MP4 file (by its extension).
pub fn is_mp4(path: &Path) -> bool {
    path.extension()
        .is_some_and(|x| ["mp4", "m4v", "mov"].iter().any(|e| x.eq_ignore_ascii_case(e)))
}

impl Source {
    pub async fn open(input: &Input) -> Result<Source, SourceError> {
        let (samples, moov) = match input {
            Input::File(path) => {
                let mut file = File::open(path).await?;
                if !is_mp4(path) {
                    let (reader, buf) = (FlvReader::new(MAX_TAG), vec![0; CHUNK]);
                    return Ok(Source::Flv { file, reader, buf });
                }
                let moov = find_moov(&mut file).await?;
                (Samples::File(file), moov)
            }
            Input::Recording { recordings, prefix } => {
                let download = recordings.download(prefix).await?;
                let moov = mp4::moov_in(download.layout.head())
                    .ok_or(SourceError::Layout("no moov in the recording's MP4"))?
                    .to_vec();
                (Samples::Recording { recordings: recordings.clone(), download }, moov)
            }
        };
        // Up to millions of samples: indexed off the runtime's threads.
        let index = tokio::task::spawn_blocking(move || mp4::index(&moov))
            .await
            .map_err(std::io::Error::other)??;
        let sent = vec![None; index.tracks.len()];
        Ok(Source::Mp4(Mp4Source { samples, index: Arc::new(index), next: 0, sent }))
    }

    /// Back to the start, for the next pass of a looped entry.
    pub async fn rewind(&mut self) -> Result<(), SourceError> {
        match self {
            Source::Flv { file, reader, .. } => {
                file.seek(SeekFrom::Start(0)).await?;
                *reader = FlvReader::new(MAX_TAG);
            }
            Source::Mp4(m) => {
                m.next = 0;
                m.sent.iter_mut().for_each(|s| *s = None);
            }
        }
        Ok(())
    }

    /// The file's length in time, when it is indexed (MP4).
    pub fn duration_ms(&self) -> Option<u64> {
        match self {
            Source::Flv { .. } => None,
            Source::Mp4(m) => m.index.samples.last().map(|s| s.dts_ms),
        }
    }

    /// The first tag's timestamp, when the file is indexed (MP4).
    pub fn first_ms(&self) -> Option<u32> {
        match self {
            Source::Flv { .. } => None,
            Source::Mp4(m) => m.index.samples.first().map(|s| (s.dts_ms & 0xFFFF_FFFF) as u32),
        }
    }

    /// Go on from the first sample at or after `ms` (an indexed file; others read on).
    pub fn skip_to(&mut self, ms: u64) {
        if let Source::Mp4(m) = self {
            m.next = m.index.samples.partition_point(|s| s.dts_ms < ms);
        }
    }

    /// Whether the file has media to play (an FLV file's tags are counted by the caller).
    pub fn has_media(&self) -> bool {
        match self {
            Source::Flv { .. } => true,
            Source::Mp4(m) => !m.index.samples.is_empty(),
        }
    }

    /// The next tag; `None` at the file's end.
    pub async fn next(&mut self) -> Result<Option<FlvTag>, SourceError> {
        match self {
            Source::Flv { file, reader, buf } => loop {
                if let Some(tag) = reader.next_tag()? {
                    return Ok(Some(tag));
                }
                match file.read(buf).await? {
                    0 => return Ok(None),
                    n => reader.push(&buf[..n]),
                }
            },
            Source::Mp4(m) => {
                let Some(sample) = m.index.samples.get(m.next).copied() else { return Ok(None) };
                let track = &m.index.tracks[usize::from(sample.track)];
                // FLV timestamps are 32-bit milliseconds (they wrap after about 49 days).
                let timestamp = (sample.dts_ms & 0xFFFF_FFFF) as u32;
                let sent = &mut m.sent[usize::from(sample.track)];
                if *sent != Some(sample.desc) {
                    *sent = Some(sample.desc);
                    if let Some(header) = track.header(sample.desc) {
                        let payload = header.clone();
                        return Ok(Some(FlvTag { kind: track.kind, timestamp, payload }));
                    }
                }
                m.next += 1;
                let data = m.samples.read(&sample).await?;
                let payload = track.tag(&sample, &data);
                Ok(Some(FlvTag { kind: track.kind, timestamp, payload }))
            }
        }
    }
}

/// The `moov` box of an MP4 file, header included.
async fn find_moov(file: &mut File) -> Result<Vec<u8>, SourceError> {
    let len = file.metadata().await?.len();
    let mut at = 0u64;
    for _ in 0..MAX_BOXES {
        if at.saturating_add(8) > len {
            break;
        }
        file.seek(SeekFrom::Start(at)).await?;
        let mut head = [0u8; 16];
        file.read_exact(&mut head[..8]).await?;
        let size32 = u32::from_be_bytes([head[0], head[1], head[2], head[3]]);
        let size = match size32 {
            0 => len - at,
            1 => {
                file.read_exact(&mut head[8..]).await?;
                u64::from_be_bytes(head[8..16].try_into().unwrap_or_default())
            }
            n => u64::from(n),
        };
        if size < 8 || at.saturating_add(size) > len {
            return Err(SourceError::Layout("a box runs past the end of the file"));
        }
        if &head[4..8] == b"moov" {
            if size > mp4::MAX_MOOV {
                return Err(SourceError::Layout("the moov box is too large"));
            }
            let mut moov = vec![0; size as usize];
            file.seek(SeekFrom::Start(at)).await?;
            file.read_exact(&mut moov).await?;
            return Ok(moov);
        }
        at += size;
    }
    Err(SourceError::Layout("no moov box"))
}
