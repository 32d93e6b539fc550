//! The table form of each view (pure: the views and the current time in, text out).

use crate::table::{fields, Table};
use crate::units::{bitrate, bytes, cores, fps, length, of, percent, resolution, since, utc};
use crate::views::{
    AssignView, CapacityView, DeletedView, DrainView, EventView, IngestView, KickView, LoadView,
    NodeList, NodeView, RecordingList, RecordingView, StreamList, StreamView, TotalsView,
};

/// A node's state with its drain order: `ready`, `draining`, `ready (drain ordered)`.
fn state(n: &NodeView) -> String {
    if n.drain_ordered && n.state != "draining" {
        format!("{} (drain ordered)", n.state)
    } else {
        n.state.clone()
    }
}

fn viewers(load: Option<&LoadView>) -> String {
    load.map_or("-".into(), |l| of(l.audience().to_string(), l.max_viewers, |m| m.to_string()))
}

/// Egress with its share of the configured maximum: `12.3 Mbit/s (1%)`.
fn egress(load: Option<&LoadView>) -> String {
    load.map_or("-".into(), |l| egress_of(l.egress_bps, l.max_egress_bps))
}

fn egress_of(used: u64, max: u64) -> String {
    if max == 0 {
        bitrate(used)
    } else {
        format!("{} ({})", bitrate(used), percent(used, max))
    }
}

fn or_dash(s: &str) -> String {
    if s.is_empty() {
        "-".into()
    } else {
        s.to_string()
    }
}

pub fn node_list(list: &NodeList, now_ms: u64) -> String {
    let mut t = Table::new(&[
        "ID", "ROLE", "STATE", "VERSION", "VIEWERS", "STREAMS", "EGRESS", "INGRESS", "CPU", "MEM",
        "UPTIME", "REPORTED",
    ]);
    for n in &list.nodes {
        let l = n.load.as_ref();
        t.row(vec![
            n.id.clone(),
            n.role.clone(),
            state(n),
            or_dash(&n.version),
            viewers(l),
            l.map_or("-".into(), |l| l.streams.to_string()),
            egress(l),
            l.map_or("-".into(), |l| bitrate(l.ingress_bps)),
            l.map_or("-".into(), |l| cores(l.cpu_millicores)),
            l.map_or("-".into(), |l| bytes(l.memory_bytes)),
            since(n.started_at_ms, now_ms),
            l.map_or("never".into(), |l| format!("{} ago", since(l.reported_at_ms, now_ms))),
        ]);
    }
    t.render()
}

pub fn node(n: &NodeView, now_ms: u64) -> String {
    let l = n.load.as_ref();
    let mut pairs = vec![
        ("id", n.id.clone()),
        ("role", n.role.clone()),
        ("state", state(n)),
        ("version", or_dash(&n.version)),
        ("uptime", since(n.started_at_ms, now_ms)),
    ];
    for (name, addr) in &n.addresses {
        pairs.push(("address", format!("{name} {addr}")));
    }
    let mut out = fields(&pairs);
    let Some(l) = l else {
        out.push_str("load:    no report yet\n");
        return out;
    };
    let by_protocol: Vec<String> = l.viewers.iter().map(|(p, v)| format!("{p} {v}")).collect();
    out.push_str("load:\n");
    let load = fields(&[
        ("viewers", viewers(Some(l))),
        ("by protocol", if by_protocol.is_empty() { "-".into() } else { by_protocol.join(", ") }),
        ("streams", l.streams.to_string()),
        ("egress", egress(Some(l))),
        ("ingress", bitrate(l.ingress_bps)),
        ("cpu", format!("{} cores", cores(l.cpu_millicores))),
        ("memory", bytes(l.memory_bytes)),
        ("draining", l.draining.to_string()),
        ("reported", format!("{} ago", since(l.reported_at_ms, now_ms))),
    ]);
    for line in load.lines() {
        out.push_str(&format!("  {line}\n"));
    }
    out
}

fn codecs(s: &StreamView) -> String {
    if s.codecs.is_empty() {
        "-".into()
    } else {
        s.codecs.join(",")
    }
}

