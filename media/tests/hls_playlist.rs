//! Playlists against the RFC 8216bis / LL-HLS rules, blocking-reload and lookup answers, delta
//! updates, multivariant output, and a property test over random publishes.

mod hls_support;

use hls_support::*;
use proptest::prelude::*;
use sluice_media::frame::MediaKind;
use sluice_media::hls::{
    render_multivariant, HlsConfig, Lookup, PlaylistOptions, ReloadStatus, RenditionReport,
    Resource, Segmenter,
};

fn epoch_config() -> HlsConfig {
    HlsConfig { stream_epoch_ms: Some(1_700_000_000_000), ..HlsConfig::default() }
}

#[test]
fn live_playlists_obey_the_rules_at_every_step_and_blocking_answers_track_progress() {
    let mut seg = Segmenter::new(epoch_config());
    let mut last_sequence = 0;
    let mut last_part: Option<(u64, u32)> = None;
    let mut waited_on = None;
    let mut playlists = 0;
    let stream = Stream { frames: 900, ..Stream::default() };
    for m in stream.messages() {
        let up = seg.push(&m).unwrap();
        let snap = seg.snapshot();
        if let Some((msn, part)) = waited_on.take() {
            let status = snap.reload_status(msn, Some(part));
            if up.parts > 0 {
                assert_eq!(status, ReloadStatus::Ready, "({msn}, {part}) after a new part");
                assert!(matches!(
                    snap.lookup(Resource::Part { msn, index: part }),
                    Lookup::Part(_)
                ));
            } else {
                assert_eq!(status, ReloadStatus::Wait);
            }
        }
        if !snap.is_playable() {
            continue;
        }
        if up.is_empty() && playlists > 0 {
            let (msn, part) = snap.next_part();
            waited_on = Some((msn, part));
            continue;
        }
        playlists += 1;
        let text = snap.media_playlist(&PlaylistOptions::default());
        let p = check_playlist(&text);
        assert!(p.media_sequence >= last_sequence, "media sequence monotonic");
        last_sequence = p.media_sequence;
        let lp = snap.last_part().unwrap();
        assert!(Some(lp) > last_part, "the playlist only moves forward");
        last_part = Some(lp);
        // The next part: waiting, also as a resource (preload hint target).
        let (msn, part) = snap.next_part();
        assert_eq!(snap.reload_status(msn, Some(part)), ReloadStatus::Wait);
        assert_eq!(snap.lookup(Resource::Part { msn, index: part }), Lookup::Wait);
        assert_eq!(snap.reload_status(lp.0, Some(lp.1)), ReloadStatus::Ready);
        assert_eq!(
            snap.reload_status(msn + 3, Some(0)),
            ReloadStatus::TooFar,
            "three segments ahead"
        );
        assert_eq!(
            snap.reload_status(msn, Some(part + 4)),
            ReloadStatus::TooFar,
            "past the advance part limit"
        );
        waited_on = Some((msn, part));
        // A playlist lists at most the window and parts only near the live edge.
        assert!(p.segments.len() <= 8);
        assert!(p.parts.len() <= 4 * 4 + 4, "{} parts listed", p.parts.len());
    }
    // One playlist per completed part: 30 s of 0.5 s parts, less the last (still open).
    assert_eq!(playlists, 59, "playlists checked");
    let snap = seg.snapshot();
    // 30 s: window of 8, oldest gone.
    assert_eq!(snap.segments().len(), 8);
    assert_eq!(snap.lookup(Resource::Segment(0)), Lookup::NotFound);
    assert_eq!(snap.lookup(Resource::Init(0)).clone(), Lookup::Init(snap.inits()[0].clone()));
    assert_eq!(snap.lookup(Resource::Init(1)), Lookup::NotFound);
    let last = snap.segments().last().unwrap();
    assert!(matches!(snap.lookup(Resource::Segment(last.msn)), Lookup::Segment(_)));
    let open = snap.open_segment().unwrap().msn;
    assert_eq!(snap.lookup(Resource::Segment(open)), Lookup::Wait);
    assert_eq!(snap.lookup(Resource::Segment(open + 5)), Lookup::NotFound);
    // Segment bytes are the parts' bytes.
    let s = snap.segment(last.msn).unwrap();
    assert_eq!(s.to_bytes().len(), s.len());
    assert_eq!(s.chunks().map(|c| c.len()).sum::<usize>(), s.len());
}

