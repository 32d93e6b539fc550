//! `sluice-bench flood`: many TCP connections that send partial or garbage handshakes (or
//! nothing) and hold on, to check a server sheds hostile clients and keeps serving.

use std::collections::BTreeMap;
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::{Arc, Mutex};
use std::time::Duration;

use hdrhistogram::Histogram;
use serde::Serialize;
use sluice_media::rtmp::client::ClientMode;
use tokio::io::{AsyncReadExt, AsyncWriteExt};
use tokio::net::TcpStream;
use tokio::task::JoinSet;
use tokio::time::Instant;

use crate::rtmp_conn::RtmpConn;
use crate::stats::Quantiles;
use crate::target::RtmpUrl;

/// What each hostile connection sends after connecting.
#[derive(Debug, Clone, Copy, PartialEq, Eq, clap::ValueEnum, Serialize)]
#[serde(rename_all = "lowercase")]
pub enum FloodMode {
    /// Nothing at all.
    Silent,
    /// C0 and half of C1, then nothing.
    Partial,
    /// A C0 with a bad version and random bytes.
    Garbage,
    /// An HTTP request head that never ends.
    Http,
    /// Round-robin over the modes above.
    Mixed,
}

#[derive(Debug, Clone)]
pub struct FloodConfig {
    pub addr: String,
    pub connections: u64,
    /// New connections per second.
    pub rate: f64,
    pub hold: Duration,
    pub mode: FloodMode,
    pub connect_timeout: Duration,
    /// After all connections are open, check that this stream still accepts an RTMP connect.
    pub probe: Option<RtmpUrl>,
}

#[derive(Debug, Default)]
struct Counters {
    accepted: AtomicU64,
    closed_by_server: AtomicU64,
    held_to_end: AtomicU64,
    connect_errors: Mutex<BTreeMap<String, u64>>,
    /// Microseconds from connect to the server closing the connection.
    closed_after_us: Mutex<Option<Histogram<u64>>>,
}

impl Counters {
    fn closed(&self, opened: Instant) {
        self.closed_by_server.fetch_add(1, Ordering::Relaxed);
        let us = (opened.elapsed().as_micros() as u64).clamp(1, 600_000_000);
        {
            let mut slot = crate::stats::lock(&self.closed_after_us);
            let histogram = slot.get_or_insert_with(|| {
                Histogram::new_with_bounds(1, 600_000_000, 3).expect("valid histogram bounds")
            });
            let _ = histogram.record(us);
        }
    }
}

#[derive(Debug, Clone, Serialize)]
pub struct ProbeReport {
    pub ok: bool,
    pub connect_ms: Option<f64>,
    pub error: Option<String>,
}

#[derive(Debug, Clone, Serialize)]
pub struct FloodReport {
    pub addr: String,
    pub mode: FloodMode,
    pub attempted: u64,
    /// TCP connection established.
    pub accepted: u64,
    /// Refused, timed out or failed to connect, by reason.
    pub refused: u64,
    pub connect_errors: BTreeMap<String, u64>,
    /// Server closed/reset the connection during the hold.
    pub closed_by_server: u64,
    /// How long after connecting the server closed them.
    pub closed_after_ms: Option<Quantiles>,
    /// Still open when the hold ended.
    pub held_to_end: u64,
    pub open_seconds: f64,
    pub probe: Option<ProbeReport>,
}

