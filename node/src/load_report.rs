//! The load report: every [`REPORT_INTERVAL`] a node writes its load to
//! `{prefix}/load/{role}/{id}` under its lease ([`Registry::report_load`]), where the control
//! plane reads it from its watch cache to place viewers and report capacity.
//!
//! Figures: viewers by protocol and live streams (the metrics' gauges), egress and ingress bit/s
//! over the last interval (the metrics' byte counters), CPU and resident memory of the process
//! (`/proc/self/stat`, `/proc/self/statm`), the configured capacity (`max-viewers`,
//! `max-egress-mbps`) and whether the node is draining (its own node record in the cache).
//! Per stream ([`LoadReport::by_stream`], at most [`MAX_REPORT_STREAMS`], the most watched
//! first): viewers other than relay feeds and, where the stream is published, its picture size
//! and the frame and bit rates measured from what arrived ([`Hub::figures`]).
//!
//! The rate arithmetic is the sans-IO [`Rates`] (counter samples and instants in, rates out)
//! and [`stream_loads`]; the task only reads the counters, the hub and `/proc` and writes the
//! report.

use crate::hub::{Hub, StreamFigures};
use crate::metrics::{Metrics, Protocol};
use crate::registry::unix_ms_now;
use crate::settings::ClusterSettings;
use sluice_cluster::types::{LoadCapacity, LoadReport, NodeState, StreamLoad, MAX_REPORT_STREAMS};
use sluice_cluster::Registry;
use sluice_media::stream_name::StreamKey;
use std::collections::BTreeMap;
use std::sync::Arc;
use std::time::Duration;
use tokio::task::JoinHandle;
use tokio::time::Instant;

/// How often a node reports its load (the lease TTL is 5 s: a report outlives at most a couple
/// of missed writes before the key goes with the lease).
pub const REPORT_INTERVAL: Duration = Duration::from_secs(2);

/// Cumulative counters at one instant.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Counters {
    pub bytes_out: u64,
    pub bytes_in: u64,
    /// CPU time the process has used (user + system).
    pub cpu: Duration,
}

/// Rates between two successive counter samples.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub struct RateFigures {
    pub egress_bps: u64,
    pub ingress_bps: u64,
    /// Thousandths of a core.
    pub cpu_millicores: u64,
}

/// Turns cumulative counters into rates over the interval since the previous sample.
#[derive(Debug, Clone, Default)]
pub struct Rates {
    last: Option<(Instant, Counters)>,
}

impl Rates {
    /// Record a sample taken at `now`; the rates since the previous one (zero for the first
    /// sample, or when no time passed). A counter that went backwards counts as zero.
    pub fn sample(&mut self, now: Instant, counters: Counters) -> RateFigures {
        let figures = match self.last {
            Some((then, prev)) if now > then => {
                let secs = now.duration_since(then).as_secs_f64();
                let per_sec = |delta: u64| (delta as f64 / secs) as u64;
                RateFigures {
                    egress_bps: per_sec(counters.bytes_out.saturating_sub(prev.bytes_out))
                        .saturating_mul(8),
                    ingress_bps: per_sec(counters.bytes_in.saturating_sub(prev.bytes_in))
                        .saturating_mul(8),
                    cpu_millicores: (counters.cpu.saturating_sub(prev.cpu).as_secs_f64() * 1000.0
                        / secs) as u64,
                }
            }
            _ => RateFigures::default(),
        };
        self.last = Some((now, counters));
        figures
    }
}

/// User + system CPU ticks from the text of `/proc/self/stat` (fields 14 and 15, counted after
/// the command name, which is in parentheses and may itself contain spaces or parentheses).
pub fn parse_cpu_ticks(stat: &str) -> Option<u64> {
    let after_comm = &stat[stat.rfind(')')? + 1..];
    // After the name: field 3 (state) is the first; utime is field 14, stime field 15.
    let mut fields = after_comm.split_ascii_whitespace().skip(11);
    let utime: u64 = fields.next()?.parse().ok()?;
    let stime: u64 = fields.next()?.parse().ok()?;
    Some(utime.saturating_add(stime))
}

/// Resident pages from the text of `/proc/self/statm` (its second field).
pub fn parse_resident_pages(statm: &str) -> Option<u64> {
    statm.split_ascii_whitespace().nth(1)?.parse().ok()
}

/// CPU time and resident bytes of this process; zeros where `/proc` cannot be read.
fn process_usage() -> (Duration, u64) {
    let ticks = std::fs::read_to_string("/proc/self/stat").ok().and_then(|s| parse_cpu_ticks(&s));
    let per_sec = rustix::param::clock_ticks_per_second().max(1);
    let cpu = ticks.map_or(Duration::ZERO, |t| {
        Duration::from_secs(t / per_sec)
            + Duration::from_nanos((t % per_sec) * 1_000_000_000 / per_sec)
    });
    let pages =
        std::fs::read_to_string("/proc/self/statm").ok().and_then(|s| parse_resident_pages(&s));
    let bytes = pages.unwrap_or(0).saturating_mul(rustix::param::page_size() as u64);
    (cpu, bytes)
}

