//! MPEG-TS HLS for players that do not take fMP4 (`--hls-ts`):
//!
//! * `GET /APP/STREAM/ts.m3u8`: a plain HLS version 3 media playlist over the same window,
//!   numbering, discontinuities and program date-times as `index.m3u8`. Without a `sid` it
//!   starts an HLS session and redirects (302) to `ts.m3u8?sid=...`, so the player's reloads
//!   and segment requests carry its session.
//! * `GET /APP/STREAM/ts-N.ts`: segment N (the same media sequence number, cut points and
//!   frames as `seg-N.m4s`), `video/mp2t`, immutable.
//!
//! TS segments are made on first request from the CMAF segment in the snapshot
//! ([`remux_segment`], a pure function, so every node serves the same bytes) and cached while
//! that segment is alive in the window; a stream nobody watches over TS costs nothing.

use std::collections::HashMap;
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::{Arc, Mutex, OnceLock, Weak};

use axum::http::StatusCode;
use axum::response::Response;
use bytes::Bytes;
use sluice_media::hls::{HlsSnapshot, InitSegment, Lookup, Resource, Segment};
use sluice_media::stream_name::StreamKey;
use sluice_media::ts::{remux_segment, render_ts_playlist, TsError};
use tokio::sync::watch;
use tokio::time::Instant;
use tracing::warn;

use super::http::{media_object, playlist, text, wait_until, HlsService, Step, CACHE_PLAYLIST};
use crate::log_limit::RateLimitedLog;

/// Content type of TS segments.
pub const TS_TYPE: &str = "video/mp2t";
/// Most TS segments cached (beyond those of segments still in a window, which go first).
const MAX_ENTRIES: usize = 4096;

static REMUX_WARNINGS: std::sync::LazyLock<RateLimitedLog> =
    std::sync::LazyLock::new(|| RateLimitedLog::new(5));

/// A segment's TS bytes, or why it could not be converted (cached either way).
type Remuxed = Result<Bytes, TsError>;

struct Entry {
    /// The CMAF segment it was made from; dead once the segment left every snapshot.
    segment: Weak<Segment>,
    cell: Arc<OnceLock<Remuxed>>,
    age: u64,
}

/// TS segments made so far, keyed by the CMAF segment they were made from. An entry holds a
/// `Weak` of its segment, so its address cannot be reused while the entry exists.
#[derive(Default)]
pub struct TsCache {
    entries: Mutex<HashMap<usize, Entry>>,
    clock: AtomicU64,
}

impl TsCache {
    /// The TS form of `segment` (made once; concurrent requests wait for the first).
    pub fn get(&self, stream: &StreamKey, init: &InitSegment, segment: &Arc<Segment>) -> Remuxed {
        let key = Arc::as_ptr(segment) as usize;
        let cell = {
            let mut map = crate::lock::lock(&self.entries);
            match map.get(&key) {
                Some(e) => e.cell.clone(),
                None => {
                    map.retain(|_, e| e.segment.strong_count() > 0);
                    if map.len() >= MAX_ENTRIES {
                        let oldest = map.iter().min_by_key(|(_, e)| e.age).map(|(k, _)| *k);
                        if let Some(k) = oldest {
                            map.remove(&k);
                        }
                    }
                    let cell = Arc::new(OnceLock::new());
                    map.insert(
                        key,
                        Entry {
                            segment: Arc::downgrade(segment),
                            cell: cell.clone(),
                            age: self.clock.fetch_add(1, Ordering::Relaxed),
                        },
                    );
                    cell
                }
            }
        };
        cell.get_or_init(|| {
            let out = remux_segment(init, segment);
            match &out {
                Ok(ts) if ts.dropped_frames > 0 && REMUX_WARNINGS.allow() => {
                    warn!(stream = %stream, msn = segment.msn, dropped = ts.dropped_frames, "hls ts: frames left out");
                }
                Err(e) if REMUX_WARNINGS.allow() => {
                    warn!(stream = %stream, msn = segment.msn, error = %e, "hls ts: segment not converted");
                }
                _ => {}
            }
            out.map(|ts| ts.bytes)
        })
        .clone()
    }

    /// Drop entries whose segment left every snapshot.
    pub fn sweep(&self) {
        let mut map = crate::lock::lock(&self.entries);
        map.retain(|_, e| e.segment.strong_count() > 0);
    }

    /// Entries held.
    pub fn len(&self) -> usize {
        crate::lock::lock(&self.entries).len()
    }

    pub fn is_empty(&self) -> bool {
        self.len() == 0
    }
}

/// `GET /APP/STREAM/ts.m3u8?sid=...`: waits (bounded) for the first complete segment.
pub(super) async fn ts_playlist(
    svc: &HlsService,
    rx: &mut watch::Receiver<Option<HlsSnapshot>>,
    live: bool,
    suffix: &str,
    key: &StreamKey,
) -> Response {
    let deadline = Instant::now() + svc.first_segment_wait;
    wait_until(
        rx,
        live,
        deadline,
        |snap| match render_ts_playlist(snap, suffix) {
            Some(body) => Step::Answer(playlist(body, CACHE_PLAYLIST, svc)),
            None => Step::Wait,
        },
        || text(StatusCode::NOT_FOUND, format!("stream {key} has no HLS media yet\n")),
    )
    .await
}

