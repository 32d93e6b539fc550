//! What the harness's HTTP viewers see: an HTTP-FLV reader's video arrivals, an LL-HLS
//! player's playlist reloads (and the numbers that went back).

use std::io::Read;
use std::net::SocketAddr;
use std::sync::atomic::{AtomicBool, AtomicU64, Ordering};
use std::sync::{Arc, Mutex};
use std::thread::{self, JoinHandle};
use std::time::{Duration, Instant};

use sluice_media::flv::FlvReader;
use sluice_media::frame::MediaKind;

use crate::{http, secs};

/// Video frame arrivals of an HTTP-FLV viewer, on a thread.
pub(super) struct FlvWatch {
    pub(super) arrivals: Arc<Mutex<Vec<Instant>>>,
    pub(super) done: Arc<AtomicBool>,
    _thread: JoinHandle<()>,
}

impl FlvWatch {
    pub(super) fn start(addr: SocketAddr, stream: &str) -> FlvWatch {
        let (arrivals, done) = (Arc::new(Mutex::new(Vec::new())), Arc::new(AtomicBool::new(false)));
        let (a, d, path) = (arrivals.clone(), done.clone(), format!("/live/{stream}.flv"));
        let thread = thread::spawn(move || {
            if let Ok(mut body) = http::open(addr, "GET", &path, secs(5)) {
                // A viewer waits through gaps (the edge keeps it for its grace time).
                let _ = body.set_read_timeout(Some(secs(60)));
                let mut reader = FlvReader::new(16 << 20);
                let mut buf = vec![0; 64 << 10];
                while let Ok(n) = body.read(&mut buf) {
                    if n == 0 {
                        break;
                    }
                    reader.push(&buf[..n]);
                    while let Ok(Some(tag)) = reader.next_tag() {
                        // Coded frames only: AVC packet type 1 (not the sequence header).
                        if tag.kind == MediaKind::Video && tag.payload.get(1) == Some(&1) {
                            crate::lock(&a).push(Instant::now());
                        }
                    }
                }
            }
            d.store(true, Ordering::Relaxed);
        });
        FlvWatch { arrivals, done, _thread: thread }
    }
}

/// An LL-HLS player's playlist reloads: counts media sequence or part numbers that go back.
pub(super) struct HlsWatch {
    pub(super) regressions: Arc<AtomicU64>,
    pub(super) stop: Arc<AtomicBool>,
    _thread: JoinHandle<()>,
}

impl HlsWatch {
    pub(super) fn start(addr: SocketAddr, stream: &str) -> HlsWatch {
        let (regressions, stop) = (Arc::new(AtomicU64::new(0)), Arc::new(AtomicBool::new(false)));
        let (r, s, stream) = (regressions.clone(), stop.clone(), stream.to_string());
        let thread = thread::spawn(move || {
            let mut last: Option<(u64, (u64, u64))> = None;
            let mut playlist = None;
            while !s.load(Ordering::Relaxed) {
                thread::sleep(Duration::from_millis(200));
                let path = match &playlist {
                    Some(p) => p,
                    None => {
                        let Ok(resp) = http::get(addr, &format!("/live/{stream}.m3u8"), secs(3))
                        else {
                            continue;
                        };
                        let text = resp.text();
                        let Some(uri) = text.lines().find(|l| !l.starts_with('#') && !l.is_empty())
                        else {
                            continue;
                        };
                        playlist.insert(format!("/live/{uri}"))
                    }
                };
                let Ok(resp) = http::get(addr, path, secs(3)) else { continue };
                if let Some(now) = http::hls_position(&resp.text()) {
                    if last.is_some_and(|l| now.0 < l.0 || now.1 < l.1) {
                        r.fetch_add(1, Ordering::Relaxed);
                    }
                    last = Some(now);
                }
            }
        });
        HlsWatch { regressions, stop, _thread: thread }
    }
}