/// Bytes sent to viewers of every protocol, relays included.
fn bytes_out(metrics: &Metrics) -> u64 {
    [Protocol::Rtmp, Protocol::Flv, Protocol::Hls, Protocol::Relay]
        .into_iter()
        .map(|p| metrics.bytes_out(p).get())
        .fold(0, u64::saturating_add)
}

/// The report's per-stream entries: at most `max` streams, those with the most viewers first
/// (ties by name, so a node over the limit lists the same ones from one report to the next).
pub fn stream_loads(
    mut figures: Vec<StreamFigures>,
    max: usize,
) -> BTreeMap<StreamKey, StreamLoad> {
    figures.sort_by(|a, b| b.viewers.cmp(&a.viewers).then_with(|| a.key.cmp(&b.key)));
    figures.truncate(max);
    // `as` from f64 saturates (and NaN becomes 0), which is what a figure out of range wants.
    figures
        .into_iter()
        .map(|f| {
            let load = StreamLoad {
                viewers: u64::try_from(f.viewers).unwrap_or(u64::MAX),
                width: f.width,
                height: f.height,
                fps_milli: (f.fps * 1000.0).round() as u32,
                ingress_bps: f.bitrate_bps.round() as u64,
            };
            (f.key, load)
        })
        .collect()
}

/// The report from the current figures.
fn build_report(
    metrics: &Metrics,
    capacity: LoadCapacity,
    draining: bool,
    rates: RateFigures,
    memory_bytes: u64,
    by_stream: BTreeMap<StreamKey, StreamLoad>,
    playouts: BTreeMap<String, sluice_cluster::schedule::PlayoutState>,
) -> LoadReport {
    let viewers = [Protocol::Rtmp, Protocol::Flv, Protocol::Hls, Protocol::Relay]
        .into_iter()
        .map(|p| (p.as_str().to_string(), u64::try_from(metrics.viewers(p).get()).unwrap_or(0)))
        .collect();
    LoadReport {
        viewers,
        streams: u64::try_from(metrics.streams.get()).unwrap_or(0),
        egress_bps: rates.egress_bps,
        ingress_bps: rates.ingress_bps,
        cpu_millicores: rates.cpu_millicores,
        memory_bytes,
        transcodes: u64::try_from(metrics.transcodes.get()).unwrap_or(0),
        capacity,
        draining,
        at_ms: unix_ms_now(),
        by_stream,
        playouts,
    }
}

