//! The chaos harness: a real local cluster (etcd, three origins, two edges) under steady load
//! (streams published by replay encoders, viewers over RTMP, HTTP-FLV and LL-HLS on the edges)
//! while faults chosen by a seeded random generator hit it: origins SIGKILLed and restarted or
//! frozen (SIGSTOP) for a while, edges SIGKILLed and restarted, etcd frozen, and links cut
//! (origin-etcd past the lease, edge-origin, origin-origin). Every node and etcd run in network
//! namespaces of their own ([`crate::netns`]), so a cut drops packets the way a failed link
//! does. Afterwards it reports what viewers saw: the gaps each fault cost them, reconnects,
//! HLS numbers that went back, and streams left unplayable.
//!
//! Encoders behave as real ones: one whose origin dies reconnects to another origin under the
//! same name. Viewers whose edge dies reconnect to the other edge (what a player re-assigned
//! by the control plane does) and count a reconnect; no other fault should make them reconnect.
//!
//! Used by the `sluice-chaos` binary (any length, any seed) and the bounded e2e test.

use std::collections::BTreeMap;
use std::fmt::Write as _;
use std::sync::atomic::Ordering;
use std::thread;
use std::time::{Duration, Instant};

use rand::rngs::StdRng;
use rand::{Rng, SeedableRng};

mod watch;

use crate::cluster::TestCluster;
use crate::netns::{Host, Net};
use crate::replay::Replay;
use crate::viewer::Watcher;
use crate::{h264_aac, secs, Origin};
use watch::{FlvWatch, HlsWatch};

/// What to run.
#[derive(Debug, Clone)]
pub struct ChaosConfig {
    pub seed: u64,
    /// How long faults are injected (the load runs a little longer on both sides).
    pub duration: Duration,
    pub streams: usize,
    /// Viewers in all, split 3:1:1 between RTMP, HTTP-FLV and LL-HLS playlist readers.
    pub viewers: usize,
    /// Mean time between faults.
    pub fault_every: Duration,
}

/// The faults the harness injects.
#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord)]
pub enum FaultKind {
    KillOrigin,
    FreezeOrigin,
    KillEdge,
    FreezeEtcd,
    CutOriginEtcd,
    CutEdgeOrigin,
    CutOrigins,
}

impl FaultKind {
    pub const ALL: [FaultKind; 7] = [
        FaultKind::KillOrigin,
        FaultKind::FreezeOrigin,
        FaultKind::KillEdge,
        FaultKind::FreezeEtcd,
        FaultKind::CutOriginEtcd,
        FaultKind::CutEdgeOrigin,
        FaultKind::CutOrigins,
    ];

    fn name(self) -> &'static str {
        match self {
            FaultKind::KillOrigin => "origin SIGKILL + restart",
            FaultKind::FreezeOrigin => "origin SIGSTOP 4 s",
            FaultKind::KillEdge => "edge SIGKILL + restart",
            FaultKind::FreezeEtcd => "etcd SIGSTOP 4 s",
            FaultKind::CutOriginEtcd => "origin-etcd link cut 5 s",
            FaultKind::CutEdgeOrigin => "edge-origin link cut 4 s",
            FaultKind::CutOrigins => "origin-origin link cut 4 s",
        }
    }
}

/// One injected fault.
#[derive(Debug, Clone)]
pub struct Fault {
    pub kind: FaultKind,
    pub target: String,
    pub at: Instant,
}

/// What viewers saw.
#[derive(Debug, Clone, Default)]
pub struct ChaosReport {
    pub faults: Vec<Fault>,
    /// Per fault kind: the longest gap (without video) each viewer had within 15 s of each
    /// such fault (and before the next one), for viewers that stayed connected.
    pub gaps: BTreeMap<FaultKind, Vec<Duration>>,
    /// Viewer reconnects, by the fault that caused them (the last one before).
    pub reconnects: BTreeMap<FaultKind, u64>,
    pub publisher_reconnects: u64,
    pub hls_regressions: u64,
    pub streams_unplayable: Vec<String>,
    pub viewers: usize,
}