pub async fn flood(config: FloodConfig) -> FloodReport {
    let counters = Arc::new(Counters::default());
    let start = Instant::now();
    let rate = config.rate.max(0.1);
    let open_until = start + Duration::from_secs_f64(config.connections as f64 / rate);
    let hold_until = open_until + config.hold;
    let mut tasks = JoinSet::new();
    for i in 0..config.connections {
        let due = start + Duration::from_secs_f64(i as f64 / rate);
        tokio::time::sleep_until(due).await;
        let mode = match config.mode {
            FloodMode::Mixed => {
                [FloodMode::Silent, FloodMode::Partial, FloodMode::Garbage, FloodMode::Http]
                    [(i % 4) as usize]
            }
            mode => mode,
        };
        let (addr, counters, timeout) =
            (config.addr.clone(), counters.clone(), config.connect_timeout);
        tasks.spawn(hostile(addr, mode, timeout, hold_until, counters));
    }
    tracing::info!("{} connections attempted in {:?}", config.connections, start.elapsed());
    let probe = match &config.probe {
        Some(url) => Some(probe(url, config.connect_timeout).await),
        None => None,
    };
    while tasks.join_next().await.is_some() {}
    let connect_errors = crate::stats::lock(&counters.connect_errors).clone();
    let closed_after_ms =
        crate::stats::lock(&counters.closed_after_us).as_ref().map(Quantiles::from);
    FloodReport {
        addr: config.addr,
        mode: config.mode,
        attempted: config.connections,
        accepted: counters.accepted.load(Ordering::Relaxed),
        refused: connect_errors.values().sum(),
        connect_errors,
        closed_by_server: counters.closed_by_server.load(Ordering::Relaxed),
        closed_after_ms,
        held_to_end: counters.held_to_end.load(Ordering::Relaxed),
        open_seconds: start.elapsed().as_secs_f64(),
        probe,
    }
}

async fn hostile(
    addr: String,
    mode: FloodMode,
    timeout: Duration,
    until: Instant,
    counters: Arc<Counters>,
) {
    let mut stream = match tokio::time::timeout(timeout, TcpStream::connect(&addr)).await {
        Ok(Ok(stream)) => stream,
        Ok(Err(e)) => return count_error(&counters, format!("{}", e.kind())),
        Err(_) => return count_error(&counters, "timeout".into()),
    };
    let opened = Instant::now();
    counters.accepted.fetch_add(1, Ordering::Relaxed);
    let payload: Vec<u8> = match mode {
        FloodMode::Silent | FloodMode::Mixed => Vec::new(),
        FloodMode::Partial => {
            let mut bytes = vec![0x03];
            bytes.extend((0..768).map(|_| rand::random::<u8>()));
            bytes
        }
        FloodMode::Garbage => {
            let mut bytes = vec![0x42];
            bytes.extend((0..1536).map(|_| rand::random::<u8>()));
            bytes
        }
        FloodMode::Http => b"GET /live/flood.flv HTTP/1.1\r\nHost: flood\r\nX-Slow: ".to_vec(),
    };
    if !payload.is_empty() && stream.write_all(&payload).await.is_err() {
        counters.closed(opened);
        return;
    }
    let mut buf = [0u8; 2048];
    loop {
        match tokio::time::timeout_at(until, stream.read(&mut buf)).await {
            Err(_) => {
                counters.held_to_end.fetch_add(1, Ordering::Relaxed);
                return;
            }
            Ok(Ok(0) | Err(_)) => {
                counters.closed(opened);
                return;
            }
            Ok(Ok(_)) => {} // S0/S1 or an HTTP error: ignore, keep holding.
        }
    }
}

fn count_error(counters: &Counters, reason: String) {
    *crate::stats::lock(&counters.connect_errors).entry(reason).or_insert(0) += 1;
}

async fn probe(url: &RtmpUrl, timeout: Duration) -> ProbeReport {
    let start = Instant::now();
    let result = async {
        let mut conn = RtmpConn::connect(url, ClientMode::Play, timeout).await?;
        conn.wait_connected(timeout).await?;
        conn.close().await;
        Ok::<_, crate::rtmp_conn::ConnError>(())
    }
    .await;
    match result {
        Ok(()) => ProbeReport {
            ok: true,
            connect_ms: Some(start.elapsed().as_secs_f64() * 1000.0),
            error: None,
        },
        Err(e) => ProbeReport { ok: false, connect_ms: None, error: Some(e.to_string()) },
    }
}