#[test]
fn blocking_reload_edge_cases() {
    let mut seg = Segmenter::new(HlsConfig::default());
    assert_eq!(seg.snapshot().reload_status(0, Some(0)), ReloadStatus::Wait);
    assert_eq!(seg.snapshot().reload_status(0, None), ReloadStatus::Wait);
    assert_eq!(seg.snapshot().reload_status(9, None), ReloadStatus::TooFar);
    feed(&mut seg, &Stream { frames: 145, ..Stream::default() }.messages());
    let snap = seg.snapshot();
    eprintln!("{}", snap.media_playlist(&PlaylistOptions::default()));
    // Segments 0 and 1 complete (4 parts each), segment 2 open with one part.
    assert_eq!(snap.segments().len(), 2);
    assert_eq!(snap.reload_status(1, None), ReloadStatus::Ready);
    assert_eq!(snap.reload_status(2, None), ReloadStatus::Wait, "segment 2 is not complete");
    // The last segment listed is 2 (open, with a part): 4 is within reach, 5 is not.
    assert_eq!(snap.reload_status(4, None), ReloadStatus::Wait);
    assert_eq!(snap.reload_status(5, None), ReloadStatus::TooFar);
    // Part 4 of a complete 4-part segment is part 0 of the next.
    assert_eq!(snap.reload_status(1, Some(4)), ReloadStatus::Ready);
    assert_eq!(snap.reload_status(1, Some(99)), ReloadStatus::Ready);
    assert_eq!(snap.reload_status(1, Some(5)), ReloadStatus::Ready);
    let (msn, next) = snap.next_part();
    assert_eq!((msn, next), (2, 1));
    assert_eq!(snap.reload_status(2, Some(next)), ReloadStatus::Wait);
    assert_eq!(snap.reload_status(3, Some(0)), ReloadStatus::Wait);
    assert_eq!(snap.lookup(Resource::Part { msn: 0, index: 7 }), Lookup::NotFound);
}

#[test]
fn delta_update_matches_the_full_playlist() {
    let (_, snap) = segmented(&Stream { frames: 600, ..Stream::default() }, epoch_config());
    let full_text = snap.media_playlist(&PlaylistOptions::default());
    let delta_text =
        snap.media_playlist(&PlaylistOptions { skip: true, ..PlaylistOptions::default() });
    let full = check_playlist(&full_text);
    let delta = check_playlist(&delta_text);
    // 8 segments of 2 s ending 20 s, plus 1.5 s of parts: those ending by 9.5 s are skipped.
    let n = snap.skippable_segments();
    assert_eq!(n, 2);
    assert_eq!(delta.skipped, n as u64);
    assert_eq!(delta.version, 9);
    assert_eq!(full.version, 6);
    assert_eq!(delta.media_sequence, full.media_sequence);
    assert_eq!(delta.discontinuity_sequence, full.discontinuity_sequence);
    let strip = |v: &[SegmentEntry]| v.iter().map(|s| (s.0, s.1, s.2, s.3)).collect::<Vec<_>>();
    assert_eq!(strip(&delta.segments), strip(&full.segments[n..]));
    assert_eq!(delta.parts, full.parts);
    assert_eq!(delta.preload_hint, full.preload_hint);
    // Byte-identical tail after the first segment the delta lists.
    let first = format!("seg-{}.m4s\n", delta.segments[0].0);
    let tail = |t: &str| t[t.find(&first).unwrap()..].to_string();
    assert_eq!(tail(&delta_text), tail(&full_text));
    assert!(delta_text.contains("#EXT-X-SKIP:SKIPPED-SEGMENTS=2\n"));
    assert!(delta_text.contains("#EXT-X-MAP:URI=\"init-0.mp4\""));
    // Parts are listed only for segments within 3 target durations of the end.
    assert!(full.parts.len() < 4 * 8);
    assert!(!full_text.contains(&format!("part-{}.", full.media_sequence)));
}

