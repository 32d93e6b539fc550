//! Every node serves the same HLS for a stream: the ingest origin decides segments and
//! numbers, the relay carries its stamps, and the home origin and two edges that joined at
//! different times serve byte-identical segments with the same numbers, durations and
//! program date-times, and the same parts and init segment, so a player or a CDN can switch
//! nodes mid-stream.

use std::collections::BTreeMap;

use sluice_tests::cluster::{find_name, home, TestCluster};
use sluice_tests::http;
use sluice_tests::process::wait_for;
use sluice_tests::{h264_aac, secs, Origin, Publisher};

fn get(node: &Origin, path: &str) -> http::HttpResponse {
    http::get(node.http, path, secs(15)).unwrap_or_else(|e| panic!("GET {path}: {e}"))
}

/// One media segment as a playlist lists it.
#[derive(Debug, Clone, PartialEq)]
struct Listed {
    duration: String,
    date: Option<String>,
    discontinuity: bool,
}

/// An HLS session on one node: the media playlist URI (with its sid) from the multivariant.
struct Session<'a> {
    node: &'a Origin,
    playlist: String,
}

impl<'a> Session<'a> {
    fn open(node: &'a Origin, stream: &str) -> Session<'a> {
        let resp = get(node, &format!("/live/{stream}.m3u8"));
        assert_eq!(resp.status, 200, "multivariant: {}", resp.text());
        let uri = resp
            .text()
            .lines()
            .find(|l| !l.starts_with('#') && !l.is_empty())
            .expect("variant URI")
            .to_string();
        Session { node, playlist: format!("/live/{uri}") }
    }

    /// msn -> what the media playlist says of each complete segment.
    fn segments(&self) -> BTreeMap<u64, Listed> {
        let resp = get(self.node, &self.playlist);
        assert_eq!(resp.status, 200, "media playlist: {}", resp.text());
        let mut out = BTreeMap::new();
        let (mut duration, mut date, mut disc) = (None, None, false);
        for line in resp.text().lines() {
            if let Some(d) = line.strip_prefix("#EXTINF:") {
                duration = Some(d.trim_end_matches(',').to_string());
            } else if let Some(d) = line.strip_prefix("#EXT-X-PROGRAM-DATE-TIME:") {
                date = Some(d.to_string());
            } else if line == "#EXT-X-DISCONTINUITY" {
                disc = true;
            } else if let Some(rest) = line.strip_prefix("seg-") {
                let msn: u64 = rest.split('.').next().unwrap().parse().unwrap();
                out.insert(
                    msn,
                    Listed {
                        duration: duration.take().unwrap_or_default(),
                        date: date.take(),
                        discontinuity: disc,
                    },
                );
                disc = false;
            }
        }
        out
    }

    /// The URI of the init segment (`EXT-X-MAP`) the media playlist names now.
    fn map_uri(&self) -> String {
        let resp = get(self.node, &self.playlist);
        assert_eq!(resp.status, 200, "media playlist: {}", resp.text());
        let text = resp.text();
        let map = text
            .lines()
            .find_map(|l| l.strip_prefix("#EXT-X-MAP:URI=\""))
            .unwrap_or_else(|| panic!("no EXT-X-MAP in {text}"));
        map.split('"').next().unwrap().split('?').next().unwrap().to_string()
    }

    /// An object next to the media playlist (`seg-5.m4s`, `part-5.0.m4s`, `init-1.mp4`), in
    /// this session.
    fn object(&self, name: &str) -> http::HttpResponse {
        let sid = self.playlist.split("sid=").nth(1).unwrap_or("");
        let dir = self.playlist.rsplit_once('/').unwrap().0;
        get(self.node, &format!("{dir}/{name}?sid={sid}"))
    }

    fn segment(&self, msn: u64) -> Vec<u8> {
        let resp = self.object(&format!("seg-{msn}.m4s"));
        assert_eq!(resp.status, 200, "segment {msn}");
        resp.body
    }
}

#[test]
fn the_home_origin_and_two_edges_serve_identical_hls() {
    let c = TestCluster::new("eh", &["hls-a", "hls-b", "hls-e1", "hls-e2"]);
    let a = c.origin("hls-a", &[]);
    let b = c.origin("hls-b", &[]);
    let e1 = c.edge("hls-e1", &[]);
    let e2 = c.edge("hls-e2", &[]);

    // Published on hls-a, homed on hls-b: the home is itself a follower of the ingest.
    let name = find_name("h", |n| home(&["hls-a", "hls-b"], n) == "hls-b");
    let mut publisher = Publisher::start_looped(&a.rtmp_url("live", &name), &h264_aac().path);
    wait_for(secs(20), || b.stream_info("live", &name)).expect("forwarded to the home");

    let ingest = Session::open(&a, &name);
    let home = Session::open(&b, &name);
    let first = Session::open(&e1, &name);
    // The second edge joins two segments later than the first.
    let newest = |s: &Session| s.segments().keys().last().copied();
    let joined = newest(&ingest);
    wait_for(secs(30), || (newest(&ingest) >= joined.map(|m| m + 2)).then_some(()))
        .unwrap_or_else(|| panic!("the ingest made no two segments after {joined:?}"));
    let late = Session::open(&e2, &name);

    // Wait until the late edge lists three complete segments.
    let common_msns = wait_for(secs(40), || {
        let lists = [ingest.segments(), home.segments(), first.segments(), late.segments()];
        let msns: Vec<u64> =
            lists[3].keys().copied().filter(|m| lists.iter().all(|l| l.contains_key(m))).collect();
        (msns.len() >= 3).then_some((msns, lists))
    });
    let (msns, lists) = common_msns.unwrap_or_else(|| {
        panic!(
            "nodes do not list common segments: ingest {:?} home {:?} e1 {:?} e2 {:?}",
            ingest.segments().keys().collect::<Vec<_>>(),
            home.segments().keys().collect::<Vec<_>>(),
            first.segments().keys().collect::<Vec<_>>(),
            late.segments().keys().collect::<Vec<_>>()
        )
    });
    let sessions = [&ingest, &home, &first, &late];
    for msn in &msns {
        let listed: Vec<&Listed> = lists.iter().map(|l| &l[msn]).collect();
        assert!(
            listed.iter().all(|l| *l == listed[0]),
            "segment {msn} listed differently: {listed:?}"
        );
        assert!(listed[0].date.is_some(), "program date-time present");
        let bytes: Vec<Vec<u8>> = sessions.iter().map(|s| s.segment(*msn)).collect();
        assert!(bytes[0].len() > 10_000, "segment {msn} has media ({} bytes)", bytes[0].len());
        for (i, other) in bytes.iter().enumerate().skip(1) {
            assert!(
                *other == bytes[0],
                "segment {msn} on node {i} differs from the ingest's ({} vs {} bytes)",
                other.len(),
                bytes[0].len()
            );
        }
        // Its parts, byte for byte, the same number on every node (the first index past them
        // is 404 everywhere), and together exactly the segment.
        let mut joined = Vec::new();
        for index in 0.. {
            let name = format!("part-{msn}.{index}.m4s");
            let parts: Vec<http::HttpResponse> = sessions.iter().map(|s| s.object(&name)).collect();
            let statuses: Vec<u16> = parts.iter().map(|p| p.status).collect();
            if statuses[0] == 404 {
                assert!(statuses.iter().all(|&s| s == 404), "{name}: statuses {statuses:?}");
                assert!(index > 1, "segment {msn} has {index} parts");
                break;
            }
            assert!(statuses.iter().all(|&s| s == 200), "{name}: statuses {statuses:?}");
            for (i, other) in parts.iter().enumerate().skip(1) {
                assert!(
                    other.body == parts[0].body,
                    "{name} on node {i} differs from the ingest's ({} vs {} bytes)",
                    other.body.len(),
                    parts[0].body.len()
                );
            }
            joined.extend_from_slice(&parts[0].body);
        }
        assert!(joined == bytes[0], "the parts of segment {msn} are not the segment");
    }

    // The init segment: the same name and bytes on every node.
    let uris: Vec<String> = sessions.iter().map(|s| s.map_uri()).collect();
    assert!(uris.iter().all(|u| *u == uris[0]), "EXT-X-MAP differs: {uris:?}");
    let inits: Vec<http::HttpResponse> = sessions.iter().map(|s| s.object(&uris[0])).collect();
    for (i, init) in inits.iter().enumerate() {
        assert_eq!(init.status, 200, "{} on node {i}", uris[0]);
        assert!(
            init.body == inits[0].body,
            "{} on node {i} differs from the ingest's ({} vs {} bytes)",
            uris[0],
            init.body.len(),
            inits[0].body.len()
        );
    }
    assert_eq!(&inits[0].body[4..8], b"ftyp", "the init segment starts with ftyp");
    publisher.stop();
}
