//! A publisher of known media: the tags of an FLV fixture sent in real time over a raw RTMP
//! connection, looped with timestamps that continue (each pass adds the file's length), so a
//! viewer can tell exactly which frames it should have had.
//!
//! Unlike `ffmpeg -re -stream_loop -1`, every frame sent is recorded (kind, timestamp, payload
//! hash), so tests can compare what a viewer received with what was published.

use std::collections::hash_map::DefaultHasher;
use std::hash::{Hash, Hasher};
use std::net::SocketAddr;
use std::path::Path;
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::{Arc, Mutex};
use std::thread::{self, JoinHandle};
use std::time::{Duration, Instant};

use anyhow::{bail, Context, Result};
use sluice_media::frame::{MediaKind, MediaMessage};
use sluice_media::rtmp::client::ClientMode;

use crate::rtmp::{read_flv_file, RtmpClient};

/// One fixture pass lasts this long (ms): the fixtures are 10 s at 30 fps, so frame `n` of
/// the next pass keeps the 33.3 ms cadence.
pub const LOOP_MS: u32 = 10_000;

/// A stable hash of a payload (same value in every viewer of this process).
pub fn payload_hash(payload: &[u8]) -> u64 {
    let mut h = DefaultHasher::new();
    payload.hash(&mut h);
    h.finish()
}

/// A message as the publisher sent it.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Sent {
    pub kind: MediaKind,
    pub timestamp: u32,
    pub hash: u64,
}

/// A running replay publisher (a thread); stops when dropped.
pub struct Replay {
    stop: Arc<AtomicBool>,
    sent: Arc<Mutex<Vec<Sent>>>,
    thread: Option<JoinHandle<Result<()>>>,
    pub stream: String,
}

impl std::fmt::Debug for Replay {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Replay").field("stream", &self.stream).finish()
    }
}

impl Replay {
    /// Publish `file` (an FLV fixture) to `rtmp://addr/app/stream` in a loop, in real time.
    /// Waits for `NetStream.Publish.Start` (panics if refused).
    pub fn start(addr: SocketAddr, app: &str, stream: &str, file: &Path) -> Replay {
        let tags = read_flv_file(file).expect("read the fixture");
        let mut client = RtmpClient::connect(addr, app, stream, ClientMode::Publish)
            .unwrap_or_else(|e| panic!("connect publisher for {stream}: {e}"));
        client
            .expect_status("NetStream.Publish.Start", Duration::from_secs(20))
            .unwrap_or_else(|e| panic!("publish {stream}: {e}"));
        let stop = Arc::new(AtomicBool::new(false));
        let sent = Arc::new(Mutex::new(Vec::new()));
        let (s, log) = (stop.clone(), sent.clone());
        let thread = thread::Builder::new()
            .name(format!("replay-{stream}"))
            .spawn(move || run(client, tags, s, log))
            .expect("spawn the replay thread");
        Replay { stop, sent, thread: Some(thread), stream: stream.to_string() }
    }

    /// Everything sent so far.
    pub fn sent(&self) -> Vec<Sent> {
        crate::lock(&self.sent).clone()
    }

    /// Whether the publisher is still sending (no write error, not stopped).
    pub fn is_running(&self) -> bool {
        self.thread.as_ref().is_some_and(|t| !t.is_finished())
    }

    /// Stop publishing and close the connection; returns the publisher's error, if any.
    pub fn stop(&mut self) -> Result<()> {
        self.stop.store(true, Ordering::Relaxed);
        match self.thread.take() {
            Some(t) => t.join().unwrap_or_else(|_| bail!("replay thread panicked")),
            None => Ok(()),
        }
    }
}

impl Drop for Replay {
    fn drop(&mut self) {
        let _ = self.stop();
    }
}

fn run(
    mut client: RtmpClient,
    tags: Vec<MediaMessage>,
    stop: Arc<AtomicBool>,
    sent: Arc<Mutex<Vec<Sent>>>,
) -> Result<()> {
    let start = Instant::now();
    let first = tags.iter().map(|t| t.timestamp).min().unwrap_or(0);
    // Last timestamp sent per kind: the audio of a pass runs a few ms past LOOP_MS, and those
    // frames are left out rather than sent with timestamps going backwards.
    let mut last: [Option<u32>; 3] = [None; 3];
    for pass in 0u32.. {
        for (i, tag) in tags.iter().enumerate() {
            // Metadata and sequence headers go once, in the first pass.
            let header = tag.kind == MediaKind::Data
                || crate::rtmp::video_header(&tag.payload).is_some_and(|h| h.sequence_header)
                    && tag.kind == MediaKind::Video
                || tag.kind == MediaKind::Audio
                    && tag.payload.first().map(|b| b >> 4) == Some(10)
                    && tag.payload.get(1) == Some(&0);
            if pass > 0 && header {
                continue;
            }
            let timestamp = tag.timestamp - first + pass * LOOP_MS;
            if !header {
                let slot = &mut last[tag.kind as usize % 3];
                if slot.is_some_and(|t| timestamp <= t) {
                    continue;
                }
                *slot = Some(timestamp);
            }
            let due = start + Duration::from_millis(u64::from(timestamp));
            loop {
                if stop.load(Ordering::Relaxed) {
                    client.close();
                    return Ok(());
                }
                let now = Instant::now();
                if now >= due {
                    break;
                }
                // Answer the server (acknowledgements, pings) while waiting.
                client.pump((due - now).min(Duration::from_millis(20))).context("publisher")?;
                if client.is_eof() {
                    bail!("the server closed the publisher's connection");
                }
            }
            let message = MediaMessage { kind: tag.kind, timestamp, payload: tag.payload.clone() };
            client.send_media(&message).with_context(|| format!("send tag {i}"))?;
            crate::lock(&sent).push(Sent {
                kind: tag.kind,
                timestamp,
                hash: payload_hash(&tag.payload),
            });
        }
    }
    Ok(())
}
