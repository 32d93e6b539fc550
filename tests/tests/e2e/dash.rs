//! MPEG-DASH (#16) from the same CMAF segments as HLS, checked as a player would: the MPD of a
//! transcoded stream lists the ladder and the audio as non-multiplexed representations, with
//! a timeline of the segments HLS has; each DASH object holds only its own track; ffmpeg
//! decodes every representation from the MPD; the segment being produced arrives part by part
//! (low-latency DASH) and ends up byte for byte the complete one. dash.js plays it in Chromium
//! in `browser.rs`. No MPD schema is available from this machine's registries, so the MPD's
//! structure is checked here against the rules of ISO/IEC 23009-1 a player relies on.

use std::collections::BTreeMap;
use std::io::Read;
use std::time::Duration;

use bytes::Bytes;
use sluice_media::ts::{parse_fragment, parse_init};
use sluice_tests::http::open;
use sluice_tests::origin::TestDir;
use sluice_tests::process::wait_for;
use sluice_tests::{h264_aac, secs, Origin, Publisher};

const LADDER: &str = r#"
[live]
renditions = [
  { name = "480p", height = 480, video-kbps = 1000 },
  { name = "240p", height = 240, video-kbps = 400 },
]
"#;

/// One Representation as a player reads it.
#[derive(Debug, Clone)]
struct Rep {
    id: String,
    content: String,
    height: Option<u64>,
    bandwidth: u64,
    codecs: String,
    init: String,
    media: String,
    start_number: u64,
    /// (t, d) of each listed segment, expanded.
    timeline: Vec<(u64, u64)>,
}

impl Rep {
    /// The object URL of segment `number` (relative to the app: `/live/` + this).
    fn segment(&self, number: u64) -> String {
        format!("/live/{}", self.media.replace("$Number$", &number.to_string()))
    }
    fn last_number(&self) -> u64 {
        self.start_number + self.timeline.len() as u64 - 1
    }
}