/// `GET /APP/STREAM/ts-N.ts`: the segment once complete (a request for the segment in
/// progress, or the next, waits for it, bounded).
pub(super) async fn ts_segment(
    svc: &Arc<HlsService>,
    rx: &mut watch::Receiver<Option<HlsSnapshot>>,
    live: bool,
    msn: u64,
    key: &StreamKey,
) -> Response {
    let deadline = Instant::now() + svc.settings.wait_timeout();
    wait_until(
        rx,
        live,
        deadline,
        |snap| match snap.lookup(Resource::Segment(msn)) {
            Lookup::Segment(seg) => {
                let Some(init) = snap.init(seg.init_id) else {
                    return Step::Answer(text(StatusCode::NOT_FOUND, "init segment gone\n"));
                };
                Step::Answer(match svc.ts_cache.get(key, init, &seg) {
                    Ok(bytes) => media_object(svc, vec![bytes], TS_TYPE),
                    Err(e) => text(
                        StatusCode::NOT_FOUND,
                        format!("segment {msn} is not available as MPEG-TS: {e}\n"),
                    ),
                })
            }
            Lookup::Wait => Step::Wait,
            _ => Step::Answer(text(StatusCode::NOT_FOUND, format!("ts-{msn}.ts not found\n"))),
        },
        || text(StatusCode::NOT_FOUND, format!("ts-{msn}.ts not available\n")),
    )
    .await
}

#[cfg(test)]
mod tests {
    use super::*;
    use sluice_media::frame::{MediaKind, MediaMessage};
    use sluice_media::hls::{HlsConfig, Segmenter};

    /// AVC sequence header body from ffmpeg/x264, 1280x720, High@3.1.
    const AVC_RECORD: [u8; 47] = [
        0x01, 0x64, 0x00, 0x1f, 0xff, 0xe1, 0x00, 0x1a, 0x67, 0x64, 0x00, 0x1f, 0xac, 0xd9, 0x40,
        0x50, 0x05, 0xbb, 0x01, 0x10, 0x00, 0x00, 0x03, 0x00, 0x10, 0x00, 0x00, 0x03, 0x03, 0xc0,
        0xf1, 0x83, 0x19, 0x60, 0x01, 0x00, 0x06, 0x68, 0xeb, 0xe3, 0xcb, 0x22, 0xc0, 0xfd, 0xf8,
        0xf8, 0x00,
    ];

    fn video(ts: u32, payload: Vec<u8>) -> MediaMessage {
        MediaMessage { kind: MediaKind::Video, timestamp: ts, payload: Bytes::from(payload) }
    }

    /// 4 s of 30 fps video, a keyframe every second: a snapshot with complete segments.
    fn snapshot() -> HlsSnapshot {
        let mut seg = Segmenter::new(HlsConfig::default());
        let mut head = vec![0x17, 0, 0, 0, 0];
        head.extend_from_slice(&AVC_RECORD);
        seg.push(&video(0, head)).unwrap();
        for n in 0..120u32 {
            let key = n % 30 == 0;
            let mut p = vec![if key { 0x17 } else { 0x27 }, 1, 0, 0, 0, 0, 0, 0, 3];
            p.extend_from_slice(&[if key { 0x65 } else { 0x41 }, 1, 2]);
            seg.push(&video(n * 1000 / 30, p)).unwrap();
        }
        seg.end_of_stream();
        seg.snapshot()
    }

    #[test]
    fn made_once_shared_and_dropped_with_the_segment() {
        let key = StreamKey::parse("live", "t").unwrap().0;
        let cache = TsCache::default();
        let snap = snapshot();
        let seg = snap.segments()[0].clone();
        let init = snap.init(seg.init_id).unwrap();
        let a = cache.get(&key, init, &seg).unwrap();
        let b = cache.get(&key, init, &seg).unwrap();
        assert_eq!(a.as_ptr(), b.as_ptr(), "the second request reuses the first's bytes");
        assert_eq!(a.len() % 188, 0);
        assert_eq!(cache.len(), 1);
        // Another segment, then the snapshot goes away: its entries die with it.
        let other = snap.segments()[1].clone();
        assert_ne!(cache.get(&key, init, &other).unwrap(), a);
        assert_eq!(cache.len(), 2);
        drop((seg, other, snap));
        cache.sweep();
        assert!(cache.is_empty());
    }

    #[test]
    fn a_segment_that_cannot_be_converted_is_an_error_not_a_panic() {
        let key = StreamKey::parse("live", "t").unwrap().0;
        let snap = snapshot();
        let seg = snap.segments()[0].clone();
        let mut init = snap.init(seg.init_id).unwrap().as_ref().clone();
        init.bytes = Bytes::from_static(b"\0\0\0\x08moov");
        let cache = TsCache::default();
        assert!(cache.get(&key, &init, &seg).is_err());
    }
}
