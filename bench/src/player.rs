//! One viewer: an RTMP, HTTP-FLV or LL-HLS player task that reads the stream until it is
//! aborted, measuring time to first frame, end-to-end latency from the stamps, and sequence
//! gaps. [`Viewer`] holds the per-player measuring state every protocol shares.

use std::sync::atomic::Ordering;
use std::sync::Arc;
use std::time::Duration;

use sluice_media::flv::{FlvError, FlvReader};
use sluice_media::frame::MediaKind;
use sluice_media::rtmp::client::{ClientEvent, ClientMode};
use tokio::io::{AsyncReadExt, AsyncWriteExt};
use tokio::time::Instant;

use crate::hls::{play_hls, HlsOptions};
use crate::http::{parse_response_head, ChunkedDecoder, HttpError, MAX_HEAD};
use crate::rtmp_conn::{is_error_status, tcp_connect, ConnError, RtmpConn};
use crate::sei::{inspect_video, Stamp, VideoInfo};
use crate::stats::{wall_us, Shared, NO_SEQ};
use crate::target::{HttpUrl, RtmpUrl};

/// Why an HTTP-FLV player stopped.
#[derive(Debug, thiserror::Error)]
enum FlvPlayError {
    #[error(transparent)]
    Connect(ConnError),
    #[error("i/o: {0}")]
    Io(std::io::ErrorKind),
    #[error(transparent)]
    Http(#[from] HttpError),
    #[error("closed by server")]
    Closed,
    #[error("closed by server (end of chunked body)")]
    ChunkedEnd,
    #[error("flv: {0}")]
    Flv(#[from] FlvError),
}

impl FlvPlayError {
    /// A short label for failure counting.
    fn label(&self) -> String {
        match self {
            FlvPlayError::Connect(e) => e.label(),
            FlvPlayError::Io(kind) => format!("io: {kind}"),
            FlvPlayError::Http(e) => e.label(),
            FlvPlayError::Flv(e) => format!("flv: {e}"),
            FlvPlayError::Closed | FlvPlayError::ChunkedEnd => self.to_string(),
        }
    }
}

fn io_error(e: &std::io::Error) -> FlvPlayError {
    FlvPlayError::Io(e.kind())
}

/// Largest FLV tag a player accepts.
const MAX_FLV_TAG: usize = 16 * 1024 * 1024;
/// HTTP read buffer.
const HTTP_READ_BUF: usize = 32 * 1024;

/// Where a player connects.
#[derive(Debug, Clone)]
pub enum PlayTarget {
    Rtmp(RtmpUrl),
    Flv(HttpUrl),
    /// The multivariant playlist's URL.
    Hls(HttpUrl, HlsOptions),
}

/// Per-player measuring state.
pub struct Viewer {
    shared: Arc<Shared>,
    connect_start: Instant,
    /// Wall clock at connect start: frames stamped before it come from a cache.
    connect_wall_us: u64,
    /// Publisher sequence when the first frame arrived: lower sequences are the initial burst.
    live_from_seq: Option<u64>,
    last_seq: Option<u64>,
    playing: bool,
    receiving: bool,
}

impl Viewer {
    pub fn new(shared: Arc<Shared>) -> Self {
        Viewer {
            shared,
            connect_start: Instant::now(),
            connect_wall_us: wall_us(),
            live_from_seq: None,
            last_seq: None,
            playing: false,
            receiving: false,
        }
    }

    /// The player reached "playing" (counted once).
    pub fn playing(&mut self) {
        if !self.playing {
            self.playing = true;
            Shared::add(&self.shared.connected, 1);
        }
    }

    pub fn shared(&self) -> &Shared {
        &self.shared
    }

    pub fn bytes(&self, n: usize) {
        if self.shared.measuring() {
            Shared::add(&self.shared.bytes, n as u64);
        }
    }

    /// Handle one video message body.
    fn video(&mut self, body: &[u8]) {
        match inspect_video(body) {
            VideoInfo::Stamped { stamp, .. } => self.stamp(stamp),
            VideoInfo::SequenceHeader => {}
            VideoInfo::Unstamped => self.unstamped(),
        }
    }

    /// A video frame without a bench stamp.
    pub fn unstamped(&self) {
        if self.shared.measuring() {
            Shared::add(&self.shared.unstamped_frames, 1);
        }
    }

    /// A stamped video frame was received now.
    pub fn stamp(&mut self, stamp: Stamp) {
        let now_us = wall_us();
        if !self.receiving {
            self.receiving = true;
            self.playing();
            Shared::add(&self.shared.receiving, 1);
            self.shared.record_ttff(self.connect_start.elapsed());
            let current = self.shared.publisher_seq.load(Ordering::Acquire);
            self.live_from_seq = (current != NO_SEQ).then_some(current);
        }
        let shared = &*self.shared;
        let measuring = shared.measuring();
        if let Some(last) = self.last_seq {
            if stamp.seq > last {
                let gap = stamp.seq - last - 1;
                if measuring && gap > 0 {
                    Shared::add(&shared.dropped_frames, gap);
                }
            } else if measuring {
                Shared::add(&shared.out_of_order_frames, 1);
            }
        }
        self.last_seq = Some(self.last_seq.map_or(stamp.seq, |last| last.max(stamp.seq)));
        if !measuring {
            return;
        }
        Shared::add(&shared.frames, 1);
        let cached = stamp.time_us < self.connect_wall_us
            || self.live_from_seq.is_some_and(|live| stamp.seq < live);
        if cached {
            Shared::add(&shared.cached_frames, 1);
        } else {
            shared.record_latency(Duration::from_micros(now_us.saturating_sub(stamp.time_us)));
        }
    }

    /// The player ended with `error`: count it as a failure or a disconnect.
    pub fn ended(&self, error: &str) {
        if self.playing {
            self.shared.disconnect(error.to_string());
        } else {
            self.shared.fail(error.to_string());
        }
    }
}

/// Play `target` until the task is aborted (or the connection fails, which is counted).
pub async fn play(target: PlayTarget, shared: Arc<Shared>, connect_timeout: Duration) {
    let mut viewer = Viewer::new(shared);
    let result = match &target {
        PlayTarget::Rtmp(url) => {
            play_rtmp(url, &mut viewer, connect_timeout).await.map_err(|e| e.label())
        }
        PlayTarget::Flv(url) => {
            play_flv(url, &mut viewer, connect_timeout).await.map_err(|e| e.label())
        }
        PlayTarget::Hls(url, options) => {
            play_hls(url, options, &mut viewer, connect_timeout).await.map_err(|e| e.to_string())
        }
    };
    if let Err(reason) = result {
        tracing::debug!("player ended: {reason}");
        viewer.ended(&reason);
    }
}

async fn play_rtmp(url: &RtmpUrl, viewer: &mut Viewer, timeout: Duration) -> Result<(), ConnError> {
    let mut conn = RtmpConn::connect(url, ClientMode::Play, timeout).await?;
    loop {
        while let Some(event) = conn.poll_event() {
            match event {
                ClientEvent::Media(message) if message.kind == MediaKind::Video => {
                    viewer.video(&message.payload);
                }
                ClientEvent::PlayStarted => viewer.playing(),
                ClientEvent::Status { level, code, .. } if is_error_status(&level) => {
                    return Err(ConnError::Status(code));
                }
                ClientEvent::CommandError { description } => {
                    return Err(ConnError::Command(description))
                }
                _ => {}
            }
        }
        conn.flush().await?;
        let n = conn.read().await?;
        viewer.bytes(n);
    }
}

async fn play_flv(
    url: &HttpUrl,
    viewer: &mut Viewer,
    timeout: Duration,
) -> Result<(), FlvPlayError> {
    let mut stream = tcp_connect(&url.addr, timeout).await.map_err(FlvPlayError::Connect)?;
    stream.write_all(url.request().as_bytes()).await.map_err(|e| io_error(&e))?;
    let mut buf = vec![0u8; HTTP_READ_BUF];
    let mut filled = 0usize;
    // Response head (bounded by MAX_HEAD < buffer size).
    let head = loop {
        if filled >= MAX_HEAD.min(buf.len()) {
            return Err(HttpError::HeadTooLarge.into());
        }
        let n = stream.read(&mut buf[filled..]).await.map_err(|e| io_error(&e))?;
        if n == 0 {
            return Err(FlvPlayError::Closed);
        }
        filled += n;
        viewer.bytes(n);
        if let Some(head) = parse_response_head(&buf[..filled])? {
            break head;
        }
    };
    viewer.playing();
    let mut chunked = head.chunked.then(ChunkedDecoder::new);
    let mut reader = FlvReader::new(MAX_FLV_TAG);
    let mut start = head.head_len;
    loop {
        let data = &buf[start..filled];
        match chunked.as_mut() {
            Some(decoder) => {
                decoder.decode(data, |body| reader.push(body))?;
                if decoder.is_done() {
                    return Err(FlvPlayError::ChunkedEnd);
                }
            }
            None => reader.push(data),
        }
        while let Some(tag) = reader.next_tag()? {
            if tag.kind == MediaKind::Video {
                viewer.video(&tag.payload);
            }
        }
        start = 0;
        filled = stream.read(&mut buf).await.map_err(|e| io_error(&e))?;
        if filled == 0 {
            return Err(FlvPlayError::Closed);
        }
        viewer.bytes(filled);
    }
}
