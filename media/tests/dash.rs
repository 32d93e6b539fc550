//! MPEG-DASH from the segmenter's output: the MPD lists what the snapshot holds, and each
//! track's objects are that track's fragments alone.

mod hls_support;

use hls_support::{parse_fragment, segmented, Stream};
use sluice_media::dash::{
    growth, lookup, render_mpd, DashLookup, DashResource, DashStream, MpdOptions,
};
use sluice_media::hls::{HlsConfig, ResumePoint, Track};

const EPOCH: u64 = 1_700_000_000_000;
const BASE: u64 = EPOCH / 100;

/// Numbers start from the wall clock, as a node's do.
const FIRST_MSN: u64 = EPOCH / 100 + 3;

fn config() -> HlsConfig {
    HlsConfig {
        stream_epoch_ms: Some(EPOCH),
        resume: Some(ResumePoint { next_msn: FIRST_MSN, ..ResumePoint::default() }),
        ..HlsConfig::default()
    }
}

#[test]
fn mpd_lists_the_window_per_track() {
    let (_, snap) = segmented(&Stream { frames: 600, ..Stream::default() }, config());
    let now = EPOCH + 20_000;
    let mpd = render_mpd(
        &[DashStream { base: "cam", snapshot: &snap, query: "?sid=abc" }],
        &MpdOptions { now_ms: now, location: Some("cam.mpd?sid=abc") },
    )
    .expect("playable");
    let doc = roxmltree::Document::parse(&mpd).expect("well-formed XML");
    let root = doc.root_element();
    assert_eq!(root.tag_name().name(), "MPD");
    assert_eq!(root.attribute("type"), Some("dynamic"));
    assert_eq!(root.attribute("availabilityStartTime"), Some("2023-11-14T22:13:20.000Z"));
    assert_eq!(root.attribute("publishTime"), Some("2023-11-14T22:13:40.000Z"));
    let location = root.children().find(|n| n.has_tag_name("Location")).unwrap();
    assert_eq!(location.text(), Some("cam.mpd?sid=abc"));
    let sets: Vec<_> = root.descendants().filter(|n| n.has_tag_name("AdaptationSet")).collect();
    assert_eq!(sets.len(), 2);
    assert_eq!(sets[0].attribute("contentType"), Some("video"));
    assert_eq!(sets[1].attribute("contentType"), Some("audio"));
    for (set, (letter, codec)) in sets.iter().zip([("v", "avc1."), ("a", "mp4a.40.2")]) {
        let reps: Vec<_> = set.children().filter(|n| n.has_tag_name("Representation")).collect();
        assert_eq!(reps.len(), 1);
        assert!(reps[0].attribute("codecs").unwrap().starts_with(codec));
        let bw: u64 = reps[0].attribute("bandwidth").unwrap().parse().unwrap();
        assert!(bw > 1000, "{bw}");
        let tpl = reps[0].children().find(|n| n.has_tag_name("SegmentTemplate")).unwrap();
        assert_eq!(
            tpl.attribute("media"),
            Some(&*format!("cam/dash-{letter}-{BASE}-$Number$.m4s?sid=abc"))
        );
        assert_eq!(
            tpl.attribute("initialization"),
            Some(&*format!("cam/dash-{letter}-init-0.mp4?sid=abc"))
        );
        assert_eq!(tpl.attribute("timescale"), Some("90000"));
        assert_eq!(tpl.attribute("availabilityTimeComplete"), Some("false"));
        let start: u64 = tpl.attribute("startNumber").unwrap().parse().unwrap();
        assert_eq!(start, snap.segments()[0].msn - BASE);
        assert!(start >= 3);
        // Expand the timeline: every completed segment at its time, then the open one.
        let mut times = Vec::new();
        let tl = tpl.children().find(|n| n.has_tag_name("SegmentTimeline")).unwrap();
        for s in tl.children().filter(|n| n.has_tag_name("S")) {
            let t: u64 = s.attribute("t").unwrap().parse().unwrap();
            let d: u64 = s.attribute("d").unwrap().parse().unwrap();
            let r: u64 = s.attribute("r").map_or(0, |r| r.parse().unwrap());
            for k in 0..=r {
                times.push((t + k * d, d));
            }
        }
        let segs = snap.segments();
        assert_eq!(times.len(), segs.len() + 1, "the window and the open segment");
        // Each at its earliest presentation time (the first frame's composition offset
        // added), lasting until the next.
        let open = snap.open_segment().unwrap();
        // (Audio has none.)
        for (seg, (t, _)) in segs.iter().chain([open]).zip(&times) {
            assert_eq!(seg.first_cts, 33 * 90);
            let offset = if letter == "v" { seg.first_cts as u64 } else { 0 };
            assert_eq!(*t, seg.start + offset);
        }
        assert!(times.windows(2).all(|w| w[0].0 + w[0].1 == w[1].0));
    }
}