impl ChaosReport {
    /// The report as Markdown.
    pub fn render(&self, config: &ChaosConfig) -> String {
        let mut out = String::new();
        let _ = writeln!(
            out,
            "seed {}, {:?} of faults, {} streams, {} viewers (RTMP, HTTP-FLV, LL-HLS 3:1:1)\n",
            config.seed, config.duration, config.streams, self.viewers
        );
        let _ =
            writeln!(out, "| fault | count | viewer gap mean | p99 | max | viewer reconnects |");
        let _ = writeln!(out, "|---|---|---|---|---|---|");
        for kind in FaultKind::ALL {
            let count = self.faults.iter().filter(|f| f.kind == kind).count();
            let mut gaps = self.gaps.get(&kind).cloned().unwrap_or_default();
            gaps.sort();
            let ms =
                |d: Option<&Duration>| d.map_or("-".into(), |d| format!("{} ms", d.as_millis()));
            let mean =
                (!gaps.is_empty()).then(|| gaps.iter().sum::<Duration>() / gaps.len() as u32);
            let p99 = gaps.get((gaps.len().saturating_sub(1) * 99) / 100);
            let _ = writeln!(
                out,
                "| {} | {count} | {} | {} | {} | {} |",
                kind.name(),
                ms(mean.as_ref()),
                ms(p99),
                ms(gaps.last()),
                self.reconnects.get(&kind).copied().unwrap_or(0)
            );
        }
        let _ = writeln!(
            out,
            "\nencoder reconnects: {}; HLS media sequence or part regressions: {}; streams unplayable at the end: {:?}",
            self.publisher_reconnects, self.hls_regressions, self.streams_unplayable
        );
        out
    }
}

/// A viewer of one stream on one edge.
enum View {
    Rtmp(Watcher),
    Flv(FlvWatch),
    Hls(HlsWatch),
    /// Between a viewer that ended and the next (its edge is down).
    Dead,
}

/// A viewer slot: which stream, which edge, the viewer, and the video arrivals of the viewers
/// it had before (a reconnect starts a new one).
struct Slot {
    stream: String,
    edge: usize,
    /// RTMP (0-2), HTTP-FLV (3) or LL-HLS (4).
    kind: usize,
    view: View,
    arrivals: Vec<Instant>,
    reconnects: Vec<Instant>,
}

impl Slot {
    fn start(stream: &str, edge: usize, kind: usize, nodes: &Nodes) -> Slot {
        let node = &nodes.edges[edge];
        let view = match kind % 5 {
            0..=2 => View::Rtmp(Watcher::start(node.rtmp, "live", stream)),
            3 => View::Flv(FlvWatch::start(node.http, stream)),
            _ => View::Hls(HlsWatch::start(node.http, stream)),
        };
        Slot {
            stream: stream.to_string(),
            edge,
            kind,
            view,
            arrivals: Vec::new(),
            reconnects: Vec::new(),
        }
    }

    fn is_alive(&self) -> bool {
        match &self.view {
            View::Rtmp(w) => w.is_playing(),
            View::Flv(f) => !f.done.load(Ordering::Relaxed),
            View::Hls(_) => true,
            View::Dead => false,
        }
    }

    /// Move the video arrivals of the current viewer into `arrivals`.
    fn collect(&mut self) {
        match &self.view {
            View::Rtmp(w) => {
                let record = w.snapshot();
                let started = record.started.unwrap_or_else(Instant::now);
                self.arrivals.extend(
                    record.messages.iter().filter(|m| m.is_frame()).map(|m| started + m.arrival),
                );
            }
            View::Flv(f) => self.arrivals.extend(crate::lock(&f.arrivals).iter().copied()),
            View::Hls(_) | View::Dead => {}
        }
    }
}

/// What a fault leaves to undo, at its time.
enum Undo {
    RestartOrigin(usize),
    RestartEdge(usize),
    Continue(u32),
    Thaw(crate::etcd::Paused),
    Restore(Host, Host),
}

/// The cluster's processes, restartable, each in its namespace.
struct Nodes {
    net: Net,
    etcd_host: Host,
    cluster: TestCluster,
    origin_ids: Vec<String>,
    origin_hosts: Vec<Host>,
    origins: Vec<Option<Origin>>,
    edge_ids: Vec<String>,
    edge_hosts: Vec<Host>,
    edges: Vec<Origin>,
}

impl Nodes {
    fn start_origin(&self, i: usize) -> Origin {
        self.cluster.origin_on(&self.origin_hosts[i], &self.origin_ids[i], &[])
    }

    fn start_edge(&self, i: usize) -> Origin {
        self.cluster.edge_on(&self.edge_hosts[i], &self.edge_ids[i], &[])
    }

    fn live_origin(&self, rng: &mut StdRng) -> usize {
        loop {
            let i = rng.gen_range(0..self.origins.len());
            if self.origins[i].is_some() {
                return i;
            }
        }
    }
}