/// Parse `mpd` and check the structure a DASH player relies on; its representations.
fn check_mpd(mpd: &str) -> Vec<Rep> {
    let doc = roxmltree::Document::parse(mpd).unwrap_or_else(|e| panic!("MPD not XML: {e}\n{mpd}"));
    let root = doc.root_element();
    assert_eq!(root.tag_name().namespace(), Some("urn:mpeg:dash:schema:mpd:2011"));
    assert_eq!(root.tag_name().name(), "MPD");
    assert_eq!(root.attribute("type"), Some("dynamic"), "{mpd}");
    for attr in ["availabilityStartTime", "publishTime", "minimumUpdatePeriod", "minBufferTime"] {
        assert!(root.attribute(attr).is_some(), "MPD@{attr} missing: {mpd}");
    }
    assert!(root.attribute("profiles").unwrap().contains("urn:mpeg:dash:profile:isoff-live:2011"));
    // Children in the schema's order.
    let order = ["Location", "ServiceDescription", "Period", "UTCTiming"];
    let seen: Vec<usize> = root
        .children()
        .filter(roxmltree::Node::is_element)
        .map(|n| order.iter().position(|o| n.has_tag_name(*o)).expect("a known MPD child"))
        .collect();
    assert!(seen.windows(2).all(|w| w[0] <= w[1]), "MPD children out of order: {mpd}");
    let utc = root.children().find(|n| n.has_tag_name("UTCTiming")).expect("UTCTiming");
    assert_eq!(utc.attribute("schemeIdUri"), Some("urn:mpeg:dash:utc:direct:2014"));
    let periods: Vec<_> = root.children().filter(|n| n.has_tag_name("Period")).collect();
    assert_eq!(periods.len(), 1);
    let mut reps = Vec::new();
    let mut ids = std::collections::HashSet::new();
    for set in periods[0].children().filter(|n| n.has_tag_name("AdaptationSet")) {
        let content = set.attribute("contentType").unwrap().to_string();
        assert_eq!(set.attribute("mimeType"), Some(&*format!("{content}/mp4")));
        for r in set.children().filter(|n| n.has_tag_name("Representation")) {
            let id = r.attribute("id").unwrap().to_string();
            assert!(ids.insert(id.clone()), "duplicate Representation@id {id}");
            let tpl = r.children().find(|n| n.has_tag_name("SegmentTemplate")).unwrap();
            assert_eq!(tpl.attribute("availabilityTimeComplete"), Some("false"));
            let ato: f64 = tpl.attribute("availabilityTimeOffset").unwrap().parse().unwrap();
            assert!(ato > 0.0);
            let timescale: u64 = tpl.attribute("timescale").unwrap().parse().unwrap();
            assert_eq!(timescale, 90_000);
            let start_number: u64 = tpl.attribute("startNumber").unwrap().parse().unwrap();
            assert!(u32::try_from(start_number).is_ok(), "startNumber is 32-bit");
            let mut timeline = Vec::new();
            let tl = tpl.children().find(|n| n.has_tag_name("SegmentTimeline")).unwrap();
            for s in tl.children().filter(|n| n.has_tag_name("S")) {
                let d: u64 = s.attribute("d").unwrap().parse().unwrap();
                let r: u64 = s.attribute("r").map_or(0, |r| r.parse().unwrap());
                let t: u64 = match s.attribute("t") {
                    Some(t) => t.parse().unwrap(),
                    None => timeline.last().map(|(t, d)| t + d).expect("first S has t"),
                };
                for k in 0..=r {
                    timeline.push((t + k * d, d));
                }
            }
            // A timeline without overlaps, in order.
            assert!(timeline.windows(2).all(|w| w[0].0 + w[0].1 <= w[1].0), "{mpd}");
            assert!(!timeline.is_empty());
            reps.push(Rep {
                id,
                content: content.clone(),
                height: r.attribute("height").map(|h| h.parse().unwrap()),
                bandwidth: r.attribute("bandwidth").unwrap().parse().unwrap(),
                codecs: r.attribute("codecs").unwrap().to_string(),
                init: tpl.attribute("initialization").unwrap().to_string(),
                media: tpl.attribute("media").unwrap().to_string(),
                start_number,
                timeline,
            });
        }
    }
    reps
}

/// Start a session as a player does: `STREAM.mpd` redirects to `STREAM.mpd?sid=…`, once the
/// stream is published. The location.
fn session(origin: &Origin, stream: &str) -> String {
    let first = wait_for(secs(20), || {
        Some(origin.get(&format!("/live/{stream}.mpd"))).filter(|r| r.status != 404)
    })
    .unwrap_or_else(|| panic!("live/{stream} never published:\n{}", origin.log()));
    assert_eq!(first.status, 302, "{}", first.text());
    let location = first.header("location").expect("Location").to_string();
    assert!(location.starts_with(&format!("{stream}.mpd?sid=")), "{location}");
    location
}

/// GET the MPD of a session.
fn get_mpd(origin: &Origin, location: &str) -> String {
    let mpd = origin.get(&format!("/live/{location}"));
    assert_eq!(mpd.status, 200, "{}", mpd.text());
    assert_eq!(mpd.header("content-type"), Some("application/dash+xml"));
    mpd.text()
}

/// The track ids of every sample in `fragments` (one or more moof+mdat).
fn track_ids(fragments: &[u8]) -> BTreeMap<u32, usize> {
    let mut ids = BTreeMap::new();
    for s in parse_fragment(&Bytes::copy_from_slice(fragments)).expect("valid fragments") {
        *ids.entry(s.track_id).or_default() += 1;
    }
    ids
}