#[test]
fn objects_are_one_track_each() {
    let (_, snap) = segmented(&Stream::default(), config());
    let seg = &snap.segments()[1];
    for (track, id) in [(Track::Video, 1), (Track::Audio, 2)] {
        let DashLookup::Segment(chunks) = lookup(
            &snap,
            DashResource::Segment { track, base: BASE, number: (seg.msn - BASE) as u32 },
        ) else {
            panic!("segment {} of {track:?}", seg.msn)
        };
        let trafs: Vec<_> = chunks.iter().flat_map(|c| parse_fragment(c).1).collect();
        assert!(!trafs.is_empty());
        assert!(trafs.iter().all(|t| t.track_id == id), "{track:?}");
        assert_eq!(trafs[0].tfdt, if id == 1 { seg.start } else { trafs[0].tfdt });
        let DashLookup::Init(init) = lookup(&snap, DashResource::Init { track, id: 0 }) else {
            panic!("init")
        };
        // One trak in the track's init.
        assert_eq!(init.windows(4).filter(|w| w == b"trak").count(), 1);
    }
    assert_eq!(
        lookup(&snap, DashResource::Init { track: Track::Video, id: 9 }),
        DashLookup::NotFound
    );
    // The open segment and the next one grow; one far ahead or gone is not found.
    let open = snap.open_segment().unwrap().msn;
    let seg = |msn: u64| DashResource::Segment {
        track: Track::Video,
        base: BASE,
        number: (msn - BASE) as u32,
    };
    assert_eq!(lookup(&snap, seg(open)), DashLookup::Growing);
    assert_eq!(lookup(&snap, seg(open + 1)), DashLookup::Growing);
    assert_eq!(lookup(&snap, seg(open + 5)), DashLookup::NotFound);
    // The name fixes the sequence number, whatever base it was written with.
    let other = DashResource::Segment { track: Track::Video, base: BASE - 1, number: 4 };
    let same = DashResource::Segment { track: Track::Video, base: BASE, number: 3 };
    assert_eq!(lookup(&snap, other), lookup(&snap, same));
    assert!(matches!(lookup(&snap, same), DashLookup::Segment(_)));
    let g = growth(&snap, Track::Video, open, 0);
    assert!(!g.done);
    assert_eq!(g.sent, snap.open_segment().unwrap().parts.len());
    assert_eq!(growth(&snap, Track::Video, open, g.sent).chunks.len(), 0);
    let done = growth(&snap, Track::Video, snap.segments()[0].msn, 1);
    assert!(done.done);
    assert_eq!(done.sent, snap.segments()[0].parts.len());
    assert_eq!(done.chunks.len(), snap.segments()[0].parts.len() - 1);
}

#[test]
fn audio_only_has_no_video_set() {
    let (_, snap) = segmented(&Stream { video: false, ..Stream::default() }, config());
    let mpd = render_mpd(
        &[DashStream { base: "radio", snapshot: &snap, query: "" }],
        &MpdOptions::default(),
    )
    .unwrap();
    assert!(!mpd.contains("contentType=\"video\""));
    assert!(mpd.contains("contentType=\"audio\""));
}