/// Run the harness: start the cluster and the load, inject faults for `config.duration`,
/// let it settle, and report.
pub fn run(config: &ChaosConfig) -> ChaosReport {
    let mut rng = StdRng::seed_from_u64(config.seed);
    let origin_ids: Vec<String> = (1..=3).map(|i| format!("chaos-o{i}")).collect();
    let edge_ids: Vec<String> = (1..=2).map(|i| format!("chaos-e{i}")).collect();
    let all: Vec<&str> = origin_ids.iter().chain(&edge_ids).map(String::as_str).collect();
    let net = Net::new();
    let etcd_host = net.host("etcd");
    let origin_hosts = origin_ids.iter().map(|id| net.host(id)).collect();
    let edge_hosts = edge_ids.iter().map(|id| net.host(id)).collect();
    let cluster = TestCluster::with_etcd_on("chaos", &all, &etcd_host);
    let mut nodes = Nodes {
        net,
        etcd_host,
        cluster,
        origin_ids,
        origin_hosts,
        origins: Vec::new(),
        edge_ids,
        edge_hosts,
        edges: Vec::new(),
    };
    nodes.origins = (0..3).map(|i| Some(nodes.start_origin(i))).collect();
    nodes.edges = (0..2).map(|i| nodes.start_edge(i)).collect();
    let fixture = h264_aac().path.clone();

    // Encoders, spread over the origins.
    let names: Vec<String> = (0..config.streams).map(|i| format!("chaos{i}")).collect();
    let mut encoders: Vec<(usize, Replay)> = names
        .iter()
        .enumerate()
        .map(|(i, n)| {
            let o = i % nodes.origins.len();
            (
                o,
                Replay::start(
                    nodes.origins[o].as_ref().expect("started").rtmp,
                    "live",
                    n,
                    &fixture,
                ),
            )
        })
        .collect();
    for n in &names {
        let listed = crate::process::wait_for(secs(30), || nodes.edges[0].stream_info("live", n));
        assert!(listed.is_some(), "stream {n} never reached the edges");
    }
    let mut slots: Vec<Slot> = (0..config.viewers)
        .map(|i| Slot::start(&names[i % names.len()], i % 2, i / names.len(), &nodes))
        .collect();
    thread::sleep(secs(5));

    let mut report = ChaosReport { viewers: config.viewers, ..ChaosReport::default() };
    let end = Instant::now() + config.duration;
    let mut next_fault = Instant::now() + config.fault_every / 2;
    let mut undo: Vec<(Instant, Undo)> = Vec::new();
    while Instant::now() < end || !undo.is_empty() {
        let now = Instant::now();
        for (_, u) in undo.extract_if(.., |(at, _)| *at <= now) {
            match u {
                Undo::RestartOrigin(i) => nodes.origins[i] = Some(nodes.start_origin(i)),
                Undo::RestartEdge(i) => nodes.edges[i] = nodes.start_edge(i),
                Undo::Continue(pid) => sluice_launch::kill(pid, sluice_launch::Signal::CONT),
                Undo::Thaw(paused) => drop(paused),
                Undo::Restore(a, b) => nodes.net.restore(&a, &b),
            }
        }
        if now >= next_fault && now < end && undo.is_empty() {
            let (fault, u) = inject(&mut nodes, &mut rng);
            report.faults.push(fault);
            undo.push(u);
            let jitter = rng.gen_range(0.5..1.5);
            next_fault = Instant::now() + config.fault_every.mul_f64(jitter);
        }
        // Encoders whose origin died reconnect to a live origin.
        for (o, encoder) in &mut encoders {
            if !encoder.is_running() {
                let to = nodes.live_origin(&mut rng);
                let addr = nodes.origins[to].as_ref().expect("live").rtmp;
                if let Ok(replay) = std::panic::catch_unwind(|| {
                    Replay::start(addr, "live", &encoder.stream, &fixture)
                }) {
                    *encoder = replay;
                    *o = to;
                    report.publisher_reconnects += 1;
                }
            }
        }
        // Viewers whose edge closed them reconnect to the other edge.
        for slot in &mut slots {
            if slot.is_alive() {
                continue;
            }
            if !matches!(slot.view, View::Dead) {
                slot.collect();
                slot.reconnects.push(Instant::now());
                slot.edge = 1 - slot.edge;
                slot.view = View::Dead;
            }
            let (stream, edge, kind) = (slot.stream.clone(), slot.edge, slot.kind);
            let started = std::panic::catch_unwind(std::panic::AssertUnwindSafe(|| {
                Slot::start(&stream, edge, kind, &nodes)
            }));
            if let Ok(new) = started {
                slot.view = new.view;
            }
        }
        thread::sleep(Duration::from_millis(250));
    }
    thread::sleep(secs(15));

    // Streams unplayable at the end: a new viewer on each edge must get video.
    for n in &names {
        for edge in &nodes.edges {
            let w = Watcher::start(edge.rtmp, "live", n);
            if w.wait_video(15, secs(20)) < 15 {
                report.streams_unplayable.push(format!("{n} on {}", edge.http));
            }
        }
    }
    let faults = report.faults.clone();
    for slot in &mut slots {
        slot.collect();
        attribute(&faults, slot, &mut report);
        if let View::Hls(h) = &slot.view {
            h.stop.store(true, Ordering::Relaxed);
            report.hls_regressions += h.regressions.load(Ordering::Relaxed);
        }
    }
    drop(encoders);
    report
}