#[test]
fn uris_carry_the_query_and_hostile_queries_are_neutralised() {
    let (_, snap) = segmented(&Stream::default(), HlsConfig::default());
    let text =
        snap.media_playlist(&PlaylistOptions { query: "?sid=abc", ..PlaylistOptions::default() });
    check_playlist(&text);
    for line in text.lines() {
        if !line.starts_with('#') {
            assert!(line.ends_with(".m4s?sid=abc"), "{line}");
        }
        if let Some(i) = line.find("URI=\"") {
            let uri = line[i + 5..].split('"').next().unwrap();
            assert!(uri.ends_with("?sid=abc"), "{line}");
        }
    }
    let text = snap.media_playlist(&PlaylistOptions {
        query: "?sid=\"x\n#EXT-X-ENDLIST\r\n",
        ..PlaylistOptions::default()
    });
    assert!(text.lines().all(|l| !l.starts_with("#EXT-X-ENDLIST")));
    assert!(text.lines().all(|l| l.matches('"').count() % 2 == 0));
    assert!(text.contains("seg-0.m4s?sid=xEXT-X-ENDLIST\n"), "{text}");
    check_playlist(&text);
}

#[test]
fn program_date_time_only_with_an_epoch() {
    let (_, snap) = segmented(&Stream::default(), HlsConfig::default());
    assert!(!snap.media_playlist(&PlaylistOptions::default()).contains("PROGRAM-DATE-TIME"));
    let (_, snap) = segmented(&Stream::default(), epoch_config());
    let p = check_playlist(&snap.media_playlist(&PlaylistOptions::default()));
    assert!(p.segments.iter().all(|s| s.2.is_some()));
    assert!(snap
        .media_playlist(&PlaylistOptions::default())
        .contains("#EXT-X-PROGRAM-DATE-TIME:2023-11-14T22:13:20.000Z\n"));
}

#[test]
fn multivariant_and_rendition_reports() {
    let (_, snap) = segmented(&Stream::default(), HlsConfig::default());
    let v = snap.variant("live/index.m3u8?sid=1").unwrap();
    assert_eq!(v.codecs, "avc1.64001f,mp4a.40.2");
    assert_eq!(v.resolution, Some((1280, 720)));
    assert_eq!(v.frame_rate, Some(30.0));
    // ~2.6 kB per frame at 30 fps + 300 B AAC frames: ~690 kbit/s.
    assert!((600_000..800_000).contains(&v.bandwidth), "{}", v.bandwidth);
    let text = render_multivariant(&[v]);
    assert!(text.starts_with("#EXTM3U\n"));
    let inf = text.lines().find(|l| l.starts_with("#EXT-X-STREAM-INF:")).unwrap();
    assert!(inf.contains(",CODECS=\"avc1.64001f,mp4a.40.2\""), "{inf}");
    assert!(inf.contains(",RESOLUTION=1280x720,FRAME-RATE=30.000"), "{inf}");
    assert!(text.ends_with("\nlive/index.m3u8?sid=1\n"));

    let report = snap.rendition_report("../low/index.m3u8").unwrap();
    assert_eq!(
        (report.last_msn, report.last_part),
        (snap.last_part().unwrap().0, Some(snap.last_part().unwrap().1))
    );
    let text = snap.media_playlist(&PlaylistOptions {
        rendition_reports: &[
            report,
            RenditionReport { uri: "other.m3u8".into(), last_msn: 3, last_part: None },
        ],
        ..PlaylistOptions::default()
    });
    assert!(text.contains(&format!(
        "#EXT-X-RENDITION-REPORT:URI=\"../low/index.m3u8\",LAST-MSN={},LAST-PART={}\n",
        snap.last_part().unwrap().0,
        snap.last_part().unwrap().1
    )));
    assert!(text.ends_with("#EXT-X-RENDITION-REPORT:URI=\"other.m3u8\",LAST-MSN=3\n"));
}

