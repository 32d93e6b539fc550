//! A viewer that follows the control plane's assignments the way a player does: ask
//! `/play/APP/STREAM.json?protocol=rtmp` for an edge, play from it over RTMP, and whenever the
//! edge ends the stream (drained, restarted, dead) ask again, naming the edge it lost in
//! `?avoid=` (a dead edge stays registered until its lease ends).

use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::{Arc, Mutex};
use std::thread::JoinHandle;
use std::time::{Duration, Instant};

use crate::viewer::Watcher;
use crate::{http, secs};

/// A viewer that does what a player using the control plane does: ask `/play/…json` for an
/// edge, play from it over RTMP, and ask again (avoiding the edge it lost) whenever the edge
/// ends the stream or cannot be reached.
pub struct Follower {
    stop: Arc<AtomicBool>,
    stats: Arc<Mutex<FollowerStats>>,
    thread: JoinHandle<()>,
}

#[derive(Debug, Default, Clone)]
pub struct FollowerStats {
    /// Edges played from, in order.
    pub edges: Vec<String>,
    /// Longest time from losing the stream to the first frame from the next edge.
    pub longest_outage: Duration,
    pub playing: bool,
    /// Assignment or connection failures, retried.
    pub failures: u32,
}

impl Follower {
    pub fn start(control_plane: std::net::SocketAddr, stream: &str) -> Follower {
        let stop = Arc::new(AtomicBool::new(false));
        let stats = Arc::new(Mutex::new(FollowerStats::default()));
        let thread = {
            let (stop, stats, stream) = (stop.clone(), stats.clone(), stream.to_string());
            std::thread::spawn(move || follow(control_plane, &stream, &stop, &stats))
        };
        Follower { stop, stats, thread }
    }

    pub fn stats(&self) -> FollowerStats {
        crate::lock(&self.stats).clone()
    }

    pub fn finish(self) -> FollowerStats {
        self.stop.store(true, Ordering::Relaxed);
        self.thread.join().expect("follower thread");
        crate::lock(&self.stats).clone()
    }
}

fn follow(cp: std::net::SocketAddr, stream: &str, stop: &AtomicBool, stats: &Mutex<FollowerStats>) {
    let mut lost_at: Option<Instant> = None;
    let mut avoid: Option<String> = None;
    while !stop.load(Ordering::Relaxed) {
        let mut path = format!("/play/live/{stream}.json?protocol=rtmp");
        if let Some(edge) = &avoid {
            path.push_str(&format!("&avoid={edge}"));
        }
        let choice = http::get(cp, &path, secs(5))
            .ok()
            .filter(|r| r.status == 200)
            .and_then(|r| serde_json::from_slice::<serde_json::Value>(&r.body).ok());
        let target = choice.as_ref().and_then(|c| {
            let url = c["url"].as_str()?;
            let addr = url.strip_prefix("rtmp://")?.split('/').next()?.parse().ok()?;
            Some((addr, c["edge"].as_str()?.to_string()))
        });
        let Some((addr, edge)) = target else {
            crate::lock(stats).failures += 1;
            std::thread::sleep(Duration::from_millis(200));
            continue;
        };
        let watcher = Watcher::try_start(addr, "live", stream);
        let Some(watcher) = watcher.ok().filter(|w| w.wait_video(1, secs(10)) > 0) else {
            crate::lock(stats).failures += 1;
            avoid = Some(edge);
            continue;
        };
        {
            let mut s = crate::lock(stats);
            if let Some(at) = lost_at.take() {
                s.longest_outage = s.longest_outage.max(at.elapsed());
            }
            s.edges.push(edge.clone());
            s.playing = true;
        }
        while watcher.is_playing() && !stop.load(Ordering::Relaxed) {
            std::thread::sleep(Duration::from_millis(50));
        }
        if !stop.load(Ordering::Relaxed) {
            lost_at = Some(Instant::now());
            crate::lock(stats).playing = false;
            avoid = Some(edge);
        }
    }
}
