//! `sluice-bench run`: optional publisher + N players, a warm-up, a measuring window, and one
//! JSON report.

use std::sync::Arc;
use std::time::Duration;

use serde::Serialize;
use tokio::sync::{oneshot, watch};
use tokio::task::JoinSet;
use tokio::time::Instant;

use crate::hls::{HlsOptions, HlsReport};
use crate::player::{play, PlayTarget};
use crate::procstat::{host_load, sample, ProcSample};
use crate::publisher::{spawn_on_own_thread, PublisherReport};
use crate::stats::{FramesReport, PlayersReport, Quantiles, Shared, PHASE_DONE, PHASE_MEASURE};
use crate::synth::{StreamShape, Synth};
use crate::target::{HttpUrl, RtmpUrl};

/// Player protocol.
#[derive(Debug, Clone, Copy, PartialEq, Eq, clap::ValueEnum, Serialize)]
#[serde(rename_all = "lowercase")]
pub enum Protocol {
    Rtmp,
    Flv,
    Hls,
}

/// Everything `run` needs (parsed CLI).
#[derive(Debug, Clone)]
pub struct RunConfig {
    pub url: RtmpUrl,
    pub flv_url: Option<HttpUrl>,
    pub hls_url: Option<HttpUrl>,
    pub hls: HlsOptions,
    pub publish: bool,
    pub players: u64,
    pub protocol: Protocol,
    pub shape: StreamShape,
    pub duration: Duration,
    pub warmup: Duration,
    pub ramp: Duration,
    /// How long a published stream runs before the baseline RSS (see `--settle`).
    pub settle: Duration,
    pub server_pid: Option<u32>,
    pub connect_timeout: Duration,
}

#[derive(Debug, Clone, Serialize)]
pub struct Params {
    pub url: String,
    pub flv_url: Option<String>,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub hls_url: Option<String>,
    pub protocol: Protocol,
    pub publish: bool,
    pub bitrate_bps: u64,
    pub fps: u32,
    pub gop_frames: u32,
    pub audio: bool,
    pub duration_s: f64,
    pub warmup_s: f64,
    pub ramp_s: f64,
    pub settle_s: f64,
}

#[derive(Debug, Clone, Serialize)]
pub struct ServerReport {
    pub pid: u32,
    pub cpu_seconds: f64,
    pub cpu_percent_of_one_core: f64,
    /// Before any player connected (publisher running).
    pub rss_baseline_bytes: u64,
    pub rss_max_bytes: u64,
    pub rss_per_viewer_bytes: Option<f64>,
    /// (max - baseline) / connected viewers.
    pub rss_delta_per_viewer_bytes: Option<f64>,
    pub cpu_seconds_per_gb: Option<f64>,
    pub cpu_seconds_per_viewer: Option<f64>,
}

#[derive(Debug, Clone, Default, Serialize)]
pub struct HostReport {
    pub cpus: Option<u64>,
    pub loadavg_1m_start: Option<f64>,
    pub loadavg_1m_end: Option<f64>,
}

#[derive(Debug, Clone, Serialize)]
pub struct RunReport {
    pub params: Params,
    pub window_s: f64,
    pub players: PlayersReport,
    pub ttff_ms: Quantiles,
    pub latency_ms: Quantiles,
    pub frames: FramesReport,
    /// LL-HLS request figures (`--protocol hls` only).
    #[serde(skip_serializing_if = "Option::is_none")]
    pub hls: Option<HlsReport>,
    pub bytes_received: u64,
    pub throughput_mbps: f64,
    pub publisher: Option<PublisherReport>,
    pub server: Option<ServerReport>,
    /// CPU seconds the bench itself used in the window (it shares the machine).
    pub bench_cpu_seconds: Option<f64>,
    /// 1-minute load average at the start and the end of the window, and online CPUs. A load
    /// well above what the server and the bench explain means other work skewed the figures.
    pub host: HostReport,
    pub error: Option<String>,
}