pub fn stream_list(list: &StreamList, now_ms: u64) -> String {
    let mut t = Table::new(&[
        "STREAM",
        "ORIGIN",
        "HOME",
        "CODECS",
        "RESOLUTION",
        "FPS",
        "BITRATE",
        "VIEWERS",
        "UPTIME",
    ]);
    for s in &list.streams {
        t.row(vec![
            s.key(),
            s.origin.clone(),
            or_dash(&s.home),
            codecs(s),
            resolution(s.width, s.height),
            fps(s.fps_milli),
            bitrate(s.ingress_bps),
            s.viewers.values().sum::<u64>().to_string(),
            since(s.started_at_ms, now_ms),
        ]);
    }
    t.render()
}

pub fn stream(s: &StreamView, now_ms: u64) -> String {
    let mut out = fields(&[
        ("stream", s.key()),
        ("origin", s.origin.clone()),
        ("home", or_dash(&s.home)),
        ("codecs", codecs(s)),
        ("resolution", resolution(s.width, s.height)),
        ("fps", fps(s.fps_milli)),
        ("bitrate", bitrate(s.ingress_bps)),
        ("uptime", since(s.started_at_ms, now_ms)),
        ("viewers", s.viewers.values().sum::<u64>().to_string()),
    ]);
    if !s.viewers.is_empty() {
        let mut t = Table::new(&["NODE", "VIEWERS"]);
        for (node, n) in &s.viewers {
            t.row(vec![node.clone(), n.to_string()]);
        }
        out.push('\n');
        out.push_str(&t.render());
    }
    out
}

fn totals_row(t: &mut Table, name: &str, x: &TotalsView) {
    t.row(vec![
        name.to_string(),
        of(x.viewers.to_string(), x.max_viewers, |m| m.to_string()),
        x.viewer_headroom.to_string(),
        egress_of(x.egress_bps, x.max_egress_bps),
        cores(x.cpu_millicores),
    ]);
}

pub fn capacity(c: &CapacityView) -> String {
    let mut nodes = Table::new(&["NODE", "ROLE", "STATE", "VIEWERS", "HEADROOM", "EGRESS", "CPU"]);
    for n in &c.nodes {
        let l = n.load.as_ref();
        nodes.row(vec![
            n.id.clone(),
            n.role.clone(),
            state(n),
            viewers(l),
            l.map_or("-".into(), |l| {
                if l.max_viewers == 0 {
                    "-".into()
                } else {
                    l.max_viewers.saturating_sub(l.audience()).to_string()
                }
            }),
            egress(l),
            l.map_or("-".into(), |l| cores(l.cpu_millicores)),
        ]);
    }
    let mut totals = Table::new(&["TOTAL", "VIEWERS", "HEADROOM", "EGRESS", "CPU"]);
    totals_row(&mut totals, "edges", &c.edges);
    totals_row(&mut totals, "origins", &c.origins);
    let recommended = c.recommended_edges.map_or("- (no edge reported a capacity)".into(), |r| {
        format!("{r} (at {:.0}% utilisation)", c.target_utilisation * 100.0)
    });
    let o = &c.origins;
    let transcoding = if o.max_transcodes == 0 {
        "off".to_string()
    } else {
        format!("{}/{} streams (origins)", o.transcodes, o.max_transcodes)
    };
    format!(
        "{}\n{}\n{}",
        nodes.render(),
        totals.render(),
        fields(&[("recommended edges", recommended), ("transcoding", transcoding)])
    )
}

pub fn assign(a: &AssignView) -> String {
    format!("{}\n", a.url)
}

pub fn ingest(i: &IngestView) -> String {
    format!("{}\n", i.url)
}

pub fn drain(d: &DrainView, id: &str, now_ms: u64) -> String {
    match d.deadline_ms {
        Some(deadline) if deadline > 0 => format!(
            "node {id} is draining; what is left closes in {}\n",
            crate::units::duration_ms(deadline.saturating_sub(now_ms))
        ),
        Some(_) => format!("node {id} is draining\n"),
        None => format!("node {id} takes new work again\n"),
    }
}

pub fn kick(k: &KickView) -> String {
    format!("publisher of {} closed on {}\n", k.stream, k.origin_id)
}