#[test]
fn mpd_lists_the_ladder_as_separate_tracks_and_ffmpeg_decodes_every_representation() {
    let dir = TestDir::new("dash-ladder");
    let ladder = dir.path().join("ladder.toml");
    std::fs::write(&ladder, LADDER).unwrap();
    let origin = Origin::start(&["--ladder-file", ladder.to_str().unwrap()]);
    let _publisher = Publisher::start_looped(&origin.rtmp_url("live", "cam"), &h264_aac().path);
    // The MPD lists a rendition once it has a complete segment.
    let location = session(&origin, "cam");
    let mpd = wait_for(secs(45), || {
        let mpd = get_mpd(&origin, &location);
        let reps = check_mpd(&mpd);
        let ladder = reps.iter().filter(|r| r.content == "video").count() == 3;
        (ladder && reps.iter().all(|r| r.timeline.len() >= 2)).then_some(mpd)
    })
    .unwrap_or_else(|| panic!("the MPD never listed the ladder:\n{}", origin.log()));
    let sid = location.split("sid=").nth(1).unwrap();
    let reps = check_mpd(&mpd);
    let root = roxmltree::Document::parse(&mpd).unwrap();
    let refresh = root.root_element().children().find(|n| n.has_tag_name("Location")).unwrap();
    assert_eq!(refresh.text(), Some(&*location), "players refresh with their session");
    let video: Vec<&Rep> = reps.iter().filter(|r| r.content == "video").collect();
    let heights: Vec<Option<u64>> = video.iter().map(|r| r.height).collect();
    assert_eq!(heights, vec![Some(720), Some(480), Some(240)]);
    assert!(video[0].bandwidth > video[1].bandwidth && video[1].bandwidth > video[2].bandwidth);
    assert!(video.iter().all(|r| r.codecs.starts_with("avc1.")));
    let audio: Vec<&Rep> = reps.iter().filter(|r| r.content == "audio").collect();
    assert_eq!(audio.len(), 1);
    assert_eq!(audio[0].codecs, "mp4a.40.2");
    // The source's objects carry its session; the renditions' live under their own names.
    assert!(video[0].media.starts_with("cam/dash-v-") && video[0].media.ends_with(sid));
    assert!(video[1].media.starts_with("cam_480p/dash-v-"), "{}", video[1].media);

    // Each object holds its own track only: one trak in the init, one track id in the
    // fragments; the timeline's times are the fragments' decode times.
    for rep in &reps {
        let init = origin.get(&format!("/live/{}", rep.init));
        assert_eq!(init.status, 200, "{}: {}", rep.init, init.text());
        let tracks = parse_init(&init.body).expect("init parses");
        assert_eq!(
            (tracks.video.is_some(), tracks.audio.is_some()),
            (rep.content == "video", rep.content == "audio"),
            "{}",
            rep.id
        );
        // A complete segment (the last listed may be being produced).
        let number = rep.last_number() - 1;
        let seg = origin.get(&rep.segment(number));
        assert_eq!(seg.status, 200, "{}", seg.text());
        assert!(seg.header("content-length").is_some(), "a complete segment has a length");
        let ids = track_ids(&seg.body);
        let want = if rep.content == "video" { 1 } else { 2 };
        assert_eq!(ids.keys().copied().collect::<Vec<_>>(), vec![want], "{}: {ids:?}", rep.id);
        if rep.content == "video" {
            let first = parse_fragment(&Bytes::from(seg.body.clone())).unwrap();
            let (t, _) = rep.timeline[(number - rep.start_number) as usize];
            let ept = first[0].dts.saturating_add_signed(i64::from(first[0].cts));
            assert_eq!(ept, t, "{}: the timeline's t is the earliest presentation time", rep.id);
            assert!(first[0].key, "{}: a segment starts with a keyframe", rep.id);
        }
    }
    // Segment boundaries of the renditions coincide with the source's.
    let n = video[0].last_number() - 1;
    let t_of = |r: &Rep, n: u64| r.timeline.get((n - r.start_number) as usize).map(|x| x.0);
    for r in &video[1..] {
        if let Some(t) = t_of(r, n) {
            assert!(
                t.abs_diff(t_of(video[0], n).unwrap()) <= 90 * 40,
                "{} at {n}: {:?} vs {:?}",
                r.id,
                r.timeline,
                video[0].timeline
            );
        }
    }

    // ffmpeg reads the MPD and decodes every representation.
    let url = format!("http://{}/live/{location}", origin.http);
    let out = std::process::Command::new("ffmpeg")
        .args(["-hide_banner", "-v", "error", "-i", &url, "-map", "0", "-t", "4", "-f", "framemd5"])
        .arg("-")
        .output()
        .unwrap();
    let text = String::from_utf8_lossy(&out.stdout);
    let mut frames: BTreeMap<u32, u64> = BTreeMap::new();
    for line in text.lines().filter(|l| !l.starts_with('#')) {
        if let Some(idx) = line.split(',').next().and_then(|s| s.trim().parse().ok()) {
            *frames.entry(idx).or_default() += 1;
        }
    }
    assert_eq!(frames.len(), 4, "3 video and 1 audio streams decoded: {frames:?}\n{}", {
        String::from_utf8_lossy(&out.stderr)
    });
    // At least a second of each (the renditions start a segment or two after the source).
    assert!(frames.values().all(|&n| n >= 30), "frames per stream: {frames:?}");
}

