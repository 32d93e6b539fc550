//! The LL-HLS player loop of one client (see the module docs of [`crate::hls`]).

use std::sync::atomic::Ordering;
use std::time::Duration;

use thiserror::Error;
use tokio::time::Instant;

use super::conn::{FetchError, HttpConn};
use super::fmp4::{parse_init, Fmp4Error, PartScanner, VideoTrack, MAX_MOOF};
use super::playlist::{
    blocking_reload, first_variant, parse_media, resolve, MediaPlaylist, PartKey, PlaylistError,
    MAX_PLAYLIST,
};
use super::{HlsCounters, HlsMode, HlsOptions};
use crate::http::HttpError;
use crate::player::Viewer;
use crate::target::HttpUrl;

/// Why a request or a round of the player failed. Its text is the label the failure is
/// counted under (`playlist: timeout`, `part: http status 500`, ...).
#[derive(Debug, Error)]
pub enum HlsError {
    #[error("{what}: timeout")]
    Timeout { what: &'static str },
    #[error("{what}: {}", .error.label())]
    Fetch { what: &'static str, error: FetchError },
    #[error("{what}: http status {code}")]
    Status { what: &'static str, code: u16 },
    #[error("multivariant: {0}")]
    Multivariant(PlaylistError),
    #[error("playlist: {0}")]
    Playlist(PlaylistError),
    #[error("playlist: no EXT-X-MAP")]
    NoMap,
    #[error("init: {0}")]
    Init(Fmp4Error),
    #[error("part before init")]
    PartBeforeInit,
    #[error("part: fmp4: {0}")]
    Part(Fmp4Error),
}

impl HlsError {
    /// The server answered `code` (as a status, or as an HTTP error of the response).
    fn is_status(&self, code: u16) -> bool {
        match self {
            HlsError::Status { code: c, .. } => *c == code,
            HlsError::Fetch { error: FetchError::Http(HttpError::Status(c)), .. } => *c == code,
            _ => false,
        }
    }
}

/// Largest part accepted (the server's own limit is 4 MiB).
const MAX_PART: u64 = 16 * 1024 * 1024;
/// Attempts at the first playlists before the player counts as failed.
const START_ATTEMPTS: u32 = 3;
/// Pause after a failed request, and after a step that brought nothing new.
const BACKOFF: Duration = Duration::from_millis(200);
const IDLE_PAUSE: Duration = Duration::from_millis(20);

struct Client {
    conn: HttpConn,
    opts: HlsOptions,
    /// Path of the media playlist (with the session id query).
    media_path: String,
    init_path: Option<String>,
    track: Option<VideoTrack>,
    /// The newest part received.
    last: Option<PartKey>,
    last_part_at: Option<Instant>,
    stall_after: Duration,
    text: Vec<u8>,
    scanner: PartScanner,
    connects_reported: u64,
}

/// Play the LL-HLS stream whose multivariant playlist is `url` until the task is aborted.
/// Returns only if the player never got to play (the error is its failure reason); later
/// errors are counted and the client carries on, as a player would.
pub async fn play_hls(
    url: &HttpUrl,
    opts: &HlsOptions,
    viewer: &mut Viewer,
    connect_timeout: Duration,
) -> Result<(), HlsError> {
    let mut client = Client {
        conn: HttpConn::new(url, connect_timeout),
        opts: opts.clone(),
        media_path: String::new(),
        init_path: None,
        track: None,
        last: None,
        last_part_at: None,
        stall_after: opts.stall_after.unwrap_or(Duration::from_secs(1)),
        text: Vec::with_capacity(4096),
        scanner: PartScanner::new(VideoTrack { track_id: 1, hevc: false, nal_length_size: 4 }),
        connects_reported: 0,
    };
    let mut attempt = 0;
    loop {
        let started = client.start(&url.path, viewer).await;
        client.report_connects(viewer);
        match started {
            Ok(()) => break,
            Err(e) if attempt + 1 >= START_ATTEMPTS => return Err(e),
            Err(_) => attempt += 1,
        }
        tokio::time::sleep(BACKOFF).await;
    }
    viewer.playing();
    loop {
        let before = client.last;
        let result = client.step(viewer).await;
        client.report_connects(viewer);
        match result {
            Err(e) => {
                viewer.shared().hls.error(e.to_string());
                tokio::time::sleep(BACKOFF).await;
            }
            Ok(()) if client.last == before => tokio::time::sleep(IDLE_PAUSE).await,
            Ok(()) => {}
        }
    }
}

/// Where a GET's body goes.
enum BodyTo<'a> {
    /// A buffer (cleared first), with a size limit.
    Text(&'a mut Vec<u8>, u64),
    Part(&'a mut PartScanner),
}

/// GET `path` within `timeout`; returns the status. Counts the bytes received.
async fn fetch(
    conn: &mut HttpConn,
    timeout: Duration,
    what: &'static str,
    path: &str,
    into: BodyTo<'_>,
    viewer: &Viewer,
) -> Result<u16, HlsError> {
    let result = match into {
        BodyTo::Text(buf, max) => {
            buf.clear();
            let mut sink = |d: &[u8]| -> Result<(), Fmp4Error> {
                buf.extend_from_slice(d);
                Ok(())
            };
            tokio::time::timeout(timeout, conn.get(path, max, &mut sink)).await
        }
        BodyTo::Part(scanner) => {
            let mut sink = |d: &[u8]| scanner.push(d);
            tokio::time::timeout(timeout, conn.get(path, MAX_PART, &mut sink)).await
        }
    };
    match result {
        Err(_) => {
            conn.reset();
            Err(HlsError::Timeout { what })
        }
        Ok(Err(error)) => Err(HlsError::Fetch { what, error }),
        Ok(Ok(response)) => {
            viewer.bytes(usize::try_from(response.wire_bytes).unwrap_or(usize::MAX));
            Ok(response.status)
        }
    }
}

impl Client {
    fn counters<'a>(&self, viewer: &'a Viewer) -> &'a HlsCounters {
        &viewer.shared().hls
    }

    fn report_connects(&mut self, viewer: &Viewer) {
        let new = self.conn.connects - self.connects_reported;
        if new > 0 {
            HlsCounters::add(&self.counters(viewer).connections, new);
            self.connects_reported = self.conn.connects;
        }
    }

    /// Fetch a playlist into `self.text`; any status but 200 is an error.
    async fn get_text(
        &mut self,
        what: &'static str,
        path: &str,
        max: u64,
        viewer: &Viewer,
    ) -> Result<(), HlsError> {
        let into = BodyTo::Text(&mut self.text, max);
        let timeout = self.opts.request_timeout;
        match fetch(&mut self.conn, timeout, what, path, into, viewer).await? {
            200 => Ok(()),
            code => Err(HlsError::Status { what, code }),
        }
    }

    /// Multivariant playlist, then the first media playlist (which must parse).
    async fn start(&mut self, path: &str, viewer: &Viewer) -> Result<(), HlsError> {
        self.get_text("multivariant", path, MAX_PLAYLIST as u64, viewer).await?;
        let variant = first_variant(&self.text).map_err(HlsError::Multivariant)?;
        self.media_path = resolve(path, &variant);
        let media = self.media_path.clone();
        self.get_text("playlist", &media, MAX_PLAYLIST as u64, viewer).await?;
        parse_media(&self.text).map_err(HlsError::Playlist)?;
        Ok(())
    }

    /// One round: a playlist (blocking once a part was received), the init segment if it
    /// changed, the listed parts not received yet, and in `hint` mode the hinted part.
    async fn step(&mut self, viewer: &mut Viewer) -> Result<(), HlsError> {
        let path = match (self.opts.mode, self.last) {
            (_, None) => self.media_path.clone(),
            (HlsMode::Hint, Some(last)) => blocking_reload(&self.media_path, last),
            (HlsMode::Blocking, Some((msn, index))) => {
                blocking_reload(&self.media_path, (msn, index.saturating_add(1)))
            }
        };
        self.get_text("playlist", &path, MAX_PLAYLIST as u64, viewer).await.inspect_err(|e| {
            // Asked for a part the server will not produce (it restarted numbering):
            // start again from the live edge.
            if e.is_status(400) {
                self.last = None;
            }
        })?;
        let pl = parse_media(&self.text).map_err(HlsError::Playlist)?;
        // Counted when the response arrived, as parts are.
        if viewer.shared().measuring() {
            let hls = self.counters(viewer);
            HlsCounters::add(&hls.playlists, 1);
            if self.last.is_some() {
                HlsCounters::add(&hls.blocking_playlists, 1);
            }
        }
        if let Some(t) = pl.part_target.filter(|t| t.is_finite() && *t > 0.0) {
            if self.opts.stall_after.is_none() {
                self.stall_after = Duration::from_secs_f64((2.0 * t).min(60.0));
            }
        }
        self.ensure_init(&pl, viewer).await?;
        let from = match self.last {
            Some(last) => last,
            None => {
                let Some(start) = pl.start_part() else {
                    return Ok(());
                };
                // Everything from the newest independent part on.
                if start.key.1 > 0 {
                    (start.key.0, start.key.1 - 1)
                } else {
                    (start.key.0.saturating_sub(1), u32::MAX)
                }
            }
        };
        let listed: Vec<(PartKey, String)> = pl
            .parts
            .iter()
            .filter(|p| p.key > from)
            .map(|p| (p.key, resolve(&self.media_path, &p.uri)))
            .collect();
        for (key, path) in listed {
            match self.part(&path, key, viewer).await? {
                200 => {}
                code => viewer.shared().hls.error(format!("part: http status {code}")),
            }
        }
        if self.opts.mode == HlsMode::Hint {
            if let Some(hint) = pl.preload_hint.as_ref() {
                if self.last.is_none_or(|last| hint.key > last) {
                    let path = resolve(&self.media_path, &hint.uri);
                    let status = self.part(&path, hint.key, viewer).await?;
                    let hls = self.counters(viewer);
                    let measuring = viewer.shared().measuring();
                    match status {
                        200 if measuring => HlsCounters::add(&hls.hint_hits, 1),
                        200 => {}
                        404 if measuring => HlsCounters::add(&hls.hint_misses, 1),
                        404 => {}
                        code => hls.error(format!("hinted part: http status {code}")),
                    }
                }
            }
        }
        Ok(())
    }

    /// Fetch the init segment when the playlist's `EXT-X-MAP` changed.
    async fn ensure_init(&mut self, pl: &MediaPlaylist, viewer: &Viewer) -> Result<(), HlsError> {
        let uri = pl.map_uri.as_deref().ok_or(HlsError::NoMap)?;
        let path = resolve(&self.media_path, uri);
        if self.init_path.as_deref() == Some(path.as_str()) && self.track.is_some() {
            return Ok(());
        }
        self.get_text("init", &path, MAX_MOOF as u64, viewer).await?;
        self.track = Some(parse_init(&self.text).map_err(HlsError::Init)?);
        self.init_path = Some(path);
        if viewer.shared().measuring() {
            HlsCounters::add(&self.counters(viewer).inits, 1);
        }
        Ok(())
    }

    /// Fetch one part and record its frames; returns the status (200: received).
    async fn part(
        &mut self,
        path: &str,
        key: PartKey,
        viewer: &mut Viewer,
    ) -> Result<u16, HlsError> {
        let track = self.track.ok_or(HlsError::PartBeforeInit)?;
        self.scanner.reset(track);
        let into = BodyTo::Part(&mut self.scanner);
        let timeout = self.opts.request_timeout;
        let status = fetch(&mut self.conn, timeout, "part", path, into, viewer).await?;
        if status != 200 {
            return Ok(status);
        }
        self.scanner.finish().map_err(HlsError::Part)?;
        let now = Instant::now();
        for stamp in &self.scanner.stamps {
            viewer.stamp(*stamp);
        }
        let missing = self.scanner.video_samples.saturating_sub(self.scanner.stamps.len() as u64);
        for _ in 0..missing {
            viewer.unstamped();
        }
        let hls = &viewer.shared().hls;
        if viewer.shared().measuring() {
            HlsCounters::add(&hls.parts, 1);
            if let Some(prev) = self.last_part_at {
                let gap = now.duration_since(prev);
                hls.max_part_gap_us.fetch_max(gap.as_micros() as u64, Ordering::Relaxed);
                if gap > self.stall_after {
                    HlsCounters::add(&hls.stalls, 1);
                }
            }
        }
        self.last_part_at = Some(now);
        self.last = Some(key);
        Ok(200)
    }
}