fn recording_state(r: &RecordingView) -> &'static str {
    if r.finished {
        "finished"
    } else {
        "recording"
    }
}

pub fn recording_list(list: &RecordingList) -> String {
    let mut t = Table::new(&["ORIGIN", "STREAM", "ID", "STARTED (UTC)", "LENGTH", "SIZE", "STATE"]);
    for r in &list.recordings {
        t.row(vec![
            r.origin_id.clone(),
            format!("{}/{}", r.app, r.stream),
            r.id.clone(),
            utc(r.started_at_ms),
            length(r.duration_s),
            bytes(r.bytes),
            recording_state(r).to_string(),
        ]);
    }
    let mut out = t.render();
    if list.truncated {
        out.push_str("\nmore recordings than --limit: only the newest are shown\n");
    }
    if !list.unreachable_origins.is_empty() {
        out.push_str(&format!(
            "\nnot listed: what {} {} (no answer; the control plane's log says why)\n",
            list.unreachable_origins.join(", "),
            if list.unreachable_origins.len() == 1 { "holds" } else { "hold" },
        ));
    }
    out
}

pub fn recording(r: &RecordingView) -> String {
    fields(&[
        ("recording", r.key()),
        ("origin", r.origin_id.clone()),
        ("started", format!("{} UTC", utc(r.started_at_ms))),
        ("length", format!("{} ({:.1} s)", length(r.duration_s), r.duration_s)),
        ("segments", r.segments.to_string()),
        ("periods", r.periods.to_string()),
        ("size", bytes(r.bytes)),
        ("state", recording_state(r).to_string()),
        ("hls", or_dash(&r.hls_url)),
        ("mp4", if r.mp4_url.is_empty() { "- (once finished)".into() } else { r.mp4_url.clone() }),
    ])
}

/// One line per deleted copy, for `recordings rm`.
pub fn deleted(d: &DeletedView) -> String {
    d.deleted
        .iter()
        .map(|r| {
            format!(
                "recording {} deleted on {} ({}, {})\n",
                r.key(),
                r.origin_id,
                length(r.duration_s),
                bytes(r.bytes)
            )
        })
        .collect()
}