#[test]
fn the_segment_being_made_arrives_part_by_part_and_is_the_complete_one() {
    let origin = Origin::start(&[]);
    let _publisher = Publisher::start_looped(&origin.rtmp_url("live", "ll"), &h264_aac().path);
    let location = session(&origin, "ll");
    let reps = wait_for(secs(20), || {
        let reps = check_mpd(&get_mpd(&origin, &location));
        (reps.iter().all(|r| r.timeline.len() >= 3)).then_some(reps)
    })
    .unwrap_or_else(|| panic!("no DASH media:\n{}", origin.log()));
    let video = reps.iter().find(|r| r.content == "video").unwrap();
    // Wait for the next segment to start being produced: ask for the one after the last
    // listed, which the server holds until its first part exists.
    let number = video.last_number() + 1;
    let mut resp = open(origin.http, "GET", &video.segment(number), Duration::from_secs(10))
        .expect("request the segment being made");
    assert_eq!(resp.status, 200);
    assert_eq!(resp.header("content-length"), None, "sent chunked, not with a length");
    // Read one whole fragment (moof + mdat): the first part.
    let mut got = Vec::new();
    let mut buf = [0u8; 16384];
    let fragment_len = |b: &[u8]| -> Option<usize> {
        let moof = u32::from_be_bytes(b.get(0..4)?.try_into().ok()?) as usize;
        let mdat = u32::from_be_bytes(b.get(moof..moof + 4)?.try_into().ok()?) as usize;
        Some(moof + mdat)
    };
    while fragment_len(&got).is_none_or(|n| got.len() < n) {
        let n = resp.read(&mut buf).expect("read the first part");
        assert!(n > 0, "body ended before a whole fragment");
        got.extend_from_slice(&buf[..n]);
    }
    let first_len = fragment_len(&got).unwrap();
    assert_eq!(track_ids(&got[..first_len]).keys().copied().collect::<Vec<_>>(), vec![1]);
    // That segment is still being produced: the MPD lists it last, with segments of the
    // window before it only.
    let now =
        check_mpd(&get_mpd(&origin, &location)).into_iter().find(|r| r.content == "video").unwrap();
    assert_eq!(now.last_number(), number, "the first part came before the segment was complete");
    // The rest arrives as it is made; the whole is the complete segment, byte for byte.
    resp.read_to_end(&mut got).expect("read the rest");
    assert!(got.len() > first_len, "more parts followed");
    let complete = origin.get(&video.segment(number));
    assert_eq!(complete.status, 200);
    assert_eq!(complete.body, got, "the streamed segment is the complete one");
    // A number far ahead, or a stale base, is 404 at once.
    assert_eq!(origin.get(&video.segment(number + 10)).status, 404);
    let stale = video.segment(number).replace("dash-v-", "dash-v-1");
    assert_eq!(origin.get(&stale).status, 404);
}