pub async fn run(config: RunConfig) -> RunReport {
    let shared = Arc::new(Shared::default());
    let server_pid = config.server_pid.map(|pid| pid.to_string());
    let read_server = || server_pid.as_deref().and_then(sample);

    // Publisher first, so the stream exists before players arrive.
    let mut publisher = None;
    let mut error = None;
    let (stop_tx, stop_rx) = watch::channel(false);
    if config.publish {
        let (tx, rx) = oneshot::channel();
        let end = Instant::now()
            + config.settle
            + config.ramp.max(config.warmup)
            + config.duration
            + Duration::from_secs(30);
        let task = spawn_on_own_thread(
            config.url.clone(),
            Synth::new(config.shape),
            Some(end),
            stop_rx,
            shared.clone(),
            tx,
        );
        match rx.await {
            Ok(Ok(())) => {}
            Ok(Err(e)) => error = Some(format!("publisher: {e}")),
            Err(_) => error = Some("publisher task ended".into()),
        }
        publisher = Some(task);
        // Let a few frames through so a keyframe is there for the first players (and, with a
        // longer --settle, the server's per-stream memory fill before the baseline).
        tokio::time::sleep(config.settle).await;
    }
    let baseline = read_server();
    if let (Some(pid), None, None) = (config.server_pid, baseline, &error) {
        error = Some(format!("--server-pid {pid}: /proc/{pid}/stat is not readable"));
    }

    let target = match (config.protocol, &config.flv_url) {
        (Protocol::Rtmp, _) => PlayTarget::Rtmp(config.url.clone()),
        (Protocol::Flv, Some(url)) => PlayTarget::Flv(url.clone()),
        (Protocol::Flv, None) => PlayTarget::Flv(HttpUrl::flv_for(&config.url, 8080)),
        (Protocol::Hls, _) => PlayTarget::Hls(hls_url(&config), config.hls.clone()),
    };
    let start = Instant::now();
    let mut players = JoinSet::new();
    if error.is_none() {
        tracing::info!(
            "starting {} {:?} players over {:?}",
            config.players,
            config.protocol,
            config.ramp
        );
        for i in 0..config.players {
            let at = start + config.ramp.mul_f64(i as f64 / config.players.max(1) as f64);
            let (target, shared, timeout) =
                (target.clone(), shared.clone(), config.connect_timeout);
            players.spawn(async move {
                tokio::time::sleep_until(at).await;
                play(target, shared, timeout).await;
            });
        }
    }

    let window_start = start + config.ramp.max(config.warmup);
    tokio::time::sleep_until(window_start).await;
    let server_before = read_server();
    let bench_before = sample("self");
    let load_start = host_load();
    shared.set_phase(PHASE_MEASURE);
    tracing::info!(
        "measuring for {:?}: {} playing, {} receiving",
        config.duration,
        Shared::get(&shared.connected),
        Shared::get(&shared.receiving)
    );
    let window_end = window_start + config.duration;
    let mut rss_max = server_before.map_or(0, |s| s.rss_bytes);
    while Instant::now() < window_end {
        let next = (Instant::now() + Duration::from_millis(250)).min(window_end);
        tokio::time::sleep_until(next).await;
        if let Some(s) = read_server() {
            rss_max = rss_max.max(s.rss_bytes);
        }
    }
    shared.set_phase(PHASE_DONE);
    let window = window_start.elapsed();
    let server_after = read_server();
    let bench_after = sample("self");
    let host = HostReport {
        cpus: load_start.map(|(_, cpus)| cpus),
        loadavg_1m_start: load_start.map(|(load, _)| load),
        loadavg_1m_end: host_load().map(|(load, _)| load),
    };
    players.abort_all();
    while players.join_next().await.is_some() {}
    let publisher = match publisher {
        Some(task) => {
            let _ = stop_tx.send(true);
            match tokio::time::timeout(Duration::from_secs(5), task).await {
                Ok(Ok(report)) => Some(report),
                _ => Some(PublisherReport {
                    error: Some("publisher did not stop".into()),
                    ..Default::default()
                }),
            }
        }
        None => None,
    };

    let mut report = build_report(
        &config,
        &shared,
        window,
        baseline,
        server_before,
        server_after,
        rss_max,
        bench_before,
        bench_after,
        publisher,
        error,
    );
    report.host = host;
    report
}