/// One line per event, for `streams watch`.
pub fn event(e: &EventView) -> String {
    let what = match (&e.node, &e.stream) {
        (Some(n), _) => format!("{} {} {}", n.role, n.id, state(n)),
        (None, Some(s)) => format!("{} on {} {}", s.key(), s.origin, codecs(s)),
        (None, None) => String::new(),
    };
    let t = e.at_ms / 1000 % 86_400;
    let (h, m, s) = (t / 3600, t / 60 % 60, t % 60);
    format!("{h:02}:{m:02}:{s:02}Z  {:<14}  {what}  (revision {})\n", e.kind, e.revision)
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::views;
    use sluice_proto::control::v1 as pb;

    const NOW: u64 = 1_700_000_000_000;

    fn edge(id: &str) -> pb::Node {
        pb::Node {
            id: id.into(),
            role: "edge".into(),
            state: "ready".into(),
            addresses: [("http".to_string(), "127.0.0.1:8080".to_string())].into(),
            load: Some(pb::NodeLoad {
                viewers: [("flv".to_string(), 12), ("relay".to_string(), 1)].into(),
                streams: 2,
                egress_bps: 24_000_000,
                ingress_bps: 2_000_000,
                cpu_millicores: 250,
                memory_bytes: 64 << 20,
                max_viewers: 500,
                max_egress_bps: 100_000_000,
                draining: false,
                reported_at_ms: NOW - 1_000,
                transcodes: 0,
                max_transcodes: 0,
            }),
            version: "0.1.0".into(),
            started_at_ms: NOW - (3 * 3600 + 12 * 60) * 1000,
            drain_ordered: false,
        }
    }

    #[test]
    fn node_list_shows_figures_in_human_units() {
        let list = NodeList {
            nodes: views::nodes(vec![
                edge("edge-1"),
                pb::Node {
                    id: "origin-1".into(),
                    role: "origin".into(),
                    state: "starting".into(),
                    ..pb::Node::default()
                },
            ]),
        };
        let text = node_list(&list, NOW);
        let lines: Vec<&str> = text.lines().collect();
        assert!(lines[0].starts_with("ID        ROLE    STATE     VERSION  VIEWERS"), "{text}");
        assert!(lines[1].starts_with("origin-1  origin  starting  -        -"), "{text}");
        for part in ["12/500", "24 Mbit/s (24%)", "2 Mbit/s", "0.25", "64 MiB", "3h12m", "1s ago"] {
            assert!(lines[2].contains(part), "{part} in {}", lines[2]);
        }
        assert!(lines[1].ends_with("never"), "{}", lines[1]);
    }

    #[test]
    fn a_drain_order_shows_in_the_state() {
        let mut n = NodeView::from(edge("e"));
        n.drain_ordered = true;
        assert_eq!(state(&n), "ready (drain ordered)");
        n.state = "draining".into();
        assert_eq!(state(&n), "draining");
    }

    #[test]
    fn node_show_lists_addresses_and_load() {
        let text = node(&NodeView::from(edge("edge-1")), NOW);
        assert!(text.contains("address: http 127.0.0.1:8080"), "{text}");
        assert!(text.contains("  by protocol: flv 12, relay 1"), "{text}");
        assert!(text.contains("  cpu:         0.25 cores"), "{text}");
    }

    fn stream_x() -> StreamView {
        StreamView::from(pb::Stream {
            app: "live".into(),
            name: "x".into(),
            origin: "origin-1".into(),
            home: "origin-1".into(),
            codecs: vec!["avc1.64001f".into(), "mp4a.40.2".into()],
            started_at_ms: NOW - 90_000,
            width: 1280,
            height: 720,
            fps_milli: 29_970,
            ingress_bps: 2_500_000,
            viewers: [("edge-1".to_string(), 7), ("edge-2".to_string(), 3)].into(),
        })
    }

    #[test]
    fn stream_list_and_show() {
        let text = stream_list(&StreamList { streams: vec![stream_x()] }, NOW);
        let row = text.lines().nth(1).unwrap();
        for part in ["live/x", "avc1.64001f,mp4a.40.2", "1280x720", "29.97", "2.5 Mbit/s", "1m30s"]
        {
            assert!(row.contains(part), "{part} in {row}");
        }
        let show = stream(&stream_x(), NOW);
        assert!(show.contains("viewers:    10\n"), "{show}");
        assert!(show.contains("NODE    VIEWERS\nedge-1  7\nedge-2  3\n"), "{show}");
    }

    #[test]
    fn a_stream_without_figures_shows_dashes() {
        let s = StreamView::from(pb::Stream {
            app: "live".into(),
            name: "y".into(),
            ..pb::Stream::default()
        });
        let show = stream(&s, NOW);
        assert!(show.contains("resolution: -\n") && show.contains("uptime:     -\n"), "{show}");
    }

    #[test]
    fn capacity_shows_totals_and_the_recommendation() {
        let c = CapacityView::from(pb::GetCapacityResponse {
            nodes: vec![edge("edge-1")],
            edges: Some(pb::CapacityTotals {
                viewers: 12,
                max_viewers: 500,
                egress_bps: 24_000_000,
                max_egress_bps: 0,
                cpu_millicores: 250,
                viewer_headroom: 488,
                transcodes: 0,
                max_transcodes: 0,
            }),
            origins: Some(pb::CapacityTotals {
                transcodes: 1,
                max_transcodes: 4,
                ..pb::CapacityTotals::default()
            }),
            recommended_edges: Some(1),
            target_utilisation: 0.6,
        });
        let text = capacity(&c);
        assert!(text.contains("edge-1  edge  ready  12/500   488"), "{text}");
        assert!(text.contains("edges    12/500   488       24 Mbit/s  0.25"), "{text}");
        assert!(text.contains("recommended edges: 1 (at 60% utilisation)"), "{text}");
        let line = |t: &str, end: &str| {
            t.lines().any(|l| l.starts_with("transcoding:") && l.trim_end().ends_with(end))
        };
        assert!(line(&text, " 1/4 streams (origins)"), "{text}");
        let none = capacity(&CapacityView::default());
        assert!(none.contains("- (no edge reported a capacity)"), "{none}");
        assert!(line(&none, " off"), "{none}");
    }

    #[test]
    fn actions_print_one_line() {
        let d = DrainView { node: None, deadline_ms: Some(NOW + 30_000) };
        assert_eq!(drain(&d, "e1", NOW), "node e1 is draining; what is left closes in 30s\n");
        let u = DrainView { node: None, deadline_ms: None };
        assert_eq!(drain(&u, "e1", NOW), "node e1 takes new work again\n");
        let k = KickView { stream: "live/x".into(), origin_id: "o1".into() };
        assert_eq!(kick(&k), "publisher of live/x closed on o1\n");
        let a = AssignView::from(pb::AssignViewerResponse {
            url: "http://e:1/live/x.flv".into(),
            edge_id: "e".into(),
            protocol: 1,
        });
        assert_eq!(assign(&a), "http://e:1/live/x.flv\n");
    }

    fn recording_x(finished: bool) -> RecordingView {
        RecordingView::from(pb::Recording {
            origin_id: "origin-1".into(),
            app: "live".into(),
            stream: "x".into(),
            id: "1700000000000".into(),
            started_at_ms: 1_700_000_000_000,
            duration_s: 10.02,
            segments: 5,
            periods: 1,
            bytes: 3 << 20,
            finished,
            hls_url: "http://o1:8080/vod/live/x/1700000000000/index.m3u8".into(),
            mp4_url: if finished {
                "http://o1:8080/vod/live/x/1700000000000.mp4".into()
            } else {
                String::new()
            },
        })
    }

    #[test]
    fn recordings_list_show_and_rm() {
        let list = RecordingList {
            recordings: vec![recording_x(false), recording_x(true)],
            truncated: true,
            unreachable_origins: vec!["origin-2".into()],
        };
        let text = recording_list(&list);
        let lines: Vec<&str> = text.lines().collect();
        assert_eq!(
            lines[0], "ORIGIN    STREAM  ID             STARTED (UTC)        LENGTH  SIZE   STATE",
            "{text}"
        );
        assert_eq!(
            lines[1],
            "origin-1  live/x  1700000000000  2023-11-14 22:13:20  10s     3 MiB  recording",
            "{text}"
        );
        assert!(lines[2].ends_with("finished"), "{text}");
        assert!(text.contains("only the newest are shown"), "{text}");
        assert!(text.contains("not listed: what origin-2 holds (no answer;"), "{text}");
        let plain = recording_list(&RecordingList::default());
        assert_eq!(plain.lines().count(), 1, "a header only: {plain}");

        let show = recording(&recording_x(false));
        assert!(show.contains("recording: live/x/1700000000000\n"), "{show}");
        assert!(show.contains("length:    10s (10.0 s)\n"), "{show}");
        assert!(show.contains("mp4:       - (once finished)\n"), "{show}");
        let show = recording(&recording_x(true));
        assert!(
            show.contains("mp4:       http://o1:8080/vod/live/x/1700000000000.mp4\n"),
            "{show}"
        );
        assert!(
            show.contains("hls:       http://o1:8080/vod/live/x/1700000000000/index.m3u8"),
            "{show}"
        );

        let d = DeletedView { deleted: vec![recording_x(true)] };
        assert_eq!(
            deleted(&d),
            "recording live/x/1700000000000 deleted on origin-1 (10s, 3 MiB)\n"
        );
    }

    #[test]
    fn events_are_one_line_each() {
        let e = EventView::from(pb::WatchEvent {
            kind: pb::watch_event::Kind::NodeChanged.into(),
            node: Some(edge("edge-1")),
            stream: None,
            revision: 42,
            at_ms: 3_600_000,
        });
        assert_eq!(event(&e), "01:00:00Z  node_changed    edge edge-1 ready  (revision 42)\n");
        let e = EventView::from(pb::WatchEvent {
            kind: pb::watch_event::Kind::StreamEnded.into(),
            stream: Some(pb::Stream {
                app: "live".into(),
                name: "x".into(),
                origin: "o1".into(),
                ..pb::Stream::default()
            }),
            ..pb::WatchEvent::default()
        });
        assert!(
            event(&e).starts_with("00:00:00Z  stream_ended    live/x on o1 -"),
            "{}",
            event(&e)
        );
    }
}