/// Inject one fault chosen by `rng`; what undoes it (a restart, a thaw) and when.
fn inject(nodes: &mut Nodes, rng: &mut StdRng) -> (Fault, (Instant, Undo)) {
    let kind = FaultKind::ALL[rng.gen_range(0..FaultKind::ALL.len())];
    let at = Instant::now();
    let (target, undo) = match kind {
        FaultKind::KillOrigin => {
            let i = nodes.live_origin(rng);
            let origin = nodes.origins[i].take().expect("live");
            sluice_launch::kill(origin.pid(), sluice_launch::Signal::KILL);
            drop(origin);
            // Back after 5 s, as a restarted pod would be.
            (nodes.origin_ids[i].clone(), (at + secs(5), Undo::RestartOrigin(i)))
        }
        FaultKind::FreezeOrigin => {
            let i = nodes.live_origin(rng);
            let pid = nodes.origins[i].as_ref().expect("live").pid();
            sluice_launch::kill(pid, sluice_launch::Signal::STOP);
            (nodes.origin_ids[i].clone(), (at + secs(4), Undo::Continue(pid)))
        }
        FaultKind::KillEdge => {
            let i = rng.gen_range(0..nodes.edges.len());
            sluice_launch::kill(nodes.edges[i].pid(), sluice_launch::Signal::KILL);
            (nodes.edge_ids[i].clone(), (at + secs(2), Undo::RestartEdge(i)))
        }
        FaultKind::FreezeEtcd => {
            ("etcd".to_string(), (at + secs(4), Undo::Thaw(nodes.cluster.etcd.pause())))
        }
        // Past the 2 s lease: the origin fences itself, the ring drops it, it comes back.
        FaultKind::CutOriginEtcd => {
            let o = nodes.origin_hosts[nodes.live_origin(rng)].clone();
            cut(nodes, o, nodes.etcd_host.clone(), at + secs(5))
        }
        FaultKind::CutEdgeOrigin => {
            let e = nodes.edge_hosts[rng.gen_range(0..nodes.edges.len())].clone();
            let o = nodes.origin_hosts[nodes.live_origin(rng)].clone();
            cut(nodes, e, o, at + secs(4))
        }
        FaultKind::CutOrigins => {
            let a = nodes.live_origin(rng);
            let b = loop {
                let b = nodes.live_origin(rng);
                if b != a {
                    break b;
                }
            };
            let (a, b) = (nodes.origin_hosts[a].clone(), nodes.origin_hosts[b].clone());
            cut(nodes, a, b, at + secs(4))
        }
    };
    (Fault { kind, target, at }, undo)
}

/// Cut the link between `a` and `b` until `until`.
fn cut(nodes: &Nodes, a: Host, b: Host, until: Instant) -> (String, (Instant, Undo)) {
    nodes.net.cut(&a, &b);
    (format!("{}-{}", a.name, b.name), (until, Undo::Restore(a, b)))
}

/// The viewer's longest gap within 15 s after each fault (and its reconnects), by fault kind.
fn attribute(faults: &[Fault], slot: &Slot, report: &mut ChaosReport) {
    let cause = |t: Instant| faults.iter().rev().find(|f| f.at <= t).map(|f| f.kind);
    for r in &slot.reconnects {
        if let Some(kind) = cause(*r) {
            *report.reconnects.entry(kind).or_default() += 1;
        }
    }
    if slot.arrivals.is_empty() {
        return;
    }
    let mut arrivals = slot.arrivals.clone();
    arrivals.sort();
    for (i, fault) in faults.iter().enumerate() {
        // Up to 15 s after the fault, and not past the next one (its gaps are its own). A
        // viewer that reconnected because of this fault is counted there, not here.
        let until =
            faults.get(i + 1).map_or(fault.at + secs(15), |next| next.at.min(fault.at + secs(15)));
        let window = fault.at..until;
        if slot.reconnects.iter().any(|r| window.contains(r)) {
            continue;
        }
        let worst = arrivals
            .windows(2)
            .filter(|w| window.contains(&w[1]) || window.contains(&w[0]))
            .map(|w| w[1] - w[0])
            .max();
        if let Some(gap) = worst {
            report.gaps.entry(fault.kind).or_default().push(gap);
        }
    }
}