/// Start the reporting task: one report at once, then one every [`REPORT_INTERVAL`].
pub fn spawn(
    registry: Arc<dyn Registry>,
    metrics: Metrics,
    hub: Hub,
    settings: &ClusterSettings,
    max_transcodes: usize,
    playout: Option<Arc<crate::playout::Playout>>,
) -> JoinHandle<()> {
    let capacity = LoadCapacity {
        max_viewers: settings.max_viewers,
        max_egress_bps: settings.max_egress_mbps.saturating_mul(1_000_000),
        max_transcodes: u64::try_from(max_transcodes).unwrap_or(u64::MAX),
    };
    tokio::spawn(async move {
        let mut rates = Rates::default();
        // Log the first failure of a run of failures, and the recovery: not one line per tick.
        let mut failing = false;
        let mut tick = tokio::time::interval(REPORT_INTERVAL);
        tick.set_missed_tick_behavior(tokio::time::MissedTickBehavior::Delay);
        loop {
            tick.tick().await;
            let (cpu, memory_bytes) = process_usage();
            let counters =
                Counters { bytes_out: bytes_out(&metrics), bytes_in: metrics.bytes_in.get(), cpu };
            let now = Instant::now();
            let figures = rates.sample(now, counters);
            let by_stream = stream_loads(hub.figures(now), MAX_REPORT_STREAMS);
            let playouts = playout
                .as_ref()
                .map(|p| p.states(sluice_cluster::types::MAX_REPORT_PLAYOUTS))
                .unwrap_or_default();
            let draining = {
                let (id, role) = registry.node();
                registry
                    .snapshot()
                    .borrow()
                    .node(role, id)
                    .is_some_and(|n| n.info.state == NodeState::Draining)
            };
            let report = build_report(
                &metrics,
                capacity,
                draining,
                figures,
                memory_bytes,
                by_stream,
                playouts,
            );
            match registry.report_load(report).await {
                Err(e) if !failing => {
                    failing = true;
                    tracing::warn!(error = %e, "could not write the load report");
                }
                Ok(()) if failing => {
                    failing = false;
                    tracing::info!("load report written again");
                }
                _ => {}
            }
        }
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn rates_are_per_second_over_the_interval() {
        let t0 = Instant::now();
        let mut rates = Rates::default();
        let c = |out, inn, cpu_ms| Counters {
            bytes_out: out,
            bytes_in: inn,
            cpu: Duration::from_millis(cpu_ms),
        };
        assert_eq!(rates.sample(t0, c(1_000, 0, 0)), RateFigures::default());
        let r = rates.sample(t0 + Duration::from_secs(2), c(1_001_000, 250_000, 3_000));
        assert_eq!(
            r,
            RateFigures { egress_bps: 4_000_000, ingress_bps: 1_000_000, cpu_millicores: 1_500 }
        );
        // Same instant: no division by zero; counters going backwards: zero.
        let t2 = t0 + Duration::from_secs(2);
        assert_eq!(rates.sample(t2, c(0, 0, 0)), RateFigures::default());
        let r = rates.sample(t2 + Duration::from_secs(1), c(0, 0, 0));
        assert_eq!(r, RateFigures::default());
    }

    #[test]
    fn proc_parsing() {
        let stat = "1234 (sluice (x) y) S 1 2 3 4 5 6 7 8 9 10 250 50 0 0 20 0 8 0";
        assert_eq!(parse_cpu_ticks(stat), Some(300));
        assert_eq!(parse_cpu_ticks("garbage"), None);
        assert_eq!(parse_cpu_ticks("1 (x) S 1 2"), None);
        assert_eq!(parse_resident_pages("1000 250 30 1 0 90 0\n"), Some(250));
        assert_eq!(parse_resident_pages("1000"), None);
        // The real files of this process parse.
        let (_, memory) = process_usage();
        assert!(memory > 0);
        let stat = std::fs::read_to_string("/proc/self/stat").unwrap();
        assert!(parse_cpu_ticks(&stat).is_some());
    }

    #[test]
    fn report_carries_gauges_and_capacity() {
        let metrics = Metrics::new();
        metrics.viewers(Protocol::Flv).set(3);
        metrics.viewers(Protocol::Relay).set(1);
        metrics.streams.set(2);
        let capacity =
            LoadCapacity { max_viewers: 100, max_egress_bps: 1_000_000, max_transcodes: 0 };
        let rates = RateFigures { egress_bps: 8, ingress_bps: 16, cpu_millicores: 5 };
        let r = build_report(&metrics, capacity, true, rates, 42, BTreeMap::new(), BTreeMap::new());
        assert_eq!(r.viewers.get("flv"), Some(&3));
        assert_eq!(r.total_viewers(), 3);
        assert_eq!((r.streams, r.egress_bps, r.ingress_bps, r.memory_bytes), (2, 8, 16, 42));
        assert_eq!(r.capacity, capacity);
        assert!(r.draining && r.at_ms > 0);
    }

    fn figures(name: &str, viewers: usize) -> StreamFigures {
        StreamFigures {
            key: StreamKey::parse("live", name).unwrap().0,
            viewers,
            width: 1280,
            height: 720,
            fps: 29.97,
            bitrate_bps: 2_500_000.4,
        }
    }

    #[test]
    fn stream_loads_convert_the_figures() {
        let loads = stream_loads(vec![figures("x", 2)], MAX_REPORT_STREAMS);
        let x = StreamKey::parse("live", "x").unwrap().0;
        assert_eq!(
            loads.get(&x),
            Some(&StreamLoad {
                viewers: 2,
                width: 1280,
                height: 720,
                fps_milli: 29_970,
                ingress_bps: 2_500_000
            })
        );
        // Out-of-range and meaningless rates do not wrap.
        let wild = StreamFigures { fps: f64::INFINITY, bitrate_bps: f64::NAN, ..figures("w", 0) };
        let loads = stream_loads(vec![wild], 1);
        let w = loads.values().next().unwrap();
        assert_eq!((w.fps_milli, w.ingress_bps), (u32::MAX, 0));
    }

    #[test]
    fn a_report_lists_at_most_the_limit_most_watched_first() {
        // More streams than a report lists: the most watched are kept, ties by name.
        let many: Vec<StreamFigures> =
            (0..MAX_REPORT_STREAMS + 50).map(|i| figures(&format!("s{i:04}"), i % 7)).collect();
        let loads = stream_loads(many, MAX_REPORT_STREAMS);
        assert_eq!(loads.len(), MAX_REPORT_STREAMS);
        let least = loads.values().map(|l| l.viewers).min().unwrap();
        assert!(least > 0, "the 50 dropped include every unwatched stream");
        let again = stream_loads(
            (0..MAX_REPORT_STREAMS + 50)
                .rev()
                .map(|i| figures(&format!("s{i:04}"), i % 7))
                .collect(),
            MAX_REPORT_STREAMS,
        );
        assert_eq!(loads, again, "the choice does not depend on the hub's order");

        // The report, with every stream in it, stays within what readers accept.
        let metrics = Metrics::new();
        let r = build_report(
            &metrics,
            LoadCapacity::default(),
            false,
            RateFigures::default(),
            0,
            loads,
            // As many playouts as a report holds, with the longest ids.
            (0..sluice_cluster::types::MAX_REPORT_PLAYOUTS)
                .map(|i| (format!("{i:0>32}"), sluice_cluster::schedule::PlayoutState::Displaced))
                .collect(),
        );
        assert!(r.within_bounds());
        let json = serde_json::to_vec(&r).unwrap();
        assert!(json.len() <= sluice_cluster::types::MAX_LOAD_VALUE_LEN, "{}", json.len());
    }
}