fn hls_url(config: &RunConfig) -> HttpUrl {
    config.hls_url.clone().unwrap_or_else(|| HttpUrl::hls_for(&config.url, 8080))
}

#[allow(clippy::too_many_arguments)]
fn build_report(
    config: &RunConfig,
    shared: &Shared,
    window: Duration,
    baseline: Option<ProcSample>,
    server_before: Option<ProcSample>,
    server_after: Option<ProcSample>,
    rss_max: u64,
    bench_before: Option<ProcSample>,
    bench_after: Option<ProcSample>,
    publisher: Option<PublisherReport>,
    error: Option<String>,
) -> RunReport {
    let connected = Shared::get(&shared.connected);
    let failures = shared.failures();
    let disconnects = shared.disconnects();
    let received = Shared::get(&shared.frames);
    let dropped = Shared::get(&shared.dropped_frames);
    let bytes = Shared::get(&shared.bytes);
    let window_s = window.as_secs_f64();
    let per = |value: f64, by: f64| (by > 0.0).then(|| value / by);
    let server = match (config.server_pid, server_before, server_after) {
        (Some(pid), Some(before), Some(after)) => {
            let cpu = (after.cpu_seconds - before.cpu_seconds).max(0.0);
            let rss_max = rss_max.max(after.rss_bytes);
            let rss_baseline = baseline.map_or(before.rss_bytes, |b| b.rss_bytes);
            Some(ServerReport {
                pid,
                cpu_seconds: cpu,
                cpu_percent_of_one_core: per(cpu * 100.0, window_s).unwrap_or(0.0),
                rss_baseline_bytes: rss_baseline,
                rss_max_bytes: rss_max,
                rss_per_viewer_bytes: per(rss_max as f64, connected as f64),
                rss_delta_per_viewer_bytes: per(
                    rss_max.saturating_sub(rss_baseline) as f64,
                    connected as f64,
                ),
                cpu_seconds_per_gb: per(cpu, bytes as f64 / 1e9),
                cpu_seconds_per_viewer: per(cpu, connected as f64),
            })
        }
        _ => None,
    };
    RunReport {
        params: Params {
            url: format!("{}/{}", config.url.tc_url, config.url.stream),
            flv_url: config.flv_url.as_ref().map(|u| format!("http://{}{}", u.host, u.path)),
            hls_url: (config.protocol == Protocol::Hls).then(|| {
                let u = hls_url(config);
                format!("http://{}{}", u.host, u.path)
            }),
            protocol: config.protocol,
            publish: config.publish,
            bitrate_bps: config.shape.bitrate_bps,
            fps: config.shape.fps,
            gop_frames: config.shape.gop_frames,
            audio: config.shape.audio,
            duration_s: config.duration.as_secs_f64(),
            warmup_s: config.warmup.as_secs_f64(),
            ramp_s: config.ramp.as_secs_f64(),
            settle_s: config.settle.as_secs_f64(),
        },
        window_s,
        players: PlayersReport {
            requested: config.players,
            connected,
            receiving: Shared::get(&shared.receiving),
            failed: failures.values().sum(),
            failure_reasons: failures,
            disconnected: disconnects.values().sum(),
            disconnect_reasons: disconnects,
        },
        ttff_ms: shared.ttff_summary(),
        latency_ms: shared.latency_summary(),
        frames: FramesReport {
            received,
            cached: Shared::get(&shared.cached_frames),
            unstamped: Shared::get(&shared.unstamped_frames),
            dropped,
            out_of_order: Shared::get(&shared.out_of_order_frames),
            dropped_ratio: per(dropped as f64, (received + dropped) as f64).unwrap_or(0.0),
        },
        hls: (config.protocol == Protocol::Hls)
            .then(|| shared.hls.report(config.hls.mode, connected, window_s)),
        bytes_received: bytes,
        throughput_mbps: per(bytes as f64 * 8.0 / 1e6, window_s).unwrap_or(0.0),
        publisher,
        server,
        bench_cpu_seconds: match (bench_before, bench_after) {
            (Some(b), Some(a)) => Some(a.cpu_seconds - b.cpu_seconds),
            _ => None,
        },
        host: HostReport::default(),
        error,
    }
}