#[test]
fn end_list_playlist_has_no_preload_hint() {
    let mut seg = Segmenter::new(HlsConfig::default());
    feed(&mut seg, &Stream::default().messages());
    seg.end_of_stream();
    let text = seg
        .snapshot()
        .media_playlist(&PlaylistOptions { end_list: true, ..PlaylistOptions::default() });
    assert!(text.ends_with("seg-4.m4s\n#EXT-X-ENDLIST\n"), "{text}");
    assert!(!text.contains("PRELOAD-HINT"));
}

#[derive(Debug, Clone)]
enum Op {
    Video { key: bool, delta: u32, cts: i32, size: usize },
    Audio { delta: u32 },
    AvcHeader,
    AvcHeaderLevel(u8),
    HevcHeader,
    HevcFrame { key: bool, delta: u32 },
    EndOfStream,
    Garbage(MediaKind, Vec<u8>),
}

fn op() -> impl Strategy<Value = Op> {
    prop_oneof![
        20 => (prop::bool::weighted(0.05), 0u32..70, -50i32..200, 1usize..3000)
            .prop_map(|(key, delta, cts, size)| Op::Video { key, delta, cts, size }),
        10 => (0u32..40).prop_map(|delta| Op::Audio { delta }),
        1 => Just(Op::AvcHeader),
        1 => (30u8..33).prop_map(Op::AvcHeaderLevel),
        1 => Just(Op::HevcHeader),
        4 => (prop::bool::weighted(0.05), 0u32..70).prop_map(|(key, delta)| Op::HevcFrame { key, delta }),
        1 => Just(Op::EndOfStream),
        1 => (prop_oneof![Just(MediaKind::Audio), Just(MediaKind::Video), Just(MediaKind::Data)],
              prop::collection::vec(any::<u8>(), 0..40))
            .prop_map(|(k, b)| Op::Garbage(k, b)),
    ]
}

proptest! {
    #![proptest_config(ProptestConfig::with_cases(64))]

    /// Random publishes (gaps under the part target, codec switches, restarts, garbage)
    /// never panic, and every playlist obeys the rules.
    #[test]
    fn random_publishes_keep_playlists_valid(
        ops in prop::collection::vec(op(), 1..1500),
        part_ms in prop_oneof![Just(200u32), Just(500u32)],
    ) {
        let mut seg = Segmenter::new(HlsConfig {
            part_target_ms: part_ms,
            window_segments: 5,
            stream_epoch_ms: Some(1_700_000_000_000),
            ..HlsConfig::default()
        });
        let mut t = 0u32;
        let mut last_msn = 0;
        for op in ops {
            let _ = match op {
                Op::Video { key, delta, cts, size } => {
                    t += delta;
                    seg.push(&avc_frame(t, key, cts, size))
                }
                Op::Audio { delta } => {
                    t += delta;
                    seg.push(&aac_frame(t, 200))
                }
                Op::AvcHeader => {
                    let _ = seg.push(&aac_seq(t));
                    seg.push(&avc_seq(t, &AVC_RECORD))
                }
                Op::AvcHeaderLevel(level) => {
                    let mut r = AVC_RECORD;
                    r[3] = level;
                    seg.push(&avc_seq(t, &r))
                }
                Op::HevcHeader => seg.push(&hevc_seq(t)),
                Op::HevcFrame { key, delta } => {
                    t += delta;
                    seg.push(&hevc_frame(t, key, 500))
                }
                Op::EndOfStream => Ok(seg.end_of_stream()),
                Op::Garbage(kind, bytes) => seg.push(&msg(kind, t, bytes)),
            };
            let snap = seg.snapshot();
            if snap.is_playable() {
                let text = snap.media_playlist(&PlaylistOptions::default());
                let p = check_playlist(&text);
                prop_assert!(p.media_sequence >= last_msn);
                last_msn = p.media_sequence;
                let d = check_playlist(&snap.media_playlist(&PlaylistOptions { skip: true, ..Default::default() }));
                prop_assert_eq!(d.preload_hint, p.preload_hint);
                for s in snap.segments() {
                    prop_assert!(snap.init(s.init_id).is_some(), "init of every segment kept");
                }
            }
        }
    }
}
